//! Event catalog v1: every fact the kiosk records, as typed payloads inside one envelope.
//!
//! Data flow: engine / drivers → **event** → journal → outbox → batch → endpoint. The kiosk makes an
//! event once (its UUIDv7 id and per-device sequence never change afterwards), the endpoint dedupes
//! on the id. Payloads only ever carry a *card token* (a keyed hash made at the driver boundary),
//! never a raw card UID.
//!
//! Versioning: each event type has its own schema version ([`Event::schema_version`]). Adding an
//! optional field keeps the version; renaming, removing or changing the meaning of a field bumps
//! it, and the endpoint keeps accepting every version it knows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::CardToken;
pub use kiosk_types::{DeviceHealth, ReaderKind};

/// One journaled event: the envelope every event travels in (docs/DESIGN.md invariant 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Event envelope v1")]
pub struct Envelope {
    /// UUIDv7 made on the kiosk when the event is journaled; the endpoint dedupes on it forever.
    pub id: Uuid,
    /// The kiosk that recorded the event (assigned at enrollment).
    #[schemars(with = "crate::ident::Ident")]
    pub kiosk_id: String,
    /// Per-device sequence: strictly increasing, never reused, gaps only where events were
    /// dead-lettered or erased.
    pub seq: u64,
    /// Random id of the process run that recorded the event; `mono_ms` is only comparable within
    /// one boot id.
    pub boot_id: Uuid,
    /// The kiosk's wall clock when the event was recorded (may be wrong: a Pi has no RTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub wall_time: OffsetDateTime,
    /// Milliseconds on the kiosk's monotonic clock since its boot (at most 100 years of uptime,
    /// `MAX_MONO_MS`).
    #[schemars(range(max = crate::wire::MAX_MONO_MS))]
    pub mono_ms: u64,
    /// Schema version of the payload's event type.
    pub schema_version: u16,
    /// The event itself: `type` and `payload`.
    #[serde(flatten)]
    pub event: Event,
}

/// Everything the product records. Serialised as `{"type": "...", "payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum Event {
    /// The process started (after power-on, a crash or an upgrade).
    KioskStarted(KioskStarted),
    /// A card was presented to a reader.
    CardTapped(CardTapped),
    /// A customer was recognised (card, coupon or app QR) and greeted.
    CustomerIdentified(CustomerIdentified),
    /// A new customer registered on the spot.
    CustomerRegistered(CustomerRegistered),
    /// A customer gave one consent, having seen this policy version.
    ConsentGiven(ConsentChange),
    /// A customer withdrew one consent.
    ConsentWithdrawn(ConsentChange),
    /// A turn was taken: the number is reserved from this moment.
    TicketIssued(TicketIssued),
    /// The ticket for a turn came out of the printer.
    TicketPrinted(TicketPrinted),
    /// The ticket could not be printed; the screen showed the number and QR instead.
    TicketPrintFailed(TicketPrintFailed),
    /// Staff called a turn to a counter (or called it again).
    TurnCalled(TurnCalled),
    /// Staff finished serving a turn.
    TurnServed(TurnServed),
    /// A called turn did not show up.
    TurnNoShow(TurnNoShow),
    /// A turn moved to another service, keeping its place by issue time.
    TurnTransferred(TurnTransferred),
    /// A called turn was set aside at its counter, to be called back later.
    TurnParked(TurnParked),
    /// A waiting turn left the store before being called.
    TurnWalkedOut(TurnWalkedOut),
    /// Two queue steps taken while kiosks were cut off from each other conflicted; the store kept
    /// one by its fixed rule and dropped the other.
    QueueConflict(QueueConflict),
    /// A campaign was shown on the screen or printed on a ticket.
    CampaignShown(CampaignShown),
    /// A coupon was given to the customer.
    CouponIssued(CouponIssued),
    /// A coupon was scanned and redeemed at the kiosk.
    CouponRedeemed(CouponRedeemed),
    /// A satisfaction survey was answered.
    SurveyAnswered(SurveyAnswered),
    /// A device (or the network) changed health.
    DeviceStatusChanged(DeviceStatusChanged),
    /// The journal found its database corrupt at start-up and rebuilt it.
    JournalRecovered(JournalRecovered),
    /// The endpoint rejected an event; it was moved to the dead-letter table.
    EventDeadLettered(EventDeadLettered),
    /// The CRM asked to erase a customer; the kiosk did.
    CustomerErased(CustomerErased),
    /// A warning or error the kiosk logged, shipped so a technician sees it remotely.
    DeviceLog(DeviceLog),
    /// A customer at a kiosk, or a nearby Step-In device, asked for a staff member to come.
    AssistanceRequested(AssistanceRequested),
    /// A staff member took an assistance request at a counter.
    AssistanceAcknowledged(AssistanceAcknowledged),
    /// A piece of campaign content played on a signage screen or a browse point, with the
    /// audience it was chosen for (segments and counts, never a person).
    ContentPlayed(ContentPlayed),
    /// People who entered the store, counted by the presence input over a period.
    PeopleCounted(PeopleCounted),
    /// A firmware update ended: the new release stayed, was rolled back after failing its
    /// trial, or was refused before install (issue 20, safe updates).
    FirmwareUpdated(FirmwareUpdated),
    /// The kiosk runs a store configuration from the CRM from now on.
    StoreConfigApplied(StoreConfigApplied),
    /// The kiosk refused a store configuration from the CRM and keeps the one it runs.
    StoreConfigRefused(StoreConfigRefused),
}

