//! The morning-after reconnect storm at full size (issue 20): `BENCH_STORM_KIOSKS` simulated
//! kiosks (default 5,000; `BENCH_QUICK=1`: 200), each the real sync worker
//! (`kiosk_sync::SyncWorker`, default settings: batches of 500, full-jitter backoff,
//! `Retry-After` as a floor) over an outbox in memory holding `BENCH_STORM_EVENTS` pending events
//! (default 500; quick: 50), all started at once against two `crm-endpoint serve` replicas on a
//! throwaway PostgreSQL over loopback, with their default admission control (16 batches at once
//! each, a second of queueing, then 503 + `Retry-After: 2`).
//!
//! Figures: time until every outbox is empty, peak requests per second (batches answered in the
//! busiest second), p50/p99 latency of the batches stored, 5xx answers (the admission control's
//! 503s, and any other), the replicas' peak RSS, and rows in the database against events sent
//! (0 lost, 0 duplicated). The simulated kiosks share 127.0.0.1, so the replicas run with
//! `--max-per-peer` raised to `--max-connections`, as behind a load balancer.
//! `BENCH_STORM_DEADLINE_S` (default 1200) stops a run that does not drain.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark")]

#[path = "../tests/common/fleet.rs"]
mod fleet;

use std::time::Duration;

use crm_endpoint::db::StoreRecord;
use crm_endpoint::testing::TempPostgres;
use fleet::{Replica, StormConfig, stored_rows, storm};

const BIN: &str = env!("CARGO_BIN_EXE_crm-endpoint");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let kiosks = env_or("BENCH_STORM_KIOSKS", if quick { 200 } else { 5000 });
    let events = env_or("BENCH_STORM_EVENTS", if quick { 50 } else { 500 });
    let deadline = Duration::from_secs(env_or("BENCH_STORM_DEADLINE_S", 1200));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pg = TempPostgres::start().expect("the storm needs a throwaway PostgreSQL");
    rt.block_on(async {
        let url = pg.fresh_database().await.unwrap();
        let db = crm_endpoint::db::open(&url).await.unwrap();
        db.upsert_store(StoreRecord {
            id: "north".into(),
            name: "Tienda Norte".into(),
        })
        .await
        .unwrap();
        let args = ["--max-connections", "16384", "--max-per-peer", "16384"];
        let r1 = Replica::start(BIN, &url, &args);
        let r2 = Replica::start(BIN, &url, &args);
        let config = StormConfig {
            kiosks,
            events,
            batch_events: kiosk_protocol::wire::MAX_BATCH_EVENTS,
            deadline,
        };
        eprintln!("storm: {kiosks} kiosks x {events} events against 2 replicas");
        let r = storm(&db, &[r1.base(), r2.base()], "north", &config).await;
        let stored = stored_rows(&url).await;
        let (rss1, _) = r1.rss_kib();
        let (rss2, _) = r2.rss_kib();
        eprintln!("{r:?}\n{stored:?}\nreplica peak RSS {rss1} KiB, {rss2} KiB");
        let sent = kiosks as u64 * events;
        let line = |v: serde_json::Value| println!("BENCH {v}");
        let name = |what: &str| format!("reconnect storm, {kiosks} kiosks x {events} events, 2 replicas on PostgreSQL: {what}");
        line(serde_json::json!({
            "figure": name("time to drain"), "unit": "s",
            "median": (r.drain.as_secs_f64() * 10.0).round() / 10.0, "p99": null,
            "reference": "events stored per second", "ref_median": (sent as f64 / r.drain.as_secs_f64()).round(),
            "ratio": null, "target": "drained", "met": r.drained,
        }));
        line(serde_json::json!({
            "figure": name("batches answered in the busiest second"), "unit": "requests/s",
            "median": r.peak_rps, "p99": null, "reference": "batch requests in all (stored + refused)",
            "ref_median": r.requests, "ratio": null,
        }));
        line(serde_json::json!({
            "figure": name("batch latency (stored batches)"), "unit": "ms",
            "median": (r.p50_ms * 10.0).round() / 10.0, "p99": (r.p99_ms * 10.0).round() / 10.0,
            "reference": null, "ref_median": null, "ratio": null,
        }));
        line(serde_json::json!({
            "figure": name("5xx answers (503 + Retry-After of admission control / other)"), "unit": "answers",
            "median": r.all_5xx, "p99": null, "reference": "5xx without Retry-After",
            "ref_median": r.server_errors, "ratio": null,
            "target": "every retry after Retry-After", "met": r.early_retries == 0,
        }));
        line(serde_json::json!({
            "figure": name("peak RSS per replica"), "unit": "MiB",
            "median": ((rss1.max(rss2) as f64) / 1024.0).round(), "p99": null,
            "reference": "the other replica", "ref_median": ((rss1.min(rss2) as f64) / 1024.0).round(), "ratio": null,
        }));
        let exact = stored.rows == sent
            && stored.distinct_ids == sent
            && stored.min_per_kiosk == events
            && stored.max_per_kiosk == events;
        line(serde_json::json!({
            "figure": name("events stored (0 lost, 0 duplicated)"), "unit": "rows",
            "median": stored.rows, "p99": null, "reference": "events pending in the kiosks",
            "ref_median": sent, "ratio": null, "target": "rows = sent, one per event id", "met": exact,
        }));
        drop((r1, r2));
    });
}
