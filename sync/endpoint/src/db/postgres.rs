//! The PostgreSQL store, for a fleet: several endpoint replicas may share one database. Dedupe
//! rests on the primary key of `events` (`INSERT ... ON CONFLICT DO NOTHING` inside the batch's
//! transaction), and feed changes are numbered under a transaction-scoped advisory lock so that
//! their sequence order is their commit order (a kiosk's cursor never skips a change that commits
//! late).

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::{Campaign, EventStatus, FeedItem, Key32, Profile, TenantKey};
use tokio::sync::Mutex;
use tokio_postgres::{Client, GenericClient, NoTls, Transaction};

use super::dashboard::{
    DashboardRows, DeviceState, KioskRow, QUARTER_MS, TicketCount, TurnTiming, assemble,
};
use super::dialect::Dialect;
use super::migrations;
use super::{
    ConsentRecord, CustomerRecord, Dashboard, DashboardQuery, Database, DbError, DbKind, DbResult,
    Effect, FeedPage, IngestBatch, IngestEvent, KioskHealth, KioskRecord, NewCustomer, NewKiosk,
    OpsFact, ReplayGuard, SkewEstimate, StoreRecord, StoreStats, StoreSummary, computed_segment,
    kiosk_profile, redemption_variant,
};

/// Fills the dashboard's tables from the events stored before they existed (once per database).
const DASHBOARD_BACKFILL: &str = r#"
INSERT INTO turns (turn_id, store_id, kiosk_id, service, identified, issued_ms)
    SELECT envelope::jsonb #>> '{payload,turn_id}', MIN(store_id), MIN(kiosk_id),
           MIN(envelope::jsonb #>> '{payload,service}'), bool_or(card_token IS NOT NULL),
           MIN(corrected_ms)
    FROM events WHERE type = 'ticket_issued' GROUP BY 1
    ON CONFLICT (turn_id) DO NOTHING;
INSERT INTO turns (turn_id, store_id, kiosk_id, called_ms)
    SELECT envelope::jsonb #>> '{payload,turn_id}', MIN(store_id), MIN(kiosk_id), MIN(corrected_ms)
    FROM events WHERE type = 'turn_called' GROUP BY 1
    ON CONFLICT (turn_id) DO UPDATE SET called_ms = excluded.called_ms;
INSERT INTO turns (turn_id, store_id, kiosk_id, served_ms)
    SELECT envelope::jsonb #>> '{payload,turn_id}', MIN(store_id), MIN(kiosk_id), MIN(corrected_ms)
    FROM events WHERE type = 'turn_served' GROUP BY 1
    ON CONFLICT (turn_id) DO UPDATE SET served_ms = excluded.served_ms;
INSERT INTO kiosk_devices (kiosk_id, device, status, reason, at_ms)
    SELECT DISTINCT ON (kiosk_id, envelope::jsonb #>> '{payload,device}')
           kiosk_id, envelope::jsonb #>> '{payload,device}', envelope::jsonb #>> '{payload,status}',
           envelope::jsonb #>> '{payload,reason}', corrected_ms
    FROM events WHERE type = 'device_status_changed'
    ORDER BY kiosk_id, envelope::jsonb #>> '{payload,device}', corrected_ms DESC, seq DESC
    ON CONFLICT (kiosk_id, device) DO NOTHING;
"#;

/// Advisory lock ids (arbitrary, fixed): schema migration, feed-change numbering.
const MIGRATION_LOCK: i64 = 0x6b69_6f73_6b01;
const CHANGES_LOCK: i64 = 0x6b69_6f73_6b02;

/// Connections per endpoint replica.
const POOL_SIZE: usize = 8;

/// The PostgreSQL store: a small pool of connections.
pub struct PgDb {
    url: String,
    pool: Vec<Mutex<Client>>,
    next: AtomicUsize,
}

async fn connect_one(url: &str) -> DbResult<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// Brings the database to the newest schema (see [`super::migrations`]); the caller holds the
/// migration lock.
async fn migrate(client: &mut Client) -> DbResult<()> {
    client
        .batch_execute(migrations::CREATE_VERSION_TABLE)
        .await?;
    let found: Option<i64> = client
        .query_opt(migrations::READ_VERSION, &[])
        .await?
        .map(|r| r.get(0));
    let write = Dialect::Postgres.sql(migrations::WRITE_VERSION);
    for m in migrations::pending(Dialect::Postgres, found)? {
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await?;
        tx.execute(write.as_ref(), &[&m.version]).await?;
        tx.commit().await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "postgres schema migrated"
        );
    }
    Ok(())
}

impl PgDb {
    /// Connects to `url` (a libpq-style URL), migrates the schema and creates the tenant key if
    /// this is a new database.
    pub async fn connect(url: &str) -> DbResult<Self> {
        let mut first = connect_one(url).await?;
        // Replicas starting together: one migrates, the others wait on the lock.
        first
            .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .await?;
        let migrated = migrate(&mut first).await;
        first
            .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            .await?;
        migrated?;
        {
            // Replicas starting together: the second waits on the settings key, then skips.
            let tx = first.transaction().await?;
            let fresh = tx
                .execute(
                    "INSERT INTO settings (key, value) VALUES ('dashboard_backfilled', '1')
                     ON CONFLICT DO NOTHING",
                    &[],
                )
                .await?
                > 0;
            if fresh {
                tx.batch_execute(DASHBOARD_BACKFILL).await?;
            }
            tx.commit().await?;
        }
        let key = Key32::from_bytes(rand::random());
        first
            .execute(
                "INSERT INTO settings (key, value) VALUES ('tenant_key', $1) ON CONFLICT DO NOTHING",
                &[&key.to_base64()],
            )
            .await?;
        let mut pool = vec![Mutex::new(first)];
        for _ in 1..POOL_SIZE {
            pool.push(Mutex::new(connect_one(url).await?));
        }
        Ok(PgDb {
            url: url.to_owned(),
            pool,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `f` with a pooled connection, reconnecting it first if the server dropped it.
    fn with<'a, T, F>(&'a self, f: F) -> BoxFuture<'a, DbResult<T>>
    where
        T: Send + 'a,
        F: for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, DbResult<T>> + Send + 'a,
    {
        Box::pin(async move {
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            // Prefer an idle connection; otherwise queue on the round-robin one.
            let mut guard = None;
            for i in 0..self.pool.len() {
                if let Ok(g) = self.pool[(start + i) % self.pool.len()].try_lock() {
                    guard = Some(g);
                    break;
                }
            }
            let mut guard = match guard {
                Some(g) => g,
                None => self.pool[start % self.pool.len()].lock().await,
            };
            if guard.is_closed() {
                *guard = connect_one(&self.url).await?;
            }
            f(&mut guard).await
        })
    }
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

/// Remembers a request signature; false when it was seen before. Forgets expired ones, but
/// none another transaction is forgetting: in a batch's transaction a plain DELETE would hold
/// the expired rows until commit, and every concurrent batch would queue behind it.
async fn remember<C: GenericClient>(c: &C, guard: &ReplayGuard) -> DbResult<bool> {
    c.execute(
        "DELETE FROM request_signatures WHERE signature IN (
           SELECT signature FROM request_signatures WHERE expires_ms < $1
           FOR UPDATE SKIP LOCKED)",
        &[&guard.now_ms],
    )
    .await?;
    let n = c
        .execute(
            "INSERT INTO request_signatures (signature, expires_ms) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&guard.signature, &guard.expires_ms],
        )
        .await?;
    Ok(n > 0)
}

async fn consents<C: GenericClient>(c: &C, token: &str) -> DbResult<Vec<ConsentRecord>> {
    let rows = c
        .query(
            "SELECT purpose, given, policy_version, policy_sha256, at_ms FROM consents
             WHERE card_token = $1 ORDER BY at_ms, id",
            &[&token],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ConsentRecord {
            purpose: r.get(0),
            given: r.get(1),
            policy_version: r.get(2),
            policy_sha256: r.get(3),
            at_ms: r.get(4),
        })
        .collect())
}

async fn lock_changes(tx: &Transaction<'_>) -> DbResult<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGES_LOCK])
        .await?;
    Ok(())
}

/// What a store's kiosks may know of a customer (`None`: unknown, or never registered a name).
async fn customer_profile<C: GenericClient>(c: &C, token: &CardToken) -> DbResult<Option<Profile>> {
    let t = token.as_str();
    let row = c
        .query_opt(
            "SELECT display_name, segment, locale FROM customers WHERE card_token = $1",
            &[&t],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (name, segment, locale): (Option<String>, String, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    let Some(name) = name else { return Ok(None) };
    let history = consents(c, t).await?;
    Ok(Some(kiosk_profile(
        token,
        &name,
        &segment,
        locale.as_deref().unwrap_or("es"),
        &history,
    )))
}

/// Publishes a customer's current profile to every store that knows them (see the SQLite store).
/// The caller holds the changes lock.
async fn emit_profile(tx: &Transaction<'_>, token: &CardToken) -> DbResult<()> {
    let t = token.as_str();
    let Some(profile) = customer_profile(tx, token).await? else {
        return Ok(());
    };
    let item = serde_json::to_string(&FeedItem::Profile(profile))?;
    let stores = tx
        .query(
            "SELECT store_id FROM customer_stores WHERE card_token = $1",
            &[&t],
        )
        .await?;
    for s in stores {
        let store: String = s.get(0);
        tx.execute(
            "DELETE FROM changes WHERE kind = 'profile' AND item_key = $1 AND store_id = $2",
            &[&t, &store],
        )
        .await?;
        tx.execute(
            "INSERT INTO changes (store_id, kind, item_key, item) VALUES ($1, 'profile', $2, $3)",
            &[&store, &t, &item],
        )
        .await?;
    }
    Ok(())
}

async fn link_store(tx: &Transaction<'_>, token: &CardToken, store: &str) -> DbResult<bool> {
    Ok(tx
        .execute(
            "INSERT INTO customer_stores (card_token, store_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&token.as_str(), &store],
        )
        .await?
        > 0)
}

async fn refresh_segment(tx: &Transaction<'_>, token: &CardToken, now_ms: i64) -> DbResult<bool> {
    let t = token.as_str();
    let row = tx
        .query_opt(
            "SELECT visits, last_visit_ms, segment, segment_manual FROM customers WHERE card_token = $1",
            &[&t],
        )
        .await?;
    let Some(row) = row else { return Ok(false) };
    let (visits, last, segment, manual): (i64, Option<i64>, String, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let computed = computed_segment(visits, last, now_ms);
    if manual || segment == computed {
        return Ok(false);
    }
    tx.execute(
        "UPDATE customers SET segment = $2 WHERE card_token = $1",
        &[&t, &computed],
    )
    .await?;
    Ok(true)
}

async fn apply_effect(
    tx: &Transaction<'_>,
    store: &str,
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (card_token) DO UPDATE SET display_name = excluded.display_name,
                   email = excluded.email, phone = excluded.phone, locale = excluded.locale,
                   home_store = COALESCE(customers.home_store, excluded.home_store),
                   registered_ms = COALESCE(customers.registered_ms, excluded.registered_ms)",
                &[&token.as_str(), display_name, email, phone, locale, &store, &corrected_ms],
            )
            .await?;
            link_store(tx, token, store).await?;
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
                "INSERT INTO customers (card_token) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&token.as_str()],
            )
            .await?;
            link_store(tx, token, store).await?;
            tx.execute(
                "INSERT INTO consents (card_token, purpose, given, policy_version, policy_sha256, at_ms, event_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&token.as_str(), purpose, given, policy_version, policy_sha256, &corrected_ms, &event_id],
            )
            .await?;
            dirty.insert(token.clone());
        }
        Effect::Visit { token } => {
            tx.execute(
                "INSERT INTO customers (card_token) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&token.as_str()],
            )
            .await?;
            tx.execute(
                "UPDATE customers SET visits = visits + 1,
                   last_visit_ms = GREATEST(COALESCE(last_visit_ms, $2), $2) WHERE card_token = $1",
                &[&token.as_str(), &corrected_ms],
            )
            .await?;
            let linked = link_store(tx, token, store).await?;
            if refresh_segment(tx, token, corrected_ms).await? || linked {
                dirty.insert(token.clone());
            }
        }
        Effect::Seen { token } => {
            let known: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM customers WHERE card_token = $1)",
                    &[&token.as_str()],
                )
                .await?
                .get(0);
            if known && link_store(tx, token, store).await? {
                dirty.insert(token.clone());
            }
        }
        Effect::CampaignShown {
            campaign_id,
            variant,
        } => {
            tx.execute(
                "INSERT INTO campaign_facts (event_id, store_id, campaign_id, variant, kind)
                 VALUES ($1, $2, $3, $4, 'shown') ON CONFLICT DO NOTHING",
                &[&event_id, &store, campaign_id, variant],
            )
            .await?;
        }
        Effect::CouponIssued {
            code,
            campaign_id,
            variant,
        } => {
            if let Some(campaign_id) = campaign_id {
                tx.execute(
                    "INSERT INTO coupons (code, campaign_id, variant) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[code, campaign_id, &variant.as_deref().unwrap_or("unknown")],
                )
                .await?;
            }
        }
        Effect::CouponRedeemed {
            code,
            campaign_id,
            token,
        } => {
            let issued = tx
                .query_opt(
                    "SELECT campaign_id, variant FROM coupons WHERE code = $1",
                    &[code],
                )
                .await?
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)));
            let (campaign_id, variant) = match (issued, campaign_id) {
                (Some(found), _) => found,
                (None, Some(id)) => {
                    let def = tx
                        .query_opt("SELECT definition FROM campaigns WHERE id = $1", &[id])
                        .await?
                        .map(|r| r.get::<_, String>(0));
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
                 VALUES ($1, $2, $3, $4, 'redeemed') ON CONFLICT DO NOTHING",
                &[&event_id, &store, &campaign_id, &variant],
            )
            .await?;
        }
    }
    Ok(())
}

