//! What goes into the journey engine ([`Input`]), what comes out of it ([`Effect`]), and the
//! settings it runs with ([`JourneyConfig`]).

use kiosk_protocol::CardToken;
use kiosk_protocol::events::{
    ConsentPurpose, DeviceHealth, Event, ProfileSource, ReaderKind, SurveyAnswered, TicketIssued,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::locale::{Locale, Localized};
use crate::queue::ServiceDef;

/// Something that happened, fed to [`super::step`]: from a device, from the touchscreen, or the
/// answer to an earlier [`Effect`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A card was presented (already debounced by the driver: a card held on the reader is one
    /// tap).
    CardTapped {
        /// Keyed token of the card.
        token: CardToken,
        /// Which reader saw it.
        reader: ReaderKind,
    },
    /// The scanner read a code (already decoded and, for the kiosk's own QR codes, verified).
    Scanned(ScanInput),
    /// The presence sensor sees someone in front of the kiosk.
    PresenceArrived,
    /// Nobody is in front of the kiosk any more.
    PresenceLeft,
    /// The printer's health changed.
    PrinterHealth(DeviceHealth),
    /// A touch on the kiosk screen.
    Touch(Touch),
    /// Answer to [`Effect::LookupProfile`]: the card belongs to this customer.
    ProfileFound {
        /// The card looked up.
        token: CardToken,
        /// The customer.
        profile: CustomerProfile,
        /// The campaign chosen for the customer's segment, if any.
        campaign: Option<Box<Campaign>>,
        /// Where the profile came from.
        source: ProfileSource,
    },
    /// Answer to [`Effect::LookupProfile`]: nobody is known with this card.
    ProfileNotFound {
        /// The card looked up.
        token: CardToken,
    },
    /// Answer to [`Effect::IssueTurn`]: the turn is journaled.
    TurnIssued(IssuedTurn),
    /// Answer to [`Effect::IssueTurn`]: the turn could not be issued (journal or queue error).
    TurnIssueFailed {
        /// The request that failed.
        request_id: u64,
        /// What went wrong, for the log.
        reason: String,
    },
    /// Answer to [`Effect::PrintTicket`]: the ticket came out.
    TicketPrinted {
        /// The turn printed.
        turn_id: Uuid,
        /// Bytes sent to the printer.
        bytes: u32,
    },
    /// Answer to [`Effect::PrintTicket`]: the ticket could not be printed.
    TicketPrintFailed {
        /// The turn.
        turn_id: Uuid,
        /// What the printer or driver said (`paper out`, `cover open`, ...).
        reason: String,
    },
    /// Answer to [`Effect::CheckSurvey`]: whether the scanned turn's survey can be answered.
    SurveyChecked {
        /// The turn scanned.
        turn_id: Uuid,
        /// Its label.
        label: String,
        /// What the store's queue says.
        status: SurveyStatus,
    },
    /// Answer to [`Effect::SubmitSurvey`]: recorded, or refused because the turn's one answer
    /// was given meanwhile (at another kiosk, say).
    SurveySubmitted {
        /// The turn.
        turn_id: Uuid,
        /// Recorded.
        accepted: bool,
    },
    /// Answer to [`Effect::RedeemCoupon`].
    CouponChecked {
        /// The coupon's code.
        code: String,
        /// The customer it is bound to, if any.
        card_token: Option<CardToken>,
        /// Redeemed now, used before, or not a coupon of a campaign this store knows.
        outcome: CouponOutcome,
    },
    /// The CRM erased this customer: forget them on screen now.
    CustomerErased {
        /// The erased card.
        token: CardToken,
    },
    /// The timer asked for with [`Effect::WakeAt`] went off (early or repeated ticks are harmless).
    Tick,
    /// The answer to [`Effect::LoadBrowse`].
    BrowseLoaded {
        /// The visit it answers.
        visit_id: Uuid,
        /// The content for the visitor's segment, in play order.
        items: Vec<super::BrowseItem>,
        /// The customer's turn today, if they have one.
        turn: Option<super::BrowseTurn>,
    },
    /// The keypad's start key was held down (EN 301 549 5.2: a way to turn accessible mode on
    /// that needs no sight): accessible mode toggles, on any screen.
    AccessibilityKey,
    /// Whether this kiosk has an assistance request no counter has acknowledged yet (sent by the
    /// runtime whenever that changes in the store, at whichever kiosk the acknowledgement was
    /// given).
    AssistanceOpen(bool),
    /// The CRM says this turn was rated on the customer's phone: its one answer is taken. A
    /// survey of it open on this screen is refused kindly.
    TurnRatedElsewhere {
        /// The turn.
        turn_id: Uuid,
    },
}

