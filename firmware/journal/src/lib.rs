//! The kiosk's persistence: the journal (every event the kiosk records, in SQLite, before
//! anything else happens), the device key that seals personal data at rest ([`crypto`]), the
//! clocks it stamps events with ([`clock`]) and the kiosk database over it ([`db`]: the turn
//! queue's rows, the caches the sync feed fills, the sync worker's outbox).
//!
//!
//! Data flow: engine → **journal** → outbox → sync worker → endpoint. An event is committed here
//! before its effect is acknowledged (docs/DESIGN.md invariant 1); state that changes with an event (a
//! day's turn counter, a turn's record, a cached profile) commits in the same transaction, so a
//! crash can never leave one without the other.
//!
//! # Durability: `synchronous = FULL` in WAL mode
//! Every commit appends to the write-ahead log and fsyncs it before `append` returns. So:
//! - a crash of the process (`kill -9`, a panic, the watchdog) loses nothing that returned `Ok`:
//!   the WAL is in the kernel's page cache and SQLite replays it on the next open;
//! - a **power cut** also loses nothing that returned `Ok`, provided the storage honours fsync
//!   (SD cards and USB sticks with a volatile write cache that lies about flushes can still lose
//!   the last writes; that is a property of the card, tested by the power-cut simulation);
//! - an append interrupted by the power cut before its fsync returned is rolled back entirely: no
//!   half events, no counter without its event.
//!
//! `NORMAL` would skip the fsync per commit (only at checkpoints): the process-crash guarantee
//! is the same, but a power cut may roll back the last commits, and a kiosk loses power. The price
//! of `FULL` is one fsync per commit; `scripts/bench` measures it (latency and bytes per event).
//!
//! # Disk budget (`journal.disk_budget_mib`)
//! A kiosk cut off from the CRM for days keeps journaling: the backlog must grow within the budget
//! and the kiosk must keep serving customers. The journal measures what it occupies before a
//! transaction once a sixty-fourth of the budget has been appended since the last measure (before
//! every transaction while it refuses events), and after every acknowledgement: pages in use (`page_count -
//! freelist_count`, times `page_size`; freed pages are reused before the file grows, so the file
//! never outgrows the most ever in use) plus the WAL file. With a budget the WAL is checkpointed
//! every `budget / 16` bytes (at most SQLite's 1000 pages) and cut back to that size, so it takes
//! a bounded share.
//!
//! Past the **soft limit** (three quarters of the budget):
//! 1. acknowledged events are pruned, oldest acknowledgement first, whatever their retention,
//!    down to a sixteenth of the budget below the soft limit;
//! 2. if that is not enough (the endpoint is unreachable: everything is pending), new
//!    **low-value** events ([`is_low_value`]: `card_tapped`, `customer_identified`,
//!    `campaign_shown`, `device_log`) are refused with [`JournalError::OverBudget`], counted per
//!    type (`kiosk status` shows the total), and one `device_status_changed` (storage, degraded)
//!    is journaled when the refusals start, one (storage, ok) when they stop (below the soft limit
//!    minus a sixteenth of the budget, after the backlog drained). While refusing, every
//!    acknowledgement prunes down to that mark, also below the soft limit: a backlog acknowledged
//!    batch by batch ends the refusals with its last batch.
//!
//! Every other event is **never refused by the budget**: tickets and turns (the queue's own state
//! commits with them, so turn numbering never breaks and customers keep being served),
//! registrations and consents (legal records: `Event::is_protected`), erasures, coupons, surveys,
//! device health, start-ups. They use the last quarter of the budget, and beyond it only a full
//! disk stops them ([`JournalError::DiskFull`]). The check runs before a transaction, so the soft
//! limit can be passed by a sixty-fourth of the budget and one transaction's pages. (Measuring
//! before every transaction cost a durable append about 100 µs, 1.45x bare SQLite instead of 1.05x,
//! with no extra fsync or CPU time in it: the read transaction the measure opens between two
//! commits.)
//!
//! # Sequence numbers
//! `events.seq` is `INTEGER PRIMARY KEY AUTOINCREMENT`: SQLite remembers the highest ever used in
//! `sqlite_sequence`, so a number is never reused even after rows are deleted by retention,
//! dead-lettering or erasure. The journal is the only writer (one connection behind a lock).

pub mod clock;
pub mod crypto;
pub mod db;
pub mod migrations;
mod recovery;
pub mod store_config;
pub mod store_db;
pub mod visits;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiosk_protocol::CardToken;
use kiosk_protocol::events::{
    CustomerErased, DeviceHealth, DeviceKind, DeviceStatusChanged, Envelope, Event,
    EventDeadLettered,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::{CryptoError, DeviceKey, is_sealed};

pub use migrations::{MIGRATIONS, MigrationError};
pub use recovery::Recovery;

/// How SQLite syncs commits to storage (see the module docs for what each keeps on power loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL at every commit: nothing that returned `Ok` is lost on power loss.
    #[default]
    Full,
    /// fsync only at checkpoints: survives process crashes, may lose the last commits on power
    /// loss. Only for benchmarks and tests that measure the difference.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Who writes the events: fixed for the life of a process.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The kiosk id (from enrollment; a provisional id before it).
    pub kiosk_id: String,
    /// This process run.
    pub boot_id: Uuid,
}

/// How to open the journal.
#[derive(Debug, Clone)]
pub struct Options {
    /// Commit durability.
    pub synchronous: Synchronous,
    /// Run `PRAGMA quick_check` at open when the file is at most this big (a full scan: cheap for
    /// small journals, seconds for huge ones; corruption found later surfaces as errors).
    pub quick_check_max_bytes: u64,
    /// Most disk space the journal may use, in bytes (`journal.disk_budget_mib`); `None` for no
    /// budget. See the module docs for what happens when it is reached.
    pub disk_budget_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            quick_check_max_bytes: 64 * 1024 * 1024,
            disk_budget_bytes: None,
        }
    }
}

