//! The `crm-endpoint` binary killed with SIGKILL mid-ingest and restarted, on SQLite and on
//! PostgreSQL, while a real kiosk-sync worker drains a growing backlog into it: at the end every
//! event the kiosk journaled is stored exactly once (no loss, no duplicate, no (kiosk, seq) twice).
//!
//! The kiosk side keeps journaling throughout (tickets appended every few milliseconds), so each
//! kill lands while batches are in flight: mid-request, mid-transaction or between the store's
//! commit and the answer. The endpoint restarts on the same port and database. SQLite runs in WAL
//! mode with `synchronous = NORMAL` (a kill keeps the page cache: nothing committed is lost); the
//! throwaway PostgreSQL runs with `fsync = off` (only the endpoint process dies, not the server).
//!
//! Knobs: `KIOSK_ENDPOINT_KILLS` (kills per store, default 4), `KIOSK_SOAK_SEED`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

#[path = "../../client/tests/support/outbox.rs"]
#[allow(dead_code)]
mod outbox;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crm_endpoint::testing::TempPostgres;
use kiosk_protocol::wire::EnrollRequest;
use kiosk_sync::{SyncConfig, SyncStatus, SyncWorker, SystemSyncClock};
use outbox::SqliteOutbox;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_crm-endpoint");
const WAIT: Duration = Duration::from_secs(120);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `crm-endpoint serve` child process.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Kept open: the server must never write into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts the binary on `listen` over `db`; returns it and the enrollment code it printed.
    fn start(db: &str, listen: &str) -> (Server, String) {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", listen, "--db", db, "--demo"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut code = None;
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("crm-endpoint exited before listening: {status}");
            }
            if let Some(c) = line.trim().rsplit_once("enrollment code ") {
                code = Some(c.1.to_owned());
            }
            if let Some(a) = line.trim().strip_prefix("listening on ") {
                break a.parse().unwrap();
            }
        };
        let code = code.expect("--demo prints an enrollment code");
        (
            Server {
                child,
                addr,
                _stdout: stdout,
            },
            code,
        )
    }

    /// SIGKILL: no shutdown, requests in flight and open transactions die with it.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy)]
enum Store {
    Sqlite,
    Postgres,
}

