//! Each store's live queue on the dashboard, on SQLite and on a throwaway PostgreSQL, against a
//! known truth: a scripted day of two kiosks of one store sharing one queue (tickets issued at
//! both, a counter served by kiosk 2 calling kiosk 1's turns, a transfer, a park and call-back, a
//! walkout, a no-show at the recall limit, a conflict after a partition, a ticket out of
//! sequence), sent as signed batches out of order (kiosk 1's offline batch arrives last, its
//! events listed backwards) and once more (duplicates), answered with exact figures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{ADMIN, Backend, Harness, Kiosk};
use crm_endpoint::db::queue::{CallRecord, KioskIssued, OpenCounter, ServiceQueue, TurnStatus};
use crm_endpoint::db::{IngestBatch, IngestEvent, LiveQueue};
use crm_endpoint::ingest::{effect_of, ops_of, queue_step_of};
use kiosk_protocol::events::{
    Envelope, Event, QueueConflict, TicketIssued, TurnCalled, TurnNoShow, TurnParked, TurnServed,
    TurnTransferred, TurnWalkedOut,
};
use kiosk_protocol::wire::{BatchRequest, EventStatus, KioskClock, batches_path};
use reqwest::StatusCode;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

const MIN: i64 = 60_000;

/// A turn of the script.
#[derive(Clone, Copy)]
struct Turn {
    id: Uuid,
    label: &'static str,
}

fn turn(label: &'static str) -> Turn {
    Turn {
        id: Uuid::now_v7(),
        label,
    }
}

/// The day being scripted: event times are minutes after `t0` on the kiosks' clocks, events of
/// an earlier boot (so the endpoint places them at wall time plus the kiosk's skew).
struct Day {
    t0: i64,
    day: String,
    timezone: String,
    boots: HashMap<String, Uuid>,
    seqs: HashMap<String, u64>,
    /// Each accepted event's time as the endpoint stores it (wall time + the batch's skew).
    at: HashMap<Uuid, i64>,
}

impl Day {
    /// A day whose local time now is about noon (a fixed-offset zone chosen for it), so that
    /// the scripted two hours before now fall in today whenever the test runs.
    fn around_noon() -> Day {
        let now = OffsetDateTime::now_utc();
        let offset = 12 - i8::try_from(now.hour()).unwrap();
        let timezone = match offset {
            0 => "Etc/GMT".to_owned(),
            // POSIX sign: Etc/GMT-3 is three hours ahead of UTC.
            o if o > 0 => format!("Etc/GMT-{o}"),
            o => format!("Etc/GMT+{}", -o),
        };
        let local = now.to_offset(UtcOffset::from_hms(offset, 0, 0).unwrap());
        let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap();
        Day {
            // Two hours ago, on a whole second.
            t0: (now_ms - 120 * MIN) / 1000 * 1000,
            day: local.date().to_string(),
            timezone,
            boots: HashMap::new(),
            seqs: HashMap::new(),
            at: HashMap::new(),
        }
    }

