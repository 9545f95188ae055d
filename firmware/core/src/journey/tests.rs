use kiosk_protocol::CardToken;
use kiosk_protocol::events::{ConsentPurpose, DeviceHealth, Event, ProfileSource, ReaderKind};
use time::macros::datetime;
use uuid::Uuid;

use super::*;
use crate::queue::ServiceDef;

pub(crate) fn config() -> JourneyConfig {
    JourneyConfig {
        services: vec![
            ServiceDef {
                letter: "A".into(),
                name: Localized::new("Caja", "Checkout"),
                priority_allowed: true,
                expected_s: 240,
            },
            ServiceDef {
                letter: "B".into(),
                name: Localized::new("Atención", "Customer care"),
                priority_allowed: false,
                expected_s: 480,
            },
        ],
        consents: vec![
            ConsentPolicy {
                purpose: ConsentPurpose::Profile,
                version: "2025-01".into(),
                title: Localized::new("Guardar mi perfil", "Keep my profile"),
                text: Localized::new(
                    "Guardamos su nombre para saludarle.",
                    "We keep your name to greet you.",
                ),
            },
            ConsentPolicy {
                purpose: ConsentPurpose::MarketingEmail,
                version: "2025-01".into(),
                title: Localized::new("Ofertas por email", "Offers by email"),
                text: Localized::new(
                    "Le enviaremos ofertas por email.",
                    "We will email you offers.",
                ),
            },
            ConsentPolicy {
                purpose: ConsentPurpose::TurnSms,
                version: "2025-01".into(),
                title: Localized::new("Avisos de turno por SMS", "Turn notices by SMS"),
                text: Localized::new(
                    "Le avisaremos por SMS cuando se acerque su turno.",
                    "We will text you when your turn is near.",
                ),
            },
        ],
        survey_reasons: vec![SurveyReason {
            id: "wait".into(),
            label: Localized::new("La espera", "The wait"),
        }],
        timeouts: Timeouts::default(),
        default_locale: Locale::Es,
        role: KioskRole::Queue,
        ticket_notes: Default::default(),
    }
}

pub(crate) fn card(n: u8) -> CardToken {
    CardToken::from_bytes([n; 16])
}

fn tap(n: u8) -> Input {
    Input::CardTapped {
        token: card(n),
        reader: ReaderKind::Mfrc522,
    }
}

fn ana(n: u8, consents: Vec<ConsentPurpose>) -> Input {
    Input::ProfileFound {
        token: card(n),
        profile: CustomerProfile {
            card_token: card(n),
            display_name: "Ana".into(),
            segment: Some("vip".into()),
            locale: Some(Locale::En),
            consents,
        },
        campaign: Some(Box::new(Campaign {
            id: "spring".into(),
            variant: "a".into(),
            headline: Localized::new("¡10% hoy!", "10% off today!"),
            ticket_line: Localized::new("10% en caja", "10% at checkout"),
            staff_script: Some("Offer the spring plan".into()),
            coupon: Some(Localized::new("10% de descuento", "10% off")),
            coupon_prefix: Some("SPRING".into()),
            image: Some(CampaignPicture {
                url: "/api/kiosk/campaign/spring/a/picture".into(),
                alt: Localized::new("Flores de primavera", "Spring flowers"),
            }),
        })),
        source: ProfileSource::LocalCache,
    }
}

fn issued(request_id: u64, n: u128) -> Input {
    Input::TurnIssued(IssuedTurn {
        request_id,
        turn_id: Uuid::from_u128(n),
        label: format!("A-{n:03}"),
        service: "A".into(),
        position: 2,
        estimated_wait_s: 300,
        priority: false,
        business_day: "2025-03-10".into(),
        issued_at: datetime!(2025-03-10 10:00 +01:00),
        qr_payload: format!("KT1.turn{n}.tag"),
        campaign: None,
        coupon_withheld: false,
        coupon_expires_on: None,
    })
}

/// The campaign aimed at anonymous visitors, as the runtime picks it at issue.
fn welcome(variant: &str) -> Campaign {
    Campaign {
        id: "welcome".into(),
        variant: variant.into(),
        headline: Localized::new("Pregunte por nuestra tarjeta", "Ask about our card"),
        ticket_line: Localized::new("Hágase socio hoy", "Join today"),
        staff_script: None,
        coupon: Some(Localized::new("10% en su primera compra", "10% off")),
        coupon_prefix: Some("BIENV".into()),
        image: None,
    }
}

/// A turn issued with the anonymous visitors' campaign.
fn issued_with(request_id: u64, n: u128, campaign: Campaign) -> Input {
    let Input::TurnIssued(turn) = issued(request_id, n) else {
        unreachable!()
    };
    Input::TurnIssued(IssuedTurn {
        campaign: Some(Box::new(campaign)),
        ..turn
    })
}

/// Drives the engine, collecting every effect.
struct Kiosk {
    config: JourneyConfig,
    state: State,
    now: u64,
    effects: Vec<Effect>,
}

impl Kiosk {
    fn new() -> Self {
        let config = config();
        Kiosk {
            state: State::new(config.default_locale),
            config,
            now: 0,
            effects: Vec::new(),
        }
    }

    fn send(&mut self, input: Input) -> Vec<Effect> {
        let (state, fx) = step(&self.config, &self.state, input, self.now);
        self.state = state;
        self.effects.extend(fx.iter().cloned());
        fx
    }

