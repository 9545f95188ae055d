//! The executor: the task that runs the journey's effects, and the only owner of the journey
//! state and the turn queue. It takes inputs (device threads, screen touches, staff commands
//! ([`staff`]), its own timer), steps the pure journey state machine
//! (`kiosk_core::journey::step`), carries out the effects (journal, caches, queue, printer) and
//! publishes the screen and the queue board.
//!
//! One task owns everything that changes, so there are no locks around the journey or the queue
//! and every change is journaled in the order it happened.

pub mod audience;
pub mod remote_config;
pub mod staff;

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiosk_drivers::Health;
use kiosk_drivers::printer::{self, Language, Report, ReportRow, ReportTable, Ticket};
use kiosk_drivers::scanner::{CodeKey, TurnTicket, code};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::{
    AssistanceAcknowledged, AssistanceRequested, AssistanceSource, CouponRedeemed, SurveyAnswered,
};
use kiosk_protocol::events::{DeviceKind, DeviceStatusChanged, Event, ProfileSource};
use kiosk_protocol::wire::{Campaign as WireCampaign, ConsentFlags, Profile};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::devices::{DeviceHealthMap, DeviceMsg, PrintJob};
use crate::setup::StoreTime;
use kiosk_core::journey::{
    self, Campaign, CouponOutcome, CustomerProfile, Effect, Input, IssuedTurn, JourneyConfig,
    Locale, Localized, ScreenView, State, SurveyStatus, TicketJob, TurnRequest,
};
use kiosk_core::queue::{
    AssistanceNote, Change, ConflictNote, CustomerNote, IssueRequest, Numbering, QueueBoard,
    ServiceDay,
};
use kiosk_journal::store_db::Series;
use kiosk_store::{Hlc, Step, StoreOp, StoreQueue};
use time::OffsetDateTime;

use crate::store::{StoreLink, StoreMsg};
use kiosk_journal::JournalError;
use kiosk_journal::db::{DbError, KioskDb};
use staff::{StaffAck, StaffCommand, StaffRequest, StepInTurn};

/// Who the kiosk is, for tickets and signed QR codes.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Store id at the CRM.
    pub store_id: String,
    /// Store name printed on tickets.
    pub store_name: String,
    /// Kiosk id.
    pub kiosk_id: String,
    /// The kiosk as staff know it (`kiosk.place_name`), on the counter pages' assistance alerts.
    pub place_name: String,
}

/// Everything the executor task needs.
pub struct Executor {
    /// Journey settings.
    pub config: JourneyConfig,
    /// The kiosk database: journal and caches.
    pub db: KioskDb,
    /// The store's queue (every kiosk's steps, merged) and this kiosk's link to the others.
    pub store: StoreState,
    /// Store time and the monotonic clock.
    pub time: StoreTime,
    /// Who the kiosk is.
    pub identity: Identity,
    /// Key of the turn tickets' QR codes.
    pub turn_key: CodeKey,
    /// Where the ticket's QR links to (`<base>/t/<signed turn>`), `crm.public_url` or `crm.url`.
    pub ticket_link_base: String,
    /// Key of the coupons' QR codes (every kiosk of the tenant verifies them).
    pub coupon_key: CodeKey,
    /// Jobs for the printer thread.
    pub printer: std_mpsc::Sender<PrintJob>,
    /// The screen, after every step.
    pub screen: watch::Sender<ScreenView>,
    /// The queue board, after every queue change.
    pub board: watch::Sender<QueueBoard>,
    /// Device health, for the status page.
    pub health: watch::Sender<DeviceHealthMap>,
    /// The QR payload of the last ticket issued (the demo's control panel scans it).
    pub last_ticket_qr: Arc<Mutex<Option<String>>>,
    /// The executor loop's heartbeat (the systemd watchdog is petted only while it beats).
    pub beat: crate::service::Beat,
    /// Live lookups at the CRM of cards the cache does not know (`None`: cache only).
    pub crm: Option<Arc<kiosk_sync::ProfileLookup>>,
    /// Who is in the store: the people counter's tally and the store picture.
    pub audience: audience::Audience,
    /// Store configurations from the CRM (`None`: `site.toml` alone, as in unit tests).
    pub remote: Option<remote_config::RemoteConfig>,
}

/// The store layer as the executor holds it.
pub struct StoreState {
    /// Every kiosk's queue steps and their fold.
    pub replica: StoreQueue,
    /// This kiosk's hybrid logical clock.
    pub hlc: Hlc,
    /// Sequence of this kiosk's latest own op.
    pub seq: u64,
    /// The link to the other kiosks.
    pub link: Arc<StoreLink>,
}

/// How long a live lookup may take: half the journey's lookup timeout, at most a second (a
/// customer at the screen is waiting).
fn crm_bound(lookup_ms: u64) -> Duration {
    Duration::from_millis((lookup_ms / 2).min(1_000))
}

/// What the CRM answered to a live lookup.
enum CrmAnswer {
    Found(Profile),
    NotFound,
}

struct Run {
    e: Executor,
    state: State,
    wake_at: Option<u64>,
    /// Effects' answers, handled before the next outside input.
    answers: VecDeque<Input>,
    /// Tickets issued, by turn, for reprints.
    tickets: HashMap<Uuid, TicketJob>,
    /// Answers of live CRM lookups, from their tasks.
    crm_answers: mpsc::Sender<(CardToken, CrmAnswer)>,
    /// The service day the store ops were last pruned for.
    day: ServiceDay,
}

impl Executor {
    /// Runs until `shutdown`: inputs from devices and the screen, staff commands from the counter
    /// page.
    pub async fn run(
        self,
        mut devices: mpsc::Receiver<DeviceMsg>,
        mut touches: mpsc::Receiver<Input>,
        mut staff: mpsc::Receiver<StaffRequest>,
        mut store: mpsc::Receiver<StoreMsg>,
        shutdown: CancellationToken,
    ) {
        let mut state = State::new(self.config.default_locale);
        // Visit ids are unique across kiosks and boots (the CRM counts an exposure per visit).
        state.visit_base = Uuid::now_v7();
        let (crm_answers, mut crm_rx) = mpsc::channel(16);
        let today = ServiceDay::at(
            self.time.now(),
            self.store.replica.queue().settings().opening_time,
        );
        let mut run = Run {
            e: self,
            state,
            wake_at: None,
            answers: VecDeque::new(),
            tickets: HashMap::new(),
            crm_answers,
            day: today,
        };
        run.publish_screen();
        run.publish_board();
        // A call raised before a restart and not yet taken: the button shows it.
        run.sync_assistance();
        // A configuration received before a restart and not decided on yet.
        let mut config_changes = run.e.remote.as_ref().map(|r| r.changes.clone());
        run.store_config_arrived();
        // The board's waits and the service day move with time even when nothing happens.
        let mut board_tick = tokio::time::interval(Duration::from_secs(30));
        board_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut peers_changed = run.e.store.link.peers_changed.subscribe();
        let mut heartbeat = tokio::time::interval(crate::service::BEAT_EVERY);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut people_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + audience::PEOPLE_PERIOD,
            audience::PEOPLE_PERIOD,
        );
        people_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let sleep = run
                .wake_at
                .map(|at| Duration::from_millis(at.saturating_sub(run.e.time.mono_ms())));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(msg) = devices.recv() => match msg {
                    DeviceMsg::Input(input) => run.feed(input),
                    DeviceMsg::Health(change) => run.health(change.device, change.health),
                    DeviceMsg::PersonEntered => run.person_entered(),
                },
                Some(input) = touches.recv() => run.feed(input),
                Some((token, answer)) = crm_rx.recv() => run.crm_answer(token, answer),
                Some(req) = staff.recv() => run.staff(req),
                Some(msg) = store.recv() => run.store_msg(msg),
                Some(()) = async {
                    match config_changes.as_mut() {
                        Some(rx) => rx.changed().await.ok(),
                        None => std::future::pending().await,
                    }
                } => run.store_config_arrived(),
                Ok(()) = peers_changed.changed() => run.publish_board(),
                _ = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => {
                    run.wake_at = None;
                    run.feed(Input::Tick);
                }
                _ = board_tick.tick() => {
                    run.new_day();
                    run.publish_board();
                }
                _ = heartbeat.tick() => run.e.beat.beat(),
                _ = people_tick.tick() => run.flush_people(),
            }
        }
        // Entries counted since the last period are journaled before the kiosk stops.
        run.flush_people();
    }
}

