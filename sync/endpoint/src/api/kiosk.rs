//! The kiosks' side of protocol v1: health, enrollment, signed batch ingest, the sync feed and
//! live profile lookups. Thin over [`crate::db`] and [`crate::ingest`]; authentication is
//! [`crate::http::auth`]'s.

use std::io::Read as _;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use kiosk_protocol::CardToken;
use kiosk_protocol::ident;
use kiosk_protocol::wire::{
    BatchRequest, BatchResponse, EnrollRequest, EnrollResponse, ErrorCode, EventResult,
    EventStatus, FeedQuery, FeedResponse, HealthResponse, Key32, MAX_BATCH_BYTES, MAX_BATCH_EVENTS,
    MAX_FEED_LIMIT, MAX_MONO_MS, PROTOCOL_VERSION, ProfileLookupResponse,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::db::{DbError, IngestBatch, NewKiosk, SharedDb};
use crate::http::auth::{SignedKiosk, verify_kiosk};
use crate::http::doc::{KIOSK_ERRORS, Security, op, path_param, query_param, with_params};
use crate::http::{
    ApiError, AppState, LOOKUPS_PER_WINDOW, Route, Verb, header_str, json_body, now_ms, peer_ip,
};
use crate::ingest;

/// The kiosks' routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Verb::Get,
            "/v1/health",
            health,
            op(
                "liveness and store health",
                Security::None,
                None,
                ("200", "health", Some("HealthResponse")),
                &[],
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/enroll",
            enroll,
            op(
                "trade a one-time code for a kiosk id, device secret and tenant key",
                Security::None,
                Some("EnrollRequest"),
                ("200", "enrolled", Some("EnrollResponse")),
                &["400", "401", "429", "503"],
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/kiosks/{kiosk_id}/batches",
            post_batch,
            with_params(
                op(
                    "post a batch of events (at most 500 events, 256 KiB uncompressed; gzip accepted); 503 with Retry-After, before the body is read, when this replica stores its maximum of batches already (admission control)",
                    Security::Kiosk,
                    Some(&<BatchRequest<serde_json::Value> as schemars::JsonSchema>::schema_name()),
                    ("200", "one result per event, in order", Some("BatchResponse")),
                    &["400", "401", "403", "409", "413", "415", "503"],
                ),
                json!([path_param("kiosk_id", "Ident")]),
            ),
        )
        .map(|h| h.layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))),
        Route::new(
            Verb::Get,
            "/v1/kiosks/{kiosk_id}/feed",
            get_feed,
            with_params(
                op(
                    "read the store's sync feed after a cursor",
                    Security::Kiosk,
                    None,
                    ("200", "campaigns, profiles, erasures, rated turns and (v >= 2) the store's configuration, oldest first", Some("FeedResponse")),
                    KIOSK_ERRORS,
                ),
                json!([
                    path_param("kiosk_id", "Ident"),
                    query_param("cursor", false, json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0 }), "the next_cursor of the previous page; 0 from the beginning"),
                    query_param("limit", false, json!({ "type": "integer", "minimum": 1, "maximum": MAX_FEED_LIMIT, "default": 200 }), "most items wanted; out of range is refused (400)"),
                    query_param("v", false, json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX, "default": 1 }), "the feed items the kiosk knows: 1 campaigns, profiles, erasures and rated turns; 2 adds store configurations and skips kinds it does not know")
                ]),
            ),
        ),
        Route::new(
            Verb::Get,
            "/v1/kiosks/{kiosk_id}/profiles/{card_token}",
            get_profile,
            with_params(
                op(
                    "look up a card the kiosk's cache does not know (the customer becomes known to its store; at most 60 a minute per kiosk)",
                    Security::Kiosk,
                    None,
                    ("200", "the profile, or null for nobody", Some("ProfileLookupResponse")),
                    &["400", "401", "403", "409", "429", "503"],
                ),
                json!([path_param("kiosk_id", "Ident"), path_param("card_token", "CardToken")]),
            ),
        ),
    ]
}

