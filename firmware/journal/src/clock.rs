//! Time as the kiosk sees it: a wall clock that may be wrong (a Pi has no battery clock) and a
//! monotonic clock that is right but only within one boot. Passed in, never read inside the
//! engine, so tests and simulations control it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use time::OffsetDateTime;

/// A source of wall and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time (UTC); may jump when NTP synchronises.
    fn wall(&self) -> OffsetDateTime;
    /// Milliseconds since the machine booted (CLOCK_BOOTTIME: keeps counting in suspend).
    fn mono_ms(&self) -> u64;
}

/// The machine's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn mono_ms(&self) -> u64 {
        match nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
            Ok(ts) => (ts.tv_sec() as u64) * 1000 + (ts.tv_nsec() as u64) / 1_000_000,
            Err(_) => 0,
        }
    }
}

/// A clock that tests and simulations set by hand.
#[derive(Debug, Clone)]
pub struct ManualClock {
    wall_ns: Arc<AtomicI64>,
    mono_ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at `start`, monotonic time 0.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            wall_ns: Arc::new(AtomicI64::new(
                i64::try_from(start.unix_timestamp_nanos()).unwrap_or(i64::MAX),
            )),
            mono_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, d: std::time::Duration) {
        self.wall_ns
            .fetch_add(d.as_nanos() as i64, Ordering::SeqCst);
        self.mono_ms
            .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Sets the wall clock only (an NTP step, a clock jumping back).
    pub fn set_wall(&self, t: OffsetDateTime) {
        self.wall_ns.store(
            i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn wall(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.wall_ns.load(Ordering::SeqCst)))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn mono_ms(&self) -> u64 {
        self.mono_ms.load(Ordering::SeqCst)
    }
}
