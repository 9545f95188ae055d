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
            },
            ServiceDef {
                letter: "B".into(),
                name: Localized::new("Atención", "Customer care"),
                priority_allowed: false,
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
fn estimated_wait_is_the_median_service_time_times_turns_ahead_over_open_counters() {
    let mut q = Queue::new(settings());
    let t0 = datetime!(2025-03-10 10:00 +01:00);
    // Before any service: the default (240 s per turn).
    assert_eq!(q.estimate_wait_s("A", 2, t0), 480);
    // Three served turns taking 60, 120 and 600 s at counter 1: the median is 120 s.
    for (i, secs) in [(1u128, 60i64), (2, 120), (3, 600)] {
        issue(&mut q, i, "A", false, t0);
        let at = t0 + Duration::minutes(i as i64 * 20);
        step!(q, plan_call(Uuid::from_u128(i), "1", at));
        step!(
            q,
            plan_served(Uuid::from_u128(i), "1", at + Duration::seconds(secs))
        );
    }
    let now = t0 + Duration::minutes(70);
    assert_eq!(q.estimate_wait_s("A", 3, now), 360);
    // A second counter starts calling A: the same three turns ahead wait half as long.
    issue(&mut q, 4, "A", false, now);
    step!(q, plan_call(Uuid::from_u128(4), "2", now));
    assert_eq!(q.estimate_wait_s("A", 3, now), 180);
    // An hour later both counters count as closed again; one is assumed.
    assert_eq!(q.estimate_wait_s("A", 3, now + Duration::hours(1)), 360);
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
