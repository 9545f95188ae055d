//! The endpoint's database logic, written once for both databases: profiles, segments and
//! consents, the effects of ingested events, the feed, campaigns, erasure, statistics and the
//! dashboard's queries. Every function runs its statements through an [`Exec`] (see
//! [`super::exec`] for why it is async for both), in the shared SQL syntax of
//! [`super::dialect`]; the backends decide only how a call gets a connection and a transaction
//! ([`super::sqlite`]: one writer with group commit; [`super::postgres`]: a pool and an advisory
//! lock on feed numbering).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use kiosk_protocol::CardToken;
use kiosk_protocol::store_config::{StoreConfig, StoreConfigParts};
use kiosk_protocol::wire::{Campaign, FeedItem, Key32, Profile, TenantKey};

use super::dashboard::{
    Dashboard, DashboardQuery, DashboardRows, DeviceState, KioskRow, StoreSummary, assemble,
};
use super::dialect::Dialect;
use super::exec::{Exec, Row, Value, args};
use super::model::{
    AuditEntry, ConsentRecord, CustomerRecord, DbError, DbResult, Effect, FeedPage, IngestBatch,
    IngestEvent, KioskHealth, KioskRecord, NewCustomer, NewKiosk, QueueStepKind, ReplayGuard,
    SkewEstimate, StoreRecord, StoreStats, computed_segment, erasure_item, kiosk_profile, nps_of,
    redact_registration, redemption_variant, variant_stats,
};
use super::queue::{
    self, COUNTER_OPEN_AFTER_CALL_MS, ConflictRecord, LiveQueue, LiveQueueQuery, LiveRows,
    MAX_CONFLICTS_LISTED, StepRow, TurnState, TurnStatus,
};
use super::rollup::{first_answer_only, window_rows};

pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn token_of(s: String) -> DbResult<CardToken> {
    s.parse()
        .map_err(|e| DbError::Corrupt(format!("card token in database: {e}")))
}

fn store_record(r: &Row) -> DbResult<StoreRecord> {
    Ok(StoreRecord {
        id: r.get(0)?,
        name: r.get(1)?,
    })
}

/// The tenant key.
pub(crate) async fn tenant_key(e: &impl Exec) -> DbResult<TenantKey> {
    let v: String = e
        .query_one("SELECT value FROM settings WHERE key = 'tenant_key'", &[])
        .await?
        .get(0)?;
    TenantKey::from_base64(&v).map_err(|e| DbError::Corrupt(format!("tenant key: {e}")))
}

/// What opening a database does after its migrations, in one transaction: fills the dashboard's
/// tables from the events stored before they existed (once per database; `backfill` is the
/// dialect's statements), and creates the tenant key of a new database.
pub(crate) async fn finish_open(e: &impl Exec, backfill: &str) -> DbResult<()> {
    let first = e
        .execute(
            "INSERT INTO settings (key, value) VALUES ('dashboard_backfilled', '1')
             ON CONFLICT DO NOTHING",
            &[],
        )
        .await?
        > 0;
    if first {
        e.batch(backfill).await?;
    }
    let first_queue = e
        .execute(
            "INSERT INTO settings (key, value) VALUES ('queue_backfilled', '1')
             ON CONFLICT DO NOTHING",
            &[],
        )
        .await?
        > 0;
    if first_queue {
        let now = server_now_ms();
        backfill_queue(e, now - QUEUE_BACKFILL_MS).await?;
    }
    let key = TenantKey::from_bytes(rand::random());
    e.execute(
        "INSERT INTO settings (key, value) VALUES ('tenant_key', ?1) ON CONFLICT DO NOTHING",
        args![key.to_base64()],
    )
    .await?;
    Ok(())
}

/// See [`super::database::Database::set_tenant_key_if_unused`].
pub(crate) async fn set_tenant_key_if_unused(e: &impl Exec, key: TenantKey) -> DbResult<bool> {
    let n = e
        .execute(
            "UPDATE settings SET value = ?1 WHERE key = 'tenant_key'
               AND NOT EXISTS (SELECT 1 FROM kiosks) AND NOT EXISTS (SELECT 1 FROM customers)",
            args![key.to_base64()],
        )
        .await?;
    Ok(n > 0)
}

/// See [`super::database::Database::upsert_store`].
pub(crate) async fn upsert_store(e: &impl Exec, store: StoreRecord) -> DbResult<()> {
    e.execute(
        "INSERT INTO stores (id, name) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        args![store.id, store.name],
    )
    .await?;
    Ok(())
}

/// See [`super::database::Database::store`].
pub(crate) async fn store(e: &impl Exec, id: String) -> DbResult<Option<StoreRecord>> {
    e.query_opt("SELECT id, name FROM stores WHERE id = ?1", args![id])
        .await?
        .map(|r| store_record(&r))
        .transpose()
}

/// `NotFound` unless the store exists.
async fn require_store(e: &impl Exec, store_id: &str) -> DbResult<()> {
    let exists: bool = e
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM stores WHERE id = ?1)",
            args![store_id],
        )
        .await?
        .get(0)?;
    if exists {
        Ok(())
    } else {
        Err(DbError::NotFound(format!("store {store_id:?}")))
    }
}

/// See [`super::database::Database::create_enroll_code`].
pub(crate) async fn create_enroll_code(
    e: &impl Exec,
    code_hash: String,
    store_id: String,
    expires_ms: i64,
) -> DbResult<()> {
    require_store(e, &store_id).await?;
    e.execute(
        "INSERT INTO enroll_codes (code_hash, store_id, expires_ms) VALUES (?1, ?2, ?3)",
        args![code_hash, store_id, expires_ms],
    )
    .await?;
    Ok(())
}