    fn touch(&mut self, t: Touch) -> Vec<Effect> {
        self.send(Input::Touch(t))
    }

    /// Lets the current screen time out.
    fn wait_out(&mut self) -> Vec<Effect> {
        self.now = self.state.deadline_ms.unwrap_or(self.now).max(self.now) + 1;
        self.send(Input::Tick)
    }

    fn events(&self) -> Vec<&Event> {
        self.effects
            .iter()
            .filter_map(|e| {
                if let Effect::Record(ev) = e {
                    Some(ev)
                } else {
                    None
                }
            })
            .collect()
    }

    fn event_types(&self) -> Vec<&'static str> {
        self.events().iter().map(|e| e.type_name()).collect()
    }

    fn issue_request(&self) -> Option<TurnRequest> {
        self.effects.iter().rev().find_map(|e| {
            if let Effect::IssueTurn(r) = e {
                Some(r.clone())
            } else {
                None
            }
        })
    }

    fn body(&self) -> ScreenBody {
        view(&self.config, &self.state).body
    }
}

#[test]
fn a_known_card_is_greeted_by_name_with_the_segment_campaign() {
    let mut k = Kiosk::new();
    let fx = k.send(tap(1));
    assert!(fx.contains(&Effect::LookupProfile { token: card(1) }));
    assert!(
        fx.iter().any(|e| matches!(e, Effect::WakeAt { .. })),
        "the lookup has a timeout"
    );
    k.send(ana(1, vec![ConsentPurpose::Profile]));
    match k.body() {
        ScreenBody::Greeting {
            name,
            campaign,
            campaign_image,
            consents,
        } => {
            assert_eq!(name, "Ana");
            assert_eq!(
                campaign.as_deref(),
                Some("10% off today!"),
                "in the customer's language"
            );
            let picture = campaign_image.expect("the campaign's picture");
            assert_eq!(
                (picture.url.as_str(), picture.alt.as_str()),
                ("/api/kiosk/campaign/spring/a/picture", "Spring flowers"),
                "its text alternative in the customer's language"
            );
            assert!(consents[0].given && !consents[1].given);
        }
        other => panic!("expected the greeting, got {other:?}"),
    }
    assert_eq!(
        k.event_types(),
        ["card_tapped", "customer_identified", "campaign_shown"]
    );
}

#[test]
fn a_campaign_is_not_shown_without_the_profile_consent() {
    let mut k = Kiosk::new();
    k.send(tap(1));
    k.send(ana(1, vec![]));
    assert!(matches!(
        k.body(),
        ScreenBody::Greeting { campaign: None, .. }
    ));
    assert!(!k.event_types().contains(&"campaign_shown"));
}

/// The ticket `fx` asks to print.
fn print_job(fx: &[Effect]) -> TicketJob {
    fx.iter()
        .find_map(|e| match e {
            Effect::PrintTicket(j) => Some(j.clone()),
            _ => None,
        })
        .expect("print")
}

/// Ana taps her card, is greeted with her campaign and asks for a turn of service A.
fn ana_asks_for_a_turn() -> Kiosk {
    let mut k = Kiosk::new();
    k.send(tap(1));
    k.send(ana(1, vec![ConsentPurpose::Profile]));
    k.touch(Touch::Continue);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    k
}

