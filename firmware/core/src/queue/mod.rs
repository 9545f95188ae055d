//! The turn queue, the in-store source of truth for who waits for what: services with letters,
//! daily numbering, priority turns, positions, estimated waits, and the staff's call / recall /
//! served / no-show steps.
//!
//! Data flow: engine (`IssueTurn`) or counter page → **queue** → journal (events + queue rows in
//! one transaction) → screens (board). The queue is pure: it reads no clock (time is passed in, in
//! the store's local offset) and does no I/O. Every mutation is split in two so that nothing is
//! believed before it is durable:
//!
//! 1. `plan_*(&self, ..)` checks the request and returns a [`Change`]: the turn rows to upsert,
//!    the day counter to store and the events to journal. The queue itself is untouched.
//! 2. The runtime writes all of it in one journal transaction, then calls [`Queue::apply`].
//!
//! If the transaction fails the change is dropped and the queue is as before. Numbers are never
//! issued twice because the counter row `(service_day, service) → last_number` is written in the
//! same transaction as the `ticket_issued` event, and [`Queue::restore`] resumes from it.

mod model;

pub use model::*;

use std::collections::BTreeMap;

use kiosk_protocol::CardToken;
use kiosk_protocol::events::{Event, TicketIssued, TurnCalled, TurnNoShow, TurnServed};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::locale::Locale;

/// A queue request that cannot be carried out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// The service letter is not configured.
    #[error("service {0:?} is not configured; add it to the store's services")]
    UnknownService(String),
    /// A priority turn was asked for a service that does not offer them.
    #[error("service {0} does not offer priority turns; enable priority for it in the config")]
    PriorityNotOffered(String),
    /// The turn id is already in use (a retried request must not make a second turn).
    #[error("turn {0} already exists; a retried request must reuse the first answer")]
    DuplicateTurn(Uuid),
    /// No turn with this id is known (it may be from a day that was already pruned).
    #[error("turn {0} is unknown to the queue")]
    UnknownTurn(Uuid),
    /// The step does not fit the turn's status (e.g. serving a turn that was never called).
    #[error("turn {label} is {status:?}, so it cannot be {wanted}")]
    WrongStatus {
        /// The turn as shown.
        label: String,
        /// Its current status.
        status: TurnStatus,
        /// What was asked (`called`, `recalled`, `served`, `marked no-show`).
        wanted: &'static str,
    },
    /// The counter still has a called turn: mark it served or no-show first.
    #[error("counter {counter} is still serving {label}; mark it served or no-show first")]
    CounterBusy {
        /// The counter.
        counter: String,
        /// The turn it is serving.
        label: String,
    },
    /// The turn was called at another counter.
    #[error("turn {label} was called at counter {called_at}, not at {counter}")]
    OtherCounter {
        /// The turn as shown.
        label: String,
        /// Where it was called.
        called_at: String,
        /// Who asked.
        counter: String,
    },
    /// The daily numbering of a service ran past `u32::MAX`.
    #[error("numbering of service {0} is exhausted for the day")]
    NumbersExhausted(String),
}

/// The turn queue of one store. See the module docs for the plan / apply protocol.
#[derive(Debug, Clone)]
pub struct Queue {
    settings: QueueSettings,
    counters: BTreeMap<(ServiceDay, String), u32>,
    /// All known turns of the current and previous service days, in issue order.
    turns: Vec<Turn>,
}

impl Queue {
    /// An empty queue (first start, nothing persisted yet).
    pub fn new(settings: QueueSettings) -> Self {
        Queue {
            settings,
            counters: BTreeMap::new(),
            turns: Vec::new(),
        }
    }

    /// A queue resumed from what the journal persisted: the day counters and the turn rows.
    pub fn restore(settings: QueueSettings, counters: Vec<DayCounter>, turns: Vec<Turn>) -> Self {
        let mut queue = Queue::new(settings);
        for c in counters {
            queue.bump_counter(&c);
        }
        for t in turns {
            // A turn row whose counter row was lost still reserves its number.
            queue.bump_counter(&DayCounter {
                service_day: t.service_day,
                service: t.service.clone(),
                last_number: t.number,
            });
            queue.upsert(t);
        }
        queue
            .turns
            .sort_by_key(|t| (t.issued_at, t.service_day, t.number));
        queue
    }

