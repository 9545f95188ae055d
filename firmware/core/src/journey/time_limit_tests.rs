//! Time limits on virtual time: the warning before a screen times out, "More time", typing that
//! keeps the registration form alive, and accessible mode's longer limits.

use kiosk_protocol::events::ReaderKind;

use super::tests::{card, config};
use super::*;

/// The engine on a virtual clock, sending a tick at every wake-up it asks for.
struct Clock {
    config: JourneyConfig,
    state: State,
    now: u64,
    wake: Option<u64>,
}

impl Clock {
    fn new() -> Self {
        let config = config();
        Clock {
            state: State::new(config.default_locale),
            config,
            now: 0,
            wake: None,
        }
    }

    fn send(&mut self, input: Input) {
        let (state, fx) = step(&self.config, &self.state, input, self.now);
        self.state = state;
        for e in fx {
            if let Effect::WakeAt { mono_ms } = e {
                self.wake = Some(mono_ms);
            }
        }
    }

    fn touch(&mut self, t: Touch) {
        self.send(Input::Touch(t));
    }

    /// Lets `ms` of virtual time pass, ticking at each wake-up asked for on the way.
    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        while let Some(at) = self.wake.filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.wake = None;
            self.send(Input::Tick);
        }
        self.now = end;
    }

    fn screen(&self) -> &'static str {
        match view(&self.config, &self.state).body {
            ScreenBody::Attract { .. } => "attract",
            ScreenBody::ChooseService { .. } => "choose_service",
            ScreenBody::Registering { .. } => "registering",
            ScreenBody::OfferRegistration => "offer_registration",
            ScreenBody::Goodbye { .. } => "goodbye",
            ScreenBody::Identifying => "identifying",
            _ => "other",
        }
    }

    fn warning(&self) -> Option<u32> {
        view(&self.config, &self.state)
            .time_warning
            .map(|w| w.seconds_left)
    }
}

#[test]
fn the_warning_appears_warning_ms_before_the_service_choice_times_out_and_more_time_extends_it() {
    let mut k = Clock::new();
    let t = k.config.timeouts;
    k.touch(Touch::Start);
    assert_eq!(k.screen(), "choose_service");
    k.advance(t.idle_ms - t.warning_ms - 1);
    assert_eq!(k.warning(), None, "no warning before its time");
    k.advance(1);
    assert_eq!(
        k.warning(),
        Some(u32::try_from(t.warning_ms / 1000).unwrap()),
        "the warning shows the seconds left"
    );
    assert_eq!(k.screen(), "choose_service");
    k.advance(t.warning_ms - 1);
    k.touch(Touch::MoreTime);
    assert_eq!(k.warning(), None, "More time hides the warning");
    k.advance(t.idle_ms - t.warning_ms - 1);
    assert_eq!(
        k.screen(),
        "choose_service",
        "the whole limit started again"
    );
    assert_eq!(k.warning(), None);
    k.advance(1);
    assert!(k.warning().is_some(), "and warns again before it ends");
    k.advance(t.warning_ms);
    assert_eq!(
        k.screen(),
        "attract",
        "unanswered, the warning ends the screen"
    );
}

#[test]
fn typing_in_the_registration_form_keeps_it_alive() {
    let mut k = Clock::new();
    let t = k.config.timeouts;
    k.send(Input::CardTapped {
        token: card(7),
        reader: ReaderKind::Mfrc522,
    });
    k.send(Input::ProfileNotFound { token: card(7) });
    k.touch(Touch::Register);
    assert_eq!(k.screen(), "registering");
    // Someone typing slowly for three times the form's limit: the page reports activity every
    // 10 s while keys are pressed.
    for _ in 0..(3 * t.registration_ms / 10_000) {
        k.advance(10_000);
        k.touch(Touch::Activity);
        assert_eq!(k.screen(), "registering");
        assert_eq!(k.warning(), None, "typing never lets the warning appear");
    }
    k.advance(t.registration_ms - t.warning_ms);
    assert!(
        k.warning().is_some(),
        "once typing stops, the warning comes"
    );
    k.touch(Touch::Activity);
    assert_eq!(k.warning(), None, "and a key press takes it away");
    assert_eq!(k.screen(), "registering");
}

#[test]
fn machine_waits_never_warn() {
    let mut k = Clock::new();
    k.send(Input::CardTapped {
        token: card(3),
        reader: ReaderKind::Mfrc522,
    });
    assert_eq!(k.screen(), "identifying");
    k.advance(k.config.timeouts.lookup_ms - 1);
    assert_eq!(k.warning(), None, "the lookup is the machine's wait");
}

#[test]
fn accessible_mode_multiplies_the_customers_limits_and_ends_at_the_attract_screen() {
    let mut k = Clock::new();
    let t = k.config.timeouts;
    let factor = u64::from(t.accessible_factor);
    assert!(factor > 1, "accessible mode gives more time by default");
    k.send(Input::AccessibilityKey);
    assert!(k.state.accessible);
    assert!(view(&k.config, &k.state).accessible);
    assert_eq!(
        k.screen(),
        "attract",
        "turning it on does not leave the screen"
    );
    k.touch(Touch::Start);
    k.advance(t.idle_ms * factor - t.warning_ms - 1);
    assert_eq!(
        k.screen(),
        "choose_service",
        "still there at the normal limit"
    );
    assert_eq!(k.warning(), None);
    k.advance(1);
    assert!(k.warning().is_some());
    k.advance(t.warning_ms);
    assert_eq!(k.screen(), "attract");
    assert!(!k.state.accessible, "the next customer starts without it");
}

