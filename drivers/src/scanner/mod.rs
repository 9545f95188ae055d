//! Barcode / QR scanners: serial (CDC-ACM) and USB HID, and the decoders that validate what they
//! read (EAN-13, EAN-8, UPC-A, the project's signed ticket and coupon QR payloads).
//!
//! Data flow: scanner → **driver** → [`ScannerEvent`] → firmware input stream. One blocking
//! interface for every kind of scanner:
//!
//! ```no_run
//! use std::time::Duration;
//! use kiosk_drivers::scanner::{self, ScannerEvent, ScannerOptions, settings::{ScannerSettings, Suffix}};
//!
//! let settings = ScannerSettings::Simulated { suffix: Suffix::Cr };
//! let handle = scanner::open(&settings, ScannerOptions::default())?.expect("a scanner is configured");
//! while let Some(event) = handle.next_event(Duration::from_secs(1)) {
//!     match event {
//!         ScannerEvent::Scanned(scan) => println!("{:?}", scan.code),
//!         ScannerEvent::Rejected { reason } => println!("rejected: {reason}"),
//!         ScannerEvent::Health(health) => println!("scanner {health}"),
//!     }
//! }
//! # Ok::<(), scanner::ScannerError>(())
//! ```
//!
//! [`open`] starts one thread per scanner. The thread reports [`ScannerEvent::Health`] on every
//! change (first `absent` or `ok`, then each unplug and replug), a [`ScannerEvent::Scanned`] for
//! each line that decodes to a valid [`Code`], and a [`ScannerEvent::Rejected`] with a typed reason
//! for everything else (partial, overlong, noisy or non-UTF-8 lines, bad check digits, forged or
//! expired payloads). A port that disappears is reopened by path every
//! [`ScannerOptions::reopen_interval`] until it comes back; nothing needs a restart. Dropping the
//! [`ScannerHandle`] stops the thread and releases the device.
//!
//! No scanned text reaches a log: a coupon carries a card token.

pub mod code;
pub mod hid;
pub mod line;
mod serial;
pub mod settings;
pub mod sim;

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

pub use code::{Code, CodeError, CodeKey, CodeKeys, Coupon, TurnTicket};
pub use hid::HidDecoder;
pub use line::{Framed, LineFramer, LineRejection};
pub use sim::{ScannerSim, SimError};

use crate::Health;
use settings::ScannerSettings;

/// Default timeout of a HID line (its settings have none: a HID scanner types a code in a burst).
pub const DEFAULT_HID_LINE_TIMEOUT: Duration = Duration::from_millis(500);

/// Tuning and secrets for [`open`], beyond what the hardware profile says.
#[derive(Clone)]
pub struct ScannerOptions {
    /// Keys to verify the kiosk's signed turn tickets and coupons with.
    pub keys: CodeKeys,
    /// Today's business day in store time (the firmware's clock), for expiry checks.
    pub today: Arc<dyn Fn() -> time::Date + Send + Sync>,
    /// Longest line accepted, in bytes.
    pub max_line: usize,
    /// How often a missing port is tried again.
    pub reopen_interval: Duration,
    /// Timeout of a partial HID line.
    pub hid_line_timeout: Duration,
}

impl Default for ScannerOptions {
    /// No keys (kiosk payloads are rejected with [`CodeError::NoKey`]), today from the system clock
    /// in local time (UTC if the offset is unknown), 512-byte lines, retry every 500 ms.
    fn default() -> Self {
        ScannerOptions {
            keys: CodeKeys::default(),
            today: Arc::new(|| {
                time::OffsetDateTime::now_local()
                    .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
                    .date()
            }),
            max_line: line::DEFAULT_MAX_LINE,
            reopen_interval: Duration::from_millis(500),
            hid_line_timeout: DEFAULT_HID_LINE_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for ScannerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScannerOptions")
            .field("keys", &self.keys)
            .field("max_line", &self.max_line)
            .field("reopen_interval", &self.reopen_interval)
            .field("hid_line_timeout", &self.hid_line_timeout)
            .finish_non_exhaustive()
    }
}

/// A valid scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The text as scanned (suffix removed).
    pub raw_text: String,
    /// What it is.
    pub code: Code,
}

/// Why a scan was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The bytes or keys did not make a clean line.
    #[error(transparent)]
    Line(#[from] LineRejection),
    /// The line is not a valid code.
    #[error(transparent)]
    Code(#[from] CodeError),
}

/// What a scanner reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerEvent {
    /// A line that decoded to a valid code.
    Scanned(Scan),
    /// Something read and thrown away.
    Rejected {
        /// Why.
        reason: RejectReason,
    },
    /// The scanner's health changed.
    Health(Health),
}

