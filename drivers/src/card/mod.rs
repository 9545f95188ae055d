//! Loyalty card readers: MFRC522 over SPI, USB HID keyboard-wedge readers and serial readers, each
//! producing one *tap* per card presentation as a keyed card token (the UID never leaves here).
//!
//! Data flow: **reader → [`CardReader`] → [`CardEvent`]** → the firmware's input stream. Build a
//! reader from the profile with [`open`], then either call [`CardReader::next_event`] in a loop
//! of your own or hand it to [`spawn`], which runs it on a thread and passes every event to a
//! closure (for example `move |e| tx.send(e).is_ok()` with a `std::sync::mpsc` or a tokio
//! `blocking_send`). Hardware problems never end the reader: they become
//! [`CardEvent::Health`] changes and the reader keeps trying to recover.
//!
//! Tokens: [`CardToken`] is HMAC-SHA256(tenant key, UID) truncated to 128 bits, 32 lowercase
//! hex; the type is the shared vocabulary's (`kiosk_types`), so the firmware journals and sends it
//! as it is (see [`token`]).

pub mod hid;
pub mod lean;
pub mod line_reader;
pub mod linux;
pub mod mfrc522sim;
pub mod pace;
mod presence;
pub mod rc522;
pub mod serial;
pub mod settings;
pub mod token;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use kiosk_types::ReaderKind;
pub use pace::PresenceSignal;
pub use token::{CardToken, TenantKey, Uid};

use crate::health::Health;
use mfrc522sim::{Mfrc522Sim, SimHandle, SimOptions};
use settings::CardReaderSettings;

/// A card presented to the reader: one per presentation, however long the card stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    /// The card's keyed token.
    pub token: CardToken,
    /// The reader that saw it.
    pub reader: ReaderKind,
}

/// What a card reader reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardEvent {
    /// A card was presented.
    Tap(Tap),
    /// The reader's health changed (reported once per change; the first event of a reader is
    /// always its health).
    Health(Health),
}

/// A blocking card reader.
pub trait CardReader: Send {
    /// Waits up to `timeout` for the next tap or health change; `None` if nothing happened.
    fn next_event(&mut self, timeout: Duration) -> Option<CardEvent>;
    /// The current health.
    fn health(&self) -> Health;
    /// The kind of reader.
    fn kind(&self) -> ReaderKind;
    /// Follows whether someone is in front of the kiosk: a reader that polls its field (the
    /// MFRC522) polls at its idle interval while nobody is there ([`pace`]). Readers that wait
    /// for the card to announce itself (keyboard wedge, serial) have nothing to slow down.
    fn follow_presence(&mut self, signal: PresenceSignal) {
        let _ = signal;
    }
}

