//! What the endpoint's own pages (the dashboard, the console's pages, the customer's turn page)
//! send with every answer: their content security policy and the headers that keep them
//! private, and their static assets; and how a console page answers a browser without a session.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::convert::Infallible;

use super::auth::Principal;
use super::doc::{Security, raw_op, text};
use super::route::{Route, Verb};
use super::state::{AppState, peer_ip};

/// The console pages' policy (as the dashboard's): scripts, styles, pictures and requests from
/// the endpoint only; never framed. Scripts may set element styles (CSSOM), which `style-src
/// 'self'` allows.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// Middleware of the console's routes: [`secure`] with [`CONSOLE_CSP`].
pub async fn console_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    secure(&mut resp, CONSOLE_CSP);
    resp
}

/// `routes` with [`console_headers`] on each: a console page's routes.
pub fn console_routes(routes: Vec<Route>) -> Vec<Route> {
    routes
        .into_iter()
        .map(|r| r.map(|h| h.layer::<_, Infallible>(axum::middleware::from_fn(console_headers))))
        .collect()
}

/// The two routes of a console page's script (`js` at `js_path`) and style (`css` at
/// `css_path`), documented as `page`'s.
pub fn script_and_style(
    page: &str,
    (js_path, js): (&'static str, &'static str),
    (css_path, css): (&'static str, &'static str),
) -> [Route; 2] {
    [
        Route::new(
            Verb::Get,
            js_path,
            move || async move { asset("text/javascript", js) },
            raw_op(
                &format!("the {page}'s script"),
                Security::None,
                serde_json::json!({ "200": text("text/javascript", "script") }),
            ),
        ),
        Route::new(
            Verb::Get,
            css_path,
            move || async move { asset("text/css", css) },
            raw_op(
                &format!("the {page}'s style"),
                Security::None,
                serde_json::json!({ "200": text("text/css", "style") }),
            ),
        ),
    ]
}

/// A console page: `html` for a browser with a console session (an account's, or a token
/// login's); else a redirect to `/dashboard`, whose login form brings the manager back in. What
/// the page shows is scoped by its API, which asks the caller's [`Principal`].
pub async fn console_page(st: &AppState, req: Request, html: &'static str) -> Response {
    match Principal::of(st, req.headers(), peer_ip(req.extensions())).await {
        Some(p) if p.expires_s().is_some() => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        _ => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, HeaderValue::from_static("/dashboard"))],
        )
            .into_response(),
    }
}

/// Sets `csp`, `nosniff`, `no-referrer` (the turn page's token is in its path: never sent on to
/// another site) and, unless the handler chose otherwise, `no-store`.
pub fn secure(resp: &mut Response, csp: &'static str) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
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
}

/// A static asset compiled into the binary, revalidated on every use (`no-cache`).
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
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
