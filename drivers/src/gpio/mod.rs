//! GPIO: an optional presence / people-counter sensor (debounced input) and a status LED, on the
//! Linux GPIO character device through `linux-embedded-hal`'s `CdevPin`, with a simulator.
//!
//! The sensor and the LED are written against the `embedded-hal` 1.0 digital traits
//! ([`InputPin`], [`OutputPin`]); the simulator implements the same traits, so the debounce and
//! recovery code the tests exercise is the code that runs on a Pi. Active-low wiring is handled
//! here (the line is requested without the kernel's active-low flag and inverted in software), so
//! the sensor reads "someone is there" as `true` whatever the wiring.
//!
//! The same input counts people entering ([`EntryCounter`]): a debounced arrival after the line
//! was quiet for the entry gap is one entry, so one person lingering in front of the sensor, or
//! stepping back and forth, counts once.
//!
//! A sensor that stops answering (the GPIO chip vanished, the line was taken by another process)
//! is reported absent and reopened every few seconds, without a restart.

pub mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use embedded_hal::digital::{ErrorType, InputPin, OutputPin};

use crate::health::Health;
use settings::{GpioLine, GpioSettings};

/// How often the presence input is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
/// How long a vanished sensor waits before it is reopened.
const REOPEN_INTERVAL: Duration = Duration::from_secs(2);

/// What the presence sensor reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// Someone stepped in front of the kiosk (the input was active for the debounce time).
    Arrived,
    /// Nobody is there any more.
    Left,
    /// Someone entered: an arrival after the line was quiet for the entry gap (follows the
    /// [`PresenceEvent::Arrived`] it counts).
    Entered,
    /// The sensor's health changed.
    Health(Health),
}

/// Debounces a sampled input: an edge counts once the new level held for `hold`.
#[derive(Debug, Clone)]
pub struct Debouncer {
    hold: Duration,
    stable: bool,
    candidate: Option<(bool, Instant)>,
}

impl Debouncer {
    /// A debouncer starting at `initial`.
    pub fn new(hold: Duration, initial: bool) -> Self {
        Debouncer {
            hold,
            stable: initial,
            candidate: None,
        }
    }

    /// The debounced level.
    pub fn level(&self) -> bool {
        self.stable
    }

    /// Feeds one sample taken at `now`; returns the new level when it changed.
    pub fn sample(&mut self, level: bool, now: Instant) -> Option<bool> {
        if level == self.stable {
            self.candidate = None;
            return None;
        }
        match self.candidate {
            Some((l, since)) if l == level => {
                if now.duration_since(since) >= self.hold {
                    self.stable = level;
                    self.candidate = None;
                    Some(level)
                } else {
                    None
                }
            }
            _ => {
                self.candidate = Some((level, now));
                if self.hold.is_zero() {
                    self.stable = level;
                    self.candidate = None;
                    Some(level)
                } else {
                    None
                }
            }
        }
    }
}

/// Counts entries on a debounced presence input: an arrival counts when the line was quiet
/// (nobody there) for at least `gap` before it, or when it is the first arrival seen.
#[derive(Debug, Clone)]
pub struct EntryCounter {
    gap: Duration,
    quiet_since: Option<Instant>,
    present: bool,
    entries: u64,
}

impl EntryCounter {
    /// A counter requiring `gap` of quiet between two entries.
    pub fn new(gap: Duration) -> Self {
        EntryCounter {
            gap,
            quiet_since: None,
            present: false,
            entries: 0,
        }
    }

    /// Someone is there (debounced) at `now`; returns whether it counts as an entry.
    pub fn arrived(&mut self, now: Instant) -> bool {
        if self.present {
            return false;
        }
        self.present = true;
        let counts = self
            .quiet_since
            .is_none_or(|since| now.saturating_duration_since(since) >= self.gap);
        if counts {
            self.entries += 1;
        }
        counts
    }

    /// Nobody is there any more (debounced) at `now`: the quiet time starts.
    pub fn left(&mut self, now: Instant) {
        if self.present {
            self.present = false;
            self.quiet_since = Some(now);
        }
    }

