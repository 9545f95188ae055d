//! The axum router of the route table ([`crate::routes`]): routes merged by path, the OpenAPI
//! document built once and served at `/openapi.json`, a JSON 404 fallback and gzip responses.

use std::sync::Arc;

use axum::routing::MethodRouter;
use axum::{Extension, Router};

use crate::http::{ApiError, AppState};
use crate::routes::{self, OpenApiDocument};

/// Everything [`crate::serve`] serves (`secure_cookie` when serving HTTPS).
pub fn app(state: AppState, secure_cookie: bool) -> Router {
    let table = routes::table(secure_cookie);
    let doc = OpenApiDocument(Arc::new(crate::openapi::document_of(&table)));
    let mut by_path: Vec<(&str, MethodRouter<AppState>)> = Vec::new();
    for route in table {
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(route.handler),
            None => by_path.push((route.path, route.handler)),
        }
    }
    let mut router = Router::new();
    for (path, mr) in by_path {
        router = router.route(path, mr);
    }
    router
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.json") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::forwarded_client,
        ))
        .layer(Extension(doc))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .with_state(state)
}
