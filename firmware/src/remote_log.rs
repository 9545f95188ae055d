//! Remote logs: the kiosk's own warnings and errors travel to the CRM as `device_log` events, so
//! a technician sees a failing kiosk's last errors on the dashboard before driving to the shop.
//!
//! ```text
//! tracing::warn!/error! ─> RemoteLogLayer ─(bounded channel, never blocks)─> shipper thread
//!     ─> Limiter (repeats counted, a cap per window) ─> journal (device_log) ─> outbox ─> CRM
//! ```
//!
//! The layer is installed with the process's subscriber (`cli::init_logging`) and
//! drops lines until a running kiosk calls [`ship_to`]. Lines from this module itself are never
//! shipped (a failing journal would otherwise feed itself). Nothing personal reaches a log in the
//! first place: the firmware logs card tokens at most, never UIDs or names.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kiosk_protocol::events::{DeviceLog, Event, LogLevel};
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use kiosk_journal::db::KioskDb;

/// Longest message shipped, in characters.
pub const MAX_MESSAGE: usize = 512;
/// Repeats of a line within this window are counted and shipped once when it closes.
pub const WINDOW: Duration = Duration::from_secs(60);
/// At most this many lines per window reach the journal; the rest are counted in a summary line.
pub const MAX_PER_WINDOW: usize = 20;
/// Lines waiting for the shipper; beyond, lines are dropped (counted) rather than block a logger.
const QUEUE: usize = 256;

/// One warning or error as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// Module.
    pub target: String,
    /// Message and fields (`message key=value ...`), at most [`MAX_MESSAGE`] characters.
    pub message: String,
}

static SINK: Mutex<Option<SyncSender<LogLine>>> = Mutex::new(None);

/// The tracing layer that hands warnings and errors to the shipper.
#[derive(Debug, Default, Clone, Copy)]
pub struct RemoteLogLayer;

impl<S: Subscriber> Layer<S> for RemoteLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            _ => return,
        };
        if meta.target().starts_with(module_path!()) {
            return;
        }
        let guard = SINK.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sink) = guard.as_ref() else { return };
        let mut text = MessageText::default();
        event.record(&mut text);
        let line = LogLine {
            level,
            target: meta.target().to_owned(),
            message: truncate(text.0),
        };
        if let Err(TrySendError::Full(_)) = sink.try_send(line) {
            // The shipper is behind (a slow journal); losing a log line beats stalling a device loop.
        }
    }
}

#[derive(Default)]
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            self.0.push_str(&fields);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.0);
            self.0.push_str(value);
            self.0.push_str(&fields);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

fn truncate(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(MAX_MESSAGE) {
        s.truncate(i);
        s.pop();
        s.push('…');
    }
    s
}

/// What the limiter decided to ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipped {
    /// The line.
    pub line: LogLine,
    /// How many times it was logged since last shipped.
    pub occurrences: u32,
}

/// Rate limiting: the first occurrence of a line in a window ships at once; its repeats are
/// counted and shipped as one line when the window closes; past [`MAX_PER_WINDOW`] lines a
/// window ships only a summary of how many were left out.
#[derive(Debug)]
pub struct Limiter {
    window_start: Instant,
    shipped: usize,
    repeats: HashMap<(LogLevel, String, String), u32>,
    seen: std::collections::HashSet<(LogLevel, String, String)>,
    left_out: u32,
}

impl Limiter {
    /// A limiter whose first window starts at `now`.
    pub fn new(now: Instant) -> Self {
        Limiter {
            window_start: now,
            shipped: 0,
            repeats: HashMap::new(),
            seen: Default::default(),
            left_out: 0,
        }
    }

    /// Takes a line logged at `now`; returns what to ship now.
    pub fn offer(&mut self, line: LogLine, now: Instant) -> Vec<Shipped> {
        let mut out = self.roll(now);
        let key = (line.level, line.target.clone(), line.message.clone());
        if self.seen.contains(&key) {
            *self.repeats.entry(key).or_default() += 1;
        } else if self.shipped < MAX_PER_WINDOW {
            self.seen.insert(key);
            self.shipped += 1;
            out.push(Shipped {
                line,
                occurrences: 1,
            });
        } else {
            self.left_out += 1;
        }
        out
    }

