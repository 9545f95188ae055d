//! Endpoint replicas for the fleet tests and the reconnect-storm benchmark (issue 20): real
//! `crm-endpoint serve` processes on one PostgreSQL database, and a storm of simulated kiosks,
//! each the real sync worker (`kiosk_sync::SyncWorker`) over an outbox in memory.
//!
//! Self-contained (no `super::`): `benches/storm.rs` includes this file too.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiosk_protocol::events::{Envelope, Event, TicketIssued};
use kiosk_protocol::wire::{EnrollRequest, EnrollResponse, FeedItem};
use kiosk_sync::{
    Backlog, BatchAttempt, BatchObserver, BoxError, FeedSink, Outbox, OutboxEvent, SyncConfig,
    SyncWorker, SystemSyncClock,
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The admin token the replicas run with.
pub const FLEET_ADMIN: &str = "fleet-admin-token-of-at-least-32-characters";

/// A `crm-endpoint serve` child process: one replica.
pub struct Replica {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Kept open: the server must never write into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Replica {
    /// Starts `bin serve` on a free loopback port over `db`, with `extra` arguments.
    pub fn start(bin: &str, db: &str, extra: &[&str]) -> Replica {
        Self::start_on(bin, db, "127.0.0.1:0", extra)
    }

    /// Starts `bin serve` on `listen` over `db`, with `extra` arguments.
    pub fn start_on(bin: &str, db: &str, listen: &str, extra: &[&str]) -> Replica {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", listen, "--db", db])
            .args(extra)
            .env("CRM_ADMIN_TOKEN", FLEET_ADMIN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("crm-endpoint exited before listening: {status}");
            }
            if let Some(a) = line.trim().strip_prefix("listening on ") {
                break a.parse().unwrap();
            }
        };
        Replica {
            child,
            addr,
            _stdout: stdout,
        }
    }

    /// `http://ADDR`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak and current resident memory, KiB (`VmHWM`, `VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// SIGKILL and wait (a replica taken down).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Enrolls a kiosk of `store` through `base` with a code made in `db`.
pub async fn enroll(
    db: &crm_endpoint::SharedDb,
    client: &reqwest::Client,
    base: &str,
    store: &str,
) -> EnrollResponse {
    let (code, _) = crm_endpoint::api::issue_enroll_code(db, store, Duration::from_secs(600))
        .await
        .unwrap();
    let resp = client
        .post(format!("{base}/v1/enroll"))
        .json(&EnrollRequest {
            code,
            hardware_profile: "simulated".into(),
            firmware_version: "0.1.0".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "enrollment through {base}");
    resp.json().await.unwrap()
}

/// A ticket issued: the bulk of a kiosk's day of backlog.
pub fn ticket(turn_id: Uuid, number: u32) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id,
        turn: format!("A-{:03}", number % 1000),
        service: "A".into(),
        number,
        business_day: "2026-11-23".into(),
        priority: false,
        position: 0,
        estimated_wait_s: 60,
        card_token: None,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

/// The outbox of a simulated kiosk: `total` events made on demand (nothing held but a cursor),
/// acknowledged in order as the worker sends them.
pub struct SimOutbox {
    kiosk_id: String,
    index: u64,
    boot_id: Uuid,
    start: OffsetDateTime,
    total: u64,
    /// Seqs 1..=acked are acknowledged.
    acked: Mutex<u64>,
    dead: AtomicU64,
    /// Acknowledged events of every kiosk (the drain's progress).
    progress: Arc<AtomicU64>,
}

impl SimOutbox {
    /// The envelope of `seq` (its id fixed by the kiosk's index and seq: a resend is the same
    /// event).
    fn event(&self, seq: u64) -> OutboxEvent {
        let id = Uuid::from_u128((u128::from(self.index) << 64) | u128::from(seq));
        let envelope = Envelope {
            id,
            kiosk_id: self.kiosk_id.clone(),
            seq,
            boot_id: self.boot_id,
            wall_time: self.start + Duration::from_secs(seq * 60),
            mono_ms: seq * 60_000,
            schema_version: 1,
            event: ticket(id, u32::try_from(seq).unwrap_or(0)),
        };
        OutboxEvent {
            seq,
            id,
            json: serde_json::to_string(&envelope).unwrap(),
        }
    }

    /// Events not acknowledged yet.
    pub fn left(&self) -> u64 {
        self.total - *self.acked.lock().unwrap()
    }
}

impl Outbox for SimOutbox {
    fn pending(&self, max_events: usize, max_bytes: usize) -> Result<Vec<OutboxEvent>, BoxError> {
        let from = *self.acked.lock().unwrap() + 1;
        let mut out = Vec::new();
        let mut bytes = 0;
        for seq in from..=self.total {
            let ev = self.event(seq);
            bytes += ev.json.len();
            if !out.is_empty() && (out.len() >= max_events || bytes > max_bytes) {
                break;
            }
            out.push(ev);
        }
        Ok(out)
    }

    fn acknowledge(&self, seqs: &[u64]) -> Result<(), BoxError> {
        let mut acked = self.acked.lock().unwrap();
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        for s in sorted {
            if s == *acked + 1 {
                *acked = s;
                self.progress.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn dead_letter(&self, seq: u64, _reason: &str) -> Result<(), BoxError> {
        self.dead.fetch_add(1, Ordering::Relaxed);
        self.acknowledge(&[seq])
    }

    fn backlog(&self) -> Result<Backlog, BoxError> {
        Ok(Backlog {
            events: self.left(),
            oldest_wall_time: None,
        })
    }
}

/// A feed sink that keeps only the cursor.
#[derive(Default)]
pub struct SimFeed(Mutex<Option<u64>>);

impl FeedSink for SimFeed {
    fn cursor(&self) -> Result<Option<u64>, BoxError> {
        Ok(*self.0.lock().unwrap())
    }
    fn apply(&self, _items: Vec<FeedItem>, next_cursor: u64) -> Result<(), BoxError> {
        *self.0.lock().unwrap() = Some(next_cursor);
        Ok(())
    }
}

/// What a storm is.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// Simulated kiosks.
    pub kiosks: usize,
    /// Pending events of each.
    pub events: u64,
    /// Events per batch (the sync client's default is the protocol's 500).
    pub batch_events: usize,
    /// Give up after this long.
    pub deadline: Duration,
}

/// One batch request seen by the observer.
#[derive(Debug, Clone, Copy)]
struct Seen {
    kiosk: usize,
    attempt: BatchAttempt,
    ended: Instant,
}

/// What a storm came to.
#[derive(Debug, Clone)]
pub struct StormReport {
    pub kiosks: usize,
    pub events_per_kiosk: u64,
    /// From the workers' start until every outbox was empty.
    pub drain: Duration,
    pub drained: bool,
    pub requests: usize,
    pub ok: usize,
    /// Refusals: 503 and 429 (admission control).
    pub refused: usize,
    /// 5xx answers other than admission control's 503 with `Retry-After`, and 5xx in all.
    pub server_errors: usize,
    pub all_5xx: usize,
    pub network_errors: usize,
    /// Requests completed in the busiest second.
    pub peak_rps: usize,
    /// Of successful batches, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// A retry sent before the endpoint's `Retry-After` had passed (must be 0).
    pub early_retries: usize,
    /// Refusals with `Retry-After` that were followed by a retry (the wait was measured).
    pub retries_measured: usize,
    /// Shortest wait beyond `Retry-After` of a retry, and the spread (p90 - p10) of those waits:
    /// full jitter kept, not a lockstep.
    pub min_extra_ms: f64,
    pub jitter_spread_ms: f64,
    pub dead_lettered: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `config.kiosks` sync workers, each draining `config.events` through the round-robin of
/// `bases` (kiosk `i` talks to `bases[i % n]`, as a load balancer would spread them), until
/// every outbox is empty or the deadline passes. The kiosks are enrolled first (not timed).
pub async fn storm(
    db: &crm_endpoint::SharedDb,
    bases: &[String],
    store: &str,
    config: &StormConfig,
) -> StormReport {
    kiosk_sync::install_crypto_provider();
    let client = reqwest::Client::new();
    let enrolled: Vec<EnrollResponse> = {
        use futures::StreamExt;
        futures::stream::iter(0..config.kiosks)
            .map(|i| {
                let base = bases[i % bases.len()].clone();
                let client = client.clone();
                async move { enroll(db, &client, &base, store).await }
            })
            // Below the enrollment throttle's 10 attempts in flight per address (an attempt is
            // counted until it succeeds): the simulated kiosks share 127.0.0.1.
            .buffered(8)
            .collect()
            .await
    };
    let progress = Arc::new(AtomicU64::new(0));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let start = OffsetDateTime::now_utc() - Duration::from_secs(config.events * 60 + 3600);
    let mut outboxes = Vec::new();
    let mut handles = Vec::new();
    let begun = Instant::now();
    for (i, e) in enrolled.iter().enumerate() {
        let outbox = Arc::new(SimOutbox {
            kiosk_id: e.kiosk_id.clone(),
            index: i as u64 + 1,
            boot_id: Uuid::now_v7(),
            start,
            total: config.events,
            acked: Mutex::new(0),
            dead: AtomicU64::new(0),
            progress: progress.clone(),
        });
        let mut c = SyncConfig::new(
            bases[i % bases.len()].clone(),
            &e.kiosk_id,
            e.device_secret.clone(),
        );
        c.max_batch_events = config.batch_events;
        c.request_timeout = Duration::from_secs(60);
        let log = seen.clone();
        c.batch_observer = Some(BatchObserver(Arc::new(move |a: &BatchAttempt| {
            log.lock().unwrap().push(Seen {
                kiosk: i,
                attempt: *a,
                ended: Instant::now(),
            });
        })));
        let (handle, _status) = SyncWorker::spawn(
            c,
            outbox.clone(),
            Arc::new(SimFeed::default()),
            Arc::new(SystemSyncClock::new(outbox.boot_id)),
            shutdown.clone(),
            Arc::new(tokio::sync::Notify::new()),
        )
        .unwrap();
        outboxes.push(outbox);
        handles.push(handle);
    }
    let want = config.events * config.kiosks as u64;
    let mut drained = false;
    while begun.elapsed() < config.deadline {
        if progress.load(Ordering::Relaxed) >= want {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = begun.elapsed();
    shutdown.cancel();
    for h in handles {
        let _ = h.await;
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    report(config, &outboxes, &seen, begun, drain, drained)
}

fn report(
    config: &StormConfig,
    outboxes: &[Arc<SimOutbox>],
    seen: &[Seen],
    begun: Instant,
    drain: Duration,
    drained: bool,
) -> StormReport {
    let status = |s: &Seen| s.attempt.status;
    let ok = seen.iter().filter(|s| status(s) == Some(200)).count();
    let refused = seen
        .iter()
        .filter(|s| matches!(status(s), Some(429 | 503)) && s.attempt.retry_after.is_some())
        .count();
    let all_5xx = seen
        .iter()
        .filter(|s| status(s).is_some_and(|c| c >= 500))
        .count();
    let server_errors = seen
        .iter()
        .filter(|s| status(s).is_some_and(|c| c >= 500) && s.attempt.retry_after.is_none())
        .count();
    let network_errors = seen.iter().filter(|s| status(s).is_none()).count();
    let mut per_second = std::collections::HashMap::<u64, usize>::new();
    for s in seen {
        *per_second
            .entry(s.ended.duration_since(begun).as_secs())
            .or_default() += 1;
    }
    let peak_rps = per_second.values().copied().max().unwrap_or(0);
    let mut lat: Vec<f64> = seen
        .iter()
        .filter(|s| status(s) == Some(200))
        .map(|s| s.attempt.elapsed.as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    // Per kiosk, in order: each refusal with Retry-After and the next attempt's start.
    let mut by_kiosk: Vec<Vec<&Seen>> = vec![Vec::new(); config.kiosks];
    for s in seen {
        by_kiosk[s.kiosk].push(s);
    }
    let mut early = 0;
    let mut extras = Vec::new();
    for list in &mut by_kiosk {
        list.sort_by_key(|s| s.attempt.started);
        for pair in list.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if let Some(after) = a.attempt.retry_after {
                let waited = b.attempt.started.duration_since(a.ended);
                // A millisecond of timer slack.
                if waited + Duration::from_millis(1) < after {
                    early += 1;
                }
                extras.push(waited.as_secs_f64() * 1000.0 - after.as_secs_f64() * 1000.0);
            }
        }
    }
    extras.sort_by(f64::total_cmp);
    StormReport {
        kiosks: config.kiosks,
        events_per_kiosk: config.events,
        drain,
        drained,
        requests: seen.len(),
        ok,
        refused,
        server_errors,
        all_5xx,
        network_errors,
        peak_rps,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        early_retries: early,
        retries_measured: extras.len(),
        min_extra_ms: extras.first().copied().unwrap_or(0.0),
        jitter_spread_ms: percentile(&extras, 0.9) - percentile(&extras, 0.1),
        dead_lettered: outboxes
            .iter()
            .map(|o| o.dead.load(Ordering::Relaxed))
            .sum(),
    }
}

/// What is stored: events in all, distinct event ids, kiosks with events, and the fewest and
/// most events of one kiosk. What "0 lost, 0 duplicated" is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub rows: u64,
    pub distinct_ids: u64,
    pub kiosks: u64,
    pub min_per_kiosk: u64,
    pub max_per_kiosk: u64,
}

/// Counts the stored events in the database at `pg_url`.
pub async fn stored_rows(pg_url: &str) -> Stored {
    let (client, conn) = tokio_postgres::connect(pg_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let all = client
        .query_one("SELECT COUNT(*), COUNT(DISTINCT id) FROM events", &[])
        .await
        .unwrap();
    let per = client
        .query_one(
            "SELECT COUNT(*), COALESCE(MIN(n), 0), COALESCE(MAX(n), 0)
             FROM (SELECT COUNT(*) AS n FROM events GROUP BY kiosk_id) per_kiosk",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    let n = |r: &tokio_postgres::Row, i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
    Stored {
        rows: n(&all, 0),
        distinct_ids: n(&all, 1),
        kiosks: n(&per, 0),
        min_per_kiosk: n(&per, 1),
        max_per_kiosk: n(&per, 2),
    }
}
