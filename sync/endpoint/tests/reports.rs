//! The managers' reports (issue 21 item 4) against a known truth, on SQLite and PostgreSQL: two
//! stores in two regions and time zones, their kiosks' turns, calls, services, no-shows,
//! walkouts, survey answers and campaign exposures of two closed days sent in real signed
//! batches; the medians, 90th percentiles, NPS, no-shows and walkouts computed by hand (in the
//! comments) are exactly what the report page shows and what its CSV holds, grouped per store,
//! service, counter and region; the same after the storage job rolled the days up (the roll-ups
//! answer alone once the raw rows are gone); bad forms get a clear 400.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{ADMIN, Backend, Harness, Kiosk};
use crm_endpoint::db::StoreRecord;
use kiosk_protocol::events::{Envelope, Event};
use kiosk_protocol::wire::{BatchRequest, KioskClock, batches_path};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
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

fn seq() -> u64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Sends `events` (each at its unix ms) in one batch of `kiosk`'s current boot.
async fn post(h: &Harness, kiosk: &Kiosk, events: Vec<(i64, Value)>) {
    let now = OffsetDateTime::now_utc();
    let now_ms = now_ms();
    let envs: Vec<Envelope> = events
        .into_iter()
        .map(|(at, e)| {
            let age = now_ms - at;
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

/// One turn issued at `at` for `service`: called at `counter` after `wait` minutes (if any),
/// then served after `service_min` minutes (if any) or marked a no-show; a walkout when never
/// called and `marked`; a survey `score` after it.
struct Turn {
    at: i64,
    service: &'static str,
    call: Option<(&'static str, i64)>,
    served: Option<i64>,
    score: Option<u8>,
}

fn turn_events(t: &Turn, n: u32) -> Vec<(i64, Value)> {
    let id = Uuid::now_v7();
    let label = format!("{}-{n:03}", t.service);
    let day = OffsetDateTime::from_unix_timestamp(t.at / 1000)
        .unwrap()
        .date()
        .to_string();
    let mut out = vec![(
        t.at,
        json!({ "type": "ticket_issued", "payload": {
            "turn_id": id, "turn": label, "service": t.service, "number": n, "business_day": day,
            "priority": false, "position": 0, "estimated_wait_s": 0, "card_token": null,
            "locale": "es", "campaign_id": null, "out_of_sequence": false } }),
    )];
    let mut end = t.at;
    match t.call {
        Some((counter, wait)) => {
            let called = t.at + wait * MIN;
            // Counter 1 is staffed by Ana, who logged in with her own PIN; counter 2 by
            // whoever has the store-wide PIN (no `staff`).
            let staff = (counter == "1").then_some("ana");
            let with_staff = |mut payload: Value| {
                if let Some(id) = staff {
                    payload["staff"] = json!(id);
                }
                payload
            };
            out.push((
                called,
                json!({ "type": "turn_called", "payload": with_staff(json!({
                    "turn_id": id, "turn": label, "counter": counter, "recall": false,
                    "waited_s": wait * 60 })) }),
            ));
            end = called + MIN;
            match t.served {
                Some(s) => {
                    end = called + s * MIN;
                    out.push((
                        end,
                        json!({ "type": "turn_served", "payload": with_staff(json!({
                            "turn_id": id, "counter": counter, "service_s": s * 60 })) }),
                    ));
                }
                None => out.push((
                    end,
                    json!({ "type": "turn_no_show", "payload": with_staff(json!({
                        "turn_id": id, "counter": counter })) }),
                )),
            }
        }
        None => out.push((
            t.at + 20 * MIN,
            json!({ "type": "turn_walked_out", "payload": {
                "turn_id": id, "turn": label, "counter": null } }),
        )),
    }
    if let Some(score) = t.score {
        out.push((
            end + MIN,
            json!({ "type": "survey_answered", "payload": {
                "turn_id": id, "score": score, "reason": null, "card_token": null } }),
        ));
    }
    out
}

fn exposure(variant: &str, visit: Uuid, surface: &str, at: i64) -> (i64, Value) {
    (
        at,
        json!({ "type": "campaign_shown", "payload": {
            "campaign_id": "welcome", "variant": variant, "card_token": null,
            "segment": "anonymous", "surface": surface, "visit_id": visit } }),
    )
}

/// Runs SQL on the harness's database, outside the endpoint.
async fn raw_sql(h: &Harness, sql: &str) {
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
            let (client, conn) = tokio_postgres::connect(&h.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
            drop(client);
            let _ = task.await;
        }
    }
}

/// Logs in through the form; the session cookie (`name=value`).
async fn login(h: &Harness) -> String {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/dashboard/login", h.base))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

async fn get(h: &Harness, cookie: &str, path_and_query: &str) -> (StatusCode, String) {
    let resp = h
        .client
        .get(format!("{}{path_and_query}", h.base))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// One table of a report as CSV: checks the headers and the byte order mark; the text after it.
async fn csv(h: &Harness, cookie: &str, table: &str, query: &str) -> String {
    let resp = h
        .client
        .get(format!(
            "{}/dashboard/reports.csv?table={table}&{query}",
            h.base
        ))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with(&format!("attachment; filename=\"report-{table}-")),
        "{disposition}"
    );
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xef\xbb\xbf", "UTF-8 with a byte order mark");
    String::from_utf8(bytes[3..].to_vec()).unwrap()
}

/// A table's cells as the page shows them (tags stripped, entities of the fixture decoded).
fn table_rows(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id} in {html}"));
    let rest = &html[start..];
    let body = &rest[rest.find("<tbody>").unwrap() + 7..rest.find("</tbody>").unwrap()];
    body.split("<tr>")
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.split(['<'])
                .filter_map(|part| {
                    let (tag, text) = part.split_once('>')?;
                    (tag.starts_with("td") || tag.starts_with("th")).then(|| {
                        text.replace("&quot;", "\"")
                            .replace("&#39;", "'")
                            .replace("&lt;", "<")
                            .replace("&gt;", ">")
                            .replace("&amp;", "&")
                    })
                })
                .collect()
        })
        .collect()
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// The fixture's days: three and two days ago (UTC dates), at 10:00 UTC (11:00 in Madrid, the
/// same local date); both have ended in both stores' time zones.
fn days() -> (time::Date, time::Date, i64, i64) {
    let today = OffsetDateTime::now_utc().date();
    let d1 = today - time::Duration::days(3);
    let d2 = today - time::Duration::days(2);
    let at = |d: time::Date| d.with_hms(10, 0, 0).unwrap().assume_utc().unix_timestamp() * 1000;
    (d1, d2, at(d1), at(d2))
}

async fn reports_show_the_hand_computed_figures(backend: Backend) {
    let h = Harness::start(backend).await;
    let north = h.kiosk.clone();
    let south = h.enroll("south").await;
    h.db.set_store_timezone("north".into(), Some("Europe/Madrid".into()))
        .await
        .unwrap();
    // A name a spreadsheet would run, with a comma and quotes: guarded and quoted in the CSV.
    h.db.upsert_store(StoreRecord {
        id: "south".into(),
        name: "=Sur \"Outlet\", Sevilla".into(),
    })
    .await
    .unwrap();
    raw_sql(
        &h,
        "UPDATE stores SET region = 'ES-MD' WHERE id = 'north';
         UPDATE stores SET region = 'ES-AN' WHERE id = 'south';",
    )
    .await;
    let (d1, d2, t1, t2) = days();
    let turn = |i: i64, t0: i64, service, call, served, score| Turn {
        at: t0 + i * 30 * MIN,
        service,
        call,
        served,
        score,
    };
    // North, day 1. A: waits 2, 4, 10, 6 min; services 4, 6, 5 min; a4 a no-show at counter 2,
    // a5 never called. B: b1 wait 1, service 3; b2 never called.
    let north_d1 = [
        turn(0, t1, "A", Some(("1", 2)), Some(4), Some(10)),
        turn(1, t1, "A", Some(("1", 4)), Some(6), Some(9)),
        turn(2, t1, "A", Some(("2", 10)), Some(5), Some(7)),
        turn(3, t1, "A", Some(("2", 6)), None, None),
        turn(4, t1, "A", None, None, None),
        turn(5, t1, "B", Some(("2", 1)), Some(3), Some(3)),
        turn(6, t1, "B", None, None, None),
    ];
    // North, day 2. a6: wait 8, service 2 at counter 1; b3: wait 3, service 10 at counter 2.
    let north_d2 = [
        turn(0, t2, "A", Some(("1", 8)), Some(2), Some(0)),
        turn(1, t2, "B", Some(("2", 3)), Some(10), Some(10)),
    ];
    // South, day 1. a7: wait 5, service 5; a8: wait 15, a no-show.
    let south_d1 = [
        turn(0, t1, "A", Some(("1", 5)), Some(5), Some(8)),
        turn(1, t1, "A", Some(("1", 15)), None, None),
    ];
    let mut n = 0;
    let mut events = |turns: &[Turn]| {
        let mut out = Vec::new();
        for t in turns {
            n += 1;
            out.extend(turn_events(t, n));
        }
        out
    };
    let mut north_events = events(&north_d1);
    north_events.extend(events(&north_d2));
    let south_events = events(&south_d1);
    // Campaign "welcome" at north on day 1: variant a shown in three visits (one of them on the
    // screen and the ticket: one exposure), one coupon redeemed → 3, 1, 33.3 %.
    let (v1, v2, v3) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    north_events.extend([
        exposure("a", v1, "screen", t1 + MIN),
        exposure("a", v1, "ticket", t1 + MIN),
        exposure("a", v2, "screen", t1 + 31 * MIN),
        exposure("a", v3, "screen", t1 + 61 * MIN),
        (
            t1 + 90 * MIN,
            json!({ "type": "coupon_redeemed", "payload": {
                "coupon_code": "BIENV-A-0000000001", "campaign_id": "welcome",
                "card_token": null, "variant": "a" } }),
        ),
    ]);
    post(&h, &north, north_events).await;
    post(&h, &south, south_events).await;

    let cookie = login(&h).await;
    let range = format!("from={d1}&to={d2}");

    // Per day and store.
    let check_days = |html: &str| {
        assert_eq!(
            table_rows(html, "report-queue"),
            [
                // 7 tickets, 5 called, 4 served, a4 a no-show, a5 and b2 walkouts. Waits 1 2 4
                // 6 10: median 4:00, p90 6 + 0.6 × 4 = 8.4 min. Services 3 4 5 6: median 4.5
                // min, p90 5 + 0.7 × 1 = 5.7 min.
                row(&[
                    &d1.to_string(),
                    "Tienda Norte",
                    "7",
                    "5",
                    "4",
                    "1",
                    "2",
                    "4:00",
                    "8:24",
                    "4:30",
                    "5:42"
                ]),
                // Waits 5 15: median 10, p90 5 + 0.9 × 10 = 14. Service 5.
                row(&[
                    &d1.to_string(),
                    "=Sur \"Outlet\", Sevilla",
                    "2",
                    "2",
                    "1",
                    "1",
                    "0",
                    "10:00",
                    "14:00",
                    "5:00",
                    "5:00"
                ]),
                // Waits 3 8: median 5.5, p90 3 + 0.9 × 5 = 7.5. Services 2 10: 6, 2 + 0.9 × 8 = 9.2.
                row(&[
                    &d2.to_string(),
                    "Tienda Norte",
                    "2",
                    "2",
                    "2",
                    "0",
                    "0",
                    "5:30",
                    "7:30",
                    "6:00",
                    "9:12"
                ]),
            ]
        );
        assert_eq!(
            table_rows(html, "report-nps"),
            [
                // 10 9 7 3: two promoters, a passive, a detractor: (2 − 1) / 4 = 25.
                row(&[&d1.to_string(), "Tienda Norte", "4", "2", "1", "1", "25.0"]),
                row(&[
                    &d1.to_string(),
                    "=Sur \"Outlet\", Sevilla",
                    "1",
                    "0",
                    "1",
                    "0",
                    "0.0"
                ]),
                // 0 10: (1 − 1) / 2 = 0.
                row(&[&d2.to_string(), "Tienda Norte", "2", "1", "0", "1", "0.0"]),
            ]
        );
        assert_eq!(
            table_rows(html, "report-campaigns"),
            [row(&[
                &d1.to_string(),
                "Tienda Norte",
                "welcome",
                "a",
                "3",
                "1",
                "33.3%"
            ])]
        );
    };
    let (status, html) = get(
        &h,
        &cookie,
        &format!("/dashboard/reports?{range}&period=day&group=store"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    check_days(&html);
    assert!(html.contains("id=\"print-view\""), "{html}");

    // The CSV of the same table: exact text, BOM, CRLF, the guarded and quoted name.
    let queue_csv = csv(
        &h,
        &cookie,
        "queue",
        &format!("{range}&period=day&group=store"),
    )
    .await;
    assert_eq!(
        queue_csv,
        format!(
            "period,group,group_name,tickets,called,served,no_shows,walkouts,wait_median_s,wait_p90_s,service_median_s,service_p90_s\r\n\
             {d1},north,Tienda Norte,7,5,4,1,2,240.0,504.0,270.0,342.0\r\n\
             {d1},south,\"'=Sur \"\"Outlet\"\", Sevilla\",2,2,1,1,0,600.0,840.0,300.0,300.0\r\n\
             {d2},north,Tienda Norte,2,2,2,0,0,330.0,450.0,360.0,552.0\r\n"
        )
    );
    assert_eq!(
        csv(
            &h,
            &cookie,
            "nps",
            &format!("{range}&period=range&group=region")
        )
        .await,
        format!(
            "period,group,group_name,responses,promoters,passives,detractors,nps\r\n\
             {d1} to {d2},ES-AN,ES-AN,1,0,1,0,0.0\r\n\
             {d1} to {d2},ES-MD,ES-MD,6,3,1,2,16.7\r\n"
        )
    );
    assert_eq!(
        csv(
            &h,
            &cookie,
            "campaigns",
            &format!("{range}&period=month&group=store&store=north")
        )
        .await,
        format!(
            "period,group,group_name,campaign_id,campaign_name,variant,exposures,conversions,rate_percent\r\n\
             {},north,Tienda Norte,welcome,,a,3,1,33.3\r\n",
            &d1.to_string()[..7]
        )
    );

    // The whole range per service, all stores.
    let (status, html) = get(
        &h,
        &cookie,
        &format!("/dashboard/reports?{range}&period=range&group=service"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let whole = format!("{d1} to {d2}");
    assert_eq!(
        table_rows(&html, "report-queue"),
        [
            // A: 8 tickets, 7 called, 5 served, a4 a8 no-shows, a5 a walkout. Waits 2 4 5 6 8
            // 10 15: median 6, p90 10 + 0.4 × 5 = 12. Services 2 4 5 5 6: 5, 5 + 0.6 = 5.6.
            row(&[
                &whole, "A", "8", "7", "5", "2", "1", "6:00", "12:00", "5:00", "5:36"
            ]),
            // B: 3 tickets, 2 called and served, b2 a walkout. Waits 1 3: 2, 2.8. Services 3 10:
            // 6.5, 3 + 0.9 × 7 = 9.3.
            row(&[
                &whole, "B", "3", "2", "2", "0", "1", "2:00", "2:48", "6:30", "9:18"
            ]),
        ]
    );

    // Per counter at north: counter 1 called a1 a2 a6, counter 2 a3 a4 b1 b3 (a4 a no-show).
    let (status, html) = get(
        &h,
        &cookie,
        &format!("/dashboard/reports?{range}&period=range&group=counter&store=north"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let counters = vec![
        // Waits 2 4 8: 4, 4 + 0.8 × 4 = 7.2. Services 2 4 6: 4, 4 + 0.8 × 2 = 5.6.
        row(&[
            &whole,
            "Tienda Norte counter 1",
            "3",
            "3",
            "3",
            "0",
            "–",
            "4:00",
            "7:12",
            "4:00",
            "5:36",
        ]),
        // Waits 1 3 6 10: 4.5, 6 + 0.7 × 4 = 8.8. Services 3 5 10: 5, 5 + 0.8 × 5 = 9.
        row(&[
            &whole,
            "Tienda Norte counter 2",
            "4",
            "4",
            "3",
            "1",
            "–",
            "4:30",
            "8:48",
            "5:00",
            "9:00",
        ]),
    ];
    assert_eq!(table_rows(&html, "report-queue"), counters);

    // Per staff member at north: Ana (counter 1), named as the store config names her, and the
    // store-wide PIN's turns (counter 2) in a row of their own.
    h.db.set_store_config(
        "north".into(),
        serde_json::from_value(json!({ "staff": [
            { "id": "ana", "name": "Ana García", "pin_sha256": "ab".repeat(32) }
        ]}))
        .unwrap(),
        now_ms(),
    )
    .await
    .unwrap();
    let per_staff = |name: &str, counter: &[String]| {
        let mut r = counter.to_vec();
        r[1] = format!("Tienda Norte · {name}");
        r
    };
    let staff = vec![
        per_staff("(store PIN)", &counters[1]),
        per_staff("Ana García", &counters[0]),
    ];
    let (status, html) = get(
        &h,
        &cookie,
        &format!("/dashboard/reports?{range}&period=range&group=staff&store=north"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(table_rows(&html, "report-queue"), staff);

    // Region ES-AN alone.
    let (status, html) = get(
        &h,
        &cookie,
        &format!("/dashboard/reports?{range}&period=range&group=region&region=ES-AN"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        table_rows(&html, "report-queue"),
        [row(&[
            &whole, "ES-AN", "2", "2", "1", "1", "0", "10:00", "14:00", "5:00", "5:00"
        ])]
    );

    // The storage job rolls the days up: the same figures, now from the roll-ups (the raw rows
    // of those days are gone, except the counters' turns, which the roll-ups do not keep).
    h.db.maintain_storage(now_ms()).await.unwrap();
    let cut = t2 + DAY;
    raw_sql(
        &h,
        &format!("DELETE FROM events WHERE corrected_ms < {cut} AND type <> 'ticket_issued';"),
    )
    .await;
    let (_, html) = get(
        &h,
        &cookie,
        &format!("/dashboard/reports?{range}&period=range&group=counter&store=north"),
    )
    .await;
    assert_eq!(table_rows(&html, "report-queue"), counters);
    let (_, html) = get(
        &h,
        &cookie,
        &format!("/dashboard/reports?{range}&period=range&group=staff&store=north"),
    )
    .await;
    assert_eq!(table_rows(&html, "report-queue"), staff);
    raw_sql(&h, &format!("DELETE FROM turns WHERE issued_ms < {cut};")).await;
    let (_, html) = get(
        &h,
        &cookie,
        &format!("/dashboard/reports?{range}&period=day&group=store"),
    )
    .await;
    check_days(&html);
    assert_eq!(
        csv(
            &h,
            &cookie,
            "queue",
            &format!("{range}&period=day&group=store")
        )
        .await,
        queue_csv
    );

    // Bad forms: a clear 400 (404 for a store that is not the user's) with the form kept.
    for (query, status_expected, words) in [
        (format!("from={d2}&to={d1}"), 400, "is after To"),
        (
            "from=2025-01-01&to=2026-06-01".to_owned(),
            400,
            "at most 366 days",
        ),
        ("from=yesterday".to_owned(), 400, "enter it as YYYY-MM-DD"),
        (
            "period=fortnight".to_owned(),
            400,
            "not one of day, week, month, range",
        ),
        ("store=west".to_owned(), 404, "no store &quot;west&quot;"),
        (
            "region=ES-CT".to_owned(),
            404,
            "no region &quot;ES-CT&quot;",
        ),
    ] {
        let (status, html) = get(&h, &cookie, &format!("/dashboard/reports?{query}")).await;
        assert_eq!(status.as_u16(), status_expected, "{query}");
        assert!(html.contains(words), "{query}: {html}");
        assert!(html.contains("id=\"report-form\""), "{query}");
    }
    let resp = h
        .admin(
            reqwest::Method::GET,
            "/dashboard/reports.csv?table=queue&store=west",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = h
        .admin(reqwest::Method::GET, "/dashboard/reports.csv?table=people")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Without a session: the login form, and no figures.
    let (status, html) = get(
        &h,
        "crm_dashboard=nope",
        &format!("/dashboard/reports?{range}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("id=\"token\"") && !html.contains("report-queue"),
        "{html}"
    );
    let resp = h
        .client
        .get(format!(
            "{}/dashboard/reports.csv?table=queue&{range}",
            h.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    h.stop().await;
}

on_both_databases!(reports_show_the_hand_computed_figures);
