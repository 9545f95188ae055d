//! The queue's data: settings from the config, the rows the journal persists (day counters and
//! turns), the changes it writes, and the boards and reports the screens show.

use std::fmt;
use std::str::FromStr;

use kiosk_protocol::CardToken;
use kiosk_protocol::events::{Event, TicketIssued};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time};
use uuid::Uuid;

use super::QueueError;
use crate::locale::{Locale, Localized};

/// One service customers queue for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDef {
    /// The letter printed before the number (`A`).
    pub letter: String,
    /// The name on screen and ticket (`Caja` / `Checkout`).
    pub name: Localized,
    /// Whether customers may ask for a priority turn (accessibility, pregnancy, ...).
    #[serde(default)]
    pub priority_allowed: bool,
    /// Expected seconds per customer (the site config's `expected_minutes`), used for the wait
    /// estimate until the service has served [`QueueSettings::min_sample`] turns.
    #[serde(default = "default_expected_s")]
    pub expected_s: u32,
}

fn default_expected_s() -> u32 {
    300
}

/// How the store's queue works; built by the config module from the store's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSettings {
    /// The services, in the order the kiosk shows them.
    pub services: Vec<ServiceDef>,
    /// Local time at which a new service day starts and numbering restarts at 1 (the store's
    /// opening time, or a bit earlier if customers queue before the doors open).
    pub opening_time: Time,
    /// Service times kept per service for the wait estimate (the last N served turns).
    pub history: usize,
    /// Served turns a service needs before its learned service time replaces the configured
    /// `expected_s` (see [`QueueSettings::new`] for why 5).
    pub min_sample: usize,
    /// Counters assumed open when none is serving now (the site config's `queue.counters`).
    pub counters: u32,
    /// A counter counts as open while it serves a turn, and this long after it finished one.
    pub open_counter_window_s: u32,
    /// Entries in the board's "last called" list.
    pub recent_calls: usize,
    /// Calls a turn may get in all (the first and the recalls); a recall past it marks the turn
    /// a no-show instead.
    pub recall_limit: u32,
}

impl QueueSettings {
    /// Settings with the given services and opening time and the usual defaults: the mean of
    /// the last 20 service times once a service has served 5 turns (its `expected_s` before),
    /// one counter when none is serving, a counter open for 5 minutes after it finished a turn,
    /// 8 recent calls on the board, 3 calls per turn.
    ///
    /// Why 5: the mean of n service times with a coefficient of variation near 0.5 (what queue
    /// studies report for counter work) is off by 0.5/sqrt(n) of the true mean: 22% at n = 5,
    /// inside the ±25% a customer tolerates, while a configured guess is typically off by more
    /// than that once the day's real mix shows. The mean (not the median) because the wait is
    /// the *sum* of the service times ahead, whose expectation is n times the mean; the median
    /// of a right-skewed service time underestimates it.
    pub fn new(services: Vec<ServiceDef>, opening_time: Time) -> Self {
        QueueSettings {
            services,
            opening_time,
            history: 20,
            min_sample: 5,
            counters: 1,
            open_counter_window_s: 300,
            recent_calls: 8,
            recall_limit: 3,
        }
    }

    /// The service with this letter (case-insensitive).
    pub fn service(&self, letter: &str) -> Option<&ServiceDef> {
        self.services
            .iter()
            .find(|s| s.letter.eq_ignore_ascii_case(letter))
    }
}

/// The business day a turn belongs to: from one opening time to the next, named after the
/// calendar date it starts on. Serialised as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceDay(pub Date);

impl ServiceDay {
    /// The service day at local time `now` for a store opening at `opening`: before the
    /// opening time it is still the previous day's.
    pub fn at(now: OffsetDateTime, opening: Time) -> ServiceDay {
        let date = now.date();
        if now.time() < opening {
            ServiceDay(date.previous_day().unwrap_or(date))
        } else {
            ServiceDay(date)
        }
    }

    /// The day before.
    pub fn previous(self) -> ServiceDay {
        ServiceDay(self.0.previous_day().unwrap_or(self.0))
    }
}

impl fmt::Display for ServiceDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            u8::from(self.0.month()),
            self.0.day()
        )
    }
}

/// A string that is not a `YYYY-MM-DD` date.
#[derive(Debug, thiserror::Error)]
#[error("service day {text:?} is not a YYYY-MM-DD date")]
pub struct BadServiceDay {
    text: String,
    #[source]
    source: time::error::Parse,
}

impl FromStr for ServiceDay {
    type Err = BadServiceDay;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        Date::parse(s, format)
            .map(ServiceDay)
            .map_err(|source| BadServiceDay {
                text: s.to_owned(),
                source,
            })
    }
}

impl TryFrom<String> for ServiceDay {
    type Error = BadServiceDay;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ServiceDay> for String {
    fn from(d: ServiceDay) -> String {
        d.to_string()
    }
}

/// The persisted counter row: the last number issued for a service on a service day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounter {
    /// The service day.
    pub service_day: ServiceDay,
    /// The service letter.
    pub service: String,
    /// The last number issued (the next turn gets this + 1).
    pub last_number: u32,
}

