//! The store view over a year of a 1,000-kiosk fleet on PostgreSQL (issue 20): 500 stores with
//! two kiosks each, a year of turns and of the events the store view reads (tickets,
//! identifications, survey answers) for every kiosk, in monthly event partitions as the endpoint
//! keeps them. The data set is generated inside PostgreSQL with `generate_series` (no round trip
//! per row), then the measured store's days are rolled up by the endpoint's own storage job and
//! the other stores get roll-ups of the same size (copies of its rows): the table the store view
//! reads holds the whole fleet's year.
//!
//! Figures: one store's dashboard (what `/dashboard/api/stores/{store}` computes) over a year and
//! over 30 days, from the raw rows (the reference: before any roll-up) and with the daily
//! roll-ups (the figure; target: under 100 ms over a year).
//!
//! `BENCH_FLEET_STORES` (default 500), `BENCH_FLEET_TICKETS_PER_DAY` (per kiosk, default 60),
//! `BENCH_FLEET_DAYS` (default 365); `BENCH_QUICK=1` makes it 50 stores of 10 tickets a day.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark code: a failed unwrap is the failure message"
)]

use std::time::Instant;

use crm_endpoint::db::storage::Month;
use crm_endpoint::db::{DashboardQuery, SharedDb};
use crm_endpoint::testing::TempPostgres;
use time::OffsetDateTime;

const DAY_MS: i64 = 86_400_000;
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

async fn sql(client: &tokio_postgres::Client, what: &str, text: &str) {
    let t = Instant::now();
    client.batch_execute(text).await.unwrap();
    eprintln!("fleet_year: {what} in {:.1} s", t.elapsed().as_secs_f64());
}

/// Median and p99 of `SAMPLES` store views, ms.
async fn time_ms(db: &SharedDb, q: &DashboardQuery) -> (f64, f64) {
    std::hint::black_box(db.dashboard(q.clone()).await.unwrap());
    let mut v = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        std::hint::black_box(db.dashboard(q.clone()).await.unwrap());
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.99))
}

