//! The managers' reports (issue 21 item 4) in a real browser (headless Chromium) at 800x480,
//! 1080x1920 and 1920x1080: a real endpoint whose kiosks sent a known day of turns, calls,
//! services, no-shows, walkouts, survey answers and campaign exposures in real signed batches;
//! the manager logs in, picks the period and grouping in the form (by clicking its options),
//! reads the table (the hand-computed median, p90, no-shows, walkouts and NPS), downloads the
//! CSV through the page's link with the page's session and finds the same figures (a store name
//! a spreadsheet would run guarded), and opens the printable view: no navigation and no form,
//! and with the print style applied, rows kept whole and headers repeated. Every control in
//! view and at least 24 px (WCAG 2.2 target size, a desktop console), the page no wider than
//! the window, axe-core finding no critical or serious violation. Screenshots go to
//! `<target dir>/artifacts/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use crm_endpoint::db::{NewKiosk, StoreRecord};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use kiosk_protocol::events::{Envelope, Event};
use kiosk_protocol::wire::{DeviceSecret, KioskClock};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

const ADMIN: &str = "reports-view-admin-token-of-at-least-32-characters";
const MIN: i64 = 60_000;
/// WCAG 2.2's minimum target size (2.5.8): the console is used with a mouse on a desktop.
const MIN_TARGET: f64 = 24.0;
const MONO_NOW: u64 = 40 * 86_400_000;
const PORTRAIT: Viewport = Viewport {
    width: 1080,
    height: 1920,
};

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// Posts one signed batch of `events` (each at its unix ms) as kiosk `id` (secret `[n; 32]`).
async fn post(base: &str, id: &str, n: u8, events: Vec<(i64, Value)>) {
    let now = OffsetDateTime::now_utc();
    let now_ms = now_ms();
    let boot = Uuid::now_v7();
    let envs: Vec<Envelope> = events
        .into_iter()
        .enumerate()
        .map(|(i, (at, e))| {
            let age = now_ms - at;
            Envelope {
                id: Uuid::now_v7(),
                kiosk_id: id.into(),
                seq: i as u64 + 1,
                boot_id: boot,
                wall_time: now - time::Duration::milliseconds(age),
                mono_ms: MONO_NOW - u64::try_from(age).unwrap(),
                schema_version: 1,
                event: serde_json::from_value::<Event>(e).unwrap(),
            }
        })
        .collect();
    let clock = KioskClock {
        wall_time: now,
        mono_ms: MONO_NOW,
        boot_id: boot,
    };
    kiosk_e2e::crm::post_batch(
        base,
        id,
        &DeviceSecret::from_bytes([n; 32]),
        clock,
        envs,
        now.unix_timestamp(),
    )
    .await;
}

/// A turn issued at `at`: called at `counter` after `wait` min, served after `service` min (or
/// a no-show), or never called; a survey answer.
fn turn(
    at: i64,
    service: &str,
    call: Option<(&str, i64)>,
    served: Option<i64>,
    score: Option<u8>,
) -> Vec<(i64, Value)> {
    let id = Uuid::now_v7();
    let label = format!("{service}-001");
    let mut out = vec![(
        at,
        json!({ "type": "ticket_issued", "payload": {
            "turn_id": id, "turn": label, "service": service, "number": 1,
            "business_day": "2026-01-01", "priority": false, "position": 0,
            "estimated_wait_s": 0, "card_token": null, "locale": "es", "campaign_id": null,
            "out_of_sequence": false } }),
    )];
    let mut end = at + 20 * MIN;
    if let Some((counter, wait)) = call {
        let called = at + wait * MIN;
        out.push((
            called,
            json!({ "type": "turn_called", "payload": {
                "turn_id": id, "turn": label, "counter": counter, "recall": false,
                "waited_s": wait * 60 } }),
        ));
        end = called + served.unwrap_or(1) * MIN;
        out.push(match served {
            Some(s) => (
                end,
                json!({ "type": "turn_served", "payload": {
                    "turn_id": id, "counter": counter, "service_s": s * 60 } }),
            ),
            None => (
                end,
                json!({ "type": "turn_no_show", "payload": { "turn_id": id, "counter": counter } }),
            ),
        });
    }
    if let Some(score) = score {
        out.push((
            end + MIN,
            json!({ "type": "survey_answered", "payload": {
                "turn_id": id, "score": score, "reason": null, "card_token": null } }),
        ));
    }
    out
}

/// The queue table as the manager sees it: each row's cells' text.
const TABLE: &str = r#"
return [...document.querySelectorAll(arguments[0] + ' tbody tr')]
  .map((tr) => [...tr.children].map((c) => c.innerText.trim()));
"#;

