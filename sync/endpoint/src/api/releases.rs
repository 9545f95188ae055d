//! Safe updates over HTTP (issue 20): the operator uploads signed releases, starts rollouts and
//! pins kiosks (admin token); a kiosk asks which release it should run and downloads it in
//! pieces (signed like every kiosk request). Thin over [`crate::db::releases`].
//!
//! A release's assignment is its own kiosk request, not a feed item: it is per kiosk (canary
//! share, pins) where the feed is per store, and a feed item of an unknown kind would fail the
//! whole feed page of a kiosk that predates it (`FeedItem` has no catch-all).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kiosk_protocol::release::{
    MAX_RELEASE_BYTES, ReleaseAssignment, ReleaseManifest, SignedRelease,
};
use kiosk_protocol::wire::ErrorCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::DbError;
use crate::db::releases::{CHUNK_BYTES, NewRelease, ReleaseAsk, ReleaseSummary, Rollout};
use crate::http::auth::SignedKiosk;
use crate::http::doc::{
    ADMIN_ERRORS, KIOSK_ERRORS, Security, op, path_param, query_param, raw_op, schema_ref,
    with_params,
};
use crate::http::{Admin, ApiError, AppState, Route, Verb, header_str, json_body, now_ms};

/// Header carrying the base64 ed25519 signature of an uploaded release.
pub const SIGNATURE_HEADER: &str = "x-release-signature";

/// Most bytes one download request answers (a kiosk asks piece by piece and resumes).
pub const MAX_PIECE_BYTES: u64 = 4 * 1024 * 1024;

/// The routes.
pub fn routes() -> Vec<Route> {
    let version_arch = || {
        json!([
            path_param("version", "ReleaseVersion"),
            path_param("arch", "ReleaseArch")
        ])
    };
    vec![
        Route::new(
            Verb::Put,
            "/v1/admin/releases/{version}/{arch}",
            put_release,
            with_params(
                binary_body(op(
                    "upload a signed release: the .deb as the body, its signature (base64, `crm-endpoint release-sign`) in x-release-signature",
                    Security::Admin,
                    None,
                    ("200", "stored (or already stored)", Some("SignedRelease")),
                    &["400", "403", "409", "413", "503"],
                )),
                {
                    let mut p = version_arch();
                    if let Some(list) = p.as_array_mut() {
                        list.push(json!({
                            "name": SIGNATURE_HEADER,
                            "in": "header",
                            "required": true,
                            "description": "the release's ed25519 signature, base64 (64 bytes)",
                            "schema": { "type": "string", "pattern": "^[A-Za-z0-9+/]{85}[AQgw]==$" }
                        }));
                    }
                    p
                },
            ),
        )
        .map(|h| {
            h.layer(DefaultBodyLimit::max(
                usize::try_from(MAX_RELEASE_BYTES).unwrap_or(usize::MAX),
            ))
        }),
        Route::new(
            Verb::Get,
            "/v1/admin/releases",
            list_releases,
            op(
                "stored releases with their rollout, installs and failures",
                Security::Admin,
                None,
                ("200", "the releases, newest first", Some("ReleaseList")),
                ADMIN_ERRORS,
            ),
        ),
        Route::new(
            Verb::Put,
            "/v1/admin/rollouts/{version}",
            put_rollout,
            with_params(
                op(
                    "start or change a rollout (a store or all, a percentage of kiosks, the failures that halt it); clears a halt",
                    Security::Admin,
                    Some("RolloutRequest"),
                    ("204", "saved", None),
                    ADMIN_ERRORS,
                ),
                json!([path_param("version", "ReleaseVersion")]),
            ),
        ),
        Route::new(
            Verb::Put,
            "/v1/admin/kiosks/{kiosk_id}/pin",
            put_pin,
            with_params(
                op(
                    "pin a kiosk to a release (version null: unpin), with the operator's signed pin when it is a downgrade (409: the signed pin names another kiosk or release)",
                    Security::Admin,
                    Some("PinRequest"),
                    ("204", "saved", None),
                    &["400", "403", "404", "409", "429", "503"],
                ),
                json!([path_param("kiosk_id", "Ident")]),
            ),
        ),
        Route::new(
            Verb::Get,
            "/v1/kiosks/{kiosk_id}/release",
            get_assignment,
            with_params(
                op(
                    "the release this kiosk should run (its pin, else the newest rollout covering it)",
                    Security::Kiosk,
                    None,
                    ("200", "the assignment", Some("ReleaseAssignment")),
                    KIOSK_ERRORS,
                ),
                json!([
                    path_param("kiosk_id", "Ident"),
                    query_param("arch", true, schema_ref("ReleaseArch"), "the kiosk's package architecture"),
                    query_param("version", true, schema_ref("ReleaseVersion"), "the version it runs"),
                    query_param("downloaded", false, schema_ref("ReleaseVersion"), "the release it holds downloaded and verified, waiting to install")
                ]),
            ),
        ),
        Route::new(
            Verb::Get,
            "/v1/kiosks/{kiosk_id}/releases/{version}/{arch}",
            get_piece,
            with_params(
                raw_op(
                    "a piece of a release package (resumable download: offset and length)",
                    Security::Kiosk,
                    json!({
                        "200": { "description": "the bytes", "content": { "application/vnd.debian.binary-package": { "schema": { "type": "string", "format": "binary" } } } },
                        "400": crate::http::doc::error_answer(),
                        "401": crate::http::doc::error_answer(),
                        "403": crate::http::doc::error_answer(),
                        "404": crate::http::doc::error_answer(),
                        "503": crate::http::doc::error_answer()
                    }),
                ),
                json!([
                    path_param("kiosk_id", "Ident"),
                    path_param("version", "ReleaseVersion"),
                    path_param("arch", "ReleaseArch"),
                    query_param("offset", true, json!({ "type": "integer", "minimum": 0 }), "first byte"),
                    query_param("length", true, json!({ "type": "integer", "minimum": 1, "maximum": MAX_PIECE_BYTES }), "bytes wanted")
                ]),
            ),
        ),
    ]
}

