//! HTTP plumbing every route module builds on: the shared [`AppState`], the error answer
//! [`ApiError`], the authentication extractors ([`auth`]), per-address attempt counters, the
//! [`Route`] type route modules describe their routes with, and the OpenAPI helpers ([`doc`]).
//!
//! Dependency direction: **http** ← route modules ([`crate::api::kiosk`], [`crate::api::admin`],
//! [`crate::dashboard`]) ← [`crate::routes`] (the one table) ← [`crate::openapi`] and the router.
//! Nothing here imports a route module.

pub mod auth;
pub mod doc;

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use kiosk_protocol::wire::{ErrorBody, ErrorCode};
use time::OffsetDateTime;

pub use auth::Admin;

use crate::db::{DbError, SharedDb};
use crate::ingest::{self, Validator};

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
    /// The database.
    pub db: SharedDb,
    pub(crate) validator: Arc<Validator>,
    admin_token: Option<Arc<str>>,
    /// Wrong enrollment codes per source address.
    pub(crate) enroll_failures: Arc<AttemptCounter<IpAddr>>,
    /// Live profile lookups per kiosk in the current window.
    pub(crate) lookups: Arc<AttemptCounter<String>>,
    /// Ids of stores whose kiosks just sent a batch (the dashboard's live updates).
    changes: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Cancelled when the server begins its graceful shutdown: long-lived responses (the
    /// dashboard's event streams) end so that the shutdown does not wait on them forever.
    closing: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// State over `db`; admin routes answer 403 unless `admin_token` is set.
    pub fn new(db: SharedDb, admin_token: Option<String>) -> Result<Self, ingest::ValidatorError> {
        Ok(AppState {
            db,
            validator: Arc::new(Validator::new()?),
            admin_token: admin_token.map(Arc::from),
            enroll_failures: Arc::new(AttemptCounter::new(ENROLL_ATTEMPTS, ENROLL_WINDOW)),
            lookups: Arc::new(AttemptCounter::new(LOOKUPS_PER_WINDOW, LOOKUP_WINDOW)),
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

    /// Tells the dashboard's live streams that `store_id` changed (nobody listening is normal).
    pub(crate) fn store_changed(&self, store_id: &str) {
        let _ = self.changes.send(Arc::from(store_id));
    }
}

/// Attempts per key (a source address, a kiosk) in a fixed window: the rate limits of
/// enrollment, live lookups and the dashboard's login.
pub(crate) struct AttemptCounter<K> {
    limit: u32,
    window: Duration,
    map: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Eq + Hash> AttemptCounter<K> {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        AttemptCounter {
            limit,
            window,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, u32)>> {
        // Counters only: a panic elsewhere cannot leave them half-changed.
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        map
    }

    fn wait(&self, start: Instant) -> u64 {
        self.window
            .saturating_sub(Instant::now().duration_since(start))
            .as_secs()
            .max(1)
    }

    /// `Some(seconds to wait)` when `key` used up its attempts in the current window.
    pub(crate) fn blocked(&self, key: &K) -> Option<u64> {
        match self.lock().get(key) {
            Some((start, n)) if *n >= self.limit => Some(self.wait(*start)),
            _ => None,
        }
    }

    /// Counts a (failed) attempt of `key`.
    pub(crate) fn count(&self, key: K) {
        self.lock().entry(key).or_insert((Instant::now(), 0)).1 += 1;
    }

    /// Counts an attempt of `key` unless it is over the limit: `Some(seconds to wait)` then.
    pub(crate) fn take(&self, key: K) -> Option<u64> {
        let mut map = self.lock();
        let (start, n) = map.entry(key).or_insert((Instant::now(), 0));
        if *n >= self.limit {
            return Some(self.wait(*start));
        }
        *n += 1;
        None
    }
}

/// The address a request came from (set by [`crate::serve`]'s listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The source address of a request (`0.0.0.0` when served without [`PeerAddr`]s, as in tests).
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<axum::extract::ConnectInfo<PeerAddr>>()
        .map(|c| c.0.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

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
    /// The same answer with `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Malformed, message)
    }
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }
    pub(crate) fn rate_limited(message: impl Into<String>, wait_s: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            message,
        )
        .retry_after(wait_s)
    }
    pub(crate) fn replayed() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            ErrorCode::Replay,
            "this signed request was already received; sign a retry with a fresh timestamp",
        )
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
            DbError::Replayed => ApiError::replayed(),
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "database failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "the endpoint's database is unavailable; retry later",
                )
                .retry_after(5)
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

/// Now, unix ms.
pub(crate) fn now_ms() -> i64 {
    ingest::unix_ms(OffsetDateTime::now_utc())
}

/// A header's value if it is text.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON body, 400 when unreadable.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError::malformed(format!("could not read the body: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| ApiError::malformed(format!("body: {e}")))
}

/// The HTTP methods the endpoint's routes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
}

impl Verb {
    /// `GET`, `POST`, `PUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
        }
    }
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
        }
    }
}

/// One route: method, path, handler and its OpenAPI operation. Route modules return these; the
/// router and `/openapi.json` are both built from the one table of them ([`crate::routes`]).
pub struct Route {
    /// The method.
    pub verb: Verb,
    /// The path (axum syntax, which is also OpenAPI's: `/v1/kiosks/{kiosk_id}/feed`).
    pub path: &'static str,
    /// The handler with its route-specific layers.
    pub handler: MethodRouter<AppState>,
    /// The OpenAPI operation object.
    pub doc: serde_json::Value,
}

impl Route {
    /// `verb path` served by `handler`, documented by `doc`.
    pub fn new<H, T>(verb: Verb, path: &'static str, handler: H, doc: serde_json::Value) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Route {
            verb,
            path,
            handler: on(verb.filter(), handler),
            doc,
        }
    }

    /// The same route with its handler changed by `f` (a layer of its own).
    pub fn map(mut self, f: impl FnOnce(MethodRouter<AppState>) -> MethodRouter<AppState>) -> Self {
        self.handler = f(self.handler);
        self
    }
}