#[test]
fn an_identified_customer_gets_a_printed_ticket_with_coupon_and_goodbye() {
    let mut k = ana_asks_for_a_turn();
    let req = k.issue_request().expect("a turn is requested");
    assert_eq!(req.card_token, Some(card(1)));
    assert_eq!(req.campaign_id.as_deref(), Some("spring"));
    let fx = k.send(issued(req.request_id, 7));
    let job = fx
        .iter()
        .find_map(|e| {
            if let Effect::PrintTicket(j) = e {
                Some(j.clone())
            } else {
                None
            }
        })
        .expect("print");
    assert_eq!(job.service_name, "Checkout");
    assert_eq!(job.campaign_line.as_deref(), Some("10% at checkout"));
    assert!(job.coupon.is_some());
    k.send(Input::TicketPrinted {
        turn_id: Uuid::from_u128(7),
        bytes: 900,
    });
    match k.body() {
        ScreenBody::Goodbye {
            printed,
            qr_svg,
            coupon,
            turn,
            ..
        } => {
            assert!(printed);
            assert!(qr_svg.is_none());
            assert!(coupon.is_some());
            assert_eq!(turn.estimated_wait_min, 5);
        }
        other => panic!("expected the goodbye, got {other:?}"),
    }
    assert!(
        k.event_types()
            .ends_with(&["coupon_issued", "ticket_printed"])
    );
    // The greeting and the ticket are one visit: one exposure.
    let shown: Vec<_> = k
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::CampaignShown(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(shown.len(), 1, "one exposure per visit and campaign");
    assert_eq!(shown[0].visit_id, Some(k.state.visit_id));
    let coupon = job.coupon.expect("coupon");
    assert_eq!(coupon.variant, "a");
    assert_eq!(
        parse_coupon_code(&coupon.code).map(|(p, v, _)| (p, v)),
        Some(("SPRING".to_owned(), "A".to_owned()))
    );
    k.touch(Touch::Done);
    assert_eq!(k.state.screen, Screen::Attract);
    assert!(!k.state.holds_personal_data());
}

/// The runtime withholds the coupon of a card holder who had the campaign's most coupons: the
/// ticket keeps the campaign's line and picture, without a coupon or its `coupon_issued`; a
/// coupon handed out carries the last day the runtime computed, on the ticket and the screen.
#[test]
fn a_withheld_coupon_is_not_given_and_a_given_one_carries_its_last_day() {
    for withheld in [true, false] {
        let mut k = ana_asks_for_a_turn();
        let req = k.issue_request().expect("requested");
        let Input::TurnIssued(turn) = issued(req.request_id, 7) else {
            unreachable!()
        };
        let fx = k.send(Input::TurnIssued(IssuedTurn {
            coupon_withheld: withheld,
            coupon_expires_on: Some(time::macros::date!(2025 - 03 - 17)),
            ..turn
        }));
        let job = print_job(&fx);
        assert_eq!(job.campaign_line.as_deref(), Some("10% at checkout"));
        k.send(Input::TicketPrinted {
            turn_id: Uuid::from_u128(7),
            bytes: 900,
        });
        let ScreenBody::Goodbye {
            coupon,
            campaign,
            campaign_image,
            ..
        } = k.body()
        else {
            panic!("expected the goodbye");
        };
        assert_eq!(campaign.as_deref(), Some("10% off today!"));
        assert!(campaign_image.is_some());
        let issued_coupons = k
            .event_types()
            .iter()
            .filter(|t| **t == "coupon_issued")
            .count();
        if withheld {
            assert_eq!((job.coupon, coupon, issued_coupons), (None, None, 0));
        } else {
            let expires = Some(time::macros::date!(2025 - 03 - 17));
            assert_eq!(job.coupon.expect("the coupon").expires_on, expires);
            assert_eq!(
                coupon.expect("on screen").expires_on.as_deref(),
                Some("2025-03-17")
            );
            assert_eq!(issued_coupons, 1);
        }
    }
}

#[test]
fn an_anonymous_visitor_gets_a_turn_without_card_or_campaign() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "B".into(),
        priority: false,
    });
    let req = k.issue_request().expect("a turn is requested");
    assert_eq!((req.card_token, req.campaign_id), (None, None));
    assert!(
        req.anonymous,
        "the runtime picks the anonymous visitors' campaign"
    );
}

#[test]
fn an_anonymous_visitor_sees_the_campaign_aimed_at_them_once_on_ticket_and_goodbye() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("requested");
    let fx = k.send(issued_with(req.request_id, 5, welcome("b")));
    let job = print_job(&fx);
    assert_eq!(job.campaign_line.as_deref(), Some("Hágase socio hoy"));
    let coupon = job.coupon.expect("the campaign's coupon");
    assert!(coupon.code.starts_with("BIENV-B-"), "{}", coupon.code);
    k.send(Input::TicketPrinted {
        turn_id: Uuid::from_u128(5),
        bytes: 10,
    });
    assert!(matches!(
        k.body(),
        ScreenBody::Goodbye { campaign: Some(ref c), .. } if c == "Pregunte por nuestra tarjeta"
    ));
    let shown: Vec<_> = k
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::CampaignShown(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].segment.as_deref(), Some("anonymous"));
    assert_eq!(shown[0].variant, "b");
    assert_eq!(shown[0].card_token, None);
    let issued_coupon = k.events().into_iter().find_map(|e| match e {
        Event::CouponIssued(c) => Some(c.clone()),
        _ => None,
    });
    assert_eq!(
        issued_coupon.and_then(|c| c.variant),
        Some("b".to_owned()),
        "the coupon carries its variant"
    );
}

#[test]
fn every_visit_has_its_own_id_and_counts_its_own_exposure() {
    let mut k = Kiosk::new();
    k.state.visit_base = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000);
    let mut visits = Vec::new();
    for round in 0..3u128 {
        k.send(tap(1));
        k.send(ana(1, vec![ConsentPurpose::Profile]));
        visits.push(k.state.visit_id);
        k.touch(Touch::Continue);
        k.touch(Touch::ChooseService {
            service: "A".into(),
            priority: false,
        });
        let req = k.issue_request().expect("requested");
        k.send(issued(req.request_id, 10 + round));
        k.send(Input::TicketPrinted {
            turn_id: Uuid::from_u128(10 + round),
            bytes: 10,
        });
        k.touch(Touch::Done);
    }
    let shown: Vec<Option<Uuid>> = k
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::CampaignShown(c) => Some(c.visit_id),
            _ => None,
        })
        .collect();
    assert_eq!(shown, visits.iter().copied().map(Some).collect::<Vec<_>>());
    assert_eq!(
        visits
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "three visits, three ids: {visits:?}"
    );
    assert!(visits.iter().all(|v| v.get_version_num() == 7));
}

#[test]
fn priority_is_refused_for_services_that_do_not_offer_it() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "B".into(),
        priority: true,
    });
    assert!(k.issue_request().is_none());
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: true,
    });
    assert!(k.issue_request().is_some_and(|r| r.priority));
}

