//! Each store's live queue: who is waiting now per service, which counters are open, the latest
//! calls, and the tickets each kiosk of the store issued today.
//!
//! Data flow: ingest → `queue_turns` (one row per turn: every step it had, as it came, and the
//! state they **fold** into) → **figures** → `/dashboard`.
//!
//! The kiosks of a store share one queue, so a turn's events come from several kiosks, in any
//! order, late (a kiosk offline for days) and more than once (dedupe by event id happens before).
//! The state of a turn is therefore never updated step by step: it is recomputed from all its
//! steps, kept in its row, by [`fold`], a pure function of the set of steps, so any arrival order
//! gives the same state. Its rules:
//! - **Final states win**: served, no-show and walked out beat waiting, called and parked; among
//!   steps of the same class the latest wins (skew-corrected time, then kiosk, then sequence).
//! - `ticket_issued` only says the turn exists and waits: a call that reached the endpoint first
//!   (or whose kiosk's clock put it a moment before the issue) is never undone by it.
//! - A transfer makes the turn wait again in its new service's line; a parked turn waits to be
//!   called back and does not occupy its counter.
//! - A `queue_conflict` voids the dropped step it names: the recording kiosk's own earlier step of
//!   that kind for that turn (and counter, when named), as the store itself dropped it.
//!
//! Times: skew-corrected server time throughout (docs/DESIGN.md invariant 6), so that waits
//! measured against the endpoint's "now" do not inherit a kiosk's clock error; the kiosk's own
//! wall time of the issue is kept beside it (`issued_wall_ms`).

use std::collections::BTreeMap;

use kiosk_protocol::events::Event;
use serde::{Deserialize, Serialize};

use super::dashboard::start_of_day_ms;
use super::model::{QueueStep, QueueStepKind, StoreRecord};

/// Latest calls listed when the caller does not say.
pub const DEFAULT_CALLS: u32 = 10;
/// At most this many latest calls.
pub const MAX_CALLS: u32 = 50;
/// A counter that called a turn this recently is open, even with nobody at it now.
pub const COUNTER_OPEN_AFTER_CALL_MS: i64 = 30 * 60 * 1000;
/// Conflicts of the day listed (newest first); all are counted.
pub const MAX_CONFLICTS_LISTED: i64 = 10;

/// What a queue event does to the store's live queue (`None` for other events).
pub fn step_of(event: &Event) -> Option<QueueStep> {
    let step = |turn_id, kind, label: Option<&str>| QueueStep {
        turn_id: Some(turn_id),
        kind,
        label: label.map(str::to_owned),
        service: None,
        counter: None,
        business_day: None,
        priority: false,
        out_of_sequence: false,
        recall: false,
        detail: None,
        reason: None,
        staff: None,
    };
    Some(match event {
        Event::TicketIssued(t) => QueueStep {
            service: Some(t.service.clone()),
            business_day: Some(t.business_day.clone()),
            priority: t.priority,
            out_of_sequence: t.out_of_sequence,
            ..step(t.turn_id, QueueStepKind::Issued, Some(&t.turn))
        },
        Event::TurnCalled(t) => QueueStep {
            counter: Some(t.counter.clone()),
            staff: t.staff.clone(),
            recall: t.recall,
            ..step(t.turn_id, QueueStepKind::Called, Some(&t.turn))
        },
        Event::TurnServed(t) => QueueStep {
            counter: Some(t.counter.clone()),
            staff: t.staff.clone(),
            ..step(t.turn_id, QueueStepKind::Served, None)
        },
        Event::TurnNoShow(t) => QueueStep {
            counter: Some(t.counter.clone()),
            staff: t.staff.clone(),
            detail: t.recall_limit.then(|| "recall_limit".to_owned()),
            ..step(t.turn_id, QueueStepKind::NoShow, None)
        },
        Event::TurnTransferred(t) => QueueStep {
            service: Some(t.to_service.clone()),
            counter: t.counter.clone(),
            detail: Some(t.from_service.clone()),
            ..step(t.turn_id, QueueStepKind::Transferred, Some(&t.turn))
        },
        Event::TurnParked(t) => QueueStep {
            counter: Some(t.counter.clone()),
            ..step(t.turn_id, QueueStepKind::Parked, Some(&t.turn))
        },
        Event::TurnWalkedOut(t) => QueueStep {
            counter: t.counter.clone(),
            ..step(t.turn_id, QueueStepKind::WalkedOut, Some(&t.turn))
        },
        Event::QueueConflict(c) => QueueStep {
            turn_id: c.turn_id,
            counter: c.counter.clone(),
            detail: Some(c.step.clone()),
            reason: Some(c.reason.clone()),
            ..step(uuid::Uuid::nil(), QueueStepKind::Conflict, Some(&c.turn))
        },
        _ => return None,
    })
}

