//! Protocol v1 on the wire: the JSON bodies a kiosk and the CRM endpoint exchange over HTTP(S).
//!
//! Data flow: journal → outbox → **batch** → endpoint (ingest), and endpoint → **sync feed** →
//! kiosk caches (campaigns, profiles, erasures). Enrollment trades a technician's one-time code for
//! a kiosk id, a device secret and the tenant key. Every kiosk request is signed (see
//! [`crate::auth`]).
//!
//! Rules both sides rely on:
//! - a batch holds at most [`MAX_BATCH_EVENTS`] events and [`MAX_BATCH_BYTES`] of uncompressed JSON;
//!   beyond that the endpoint answers 413;
//! - a batch's id is [`batch_id`] of its kiosk id and first and last sequence numbers, so a batch
//!   retried after a crash is the same batch;
//! - `results[i]` in a [`BatchResponse`] answers `events[i]` of the request (same length, same
//!   order); an event is `accepted` once, `duplicate` on every later delivery, or `rejected` with a
//!   reason (dead-letter it, do not retry it);
//! - the feed cursor is an opaque, monotonically increasing number: pass back `next_cursor` until
//!   `more` is false;
//! - every error answer has an [`ErrorBody`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::CardToken;
use crate::events::Envelope;
pub use kiosk_types::{BadKey, Key32, TenantKey};

/// The protocol version this module describes (the `/v1/` in every path).
pub const PROTOCOL_VERSION: u16 = 1;

/// Most events in one batch; more is answered with 413.
pub const MAX_BATCH_EVENTS: usize = 500;

/// Most bytes of uncompressed JSON in one batch request body; more is answered with 413.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Largest `limit` the feed honours; larger values are clamped.
pub const MAX_FEED_LIMIT: u32 = 1000;

/// Largest monotonic reading (`mono_ms`) a kiosk may send: 100 years of uptime. Anything larger
/// is a broken clock, not a kiosk that has been up that long.
pub const MAX_MONO_MS: u64 = 100 * 36_525 * 864_000;

/// Header naming the kiosk that signed the request.
pub const HEADER_KIOSK_ID: &str = "x-kiosk-id";
/// Header carrying the signing time, unix seconds.
pub const HEADER_TIMESTAMP: &str = "x-kiosk-timestamp";
/// Header carrying the hex HMAC-SHA256 signature (see [`crate::auth`]).
pub const HEADER_SIGNATURE: &str = "x-kiosk-signature";
/// Header carrying the admin token on `/v1/admin/*` and `/v1/stats` (`Authorization: Bearer` is
/// accepted too).
pub const HEADER_ADMIN_TOKEN: &str = "x-admin-token";

/// Path of the enrollment call (unauthenticated: the one-time code is the credential).
pub const ENROLL_PATH: &str = "/v1/enroll";
/// Path of the health check (unauthenticated).
pub const HEALTH_PATH: &str = "/v1/health";

/// Path a kiosk posts its batches to.
pub fn batches_path(kiosk_id: &str) -> String {
    format!("/v1/kiosks/{kiosk_id}/batches")
}

/// Path and query a kiosk reads its sync feed from (exactly what it must sign).
pub fn feed_path_and_query(kiosk_id: &str, cursor: u64, limit: u32) -> String {
    format!("/v1/kiosks/{kiosk_id}/feed?cursor={cursor}&limit={limit}&v={FEED_VERSION}")
}

/// The feed items this protocol knows: 1 is campaigns, profiles, erasures and rated turns; 2
/// adds store configurations and promises to skip kinds it does not know
/// ([`FeedItem::Unknown`]); 3 adds a campaign's pictures and its coupon's rules
/// ([`Campaign::image`], [`Variant::image`], [`Coupon::valid_days`],
/// [`Coupon::max_per_customer`]). The CRM sends a kind only to kiosks that asked for a version
/// that knows it (a kiosk of version 1 fails on a kind it does not know, so it never gets one),
/// and a campaign without the fields a kiosk's version does not know
/// ([`Campaign::for_feed_version`]: campaigns refuse unknown fields).
pub const FEED_VERSION: u32 = 3;

/// Path a kiosk looks a card up at, live, when its own cache does not know the card (exactly
/// what it signs).
pub fn profile_path(kiosk_id: &str, token: &CardToken) -> String {
    format!("/v1/kiosks/{kiosk_id}/profiles/{}", token.as_str())
}

/// The per-device secret a kiosk signs its requests with (given once, at enrollment).
pub type DeviceSecret = Key32;

/// `POST /v1/enroll` request: a technician's one-time code and what is being enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time code printed by `crm-endpoint enroll-code`.
    #[schemars(length(min = 1, max = 64))]
    pub code: String,
    /// Name of the kiosk's hardware profile (`hw-config/*.toml`).
    #[schemars(with = "crate::ident::Ident")]
    pub hardware_profile: String,
    /// The kiosk's firmware version (printable ASCII, no spaces).
    #[schemars(regex(pattern = r"^[!-~]{1,64}$"))]
    pub firmware_version: String,
}

