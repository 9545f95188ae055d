//! The database layer's vocabulary: its errors, the records it stores and answers with (stores,
//! kiosks, customers, consents, feed pages, statistics), what an ingested event does, and the
//! pure decisions on them (segments, consent flags, redaction, NPS). Imports nothing else of the
//! layer.

use kiosk_protocol::CardToken;
use kiosk_protocol::wire::{Campaign, DeviceSecret, FeedItem};
use serde::{Deserialize, Serialize};

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
    /// The database file is open to other users (or cannot be created private).
    #[error(transparent)]
    Private(#[from] kiosk_types::private_file::PrivateFileError),
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
    /// The operation would harm this database (the message says why and what to do).
    #[error("{0}")]
    Refused(String),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// One line of the operator's audit log: who (how they were let in, or where a refused caller
/// came from), did what, to what (a card token or a route, never a name, email or phone), and
/// the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// When, unix ms.
    pub at_ms: i64,
    /// `token@ADDR`, `session@ADDR` (a token login), `user:NAME@ADDR` (an account), or `ADDR`
    /// for a refused caller.
    pub actor: String,
    /// `read_customer`, `erase_customer`, `export_customer`, `admin_auth_failed`,
    /// `dashboard_login_failed`, `login`, `logout`, `login_failed`, a write (`set_store_config`,
    /// `add_account`, ...), `forbidden` (a call refused by role).
    pub action: String,
    /// The card token or the route.
    pub target: String,
    /// `ok`, `refused`, `not_found`.
    pub outcome: String,
    /// The console account that acted (`null`: the admin token, or a caller not logged in).
    #[serde(default)]
    pub user: Option<String>,
}

/// A (retail) store: kiosks and campaigns belong to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The samples the estimate comes from.
    pub skew_samples: SkewSamples,
}

/// A kiosk's clock skew: add `skew_ms` to kiosk wall time to get server time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SkewEstimate {
    /// Server time minus kiosk time, ms.
    pub skew_ms: i64,
    /// Server time (unix ms) of the sample the estimate comes from.
    pub at_ms: i64,
}

/// The recent clock samples of a kiosk's current boot, oldest first (at most
/// [`crate::ingest::SKEW_SAMPLES`]); the skew estimate is their median
/// ([`crate::ingest::read_clock`]). Stored as JSON with the kiosk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkewSamples {
    /// The boot the samples belong to.
    pub boot_id: Option<uuid::Uuid>,
    /// The samples, oldest first.
    pub samples: Vec<SkewEstimate>,
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
        /// `profile`, `marketing_email`, `marketing_sms` or `turn_sms`.
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
    /// `campaign_shown`: an exposure, counted once per visit and campaign.
    CampaignShown {
        /// Campaign id.
        campaign_id: String,
        /// Variant shown.
        variant: String,
        /// The visit (`None` from kiosks before visit ids: each event counts).
        visit_id: Option<String>,
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
        /// Variant the kiosk read from the coupon's code, if it did.
        variant: Option<String>,
    },
    /// `survey_answered` about a turn: kept only if it is the turn's first answer.
    SurveyAnswered {
        /// The turn.
        turn_id: String,
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

/// The kind of a queue step: what an event did to a turn of the store's live queue.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QueueStepKind {
    /// `ticket_issued`: the turn starts waiting.
    Issued,
    /// `turn_called` (a first call or a recall).
    Called,
    /// `turn_served`.
    Served,
    /// `turn_no_show`.
    NoShow,
    /// `turn_transferred`: it waits again, in another service's line.
    Transferred,
    /// `turn_parked`: set aside at its counter, waiting to be called back.
    Parked,
    /// `turn_walked_out`: left before being called.
    WalkedOut,
    /// `queue_conflict`: a step of the kiosk that recorded it lost a merge after a partition.
    Conflict,
}

impl QueueStepKind {
    /// Every kind.
    pub const ALL: [QueueStepKind; 8] = [
        QueueStepKind::Issued,
        QueueStepKind::Called,
        QueueStepKind::Served,
        QueueStepKind::NoShow,
        QueueStepKind::Transferred,
        QueueStepKind::Parked,
        QueueStepKind::WalkedOut,
        QueueStepKind::Conflict,
    ];

    /// The step's name (as stored with its turn, and in the live queue's JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStepKind::Issued => "issued",
            QueueStepKind::Called => "called",
            QueueStepKind::Served => "served",
            QueueStepKind::NoShow => "no_show",
            QueueStepKind::Transferred => "transferred",
            QueueStepKind::Parked => "parked",
            QueueStepKind::WalkedOut => "walked_out",
            QueueStepKind::Conflict => "conflict",
        }
    }

    /// The kind stored as `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The event type whose steps are of this kind.
    pub fn event_type(self) -> &'static str {
        match self {
            QueueStepKind::Issued => "ticket_issued",
            QueueStepKind::Called => "turn_called",
            QueueStepKind::Served => "turn_served",
            QueueStepKind::NoShow => "turn_no_show",
            QueueStepKind::Transferred => "turn_transferred",
            QueueStepKind::Parked => "turn_parked",
            QueueStepKind::WalkedOut => "turn_walked_out",
            QueueStepKind::Conflict => "queue_conflict",
        }
    }
}