/// The step kind a conflict's `step` names (`call`, `turn_called`, `serve`, `park`, ...).
pub fn named_step(name: &str) -> Option<QueueStepKind> {
    let name = name.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    let name = name.strip_prefix("turn_").unwrap_or(&name);
    Some(match name {
        "issue" | "issued" | "ticket_issued" => QueueStepKind::Issued,
        "call" | "called" | "recall" => QueueStepKind::Called,
        "serve" | "served" => QueueStepKind::Served,
        "no_show" | "noshow" => QueueStepKind::NoShow,
        "transfer" | "transferred" => QueueStepKind::Transferred,
        "park" | "parked" => QueueStepKind::Parked,
        "walkout" | "walk_out" | "walked_out" => QueueStepKind::WalkedOut,
        _ => return None,
    })
}

/// A stored step: the event's [`QueueStep`] and where and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    /// The event's id (empty for a step read back from its turn's row, which does not keep it).
    pub event_id: String,
    /// The store of the kiosk that sent it.
    pub store_id: String,
    /// That kiosk.
    pub kiosk_id: String,
    /// The event's sequence at that kiosk.
    pub seq: i64,
    /// Skew-corrected time, unix ms.
    pub at_ms: i64,
    /// The kiosk's wall time, unix ms.
    pub wall_ms: i64,
    /// What it did.
    pub step: QueueStep,
}

impl StepRow {
    /// The order of steps: time, then kiosk and sequence (a total order every database and every
    /// arrival order agree on: a kiosk numbers its events once each).
    fn key(&self) -> (i64, &str, i64) {
        (self.at_ms, &self.kiosk_id, self.seq)
    }

    /// Whether `other` is the same event (the same kiosk's same sequence number).
    pub fn same_event(&self, other: &StepRow) -> bool {
        self.kiosk_id == other.kiosk_id && self.seq == other.seq
    }
}

/// A step as kept in its turn's row (`queue_turns.steps`, a JSON array): short names and no
/// empty fields, as every step of every turn is stored once more there; not its event id (the
/// kiosk and its sequence tell the steps apart) nor its store (the row's).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct StoredStep {
    /// Kiosk.
    k: String,
    /// Sequence at the kiosk.
    q: i64,
    /// Skew-corrected time.
    t: i64,
    /// Kiosk wall time.
    w: i64,
    /// Kind.
    x: QueueStepKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    p: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    o: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    r: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rs: Option<String>,
    /// Staff member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    st: Option<String>,
}

/// A turn's steps as its row keeps them.
pub fn encode_steps(steps: &[StepRow]) -> Result<String, serde_json::Error> {
    let stored: Vec<StoredStep> = steps
        .iter()
        .map(|r| StoredStep {
            k: r.kiosk_id.clone(),
            q: r.seq,
            t: r.at_ms,
            w: r.wall_ms,
            x: r.step.kind,
            l: r.step.label.clone(),
            sv: r.step.service.clone(),
            c: r.step.counter.clone(),
            d: r.step.business_day.clone(),
            p: r.step.priority,
            o: r.step.out_of_sequence,
            r: r.step.recall,
            dt: r.step.detail.clone(),
            rs: r.step.reason.clone(),
            st: r.step.staff.clone(),
        })
        .collect();
    serde_json::to_string(&stored)
}

/// The steps of turn `turn_id` of store `store_id` from its row ([`encode_steps`]).
pub fn decode_steps(
    turn_id: uuid::Uuid,
    store_id: &str,
    json: &str,
) -> Result<Vec<StepRow>, serde_json::Error> {
    let stored: Vec<StoredStep> = serde_json::from_str(json)?;
    Ok(stored
        .into_iter()
        .map(|s| StepRow {
            event_id: String::new(),
            store_id: store_id.to_owned(),
            kiosk_id: s.k,
            seq: s.q,
            at_ms: s.t,
            wall_ms: s.w,
            step: QueueStep {
                turn_id: Some(turn_id),
                kind: s.x,
                label: s.l,
                service: s.sv,
                counter: s.c,
                business_day: s.d,
                priority: s.p,
                out_of_sequence: s.o,
                recall: s.r,
                detail: s.dt,
                reason: s.rs,
                staff: s.st,
            },
        })
        .collect())
}

/// The latest call of each counter among `steps` at or after `since_ms` (calls a conflict later
/// dropped included: the counter was staffed and calling).
pub fn calls_since(steps: &[StepRow], since_ms: i64) -> Vec<(String, i64)> {
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    for s in steps {
        if s.step.kind == QueueStepKind::Called && s.at_ms >= since_ms {
            if let Some(c) = &s.step.counter {
                let at = latest.entry(c.clone()).or_insert(s.at_ms);
                *at = (*at).max(s.at_ms);
            }
        }
    }
    latest.into_iter().collect()
}

/// Where a turn is now.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// In its service's line (issued, or transferred).
    Waiting,
    /// Called to a counter and not finished.
    Called,
    /// Set aside at a counter, waiting to be called back (does not occupy the counter).
    Parked,
    /// Served.
    Served,
    /// Called and did not come.
    NoShow,
    /// Left before being called.
    WalkedOut,
    /// Only a conflict names it so far.
    Unknown,
}