/// Errors of the journal. Every variant names the database file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The storage is full: the append was rolled back and nothing already written was touched.
    #[error("journal at {path} cannot grow: the disk is full; free space on the data partition")]
    DiskFull {
        /// The database file.
        path: PathBuf,
    },
    /// The file reached the largest size the filesystem or the process may write (EFBIG: FAT's
    /// 4 GiB, a `ulimit -f`); the append was rolled back, nothing already written was touched.
    #[error(
        "journal at {path} cannot grow: the file reached the largest size allowed (EFBIG); keep the data directory on an ext4 partition and lift any file-size limit (ulimit -f, LimitFSIZE=)"
    )]
    FileTooLarge {
        /// The database file.
        path: PathBuf,
    },
    /// The journal is past the soft limit of its disk budget and the event is of a low-value type:
    /// it was not journaled, only counted. Callers carry on (the customer is still served).
    #[error(
        "journal at {path} is near its disk budget of {budget_bytes} bytes with the backlog unsent: {type_name} event dropped; check the link to the CRM (kiosk status)"
    )]
    OverBudget {
        /// The database file.
        path: PathBuf,
        /// The type of the dropped event.
        type_name: &'static str,
        /// The budget.
        budget_bytes: u64,
    },
    /// The database file is open to other users, or could not be created private.
    #[error(transparent)]
    Private(#[from] kiosk_types::private_file::PrivateFileError),
    /// The filesystem or file is read-only.
    #[error("journal at {path} is read-only: check the mount and the file's owner")]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer firmware.
    #[error("journal at {path}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: MigrationError,
    },
    /// Any other SQLite failure.
    #[error("journal at {path}: {op} failed")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What the journal was doing.
        op: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A corrupt database could not be moved aside.
    #[error("journal at {path} is corrupt and could not be moved aside to {moved_to}")]
    MoveAside {
        /// The database file.
        path: PathBuf,
        /// Where it should have gone.
        moved_to: PathBuf,
        /// What the filesystem said.
        #[source]
        source: std::io::Error,
    },
    /// An event could not be encoded (a bug: every catalog event serialises).
    #[error("event could not be encoded as JSON")]
    Encode(#[source] serde_json::Error),
    /// A stored event could not be read back.
    #[error("journal at {path}: event seq {seq} cannot be decoded")]
    Decode {
        /// The database file.
        path: PathBuf,
        /// The event.
        seq: u64,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// No event with that sequence number is waiting in the outbox.
    #[error("journal at {path}: no pending event with seq {seq}")]
    NoSuchEvent {
        /// The database file.
        path: PathBuf,
        /// The sequence number asked for.
        seq: u64,
    },
}

/// Why a stored event could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The sealed body did not open (wrong device key or tampering).
    #[error("sealed body")]
    Crypto(#[from] CryptoError),
    /// The body is not valid UTF-8 after opening.
    #[error("body is not UTF-8")]
    Utf8(#[from] std::string::FromUtf8Error),
    /// The body is not an envelope.
    #[error("body is not an event envelope")]
    Json(#[from] serde_json::Error),
}

fn sqlite_error(path: &Path, op: &'static str, source: rusqlite::Error) -> JournalError {
    match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => JournalError::DiskFull {
            path: path.to_owned(),
        },
        Some(rusqlite::ErrorCode::ReadOnly) => JournalError::ReadOnly {
            path: path.to_owned(),
        },
        _ => JournalError::Sqlite {
            path: path.to_owned(),
            op,
            source,
        },
    }
}

/// Like [`sqlite_error`], telling an I/O error's cause from the OS error SQLite saw on `conn`:
/// SQLite reports a write refused with EFBIG (a file-size limit) as a generic `SQLITE_IOERR`.
fn io_error(
    conn: &Connection,
    path: &Path,
    op: &'static str,
    source: rusqlite::Error,
) -> JournalError {
    if source.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure) {
        // SAFETY: `conn` is open for the duration of the call; sqlite3_system_errno only reads the
        // connection's last OS error code.
        let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
        match errno {
            libc::EFBIG => {
                return JournalError::FileTooLarge {
                    path: path.to_owned(),
                };
            }
            libc::ENOSPC => {
                return JournalError::DiskFull {
                    path: path.to_owned(),
                };
            }
            libc::EROFS => {
                return JournalError::ReadOnly {
                    path: path.to_owned(),
                };
            }
            _ => {}
        }
    }
    sqlite_error(path, op, source)
}

/// Event types the journal refuses past the soft limit of its disk budget: telemetry and
/// analytics the CRM can do without. Never a ticket, turn, registration, consent, erasure or
/// coupon (see the module docs).
pub fn is_low_value(event: &Event) -> bool {
    matches!(
        event,
        Event::CardTapped(_)
            | Event::CustomerIdentified(_)
            | Event::CampaignShown(_)
            | Event::ContentPlayed(_)
            | Event::PeopleCounted(_)
            | Event::DeviceLog(_)
    )
}

/// Counter (in the `counters` table) of events dropped at the disk budget, per type:
/// `budget_dropped:card_tapped`, ...
pub const DROPPED_COUNTER_PREFIX: &str = "budget_dropped:";
/// Setting holding `dropping` while low-value events are refused.
const BUDGET_STATE: &str = "journal.budget_state";
/// What a row costs besides its body and time text, roughly: key, id, type, token, the indexes'
/// entries (only to decide when to measure the disk budget again).
const ROW_OVERHEAD_BYTES: u64 = 256;
/// Acknowledged events pruned per statement when the journal is near its budget.
const PRUNE_CHUNK: i64 = 512;

/// The disk budget and where the journal stands (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Budget {
    bytes: u64,
    /// Refusing low-value events.
    dropping: bool,
}

impl Budget {
    /// Past this, acknowledged events are pruned, then low-value events refused.
    fn soft_limit(&self) -> u64 {
        self.bytes - self.bytes / 4
    }

    /// Refusals stop below this (a margin so that they do not flap at the limit).
    fn resume_below(&self) -> u64 {
        self.soft_limit() - self.bytes / 16
    }

    /// Bytes appended between two measures of what the journal occupies (see the module docs).
    fn measure_every(&self) -> u64 {
        self.bytes / 64
    }

    /// WAL frames between automatic checkpoints: a sixteenth of the budget, at most SQLite's
    /// default 1000.
    fn wal_pages(&self, page_size: u64) -> u64 {
        (self.bytes / 16 / page_size.max(512)).clamp(16, 1000)
    }

