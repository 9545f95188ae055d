//! Dashboard query latency over a year of generated data for a fleet of stores.
//!
//! Each store gets two kiosks and a year of days ending now; each day a number of tickets spread
//! over opening hours (09:00 to 21:00 UTC), most of them called and served a few minutes later, some
//! for identified customers, some with a campaign shown and a survey answered: the events the
//! dashboard reads, stored through the store's real `ingest` (effects and dashboard facts
//! included), in batches of 2,000.
//!
//! Figures: the dashboard of one store (what `/dashboard/api/stores/{store}` and each live push
//! compute) over today, the last 7 days, 30 days and a year, and the list of stores; measured when
//! only that store's year is loaded (the reference) and again once the whole fleet's is (the
//! figure). A ratio near 1 says the query's cost follows the store's own data, not the fleet's.
//!
//! `BENCH_DASHBOARD_STORES` (default 100), `BENCH_DASHBOARD_TICKETS_PER_DAY` (default 80) and
//! `BENCH_DASHBOARD_DAYS` (default 365) scale the data; `BENCH_QUICK=1` makes it 10 stores of 20
//! tickets a day. `BENCH_DASHBOARD_BACKENDS` (default `sqlite,postgres`) picks the stores.
//! PostgreSQL loads 20 tickets a day by default (`BENCH_DASHBOARD_PG_TICKETS_PER_DAY`): its
//! ingest goes one statement round trip at a time, and 10 million events would take most of an
//! hour to load on the 2-core reference machine.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::{Duration, Instant};

use crm_endpoint::db::{DashboardQuery, IngestBatch, IngestEvent, NewKiosk, SharedDb, StoreRecord};
use crm_endpoint::ingest::{effect_of, ops_of, queue_step_of};
use crm_endpoint::testing::TempPostgres;
use kiosk_protocol::CardToken;
use kiosk_protocol::events::{
    CampaignShown, CustomerIdentified, Envelope, Event, IdentifiedBy, ProfileSource, Surface,
    SurveyAnswered, TicketIssued, TurnCalled, TurnServed,
};
use kiosk_protocol::wire::{Key32, TenantKey};
use time::OffsetDateTime;
use uuid::Uuid;

const DAY_MS: i64 = 86_400_000;
const BATCH: usize = 2_000;
const SAMPLES: usize = 30;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// A small deterministic generator (xorshift64*), so every run loads the same fleet.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy)]
struct Fleet {
    stores: u64,
    tickets_per_day: u64,
    days: i64,
    now_ms: i64,
}

fn store_id(i: u64) -> String {
    format!("store-{i:03}")
}

fn kiosk_id(store: u64, k: u64) -> String {
    format!("kiosk-{store:03}-{k}")
}

fn token(store: u64, n: u64) -> CardToken {
    let mut uid = [0u8; 7];
    uid[..2].copy_from_slice(&(store as u16).to_be_bytes());
    uid[2..6].copy_from_slice(&(n as u32).to_be_bytes());
    TenantKey::from_bytes([5; 32]).card_token(&uid)
}

/// One kiosk's pending batch: events appended in sequence, flushed every [`BATCH`].
struct KioskLog {
    kiosk_id: String,
    store_id: String,
    boot: Uuid,
    seq: u64,
    events: Vec<IngestEvent>,
}

impl KioskLog {
    fn push(&mut self, at_ms: i64, event: Event) {
        self.seq += 1;
        let wall = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
            .expect("time in range");
        let env = Envelope {
            id: Uuid::now_v7(),
            kiosk_id: self.kiosk_id.clone(),
            seq: self.seq,
            boot_id: self.boot,
            wall_time: wall,
            mono_ms: self.seq,
            schema_version: 1,
            event,
        };
        self.events.push(IngestEvent {
            id: env.id,
            seq: env.seq,
            kind: env.event.type_name(),
            schema_version: env.schema_version,
            device_ms: at_ms,
            corrected_ms: at_ms,
            card_token: env.event.card_token().cloned(),
            envelope: serde_json::to_string(&env).expect("envelope encodes"),
            effect: effect_of(&env.event),
            ops: ops_of(&env.event),
            queue: queue_step_of(&env.event),
        });
    }

