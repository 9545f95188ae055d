//! The kiosk's pure core: the customer journey state machine ([`journey`]) and the turn queue
//! ([`queue`]), with the languages they speak ([`locale`]).
//!
//! Data flow: device → input → **core** → (journal, printer, screen) → outbox → endpoint. Nothing
//! here does I/O, reads a clock, spawns a task or touches a database: every function takes the
//! state, an input and the time, and returns the new state and what to do (effects, or a queue
//! [`queue::Change`] to make durable). The `kiosk` binary's runtime carries the effects out; the
//! `kiosk-journal` crate makes changes durable. That is what lets the property tests drive the
//! journey through millions of steps without a kiosk.
//!
//! Layering inside the crate, each module importing only those below it:
//! `journey` → `queue` → `locale`; `signage` → `audience` (who is in the store, and what the
//! lobby plays to them).

pub mod audience;
pub mod journey;
pub mod locale;
pub mod queue;
pub mod signage;