    /// Entries counted so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }
}

/// Opens an input line; called again after a failure.
pub type InputOpener = Box<dyn FnMut() -> Result<Box<dyn PresenceInput>, String> + Send>;

/// A presence input: `true` when someone is there (wiring polarity already applied).
pub trait PresenceInput: Send {
    /// Reads the line.
    fn active(&mut self) -> Result<bool, String>;
}

/// Any `embedded-hal` input pin, with the wiring's polarity.
struct Pin<P> {
    pin: P,
    active_low: bool,
}

impl<P: InputPin + Send> PresenceInput for Pin<P>
where
    <P as ErrorType>::Error: std::fmt::Debug,
{
    fn active(&mut self) -> Result<bool, String> {
        let high = self.pin.is_high().map_err(|e| format!("{e:?}"))?;
        Ok(high != self.active_low)
    }
}

/// The status LED: on while the kiosk serves, off when it cannot.
pub trait StatusLed: Send {
    /// Lights or darkens the LED.
    fn set(&mut self, on: bool) -> Result<(), String>;
}

impl<P: OutputPin + Send> StatusLed for Pin<P>
where
    <P as ErrorType>::Error: std::fmt::Debug,
{
    fn set(&mut self, on: bool) -> Result<(), String> {
        let high = on != self.active_low;
        if high {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        }
        .map_err(|e| format!("{e:?}"))
    }
}

/// A simulated GPIO pin: a shared level that the simulator handle sets or reads.
#[derive(Debug, Clone, Default)]
pub struct SimPin {
    level: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
}

/// The error of a simulated pin whose chip was "unplugged".
#[derive(Debug, Clone, Copy)]
pub struct SimPinError;

impl embedded_hal::digital::Error for SimPinError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

impl ErrorType for SimPin {
    type Error = SimPinError;
}

impl InputPin for SimPin {
    fn is_high(&mut self) -> Result<bool, SimPinError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(SimPinError);
        }
        Ok(self.level.load(Ordering::SeqCst))
    }

    fn is_low(&mut self) -> Result<bool, SimPinError> {
        self.is_high().map(|h| !h)
    }
}

impl OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), SimPinError> {
        self.level.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), SimPinError> {
        self.level.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// The simulator's handle: the demo's control panel and the tests move the sensor's line and
/// read the LED.
#[derive(Debug, Clone, Default)]
pub struct GpioSim {
    presence: SimPin,
    led: SimPin,
}

impl GpioSim {
    /// Sets the presence line's electrical level (the simulated sensor is wired active-high).
    pub fn set_presence(&self, high: bool) {
        self.presence.level.store(high, Ordering::SeqCst);
    }

    /// The presence line's level.
    pub fn presence(&self) -> bool {
        self.presence.level.load(Ordering::SeqCst)
    }

    /// Makes the presence line fail (`true`) as an unplugged GPIO chip would, or work again.
    pub fn break_presence(&self, broken: bool) {
        self.presence.broken.store(broken, Ordering::SeqCst);
    }

    /// Whether the status LED is lit.
    pub fn led(&self) -> bool {
        self.led.level.load(Ordering::SeqCst)
    }
}

/// The GPIO devices of a profile.
pub struct Gpio {
    /// Opens the presence input, if one is fitted.
    pub presence: Option<InputOpener>,
    /// Debounce of the presence input.
    pub debounce: Duration,
    /// Quiet time between two counted entries ([`EntryCounter`]).
    pub entry_gap: Duration,
    /// The status LED, if fitted.
    pub led: Option<Box<dyn StatusLed>>,
    /// The simulator, when simulated.
    pub sim: Option<GpioSim>,
}

impl std::fmt::Debug for Gpio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpio")
            .field("presence", &self.presence.is_some())
            .field("debounce", &self.debounce)
            .field("entry_gap", &self.entry_gap)
            .field("led", &self.led.is_some())
            .finish()
    }
}