fn main() {
    let stores = env_or("BENCH_FLEET_STORES", if quick() { 50 } else { 500 }).max(2);
    let per_day = env_or("BENCH_FLEET_TICKETS_PER_DAY", if quick() { 10 } else { 60 }).max(1);
    let days = env_or("BENCH_FLEET_DAYS", 365).max(2) as i64;
    let now = crm_endpoint::ingest::unix_ms(OffsetDateTime::now_utc());
    let today = now - now.rem_euclid(DAY_MS);
    let first_day = today - days * DAY_MS;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pg = match TempPostgres::start() {
            Ok(pg) => pg,
            Err(e) => {
                eprintln!("fleet_year bench skipped: no PostgreSQL: {e}");
                return;
            }
        };
        let url = pg.fresh_database().await.unwrap();
        let db = crm_endpoint::db::open(&url).await.unwrap();
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        // The partitions of the year (the endpoint makes them month by month as it goes).
        let mut month = Month::of_ms(first_day);
        let mut parts = String::new();
        while month < Month::of_ms(now) {
            parts.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ({}) TO ({});",
                month.partition(),
                month.start_ms(),
                month.next().start_ms()
            ));
            month = month.next();
        }
        sql(&client, "partitions", &parts).await;
        sql(
            &client,
            "stores and kiosks",
            &format!(
                "INSERT INTO stores (id, name) SELECT format('store-%s', lpad(s::text, 4, '0')),
                   format('Tienda %s', s) FROM generate_series(0, {last}) s;
                 INSERT INTO kiosks (id, store_id, secret, hardware_profile, firmware_version,
                   enrolled_ms, last_seen_ms, backlog)
                 SELECT format('k-%s-%s', lpad(s::text, 4, '0'), k),
                   format('store-%s', lpad(s::text, 4, '0')),
                   'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'simulated', '0.1.0',
                   {first_day}, {now}, 0
                 FROM generate_series(0, {last}) s, generate_series(1, 2) k;",
                last = stores - 1
            ),
        )
        .await;
        // One ticket every 12 h / per_day from 09:00 UTC; every third identified; called
        // 1 to 15 minutes later, served in 2 to 8; every fourth answers the survey.
        let spacing = 12 * 3_600_000 / per_day as i64;
        let visits = format!(
            "SELECT format('store-%s', lpad(s::text, 4, '0')) AS store,
               format('k-%s-%s', lpad(s::text, 4, '0'), k) AS kiosk,
               (ARRAY['A', 'B', 'C'])[1 + (t % 3)] AS service, t % 3 = 0 AS identified,
               t % 4 = 0 AS answered, (s + d + t) % 11 AS score,
               {first_day}::bigint + d * {DAY_MS}::bigint + 32400000 + t * {spacing}::bigint AS issued,
               60000 * (1 + (s * 7 + d * 3 + t) % 15) AS wait,
               60000 * (2 + (s + d * 5 + t) % 7) AS serve,
               d * 1000 + t AS n
             FROM generate_series(0, {last}) s, generate_series(1, 2) k,
               generate_series(0, {days_last}) d, generate_series(0, {per_last}) t",
            last = stores - 1,
            days_last = days - 1,
            per_last = per_day - 1
        );
        sql(
            &client,
            "turns",
            &format!(
                "INSERT INTO turns (turn_id, store_id, kiosk_id, service, identified, issued_ms,
                   called_ms, served_ms)
                 SELECT format('%s-%s', v.kiosk, v.n), v.store, v.kiosk, v.service, v.identified,
                   v.issued, v.issued + v.wait, v.issued + v.wait + v.serve FROM ({visits}) v"
            ),
        )
        .await;
        sql(
            &client,
            "events (tickets, identifications, survey answers)",
            &format!(
                "INSERT INTO events (id, kiosk_id, store_id, seq, type, schema_version, device_ms,
                   corrected_ms, received_ms, card_token, envelope)
                 SELECT gen_random_uuid()::text, v.kiosk, v.store, v.n * 3 + x.i, x.type, 1, x.at,
                   x.at, x.at + 2000, NULL, x.envelope
                 FROM ({visits}) v CROSS JOIN LATERAL (VALUES
                   (0, 'ticket_issued', v.issued, json_build_object('type', 'ticket_issued',
                      'payload', json_build_object('turn', v.service || '-' || v.n,
                        'service', v.service))::text, TRUE),
                   (1, 'customer_identified', v.issued, json_build_object('type',
                      'customer_identified', 'payload', json_build_object('by',
                        CASE WHEN v.n % 2 = 0 THEN 'card' ELSE 'app_qr' END))::text, v.identified),
                   (2, 'survey_answered', v.issued + v.wait + v.serve, json_build_object('type',
                      'survey_answered', 'payload', json_build_object('score', v.score))::text,
                      v.answered)) AS x(i, type, at, envelope, keep)
                 WHERE x.keep;
                 INSERT INTO event_ids (id, received_ms) SELECT id, received_ms FROM events;
                 ANALYZE;"
            ),
        )
        .await;
        let events: i64 = client
            .query_one("SELECT COUNT(*) FROM events", &[])
            .await
            .unwrap()
            .get(0);
        let turns: i64 = client
            .query_one("SELECT COUNT(*) FROM turns", &[])
            .await
            .unwrap()
            .get(0);
        eprintln!("fleet_year: {turns} turns, {events} events");
        let label = format!(
            "{stores} stores x 2 kiosks x {days} days x {per_day} tickets/kiosk/day, {turns} turns, {events} events, postgres"
        );

        let year = DashboardQuery::new("store-0000", now - 365 * DAY_MS, now);
        let month = DashboardQuery::new("store-0000", now - 30 * DAY_MS, now);
        let raw_year = time_ms(&db, &year).await;
        let raw_month = time_ms(&db, &month).await;
        let raw_figures = db.dashboard(year.clone()).await.unwrap();

        // The measured store rolled up by the storage job's own code, the others given roll-ups
        // of the same size.
        let t = Instant::now();
        let mut rolled = 0;
        loop {
            let n = db.roll_up_store("store-0000".into(), now).await.unwrap();
            rolled += n;
            if n == 0 {
                break;
            }
        }
        eprintln!(
            "fleet_year: {rolled} days of store-0000 rolled up in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        sql(
            &client,
            "the other stores' roll-ups",
            &format!(
                "INSERT INTO daily_figures (store_id, kiosk_id, day_ms, figures)
                 SELECT format('store-%s', lpad(s::text, 4, '0')),
                   format('k-%s-%s', lpad(s::text, 4, '0'), right(f.kiosk_id, 1)), f.day_ms,
                   f.figures
                 FROM daily_figures f, generate_series(1, {last}) s WHERE f.store_id = 'store-0000';
                 INSERT INTO rollup_marks (store_id, timezone, rolled_until_ms)
                 SELECT id, NULL, (SELECT rolled_until_ms FROM rollup_marks
                   WHERE store_id = 'store-0000') FROM stores WHERE id <> 'store-0000';
                 ANALYZE daily_figures;",
                last = stores - 1
            ),
        )
        .await;
        let rollups: i64 = client
            .query_one("SELECT COUNT(*) FROM daily_figures", &[])
            .await
            .unwrap()
            .get(0);
        let rolled_figures = db.dashboard(year.clone()).await.unwrap();
        assert_eq!(rolled_figures, raw_figures, "the roll-ups answer what the raw rows do");
        let fast_year = time_ms(&db, &year).await;
        let fast_month = time_ms(&db, &month).await;
        for (window, (median, p99), (ref_median, _), target) in [
            ("a year", fast_year, raw_year, Some(100.0)),
            ("30 days", fast_month, raw_month, None),
        ] {
            let mut line = serde_json::json!({
                "figure": format!("store view over {window} with daily roll-ups ({rollups} rows), {label}"),
                "unit": "ms",
                "median": (median * 100.0).round() / 100.0,
                "p99": (p99 * 100.0).round() / 100.0,
                "reference": "the same store view from the raw rows (no roll-ups yet)",
                "ref_median": (ref_median * 100.0).round() / 100.0,
                "ratio": ((median / ref_median) * 1000.0).round() / 1000.0,
            });
            if let Some(target) = target {
                line["target"] = serde_json::json!(format!("< {target} ms"));
                line["met"] = serde_json::json!(p99 < target);
            }
            println!("BENCH {line}");
        }
        drop(pg);
    });
}