    /// The WAL file's size limit (`journal_size_limit`): twice what it holds at a checkpoint (a
    /// frame is a page and a 24-byte header; a commit may overshoot the checkpoint mark). Below
    /// its working size SQLite truncates the WAL at every checkpoint and each commit after one
    /// grows the file again, so its fsync also writes the file's size to the filesystem journal:
    /// a limit of exactly `wal_pages` pages cost durable appends about half as much again.
    fn wal_limit_bytes(&self, page_size: u64) -> u64 {
        2 * (32 + self.wal_pages(page_size) * (page_size + 24))
    }
}

/// Bytes the journal occupies: pages in use plus the WAL file.
fn used_bytes(conn: &Connection, path: &Path) -> rusqlite::Result<u64> {
    let pragma = |name: &str| -> rusqlite::Result<u64> {
        conn.prepare_cached(&format!("PRAGMA {name}"))?
            .query_row([], |r| r.get::<_, i64>(0))
            .map(|v| v.max(0) as u64)
    };
    let page_size = pragma("page_size")?;
    let pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
    let wal = std::fs::metadata(wal_path(path))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(pages * page_size + wal)
}

/// What an append produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The event's sequence number.
    pub seq: u64,
    /// The event's id.
    pub id: Uuid,
}

/// An event as stored, for the outbox and for `kiosk events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Sequence number.
    pub seq: u64,
    /// Event id.
    pub id: Uuid,
    /// Event type name.
    pub type_name: String,
    /// Device wall time, RFC 3339.
    pub wall_time: String,
    /// When the endpoint acknowledged it (unix seconds), if it did.
    pub acked_at: Option<i64>,
    /// The envelope JSON (opened if it was sealed and the caller asked for it; otherwise the
    /// sealed text).
    pub body: String,
    /// Whether the stored body is sealed (carries personal data).
    pub sealed: bool,
}

/// A dead-lettered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Sequence number it had.
    pub seq: u64,
    /// Event id.
    pub id: Uuid,
    /// Event type name.
    pub type_name: String,
    /// Why the endpoint rejected it.
    pub reason: String,
    /// When (unix seconds).
    pub dead_at: i64,
}

/// Numbers for `kiosk status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Events in the journal (pending and acknowledged, not yet pruned).
    pub events: u64,
    /// Events not yet acknowledged by the endpoint.
    pub pending: u64,
    /// Device wall time of the oldest pending event.
    pub oldest_pending_wall_time: Option<String>,
    /// Dead letters.
    pub dead_letters: u64,
    /// Highest sequence number ever used.
    pub last_seq: u64,
    /// Database file plus WAL, in bytes.
    pub file_bytes: u64,
    /// Low-value events dropped because the journal was at its disk budget (since the journal
    /// was created).
    pub dropped_over_budget: u64,
    /// Whether low-value events are being dropped now.
    pub dropping_low_value: bool,
}

/// The unacknowledged part of the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Events not yet acknowledged by the endpoint.
    pub events: u64,
    /// Device wall time of the oldest of them.
    pub oldest_wall_time: Option<String>,
}

/// Which events `list` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFilter {
    /// Only events not yet acknowledged.
    pub pending_only: bool,
    /// The newest this many.
    pub limit: usize,
}

/// Result of [`Journal::open`].
#[derive(Debug)]
pub struct Opened {
    /// The journal, ready for appends.
    pub journal: Journal,
    /// Set when the file was corrupt and has been moved aside and salvaged.
    pub recovery: Option<Recovery>,
}

/// The durable event journal. One per kiosk; wrap it in a lock to share.
pub struct Journal {
    conn: Connection,
    ctx: Ctx,
    next_seq: u64,
    /// Bytes appended (estimated) since the disk budget was last measured.
    unmeasured: u64,
    /// The event count of [`Journal::stats`], counted once and then followed (see
    /// [`EventCount`]).
    count: std::cell::Cell<Option<EventCount>>,
    /// Whether this connection counts the rows deleted from `events` (a temporary trigger).
    deletes_counted: bool,
}

/// The number of events at one moment, and what moves it since: events appended (the sequence
/// numbers handed out since) and rows deleted (counted by a temporary trigger on this connection,
/// in the deleting transaction). Another connection's commit (`PRAGMA data_version`) means a
/// recount.
#[derive(Debug, Clone, Copy)]
struct EventCount {
    events: u64,
    next_seq: u64,
    deleted: i64,
    data_version: i64,
}

/// Installs the temporary trigger that counts deleted events; false when the connection cannot
/// (then [`Journal::stats`] counts every time).
fn count_deletes(conn: &Connection) -> bool {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS events_deleted (n INTEGER NOT NULL);
         INSERT INTO events_deleted (n) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM events_deleted);
         CREATE TEMP TRIGGER IF NOT EXISTS count_deleted_events AFTER DELETE ON main.events
         BEGIN UPDATE events_deleted SET n = n + 1; END;",
    )
    .is_ok()
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.ctx.path)
            .field("kiosk_id", &self.ctx.identity.kiosk_id)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

/// Everything an append needs besides the connection.
struct Ctx {
    path: PathBuf,
    identity: Identity,
    clock: Arc<dyn Clock>,
    key: DeviceKey,
    budget: Option<Budget>,
}

impl Ctx {
    fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        move |e| sqlite_error(&self.path, op, e)
    }

    fn insert(
        &self,
        tx: &Transaction<'_>,
        seq: u64,
        event: Event,
    ) -> Result<(Appended, u64), JournalError> {
        let id = Uuid::now_v7();
        let envelope = Envelope {
            id,
            kiosk_id: self.identity.kiosk_id.clone(),
            seq,
            boot_id: self.identity.boot_id,
            wall_time: self.clock.wall(),
            mono_ms: self.clock.mono_ms(),
            schema_version: event.schema_version(),
            event,
        };
        let json = serde_json::to_string(&envelope).map_err(JournalError::Encode)?;
        let body = if envelope.event.carries_personal_data() {
            self.key.seal(json.as_bytes(), id.as_bytes())
        } else {
            json
        };
        let wall_time = envelope
            .wall_time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let stored_len = (body.len() + wall_time.len()) as u64;
        tx.prepare_cached(
            "INSERT INTO events (seq, id, type, wall_time, card_token, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![
                seq as i64,
                id.to_string(),
                envelope.event.type_name(),
                wall_time,
                envelope.event.card_token().map(CardToken::as_str),
                body,
            ])
        })
        .map_err(|e| io_error(tx, &self.path, "append", e))?;
        Ok((Appended { seq, id }, ROW_OVERHEAD_BYTES + stored_len))
    }

    fn open_body(&self, seq: u64, id: &Uuid, body: String) -> Result<String, JournalError> {
        if !is_sealed(&body) {
            return Ok(body);
        }
        let decode = |source: DecodeError| JournalError::Decode {
            path: self.path.clone(),
            seq,
            source,
        };
        let plain = self
            .key
            .open(&body, id.as_bytes())
            .map_err(|e| decode(e.into()))?;
        String::from_utf8(plain.to_vec()).map_err(|e| decode(e.into()))
    }
}

