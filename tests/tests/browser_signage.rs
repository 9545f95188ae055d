//! The lobby display as signage, in a real browser (headless Chromium through chromedriver) at a
//! full-HD 1920x1080 and a portrait 1080x1920: between calls it plays the store's campaign
//! content chosen for who is waiting (a VIP customer and a visitor without a card: the VIP
//! coffee with its picture and the "join us" text, never a name); a call takes the screen at
//! once, and the content comes back after it. The counter page and the CRM dashboard show who
//! is in the store (the dashboard live, with the lobby's plays by audience). Every
//! state is axe-clean (critical and serious) and screenshotted under
//! `<target dir>/artifacts/signage-<size>-*`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::PathBuf;
use std::time::Duration;

use kiosk::demo::{DEMO_PIN, Demo, DemoOptions};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::{Value, json};

const PORTRAIT: Viewport = Viewport {
    width: 1080,
    height: 1920,
};

/// A call holds the lobby this long in the test (15 s in a store).
const CALL_HOLD_MS: u64 = 3_000;

/// A content item plays up to 10 s: two of them, and some slack on a loaded machine.
const CONTENT_WAIT: Duration = Duration::from_secs(60);

const AXE_RUN: &str = r#"
return axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
  .filter((v) => v.impact === 'critical' || v.impact === 'serious')
  .map((v) => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.slice(0, 4)
    .map((n) => n.target.join(' ') + ' ' + (n.failureSummary || '').replace(/\s+/g, ' ').slice(0, 240)).join(' | ')));
"#;

struct Store {
    demo: Demo,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Store {
    async fn start() -> Store {
        let dir = tempfile::tempdir().expect("tempdir");
        let demo = kiosk::demo::start(DemoOptions {
            data_dir: dir.path().to_owned(),
            port: 0,
            kiosks: 1,
            browse_point: false,
        })
        .await
        .expect("the demo starts");
        // Created after the demo: its sync worker installs the rustls provider reqwest needs.
        let http = reqwest::Client::new();
        Store {
            demo,
            http,
            _dir: dir,
        }
    }

    fn ui(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.kiosk.ui_addr)
    }

