//! The kiosk's screens in a real browser (headless Chromium through chromedriver): the kiosk as
//! `kiosk demo` runs it, touched the way a customer and the staff touch it, at the official Pi
//! display's 800x480 and at 1920x1080. Every journey ends in the CRM, each event exactly once;
//! every test keeps screenshots of its steps under `<target dir>/artifacts/`. The demo's
//! simulator panel too, for a store of two kiosks: each kiosk's controls and its LAN cable.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use kiosk::demo::{DEMO_PIN, Demo, DemoOptions};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::{Value, json};

/// The kiosk under test, its data directory and a client for the simulator panel.
struct Kiosk {
    demo: Demo,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Kiosk {
    async fn start() -> Kiosk {
        let dir = tempfile::tempdir().expect("tempdir");
        let demo = kiosk::demo::start(DemoOptions {
            data_dir: dir.path().to_owned(),
            port: 0,
            kiosks: 1,
            browse_point: false,
        })
        .await
        .expect("the demo starts");
        // Created after the demo: its sync worker installs the process's rustls provider, which
        // reqwest (built without one) needs.
        let http = reqwest::Client::new();
        Kiosk { demo, http, dir }
    }

    fn screen_url(&self) -> String {
        format!("http://{}/", self.demo.kiosk.ui_addr)
    }

    fn staff_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.kiosk.staff_addr)
    }

    /// Drives a simulator through the panel's API (`/api/card`, `/api/printer`, ...).
    async fn panel(&self, path: &str, body: Value) {
        let res = self
            .http
            .post(format!("http://{}{path}", self.demo.panel_addr))
            .json(&body)
            .send()
            .await
            .expect("the panel answers");
        assert!(
            res.status().is_success(),
            "panel {path} {body}: {}",
            res.status()
        );
    }

    /// Waits until the sync feed has brought demo customer `index`'s profile to the kiosk.
    async fn wait_for_profile(&self, index: usize) {
        let token = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[index]);
        let deadline = tokio::time::Instant::now() + WAIT;
        while self
            .demo
            .kiosk
            .db
            .profile(&token)
            .expect("profile cache")
            .is_none()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the feed never brought demo customer {index}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The ids and types of the events the kiosk journaled, once none waits in the outbox.
    async fn synced_events(&self) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.demo.kiosk.db.journal().stats().expect("stats");
            if stats.pending == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} events never left the outbox",
                stats.pending
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let journal = self.demo.kiosk.db.journal();
        let mut st = journal
            .sql()
            .prepare("SELECT id, type FROM events ORDER BY seq")
            .expect("journal query");
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .expect("journal rows")
            .map(|r| r.expect("journal row"))
            .collect()
    }

    /// Every event the kiosk journaled is in the CRM exactly once (by event id), the CRM holds
    /// no other, and the journey wrote each of `types`. Returns the CRM's event types.
    async fn assert_crm_has_every_event_once(&self, types: &[&str]) -> Vec<String> {
        let kiosk = self.synced_events().await;
        let crm = crm_events(&self.dir.path().join("crm.db"));
        let kiosk_ids: BTreeSet<&str> = kiosk.iter().map(|(id, _)| id.as_str()).collect();
        let crm_ids: BTreeSet<&str> = crm.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(kiosk_ids.len(), kiosk.len(), "event ids are unique");
        assert_eq!(crm_ids.len(), crm.len(), "the CRM holds each event id once");
        let missing: Vec<_> = kiosk_ids.difference(&crm_ids).collect();
        let extra: Vec<_> = crm_ids.difference(&kiosk_ids).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "kiosk journal and CRM differ: missing at the CRM {missing:?}, unknown to the kiosk {extra:?}"
        );
        let crm_types: Vec<String> = crm.into_iter().map(|(_, t)| t).collect();
        for t in types {
            assert!(
                crm_types.iter().any(|x| x == t),
                "{t} never reached the CRM: {crm_types:?}"
            );
        }
        crm_types
    }

    async fn stop(self, browser: Browser) {
        // The browser first: its event streams would otherwise hold the UI server open.
        browser.close().await.expect("the browser closes");
        self.demo.stop().await;
    }
}

/// The (id, type) of every event in the demo CRM's database.
fn crm_events(db: &Path) -> Vec<(String, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the demo CRM database opens");
    let mut st = conn
        .prepare("SELECT id, type FROM events")
        .expect("crm query");
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("crm rows")
        .map(|r| r.expect("crm row"))
        .collect()
}

/// Names the screenshots of one test at one size, numbered in step order.
struct Shots<'a> {
    browser: &'a Browser,
    prefix: String,
    n: u32,
}

impl<'a> Shots<'a> {
    fn new(browser: &'a Browser, test: &str) -> Self {
        Shots {
            browser,
            prefix: format!("{test}-{}", browser.viewport()),
            n: 0,
        }
    }

    async fn take(&mut self, step: &str) {
        self.n += 1;
        self.browser
            .screenshot(&format!("{}-{:02}-{step}", self.prefix, self.n))
            .await
            .expect("screenshot");
    }
}

/// What the current page shows that does not fit the viewport: a page wider or taller than the
/// window, a kiosk screen that scrolls (unless `scrolls` allows it), a control shorter or
/// narrower than 44 px, outside the window, covered by something else or with its label cut.
const LAYOUT_PROBLEMS: &str = r#"
const scrolls = arguments[0];
const vw = window.innerWidth, vh = window.innerHeight;
const de = document.documentElement, app = document.getElementById('app');
const bad = [];
if (de.scrollWidth > vw) bad.push(`page is ${de.scrollWidth}px wide`);
const below = (e) => { const r = e.getBoundingClientRect(); return r.height > 0 && r.bottom > vh + 0.5; };
const culprits = () => [...document.body.querySelectorAll('*')].filter(below).slice(0, 3)
  .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '')).join(', ');
