//! Backlog drain: 100,000 events journaled on the kiosk (the SQLite test outbox) are sent by the
//! real sync worker to the real endpoint over loopback, beside a bare loop inserting the same
//! events into the same kind of store, 500 per transaction, the fastest plain way each store
//! takes rows (prepared INSERTs on SQLite, one multi-row INSERT over arrays on PostgreSQL): no
//! HTTP, signing, gzip, validation, effects or acknowledgement. SQLite always; PostgreSQL too when Debian's
//! `postgresql` package is installed (a throwaway server, fsync off: see
//! `crm_endpoint::testing`).
//!
//! Prints `BENCH {...}` lines for scripts/bench. `BENCH_DRAIN_EVENTS` (default 100000) and
//! `BENCH_DRAIN_ROUNDS` (default 3) scale the run; the median of the rounds is reported.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_endpoint::db::{IngestBatch, StoreRecord};
use crm_endpoint::ingest::{Validator, read_clock, unix_ms};
use crm_endpoint::testing::TempPostgres;
use kiosk_protocol::wire::KioskClock;
use kiosk_sync::Outbox;
use support::endpoint::Endpoint;
use support::outbox::SqliteOutbox;
use support::{spawn_worker, test_config, wait_drained};
use time::OffsetDateTime;
use uuid::Uuid;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One round: (drain events/s, bare insert events/s).
async fn round(n: usize, store_url: Option<String>, bare_url: Option<String>) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let url = store_url.unwrap_or_else(|| format!("sqlite://{}", db.display()));
    let addr = "127.0.0.1:0".parse().unwrap();
    let (endpoint, code) = Endpoint::start_url(url, &db, addr, None).await;
    let enrolled = endpoint.enroll(&code).await;
    let outbox = Arc::new(SqliteOutbox::open(
        &dir.path().join("journal.db"),
        &enrolled.kiosk_id,
    ));
    for _ in 0..n / 10_000 {
        outbox.append_tickets(10_000);
    }
    outbox.append_tickets(n % 10_000);

    // The same events, validated by the endpoint's own validator, for the bare loop (not timed).
    let pending = outbox.pending(n, usize::MAX).unwrap();
    let validator = Validator::new().unwrap();
    let clock = KioskClock::now(Uuid::now_v7(), 0);
    let sent_ms = unix_ms(clock.wall_time);
    let skew = read_clock(&Default::default(), &clock, sent_ms).skew_or_zero(sent_ms);
    let mut bare_batches = Vec::new();
    for chunk in pending.chunks(500) {
        let events = chunk
            .iter()
            .map(|e| {
                let raw: serde_json::Value = serde_json::from_str(&e.json).unwrap();
                validator
                    .check(&raw, &enrolled.kiosk_id, &clock, skew)
                    .unwrap()
            })
            .collect();
        bare_batches.push(IngestBatch {
            kiosk_id: enrolled.kiosk_id.clone(),
            store_id: "bench".into(),
            received_ms: unix_ms(OffsetDateTime::now_utc()),
            skew: None,
            skew_samples: None,
            backlog: None,
            backlog_age_ms: None,
            events,
            replay: None,
        });
    }
    drop(pending);

    let mut config = test_config(&endpoint.url(), &enrolled);
    config.feed_interval = Duration::ZERO;
    config.request_timeout = Duration::from_secs(30);
    config.idle_poll = Duration::from_millis(50);
    let start = Instant::now();
    let mut w = spawn_worker(config, &outbox);
    let status = wait_drained(&mut w.status, Duration::from_secs(600)).await;
    let drain = n as f64 / start.elapsed().as_secs_f64();
    assert_eq!(status.events_acknowledged, n as u64);
    w.shutdown.cancel();
    let _ = w.handle.await;
    endpoint.kill();

    let bare_url =
        bare_url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bare.db").display()));
    let bare = crm_endpoint::db::open(&bare_url).await.unwrap();
    bare.upsert_store(StoreRecord {
        id: "bench".into(),
        name: "Bench".into(),
    })
    .await
    .unwrap();
    let start = Instant::now();
    for b in bare_batches {
        bare.insert_events_bare(b).await.unwrap();
    }
    let bare_rate = n as f64 / start.elapsed().as_secs_f64();
    (drain, bare_rate)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(backend: &str, n: usize, rounds: Vec<(f64, f64)>) {
    let drain = median(rounds.iter().map(|r| r.0).collect());
    let bare = median(rounds.iter().map(|r| r.1).collect());
    println!(
        "BENCH {}",
        serde_json::json!({
            "figure": format!("backlog drain kiosk to endpoint, {n} events, {backend} store"),
            "unit": "events/s",
            "median": drain.round(),
            "p99": null,
            "reference": format!("bare inserts of the same events, {backend}"),
            "ref_median": bare.round(),
            "ratio": (drain / bare * 1000.0).round() / 1000.0,
            "target": ">= 20,000 events/s",
            "met": drain >= 20_000.0,
        })
    );
}

fn main() {
    let n = env_or("BENCH_DRAIN_EVENTS", 100_000);
    let rounds = env_or("BENCH_DRAIN_ROUNDS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sqlite = Vec::new();
        for _ in 0..rounds {
            sqlite.push(round(n, None, None).await);
        }
        report("SQLite", n, sqlite);

        match TempPostgres::start() {
            Ok(pg) => {
                let mut figures = Vec::new();
                for _ in 0..rounds {
                    let a = pg.fresh_database().await.unwrap();
                    let b = pg.fresh_database().await.unwrap();
                    figures.push(round(n, Some(a), Some(b)).await);
                }
                report("PostgreSQL", n, figures);
            }
            Err(e) => eprintln!("PostgreSQL drain skipped: {e}"),
        }
    });
}
