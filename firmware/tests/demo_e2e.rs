//! The whole kiosk as `kiosk demo` runs it (simulated devices speaking their real protocols, the
//! embedded CRM endpoint, the network switch), driven over HTTP the way the screen, the staff and
//! the simulator panel drive it. Each journey must end in the CRM, every event exactly once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::Duration;

use kiosk::demo::{Demo, DemoOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

struct Harness {
    demo: Demo,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        Self::store(1).await
    }

    /// A store of `kiosks` kiosks.
    async fn store(kiosks: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let demo = kiosk::demo::start(DemoOptions {
            data_dir: dir.path().to_owned(),
            port: 0,
            kiosks,
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

    async fn post(&self, url: String, body: Value) -> reqwest::Response {
        self.http.post(url).json(&body).send().await.expect("post")
    }

    async fn touch(&self, body: Value) {
        let res = self.post(self.ui("/api/kiosk/touch"), body).await;
        assert!(res.status().is_success(), "touch refused: {}", res.status());
    }

    async fn panel_post(&self, path: &str, body: Value) {
        let res = self.post(self.panel(path), body).await;
        assert!(res.status().is_success(), "panel {path}: {}", res.status());
    }

    async fn get_json(&self, url: String) -> Value {
        self.http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
    }

    async fn view(&self) -> Value {
        self.get_json(self.ui("/api/kiosk/view")).await
    }

    /// Polls the screen until `pred` holds (the engine answers within milliseconds; the bound is
    /// only there so a broken journey fails instead of hanging).
    async fn screen_until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.view().await;
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

    /// Waits until the kiosk's profile cache holds `token` (`cached`) or not.
    async fn cache_until(&self, token: &kiosk_protocol::CardToken, cached: bool, what: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.demo.kiosk.db.profile(token).unwrap().is_some() != cached {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screen(&self, name: &str) -> Value {
        self.screen_until(name, |v| v["body"]["screen"] == name)
            .await
    }

    /// Waits until the kiosk's outbox is empty and returns how many events it journaled.
    async fn synced(&self) -> u64 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stats = self.demo.kiosk.db.journal().stats().expect("stats");
            if stats.pending == 0 {
                return stats.events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} events never synced",
                stats.pending
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Logs in to the counter page with the PIN; returns the session cookie.
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

    async fn staff(&self, cookie: &str, counter: &str, command: Value) -> reqwest::Response {
        self.http
            .post(self.ui("/api/counter/command"))
            .header("cookie", cookie)
            .json(&json!({"counter": counter, "command": command}))
            .send()
            .await
            .unwrap()
    }

    /// Staff at counter 1 call turn `label` and finish serving it.
    async fn serve(&self, label: &str) {
        let cookie = self.staff_cookie().await;
        let called = self
            .staff(
                &cookie,
                "1",
                json!({"action": "call_label", "label": label}),
            )
            .await;
        assert!(
            called.status().is_success(),
            "call {label}: {}",
            called.status()
        );
        let board: Value = self
            .http
            .get(self.ui("/api/counter/board"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let turn_id = board["serving"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["label"] == label)
            .unwrap_or_else(|| panic!("{label} not served: {board}"))["turn_id"]
            .clone();
        let served = self
            .staff(
                &cookie,
                "1",
                json!({"action": "served", "turn_id": turn_id}),
            )
            .await;
        assert!(
            served.status().is_success(),
            "serve {label}: {}",
            served.status()
        );
    }

    /// The signed QR of the last coupon the virtual printer printed.
    fn last_coupon_qr(&self) -> String {
        let record = self.demo.kiosk.sims.printer.as_ref().unwrap().record();
        record
            .codes
            .iter()
            .rev()
            .find(|c| c.symbology == "QR" && c.data.starts_with("KC1."))
            .map(|c| c.data.clone())
            .expect("a coupon QR was printed")
    }

    fn count(&self, t: &str) -> usize {
        self.journal_types().iter().filter(|x| *x == t).count()
    }

    /// Kiosk `k` (1 to N) of the store.
    fn kiosk(&self, k: usize) -> &kiosk::runtime::Running {
        if k == 1 {
            &self.demo.kiosk
        } else {
            &self.demo.others[k - 2].kiosk
        }
    }

    /// Polls kiosk `k`'s screen until `pred` holds.
    async fn screen_at(&self, k: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let url = format!("http://{}/api/kiosk/view", self.kiosk(k).ui_addr);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.get_json(url.clone()).await;
            if pred(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "kiosk {k} never showed {what}; last: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn touch_at(&self, k: usize, body: Value) {
        let url = format!("http://{}/api/kiosk/touch", self.kiosk(k).ui_addr);
        let res = self.post(url, body).await;
        assert!(res.status().is_success(), "touch refused: {}", res.status());
    }

    /// Scans `text` at kiosk `k`'s simulated scanner.
    async fn scan_at(&self, k: usize, text: &str) {
        self.panel_post(
            &format!("/api/kiosks/{k}/scan"),
            json!({"action": "text", "text": text}),
        )
        .await;
    }

    /// Waits until kiosk `k` holds a store op of kind `step` (`rate`, `redeem`, `serve`, ...).
    async fn until_op_at(&self, k: usize, step: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ops = self
                .kiosk(k)
                .store
                .log
                .read()
                .unwrap()
                .after(&std::collections::BTreeMap::new(), usize::MAX);
            if ops
                .iter()
                .any(|op| serde_json::to_value(op).unwrap()["step"]["step"] == step)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "kiosk {k} never learnt a {step} op"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn count_at(&self, k: usize, t: &str) -> usize {
        let j = self.kiosk(k).db.journal();
        j.sql()
            .query_row("SELECT count(*) FROM events WHERE type = ?1", [t], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| usize::try_from(n).unwrap_or(0))
            .unwrap()
    }

    fn journal_types(&self) -> Vec<String> {
        let j = self.demo.kiosk.db.journal();
        let mut st = j
            .sql()
            .prepare("SELECT type FROM events ORDER BY seq")
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    async fn assert_crm_has_every_event_once(&self) {
        let kiosk_events = self.synced().await;
        let crm_events = self.demo.crm.event_count().await.expect("crm count");
        assert_eq!(
            crm_events, kiosk_events,
            "the CRM holds each kiosk event exactly once"
        );
    }
}

fn has(types: &[String], t: &str) -> bool {
    types.iter().any(|x| x == t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identified_customer_is_greeted_gets_a_printed_ticket_answers_the_survey_and_it_all_reaches_the_crm()
 {
    let h = Harness::start().await;
    h.screen("attract").await;
    // Ana's profile reaches the kiosk through the sync feed.
    let ana = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    h.cache_until(&ana, true, "feed never brought Ana").await;
    h.panel_post("/api/card", json!({"action": "customer", "index": 0}))
        .await;
    let greeting = h.screen("greeting").await;
    assert_eq!(greeting["body"]["name"], "Ana");
    assert!(greeting["body"]["campaign"].is_string(), "{greeting}");
    h.panel_post("/api/card", json!({"action": "remove"})).await;
    h.touch(json!({"action": "continue"})).await;
    h.screen("choose_service").await;
    h.touch(json!({"action": "choose_service", "service": "A"}))
        .await;
    let goodbye = h
        .screen_until("a printed goodbye", |v| {
            v["body"]["screen"] == "goodbye" && v["body"]["printed"] == true
        })
        .await;
    let label = goodbye["body"]["turn"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(label.starts_with("A-"), "{goodbye}");
    assert!(
        goodbye["body"]["coupon"].is_object(),
        "VIP coupon: {goodbye}"
    );

    // The ticket came out of the virtual printer with the turn, and as a PNG.
    let printed = h.demo.kiosk.sims.printer.as_ref().unwrap().record().text();
    assert!(printed.contains(&label), "{printed}");
    let pngs: Vec<_> = std::fs::read_dir(&h.demo.tickets_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(pngs.iter().any(|n| n.starts_with(&label)), "{pngs:?}");

    // The goodbye asks no survey: it comes after the service, by scanning the ticket.
    assert!(goodbye["body"].get("survey").is_none(), "{goodbye}");
    h.touch(json!({"action": "done"})).await;
    h.screen("attract").await;
    h.serve(&label).await;
    h.panel_post("/api/scan", json!({"action": "last_ticket"}))
        .await;
    h.screen("survey").await;
    h.touch(json!({"action": "survey_score", "score": 9})).await;
    h.touch(json!({"action": "survey_reason", "reason": "staff"}))
        .await;
    h.screen("attract").await;

    let types = h.journal_types();
    for t in [
        "card_tapped",
        "customer_identified",
        "campaign_shown",
        "ticket_issued",
        "coupon_issued",
        "ticket_printed",
        "survey_answered",
    ] {
        assert!(has(&types, t), "{t} missing from {types:?}");
    }
    h.assert_crm_has_every_event_once().await;
    let stats = h
        .demo
        .crm
        .stats(crm_endpoint::DEMO_STORE_ID.into())
        .await
        .unwrap();
    let shown = format!("{stats:?}");
    assert!(shown.contains("demo-vip-coffee"), "{shown}");
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_card_registers_with_separate_consents_and_becomes_a_crm_customer() {
    let h = Harness::start().await;
    h.panel_post("/api/card", json!({"action": "unknown"}))
        .await;
    h.screen("offer_registration").await;
    h.panel_post("/api/card", json!({"action": "remove"})).await;
    h.touch(json!({"action": "register"})).await;
    let form = h.screen("registering").await;
    let shown = form.to_string();
    assert!(
        shown.contains("demo-2026-01"),
        "policy version on screen: {shown}"
    );
    h.touch(
        json!({"action": "submit_registration", "name": "Lucía", "email": null,
                   "phone": null, "consents": ["profile"]}),
    )
    .await;
    let greeting = h.screen("greeting").await;
    assert_eq!(greeting["body"]["name"], "Lucía");
    h.touch(json!({"action": "cancel"})).await;
    h.screen("attract").await;
    let types = h.journal_types();
    assert!(has(&types, "customer_registered"), "{types:?}");
    let consents = types.iter().filter(|t| *t == "consent_given").count();
    assert_eq!(
        consents, 1,
        "only the ticked consent is recorded: {types:?}"
    );
    h.assert_crm_has_every_event_once().await;
    let token: String = h
        .demo
        .kiosk
        .db
        .journal()
        .sql()
        .query_row(
            "SELECT card_token FROM events WHERE type = 'customer_registered'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let customer = h
        .demo
        .crm
        .customer(kiosk_protocol::CardToken::try_from(token).unwrap())
        .await
        .unwrap()
        .expect("the CRM created the customer from the registration");
    assert_eq!(customer.display_name.as_deref(), Some("Lucía"));
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_visitor_gets_the_number_and_qr_on_screen_when_the_paper_is_out_and_staff_call_the_turn()
 {
    let h = Harness::start().await;
    h.panel_post("/api/printer", json!({"paper_out": true}))
        .await;
    h.screen_until("the printer reported down", |v| v["printer_ok"] == false)
        .await;
    h.touch(json!({"action": "start"})).await;
    h.screen("choose_service").await;
    h.touch(json!({"action": "choose_service", "service": "B"}))
        .await;
    let goodbye = h
        .screen_until("the unprinted goodbye", |v| {
            v["body"]["screen"] == "goodbye" && v["body"]["printed"] == false
        })
        .await;
    assert!(
        goodbye["body"]["qr_svg"]
            .as_str()
            .is_some_and(|s| s.contains("<svg")),
        "QR on screen instead: {goodbye}"
    );
    let label = goodbye["body"]["turn"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    h.touch(json!({"action": "done"})).await;

    // Staff log in with the PIN and call the next B turn: it is this one.
    let cookie = h.staff_cookie().await;
    let call = h
        .staff(
            &cookie,
            "2",
            json!({"action": "call_next", "services": ["B"]}),
        )
        .await;
    assert!(call.status().is_success(), "{}", call.status());
    let ack: Value = call.json().await.unwrap();
    assert_eq!(ack["label"], label.as_str());
    let lobby = h.get_json(h.ui("/api/lobby/view")).await;
    assert!(lobby.to_string().contains(&label), "{lobby}");

    let types = h.journal_types();
    assert!(has(&types, "ticket_print_failed"), "{types:?}");
    assert!(has(&types, "turn_called"), "{types:?}");
    h.assert_crm_has_every_event_once().await;

    // The panel's "Paper out" button, pressed again, puts the paper back: the page posts every
    // switch as the panel shows it, and "Offline" was never pressed, so the printer comes back.
    let state = h.get_json(h.panel("/api/state")).await;
    assert_eq!(state["paper_out"], true, "{state}");
    assert_eq!(
        state["offline"], false,
        "the Offline switch is not on: {state}"
    );
    h.panel_post(
        "/api/printer",
        json!({"paper_out": false, "cover_open": state["cover_open"], "offline": state["offline"]}),
    )
    .await;
    h.screen_until("the printer back after the paper", |v| {
        v["printer_ok"] == true
    })
    .await;
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_while_the_network_is_cut_wait_in_the_outbox_and_drain_once_it_is_back() {
    let h = Harness::start().await;
    h.synced().await;
    h.panel_post("/api/network", json!({"up": false})).await;
    for _ in 0..3 {
        h.touch(json!({"action": "start"})).await;
        h.screen("choose_service").await;
        h.touch(json!({"action": "choose_service", "service": "A"}))
            .await;
        h.screen_until("printed", |v| v["body"]["printed"] == true)
            .await;
        h.touch(json!({"action": "done"})).await;
        h.screen("attract").await;
    }
    let pending = h.demo.kiosk.db.journal().stats().unwrap().pending;
    assert!(pending >= 6, "events wait while offline: {pending}");
    h.panel_post("/api/network", json!({"up": true})).await;
    h.assert_crm_has_every_event_once().await;
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanning_the_ticket_later_opens_its_survey_and_forged_or_noisy_scans_do_not() {
    let h = Harness::start().await;
    h.touch(json!({"action": "start"})).await;
    h.screen("choose_service").await;
    h.touch(json!({"action": "choose_service", "service": "A"}))
        .await;
    let goodbye = h
        .screen_until("printed", |v| v["body"]["printed"] == true)
        .await;
    let label = goodbye["body"]["turn"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    h.touch(json!({"action": "done"})).await;
    h.screen("attract").await;

    // Noise and a forged ticket (a valid one with its last character changed) are refused.
    h.panel_post("/api/scan", json!({"action": "noise"})).await;
    let qr = h.demo.kiosk.last_ticket_qr.lock().unwrap().clone().unwrap();
    let mut forged = qr.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    h.panel_post("/api/scan", json!({"action": "text", "text": forged}))
        .await;
    h.screen_until("two refusals", |v| {
        v["body"]["screen"] == "attract" && v["notice"]["kind"] == "code_not_recognised"
    })
    .await;

    // The real ticket, through the scanner's pty, before the turn was served: a kind word.
    h.panel_post("/api/scan", json!({"action": "last_ticket"}))
        .await;
    h.screen_until("not served yet", |v| {
        v["body"]["screen"] == "attract" && v["notice"]["kind"] == "survey_not_served_yet"
    })
    .await;
    // Served: now it opens its survey.
    h.serve(&label).await;
    h.panel_post("/api/scan", json!({"action": "last_ticket"}))
        .await;
    let survey = h.screen("survey").await;
    assert_eq!(survey["body"]["turn_label"], label.as_str());
    h.touch(json!({"action": "survey_score", "score": 10}))
        .await;
    h.touch(json!({"action": "survey_reason", "reason": null}))
        .await;
    h.screen("attract").await;
    assert_eq!(h.count("survey_answered"), 1);
    // The same ticket again: refused kindly, recorded nowhere.
    h.panel_post("/api/scan", json!({"action": "last_ticket"}))
        .await;
    h.screen_until("already answered", |v| {
        v["body"]["screen"] == "attract" && v["notice"]["kind"] == "survey_already_answered"
    })
    .await;
    assert_eq!(h.count("survey_answered"), 1);
    h.assert_crm_has_every_event_once().await;
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printed_coupon_scanned_at_the_kiosk_converts_its_variant_once_and_the_counter_says_it_was_used()
 {
    let h = Harness::start().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !h
        .demo
        .kiosk
        .db
        .campaigns()
        .unwrap()
        .iter()
        .any(|c| c.id == "demo-welcome")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed never brought the campaigns"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An anonymous visitor gets the welcome campaign (aimed at visitors without a card) and its
    // coupon on the ticket and the goodbye.
    h.touch(json!({"action": "start"})).await;
    h.screen("choose_service").await;
    h.touch(json!({"action": "choose_service", "service": "A"}))
        .await;
    let goodbye = h
        .screen_until("printed", |v| v["body"]["printed"] == true)
        .await;
    assert!(goodbye["body"]["campaign"].is_string(), "{goodbye}");
    let code = goodbye["body"]["coupon"]["code"]
        .as_str()
        .expect("the welcome coupon")
        .to_owned();
    assert!(code.starts_with("BIENV-"), "{code}");
    let qr = h.last_coupon_qr();
    h.touch(json!({"action": "done"})).await;
    h.screen("attract").await;

    // Scanned at the attract screen: redeemed, the visitor goes on to the services.
    h.panel_post("/api/scan", json!({"action": "text", "text": qr}))
        .await;
    h.screen_until("coupon applied", |v| {
        v["body"]["screen"] == "choose_service" && v["notice"]["kind"] == "coupon_redeemed"
    })
    .await;
    assert_eq!(h.count("coupon_redeemed"), 1);
    h.touch(json!({"action": "cancel"})).await;
    h.screen("attract").await;

    // Typed at the counter page: already used, kindly; a made-up code is not ours.
    let cookie = h.staff_cookie().await;
    let again = h
        .staff(
            &cookie,
            "1",
            json!({"action": "redeem_coupon", "code": code.to_lowercase()}),
        )
        .await;
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    let bogus = h
        .staff(
            &cookie,
            "1",
            json!({"action": "redeem_coupon", "code": "BIENV-Z-0123456789"}),
        )
        .await;
    assert_eq!(bogus.status(), 409);
    assert_eq!(h.count("coupon_redeemed"), 1);
    h.assert_crm_has_every_event_once().await;

    // The CRM converts the variant printed on the coupon, once.
    let variant = code.split('-').nth(1).unwrap().to_lowercase();
    let stats = h
        .demo
        .crm
        .stats(crm_endpoint::DEMO_STORE_ID.into())
        .await
        .unwrap();
    let row = stats
        .campaigns
        .iter()
        .find(|c| c.campaign_id == "demo-welcome" && c.variant == variant)
        .unwrap_or_else(|| panic!("no welcome {variant} row: {stats:?}"));
    assert_eq!((row.shown, row.redeemed), (1, 1), "{stats:?}");
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_the_cache_does_not_know_is_looked_up_at_the_crm_greeted_by_name_and_cached() {
    let h = Harness::start().await;
    let ana = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    h.cache_until(&ana, true, "feed never brought Ana").await;
    // As for a customer registered elsewhere since the last feed pull: not in this cache.
    h.demo
        .kiosk
        .db
        .journal()
        .sql()
        .execute("DELETE FROM profiles WHERE card_token = ?1", [ana.as_str()])
        .unwrap();
    assert!(h.demo.kiosk.db.profile(&ana).unwrap().is_none());

    h.panel_post("/api/card", json!({"action": "customer", "index": 0}))
        .await;
    let greeting = h.screen("greeting").await;
    assert_eq!(greeting["body"]["name"], "Ana", "{greeting}");
    let cached = h.demo.kiosk.db.profile(&ana).unwrap();
    assert_eq!(
        cached.map(|p| p.display_name).as_deref(),
        Some("Ana"),
        "the CRM's answer is cached for the next tap"
    );
    let identified: Vec<String> = {
        let j = h.demo.kiosk.db.journal();
        let mut st = j
            .sql()
            .prepare("SELECT body FROM events WHERE type = 'customer_identified'")
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(identified.len(), 1, "{identified:?}");
    let body: Value = serde_json::from_str(&identified[0]).unwrap();
    assert_eq!(body["payload"]["source"], "crm", "{body}");
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_that_stalls_during_a_live_lookup_costs_the_customer_a_moment_not_the_journey() {
    let h = Harness::start().await;
    let ana = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    let ben = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[1]);
    h.cache_until(&ana, true, "feed never brought Ana").await;
    h.cache_until(&ben, true, "feed never brought the second customer")
        .await;
    // Both registered elsewhere since the last feed pull, as far as this kiosk knows.
    for token in [&ana, &ben] {
        h.demo
            .kiosk
            .db
            .journal()
            .sql()
            .execute(
                "DELETE FROM profiles WHERE card_token = ?1",
                [token.as_str()],
            )
            .unwrap();
    }
    // A black hole between the kiosk and the CRM (a captive portal, a dead uplink): connections
    // open and nothing ever comes back, the worst case for a lookup with a customer waiting.
    h.panel_post("/api/network", json!({"up": true, "stalled": true}))
        .await;
    let panel = h.get_json(h.panel("/api/state")).await;
    assert_eq!(panel["network"], "stalled", "{panel}");
    h.panel_post("/api/card", json!({"action": "customer", "index": 0}))
        .await;
    // The live lookup gives up after its bound: the card counts as unknown, so Ana is offered
    // the registration (not greeted by a name the kiosk could not get), and can go on.
    h.screen("offer_registration").await;
    assert!(h.demo.kiosk.db.profile(&ana).unwrap().is_none());
    h.panel_post("/api/card", json!({"action": "remove"})).await;
    h.touch(json!({"action": "skip_registration"})).await;
    h.screen("choose_service").await;
    h.touch(json!({"action": "cancel"})).await;
    h.screen("attract").await;

    // The network comes back: what was journaled during the stall reaches the CRM once, and the
    // next customer the cache does not know is looked up and greeted by name. (Another card:
    // Ana's again within the reader's removal debounce would rightly be the same tap.)
    h.panel_post("/api/network", json!({"up": true})).await;
    h.assert_crm_has_every_event_once().await;
    h.panel_post("/api/card", json!({"action": "customer", "index": 1}))
        .await;
    let greeting = h.screen("greeting").await;
    assert_eq!(
        greeting["body"]["name"],
        crm_endpoint::DEMO_CUSTOMERS[1].display_name,
        "{greeting}"
    );
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_erased_at_the_crm_leaves_the_kiosk_cache_and_is_never_greeted_again() {
    let h = Harness::start().await;
    let ben = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[1]);
    h.cache_until(&ben, true, "feed never brought Ben").await;
    assert!(h.demo.crm.erase_customer(ben.clone(), 0).await.unwrap());
    h.cache_until(&ben, false, "the erasure never reached the kiosk")
        .await;
    h.panel_post("/api/card", json!({"action": "customer", "index": 1}))
        .await;
    let v = h
        .screen_until("the tap handled", |v| {
            v["body"]["screen"] != "attract" && v["body"]["screen"] != "identifying"
        })
        .await;
    assert!(!v.to_string().contains("Ben"), "{v}");
    assert!(has(&h.journal_types(), "customer_erased"));
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_calls_the_turn_of_a_scanned_ticket_and_refuses_a_forged_one() {
    let h = Harness::start().await;
    h.touch(json!({"action": "start"})).await;
    h.screen("choose_service").await;
    h.touch(json!({"action": "choose_service", "service": "A"}))
        .await;
    let goodbye = h
        .screen_until("printed", |v| v["body"]["printed"] == true)
        .await;
    let label = goodbye["body"]["turn"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    let qr = h.demo.kiosk.last_ticket_qr.lock().unwrap().clone().unwrap();
    let cookie = h.staff_cookie().await;
    let forged = qr.replacen("KT1.", "KT1.A", 1);
    let refused = h
        .staff(
            &cookie,
            "1",
            json!({"action": "call_scanned", "code": forged}),
        )
        .await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let called = h
        .staff(&cookie, "1", json!({"action": "call_scanned", "code": qr}))
        .await;
    assert!(called.status().is_success(), "{}", called.status());
    let ack: Value = called.json().await.unwrap();
    assert_eq!(ack["label"], label.as_str());
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_stepping_in_front_wakes_the_attract_screen_and_the_status_led_shows_a_serving_kiosk()
 {
    let h = Harness::start().await;
    let gpio = h.demo.kiosk.sims.gpio.clone().expect("simulated GPIO");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !gpio.led() {
        assert!(tokio::time::Instant::now() < deadline, "the LED never lit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.panel_post("/api/presence", json!({"here": true})).await;
    h.screen_until("an inviting attract screen", |v| {
        v["body"]["screen"] == "attract" && v["body"]["inviting"] == true
    })
    .await;
    h.panel_post("/api/presence", json!({"here": false})).await;
    h.screen_until("a quiet attract screen", |v| v["body"]["inviting"] == false)
        .await;
    // A printer gone absent (offline) darkens the LED.
    h.panel_post("/api/printer", json!({"offline": true})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while gpio.led() {
        assert!(tokio::time::Instant::now() < deadline, "the LED stayed lit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_card_reader_is_told_when_someone_is_in_front_of_the_kiosk_or_on_a_journey() {
    // What the card reader's poll pace follows (kiosk_drivers::card::pace, where the pacing
    // itself is tested on virtual time): the presence sensor through its thread, the screen
    // through the executor's published view.
    let h = Harness::start().await;
    let pace = h.demo.kiosk.card_pace.clone();
    let until = async |what: &str, holds: &dyn Fn() -> bool| {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !holds() {
            assert!(tokio::time::Instant::now() < deadline, "never {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    until("a working sensor that sees nobody", &|| {
        pace.sensor_reports() && !pace.someone_there()
    })
    .await;

    h.panel_post("/api/presence", json!({"here": true})).await;
    until("someone seen by the sensor", &|| pace.someone_there()).await;
    h.screen_until("the inviting attract screen", |v| {
        v["body"]["screen"] == "attract" && v["body"]["inviting"] == true
    })
    .await;
    h.panel_post("/api/presence", json!({"here": false})).await;
    until("nobody seen by the sensor", &|| !pace.someone_there()).await;

    // A customer the sensor does not see, using the screen.
    h.touch(json!({"action": "start"})).await;
    h.screen("choose_service").await;
    until("a journey on the screen", &|| pace.someone_there()).await;
    h.touch(json!({"action": "cancel"})).await;
    h.screen("attract").await;
    until("the attract screen alone", &|| !pace.someone_there()).await;
    assert!(pace.sensor_reports());
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survey_opens_after_the_turn_was_served_and_takes_one_answer_across_kiosks() {
    let h = Harness::store(2).await;
    // A turn at kiosk 1, served at kiosk 1's counter.
    h.touch_at(1, json!({"action": "start"})).await;
    h.touch_at(1, json!({"action": "choose_service", "service": "A"}))
        .await;
    let goodbye = h
        .screen_at(1, "printed", |v| v["body"]["printed"] == true)
        .await;
    let label = goodbye["body"]["turn"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    let ticket = h.demo.kiosk.last_ticket_qr.lock().unwrap().clone().unwrap();
    h.touch_at(1, json!({"action": "done"})).await;
    // Scanned at kiosk 2 before the service: rate us after being served.
    h.until_op_at(2, "issue").await;
    h.scan_at(2, &ticket).await;
    h.screen_at(2, "not served yet", |v| {
        v["notice"]["kind"] == "survey_not_served_yet"
    })
    .await;
    h.serve(&label).await;
    // On the way out, at kiosk 2: the survey opens, one answer.
    h.until_op_at(2, "serve").await;
    h.scan_at(2, &ticket).await;
    h.screen_at(2, "the survey", |v| v["body"]["screen"] == "survey")
        .await;
    h.touch_at(2, json!({"action": "survey_score", "score": 0}))
        .await;
    h.touch_at(2, json!({"action": "survey_reason", "reason": null}))
        .await;
    h.screen_at(2, "thanks", |v| {
        v["body"]["survey"]["state"]["state"] == "done" || v["body"]["screen"] == "attract"
    })
    .await;
    assert_eq!(h.count_at(2, "survey_answered"), 1);
    // The same ticket at kiosk 1, once the mark arrived: refused, recorded nowhere.
    h.until_op_at(1, "rate").await;
    h.scan_at(1, &ticket).await;
    h.screen_at(1, "already answered", |v| {
        v["body"]["screen"] == "attract" && v["notice"]["kind"] == "survey_already_answered"
    })
    .await;
    assert_eq!(h.count_at(1, "survey_answered"), 0);
    assert_eq!(h.count_at(2, "survey_answered"), 1);
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_scanned_at_one_kiosk_is_used_at_the_other_and_converts_once() {
    let h = Harness::store(2).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !h
        .demo
        .kiosk
        .db
        .campaigns()
        .unwrap()
        .iter()
        .any(|c| c.id == "demo-welcome")
    {
        assert!(tokio::time::Instant::now() < deadline, "no campaigns");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.touch_at(1, json!({"action": "start"})).await;
    h.touch_at(1, json!({"action": "choose_service", "service": "A"}))
        .await;
    let goodbye = h
        .screen_at(1, "printed", |v| v["body"]["printed"] == true)
        .await;
    let code = goodbye["body"]["coupon"]["code"]
        .as_str()
        .expect("the welcome coupon")
        .to_owned();
    let qr = h.last_coupon_qr();
    h.touch_at(1, json!({"action": "done"})).await;
    // Redeemed at kiosk 2's attract screen.
    h.scan_at(2, &qr).await;
    h.screen_at(2, "coupon applied", |v| {
        v["notice"]["kind"] == "coupon_redeemed"
    })
    .await;
    // Used again at kiosk 1 once the mark arrived: already used.
    h.until_op_at(1, "redeem").await;
    h.scan_at(1, &qr).await;
    h.screen_at(1, "already used", |v| {
        v["notice"]["kind"] == "coupon_already_used"
    })
    .await;
    assert_eq!(
        (
            h.count_at(1, "coupon_redeemed"),
            h.count_at(2, "coupon_redeemed")
        ),
        (0, 1)
    );
    // The CRM: one exposure (kiosk 1's visit), one conversion of the variant on the coupon.
    let variant = code.split('-').nth(1).unwrap().to_lowercase();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = h
            .demo
            .crm
            .stats(crm_endpoint::DEMO_STORE_ID.into())
            .await
            .unwrap();
        let row = stats
            .campaigns
            .iter()
            .find(|c| c.campaign_id == "demo-welcome" && c.variant == variant)
            .map(|r| (r.shown, r.redeemed));
        if row == Some((1, 1)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CRM never counted one exposure and one conversion: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_is_never_asked_to_join_and_her_ticket_carries_no_join_us_line() {
    let h = Harness::start().await;
    // Carmen is a member in the segment `new`; the welcome campaign is for visitors without a
    // card.
    let carmen = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[2]);
    h.cache_until(&carmen, true, "feed never brought Carmen")
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.demo.kiosk.db.campaigns().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no campaigns");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.panel_post("/api/card", json!({"action": "customer", "index": 2}))
        .await;
    let greeting = h.screen("greeting").await;
    assert_eq!(greeting["body"]["name"], "Carmen");
    assert!(greeting["body"]["campaign"].is_null(), "{greeting}");
    h.panel_post("/api/card", json!({"action": "remove"})).await;
    h.touch(json!({"action": "continue"})).await;
    h.touch(json!({"action": "choose_service", "service": "A"}))
        .await;
    let goodbye = h
        .screen_until("printed", |v| v["body"]["printed"] == true)
        .await;
    assert!(goodbye["body"]["campaign"].is_null(), "{goodbye}");
    assert!(goodbye["body"]["coupon"].is_null(), "{goodbye}");
    let printed = h.demo.kiosk.sims.printer.as_ref().unwrap().record().text();
    assert!(!printed.contains("socio"), "{printed}");
    assert!(!has(&h.journal_types(), "campaign_shown"));
    h.demo.stop().await;
}

/// The first object anywhere in `v` whose `key` is `value`.
fn find_object<'a>(v: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) if m.get(key).and_then(Value::as_str) == Some(value) => Some(v),
        Value::Object(m) => m.values().find_map(|x| find_object(x, key, value)),
        Value::Array(a) => a.iter().find_map(|x| find_object(x, key, value)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_a_picture_of_every_printed_page_a_reprint_marked_copy_beside_its_original()
{
    let h = Harness::start().await;
    h.touch(json!({"action": "start"})).await;
    h.screen("choose_service").await;
    h.touch(json!({"action": "choose_service", "service": "A"}))
        .await;
    let goodbye = h
        .screen_until("printed", |v| v["body"]["printed"] == true)
        .await;
    let label = goodbye["body"]["turn"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    h.touch(json!({"action": "done"})).await;

    let cookie = h.staff_cookie().await;
    // Staff reprint the ticket of the turn at their counter.
    let call = h
        .staff(
            &cookie,
            "1",
            json!({"action": "call_next", "services": ["A"]}),
        )
        .await;
    assert!(call.status().is_success(), "call: {}", call.status());
    let board: Value = h
        .http
        .get(h.ui("/api/counter/board"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let turn_id = find_object(&board, "label", &label)
        .and_then(|t| t["turn_id"].as_str())
        .unwrap_or_else(|| panic!("turn {label} on the board: {board}"))
        .to_owned();
    for _ in 0..2 {
        let r = h
            .staff(
                &cookie,
                "1",
                json!({"action": "reprint", "turn_id": turn_id}),
            )
            .await;
        assert!(r.status().is_success(), "reprint: {}", r.status());
    }
    let r = h
        .staff(&cookie, "1", json!({"action": "print_report"}))
        .await;
    assert!(r.status().is_success(), "report: {}", r.status());

    let printed = h.demo.kiosk.sims.printer.as_ref().unwrap().record().text();
    assert_eq!(
        printed.matches("*** COPIA ***").count(),
        4,
        "two reprints, each marked above and below the number: {printed}"
    );
    let mut pngs: Vec<String> = std::fs::read_dir(&h.demo.tickets_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pngs.sort();
    let of_turn: Vec<_> = pngs.iter().filter(|n| n.starts_with(&label)).collect();
    assert_eq!(of_turn.len(), 3, "the original and two copies: {pngs:?}");
    assert!(
        of_turn.iter().any(|n| n.ends_with("-copia.png")),
        "{pngs:?}"
    );
    assert!(
        of_turn.iter().any(|n| n.ends_with("-copia-2.png")),
        "{pngs:?}"
    );
    assert!(
        pngs.iter()
            .any(|n| n.starts_with("informe-") && n.ends_with(".png")),
        "the manager report as a picture too: {pngs:?}"
    );
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_requests_held_on_the_staff_listener_leave_the_screen_and_the_counter_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start().await;
    let staff = h.demo.kiosk.staff_addr;
    // A device on the shop LAN (127.0.0.2 here) opens 100 connections and sends half a request
    // on each, the way a slow-client attack holds a server's descriptors.
    let mut held = Vec::new();
    for _ in 0..100 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = socket.connect(staff).await.unwrap();
        let _ = s
            .write_all(b"GET /counter HTTP/1.1\r\nhost: kiosk\r\n")
            .await;
        held.push(s);
    }
    // The customer screen and the counter page (from another address) still answer.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let screen = quick.get(h.ui("/api/kiosk/view")).send().await.unwrap();
    assert!(screen.status().is_success(), "{}", screen.status());
    let counter = quick
        .get(format!("http://{staff}/counter"))
        .send()
        .await
        .expect("the counter page answers during the hold");
    assert!(counter.status().is_success(), "{}", counter.status());
    // And the kiosk closes every held connection: over the per-peer cap at once (503), the
    // others when the header timeout passes.
    let mut busy = 0;
    for s in &mut held {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got))
            .await
            .expect("the kiosk closes a held half request")
            .unwrap();
        busy += usize::from(got.starts_with(b"HTTP/1.1 503"));
    }
    assert_eq!(busy, 100 - kiosk_serve::Limits::LAN.max_per_peer);
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_rated_on_the_phone_is_rated_at_every_kiosk_without_an_answer_journaled() {
    let h = Harness::store(2).await;
    h.touch_at(1, json!({"action": "start"})).await;
    h.touch_at(1, json!({"action": "choose_service", "service": "A"}))
        .await;
    let goodbye = h
        .screen_at(1, "printed", |v| v["body"]["printed"] == true)
        .await;
    let label = goodbye["body"]["turn"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    let ticket = h.demo.kiosk.last_ticket_qr.lock().unwrap().clone().unwrap();
    h.touch_at(1, json!({"action": "done"})).await;
    h.serve(&label).await;
    let turn_id = h
        .demo
        .kiosk
        .store
        .log
        .read()
        .unwrap()
        .after(&std::collections::BTreeMap::new(), usize::MAX)
        .iter()
        .find_map(|op| match &op.step {
            kiosk_store::Step::Issue { turn_id, .. } => Some(*turn_id),
            _ => None,
        })
        .expect("the issue op");
    // The customer rates the turn on their phone: the CRM's feed carries `turn_rated` (written
    // here as the CRM writes its feed items).
    let crm = rusqlite::Connection::open(h._dir.path().join("crm.db")).unwrap();
    crm.busy_timeout(Duration::from_secs(5)).unwrap();
    let item = serde_json::to_string(&kiosk_protocol::wire::FeedItem::TurnRated(
        kiosk_protocol::wire::TurnRated { turn_id },
    ))
    .unwrap();
    crm.execute(
        "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'turn_rated', ?2, ?3)",
        rusqlite::params![crm_endpoint::DEMO_STORE_ID, turn_id.to_string(), item],
    )
    .unwrap();
    // Both kiosks hold the store's rate mark; a scan at either says it was rated.
    h.until_op_at(1, "rate").await;
    h.until_op_at(2, "rate").await;
    h.until_op_at(2, "serve").await;
    h.scan_at(2, &ticket).await;
    h.screen_at(2, "already answered", |v| {
        v["body"]["screen"] == "attract" && v["notice"]["kind"] == "survey_already_answered"
    })
    .await;
    assert_eq!(
        (
            h.count_at(1, "survey_answered"),
            h.count_at(2, "survey_answered")
        ),
        (0, 0),
        "the CRM has the answer; no kiosk journals one"
    );
    h.demo.stop().await;
}

impl Harness {
    /// Saves `campaign` at the demo's CRM through the admin API.
    async fn save_campaign(&self, campaign: &kiosk_protocol::wire::Campaign) {
        let res = self
            .http
            .post(format!("http://{}/v1/admin/campaigns", self.demo.crm_addr))
            .header("x-admin-token", &self.demo.admin_token)
            .json(campaign)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    }

    /// Puts the demo store in `region` through the admin API.
    async fn place_store(&self, region: &str) {
        let res = self
            .http
            .put(format!(
                "http://{}/v1/admin/stores/{}/location",
                self.demo.crm_addr,
                crm_endpoint::DEMO_STORE_ID
            ))
            .header("x-admin-token", &self.demo.admin_token)
            .json(&json!({ "region": region }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    }

    /// Waits until kiosk `k`'s campaign cache satisfies `pred` (the kiosk polls its feed every
    /// few seconds in the demo).
    async fn cache_at(
        &self,
        k: usize,
        what: &str,
        pred: impl Fn(&[kiosk_protocol::wire::Campaign]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !pred(&self.kiosk(k).db.campaigns().unwrap()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "kiosk {k}'s cache never showed {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The demo's VIP customer (card 0) takes a turn of service A at kiosk `k`; returns the
    /// greeting and the goodbye once printed.
    async fn vip_turn_at(&self, k: usize) -> (Value, Value) {
        self.panel_post(
            &format!("/api/kiosks/{k}/card"),
            json!({"action": "customer", "index": 0}),
        )
        .await;
        let greeting = self
            .screen_at(k, "the greeting", |v| v["body"]["screen"] == "greeting")
            .await;
        // The card leaves the reader, as a customer takes it back.
        self.panel_post(
            &format!("/api/kiosks/{k}/card"),
            json!({"action": "remove"}),
        )
        .await;
        self.touch_at(k, json!({"action": "continue"})).await;
        self.touch_at(k, json!({"action": "choose_service", "service": "A"}))
            .await;
        let goodbye = self
            .screen_at(k, "printed", |v| {
                v["body"]["screen"] == "goodbye" && v["body"]["printed"] == true
            })
            .await;
        self.touch_at(k, json!({"action": "done"})).await;
        self.screen_at(k, "attract", |v| v["body"]["screen"] == "attract")
            .await;
        (greeting, goodbye)
    }
}

/// The last day signed into a coupon QR (`KC1.<payload>.<tag>`: the campaign and code as
/// length-prefixed strings, then the Julian day), read without the key.
fn signed_expiry(qr: &str) -> time::Date {
    use base64::Engine as _;
    let payload = qr.split('.').nth(1).unwrap();
    let rec = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let campaign_len = usize::from(rec[0]);
    let code_at = 1 + campaign_len;
    let day_at = code_at + 1 + usize::from(rec[code_at]);
    let jd = i32::from_be_bytes(rec[day_at..day_at + 4].try_into().unwrap());
    time::Date::from_julian_day(jd).unwrap()
}

/// A campaign edited at the CRM with a picture and coupon rules (valid 7 days, one per card
/// holder) reaches both kiosks of the store through their feeds: the greeting shows the picture
/// (served by the kiosk, revalidated by ETag), the ticket's coupon expires 7 days after its
/// issue on screen, on paper and in its signed QR, and the same card holder's next turn, at
/// the other kiosk, gets the campaign without a coupon: the limit is the store's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaigns_picture_and_coupon_rules_reach_the_kiosks_and_the_limit_holds_store_wide() {
    let h = Harness::store(2).await;
    let mut vip = crm_endpoint::demo::demo_campaigns().remove(1);
    assert_eq!(vip.id, "demo-vip-coffee");
    vip.image = vip.content[0].image.clone();
    let coupon = vip.coupon.as_mut().unwrap();
    coupon.valid_days = Some(7);
    coupon.max_per_customer = Some(1);
    h.save_campaign(&vip).await;
    for k in [1, 2] {
        h.cache_at(k, "the coupon rules", |cs| {
            cs.iter().any(|c| {
                c.id == vip.id
                    && c.image.is_some()
                    && c.coupon.as_ref().unwrap().max_per_customer == Some(1)
            })
        })
        .await;
    }
    let token = crm_endpoint::demo_token(&crm_endpoint::DEMO_CUSTOMERS[0]);
    h.cache_until(&token, true, "the VIP's profile").await;

    let (greeting, goodbye) = h.vip_turn_at(1).await;
    let picture = &greeting["body"]["campaign_image"];
    assert_eq!(picture["alt"], "Una taza de café humeante", "{greeting}");
    let url = h.ui(picture["url"].as_str().unwrap());
    let res = h.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(&vip.image.as_ref().unwrap().data)
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), png.as_slice());
    let again = h
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(goodbye["body"]["campaign_image"], *picture);
    let expires = goodbye["body"]["coupon"]["expires_on"]
        .as_str()
        .expect("the coupon and its last day")
        .to_owned();
    let qr = h.last_coupon_qr();
    let signed = signed_expiry(&qr);
    assert_eq!(signed.to_string(), expires);
    let today = time::OffsetDateTime::now_utc().date();
    assert!(
        (6..=8).contains(&(signed - today).whole_days()),
        "7 days after the issue day: {signed}"
    );
    let printed = h.demo.kiosk.sims.printer.as_ref().unwrap().record().text();
    let (d, m, y) = (signed.day(), u8::from(signed.month()), signed.year());
    assert!(
        printed.contains(&format!("Válido hasta: {d:02}/{m:02}/{y}"))
            || printed.contains(&format!("Valid until: {signed}")),
        "{printed}"
    );

    // The same card holder at kiosk 2, once it holds kiosk 1's issue: the campaign, no coupon.
    h.until_op_at(2, "issue").await;
    let (greeting, goodbye) = h.vip_turn_at(2).await;
    assert!(greeting["body"]["campaign"].is_string(), "{greeting}");
    assert!(goodbye["body"]["coupon"].is_null(), "{goodbye}");
    assert!(goodbye["body"]["campaign"].is_string(), "{goodbye}");
    // And back at kiosk 1: still none.
    let (_, goodbye) = h.vip_turn_at(1).await;
    assert!(goodbye["body"]["coupon"].is_null(), "{goodbye}");
    assert_eq!(
        (
            h.count_at(1, "coupon_issued"),
            h.count_at(2, "coupon_issued")
        ),
        (1, 0)
    );
    h.demo.stop().await;
}

/// A campaign that stops targeting the store (its stores list changed, the store moved out of
/// its region) leaves the kiosk's cache at the next feed poll; moved back into the region, the
/// store gets it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_no_longer_aimed_at_the_store_leaves_the_kiosk_and_comes_back_with_it() {
    let h = Harness::start().await;
    let mut vip = crm_endpoint::demo::demo_campaigns().remove(1);
    let has = |present: bool| {
        let id = vip.id.clone();
        move |cs: &[kiosk_protocol::wire::Campaign]| cs.iter().any(|c| c.id == id) == present
    };
    h.cache_at(1, "the VIP campaign", has(true)).await;
    vip.stores = vec!["another-store".into()];
    h.save_campaign(&vip).await;
    h.cache_at(1, "the campaign withdrawn", has(false)).await;
    vip.stores = vec![];
    vip.regions = vec!["ES-MD".into()];
    h.save_campaign(&vip).await;
    h.cache_at(1, "the campaign of the store's region", has(true))
        .await;
    h.place_store("ES-CT").await;
    h.cache_at(1, "the campaign gone with the region", has(false))
        .await;
    h.place_store("ES-MD").await;
    h.cache_at(1, "the campaign back with the region", has(true))
        .await;
    // The welcome campaign, for the store by name, never moved.
    h.cache_at(1, "the welcome campaign kept", |cs| {
        cs.iter().any(|c| c.id == "demo-welcome")
    })
    .await;
    h.demo.stop().await;
}