    fn staff_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.kiosk.staff_addr)
    }

    async fn post(&self, url: String, body: Value) {
        let res = self.http.post(&url).json(&body).send().await.unwrap();
        assert!(res.status().is_success(), "{url} {body}: {}", res.status());
    }

    async fn screen_is(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v: Value = self
                .http
                .get(self.ui("/api/kiosk/view"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["body"]["screen"] == name {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "never {name}: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A turn for service A, with demo customer `card` or without a card.
    async fn take_turn(&self, card: Option<usize>) {
        let panel = |p: &str| format!("http://{}{p}", self.demo.panel_addr);
        self.screen_is("attract").await;
        match card {
            Some(index) => {
                self.post(
                    panel("/api/card"),
                    json!({"action": "customer", "index": index}),
                )
                .await;
                self.screen_is("greeting").await;
                self.post(panel("/api/card"), json!({"action": "remove"}))
                    .await;
                self.post(self.ui("/api/kiosk/touch"), json!({"action": "continue"}))
                    .await;
            }
            None => {
                self.post(self.ui("/api/kiosk/touch"), json!({"action": "start"}))
                    .await;
            }
        }
        self.screen_is("choose_service").await;
        self.post(
            self.ui("/api/kiosk/touch"),
            json!({"action": "choose_service", "service": "A"}),
        )
        .await;
        self.screen_is("goodbye").await;
        self.post(self.ui("/api/kiosk/touch"), json!({"action": "done"}))
            .await;
    }

    async fn staff_cookie(&self) -> String {
        let login = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(self.ui("/counter/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("pin={DEMO_PIN}"))
            .send()
            .await
            .unwrap();
        login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    async fn call_next(&self, counter: &str) {
        let cookie = self.staff_cookie().await;
        let res = self
            .http
            .post(self.ui("/api/counter/command"))
            .header("cookie", cookie)
            .json(&json!({"counter": counter, "command": {"action": "call_next"}}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "call next: {}", res.status());
    }

    fn lobby_plays(&self) -> usize {
        self.demo
            .kiosk
            .db
            .journal()
            .sql()
            .query_row(
                "SELECT count(*) FROM events WHERE type = 'content_played'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap())
            .unwrap()
    }
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

async fn assert_axe_clean(b: &Browser, what: &str) {
    let loaded = b
        .eval("return typeof window.axe === 'object';", vec![])
        .await
        .expect("axe probe");
    if loaded != json!(true) {
        // As WebDriver script, so the page's CSP does not refuse it.
        b.eval(&format!("{}\nreturn true;", axe_source()), vec![])
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

/// The lobby at `viewport`: content between calls, the call at once, content again after it.
async fn lobby_at(store: &Store, viewport: Viewport, counter: &str) {
    let size = viewport.to_string();
    let b = Browser::launch(viewport).await.expect("browser");
    b.goto(&store.staff_url(&format!("/lobby?call_hold_ms={CALL_HOLD_MS}")))
        .await
        .expect("lobby");
    b.wait_for("#store", WAIT).await.expect("lobby page");

    // Between calls: the content for the VIP waiting, with its picture and its text alternative.
    b.wait_until(
        "the VIP coffee playing with its picture loaded",
        "(() => { const settled = () => document.getAnimations().every((a) => a.playState !== 'running'); const s = document.querySelector('.lobby[data-mode=signage] .slide[data-content=\"demo-vip-coffee/coffee-1\"]'); \
         const img = document.getElementById('slide-img'); \
         return !!s && !document.getElementById('signage').hidden && img.complete && img.naturalWidth === 240 && img.alt.length > 5 && settled(); })()",
        CONTENT_WAIT,
    )
    .await
    .expect("coffee content");
    let shown = b
        .eval("return document.body.innerText;", vec![])
        .await
        .unwrap();
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains("café") || shown.contains("coffee"),
        "the content's text is on screen: {shown}"
    );
    assert!(!shown.contains("Ana"), "never a name on the lobby: {shown}");
    // The content fits the screen: nothing scrolls.
    let fits = b
        .eval(
            "return document.documentElement.scrollHeight <= innerHeight && document.documentElement.scrollWidth <= innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the lobby scrolls at {size}");
    b.screenshot(&format!("signage-{size}-1-coffee"))
        .await
        .expect("screenshot");
    assert_axe_clean(&b, "the lobby playing content").await;

    // The visitor's content follows (never the same item twice in a row).
    b.wait_until(
        "the 'join us' content for the visitor",
        "(() => { const settled = () => document.getAnimations().every((a) => a.playState !== 'running'); return !!document.querySelector('.lobby[data-mode=signage] .slide[data-content=\"demo-welcome/welcome-1\"]') && document.getElementById('slide-img').hidden && settled(); })()",
        CONTENT_WAIT,
    )
    .await
    .expect("welcome content");
    b.screenshot(&format!("signage-{size}-2-welcome"))
        .await
        .expect("screenshot");
    assert_axe_clean(&b, "the lobby playing text content").await;

    // A call takes the screen at once.
    let plays_before = store.lobby_plays();
    store.call_next(counter).await;
    b.wait_until(
        "the call on the lobby, the content gone",
        "(() => { const settled = () => document.getAnimations().every((a) => a.playState !== 'running'); return document.querySelector('.lobby').getAttribute('data-mode') === 'calls' && document.getElementById('signage').hidden && !!document.querySelector('#serving .call.new'); })()",
        WAIT,
    )
    .await
    .expect("the call takes over");
    let called = b.text("#serving .call.new .counter").await.unwrap();
    assert_eq!(called.trim(), format!("mostrador {counter}"));
    b.screenshot(&format!("signage-{size}-3-call"))
        .await
        .expect("screenshot");
    assert_axe_clean(&b, "the lobby showing a call").await;
    // The play the call cut short is journaled.
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.lobby_plays() <= plays_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the interrupted play was never journaled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // After the call's hold, content again, the call still listed above it.
    b.wait_until(
        "content back after the call",
        "(() => { const settled = () => document.getAnimations().every((a) => a.playState !== 'running'); return document.querySelector('.lobby').getAttribute('data-mode') === 'signage' && !!document.querySelector('#serving .call') && settled(); })()",
        CONTENT_WAIT,
    )
    .await
    .expect("content resumes");
    b.screenshot(&format!("signage-{size}-4-after-call"))
        .await
        .expect("screenshot");
    assert_axe_clean(&b, "the lobby back to content with a turn being served").await;
    b.close().await.expect("browser closes");
}

/// The counter page's "In the store": counts and profiles, no names.
async fn counter_picture(store: &Store) {
    let b = Browser::launch(Viewport::FULL_HD).await.expect("browser");
    b.goto(&store.staff_url("/counter")).await.expect("counter");
    b.wait_for("#pin", WAIT).await.expect("PIN form");
    b.type_into("#pin", DEMO_PIN).await.expect("PIN");
    b.click("button[type=submit]").await.expect("log in");
    b.wait_until(
        "three waiting: a VIP, a regular and one without a card",
        "(() => { const settled = () => document.getAnimations().every((a) => a.playState !== 'running'); return document.getElementById('store-waiting')?.textContent === '3' && !!document.querySelector('#store-segments tr[data-segment=vip]') && !!document.querySelector('#store-segments tr[data-segment=anonymous]'); })()",
        WAIT,
    )
    .await
    .expect("store picture on the counter page");
    let section = b
        .text("[data-testid=store-picture]")
        .await
        .expect("section");
    assert!(section.contains("33 %"), "{section}");
    assert!(!section.contains("Ana"), "{section}");
    b.wait_until(
        "the people counter shown",
        "(() => { const settled = () => document.getAnimations().every((a) => a.playState !== 'running'); return !document.getElementById('store-entries-row').hidden; })()",
        WAIT,
    )
    .await
    .expect("entries today");
    b.element_screenshot("[data-testid=store-picture]", "signage-counter-store")
        .await
        .expect("screenshot");
    assert_axe_clean(&b, "the counter page with the store picture").await;
    b.close().await.expect("browser closes");
}

/// The CRM dashboard's "Who is in the store" for the manager: the three waiting (two with a
/// card, one without), their segments' weights, and no name. The browser stays open for
/// [`dashboard_plays`].
async fn dashboard_presence(store: &Store) -> Browser {
    let b = Browser::launch(Viewport::FULL_HD).await.expect("browser");
    b.goto(&format!("http://{}/dashboard", store.demo.crm_addr))
        .await
        .expect("dashboard");
    let manager = store
        .demo
        .accounts
        .iter()
        .find(|a| a.name == "tienda")
        .expect("the demo's store manager");
    b.log_in_dashboard(&manager.name, &manager.password)
        .await
        .expect("log in");
    b.wait_until(
        "the dashboard's store picture: 3 waiting, 2 identified, 1 anonymous",
        "(document.getElementById('presence-summary')?.textContent || '').startsWith('3 customers waiting now (2 identified, 1 anonymous)')",
        WAIT,
    )
    .await
    .expect("who is in the store, on the dashboard");
    let rows = b
        .eval(
            r#"return [...document.querySelectorAll('#presence-segments tbody tr')]
                 .map((tr) => [tr.dataset.segment, ...[...tr.querySelectorAll('td')].map((td) => td.textContent.trim())]);"#,
            vec![],
        )
        .await
        .expect("segment rows");
    assert_eq!(
        rows,
        json!([
            ["anonymous", "1", "33 %"],
            ["regular", "1", "33 %"],
            ["vip", "1", "33 %"]
        ]),
        "per segment, waiting and weight"
    );
    let section = b.text("#presence").await.expect("presence");
    assert!(
        !section.contains("Ana"),
        "no name on the dashboard: {section}"
    );
    b.element_screenshot("#presence", "signage-dashboard-presence-1-waiting")
        .await
        .expect("screenshot");
    assert_axe_clean(&b, "the dashboard with the store picture").await;
    b
}

/// The same dashboard, live: the lobby's plays reach it by audience, as many as the kiosk played.
async fn dashboard_plays(store: &Store, b: Browser) {
    let played = store.lobby_plays();
    assert!(played > 0, "the lobby played content");
    let sum = "[...document.querySelectorAll('#presence-content tbody tr')].reduce((n, tr) => n + Number(tr.querySelector('td.num')?.textContent || 0), 0)";
    b.wait_until(
        &format!("the dashboard counting the lobby's {played} plays"),
        &format!("{sum} === {played}"),
        WAIT,
    )
    .await
    .expect("plays on the dashboard");
    let audiences = b
        .eval(
            "return [...document.querySelectorAll('#presence-content tbody tr')].map((tr) => tr.lastElementChild.textContent);",
            vec![],
        )
        .await
        .expect("audiences");
    assert!(
        audiences
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("vip 1")),
        "the VIP's content was played to the VIP: {audiences}"
    );
    b.element_screenshot("#presence", "signage-dashboard-presence-2-played")
        .await
        .expect("screenshot");
    b.close().await.expect("browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_plays_content_for_who_is_waiting_between_calls_at_full_hd_and_portrait() {
    let store = Store::start().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let ana = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    while store.demo.kiosk.db.profile(&ana).unwrap().is_none()
        || !store
            .demo
            .kiosk
            .db
            .campaigns()
            .unwrap()
            .iter()
            .any(|c| !c.content.is_empty())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed never brought Ana and the campaigns"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ana (VIP), a visitor without a card and Ben (regular): the first call (Ana) leaves the
    // visitor and a regular, for whom the coffee runs too, waiting for the second screen size.
    store.take_turn(Some(0)).await;
    store.take_turn(None).await;
    store.take_turn(Some(1)).await;
    counter_picture(&store).await;
    let dashboard = dashboard_presence(&store).await;
    lobby_at(&store, Viewport::FULL_HD, "1").await;
    lobby_at(&store, PORTRAIT, "2").await;
    dashboard_plays(&store, dashboard).await;
    store.demo.stop().await;
}