    async fn flush(&mut self, db: &SharedDb, now_ms: i64) -> u64 {
        if self.events.is_empty() {
            return 0;
        }
        // Events of one batch in time order, as a kiosk sends them.
        self.events.sort_by_key(|e| e.seq);
        let events = std::mem::take(&mut self.events);
        let n = events.len() as u64;
        db.ingest(IngestBatch {
            kiosk_id: self.kiosk_id.clone(),
            store_id: self.store_id.clone(),
            received_ms: now_ms,
            skew: None,
            skew_samples: None,
            backlog: Some(0),
            backlog_age_ms: None,
            events,
            replay: None,
        })
        .await
        .expect("ingest");
        n
    }
}

/// Enrolls the store's two kiosks and ingests its year; returns the events stored.
async fn load_store(db: &SharedDb, fleet: &Fleet, i: u64) -> u64 {
    let sid = store_id(i);
    db.upsert_store(StoreRecord {
        id: sid.clone(),
        name: format!("Tienda {i}"),
    })
    .await
    .unwrap();
    let mut logs = Vec::new();
    for k in 0..2 {
        let (code, _) = crm_endpoint::api::issue_enroll_code(db, &sid, Duration::from_secs(60))
            .await
            .unwrap();
        let id = kiosk_id(i, k);
        let enrolled = db
            .redeem_enroll_code(
                crm_endpoint::api::hash_enroll_code(&code),
                fleet.now_ms,
                NewKiosk {
                    id: id.clone(),
                    secret: Key32::from_bytes([(i % 251) as u8; 32]),
                    hardware_profile: "simulated".into(),
                    firmware_version: "bench".into(),
                },
            )
            .await
            .unwrap();
        assert!(enrolled.is_some(), "enrolling {id}");
        logs.push(KioskLog {
            kiosk_id: id,
            store_id: sid.clone(),
            boot: Uuid::now_v7(),
            seq: 0,
            events: Vec::new(),
        });
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i + 1));
    let mut stored = 0;
    let first_day = fleet.now_ms - fleet.now_ms % DAY_MS - (fleet.days - 1) * DAY_MS;
    for d in 0..fleet.days {
        let open = first_day + d * DAY_MS + 9 * 3_600_000;
        let mut times: Vec<i64> = (0..fleet.tickets_per_day)
            .map(|_| open + rng.below(12 * 3_600_000) as i64)
            .filter(|&t| t < fleet.now_ms)
            .collect();
        times.sort_unstable();
        for (n, at) in times.into_iter().enumerate() {
            let log = &mut logs[n % 2];
            let service = ["A", "B", "C"][rng.below(3) as usize];
            let turn_id = Uuid::now_v7();
            let card = rng
                .chance(35)
                .then(|| token(i, rng.below(fleet.tickets_per_day * 40)));
            if let Some(c) = &card {
                log.push(
                    at - 20_000,
                    Event::CustomerIdentified(CustomerIdentified {
                        card_token: Some(c.clone()),
                        by: IdentifiedBy::Card,
                        source: ProfileSource::LocalCache,
                        segment: Some("regular".into()),
                    }),
                );
                if rng.chance(60) {
                    log.push(
                        at - 15_000,
                        Event::CampaignShown(CampaignShown {
                            campaign_id: "autumn".into(),
                            variant: ["a", "b"][rng.below(2) as usize].into(),
                            card_token: Some(c.clone()),
                            segment: Some("regular".into()),
                            surface: Surface::Screen,
                            visit_id: None,
                        }),
                    );
                }
            }
            log.push(
                at,
                Event::TicketIssued(TicketIssued {
                    turn_id,
                    turn: format!("{service}-{:03}", n + 1),
                    service: service.into(),
                    number: n as u32 + 1,
                    business_day: "2026-01-01".into(),
                    priority: false,
                    position: rng.below(6) as u32,
                    estimated_wait_s: 300,
                    card_token: card.clone(),
                    locale: "es".into(),
                    campaign_id: None,
                    out_of_sequence: false,
                }),
            );
            if rng.chance(92) {
                let waited = 60_000 + rng.below(900_000) as i64;
                let served = 120_000 + rng.below(600_000) as i64;
                log.push(
                    at + waited,
                    Event::TurnCalled(TurnCalled {
                        staff: None,
                        turn_id,
                        turn: format!("{service}-{:03}", n + 1),
                        counter: "1".into(),
                        recall: false,
                        waited_s: (waited / 1000) as u32,
                    }),
                );
                log.push(
                    at + waited + served,
                    Event::TurnServed(TurnServed {
                        staff: None,
                        turn_id,
                        counter: "1".into(),
                        service_s: (served / 1000) as u32,
                    }),
                );
                if rng.chance(15) {
                    log.push(
                        at + waited + served + 30_000,
                        Event::SurveyAnswered(SurveyAnswered {
                            turn_id: Some(turn_id),
                            score: (4 + rng.below(7)) as u8,
                            reason: None,
                            card_token: card,
                        }),
                    );
                }
            }
            if log.events.len() >= BATCH {
                stored += log.flush(db, fleet.now_ms).await;
            }
        }
    }
    for log in &mut logs {
        stored += log.flush(db, fleet.now_ms).await;
    }
    stored
}