    /// The configuration in use.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// What must be persisted to rebuild this queue with [`Queue::restore`].
    pub fn persisted(&self) -> (Vec<DayCounter>, Vec<Turn>) {
        let counters = self
            .counters
            .iter()
            .map(|((day, service), n)| DayCounter {
                service_day: *day,
                service: service.clone(),
                last_number: *n,
            })
            .collect();
        (counters, self.turns.clone())
    }

    /// The turn with this id, if known.
    pub fn turn(&self, id: Uuid) -> Option<&Turn> {
        self.turns.iter().find(|t| t.id == id)
    }

    /// All known turns, in issue order.
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// The turn a counter is serving (called, not yet served or no-show), if any.
    pub fn serving_at(&self, counter: &str) -> Option<&Turn> {
        self.turns
            .iter()
            .find(|t| t.status == TurnStatus::Called && t.counter.as_deref() == Some(counter))
    }

    /// Plans a new turn. `now` is the store's local time; it decides the service day.
    pub fn plan_issue(
        &self,
        req: IssueRequest,
        now: OffsetDateTime,
    ) -> Result<IssuePlan, QueueError> {
        let service = self
            .settings
            .service(&req.service)
            .ok_or_else(|| QueueError::UnknownService(req.service.clone()))?;
        if req.priority && !service.priority_allowed {
            return Err(QueueError::PriorityNotOffered(service.letter.clone()));
        }
        if self.turn(req.turn_id).is_some() {
            return Err(QueueError::DuplicateTurn(req.turn_id));
        }
        let day = ServiceDay::at(now, self.settings.opening_time);
        let last = self
            .counters
            .get(&(day, service.letter.clone()))
            .copied()
            .unwrap_or(0);
        let number = last
            .checked_add(1)
            .ok_or_else(|| QueueError::NumbersExhausted(service.letter.clone()))?;

        // Turns of earlier service days still waiting were abandoned overnight.
        let mut upserts: Vec<Turn> = self
            .turns
            .iter()
            .filter(|t| t.service_day < day && !t.status.is_final())
            .map(|t| {
                let mut t = t.clone();
                t.status = TurnStatus::Expired;
                t.finished_at = Some(now);
                t
            })
            .collect();

        let turn = Turn {
            id: req.turn_id,
            service_day: day,
            service: service.letter.clone(),
            number,
            priority: req.priority,
            card_token: req.card_token.clone(),
            campaign_id: req.campaign_id.clone(),
            locale: req.locale,
            issued_at: now,
            status: TurnStatus::Waiting,
            counter: None,
            first_called_at: None,
            last_called_at: None,
            calls: 0,
            finished_at: None,
        };
        let ahead = self.ahead_of(&turn, day);
        let estimated_wait_s = self.estimate_wait_s(&service.letter, ahead, now);
        let ticket = TicketIssued {
            turn_id: turn.id,
            turn: turn.label(),
            service: turn.service.clone(),
            number,
            business_day: day.to_string(),
            priority: turn.priority,
            position: ahead,
            estimated_wait_s,
            card_token: req.card_token,
            locale: req.locale.tag().to_owned(),
            campaign_id: req.campaign_id,
            out_of_sequence: false,
        };
        upserts.push(turn);
        Ok(IssuePlan {
            change: Change {
                upserts,
                counter: Some(DayCounter {
                    service_day: day,
                    service: service.letter.clone(),
                    last_number: number,
                }),
                events: vec![Event::TicketIssued(ticket.clone())],
            },
            ticket,
        })
    }

    /// Plans calling the next turn to `counter` among `services` (all services when empty):
    /// priority turns first, then first come, first served. `Ok(None)` when nobody waits.
    pub fn plan_call_next(
        &self,
        counter: &str,
        services: &[String],
        now: OffsetDateTime,
    ) -> Result<Option<Change>, QueueError> {
        self.ensure_counter_free(counter)?;
        let next = self
            .turns
            .iter()
            .filter(|t| t.status == TurnStatus::Waiting)
            .filter(|t| services.is_empty() || services.contains(&t.service))
            .min_by_key(|t| call_order(t));
        match next {
            None => Ok(None),
            Some(t) => self.plan_call(t.id, counter, now).map(Some),
        }
    }