    fn env(&mut self, k: &Kiosk, minute: i64, event: Event) -> Envelope {
        let seq = self.seqs.entry(k.id.clone()).or_insert(0);
        *seq += 1;
        let boot = *self.boots.entry(k.id.clone()).or_insert_with(Uuid::now_v7);
        let wall_ms = self.t0 + minute * MIN;
        Envelope {
            id: Uuid::now_v7(),
            kiosk_id: k.id.clone(),
            seq: *seq,
            boot_id: boot,
            wall_time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(wall_ms) * 1_000_000)
                .unwrap(),
            mono_ms: u64::try_from(minute * MIN).unwrap(),
            schema_version: 1,
            event,
        }
    }

    fn issue(&mut self, k: &Kiosk, minute: i64, t: Turn, priority: bool, oos: bool) -> Envelope {
        let service = t.label[..1].to_owned();
        let day = self.day.clone();
        self.env(
            k,
            minute,
            Event::TicketIssued(TicketIssued {
                turn_id: t.id,
                turn: t.label.into(),
                service,
                number: t.label[t.label.len() - 3..].parse().unwrap(),
                business_day: day,
                priority,
                position: 0,
                estimated_wait_s: 240,
                card_token: None,
                locale: "es".into(),
                campaign_id: None,
                out_of_sequence: oos,
            }),
        )
    }

    fn call(&mut self, k: &Kiosk, minute: i64, t: Turn, counter: &str, recall: bool) -> Envelope {
        self.env(
            k,
            minute,
            Event::TurnCalled(TurnCalled {
                staff: None,
                turn_id: t.id,
                turn: t.label.into(),
                counter: counter.into(),
                recall,
                waited_s: 0,
            }),
        )
    }

    fn serve(&mut self, k: &Kiosk, minute: i64, t: Turn, counter: &str) -> Envelope {
        self.env(
            k,
            minute,
            Event::TurnServed(TurnServed {
                staff: None,
                turn_id: t.id,
                counter: counter.into(),
                service_s: 0,
            }),
        )
    }

    /// Posts `events` as one signed batch of `k` (sent now) and checks every answer is `want`;
    /// records where the endpoint placed them.
    async fn post(&mut self, h: &Harness, k: &Kiosk, events: &[Envelope], want: &str) {
        send(h, k, events, want).await;
        // The skew this batch's events were placed with (recorded with the batch).
        let skew =
            h.db.kiosk(k.id.clone())
                .await
                .unwrap()
                .unwrap()
                .skew
                .unwrap();
        if want == "accepted" {
            for e in events {
                let wall = i64::try_from(e.wall_time.unix_timestamp_nanos() / 1_000_000).unwrap();
                self.at.insert(e.id, wall + skew.skew_ms);
            }
        }
    }

    fn at(&self, e: &Envelope) -> i64 {
        self.at[&e.id]
    }
}

/// Posts `events` as one signed batch of `k` (sent now); every answer must be `want`.
async fn send(h: &Harness, k: &Kiosk, events: &[Envelope], want: &str) {
    let batch =
        BatchRequest::new(&k.id, KioskClock::now(k.boot_id, 1 << 40), events.to_vec()).unwrap();
    let body = serde_json::to_vec(&batch).unwrap();
    let resp = h
        .signed(k, reqwest::Method::POST, &batches_path(&k.id), body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let statuses: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec![want; events.len()], "{answer}");
}

