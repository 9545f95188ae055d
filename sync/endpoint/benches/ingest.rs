//! Endpoint ingest under load: 50 and 500 simulated kiosks post signed batches at once over loopback,
//! beside a bare loop inserting the same number of events into the same kind of database (plain
//! INSERTs in transactions of the same size: no HTTP, auth, validation, dedupe answer or effects).
//! SQLite (a file in WAL mode) and a throwaway PostgreSQL (fsync off: see `crm_endpoint::testing`).
//!
//! Prints `BENCH {...}` lines for scripts/bench. `BENCH_BATCHES_PER_KIOSK` (default 4),
//! `BENCH_BATCH_EVENTS` (default 100) and `BENCH_INGEST_KIOSKS` (default `50,500`) scale the run;
//! `BENCH_INGEST_BACKENDS` (default `sqlite,postgres`) picks the databases.
//! Target (issue 8): ingest within 2x of the bare inserts, i.e. a ratio of at least 0.5.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::{Duration, Instant};

use crm_endpoint::db::{IngestBatch, SharedDb, StoreRecord};
use crm_endpoint::ingest::{Validator, read_clock};
use crm_endpoint::testing::TempPostgres;
use crm_endpoint::{ServeConfig, serve};
use kiosk_protocol::auth::sign_request;
use kiosk_protocol::events::{Envelope, Event, TicketIssued};
use kiosk_protocol::wire::{
    BatchRequest, BatchResponse, EnrollRequest, EnrollResponse, EventStatus, KioskClock,
    batches_path,
};
use time::OffsetDateTime;
use uuid::Uuid;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(kiosk_id: &str, boot: Uuid, seq: u64) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        kiosk_id: kiosk_id.to_owned(),
        seq,
        boot_id: boot,
        wall_time: OffsetDateTime::now_utc(),
        mono_ms: seq,
        schema_version: 1,
        event: Event::TicketIssued(TicketIssued {
            turn_id: Uuid::now_v7(),
            turn: format!("A-{:03}", seq % 1000),
            service: "A".into(),
            number: (seq % 1000) as u32,
            business_day: "2026-11-23".into(),
            priority: false,
            position: 3,
            estimated_wait_s: 240,
            card_token: None,
            locale: "es".into(),
            campaign_id: None,
            out_of_sequence: false,
        }),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Figures {
    events_per_s: f64,
    latency_ms: Vec<f64>,
    bare_per_s: f64,
    /// Median time of one bare batch insert.
    bare_batch_ms: f64,
}

