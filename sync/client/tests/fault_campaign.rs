//! Fault-proxy campaign over simulated time: the real sync worker talks HTTPS to the real
//! endpoint through a TLS-terminating fault proxy while the kiosk keeps journaling, and every
//! simulated minute the network does something else: per-request chaos (refused and reset
//! connections, resets mid-request and mid-answer, stalls, trickles, 500, 503 and 429 with
//! `Retry-After`), an outage (every request refused), throttling (429 on everything), a
//! certificate for another name, a DNS failure (the endpoint's name does not resolve), or
//! nothing. After the last minute the faults end and the backlog must drain: every event
//! exactly once, none dead-lettered. The process's resident memory (`VmRSS`, which also holds
//! the in-process endpoint and proxy) is sampled every simulated minute and must stay flat after
//! the warm-up.
//!
//! **Time compression.** A simulated minute lasts `60 / KIOSK_PROXY_SCALE` real seconds. The
//! worker's settings are the production defaults divided by the same scale (backoff 500 ms to
//! 60 s, idle poll 5 s, feed every 60 s, `Retry-After` capped at a simulated minute), with floors
//! for a loaded machine: connect timeout 1 s and request timeout 2 s real. The proxy's
//! `Retry-After: 1` is one real second. The kiosk journals 120 events per simulated minute.
//!
//! **DNS failure.** The worker resolves the endpoint's name through a resolver the test can
//! switch off ([`kiosk_sync::DnsResolver`]; the system's resolver otherwise). For that minute the
//! name stops resolving and the proxy drops every established connection (a router that
//! rebooted): the running worker has to reconnect, cannot resolve, goes offline, and comes back
//! by itself when the name resolves again.
//!
//! Knobs: `KIOSK_PROXY_MINUTES` (simulated minutes, default 6: each regime once),
//! `KIOSK_PROXY_SCALE` (default 60), `KIOSK_SOAK_SEED`. `scripts/soak --only proxy` runs 30
//! simulated minutes at scale 20.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kiosk_protocol::wire::EnrollResponse;
use kiosk_sync::{DnsResolver, LinkState, SyncConfig, TlsSettings};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use support::endpoint::Endpoint;
use support::outbox::SqliteOutbox;
use support::proxy::{Fault, FaultProxy, ProxyTls};
use support::*;

/// Most the resident memory may grow after the warm-up, when the SQLite page caches of the
/// endpoint and the outbox and the allocator's arenas have mostly settled (measured: about
/// 3 MiB more over the rest of a 30-minute campaign). A leak of 30 KiB per request or of 3 KiB
/// per event would pass it within that campaign's ~400 requests and 3,600 events.
const RSS_GROWTH_MAX_KIB: u64 = 12 * 1024;
const EVENTS_PER_MINUTE: usize = 120;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Regime {
    Chaos,
    Outage,
    Throttled,
    TlsMismatch,
    Dns,
    Clean,
}

const REGIMES: [Regime; 6] = [
    Regime::Chaos,
    Regime::Outage,
    Regime::Throttled,
    Regime::TlsMismatch,
    Regime::Dns,
    Regime::Clean,
];

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The system's resolver, or a failure for every name while `down`.
#[derive(Default)]
struct SwitchableDns {
    down: AtomicBool,
    /// Lookups refused while down.
    failed: AtomicUsize,
}

impl Resolve for SwitchableDns {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        if self.down.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Box::pin(async move {
                Err(format!("{host}: name does not resolve (the campaign's DNS failure)").into())
            });
        }
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(Box::new(addrs.collect::<Vec<_>>().into_iter()) as Addrs)
        })
    }
}