impl TurnStatus {
    /// The name stored in `queue_turns.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Waiting => "waiting",
            TurnStatus::Called => "called",
            TurnStatus::Parked => "parked",
            TurnStatus::Served => "served",
            TurnStatus::NoShow => "no_show",
            TurnStatus::WalkedOut => "walked_out",
            TurnStatus::Unknown => "unknown",
        }
    }

    /// The status stored as `name` ([`TurnStatus::Unknown`] for anything else).
    pub fn from_name(name: &str) -> Self {
        [
            TurnStatus::Waiting,
            TurnStatus::Called,
            TurnStatus::Parked,
            TurnStatus::Served,
            TurnStatus::NoShow,
            TurnStatus::WalkedOut,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
        .unwrap_or(TurnStatus::Unknown)
    }
}

/// A turn's state now, folded from its steps ([`fold`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnState {
    /// Turn id.
    pub turn_id: String,
    /// Its store.
    pub store_id: String,
    /// Business day of its number, once its issue arrived.
    pub business_day: Option<String>,
    /// The service it waits for or was served in (after transfers).
    pub service: Option<String>,
    /// The turn as shown (`A-042`).
    pub label: Option<String>,
    /// The kiosk that issued it.
    pub kiosk_id: Option<String>,
    /// A priority turn.
    pub priority: bool,
    /// Numbered outside the store's sequence.
    pub out_of_sequence: bool,
    /// Issue time, skew-corrected, unix ms.
    pub issued_ms: Option<i64>,
    /// Issue time on the issuing kiosk's clock, unix ms.
    pub issued_wall_ms: Option<i64>,
    /// Where it is now.
    pub status: TurnStatus,
    /// The counter it is at (called, parked, served, no-show).
    pub counter: Option<String>,
    /// Its latest call, unix ms.
    pub called_ms: Option<i64>,
    /// The counter of its latest call.
    pub called_counter: Option<String>,
    /// The staff member of the step that decides its status (see `counter`), when one logged
    /// in with a PIN of their own.
    pub staff: Option<String>,
    /// The staff member of its latest call.
    pub called_staff: Option<String>,
    /// Its latest step, unix ms.
    pub last_ms: i64,
}

/// Which steps decide the status: an issue least, then the steps at counters, then the final ones.
fn class(kind: QueueStepKind) -> Option<u8> {
    match kind {
        QueueStepKind::Issued => Some(0),
        QueueStepKind::Called | QueueStepKind::Parked | QueueStepKind::Transferred => Some(1),
        QueueStepKind::Served | QueueStepKind::NoShow | QueueStepKind::WalkedOut => Some(2),
        QueueStepKind::Conflict => None,
    }
}

/// Whether a conflict voids step `s`: the same kiosk recorded the conflict after the step, it
/// names the step's kind and (when it names one) its counter.
fn voided_by(c: &StepRow, s: &StepRow) -> bool {
    c.step.kind == QueueStepKind::Conflict
        && s.step.kind != QueueStepKind::Conflict
        && c.kiosk_id == s.kiosk_id
        && c.seq > s.seq
        && c.step.detail.as_deref().and_then(named_step) == Some(s.step.kind)
        && (c.step.counter.is_none() || c.step.counter == s.step.counter)
}