#[test]
fn an_unknown_card_is_offered_registration_and_registering_records_each_consent() {
    let mut k = Kiosk::new();
    k.send(tap(2));
    k.send(Input::ProfileNotFound { token: card(2) });
    assert_eq!(k.body(), ScreenBody::OfferRegistration);
    k.touch(Touch::Register);
    match k.body() {
        ScreenBody::Registering { consents, .. } => assert_eq!(consents.len(), 3),
        other => panic!("expected the form, got {other:?}"),
    }
    let form = RegistrationForm {
        name: "  Luis ".into(),
        email: Some("luis@example.com".into()),
        phone: Some("+34 600 000 000".into()),
        consents: vec![ConsentPurpose::Profile],
    };
    let fx = k.touch(Touch::SubmitRegistration(form));
    let registered = k.events().into_iter().find_map(|e| {
        if let Event::CustomerRegistered(r) = e {
            Some(r.clone())
        } else {
            None
        }
    });
    let registered = registered.expect("customer_registered");
    assert_eq!(registered.display_name, "Luis");
    assert_eq!(
        registered.email, None,
        "no email kept without the email consent"
    );
    assert_eq!(
        registered.phone, None,
        "no phone kept without an sms consent"
    );
    let consents: Vec<_> = k
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::ConsentGiven(_)))
        .collect();
    assert_eq!(consents.len(), 1);
    if let Event::ConsentGiven(c) = consents[0] {
        assert_eq!(c.policy_version, "2025-01");
        assert_eq!(c.policy_sha256, config().consents[0].sha256(Locale::Es));
    }
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::SaveProfile(p) if p.display_name == "Luis"))
    );
    assert!(matches!(k.body(), ScreenBody::Greeting { name, .. } if name == "Luis"));
}

#[test]
fn the_phone_is_kept_for_turn_notices_alone_and_the_consent_recorded() {
    let mut k = Kiosk::new();
    k.send(tap(2));
    k.send(Input::ProfileNotFound { token: card(2) });
    k.touch(Touch::Register);
    k.touch(Touch::SubmitRegistration(RegistrationForm {
        name: "Luis".into(),
        email: Some("luis@example.com".into()),
        phone: Some("+34 600 000 000".into()),
        consents: vec![ConsentPurpose::Profile, ConsentPurpose::TurnSms],
    }));
    let registered = k
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::CustomerRegistered(r) => Some(r.clone()),
            _ => None,
        })
        .expect("customer_registered");
    assert_eq!(
        registered.phone.as_deref(),
        Some("+34 600 000 000"),
        "turn notices need the phone"
    );
    assert_eq!(registered.email, None, "offers by email were not accepted");
    let given: Vec<ConsentPurpose> = k
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ConsentGiven(c) => Some(c.purpose),
            _ => None,
        })
        .collect();
    assert_eq!(given, [ConsentPurpose::Profile, ConsentPurpose::TurnSms]);
}
#[test]
fn registration_needs_a_name_and_the_profile_consent_but_skipping_is_always_possible() {
    let mut k = Kiosk::new();
    k.send(tap(2));
    k.send(Input::ProfileNotFound { token: card(2) });
    k.touch(Touch::Register);
    k.touch(Touch::SubmitRegistration(RegistrationForm {
        name: " ".into(),
        ..Default::default()
    }));
    assert!(matches!(
        k.body(),
        ScreenBody::Registering {
            error: Some(RegistrationError::NameMissing),
            ..
        }
    ));
    k.touch(Touch::SubmitRegistration(RegistrationForm {
        name: "Eva".into(),
        email: Some("not-an-email".into()),
        consents: vec![ConsentPurpose::Profile],
        ..Default::default()
    }));
    assert!(matches!(
        k.body(),
        ScreenBody::Registering {
            error: Some(RegistrationError::EmailInvalid),
            ..
        }
    ));
    k.touch(Touch::SubmitRegistration(RegistrationForm {
        name: "Eva".into(),
        ..Default::default()
    }));
    assert!(matches!(
        k.body(),
        ScreenBody::Registering {
            error: Some(RegistrationError::ProfileConsentRequired),
            ..
        }
    ));
    assert!(!k.event_types().contains(&"customer_registered"));
    k.touch(Touch::SkipRegistration);
    assert!(matches!(
        k.body(),
        ScreenBody::ChooseService { name: None, .. }
    ));
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    assert_eq!(
        k.issue_request().and_then(|r| r.card_token),
        None,
        "an unregistered card is not put on the ticket"
    );
}

#[test]
fn a_slow_lookup_lets_the_customer_continue_with_their_card_on_the_ticket() {
    let mut k = Kiosk::new();
    k.send(tap(3));
    k.wait_out();
    assert!(matches!(
        k.body(),
        ScreenBody::ChooseService { name: None, .. }
    ));
    assert_eq!(k.state.notice.map(|n| n.kind), Some(NoticeKind::LookupSlow));
    // The late answer changes nothing.
    let before = k.state.clone();
    k.send(ana(3, vec![ConsentPurpose::Profile]));
    assert_eq!(k.state, before);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    assert_eq!(k.issue_request().and_then(|r| r.card_token), Some(card(3)));
}

#[test]
fn the_same_card_tapped_twice_is_ignored() {
    let mut k = Kiosk::new();
    k.send(tap(1));
    let fx = k.send(tap(1));
    assert!(fx.is_empty());
    k.send(ana(1, vec![]));
    let before = k.state.clone();
    assert!(k.send(tap(1)).is_empty());
    assert_eq!(k.state, before);
}

