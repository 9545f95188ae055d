//! The endpoint's database layer behind one async [`Database`] trait, with two backends: SQLite
//! ([`sqlite::SqliteDb`], the default, one file) and PostgreSQL ([`postgres::PgDb`], for a
//! fleet: several endpoint replicas share one database and rely on its transactions and unique
//! constraints). ("Store" in this crate is always a shop: [`StoreRecord`], `store_id`.)
//!
//! Data flow: HTTP handlers → (validated, time-corrected) [`IngestBatch`] → **db** → feed /
//! statistics. Handlers never speak SQL.
//!
//! Layout: this module holds the trait, its records and the pure decisions (segments, consent
//! flags, redaction, NPS); `shared` holds the logic that speaks SQL, written once for both
//! databases and run through `exec::Exec`; [`dialect`] is the seam where the two SQL dialects
//! differ (placeholders, `GREATEST`, JSON access); [`migrations`] the numbered schema of each;
//! [`dashboard`] the dashboard's figures from its rows. [`sqlite`] and [`postgres`] keep only what
//! really differs: how a call gets a connection and a transaction (one writer with group commit
//! and a reader, versus a pool), how a batch's events are inserted (per event, versus one
//! `UNNEST` statement) and the dashboard facts of a batch (per event, versus folded per batch).
//! The shared test suite in `tests/` runs against both.

pub mod dashboard;
pub mod dialect;
pub mod exec;
pub mod migrations;
pub mod postgres;
pub(crate) mod shared;
pub mod sqlite;

use std::sync::Arc;

use futures::future::BoxFuture;
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::{Campaign, DeviceSecret, EventStatus, FeedItem, TenantKey};
use serde::{Deserialize, Serialize};

pub use dashboard::{Dashboard, DashboardQuery, StoreSummary};

/// Result of every database call.
pub type DbResult<T> = Result<T, DbError>;

/// What can go wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database URL is neither `sqlite://...` nor `postgres://...`.
    #[error("database url {0:?} is not supported; use sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl(String),
    /// SQLite failed.
    #[error("sqlite database failed")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres database failed")]
    Postgres(#[from] tokio_postgres::Error),
    /// A blocking database task panicked or was cancelled.
    #[error("database worker thread failed")]
    Worker(#[from] tokio::task::JoinError),
    /// Stored JSON could not be read back.
    #[error("stored json is unreadable")]
    Json(#[from] serde_json::Error),
    /// Stored data violates an invariant (a bad key, an unknown store).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The caller referred to something that does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The batch's request signature was seen before: a replay, nothing stored.
    #[error("this signed request was already received")]
    Replayed,
    /// The database's schema is newer than this endpoint knows (a downgrade).
    #[error(
        "database schema version {found} was written by a newer crm-endpoint; this one supports up \
         to version {supported}: run the newer endpoint or restore a backup of the database"
    )]
    NewerSchema {
        /// Version recorded in the database.
        found: i64,
        /// Newest version this endpoint knows.
        supported: i64,
    },
    /// A bug: an invariant of the endpoint's own code does not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// A batch committed together with others (see the SQLite store's group commit) failed
    /// because their shared transaction did.
    #[error("the transaction this batch was part of failed: {0}")]
    GroupFailed(String),
}

/// Which database backs the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DbKind {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl DbKind {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

/// A (retail) store: kiosks and campaigns belong to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRecord {
    /// Short id (`madrid-centro`).
    pub id: String,
    /// Name shown on screens and tickets.
    pub name: String,
}

/// An enrolled kiosk, as authentication needs it.
#[derive(Debug, Clone)]
pub struct KioskRecord {
    /// Kiosk id.
    pub id: String,
    /// Its store.
    pub store_id: String,
    /// Its signing secret.
    pub secret: DeviceSecret,
    /// Current clock-skew estimate (server minus kiosk, ms) and when it was taken (server ms).
    pub skew: Option<SkewEstimate>,
}

/// A kiosk's clock skew: add `skew_ms` to kiosk wall time to get server time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkewEstimate {
    /// Server time minus kiosk time, ms.
    pub skew_ms: i64,
    /// Server time (unix ms) of the sample the estimate comes from.
    pub at_ms: i64,
}

