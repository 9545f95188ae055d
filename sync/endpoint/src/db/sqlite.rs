//! The SQLite database: one file in WAL mode, one writer connection owned by whichever blocking
//! request holds its lock, on a blocking thread (SQLite has one writer anyway), with group commit
//! of concurrent batches; a read-only connection for the kiosks' lookups. The logic is
//! `db::shared`'s, run through `SqliteExec`; this file holds how it gets a connection,
//! the group commit and the per-event inserts of a batch.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::{BoxFuture, LocalBoxFuture};
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::EventStatus;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use tokio::sync::Mutex;

use super::database::Database;
use super::dialect::Dialect;
use super::exec::{Exec, Row, Value, run_ready};
use super::model::{DbError, DbKind, DbResult, IngestBatch, IngestEvent, OpsFact};
use super::{methods, migrations, shared};

/// Fills the dashboard's tables from the events stored before they existed (once per database).
const DASHBOARD_BACKFILL: &str = r#"
INSERT INTO turns (turn_id, store_id, kiosk_id, service, identified, issued_ms)
    SELECT json_extract(envelope, '$.payload.turn_id'), MIN(store_id), MIN(kiosk_id),
           MIN(json_extract(envelope, '$.payload.service')), MAX(card_token IS NOT NULL),
           MIN(corrected_ms)
    FROM events WHERE type = 'ticket_issued' GROUP BY 1
    ON CONFLICT (turn_id) DO NOTHING;
INSERT INTO turns (turn_id, store_id, kiosk_id, called_ms)
    SELECT json_extract(envelope, '$.payload.turn_id'), MIN(store_id), MIN(kiosk_id), MIN(corrected_ms)
    FROM events WHERE type = 'turn_called' GROUP BY 1
    ON CONFLICT (turn_id) DO UPDATE SET called_ms = excluded.called_ms;
INSERT INTO turns (turn_id, store_id, kiosk_id, served_ms)
    SELECT json_extract(envelope, '$.payload.turn_id'), MIN(store_id), MIN(kiosk_id), MIN(corrected_ms)
    FROM events WHERE type = 'turn_served' GROUP BY 1
    ON CONFLICT (turn_id) DO UPDATE SET served_ms = excluded.served_ms;
INSERT INTO kiosk_devices (kiosk_id, device, status, reason, at_ms)
    SELECT kiosk_id, device, status, reason, corrected_ms FROM (
        SELECT kiosk_id, json_extract(envelope, '$.payload.device') AS device,
               json_extract(envelope, '$.payload.status') AS status,
               json_extract(envelope, '$.payload.reason') AS reason, corrected_ms,
               ROW_NUMBER() OVER (PARTITION BY kiosk_id, json_extract(envelope, '$.payload.device')
                                  ORDER BY corrected_ms DESC, seq DESC) AS latest
        FROM events WHERE type = 'device_status_changed')
    WHERE latest = 1
    ON CONFLICT (kiosk_id, device) DO NOTHING;
"#;

/// Brings the database to the newest schema (see [`super::migrations`]).
fn migrate(conn: &mut Connection) -> DbResult<()> {
    conn.execute_batch(migrations::CREATE_VERSION_TABLE)?;
    let found: Option<i64> = conn
        .query_row(migrations::READ_VERSION, [], |r| r.get(0))
        .optional()?;
    if found.is_some_and(|f| f > migrations::latest(Dialect::Sqlite)) {
        let oldest: Option<i64> = conn
            .query_row(migrations::READ_COMPAT, [], |r| r.get(0))
            .optional()
            .unwrap_or(None);
        if migrations::tolerates_newer(Dialect::Sqlite, found, oldest) {
            tracing::warn!(
                found,
                supported = migrations::latest(Dialect::Sqlite),
                "sqlite schema is newer than this endpoint but declared compatible; serving it unchanged (finish the upgrade)"
            );
            return Ok(());
        }
    }
    for m in migrations::pending(Dialect::Sqlite, found)? {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)?;
        tx.execute(migrations::WRITE_VERSION, params![m.version])?;
        tx.commit()?;
        tracing::info!(version = m.version, name = m.name, "sqlite schema migrated");
    }
    Ok(())
}

