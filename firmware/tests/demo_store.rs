//! `kiosk demo --kiosks 2` as the CLI starts it (`kiosk::demo::start`): two kiosks of one store
//! share one queue over the demo's shop LAN. Turns issued at either kiosk follow one sequence;
//! with kiosk 2's cable cut from the panel, kiosk 2 numbers from its own tagged block; once the
//! cable is back, both kiosks' counter boards come to hold the same turns.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::collections::BTreeSet;
use std::time::Duration;

use kiosk::demo::{DEMO_PIN, Demo, DemoOptions};
use serde_json::{Value, json};

/// Bounds every wait, so that a broken store fails instead of hanging; a healthy one converges
/// in seconds. Nothing is asserted about how long anything takes.
const WAIT: Duration = Duration::from_secs(45);

struct Store {
    demo: Demo,
    http: reqwest::Client,
    cookies: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Store {
    async fn start(kiosks: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let demo = kiosk::demo::start(DemoOptions {
            data_dir: dir.path().to_owned(),
            port: 0,
            kiosks,
            browse_point: false,
        })
        .await
        .expect("the demo starts");
        assert_eq!(demo.kiosk_count(), kiosks);
        let mut store = Store {
            demo,
            http: reqwest::Client::new(),
            cookies: Vec::new(),
            _dir: dir,
        };
        for k in 1..=kiosks {
            let cookie = store.staff_cookie(k).await;
            store.cookies.push(cookie);
        }
        store
    }

    fn ui(&self, kiosk: usize, path: &str) -> String {
        let k = self.demo.kiosk_number(kiosk).expect("kiosk");
        format!("http://{}{path}", k.ui_addr)
    }

    fn staff_url(&self, kiosk: usize, path: &str) -> String {
        let k = self.demo.kiosk_number(kiosk).expect("kiosk");
        format!("http://{}{path}", k.staff_addr)
    }

    fn panel(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.panel_addr)
    }

    async fn get_json(&self, url: String, cookie: Option<&str>) -> Value {
        let mut req = self.http.get(&url);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(res.status().is_success(), "GET {url}: {}", res.status());
        res.json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
    }

    async fn panel_post(&self, path: &str, body: Value) {
        let res = self
            .http
            .post(self.panel(path))
            .json(&body)
            .send()
            .await
            .expect("the panel answers");
        assert!(res.status().is_success(), "panel {path}: {}", res.status());
    }

    async fn touch(&self, kiosk: usize, body: Value) {
        let res = self
            .http
            .post(self.ui(kiosk, "/api/kiosk/touch"))
            .json(&body)
            .send()
            .await
            .expect("touch");
        assert!(res.status().is_success(), "touch refused: {}", res.status());
    }

