//! The one route table: every route the endpoint serves, gathered from the modules that own
//! them ([`crate::api::kiosk`], [`crate::api::admin`], [`crate::dashboard`]) plus
//! `/openapi.json`. The router ([`crate::router`]) and the OpenAPI document ([`crate::openapi`])
//! are both built from it, so a route cannot be served undocumented or documented unserved.

use std::sync::Arc;

use axum::{Extension, Json};
use serde_json::Value;

use crate::http::doc::{Security, op};
use crate::http::{Route, Verb};

/// The OpenAPI document as served (built once from this table by the router).
#[derive(Clone)]
pub struct OpenApiDocument(pub Arc<Value>);

async fn openapi(Extension(OpenApiDocument(doc)): Extension<OpenApiDocument>) -> Json<Value> {
    Json(Value::clone(&doc))
}

/// Every route; the dashboard's session cookie is marked `Secure` when `secure_cookie`.
pub fn table(secure_cookie: bool) -> Vec<Route> {
    let mut routes = vec![Route::new(
        Verb::Get,
        "/openapi.json",
        openapi,
        op(
            "this document",
            Security::None,
            None,
            ("200", "OpenAPI 3.1", Some("OpenApi")),
            &[],
        ),
    )];
    routes.extend(crate::api::kiosk::routes());
    routes.extend(crate::api::admin::routes());
    routes.extend(crate::api::forwarding::routes());
    routes.extend(crate::api::accounts::routes());
    routes.extend(crate::api::releases::routes());
    routes.extend(crate::dashboard::routes(secure_cookie));
    routes.extend(crate::reports::routes());
    routes.extend(crate::phone::routes());
    routes.extend(crate::map::routes());
    routes.extend(crate::campaign_console::routes());
    routes.extend(crate::customers::routes());
    // Every write is audited with who made it, in one layer (crate::http::auth::audit_writes).
    routes
        .into_iter()
        .map(|r| {
            if r.verb == Verb::Get {
                r
            } else {
                r.map(|h| h.layer(axum::middleware::from_fn(crate::http::audit_writes)))
            }
        })
        .collect()
}

/// `(METHOD, path)` of every route in the table, sorted.
pub fn operations() -> Vec<(String, String)> {
    let mut ops: Vec<(String, String)> = table(false)
        .iter()
        .map(|r| (r.verb.as_str().to_owned(), r.path.to_owned()))
        .collect();
    ops.sort();
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_unique_and_documented() {
        let table = table(false);
        let ops = operations();
        let mut unique = ops.clone();
        unique.dedup();
        assert_eq!(ops, unique, "a (method, path) twice in the table");
        for r in &table {
            assert!(
                r.doc["summary"].is_string() && r.doc["responses"].is_object(),
                "{} {} has no operation",
                r.verb.as_str(),
                r.path
            );
        }
    }
}
