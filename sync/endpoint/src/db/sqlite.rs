//! The SQLite store: one database file in WAL mode, one connection owned by whichever blocking
//! request holds its lock, on a blocking thread (SQLite has one writer anyway; a batch is one
//! transaction).

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::{Campaign, EventStatus, FeedItem, Key32, Profile, TenantKey};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Mutex;

use super::dashboard::{
    DashboardRows, DeviceState, KioskRow, QUARTER_MS, TicketCount, TurnTiming, assemble,
};
use super::dialect::Dialect;
use super::migrations;
use super::{
    ConsentRecord, CustomerRecord, Dashboard, DashboardQuery, Database, DbError, DbKind, DbResult,
    Effect, FeedPage, IngestBatch, KioskHealth, KioskRecord, NewCustomer, NewKiosk, Nps, OpsFact,
    ReplayGuard, SkewEstimate, StoreRecord, StoreStats, StoreSummary, computed_segment,
    kiosk_profile, redemption_variant,
};

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
            migrate(&mut conn)?;
            {
                let tx = conn.transaction()?;
                let first = tx.execute(
                    "INSERT INTO settings (key, value) VALUES ('dashboard_backfilled', '1')
                     ON CONFLICT DO NOTHING",
                    [],
                )? > 0;
                if first {
                    tx.execute_batch(DASHBOARD_BACKFILL)?;
                }
                tx.commit()?;
            }
            let key = Key32::from_bytes(rand::random());
            conn.execute(
                "INSERT INTO settings (key, value) VALUES ('tenant_key', ?1) ON CONFLICT DO NOTHING",
                params![key.to_base64()],
            )?;
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

    /// [`Self::run`] on the read-only connection.
    fn read<T, F>(&self, f: F) -> BoxFuture<'_, DbResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
    {
        on(Arc::clone(&self.reader), f)
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

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn token_of(s: String) -> DbResult<CardToken> {
    s.parse()
        .map_err(|e| DbError::Corrupt(format!("card token in database: {e}")))
}

fn consents(tx: &Connection, token: &str) -> DbResult<Vec<ConsentRecord>> {
    let mut stmt = tx.prepare_cached(
        "SELECT purpose, given, policy_version, policy_sha256, at_ms FROM consents
         WHERE card_token = ?1 ORDER BY at_ms, id",
    )?;
    let rows = stmt.query_map(params![token], |r| {
        Ok(ConsentRecord {
            purpose: r.get(0)?,
            given: r.get(1)?,
            policy_version: r.get(2)?,
            policy_sha256: r.get(3)?,
            at_ms: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What a store's kiosks may know of a customer (`None`: unknown, or never registered a name).
fn customer_profile(tx: &Connection, token: &CardToken) -> DbResult<Option<Profile>> {
    let row: Option<(Option<String>, String, Option<String>)> = tx
        .query_row(
            "SELECT display_name, segment, locale FROM customers WHERE card_token = ?1",
            params![token.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((Some(name), segment, locale)) = row else {
        return Ok(None);
    };
    let history = consents(tx, token.as_str())?;
    Ok(Some(kiosk_profile(
        token,
        &name,
        &segment,
        locale.as_deref().unwrap_or("es"),
        &history,
    )))
}

/// Publishes a customer's current profile to the feed of every store that knows them, replacing
/// the earlier profile item (so old personal data does not linger in the feed).
fn emit_profile(tx: &Connection, token: &CardToken) -> DbResult<()> {
    let Some(profile) = customer_profile(tx, token)? else {
        return Ok(());
    };
    let item = serde_json::to_string(&FeedItem::Profile(profile))?;
    let stores: Vec<String> = {
        let mut stmt =
            tx.prepare_cached("SELECT store_id FROM customer_stores WHERE card_token = ?1")?;
        let rows = stmt.query_map(params![token.as_str()], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for store in stores {
        tx.execute(
            "DELETE FROM changes WHERE kind = 'profile' AND item_key = ?1 AND store_id = ?2",
            params![token.as_str(), store],
        )?;
        tx.execute(
            "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'profile', ?2, ?3)",
            params![store, token.as_str(), item],
        )?;
    }
    Ok(())
}

/// Adds the customer to a store's kiosks; true when that is new.
fn link_store(tx: &Connection, token: &CardToken, store: &str) -> DbResult<bool> {
    Ok(tx.execute(
        "INSERT INTO customer_stores (card_token, store_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![token.as_str(), store],
    )? > 0)
}

/// Recomputes a computed segment; true when it changed.
fn refresh_segment(tx: &Connection, token: &CardToken, now_ms: i64) -> DbResult<bool> {
    let row: Option<(i64, Option<i64>, String, bool)> = tx
        .query_row(
            "SELECT visits, last_visit_ms, segment, segment_manual FROM customers WHERE card_token = ?1",
            params![token.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((visits, last, segment, manual)) = row else {
        return Ok(false);
    };
    let computed = computed_segment(visits, last, now_ms);
    if manual || segment == computed {
        return Ok(false);
    }
    tx.execute(
        "UPDATE customers SET segment = ?2 WHERE card_token = ?1",
        params![token.as_str(), computed],
    )?;
    Ok(true)
}

fn apply_effect(
    tx: &Connection,
    batch_store: &str,
    event_id: &str,
    corrected_ms: i64,
    effect: &Effect,
    dirty: &mut BTreeSet<CardToken>,
) -> DbResult<()> {
    match effect {
        Effect::None => {}
        Effect::Registered {
            token,
            display_name,
            email,
            phone,
            locale,
        } => {
            tx.execute(
                "INSERT INTO customers (card_token, display_name, email, phone, locale, home_store, registered_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (card_token) DO UPDATE SET display_name = excluded.display_name,
                   email = excluded.email, phone = excluded.phone, locale = excluded.locale,
                   home_store = COALESCE(customers.home_store, excluded.home_store),
                   registered_ms = COALESCE(customers.registered_ms, excluded.registered_ms)",
                params![token.as_str(), display_name, email, phone, locale, batch_store, corrected_ms],
            )?;
            link_store(tx, token, batch_store)?;
            dirty.insert(token.clone());
        }
        Effect::Consent {
            token,
            purpose,
            given,
            policy_version,
            policy_sha256,
        } => {
            tx.execute(
                "INSERT INTO customers (card_token) VALUES (?1) ON CONFLICT DO NOTHING",
                params![token.as_str()],
            )?;
            link_store(tx, token, batch_store)?;
            tx.execute(
                "INSERT INTO consents (card_token, purpose, given, policy_version, policy_sha256, at_ms, event_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![token.as_str(), purpose, given, policy_version, policy_sha256, corrected_ms, event_id],
            )?;
            dirty.insert(token.clone());
        }
        Effect::Visit { token } => {
            tx.execute(
                "INSERT INTO customers (card_token) VALUES (?1) ON CONFLICT DO NOTHING",
                params![token.as_str()],
            )?;
            tx.execute(
                "UPDATE customers SET visits = visits + 1,
                   last_visit_ms = MAX(COALESCE(last_visit_ms, ?2), ?2) WHERE card_token = ?1",
                params![token.as_str(), corrected_ms],
            )?;
            let linked = link_store(tx, token, batch_store)?;
            if refresh_segment(tx, token, corrected_ms)? || linked {
                dirty.insert(token.clone());
            }
        }
        Effect::Seen { token } => {
            let known: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM customers WHERE card_token = ?1)",
                params![token.as_str()],
                |r| r.get(0),
            )?;
            if known && link_store(tx, token, batch_store)? {
                dirty.insert(token.clone());
            }
        }
        Effect::CampaignShown {
            campaign_id,
            variant,
        } => {
            tx.execute(
                "INSERT INTO campaign_facts (event_id, store_id, campaign_id, variant, kind)
                 VALUES (?1, ?2, ?3, ?4, 'shown') ON CONFLICT DO NOTHING",
                params![event_id, batch_store, campaign_id, variant],
            )?;
        }
        Effect::CouponIssued {
            code,
            campaign_id,
            variant,
        } => {
            if let Some(campaign_id) = campaign_id {
                tx.execute(
                    "INSERT INTO coupons (code, campaign_id, variant) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![code, campaign_id, variant.as_deref().unwrap_or("unknown")],
                )?;
            }
        }
        Effect::CouponRedeemed {
            code,
            campaign_id,
            token,
        } => {
            let issued: Option<(String, String)> = tx
                .query_row(
                    "SELECT campaign_id, variant FROM coupons WHERE code = ?1",
                    params![code],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (campaign_id, variant) = match (issued, campaign_id) {
                (Some(found), _) => found,
                (None, Some(id)) => {
                    let def: Option<String> = tx
                        .query_row(
                            "SELECT definition FROM campaigns WHERE id = ?1",
                            params![id],
                            |r| r.get(0),
                        )
                        .optional()?;
                    let campaign: Option<Campaign> =
                        def.map(|d| serde_json::from_str(&d)).transpose()?;
                    (
                        id.clone(),
                        redemption_variant(campaign.as_ref(), token.as_ref()),
                    )
                }
                (None, None) => return Ok(()),
            };
            tx.execute(
                "INSERT INTO campaign_facts (event_id, store_id, campaign_id, variant, kind)
                 VALUES (?1, ?2, ?3, ?4, 'redeemed') ON CONFLICT DO NOTHING",
                params![event_id, batch_store, campaign_id, variant],
            )?;
        }
    }
    Ok(())
}

/// Records what an accepted event tells the dashboard (see [`super::OpsFact`]).
fn apply_ops(tx: &Connection, batch: &IngestBatch, ev: &super::IngestEvent) -> DbResult<()> {
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
                "INSERT INTO kiosk_devices (kiosk_id, device, status, reason, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kiosk_id, device) DO UPDATE SET status = excluded.status,
                   reason = excluded.reason, at_ms = excluded.at_ms
                 WHERE excluded.at_ms >= kiosk_devices.at_ms",
            )?
            .execute(params![batch.kiosk_id, device, status, reason, at])?;
        }
    }
    Ok(())
}

fn insert_event(
    tx: &Connection,
    batch: &IngestBatch,
    ev: &super::IngestEvent,
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

/// Remembers a request signature; false when it was seen before. Forgets expired ones.
fn remember(c: &Connection, guard: &ReplayGuard) -> DbResult<bool> {
    c.prepare_cached("DELETE FROM request_signatures WHERE expires_ms < ?1")?
        .execute(params![guard.now_ms])?;
    let n = c
        .prepare_cached(
            "INSERT INTO request_signatures (signature, expires_ms) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![guard.signature, guard.expires_ms])?;
    Ok(n > 0)
}

/// One batch, inside the group's transaction (see [`Database::ingest`]).
fn ingest_one(tx: &Connection, batch: &IngestBatch) -> DbResult<Vec<EventStatus>> {
    if let Some(guard) = &batch.replay
        && !remember(tx, guard)?
    {
        return Err(DbError::Replayed);
    }
    let mut statuses = Vec::with_capacity(batch.events.len());
    let mut dirty = BTreeSet::new();
    for ev in &batch.events {
        let id = ev.id.to_string();
        let mut effect = &ev.effect;
        let mut envelope = std::borrow::Cow::Borrowed(ev.envelope.as_str());
        if let Effect::Registered { token, .. } = &ev.effect {
            let erased: Option<i64> = tx
                .query_row(
                    "SELECT erased_ms FROM erasures WHERE card_token = ?1",
                    params![token.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if erased.is_some_and(|at| at >= ev.corrected_ms) {
                envelope = std::borrow::Cow::Owned(super::redact_registration(&ev.envelope));
                effect = &Effect::None;
            }
        }
        if insert_event(tx, batch, ev, &envelope)? {
            apply_effect(
                tx,
                &batch.store_id,
                &id,
                ev.corrected_ms,
                effect,
                &mut dirty,
            )?;
            apply_ops(tx, batch, ev)?;
            statuses.push(EventStatus::Accepted);
        } else {
            statuses.push(EventStatus::Duplicate);
        }
    }
    for token in &dirty {
        emit_profile(tx, token)?;
    }
    tx.execute(
        "UPDATE kiosks SET last_seen_ms = ?2,
                   skew_ms = COALESCE(?3, skew_ms), skew_at_ms = COALESCE(?4, skew_at_ms),
                   backlog = COALESCE(?5, backlog) WHERE id = ?1",
        params![
            batch.kiosk_id,
            batch.received_ms,
            batch.skew.map(|s| s.skew_ms),
            batch.skew.map(|s| s.at_ms),
            batch.backlog.map(i64_of),
        ],
    )?;
    Ok(statuses)
}

/// The dashboard's rows of one store and window, read in one transaction (one snapshot).
fn dashboard_rows(c: &mut Connection, q: &DashboardQuery) -> DbResult<DashboardRows> {
    let tx = c.transaction()?;
    let mut rows = DashboardRows::default();
    let store: Option<(StoreRecord, Option<String>)> = tx
        .query_row(
            "SELECT s.id, s.name, z.timezone FROM stores s
             LEFT JOIN store_timezones z ON z.store_id = s.id WHERE s.id = ?1",
            params![q.store_id],
            |r| {
                Ok((
                    StoreRecord {
                        id: r.get(0)?,
                        name: r.get(1)?,
                    },
                    r.get(2)?,
                ))
            },
        )
        .optional()?;
    let Some((store, timezone)) = store else {
        return Ok(rows);
    };
    rows.store = Some(store);
    rows.timezone = timezone;
    let (s, k, since, now) = (&q.store_id, &q.kiosk_id, q.since_ms, q.now_ms);
    rows.tickets = tx
        .prepare_cached(
            "SELECT issued_ms / ?5, COALESCE(service, '?'), identified, COUNT(*) FROM turns
             WHERE store_id = ?1 AND issued_ms >= ?3 AND issued_ms <= ?4
               AND (?2 IS NULL OR kiosk_id = ?2)
             GROUP BY 1, 2, 3",
        )?
        .query_map(params![s, k, since, now, QUARTER_MS], |r| {
            Ok(TicketCount {
                quarter: r.get(0)?,
                service: r.get(1)?,
                identified: r.get(2)?,
                count: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    rows.timings = tx
        .prepare_cached(
            "SELECT COALESCE(service, '?'), called_ms - issued_ms, served_ms - called_ms FROM turns
             WHERE store_id = ?1 AND issued_ms >= ?3 AND issued_ms <= ?4
               AND (?2 IS NULL OR kiosk_id = ?2) AND called_ms IS NOT NULL",
        )?
        .query_map(params![s, k, since, now], |r| {
            Ok(TurnTiming {
                service: r.get(0)?,
                wait_ms: r.get(1)?,
                service_ms: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let by_payload = |field: &str, kind: &str| -> DbResult<Vec<(Option<String>, i64)>> {
        let sql = format!(
            "SELECT CAST(json_extract(envelope, '$.payload.{field}') AS TEXT), COUNT(*) FROM events
             WHERE store_id = ?1 AND type = '{kind}' AND corrected_ms >= ?3 AND corrected_ms <= ?4
               AND (?2 IS NULL OR kiosk_id = ?2)
             GROUP BY 1"
        );
        Ok(tx
            .prepare_cached(&sql)?
            .query_map(params![s, k, since, now], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    };
    rows.identified_by = by_payload("by", "customer_identified")?
        .into_iter()
        .filter_map(|(by, n)| Some((by?, n)))
        .collect();
    rows.scores = by_payload("score", "survey_answered")?
        .into_iter()
        .filter_map(|(score, n)| Some((score?.parse().ok()?, n)))
        .collect();
    rows.campaigns = tx
        .prepare_cached(
            "SELECT f.campaign_id, f.variant,
               SUM(CASE WHEN f.kind = 'shown' THEN 1 ELSE 0 END),
               SUM(CASE WHEN f.kind = 'redeemed' THEN 1 ELSE 0 END)
             FROM events e JOIN campaign_facts f ON f.event_id = e.id
             WHERE e.store_id = ?1 AND e.type IN ('campaign_shown', 'coupon_redeemed')
               AND e.corrected_ms >= ?3 AND e.corrected_ms <= ?4
               AND (?2 IS NULL OR e.kiosk_id = ?2)
             GROUP BY 1, 2 ORDER BY 1, 2",
        )?
        .query_map(params![s, k, since, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.campaign_names = tx
        .prepare_cached("SELECT id, definition FROM campaigns")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.kiosks = tx
        .prepare_cached(
            "SELECT id, hardware_profile, firmware_version, last_seen_ms, skew_ms, backlog
             FROM kiosks WHERE store_id = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY id",
        )?
        .query_map(params![s, k], |r| {
            Ok(KioskRow {
                kiosk_id: r.get(0)?,
                hardware_profile: r.get(1)?,
                firmware_version: r.get(2)?,
                last_seen_ms: r.get(3)?,
                skew_ms: r.get(4)?,
                backlog: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    rows.devices = tx
        .prepare_cached(
            "SELECT d.kiosk_id, d.device, d.status, d.reason, d.at_ms
             FROM kiosk_devices d JOIN kiosks k ON k.id = d.kiosk_id
             WHERE k.store_id = ?1 AND (?2 IS NULL OR k.id = ?2)",
        )?
        .query_map(params![s, k], |r| {
            Ok((
                r.get(0)?,
                DeviceState {
                    device: r.get(1)?,
                    status: r.get(2)?,
                    reason: r.get(3)?,
                    at_ms: r.get(4)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut logs = tx.prepare_cached(
        "SELECT corrected_ms, envelope FROM events
         WHERE kiosk_id = ?1 AND type = 'device_log'
         ORDER BY corrected_ms DESC, seq DESC LIMIT ?2",
    )?;
    for kiosk in &rows.kiosks {
        let lines = logs.query_map(params![kiosk.kiosk_id, q.log_limit()], |r| {
            Ok((kiosk.kiosk_id.clone(), r.get(0)?, r.get(1)?))
        })?;
        for line in lines {
            rows.logs.push(line?);
        }
    }
    Ok(rows)
}

impl Database for SqliteDb {
    fn kind(&self) -> DbKind {
        DbKind::Sqlite
    }

    fn tenant_key(&self) -> BoxFuture<'_, DbResult<TenantKey>> {
        self.run(|c| {
            let v: String = c.query_row(
                "SELECT value FROM settings WHERE key = 'tenant_key'",
                [],
                |r| r.get(0),
            )?;
            Key32::from_base64(&v).map_err(|e| DbError::Corrupt(format!("tenant key: {e}")))
        })
    }

    fn set_tenant_key_if_unused(&self, key: TenantKey) -> BoxFuture<'_, DbResult<bool>> {
        self.run(move |c| {
            let n = c.execute(
                "UPDATE settings SET value = ?1 WHERE key = 'tenant_key'
                   AND NOT EXISTS (SELECT 1 FROM kiosks) AND NOT EXISTS (SELECT 1 FROM customers)",
                params![key.to_base64()],
            )?;
            Ok(n > 0)
        })
    }

    fn upsert_store(&self, store: StoreRecord) -> BoxFuture<'_, DbResult<()>> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO stores (id, name) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                params![store.id, store.name],
            )?;
            Ok(())
        })
    }

    fn store(&self, id: String) -> BoxFuture<'_, DbResult<Option<StoreRecord>>> {
        self.run(move |c| {
            Ok(c.query_row(
                "SELECT id, name FROM stores WHERE id = ?1",
                params![id],
                |r| {
                    Ok(StoreRecord {
                        id: r.get(0)?,
                        name: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
    }

    fn create_enroll_code(
        &self,
        code_hash: String,
        store_id: String,
        expires_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>> {
        self.run(move |c| {
            let exists: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM stores WHERE id = ?1)",
                params![store_id],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(DbError::NotFound(format!("store {store_id:?}")));
            }
            c.execute(
                "INSERT INTO enroll_codes (code_hash, store_id, expires_ms) VALUES (?1, ?2, ?3)",
                params![code_hash, store_id, expires_ms],
            )?;
            Ok(())
        })
    }

    fn redeem_enroll_code(
        &self,
        code_hash: String,
        now_ms: i64,
        kiosk: NewKiosk,
    ) -> BoxFuture<'_, DbResult<Option<StoreRecord>>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let store_id: Option<String> = tx
                .query_row(
                    "UPDATE enroll_codes SET used_ms = ?2, kiosk_id = ?3
                     WHERE code_hash = ?1 AND used_ms IS NULL AND expires_ms > ?2
                     RETURNING store_id",
                    params![code_hash, now_ms, kiosk.id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(store_id) = store_id else { return Ok(None) };
            tx.execute(
                "INSERT INTO kiosks (id, store_id, secret, hardware_profile, firmware_version, enrolled_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    kiosk.id,
                    store_id,
                    kiosk.secret.to_base64(),
                    kiosk.hardware_profile,
                    kiosk.firmware_version,
                    now_ms
                ],
            )?;
            let store = tx.query_row(
                "SELECT id, name FROM stores WHERE id = ?1",
                params![store_id],
                |r| Ok(StoreRecord { id: r.get(0)?, name: r.get(1)? }),
            )?;
            tx.commit()?;
            Ok(Some(store))
        })
    }

    fn kiosk(&self, kiosk_id: String) -> BoxFuture<'_, DbResult<Option<KioskRecord>>> {
        self.read(move |c| {
            let row: Option<(String, String, Option<i64>, Option<i64>)> = c
                .prepare_cached(
                    "SELECT store_id, secret, skew_ms, skew_at_ms FROM kiosks WHERE id = ?1",
                )?
                .query_row(params![kiosk_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let Some((store_id, secret, skew_ms, skew_at)) = row else {
                return Ok(None);
            };
            let secret = Key32::from_base64(&secret)
                .map_err(|e| DbError::Corrupt(format!("secret of kiosk {kiosk_id}: {e}")))?;
            let skew = skew_ms
                .zip(skew_at)
                .map(|(skew_ms, at_ms)| SkewEstimate { skew_ms, at_ms });
            Ok(Some(KioskRecord {
                id: kiosk_id,
                store_id,
                secret,
                skew,
            }))
        })
    }

    fn remember_signature(
        &self,
        signature: String,
        expires_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>> {
        let guard = ReplayGuard {
            signature,
            expires_ms,
            now_ms,
        };
        // One transaction: one commit per request, not one per statement.
        self.run(move |c| {
            let tx = c.transaction()?;
            let fresh = remember(&tx, &guard)?;
            tx.commit()?;
            Ok(fresh)
        })
    }

    fn touch_kiosk(&self, kiosk_id: String, now_ms: i64) -> BoxFuture<'_, DbResult<()>> {
        self.run(move |c| {
            c.prepare_cached("UPDATE kiosks SET last_seen_ms = ?2 WHERE id = ?1")?
                .execute(params![kiosk_id, now_ms])?;
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

    fn event_count(&self) -> BoxFuture<'_, DbResult<u64>> {
        self.run(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
            Ok(u64_of(n))
        })
    }

    fn feed(&self, store_id: String, cursor: u64, limit: u32) -> BoxFuture<'_, DbResult<FeedPage>> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, item FROM changes WHERE seq > ?1 AND (store_id = ?2 OR store_id IS NULL)
                 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![i64_of(cursor), store_id, i64::from(limit) + 1],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )?;
            let mut items = Vec::new();
            let mut next_cursor = cursor;
            let mut more = false;
            for row in rows {
                let (seq, item) = row?;
                if items.len() == limit as usize {
                    more = true;
                    break;
                }
                items.push(serde_json::from_str::<FeedItem>(&item)?);
                next_cursor = u64_of(seq);
            }
            Ok(FeedPage { items, next_cursor, more })
        })
    }

    fn lookup_profile(
        &self,
        store_id: String,
        token: CardToken,
    ) -> BoxFuture<'_, DbResult<Option<kiosk_protocol::wire::Profile>>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let Some(profile) = customer_profile(&tx, &token)? else {
                return Ok(None);
            };
            if link_store(&tx, &token, &store_id)? {
                emit_profile(&tx, &token)?;
            }
            tx.commit()?;
            Ok(Some(profile))
        })
    }

    fn upsert_campaign(&self, campaign: Campaign, now_ms: i64) -> BoxFuture<'_, DbResult<()>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let def = serde_json::to_string(&campaign)?;
            tx.execute(
                "INSERT INTO campaigns (id, definition, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                   updated_ms = excluded.updated_ms",
                params![campaign.id, def, now_ms],
            )?;
            tx.execute(
                "DELETE FROM changes WHERE kind = 'campaign' AND item_key = ?1",
                params![campaign.id],
            )?;
            let item = serde_json::to_string(&FeedItem::Campaign(campaign.clone()))?;
            let stores: Vec<Option<String>> = if campaign.stores.is_empty() {
                vec![None]
            } else {
                campaign.stores.iter().cloned().map(Some).collect()
            };
            for store in stores {
                tx.execute(
                    "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'campaign', ?2, ?3)",
                    params![store, campaign.id, item],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn campaigns(&self) -> BoxFuture<'_, DbResult<Vec<Campaign>>> {
        self.run(|c| {
            let mut stmt = c.prepare("SELECT definition FROM campaigns ORDER BY id")?;
            let defs = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for d in defs {
                out.push(serde_json::from_str(&d?)?);
            }
            Ok(out)
        })
    }

    fn customer(&self, token: CardToken) -> BoxFuture<'_, DbResult<Option<CustomerRecord>>> {
        self.run(move |c| {
            let row = c
                .query_row(
                    "SELECT display_name, email, phone, locale, segment, segment_manual, visits,
                       last_visit_ms FROM customers WHERE card_token = ?1",
                    params![token.as_str()],
                    |r| {
                        Ok(CustomerRecord {
                            card_token: token.clone(),
                            display_name: r.get(0)?,
                            email: r.get(1)?,
                            phone: r.get(2)?,
                            locale: r.get(3)?,
                            segment: r.get(4)?,
                            segment_manual: r.get(5)?,
                            visits: r.get(6)?,
                            last_visit_ms: r.get(7)?,
                            stores: Vec::new(),
                            consents: Vec::new(),
                        })
                    },
                )
                .optional()?;
            let Some(mut rec) = row else { return Ok(None) };
            let mut stmt = c.prepare(
                "SELECT store_id FROM customer_stores WHERE card_token = ?1 ORDER BY store_id",
            )?;
            rec.stores = stmt
                .query_map(params![token.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            rec.consents = consents(c, token.as_str())?;
            Ok(Some(rec))
        })
    }

    fn set_segment(
        &self,
        token: CardToken,
        segment: Option<String>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let n = match &segment {
                Some(s) => tx.execute(
                    "UPDATE customers SET segment = ?2, segment_manual = 1 WHERE card_token = ?1",
                    params![token.as_str(), s],
                )?,
                None => tx.execute(
                    "UPDATE customers SET segment_manual = 0 WHERE card_token = ?1",
                    params![token.as_str()],
                )?,
            };
            if n == 0 {
                return Ok(false);
            }
            refresh_segment(&tx, &token, now_ms)?;
            emit_profile(&tx, &token)?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn recompute_segments(&self, now_ms: i64) -> BoxFuture<'_, DbResult<u64>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let tokens: Vec<String> = {
                let mut stmt =
                    tx.prepare("SELECT card_token FROM customers WHERE segment_manual = 0")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?
            };
            let mut changed = 0;
            for t in tokens {
                let token = token_of(t)?;
                if refresh_segment(&tx, &token, now_ms)? {
                    emit_profile(&tx, &token)?;
                    changed += 1;
                }
            }
            tx.commit()?;
            Ok(changed)
        })
    }

    fn upsert_customer(&self, cu: NewCustomer, now_ms: i64) -> BoxFuture<'_, DbResult<()>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let mut dirty = BTreeSet::new();
            let effect = Effect::Registered {
                token: cu.card_token.clone(),
                display_name: cu.display_name.clone(),
                email: cu.email.clone(),
                phone: cu.phone.clone(),
                locale: cu.locale.clone(),
            };
            apply_effect(&tx, &cu.store_id, "", now_ms, &effect, &mut dirty)?;
            for purpose in &cu.consents {
                tx.execute(
                    // Only when not already given: seeding twice keeps the history honest.
                    "INSERT INTO consents (card_token, purpose, given, policy_version, policy_sha256, at_ms)
                     SELECT ?1, ?2, 1, 'admin', '', ?3
                     WHERE NOT COALESCE((SELECT given FROM consents WHERE card_token = ?1 AND purpose = ?2
                                         ORDER BY at_ms DESC, id DESC LIMIT 1), 0)",
                    params![cu.card_token.as_str(), purpose, now_ms],
                )?;
            }
            tx.execute(
                "UPDATE customers SET visits = MAX(visits, ?2),
                   last_visit_ms = CASE WHEN ?2 > 0 THEN COALESCE(last_visit_ms, ?3) ELSE last_visit_ms END
                 WHERE card_token = ?1",
                params![cu.card_token.as_str(), cu.visits, now_ms],
            )?;
            if let Some(s) = &cu.segment {
                tx.execute(
                    "UPDATE customers SET segment = ?2, segment_manual = 1 WHERE card_token = ?1",
                    params![cu.card_token.as_str(), s],
                )?;
            }
            refresh_segment(&tx, &cu.card_token, now_ms)?;
            emit_profile(&tx, &cu.card_token)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn erase_customer(&self, token: CardToken, now_ms: i64) -> BoxFuture<'_, DbResult<bool>> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let t = token.as_str();
            let known = tx.execute("DELETE FROM customers WHERE card_token = ?1", params![t])? > 0;
            let seen: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE card_token = ?1)",
                params![t],
                |r| r.get(0),
            )?;
            if !known && !seen {
                return Ok(false);
            }
            tx.execute("DELETE FROM customer_stores WHERE card_token = ?1", params![t])?;
            let registrations: Vec<(String, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT id, envelope FROM events WHERE card_token = ?1 AND type = 'customer_registered'",
                )?;
                stmt.query_map(params![t], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?
            };
            for (id, envelope) in registrations {
                tx.execute(
                    "UPDATE events SET envelope = ?2 WHERE id = ?1",
                    params![id, super::redact_registration(&envelope)],
                )?;
            }
            tx.execute(
                "INSERT INTO erasures (card_token, erased_ms) VALUES (?1, ?2)
                 ON CONFLICT (card_token) DO UPDATE SET erased_ms = excluded.erased_ms",
                params![t, now_ms],
            )?;
            tx.execute(
                "DELETE FROM changes WHERE item_key = ?1 AND kind IN ('profile', 'erasure')",
                params![t],
            )?;
            let item = serde_json::to_string(&super::erasure_item(&token, now_ms))?;
            tx.execute(
                "INSERT INTO changes (store_id, kind, item_key, item) VALUES (NULL, 'erasure', ?1, ?2)",
                params![t, item],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn stats(&self, store_id: String) -> BoxFuture<'_, DbResult<StoreStats>> {
        self.run(move |c| {
            let count = |sql: &str| -> DbResult<u64> {
                Ok(u64_of(c.query_row(sql, params![store_id], |r| r.get::<_, i64>(0))?))
            };
            let events = count("SELECT COUNT(*) FROM events WHERE store_id = ?1")?;
            let tickets_issued =
                count("SELECT COUNT(*) FROM events WHERE store_id = ?1 AND type = 'ticket_issued'")?;
            let identified_tickets = count(
                "SELECT COUNT(card_token) FROM events WHERE store_id = ?1 AND type = 'ticket_issued'",
            )?;
            let customers = count("SELECT COUNT(*) FROM customer_stores WHERE store_id = ?1")?;
            let kiosks = {
                let mut stmt = c.prepare(
                    "SELECT id, last_seen_ms, skew_ms, backlog FROM kiosks WHERE store_id = ?1 ORDER BY id",
                )?;
                stmt.query_map(params![store_id], |r| {
                    Ok(KioskHealth {
                        kiosk_id: r.get(0)?,
                        last_seen_ms: r.get(1)?,
                        skew_ms: r.get(2)?,
                        backlog: r.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?
            };
            let campaigns = {
                let mut stmt = c.prepare(
                    "SELECT campaign_id, variant,
                       SUM(CASE WHEN kind = 'shown' THEN 1 ELSE 0 END),
                       SUM(CASE WHEN kind = 'redeemed' THEN 1 ELSE 0 END)
                     FROM campaign_facts WHERE store_id = ?1
                     GROUP BY campaign_id, variant ORDER BY campaign_id, variant",
                )?;
                stmt.query_map(params![store_id], |r| {
                    Ok(super::variant_stats(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<_, _>>()?
            };
            let scores: Vec<String> = {
                let mut stmt = c.prepare(
                    "SELECT envelope FROM events WHERE store_id = ?1 AND type = 'survey_answered'",
                )?;
                stmt.query_map(params![store_id], |r| r.get(0))?.collect::<Result<_, _>>()?
            };
            let nps: Option<Nps> = super::nps_of(&scores);
            Ok(StoreStats {
                store_id: store_id.clone(),
                events,
                tickets_issued,
                identified_tickets,
                customers,
                kiosks,
                campaigns,
                nps,
            })
        })
    }

    fn set_store_timezone(
        &self,
        store_id: String,
        timezone: Option<String>,
    ) -> BoxFuture<'_, DbResult<()>> {
        self.run(move |c| {
            let exists: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM stores WHERE id = ?1)",
                params![store_id],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(DbError::NotFound(format!("store {store_id:?}")));
            }
            match timezone {
                Some(tz) => c.execute(
                    "INSERT INTO store_timezones (store_id, timezone) VALUES (?1, ?2)
                     ON CONFLICT (store_id) DO UPDATE SET timezone = excluded.timezone",
                    params![store_id, tz],
                )?,
                None => c.execute(
                    "DELETE FROM store_timezones WHERE store_id = ?1",
                    params![store_id],
                )?,
            };
            Ok(())
        })
    }

    fn list_stores(&self) -> BoxFuture<'_, DbResult<Vec<StoreSummary>>> {
        self.run(|c| {
            let mut stores: Vec<StoreSummary> = c
                .prepare(
                    "SELECT s.id, s.name, z.timezone FROM stores s
                     LEFT JOIN store_timezones z ON z.store_id = s.id ORDER BY s.id",
                )?
                .query_map([], |r| {
                    Ok(StoreSummary {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        timezone: r.get(2)?,
                        kiosks: Vec::new(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut stmt = c.prepare("SELECT store_id, id FROM kiosks ORDER BY id")?;
            let kiosks = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
            for k in kiosks {
                let (store, id) = k?;
                if let Some(s) = stores.iter_mut().find(|s| s.id == store) {
                    s.kiosks.push(id);
                }
            }
            Ok(stores)
        })
    }

    fn dashboard(&self, query: DashboardQuery) -> BoxFuture<'_, DbResult<Dashboard>> {
        self.run(move |c| {
            let rows = dashboard_rows(c, &query)?;
            assemble(&query, rows)
                .ok_or_else(|| DbError::NotFound(format!("store {:?}", query.store_id)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn events(n: u64) -> Vec<super::super::IngestEvent> {
        (1..=n)
            .map(|seq| super::super::IngestEvent {
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
            })
            .collect()
    }

    fn batch(kiosk: &str, events: Vec<super::super::IngestEvent>, sig: &str) -> IngestBatch {
        IngestBatch {
            kiosk_id: kiosk.into(),
            store_id: "s".into(),
            received_ms: 0,
            skew: None,
            backlog: None,
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
        store: &SqliteDb,
        batches: Vec<IngestBatch>,
    ) -> Vec<DbResult<Vec<EventStatus>>> {
        let n = batches.len();
        let hold = Arc::clone(&store.conn).lock_owned().await;
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|b| {
                let store = store.clone();
                tokio::spawn(async move { store.ingest(b).await })
            })
            .collect();
        while lock_queue(&store.pending).len() < n {
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
        let store = SqliteDb::open(path.to_str().unwrap()).await.unwrap();
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
        let answers = as_one_group(&store, batches).await;

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
        assert_eq!(store.event_count().await.unwrap(), 39 * 10);
        // Alone, the refused batch is answered with its own error.
        assert!(matches!(
            store.ingest(batch("bad", events(3), "sig-bad-2")).await,
            Err(DbError::Sqlite(_))
        ));
        assert_eq!(store.event_count().await.unwrap(), 39 * 10);

        // A group without failures: new events accepted, a resent batch found duplicate.
        let mut again: Vec<IngestBatch> = (40..60)
            .map(|k| batch(&format!("k{k}"), events(5), &format!("sig-{k}")))
            .collect();
        again.push(batch("k1", resent, "sig-resent"));
        let answers = as_one_group(&store, again).await;
        for a in &answers[..20] {
            assert_eq!(a.as_ref().unwrap(), &vec![EventStatus::Accepted; 5]);
        }
        assert_eq!(
            answers[20].as_ref().unwrap(),
            &vec![EventStatus::Duplicate; 10]
        );
        assert_eq!(store.event_count().await.unwrap(), 39 * 10 + 20 * 5);
    }
}
