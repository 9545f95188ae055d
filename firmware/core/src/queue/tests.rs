use proptest::prelude::*;
use time::macros::{datetime, time};

use super::*;
use crate::locale::Localized;

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
                expected_s: 240,
            },
        ],
        time!(09:00),
    )
}

fn request(n: u128, service: &str, priority: bool) -> IssueRequest {
    IssueRequest {
        turn_id: Uuid::from_u128(n),
        service: service.into(),
        priority,
        card_token: None,
        campaign_id: None,
        locale: Locale::Es,
    }
}

fn issue(
    q: &mut Queue,
    n: u128,
    service: &str,
    priority: bool,
    at: OffsetDateTime,
) -> TicketIssued {
    let plan = q
        .plan_issue(request(n, service, priority), at)
        .expect("issue");
    q.apply(&plan.change);
    plan.ticket
}

/// Plans a step on the queue, expects it to be allowed, applies it and returns the change.
macro_rules! step {
    ($q:ident, $($call:tt)*) => {{
        let change: Change = $q.$($call)*.expect("queue step");
        $q.apply(&change);
        change
    }};
}

#[test]
fn turns_are_numbered_per_service_with_three_digit_labels() {
    let mut q = Queue::new(settings());
    let now = datetime!(2025-03-10 10:00 +01:00);
    assert_eq!(issue(&mut q, 1, "A", false, now).turn, "A-001");
    assert_eq!(issue(&mut q, 2, "A", false, now).turn, "A-002");
    assert_eq!(issue(&mut q, 3, "B", false, now).turn, "B-001");
    assert_eq!(turn_label("A", 1234), "A-1234");
}

#[test]
fn numbering_restarts_at_the_opening_time_not_at_midnight() {
    let mut q = Queue::new(settings());
    let evening = datetime!(2025-03-10 20:00 +01:00);
    let after_midnight = datetime!(2025-03-11 00:30 +01:00);
    let next_morning = datetime!(2025-03-11 09:00 +01:00);
    issue(&mut q, 1, "A", false, evening);
    let late = issue(&mut q, 2, "A", false, after_midnight);
    assert_eq!(late.turn, "A-002");
    assert_eq!(late.business_day, "2025-03-10");
    let first = issue(&mut q, 3, "A", false, next_morning);
    assert_eq!(first.turn, "A-001");
    assert_eq!(first.business_day, "2025-03-11");
}

#[test]
fn a_planned_turn_that_was_never_applied_does_not_change_the_queue() {
    let q = Queue::new(settings());
    let now = datetime!(2025-03-10 10:00 +01:00);
    let plan = q.plan_issue(request(1, "A", false), now).expect("plan");
    assert_eq!(plan.ticket.number, 1);
    // The journal transaction failed: nothing applied.
    let again = q.plan_issue(request(2, "A", false), now).expect("plan");
    assert_eq!(again.ticket.number, 1);
    assert!(q.turns().is_empty());
}

#[test]
fn a_restored_queue_never_issues_a_number_twice() {
    let mut q = Queue::new(settings());
    let now = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, now);
    issue(&mut q, 2, "A", false, now);
    let (counters, turns) = q.persisted();
    let json = serde_json::to_string(&(counters, turns)).expect("serialise");
    let (counters, turns): (Vec<DayCounter>, Vec<Turn>) =
        serde_json::from_str(&json).expect("parse");

    let mut restored = Queue::restore(settings(), counters, Vec::new());
    assert_eq!(issue(&mut restored, 3, "A", false, now).turn, "A-003");
    // Even with the counter rows lost, the turn rows hold the numbers taken.
    let mut from_turns = Queue::restore(settings(), Vec::new(), turns);
    assert_eq!(issue(&mut from_turns, 4, "A", false, now).turn, "A-003");
}

#[test]
fn the_same_turn_id_cannot_be_issued_twice() {
    let mut q = Queue::new(settings());
    let now = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, now);
    assert_eq!(
        q.plan_issue(request(1, "A", false), now),
        Err(QueueError::DuplicateTurn(Uuid::from_u128(1)))
    );
}

