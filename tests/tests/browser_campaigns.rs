//! The console's campaigns page (issue 21 item 2) in a real browser (headless Chromium), on the
//! demo store (a real kiosk on simulated hardware syncing with the embedded CRM endpoint): the
//! manager logs in, edits the VIP coffee campaign through the form (typing at a person's pace):
//! variant a off, a new variant b with its own text; the kiosk gets it through its feed and
//! greets the VIP customer with variant b's text; the exposure shows up on the page by itself. A
//! form that breaks a rule is refused with the rule named and nothing saved; a picture chosen
//! from a file (one that is not what its name says refused with the rule named) and the coupon's
//! rules are saved through the form, and the kiosk's greeting and goodbye show the picture at
//! 800x480, 1080x1920 and 1920x1080 with every control in view, the first turn's coupon with its
//! last day and none after it (one per card holder); a pause shows as such; the changes are in
//! the audit log. At the three sizes every console control can be brought into view and is large
//! enough, and axe-core finds no critical or serious violation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::Duration;

use crm_endpoint::accounts::Role;
use kiosk::demo::DemoOptions;
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::json;

const PORTRAIT: Viewport = Viewport {
    width: 1080,
    height: 1920,
};
/// WCAG 2.2's minimum target size (2.5.8).
const MIN_TARGET: f64 = 24.0;
const VIP: &str = "[data-campaign=demo-vip-coffee]";
const NEW_TEXT: &str = "Dos cafés para usted hoy";

async fn check_page(browser: &Browser, label: &str) {
    let problems = browser.reachability_problems(MIN_TARGET).await.unwrap();
    assert!(problems.is_empty(), "{label}: controls: {problems:?}");
    let violations = browser.axe_violations().await.expect("axe.run");
    assert!(violations.is_empty(), "{label}: axe-core: {violations:?}");
}

/// Checks the editor (`label`), saves its screenshot as `shot`, saves the form and waits until
/// `saved` (a JavaScript expression) holds.
async fn check_and_save(browser: &Browser, label: &str, shot: &str, saved: &str) {
    check_page(browser, label).await;
    browser.screenshot(shot).await.unwrap();
    browser.click("#save").await.unwrap();
    browser
        .wait_until("the form saved", saved, WAIT)
        .await
        .expect("saved");
}

/// Replaces the value of input `css` by typing `text` (cleared first).
async fn retype(browser: &Browser, css: &str, text: &str) {
    browser
        .eval(
            "document.querySelector(arguments[0]).value = ''; return true;",
            vec![json!(css)],
        )
        .await
        .unwrap();
    browser.type_into(css, text).await.unwrap();
}

/// Logs in as the demo's HQ admin (campaign edits are HQ admins').
async fn log_in(browser: &Browser, crm: &str, accounts: &[crm_endpoint::DemoAccount]) {
    log_in_as(browser, crm, accounts, Role::HqAdmin).await;
}

/// Logs in as the demo's account of `role` and opens the campaigns page.
async fn log_in_as(
    browser: &Browser,
    crm: &str,
    accounts: &[crm_endpoint::DemoAccount],
    role: Role,
) {
    let hq = accounts
        .iter()
        .find(|a| a.role == role)
        .expect("the demo's account of the role");
    browser
        .goto(&format!("{crm}/dashboard/campaigns"))
        .await
        .unwrap();
    browser
        .log_in_dashboard(&hq.name, &hq.password)
        .await
        .expect("log in");
    browser
        .wait_for("#kpi-tickets", WAIT)
        .await
        .expect("logged in");
    browser
        .goto(&format!("{crm}/dashboard/campaigns"))
        .await
        .unwrap();
    browser
        .wait_for(&format!("{VIP} tbody tr"), WAIT)
        .await
        .expect("the VIP campaign listed");
}