    /// Plans calling one given turn (scanned from its ticket at the counter, say) to `counter`.
    pub fn plan_call(
        &self,
        turn_id: Uuid,
        counter: &str,
        now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        self.ensure_counter_free(counter)?;
        let turn = self.turn(turn_id).ok_or(QueueError::UnknownTurn(turn_id))?;
        if turn.status != TurnStatus::Waiting {
            return Err(turn.wrong_status("called"));
        }
        let mut t = turn.clone();
        t.status = TurnStatus::Called;
        t.counter = Some(counter.to_owned());
        t.first_called_at = Some(now);
        t.last_called_at = Some(now);
        t.calls = 1;
        let event = Event::TurnCalled(TurnCalled {
            turn_id,
            turn: t.label(),
            counter: counter.to_owned(),
            recall: false,
            waited_s: seconds_between(t.issued_at, now),
        });
        Ok(Change {
            upserts: vec![t],
            counter: None,
            events: vec![event],
        })
    }

    /// Plans calling a called turn again (the customer did not come yet).
    pub fn plan_recall(
        &self,
        turn_id: Uuid,
        counter: &str,
        now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        let mut t = self.called_here(turn_id, counter, "recalled")?;
        t.calls = t.calls.saturating_add(1);
        t.last_called_at = Some(now);
        let event = Event::TurnCalled(TurnCalled {
            turn_id,
            turn: t.label(),
            counter: counter.to_owned(),
            recall: true,
            waited_s: seconds_between(t.issued_at, t.first_called_at.unwrap_or(now)),
        });
        Ok(Change {
            upserts: vec![t],
            counter: None,
            events: vec![event],
        })
    }

    /// Plans marking a called turn as served.
    pub fn plan_served(
        &self,
        turn_id: Uuid,
        counter: &str,
        now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        let mut t = self.called_here(turn_id, counter, "served")?;
        t.status = TurnStatus::Served;
        t.finished_at = Some(now);
        let event = Event::TurnServed(TurnServed {
            turn_id,
            counter: counter.to_owned(),
            service_s: seconds_between(t.first_called_at.unwrap_or(now), now),
        });
        Ok(Change {
            upserts: vec![t],
            counter: None,
            events: vec![event],
        })
    }

    /// Plans marking a called turn as not having shown up.
    pub fn plan_no_show(
        &self,
        turn_id: Uuid,
        counter: &str,
        now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        let mut t = self.called_here(turn_id, counter, "marked no-show")?;
        t.status = TurnStatus::NoShow;
        t.finished_at = Some(now);
        let event = Event::TurnNoShow(TurnNoShow {
            turn_id,
            counter: counter.to_owned(),
            recall_limit: false,
        });
        Ok(Change {
            upserts: vec![t],
            counter: None,
            events: vec![event],
        })
    }

    /// Applies a change once the journal has made it durable. Applying the same change twice is
    /// harmless (rows are upserted by id, counters only move forward). Turns older than the
    /// previous service day are dropped from memory (they stay in the journal).
    pub fn apply(&mut self, change: &Change) {
        if let Some(c) = &change.counter {
            self.bump_counter(c);
        }
        for t in &change.upserts {
            self.upsert(t.clone());
        }
        if let Some(latest) = self.turns.iter().map(|t| t.service_day).max() {
            let keep_from = latest.previous();
            self.turns.retain(|t| t.service_day >= keep_from);
            self.counters.retain(|(day, _), _| *day >= keep_from);
        }
    }

    /// Turns that would be called before `turn_id` at a counter serving only its service.
    pub fn position(&self, turn_id: Uuid) -> Option<u32> {
        let turn = self.turn(turn_id)?;
        (turn.status == TurnStatus::Waiting).then(|| self.ahead_of(turn, turn.service_day))
    }