/// Median and p99 of `SAMPLES` runs of `f`, in milliseconds.
async fn time_ms<F, Fut>(mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f().await; // warm the caches and prepared statements
    let mut v: Vec<f64> = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        f().await;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.99))
}

const WINDOWS: [(&str, i64); 4] = [
    ("today", 0),
    ("7 days", 7),
    ("30 days", 30),
    ("a year", 365),
];

/// The figures of one moment: per window, then the store list.
async fn measure(db: &SharedDb, fleet: &Fleet) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (_, days) in WINDOWS {
        let since = if days == 0 {
            fleet.now_ms - fleet.now_ms % DAY_MS
        } else {
            fleet.now_ms - days * DAY_MS
        };
        let q = DashboardQuery::new(store_id(0), since, fleet.now_ms);
        let q = &q;
        out.push(
            time_ms(|| {
                let q = q.clone();
                async {
                    let d = db.dashboard(q).await.expect("dashboard");
                    std::hint::black_box(d);
                }
            })
            .await,
        );
    }
    out.push(
        time_ms(|| async {
            std::hint::black_box(db.list_stores().await.expect("stores"));
        })
        .await,
    );
    out
}

/// One report figure as a `BENCH` line.
fn report_line(what: String, (median, p99): (f64, f64), reference: Option<(&str, f64)>) {
    let line = serde_json::json!({
        "figure": what,
        "unit": "ms",
        "median": (median * 100.0).round() / 100.0,
        "p99": (p99 * 100.0).round() / 100.0,
        "reference": reference.map(|r| r.0),
        "ref_median": reference.map(|r| (r.1 * 100.0).round() / 100.0),
        "ratio": reference.map(|r| (median / r.1 * 1000.0).round() / 1000.0),
    });
    println!("BENCH {line}");
}