/// `POST /v1/enroll` answer: the kiosk's identity and keys. Keep `device_secret` and `tenant_key`
/// secret (encrypted at rest on the kiosk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollResponse {
    /// The id this kiosk signs and journals as.
    #[schemars(with = "crate::ident::Ident")]
    pub kiosk_id: String,
    /// Key for [`crate::auth::sign_request`].
    pub device_secret: DeviceSecret,
    /// Key for [`TenantKey::card_token`].
    pub tenant_key: TenantKey,
    /// The store the kiosk belongs to.
    #[schemars(with = "crate::ident::Ident")]
    pub store_id: String,
    /// The store's name, for screens and tickets.
    pub store_name: String,
}

/// The kiosk's clock when it sent a batch, for the endpoint's skew estimate (docs/DESIGN.md inv. 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KioskClock {
    /// The kiosk's wall clock at sending time.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub wall_time: OffsetDateTime,
    /// The kiosk's monotonic clock at sending time, ms since its boot (at most 100 years of
    /// uptime, `MAX_MONO_MS`).
    #[schemars(range(max = MAX_MONO_MS))]
    pub mono_ms: u64,
    /// The boot the monotonic reading belongs to (events of the same boot are placed in time by
    /// their `mono_ms`, which no wall-clock step can disturb).
    pub boot_id: Uuid,
}

impl KioskClock {
    /// The clock reading now; `boot_id` and `mono_ms` come from the caller's monotonic clock.
    pub fn now(boot_id: Uuid, mono_ms: u64) -> Self {
        KioskClock {
            wall_time: OffsetDateTime::now_utc(),
            mono_ms,
            boot_id,
        }
    }
}

/// Deterministic id of the batch holding a kiosk's events `first_seq..=last_seq`: the first 16
/// bytes of SHA-256(`"kiosk-batch-v1\n{kiosk_id}\n{first_seq}\n{last_seq}"`), as a UUIDv8.
pub fn batch_id(kiosk_id: &str, first_seq: u64, last_seq: u64) -> Uuid {
    let digest = Sha256::digest(format!(
        "kiosk-batch-v1\n{kiosk_id}\n{first_seq}\n{last_seq}"
    ));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// `POST /v1/kiosks/{kiosk_id}/batches` request. `E` is [`Envelope`] on the kiosk; the endpoint
/// reads raw JSON values so that one bad event does not reject its neighbours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchRequest<E = Envelope> {
    /// [`batch_id`] of the kiosk id and the first and last sequence numbers in `events`.
    pub batch_id: Uuid,
    /// The kiosk's clock at sending time.
    pub kiosk_clock: KioskClock,
    /// Events still waiting in the outbox after this batch, for the health dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,
    /// How old (ms, by the kiosk's clock at sending) the oldest event still waiting after this
    /// batch is: the fleet's "backlog older than N" alert reads it (absent: nothing waits, or a
    /// kiosk of an earlier release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog_age_ms: Option<u64>,
    /// The events, in sequence order; at most [`MAX_BATCH_EVENTS`] (500). The endpoint checks
    /// each against the catalog envelope (`Envelope`) on its own: one that does not match is
    /// rejected in its result, its neighbours are stored.
    #[schemars(length(max = MAX_BATCH_EVENTS))]
    pub events: Vec<E>,
}

impl BatchRequest<Envelope> {
    /// A batch of `events` (in sequence order) with its deterministic id; `None` when empty.
    pub fn new(kiosk_id: &str, kiosk_clock: KioskClock, events: Vec<Envelope>) -> Option<Self> {
        let first = events.first()?.seq;
        let last = events.last()?.seq;
        Some(BatchRequest {
            batch_id: batch_id(kiosk_id, first, last),
            kiosk_clock,
            backlog: None,
            backlog_age_ms: None,
            events,
        })
    }
}

/// What became of one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Stored now, for the first time.
    Accepted,
    /// Already stored by an earlier delivery: nothing changed. Counts as acknowledged.
    Duplicate,
    /// Invalid; never stored. Dead-letter it with the reason; retrying cannot help.
    Rejected,
}

/// The endpoint's answer about one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventResult {
    /// The event's id (nil when the event was too malformed to have a readable id).
    pub id: Uuid,
    /// The event's sequence number (0 when unreadable).
    pub seq: u64,
    /// Accepted, duplicate or rejected.
    pub status: EventStatus,
    /// Why it was rejected (only for `rejected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/kiosks/{kiosk_id}/batches` answer: `results[i]` answers `events[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchResponse {
    /// The request's batch id.
    pub batch_id: Uuid,
    /// One result per event, in request order.
    pub results: Vec<EventResult>,
    /// The endpoint's clock when it answered.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub server_time: OffsetDateTime,
}

