//! Who is in the store and what the lobby plays to them, on the kiosk as `kiosk demo` runs it:
//! people stepping in front of the simulated presence sensor are counted and journaled as
//! `people_counted`; customers who take turns appear in the store picture by segment (never by
//! name) on the staff listener; the lobby's signage plays the demo campaigns' content for the
//! segments waiting, serves the content picture with caching headers, and journals each play
//! once as `content_played`; the CRM ingests both kinds of event.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::Duration;

use kiosk::demo::{Demo, DemoOptions};
use kiosk_protocol::events::{ContentSurface, Event};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

struct Harness {
    demo: Demo,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let demo = kiosk::demo::start(DemoOptions {
            data_dir: dir.path().to_owned(),
            port: 0,
            kiosks: 1,
            browse_point: false,
        })
        .await
        .expect("demo starts");
        Harness {
            demo,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn ui(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.kiosk.ui_addr)
    }

    fn panel(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.panel_addr)
    }

    async fn panel_post(&self, path: &str, body: Value) {
        let res = self
            .http
            .post(self.panel(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "panel {path}: {}", res.status());
    }

    async fn touch(&self, body: Value) {
        let res = self
            .http
            .post(self.ui("/api/kiosk/touch"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "touch: {}", res.status());
    }

    async fn screen_until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
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
            if pred(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "screen never showed {what}; last: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn screen(&self, name: &str) -> Value {
        self.screen_until(name, |v| v["body"]["screen"] == name)
            .await
    }

    async fn staff_cookie(&self) -> String {
        let login = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(self.ui("/counter/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("pin={}", kiosk::demo::DEMO_PIN))
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

    /// Polls the store picture (as staff) until `pred` holds.
    async fn picture_until(
        &self,
        cookie: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let p: Value = self
                .http
                .get(self.ui("/api/counter/store"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if pred(&p) {
                return p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the store picture never showed {what}; last: {p}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A turn for service A: with demo customer `card` (index), or without a card.
    async fn take_turn(&self, card: Option<usize>) -> String {
        self.screen("attract").await;
        match card {
            Some(index) => {
                self.panel_post("/api/card", json!({"action": "customer", "index": index}))
                    .await;
                self.screen("greeting").await;
                self.panel_post("/api/card", json!({"action": "remove"}))
                    .await;
                self.touch(json!({"action": "continue"})).await;
            }
            None => self.touch(json!({"action": "start"})).await,
        }
        self.screen("choose_service").await;
        self.touch(json!({"action": "choose_service", "service": "A"}))
            .await;
        let goodbye = self
            .screen_until("a goodbye", |v| v["body"]["screen"] == "goodbye")
            .await;
        self.touch(json!({"action": "done"})).await;
        goodbye["body"]["turn"]["label"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn signage(&self, body: Value) -> reqwest::Response {
        self.http
            .post(self.ui("/api/lobby/signage"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    fn journaled(&self, type_name: &str) -> Vec<Event> {
        journaled(&self.demo.kiosk.db, type_name)
    }
}

fn journaled(db: &kiosk_journal::db::KioskDb, type_name: &str) -> Vec<Event> {
    let j = db.journal();
    let seqs: Vec<i64> = {
        let mut st = j
            .sql()
            .prepare("SELECT seq FROM events WHERE type = ?1 ORDER BY seq")
            .unwrap();
        st.query_map([type_name], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    seqs.into_iter()
        .map(|s| j.envelope(s as u64).unwrap().unwrap().event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_entering_and_customers_waiting_shape_the_picture_and_the_lobby_content() {
    let h = Harness::start().await;
    let cookie = h.staff_cookie().await;
    // The demo campaigns, with their signage content, reach the kiosk through the feed.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !h
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
            "no campaign content cached"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let vip = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    while h.demo.kiosk.db.profile(&vip).unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Ana's profile never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Three people step in front of the sensor, one after another (one person lingering is one
    // entry: the driver's unit tests pin that down with exact times).
    let p = h
        .picture_until(&cookie, "the people counter", |p| {
            p["people_entered_today"] == 0
        })
        .await;
    assert_eq!(p["waiting"], 0);
    for n in 1..=3 {
        h.panel_post("/api/presence", json!({"here": true})).await;
        h.picture_until(&cookie, &format!("{n} entered"), |p| {
            p["people_entered_today"] == n
        })
        .await;
        h.panel_post("/api/presence", json!({"here": false})).await;
        // Quiet for longer than the entry gap: the time passing is what is under test.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let p = h
        .picture_until(&cookie, "3 entered", |p| p["people_entered_today"] == 3)
        .await;
    assert_eq!(p["people_entered_today"], 3, "{p}");

    // Ana (VIP) and a visitor without a card take turns: the picture shows their segments.
    h.take_turn(Some(0)).await;
    h.take_turn(None).await;
    let p = h
        .picture_until(&cookie, "two waiting", |p| p["waiting"] == 2)
        .await;
    assert_eq!(
        (p["identified"].clone(), p["anonymous"].clone()),
        (json!(1), json!(1))
    );
    let vip_seg = p["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == "vip")
        .unwrap_or_else(|| panic!("{p}"));
    assert_eq!(vip_seg["weight"], 0.5);
    assert_eq!(
        vip_seg["dwell_source"], "expected",
        "no past visits yet: {p}"
    );
    assert!(
        !p.to_string().contains("Ana"),
        "no names in the picture: {p}"
    );
    // Staff only.
    let anonymous = h.http.get(h.ui("/api/counter/store")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // The lobby plays content for the VIP (coffee) and for the visitor (join us), alternating
    // languages; the coffee has a picture served with caching headers.
    let mut seen = std::collections::BTreeMap::new();
    let mut done: Option<Value> = None;
    let mut langs = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let body = match done.take() {
            Some(d) => json!({"done": d}),
            None => json!({}),
        };
        let res = h.signage(body).await;
        assert_eq!(res.status(), 200);
        let slide: Value = res.json().await.unwrap();
        langs.insert(slide["lang"].as_str().unwrap().to_owned());
        seen.insert(
            slide["content_id"].as_str().unwrap().to_owned(),
            slide.clone(),
        );
        done = Some(json!({"play": slide["play"], "shown_ms": 4000}));
    }
    assert!(
        seen.contains_key("coffee-1") && seen.contains_key("welcome-1"),
        "{seen:?}"
    );
    assert_eq!(langs.len(), 2, "es and en alternate");
    let coffee = &seen["coffee-1"];
    assert_eq!(coffee["alt"]["en"], "A steaming cup of coffee");
    let url = h.ui(coffee["image"].as_str().unwrap());
    let img = h.http.get(&url).send().await.unwrap();
    assert_eq!(img.status(), 200);
    assert_eq!(img.headers()["content-type"], "image/png");
    assert!(
        img.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let etag = img.headers()["etag"].to_str().unwrap().to_owned();
    let bytes = img.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    let again = h
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let missing = h
        .http
        .get(h.ui("/api/lobby/content/nope/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The last play ends; reporting it twice journals it once.
    let last = done.take().unwrap();
    let res = h.signage(json!({"done": last, "next": false})).await;
    assert_eq!(res.status(), 204);
    h.signage(json!({"done": last, "next": false})).await;
    let plays = h.journaled("content_played");
    assert_eq!(plays.len(), 12, "one content_played per play reported");
    for e in &plays {
        let Event::ContentPlayed(p) = e else {
            panic!("{e:?}")
        };
        assert_eq!(p.surface, ContentSurface::Lobby);
        assert!(p.duration_ms <= 4000);
        assert!(p.card_token.is_none(), "never a person on the lobby");
        let audience: Vec<_> = p
            .audience
            .iter()
            .map(|s| (s.segment.as_str(), s.count))
            .collect();
        assert_eq!(audience, [("vip", 1), ("anonymous", 1)]);
    }
    // A play id nobody handed out is refused without a trace.
    h.signage(json!({"done": {"play": uuid::Uuid::new_v4(), "shown_ms": 1}, "next": false}))
        .await;
    assert_eq!(h.journaled("content_played").len(), 12);

    // Everything reaches the CRM, nothing dead-lettered.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = h.demo.kiosk.db.journal().stats().unwrap();
        if stats.pending == 0 {
            let crm = h.demo.crm.event_count().await.unwrap();
            assert_eq!(crm, stats.events, "the CRM holds every kiosk event once");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        h.demo
            .kiosk
            .db
            .journal()
            .dead_letters(10)
            .unwrap()
            .is_empty()
    );

    // Stopping the kiosk journals the period's entries.
    let db = h.demo.kiosk.db.clone();
    h.demo.stop().await;
    let counted: u32 = journaled(&db, "people_counted")
        .iter()
        .map(|e| match e {
            Event::PeopleCounted(p) => p.entries,
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(counted, 3);
}