/// Whether a turn's survey can be answered now (docs/DESIGN.md invariant 17): the protocol's
/// word, shared with the CRM, which answers the same question for the phone companion.
pub use kiosk_protocol::wire::SurveyStatus;

/// What became of a scanned or typed coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponOutcome {
    /// Redeemed now: its campaign variant converted.
    Redeemed,
    /// Redeemed before (at this or another kiosk of the store, or at a counter).
    AlreadyUsed,
    /// Not a coupon of a campaign this store knows.
    NotValid,
}

/// A scanned code, as the scanner driver decoded and verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScanInput {
    /// One of the store's signed coupons (signature and expiry already checked).
    Coupon {
        /// The coupon's code.
        code: String,
        /// Its campaign.
        campaign_id: Option<String>,
        /// The customer it was issued to, if bound to one.
        card_token: Option<CardToken>,
    },
    /// One of this store's signed turn tickets.
    Turn {
        /// The turn's id.
        turn_id: Uuid,
        /// Its label (`A-042`).
        label: String,
    },
    /// A product barcode (EAN-13, EAN-8, UPC-A).
    Product(String),
    /// Anything else, including codes with a bad signature.
    Unknown,
}

/// A touch on the kiosk screen, as the UI sends it (`{"action": "choose_service", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Touch {
    /// "Continue without a card" on the attract screen.
    Start,
    /// "Continue" on the greeting.
    Continue,
    /// "Register" on the offer to register.
    Register,
    /// "Not now": skip registration.
    SkipRegistration,
    /// The registration form was submitted.
    SubmitRegistration(RegistrationForm),
    /// The customer is typing or scrolling: keeps the screen from timing out.
    Activity,
    /// "More time" on the time-limit warning: the screen's whole time limit starts again.
    MoreTime,
    /// A service was chosen.
    ChooseService {
        /// Service letter.
        service: String,
        /// Priority turn asked for.
        #[serde(default)]
        priority: bool,
    },
    /// A survey score (0 to 10).
    SurveyScore {
        /// The score.
        score: u8,
    },
    /// A survey reason (one of the configured ids), or `None` to finish without one.
    SurveyReason {
        /// Reason id.
        reason: Option<String>,
    },
    /// "Done" on the goodbye or survey screen.
    Done,
    /// "Cancel": back to the attract screen (ignored while a ticket is being issued or printed).
    Cancel,
    /// "Next" at a browse point: the next piece of content.
    Next,
    /// The language switch.
    SetLocale {
        /// The language chosen.
        locale: Locale,
    },
    /// "Call an assistant": on every screen; raises an alert on every counter page of the store.
    CallAssistant,
}

/// What the customer typed and ticked on the registration screen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RegistrationForm {
    /// Name to greet them by.
    pub name: String,
    /// Optional email.
    #[serde(default)]
    pub email: Option<String>,
    /// Optional phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// The consents ticked (each was a separate, unticked box).
    #[serde(default)]
    pub consents: Vec<ConsentPurpose>,
}

/// A customer as the local profile cache (or the CRM) knows them. No email or phone: the screen
/// does not need them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfile {
    /// Their card.
    pub card_token: CardToken,
    /// Name to greet them by.
    pub display_name: String,
    /// Segment (`new`, `regular`, `vip`, ...).
    pub segment: Option<String>,
    /// Preferred language.
    pub locale: Option<Locale>,
    /// Consents in force.
    pub consents: Vec<ConsentPurpose>,
}

