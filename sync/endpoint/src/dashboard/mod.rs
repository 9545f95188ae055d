//! The store managers' dashboard at `/dashboard`: a login form asking the admin token, then one
//! page that draws a store's live figures ([`crate::store::Dashboard`]) as inline SVG charts,
//! pushed by server-sent events whenever that store's kiosks send a batch (and every
//! [`REFRESH_EVERY`], as "last seen" ages and hours roll over).
//!
//! Data flow: kiosk batch → [`crate::api`] ingest → store → change notice
//! ([`AppState::subscribe_changes`]) → **dashboard** (SSE) → browser.
//!
//! The session cookie holds an expiry, a nonce and an HMAC under a key derived from the admin
//! token — never the token itself; changing the token ends every session. The page and its
//! script and style are embedded in the binary: no CDN, no build step, no external request (the
//! content security policy forbids them).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Form, Json, Router};
use futures::Stream;
use hmac::{Hmac, Mac};
use kiosk_protocol::wire::ErrorCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use crate::api::{ApiError, AppState, PeerAddr};
use crate::ingest::unix_ms;
use crate::store::dashboard::start_of_day_ms;
use crate::store::{Dashboard, DashboardQuery, StoreSummary};

/// Every dashboard route: `(method, path)`. Documented in `/openapi.json` beside
/// [`crate::api::ROUTES`].
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/dashboard"),
    ("POST", "/dashboard/login"),
    ("POST", "/dashboard/logout"),
    ("GET", "/dashboard/app.js"),
    ("GET", "/dashboard/app.css"),
    ("GET", "/dashboard/api/stores"),
    ("GET", "/dashboard/api/stores/{store}"),
    ("GET", "/dashboard/events"),
];

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "crm_dashboard";
/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Wrong tokens allowed per source address and window.
pub const LOGIN_ATTEMPTS: u32 = 5;
/// The window of [`LOGIN_ATTEMPTS`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The live page is refreshed at least this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);
/// Batches arriving closer together than this are pushed as one update.
pub const MIN_PUSH_INTERVAL: Duration = Duration::from_millis(500);

const PAGE_HTML: &str = include_str!("page.html");
const LOGIN_HTML: &str = include_str!("login.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the dashboard routes keep beside [`AppState`].
struct Dash {
    /// Mark the cookie `Secure` (the endpoint serves HTTPS).
    secure_cookie: bool,
    /// Wrong tokens per source address: (window start, count).
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

type DashState = Arc<Dash>;

/// The dashboard's routes, to pass to [`crate::api::router_with`]. `secure_cookie` when the
/// endpoint serves HTTPS (the session cookie is then never sent over plain HTTP).
pub fn routes(secure_cookie: bool) -> Router<AppState> {
    let dash: DashState = Arc::new(Dash {
        secure_cookie,
        failures: Mutex::new(HashMap::new()),
    });
    let mut router = Router::new();
    for (method, path) in ROUTES {
        match method_router(method, path) {
            Some(mr) => router = router.route(path, mr),
            // Kept together with ROUTES; the route test catches a gap.
            None => tracing::error!(method, path, "dashboard route has no handler"),
        }
    }
    router
        .layer(middleware::from_fn(security_headers))
        .layer(Extension(dash))
}

fn method_router(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    Some(match (method, path) {
        ("GET", "/dashboard") => get(page),
        ("POST", "/dashboard/login") => post(login),
        ("POST", "/dashboard/logout") => post(logout),
        ("GET", "/dashboard/app.js") => get(|| async { asset("text/javascript", APP_JS) }),
        ("GET", "/dashboard/app.css") => get(|| async { asset("text/css", APP_CSS) }),
        ("GET", "/dashboard/api/stores") => get(api_stores),
        ("GET", "/dashboard/api/stores/{store}") => get(api_store),
        ("GET", "/dashboard/events") => get(events),
        _ => return None,
    })
}

/// Whether a dashboard route has a handler (for the route table test).
pub fn has_handler(method: &str, path: &str) -> bool {
    method_router(method, path).is_some()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(&format!("{content_type}; charset=utf-8"))
                    .unwrap_or(HeaderValue::from_static("text/plain")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn login_page(status: StatusCode, message: &str) -> Response {
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"login-error\" role=\"alert\">{}</p>",
            escape(message)
        )
    };
    html(status, LOGIN_HTML.replace("{{message}}", &message))
}

fn now_s() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The HMAC key of sessions: derived from the admin token, so the cookie never holds the token
/// and a new token ends the old sessions.
fn session_key(admin_token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"crm-endpoint dashboard session v1\0");
    h.update(admin_token.as_bytes());
    h.finalize().into()
}

fn session_mac(admin_token: &str, payload: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&session_key(admin_token)).ok()?;
    mac.update(payload.as_bytes());
    Some(mac)
}

