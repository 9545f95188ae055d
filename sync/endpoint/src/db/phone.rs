//! What the customer's phone shows of one turn (the turn page, `/t/{token}`): its place in the
//! store's live queue, an estimated wait, the counter when called, whether it may be rated, and
//! whether the store's kiosks are in touch.
//!
//! Data flow: ingest → `queue_turns` ([`super::queue`]) → **turn view** → phone page (SSE).
//! Pure: the backends read the rows, [`view`] decides.

use kiosk_protocol::wire::SurveyStatus;
use serde::{Deserialize, Serialize};

use super::queue::TurnStatus;

/// A browser's push subscription as `PushSubscription.toJSON()` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PushSubscription {
    /// The push service's URL for this browser (`https://`; `http://` only to loopback).
    #[schemars(length(min = 1, max = 1024))]
    pub endpoint: String,
    /// When the subscription expires, if the browser says (unix ms; ignored).
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<u64>,
    /// The subscription's keys.
    pub keys: PushKeys,
}

/// The keys of a [`PushSubscription`] (base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PushKeys {
    /// The browser's P-256 public key (65 bytes, uncompressed point).
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{86,88}={0,2}$"))]
    pub p256dh: String,
    /// The shared authentication secret (16 bytes).
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{22,24}={0,2}$"))]
    pub auth: String,
}

/// An identified customer's turn today who consented to turn notices by SMS and left a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsCandidate {
    /// The turn.
    pub turn_id: uuid::Uuid,
    /// The customer's phone as registered (personal data: never logged).
    pub phone: String,
    /// The customer's language.
    pub locale: String,
    /// The store's name (the message says where).
    pub store_name: String,
}

/// A subscription with what the notifier needs to know of its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// The turn.
    pub turn_id: uuid::Uuid,
    /// Its printed label.
    pub label: String,
    /// The page's language when it subscribed.
    pub lang: String,
    /// The turn page's path (what the notification opens).
    pub page: String,
    /// The browser's subscription.
    pub subscription: PushSubscription,
    /// "Near" was sent.
    pub sent_near: bool,
    /// "Called" was sent.
    pub sent_called: bool,
}

/// A store whose kiosks have not reached the endpoint for this long is shown offline: a kiosk
/// sends its events as they are journaled and reads its feed every minute, so three missed feed
/// reads mean it cannot reach the endpoint.
pub const OFFLINE_AFTER_MS: i64 = 3 * 60 * 1000;
/// A turn with this many turns ahead (or fewer) is "near" (its notifications), unless its
/// store says otherwise.
pub const DEFAULT_TURNS_AHEAD: u32 = 3;
/// Calls of a service needed before a wait is estimated from their pace.
pub const MIN_CALLS_FOR_ESTIMATE: usize = 2;

/// A turn as the customer's phone shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TurnView {
    /// The turn as printed (`A-042`).
    pub turn: String,
    /// The store's name.
    pub store_name: String,
    /// The service it queues for (after transfers), once the store told the endpoint.
    pub service: Option<String>,
    /// Where it is now (`unknown` until the issuing kiosk's event arrived).
    pub status: TurnStatus,
    /// Turns of the same service to be called before it (while waiting).
    pub ahead: Option<u64>,
    /// Estimated seconds until it is called (while waiting; absent without enough calls today
    /// to measure the pace).
    pub estimated_wait_s: Option<u64>,
    /// The counter it was called to (called, parked, served).
    pub counter: Option<String>,
    /// Whether it may be rated now (the kiosks' rule, docs/DESIGN.md invariant 17).
    pub survey: SurveyStatus,
    /// No kiosk of the store reached the endpoint for [`OFFLINE_AFTER_MS`]: what is shown is
    /// the last known state.
    pub offline: bool,
    /// The latest contact of any of the store's kiosks, unix ms.
    pub last_contact_ms: Option<i64>,
    /// Now, unix ms (server time): ages are measured to it.
    pub now_ms: i64,
}

/// One turn of the store's business day, as [`view`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTurn {
    /// Turn id.
    pub turn_id: String,
    /// Where it is.
    pub status: TurnStatus,
    /// Its service now.
    pub service: Option<String>,
    /// A priority turn (called before the others of its service).
    pub priority: bool,
    /// Issue time, skew-corrected, unix ms.
    pub issued_ms: Option<i64>,
    /// Latest call, unix ms.
    pub called_ms: Option<i64>,
    /// Counter it is at.
    pub counter: Option<String>,
    /// Label.
    pub label: Option<String>,
}

/// What the backends read for [`view`].
#[derive(Debug, Clone, Default)]
pub struct TurnRows {
    /// The store's name (`None`: no such store).
    pub store_name: Option<String>,
    /// The turn's own row, if its events arrived.
    pub turn: Option<DayTurn>,
    /// Every turn of its business day in the store.
    pub day: Vec<DayTurn>,
    /// Latest contact of any of the store's kiosks.
    pub last_contact_ms: Option<i64>,
    /// Its survey status.
    pub survey: Option<SurveyStatus>,
}