/// The state of turn `turn_id` from all its steps, in any order (`None` without steps). The
/// same set of steps gives the same state whatever their order: see the module's rules.
pub fn fold(turn_id: &str, steps: &[StepRow]) -> Option<TurnState> {
    let conflicts: Vec<&StepRow> = steps
        .iter()
        .filter(|s| s.step.kind == QueueStepKind::Conflict)
        .collect();
    let mut live: Vec<&StepRow> = steps
        .iter()
        .filter(|s| s.step.kind != QueueStepKind::Conflict)
        .filter(|s| !conflicts.iter().any(|c| voided_by(c, s)))
        .collect();
    live.sort_by(|a, b| a.key().cmp(&b.key()));
    let first = steps.iter().min_by(|a, b| a.key().cmp(&b.key()))?;
    let last_ms = steps.iter().map(|s| s.at_ms).max().unwrap_or(first.at_ms);
    let latest = |kind: QueueStepKind| live.iter().rev().find(|s| s.step.kind == kind);
    let issue = live.iter().find(|s| s.step.kind == QueueStepKind::Issued);
    let decisive = live
        .iter()
        .filter_map(|s| class(s.step.kind).map(|c| (c, s)))
        .max_by(|(ca, a), (cb, b)| (ca, a.key()).cmp(&(cb, b.key())))
        .map(|(_, s)| *s);
    let (status, at) = match decisive.map(|s| (s.step.kind, s)) {
        None => (TurnStatus::Unknown, None),
        Some((QueueStepKind::Issued | QueueStepKind::Transferred, _)) => {
            (TurnStatus::Waiting, None)
        }
        Some((QueueStepKind::WalkedOut, _)) => (TurnStatus::WalkedOut, None),
        Some((kind, s)) => (
            match kind {
                QueueStepKind::Called => TurnStatus::Called,
                QueueStepKind::Parked => TurnStatus::Parked,
                QueueStepKind::Served => TurnStatus::Served,
                _ => TurnStatus::NoShow,
            },
            Some(&s.step),
        ),
    };
    let counter = at.and_then(|s| s.counter.clone());
    let staff = at.and_then(|s| s.staff.clone());
    let call = latest(QueueStepKind::Called);
    let service = latest(QueueStepKind::Transferred)
        .and_then(|t| t.step.service.clone())
        .or_else(|| issue.and_then(|i| i.step.service.clone()));
    let label = issue.and_then(|i| i.step.label.clone()).or_else(|| {
        let mut labelled: Vec<&StepRow> = steps.iter().filter(|s| s.step.label.is_some()).collect();
        labelled.sort_by(|a, b| a.key().cmp(&b.key()));
        labelled.last().and_then(|s| s.step.label.clone())
    });
    Some(TurnState {
        turn_id: turn_id.to_owned(),
        store_id: issue.unwrap_or(&first).store_id.clone(),
        business_day: issue.and_then(|i| i.step.business_day.clone()),
        service,
        label,
        kiosk_id: issue.map(|i| i.kiosk_id.clone()),
        priority: issue.is_some_and(|i| i.step.priority),
        out_of_sequence: issue.is_some_and(|i| i.step.out_of_sequence),
        issued_ms: issue.map(|i| i.at_ms),
        issued_wall_ms: issue.map(|i| i.wall_ms),
        status,
        counter,
        called_ms: call.map(|c| c.at_ms),
        called_counter: call.and_then(|c| c.step.counter.clone()),
        staff,
        called_staff: call.and_then(|c| c.step.staff.clone()),
        last_ms,
    })
}

/// What to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveQueueQuery {
    /// The store.
    pub store_id: String,
    /// Now, unix ms (server time).
    pub now_ms: i64,
    /// Latest calls to list (at most [`MAX_CALLS`]).
    pub calls: u32,
}

impl LiveQueueQuery {
    /// The store's queue at `now_ms`, with [`DEFAULT_CALLS`] latest calls.
    pub fn new(store_id: impl Into<String>, now_ms: i64) -> Self {
        LiveQueueQuery {
            store_id: store_id.into(),
            now_ms,
            calls: DEFAULT_CALLS,
        }
    }

    /// The number of calls listed.
    pub fn calls_limit(&self) -> usize {
        self.calls.min(MAX_CALLS) as usize
    }
}

/// A store's live queue, for the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LiveQueue {
    /// The store.
    pub store: StoreRecord,
    /// Time zone of "today" (`UTC` when the store's is not known).
    pub timezone: String,
    /// Whether that is the store's own time zone.
    pub timezone_known: bool,
    /// Today in the store (`YYYY-MM-DD`): the business day whose turns are shown.
    pub business_day: String,
    /// Now, unix ms: waits are measured to it.
    pub now_ms: i64,
    /// Tickets issued today, all kiosks.
    pub issued: u64,
    /// Turns waiting now, all services.
    pub waiting: u64,
    /// Tickets issued today outside the store's number sequence.
    pub out_of_sequence: u64,
    /// Per service (after transfers), sorted.
    pub services: Vec<ServiceQueue>,
    /// Counters open: serving a called turn now, or that called a turn within the last
    /// [`COUNTER_OPEN_AFTER_CALL_MS`].
    pub counters_open: Vec<OpenCounter>,
    /// The latest calls of today's turns, newest first (one per turn: its latest call).
    pub calls: Vec<CallRecord>,
    /// Tickets each kiosk of the store issued today (every kiosk listed, by id).
    pub kiosks: Vec<KioskIssued>,
    /// Queue steps the store dropped today after a partition (`queue_conflict`).
    pub conflicts: u64,
    /// The latest of them, newest first.
    pub recent_conflicts: Vec<ConflictRecord>,
}

/// One service's line now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceQueue {
    /// Service letter (`?` while only steps without a service arrived).
    pub service: String,
    /// Turns waiting.
    pub waiting: u64,
    /// Of those, priority turns.
    pub priority_waiting: u64,
    /// Turns parked, waiting to be called back.
    pub parked: u64,
    /// Turns called and not finished.
    pub called: u64,
    /// Turns served today.
    pub served: u64,
    /// Turns that did not show today.
    pub no_show: u64,
    /// Turns that left before being called today.
    pub walked_out: u64,
    /// Now minus the issue of the oldest waiting turn, seconds.
    pub longest_wait_s: Option<u64>,
    /// That turn's label.
    pub oldest_waiting: Option<String>,
    /// That turn's issue, unix ms (skew-corrected).
    pub oldest_issued_ms: Option<i64>,
}