fn config(
    url: &str,
    enrolled: &EnrollResponse,
    tls: &TlsSettings,
    dns: &Arc<SwitchableDns>,
    scale: f64,
) -> SyncConfig {
    let sim = |d: Duration, floor_ms: u64| d.div_f64(scale).max(Duration::from_millis(floor_ms));
    let mut c = SyncConfig::new(url, &enrolled.kiosk_id, enrolled.device_secret.clone());
    c.backoff_base = sim(Duration::from_millis(500), 5);
    c.backoff_cap = sim(Duration::from_secs(60), 50);
    c.connect_timeout = sim(Duration::from_secs(5), 1000);
    c.request_timeout = sim(Duration::from_secs(30), 2000);
    c.idle_poll = sim(Duration::from_secs(5), 20);
    c.feed_interval = sim(Duration::from_secs(60), 100);
    c.retry_after_max = sim(Duration::from_secs(60), 100);
    c.max_batch_events = 50;
    c.tls = tls.clone();
    c.resolver = Some(DnsResolver(dns.clone()));
    c
}

async fn stop(w: Running) {
    w.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), w.handle)
        .await
        .expect("the worker stops")
        .unwrap();
}

fn count_faults(proxy: &FaultProxy) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in proxy.seen() {
        *out.entry(format!("{:?}", s.fault)).or_default() += 1;
    }
    out
}

/// Waits (bounded) until `pred` holds, polling: evidence that a regime really happened.
async fn until(what: &str, mut pred: impl FnMut() -> bool) {
    until_within(Duration::from_secs(30), what, &mut pred).await;
}