impl Run {
    /// Steps the journey with `input` and everything its effects answer.
    fn feed(&mut self, input: Input) {
        self.answers.push_back(input);
        while let Some(input) = self.answers.pop_front() {
            let now = self.e.time.mono_ms();
            let (next, effects) = journey::step(&self.e.config, &self.state, input, now);
            self.state = next;
            for effect in effects {
                self.effect(effect);
            }
        }
        self.publish_screen();
        // The journey may have just ended: a configuration waiting for it runs now.
        self.apply_store_config_if_safe();
    }

    fn publish_screen(&self) {
        let view = journey::view(&self.e.config, &self.state);
        self.e.screen.send_if_modified(|old| {
            if *old == view {
                false
            } else {
                *old = view;
                true
            }
        });
    }

    fn effect(&mut self, effect: Effect) {
        match effect {
            Effect::Record(event) => match self.e.db.append(event) {
                Ok(_) => {}
                // At the disk budget: counted by the journal, reported once as a storage event.
                Err(DbError::Journal(e @ JournalError::OverBudget { .. })) => {
                    tracing::debug!(error = %e, "event dropped at the disk budget");
                }
                // The journey goes on; the failure is loud (and shows in the status).
                Err(e) => tracing::error!(error = %e, "cannot journal an event"),
            },
            Effect::LookupProfile { token } => match (self.lookup(token), &self.e.crm) {
                (Input::ProfileNotFound { token }, Some(crm)) => self.ask_crm(crm.clone(), token),
                (answer, _) => self.answers.push_back(answer),
            },
            Effect::SaveProfile(p) => {
                let profile = Profile {
                    card_token: p.card_token.clone(),
                    display_name: p.display_name.clone(),
                    segment: p.segment.clone().unwrap_or_else(|| "new".to_owned()),
                    consent: ConsentFlags {
                        profile: p
                            .consents
                            .contains(&kiosk_protocol::events::ConsentPurpose::Profile),
                        marketing_email: p
                            .consents
                            .contains(&kiosk_protocol::events::ConsentPurpose::MarketingEmail),
                        marketing_sms: p
                            .consents
                            .contains(&kiosk_protocol::events::ConsentPurpose::MarketingSms),
                        turn_sms: p
                            .consents
                            .contains(&kiosk_protocol::events::ConsentPurpose::TurnSms),
                    },
                    locale: p.locale.map(|l| l.tag()).unwrap_or("es").to_owned(),
                };
                if let Err(e) = self.e.db.save_profile(&profile) {
                    tracing::error!(error = %e, "cannot cache a new profile");
                }
            }
            Effect::IssueTurn(req) => {
                let answer = self.issue(req);
                self.answers.push_back(answer);
            }
            Effect::PrintTicket(job) => {
                let ticket = self.ticket(&job);
                let turn_id = job.turn.turn_id;
                let label = job.turn.label.clone();
                self.tickets.insert(turn_id, job);
                let sent = self.e.printer.send(PrintJob::Ticket {
                    turn_id,
                    label,
                    ticket: Box::new(ticket),
                    reprint: false,
                    reply: None,
                });
                if sent.is_err() {
                    self.answers.push_back(Input::TicketPrintFailed {
                        turn_id,
                        reason: "the printer thread stopped".to_owned(),
                    });
                }
            }
            Effect::CheckSurvey { turn_id, label } => {
                let status = self.e.store.replica.survey_status(turn_id);
                self.answers.push_back(Input::SurveyChecked {
                    turn_id,
                    label,
                    status,
                });
            }
            Effect::SubmitSurvey(answer) => {
                let turn_id = answer.turn_id;
                let accepted = match turn_id {
                    Some(_) => match self.submit_survey(answer) {
                        Ok(()) => true,
                        Err(status) => {
                            tracing::info!(?status, "a survey answer was refused");
                            false
                        }
                    },
                    None => false,
                };
                if let Some(turn_id) = turn_id {
                    self.answers
                        .push_back(Input::SurveySubmitted { turn_id, accepted });
                }
            }
            Effect::RedeemCoupon {
                code,
                campaign_id,
                card_token,
            } => {
                let outcome =
                    match self.redeem_coupon(&code, campaign_id.as_deref(), card_token.clone()) {
                        Ok(_) => CouponOutcome::Redeemed,
                        Err(e) => e.outcome(),
                    };
                self.answers.push_back(Input::CouponChecked {
                    code,
                    card_token,
                    outcome,
                });
            }
            Effect::RequestAssistance { turn_id } => {
                let me = self.e.identity.kiosk_id.clone();
                let name = self.e.identity.place_name.clone();
                let open =
                    match self.request_assistance(AssistanceSource::Kiosk, &me, &name, turn_id) {
                        Ok(_) => true,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot raise an assistance request");
                            false
                        }
                    };
                self.answers.push_back(Input::AssistanceOpen(open));
            }
            Effect::MarkRated { turn_id } => self.mark_rated(turn_id),
            Effect::LoadBrowse {
                visit_id,
                segment,
                card_token,
            } => {
                let answer = self.load_browse(visit_id, &segment, card_token.as_ref());
                self.answers.push_back(answer);
            }
            Effect::WakeAt { mono_ms } => self.wake_at = Some(mono_ms),
        }
    }

    /// Raises a call for a staff member at `place` (this kiosk's button, or a Step-In device):
    /// a replicated store mark, so every counter page of every kiosk shows it, journaled here as
    /// `assistance_requested` in the same transaction. A place with a call still open gets that
    /// one back, not a second alert.
    pub(crate) fn request_assistance(
        &mut self,
        source: AssistanceSource,
        place: &str,
        place_name: &str,
        turn_id: Option<Uuid>,
    ) -> Result<Uuid, String> {
        let source_name = assistance_source_name(source);
        if let Some(open) = self
            .e
            .store
            .replica
            .open_assistance()
            .into_iter()
            .find(|r| r.place == place && r.source == source_name)
        {
            return Ok(open.request_id);
        }
        let request_id = Uuid::now_v7();
        let now = self.e.time.now();
        let event = Event::AssistanceRequested(AssistanceRequested {
            request_id,
            source,
            place: place.to_owned(),
            place_name: place_name.to_owned(),
            turn_id,
        });
        self.take(
            Step::AssistRequest {
                request_id,
                source: source_name.to_owned(),
                place: place.to_owned(),
                place_name: place_name.to_owned(),
                turn_id,
            },
            now,
            &[event],
        )?;
        tracing::info!(%request_id, place, "assistance requested");
        Ok(request_id)
    }

    /// A staff member at `counter` takes an assistance request: the store's `assist-ack` mark
    /// and `assistance_acknowledged` (with the response time in store time) in one transaction.
    fn acknowledge_assistance(
        &mut self,
        counter: &str,
        request_id: Uuid,
    ) -> Result<StaffAck, String> {
        let request = self
            .e
            .store
            .replica
            .assist_request(request_id)
            .ok_or("that call for assistance is not known at this kiosk")?;
        if let Some(ack) = &request.acknowledged {
            return Err(format!(
                "counter {} already took the call from {}",
                ack.counter, request.place_name
            ));
        }
        let now = self.e.time.now();
        let response_ms = request.response_ms(now);
        self.take(
            Step::AssistAck {
                request_id,
                counter: counter.to_owned(),
            },
            now,
            &[Event::AssistanceAcknowledged(AssistanceAcknowledged {
                request_id,
                counter: counter.to_owned(),
                response_ms,
            })],
        )?;
        self.sync_assistance();
        Ok(StaffAck {
            message: Some(format!("on your way to {}", request.place_name)),
            ..StaffAck::default()
        })
    }

    /// Tells the journey whether this kiosk's own call is still open (after a merge or an
    /// acknowledgement at a counter: the button is free again and the customer told).
    fn sync_assistance(&mut self) {
        let me = &self.e.identity.kiosk_id;
        let kiosk = assistance_source_name(AssistanceSource::Kiosk);
        let open = self
            .e
            .store
            .replica
            .open_assistance()
            .iter()
            .any(|r| r.place == *me && r.source == kiosk);
        if open != self.state.assistance_called {
            self.feed(Input::AssistanceOpen(open));
        }
    }

    /// A turn rated on the customer's phone (the CRM's feed): the store's `rate` mark, so a
    /// scan of its ticket at any kiosk says it was rated. No survey answer is journaled: the
    /// CRM has it.
    fn mark_rated(&mut self, turn_id: Uuid) {
        if self.e.store.replica.survey_status(turn_id) == SurveyStatus::AlreadyAnswered {
            return;
        }
        let now = self.e.time.now();
        if let Err(e) = self.take(Step::Rate { turn_id }, now, &[]) {
            tracing::error!(error = %e, "cannot mark a turn rated on a phone");
        }
    }

    /// Records a survey answer if its turn's one answer is still open (docs/DESIGN.md invariant
    /// 17): the turn was served and no kiosk of the store has an answer for it. The store's
    /// `rate` mark and the `survey_answered` event are one transaction, and the mark reaches the
    /// other kiosks with the queue's ops. This is the one rule for every way an answer comes
    /// in (the kiosk's screen now, the phone companion later): keyed by the turn id. A refused
    /// answer is recorded nowhere.
    pub(crate) fn submit_survey(&mut self, answer: SurveyAnswered) -> Result<(), SurveyStatus> {
        let Some(turn_id) = answer.turn_id else {
            return Err(SurveyStatus::Unknown);
        };
        if answer.score > 10 {
            return Err(SurveyStatus::Unknown);
        }
        match self.e.store.replica.survey_status(turn_id) {
            SurveyStatus::Open => {}
            other => return Err(other),
        }
        let now = self.e.time.now();
        self.take(
            Step::Rate { turn_id },
            now,
            &[Event::SurveyAnswered(answer)],
        )
        .map_err(|e| {
            tracing::error!(error = %e, "cannot journal a survey answer");
            SurveyStatus::Unknown
        })
    }

    /// Redeems a coupon once in the store (docs/DESIGN.md invariant 16): resolves its campaign and
    /// variant from its code, refuses one used before (at any kiosk or counter whose marks this
    /// kiosk holds), and journals `coupon_redeemed` with the store's `redeem` mark in one
    /// transaction. Returns the campaign and variant converted.
    pub(crate) fn redeem_coupon(
        &mut self,
        code: &str,
        campaign_id: Option<&str>,
        card_token: Option<CardToken>,
    ) -> Result<(String, String), CouponRefusal> {
        let code = code.trim().to_uppercase();
        let (campaign, variant) = self.resolve_coupon(&code, campaign_id)?;
        let used = self.e.store.replica.coupon_redeemed(&code)
            || self.e.db.coupon_used(&code).unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the redeemed coupons");
                false
            });
        if used {
            return Err(CouponRefusal::AlreadyUsed);
        }
        let now = self.e.time.now();
        let event = Event::CouponRedeemed(CouponRedeemed {
            coupon_code: code.clone(),
            campaign_id: Some(campaign.clone()),
            card_token,
            variant: Some(variant.clone()).filter(|v| v != UNKNOWN_VARIANT),
        });
        self.take(
            Step::Redeem {
                code,
                campaign_id: campaign.clone(),
                variant: variant.clone(),
            },
            now,
            &[event],
        )
        .map_err(CouponRefusal::NotSaved)?;
        Ok((campaign, variant))
    }

    /// The campaign and variant of a coupon code (`PREFIX-VARIANT-SUFFIX`, see
    /// `kiosk_core::journey::coupon_code`), from the campaigns this kiosk knows. A signed coupon
    /// of a campaign whose code does not follow that shape (made by the CRM) keeps its campaign
    /// and an unknown variant (the CRM finds it from the coupon's issue).
    fn resolve_coupon(
        &self,
        code: &str,
        campaign_id: Option<&str>,
    ) -> Result<(String, String), CouponRefusal> {
        let campaigns = self.e.db.campaigns().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the campaign cache");
            Vec::new()
        });
        if let Some((prefix, variant, _)) = journey::parse_coupon_code(code) {
            let found = campaigns.iter().find(|c| {
                campaign_id.is_none_or(|id| id == c.id)
                    && c.coupon
                        .as_ref()
                        .is_some_and(|cp| cp.code.trim().to_uppercase() == prefix)
            });
            if let Some(c) = found {
                let name = if c.variants.is_empty() {
                    Some("a".to_owned()).filter(|_| variant == "A")
                } else {
                    c.variants
                        .iter()
                        .find(|v| v.name.to_uppercase() == variant)
                        .map(|v| v.name.clone())
                };
                return name
                    .map(|n| (c.id.clone(), n))
                    .ok_or(CouponRefusal::NotValid);
            }
        }
        match campaign_id {
            Some(id) => Ok((id.to_owned(), UNKNOWN_VARIANT.to_owned())),
            None => Err(CouponRefusal::NotValid),
        }
    }

    /// The cached profile of a card, with the campaign for their segment.
    fn lookup(&self, token: CardToken) -> Input {
        match self.e.db.profile(&token) {
            Ok(Some(p)) => self.found(token, p, ProfileSource::LocalCache),
            Ok(None) => Input::ProfileNotFound { token },
            Err(e) => {
                tracing::error!(error = %e, "profile cache unreadable; greeting anonymously");
                Input::ProfileNotFound { token }
            }
        }
    }

    /// A known customer as the journey takes them, with the campaign for their segment.
    fn found(&self, token: CardToken, p: Profile, source: ProfileSource) -> Input {
        let campaign = if p.consent.profile {
            // A member's segment is never the anonymous audience.
            Some(p.segment.as_str())
                .filter(|s| *s != ANONYMOUS)
                .and_then(|segment| self.campaign_for(token.as_str(), segment))
        } else {
            None
        };
        let mut consents = Vec::new();
        use kiosk_protocol::events::ConsentPurpose as P;
        if p.consent.profile {
            consents.push(P::Profile);
        }
        if p.consent.marketing_email {
            consents.push(P::MarketingEmail);
        }
        if p.consent.marketing_sms {
            consents.push(P::MarketingSms);
        }
        if p.consent.turn_sms {
            consents.push(P::TurnSms);
        }
        Input::ProfileFound {
            token: token.clone(),
            profile: CustomerProfile {
                card_token: token,
                display_name: p.display_name,
                segment: Some(p.segment),
                locale: Locale::from_tag(&p.locale),
                consents,
            },
            campaign: campaign.map(Box::new),
            source,
        }
    }

    /// Asks the CRM about a card the cache does not know, in a task of its own (the executor keeps
    /// taking inputs). An unreachable or slow CRM counts as "nobody" after [`crm_bound`], well
    /// before the journey's own lookup timeout: offline, an unknown card is still offered the
    /// registration, a second or so later.
    fn ask_crm(&self, crm: Arc<kiosk_sync::ProfileLookup>, token: CardToken) {
        let answers = self.crm_answers.clone();
        let bound = crm_bound(self.e.config.timeouts.lookup_ms);
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(bound, crm.lookup(&token)).await {
                Ok(Ok(Some(profile))) => CrmAnswer::Found(profile),
                Ok(Ok(None)) => CrmAnswer::NotFound,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "live profile lookup failed; card taken as unknown");
                    CrmAnswer::NotFound
                }
                Err(_) => {
                    tracing::info!(
                        ?bound,
                        "live profile lookup too slow; card taken as unknown"
                    );
                    CrmAnswer::NotFound
                }
            };
            let _ = answers.send((token, answer)).await;
        });
    }

    /// A live lookup's answer: a found profile is cached (the next tap is greeted from the
    /// cache, offline too) and greets the customer if they are still at the screen.
    fn crm_answer(&mut self, token: CardToken, answer: CrmAnswer) {
        let input = match answer {
            CrmAnswer::Found(profile) if profile.card_token == token => {
                if let Err(e) = self.e.db.save_profile(&profile) {
                    tracing::warn!(error = %e, "cannot cache a profile from the CRM");
                }
                self.found(token, profile, ProfileSource::Crm)
            }
            CrmAnswer::Found(_) => {
                tracing::warn!("the CRM answered a lookup with another card's profile; ignored");
                Input::ProfileNotFound { token }
            }
            CrmAnswer::NotFound => Input::ProfileNotFound { token },
        };
        self.feed(input);
    }

    /// The first running campaign aimed at `audience`: a member's segment (`new`, `vip`, ...) or
    /// [`ANONYMOUS`] for a visitor without a card; a campaign with no target segments is aimed at
    /// everyone. A member is never in the anonymous audience, so a "join us" campaign aimed at
    /// it never reaches a card holder. The A/B variant is deterministic in `subject`: the card
    /// token (stable per customer) or the visit id (per visit for anonymous visitors).
    fn campaign_for(&self, subject: &str, audience: &str) -> Option<Campaign> {
        let today = self.e.time.now().date();
        let campaigns = self.e.db.campaigns().ok()?;
        let c: WireCampaign = campaigns
            .into_iter()
            .find(|c| c.runs_on(today) && targets(c, audience))?;
        let variant = c.variant_for(subject);
        let v = c.variants.iter().find(|v| v.name == variant);
        let text = |l: &kiosk_protocol::wire::Localized| Localized::new(l.es.clone(), l.en.clone());
        Some(Campaign {
            id: c.id.clone(),
            variant: variant.clone(),
            headline: text(
                v.and_then(|v| v.screen_text.as_ref())
                    .unwrap_or(&c.screen_text),
            ),
            ticket_line: text(
                v.and_then(|v| v.ticket_line.as_ref())
                    .unwrap_or(&c.ticket_line),
            ),
            staff_script: Some(c.name.clone()),
            coupon: c.coupon.as_ref().map(|cp| text(&cp.text)),
            coupon_prefix: c.coupon.as_ref().map(|cp| cp.code.clone()),
            // Served and checked by the UI server (`crate::signage::Signage::campaign_picture`); one that
            // fails its checks there is not shown (the screen keeps the text).
            image: c
                .picture_for(&variant)
                .map(|p| kiosk_core::journey::CampaignPicture {
                    url: crate::signage::campaign_picture_url(&c.id, &variant),
                    alt: text(&p.alt),
                }),
        })
    }

    /// What the campaign's coupon rules allow for a turn of `card_token` issued on `day`:
    /// withheld once the card holder has had the campaign's most coupons in this store (as far
    /// as this kiosk knows: its own issues and its peers'), and its last valid day
    /// ([`WireCampaign::coupon_expires_on`]). Anonymous visitors get one with every turn.
    fn coupon_terms(
        &self,
        campaign_id: Option<&str>,
        card_token: Option<&CardToken>,
        day: time::Date,
    ) -> CouponTerms {
        let Some(c) =
            campaign_id.and_then(|id| self.e.db.campaigns().ok()?.into_iter().find(|c| c.id == id))
        else {
            return CouponTerms::default();
        };
        let Some(coupon) = &c.coupon else {
            return CouponTerms::default();
        };
        let withheld = match (coupon.max_per_customer, card_token) {
            (Some(max), Some(token)) => {
                let had = self.e.db.coupons_issued(token, &c.id).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "cannot read a customer's coupons; giving one");
                    0
                });
                had >= max
            }
            _ => false,
        };
        CouponTerms {
            given: !withheld,
            withheld,
            expires_on: Some(c.coupon_expires_on(day)),
        }
    }

    /// Numbers, journals and applies a new turn; answers exactly once. The number comes from
    /// the store's sequencer (this kiosk or another), or from this kiosk's own block when the
    /// sequencer cannot answer in time (`kiosk_store::numbering`).
    fn issue(&mut self, req: TurnRequest) -> Input {
        let request_id = req.request_id;
        let failed = |reason: String| Input::TurnIssueFailed { request_id, reason };
        let settings = self.e.store.replica.queue().settings();
        let Some(letter) = settings.service(&req.service).map(|s| s.letter.clone()) else {
            return failed(format!("service {:?} is not configured", req.service));
        };
        let turn_id = Uuid::now_v7();
        // An anonymous visitor's campaign, chosen per visit.
        let anonymous_campaign = if req.anonymous {
            self.campaign_for(&req.visit_id.to_string(), ANONYMOUS)
        } else {
            None
        };
        let campaign_id = req
            .campaign_id
            .clone()
            .or_else(|| anonymous_campaign.as_ref().map(|c| c.id.clone()));
        let (numbering, at) = match self.store_number(&letter, turn_id) {
            Ok(n) => n,
            Err(e) => return failed(e),
        };
        let request = IssueRequest {
            turn_id,
            service: letter.clone(),
            priority: req.priority,
            card_token: req.card_token,
            campaign_id,
            locale: req.locale,
        };
        let plan =
            match self
                .e
                .store
                .replica
                .queue()
                .plan_issue_numbered(request.clone(), numbering, at)
            {
                Ok(plan) => plan,
                Err(e) => return failed(e.to_string()),
            };
        let issue_day = plan
            .ticket
            .business_day
            .parse::<ServiceDay>()
            .map(|d| d.0)
            .unwrap_or(at.date());
        // The coupon's rules, decided here and recorded in the store's op (which every kiosk
        // counts), so the journey only hands out what the store allows.
        let terms = self.coupon_terms(
            request.campaign_id.as_deref(),
            request.card_token.as_ref(),
            issue_day,
        );
        let step = Step::Issue {
            turn_id: request.turn_id,
            service: letter,
            number: numbering.number,
            tag: numbering.tag,
            priority: request.priority,
            card_token: request.card_token,
            campaign_id: request.campaign_id,
            locale: request.locale,
            coupon: terms.given,
        };
        if let Err(e) = self.take(step, at, &plan.change.events) {
            tracing::error!(error = %e, "cannot journal a new turn");
            return failed(e);
        }
        let t = &plan.ticket;
        let day = issue_day;
        let qr = TurnTicket {
            store_id: self.e.identity.store_id.clone(),
            kiosk_id: self.e.identity.kiosk_id.clone(),
            business_day: day,
            turn: t.turn.clone(),
            turn_id: t.turn_id,
        };
        let payload = match code::sign_turn(&qr, &self.e.turn_key) {
            // A link a phone camera opens; kiosks and counters read the payload inside it.
            Ok(signed) => format!("{}/t/{signed}", self.e.ticket_link_base),
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the ticket QR; printing the bare turn id");
                t.turn_id.to_string()
            }
        };
        if let Ok(mut last) = self.e.last_ticket_qr.lock() {
            *last = Some(payload.clone());
        }
        let mut issued = IssuedTurn::from_ticket(request_id, t, at, payload);
        issued.campaign = anonymous_campaign.map(Box::new);
        issued.coupon_withheld = terms.withheld;
        issued.coupon_expires_on = terms.expires_on;
        if terms.withheld {
            tracing::info!(
                turn = %issued.label,
                "the customer had the campaign's most coupons: this ticket carries none"
            );
        }
        Input::TurnIssued(issued)
    }

    /// A number for a new turn of `letter` and its issue time.
    fn store_number(
        &mut self,
        letter: &str,
        turn_id: Uuid,
    ) -> Result<(Numbering, OffsetDateTime), String> {
        let link = self.e.store.link.clone();
        let allocated = if let Some(sequencer) = link.numbers() {
            match sequencer.allocate(letter) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(reason = %e, "numbering from this kiosk's own block");
                    None
                }
            }
        } else {
            // The executor waits for the sequencer, at most its timeout (tens of ms on a LAN).
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| handle.block_on(link.request_number(letter, turn_id)))
        };
        if let Some(a) = allocated {
            return Ok((
                Numbering {
                    number: a.number,
                    tag: None,
                },
                a.at,
            ));
        }
        let now = self.e.time.now();
        let queue = self.e.store.replica.queue();
        let day = ServiceDay::at(now, queue.settings().opening_time);
        let tag = link.tag();
        let seen = queue
            .turns()
            .iter()
            .filter(|t| t.service_day == day && t.tag == Some(tag))
            .filter(|t| t.issued_service.as_deref().unwrap_or(&t.service) == letter)
            .map(|t| t.number)
            .max()
            .unwrap_or(0);
        let number = self
            .e
            .db
            .next_store_number(Series::Tagged, day, letter, seen)
            .map_err(|e| e.to_string())?;
        tracing::info!(
            label = %kiosk_core::queue::tagged_label(letter, tag, number),
            "turn numbered outside the store's sequence (the sequencer is out of reach)"
        );
        Ok((
            Numbering {
                number,
                tag: Some(tag),
            },
            now,
        ))
    }

    /// Journals one of this kiosk's own queue steps with its events, then merges it.
    fn take(&mut self, step: Step, at: OffsetDateTime, events: &[Event]) -> Result<(), String> {
        let store = &mut self.e.store;
        store.hlc.observe(store.replica.max_hlc());
        let wall_ms = u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(0);
        let op = StoreOp {
            origin: store.link.me.clone(),
            seq: store.seq + 1,
            hlc: store.hlc.tick(wall_ms),
            at,
            step,
        };
        let opening = store.replica.queue().settings().opening_time;
        self.e
            .db
            .commit_store_op(&op, events, opening)
            .map_err(|e| format!("could not save the change: {e}"))?;
        store.seq = op.seq;
        let (_, conflicts) = store.replica.merge([op.clone()]);
        note_numbers(&store.link, std::slice::from_ref(&op));
        store.link.publish([op]);
        self.report_conflicts(conflicts);
        self.publish_board();
        Ok(())
    }

    /// A message from the store link.
    fn store_msg(&mut self, msg: StoreMsg) {
        match msg {
            StoreMsg::Ops { ops, firsts, done } => {
                self.merge_peer_ops(ops, &firsts);
                let _ = done.send(());
            }
        }
    }

    /// Persists and merges ops pulled from a peer.
    fn merge_peer_ops(
        &mut self,
        ops: Vec<StoreOp>,
        firsts: &std::collections::BTreeMap<String, u64>,
    ) {
        let store = &mut self.e.store;
        for (origin, first) in firsts {
            if *origin != store.link.me {
                store.replica.skip_to(origin, *first);
            }
        }
        let accepted = store.replica.acceptable(&ops);
        if accepted.is_empty() {
            return;
        }
        let opening = store.replica.queue().settings().opening_time;
        if let Err(e) = self.e.db.insert_store_ops(&accepted, opening) {
            tracing::error!(error = %e, "cannot save the store's ops from a peer; they come again");
            return;
        }
        let store = &mut self.e.store;
        for op in &accepted {
            store.hlc.observe(op.hlc);
        }
        let (_, conflicts) = store.replica.merge(accepted.clone());
        note_numbers(&store.link, &accepted);
        store.link.publish(accepted);
        self.report_conflicts(conflicts);
        self.publish_board();
        self.sync_assistance();
    }

    /// Journals a `queue_conflict` for each of this kiosk's own steps the merge dropped (once;
    /// the other kiosks see the same conflict and leave it to this one).
    fn report_conflicts(&mut self, conflicts: Vec<kiosk_store::Conflict>) {
        for c in conflicts {
            tracing::warn!(
                turn = %c.label,
                counter = ?c.counter,
                step = %c.step,
                reason = %c.reason,
                "a queue step taken while the kiosks were cut off was dropped by the merge"
            );
            if c.key.origin != self.e.store.link.me {
                continue;
            }
            match self.e.db.mark_conflict_reported(&c.key.origin, c.key.seq) {
                Ok(true) => {
                    let event = Event::QueueConflict(kiosk_protocol::events::QueueConflict {
                        turn_id: Some(c.turn_id),
                        turn: c.label.clone(),
                        counter: c.counter.clone(),
                        step: c.step.clone(),
                        reason: c.reason.clone(),
                    });
                    if let Err(e) = self.e.db.append(event) {
                        tracing::error!(error = %e, "cannot journal a queue conflict");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "cannot record a queue conflict"),
            }
        }
    }

    /// Once a service day has passed: forgets store ops older than yesterday's (the journal's
    /// events keep the history).
    fn new_day(&mut self) {
        let opening = self.e.store.replica.queue().settings().opening_time;
        let today = ServiceDay::at(self.e.time.now(), opening);
        if today == self.day {
            return;
        }
        self.day = today;
        let keep_from = today.previous();
        self.e.store.replica.prune(keep_from, opening);
        if let Ok(mut log) = self.e.store.link.log.write() {
            log.retain(|op| ServiceDay::at(op.at, opening) >= keep_from);
        }
        match self.e.db.prune_store_ops(keep_from) {
            Ok(n) if n > 0 => tracing::info!(pruned = n, "store ops of past days pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune old store ops"),
        }
    }

    fn ticket(&self, job: &TicketJob) -> Ticket {
        let t = &job.turn;
        let language = match job.locale {
            Locale::En => Language::En,
            Locale::Es => Language::Es,
        };
        let footer = match job.locale {
            Locale::En => "Keep this ticket: scan it at the kiosk to tell us how it went.",
            Locale::Es => "Guarde este ticket: escanéelo en el quiosco para valorar la atención.",
        };
        Ticket {
            store_name: self.e.identity.store_name.clone(),
            turn_number: t.label.clone(),
            service_name: job.service_name.clone(),
            issued_at: time::PrimitiveDateTime::new(t.issued_at.date(), t.issued_at.time()),
            estimated_wait_minutes: t.estimated_wait_s.div_ceil(60),
            position_in_queue: t.position,
            qr_payload: t.qr_payload.clone(),
            campaign_line: job.campaign_line.clone(),
            coupon: job.coupon.as_ref().map(|c| self.coupon_print(c)),
            note: job.ticket_note.clone(),
            footer: footer.to_owned(),
            language,
            copy: false,
        }
    }

    /// A coupon as printed: its code in words, its last valid day and its signed QR (campaign,
    /// code and that day), which any kiosk of the store redeems until then.
    fn coupon_print(&self, c: &journey::Coupon) -> printer::Coupon {
        let today = self.e.time.now().date();
        // Decided at issue (the campaign's rules); a coupon of before that: the campaign's
        // last day.
        let expires_on = c.expires_on.unwrap_or_else(|| {
            self.e
                .db
                .campaigns()
                .ok()
                .and_then(|cs| cs.into_iter().find(|w| w.id == c.campaign_id))
                .map_or(today + time::Duration::days(COUPON_DAYS_UNKNOWN_END), |w| {
                    w.ends_on
                })
        });
        let signed = code::sign_coupon(
            &code::Coupon {
                campaign_id: c.campaign_id.clone(),
                coupon_code: c.code.clone(),
                expires_on,
                card_token: None,
            },
            &self.e.coupon_key,
        );
        let barcode = match signed {
            Ok(text) => printer::CouponBarcode::Qr(text),
            Err(e) => {
                // Staff can still type the code at the counter.
                tracing::error!(error = %e, "cannot sign a coupon; printing its code only");
                printer::CouponBarcode::Qr(c.code.clone())
            }
        };
        printer::Coupon {
            code: c.code.clone(),
            barcode,
            valid_until: Some(expires_on),
        }
    }

    fn health(&mut self, device: DeviceKind, health: Health) {
        let changed = self.e.health.send_if_modified(|map| {
            match map.iter_mut().find(|(d, _)| *d == device) {
                Some((_, h)) if *h == health => false,
                Some((_, h)) => {
                    *h = health.clone();
                    true
                }
                None => {
                    map.push((device, health.clone()));
                    true
                }
            }
        });
        if !changed {
            return;
        }
        let status = health.state;
        if health.reason.is_some() {
            tracing::warn!(?device, reason = ?health.reason, "device health changed");
        } else {
            tracing::info!(?device, "device healthy");
        }
        if let Err(e) = self
            .e
            .db
            .append(Event::DeviceStatusChanged(DeviceStatusChanged {
                device,
                status,
                reason: health.reason.clone(),
            }))
        {
            tracing::error!(error = %e, "cannot journal a device status change");
        }
        if device == DeviceKind::Printer {
            self.feed(Input::PrinterHealth(status));
        }
    }

    // ---- staff -----------------------------------------------------------------------------

    fn staff(&mut self, req: StaffRequest) {
        let answer = self.staff_command(&req.counter, req.staff, req.command);
        let _ = req.reply.send(answer);
    }

    /// Runs a staff action; `staff` (the member logged in, if they used a PIN of their own) is
    /// recorded on the calls, services and no-shows it makes.
    fn staff_command(
        &mut self,
        counter: &str,
        staff: Option<String>,
        command: StaffCommand,
    ) -> Result<StaffAck, String> {
        let now = self.e.time.now();
        let q = self.e.store.replica.queue();
        let c = counter.to_owned();
        let err = |e: kiosk_core::queue::QueueError| e.to_string();
        let (mut change, step): (Change, Step) = match &command {
            StaffCommand::CallNext { services } => {
                let Some(change) = q.plan_call_next(counter, services, now).map_err(err)? else {
                    return Ok(StaffAck {
                        label: None,
                        message: None,
                        ..StaffAck::default()
                    });
                };
                let turn_id = change.upserts.last().map(|t| t.id).unwrap_or_default();
                (
                    change,
                    Step::Call {
                        turn_id,
                        counter: c,
                    },
                )
            }
            StaffCommand::Call { turn_id } => (
                q.plan_call(*turn_id, counter, now).map_err(err)?,
                Step::Call {
                    turn_id: *turn_id,
                    counter: c,
                },
            ),
            StaffCommand::CallLabel { label } => {
                let change = q.plan_call_label(label, counter, now).map_err(err)?;
                let turn_id = change.upserts.last().map(|t| t.id).unwrap_or_default();
                (
                    change,
                    Step::Call {
                        turn_id,
                        counter: c,
                    },
                )
            }
            StaffCommand::CallScanned { code } => {
                let ticket = code::verify_turn(code::payload_in(code.trim()), &self.e.turn_key)
                    .map_err(|e| format!("this is not one of this store's turn tickets ({e})"))?;
                if ticket.store_id != self.e.identity.store_id {
                    return Err(format!(
                        "ticket {} belongs to another store ({})",
                        ticket.turn, ticket.store_id
                    ));
                }
                (
                    q.plan_call(ticket.turn_id, counter, now).map_err(err)?,
                    Step::Call {
                        turn_id: ticket.turn_id,
                        counter: c,
                    },
                )
            }
            StaffCommand::Recall { turn_id } => (
                q.plan_recall(*turn_id, counter, now).map_err(err)?,
                Step::Recall {
                    turn_id: *turn_id,
                    counter: c,
                },
            ),
            StaffCommand::Served { turn_id } => (
                q.plan_served(*turn_id, counter, now).map_err(err)?,
                Step::Serve {
                    turn_id: *turn_id,
                    counter: c,
                },
            ),
            StaffCommand::NoShow { turn_id } => (
                q.plan_no_show(*turn_id, counter, now).map_err(err)?,
                Step::NoShow {
                    turn_id: *turn_id,
                    counter: c,
                },
            ),
            StaffCommand::Park { turn_id } => (
                q.plan_park(*turn_id, counter, now).map_err(err)?,
                Step::Park {
                    turn_id: *turn_id,
                    counter: c,
                },
            ),
            StaffCommand::Transfer { turn_id, to } => (
                q.plan_transfer(*turn_id, to, Some(counter), now)
                    .map_err(err)?,
                Step::Transfer {
                    turn_id: *turn_id,
                    to: to.clone(),
                    counter: Some(c),
                },
            ),
            StaffCommand::WalkOut { turn_id } => (
                q.plan_walkout(*turn_id, Some(counter), now).map_err(err)?,
                Step::WalkOut {
                    turn_id: *turn_id,
                    counter: Some(c),
                },
            ),
            StaffCommand::WalkOutLabel { label } => {
                let day = ServiceDay::at(now, q.settings().opening_time);
                let turn_id = q
                    .turn_by_label(label, day)
                    .map(|t| t.id)
                    .ok_or_else(|| format!("no turn {} today", label.trim().to_uppercase()))?;
                (
                    q.plan_walkout(turn_id, Some(counter), now).map_err(err)?,
                    Step::WalkOut {
                        turn_id,
                        counter: Some(c),
                    },
                )
            }
            StaffCommand::RedeemCoupon { code } => return self.redeem_at_counter(code),
            StaffCommand::AcknowledgeAssistance { request_id } => {
                return self.acknowledge_assistance(counter, *request_id);
            }
            StaffCommand::StepInIssue { service, print } => {
                return self.step_in_issue(counter, service, *print);
            }
            StaffCommand::StepInAssist { place_name } => {
                let request_id =
                    self.request_assistance(AssistanceSource::StepIn, counter, place_name, None)?;
                return Ok(StaffAck {
                    message: Some(format!("staff called to {place_name}")),
                    request_id: Some(request_id),
                    ..StaffAck::default()
                });
            }
            StaffCommand::Reprint { turn_id } => return self.reprint(*turn_id),
            StaffCommand::PrintReport => return self.print_report(),
        };
        for event in &mut change.events {
            match event {
                Event::TurnCalled(e) => e.staff.clone_from(&staff),
                Event::TurnServed(e) => e.staff.clone_from(&staff),
                Event::TurnNoShow(e) => e.staff.clone_from(&staff),
                _ => {}
            }
        }
        let label = change.upserts.last().map(|t| t.label());
        let message = match change.events.first() {
            Some(Event::TurnNoShow(n)) if n.recall_limit => {
                "recall limit reached: marked as no-show"
            }
            _ => "ok",
        };
        self.take(step, now, &change.events)?;
        Ok(StaffAck {
            label,
            message: Some(message.to_owned()),
            ..StaffAck::default()
        })
    }

    /// A coupon scanned (its signed QR text, as a USB scanner types it) or typed (its printed
    /// code) at the counter page.
    fn redeem_at_counter(&mut self, code: &str) -> Result<StaffAck, String> {
        let text = code.trim();
        if text.is_empty() {
            return Err("type or scan the coupon's code".to_owned());
        }
        let (code, campaign_id) = if text.starts_with(code::COUPON_PREFIX) {
            let coupon = code::verify_coupon(text, &self.e.coupon_key)
                .map_err(|e| format!("this is not one of our coupons ({e})"))?;
            let today = self.e.time.now().date();
            if coupon.expires_on < today {
                return Err(format!("this coupon expired on {}", coupon.expires_on));
            }
            (coupon.coupon_code, Some(coupon.campaign_id))
        } else {
            (text.to_owned(), None)
        };
        match self.redeem_coupon(&code, campaign_id.as_deref(), None) {
            Ok((campaign, variant)) => Ok(StaffAck {
                label: None,
                message: Some(format!(
                    "coupon {} redeemed ({campaign}, variant {variant})",
                    code.trim().to_uppercase()
                )),
                ..StaffAck::default()
            }),
            Err(e) => Err(e.to_string()),
        }
    }

    /// A turn for a Step-In device: issued as the screen's turns are (the store's number,
    /// `ticket_issued`), then printed here (`print`) or handed to the device as its link
    /// (recorded as not printed, shown on the device's screen: every issued turn has one print
    /// outcome).
    fn step_in_issue(
        &mut self,
        device: &str,
        service: &str,
        print: bool,
    ) -> Result<StaffAck, String> {
        let request = TurnRequest {
            // Not the journey's: an id it never waits for.
            request_id: u64::MAX,
            service: service.trim().to_uppercase(),
            priority: false,
            card_token: None,
            locale: self.e.config.default_locale,
            campaign_id: None,
            visit_id: Uuid::now_v7(),
            anonymous: false,
        };
        let turn = match self.issue(request) {
            Input::TurnIssued(turn) => turn,
            Input::TurnIssueFailed { reason, .. } => return Err(reason),
            _ => return Err("the turn could not be issued".to_owned()),
        };
        let locale = self.e.config.default_locale;
        let service_name = self
            .e
            .config
            .services
            .iter()
            .find(|s| s.letter == turn.service)
            .map(|s| s.name.get(locale).to_owned())
            .unwrap_or_else(|| turn.service.clone());
        let job = TicketJob {
            turn: turn.clone(),
            ticket_note: self
                .e
                .config
                .ticket_notes
                .get(&turn.service)
                .map(|n| n.get(locale).to_owned()),
            service_name,
            locale,
            campaign_line: None,
            coupon: None,
        };
        let outcome = if print {
            let ticket = self.ticket(&job);
            self.tickets.insert(turn.turn_id, job);
            let (tx, rx) = tokio::sync::oneshot::channel();
            match self.e.printer.send(PrintJob::Ticket {
                turn_id: turn.turn_id,
                label: turn.label.clone(),
                ticket: Box::new(ticket),
                reprint: false,
                reply: Some(tx),
            }) {
                Ok(()) => rx
                    .blocking_recv_or_timeout()
                    .map_err(|()| "the printer did not answer".to_owned())
                    .and_then(|r| r),
                Err(_) => Err("the printer thread stopped".to_owned()),
            }
        } else {
            Err(format!("not printed: shown on the Step-In device {device}"))
        };
        let printed = outcome.is_ok();
        let event = match outcome {
            Ok(bytes) => Event::TicketPrinted(kiosk_protocol::events::TicketPrinted {
                turn_id: turn.turn_id,
                bytes,
                reprint: false,
            }),
            Err(reason) => {
                if print {
                    tracing::warn!(turn = %turn.label, %reason, "Step-In ticket not printed; the device shows its link");
                }
                Event::TicketPrintFailed(kiosk_protocol::events::TicketPrintFailed {
                    turn_id: turn.turn_id,
                    reason,
                    shown_on_screen: true,
                })
            }
        };
        if let Err(e) = self.e.db.append(event) {
            tracing::error!(error = %e, "cannot journal a Step-In ticket's print outcome");
        }
        tracing::info!(turn = %turn.label, device, printed, "turn issued for a Step-In device");
        Ok(StaffAck {
            label: Some(turn.label.clone()),
            message: Some(if printed {
                "ticket printed".to_owned()
            } else {
                "show the link on the device".to_owned()
            }),
            turn: Some(StepInTurn {
                turn_id: turn.turn_id,
                label: turn.label,
                service: turn.service,
                position: turn.position,
                estimated_wait_s: turn.estimated_wait_s,
                link: turn.qr_payload,
                printed,
            }),
            request_id: None,
        })
    }

    fn reprint(&mut self, turn_id: Uuid) -> Result<StaffAck, String> {
        let job =
            self.tickets.get(&turn_id).cloned().ok_or(
                "that ticket was issued before the kiosk restarted and cannot be reprinted",
            )?;
        let ticket = Ticket {
            copy: true,
            ..self.ticket(&job)
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.e
            .printer
            .send(PrintJob::Ticket {
                turn_id,
                label: job.turn.label.clone(),
                ticket: Box::new(ticket),
                reprint: true,
                reply: Some(tx),
            })
            .map_err(|_| "the printer thread stopped".to_owned())?;
        // Staff wait for the printer: the executor waits with them (at most the printer timeout).
        let outcome = rx
            .blocking_recv_or_timeout()
            .map_err(|()| "the printer did not answer".to_owned())?;
        let bytes = outcome?;
        self.e
            .db
            .append(Event::TicketPrinted(
                kiosk_protocol::events::TicketPrinted {
                    turn_id,
                    bytes,
                    reprint: true,
                },
            ))
            .map_err(|e| e.to_string())?;
        Ok(StaffAck {
            label: Some(job.turn.label),
            message: Some("reprinted".to_owned()),
            ..StaffAck::default()
        })
    }

    fn print_report(&mut self) -> Result<StaffAck, String> {
        let now = self.e.time.now();
        let queue = self.e.store.replica.queue();
        let day = ServiceDay::at(now, queue.settings().opening_time);
        let report = queue.report(day);
        let language = match self.e.config.default_locale {
            Locale::En => Language::En,
            Locale::Es => Language::Es,
        };
        let (issued, served, no_show) = report.services.iter().fold((0, 0, 0), |a, s| {
            (a.0 + s.issued, a.1 + s.served, a.2 + s.no_show)
        });
        let (surveys, average) = self.survey_summary(&day);
        let en = language == Language::En;
        let row = |es: &str, en_label: &str, value: String| ReportRow {
            label: if en { en_label } else { es }.to_owned(),
            value,
        };
        let mut rows = vec![
            row("Tickets", "Tickets", issued.to_string()),
            row("Atendidos", "Served", served.to_string()),
            row("No presentados", "No-shows", no_show.to_string()),
            // Surveys are answered at (and journaled by) one kiosk; the queue figures above are
            // the whole store's. In a store of several kiosks the row says whose they are.
            if self.e.store.link.members.len() > 1 {
                row(
                    "Encuestas (este quiosco)",
                    "Surveys (this kiosk)",
                    surveys.to_string(),
                )
            } else {
                row("Encuestas", "Surveys", surveys.to_string())
            },
        ];
        if let Some(avg) = average {
            rows.push(if self.e.store.link.members.len() > 1 {
                row(
                    "Nota media (este quiosco)",
                    "Average score (this kiosk)",
                    format!("{avg:.1}"),
                )
            } else {
                row("Nota media", "Average score", format!("{avg:.1}"))
            });
        }
        let minutes = |s: Option<u32>| s.map_or("-".to_owned(), |s| format!("{}", s.div_ceil(60)));
        let columns = if en {
            ["Issued", "Served", "No-show", "Wait min"]
        } else {
            ["Emitidos", "Atendidos", "No pres.", "Espera min"]
        };
        let tables = report
            .services
            .iter()
            .map(|s| ReportTable {
                service: format!("{} {}", s.letter, s.name.get(self.e.config.default_locale)),
                columns: std::iter::once(String::new())
                    .chain(columns.iter().map(|c| (*c).to_owned()))
                    .collect(),
                rows: vec![vec![
                    s.letter.clone(),
                    s.issued.to_string(),
                    s.served.to_string(),
                    s.no_show.to_string(),
                    minutes(s.average_wait_s),
                ]],
            })
            .collect();
        let report = Report {
            title: if en {
                "Daily report"
            } else {
                "Informe del día"
            }
            .to_owned(),
            store_name: self.e.identity.store_name.clone(),
            date: day.0,
            rows,
            tables,
            language,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.e
            .printer
            .send(PrintJob::Report {
                report: Box::new(report),
                reply: tx,
            })
            .map_err(|_| "the printer thread stopped".to_owned())?;
        rx.blocking_recv_or_timeout()
            .map_err(|()| "the printer did not answer".to_owned())??;
        Ok(StaffAck {
            label: None,
            message: Some("report printed".to_owned()),
            ..StaffAck::default()
        })
    }

    /// Surveys answered since the service day began, and their average score.
    fn survey_summary(&self, day: &ServiceDay) -> (u32, Option<f64>) {
        let j = self.e.db.journal();
        let since = day.0.to_string();
        j.sql()
            .query_row(
                "SELECT count(*), avg(json_extract(body, '$.payload.score')) FROM events \
                 WHERE type = 'survey_answered' AND wall_time >= ?1",
                [since],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<f64>>(1)?)),
            )
            .map(|(n, avg)| (u32::try_from(n).unwrap_or(0), avg))
            .unwrap_or((0, None))
    }

    fn publish_board(&mut self) {
        let now = self.e.time.now();
        let mut board = self.e.store.replica.queue().board(now);
        board.conflicts = self
            .e
            .store
            .replica
            .conflicts()
            .iter()
            .rev()
            .take(20)
            .map(|c| ConflictNote {
                label: c.label.clone(),
                counter: c.counter.clone(),
                step: c.step.clone(),
                reason: c.reason.clone(),
            })
            .collect();
        board.assistance = self
            .e
            .store
            .replica
            .open_assistance()
            .into_iter()
            .map(|r| AssistanceNote {
                request_id: r.request_id,
                source: r.source.clone(),
                place: r.place.clone(),
                place_name: r.place_name.clone(),
                turn_label: r
                    .turn_id
                    .and_then(|id| self.e.store.replica.queue().turn(id))
                    .map(|t| t.label()),
                requested_at: r
                    .at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                age_s: u64::try_from((now - r.at).whole_seconds()).unwrap_or(0),
            })
            .collect();
        board.unreachable_kiosks = self
            .e
            .store
            .link
            .peer_status()
            .into_iter()
            .filter(|p| !p.reachable)
            .map(|p| p.id)
            .collect();
        for s in &mut board.serving {
            let Some(token) = &s.card_token else { continue };
            if let Ok(Some(p)) = self.e.db.profile(token) {
                let campaign = s.campaign_id.as_ref().and_then(|id| {
                    self.e
                        .db
                        .campaigns()
                        .ok()?
                        .into_iter()
                        .find(|c| &c.id == id)
                });
                s.customer = Some(CustomerNote {
                    name: p.display_name,
                    segment: Some(p.segment),
                    campaign_script: campaign
                        .map(|c| format!("{}: {}", c.name, c.ticket_line.get("es"))),
                });
            }
        }
        self.e.board.send_if_modified(|old| {
            if *old == board {
                false
            } else {
                *old = board;
                true
            }
        });
        self.publish_picture();
    }
}