/// A kiosk being enrolled.
#[derive(Debug, Clone)]
pub struct NewKiosk {
    /// Fresh kiosk id.
    pub id: String,
    /// Fresh device secret.
    pub secret: DeviceSecret,
    /// Hardware profile reported by the kiosk.
    pub hardware_profile: String,
    /// Firmware version reported by the kiosk.
    pub firmware_version: String,
}

/// What a validated event does besides being stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Nothing beyond the event row.
    None,
    /// `customer_registered`: create or update the profile.
    Registered {
        /// Card token.
        token: CardToken,
        /// Display name.
        display_name: String,
        /// Email, if given.
        email: Option<String>,
        /// Phone, if given.
        phone: Option<String>,
        /// Locale.
        locale: String,
    },
    /// `consent_given` / `consent_withdrawn`: append to the consent history.
    Consent {
        /// Card token.
        token: CardToken,
        /// `profile`, `marketing_email` or `marketing_sms`.
        purpose: &'static str,
        /// Given (true) or withdrawn.
        given: bool,
        /// Policy version shown.
        policy_version: String,
        /// Policy text digest.
        policy_sha256: String,
    },
    /// `ticket_issued` by an identified customer: a visit (segments are computed from visits).
    Visit {
        /// Card token.
        token: CardToken,
    },
    /// `card_tapped` / `customer_identified`: the customer is seen at this store.
    Seen {
        /// Card token.
        token: CardToken,
    },
    /// `campaign_shown`: an impression.
    CampaignShown {
        /// Campaign id.
        campaign_id: String,
        /// Variant shown.
        variant: String,
    },
    /// `coupon_issued`: remember which campaign variant the coupon belongs to.
    CouponIssued {
        /// Coupon code.
        code: String,
        /// Campaign, if any.
        campaign_id: Option<String>,
        /// Variant, if any.
        variant: Option<String>,
    },
    /// `coupon_redeemed`: a conversion, attributed to the variant the coupon was issued with (or
    /// the customer's deterministic variant).
    CouponRedeemed {
        /// Coupon code.
        code: String,
        /// Campaign, if known.
        campaign_id: Option<String>,
        /// Customer, if identified.
        token: Option<CardToken>,
    },
}

/// What an event tells the dashboard's tables besides being stored: turn timings (joined by turn
/// id, at the event's skew-corrected time) and each device's latest health.
#[derive(Debug, Clone, PartialEq)]
pub enum OpsFact {
    /// `ticket_issued`: a turn starts waiting.
    TurnIssued {
        /// Turn id.
        turn_id: uuid::Uuid,
        /// Service letter.
        service: String,
        /// Whether the ticket carries a card token.
        identified: bool,
    },
    /// `turn_called`: the first call ends the wait (recalls change nothing).
    TurnCalled {
        /// Turn id.
        turn_id: uuid::Uuid,
    },
    /// `turn_served`: the service ends.
    TurnServed {
        /// Turn id.
        turn_id: uuid::Uuid,
    },
    /// `device_status_changed`: the device's health unless a later one is stored.
    DeviceStatus {
        /// `printer`, `scanner`, ...
        device: &'static str,
        /// `ok`, `degraded`, `absent`.
        status: &'static str,
        /// Why.
        reason: Option<String>,
    },
}

/// One validated event ready to be stored.
#[derive(Debug, Clone)]
pub struct IngestEvent {
    /// Event id (the dedupe key).
    pub id: uuid::Uuid,
    /// Per-kiosk sequence.
    pub seq: u64,
    /// Event type name.
    pub kind: &'static str,
    /// Schema version.
    pub schema_version: u16,
    /// Device wall time, unix ms.
    pub device_ms: i64,
    /// Skew-corrected time, unix ms.
    pub corrected_ms: i64,
    /// Card token the event is about, if any.
    pub card_token: Option<CardToken>,
    /// The envelope as JSON (personal data redacted when the customer was erased before).
    pub envelope: String,
    /// What it does beyond being stored.
    pub effect: Effect,
    /// What it tells the dashboard.
    pub ops: Option<OpsFact>,
}

