//! Property tests of the journey engine through its public API: whatever a customer, the devices
//! and the runtime do, in any order, the engine never panics, every issued ticket gets exactly
//! one print outcome, and an idle kiosk ends on the attract screen holding nothing personal.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::collections::HashMap;

use kiosk_core::journey::{
    Campaign, ConsentPolicy, CouponOutcome, CustomerProfile, Effect, Input, IssuedTurn,
    JourneyConfig, Locale, Localized, RegistrationForm, ScanInput, Screen, State, SurveyReason,
    SurveyStatus, Timeouts, Touch, step, view,
};
use kiosk_core::queue::ServiceDef;
use kiosk_protocol::CardToken;
use kiosk_protocol::events::{ConsentPurpose, DeviceHealth, Event, ProfileSource, ReaderKind};
use proptest::prelude::*;
use time::macros::datetime;
use uuid::Uuid;

fn config() -> JourneyConfig {
    JourneyConfig {
        services: vec![
            ServiceDef {
                letter: "A".into(),
                name: Localized::new("Caja", "Checkout"),
                priority_allowed: true,
                expected_s: 300,
            },
            ServiceDef {
                letter: "B".into(),
                name: Localized::new("Atención", "Care"),
                priority_allowed: false,
                expected_s: 300,
            },
        ],
        consents: vec![ConsentPolicy {
            purpose: ConsentPurpose::Profile,
            version: "1".into(),
            title: Localized::new("Perfil", "Profile"),
            text: Localized::new("Texto", "Text"),
        }],
        survey_reasons: vec![SurveyReason {
            id: "wait".into(),
            label: Localized::new("Espera", "Wait"),
        }],
        timeouts: Timeouts::default(),
        default_locale: Locale::Es,
        role: kiosk_core::journey::KioskRole::Queue,
        ticket_notes: Default::default(),
    }
}

fn card(n: u8) -> CardToken {
    CardToken::from_bytes([n; 16])
}

/// What the world may do next. Answers to effects refer to the engine's requests by index so
/// that both matching and stale answers are generated.
#[derive(Debug, Clone)]
enum Action {
    Tap(u8),
    Scan(u8),
    Touch(u8),
    Presence(bool),
    Printer(u8),
    AnswerLookup {
        found: bool,
        which: u8,
    },
    AnswerIssue {
        ok: bool,
        which: u8,
    },
    AnswerPrint {
        ok: bool,
        which: u8,
    },
    Erase(u8),
    /// A counter took this kiosk's call for assistance (`false`), or a turn was rated on a
    /// phone (`true`).
    Store(bool),
    Wait(u16),
    Tick,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0u8..4).prop_map(Action::Tap),
        1 => (0u8..6).prop_map(Action::Scan),
        6 => (0u8..17).prop_map(Action::Touch),
        1 => any::<bool>().prop_map(Action::Presence),
        1 => (0u8..3).prop_map(Action::Printer),
        3 => (any::<bool>(), 0u8..3).prop_map(|(found, which)| Action::AnswerLookup { found, which }),
        3 => (any::<bool>(), 0u8..3).prop_map(|(ok, which)| Action::AnswerIssue { ok, which }),
        3 => (any::<bool>(), 0u8..3).prop_map(|(ok, which)| Action::AnswerPrint { ok, which }),
        1 => (0u8..4).prop_map(Action::Erase),
        1 => any::<bool>().prop_map(Action::Store),
        2 => (0u16..40_000).prop_map(Action::Wait),
        1 => Just(Action::Tick),
    ]
}

fn touch(n: u8) -> Touch {
    match n {
        0 => Touch::Start,
        1 => Touch::Continue,
        2 => Touch::Register,
        3 => Touch::SkipRegistration,
        4 => Touch::SubmitRegistration(RegistrationForm {
            name: "Ana".into(),
            email: Some("ana@example.com".into()),
            phone: None,
            consents: vec![ConsentPurpose::Profile],
        }),
        5 => Touch::SubmitRegistration(RegistrationForm::default()),
        6 => Touch::Activity,
        7 => Touch::ChooseService {
            service: "A".into(),
            priority: false,
        },
        8 => Touch::ChooseService {
            service: "A".into(),
            priority: true,
        },
        9 => Touch::ChooseService {
            service: "B".into(),
            priority: true,
        },
        10 => Touch::SurveyScore { score: 7 },
        11 => Touch::SurveyReason {
            reason: Some("wait".into()),
        },
        12 => Touch::Done,
        13 => Touch::Cancel,
        14 => Touch::SetLocale { locale: Locale::En },
        15 => Touch::CallAssistant,
        _ => Touch::SurveyScore { score: 200 },
    }
}