/// `db` serves the kiosks; `bare` (a fresh database of the same kind) takes the bare loop, so
/// neither run inherits the other's table size or checkpoints.
async fn run(
    db: SharedDb,
    bare: SharedDb,
    kiosks_n: usize,
    per_kiosk: usize,
    batch_events: usize,
) -> Figures {
    db.upsert_store(StoreRecord {
        id: "bench".into(),
        name: "Bench".into(),
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ServeConfig {
        db: db.clone(),
        admin_token: None,
        tls: None,
    };
    let server = tokio::spawn(serve(config, listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(kiosks_n)
        .build()
        .unwrap();

    let mut kiosks = Vec::new();
    for _ in 0..kiosks_n {
        let (code, _) = crm_endpoint::api::issue_enroll_code(&db, "bench", Duration::from_secs(60))
            .await
            .unwrap();
        let enrolled: EnrollResponse = client
            .post(format!("{base}/v1/enroll"))
            .json(&EnrollRequest {
                code,
                hardware_profile: "bench".into(),
                firmware_version: "0".into(),
            })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        kiosks.push(enrolled);
    }

    // Bodies are built before the clock starts: the figure is the endpoint's, not the client's.
    let mut work = Vec::new();
    for k in &kiosks {
        let boot = Uuid::now_v7();
        let mut bodies = Vec::new();
        for b in 0..per_kiosk {
            let first = (b * batch_events) as u64 + 1;
            let events: Vec<Envelope> = (first..first + batch_events as u64)
                .map(|s| event(&k.kiosk_id, boot, s))
                .collect();
            let last = events.last().map(|e| e.mono_ms).unwrap_or(0);
            let batch =
                BatchRequest::new(&k.kiosk_id, KioskClock::now(boot, last), events).unwrap();
            bodies.push(serde_json::to_vec(&batch).unwrap());
        }
        work.push((k.clone(), bodies));
    }

    let start = Instant::now();
    let mut tasks = Vec::new();
    for (k, bodies) in work {
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let path = batches_path(&k.kiosk_id);
            for body in bodies {
                let t = Instant::now();
                let now = OffsetDateTime::now_utc().unix_timestamp();
                let h = sign_request(&k.kiosk_id, &k.device_secret, "POST", &path, &body, now);
                let mut req = client.post(format!("{base}{path}")).body(body);
                for (name, v) in h.pairs() {
                    req = req.header(name, v);
                }
                let resp: BatchResponse = req.send().await.unwrap().json().await.unwrap();
                assert!(
                    resp.results
                        .iter()
                        .all(|r| r.status == EventStatus::Accepted)
                );
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut latency_ms = Vec::new();
    for t in tasks {
        latency_ms.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let total = (kiosks_n * per_kiosk * batch_events) as f64;
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // The bare loop: the same number of events, validated rows prepared beforehand, inserted in
    // transactions of the same size, one after the other.
    let validator = Validator::new().unwrap();
    let k = &kiosks[0];
    let boot = Uuid::now_v7();
    let mut batches = Vec::new();
    for b in 0..kiosks_n * per_kiosk {
        let first = 1_000_000 + (b * batch_events) as u64;
        let clock = KioskClock::now(boot, first + batch_events as u64);
        let sent_ms = crm_endpoint::ingest::unix_ms(clock.wall_time);
        let skew = read_clock(&Default::default(), &clock, sent_ms).skew_or_zero(sent_ms);
        let events = (first..first + batch_events as u64)
            .map(|s| {
                let raw = serde_json::to_value(event(&k.kiosk_id, boot, s)).unwrap();
                validator.check(&raw, &k.kiosk_id, &clock, skew).unwrap()
            })
            .collect();
        batches.push(IngestBatch {
            kiosk_id: k.kiosk_id.clone(),
            store_id: "bench".into(),
            received_ms: crm_endpoint::ingest::unix_ms(OffsetDateTime::now_utc()),
            skew: None,
            skew_samples: None,
            backlog: None,
            backlog_age_ms: None,
            events,
            replay: None,
        });
    }
    bare.upsert_store(StoreRecord {
        id: "bench".into(),
        name: "Bench".into(),
    })
    .await
    .unwrap();
    let start = Instant::now();
    let mut bare_ms = Vec::with_capacity(batches.len());
    for b in batches {
        let t = Instant::now();
        bare.insert_events_bare(b).await.unwrap();
        bare_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let bare_per_s = total / start.elapsed().as_secs_f64();
    latency_ms.sort_by(f64::total_cmp);
    bare_ms.sort_by(f64::total_cmp);
    Figures {
        events_per_s: total / elapsed,
        latency_ms,
        bare_per_s,
        bare_batch_ms: percentile(&bare_ms, 0.5),
    }
}

fn report(backend: &str, kiosks: usize, f: &Figures) {
    let line = |v: serde_json::Value| println!("BENCH {v}");
    let ratio = f.events_per_s / f.bare_per_s;
    line(serde_json::json!({
        "figure": format!("endpoint ingest, {kiosks} kiosks posting signed batches, {backend}"),
        "unit": "events/s",
        "median": f.events_per_s.round(),
        "p99": null,
        "reference": format!("bare inserts of the same events, {backend}"),
        "ref_median": f.bare_per_s.round(),
        "ratio": (ratio * 1000.0).round() / 1000.0,
        "target": "ratio >= 0.5 (within 2x of bare)",
        "met": ratio >= 0.5,
    }));
    line(serde_json::json!({
        "figure": format!("endpoint batch latency, {kiosks} concurrent kiosks, {backend}"),
        "unit": "ms",
        "median": (percentile(&f.latency_ms, 0.5) * 10.0).round() / 10.0,
        "p99": (percentile(&f.latency_ms, 0.99) * 10.0).round() / 10.0,
        // Concurrent batches queue behind each other: the ratio shows that queueing, not a cost.
        "reference": format!("one bare insert of a batch, {backend}"),
        "ref_median": (f.bare_batch_ms * 100.0).round() / 100.0,
        "ratio": (percentile(&f.latency_ms, 0.5) / f.bare_batch_ms * 100.0).round() / 100.0,
    }));
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let per_kiosk = env_or("BENCH_BATCHES_PER_KIOSK", 4);
    let batch_events = env_or("BENCH_BATCH_EVENTS", 100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let kiosk_counts: Vec<usize> = std::env::var("BENCH_INGEST_KIOSKS")
        .unwrap_or_else(|_| "50,500".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let backends =
        std::env::var("BENCH_INGEST_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        for &kiosks in kiosk_counts.iter().filter(|_| backends.contains("sqlite")) {
            let open = |name: String| {
                let url = format!("sqlite://{}", dir.path().join(name).display());
                async move { crm_endpoint::db::open(&url).await.unwrap() }
            };
            let (db, bare) = (
                open(format!("served-{kiosks}.db")).await,
                open(format!("bare-{kiosks}.db")).await,
            );
            let f = run(db, bare, kiosks, per_kiosk, batch_events).await;
            report("sqlite", kiosks, &f);
        }

        if !backends.contains("postgres") {
            return;
        }
        let pg = tokio::task::spawn_blocking(TempPostgres::start)
            .await
            .unwrap()
            .unwrap();
        for &kiosks in &kiosk_counts {
            let db = crm_endpoint::db::open(&pg.fresh_database().await.unwrap())
                .await
                .unwrap();
            let bare = crm_endpoint::db::open(&pg.fresh_database().await.unwrap())
                .await
                .unwrap();
            let f = run(db, bare, kiosks, per_kiosk, batch_events).await;
            report("postgres", kiosks, &f);
        }
        drop(pg);
    });
}