/// The names of all event types, in catalog order (the `type` field on the wire).
pub const EVENT_TYPES: &[&str] = &[
    "kiosk_started",
    "card_tapped",
    "customer_identified",
    "customer_registered",
    "consent_given",
    "consent_withdrawn",
    "ticket_issued",
    "ticket_printed",
    "ticket_print_failed",
    "turn_called",
    "turn_served",
    "turn_no_show",
    "turn_transferred",
    "turn_parked",
    "turn_walked_out",
    "queue_conflict",
    "campaign_shown",
    "coupon_issued",
    "coupon_redeemed",
    "survey_answered",
    "device_status_changed",
    "journal_recovered",
    "event_dead_lettered",
    "customer_erased",
    "device_log",
    "assistance_requested",
    "assistance_acknowledged",
    "content_played",
    "people_counted",
    "firmware_updated",
    "store_config_applied",
    "store_config_refused",
];

impl Event {
    /// The `type` name of this event on the wire and in the journal.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::KioskStarted(_) => "kiosk_started",
            Event::CardTapped(_) => "card_tapped",
            Event::CustomerIdentified(_) => "customer_identified",
            Event::CustomerRegistered(_) => "customer_registered",
            Event::ConsentGiven(_) => "consent_given",
            Event::ConsentWithdrawn(_) => "consent_withdrawn",
            Event::TicketIssued(_) => "ticket_issued",
            Event::TicketPrinted(_) => "ticket_printed",
            Event::TicketPrintFailed(_) => "ticket_print_failed",
            Event::TurnCalled(_) => "turn_called",
            Event::TurnServed(_) => "turn_served",
            Event::TurnNoShow(_) => "turn_no_show",
            Event::TurnTransferred(_) => "turn_transferred",
            Event::TurnParked(_) => "turn_parked",
            Event::TurnWalkedOut(_) => "turn_walked_out",
            Event::QueueConflict(_) => "queue_conflict",
            Event::CampaignShown(_) => "campaign_shown",
            Event::CouponIssued(_) => "coupon_issued",
            Event::CouponRedeemed(_) => "coupon_redeemed",
            Event::SurveyAnswered(_) => "survey_answered",
            Event::DeviceStatusChanged(_) => "device_status_changed",
            Event::JournalRecovered(_) => "journal_recovered",
            Event::EventDeadLettered(_) => "event_dead_lettered",
            Event::CustomerErased(_) => "customer_erased",
            Event::DeviceLog(_) => "device_log",
            Event::AssistanceRequested(_) => "assistance_requested",
            Event::AssistanceAcknowledged(_) => "assistance_acknowledged",
            Event::ContentPlayed(_) => "content_played",
            Event::PeopleCounted(_) => "people_counted",
            Event::FirmwareUpdated(_) => "firmware_updated",
            Event::StoreConfigApplied(_) => "store_config_applied",
            Event::StoreConfigRefused(_) => "store_config_refused",
        }
    }

    /// The current schema version of this event's type (all types are at v1 in catalog v1).
    pub fn schema_version(&self) -> u16 {
        1
    }

    /// The card token this event is about, if any: what an erasure looks for in the outbox.
    pub fn card_token(&self) -> Option<&CardToken> {
        match self {
            Event::CardTapped(e) => Some(&e.card_token),
            Event::CustomerIdentified(e) => e.card_token.as_ref(),
            Event::CustomerRegistered(e) => Some(&e.card_token),
            Event::ConsentGiven(e) | Event::ConsentWithdrawn(e) => Some(&e.card_token),
            Event::TicketIssued(e) => e.card_token.as_ref(),
            Event::CampaignShown(e) => e.card_token.as_ref(),
            Event::CouponIssued(e) => e.card_token.as_ref(),
            Event::CouponRedeemed(e) => e.card_token.as_ref(),
            Event::SurveyAnswered(e) => e.card_token.as_ref(),
            Event::CustomerErased(e) => Some(&e.card_token),
            Event::ContentPlayed(e) => e.card_token.as_ref(),
            Event::KioskStarted(_)
            | Event::TicketPrinted(_)
            | Event::TicketPrintFailed(_)
            | Event::TurnCalled(_)
            | Event::TurnServed(_)
            | Event::TurnNoShow(_)
            | Event::TurnTransferred(_)
            | Event::TurnParked(_)
            | Event::TurnWalkedOut(_)
            | Event::QueueConflict(_)
            | Event::DeviceStatusChanged(_)
            | Event::JournalRecovered(_)
            | Event::EventDeadLettered(_)
            | Event::DeviceLog(_)
            | Event::AssistanceRequested(_)
            | Event::AssistanceAcknowledged(_)
            | Event::PeopleCounted(_)
            | Event::FirmwareUpdated(_)
            | Event::StoreConfigApplied(_)
            | Event::StoreConfigRefused(_) => None,
        }
    }

    /// Whether the payload carries personal data beyond a card token (name, email, phone): such
    /// events are redacted, not just left alone, when the customer is erased.
    pub fn carries_personal_data(&self) -> bool {
        matches!(self, Event::CustomerRegistered(_))
    }

    /// Events that must never be dropped, even when the journal reaches its disk budget:
    /// registrations and consents are legal records.
    pub fn is_protected(&self) -> bool {
        matches!(
            self,
            Event::CustomerRegistered(_)
                | Event::ConsentGiven(_)
                | Event::ConsentWithdrawn(_)
                | Event::CustomerErased(_)
        )
    }
}

