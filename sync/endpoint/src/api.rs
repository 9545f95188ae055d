//! The HTTP surface of protocol v1: enrollment, signed batch ingest, the sync feed, health,
//! statistics and the admin API. Thin over [`crate::store`] and [`crate::ingest`].
//!
//! Status codes: 400 malformed body or query; 401 missing credentials, unknown kiosk, bad
//! signature, stale timestamp or a wrong enrollment code; 403 another kiosk's id or a missing
//! admin token; 409 a replayed signed request; 413 a batch over 500 events or 256 KiB; 429 too
//! many enrollment attempts from one address (with `Retry-After`); 503 store unavailable (with
//! `Retry-After`).

use std::collections::HashMap;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use axum::{Json, Router};
use kiosk_protocol::CardToken;
use kiosk_protocol::auth::{self, AuthError};
use kiosk_protocol::wire::{
    BatchRequest, BatchResponse, Campaign, EnrollRequest, EnrollResponse, ErrorBody, ErrorCode,
    EventResult, EventStatus, FeedQuery, FeedResponse, HEADER_ADMIN_TOKEN, HEADER_KIOSK_ID,
    HEADER_SIGNATURE, HEADER_TIMESTAMP, HealthResponse, Key32, MAX_BATCH_BYTES, MAX_BATCH_EVENTS,
    MAX_FEED_LIMIT, PROTOCOL_VERSION, ProfileLookupResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::ingest::{self, Validator};
use crate::store::{
    IngestBatch, KioskRecord, NewCustomer, NewKiosk, ReplayGuard, SharedStore, StoreError,
    StoreRecord,
};

/// Every route the endpoint serves: `(method, path)`. The router is built from this table and a
/// test checks it against the OpenAPI document both ways.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/openapi.json"),
    ("GET", "/v1/health"),
    ("POST", "/v1/enroll"),
    ("POST", "/v1/kiosks/{kiosk_id}/batches"),
    ("GET", "/v1/kiosks/{kiosk_id}/feed"),
    ("GET", "/v1/kiosks/{kiosk_id}/profiles/{card_token}"),
    ("GET", "/v1/stats"),
    ("POST", "/v1/admin/stores"),
    ("POST", "/v1/admin/enroll-codes"),
    ("POST", "/v1/admin/customers"),
    ("GET", "/v1/admin/customers/{card_token}"),
    ("PUT", "/v1/admin/customers/{card_token}/segment"),
    ("POST", "/v1/admin/customers/{card_token}/erase"),
    ("POST", "/v1/admin/segments/recompute"),
    ("GET", "/v1/admin/campaigns"),
    ("POST", "/v1/admin/campaigns"),
];

/// Failed enrollment attempts allowed per source address and window.
pub const ENROLL_ATTEMPTS: u32 = 10;
/// The window of [`ENROLL_ATTEMPTS`].
pub const ENROLL_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Live profile lookups allowed per kiosk and [`LOOKUP_WINDOW`]: far above what customers
/// tapping cards need, far below what enumerating card tokens would (a stolen kiosk holds the
/// tenant key and could compute the tokens of short UIDs).
pub const LOOKUPS_PER_WINDOW: u32 = 60;
/// The window of [`LOOKUPS_PER_WINDOW`].
pub const LOOKUP_WINDOW: Duration = Duration::from_secs(60);

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: SharedStore,
    validator: Arc<Validator>,
    admin_token: Option<Arc<str>>,
    enroll_failures: Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
    /// Live profile lookups per kiosk in the current window.
    lookups: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
    /// Ids of stores whose kiosks just sent a batch (the dashboard's live updates).
    changes: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Cancelled when the server begins its graceful shutdown: long-lived responses (the
    /// dashboard's event streams) end so that the shutdown does not wait on them forever.
    closing: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// State over `store`; admin routes answer 403 unless `admin_token` is set.
    pub fn new(
        store: SharedStore,
        admin_token: Option<String>,
    ) -> Result<Self, ingest::ValidatorError> {
        Ok(AppState {
            store,
            validator: Arc::new(Validator::new()?),
            admin_token: admin_token.map(Arc::from),
            enroll_failures: Arc::new(Mutex::new(HashMap::new())),
            lookups: Arc::new(Mutex::new(HashMap::new())),
            changes: tokio::sync::broadcast::channel(256).0,
            closing: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Cancelled when the server is shutting down (see [`crate::serve`]).
    pub fn closing(&self) -> &tokio_util::sync::CancellationToken {
        &self.closing
    }

    /// The admin token, if admin routes are enabled.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Store ids, each sent after a batch from one of that store's kiosks was stored. A lagging
    /// receiver should refresh everything.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.changes.subscribe()
    }
}

/// The address a request came from (set by [`crate::serve`]'s listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// An error answer: status, [`ErrorBody`] and maybe `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error answer with `status`, `error` and a message saying what to do.
    pub fn new(status: StatusCode, error: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
            },
            retry_after: None,
        }
    }
    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The message it tells the caller.
    pub fn message(&self) -> &str {
        &self.body.message
    }
    fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Malformed, message)
    }
    fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
            StoreError::Replayed => replayed(),
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "store failed");
                let mut err = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "the endpoint's database is unavailable; retry later",
                );
                err.retry_after = Some(5);
                err
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

