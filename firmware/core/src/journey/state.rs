//! The journey's state: which screen the kiosk shows and what it knows about the customer in
//! front of it. Everything personal lives inside [`Screen`] or [`State::pending_tap`], so going
//! back to [`Screen::Attract`] forgets it.

use kiosk_protocol::CardToken;
use kiosk_protocol::events::{
    ConsentPurpose, DeviceHealth, IdentifiedBy, ProfileSource, ReaderKind,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Campaign, Coupon, IssuedTurn, Locale};

/// The whole state of the journey engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The screen shown.
    pub screen: Screen,
    /// Language on screen.
    pub locale: Locale,
    /// When the current screen times out (monotonic ms); `None` on the attract screen.
    pub deadline_ms: Option<u64>,
    /// Someone is in front of the kiosk (presence sensor).
    pub presence: bool,
    /// The printer's last reported health.
    pub printer: DeviceHealth,
    /// A card tapped while the previous customer's ticket was being issued or printed: it is
    /// identified when that journey ends, not lost.
    pub pending_tap: Option<Tap>,
    /// A short message over the current screen (cleared on the next screen change).
    pub notice: Option<Notice>,
    /// Bumped on every change: lets screens skip views they already have.
    pub version: u64,
    /// Id of the next [`super::TurnRequest`].
    pub next_request: u64,
    /// The last coupon redeemed and when: a double read of the same coupon is one redemption.
    pub last_coupon: Option<(String, u64)>,
    /// The current visit: one journey at this kiosk, from the first tap, touch or coupon to the
    /// goodbye. A campaign counts one exposure per visit (docs/DESIGN.md invariant 16).
    pub visit_id: Uuid,
    /// Makes visit ids unique across kiosks and boots: the runtime sets it to a fresh UUIDv7 at
    /// start (tests leave it nil).
    pub visit_base: Uuid,
    /// Visits begun since start.
    pub visits: u64,
    /// Campaigns already shown in this visit (the screen and the ticket are one exposure).
    pub shown: Vec<String>,
    /// Accessible mode (speech, keypad, longer time limits): on from the keypad's start key
    /// until the journey returns to the attract screen.
    pub accessible: bool,
    /// The time-limit warning is showing: milliseconds that were left when it appeared. Cleared
    /// whenever the deadline moves (a new screen, "More time", any activity).
    pub warning_left_ms: Option<u64>,
    /// A staff member was called to this kiosk and no counter has acknowledged it yet. The
    /// kiosk's, not the customer's: it survives the attract screen (the alert stays on the
    /// counter pages until someone comes).
    #[serde(default)]
    pub assistance_called: bool,
}

impl State {
    /// The state at start-up: attract screen, nobody known.
    pub fn new(locale: Locale) -> Self {
        State {
            screen: Screen::Attract,
            locale,
            deadline_ms: None,
            presence: false,
            printer: DeviceHealth::Ok,
            pending_tap: None,
            notice: None,
            version: 0,
            next_request: 1,
            last_coupon: None,
            visit_id: Uuid::nil(),
            visit_base: Uuid::nil(),
            visits: 0,
            shown: Vec::new(),
            accessible: false,
            warning_left_ms: None,
            assistance_called: false,
        }
    }

    /// Whether anything about a customer is held: a name, a card token, a typed form, a survey.
    /// False on the attract screen by construction.
    pub fn holds_personal_data(&self) -> bool {
        self.pending_tap.is_some() || !matches!(self.screen, Screen::Attract)
    }
}

/// A card tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tap {
    /// The card.
    pub token: CardToken,
    /// The reader; `None` when the card token came from a coupon rather than a reader.
    pub reader: Option<ReaderKind>,
}

/// An identified customer during their journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Their card.
    pub card_token: CardToken,
    /// Name to greet them by.
    pub name: String,
    /// Segment.
    pub segment: Option<String>,
    /// Consents in force.
    pub consents: Vec<ConsentPurpose>,
    /// Campaign for their segment (only kept with their profile consent).
    pub campaign: Option<Campaign>,
    /// Where the profile came from.
    pub source: ProfileSource,
}

/// Who is taking a turn: an identified customer, a card that could not be looked up in time, or
/// nobody in particular.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Session {
    /// The card used, if any (the ticket carries it).
    pub card: Option<CardToken>,
    /// The customer, if identified.
    pub customer: Option<Customer>,
}