/// One batch of validated events from one kiosk, with the kiosk's state to record.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    /// Kiosk id.
    pub kiosk_id: String,
    /// The kiosk's store.
    pub store_id: String,
    /// Server receive time, unix ms.
    pub received_ms: i64,
    /// New skew estimate to record.
    pub skew: Option<SkewEstimate>,
    /// Outbox backlog the kiosk reported.
    pub backlog: Option<u64>,
    /// The events, in request order.
    pub events: Vec<IngestEvent>,
    /// The request's signature, remembered in the batch's own transaction: a replay stores
    /// nothing ([`DbError::Replayed`]), and a batch that fails leaves no signature behind.
    pub replay: Option<ReplayGuard>,
}

/// A signed request to remember against replays (see [`Database::remember_signature`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayGuard {
    /// The request's signature, lowercase hex.
    pub signature: String,
    /// When the signature's timestamp leaves the replay window, unix ms.
    pub expires_ms: i64,
    /// Now, unix ms: signatures expired before this are forgotten on the way.
    pub now_ms: i64,
}

/// A page of a store's sync feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// Items after the cursor, oldest first.
    pub items: Vec<FeedItem>,
    /// Cursor of the last item (or the request's cursor when empty).
    pub next_cursor: u64,
    /// Whether more items wait.
    pub more: bool,
}

/// The admin view of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    /// Card token.
    pub card_token: CardToken,
    /// Display name (absent before registration).
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Locale.
    pub locale: Option<String>,
    /// Current segment.
    pub segment: String,
    /// Whether the segment was set by hand (not recomputed from visits).
    pub segment_manual: bool,
    /// Visits (identified tickets).
    pub visits: i64,
    /// Last visit, unix ms.
    pub last_visit_ms: Option<i64>,
    /// Stores whose kiosks receive the profile.
    pub stores: Vec<String>,
    /// Consent history, oldest first.
    pub consents: Vec<ConsentRecord>,
}

/// One consent change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// `profile`, `marketing_email`, `marketing_sms`.
    pub purpose: String,
    /// Given or withdrawn.
    pub given: bool,
    /// Policy version shown.
    pub policy_version: String,
    /// SHA-256 of the policy text shown.
    pub policy_sha256: String,
    /// When, unix ms (skew-corrected).
    pub at_ms: i64,
}

/// Statistics of one store, for `/v1/stats` and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Store id.
    pub store_id: String,
    /// Events stored.
    pub events: u64,
    /// Tickets issued.
    pub tickets_issued: u64,
    /// Tickets issued to identified customers.
    pub identified_tickets: u64,
    /// Customers whose profile this store's kiosks receive.
    pub customers: u64,
    /// Kiosks and their health.
    pub kiosks: Vec<KioskHealth>,
    /// Campaign conversion per variant.
    pub campaigns: Vec<VariantStats>,
    /// Survey answers and NPS (promoters% − detractors%), if any answers.
    pub nps: Option<Nps>,
}

/// Health of one kiosk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskHealth {
    /// Kiosk id.
    pub kiosk_id: String,
    /// Last authenticated request, unix ms.
    pub last_seen_ms: Option<i64>,
    /// Clock skew estimate, ms (server − kiosk).
    pub skew_ms: Option<i64>,
    /// Outbox backlog last reported.
    pub backlog: Option<i64>,
}

/// Impressions and redemptions of one campaign variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantStats {
    /// Campaign id.
    pub campaign_id: String,
    /// Variant.
    pub variant: String,
    /// `campaign_shown` events.
    pub shown: u64,
    /// `coupon_redeemed` events attributed to it.
    pub redeemed: u64,
    /// redeemed / shown (0 when never shown).
    pub conversion: f64,
}

/// Net promoter score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nps {
    /// Answers.
    pub responses: u64,
    /// Promoters (9–10) % minus detractors (0–6) %.
    pub score: f64,
}