/// See [`super::database::Database::redeem_enroll_code`]; in a transaction.
pub(crate) async fn redeem_enroll_code(
    e: &impl Exec,
    code_hash: String,
    now_ms: i64,
    kiosk: NewKiosk,
) -> DbResult<Option<StoreRecord>> {
    let row = e
        .query_opt(
            "UPDATE enroll_codes SET used_ms = ?2, kiosk_id = ?3
             WHERE code_hash = ?1 AND used_ms IS NULL AND expires_ms > ?2
             RETURNING store_id",
            args![code_hash, now_ms, &kiosk.id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let store_id: String = row.get(0)?;
    e.execute(
        "INSERT INTO kiosks (id, store_id, secret, hardware_profile, firmware_version, enrolled_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![
            kiosk.id,
            &store_id,
            kiosk.secret.to_base64(),
            kiosk.hardware_profile,
            kiosk.firmware_version,
            now_ms
        ],
    )
    .await?;
    let r = e
        .query_one("SELECT id, name FROM stores WHERE id = ?1", args![store_id])
        .await?;
    Ok(Some(store_record(&r)?))
}

/// See [`super::database::Database::kiosk`].
pub(crate) async fn kiosk(e: &impl Exec, kiosk_id: String) -> DbResult<Option<KioskRecord>> {
    let Some(r) = e
        .query_opt(
            "SELECT store_id, secret, skew_ms, skew_at_ms, skew_samples FROM kiosks WHERE id = ?1",
            args![&kiosk_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let secret: String = r.get(1)?;
    let secret = Key32::from_base64(&secret)
        .map_err(|e| DbError::Corrupt(format!("secret of kiosk {kiosk_id}: {e}")))?;
    let skew = r
        .get::<Option<i64>>(2)?
        .zip(r.get::<Option<i64>>(3)?)
        .map(|(skew_ms, at_ms)| SkewEstimate { skew_ms, at_ms });
    // Unreadable samples (written by a later version, say) only cost the history: the next
    // batches make a new one.
    let skew_samples = r
        .get::<Option<String>>(4)?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok(Some(KioskRecord {
        id: kiosk_id,
        store_id: r.get(0)?,
        secret,
        skew,
        skew_samples,
    }))
}

/// Remembers a request signature; false when it was seen before. Forgets expired ones: on
/// PostgreSQL only those no other transaction is forgetting (in a batch's transaction a plain
/// DELETE would hold the expired rows until commit, and every concurrent batch would queue
/// behind it); SQLite has one writer.
pub(crate) async fn remember(e: &impl Exec, guard: &ReplayGuard) -> DbResult<bool> {
    let forget = match e.dialect() {
        Dialect::Sqlite => "DELETE FROM request_signatures WHERE expires_ms < ?1",
        Dialect::Postgres => {
            "DELETE FROM request_signatures WHERE signature IN (
               SELECT signature FROM request_signatures WHERE expires_ms < ?1
               FOR UPDATE SKIP LOCKED)"
        }
    };
    e.execute(forget, args![guard.now_ms]).await?;
    let n = e
        .execute(
            "INSERT INTO request_signatures (signature, expires_ms) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
            args![&guard.signature, guard.expires_ms],
        )
        .await?;
    Ok(n > 0)
}

/// See [`super::database::Database::touch_kiosk`].
pub(crate) async fn touch_kiosk(e: &impl Exec, kiosk_id: String, now_ms: i64) -> DbResult<()> {
    e.execute(
        "UPDATE kiosks SET last_seen_ms = ?2 WHERE id = ?1",
        args![kiosk_id, now_ms],
    )
    .await?;
    Ok(())
}

/// See [`super::database::Database::event_count`].
pub(crate) async fn event_count(e: &impl Exec) -> DbResult<u64> {
    let n: i64 = e
        .query_one("SELECT COUNT(*) FROM events", &[])
        .await?
        .get(0)?;
    Ok(u64_of(n))
}

/// See [`super::database::Database::feed`].
pub(crate) async fn feed(
    e: &impl Exec,
    store_id: String,
    cursor: u64,
    limit: u32,
    feed_version: u32,
) -> DbResult<FeedPage> {
    // A kiosk of feed version 1 fails on a kind it does not know: it never gets a store
    // configuration (its cursor moves past them with the next item it knows).
    let rows = e
        .query(
            "SELECT seq, item FROM changes WHERE seq > ?1 AND (store_id = ?2 OR store_id IS NULL)
               AND (kind <> 'store_config' OR CAST(?4 AS BIGINT) >= 2)
             ORDER BY seq LIMIT ?3",
            args![
                i64_of(cursor),
                store_id,
                i64::from(limit) + 1,
                i64::from(feed_version)
            ],
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
        let item: String = r.get(1)?;
        // A campaign without the fields the kiosk's version does not know (a campaign refuses
        // unknown fields: a picture would fail a version-2 kiosk's whole page).
        items.push(match serde_json::from_str::<FeedItem>(&item)? {
            FeedItem::Campaign(c) => FeedItem::Campaign(c.for_feed_version(feed_version)),
            other => other,
        });
        next_cursor = u64_of(r.get(0)?);
    }
    Ok(FeedPage {
        items,
        next_cursor,
        more,
    })
}

async fn consents(e: &impl Exec, token: &str) -> DbResult<Vec<ConsentRecord>> {
    e.query(
        "SELECT purpose, given, policy_version, policy_sha256, at_ms FROM consents
         WHERE card_token = ?1 ORDER BY at_ms, id",
        args![token],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(ConsentRecord {
            purpose: r.get(0)?,
            given: r.get(1)?,
            policy_version: r.get(2)?,
            policy_sha256: r.get(3)?,
            at_ms: r.get(4)?,
        })
    })
    .collect()
}

/// What a store's kiosks may know of a customer (`None`: unknown, or never registered a name).
async fn customer_profile(e: &impl Exec, token: &CardToken) -> DbResult<Option<Profile>> {
    let row = e
        .query_opt(
            "SELECT display_name, segment, locale FROM customers WHERE card_token = ?1",
            args![token.as_str()],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let Some(name) = row.get::<Option<String>>(0)? else {
        return Ok(None);
    };
    let segment: String = row.get(1)?;
    let locale: Option<String> = row.get(2)?;
    let history = consents(e, token.as_str()).await?;
    Ok(Some(kiosk_profile(
        token,
        &name,
        &segment,
        locale.as_deref().unwrap_or("es"),
        &history,
    )))
}

/// Publishes the customers' current profiles to the feed of every store that knows them,
/// replacing the earlier profile items (so old personal data does not linger in the feed).
pub(crate) async fn emit_profiles(e: &impl Exec, tokens: &BTreeSet<CardToken>) -> DbResult<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    e.lock_changes().await?;
    for token in tokens {
        let Some(profile) = customer_profile(e, token).await? else {
            continue;
        };
        let item = serde_json::to_string(&FeedItem::Profile(profile))?;
        let t = token.as_str();
        let stores = e
            .query(
                "SELECT store_id FROM customer_stores WHERE card_token = ?1",
                args![t],
            )
            .await?;
        for s in stores {
            let store: String = s.get(0)?;
            e.execute(
                "DELETE FROM changes WHERE kind = 'profile' AND item_key = ?1 AND store_id = ?2",
                args![t, &store],
            )
            .await?;
            e.execute(
                "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'profile', ?2, ?3)",
                args![store, t, &item],
            )
            .await?;
        }
    }
    Ok(())
}

async fn emit_profile(e: &impl Exec, token: &CardToken) -> DbResult<()> {
    emit_profiles(e, &BTreeSet::from([token.clone()])).await
}

/// Adds the customer to a store's kiosks; true when that is new.
async fn link_store(e: &impl Exec, token: &CardToken, store: &str) -> DbResult<bool> {
    Ok(e.execute(
        "INSERT INTO customer_stores (card_token, store_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        args![token.as_str(), store],
    )
    .await?
        > 0)
}

/// Recomputes a computed segment; true when it changed.
async fn refresh_segment(e: &impl Exec, token: &CardToken, now_ms: i64) -> DbResult<bool> {
    let t = token.as_str();
    let row = e
        .query_opt(
            "SELECT visits, last_visit_ms, segment, segment_manual FROM customers WHERE card_token = ?1",
            args![t],
        )
        .await?;
    let Some(row) = row else { return Ok(false) };
    let (visits, last, segment, manual): (i64, Option<i64>, String, bool) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    let computed = computed_segment(visits, last, now_ms);
    if manual || segment == computed {
        return Ok(false);
    }
    e.execute(
        "UPDATE customers SET segment = ?2 WHERE card_token = ?1",
        args![t, computed],
    )
    .await?;
    Ok(true)
}

/// See [`super::database::Database::lookup_profile`]; in a transaction.
pub(crate) async fn lookup_profile(
    e: &impl Exec,
    store_id: String,
    token: CardToken,
) -> DbResult<Option<Profile>> {
    let Some(profile) = customer_profile(e, &token).await? else {
        return Ok(None);
    };
    if link_store(e, &token, &store_id).await? {
        emit_profile(e, &token).await?;
    }
    Ok(Some(profile))
}

/// The envelope to store and the effect to apply for an event: a registration of a customer
/// erased after it happened is stored redacted and creates no profile.
pub(crate) async fn stored_form<'v>(
    e: &impl Exec,
    ev: &'v IngestEvent,
) -> DbResult<(Cow<'v, str>, &'v Effect)> {
    if let Effect::Registered { token, .. } = &ev.effect {
        let erased: Option<i64> = e
            .query_opt(
                "SELECT erased_ms FROM erasures WHERE card_token = ?1",
                args![token.as_str()],
            )
            .await?
            .map(|r| r.get(0))
            .transpose()?;
        if erased.is_some_and(|at| at >= ev.corrected_ms) {
            return Ok((Cow::Owned(redact_registration(&ev.envelope)), &Effect::None));
        }
    }
    Ok((Cow::Borrowed(ev.envelope.as_str()), &ev.effect))
}

/// Applies an accepted event's effect; customers whose profile changed are added to `dirty`
/// (their profiles are emitted once per batch, [`emit_profiles`]).
pub(crate) async fn apply_effect(
    e: &impl Exec,
    store: &str,
    event_id: &str,
    corrected_ms: i64,
    effect: &Effect,
    dirty: &mut BTreeSet<CardToken>,
) -> DbResult<()> {
    const ENSURE_CUSTOMER: &str =
        "INSERT INTO customers (card_token) VALUES (?1) ON CONFLICT DO NOTHING";
    // A fact counts once per dedupe key (docs/DESIGN.md invariant 16): the unique index on
    // (campaign_id, kind, dedupe_key) drops a second exposure of a visit or a second redemption
    // of a coupon; the event itself is kept.
    const CAMPAIGN_FACT: &str =
        "INSERT INTO campaign_facts (event_id, store_id, campaign_id, variant, kind, dedupe_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";
    match effect {
        Effect::None => {}
        Effect::Registered {
            token,
            display_name,
            email,
            phone,
            locale,
        } => {
            e.execute(
                "INSERT INTO customers (card_token, display_name, email, phone, locale, home_store, registered_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (card_token) DO UPDATE SET display_name = excluded.display_name,
                   email = excluded.email, phone = excluded.phone, locale = excluded.locale,
                   home_store = COALESCE(customers.home_store, excluded.home_store),
                   registered_ms = COALESCE(customers.registered_ms, excluded.registered_ms)",
                args![token.as_str(), display_name, email, phone, locale, store, corrected_ms],
            )
            .await?;
            link_store(e, token, store).await?;
            dirty.insert(token.clone());
        }
        Effect::Consent {
            token,
            purpose,
            given,
            policy_version,
            policy_sha256,
        } => {
            e.execute(ENSURE_CUSTOMER, args![token.as_str()]).await?;
            link_store(e, token, store).await?;
            e.execute(
                "INSERT INTO consents (card_token, purpose, given, policy_version, policy_sha256, at_ms, event_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                args![token.as_str(), *purpose, *given, policy_version, policy_sha256, corrected_ms, event_id],
            )
            .await?;
            dirty.insert(token.clone());
        }
        Effect::Visit { token } => {
            e.execute(ENSURE_CUSTOMER, args![token.as_str()]).await?;
            e.execute(
                "UPDATE customers SET visits = visits + 1,
                   last_visit_ms = GREATEST(COALESCE(last_visit_ms, ?2), ?2) WHERE card_token = ?1",
                args![token.as_str(), corrected_ms],
            )
            .await?;
            let linked = link_store(e, token, store).await?;
            if refresh_segment(e, token, corrected_ms).await? || linked {
                dirty.insert(token.clone());
            }
        }
        Effect::Seen { token } => {
            let known: bool = e
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM customers WHERE card_token = ?1)",
                    args![token.as_str()],
                )
                .await?
                .get(0)?;
            if known && link_store(e, token, store).await? {
                dirty.insert(token.clone());
            }
        }
        Effect::CampaignShown {
            campaign_id,
            variant,
            visit_id,
        } => {
            e.execute(
                CAMPAIGN_FACT,
                args![event_id, store, campaign_id, variant, "shown", visit_id],
            )
            .await?;
        }
        // Admitted before the event was stored (see [`admit`]).
        Effect::SurveyAnswered { .. } => {}
        Effect::CouponIssued {
            code,
            campaign_id,
            variant,
        } => {
            if let Some(campaign_id) = campaign_id {
                e.execute(
                    "INSERT INTO coupons (code, campaign_id, variant) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    args![code, campaign_id, variant.as_deref().unwrap_or("unknown")],
                )
                .await?;
            }
        }
        Effect::CouponRedeemed {
            code,
            campaign_id,
            token,
            variant: read_variant,
        } => {
            let issued = e
                .query_opt(
                    "SELECT campaign_id, variant FROM coupons WHERE code = ?1",
                    args![code],
                )
                .await?;
            let (campaign_id, variant): (String, String) = match (issued, campaign_id) {
                (Some(found), _) => (found.get(0)?, found.get(1)?),
                (None, Some(id)) if read_variant.is_some() => {
                    (id.clone(), read_variant.clone().unwrap_or_default())
                }
                (None, Some(id)) => {
                    let def: Option<String> = e
                        .query_opt("SELECT definition FROM campaigns WHERE id = ?1", args![id])
                        .await?
                        .map(|r| r.get(0))
                        .transpose()?;
                    let campaign: Option<Campaign> =
                        def.map(|d| serde_json::from_str(&d)).transpose()?;
                    (
                        id.clone(),
                        redemption_variant(campaign.as_ref(), token.as_ref()),
                    )
                }
                (None, None) => return Ok(()),
            };
            e.execute(
                CAMPAIGN_FACT,
                args![event_id, store, campaign_id, variant, "redeemed", code],
            )
            .await?;
        }
    }
    Ok(())
}