/// A GPIO line that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open GPIO line {line} on {chip}: {message}")]
pub struct GpioError {
    /// The chip.
    pub chip: String,
    /// The line.
    pub line: u32,
    /// Why.
    pub message: String,
}

fn request(line: &GpioLine, output: bool) -> Result<linux_embedded_hal::CdevPin, GpioError> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    let err = |e: &dyn std::fmt::Display| GpioError {
        chip: line.chip.clone(),
        line: line.line,
        message: e.to_string(),
    };
    let mut chip = Chip::new(&line.chip).map_err(|e| err(&e))?;
    let handle = chip
        .get_line(line.line)
        .and_then(|l| {
            let flags = if output {
                LineRequestFlags::OUTPUT
            } else {
                LineRequestFlags::INPUT
            };
            l.request(flags, 0, "kiosk")
        })
        .map_err(|e| err(&e))?;
    linux_embedded_hal::CdevPin::new(handle).map_err(|e| err(&e))
}

/// The GPIO devices `settings` describe. Nothing is read yet; a presence line that cannot be
/// opened now is retried by [`spawn_presence`]. An LED that cannot be opened is an error the
/// caller reports (a wrong line number in the profile).
pub fn open(settings: &GpioSettings) -> Result<Gpio, GpioError> {
    match settings {
        GpioSettings::None => Ok(Gpio {
            presence: None,
            debounce: Duration::ZERO,
            entry_gap: Duration::ZERO,
            led: None,
            sim: None,
        }),
        GpioSettings::Simulated => {
            let sim = GpioSim::default();
            let pin = sim.presence.clone();
            Ok(Gpio {
                presence: Some(Box::new(move || {
                    Ok(Box::new(Pin {
                        pin: pin.clone(),
                        active_low: false,
                    }) as Box<dyn PresenceInput>)
                })),
                debounce: Duration::from_millis(50),
                // The panel's "step in front" button: a click is a person.
                entry_gap: Duration::from_millis(200),
                led: Some(Box::new(Pin {
                    pin: sim.led.clone(),
                    active_low: false,
                })),
                sim: Some(sim),
            })
        }
        GpioSettings::Cdev {
            presence,
            presence_debounce_ms,
            presence_entry_gap_ms,
            status_led,
        } => {
            let led = match status_led {
                Some(line) => Some(Box::new(Pin {
                    pin: request(line, true)?,
                    active_low: line.active_low,
                }) as Box<dyn StatusLed>),
                None => None,
            };
            let presence = presence.clone().map(|line| {
                Box::new(move || {
                    request(&line, false)
                        .map(|pin| {
                            Box::new(Pin {
                                pin,
                                active_low: line.active_low,
                            }) as Box<dyn PresenceInput>
                        })
                        .map_err(|e| e.to_string())
                }) as InputOpener
            });
            Ok(Gpio {
                presence,
                debounce: Duration::from_millis(u64::from(*presence_debounce_ms)),
                entry_gap: Duration::from_millis(u64::from(*presence_entry_gap_ms)),
                led,
                sim: None,
            })
        }
    }
}

