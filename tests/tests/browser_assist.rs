//! "Call an assistant" in a real browser (headless Chromium through chromedriver), on a demo
//! store of two kiosks, at the Pi display's 800x480, a portrait 1080x1920 and a full-HD
//! 1920x1080:
//!
//! - on kiosk 1's attract and service screens the button is in view, uncovered, its label whole
//!   and at least 48x48 CSS px, and axe-core finds no critical or serious violation;
//! - a touch on it tells the customer staff were called, and kiosk 2's counter page shows the
//!   call (the place, how long ago, a flashing frame, a spoken alert) with no critical or serious
//!   axe violation; "On my way" there clears it and kiosk 1's screen says someone is coming.
//!
//! Screenshots of every step under `<target dir>/artifacts/assist-<size>-*`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::PathBuf;

use kiosk::demo::{DEMO_PIN, DemoOptions};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::{Value, json};

const PORTRAIT: Viewport = Viewport {
    width: 1080,
    height: 1920,
};

/// The button's smallest size: the top bar's tools are 48 px tall; a finger needs 44.
const MIN_BUTTON: f64 = 48.0;

/// Where the button is and what is wrong with it: out of view, covered, too small, label cut.
const BUTTON_PROBLEMS: &str = r#"
const min = arguments[0];
const b = document.getElementById('assist');
if (!b) return { problems: ['no call-an-assistant button'] };
const r = b.getBoundingClientRect();
const vw = window.innerWidth, vh = window.innerHeight;
const bad = [];
if (b.getClientRects().length === 0 || getComputedStyle(b).visibility === 'hidden') bad.push('hidden');
if (r.width < min || r.height < min) bad.push(`${Math.round(r.width)}x${Math.round(r.height)} px`);
if (r.left < 0 || r.top < 0 || r.right > vw || r.bottom > vh) bad.push(`out of view: ${JSON.stringify(r)}`);
const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
if (!(hit && (hit === b || b.contains(hit)))) bad.push(`covered by ${hit ? hit.outerHTML.slice(0, 80) : 'nothing'}`);
if (b.scrollWidth > b.clientWidth + 1) bad.push(`label cut (${b.scrollWidth}px in ${b.clientWidth}px)`);
const de = document.documentElement;
if (de.scrollWidth > vw || de.scrollHeight > vh) bad.push('the page scrolls');
return { problems: bad, label: b.textContent.trim(), width: r.width, height: r.height };
"#;

const AXE_RUN: &str = r#"
return axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
  .filter((v) => v.impact === 'critical' || v.impact === 'serious')
  .map((v) => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.slice(0, 4)
    .map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 240)).join(' | ')));
"#;

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

async fn axe_clean(b: &Browser, axe: &str, what: &str) {
    let loaded = b
        .eval("return typeof window.axe === 'object';", vec![])
        .await
        .expect("axe probe");
    if loaded != json!(true) {
        b.eval(&format!("{axe}\nreturn true;"), vec![])
            .await
            .expect("axe-core injected");
    }
    let violations = b.eval(AXE_RUN, vec![]).await.expect("axe.run");
    assert_eq!(
        violations,
        json!([]),
        "axe-core: critical or serious violations on {what} at {}",
        b.viewport()
    );
}

async fn button_ok(b: &Browser, what: &str) -> Value {
    let probe = b
        .eval(BUTTON_PROBLEMS, vec![json!(MIN_BUTTON)])
        .await
        .expect("button probe");
    assert_eq!(
        probe["problems"],
        json!([]),
        "the call-an-assistant button on {what} at {}: {probe}",
        b.viewport()
    );
    probe
}

