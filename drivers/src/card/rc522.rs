//! MFRC522 card reader driver over any `embedded_hal` SPI device: the `mfrc522` crate initialises
//! the chip, and the ISO 14443A frames go through one of two paths chosen by the profile
//! (`transceive`): [`super::lean`] (default: the driver's own register sequence, about a ninth of
//! the SPI transfers, optionally sleeping on the chip's IRQ line) or the unmodified crate's
//! `reqa`/`wupa`/`select`/`hlta` (kept to compare the two in the benchmarks). Around either, what
//! a kiosk needs: a self-check at start, antenna gain from the profile, a short response timer,
//! polling with REQA (new cards) and WUPA (is the halted card still there), HLTA after each read,
//! debounce into one tap per presentation, health reporting and recovery when the reader is
//! unplugged and plugged back, all without a restart. Both paths map the same frames to the same
//! outcomes (timeout, card, errors, fault), so presence and debounce do not know which ran.
//!
//! The crate's `select` handles cascade levels 1 to 3 (4-, 7- and 10-byte UIDs) and bit
//! collisions; the lean path does the same in the same way. Two things the crate does not offer
//! are done beside it on the same bus, through [`GuardedSpi`]:
//! - a budget of SPI transfers per crate call: the crate's status loops have no timeout and spin
//!   forever when MISO reads 0x00 (reader unplugged), the budget turns that into an error;
//! - raw register access for VersionReg before init (a wiring check that cannot hang), for the
//!   timer reload (the crate sets 25 ms, which makes every empty poll and every HLTA cost 25 ms of
//!   status polling; 1 ms is ten times the ISO 14443A frame delay) and for read-back checks.
//!
//! Known limit: when two cards with different ATQAs enter the field within one poll period, the
//! ATQA collides and the crate cannot select (its `AtqA` is only made by a clean REQA/WUPA); the
//! driver treats that as "a card is there" and reads the cards once they are presented one at a
//! time. Two cards with the same ATQA are both read, one per poll.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};
use mfrc522::comm::blocking::spi::{DummyDelay, SpiInterface};
use mfrc522::{Initialized, Mfrc522, RxGain};
use zeroize::Zeroize;

use super::lean::{IrqLine, Lean};
use super::pace::{Pace, Pacer, PollClock, PresenceSignal, SystemClock};
use super::presence::Presence;
pub use super::settings::Transceive;
use super::token::{TenantKey, Uid};
use super::{CardEvent, CardReader, ReaderKind, Tap};
use crate::health::{DeviceHealth, Health};

/// Transfers one crate call may spend before the reader counts as hung. An empty poll spends
/// about 50 at 1 MHz with the 1 ms timer.
const TRANSFER_BUDGET: u32 = 4_000;
/// Timer reload after init: 40 + 1 ticks of 25 µs (prescaler 0xA9 set by the crate) = 1.025 ms.
const TIMER_RELOAD: u8 = 40;
/// That timer in nanoseconds: (2 * 0xA9 + 1) * (reload + 1) periods of 13.56 MHz.
const TIMER_NS: u64 = (2 * 0xA9 + 1) * (TIMER_RELOAD as u64 + 1) * 1_000_000_000 / 13_560_000;
/// Every this many polls, check that the chip still has its configuration (a brown-out resets it
/// silently: the antenna goes off and every poll then times out cleanly).
const SANITY_EVERY: u64 = 20;
/// Consecutive polls with card errors before the reader reports itself degraded.
const ERROR_POLLS_DEGRADED: u32 = 40;

const REG_TX_CONTROL: u8 = 0x14;
const REG_RF_CFG: u8 = 0x26;
const REG_T_RELOAD_HIGH: u8 = 0x2C;
const REG_T_RELOAD_LOW: u8 = 0x2D;
const REG_VERSION: u8 = 0x37;

/// Errors in the configuration of an MFRC522 reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mfrc522Error {
    /// The receiver gain is not one the chip has.
    #[error("antenna_gain_db {0} is not an mfrc522 gain: use 18, 23, 33, 38, 43 or 48")]
    BadGain(u8),
}

/// Maps a gain in dB to the crate's RFCfgReg setting.
pub fn rx_gain(db: u8) -> Result<RxGain, Mfrc522Error> {
    Ok(match db {
        18 => RxGain::DB18,
        23 => RxGain::DB23,
        33 => RxGain::DB33,
        38 => RxGain::DB38,
        43 => RxGain::DB43,
        48 => RxGain::DB48,
        other => return Err(Mfrc522Error::BadGain(other)),
    })
}