/// A new session value, valid until `expires_s`: `v1.EXPIRES.NONCE.MAC`.
pub fn new_session(admin_token: &str, expires_s: i64) -> String {
    let payload = format!("v1.{expires_s}.{}", hex::encode(rand::random::<[u8; 16]>()));
    let mac = session_mac(admin_token, &payload)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{payload}.{mac}")
}

/// When a session value made under `admin_token` expires, if it is genuine and not expired at
/// `now_s`.
pub fn session_expiry(admin_token: &str, value: &str, now_s: i64) -> Option<i64> {
    let (payload, mac) = value.rsplit_once('.')?;
    let mut parts = payload.split('.');
    let (Some("v1"), Some(expires), Some(_nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let expires: i64 = expires.parse().ok()?;
    let mac = hex::decode(mac).ok()?;
    session_mac(admin_token, payload)?.verify_slice(&mac).ok()?;
    (expires > now_s).then_some(expires)
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// How a request is allowed in: a session until its expiry, or the admin token itself (scripts).
enum Access {
    Session(i64),
    Token,
}

fn access(st: &AppState, headers: &HeaderMap) -> Option<Access> {
    let token = st.admin_token()?;
    if let Some(exp) =
        cookie(headers, SESSION_COOKIE).and_then(|v| session_expiry(token, v, now_s()))
    {
        return Some(Access::Session(exp));
    }
    crate::api::require_admin(st, headers)
        .ok()
        .map(|()| Access::Token)
}

fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
        "log in at /dashboard first (or send the admin token as x-admin-token)",
    )
}

fn set_cookie(dash: &Dash, value: &str, max_age_s: u64) -> HeaderValue {
    let secure = if dash.secure_cookie { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/dashboard; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{secure}"
    ))
    // The value is hex and digits; only a bug could make it an invalid header.
    .unwrap_or(HeaderValue::from_static(""))
}

fn redirect_to_dashboard() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_static("/dashboard"))],
    )
        .into_response()
}

async fn page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if st.admin_token().is_none() {
        return login_page(
            StatusCode::FORBIDDEN,
            "The dashboard is disabled: start the endpoint with --admin-token.",
        );
    }
    match access(&st, &headers) {
        Some(Access::Session(_)) => html(StatusCode::OK, PAGE_HTML.to_owned()),
        _ => login_page(StatusCode::OK, ""),
    }
}

/// The login form's body.
#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

impl Dash {
    fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (start, _)| now.duration_since(*start) < LOGIN_WINDOW);
        match map.get(&ip) {
            Some((start, n)) if *n >= LOGIN_ATTEMPTS => Some(
                LOGIN_WINDOW
                    .saturating_sub(now.duration_since(*start))
                    .as_secs()
                    .max(1),
            ),
            _ => None,
        }
    }

    fn failed(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(ip).or_insert((Instant::now(), 0)).1 += 1;
    }
}

