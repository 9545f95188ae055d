//! A browse point in a real browser (headless Chromium through chromedriver), as `kiosk demo
//! --kiosks 2 --browse-point` runs it: Ana (VIP) takes a turn at the queue kiosk, then taps her
//! card at the browse point. At 800x480, 1080x1920 and 1920x1080 its screen greets her, shows
//! her turn with the turns ahead and the VIP offer with its picture (loaded, with its text
//! alternative), takes no ticket, and goes back to the attract screen on "Terminar"; a visitor
//! without a card sees what is new for visitors. Every state has its controls in view,
//! uncovered and at least 44 px, is axe-core clean (critical and serious), and is screenshotted
//! under `<target dir>/artifacts/browse-<size>-*`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::Duration;

use kiosk::demo::{Demo, DemoOptions};
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::{Value, json};

const PORTRAIT: Viewport = Viewport {
    width: 1080,
    height: 1920,
};

const MIN_TARGET: f64 = 44.0;

/// The queue kiosk and the browse point of the demo's store.
const QUEUE: usize = 1;
const BROWSE: usize = 2;

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
            kiosks: 2,
            browse_point: true,
        })
        .await
        .expect("the demo starts");
        let http = reqwest::Client::new();
        Store {
            demo,
            http,
            _dir: dir,
        }
    }

    fn ui(&self, kiosk: usize, path: &str) -> String {
        let k = self.demo.kiosk_number(kiosk).expect("kiosk");
        format!("http://{}{path}", k.ui_addr)
    }

    async fn post(&self, url: String, body: Value) {
        let res = self.http.post(&url).json(&body).send().await.unwrap();
        assert!(res.status().is_success(), "{url} {body}: {}", res.status());
    }

    async fn view(&self, kiosk: usize) -> Value {
        self.http
            .get(self.ui(kiosk, "/api/kiosk/view"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn view_until(&self, kiosk: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.view(kiosk).await;
            if pred(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "never {what}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn touch(&self, kiosk: usize, body: Value) {
        self.post(self.ui(kiosk, "/api/kiosk/touch"), body).await;
    }

    /// Demo customer `index` taps her card at kiosk `kiosk` and takes it away again.
    async fn tap(&self, kiosk: usize, index: usize) {
        let card = format!("http://{}/api/kiosks/{kiosk}/card", self.demo.panel_addr);
        self.post(card.clone(), json!({"action": "customer", "index": index}))
            .await;
        self.view_until(kiosk, "the card read", |v| {
            v["body"]["screen"] != "attract" && v["body"]["screen"] != "identifying"
        })
        .await;
        self.post(card, json!({"action": "remove"})).await;
    }

    /// Ana (the demo's VIP) takes a turn for service A at the queue kiosk; returns its label.
    async fn ana_takes_a_turn(&self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        // Her profile reaches the kiosks through the feed shortly after the demo starts.
        loop {
            self.tap(QUEUE, 0).await;
            if self.view(QUEUE).await["body"]["screen"] == "greeting" {
                break;
            }
            self.touch(QUEUE, json!({"action": "cancel"})).await;
            assert!(tokio::time::Instant::now() < deadline, "Ana never greeted");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.touch(QUEUE, json!({"action": "continue"})).await;
        self.view_until(QUEUE, "the services", |v| {
            v["body"]["screen"] == "choose_service"
        })
        .await;
        self.touch(
            QUEUE,
            json!({"action": "choose_service", "service": "A", "priority": false}),
        )
        .await;
        let goodbye = self
            .view_until(QUEUE, "Ana's goodbye", |v| v["body"]["screen"] == "goodbye")
            .await;
        self.touch(QUEUE, json!({"action": "done"})).await;
        goodbye["body"]["turn"]["label"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Turns the browse point journaled as issued: it never takes one.
    fn browse_point_tickets(&self) -> i64 {
        self.demo
            .kiosk_number(BROWSE)
            .unwrap()
            .db
            .journal()
            .sql()
            .query_row(
                "SELECT count(*) FROM events WHERE type = 'ticket_issued'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }
}

async fn check(b: &Browser, size: &str, n: u32, step: &str) {
    b.screenshot(&format!("browse-{size}-{n}-{step}"))
        .await
        .expect("screenshot");
    assert_eq!(
        b.usability_problems(MIN_TARGET).await.expect("layout"),
        Vec::<String>::new(),
        "the browse point at {size}, {step}, is hard to use"
    );
    assert_eq!(
        b.axe_violations().await.expect("axe"),
        Vec::<String>::new(),
        "axe-core on the browse point at {size}, {step}"
    );
}

async fn browse_at(store: &Store, viewport: Viewport, ana_turn: &str) {
    let size = viewport.to_string();
    let b = Browser::launch(viewport).await.expect("chromium starts");
    b.goto(&store.ui(BROWSE, "/"))
        .await
        .expect("the browse point");
    b.wait_for_screen("attract").await.expect("attract");
    b.wait_for_text("#app h1", "Acerque su tarjeta y vea sus ofertas", WAIT)
        .await
        .expect("the browse point's invitation");
    check(&b, &size, 1, "attract").await;

    // Ana taps her card: her turn (once the store's queue reached this kiosk) and her offer.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        store.tap(BROWSE, 0).await;
        let v = store
            .view_until(BROWSE, "the browse screen loaded", |v| {
                v["body"]["screen"] == "browse" && v["body"]["loading"] == false
            })
            .await;
        if v["body"]["turn"]["label"] == ana_turn && v["body"]["item"].is_object() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never her turn and content: {v}"
        );
        store.touch(BROWSE, json!({"action": "done"})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    b.wait_for_text("#app h1", "Hola, Ana", WAIT)
        .await
        .expect("greeted by name");
    b.wait_for_text(
        "[data-testid=browse-turn]",
        &format!("Su turno {ana_turn}: 1 por delante"),
        WAIT,
    )
    .await
    .expect("her turn, with the one ahead");
    b.wait_until(
        "the offer's picture loaded, with its text alternative",
        "(() => { const i = document.querySelector('figure.browse-item img'); return !!i && i.complete && i.naturalWidth > 0 && i.alt === 'Una taza de café humeante'; })()",
        WAIT,
    )
    .await
    .expect("the VIP coffee");
    let figure = b
        .eval(
            "return document.querySelector('figure.browse-item').dataset.content;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        figure.as_str().unwrap().starts_with("demo-vip-coffee/"),
        "{figure}"
    );
    check(&b, &size, 2, "ana").await;

    // "Terminar" goes back to the invitation.
    b.click("[data-action=done]").await.expect("done");
    b.wait_for_screen("attract")
        .await
        .expect("attract after done");

    // A visitor without a card: what is new for visitors, no name.
    b.click("[data-action=start]")
        .await
        .expect("see what is new");
    b.wait_until(
        "the visitors' content",
        "!!document.querySelector('#app[data-screen=browse] figure.browse-item')",
        WAIT,
    )
    .await
    .expect("visitor content");
    b.wait_for_text("#app h1", "Novedades", WAIT)
        .await
        .expect("a title for visitors");
    let text = b.text("#app").await.unwrap();
    assert!(!text.contains("Ana"), "{text}");
    assert!(!text.contains("Su turno"), "{text}");
    check(&b, &size, 3, "visitor").await;
    b.click("[data-action=done]").await.expect("done");
    b.wait_for_screen("attract").await.expect("attract again");
    b.close().await.expect("browser closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browse_point_shows_a_card_its_turn_and_offer_at_every_size_without_a_ticket() {
    let store = Store::start().await;
    assert_eq!(store.view(BROWSE).await["role"], "browse");
    assert_eq!(store.view(QUEUE).await["role"], "queue");
    // A visitor's turn first, so Ana has one ahead.
    store.touch(QUEUE, json!({"action": "start"})).await;
    store
        .view_until(QUEUE, "the services", |v| {
            v["body"]["screen"] == "choose_service"
        })
        .await;
    store
        .touch(
            QUEUE,
            json!({"action": "choose_service", "service": "A", "priority": false}),
        )
        .await;
    store
        .view_until(QUEUE, "the goodbye", |v| v["body"]["screen"] == "goodbye")
        .await;
    store.touch(QUEUE, json!({"action": "done"})).await;
    let ana_turn = store.ana_takes_a_turn().await;

    for viewport in [Viewport::PI_DISPLAY, PORTRAIT, Viewport::FULL_HD] {
        browse_at(&store, viewport, &ana_turn).await;
    }
    assert_eq!(
        store.browse_point_tickets(),
        0,
        "a browse point takes no turn"
    );
    store.demo.stop().await;
}