/// How an MFRC522 reader is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mfrc522Config {
    /// Where the reader is, for messages (`/dev/spidev0.0`, `simulated`).
    pub label: String,
    /// Receiver gain in dB (18, 23, 33, 38, 43 or 48).
    pub antenna_gain_db: u8,
    /// Time between polls of the field while someone may be about to tap (see
    /// [`super::pace`]); always, when the reader follows no presence signal.
    pub poll_interval: Duration,
    /// Time between polls of the field while nobody is in front of the kiosk (never shorter than
    /// `poll_interval`).
    pub idle_poll_interval: Duration,
    /// Consecutive clean no-answer polls after which a card counts as removed.
    pub removal_polls: u32,
}

/// A bus error, or a crate call that used up its transfer budget (a hung status loop).
#[derive(Debug)]
pub enum BusError<E> {
    /// The SPI device failed.
    Spi(E),
    /// The chip kept the driver polling without ever finishing: it is gone or wedged.
    Stuck,
    /// The GPIO line of the chip's IRQ pin failed.
    Irq(String),
}

impl<E: fmt::Debug> embedded_hal::spi::Error for BusError<E> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

struct Guard<S> {
    spi: S,
    budget: u32,
}

/// An `SpiDevice` shared between the `mfrc522` crate and this driver, with a transfer budget.
pub struct GuardedSpi<S> {
    inner: Arc<Mutex<Guard<S>>>,
}

