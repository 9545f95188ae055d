//! Shared pieces of the kiosk-sync integration tests: a SQLite outbox, the real endpoint on its
//! own runtime, a fault-injecting proxy, and waiting helpers.
#![allow(dead_code)]

pub mod endpoint;
pub mod outbox;
pub mod proxy;

use std::sync::Arc;
use std::time::Duration;

use kiosk_protocol::wire::EnrollResponse;
use kiosk_sync::{SyncConfig, SyncStatus, SyncStatusReceiver, SyncWorker, SystemSyncClock};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use outbox::SqliteOutbox;

/// Settings for tests: quick backoff, short timeouts (the proxy stalls).
pub fn test_config(url: &str, enrolled: &EnrollResponse) -> SyncConfig {
    let mut c = SyncConfig::new(url, &enrolled.kiosk_id, enrolled.device_secret.clone());
    c.backoff_base = Duration::from_millis(20);
    c.backoff_cap = Duration::from_millis(400);
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(2);
    c.idle_poll = Duration::from_millis(200);
    c.feed_interval = Duration::from_millis(500);
    c.retry_after_max = Duration::from_secs(2);
    c
}

pub struct Running {
    pub handle: JoinHandle<()>,
    pub status: SyncStatusReceiver,
    pub shutdown: CancellationToken,
    pub appended: Arc<Notify>,
}

pub fn spawn_worker(config: SyncConfig, outbox: &Arc<SqliteOutbox>) -> Running {
    let shutdown = CancellationToken::new();
    let appended = Arc::new(Notify::new());
    let (handle, status) = SyncWorker::spawn(
        config,
        outbox.clone(),
        outbox.clone(),
        Arc::new(SystemSyncClock::new(Uuid::now_v7())),
        shutdown.clone(),
        appended.clone(),
    )
    .unwrap();
    Running {
        handle,
        status,
        shutdown,
        appended,
    }
}

/// Waits (up to `limit`) until the status satisfies `pred`; panics with the last status if not.
pub async fn wait_status(
    status: &mut SyncStatusReceiver,
    limit: Duration,
    what: &str,
    pred: impl FnMut(&SyncStatus) -> bool,
) -> SyncStatus {
    let got = match tokio::time::timeout(limit, status.wait_for(pred)).await {
        Ok(Ok(s)) => Some(s.clone()),
        Ok(Err(_)) => panic!("worker stopped while waiting for {what}"),
        Err(_) => None,
    };
    got.unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}; last status {:#?}",
            *status.borrow()
        )
    })
}

/// Waits until the outbox reports nothing waiting.
pub async fn wait_drained(status: &mut SyncStatusReceiver, limit: Duration) -> SyncStatus {
    wait_status(status, limit, "an empty outbox", |s| {
        s.backlog.as_ref().is_some_and(|b| b.events == 0)
    })
    .await
}

/// Asserts that the endpoint holds each of `ids` exactly once and nothing else of this kiosk.
pub fn assert_exactly_once(stored: &[Uuid], journaled: &[Uuid]) {
    let mut stored_sorted = stored.to_vec();
    stored_sorted.sort();
    let mut dedup = stored_sorted.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), stored_sorted.len(), "an event is stored twice");
    let mut want = journaled.to_vec();
    want.sort();
    let missing: Vec<_> = want
        .iter()
        .filter(|id| stored_sorted.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} journaled events never reached the endpoint: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        stored_sorted, want,
        "the endpoint holds events the kiosk never journaled"
    );
}