/// See [`super::database::Database::survey_status`].
pub(crate) async fn survey_status(
    e: &impl Exec,
    store_id: String,
    turn_id: uuid::Uuid,
) -> DbResult<kiosk_protocol::wire::SurveyStatus> {
    use kiosk_protocol::wire::SurveyStatus;
    let turn = turn_id.to_string();
    let answered = e
        .query_opt(
            "SELECT 1 FROM survey_answers WHERE turn_id = ?1 AND store_id = ?2",
            args![&turn, &store_id],
        )
        .await?
        .is_some();
    if answered {
        return Ok(SurveyStatus::AlreadyAnswered);
    }
    let status: Option<String> = e
        .query_opt(
            "SELECT status FROM queue_turns WHERE turn_id = ?1 AND store_id = ?2",
            args![&turn, &store_id],
        )
        .await?
        .map(|r| r.get(0))
        .transpose()?;
    Ok(match status.as_deref().map(TurnStatus::from_name) {
        Some(TurnStatus::Served) => SurveyStatus::Open,
        Some(TurnStatus::Waiting | TurnStatus::Called | TurnStatus::Parked) => {
            SurveyStatus::NotServed
        }
        Some(TurnStatus::NoShow | TurnStatus::WalkedOut) => SurveyStatus::Closed,
        Some(TurnStatus::Unknown) | None => SurveyStatus::Unknown,
    })
}

/// Whether an event may be stored (called before it is): a survey answer only if it is the first
/// for its turn (docs/DESIGN.md invariant 17; the `survey_answers` primary key decides, also
/// between two batches in flight). A refused event is acknowledged to its kiosk as a duplicate
/// and stored nowhere. The same event sent again is admitted (the events table dedupes it).
pub(crate) async fn admit(e: &impl Exec, store: &str, ev: &IngestEvent) -> DbResult<bool> {
    let Effect::SurveyAnswered { turn_id } = &ev.effect else {
        return Ok(true);
    };
    let id = ev.id.to_string();
    e.execute(
        "INSERT INTO survey_answers (turn_id, event_id, store_id) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        args![turn_id, &id, store],
    )
    .await?;
    let kept: String = e
        .query_one(
            "SELECT event_id FROM survey_answers WHERE turn_id = ?1",
            args![turn_id],
        )
        .await?
        .get(0)?;
    if kept != id {
        tracing::info!(turn = %turn_id, "a second survey answer for a turn was not stored");
    }
    Ok(kept == id)
}

/// Records the kiosk's state a batch reports (last seen, clock skew, outbox backlog and when
/// its oldest waiting event was made: now less the age the kiosk reports; a kiosk of an earlier
/// release reports no age, and its backlog counts from when it was first reported non-empty).
pub(crate) async fn record_kiosk_state(e: &impl Exec, batch: &IngestBatch) -> DbResult<()> {
    let backlog_since = batch.backlog_age_ms.map(|age| {
        batch
            .received_ms
            .saturating_sub(i64::try_from(age).unwrap_or(i64::MAX))
    });
    e.execute(
        "UPDATE kiosks SET last_seen_ms = ?2,
           skew_ms = COALESCE(?3, skew_ms), skew_at_ms = COALESCE(?4, skew_at_ms),
           backlog = COALESCE(?5, backlog), skew_samples = COALESCE(?6, skew_samples),
           backlog_since_ms = CASE WHEN CAST(?7 AS BIGINT) IS NOT NULL THEN CAST(?7 AS BIGINT)
               WHEN CAST(?5 AS BIGINT) IS NULL THEN backlog_since_ms
               WHEN CAST(?5 AS BIGINT) = 0 THEN NULL
               ELSE COALESCE(backlog_since_ms, ?2) END
         WHERE id = ?1",
        args![
            &batch.kiosk_id,
            batch.received_ms,
            batch.skew.map(|s| s.skew_ms),
            batch.skew.map(|s| s.at_ms),
            batch.backlog.map(i64_of),
            batch
                .skew_samples
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            backlog_since,
        ],
    )
    .await?;
    Ok(())
}

/// See [`super::database::Database::upsert_campaign`]; in a transaction.
pub(crate) async fn upsert_campaign(
    e: &impl Exec,
    campaign: Campaign,
    now_ms: i64,
) -> DbResult<()> {
    let def = serde_json::to_string(&campaign)?;
    e.execute(
        "INSERT INTO campaigns (id, definition, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
           updated_ms = excluded.updated_ms",
        args![&campaign.id, def, now_ms],
    )
    .await?;
    e.lock_changes().await?;
    // The stores whose feeds carried the campaign until now (a withdrawal included): those no
    // longer targeted get it withdrawn below.
    let fed = e
        .query(
            "SELECT store_id FROM changes WHERE kind = 'campaign' AND item_key = ?1",
            args![&campaign.id],
        )
        .await?
        .iter()
        .map(|r| r.get::<Option<String>>(0))
        .collect::<DbResult<Vec<_>>>()?;
    e.execute(
        "DELETE FROM changes WHERE kind = 'campaign' AND item_key = ?1",
        args![&campaign.id],
    )
    .await?;
    let targets = campaign_stores(e, &campaign).await?;
    let item = serde_json::to_string(&FeedItem::Campaign(as_sent(&campaign, targets.as_ref())))?;
    let Some(targets) = targets else {
        // Every store: one row all feeds read.
        e.execute(
            "INSERT INTO changes (store_id, kind, item_key, item) VALUES (NULL, 'campaign', ?1, ?2)",
            args![&campaign.id, &item],
        )
        .await?;
        return Ok(());
    };
    for store in &targets {
        e.execute(
            "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'campaign', ?2, ?3)",
            args![store, &campaign.id, &item],
        )
        .await?;
    }
    // A store that had it and is no longer targeted (dropped from `stores`, its region dropped,
    // or every store narrowed to some) gets it withdrawn: its kiosks drop their copy at their
    // next poll instead of running it until it ends.
    let mut had = BTreeSet::new();
    for store in fed {
        match store {
            Some(s) => {
                had.insert(s);
            }
            None => {
                for r in e.query("SELECT id FROM stores", &[]).await? {
                    had.insert(r.get::<String>(0)?);
                }
            }
        }
    }
    let gone: Vec<&String> = had.difference(&targets).collect();
    if gone.is_empty() {
        return Ok(());
    }
    let withdrawn = serde_json::to_string(&FeedItem::Campaign(withdrawn(&campaign)))?;
    for store in gone {
        e.execute(
            "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'campaign', ?2, ?3)",
            args![store, &campaign.id, &withdrawn],
        )
        .await?;
    }
    Ok(())
}

/// The stores `c` runs in now: `None` for every store, else those it lists and every store of
/// its regions.
async fn campaign_stores(e: &impl Exec, c: &Campaign) -> DbResult<Option<BTreeSet<String>>> {
    if c.stores.is_empty() && c.regions.is_empty() {
        return Ok(None);
    }
    let mut stores: BTreeSet<String> = c.stores.iter().cloned().collect();
    for region in &c.regions {
        for r in e
            .query("SELECT id FROM stores WHERE region = ?1", args![region])
            .await?
        {
            stores.insert(r.get(0)?);
        }
    }
    Ok(Some(stores))
}

/// The campaign as kiosks get it: regions resolved to their stores (the kiosks get the stores,
/// never the regions: older kiosks refuse a field they do not know). A campaign for regions
/// without a store yet reaches no store until one is placed there
/// (`places::set_store_place`).
fn as_sent(c: &Campaign, targets: Option<&BTreeSet<String>>) -> Campaign {
    let mut sent = c.clone();
    if let Some(stores) = targets
        && !c.regions.is_empty()
    {
        sent.stores = stores.iter().cloned().collect();
        sent.regions.clear();
    }
    sent
}

/// The withdrawal of `c` from a store's feed: `active: false` (kiosks drop it), without its
/// pictures and content, which a withdrawal does not need.
fn withdrawn(c: &Campaign) -> Campaign {
    let mut w = as_sent(c, Some(&BTreeSet::new()));
    w.active = false;
    w.image = None;
    w.content.clear();
    for v in &mut w.variants {
        v.image = None;
    }
    w
}

/// Puts campaign `c` in the feed of store `store` alone, after the store moved in or out of one
/// of its regions: the campaign as it now runs (`targeted`), or its withdrawal. The other
/// stores' feeds are unchanged. In the caller's transaction.
pub(crate) async fn feed_campaign_to_store(
    e: &impl Exec,
    c: &Campaign,
    store: &str,
    targeted: bool,
) -> DbResult<()> {
    e.lock_changes().await?;
    e.execute(
        "DELETE FROM changes WHERE kind = 'campaign' AND item_key = ?1 AND store_id = ?2",
        args![&c.id, store],
    )
    .await?;
    let item = if targeted {
        let targets = campaign_stores(e, c).await?;
        as_sent(c, targets.as_ref())
    } else {
        withdrawn(c)
    };
    e.execute(
        "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'campaign', ?2, ?3)",
        args![
            store,
            &c.id,
            serde_json::to_string(&FeedItem::Campaign(item))?
        ],
    )
    .await?;
    Ok(())
}

/// See [`super::database::Database::campaigns`].
pub(crate) async fn campaigns(e: &impl Exec) -> DbResult<Vec<Campaign>> {
    let mut out = Vec::new();
    for r in e
        .query("SELECT definition FROM campaigns ORDER BY id", &[])
        .await?
    {
        out.push(serde_json::from_str(&r.get::<String>(0)?)?);
    }
    Ok(out)
}

/// See [`super::database::Database::customer`].
pub(crate) async fn customer(e: &impl Exec, token: CardToken) -> DbResult<Option<CustomerRecord>> {
    let t = token.as_str();
    let Some(r) = e
        .query_opt(
            "SELECT display_name, email, phone, locale, segment, segment_manual, visits,
               last_visit_ms FROM customers WHERE card_token = ?1",
            args![t],
        )
        .await?
    else {
        return Ok(None);
    };
    let stores = e
        .query(
            "SELECT store_id FROM customer_stores WHERE card_token = ?1 ORDER BY store_id",
            args![t],
        )
        .await?
        .iter()
        .map(|s| s.get(0))
        .collect::<DbResult<_>>()?;
    Ok(Some(CustomerRecord {
        card_token: token.clone(),
        display_name: r.get(0)?,
        email: r.get(1)?,
        phone: r.get(2)?,
        locale: r.get(3)?,
        segment: r.get(4)?,
        segment_manual: r.get(5)?,
        visits: r.get(6)?,
        last_visit_ms: r.get(7)?,
        stores,
        consents: consents(e, t).await?,
    }))
}