#[test]
fn another_card_during_the_greeting_switches_to_the_new_customer() {
    let mut k = Kiosk::new();
    k.send(tap(1));
    k.send(ana(1, vec![]));
    let fx = k.send(tap(2));
    assert!(fx.contains(&Effect::LookupProfile { token: card(2) }));
    assert!(matches!(&k.state.screen, Screen::Identifying { tap, .. } if tap.token == card(2)));
    assert!(!format!("{:?}", k.body()).contains("Ana"));
}

#[test]
fn a_tap_while_printing_is_kept_and_identified_when_that_journey_ends() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("requested");
    k.send(issued(req.request_id, 1));
    let fx = k.send(tap(5));
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::LookupProfile { .. })),
        "the printing screen stays"
    );
    assert!(matches!(k.state.screen, Screen::Printing { .. }));
    assert_eq!(k.state.notice.map(|n| n.kind), Some(NoticeKind::TapQueued));
    k.send(Input::TicketPrinted {
        turn_id: Uuid::from_u128(1),
        bytes: 10,
    });
    assert!(matches!(k.state.screen, Screen::Goodbye { .. }));
    let fx = k.touch(Touch::Done);
    assert!(fx.contains(&Effect::LookupProfile { token: card(5) }));
}

#[test]
fn a_new_card_at_a_printed_goodbye_starts_at_once() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("requested");
    k.send(issued(req.request_id, 1));
    k.send(Input::TicketPrinted {
        turn_id: Uuid::from_u128(1),
        bytes: 10,
    });
    let fx = k.send(tap(6));
    assert!(fx.contains(&Effect::LookupProfile { token: card(6) }));
}

#[test]
fn a_scan_during_registration_is_ignored_and_the_form_stays() {
    let mut k = Kiosk::new();
    k.send(tap(2));
    k.send(Input::ProfileNotFound { token: card(2) });
    k.touch(Touch::Register);
    let screen = k.state.screen.clone();
    let fx = k.send(Input::Scanned(ScanInput::Coupon {
        code: "X1".into(),
        campaign_id: None,
        card_token: Some(card(9)),
    }));
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::Record(_) | Effect::LookupProfile { .. }))
    );
    assert_eq!(k.state.screen, screen);
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::ScanIgnored)
    );
}

#[test]
fn a_printer_failing_mid_ticket_still_issues_the_turn_and_shows_number_and_qr() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("requested");
    k.send(issued(req.request_id, 4));
    k.send(Input::TicketPrintFailed {
        turn_id: Uuid::from_u128(4),
        reason: "paper out".into(),
    });
    match k.body() {
        ScreenBody::Goodbye {
            printed,
            qr_svg,
            turn,
            ..
        } => {
            assert!(!printed);
            assert_eq!(turn.label, "A-004");
            assert!(qr_svg.is_some_and(|s| s.starts_with("<svg")));
        }
        other => panic!("expected the goodbye, got {other:?}"),
    }
    let failed = k.events().into_iter().find_map(|e| {
        if let Event::TicketPrintFailed(f) = e {
            Some(f.clone())
        } else {
            None
        }
    });
    let failed = failed.expect("ticket_print_failed");
    assert_eq!(failed.reason, "paper out");
    assert!(failed.shown_on_screen);
    // The number stays on screen longer than a printed goodbye.
    assert!(k.state.deadline_ms >= Some(k.now + config().timeouts.goodbye_unprinted_ms));
}

#[test]
fn a_printer_that_never_answers_counts_as_failed_and_a_late_answer_is_ignored() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("requested");
    k.send(issued(req.request_id, 4));
    k.wait_out();
    assert!(matches!(
        k.body(),
        ScreenBody::Goodbye { printed: false, .. }
    ));
    k.send(Input::TicketPrinted {
        turn_id: Uuid::from_u128(4),
        bytes: 10,
    });
    let outcomes = k
        .event_types()
        .iter()
        .filter(|t| t.starts_with("ticket_print"))
        .count();
    assert_eq!(outcomes, 1);
}

#[test]
fn a_printer_known_to_be_absent_is_not_tried() {
    let mut k = Kiosk::new();
    k.send(Input::PrinterHealth(DeviceHealth::Absent));
    assert!(!view(&k.config, &k.state).printer_ok);
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("requested");
    let fx = k.send(issued(req.request_id, 4));
    assert!(!fx.iter().any(|e| matches!(e, Effect::PrintTicket(_))));
    assert!(matches!(
        k.body(),
        ScreenBody::Goodbye { printed: false, .. }
    ));
}

#[test]
fn a_turn_issued_after_the_kiosk_gave_up_still_gets_a_print_outcome() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("requested");
    k.wait_out();
    assert!(matches!(
        k.body(),
        ScreenBody::Error {
            kind: ErrorKind::IssueFailed
        }
    ));
    k.send(issued(req.request_id, 8));
    let failed = k.events().into_iter().find_map(|e| {
        if let Event::TicketPrintFailed(f) = e {
            Some(f.clone())
        } else {
            None
        }
    });
    assert!(failed.is_some_and(|f| !f.shown_on_screen && f.turn_id == Uuid::from_u128(8)));
}

