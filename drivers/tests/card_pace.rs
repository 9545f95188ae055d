//! The MFRC522 reader's poll pace (`kiosk_drivers::card::pace`): the profile's fast interval
//! while someone may be in front of the kiosk, the idle interval while a working presence sensor
//! sees nobody. The reader runs its real `next_event` loop on a virtual clock (sleeping moves it
//! forward), so polls are counted over simulated minutes without waiting and without timing
//! assertions; the SPI transfers come from the register simulator's counter.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiosk_drivers::card::mfrc522sim::{Mfrc522Sim, SimHandle, SimOptions, VirtualCard};
use kiosk_drivers::card::pace::{GRACE, Pace, PollClock};
use kiosk_drivers::card::rc522::{Mfrc522Config, Mfrc522Reader, Transceive};
use kiosk_drivers::card::{CardEvent, CardReader, PresenceSignal, ReaderKind};

#[path = "support/mfrc522.rs"]
#[allow(
    dead_code,
    reason = "shared helpers; these tests poll through next_event, not poll()"
)]
mod support;

use support::{SimReader, key, taps, token_of};

const FAST_MS: u64 = 20;
const IDLE_MS: u64 = 100;
/// What the reader thread of `kiosk_drivers::card::spawn` passes to `next_event`.
const THREAD_TIMEOUT: Duration = Duration::from_millis(100);
const UID: [u8; 4] = [0x4A, 0x11, 0x9C, 0x03];

/// Virtual time: `sleep` moves it forward and counts the wake-ups.
#[derive(Clone)]
struct VirtualClock(Arc<Mutex<(Instant, u64)>>);

impl VirtualClock {
    fn new() -> Self {
        VirtualClock(Arc::new(Mutex::new((Instant::now(), 0))))
    }

    fn sleeps(&self) -> u64 {
        self.0.lock().unwrap().1
    }
}

impl PollClock for VirtualClock {
    fn now(&self) -> Instant {
        self.0.lock().unwrap().0
    }

    fn sleep(&mut self, duration: Duration) {
        let mut t = self.0.lock().unwrap();
        t.0 += duration;
        t.1 += 1;
    }
}

struct Kiosk {
    reader: SimReader,
    sim: SimHandle,
    clock: VirtualClock,
    events: Vec<CardEvent>,
}

/// The lean path with the IRQ line, as `hw-config/simulated.toml`: fast 20 ms, idle 100 ms;
/// following `signal` when given (a kiosk with a presence sensor).
fn kiosk(signal: Option<&PresenceSignal>) -> Kiosk {
    let sim = Mfrc522Sim::new(SimOptions::default());
    let handle = sim.handle();
    let delay = sim.delay();
    let pin = sim.reset_pin();
    let irq = sim.irq_line();
    let config = Mfrc522Config {
        label: "test mfrc522".into(),
        antenna_gain_db: 48,
        poll_interval: Duration::from_millis(FAST_MS),
        idle_poll_interval: Duration::from_millis(IDLE_MS),
        removal_polls: 3,
    };
    let mut reader =
        Mfrc522Reader::new(sim, Some(pin), delay, config, ReaderKind::Simulated, key()).unwrap();
    reader.set_transceive(Transceive::Lean);
    reader.set_irq(Box::new(irq));
    let clock = VirtualClock::new();
    reader.set_clock(Box::new(clock.clone()));
    if let Some(signal) = signal {
        reader.follow_presence(signal.clone());
    }
    let mut k = Kiosk {
        reader,
        sim: handle,
        clock,
        events: Vec::new(),
    };
    // The first poll initialises the chip.
    k.run(Duration::from_millis(200));
    k
}

/// Polls and SPI transfers over a stretch of virtual time.
#[derive(Debug, Clone, Copy)]
struct Counted {
    polls: u64,
    transfers: u64,
    wakeups: u64,
}

impl Kiosk {
    /// Runs the reader as its thread does for `span` of virtual time.
    fn run(&mut self, span: Duration) -> Counted {
        let end = self.clock.now() + span;
        let (polls, transfers, wakeups) = (
            self.reader.polls(),
            self.sim.spi_stats().transfers,
            self.clock.sleeps(),
        );
        while self.clock.now() < end {
            if let Some(event) = self.reader.next_event(THREAD_TIMEOUT) {
                self.events.push(event);
            }
        }
        Counted {
            polls: self.reader.polls() - polls,
            transfers: self.sim.spi_stats().transfers - transfers,
            wakeups: self.clock.sleeps() - wakeups,
        }
    }
}

/// Polls a pace gives over `span`, give or take the two at the window's edges (the other pace
/// is two times off: 400 polls against 200 in ten seconds).
fn assert_polls(counted: Counted, span: Duration, interval_ms: u64, what: &str) {
    let expected = span.as_millis() as u64 / interval_ms;
    assert!(
        (expected.saturating_sub(2)..=expected + 2).contains(&counted.polls),
        "{what}: {} polls in {span:?}, expected {expected} (one every {interval_ms} ms)",
        counted.polls
    );
}

const TEN_S: Duration = Duration::from_secs(10);