#[test]
fn unknown_services_and_unoffered_priority_are_refused() {
    let q = Queue::new(settings());
    let now = datetime!(2025-03-10 10:00 +01:00);
    assert!(matches!(
        q.plan_issue(request(1, "Z", false), now),
        Err(QueueError::UnknownService(_))
    ));
    assert!(matches!(
        q.plan_issue(request(1, "B", true), now),
        Err(QueueError::PriorityNotOffered(_))
    ));
}

#[test]
fn priority_turns_are_called_first_then_first_come_first_served() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    issue(&mut q, 2, "B", false, t0 + Duration::minutes(1));
    let p = issue(&mut q, 3, "A", true, t0 + Duration::minutes(2));
    assert_eq!(
        p.position, 0,
        "a priority turn goes before the ordinary ones"
    );

    let all: Vec<String> = Vec::new();
    let order: Vec<String> = (0..3)
        .map(|i| {
            let now = t0 + Duration::minutes(10 + i);
            let change = q
                .plan_call_next("1", &all, now)
                .expect("call")
                .expect("someone waits");
            q.apply(&change);
            let id = change.upserts[0].id;
            step!(q, plan_served(id, "1", now + Duration::seconds(30)));
            change.upserts[0].label()
        })
        .collect();
    assert_eq!(order, ["A-002", "A-001", "B-001"]);
    assert_eq!(
        q.plan_call_next("1", &all, t0 + Duration::hours(1)),
        Ok(None)
    );
}

#[test]
fn a_counter_calls_only_the_services_it_serves() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    issue(&mut q, 2, "B", false, t0 + Duration::minutes(1));
    let change = q
        .plan_call_next("2", &["B".to_owned()], t0 + Duration::minutes(5))
        .expect("call")
        .expect("b waits");
    assert_eq!(change.upserts[0].label(), "B-001");
    match &change.events[0] {
        Event::TurnCalled(c) => {
            assert_eq!(c.counter, "2");
            assert!(!c.recall);
            assert_eq!(c.waited_s, 240);
        }
        other => panic!("expected turn_called, got {other:?}"),
    }
}

#[test]
fn a_busy_counter_must_finish_its_turn_before_calling_the_next() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    issue(&mut q, 2, "A", false, t0);
    step!(q, plan_call_next("1", &[], t0).map(|c| c.expect("waits")));
    assert!(matches!(
        q.plan_call_next("1", &[], t0),
        Err(QueueError::CounterBusy { .. })
    ));
    step!(
        q,
        plan_no_show(Uuid::from_u128(1), "1", t0 + Duration::minutes(2))
    );
    assert_eq!(
        q.turn(Uuid::from_u128(1)).map(|t| t.status),
        Some(TurnStatus::NoShow)
    );
    assert!(
        q.plan_call_next("1", &[], t0)
            .expect("free again")
            .is_some()
    );
}

#[test]
fn recall_counts_calls_and_keeps_the_first_wait() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    let id = Uuid::from_u128(1);
    step!(q, plan_call(id, "3", t0 + Duration::minutes(1)));
    let change = step!(q, plan_recall(id, "3", t0 + Duration::minutes(2)));
    match &change.events[0] {
        Event::TurnCalled(c) => {
            assert!(c.recall);
            assert_eq!(c.waited_s, 60);
        }
        other => panic!("expected turn_called, got {other:?}"),
    }
    assert_eq!(q.turn(id).map(|t| t.calls), Some(2));
    assert!(matches!(
        q.plan_recall(id, "4", t0),
        Err(QueueError::OtherCounter { .. })
    ));
    step!(q, plan_served(id, "3", t0 + Duration::minutes(5)));
    assert!(matches!(
        q.plan_recall(id, "3", t0),
        Err(QueueError::WrongStatus { .. })
    ));
}

