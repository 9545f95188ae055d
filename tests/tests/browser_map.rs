//! The console's regions map (issue 21 item 5) in a real browser (headless Chromium) at 800x480,
//! 1080x1920 and 1920x1080: five stores of a real endpoint (two in Madrid, one in Seville, one
//! in Las Palmas, one not placed yet) whose kiosks sent real signed batches with known waits and
//! survey answers. After logging in, the manager sees the regions coloured and the same figures
//! in the table, exactly as computed by hand (a region's median wait is the median of all its
//! turns, not an average of its stores' medians); switches the figure; drills down into Madrid
//! to its two stores on the map and in the table, and into the Canary Islands, drawn in their
//! framed box beside the mainland. Every control fits the window and is large enough, axe-core
//! finds no critical or serious violation, and screenshots go to `<target dir>/artifacts/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use crm_endpoint::db::places::PlaceUpdate;
use crm_endpoint::db::{NewKiosk, StoreRecord};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use kiosk_protocol::events::{Envelope, Event, SurveyAnswered, TicketIssued, TurnCalled};
use kiosk_protocol::wire::{DeviceSecret, KioskClock};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

const ADMIN: &str = "regions-map-admin-token-of-at-least-32-characters";
const MIN: u64 = 60_000;
/// WCAG 2.2's minimum target size (2.5.8): the console is used with a mouse or on a tablet.
const MIN_TARGET: f64 = 24.0;
const PORTRAIT: Viewport = Viewport {
    width: 1080,
    height: 1920,
};