/// The printable view with its print style applied: what is shown, and how rows break.
const PRINTED: &str = r#"
for (const sheet of document.styleSheets) {
  for (const rule of sheet.cssRules) {
    if (rule instanceof CSSMediaRule && rule.media.mediaText === 'print') rule.media.mediaText = 'all';
  }
}
const shown = (el) => el && el.getClientRects().length > 0 && getComputedStyle(el).display !== 'none';
const tr = document.querySelector('#report-queue tbody tr');
return {
  nav: [...document.querySelectorAll('nav, form, header')].filter(shown).length,
  tables: [...document.querySelectorAll('table')].filter(shown).length,
  rowBreak: getComputedStyle(tr).breakInside,
  head: getComputedStyle(document.querySelector('#report-queue thead')).display,
  wide: document.documentElement.scrollWidth > window.innerWidth,
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_picks_a_report_reads_it_downloads_its_csv_and_prints_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("crm.db");
    let db = crm_endpoint::db::open(&format!("sqlite://{}", db_path.display()))
        .await
        .unwrap();
    let now = now_ms();
    for (store, name, kiosk, n) in [
        ("north", "Tienda Norte", "north-1", 1u8),
        ("south", "=Sur \"Outlet\", Sevilla", "south-1", 2),
    ] {
        db.upsert_store(StoreRecord {
            id: store.into(),
            name: name.into(),
        })
        .await
        .unwrap();
        let code = format!("code-{kiosk}");
        db.create_enroll_code(code.clone(), store.into(), now + 60 * MIN)
            .await
            .unwrap();
        db.redeem_enroll_code(
            code,
            now,
            NewKiosk {
                id: kiosk.into(),
                secret: DeviceSecret::from_bytes([n; 32]),
                hardware_profile: "simulated".into(),
                firmware_version: "0.1.0".into(),
            },
        )
        .await
        .unwrap()
        .expect("enrolled");
    }
    db.set_store_timezone("north".into(), Some("Europe/Madrid".into()))
        .await
        .unwrap();
    {
        let c = rusqlite::Connection::open(&db_path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c.execute_batch(
            "UPDATE stores SET region = 'ES-MD' WHERE id = 'north';
             UPDATE stores SET region = 'ES-AN' WHERE id = 'south';",
        )
        .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = crm_endpoint::ServeConfig {
        db: db.clone(),
        admin_token: Some(ADMIN.into()),
        tls: None,
    };
    let server = tokio::spawn(crm_endpoint::serve(config, listener, async {
        let _ = stopped.await;
    }));

    // Three days ago (UTC date), from 10:00 UTC (11:00 in Madrid, the same date).
    let day = OffsetDateTime::now_utc().date() - time::Duration::days(3);
    let t = day
        .with_hms(10, 0, 0)
        .unwrap()
        .assume_utc()
        .unix_timestamp()
        * 1000;
    let at = |i: i64| t + i * 30 * MIN;
    let mut north = Vec::new();
    // A: waits 2, 4, 10, 6 min; services 4, 6, 5; the fourth a no-show; a fifth never called.
    // B: wait 1, service 3; another never called. Scores 10, 9, 7, 3.
    north.extend(turn(at(0), "A", Some(("1", 2)), Some(4), Some(10)));
    north.extend(turn(at(1), "A", Some(("1", 4)), Some(6), Some(9)));
    north.extend(turn(at(2), "A", Some(("2", 10)), Some(5), Some(7)));
    north.extend(turn(at(3), "A", Some(("2", 6)), None, None));
    north.extend(turn(at(4), "A", None, None, None));
    north.extend(turn(at(5), "B", Some(("2", 1)), Some(3), Some(3)));
    north.extend(turn(at(6), "B", None, None, None));
    post(&base, "north-1", 1, north).await;
    let mut south = Vec::new();
    // Waits 5 and 15; the second a no-show. Score 8.
    south.extend(turn(at(0), "A", Some(("1", 5)), Some(5), Some(8)));
    south.extend(turn(at(1), "A", Some(("1", 15)), None, None));
    post(&base, "south-1", 2, south).await;

    for (i, viewport) in [Viewport::PI_DISPLAY, PORTRAIT, Viewport::FULL_HD]
        .into_iter()
        .enumerate()
    {
        let shot = |n: u32, what: &str| format!("reports-{viewport}-{n:02}-{what}");
        let browser = Browser::launch(viewport).await.expect("chromium");
        browser
            .goto(&format!("{base}/dashboard/reports"))
            .await
            .unwrap();
        browser.wait_for("#token", WAIT).await.expect("login form");
        browser.type_into("#token", ADMIN).await.unwrap();
        browser.click("button[type=submit]").await.unwrap();
        browser
            .wait_for("#kpi-tickets", WAIT)
            .await
            .expect("logged in");
        browser
            .click("a[href='/dashboard/reports']")
            .await
            .expect("the reports link");
        browser
            .wait_for("#report-form", WAIT)
            .await
            .expect("the form");
        // The days through the date fields' values (their keyboard format follows the
        // browser's locale); the period and the grouping picked in their lists.
        browser
            .eval(
                "document.getElementById('from').value = arguments[0];
                 document.getElementById('to').value = arguments[0]; return true;",
                vec![json!(day.to_string())],
            )
            .await
            .unwrap();
        let (period, group) = [("day", "store"), ("week", "store"), ("range", "store")][i];
        browser
            .click(&format!("#period option[value={period}]"))
            .await
            .unwrap();
        browser
            .click(&format!("#group option[value={group}]"))
            .await
            .unwrap();
        browser
            .click("#report-form button[type=submit]")
            .await
            .unwrap();
        browser
            .wait_for("#report-queue", WAIT)
            .await
            .expect("the report");
        browser.screenshot(&shot(1, "report")).await.unwrap();
        let label = match period {
            "day" => day.to_string(),
            "week" => {
                let (y, w, _) = day.to_iso_week_date();
                format!("{y:04}-W{w:02}")
            }
            _ => format!("{day} to {day}"),
        };
        let rows = browser
            .eval(TABLE, vec![json!("#report-queue")])
            .await
            .unwrap();
        assert_eq!(
            rows,
            json!([
                // 7 tickets, 5 called, 4 served, 1 no-show, 2 walkouts; waits 1 2 4 6 10:
                // median 4:00, p90 8.4 min; services 3 4 5 6: 4.5 and 5.7 min.
                [
                    label,
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
                ],
                [
                    label,
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
                ],
            ]),
            "{viewport}"
        );
        let nps = browser
            .eval(TABLE, vec![json!("#report-nps")])
            .await
            .unwrap();
        assert_eq!(
            nps,
            json!([
                [label, "Tienda Norte", "4", "2", "1", "1", "25.0"],
                [label, "=Sur \"Outlet\", Sevilla", "1", "0", "1", "0", "0.0"],
            ]),
            "{viewport}"
        );
        assert_eq!(
            browser.usability_problems(MIN_TARGET).await.unwrap(),
            Vec::<String>::new(),
            "the report at {viewport} is hard to use"
        );
        let violations = browser.axe_violations().await.unwrap();
        assert_eq!(violations, Vec::<String>::new(), "axe-core at {viewport}");

        // The CSV behind the page's link, fetched with the page's session.
        let csv = browser
            .eval(
                "return fetch(document.getElementById('csv-queue').href)
                   .then((r) => r.arrayBuffer().then((b) => ({
                     status: r.status,
                     type: r.headers.get('content-type'),
                     disposition: r.headers.get('content-disposition'),
                     bom: [...new Uint8Array(b.slice(0, 3))],
                     text: new TextDecoder('utf-8', { ignoreBOM: false }).decode(b),
                   })));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(csv["status"], 200, "{csv}");
        assert_eq!(csv["type"], "text/csv; charset=utf-8");
        assert!(
            csv["disposition"]
                .as_str()
                .unwrap()
                .starts_with("attachment; filename=\"report-queue-"),
            "{csv}"
        );
        assert_eq!(csv["bom"], json!([0xef, 0xbb, 0xbf]));
        assert_eq!(
            csv["text"].as_str().unwrap(),
            format!(
                "period,group,group_name,tickets,called,served,no_shows,walkouts,wait_median_s,wait_p90_s,service_median_s,service_p90_s\r\n\
                 {label},north,Tienda Norte,7,5,4,1,2,240.0,504.0,270.0,342.0\r\n\
                 {label},south,\"'=Sur \"\"Outlet\"\", Sevilla\",2,2,1,1,0,600.0,840.0,300.0,300.0\r\n"
            ),
            "{viewport}"
        );

        // The printable view.
        browser.click("#print-view").await.unwrap();
        browser
            .wait_for("body.print-view #report-queue", WAIT)
            .await
            .expect("the printable view");
        let printed_rows = browser
            .eval(TABLE, vec![json!("#report-queue")])
            .await
            .unwrap();
        assert_eq!(
            printed_rows, rows,
            "the printable view shows the same table"
        );
        let printed = browser.eval(PRINTED, vec![]).await.unwrap();
        assert_eq!(
            printed["nav"], 0,
            "no navigation or form printed: {printed}"
        );
        // The queue and NPS tables; no campaign ran, which the page says in words.
        assert_eq!(printed["tables"], 2, "{printed}");
        assert_eq!(
            browser.text("#report-campaigns-empty").await.unwrap(),
            "No campaign shown in this period."
        );
        assert_eq!(printed["rowBreak"], "avoid", "{printed}");
        assert_eq!(printed["head"], "table-header-group", "{printed}");
        assert_eq!(printed["wide"], false, "{printed}");
        browser.screenshot(&shot(2, "printed")).await.unwrap();
        assert_eq!(
            browser.axe_violations().await.unwrap(),
            Vec::<String>::new(),
            "axe-core on the printable view at {viewport}"
        );
        browser.close().await.unwrap();
    }

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
