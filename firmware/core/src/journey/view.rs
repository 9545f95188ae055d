//! The view model of the kiosk screen: what the browser renders, derived from the journey state
//! after every step. Texts that come from the configuration or the CRM are picked in the screen's
//! language here; fixed labels live in the page's own dictionary.

use kiosk_protocol::events::{ConsentPurpose, DeviceHealth};
use serde::{Deserialize, Serialize};

use super::state::{ErrorKind, NoticeKind, RegistrationError, Screen, Session, Survey};
use super::{IssuedTurn, JourneyConfig, Locale, State};

/// Everything the kiosk screen shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenView {
    /// The state version this view was made from.
    pub version: u64,
    /// Language.
    pub locale: Locale,
    /// Whether tickets can be printed now.
    pub printer_ok: bool,
    /// A short message over the screen.
    pub notice: Option<NoticeView>,
    /// Accessible mode: the page speaks what it shows and follows the keypad.
    #[serde(default)]
    pub accessible: bool,
    /// The screen is about to time out: the page shows a banner with a "More time" button.
    #[serde(default)]
    pub time_warning: Option<TimeWarningView>,
    /// Staff were called to this kiosk and have not acknowledged yet: the "call an assistant"
    /// button shows it is on.
    #[serde(default)]
    pub assistance_called: bool,
    /// Queue kiosk or browse point (the attract screen invites differently).
    #[serde(default)]
    pub role: super::KioskRole,
    /// The screen.
    pub body: ScreenBody,
}

/// One piece of content at a browse point, in the screen's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowseItemView {
    /// The campaign.
    pub campaign_id: String,
    /// The item.
    pub content_id: String,
    /// Its text.
    pub text: String,
    /// Its picture's URL, if any.
    pub image: Option<String>,
    /// The picture's text alternative.
    pub alt: Option<String>,
    /// Seconds on screen.
    pub duration_s: u32,
}

/// The time-limit warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWarningView {
    /// Whole seconds left when the warning appeared (the page counts down from it; the
    /// engine, not the page, ends the screen).
    pub seconds_left: u32,
}

/// A notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeView {
    /// What.
    pub kind: NoticeKind,
    /// Changes when the same notice appears again.
    pub id: u64,
}

/// One screen and its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum ScreenBody {
    /// Waiting; `inviting` when someone stands in front of the kiosk.
    Attract {
        /// Someone is near.
        inviting: bool,
    },
    /// Reading the card.
    Identifying,
    /// Hello, name.
    Greeting {
        /// Name.
        name: String,
        /// The campaign's line, if any.
        campaign: Option<String>,
        /// The campaign's picture, if any.
        #[serde(default)]
        campaign_image: Option<PictureView>,
        /// Each consent the kiosk asks for, and whether the customer gave it.
        consents: Vec<ConsentStatus>,
    },
    /// Unknown card: register?
    OfferRegistration,
    /// The registration form.
    Registering {
        /// The consent boxes, each unticked.
        consents: Vec<ConsentBox>,
        /// What was wrong with the last submission.
        error: Option<RegistrationError>,
    },
    /// Choose a service.
    ChooseService {
        /// Name, when identified.
        name: Option<String>,
        /// The services.
        services: Vec<ServiceChoice>,
    },
    /// A browse point: content and offers for the visitor's segment, and their turn.
    Browse {
        /// Name, when identified (the kiosk's own screen greets by name, as the queue kiosk).
        name: Option<String>,
        /// Their turn today, if any.
        turn: Option<super::BrowseTurn>,
        /// The item on screen (`None`: loading, or nothing for them now).
        item: Option<BrowseItemView>,
        /// Whether the content is still being found.
        loading: bool,
        /// The item's place (1-based) and how many there are.
        position: usize,
        /// How many items.
        count: usize,
    },
    /// Taking a number.
    Issuing,
    /// Printing.
    Printing {
        /// The turn.
        turn: TurnView,
    },
    /// Goodbye.
    Goodbye {
        /// Name, when identified.
        name: Option<String>,
        /// The turn.
        turn: TurnView,
        /// Whether the ticket was printed.
        printed: bool,
        /// The ticket's QR code as SVG, when it was not printed.
        qr_svg: Option<String>,
        /// The coupon, if any.
        coupon: Option<CouponView>,
        /// The campaign's line on screen, if any (an anonymous visitor's campaign is shown here).
        campaign: Option<String>,
        /// The campaign's picture, if any.
        #[serde(default)]
        campaign_image: Option<PictureView>,
    },
    /// The survey of a served turn whose ticket was scanned.
    Survey {
        /// The turn's label.
        turn_label: String,
        /// The survey.
        survey: SurveyView,
    },
    /// An error.
    Error {
        /// What.
        kind: ErrorKind,
    },
}