/// A region and coordinates.
type Place = Option<(&'static str, f64, f64)>;

/// `(store, name, kiosk, secret byte, place)`.
const STORES: [(&str, &str, &str, u8, Place); 5] = [
    (
        "sol",
        "Tienda Sol",
        "sol-1",
        1,
        Some(("ES-MD", 40.4168, -3.7038)),
    ),
    (
        "retiro",
        "Tienda Retiro",
        "retiro-1",
        2,
        Some(("ES-MD", 40.4153, -3.6845)),
    ),
    (
        "triana",
        "Tienda Triana",
        "triana-1",
        3,
        Some(("ES-AN", 37.3826, -6.0026)),
    ),
    (
        "vegueta",
        "Tienda Vegueta",
        "vegueta-1",
        4,
        Some(("ES-CN", 28.1008, -15.4146)),
    ),
    ("nueva", "Tienda Nueva", "nueva-1", 5, None),
];

/// The table as the manager reads it: each row's header cell and figure cell.
const TABLE: &str = r#"
return [...document.querySelectorAll('#rows tr')].map((tr) => [
  tr.querySelector('th').innerText.trim(),
  tr.querySelector('td.figure').innerText.trim(),
]);
"#;

/// The regions drawn on the map: how many, and how many filled with a figure's colour.
const MAP_SHAPES: &str = r#"
const paths = [...document.querySelectorAll('#map .leaflet-overlay-pane path.leaflet-interactive')];
const fills = paths.map((p) => p.getAttribute('fill'));
return { paths: paths.length, coloured: fills.filter((f) => f && f !== '#d9d9d9').length };
"#;

/// The store markers on the map, as screen boxes, and the map's box.
const MARKERS: &str = r##"
const map = document.getElementById('map').getBoundingClientRect();
const markers = [...document.querySelectorAll('#map path.store-marker')]
  .map((p) => { const r = p.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; });
return { map: [map.left, map.top, map.right, map.bottom], markers };
"##;

fn turn(id: Uuid, service: &str, n: u32) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id: id,
        turn: format!("{service}-{n:03}"),
        service: service.into(),
        number: n,
        business_day: "2026-12-06".into(),
        priority: false,
        position: 0,
        estimated_wait_s: 60,
        card_token: None,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

fn called(id: Uuid) -> Event {
    Event::TurnCalled(TurnCalled {
        staff: None,
        turn_id: id,
        turn: "A-001".into(),
        counter: "1".into(),
        recall: false,
        waited_s: 0,
    })
}

fn answer(id: Uuid, score: u8) -> Event {
    Event::SurveyAnswered(SurveyAnswered {
        turn_id: Some(id),
        score,
        reason: None,
        card_token: None,
    })
}

/// One signed batch from `kiosk` (secret `[n; 32]`): its turns issued 30 minutes before the
/// batch, each called after its wait in minutes (`None`: still waiting), with its survey score.
async fn post_turns(base: &str, kiosk: &str, n: u8, turns: &[(Option<u64>, Option<u8>)]) {
    let start = 10 * MIN;
    let end = start + 30 * MIN;
    let boot = Uuid::now_v7();
    let mut timed: Vec<(u64, Event)> = Vec::new();
    for (i, (wait, score)) in turns.iter().enumerate() {
        let id = Uuid::now_v7();
        timed.push((start, turn(id, "A", u32::try_from(i).unwrap() + 1)));
        if let Some(w) = wait {
            timed.push((start + w * MIN, called(id)));
            if let Some(s) = score {
                timed.push((start + w * MIN + MIN, answer(id, *s)));
            }
        }
    }
    let wall = OffsetDateTime::now_utc();
    let envs: Vec<Envelope> = timed
        .into_iter()
        .enumerate()
        .map(|(i, (mono_ms, event))| Envelope {
            id: Uuid::now_v7(),
            kiosk_id: kiosk.into(),
            seq: i as u64 + 1,
            boot_id: boot,
            wall_time: wall,
            mono_ms,
            schema_version: 1,
            event,
        })
        .collect();
    let clock = KioskClock {
        wall_time: wall,
        mono_ms: end,
        boot_id: boot,
    };
    kiosk_e2e::crm::post_batch(
        base,
        kiosk,
        &DeviceSecret::from_bytes([n; 32]),
        clock,
        envs,
        wall.unix_timestamp(),
    )
    .await;
}

fn rows(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn select(browser: &Browser, id: &str, value: &str) {
    browser
        .eval(
            "const s = document.getElementById(arguments[0]); s.value = arguments[1]; \
             s.dispatchEvent(new Event('change', { bubbles: true })); return true;",
            vec![json!(id), json!(value)],
        )
        .await
        .unwrap();
}

async fn wait_rows(browser: &Browser, what: &str, expected: &[(&str, &str)]) {
    let want = serde_json::to_string(
        &expected
            .iter()
            .map(|(a, b)| vec![*a, *b])
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let expr = format!(
        "JSON.stringify([...document.querySelectorAll('#rows tr')].map((tr) => \
         [tr.querySelector('th').innerText.trim(), tr.querySelector('td.figure').innerText.trim()])) === {}",
        serde_json::to_string(&want).unwrap()
    );
    if browser.wait_until(what, &expr, WAIT).await.is_err() {
        let seen = rows(&browser.eval(TABLE, vec![]).await.unwrap());
        assert_eq!(seen, pairs(expected), "{what}");
    }
}

async fn check_page(browser: &Browser, label: &str) {
    let problems = browser.reachability_problems(MIN_TARGET).await.unwrap();
    assert!(problems.is_empty(), "{label}: controls: {problems:?}");
    let violations = browser.axe_violations().await.expect("axe.run");
    assert!(violations.is_empty(), "{label}: axe-core: {violations:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regions_map_colours_regions_by_the_figure_and_drills_down_to_their_stores() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = crm_endpoint::db::open(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for (store, name, kiosk, n, place) in STORES {
        db.upsert_store(StoreRecord {
            id: store.into(),
            name: name.into(),
        })
        .await
        .unwrap();
        db.set_store_timezone(store.into(), Some("Europe/Madrid".into()))
            .await
            .unwrap();
        if let Some((region, latitude, longitude)) = place {
            db.set_store_place(
                store.into(),
                PlaceUpdate {
                    name: None,
                    region: Some(region.into()),
                    latitude: Some(latitude),
                    longitude: Some(longitude),
                },
            )
            .await
            .unwrap();
        }
        let code = format!("code-{kiosk}");
        db.create_enroll_code(code.clone(), store.into(), now + 3_600_000)
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

    // The known truth. Madrid: Sol waits 2, 4, 6 min (answers 10, 10), Retiro 10 and 12
    // (answer 0): 5 tickets, median of the five waits 6.0 min (the stores' medians are 4 and
    // 11), NPS (2 promoters − 1 detractor) / 3 = 33. Andalucía: one turn, 1 min, no answer.
    // Canarias: four tickets nobody called yet. Nueva (no region): one ticket, on no region.
    post_turns(
        &base,
        "sol-1",
        1,
        &[(Some(2), Some(10)), (Some(4), Some(10)), (Some(6), None)],
    )
    .await;
    post_turns(
        &base,
        "retiro-1",
        2,
        &[(Some(10), Some(0)), (Some(12), None)],
    )
    .await;
    post_turns(&base, "triana-1", 3, &[(Some(1), None)]).await;
    post_turns(&base, "vegueta-1", 4, &[(None, None); 4]).await;
    post_turns(&base, "nueva-1", 5, &[(None, None)]).await;

    // The API's figures first (what the page draws from).
    let api: Value = reqwest::Client::new()
        .get(format!("{base}/dashboard/api/map?days=7"))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let md = api["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "ES-MD")
        .unwrap();
    assert_eq!(md["stores"], 2, "{api}");
    assert_eq!(md["figures"]["tickets"], 5, "{api}");
    assert_eq!(md["figures"]["wait_median_min"], 6.0, "{api}");
    assert_eq!(md["figures"]["nps"], 33.3, "{api}");
    let bad = reqwest::Client::new()
        .get(format!("{base}/dashboard/api/map?days=0"))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("days: 0 is not between 1 and 366")
    );

    for (i, viewport) in [Viewport::FULL_HD, PORTRAIT, Viewport::PI_DISPLAY]
        .into_iter()
        .enumerate()
    {
        let shot = |n: &str| format!("map-{viewport}-{n}");
        let browser = Browser::launch(viewport).await.expect("chromium");
        browser
            .goto(&format!("{base}/dashboard/map"))
            .await
            .unwrap();
        // No session: the dashboard's login, then the map.
        browser.wait_for("#token", WAIT).await.expect("login form");
        browser.type_into("#token", ADMIN).await.unwrap();
        browser.click("button[type=submit]").await.unwrap();
        browser
            .wait_for("#kpi-tickets", WAIT)
            .await
            .expect("logged in");
        browser
            .goto(&format!("{base}/dashboard/map?days=7"))
            .await
            .unwrap();
        wait_rows(
            &browser,
            "regions by tickets",
            &[
                ("Comunidad de Madrid", "5"),
                ("Canarias", "4"),
                ("Andalucía", "1"),
            ],
        )
        .await;
        let shapes = browser.eval(MAP_SHAPES, vec![]).await.unwrap();
        assert_eq!(shapes, json!({ "paths": 19, "coloured": 3 }), "{viewport}");
        let unplaced = browser.text("#unplaced").await.unwrap();
        assert!(unplaced.contains("Tienda Nueva"), "{unplaced}");
        browser.screenshot(&shot("01-tickets")).await.unwrap();
        check_page(&browser, &format!("{viewport} tickets")).await;

        select(&browser, "figure", "wait_median_min").await;
        wait_rows(
            &browser,
            "regions by median wait",
            &[
                ("Comunidad de Madrid", "6.0 min"),
                ("Andalucía", "1.0 min"),
                ("Canarias", "no data"),
            ],
        )
        .await;
        let legend = browser.text("#legend").await.unwrap();
        assert!(
            legend.contains("1.0 min") && legend.contains("6.0 min"),
            "{legend}"
        );
        browser.screenshot(&shot("02-wait")).await.unwrap();

        select(&browser, "figure", "nps").await;
        wait_rows(
            &browser,
            "regions by NPS",
            &[
                ("Comunidad de Madrid", "33"),
                ("Andalucía", "no data"),
                ("Canarias", "no data"),
            ],
        )
        .await;

        // Drill into Madrid: the button has a name saying what it does.
        select(&browser, "figure", "wait_median_min").await;
        browser
            .click("button[aria-label='Show the stores of Comunidad de Madrid']")
            .await
            .unwrap();
        wait_rows(
            &browser,
            "Madrid's stores",
            &[("Tienda Retiro", "11.0 min"), ("Tienda Sol", "4.0 min")],
        )
        .await;
        assert_eq!(
            browser.text("#h-table").await.unwrap(),
            "Stores in Comunidad de Madrid"
        );
        let focused = browser
            .eval("return document.activeElement.id;", vec![])
            .await
            .unwrap();
        assert_eq!(focused, "back", "focus moves to the way back");
        // Both stores are drawn inside the map, zoomed to the region.
        browser
            .wait_until(
                "two markers",
                "document.querySelectorAll('#map path.store-marker').length === 2",
                WAIT,
            )
            .await
            .unwrap();
        let m = browser.eval(MARKERS, vec![]).await.unwrap();
        let map: Vec<f64> = serde_json::from_value(m["map"].clone()).unwrap();
        let boxes: Vec<Vec<f64>> = serde_json::from_value(m["markers"].clone()).unwrap();
        for b in &boxes {
            assert!(
                b[0] >= map[0] && b[1] >= map[1] && b[2] <= map[2] && b[3] <= map[3],
                "{viewport}: a marker outside the map: {m}"
            );
        }
        // Sol and Retiro are 1.6 km apart: zoomed so that both can be seen and pointed at.
        let apart = boxes[0][2] <= boxes[1][0]
            || boxes[1][2] <= boxes[0][0]
            || boxes[0][3] <= boxes[1][1]
            || boxes[1][3] <= boxes[0][1];
        assert!(apart, "{viewport}: the two stores' markers overlap: {m}");
        assert!(
            browser.url().await.unwrap().contains("region=ES-MD"),
            "the drill-down is in the address (shareable)"
        );
        browser.screenshot(&shot("03-madrid")).await.unwrap();
        check_page(&browser, &format!("{viewport} Madrid")).await;

        // Back, then the Canary Islands: their store is drawn in the framed box.
        browser.click("#back").await.unwrap();
        wait_rows(
            &browser,
            "back to the regions",
            &[
                ("Comunidad de Madrid", "6.0 min"),
                ("Andalucía", "1.0 min"),
                ("Canarias", "no data"),
            ],
        )
        .await;
        if i == 0 {
            browser
                .click("button[aria-label='Show the stores of Canarias']")
                .await
                .unwrap();
            wait_rows(
                &browser,
                "Canarias' store",
                &[("Tienda Vegueta", "no data")],
            )
            .await;
            browser
                .wait_until(
                    "the Canary store's marker",
                    "document.querySelectorAll('#map path.store-marker').length === 1",
                    WAIT,
                )
                .await
                .unwrap();
            browser.screenshot(&shot("04-canarias")).await.unwrap();
        }
        browser.close().await.unwrap();
    }

    // Without a session the page sends the browser to the login; the API refuses.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{base}/dashboard/map"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/dashboard");
    let api = client
        .get(format!("{base}/dashboard/api/map"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