/// Where a turn is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// Waiting to be called.
    Waiting,
    /// Called to a counter (maybe more than once), not finished.
    Called,
    /// Served.
    Served,
    /// Called, but the customer did not come.
    NoShow,
    /// Still waiting when its service day ended.
    Expired,
    /// Called, then set aside at the counter (the customer went to fetch something); it waits
    /// to be called back and does not occupy the counter.
    Parked,
    /// Left the store before being called (unlike a no-show, who was called).
    WalkedOut,
}

impl TurnStatus {
    /// Whether nothing more can happen to the turn.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TurnStatus::Served | TurnStatus::NoShow | TurnStatus::Expired | TurnStatus::WalkedOut
        )
    }
}

/// The persisted turn row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// Unique id (in the ticket's signed QR).
    pub id: Uuid,
    /// The service day the number belongs to.
    pub service_day: ServiceDay,
    /// Service letter.
    pub service: String,
    /// Number within the service and day.
    pub number: u32,
    /// Priority turn.
    pub priority: bool,
    /// The identified customer, if any.
    pub card_token: Option<CardToken>,
    /// Campaign printed on the ticket, if any.
    pub campaign_id: Option<String>,
    /// Language of the ticket.
    pub locale: Locale,
    /// When it was issued (store local time).
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Current status.
    pub status: TurnStatus,
    /// The counter that called it.
    pub counter: Option<String>,
    /// First call.
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_called_at: Option<OffsetDateTime>,
    /// Latest call (recalls move it).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_called_at: Option<OffsetDateTime>,
    /// How many times it was called.
    pub calls: u32,
    /// When it was served, marked no-show or expired.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// For a number taken while its kiosk was cut off from the store's sequencer: the kiosk's
    /// number in the store, printed in the label (`A2-003`); `None` for the store's sequence.
    #[serde(default)]
    pub tag: Option<u8>,
    /// The service letter it was issued for, when it was transferred since: the label keeps it.
    #[serde(default)]
    pub issued_service: Option<String>,
}

impl Turn {
    /// The turn as printed and announced: service letter, dash, number with at least three
    /// digits (`A-042`, `B-1234`); a number taken outside the store's sequence carries its
    /// kiosk's number after the letter (`A2-003`). A transferred turn keeps its label.
    pub fn label(&self) -> String {
        let service = self.issued_service.as_deref().unwrap_or(&self.service);
        match self.tag {
            None => turn_label(service, self.number),
            Some(tag) => tagged_label(service, tag, self.number),
        }
    }

    pub(super) fn wrong_status(&self, wanted: &'static str) -> QueueError {
        QueueError::WrongStatus {
            label: self.label(),
            status: self.status,
            wanted,
        }
    }
}

/// Formats a turn label (`A-042`).
pub fn turn_label(service: &str, number: u32) -> String {
    format!("{service}-{number:03}")
}

/// Formats the label of a number taken outside the store's sequence by kiosk `tag` (`A2-003`).
/// Service letters contain no digit (the config checks it), so these never equal a
/// [`turn_label`].
pub fn tagged_label(service: &str, tag: u8, number: u32) -> String {
    format!("{service}{tag}-{number:03}")
}

/// Where a new turn's number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Numbering {
    /// The number.
    pub number: u32,
    /// `None`: the store's sequence; `Some(k)`: kiosk `k`'s own block while cut off.
    pub tag: Option<u8>,
}

/// What one queue step writes: turn rows to upsert, the day counter to store (issuing only) and
/// the events to append, all in one journal transaction, before [`super::Queue::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Turn rows to insert or replace (by id).
    pub upserts: Vec<Turn>,
    /// The day counter row to insert or replace.
    pub counter: Option<DayCounter>,
    /// Events to journal.
    pub events: Vec<Event>,
}

/// A planned new turn: the change to persist and the ticket's facts (also in `change.events`).
#[derive(Debug, Clone, PartialEq)]
pub struct IssuePlan {
    /// What to persist.
    pub change: Change,
    /// The `ticket_issued` payload: label, number, position, estimated wait, service day.
    pub ticket: TicketIssued,
}