/// A journal transaction: events appended and state changed here commit together or not at all.
pub struct JournalTx<'a> {
    tx: Transaction<'a>,
    ctx: &'a Ctx,
    next_seq: u64,
    /// Types of the events refused at the disk budget (counted whether or not this commits).
    refused: Vec<&'static str>,
    /// Estimated bytes this transaction adds (for when to measure the disk budget again).
    written: u64,
}

impl JournalTx<'_> {
    /// Appends an event; it becomes durable when the transaction commits. Past the soft limit of
    /// the disk budget a low-value event is refused with [`JournalError::OverBudget`] (the
    /// transaction itself stays usable).
    pub fn append(&mut self, event: Event) -> Result<Appended, JournalError> {
        if let Some(budget) = self.ctx.budget
            && budget.dropping
            && is_low_value(&event)
        {
            self.refused.push(event.type_name());
            return Err(JournalError::OverBudget {
                path: self.ctx.path.clone(),
                type_name: event.type_name(),
                budget_bytes: budget.bytes,
            });
        }
        let (appended, bytes) = self.ctx.insert(&self.tx, self.next_seq, event)?;
        self.next_seq += 1;
        self.written += bytes;
        Ok(appended)
    }

    /// Increments a named counter and returns its new value (starts at 1).
    pub fn counter_next(&mut self, name: &str) -> Result<i64, JournalError> {
        self.tx
            .prepare_cached(
                "INSERT INTO counters (name, value) VALUES (?1, 1) \
                 ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            )
            .and_then(|mut st| st.query_row([name], |r| r.get(0)))
            .map_err(self.ctx.err("counter"))
    }

    /// Raises a named counter to at least `value` (used when numbers are recovered from events).
    pub fn counter_raise(&mut self, name: &str, value: i64) -> Result<(), JournalError> {
        self.tx
            .execute(
                "INSERT INTO counters (name, value) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)",
                params![name, value],
            )
            .map(drop)
            .map_err(self.ctx.err("counter"))
    }

    /// The SQL connection inside this transaction, for state tables that change with events.
    pub fn sql(&self) -> &Connection {
        &self.tx
    }

    /// Seals personal data for a state table row (same device key as the events).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        self.ctx.key.seal(plaintext, aad)
    }
}

impl Journal {
    /// Opens (creating, migrating or recovering) the journal at `path`.
    ///
    /// A corrupt or unreadable file is moved aside (never deleted), the events still readable in it
    /// are salvaged into a fresh journal, and a `journal_recovered` event records it: the kiosk
    /// keeps serving instead of crash-looping. A file from a newer firmware is an error.
    pub fn open(
        path: &Path,
        identity: Identity,
        clock: Arc<dyn Clock>,
        key: DeviceKey,
        options: &Options,
    ) -> Result<Opened, JournalError> {
        let ctx = Ctx {
            path: path.to_owned(),
            identity,
            clock,
            key,
            budget: None,
        };
        let (mut journal, recovery) = match open_connection(path, options) {
            Ok(conn) => {
                let mut journal = Journal {
                    conn,
                    ctx,
                    next_seq: 0,
                    unmeasured: 0,
                    count: Default::default(),
                    deletes_counted: false,
                };
                journal.next_seq = journal.last_seq()? + 1;
                (journal, None)
            }
            Err(OpenFailure::Corrupt(reason)) => {
                let (journal, recovery) = recovery::recover(path, options, ctx, &reason)?;
                (journal, Some(recovery))
            }
            Err(OpenFailure::Fatal(e)) => return Err(e),
        };
        journal.deletes_counted = count_deletes(&journal.conn);
        if let Some(bytes) = options.disk_budget_bytes {
            let dropping = journal.setting(BUDGET_STATE)?.as_deref() == Some("dropping");
            let budget = Budget { bytes, dropping };
            let page_size: i64 = journal
                .conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(journal.ctx.err("configure"))?;
            let page_size = page_size.max(0) as u64;
            journal
                .conn
                .execute_batch(&format!(
                    "PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {};",
                    budget.wal_pages(page_size),
                    budget.wal_limit_bytes(page_size)
                ))
                .map_err(journal.ctx.err("configure"))?;
            journal.ctx.budget = Some(budget);
            journal.enforce_budget_logged();
        }
        Ok(Opened { journal, recovery })
    }

