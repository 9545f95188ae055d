//! The contract between a kiosk and the CRM endpoint: the event catalog, the envelope events travel
//! in, and the JSON Schemas generated from them.
//!
//! Data flow: engine → [`Envelope`] → journal → outbox → batch → endpoint. Both sides depend on
//! this crate and on nothing of each other; third parties validate against the schemas checked in
//! under `sync/schema/`.

pub mod auth;
pub mod events;
pub mod ident;
pub mod picture;
pub mod release;
pub mod schema;
pub mod store_config;
pub mod wire;

pub use events::{Envelope, Event};
pub use kiosk_types::{BadCardToken, CARD_TOKEN_HEX_LEN, CardToken};