/// What a queue event tells the store's live queue (see `db::queue`): one step of one turn,
/// stored as it came and folded with the turn's other steps whatever their arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStep {
    /// The turn (`None` only for a conflict that names no turn).
    pub turn_id: Option<uuid::Uuid>,
    /// What happened.
    pub kind: QueueStepKind,
    /// The turn as shown (`A-042`), when the event carries it.
    pub label: Option<String>,
    /// Issued: the service; transferred: the service it now waits for.
    pub service: Option<String>,
    /// The counter concerned, when the event names one.
    pub counter: Option<String>,
    /// Issued: the business day of its number (`YYYY-MM-DD`, store time).
    pub business_day: Option<String>,
    /// Issued: a priority turn.
    pub priority: bool,
    /// Issued: numbered outside the store's sequence (a kiosk cut off from the others).
    pub out_of_sequence: bool,
    /// Called: a repeated call.
    pub recall: bool,
    /// Transferred: the service it left; conflict: the dropped step (`call`); no-show:
    /// `recall_limit` when the recall limit marked it.
    pub detail: Option<String>,
    /// Conflict: why the step was dropped.
    pub reason: Option<String>,
    /// Called, served, no-show: the staff member logged in at the counter with a PIN of their
    /// own (their id in the store config's `staff`).
    pub staff: Option<String>,
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
    /// What it does to the store's live queue.
    pub queue: Option<QueueStep>,
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
    /// The samples behind it, to record (`None` leaves them as they are).
    pub skew_samples: Option<SkewSamples>,
    /// Outbox backlog the kiosk reported.
    pub backlog: Option<u64>,
    /// How old the oldest event still waiting in its outbox is, as the kiosk reported it.
    pub backlog_age_ms: Option<u64>,
    /// The events, in request order.
    pub events: Vec<IngestEvent>,
    /// The request's signature, remembered in the batch's own transaction: a replay stores
    /// nothing ([`DbError::Replayed`]), and a batch that fails leaves no signature behind.
    pub replay: Option<ReplayGuard>,
}

/// A signed request to remember against replays (see [`Database::remember_signature`](super::database::Database::remember_signature)).
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConsentRecord {
    /// `profile`, `marketing_email`, `marketing_sms`, `turn_sms`.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantStats {
    /// Campaign id.
    pub campaign_id: String,
    /// Variant.
    pub variant: String,
    /// Exposures: `campaign_shown` counted once per visit.
    pub shown: u64,
    /// Conversions: `coupon_redeemed` attributed to it, once per coupon.
    pub redeemed: u64,
    /// redeemed / shown (0 when never shown).
    pub conversion: f64,
}

/// Net promoter score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Nps {
    /// Answers.
    pub responses: u64,
    /// Promoters (9–10) % minus detractors (0–6) %.
    pub score: f64,
}

/// A customer created through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Card token.
    pub card_token: CardToken,
    /// Store where the customer is registered.
    #[serde(deserialize_with = "kiosk_protocol::ident::deserialize")]
    #[schemars(with = "kiosk_protocol::ident::Ident")]
    pub store_id: String,
    /// Display name.
    #[serde(deserialize_with = "crate::input::name")]
    #[schemars(with = "crate::input::Name")]
    pub display_name: String,
    /// Locale (`es`, `en`).
    #[serde(default = "default_locale", deserialize_with = "crate::input::locale")]
    #[schemars(with = "crate::input::Locale")]
    pub locale: String,
    /// Email, or `null` for none.
    #[serde(default, deserialize_with = "crate::input::email")]
    #[schemars(with = "Option<crate::input::Email>")]
    pub email: Option<String>,
    /// Phone, or `null` for none.
    #[serde(default, deserialize_with = "crate::input::phone")]
    #[schemars(with = "Option<crate::input::Phone>")]
    pub phone: Option<String>,
    /// Consents to record as given now (`profile`, `marketing_email`, `marketing_sms`, `turn_sms`).
    #[serde(default, deserialize_with = "consent_purposes")]
    #[schemars(with = "Vec<kiosk_protocol::events::ConsentPurpose>", length(max = 4))]
    pub consents: Vec<String>,
    /// Segment set by hand, if any.
    #[serde(default, deserialize_with = "kiosk_protocol::ident::deserialize_opt")]
    #[schemars(with = "Option<kiosk_protocol::ident::Ident>")]
    pub segment: Option<String>,
    /// Visits to start from (imports from an older CRM): 0 to 1,000,000.
    #[serde(default, deserialize_with = "visits")]
    #[schemars(range(min = 0, max = crate::input::MAX_VISITS))]
    pub visits: i64,
}

/// The name a consent purpose has in the catalog and the database.
pub fn purpose_name(p: kiosk_protocol::events::ConsentPurpose) -> &'static str {
    use kiosk_protocol::events::ConsentPurpose;
    match p {
        ConsentPurpose::Profile => "profile",
        ConsentPurpose::MarketingEmail => "marketing_email",
        ConsentPurpose::MarketingSms => "marketing_sms",
        ConsentPurpose::TurnSms => "turn_sms",
    }
}

fn consent_purposes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let purposes = Vec::<kiosk_protocol::events::ConsentPurpose>::deserialize(d)?;
    if purposes.len() > 4 {
        return Err(serde::de::Error::custom("at most the 4 consent purposes"));
    }
    Ok(purposes
        .into_iter()
        .map(|p| purpose_name(p).to_owned())
        .collect())
}

fn visits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = i64::deserialize(d)?;
    if !(0..=crate::input::MAX_VISITS).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "{v} is out of range: 0 to {}",
            crate::input::MAX_VISITS
        )));
    }
    Ok(v)
}

fn default_locale() -> String {
    "es".to_owned()
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
            "turn_sms" => flags.turn_sms = c.given,
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

/// `url` fit for a log or an error message: a password in it (`postgres://user:secret@host/db`)
/// becomes `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
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
