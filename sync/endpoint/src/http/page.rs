//! What the endpoint's own pages (the dashboard, the customer's turn page) send with every
//! answer: their content security policy and the headers that keep them private, and their
//! static assets.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

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