/// A campaign chosen for a segment, from the synced campaign cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// Campaign id in the CRM.
    pub id: String,
    /// A/B variant.
    pub variant: String,
    /// Line shown on the greeting screen.
    pub headline: Localized,
    /// Line printed on the ticket.
    pub ticket_line: Localized,
    /// Suggested script for staff at the counter.
    pub staff_script: Option<String>,
    /// A coupon given with the ticket, if the campaign has one.
    pub coupon: Option<Localized>,
    /// The coupon code's prefix (the campaign's `coupon.code`); codes are
    /// [`coupon_code`]`(prefix, variant, turn)`.
    #[serde(default)]
    pub coupon_prefix: Option<String>,
    /// The campaign's picture for this variant, if it has one the kiosk can show.
    #[serde(default)]
    pub image: Option<CampaignPicture>,
}

/// A campaign's picture on the kiosk screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignPicture {
    /// Where the kiosk's UI server serves it.
    pub url: String,
    /// What it shows, in each language: its accessible name.
    pub alt: Localized,
}

/// A coupon's code: `PREFIX-VARIANT-XXXXXXXXXX` (upper case; the suffix is the last ten hex digits
/// of the turn id, random in a UUIDv7). Staff can read it and type it at the counter; any kiosk
/// or counter of the store finds the campaign (by prefix) and the variant in it.
pub fn coupon_code(prefix: &str, variant: &str, turn_id: Uuid) -> String {
    let hex = turn_id.simple().to_string();
    format!(
        "{}-{}-{}",
        prefix.trim().to_uppercase(),
        variant.trim().to_uppercase(),
        hex[hex.len() - 10..].to_uppercase()
    )
}

/// The parts of a coupon code made by [`coupon_code`]: `(prefix, variant, suffix)`, upper case;
/// `None` when it is not shaped like one (spaces around it and lower case are forgiven).
pub fn parse_coupon_code(code: &str) -> Option<(String, String, String)> {
    let code = code.trim().to_uppercase();
    let (rest, suffix) = code.rsplit_once('-')?;
    let (prefix, variant) = rest.rsplit_once('-')?;
    let hex = suffix.len() == 10 && suffix.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !prefix.is_empty() && !variant.is_empty())
        .then(|| (prefix.to_owned(), variant.to_owned(), suffix.to_owned()))
}

/// What the engine asks the runtime to do. Screens are not effects: after every step the runtime
/// publishes [`super::view`] of the new state.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Journal this event.
    Record(Event),
    /// Look the card up (local cache, then the CRM if online); answer with
    /// [`Input::ProfileFound`] or [`Input::ProfileNotFound`]. Unanswered lookups time out in the
    /// engine.
    LookupProfile {
        /// The card.
        token: CardToken,
    },
    /// Store a just-registered customer in the local profile cache (encrypted at rest).
    SaveProfile(CustomerProfile),
    /// Issue a turn: plan it in the queue, journal `ticket_issued` with the queue rows in one
    /// transaction, then answer exactly once with [`Input::TurnIssued`] or
    /// [`Input::TurnIssueFailed`].
    IssueTurn(TurnRequest),
    /// Print this ticket; answer with [`Input::TicketPrinted`] or [`Input::TicketPrintFailed`].
    PrintTicket(TicketJob),
    /// Ask the store whether this turn's survey can be answered; answer with
    /// [`Input::SurveyChecked`].
    CheckSurvey {
        /// The turn scanned.
        turn_id: Uuid,
        /// Its label.
        label: String,
    },
    /// Record this survey answer if the turn's one answer is still open (mark the turn rated in
    /// the store and journal the answer in one transaction), else record nothing; answer with
    /// [`Input::SurveySubmitted`].
    SubmitSurvey(SurveyAnswered),
    /// Redeem this coupon unless it was used (mark it in the store and journal
    /// `coupon_redeemed` with its campaign variant in one transaction); answer with
    /// [`Input::CouponChecked`].
    RedeemCoupon {
        /// The coupon's code.
        code: String,
        /// Its campaign, as the signed code says.
        campaign_id: Option<String>,
        /// The customer it is bound to, if any.
        card_token: Option<CardToken>,
    },
    /// Ask the store for a staff member to come to this kiosk (a replicated assistance request,
    /// journaled as `assistance_requested`); the runtime answers with
    /// [`Input::AssistanceOpen`] once the store holds it.
    RequestAssistance {
        /// The customer's turn, when the screen shows one.
        turn_id: Option<Uuid>,
    },
    /// Mark the turn rated in the store (rated on the customer's phone: no answer is journaled
    /// here, the CRM has it).
    MarkRated {
        /// The turn.
        turn_id: Uuid,
    },
    /// A browse point's visit: find the content for `segment` and the customer's turn today;
    /// answer with [`Input::BrowseLoaded`].
    LoadBrowse {
        /// The visit asking.
        visit_id: Uuid,
        /// `new`, `regular`, `vip`, `lapsed` or `anonymous`.
        segment: String,
        /// The customer, when a known card was tapped.
        card_token: Option<CardToken>,
    },
    /// Send [`Input::Tick`] at this monotonic time (replaces any earlier request).
    WakeAt {
        /// Monotonic milliseconds.
        mono_ms: u64,
    },
}