fn scan(n: u8) -> ScanInput {
    match n {
        0 => ScanInput::Coupon {
            code: "C1".into(),
            campaign_id: Some("c".into()),
            card_token: Some(card(9)),
        },
        1 => ScanInput::Coupon {
            code: "C2".into(),
            campaign_id: None,
            card_token: None,
        },
        2 => ScanInput::Turn {
            turn_id: Uuid::from_u128(77),
            label: "A-077".into(),
        },
        3 => ScanInput::Product("8410000000001".into()),
        _ => ScanInput::Unknown,
    }
}

/// The world around the engine: remembers what it was asked, answers when the action says so.
struct World {
    config: JourneyConfig,
    state: State,
    now: u64,
    lookups: Vec<CardToken>,
    issues: Vec<(u64, bool)>,
    prints: Vec<Uuid>,
    next_turn: u128,
    /// Issued turns (answered `TurnIssued`) and how many print outcomes each got.
    outcomes: HashMap<Uuid, u32>,
}

impl World {
    fn feed(&mut self, input: Input) {
        let (state, effects) = step(&self.config, &self.state, input, self.now);
        self.state = state;
        // The view is derived after every step too: it must not panic either.
        let _ = view(&self.config, &self.state);
        // The runtime answers the store's checks at once, as the executor does.
        let mut answers = Vec::new();
        for e in effects {
            match e {
                Effect::CheckSurvey { turn_id, label } => answers.push(Input::SurveyChecked {
                    turn_id,
                    label,
                    status: SurveyStatus::Open,
                }),
                Effect::SubmitSurvey(a) => {
                    if let Some(turn_id) = a.turn_id {
                        answers.push(Input::SurveySubmitted {
                            turn_id,
                            accepted: true,
                        });
                    }
                }
                Effect::RedeemCoupon {
                    code, card_token, ..
                } => answers.push(Input::CouponChecked {
                    code,
                    card_token,
                    outcome: CouponOutcome::Redeemed,
                }),
                Effect::RequestAssistance { .. } => answers.push(Input::AssistanceOpen(true)),
                Effect::LookupProfile { token } => self.lookups.push(token),
                Effect::IssueTurn(r) => self.issues.push((r.request_id, false)),
                Effect::PrintTicket(job) => self.prints.push(job.turn.turn_id),
                Effect::Record(Event::TicketPrinted(p)) => {
                    *self.outcomes.entry(p.turn_id).or_default() += 1
                }
                Effect::Record(Event::TicketPrintFailed(p)) => {
                    *self.outcomes.entry(p.turn_id).or_default() += 1
                }
                _ => {}
            }
        }
        for a in answers {
            self.feed(a);
        }
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::Tap(n) => self.feed(Input::CardTapped {
                token: card(n),
                reader: ReaderKind::Simulated,
            }),
            Action::Scan(n) => self.feed(Input::Scanned(scan(n))),
            Action::Touch(n) => self.feed(Input::Touch(touch(n))),
            Action::Presence(p) => self.feed(if p {
                Input::PresenceArrived
            } else {
                Input::PresenceLeft
            }),
            Action::Printer(h) => self.feed(Input::PrinterHealth(match h {
                0 => DeviceHealth::Ok,
                1 => DeviceHealth::Degraded,
                _ => DeviceHealth::Absent,
            })),
            Action::AnswerLookup { found, which } => {
                let Some(token) = pick(&self.lookups, which).cloned() else {
                    return;
                };
                let input = if found {
                    Input::ProfileFound {
                        token: token.clone(),
                        profile: CustomerProfile {
                            card_token: token,
                            display_name: "Ana".into(),
                            segment: Some("vip".into()),
                            locale: Some(Locale::En),
                            consents: vec![ConsentPurpose::Profile],
                        },
                        campaign: Some(Box::new(Campaign {
                            id: "c".into(),
                            variant: "a".into(),
                            headline: Localized::new("h", "h"),
                            ticket_line: Localized::new("t", "t"),
                            staff_script: None,
                            coupon: Some(Localized::new("10%", "10%")),
                            coupon_prefix: Some("C".into()),
                            image: None,
                        })),
                        source: ProfileSource::LocalCache,
                    }
                } else {
                    Input::ProfileNotFound { token }
                };
                self.feed(input);
            }
            Action::AnswerIssue { ok, which } => {
                // The runtime answers each request exactly once.
                let open: Vec<usize> = (0..self.issues.len())
                    .filter(|i| !self.issues[*i].1)
                    .collect();
                let Some(&i) = pick(&open, which) else { return };
                self.issues[i].1 = true;
                let request_id = self.issues[i].0;
                if ok {
                    self.next_turn += 1;
                    let turn_id = Uuid::from_u128(self.next_turn);
                    self.outcomes.insert(turn_id, 0);
                    self.feed(Input::TurnIssued(IssuedTurn {
                        request_id,
                        turn_id,
                        label: format!("A-{:03}", self.next_turn),
                        service: "A".into(),
                        position: 0,
                        estimated_wait_s: 0,
                        priority: false,
                        business_day: "2025-03-10".into(),
                        issued_at: datetime!(2025-03-10 10:00 UTC),
                        qr_payload: "KT1.x.y".into(),
                        campaign: None,
                        // Half the tickets over a customer's limit.
                        coupon_withheld: self.next_turn % 2 == 0,
                        coupon_expires_on: None,
                    }));
                } else {
                    self.feed(Input::TurnIssueFailed {
                        request_id,
                        reason: "disk full".into(),
                    });
                }
            }
            Action::AnswerPrint { ok, which } => {
                let Some(&turn_id) = pick(&self.prints, which) else {
                    return;
                };
                self.feed(if ok {
                    Input::TicketPrinted {
                        turn_id,
                        bytes: 100,
                    }
                } else {
                    Input::TicketPrintFailed {
                        turn_id,
                        reason: "paper out".into(),
                    }
                });
            }
            Action::Erase(n) => self.feed(Input::CustomerErased { token: card(n) }),
            Action::Store(false) => self.feed(Input::AssistanceOpen(false)),
            // The turn whose ticket the scans read: its survey may be open on screen.
            Action::Store(true) => self.feed(Input::TurnRatedElsewhere {
                turn_id: Uuid::from_u128(77),
            }),
            Action::Wait(ms) => {
                self.now += u64::from(ms);
                self.feed(Input::Tick);
            }
            Action::Tick => self.feed(Input::Tick),
        }
    }

    /// Nobody touches anything: the runtime only delivers the timer.
    fn idle(&mut self) {
        for _ in 0..10 {
            match self.state.deadline_ms {
                Some(at) => {
                    self.now = self.now.max(at);
                    self.feed(Input::Tick);
                }
                None => break,
            }
        }
    }
}

