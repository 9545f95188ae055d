//! The store layer's pure rules. A store is 1 to N kiosks on the shop LAN sharing one turn queue,
//! with no branch server: every kiosk holds the whole queue.
//!
//! - Every queue step a kiosk takes (issue, call, recall, serve, no-show, park, transfer,
//!   walkout) is a [`StoreOp`]: numbered per kiosk (`origin`, `seq`: dense, never reused) and
//!   stamped with a hybrid logical clock ([`Hlc`]) so that a step always sorts after every step
//!   its kiosk had seen when taking it.
//! - Kiosks pull each other's ops by `(origin, seq)`, as the CRM pulls the outbox, and relay
//!   what they hold for others, so a kiosk cut off from one peer still learns its steps through
//!   another.
//! - [`StoreQueue`] folds all ops, sorted by `(hlc, origin, seq)`, through the same queue rules
//!   the kiosk used when it took the step (`kiosk_core::queue`). Every kiosk holding the same ops
//!   computes the same queue, whatever order they arrived in: no voting, no leader, no home-made
//!   consensus. A step that no longer fits (two counters called the same turn while cut off) is
//!   dropped by that fixed order and kept as a [`Conflict`] staff see.
//!
//! Marks that are not queue steps ride the same ops: a survey answered (`rate`), a coupon
//! redeemed, an assistance request and its acknowledgement (the first acknowledgement in the
//! store's order stands).
//!
//! Numbers are the one thing that cannot be merged after the fact; see [`numbering`].
//!
//! No I/O, no clock, no async: time is passed in.

mod hlc;
pub mod numbering;
mod op;
mod replica;

pub use hlc::Hlc;
pub use op::{OpKey, Step, StoreOp};
pub use replica::{AssistAck, AssistRequest, Conflict, StoreQueue, SurveyStatus, apply_step};

#[cfg(test)]
mod tests;
