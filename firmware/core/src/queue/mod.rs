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
use kiosk_protocol::events::{
    Event, TicketIssued, TurnCalled, TurnNoShow, TurnParked, TurnServed, TurnTransferred,
    TurnWalkedOut,
};
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
    /// The label is already taken (a number handed out twice: the store's numbering must
    /// prevent this, so it is reported as a conflict).
    #[error("label {0} is already taken today")]
    DuplicateLabel(String),
    /// No turn with this label is known today.
    #[error("no turn {0} today")]
    UnknownLabel(String),
    /// A transfer to the service the turn is already in.
    #[error("turn {label} already waits for service {service}")]
    SameService {
        /// The turn as shown.
        label: String,
        /// Its service.
        service: String,
    },
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

    /// The next number of the store's sequence for `service` on `day` (what a sequencer hands
    /// out): one past the highest number it has issued or seen issued.
    pub fn next_number(&self, day: ServiceDay, service: &str) -> Result<u32, QueueError> {
        let last = self
            .counters
            .get(&(day, service.to_owned()))
            .copied()
            .unwrap_or(0);
        last.checked_add(1)
            .ok_or_else(|| QueueError::NumbersExhausted(service.to_owned()))
    }

    /// Plans a new turn numbered by this queue alone (a store of one kiosk). `now` is the store's
    /// local time; it decides the service day.
    pub fn plan_issue(
        &self,
        req: IssueRequest,
        now: OffsetDateTime,
    ) -> Result<IssuePlan, QueueError> {
        let letter = self
            .settings
            .service(&req.service)
            .map(|s| s.letter.clone())
            .ok_or_else(|| QueueError::UnknownService(req.service.clone()))?;
        let day = ServiceDay::at(now, self.settings.opening_time);
        let number = self.next_number(day, &letter)?;
        self.plan_issue_numbered(req, Numbering { number, tag: None }, now)
    }

    /// Plans a new turn with a number handed out by the store (its sequencer, or this kiosk's own
    /// block while cut off). `now` is the issue time (the sequencer's for the store's sequence):
    /// it decides the service day and the turn's place in the call order.
    pub fn plan_issue_numbered(
        &self,
        req: IssueRequest,
        numbering: Numbering,
        now: OffsetDateTime,
    ) -> Result<IssuePlan, QueueError> {
        let service = self
            .settings
            .service(&req.service)
            .ok_or_else(|| QueueError::UnknownService(req.service.clone()))?;
        if req.priority && !service.priority_allowed {
            return Err(QueueError::PriorityNotOffered(service.letter.clone()));
        }
        let letter = service.letter.clone();
        self.plan_issue_lettered(req, letter, numbering, now)
    }

    /// Plans a turn another kiosk of the store issued (a replicated step): that kiosk checked
    /// the service against its own configuration, which may be a version newer or older than
    /// this one's for a moment, so any service letter is taken as it came (docs/DESIGN.md
    /// invariant 20: the store's queue never depends on a kiosk's configuration version).
    pub fn plan_replicated_issue(
        &self,
        req: IssueRequest,
        numbering: Numbering,
        now: OffsetDateTime,
    ) -> Result<IssuePlan, QueueError> {
        let letter = self.letter_of(&req.service)?;
        self.plan_issue_lettered(req, letter, numbering, now)
    }

    /// The configured letter of `service`, or `service` itself when it is a letter this
    /// configuration does not list (a service of another configuration version).
    fn letter_of(&self, service: &str) -> Result<String, QueueError> {
        match self.settings.service(service) {
            Some(s) => Ok(s.letter.clone()),
            None if service.len() == 1 && service.chars().all(|c| c.is_ascii_uppercase()) => {
                Ok(service.to_owned())
            }
            None => Err(QueueError::UnknownService(service.to_owned())),
        }
    }

    /// Replaces the configuration (a new store configuration from the CRM). Turns already held
    /// keep their services, known or not.
    pub fn set_settings(&mut self, settings: QueueSettings) {
        self.settings = settings;
    }

    fn plan_issue_lettered(
        &self,
        req: IssueRequest,
        letter: String,
        numbering: Numbering,
        now: OffsetDateTime,
    ) -> Result<IssuePlan, QueueError> {
        if self.turn(req.turn_id).is_some() {
            return Err(QueueError::DuplicateTurn(req.turn_id));
        }
        let day = ServiceDay::at(now, self.settings.opening_time);
        let Numbering { number, tag } = numbering;
        if let Some(other) = self.turns.iter().find(|t| {
            t.service_day == day
                && t.tag == tag
                && t.number == number
                && t.issued_service.as_deref().unwrap_or(&t.service) == letter
        }) {
            return Err(QueueError::DuplicateLabel(other.label()));
        }

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
            service: letter.clone(),
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
            tag,
            issued_service: None,
        };
        let ahead = self.ahead_of(&turn, day);
        let estimated_wait_s = self.estimate_wait_s(&turn, now);
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
            out_of_sequence: tag.is_some(),
        };
        upserts.push(turn);
        Ok(IssuePlan {
            change: Change {
                upserts,
                counter: tag.is_none().then(|| DayCounter {
                    service_day: day,
                    service: letter.clone(),
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
        if !matches!(turn.status, TurnStatus::Waiting | TurnStatus::Parked) {
            return Err(turn.wrong_status("called"));
        }
        let mut t = turn.clone();
        // A parked turn (or one transferred after a call) is called back: a recall.
        let recall = t.first_called_at.is_some();
        t.status = TurnStatus::Called;
        t.counter = Some(counter.to_owned());
        let first = *t.first_called_at.get_or_insert(now);
        t.last_called_at = Some(now);
        t.calls = t.calls.saturating_add(1);
        let event = Event::TurnCalled(TurnCalled {
            staff: None,
            turn_id,
            turn: t.label(),
            counter: counter.to_owned(),
            recall,
            waited_s: seconds_between(t.issued_at, first),
        });
        Ok(Change {
            upserts: vec![t],
            counter: None,
            events: vec![event],
        })
    }

    /// Plans the turn with this label (today's) being called to `counter`: staff type it, or
    /// the customer shows the ticket.
    pub fn plan_call_label(
        &self,
        label: &str,
        counter: &str,
        now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        let t = self
            .turn_by_label(label, ServiceDay::at(now, self.settings.opening_time))
            .ok_or_else(|| QueueError::UnknownLabel(label.trim().to_uppercase()))?;
        self.plan_call(t.id, counter, now)
    }

    /// The turn of `day` with this label (case and spaces ignored).
    pub fn turn_by_label(&self, label: &str, day: ServiceDay) -> Option<&Turn> {
        let wanted = label.trim().to_uppercase();
        self.turns
            .iter()
            .rev()
            .find(|t| t.service_day == day && t.label().to_uppercase() == wanted)
    }

    /// Plans calling a called turn again (the customer did not come yet). Past the recall limit
    /// ([`QueueSettings::recall_limit`] calls in all) the turn becomes a no-show instead.
    pub fn plan_recall(
        &self,
        turn_id: Uuid,
        counter: &str,
        now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        let mut t = self.called_here(turn_id, counter, "recalled")?;
        if t.calls >= self.settings.recall_limit.max(1) {
            t.status = TurnStatus::NoShow;
            t.finished_at = Some(now);
            let event = Event::TurnNoShow(TurnNoShow {
                staff: None,
                turn_id,
                counter: counter.to_owned(),
                recall_limit: true,
            });
            return Ok(Change {
                upserts: vec![t],
                counter: None,
                events: vec![event],
            });
        }
        t.calls = t.calls.saturating_add(1);
        t.last_called_at = Some(now);
        let event = Event::TurnCalled(TurnCalled {
            staff: None,
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
            staff: None,
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
            staff: None,
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

    /// Plans setting a called turn aside at its counter; it is called back with
    /// [`Queue::plan_call`] (at any counter) and frees the counter meanwhile.
    pub fn plan_park(
        &self,
        turn_id: Uuid,
        counter: &str,
        _now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        let mut t = self.called_here(turn_id, counter, "parked")?;
        t.status = TurnStatus::Parked;
        let event = Event::TurnParked(TurnParked {
            turn_id,
            turn: t.label(),
            counter: counter.to_owned(),
        });
        Ok(Change {
            upserts: vec![t],
            counter: None,
            events: vec![event],
        })
    }

    /// Plans moving a turn to service `to`: a waiting or parked turn, or the one `counter` is
    /// serving. It keeps its label and waits in the new service's line by its issue time.
    pub fn plan_transfer(
        &self,
        turn_id: Uuid,
        to: &str,
        counter: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        if self.settings.service(to).is_none() {
            return Err(QueueError::UnknownService(to.to_owned()));
        }
        self.plan_replicated_transfer(turn_id, to, counter, now)
    }

    /// Plans a transfer another kiosk of the store made: to any service letter, configured here
    /// or not (see [`Queue::plan_replicated_issue`]).
    pub fn plan_replicated_transfer(
        &self,
        turn_id: Uuid,
        to: &str,
        counter: Option<&str>,
        _now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        let letter = self.letter_of(to)?;
        // A service this configuration does not list keeps a priority turn's priority: the
        // kiosk that transferred it knew the service.
        let priority_allowed = self.settings.service(to).is_none_or(|s| s.priority_allowed);
        let turn = self.turn(turn_id).ok_or(QueueError::UnknownTurn(turn_id))?;
        let mut t = match turn.status {
            TurnStatus::Waiting | TurnStatus::Parked => turn.clone(),
            TurnStatus::Called => match counter {
                Some(c) => self.called_here(turn_id, c, "transferred")?,
                None => return Err(turn.wrong_status("transferred")),
            },
            _ => return Err(turn.wrong_status("transferred")),
        };
        if t.service == letter {
            return Err(QueueError::SameService {
                label: t.label(),
                service: t.service,
            });
        }
        let from = t.service.clone();
        if t.issued_service.is_none() {
            t.issued_service = Some(from.clone());
        }
        t.service = letter.clone();
        t.status = TurnStatus::Waiting;
        t.counter = None;
        // A turn sent to a service without priority turns waits as an ordinary one.
        t.priority = t.priority && priority_allowed;
        let event = Event::TurnTransferred(TurnTransferred {
            turn_id,
            turn: t.label(),
            from_service: from,
            to_service: t.service.clone(),
            counter: counter.map(str::to_owned),
        });
        Ok(Change {
            upserts: vec![t],
            counter: None,
            events: vec![event],
        })
    }

    /// Plans marking a waiting (or parked) turn as having left before being served.
    pub fn plan_walkout(
        &self,
        turn_id: Uuid,
        counter: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Change, QueueError> {
        let turn = self.turn(turn_id).ok_or(QueueError::UnknownTurn(turn_id))?;
        if !matches!(turn.status, TurnStatus::Waiting | TurnStatus::Parked) {
            return Err(turn.wrong_status("marked walked out"));
        }
        let mut t = turn.clone();
        t.status = TurnStatus::WalkedOut;
        t.finished_at = Some(now);
        let event = Event::TurnWalkedOut(TurnWalkedOut {
            turn_id,
            turn: t.label(),
            counter: counter.map(str::to_owned),
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

    /// Turns that will be called before `turn_id` (counters call across services, priority
    /// first, then by issue time), while it waits.
    pub fn position(&self, turn_id: Uuid) -> Option<u32> {
        let turn = self.turn(turn_id)?;
        (turn.status == TurnStatus::Waiting).then(|| self.ahead_of(turn, turn.service_day))
    }

    /// Seconds one customer of `service` takes at a counter: the mean of its last
    /// [`QueueSettings::history`] service times (first call to served) once it has
    /// [`QueueSettings::min_sample`] of them, its configured `expected_s` before.
    pub fn service_time_s(&self, service: &str) -> u32 {
        let times: Vec<u32> = self
            .turns
            .iter()
            .rev()
            .filter(|t| t.service == service && t.status == TurnStatus::Served)
            .filter_map(|t| Some(seconds_between(t.first_called_at?, t.finished_at?)))
            .take(self.settings.history.max(1))
            .collect();
        if times.len() >= self.settings.min_sample.max(1) {
            average(&times).unwrap_or(0)
        } else {
            self.settings.service(service).map_or(300, |s| s.expected_s)
        }
    }

    /// Counters open at `now`: serving a turn, or finished one within
    /// [`QueueSettings::open_counter_window_s`]; the configured `counters` when none is.
    pub fn open_counters(&self, now: OffsetDateTime) -> u32 {
        let window = Duration::seconds(i64::from(self.settings.open_counter_window_s));
        let mut counters: Vec<&str> = self
            .turns
            .iter()
            .filter(|t| {
                t.status == TurnStatus::Called
                    || (matches!(t.status, TurnStatus::Served | TurnStatus::NoShow)
                        && t.finished_at.is_some_and(|f| f <= now && now - f <= window))
            })
            .filter_map(|t| t.counter.as_deref())
            .collect();
        counters.sort_unstable();
        counters.dedup();
        match u32::try_from(counters.len()).unwrap_or(u32::MAX) {
            0 => self.settings.counters.max(1),
            n => n,
        }
    }

    /// Estimated wait in seconds for `turn` (issued, or about to be): the service times of
    /// every turn called before it, plus half the service time of each turn being served now
    /// (on average half of it is left), shared by the open counters.
    pub fn estimate_wait_s(&self, turn: &Turn, now: OffsetDateTime) -> u32 {
        let key = call_order(turn);
        let ahead: u64 = self
            .turns
            .iter()
            .filter(|t| t.id != turn.id && t.status == TurnStatus::Waiting)
            .filter(|t| t.service_day >= turn.service_day && call_order(t) < key)
            .map(|t| u64::from(self.service_time_s(&t.service)))
            .sum();
        let serving: u64 = self
            .turns
            .iter()
            .filter(|t| t.status == TurnStatus::Called)
            .map(|t| u64::from(self.service_time_s(&t.service)) / 2)
            .sum();
        let open = u64::from(self.open_counters(now));
        u32::try_from((ahead + serving).div_ceil(open)).unwrap_or(u32::MAX)
    }

    /// The estimate for a new ordinary turn of `service` taken at `now`.
    pub fn estimate_new_s(&self, service: &str, now: OffsetDateTime) -> u32 {
        let day = ServiceDay::at(now, self.settings.opening_time);
        let probe = Turn {
            id: Uuid::nil(),
            service_day: day,
            service: service.to_owned(),
            number: u32::MAX,
            priority: false,
            card_token: None,
            campaign_id: None,
            locale: Locale::Es,
            issued_at: now,
            status: TurnStatus::Waiting,
            counter: None,
            first_called_at: None,
            last_called_at: None,
            calls: 0,
            finished_at: None,
            tag: None,
            issued_service: None,
        };
        self.estimate_wait_s(&probe, now)
    }

    /// The state of the queue for the counter page and (after projection) the lobby display.
    pub fn board(&self, now: OffsetDateTime) -> QueueBoard {
        let day = ServiceDay::at(now, self.settings.opening_time);
        // Turns waiting for a service this configuration does not list (another kiosk's newer
        // store configuration, or one that dropped the service) stay on the board under their
        // letter until they are served: nobody waiting disappears from the counter pages.
        let mut unlisted: Vec<ServiceDef> = Vec::new();
        for t in &self.turns {
            if t.status == TurnStatus::Waiting
                && self.settings.service(&t.service).is_none()
                && !unlisted.iter().any(|s| s.letter == t.service)
            {
                unlisted.push(ServiceDef {
                    letter: t.service.clone(),
                    name: crate::locale::Localized::new(t.service.clone(), t.service.clone()),
                    priority_allowed: false,
                    expected_s: 300,
                });
            }
        }
        let services = self
            .settings
            .services
            .iter()
            .chain(&unlisted)
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
                    estimated_wait_s: self.estimate_new_s(&s.letter, now),
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
        let parked = self
            .turns
            .iter()
            .filter(|t| t.status == TurnStatus::Parked)
            .map(|t| ParkedEntry {
                turn_id: t.id,
                label: t.label(),
                service: t.service.clone(),
                counter: t.counter.clone().unwrap_or_default(),
            })
            .collect();
        QueueBoard {
            service_day: day,
            services,
            serving,
            recent_calls,
            parked,
            open_counters: self.open_counters(now),
            conflicts: Vec::new(),
            unreachable_kiosks: Vec::new(),
            assistance: Vec::new(),
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
                    walked_out: count(TurnStatus::WalkedOut),
                    waiting: count(TurnStatus::Waiting)
                        + count(TurnStatus::Called)
                        + count(TurnStatus::Parked),
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
            .filter(|t| t.id != turn.id && t.status == TurnStatus::Waiting)
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
        // A turn of the store's sequence reserves its number, whoever issued it.
        if turn.tag.is_none() {
            self.bump_counter(&DayCounter {
                service_day: turn.service_day,
                service: turn
                    .issued_service
                    .clone()
                    .unwrap_or_else(|| turn.service.clone()),
                last_number: turn.number,
            });
        }
        match self.turns.iter_mut().find(|t| t.id == turn.id) {
            Some(slot) => *slot = turn,
            None => self.turns.push(turn),
        }
    }
}

/// The order in which waiting turns are called: priority first, then by issue time.
fn call_order(t: &Turn) -> (bool, ServiceDay, OffsetDateTime, Option<u8>, u32) {
    (!t.priority, t.service_day, t.issued_at, t.tag, t.number)
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