/// A reader that could not be set up from its settings (hardware absence is not an error: it is
/// reported as health).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// MFRC522 settings are invalid.
    #[error(transparent)]
    Mfrc522(#[from] rc522::Mfrc522Error),
    /// The Linux SPI or GPIO device could not be opened.
    #[error(transparent)]
    Linux(#[from] linux::LinuxError),
}

/// A reader built from a profile, plus the simulator's control panel when it is simulated.
pub struct OpenReader {
    /// The reader.
    pub reader: Box<dyn CardReader>,
    /// Control panel of the simulated chip (place and remove cards), for `kind = "simulated"`.
    pub sim: Option<SimHandle>,
}

/// Cards counted as removed after this many clean no-answer polls when the profile does not say.
pub const DEFAULT_REMOVAL_POLLS: u32 = 3;

/// Builds the reader a profile asks for; `Ok(None)` for `kind = "none"`.
pub fn open(
    settings: &CardReaderSettings,
    key: TenantKey,
) -> Result<Option<OpenReader>, OpenError> {
    Ok(Some(match settings {
        CardReaderSettings::None => return Ok(None),
        CardReaderSettings::Mfrc522 {
            spi_device,
            spi_hz,
            reset_chip,
            reset_line,
            irq_chip,
            irq_line,
            transceive,
            antenna_gain_db,
            poll_interval_ms,
            idle_poll_ms,
            removal_polls,
        } => {
            let reset = match (reset_chip, reset_line) {
                (Some(chip), Some(line)) => Some((chip.as_str(), *line)),
                _ => None,
            };
            let irq = match (irq_chip, irq_line) {
                (Some(chip), Some(line)) => Some((chip.as_str(), *line)),
                _ => None,
            };
            let config = rc522::Mfrc522Config {
                label: spi_device.clone(),
                antenna_gain_db: *antenna_gain_db,
                poll_interval: Duration::from_millis(u64::from(*poll_interval_ms)),
                idle_poll_interval: idle_interval(*poll_interval_ms, *idle_poll_ms),
                removal_polls: *removal_polls,
            };
            let reader =
                linux::open_mfrc522(spi_device, *spi_hz, reset, irq, *transceive, config, key)?;
            OpenReader { reader, sim: None }
        }
        CardReaderSettings::Simulated {
            poll_interval_ms,
            idle_poll_ms,
            removal_polls,
            transceive,
            irq,
        } => {
            let sim = Mfrc522Sim::new(SimOptions::default());
            let handle = sim.handle();
            let delay = sim.delay();
            let reset = sim.reset_pin();
            let irq_line = irq.then(|| sim.irq_line());
            let config = rc522::Mfrc522Config {
                label: "simulated mfrc522".to_owned(),
                antenna_gain_db: 48,
                poll_interval: Duration::from_millis(u64::from(*poll_interval_ms)),
                idle_poll_interval: idle_interval(*poll_interval_ms, *idle_poll_ms),
                removal_polls: *removal_polls,
            };
            let mut reader = rc522::Mfrc522Reader::new(
                sim,
                Some(reset),
                delay,
                config,
                ReaderKind::Simulated,
                key,
            )?;
            reader.set_transceive(*transceive);
            if let Some(line) = irq_line {
                reader.set_irq(Box::new(line));
            }
            OpenReader {
                reader: Box::new(reader),
                sim: Some(handle),
            }
        }
        CardReaderSettings::HidWedge { device, uid_format } => OpenReader {
            reader: Box::new(hid::HidWedgeReader::with_format(
                device.clone(),
                *uid_format,
                key,
            )),
            sim: None,
        },
        CardReaderSettings::Serial {
            port,
            baud,
            uid_format,
        } => OpenReader {
            reader: Box::new(serial::SerialCardReader::new(
                port.clone(),
                *baud,
                *uid_format,
                key,
            )),
            sim: None,
        },
    }))
}

/// The idle poll interval of a profile: `idle_poll_ms`, else [`pace::DEFAULT_IDLE_POLL_MS`];
/// never shorter than the poll interval.
fn idle_interval(poll_interval_ms: u32, idle_poll_ms: Option<u32>) -> Duration {
    let idle = idle_poll_ms.unwrap_or(pace::DEFAULT_IDLE_POLL_MS);
    Duration::from_millis(u64::from(idle.max(poll_interval_ms)))
}

/// A reader running on its own thread; stop it with [`ReaderThread::stop`].
pub struct ReaderThread {
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl ReaderThread {
    /// Asks the thread to stop and waits for it (at most one poll of 100 ms).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

impl Drop for ReaderThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs `reader` on a thread named `card-reader`, passing each event to `sink`; the thread ends
/// when `sink` returns false or the handle is stopped or dropped.
pub fn spawn(
    mut reader: Box<dyn CardReader>,
    mut sink: impl FnMut(CardEvent) -> bool + Send + 'static,
) -> std::io::Result<ReaderThread> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let join = std::thread::Builder::new()
        .name("card-reader".into())
        .spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                if let Some(event) = reader.next_event(Duration::from_millis(100)) {
                    if !sink(event) {
                        break;
                    }
                }
            }
        })?;
    Ok(ReaderThread {
        stop,
        join: Some(join),
    })
}