/// The devices and links whose health is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// The loyalty card reader.
    CardReader,
    /// The barcode / QR scanner.
    Scanner,
    /// The thermal ticket printer.
    Printer,
    /// The presence / people-counter sensor.
    PresenceSensor,
    /// The link to the CRM endpoint.
    Network,
    /// The local journal's storage.
    Storage,
    /// The customer screen: the kiosk browser showing the kiosk page (its event stream open).
    Screen,
}

/// Why the kiosk process started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KioskStarted {
    /// Firmware version (semver).
    pub version: String,
    /// Git commit the firmware was built from.
    pub git_commit: String,
    /// Name of the hardware profile in use.
    pub hardware_profile: String,
    /// Whether the previous run ended without a clean shutdown (crash, kill, power cut).
    pub unclean_shutdown: bool,
}

/// A card was presented to a reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardTapped {
    /// Keyed token of the card (never the UID).
    pub card_token: CardToken,
    /// Which reader saw it.
    pub reader: ReaderKind,
    /// Whether the token matched a profile in the kiosk's cache.
    pub known: bool,
}

/// How a customer was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentifiedBy {
    /// A loyalty card.
    Card,
    /// A coupon barcode.
    Coupon,
    /// A QR code from the customer's app.
    AppQr,
}

/// Where a customer's profile came from at identification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProfileSource {
    /// The kiosk's encrypted local cache.
    LocalCache,
    /// A live lookup at the CRM endpoint.
    Crm,
    /// Registered on this kiosk a moment ago.
    JustRegistered,
}

/// A customer was recognised and greeted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerIdentified {
    /// The customer's card token, when identified by card or by a QR bound to one.
    pub card_token: Option<CardToken>,
    /// How they were recognised.
    pub by: IdentifiedBy,
    /// Where the profile came from.
    pub source: ProfileSource,
    /// Segment at the time (e.g. `new`, `regular`, `lapsed`, `vip`).
    pub segment: Option<String>,
}