/// The upload's body: the package bytes.
fn binary_body(mut op: serde_json::Value) -> serde_json::Value {
    op["requestBody"] = json!({
        "required": true,
        "content": { "application/octet-stream": {
            "schema": { "type": "string", "format": "binary", "minLength": 1 }
        } }
    });
    op
}

/// The schemas these routes name.
pub fn register_schemas(g: &mut schemars::SchemaGenerator) {
    g.subschema_for::<SignedRelease>();
    g.subschema_for::<RolloutRequest>();
    g.subschema_for::<PinRequest>();
    g.subschema_for::<ReleaseAssignment>();
    g.subschema_for::<ReleaseList>();
}

/// Named string schemas of the path parameters.
pub fn named() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "ReleaseVersion".into(),
        json!({ "type": "string", "pattern": "^[0-9][A-Za-z0-9.+~:-]{0,63}$", "description": "a Debian version" }),
    );
    m.insert(
        "ReleaseArch".into(),
        json!({ "type": "string", "pattern": "^[a-z0-9]{1,16}$", "description": "a Debian architecture" }),
    );
    m
}

/// Body of `PUT /v1/admin/rollouts/{version}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// Only this store (absent: every store).
    #[serde(default)]
    pub store_id: Option<String>,
    /// Share of the kiosks, 0 to 100 (0 stops offering it).
    #[schemars(range(max = 100))]
    pub percent: u8,
    /// Kiosks that may roll back or refuse it before it halts (at least 1).
    #[schemars(range(min = 1))]
    pub max_failures: u32,
}

/// Body of `PUT /v1/admin/kiosks/{kiosk_id}/pin`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// The release (null, with no `signed`: unpin).
    #[serde(default)]
    pub version: Option<String>,
    /// The operator's signed pin of this kiosk to `version` (`crm-endpoint release-sign-pin`;
    /// without `version`, to the release it names): needed for the kiosk to install a release
    /// older than the one it runs.
    #[serde(default)]
    pub signed: Option<kiosk_protocol::release::SignedPin>,
}

/// `GET /v1/admin/releases` answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReleaseList {
    /// Newest first.
    pub releases: Vec<ReleaseSummary>,
}

fn refused(e: DbError) -> ApiError {
    match e {
        DbError::Refused(why) => ApiError::new(StatusCode::CONFLICT, ErrorCode::Malformed, why),
        other => other.into(),
    }
}

