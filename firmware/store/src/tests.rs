use kiosk_core::locale::{Locale, Localized};
use kiosk_core::queue::{Queue, QueueSettings, ServiceDay, ServiceDef, TurnStatus};
use proptest::prelude::*;
use time::macros::{datetime, time};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::*;

fn settings() -> QueueSettings {
    QueueSettings::new(
        vec![
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
        time!(09:00),
    )
}

/// One kiosk of a simulated store: its replica, its clock and its own ops.
struct Kiosk {
    id: String,
    replica: StoreQueue,
    hlc: Hlc,
    seq: u64,
}

impl Kiosk {
    fn new(n: usize) -> Self {
        Kiosk {
            id: format!("kiosk-{n}"),
            replica: StoreQueue::new(Queue::new(settings())),
            hlc: Hlc::default(),
            seq: 0,
        }
    }

    /// Takes a step if the local queue allows it; returns whether it did.
    fn take(&mut self, step: Step, at: OffsetDateTime) -> bool {
        if apply_step(self.replica.queue(), &step, at).is_err() {
            return false;
        }
        self.hlc.observe(self.replica.max_hlc());
        self.seq += 1;
        let op = StoreOp {
            origin: self.id.clone(),
            seq: self.seq,
            hlc: self.hlc.tick(wall_ms(at)),
            at,
            step,
        };
        let (taken, conflicts) = self.replica.merge([op]);
        assert_eq!(taken, 1);
        assert!(conflicts.is_empty(), "a local step fits the local queue");
        true
    }

    fn issue(&mut self, n: u128, service: &str, number: u32, tag: Option<u8>, at: OffsetDateTime) {
        let ok = self.take(
            Step::Issue {
                turn_id: Uuid::from_u128(n),
                service: service.into(),
                number,
                tag,
                priority: false,
                card_token: None,
                campaign_id: None,
                locale: Locale::Es,
                coupon: false,
            },
            at,
        );
        assert!(ok);
    }

    fn call_next(&mut self, counter: &str, at: OffsetDateTime) -> Option<Uuid> {
        let change = self
            .replica
            .queue()
            .plan_call_next(counter, &[], at)
            .ok()??;
        let turn_id = change.upserts[0].id;
        self.take(
            Step::Call {
                turn_id,
                counter: counter.into(),
            },
            at,
        )
        .then_some(turn_id)
    }
}

fn wall_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Copies every op `from` holds that `to` lacks (a pull by (origin, seq)).
fn pull(to: &mut Kiosk, from: &Kiosk) {
    let mut ops = Vec::new();
    for (origin, head) in from.replica.heads() {
        let have = to.replica.heads().get(origin).copied().unwrap_or(0);
        if *head > have {
            ops.extend(from.replica.ops_after(origin, have, usize::MAX));
        }
    }
    to.replica.merge(ops);
}

fn snapshot(k: &Kiosk) -> (Vec<kiosk_core::queue::Turn>, Vec<Conflict>) {
    (
        k.replica.queue().turns().to_vec(),
        k.replica.conflicts().to_vec(),
    )
}

#[test]
fn two_counters_calling_one_turn_while_cut_off_keep_the_first_call_on_every_kiosk() {
    let t0 = datetime!(2026-12-07 10:00 +01:00);
    let mut k1 = Kiosk::new(1);
    let mut k2 = Kiosk::new(2);
    k1.issue(1, "A", 1, None, t0);
    k1.issue(2, "A", 2, None, t0 + Duration::seconds(5));
    pull(&mut k2, &k1);
    // Cut off: counter 1 (on kiosk 1) and counter 2 (on kiosk 2) both call A-001; kiosk 2 a
    // little later.
    assert_eq!(
        k1.call_next("1", t0 + Duration::minutes(1)),
        Some(Uuid::from_u128(1))
    );
    assert_eq!(
        k2.call_next("2", t0 + Duration::minutes(2)),
        Some(Uuid::from_u128(1))
    );
    // Healed, in either order.
    pull(&mut k2, &k1);
    pull(&mut k1, &k2);
    assert_eq!(snapshot(&k1), snapshot(&k2));
    let turn = k1.replica.queue().turn(Uuid::from_u128(1)).expect("turn");
    assert_eq!(turn.counter.as_deref(), Some("1"), "the earlier call wins");
    let conflicts = k1.replica.conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].counter.as_deref(), Some("2"));
    assert_eq!(conflicts[0].label, "A-001");
    assert_eq!(conflicts[0].step, "call");
    // Counter 2 is free again in the merged queue: it calls the next one.
    assert!(k2.replica.queue().serving_at("2").is_none());
    assert_eq!(
        k2.call_next("2", t0 + Duration::minutes(3)),
        Some(Uuid::from_u128(2))
    );
}