fn now_ms() -> i64 {
    ingest::unix_ms(OffsetDateTime::now_utc())
}

fn method_router(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    Some(match (method, path) {
        ("GET", "/openapi.json") => get(openapi),
        ("GET", "/v1/health") => get(health),
        ("POST", "/v1/enroll") => post(enroll),
        ("POST", "/v1/kiosks/{kiosk_id}/batches") => {
            post(post_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
        }
        ("GET", "/v1/kiosks/{kiosk_id}/feed") => get(get_feed),
        ("GET", "/v1/kiosks/{kiosk_id}/profiles/{card_token}") => get(get_profile),
        ("GET", "/v1/stats") => get(stats),
        ("POST", "/v1/admin/stores") => post(admin_store),
        ("POST", "/v1/admin/enroll-codes") => post(admin_enroll_code),
        ("POST", "/v1/admin/customers") => post(admin_customer),
        ("GET", "/v1/admin/customers/{card_token}") => get(admin_get_customer),
        ("PUT", "/v1/admin/customers/{card_token}/segment") => put(admin_segment),
        ("POST", "/v1/admin/customers/{card_token}/erase") => post(admin_erase),
        ("POST", "/v1/admin/segments/recompute") => post(admin_recompute),
        ("GET", "/v1/admin/campaigns") => get(admin_campaigns),
        ("POST", "/v1/admin/campaigns") => post(admin_upsert_campaign),
        _ => return None,
    })
}

/// The router of every route in [`ROUTES`], with gzip response compression.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] plus `extra` routes sharing its state and layers: the extension point for the
/// dashboard (`/dashboard/...`), which keeps its own route table and OpenAPI paths.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let mut by_path: Vec<(&str, MethodRouter<AppState>)> = Vec::new();
    for (method, path) in ROUTES {
        let Some(mr) = method_router(method, path) else {
            // ROUTES and method_router are kept together; the route test catches a gap.
            tracing::error!(method, path, "route in ROUTES has no handler");
            continue;
        };
        match by_path.iter_mut().find(|(p, _)| p == path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(mr),
            None => by_path.push((path, mr)),
        }
    }
    let mut router = extra;
    for (path, mr) in by_path {
        router = router.route(path, mr);
    }
    router
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .with_state(state)
}

/// Whether a route of [`ROUTES`] has a handler (for the route table test).
pub fn has_handler(method: &str, path: &str) -> bool {
    method_router(method, path).is_some()
}

async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

