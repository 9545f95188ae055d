//! The routes, one router per page (kiosk, counter, lobby) merged into one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Form, Path, Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use super::auth::{self, COOKIE_NAME, Login, StaffWho};
use super::{AppState, LobbyView, assets};
use crate::executor::staff::{StaffCommand, StaffRequest};
use kiosk_core::journey::{Input, Touch};

/// How long the counter page waits for the runtime to carry out a staff action.
const STAFF_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive comments on idle event streams (lets the server notice vanished clients).
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// The whole UI: kiosk screen, counter page, lobby display, their APIs and assets.
pub fn router(state: AppState) -> Router {
    let kiosk = Router::new()
        .route("/", get(kiosk_page))
        .route("/api/kiosk/view", get(kiosk_view))
        .route("/api/kiosk/stream", get(kiosk_stream))
        .route("/api/kiosk/touch", post(kiosk_touch))
        .route("/api/kiosk/speak", post(kiosk_speak))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            kiosk_only_from_loopback,
        ));
    let counter = Router::new()
        .route("/counter", get(counter_page))
        .route("/counter/login", post(counter_login))
        .route("/counter/logout", post(counter_logout))
        .route("/api/counter/me", get(counter_me))
        .route("/api/counter/board", get(counter_board))
        .route("/api/counter/stream", get(counter_stream))
        .route("/api/counter/command", post(counter_command));
    let lobby = Router::new()
        .route("/lobby", get(lobby_page))
        .route("/api/lobby/view", get(lobby_view))
        .route("/api/lobby/stream", get(lobby_stream));
    let stepin = Router::new()
        .route("/api/stepin/v1/turns", post(stepin_turn))
        .route("/api/stepin/v1/assistance", post(stepin_assistance));
    Router::new()
        .merge(kiosk)
        .merge(counter)
        .merge(lobby)
        .merge(stepin)
        .merge(super::store_routes::router())
        .route("/assets/{*path}", get(asset))
        .route("/api/health", get(|| async { "ok" }))
        .route("/api/status", get(status_json))
        .route("/metrics", get(status_metrics))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            known_host_only,
        ))
        .with_state(state)
}

/// Whether `host` (a `Host` header: name or address, with or without a port) names this kiosk:
/// an IP address, `localhost`, the machine's own name or `NAME.local`, or a configured name.
/// A name that only resolves to the kiosk (DNS rebinding: a page of another site whose name
/// now points at 127.0.0.1 or the kiosk's LAN address) does not.
pub(super) fn host_allowed(host: &str, allowed: &[String], own: Option<&str>) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(n, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                n
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || own.is_some_and(|o| {
            let o = o.to_ascii_lowercase();
            name == o || name == format!("{o}.local")
        })
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(&name))
}