/// The effects' `RedeemCoupon` asks, in order.
fn redeem_asks(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::RedeemCoupon { code, .. } => Some(code.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_coupon_bound_to_a_card_is_redeemed_and_identifies_its_holder() {
    let mut k = Kiosk::new();
    let coupon = ScanInput::Coupon {
        code: "SPRING-A-0123456789".into(),
        campaign_id: Some("spring".into()),
        card_token: Some(card(1)),
    };
    let fx = k.send(Input::Scanned(coupon.clone()));
    assert_eq!(redeem_asks(&fx), ["SPRING-A-0123456789"]);
    let fx = k.send(Input::CouponChecked {
        code: "SPRING-A-0123456789".into(),
        card_token: Some(card(1)),
        outcome: CouponOutcome::Redeemed,
    });
    assert!(fx.contains(&Effect::LookupProfile { token: card(1) }));
    k.send(ana(1, vec![ConsentPurpose::Profile]));
    assert_eq!(k.event_types(), ["customer_identified", "campaign_shown"]);
    // The scanner reading the same coupon again is not a second redemption, nor an "already
    // used": the same kind word.
    let fx = k.send(Input::Scanned(coupon));
    assert!(redeem_asks(&fx).is_empty());
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::CouponRedeemed)
    );
}

#[test]
fn an_anonymous_coupon_is_redeemed_and_the_visitor_continues() {
    let mut k = Kiosk::new();
    let fx = k.send(Input::Scanned(ScanInput::Coupon {
        code: "C-2".into(),
        campaign_id: None,
        card_token: None,
    }));
    assert_eq!(redeem_asks(&fx), ["C-2"]);
    k.send(Input::CouponChecked {
        code: "C-2".into(),
        card_token: None,
        outcome: CouponOutcome::Redeemed,
    });
    assert!(matches!(k.body(), ScreenBody::ChooseService { .. }));
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::CouponRedeemed)
    );
}

#[test]
fn a_used_coupon_says_so_kindly_and_the_screen_stays() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    let screen = k.state.screen.clone();
    let fx = k.send(Input::Scanned(ScanInput::Coupon {
        code: "BIENV-A-0123456789".into(),
        campaign_id: Some("welcome".into()),
        card_token: None,
    }));
    assert_eq!(redeem_asks(&fx), ["BIENV-A-0123456789"]);
    k.send(Input::CouponChecked {
        code: "BIENV-A-0123456789".into(),
        card_token: None,
        outcome: CouponOutcome::AlreadyUsed,
    });
    assert_eq!(k.state.screen, screen);
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::CouponAlreadyUsed)
    );
    k.send(Input::CouponChecked {
        code: "X".into(),
        card_token: None,
        outcome: CouponOutcome::NotValid,
    });
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::CodeNotRecognised)
    );
}

#[test]
fn coupon_codes_carry_their_campaign_prefix_and_variant() {
    let turn = Uuid::from_u128(0x0193_abcd_ef01_7000_8000_00ab_cdef_1234);
    let code = coupon_code("cafe", "b", turn);
    assert_eq!(code, "CAFE-B-ABCDEF1234");
    assert_eq!(
        parse_coupon_code(" cafe-b-abcdef1234 "),
        Some(("CAFE".into(), "B".into(), "ABCDEF1234".into()))
    );
    assert_eq!(
        parse_coupon_code("DEMO-VIP-B-ABCDEF1234").map(|(p, v, _)| (p, v)),
        Some(("DEMO-VIP".into(), "B".into()))
    );
    assert_eq!(parse_coupon_code("CAFE-B-XYZ"), None);
    assert_eq!(parse_coupon_code("4006381333931"), None);
}

/// A printed goodbye for turn `n` (anonymous), then back to the attract screen.
fn served_ticket_scanned(k: &mut Kiosk, n: u128) -> Vec<Effect> {
    k.send(Input::Scanned(ScanInput::Turn {
        turn_id: Uuid::from_u128(n),
        label: format!("B-{n:03}"),
    }))
}

fn submitted(fx: &[Effect]) -> Vec<kiosk_protocol::events::SurveyAnswered> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SubmitSurvey(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_goodbye_asks_no_survey() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("requested");
    k.send(issued(req.request_id, 1));
    k.send(Input::TicketPrinted {
        turn_id: Uuid::from_u128(1),
        bytes: 10,
    });
    assert!(matches!(k.body(), ScreenBody::Goodbye { .. }));
    let fx = k.touch(Touch::SurveyScore { score: 0 });
    assert!(submitted(&fx).is_empty());
    k.touch(Touch::SurveyReason { reason: None });
    assert!(
        submitted(&k.effects).is_empty(),
        "nothing to rate before the service"
    );
    // Scanning the fresh ticket right away asks the store, which says "not served yet".
    let fx = served_ticket_scanned(&mut k, 1);
    assert!(fx.contains(&Effect::CheckSurvey {
        turn_id: Uuid::from_u128(1),
        label: "B-001".into()
    }));
    k.send(Input::SurveyChecked {
        turn_id: Uuid::from_u128(1),
        label: "B-001".into(),
        status: SurveyStatus::NotServed,
    });
    assert!(matches!(k.body(), ScreenBody::Goodbye { .. }));
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::SurveyNotServedYet)
    );
}