/// The presence sensor's thread; stops when dropped.
pub struct PresenceThread {
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl Drop for PresenceThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Samples the presence input every [`SAMPLE_INTERVAL`], debounced, and hands arrivals,
/// departures, entries (arrivals after `entry_gap` of quiet, [`EntryCounter`]) and health
/// changes to `sink` (which returns `false` to stop).
pub fn spawn_presence(
    mut opener: InputOpener,
    debounce: Duration,
    entry_gap: Duration,
    mut sink: impl FnMut(PresenceEvent) -> bool + Send + 'static,
) -> std::io::Result<PresenceThread> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let join = std::thread::Builder::new()
        .name("presence".into())
        .spawn(move || {
            let mut input: Option<Box<dyn PresenceInput>> = None;
            let mut debouncer = Debouncer::new(debounce, false);
            let mut entries = EntryCounter::new(entry_gap);
            let mut health: Option<Health> = None;
            let mut report = |h: Health, sink: &mut dyn FnMut(PresenceEvent) -> bool| {
                if health.as_ref() != Some(&h) {
                    health = Some(h.clone());
                    return sink(PresenceEvent::Health(h));
                }
                true
            };
            while !flag.load(Ordering::Relaxed) {
                let Some(pin) = input.as_mut() else {
                    match opener() {
                        Ok(pin) => {
                            input = Some(pin);
                            if !report(Health::ok(), &mut sink) {
                                break;
                            }
                        }
                        Err(e) => {
                            if !report(Health::absent(format!("presence sensor: {e}")), &mut sink) {
                                break;
                            }
                            sleep_unless(&flag, REOPEN_INTERVAL);
                        }
                    }
                    continue;
                };
                match pin.active() {
                    Ok(level) => {
                        let at = Instant::now();
                        if let Some(now) = debouncer.sample(level, at) {
                            let entered = if now {
                                entries.arrived(at)
                            } else {
                                entries.left(at);
                                false
                            };
                            let event = if now {
                                PresenceEvent::Arrived
                            } else {
                                PresenceEvent::Left
                            };
                            if !sink(event) || (entered && !sink(PresenceEvent::Entered)) {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        input = None;
                        // Nobody can be "there" while the sensor is gone.
                        if debouncer.level() {
                            debouncer = Debouncer::new(debounce, false);
                            entries.left(Instant::now());
                            if !sink(PresenceEvent::Left) {
                                break;
                            }
                        }
                        if !report(
                            Health::absent(format!("presence sensor stopped answering: {e}")),
                            &mut sink,
                        ) {
                            break;
                        }
                        sleep_unless(&flag, REOPEN_INTERVAL);
                        continue;
                    }
                }
                std::thread::sleep(SAMPLE_INTERVAL);
            }
        })?;
    Ok(PresenceThread {
        stop,
        join: Some(join),
    })
}

/// Sleeps `total` in short slices, returning early when `stop` is set.
fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_level_counts_only_after_it_held_for_the_debounce_time() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = Debouncer::new(Duration::from_millis(50), false);
        assert_eq!(d.sample(true, ms(0)), None);
        assert_eq!(d.sample(false, ms(10)), None, "a 10 ms glitch is ignored");
        assert_eq!(d.sample(true, ms(20)), None);
        assert_eq!(d.sample(true, ms(60)), None);
        assert_eq!(d.sample(true, ms(70)), Some(true));
        assert_eq!(d.sample(true, ms(200)), None, "one edge per change");
        assert_eq!(d.sample(false, ms(210)), None);
        assert_eq!(d.sample(false, ms(260)), Some(false));
    }