/// Records what a batch's accepted events tell the dashboard (see [`super::OpsFact`]): at most
/// one statement per kind of fact, whatever the batch's size. The facts are folded first, per turn
/// and per device, into what applying them one by one in order would leave (the first call and
/// service of a turn, the latest status of a device, the last issue of a turn), since one
/// `INSERT ... ON CONFLICT DO UPDATE` may not touch a row twice. Sorted keys keep the row locks of
/// concurrent batches in one order.
async fn apply_ops<'e>(
    tx: &Transaction<'_>,
    batch: &IngestBatch,
    accepted: impl Iterator<Item = &'e IngestEvent>,
) -> DbResult<()> {
    use std::collections::BTreeMap;
    let mut issued: BTreeMap<uuid::Uuid, (&str, bool, i64)> = BTreeMap::new();
    let mut called: BTreeMap<uuid::Uuid, i64> = BTreeMap::new();
    let mut served: BTreeMap<uuid::Uuid, i64> = BTreeMap::new();
    let mut devices: BTreeMap<&str, (&str, Option<&str>, i64)> = BTreeMap::new();
    for ev in accepted {
        let at = ev.corrected_ms;
        match &ev.ops {
            None => {}
            Some(OpsFact::TurnIssued {
                turn_id,
                service,
                identified,
            }) => {
                issued.insert(*turn_id, (service, *identified, at));
            }
            Some(OpsFact::TurnCalled { turn_id }) => {
                called
                    .entry(*turn_id)
                    .and_modify(|t| *t = (*t).min(at))
                    .or_insert(at);
            }
            Some(OpsFact::TurnServed { turn_id }) => {
                served
                    .entry(*turn_id)
                    .and_modify(|t| *t = (*t).min(at))
                    .or_insert(at);
            }
            Some(OpsFact::DeviceStatus {
                device,
                status,
                reason,
            }) => {
                let later = devices.get(device).is_none_or(|(_, _, t)| at >= *t);
                if later {
                    devices.insert(device, (status, reason.as_deref(), at));
                }
            }
        }
    }
    let (store, kiosk) = (&batch.store_id, &batch.kiosk_id);
    if !issued.is_empty() {
        let turns: Vec<String> = issued.keys().map(ToString::to_string).collect();
        let services: Vec<&str> = issued.values().map(|v| v.0).collect();
        let identified: Vec<bool> = issued.values().map(|v| v.1).collect();
        let at: Vec<i64> = issued.values().map(|v| v.2).collect();
        tx.execute(
            "INSERT INTO turns (turn_id, store_id, kiosk_id, service, identified, issued_ms)
             SELECT u.turn_id, $1, $2, u.service, u.identified, u.at
             FROM UNNEST($3::text[], $4::text[], $5::bool[], $6::int8[])
               AS u(turn_id, service, identified, at)
             ON CONFLICT (turn_id) DO UPDATE SET store_id = excluded.store_id,
               kiosk_id = excluded.kiosk_id, service = excluded.service,
               identified = excluded.identified, issued_ms = excluded.issued_ms",
            &[store, kiosk, &turns, &services, &identified, &at],
        )
        .await?;
    }
    for (column, facts) in [("called_ms", &called), ("served_ms", &served)] {
        if facts.is_empty() {
            continue;
        }
        let turns: Vec<String> = facts.keys().map(ToString::to_string).collect();
        let at: Vec<i64> = facts.values().copied().collect();
        tx.execute(
            &format!(
                "INSERT INTO turns (turn_id, store_id, kiosk_id, {column})
                 SELECT u.turn_id, $1, $2, u.at FROM UNNEST($3::text[], $4::int8[]) AS u(turn_id, at)
                 ON CONFLICT (turn_id) DO UPDATE
                   SET {column} = LEAST(COALESCE(turns.{column}, excluded.{column}), excluded.{column})"
            ),
            &[store, kiosk, &turns, &at],
        )
        .await?;
    }
    if !devices.is_empty() {
        let names: Vec<&str> = devices.keys().copied().collect();
        let statuses: Vec<&str> = devices.values().map(|v| v.0).collect();
        let reasons: Vec<Option<&str>> = devices.values().map(|v| v.1).collect();
        let at: Vec<i64> = devices.values().map(|v| v.2).collect();
        tx.execute(
            "INSERT INTO kiosk_devices (kiosk_id, device, status, reason, at_ms)
             SELECT $1, u.device, u.status, u.reason, u.at
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int8[]) AS u(device, status, reason, at)
             ON CONFLICT (kiosk_id, device) DO UPDATE SET status = excluded.status,
               reason = excluded.reason, at_ms = excluded.at_ms
             WHERE excluded.at_ms >= kiosk_devices.at_ms",
            &[kiosk, &names, &statuses, &reasons, &at],
        )
        .await?;
    }
    Ok(())
}