/// Query of `GET /v1/kiosks/{kiosk_id}/feed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FeedQuery {
    /// The `next_cursor` of the previous page; 0 to start from the beginning.
    #[serde(default)]
    pub cursor: u64,
    /// Most items wanted: 1 to [`MAX_FEED_LIMIT`] (default 200); anything else is refused.
    #[serde(default = "default_feed_limit")]
    #[schemars(range(min = 1, max = MAX_FEED_LIMIT))]
    pub limit: u32,
    /// The feed items the kiosk knows ([`FEED_VERSION`]); absent is 1 (kiosks before store
    /// configurations).
    #[serde(default = "default_feed_version")]
    pub v: u32,
}

fn default_feed_version() -> u32 {
    1
}

fn default_feed_limit() -> u32 {
    200
}

/// `GET /v1/kiosks/{kiosk_id}/feed` answer. Apply items in order; a later item about the same
/// campaign or card token replaces an earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeedResponse {
    /// Changes after the requested cursor, oldest first.
    pub items: Vec<FeedItem>,
    /// Cursor to ask for next (equal to the requested one when nothing is new).
    pub next_cursor: u64,
    /// Whether more items are waiting right now.
    pub more: bool,
}

/// One change in a kiosk's sync feed, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "feed items live a page (at most a few hundred) at a time; boxing every campaign \
              would change every match for a few hundred bytes"
)]
pub enum FeedItem {
    /// A campaign for this store was created or changed (replace by id; `active: false` removes it).
    Campaign(Campaign),
    /// A customer profile this store's kiosks may greet (replace by card token).
    Profile(Profile),
    /// A customer was erased: drop everything about the token, including outbox events.
    Erasure(Erasure),
    /// A turn of this store was rated on the customer's phone: kiosks refuse a second answer.
    TurnRated(TurnRated),
    /// The store's configuration set at the CRM (a higher version replaces a lower one); sent
    /// to kiosks asking for feed version 2 or later.
    StoreConfig(crate::store_config::StoreConfig),
    /// A kind this kiosk does not know (from a newer CRM): skipped.
    #[serde(other)]
    Unknown,
}

/// A turn rated outside the kiosks (the customer's turn page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TurnRated {
    /// The turn.
    pub turn_id: uuid::Uuid,
}

/// Signage content of a campaign: what a lobby display or a browse point shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContentItem {
    /// Stable id within the campaign (`spring-1`), unique in it.
    #[schemars(with = "crate::ident::Ident")]
    pub id: String,
    /// Headline and text, in each language.
    pub text: Localized,
    /// A picture, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ContentImage>,
    /// Seconds on screen (3 to 60).
    #[schemars(range(min = 3, max = 60))]
    pub duration_s: u32,
}

/// A picture carried in the feed (small: at most [`MAX_CONTENT_IMAGE_BYTES`] decoded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContentImage {
    /// The picture's format.
    pub mime: ImageMime,
    /// The picture, base64 (standard alphabet, padded); at most [`MAX_CONTENT_IMAGE_BYTES`]
    /// decoded, and its bytes must be a picture of `mime`.
    #[schemars(
        length(max = 699_052),
        regex(pattern = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
    )]
    pub data: String,
    /// What it shows, for screen readers, in each language.
    pub alt: Localized,
}

/// Largest picture a content item may carry, decoded.
pub const MAX_CONTENT_IMAGE_BYTES: usize = 512 * 1024;

/// Most content items a campaign carries.
pub const MAX_CONTENT_ITEMS: usize = 20;

/// Picture formats every kiosk browser shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ImageMime {
    /// PNG.
    #[serde(rename = "image/png")]
    Png,
    /// JPEG.
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// WebP.
    #[serde(rename = "image/webp")]
    Webp,
}

impl ImageMime {
    /// The media type.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageMime::Png => "image/png",
            ImageMime::Jpeg => "image/jpeg",
            ImageMime::Webp => "image/webp",
        }
    }

    /// Whether `bytes` start as a picture of this format does (its magic number).
    pub fn matches(self, bytes: &[u8]) -> bool {
        match self {
            ImageMime::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            ImageMime::Jpeg => bytes.starts_with(&[0xff, 0xd8, 0xff]),
            ImageMime::Webp => {
                bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP"
            }
        }
    }
}

/// Text in each language the kiosk speaks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Localized {
    /// Spanish.
    pub es: String,
    /// English.
    pub en: String,
}

impl Localized {
    /// The text for `locale` (`en` or anything else → Spanish, the store's language).
    pub fn get(&self, locale: &str) -> &str {
        if locale.starts_with("en") {
            &self.en
        } else {
            &self.es
        }
    }
}

