//! A queue step as a replicated operation.

use kiosk_core::locale::Locale;
use kiosk_protocol::CardToken;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// One queue step taken at one kiosk: the unit kiosks replicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreOp {
    /// The kiosk that took the step.
    pub origin: String,
    /// Its per-kiosk sequence number: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// Hybrid logical clock stamp: after every step the kiosk had seen (see [`crate::Hlc`]).
    pub hlc: u64,
    /// When the step was taken, in store local time (the sequencer's time for a sequence number).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What was done.
    pub step: Step,
}

impl StoreOp {
    /// Where the op sorts in the store's fixed order.
    pub fn key(&self) -> OpKey {
        OpKey {
            hlc: self.hlc,
            origin: self.origin.clone(),
            seq: self.seq,
        }
    }
}

/// The store's total order of ops: hybrid logical time, then kiosk id, then sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpKey {
    /// Hybrid logical clock stamp.
    pub hlc: u64,
    /// Kiosk id.
    pub origin: String,
    /// Per-kiosk sequence.
    pub seq: u64,
}

/// A queue step, as recorded: staff's "call next" is recorded as the call of the turn it chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// A turn was issued with a number the store handed out.
    Issue {
        /// The new turn.
        turn_id: Uuid,
        /// Service letter.
        service: String,
        /// The number.
        number: u32,
        /// `None`: the store's sequence; `Some(k)`: kiosk `k`'s own block while cut off.
        tag: Option<u8>,
        /// Priority turn.
        priority: bool,
        /// The identified customer, if any (a keyed token, never a card UID).
        card_token: Option<CardToken>,
        /// The campaign printed on the ticket, if any.
        campaign_id: Option<String>,
        /// The ticket's language.
        locale: Locale,
        /// The campaign's coupon was handed out with the turn: the store counts a card holder's
        /// coupons of each campaign from these marks (the campaign's `max_per_customer`).
        /// Absent in ops of kiosks of before coupon rules: no coupon counted.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        coupon: bool,
    },
    /// A waiting or parked turn was called to a counter.
    Call {
        /// The turn.
        turn_id: Uuid,
        /// The counter.
        counter: String,
    },
    /// A called turn was called again (past the recall limit: marked no-show).
    Recall {
        /// The turn.
        turn_id: Uuid,
        /// The counter.
        counter: String,
    },
    /// A called turn was served.
    Serve {
        /// The turn.
        turn_id: Uuid,
        /// The counter.
        counter: String,
    },
    /// A called turn did not show up.
    NoShow {
        /// The turn.
        turn_id: Uuid,
        /// The counter.
        counter: String,
    },
    /// A called turn was set aside.
    Park {
        /// The turn.
        turn_id: Uuid,
        /// The counter.
        counter: String,
    },
    /// A turn moved to another service.
    Transfer {
        /// The turn.
        turn_id: Uuid,
        /// The new service letter.
        to: String,
        /// The counter that moved it, if one did.
        counter: Option<String>,
    },
    /// A waiting turn left.
    WalkOut {
        /// The turn.
        turn_id: Uuid,
        /// The counter whose staff marked it, if any.
        counter: Option<String>,
    },
    /// The customer of a served turn answered its survey (at a kiosk, or later from a phone):
    /// the store's mark that this turn's one answer is taken. Not a queue step: the queue is
    /// unchanged; [`crate::StoreQueue::survey_status`] reads the marks.
    Rate {
        /// The turn rated.
        turn_id: Uuid,
    },
    /// A coupon was redeemed (scanned at a kiosk or entered at a counter): the store's mark that
    /// it is used. Not a queue step.
    Redeem {
        /// The coupon's code.
        code: String,
        /// Its campaign.
        campaign_id: String,
        /// The campaign variant it was issued under.
        variant: String,
    },
    /// Someone asked for a staff member to come (the kiosk's "call an assistant" button, or a
    /// Step-In device): every counter page of the store shows it until one acknowledges it.
    /// Not a queue step; [`crate::StoreQueue::assistance`] reads the marks.
    AssistRequest {
        /// The request (UUIDv7).
        request_id: Uuid,
        /// Who asked: `kiosk` or `step_in`.
        source: String,
        /// Where staff should go: the kiosk's or the device's id.
        place: String,
        /// The place as staff know it.
        place_name: String,
        /// The customer's turn, if they have one.
        turn_id: Option<Uuid>,
    },
    /// A staff member took an assistance request at a counter: it leaves every counter page.
    AssistAck {
        /// The request.
        request_id: Uuid,
        /// The counter whose staff took it.
        counter: String,
    },
}

impl Step {
    /// The turn the step is about.
    pub fn turn_id(&self) -> Uuid {
        match self {
            Step::Issue { turn_id, .. }
            | Step::Call { turn_id, .. }
            | Step::Recall { turn_id, .. }
            | Step::Serve { turn_id, .. }
            | Step::NoShow { turn_id, .. }
            | Step::Park { turn_id, .. }
            | Step::Transfer { turn_id, .. }
            | Step::WalkOut { turn_id, .. }
            | Step::Rate { turn_id } => *turn_id,
            Step::AssistRequest { turn_id, .. } => turn_id.unwrap_or_else(Uuid::nil),
            Step::Redeem { .. } | Step::AssistAck { .. } => Uuid::nil(),
        }
    }

    /// The counter that took the step, if any.
    pub fn counter(&self) -> Option<&str> {
        match self {
            Step::Call { counter, .. }
            | Step::Recall { counter, .. }
            | Step::Serve { counter, .. }
            | Step::NoShow { counter, .. }
            | Step::Park { counter, .. }
            | Step::AssistAck { counter, .. } => Some(counter),
            Step::Transfer { counter, .. } | Step::WalkOut { counter, .. } => counter.as_deref(),
            Step::Issue { .. }
            | Step::Rate { .. }
            | Step::Redeem { .. }
            | Step::AssistRequest { .. } => None,
        }
    }

    /// A short name for staff (`call`, `serve`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Step::Issue { .. } => "issue",
            Step::Call { .. } => "call",
            Step::Recall { .. } => "recall",
            Step::Serve { .. } => "serve",
            Step::NoShow { .. } => "no-show",
            Step::Park { .. } => "park",
            Step::Transfer { .. } => "transfer",
            Step::WalkOut { .. } => "walkout",
            Step::Rate { .. } => "rate",
            Step::Redeem { .. } => "redeem",
            Step::AssistRequest { .. } => "assist",
            Step::AssistAck { .. } => "assist-ack",
        }
    }
}
