//! The HTTP surface of protocol v1: the kiosks' routes ([`kiosk`]: enrollment, signed batch
//! ingest, the sync feed, health) and the admin API ([`admin`]). Each module owns its routes and
//! their OpenAPI operations; [`crate::routes`] gathers them into the one route table.
//!
//! Status codes: 400 malformed body or query; 401 missing credentials, unknown kiosk, bad
//! signature, stale timestamp or a wrong enrollment code; 403 another kiosk's id or a missing
//! admin token; 409 a replayed signed request; 413 a batch over 500 events or 256 KiB; 429 too
//! many enrollment attempts from one address (with `Retry-After`); 503 database unavailable, or
//! a batch refused by admission control because this replica stores its maximum of batches
//! already (with `Retry-After`, before the body is read; docs/FLEET.md).

pub mod accounts;
pub mod admin;
pub mod forwarding;
pub mod kiosk;
pub mod releases;

pub use admin::EnrollCodeResponse;
pub use kiosk::{decode_batch, hash_enroll_code, issue_enroll_code, new_enroll_code};

pub use crate::http::{
    ApiError, AppState, ENROLL_ATTEMPTS, ENROLL_WINDOW, LOOKUP_WINDOW, LOOKUPS_PER_WINDOW, PeerAddr,
};