#[test]
fn estimated_wait_uses_configured_times_until_five_served_then_the_mean_shared_by_open_counters() {
    let mut settings = settings();
    settings.services[1].expected_s = 480;
    settings.counters = 2;
    let mut q = Queue::new(settings);
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    assert_eq!(q.estimate_new_s("A", t0), 0, "nobody ahead, nobody served");
    // Three A and one B wait; no counter serves yet, so the configured 2 are assumed open:
    // (3 × 240 + 480) / 2.
    for (i, service) in [(1u128, "A"), (2, "A"), (3, "B"), (4, "A")] {
        issue(&mut q, i, service, false, t0);
    }
    assert_eq!(q.estimate_new_s("A", t0), 600);
    assert_eq!(
        q.estimate_new_s("B", t0),
        600,
        "counters call across services"
    );
    // Counter 1 serves the first turn: one counter is open, the three waiting turns and half of
    // the one being served are ahead: 240 + 480 + 240 + 120.
    let t1 = t0 + Duration::minutes(1);
    step!(q, plan_call(Uuid::from_u128(1), "1", t1));
    assert_eq!(q.estimate_new_s("A", t1), 1080);
    // Four A turns served in 60 s each: still under the minimum sample, A stays at 240 s.
    let mut at = t1;
    for i in [1u128, 2, 4] {
        if i != 1 {
            step!(q, plan_call(Uuid::from_u128(i), "1", at));
        }
        at += Duration::seconds(60);
        step!(q, plan_served(Uuid::from_u128(i), "1", at));
    }
    for i in 10..11u128 {
        issue(&mut q, i, "A", false, at);
        step!(q, plan_call(Uuid::from_u128(i), "1", at));
        at += Duration::seconds(60);
        step!(q, plan_served(Uuid::from_u128(i), "1", at));
    }
    assert_eq!(q.service_time_s("A"), 240, "4 served: the configured time");
    issue(&mut q, 11, "A", false, at);
    step!(q, plan_call(Uuid::from_u128(11), "1", at));
    at += Duration::seconds(90);
    step!(q, plan_served(Uuid::from_u128(11), "1", at));
    assert_eq!(
        q.service_time_s("A"),
        66,
        "5 served: their mean (60, 60, 60, 60, 90)"
    );
    // B (480 s) still waits; counter 1 finished a turn just now, so one counter is open.
    assert_eq!(q.open_counters(at), 1);
    assert_eq!(q.estimate_new_s("A", at), 480);
    // Ten minutes later nobody serves: the configured two counters again.
    assert_eq!(q.open_counters(at + Duration::minutes(10)), 2);
}

#[test]
fn a_priority_turn_is_ahead_of_everyone_and_waits_only_for_other_priority_turns() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    for i in 1..=3u128 {
        issue(&mut q, i, "A", false, t0);
    }
    let p = issue(&mut q, 4, "A", true, t0 + Duration::minutes(1));
    assert_eq!(p.position, 0);
    assert_eq!(p.estimated_wait_s, 0);
    let late = issue(&mut q, 5, "B", false, t0 + Duration::minutes(2));
    assert_eq!(
        late.position, 4,
        "every earlier turn, of any service, is called first"
    );
}

#[test]
fn turns_left_waiting_overnight_expire_when_the_next_day_starts() {
    let mut q = Queue::new(settings());
    issue(&mut q, 1, "A", false, datetime!(2025-03-10 19:00 +01:00));
    let next = issue(&mut q, 2, "A", false, datetime!(2025-03-11 09:30 +01:00));
    assert_eq!(next.position, 0);
    assert_eq!(
        q.turn(Uuid::from_u128(1)).map(|t| t.status),
        Some(TurnStatus::Expired)
    );
}

#[test]
fn the_board_shows_serving_turns_and_recent_calls_newest_first() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    issue(&mut q, 2, "A", false, t0);
    issue(&mut q, 3, "B", false, t0);
    step!(
        q,
        plan_call(Uuid::from_u128(1), "1", t0 + Duration::minutes(1))
    );
    step!(
        q,
        plan_call(Uuid::from_u128(3), "2", t0 + Duration::minutes(2))
    );
    let board = q.board(t0 + Duration::minutes(3));
    assert_eq!(board.serving.len(), 2);
    let calls: Vec<&str> = board
        .recent_calls
        .iter()
        .map(|c| c.label.as_str())
        .collect();
    assert_eq!(calls, ["B-001", "A-001"]);
    assert_eq!(board.services[0].waiting, 1);
    assert_eq!(board.services[0].next.as_deref(), Some("A-002"));
    assert_eq!(board.service_day.to_string(), "2025-03-10");
}