#[test]
fn accessible_mode_turned_on_mid_screen_lengthens_that_screen_and_a_second_hold_turns_it_off() {
    let mut k = Clock::new();
    let t = k.config.timeouts;
    k.touch(Touch::Start);
    k.advance(t.idle_ms - t.warning_ms);
    assert!(k.warning().is_some());
    k.send(Input::AccessibilityKey);
    assert_eq!(k.warning(), None, "the longer limit starts at once");
    assert_eq!(
        k.state.deadline_ms,
        Some(k.now + t.idle_ms * u64::from(t.accessible_factor))
    );
    k.send(Input::AccessibilityKey);
    assert!(!k.state.accessible);
    assert_eq!(k.state.deadline_ms, Some(k.now + t.idle_ms));
}

#[test]
fn accessible_mode_left_on_at_the_attract_screen_ends_after_a_warning_when_nobody_goes_on() {
    let mut k = Clock::new();
    let t = k.config.timeouts;
    k.send(Input::AccessibilityKey);
    let limit = t.idle_ms * u64::from(t.accessible_factor);
    k.advance(limit - t.warning_ms);
    assert!(
        k.warning().is_some(),
        "the attract screen warns in accessible mode"
    );
    k.advance(t.warning_ms);
    assert!(!k.state.accessible);
    assert_eq!(k.state.deadline_ms, None);
}

#[test]
fn a_goodbye_after_a_printed_ticket_does_not_warn_but_any_touch_extends_it() {
    let mut k = Clock::new();
    let t = k.config.timeouts;
    k.touch(Touch::Start);
    k.touch(Touch::ChooseService {
        service: "A".into(),
        priority: false,
    });
    let Screen::Issuing { request_id, .. } = k.state.screen else {
        panic!("issuing expected");
    };
    k.send(Input::TurnIssued(IssuedTurn {
        request_id,
        turn_id: uuid::Uuid::from_u128(9),
        label: "A-009".into(),
        service: "A".into(),
        position: 0,
        estimated_wait_s: 0,
        priority: false,
        business_day: "2025-03-10".into(),
        issued_at: time::macros::datetime!(2025-03-10 10:00 +01:00),
        qr_payload: "KT1.x.y".into(),
        campaign: None,
        coupon_withheld: false,
        coupon_expires_on: None,
    }));
    k.send(Input::TicketPrinted {
        turn_id: uuid::Uuid::from_u128(9),
        bytes: 100,
    });
    assert_eq!(k.screen(), "goodbye");
    k.advance(t.goodbye_ms - 1);
    assert_eq!(
        k.warning(),
        None,
        "the ticket is in hand: nothing to warn about"
    );
    k.touch(Touch::MoreTime);
    k.advance(t.goodbye_ms - 1);
    assert_eq!(
        k.screen(),
        "goodbye",
        "a touch started the goodbye's limit again"
    );
    k.advance(1);
    assert_eq!(k.screen(), "attract");
}

mod props {
    use proptest::prelude::*;

    use super::*;

    /// What a customer (or the clock) does next.
    #[derive(Debug, Clone)]
    enum Act {
        Wait(u64),
        Touch(Touch),
        HoldStartKey,
        Tap(u8),
        NotFound(u8),
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            4 => (0u64..120_000).prop_map(Act::Wait),
            1 => Just(Act::Touch(Touch::Start)),
            1 => Just(Act::Touch(Touch::Activity)),
            1 => Just(Act::Touch(Touch::MoreTime)),
            1 => Just(Act::Touch(Touch::Register)),
            1 => Just(Act::Touch(Touch::Cancel)),
            1 => Just(Act::Touch(Touch::SetLocale { locale: Locale::En })),
            1 => Just(Act::HoldStartKey),
            1 => (1u8..4).prop_map(Act::Tap),
            1 => (1u8..4).prop_map(Act::NotFound),
        ]
    }

    proptest! {
        /// Whatever happens, a screen the customer waits on never times out without its warning
        /// having shown first, and the warning never shows before `warning_ms` ahead.
        #[test]
        fn a_customers_time_limit_never_ends_without_a_warning_first(
            acts in proptest::collection::vec(act(), 1..60)
        ) {
            let mut k = Clock::new();
            let lead = k.config.timeouts.warning_ms;
            for a in acts {
                match a {
                    Act::Wait(ms) => {
                        let end = k.now + ms;
                        while let Some(at) = k.wake.filter(|at| *at <= end) {
                            k.now = k.now.max(at);
                            k.wake = None;
                            let before = k.state.clone();
                            k.send(Input::Tick);
                            let timed_out = before.deadline_ms.is_some_and(|d| k.now >= d);
                            if timed_out && warns(&before) {
                                prop_assert!(
                                    before.warning_left_ms.is_some(),
                                    "{:?} timed out without a warning", before.screen
                                );
                            }
                            if let (Some(left), Some(d)) = (k.state.warning_left_ms, k.state.deadline_ms) {
                                prop_assert!(left <= lead && d - k.now == left);
                            }
                        }
                        k.now = end;
                        prop_assert!(
                            k.state.deadline_ms.is_none_or(|d| d > end),
                            "{:?}: its deadline passed without a wake-up to end it", k.state.screen
                        );
                    }
                    Act::Touch(t) => k.touch(t),
                    Act::HoldStartKey => k.send(Input::AccessibilityKey),
                    Act::Tap(n) => k.send(Input::CardTapped {
                        token: card(n),
                        reader: ReaderKind::Mfrc522,
                    }),
                    Act::NotFound(n) => k.send(Input::ProfileNotFound { token: card(n) }),
                }
                prop_assert!(
                    !k.state.accessible || k.state.deadline_ms.is_some(),
                    "accessible mode always has a limit that ends it"
                );
            }
        }
    }
}