/// The queue order within a service: priority turns first, then by issue, then by id.
fn order_key(t: &DayTurn) -> (bool, i64, &str) {
    (!t.priority, t.issued_ms.unwrap_or(i64::MAX), &t.turn_id)
}

/// The phone's view of turn `label` from the rows read at `now_ms`; `None` when the store does
/// not exist.
pub fn view(label: &str, rows: TurnRows, now_ms: i64) -> Option<TurnView> {
    let store_name = rows.store_name?;
    let me = rows.turn;
    let status = me.as_ref().map_or(TurnStatus::Unknown, |t| t.status);
    let service = me.as_ref().and_then(|t| t.service.clone());
    let (ahead, estimated_wait_s) = match (&me, status) {
        (Some(me), TurnStatus::Waiting) => {
            let same = |t: &&DayTurn| t.service == me.service;
            let ahead = rows
                .day
                .iter()
                .filter(same)
                .filter(|t| t.status == TurnStatus::Waiting && t.turn_id != me.turn_id)
                .filter(|t| order_key(t) < order_key(me))
                .count() as u64;
            let mut calls: Vec<i64> = rows
                .day
                .iter()
                .filter(same)
                .filter_map(|t| t.called_ms)
                .collect();
            calls.sort_unstable();
            let estimate = (calls.len() >= MIN_CALLS_FOR_ESTIMATE)
                .then(|| {
                    let (first, last) = (calls[0], calls[calls.len() - 1]);
                    let gap_ms = (last - first) / (calls.len() as i64 - 1);
                    u64::try_from(gap_ms).ok()
                })
                .flatten()
                .map(|gap_ms| gap_ms.saturating_mul(ahead + 1) / 1000);
            (Some(ahead), estimate)
        }
        _ => (None, None),
    };
    let counter = me.as_ref().and_then(|t| t.counter.clone());
    let offline = rows
        .last_contact_ms
        .is_none_or(|at| now_ms - at > OFFLINE_AFTER_MS);
    Some(TurnView {
        turn: me
            .as_ref()
            .and_then(|t| t.label.clone())
            .unwrap_or_else(|| label.to_owned()),
        store_name,
        service,
        status,
        ahead,
        estimated_wait_s,
        counter,
        survey: rows.survey.unwrap_or(SurveyStatus::Unknown),
        offline,
        last_contact_ms: rows.last_contact_ms,
        now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(id: &str, status: TurnStatus, issued: i64, called: Option<i64>) -> DayTurn {
        DayTurn {
            turn_id: id.to_owned(),
            status,
            service: Some("A".to_owned()),
            priority: false,
            issued_ms: Some(issued),
            called_ms: called,
            counter: called.map(|_| "3".to_owned()),
            label: Some(format!("A-{id}")),
        }
    }

    fn rows(me: &str, day: Vec<DayTurn>, contact: i64) -> TurnRows {
        TurnRows {
            store_name: Some("Centro".to_owned()),
            turn: day.iter().find(|t| t.turn_id == me).cloned(),
            day,
            last_contact_ms: Some(contact),
            survey: Some(SurveyStatus::NotServed),
        }
    }

    #[test]
    fn turns_waiting_before_it_count_as_ahead_and_the_pace_of_calls_estimates_the_wait() {
        let day = vec![
            turn("1", TurnStatus::Served, 0, Some(60_000)),
            turn("2", TurnStatus::Called, 1_000, Some(180_000)),
            turn("3", TurnStatus::Waiting, 2_000, None),
            turn("4", TurnStatus::Waiting, 3_000, None),
            turn("5", TurnStatus::Waiting, 4_000, None),
        ];
        let v = view("A-4", rows("4", day, 200_000), 200_000).unwrap();
        assert_eq!(v.ahead, Some(1));
        // Calls 120 s apart; one ahead, then this one: 240 s.
        assert_eq!(v.estimated_wait_s, Some(240));
        assert!(!v.offline);
    }

    #[test]
    fn a_priority_turn_issued_later_is_ahead_and_other_services_are_not() {
        let mut vip = turn("9", TurnStatus::Waiting, 9_000, None);
        vip.priority = true;
        let mut other = turn("8", TurnStatus::Waiting, 0, None);
        other.service = Some("B".to_owned());
        let day = vec![turn("3", TurnStatus::Waiting, 2_000, None), vip, other];
        let v = view("A-3", rows("3", day, 0), 0).unwrap();
        assert_eq!(v.ahead, Some(1));
        assert_eq!(
            v.estimated_wait_s, None,
            "no calls yet: no pace to estimate from"
        );
    }

    #[test]
    fn a_store_silent_for_three_minutes_is_offline_and_an_unknown_turn_keeps_its_printed_label() {
        let r = TurnRows {
            store_name: Some("Centro".to_owned()),
            last_contact_ms: Some(0),
            ..TurnRows::default()
        };
        let v = view("B-007", r, OFFLINE_AFTER_MS + 1).unwrap();
        assert!(v.offline);
        assert_eq!(v.turn, "B-007");
        assert_eq!(v.status, TurnStatus::Unknown);
        assert!(view("B-007", TurnRows::default(), 0).is_none());
    }
}