async fn login(
    State(st): State<AppState>,
    Extension(dash): Extension<DashState>,
    peer: Option<Extension<ConnectInfo<PeerAddr>>>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let ip = peer.map_or(IpAddr::from([0, 0, 0, 0]), |Extension(c)| c.0.0.ip());
    let Some(expected) = st.admin_token() else {
        return login_page(
            StatusCode::FORBIDDEN,
            "The dashboard is disabled: start the endpoint with --admin-token.",
        );
    };
    if let Some(wait) = dash.blocked(ip) {
        let mut resp = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many wrong tokens from {ip}. Try again in {wait} s."),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return resp;
    }
    let Ok(Form(form)) = form else {
        return login_page(
            StatusCode::BAD_REQUEST,
            "Send the form with the admin token.",
        );
    };
    use subtle::ConstantTimeEq as _;
    if !bool::from(form.token.trim().as_bytes().ct_eq(expected.as_bytes())) {
        dash.failed(ip);
        tracing::warn!(%ip, "dashboard login with a wrong token");
        return login_page(
            StatusCode::FORBIDDEN,
            "Wrong token. Use the endpoint's admin token (--admin-token).",
        );
    }
    let expires = now_s() + i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX / 2);
    let mut resp = redirect_to_dashboard();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            &dash,
            &new_session(expected, expires),
            SESSION_TTL.as_secs(),
        ),
    );
    resp
}

async fn logout(Extension(dash): Extension<DashState>) -> Response {
    let mut resp = redirect_to_dashboard();
    resp.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&dash, "", 0));
    resp
}

async fn api_stores(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<StoreSummary>>, ApiError> {
    access(&st, &headers).ok_or_else(forbidden)?;
    Ok(Json(st.store.list_stores().await?))
}

/// The period a dashboard covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Range {
    /// Since the store's local midnight.
    #[serde(rename = "today")]
    Today,
    /// The last 24 hours.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days (counted per day).
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days (counted per day).
    #[serde(rename = "30d")]
    Month,
}

impl Range {
    /// The window start for `now_ms` in the store's time zone.
    pub fn since_ms(self, timezone: Option<&str>, now_ms: i64) -> i64 {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        match self {
            Range::Today => start_of_day_ms(timezone, now_ms),
            Range::Day => now_ms - DAY_MS,
            Range::Week => now_ms - 7 * DAY_MS,
            Range::Month => now_ms - 30 * DAY_MS,
        }
    }
}

/// Query of the dashboard's JSON and SSE routes.
#[derive(Debug, Clone, Deserialize)]
pub struct ViewQuery {
    /// The store (the SSE route's; the JSON route takes it from the path).
    #[serde(default)]
    pub store: Option<String>,
    /// One kiosk of the store; empty or absent for all.
    #[serde(default)]
    pub kiosk: Option<String>,
    /// `today` (default), `24h`, `7d` or `30d`.
    #[serde(default)]
    pub range: Option<Range>,
}

/// A resolved view: which store, kiosk and period.
#[derive(Debug, Clone)]
struct View {
    store_id: String,
    kiosk_id: Option<String>,
    range: Range,
    timezone: Option<String>,
}

impl View {
    async fn resolve(st: &AppState, store_id: String, q: ViewQuery) -> Result<View, ApiError> {
        let stores = st.store.list_stores().await?;
        let Some(store) = stores.into_iter().find(|s| s.id == store_id) else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("store {store_id:?} does not exist"),
            ));
        };
        let kiosk_id = q.kiosk.filter(|k| !k.is_empty());
        if let Some(k) = &kiosk_id
            && !store.kiosks.contains(k)
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("kiosk {k:?} is not a kiosk of store {store_id:?}"),
            ));
        }
        Ok(View {
            store_id,
            kiosk_id,
            range: q.range.unwrap_or(Range::Today),
            timezone: store.timezone,
        })
    }

    async fn dashboard(&self, st: &AppState) -> Result<Dashboard, ApiError> {
        let now = unix_ms(OffsetDateTime::now_utc());
        let mut q = DashboardQuery::new(
            self.store_id.clone(),
            self.range.since_ms(self.timezone.as_deref(), now),
            now,
        );
        q.kiosk_id = self.kiosk_id.clone();
        Ok(st.store.dashboard(q).await?)
    }
}

fn view_query(query: Result<Query<ViewQuery>, QueryRejection>) -> Result<ViewQuery, ApiError> {
    query.map(|Query(q)| q).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            format!("dashboard query (kiosk=ID, range=today|24h|7d|30d): {e}"),
        )
    })
}