/// Sets the store's time zone to the day's.
async fn set_timezone(h: &Harness, d: &Day) {
    let ok = h
        .admin(reqwest::Method::POST, "/v1/admin/stores")
        .json(&serde_json::json!({ "id": "north", "name": "Tienda Norte", "timezone": d.timezone }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
}

async fn queue(h: &Harness, path_and_query: &str) -> LiveQueue {
    let resp = h
        .client
        .get(format!("{}{path_and_query}", h.base))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path_and_query}");
    resp.json().await.unwrap()
}

fn service(name: &str) -> ServiceQueue {
    ServiceQueue {
        service: name.into(),
        waiting: 0,
        priority_waiting: 0,
        parked: 0,
        called: 0,
        served: 0,
        no_show: 0,
        walked_out: 0,
        longest_wait_s: None,
        oldest_waiting: None,
        oldest_issued_ms: None,
    }
}

fn wait_s(now_ms: i64, issued_ms: i64) -> Option<u64> {
    Some(u64::try_from((now_ms - issued_ms) / 1000).unwrap())
}

async fn a_scripted_day_of_two_kiosks_gives_the_exact_live_queue(b: Backend) {
    let h = Harness::start(b).await;
    let k1 = h.kiosk.clone();
    let k2 = h.enroll("north").await;
    let south = h.enroll("south").await;
    let mut d = Day::around_noon();
    set_timezone(&h, &d).await;

    let (a1, a2, b1, a3) = (turn("A-001"), turn("A-002"), turn("B-001"), turn("A-003"));
    let (a4, b2, a5) = (turn("A-004"), turn("B-002"), turn("A-005"));
    let (x1, a6, b3) = (turn("A1-001"), turn("A-006"), turn("B-003"));

    // Kiosk 1, online for its first two tickets.
    let k1_first = vec![
        d.issue(&k1, 0, a1, false, false),
        d.issue(&k1, 2, a2, false, false),
    ];
    // Kiosk 1 then went offline (its counter 3 page and tickets kept working on the LAN): this
    // batch reaches the endpoint last.
    let k1_late = vec![
        d.issue(&k1, 3, b1, false, false),
        d.issue(&k1, 5, a3, false, false),
        d.call(&k1, 21, b1, "3", false),
        d.env(
            &k1,
            22,
            Event::TurnTransferred(TurnTransferred {
                turn_id: b1.id,
                turn: b1.label.into(),
                from_service: "B".into(),
                to_service: "A".into(),
                counter: Some("3".into()),
            }),
        ),
        d.env(
            &k1,
            40,
            Event::TurnWalkedOut(TurnWalkedOut {
                turn_id: a3.id,
                turn: a3.label.into(),
                counter: None,
            }),
        ),
        d.call(&k1, 50, b2, "3", false),
        d.call(&k1, 53, b2, "3", true),
        d.env(
            &k1,
            56,
            Event::TurnNoShow(TurnNoShow {
                staff: None,
                turn_id: b2.id,
                counter: "3".into(),
                recall_limit: true,
            }),
        ),
        // Cut off from kiosk 2, kiosk 1 numbers outside the store's sequence...
        d.issue(&k1, 90, x1, false, true),
        // ... and its counter 3 calls A-005, which counter 1 (served by kiosk 2) called first:
        // once they meet again the store keeps counter 1's call and kiosk 1 records the conflict.
        d.call(&k1, 96, a5, "3", false),
        d.env(
            &k1,
            97,
            Event::QueueConflict(QueueConflict {
                turn_id: Some(a5.id),
                turn: a5.label.into(),
                counter: Some("3".into()),
                step: "call".into(),
                reason: "counter 1 called A-005 first".into(),
            }),
        ),
    ];
    let b1_issue = k1_late[0].clone();
    // Kiosk 2: its tickets, and counters 1 and 2 (served by kiosk 2) calling kiosk 1's turns.
    let k2_first = vec![
        d.issue(&k2, 6, a4, true, false),
        d.issue(&k2, 8, b2, false, false),
        d.issue(&k2, 10, a5, false, false),
        d.call(&k2, 15, a1, "1", false),
        d.call(&k2, 16, a4, "2", false),
        d.env(
            &k2,
            18,
            Event::TurnParked(TurnParked {
                turn_id: a4.id,
                turn: a4.label.into(),
                counter: "2".into(),
            }),
        ),
        d.call(&k2, 19, a2, "2", false),
        d.serve(&k2, 20, a1, "1"),
        d.serve(&k2, 25, a2, "2"),
        d.call(&k2, 26, a4, "2", true),
        d.serve(&k2, 30, a4, "2"),
    ];
    let a4_recall = k2_first[9].clone();
    let k2_later = vec![
        d.call(&k2, 95, a5, "1", false),
        d.issue(&k2, 100, a6, false, false),
        d.issue(&k2, 110, b3, true, false),
    ];
    let (a5_call, b3_issue) = (k2_later[0].clone(), k2_later[2].clone());
    // Another store's kiosk: none of it may show.
    let other = turn("A-001");
    let south_day = vec![
        d.issue(&south, 1, other, false, false),
        d.call(&south, 100, other, "1", false),
    ];

    d.post(&h, &k1, &k1_first, "accepted").await;
    d.post(&h, &k2, &k2_first, "accepted").await;
    d.post(&h, &k2, &k2_later, "accepted").await;
    d.post(&h, &south, &south_day, "accepted").await;
    let mut backwards = k1_late.clone();
    backwards.reverse();
    d.post(&h, &k1, &backwards, "accepted").await;
    // A batch sent again (its answer was lost): every event a duplicate, nothing counted twice.
    d.post(&h, &k2, &k2_first, "duplicate").await;

    let q = queue(&h, "/dashboard/api/stores/north/queue").await;
    let now = q.now_ms;
    assert_eq!(q.store.id, "north");
    assert_eq!(
        (q.timezone.as_str(), q.timezone_known),
        (d.timezone.as_str(), true)
    );
    assert_eq!(q.business_day, d.day);
    assert_eq!((q.issued, q.waiting, q.out_of_sequence), (10, 4, 1));

    // A: B-001 (transferred from B, keeping its issue time), A1-001 and A-006 wait; A-005 is at
    // counter 1; and A-004 (parked, called back) were served; A-003 walked out.
    let a = ServiceQueue {
        waiting: 3,
        called: 1,
        served: 3,
        walked_out: 1,
        longest_wait_s: wait_s(now, d.at(&b1_issue)),
        oldest_waiting: Some("B-001".into()),
        oldest_issued_ms: Some(d.at(&b1_issue)),
        ..service("A")
    };
    // B: B-003 (priority) waits; B-002 did not show at the recall limit.
    let bq = ServiceQueue {
        waiting: 1,
        priority_waiting: 1,
        no_show: 1,
        longest_wait_s: wait_s(now, d.at(&b3_issue)),
        oldest_waiting: Some("B-003".into()),
        oldest_issued_ms: Some(d.at(&b3_issue)),
        ..service("B")
    };
    assert_eq!(q.services, vec![a, bq]);
    assert!(
        (d.at(&b1_issue) - (d.t0 + 3 * MIN)).abs() < 5_000,
        "placed at its kiosk's wall time plus the kiosk's skew (a few ms on loopback)"
    );

    // Counter 1 serves A-005 now; counter 3 called (A-005, dropped) 24 minutes ago; counter 2
    // last called 94 minutes ago and is closed.
    let k1_a5_call = &k1_late[9];
    assert_eq!(
        q.counters_open,
        vec![
            OpenCounter {
                counter: "1".into(),
                serving: Some("A-005".into()),
                last_call_ms: Some(d.at(&a5_call)),
            },
            OpenCounter {
                counter: "3".into(),
                serving: None,
                last_call_ms: Some(d.at(k1_a5_call)),
            },
        ]
    );

    // One line per turn called, its latest call, newest first; A-005 at counter 1, as the store
    // decided, although kiosk 1's dropped call came later.
    let call = |t: &str, counter: &str, at: &Envelope, service: &str, status| CallRecord {
        turn: t.into(),
        counter: counter.into(),
        at_ms: d.at(at),
        service: Some(service.into()),
        status,
    };
    assert_eq!(
        q.calls,
        vec![
            call("A-005", "1", &a5_call, "A", TurnStatus::Called),
            call("B-002", "3", &k1_late[6], "B", TurnStatus::NoShow),
            call("A-004", "2", &a4_recall, "A", TurnStatus::Served),
            call("B-001", "3", &k1_late[2], "A", TurnStatus::Waiting),
            call("A-002", "2", &k2_first[6], "A", TurnStatus::Served),
            call("A-001", "1", &k2_first[3], "A", TurnStatus::Served),
        ]
    );

    let mut kiosks = vec![
        KioskIssued {
            kiosk_id: k1.id.clone(),
            issued: 5,
            out_of_sequence: 1,
        },
        KioskIssued {
            kiosk_id: k2.id.clone(),
            issued: 5,
            out_of_sequence: 0,
        },
    ];
    kiosks.sort_by(|x, y| x.kiosk_id.cmp(&y.kiosk_id));
    assert_eq!(q.kiosks, kiosks);

    assert_eq!(q.conflicts, 1);
    let c = &q.recent_conflicts[0];
    assert_eq!(
        (
            c.turn.as_deref(),
            c.counter.as_deref(),
            c.step.as_str(),
            c.kiosk_id.as_str()
        ),
        (Some("A-005"), Some("3"), "call", k1.id.as_str())
    );
    assert_eq!(c.reason, "counter 1 called A-005 first");

    // Fewer calls on request; the other store sees only its own turn.
    let three = queue(&h, "/dashboard/api/stores/north/queue?calls=3").await;
    assert_eq!(three.calls, q.calls[..3]);
    let s = queue(&h, "/dashboard/api/stores/south/queue").await;
    assert_eq!((s.issued, s.waiting), (1, 0));
    assert_eq!(s.calls.len(), 1);
    assert_eq!(
        s.kiosks,
        vec![KioskIssued {
            kiosk_id: south.id.clone(),
            issued: 1,
            out_of_sequence: 0,
        }]
    );
    h.stop().await;
}

async fn the_live_queue_api_needs_a_login_and_a_known_store(b: Backend) {
    let h = Harness::start(b).await;
    let url = format!("{}/dashboard/api/stores/north/queue", h.base);
    let anonymous = h.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    let gone = h
        .client
        .get(format!("{}/dashboard/api/stores/nowhere/queue", h.base))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let bad = h
        .client
        .get(format!("{url}?calls=many"))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    // An empty store: every kiosk listed with nothing issued.
    let q = queue(&h, "/dashboard/api/stores/north/queue").await;
    assert_eq!((q.issued, q.waiting, q.conflicts), (0, 0, 0));
    assert!(q.services.is_empty() && q.calls.is_empty() && q.counters_open.is_empty());
    assert_eq!(q.kiosks.len(), 1);
    assert_eq!((q.timezone.as_str(), q.timezone_known), ("UTC", false));
    // The page has the panel the script fills.
    let cookie_less_page = h
        .client
        .get(format!("{}/dashboard/app.js", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(cookie_less_page.contains("addEventListener(\"queue\""));
    h.stop().await;
}

/// Reads server-sent events until one named `name` satisfies `want`.
async fn next_event<T: serde::de::DeserializeOwned>(
    resp: &mut reqwest::Response,
    buf: &mut String,
    name: &str,
    want: impl Fn(&T) -> bool,
) -> T {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut event = "message";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event:") {
                        event = n.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.strip_prefix(' ').unwrap_or(d));
                    }
                }
                if event == name {
                    let v: T = serde_json::from_str(&data).unwrap();
                    if want(&v) {
                        return v;
                    }
                }
            }
            let chunk = resp.chunk().await.unwrap().expect("the stream ended");
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("no matching event within 30 s")
}