async fn health(State(st): State<AppState>) -> Json<HealthResponse> {
    let ok = st.db.tenant_key().await.is_ok();
    Json(HealthResponse {
        status: if ok { "ok" } else { "degraded" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL_VERSION,
        store: st.db.kind().as_str().to_owned(),
    })
}

/// Normalises a typed enrollment code (case, dashes, spaces) and hashes it for storage.
pub fn hash_enroll_code(code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(norm.as_bytes()))
}

/// A fresh one-time code: 12 Crockford base32 characters (60 bits) as `XXXX-XXXX-XXXX`.
pub fn new_enroll_code() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bytes: [u8; 12] = rand::random();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Creates a one-time enrollment code for `store_id`, valid for `ttl`; returns the code (only its
/// hash is stored).
pub async fn issue_enroll_code(
    db: &SharedDb,
    store_id: &str,
    ttl: Duration,
) -> Result<(String, i64), DbError> {
    let code = new_enroll_code();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_ms = now_ms().saturating_add(ttl_ms);
    db.create_enroll_code(hash_enroll_code(&code), store_id.to_owned(), expires_ms)
        .await?;
    Ok((code, expires_ms))
}

async fn enroll(
    State(st): State<AppState>,
    req: Request,
) -> Result<Json<EnrollResponse>, ApiError> {
    let ip = peer_ip(req.extensions());
    // The attempt is counted first, in one statement shared by every replica: a burst of
    // concurrent requests cannot all pass the check before the first failure is counted. A
    // success gives it back.
    let key = ip.to_string();
    if let Some(wait) = st.enroll_failures.take(&st.db, &key).await? {
        return Err(ApiError::rate_limited(
            format!("too many wrong enrollment codes from {ip}; wait {wait} s"),
            wait,
        ));
    }
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| ApiError::too_large("enrollment body over 16 KiB"))?;
    let body: EnrollRequest = json_body(Ok(body))?;
    check_enroll_request(&body)?;
    let kiosk_id = format!("k-{}", hex::encode(rand::random::<[u8; 6]>()));
    let secret = Key32::from_bytes(rand::random());
    let kiosk = NewKiosk {
        id: kiosk_id.clone(),
        secret: secret.clone(),
        hardware_profile: body.hardware_profile,
        firmware_version: body.firmware_version,
    };
    let redeemed = st
        .db
        .redeem_enroll_code(hash_enroll_code(&body.code), now_ms(), kiosk)
        .await?;
    let Some(store) = redeemed else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCode,
            "enrollment code is wrong, already used or expired; ask for a new one (crm-endpoint enroll-code)",
        ));
    };
    st.enroll_failures.refund(&st.db, &key).await;
    tracing::info!(kiosk_id, store = store.id, "kiosk enrolled");
    Ok(Json(EnrollResponse {
        kiosk_id,
        device_secret: secret,
        tenant_key: st.db.tenant_key().await?,
        store_id: store.id,
        store_name: store.name,
    }))
}