/// The managers' reports (issue 21) over the loaded year: one store per month from the raw rows,
/// then from the daily roll-ups (every store's days rolled up by the storage job's own code);
/// every store per month and region from the roll-ups; one store per counter (raw turns).
async fn reports(backend: &str, db: &SharedDb, fleet: &Fleet, label: &str) {
    use crm_endpoint::db::report::{Grouping, Period, ReportQuery};
    let to = jiff::Timestamp::from_millisecond(fleet.now_ms)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let from = to.checked_sub(jiff::Span::new().days(364)).unwrap();
    let query = |stores: Vec<String>, grouping: Grouping| ReportQuery {
        from,
        to,
        period: Period::Month,
        grouping,
        stores,
        now_ms: fleet.now_ms,
    };
    let time = |q: ReportQuery| async move {
        let q = &q;
        time_ms(|| async {
            std::hint::black_box(db.report(q.clone()).await.expect("report"));
        })
        .await
    };
    let one = query(vec![store_id(0)], Grouping::Store);
    let raw = time(one.clone()).await;
    let t = Instant::now();
    let mut days = 0;
    for i in 0..fleet.stores {
        while let Ok(n @ 1..) = db.roll_up_store(store_id(i), fleet.now_ms).await {
            days += n;
        }
    }
    eprintln!(
        "dashboard bench ({backend}): {days} store-days rolled up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let rolled = time(one).await;
    report_line(
        format!(
            "report of one store over a year per month, from daily roll-ups, {label}, {backend}"
        ),
        rolled,
        Some(("the same report from the raw rows", raw.0)),
    );
    let all = query((0..fleet.stores).map(store_id).collect(), Grouping::Region);
    report_line(
        format!(
            "report of every store over a year per month and region, from daily roll-ups, {label}, {backend}"
        ),
        time(all).await,
        None,
    );
    report_line(
        format!(
            "report of one store over a year per month and counter (raw turns), {label}, {backend}"
        ),
        time(query(vec![store_id(0)], Grouping::Counter)).await,
        None,
    );
}

async fn bench(backend: &str, db: SharedDb, fleet: &Fleet) {
    let t = Instant::now();
    let first = load_store(&db, fleet, 0).await;
    eprintln!(
        "dashboard bench ({backend}): store 0, {first} events in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let alone = measure(&db, fleet).await;
    let t = Instant::now();
    let mut total = first;
    for i in 1..fleet.stores {
        total += load_store(&db, fleet, i).await;
        if i % 10 == 0 {
            eprintln!(
                "dashboard bench ({backend}): {i} stores, {total} events, {:.0} events/s",
                (total - first) as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    let load_s = t.elapsed().as_secs_f64();
    let fleet_figures = measure(&db, fleet).await;
    let label = format!(
        "{} stores x {} days x {} tickets/day, {} events",
        fleet.stores, fleet.days, fleet.tickets_per_day, total
    );
    for (k, ((median, p99), (ref_median, _))) in fleet_figures.iter().zip(&alone).enumerate() {
        let (what, reference) = match WINDOWS.get(k) {
            Some((window, _)) => (
                format!("dashboard of one store over {window}, {label}, {backend}"),
                "the same query with only that store's year loaded",
            ),
            None => (
                format!("list of stores, {label}, {backend}"),
                "the same query with one store loaded",
            ),
        };
        let ratio = median / ref_median;
        let line = serde_json::json!({
            "figure": what,
            "unit": "ms",
            "median": (median * 100.0).round() / 100.0,
            "p99": (p99 * 100.0).round() / 100.0,
            "reference": reference,
            "ref_median": (ref_median * 100.0).round() / 100.0,
            "ratio": (ratio * 1000.0).round() / 1000.0,
        });
        println!("BENCH {line}");
    }
    reports(backend, &db, fleet, &label).await;
    println!(
        "BENCH {}",
        serde_json::json!({
            "figure": format!("generating the fleet's year through ingest, {backend}"),
            "unit": "events/s",
            "median": ((total - first) as f64 / load_s).round(),
            "p99": null,
            "reference": null,
            "ref_median": null,
            "ratio": null,
        })
    );
}

fn main() {
    let fleet = Fleet {
        stores: env_or("BENCH_DASHBOARD_STORES", if quick() { 10 } else { 100 }).max(2),
        tickets_per_day: env_or(
            "BENCH_DASHBOARD_TICKETS_PER_DAY",
            if quick() { 20 } else { 80 },
        ),
        days: env_or("BENCH_DASHBOARD_DAYS", 365).max(1) as i64,
        now_ms: crm_endpoint::ingest::unix_ms(OffsetDateTime::now_utc()),
    };
    let backends =
        std::env::var("BENCH_DASHBOARD_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for backend in backends.split(',').map(str::trim) {
            match backend {
                "sqlite" => {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("crm.db").display());
                    let db = crm_endpoint::db::open(&url).await.unwrap();
                    bench("sqlite", db, &fleet).await;
                }
                "postgres" => match TempPostgres::start() {
                    Ok(pg) => {
                        let fleet = Fleet {
                            tickets_per_day: env_or(
                                "BENCH_DASHBOARD_PG_TICKETS_PER_DAY",
                                fleet.tickets_per_day.min(20),
                            ),
                            ..fleet
                        };
                        let url = pg.fresh_database().await.unwrap();
                        let db = crm_endpoint::db::open(&url).await.unwrap();
                        bench("postgres", db, &fleet).await;
                        drop(pg);
                    }
                    Err(e) => eprintln!("PostgreSQL dashboard bench skipped: {e}"),
                },
                other => eprintln!("unknown backend {other:?} in BENCH_DASHBOARD_BACKENDS"),
            }
        }
    });
}
