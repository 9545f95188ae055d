//! The dashboard's daily roll-ups (issue 20) on SQLite and PostgreSQL: a kiosk's turns,
//! identifications and survey answers over the last two weeks, sent in real batches; the 30-day
//! store view is the same before and after the storage job rolls the days up; a late event about
//! a rolled day is counted after the next job; and the view stays the same once the raw rows of
//! the rolled days are gone (so the roll-ups really answer).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{Backend, Harness, Kiosk};
use crm_endpoint::db::DashboardQuery;
use kiosk_protocol::events::{Envelope, Event};
use kiosk_protocol::wire::{BatchRequest, KioskClock, batches_path};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;
/// The boot's monotonic clock when the batches are sent: older than every event.
const MONO_NOW: u64 = 40 * 86_400_000;

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// Sends `events`, each `age_ms` old, in one batch of `kiosk`'s current boot.
async fn post(h: &Harness, kiosk: &Kiosk, events: Vec<(i64, Value)>) {
    let now = OffsetDateTime::now_utc();
    let envs: Vec<Envelope> = events
        .into_iter()
        .map(|(age, e)| {
            let mut env = h.envelope(kiosk, seq(), serde_json::from_value::<Event>(e).unwrap());
            env.wall_time = now - time::Duration::milliseconds(age);
            env.mono_ms = MONO_NOW - u64::try_from(age).unwrap();
            env
        })
        .collect();
    let clock = KioskClock {
        wall_time: now,
        mono_ms: MONO_NOW,
        boot_id: kiosk.boot_id,
    };
    let body = serde_json::to_vec(&BatchRequest::new(&kiosk.id, clock, envs).unwrap()).unwrap();
    let resp = h
        .signed(kiosk, reqwest::Method::POST, &batches_path(&kiosk.id), body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    for r in answer["results"].as_array().unwrap() {
        assert_eq!(r["status"], "accepted", "{answer}");
    }
}

fn seq() -> u64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A visit `age_ms` ago: ticket, identification, call after `wait` minutes, service of 4
/// minutes, a survey answer.
fn visit(age: i64, service: &str, wait: i64, score: u8, n: u32) -> Vec<(i64, Value)> {
    let turn = Uuid::now_v7();
    let label = format!("{service}-{n:03}");
    let day = (OffsetDateTime::now_utc() - time::Duration::milliseconds(age))
        .date()
        .to_string();
    vec![
        (
            age,
            json!({ "type": "customer_identified", "payload": {
            "card_token": null, "by": if n % 2 == 0 { "card" } else { "app_qr" },
            "source": "crm", "segment": null } }),
        ),
        (
            age,
            json!({ "type": "ticket_issued", "payload": {
            "turn_id": turn, "turn": label, "service": service, "number": n, "business_day": day,
            "priority": false, "position": 0, "estimated_wait_s": 0, "card_token": null,
            "locale": "es", "campaign_id": null, "out_of_sequence": false } }),
        ),
        (
            age - wait * MIN,
            json!({ "type": "turn_called", "payload": {
            "turn_id": turn, "turn": label, "counter": "1", "recall": false, "waited_s": 0 } }),
        ),
        (
            age - (wait + 4) * MIN,
            json!({ "type": "turn_served", "payload": {
            "turn_id": turn, "counter": "1", "service_s": 240 } }),
        ),
        (
            age - (wait + 5) * MIN,
            json!({ "type": "survey_answered", "payload": {
            "turn_id": turn, "score": score, "reason": null, "card_token": null } }),
        ),
    ]
}

async fn a_month_of_figures_reads_the_same_from_daily_roll_ups(backend: Backend) {
    let h = Harness::start(backend).await;
    let k = h.kiosk.clone();
    let mut n = 0;
    let mut events = Vec::new();
    for (days, count) in [(13, 3), (9, 2), (5, 4), (2, 1), (0, 2)] {
        for i in 0..count {
            n += 1;
            let service = if i % 2 == 0 { "A" } else { "B" };
            events.extend(visit(
                days * DAY + 3 * 3_600_000,
                service,
                2 + i,
                6 + (n % 5) as u8,
                n,
            ));
        }
    }
    post(&h, &k, events).await;
    let now = now_ms();
    let query = DashboardQuery::new("north", now - 30 * DAY, now);
    let raw = h.db.dashboard(query.clone()).await.unwrap();
    assert_eq!(raw.tickets.total, 12);
    assert_eq!(raw.nps.responses, 12);

    let report = h.db.maintain_storage(now).await.unwrap();
    assert!(report.days_rolled_up >= 11, "{report:?}");
    assert_eq!(h.db.dashboard(query.clone()).await.unwrap(), raw);
    // A kiosk back from a week offline sends a visit of nine days ago: counted after the next
    // job, not before.
    post(&h, &k, visit(9 * DAY + 4 * 3_600_000, "A", 3, 10, 99)).await;
    let stale = h.db.dashboard(query.clone()).await.unwrap();
    assert_eq!(stale.tickets.total, 12, "the rolled day is not read raw");
    h.db.maintain_storage(now_ms()).await.unwrap();
    let fresh = h.db.dashboard(query.clone()).await.unwrap();
    assert_eq!(fresh.tickets.total, 13);
    assert_eq!(fresh.nps.responses, 13);
    // The raw rows of the rolled days gone: the roll-ups answer alone.
    let cut = now - 2 * DAY;
    let sql = format!(
        "DELETE FROM turns WHERE issued_ms < {cut};
         DELETE FROM events WHERE corrected_ms < {cut} AND type <> 'ticket_issued';"
    );
    common_raw(&h, &sql).await;
    assert_eq!(h.db.dashboard(query.clone()).await.unwrap(), fresh);

    h.stop().await;
}

/// Runs SQL on the harness's database, outside the endpoint.
async fn common_raw(h: &Harness, sql: &str) {
    match h.data_dir() {
        Some(dir) => {
            let path = dir.join("crm.db");
            let sql = sql.to_owned();
            tokio::task::spawn_blocking(move || {
                let c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                c.execute_batch(&sql).unwrap();
            })
            .await
            .unwrap();
        }
        None => {
            let url = h.url.clone();
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
            drop(client);
            let _ = task.await;
        }
    }
}

/// The regions map (issue 21) reads a store's period from the same rows as its dashboard,
/// roll-ups included, and keeps the place the operator set (both databases: REAL and DOUBLE
/// PRECISION columns, NULL to clear).
async fn the_map_reads_the_dashboards_rows_and_keeps_a_stores_place(backend: Backend) {
    use crm_endpoint::db::places::PlaceUpdate;
    let h = Harness::start(backend).await;
    let k = h.kiosk.clone();
    let mut events = Vec::new();
    // Waits of 2, 3, 4, 5 and 6 minutes over two weeks; scores 10, 9, 8, 3, 10.
    for (n, (days, score)) in [(12, 10), (8, 9), (4, 8), (1, 3), (0, 10)]
        .into_iter()
        .enumerate()
    {
        let n = u32::try_from(n).unwrap() + 1;
        events.extend(visit(
            days * DAY + 3 * 3_600_000,
            "A",
            i64::from(n) + 1,
            score,
            n,
        ));
    }
    post(&h, &k, events).await;
    // Two storage jobs at once (two replicas, or `serve`'s own beside `crm-endpoint
    // retention`): both roll the same days; neither fails on the roll-ups' key.
    let at = now_ms();
    let (a, b) = tokio::join!(h.db.maintain_storage(at), h.db.maintain_storage(at));
    a.unwrap();
    b.unwrap();
    let place = PlaceUpdate {
        name: None,
        region: Some("ES-AN".into()),
        latitude: Some(37.3826),
        longitude: Some(-6.0026),
    };
    h.db.set_store_place("north".into(), place.clone())
        .await
        .unwrap();
    let missing = h.db.set_store_place("nowhere".into(), place).await;
    assert!(
        matches!(missing, Err(crm_endpoint::db::DbError::NotFound(_))),
        "{missing:?}"
    );

    let now = now_ms();
    let periods = h.db.store_periods(30, now).await.unwrap();
    let view = crm_endpoint::map::map_view(30, now, periods);
    let north = view.stores.iter().find(|s| s.place.id == "north").unwrap();
    assert_eq!(north.place.region.as_deref(), Some("ES-AN"));
    assert_eq!(north.place.latitude, Some(37.3826));
    assert_eq!(north.place.longitude, Some(-6.0026));
    let f = &north.figures;
    assert_eq!((f.tickets, f.called), (5, 5));
    assert_eq!(f.wait_median_min, Some(4.0));
    // 3 promoters, 1 passive, 1 detractor of 5: 40.
    assert_eq!((f.answers, f.nps), (5, Some(40.0)));
    let region = view.regions.iter().find(|r| r.region == "ES-AN").unwrap();
    assert_eq!(&region.figures, f, "one store: the region is that store");
    // The same counts as the store's 30-day dashboard.
    let dash =
        h.db.dashboard(DashboardQuery::new("north", now - 30 * DAY, now))
            .await
            .unwrap();
    assert_eq!(dash.tickets.total, f.tickets);
    assert_eq!(dash.nps.responses, f.answers);
    // Today only: the visit of this morning.
    let today = crm_endpoint::map::map_view(1, now, h.db.store_periods(1, now).await.unwrap());
    let north_today = today.stores.iter().find(|s| s.place.id == "north").unwrap();
    assert!(north_today.figures.tickets <= 1, "{today:?}");

    h.db.set_store_place(
        "north".into(),
        PlaceUpdate {
            name: None,
            region: None,
            latitude: None,
            longitude: None,
        },
    )
    .await
    .unwrap();
    let cleared = h.db.store_places().await.unwrap();
    let north = cleared.iter().find(|s| s.id == "north").unwrap();
    assert_eq!(
        (north.region.clone(), north.latitude, north.longitude),
        (None, None, None)
    );
    h.stop().await;
}

on_both_databases!(a_month_of_figures_reads_the_same_from_daily_roll_ups);
on_both_databases!(the_map_reads_the_dashboards_rows_and_keeps_a_stores_place);