/// A request to issue a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnRequest {
    /// Echoed in the answer so late answers are recognised.
    pub request_id: u64,
    /// Service letter.
    pub service: String,
    /// Priority turn.
    pub priority: bool,
    /// The identified customer, if any.
    pub card_token: Option<CardToken>,
    /// Ticket language.
    pub locale: Locale,
    /// Campaign printed on the ticket, if any.
    pub campaign_id: Option<String>,
    /// The visit (an anonymous visitor's A/B subject).
    pub visit_id: Uuid,
    /// Nobody is identified and no card was used: the runtime picks the campaign aimed at
    /// anonymous visitors (answered in [`IssuedTurn::campaign`]).
    pub anonymous: bool,
}

/// A turn that was issued and journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedTurn {
    /// The request it answers.
    pub request_id: u64,
    /// Turn id.
    pub turn_id: Uuid,
    /// Label (`A-042`).
    pub label: String,
    /// Service letter.
    pub service: String,
    /// Turns ahead when issued.
    pub position: u32,
    /// Estimated wait when issued (seconds).
    pub estimated_wait_s: u32,
    /// Priority turn.
    pub priority: bool,
    /// Service day (`YYYY-MM-DD`).
    pub business_day: String,
    /// When it was issued (store local time).
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// The signed QR payload of the ticket (printed, or shown when the printer is down).
    pub qr_payload: String,
    /// The campaign chosen for an anonymous visitor at issue (identified customers' campaign
    /// comes with their profile).
    #[serde(default)]
    pub campaign: Option<Box<Campaign>>,
    /// The store's rules keep the campaign's coupon from this turn: its card holder has had the
    /// most coupons of the campaign it allows (the ticket keeps the campaign's line).
    #[serde(default)]
    pub coupon_withheld: bool,
    /// The last day the campaign's coupon given with this turn is valid (the campaign's rules,
    /// from the issue day), when the runtime knows it.
    #[serde(default)]
    pub coupon_expires_on: Option<time::Date>,
}

impl IssuedTurn {
    /// The answer for `request_id` from the queue's `ticket_issued` payload and the signed QR.
    pub fn from_ticket(
        request_id: u64,
        ticket: &TicketIssued,
        issued_at: OffsetDateTime,
        qr_payload: String,
    ) -> Self {
        IssuedTurn {
            request_id,
            turn_id: ticket.turn_id,
            label: ticket.turn.clone(),
            service: ticket.service.clone(),
            position: ticket.position,
            estimated_wait_s: ticket.estimated_wait_s,
            priority: ticket.priority,
            business_day: ticket.business_day.clone(),
            issued_at,
            qr_payload,
            campaign: None,
            coupon_withheld: false,
            coupon_expires_on: None,
        }
    }
}

/// A coupon given with a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    /// Code (the runtime signs it into the coupon QR).
    pub code: String,
    /// Campaign.
    pub campaign_id: String,
    /// The campaign's variant it was issued under.
    pub variant: String,
    /// Text of the offer in both languages: the screen shows it in the screen's current one
    /// (a language switch on the goodbye switches it too).
    pub text: Localized,
    /// Its last valid day (printed, signed into its QR and checked when it is redeemed).
    #[serde(default)]
    pub expires_on: Option<time::Date>,
}

/// Everything the printer path needs for one ticket (the store name and layout are the runtime's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketJob {
    /// The turn.
    pub turn: IssuedTurn,
    /// Service name in the ticket's language.
    pub service_name: String,
    /// Ticket language.
    pub locale: Locale,
    /// The campaign line, if any.
    pub campaign_line: Option<String>,
    /// The coupon, if any.
    pub coupon: Option<Coupon>,
    /// The service's ticket note in the ticket's language, if it has one.
    #[serde(default)]
    pub ticket_note: Option<String>,
}