/// The SQLite store. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct SqliteDb {
    conn: Arc<Mutex<Connection>>,
    /// Batches waiting for the connection: whoever gets it next commits them all in one
    /// transaction (group commit, see [`ingest_group`]).
    pending: Arc<std::sync::Mutex<Vec<PendingIngest>>>,
    /// A read-only connection to the same file for the reads on every request's path (the
    /// kiosk's record), so they do not queue behind the writer (WAL readers see the last
    /// commit). The writer itself for an in-memory database.
    reader: Arc<Mutex<Connection>>,
}

impl SqliteDb {
    /// Opens or creates the database at `path` (`:memory:` for a throwaway one) and migrates it.
    pub async fn open(path: &str) -> DbResult<Self> {
        let path = path.to_owned();
        let in_memory = path == ":memory:" || path.starts_with("file::memory:");
        let reader_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> DbResult<Connection> {
            if !in_memory {
                // Every kiosk's secret, the tenant key and all personal data: owner only.
                kiosk_types::private_file::ensure_private(std::path::Path::new(&path))?;
            }
            let mut conn = Connection::open(&path)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // The endpoint is a server with a UPS-less crash model of "process dies", not "power
            // lost": NORMAL keeps every committed batch across a process crash.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Checkpoint every 8192 WAL pages (32 MiB at 4 KiB) instead of 1000: the pages every
            // batch rewrites (the tables' right edges, the signature table) are copied back to
            // the database once per checkpoint, whatever their number of versions in the WAL.
            conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
            // A group commit's transaction holds many batches' pages: 64 MiB of page cache (the
            // default is 2 MiB) keeps them from spilling to the WAL mid-transaction.
            conn.pragma_update(None, "cache_size", -65536)?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            // Deleted and overwritten content is zeroed in the file, not left in free space: an
            // erased customer's name must not be readable back with `grep -a`.
            conn.pragma_update(None, "secure_delete", "ON")?;
            // Every shared statement is cached (rusqlite keeps 16 by default).
            conn.set_prepared_statement_cache_capacity(128);
            migrate(&mut conn)?;
            let tx = conn.transaction()?;
            run_ready(shared::finish_open(&SqliteExec(&tx), DASHBOARD_BACKFILL))?;
            tx.commit()?;
            Ok(conn)
        })
        .await??;
        let conn = Arc::new(Mutex::new(conn));
        let reader = if in_memory {
            Arc::clone(&conn)
        } else {
            let reader = tokio::task::spawn_blocking(move || -> DbResult<Connection> {
                let c = Connection::open(&reader_path)?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c.pragma_update(None, "query_only", "ON")?;
                Ok(c)
            })
            .await??;
            Arc::new(Mutex::new(reader))
        };
        Ok(SqliteDb {
            conn,
            pending: Arc::default(),
            reader,
        })
    }

    /// Runs `f` on the connection in the blocking pool. Callers queue for the connection here,
    /// as futures in FIFO order, and only the holder takes a blocking thread: queueing on a lock
    /// inside the blocking pool parked a thread per waiting request (hundreds under a fleet's
    /// load, each woken in no particular order).
    fn run<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
    {
        on(Arc::clone(&self.conn), f)
    }
}

fn on<'a, T, F>(conn: Arc<Mutex<Connection>>, f: F) -> BoxFuture<'a, DbResult<T>>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
{
    Box::pin(async move {
        let mut guard = conn.lock_owned().await;
        // A panic in `f` leaves SQLite consistent (the transaction rolls back on drop) and
        // releases the connection with the guard.
        tokio::task::spawn_blocking(move || f(&mut guard)).await?
    })
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// [`Exec`] over a SQLite connection (or a transaction, which derefs to one). Every statement
/// runs when called: its futures are always ready ([`run_ready`]).
pub(crate) struct SqliteExec<'c>(pub(crate) &'c Connection);

impl Exec for SqliteExec<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> DbResult<u64> {
        let mut stmt = self.0.prepare_cached(&Dialect::Sqlite.sql(sql))?;
        Ok(stmt.execute(params_from_iter(params))? as u64)
    }

    async fn query(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        let mut stmt = self.0.prepare_cached(&Dialect::Sqlite.sql(sql))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(columns);
            for i in 0..columns {
                row.push(match r.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    async fn lock_changes(&self) -> DbResult<()> {
        // One writer: changes are numbered in commit order already.
        Ok(())
    }

    async fn batch(&self, sql: &str) -> DbResult<()> {
        Ok(self.0.execute_batch(sql)?)
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Bool(v) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*v))),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Real(v) => ToSqlOutput::Borrowed(ValueRef::Real(*v)),
        })
    }
}