/// An open counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenCounter {
    /// Counter name.
    pub counter: String,
    /// The turn it is serving now (called, not finished), if any.
    pub serving: Option<String>,
    /// Its latest call, unix ms.
    pub last_call_ms: Option<i64>,
}

/// A turn's latest call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CallRecord {
    /// The turn as shown.
    pub turn: String,
    /// The counter that called it.
    pub counter: String,
    /// When, unix ms.
    pub at_ms: i64,
    /// Its service now.
    pub service: Option<String>,
    /// Where it is now.
    pub status: TurnStatus,
}

/// Tickets one kiosk issued today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KioskIssued {
    /// Kiosk id.
    pub kiosk_id: String,
    /// Tickets issued.
    pub issued: u64,
    /// Of those, outside the store's sequence.
    pub out_of_sequence: u64,
}

/// A dropped queue step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConflictRecord {
    /// The turn as shown.
    pub turn: Option<String>,
    /// The counter whose step was dropped.
    pub counter: Option<String>,
    /// The dropped step (`call`).
    pub step: String,
    /// Why, as the kiosk said it.
    pub reason: String,
    /// The kiosk that recorded it.
    pub kiosk_id: String,
    /// When, unix ms.
    pub at_ms: i64,
}

/// What a backend fetches; [`assemble`] makes the [`LiveQueue`] of it.
#[derive(Debug, Clone, Default)]
pub struct LiveRows {
    /// The store (`None`: it does not exist).
    pub store: Option<StoreRecord>,
    /// Its time zone, if set.
    pub timezone: Option<String>,
    /// Its kiosks' ids.
    pub kiosks: Vec<String>,
    /// Today's turns ([`today`]).
    pub turns: Vec<TurnState>,
    /// `(counter, latest call)` of the calls within [`COUNTER_OPEN_AFTER_CALL_MS`]
    /// ([`calls_since`]; a counter may appear more than once).
    pub recent_calls: Vec<(String, i64)>,
    /// Conflicts recorded today.
    pub conflicts: u64,
    /// The latest of them, newest first.
    pub recent_conflicts: Vec<ConflictRecord>,
}

