//! Messages from the counter page to the executor: what staff ask for ([`StaffCommand`]), at
//! which counter, and the executor's answer ([`StaffAck`]) on the request's own channel.
//!
//! They live beside the executor that consumes them; the UI server only forwards them.

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use uuid::Uuid;

/// A staff action with the channel to answer it on.
#[derive(Debug)]
pub struct StaffRequest {
    /// The counter the staff member works at.
    pub counter: String,
    /// The staff member's id when they logged in with a PIN of their own (the store's `staff`
    /// list): their calls, services and no-shows carry it.
    pub staff: Option<String>,
    /// What they asked for.
    pub command: StaffCommand,
    /// The runtime's answer: a short confirmation, or what went wrong in words staff can act on.
    pub reply: oneshot::Sender<Result<StaffAck, String>>,
}

/// What staff can do from the counter page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StaffCommand {
    /// Call the next turn of these services (all when empty): priority first, then FIFO.
    CallNext {
        /// Service letters.
        #[serde(default)]
        services: Vec<String>,
    },
    /// Call a given turn (e.g. scanned from its ticket).
    Call {
        /// The turn.
        turn_id: Uuid,
    },
    /// Call the turn of a ticket scanned at the counter (its signed QR text, as a USB scanner
    /// types it into the page); a forged or foreign ticket is refused.
    CallScanned {
        /// The scanned text.
        code: String,
    },
    /// Call today's turn with this label (`A-042`, typed by staff or read off the ticket).
    CallLabel {
        /// The label.
        label: String,
    },
    /// Set the counter's turn aside (the customer went to fetch something); call it back later
    /// with `call`, at any counter.
    Park {
        /// The turn.
        turn_id: Uuid,
    },
    /// Move a turn to another service; it keeps its label and its place by issue time.
    Transfer {
        /// The turn.
        turn_id: Uuid,
        /// The service letter it moves to.
        to: String,
    },
    /// Mark a waiting (or parked) turn as having left before being served.
    WalkOut {
        /// The turn.
        turn_id: Uuid,
    },
    /// [`StaffCommand::WalkOut`] for today's turn with this label.
    WalkOutLabel {
        /// The label.
        label: String,
    },
    /// Call the counter's turn again.
    Recall {
        /// The turn.
        turn_id: Uuid,
    },
    /// Mark the turn served.
    Served {
        /// The turn.
        turn_id: Uuid,
    },
    /// Mark the turn as not having shown up.
    NoShow {
        /// The turn.
        turn_id: Uuid,
    },
    /// Print the turn's ticket again (recorded as `ticket_printed` with `reprint: true`).
    Reprint {
        /// The turn.
        turn_id: Uuid,
    },
    /// Print today's manager report on the kiosk printer.
    PrintReport,
    /// Redeem a coupon: its printed code as staff type it (`CAFE-A-3F9C2D1E07`), or its QR's
    /// signed text as a USB scanner types it. It converts its campaign variant once in the
    /// store; a coupon used before is refused with a kind word.
    RedeemCoupon {
        /// What was typed or scanned.
        code: String,
    },
    /// "On my way": a staff member takes a call for assistance (from a kiosk's button or a
    /// Step-In device); it leaves every counter page of the store.
    AcknowledgeAssistance {
        /// The request.
        request_id: Uuid,
    },
    /// A Step-In device asks for a turn (`counter` is the device's id). Not for the counter
    /// page: only the Step-In API, after checking the device's signature, sends it.
    #[serde(skip)]
    StepInIssue {
        /// Service letter.
        service: String,
        /// Print the ticket at this kiosk (else the answer carries the ticket's link).
        print: bool,
    },
    /// A Step-In device calls a staff member to it (`counter` is the device's id). Only the
    /// Step-In API sends it.
    #[serde(skip)]
    StepInAssist {
        /// The device as staff know it.
        place_name: String,
    },
}

/// The runtime's confirmation of a staff action.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StaffAck {
    /// The turn concerned, when there is one (`A-042`).
    pub label: Option<String>,
    /// `None` when a call found nobody waiting.
    pub message: Option<String>,
    /// A turn issued for a Step-In device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<StepInTurn>,
    /// An assistance request raised for a Step-In device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Uuid>,
}

/// A turn issued through the Step-In API, as the device shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInTurn {
    /// Turn id.
    pub turn_id: Uuid,
    /// Label (`A-042`).
    pub label: String,
    /// Service letter.
    pub service: String,
    /// Turns ahead when issued.
    pub position: u32,
    /// Estimated wait when issued (seconds).
    pub estimated_wait_s: u32,
    /// The ticket's link (`<base>/t/<signed turn>`): the device shows it as a QR code.
    pub link: String,
    /// Whether the ticket came out of this kiosk's printer.
    pub printed: bool,
}