/// Everything the endpoint persists. Both implementations must behave identically: the test
/// suite in `sync/endpoint/tests/` runs against each.
pub trait Database: Send + Sync + 'static {
    /// Which database this is.
    fn kind(&self) -> DbKind;

    /// The tenant key card tokens are made with (created at first start, never changed).
    fn tenant_key(&self) -> BoxFuture<'_, DbResult<TenantKey>>;

    /// Replaces the tenant key while no kiosk is enrolled and no customer known (demo set-ups
    /// that need a known key); false, and nothing changed, once either exists.
    fn set_tenant_key_if_unused(&self, key: TenantKey) -> BoxFuture<'_, DbResult<bool>>;

    /// Creates a store or renames an existing one.
    fn upsert_store(&self, store: StoreRecord) -> BoxFuture<'_, DbResult<()>>;

    /// A store by id.
    fn store(&self, id: String) -> BoxFuture<'_, DbResult<Option<StoreRecord>>>;

    /// Records a one-time enrollment code (only its hash) for `store_id`, valid until
    /// `expires_ms`.
    fn create_enroll_code(
        &self,
        code_hash: String,
        store_id: String,
        expires_ms: i64,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Atomically spends an unexpired, unused code and enrolls `kiosk` in its store. `None` when
    /// the code is unknown, spent or expired.
    fn redeem_enroll_code(
        &self,
        code_hash: String,
        now_ms: i64,
        kiosk: NewKiosk,
    ) -> BoxFuture<'_, DbResult<Option<StoreRecord>>>;

    /// An enrolled kiosk.
    fn kiosk(&self, kiosk_id: String) -> BoxFuture<'_, DbResult<Option<KioskRecord>>>;

    /// Remembers a request signature until `expires_ms`; false when it was already seen (a
    /// replay). Forgets expired signatures on the way.
    fn remember_signature(
        &self,
        signature: String,
        expires_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Marks a kiosk as seen now (any authenticated request).
    fn touch_kiosk(&self, kiosk_id: String, now_ms: i64) -> BoxFuture<'_, DbResult<()>>;

    /// Stores a batch in one transaction: each event is stored once (accepted) or found stored
    /// (duplicate), its effects applied only when accepted. Answers per event, in order. With a
    /// [`ReplayGuard`], the signature is remembered in the same transaction, and a signature seen
    /// before is [`DbError::Replayed`] with nothing stored.
    fn ingest(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<Vec<EventStatus>>>;

    /// Plain inserts of event rows, no dedupe check or effects: the benchmark's reference.
    fn insert_events_bare(&self, batch: IngestBatch) -> BoxFuture<'_, DbResult<u64>>;

    /// Number of stored events (all kiosks).
    fn event_count(&self) -> BoxFuture<'_, DbResult<u64>>;

    /// The feed of `store_id` after `cursor`.
    fn feed(&self, store_id: String, cursor: u64, limit: u32) -> BoxFuture<'_, DbResult<FeedPage>>;

    /// A kiosk of `store_id` looks up a card its cache does not know: the registered customer's
    /// profile (`None` for nobody, or a customer who never registered a name). The customer
    /// becomes known to the store, so their later changes reach its feed.
    fn lookup_profile(
        &self,
        store_id: String,
        token: CardToken,
    ) -> BoxFuture<'_, DbResult<Option<kiosk_protocol::wire::Profile>>>;

    /// Creates or replaces a campaign and publishes it to its stores' feeds.
    fn upsert_campaign(&self, campaign: Campaign, now_ms: i64) -> BoxFuture<'_, DbResult<()>>;

    /// All campaigns.
    fn campaigns(&self) -> BoxFuture<'_, DbResult<Vec<Campaign>>>;

    /// A customer, for the admin API.
    fn customer(&self, token: CardToken) -> BoxFuture<'_, DbResult<Option<CustomerRecord>>>;

    /// Sets a customer's segment by hand (`Some`) or returns it to computation (`None`). False
    /// when there is no such customer.
    fn set_segment(
        &self,
        token: CardToken,
        segment: Option<String>,
        now_ms: i64,
    ) -> BoxFuture<'_, DbResult<bool>>;

    /// Recomputes every computed segment at `now_ms` (lapsed customers need time, not events);
    /// returns how many changed.
    fn recompute_segments(&self, now_ms: i64) -> BoxFuture<'_, DbResult<u64>>;

    /// Creates a customer profile directly (admin API, demo seed) as if registered at `store_id`.
    fn upsert_customer(&self, customer: NewCustomer, now_ms: i64) -> BoxFuture<'_, DbResult<()>>;

    /// Erases a customer's personal data (profile, personal fields in stored events), records an
    /// erasure in every store's feed. False when the token was never known.
    fn erase_customer(&self, token: CardToken, now_ms: i64) -> BoxFuture<'_, DbResult<bool>>;

    /// Statistics of one store.
    fn stats(&self, store_id: String) -> BoxFuture<'_, DbResult<StoreStats>>;

    /// Sets (or clears) a store's IANA time zone, which the dashboard's hours are in; the caller
    /// checks the name ([`dashboard::known_timezone`]). `NotFound` when the store does not exist.
    fn set_store_timezone(
        &self,
        store_id: String,
        timezone: Option<String>,
    ) -> BoxFuture<'_, DbResult<()>>;

    /// Every store with its time zone and kiosks, by id.
    fn list_stores(&self) -> BoxFuture<'_, DbResult<Vec<StoreSummary>>>;

    /// The dashboard of one store (or one of its kiosks) over a window: tickets per hour and
    /// service, waiting and service times, visitors, campaign conversion, NPS, and its kiosks'
    /// health and last log lines. Indexed: the window's rows are read, not the store's history.
    /// `NotFound` when the store does not exist.
    fn dashboard(&self, query: DashboardQuery) -> BoxFuture<'_, DbResult<Dashboard>>;
}

/// A customer created through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Card token.
    pub card_token: CardToken,
    /// Store where the customer is registered.
    pub store_id: String,
    /// Display name.
    pub display_name: String,
    /// Locale (`es`, `en`).
    #[serde(default = "default_locale")]
    pub locale: String,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Consents to record as given now (`profile`, `marketing_email`, `marketing_sms`).
    #[serde(default)]
    pub consents: Vec<String>,
    /// Segment set by hand, if any.
    #[serde(default)]
    pub segment: Option<String>,
    /// Visits to start from (imports from an older CRM).
    #[serde(default)]
    pub visits: i64,
}

fn default_locale() -> String {
    "es".to_owned()
}

/// A shared store handle.
pub type SharedDb = Arc<dyn Database>;

/// Opens (and migrates) the store a URL names: `sqlite://PATH` (`sqlite::memory:` for a throwaway
/// in-memory database) or `postgres://...` / `postgresql://...`.
pub async fn open(url: &str) -> DbResult<SharedDb> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(sqlite::SqliteDb::open(path).await?))
    } else if url == "sqlite::memory:" {
        Ok(Arc::new(sqlite::SqliteDb::open(":memory:").await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgDb::connect(url).await?))
    } else {
        Err(DbError::BadUrl(url.to_owned()))
    }
}