impl<S> Clone for GuardedSpi<S> {
    fn clone(&self) -> Self {
        GuardedSpi {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: SpiDevice> GuardedSpi<S> {
    fn new(spi: S) -> Self {
        GuardedSpi {
            inner: Arc::new(Mutex::new(Guard {
                spi,
                budget: TRANSFER_BUDGET,
            })),
        }
    }

    fn guard(&self) -> MutexGuard<'_, Guard<S>> {
        // Only this driver's thread uses the bus; a poisoned lock still holds a usable device.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refill(&self) {
        self.guard().budget = TRANSFER_BUDGET;
    }

    pub(crate) fn read_reg(&self, reg: u8) -> Result<u8, BusError<S::Error>> {
        let mut buf = [0x80 | (reg << 1), 0];
        self.guard()
            .spi
            .transfer_in_place(&mut buf)
            .map_err(BusError::Spi)?;
        Ok(buf[1])
    }

    pub(crate) fn write_reg(&self, reg: u8, value: u8) -> Result<(), BusError<S::Error>> {
        self.guard()
            .spi
            .write(&[reg << 1, value])
            .map_err(BusError::Spi)
    }

    /// Writes `data` to one register in one transfer (the FIFO takes every byte).
    pub(crate) fn write_burst(&self, reg: u8, data: &[u8]) -> Result<(), BusError<S::Error>> {
        let mut buf = [0u8; 17];
        let n = data.len().min(buf.len() - 1);
        buf[0] = reg << 1;
        buf[1..=n].copy_from_slice(&data[..n]);
        self.guard().spi.write(&buf[..=n]).map_err(BusError::Spi)
    }

    /// Reads four registers in one transfer: in a read, every byte after the first is the next
    /// address (datasheet 8.1.2.1).
    pub(crate) fn read_status(&self, regs: [u8; 4]) -> Result<[u8; 4], BusError<S::Error>> {
        let mut buf = [0u8; 5];
        for (slot, reg) in buf.iter_mut().zip(regs) {
            *slot = 0x80 | (reg << 1);
        }
        self.guard()
            .spi
            .transfer_in_place(&mut buf)
            .map_err(BusError::Spi)?;
        Ok([buf[1], buf[2], buf[3], buf[4]])
    }

    /// Reads `out.len()` bytes of one register (the FIFO) in one transfer.
    pub(crate) fn read_fifo(&self, reg: u8, out: &mut [u8]) -> Result<(), BusError<S::Error>> {
        let mut buf = [0u8; 17];
        let n = out.len().min(buf.len() - 1);
        for slot in &mut buf[..n] {
            *slot = 0x80 | (reg << 1);
        }
        self.guard()
            .spi
            .transfer_in_place(&mut buf[..=n])
            .map_err(BusError::Spi)?;
        out[..n].copy_from_slice(&buf[1..=n]);
        Ok(())
    }
}

impl<S: SpiDevice> ErrorType for GuardedSpi<S> {
    type Error = BusError<S::Error>;
}

impl<S: SpiDevice> SpiDevice for GuardedSpi<S> {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        let mut guard = self.guard();
        if guard.budget == 0 {
            return Err(BusError::Stuck);
        }
        guard.budget -= 1;
        guard.spi.transaction(operations).map_err(BusError::Spi)
    }
}

/// A reset line for boards that do not wire NRSTPD to a GPIO.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResetPin;

impl embedded_hal::digital::ErrorType for NoResetPin {
    type Error = std::convert::Infallible;
}

impl OutputPin for NoResetPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

type Chip<S> = Mfrc522<SpiInterface<GuardedSpi<S>, DummyDelay>, Initialized>;
type CrateError<S> = mfrc522::Error<BusError<<S as ErrorType>::Error>>;

/// What VersionReg says about the chip on the bus.
fn classify_version(version: u8, label: &str) -> Result<(), String> {
    match version {
        0x91 | 0x92 => Ok(()),
        // FM17522 and common clones answer the same register protocol.
        0x88 | 0x12 | 0xB2 => Ok(()),
        0x00 | 0xFF => Err(format!(
            "mfrc522 at {label} does not answer (VersionReg reads {version:#04x}): check the MISO, \
             MOSI, SCK and SDA/CS wires, 3.3 V power and the reset line, and that SPI is enabled \
             (dtparam=spi=on)"
        )),
        other => Err(format!(
            "mfrc522 at {label} reports version {other:#04x}, not an MFRC522 (0x91 or 0x92): check \
             the chip-select wire, and lower spi_hz if the wires are long"
        )),
    }
}

/// Result of one exchange with the field, before debounce.
enum Read {
    Card(Uid),
    Nothing,
    Errors,
    Fault(String),
}

/// An MFRC522 reader producing taps. Generic over the SPI device (`linux-embedded-hal`'s
/// `SpidevDevice` on a board, [`super::mfrc522sim::Mfrc522Sim`] in the demo and tests), an
/// optional reset line and a delay.
pub struct Mfrc522Reader<S: SpiDevice, P = NoResetPin, D = super::mfrc522sim::SimDelay> {
    bus: GuardedSpi<S>,
    chip: Option<Chip<S>>,
    reset: Option<P>,
    delay: D,
    gain: RxGain,
    config: Mfrc522Config,
    kind: ReaderKind,
    key: TenantKey,
    presence: Presence,
    health: Option<Health>,
    polls: u64,
    error_polls: u32,
    pending: VecDeque<CardEvent>,
    next_poll: Option<Instant>,
    pacer: Pacer,
    clock: Box<dyn PollClock>,
    transceive: Transceive,
    lean: Lean,
}

impl<S, P, D> Mfrc522Reader<S, P, D>
where
    S: SpiDevice,
    S::Error: fmt::Debug,
    P: OutputPin,
    D: DelayNs,
{
    /// A reader on `spi`. Does not touch the bus yet: the first poll initialises the chip and
    /// reports its health.
    pub fn new(
        spi: S,
        reset: Option<P>,
        delay: D,
        config: Mfrc522Config,
        kind: ReaderKind,
        key: TenantKey,
    ) -> Result<Self, Mfrc522Error> {
        let gain = rx_gain(config.antenna_gain_db)?;
        let pacer = Pacer::new(config.poll_interval, config.idle_poll_interval);
        Ok(Mfrc522Reader {
            bus: GuardedSpi::new(spi),
            chip: None,
            reset,
            delay,
            gain,
            presence: Presence::new(config.removal_polls),
            config,
            kind,
            key,
            health: None,
            polls: 0,
            error_polls: 0,
            pending: VecDeque::new(),
            next_poll: None,
            pacer,
            clock: Box::new(SystemClock),
            transceive: Transceive::default(),
            lean: Lean::new(TIMER_NS),
        })
    }

    /// Chooses the register path for the ISO 14443A frames (the lean one by default). Call before
    /// the first poll.
    pub fn set_transceive(&mut self, transceive: Transceive) {
        self.transceive = transceive;
    }

    /// The register path in use.
    pub fn transceive(&self) -> Transceive {
        self.transceive
    }

    /// Wires the chip's IRQ pin: the lean path then sleeps until the chip signals the end of a
    /// frame instead of reading ComIrqReg. Call before the first poll (the chip's interrupts are
    /// routed to the pin when it is initialised).
    pub fn set_irq(&mut self, irq: Box<dyn IrqLine>) {
        self.lean.set_irq(irq);
    }

    /// Cards currently counted as on the reader.
    pub fn cards_present(&self) -> usize {
        self.presence.len()
    }

    /// Polls the reader has made (each call of [`Self::poll_once`] is one).
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// The interval the reader polls at now (see [`super::pace`]).
    pub fn pace(&self) -> Pace {
        self.pacer.pace()
    }

    /// The clock [`CardReader::next_event`] schedules polls by: the system's unless a test gives
    /// a virtual one. Call before the first poll.
    pub fn set_clock(&mut self, clock: Box<dyn PollClock>) {
        self.clock = clock;
    }

    /// One poll of the field, without waiting: returns the taps and health changes it produced.
    /// [`CardReader::next_event`] calls this every poll interval.
    pub fn poll_once(&mut self) -> Vec<CardEvent> {
        let mut events = Vec::new();
        self.polls += 1;
        if self.chip.is_none() {
            // Retry about once a second while the reader is absent (every 1000 / poll_interval
            // polls: two seconds at the idle pace), and on the very first poll.
            let retry_every = (1000 / self.config.poll_interval.as_millis().max(1)).max(1) as u64;
            if self.health.is_some() && self.polls % retry_every != 1 {
                return events;
            }
            match self.init() {
                Ok(()) => self.set_health(Health::ok(), &mut events),
                Err(reason) => {
                    self.set_health(Health::absent(reason), &mut events);
                    return events;
                }
            }
        } else if self.polls % SANITY_EVERY == 0 {
            if let Err(reason) = self.sanity_check() {
                self.fail(reason, &mut events);
                return events;
            }
        }

        let read = self.read_field();
        match read {
            Read::Card(uid) => {
                let token = uid.token(&self.key);
                drop(uid);
                self.error_polls = 0;
                if self.presence.read(token.clone()) {
                    events.push(CardEvent::Tap(Tap {
                        token,
                        reader: self.kind,
                    }));
                }
            }
            Read::Nothing if self.presence.is_empty() => self.error_polls = 0,
            Read::Nothing => match self.check_presence() {
                Read::Card(uid) => {
                    let token = uid.token(&self.key);
                    drop(uid);
                    self.error_polls = 0;
                    if self.presence.confirmed(token.clone()) {
                        events.push(CardEvent::Tap(Tap {
                            token,
                            reader: self.kind,
                        }));
                    }
                }
                Read::Nothing => {
                    self.error_polls = 0;
                    self.presence.clean_timeout();
                }
                Read::Errors => self.errors(&mut events),
                Read::Fault(reason) => self.fail(reason, &mut events),
            },
            Read::Errors => self.errors(&mut events),
            Read::Fault(reason) => self.fail(reason, &mut events),
        }
        if self.chip.is_some()
            && self.error_polls == 0
            && self
                .health
                .as_ref()
                .is_some_and(|h| h.state == DeviceHealth::Degraded)
        {
            self.set_health(Health::ok(), &mut events);
        }
        events
    }

    fn errors(&mut self, events: &mut Vec<CardEvent>) {
        self.presence.activity();
        self.error_polls += 1;
        if self.error_polls == ERROR_POLLS_DEGRADED {
            let reason = format!(
                "mfrc522 at {}: cards answer with errors poll after poll: a damaged card, two \
                 cards, or interference near the antenna (try a lower antenna_gain_db)",
                self.config.label
            );
            self.set_health(Health::degraded(reason), events);
        }
    }

    fn fail(&mut self, reason: String, events: &mut Vec<CardEvent>) {
        // Dropping the crate's handle is enough: the bus stays with us for the next init.
        self.chip = None;
        self.set_health(Health::absent(reason), events);
    }

    fn set_health(&mut self, health: Health, events: &mut Vec<CardEvent>) {
        if self.health.as_ref() != Some(&health) {
            match health.state {
                DeviceHealth::Ok => tracing::info!(reader = %self.config.label, "card reader ok"),
                _ => tracing::warn!(reader = %self.config.label, %health, "card reader health"),
            }
            self.health = Some(health.clone());
            events.push(CardEvent::Health(health));
        }
    }

    fn hard_reset(&mut self) {
        if let Some(pin) = self.reset.as_mut() {
            // NRSTPD low for at least 100 ns resets the chip; the oscillator needs ~38 µs after.
            if pin.set_low().is_ok() {
                self.delay.delay_us(1);
                let _ = pin.set_high();
                self.delay.delay_us(50);
            }
        }
    }

    fn init(&mut self) -> Result<(), String> {
        let label = self.config.label.clone();
        self.chip = None;
        self.hard_reset();
        let version = self
            .bus
            .read_reg(REG_VERSION)
            .map_err(|e| self.bus_reason(&e))?;
        classify_version(version, &label)?;
        self.bus.refill();
        let mut chip = Mfrc522::new(SpiInterface::new(self.bus.clone()))
            .init()
            .map_err(|e| self.crate_reason(&e))?;
        self.bus.refill();
        chip.set_antenna_gain(self.gain)
            .map_err(|e| self.crate_reason(&e))?;
        self.bus
            .write_reg(REG_T_RELOAD_HIGH, 0)
            .map_err(|e| self.bus_reason(&e))?;
        self.bus
            .write_reg(REG_T_RELOAD_LOW, TIMER_RELOAD)
            .map_err(|e| self.bus_reason(&e))?;
        let gain_back = self
            .bus
            .read_reg(REG_RF_CFG)
            .map_err(|e| self.bus_reason(&e))?;
        let reload_back = self
            .bus
            .read_reg(REG_T_RELOAD_LOW)
            .map_err(|e| self.bus_reason(&e))?;
        if gain_back & 0x70 != u8::from(self.gain) || reload_back != TIMER_RELOAD {
            return Err(format!(
                "mfrc522 at {label} does not keep the values written to its registers: check the \
                 MOSI wire and lower spi_hz"
            ));
        }
        if self.transceive == Transceive::Lean {
            self.lean.init(&self.bus).map_err(|e| self.bus_reason(&e))?;
        }
        tracing::info!(reader = %label, version = format_args!("{version:#04x}"), "mfrc522 initialised");
        self.chip = Some(chip);
        Ok(())
    }

    fn sanity_check(&mut self) -> Result<(), String> {
        let label = self.config.label.clone();
        let version = self
            .bus
            .read_reg(REG_VERSION)
            .map_err(|e| self.bus_reason(&e))?;
        classify_version(version, &label)?;
        let tx = self
            .bus
            .read_reg(REG_TX_CONTROL)
            .map_err(|e| self.bus_reason(&e))?;
        let reload = self
            .bus
            .read_reg(REG_T_RELOAD_LOW)
            .map_err(|e| self.bus_reason(&e))?;
        if tx & 0x03 != 0x03 || reload != TIMER_RELOAD {
            // The chip restarted under us (brown-out): configure it again, no health change.
            tracing::warn!(reader = %label, "mfrc522 lost its configuration (power glitch?), re-initialising");
            self.init()?;
        }
        Ok(())
    }

    fn bus_reason(&self, e: &BusError<S::Error>) -> String {
        let label = &self.config.label;
        match e {
            BusError::Spi(e) => format!(
                "spi bus {label} failed ({e:?}): check that the spidev node exists and that the \
                 kiosk user may open it"
            ),
            BusError::Stuck => format!(
                "mfrc522 at {label} stopped answering in the middle of an exchange: check its power \
                 and wiring"
            ),
            BusError::Irq(e) => format!(
                "the irq line of mfrc522 at {label} failed ({e}): check irq_chip and irq_line in \
                 the hardware profile, or remove them to poll instead"
            ),
        }
    }

    fn crate_reason(&self, e: &CrateError<S>) -> String {
        match e {
            mfrc522::Error::Comm(bus) => self.bus_reason(bus),
            other => format!(
                "mfrc522 at {} failed to initialise ({other:?})",
                self.config.label
            ),
        }
    }

    /// After an unexpected error, tells a card problem from a reader that went away.
    fn classify_error(&mut self, e: CrateError<S>) -> Read {
        match e {
            mfrc522::Error::Timeout => Read::Nothing,
            mfrc522::Error::Comm(bus) => Read::Fault(self.bus_reason(&bus)),
            _ => match self.bus.read_reg(REG_VERSION) {
                // A reader whose MISO floats high reads 0xFF everywhere, which looks like errors.
                Ok(v) => match classify_version(v, &self.config.label) {
                    Ok(()) => Read::Errors,
                    Err(reason) => Read::Fault(reason),
                },
                Err(bus) => Read::Fault(self.bus_reason(&bus)),
            },
        }
    }

    fn read_field(&mut self) -> Read {
        self.bus.refill();
        if self.transceive == Transceive::Lean {
            if self.chip.is_none() {
                return Read::Nothing;
            }
            return match self.lean.reqa(&self.bus, &mut self.delay) {
                Ok(atqa) => self.lean_select(atqa),
                Err(e) => self.classify_error(e),
            };
        }
        let Some(chip) = self.chip.as_mut() else {
            return Read::Nothing;
        };
        match chip.reqa() {
            Ok(atqa) => self.select(atqa),
            Err(e) => self.classify_error(e),
        }
    }

    /// [`Self::select`] on the lean path: the same outcomes for the same frames.
    fn lean_select(&mut self, atqa: [u8; 2]) -> Read {
        let uid = match self.lean.select(&self.bus, &mut self.delay, atqa) {
            Ok(mut raw) => {
                let uid = Uid::from_slice(&raw);
                raw.zeroize();
                uid
            }
            Err(mfrc522::Error::Timeout) => return Read::Nothing,
            Err(e) => return self.classify_error(e),
        };
        if let Err(e @ mfrc522::Error::Comm(_)) = self.lean.hlta(&self.bus, &mut self.delay) {
            return self.classify_error(e);
        }
        match uid {
            Some(uid) => Read::Card(uid),
            None => Read::Errors,
        }
    }

    fn check_presence(&mut self) -> Read {
        self.bus.refill();
        if self.transceive == Transceive::Lean {
            if self.chip.is_none() {
                return Read::Nothing;
            }
            return match self.lean.wupa(&self.bus, &mut self.delay) {
                Ok(atqa) => match self.lean_select(atqa) {
                    Read::Nothing => Read::Errors,
                    other => other,
                },
                Err(e) => self.classify_error(e),
            };
        }
        let Some(chip) = self.chip.as_mut() else {
            return Read::Nothing;
        };
        match chip.wupa() {
            Ok(atqa) => match self.select(atqa) {
                // The card answered WUPA, so a timeout later means it left mid-read: not "clean".
                Read::Nothing => Read::Errors,
                other => other,
            },
            Err(e) => self.classify_error(e),
        }
    }

    fn select(&mut self, atqa: mfrc522::AtqA) -> Read {
        self.bus.refill();
        let Some(chip) = self.chip.as_mut() else {
            return Read::Nothing;
        };
        let uid = match chip.select(&atqa) {
            Ok(uid) => Uid::from_slice(uid.as_bytes()),
            Err(mfrc522::Error::Timeout) => {
                // Answered REQA, gone before SELECT finished: a card pulled away mid-read.
                return Read::Nothing;
            }
            Err(e) => return self.classify_error(e),
        };
        self.bus.refill();
        let halted = self.chip.as_mut().map(|chip| chip.hlta());
        if let Some(Err(e @ mfrc522::Error::Comm(_))) = halted {
            return self.classify_error(e);
        }
        match uid {
            Some(uid) => Read::Card(uid),
            None => Read::Errors,
        }
    }
}

impl<S, P, D> CardReader for Mfrc522Reader<S, P, D>
where
    S: SpiDevice + Send,
    S::Error: fmt::Debug,
    P: OutputPin + Send,
    D: DelayNs + Send,
{
    fn next_event(&mut self, timeout: Duration) -> Option<CardEvent> {
        let deadline = self.clock.now() + timeout;
        let mut polled = false;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let now = self.clock.now();
            let due = self.next_poll.unwrap_or(now);
            if due > now {
                if due > deadline {
                    // Nothing to do before the deadline. Having polled in this call, return at
                    // once: the caller asks again and sleeps until the poll is due. Sleeping to
                    // the deadline here would wake the thread for nothing: with the reader
                    // thread's 100 ms, 10 wake-ups a second on top of 40 polls at 25 ms or 20 at
                    // 50 ms, and a wake-up is nearly all an empty poll costs the CPU.
                    if !polled {
                        self.clock.sleep(deadline - now);
                    }
                    return None;
                }
                self.clock.sleep(due - now);
            }
            let events = self.poll_once();
            polled = true;
            self.pending.extend(events);
            let now = self.clock.now();
            let interval = self.pacer.next_interval(now, !self.presence.is_empty());
            // Fixed rate; after falling behind (a slow bus), start again from now.
            let next = due + interval;
            self.next_poll = Some(if next < now { now + interval } else { next });
            if self.pending.is_empty() && now >= deadline {
                return None;
            }
        }
    }

    fn follow_presence(&mut self, signal: PresenceSignal) {
        self.pacer.follow(signal);
    }

    fn health(&self) -> Health {
        self.health
            .clone()
            .unwrap_or_else(|| Health::absent("card reader not polled yet"))
    }

    fn kind(&self) -> ReaderKind {
        self.kind
    }
}