/// Shared logic handed a [`SqliteExec`].
type Job<T> = Box<dyn for<'e> FnOnce(&'e SqliteExec<'e>) -> LocalBoxFuture<'e, DbResult<T>> + Send>;

impl SqliteDb {
    /// Shared logic on the writer, each statement on its own.
    fn auto<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: for<'e> FnOnce(&'e SqliteExec<'e>) -> LocalBoxFuture<'e, DbResult<T>> + Send + 'static,
    {
        let job: Job<T> = Box::new(f);
        self.run(move |c| run_ready(job(&SqliteExec(c))))
    }

    /// Shared logic on the read-only connection.
    fn read<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: for<'e> FnOnce(&'e SqliteExec<'e>) -> LocalBoxFuture<'e, DbResult<T>> + Send + 'static,
    {
        let job: Job<T> = Box::new(f);
        on(Arc::clone(&self.reader), move |c| {
            run_ready(job(&SqliteExec(c)))
        })
    }

    /// Shared logic on the writer, in one transaction.
    fn write<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: for<'e> FnOnce(&'e SqliteExec<'e>) -> LocalBoxFuture<'e, DbResult<T>> + Send + 'static,
    {
        let job: Job<T> = Box::new(f);
        self.run(move |c| {
            let tx = c.transaction()?;
            let out = run_ready(job(&SqliteExec(&tx)))?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Shared logic reading one snapshot: a transaction on the writer.
    fn snapshot<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: for<'e> FnOnce(&'e SqliteExec<'e>) -> LocalBoxFuture<'e, DbResult<T>> + Send + 'static,
    {
        self.write(f)
    }
}

/// Records what an accepted event tells the dashboard (see [`OpsFact`]).
fn apply_ops(tx: &Connection, batch: &IngestBatch, ev: &IngestEvent) -> DbResult<()> {
    let Some(ops) = &ev.ops else { return Ok(()) };
    let at = ev.corrected_ms;
    match ops {
        OpsFact::TurnIssued {
            turn_id,
            service,
            identified,
        } => {
            tx.prepare_cached(
                "INSERT INTO turns (turn_id, store_id, kiosk_id, service, identified, issued_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (turn_id) DO UPDATE SET store_id = excluded.store_id,
                   kiosk_id = excluded.kiosk_id, service = excluded.service,
                   identified = excluded.identified, issued_ms = excluded.issued_ms",
            )?
            .execute(params![
                turn_id.to_string(),
                batch.store_id,
                batch.kiosk_id,
                service,
                identified,
                at
            ])?;
        }
        OpsFact::TurnCalled { turn_id } => {
            tx.prepare_cached(
                "INSERT INTO turns (turn_id, store_id, kiosk_id, called_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (turn_id) DO UPDATE
                   SET called_ms = MIN(COALESCE(turns.called_ms, excluded.called_ms), excluded.called_ms)",
            )?
            .execute(params![turn_id.to_string(), batch.store_id, batch.kiosk_id, at])?;
        }
        OpsFact::TurnServed { turn_id } => {
            tx.prepare_cached(
                "INSERT INTO turns (turn_id, store_id, kiosk_id, served_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (turn_id) DO UPDATE
                   SET served_ms = MIN(COALESCE(turns.served_ms, excluded.served_ms), excluded.served_ms)",
            )?
            .execute(params![turn_id.to_string(), batch.store_id, batch.kiosk_id, at])?;
        }
        OpsFact::DeviceStatus {
            device,
            status,
            reason,
        } => {
            tx.prepare_cached(
                "INSERT INTO kiosk_devices (kiosk_id, device, status, reason, at_ms, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kiosk_id, device) DO UPDATE SET status = excluded.status,
                   reason = excluded.reason, at_ms = excluded.at_ms, seq = excluded.seq
                 WHERE excluded.at_ms > kiosk_devices.at_ms + 5000
               OR (excluded.at_ms >= kiosk_devices.at_ms - 5000
                   AND (kiosk_devices.seq IS NULL OR excluded.seq >= kiosk_devices.seq))",
            )?
            .execute(params![
                batch.kiosk_id,
                device,
                status,
                reason,
                at,
                i64::try_from(ev.seq).unwrap_or(i64::MAX)
            ])?;
        }
    }
    Ok(())
}

fn insert_event(
    tx: &Connection,
    batch: &IngestBatch,
    ev: &IngestEvent,
    envelope: &str,
) -> DbResult<bool> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (id, kiosk_id, store_id, seq, type, schema_version, device_ms,
           corrected_ms, received_ms, card_token, envelope)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (id) DO NOTHING",
    )?;
    let n = stmt.execute(params![
        ev.id.to_string(),
        batch.kiosk_id,
        batch.store_id,
        i64_of(ev.seq),
        ev.kind,
        ev.schema_version,
        ev.device_ms,
        ev.corrected_ms,
        batch.received_ms,
        ev.card_token.as_ref().map(CardToken::as_str),
        envelope,
    ])?;
    Ok(n > 0)
}

/// Batches waiting for the connection (see [`SqliteDb::ingest`]).
struct PendingIngest {
    batch: IngestBatch,
    done: tokio::sync::oneshot::Sender<DbResult<Vec<EventStatus>>>,
}

fn lock_queue(
    q: &std::sync::Mutex<Vec<PendingIngest>>,
) -> std::sync::MutexGuard<'_, Vec<PendingIngest>> {
    // A plain Vec pushed and taken whole: a panic elsewhere cannot leave it half-changed.
    q.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Group commit: the batches in one transaction, one commit (one WAL write of the pages they
/// share) for them all, each batch answered once it is durable. A replay stores nothing and is
/// answered alone. Should any batch fail, the transaction is rolled back and every batch is
/// stored again in a transaction of its own, so one bad batch fails only itself. (Savepoints
/// per batch would isolate them too, at the price of a before-image of every page a batch
/// touches: a third of the group's time.)
fn ingest_group(c: &mut Connection, group: Vec<PendingIngest>) {
    let (batches, answers): (Vec<_>, Vec<_>) = group.into_iter().map(|p| (p.batch, p.done)).unzip();
    let together = (|| -> DbResult<Vec<DbResult<Vec<EventStatus>>>> {
        let tx = c.transaction()?;
        let mut results = Vec::with_capacity(batches.len());
        for batch in &batches {
            match ingest_one(&tx, batch) {
                Err(DbError::Replayed) => results.push(Err(DbError::Replayed)),
                other => results.push(Ok(other?)),
            }
        }
        tx.commit()?;
        Ok(results)
    })();
    let results = match together {
        Ok(results) => results,
        // A batch alone has nothing to be isolated from: its error is its answer.
        Err(e) if batches.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, batches = batches.len(), "group commit failed; storing its batches one by one");
            batches
                .iter()
                .map(|batch| {
                    let tx = c.transaction()?;
                    let statuses = ingest_one(&tx, batch)?;
                    tx.commit()?;
                    Ok(statuses)
                })
                .collect()
        }
    };
    for (done, result) in answers.into_iter().zip(results) {
        let _ = done.send(result);
    }
}