    /// Polls kiosk `kiosk`'s screen until `pred` holds.
    async fn screen_until(&self, kiosk: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.get_json(self.ui(kiosk, "/api/kiosk/view"), None).await;
            if pred(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "kiosk {kiosk}'s screen never showed {what}; last: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An anonymous customer takes a turn of service `service` at kiosk `kiosk`: its label.
    async fn take_turn(&self, kiosk: usize, service: &str) -> String {
        self.screen_until(kiosk, "the attract screen", |v| {
            v["body"]["screen"] == "attract"
        })
        .await;
        self.touch(kiosk, json!({"action": "start"})).await;
        self.screen_until(kiosk, "the services", |v| {
            v["body"]["screen"] == "choose_service"
        })
        .await;
        self.touch(
            kiosk,
            json!({"action": "choose_service", "service": service}),
        )
        .await;
        let goodbye = self
            .screen_until(kiosk, "the ticket", |v| {
                v["body"]["screen"] == "goodbye" && v["body"]["turn"]["label"].is_string()
            })
            .await;
        self.touch(kiosk, json!({"action": "done"})).await;
        goodbye["body"]["turn"]["label"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Logs in to kiosk `kiosk`'s counter page with the PIN; returns the session cookie.
    async fn staff_cookie(&self, kiosk: usize) -> String {
        let login = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(self.staff_url(kiosk, "/counter/login"))
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

    async fn board(&self, kiosk: usize) -> Value {
        self.get_json(
            self.staff_url(kiosk, "/api/counter/board"),
            Some(&self.cookies[kiosk - 1]),
        )
        .await
    }

    async fn counter(&self, kiosk: usize, counter: &str, command: Value) -> Value {
        let res = self
            .http
            .post(self.staff_url(kiosk, "/api/counter/command"))
            .header("cookie", &self.cookies[kiosk - 1])
            .json(&json!({"counter": counter, "command": command}))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "kiosk {kiosk}, counter {counter}, {command}: {status} {body}"
        );
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    async fn panel_state(&self) -> Value {
        self.get_json(self.panel("/api/state"), None).await
    }

    /// Polls the panel until `pred` holds of its state.
    async fn panel_until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let st = self.panel_state().await;
            if pred(&st) {
                return st;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the panel never showed {what}; last: {}",
                st["kiosks"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What two kiosks of a store must agree on in their boards: the turns waiting, serving,
/// called and parked, and the conflicts. Left out: what each computes from its own clock
/// (estimated waits, counters open lately) and which peers it reaches now.
fn comparable(board: &Value) -> Value {
    let mut b = board.clone();
    let o = b.as_object_mut().expect("a board is an object");
    o.remove("unreachable_kiosks");
    o.remove("open_counters");
    if let Some(services) = o.get_mut("services").and_then(Value::as_array_mut) {
        for s in services {
            if let Some(s) = s.as_object_mut() {
                s.remove("estimated_wait_s");
            }
        }
    }
    b
}

fn waiting(board: &Value, letter: &str) -> u64 {
    board["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["letter"] == letter))
        .and_then(|s| s["waiting"].as_u64())
        .unwrap_or(0)
}

/// Polls both kiosks' boards until they agree and `pred` holds of them.
async fn boards_converge(store: &Store, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (one, two) = (store.board(1).await, store.board(2).await);
        if comparable(&one) == comparable(&two) && pred(&one) {
            return one;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the kiosks' boards never agreed on {what}:\nkiosk 1: {one}\nkiosk 2: {two}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kiosks_issue_one_sequence_a_cut_kiosk_issues_tagged_turns_and_the_boards_converge_once_its_cable_is_back()
 {
    let store = Store::start(2).await;
    let st = store.panel_state().await;
    assert_eq!(st["kiosks"].as_array().map(Vec::len), Some(2), "{st}");
    assert_eq!(st["kiosks"][0]["sequencer"], true, "{st}");
    assert_eq!(st["kiosks"][1]["lan"], "up", "{st}");

    // The kiosks find each other over the LAN (the sequencer numbers once it has heard from
    // the others).
    let all_reachable = |st: &Value| {
        st["kiosks"].as_array().is_some_and(|ks| {
            ks.iter().all(|k| {
                k["peers"]
                    .as_array()
                    .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p["reachable"] == true))
            })
        })
    };
    store
        .panel_until("every kiosk reaching the other", all_reachable)
        .await;
    assert!(store.demo.store_ready());

    // What a technician's `curl` gets from a kiosk's store listener through the LAN: a refusal
    // that says the request is not signed (so the port is open).
    let lan = store.demo.lan.as_ref().expect("a store of two has a LAN");
    let hello = format!("http://{}/store/v1/hello", lan.addr(1).unwrap());
    let res = store.http.get(&hello).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::UNAUTHORIZED);
    let refusal: Value = res.json().await.unwrap();
    assert_eq!(refusal["error"], "missing x-kiosk-id", "{refusal}");

    // Turns at both kiosks, alternately: one sequence across the store.
    let mut labels = Vec::new();
    for kiosk in [1, 2, 1, 2] {
        labels.push(store.take_turn(kiosk, "A").await);
    }
    assert_eq!(labels, ["A-001", "A-002", "A-003", "A-004"]);

    // Kiosk 2's cable is cut: both kiosks notice, kiosk 2 numbers from its own tagged block,
    // kiosk 1 (the sequencer) goes on with the sequence.
    store
        .panel_post("/api/kiosks/2/lan", json!({"up": false}))
        .await;
    let st = store.panel_state().await;
    assert_eq!(st["kiosks"][1]["lan"], "cut", "{st}");
    assert_eq!(st["kiosks"][0]["lan"], "up", "{st}");
    let cut_off = store.take_turn(2, "A").await;
    assert_eq!(cut_off, "A2-001");
    let meanwhile = store.take_turn(1, "A").await;
    assert_eq!(meanwhile, "A-005");
    store
        .panel_until("kiosks 1 and 2 not reaching each other", |st| {
            st["kiosks"][0]["peers"][0]["reachable"] == false
                && st["kiosks"][1]["peers"][0]["reachable"] == false
        })
        .await;
    labels.extend([cut_off.clone(), meanwhile.clone()]);

    // The cable is back: the kiosks exchange what they missed and agree on the queue.
    store
        .panel_post("/api/kiosks/2/lan", json!({"up": true}))
        .await;
    boards_converge(&store, "the six waiting turns", |b| waiting(b, "A") == 6).await;
    store
        .panel_until("every kiosk reaching the other again", all_reachable)
        .await;

    // Each kiosk holds the turns the other issued while apart: kiosk 1's counter calls kiosk
    // 2's tagged turn, kiosk 2's counter calls kiosk 1's.
    let called = store
        .counter(1, "1", json!({"action": "call_label", "label": cut_off}))
        .await;
    assert_eq!(called["label"], cut_off.as_str(), "{called}");
    let called = store
        .counter(2, "2", json!({"action": "call_label", "label": meanwhile}))
        .await;
    assert_eq!(called["label"], meanwhile.as_str(), "{called}");
    let board = boards_converge(&store, "the two calls", |b| {
        b["serving"].as_array().map(Vec::len) == Some(2) && waiting(b, "A") == 4
    })
    .await;
    let serving: BTreeSet<(String, String)> = board["serving"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["label"].as_str().unwrap().to_owned(),
                s["counter"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        serving,
        BTreeSet::from([
            (cut_off.clone(), "1".to_owned()),
            (meanwhile.clone(), "2".to_owned())
        ])
    );
    assert_eq!(board["conflicts"], json!([]), "{board}");
    let distinct: BTreeSet<&String> = labels.iter().collect();
    assert_eq!(
        distinct.len(),
        labels.len(),
        "a label was issued twice: {labels:?}"
    );

    store.demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_one_has_no_lan_to_cut_and_asking_for_too_many_kiosks_is_refused() {
    let store = Store::start(1).await;
    assert!(store.demo.lan.is_none());
    let st = store.panel_state().await;
    assert_eq!(st["kiosks"][0]["lan"], Value::Null, "{st}");
    assert_eq!(st["kiosks"][0]["peers"], json!([]), "{st}");
    let res = store
        .http
        .post(store.panel("/api/kiosks/1/lan"))
        .json(&json!({"up": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::CONFLICT);
    let res = store
        .http
        .post(store.panel("/api/kiosks/2/card"))
        .json(&json!({"action": "unknown"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::NOT_FOUND);
    store.demo.stop().await;

    let dir = tempfile::tempdir().unwrap();
    for kiosks in [0, 9] {
        let refused = kiosk::demo::start(DemoOptions {
            data_dir: dir.path().to_owned(),
            port: 0,
            kiosks,
            browse_point: false,
        })
        .await;
        let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("1 to 8"), "--kiosks {kiosks}: {err}");
    }
}