async fn health(State(st): State<AppState>) -> Json<HealthResponse> {
    let ok = st.store.tenant_key().await.is_ok();
    Json(HealthResponse {
        status: if ok { "ok" } else { "degraded" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL_VERSION,
        store: st.store.kind().as_str().to_owned(),
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
    store: &SharedStore,
    store_id: &str,
    ttl: Duration,
) -> Result<(String, i64), StoreError> {
    let code = new_enroll_code();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_ms = now_ms().saturating_add(ttl_ms);
    store
        .create_enroll_code(hash_enroll_code(&code), store_id.to_owned(), expires_ms)
        .await?;
    Ok((code, expires_ms))
}

impl AppState {
    fn enroll_blocked(&self, ip: IpAddr) -> Option<u64> {
        let mut map = self
            .enroll_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (start, _)| now.duration_since(*start) < ENROLL_WINDOW);
        match map.get(&ip) {
            Some((start, n)) if *n >= ENROLL_ATTEMPTS => Some(
                (ENROLL_WINDOW.saturating_sub(now.duration_since(*start)))
                    .as_secs()
                    .max(1),
            ),
            _ => None,
        }
    }

    /// Counts a live lookup of `kiosk`; `Some(seconds to wait)` past the limit.
    fn lookup_blocked(&self, kiosk: &str) -> Option<u64> {
        let mut map = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (start, _)| now.duration_since(*start) < LOOKUP_WINDOW);
        let (start, n) = map.entry(kiosk.to_owned()).or_insert((now, 0));
        if *n >= LOOKUPS_PER_WINDOW {
            return Some(
                LOOKUP_WINDOW
                    .saturating_sub(now.duration_since(*start))
                    .as_secs()
                    .max(1),
            );
        }
        *n += 1;
        None
    }

    fn enroll_failed(&self, ip: IpAddr) {
        let mut map = self
            .enroll_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(ip).or_insert((Instant::now(), 0)).1 += 1;
    }
}

async fn enroll(
    State(st): State<AppState>,
    req: Request,
) -> Result<Json<EnrollResponse>, ApiError> {
    let ip = req
        .extensions()
        .get::<ConnectInfo<PeerAddr>>()
        .map(|c| c.0.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if let Some(wait) = st.enroll_blocked(ip) {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!("too many wrong enrollment codes from {ip}; wait {wait} s"),
        );
        err.retry_after = Some(wait);
        return Err(err);
    }
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| ApiError::too_large("enrollment body over 16 KiB"))?;
    let body: EnrollRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::malformed(format!("enrollment body is not an EnrollRequest: {e}"))
    })?;
    let kiosk_id = format!("k-{}", hex::encode(rand::random::<[u8; 6]>()));
    let secret = Key32::from_bytes(rand::random());
    let kiosk = NewKiosk {
        id: kiosk_id.clone(),
        secret: secret.clone(),
        hardware_profile: body.hardware_profile,
        firmware_version: body.firmware_version,
    };
    let redeemed = st
        .store
        .redeem_enroll_code(hash_enroll_code(&body.code), now_ms(), kiosk)
        .await?;
    let Some(store) = redeemed else {
        st.enroll_failed(ip);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCode,
            "enrollment code is wrong, already used or expired; ask for a new one (crm-endpoint enroll-code)",
        ));
    };
    tracing::info!(kiosk_id, store = store.id, "kiosk enrolled");
    Ok(Json(EnrollResponse {
        kiosk_id,
        device_secret: secret,
        tenant_key: st.store.tenant_key().await?,
        store_id: store.id,
        store_name: store.name,
    }))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies a kiosk request's signature, timestamp, kiosk id and freshness (see
/// [`kiosk_protocol::auth`]); `body` is the body as received.
async fn authenticate(
    st: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    path_kiosk: &str,
) -> Result<KioskRecord, ApiError> {
    let (kiosk, guard) = verify_request(st, method, uri, headers, body, path_kiosk).await?;
    // Reads are harmless to repeat; only requests that change state are refused as replays.
    if method != Method::GET
        && !st
            .store
            .remember_signature(guard.signature, guard.expires_ms, guard.now_ms)
            .await?
    {
        return Err(replayed());
    }
    Ok(kiosk)
}

/// [`authenticate`] but for remembering the signature, which the caller does (a batch does it
/// in the transaction that stores it).
async fn verify_request(
    st: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    path_kiosk: &str,
) -> Result<(KioskRecord, ReplayGuard), ApiError> {
    let unauthenticated =
        |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, m);
    let (Some(kiosk_id), Some(ts), Some(sig)) = (
        header_str(headers, HEADER_KIOSK_ID),
        header_str(headers, HEADER_TIMESTAMP),
        header_str(headers, HEADER_SIGNATURE),
    ) else {
        return Err(unauthenticated(
            "missing x-kiosk-id, x-kiosk-timestamp or x-kiosk-signature; kiosk requests must be signed",
        ));
    };
    let ts: i64 = ts
        .parse()
        .map_err(|_| unauthenticated("x-kiosk-timestamp is not unix seconds"))?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if let Err(e) = auth::check_timestamp(ts, now) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::StaleTimestamp,
            e.to_string(),
        ));
    }
    let bad_signature =
        |m: String| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::BadSignature, m);
    let Some(kiosk) = st.store.kiosk(kiosk_id.to_owned()).await? else {
        return Err(bad_signature(
            "unknown kiosk or bad signature; enroll the kiosk again".into(),
        ));
    };
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| uri.path());
    match auth::verify(
        &kiosk.secret,
        method.as_str(),
        path_and_query,
        ts,
        body,
        sig,
    ) {
        Ok(()) => {}
        Err(e @ (AuthError::BadSignature | AuthError::MalformedSignature)) => {
            return Err(bad_signature(e.to_string()));
        }
        Err(e) => return Err(bad_signature(e.to_string())),
    }
    if kiosk.id != path_kiosk {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("kiosk {} may not act as kiosk {path_kiosk}", kiosk.id),
        ));
    }
    let guard = ReplayGuard {
        signature: sig.to_ascii_lowercase(),
        expires_ms: (ts + auth::REPLAY_WINDOW_S + 1).saturating_mul(1000),
        now_ms: now_ms(),
    };
    Ok((kiosk, guard))
}