/// Segment names the endpoint computes (admins may set others by hand).
pub const SEGMENTS: &[&str] = &["new", "regular", "lapsed", "vip"];

/// A customer with visits who has not come for this long is `lapsed`.
pub const LAPSED_AFTER_MS: i64 = 60 * 24 * 3600 * 1000;

/// The computed segment: `lapsed` after [`LAPSED_AFTER_MS`] without a visit, else `vip` from 10
/// visits, `regular` from 3, `new` below.
pub fn computed_segment(visits: i64, last_visit_ms: Option<i64>, now_ms: i64) -> &'static str {
    match last_visit_ms {
        Some(last) if visits > 0 && now_ms.saturating_sub(last) > LAPSED_AFTER_MS => "lapsed",
        _ if visits >= 10 => "vip",
        _ if visits >= 3 => "regular",
        _ => "new",
    }
}

/// Current consent flags from a history (oldest first): the latest change per purpose wins.
pub fn consent_flags(history: &[ConsentRecord]) -> kiosk_protocol::wire::ConsentFlags {
    let mut flags = kiosk_protocol::wire::ConsentFlags::default();
    for c in history {
        match c.purpose.as_str() {
            "profile" => flags.profile = c.given,
            "marketing_email" => flags.marketing_email = c.given,
            "marketing_sms" => flags.marketing_sms = c.given,
            _ => {}
        }
    }
    flags
}