    /// Estimated wait in seconds for a turn of `service` with `ahead` turns before it:
    /// median of the last [`QueueSettings::history`] service times of that service (from first
    /// call to served; [`QueueSettings::default_service_s`] until there are any) × `ahead`, divided
    /// by the counters that called a turn of that service within
    /// [`QueueSettings::open_counter_window_s`] before `now` (at least one).
    pub fn estimate_wait_s(&self, service: &str, ahead: u32, now: OffsetDateTime) -> u32 {
        let mut times: Vec<u32> = self
            .turns
            .iter()
            .rev()
            .filter(|t| t.service == service && t.status == TurnStatus::Served)
            .filter_map(|t| Some(seconds_between(t.first_called_at?, t.finished_at?)))
            .take(self.settings.history.max(1))
            .collect();
        let per_turn = if times.is_empty() {
            self.settings.default_service_s
        } else {
            times.sort_unstable();
            let mid = times.len() / 2;
            if times.len() % 2 == 1 {
                times[mid]
            } else {
                let pair = u64::from(times[mid - 1]) + u64::from(times[mid]);
                u32::try_from(pair / 2).unwrap_or(u32::MAX)
            }
        };
        let window = Duration::seconds(i64::from(self.settings.open_counter_window_s));
        let mut counters: Vec<&str> = self
            .turns
            .iter()
            .filter(|t| t.service == service)
            .filter(|t| {
                t.last_called_at
                    .is_some_and(|c| c <= now && now - c <= window)
            })
            .filter_map(|t| t.counter.as_deref())
            .collect();
        counters.sort_unstable();
        counters.dedup();
        let open = u64::try_from(counters.len().max(1)).unwrap_or(1);
        let total = u64::from(per_turn) * u64::from(ahead);
        u32::try_from(total.div_ceil(open)).unwrap_or(u32::MAX)
    }

    /// The state of the queue for the counter page and (after projection) the lobby display.
    pub fn board(&self, now: OffsetDateTime) -> QueueBoard {
        let day = ServiceDay::at(now, self.settings.opening_time);
        let services = self
            .settings
            .services
            .iter()
            .map(|s| {
                let waiting: Vec<&Turn> = self
                    .turns
                    .iter()
                    .filter(|t| t.service == s.letter && t.status == TurnStatus::Waiting)
                    .collect();
                let next = waiting
                    .iter()
                    .min_by_key(|t| call_order(t))
                    .map(|t| t.label());
                let waiting_n = u32::try_from(waiting.len()).unwrap_or(u32::MAX);
                ServiceBoard {
                    letter: s.letter.clone(),
                    name: s.name.clone(),
                    priority_allowed: s.priority_allowed,
                    waiting: waiting_n,
                    priority_waiting: u32::try_from(waiting.iter().filter(|t| t.priority).count())
                        .unwrap_or(u32::MAX),
                    estimated_wait_s: self.estimate_wait_s(&s.letter, waiting_n, now),
                    next,
                }
            })
            .collect();
        let serving = self
            .turns
            .iter()
            .filter(|t| t.status == TurnStatus::Called)
            .map(|t| ServingEntry {
                turn_id: t.id,
                label: t.label(),
                service: t.service.clone(),
                counter: t.counter.clone().unwrap_or_default(),
                priority: t.priority,
                calls: t.calls,
                card_token: t.card_token.clone(),
                campaign_id: t.campaign_id.clone(),
                customer: None,
            })
            .collect();
        let mut called: Vec<&Turn> = self
            .turns
            .iter()
            .filter(|t| t.last_called_at.is_some())
            .collect();
        called.sort_by_key(|t| std::cmp::Reverse(t.last_called_at));
        let recent_calls = called
            .into_iter()
            .take(self.settings.recent_calls)
            .map(|t| CallEntry {
                turn_id: t.id,
                label: t.label(),
                service: t.service.clone(),
                counter: t.counter.clone().unwrap_or_default(),
                calls: t.calls,
                status: t.status,
            })
            .collect();
        QueueBoard {
            service_day: day,
            services,
            serving,
            recent_calls,
        }
    }