if (de.scrollHeight > vh) bad.push(`page is ${de.scrollHeight}px tall (${culprits()})`);
if (app && !scrolls && app.scrollHeight > app.clientHeight + 1)
  bad.push(`screen scrolls: ${app.scrollHeight}px of content in ${app.clientHeight}px`);
if (app && app.scrollWidth > app.clientWidth + 1)
  bad.push(`screen scrolls sideways: ${app.scrollWidth}px of content in ${app.clientWidth}px`);
for (const b of document.querySelectorAll('[data-action], [data-testid=lang], [data-purpose]')) {
  const r = b.getBoundingClientRect();
  const name = `${b.dataset.action || b.dataset.testid || b.dataset.purpose} "${b.textContent.trim().slice(0, 24)}"`;
  if (r.height < 44) bad.push(`${name} is ${r.height}px tall`);
  if (r.width < 44) bad.push(`${name} is ${r.width}px wide`);
  if (b.scrollWidth > b.clientWidth + 1) bad.push(`${name}: label cut (${b.scrollWidth}px in ${b.clientWidth}px)`);
  if (r.left < 0 || r.right > vw) bad.push(`${name} sticks out sideways`);
  if (scrolls) continue;
  if (r.top < 0 || r.bottom > vh) bad.push(`${name} is below or above the window`);
  const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
  const notice = hit && hit.closest('#notice-slot');
  if (!notice && !(hit && b.contains(hit))) bad.push(`${name} is covered by ${hit ? hit.outerHTML.slice(0, 60) : 'nothing'}`);
}
return bad;
"#;

/// Asserts the current screen fits the viewport (see [`LAYOUT_PROBLEMS`]).
async fn assert_fits(browser: &Browser, what: &str, scrolls: bool) {
    let problems = browser
        .eval(LAYOUT_PROBLEMS, vec![json!(scrolls)])
        .await
        .expect("layout probe");
    assert_eq!(
        problems,
        json!([]),
        "{what} at {} does not fit",
        browser.viewport()
    );
}

