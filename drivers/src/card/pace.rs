//! How often a polling card reader (the MFRC522) looks at its field: at the profile's
//! `poll_interval_ms` while someone may be about to tap a card, at its `idle_poll_ms` while
//! nobody is in front of the kiosk.
//!
//! An idle reader's cost is its poll rate: each poll wakes the reader thread (about 30 µs of CPU
//! on the reference machine, where the simulated transfers of an empty poll take under one) and,
//! on a board, makes a syscall per SPI transfer. The fast interval buys tap latency, which only
//! matters while someone is there.
//!
//! [`PresenceSignal`] is what the rest of the kiosk tells the reader: whether a working presence
//! sensor reports, whether it sees someone, and whether a journey is on the screen. The reader
//! polls fast:
//! - while no working presence sensor reports (a kiosk without one, or with one that is
//!   unplugged, always polls fast: nobody can say that the kiosk is alone);
//! - while the sensor sees someone or a journey is on the screen;
//! - while a card is on the reader (a tap is one, even one the sensor missed);
//! - for [`GRACE`] after someone was last seen in one of these three ways.
//!
//! Otherwise at the idle interval. The reader samples the signal once per poll, so the pace
//! changes at the next poll (at most one idle interval after someone arrives, long before a
//! hand with a card reaches the reader). The grace period is measured on the reader's own
//! [`PollClock`], so tests run the pacing on virtual time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How long the reader keeps polling fast after someone was last seen (sensor, screen, card on
/// the reader) or after the last tap: a customer who steps back, reads the screen and taps is
/// still served at the fast pace.
pub const GRACE: Duration = Duration::from_secs(30);

/// The idle interval when the profile does not give `idle_poll_ms`. Nobody has been seen for
/// [`GRACE`], so a tap at this pace is a customer the sensor missed: it is still seen within
/// 100 ms, and the reader wakes half as often as the crate's old 50 ms poll did, which is what
/// keeps an idle kiosk's CPU below the old path's.
pub const DEFAULT_IDLE_POLL_MS: u32 = 100;

const SENSOR_UNKNOWN: u8 = 0;
const SENSOR_NOBODY: u8 = 1;
const SENSOR_SOMEONE: u8 = 2;

#[derive(Debug)]
struct Inner {
    sensor: AtomicU8,
    busy: AtomicBool,
}

/// Whether someone may be in front of the kiosk, shared by the presence sensor's thread, the
/// screen and the card reader; cheap to clone. A new signal says "unknown" (no working sensor
/// yet), which polls fast.
#[derive(Debug, Clone)]
pub struct PresenceSignal {
    inner: Arc<Inner>,
}

impl Default for PresenceSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl PresenceSignal {
    /// A signal with no sensor reporting and no journey on the screen.
    pub fn new() -> Self {
        PresenceSignal {
            inner: Arc::new(Inner {
                sensor: AtomicU8::new(SENSOR_UNKNOWN),
                busy: AtomicBool::new(false),
            }),
        }
    }