/// A coupon given with a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Coupon {
    /// Code prefix printed in the coupon's barcode (the kiosk appends the variant and a unique
    /// suffix: `CAFE-A-3F9C2D1E07`): 1 to 16 letters, digits and inner hyphens.
    #[schemars(regex(pattern = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,14}[A-Za-z0-9])?$"))]
    pub code: String,
    /// What the coupon is worth, in words for the ticket.
    pub text: Localized,
    /// Days the coupon is valid after the day it is issued (0: that day only): it expires on
    /// the issue day plus this many days, and never after the campaign's last day (a campaign's
    /// last day is the last day its offer is honoured). Absent: valid to the campaign's last day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 366))]
    pub valid_days: Option<u32>,
    /// Most coupons of this campaign a card holder gets in one store (their turns beyond it get
    /// the campaign without a coupon); visitors without a card get at most one per turn, as
    /// every turn does. Absent: one with every turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_per_customer: Option<u32>,
}

/// Most days a coupon may be valid ([`Coupon::valid_days`]).
pub const MAX_COUPON_VALID_DAYS: u32 = 366;
/// Most coupons per customer a campaign may allow ([`Coupon::max_per_customer`]).
pub const MAX_COUPONS_PER_CUSTOMER: u32 = 100;

/// One A/B variant of a campaign. Fields left out fall back to the campaign's own text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Variant name (`a`, `b`, ...), reported in `campaign_shown`.
    #[schemars(with = "crate::ident::Ident")]
    pub name: String,
    /// Relative weight (0 disables the variant).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Screen text of this variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_text: Option<Localized>,
    /// Ticket line of this variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_line: Option<Localized>,
    /// Picture of this variant on the kiosk's campaign screen (absent: the campaign's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ContentImage>,
}

fn default_weight() -> u32 {
    1
}

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// A campaign as kiosks see it (also the shape `crm-endpoint campaigns import` reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// Stable id (`spring-coffee-2026`).
    #[schemars(with = "crate::ident::Ident")]
    pub id: String,
    /// Name for staff and dashboards.
    pub name: String,
    /// Segments it targets (`new`, `regular`, `lapsed`, `vip`, or `anonymous` for visitors without
    /// a card); empty targets everyone.
    #[serde(default)]
    #[schemars(with = "Vec<crate::ident::Ident>")]
    pub target_segments: Vec<String>,
    /// Service letters it applies to; empty means all services.
    #[serde(default)]
    #[schemars(with = "Vec<crate::ident::ServiceCode>")]
    pub services: Vec<String>,
    /// Store ids it runs in; empty means every store (the feed only carries a store's campaigns).
    #[serde(default)]
    #[schemars(with = "Vec<crate::ident::Ident>")]
    pub stores: Vec<String>,
    /// Regions it runs in (ISO 3166-2 codes such as `ES-MD`), beside `stores`: the CRM resolves
    /// them to the stores of those regions when it puts the campaign in their feeds, and sends
    /// kiosks the campaign with the resolved `stores` and without `regions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[A-Z]{2}-[A-Z0-9]{1,9}$")))]
    pub regions: Vec<String>,
    /// First day it runs (`YYYY-MM-DD`, store time).
    #[serde(with = "iso_date")]
    #[schemars(with = "String", extend("format" = "date"))]
    pub starts_on: time::Date,
    /// Last day it runs, inclusive (not before `starts_on`).
    #[serde(with = "iso_date")]
    #[schemars(with = "String", extend("format" = "date"))]
    pub ends_on: time::Date,
    /// Text on the screen.
    pub screen_text: Localized,
    /// Line printed on the ticket.
    pub ticket_line: Localized,
    /// Picture shown with the screen text on the kiosk's campaign screen (the greeting of a
    /// member, the goodbye of a visitor), if any; a variant may have its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ContentImage>,
    /// Coupon handed out with it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<Coupon>,
    /// A/B variants; empty means a single variant named `a`. Names are unique and at least one
    /// variant has a weight above 0.
    #[serde(default)]
    #[schemars(extend("anyOf" = [{ "maxItems": 0 }, { "contains": { "properties": { "weight": { "minimum": 1 } } } }]))]
    pub variants: Vec<Variant>,
    /// Signage content for lobby displays and browse points (empty: the campaign runs on
    /// kiosks and tickets only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub content: Vec<ContentItem>,
    /// False when the campaign was withdrawn: kiosks drop it.
    #[serde(default = "default_true")]
    pub active: bool,
}

fn default_true() -> bool {
    true
}

impl Campaign {
    /// Whether the campaign runs on `day`.
    pub fn runs_on(&self, day: time::Date) -> bool {
        self.active && self.starts_on <= day && day <= self.ends_on
    }

    /// The variant `subject` (a card token, or a turn id for anonymous visitors) sees: the same
    /// answer on every kiosk and at the endpoint (see [`assign_variant`]).
    pub fn variant_for(&self, subject: &str) -> String {
        assign_variant(&self.id, subject, &self.variants)
    }