/// `GET path` of the demo CRM's admin API, as JSON.
async fn admin_get(
    http: &reqwest::Client,
    demo: &kiosk::demo::Demo,
    path: &str,
) -> serde_json::Value {
    http.get(format!("http://{}{path}", demo.crm_addr))
        .header("x-admin-token", &demo.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The VIP coffee campaign as the CRM stores it (the admin API).
async fn stored_vip(http: &reqwest::Client, demo: &kiosk::demo::Demo) -> serde_json::Value {
    admin_get(http, demo, "/v1/admin/campaigns")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "demo-vip-coffee")
        .unwrap()
        .clone()
}

/// The coffee picture of the campaign (a JPEG, 600x400).
fn picture_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/campaign-coffee.jpg")
}

/// In the open console window: a file that is not the picture its name says is refused by the
/// CRM with the rule named; the real picture is previewed, described in both languages and
/// saved with the coupon's rules (valid 7 days, one per card holder); the kiosk's feed brings
/// them.
async fn picture_and_coupon_rules_through_the_form(
    browser: &Browser,
    demo: &kiosk::demo::Demo,
    http: &reqwest::Client,
) {
    browser
        .click("button[aria-label='Edit Café VIP']")
        .await
        .unwrap();
    browser.wait_for("#f-variants tr", WAIT).await.unwrap();
    let fake = tempfile::Builder::new()
        .prefix("not-a-picture")
        .suffix(".png")
        .tempfile()
        .unwrap();
    std::fs::write(fake.path(), "a text file named like a picture").unwrap();
    browser
        .type_into("#f-image", fake.path().to_str().unwrap())
        .await
        .unwrap();
    browser
        .wait_until(
            "the preview",
            "!document.getElementById('f-image-preview').hidden",
            WAIT,
        )
        .await
        .unwrap();
    retype(browser, "#f-image-alt-es", "Una taza de café con leche").await;
    retype(browser, "#f-image-alt-en", "A cup of white coffee").await;
    browser.click("#save").await.unwrap();
    let error = browser
        .wait_for_text("#form-error", "image.data: not a image/png picture", WAIT)
        .await
        .expect("the picture refused, the rule named");
    assert!(error.starts_with("Not saved"), "{error}");

    // Removed, then the real one.
    browser.click("#f-image-remove").await.unwrap();
    browser
        .wait_until(
            "no picture",
            "document.getElementById('f-image-preview').hidden && \
             !document.getElementById('f-image-none').hidden",
            WAIT,
        )
        .await
        .unwrap();
    browser
        .type_into("#f-image", picture_file().to_str().unwrap())
        .await
        .unwrap();
    browser
        .wait_until(
            "the picture previewed",
            "(() => { const i = document.getElementById('f-image-preview'); \
               return !i.hidden && i.complete && i.naturalWidth === 600; })()",
            WAIT,
        )
        .await
        .expect("the preview of the chosen file");
    assert!(
        browser
            .eval(
                "return document.getElementById('f-coupon').checked;",
                vec![]
            )
            .await
            .unwrap()
            .as_bool()
            .unwrap(),
        "the campaign's coupon is in the form"
    );
    retype(browser, "#f-coupon-days", "7").await;
    retype(browser, "#f-coupon-max", "1").await;
    check_and_save(
        browser,
        "1920x1080 editor with a picture",
        "campaigns-1920x1080-05-picture-and-coupon",
        "document.getElementById('editor').hidden",
    )
    .await;
    let rules = browser.text(&format!("{VIP} .rules")).await.unwrap();
    assert!(
        rules.contains("valid 7 days after issue")
            && rules.contains("at most 1 per card holder")
            && rules.contains("with a picture"),
        "{rules}"
    );
    let vip = stored_vip(http, demo).await;
    assert_eq!(vip["image"]["mime"], "image/jpeg");
    assert_eq!(vip["image"]["alt"]["en"], "A cup of white coffee");
    assert_eq!(vip["coupon"]["valid_days"], 7);
    assert_eq!(vip["coupon"]["max_per_customer"], 1);
    assert_eq!(vip["coupon"]["code"], "CAFE", "kept as it was");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !demo.kiosk.db.campaigns().unwrap().iter().any(|c| {
        c.id == "demo-vip-coffee"
            && c.image.is_some()
            && c.coupon
                .as_ref()
                .is_some_and(|cp| cp.max_per_customer == Some(1))
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed never brought the picture"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The kiosk's `screen` with its picture: every control in view, whole and at least 44 px, and
/// axe-core clean; saved as `campaigns-kiosk-<size>-<screen>-picture`.
async fn kiosk_screen_usable(b: &Browser, screen: &str) {
    let viewport = b.viewport();
    let problems = b.usability_problems(44.0).await.unwrap();
    assert!(problems.is_empty(), "{viewport} {screen}: {problems:?}");
    let violations = b.axe_violations().await.expect("axe.run");
    assert!(
        violations.is_empty(),
        "{viewport} {screen}: axe-core: {violations:?}"
    );
    b.screenshot(&format!("campaigns-kiosk-{viewport}-{screen}-picture"))
        .await
        .unwrap();
}

/// The VIP customer taps their card at the kiosk's screen in a browser of `viewport`: the
/// greeting shows the campaign's picture, loaded, inside the screen, named by its text, with
/// every control in view; their turn's goodbye shows it as a thumbnail, with the coupon and its
/// last day when `coupon`, without one otherwise.
async fn kiosk_shows_the_picture(
    demo: &kiosk::demo::Demo,
    http: &reqwest::Client,
    viewport: Viewport,
    coupon: bool,
) {
    let panel = |body: serde_json::Value| {
        http.post(format!("http://{}/api/card", demo.panel_addr))
            .json(&body)
            .send()
    };
    let b = Browser::launch(viewport).await.expect("chromium");
    b.goto(&format!("http://{}/", demo.kiosk.ui_addr))
        .await
        .unwrap();
    b.wait_for_screen("attract").await.expect("attract");
    assert!(
        panel(json!({"action": "customer", "index": 0}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    b.wait_for_screen("greeting").await.expect("greeting");
    panel(json!({"action": "remove"})).await.unwrap();
    let shown = b
        .wait_until(
            "the campaign's picture loaded",
            "(() => { const i = document.querySelector('#app img.campaign-picture'); \
               if (!i || !i.complete || i.naturalWidth === 0) return false; \
               const r = i.getBoundingClientRect(); \
               return { alt: i.alt, top: r.top, bottom: r.bottom, left: r.left, right: r.right, \
                        height: r.height, w: innerWidth, h: innerHeight }; })()",
            WAIT,
        )
        .await
        .expect("the picture on the greeting");
    assert_eq!(shown["alt"], "Una taza de café con leche", "{viewport}");
    let (top, bottom) = (
        shown["top"].as_f64().unwrap(),
        shown["bottom"].as_f64().unwrap(),
    );
    assert!(
        top >= 0.0
            && bottom <= shown["h"].as_f64().unwrap()
            && shown["right"].as_f64().unwrap() <= shown["w"].as_f64().unwrap(),
        "{viewport}: the picture inside the screen: {shown}"
    );
    assert!(
        shown["height"].as_f64().unwrap() >= 80.0,
        "{viewport}: a picture one can see: {shown}"
    );
    kiosk_screen_usable(&b, "greeting").await;

    b.click("#app button.primary").await.unwrap();
    b.wait_for_screen("choose_service").await.unwrap();
    b.click("#app .service button.main").await.unwrap();
    b.wait_for_screen("goodbye").await.unwrap();
    b.wait_until(
        "the thumbnail loaded",
        "(() => { const i = document.querySelector('#app .campaign img.thumb'); \
           return !!i && i.complete && i.naturalWidth > 0; })()",
        WAIT,
    )
    .await
    .expect("the picture on the goodbye");
    let has_coupon = b
        .eval("return !!document.querySelector('#app .coupon');", vec![])
        .await
        .unwrap();
    assert_eq!(
        has_coupon,
        json!(coupon),
        "{viewport}: one coupon per card holder"
    );
    if coupon {
        let text = b.text("#app .coupon").await.unwrap();
        assert!(text.contains("válido hasta el"), "{viewport}: {text}");
    }
    kiosk_screen_usable(&b, "goodbye").await;
    b.click("#app .actions button.primary").await.unwrap();
    b.wait_for_screen("attract").await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_edited_in_the_console_reaches_the_kiosk_and_its_results_update_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = kiosk::demo::start(DemoOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        kiosks: 1,
        browse_point: false,
    })
    .await
    .expect("the demo starts");
    let http = reqwest::Client::new();
    let crm = format!("http://{}", demo.crm_addr);

    let browser = Browser::launch(Viewport::FULL_HD).await.expect("chromium");
    log_in(&browser, &crm, &demo.accounts).await;
    assert_eq!(
        browser.text(&format!("{VIP} .pill")).await.unwrap(),
        "Running"
    );
    browser
        .screenshot("campaigns-1920x1080-01-list")
        .await
        .unwrap();
    check_page(&browser, "1920x1080 list").await;

    // A rule broken: the last day before the first. Refused, the rule named, nothing saved.
    browser
        .click("button[aria-label='Edit Café VIP']")
        .await
        .unwrap();
    browser.wait_for("#form", WAIT).await.unwrap();
    browser
        .eval(
            "document.getElementById('f-ends').value = '2019-01-01'; return true;",
            vec![],
        )
        .await
        .unwrap();
    browser.click("#save").await.unwrap();
    let error = browser
        .wait_for_text("#form-error", "ends_on is before starts_on", WAIT)
        .await
        .expect("the rule named");
    assert!(error.starts_with("Not saved"), "{error}");
    browser
        .screenshot("campaigns-1920x1080-02-refused")
        .await
        .unwrap();
    let vip = stored_vip(&http, &demo).await;
    assert_eq!(vip["ends_on"], "2099-12-31", "nothing saved");

    // The real change: dates back, variant a off, a variant b with its own text.
    browser.click("#cancel").await.unwrap();
    browser
        .click("button[aria-label='Edit Café VIP']")
        .await
        .unwrap();
    browser.wait_for("#f-variants tr", WAIT).await.unwrap();
    retype(&browser, "#f-variants tr:nth-child(1) .v-weight", "0").await;
    browser.click("#add-variant").await.unwrap();
    retype(&browser, "#f-variants tr:nth-child(2) .v-name", "b").await;
    retype(&browser, "#f-variants tr:nth-child(2) .v-weight", "1").await;
    browser
        .type_into("#f-variants tr:nth-child(2) .v-es", NEW_TEXT)
        .await
        .unwrap();
    browser
        .type_into(
            "#f-variants tr:nth-child(2) .v-en",
            "Two coffees for you today",
        )
        .await
        .unwrap();
    let typed = browser
        .eval(
            "return document.querySelector('#f-variants tr:nth-child(2) .v-es').value;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        typed,
        json!(NEW_TEXT),
        "typing at a person's pace keeps every character"
    );
    check_and_save(
        &browser,
        "1920x1080 editor",
        "campaigns-1920x1080-03-editor",
        "document.getElementById('editor').hidden && \
         !!document.querySelector('[data-campaign=demo-vip-coffee] tr[data-variant=b]')",
    )
    .await;

    // The kiosk gets it through its feed (every 5 s in the demo) and greets the VIP customer
    // (demo customer 0) with variant b.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let campaigns = demo.kiosk.db.campaigns().expect("campaign cache");
        if campaigns
            .iter()
            .any(|c| c.id == "demo-vip-coffee" && c.variants.iter().any(|v| v.name == "b"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed never brought the change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    while demo
        .kiosk
        .db
        .profile(&token)
        .expect("profile cache")
        .is_none()
    {
        assert!(tokio::time::Instant::now() < deadline + WAIT, "no profile");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A second window for the kiosk's screen; `open_window` answers the console's.
    let console = browser.open_window().await.unwrap();
    browser
        .goto(&format!("http://{}/", demo.kiosk.ui_addr))
        .await
        .unwrap();
    browser.wait_for_screen("attract").await.expect("attract");
    let res = http
        .post(format!("http://{}/api/card", demo.panel_addr))
        .json(&json!({"action": "customer", "index": 0}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    browser.wait_for_screen("greeting").await.expect("greeting");
    browser
        .wait_for_text("#app .campaign", NEW_TEXT, WAIT)
        .await
        .expect("the kiosk shows variant b's text");
    browser
        .screenshot("campaigns-kiosk-variant-b")
        .await
        .unwrap();
    // The customer takes the card back and leaves the greeting.
    http.post(format!("http://{}/api/card", demo.panel_addr))
        .json(&json!({"action": "remove"}))
        .send()
        .await
        .unwrap();
    browser
        .click("#app .actions button:not(.primary)")
        .await
        .unwrap();
    browser.wait_for_screen("attract").await.expect("attract");

    // Back at the console: the exposure arrives without a reload.
    browser.switch_to(console).await.unwrap();
    browser
        .wait_until(
            "variant b's exposure on the page",
            "(document.querySelector('[data-campaign=demo-vip-coffee] tr[data-variant=b] .exposures') || {}).textContent === '1'",
            Duration::from_secs(60),
        )
        .await
        .expect("the exposure shown live");
    let verdicts = browser.text(&format!("{VIP} .verdict")).await.unwrap();
    assert!(
        verdicts.contains("not enough data for the test yet"),
        "{verdicts}"
    );
    browser
        .screenshot("campaigns-1920x1080-04-live")
        .await
        .unwrap();

    picture_and_coupon_rules_through_the_form(&browser, &demo, &http).await;
    // The kiosk shows the picture (with the greeting's controls in view) at every size; the
    // first turn, at the Pi display, gets the coupon with its last day, the next ones none
    // (one per card holder).
    for (viewport, coupon) in [
        (Viewport::PI_DISPLAY, true),
        (PORTRAIT, false),
        (Viewport::FULL_HD, false),
    ] {
        kiosk_shows_the_picture(&demo, &http, viewport, coupon).await;
    }

    // Pause.
    browser
        .click("button[aria-label='Pause Café VIP']")
        .await
        .unwrap();
    browser
        .wait_for_text(&format!("{VIP} .pill"), "Paused", WAIT)
        .await
        .expect("paused");
    let audit = admin_get(&http, &demo, "/v1/admin/audit").await;
    let changes = audit.to_string().matches("campaign_changed").count();
    assert!(changes >= 2, "the edit and the pause are audited: {audit}");
    browser.close().await.unwrap();

    // The other sizes: the list and the editor fit and are accessible.
    for viewport in [Viewport::PI_DISPLAY, PORTRAIT] {
        let b = Browser::launch(viewport).await.expect("chromium");
        log_in(&b, &crm, &demo.accounts).await;
        b.screenshot(&format!("campaigns-{viewport}-01-list"))
            .await
            .unwrap();
        check_page(&b, &format!("{viewport} list")).await;
        b.click("button[aria-label='Edit Café VIP']").await.unwrap();
        b.wait_for("#f-variants tr", WAIT).await.unwrap();
        b.screenshot(&format!("campaigns-{viewport}-02-editor"))
            .await
            .unwrap();
        check_page(&b, &format!("{viewport} editor")).await;
        b.close().await.unwrap();
    }

    // A store manager reads the results and is told who edits: no edit controls.
    let b = Browser::launch(Viewport::PI_DISPLAY)
        .await
        .expect("chromium");
    log_in_as(&b, &crm, &demo.accounts, Role::StoreManager).await;
    let seen = b
        .eval(
            "return [document.querySelectorAll('.row-actions button').length, \
             document.getElementById('new').offsetParent !== null, \
             document.getElementById('read-only').offsetParent !== null];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(seen, json!([0, false, true]), "a store manager's page");
    b.screenshot("campaigns-800x480-03-store-manager")
        .await
        .unwrap();
    check_page(&b, "800x480 store manager").await;
    b.close().await.unwrap();
    demo.stop().await;
}