/// See [`super::database::Database::set_segment`]; in a transaction.
pub(crate) async fn set_segment(
    e: &impl Exec,
    token: CardToken,
    segment: Option<String>,
    now_ms: i64,
) -> DbResult<bool> {
    let t = token.as_str();
    let n = match &segment {
        Some(s) => {
            e.execute(
                "UPDATE customers SET segment = ?2, segment_manual = TRUE WHERE card_token = ?1",
                args![t, s],
            )
            .await?
        }
        None => {
            e.execute(
                "UPDATE customers SET segment_manual = FALSE WHERE card_token = ?1",
                args![t],
            )
            .await?
        }
    };
    if n == 0 {
        return Ok(false);
    }
    refresh_segment(e, &token, now_ms).await?;
    emit_profile(e, &token).await?;
    Ok(true)
}

/// See [`super::database::Database::recompute_segments`]; in a transaction.
pub(crate) async fn recompute_segments(e: &impl Exec, now_ms: i64) -> DbResult<u64> {
    let rows = e
        .query(
            "SELECT card_token FROM customers WHERE NOT segment_manual",
            &[],
        )
        .await?;
    let mut changed = BTreeSet::new();
    for r in rows {
        let token = token_of(r.get(0)?)?;
        if refresh_segment(e, &token, now_ms).await? {
            changed.insert(token);
        }
    }
    emit_profiles(e, &changed).await?;
    Ok(changed.len() as u64)
}

/// See [`super::database::Database::upsert_customer`]; in a transaction.
pub(crate) async fn upsert_customer(e: &impl Exec, cu: NewCustomer, now_ms: i64) -> DbResult<()> {
    let mut dirty = BTreeSet::new();
    let t = cu.card_token.as_str();
    let effect = Effect::Registered {
        token: cu.card_token.clone(),
        display_name: cu.display_name.clone(),
        email: cu.email.clone(),
        phone: cu.phone.clone(),
        locale: cu.locale.clone(),
    };
    apply_effect(e, &cu.store_id, "", now_ms, &effect, &mut dirty).await?;
    for purpose in &cu.consents {
        e.execute(
            // Only when not already given: seeding twice keeps the history honest.
            "INSERT INTO consents (card_token, purpose, given, policy_version, policy_sha256, at_ms)
             SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), TRUE, 'admin', '', CAST(?3 AS BIGINT)
             WHERE NOT COALESCE((SELECT given FROM consents WHERE card_token = ?1 AND purpose = ?2
                                 ORDER BY at_ms DESC, id DESC LIMIT 1), FALSE)",
            args![t, purpose, now_ms],
        )
        .await?;
    }
    e.execute(
        "UPDATE customers SET visits = GREATEST(visits, ?2),
           last_visit_ms = CASE WHEN ?2 > 0 THEN COALESCE(last_visit_ms, ?3) ELSE last_visit_ms END
         WHERE card_token = ?1",
        args![t, cu.visits, now_ms],
    )
    .await?;
    if let Some(s) = &cu.segment {
        e.execute(
            "UPDATE customers SET segment = ?2, segment_manual = TRUE WHERE card_token = ?1",
            args![t, s],
        )
        .await?;
    }
    refresh_segment(e, &cu.card_token, now_ms).await?;
    emit_profile(e, &cu.card_token).await?;
    super::forward::enqueue_customer_updated(e, &cu.card_token, &cu.store_id, now_ms).await
}

/// See [`super::database::Database::erase_customer`]; in a transaction.
pub(crate) async fn erase_customer(e: &impl Exec, token: CardToken, now_ms: i64) -> DbResult<bool> {
    let t = token.as_str();
    let known = e
        .execute("DELETE FROM customers WHERE card_token = ?1", args![t])
        .await?
        > 0;
    let seen: bool = e
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM events WHERE card_token = ?1)",
            args![t],
        )
        .await?
        .get(0)?;
    e.execute(
        "DELETE FROM customer_stores WHERE card_token = ?1",
        args![t],
    )
    .await?;
    let registrations = e
        .query(
            "SELECT id, envelope FROM events WHERE card_token = ?1 AND type = 'customer_registered'",
            args![t],
        )
        .await?;
    for r in registrations {
        let (id, envelope): (String, String) = (r.get(0)?, r.get(1)?);
        e.execute(
            "UPDATE events SET envelope = ?2 WHERE id = ?1",
            args![id, redact_registration(&envelope)],
        )
        .await?;
    }
    e.execute(
        "INSERT INTO erasures (card_token, erased_ms) VALUES (?1, ?2)
         ON CONFLICT (card_token) DO UPDATE SET erased_ms = excluded.erased_ms",
        args![t, now_ms],
    )
    .await?;
    e.lock_changes().await?;
    e.execute(
        "DELETE FROM changes WHERE item_key = ?1 AND kind IN ('profile', 'erasure')",
        args![t],
    )
    .await?;
    let item = serde_json::to_string(&erasure_item(&token, now_ms))?;
    e.execute(
        "INSERT INTO changes (store_id, kind, item_key, item) VALUES (NULL, 'erasure', ?1, ?2)",
        args![t, item],
    )
    .await?;
    super::forward::on_erasure(e, &token, now_ms).await?;
    Ok(known || seen)
}

/// See [`super::database::Database::stats`].
pub(crate) async fn stats(e: &impl Exec, store_id: String) -> DbResult<StoreStats> {
    let s = store_id.as_str();
    let count = async |sql: &str| -> DbResult<u64> {
        Ok(u64_of(e.query_one(sql, args![s]).await?.get(0)?))
    };
    let events = count("SELECT COUNT(*) FROM events WHERE store_id = ?1").await?;
    let tickets_issued =
        count("SELECT COUNT(*) FROM events WHERE store_id = ?1 AND type = 'ticket_issued'").await?;
    let identified_tickets = count(
        "SELECT COUNT(card_token) FROM events WHERE store_id = ?1 AND type = 'ticket_issued'",
    )
    .await?;
    let customers = count("SELECT COUNT(*) FROM customer_stores WHERE store_id = ?1").await?;
    let kiosks = e
        .query(
            "SELECT id, last_seen_ms, skew_ms, backlog FROM kiosks WHERE store_id = ?1 ORDER BY id",
            args![s],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(KioskHealth {
                kiosk_id: r.get(0)?,
                last_seen_ms: r.get(1)?,
                skew_ms: r.get(2)?,
                backlog: r.get(3)?,
            })
        })
        .collect::<DbResult<_>>()?;
    let campaigns = e
        .query(
            "SELECT campaign_id, variant,
               CAST(SUM(CASE WHEN kind = 'shown' THEN 1 ELSE 0 END) AS BIGINT),
               CAST(SUM(CASE WHEN kind = 'redeemed' THEN 1 ELSE 0 END) AS BIGINT)
             FROM campaign_facts WHERE store_id = ?1
             GROUP BY campaign_id, variant ORDER BY campaign_id, variant",
            args![s],
        )
        .await?
        .iter()
        .map(|r| Ok(variant_stats(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .collect::<DbResult<_>>()?;
    let scores: Vec<String> = e
        .query(
            &format!(
                "SELECT envelope FROM events e WHERE store_id = ?1 AND type = 'survey_answered'
                   AND {}",
                first_answer_only(e.dialect())
            ),
            args![s],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect::<DbResult<_>>()?;
    Ok(StoreStats {
        store_id: store_id.clone(),
        events,
        tickets_issued,
        identified_tickets,
        customers,
        kiosks,
        campaigns,
        nps: nps_of(&scores),
    })
}

/// See [`super::database::Database::set_store_timezone`].
/// See [`super::database::Database::audit`].
pub(crate) async fn audit(e: &impl Exec, entry: AuditEntry) -> DbResult<()> {
    e.execute(
        "INSERT INTO audit_log (at_ms, actor, action, target, outcome, user_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![
            entry.at_ms,
            entry.actor,
            entry.action,
            entry.target,
            entry.outcome,
            entry.user
        ],
    )
    .await?;
    Ok(())
}

/// See [`super::database::Database::audit_log`].
pub(crate) async fn audit_log(
    e: &impl Exec,
    since_ms: i64,
    limit: i64,
    user: Option<String>,
) -> DbResult<Vec<AuditEntry>> {
    e.query(
        "SELECT at_ms, actor, action, target, outcome, user_name FROM audit_log
         WHERE at_ms >= ?1 AND (CAST(?3 AS TEXT) IS NULL OR user_name = ?3)
         ORDER BY at_ms DESC, id DESC LIMIT ?2",
        args![since_ms, limit, user],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(AuditEntry {
            at_ms: r.get(0)?,
            actor: r.get(1)?,
            action: r.get(2)?,
            target: r.get(3)?,
            outcome: r.get(4)?,
            user: r.get(5)?,
        })
    })
    .collect()
}

pub(crate) async fn set_store_timezone(
    e: &impl Exec,
    store_id: String,
    timezone: Option<String>,
) -> DbResult<()> {
    require_store(e, &store_id).await?;
    match timezone {
        Some(tz) => {
            e.execute(
                "INSERT INTO store_timezones (store_id, timezone) VALUES (?1, ?2)
                 ON CONFLICT (store_id) DO UPDATE SET timezone = excluded.timezone",
                args![store_id, tz],
            )
            .await?
        }
        None => {
            e.execute(
                "DELETE FROM store_timezones WHERE store_id = ?1",
                args![store_id],
            )
            .await?
        }
    };
    Ok(())
}

/// See [`super::database::Database::list_stores`].
pub(crate) async fn list_stores(e: &impl Exec) -> DbResult<Vec<StoreSummary>> {
    let mut stores: Vec<StoreSummary> = e
        .query(
            "SELECT s.id, s.name, z.timezone, s.region, s.latitude, s.longitude FROM stores s
             LEFT JOIN store_timezones z ON z.store_id = s.id ORDER BY s.id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(StoreSummary {
                id: r.get(0)?,
                name: r.get(1)?,
                timezone: r.get(2)?,
                region: r.get(3)?,
                latitude: r.get(4)?,
                longitude: r.get(5)?,
                kiosks: Vec::new(),
            })
        })
        .collect::<DbResult<_>>()?;
    for r in e
        .query("SELECT store_id, id FROM kiosks ORDER BY id", &[])
        .await?
    {
        let store: String = r.get(0)?;
        if let Some(s) = stores.iter_mut().find(|s| s.id == store) {
            s.kiosks.push(r.get(1)?);
        }
    }
    Ok(stores)
}

