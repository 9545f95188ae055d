//! Start-up recovery of a corrupt or unreadable journal: move it aside (never delete it), salvage
//! what can still be read into a fresh journal, record a `journal_recovered` event, keep serving.
//!
//! Sequence numbers stay unique: the fresh journal continues after the highest number the old
//! file remembers in `sqlite_sequence`; when that page is unreadable too, it continues after the
//! highest salvaged number plus [`SEQ_GAP_AFTER_RECOVERY`], so an event that was sent but could
//! not be salvaged never shares its number with a new one.

use std::path::{Path, PathBuf};

use kiosk_protocol::events::{Envelope, Event, JournalRecovered};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, params_from_iter};

use super::{Ctx, Journal, JournalError, OpenFailure, Options, open_connection, sqlite_error};
use crate::crypto::is_sealed;

/// How far the sequence jumps when the old file's sequence counter could not be read.
pub const SEQ_GAP_AFTER_RECOVERY: u64 = 1 << 20;

/// Rows read per query while salvaging.
const CHUNK: i64 = 512;

/// Tables copied as they are (besides `events`, which is validated row by row).
const STATE_TABLES: &[&str] = &[
    "dead_letters",
    "counters",
    "settings",
    "turns",
    "profiles",
    "campaigns",
    "erased_tokens",
];

/// What a recovery did, for the log, `kiosk status` and the `journal_recovered` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Where the damaged file now is (kept for forensics; never deleted by the kiosk).
    pub moved_to: PathBuf,
    /// What was wrong with it.
    pub reason: String,
    /// Events copied into the fresh journal (acknowledged state kept).
    pub salvaged_events: u64,
    /// Rows that failed validation, plus damaged regions that could not be read at all.
    pub unreadable_rows: u64,
    /// Rows of state tables (counters, turns, caches, dead letters) copied.
    pub salvaged_state_rows: u64,
    /// The first sequence number the fresh journal uses.
    pub next_seq: u64,
}

pub(super) fn recover(
    path: &Path,
    options: &Options,
    ctx: Ctx,
    reason: &str,
) -> Result<(Journal, Recovery), JournalError> {
    let moved_to = move_aside(path)?;
    tracing::error!(
        journal = %path.display(),
        moved_to = %moved_to.display(),
        %reason,
        "journal is corrupt or unreadable: moved aside, salvaging what can be read into a fresh journal"
    );
    let conn = match open_connection(path, options) {
        Ok(conn) => conn,
        Err(OpenFailure::Fatal(e)) => return Err(e),
        Err(OpenFailure::Corrupt(r)) => {
            return Err(JournalError::Sqlite {
                path: path.to_owned(),
                op: "create a fresh journal",
                source: rusqlite::Error::InvalidParameterName(r),
            });
        }
    };
    let mut salvage = Salvage::default();
    if let Ok(old) = Connection::open_with_flags(&moved_to, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        salvage.events(&old, &conn, &ctx);
        for table in STATE_TABLES {
            salvage.table(&old, &conn, table);
        }
    }
    let next_seq = match salvage.old_sequence {
        Some(old) => old.max(salvage.max_seq) + 1,
        None => salvage.max_seq + SEQ_GAP_AFTER_RECOVERY + 1,
    };
    set_sequence(&conn, next_seq - 1).map_err(|e| sqlite_error(path, "set sequence", e))?;
    let mut journal = Journal {
        conn,
        ctx,
        next_seq,
        unmeasured: 0,
        count: Default::default(),
        deletes_counted: false,
    };
    journal.append(Event::JournalRecovered(JournalRecovered {
        moved_to: moved_to.display().to_string(),
        error: reason.to_owned(),
        salvaged_events: salvage.events,
    }))?;
    let recovery = Recovery {
        moved_to,
        reason: reason.to_owned(),
        salvaged_events: salvage.events,
        unreadable_rows: salvage.unreadable,
        salvaged_state_rows: salvage.state_rows,
        next_seq,
    };
    tracing::error!(
        salvaged_events = recovery.salvaged_events,
        unreadable_rows = recovery.unreadable_rows,
        salvaged_state_rows = recovery.salvaged_state_rows,
        next_seq = recovery.next_seq,
        "journal recovered"
    );
    Ok((journal, recovery))
}

/// Renames the database and its WAL/SHM companions to `<name>.corrupt-<unix time>[-n]`.
fn move_aside(path: &Path) -> Result<PathBuf, JournalError> {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let base = path.as_os_str().to_owned();
    let mut n = 0;
    let target = loop {
        let mut candidate = base.clone();
        candidate.push(format!(".corrupt-{stamp}"));
        if n > 0 {
            candidate.push(format!("-{n}"));
        }
        let candidate = PathBuf::from(candidate);
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
    };
    std::fs::rename(path, &target).map_err(|source| JournalError::MoveAside {
        path: path.to_owned(),
        moved_to: target.clone(),
        source,
    })?;
    for suffix in ["-wal", "-shm"] {
        let mut from = base.clone();
        from.push(suffix);
        let mut to = target.as_os_str().to_owned();
        to.push(suffix);
        if Path::new(&from).exists() {
            // The WAL holds committed events not yet checkpointed: it must follow the file.
            std::fs::rename(&from, &to).map_err(|source| JournalError::MoveAside {
                path: PathBuf::from(&from),
                moved_to: PathBuf::from(&to),
                source,
            })?;
        }
    }
    Ok(target)
}

