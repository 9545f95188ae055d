//! Serial and USB CDC-ACM card readers that send one UID per line (hex or decimal, as the profile
//! says), through the `serialport` crate. The port is reopened when it comes back after an
//! unplug; health says why it is absent meanwhile.

use std::collections::VecDeque;
use std::io::Read;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::presence::RepeatFilter;
use super::settings::UidFormat;
use super::token::{TenantKey, Uid};
use super::{CardEvent, CardReader, ReaderKind, Tap};
use crate::health::Health;

/// Longest line accepted; longer input is noise and is dropped up to the next newline.
const MAX_LINE: usize = 64;
/// The same card again within this time is the reader repeating, not a new tap.
const REPEAT_WINDOW: Duration = Duration::from_millis(1500);

/// A line-oriented serial card reader.
pub struct SerialCardReader {
    path: String,
    baud: u32,
    format: UidFormat,
    key: TenantKey,
    port: Option<Box<dyn serialport::SerialPort>>,
    line: Zeroizing<Vec<u8>>,
    overlong: bool,
    filter: RepeatFilter,
    health: Option<Health>,
    next_open: Option<Instant>,
    pending: VecDeque<CardEvent>,
}

impl SerialCardReader {
    /// A reader on `path` at `baud`; opened on the first call to `next_event`.
    pub fn new(path: String, baud: u32, format: UidFormat, key: TenantKey) -> Self {
        SerialCardReader {
            path,
            baud,
            format,
            key,
            port: None,
            line: Zeroizing::new(Vec::with_capacity(MAX_LINE)),
            overlong: false,
            filter: RepeatFilter::new(REPEAT_WINDOW),
            health: None,
            next_open: None,
            pending: VecDeque::new(),
        }
    }

    fn set_health(&mut self, health: Health) {
        if self.health.as_ref() != Some(&health) {
            tracing::info!(reader = %self.path, %health, "serial card reader health");
            self.health = Some(health.clone());
            self.pending.push_back(CardEvent::Health(health));
        }
    }

    fn try_open(&mut self) {
        match serialport::new(&self.path, self.baud)
            .timeout(Duration::from_millis(100))
            .open()
        {
            Ok(port) => {
                self.port = Some(port);
                self.line.clear();
                self.overlong = false;
                self.set_health(Health::ok());
            }
            Err(e) => {
                let reason = format!(
                    "serial card reader {} cannot be opened ({e}): check that it is plugged in, \
                     the port path (a udev symlink is stable) and the dialout group of the kiosk user",
                    self.path
                );
                self.set_health(Health::absent(reason));
                self.next_open = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    fn read_some(&mut self, wait: Duration) {
        let Some(port) = self.port.as_mut() else {
            return;
        };
        let _ = port.set_timeout(wait.clamp(Duration::from_millis(1), Duration::from_millis(500)));
        let mut buf = Zeroizing::new([0u8; 256]);
        match port.read(&mut buf[..]) {
            Ok(0) => self.lost("the port reached end of file".to_owned()),
            Ok(n) => {
                for &b in &buf[..n] {
                    self.byte(b);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => self.lost(e.to_string()),
        }
    }

    fn byte(&mut self, b: u8) {
        match b {
            b'\n' | b'\r' => {
                if !self.overlong && !self.line.is_empty() {
                    self.complete_line();
                }
                self.line.clear();
                self.overlong = false;
            }
            _ if self.line.len() >= MAX_LINE => self.overlong = true,
            _ => self.line.push(b),
        }
    }

    fn complete_line(&mut self) {
        let parsed = match std::str::from_utf8(&self.line) {
            Ok(text) => Uid::parse(text.trim(), self.format).map_err(|e| e.to_string()),
            Err(_) => Err("reader sent bytes that are not text".to_owned()),
        };
        match parsed {
            Ok(uid) => {
                let token = self.key.token(&uid);
                if self.filter.is_new(&token, Instant::now()) {
                    self.pending.push_back(CardEvent::Tap(Tap {
                        token,
                        reader: ReaderKind::Serial,
                    }));
                }
            }
            Err(e) => {
                tracing::warn!(reader = %self.path, error = %e, "serial card reader sent a line that is not a uid")
            }
        }
    }

    fn lost(&mut self, why: String) {
        self.port = None;
        let reason = format!(
            "serial card reader {} stopped answering ({why}): check its cable",
            self.path
        );
        self.set_health(Health::absent(reason));
        self.next_open = Some(Instant::now() + Duration::from_secs(1));
    }
}

impl CardReader for SerialCardReader {
    fn next_event(&mut self, timeout: Duration) -> Option<CardEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            if self.port.is_none() {
                if self.next_open.is_none_or(|at| at <= now) {
                    self.try_open();
                    continue;
                }
                let until = self.next_open.unwrap_or(deadline).min(deadline);
                std::thread::sleep(until.saturating_duration_since(now));
                continue;
            }
            self.read_some(deadline - now);
        }
    }

    fn health(&self) -> Health {
        self.health
            .clone()
            .unwrap_or_else(|| Health::absent("serial card reader not opened yet"))
    }

    fn kind(&self) -> ReaderKind {
        ReaderKind::Serial
    }
}