    /// Today's figures per service for the manager report.
    pub fn report(&self, day: ServiceDay) -> DayReport {
        let services = self
            .settings
            .services
            .iter()
            .map(|s| {
                let turns: Vec<&Turn> = self
                    .turns
                    .iter()
                    .filter(|t| t.service_day == day && t.service == s.letter)
                    .collect();
                let count = |st: TurnStatus| {
                    u32::try_from(turns.iter().filter(|t| t.status == st).count())
                        .unwrap_or(u32::MAX)
                };
                let waits: Vec<u32> = turns
                    .iter()
                    .filter_map(|t| Some(seconds_between(t.issued_at, t.first_called_at?)))
                    .collect();
                let service_times: Vec<u32> = turns
                    .iter()
                    .filter(|t| t.status == TurnStatus::Served)
                    .filter_map(|t| Some(seconds_between(t.first_called_at?, t.finished_at?)))
                    .collect();
                ServiceReport {
                    letter: s.letter.clone(),
                    name: s.name.clone(),
                    issued: u32::try_from(turns.len()).unwrap_or(u32::MAX),
                    served: count(TurnStatus::Served),
                    no_show: count(TurnStatus::NoShow),
                    waiting: count(TurnStatus::Waiting) + count(TurnStatus::Called),
                    average_wait_s: average(&waits),
                    average_service_s: average(&service_times),
                }
            })
            .collect();
        DayReport {
            service_day: day,
            services,
        }
    }

    fn ensure_counter_free(&self, counter: &str) -> Result<(), QueueError> {
        match self.serving_at(counter) {
            Some(t) => Err(QueueError::CounterBusy {
                counter: counter.to_owned(),
                label: t.label(),
            }),
            None => Ok(()),
        }
    }

    fn called_here(
        &self,
        turn_id: Uuid,
        counter: &str,
        wanted: &'static str,
    ) -> Result<Turn, QueueError> {
        let t = self.turn(turn_id).ok_or(QueueError::UnknownTurn(turn_id))?;
        if t.status != TurnStatus::Called {
            return Err(t.wrong_status(wanted));
        }
        match t.counter.as_deref() {
            Some(c) if c != counter => Err(QueueError::OtherCounter {
                label: t.label(),
                called_at: c.to_owned(),
                counter: counter.to_owned(),
            }),
            _ => Ok(t.clone()),
        }
    }

    fn ahead_of(&self, turn: &Turn, day: ServiceDay) -> u32 {
        let key = call_order(turn);
        let n = self
            .turns
            .iter()
            .filter(|t| {
                t.id != turn.id && t.service == turn.service && t.status == TurnStatus::Waiting
            })
            .filter(|t| t.service_day >= day)
            .filter(|t| call_order(t) < key)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn bump_counter(&mut self, c: &DayCounter) {
        let slot = self
            .counters
            .entry((c.service_day, c.service.clone()))
            .or_insert(0);
        *slot = (*slot).max(c.last_number);
    }

    fn upsert(&mut self, turn: Turn) {
        match self.turns.iter_mut().find(|t| t.id == turn.id) {
            Some(slot) => *slot = turn,
            None => self.turns.push(turn),
        }
    }
}

/// The order in which waiting turns are called: priority first, then by issue time.
fn call_order(t: &Turn) -> (bool, OffsetDateTime, ServiceDay, u32) {
    (!t.priority, t.issued_at, t.service_day, t.number)
}

/// Whole seconds from `from` to `to`, 0 when the clock went backwards.
fn seconds_between(from: OffsetDateTime, to: OffsetDateTime) -> u32 {
    let s = (to - from).whole_seconds();
    u32::try_from(s.max(0)).unwrap_or(u32::MAX)
}

fn average(values: &[u32]) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    let sum: u64 = values.iter().map(|v| u64::from(*v)).sum();
    let n = u64::try_from(values.len()).unwrap_or(1);
    u32::try_from(sum / n).ok()
}

/// What a new turn is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// The new turn's id (UUIDv7 made by the runtime, also in the ticket's signed QR).
    pub turn_id: Uuid,
    /// Service letter.
    pub service: String,
    /// Whether a priority turn was asked for.
    pub priority: bool,
    /// The identified customer, if any.
    pub card_token: Option<CardToken>,
    /// The campaign printed on the ticket, if any.
    pub campaign_id: Option<String>,
    /// The ticket's language.
    pub locale: Locale,
}

#[cfg(test)]
mod tests;
