//! The loop the line-oriented card readers share (USB HID keyboard wedges, serial readers): open
//! the device on the first read and again a second after it went away, turn each UID the device
//! delivers into a card token at once, drop the reader's own repeats of one presentation, and
//! report health changes once each. What differs per device (how to open it, how bytes or key
//! events become UIDs) is a [`LineSource`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::presence::RepeatFilter;
use super::token::{TenantKey, Uid};
use super::{CardEvent, CardReader, ReaderKind, Tap};
use crate::health::Health;

/// The same card again within this time is the reader repeating, not a new tap.
const REPEAT_WINDOW: Duration = Duration::from_millis(1500);
/// How long to wait before opening a device again after it failed or went away.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// A device that delivers card UIDs as lines of text.
pub trait LineSource: Send {
    /// What the reader is called in logs and health reasons ("serial card reader").
    const NAME: &'static str;
    /// The kind of reader, as taps report it.
    const KIND: ReaderKind;

    /// Opens the device at `path`; on failure, a reason a technician can act on.
    fn open(&mut self, path: &str) -> Result<(), String>;

    /// Whether the device is open.
    fn is_open(&self) -> bool;

    /// Waits up to `wait` for input from the device at `path` and pushes each completed line onto
    /// `lines` (a UID, or why the line was not one). On a lost device it closes itself and says
    /// why, in words a technician can act on.
    fn read(
        &mut self,
        path: &str,
        wait: Duration,
        lines: &mut Vec<Result<Uid, String>>,
    ) -> Result<(), String>;
}

/// A card reader over a [`LineSource`].
pub struct LineReader<S: LineSource> {
    source: S,
    path: String,
    key: TenantKey,
    filter: RepeatFilter,
    health: Option<Health>,
    next_open: Option<Instant>,
    pending: VecDeque<CardEvent>,
}

impl<S: LineSource> LineReader<S> {
    /// A reader of `source` at `path`; opened on the first call to `next_event`.
    pub(super) fn with_source(source: S, path: String, key: TenantKey) -> Self {
        LineReader {
            source,
            path,
            key,
            filter: RepeatFilter::new(REPEAT_WINDOW),
            health: None,
            next_open: None,
            pending: VecDeque::new(),
        }
    }

    fn set_health(&mut self, health: Health) {
        if self.health.as_ref() != Some(&health) {
            tracing::info!(reader = %self.path, %health, "{} health", S::NAME);
            self.health = Some(health.clone());
            self.pending.push_back(CardEvent::Health(health));
        }
    }

    fn absent(&mut self, reason: String) {
        self.set_health(Health::absent(reason));
        self.next_open = Some(Instant::now() + REOPEN_AFTER);
    }

    fn try_open(&mut self) {
        match self.source.open(&self.path) {
            Ok(()) => self.set_health(Health::ok()),
            Err(reason) => self.absent(reason),
        }
    }

    fn read_some(&mut self, wait: Duration) {
        let mut lines = Vec::new();
        let outcome = self.source.read(&self.path, wait, &mut lines);
        for line in lines {
            match line {
                Ok(uid) => {
                    let token = uid.token(&self.key);
                    if self.filter.is_new(&token, Instant::now()) {
                        self.pending.push_back(CardEvent::Tap(Tap {
                            token,
                            reader: S::KIND,
                        }));
                    }
                }
                Err(e) => {
                    tracing::warn!(reader = %self.path, error = %e, "{} sent a line that is not a uid", S::NAME)
                }
            }
        }
        if let Err(reason) = outcome {
            self.absent(reason);
        }
    }
}

impl<S: LineSource> CardReader for LineReader<S> {
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
            if !self.source.is_open() {
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
            .unwrap_or_else(|| Health::absent(format!("{} not opened yet", S::NAME)))
    }

    fn kind(&self) -> ReaderKind {
        S::KIND
    }
}