/// See [`super::database::Database::dashboard`]; in one read snapshot.
pub(crate) async fn dashboard(e: &impl Exec, q: DashboardQuery) -> DbResult<Dashboard> {
    let rows = dashboard_rows(e, &q).await?;
    assemble(&q, rows).ok_or_else(|| DbError::NotFound(format!("store {:?}", q.store_id)))
}

/// A store and its time zone (the dashboard and the live queue show its hours in it).
async fn store_with_timezone(
    e: &impl Exec,
    store_id: &str,
) -> DbResult<Option<(StoreRecord, Option<String>)>> {
    let Some(row) = e
        .query_opt(
            "SELECT s.id, s.name, z.timezone FROM stores s
             LEFT JOIN store_timezones z ON z.store_id = s.id WHERE s.id = ?1",
            args![store_id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((store_record(&row)?, row.get(2)?)))
}

/// The dashboard's rows of one store and window. `CAST(?2 AS TEXT) IS NULL` is the optional
/// kiosk filter (PostgreSQL cannot type a bare `$2 IS NULL`).
async fn dashboard_rows(e: &impl Exec, q: &DashboardQuery) -> DbResult<DashboardRows> {
    let mut rows = DashboardRows::default();
    let Some((store, timezone)) = store_with_timezone(e, &q.store_id).await? else {
        return Ok(rows);
    };
    rows.store = Some(store);
    let (s, k) = (&q.store_id, &q.kiosk_id);
    // The window's figures and the store's kiosks, devices and campaign names: independent
    // reads of one snapshot, sent together (pipelined on PostgreSQL).
    let window = async {
        if q.now_ms - q.since_ms > super::dashboard::HOURLY_UP_TO_MS {
            super::rollup::window_with_rollups(e, q, timezone.as_deref()).await
        } else {
            window_rows(e, s, k.as_deref(), q.since_ms, q.now_ms).await
        }
    };
    let campaign_names = async {
        e.query("SELECT id, definition FROM campaigns", &[])
            .await?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect::<DbResult<std::collections::HashMap<String, String>>>()
    };
    let kiosks = async {
        e.query(
            "SELECT id, hardware_profile, firmware_version, last_seen_ms, skew_ms, backlog
             FROM kiosks WHERE store_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR id = ?2) ORDER BY id",
            args![s, k],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(KioskRow {
                kiosk_id: r.get(0)?,
                hardware_profile: r.get(1)?,
                firmware_version: r.get(2)?,
                last_seen_ms: r.get(3)?,
                skew_ms: r.get(4)?,
                backlog: r.get(5)?,
            })
        })
        .collect::<DbResult<Vec<_>>>()
    };
    let devices = async {
        e.query(
            "SELECT d.kiosk_id, d.device, d.status, d.reason, d.at_ms
             FROM kiosk_devices d JOIN kiosks k ON k.id = d.kiosk_id
             WHERE k.store_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR k.id = ?2)",
            args![s, k],
        )
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.get(0)?,
                DeviceState {
                    device: r.get(1)?,
                    status: r.get(2)?,
                    reason: r.get(3)?,
                    at_ms: r.get(4)?,
                },
            ))
        })
        .collect::<DbResult<Vec<_>>>()
    };
    let (w, campaign_names, kiosks, devices) =
        futures::try_join!(window, campaign_names, kiosks, devices)?;
    rows.timezone = timezone;
    rows.tickets = w.tickets;
    rows.timings = w.timings;
    rows.identified_by = w.identified_by;
    rows.scores = w.scores;
    rows.campaigns = w.campaigns;
    rows.campaign_names = campaign_names;
    rows.kiosks = kiosks;
    rows.devices = devices;
    let logs = futures::future::try_join_all(rows.kiosks.iter().map(|kiosk| async move {
        let found = e
            .query(
                "SELECT corrected_ms, envelope FROM events
                 WHERE kiosk_id = ?1 AND type = 'device_log'
                 ORDER BY corrected_ms DESC, seq DESC LIMIT ?2",
                args![&kiosk.kiosk_id, q.log_limit()],
            )
            .await?;
        found
            .iter()
            .map(|r| Ok((kiosk.kiosk_id.clone(), r.get(0)?, r.get(1)?)))
            .collect::<DbResult<Vec<_>>>()
    }));
    let (configs, config, logs) =
        futures::try_join!(kiosk_configs(e, s), store_config(e, s.to_owned()), logs)?;
    rows.configs = configs;
    rows.store_config_version = config.map_or(0, |c| c.version);
    rows.logs = logs.into_iter().flatten().collect();
    Ok(rows)
}

/// How far back the first open of a database with the live queue's tables (schema version 2)
/// replays stored queue events into them: the live queue shows today, in any time zone.
pub(crate) const QUEUE_BACKFILL_MS: i64 = 48 * 3600 * 1000;

/// Rows per multi-row statement of the live queue: one statement per kind of write, whatever
/// the batch's size, with parameters far below both databases' limits.
const QUEUE_CHUNK: usize = 200;

fn server_now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// `(?1, ?2), (?3, ?4)`: `rows` rows of `cols` numbered placeholders.
fn placeholder_rows(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=cols).map(|c| format!("?{}", r * cols + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stores a batch's accepted queue steps and refolds the turns they touch (see [`super::queue`]).
pub(crate) async fn apply_queue(
    e: &impl Exec,
    batch: &IngestBatch,
    accepted: &[&IngestEvent],
) -> DbResult<()> {
    let steps: Vec<StepRow> = accepted
        .iter()
        .filter_map(|ev| {
            Some(StepRow {
                event_id: ev.id.to_string(),
                store_id: batch.store_id.clone(),
                kiosk_id: batch.kiosk_id.clone(),
                seq: i64_of(ev.seq),
                at_ms: ev.corrected_ms,
                wall_ms: ev.device_ms,
                step: ev.queue.clone()?,
            })
        })
        .collect();
    store_queue_steps(e, &steps).await
}

const TURN_COLUMNS: &str = "turn_id, store_id, business_day, service, label, kiosk_id, priority, \
    out_of_sequence, issued_ms, issued_wall_ms, status, counter, called_ms, called_counter, \
    last_ms, steps, staff, called_staff";

/// Stores steps and recomputes each touched turn from all its steps: the turn's row keeps them
/// (`steps`), so a batch reads the rows of its turns, adds its steps (an event already there, the
/// same kiosk's same sequence, is not added twice), folds and writes them back. Conflicts are
/// also listed on their own (`queue_conflicts`), with or without a turn.
///
/// Concurrent batches touching the same turn (PostgreSQL): a batch inserts a turn's row only if
/// none exists (an insert waits for a concurrent one of the same turn to commit), and otherwise
/// reads it locked (`FOR UPDATE`, its latest version), so the last writer has seen every step
/// committed before it, and its own. (Row locks, not advisory locks: a batch may touch 500
/// turns, and advisory locks fill the server's shared lock table.)
async fn store_queue_steps(e: &impl Exec, steps: &[StepRow]) -> DbResult<()> {
    let conflicts: Vec<&StepRow> = steps
        .iter()
        .filter(|s| s.step.kind == QueueStepKind::Conflict)
        .collect();
    for chunk in conflicts.chunks(QUEUE_CHUNK) {
        let sql = format!(
            "INSERT INTO queue_conflicts (event_id, store_id, kiosk_id, turn_id, label, counter,
               step, reason, at_ms) VALUES {} ON CONFLICT (event_id) DO NOTHING",
            placeholder_rows(chunk.len(), 9)
        );
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|c| {
                [
                    Value::from(c.event_id.as_str()),
                    Value::from(c.store_id.as_str()),
                    Value::from(c.kiosk_id.as_str()),
                    Value::from(c.step.turn_id.map(|t| t.to_string())),
                    Value::from(&c.step.label),
                    Value::from(&c.step.counter),
                    Value::from(c.step.detail.as_deref().unwrap_or_default()),
                    Value::from(c.step.reason.as_deref().unwrap_or_default()),
                    Value::from(c.at_ms),
                ]
            })
            .collect();
        e.execute(&sql, &params).await?;
    }
    let mut by_turn: BTreeMap<uuid::Uuid, Vec<&StepRow>> = BTreeMap::new();
    for s in steps {
        if let Some(t) = s.step.turn_id {
            by_turn.entry(t).or_default().push(s);
        }
    }
    let by_turn: Vec<(uuid::Uuid, Vec<&StepRow>)> = by_turn.into_iter().collect();
    for chunk in by_turn.chunks(QUEUE_CHUNK) {
        fold_turns(e, chunk).await?;
    }
    Ok(())
}

/// A turn's row as [`TURN_COLUMNS`] lists it: its state and its steps.
fn turn_values(rows: &[(TurnState, String)]) -> Vec<Value> {
    rows.iter()
        .flat_map(|(t, steps)| {
            [
                Value::from(t.turn_id.as_str()),
                Value::from(t.store_id.as_str()),
                Value::from(&t.business_day),
                Value::from(&t.service),
                Value::from(&t.label),
                Value::from(&t.kiosk_id),
                Value::from(t.priority),
                Value::from(t.out_of_sequence),
                Value::from(t.issued_ms),
                Value::from(t.issued_wall_ms),
                Value::from(t.status.as_str()),
                Value::from(&t.counter),
                Value::from(t.called_ms),
                Value::from(&t.called_counter),
                Value::from(t.last_ms),
                Value::from(steps.as_str()),
                Value::from(&t.staff),
                Value::from(&t.called_staff),
            ]
        })
        .collect()
}

