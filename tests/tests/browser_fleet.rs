//! The dashboard's fleet view (issue 20) in a real browser (headless Chromium) at 1920x1080:
//! four stores of a real endpoint whose kiosks sent real signed batches (a printer out of
//! paper, a clock five minutes behind) or went quiet; the alerts evaluated as `serve` does;
//! after logging in with the admin token, the store manager sees every store worst first
//! (critical alerts, then warnings, then the healthy), each alert named in words with how long
//! it has lasted, the page fitting the screen and axe-core finding no critical or serious
//! violation. Screenshots go to `<target dir>/artifacts/`.
//!
//! The same page shows each firmware release's rollout: assigned, downloaded, installed,
//! healthy, rolled back and pinned kiosks as the CRM recorded them from the kiosks' own requests
//! and events, a rollout halted by a rollback with its reason, and a change (a pin) reaching the
//! open page without a reload; at 1920x1080, 1366x768 and a 390x844 phone, each fitting its
//! window, readable, and clean under axe-core.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::PathBuf;

use crm_endpoint::db::releases::{NewRelease, Pin, ReleaseAsk, Rollout};
use crm_endpoint::db::{NewKiosk, StoreRecord};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use kiosk_protocol::events::{Envelope, Event};
use kiosk_protocol::release::{ReleaseManifest, ReleaseSigningKey};
use kiosk_protocol::wire::{DeviceSecret, KioskClock};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

const ADMIN: &str = "fleet-view-admin-token-of-at-least-32-characters";
const MIN: i64 = 60_000;

const AXE_RUN: &str = r#"
return axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
  .filter((v) => v.impact === 'critical' || v.impact === 'serious')
  .map((v) => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.slice(0, 4)
    .map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 240)).join(' | ')));
"#;

/// The rows as the manager sees them: store id, badge text, alert lines, whether the row is
/// visible and the page wider than the window.
const ROWS: &str = r#"
const rows = [...document.querySelectorAll('#fleet-rows tr')].map((tr) => {
  const r = tr.getBoundingClientRect();
  return {
    store: tr.dataset.store,
    badge: tr.querySelector('.badge').innerText,
    alerts: [...tr.querySelectorAll('.fleet-alerts li')].map((li) => li.innerText),
    visible: r.width > 0 && r.height > 0 && getComputedStyle(tr).visibility !== 'hidden',
  };
});
return { rows, wide: document.documentElement.scrollWidth > window.innerWidth };
"#;

/// The rollout rows as the manager reads them: release, state text, the counts by key, whether
/// every cell shows whole, the smallest text, and whether the page is wider than the window.
const ROLLOUTS: &str = r#"
const rows = [...document.querySelectorAll('#rollout-rows tr')].map((tr) => {
  const cells = [...tr.querySelectorAll('th, td')];
  const counts = {};
  for (const td of tr.querySelectorAll('td[data-count]')) counts[td.dataset.count] = Number(td.innerText.replace(/[^0-9]/g, ''));
  return {
    release: tr.dataset.release,
    state: tr.querySelector('.rollout-state').innerText.trim(),
    counts,
    whole: cells.every((c) => { const r = c.getBoundingClientRect(); return r.width > 0 && r.height > 0 && r.right <= window.innerWidth + 0.5 && c.scrollWidth <= c.clientWidth + 1; }),
    smallest: Math.min(...cells.map((c) => parseFloat(getComputedStyle(c).fontSize))),
  };
});
return { rows, wide: document.documentElement.scrollWidth > window.innerWidth };
"#;

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

fn axe_source() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run scripts/test-setup (npm ci in tests/axe installs the pinned axe-core)",
            path.display()
        )
    })
}

/// Posts one signed batch of `events` as kiosk `id` (secret `[n; 32]`), its clock `off_ms`
/// behind.
async fn post(base: &str, id: &str, n: u8, events: Vec<Value>, off_ms: i64) {
    let wall = OffsetDateTime::now_utc() - time::Duration::milliseconds(off_ms);
    let boot = Uuid::now_v7();
    let envs: Vec<Envelope> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| Envelope {
            id: Uuid::now_v7(),
            kiosk_id: id.into(),
            seq: i as u64 + 1,
            boot_id: boot,
            wall_time: wall,
            mono_ms: 100 + i as u64,
            schema_version: 1,
            event: serde_json::from_value::<Event>(e).unwrap(),
        })
        .collect();
    let clock = KioskClock {
        wall_time: wall,
        mono_ms: 1000,
        boot_id: boot,
    };
    kiosk_e2e::crm::post_batch(
        base,
        id,
        &DeviceSecret::from_bytes([n; 32]),
        clock,
        envs,
        OffsetDateTime::now_utc().unix_timestamp(),
    )
    .await;
}