/// Errors starting a scanner. A missing device is not one: it is reported as absent health and
/// retried.
#[derive(Debug, thiserror::Error)]
pub enum ScannerError {
    /// The simulator could not start.
    #[error("scanner simulator cannot start")]
    Simulator(#[from] SimError),
    /// The worker thread could not start.
    #[error("cannot start the scanner thread")]
    Thread(#[source] std::io::Error),
}

/// A running scanner. Dropping it stops the worker thread and closes the device.
pub struct ScannerHandle {
    events: Receiver<ScannerEvent>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    sim: Option<ScannerSim>,
    device: String,
}

impl ScannerHandle {
    /// Waits up to `timeout` for the next event; `None` on timeout (or if the worker ended).
    pub fn next_event(&self, timeout: Duration) -> Option<ScannerEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The next event if one is waiting.
    pub fn try_next_event(&self) -> Option<ScannerEvent> {
        self.events.try_recv().ok()
    }

    /// The event channel itself, for a caller that wants to block or select on it.
    pub fn events(&self) -> &Receiver<ScannerEvent> {
        &self.events
    }

    /// The simulator driving this scanner, for `Simulated` settings.
    pub fn simulator(&self) -> Option<ScannerSim> {
        self.sim.clone()
    }

    /// The device path the driver opens.
    pub fn device(&self) -> &str {
        &self.device
    }
}

impl Drop for ScannerHandle {
    fn drop(&mut self) {
        // Dropping the sender wakes the worker out of its retry wait; reads wake within a slice.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for ScannerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScannerHandle")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Starts the scanner a hardware profile describes; `Ok(None)` when it says there is none.
pub fn open(
    settings: &ScannerSettings,
    options: ScannerOptions,
) -> Result<Option<ScannerHandle>, ScannerError> {
    match settings {
        ScannerSettings::None => Ok(None),
        ScannerSettings::Serial {
            port,
            baud,
            suffix,
            line_timeout_ms,
        } => {
            let cfg = serial::SerialConfig {
                port: port.clone(),
                baud: *baud,
                suffix: *suffix,
                line_timeout: Duration::from_millis(u64::from(*line_timeout_ms)),
                max_line: options.max_line,
            };
            spawn(port.clone(), None, options, move |w| serial::run(cfg, w)).map(Some)
        }
        ScannerSettings::Simulated { suffix } => {
            let (sim, path) = ScannerSim::new(*suffix)?;
            let port = path.to_string_lossy().into_owned();
            let cfg = serial::SerialConfig {
                port: port.clone(),
                baud: 9600,
                suffix: *suffix,
                line_timeout: Duration::from_millis(500),
                max_line: options.max_line,
            };
            spawn(port, Some(sim), options, move |w| serial::run(cfg, w)).map(Some)
        }
        ScannerSettings::Hid { device, layout } => {
            let cfg = hid::HidConfig {
                device: device.clone(),
                layout: *layout,
                line_timeout: options.hid_line_timeout,
                max_line: options.max_line,
            };
            spawn(device.clone(), None, options, move |w| hid::run(cfg, w)).map(Some)
        }
    }
}

fn spawn(
    device: String,
    sim: Option<ScannerSim>,
    options: ScannerOptions,
    body: impl FnOnce(Worker) + Send + 'static,
) -> Result<ScannerHandle, ScannerError> {
    let (tx, events) = mpsc::channel();
    let (stop, stop_rx) = mpsc::channel();
    let worker = Worker {
        tx,
        stop: stop_rx,
        options,
        health: None,
    };
    let thread = std::thread::Builder::new()
        .name("scanner".into())
        .spawn(move || body(worker))
        .map_err(ScannerError::Thread)?;
    Ok(ScannerHandle {
        events,
        stop: Some(stop),
        thread: Some(thread),
        sim,
        device,
    })
}

/// Whether a worker goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerExit {
    Continue,
    Stop,
}

/// The worker thread's side: decoding, health de-duplication and the stop signal.
pub(crate) struct Worker {
    tx: Sender<ScannerEvent>,
    stop: Receiver<()>,
    options: ScannerOptions,
    health: Option<Health>,
}

impl Worker {
    fn send(&self, event: ScannerEvent) -> WorkerExit {
        match self.tx.send(event) {
            Ok(()) => WorkerExit::Continue,
            Err(_) => WorkerExit::Stop,
        }
    }

    /// Reports health if it changed.
    pub(crate) fn health(&mut self, health: Health) -> WorkerExit {
        if self.health.as_ref() == Some(&health) {
            return WorkerExit::Continue;
        }
        tracing::info!(target: "kiosk_drivers::scanner", health = %health, "scanner health changed");
        self.health = Some(health.clone());
        self.send(ScannerEvent::Health(health))
    }

    /// Decodes a framed line and reports it.
    pub(crate) fn framed(&mut self, framed: Framed) -> WorkerExit {
        match framed {
            Framed::Rejected(r) => self.rejected(r.into()),
            Framed::Line(text) => {
                match code::decode(&text, &self.options.keys, (self.options.today)()) {
                    Ok(code) => self.send(ScannerEvent::Scanned(Scan {
                        raw_text: text,
                        code,
                    })),
                    Err(e) => self.rejected(e.into()),
                }
            }
        }
    }

    pub(crate) fn rejected(&mut self, reason: RejectReason) -> WorkerExit {
        tracing::debug!(target: "kiosk_drivers::scanner", %reason, "scan rejected");
        self.send(ScannerEvent::Rejected { reason })
    }

    pub(crate) fn should_stop(&self) -> bool {
        !matches!(self.stop.try_recv(), Err(mpsc::TryRecvError::Empty))
    }

    /// Waits before the next attempt to open the device, or until asked to stop.
    pub(crate) fn wait_retry(&self) -> WorkerExit {
        match self.stop.recv_timeout(self.options.reopen_interval) {
            Err(RecvTimeoutError::Timeout) => WorkerExit::Continue,
            _ => WorkerExit::Stop,
        }
    }
}