/// Tells the sequencer (when this kiosk is it) about numbers of its sequence seen in ops.
pub(crate) fn note_numbers(link: &StoreLink, ops: &[StoreOp]) {
    let Some(sequencer) = link.numbers() else {
        return;
    };
    for op in ops {
        if let Step::Issue {
            service,
            number,
            tag: None,
            ..
        } = &op.step
        {
            sequencer.saw_at(op.at, service, *number);
        }
    }
}

/// The store mark's word for who asked for assistance.
fn assistance_source_name(source: AssistanceSource) -> &'static str {
    match source {
        AssistanceSource::Kiosk => "kiosk",
        AssistanceSource::StepIn => "step_in",
    }
}

/// The audience of visitors without a card (`target_segments: ["anonymous"]`).
pub const ANONYMOUS: &str = "anonymous";

/// Variant recorded when a coupon's code does not name one (the CRM resolves it).
const UNKNOWN_VARIANT: &str = "unknown";

/// Days a coupon of a campaign no longer in the cache stays valid.
const COUPON_DAYS_UNKNOWN_END: i64 = 30;

/// What a campaign's coupon rules allow for one turn ([`Run::coupon_terms`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CouponTerms {
    /// The campaign has a coupon and the turn gets it (counted in the store's op).
    given: bool,
    /// The campaign has a coupon the customer's limit keeps from this turn.
    withheld: bool,
    /// The coupon's last valid day.
    expires_on: Option<time::Date>,
}