fn pick<T>(items: &[T], which: u8) -> Option<&T> {
    // 0 = the latest, others = older (possibly stale) ones.
    let len = items.len();
    if len == 0 {
        return None;
    }
    items.get(len - 1 - (usize::from(which) % len))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_input_sequence_ends_idle_on_attract_with_every_ticket_printed_or_failed_once(
        actions in proptest::collection::vec(action(), 0..80)
    ) {
        let config = config();
        let mut w = World {
            state: State::new(config.default_locale),
            config,
            now: 0,
            lookups: Vec::new(),
            issues: Vec::new(),
            prints: Vec::new(),
            next_turn: 0,
            outcomes: HashMap::new(),
        };
        for a in actions {
            w.act(a);
        }
        // Answer every turn still awaited (as the runtime must), then leave the kiosk alone.
        let open: Vec<usize> = (0..w.issues.len()).filter(|i| !w.issues[*i].1).collect();
        for _ in open {
            w.act(Action::AnswerIssue { ok: true, which: 0 });
        }
        w.idle();

        prop_assert_eq!(&w.state.screen, &Screen::Attract);
        prop_assert!(!w.state.holds_personal_data());
        prop_assert_eq!(w.state.locale, Locale::Es);
        prop_assert_eq!(w.state.deadline_ms, None);
        let shown = serde_json::to_string(&view(&w.config, &w.state)).expect("view serialises");
        prop_assert!(!shown.contains("Ana"));
        for (turn, n) in &w.outcomes {
            prop_assert_eq!(*n, 1, "turn {} got {} print outcomes", turn, n);
        }
    }
}