/// The store's business day at `now_ms` (`YYYY-MM-DD` in its time zone, UTC when unknown) and
/// when it started (unix ms): today's turns are those of that business day, and those whose
/// issue has not arrived yet with a step since that start.
pub fn today(timezone: Option<&str>, now_ms: i64) -> (String, i64) {
    let tz = timezone
        .and_then(|n| jiff::tz::TimeZone::get(n).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let day = jiff::Timestamp::from_millisecond(now_ms)
        .map(|t| t.to_zoned(tz).date().to_string())
        .unwrap_or_default();
    (day, start_of_day_ms(timezone, now_ms))
}

/// Counter names in a natural order: numbers by value, then names.
fn counter_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Builds the live queue from a backend's rows. `None` when the store does not exist.
pub fn assemble(query: &LiveQueueQuery, rows: LiveRows) -> Option<LiveQueue> {
    let store = rows.store?;
    let known = rows
        .timezone
        .as_deref()
        .filter(|n| jiff::tz::TimeZone::get(n).is_ok());
    let (business_day, _) = today(known, query.now_ms);
    let now = query.now_ms;
    let mut services: BTreeMap<String, ServiceQueue> = BTreeMap::new();
    let mut kiosks: BTreeMap<String, KioskIssued> = rows
        .kiosks
        .iter()
        .map(|k| {
            (
                k.clone(),
                KioskIssued {
                    kiosk_id: k.clone(),
                    issued: 0,
                    out_of_sequence: 0,
                },
            )
        })
        .collect();
    let mut counters: BTreeMap<String, OpenCounter> = BTreeMap::new();
    let mut serving_since: BTreeMap<String, i64> = BTreeMap::new();
    let (mut issued, mut waiting, mut out_of_sequence) = (0u64, 0u64, 0u64);
    let mut calls: Vec<CallRecord> = Vec::new();
    for t in &rows.turns {
        if let Some(k) = &t.kiosk_id {
            let entry = kiosks.entry(k.clone()).or_insert_with(|| KioskIssued {
                kiosk_id: k.clone(),
                issued: 0,
                out_of_sequence: 0,
            });
            entry.issued += 1;
            issued += 1;
            if t.out_of_sequence {
                entry.out_of_sequence += 1;
                out_of_sequence += 1;
            }
        }
        if t.status == TurnStatus::Unknown {
            continue;
        }
        let name = t.service.clone().unwrap_or_else(|| "?".to_owned());
        let s = services
            .entry(name.clone())
            .or_insert_with(|| ServiceQueue {
                service: name,
                waiting: 0,
                priority_waiting: 0,
                parked: 0,
                called: 0,
                served: 0,
                no_show: 0,
                walked_out: 0,
                longest_wait_s: None,
                oldest_waiting: None,
                oldest_issued_ms: None,
            });
        match t.status {
            TurnStatus::Waiting => {
                s.waiting += 1;
                waiting += 1;
                if t.priority {
                    s.priority_waiting += 1;
                }
                if let Some(at) = t.issued_ms {
                    let older = s.oldest_issued_ms.is_none_or(|o| {
                        (at, t.label.as_deref()) < (o, s.oldest_waiting.as_deref())
                    });
                    if older {
                        s.oldest_issued_ms = Some(at);
                        s.oldest_waiting = t.label.clone();
                        s.longest_wait_s = Some(u64::try_from((now - at) / 1000).unwrap_or(0));
                    }
                }
            }
            TurnStatus::Called => {
                s.called += 1;
                if let Some(c) = &t.counter {
                    let since = t.called_ms.unwrap_or(i64::MIN);
                    if serving_since.get(c).is_none_or(|s| since > *s) {
                        serving_since.insert(c.clone(), since);
                        counters.insert(
                            c.clone(),
                            OpenCounter {
                                counter: c.clone(),
                                serving: Some(t.label.clone().unwrap_or_else(|| "?".into())),
                                last_call_ms: t.called_ms,
                            },
                        );
                    }
                }
            }
            TurnStatus::Parked => s.parked += 1,
            TurnStatus::Served => s.served += 1,
            TurnStatus::NoShow => s.no_show += 1,
            TurnStatus::WalkedOut => s.walked_out += 1,
            TurnStatus::Unknown => {}
        }
        if let (Some(at_ms), Some(counter)) = (t.called_ms, &t.called_counter) {
            calls.push(CallRecord {
                turn: t.label.clone().unwrap_or_else(|| "?".into()),
                counter: counter.clone(),
                at_ms,
                service: t.service.clone(),
                status: t.status,
            });
        }
    }
    for (counter, at) in rows.recent_calls {
        if at < now - COUNTER_OPEN_AFTER_CALL_MS {
            continue;
        }
        let c = counters.entry(counter.clone()).or_insert(OpenCounter {
            counter,
            serving: None,
            last_call_ms: None,
        });
        c.last_call_ms = Some(c.last_call_ms.map_or(at, |l| l.max(at)));
    }
    let mut counters_open: Vec<OpenCounter> = counters.into_values().collect();
    counters_open.sort_by(|a, b| counter_order(&a.counter, &b.counter));
    calls.sort_by(|a, b| (b.at_ms, &b.counter, &b.turn).cmp(&(a.at_ms, &a.counter, &a.turn)));
    calls.truncate(query.calls_limit());
    Some(LiveQueue {
        store,
        timezone: known.unwrap_or("UTC").to_owned(),
        timezone_known: known.is_some(),
        business_day,
        now_ms: now,
        issued,
        waiting,
        out_of_sequence,
        services: services.into_values().collect(),
        counters_open,
        calls,
        kiosks: kiosks.into_values().collect(),
        conflicts: rows.conflicts,
        recent_conflicts: rows.recent_conflicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    fn row(kiosk: &str, seq: i64, at_ms: i64, step: QueueStep) -> StepRow {
        StepRow {
            event_id: format!("{kiosk}-{seq}"),
            store_id: "s".into(),
            kiosk_id: kiosk.into(),
            seq,
            at_ms,
            wall_ms: at_ms,
            step,
        }
    }

    fn step(kind: QueueStepKind) -> QueueStep {
        QueueStep {
            turn_id: Some(uuid::Uuid::nil()),
            kind,
            label: Some("A-001".into()),
            service: None,
            counter: None,
            business_day: None,
            priority: false,
            out_of_sequence: false,
            recall: false,
            detail: None,
            reason: None,
            staff: None,
        }
    }

    fn issued(service: &str) -> QueueStep {
        QueueStep {
            service: Some(service.into()),
            business_day: Some("2027-01-15".into()),
            ..step(QueueStepKind::Issued)
        }
    }

    fn at(kind: QueueStepKind, counter: &str) -> QueueStep {
        QueueStep {
            counter: Some(counter.into()),
            ..step(kind)
        }
    }

    fn transfer(to: &str) -> QueueStep {
        QueueStep {
            service: Some(to.into()),
            detail: Some("A".into()),
            ..step(QueueStepKind::Transferred)
        }
    }

    fn conflict(counter: &str, what: &str) -> QueueStep {
        QueueStep {
            counter: Some(counter.into()),
            detail: Some(what.into()),
            reason: Some("counter 1 called it first".into()),
            ..step(QueueStepKind::Conflict)
        }
    }

    /// Every order of `steps` (up to 7 of them: 5040 orders).
    fn permutations(steps: &[StepRow]) -> Vec<Vec<StepRow>> {
        if steps.len() <= 1 {
            return vec![steps.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..steps.len() {
            let mut rest = steps.to_vec();
            let first = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, first.clone());
                out.push(p);
            }
        }
        out
    }

    fn same_in_every_order(steps: &[StepRow]) -> TurnState {
        let expected = fold("t", steps).unwrap();
        for p in permutations(steps) {
            assert_eq!(fold("t", &p).unwrap(), expected, "{p:?}");
        }
        expected
    }

    #[test]
    fn a_day_of_steps_folds_to_the_same_state_in_every_order() {
        // Issued at k1, called by counter 2 (served by k2), parked, called back, transferred to B,
        // called at counter 3, served.
        let steps = [
            row("k1", 1, T0, issued("A")),
            row("k2", 7, T0 + 5 * MIN, at(QueueStepKind::Called, "2")),
            row("k2", 8, T0 + 6 * MIN, at(QueueStepKind::Parked, "2")),
            row("k2", 9, T0 + 9 * MIN, at(QueueStepKind::Called, "2")),
            row("k1", 4, T0 + 10 * MIN, transfer("B")),
            row("k1", 5, T0 + 12 * MIN, at(QueueStepKind::Called, "3")),
            row("k1", 6, T0 + 15 * MIN, at(QueueStepKind::Served, "3")),
        ];
        let s = same_in_every_order(&steps);
        assert_eq!(s.status, TurnStatus::Served);
        assert_eq!(s.counter.as_deref(), Some("3"));
        assert_eq!(s.service.as_deref(), Some("B"));
        assert_eq!(s.kiosk_id.as_deref(), Some("k1"));
        assert_eq!(s.issued_ms, Some(T0));
        assert_eq!(
            (s.called_ms, s.called_counter.as_deref()),
            (Some(T0 + 12 * MIN), Some("3"))
        );
        assert_eq!(s.last_ms, T0 + 15 * MIN);

        // Before the last call and the service: waiting in B, keeping its issue time.
        let s = same_in_every_order(&steps[..5]);
        assert_eq!((s.status, s.counter), (TurnStatus::Waiting, None));
        assert_eq!(s.service.as_deref(), Some("B"));
        // Parked: at counter 2, not waiting.
        let s = same_in_every_order(&steps[..3]);
        assert_eq!(
            (s.status, s.counter.as_deref()),
            (TurnStatus::Parked, Some("2"))
        );
    }

    #[test]
    fn a_call_is_never_undone_by_its_issue_and_final_states_win() {
        // The call's kiosk clock puts it a moment before the issue: still called.
        let call_first = [
            row("k2", 3, T0 - 500, at(QueueStepKind::Called, "1")),
            row("k1", 1, T0, issued("A")),
        ];
        assert_eq!(same_in_every_order(&call_first).status, TurnStatus::Called);
        // A call only (its issue not arrived): called, label from the call, no issuing kiosk.
        let s = fold("t", &call_first[..1]).unwrap();
        assert_eq!(s.status, TurnStatus::Called);
        assert_eq!((s.label.as_deref(), s.kiosk_id), (Some("A-001"), None));
        // A walkout beats a later call from a counter cut off from the others.
        let walked = [
            row("k1", 1, T0, issued("A")),
            row("k1", 2, T0 + MIN, step(QueueStepKind::WalkedOut)),
            row("k2", 5, T0 + 2 * MIN, at(QueueStepKind::Called, "2")),
        ];
        let s = same_in_every_order(&walked);
        assert_eq!((s.status, s.counter), (TurnStatus::WalkedOut, None));
        // No-show at the recall limit.
        let no_show = [
            row("k1", 1, T0, issued("A")),
            row("k2", 2, T0 + MIN, at(QueueStepKind::Called, "2")),
            row("k2", 3, T0 + 2 * MIN, at(QueueStepKind::Called, "2")),
            row("k2", 4, T0 + 3 * MIN, at(QueueStepKind::NoShow, "2")),
        ];
        assert_eq!(same_in_every_order(&no_show).status, TurnStatus::NoShow);
    }

    #[test]
    fn a_conflict_voids_the_dropped_step_of_its_kiosk_only() {
        // Counters 1 (k1) and 2 (k2) both called the turn while cut off; the store kept counter
        // 1's call and k2 recorded the conflict. k2's call is later, yet counter 1 has the turn.
        let steps = [
            row("k1", 1, T0, issued("A")),
            row("k1", 2, T0 + MIN, at(QueueStepKind::Called, "1")),
            row("k2", 4, T0 + 2 * MIN, at(QueueStepKind::Called, "2")),
            row("k2", 5, T0 + 3 * MIN, conflict("2", "call")),
        ];
        let s = same_in_every_order(&steps);
        assert_eq!(
            (s.status, s.counter.as_deref(), s.called_counter.as_deref()),
            (TurnStatus::Called, Some("1"), Some("1"))
        );
        assert_eq!(s.last_ms, T0 + 3 * MIN);
        // Without the conflict the later call would have won.
        let s = fold("t", &steps[..3]).unwrap();
        assert_eq!(s.counter.as_deref(), Some("2"));
        // A conflict names steps by several spellings; unknown ones void nothing.
        assert_eq!(named_step("turn_called"), Some(QueueStepKind::Called));
        assert_eq!(named_step("Walk-out"), Some(QueueStepKind::WalkedOut));
        assert_eq!(named_step("teleport"), None);
        // A later call of counter 2 (after the conflict) stands.
        let mut again = steps.to_vec();
        again.push(row("k2", 6, T0 + 4 * MIN, at(QueueStepKind::Called, "2")));
        let s = same_in_every_order(&again);
        assert_eq!(s.counter.as_deref(), Some("2"));
    }

    #[test]
    fn a_turns_steps_come_back_from_its_row_and_fold_alike() {
        let steps = vec![
            row("k1", 1, T0, issued("A")),
            row("k2", 4, T0 + MIN, transfer("B")),
            row("k2", 5, T0 + 2 * MIN, conflict("2", "call")),
        ];
        let json = encode_steps(&steps).unwrap();
        assert!(!json.contains("k1-1"), "no event ids kept: {json}");
        let back = decode_steps(uuid::Uuid::nil(), "s", &json).unwrap();
        let without_ids: Vec<StepRow> = steps
            .iter()
            .map(|s| StepRow {
                event_id: String::new(),
                ..s.clone()
            })
            .collect();
        assert_eq!(back, without_ids);
        assert_eq!(fold("t", &back), fold("t", &steps));
        assert_eq!(
            calls_since(&[row("k2", 7, T0, at(QueueStepKind::Called, "2"))], T0),
            [("2".to_owned(), T0)]
        );
    }

    fn turn(label: &str, service: &str, kiosk: &str, status: TurnStatus) -> TurnState {
        TurnState {
            turn_id: label.into(),
            store_id: "s".into(),
            business_day: Some("2027-01-15".into()),
            service: Some(service.into()),
            label: Some(label.into()),
            kiosk_id: Some(kiosk.into()),
            priority: false,
            out_of_sequence: false,
            issued_ms: Some(T0),
            issued_wall_ms: Some(T0),
            status,
            counter: None,
            called_ms: None,
            called_counter: None,
            staff: None,
            called_staff: None,
            last_ms: T0,
        }
    }

    #[test]
    fn figures_count_lines_counters_calls_and_kiosks() {
        let now = T0 + 60 * MIN;
        let mut a2 = turn("A-002", "A", "k1", TurnStatus::Waiting);
        a2.issued_ms = Some(T0 + 10 * MIN);
        a2.priority = true;
        let mut a3 = turn("A-003", "A", "k2", TurnStatus::Called);
        (a3.counter, a3.called_ms, a3.called_counter) =
            (Some("10".into()), Some(T0 + 50 * MIN), Some("10".into()));
        let mut b1 = turn("B-001", "B", "k2", TurnStatus::Served);
        (b1.counter, b1.called_ms, b1.called_counter) =
            (Some("2".into()), Some(T0 + 20 * MIN), Some("2".into()));
        b1.out_of_sequence = true;
        let rows = LiveRows {
            store: Some(StoreRecord {
                id: "s".into(),
                name: "S".into(),
            }),
            timezone: None,
            kiosks: vec!["k1".into(), "k2".into(), "k3".into()],
            turns: vec![turn("A-001", "A", "k1", TurnStatus::Waiting), a2, a3, b1],
            // Counter 2 called 40 min ago (closed), counter 3 29 min ago (open).
            recent_calls: vec![("2".into(), now - 40 * MIN), ("3".into(), now - 29 * MIN)],
            conflicts: 0,
            recent_conflicts: Vec::new(),
        };
        let q = LiveQueueQuery::new("s", now + 999);
        let l = assemble(&q, rows).unwrap();
        assert_eq!((l.issued, l.waiting, l.out_of_sequence), (4, 2, 1));
        let a = &l.services[0];
        assert_eq!((a.waiting, a.priority_waiting, a.called), (2, 1, 1));
        assert_eq!(a.oldest_waiting.as_deref(), Some("A-001"));
        assert_eq!(a.longest_wait_s, Some(3600), "whole seconds, rounded down");
        assert_eq!(l.services[1].served, 1);
        assert_eq!(l.services[1].longest_wait_s, None);
        let open: Vec<(&str, Option<&str>)> = l
            .counters_open
            .iter()
            .map(|c| (c.counter.as_str(), c.serving.as_deref()))
            .collect();
        assert_eq!(open, [("3", None), ("10", Some("A-003"))]);
        let calls: Vec<(&str, &str)> = l
            .calls
            .iter()
            .map(|c| (c.turn.as_str(), c.counter.as_str()))
            .collect();
        assert_eq!(calls, [("A-003", "10"), ("B-001", "2")]);
        let kiosks: Vec<(&str, u64, u64)> = l
            .kiosks
            .iter()
            .map(|k| (k.kiosk_id.as_str(), k.issued, k.out_of_sequence))
            .collect();
        assert_eq!(kiosks, [("k1", 2, 0), ("k2", 2, 1), ("k3", 0, 0)]);
    }
}