#[test]
fn a_step_sorts_after_everything_its_kiosk_had_seen_even_with_a_clock_an_hour_behind() {
    let t0 = datetime!(2026-12-07 10:00 +01:00);
    let mut k1 = Kiosk::new(1);
    let mut k2 = Kiosk::new(2);
    k1.issue(1, "A", 1, None, t0);
    pull(&mut k2, &k1);
    // Kiosk 2's clock is an hour behind; its call still folds after the issue.
    assert!(k2.call_next("1", t0 - Duration::hours(1)).is_some());
    pull(&mut k1, &k2);
    assert_eq!(snapshot(&k1), snapshot(&k2));
    assert!(k1.replica.conflicts().is_empty());
    assert_eq!(
        k1.replica
            .queue()
            .turn(Uuid::from_u128(1))
            .map(|t| t.status),
        Some(TurnStatus::Called)
    );
}

#[test]
fn an_op_that_would_leave_a_gap_is_refused_until_the_missing_ones_come() {
    let t0 = datetime!(2026-12-07 10:00 +01:00);
    let mut k1 = Kiosk::new(1);
    k1.issue(1, "A", 1, None, t0);
    k1.issue(2, "A", 2, None, t0);
    let ops = k1.replica.ops_after("kiosk-1", 0, 10);
    let mut other = StoreQueue::new(Queue::new(settings()));
    assert_eq!(other.merge([ops[1].clone()]).0, 0);
    assert_eq!(other.merge(ops.clone()).0, 2);
    assert_eq!(other.merge(ops).0, 0, "ops already held are ignored");
    assert_eq!(other.heads().get("kiosk-1"), Some(&2));
}

