//! The real sync worker against the real crm-endpoint over loopback (SQLite stores in temp dirs),
//! through a fault-injecting proxy where the network misbehaves. After each scenario every event
//! committed to the kiosk's outbox is in the endpoint exactly once (docs/DESIGN.md invariants 3 to 5).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kiosk_protocol::wire::{FeedItem, Key32};
use kiosk_sync::{LinkState, SyncClock};
use support::endpoint::Endpoint;
use support::outbox::SqliteOutbox;
use support::proxy::{Fault, FaultProxy};
use support::*;
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    endpoint: Endpoint,
    enrolled: kiosk_protocol::wire::EnrollResponse,
    outbox: Arc<SqliteOutbox>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, code) = Endpoint::start(&dir.path().join("crm.db"), any_port()).await;
    let enrolled = endpoint.enroll(&code).await;
    let outbox = Arc::new(SqliteOutbox::open(
        &dir.path().join("journal.db"),
        &enrolled.kiosk_id,
    ));
    Setup {
        _dir: dir,
        endpoint,
        enrolled,
        outbox,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_drains_to_the_endpoint_once_and_the_feed_reaches_the_journal() {
    let s = setup().await;
    s.outbox.append_tickets(1234);
    let mut w = spawn_worker(test_config(&s.endpoint.url(), &s.enrolled), &s.outbox);
    let status = wait_drained(&mut w.status, LONG).await;
    assert_eq!(status.link, LinkState::Online);
    assert_eq!(status.events_acknowledged, 1234);
    assert!(
        status.batches_sent >= 3,
        "500-event batches: {}",
        status.batches_sent
    );
    assert!(status.clock_skew_ms.is_some());
    assert_exactly_once(
        &s.endpoint.stored_ids(&s.enrolled.kiosk_id),
        &s.outbox.all_ids(),
    );
    // The demo store has campaigns and customers: the feed brings them into the journal.
    let status = wait_status(&mut w.status, LONG, "a feed pull", |st| {
        st.last_feed_sync.is_some()
    })
    .await;
    assert!(status.feed_cursor.is_some_and(|c| c > 0));
    let items = s.outbox.feed_items();
    assert!(items.iter().any(|i| matches!(i, FeedItem::Campaign(_))));
    assert!(items.iter().any(|i| matches!(i, FeedItem::Profile(_))));

    // New events are sent at once when the journal pokes the worker.
    let more = s.outbox.append_tickets(3);
    w.appended.notify_one();
    wait_status(&mut w.status, LONG, "the new events", |st| {
        st.events_acknowledged == 1237
    })
    .await;
    let stored = s.endpoint.stored_ids(&s.enrolled.kiosk_id);
    assert!(more.iter().all(|id| stored.contains(id)));
    w.shutdown.cancel();
    tokio::time::timeout(LONG, w.handle).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_exactly_once_through_resets_stalls_trickles_and_error_answers() {
    let s = setup().await;
    let proxy = FaultProxy::start(s.endpoint.addr).await;
    let mut config = test_config(&proxy.url(), &s.enrolled);
    // Smaller batches: more requests, more faults.
    config.max_batch_events = 50;
    proxy.chaos(0.5, 20261123);
    let mut w = spawn_worker(config, &s.outbox);

    // The kiosk keeps journaling while the network misbehaves.
    let appender = {
        let outbox = s.outbox.clone();
        let appended = w.appended.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                let o = outbox.clone();
                tokio::task::spawn_blocking(move || o.append_tickets(25))
                    .await
                    .unwrap();
                appended.notify_one();
                tokio::task::yield_now().await;
            }
        })
    };
    // Wait until the faults have had their say: every kind seen at least once.
    let mut seen_kinds = std::collections::HashSet::new();
    tokio::time::timeout(LONG, async {
        while seen_kinds.len() < 9 {
            let notified = proxy.request_seen.notified();
            seen_kinds = proxy
                .seen()
                .iter()
                .map(|s| format!("{:?}", s.fault))
                .collect();
            if seen_kinds.len() < 9 {
                notified.await;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not every fault happened: {seen_kinds:?}"));
    appender.await.unwrap();
    proxy.heal();
    w.appended.notify_one();
    let status = wait_drained(&mut w.status, LONG).await;
    assert_eq!(status.link, LinkState::Online);
    assert_eq!(
        s.outbox.dead_letters(),
        vec![],
        "no event deserved dead-lettering"
    );
    assert_exactly_once(
        &s.endpoint.stored_ids(&s.enrolled.kiosk_id),
        &s.outbox.all_ids(),
    );
    assert_eq!(s.outbox.acknowledged_count(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_killed_and_restarted_mid_drain_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crm.db");
    let (endpoint, code) = Endpoint::start(&db, any_port()).await;
    let enrolled = endpoint.enroll(&code).await;
    let outbox = Arc::new(SqliteOutbox::open(
        &dir.path().join("journal.db"),
        &enrolled.kiosk_id,
    ));
    outbox.append_tickets(20_000);
    let addr = endpoint.addr;
    let mut w = spawn_worker(test_config(&endpoint.url(), &enrolled), &outbox);
    wait_status(&mut w.status, LONG, "a first acknowledged batch", |s| {
        s.events_acknowledged > 0
    })
    .await;
    // Killed while batches keep coming: the one in flight dies with it.
    endpoint.kill();
    wait_status(&mut w.status, LONG, "the worker noticing", |s| {
        s.link == LinkState::Offline && s.consecutive_failures >= 2
    })
    .await;
    outbox.append_tickets(10);
    let (endpoint, _) = Endpoint::start(&db, addr).await;
    w.appended.notify_one();
    let status = wait_drained(&mut w.status, LONG).await;
    assert_eq!(status.link, LinkState::Online);
    assert_exactly_once(&endpoint.stored_ids(&enrolled.kiosk_id), &outbox.all_ids());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_aborted_after_the_endpoint_committed_resends_the_same_batch_and_counts_nothing_twice()
 {
    let s = setup().await;
    let proxy = FaultProxy::start(s.endpoint.addr).await;
    s.outbox.append_tickets(300);
    // The endpoint stores the first batch, but its answer never comes back.
    proxy.script(&[Fault::CommitThenStall]);
    let mut config = test_config(&proxy.url(), &s.enrolled);
    config.request_timeout = Duration::from_secs(30);
    config.feed_interval = Duration::ZERO;
    let w = spawn_worker(config.clone(), &s.outbox);
    tokio::time::timeout(LONG, async {
        loop {
            let notified = proxy.request_seen.notified();
            if s.endpoint.stored_ids(&s.enrolled.kiosk_id).len() == 300 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    })
    .await
    .expect("the endpoint never stored the first batch");
    // The kiosk dies mid-sync: nothing was acknowledged.
    w.handle.abort();
    let _ = w.handle.await;
    assert_eq!(s.outbox.acknowledged_count(), 0);

    let mut w = spawn_worker(config, &s.outbox);
    wait_drained(&mut w.status, LONG).await;
    let batches: Vec<Uuid> = proxy.seen().iter().filter_map(|r| r.batch_id).collect();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert_eq!(
        batches[0], batches[1],
        "the retry after the crash is the same batch"
    );
    assert_eq!(
        batches[0],
        kiosk_protocol::wire::batch_id(&s.enrolled.kiosk_id, 1, 300)
    );
    assert_exactly_once(
        &s.endpoint.stored_ids(&s.enrolled.kiosk_id),
        &s.outbox.all_ids(),
    );
    assert_eq!(s.outbox.acknowledged_count(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_endpoint_rejects_are_dead_lettered_with_their_reason_and_the_queue_moves_on() {
    let s = setup().await;
    s.outbox.append_tickets(10);
    // Valid JSON, but not an event of the catalog: the endpoint rejects it.
    let invalid = s.outbox.append_raw(|env| {
        let mut v = serde_json::to_value(env).unwrap();
        v["payload"] = serde_json::json!({"turn": 42});
        v.to_string()
    });
    // Not JSON at all: it could never travel; dead-lettered on the kiosk.
    let broken = s
        .outbox
        .append_raw(|env| format!("{{\"id\":\"{}\",", env.id));
    s.outbox.append_tickets(10);
    let mut w = spawn_worker(test_config(&s.endpoint.url(), &s.enrolled), &s.outbox);
    let status = wait_drained(&mut w.status, LONG).await;
    assert_eq!(status.events_dead_lettered, 2);
    let dead = s.outbox.dead_letters();
    assert_eq!(
        dead.iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![invalid.seq, broken.seq]
    );
    assert!(dead.iter().all(|(_, reason)| !reason.is_empty()));
    assert!(dead[1].1.contains("not valid JSON"), "{}", dead[1].1);
    // Everything else, including the two event_dead_lettered alerts, reached the endpoint once.
    let stored = s.endpoint.stored_ids(&s.enrolled.kiosk_id);
    assert_eq!(stored.len(), 22);
    assert_exactly_once(
        &stored,
        &s.outbox
            .all_ids()
            .into_iter()
            .filter(|id| *id != invalid.id && *id != broken.id)
            .collect::<Vec<_>>(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_device_secret_is_reported_as_auth_rejected_and_nothing_is_acknowledged() {
    let s = setup().await;
    s.outbox.append_tickets(5);
    let mut config = test_config(&s.endpoint.url(), &s.enrolled);
    config.device_secret = Key32::from_bytes([9; 32]);
    let mut w = spawn_worker(config, &s.outbox);
    let status = wait_status(&mut w.status, LONG, "auth rejection", |st| {
        st.link == LinkState::AuthRejected && st.consecutive_failures >= 2
    })
    .await;
    assert!(status.last_error.unwrap().contains("401"));
    assert_eq!(s.outbox.acknowledged_count(), 0);
    assert!(s.endpoint.stored_ids(&s.enrolled.kiosk_id).is_empty());
}

/// A kiosk whose wall clock is an hour fast (no RTC, no NTP yet).
struct FastClock(Uuid);

impl SyncClock for FastClock {
    fn now(&self) -> kiosk_protocol::wire::KioskClock {
        let mut c = kiosk_protocol::wire::KioskClock::now(self.0, 1);
        c.wall_time += time::Duration::hours(1);
        c
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_whose_clock_is_an_hour_off_still_delivers_and_learns_its_skew() {
    let s = setup().await;
    s.outbox.append_tickets(7);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (_handle, mut status) = kiosk_sync::SyncWorker::spawn(
        test_config(&s.endpoint.url(), &s.enrolled),
        s.outbox.clone(),
        s.outbox.clone(),
        Arc::new(FastClock(Uuid::now_v7())),
        shutdown.clone(),
        Arc::new(tokio::sync::Notify::new()),
    )
    .unwrap();
    let st = wait_drained(&mut status, LONG).await;
    let skew = st.clock_skew_ms.unwrap();
    assert!(
        (3_590_000..3_610_000).contains(&skew),
        "skew estimate {skew} ms for a clock one hour fast"
    );
    assert_exactly_once(
        &s.endpoint.stored_ids(&s.enrolled.kiosk_id),
        &s.outbox.all_ids(),
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_answers_are_waited_out_and_reported() {
    let s = setup().await;
    let proxy = FaultProxy::start(s.endpoint.addr).await;
    proxy.script(&[Fault::Answer(429), Fault::Answer(503)]);
    s.outbox.append_tickets(3);
    let mut config = test_config(&proxy.url(), &s.enrolled);
    config.feed_interval = Duration::ZERO;
    let mut w = spawn_worker(config, &s.outbox);
    wait_status(&mut w.status, LONG, "throttled status", |st| {
        st.link == LinkState::Throttled && st.retry_at.is_some()
    })
    .await;
    let st = wait_drained(&mut w.status, LONG).await;
    assert_eq!(st.link, LinkState::Online);
    let faults: Vec<Fault> = proxy.seen().iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        vec![Fault::Answer(429), Fault::Answer(503), Fault::Pass]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_at_the_crm_reaches_the_journal_through_the_feed() {
    let s = setup().await;
    let mut w = spawn_worker(test_config(&s.endpoint.url(), &s.enrolled), &s.outbox);
    wait_status(&mut w.status, LONG, "a first feed pull", |st| {
        st.last_feed_sync.is_some()
    })
    .await;
    let token = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    assert!(
        s.outbox
            .feed_items()
            .iter()
            .any(|i| matches!(i, FeedItem::Profile(p) if p.card_token == token))
    );
    kiosk_sync::install_crypto_provider();
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/v1/admin/customers/{token}/erase",
            s.endpoint.url()
        ))
        .header("x-admin-token", support::endpoint::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let outbox = s.outbox.clone();
    let erased = token.clone();
    wait_status(
        &mut w.status,
        LONG,
        "the erasure in the journal",
        move |_| {
            outbox
                .feed_items()
                .iter()
                .any(|i| matches!(i, FeedItem::Erasure(e) if e.card_token == erased))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_tls_to_an_endpoint_it_trusts_and_refuses_one_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let tls = crm_endpoint::tls::server_config_from_pem(
        cert.cert.pem().as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let db = dir.path().join("crm.db");
    let (endpoint, code) = Endpoint::start_url(
        format!("sqlite://{}", db.display()),
        &db,
        any_port(),
        Some(tls),
    )
    .await;
    let url = format!("https://localhost:{}", endpoint.addr.port());
    let tls_settings = kiosk_sync::TlsSettings {
        root_ca_pem: Some(cert.cert.pem()),
    };
    let enrolled = kiosk_sync::enroll(
        &url,
        &tls_settings,
        &kiosk_protocol::wire::EnrollRequest {
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
    outbox.append_tickets(20);

    // Trusting another CA: the handshake fails, nothing is acknowledged.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let mut config = test_config(&url, &enrolled);
    config.tls.root_ca_pem = Some(other.cert.pem());
    let mut w = spawn_worker(config, &outbox);
    wait_status(&mut w.status, LONG, "tls failures", |st| {
        st.link == LinkState::Offline && st.consecutive_failures >= 2
    })
    .await;
    w.shutdown.cancel();
    let _ = w.handle.await;
    assert_eq!(outbox.acknowledged_count(), 0);

    let mut config = test_config(&url, &enrolled);
    config.tls = tls_settings;
    let mut w = spawn_worker(config, &outbox);
    wait_drained(&mut w.status, LONG).await;
    assert_exactly_once(&endpoint.stored_ids(&enrolled.kiosk_id), &outbox.all_ids());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_whole_is_halved_until_the_bad_event_is_dead_lettered_alone() {
    let s = setup().await;
    let proxy = FaultProxy::start(s.endpoint.addr).await;
    let ids = s.outbox.append_tickets(100);
    let bad = ids[36];
    proxy.refuse_batches_containing(bad);
    let mut config = test_config(&proxy.url(), &s.enrolled);
    config.max_batch_events = 100;
    let mut w = spawn_worker(config, &s.outbox);
    let status = wait_drained(&mut w.status, LONG).await;
    assert_eq!(status.events_dead_lettered, 1);
    let dead = s.outbox.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, 37);
    assert!(dead[0].1.contains("400"), "{}", dead[0].1);
    let delivered: Vec<Uuid> = s
        .outbox
        .all_ids()
        .into_iter()
        .filter(|id| *id != bad)
        .collect();
    assert_exactly_once(&s.endpoint.stored_ids(&s.enrolled.kiosk_id), &delivered);
}
