//! Kiosk to phone over loopback: how long after a kiosk journals a turn's event the customer's
//! turn page (`/t/{token}`, its event stream) shows it. The kiosk side is the real sync worker
//! (`kiosk-sync`, default settings: it ships as soon as an event is journaled) over a SQLite
//! outbox; the phone side is the page's event stream, read as the page's script reads it.
//!
//! Two figures, p50 and p99 over `BENCH_TURN_SAMPLES` turns (default 200; `BENCH_QUICK=1`: 40):
//! - *issue → phone shows the turn*: `ticket_issued` journaled → the stream's `turn` event says
//!   `waiting`;
//! - *call → phone shows "your turn"*: `turn_called` journaled → `called`, counter 3.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench code: a failed unwrap is the failure message"
)]

#[path = "../../client/tests/support/outbox.rs"]
#[allow(
    dead_code,
    reason = "shared with the client's tests; the bench uses a part"
)]
mod outbox;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_endpoint::db::StoreRecord;
use crm_endpoint::db::queue::TurnStatus;
use crm_endpoint::phone::{TurnUpdate, turn_key};
use kiosk_drivers::scanner::code::{TurnTicket, sign_turn};
use kiosk_protocol::events::{Event, TicketIssued, TurnCalled};
use kiosk_protocol::wire::EnrollRequest;
use kiosk_sync::{SyncConfig, SyncWorker, SystemSyncClock};
use outbox::SqliteOutbox;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn samples() -> usize {
    if std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1") {
        return 40;
    }
    std::env::var("BENCH_TURN_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Reads the stream until a `turn` event satisfies `want`.
async fn until(
    resp: &mut reqwest::Response,
    buf: &mut String,
    want: impl Fn(&TurnUpdate) -> bool,
) -> TurnUpdate {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut name = "";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n;
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if name == "turn" {
                    let u: TurnUpdate = serde_json::from_str(&data).unwrap();
                    if want(&u) {
                        return u;
                    }
                }
            }
            let chunk = resp.chunk().await.unwrap().expect("the stream ended");
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the phone saw nothing within 30 s")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    kiosk_sync::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let db = crm_endpoint::db::open(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    db.upsert_store(StoreRecord {
        id: "bench".into(),
        name: "Bench".into(),
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = crm_endpoint::ServeConfig {
        db: db.clone(),
        admin_token: None,
        tls: None,
    };
    tokio::spawn(crm_endpoint::serve(
        config,
        listener,
        std::future::pending(),
    ));
    let code = crm_endpoint::api::issue_enroll_code(&db, "bench", Duration::from_secs(60))
        .await
        .unwrap()
        .0;
    let enrolled = kiosk_sync::enroll(
        &url,
        &Default::default(),
        &EnrollRequest {
            code,
            hardware_profile: "simulated".into(),
            firmware_version: "0.1.0".into(),
        },
    )
    .await
    .unwrap();
    let outbox = Arc::new(SqliteOutbox::open(
        &dir.path().join("journal.db"),
        &enrolled.kiosk_id,
    ));
    let appended = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let (_worker, _status) = SyncWorker::spawn(
        SyncConfig::new(&url, &enrolled.kiosk_id, enrolled.device_secret.clone()),
        outbox.clone(),
        outbox.clone(),
        Arc::new(SystemSyncClock::new(Uuid::now_v7())),
        shutdown.clone(),
        appended.clone(),
    )
    .unwrap();
    let key = turn_key(&enrolled.tenant_key).unwrap();
    let http = reqwest::Client::new();
    let n = samples();
    let (mut issue, mut call) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let id = Uuid::now_v7();
        let label = format!("A-{:03}", i % 1000);
        let token = sign_turn(
            &TurnTicket {
                store_id: "bench".into(),
                kiosk_id: enrolled.kiosk_id.clone(),
                business_day: OffsetDateTime::now_utc().date(),
                turn: label.clone(),
                turn_id: id,
            },
            &key,
        )
        .unwrap();
        let mut stream = http
            .get(format!("{url}/t/{token}/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        let mut buf = String::new();
        until(&mut stream, &mut buf, |_| true).await;

        let t0 = Instant::now();
        outbox.append(Event::TicketIssued(TicketIssued {
            turn_id: id,
            turn: label.clone(),
            service: "A".into(),
            number: i as u32 + 1,
            business_day: OffsetDateTime::now_utc().date().to_string(),
            priority: false,
            position: 1,
            estimated_wait_s: 0,
            card_token: None,
            locale: "es".into(),
            campaign_id: None,
            out_of_sequence: false,
        }));
        appended.notify_one();
        until(&mut stream, &mut buf, |u| {
            u.view.status == TurnStatus::Waiting
        })
        .await;
        issue.push(t0.elapsed());

        let t1 = Instant::now();
        outbox.append(Event::TurnCalled(TurnCalled {
            staff: None,
            turn_id: id,
            turn: label,
            counter: "3".into(),
            recall: false,
            waited_s: 1,
        }));
        appended.notify_one();
        until(&mut stream, &mut buf, |u| {
            u.view.status == TurnStatus::Called
        })
        .await;
        call.push(t1.elapsed());
    }
    shutdown.cancel();
    for (name, mut v) in [
        ("issue -> phone shows the turn", issue),
        ("call -> phone shows \"your turn\"", call),
    ] {
        v.sort();
        println!(
            "turn_page/{name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} turns, loopback, SQLite)",
            percentile(&v, 0.5).as_secs_f64() * 1000.0,
            percentile(&v, 0.99).as_secs_f64() * 1000.0,
            v.last().unwrap().as_secs_f64() * 1000.0,
            v.len()
        );
        // The line `scripts/bench` collects: the issue asks for "within seconds"; one second
        // is the reference the ratio is taken to.
        let (p50, p99) = (
            percentile(&v, 0.5).as_secs_f64() * 1000.0,
            percentile(&v, 0.99).as_secs_f64() * 1000.0,
        );
        println!(
            "BENCH {}",
            serde_json::json!({
                "figure": format!("turn page: {name} (loopback, SQLite)"),
                "unit": "ms",
                "median": (p50 * 100.0).round() / 100.0,
                "p99": (p99 * 100.0).round() / 100.0,
                "reference": "1 s (events reach the CRM within seconds)",
                "ref_median": 1000.0,
                "ratio": (p50 / 1000.0 * 10000.0).round() / 10000.0,
                "target": "p99 < 1000 ms",
                "met": p99 < 1000.0,
            })
        );
    }
}
