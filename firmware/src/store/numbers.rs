//! The store's number sequence, kept by its sequencer (see `kiosk_store::numbering`). Numbers
//! are handed out here, straight from the journal, for this kiosk's own turns and for its
//! peers': a peer's request never waits behind this kiosk's customer journey.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use kiosk_core::queue::{QueueSettings, ServiceDay};
use kiosk_journal::db::KioskDb;
use kiosk_journal::store_db::Series;
use time::OffsetDateTime;

use super::Allocated;
use crate::setup::StoreTime;

/// The sequencer's state: the highest number seen per day and service in any kiosk's turns (so a
/// sequencer that lost its counter rows never goes below them), and the last issue time.
#[derive(Debug, Default)]
struct State {
    floors: HashMap<(ServiceDay, String), u32>,
    last_at: Option<OffsetDateTime>,
    /// Numbers handed out to peers lately, by turn, so a repeated request gets the same one.
    recent: std::collections::VecDeque<(uuid::Uuid, Allocated)>,
}

/// Peers' requests remembered for repeats.
const RECENT: usize = 256;

/// Hands out the store's numbers. One lock around the whole step keeps numbers and issue times
/// in the same order.
pub struct Sequencer {
    db: KioskDb,
    time: StoreTime,
    /// The store configuration's queue settings (replaced when a new one is applied).
    settings: std::sync::RwLock<QueueSettings>,
    state: Mutex<State>,
    ready: AtomicBool,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer").finish_non_exhaustive()
    }
}

impl Sequencer {
    /// A sequencer over this kiosk's journal. `ready`: whether it may number at once (its
    /// journal has history, or the store has no other kiosk); otherwise it waits for
    /// [`Sequencer::set_ready`] (the first pull from a peer).
    pub fn new(db: KioskDb, time: StoreTime, settings: QueueSettings, ready: bool) -> Self {
        Sequencer {
            db,
            time,
            settings: std::sync::RwLock::new(settings),
            state: Mutex::new(State::default()),
            ready: AtomicBool::new(ready),
        }
    }

    /// Numbers by a new store configuration from now on.
    pub fn set_settings(&self, settings: QueueSettings) {
        *self
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = settings;
    }

    fn opening_time(&self) -> time::Time {
        self.settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .opening_time
    }

    /// The kiosk heard from its peers: it knows the numbers they saw.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// A turn of the store's sequence was seen (own or replicated).
    pub fn saw(&self, day: ServiceDay, service: &str, number: u32) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let f = st.floors.entry((day, service.to_owned())).or_insert(0);
        *f = (*f).max(number);
    }

    /// A turn of the store's sequence issued at `at` was seen.
    pub fn saw_at(&self, at: OffsetDateTime, service: &str, number: u32) {
        self.saw(ServiceDay::at(at, self.opening_time()), service, number);
    }

    /// The number for a peer's turn: the one handed out before if the request is a repeat.
    pub fn allocate_for(&self, service: &str, turn_id: uuid::Uuid) -> Result<Allocated, String> {
        {
            let st = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, a)) = st.recent.iter().find(|(id, _)| *id == turn_id) {
                return Ok(*a);
            }
        }
        let a = self.allocate(service)?;
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.recent.push_back((turn_id, a));
        if st.recent.len() > RECENT {
            st.recent.pop_front();
        }
        Ok(a)
    }

    /// The next number of `service`, persisted before it is returned.
    pub fn allocate(&self, service: &str) -> Result<Allocated, String> {
        // A letter this kiosk's configuration does not list is numbered all the same: the kiosk
        // asking may run a newer store configuration for a moment (docs/DESIGN.md invariant 20).
        let letter = match self
            .settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .service(service)
        {
            Some(s) => s.letter.clone(),
            None if service.len() == 1 && service.chars().all(|c| c.is_ascii_uppercase()) => {
                service.to_owned()
            }
            None => return Err(format!("service {service:?} is not a service letter")),
        };
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut at = self.time.now();
        if let Some(last) = st.last_at
            && at < last
        {
            at = last;
        }
        let day = ServiceDay::at(at, self.opening_time());
        let ready = self.ready.load(Ordering::Relaxed)
            || self
                .db
                .has_store_numbers(Series::Store, day)
                .unwrap_or(false);
        if !ready {
            return Err(
                "the sequencer started with an empty journal and has not heard from \
                        the other kiosks yet; it hands out numbers once it has"
                    .to_owned(),
            );
        }
        let seen = st.floors.get(&(day, letter.clone())).copied().unwrap_or(0);
        let number = self
            .db
            .next_store_number(Series::Store, day, &letter, seen)
            .map_err(|e| e.to_string())?;
        st.last_at = Some(at);
        let f = st.floors.entry((day, letter)).or_insert(0);
        *f = (*f).max(number);
        Ok(Allocated { number, at })
    }
}
