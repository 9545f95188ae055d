//! The transition function: `(config, state, input, now) → (state, effects)`.
//!
//! Defined outcomes for the awkward cases (each has a test in `tests.rs`):
//! - **Same card twice** (re-tap, card held too long): ignored on every screen.
//! - **Another card** before a turn is requested (identifying, greeting, registration, service
//!   choice): the person at the screen is whoever tapped last, so the journey restarts for the new
//!   card and the previous customer's data is dropped.
//! - **A card while a ticket is issued or printed**, or at a goodbye whose number is shown only on
//!   screen: kept as the pending tap (latest wins) and identified as soon as that journey ends;
//!   not lost, and the previous customer keeps their screen. At a goodbye after a printed ticket
//!   the new card starts at once (the previous customer has their ticket).
//! - **A scan during registration**: ignored with a notice, the form stays as typed.
//! - **The printer failing mid-ticket**: the turn stays issued; `ticket_print_failed` is recorded
//!   and the goodbye screen shows the number and QR for longer. No answer from the printer within
//!   the timeout counts as a failure; a late answer is then ignored (staff can reprint). A printer
//!   known to be absent is not tried at all.
//! - **A turn issued after the kiosk moved on** (issuing timed out): `ticket_print_failed` with
//!   `shown_on_screen: false`, so every `ticket_issued` still has exactly one print outcome.
//! - **Timeouts** on every screen lead back to the attract screen, which holds nothing personal.
//! - **Campaigns** count one exposure per visit (the greeting and the ticket are one); an
//!   anonymous visitor's campaign comes with the turn and is shown on the ticket and the goodbye.
//! - **A coupon** scanned on any screen but the form and a ticket in the making is redeemed once
//!   in the store (the runtime checks and marks it); a second scan says it was used.
//! - **The survey** is about a served turn: scanning the ticket opens it only when the store's
//!   queue says the turn was served and not rated yet; one answer per turn, the runtime refusing
//!   a second one even when two kiosks are answered at once.
//! - **"Call an assistant"** works on every screen and changes none: one open request per
//!   kiosk (a second press says staff were called), cleared when any counter acknowledges it.
//! - **Time limits the customer waits on** ([`warns`]) show a warning `warning_ms` before they
//!   fire; "More time", typing or any touch starts the whole limit again (WCAG 2.x success
//!   criterion 2.2.1 Timing Adjustable, which EN 301 549 applies to software too). Accessible
//!   mode multiplies those limits by `accessible_factor`.

use kiosk_protocol::CardToken;
use kiosk_protocol::events::{
    CampaignShown, CardTapped, ConsentChange, ConsentPurpose, ContentPlayed, ContentSurface,
    CouponIssued, CustomerIdentified, CustomerRegistered, DeviceHealth, Event, IdentifiedBy,
    ProfileSource, SegmentCount, Surface, SurveyAnswered, TicketPrintFailed, TicketPrinted,
};
use uuid::Uuid;

use super::state::{
    ErrorKind, Notice, NoticeKind, RegistrationError, Screen, Session, Survey, Tap,
};
use super::{
    Campaign, Coupon, CouponOutcome, Customer, CustomerProfile, Effect, Input, IssuedTurn,
    JourneyConfig, KioskRole, RegistrationForm, ScanInput, State, SurveyStatus, TicketJob, Touch,
    TurnRequest, coupon_code,
};

/// The segment of visitors without a known card.
const ANONYMOUS: &str = "anonymous";

/// Coupon double reads closer than this are one redemption.
const COUPON_REPEAT_MS: u64 = 10_000;

/// Runs one input through the journey. Pure: no I/O, no clock; `now_ms` is the monotonic time.
pub fn step(
    config: &JourneyConfig,
    state: &State,
    input: Input,
    now_ms: u64,
) -> (State, Vec<Effect>) {
    let mut m = Machine {
        config,
        s: state.clone(),
        fx: Vec::new(),
        now: now_ms,
    };
    m.input(input);
    let Machine { mut s, mut fx, .. } = m;
    if s.deadline_ms != state.deadline_ms {
        // A moved deadline is a new time limit: its warning, if any, is still to come.
        s.warning_left_ms = None;
    }
    let wake = next_wake(config, &s);
    if wake != next_wake(config, state)
        && let Some(at) = wake
    {
        fx.push(Effect::WakeAt { mono_ms: at });
    }
    if s != *state {
        s.version = state.version.wrapping_add(1);
    }
    (s, fx)
}

/// Whether the time limit of the screen `state` shows is one the customer waits on, so it warns
/// before it fires and can be extended: screens where they read, choose or type, and the
/// goodbye whose number exists only on screen. Not the machines' waits (lookup, issuing,
/// printing), not a goodbye after a printed ticket (nothing is lost: the ticket is in hand).
pub fn warns(state: &State) -> bool {
    match state.screen {
        Screen::Greeting { .. }
        | Screen::OfferRegistration { .. }
        | Screen::Registering { .. }
        | Screen::ChooseService { .. }
        | Screen::SurveyOnly { .. }
        | Screen::Goodbye { printed: false, .. } => true,
        Screen::Attract => state.accessible,
        // A browse point's content moves on by itself; leaving early loses nothing.
        Screen::Identifying { .. }
        | Screen::Issuing { .. }
        | Screen::Printing { .. }
        | Screen::Goodbye { printed: true, .. }
        | Screen::Browse { .. }
        | Screen::Error { .. } => false,
    }
}