async fn the_live_queue_is_pushed_with_the_figures(b: Backend) {
    let h = Harness::start(b).await;
    let k2 = h.enroll("north").await;
    let mut d = Day::around_noon();
    set_timezone(&h, &d).await;
    let (a1, a2) = (turn("A-001"), turn("A-002"));
    let first = vec![d.issue(&h.kiosk, 0, a1, false, false)];
    d.post(&h, &h.kiosk.clone(), &first, "accepted").await;

    let mut resp = h
        .client
        .get(format!("{}/dashboard/events?store=north", h.base))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut buf = String::new();
    let q: LiveQueue = next_event(&mut resp, &mut buf, "queue", |_| true).await;
    assert_eq!((q.issued, q.waiting), (1, 1));

    // Kiosk 2's counter calls kiosk 1's turn and kiosk 2 issues another.
    let more = vec![
        d.issue(&k2, 110, a2, false, false),
        d.call(&k2, 115, a1, "4", false),
    ];
    d.post(&h, &k2, &more, "accepted").await;
    let q: LiveQueue =
        next_event(&mut resp, &mut buf, "queue", |q: &LiveQueue| q.issued == 2).await;
    assert_eq!(q.waiting, 1);
    assert_eq!(q.services[0].oldest_waiting.as_deref(), Some("A-002"));
    assert_eq!(q.counters_open[0].serving.as_deref(), Some("A-001"));
    assert_eq!(q.calls[0].counter, "4");
    h.stop().await;
}

