//! The [`Route`] type route modules describe their routes with: method, path, handler and OpenAPI
//! operation.

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::state::AppState;

/// The HTTP methods the endpoint's routes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl Verb {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
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
