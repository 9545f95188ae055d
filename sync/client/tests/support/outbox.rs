//! A small but real SQLite outbox and feed sink for the tests and the bench: the firmware's journal
//! is the production implementation of the same traits.

use std::path::Path;
use std::sync::Mutex;

use kiosk_protocol::Envelope;
use kiosk_protocol::events::{Event, EventDeadLettered, TicketIssued};
use kiosk_protocol::wire::FeedItem;
use kiosk_sync::{Backlog, BoxError, FeedSink, Outbox, OutboxEvent};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use uuid::Uuid;

/// Outbox and feed sink over one SQLite file.
pub struct SqliteOutbox {
    conn: Mutex<Connection>,
    kiosk_id: String,
    boot_id: Uuid,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    wall_time TEXT NOT NULL,
    json TEXT NOT NULL,
    acked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(seq) WHERE acked = 0;
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    json TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feed_state (k INTEGER PRIMARY KEY CHECK (k = 0), cursor INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS feed_items (n INTEGER PRIMARY KEY AUTOINCREMENT, json TEXT NOT NULL);
";

impl SqliteOutbox {
    pub fn open(path: &Path, kiosk_id: &str) -> Self {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        SqliteOutbox {
            conn: Mutex::new(conn),
            kiosk_id: kiosk_id.to_owned(),
            boot_id: Uuid::now_v7(),
        }
    }

    fn next_seq(conn: &Connection) -> u64 {
        let max: i64 = conn
            .query_row(
                "SELECT max(coalesce((SELECT max(seq) FROM outbox), 0), coalesce((SELECT max(seq) FROM dead_letters), 0))",
                [],
                |r| r.get(0),
            )
            .unwrap();
        max as u64 + 1
    }

    fn envelope(&self, seq: u64, event: Event) -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            kiosk_id: self.kiosk_id.clone(),
            seq,
            boot_id: self.boot_id,
            wall_time: OffsetDateTime::now_utc(),
            mono_ms: seq * 10,
            schema_version: event.schema_version(),
            event,
        }
    }

    fn insert(conn: &Connection, env: &Envelope, json: &str) {
        conn.execute(
            "INSERT INTO outbox (seq, id, wall_time, json) VALUES (?1, ?2, ?3, ?4)",
            params![
                env.seq as i64,
                env.id.to_string(),
                env.wall_time
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap(),
                json
            ],
        )
        .unwrap();
    }

    /// Journals one event (committed when this returns).
    pub fn append(&self, event: Event) -> Envelope {
        let conn = self.conn.lock().unwrap();
        let env = self.envelope(Self::next_seq(&conn), event);
        Self::insert(&conn, &env, &serde_json::to_string(&env).unwrap());
        env
    }

    /// Journals `n` ticket events in one transaction; returns their ids.
    pub fn append_tickets(&self, n: usize) -> Vec<Uuid> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction().unwrap();
        let first = Self::next_seq(&tx);
        let mut ids = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let env = self.envelope(first + i, ticket(first + i));
            Self::insert(&tx, &env, &serde_json::to_string(&env).unwrap());
            ids.push(env.id);
        }
        tx.commit().unwrap();
        ids
    }

    /// Journals raw JSON as an event (for events the endpoint must reject); returns its seq.
    pub fn append_raw(&self, make_json: impl FnOnce(&Envelope) -> String) -> Envelope {
        let conn = self.conn.lock().unwrap();
        let env = self.envelope(Self::next_seq(&conn), ticket(0));
        Self::insert(&conn, &env, &make_json(&env));
        env
    }

    /// Ids of every event ever journaled (pending, acknowledged or dead-lettered).
    pub fn all_ids(&self) -> Vec<Uuid> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn
            .prepare("SELECT id FROM outbox UNION ALL SELECT id FROM dead_letters")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|s| s.unwrap().parse().unwrap())
            .collect()
    }

    pub fn acknowledged_count(&self) -> u64 {
        let conn = self.conn.lock().unwrap();
        conn.query_row("SELECT count(*) FROM outbox WHERE acked = 1", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as u64
    }

    /// (seq, reason) of every dead-lettered event.
    pub fn dead_letters(&self) -> Vec<(u64, String)> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn
            .prepare("SELECT seq, reason FROM dead_letters ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Every feed item applied, in order.
    pub fn feed_items(&self) -> Vec<FeedItem> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn
            .prepare("SELECT json FROM feed_items ORDER BY n")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|s| serde_json::from_str(&s.unwrap()).unwrap())
            .collect()
    }
}

