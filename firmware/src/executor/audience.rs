//! The executor's side of "who is in the store": the people counter's tally (journaled as
//! `people_counted` per period) and the store picture (`kiosk_core::audience`) it publishes
//! after every queue change, for the counter page, the lobby's signage and browse points.
//!
//! Data flow: presence input → [`crate::devices::DeviceMsg::PersonEntered`] → tally → journal;
//! replicated queue + profile cache + past visits → picture (watch) → UI server.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kiosk_core::audience::{self, HISTORY_DAYS, StorePicture, Visit, Waiting};
use kiosk_core::queue::{ServiceDay, TurnStatus};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::{Event, PeopleCounted};
use tokio::sync::watch;

use super::Run;

/// How often counted entries are journaled (when there are any).
pub const PEOPLE_PERIOD: Duration = Duration::from_secs(300);
/// How often the dwell times are learned again from the visits.
const HISTORY_REFRESH: Duration = Duration::from_secs(1_800);

/// What the executor keeps for the store picture.
#[derive(Debug)]
pub struct Audience {
    /// The picture, after every queue change.
    pub picture: watch::Sender<StorePicture>,
    /// Whether a people counter is fitted (the picture says `None` otherwise).
    pub counter_fitted: bool,
    /// Entries since the last `people_counted`.
    period_entries: u32,
    /// When the period started (monotonic ms).
    period_start_ms: u64,
    /// Entries today (journaled and not yet).
    today_entries: u32,
    /// The service day `today_entries` counts.
    today: Option<ServiceDay>,
    /// Past visits with their segments, and when they were read (monotonic ms).
    visits: Vec<Visit>,
    visits_read_ms: Option<u64>,
}

impl Audience {
    /// A picture sender; `counter_fitted` when the hardware has a presence input.
    pub fn new(picture: watch::Sender<StorePicture>, counter_fitted: bool) -> Self {
        Audience {
            picture,
            counter_fitted,
            period_entries: 0,
            period_start_ms: 0,
            today_entries: 0,
            today: None,
            visits: Vec::new(),
            visits_read_ms: None,
        }
    }
}

impl Run {
    /// A browse point's visit: the content for `segment` and the customer's turn today (the
    /// latest of their turns still waiting or called, with the turns before it).
    pub(super) fn load_browse(
        &self,
        visit_id: uuid::Uuid,
        segment: &str,
        card_token: Option<&CardToken>,
    ) -> kiosk_core::journey::Input {
        let now = self.e.time.now();
        let items = crate::signage::browse_items(&self.e.db, now.date(), segment);
        let queue = self.e.store.replica.queue();
        let today = ServiceDay::at(now, queue.settings().opening_time);
        let turn = card_token.and_then(|token| {
            queue
                .turns()
                .iter()
                .filter(|t| {
                    t.service_day == today
                        && t.card_token.as_ref() == Some(token)
                        && matches!(
                            t.status,
                            TurnStatus::Waiting | TurnStatus::Called | TurnStatus::Parked
                        )
                })
                .max_by_key(|t| t.issued_at)
                .map(|t| kiosk_core::journey::BrowseTurn {
                    label: t.label(),
                    ahead: queue.position(t.id),
                    counter: (t.status == TurnStatus::Called)
                        .then(|| t.counter.clone())
                        .flatten(),
                })
        });
        kiosk_core::journey::Input::BrowseLoaded {
            visit_id,
            items,
            turn,
        }
    }

    /// Someone entered (the people counter).
    pub(super) fn person_entered(&mut self) {
        self.load_people_today();
        let a = &mut self.e.audience;
        a.period_entries = a.period_entries.saturating_add(1);
        a.today_entries = a.today_entries.saturating_add(1);
        self.publish_picture();
    }

    /// Journals the period's entries as `people_counted` when there are any (every
    /// [`PEOPLE_PERIOD`], and at shutdown).
    pub(super) fn flush_people(&mut self) {
        let now = self.e.time.mono_ms();
        let a = &mut self.e.audience;
        let entries = std::mem::take(&mut a.period_entries);
        let period_ms = now.saturating_sub(a.period_start_ms);
        a.period_start_ms = now;
        if entries == 0 {
            return;
        }
        let event = Event::PeopleCounted(PeopleCounted {
            entries,
            period_s: u32::try_from(period_ms.div_ceil(1_000)).unwrap_or(u32::MAX),
        });
        if let Err(e) = self.e.db.append(event) {
            tracing::warn!(error = %e, entries, "cannot journal the people counted");
        }
    }