#[test]
fn without_a_presence_sensor_the_reader_always_polls_at_the_fast_interval() {
    let mut k = kiosk(None);
    assert_polls(k.run(TEN_S), TEN_S, FAST_MS, "no signal");
    assert_eq!(k.reader.pace(), Pace::Fast);

    // A signal whose sensor never reported is the same: nobody can say the kiosk is alone.
    let signal = PresenceSignal::new();
    let mut k = kiosk(Some(&signal));
    assert_polls(k.run(TEN_S), TEN_S, FAST_MS, "sensor never reported");
}

#[test]
fn nobody_there_polls_at_the_idle_interval_and_someone_there_at_the_fast_one() {
    let signal = PresenceSignal::new();
    signal.sensor_works();
    let mut k = kiosk(Some(&signal));
    let idle = k.run(TEN_S);
    assert_polls(idle, TEN_S, IDLE_MS, "nobody there");
    assert_eq!(k.reader.pace(), Pace::Idle);

    signal.arrived();
    k.run(Duration::from_millis(IDLE_MS)); // the pace changes at the next poll
    let fast = k.run(TEN_S);
    assert_polls(fast, TEN_S, FAST_MS, "someone there");
    assert_eq!(k.reader.pace(), Pace::Fast);

    // Every empty poll costs the same transfers: half the polls, half the bus traffic.
    let per_poll = |c: Counted| c.transfers as f64 / c.polls as f64;
    assert!(
        (per_poll(idle) - per_poll(fast)).abs() < 0.2,
        "{idle:?} vs {fast:?}"
    );
    assert!(
        idle.transfers * 2 <= fast.transfers + 10,
        "{idle:?} vs {fast:?}"
    );
}

#[test]
fn after_someone_leaves_the_fast_pace_lasts_the_grace_period() {
    let signal = PresenceSignal::new();
    signal.sensor_works();
    let mut k = kiosk(Some(&signal));
    signal.arrived();
    k.run(Duration::from_secs(1));
    signal.left();
    // The grace period counts from the last poll that saw someone (at most one poll ago).
    let grace = GRACE - Duration::from_millis(FAST_MS);
    assert_polls(k.run(grace), grace, FAST_MS, "grace period");
    k.run(Duration::from_millis(2 * FAST_MS));
    assert_eq!(k.reader.pace(), Pace::Idle);
    assert_polls(k.run(TEN_S), TEN_S, IDLE_MS, "after the grace period");
}

#[test]
fn a_tap_while_the_sensor_sees_nobody_is_read_and_keeps_the_fast_pace_for_the_grace_period() {
    let signal = PresenceSignal::new();
    signal.sensor_works();
    let mut k = kiosk(Some(&signal));
    k.run(TEN_S);
    assert_eq!(k.reader.pace(), Pace::Idle);

    // A customer the sensor missed: the card is still read, at the idle pace.
    let card = k.sim.place(VirtualCard::new(&UID).unwrap());
    k.run(Duration::from_millis(IDLE_MS + 1));
    assert_eq!(taps(&k.events), vec![token_of(&UID)]);
    assert_eq!(k.reader.pace(), Pace::Fast, "a card on the reader");
    assert_polls(
        k.run(Duration::from_secs(2)),
        Duration::from_secs(2),
        FAST_MS,
        "card held",
    );

    k.sim.remove(card);
    k.run(Duration::from_millis(5 * FAST_MS)); // the reader counts the card gone
    assert_eq!(k.reader.cards_present(), 0);
    let rest = GRACE - Duration::from_millis(10 * FAST_MS);
    assert_polls(k.run(rest), rest, FAST_MS, "after the tap");
    k.run(Duration::from_secs(1));
    assert_eq!(k.reader.pace(), Pace::Idle);
}

#[test]
fn a_journey_on_the_screen_counts_as_someone_there() {
    let signal = PresenceSignal::new();
    signal.sensor_works();
    let mut k = kiosk(Some(&signal));
    k.run(Duration::from_secs(1));
    signal.set_busy(true);
    k.run(Duration::from_millis(IDLE_MS));
    assert_polls(k.run(TEN_S), TEN_S, FAST_MS, "journey on the screen");
}

#[test]
fn a_presence_sensor_that_stops_answering_brings_back_the_fast_pace() {
    let signal = PresenceSignal::new();
    signal.sensor_works();
    let mut k = kiosk(Some(&signal));
    k.run(Duration::from_secs(1));
    assert_eq!(k.reader.pace(), Pace::Idle);
    signal.sensor_lost();
    k.run(Duration::from_millis(IDLE_MS));
    assert_polls(k.run(TEN_S), TEN_S, FAST_MS, "sensor lost");
}

#[test]
fn the_reader_thread_wakes_once_per_poll_at_either_pace() {
    // `next_event(100 ms)` used to sleep to its deadline after its last poll and return, then
    // sleep again to the next poll: a wake-up every 100 ms that polled nothing.
    let signal = PresenceSignal::new();
    let mut k = kiosk(Some(&signal));
    let fast = k.run(TEN_S);
    assert_eq!(fast.wakeups, fast.polls, "fast: {fast:?}");
    signal.sensor_works();
    k.run(Duration::from_millis(FAST_MS));
    let idle = k.run(TEN_S);
    assert_eq!(idle.wakeups, idle.polls, "idle: {idle:?}");
}