/// The queue as the counter page sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueBoard {
    /// The current service day.
    pub service_day: ServiceDay,
    /// One entry per configured service.
    pub services: Vec<ServiceBoard>,
    /// Turns being served now (called, not finished).
    pub serving: Vec<ServingEntry>,
    /// The latest calls, newest first (recalls move a turn to the top).
    pub recent_calls: Vec<CallEntry>,
    /// Turns set aside at a counter, to be called back.
    #[serde(default)]
    pub parked: Vec<ParkedEntry>,
    /// Counters open now (serving, or finished a turn within the open-counter window).
    #[serde(default)]
    pub open_counters: u32,
    /// Steps the store dropped when kiosks that were cut off met again (filled in by the
    /// runtime from the store layer), newest first.
    #[serde(default)]
    pub conflicts: Vec<ConflictNote>,
    /// Kiosks of the store this kiosk cannot reach now (filled in by the runtime).
    #[serde(default)]
    pub unreachable_kiosks: Vec<String>,
    /// Calls for a staff member no counter has acknowledged yet, oldest first (filled in by the
    /// runtime from the store layer): every counter page shows them until one takes them.
    #[serde(default)]
    pub assistance: Vec<AssistanceNote>,
}

/// A call for a staff member, as the counter page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistanceNote {
    /// The request (sent back to acknowledge it).
    pub request_id: Uuid,
    /// Who asked: `kiosk` (the screen's button) or `step_in` (a nearby device).
    pub source: String,
    /// Where to go: the kiosk's or the device's id.
    pub place: String,
    /// The place as staff know it.
    pub place_name: String,
    /// The customer's turn, when the request names one.
    pub turn_label: Option<String>,
    /// When it was asked (store time, RFC 3339).
    pub requested_at: String,
    /// Whole seconds since, when the board was made (the page counts on from there).
    pub age_s: u64,
}

/// A dropped step, as staff see it on the counter page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictNote {
    /// The turn's label.
    pub label: String,
    /// The counter whose step was dropped.
    pub counter: Option<String>,
    /// The step (`call`, `serve`, ...).
    pub step: String,
    /// Why.
    pub reason: String,
}

/// A parked turn on the counter page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedEntry {
    /// Turn id.
    pub turn_id: Uuid,
    /// Label.
    pub label: String,
    /// Service letter.
    pub service: String,
    /// The counter that parked it.
    pub counter: String,
}

impl QueueBoard {
    /// An empty board for a service day (before the queue is loaded).
    pub fn empty(service_day: ServiceDay) -> Self {
        QueueBoard {
            service_day,
            services: Vec::new(),
            serving: Vec::new(),
            recent_calls: Vec::new(),
            parked: Vec::new(),
            open_counters: 0,
            conflicts: Vec::new(),
            unreachable_kiosks: Vec::new(),
            assistance: Vec::new(),
        }
    }
}

/// One service on the board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceBoard {
    /// Letter.
    pub letter: String,
    /// Name.
    pub name: Localized,
    /// Whether priority turns are offered.
    pub priority_allowed: bool,
    /// Turns waiting.
    pub waiting: u32,
    /// Of which priority turns.
    pub priority_waiting: u32,
    /// Estimated wait for a turn taken now (seconds).
    pub estimated_wait_s: u32,
    /// The turn a counter would call next for this service.
    pub next: Option<String>,
}

/// A turn being served. The runtime fills `customer` from the profile cache for the counter page;
/// the lobby never sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingEntry {
    /// Turn id.
    pub turn_id: Uuid,
    /// Label (`A-042`).
    pub label: String,
    /// Service letter.
    pub service: String,
    /// Counter serving it.
    pub counter: String,
    /// Priority turn.
    pub priority: bool,
    /// Times called.
    pub calls: u32,
    /// The identified customer's card token, if any (for the runtime to look up the name).
    pub card_token: Option<CardToken>,
    /// Campaign printed on the ticket, if any.
    pub campaign_id: Option<String>,
    /// Name and campaign script, filled in by the runtime for identified customers.
    pub customer: Option<CustomerNote>,
}

/// What staff see about an identified customer at their counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerNote {
    /// Name to greet them by.
    pub name: String,
    /// Segment, if known.
    pub segment: Option<String>,
    /// The campaign's suggested script for staff, if any.
    pub campaign_script: Option<String>,
}

/// One call on the board (what the lobby shows and announces).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEntry {
    /// Turn id.
    pub turn_id: Uuid,
    /// Label.
    pub label: String,
    /// Service letter.
    pub service: String,
    /// Counter.
    pub counter: String,
    /// Times called: a change of (turn_id, calls) is a new announcement.
    pub calls: u32,
    /// Current status.
    pub status: TurnStatus,
}

/// The manager report's queue figures for one service day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayReport {
    /// The day.
    pub service_day: ServiceDay,
    /// One entry per configured service.
    pub services: Vec<ServiceReport>,
}

/// The figures of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// Letter.
    pub letter: String,
    /// Name.
    pub name: Localized,
    /// Tickets issued.
    pub issued: u32,
    /// Turns served.
    pub served: u32,
    /// Turns that did not show up.
    pub no_show: u32,
    /// Turns that left before being called.
    #[serde(default)]
    pub walked_out: u32,
    /// Turns still waiting or being served.
    pub waiting: u32,
    /// Average seconds from issue to first call, over called turns.
    pub average_wait_s: Option<u32>,
    /// Average seconds from first call to served.
    pub average_service_s: Option<u32>,
}