fn firmware(version: &str, result: &str) -> Value {
    json!({ "type": "firmware_updated", "payload": {
        "version": version, "previous": "0.1.0", "result": result,
        "reason": (result != "installed").then_some("its self-test failed: printer: absent") } })
}

async fn login(browser: &Browser, base: &str) {
    browser
        .goto(&format!("{base}/dashboard/fleet"))
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
        .goto(&format!("{base}/dashboard/fleet"))
        .await
        .unwrap();
}

/// Checks the rollout view as the manager sees it at this browser's size; returns its rows.
async fn rollouts_seen(browser: &Browser, shot: &str) -> Value {
    browser
        .wait_until(
            "the rollout rows",
            "document.querySelectorAll('#rollout-rows tr').length === 2",
            WAIT,
        )
        .await
        .expect("two releases");
    browser
        .eval(
            "document.getElementById('h-rollouts').scrollIntoView(); return true;",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot(shot).await.unwrap();
    let seen = browser.eval(ROLLOUTS, vec![]).await.unwrap();
    let size = browser.viewport();
    assert_eq!(seen["wide"], json!(false), "the page fits {size}: {seen}");
    for r in seen["rows"].as_array().unwrap() {
        assert_eq!(r["whole"], json!(true), "a cell is cut at {size}: {r}");
        assert!(
            r["smallest"].as_f64().unwrap() >= 13.0,
            "text under 13 px at {size}: {r}"
        );
    }
    let axe = browser.axe_violations().await.expect("axe");
    assert!(
        axe.is_empty(),
        "axe-core on the fleet view at {size}: {axe:?}"
    );
    seen
}

fn row<'a>(seen: &'a Value, release: &str) -> &'a Value {
    seen["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["release"] == release)
        .unwrap_or_else(|| panic!("no row of {release}: {seen}"))
}

