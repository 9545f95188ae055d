//! The store managers' dashboard at `/dashboard`: a login form (an account's name and password;
//! the admin token while no account exists), then one
//! page that draws a store's live figures ([`crate::db::Dashboard`]) as inline SVG charts and its
//! live queue ([`crate::db::LiveQueue`]) as tables,
//! pushed by server-sent events whenever that store's kiosks send a batch (and every
//! [`REFRESH_EVERY`], as "last seen" ages and hours roll over).
//!
//! Data flow: kiosk batch → [`crate::api::kiosk`] ingest → database → change notice
//! ([`AppState::subscribe_changes`]) → **dashboard** (SSE) → browser.
//!
//! Every API call takes the caller's [`Principal`] and sees only the stores of its scope
//! (docs/CONSOLE.md "Accounts and roles"); HQ admins also get the accounts page and the audit
//! page (`console_routes`, over [`crate::api::accounts`] and `/v1/admin/audit`). Sessions of accounts are rows of the database; a token login's session is
//! a signed cookie derived from the admin token, never the token itself. The page and its
//! script and style are embedded in the binary: no CDN, no build step, no external request (the
//! content security policy forbids them).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use futures::Stream;
use kiosk_protocol::ident;
use kiosk_protocol::wire::ErrorCode;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

pub use crate::http::auth::{SESSION_COOKIE, new_session, session_expiry};

use crate::accounts::{Role, decoy_hash, verify_password};
use crate::db::dashboard::start_of_day_ms;
use crate::db::queue::{DEFAULT_CALLS, MAX_CALLS};
use crate::db::{Dashboard, DashboardQuery, LiveQueue, LiveQueueQuery, StoreSummary};
use crate::http::Principal;
use crate::http::auth::{
    ACCOUNT_SESSION_PREFIX, audit, audit_as, cookie, new_account_session, now_s, session_digest,
    token_matches,
};
use crate::http::doc::{
    Security, error_answer, event_stream, json_data, op, path_param, query_param, raw_op,
    schema_ref, text,
};
use crate::http::{ApiError, AppState, AttemptCounter, Route, Verb, now_ms, peer_ip};
use crate::ingest::unix_ms;

/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Wrong tokens or passwords allowed per source address and window.
pub const LOGIN_ATTEMPTS: u32 = 5;
/// Wrong passwords allowed per account name and window, from any address (a guesser spread over
/// many addresses); past it the account's login waits for the window's end.
pub const ACCOUNT_LOGIN_ATTEMPTS: u32 = 10;
/// The window of [`LOGIN_ATTEMPTS`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The live page is refreshed at least this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);
/// Batches arriving closer together than this are pushed as one update.
pub const MIN_PUSH_INTERVAL: Duration = Duration::from_millis(500);