/// A realistic ticket event (about 450 bytes of envelope JSON).
pub fn ticket(n: u64) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id: Uuid::now_v7(),
        turn: format!("A-{:03}", n % 1000),
        service: "A".into(),
        number: (n % 1000) as u32,
        business_day: "2026-11-23".into(),
        priority: n % 17 == 0,
        position: (n % 9) as u32,
        estimated_wait_s: 120,
        card_token: None,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

impl Outbox for SqliteOutbox {
    fn pending(&self, max_events: usize, max_bytes: usize) -> Result<Vec<OutboxEvent>, BoxError> {
        let conn = self.conn.lock().map_err(|_| "outbox lock poisoned")?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, id, json FROM outbox WHERE acked = 0 ORDER BY seq LIMIT ?1",
        )?;
        let mut rows = stmt.query([max_events as i64])?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = rows.next()? {
            let json: String = row.get(2)?;
            if !out.is_empty() && bytes + json.len() > max_bytes {
                break;
            }
            bytes += json.len();
            out.push(OutboxEvent {
                seq: row.get::<_, i64>(0)? as u64,
                id: row.get::<_, String>(1)?.parse()?,
                json,
            });
        }
        Ok(out)
    }

    fn acknowledge(&self, seqs: &[u64]) -> Result<(), BoxError> {
        let mut conn = self.conn.lock().map_err(|_| "outbox lock poisoned")?;
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("UPDATE outbox SET acked = 1 WHERE seq = ?1")?;
            for seq in seqs {
                stmt.execute([*seq as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn dead_letter(&self, seq: u64, reason: &str) -> Result<(), BoxError> {
        let mut conn = self.conn.lock().map_err(|_| "outbox lock poisoned")?;
        let tx = conn.transaction()?;
        let row: Option<(String, String)> = tx
            .query_row(
                "SELECT id, json FROM outbox WHERE seq = ?1 AND acked = 0",
                [seq as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, json)) = row else {
            return Ok(());
        };
        tx.execute(
            "INSERT INTO dead_letters (seq, id, json, reason) VALUES (?1, ?2, ?3, ?4)",
            params![seq as i64, id, json, reason],
        )?;
        tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq as i64])?;
        let alert = self.envelope(
            Self::next_seq(&tx),
            Event::EventDeadLettered(EventDeadLettered {
                event_id: id.parse()?,
                seq,
                reason: reason.to_owned(),
            }),
        );
        Self::insert(&tx, &alert, &serde_json::to_string(&alert)?);
        tx.commit()?;
        Ok(())
    }

    fn backlog(&self) -> Result<Backlog, BoxError> {
        let conn = self.conn.lock().map_err(|_| "outbox lock poisoned")?;
        let (events, oldest): (i64, Option<String>) = conn.query_row(
            "SELECT count(*), (SELECT wall_time FROM outbox WHERE acked = 0 ORDER BY seq LIMIT 1) FROM outbox WHERE acked = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Backlog {
            events: events as u64,
            oldest_wall_time: oldest,
        })
    }
}

impl FeedSink for SqliteOutbox {
    fn cursor(&self) -> Result<Option<u64>, BoxError> {
        let conn = self.conn.lock().map_err(|_| "outbox lock poisoned")?;
        Ok(conn
            .query_row("SELECT cursor FROM feed_state WHERE k = 0", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .map(|c| c as u64))
    }

    fn apply(&self, items: Vec<FeedItem>, next_cursor: u64) -> Result<(), BoxError> {
        let mut conn = self.conn.lock().map_err(|_| "outbox lock poisoned")?;
        let tx = conn.transaction()?;
        for item in &items {
            tx.execute(
                "INSERT INTO feed_items (json) VALUES (?1)",
                [serde_json::to_string(item)?],
            )?;
        }
        tx.execute(
            "INSERT INTO feed_state (k, cursor) VALUES (0, ?1) ON CONFLICT (k) DO UPDATE SET cursor = excluded.cursor",
            [next_cursor as i64],
        )?;
        tx.commit()?;
        Ok(())
    }
}