    /// Opens an existing journal read-only, for inspection while the kiosk runs (`kiosk events`,
    /// `kiosk status`): no migration, no recovery, appends fail with [`JournalError::ReadOnly`].
    pub fn open_read_only(path: &Path, key: DeviceKey) -> Result<Journal, JournalError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sqlite_error(path, "open read-only", e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| sqlite_error(path, "open read-only", e))?;
        let found: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| sqlite_error(path, "read schema version", e))?;
        let supported = migrations::latest(MIGRATIONS);
        if found != supported {
            let source = if found > supported {
                MigrationError::NewerSchema { found, supported }
            } else {
                MigrationError::Older { found, supported }
            };
            return Err(JournalError::Migration {
                path: path.to_owned(),
                source,
            });
        }
        let ctx = Ctx {
            path: path.to_owned(),
            identity: Identity {
                kiosk_id: String::new(),
                boot_id: Uuid::nil(),
            },
            clock: Arc::new(crate::clock::SystemClock),
            key,
            budget: None,
        };
        let mut journal = Journal {
            conn,
            ctx,
            next_seq: 0,
            unmeasured: 0,
            count: Default::default(),
            deletes_counted: false,
        };
        journal.next_seq = journal.last_seq()? + 1;
        journal.deletes_counted = count_deletes(&journal.conn);
        Ok(journal)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.ctx.path
    }

    /// The kiosk id stamped on new events.
    pub fn kiosk_id(&self) -> &str {
        &self.ctx.identity.kiosk_id
    }

    /// Changes the kiosk id stamped on new events (after enrollment).
    pub fn set_kiosk_id(&mut self, kiosk_id: String) {
        self.ctx.identity.kiosk_id = kiosk_id;
    }

    /// Appends one event durably: when this returns `Ok`, the event survives a crash or power cut.
    pub fn append(&mut self, event: Event) -> Result<Appended, JournalError> {
        self.transaction(|tx| tx.append(event))
    }

    /// Runs `f` in one transaction: its appends and state changes commit together, durably, or
    /// not at all (an `Err` from `f` rolls everything back).
    pub fn transaction<T, E>(
        &mut self,
        f: impl FnOnce(&mut JournalTx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<JournalError>,
    {
        if let Some(budget) = self.ctx.budget
            && (budget.dropping || self.unmeasured >= budget.measure_every())
        {
            self.enforce_budget_logged();
        }
        self.run_transaction(f)
    }

    /// [`Journal::transaction`] without the budget check (for the budget's own events).
    fn run_transaction<T, E>(
        &mut self,
        f: impl FnOnce(&mut JournalTx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<JournalError>,
    {
        /// How the transaction ended (the connection is borrowed until it has).
        enum End<T, E> {
            Committed(T, u64, u64),
            CommitFailed(rusqlite::Error),
            Failed(E),
        }
        let (end, refused) = {
            let path = &self.ctx.path;
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| sqlite_error(path, "begin", e))?;
            let mut jtx = JournalTx {
                tx,
                ctx: &self.ctx,
                next_seq: self.next_seq,
                refused: Vec::new(),
                written: 0,
            };
            let out = f(&mut jtx);
            let JournalTx {
                tx,
                next_seq,
                refused,
                written,
                ..
            } = jtx;
            let end = match out {
                Ok(value) => match tx.commit() {
                    Ok(()) => End::Committed(value, next_seq, written),
                    Err(e) => End::CommitFailed(e),
                },
                Err(e) => {
                    // Dropping the transaction rolls it back.
                    drop(tx);
                    End::Failed(e)
                }
            };
            (end, refused)
        };
        let out = match end {
            End::Committed(value, next_seq, written) => {
                self.next_seq = next_seq;
                self.unmeasured += written;
                Ok(value)
            }
            End::CommitFailed(e) => Err(io_error(&self.conn, &self.ctx.path, "commit", e).into()),
            End::Failed(e) => Err(e),
        };
        self.count_refused(&refused);
        out
    }

    /// Counts events refused at the budget (in their own small transaction: the refusal stands
    /// even when the caller's transaction rolled back).
    fn count_refused(&mut self, refused: &[&'static str]) {
        if refused.is_empty() {
            return;
        }
        let counted = self.conn.transaction().and_then(|tx| {
            for type_name in refused {
                tx.execute(
                    "INSERT INTO counters (name, value) VALUES (?1, 1) \
                     ON CONFLICT(name) DO UPDATE SET value = value + 1",
                    [format!("{DROPPED_COUNTER_PREFIX}{type_name}")],
                )?;
            }
            tx.commit()
        });
        if let Err(e) = counted {
            tracing::warn!(error = %e, "cannot count events dropped at the disk budget");
        }
    }

    /// [`Journal::enforce_budget`], logging a failure: a journal that cannot prune still appends.
    fn enforce_budget_logged(&mut self) {
        if let Err(e) = self.enforce_budget() {
            tracing::warn!(error = %e, "cannot enforce the journal's disk budget");
        }
    }

    /// Applies the disk budget (see the module docs): prunes acknowledged events past the soft
    /// limit, then starts or stops refusing low-value events, journaling the change.
    fn enforce_budget(&mut self) -> Result<(), JournalError> {
        let Some(budget) = self.ctx.budget else {
            return Ok(());
        };
        let path = self.ctx.path.clone();
        let measure = |conn: &Connection| {
            used_bytes(conn, &path).map_err(|e| sqlite_error(&path, "measure", e))
        };
        let mut used = measure(&self.conn)?;
        self.unmeasured = 0;
        let mut pruned = 0;
        // Past the soft limit, prune down to where refusals would stop: pruning comes in
        // batches, not one chunk per append, and refusals stop as soon as the backlog is sent.
        // While refusing, every acknowledged event is pruned down to that mark: a prune that
        // ends between the two marks (the backlog acknowledged batch by batch) must not leave
        // the kiosk refusing events with nothing left to send.
        let prune = used > budget.soft_limit() || budget.dropping;
        while prune && used > budget.resume_below() {
            let n = self
                .conn
                .prepare_cached(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events \
                     WHERE acked_at IS NOT NULL ORDER BY acked_at, seq LIMIT ?1)",
                )
                .and_then(|mut st| st.execute([PRUNE_CHUNK]))
                .map_err(|e| io_error(&self.conn, &path, "prune", e))?;
            if n == 0 {
                break;
            }
            pruned += n;
            used = measure(&self.conn)?;
        }
        if pruned > 0 {
            tracing::info!(
                pruned,
                used,
                budget = budget.bytes,
                "journal near its disk budget: oldest acknowledged events pruned"
            );
        }
        if !budget.dropping && used > budget.soft_limit() {
            tracing::warn!(
                used,
                budget = budget.bytes,
                "journal near its disk budget with the backlog unsent: dropping low-value events"
            );
            self.set_dropping(
                true,
                DeviceHealth::Degraded,
                Some(format!(
                    "journal uses {used} of its {} byte disk budget with every event unsent: new \
                     card_tapped, customer_identified, campaign_shown and device_log events are \
                     dropped (counted in kiosk status); tickets, turns, registrations and \
                     consents are kept; check the link to the CRM",
                    budget.bytes
                )),
            )?;
        } else if budget.dropping && used <= budget.resume_below() {
            tracing::info!(
                used,
                budget = budget.bytes,
                "journal back within its disk budget"
            );
            self.set_dropping(false, DeviceHealth::Ok, None)?;
        }
        Ok(())
    }

    fn set_dropping(
        &mut self,
        dropping: bool,
        status: DeviceHealth,
        reason: Option<String>,
    ) -> Result<(), JournalError> {
        // Refusals follow the new state at once, also for the status event itself.
        let before = self.ctx.budget;
        if let Some(b) = &mut self.ctx.budget {
            b.dropping = dropping;
        }
        let written = self.run_transaction(|tx| {
            tx.sql()
                .execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![BUDGET_STATE, if dropping { "dropping" } else { "ok" }],
                )
                .map_err(tx.ctx.err("write setting"))?;
            tx.append(Event::DeviceStatusChanged(DeviceStatusChanged {
                device: DeviceKind::Storage,
                status,
                reason,
            }))
        });
        if written.is_err() {
            self.ctx.budget = before;
        }
        written.map(drop)
    }

    /// The oldest unacknowledged events in sequence order: at most `max_events`, and at most
    /// `max_bytes` of JSON (but always at least one event when any is pending). Sealed bodies are
    /// opened: this is what goes to the endpoint.
    pub fn pending(
        &self,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredEvent>, JournalError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT seq, id, type, wall_time, body FROM outbox ORDER BY seq LIMIT ?1",
            )
            .map_err(self.ctx.err("read outbox"))?;
        let mut rows = st
            .query([max_events as i64])
            .map_err(self.ctx.err("read outbox"))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = rows.next().map_err(self.ctx.err("read outbox"))? {
            let (seq, id, type_name, wall_time, body) =
                read_row(row).map_err(self.ctx.err("read outbox"))?;
            let sealed = is_sealed(&body);
            let body = self.ctx.open_body(seq, &id, body)?;
            bytes += body.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(StoredEvent {
                seq,
                id,
                type_name,
                wall_time,
                acked_at: None,
                body,
                sealed,
            });
        }
        Ok(out)
    }

    /// Marks events acknowledged by the endpoint (contiguous runs become one range update).
    /// Returns how many were newly acknowledged.
    pub fn acknowledge(&mut self, seqs: &[u64]) -> Result<usize, JournalError> {
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let now = self.ctx.clock.wall().unix_timestamp();
        let path = self.ctx.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| sqlite_error(&path, "begin", e))?;
        let mut changed = 0;
        {
            let mut st = tx
                .prepare_cached(
                    "UPDATE events SET acked_at = ?1 WHERE seq BETWEEN ?2 AND ?3 AND acked_at IS NULL",
                )
                .map_err(|e| sqlite_error(&path, "acknowledge", e))?;
            for (first, last) in ranges(&sorted) {
                changed += st
                    .execute(params![now, first as i64, last as i64])
                    .map_err(|e| sqlite_error(&path, "acknowledge", e))?;
            }
        }
        tx.commit()
            .map_err(|e| io_error(&self.conn, &path, "commit", e))?;
        // Acknowledged events are what the budget prunes first.
        self.enforce_budget_logged();
        Ok(changed)
    }

    /// Moves a pending event to the dead letters with the endpoint's reason and journals an
    /// `event_dead_lettered` alert, in one transaction: the queue moves on, nothing is dropped.
    pub fn dead_letter(&mut self, seq: u64, reason: &str) -> Result<Appended, JournalError> {
        let now = self.ctx.clock.wall().unix_timestamp();
        self.transaction(|tx| {
            let path = &tx.ctx.path;
            let moved = tx
                .tx
                .execute(
                    "INSERT INTO dead_letters (seq, id, type, wall_time, body, reason, dead_at) \
                     SELECT seq, id, type, wall_time, body, ?2, ?3 FROM events \
                     WHERE seq = ?1 AND acked_at IS NULL",
                    params![seq as i64, reason, now],
                )
                .map_err(|e| sqlite_error(path, "dead-letter", e))?;
            if moved == 0 {
                return Err(JournalError::NoSuchEvent {
                    path: path.clone(),
                    seq,
                });
            }
            let id: String = tx
                .tx
                .query_row("SELECT id FROM events WHERE seq = ?1", [seq as i64], |r| {
                    r.get(0)
                })
                .map_err(|e| sqlite_error(path, "dead-letter", e))?;
            tx.tx
                .execute("DELETE FROM events WHERE seq = ?1", [seq as i64])
                .map_err(|e| sqlite_error(path, "dead-letter", e))?;
            tx.append(Event::EventDeadLettered(EventDeadLettered {
                event_id: Uuid::parse_str(&id).unwrap_or_default(),
                seq,
                reason: reason.to_owned(),
            }))
        })
    }

    /// The dead letters, newest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, JournalError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT seq, id, type, reason, dead_at FROM dead_letters ORDER BY seq DESC LIMIT ?1",
            )
            .map_err(self.ctx.err("read dead letters"))?;
        st.query_map([limit as i64], |r| {
            Ok(DeadLetter {
                seq: r.get::<_, i64>(0)? as u64,
                id: Uuid::parse_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                type_name: r.get(2)?,
                reason: r.get(3)?,
                dead_at: r.get(4)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.ctx.err("read dead letters"))
    }

    /// The newest events (for `kiosk events`), newest first. Sealed bodies stay sealed.
    pub fn list(&self, filter: ListFilter) -> Result<Vec<StoredEvent>, JournalError> {
        let sql = if filter.pending_only {
            "SELECT seq, id, type, wall_time, body, acked_at FROM events \
             WHERE acked_at IS NULL ORDER BY seq DESC LIMIT ?1"
        } else {
            "SELECT seq, id, type, wall_time, body, acked_at FROM events ORDER BY seq DESC LIMIT ?1"
        };
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(self.ctx.err("list"))?;
        st.query_map([filter.limit as i64], |r| {
            let (seq, id, type_name, wall_time, body) = read_row(r)?;
            let sealed = is_sealed(&body);
            Ok(StoredEvent {
                seq,
                id,
                type_name,
                wall_time,
                acked_at: r.get(5)?,
                body,
                sealed,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.ctx.err("list"))
    }

    /// Reads one event's envelope back (opening it if sealed).
    pub fn envelope(&self, seq: u64) -> Result<Option<Envelope>, JournalError> {
        let row = self
            .conn
            .query_row(
                "SELECT seq, id, type, wall_time, body FROM events WHERE seq = ?1",
                [seq as i64],
                read_row,
            )
            .optional()
            .map_err(self.ctx.err("read"))?;
        let Some((seq, id, _, _, body)) = row else {
            return Ok(None);
        };
        let json = self.ctx.open_body(seq, &id, body)?;
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| JournalError::Decode {
                path: self.ctx.path.clone(),
                seq,
                source: e.into(),
            })
    }

    /// Deletes acknowledged events older than `retention_days`; returns how many.
    pub fn prune(&mut self, retention_days: u32) -> Result<usize, JournalError> {
        let cutoff = self.ctx.clock.wall().unix_timestamp() - i64::from(retention_days) * 86_400;
        self.conn
            .execute(
                "DELETE FROM events WHERE acked_at IS NOT NULL AND acked_at < ?1",
                [cutoff],
            )
            .map_err(self.ctx.err("prune"))
    }

    /// Erases a customer from the kiosk (an erasure from the CRM): pending events about them that
    /// carry personal data are deleted, acknowledged ones too, their cached profile goes, the token
    /// is remembered as erased, and a `customer_erased` event records how many events were removed.
    pub fn erase_customer(&mut self, token: &CardToken) -> Result<Appended, JournalError> {
        let now = self.ctx.clock.wall();
        let now_text = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let appended = self.transaction(|tx| {
            let path = &tx.ctx.path;
            let err = |e| sqlite_error(path, "erase", e);
            let mut removed = 0usize;
            for type_name in PERSONAL_EVENT_TYPES {
                removed += tx
                    .tx
                    .execute(
                        "DELETE FROM events WHERE card_token = ?1 AND type = ?2",
                        params![token.as_str(), type_name],
                    )
                    .map_err(err)?;
            }
            tx.tx
                .execute(
                    "DELETE FROM profiles WHERE card_token = ?1",
                    [token.as_str()],
                )
                .map_err(err)?;
            redact_store_ops(tx, token)?;
            let coupons = format!("{}%", crate::store_db::customer_coupons_prefix(token));
            tx.tx
                .execute("DELETE FROM counters WHERE name LIKE ?1", [coupons])
                .map_err(err)?;
            tx.tx
                .execute(
                    "INSERT INTO erased_tokens (card_token, erased_at) VALUES (?1, ?2) \
                     ON CONFLICT(card_token) DO NOTHING",
                    params![token.as_str(), now_text],
                )
                .map_err(err)?;
            tx.append(Event::CustomerErased(CustomerErased {
                card_token: token.clone(),
                redacted_events: u32::try_from(removed).unwrap_or(u32::MAX),
            }))
        })?;
        // Erasure is physical: `secure_delete` zeroed the deleted rows in the file, but the WAL
        // still holds the pages as they were. Copy the new ones back and cut it to zero (best
        // effort: a reader mid-snapshot holds it back, and the next checkpoint does it then).
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
            Ok(0) => {}
            Ok(_) => tracing::info!("the WAL is busy: erased rows leave it at the next checkpoint"),
            Err(e) => tracing::warn!(error = %e, "cannot checkpoint the WAL after an erasure"),
        }
        Ok(appended)
    }

    /// Counts for status pages and metrics.
    pub fn stats(&self) -> Result<Stats, JournalError> {
        let err = self.ctx.err("stats");
        let events = self.event_count()?;
        let Backlog {
            events: pending,
            oldest_wall_time: oldest_pending_wall_time,
        } = self.backlog()?;
        let dead_letters: i64 = self
            .conn
            .query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))
            .map_err(&err)?;
        let file_bytes = [self.ctx.path.clone(), wal_path(&self.ctx.path)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let dropped: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(sum(value), 0) FROM counters WHERE name LIKE ?1",
                [format!("{DROPPED_COUNTER_PREFIX}%")],
                |r| r.get(0),
            )
            .map_err(&err)?;
        let dropping_low_value = self.setting(BUDGET_STATE)?.as_deref() == Some("dropping");
        Ok(Stats {
            events,
            pending,
            oldest_pending_wall_time,
            dead_letters: dead_letters as u64,
            last_seq: self.next_seq.saturating_sub(1),
            file_bytes,
            dropped_over_budget: dropped.max(0) as u64,
            dropping_low_value,
        })
    }

    /// The number of events: counted (every row read) on the first call, then followed from what
    /// this connection appended and deleted since (see [`EventCount`]).
    fn event_count(&self) -> Result<u64, JournalError> {
        let err = self.ctx.err("count events");
        let data_version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(&err)?;
        let deleted: Option<i64> = if self.deletes_counted {
            Some(
                self.conn
                    .prepare_cached("SELECT n FROM temp.events_deleted")
                    .and_then(|mut st| st.query_row([], |r| r.get(0)))
                    .map_err(&err)?,
            )
        } else {
            None
        };
        if let (Some(base), Some(deleted)) = (self.count.get(), deleted)
            && base.data_version == data_version
        {
            let appended = self.next_seq - base.next_seq;
            let removed = u64::try_from(deleted - base.deleted).unwrap_or(0);
            return Ok((base.events + appended).saturating_sub(removed));
        }
        let events: i64 = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(&err)?;
        let events = events.max(0) as u64;
        if let Some(deleted) = deleted {
            self.count.set(Some(EventCount {
                events,
                next_seq: self.next_seq,
                deleted,
                data_version,
            }));
        }
        Ok(events)
    }

    /// Events not yet acknowledged and the oldest one's device wall time, read from the pending
    /// index alone: the cost follows the backlog, not the journal's size (the sync worker asks
    /// up to once a second while it holds the journal).
    pub fn backlog(&self) -> Result<Backlog, JournalError> {
        let err = self.ctx.err("backlog");
        let events: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM events WHERE acked_at IS NULL")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(&err)?;
        let oldest_wall_time = self
            .conn
            .prepare_cached("SELECT wall_time FROM outbox ORDER BY seq LIMIT 1")
            .and_then(|mut st| st.query_row([], |r| r.get(0)).optional())
            .map_err(&err)?;
        Ok(Backlog {
            events: events.max(0) as u64,
            oldest_wall_time,
        })
    }

    /// Device wall time of the oldest event still waiting after `seq` (`None`: none waits):
    /// the age of the backlog once the batch ending at `seq` is in.
    pub fn oldest_after(&self, seq: u64) -> Result<Option<String>, JournalError> {
        self.conn
            .prepare_cached("SELECT wall_time FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT 1")
            .and_then(|mut st| {
                st.query_row([i64::try_from(seq).unwrap_or(i64::MAX)], |r| r.get(0))
                    .optional()
            })
            .map_err(self.ctx.err("oldest pending"))
    }

    /// Runs `PRAGMA integrity_check`; an empty list means the database is sound.
    pub fn integrity_check(&self) -> Result<Vec<String>, JournalError> {
        integrity_problems(&self.conn, "integrity_check").map_err(self.ctx.err("integrity check"))
    }

    /// Reads a setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, JournalError> {
        self.conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.ctx.err("read setting"))
    }

    /// Writes a setting durably.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), JournalError> {
        self.conn
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(self.ctx.err("write setting"))
    }

    /// Reads a counter (0 when never incremented).
    pub fn counter(&self, name: &str) -> Result<i64, JournalError> {
        self.conn
            .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(self.ctx.err("read counter"))
    }

    /// Read-only SQL access for the modules that own state tables (queue, caches).
    pub fn sql(&self) -> &Connection {
        &self.conn
    }

    /// Opens a sealed value with the device key (cached profiles, sealed turn records).
    pub fn open_sealed(
        &self,
        sealed: &str,
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
        self.ctx.key.open(sealed, aad)
    }

    /// Seals a value with the device key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        self.ctx.key.seal(plaintext, aad)
    }

    fn last_seq(&self) -> Result<u64, JournalError> {
        self.conn
            .query_row(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), \
                            coalesce((SELECT max(seq) FROM dead_letters), 0))",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
            .map_err(self.ctx.err("read sequence"))
    }
}