/// One batch, inside the group's transaction (see [`Database::ingest`]): each event inserted on
/// its own, the shared logic deciding its stored form and applying its effects and, once per
/// batch, its live-queue steps.
fn ingest_one(tx: &Connection, batch: &IngestBatch) -> DbResult<Vec<EventStatus>> {
    let e = SqliteExec(tx);
    run_ready(async {
        if let Some(guard) = &batch.replay
            && !shared::remember(&e, guard).await?
        {
            return Err(DbError::Replayed);
        }
        let mut statuses = Vec::with_capacity(batch.events.len());
        let mut dirty = BTreeSet::new();
        let mut accepted = Vec::new();
        for ev in &batch.events {
            if !shared::admit(&e, &batch.store_id, ev).await? {
                statuses.push(EventStatus::Duplicate);
                continue;
            }
            let (envelope, effect) = shared::stored_form(&e, ev).await?;
            if insert_event(tx, batch, ev, &envelope)? {
                let id = ev.id.to_string();
                shared::apply_effect(
                    &e,
                    &batch.store_id,
                    &id,
                    ev.corrected_ms,
                    effect,
                    &mut dirty,
                )
                .await?;
                apply_ops(tx, batch, ev)?;
                accepted.push(ev);
                statuses.push(EventStatus::Accepted);
            } else {
                statuses.push(EventStatus::Duplicate);
            }
        }
        shared::apply_queue(&e, batch, &accepted).await?;
        shared::emit_profiles(&e, &dirty).await?;
        shared::record_kiosk_state(&e, batch).await?;
        // The outbox of the forwarding, in the same transaction (docs/DESIGN.md invariant 21).
        super::forward::enqueue_batch(&e, batch, &accepted).await?;
        Ok(statuses)
    })
}