fn printer(status: &str, reason: Option<&str>) -> Value {
    json!({ "type": "device_status_changed", "payload": {
        "device": "printer", "status": status, "reason": reason } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_view_lists_every_store_worst_first_with_its_alerts_in_words() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = crm_endpoint::db::open(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    let now = now_ms();
    let kiosks = [
        ("centro", "Tienda Centro", "centro-1", 1u8),
        ("centro", "Tienda Centro", "centro-2", 2),
        ("norte", "Tienda Norte", "norte-1", 3),
        ("sur", "Tienda Sur", "sur-1", 4),
        ("este", "Tienda Este", "este-1", 5),
    ];
    for (store, name, kiosk, n) in kiosks {
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

    // centro-1's printer runs out of paper; norte-1's clock is five minutes behind; centro-2
    // and sur-1 went quiet half an hour ago; este-1 is fine.
    post(
        &base,
        "centro-1",
        1,
        vec![printer("absent", Some("paper out; load a new roll"))],
        0,
    )
    .await;
    post(&base, "norte-1", 3, vec![printer("ok", None)], 5 * MIN).await;
    post(&base, "este-1", 5, vec![printer("ok", None)], 0).await;
    for quiet in ["centro-2", "sur-1"] {
        db.touch_kiosk(quiet.into(), now_ms() - 30 * MIN)
            .await
            .unwrap();
    }
    // Evaluated as serve does, eleven minutes on: the printer has been out for ten.
    let at = now_ms() + 11 * MIN;
    let changes = crm_endpoint::alerts::evaluate(&db, at).await.unwrap();
    assert_eq!(changes.opened.len(), 4, "{changes:?}");

    let browser = Browser::launch(Viewport::FULL_HD).await.expect("chromium");
    browser
        .goto(&format!("{base}/dashboard/fleet"))
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
        .click("a[href='/dashboard/fleet']")
        .await
        .expect("the fleet link");
    browser
        .wait_until(
            "the fleet's rows",
            "document.querySelectorAll('#fleet-rows tr').length === 4",
            WAIT,
        )
        .await
        .expect("four stores");
    browser
        .screenshot("fleet-1920x1080-01-worst-first")
        .await
        .unwrap();

    let seen = browser.eval(ROWS, vec![]).await.unwrap();
    assert_eq!(seen["wide"], json!(false), "the page fits 1920 px: {seen}");
    let rows = seen["rows"].as_array().unwrap();
    let order: Vec<&str> = rows.iter().map(|r| r["store"].as_str().unwrap()).collect();
    assert_eq!(order, ["centro", "sur", "norte", "este"], "{seen}");
    let badges: Vec<&str> = rows.iter().map(|r| r["badge"].as_str().unwrap()).collect();
    assert_eq!(badges, ["Critical", "Critical", "Warning", "OK"]);
    assert!(rows.iter().all(|r| r["visible"] == json!(true)), "{seen}");
    let lines = |i: usize| -> Vec<String> {
        rows[i]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect()
    };
    let centro = lines(0);
    assert_eq!(centro.len(), 2, "{centro:?}");
    assert!(
        centro.iter().any(|l| l
            .starts_with("Printer out of paper: the printer of kiosk centro-1 is out of paper")),
        "{centro:?}"
    );
    assert!(
        centro
            .iter()
            .any(|l| l.starts_with("Kiosk offline: kiosk centro-2 not seen for 41 minutes")),
        "{centro:?}"
    );
    assert!(
        lines(1)[0].starts_with("Kiosk offline: kiosk sur-1"),
        "{:?}",
        lines(1)
    );
    assert!(
        lines(2)[0].starts_with("Clock wrong: kiosk norte-1's clock is 300 s off"),
        "{:?}",
        lines(2)
    );
    assert_eq!(lines(3), ["Nothing to report"]);
    assert_eq!(browser.text("#kpi-alerts").await.unwrap(), "4");
    assert_eq!(browser.text("#kpi-critical").await.unwrap(), "2");

    // The paper loaded: at the next evaluation the alert resolves and the page, refreshed,
    // shows it gone.
    post(&base, "centro-1", 1, vec![printer("ok", None)], 0).await;
    let changes = crm_endpoint::alerts::evaluate(&db, at + MIN).await.unwrap();
    assert_eq!(changes.resolved.len(), 1, "{changes:?}");
    browser
        .goto(&format!("{base}/dashboard/fleet"))
        .await
        .unwrap();
    browser
        .wait_until(
            "the paper alert gone",
            "document.getElementById('kpi-alerts').textContent === '3'",
            WAIT,
        )
        .await
        .expect("three alerts left");
    browser
        .screenshot("fleet-1920x1080-02-paper-loaded")
        .await
        .unwrap();

    let axe = axe_source();
    browser
        .eval(&format!("{axe}\nreturn true;"), vec![])
        .await
        .expect("axe-core injected");
    let violations = browser.eval(AXE_RUN, vec![]).await.expect("axe.run");
    assert_eq!(violations, json!([]), "axe-core on the fleet view");

    // ---- Firmware rollouts ---------------------------------------------------------------
    // Two signed releases; 0.2.0-1 rolled out to every kiosk, halting at the first failure.
    let key = ReleaseSigningKey::generate();
    for (i, v) in ["0.2.0-1", "0.3.0-1"].into_iter().enumerate() {
        let package = vec![u8::try_from(i).unwrap(); 4096];
        db.put_release(NewRelease {
            signed: ReleaseManifest::of_package(v, "arm64", package.as_slice())
                .unwrap()
                .sign(&key),
            package,
            uploaded_ms: now + i64::try_from(i).unwrap(),
        })
        .await
        .unwrap();
    }
    db.set_rollout(
        Rollout {
            version: "0.2.0-1".into(),
            store_id: None,
            percent: 100,
            max_failures: 1,
            halted_ms: None,
            halted_reason: None,
        },
        now,
    )
    .await
    .unwrap();
    // What the kiosks told the CRM: centro-1 holds it downloaded, norte-1 installed it and runs
    // it, sur-1 rolled it back, este-1 is pinned to it. The next kiosk to ask halts it.
    let ask = |kiosk: &str, store: &str, running: &str, downloaded: Option<&str>| ReleaseAsk {
        kiosk_id: kiosk.into(),
        store_id: store.into(),
        arch: "arm64".into(),
        running: running.into(),
        downloaded: downloaded.map(str::to_owned),
        now_ms: now_ms(),
    };
    db.release_for_kiosk(ask("centro-1", "centro", "0.1.0", Some("0.2.0-1")))
        .await
        .unwrap();
    post(
        &base,
        "norte-1",
        3,
        vec![firmware("0.2.0-1", "installed")],
        5 * MIN,
    )
    .await;
    db.release_for_kiosk(ask("norte-1", "norte", "0.2.0-1", None))
        .await
        .unwrap();
    post(
        &base,
        "sur-1",
        4,
        vec![firmware("0.2.0-1", "rolled_back")],
        0,
    )
    .await;
    db.pin_kiosk(
        "este-1".into(),
        Some(Pin {
            version: "0.2.0-1".into(),
            signed: None,
        }),
        now_ms(),
    )
    .await
    .unwrap();
    let halted = db
        .release_for_kiosk(ask("centro-2", "centro", "0.1.0", None))
        .await
        .unwrap();
    assert_eq!(halted.release, None, "a halted rollout still offered");

    // The open page shows it at its next refresh, without a reload.
    browser
        .wait_until(
            "the rollouts",
            "document.querySelectorAll('#rollout-rows tr').length === 2",
            WAIT,
        )
        .await
        .expect("the rollouts reach the open page");
    let seen = rollouts_seen(&browser, "fleet-1920x1080-03-rollouts").await;
    let r2 = row(&seen, "0.2.0-1");
    assert!(
        r2["state"]
            .as_str()
            .unwrap()
            .starts_with("Halted 0 min ago: 1 kiosks rolled back or refused it (threshold 1)."),
        "{r2}"
    );
    assert!(
        r2["state"]
            .as_str()
            .unwrap()
            .contains("100 % of every store, halts after 1 failed"),
        "{r2}"
    );
    assert_eq!(
        r2["counts"],
        json!({ "assigned": 5, "downloaded": 1, "installed": 1, "healthy": 1,
                "rolled_back": 1, "pinned": 1 }),
        "{r2}"
    );
    let r3 = row(&seen, "0.3.0-1");
    assert_eq!(r3["state"], "Not rolled out", "{r3}");
    assert_eq!(
        r3["counts"],
        json!({ "assigned": 0, "downloaded": 0, "installed": 0, "healthy": 0,
                "rolled_back": 0, "pinned": 0 })
    );

    // Live: centro-2 pinned to 0.3.0-1 while the page is open.
    db.pin_kiosk(
        "centro-2".into(),
        Some(Pin {
            version: "0.3.0-1".into(),
            signed: None,
        }),
        now_ms(),
    )
    .await
    .unwrap();
    browser
        .wait_until(
            "the pin on the open page",
            "(() => { const c = document.querySelector('tr[data-release=\"0.3.0-1\"] td[data-count=pinned]'); return c && c.innerText.trim() === '1'; })()",
            WAIT,
        )
        .await
        .expect("the pin reaches the open page without a reload");
    let seen = rollouts_seen(&browser, "fleet-1920x1080-04-rollouts-live").await;
    assert_eq!(row(&seen, "0.3.0-1")["counts"]["assigned"], 1, "{seen}");
    assert_eq!(row(&seen, "0.2.0-1")["counts"]["assigned"], 4, "{seen}");
    browser.close().await.unwrap();

    // A laptop and a phone: the same figures, fitting the window.
    for (size, name) in [
        (
            Viewport {
                width: 1366,
                height: 768,
            },
            "1366x768",
        ),
        (
            Viewport {
                width: 390,
                height: 844,
            },
            "390x844",
        ),
    ] {
        let browser = Browser::launch(size).await.expect("chromium");
        login(&browser, &base).await;
        let seen = rollouts_seen(&browser, &format!("fleet-{name}-rollouts")).await;
        assert_eq!(row(&seen, "0.2.0-1")["counts"]["rolled_back"], 1, "{seen}");
        assert!(
            row(&seen, "0.2.0-1")["state"]
                .as_str()
                .unwrap()
                .starts_with("Halted"),
            "{seen}"
        );
        browser.close().await.unwrap();
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