    #[test]
    fn one_person_lingering_or_stepping_back_and_forth_is_one_entry() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut c = EntryCounter::new(Duration::from_millis(2_000));
        assert!(c.arrived(ms(0)), "the first arrival is an entry");
        assert!(!c.arrived(ms(100)), "still there: no second entry");
        c.left(ms(5_000));
        assert!(
            !c.arrived(ms(5_800)),
            "back after 0.8 s of quiet: the same person"
        );
        c.left(ms(6_000));
        assert!(c.arrived(ms(8_000)), "after 2 s of quiet: someone new");
        assert_eq!(c.entries(), 2);
    }

    fn simulated() -> (Gpio, GpioSim) {
        let gpio = open(&GpioSettings::Simulated).unwrap();
        let sim = gpio.sim.clone().unwrap();
        (gpio, sim)
    }

    fn next(rx: &mpsc::Receiver<PresenceEvent>) -> PresenceEvent {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a presence event")
    }

    #[test]
    fn someone_arriving_and_leaving_gives_one_event_each_through_the_hal_traits() {
        let (gpio, sim) = simulated();
        let (tx, rx) = mpsc::channel();
        let _t = spawn_presence(
            gpio.presence.unwrap(),
            gpio.debounce,
            gpio.entry_gap,
            move |e| tx.send(e).is_ok(),
        )
        .unwrap();
        assert_eq!(next(&rx), PresenceEvent::Health(Health::ok()));
        sim.set_presence(true);
        assert_eq!(next(&rx), PresenceEvent::Arrived);
        assert_eq!(
            next(&rx),
            PresenceEvent::Entered,
            "the first arrival is an entry"
        );
        sim.set_presence(false);
        assert_eq!(next(&rx), PresenceEvent::Left);
    }

    #[test]
    fn people_stepping_in_front_of_the_simulated_sensor_are_counted_once_each() {
        let (gpio, sim) = simulated();
        let (tx, rx) = mpsc::channel();
        let _t = spawn_presence(
            gpio.presence.unwrap(),
            gpio.debounce,
            gpio.entry_gap,
            move |e| tx.send(e).is_ok(),
        )
        .unwrap();
        assert_eq!(next(&rx), PresenceEvent::Health(Health::ok()));
        for _ in 0..3 {
            sim.set_presence(true);
            assert_eq!(next(&rx), PresenceEvent::Arrived);
            assert_eq!(next(&rx), PresenceEvent::Entered);
            sim.set_presence(false);
            assert_eq!(next(&rx), PresenceEvent::Left);
            // Quiet for longer than the entry gap: the next arrival is someone new. Waiting
            // for time to pass is the behaviour under test, not a wait for an event.
            std::thread::sleep(gpio.entry_gap + Duration::from_millis(50));
        }
    }

    #[test]
    fn a_sensor_that_stops_answering_is_reported_absent_and_recovers_without_a_restart() {
        let (gpio, sim) = simulated();
        let (tx, rx) = mpsc::channel();
        let _t = spawn_presence(
            gpio.presence.unwrap(),
            gpio.debounce,
            gpio.entry_gap,
            move |e| tx.send(e).is_ok(),
        )
        .unwrap();
        assert_eq!(next(&rx), PresenceEvent::Health(Health::ok()));
        sim.set_presence(true);
        assert_eq!(next(&rx), PresenceEvent::Arrived);
        assert_eq!(next(&rx), PresenceEvent::Entered);
        sim.break_presence(true);
        assert_eq!(
            next(&rx),
            PresenceEvent::Left,
            "nobody is there once it is gone"
        );
        match next(&rx) {
            PresenceEvent::Health(h) => {
                assert!(!h.is_usable());
                assert!(h.reason.unwrap().contains("presence sensor"));
            }
            other => panic!("expected absent, got {other:?}"),
        }
        sim.break_presence(false);
        assert_eq!(next(&rx), PresenceEvent::Health(Health::ok()));
        assert_eq!(
            next(&rx),
            PresenceEvent::Arrived,
            "still there after recovery"
        );
        // The sensor's outage is not quiet in front of it: whether it counts depends on the
        // gap, so nothing more is asserted here.
    }

    #[test]
    fn the_led_follows_what_the_kiosk_sets_and_active_low_wiring_is_inverted() {
        let (mut gpio, sim) = simulated();
        let led = gpio.led.as_mut().unwrap();
        led.set(true).unwrap();
        assert!(sim.led());
        led.set(false).unwrap();
        assert!(!sim.led());
        let pin = SimPin::default();
        let mut inverted = Pin {
            pin: pin.clone(),
            active_low: true,
        };
        StatusLed::set(&mut inverted, true).unwrap();
        assert!(
            !pin.level.load(Ordering::SeqCst),
            "active low: lit is a low line"
        );
    }

    #[test]
    fn a_missing_gpio_chip_is_a_clear_error_naming_chip_and_line() {
        let err = open(&GpioSettings::Cdev {
            presence: None,
            presence_debounce_ms: 50,
            presence_entry_gap_ms: 2_000,
            status_led: Some(GpioLine {
                chip: "/dev/gpiochip-none".into(),
                line: 27,
                active_low: false,
            }),
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/dev/gpiochip-none") && text.contains("27"),
            "{text}"
        );
    }
}