async fn until_within(limit: Duration, what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !pred() {
        assert!(Instant::now() < deadline, "no evidence of {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_minutes_of_network_faults_lose_nothing_duplicate_nothing_and_keep_memory_flat() {
    let minutes = env_or("KIOSK_PROXY_MINUTES", 6usize);
    let scale = env_or("KIOSK_PROXY_SCALE", 60.0f64);
    let seed = env_or("KIOSK_SOAK_SEED", rand::random::<u64>());
    assert!(minutes >= 2, "a warm-up minute and at least one more");
    let minute = Duration::from_secs(60).div_f64(scale);
    println!("fault campaign: {minutes} simulated minutes at {scale}x, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut schedule = Vec::new();
    while schedule.len() < minutes {
        let mut cycle = REGIMES;
        cycle.shuffle(&mut rng);
        schedule.extend(cycle);
    }
    schedule.truncate(minutes);

    let dir = tempfile::tempdir().unwrap();
    let (endpoint, code) =
        Endpoint::start(&dir.path().join("crm.db"), "127.0.0.1:0".parse().unwrap()).await;
    let enrolled = endpoint.enroll(&code).await;
    let outbox = Arc::new(SqliteOutbox::open(
        &dir.path().join("journal.db"),
        &enrolled.kiosk_id,
    ));
    kiosk_sync::install_crypto_provider();
    let cert = |name: &str| {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let server = crm_endpoint::tls::server_config_from_pem(
            c.cert.pem().as_bytes(),
            c.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap();
        (c.cert.pem(), server)
    };
    let (good_pem, good) = cert("localhost");
    // Trusted too, so the handshake fails on the name alone.
    let (wrong_pem, wrong) = cert("crm.other.invalid");
    let tls = TlsSettings {
        root_ca_pem: Some(format!("{good_pem}{wrong_pem}")),
    };
    let proxy = FaultProxy::start_tls(endpoint.addr, ProxyTls { good, wrong }).await;
    let url = format!("https://localhost:{}", proxy.addr.port());
    let dns = Arc::new(SwitchableDns::default());

    let started = Instant::now();
    let rss_start = rss_kib();
    let mut rss = Vec::with_capacity(minutes);
    let mut journaled = 0usize;
    let mut w = spawn_worker(config(&url, &enrolled, &tls, &dns, scale), &outbox);
    let mut dns_failed = 0;
    for (i, regime) in schedule.iter().enumerate() {
        proxy.heal();
        let before = count_faults(&proxy);
        match regime {
            Regime::Chaos => proxy.chaos(0.5, seed.wrapping_add(i as u64)),
            Regime::Outage => proxy.always(Some(Fault::Refuse)),
            Regime::Throttled => proxy.always(Some(Fault::Answer(429))),
            Regime::TlsMismatch => proxy.always(Some(Fault::TlsMismatch)),
            Regime::Dns => {
                dns.down.store(true, Ordering::SeqCst);
                proxy.drop_connections();
            }
            Regime::Clean => {}
        }
        // The minute: the kiosk journals as customers come.
        let end = Instant::now() + minute;
        let ticks = 10;
        for _ in 0..ticks {
            let o = outbox.clone();
            tokio::task::spawn_blocking(move || o.append_tickets(EVENTS_PER_MINUTE / ticks))
                .await
                .unwrap();
            journaled += EVENTS_PER_MINUTE / ticks;
            w.appended.notify_one();
            tokio::time::sleep(end.saturating_duration_since(Instant::now()) / ticks as u32).await;
        }
        tokio::time::sleep_until(end.into()).await;
        // Evidence that the regime took effect before moving on.
        let seen = |kind: &str| {
            let now = count_faults(&proxy);
            now.get(kind).copied().unwrap_or(0) > before.get(kind).copied().unwrap_or(0)
        };
        match regime {
            Regime::Chaos => {
                until("chaos", || {
                    let now = count_faults(&proxy);
                    now.iter()
                        .any(|(k, n)| k != "Pass" && *n > before.get(k).copied().unwrap_or(0))
                })
                .await
            }
            Regime::Outage => until("an outage", || seen("Refuse")).await,
            Regime::Throttled => until("throttling", || seen("Answer(429)")).await,
            Regime::TlsMismatch => until("a certificate mismatch", || seen("TlsMismatch")).await,
            Regime::Dns => {
                wait_status(
                    &mut w.status,
                    Duration::from_secs(30),
                    "a dns failure",
                    |s| s.link == LinkState::Offline && s.consecutive_failures > 0,
                )
                .await;
                let failed = dns.failed.load(Ordering::SeqCst);
                assert!(failed > 0, "the worker never tried to resolve the name");
                dns_failed += failed;
                dns.failed.store(0, Ordering::SeqCst);
                dns.down.store(false, Ordering::SeqCst);
            }
            Regime::Clean => {}
        }
        rss.push(rss_kib());
    }
    proxy.heal();
    w.appended.notify_one();
    // The faults are over: everything journaled is acknowledged, the link is up.
    until_within(Duration::from_secs(180), "the backlog drained", || {
        outbox.acknowledged_count() as usize == journaled
    })
    .await;
    let drained = wait_status(&mut w.status, Duration::from_secs(60), "online", |s| {
        s.link == LinkState::Online
    })
    .await;
    let real = started.elapsed();
    stop(w).await;
    let rss_end = rss_kib();

    assert_eq!(
        outbox.dead_letters(),
        vec![],
        "no event deserved dead-lettering"
    );
    assert_eq!(drained.events_dead_lettered, 0);
    assert_exactly_once(&endpoint.stored_ids(&enrolled.kiosk_id), &outbox.all_ids());
    assert_eq!(outbox.acknowledged_count() as usize, journaled);

    let warm_up = (minutes / 5).max(1).min(rss.len() - 1);
    let baseline = rss[warm_up - 1];
    let peak = rss[warm_up..]
        .iter()
        .copied()
        .chain([rss_end])
        .max()
        .unwrap();
    let faults = count_faults(&proxy);
    println!("resident memory per simulated minute (KiB): {rss:?}");
    println!(
        "FIGURE proxy_campaign simulated_minutes={minutes} scale={scale} real_s={:.0} \
         events={journaled} requests={} faults={faults:?} dns_lookups_failed={dns_failed} \
         regimes={schedule:?} lost=0 duplicated=0 rss_kib_start={rss_start} rss_kib_after_warm_up={baseline} \
         rss_kib_peak_after={peak} rss_kib_end={rss_end} seed={seed}",
        real.as_secs_f64(),
        faults.values().sum::<usize>(),
    );
    assert!(
        peak <= baseline + RSS_GROWTH_MAX_KIB,
        "resident memory grew from {baseline} KiB after the warm-up to {peak} KiB: {rss:?}"
    );
}