/// A customer's profile as a store's kiosks may know it (the feed's and the live lookup's): the
/// name only with the profile consent.
pub fn kiosk_profile(
    token: &CardToken,
    display_name: &str,
    segment: &str,
    locale: &str,
    history: &[ConsentRecord],
) -> kiosk_protocol::wire::Profile {
    let consent = consent_flags(history);
    kiosk_protocol::wire::Profile {
        card_token: token.clone(),
        display_name: if consent.profile {
            display_name.to_owned()
        } else {
            String::new()
        },
        segment: segment.to_owned(),
        consent,
        locale: locale.to_owned(),
    }
}

/// Variant a redemption is attributed to when its coupon's issue was not seen: the customer's
/// deterministic variant, or `unknown`.
pub fn redemption_variant(campaign: Option<&Campaign>, token: Option<&CardToken>) -> String {
    match (campaign, token) {
        (Some(c), Some(t)) => c.variant_for(t.as_str()),
        _ => "unknown".to_owned(),
    }
}

/// A `customer_registered` envelope with its personal data removed (name, email, phone), for
/// customers erased before (or after) the event reached the endpoint.
pub fn redact_registration(envelope: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(envelope) else {
        // Stored envelopes are always JSON; if not, keep nothing rather than personal data.
        return "{}".to_owned();
    };
    if let Some(p) = v.get_mut("payload").and_then(|p| p.as_object_mut()) {
        p.insert(
            "display_name".into(),
            serde_json::Value::String(String::new()),
        );
        p.insert("email".into(), serde_json::Value::Null);
        p.insert("phone".into(), serde_json::Value::Null);
    }
    v.to_string()
}

/// The feed item announcing an erasure.
pub fn erasure_item(token: &CardToken, erased_ms: i64) -> FeedItem {
    let erased_at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(erased_ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    FeedItem::Erasure(kiosk_protocol::wire::Erasure {
        card_token: token.clone(),
        erased_at,
    })
}

/// One row of campaign statistics.
pub fn variant_stats(
    campaign_id: String,
    variant: String,
    shown: i64,
    redeemed: i64,
) -> VariantStats {
    let shown = u64::try_from(shown).unwrap_or(0);
    let redeemed = u64::try_from(redeemed).unwrap_or(0);
    let conversion = if shown == 0 {
        0.0
    } else {
        redeemed as f64 / shown as f64
    };
    VariantStats {
        campaign_id,
        variant,
        shown,
        redeemed,
        conversion,
    }
}

/// NPS of `survey_answered` envelopes (unreadable ones are skipped).
pub fn nps_of(envelopes: &[String]) -> Option<Nps> {
    let scores: Vec<u64> = envelopes
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| v["payload"]["score"].as_u64())
        .collect();
    if scores.is_empty() {
        return None;
    }
    let n = scores.len() as f64;
    let promoters = scores.iter().filter(|s| **s >= 9).count() as f64;
    let detractors = scores.iter().filter(|s| **s <= 6).count() as f64;
    Some(Nps {
        responses: scores.len() as u64,
        score: 100.0 * (promoters - detractors) / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1000;

    #[test]
    fn segments_follow_visits_and_lapse_with_time() {
        assert_eq!(computed_segment(0, None, 0), "new");
        assert_eq!(computed_segment(3, Some(0), DAY), "regular");
        assert_eq!(computed_segment(10, Some(0), DAY), "vip");
        assert_eq!(computed_segment(10, Some(0), 61 * DAY), "lapsed");
    }

    #[test]
    fn latest_consent_per_purpose_wins() {
        let c = |purpose: &str, given, at_ms| ConsentRecord {
            purpose: purpose.into(),
            given,
            policy_version: "1".into(),
            policy_sha256: String::new(),
            at_ms,
        };
        let flags = consent_flags(&[
            c("profile", true, 1),
            c("marketing_email", true, 2),
            c("marketing_email", false, 3),
        ]);
        assert!(flags.profile && !flags.marketing_email && !flags.marketing_sms);
    }
}