/// A consent and whether it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentStatus {
    /// Purpose.
    pub purpose: ConsentPurpose,
    /// Label.
    pub title: String,
    /// Given.
    pub given: bool,
}

/// A consent box on the registration form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentBox {
    /// Purpose (sent back when ticked).
    pub purpose: ConsentPurpose,
    /// Label.
    pub title: String,
    /// Full policy text.
    pub text: String,
    /// Policy version.
    pub version: String,
}

/// A service button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceChoice {
    /// Letter (sent back when chosen).
    pub letter: String,
    /// Name.
    pub name: String,
    /// Whether a priority turn can be asked for.
    pub priority_allowed: bool,
}

/// A turn on screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnView {
    /// Label.
    pub label: String,
    /// Service name.
    pub service_name: String,
    /// Turns ahead.
    pub position: u32,
    /// Estimated wait, whole minutes rounded up.
    pub estimated_wait_min: u32,
    /// Priority.
    pub priority: bool,
}

/// A coupon on screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponView {
    /// Code.
    pub code: String,
    /// Offer.
    pub text: String,
    /// Last valid day, `YYYY-MM-DD`, when known.
    #[serde(default)]
    pub expires_on: Option<String>,
}

/// A campaign's picture on screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PictureView {
    /// Its URL on the kiosk.
    pub url: String,
    /// Its text alternative in the screen's language (its accessible name).
    pub alt: String,
}

/// The survey on screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyView {
    /// Where it stands.
    pub state: Survey,
    /// Reasons offered after a score.
    pub reasons: Vec<ReasonChoice>,
}

/// A reason button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonChoice {
    /// Id (sent back).
    pub id: String,
    /// Label.
    pub label: String,
}

