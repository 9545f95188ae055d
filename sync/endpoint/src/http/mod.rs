//! HTTP plumbing every route module builds on: the shared [`AppState`], the error answer
//! [`ApiError`], the authentication extractors ([`auth`]), per-address attempt counters, the
//! [`Route`] type route modules describe their routes with, and the OpenAPI helpers ([`doc`]).
//! This module only gathers its children; none of them imports it.
//!
//! Dependency direction: **http** ← route modules (`api::kiosk`, `api::admin`, `dashboard`) ←
//! `routes` (the one table) ← `openapi` and `router`. Nothing here imports a route module.

pub mod auth;
pub mod doc;
pub mod error;
pub mod page;
pub mod request;
pub mod route;
pub mod state;

pub use auth::{Admin, Caller, Principal, audit_writes};
pub use error::ApiError;
pub(crate) use request::{header_str, json_body, now_ms};
pub use route::{Route, Verb};
pub use state::{
    ADMIN_ATTEMPTS, ADMIN_WINDOW, Admission, AppState, ENROLL_ATTEMPTS, ENROLL_WINDOW,
    LOOKUP_WINDOW, LOOKUPS_PER_WINDOW, MIN_ADMIN_TOKEN_LEN, PeerAddr, check_admin_token,
    forwarded_client,
};
pub(crate) use state::{AttemptCounter, peer_ip};
