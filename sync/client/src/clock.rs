//! The kiosk's clock as the sync worker reads it: sent with every batch so the endpoint can
//! estimate the kiosk's skew (docs/DESIGN.md invariant 6), and used to time-stamp request signatures.

use std::time::Instant;

use kiosk_protocol::wire::KioskClock;
use uuid::Uuid;

/// A source of [`KioskClock`] readings. The firmware implements it over its own clock (wall time,
/// `CLOCK_BOOTTIME` and its boot id) so the readings match the events' `mono_ms` and `boot_id`;
/// any `Fn() -> KioskClock` closure is one too.
pub trait SyncClock: Send + Sync + 'static {
    /// The clock now.
    fn now(&self) -> KioskClock;
}

impl<F> SyncClock for F
where
    F: Fn() -> KioskClock + Send + Sync + 'static,
{
    fn now(&self) -> KioskClock {
        self()
    }
}

/// The system wall clock, with a monotonic clock counted from this value's creation: for tests and
/// tools that have no boot clock of their own.
#[derive(Debug, Clone)]
pub struct SystemSyncClock {
    boot_id: Uuid,
    started: Instant,
}

impl SystemSyncClock {
    /// A clock whose monotonic readings belong to `boot_id` and start at 0 now.
    pub fn new(boot_id: Uuid) -> Self {
        SystemSyncClock {
            boot_id,
            started: Instant::now(),
        }
    }
}

impl SyncClock for SystemSyncClock {
    fn now(&self) -> KioskClock {
        let mono_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        KioskClock::now(self.boot_id, mono_ms)
    }
}