/// The whole time limit of the screen `state` shows, as "More time" restarts it; `None` for
/// screens that wait on a machine or have no limit.
pub fn time_limit(config: &JourneyConfig, state: &State) -> Option<u64> {
    let t = config.timeouts.scaled(state.accessible);
    match state.screen {
        Screen::Registering { .. } => Some(t.registration_ms),
        Screen::Greeting { .. }
        | Screen::OfferRegistration { .. }
        | Screen::ChooseService { .. }
        | Screen::SurveyOnly { .. } => Some(t.idle_ms),
        Screen::Goodbye { printed: true, .. } => Some(t.goodbye_ms),
        Screen::Goodbye { printed: false, .. } => Some(t.goodbye_unprinted_ms),
        Screen::Error { .. } => Some(t.thanks_ms),
        Screen::Attract => state.accessible.then_some(t.idle_ms),
        // A browse point's deadline is the item on screen, not a limit to restart.
        Screen::Identifying { .. }
        | Screen::Issuing { .. }
        | Screen::Printing { .. }
        | Screen::Browse { .. } => None,
    }
}

/// When the engine next needs a [`Input::Tick`]: the warning, while it is still to come, or the
/// deadline.
fn next_wake(config: &JourneyConfig, state: &State) -> Option<u64> {
    let deadline = state.deadline_ms?;
    if warns(state) && state.warning_left_ms.is_none() {
        return Some(deadline.saturating_sub(config.timeouts.warning_ms));
    }
    Some(deadline)
}

struct Machine<'a> {
    config: &'a JourneyConfig,
    s: State,
    fx: Vec<Effect>,
    now: u64,
}

