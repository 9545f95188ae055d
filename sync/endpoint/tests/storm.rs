//! The morning-after reconnect storm, scaled down for the suite (issue 20; the full-size run is
//! `benches/storm.rs`): 200 simulated kiosks, each the real sync worker with 50 pending events,
//! come back at once to two `crm-endpoint serve` replicas on one PostgreSQL whose admission
//! control is set tight (2 batches at once each, 20 ms of queueing). The replicas refuse what they cannot take
//! with 503 and `Retry-After`; every kiosk waits at least that long, spread by full jitter; in
//! the end every event is stored exactly once (rows counted in the database).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::fleet::{Replica, StormConfig, stored_rows, storm};
use common::{Backend, fresh_url};
use crm_endpoint::db::StoreRecord;

const BIN: &str = env!("CARGO_BIN_EXE_crm-endpoint");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_back_from_an_outage_is_refused_with_retry_after_waits_for_it_and_loses_nothing() {
    common::install_crypto();
    let (url, _) = fresh_url(Backend::Postgres).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    db.upsert_store(StoreRecord {
        id: "north".into(),
        name: "Tienda Norte".into(),
    })
    .await
    .unwrap();
    let args = [
        "--max-ingests",
        "2",
        "--ingest-queue-wait-ms",
        "20",
        "--busy-retry-after",
        "1",
        "--max-connections",
        "2048",
        "--max-per-peer",
        "2048",
    ];
    let (u1, u2) = (url.clone(), url.clone());
    let r1 = tokio::task::spawn_blocking(move || Replica::start(BIN, &u1, &args))
        .await
        .unwrap();
    let r2 = tokio::task::spawn_blocking(move || Replica::start(BIN, &u2, &args))
        .await
        .unwrap();
    let config = StormConfig {
        kiosks: 200,
        events: 50,
        batch_events: 10,
        deadline: Duration::from_secs(600),
    };
    let report = storm(&db, &[r1.base(), r2.base()], "north", &config).await;
    let stored = stored_rows(&url).await;
    println!("FIGURE storm_suite {report:?} {stored:?}");

    assert!(report.drained, "not drained in 10 minutes: {report:?}");
    // 0 lost, 0 duplicated: exactly 50 rows per kiosk, 10,000 distinct events.
    assert_eq!(stored.rows, 10_000, "{stored:?}");
    assert_eq!(stored.distinct_ids, stored.rows);
    assert_eq!(stored.kiosks, 200);
    assert_eq!((stored.min_per_kiosk, stored.max_per_kiosk), (50, 50));
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    // Admission control refused some batches, and said when to come back.
    assert!(report.refused > 0, "no 503 with Retry-After: {report:?}");
    assert_eq!(
        report.server_errors, 0,
        "a 5xx without Retry-After: {report:?}"
    );
    // Every retry after a refusal waited at least its Retry-After, spread by jitter.
    assert!(report.retries_measured > 0, "{report:?}");
    assert_eq!(report.early_retries, 0, "{report:?}");
    assert!(
        report.jitter_spread_ms > 100.0,
        "retries in lockstep: {report:?}"
    );
    let (peak1, _) = r1.rss_kib();
    let (peak2, _) = r2.rss_kib();
    println!("FIGURE storm_suite_rss_kib replica1={peak1} replica2={peak2}");
}
