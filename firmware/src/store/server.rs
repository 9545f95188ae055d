//! The store listener: what this kiosk answers its peers. Every request must be signed by a
//! kiosk of the store's list with the store key; anything else is refused before it is read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kiosk_protocol::auth;
use kiosk_protocol::wire::{HEADER_KIOSK_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use serde::Deserialize;

use super::{NumberRequest, OpsPage, StoreLink, decode_heads};

/// Most ops in one answer.
const PAGE: usize = 500;
/// Longest a pull may wait for new ops.
const MAX_WAIT: Duration = Duration::from_secs(25);

#[derive(Clone)]
struct ServerState {
    link: Arc<StoreLink>,
    /// Signatures of state-changing requests seen within the replay window.
    seen: Arc<Mutex<HashMap<String, i64>>>,
}

/// The store listener's routes.
pub fn router(link: Arc<StoreLink>) -> Router {
    Router::new()
        .route("/store/v1/ops", get(ops))
        .route("/store/v1/numbers", post(numbers))
        .route("/store/v1/hello", get(hello))
        .with_state(ServerState {
            link,
            seen: Arc::new(Mutex::new(HashMap::new())),
        })
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    Refusal(status, message.into()).into_response()
}

/// A refused request: the status and why.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// Checks the request's signature; returns the peer's id.
fn authenticate(
    state: &ServerState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, Refusal> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Refusal(StatusCode::UNAUTHORIZED, format!("missing {name}")))
    };
    let peer = header(HEADER_KIOSK_ID)?;
    let timestamp: i64 = header(HEADER_TIMESTAMP)?.parse().map_err(|_| {
        Refusal(
            StatusCode::UNAUTHORIZED,
            "x-kiosk-timestamp is not a number".into(),
        )
    })?;
    let signature = header(HEADER_SIGNATURE)?;
    if peer == state.link.me || !state.link.members.iter().any(|m| m.id == peer) {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            format!("{peer} is not a kiosk of this store"),
        ));
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    auth::verify(
        &state.link.key,
        method.as_str(),
        path,
        timestamp,
        body,
        &signature,
    )
    .map_err(|e| Refusal(StatusCode::UNAUTHORIZED, e.to_string()))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    auth::check_timestamp(timestamp, now)
        .map_err(|e| Refusal(StatusCode::UNAUTHORIZED, e.to_string()))?;
    if method != Method::GET {
        let mut seen = state
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.retain(|_, at| (now - *at).abs() <= auth::REPLAY_WINDOW_S);
        if seen.insert(signature, timestamp).is_some() {
            return Err(Refusal(StatusCode::CONFLICT, "replay".into()));
        }
    }
    Ok(peer)
}

#[derive(Debug, Deserialize)]
struct OpsQuery {
    #[serde(default)]
    after: String,
    #[serde(default)]
    wait_ms: u64,
}

/// The ops the asker lacks; with `wait_ms`, waits (long poll) until there are some.
async fn ops(
    State(state): State<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<OpsQuery>,
) -> Response {
    if let Err(r) = authenticate(&state, &method, &uri, &headers, b"") {
        return r.into_response();
    }
    let after = decode_heads(&q.after);
    let mut grown = state.link.grown.subscribe();
    let wait = Duration::from_millis(q.wait_ms).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        grown.borrow_and_update();
        let (ops, firsts) = match state.link.log.read() {
            Ok(log) => (log.after(&after, PAGE), log.firsts()),
            Err(_) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "op log unavailable"),
        };
        if !ops.is_empty() || tokio::time::Instant::now() >= deadline {
            return axum::Json(OpsPage {
                from: state.link.me.clone(),
                ops,
                firsts,
            })
            .into_response();
        }
        if tokio::time::timeout_at(deadline, grown.changed())
            .await
            .is_err()
        {
            continue;
        }
    }
}

/// The next number of a service (the sequencer only).
async fn numbers(
    State(state): State<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authenticate(&state, &method, &uri, &headers, &body) {
        return r.into_response();
    }
    if !state.link.is_sequencer() {
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "{} is not the store's sequencer ({} is)",
                state.link.me,
                state.link.sequencer().id
            ),
        );
    }
    let Ok(req) = serde_json::from_slice::<NumberRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"service\": \"A\"}");
    };
    let Some(sequencer) = state.link.numbers().cloned() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the kiosk is starting");
    };
    // One small journal transaction (an fsync): off the async workers.
    let answer =
        tokio::task::spawn_blocking(move || sequencer.allocate_for(&req.service, req.turn_id))
            .await;
    match answer {
        Ok(Ok(a)) => axum::Json(a).into_response(),
        Ok(Err(e)) => refuse(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "the kiosk is stopping"),
    }
}

/// Who answers, and what it holds (a technician's check that two kiosks see each other).
async fn hello(
    State(state): State<ServerState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&state, &method, &uri, &headers, b"") {
        return r.into_response();
    }
    let heads = state.link.log.read().map(|l| l.heads()).unwrap_or_default();
    axum::Json(serde_json::json!({
        "kiosk": state.link.me,
        "sequencer": state.link.is_sequencer(),
        "heads": heads,
    }))
    .into_response()
}