    /// Today's entries start from what the journal holds for today (a restart keeps the count).
    fn load_people_today(&mut self) {
        let opening = self.e.store.replica.queue().settings().opening_time;
        let today = ServiceDay::at(self.e.time.now(), opening);
        if self.e.audience.today == Some(today) {
            return;
        }
        if self.e.audience.today.is_none() {
            self.e.audience.period_start_ms = self.e.time.mono_ms();
        }
        let since = today
            .0
            .with_time(opening)
            .assume_offset(self.e.time.now().offset());
        let journaled = match self.e.db.people_counted_since(since) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read today's people count");
                0
            }
        };
        // On a new day the current period's entries belong to it, not to yesterday.
        let pending = self.e.audience.period_entries;
        self.e.audience.today_entries = journaled.saturating_add(pending);
        self.e.audience.today = Some(today);
    }

    /// Past visits with the segment of each card, read again every half hour.
    fn refresh_visits(&mut self, segments: &mut HashMap<CardToken, Option<String>>) {
        let now_ms = self.e.time.mono_ms();
        let fresh = self
            .e
            .audience
            .visits_read_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < HISTORY_REFRESH.as_millis() as u64);
        if fresh {
            return;
        }
        let opening = self.e.store.replica.queue().settings().opening_time;
        let today = ServiceDay::at(self.e.time.now(), opening);
        let from = ServiceDay(
            today
                .0
                .checked_sub(time::Duration::days(HISTORY_DAYS))
                .unwrap_or(today.0),
        );
        let served = match self.e.db.served_since(from) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read past visits: dwell times fall back");
                Vec::new()
            }
        };
        let visits = served
            .iter()
            .map(|t| {
                let segment = t
                    .card_token
                    .as_ref()
                    .and_then(|token| self.segment_of(token, segments));
                t.visit(segment)
            })
            .collect();
        self.e.audience.visits = visits;
        self.e.audience.visits_read_ms = Some(now_ms);
    }

    /// The cached profile's segment of `token` (`None`: unknown card, counted as anonymous).
    fn segment_of(
        &self,
        token: &CardToken,
        cache: &mut HashMap<CardToken, Option<String>>,
    ) -> Option<String> {
        cache
            .entry(token.clone())
            .or_insert_with(|| match self.e.db.profile(token) {
                Ok(p) => p.map(|p| p.segment),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a cached profile");
                    None
                }
            })
            .clone()
    }

    /// Computes and publishes the store picture: customers waiting now (waiting or parked:
    /// a turn at a counter is being served), their segments, the learned dwell times and
    /// today's people count.
    pub(super) fn publish_picture(&mut self) {
        if self.e.audience.counter_fitted {
            self.load_people_today();
        }
        let mut segments = HashMap::new();
        self.refresh_visits(&mut segments);
        let now = self.e.time.now();
        let queue = self.e.store.replica.queue();
        let today = ServiceDay::at(now, queue.settings().opening_time);
        let waiting_turns: Vec<_> = queue
            .turns()
            .iter()
            .filter(|t| {
                t.service_day == today
                    && matches!(t.status, TurnStatus::Waiting | TurnStatus::Parked)
            })
            .map(|t| (t.card_token.clone(), t.service.clone()))
            .collect();
        let expected: BTreeMap<String, u32> = queue
            .settings()
            .services
            .iter()
            .map(|s| (s.letter.clone(), s.expected_s))
            .collect();
        let waiting: Vec<Waiting> = waiting_turns
            .into_iter()
            .map(|(token, service)| Waiting {
                segment: token.and_then(|t| self.segment_of(&t, &mut segments)),
                service,
            })
            .collect();
        let default_expected = if expected.is_empty() {
            300
        } else {
            u32::try_from(
                expected.values().map(|v| u64::from(*v)).sum::<u64>() / expected.len() as u64,
            )
            .unwrap_or(300)
        };
        let picture = audience::picture(
            &waiting,
            &self.e.audience.visits,
            &expected,
            default_expected,
            self.e
                .audience
                .counter_fitted
                .then_some(self.e.audience.today_entries),
            now,
        );
        // `at` changes every time: compare the rest so watchers wake only on real changes.
        self.e.audience.picture.send_if_modified(|old| {
            let changed = StorePicture {
                at: old.at,
                ..picture.clone()
            } != *old;
            if changed {
                *old = picture;
            }
            changed
        });
    }
}