    /// The picture `variant` shows: its own, else the campaign's.
    pub fn picture_for(&self, variant: &str) -> Option<&ContentImage> {
        self.variants
            .iter()
            .find(|v| v.name == variant)
            .and_then(|v| v.image.as_ref())
            .or(self.image.as_ref())
    }

    /// The last day a coupon of this campaign issued on `issued_on` is valid: the issue day
    /// plus [`Coupon::valid_days`], never after [`Campaign::ends_on`] (nor before the issue
    /// day); the campaign's last day when the coupon has no validity of its own.
    pub fn coupon_expires_on(&self, issued_on: time::Date) -> time::Date {
        let days = self.coupon.as_ref().and_then(|c| c.valid_days);
        let end = self.ends_on.max(issued_on);
        match days {
            Some(d) => issued_on
                .checked_add(time::Duration::days(i64::from(d)))
                .map_or(end, |day| day.min(end)),
            None => end,
        }
    }

    /// This campaign as a kiosk asking for feed `version` reads it: without the fields its
    /// version does not know ([`FEED_VERSION`]; a campaign refuses unknown fields), so an older
    /// kiosk keeps its feed and runs the campaign without its picture and coupon rules.
    pub fn for_feed_version(mut self, version: u32) -> Campaign {
        if version < 3 {
            self.image = None;
            for v in &mut self.variants {
                v.image = None;
            }
            if let Some(c) = &mut self.coupon {
                c.valid_days = None;
                c.max_per_customer = None;
            }
        }
        self
    }
}

/// Whether a turn's survey can be answered now (docs/DESIGN.md invariant 17), keyed by the turn
/// id: the kiosks decide it from the store's queue and marks (`kiosk_store::StoreQueue::survey_status`),
/// the CRM from its live queue and the answers it keeps (`Database::survey_status`), so the
/// kiosk screen and the phone companion go through the same rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SurveyStatus {
    /// Served and not rated yet: one answer is welcome.
    Open,
    /// Issued but not served yet (waiting, called, parked): rate after being served.
    NotServed,
    /// Its one answer was given already.
    AlreadyAnswered,
    /// Not served and never will be (no-show, walked out, expired): nothing to rate.
    Closed,
    /// The turn is not known (another day, another store).
    Unknown,
}

/// Deterministic A/B assignment: SHA-256(`"{campaign_id}\n{subject}"`) read as a big-endian u64,
/// modulo the total weight, picks a variant by cumulative weight. No variants (or all weights 0)
/// gives `"a"`.
pub fn assign_variant(campaign_id: &str, subject: &str, variants: &[Variant]) -> String {
    let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
    if total == 0 {
        return "a".to_owned();
    }
    let digest = Sha256::digest(format!("{campaign_id}\n{subject}"));
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let mut point = u64::from_be_bytes(head) % total;
    for v in variants {
        let w = u64::from(v.weight);
        if point < w {
            return v.name.clone();
        }
        point -= w;
    }
    // Unreachable: point < total = sum of weights; fall back to the last variant anyway.
    variants
        .last()
        .map(|v| v.name.clone())
        .unwrap_or_else(|| "a".to_owned())
}

/// The consents a profile currently holds (latest given/withdrawn per purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ConsentFlags {
    /// May keep a profile and greet the customer.
    pub profile: bool,
    /// May send marketing email.
    pub marketing_email: bool,
    /// May send marketing SMS.
    pub marketing_sms: bool,
    /// May send service notices about the customer's own turn by SMS (not marketing). Absent
    /// in feeds of endpoints older than the phone companion: read as not given.
    #[serde(default)]
    pub turn_sms: bool,
}

/// What a store's kiosks know about a customer: nothing beyond what greeting and targeting need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Profile {
    /// The customer's card token.
    pub card_token: CardToken,
    /// Name to greet them by.
    pub display_name: String,
    /// Segment (`new`, `regular`, `lapsed`, `vip`).
    pub segment: String,
    /// Current consents: marketing is shown only with consent.
    pub consent: ConsentFlags,
    /// Preferred language (`es`, `en`).
    pub locale: String,
}

/// `GET /v1/kiosks/{kiosk_id}/profiles/{card_token}` answer. A customer registered at another
/// store becomes known to this one (their later changes reach its kiosks through the feed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProfileLookupResponse {
    /// The profile as this store's kiosks may know it; `null` when nobody is registered with
    /// the card (or they were erased).
    pub profile: Option<Profile>,
}

/// A customer erased at the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Erasure {
    /// The erased customer's card token.
    pub card_token: CardToken,
    /// When the CRM erased them.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub erased_at: OffsetDateTime,
}