/// A consent the kiosk asks for: the exact policy text shown, with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentPolicy {
    /// What it is for.
    pub purpose: ConsentPurpose,
    /// Policy version.
    pub version: String,
    /// Short label beside the box.
    pub title: Localized,
    /// Full policy text.
    pub text: Localized,
}

impl ConsentPolicy {
    /// SHA-256 (hex) of the text as shown in `locale`, recorded with the consent.
    pub fn sha256(&self, locale: Locale) -> String {
        hex::encode(Sha256::digest(self.text.get(locale).as_bytes()))
    }
}

/// One answer offered after a survey score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyReason {
    /// Id recorded in `survey_answered`.
    pub id: String,
    /// Label on screen.
    pub label: Localized,
}

/// How long each screen waits, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Profile lookup after a tap; then the customer continues unidentified.
    pub lookup_ms: u64,
    /// Idle time on greeting, registration offer and service choice.
    pub idle_ms: u64,
    /// Idle time on the registration form (activity resets it).
    pub registration_ms: u64,
    /// Waiting for the turn to be issued.
    pub issuing_ms: u64,
    /// Waiting for the printer; then the ticket counts as failed and is shown on screen.
    pub printing_ms: u64,
    /// Goodbye after a printed ticket.
    pub goodbye_ms: u64,
    /// Goodbye when the number and QR are shown instead of printed.
    pub goodbye_unprinted_ms: u64,
    /// Thanks after the survey, and error screens.
    pub thanks_ms: u64,
    /// How long before a screen the customer is using times out the warning (banner with "More
    /// time", tone, spoken in accessible mode) appears. WCAG 2.2.1 asks for at least 20 s to
    /// react to it; screens shorter than this warn as soon as they appear.
    #[serde(default = "default_warning_ms")]
    pub warning_ms: u64,
    /// Accessible mode multiplies every time limit the customer waits on by this (not the
    /// lookup, issuing and printing limits, which wait on machines).
    #[serde(default = "default_accessible_factor")]
    pub accessible_factor: u32,
}

fn default_warning_ms() -> u64 {
    20_000
}

fn default_accessible_factor() -> u32 {
    3
}

impl Timeouts {
    /// The limits as they apply in accessible mode (`accessible`) or not: the customer's own
    /// limits multiplied by [`Timeouts::accessible_factor`], the machines' limits as they are.
    pub fn scaled(&self, accessible: bool) -> Timeouts {
        if !accessible {
            return *self;
        }
        let f = u64::from(self.accessible_factor.max(1));
        Timeouts {
            idle_ms: self.idle_ms.saturating_mul(f),
            registration_ms: self.registration_ms.saturating_mul(f),
            goodbye_ms: self.goodbye_ms.saturating_mul(f),
            goodbye_unprinted_ms: self.goodbye_unprinted_ms.saturating_mul(f),
            thanks_ms: self.thanks_ms.saturating_mul(f),
            ..*self
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            lookup_ms: 2_500,
            idle_ms: 30_000,
            registration_ms: 90_000,
            issuing_ms: 15_000,
            printing_ms: 20_000,
            goodbye_ms: 20_000,
            goodbye_unprinted_ms: 60_000,
            thanks_ms: 5_000,
            warning_ms: default_warning_ms(),
            accessible_factor: default_accessible_factor(),
        }
    }
}

/// What the journey needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyConfig {
    /// Services offered, in screen order.
    pub services: Vec<ServiceDef>,
    /// Consents asked at registration, each a separate unticked box.
    pub consents: Vec<ConsentPolicy>,
    /// Reasons offered after a survey score.
    pub survey_reasons: Vec<SurveyReason>,
    /// Screen timeouts.
    pub timeouts: Timeouts,
    /// Language of the attract screen.
    pub default_locale: Locale,
    /// Queue kiosk (the default) or browse point.
    pub role: super::KioskRole,
    /// Extra line printed on a service's tickets, by service letter (`ticket_note`).
    #[serde(default)]
    pub ticket_notes: std::collections::BTreeMap<String, Localized>,
}