/// Event types whose payload carries personal data (see `Event::carries_personal_data`): sealed at
/// rest, deleted by an erasure.
pub const PERSONAL_EVENT_TYPES: &[&str] = &["customer_registered"];

type Row = (u64, Uuid, String, String, String);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let id: String = r.get(1)?;
    let id = Uuid::parse_str(&id).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok((
        r.get::<_, i64>(0)? as u64,
        id,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
    ))
}

/// Contiguous runs of a sorted, deduplicated list.
fn ranges(sorted: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &s in sorted {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn integrity_problems(conn: &Connection, pragma: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(&format!("PRAGMA {pragma}"))?;
    let rows: Vec<String> = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows.into_iter().filter(|r| r != "ok").collect())
}

/// Why opening failed.
enum OpenFailure {
    /// The file is corrupt or unreadable: recover.
    Corrupt(String),
    /// Anything else: report.
    Fatal(JournalError),
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Opens, configures, checks and migrates the database at `path`.
fn open_connection(path: &Path, options: &Options) -> Result<Connection, OpenFailure> {
    let fatal = |op, e| OpenFailure::Fatal(sqlite_error(path, op, e));
    let classify = |op, e: rusqlite::Error| {
        if is_corruption(&e) {
            OpenFailure::Corrupt(format!("{op}: {e}"))
        } else {
            fatal(op, e)
        }
    };
    let existed = path.exists();
    if existed && std::fs::File::open(path).is_err() {
        return Err(OpenFailure::Corrupt("file cannot be read".into()));
    }
    // Events with card tokens and sealed personal data: owner only (0600, and refused when
    // someone opened it to others).
    kiosk_types::private_file::ensure_private(path)
        .map_err(|e| OpenFailure::Fatal(JournalError::Private(e)))?;
    let mut conn = Connection::open(path).map_err(|e| classify("open", e))?;
    configure(&conn, options).map_err(|e| classify("configure", e))?;
    if existed {
        let small = std::fs::metadata(path)
            .map(|m| m.len() <= options.quick_check_max_bytes)
            .unwrap_or(true);
        if small {
            match integrity_problems(&conn, "quick_check") {
                Ok(problems) if problems.is_empty() => {}
                Ok(problems) => return Err(OpenFailure::Corrupt(problems.join("; "))),
                Err(e) => return Err(classify("quick check", e)),
            }
        }
    }
    match migrations::migrate(&mut conn, MIGRATIONS) {
        Ok(_) => Ok(conn),
        Err(MigrationError::Failed { source, .. }) | Err(MigrationError::Version(source))
            if is_corruption(&source) =>
        {
            Err(OpenFailure::Corrupt(source.to_string()))
        }
        Err(source) => Err(OpenFailure::Fatal(JournalError::Migration {
            path: path.to_owned(),
            source,
        })),
    }
}

fn configure(conn: &Connection, options: &Options) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "journal could not switch to WAL mode");
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {};
         PRAGMA foreign_keys = ON;
         PRAGMA trusted_schema = OFF;
         PRAGMA secure_delete = ON;
         PRAGMA journal_size_limit = 67108864;",
        options.synchronous.pragma()
    ))?;
    // Touch the schema so a file that is not a database fails here, not at the first append.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests;