impl Machine<'_> {
    fn input(&mut self, input: Input) {
        match input {
            Input::Tick => match self.s.deadline_ms {
                Some(d) if self.now >= d => self.timeout(),
                Some(d)
                    if warns(&self.s)
                        && self.s.warning_left_ms.is_none()
                        && self.now >= d.saturating_sub(self.timeouts().warning_ms) =>
                {
                    self.s.warning_left_ms = Some(d - self.now);
                }
                _ => {}
            },
            Input::AccessibilityKey => self.toggle_accessible(),
            Input::CardTapped { token, reader } => self.tap(Tap {
                token,
                reader: Some(reader),
            }),
            Input::Scanned(scan) => self.scan(scan),
            Input::PresenceArrived => self.s.presence = true,
            Input::PresenceLeft => self.s.presence = false,
            Input::PrinterHealth(h) => self.s.printer = h,
            Input::Touch(t) => self.touch(t),
            Input::ProfileFound {
                token,
                profile,
                campaign,
                source,
            } => self.profile_found(token, profile, campaign, source),
            Input::ProfileNotFound { token } => self.profile_not_found(token),
            Input::BrowseLoaded {
                visit_id,
                items,
                turn,
            } => self.browse_loaded(visit_id, items, turn),
            Input::TurnIssued(turn) => self.turn_issued(turn),
            Input::TurnIssueFailed { request_id, .. } => {
                if matches!(self.s.screen, Screen::Issuing { request_id: r, .. } if r == request_id)
                {
                    self.go(
                        Screen::Error {
                            kind: ErrorKind::IssueFailed,
                        },
                        self.timeouts().thanks_ms,
                    );
                }
            }
            Input::TicketPrinted { turn_id, bytes } => {
                if matches!(&self.s.screen, Screen::Printing { turn, .. } if turn.turn_id == turn_id)
                {
                    self.record(Event::TicketPrinted(TicketPrinted {
                        turn_id,
                        bytes,
                        reprint: false,
                    }));
                    self.goodbye(true);
                }
            }
            Input::TicketPrintFailed { turn_id, reason } => {
                if matches!(&self.s.screen, Screen::Printing { turn, .. } if turn.turn_id == turn_id)
                {
                    self.print_failed(reason);
                }
            }
            Input::SurveyChecked {
                turn_id,
                label,
                status,
            } => self.survey_checked(turn_id, label, status),
            Input::SurveySubmitted { turn_id, accepted } => {
                if !accepted
                    && matches!(&self.s.screen, Screen::SurveyOnly { turn_id: t, .. } if *t == turn_id)
                {
                    if let Some(s) = self.survey_mut() {
                        *s = Survey::Refused;
                    }
                    self.notice(NoticeKind::SurveyAlreadyAnswered);
                }
            }
            Input::CouponChecked {
                code,
                card_token,
                outcome,
            } => self.coupon_checked(code, card_token, outcome),
            Input::CustomerErased { token } => self.forget(&token),
            Input::TurnRatedElsewhere { turn_id } => {
                self.fx.push(Effect::MarkRated { turn_id });
                let asking = matches!(
                    &self.s.screen,
                    Screen::SurveyOnly { turn_id: t, survey: Survey::Asking | Survey::Scored(_), .. }
                        if *t == turn_id
                );
                if asking {
                    if let Some(s) = self.survey_mut() {
                        *s = Survey::Refused;
                    }
                    self.notice(NoticeKind::SurveyAlreadyAnswered);
                }
            }
            Input::AssistanceOpen(open) => {
                let was = self.s.assistance_called;
                self.s.assistance_called = open;
                if was && !open {
                    self.notice(NoticeKind::AssistanceComing);
                }
            }
        }
    }

    /// "Call an assistant": one request at a time per kiosk (pressing again says it again); the
    /// screen and its time limit stay, so the customer does not lose their place.
    fn call_assistant(&mut self) {
        if !self.s.assistance_called {
            let turn_id = match &self.s.screen {
                Screen::Printing { turn, .. } | Screen::Goodbye { turn, .. } => Some(turn.turn_id),
                Screen::SurveyOnly { turn_id, .. } => Some(*turn_id),
                _ => None,
            };
            self.fx.push(Effect::RequestAssistance { turn_id });
            self.s.assistance_called = true;
        }
        self.notice(NoticeKind::AssistanceCalled);
        self.extend();
    }

    // ---- transitions -------------------------------------------------------------------------

    /// The time limits as they apply now (longer in accessible mode).
    fn timeouts(&self) -> super::Timeouts {
        self.config.timeouts.scaled(self.s.accessible)
    }

    /// Starts the current screen's whole time limit again ("More time", typing, any touch).
    fn extend(&mut self) {
        if let Some(ms) = time_limit(self.config, &self.s)
            && self.s.deadline_ms.is_some()
        {
            self.s.deadline_ms = Some(self.now.saturating_add(ms));
        }
    }

    /// The keypad's start key, held: accessible mode on (with longer limits at once) or off.
    fn toggle_accessible(&mut self) {
        self.s.accessible = !self.s.accessible;
        self.s.deadline_ms = match (time_limit(self.config, &self.s), self.s.deadline_ms) {
            // On the attract screen accessible mode has its own limit, so that it ends when
            // nobody goes on; off again, the attract screen waits as before.
            (Some(ms), _) if matches!(self.s.screen, Screen::Attract) => {
                Some(self.now.saturating_add(ms))
            }
            (None, d) if matches!(self.s.screen, Screen::Attract) => {
                d.filter(|_| self.s.locale != self.config.default_locale)
            }
            (Some(ms), Some(_)) => Some(self.now.saturating_add(ms)),
            (_, d) => d,
        };
    }

    fn go(&mut self, screen: Screen, timeout_ms: u64) {
        self.s.screen = screen;
        self.s.notice = None;
        self.s.deadline_ms = Some(self.now.saturating_add(timeout_ms));
    }

    fn attract(&mut self) {
        // Nothing personal survives on the attract screen, a queued tap included.
        self.s.pending_tap = None;
        self.s.screen = Screen::Attract;
        self.s.notice = None;
        self.s.deadline_ms = None;
        self.s.locale = self.config.default_locale;
        // Accessible mode is the journey's: the next customer starts without it.
        self.s.accessible = false;
    }

    fn notice(&mut self, kind: NoticeKind) {
        self.s.notice = Some(Notice {
            kind,
            id: self.s.version.wrapping_add(1),
        });
    }

    fn record(&mut self, event: Event) {
        self.fx.push(Effect::Record(event));
    }

    /// The end of a journey: the next pending card, or the attract screen.
    fn end_journey(&mut self) {
        self.record_unfinished_survey();
        match self.s.pending_tap.take() {
            Some(tap) => self.identify(tap, IdentifiedBy::Card),
            None => self.attract(),
        }
    }

    /// A new visit begins (a tap, "continue without a card", a coupon at the attract screen).
    fn begin_visit(&mut self) {
        self.s.visits = self.s.visits.wrapping_add(1);
        // Unique per kiosk and boot (the base is a fresh UUIDv7); the counter only touches the
        // random tail, so the id stays a well-formed UUID.
        self.s.visit_id = Uuid::from_u128(self.s.visit_base.as_u128() ^ u128::from(self.s.visits));
        self.s.shown.clear();
    }

    /// Records a campaign's exposure unless it was shown already in this visit.
    fn expose(&mut self, c: &Campaign, session: &Session, surface: Surface) {
        if self.s.shown.contains(&c.id) {
            return;
        }
        self.s.shown.push(c.id.clone());
        let segment = match &session.customer {
            Some(customer) => customer.segment.clone(),
            None if session.card.is_none() => Some("anonymous".to_owned()),
            None => None,
        };
        self.record(Event::CampaignShown(CampaignShown {
            campaign_id: c.id.clone(),
            variant: c.variant.clone(),
            card_token: session.card.clone(),
            segment,
            surface,
            visit_id: Some(self.s.visit_id),
        }));
    }

    fn identify(&mut self, tap: Tap, by: IdentifiedBy) {
        self.begin_visit();
        self.fx.push(Effect::LookupProfile {
            token: tap.token.clone(),
        });
        self.go(Screen::Identifying { tap, by }, self.timeouts().lookup_ms);
    }

    fn timeout(&mut self) {
        match std::mem::replace(&mut self.s.screen, Screen::Attract) {
            Screen::Attract => self.attract(),
            Screen::Identifying { tap, .. } if self.config.role == KioskRole::Browse => {
                // Too slow to know them: the content for everyone without a card.
                if let Some(reader) = tap.reader {
                    self.record(Event::CardTapped(CardTapped {
                        card_token: tap.token.clone(),
                        reader,
                        known: false,
                    }));
                }
                self.browse(Session::default(), ANONYMOUS.to_owned());
            }
            screen @ Screen::Browse { .. } => {
                self.s.screen = screen;
                self.browse_next(None);
            }
            Screen::Identifying { tap, .. } => {
                // Too slow to greet them: they still get a turn, with their card on it.
                if let Some(reader) = tap.reader {
                    self.record(Event::CardTapped(CardTapped {
                        card_token: tap.token.clone(),
                        reader,
                        known: false,
                    }));
                }
                let session = Session {
                    card: Some(tap.token),
                    customer: None,
                };
                self.go(Screen::ChooseService { session }, self.timeouts().idle_ms);
                self.notice(NoticeKind::LookupSlow);
            }
            Screen::Printing {
                session,
                turn,
                service_name,
                coupon,
            } => {
                self.s.screen = Screen::Printing {
                    session,
                    turn,
                    service_name,
                    coupon,
                };
                self.print_failed("printer did not answer in time".to_owned());
            }
            screen @ (Screen::Goodbye { .. } | Screen::SurveyOnly { .. }) => {
                self.s.screen = screen;
                self.end_journey();
            }
            Screen::Issuing { .. } => {
                self.go(
                    Screen::Error {
                        kind: ErrorKind::IssueFailed,
                    },
                    self.timeouts().thanks_ms,
                );
            }
            Screen::Greeting { .. }
            | Screen::OfferRegistration { .. }
            | Screen::Registering { .. }
            | Screen::ChooseService { .. }
            | Screen::Error { .. } => self.end_journey(),
        }
    }

    // ---- cards and codes ---------------------------------------------------------------------

    fn current_card(&self) -> Option<&CardToken> {
        match &self.s.screen {
            Screen::Identifying { tap, .. }
            | Screen::OfferRegistration { tap }
            | Screen::Registering { tap, .. } => Some(&tap.token),
            Screen::Greeting { session }
            | Screen::ChooseService { session }
            | Screen::Issuing { session, .. }
            | Screen::Printing { session, .. }
            | Screen::Browse { session, .. }
            | Screen::Goodbye { session, .. } => session.card.as_ref(),
            Screen::Attract | Screen::SurveyOnly { .. } | Screen::Error { .. } => None,
        }
    }

    fn tap(&mut self, tap: Tap) {
        if self.current_card() == Some(&tap.token) {
            return;
        }
        match &self.s.screen {
            Screen::Issuing { .. }
            | Screen::Printing { .. }
            | Screen::Goodbye { printed: false, .. } => {
                self.s.pending_tap = Some(tap);
                self.notice(NoticeKind::TapQueued);
            }
            Screen::Goodbye { printed: true, .. } | Screen::SurveyOnly { .. } => {
                self.record_unfinished_survey();
                self.identify(tap, IdentifiedBy::Card);
            }
            Screen::Browse { .. } => {
                // The next person at the browse point: the item on screen ends here.
                self.record_browse_play();
                self.s.pending_tap = None;
                self.identify(tap, IdentifiedBy::Card);
            }
            Screen::Attract
            | Screen::Error { .. }
            | Screen::Identifying { .. }
            | Screen::Greeting { .. }
            | Screen::OfferRegistration { .. }
            | Screen::Registering { .. }
            | Screen::ChooseService { .. } => {
                // The newest tap is the person in front of the screen: a card queued earlier
                // (tapped during printing) is not greeted after them.
                self.s.pending_tap = None;
                self.identify(tap, IdentifiedBy::Card);
            }
        }
    }

    fn scan(&mut self, scan: ScanInput) {
        if matches!(
            self.s.screen,
            Screen::Registering { .. } | Screen::Identifying { .. }
        ) {
            self.notice(NoticeKind::ScanIgnored);
            return;
        }
        match scan {
            ScanInput::Product(_) => self.notice(NoticeKind::ProductNotSupported),
            ScanInput::Unknown => self.notice(NoticeKind::CodeNotRecognised),
            ScanInput::Turn { turn_id, label } => match self.s.screen {
                // On the way out: the store's queue says whether this turn can be rated now.
                Screen::Attract
                | Screen::Error { .. }
                | Screen::SurveyOnly { .. }
                | Screen::Goodbye { printed: true, .. } => {
                    self.fx.push(Effect::CheckSurvey { turn_id, label });
                }
                _ => self.notice(NoticeKind::ScanIgnored),
            },
            ScanInput::Coupon {
                code,
                campaign_id,
                card_token,
            } => self.coupon(code, campaign_id, card_token),
        }
    }

    fn coupon(&mut self, code: String, campaign_id: Option<String>, card_token: Option<CardToken>) {
        if matches!(
            self.s.screen,
            Screen::Issuing { .. } | Screen::Printing { .. }
        ) {
            self.notice(NoticeKind::ScanIgnored);
            return;
        }
        let repeat =
            self.s.last_coupon.as_ref().is_some_and(|(c, at)| {
                *c == code && self.now.saturating_sub(*at) < COUPON_REPEAT_MS
            });
        if repeat {
            // The scanner reading the same coupon twice: one redemption, said once.
            self.notice(NoticeKind::CouponRedeemed);
            return;
        }
        self.s.last_coupon = Some((code.clone(), self.now));
        self.fx.push(Effect::RedeemCoupon {
            code,
            campaign_id,
            card_token,
        });
    }

    /// The store's answer about a scanned coupon.
    fn coupon_checked(
        &mut self,
        _code: String,
        card_token: Option<CardToken>,
        outcome: CouponOutcome,
    ) {
        match outcome {
            CouponOutcome::AlreadyUsed => return self.notice(NoticeKind::CouponAlreadyUsed),
            CouponOutcome::NotValid => return self.notice(NoticeKind::CodeNotRecognised),
            CouponOutcome::Redeemed => {}
        }
        // A coupon bound to a card identifies its holder when nobody else is being served.
        match (card_token, &self.s.screen) {
            (Some(token), Screen::Attract | Screen::Error { .. }) => {
                self.identify(
                    Tap {
                        token,
                        reader: None,
                    },
                    IdentifiedBy::Coupon,
                );
                self.notice(NoticeKind::CouponRedeemed);
            }
            (None, Screen::Attract | Screen::Error { .. }) => {
                self.begin_visit();
                self.go(
                    Screen::ChooseService {
                        session: Session::default(),
                    },
                    self.timeouts().idle_ms,
                );
                self.notice(NoticeKind::CouponRedeemed);
            }
            _ => self.notice(NoticeKind::CouponRedeemed),
        }
    }

    fn profile_found(
        &mut self,
        token: CardToken,
        profile: CustomerProfile,
        campaign: Option<Box<Campaign>>,
        source: ProfileSource,
    ) {
        let Screen::Identifying { tap, by } = &self.s.screen else {
            return;
        };
        if tap.token != token || profile.card_token != token {
            return;
        }
        let (tap, by) = (tap.clone(), *by);
        if let Some(reader) = tap.reader {
            self.record(Event::CardTapped(CardTapped {
                card_token: token.clone(),
                reader,
                known: true,
            }));
        }
        // Offers are shown only to customers who agreed to a profile.
        let campaign = campaign
            .filter(|_| profile.consents.contains(&ConsentPurpose::Profile))
            .map(|c| *c);
        if let Some(locale) = profile.locale {
            self.s.locale = locale;
        }
        let customer = Customer {
            card_token: token.clone(),
            name: profile.display_name,
            segment: profile.segment,
            consents: profile.consents,
            campaign,
            source,
        };
        self.greet(customer, by);
    }

    fn greet(&mut self, customer: Customer, by: IdentifiedBy) {
        self.record(Event::CustomerIdentified(CustomerIdentified {
            card_token: Some(customer.card_token.clone()),
            by,
            source: customer.source,
            segment: customer.segment.clone(),
        }));
        let campaign = customer.campaign.clone();
        let segment = customer.segment.clone();
        let session = Session {
            card: Some(customer.card_token.clone()),
            customer: Some(customer),
        };
        if self.config.role == KioskRole::Browse {
            // A browse point shows the segment's content, not one campaign's greeting; a
            // member without a segment yet is new.
            return self.browse(session, segment.unwrap_or_else(|| "new".to_owned()));
        }
        if let Some(c) = &campaign {
            self.expose(c, &session, Surface::Screen);
        }
        self.go(Screen::Greeting { session }, self.timeouts().idle_ms);
    }

    fn profile_not_found(&mut self, token: CardToken) {
        let Screen::Identifying { tap, .. } = &self.s.screen else {
            return;
        };
        if tap.token != token {
            return;
        }
        let tap = tap.clone();
        if let Some(reader) = tap.reader {
            self.record(Event::CardTapped(CardTapped {
                card_token: token,
                reader,
                known: false,
            }));
        }
        if self.config.role == KioskRole::Browse {
            // Registration is the queue kiosk's: an unknown card sees what visitors see.
            return self.browse(Session::default(), ANONYMOUS.to_owned());
        }
        self.go(Screen::OfferRegistration { tap }, self.timeouts().idle_ms);
    }

    // ---- browse point ------------------------------------------------------------------------

    /// A browse visit begins: the content for `segment` is asked for.
    fn browse(&mut self, session: Session, segment: String) {
        self.fx.push(Effect::LoadBrowse {
            visit_id: self.s.visit_id,
            segment: segment.clone(),
            card_token: session.card.clone(),
        });
        self.go(
            Screen::Browse {
                session,
                segment,
                items: None,
                turn: None,
                index: 0,
                since_ms: self.now,
            },
            self.timeouts().lookup_ms,
        );
    }

    /// The runtime's content for the visit on screen: the first item plays (or, with nothing
    /// for the segment, the turn and a word for the idle time).
    fn browse_loaded(
        &mut self,
        visit_id: Uuid,
        loaded: Vec<super::BrowseItem>,
        loaded_turn: Option<super::BrowseTurn>,
    ) {
        if visit_id != self.s.visit_id {
            return;
        }
        let now = self.now;
        let idle = self.timeouts().idle_ms;
        let Screen::Browse {
            items,
            turn,
            index,
            since_ms,
            ..
        } = &mut self.s.screen
        else {
            return;
        };
        if items.is_some() {
            return;
        }
        let first = loaded.first().map(|i| u64::from(i.duration_s) * 1_000);
        *items = Some(loaded);
        *turn = loaded_turn;
        *index = 0;
        *since_ms = now;
        self.s.deadline_ms = Some(now.saturating_add(first.unwrap_or(idle)));
    }

    /// Journals the item on screen as played, for as long as it was (at most its duration).
    fn record_browse_play(&mut self) {
        let Screen::Browse {
            session,
            segment,
            items: Some(items),
            index,
            since_ms,
            ..
        } = &self.s.screen
        else {
            return;
        };
        let Some(item) = items.get(*index) else {
            return;
        };
        let event = Event::ContentPlayed(ContentPlayed {
            campaign_id: item.campaign_id.clone(),
            content_id: item.content_id.clone(),
            surface: ContentSurface::Browse,
            duration_ms: self
                .now
                .saturating_sub(*since_ms)
                .min(u64::from(item.duration_s) * 1_000),
            audience: vec![SegmentCount {
                segment: segment.clone(),
                count: 1,
            }],
            card_token: session.card.clone(),
        });
        self.record(event);
    }

    /// The next item, or the end of the visit after the last (`None`: the item's time is up,
    /// and it is journaled here; `Some`: the caller journaled it).
    fn browse_next(&mut self, recorded: Option<()>) {
        if recorded.is_none() {
            self.record_browse_play();
        }
        let now = self.now;
        let Screen::Browse {
            items: Some(items),
            index,
            since_ms,
            ..
        } = &mut self.s.screen
        else {
            // Content never came: back to the start.
            return self.end_journey();
        };
        let next = *index + 1;
        let Some(item) = items.get(next) else {
            return self.end_journey();
        };
        let duration = u64::from(item.duration_s) * 1_000;
        *index = next;
        *since_ms = now;
        self.s.deadline_ms = Some(now.saturating_add(duration));
    }

    fn forget(&mut self, token: &CardToken) {
        if self
            .s
            .pending_tap
            .as_ref()
            .is_some_and(|t| t.token == *token)
        {
            self.s.pending_tap = None;
        }
        if self.current_card() != Some(token) {
            return;
        }
        match &mut self.s.screen {
            Screen::Issuing { session, .. }
            | Screen::Printing { session, .. }
            | Screen::Goodbye { session, .. } => {
                // The ticket goes on, without them.
                *session = Session::default();
            }
            // Their journey ends; a card queued behind them is served next.
            _ => self.end_journey(),
        }
    }

    // ---- touches -----------------------------------------------------------------------------

    fn touch(&mut self, touch: Touch) {
        let t = self.timeouts();
        match touch {
            Touch::SetLocale { locale } => {
                self.s.locale = locale;
                // A language picked on the attract screen reverts when nobody goes on.
                if matches!(self.s.screen, Screen::Attract) {
                    self.s.deadline_ms = (locale != self.config.default_locale
                        || self.s.accessible)
                        .then(|| self.now.saturating_add(t.idle_ms));
                } else {
                    self.extend();
                }
            }
            Touch::Activity | Touch::MoreTime => self.extend(),
            Touch::CallAssistant => self.call_assistant(),
            Touch::Start if self.config.role == KioskRole::Browse => {
                if matches!(self.s.screen, Screen::Attract | Screen::Error { .. }) {
                    self.begin_visit();
                    self.browse(Session::default(), ANONYMOUS.to_owned());
                }
            }
            Touch::Next => {
                if matches!(self.s.screen, Screen::Browse { items: Some(_), .. }) {
                    self.record_browse_play();
                    self.browse_next(Some(()));
                }
            }
            Touch::Start => {
                if matches!(self.s.screen, Screen::Attract | Screen::Error { .. }) {
                    self.begin_visit();
                    self.go(
                        Screen::ChooseService {
                            session: Session::default(),
                        },
                        t.idle_ms,
                    );
                }
            }
            Touch::Continue => {
                if let Screen::Greeting { session } = &self.s.screen {
                    let session = session.clone();
                    self.go(Screen::ChooseService { session }, t.idle_ms);
                }
            }
            Touch::Register => {
                if let Screen::OfferRegistration { tap } = &self.s.screen {
                    let tap = tap.clone();
                    self.go(Screen::Registering { tap, error: None }, t.registration_ms);
                }
            }
            Touch::SkipRegistration => {
                // An unregistered card is not put on the ticket: nobody agreed to be followed.
                if matches!(
                    self.s.screen,
                    Screen::OfferRegistration { .. } | Screen::Registering { .. }
                ) {
                    self.go(
                        Screen::ChooseService {
                            session: Session::default(),
                        },
                        t.idle_ms,
                    );
                }
            }
            Touch::SubmitRegistration(form) => self.register(form),
            Touch::ChooseService { service, priority } => self.choose(service, priority),
            Touch::SurveyScore { score } => {
                if score <= 10
                    && let Some(survey) = self.survey_mut()
                    && matches!(*survey, Survey::Asking | Survey::Scored(_))
                {
                    *survey = Survey::Scored(score);
                    let at = self.now.saturating_add(t.idle_ms);
                    self.s.deadline_ms = Some(self.s.deadline_ms.map_or(at, |d| d.max(at)));
                }
            }
            Touch::SurveyReason { reason } => {
                let reason =
                    reason.filter(|r| self.config.survey_reasons.iter().any(|c| c.id == *r));
                if let Some(Survey::Scored(score)) = self.survey_mut().copied() {
                    self.record_survey(score, reason);
                    self.s.deadline_ms = Some(self.now.saturating_add(t.thanks_ms));
                }
            }
            Touch::Done => {
                if matches!(self.s.screen, Screen::Browse { .. }) {
                    self.record_browse_play();
                    self.end_journey();
                } else if matches!(
                    self.s.screen,
                    Screen::Goodbye { .. } | Screen::SurveyOnly { .. } | Screen::Error { .. }
                ) {
                    self.end_journey();
                }
            }
            Touch::Cancel => match self.s.screen {
                Screen::Issuing { .. } | Screen::Printing { .. } | Screen::Attract => {}
                Screen::Browse { .. } => {
                    self.record_browse_play();
                    self.end_journey();
                }
                _ => self.end_journey(),
            },
        }
    }

    fn register(&mut self, form: RegistrationForm) {
        let Screen::Registering { tap, .. } = &self.s.screen else {
            return;
        };
        let tap = tap.clone();
        let consents: Vec<ConsentPurpose> = self
            .config
            .consents
            .iter()
            .map(|p| p.purpose)
            .filter(|p| form.consents.contains(p))
            .collect();
        let validated = validate(&form, &consents);
        let (name, email, phone) = match validated {
            Ok(v) => v,
            Err(error) => {
                self.s.screen = Screen::Registering {
                    tap,
                    error: Some(error),
                };
                self.s.deadline_ms = Some(self.now.saturating_add(self.timeouts().registration_ms));
                return;
            }
        };
        let locale = self.s.locale;
        // Contact details are kept only with the consent to be contacted that way.
        let email = email.filter(|_| consents.contains(&ConsentPurpose::MarketingEmail));
        let phone = phone.filter(|_| {
            consents.contains(&ConsentPurpose::MarketingSms)
                || consents.contains(&ConsentPurpose::TurnSms)
        });
        self.record(Event::CustomerRegistered(CustomerRegistered {
            card_token: tap.token.clone(),
            display_name: name.clone(),
            email,
            phone,
            locale: locale.tag().to_owned(),
        }));
        for policy in self
            .config
            .consents
            .iter()
            .filter(|p| consents.contains(&p.purpose))
        {
            self.fx
                .push(Effect::Record(Event::ConsentGiven(ConsentChange {
                    card_token: tap.token.clone(),
                    purpose: policy.purpose,
                    policy_version: policy.version.clone(),
                    policy_sha256: policy.sha256(locale),
                })));
        }
        let profile = CustomerProfile {
            card_token: tap.token.clone(),
            display_name: name.clone(),
            segment: Some("new".to_owned()),
            locale: Some(locale),
            consents: consents.clone(),
        };
        self.fx.push(Effect::SaveProfile(profile));
        let customer = Customer {
            card_token: tap.token,
            name,
            segment: Some("new".to_owned()),
            consents,
            campaign: None,
            source: ProfileSource::JustRegistered,
        };
        self.greet(customer, IdentifiedBy::Card);
    }

    fn choose(&mut self, service: String, priority: bool) {
        let Screen::ChooseService { session } = &self.s.screen else {
            return;
        };
        let Some(def) = self.config.services.iter().find(|s| s.letter == service) else {
            return;
        };
        if priority && !def.priority_allowed {
            return;
        }
        let session = session.clone();
        let request_id = self.s.next_request;
        self.s.next_request = request_id.wrapping_add(1);
        let campaign_id = session
            .customer
            .as_ref()
            .and_then(|c| c.campaign.as_ref())
            .map(|c| c.id.clone());
        let anonymous = session.card.is_none() && session.customer.is_none();
        self.fx.push(Effect::IssueTurn(TurnRequest {
            request_id,
            service: def.letter.clone(),
            priority,
            card_token: session.card.clone(),
            locale: self.s.locale,
            campaign_id,
            visit_id: self.s.visit_id,
            anonymous,
        }));
        self.go(
            Screen::Issuing {
                session,
                request_id,
            },
            self.timeouts().issuing_ms,
        );
    }

    // ---- tickets -----------------------------------------------------------------------------

    fn turn_issued(&mut self, turn: IssuedTurn) {
        let session = match &self.s.screen {
            Screen::Issuing {
                session,
                request_id,
            } if *request_id == turn.request_id => session.clone(),
            _ => {
                if turn.request_id < self.s.next_request {
                    // We asked for it, but gave up waiting: nobody will take this ticket.
                    self.record(Event::TicketPrintFailed(TicketPrintFailed {
                        turn_id: turn.turn_id,
                        reason: "the kiosk moved on before the turn was issued".to_owned(),
                        shown_on_screen: false,
                    }));
                }
                return;
            }
        };
        let locale = self.s.locale;
        let service_name = self
            .config
            .services
            .iter()
            .find(|s| s.letter == turn.service)
            .map(|s| s.name.get(locale).to_owned())
            .unwrap_or_else(|| turn.service.clone());
        // A customer's campaign came with their profile; an anonymous visitor's with the turn.
        let campaign = match &session.customer {
            Some(c) => c.campaign.clone(),
            None if session.card.is_none() => turn.campaign.as_deref().cloned(),
            None => None,
        };
        // The campaign's coupon, unless the store's rules keep it from this turn (its card
        // holder had the most coupons of the campaign it allows).
        let coupon = campaign
            .as_ref()
            .filter(|_| !turn.coupon_withheld)
            .and_then(|c| {
                let text = c.coupon.clone()?;
                let prefix = c.coupon_prefix.clone().unwrap_or_else(|| c.id.clone());
                Some(Coupon {
                    code: coupon_code(&prefix, &c.variant, turn.turn_id),
                    campaign_id: c.id.clone(),
                    variant: c.variant.clone(),
                    text,
                    expires_on: turn.coupon_expires_on,
                })
            });
        if let Some(c) = &campaign {
            self.expose(c, &session, Surface::Ticket);
        }
        if let Some(cp) = &coupon {
            self.record(Event::CouponIssued(CouponIssued {
                coupon_code: cp.code.clone(),
                campaign_id: Some(cp.campaign_id.clone()),
                variant: Some(cp.variant.clone()),
                card_token: session.card.clone(),
                turn_id: Some(turn.turn_id),
            }));
        }
        let job = TicketJob {
            turn: turn.clone(),
            service_name: service_name.clone(),
            locale,
            campaign_line: campaign
                .as_ref()
                .map(|c| c.ticket_line.get(locale).to_owned()),
            coupon: coupon.clone(),
            ticket_note: self
                .config
                .ticket_notes
                .get(&turn.service)
                .map(|n| n.get(locale).to_owned()),
        };
        self.go(
            Screen::Printing {
                session,
                turn,
                service_name,
                coupon,
            },
            self.timeouts().printing_ms,
        );
        if self.s.printer == DeviceHealth::Absent {
            self.print_failed("printer unavailable".to_owned());
            self.notice(NoticeKind::PrinterDown);
        } else {
            self.fx.push(Effect::PrintTicket(job));
        }
    }

    fn print_failed(&mut self, reason: String) {
        let Screen::Printing { turn, .. } = &self.s.screen else {
            return;
        };
        let turn_id = turn.turn_id;
        self.record(Event::TicketPrintFailed(TicketPrintFailed {
            turn_id,
            reason,
            shown_on_screen: true,
        }));
        self.goodbye(false);
    }

    fn goodbye(&mut self, printed: bool) {
        let Screen::Printing {
            session,
            turn,
            service_name,
            coupon,
        } = std::mem::replace(&mut self.s.screen, Screen::Attract)
        else {
            return;
        };
        let t = self.timeouts();
        let ms = if printed {
            t.goodbye_ms
        } else {
            t.goodbye_unprinted_ms
        };
        self.go(
            Screen::Goodbye {
                session,
                turn,
                service_name,
                coupon,
                printed,
            },
            ms,
        );
    }

    // ---- survey ------------------------------------------------------------------------------

    /// The store's answer about a scanned ticket: the survey opens only for a served turn not
    /// rated yet; otherwise a kind word and the screen stays.
    fn survey_checked(&mut self, turn_id: Uuid, label: String, status: SurveyStatus) {
        if !matches!(
            self.s.screen,
            Screen::Attract
                | Screen::Error { .. }
                | Screen::SurveyOnly { .. }
                | Screen::Goodbye { printed: true, .. }
        ) {
            return;
        }
        match status {
            SurveyStatus::Open => {
                self.record_unfinished_survey();
                self.go(
                    Screen::SurveyOnly {
                        turn_id,
                        label,
                        survey: Survey::Asking,
                    },
                    self.timeouts().idle_ms,
                );
            }
            SurveyStatus::NotServed => self.notice(NoticeKind::SurveyNotServedYet),
            SurveyStatus::AlreadyAnswered => self.notice(NoticeKind::SurveyAlreadyAnswered),
            SurveyStatus::Closed => self.notice(NoticeKind::SurveyClosed),
            SurveyStatus::Unknown => self.notice(NoticeKind::CodeNotRecognised),
        }
    }

    fn survey_mut(&mut self) -> Option<&mut Survey> {
        match &mut self.s.screen {
            Screen::SurveyOnly { survey, .. } => Some(survey),
            _ => None,
        }
    }

    /// Hands the answer to the runtime, which records it only if the turn's one answer is still
    /// open (answered with [`Input::SurveySubmitted`]).
    fn record_survey(&mut self, score: u8, reason: Option<String>) {
        let Screen::SurveyOnly { turn_id, .. } = &self.s.screen else {
            return;
        };
        let turn_id = *turn_id;
        self.fx.push(Effect::SubmitSurvey(SurveyAnswered {
            turn_id: Some(turn_id),
            score,
            reason,
            card_token: None,
        }));
        if let Some(s) = self.survey_mut() {
            *s = Survey::Done;
        }
    }

    /// A score given without a reason still counts when the customer walks away.
    fn record_unfinished_survey(&mut self) {
        if let Some(Survey::Scored(score)) = self.survey_mut().copied() {
            self.record_survey(score, None);
        }
    }
}

/// Checks a registration form: trimmed name, optional email and phone, profile consent.
fn validate(
    form: &RegistrationForm,
    consents: &[ConsentPurpose],
) -> Result<(String, Option<String>, Option<String>), RegistrationError> {
    let name = form.name.trim();
    if name.is_empty() {
        return Err(RegistrationError::NameMissing);
    }
    if name.chars().count() > 60 || name.chars().any(char::is_control) {
        return Err(RegistrationError::NameInvalid);
    }
    let email = form
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if let Some(e) = email {
        let ok = e.len() <= 254
            && !e.chars().any(|c| c.is_whitespace() || c.is_control())
            && e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !ok {
            return Err(RegistrationError::EmailInvalid);
        }
    }
    let phone = form
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if let Some(p) = phone {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        let ok = (6..=20).contains(&digits)
            && p.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
        if !ok {
            return Err(RegistrationError::PhoneInvalid);
        }
    }
    if !consents.contains(&ConsentPurpose::Profile) {
        return Err(RegistrationError::ProfileConsentRequired);
    }
    Ok((
        name.to_owned(),
        email.map(str::to_owned),
        phone.map(str::to_owned),
    ))
}
