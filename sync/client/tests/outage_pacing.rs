//! A busy kiosk through a CRM outage: the real worker, the real endpoint behind a fault proxy
//! answering 500 to every batch for five simulated minutes, while the kiosk journals an event
//! every simulated two seconds (a busy shop) and pokes the worker for each, as the journal does.
//! The attempts must follow the configured full-jitter schedule whatever is appended meanwhile:
//! attempt k comes at most `min(cap, base * 2^k)` after attempt k-1, and in all about as many as
//! that schedule gives, not one per new event. (Before: each append cut the backoff to
//! `backoff_base`, and a busy kiosk retried every half second through an outage.)
//!
//! Time compressed 10x: backoff 50 ms to 6 s (production 500 ms to 60 s), five simulated
//! minutes in 30 s.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::endpoint::Endpoint;
use support::outbox::{SqliteOutbox, ticket};
use support::proxy::{Fault, FaultProxy};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_an_outage_a_busy_kiosk_retries_on_the_full_jitter_schedule_not_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, code) =
        Endpoint::start(&dir.path().join("crm.db"), "127.0.0.1:0".parse().unwrap()).await;
    let enrolled = endpoint.enroll(&code).await;
    let outbox = Arc::new(SqliteOutbox::open(
        &dir.path().join("journal.db"),
        &enrolled.kiosk_id,
    ));
    let proxy = FaultProxy::start(endpoint.addr).await;
    proxy.always(Some(Fault::Answer(500)));

    let base = Duration::from_millis(50);
    let cap = Duration::from_secs(6);
    let outage = Duration::from_secs(30);
    let mut config = test_config(&proxy.url(), &enrolled);
    config.backoff_base = base;
    config.backoff_cap = cap;
    config.feed_interval = Duration::from_secs(3600);
    let worker = spawn_worker(config, &outbox);

    // A busy kiosk: an event every 200 ms, each poking the worker.
    let started = Instant::now();
    let mut journaled = Vec::new();
    while started.elapsed() < outage {
        journaled.push(outbox.append(ticket(journaled.len() as u64)).id);
        worker.appended.notify_one();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let attempts: Vec<Instant> = proxy
        .seen()
        .iter()
        .filter(|s| s.path.ends_with("/batches"))
        .map(|s| s.at)
        .collect();
    let n = attempts.len();
    println!(
        "{} events journaled, {n} batch attempts in {outage:?}",
        journaled.len()
    );

    // Each gap within its full-jitter bound (plus a request's time and the machine's slack).
    let slack = Duration::from_millis(500);
    for (k, pair) in attempts.windows(2).enumerate() {
        let bound = cap.min(base * 2u32.saturating_pow(u32::try_from(k + 1).unwrap().min(20)));
        let gap = pair[1] - pair[0];
        assert!(
            gap <= bound + slack,
            "attempt {} came {gap:?} after the one before: over its bound {bound:?}",
            k + 2
        );
    }
    // And about as many attempts as the schedule gives: full jitter waits cap/2 on average once
    // at the cap (3 s here), about 10 attempts after the first 3 s of doubling. One attempt per
    // event would be 150; 40 would need the mean wait to fall under 0.75 s, which 30 draws from
    // uniform(0, 6 s) do with a probability far below 1e-9.
    assert!(
        (4..=40).contains(&n),
        "{n} attempts in {outage:?} for {} events",
        journaled.len()
    );

    // The outage ends: everything arrives, exactly once.
    proxy.heal();
    let mut status = worker.status.clone();
    wait_drained(&mut status, Duration::from_secs(60)).await;
    assert_exactly_once(&endpoint.stored_ids(&enrolled.kiosk_id), &journaled);
    worker.shutdown.cancel();
}