/// The state and stored steps of a turn with `steps` (`None` without any).
fn folded(turn_id: &str, steps: &[StepRow]) -> DbResult<Option<(TurnState, String)>> {
    match queue::fold(turn_id, steps) {
        Some(state) => Ok(Some((state, queue::encode_steps(steps)?))),
        None => Ok(None),
    }
}

/// Some turns' new steps into their rows. Most turns are new (a batch's tickets): their row is
/// inserted at once, from the new steps alone. A turn whose row exists (its insert found it,
/// or waited for the concurrent batch creating it) is then read, locked on PostgreSQL
/// (`FOR UPDATE`, the latest version), given its new steps, folded and written back.
async fn fold_turns(e: &impl Exec, turns: &[(uuid::Uuid, Vec<&StepRow>)]) -> DbResult<()> {
    let keys: Vec<String> = turns.iter().map(|(t, _)| t.to_string()).collect();
    let mut fresh = Vec::with_capacity(turns.len());
    for ((_, new), key) in turns.iter().zip(&keys) {
        let steps: Vec<StepRow> = new.iter().map(|s| (*s).clone()).collect();
        fresh.extend(folded(key, &steps)?);
    }
    if fresh.is_empty() {
        return Ok(());
    }
    // Rows are inserted, and then locked, in turn-id order: two batches never wait on each other
    // in a circle.
    let insert = format!(
        "INSERT INTO queue_turns ({TURN_COLUMNS}) VALUES {}
         ON CONFLICT (turn_id) DO NOTHING RETURNING turn_id",
        placeholder_rows(fresh.len(), 18)
    );
    let inserted: BTreeSet<String> = e
        .query(&insert, &turn_values(&fresh))
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect::<DbResult<_>>()?;
    let existing: Vec<(&(uuid::Uuid, Vec<&StepRow>), &String)> = turns
        .iter()
        .zip(&keys)
        .filter(|(_, key)| !inserted.contains(*key))
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    let read = format!(
        "SELECT turn_id, store_id, steps FROM queue_turns WHERE turn_id IN ({}) ORDER BY turn_id{}",
        (1..=existing.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", "),
        e.dialect().lock_rows()
    );
    let ids: Vec<Value> = existing
        .iter()
        .map(|(_, k)| Value::from(k.as_str()))
        .collect();
    let mut stored: BTreeMap<String, (String, String)> = BTreeMap::new();
    for r in e.query(&read, &ids).await? {
        stored.insert(r.get(0)?, (r.get(1)?, r.get(2)?));
    }
    let mut updates = Vec::with_capacity(existing.len());
    for ((turn, new), key) in existing {
        let Some((store, json)) = stored.get(key) else {
            return Err(DbError::Internal(
                "a live-queue turn whose row exists was not found",
            ));
        };
        let mut all = queue::decode_steps(*turn, store, json)?;
        for s in new {
            if !all.iter().any(|a| a.same_event(s)) {
                all.push((*s).clone());
            }
        }
        updates.extend(folded(key, &all)?);
    }
    if updates.is_empty() {
        return Ok(());
    }
    let update = format!(
        "INSERT INTO queue_turns ({TURN_COLUMNS}) VALUES {}
         ON CONFLICT (turn_id) DO UPDATE SET store_id = excluded.store_id,
           business_day = excluded.business_day, service = excluded.service,
           label = excluded.label, kiosk_id = excluded.kiosk_id, priority = excluded.priority,
           out_of_sequence = excluded.out_of_sequence, issued_ms = excluded.issued_ms,
           issued_wall_ms = excluded.issued_wall_ms, status = excluded.status,
           counter = excluded.counter, called_ms = excluded.called_ms,
           called_counter = excluded.called_counter, last_ms = excluded.last_ms,
           steps = excluded.steps, staff = excluded.staff, called_staff = excluded.called_staff",
        placeholder_rows(updates.len(), 18)
    );
    e.execute(&update, &turn_values(&updates)).await?;
    Ok(())
}

/// Replays the queue events stored since `since_ms` into the live queue's tables (once, when
/// a database first has them), store by store along the `events_store_type` index.
async fn backfill_queue(e: &impl Exec, since_ms: i64) -> DbResult<()> {
    let types = QueueStepKind::ALL
        .iter()
        .map(|k| format!("'{}'", k.event_type()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT id, kiosk_id, store_id, seq, corrected_ms, device_ms, envelope FROM events
         WHERE store_id = ?1 AND type IN ({types}) AND corrected_ms >= ?2"
    );
    let stores: Vec<String> = e
        .query("SELECT id FROM stores ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect::<DbResult<_>>()?;
    for store in stores {
        let mut steps = Vec::new();
        for r in e.query(&sql, args![&store, since_ms]).await? {
            let envelope: String = r.get(6)?;
            let Ok(env) = serde_json::from_str::<kiosk_protocol::events::Envelope>(&envelope)
            else {
                continue;
            };
            let Some(step) = queue::step_of(&env.event) else {
                continue;
            };
            steps.push(StepRow {
                event_id: r.get(0)?,
                kiosk_id: r.get(1)?,
                store_id: r.get(2)?,
                seq: r.get(3)?,
                at_ms: r.get(4)?,
                wall_ms: r.get(5)?,
                step,
            });
        }
        store_queue_steps(e, &steps).await?;
    }
    Ok(())
}

/// See [`super::database::Database::live_queue`]; in one read snapshot.
pub(crate) async fn live_queue(e: &impl Exec, q: LiveQueueQuery) -> DbResult<LiveQueue> {
    let rows = live_rows(e, &q).await?;
    queue::assemble(&q, rows).ok_or_else(|| DbError::NotFound(format!("store {:?}", q.store_id)))
}

/// The rows of one store's live queue.
async fn live_rows(e: &impl Exec, q: &LiveQueueQuery) -> DbResult<LiveRows> {
    let mut rows = LiveRows::default();
    let Some((store, timezone)) = store_with_timezone(e, &q.store_id).await? else {
        return Ok(rows);
    };
    rows.store = Some(store);
    rows.timezone = timezone;
    let (day, since) = queue::today(rows.timezone.as_deref(), q.now_ms);
    let s = &q.store_id;
    rows.kiosks = e
        .query(
            "SELECT id FROM kiosks WHERE store_id = ?1 ORDER BY id",
            args![s],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect::<DbResult<_>>()?;
    // The steps of the turns that changed lately, for the counters that called lately.
    let window = q.now_ms - COUNTER_OPEN_AFTER_CALL_MS;
    let columns = "turn_id, store_id, business_day, service, label, kiosk_id, priority, \
        out_of_sequence, issued_ms, issued_wall_ms, status, counter, called_ms, called_counter, \
        last_ms, CASE WHEN last_ms >= ?4 THEN steps END, staff, called_staff";
    for r in e
        .query(
            &format!(
                "SELECT {columns} FROM queue_turns WHERE store_id = ?1 AND business_day = ?2
                 UNION ALL
                 SELECT {columns} FROM queue_turns
                 WHERE store_id = ?1 AND business_day IS NULL AND last_ms >= ?3"
            ),
            args![s, day, since, window],
        )
        .await?
    {
        let status: String = r.get(10)?;
        let turn = TurnState {
            turn_id: r.get(0)?,
            store_id: r.get(1)?,
            business_day: r.get(2)?,
            service: r.get(3)?,
            label: r.get(4)?,
            kiosk_id: r.get(5)?,
            priority: r.get(6)?,
            out_of_sequence: r.get(7)?,
            issued_ms: r.get(8)?,
            issued_wall_ms: r.get(9)?,
            status: TurnStatus::from_name(&status),
            counter: r.get(11)?,
            called_ms: r.get(12)?,
            called_counter: r.get(13)?,
            last_ms: r.get(14)?,
            staff: r.get(16)?,
            called_staff: r.get(17)?,
        };
        if let Some(json) = r.get::<Option<String>>(15)? {
            let id = turn.turn_id.parse::<uuid::Uuid>().map_err(|e| {
                DbError::Corrupt(format!("turn id {:?} of the live queue: {e}", turn.turn_id))
            })?;
            let steps = queue::decode_steps(id, &turn.store_id, &json)?;
            rows.recent_calls.extend(queue::calls_since(&steps, window));
        }
        rows.turns.push(turn);
    }
    rows.conflicts = u64_of(
        e.query_one(
            "SELECT COUNT(*) FROM queue_conflicts WHERE store_id = ?1 AND at_ms >= ?2",
            args![s, since],
        )
        .await?
        .get(0)?,
    );
    rows.recent_conflicts = e
        .query(
            "SELECT label, counter, step, reason, kiosk_id, at_ms FROM queue_conflicts
             WHERE store_id = ?1 AND at_ms >= ?2
             ORDER BY at_ms DESC, event_id DESC LIMIT ?3",
            args![s, since, MAX_CONFLICTS_LISTED],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(ConflictRecord {
                turn: r.get(0)?,
                counter: r.get(1)?,
                step: r.get(2)?,
                reason: r.get(3)?,
                kiosk_id: r.get(4)?,
                at_ms: r.get(5)?,
            })
        })
        .collect::<DbResult<_>>()?;
    Ok(rows)
}

fn day_turn(r: &Row) -> DbResult<super::phone::DayTurn> {
    let status: String = r.get(1)?;
    Ok(super::phone::DayTurn {
        turn_id: r.get(0)?,
        status: TurnStatus::from_name(&status),
        service: r.get(2)?,
        priority: r.get(3)?,
        issued_ms: r.get(4)?,
        called_ms: r.get(5)?,
        counter: r.get(6)?,
        label: r.get(7)?,
    })
}

/// See [`super::database::Database::turn_view`]; in one read snapshot.
pub(crate) async fn turn_view(
    e: &impl Exec,
    store_id: String,
    business_day: String,
    turn_id: uuid::Uuid,
    label: String,
    now_ms: i64,
) -> DbResult<Option<super::phone::TurnView>> {
    let mut rows = super::phone::TurnRows::default();
    let Some((store, _)) = store_with_timezone(e, &store_id).await? else {
        return Ok(None);
    };
    rows.store_name = Some(store.name);
    let turn = turn_id.to_string();
    let columns = "turn_id, status, service, priority, issued_ms, called_ms, counter, label";
    rows.turn = e
        .query_opt(
            &format!(
                "SELECT {columns} FROM queue_turns
                 WHERE turn_id = ?1 AND store_id = ?2 AND (business_day = ?3 OR business_day IS NULL)"
            ),
            args![&turn, &store_id, &business_day],
        )
        .await?
        .map(|r| day_turn(&r))
        .transpose()?;
    if rows.turn.is_none()
        && e.query_opt("SELECT 1 FROM queue_turns WHERE turn_id = ?1", args![&turn])
            .await?
            .is_some()
    {
        // The turn is another store's (or another day's): nothing of it is shown here.
        return Ok(None);
    }
    if rows
        .turn
        .as_ref()
        .is_some_and(|t| t.status == TurnStatus::Waiting)
    {
        rows.day = e
            .query(
                &format!(
                    "SELECT {columns} FROM queue_turns WHERE store_id = ?1 AND business_day = ?2"
                ),
                args![&store_id, &business_day],
            )
            .await?
            .iter()
            .map(day_turn)
            .collect::<DbResult<_>>()?;
    }
    rows.last_contact_ms = e
        .query_one(
            "SELECT MAX(last_seen_ms) FROM kiosks WHERE store_id = ?1",
            args![&store_id],
        )
        .await?
        .get(0)?;
    rows.survey = Some(survey_status(e, store_id, turn_id).await?);
    Ok(super::phone::view(&label, rows, now_ms))
}

/// See [`super::database::Database::rate_turn`]; in one transaction.
pub(crate) async fn rate_turn(
    e: &impl Exec,
    store_id: String,
    answer: kiosk_protocol::events::SurveyAnswered,
    now_ms: i64,
) -> DbResult<kiosk_protocol::wire::SurveyStatus> {
    use kiosk_protocol::events::{Envelope, Event};
    use kiosk_protocol::wire::{SurveyStatus, TurnRated};
    let Some(turn_id) = answer.turn_id else {
        return Ok(SurveyStatus::Unknown);
    };
    let status = survey_status(e, store_id.clone(), turn_id).await?;
    if status != SurveyStatus::Open {
        return Ok(status);
    }
    let id = uuid::Uuid::now_v7();
    let turn = turn_id.to_string();
    let inserted = e
        .execute(
            "INSERT INTO survey_answers (turn_id, event_id, store_id) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            args![&turn, id.to_string(), &store_id],
        )
        .await?;
    if inserted == 0 {
        return Ok(SurveyStatus::AlreadyAnswered);
    }
    let event = Event::SurveyAnswered(answer);
    let envelope = Envelope {
        id,
        kiosk_id: PHONE_KIOSK_ID.to_owned(),
        seq: 0,
        boot_id: uuid::Uuid::nil(),
        wall_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
            .map_err(|e| DbError::Corrupt(format!("now is not a time: {e}")))?,
        mono_ms: 0,
        schema_version: event.schema_version(),
        event,
    };
    e.execute(
        "INSERT INTO events (id, kiosk_id, store_id, seq, type, schema_version, device_ms,
           corrected_ms, received_ms, card_token, envelope)
         VALUES (?1, ?2, ?3, 0, 'survey_answered', ?4, ?5, ?5, ?5, NULL, ?6)",
        args![
            id.to_string(),
            PHONE_KIOSK_ID,
            &store_id,
            envelope.schema_version,
            now_ms,
            serde_json::to_string(&envelope)?
        ],
    )
    .await?;
    let item = serde_json::to_string(&FeedItem::TurnRated(TurnRated { turn_id }))?;
    e.lock_changes().await?;
    e.execute(
        "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'turn_rated', ?2, ?3)",
        args![&store_id, &turn, item],
    )
    .await?;
    Ok(SurveyStatus::Open)
}

/// The `kiosk_id` of answers given on a customer's phone (no kiosk id: those start with `k`
/// and a kiosk's enrollment never picks this one).
pub const PHONE_KIOSK_ID: &str = "phone";

/// See [`super::database::Database::vapid_secret`].
pub(crate) async fn vapid_secret(e: &impl Exec, candidate: String) -> DbResult<String> {
    e.execute(
        "INSERT INTO settings (key, value) VALUES ('vapid_key', ?1) ON CONFLICT (key) DO NOTHING",
        args![candidate],
    )
    .await?;
    e.query_one("SELECT value FROM settings WHERE key = 'vapid_key'", &[])
        .await?
        .get(0)
}

/// See [`super::database::Database::subscribe_push`].
pub(crate) async fn subscribe_push(
    e: &impl Exec,
    store_id: String,
    business_day: String,
    target: super::phone::PushTarget,
    now_ms: i64,
) -> DbResult<()> {
    let s = &target.subscription;
    e.execute(
        "INSERT INTO push_subscriptions (turn_id, store_id, business_day, label, lang, endpoint,
           p256dh, auth, created_ms, page)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (turn_id, endpoint) DO UPDATE SET p256dh = excluded.p256dh,
           auth = excluded.auth, lang = excluded.lang",
        args![
            target.turn_id.to_string(),
            store_id,
            business_day,
            target.label,
            target.lang,
            &s.endpoint,
            &s.keys.p256dh,
            &s.keys.auth,
            now_ms,
            &target.page
        ],
    )
    .await?;
    Ok(())
}