/// The dashboard's rows of one store and window, read in one repeatable-read snapshot.
async fn dashboard_rows(c: &mut Client, q: &DashboardQuery) -> DbResult<DashboardRows> {
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut rows = DashboardRows::default();
    let store = tx
        .query_opt(
            "SELECT s.id, s.name, z.timezone FROM stores s
             LEFT JOIN store_timezones z ON z.store_id = s.id WHERE s.id = $1",
            &[&q.store_id],
        )
        .await?;
    let Some(store) = store else { return Ok(rows) };
    rows.store = Some(StoreRecord {
        id: store.get(0),
        name: store.get(1),
    });
    rows.timezone = store.get(2);
    let (s, k, since, now) = (&q.store_id, &q.kiosk_id, &q.since_ms, &q.now_ms);
    rows.tickets = tx
        .query(
            "SELECT issued_ms / $5, COALESCE(service, '?'), identified, COUNT(*) FROM turns
             WHERE store_id = $1 AND issued_ms >= $3 AND issued_ms <= $4
               AND ($2::TEXT IS NULL OR kiosk_id = $2)
             GROUP BY 1, 2, 3",
            &[s, k, since, now, &QUARTER_MS],
        )
        .await?
        .iter()
        .map(|r| TicketCount {
            quarter: r.get(0),
            service: r.get(1),
            identified: r.get(2),
            count: r.get(3),
        })
        .collect();
    rows.timings = tx
        .query(
            "SELECT COALESCE(service, '?'), called_ms - issued_ms, served_ms - called_ms FROM turns
             WHERE store_id = $1 AND issued_ms >= $3 AND issued_ms <= $4
               AND ($2::TEXT IS NULL OR kiosk_id = $2) AND called_ms IS NOT NULL",
            &[s, k, since, now],
        )
        .await?
        .iter()
        .map(|r| TurnTiming {
            service: r.get(0),
            wait_ms: r.get(1),
            service_ms: r.get(2),
        })
        .collect();
    let by_payload = async |field: &str, kind: &str| -> DbResult<Vec<(Option<String>, i64)>> {
        let sql = format!(
            "SELECT envelope::jsonb #>> '{{payload,{field}}}', COUNT(*) FROM events
             WHERE store_id = $1 AND type = '{kind}' AND corrected_ms >= $3 AND corrected_ms <= $4
               AND ($2::TEXT IS NULL OR kiosk_id = $2)
             GROUP BY 1"
        );
        Ok(tx
            .query(&sql, &[s, k, since, now])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    };
    rows.identified_by = by_payload("by", "customer_identified")
        .await?
        .into_iter()
        .filter_map(|(by, n)| Some((by?, n)))
        .collect();
    rows.scores = by_payload("score", "survey_answered")
        .await?
        .into_iter()
        .filter_map(|(score, n)| Some((score?.parse().ok()?, n)))
        .collect();
    rows.campaigns = tx
        .query(
            "SELECT f.campaign_id, f.variant,
               SUM(CASE WHEN f.kind = 'shown' THEN 1 ELSE 0 END)::BIGINT,
               SUM(CASE WHEN f.kind = 'redeemed' THEN 1 ELSE 0 END)::BIGINT
             FROM events e JOIN campaign_facts f ON f.event_id = e.id
             WHERE e.store_id = $1 AND e.type IN ('campaign_shown', 'coupon_redeemed')
               AND e.corrected_ms >= $3 AND e.corrected_ms <= $4
               AND ($2::TEXT IS NULL OR e.kiosk_id = $2)
             GROUP BY 1, 2 ORDER BY 1, 2",
            &[s, k, since, now],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    rows.campaign_names = tx
        .query("SELECT id, definition FROM campaigns", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    rows.kiosks = tx
        .query(
            "SELECT id, hardware_profile, firmware_version, last_seen_ms, skew_ms, backlog
             FROM kiosks WHERE store_id = $1 AND ($2::TEXT IS NULL OR id = $2) ORDER BY id",
            &[s, k],
        )
        .await?
        .iter()
        .map(|r| KioskRow {
            kiosk_id: r.get(0),
            hardware_profile: r.get(1),
            firmware_version: r.get(2),
            last_seen_ms: r.get(3),
            skew_ms: r.get(4),
            backlog: r.get(5),
        })
        .collect();
    rows.devices = tx
        .query(
            "SELECT d.kiosk_id, d.device, d.status, d.reason, d.at_ms
             FROM kiosk_devices d JOIN kiosks k ON k.id = d.kiosk_id
             WHERE k.store_id = $1 AND ($2::TEXT IS NULL OR k.id = $2)",
            &[s, k],
        )
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                DeviceState {
                    device: r.get(1),
                    status: r.get(2),
                    reason: r.get(3),
                    at_ms: r.get(4),
                },
            )
        })
        .collect();
    let logs = tx
        .prepare(
            "SELECT corrected_ms, envelope FROM events
             WHERE kiosk_id = $1 AND type = 'device_log'
             ORDER BY corrected_ms DESC, seq DESC LIMIT $2",
        )
        .await?;
    for kiosk in &rows.kiosks {
        for r in tx.query(&logs, &[&kiosk.kiosk_id, &q.log_limit()]).await? {
            rows.logs.push((kiosk.kiosk_id.clone(), r.get(0), r.get(1)));
        }
    }
    tx.commit().await?;
    Ok(rows)
}