/// The survey about a served turn, opened by scanning its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "score", rename_all = "snake_case")]
pub enum Survey {
    /// Asking for a score.
    Asking,
    /// Score given, asking for an optional reason (recorded without one if the customer leaves).
    Scored(u8),
    /// Recorded.
    Done,
    /// Not recorded: the turn's one answer was given meanwhile (at another kiosk).
    Refused,
}

/// The screens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum Screen {
    /// Waiting for a customer.
    Attract,
    /// Looking up a card.
    Identifying {
        /// The tap.
        tap: Tap,
        /// Card, or a coupon bound to a card.
        by: IdentifiedBy,
    },
    /// Greeting an identified customer, with their campaign.
    Greeting {
        /// Who.
        session: Session,
    },
    /// Unknown card: register?
    OfferRegistration {
        /// The tap.
        tap: Tap,
    },
    /// The registration form.
    Registering {
        /// The tap.
        tap: Tap,
        /// What was wrong with the last submission.
        error: Option<RegistrationError>,
    },
    /// A browse point showing content for the visitor's segment.
    Browse {
        /// Who (no card: an anonymous visitor).
        session: Session,
        /// The segment the content is for.
        segment: String,
        /// The content, once the runtime answered (`None`: loading).
        items: Option<Vec<super::BrowseItem>>,
        /// Their turn today, if any.
        turn: Option<super::BrowseTurn>,
        /// The item on screen.
        index: usize,
        /// When it came on screen (monotonic ms).
        since_ms: u64,
    },
    /// Choosing a service.
    ChooseService {
        /// Who.
        session: Session,
    },
    /// Waiting for the turn to be issued.
    Issuing {
        /// Who.
        session: Session,
        /// The request.
        request_id: u64,
    },
    /// Waiting for the printer.
    Printing {
        /// Who.
        session: Session,
        /// The turn.
        turn: IssuedTurn,
        /// Service name in the ticket's language.
        service_name: String,
        /// Coupon given with it.
        coupon: Option<Coupon>,
    },
    /// Goodbye: the turn and the coupon; number and QR on screen when not printed. The survey
    /// comes after the service, by scanning the ticket.
    Goodbye {
        /// Who.
        session: Session,
        /// The turn.
        turn: IssuedTurn,
        /// Service name in the ticket's language.
        service_name: String,
        /// Coupon given with it.
        coupon: Option<Coupon>,
        /// Whether the ticket was printed.
        printed: bool,
    },
    /// A survey started by scanning the ticket's QR code after the turn was served.
    SurveyOnly {
        /// The turn scanned.
        turn_id: Uuid,
        /// Its label.
        label: String,
        /// The survey.
        survey: Survey,
    },
    /// Something went wrong; back to attract soon.
    Error {
        /// What.
        kind: ErrorKind,
    },
}

/// Why a registration was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationError {
    /// No name given.
    NameMissing,
    /// Name longer than 60 characters or with control characters.
    NameInvalid,
    /// Email given but not an email address.
    EmailInvalid,
    /// Phone given but not a phone number.
    PhoneInvalid,
    /// A profile cannot be kept without the consent to keep it (skipping stays possible).
    ProfileConsentRequired,
}

/// Errors shown on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The turn could not be issued.
    IssueFailed,
}

/// A short message over the current screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// What.
    pub kind: NoticeKind,
    /// The state version it appeared at (a repeated notice is a new one).
    pub id: u64,
}

/// The messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A coupon was redeemed.
    CouponRedeemed,
    /// Scans are not taken on this screen (e.g. while registering).
    ScanIgnored,
    /// Product codes are not looked up at this kiosk.
    ProductNotSupported,
    /// The code was not recognised (or its signature was wrong).
    CodeNotRecognised,
    /// A card was tapped while a ticket was on its way: it will be read next.
    TapQueued,
    /// The profile lookup took too long; the customer continues without a greeting.
    LookupSlow,
    /// The printer is down: the number will be shown on screen.
    PrinterDown,
    /// This coupon was redeemed before.
    CouponAlreadyUsed,
    /// A ticket scanned for the survey before its turn was served.
    SurveyNotServedYet,
    /// The scanned turn's survey was answered already.
    SurveyAlreadyAnswered,
    /// The scanned turn was not served (no-show, walked out): nothing to rate.
    SurveyClosed,
    /// Staff were called to this kiosk (or had been already): someone is coming.
    AssistanceCalled,
    /// A staff member acknowledged the call at a counter: they are on their way.
    AssistanceComing,
}