fn replayed() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::Replay,
        "this signed request was already received; sign a retry with a fresh timestamp",
    )
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
    let batch: BatchRequest<serde_json::Value> = serde_json::from_slice(&json)
        .map_err(|e| ApiError::malformed(format!("body is not a BatchRequest: {e}")))?;
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

async fn post_batch(
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
    let (kiosk, guard) = verify_request(&st, &method, &uri, &headers, &body, &path_kiosk).await?;
    let received_ms = now_ms();
    let batch = decode_batch(
        header_str(&headers, header::CONTENT_ENCODING.as_str()),
        &body,
    )?;
    let skew = ingest::update_skew(kiosk.skew, &batch.kiosk_clock, received_ms);
    let mut results: Vec<Option<EventResult>> = Vec::with_capacity(batch.events.len());
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    for (i, raw) in batch.events.iter().enumerate() {
        match st.validator.check(raw, &kiosk.id, &batch.kiosk_clock, skew) {
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
        .store
        .ingest(IngestBatch {
            kiosk_id: kiosk.id.clone(),
            store_id: kiosk.store_id.clone(),
            received_ms,
            skew: Some(skew),
            backlog: batch.backlog,
            events: valid,
            replay: Some(guard),
        })
        .await?;
    // Nobody listening is the normal case.
    let _ = st.changes.send(Arc::from(kiosk.store_id.as_str()));
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
    State(st): State<AppState>,
    Path(path_kiosk): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Json<FeedResponse>, ApiError> {
    let kiosk = authenticate(&st, &method, &uri, &headers, &[], &path_kiosk).await?;
    let Query(q) = query.map_err(|e| ApiError::malformed(format!("feed query: {e}")))?;
    st.store.touch_kiosk(kiosk.id.clone(), now_ms()).await?;
    let limit = q.limit.clamp(1, MAX_FEED_LIMIT);
    let page = st.store.feed(kiosk.store_id, q.cursor, limit).await?;
    Ok(Json(FeedResponse {
        items: page.items,
        next_cursor: page.next_cursor,
        more: page.more,
    }))
}

/// A kiosk's live lookup of a card its cache does not know (see [`crate::store::Store::lookup_profile`]).
async fn get_profile(
    State(st): State<AppState>,
    Path((path_kiosk, card_token)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<ProfileLookupResponse>, ApiError> {
    let kiosk = authenticate(&st, &method, &uri, &headers, &[], &path_kiosk).await?;
    let token: CardToken = card_token
        .parse()
        .map_err(|e| ApiError::malformed(format!("card token in the path: {e}")))?;
    if let Some(wait) = st.lookup_blocked(&kiosk.id) {
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!(
                "more than {LOOKUPS_PER_WINDOW} profile lookups a minute from kiosk {}; wait {wait} s",
                kiosk.id
            ),
        );
        err.retry_after = Some(wait);
        return Err(err);
    }
    let profile = st.store.lookup_profile(kiosk.store_id, token).await?;
    Ok(Json(ProfileLookupResponse { profile }))
}

/// Checks the admin token (`x-admin-token` or `Authorization: Bearer`); 403 otherwise.
pub(crate) fn require_admin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let forbidden = |m: &str| ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, m);
    let Some(expected) = &st.admin_token else {
        return Err(forbidden(
            "admin api is disabled; start the endpoint with --admin-token",
        ));
    };
    let given = header_str(headers, HEADER_ADMIN_TOKEN).or_else(|| {
        header_str(headers, header::AUTHORIZATION.as_str()).and_then(|v| v.strip_prefix("Bearer "))
    });
    match given {
        Some(g) if bool::from(g.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        _ => Err(forbidden(
            "missing or wrong admin token (x-admin-token or Authorization: Bearer)",
        )),
    }
}

fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError::malformed(format!("could not read the body: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| ApiError::malformed(format!("body: {e}")))
}

fn token_param(s: &str) -> Result<CardToken, ApiError> {
    s.parse()
        .map_err(|e| ApiError::malformed(format!("card token in path: {e}")))
}

/// Query of `/v1/stats`.
#[derive(Debug, Deserialize)]
struct StatsQuery {
    store: String,
}

async fn stats(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    let Query(q) =
        query.map_err(|e| ApiError::malformed(format!("stats query needs ?store=ID: {e}")))?;
    if st.store.store(q.store.clone()).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "store {:?} does not exist",
            q.store
        )));
    }
    Ok(Json(st.store.stats(q.store).await?).into_response())
}