#[test]
fn the_report_counts_issued_served_and_no_shows_with_average_waits() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    issue(&mut q, 2, "A", false, t0);
    step!(
        q,
        plan_call(Uuid::from_u128(1), "1", t0 + Duration::seconds(100))
    );
    step!(
        q,
        plan_served(Uuid::from_u128(1), "1", t0 + Duration::seconds(200))
    );
    step!(
        q,
        plan_call(Uuid::from_u128(2), "1", t0 + Duration::seconds(300))
    );
    step!(
        q,
        plan_no_show(Uuid::from_u128(2), "1", t0 + Duration::seconds(400))
    );
    let report = q.report(ServiceDay::at(t0, time!(09:00)));
    let a = &report.services[0];
    assert_eq!((a.issued, a.served, a.no_show, a.waiting), (2, 1, 1, 0));
    assert_eq!(a.average_wait_s, Some(200));
    assert_eq!(a.average_service_s, Some(100));
}

#[derive(Debug, Clone)]
enum Op {
    Issue {
        service: bool,
        priority: bool,
        minutes: u8,
    },
    CallNext {
        counter: u8,
    },
    Served {
        counter: u8,
    },
    NoShow {
        counter: u8,
    },
    Recall {
        counter: u8,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>(), 0u8..200).prop_map(|(service, priority, minutes)| Op::Issue { service, priority, minutes }),
        2 => (0u8..3).prop_map(|counter| Op::CallNext { counter }),
        2 => (0u8..3).prop_map(|counter| Op::Served { counter }),
        1 => (0u8..3).prop_map(|counter| Op::NoShow { counter }),
        1 => (0u8..3).prop_map(|counter| Op::Recall { counter }),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    /// Whatever staff and customers do, across restarts and day changes: no (day, label) is ever
    /// issued twice, and a counter serves at most one turn at a time.
    #[test]
    fn no_label_is_ever_issued_twice_in_a_service_day(ops in proptest::collection::vec(op(), 1..120)) {
        let mut q = Queue::new(settings());
        let mut now = datetime!(2025-03-10 08:00 +01:00);
        let mut seen = std::collections::HashSet::new();
        let mut next_id = 1u128;
        for op in ops {
            match op {
                Op::Issue { service, priority, minutes } => {
                    now += Duration::minutes(i64::from(minutes));
                    let letter = if service { "A" } else { "B" };
                    if let Ok(plan) = q.plan_issue(request(next_id, letter, priority && service), now) {
                        prop_assert!(seen.insert((plan.ticket.business_day.clone(), plan.ticket.turn.clone())));
                        q.apply(&plan.change);
                    }
                    next_id += 1;
                }
                Op::CallNext { counter } => {
                    if let Ok(Some(c)) = q.plan_call_next(&counter.to_string(), &[], now) { q.apply(&c); }
                }
                Op::Served { counter } | Op::NoShow { counter } | Op::Recall { counter } => {
                    let c = counter.to_string();
                    if let Some(id) = q.serving_at(&c).map(|t| t.id) {
                        let change = match op {
                            Op::Served { .. } => q.plan_served(id, &c, now),
                            Op::NoShow { .. } => q.plan_no_show(id, &c, now),
                            _ => q.plan_recall(id, &c, now),
                        };
                        prop_assert!(change.is_ok());
                        if let Ok(change) = change { q.apply(&change); }
                    }
                }
                Op::Restart => {
                    let (counters, turns) = q.persisted();
                    q = Queue::restore(settings(), counters, turns);
                }
            }
            for counter in ["0", "1", "2"] {
                let serving = q.turns().iter().filter(|t| t.status == TurnStatus::Called && t.counter.as_deref() == Some(counter)).count();
                prop_assert!(serving <= 1);
            }
        }
    }
}

#[test]
fn a_parked_turn_frees_its_counter_and_is_called_back_as_a_recall() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    issue(&mut q, 2, "A", false, t0 + Duration::minutes(1));
    let id = Uuid::from_u128(1);
    step!(q, plan_call(id, "1", t0 + Duration::minutes(2)));
    let parked = step!(q, plan_park(id, "1", t0 + Duration::minutes(3)));
    assert!(matches!(parked.events[0], Event::TurnParked(_)));
    assert_eq!(q.board(t0).parked.len(), 1);
    // Counter 1 is free: it calls the next turn, not the parked one.
    let next = q
        .plan_call_next("1", &[], t0 + Duration::minutes(4))
        .expect("allowed")
        .expect("a turn");
    q.apply(&next);
    assert_eq!(next.upserts[0].id, Uuid::from_u128(2));
    // Counter 2 calls the parked turn back: a recall, with the wait of its first call.
    let back = step!(q, plan_call(id, "2", t0 + Duration::minutes(9)));
    match &back.events[0] {
        Event::TurnCalled(c) => {
            assert!(c.recall);
            assert_eq!(c.waited_s, 120);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.turn(id).map(|t| t.calls), Some(2));
}

