//! A week offline, compressed in time: the kiosk's journal (the real store, queue and budget)
//! takes a week of customer journeys while the CRM is unreachable, with a 16 MiB disk budget;
//! then the network returns and the real sync worker drains the backlog to the real endpoint.
//!
//! Checked: the journal's files (database + WAL) never exceed the budget plus [`SLACK`]; past the
//! soft limit only low-value events (taps, identifications, campaign views, logs) are refused,
//! counted and reported once as a storage event; every registration, consent, ticket and turn
//! is journaled (turn numbers 1..n each day, none skipped or repeated) and reaches the endpoint
//! exactly once; refusals stop once the backlog drained.
//!
//! Time is compressed by driving the journal's clock by hand: each simulated day is a loop of
//! journeys spread over ten opening hours, as fast as the journal appends. The suite runs the
//! default size with `synchronous = NORMAL` (the budget does not depend on it; 30,000 fsyncs would
//! take minutes); `scripts/soak --only week` runs it with `FULL`, as configured on a kiosk.
//!
//! The default load, 450 journeys a day (about 3,000 events: taps, identifications, campaign
//! views, registrations with their consents, tickets, prints, surveys, calls, services, logs),
//! reaches the soft limit of a 16 MiB budget on the sixth day; what is still journaled after
//! that (everything but the low-value events) fits in the last quarter of the budget. A site
//! that journals more needs a larger `journal.disk_budget_mib` (the default is 1 GiB): past the
//! budget only a full disk stops the events the kiosk never drops.
//!
//! Knobs (environment): `KIOSK_WEEK_DAYS` (7), `KIOSK_WEEK_JOURNEYS_PER_DAY` (450),
//! `KIOSK_WEEK_BUDGET_MIB` (16), `KIOSK_WEEK_SYNCHRONOUS` (`normal` or `full`), `KIOSK_SOAK_SEED`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kiosk_core::journey::{Locale, Localized};
use kiosk_core::queue::{IssueRequest, Queue, QueueSettings, ServiceDay, ServiceDef};
use kiosk_journal::clock::ManualClock;
use kiosk_journal::crypto::DeviceKey;
use kiosk_journal::db::DbError;
use kiosk_journal::db::KioskDb;
use kiosk_journal::{Identity, Journal, JournalError, ListFilter, Options, Synchronous};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::*;
use kiosk_protocol::wire::EnrollRequest;
use kiosk_sync::{SyncConfig, SyncWorker, SystemSyncClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const MIB: u64 = 1024 * 1024;
/// How far past the budget the files may go: the budget is checked before each transaction, so
/// one transaction's pages can land past it (a queue step writes a turn row, a counter and an
/// event: a few 4 KiB pages, each also a WAL frame). Measured peaks stay far below this.
const SLACK: u64 = 64 * 1024;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy)]
struct Params {
    days: u32,
    journeys_per_day: u32,
    budget: u64,
    synchronous: Synchronous,
    seed: u64,
}

impl Params {
    fn from_env() -> Params {
        Params {
            days: env_or("KIOSK_WEEK_DAYS", 7),
            journeys_per_day: env_or("KIOSK_WEEK_JOURNEYS_PER_DAY", 450),
            budget: env_or("KIOSK_WEEK_BUDGET_MIB", 16) * MIB,
            synchronous: match std::env::var("KIOSK_WEEK_SYNCHRONOUS").as_deref() {
                Ok("full") => Synchronous::Full,
                _ => Synchronous::Normal,
            },
            seed: env_or("KIOSK_SOAK_SEED", rand::random()),
        }
    }
}