/// The bounds [`EnrollRequest`]'s schema states, each refusal naming its field.
fn check_enroll_request(body: &EnrollRequest) -> Result<(), ApiError> {
    if !(1..=64).contains(&body.code.chars().count()) {
        return Err(ApiError::malformed(
            "code: an enrollment code is 1 to 64 characters (XXXX-XXXX-XXXX)",
        ));
    }
    ident::check(&body.hardware_profile)
        .map_err(|e| ApiError::malformed(format!("hardware_profile: {e}")))?;
    let version = &body.firmware_version;
    if !(1..=64).contains(&version.len()) || !version.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::malformed(
            "firmware_version: 1 to 64 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// Decodes a batch body as received with its `Content-Encoding`: gzip inflated up to
/// [`MAX_BATCH_BYTES`], then a [`BatchRequest`] of at most [`MAX_BATCH_EVENTS`] events, each
/// still raw JSON for the [`ingest::Validator`]. Whatever the bytes, the answer is a batch or a
/// 400, 413 or 415 saying what is wrong (fuzzed by `tests/fuzz`'s `endpoint_batch`).
pub fn decode_batch(
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<BatchRequest<serde_json::Value>, ApiError> {
    let json = decoded_body(content_encoding, body)?;
    let batch: BatchRequest<serde_json::Value> =
        json_body(Ok(axum::body::Bytes::from(json.into_owned())))
            .map_err(|e| ApiError::malformed(format!("batch {}", e.message())))?;
    if batch.kiosk_clock.mono_ms > MAX_MONO_MS {
        return Err(ApiError::malformed(format!(
            "batch body.kiosk_clock.mono_ms: {} is above {MAX_MONO_MS} (100 years of uptime); the kiosk's monotonic clock is broken",
            batch.kiosk_clock.mono_ms
        )));
    }
    if batch.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::too_large(format!(
            "batch of {} events; at most {MAX_BATCH_EVENTS} per batch",
            batch.events.len()
        )));
    }
    Ok(batch)
}

fn decoded_body<'b>(
    content_encoding: Option<&str>,
    body: &'b [u8],
) -> Result<std::borrow::Cow<'b, [u8]>, ApiError> {
    match content_encoding.map(str::trim) {
        None | Some("identity") => Ok(std::borrow::Cow::Borrowed(body)),
        Some(enc) if enc.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            let limit = u64::try_from(MAX_BATCH_BYTES).unwrap_or(u64::MAX) + 1;
            flate2::read::GzDecoder::new(body)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::malformed(format!("gzip body does not decompress: {e}")))?;
            if out.len() > MAX_BATCH_BYTES {
                return Err(ApiError::too_large(format!(
                    "batch over {MAX_BATCH_BYTES} bytes uncompressed; send smaller batches"
                )));
            }
            Ok(std::borrow::Cow::Owned(out))
        }
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Malformed,
            format!("content-encoding {other:?} is not supported; use gzip or none"),
        )),
    }
}

/// A slot to read and store one batch in ([`crate::http::Admission`]): taken before the body is read,
/// or the batch is answered 503 with `Retry-After`.
pub struct IngestSlot(
    #[allow(dead_code, reason = "held until the batch is answered")]
    tokio::sync::OwnedSemaphorePermit,
);

impl axum::extract::FromRequestParts<AppState> for IngestSlot {
    type Rejection = ApiError;

    async fn from_request_parts(
        _: &mut axum::http::request::Parts,
        st: &AppState,
    ) -> Result<Self, ApiError> {
        let slots = st.ingest_slots.clone();
        let busy = || {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                format!(
                    "the endpoint is storing {} batches already; retry after {} s",
                    st.admission.max_ingests, st.admission.retry_after_s
                ),
            )
            .retry_after(st.admission.retry_after_s)
        };
        match tokio::time::timeout(st.admission.queue_wait, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(IngestSlot(permit)),
            // Timed out, or closed (never: the semaphore is not closed).
            _ => Err(busy()),
        }
    }
}