/// `GET /v1/health` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HealthResponse {
    /// `ok` when the store answers, `degraded` otherwise.
    pub status: String,
    /// The endpoint's version.
    pub version: String,
    /// Protocol version spoken ([`PROTOCOL_VERSION`]).
    pub protocol: u16,
    /// `sqlite` or `postgres`.
    pub store: String,
}

/// Machine-readable reason of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no or incomplete credentials.
    Unauthenticated,
    /// 401: the signature does not match (or the kiosk is unknown).
    BadSignature,
    /// 401: the timestamp is outside the replay window; check the kiosk's clock.
    StaleTimestamp,
    /// 409: this exact signed request was already received within the window. Re-sign and resend.
    Replay,
    /// 403: authenticated, but not allowed (another kiosk's id, admin route without admin token).
    Forbidden,
    /// 400: the body or query is not what the route expects.
    Malformed,
    /// 413: more than [`MAX_BATCH_EVENTS`] events or [`MAX_BATCH_BYTES`] bytes.
    TooLarge,
    /// 404: no such route or object.
    NotFound,
    /// 401: the enrollment code is wrong, used or expired.
    InvalidCode,
    /// 429: too many attempts; honour `Retry-After`.
    RateLimited,
    /// 503: the store is unavailable; retry after `Retry-After`.
    Unavailable,
    /// 500: a bug or an unexpected store failure.
    Internal,
}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub error: ErrorCode,
    /// What went wrong and what to do, for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, KioskStarted};

    fn envelope(kiosk: &str, seq: u64) -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            kiosk_id: kiosk.to_owned(),
            seq,
            boot_id: Uuid::nil(),
            wall_time: OffsetDateTime::UNIX_EPOCH,
            mono_ms: seq,
            schema_version: 1,
            event: Event::KioskStarted(KioskStarted {
                version: "0.1.0".into(),
                git_commit: "abc".into(),
                hardware_profile: "simulated".into(),
                unclean_shutdown: false,
            }),
        }
    }

    #[test]
    fn batch_id_depends_only_on_kiosk_and_sequence_range() {
        assert_eq!(batch_id("k1", 1, 10), batch_id("k1", 1, 10));
        assert_ne!(batch_id("k1", 1, 10), batch_id("k1", 1, 11));
        assert_ne!(batch_id("k1", 1, 10), batch_id("k2", 1, 10));
        assert_eq!(batch_id("k1", 1, 10).get_version_num(), 8);
        // Pinned so both sides (and other implementations) agree forever.
        assert_eq!(
            batch_id("k1", 1, 10).to_string(),
            batch_id_reference("k1", 1, 10)
        );
    }

    fn batch_id_reference(kiosk: &str, first: u64, last: u64) -> String {
        let d = Sha256::digest(format!("kiosk-batch-v1\n{kiosk}\n{first}\n{last}"));
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid::from_bytes(b).to_string()
    }

    #[test]
    fn batch_request_round_trips_with_envelopes_and_reads_as_raw_json() {
        let clock = KioskClock::now(Uuid::now_v7(), 1234);
        let batch =
            BatchRequest::new("k1", clock, vec![envelope("k1", 5), envelope("k1", 6)]).unwrap();
        assert_eq!(batch.batch_id, batch_id("k1", 5, 6));
        let json = serde_json::to_string(&batch).unwrap();
        let back: BatchRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, batch);
        let raw: BatchRequest<serde_json::Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(raw.events[1]["type"], "kiosk_started");
        assert_eq!(raw.events[1]["seq"], 6);
    }

    #[test]
    fn empty_batch_has_no_id() {
        assert!(BatchRequest::new("k1", KioskClock::now(Uuid::nil(), 0), vec![]).is_none());
    }

    #[test]
    fn keys_travel_as_base64_and_never_show_in_debug() {
        use base64::Engine as _;
        let key = Key32::from_bytes([7; 32]);
        let json = serde_json::to_string(&key).unwrap();
        let base64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(json, format!("\"{base64}\""));
        assert_eq!(serde_json::from_str::<Key32>(&json).unwrap(), key);
        assert!(!format!("{key:?}").contains(&key.to_base64()));
        assert!(matches!(Key32::from_base64("AAAA"), Err(BadKey::Length(3))));
        assert!(matches!(Key32::from_base64("!!"), Err(BadKey::Base64(_))));
    }

    #[test]
    fn feed_items_are_tagged_by_kind_and_dates_are_iso() {
        let item = FeedItem::Campaign(Campaign {
            id: "c1".into(),
            name: "Coffee".into(),
            target_segments: vec!["vip".into()],
            services: vec![],
            stores: vec![],
            regions: vec![],
            starts_on: time::macros::date!(2026 - 03 - 01),
            ends_on: time::macros::date!(2026 - 03 - 31),
            screen_text: Localized {
                es: "Café".into(),
                en: "Coffee".into(),
            },
            ticket_line: Localized::default(),
            image: None,
            coupon: None,
            variants: vec![],
            content: vec![],
            active: true,
        });
        let v = serde_json::to_value(&item).unwrap();
        assert_eq!(v["kind"], "campaign");
        assert_eq!(v["starts_on"], "2026-03-01");
        assert_eq!(serde_json::from_value::<FeedItem>(v).unwrap(), item);
        let erasure = FeedItem::Erasure(Erasure {
            card_token: "0123456789abcdef0123456789abcdef".parse().unwrap(),
            erased_at: OffsetDateTime::UNIX_EPOCH,
        });
        let v = serde_json::to_value(&erasure).unwrap();
        assert_eq!(v["kind"], "erasure");
        assert_eq!(v["erased_at"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn variant_assignment_is_deterministic_and_follows_weights() {
        let variants = vec![
            Variant {
                name: "a".into(),
                weight: 1,
                screen_text: None,
                ticket_line: None,
                image: None,
            },
            Variant {
                name: "b".into(),
                weight: 3,
                screen_text: None,
                ticket_line: None,
                image: None,
            },
        ];
        let mut b = 0;
        for i in 0..4000 {
            let subject = format!("{i:032x}");
            let v = assign_variant("c1", &subject, &variants);
            assert_eq!(v, assign_variant("c1", &subject, &variants));
            if v == "b" {
                b += 1;
            }
        }
        // 3/4 expected; 4000 draws keep this far from flaky (sd ≈ 27).
        assert!((2800..3200).contains(&b), "b chosen {b} times of 4000");
        assert_eq!(assign_variant("c1", "x", &[]), "a");
    }

    /// Pearson's chi-square of `counts` against `weights` (same order).
    fn chi_square(counts: &[u64], weights: &[u32]) -> f64 {
        let n: u64 = counts.iter().sum();
        let total: u32 = weights.iter().sum();
        counts
            .iter()
            .zip(weights)
            .map(|(&c, &w)| {
                let expected = n as f64 * f64::from(w) / f64::from(total);
                (c as f64 - expected).powi(2) / expected
            })
            .sum()
    }

    #[test]
    fn every_variant_is_served_by_its_weight() {
        let weights = [1u32, 1, 2];
        let variants: Vec<Variant> = ["a", "b", "c"]
            .iter()
            .zip(weights)
            .map(|(name, weight)| Variant {
                name: (*name).into(),
                weight,
                screen_text: None,
                ticket_line: None,
                image: None,
            })
            .collect();
        let index = |v: &str| ["a", "b", "c"].iter().position(|n| *n == v).unwrap();
        // Members: card tokens as the kiosks make them (keyed hashes of card UIDs).
        let key = TenantKey::from_bytes([7; 32]);
        let mut members = [0u64; 3];
        for uid in 0u32..6000 {
            let token = key.card_token(&uid.to_be_bytes());
            let v = assign_variant("demo-welcome", token.as_str(), &variants);
            assert_eq!(v, assign_variant("demo-welcome", token.as_str(), &variants));
            members[index(&v)] += 1;
        }
        // Anonymous visitors: visit ids, UUIDv7-shaped (a millisecond clock, then random bits),
        // made from a fixed seed so the test is deterministic.
        let mut anonymous = [0u64; 3];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0u64..6000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ms = 1_765_000_000_000u64 + i * 1_500;
            let bits = (u128::from(ms) << 80)
                | (0x7u128 << 76)
                | (u128::from(x & 0x0fff) << 64)
                | (0b10u128 << 62)
                | u128::from(x.rotate_left(17) >> 2);
            let visit = uuid::Uuid::from_u128(bits).to_string();
            anonymous[index(&assign_variant("demo-welcome", &visit, &variants))] += 1;
        }
        // Every variant is served, in proportion to its weight: Pearson's chi-square with 2
        // degrees of freedom stays under 13.8 (p = 0.001) for a fair assignment.
        for (who, counts) in [("members", members), ("anonymous visits", anonymous)] {
            assert!(counts.iter().all(|c| *c > 0), "{who}: {counts:?}");
            let chi2 = chi_square(&counts, &weights);
            assert!(chi2 < 13.8, "{who}: {counts:?}, chi-square {chi2:.1}");
        }
        // A zero weight disables a variant.
        let off = [
            Variant {
                weight: 0,
                ..variants[0].clone()
            },
            variants[1].clone(),
        ];
        assert!((0..500).all(|i| assign_variant("x", &i.to_string(), &off) == "b"));
    }

    fn dated(json: serde_json::Value) -> Campaign {
        serde_json::from_value(json).unwrap()
    }

    /// A campaign of before pictures and coupon rules (what an older CRM sends) reads as one
    /// without them; one with them loses them for a kiosk of feed version 2, whose campaigns
    /// refuse unknown fields.
    #[test]
    fn pictures_and_coupon_rules_are_optional_and_left_out_for_older_kiosks() {
        let old = serde_json::json!({
            "id": "c1", "name": "Coffee", "starts_on": "2026-03-01", "ends_on": "2026-03-31",
            "screen_text": { "es": "Café", "en": "Coffee" },
            "ticket_line": { "es": "Café", "en": "Coffee" },
            "coupon": { "code": "CAFE", "text": { "es": "1 café", "en": "1 coffee" } },
            "variants": [{ "name": "a", "weight": 1 }] });
        let c = dated(old.clone());
        assert_eq!(c.image, None);
        assert_eq!(c.coupon.as_ref().unwrap().valid_days, None);
        assert_eq!(serde_json::to_value(&c).unwrap()["coupon"], old["coupon"]);
        let picture = ContentImage {
            mime: ImageMime::Png,
            data: "iVBORw0KGgo=".into(),
            alt: Localized {
                es: "Una taza".into(),
                en: "A cup".into(),
            },
        };
        let mut new = c.clone();
        new.image = Some(picture.clone());
        new.variants[0].image = Some(picture.clone());
        let coupon = new.coupon.as_mut().unwrap();
        coupon.valid_days = Some(7);
        coupon.max_per_customer = Some(1);
        let json = serde_json::to_value(&new).unwrap();
        assert_eq!(json["coupon"]["valid_days"], 7);
        assert_eq!(json["image"]["alt"]["en"], "A cup");
        assert_eq!(new.clone().for_feed_version(FEED_VERSION), new);
        let v2 = serde_json::to_value(new.clone().for_feed_version(2)).unwrap();
        assert_eq!(dated(v2.clone()), c, "nothing a version-2 kiosk refuses");
        assert_eq!(v2, serde_json::to_value(&c).unwrap());
        // A variant without a picture shows the campaign's.
        new.variants.push(Variant {
            name: "b".into(),
            weight: 1,
            screen_text: None,
            ticket_line: None,
            image: None,
        });
        new.variants[0].image = Some(ContentImage {
            alt: Localized::default(),
            ..picture.clone()
        });
        assert_eq!(new.picture_for("b"), Some(&picture));
        assert_ne!(new.picture_for("a"), Some(&picture));
    }

    #[test]
    fn a_coupon_expires_its_validity_after_issue_and_never_after_the_campaign() {
        use time::macros::date;
        let mut c = dated(serde_json::json!({
            "id": "c1", "name": "Coffee", "starts_on": "2026-03-01", "ends_on": "2026-03-31",
            "screen_text": { "es": "Café", "en": "Coffee" },
            "ticket_line": { "es": "Café", "en": "Coffee" },
            "coupon": { "code": "CAFE", "text": { "es": "1 café", "en": "1 coffee" } } }));
        // No validity of its own: the campaign's last day.
        assert_eq!(
            c.coupon_expires_on(date!(2026 - 03 - 02)),
            date!(2026 - 03 - 31)
        );
        c.coupon.as_mut().unwrap().valid_days = Some(7);
        assert_eq!(
            c.coupon_expires_on(date!(2026 - 03 - 02)),
            date!(2026 - 03 - 09)
        );
        // Capped at the campaign's last day.
        assert_eq!(
            c.coupon_expires_on(date!(2026 - 03 - 28)),
            date!(2026 - 03 - 31)
        );
        c.coupon.as_mut().unwrap().valid_days = Some(0);
        assert_eq!(
            c.coupon_expires_on(date!(2026 - 03 - 10)),
            date!(2026 - 03 - 10)
        );
    }

    #[test]
    fn error_codes_are_snake_case() {
        let body = ErrorBody {
            error: ErrorCode::StaleTimestamp,
            message: "m".into(),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap()["error"],
            "stale_timestamp"
        );
    }

    #[test]
    fn feed_query_defaults_cursor_and_limit() {
        let q: FeedQuery = serde_json::from_str("{}").unwrap();
        assert_eq!(
            q,
            FeedQuery {
                cursor: 0,
                limit: 200,
                v: 1
            }
        );
    }

    #[test]
    fn a_feed_item_of_a_kind_this_kiosk_does_not_know_is_skipped_not_a_failed_page() {
        let page = serde_json::json!({
            "items": [
                { "kind": "store_config", "version": 2, "counters": 3 },
                { "kind": "something_newer", "whatever": [1, 2] },
                { "kind": "turn_rated", "turn_id": "00000000-0000-0000-0000-000000000001" }
            ],
            "next_cursor": 9,
            "more": false
        });
        let page: FeedResponse = serde_json::from_value(page).unwrap();
        assert!(
            matches!(&page.items[0], FeedItem::StoreConfig(c) if c.version == 2 && c.parts.counters == Some(3))
        );
        assert_eq!(page.items[1], FeedItem::Unknown);
        assert!(matches!(page.items[2], FeedItem::TurnRated(_)));
        assert!(feed_path_and_query("k-1", 4, 10).ends_with("&v=3"));
    }
}