/// A new customer registered at the kiosk. Carries personal data: redacted on erasure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRegistered {
    /// The card the customer registered.
    pub card_token: CardToken,
    /// Name to greet them by.
    pub display_name: String,
    /// Optional email (only kept with consent to be contacted by email).
    pub email: Option<String>,
    /// Optional phone (only kept with consent to be contacted by phone).
    pub phone: Option<String>,
    /// Preferred language (`es`, `en`).
    pub locale: String,
}

/// What a consent is for: each is a separate, unticked choice on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentPurpose {
    /// Keeping a profile so the kiosk can greet the customer and show offers for them.
    Profile,
    /// Marketing by email.
    MarketingEmail,
    /// Marketing by SMS / phone.
    MarketingSms,
    /// Service notices about the customer's own turn by SMS or WhatsApp ("your turn is near"):
    /// not marketing, and asked separately from it.
    TurnSms,
}

/// A consent given or withdrawn, with the exact policy the customer saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChange {
    /// Whose consent.
    pub card_token: CardToken,
    /// What for.
    pub purpose: ConsentPurpose,
    /// Version of the policy text shown.
    pub policy_version: String,
    /// SHA-256 (hex) of the policy text shown, so the text can be proven later.
    pub policy_sha256: String,
}

/// A turn was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketIssued {
    /// Unique id of the turn (also in the ticket's signed QR).
    pub turn_id: Uuid,
    /// The turn as printed, e.g. `A-042`.
    pub turn: String,
    /// Service letter (`A`).
    pub service: String,
    /// Number within the service and business day.
    pub number: u32,
    /// Business day the number belongs to (`YYYY-MM-DD`, store time).
    pub business_day: String,
    /// Whether this is a priority turn (e.g. accessibility).
    pub priority: bool,
    /// Turns ahead in the queue of that service when issued.
    pub position: u32,
    /// Estimated wait in seconds when issued.
    pub estimated_wait_s: u32,
    /// The identified customer, if any.
    pub card_token: Option<CardToken>,
    /// Language of the ticket (`es`, `en`).
    pub locale: String,
    /// Campaign printed on the ticket, if any.
    pub campaign_id: Option<String>,
    /// Whether the number was taken while this kiosk was cut off from the store's sequencer: it
    /// carries the kiosk's number in the store (`A2-003`) and is outside the store's sequence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub out_of_sequence: bool,
}

/// The ticket came out of the printer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPrinted {
    /// Which turn.
    pub turn_id: Uuid,
    /// Bytes sent to the printer.
    pub bytes: u32,
    /// Whether this was a reprint requested by staff.
    pub reprint: bool,
}

/// The ticket could not be printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPrintFailed {
    /// Which turn.
    pub turn_id: Uuid,
    /// What the printer or driver said (`paper out`, `cover open`, `offline`, ...).
    pub reason: String,
    /// Whether the screen showed the number and QR instead.
    pub shown_on_screen: bool,
}

/// A turn was called to a counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnCalled {
    /// Which turn.
    pub turn_id: Uuid,
    /// The turn as shown, e.g. `A-042`.
    pub turn: String,
    /// Counter number or name.
    pub counter: String,
    /// Whether this is a repeated call.
    pub recall: bool,
    /// Seconds between issue and (first) call.
    pub waited_s: u32,
    /// The staff member logged in at the counter page (their id in the store's `staff` list),
    /// when they logged in with a PIN of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
}

/// A turn was served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnServed {
    /// Which turn.
    pub turn_id: Uuid,
    /// Counter that served it.
    pub counter: String,
    /// Seconds from first call to served.
    pub service_s: u32,
    /// The staff member logged in at the counter page (their id in the store's `staff` list),
    /// when they logged in with a PIN of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
}

/// A called turn did not show up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnNoShow {
    /// Which turn.
    pub turn_id: Uuid,
    /// Counter that called it.
    pub counter: String,
    /// Whether the store marked it because the recall limit was reached (not staff by hand).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recall_limit: bool,
    /// The staff member logged in at the counter page (their id in the store's `staff` list),
    /// when they logged in with a PIN of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
}

/// A turn moved to another service (the customer is in the wrong line, or needs a second
/// service): it keeps its label and its place by issue time in the new service's line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnTransferred {
    /// Which turn.
    pub turn_id: Uuid,
    /// The turn as shown, e.g. `A-042`.
    pub turn: String,
    /// Service letter it left.
    pub from_service: String,
    /// Service letter it now waits for.
    pub to_service: String,
    /// Counter that transferred it, when a counter did.
    pub counter: Option<String>,
}