/// The turns ahead at which a store's customers are told their turn is near (push and SMS):
/// the store's own setting, or [`super::phone::DEFAULT_TURNS_AHEAD`].
async fn notify_threshold(e: &impl Exec, store_id: &str) -> DbResult<u32> {
    Ok(e.query_opt(
        "SELECT turns_ahead FROM store_notify WHERE store_id = ?1",
        args![store_id],
    )
    .await?
    .map(|r| r.get::<i64>(0))
    .transpose()?
    .and_then(|n| u32::try_from(n).ok())
    .unwrap_or(super::phone::DEFAULT_TURNS_AHEAD))
}

/// See [`super::database::Database::push_subscriptions`].
pub(crate) async fn push_subscriptions(
    e: &impl Exec,
    store_id: String,
    now_ms: i64,
) -> DbResult<(String, u32, Vec<super::phone::PushTarget>)> {
    let Some((_, timezone)) = store_with_timezone(e, &store_id).await? else {
        return Err(DbError::NotFound(format!("store {store_id:?}")));
    };
    let (day, _) = queue::today(timezone.as_deref(), now_ms);
    // Subscriptions end with their service day.
    e.execute(
        "DELETE FROM push_subscriptions WHERE store_id = ?1 AND business_day <> ?2",
        args![&store_id, &day],
    )
    .await?;
    let threshold = notify_threshold(e, &store_id).await?;
    let rows = e
        .query(
            "SELECT turn_id, label, lang, endpoint, p256dh, auth, sent_near, sent_called, page
             FROM push_subscriptions WHERE store_id = ?1 AND business_day = ?2
               AND NOT (sent_near AND sent_called)",
            args![&store_id, &day],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let turn: String = r.get(0)?;
        let turn_id = turn
            .parse::<uuid::Uuid>()
            .map_err(|e| DbError::Corrupt(format!("turn id {turn:?} of a subscription: {e}")))?;
        out.push(super::phone::PushTarget {
            turn_id,
            label: r.get(1)?,
            lang: r.get(2)?,
            page: r.get(8)?,
            subscription: super::phone::PushSubscription {
                endpoint: r.get(3)?,
                expiration_time: None,
                keys: super::phone::PushKeys {
                    p256dh: r.get(4)?,
                    auth: r.get(5)?,
                },
            },
            sent_near: r.get(6)?,
            sent_called: r.get(7)?,
        });
    }
    Ok((day, threshold, out))
}

/// See [`super::database::Database::mark_push_sent`].
pub(crate) async fn mark_push_sent(
    e: &impl Exec,
    turn_id: uuid::Uuid,
    endpoint: String,
    called: bool,
) -> DbResult<()> {
    // A call makes "near" moot too.
    let sql = if called {
        "UPDATE push_subscriptions SET sent_called = ?3, sent_near = ?3 WHERE turn_id = ?1 AND endpoint = ?2"
    } else {
        "UPDATE push_subscriptions SET sent_near = ?3 WHERE turn_id = ?1 AND endpoint = ?2"
    };
    e.execute(sql, args![turn_id.to_string(), endpoint, true])
        .await?;
    Ok(())
}

/// See [`super::database::Database::drop_push`].
pub(crate) async fn drop_push(
    e: &impl Exec,
    turn_id: uuid::Uuid,
    endpoint: String,
) -> DbResult<()> {
    e.execute(
        "DELETE FROM push_subscriptions WHERE turn_id = ?1 AND endpoint = ?2",
        args![turn_id.to_string(), endpoint],
    )
    .await?;
    Ok(())
}

/// See [`super::database::Database::set_turns_ahead`].
pub(crate) async fn set_turns_ahead(e: &impl Exec, store_id: String, turns: u32) -> DbResult<()> {
    if store(e, store_id.clone()).await?.is_none() {
        return Err(DbError::NotFound(format!("store {store_id:?}")));
    }
    e.execute(
        "INSERT INTO store_notify (store_id, turns_ahead) VALUES (?1, ?2)
         ON CONFLICT (store_id) DO UPDATE SET turns_ahead = excluded.turns_ahead",
        args![store_id, i64::from(turns)],
    )
    .await?;
    Ok(())
}