#[derive(Debug, Clone)]
enum Action {
    Issue {
        kiosk: usize,
        service: bool,
    },
    CallNext {
        kiosk: usize,
        counter: u8,
    },
    Finish {
        kiosk: usize,
        counter: u8,
        served: bool,
    },
    Park {
        kiosk: usize,
        counter: u8,
    },
    Sync {
        to: usize,
        from: usize,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..3usize, any::<bool>()).prop_map(|(kiosk, service)| Action::Issue { kiosk, service }),
        3 => (0..3usize, 1..4u8).prop_map(|(kiosk, counter)| Action::CallNext { kiosk, counter }),
        3 => (0..3usize, 1..4u8, any::<bool>())
            .prop_map(|(kiosk, counter, served)| Action::Finish { kiosk, counter, served }),
        1 => (0..3usize, 1..4u8).prop_map(|(kiosk, counter)| Action::Park { kiosk, counter }),
        3 => (0..3usize, 0..3usize).prop_map(|(to, from)| Action::Sync { to, from }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Three kiosks take steps while syncing in arbitrary patterns (partitions are stretches
    /// without syncs); after a full sync every kiosk holds the same queue and the same
    /// conflicts, and no label was issued twice (each kiosk numbers from its own tag here, the
    /// cut-off rule, so numbering cannot be the reason for agreement).
    #[test]
    fn every_kiosk_computes_the_same_queue_whatever_the_delivery_order(
        actions in proptest::collection::vec(action(), 1..150),
    ) {
        let t0 = datetime!(2026-12-07 10:00 +01:00);
        let mut kiosks: Vec<Kiosk> = (1..=3).map(Kiosk::new).collect();
        let mut next_id = 1u128;
        let mut numbers = [0u32; 3];
        for (i, a) in actions.iter().enumerate() {
            let at = t0 + Duration::seconds(i64::try_from(i).unwrap_or(0) * 7);
            match *a {
                Action::Issue { kiosk, service } => {
                    numbers[kiosk] += 1;
                    let tag = numbering::tag_of(kiosk);
                    let service = if service { "A" } else { "B" };
                    kiosks[kiosk].issue(next_id, service, numbers[kiosk], Some(tag), at);
                    next_id += 1;
                }
                Action::CallNext { kiosk, counter } => {
                    kiosks[kiosk].call_next(&counter.to_string(), at);
                }
                Action::Finish { kiosk, counter, served } => {
                    let c = counter.to_string();
                    if let Some(t) = kiosks[kiosk].replica.queue().serving_at(&c).map(|t| t.id) {
                        let step = if served {
                            Step::Serve { turn_id: t, counter: c }
                        } else {
                            Step::NoShow { turn_id: t, counter: c }
                        };
                        kiosks[kiosk].take(step, at);
                    }
                }
                Action::Park { kiosk, counter } => {
                    let c = counter.to_string();
                    if let Some(t) = kiosks[kiosk].replica.queue().serving_at(&c).map(|t| t.id) {
                        kiosks[kiosk].take(Step::Park { turn_id: t, counter: c }, at);
                    }
                }
                Action::Sync { to, from } if to != from => {
                    let (a, b) = if to < from {
                        let (l, r) = kiosks.split_at_mut(from);
                        (&mut l[to], &r[0])
                    } else {
                        let (l, r) = kiosks.split_at_mut(to);
                        (&mut r[0], &l[from])
                    };
                    pull(a, b);
                }
                Action::Sync { .. } => {}
            }
        }
        // Heal: everyone pulls from everyone, twice round.
        for _ in 0..2 {
            for to in 0..3 {
                for from in 0..3 {
                    if to != from {
                        let from_k = Kiosk {
                            id: kiosks[from].id.clone(),
                            replica: kiosks[from].replica.clone(),
                            hlc: kiosks[from].hlc,
                            seq: kiosks[from].seq,
                        };
                        pull(&mut kiosks[to], &from_k);
                    }
                }
            }
        }
        let first = snapshot(&kiosks[0]);
        for k in &kiosks[1..] {
            prop_assert_eq!(&snapshot(k), &first);
        }
        // A fresh fold of the same ops in one go agrees with the incremental ones.
        let mut fresh = StoreQueue::new(Queue::new(settings()));
        let mut all = Vec::new();
        for k in &kiosks {
            all.extend(k.replica.ops_after(&k.id, 0, usize::MAX));
        }
        fresh.merge(all);
        prop_assert_eq!(fresh.queue().turns(), first.0.as_slice());
        prop_assert_eq!(fresh.conflicts(), first.1.as_slice());
        let mut labels: Vec<String> = first.0.iter().map(|t| t.label()).collect();
        let n = labels.len();
        labels.sort();
        labels.dedup();
        prop_assert_eq!(labels.len(), n);
        // A counter serves at most one turn in the merged queue.
        let mut serving: Vec<&str> = first.0.iter()
            .filter(|t| t.status == TurnStatus::Called)
            .filter_map(|t| t.counter.as_deref())
            .collect();
        let s = serving.len();
        serving.sort_unstable();
        serving.dedup();
        prop_assert_eq!(serving.len(), s);
    }
}

#[test]
fn a_turn_is_rated_once_after_it_was_served_whichever_kiosk_the_answer_came_from() {
    let t0 = datetime!(2026-12-07 10:00 +01:00);
    let mut k1 = Kiosk::new(1);
    let mut k2 = Kiosk::new(2);
    let turn = Uuid::from_u128(1);
    k1.issue(1, "A", 1, None, t0);
    pull(&mut k2, &k1);
    assert_eq!(k2.replica.survey_status(turn), SurveyStatus::NotServed);
    assert_eq!(
        k2.replica.survey_status(Uuid::from_u128(99)),
        SurveyStatus::Unknown
    );
    assert_eq!(k1.call_next("1", t0 + Duration::minutes(1)), Some(turn));
    assert_eq!(k1.replica.survey_status(turn), SurveyStatus::NotServed);
    assert!(k1.take(
        Step::Serve {
            turn_id: turn,
            counter: "1".into()
        },
        t0 + Duration::minutes(4)
    ));
    pull(&mut k2, &k1);
    assert_eq!(k2.replica.survey_status(turn), SurveyStatus::Open);
    // Answered at kiosk 2; kiosk 1 learns it with the next pull.
    assert!(k2.take(Step::Rate { turn_id: turn }, t0 + Duration::minutes(6)));
    assert_eq!(
        k2.replica.survey_status(turn),
        SurveyStatus::AlreadyAnswered
    );
    assert_eq!(k1.replica.survey_status(turn), SurveyStatus::Open);
    pull(&mut k1, &k2);
    assert_eq!(
        k1.replica.survey_status(turn),
        SurveyStatus::AlreadyAnswered
    );
    // A mark is not a queue step: the queues agree and nothing conflicts.
    assert_eq!(snapshot(&k1), snapshot(&k2));
    assert!(k1.replica.conflicts().is_empty());
    // The mark survives a refold and a prune that keeps its day.
    k1.replica
        .prune(ServiceDay::at(t0, time!(09:00)).previous(), time!(09:00));
    assert_eq!(
        k1.replica.survey_status(turn),
        SurveyStatus::AlreadyAnswered
    );
}

#[test]
fn a_walked_out_turn_has_nothing_to_rate_and_a_redeemed_coupon_is_known_store_wide() {
    let t0 = datetime!(2026-12-07 10:00 +01:00);
    let mut k1 = Kiosk::new(1);
    let mut k2 = Kiosk::new(2);
    k1.issue(1, "A", 1, None, t0);
    assert!(k1.take(
        Step::WalkOut {
            turn_id: Uuid::from_u128(1),
            counter: None
        },
        t0 + Duration::minutes(1)
    ));
    assert_eq!(
        k1.replica.survey_status(Uuid::from_u128(1)),
        SurveyStatus::Closed
    );
    assert!(!k2.replica.coupon_redeemed("CAFE-A-1234"));
    assert!(k1.take(
        Step::Redeem {
            code: "CAFE-A-1234".into(),
            campaign_id: "c".into(),
            variant: "a".into()
        },
        t0 + Duration::minutes(2)
    ));
    pull(&mut k2, &k1);
    assert!(k2.replica.coupon_redeemed("CAFE-A-1234"));
    assert!(!k2.replica.coupon_redeemed("CAFE-A-9999"));
}

fn assist(k: &mut Kiosk, n: u128, at: OffsetDateTime) -> Uuid {
    let request_id = Uuid::from_u128(1000 + n);
    let place = k.id.clone();
    assert!(k.take(
        Step::AssistRequest {
            request_id,
            source: "kiosk".into(),
            place: place.clone(),
            place_name: format!("Quiosco {place}"),
            turn_id: None,
        },
        at,
    ));
    request_id
}

fn ack(k: &mut Kiosk, request_id: Uuid, counter: &str, at: OffsetDateTime) {
    assert!(k.take(
        Step::AssistAck {
            request_id,
            counter: counter.into(),
        },
        at,
    ));
}

#[test]
fn an_assistance_request_shows_on_every_kiosk_until_one_counter_acknowledges_it() {
    let t0 = datetime!(2026-12-07 10:00 +01:00);
    let mut k1 = Kiosk::new(1);
    let mut k2 = Kiosk::new(2);
    let id = assist(&mut k1, 1, t0);
    pull(&mut k2, &k1);
    assert_eq!(k2.replica.open_assistance().len(), 1);
    assert_eq!(k2.replica.open_assistance()[0].place, "kiosk-1");
    ack(&mut k2, id, "3", t0 + Duration::seconds(42));
    assert!(k2.replica.open_assistance().is_empty());
    assert_eq!(k1.replica.open_assistance().len(), 1, "not heard yet");
    pull(&mut k1, &k2);
    assert!(k1.replica.open_assistance().is_empty());
    let r = k1.replica.assist_request(id).expect("held");
    let a = r.acknowledged.clone().expect("acknowledged");
    assert_eq!((a.counter.as_str(), a.origin.as_str()), ("3", "kiosk-2"));
    assert_eq!(r.response_ms(a.at), 42_000);
    // The queue is untouched by the marks.
    assert!(k1.replica.queue().turns().is_empty());
    assert!(k1.replica.conflicts().is_empty());
}

#[test]
fn requests_taken_while_cut_off_show_locally_and_merge_with_the_first_acknowledgement_standing() {
    let t0 = datetime!(2026-12-07 10:00 +01:00);
    let mut k1 = Kiosk::new(1);
    let mut k2 = Kiosk::new(2);
    let shared = assist(&mut k1, 1, t0);
    pull(&mut k2, &k1);
    // Cut off: each kiosk takes a request of its own and both counters acknowledge the shared
    // one, kiosk 2's a little later.
    let own1 = assist(&mut k1, 2, t0 + Duration::seconds(10));
    let own2 = assist(&mut k2, 3, t0 + Duration::seconds(11));
    ack(&mut k1, shared, "1", t0 + Duration::seconds(20));
    ack(&mut k2, shared, "2", t0 + Duration::seconds(30));
    let open = |k: &Kiosk| -> Vec<Uuid> {
        k.replica
            .open_assistance()
            .iter()
            .map(|r| r.request_id)
            .collect()
    };
    assert_eq!(open(&k1), vec![own1]);
    assert_eq!(open(&k2), vec![own2]);
    // Healed, in either order: the same picture everywhere.
    pull(&mut k2, &k1);
    pull(&mut k1, &k2);
    assert_eq!(open(&k1), vec![own1, own2]);
    assert_eq!(k1.replica.assistance(), k2.replica.assistance());
    let a = k2
        .replica
        .assist_request(shared)
        .and_then(|r| r.acknowledged)
        .expect("acknowledged");
    assert_eq!(a.counter, "1", "the earlier acknowledgement stands");
}

#[test]
fn an_acknowledgement_arriving_before_its_request_still_clears_it() {
    let t0 = datetime!(2026-12-07 10:00 +01:00);
    let mut k1 = Kiosk::new(1);
    let mut k2 = Kiosk::new(2);
    let id = assist(&mut k1, 1, t0);
    pull(&mut k2, &k1);
    ack(&mut k2, id, "2", t0 + Duration::seconds(5));
    // A third kiosk hears kiosk 2 first.
    let mut k3 = Kiosk::new(3);
    k3.replica
        .merge(k2.replica.ops_after("kiosk-2", 0, usize::MAX));
    assert!(k3.replica.open_assistance().is_empty());
    pull(&mut k3, &k1);
    assert!(k3.replica.open_assistance().is_empty());
    assert_eq!(k3.replica.assistance().len(), 1);
}

/// Settings of a newer store configuration: a third service `C` with priority turns, and the
/// store opening an hour earlier.
fn settings_v4() -> QueueSettings {
    let mut s = settings();
    s.services.push(ServiceDef {
        letter: "C".into(),
        name: Localized::new("Devoluciones", "Returns"),
        priority_allowed: true,
        expected_s: 300,
    });
    s.opening_time = time!(08:00);
    s
}

/// docs/DESIGN.md invariant 20: while one kiosk runs store configuration v4 and another still
/// v3 (for up to a feed interval), the older one keeps every turn the newer one issues, even
/// of a service it does not offer yet, and its counters can call them; once it applies v4 the
/// two compute the same queue.
#[test]
fn a_kiosk_on_an_older_configuration_keeps_and_calls_turns_of_a_newer_service_and_agrees_after_applying_it()
 {
    let day = datetime!(2026-11-23 08:30 UTC);
    let mut newer = Kiosk::new(1);
    newer.replica.set_settings(settings_v4());
    let mut older = Kiosk::new(2);
    newer.issue(1, "C", 1, None, day);
    assert!(newer.take(
        Step::Issue {
            turn_id: Uuid::from_u128(2),
            service: "C".into(),
            number: 2,
            tag: None,
            priority: true,
            card_token: None,
            campaign_id: None,
            locale: Locale::Es,
            coupon: false,
        },
        day + Duration::minutes(1),
    ));
    older.issue(3, "A", 1, None, day + Duration::minutes(2));
    pull(&mut older, &newer);
    pull(&mut newer, &older);
    assert!(
        older.replica.conflicts().is_empty() && newer.replica.conflicts().is_empty(),
        "no turn of the newer service is dropped: {:?}",
        older.replica.conflicts()
    );
    let labels = |k: &Kiosk| {
        let mut l: Vec<String> = k
            .replica
            .queue()
            .turns()
            .iter()
            .map(|t| t.label())
            .collect();
        l.sort();
        l
    };
    assert_eq!(labels(&older), ["A-001", "C-001", "C-002"]);
    assert_eq!(labels(&older), labels(&newer));
    // For the moment the versions differ, the new opening time puts 08:30 in another service
    // day on each kiosk: the one thing that differs, until the older kiosk applies v4.
    let days = |k: &Kiosk| -> Vec<ServiceDay> {
        k.replica
            .queue()
            .turns()
            .iter()
            .map(|t| t.service_day)
            .collect()
    };
    assert_ne!(days(&older), days(&newer));
    // Its counter pages show the newer service's waiting turns under their letter.
    let board = older.replica.queue().board(day + Duration::minutes(2));
    let c = board.services.iter().find(|s| s.letter == "C");
    assert_eq!(c.map(|s| s.waiting), Some(2), "{:?}", board.services);
    // The older kiosk's counter calls the priority turn of the service it does not list first.
    assert_eq!(
        older.call_next("caja 1", day + Duration::minutes(3)),
        Some(Uuid::from_u128(2))
    );
    pull(&mut newer, &older);
    older.replica.set_settings(settings_v4());
    assert_eq!(snapshot(&older), snapshot(&newer));
    let called = newer
        .replica
        .queue()
        .turn(Uuid::from_u128(2))
        .map(|t| t.status);
    assert_eq!(called, Some(TurnStatus::Called));
}
