//! Store configuration from the CRM, end to end: the real `kiosk demo` (its kiosk runtime, the
//! embedded `crm-endpoint`, the simulated devices) driven over HTTP as the screen drives it, the
//! configuration set through the CRM's admin API. Version 1 is applied; version 2 waits for the
//! customer at the screen to finish; an invalid version 3 is refused, reported to the CRM and
//! `kiosk status`, and version 2 kept; after a restart the kiosk runs version 2 again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::Duration;

use kiosk::demo::{Demo, DemoOptions};
use serde_json::{Value, json};

/// Generous: the demo pulls the feed every 5 s and the machine may be loaded.
const WAIT: Duration = Duration::from_secs(60);

struct Harness {
    demo: Demo,
    http: reqwest::Client,
}

impl Harness {
    async fn start(dir: &std::path::Path) -> Self {
        Self::store(dir, 1).await
    }

    async fn store(dir: &std::path::Path, kiosks: usize) -> Self {
        let demo = kiosk::demo::start(DemoOptions {
            data_dir: dir.to_owned(),
            port: 0,
            kiosks,
            browse_point: false,
        })
        .await
        .expect("demo starts");
        Harness {
            demo,
            http: reqwest::Client::new(),
        }
    }

    fn ui(&self, path: &str) -> String {
        self.ui_at(1, path)
    }