/// See [`super::database::Database::sms_due`].
pub(crate) async fn sms_due(
    e: &impl Exec,
    store_id: String,
    now_ms: i64,
) -> DbResult<(String, u32, Vec<super::phone::SmsCandidate>)> {
    let Some((store, timezone)) = store_with_timezone(e, &store_id).await? else {
        return Err(DbError::NotFound(format!("store {store_id:?}")));
    };
    let (day, since) = queue::today(timezone.as_deref(), now_ms);
    e.execute(
        "DELETE FROM sms_sent WHERE store_id = ?1 AND business_day <> ?2",
        args![&store_id, &day],
    )
    .await?;
    let threshold = notify_threshold(e, &store_id).await?;
    let rows = e
        .query(
            &format!(
                "SELECT e.card_token, {}, c.phone, c.locale FROM events e
                 JOIN customers c ON c.card_token = e.card_token
                 WHERE e.store_id = ?1 AND e.type = 'ticket_issued' AND e.corrected_ms >= ?2
                   AND c.phone IS NOT NULL",
                e.dialect().envelope_field("payload.turn_id")
            ),
            args![&store_id, since],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let token: String = r.get(0)?;
        let Some(turn) = r.get::<Option<String>>(1)? else {
            continue;
        };
        let Ok(turn_id) = turn.parse::<uuid::Uuid>() else {
            continue;
        };
        let sent = e
            .query_opt("SELECT 1 FROM sms_sent WHERE turn_id = ?1", args![&turn])
            .await?
            .is_some();
        let consented = e
            .query_opt(
                "SELECT given FROM consents WHERE card_token = ?1 AND purpose = 'turn_sms'
                 ORDER BY at_ms DESC, id DESC LIMIT 1",
                args![&token],
            )
            .await?
            .map(|r| r.get::<bool>(0))
            .transpose()?
            .unwrap_or(false);
        if sent || !consented {
            continue;
        }
        out.push(super::phone::SmsCandidate {
            turn_id,
            phone: r.get(2)?,
            locale: r
                .get::<Option<String>>(3)?
                .unwrap_or_else(|| "es".to_owned()),
            store_name: store.name.clone(),
        });
    }
    Ok((day, threshold, out))
}

/// See [`super::database::Database::mark_sms_sent`]: false when it was already marked.
pub(crate) async fn mark_sms_sent(
    e: &impl Exec,
    turn_id: uuid::Uuid,
    store_id: String,
    business_day: String,
    now_ms: i64,
) -> DbResult<bool> {
    let n = e
        .execute(
            "INSERT INTO sms_sent (turn_id, store_id, business_day, sent_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (turn_id) DO NOTHING",
            args![turn_id.to_string(), store_id, business_day, now_ms],
        )
        .await?;
    Ok(n > 0)
}

/// Envelopes of `kind` events of `store_id` from `since_ms`, oldest first.
async fn envelopes_since(
    e: &impl Exec,
    store_id: &str,
    kind: &str,
    since_ms: i64,
) -> DbResult<Vec<kiosk_protocol::events::Envelope>> {
    e.query(
        "SELECT envelope FROM events WHERE store_id = ?1 AND type = ?2 AND corrected_ms >= ?3
         ORDER BY corrected_ms, id",
        args![store_id, kind, since_ms],
    )
    .await?
    .iter()
    .map(|r| {
        let text: String = r.get(0)?;
        serde_json::from_str(&text).map_err(|e| DbError::Corrupt(format!("{kind} envelope: {e}")))
    })
    .collect()
}

/// Card tokens of the identified turns issued at `store_id` from `since_ms`, by turn id.
async fn turn_tokens(
    e: &impl Exec,
    store_id: &str,
    since_ms: i64,
) -> DbResult<BTreeMap<String, String>> {
    e.query(
        &format!(
            "SELECT {}, card_token FROM events WHERE store_id = ?1 AND type = 'ticket_issued'
               AND corrected_ms >= ?2 AND card_token IS NOT NULL",
            e.dialect().envelope_field("payload.turn_id")
        ),
        args![store_id, since_ms],
    )
    .await?
    .iter()
    .filter_map(|r| match (r.get::<Option<String>>(0), r.get::<String>(1)) {
        (Ok(Some(t)), Ok(k)) => Some(Ok((t, k))),
        (Err(e), _) | (_, Err(e)) => Some(Err(e)),
        _ => None,
    })
    .collect()
}

/// See [`super::database::Database::presence`]; in one read snapshot.
pub(crate) async fn presence(
    e: &impl Exec,
    store_id: String,
    now_ms: i64,
) -> DbResult<super::presence::StorePresence> {
    use kiosk_protocol::events::Event;
    let Some((_, timezone)) = store_with_timezone(e, &store_id).await? else {
        return Err(DbError::NotFound(format!("store {store_id:?}")));
    };
    let (day, since) = queue::today(timezone.as_deref(), now_ms);
    let s = &store_id;
    let mut rows = super::presence::PresenceRows {
        business_day: day.clone(),
        ..Default::default()
    };
    let learned_since = now_ms - super::presence::DWELL_WINDOW_MS;
    let tokens = turn_tokens(e, s, learned_since.min(since)).await?;
    let mut segments: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut segment_of = async |turn: &str| -> DbResult<Option<String>> {
        let Some(token) = tokens.get(turn) else {
            return Ok(None);
        };
        if let Some(s) = segments.get(token) {
            return Ok(s.clone());
        }
        let seg: Option<String> = e
            .query_opt(
                "SELECT segment FROM customers WHERE card_token = ?1",
                args![token],
            )
            .await?
            .map(|r| r.get(0))
            .transpose()?;
        segments.insert(token.clone(), seg.clone());
        Ok(seg)
    };
    for r in e
        .query(
            "SELECT turn_id FROM queue_turns WHERE store_id = ?1 AND business_day = ?2
               AND status = 'waiting'",
            args![s, &day],
        )
        .await?
    {
        let turn: String = r.get(0)?;
        rows.waiting.push(segment_of(&turn).await?);
    }
    for r in e
        .query(
            "SELECT turn_id, issued_ms, served_ms FROM turns WHERE store_id = ?1
               AND issued_ms >= ?2 AND served_ms IS NOT NULL AND served_ms >= issued_ms",
            args![s, learned_since],
        )
        .await?
    {
        let turn: String = r.get(0)?;
        let (issued, served): (i64, i64) = (r.get(1)?, r.get(2)?);
        rows.visits
            .push((segment_of(&turn).await?, served - issued));
    }
    for env in envelopes_since(e, s, "people_counted", since).await? {
        if let Event::PeopleCounted(p) = env.event {
            rows.entries.push(u64::from(p.entries));
        }
    }
    for env in envelopes_since(e, s, "content_played", since).await? {
        if let Event::ContentPlayed(c) = env.event {
            let audience = c
                .audience
                .into_iter()
                .map(|a| (a.segment, u64::from(a.count)))
                .collect();
            rows.plays.push((c.campaign_id, c.content_id, audience));
        }
    }
    for r in e
        .query(
            "SELECT envelope, corrected_ms FROM events WHERE store_id = ?1
               AND type = 'assistance_requested' AND corrected_ms >= ?2 ORDER BY corrected_ms, id",
            args![s, since],
        )
        .await?
    {
        let text: String = r.get(0)?;
        let env: kiosk_protocol::events::Envelope = serde_json::from_str(&text)
            .map_err(|e| DbError::Corrupt(format!("assistance_requested envelope: {e}")))?;
        if let Event::AssistanceRequested(a) = env.event {
            rows.requests
                .push((a.request_id.to_string(), a.place_name, r.get(1)?));
        }
    }
    for env in envelopes_since(e, s, "assistance_acknowledged", since).await? {
        if let Event::AssistanceAcknowledged(a) = env.event {
            rows.acks
                .push((a.request_id.to_string(), a.counter, a.response_ms));
        }
    }
    Ok(super::presence::assemble(s, now_ms, rows))
}

/// See [`super::database::Database::set_store_config`]; in a transaction. The store must exist.
pub(crate) async fn set_store_config(
    e: &impl Exec,
    store_id: String,
    parts: StoreConfigParts,
    now_ms: i64,
) -> DbResult<StoreConfig> {
    if store(e, store_id.clone()).await?.is_none() {
        return Err(DbError::NotFound(format!("store {store_id:?}")));
    }
    // Also serialises two replicas numbering the same store's next version.
    e.lock_changes().await?;
    let version = store_config(e, store_id.clone())
        .await?
        .map_or(1, |c| c.version + 1);
    let config = StoreConfig { version, parts };
    let text = serde_json::to_string(&config)?;
    e.execute(
        "INSERT INTO store_configs (store_id, version, config, created_ms) VALUES (?1, ?2, ?3, ?4)",
        args![&store_id, i64_of(version), &text, now_ms],
    )
    .await?;
    e.execute(
        "DELETE FROM changes WHERE kind = 'store_config' AND item_key = ?1",
        args![&store_id],
    )
    .await?;
    let item = serde_json::to_string(&FeedItem::StoreConfig(config.clone()))?;
    e.execute(
        "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'store_config', ?1, ?2)",
        args![&store_id, &item],
    )
    .await?;
    Ok(config)
}

/// See [`super::database::Database::store_config`].
pub(crate) async fn store_config(e: &impl Exec, store_id: String) -> DbResult<Option<StoreConfig>> {
    let Some(r) = e
        .query_opt(
            "SELECT config FROM store_configs WHERE store_id = ?1 ORDER BY version DESC LIMIT 1",
            args![&store_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let text: String = r.get(0)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DbError::Corrupt(format!("store config of {store_id:?}: {e}")))
}

/// What each kiosk of `store_id` last reported about the store configuration.
pub(crate) async fn kiosk_configs(
    e: &impl Exec,
    store_id: &str,
) -> DbResult<BTreeMap<String, super::dashboard::KioskConfigState>> {
    use kiosk_protocol::events::{Envelope, Event};
    let mut out: BTreeMap<String, super::dashboard::KioskConfigState> = BTreeMap::new();
    for r in e
        .query(
            "SELECT kiosk_id, envelope FROM events WHERE store_id = ?1
               AND type IN ('store_config_applied', 'store_config_refused')
             ORDER BY kiosk_id, seq",
            args![store_id],
        )
        .await?
    {
        let kiosk: String = r.get(0)?;
        let text: String = r.get(1)?;
        let env: Envelope = serde_json::from_str(&text)
            .map_err(|e| DbError::Corrupt(format!("store_config event envelope: {e}")))?;
        let state = out.entry(kiosk).or_default();
        match env.event {
            Event::StoreConfigApplied(a) => state.running = a.version,
            Event::StoreConfigRefused(r) => {
                state.refused = Some(r.version);
                state.refused_reason = Some(r.reason);
            }
            _ => {}
        }
    }
    for state in out.values_mut() {
        if state.refused.is_some_and(|v| v <= state.running) {
            state.refused = None;
            state.refused_reason = None;
        }
    }
    Ok(out)
}
