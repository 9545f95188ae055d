//! A hybrid logical clock: wall-clock milliseconds in the high bits, a counter in the low 16, so
//! stamps stay close to real time (readable, comparable across kiosks with sane clocks) yet
//! always move forward past everything seen, whatever a kiosk's clock does.

/// The clock of one kiosk. [`Hlc::tick`] stamps a local step; [`Hlc::observe`] takes in a stamp
/// seen from another kiosk, so the next local stamp sorts after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hlc {
    last: u64,
}

/// Low bits reserved for the logical counter.
const COUNTER_BITS: u32 = 16;

impl Hlc {
    /// A clock that has seen `last` (0 for a fresh one).
    pub fn new(last: u64) -> Self {
        Hlc { last }
    }

    /// A stamp for a step taken now (`wall_ms`: unix milliseconds): greater than every stamp
    /// issued or observed before.
    pub fn tick(&mut self, wall_ms: u64) -> u64 {
        let physical = wall_ms.saturating_mul(1 << COUNTER_BITS);
        self.last = physical.max(self.last.saturating_add(1));
        self.last
    }

    /// Takes in a stamp from another kiosk.
    pub fn observe(&mut self, stamp: u64) {
        self.last = self.last.max(stamp);
    }

    /// The latest stamp issued or observed.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The wall-clock milliseconds part of a stamp.
    pub fn wall_ms(stamp: u64) -> u64 {
        stamp >> COUNTER_BITS
    }
}