/// Rewrites the store ops that name `token` without it (bodies are sealed with the device key, so
/// the token was never readable on disk; after this it is not even in the ciphertext).
fn redact_store_ops(tx: &mut JournalTx<'_>, token: &CardToken) -> Result<(), JournalError> {
    let path = &tx.ctx.path;
    let err = |e| sqlite_error(path, "erase store ops", e);
    let rows: Vec<(String, i64, String)> = {
        let mut st = tx
            .tx
            .prepare("SELECT origin, seq, body FROM store_ops")
            .map_err(err)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)?
    };
    for (origin, seq, body) in rows {
        let aad = store_op_aad(&origin, seq);
        let Ok(plain) = tx.ctx.key.open(&body, aad.as_bytes()) else {
            continue;
        };
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&plain) else {
            continue;
        };
        let named = value
            .pointer("/step/card_token")
            .and_then(|v| v.as_str())
            .is_some_and(|t| t == token.as_str());
        if !named {
            continue;
        }
        if let Some(step) = value.get_mut("step").and_then(|s| s.as_object_mut()) {
            step.insert("card_token".to_owned(), serde_json::Value::Null);
        }
        let json = serde_json::to_vec(&value).unwrap_or_default();
        let sealed = tx.ctx.key.seal(&json, aad.as_bytes());
        tx.tx
            .execute(
                "UPDATE store_ops SET body = ?3 WHERE origin = ?1 AND seq = ?2",
                params![origin, seq, sealed],
            )
            .map_err(err)?;
    }
    Ok(())
}

/// The associated data a store op is sealed with: its identity, so a body cannot be moved to
/// another row.
pub fn store_op_aad(origin: &str, seq: i64) -> String {
    format!("store_op:{origin}:{seq}")
}