/// Whether campaign `c` is aimed at `audience` (a segment, or [`ANONYMOUS`]); no target segments
/// means everyone.
fn targets(c: &WireCampaign, audience: &str) -> bool {
    c.target_segments.is_empty() || c.target_segments.iter().any(|t| t == audience)
}

/// Why a coupon was not redeemed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CouponRefusal {
    /// Used before.
    #[error("this coupon was already used; it counts once")]
    AlreadyUsed,
    /// Not a coupon of a campaign this store knows.
    #[error("this is not a coupon of a campaign this store runs")]
    NotValid,
    /// The journal refused the redemption.
    #[error("{0}")]
    NotSaved(String),
}

impl CouponRefusal {
    fn outcome(&self) -> CouponOutcome {
        match self {
            CouponRefusal::AlreadyUsed => CouponOutcome::AlreadyUsed,
            CouponRefusal::NotValid | CouponRefusal::NotSaved(_) => CouponOutcome::NotValid,
        }
    }
}

/// Waiting for a printer answer from inside the executor task.
trait BlockingReply<T> {
    fn blocking_recv_or_timeout(self) -> Result<T, ()>;
}

impl<T> BlockingReply<T> for tokio::sync::oneshot::Receiver<T> {
    fn blocking_recv_or_timeout(self) -> Result<T, ()> {
        // Called on a runtime worker thread: move the wait off it.
        tokio::task::block_in_place(|| self.blocking_recv().map_err(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::{ANONYMOUS, targets};
    use kiosk_protocol::wire::Campaign;

    fn campaign(segments: &[&str]) -> Campaign {
        serde_json::from_value(serde_json::json!({
            "id": "c", "name": "c", "target_segments": segments,
            "starts_on": "2020-01-01", "ends_on": "2099-12-31",
            "screen_text": {"es": "x", "en": "x"}, "ticket_line": {"es": "x", "en": "x"}
        }))
        .expect("campaign")
    }

    #[test]
    fn members_never_reach_the_anonymous_audience_and_everyone_means_everyone() {
        let join_us = campaign(&[ANONYMOUS]);
        assert!(targets(&join_us, ANONYMOUS));
        for segment in ["new", "regular", "vip", "lapsed"] {
            assert!(!targets(&join_us, segment), "{segment}");
        }
        let members = campaign(&["vip", "regular"]);
        assert!(targets(&members, "vip"));
        assert!(!targets(&members, ANONYMOUS));
        let everyone = campaign(&[]);
        assert!(targets(&everyone, ANONYMOUS) && targets(&everyone, "new"));
    }
}
