//! What the endpoint's own pages (the dashboard, the console's pages, the customer's turn page)
//! send with every answer: their content security policy and the headers that keep them
//! private, and their static assets; and how a console page answers a browser without a session.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Principal;
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