    /// The presence sensor works (it opened, or answers again) and sees nobody unless it
    /// already said someone arrived.
    pub fn sensor_works(&self) {
        let _ = self.inner.sensor.compare_exchange(
            SENSOR_UNKNOWN,
            SENSOR_NOBODY,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The presence sensor stopped answering (or was never there): nobody can say the kiosk is
    /// alone, so the reader polls fast.
    pub fn sensor_lost(&self) {
        self.inner.sensor.store(SENSOR_UNKNOWN, Ordering::Relaxed);
    }

    /// The sensor sees someone.
    pub fn arrived(&self) {
        self.inner.sensor.store(SENSOR_SOMEONE, Ordering::Relaxed);
    }

    /// The sensor sees nobody any more (the reader's grace period starts).
    pub fn left(&self) {
        let _ = self.inner.sensor.compare_exchange(
            SENSOR_SOMEONE,
            SENSOR_NOBODY,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Whether a journey is on the screen (someone is using the kiosk, whatever the sensor says).
    pub fn set_busy(&self, busy: bool) {
        self.inner.busy.store(busy, Ordering::Relaxed);
    }

    /// Whether someone is there now: the sensor sees someone, or a journey is on the screen.
    pub fn someone_there(&self) -> bool {
        self.inner.busy.load(Ordering::Relaxed)
            || self.inner.sensor.load(Ordering::Relaxed) == SENSOR_SOMEONE
    }

    /// Whether a working presence sensor reports (else nobody can say the kiosk is alone).
    pub fn sensor_reports(&self) -> bool {
        self.inner.sensor.load(Ordering::Relaxed) != SENSOR_UNKNOWN
    }
}

/// The time a polling reader schedules its polls by: the system's ([`SystemClock`]) on a kiosk,
/// a virtual one in tests, so that counting polls over a minute takes no minute and no timing.
pub trait PollClock: Send {
    /// Now.
    fn now(&self) -> Instant;
    /// Sleeps for `duration` (a virtual clock moves forward by it).
    fn sleep(&mut self, duration: Duration);
}

/// The system's monotonic clock and `std::thread::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl PollClock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Which interval a reader polls at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// The profile's `poll_interval_ms`: someone may be about to tap.
    Fast,
    /// The profile's `idle_poll_ms`: nobody has been there for the grace period.
    Idle,
}

/// The reader's side of the pacing: the signal, when someone was last seen, and the intervals.
#[derive(Debug)]
pub(crate) struct Pacer {
    signal: Option<PresenceSignal>,
    fast: Duration,
    idle: Duration,
    fast_until: Option<Instant>,
    pace: Pace,
}

impl Pacer {
    /// Without a signal the reader always polls at `fast`.
    pub(crate) fn new(fast: Duration, idle: Duration) -> Self {
        Pacer {
            signal: None,
            fast,
            idle: idle.max(fast),
            fast_until: None,
            pace: Pace::Fast,
        }
    }

    pub(crate) fn follow(&mut self, signal: PresenceSignal) {
        self.signal = Some(signal);
    }

    /// Someone is certainly there at `now` (a tap, a card on the reader).
    pub(crate) fn activity(&mut self, now: Instant) {
        self.fast_until = Some(now + GRACE);
    }

    pub(crate) fn pace(&self) -> Pace {
        self.pace
    }

    /// The interval to the next poll, decided at `now`; `card_on_reader` counts as someone there.
    pub(crate) fn next_interval(&mut self, now: Instant, card_on_reader: bool) -> Duration {
        let Some(signal) = &self.signal else {
            return self.fast;
        };
        let (someone, sensor) = (signal.someone_there(), signal.sensor_reports());
        if card_on_reader || someone {
            self.activity(now);
        }
        // No working sensor keeps the fast pace without starting a grace period: nobody was
        // seen, so when the sensor comes up (just after the reader at start-up) the kiosk idles.
        let pace = if !sensor || self.fast_until.is_some_and(|until| now < until) {
            Pace::Fast
        } else {
            Pace::Idle
        };
        if pace != self.pace {
            tracing::debug!(?pace, "card reader poll pace");
            self.pace = pace;
        }
        match pace {
            Pace::Fast => self.fast,
            Pace::Idle => self.idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_millis(25);
    const IDLE: Duration = Duration::from_millis(50);

    fn pacer() -> (Pacer, PresenceSignal) {
        let signal = PresenceSignal::new();
        let mut p = Pacer::new(FAST, IDLE);
        p.follow(signal.clone());
        (p, signal)
    }

    #[test]
    fn without_a_signal_the_reader_always_polls_fast() {
        let mut p = Pacer::new(FAST, IDLE);
        assert_eq!(p.next_interval(Instant::now(), false), FAST);
        assert_eq!(p.pace(), Pace::Fast);
    }

    #[test]
    fn a_sensor_that_never_worked_or_stopped_working_keeps_the_fast_pace() {
        let (mut p, signal) = pacer();
        let t0 = Instant::now();
        assert_eq!(p.next_interval(t0, false), FAST, "no sensor yet");
        signal.sensor_works();
        let later = t0 + GRACE * 2;
        assert_eq!(p.next_interval(later, false), IDLE);
        signal.sensor_lost();
        assert_eq!(p.next_interval(later, false), FAST);
    }

    #[test]
    fn a_working_sensor_that_never_saw_anyone_starts_idle() {
        let (mut p, signal) = pacer();
        signal.sensor_works();
        assert_eq!(p.next_interval(Instant::now(), false), IDLE);
    }

    #[test]
    fn someone_there_then_gone_keeps_the_fast_pace_for_the_grace_period() {
        let (mut p, signal) = pacer();
        signal.sensor_works();
        let t0 = Instant::now();
        signal.arrived();
        assert_eq!(p.next_interval(t0, false), FAST);
        signal.left();
        let just_before = t0 + GRACE - Duration::from_millis(1);
        assert_eq!(p.next_interval(just_before, false), FAST);
        assert_eq!(p.next_interval(t0 + GRACE, false), IDLE);
    }

    #[test]
    fn a_journey_on_the_screen_a_card_on_the_reader_and_a_tap_count_as_someone() {
        let (mut p, signal) = pacer();
        signal.sensor_works();
        let t0 = Instant::now();
        signal.set_busy(true);
        assert_eq!(p.next_interval(t0, false), FAST);
        signal.set_busy(false);
        let t1 = t0 + GRACE;
        assert_eq!(p.next_interval(t1, false), IDLE);
        assert_eq!(p.next_interval(t1, true), FAST, "a card is on the reader");
        let t2 = t1 + GRACE;
        assert_eq!(p.next_interval(t2, false), IDLE);
        p.activity(t2);
        assert_eq!(p.next_interval(t2 + GRACE / 2, false), FAST, "a tap");
    }

    #[test]
    fn an_idle_interval_below_the_fast_one_is_the_fast_one() {
        let p = Pacer::new(IDLE, FAST);
        assert_eq!(p.idle, IDLE);
    }
}