async fn assist_at(viewport: Viewport) {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = kiosk::demo::start(DemoOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        kiosks: 2,
        browse_point: false,
    })
    .await
    .expect("the demo starts");
    let axe = axe_source();
    let size = viewport.to_string();
    let b = Browser::launch(viewport)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let shot = |name: &str| format!("assist-{size}-{name}");

    b.goto(&format!("http://{}/", demo.kiosk.ui_addr))
        .await
        .expect("kiosk screen");
    b.wait_for_screen("attract").await.expect("attract");
    let probe = button_ok(&b, "the attract screen").await;
    assert_eq!(probe["label"], "Llamar a un asistente", "{probe}");
    b.screenshot(&shot("1-attract")).await.expect("screenshot");
    axe_clean(&b, &axe, "the attract screen").await;
    b.click("[data-action=start]").await.expect("start");
    b.wait_for_screen("choose_service").await.expect("services");
    button_ok(&b, "the service screen").await;

    // The customer is stuck choosing: they call for help. The screen stays and says so.
    b.click("[data-testid=assist]").await.expect("call");
    b.wait_for_text("#notice-slot", "avisado al personal", WAIT)
        .await
        .expect("the kiosk says staff were called");
    b.wait_for_text("[data-testid=assist]", "Asistente avisado", WAIT)
        .await
        .expect("the button shows the call");
    b.wait_for_screen("choose_service")
        .await
        .expect("same screen");
    button_ok(&b, "the service screen with a call open").await;
    b.screenshot(&shot("2-called")).await.expect("screenshot");
    axe_clean(&b, &axe, "the service screen with a call open").await;
    let kiosk_window = b.client().window().await.expect("window");

    // Kiosk 2's counter page.
    let k2 = demo.kiosk_number(2).expect("kiosk 2");
    b.open_window().await.expect("counter window");
    b.goto(&format!("http://{}/counter", k2.staff_addr))
        .await
        .expect("counter");
    b.wait_for("#pin", WAIT).await.expect("PIN form");
    b.type_into("#pin", DEMO_PIN).await.expect("PIN");
    b.click("button[type=submit]").await.expect("log in");
    b.wait_until(
        "the call on kiosk 2's counter page",
        // The login's answer may still be on screen (no card yet): wait for the counter page.
        "document.getElementById('assist-card') !== null && !document.getElementById('assist-card').hidden && document.querySelectorAll('[data-testid=assist-call]').length === 1",
        WAIT,
    )
    .await
    .expect("the call shows");
    let text = b.text("#assist-card").await.expect("call text");
    assert!(
        text.contains("Quiosco") && text.contains("hace") && text.contains("ago"),
        "place and how long ago: {text:?}"
    );
    let live = b.text("#assist-live").await.unwrap_or_default();
    let live = if live.is_empty() {
        b.eval(
            "return document.getElementById('assist-live').textContent;",
            vec![],
        )
        .await
        .expect("live region")
        .as_str()
        .unwrap_or_default()
        .to_owned()
    } else {
        live
    };
    assert!(
        live.contains("Piden ayuda"),
        "said to screen readers: {live:?}"
    );
    b.screenshot(&shot("3-counter-alert"))
        .await
        .expect("screenshot");
    axe_clean(&b, &axe, "the counter page with a call").await;
    b.click("[data-action=acknowledge_assistance]")
        .await
        .expect("on my way");
    b.wait_until(
        "the call gone from the counter page",
        "document.getElementById('assist-card').hidden",
        WAIT,
    )
    .await
    .expect("the call is taken");
    b.screenshot(&shot("4-counter-taken"))
        .await
        .expect("screenshot");

    b.switch_to(kiosk_window).await.expect("kiosk");
    b.wait_for_text("#notice-slot", "viene hacia aquí", WAIT)
        .await
        .expect("the kiosk says someone is coming");
    b.wait_for_text("[data-testid=assist]", "Llamar a un asistente", WAIT)
        .await
        .expect("the button is free again");
    b.screenshot(&shot("5-coming")).await.expect("screenshot");
    b.close().await.expect("browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_call_is_usable_and_accessible_on_the_pi_display() {
    assist_at(Viewport::PI_DISPLAY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_call_is_usable_and_accessible_on_a_portrait_screen() {
    assist_at(PORTRAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_call_is_usable_and_accessible_on_a_full_hd_screen() {
    assist_at(Viewport::FULL_HD).await;
}