#[test]
fn the_recall_limit_turns_the_last_recall_into_a_no_show() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    let id = Uuid::from_u128(1);
    step!(q, plan_call(id, "1", t0));
    step!(q, plan_recall(id, "1", t0 + Duration::minutes(1)));
    step!(q, plan_recall(id, "1", t0 + Duration::minutes(2)));
    let last = step!(q, plan_recall(id, "1", t0 + Duration::minutes(3)));
    match &last.events[0] {
        Event::TurnNoShow(n) => assert!(n.recall_limit),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.turn(id).map(|t| t.status), Some(TurnStatus::NoShow));
    assert!(q.serving_at("1").is_none());
}

#[test]
fn a_transferred_turn_keeps_its_label_and_its_place_by_issue_time() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    issue(&mut q, 2, "B", false, t0 + Duration::minutes(1));
    issue(&mut q, 3, "B", false, t0 + Duration::minutes(2));
    let id = Uuid::from_u128(1);
    step!(q, plan_call(id, "1", t0 + Duration::minutes(3)));
    let moved = step!(
        q,
        plan_transfer(id, "B", Some("1"), t0 + Duration::minutes(4))
    );
    match &moved.events[0] {
        Event::TurnTransferred(t) => {
            assert_eq!((t.turn.as_str(), t.from_service.as_str()), ("A-001", "A"));
            assert_eq!(t.to_service, "B");
        }
        other => panic!("{other:?}"),
    }
    assert!(q.serving_at("1").is_none());
    // First in B's line: it was issued before both B turns.
    let next = q
        .plan_call_next("2", &["B".to_owned()], t0 + Duration::minutes(5))
        .expect("allowed")
        .expect("a turn");
    q.apply(&next);
    assert_eq!(next.upserts[0].label(), "A-001");
    assert!(matches!(
        q.plan_transfer(Uuid::from_u128(2), "B", None, t0),
        Err(QueueError::SameService { .. })
    ));
    // Its number stays reserved in A: the next A turn is A-002.
    assert_eq!(
        issue(&mut q, 4, "A", false, t0 + Duration::minutes(6)).turn,
        "A-002"
    );
}

#[test]
fn a_walkout_is_only_for_turns_never_served_and_differs_from_a_no_show() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    issue(&mut q, 2, "A", false, t0);
    step!(q, plan_walkout(Uuid::from_u128(1), Some("1"), t0));
    step!(q, plan_call(Uuid::from_u128(2), "1", t0));
    assert!(matches!(
        q.plan_walkout(Uuid::from_u128(2), None, t0),
        Err(QueueError::WrongStatus { .. })
    ));
    step!(q, plan_no_show(Uuid::from_u128(2), "1", t0));
    let day = ServiceDay::at(t0, time!(09:00));
    let report = q.report(day);
    assert_eq!(
        (report.services[0].walked_out, report.services[0].no_show),
        (1, 1)
    );
}

#[test]
fn a_turn_is_called_by_its_label_and_tagged_numbers_never_equal_store_labels() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    issue(&mut q, 1, "A", false, t0);
    let off = q
        .plan_issue_numbered(
            request(2, "A", false),
            Numbering {
                number: 1,
                tag: Some(2),
            },
            t0,
        )
        .expect("tagged issue");
    q.apply(&off.change);
    assert_eq!(off.ticket.turn, "A2-001");
    assert!(off.ticket.out_of_sequence);
    assert!(
        off.change.counter.is_none(),
        "a tagged number does not move the store's sequence"
    );
    assert!(matches!(
        q.plan_issue_numbered(request(3, "A", false), Numbering { number: 1, tag: None }, t0),
        Err(QueueError::DuplicateLabel(l)) if l == "A-001"
    ));
    let called = step!(q, plan_call_label(" a2-001 ", "1", t0));
    assert_eq!(called.upserts[0].id, Uuid::from_u128(2));
    assert!(matches!(
        q.plan_call_label("A-999", "2", t0),
        Err(QueueError::UnknownLabel(_))
    ));
}