async fn api_store(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(store): Path<String>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Json<Dashboard>, ApiError> {
    access(&st, &headers).ok_or_else(forbidden)?;
    let view = View::resolve(&st, store, view_query(query)?).await?;
    Ok(Json(view.dashboard(&st).await?))
}

/// The state of one live connection.
struct Live {
    st: AppState,
    view: View,
    changes: tokio::sync::broadcast::Receiver<Arc<str>>,
    tick: tokio::time::Interval,
    expires_s: Option<i64>,
    last_push: Option<Instant>,
    done: bool,
}

impl Live {
    /// Waits until the view's store changed (or the tick), then lets close batches arrive.
    async fn wait_for_change(&mut self) -> bool {
        loop {
            tokio::select! {
                r = self.changes.recv() => match r {
                    Ok(store) if *store == *self.view.store_id => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return false,
                },
                _ = self.tick.tick() => break,
                _ = self.st.closing().cancelled() => return false,
            }
        }
        if let Some(last) = self.last_push {
            tokio::select! {
                _ = tokio::time::sleep_until((last + MIN_PUSH_INTERVAL).into()) => {}
                _ = self.st.closing().cancelled() => return false,
            }
        }
        // Everything that arrived meanwhile is in the snapshot about to be taken.
        while !matches!(
            self.changes.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty
                | tokio::sync::broadcast::error::TryRecvError::Closed)
        ) {}
        true
    }

    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        if self.last_push.is_some() && !self.wait_for_change().await {
            return None;
        }
        self.last_push = Some(Instant::now());
        if self.expires_s.is_some_and(|e| e <= now_s()) {
            self.done = true;
            return Some(Event::default().event("expired").data("log in again"));
        }
        Some(match self.view.dashboard(&self.st).await {
            Ok(d) => match Event::default().event("dashboard").json_data(&d) {
                Ok(e) => e,
                Err(e) => Event::default()
                    .event("problem")
                    .data(format!("cannot encode the dashboard: {e}")),
            },
            Err(_) => Event::default()
                .event("problem")
                .data("the endpoint's database is unavailable; retrying"),
        })
    }
}