/// (seq, id) of every event stored for `kiosk_id`.
async fn stored(store: Store, db: &str, kiosk_id: &str) -> Vec<(i64, Uuid)> {
    let rows: Vec<(i64, String)> = match store {
        Store::Sqlite => {
            let conn = rusqlite::Connection::open(db.trim_start_matches("sqlite://")).unwrap();
            let mut st = conn
                .prepare("SELECT seq, id FROM events WHERE kiosk_id = ?1")
                .unwrap();
            st.query_map([kiosk_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
        Store::Postgres => {
            let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            let rows = client
                .query(
                    "SELECT seq, id FROM events WHERE kiosk_id = $1",
                    &[&kiosk_id],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            drop(client);
            let _ = task.await;
            rows
        }
    };
    rows.into_iter()
        .map(|(seq, id)| (seq, id.parse().unwrap()))
        .collect()
}

async fn wait_for(
    status: &mut kiosk_sync::SyncStatusReceiver,
    what: &str,
    pred: impl FnMut(&SyncStatus) -> bool,
) -> SyncStatus {
    let got = match tokio::time::timeout(WAIT, status.wait_for(pred)).await {
        Ok(Ok(s)) => Some(s.clone()),
        Ok(Err(_)) => panic!("the sync worker stopped while waiting for {what}"),
        Err(_) => None,
    };
    got.unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}; last status {:#?}",
            *status.borrow()
        )
    })
}

async fn campaign(store: Store) {
    let kills = env_or("KIOSK_ENDPOINT_KILLS", 4u32);
    let seed = env_or("KIOSK_SOAK_SEED", rand::random::<u64>());
    let mut rng = StdRng::seed_from_u64(seed);
    println!("{store:?}: {kills} kills, seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    let _pg;
    let db = match store {
        Store::Sqlite => format!("sqlite://{}", dir.path().join("crm.db").display()),
        Store::Postgres => {
            let pg = tokio::task::spawn_blocking(|| {
                TempPostgres::start()
                    .unwrap_or_else(|e| panic!("this test needs a throwaway PostgreSQL: {e}"))
            })
            .await
            .unwrap();
            let url = pg.fresh_database().await.unwrap();
            _pg = pg;
            url
        }
    };
    kiosk_sync::install_crypto_provider();
    let (mut server, code) = Server::start(&db, "127.0.0.1:0");
    let addr = server.addr;
    let url = format!("http://{addr}");
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
    outbox.append_tickets(1000);

    let mut config = SyncConfig::new(&url, &enrolled.kiosk_id, enrolled.device_secret.clone());
    config.backoff_base = Duration::from_millis(20);
    config.backoff_cap = Duration::from_millis(300);
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(5);
    config.idle_poll = Duration::from_millis(100);
    config.max_batch_events = 100;
    let shutdown = CancellationToken::new();
    let appended = Arc::new(Notify::new());
    let (worker, mut status) = SyncWorker::spawn(
        config,
        outbox.clone(),
        outbox.clone(),
        Arc::new(SystemSyncClock::new(Uuid::now_v7())),
        shutdown.clone(),
        appended.clone(),
    )
    .unwrap();

    // The kiosk keeps journaling while the endpoint dies and comes back.
    let journaling = Arc::new(AtomicBool::new(true));
    let appender = {
        let (outbox, appended, journaling) = (outbox.clone(), appended.clone(), journaling.clone());
        tokio::task::spawn_blocking(move || {
            while journaling.load(Ordering::Relaxed) {
                outbox.append_tickets(20);
                appended.notify_one();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    for round in 0..kills {
        // Ingest is flowing: batches are acknowledged again since the last restart.
        let before = status.borrow().events_acknowledged;
        wait_for(&mut status, "batches acknowledged", |s| {
            s.events_acknowledged > before + 100
        })
        .await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
        server.kill9();
        println!(
            "kill {} of {kills}: {} events acknowledged so far",
            round + 1,
            status.borrow().events_acknowledged
        );
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..300))).await;
        server = Server::start(&db, &addr.to_string()).0;
    }
    journaling.store(false, Ordering::Relaxed);
    appender.await.unwrap();
    appended.notify_one();
    // The outbox is the truth (the status's backlog figure is refreshed at most once a second).
    let total = outbox.all_ids().len() as u64;
    let deadline = std::time::Instant::now() + WAIT;
    while outbox.acknowledged_count() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "{store:?}: the backlog did not drain; last status {:#?}",
            *status.borrow()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = status.borrow().clone();
    shutdown.cancel();
    worker.await.unwrap();
    drop(server);
    assert_eq!(drained.events_dead_lettered, 0);

    let journaled = outbox.all_ids();
    let rows = stored(store, &db, &enrolled.kiosk_id).await;
    let ids: HashSet<Uuid> = rows.iter().map(|(_, id)| *id).collect();
    let seqs: HashSet<i64> = rows.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs.len(),
        rows.len(),
        "{store:?}: a (kiosk, seq) stored twice"
    );
    assert_eq!(ids.len(), rows.len(), "{store:?}: an event stored twice");
    let missing = journaled.iter().filter(|id| !ids.contains(id)).count();
    assert_eq!(
        missing, 0,
        "{store:?}: {missing} journaled events never stored"
    );
    assert_eq!(
        ids.len(),
        journaled.len(),
        "{store:?}: the endpoint holds events the kiosk never journaled"
    );
    println!(
        "FIGURE endpoint_kill9 store={store:?} kills={kills} events={} stored_exactly_once={} \
         batches_sent={} seed={seed}",
        journaled.len(),
        rows.len(),
        drained.batches_sent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_on_sqlite_killed_mid_ingest_stores_every_event_exactly_once() {
    campaign(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_on_postgres_killed_mid_ingest_stores_every_event_exactly_once() {
    campaign(Store::Postgres).await;
}