#[test]
fn the_survey_records_score_and_reason_once() {
    let mut k = Kiosk::new();
    served_ticket_scanned(&mut k, 1);
    k.send(Input::SurveyChecked {
        turn_id: Uuid::from_u128(1),
        label: "B-001".into(),
        status: SurveyStatus::Open,
    });
    k.touch(Touch::SurveyScore { score: 11 });
    assert!(matches!(
        k.body(),
        ScreenBody::Survey {
            survey: SurveyView {
                state: Survey::Asking,
                ..
            },
            ..
        }
    ));
    k.touch(Touch::SurveyScore { score: 4 });
    k.touch(Touch::SurveyReason {
        reason: Some("wait".into()),
    });
    k.touch(Touch::SurveyScore { score: 10 });
    k.touch(Touch::SurveyReason { reason: None });
    let answers = submitted(&k.effects);
    assert_eq!(answers.len(), 1);
    assert_eq!(
        (answers[0].score, answers[0].reason.as_deref()),
        (4, Some("wait"))
    );
    assert_eq!(answers[0].turn_id, Some(Uuid::from_u128(1)));
    assert!(
        k.event_types().is_empty(),
        "the runtime journals the answer, with the turn's mark"
    );
}

#[test]
fn scanning_a_served_ticket_opens_its_survey_and_a_score_counts_when_they_leave() {
    let mut k = Kiosk::new();
    served_ticket_scanned(&mut k, 3);
    assert_eq!(k.state.screen, Screen::Attract, "the store is asked first");
    k.send(Input::SurveyChecked {
        turn_id: Uuid::from_u128(3),
        label: "B-003".into(),
        status: SurveyStatus::Open,
    });
    assert!(matches!(k.body(), ScreenBody::Survey { ref turn_label, .. } if turn_label == "B-003"));
    k.touch(Touch::SurveyScore { score: 8 });
    let fx = k.wait_out();
    assert_eq!(
        submitted(&fx).iter().map(|s| s.score).collect::<Vec<_>>(),
        [8],
        "a score without a reason counts when they leave"
    );
    assert_eq!(k.state.screen, Screen::Attract);
}

#[test]
fn a_second_answer_for_a_turn_is_refused_kindly() {
    let mut k = Kiosk::new();
    served_ticket_scanned(&mut k, 3);
    k.send(Input::SurveyChecked {
        turn_id: Uuid::from_u128(3),
        label: "B-003".into(),
        status: SurveyStatus::AlreadyAnswered,
    });
    assert_eq!(k.state.screen, Screen::Attract);
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::SurveyAlreadyAnswered)
    );
    // Answered at another kiosk between the scan and the answer here: the runtime refuses it.
    k.send(Input::SurveyChecked {
        turn_id: Uuid::from_u128(4),
        label: "B-004".into(),
        status: SurveyStatus::Open,
    });
    k.touch(Touch::SurveyScore { score: 0 });
    k.touch(Touch::SurveyReason { reason: None });
    k.send(Input::SurveySubmitted {
        turn_id: Uuid::from_u128(4),
        accepted: false,
    });
    assert!(matches!(
        k.body(),
        ScreenBody::Survey {
            survey: SurveyView {
                state: Survey::Refused,
                ..
            },
            ..
        }
    ));
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::SurveyAlreadyAnswered)
    );
    let fx = k.touch(Touch::SurveyScore { score: 0 });
    assert!(submitted(&fx).is_empty());
    // A turn never served has nothing to rate.
    k.touch(Touch::Done);
    served_ticket_scanned(&mut k, 5);
    k.send(Input::SurveyChecked {
        turn_id: Uuid::from_u128(5),
        label: "B-005".into(),
        status: SurveyStatus::Closed,
    });
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::SurveyClosed)
    );
}

#[test]
fn every_screen_times_out_back_to_attract_with_nothing_personal_left() {
    let mut k = Kiosk::new();
    k.touch(Touch::SetLocale { locale: Locale::En });
    k.send(tap(1));
    k.send(ana(1, vec![ConsentPurpose::Profile]));
    for _ in 0..3 {
        k.wait_out();
    }
    assert_eq!(k.state.screen, Screen::Attract);
    assert_eq!(k.state.locale, Locale::Es);
    assert!(!k.state.holds_personal_data());
    assert!(
        !serde_json::to_string(&view(&k.config, &k.state))
            .expect("json")
            .contains("Ana")
    );
}

#[test]
fn an_erased_customer_disappears_from_the_screen() {
    let mut k = Kiosk::new();
    k.send(tap(1));
    k.send(ana(1, vec![]));
    k.send(Input::CustomerErased { token: card(1) });
    assert_eq!(k.state.screen, Screen::Attract);
}

#[test]
fn presence_wakes_the_attract_screen_without_starting_a_journey() {
    let mut k = Kiosk::new();
    let fx = k.send(Input::PresenceArrived);
    assert!(fx.is_empty());
    assert_eq!(k.body(), ScreenBody::Attract { inviting: true });
    assert_eq!(k.state.deadline_ms, None);
}

#[test]
fn the_qr_svg_is_a_square_with_dark_modules() {
    let svg = qr_svg("KT1.abc.def").expect("fits");
    assert!(
        svg.contains("viewBox=\"0 0 29 29\""),
        "version 1 is 21 modules plus the quiet zone: {svg:.80}"
    );
    assert!(svg.contains("h1v1h-1z"));
}