async fn admin_store(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    require_admin(&st, &headers)?;
    let req: StoreRequest = json_body(body)?;
    if let Some(tz) = req.timezone.as_deref()
        && !crate::store::dashboard::known_timezone(tz)
    {
        return Err(ApiError::malformed(format!(
            "timezone {tz:?} is not an IANA time zone (e.g. Europe/Madrid)"
        )));
    }
    st.store
        .upsert_store(StoreRecord {
            id: req.id.clone(),
            name: req.name,
        })
        .await?;
    if req.timezone.is_some() {
        st.store.set_store_timezone(req.id, req.timezone).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /v1/admin/stores`: a store and, optionally, its time zone.
#[derive(Debug, Deserialize)]
struct StoreRequest {
    id: String,
    name: String,
    /// IANA time zone of the dashboard's hours; absent leaves it as it is.
    #[serde(default)]
    timezone: Option<String>,
}

/// Body of `POST /v1/admin/enroll-codes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollCodeRequest {
    store_id: String,
    #[serde(default = "default_ttl_s")]
    ttl_s: u64,
}

fn default_ttl_s() -> u64 {
    24 * 3600
}

/// Answer of `POST /v1/admin/enroll-codes`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrollCodeResponse {
    /// The one-time code.
    pub code: String,
    /// Expiry, unix ms.
    pub expires_ms: i64,
}

async fn admin_enroll_code(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EnrollCodeResponse>, ApiError> {
    require_admin(&st, &headers)?;
    let req: EnrollCodeRequest = json_body(body)?;
    let (code, expires_ms) =
        issue_enroll_code(&st.store, &req.store_id, Duration::from_secs(req.ttl_s)).await?;
    Ok(Json(EnrollCodeResponse { code, expires_ms }))
}

async fn admin_customer(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    require_admin(&st, &headers)?;
    let customer: NewCustomer = json_body(body)?;
    if st.store.store(customer.store_id.clone()).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "store {:?} does not exist",
            customer.store_id
        )));
    }
    st.store.upsert_customer(customer, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_get_customer(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&st, &headers)?;
    match st.store.customer(token_param(&token)?).await? {
        Some(c) => Ok(Json(c).into_response()),
        None => Err(ApiError::not_found("no customer with this card token")),
    }
}

/// Body of `PUT /v1/admin/customers/{card_token}/segment`: a segment, or null to compute it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentRequest {
    segment: Option<String>,
}

async fn admin_segment(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    require_admin(&st, &headers)?;
    let req: SegmentRequest = json_body(body)?;
    if st
        .store
        .set_segment(token_param(&token)?, req.segment, now_ms())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no customer with this card token"))
    }
}

async fn admin_erase(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&st, &headers)?;
    if st
        .store
        .erase_customer(token_param(&token)?, now_ms())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "no customer or event with this card token",
        ))
    }
}

async fn admin_recompute(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&st, &headers)?;
    let changed = st.store.recompute_segments(now_ms()).await?;
    Ok(Json(serde_json::json!({ "changed": changed })))
}

async fn admin_campaigns(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<Campaign>>, ApiError> {
    require_admin(&st, &headers)?;
    Ok(Json(st.store.campaigns().await?))
}

async fn admin_upsert_campaign(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    require_admin(&st, &headers)?;
    let campaign: Campaign = json_body(body)?;
    crate::campaigns::check(&campaign).map_err(|e| ApiError::malformed(e.to_string()))?;
    st.store.upsert_campaign(campaign, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
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

    #[test]
    fn every_route_has_a_handler() {
        for (m, p) in ROUTES {
            assert!(has_handler(m, p), "{m} {p}");
        }
    }
}