async fn put_release(
    _: Admin,
    State(st): State<AppState>,
    Path((version, arch)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SignedRelease>, ApiError> {
    let body = body.map_err(|e| {
        ApiError::too_large(format!(
            "release body: {e}; a package is at most {MAX_RELEASE_BYTES} bytes"
        ))
    })?;
    let Some(signature) = header_str(&headers, SIGNATURE_HEADER).map(str::to_owned) else {
        return Err(ApiError::malformed(format!(
            "unsigned release refused: send its signature in {SIGNATURE_HEADER} (crm-endpoint release-sign)"
        )));
    };
    let manifest = ReleaseManifest::of_package(&version, &arch, body.as_ref())
        .map_err(|e| ApiError::malformed(e.to_string()))?;
    let signed = SignedRelease {
        manifest,
        signature,
    };
    // The CRM holds no key to check it with, but a signature that is not even one is a mistake.
    signed
        .check_form()
        .map_err(|e| ApiError::malformed(e.to_string()))?;
    let stored = st
        .db
        .put_release(NewRelease {
            signed: signed.clone(),
            package: body.to_vec(),
            uploaded_ms: now_ms(),
        })
        .await
        .map_err(refused)?;
    tracing::info!(version, arch, stored, "release uploaded");
    Ok(Json(signed))
}

async fn list_releases(
    _: Admin,
    State(st): State<AppState>,
) -> Result<Json<ReleaseList>, ApiError> {
    Ok(Json(ReleaseList {
        releases: st.db.releases().await?,
    }))
}

async fn put_rollout(
    _: Admin,
    State(st): State<AppState>,
    Path(version): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let req: RolloutRequest = json_body(body)?;
    if req.percent > 100 || req.max_failures == 0 {
        return Err(ApiError::malformed(
            "percent is 0 to 100 and max_failures at least 1",
        ));
    }
    st.db
        .set_rollout(
            Rollout {
                version,
                store_id: req.store_id,
                percent: req.percent,
                max_failures: req.max_failures,
                halted_ms: None,
                halted_reason: None,
            },
            now_ms(),
        )
        .await
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_pin(
    _: Admin,
    State(st): State<AppState>,
    Path(kiosk_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    // An object, nothing else (serde would read `[null]` as a struct of one field).
    let body: serde_json::Map<String, serde_json::Value> = json_body(body)?;
    let req: PinRequest = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::malformed(format!("pin: {e}")))?;
    let pin = match (req.version, req.signed) {
        (Some(version), signed) => Some(crate::db::releases::Pin { version, signed }),
        // The signed pin names its release.
        (None, Some(signed)) => Some(crate::db::releases::Pin {
            version: signed.manifest.version.clone(),
            signed: Some(signed),
        }),
        (None, None) => None,
    };
    st.db
        .pin_kiosk(kiosk_id, pin, now_ms())
        .await
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/kiosks/{kiosk_id}/release`.
#[derive(Debug, Deserialize)]
pub struct AssignmentQuery {
    /// The kiosk's package architecture.
    pub arch: String,
    /// The version it runs.
    pub version: String,
    /// The release it holds downloaded and verified (waiting for a quiet moment).
    #[serde(default)]
    pub downloaded: Option<String>,
}

fn check_names(version: &str, arch: &str) -> Result<(), ApiError> {
    ReleaseManifest {
        version: version.to_owned(),
        arch: arch.to_owned(),
        sha256: "0".repeat(64),
        size: 1,
    }
    .check()
    .map_err(|e| ApiError::malformed(e.to_string()))
}

async fn get_assignment(
    SignedKiosk(kiosk): SignedKiosk,
    State(st): State<AppState>,
    query: Result<Query<AssignmentQuery>, QueryRejection>,
) -> Result<Json<ReleaseAssignment>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::malformed(format!("release query: {e}")))?;
    check_names(&q.version, &q.arch)?;
    if let Some(d) = &q.downloaded {
        check_names(d, &q.arch)?;
    }
    let assigned = st
        .db
        .release_for_kiosk(ReleaseAsk {
            kiosk_id: kiosk.id,
            store_id: kiosk.store_id,
            arch: q.arch.clone(),
            running: q.version.clone(),
            downloaded: q.downloaded,
            now_ms: now_ms(),
        })
        .await?;
    let release = assigned.release;
    let current = match &release {
        Some(r) if r.manifest.version != q.version => st.db.release(q.version, q.arch).await?,
        _ => None,
    };
    Ok(Json(ReleaseAssignment {
        release,
        current,
        pin: assigned.pin,
        pinned: assigned.pinned,
    }))
}

/// Query of a package piece.
#[derive(Debug, Deserialize)]
pub struct PieceQuery {
    /// First byte.
    pub offset: u64,
    /// Bytes wanted (at most [`MAX_PIECE_BYTES`]).
    pub length: u64,
}

async fn get_piece(
    SignedKiosk(_kiosk): SignedKiosk,
    State(st): State<AppState>,
    Path((_, version, arch)): Path<(String, String, String)>,
    query: Result<Query<PieceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::malformed(format!("piece query: {e}")))?;
    check_names(&version, &arch)?;
    if q.length == 0 || q.length > MAX_PIECE_BYTES {
        return Err(ApiError::malformed(format!(
            "length {}: 1 to {MAX_PIECE_BYTES} bytes",
            q.length
        )));
    }
    let Some(meta) = st.db.release(version.clone(), arch.clone()).await? else {
        return Err(ApiError::not_found(format!("release {version} ({arch})")));
    };
    let size = meta.manifest.size;
    // At or past the end: nothing left (as a read at end of file), never an error.
    let offset = q.offset.min(size);
    let end = size.min(offset.saturating_add(q.length));
    let chunk = CHUNK_BYTES as u64;
    let mut out = Vec::with_capacity(usize::try_from(end - offset).unwrap_or(0));
    let mut idx = offset / chunk;
    while idx * chunk < end {
        let data = st
            .db
            .release_chunk(version.clone(), arch.clone(), idx)
            .await?
            .ok_or_else(|| DbError::Corrupt(format!("release {version} misses chunk {idx}")))?;
        let start = offset.saturating_sub(idx * chunk);
        let stop = (end - idx * chunk).min(data.len() as u64);
        let (start, stop) = (
            usize::try_from(start).unwrap_or(0),
            usize::try_from(stop).unwrap_or(0),
        );
        out.extend_from_slice(data.get(start..stop).unwrap_or_default());
        idx += 1;
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/vnd.debian.binary-package",
        )],
        out,
    )
        .into_response())
}