/// The visible text of the page.
async fn page_text(browser: &Browser) -> String {
    browser
        .eval("return document.body.innerText;", vec![])
        .await
        .expect("page text")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn open_kiosk(viewport: Viewport) -> (Kiosk, Browser) {
    let kiosk = Kiosk::start().await;
    let browser = Browser::launch(viewport)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .goto(&kiosk.screen_url())
        .await
        .expect("kiosk screen");
    browser
        .wait_for_screen("attract")
        .await
        .expect("attract screen");
    (kiosk, browser)
}

async fn identified_customer_journey(viewport: Viewport) {
    let (kiosk, browser) = open_kiosk(viewport).await;
    let mut shots = Shots::new(&browser, "identified");
    shots.take("attract").await;
    assert_fits(&browser, "the attract screen", false).await;

    kiosk.wait_for_profile(0).await;
    kiosk
        .panel("/api/card", json!({"action": "customer", "index": 0}))
        .await;
    browser.wait_for_screen("greeting").await.expect("greeting");
    browser
        .wait_for_text("#app h1", "Hola, Ana", WAIT)
        .await
        .expect("greeted by name");
    let campaign = browser.text("#app .campaign").await.expect("campaign");
    assert!(!campaign.trim().is_empty(), "the VIP campaign is shown");
    shots.take("greeting").await;
    assert_fits(&browser, "the greeting", false).await;
    kiosk.panel("/api/card", json!({"action": "remove"})).await;

    browser
        .click("[data-action=continue]")
        .await
        .expect("continue");
    browser
        .wait_for_screen("choose_service")
        .await
        .expect("services");
    browser
        .wait_for_text("#app h1", "Ana", WAIT)
        .await
        .expect("services greet by name");
    shots.take("services").await;
    assert_fits(&browser, "the services", false).await;

    browser
        .click("[data-action=choose_service]")
        .await
        .expect("service A");
    browser.wait_for_screen("goodbye").await.expect("goodbye");
    let turn = browser
        .wait_for_text("[data-testid=turn]", "A-", WAIT)
        .await
        .expect("turn number");
    browser
        .wait_for_text("#app", "Recoja su ticket", WAIT)
        .await
        .expect("the ticket printed");
    let text = page_text(&browser).await;
    assert!(text.contains("Su cupón"), "the VIP coupon is shown: {text}");
    let coupon_code = browser
        .text(".coupon .muted")
        .await
        .expect("the coupon's code")
        .trim()
        .to_owned();
    shots.take("goodbye").await;
    assert_fits(&browser, "the goodbye", false).await;

    // The goodbye asks nothing about a service not given yet: it says how to rate it later.
    assert!(
        text.contains("escanee su ticket"),
        "the goodbye says how to rate us after the service: {text}"
    );
    assert!(
        !text.contains("¿Nos recomendaría?"),
        "no survey before the service: {text}"
    );
    browser.click("[data-action=done]").await.expect("done");
    browser
        .wait_for_screen("attract")
        .await
        .expect("back to attract");
    let kiosk_window = browser.client().window().await.expect("window");

    // The counter calls and serves Ana's turn.
    browser.open_window().await.expect("counter window");
    browser
        .goto(&kiosk.staff_url("/counter"))
        .await
        .expect("counter");
    browser.wait_for("#pin", WAIT).await.expect("PIN form");
    // A staff member with a PIN of her own: the page names her, and her call carries her id.
    let (_, staff_name, staff_pin) = kiosk::demo::DEMO_STAFF[0];
    browser.type_into("#pin", staff_pin).await.expect("PIN");
    browser.click("button[type=submit]").await.expect("log in");
    browser
        .wait_for_text("#staff-name", staff_name, WAIT)
        .await
        .expect("the counter page names who logged in");
    shots.take("counter-staff").await;
    browser
        .wait_until(
            "the counter board with a turn waiting",
            "!!document.getElementById('call-any') && !document.getElementById('call-any').disabled",
            WAIT,
        )
        .await
        .expect("counter board");
    browser.click("#call-any").await.expect("call next");
    browser
        .wait_for_text("#current .turn", turn.trim(), WAIT)
        .await
        .expect("the counter serves Ana's turn");
    browser
        .click("#current [data-action=served]")
        .await
        .expect("served");
    browser
        .wait_until(
            "the counter free again",
            "document.querySelector('#current .turn') === null",
            WAIT,
        )
        .await
        .expect("served");
    // She hands her coupon over: staff type its code; a second time it was already used.
    browser
        .type_into("#coupon-code", &coupon_code)
        .await
        .expect("coupon code");
    browser
        .click("#coupon-form button[type=submit]")
        .await
        .expect("redeem");
    browser
        .wait_for_text("#coupon-message", "redeemed", WAIT)
        .await
        .expect("the counter redeems the coupon");
    shots.take("counter-coupon").await;
    browser
        .type_into("#coupon-code", &coupon_code)
        .await
        .expect("coupon code");
    browser
        .click("#coupon-form button[type=submit]")
        .await
        .expect("redeem again");
    browser
        .wait_for_text("#coupon-message", "already used", WAIT)
        .await
        .expect("a coupon counts once");
    browser.switch_to(kiosk_window).await.expect("kiosk");

    // On her way out she scans her ticket: the survey about the service she got.
    kiosk
        .panel("/api/scan", json!({"action": "last_ticket"}))
        .await;
    browser.wait_for_screen("survey").await.expect("survey");
    browser
        .wait_for_text("#app h1", turn.trim(), WAIT)
        .await
        .expect("the survey names her turn");
    shots.take("survey").await;
    assert_fits(&browser, "the survey", false).await;
    // Survey: 9 of 0..10, then the first reason offered.
    browser
        .click(".scores [data-action=survey_score]:nth-child(10)")
        .await
        .expect("score 9");
    browser
        .wait_for("[data-action=survey_reason]", WAIT)
        .await
        .expect("reasons");
    shots.take("survey-reason").await;
    assert_fits(&browser, "the survey reasons", false).await;
    browser
        .click("[data-action=survey_reason]")
        .await
        .expect("reason");
    browser
        .wait_until(
            "the survey answered (thanks, or back to attract)",
            "document.getElementById('app').dataset.screen === 'attract' || document.body.innerText.includes('Gracias')",
            WAIT,
        )
        .await
        .expect("survey done");
    shots.take("survey-done").await;
    if browser
        .eval(
            "return document.getElementById('app').dataset.screen;",
            vec![],
        )
        .await
        .expect("screen")
        != "attract"
    {
        browser.click("[data-action=done]").await.expect("done");
    }
    browser
        .wait_for_screen("attract")
        .await
        .expect("back to attract");
    // The same ticket again: one answer per turn, said kindly.
    kiosk
        .panel("/api/scan", json!({"action": "last_ticket"}))
        .await;
    browser
        .wait_for_text("#notice-slot", "Ya valoró este turno", WAIT)
        .await
        .expect("a second answer is refused kindly");
    shots.take("attract-again").await;

    let printed = kiosk
        .demo
        .kiosk
        .sims
        .printer
        .as_ref()
        .expect("simulated printer")
        .record()
        .text();
    assert!(printed.contains(turn.trim()), "{turn} printed: {printed}");
    kiosk
        .assert_crm_has_every_event_once(&[
            "card_tapped",
            "customer_identified",
            "campaign_shown",
            "ticket_issued",
            "coupon_issued",
            "ticket_printed",
            "turn_called",
            "turn_served",
            "coupon_redeemed",
            "survey_answered",
        ])
        .await;
    let answers = kiosk
        .synced_events()
        .await
        .into_iter()
        .filter(|(_, t)| t == "survey_answered")
        .count();
    assert_eq!(answers, 1, "one answer for her turn");
    kiosk.stop(browser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identified_customer_is_greeted_takes_a_turn_and_answers_the_survey_on_the_pi_display() {
    identified_customer_journey(Viewport::PI_DISPLAY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identified_customer_is_greeted_takes_a_turn_and_answers_the_survey_on_a_full_hd_screen()
{
    identified_customer_journey(Viewport::FULL_HD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_visitor_takes_a_turn_that_the_counter_calls_and_the_lobby_shows() {
    let (kiosk, browser) = open_kiosk(Viewport::FULL_HD).await;
    let mut shots = Shots::new(&browser, "anonymous");
    browser.click("[data-action=start]").await.expect("start");
    browser
        .wait_for_screen("choose_service")
        .await
        .expect("services");
    shots.take("services").await;
    assert_fits(&browser, "the services", false).await;
    // Customer service (B): the second service button.
    browser
        .click(".service:nth-child(2) [data-action=choose_service]")
        .await
        .expect("service B");
    browser.wait_for_screen("goodbye").await.expect("goodbye");
    let label = browser
        .wait_for_text("[data-testid=turn]", "B-", WAIT)
        .await
        .expect("turn number")
        .trim()
        .to_owned();
    shots.take("goodbye").await;
    assert_fits(&browser, "the goodbye", false).await;
    browser.click("[data-action=done]").await.expect("done");
    browser.wait_for_screen("attract").await.expect("attract");
    let kiosk_window = browser.client().window().await.expect("window");

    // The lobby display, in a window of its own.
    browser.open_window().await.expect("lobby window");
    browser
        .goto(&kiosk.staff_url("/lobby"))
        .await
        .expect("lobby");
    browser.wait_for("#store", WAIT).await.expect("lobby page");
    let lobby_window = browser.client().window().await.expect("window");

    // The counter page, in another: the PIN, then "call next".
    browser.open_window().await.expect("counter window");
    browser
        .goto(&kiosk.staff_url("/counter"))
        .await
        .expect("counter");
    browser.wait_for("#pin", WAIT).await.expect("PIN form");
    shots.take("counter-login").await;
    browser.type_into("#pin", DEMO_PIN).await.expect("PIN");
    browser.click("button[type=submit]").await.expect("log in");
    browser
        .wait_until(
            "the counter board with a B turn waiting",
            "!!document.getElementById('call-any') && !document.getElementById('call-any').disabled && document.getElementById('services').innerText.includes('B')",
            WAIT,
        )
        .await
        .expect("counter board");
    shots.take("counter-board").await;
    browser.click("#call-any").await.expect("call next");
    browser
        .wait_for_text("#current .turn", &label, WAIT)
        .await
        .expect("the counter serves the turn");
    browser
        .wait_for_text("#message", &label, WAIT)
        .await
        .expect("the counter says which turn it called");
    shots.take("counter-called").await;

    // Park it (the customer went to fetch a document), then call it back.
    browser
        .click("#current [data-action=park]")
        .await
        .expect("park");
    browser
        .wait_for_text("#parked", &label, WAIT)
        .await
        .expect("the parked list shows the turn");
    shots.take("counter-parked").await;
    browser
        .click("#parked [data-action=call]")
        .await
        .expect("call back");
    browser
        .wait_for_text("#current .turn", &label, WAIT)
        .await
        .expect("the parked turn is served again");
    // The customer needs the checkout instead: transfer to A, where it is next by issue time.
    browser
        .click("#current [data-action=transfer]")
        .await
        .expect("transfer");
    browser
        .wait_until(
            "the turn waiting in A",
            &format!(
                "document.getElementById('services').innerText.includes('{label}') && document.querySelector('#current .turn') === null"
            ),
            WAIT,
        )
        .await
        .expect("the transferred turn waits in A");
    shots.take("counter-transferred").await;
    browser.click("#call-any").await.expect("call next");
    browser
        .wait_for_text("#current .turn", &label, WAIT)
        .await
        .expect("the counter serves the transferred turn");

    browser.switch_to(lobby_window).await.expect("lobby");
    browser
        .wait_for_text("#serving", &label, WAIT)
        .await
        .expect("the lobby shows the call");
    shots.take("lobby-called").await;
    browser.switch_to(kiosk_window).await.expect("kiosk");
    browser
        .wait_for_screen("attract")
        .await
        .expect("kiosk still attracts");

    kiosk
        .assert_crm_has_every_event_once(&[
            "ticket_issued",
            "ticket_printed",
            "turn_called",
            "turn_parked",
            "turn_transferred",
        ])
        .await;
    kiosk.stop(browser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_card_registers_on_screen_with_unticked_consents_and_is_greeted() {
    let (kiosk, browser) = open_kiosk(Viewport::PI_DISPLAY).await;
    let mut shots = Shots::new(&browser, "registration");
    kiosk.panel("/api/card", json!({"action": "unknown"})).await;
    browser
        .wait_for_screen("offer_registration")
        .await
        .expect("offer");
    shots.take("offer").await;
    assert_fits(&browser, "the registration offer", false).await;
    kiosk.panel("/api/card", json!({"action": "remove"})).await;
    browser
        .click("[data-action=register]")
        .await
        .expect("register");
    browser
        .wait_for_screen("registering")
        .await
        .expect("registration form");
    browser.wait_for("#f-name", WAIT).await.expect("name field");
    browser
        .click("[data-step=consents]")
        .await
        .expect("the permissions step");
    let boxes = browser
        .eval(
            "return [...document.querySelectorAll('[data-purpose]')].map(b => [b.dataset.purpose, b.getAttribute('aria-checked')]);",
            vec![],
        )
        .await
        .expect("consent boxes");
    let boxes = boxes.as_array().expect("list");
    assert!(
        boxes.len() >= 2,
        "a box per purpose (profile, marketing...): {boxes:?}"
    );
    assert!(
        boxes.iter().all(|b| b[1] == "false"),
        "every consent starts unticked: {boxes:?}"
    );
    assert!(
        page_text(&browser).await.contains("demo-2026-01"),
        "the policy version is on screen"
    );
    shots.take("form").await;
    // The form with its keyboard is taller than the Pi display: it may scroll, never sideways.
    assert_fits(&browser, "the registration form", true).await;

    browser
        .click("[data-step=name]")
        .await
        .expect("the name step");
    browser.type_into("#f-name", "Lucía").await.expect("name");
    browser
        .wait_until(
            "the name typed",
            "document.getElementById('f-name').value === 'Lucía'",
            WAIT,
        )
        .await
        .expect("name typed");
    browser
        .click("[data-step=consents]")
        .await
        .expect("the permissions step");
    browser
        .click("[data-purpose=profile]")
        .await
        .expect("tick profile");
    browser
        .wait_until(
            "the profile box ticked",
            "document.querySelector('[data-purpose=profile]').getAttribute('aria-checked') === 'true'",
            WAIT,
        )
        .await
        .expect("form filled");
    shots.take("form-filled").await;
    browser
        .click("[data-action=submit_registration]")
        .await
        .expect("submit");
    browser.wait_for_screen("greeting").await.expect("greeting");
    browser
        .wait_for_text("#app h1", "Hola, Lucía", WAIT)
        .await
        .expect("greeted by the new name");
    shots.take("greeted").await;
    assert_fits(&browser, "the greeting", false).await;
    browser.click("[data-action=cancel]").await.expect("cancel");
    browser.wait_for_screen("attract").await.expect("attract");

    let types = kiosk
        .assert_crm_has_every_event_once(&["customer_registered", "consent_given"])
        .await;
    assert_eq!(
        types.iter().filter(|t| *t == "consent_given").count(),
        1,
        "only the ticked consent is recorded: {types:?}"
    );
    kiosk.stop(browser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_language_button_switches_the_screen_between_spanish_and_english() {
    let (kiosk, browser) = open_kiosk(Viewport::PI_DISPLAY).await;
    let mut shots = Shots::new(&browser, "language");
    browser
        .wait_for_text("[data-action=start]", "Continuar sin tarjeta", WAIT)
        .await
        .expect("Spanish first");
    assert_eq!(browser.text("[data-testid=lang]").await.unwrap(), "English");
    shots.take("attract-es").await;

    browser
        .click("[data-testid=lang]")
        .await
        .expect("to English");
    browser
        .wait_for_text("[data-action=start]", "Continue without a card", WAIT)
        .await
        .expect("English");
    browser
        .wait_until(
            "<html lang=en>",
            "document.documentElement.lang === 'en'",
            WAIT,
        )
        .await
        .expect("lang attribute");
    assert_eq!(browser.text("[data-testid=lang]").await.unwrap(), "Español");
    shots.take("attract-en").await;
    assert_fits(&browser, "the English attract screen", false).await;

    browser.click("[data-action=start]").await.expect("start");
    browser
        .wait_for_screen("choose_service")
        .await
        .expect("services");
    browser
        .wait_for_text("#app h1", "What do you need?", WAIT)
        .await
        .expect("English title");
    let text = page_text(&browser).await;
    assert!(
        text.contains("Cashier") && text.contains("Customer service"),
        "{text}"
    );
    shots.take("services-en").await;
    assert_fits(&browser, "the English services", false).await;

    browser
        .click("[data-testid=lang]")
        .await
        .expect("to Spanish");
    browser
        .wait_for_text("#app h1", "¿Qué necesita?", WAIT)
        .await
        .expect("Spanish again");
    let text = page_text(&browser).await;
    assert!(
        text.contains("Caja") && text.contains("Atención al cliente") && !text.contains("Cashier"),
        "{text}"
    );
    shots.take("services-es").await;
    assert_fits(&browser, "the Spanish services", false).await;
    kiosk.stop(browser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_paper_out_the_screen_shows_the_number_and_a_qr_that_decodes_to_the_signed_ticket()
{
    let (kiosk, browser) = open_kiosk(Viewport::PI_DISPLAY).await;
    let mut shots = Shots::new(&browser, "paper-out");
    kiosk
        .panel("/api/printer", json!({"paper_out": true}))
        .await;
    browser
        .wait_for_text("#printer", "Impresora sin servicio", WAIT)
        .await
        .expect("the printer warning");
    shots.take("attract-printer-down").await;
    assert_fits(&browser, "the attract screen with the printer down", false).await;

    browser.click("[data-action=start]").await.expect("start");
    browser
        .wait_for_screen("choose_service")
        .await
        .expect("services");
    browser
        .click("[data-action=choose_service]")
        .await
        .expect("service A");
    browser.wait_for_screen("goodbye").await.expect("goodbye");
    let label = browser
        .wait_for_text("[data-testid=turn]", "A-", WAIT)
        .await
        .expect("turn number")
        .trim()
        .to_owned();
    browser
        .wait_for_text("#app .error", "No hemos podido imprimir", WAIT)
        .await
        .expect("the screen says the ticket was not printed");
    let qr = browser.wait_for(".qr svg", WAIT).await.expect("QR");
    let qr_label = browser
        .eval(
            "return document.querySelector('.qr').getAttribute('aria-label');",
            vec![],
        )
        .await
        .expect("QR label");
    assert_eq!(qr_label, json!(label), "the QR is labelled with the turn");
    drop(qr);
    shots.take("goodbye-unprinted").await;
    assert_fits(&browser, "the unprinted goodbye with its QR", false).await;

    // The QR as the screen draws it, read by a real decoder, is the signed ticket.
    let qr_png = browser
        .element_screenshot(".qr", "paper-out-800x480-qr")
        .await
        .expect("QR screenshot");
    let zbar = std::process::Command::new("/usr/bin/zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&qr_png)
        .output()
        .expect("zbarimg runs (Debian package zbar-tools)");
    assert!(
        zbar.status.success(),
        "zbarimg read no code in {}: {}",
        qr_png.display(),
        String::from_utf8_lossy(&zbar.stderr)
    );
    let decoded = String::from_utf8_lossy(&zbar.stdout).trim().to_owned();
    let issued = kiosk
        .demo
        .kiosk
        .last_ticket_qr
        .lock()
        .expect("last ticket")
        .clone()
        .expect("a ticket was issued");
    assert_eq!(decoded, issued, "the QR on screen is the signed ticket");

    browser.click("[data-action=done]").await.expect("done");
    browser.wait_for_screen("attract").await.expect("attract");
    let types = kiosk
        .assert_crm_has_every_event_once(&["ticket_issued", "ticket_print_failed"])
        .await;
    assert!(
        !types.iter().any(|t| t == "ticket_printed"),
        "nothing printed: {types:?}"
    );
    kiosk.stop(browser).await;
}

/// Elements that could take a customer off the kiosk page: links, forms that submit somewhere,
/// file pickers, frames, embedded objects, anything opening another window.
const WAYS_OUT: &str = "return [...document.querySelectorAll('a[href], area[href], form[action], input[type=file], iframe, frame, object, embed, [target], [download]')].map(e => e.outerHTML.slice(0, 80));";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_screen_offers_no_way_out_to_the_browser_or_the_os() {
    let (kiosk, browser) = open_kiosk(Viewport::PI_DISPLAY).await;
    let mut shots = Shots::new(&browser, "lockdown");
    let mut seen = Vec::new();
    let mut check = async |screen: &str| {
        browser.wait_for_screen(screen).await.expect(screen);
        let out = browser.eval(WAYS_OUT, vec![]).await.expect("probe");
        assert_eq!(out, json!([]), "ways out on the {screen} screen");
        seen.push(screen.to_owned());
    };
    check("attract").await;

    // The context menu (long press on a touchscreen) is cancelled by the page.
    let menu = browser
        .eval(
            "const e = new MouseEvent('contextmenu', {bubbles: true, cancelable: true, clientX: 10, clientY: 10}); return document.getElementById('app').dispatchEvent(e);",
            vec![],
        )
        .await
        .expect("contextmenu");
    assert_eq!(menu, json!(false), "contextmenu is prevented");
    // Text cannot be selected (and so not dragged or looked up).
    let select = browser
        .eval("return getComputedStyle(document.body).userSelect;", vec![])
        .await
        .expect("user-select");
    assert_eq!(select, json!("none"));
    // The content security policy keeps injected inline script from running.
    let injected = browser
        .eval(
            "const s = document.createElement('script'); s.textContent = 'window.__injected = true'; document.body.append(s); return window.__injected === true;",
            vec![],
        )
        .await
        .expect("inline script");
    assert_eq!(
        injected,
        json!(false),
        "inline script is refused by the CSP"
    );

    kiosk.panel("/api/card", json!({"action": "unknown"})).await;
    check("offer_registration").await;
    kiosk.panel("/api/card", json!({"action": "remove"})).await;
    browser
        .click("[data-action=register]")
        .await
        .expect("register");
    check("registering").await;
    // The policy text opens in place (a <details>), not in another page.
    browser
        .click("[data-step=consents]")
        .await
        .expect("the permissions step");
    browser
        .click("[data-purpose] + div summary")
        .await
        .expect("open the policy");
    let open = browser
        .eval(
            "return document.querySelector('[data-purpose] + div details').open;",
            vec![],
        )
        .await
        .expect("details");
    assert_eq!(open, json!(true));
    shots.take("policy-open").await;
    let url = browser.url().await.expect("url");
    assert_eq!(url, kiosk.screen_url(), "still on the kiosk page");
    browser
        .click("[data-action=skip_registration]")
        .await
        .expect("not now");
    browser
        .wait_until(
            "the registration left",
            "document.getElementById('app').dataset.screen !== 'registering'",
            WAIT,
        )
        .await
        .expect("left registration");
    if browser
        .eval(
            "return document.getElementById('app').dataset.screen;",
            vec![],
        )
        .await
        .expect("screen")
        == "attract"
    {
        browser.click("[data-action=start]").await.expect("start");
    }
    check("choose_service").await;
    browser
        .click("[data-action=choose_service]")
        .await
        .expect("service");
    check("goodbye").await;
    shots.take("goodbye").await;
    assert_eq!(
        browser.url().await.expect("url"),
        kiosk.screen_url(),
        "still on the kiosk page after a whole journey"
    );
    assert_eq!(seen.len(), 5, "{seen:?}");
    kiosk.stop(browser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crm_dashboard_shows_the_tickets_the_kiosk_issued_on_screen() {
    let (kiosk, browser) = open_kiosk(Viewport::FULL_HD).await;
    let mut shots = Shots::new(&browser, "dashboard");
    // The campaigns reach the kiosk through the feed: visitors without a card see the welcome.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !kiosk
        .demo
        .kiosk
        .db
        .campaigns()
        .expect("campaign cache")
        .iter()
        .any(|c| c.id == "demo-welcome")
    {
        assert!(tokio::time::Instant::now() < deadline, "no campaigns");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each visit's variant, as its coupon on screen says (`BIENV-B-…`), and its coupon's QR.
    let mut visits: Vec<(String, String)> = Vec::new();
    for service in [1, 2] {
        browser.click("[data-action=start]").await.expect("start");
        browser
            .wait_for_screen("choose_service")
            .await
            .expect("services");
        browser
            .click(&format!(
                ".service:nth-child({service}) [data-action=choose_service]"
            ))
            .await
            .expect("service");
        browser.wait_for_screen("goodbye").await.expect("goodbye");
        let code = browser
            .wait_for_text(".coupon .muted", "BIENV-", WAIT)
            .await
            .expect("the welcome coupon on screen");
        let variant = code.trim().split('-').nth(1).unwrap().to_lowercase();
        browser
            .wait_for_text("#app", "Recoja su ticket", WAIT)
            .await
            .expect("printed");
        let qr = kiosk
            .demo
            .kiosk
            .sims
            .printer
            .as_ref()
            .expect("printer")
            .record()
            .codes
            .iter()
            .rev()
            .find(|c| c.symbology == "QR" && c.data.starts_with("KC1."))
            .map(|c| c.data.clone())
            .expect("the coupon's QR printed");
        visits.push((variant, qr));
        browser.click("[data-action=done]").await.expect("done");
        browser.wait_for_screen("attract").await.expect("attract");
    }
    // The first visitor comes back with the coupon: scanned at the attract screen.
    kiosk
        .panel("/api/scan", json!({"action": "text", "text": visits[0].1}))
        .await;
    browser
        .wait_for_text("#notice-slot", "Cupón aplicado", WAIT)
        .await
        .expect("the coupon applied, on screen");
    browser.click("[data-action=cancel]").await.expect("cancel");
    browser.wait_for_screen("attract").await.expect("attract");
    let types = kiosk
        .assert_crm_has_every_event_once(&["ticket_issued", "campaign_shown", "coupon_redeemed"])
        .await;
    let issued = types.iter().filter(|t| *t == "ticket_issued").count();
    assert_eq!(issued, 2, "{types:?}");

    // The store manager's view of the same CRM: log in as the demo store's manager.
    browser.open_window().await.expect("dashboard window");
    browser
        .goto(&format!("http://{}/dashboard", kiosk.demo.crm_addr))
        .await
        .expect("dashboard");
    browser.wait_for("#user", WAIT).await.expect("login form");
    shots.take("login").await;
    let manager = kiosk
        .demo
        .accounts
        .iter()
        .find(|a| a.name == "tienda")
        .expect("the demo's store manager");
    browser
        .log_in_dashboard(&manager.name, &manager.password)
        .await
        .expect("log in");
    browser
        .wait_for_text("#kpi-tickets", &issued.to_string(), WAIT)
        .await
        .expect("the dashboard counts the kiosk's tickets");
    browser
        .wait_until(
            "the dashboard live",
            "document.getElementById('live').dataset.state === 'live'",
            WAIT,
        )
        .await
        .expect("live updates");
    shots.take("tickets").await;

    // The campaign figures: per variant, the visits that saw it, the coupons used, the rate.
    let mut truth: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (i, (variant, _)) in visits.iter().enumerate() {
        let row = truth.entry(variant.clone()).or_default();
        row.0 += 1;
        row.1 += u64::from(i == 0);
    }
    browser
        .wait_for("[data-testid=campaign-figures] tbody tr", WAIT)
        .await
        .expect("the campaign figures");
    let rows = browser
        .eval(
            r#"return [...document.querySelectorAll('[data-testid=campaign-figures] tbody tr')]
                 .map((tr) => [tr.dataset.campaign, tr.dataset.variant,
                   ...[...tr.querySelectorAll('td.num')].map((td) => td.textContent.trim())]);"#,
            vec![],
        )
        .await
        .expect("campaign rows");
    let expected: Vec<Value> = truth
        .iter()
        .map(|(variant, (shown, redeemed))| {
            let rate = format!("{:.0} %", 100.0 * *redeemed as f64 / *shown as f64);
            json!([
                "demo-welcome",
                variant,
                shown.to_string(),
                redeemed.to_string(),
                rate
            ])
        })
        .collect();
    assert_eq!(
        rows,
        Value::Array(expected),
        "the page shows the known figures"
    );
    let api: Value = kiosk
        .http
        .get(format!(
            "http://{}/dashboard/api/stores/{}?range=24h",
            kiosk.demo.crm_addr,
            crm_endpoint::DEMO_STORE_ID
        ))
        .header("x-admin-token", &kiosk.demo.admin_token)
        .send()
        .await
        .expect("dashboard api")
        .json()
        .await
        .expect("json");
    let api_rows: Vec<(String, u64, u64)> = api["campaigns"]
        .as_array()
        .expect("campaigns")
        .iter()
        .map(|r| {
            (
                r["variant"].as_str().unwrap().to_owned(),
                r["shown"].as_u64().unwrap(),
                r["redeemed"].as_u64().unwrap(),
            )
        })
        .collect();
    let truth_rows: Vec<(String, u64, u64)> =
        truth.into_iter().map(|(v, (s, r))| (v, s, r)).collect();
    assert_eq!(api_rows, truth_rows, "the API agrees");
    browser
        .eval(
            "document.querySelector('[data-testid=campaign-figures]').scrollIntoView({block: 'center'}); return null;",
            vec![],
        )
        .await
        .expect("scroll to the campaigns");
    shots.take("campaigns").await;
    kiosk.stop(browser).await;
}

/// What keeps the simulator panel from being used by keyboard, screen reader or finger: a page
/// wider than the window, a control shorter or narrower than 44 px or without a name, a text
/// field without a label, a kiosk's section without its heading.
const PANEL_PROBLEMS: &str = r#"
const bad = [];
const de = document.documentElement;
if (de.scrollWidth > window.innerWidth) bad.push(`page is ${de.scrollWidth}px wide`);
const nameOf = (e) => (e.getAttribute('aria-label') || (e.labels && [...e.labels].map((l) => l.textContent).join(' ')) || e.textContent || '').trim();
for (const e of document.querySelectorAll('button, input, a[href]')) {
  const r = e.getBoundingClientRect();
  const what = `${e.tagName.toLowerCase()} "${nameOf(e).slice(0, 30)}" in ${e.closest('[data-kiosk]') ? 'kiosk ' + e.closest('[data-kiosk]').dataset.kiosk : 'the page'}`;
  if (!nameOf(e)) bad.push(`${what} has no name`);
  if (e.tagName === 'A') continue;
  if (r.height < 44) bad.push(`${what} is ${r.height}px tall`);
  if (r.width < 44) bad.push(`${what} is ${r.width}px wide`);
  if (r.right > window.innerWidth) bad.push(`${what} sticks out sideways`);
}
for (const s of document.querySelectorAll('section')) {
  const id = s.getAttribute('aria-labelledby');
  if (!id || !document.getElementById(id)) bad.push(`a section has no heading: ${s.outerHTML.slice(0, 60)}`);
}
return bad;
"#;

/// The kiosk screen's state (`/api/kiosk/view`) of one demo kiosk.
async fn screen_of(http: &reqwest::Client, kiosk: &kiosk::runtime::Running) -> Value {
    http.get(format!("http://{}/api/kiosk/view", kiosk.ui_addr))
        .send()
        .await
        .expect("the kiosk answers")
        .json()
        .await
        .expect("a screen")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_panel_drives_each_kiosk_of_a_store_and_cuts_and_restores_one_kiosks_lan_cable()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = kiosk::demo::start(DemoOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        kiosks: 2,
        browse_point: false,
    })
    .await
    .expect("the demo starts");
    let http = reqwest::Client::new();
    let browser = Browser::launch(Viewport::FULL_HD)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut shots = Shots::new(&browser, "panel");
    browser
        .goto(&format!("http://{}/", demo.panel_addr))
        .await
        .expect("the panel");
    browser
        .wait_until(
            "the panel's state",
            "document.body.dataset.ready === '1'",
            WAIT,
        )
        .await
        .expect("the panel shows the store");
    for k in ["1", "2"] {
        browser
            .wait_for(&format!("[data-kiosk='{k}'] [data-testid=tap-0]"), WAIT)
            .await
            .expect("each kiosk has its card buttons");
    }
    let problems = browser
        .eval(PANEL_PROBLEMS, vec![])
        .await
        .expect("panel probe");
    assert_eq!(problems, json!([]), "the panel is hard to use");
    shots.take("store").await;

    // A tap at kiosk 2 reaches kiosk 2's card reader, not kiosk 1's.
    let kiosk2 = demo.kiosk_number(2).expect("kiosk 2");
    browser
        .click("[data-kiosk='2'] [data-testid=tap-unknown]")
        .await
        .expect("tap at kiosk 2");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = screen_of(&http, kiosk2).await;
        if v["body"]["screen"] == "offer_registration" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kiosk 2 never offered to register the card; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        screen_of(&http, &demo.kiosk).await["body"]["screen"],
        "attract",
        "kiosk 1 saw no card"
    );
    browser
        .click("[data-kiosk='2'] [data-testid=remove-card]")
        .await
        .expect("take the card away");

    // The kiosks find each other, then kiosk 2's cable is cut and restored from the panel.
    let peers = |k: u8| format!("[data-kiosk='{k}'] [data-role=peers]");
    browser
        .wait_for_text(&peers(1), "kiosk 2 ✓ reachable", WAIT)
        .await
        .expect("kiosk 1 reaches kiosk 2");
    browser
        .wait_for_text(&peers(2), "kiosk 1 ✓ reachable", WAIT)
        .await
        .expect("kiosk 2 reaches kiosk 1");
    browser
        .click("[data-kiosk='2'] [data-testid=lan]")
        .await
        .expect("cut kiosk 2's cable");
    browser
        .wait_for_text("[data-kiosk='2'] [data-testid=lan]", "cut", WAIT)
        .await
        .expect("the button says the cable is cut");
    assert_eq!(
        demo.lan.as_ref().and_then(|l| l.link(1)),
        Some(kiosk::demo::Link::Cut)
    );
    browser
        .wait_for_text(&peers(1), "kiosk 2 ✗ unreachable", WAIT)
        .await
        .expect("kiosk 1 no longer reaches kiosk 2");
    browser
        .wait_for_text(&peers(2), "kiosk 1 ✗ unreachable", WAIT)
        .await
        .expect("kiosk 2 no longer reaches kiosk 1");
    assert_eq!(
        demo.lan.as_ref().and_then(|l| l.link(0)),
        Some(kiosk::demo::Link::Up),
        "kiosk 1's cable is untouched"
    );
    shots.take("cut").await;
    browser
        .click("[data-kiosk='2'] [data-testid=lan]")
        .await
        .expect("restore kiosk 2's cable");
    browser
        .wait_for_text("[data-kiosk='2'] [data-testid=lan]", "plugged in", WAIT)
        .await
        .expect("the button says the cable is back");
    browser
        .wait_for_text(&peers(1), "kiosk 2 ✓ reachable", WAIT)
        .await
        .expect("kiosk 1 reaches kiosk 2 again");
    browser
        .wait_for_text(&peers(2), "kiosk 1 ✓ reachable", WAIT)
        .await
        .expect("kiosk 2 reaches kiosk 1 again");
    shots.take("restored").await;
    browser.close().await.expect("the browser closes");
    demo.stop().await;
}