/// The real endpoint on this runtime, stopped and started again on the same port.
struct Crm {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Crm {
    async fn start(db: &Path, addr: SocketAddr) -> (Crm, String) {
        let crm_db = crm_endpoint::db::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let seed = crm_endpoint::seed_demo(&crm_db).await.unwrap();
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                // The previous server may still be releasing the port.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.unwrap_or_else(|| panic!("cannot bind {addr}"));
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let config = crm_endpoint::ServeConfig {
                db: crm_db,
                admin_token: None,
                tls: None,
            };
            crm_endpoint::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        (Crm { addr, stop, task }, seed.enroll_code)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

fn file_bytes(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    [path.to_owned(), PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// What the week did.
#[derive(Default)]
struct Week {
    journeys: u64,
    appended: u64,
    /// Refused low-value events, per type.
    refused: BTreeMap<&'static str, u64>,
    /// Day (0-based) of the first refusal.
    first_refusal_day: Option<u32>,
    /// Ids of registrations and consents.
    protected: Vec<Uuid>,
    /// Ticket numbers per (service day, service), in issue order.
    tickets: BTreeMap<(String, String), Vec<u32>>,
    max_file_bytes: u64,
}

/// Appends an event the budget may refuse; panics on any other failure.
fn record(store: &KioskDb, week: &mut Week, day: u32, event: Event) {
    let low_value = kiosk_journal::is_low_value(&event);
    match store.append(event) {
        Ok(_) => week.appended += 1,
        Err(DbError::Journal(JournalError::OverBudget { type_name, .. })) => {
            assert!(low_value, "{type_name} refused at the budget");
            *week.refused.entry(type_name).or_default() += 1;
            week.first_refusal_day.get_or_insert(day);
        }
        Err(e) => panic!("append failed: {e}"),
    }
}

fn keep(store: &KioskDb, week: &mut Week, event: Event) -> Uuid {
    let what = event.type_name();
    let a = store
        .append(event)
        .unwrap_or_else(|e| panic!("{what} must never be refused: {e}"));
    week.appended += 1;
    a.id
}

fn commit(store: &KioskDb, queue: &mut Queue, week: &mut Week, change: &kiosk_core::queue::Change) {
    let appended = store
        .commit_change(change)
        .unwrap_or_else(|e| panic!("a queue step must always commit: {e}"));
    week.appended += appended.len() as u64;
    queue.apply(change);
}

fn settings() -> QueueSettings {
    QueueSettings::new(
        vec![
            ServiceDef {
                letter: "A".into(),
                name: Localized::new("Caja", "Checkout"),
                priority_allowed: true,
                expected_s: 300,
            },
            ServiceDef {
                letter: "B".into(),
                name: Localized::new("Atención", "Help desk"),
                priority_allowed: false,
                expected_s: 300,
            },
        ],
        time::macros::time!(08:00),
    )
}

/// Journeys of `p.days` days; staff at one counter call and serve as customers come.
fn simulate_week(
    store: &KioskDb,
    clock: &ManualClock,
    start: OffsetDateTime,
    path: &Path,
    p: &Params,
) -> Week {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut week = Week::default();
    let mut queue = store
        .load_queue(
            settings(),
            ServiceDay::at(start, time::macros::time!(08:00)),
        )
        .unwrap();
    let step = Duration::from_secs(10 * 3600) / p.journeys_per_day;
    for day in 0..p.days {
        clock.set_wall(start + time::Duration::days(i64::from(day)));
        for j in 0..p.journeys_per_day {
            clock.advance(step);
            let now = kiosk_journal::clock::Clock::wall(clock);
            let mut token = None;
            if rng.gen_bool(0.7) {
                let t = CardToken::from_bytes(rng.r#gen());
                let known = rng.gen_bool(0.85);
                record(
                    store,
                    &mut week,
                    day,
                    Event::CardTapped(CardTapped {
                        card_token: t.clone(),
                        reader: ReaderKind::Mfrc522,
                        known,
                    }),
                );
                if !known {
                    let id = keep(
                        store,
                        &mut week,
                        Event::CustomerRegistered(CustomerRegistered {
                            card_token: t.clone(),
                            display_name: format!("Cliente {day}-{j}"),
                            email: Some(format!("cliente.{day}.{j}@example.com")),
                            phone: rng.gen_bool(0.5).then(|| "+34 600 000 000".to_owned()),
                            locale: "es".into(),
                        }),
                    );
                    week.protected.push(id);
                    for purpose in [ConsentPurpose::Profile, ConsentPurpose::MarketingEmail] {
                        let id = keep(
                            store,
                            &mut week,
                            Event::ConsentGiven(ConsentChange {
                                card_token: t.clone(),
                                purpose,
                                policy_version: "2026-01".into(),
                                policy_sha256: "ab".repeat(32),
                            }),
                        );
                        week.protected.push(id);
                    }
                }
                record(
                    store,
                    &mut week,
                    day,
                    Event::CustomerIdentified(CustomerIdentified {
                        card_token: Some(t.clone()),
                        by: IdentifiedBy::Card,
                        source: if known {
                            ProfileSource::LocalCache
                        } else {
                            ProfileSource::JustRegistered
                        },
                        segment: Some("regular".into()),
                    }),
                );
                if rng.gen_bool(0.6) {
                    record(
                        store,
                        &mut week,
                        day,
                        Event::CampaignShown(CampaignShown {
                            campaign_id: "winter-coffee".into(),
                            variant: "b".into(),
                            card_token: Some(t.clone()),
                            segment: Some("regular".into()),
                            surface: Surface::Screen,
                            visit_id: None,
                        }),
                    );
                }
                token = Some(t);
            }
            let service = if rng.gen_bool(0.8) { "A" } else { "B" };
            let plan = queue
                .plan_issue(
                    IssueRequest {
                        turn_id: Uuid::now_v7(),
                        service: service.into(),
                        priority: service == "A" && rng.gen_bool(0.05),
                        card_token: token.clone(),
                        campaign_id: None,
                        locale: Locale::Es,
                    },
                    now,
                )
                .unwrap();
            commit(store, &mut queue, &mut week, &plan.change);
            week.tickets
                .entry((
                    plan.ticket.business_day.clone(),
                    plan.ticket.service.clone(),
                ))
                .or_default()
                .push(plan.ticket.number);
            keep(
                store,
                &mut week,
                Event::TicketPrinted(TicketPrinted {
                    turn_id: plan.ticket.turn_id,
                    bytes: 1800,
                    reprint: false,
                }),
            );
            if rng.gen_bool(0.3) {
                keep(
                    store,
                    &mut week,
                    Event::SurveyAnswered(SurveyAnswered {
                        turn_id: Some(plan.ticket.turn_id),
                        score: rng.gen_range(0..=10),
                        reason: None,
                        card_token: token,
                    }),
                );
            }
            if rng.gen_bool(0.05) {
                record(
                    store,
                    &mut week,
                    day,
                    Event::DeviceLog(DeviceLog {
                        level: LogLevel::Warn,
                        target: "kiosk_sync::worker".into(),
                        message: "endpoint unreachable (connect); the kiosk keeps events".into(),
                        occurrences: rng.gen_range(1..30),
                    }),
                );
            }
            // The counter serves the one it called and calls the next.
            if let Some(serving) = queue.serving_at("1").map(|t| t.id) {
                let change = queue.plan_served(serving, "1", now).unwrap();
                commit(store, &mut queue, &mut week, &change);
            }
            if let Some(change) = queue.plan_call_next("1", &[], now).unwrap() {
                commit(store, &mut queue, &mut week, &change);
            }
            week.journeys += 1;
            week.max_file_bytes = week.max_file_bytes.max(file_bytes(path));
        }
    }
    week
}

fn all_events(journal: &Journal) -> Vec<(u64, Uuid, String)> {
    journal
        .list(ListFilter {
            pending_only: false,
            limit: usize::MAX >> 1,
        })
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.id, e.type_name))
        .collect()
}

fn storage_statuses(journal: &Journal) -> Vec<DeviceHealth> {
    let mut seqs: Vec<u64> = all_events(journal)
        .into_iter()
        .filter(|(_, _, t)| t == "device_status_changed")
        .map(|(s, _, _)| s)
        .collect();
    seqs.sort_unstable();
    seqs.into_iter()
        .filter_map(|s| match journal.envelope(s).unwrap()?.event {
            Event::DeviceStatusChanged(d) if d.device == DeviceKind::Storage => Some(d.status),
            _ => None,
        })
        .collect()
}

/// (seq, id) of every event the endpoint stored for `kiosk_id`.
fn stored(db: &Path, kiosk_id: &str) -> Vec<(u64, Uuid)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut st = conn
        .prepare("SELECT seq, id FROM events WHERE kiosk_id = ?1")
        .unwrap();
    st.query_map([kiosk_id], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
    })
    .unwrap()
    .map(|r| {
        let (seq, id) = r.unwrap();
        (seq, id.parse().unwrap())
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_offline_stays_within_the_disk_budget_keeps_every_protected_event_and_drains_exactly_once()
 {
    let p = Params::from_env();
    println!(
        "offline week: {} days x {} journeys, budget {} MiB, synchronous {:?}, seed {}",
        p.days,
        p.journeys_per_day,
        p.budget / MIB,
        p.synchronous,
        p.seed
    );
    let dir = tempfile::tempdir().unwrap();
    let crm_db = dir.path().join("crm.db");
    kiosk_sync::install_crypto_provider();

    // Enrolled while the CRM was reachable; then the network goes for the week.
    let (crm, code) = Crm::start(&crm_db, "127.0.0.1:0".parse().unwrap()).await;
    let url = format!("http://{}", crm.addr);
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
    let crm_addr = crm.addr;
    crm.stop().await;

    let path = dir.path().join("journal.db");
    let start = OffsetDateTime::now_utc().replace_time(time::macros::time!(08:00))
        - time::Duration::days(i64::from(p.days));
    let clock = ManualClock::new(start);
    let journal = Journal::open(
        &path,
        Identity {
            kiosk_id: enrolled.kiosk_id.clone(),
            boot_id: Uuid::new_v4(),
        },
        Arc::new(clock.clone()),
        DeviceKey::generate(),
        &Options {
            synchronous: p.synchronous,
            disk_budget_bytes: Some(p.budget),
            ..Options::default()
        },
    )
    .unwrap()
    .journal;
    let appended = Arc::new(Notify::new());
    let store = KioskDb::new(journal, appended.clone(), None);

    // The real sync worker runs all week against the unreachable address.
    let mut config = SyncConfig::new(&url, &enrolled.kiosk_id, enrolled.device_secret.clone());
    config.backoff_base = Duration::from_millis(50);
    config.backoff_cap = Duration::from_millis(500);
    config.idle_poll = Duration::from_millis(200);
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(10);
    let shutdown = CancellationToken::new();
    let (worker, mut status) = SyncWorker::spawn(
        config,
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        Arc::new(SystemSyncClock::new(Uuid::now_v7())),
        shutdown.clone(),
        appended,
    )
    .unwrap();

    let week = {
        let (store, clock, path) = (store.clone(), clock.clone(), path.clone());
        tokio::task::spawn_blocking(move || simulate_week(&store, &clock, start, &path, &p))
            .await
            .unwrap()
    };
    let refused: u64 = week.refused.values().sum();
    let stats = store.journal().stats().unwrap();
    println!(
        "week: {} journeys, {} events appended, refused {:?} from day {:?}, {} protected, \
         files at most {} bytes; {stats:?}",
        week.journeys,
        week.appended,
        week.refused,
        week.first_refusal_day,
        week.protected.len(),
        week.max_file_bytes
    );
    assert_eq!(
        stats.pending, stats.events,
        "nothing was acknowledged all week"
    );
    assert!(
        refused > 0,
        "the week must reach the budget's soft limit to test it; raise KIOSK_WEEK_JOURNEYS_PER_DAY"
    );
    assert_eq!(
        stats.dropped_over_budget, refused,
        "every refusal is counted"
    );
    assert!(stats.dropping_low_value);
    assert!(
        week.max_file_bytes <= p.budget + SLACK,
        "journal files reached {} bytes with a budget of {}",
        week.max_file_bytes,
        p.budget
    );
    let mut per_day: BTreeMap<&str, u32> = BTreeMap::new();
    for ((day, service), numbers) in &week.tickets {
        let expected: Vec<u32> = (1..=numbers.len() as u32).collect();
        assert_eq!(numbers, &expected, "turn numbers of {service} on {day}");
        *per_day.entry(day).or_default() += numbers.len() as u32;
    }
    assert_eq!(per_day.len() as u32, p.days);
    assert!(
        per_day.values().all(|n| *n == p.journeys_per_day),
        "{per_day:?}"
    );
    let before = all_events(&store.journal());
    let journaled: HashSet<Uuid> = before.iter().map(|(_, id, _)| *id).collect();
    assert!(
        week.protected.iter().all(|id| journaled.contains(id)),
        "a registration or consent is missing from the journal"
    );
    assert_eq!(
        storage_statuses(&store.journal()),
        vec![DeviceHealth::Degraded],
        "one storage event when the refusals started"
    );
    let last_before = stats.last_seq;

    // The network returns: the backlog drains while the files are watched.
    let (crm, _) = Crm::start(&crm_db, crm_addr).await;
    let max_during_drain = Arc::new(AtomicU64::new(0));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (max, watching, path) = (max_during_drain.clone(), watching.clone(), path.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                max.fetch_max(file_bytes(&path), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let drained = tokio::time::timeout(
        Duration::from_secs(600),
        status.wait_for(|s| {
            s.backlog.as_ref().is_some_and(|b| b.events == 0) && s.events_acknowledged > 0
        }),
    )
    .await
    .expect("the backlog did not drain in 10 minutes")
    .unwrap()
    .clone();
    // The journal is the truth (the status's backlog figure is refreshed at most once a second;
    // the storage recovery event is journaled during the drain).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while store.journal().stats().unwrap().pending > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox did not empty"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();
    shutdown.cancel();
    worker.await.unwrap();
    crm.stop().await;
    let max_drain = max_during_drain.load(Ordering::Relaxed);
    assert!(
        max_drain <= p.budget + SLACK,
        "journal files reached {max_drain} bytes during the drain"
    );
    assert_eq!(drained.events_dead_lettered, 0);

    // Exactly once: every event journaled before the drain, and those journaled during it (the
    // storage recovery), each stored once under its own (kiosk, seq).
    let journal = store.journal();
    let stats = journal.stats().unwrap();
    assert!(!stats.dropping_low_value, "refusals stop after the drain");
    assert_eq!(
        storage_statuses(&journal),
        vec![DeviceHealth::Degraded, DeviceHealth::Ok]
    );
    let at_crm = stored(&crm_db, &enrolled.kiosk_id);
    let crm_ids: HashSet<Uuid> = at_crm.iter().map(|(_, id)| *id).collect();
    let crm_seqs: HashSet<u64> = at_crm.iter().map(|(s, _)| *s).collect();
    assert_eq!(crm_seqs.len(), at_crm.len(), "a seq stored twice");
    let missing: Vec<_> = before
        .iter()
        .filter(|(_, id, _)| !crm_ids.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} events never reached the CRM: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let expected: HashSet<u64> = before
        .iter()
        .map(|(s, _, _)| *s)
        .chain(last_before + 1..=stats.last_seq)
        .collect();
    assert_eq!(
        crm_seqs, expected,
        "the CRM holds exactly the journaled events"
    );
    assert!(week.protected.iter().all(|id| crm_ids.contains(id)));
    assert!(journal.integrity_check().unwrap().is_empty());
    println!(
        "FIGURE offline_week days={} journeys={} events_journaled={} low_value_refused={} \
         refused_by_type={:?} first_refusal_day={} protected_events={} budget_bytes={} \
         max_file_bytes_offline={} max_file_bytes_drain={} delivered_exactly_once={} \
         synchronous={:?} seed={}",
        p.days,
        week.journeys,
        before.len(),
        refused,
        week.refused,
        week.first_refusal_day.map_or(-1, i64::from),
        week.protected.len(),
        p.budget,
        week.max_file_bytes,
        max_drain,
        at_crm.len(),
        p.synchronous,
        p.seed
    );
}