/// A called turn was set aside at its counter (the customer went to fetch a document, say);
/// staff call it back later, and it does not occupy the counter meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnParked {
    /// Which turn.
    pub turn_id: Uuid,
    /// The turn as shown, e.g. `A-042`.
    pub turn: String,
    /// Counter that parked it.
    pub counter: String,
}

/// A waiting turn left the store before being called (unlike a no-show, who was called).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnWalkedOut {
    /// Which turn.
    pub turn_id: Uuid,
    /// The turn as shown, e.g. `A-042`.
    pub turn: String,
    /// Counter whose staff marked it, if any.
    pub counter: Option<String>,
}

/// A queue step that lost a conflict after kiosks that were cut off from each other met again:
/// e.g. two counters called the same turn. The store keeps the step that comes first in its
/// fixed order (hybrid logical time, then kiosk, then sequence) on every kiosk alike; the kiosk
/// whose step was dropped records this so that staff and managers see what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConflict {
    /// The turn concerned, if any.
    pub turn_id: Option<Uuid>,
    /// The turn as shown, e.g. `A-042`.
    pub turn: String,
    /// The counter whose step was dropped.
    pub counter: Option<String>,
    /// The dropped step, e.g. `call`.
    pub step: String,
    /// Why it was dropped, in words staff understand.
    pub reason: String,
}

/// Where a campaign was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// The kiosk's screen.
    Screen,
    /// The printed ticket.
    Ticket,
}

/// A campaign was shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignShown {
    /// Campaign id from the CRM.
    pub campaign_id: String,
    /// A/B variant shown.
    pub variant: String,
    /// Customer it was shown to, if identified.
    pub card_token: Option<CardToken>,
    /// Segment it was chosen for (`anonymous` for a visitor without a card).
    pub segment: Option<String>,
    /// Where it was first shown in this visit: a visit is one exposure, however many surfaces
    /// (greeting screen, ticket) showed the campaign.
    pub surface: Surface,
    /// The visit (one journey at one kiosk, from the first tap or touch to the goodbye): the CRM
    /// counts one exposure per visit and campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit_id: Option<Uuid>,
}

/// A coupon was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponIssued {
    /// The coupon's code (as in its signed barcode / QR).
    pub coupon_code: String,
    /// Campaign it belongs to, if any.
    pub campaign_id: Option<String>,
    /// Variant of that campaign, if any.
    pub variant: Option<String>,
    /// Customer, if identified.
    pub card_token: Option<CardToken>,
    /// Turn it was printed with, if any.
    pub turn_id: Option<Uuid>,
}

/// A coupon was redeemed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponRedeemed {
    /// The coupon's code.
    pub coupon_code: String,
    /// Campaign it belongs to, if known.
    pub campaign_id: Option<String>,
    /// Customer, if identified.
    pub card_token: Option<CardToken>,
    /// The campaign variant the coupon was issued under, when its code says (the CRM also
    /// finds it from the coupon's `coupon_issued`). A coupon converts once, however many kiosks
    /// report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A satisfaction survey answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswered {
    /// Turn the survey is about, if known: a turn has at most one answer (the kiosks refuse a
    /// second, the CRM keeps the first).
    pub turn_id: Option<Uuid>,
    /// 0 to 10 (NPS scale).
    #[schemars(range(min = 0, max = 10))]
    pub score: u8,
    /// Optional reason picked from a short list.
    pub reason: Option<String>,
    /// Customer, if identified.
    pub card_token: Option<CardToken>,
}

/// A device changed health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceStatusChanged {
    /// Which device.
    pub device: DeviceKind,
    /// New health.
    pub status: DeviceHealth,
    /// Why, in words a technician can act on.
    pub reason: Option<String>,
}

/// The journal was found corrupt at start-up and rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JournalRecovered {
    /// Where the damaged file was moved (kept, never deleted).
    pub moved_to: String,
    /// What SQLite said about it.
    pub error: String,
    /// Events salvaged into the new journal.
    pub salvaged_events: u64,
}

/// How a firmware update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateResult {
    /// The new release reached READY, synced and passed its self-test: it stays.
    Installed,
    /// The new release failed its trial; the previous package was reinstalled.
    RolledBack,
    /// Nothing was installed (signature, tampering, no rollback package, ...).
    Refused,
}