/// Refuses a request whose `Host` names another site ([`host_allowed`]).
async fn known_host_only(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    if let Some(host) = host {
        let own = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
        if !host_allowed(&host, &app.0.settings.allowed_hosts, own.as_deref()) {
            tracing::warn!(%host, "request for another host name refused (DNS rebinding?)");
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "this kiosk does not answer to that host name (ui.allowed_hosts)",
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null` with
    // the login form's own POST, which the cross-site check (auth::same_site) must refuse; with
    // `same-origin` the page's own posts carry its origin and nothing leaks to other sites.
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    res
}

/// The kiosk screen shows the customer's name: only the kiosk's own browser may see it.
async fn kiosk_only_from_loopback(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if app.0.settings.kiosk_loopback_only {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if !peer.is_some_and(|ip| ip.is_loopback()) {
            return (
                StatusCode::FORBIDDEN,
                "the kiosk screen is only served to the kiosk itself",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// Who may read the kiosk's status: the kiosk itself (`kiosk status`, a local exporter) or
/// signed-in staff (or a scraper holding the staff token). It names no customer, but tells an
/// attacker on the LAN which devices are down.
fn deny_status(app: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<Response> {
    if peer.is_some_and(|p| p.ip().is_loopback()) {
        return None;
    }
    deny_unless_staff(app, headers)
}

async fn status_snapshot(app: &AppState) -> Result<crate::status::Status, Response> {
    let Some(source) = app.0.status.get().cloned() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the kiosk is still starting",
        )
            .into_response());
    };
    tokio::task::spawn_blocking(move || source.snapshot())
        .await
        .map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "status collection failed",
            )
                .into_response()
        })
}

async fn status_json(State(app): State<AppState>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(r) = deny_status(&app, peer, req.headers()) {
        return r;
    }
    match status_snapshot(&app).await {
        Ok(s) => Json(s).into_response(),
        Err(r) => r,
    }
}

async fn status_metrics(State(app): State<AppState>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(r) = deny_status(&app, peer, req.headers()) {
        return r;
    }
    match status_snapshot(&app).await {
        Ok(s) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            s.to_prometheus(),
        )
            .into_response(),
        Err(r) => r.into_response(),
    }
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    assets::serve(&path, &headers)
}

// ---- kiosk ---------------------------------------------------------------------------------

async fn kiosk_page(headers: HeaderMap) -> Response {
    assets::serve("kiosk.html", &headers)
}

async fn kiosk_view(State(app): State<AppState>) -> Response {
    Json(app.0.channels.screen.borrow().clone()).into_response()
}

/// The screen's views (`view` events) and the keypad's keys (`key` events, e.g.
/// `{"key":"next"}`, `{"key":"digit","n":2}`) on one stream.
async fn kiosk_stream(
    State(app): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let views = watch_events(app.0.channels.screen.clone(), |v| {
        serde_json::to_string(v).ok()
    });
    let keys = futures::stream::unfold(app.0.channels.keys.subscribe(), |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(key) => {
                    let data = serde_json::to_string(&key).unwrap_or_default();
                    return Some((Ok(SseEvent::default().event("key").data(data)), rx));
                }
                // A screen too slow to take keys loses the oldest; the newest count.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    // The stream holds the screen's presence while it is open: the watchdog counts on it.
    let client = app.0.channels.screen_presence.connect();
    let stream = futures::stream::select(views, keys).map(move |event| {
        let _held = &client;
        event
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(SCREEN_KEEP_ALIVE))
}

/// The kiosk screen's keep-alive: a browser that died is noticed when a write to it fails, so
/// this bounds how late the screen watchdog learns of it.
const SCREEN_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the kiosk page asks the kiosk to say: the text it shows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpeakRequest {
    text: String,
    /// What the customer typed into the focused field: said only with private listening.
    #[serde(default)]
    personal: Option<String>,
    lang: kiosk_drivers::speech::Lang,
    class: kiosk_drivers::speech::Class,
    #[serde(default)]
    new_screen: bool,
}

async fn kiosk_speak(State(app): State<AppState>, Json(req): Json<SpeakRequest>) -> Response {
    let Some(speech) = &app.0.channels.speech else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let view = app.0.channels.screen.borrow().clone();
    match speech.say(
        &view,
        req.class,
        &req.text,
        req.personal.as_deref(),
        req.lang,
        req.new_screen,
    ) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
    }
}

async fn kiosk_touch(State(app): State<AppState>, Json(touch): Json<Touch>) -> Response {
    match app.0.channels.inputs.send(Input::Touch(touch)).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the journey engine is not running",
        )
            .into_response(),
    }
}

// ---- lobby ---------------------------------------------------------------------------------

async fn lobby_page(headers: HeaderMap) -> Response {
    assets::serve("lobby.html", &headers)
}

async fn lobby_view(State(app): State<AppState>) -> Response {
    let board = app.0.channels.board.borrow().clone();
    Json(LobbyView::from_board(&app.0.settings.store_name, &board)).into_response()
}

async fn lobby_stream(
    State(app): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let store = app.0.settings.store_name.clone();
    sse(app.0.channels.board.clone(), move |b| {
        serde_json::to_string(&LobbyView::from_board(&store, b)).ok()
    })
}

// ---- counter -------------------------------------------------------------------------------

async fn counter_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if app.is_staff(&headers) {
        assets::serve("counter.html", &headers)
    } else {
        assets::serve("login.html", &headers)
    }
}

#[derive(Deserialize)]
struct PinForm {
    pin: String,
}

/// `Some(403 response)` when a state-changing request comes from another site's page.
pub(super) fn deny_cross_site(headers: &HeaderMap) -> Option<Response> {
    (!auth::same_site(headers)).then(|| {
        (
            StatusCode::FORBIDDEN,
            "refused: this request comes from another site's page",
        )
            .into_response()
    })
}

/// The address a request came from (unspecified when served without peer addresses, as the
/// in-process router tests do).
struct Peer(std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip()),
        ))
    }
}

async fn counter_login(
    State(app): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(form): Form<PinForm>,
) -> Response {
    if let Some(r) = deny_cross_site(&headers) {
        return r;
    }
    match app.login(&form.pin, peer) {
        Login::Granted(session) => {
            let cookie = format!(
                "{COOKIE_NAME}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                auth::SESSION_TTL.as_secs()
            );
            let mut res = (StatusCode::SEE_OTHER, [(LOCATION, "/counter")]).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(SET_COOKIE, v);
            }
            res
        }
        Login::Denied => {
            (StatusCode::SEE_OTHER, [(LOCATION, "/counter?error=pin")]).into_response()
        }
        Login::Locked(_) => {
            (StatusCode::SEE_OTHER, [(LOCATION, "/counter?error=locked")]).into_response()
        }
        Login::Disabled => (
            StatusCode::FORBIDDEN,
            "the counter page is off: set a staff PIN in the kiosk config (ui.staff_pin_sha256 or [[ui.staff]])",
        )
            .into_response(),
    }
}

async fn counter_logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = deny_cross_site(&headers) {
        return r;
    }
    app.logout(&headers);
    let cookie = format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    let mut res = (StatusCode::SEE_OTHER, [(LOCATION, "/counter")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(SET_COOKIE, v);
    }
    res
}

/// `Some(401 response)` unless the request comes from logged-in staff.
pub(super) fn deny_unless_staff(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    (!app.is_staff(headers)).then(not_staff)
}

fn not_staff() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        "log in on /counter with the staff PIN",
    )
        .into_response()
}

/// Who is logged in on the counter page: `{"staff": {"id", "name"}}` for a member's own PIN,
/// `{"staff": null}` for the store-wide PIN or the bearer token.
async fn counter_me(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match app.staff_who(&headers) {
        None => not_staff(),
        Some(StaffWho::Member { id, name }) => {
            Json(serde_json::json!({ "staff": { "id": id, "name": name } })).into_response()
        }
        Some(StaffWho::Store | StaffWho::Token) => {
            Json(serde_json::json!({ "staff": null })).into_response()
        }
    }
}

async fn counter_board(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = deny_unless_staff(&app, &headers) {
        return r;
    }
    Json(app.0.channels.board.borrow().clone()).into_response()
}

async fn counter_stream(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = deny_unless_staff(&app, &headers) {
        return r;
    }
    sse(app.0.channels.board.clone(), |b| {
        serde_json::to_string(b).ok()
    })
    .into_response()
}

/// A staff action as the counter page posts it.
#[derive(Debug, Deserialize)]
struct CommandBody {
    counter: String,
    command: StaffCommand,
}

#[derive(Debug, Serialize)]
struct CommandAnswer {
    ok: bool,
    label: Option<String>,
    message: Option<String>,
}

async fn counter_command(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<CommandBody>,
) -> Response {
    if let Some(r) = deny_cross_site(&headers) {
        return r;
    }
    let Some(who) = app.staff_who(&headers) else {
        return not_staff();
    };
    let counter = body.counter.trim().to_owned();
    if counter.is_empty() || counter.chars().count() > 16 {
        return (
            StatusCode::BAD_REQUEST,
            "name the counter (1 to 16 characters)",
        )
            .into_response();
    }
    let (reply, answer) = oneshot::channel();
    let request = StaffRequest {
        counter,
        staff: who.member_id(),
        command: body.command,
        reply,
    };
    if app.0.channels.staff.send(request).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the kiosk is not taking staff actions right now",
        )
            .into_response();
    }
    match tokio::time::timeout(STAFF_REPLY_TIMEOUT, answer).await {
        Ok(Ok(Ok(ack))) => Json(CommandAnswer {
            ok: true,
            label: ack.label,
            message: ack.message,
        })
        .into_response(),
        Ok(Ok(Err(message))) => (
            StatusCode::CONFLICT,
            Json(CommandAnswer {
                ok: false,
                label: None,
                message: Some(message),
            }),
        )
            .into_response(),
        Ok(Err(_)) | Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "the kiosk did not answer the staff action; try again",
        )
            .into_response(),
    }
}

// ---- Step-In ---------------------------------------------------------------------------------

/// A Step-In refusal or failure: `{"error": code, "message": words}`.
struct StepInError(StatusCode, &'static str, String);

impl IntoResponse for StepInError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(serde_json::json!({ "error": self.1, "message": self.2 })),
        )
            .into_response()
    }
}

/// Checks a Step-In request's signature; returns the device's id and name.
fn stepin_device(
    app: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, String), StepInError> {
    let Some(stepin) = app.0.stepin.get() else {
        return Err(StepInError(
            StatusCode::NOT_FOUND,
            "not_configured",
            "Step-In is not configured on this kiosk ([[stepin.devices]])".into(),
        ));
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    stepin
        .verify(
            "POST",
            path,
            |name| headers.get(name).and_then(|v| v.to_str().ok()),
            body,
            now,
        )
        .map(|d| (d.id.clone(), d.name.clone()))
        .map_err(|r| {
            tracing::warn!(code = r.code(), reason = %r, "Step-In request refused");
            let status = if matches!(r, crate::stepin::Refusal::TooMany) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            StepInError(status, r.code(), r.to_string())
        })
}

/// Hands a Step-In action to the executor under the device's id.
async fn stepin_command(
    app: &AppState,
    device: String,
    command: StaffCommand,
) -> Result<crate::executor::staff::StaffAck, StepInError> {
    let (reply, answer) = oneshot::channel();
    let request = StaffRequest {
        counter: device,
        staff: None,
        command,
        reply,
    };
    if app.0.channels.staff.send(request).await.is_err() {
        return Err(StepInError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the kiosk is not taking requests right now".into(),
        ));
    }
    match tokio::time::timeout(STAFF_REPLY_TIMEOUT, answer).await {
        Ok(Ok(Ok(ack))) => Ok(ack),
        Ok(Ok(Err(message))) => Err(StepInError(StatusCode::CONFLICT, "refused", message)),
        Ok(Err(_)) | Err(_) => Err(StepInError(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the kiosk did not answer in time; try again with a new nonce".into(),
        )),
    }
}

/// `POST /api/stepin/v1/turns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepInTurnBody {
    /// Service letter.
    service: String,
    /// Print at the kiosk (default) or answer with the ticket's link.
    #[serde(default = "yes")]
    print: bool,
}

fn yes() -> bool {
    true
}

async fn stepin_turn(
    State(app): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (device, _) = match stepin_device(&app, &uri, &headers, &body) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let req: StepInTurnBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return StepInError(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("expected {{\"service\": \"A\", \"print\": true}}: {e}"),
            )
            .into_response();
        }
    };
    let command = StaffCommand::StepInIssue {
        service: req.service,
        print: req.print,
    };
    match stepin_command(&app, device, command).await {
        Ok(ack) => match ack.turn {
            Some(turn) => Json(serde_json::json!({
                "turn": {
                    "label": turn.label,
                    "service": turn.service,
                    "position": turn.position,
                    "estimated_wait_s": turn.estimated_wait_s,
                    "estimated_wait_min": turn.estimated_wait_s.div_ceil(60),
                    "link": turn.link,
                    "printed": turn.printed,
                }
            }))
            .into_response(),
            None => StepInError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_turn",
                "the kiosk answered without a turn".into(),
            )
            .into_response(),
        },
        Err(r) => r.into_response(),
    }
}

async fn stepin_assistance(
    State(app): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (device, name) = match stepin_device(&app, &uri, &headers, &body) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let command = StaffCommand::StepInAssist {
        place_name: name.clone(),
    };
    match stepin_command(&app, device, command).await {
        Ok(ack) => Json(serde_json::json!({
            "request_id": ack.request_id,
            "place_name": name,
            "message": ack.message,
        }))
        .into_response(),
        Err(r) => r.into_response(),
    }
}

// ---- server-sent events --------------------------------------------------------------------

/// A stream of `view` events: the current value at once, then every change. Changes that
/// arrive faster than the client reads are coalesced to the latest (watch semantics).
pub(super) fn sse<T, F>(
    rx: watch::Receiver<T>,
    render: F,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Option<String> + Send + 'static,
{
    Sse::new(watch_events(rx, render)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// `view` events: the watched value now, then at every change.
fn watch_events<T, F>(
    rx: watch::Receiver<T>,
    render: F,
) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Option<String> + Send + 'static,
{
    futures::stream::unfold((rx, render, true), |(mut rx, render, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let data = render(&rx.borrow_and_update()).unwrap_or_default();
        Some((
            Ok(SseEvent::default().event("view").data(data)),
            (rx, render, false),
        ))
    })
}