async fn post_batch(
    _slot: IngestSlot,
    State(st): State<AppState>,
    Path(path_kiosk): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchResponse>, ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(
            axum::extract::rejection::FailedToBufferBody::LengthLimitError(_),
        ) => ApiError::too_large(format!(
            "batch body over {MAX_BATCH_BYTES} bytes; send smaller batches"
        )),
        other => ApiError::malformed(format!("could not read the body: {other}")),
    })?;
    let (kiosk, guard) = verify_kiosk(&st, &method, &uri, &headers, &body, &path_kiosk).await?;
    let received_ms = now_ms();
    let batch = decode_batch(
        header_str(&headers, header::CONTENT_ENCODING.as_str()),
        &body,
    )?;
    let reading = ingest::read_clock(&kiosk.skew_samples, &batch.kiosk_clock, received_ms);
    if let Some(problem) = &reading.refused {
        tracing::warn!(
            kiosk = kiosk.id,
            problem = %problem,
            "kiosk clock reading not used for the skew estimate"
        );
    }
    let skew = reading.skew_or_zero(received_ms);
    let mut results: Vec<Option<EventResult>> = Vec::with_capacity(batch.events.len());
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    for (i, raw) in batch.events.iter().enumerate() {
        match st.validator.check(raw, &kiosk.id, &reading.clock, skew) {
            Ok(ev) => {
                results.push(None);
                positions.push(i);
                valid.push(ev);
            }
            Err(r) => {
                tracing::warn!(
                    kiosk = kiosk.id,
                    seq = r.seq,
                    reason = r.reason,
                    "event rejected"
                );
                results.push(Some(EventResult {
                    id: r.id,
                    seq: r.seq,
                    status: EventStatus::Rejected,
                    reason: Some(r.reason),
                }));
            }
        }
    }
    let ids: Vec<(uuid::Uuid, u64)> = valid.iter().map(|e| (e.id, e.seq)).collect();
    let statuses = st
        .db
        .ingest(IngestBatch {
            kiosk_id: kiosk.id.clone(),
            store_id: kiosk.store_id.clone(),
            received_ms,
            skew: reading.skew,
            skew_samples: Some(reading.samples),
            backlog: batch.backlog,
            backlog_age_ms: batch.backlog_age_ms,
            events: valid,
            replay: Some(guard),
        })
        .await?;
    st.store_changed(&kiosk.store_id);
    for ((pos, (id, seq)), status) in positions.into_iter().zip(ids).zip(statuses) {
        results[pos] = Some(EventResult {
            id,
            seq,
            status,
            reason: None,
        });
    }
    Ok(Json(BatchResponse {
        batch_id: batch.batch_id,
        results: results.into_iter().flatten().collect(),
        server_time: OffsetDateTime::now_utc(),
    }))
}

async fn get_feed(
    SignedKiosk(kiosk): SignedKiosk,
    State(st): State<AppState>,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Json<FeedResponse>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::malformed(format!("feed query: {e}")))?;
    if !(1..=MAX_FEED_LIMIT).contains(&q.limit) {
        return Err(ApiError::malformed(format!(
            "limit: {} is out of range; ask for 1 to {MAX_FEED_LIMIT} items",
            q.limit
        )));
    }
    if i64::try_from(q.cursor).is_err() {
        return Err(ApiError::malformed(format!(
            "cursor: {} is above {}; send the next_cursor of the previous page",
            q.cursor,
            i64::MAX
        )));
    }
    // The cursor asked from is what the kiosk has applied (it stores it with the page): the
    // customers page reads it to say which kiosks have applied an erasure.
    st.db
        .record_feed_poll(kiosk.id.clone(), q.cursor, now_ms())
        .await?;
    let page = st.db.feed(kiosk.store_id, q.cursor, q.limit, q.v).await?;
    Ok(Json(FeedResponse {
        items: page.items,
        next_cursor: page.next_cursor,
        more: page.more,
    }))
}

/// A kiosk's live lookup of a card its cache does not know (see [`crate::db::Database::lookup_profile`]).
async fn get_profile(
    SignedKiosk(kiosk): SignedKiosk,
    State(st): State<AppState>,
    Path((_, card_token)): Path<(String, String)>,
) -> Result<Json<ProfileLookupResponse>, ApiError> {
    let token: CardToken = card_token
        .parse()
        .map_err(|e| ApiError::malformed(format!("card token in the path: {e}")))?;
    if let Some(wait) = st.lookups.take(&st.db, &kiosk.id).await? {
        return Err(ApiError::rate_limited(
            format!(
                "more than {LOOKUPS_PER_WINDOW} profile lookups a minute from kiosk {}; wait {wait} s",
                kiosk.id
            ),
            wait,
        ));
    }
    let profile = st.db.lookup_profile(kiosk.store_id, token).await?;
    Ok(Json(ProfileLookupResponse { profile }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enroll_codes_hash_the_same_however_typed() {
        let code = new_enroll_code();
        assert_eq!(code.len(), 14);
        assert_eq!(
            hash_enroll_code(&code),
            hash_enroll_code(&code.to_lowercase().replace('-', " "))
        );
        assert_ne!(
            hash_enroll_code(&code),
            hash_enroll_code(&new_enroll_code())
        );
    }
}