/// A firmware update ended (reported by the firmware from the update helper's outcome file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirmwareUpdated {
    /// The release asked for (Debian version).
    #[schemars(length(min = 1, max = 64))]
    pub version: String,
    /// The version installed before, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub previous: Option<String>,
    /// How it ended.
    pub result: UpdateResult,
    /// Why (rolled back or refused), for people; no personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub reason: Option<String>,
}

/// The endpoint rejected an event; it was dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDeadLettered {
    /// Id of the rejected event.
    pub event_id: Uuid,
    /// Its sequence number.
    pub seq: u64,
    /// The endpoint's reason.
    pub reason: String,
}

/// Severity of a shipped log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Something degraded but the kiosk carries on.
    Warn,
    /// Something failed.
    Error,
}

/// A warning or error from the kiosk's own log, shipped with the events (rate-limited on the
/// kiosk: repeats of the same line within the window are counted, not sent again). Never carries
/// personal data or raw card UIDs: the kiosk never logs them in the first place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceLog {
    /// Severity.
    pub level: LogLevel,
    /// The module that logged it (`kiosk::devices`).
    pub target: String,
    /// The message with its fields, at most 512 characters.
    pub message: String,
    /// How many times this line was logged since it was last shipped (1 when not repeated).
    pub occurrences: u32,
}

/// The kiosk erased a customer on the CRM's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerErased {
    /// Whose data was erased.
    pub card_token: CardToken,
    /// Pending events about them whose personal data was redacted.
    pub redacted_events: u32,
}

/// Who asked for a staff member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssistanceSource {
    /// The "call an assistant" button on a kiosk's screen.
    Kiosk,
    /// A Step-In device near the store (an ATM, a bill-payment machine) through its API.
    StepIn,
}

/// A customer or a nearby device asked for a staff member to come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistanceRequested {
    /// The request (UUIDv7): its acknowledgement names it.
    pub request_id: Uuid,
    /// Who asked.
    pub source: AssistanceSource,
    /// Where staff should go: the kiosk's or the Step-In device's id.
    pub place: String,
    /// The place as staff know it (`Cajero de la entrada`), shown on the counter pages.
    pub place_name: String,
    /// The customer's turn, if they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<Uuid>,
}

/// A staff member took an assistance request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistanceAcknowledged {
    /// The request.
    pub request_id: Uuid,
    /// The counter whose staff took it.
    pub counter: String,
    /// Milliseconds from the request to its acknowledgement (store time).
    pub response_ms: u64,
}

/// Where content played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentSurface {
    /// The lobby display, between calls.
    Lobby,
    /// A kiosk in the browse role, to a customer who tapped a card.
    Browse,
}

/// How many of the people present belong to one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentCount {
    /// `new`, `regular`, `vip`, `lapsed` or `anonymous`.
    pub segment: String,
    /// People of that segment.
    pub count: u32,
}

/// Content played, and to whom (segments, never a person on the lobby).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentPlayed {
    /// The campaign the content belongs to.
    pub campaign_id: String,
    /// The content item within the campaign.
    pub content_id: String,
    /// Where it played.
    pub surface: ContentSurface,
    /// How long it was on screen, in milliseconds.
    pub duration_ms: u64,
    /// The audience it was chosen for: the people waiting in the store, by segment.
    pub audience: Vec<SegmentCount>,
    /// At a browse point, the customer who tapped their card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_token: Option<CardToken>,
}

/// People who entered the store over a period, counted on the presence input (debounced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeopleCounted {
    /// Entries counted in the period.
    pub entries: u32,
    /// The period's length in seconds (it ends at the event's time).
    pub period_s: u32,
}

/// A store configuration from the CRM the kiosk runs from now on (between two journeys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfigApplied {
    /// The configuration's version at the CRM.
    pub version: u64,
    /// The service letters offered from now on, in screen order.
    pub services: Vec<String>,
}

/// A store configuration from the CRM the kiosk refused; it keeps running the last good one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfigRefused {
    /// The refused configuration's version.
    pub version: u64,
    /// Why, as `kiosk check-config` would say it (the `site.toml` key and what was expected).
    #[schemars(length(max = 500))]
    pub reason: String,
    /// The version the kiosk keeps running (0: its `site.toml` alone).
    pub running_version: u64,
}