/// Inserts a batch's events in one statement (the rows travel as arrays; a statement per row
/// made the store a round trip per event) and returns the ids it inserted: an id already stored,
/// or repeated within the batch, is inserted once.
async fn insert_events(
    tx: &Transaction<'_>,
    batch: &IngestBatch,
    envelopes: &[&str],
) -> DbResult<HashSet<uuid::Uuid>> {
    let evs = &batch.events;
    let ids: Vec<String> = evs.iter().map(|e| e.id.to_string()).collect();
    let seqs: Vec<i64> = evs.iter().map(|e| i64_of(e.seq)).collect();
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind).collect();
    let versions: Vec<i32> = evs.iter().map(|e| i32::from(e.schema_version)).collect();
    let device_ms: Vec<i64> = evs.iter().map(|e| e.device_ms).collect();
    let corrected_ms: Vec<i64> = evs.iter().map(|e| e.corrected_ms).collect();
    let tokens: Vec<Option<&str>> = evs
        .iter()
        .map(|e| e.card_token.as_ref().map(CardToken::as_str))
        .collect();
    let rows = tx
        .query(
            "INSERT INTO events (id, kiosk_id, store_id, seq, type, schema_version, device_ms,
               corrected_ms, received_ms, card_token, envelope)
             SELECT u.id, $1, $2, u.seq, u.type, u.version, u.device_ms, u.corrected_ms, $3,
               u.card_token, u.envelope
             FROM UNNEST($4::text[], $5::int8[], $6::text[], $7::int4[], $8::int8[], $9::int8[],
                         $10::text[], $11::text[])
               AS u(id, seq, type, version, device_ms, corrected_ms, card_token, envelope)
             ON CONFLICT (id) DO NOTHING
             RETURNING id",
            &[
                &batch.kiosk_id,
                &batch.store_id,
                &batch.received_ms,
                &ids,
                &seqs,
                &kinds,
                &versions,
                &device_ms,
                &corrected_ms,
                &tokens,
                &envelopes,
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id: &str = r.get(0);
            uuid::Uuid::parse_str(id).map_err(|e| DbError::Corrupt(format!("event id {id}: {e}")))
        })
        .collect()
}