fn set_sequence(conn: &Connection, seq: u64) -> rusqlite::Result<()> {
    let updated = conn.execute(
        "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'events'",
        [seq as i64],
    )?;
    if updated == 0 {
        conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?1)",
            [seq as i64],
        )?;
    }
    Ok(())
}

#[derive(Default)]
struct Salvage {
    events: u64,
    unreadable: u64,
    state_rows: u64,
    max_seq: u64,
    old_sequence: Option<u64>,
}

type OldEvent = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<i64>,
);

impl Salvage {
    fn events(&mut self, old: &Connection, new: &Connection, ctx: &Ctx) {
        self.old_sequence = old
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .ok()
            .map(|v| v as u64);
        let upper = self.old_sequence.or_else(|| {
            old.query_row("SELECT max(seq) FROM events", [], |r| r.get::<_, i64>(0))
                .ok()
                .map(|v| v as u64)
        });
        let mut cursor: i64 = 0;
        let mut failures = 0u32;
        let mut streak = 0u32;
        let mut step: i64 = 1;
        loop {
            let (rows, failed) = read_chunk(old, cursor);
            if !rows.is_empty() {
                streak = 0;
                step = 1;
            }
            let empty = rows.is_empty();
            for row in rows {
                cursor = cursor.max(row.0);
                if self.insert_event(new, ctx, row) {
                    self.events += 1;
                } else {
                    self.unreadable += 1;
                }
            }
            if !failed {
                if empty {
                    break;
                }
                continue;
            }
            // A damaged page: probe forward for the next readable row, one number at a time at
            // first (a leaf holds a dozen events), then faster when whole subtrees are gone.
            failures += 1;
            streak += 1;
            if streak % 64 == 0 {
                step = step.saturating_mul(2);
            }
            cursor = cursor.saturating_add(step);
            match upper {
                Some(hi) if (cursor as u64) < hi && failures < 1 << 20 => {}
                _ => break,
            }
        }
        if failures > 0 {
            self.unreadable += 1;
        }
    }

    fn insert_event(&mut self, new: &Connection, ctx: &Ctx, row: OldEvent) -> bool {
        let (seq, id, type_name, wall_time, card_token, body, acked_at) = row;
        let Ok(uuid) = uuid::Uuid::parse_str(&id) else {
            return false;
        };
        let Ok(json) = ctx.open_body(seq as u64, &uuid, body.clone()) else {
            return false;
        };
        let valid = serde_json::from_str::<Envelope>(&json)
            .is_ok_and(|e| e.id == uuid && e.seq == seq as u64 && e.event.type_name() == type_name);
        if !valid
            || (is_sealed(&body) && !super::PERSONAL_EVENT_TYPES.contains(&type_name.as_str()))
        {
            return false;
        }
        let inserted = new.execute(
            "INSERT OR IGNORE INTO events (seq, id, type, wall_time, card_token, body, acked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![seq, id, type_name, wall_time, card_token, body, acked_at],
        );
        if inserted.is_ok_and(|n| n == 1) {
            self.max_seq = self.max_seq.max(seq as u64);
            true
        } else {
            false
        }
    }

    /// Copies the rows of a state table that can still be read, column by column as the fresh
    /// schema names them; stops at the first damaged page of that table.
    fn table(&mut self, old: &Connection, new: &Connection, table: &str) {
        let Ok(columns) = columns(new, table) else {
            return;
        };
        let list = columns.join(", ");
        let placeholders = vec!["?"; columns.len()].join(", ");
        let Ok(mut select) = old.prepare(&format!("SELECT {list} FROM {table}")) else {
            return;
        };
        let Ok(mut rows) = select.query([]) else {
            return;
        };
        let insert = format!("INSERT OR IGNORE INTO {table} ({list}) VALUES ({placeholders})");
        loop {
            match rows.next() {
                Ok(Some(row)) => {
                    let values: Vec<Value> = (0..columns.len())
                        .map(|i| row.get::<_, Value>(i).unwrap_or(Value::Null))
                        .collect();
                    if new
                        .execute(&insert, params_from_iter(values))
                        .is_ok_and(|n| n == 1)
                    {
                        self.state_rows += 1;
                        if table == "dead_letters" {
                            if let Ok(seq) = row.get::<_, i64>(0) {
                                self.max_seq = self.max_seq.max(seq as u64);
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.unreadable += 1;
                    break;
                }
            }
        }
    }
}

fn read_chunk(old: &Connection, after: i64) -> (Vec<OldEvent>, bool) {
    let mut out = Vec::new();
    let Ok(mut st) = old.prepare(
        "SELECT seq, id, type, wall_time, card_token, body, acked_at FROM events \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    ) else {
        return (out, true);
    };
    let Ok(mut rows) = st.query([after, CHUNK]) else {
        return (out, true);
    };
    loop {
        match rows.next() {
            Ok(Some(r)) => {
                let row = (|| {
                    Ok::<_, rusqlite::Error>((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })();
                match row {
                    Ok(row) => out.push(row),
                    Err(_) => return (out, true),
                }
            }
            Ok(None) => return (out, false),
            Err(_) => return (out, true),
        }
    }
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = st
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names)
}