impl Database for SqliteDb {
    fn kind(&self) -> DbKind {
        DbKind::Sqlite
    }

    fn maintain_events(
        &self,
        cutoff_ms: Option<i64>,
        _now_ms: i64,
    ) -> BoxFuture<'_, DbResult<crate::db::storage::StorageReport>> {
        self.auto(move |e| {
            Box::pin(async move {
                let mut report = crate::db::storage::StorageReport::default();
                if let Some(cutoff) = cutoff_ms {
                    report.events_deleted =
                        crate::db::storage::delete_events_before(e, "events", cutoff).await?;
                }
                Ok(report)
            })
        })
    }

    fn event_partitions(&self) -> BoxFuture<'_, DbResult<Vec<String>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn purge_erased(&self) -> BoxFuture<'_, DbResult<()>> {
        self.run(|c| {
            // The WAL still holds the pages as they were before the erasure: copy the new ones
            // back and cut the file to zero. A reader mid-snapshot can hold the checkpoint back
            // for a moment: try again briefly.
            for _ in 0..50 {
                let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
                if busy == 0 {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            tracing::warn!("the WAL could not be truncated after an erasure: a reader held it; the next checkpoint will");
            Ok(())
        })
    }

    fn ingest(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<Vec<EventStatus>>> {
        let (done, answer) = tokio::sync::oneshot::channel();
        lock_queue(&self.pending).push(PendingIngest { batch, done });
        let conn = Arc::clone(&self.conn);
        let pending = Arc::clone(&self.pending);
        Box::pin(async move {
            let mut answer = answer;
            let stopped =
                |_| DbError::GroupFailed("the store's writer stopped before answering".into());
            // Whoever gets the connection commits every batch queued by then; a batch taken by
            // an earlier holder is answered without ever holding it. A batch whose request went
            // away is still stored (its kiosk's retry finds it duplicate).
            let mut guard = tokio::select! {
                biased;
                r = &mut answer => return r.map_err(stopped)?,
                g = conn.lock_owned() => g,
            };
            let group = std::mem::take(&mut *lock_queue(&pending));
            if group.is_empty() {
                // Taken and answered by the holder before.
                drop(guard);
            } else {
                tokio::task::spawn_blocking(move || ingest_group(&mut guard, group)).await?;
            }
            answer.await.map_err(stopped)?
        })
    }

    fn insert_events_bare(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<u64>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let mut n = 0;
            for ev in &batch.events {
                n += u64::from(insert_event(&tx, &batch, ev, &ev.envelope)?);
            }
            tx.commit()?;
            Ok(n)
        })
    }

    fn publish_change(&self, _payload: String) -> BoxFuture<'_, DbResult<()>> {
        // One process: its own streams already woke.
        Box::pin(async { Ok(()) })
    }

    fn listen_changes(
        &self,
    ) -> BoxFuture<'_, DbResult<Option<futures::stream::BoxStream<'static, String>>>> {
        Box::pin(async { Ok(None) })
    }

    methods::shared_methods!(remember_signature: write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Effect, ReplayGuard};

    #[tokio::test]
    async fn tenant_key_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        let path = path.to_str().unwrap();
        let first = SqliteDb::open(path)
            .await
            .unwrap()
            .tenant_key()
            .await
            .unwrap();
        let again = SqliteDb::open(path)
            .await
            .unwrap()
            .tenant_key()
            .await
            .unwrap();
        assert_eq!(first, again);
    }

    fn events(n: u64) -> Vec<IngestEvent> {
        (1..=n)
            .map(|seq| IngestEvent {
                id: uuid::Uuid::now_v7(),
                seq,
                kind: "kiosk_started",
                schema_version: 1,
                device_ms: 0,
                corrected_ms: 0,
                card_token: None,
                envelope: "{}".into(),
                effect: Effect::None,
                ops: None,
                queue: None,
            })
            .collect()
    }

    fn batch(kiosk: &str, events: Vec<IngestEvent>, sig: &str) -> IngestBatch {
        IngestBatch {
            kiosk_id: kiosk.into(),
            store_id: "s".into(),
            received_ms: 0,
            skew: None,
            skew_samples: None,
            backlog: None,
            backlog_age_ms: None,
            events,
            replay: Some(ReplayGuard {
                signature: sig.into(),
                expires_ms: i64::MAX,
                now_ms: 0,
            }),
        }
    }

    /// Ingests `batches` at once, all queued before the writer is free (so one holder takes
    /// them as one group); answers in order.
    async fn as_one_group(
        db: &SqliteDb,
        batches: Vec<IngestBatch>,
    ) -> Vec<DbResult<Vec<EventStatus>>> {
        let n = batches.len();
        let hold = Arc::clone(&db.conn).lock_owned().await;
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|b| {
                let db = db.clone();
                tokio::spawn(async move { db.ingest(b).await })
            })
            .collect();
        while lock_queue(&db.pending).len() < n {
            tokio::task::yield_now().await;
        }
        drop(hold);
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_group_commit_answers_each_batch_and_a_failing_batch_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        let db = SqliteDb::open(path.to_str().unwrap()).await.unwrap();
        // A batch the database refuses, as a full disk or a corrupt page would.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON events WHEN NEW.kiosk_id = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            )
            .unwrap();
        let mut batches: Vec<IngestBatch> = (1..=38)
            .map(|k| batch(&format!("k{k}"), events(10), &format!("sig-{k}")))
            .collect();
        let resent = batches[0].events.clone();
        batches.insert(10, batch("bad", events(10), "sig-bad"));
        // The same signed request twice (other events, to see which one was stored).
        batches.push(batch("k0", events(10), "sig-0"));
        batches.push(batch("k0", events(10), "sig-0"));
        let answers = as_one_group(&db, batches).await;

        assert!(
            matches!(answers[10], Err(DbError::Sqlite(_))),
            "{:?}",
            answers[10]
        );
        let (pair, good): (Vec<_>, Vec<_>) = answers
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != 10)
            .map(|(_, a)| a)
            .enumerate()
            .partition(|(i, _)| *i >= 38);
        for (_, a) in good {
            assert_eq!(a.unwrap(), vec![EventStatus::Accepted; 10]);
        }
        let pair: Vec<_> = pair.into_iter().map(|(_, a)| a).collect();
        assert_eq!(
            pair.iter()
                .filter(|a| matches!(a, Err(DbError::Replayed)))
                .count(),
            1,
            "{pair:?}"
        );
        assert!(pair.iter().any(|a| a.is_ok()));
        assert_eq!(db.event_count().await.unwrap(), 39 * 10);
        // Alone, the refused batch is answered with its own error.
        assert!(matches!(
            db.ingest(batch("bad", events(3), "sig-bad-2")).await,
            Err(DbError::Sqlite(_))
        ));
        assert_eq!(db.event_count().await.unwrap(), 39 * 10);

        // A group without failures: new events accepted, a resent batch found duplicate.
        let mut again: Vec<IngestBatch> = (40..60)
            .map(|k| batch(&format!("k{k}"), events(5), &format!("sig-{k}")))
            .collect();
        again.push(batch("k1", resent, "sig-resent"));
        let answers = as_one_group(&db, again).await;
        for a in &answers[..20] {
            assert_eq!(a.as_ref().unwrap(), &vec![EventStatus::Accepted; 5]);
        }
        assert_eq!(
            answers[20].as_ref().unwrap(),
            &vec![EventStatus::Duplicate; 10]
        );
        assert_eq!(db.event_count().await.unwrap(), 39 * 10 + 20 * 5);
    }
}