const PAGE_HTML: &str = include_str!("page.html");
const LOGIN_HTML: &str = include_str!("login.html");
const TOKEN_LOGIN_HTML: &str = include_str!("token-login.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const FLEET_HTML: &str = include_str!("fleet.html");
const FLEET_JS: &str = include_str!("fleet.js");
const FORWARDING_HTML: &str = include_str!("forwarding.html");
const FORWARDING_JS: &str = include_str!("forwarding.js");
const ACCOUNTS_HTML: &str = include_str!("accounts.html");
const AUDIT_HTML: &str = include_str!("audit.html");
const CONSOLE_JS: &str = include_str!("console.js");
const NAV_JS: &str = include_str!("nav.js");
const HQ_ONLY_HTML: &str = include_str!("hq-only.html");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the dashboard routes keep beside [`AppState`].
struct Dash {
    /// Mark the cookie `Secure` (the endpoint serves HTTPS).
    secure_cookie: bool,
    /// Wrong tokens per source address (counted in the database: every replica sees them).
    failures: AttemptCounter,
    /// Wrong passwords per account name.
    account_failures: AttemptCounter,
}

type DashState = Arc<Dash>;

/// The dashboard's routes. `secure_cookie` when the endpoint serves HTTPS (the session cookie
/// is then never sent over plain HTTP).
pub fn routes(secure_cookie: bool) -> Vec<Route> {
    let dash: DashState = Arc::new(Dash {
        secure_cookie,
        failures: AttemptCounter::new("login", LOGIN_ATTEMPTS, LOGIN_WINDOW),
        account_failures: AttemptCounter::new(
            "login-account",
            ACCOUNT_LOGIN_ATTEMPTS,
            LOGIN_WINDOW,
        ),
    });
    let store = path_param("store", "Ident");
    let kiosk = query_param(
        "kiosk",
        false,
        json!({ "anyOf": [schema_ref("Ident"), { "const": "" }] }),
        "one kiosk of the store; empty or absent for all",
    );
    let range = json!({ "name": "range", "in": "query", "schema": { "type": "string", "enum": ["today", "24h", "7d", "30d"], "default": "today" } });
    let err = error_answer();
    let mut figures = raw_op(
        "a store's dashboard figures: tickets per hour and service, waiting and service times (median, p90), identified vs anonymous visitors, conversion per campaign variant, NPS, kiosk health with last device logs",
        Security::Dashboard,
        json!({ "200": { "description": "the figures", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/Dashboard" } } } },
                "400": err, "403": err, "404": err, "429": err, "503": err }),
    );
    figures["parameters"] = json!([store, kiosk, range]);
    let mut queue_doc = raw_op(
        "a store's live queue now (the whole store, whatever kiosk issued or called a turn): per service (after transfers) the turns waiting, priority waiting, parked, being served, served, no-show and walked out today, and the longest current wait (now minus the issue of the oldest waiting turn, skew-corrected, whole seconds); the counters open (serving a called turn now, or that called a turn within the last 30 minutes); the latest calls of today's turns (label, counter, time; one per turn, its latest call); tickets issued today per kiosk of the store; tickets issued out of sequence; queue conflicts of the day. Today is the store's business day in its time zone (UTC when not set)",
        Security::Dashboard,
        json!({ "200": { "description": "the live queue", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/LiveQueue" } } } },
                "400": err, "403": err, "404": err, "429": err, "503": err }),
    );
    queue_doc["parameters"] = json!([
        store,
        query_param(
            "calls",
            false,
            json!({ "type": "integer", "minimum": 0, "maximum": MAX_CALLS, "default": DEFAULT_CALLS }),
            "latest calls to list; out of range is refused (400)"
        )
    ]);
    let mut presence_doc = raw_op(
        "who is in a store now: customers waiting (identified, by segment, and anonymous) with each segment's weight among them; dwell per segment (issue to served of the visits of the last 30 days); people counted entering today; signage plays today per content item with the people of each segment they played to; assistance requests today, open ones, the median response and the latest requests. Today is the store's business day in its time zone",
        Security::Dashboard,
        json!({ "200": { "description": "the store's audience", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/StorePresence" } } } },
                "400": err, "403": err, "404": err, "429": err, "503": err }),
    );
    presence_doc["parameters"] = json!([store]);
    let mut events_doc = raw_op(
        "server-sent events: `dashboard` (the figures as JSON), `queue` (the store's live queue as JSON, as /dashboard/api/stores/{store}/queue answers it) then `presence` (who is in the store, as /dashboard/api/stores/{store}/presence answers it) at once, after each batch from the store's kiosks and every 15 s; `expired` when the session ends; `problem` when a snapshot could not be taken (the stream goes on)",
        Security::Dashboard,
        json!({ "200": event_stream("the event stream (it does not end by itself; comments keep it alive)", &[
                    ("dashboard", "the store's figures, as /dashboard/api/stores/{store} answers them", json_data("Dashboard")),
                    ("queue", "the store's live queue, as /dashboard/api/stores/{store}/queue answers it", json_data("LiveQueue")),
                    ("presence", "who is in the store, as /dashboard/api/stores/{store}/presence answers it", json_data("StorePresence")),
                    ("expired", "the session ended; the stream ends", json!({ "const": "log in again" })),
                    ("problem", "what went wrong taking a snapshot, in words (the stream goes on)", json!({ "type": "string" })),
                ]),
                "400": err, "403": err, "404": err, "429": err }),
    );
    events_doc["parameters"] = json!([
        query_param("store", true, schema_ref("Ident"), "the store"),
        kiosk,
        range
    ]);
    let mut login_doc = raw_op(
        "log in with an account's name and password (or the admin token, for machines and before the first account exists); sets an HttpOnly SameSite=Strict session cookie",
        Security::None,
        json!({ "303": { "description": "logged in; go to /dashboard" },
                "400": text("text/html", "no form"),
                "403": text("text/html", "wrong name, password or token"),
                "429": text("text/html", "too many wrong attempts from this address or for this account (Retry-After)") }),
    );
    login_doc["requestBody"] = json!({ "required": true, "content": { "application/x-www-form-urlencoded": {
        "schema": { "oneOf": [
            { "type": "object", "required": ["user", "password"], "properties": {
                "user": { "type": "string" }, "password": { "type": "string" } } },
            { "type": "object", "required": ["token"], "properties": { "token": { "type": "string" } } } ] } } } });
    let routes = vec![
        Route::new(
            Verb::Get,
            "/dashboard",
            page,
            raw_op(
                "the store managers' dashboard (HTML); the login form without a session",
                Security::None,
                json!({ "200": text("text/html", "the dashboard or the login form"),
                        "403": text("text/html", "no admin token configured") }),
            ),
        ),
        Route::new(Verb::Post, "/dashboard/login", login, login_doc),
        Route::new(
            Verb::Post,
            "/dashboard/logout",
            logout,
            raw_op(
                "end the session (clears the cookie)",
                Security::None,
                json!({ "303": { "description": "logged out" } }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/app.js",
            || async { asset("text/javascript", APP_JS) },
            raw_op(
                "the dashboard's script",
                Security::None,
                json!({ "200": text("text/javascript", "script") }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/app.css",
            || async { asset("text/css", APP_CSS) },
            raw_op(
                "the dashboard's style",
                Security::None,
                json!({ "200": text("text/css", "style") }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/stores",
            api_stores,
            raw_op(
                "stores with their time zone and kiosks",
                Security::Dashboard,
                json!({ "200": { "description": "stores by id", "content": { "application/json": {
                    "schema": { "type": "array", "items": { "$ref": "#/components/schemas/StoreSummary" } } } } },
                    "403": err, "429": err, "503": err }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/stores/{store}",
            api_store,
            figures,
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/stores/{store}/queue",
            api_queue,
            queue_doc,
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/stores/{store}/presence",
            api_presence,
            presence_doc,
        ),
        Route::new(Verb::Get, "/dashboard/events", events, events_doc),
        Route::new(
            Verb::Get,
            "/dashboard/fleet",
            fleet_page,
            raw_op(
                "the fleet's alerts (HTML): every store, worst first; the login form without a session",
                Security::None,
                json!({ "200": text("text/html", "the fleet view or the login form"),
                        "403": text("text/html", "no admin token configured") }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/fleet.js",
            || async { asset("text/javascript", FLEET_JS) },
            raw_op(
                "the fleet view's script",
                Security::None,
                json!({ "200": text("text/javascript", "script") }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/me",
            api_me,
            raw_op(
                "who is logged in: account name (null for the admin token), role, the stores' scope and whether the caller may change things",
                Security::Dashboard,
                json!({ "200": { "description": "the caller", "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Me" } } } },
                    "403": err, "429": err, "503": err }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/fleet",
            api_fleet,
            raw_op(
                "every store with its open alerts (kiosk offline, printer out of paper or cover open, events not sent, dead letters, clock skew, a wait past the store's target), worst first: most critical alerts, then most warnings, then the oldest alert; and every firmware release with its rollout in kiosks (assigned, downloaded, installed, healthy, rolled back, refused, pinned) and whether it halted and why",
                Security::Dashboard,
                json!({ "200": { "description": "the fleet", "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/Fleet" } } } },
                    "403": err, "429": err, "503": err }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/forwarding",
            forwarding_page,
            raw_op(
                "the forwarding to the company's CRM (HTML): endpoints, their state, dead letters with a Replay button; the login form without a session",
                Security::None,
                json!({ "200": text("text/html", "the forwarding view or the login form"),
                        "403": text("text/html", "no admin token configured") }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/forwarding.js",
            || async { asset("text/javascript", FORWARDING_JS) },
            raw_op(
                "the forwarding view's script",
                Security::None,
                json!({ "200": text("text/javascript", "script") }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/forwarding",
            api_forwarding,
            raw_op(
                "every forwarding endpoint (state, failure streak, counts; never a secret) and the latest dead letters (never their bodies)",
                Security::Dashboard,
                json!({ "200": { "description": "the forwarding", "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/ForwardingView" } } } },
                    "403": err, "429": err, "503": err }),
            ),
        ),
        Route::new(
            Verb::Post,
            "/dashboard/api/forwarding/replay",
            api_forwarding_replay,
            op(
                "send one dead letter (by seq) or all of an endpoint's again, with their own webhook-id",
                Security::Dashboard,
                Some("DashboardReplayRequest"),
                ("200", "how many", Some("ReplayResponse")),
                &["400", "403", "404", "429", "503"],
            ),
        ),
    ];
    routes
        .into_iter()
        .chain(console_routes())
        .map(|r| {
            let dash = Arc::clone(&dash);
            r.map(|h| {
                h.layer::<_, std::convert::Infallible>(middleware::from_fn(security_headers))
                    .layer::<_, std::convert::Infallible>(Extension(dash))
            })
        })
        .collect()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    crate::http::page::secure(&mut resp, CSP);
    resp
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    crate::http::page::asset(content_type, body)
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

/// The login form `form` (its `message` escaped).
fn login_page(status: StatusCode, message: &str, form: &str) -> Response {
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"login-error\" role=\"alert\">{}</p>",
            escape(message)
        )
    };
    html(status, form.replace("{{message}}", &message))
}

fn set_cookie(dash: &Dash, value: &str, max_age_s: u64) -> HeaderValue {
    let secure = if dash.secure_cookie { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{secure}"
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

/// A page for a logged-in caller (a session, not the token in a header), else the login form.
async fn session_page(st: &AppState, req: Request, body: &str) -> Response {
    let (parts, _) = req.into_parts();
    let ip = peer_ip(&parts.extensions);
    match Principal::of(st, &parts.headers, ip).await {
        Some(p) if p.expires_s().is_some() => html(StatusCode::OK, body.to_owned()),
        _ => login_form(st, StatusCode::OK, "").await,
    }
}

/// The login form: an account's name and password once an account exists; the admin token
/// before (the first start, and set-ups that never made accounts). Every console page shows it
/// without a session.
pub(crate) async fn login_form(st: &AppState, status: StatusCode, message: &str) -> Response {
    match st.db.any_account().await {
        Ok(true) => login_page(status, message, LOGIN_HTML),
        Ok(false) if st.admin_token().is_some() => login_page(status, message, TOKEN_LOGIN_HTML),
        Ok(false) => login_page(
            StatusCode::FORBIDDEN,
            "The dashboard has no account yet and no admin token: create an HQ admin with `crm-endpoint user add NAME --role hq-admin`, or start the endpoint with --admin-token.",
            TOKEN_LOGIN_HTML,
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The HQ admins' pages (accounts, audit): the page for an HQ admin's session, a page saying who
/// may see it for another account's (403; the API refuses them too), else the login form.
async fn hq_page(st: &AppState, req: Request, body: &str) -> Response {
    let (parts, _) = req.into_parts();
    let ip = peer_ip(&parts.extensions);
    match Principal::of(st, &parts.headers, ip).await {
        Some(p) if p.expires_s().is_some() && p.role() == Role::HqAdmin => {
            html(StatusCode::OK, body.to_owned())
        }
        Some(p) if p.expires_s().is_some() => {
            p.audit(st, "forbidden", parts.uri.path(), "refused");
            html(StatusCode::FORBIDDEN, HQ_ONLY_HTML.to_owned())
        }
        _ => login_form(st, StatusCode::OK, "").await,
    }
}

/// The accounts page, the audit page and the scripts of the console's pages.
fn console_routes() -> Vec<Route> {
    let page_doc = |what: &str| {
        raw_op(
            what,
            Security::None,
            json!({ "200": text("text/html", "the page, or the login form without a session"),
                    "403": text("text/html", "a session of another role than hq-admin") }),
        )
    };
    vec![
        Route::new(
            Verb::Get,
            "/dashboard/accounts",
            |State(st): State<AppState>, req: Request| async move {
                hq_page(&st, req, ACCOUNTS_HTML).await
            },
            page_doc("the console's accounts and the stores' regions (HTML, HQ admins)"),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/audit",
            |State(st): State<AppState>, req: Request| async move {
                hq_page(&st, req, AUDIT_HTML).await
            },
            page_doc("the audit log, newest first, filtered by account (HTML, HQ admins)"),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/console.js",
            || async { asset("text/javascript", CONSOLE_JS) },
            raw_op(
                "the accounts and audit pages' script",
                Security::None,
                json!({ "200": text("text/javascript", "script") }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/nav.js",
            || async { asset("text/javascript", NAV_JS) },
            raw_op(
                "the pages' header script (who is logged in, the HQ admins' links)",
                Security::None,
                json!({ "200": text("text/javascript", "script") }),
            ),
        ),
    ]
}

async fn page(State(st): State<AppState>, req: Request) -> Response {
    session_page(&st, req, PAGE_HTML).await
}

async fn fleet_page(State(st): State<AppState>, req: Request) -> Response {
    session_page(&st, req, FLEET_HTML).await
}

async fn api_fleet(
    who: Principal,
    State(st): State<AppState>,
) -> Result<Json<crate::alerts::Fleet>, ApiError> {
    let now = unix_ms(OffsetDateTime::now_utc());
    let mut fleet = crate::alerts::fleet_view(&st.db, now).await?;
    let seen: Vec<String> = who.stores(&st).await?.into_iter().map(|s| s.id).collect();
    fleet.stores.retain(|s| seen.contains(&s.store_id));
    Ok(Json(fleet))
}

/// The forwarding view: HQ admins' (it sends customers' data to another system).
async fn forwarding_page(State(st): State<AppState>, req: Request) -> Response {
    hq_page(&st, req, FORWARDING_HTML).await
}

/// The dashboard's forwarding view (`/dashboard/api/forwarding`).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ForwardingView {
    /// When, unix ms.
    pub now_ms: i64,
    /// Every endpoint.
    pub endpoints: Vec<crate::db::forward::EndpointView>,
    /// The latest dead letters, newest first.
    pub dead_letters: Vec<crate::db::forward::DeadLetter>,
}

/// Dead letters the view lists.
const VIEW_DEAD_LETTERS: i64 = 200;

async fn api_forwarding(
    who: Principal,
    State(st): State<AppState>,
) -> Result<Json<ForwardingView>, ApiError> {
    who.require_hq(&st, "the forwarding view")?;
    Ok(Json(ForwardingView {
        now_ms: unix_ms(OffsetDateTime::now_utc()),
        endpoints: st.db.forward_endpoints().await?,
        dead_letters: st.db.forward_dead_letters(None, VIEW_DEAD_LETTERS).await?,
    }))
}

/// `POST /dashboard/api/forwarding/replay` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardReplayRequest {
    /// The endpoint.
    #[schemars(with = "crate::api::forwarding::ForwardEndpointId")]
    pub endpoint_id: String,
    /// One dead letter; absent: all of the endpoint's.
    #[schemars(range(min = 1))]
    pub seq: Option<i64>,
}

async fn api_forwarding_replay(
    who: Principal,
    State(st): State<AppState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<crate::api::forwarding::ReplayResponse>, ApiError> {
    who.require_hq(&st, "replaying forwarded messages")?;
    let req: DashboardReplayRequest = crate::http::json_body(body)?;
    let replayed = crate::api::forwarding::replay_dead(&st, &req.endpoint_id, req.seq).await?;
    who.audit(
        &st,
        "forward_replay",
        &req.endpoint_id,
        &replayed.to_string(),
    );
    Ok(Json(crate::api::forwarding::ReplayResponse { replayed }))
}

/// `GET /dashboard/api/me`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Me {
    /// The account's name; `null` for the admin token.
    pub user: Option<String>,
    /// The role (the admin token counts as `hq-admin`).
    pub role: Role,
    /// The stores seen.
    pub scope: crate::accounts::Scope,
    /// Whether the caller may change things (all but analysts).
    pub writes: bool,
}

async fn api_me(who: Principal) -> Json<Me> {
    Json(Me {
        user: who.user().map(str::to_owned),
        role: who.role(),
        scope: who.scope(),
        writes: who.role().writes(),
    })
}

/// The login form's body: an account's name and password, or the admin token.
#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// 429 with `Retry-After`, on the login form.
fn too_many(message: &str, wait: u64) -> Response {
    let mut resp = login_page(StatusCode::TOO_MANY_REQUESTS, message, LOGIN_HTML);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    resp
}

async fn login(
    State(st): State<AppState>,
    Extension(dash): Extension<DashState>,
    req: Request,
) -> Response {
    let ip = peer_ip(req.extensions());
    let form = Form::<LoginForm>::from_request(req, &st).await;
    let blocked = match dash.failures.blocked(&st.db, &ip.to_string()).await {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Some(wait) = blocked {
        return too_many(
            &format!("Too many wrong tokens or passwords from {ip}. Try again in {wait} s."),
            wait,
        );
    }
    match form {
        Ok(Form(LoginForm {
            user: Some(user),
            password: Some(password),
            ..
        })) => account_login(&st, &dash, ip, user.trim(), &password).await,
        Ok(Form(LoginForm {
            token: Some(token), ..
        })) => token_login(&st, &dash, ip, &token).await,
        _ => {
            login_form(
                &st,
                StatusCode::BAD_REQUEST,
                "Send the form with your user name and password.",
            )
            .await
        }
    }
}

async fn account_login(
    st: &AppState,
    dash: &Dash,
    ip: std::net::IpAddr,
    user: &str,
    password: &str,
) -> Response {
    let account_key = format!("account:{user}");
    match dash.account_failures.blocked(&st.db, &account_key).await {
        Ok(Some(wait)) => {
            audit(st, ip.to_string(), "login_failed", user, "throttled");
            return too_many(
                &format!("Too many wrong passwords for this account. Try again in {wait} s."),
                wait,
            );
        }
        Ok(None) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    let found = match st.db.account_credentials(user.to_owned()).await {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // Argon2 takes tens of milliseconds of CPU: off the async workers.
    let (password, stored) = (
        password.to_owned(),
        found
            .as_ref()
            .map_or_else(|| decoy_hash().to_owned(), |(_, h)| h.clone()),
    );
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .unwrap_or(false);
    let account = match found {
        Some((a, _)) if matches && !a.disabled => a,
        found => {
            dash.failures.count(&st.db, &ip.to_string()).await;
            dash.account_failures.count(&st.db, &account_key).await;
            tracing::warn!(%ip, "dashboard login with a wrong name or password");
            let known = found.as_ref().map(|(a, _)| a.name.as_str());
            let why = match &found {
                Some((a, _)) if a.disabled && matches => "disabled",
                _ => "refused",
            };
            audit_as(st, known, ip.to_string(), "login_failed", user, why);
            return login_form(
                st,
                StatusCode::FORBIDDEN,
                "Wrong user name or password (or the account is disabled).",
            )
            .await;
        }
    };
    let (value, digest) = new_account_session();
    let now = now_ms();
    let ttl_ms = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX / 2);
    if let Err(e) = st
        .db
        .open_session(digest, account.name.clone(), now, now + ttl_ms)
        .await
    {
        return ApiError::from(e).into_response();
    }
    audit_as(
        st,
        Some(&account.name),
        format!("user:{}@{ip}", account.name),
        "login",
        "/dashboard/login",
        "ok",
    );
    let mut resp = redirect_to_dashboard();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(dash, &value, SESSION_TTL.as_secs()),
    );
    resp
}

async fn token_login(st: &AppState, dash: &Dash, ip: std::net::IpAddr, token: &str) -> Response {
    let Some(expected) = st.admin_token() else {
        return login_form(
            st,
            StatusCode::FORBIDDEN,
            "This endpoint has no admin token: log in with your user name and password.",
        )
        .await;
    };
    if !token_matches(token.trim(), expected) {
        dash.failures.count(&st.db, &ip.to_string()).await;
        tracing::warn!(%ip, "dashboard login with a wrong token");
        audit(
            st,
            ip.to_string(),
            "dashboard_login_failed",
            "/dashboard/login",
            "refused",
        );
        return login_page(
            StatusCode::FORBIDDEN,
            "Wrong token. Use the endpoint's admin token (--admin-token).",
            TOKEN_LOGIN_HTML,
        );
    }
    audit(
        st,
        format!("session@{ip}"),
        "login",
        "/dashboard/login",
        "ok",
    );
    let expires = now_s() + i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX / 2);
    let mut resp = redirect_to_dashboard();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(dash, &new_session(expected, expires), SESSION_TTL.as_secs()),
    );
    resp
}

async fn logout(
    State(st): State<AppState>,
    Extension(dash): Extension<DashState>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let (headers, ip) = (&parts.headers, peer_ip(&parts.extensions));
    if let Some(who) = Principal::of(&st, headers, ip).await
        && who.expires_s().is_some()
    {
        who.audit(&st, "logout", "/dashboard/logout", "ok");
    }
    if let Some(v) =
        cookie(headers, SESSION_COOKIE).filter(|v| v.starts_with(ACCOUNT_SESSION_PREFIX))
        && let Err(e) = st.db.end_session(session_digest(v)).await
    {
        return ApiError::from(e).into_response();
    }
    let mut resp = redirect_to_dashboard();
    resp.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&dash, "", 0));
    resp
}

async fn api_stores(
    who: Principal,
    State(st): State<AppState>,
) -> Result<Json<Vec<StoreSummary>>, ApiError> {
    Ok(Json(who.stores(&st).await?))
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
    async fn resolve(
        st: &AppState,
        who: &Principal,
        store_id: String,
        q: ViewQuery,
    ) -> Result<View, ApiError> {
        check_store(&store_id)?;
        if let Some(k) = q.kiosk.as_deref().filter(|k| !k.is_empty()) {
            ident::check(k).map_err(|e| ApiError::malformed(format!("kiosk: the kiosk id {e}")))?;
        }
        let store = who.store(st, &store_id).await?;
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
        Ok(st.db.dashboard(q).await?)
    }
}

/// A store id from a path or query, 400 naming `store` when it is not an identifier.
fn check_store(store: &str) -> Result<(), ApiError> {
    ident::check(store).map_err(|e| ApiError::malformed(format!("store: the store id {e}")))
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
    who: Principal,
    State(st): State<AppState>,
    Path(store): Path<String>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Json<Dashboard>, ApiError> {
    let view = View::resolve(&st, &who, store, view_query(query)?).await?;
    Ok(Json(view.dashboard(&st).await?))
}

/// Query of the live queue's JSON route.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueParams {
    /// Latest calls to list (at most [`MAX_CALLS`]).
    #[serde(default)]
    pub calls: Option<u32>,
}

async fn live_queue(st: &AppState, store_id: &str, calls: u32) -> Result<LiveQueue, ApiError> {
    let mut q = LiveQueueQuery::new(store_id, unix_ms(OffsetDateTime::now_utc()));
    q.calls = calls.min(MAX_CALLS);
    Ok(st.db.live_queue(q).await?)
}

async fn api_queue(
    who: Principal,
    State(st): State<AppState>,
    Path(store): Path<String>,
    query: Result<Query<QueueParams>, QueryRejection>,
) -> Result<Json<LiveQueue>, ApiError> {
    let Query(params) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            format!("live queue query (calls=N, at most {MAX_CALLS}): {e}"),
        )
    })?;
    check_store(&store)?;
    let calls = params.calls.unwrap_or(DEFAULT_CALLS);
    if calls > MAX_CALLS {
        return Err(ApiError::malformed(format!(
            "calls: {calls} is out of range; ask for 0 to {MAX_CALLS}"
        )));
    }
    who.store(&st, &store).await?;
    Ok(Json(live_queue(&st, &store, calls).await?))
}

async fn api_presence(
    who: Principal,
    State(st): State<AppState>,
    Path(store): Path<String>,
) -> Result<Json<crate::db::presence::StorePresence>, ApiError> {
    check_store(&store)?;
    who.store(&st, &store).await?;
    let now = unix_ms(OffsetDateTime::now_utc());
    Ok(Json(st.db.presence(store, now).await?))
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
    /// The live queue and the presence of the snapshot just pushed, sent right after its
    /// figures (in that order).
    queued: std::collections::VecDeque<Event>,
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
        if let Some(next) = self.queued.pop_front() {
            return Some(next);
        }
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
        self.queued.push_back(
            match live_queue(&self.st, &self.view.store_id, DEFAULT_CALLS).await {
                Ok(q) => match Event::default().event("queue").json_data(&q) {
                    Ok(e) => e,
                    Err(e) => Event::default()
                        .event("problem")
                        .data(format!("cannot encode the live queue: {e}")),
                },
                Err(_) => Event::default()
                    .event("problem")
                    .data("the endpoint's database is unavailable; retrying"),
            },
        );
        let now = unix_ms(OffsetDateTime::now_utc());
        self.queued.push_back(
            match self.st.db.presence(self.view.store_id.clone(), now).await {
                Ok(p) => match Event::default().event("presence").json_data(&p) {
                    Ok(e) => e,
                    Err(e) => Event::default()
                        .event("problem")
                        .data(format!("cannot encode who is in the store: {e}")),
                },
                Err(_) => Event::default()
                    .event("problem")
                    .data("the endpoint's database is unavailable; retrying"),
            },
        );
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
    access: Principal,
    State(st): State<AppState>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut q = view_query(query)?;
    let Some(store) = q.store.take() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            "dashboard events need ?store=ID",
        ));
    };
    let view = View::resolve(&st, &access, store, q).await?;
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
        expires_s: access.expires_s(),
        last_push: None,
        done: false,
        queued: std::collections::VecDeque::new(),
    };
    let stream = futures::stream::unfold(live, |mut live| async move {
        let ev = live.next_event().await?;
        Some((Ok(ev), live))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Adds the schemas the dashboard's paths refer to to `g`'s definitions.
pub fn register_schemas(g: &mut schemars::SchemaGenerator) {
    g.subschema_for::<StoreSummary>();
    g.subschema_for::<Dashboard>();
    g.subschema_for::<LiveQueue>();
    g.subschema_for::<crate::db::presence::StorePresence>();
    g.subschema_for::<crate::alerts::Fleet>();
    g.subschema_for::<ForwardingView>();
    g.subschema_for::<DashboardReplayRequest>();
    g.subschema_for::<Me>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dashboard_route_is_under_dashboard_and_documented() {
        for r in routes(false) {
            assert!(r.path.starts_with("/dashboard"), "{}", r.path);
            assert!(r.doc["responses"].is_object(), "{}", r.path);
        }
    }

    #[test]
    fn login_messages_are_escaped() {
        assert_eq!(
            escape("<b>\"x\" & 'y'"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;"
        );
    }
}