    /// Closes the window if it is over at `now`: repeats and the summary of left-out lines.
    pub fn roll(&mut self, now: Instant) -> Vec<Shipped> {
        if now.duration_since(self.window_start) < WINDOW {
            return Vec::new();
        }
        self.window_start = now;
        self.shipped = 0;
        self.seen.clear();
        let mut out: Vec<Shipped> = self
            .repeats
            .drain()
            .map(|((level, target, message), n)| Shipped {
                line: LogLine {
                    level,
                    target,
                    message,
                },
                occurrences: n,
            })
            .collect();
        out.sort_by(|a, b| a.line.message.cmp(&b.line.message));
        if self.left_out > 0 {
            out.push(Shipped {
                line: LogLine {
                    level: LogLevel::Warn,
                    target: module_path!().to_owned(),
                    message: format!(
                        "{} more warnings and errors in the last minute were not shipped (see journalctl -u kiosk)",
                        self.left_out
                    ),
                },
                occurrences: 1,
            });
            self.left_out = 0;
        }
        out
    }
}

/// Ships the process's warnings and errors into `db`'s journal until the returned guard is
/// dropped (the runtime keeps it for its lifetime).
pub fn ship_to(db: KioskDb) -> ShipperGuard {
    let (tx, rx) = sync_channel(QUEUE);
    *SINK.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
    let thread = std::thread::Builder::new()
        .name("remote-log".into())
        .spawn(move || run(rx, db))
        .map_err(|e| tracing::error!(error = %e, "cannot start the remote log shipper"))
        .ok();
    ShipperGuard { thread }
}

/// Stops shipping when dropped (lines still queued are journaled first).
pub struct ShipperGuard {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ShipperGuard {
    fn drop(&mut self) {
        SINK.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: Receiver<LogLine>, db: KioskDb) {
    let mut limiter = Limiter::new(Instant::now());
    let journal = |s: Shipped| {
        let event = Event::DeviceLog(DeviceLog {
            level: s.line.level,
            target: s.line.target,
            message: s.line.message,
            occurrences: s.occurrences,
        });
        if let Err(e) = db.append(event) {
            // Logged by this module: not shipped again.
            tracing::warn!(error = %e, "cannot journal a log line for the CRM");
        }
    };
    loop {
        match rx.recv_timeout(WINDOW / 4) {
            Ok(line) => limiter
                .offer(line, Instant::now())
                .into_iter()
                .for_each(journal),
            Err(RecvTimeoutError::Timeout) => {
                limiter.roll(Instant::now()).into_iter().for_each(journal)
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Shutting down: repeats counted so far still go.
                let end = Instant::now() + WINDOW;
                limiter.roll(end).into_iter().for_each(journal);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(msg: &str) -> LogLine {
        LogLine {
            level: LogLevel::Error,
            target: "kiosk::devices".into(),
            message: msg.into(),
        }
    }

    #[test]
    fn repeats_are_counted_and_shipped_once_when_the_window_closes() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        assert_eq!(l.offer(line("printer: broken pipe"), t0).len(), 1);
        for i in 1..=9 {
            assert!(
                l.offer(line("printer: broken pipe"), t0 + Duration::from_secs(i))
                    .is_empty()
            );
        }
        assert!(l.roll(t0 + Duration::from_secs(59)).is_empty());
        let out = l.roll(t0 + WINDOW);
        assert_eq!(
            out,
            vec![Shipped {
                line: line("printer: broken pipe"),
                occurrences: 9
            }]
        );
        // A new window: the line ships at once again.
        assert_eq!(l.offer(line("printer: broken pipe"), t0 + WINDOW).len(), 1);
    }

    #[test]
    fn a_flood_of_distinct_lines_is_capped_and_summarised() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let shipped: usize = (0..100)
            .map(|i| l.offer(line(&format!("error {i}")), t0).len())
            .sum();
        assert_eq!(shipped, MAX_PER_WINDOW);
        let out = l.roll(t0 + WINDOW);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].line.message.starts_with("80 more warnings"),
            "{:?}",
            out[0]
        );
    }

    #[test]
    fn the_layer_formats_message_and_fields_and_ignores_info() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let (tx, rx) = sync_channel(8);
        *SINK.lock().unwrap() = Some(tx);
        let subscriber = tracing_subscriber::registry().with(RemoteLogLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "kiosk::devices", "not shipped");
            tracing::error!(target: "kiosk::devices", device = "printer", code = 7, "write failed");
            tracing::warn!("never shipped: logged by this module");
            tracing::warn!(target: "kiosk::devices", "{}", "x".repeat(2000));
        });
        SINK.lock().unwrap().take();
        let lines: Vec<LogLine> = rx.try_iter().collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].level, LogLevel::Error);
        assert_eq!(lines[0].message, "write failed device=printer code=7");
        assert_eq!(lines[1].message.chars().count(), MAX_MESSAGE);
    }
}