async fn events(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let access = access(&st, &headers).ok_or_else(forbidden)?;
    let mut q = view_query(query)?;
    let Some(store) = q.store.take() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            "dashboard events need ?store=ID",
        ));
    };
    let view = View::resolve(&st, store, q).await?;
    // Subscribed before the first snapshot: no change between the two goes unseen.
    let changes = st.subscribe_changes();
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + REFRESH_EVERY, REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = Live {
        st,
        view,
        changes,
        tick,
        expires_s: match access {
            Access::Session(e) => Some(e),
            Access::Token => None,
        },
        last_push: None,
        done: false,
    };
    let stream = futures::stream::unfold(live, |mut live| async move {
        let ev = live.next_event().await?;
        Some((Ok(ev), live))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The dashboard's paths for `/openapi.json`.
pub fn openapi_paths() -> Map<String, Value> {
    let store =
        json!({ "name": "store", "in": "path", "required": true, "schema": { "type": "string" } });
    let kiosk = json!({ "name": "kiosk", "in": "query", "schema": { "type": "string" }, "description": "one kiosk of the store" });
    let range = json!({ "name": "range", "in": "query", "schema": { "type": "string", "enum": ["today", "24h", "7d", "30d"], "default": "today" } });
    let security = json!([{ "dashboardSession": [] }, { "adminToken": [] }]);
    let err = json!({ "description": "error; see ErrorBody.error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } } });
    let text = |t: &str, d: &str| json!({ "description": d, "content": { t: { "schema": { "type": "string" } } } });
    let doc = json!({
        "/dashboard": { "get": {
            "summary": "the store managers' dashboard (HTML); the login form without a session",
            "security": [],
            "responses": { "200": text("text/html", "the dashboard or the login form"),
                           "403": text("text/html", "no admin token configured") } } },
        "/dashboard/login": { "post": {
            "summary": "log in with the admin token; sets an HttpOnly SameSite=Strict session cookie",
            "security": [],
            "requestBody": { "required": true, "content": { "application/x-www-form-urlencoded": {
                "schema": { "type": "object", "required": ["token"], "properties": { "token": { "type": "string" } } } } } },
            "responses": { "303": { "description": "logged in; go to /dashboard" },
                           "400": text("text/html", "no form"),
                           "403": text("text/html", "wrong token"),
                           "429": text("text/html", "too many wrong tokens from this address (Retry-After)") } } },
        "/dashboard/logout": { "post": {
            "summary": "end the session (clears the cookie)", "security": [],
            "responses": { "303": { "description": "logged out" } } } },
        "/dashboard/app.js": { "get": { "summary": "the dashboard's script", "security": [],
            "responses": { "200": text("text/javascript", "script") } } },
        "/dashboard/app.css": { "get": { "summary": "the dashboard's style", "security": [],
            "responses": { "200": text("text/css", "style") } } },
        "/dashboard/api/stores": { "get": {
            "summary": "stores with their time zone and kiosks", "security": security,
            "responses": { "200": { "description": "stores by id", "content": { "application/json": {
                "schema": { "type": "array", "items": { "$ref": "#/components/schemas/StoreSummary" } } } } },
                "403": err, "503": err } } },
        "/dashboard/api/stores/{store}": { "get": {
            "summary": "a store's dashboard figures: tickets per hour and service, waiting and service times (median, p90), identified vs anonymous visitors, conversion per campaign variant, NPS, kiosk health with last device logs",
            "security": security, "parameters": [store, kiosk, range],
            "responses": { "200": { "description": "the figures", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/Dashboard" } } } },
                "400": err, "403": err, "404": err, "503": err } } },
        "/dashboard/events": { "get": {
            "summary": "server-sent events: `dashboard` (the figures as JSON) at once, after each batch from the store's kiosks and every 15 s; `expired` when the session ends",
            "security": security,
            "parameters": [
                { "name": "store", "in": "query", "required": true, "schema": { "type": "string" } },
                kiosk, range],
            "responses": { "200": text("text/event-stream", "the event stream"),
                           "400": err, "403": err, "404": err } } }
    });
    match doc {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Schemas the dashboard's paths refer to.
pub fn openapi_schemas() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "StoreSummary".into(),
        json!({ "type": "object", "required": ["id", "name", "kiosks"], "properties": {
            "id": { "type": "string" }, "name": { "type": "string" },
            "timezone": { "type": ["string", "null"], "description": "IANA name" },
            "kiosks": { "type": "array", "items": { "type": "string" } } } }),
    );
    m.insert(
        "Dashboard".into(),
        json!({ "type": "object", "description": "store, timezone (UTC when unknown), timezone_known, kiosk_id, since_ms, now_ms, tickets {total, services, bucket, buckets [{start_ms, label, total, by_service}]}, times [{service, tickets, wait, service_time: {count, median_s, p90_s, max_s}}], visitors {identified, anonymous, identified_by}, campaigns [{campaign_id, campaign_name, variant, shown, redeemed, conversion}], nps {responses, promoters, passives, detractors, score, distribution}, kiosks [{kiosk_id, last_seen_ms, skew_ms, backlog, health, problems, printer, devices, logs [{at_ms, level, target, message, occurrences}]}]" }),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dashboard_route_has_a_handler() {
        for (m, p) in ROUTES {
            assert!(has_handler(m, p), "{m} {p}");
        }
    }

    #[test]
    fn sessions_are_bound_to_the_token_and_expire() {
        let s = new_session("secret-token", 1_000);
        assert!(!s.contains("secret-token"));
        assert_eq!(session_expiry("secret-token", &s, 999), Some(1_000));
        assert_eq!(session_expiry("secret-token", &s, 1_000), None, "expired");
        assert_eq!(session_expiry("other-token", &s, 999), None);
        let forged = s.replacen("v1.1000.", "v1.9000.", 1);
        assert_eq!(session_expiry("secret-token", &forged, 999), None);
        assert_eq!(session_expiry("secret-token", "v1.5.x", 0), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; crm_dashboard=v1.2.3.4 ;b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("v1.2.3.4"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn login_messages_are_escaped() {
        assert_eq!(
            escape("<b>\"x\" & 'y'"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;"
        );
    }
}