/// The view of `state` under `config`.
pub fn view(config: &JourneyConfig, state: &State) -> ScreenView {
    let locale = state.locale;
    let name = |session: &Session| session.customer.as_ref().map(|c| c.name.clone());
    let survey = |s: Survey| SurveyView {
        state: s,
        reasons: config
            .survey_reasons
            .iter()
            .map(|r| ReasonChoice {
                id: r.id.clone(),
                label: r.label.get(locale).to_owned(),
            })
            .collect(),
    };
    // The service's name in the screen's language, which may have changed since the turn was
    // issued (the ticket keeps the language it was printed in).
    let turn_view = |t: &IssuedTurn, issued_name: &str| TurnView {
        label: t.label.clone(),
        service_name: config
            .services
            .iter()
            .find(|s| s.letter == t.service)
            .map_or(issued_name, |s| s.name.get(locale))
            .to_owned(),
        position: t.position,
        estimated_wait_min: t.estimated_wait_s.div_ceil(60),
        priority: t.priority,
    };
    let picture = |c: Option<&super::Campaign>| {
        c.and_then(|c| c.image.as_ref()).map(|p| PictureView {
            url: p.url.clone(),
            alt: p.alt.get(locale).to_owned(),
        })
    };
    let body = match &state.screen {
        Screen::Attract => ScreenBody::Attract {
            inviting: state.presence,
        },
        Screen::Identifying { .. } => ScreenBody::Identifying,
        Screen::Greeting { session } => {
            let customer = session.customer.as_ref();
            ScreenBody::Greeting {
                name: customer.map(|c| c.name.clone()).unwrap_or_default(),
                campaign: customer
                    .and_then(|c| c.campaign.as_ref())
                    .map(|c| c.headline.get(locale).to_owned()),
                campaign_image: picture(customer.and_then(|c| c.campaign.as_ref())),
                consents: config
                    .consents
                    .iter()
                    .map(|p| ConsentStatus {
                        purpose: p.purpose,
                        title: p.title.get(locale).to_owned(),
                        given: customer.is_some_and(|c| c.consents.contains(&p.purpose)),
                    })
                    .collect(),
            }
        }
        Screen::OfferRegistration { .. } => ScreenBody::OfferRegistration,
        Screen::Registering { error, .. } => ScreenBody::Registering {
            consents: config
                .consents
                .iter()
                .map(|p| ConsentBox {
                    purpose: p.purpose,
                    title: p.title.get(locale).to_owned(),
                    text: p.text.get(locale).to_owned(),
                    version: p.version.clone(),
                })
                .collect(),
            error: *error,
        },
        Screen::ChooseService { session } => ScreenBody::ChooseService {
            name: name(session),
            services: config
                .services
                .iter()
                .map(|s| ServiceChoice {
                    letter: s.letter.clone(),
                    name: s.name.get(locale).to_owned(),
                    priority_allowed: s.priority_allowed,
                })
                .collect(),
        },
        Screen::Browse {
            session,
            items,
            turn,
            index,
            ..
        } => ScreenBody::Browse {
            name: name(session),
            turn: turn.clone(),
            item: items
                .as_ref()
                .and_then(|i| i.get(*index))
                .map(|i| BrowseItemView {
                    campaign_id: i.campaign_id.clone(),
                    content_id: i.content_id.clone(),
                    text: i.text.get(locale).to_owned(),
                    image: i.image.clone(),
                    alt: i.alt.as_ref().map(|a| a.get(locale).to_owned()),
                    duration_s: i.duration_s,
                }),
            loading: items.is_none(),
            position: index + 1,
            count: items.as_ref().map_or(0, Vec::len),
        },
        Screen::Issuing { .. } => ScreenBody::Issuing,
        Screen::Printing {
            turn, service_name, ..
        } => ScreenBody::Printing {
            turn: turn_view(turn, service_name),
        },
        Screen::Goodbye {
            session,
            turn,
            service_name,
            coupon,
            printed,
        } => {
            let campaign = session
                .customer
                .as_ref()
                .and_then(|c| c.campaign.as_ref())
                .or(turn.campaign.as_deref().filter(|_| session.card.is_none()));
            ScreenBody::Goodbye {
                name: name(session),
                turn: turn_view(turn, service_name),
                printed: *printed,
                qr_svg: if *printed {
                    None
                } else {
                    qr_svg(&turn.qr_payload)
                },
                coupon: coupon.as_ref().map(|c| CouponView {
                    code: c.code.clone(),
                    text: c.text.get(locale).to_owned(),
                    expires_on: c.expires_on.map(|d| d.to_string()),
                }),
                campaign: campaign.map(|c| c.headline.get(locale).to_owned()),
                campaign_image: picture(campaign),
            }
        }
        Screen::SurveyOnly {
            label, survey: s, ..
        } => ScreenBody::Survey {
            turn_label: label.clone(),
            survey: survey(*s),
        },
        Screen::Error { kind } => ScreenBody::Error { kind: *kind },
    };
    ScreenView {
        version: state.version,
        locale,
        printer_ok: state.printer != DeviceHealth::Absent,
        notice: state.notice.map(|n| NoticeView {
            kind: n.kind,
            id: n.id,
        }),
        accessible: state.accessible,
        time_warning: state.warning_left_ms.map(|ms| TimeWarningView {
            seconds_left: u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX),
        }),
        assistance_called: state.assistance_called,
        role: config.role,
        body,
    }
}

/// The QR code of `payload` as a self-contained SVG (dark modules as one path, 4-module quiet
/// zone), or `None` if the payload does not fit in a QR code. Hidden from screen readers: the
/// screen names the frame around it by the turn.
pub fn qr_svg(payload: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let size = width + 2 * quiet;
    let mut path = String::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = (i % width + quiet, i / width + quiet);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" shape-rendering=\"crispEdges\" aria-hidden=\"true\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}