#[test]
fn the_service_name_and_coupon_on_the_goodbye_follow_a_language_switch() {
    let mut k = Kiosk::new();
    k.send(tap(1));
    k.send(ana(1, vec![ConsentPurpose::Profile]));
    k.touch(Touch::Continue);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("a turn is requested");
    k.send(issued(req.request_id, 7));
    k.send(Input::TicketPrinted {
        turn_id: Uuid::from_u128(7),
        bytes: 900,
    });
    let name = |k: &Kiosk| match k.body() {
        ScreenBody::Goodbye { turn, .. } => turn.service_name,
        other => panic!("expected the goodbye, got {other:?}"),
    };
    let coupon = |k: &Kiosk| match k.body() {
        ScreenBody::Goodbye { coupon, .. } => coupon.expect("her campaign's coupon").text,
        other => panic!("expected the goodbye, got {other:?}"),
    };
    assert_eq!(name(&k), "Checkout", "issued in the customer's English");
    assert_eq!(coupon(&k), "10% off");
    k.touch(Touch::SetLocale { locale: Locale::Es });
    assert_eq!(name(&k), "Caja", "the screen's Spanish after the switch");
    assert_eq!(
        coupon(&k),
        "10% de descuento",
        "the coupon's offer switches too"
    );
}

fn assistance_asks(fx: &[Effect]) -> Vec<Option<Uuid>> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::RequestAssistance { turn_id } => Some(*turn_id),
            _ => None,
        })
        .collect()
}

#[test]
fn calling_an_assistant_from_the_attract_screen_asks_once_and_keeps_the_screen() {
    let mut k = Kiosk::new();
    let fx = k.touch(Touch::CallAssistant);
    assert_eq!(assistance_asks(&fx), vec![None]);
    assert_eq!(k.state.screen, Screen::Attract);
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::AssistanceCalled)
    );
    assert!(view(&k.config, &k.state).assistance_called);
    // Pressed again before anyone acknowledged: said again, not asked again.
    let before = k.state.notice.map(|n| n.id);
    let fx = k.touch(Touch::CallAssistant);
    assert!(assistance_asks(&fx).is_empty());
    assert_ne!(
        k.state.notice.map(|n| n.id),
        before,
        "the notice is said again"
    );
    // The attract screen holds nothing personal, and the call is the kiosk's: it stays.
    assert!(!k.state.holds_personal_data());
    // A counter acknowledges (at any kiosk): the button is free again and the customer told.
    k.send(Input::AssistanceOpen(false));
    assert!(!view(&k.config, &k.state).assistance_called);
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::AssistanceComing)
    );
    assert_eq!(assistance_asks(&k.touch(Touch::CallAssistant)), vec![None]);
}

#[test]
fn a_customer_stuck_choosing_a_service_or_at_an_unprinted_goodbye_can_call_an_assistant() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    let deadline = k.state.deadline_ms;
    k.now += 5_000;
    let fx = k.touch(Touch::CallAssistant);
    assert_eq!(assistance_asks(&fx), vec![None]);
    assert!(matches!(k.state.screen, Screen::ChooseService { .. }));
    assert!(
        k.state.deadline_ms > deadline,
        "calling restarts the screen's time limit"
    );
    k.send(Input::AssistanceOpen(false));
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let req = k.issue_request().expect("a turn is requested");
    k.send(issued(req.request_id, 9));
    k.send(Input::TicketPrintFailed {
        turn_id: Uuid::from_u128(9),
        reason: "paper out".into(),
    });
    assert!(matches!(
        k.state.screen,
        Screen::Goodbye { printed: false, .. }
    ));
    let fx = k.touch(Touch::CallAssistant);
    assert_eq!(
        assistance_asks(&fx),
        vec![Some(Uuid::from_u128(9))],
        "the request names the customer's turn"
    );
    assert!(matches!(
        k.state.screen,
        Screen::Goodbye { printed: false, .. }
    ));
}

#[test]
fn the_call_outlives_the_customer_s_journey_until_a_counter_acknowledges_it() {
    let mut k = Kiosk::new();
    k.touch(Touch::Start);
    k.touch(Touch::CallAssistant);
    k.wait_out();
    assert_eq!(k.state.screen, Screen::Attract);
    assert!(k.state.assistance_called, "still called after the timeout");
    assert!(assistance_asks(&k.touch(Touch::CallAssistant)).is_empty());
}

#[test]
fn a_turn_rated_on_a_phone_is_marked_and_its_survey_open_on_screen_is_refused_kindly() {
    let mut k = Kiosk::new();
    // Nobody at the screen: only the store's mark.
    let fx = k.send(Input::TurnRatedElsewhere {
        turn_id: Uuid::from_u128(5),
    });
    assert_eq!(
        fx,
        vec![Effect::MarkRated {
            turn_id: Uuid::from_u128(5)
        }]
    );
    assert_eq!(k.state.screen, Screen::Attract);
    // The customer scanned their ticket here while answering on their phone too.
    served_ticket_scanned(&mut k, 6);
    k.send(Input::SurveyChecked {
        turn_id: Uuid::from_u128(6),
        label: "B-006".into(),
        status: SurveyStatus::Open,
    });
    k.touch(Touch::SurveyScore { score: 9 });
    k.send(Input::TurnRatedElsewhere {
        turn_id: Uuid::from_u128(6),
    });
    match k.body() {
        ScreenBody::Survey { survey, .. } => assert_eq!(survey.state, Survey::Refused),
        other => panic!("expected the survey, got {other:?}"),
    }
    assert_eq!(
        k.state.notice.map(|n| n.kind),
        Some(NoticeKind::SurveyAlreadyAnswered)
    );
    // Leaving records nothing: the phone's answer is the one.
    let fx = k.touch(Touch::Done);
    assert!(submitted(&fx).is_empty());
}