/// One event as the batch handler prepares it, placed at its wall time.
fn prepared(e: &Envelope) -> IngestEvent {
    let at_ms = i64::try_from(e.wall_time.unix_timestamp_nanos() / 1_000_000).unwrap();
    IngestEvent {
        id: e.id,
        seq: e.seq,
        kind: e.event.type_name(),
        schema_version: e.schema_version,
        device_ms: at_ms,
        corrected_ms: at_ms,
        card_token: None,
        envelope: serde_json::to_string(e).unwrap(),
        effect: effect_of(&e.event),
        ops: ops_of(&e.event),
        queue: queue_step_of(&e.event),
    }
}

async fn concurrent_batches_of_two_kiosks_leave_every_turn_in_its_final_state(b: Backend) {
    const TURNS: usize = 150;
    let h = Harness::start(b).await;
    let k1 = h.kiosk.clone();
    let k2 = h.enroll("north").await;
    let mut d = Day::around_noon();
    set_timezone(&h, &d).await;
    // Kiosk 1 issues each turn; kiosk 2's counter calls and serves half of them, and transfers
    // the other half to B, where they walk out: three one-event batches per turn, all stored at
    // once, so the steps of a turn race each other into the store. (Issues, calls and services
    // also meet on the dashboard's `turns` row; transfers and walkouts only on the live queue's
    // lock.)
    let mut batches = Vec::new();
    for i in 0..TURNS {
        let t = turn(Box::leak(format!("A-{:03}", i + 1).into_boxed_str()));
        let minute = i64::try_from(i % 100).unwrap();
        batches.push((k1.id.clone(), d.issue(&k1, minute, t, false, false)));
        if i % 2 == 0 {
            batches.push((k2.id.clone(), d.call(&k2, minute + 1, t, "1", false)));
            batches.push((k2.id.clone(), d.serve(&k2, minute + 2, t, "1")));
        } else {
            let transfer = Event::TurnTransferred(TurnTransferred {
                turn_id: t.id,
                turn: t.label.into(),
                from_service: "A".into(),
                to_service: "B".into(),
                counter: None,
            });
            let walkout = Event::TurnWalkedOut(TurnWalkedOut {
                turn_id: t.id,
                turn: t.label.into(),
                counter: None,
            });
            batches.push((k2.id.clone(), d.env(&k2, minute + 1, transfer)));
            batches.push((k2.id.clone(), d.env(&k2, minute + 2, walkout)));
        }
    }
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|(kiosk_id, e)| {
            let db = h.db.clone();
            tokio::spawn(async move {
                db.ingest(IngestBatch {
                    kiosk_id,
                    store_id: "north".into(),
                    received_ms: 0,
                    skew: None,
                    skew_samples: None,
                    backlog: None,
                    backlog_age_ms: None,
                    events: vec![prepared(&e)],
                    replay: None,
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), [EventStatus::Accepted]);
    }

    let q = queue(&h, "/dashboard/api/stores/north/queue?calls=5").await;
    assert_eq!((q.issued, q.waiting), (TURNS as u64, 0));
    let half = TURNS as u64 / 2;
    assert_eq!(
        q.services,
        vec![
            ServiceQueue {
                served: half,
                ..service("A")
            },
            ServiceQueue {
                walked_out: half,
                ..service("B")
            }
        ]
    );
    assert!(q.calls.iter().all(|c| c.status == TurnStatus::Served));
    let issued: Vec<u64> = q.kiosks.iter().map(|k| k.issued).collect();
    let mut expected = [(k1.id.clone(), TURNS as u64), (k2.id.clone(), 0)];
    expected.sort();
    assert_eq!(issued, expected.map(|(_, n)| n));
    h.stop().await;
}

on_both_databases!(
    concurrent_batches_of_two_kiosks_leave_every_turn_in_its_final_state,
    a_scripted_day_of_two_kiosks_gives_the_exact_live_queue,
    the_live_queue_api_needs_a_login_and_a_known_store,
    the_live_queue_is_pushed_with_the_figures,
);