    fn ui_at(&self, k: usize, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.demo.kiosk_number(k).unwrap().ui_addr
        )
    }

    async fn touch(&self, body: Value) {
        self.touch_at(1, body).await;
    }

    async fn touch_at(&self, k: usize, body: Value) {
        let res = self
            .http
            .post(self.ui_at(k, "/api/kiosk/touch"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "touch refused: {}", res.status());
    }

    async fn get_json(&self, url: String) -> Value {
        self.http
            .get(&url)
            .bearer_auth(&self.demo.admin_token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
    }

    async fn view(&self) -> Value {
        self.view_at(1).await
    }

    async fn view_at(&self, k: usize) -> Value {
        self.get_json(self.ui_at(k, "/api/kiosk/view")).await
    }

    async fn screen_at(&self, k: usize, name: &str) -> Value {
        self.until(name, async || {
            let v = self.view_at(k).await;
            (v["body"]["screen"] == name).then_some(v)
        })
        .await
    }

    fn good_version_at(&self, k: usize) -> u64 {
        self.demo
            .kiosk_number(k)
            .unwrap()
            .db
            .good_store_config()
            .unwrap()
            .map_or(0, |c| c.version)
    }

    /// Logs in to kiosk `k`'s counter page; returns the session cookie.
    async fn staff_cookie_at(&self, k: usize) -> String {
        self.login_at(k, kiosk::demo::DEMO_PIN).await
    }

    /// Logs in to kiosk `k`'s counter page with `pin`; returns the session cookie.
    async fn login_at(&self, k: usize, pin: &str) -> String {
        let login = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(self.ui_at(k, "/counter/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("pin={pin}"))
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

    /// GET `url` with the session `cookie`.
    async fn get_as(&self, url: String, cookie: &str) -> reqwest::Response {
        self.http
            .get(&url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    async fn until<T>(&self, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screen(&self, name: &str) -> Value {
        self.until(name, async || {
            let v = self.view().await;
            (v["body"]["screen"] == name).then_some(v)
        })
        .await
    }

    /// The services the screen offers, by letter and name.
    async fn services_offered(&self) -> Vec<(String, String)> {
        self.touch(json!({"action": "start"})).await;
        let v = self.screen("choose_service").await;
        v["body"]["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["letter"].as_str().unwrap().to_owned(),
                    s["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Takes a turn of `service` from the service screen and goes back to the attract screen.
    async fn take_turn(&self, service: &str) -> String {
        self.touch(json!({"action": "choose_service", "service": service}))
            .await;
        let goodbye = self.screen("goodbye").await;
        self.touch(json!({"action": "done"})).await;
        self.screen("attract").await;
        goodbye["body"]["turn"]["label"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Sets the demo store's configuration through the CRM's admin API.
    async fn set_config(&self, body: Value) -> reqwest::Response {
        self.http
            .put(format!(
                "http://{}/v1/admin/stores/{}/config",
                self.demo.crm_addr,
                crm_endpoint::DEMO_STORE_ID
            ))
            .bearer_auth(&self.demo.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    fn good_version(&self) -> u64 {
        self.demo
            .kiosk
            .db
            .good_store_config()
            .unwrap()
            .map_or(0, |c| c.version)
    }

    fn received_version(&self) -> u64 {
        self.demo
            .kiosk
            .db
            .received_store_config()
            .unwrap()
            .map_or(0, |c| c.version)
    }

    async fn status(&self) -> Value {
        self.get_json(self.ui("/api/status")).await
    }
}

fn service(letter: &str, es: &str, en: &str) -> Value {
    json!({ "letter": letter, "name": { "es": es, "en": en }, "expected_minutes": 4 })
}

fn letters(services: &[(String, String)]) -> Vec<&str> {
    services.iter().map(|(l, _)| l.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_config_is_applied_between_journeys_an_invalid_one_refused_and_the_last_good_kept_across_a_restart()
 {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let before = h.services_offered().await;
    assert_eq!(letters(&before), ["A", "B", "P"], "site.toml's services");
    h.touch(json!({"action": "cancel"})).await;
    h.screen("attract").await;

    // The CRM refuses what check-config would refuse, naming the key.
    let bad = h
        .set_config(
            json!({ "services": [service("A", "Caja", "Till"), service("A", "Otra", "Other")] }),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let text = bad.text().await.unwrap();
    assert!(
        text.contains("queue.services[1].letter") && text.contains("used twice"),
        "{text}"
    );

    // v1: the kiosk is idle, so it runs it as soon as the feed brings it.
    let v1 = h
        .set_config(json!({
            "services": [service("A", "Caja", "Till"), service("D", "Devoluciones", "Returns")],
            "counters": 3
        }))
        .await;
    assert_eq!(v1.status(), 200);
    assert_eq!(v1.json::<Value>().await.unwrap()["version"], 1);
    h.until("v1 applied", async || (h.good_version() == 1).then_some(()))
        .await;
    let offered = h.services_offered().await;
    assert_eq!(
        offered,
        [
            ("A".to_owned(), "Caja".to_owned()),
            ("D".to_owned(), "Devoluciones".to_owned())
        ]
    );
    let label = h.take_turn("D").await;
    assert!(
        label.starts_with("D-"),
        "a turn of the new service: {label}"
    );

    // v2 arrives while a customer is choosing a service: the journey ends under v1.
    h.touch(json!({"action": "start"})).await;
    h.screen("choose_service").await;
    let v2 = h
        .set_config(json!({
            "services": [
                service("A", "Caja", "Till"),
                service("D", "Devoluciones", "Returns"),
                service("E", "Encargos", "Orders")
            ]
        }))
        .await;
    assert_eq!(v2.json::<Value>().await.unwrap()["version"], 2);
    h.until("v2 received by the kiosk", async || {
        (h.received_version() == 2).then_some(())
    })
    .await;
    // The executor hears of it within milliseconds; a second gives a wrong apply every chance
    // to show on the screen (this waits for nothing to happen).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mid = h.screen("choose_service").await;
    let mid_letters: Vec<&str> = mid["body"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["letter"].as_str().unwrap())
        .collect();
    assert_eq!(
        mid_letters,
        ["A", "D"],
        "the screen the customer reads does not change under them"
    );
    assert_eq!(h.good_version(), 1, "not applied during the journey");
    let status = h.status().await;
    assert_eq!(status["store_config"]["version"], 1);
    assert_eq!(status["store_config"]["waiting"], 2);
    let label = h.take_turn("A").await;
    assert!(label.starts_with("A-"), "{label}");
    // Back on the attract screen: v2 runs.
    h.until("v2 applied after the journey", async || {
        (h.good_version() == 2).then_some(())
    })
    .await;
    let offered = h.services_offered().await;
    assert_eq!(letters(&offered), ["A", "D", "E"]);
    h.touch(json!({"action": "cancel"})).await;
    h.screen("attract").await;

    // v3 breaks a rule of this kiosk's check-config. The CRM checks with the same rules, so it
    // comes from a CRM whose rules differ (another release), written here as the CRM writes
    // its feed items.
    let invalid = kiosk_protocol::store_config::StoreConfig {
        version: 3,
        parts: kiosk_protocol::store_config::StoreConfigParts {
            opening_time: Some("25:00".into()),
            ..Default::default()
        },
    };
    let crm = rusqlite::Connection::open(dir.path().join("crm.db")).unwrap();
    crm.busy_timeout(Duration::from_secs(5)).unwrap();
    crm.execute(
        "INSERT INTO changes (store_id, kind, item_key, item) VALUES (?1, 'store_config', ?1, ?2)",
        rusqlite::params![
            crm_endpoint::DEMO_STORE_ID,
            serde_json::to_string(&kiosk_protocol::wire::FeedItem::StoreConfig(invalid)).unwrap()
        ],
    )
    .unwrap();
    let refused = h
        .until("v3 refused", async || {
            h.demo.kiosk.db.refused_store_config().unwrap()
        })
        .await;
    assert_eq!(refused.version, 3);
    assert!(
        refused.reason.contains("queue.opening_time") && refused.reason.contains("HH:MM"),
        "{}",
        refused.reason
    );
    assert_eq!(h.good_version(), 2, "the last good one is kept");
    let status = h.status().await;
    assert_eq!(status["store_config"]["version"], 2);
    assert_eq!(status["store_config"]["refused"], 3);
    // Reported to the CRM: its admin API and the dashboard's kiosk list say so.
    let kiosk_id = h.demo.kiosk.store.me.clone();
    let report = h
        .until("the refusal reached the CRM", async || {
            let v = h
                .get_json(format!(
                    "http://{}/v1/admin/stores/{}/config",
                    h.demo.crm_addr,
                    crm_endpoint::DEMO_STORE_ID
                ))
                .await;
            (v["kiosks"][&kiosk_id]["refused"] == 3).then_some(v)
        })
        .await;
    assert_eq!(report["kiosks"][&kiosk_id]["running"], 2);
    assert_eq!(
        report["config"]["version"], 2,
        "the CRM's own newest stays v2"
    );
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("http://{}/dashboard/login", h.demo.crm_addr))
        .form(&[("token", h.demo.admin_token.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let dashboard: Value = h
        .get_as(
            format!(
                "http://{}/dashboard/api/stores/{}",
                h.demo.crm_addr,
                crm_endpoint::DEMO_STORE_ID
            ),
            &cookie,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dashboard["store_config_version"], 2);
    let row = dashboard["kiosks"]
        .as_array()
        .unwrap_or_else(|| panic!("dashboard: {dashboard}"))
        .iter()
        .find(|k| k["kiosk_id"] == kiosk_id.as_str())
        .unwrap();
    assert_eq!(row["config"]["running"], 2);
    assert!(
        row["problems"].as_array().unwrap().iter().any(|p| p
            .as_str()
            .unwrap()
            .contains("refused store configuration v3")),
        "{row}"
    );
    // The screen still offers v2's services.
    assert_eq!(letters(&h.services_offered().await), ["A", "D", "E"]);
    h.touch(json!({"action": "cancel"})).await;
    h.screen("attract").await;

    // A restart runs v2 from the journal, before any feed pull, and does not retry v3.
    h.demo.stop().await;
    let h = Harness::start(dir.path()).await;
    assert_eq!(letters(&h.services_offered().await), ["A", "D", "E"]);
    let status = h.status().await;
    assert_eq!(status["store_config"]["version"], 2);
    assert_eq!(status["store_config"]["refused"], 3);
    assert_eq!(status["store_config"]["waiting"], Value::Null);
    let label = h.take_turn("E").await;
    assert!(label.starts_with("E-"), "{label}");
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kiosk_that_asks_for_feed_version_1_never_gets_a_store_config() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let res = h.set_config(json!({ "counters": 2 })).await;
    assert_eq!(res.status(), 200);
    let creds = kiosk::credentials::Credentials::load(
        &kiosk::paths::DataDir::new(&dir.path().join("kiosk")).credentials(),
    )
    .unwrap();
    let old_kiosk_feed = |v: u32| {
        let path = format!(
            "/v1/kiosks/{}/feed?cursor=0&limit=200{}",
            creds.kiosk_id,
            if v == 1 {
                String::new()
            } else {
                format!("&v={v}")
            }
        );
        let headers = kiosk_protocol::auth::sign_request(
            &creds.kiosk_id,
            &creds.device_secret,
            "GET",
            &path,
            b"",
            time::OffsetDateTime::now_utc().unix_timestamp(),
        );
        let mut req = h.http.get(format!("http://{}{path}", h.demo.crm_addr));
        for (k, v) in headers.pairs() {
            req = req.header(k, v);
        }
        req
    };
    let page: Value = old_kiosk_feed(1)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"store_config"), "{kinds:?}");
    let page: Value = old_kiosk_feed(2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "store_config" && i["counters"] == 2),
        "{page}"
    );
    h.demo.stop().await;
}

/// docs/DESIGN.md invariant 20 with real kiosks: kiosk 1 (the sequencer) is held on v0 by a
/// customer choosing a service while kiosk 2 runs v1 with a new service `D`. Kiosk 2's `D` turn
/// is numbered in the store's sequence by the v0 sequencer, kiosk 1's counter page shows it
/// waiting, and kiosk 1 offers `D` once its customer is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kiosks_of_one_store_on_two_config_versions_for_a_moment_share_one_queue() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::store(dir.path(), 2).await;
    h.until("the kiosks see each other", async || {
        h.demo.store_ready().then_some(())
    })
    .await;
    h.touch_at(1, json!({"action": "start"})).await;
    h.screen_at(1, "choose_service").await;
    let res = h
        .set_config(json!({
            "services": [service("A", "Caja", "Till"), service("D", "Devoluciones", "Returns")]
        }))
        .await;
    assert_eq!(res.status(), 200);
    h.until("kiosk 2 runs v1", async || {
        (h.good_version_at(2) == 1).then_some(())
    })
    .await;
    assert_eq!(
        h.good_version_at(1),
        0,
        "kiosk 1's customer is still choosing"
    );

    h.touch_at(2, json!({"action": "start"})).await;
    h.screen_at(2, "choose_service").await;
    h.touch_at(2, json!({"action": "choose_service", "service": "D"}))
        .await;
    let goodbye = h.screen_at(2, "goodbye").await;
    assert_eq!(
        goodbye["body"]["turn"]["label"], "D-001",
        "numbered in the store's sequence by a sequencer on the older version, not tagged"
    );
    h.touch_at(2, json!({"action": "done"})).await;

    let cookie = h.staff_cookie_at(1).await;
    let board = h
        .until("kiosk 1's counter page shows the D turn", async || {
            let b: Value = h
                .http
                .get(h.ui_at(1, "/api/counter/board"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            b["services"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["letter"] == "D" && s["waiting"] == 1)
                .then_some(b)
        })
        .await;
    assert!(
        board["conflicts"].as_array().unwrap().is_empty(),
        "no step dropped: {board}"
    );
    // Kiosk 1's customer still reads v0's services; once done, kiosk 1 runs v1.
    let mid = h.screen_at(1, "choose_service").await;
    assert_eq!(mid["body"]["services"].as_array().unwrap().len(), 3);
    h.touch_at(1, json!({"action": "cancel"})).await;
    h.until("kiosk 1 runs v1", async || {
        (h.good_version_at(1) == 1).then_some(())
    })
    .await;
    h.touch_at(1, json!({"action": "start"})).await;
    let v = h.screen_at(1, "choose_service").await;
    let offered: Vec<&str> = v["body"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["letter"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["A", "D"]);
    h.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_services_ticket_note_set_at_the_crm_is_printed_on_its_tickets_in_the_tickets_language() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path()).await;
    let mut returns = service("D", "Devoluciones", "Returns");
    returns["ticket_note"] =
        json!({ "es": "Traiga el tique de compra", "en": "Bring your receipt" });
    let v1 = h
        .set_config(json!({ "services": [service("A", "Caja", "Till"), returns] }))
        .await;
    assert_eq!(v1.status(), 200);
    h.until("v1 applied", async || (h.good_version() == 1).then_some(()))
        .await;
    let printer = h.demo.kiosk.sims.printer.clone().expect("virtual printer");
    let printed_since = |before: usize| {
        let record = printer.record();
        record.lines[before..]
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };

    // A Spanish ticket of the service with a note: the note in Spanish, under the turn.
    let before = printer.record().lines.len();
    assert_eq!(h.services_offered().await.len(), 2);
    let label = h.take_turn("D").await;
    assert!(
        printer.wait_for(WAIT, |r| r.text().contains(&label)),
        "{label} never printed"
    );
    let ticket = printed_since(before);
    assert!(ticket.contains(&label), "{ticket}");
    assert!(ticket.contains("Traiga el tique de compra"), "{ticket}");
    assert!(!ticket.contains("Bring your receipt"), "{ticket}");

    // The same service in English: the English note.
    let before = printer.record().lines.len();
    h.touch(json!({"action": "start"})).await;
    h.screen("choose_service").await;
    h.touch(json!({"action": "set_locale", "locale": "en"}))
        .await;
    let label = h.take_turn("D").await;
    assert!(
        printer.wait_for(WAIT, |r| r.text().contains(&label)),
        "{label} never printed"
    );
    let ticket = printed_since(before);
    assert!(ticket.contains(&label), "{ticket}");
    assert!(ticket.contains("Bring your receipt"), "{ticket}");
    assert!(!ticket.contains("Traiga"), "{ticket}");

    // A service without a note prints none.
    let before = printer.record().lines.len();
    h.services_offered().await;
    let label = h.take_turn("A").await;
    assert!(
        printer.wait_for(WAIT, |r| r.text().contains(&label)),
        "{label} never printed"
    );
    let ticket = printed_since(before);
    assert!(ticket.contains(&label), "{ticket}");
    assert!(
        !ticket.contains("Traiga") && !ticket.contains("receipt"),
        "{ticket}"
    );
    h.demo.stop().await;
}

/// Who a counter session is (`/api/counter/me`), or the refusal's status.
async fn counter_me(h: &Harness, k: usize, cookie: &str) -> Result<Value, u16> {
    let res = h.get_as(h.ui_at(k, "/api/counter/me"), cookie).await;
    if res.status().is_success() {
        Ok(res.json().await.unwrap())
    } else {
        Err(res.status().as_u16())
    }
}

/// Runs a counter command at kiosk `k` as the session `cookie`; panics unless it succeeds.
async fn counter(h: &Harness, k: usize, cookie: &str, counter: &str, command: Value) {
    let res = h
        .http
        .post(h.ui_at(k, "/api/counter/command"))
        .header("cookie", cookie)
        .json(&json!({ "counter": counter, "command": command }))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    assert!(status.is_success(), "{command}: {status} {body}");
}

/// Calls the next turn at `counter` of kiosk `k` and returns its id (again until one is
/// called: the kiosk may not have the turns another kiosk issued yet).
async fn call_next(h: &Harness, k: usize, cookie: &str, counter_name: &str) -> String {
    h.until("a turn called", async || {
        counter(h, k, cookie, counter_name, json!({ "action": "call_next" })).await;
        let board: Value = h
            .get_as(h.ui_at(k, "/api/counter/board"), cookie)
            .await
            .json()
            .await
            .unwrap();
        board["serving"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["counter"] == counter_name)
            .and_then(|t| t["turn_id"].as_str())
            .map(str::to_owned)
    })
    .await
}

/// The report's queue table (CSV) grouped per staff member over yesterday to tomorrow (UTC):
/// group → (tickets, served, no-shows).
async fn staff_report(h: &Harness) -> std::collections::BTreeMap<String, (String, u64, u64, u64)> {
    let today = time::OffsetDateTime::now_utc().date();
    let url = format!(
        "http://{}/dashboard/reports.csv?table=queue&group=staff&period=range&from={}&to={}",
        h.demo.crm_addr,
        today.previous_day().unwrap(),
        today.next_day().unwrap()
    );
    let res = h
        .http
        .get(&url)
        .bearer_auth(&h.demo.admin_token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{url}: {}", res.status());
    let text = res.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let head = rows.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (group, name, tickets, served, no_shows) = (
        col("group"),
        col("group_name"),
        col("tickets"),
        col("served"),
        col("no_shows"),
    );
    rows.records()
        .map(|r| {
            let r = r.unwrap();
            let n = |i: usize| r[i].parse::<u64>().unwrap();
            (
                r[group].to_owned(),
                (r[name].to_owned(), n(tickets), n(served), n(no_shows)),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_with_pins_of_their_own_are_named_on_their_turns_and_counted_per_member_in_the_report()
 {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::store(dir.path(), 2).await;
    let store = crm_endpoint::DEMO_STORE_ID;
    let digest = |pin: &str| kiosk::ui::pin_digest(pin);

    // Two members with PINs of their own, set at the CRM for every kiosk of the store.
    let res = h
        .set_config(json!({ "staff": [
            { "id": "ana", "name": "Ana García", "pin_sha256": digest("246801") },
            { "id": "luis", "name": "Luis Pérez", "pin_sha256": digest("246802") },
        ]}))
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    // The same PIN for two members is refused at the CRM, naming the key.
    let res = h
        .set_config(json!({ "staff": [
            { "id": "ana", "name": "Ana García", "pin_sha256": digest("246801") },
            { "id": "eva", "name": "Eva Gil", "pin_sha256": digest("246801") },
        ]}))
        .await;
    assert_eq!(res.status(), 400);
    let body = res.text().await.unwrap();
    assert!(body.contains("staff[1].pin_sha256"), "{body}");
    h.until("both kiosks run the staff list", async || {
        (h.good_version_at(1) == 1 && h.good_version_at(2) == 1).then_some(())
    })
    .await;

    let ana = h.login_at(1, "246801").await;
    let luis = h.login_at(2, "246802").await;
    let store_pin = h.staff_cookie_at(1).await;
    assert_eq!(
        counter_me(&h, 1, &ana).await.unwrap()["staff"],
        json!({ "id": "ana", "name": "Ana García" })
    );
    assert_eq!(
        counter_me(&h, 2, &luis).await.unwrap()["staff"]["name"],
        "Luis Pérez"
    );
    assert_eq!(
        counter_me(&h, 1, &store_pin).await.unwrap()["staff"],
        Value::Null
    );

    // Four turns: Ana serves one and another, Luis's caller is a no-show, the store PIN serves one.
    let letter = h.services_offered().await[0].0.clone();
    h.take_turn(&letter).await;
    for _ in 0..3 {
        h.touch(json!({"action": "start"})).await;
        h.screen("choose_service").await;
        h.take_turn(&letter).await;
    }
    for (k, cookie, at, served) in [
        (1, &ana, "1", true),
        (1, &ana, "1", true),
        (2, &luis, "2", false),
        (1, &store_pin, "3", true),
    ] {
        let turn = call_next(&h, k, cookie, at).await;
        let action = if served { "served" } else { "no_show" };
        counter(
            &h,
            k,
            cookie,
            at,
            json!({ "action": action, "turn_id": turn }),
        )
        .await;
    }

    let expected: std::collections::BTreeMap<String, (String, u64, u64, u64)> = [
        (format!("{store}/(store PIN)"), ("(store PIN)", 1, 1, 0)),
        (format!("{store}/ana"), ("Ana García", 2, 2, 0)),
        (format!("{store}/luis"), ("Luis Pérez", 1, 0, 1)),
    ]
    .into_iter()
    .map(|(k, (name, t, s, n))| (k, (name.to_owned(), t, s, n)))
    .collect();
    let got = h
        .until("the CRM's report counts per staff member", async || {
            let mut got = staff_report(&h).await;
            for (_, (name, ..)) in got.iter_mut() {
                // "Tienda demo · Ana García": the store's name, then the member's.
                *name = name.rsplit(" · ").next().unwrap_or_default().to_owned();
            }
            (got == expected).then_some(got)
        })
        .await;
    assert_eq!(got, expected);

    // Luis leaves the list: his session ends at once at the kiosk that applies it; Ana's stays.
    let res = h
        .set_config(json!({ "staff": [
            { "id": "ana", "name": "Ana García", "pin_sha256": digest("246801") },
        ]}))
        .await;
    assert!(res.status().is_success());
    h.until("kiosk 2 applies version 2", async || {
        (h.good_version_at(2) == 2).then_some(())
    })
    .await;
    assert_eq!(counter_me(&h, 2, &luis).await, Err(401));
    h.until("kiosk 1 applies version 2", async || {
        (h.good_version_at(1) == 2).then_some(())
    })
    .await;
    assert_eq!(counter_me(&h, 1, &ana).await.unwrap()["staff"]["id"], "ana");
    // A removed member's PIN no longer opens the page; the report still names him.
    let refused = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(h.ui_at(2, "/counter/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("pin=246802")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.headers()["location"].to_str().unwrap(),
        "/counter?error=pin"
    );
    let report = staff_report(&h).await;
    assert!(
        report[&format!("{store}/luis")].0.ends_with("Luis Pérez"),
        "{report:?}"
    );
}