impl Database for PgDb {
    fn kind(&self) -> DbKind {
        DbKind::Postgres
    }

    fn tenant_key(&self) -> BoxFuture<'_, DbResult<TenantKey>> {
        self.with(|c| {
            Box::pin(async move {
                let v: String = c
                    .query_one("SELECT value FROM settings WHERE key = 'tenant_key'", &[])
                    .await?
                    .get(0);
                Key32::from_base64(&v).map_err(|e| DbError::Corrupt(format!("tenant key: {e}")))
            })
        })
    }

    fn set_tenant_key_if_unused(&self, key: TenantKey) -> BoxFuture<'_, DbResult<bool>> {
        self.with(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "UPDATE settings SET value = $1 WHERE key = 'tenant_key'
                           AND NOT EXISTS (SELECT 1 FROM kiosks) AND NOT EXISTS (SELECT 1 FROM customers)",
                        &[&key.to_base64()],
                    )
                    .await?;
                Ok(n > 0)
            })
        })
    }

    fn upsert_store(&self, store: StoreRecord) -> BoxFuture<'_, DbResult<()>> {
        self.with(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO stores (id, name) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                    &[&store.id, &store.name],
                )
                .await?;
                Ok(())
            })
        })
    }

    fn store(&self, id: String) -> BoxFuture<'_, DbResult<Option<StoreRecord>>> {
        self.with(move |c| {
            Box::pin(async move {
                Ok(
                    c.query_opt("SELECT id, name FROM stores WHERE id = $1", &[&id])
                        .await?
                        .map(|r| StoreRecord {
                            id: r.get(0),
                            name: r.get(1),
                        }),
                )
            })
        })
    }

    fn create_enroll_code(
        &self,
        code_hash: String,
        store_id: String,
        expires_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>> {
        self.with(move |c| {
            Box::pin(async move {
                let exists: bool = c
                    .query_one("SELECT EXISTS (SELECT 1 FROM stores WHERE id = $1)", &[&store_id])
                    .await?
                    .get(0);
                if !exists {
                    return Err(DbError::NotFound(format!("store {store_id:?}")));
                }
                c.execute(
                    "INSERT INTO enroll_codes (code_hash, store_id, expires_ms) VALUES ($1, $2, $3)",
                    &[&code_hash, &store_id, &expires_ms],
                )
                .await?;
                Ok(())
            })
        })
    }

    fn redeem_enroll_code(
        &self,
        code_hash: String,
        now_ms: i64,
        kiosk: NewKiosk,
    ) -> BoxFuture<'_, DbResult<Option<StoreRecord>>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let row = tx
                    .query_opt(
                        "UPDATE enroll_codes SET used_ms = $2, kiosk_id = $3
                         WHERE code_hash = $1 AND used_ms IS NULL AND expires_ms > $2
                         RETURNING store_id",
                        &[&code_hash, &now_ms, &kiosk.id],
                    )
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let store_id: String = row.get(0);
                tx.execute(
                    "INSERT INTO kiosks (id, store_id, secret, hardware_profile, firmware_version, enrolled_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &kiosk.id,
                        &store_id,
                        &kiosk.secret.to_base64(),
                        &kiosk.hardware_profile,
                        &kiosk.firmware_version,
                        &now_ms,
                    ],
                )
                .await?;
                let r = tx.query_one("SELECT id, name FROM stores WHERE id = $1", &[&store_id]).await?;
                let store = StoreRecord { id: r.get(0), name: r.get(1) };
                tx.commit().await?;
                Ok(Some(store))
            })
        })
    }

    fn kiosk(&self, kiosk_id: String) -> BoxFuture<'_, DbResult<Option<KioskRecord>>> {
        self.with(move |c| {
            Box::pin(async move {
                let Some(r) = c
                    .query_opt(
                        "SELECT store_id, secret, skew_ms, skew_at_ms FROM kiosks WHERE id = $1",
                        &[&kiosk_id],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let secret: String = r.get(1);
                let secret = Key32::from_base64(&secret)
                    .map_err(|e| DbError::Corrupt(format!("secret of kiosk {kiosk_id}: {e}")))?;
                let skew = r
                    .get::<_, Option<i64>>(2)
                    .zip(r.get::<_, Option<i64>>(3))
                    .map(|(skew_ms, at_ms)| SkewEstimate { skew_ms, at_ms });
                Ok(Some(KioskRecord {
                    id: kiosk_id,
                    store_id: r.get(0),
                    secret,
                    skew,
                }))
            })
        })
    }

    fn remember_signature(
        &self,
        signature: String,
        expires_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>> {
        self.with(move |c| {
            Box::pin(async move {
                let guard = ReplayGuard {
                    signature,
                    expires_ms,
                    now_ms,
                };
                remember(&*c, &guard).await
            })
        })
    }

    fn touch_kiosk(&self, kiosk_id: String, now_ms: i64) -> BoxFuture<'_, DbResult<()>> {
        self.with(move |c| {
            Box::pin(async move {
                c.execute(
                    "UPDATE kiosks SET last_seen_ms = $2 WHERE id = $1",
                    &[&kiosk_id, &now_ms],
                )
                .await?;
                Ok(())
            })
        })
    }

    fn ingest(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<Vec<EventStatus>>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                if let Some(guard) = &batch.replay
                    && !remember(&tx, guard).await?
                {
                    return Err(DbError::Replayed);
                }
                // A registration of a customer erased after it happened is stored redacted and
                // creates no profile.
                let mut effects: Vec<&Effect> = Vec::with_capacity(batch.events.len());
                let mut redacted: Vec<Option<String>> = Vec::with_capacity(batch.events.len());
                for ev in &batch.events {
                    let mut effect = &ev.effect;
                    let mut envelope = None;
                    if let Effect::Registered { token, .. } = &ev.effect {
                        let erased = tx
                            .query_opt(
                                "SELECT erased_ms FROM erasures WHERE card_token = $1",
                                &[&token.as_str()],
                            )
                            .await?
                            .map(|r| r.get::<_, i64>(0));
                        if erased.is_some_and(|at| at >= ev.corrected_ms) {
                            envelope = Some(super::redact_registration(&ev.envelope));
                            effect = &Effect::None;
                        }
                    }
                    effects.push(effect);
                    redacted.push(envelope);
                }
                let envelopes: Vec<&str> = batch
                    .events
                    .iter()
                    .zip(&redacted)
                    .map(|(ev, r)| r.as_deref().unwrap_or(&ev.envelope))
                    .collect();
                let mut inserted = insert_events(&tx, &batch, &envelopes).await?;
                let mut statuses = Vec::with_capacity(batch.events.len());
                let mut accepted = Vec::with_capacity(inserted.len());
                let mut dirty = BTreeSet::new();
                for (ev, effect) in batch.events.iter().zip(effects) {
                    // The first of the batch's events with an inserted id is the accepted one.
                    if inserted.remove(&ev.id) {
                        let id = ev.id.to_string();
                        apply_effect(
                            &tx,
                            &batch.store_id,
                            &id,
                            ev.corrected_ms,
                            effect,
                            &mut dirty,
                        )
                        .await?;
                        accepted.push(ev);
                        statuses.push(EventStatus::Accepted);
                    } else {
                        statuses.push(EventStatus::Duplicate);
                    }
                }
                apply_ops(&tx, &batch, accepted.into_iter()).await?;
                if !dirty.is_empty() {
                    lock_changes(&tx).await?;
                    for token in &dirty {
                        emit_profile(&tx, token).await?;
                    }
                }
                tx.execute(
                    "UPDATE kiosks SET last_seen_ms = $2,
                       skew_ms = COALESCE($3, skew_ms), skew_at_ms = COALESCE($4, skew_at_ms),
                       backlog = COALESCE($5, backlog) WHERE id = $1",
                    &[
                        &batch.kiosk_id,
                        &batch.received_ms,
                        &batch.skew.map(|s| s.skew_ms),
                        &batch.skew.map(|s| s.at_ms),
                        &batch.backlog.map(i64_of),
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok(statuses)
            })
        })
    }

    fn insert_events_bare(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<u64>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let envelopes: Vec<&str> =
                    batch.events.iter().map(|e| e.envelope.as_str()).collect();
                let n = insert_events(&tx, &batch, &envelopes).await?.len();
                tx.commit().await?;
                Ok(n as u64)
            })
        })
    }

    fn event_count(&self) -> BoxFuture<'_, DbResult<u64>> {
        self.with(|c| {
            Box::pin(async move {
                let n: i64 = c
                    .query_one("SELECT COUNT(*) FROM events", &[])
                    .await?
                    .get(0);
                Ok(u64_of(n))
            })
        })
    }

    fn feed(&self, store_id: String, cursor: u64, limit: u32) -> BoxFuture<'_, DbResult<FeedPage>> {
        self.with(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT seq, item FROM changes WHERE seq > $1 AND (store_id = $2 OR store_id IS NULL)
                         ORDER BY seq LIMIT $3",
                        &[&i64_of(cursor), &store_id, &(i64::from(limit) + 1)],
                    )
                    .await?;
                let mut items = Vec::new();
                let mut next_cursor = cursor;
                let mut more = false;
                for r in rows {
                    if items.len() == limit as usize {
                        more = true;
                        break;
                    }
                    let item: String = r.get(1);
                    items.push(serde_json::from_str::<FeedItem>(&item)?);
                    next_cursor = u64_of(r.get(0));
                }
                Ok(FeedPage { items, next_cursor, more })
            })
        })
    }

    fn lookup_profile(
        &self,
        store_id: String,
        token: CardToken,
    ) -> BoxFuture<'_, DbResult<Option<kiosk_protocol::wire::Profile>>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let Some(profile) = customer_profile(&tx, &token).await? else {
                    return Ok(None);
                };
                if link_store(&tx, &token, &store_id).await? {
                    lock_changes(&tx).await?;
                    emit_profile(&tx, &token).await?;
                }
                tx.commit().await?;
                Ok(Some(profile))
            })
        })
    }

    fn upsert_campaign(&self, campaign: Campaign, now_ms: i64) -> BoxFuture<'_, DbResult<()>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let def = serde_json::to_string(&campaign)?;
                tx.execute(
                    "INSERT INTO campaigns (id, definition, updated_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                       updated_ms = excluded.updated_ms",
                    &[&campaign.id, &def, &now_ms],
                )
                .await?;
                lock_changes(&tx).await?;
                tx.execute("DELETE FROM changes WHERE kind = 'campaign' AND item_key = $1", &[
                    &campaign.id,
                ])
                .await?;
                let item = serde_json::to_string(&FeedItem::Campaign(campaign.clone()))?;
                let stores: Vec<Option<String>> = if campaign.stores.is_empty() {
                    vec![None]
                } else {
                    campaign.stores.iter().cloned().map(Some).collect()
                };
                for store in stores {
                    tx.execute(
                        "INSERT INTO changes (store_id, kind, item_key, item) VALUES ($1, 'campaign', $2, $3)",
                        &[&store, &campaign.id, &item],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            })
        })
    }

    fn campaigns(&self) -> BoxFuture<'_, DbResult<Vec<Campaign>>> {
        self.with(|c| {
            Box::pin(async move {
                let rows = c
                    .query("SELECT definition FROM campaigns ORDER BY id", &[])
                    .await?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(serde_json::from_str(r.get::<_, &str>(0))?);
                }
                Ok(out)
            })
        })
    }

    fn customer(&self, token: CardToken) -> BoxFuture<'_, DbResult<Option<CustomerRecord>>> {
        self.with(move |c| {
            Box::pin(async move {
                let t = token.as_str();
                let row = c
                    .query_opt(
                        "SELECT display_name, email, phone, locale, segment, segment_manual, visits,
                           last_visit_ms FROM customers WHERE card_token = $1",
                        &[&t],
                    )
                    .await?;
                let Some(r) = row else { return Ok(None) };
                let stores = c
                    .query(
                        "SELECT store_id FROM customer_stores WHERE card_token = $1 ORDER BY store_id",
                        &[&t],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                Ok(Some(CustomerRecord {
                    card_token: token.clone(),
                    display_name: r.get(0),
                    email: r.get(1),
                    phone: r.get(2),
                    locale: r.get(3),
                    segment: r.get(4),
                    segment_manual: r.get(5),
                    visits: r.get(6),
                    last_visit_ms: r.get(7),
                    stores,
                    consents: consents(c, t).await?,
                }))
            })
        })
    }

    fn set_segment(
        &self,
        token: CardToken,
        segment: Option<String>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let t = token.as_str();
                let n = match &segment {
                    Some(s) => {
                        tx.execute(
                            "UPDATE customers SET segment = $2, segment_manual = TRUE WHERE card_token = $1",
                            &[&t, s],
                        )
                        .await?
                    }
                    None => {
                        tx.execute(
                            "UPDATE customers SET segment_manual = FALSE WHERE card_token = $1",
                            &[&t],
                        )
                        .await?
                    }
                };
                if n == 0 {
                    return Ok(false);
                }
                refresh_segment(&tx, &token, now_ms).await?;
                lock_changes(&tx).await?;
                emit_profile(&tx, &token).await?;
                tx.commit().await?;
                Ok(true)
            })
        })
    }

    fn recompute_segments(&self, now_ms: i64) -> BoxFuture<'_, DbResult<u64>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let rows = tx
                    .query(
                        "SELECT card_token FROM customers WHERE NOT segment_manual",
                        &[],
                    )
                    .await?;
                let mut changed = Vec::new();
                for r in rows {
                    let token = token_of(r.get(0))?;
                    if refresh_segment(&tx, &token, now_ms).await? {
                        changed.push(token);
                    }
                }
                if !changed.is_empty() {
                    lock_changes(&tx).await?;
                    for token in &changed {
                        emit_profile(&tx, token).await?;
                    }
                }
                tx.commit().await?;
                Ok(changed.len() as u64)
            })
        })
    }

    fn upsert_customer(&self, cu: NewCustomer, now_ms: i64) -> BoxFuture<'_, DbResult<()>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let mut dirty = BTreeSet::new();
                let t = cu.card_token.as_str();
                let effect = Effect::Registered {
                    token: cu.card_token.clone(),
                    display_name: cu.display_name.clone(),
                    email: cu.email.clone(),
                    phone: cu.phone.clone(),
                    locale: cu.locale.clone(),
                };
                apply_effect(&tx, &cu.store_id, "", now_ms, &effect, &mut dirty).await?;
                for purpose in &cu.consents {
                    tx.execute(
                        // Only when not already given: seeding twice keeps the history honest.
                        "INSERT INTO consents (card_token, purpose, given, policy_version, policy_sha256, at_ms)
                         SELECT $1::TEXT, $2::TEXT, TRUE, 'admin', '', $3::BIGINT
                         WHERE NOT COALESCE((SELECT given FROM consents WHERE card_token = $1 AND purpose = $2
                                             ORDER BY at_ms DESC, id DESC LIMIT 1), FALSE)",
                        &[&t, purpose, &now_ms],
                    )
                    .await?;
                }
                tx.execute(
                    "UPDATE customers SET visits = GREATEST(visits, $2),
                       last_visit_ms = CASE WHEN $2 > 0 THEN COALESCE(last_visit_ms, $3) ELSE last_visit_ms END
                     WHERE card_token = $1",
                    &[&t, &cu.visits, &now_ms],
                )
                .await?;
                if let Some(s) = &cu.segment {
                    tx.execute(
                        "UPDATE customers SET segment = $2, segment_manual = TRUE WHERE card_token = $1",
                        &[&t, s],
                    )
                    .await?;
                }
                refresh_segment(&tx, &cu.card_token, now_ms).await?;
                lock_changes(&tx).await?;
                emit_profile(&tx, &cu.card_token).await?;
                tx.commit().await?;
                Ok(())
            })
        })
    }

    fn erase_customer(&self, token: CardToken, now_ms: i64) -> BoxFuture<'_, DbResult<bool>> {
        self.with(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let t = token.as_str();
                let known = tx.execute("DELETE FROM customers WHERE card_token = $1", &[&t]).await? > 0;
                let seen: bool = tx
                    .query_one("SELECT EXISTS (SELECT 1 FROM events WHERE card_token = $1)", &[&t])
                    .await?
                    .get(0);
                if !known && !seen {
                    return Ok(false);
                }
                tx.execute("DELETE FROM customer_stores WHERE card_token = $1", &[&t]).await?;
                let regs = tx
                    .query(
                        "SELECT id, envelope FROM events WHERE card_token = $1 AND type = 'customer_registered'",
                        &[&t],
                    )
                    .await?;
                for r in regs {
                    let (id, envelope): (String, String) = (r.get(0), r.get(1));
                    tx.execute("UPDATE events SET envelope = $2 WHERE id = $1", &[
                        &id,
                        &super::redact_registration(&envelope),
                    ])
                    .await?;
                }
                tx.execute(
                    "INSERT INTO erasures (card_token, erased_ms) VALUES ($1, $2)
                     ON CONFLICT (card_token) DO UPDATE SET erased_ms = excluded.erased_ms",
                    &[&t, &now_ms],
                )
                .await?;
                lock_changes(&tx).await?;
                tx.execute(
                    "DELETE FROM changes WHERE item_key = $1 AND kind IN ('profile', 'erasure')",
                    &[&t],
                )
                .await?;
                let item = serde_json::to_string(&super::erasure_item(&token, now_ms))?;
                tx.execute(
                    "INSERT INTO changes (store_id, kind, item_key, item) VALUES (NULL, 'erasure', $1, $2)",
                    &[&t, &item],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            })
        })
    }

    fn stats(&self, store_id: String) -> BoxFuture<'_, DbResult<StoreStats>> {
        self.with(move |c| {
            Box::pin(async move {
                let s = &store_id;
                let count = async |sql: &str| -> DbResult<u64> {
                    Ok(u64_of(c.query_one(sql, &[s]).await?.get::<_, i64>(0)))
                };
                let events = count("SELECT COUNT(*) FROM events WHERE store_id = $1").await?;
                let tickets_issued = count(
                    "SELECT COUNT(*) FROM events WHERE store_id = $1 AND type = 'ticket_issued'",
                )
                .await?;
                let identified_tickets = count(
                    "SELECT COUNT(card_token) FROM events WHERE store_id = $1 AND type = 'ticket_issued'",
                )
                .await?;
                let customers =
                    count("SELECT COUNT(*) FROM customer_stores WHERE store_id = $1").await?;
                let kiosks = c
                    .query(
                        "SELECT id, last_seen_ms, skew_ms, backlog FROM kiosks WHERE store_id = $1 ORDER BY id",
                        &[s],
                    )
                    .await?
                    .iter()
                    .map(|r| KioskHealth {
                        kiosk_id: r.get(0),
                        last_seen_ms: r.get(1),
                        skew_ms: r.get(2),
                        backlog: r.get(3),
                    })
                    .collect();
                let campaigns = c
                    .query(
                        "SELECT campaign_id, variant,
                           SUM(CASE WHEN kind = 'shown' THEN 1 ELSE 0 END)::BIGINT,
                           SUM(CASE WHEN kind = 'redeemed' THEN 1 ELSE 0 END)::BIGINT
                         FROM campaign_facts WHERE store_id = $1
                         GROUP BY campaign_id, variant ORDER BY campaign_id, variant",
                        &[s],
                    )
                    .await?
                    .iter()
                    .map(|r| super::variant_stats(r.get(0), r.get(1), r.get(2), r.get(3)))
                    .collect();
                let scores: Vec<String> = c
                    .query(
                        "SELECT envelope FROM events WHERE store_id = $1 AND type = 'survey_answered'",
                        &[s],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                Ok(StoreStats {
                    store_id: store_id.clone(),
                    events,
                    tickets_issued,
                    identified_tickets,
                    customers,
                    kiosks,
                    campaigns,
                    nps: super::nps_of(&scores),
                })
            })
        })
    }

    fn set_store_timezone(
        &self,
        store_id: String,
        timezone: Option<String>,
    ) -> BoxFuture<'_, DbResult<()>> {
        self.with(move |c| {
            Box::pin(async move {
                let exists: bool = c
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM stores WHERE id = $1)",
                        &[&store_id],
                    )
                    .await?
                    .get(0);
                if !exists {
                    return Err(DbError::NotFound(format!("store {store_id:?}")));
                }
                match timezone {
                    Some(tz) => {
                        c.execute(
                            "INSERT INTO store_timezones (store_id, timezone) VALUES ($1, $2)
                             ON CONFLICT (store_id) DO UPDATE SET timezone = excluded.timezone",
                            &[&store_id, &tz],
                        )
                        .await?
                    }
                    None => {
                        c.execute(
                            "DELETE FROM store_timezones WHERE store_id = $1",
                            &[&store_id],
                        )
                        .await?
                    }
                };
                Ok(())
            })
        })
    }

    fn list_stores(&self) -> BoxFuture<'_, DbResult<Vec<StoreSummary>>> {
        self.with(|c| {
            Box::pin(async move {
                let mut stores: Vec<StoreSummary> = c
                    .query(
                        "SELECT s.id, s.name, z.timezone FROM stores s
                         LEFT JOIN store_timezones z ON z.store_id = s.id ORDER BY s.id",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| StoreSummary {
                        id: r.get(0),
                        name: r.get(1),
                        timezone: r.get(2),
                        kiosks: Vec::new(),
                    })
                    .collect();
                for r in c
                    .query("SELECT store_id, id FROM kiosks ORDER BY id", &[])
                    .await?
                {
                    let store: String = r.get(0);
                    if let Some(s) = stores.iter_mut().find(|s| s.id == store) {
                        s.kiosks.push(r.get(1));
                    }
                }
                Ok(stores)
            })
        })
    }

    fn dashboard(&self, query: DashboardQuery) -> BoxFuture<'_, DbResult<Dashboard>> {
        self.with(move |c| {
            Box::pin(async move {
                let rows = dashboard_rows(c, &query).await?;
                assemble(&query, rows)
                    .ok_or_else(|| DbError::NotFound(format!("store {:?}", query.store_id)))
            })
        })
    }
}
