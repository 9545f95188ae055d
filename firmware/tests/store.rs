//! A store of several kiosks sharing one queue (issue 15), with real `kiosk run` processes on
//! the simulated profile, the real CRM endpoint, and cuttable LAN links between the kiosks:
//!
//! - 3 kiosks issue 300 turns concurrently: one sequence of 300 labels, called in issue order
//!   from a counter served by another kiosk, the same board everywhere, each turn at the CRM
//!   once with its label;
//! - one kiosk cut off (refused, then stalled connections) while all three issue and call:
//!   its labels are tagged, nothing collides, and after the heal every kiosk holds every turn and
//!   the boards are equal, with the conflicting calls shown the same everywhere;
//! - kill -9 of a kiosk mid-issue and mid-call, repeated: the same invariants, and every journal
//!   passes `integrity_check`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod store_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use store_support::{Link, Store, WAIT, take_ticket};

/// Waits until every kiosk reaches every other one.
async fn until_connected(store: &mut Store) {
    let deadline = tokio::time::Instant::now() + WAIT;
    'wait: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the kiosks never saw each other"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        for k in 0..store.kiosks.len() {
            let b = store.board(k).await;
            if !b["unreachable_kiosks"]
                .as_array()
                .is_some_and(|a| a.is_empty())
            {
                continue 'wait;
            }
        }
        // A peer counts as reachable once it answered; numbers need the sequencer to have
        // answered a pull too.
        return;
    }
}

/// What must be equal on every kiosk: the board without this kiosk's own view of its peers.
fn shared(board: &Value) -> Value {
    json!({
        "services": board["services"].as_array().map(|s| s.iter().map(|s| json!({
            "letter": s["letter"], "waiting": s["waiting"], "next": s["next"],
            "priority_waiting": s["priority_waiting"],
        })).collect::<Vec<_>>()),
        "serving": board["serving"].as_array().map(|s| s.iter().map(|s| json!({
            "label": s["label"], "counter": s["counter"], "calls": s["calls"],
        })).collect::<Vec<_>>()),
        "recent_calls": board["recent_calls"],
        "parked": board["parked"],
        "conflicts": board["conflicts"],
    })
}

/// Waits until every kiosk's board shows the same store.
async fn until_boards_equal(store: &mut Store) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut boards = Vec::new();
        for k in 0..store.kiosks.len() {
            boards.push(shared(&store.board(k).await));
        }
        if boards.windows(2).all(|w| w[0] == w[1]) {
            return boards.remove(0);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the boards never converged:\n{}",
            boards
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until kiosk `k` sees `n` turns waiting for `service`.
async fn until_waiting(store: &mut Store, k: usize, service: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let b = store.board(k).await;
        let waiting = b["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["letter"] == service))
            .and_then(|s| s["waiting"].as_u64())
            .unwrap_or(0);
        if waiting == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kiosk {k} sees {waiting} {service} turns waiting, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls and serves every waiting turn from `counter` on kiosk `k`; returns the labels in call
/// order.
async fn call_all(store: &mut Store, k: usize, counter: &str) -> Vec<String> {
    let mut called = Vec::new();
    loop {
        let (status, answer) = store
            .staff(k, counter, json!({"action": "call_next"}))
            .await;
        assert_eq!(status, 200, "call_next: {answer}");
        let Some(label) = answer["label"].as_str().map(str::to_owned) else {
            return called;
        };
        let board = store.board(k).await;
        let turn_id = board["serving"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["counter"] == counter))
            .map(|s| s["turn_id"].clone())
            .expect("the called turn is being served");
        let (status, answer) = store
            .staff(k, counter, json!({"action": "served", "turn_id": turn_id}))
            .await;
        assert_eq!(status, 200, "served: {answer}");
        called.push(label);
    }
}

fn expected_sequence(service: &str, n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("{service}-{i:03}")).collect()
}

/// The `ticket_issued` events the CRM holds: turn id → (label, kiosk).
async fn crm_tickets(store: &Store, n: usize) -> BTreeMap<String, (String, String)> {
    let path = store_support_crm_db(store);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let mut rows: Vec<(String, String)> = conn
            .prepare("SELECT kiosk_id, envelope FROM events WHERE type = 'ticket_issued'")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if rows.len() >= n || tokio::time::Instant::now() > deadline {
            let mut out = BTreeMap::new();
            for (kiosk, env) in rows.drain(..) {
                let v: Value = serde_json::from_str(&env).unwrap();
                let id = v["payload"]["turn_id"].as_str().unwrap().to_owned();
                let label = v["payload"]["turn"].as_str().unwrap().to_owned();
                assert!(
                    out.insert(id.clone(), (label, kiosk)).is_none(),
                    "turn {id} reached the CRM twice"
                );
            }
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn store_support_crm_db(store: &Store) -> std::path::PathBuf {
    store.kiosks[0].dir.parent().unwrap().join("crm.db")
}

fn integrity(path: &std::path::Path) -> String {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Takes `n` tickets at each kiosk at once; returns the labels per kiosk.
async fn issue_everywhere(store: &Store, n: usize, service: &str) -> Vec<Vec<String>> {
    let mut tasks = Vec::new();
    for k in &store.kiosks {
        let http = store.http.clone();
        let ui = k.ui.clone();
        let service = service.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut labels = Vec::new();
            for _ in 0..n {
                labels.push(take_ticket(&http, &ui, &service).await.unwrap());
            }
            labels
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_kiosks_issue_300_turns_as_one_sequence_called_in_issue_order_from_another_kiosk() {
    let mut store = Store::start(3).await;
    until_connected(&mut store).await;
    let labels = issue_everywhere(&store, 100, "A").await;
    let all: BTreeSet<String> = labels.iter().flatten().cloned().collect();
    if all.iter().any(|l| !l.starts_with("A-")) {
        for k in &store.kiosks {
            for line in k
                .log()
                .lines()
                .filter(|l| l.contains("store") || l.contains("number"))
            {
                eprintln!("{}: {line}", k.id);
            }
        }
    }
    assert_eq!(all.len(), 300, "300 distinct labels");
    assert_eq!(
        all.into_iter().collect::<Vec<_>>(),
        expected_sequence("A", 300),
        "one store sequence, no tag, no gap"
    );
    // Each kiosk's own labels rise: numbers follow issue order.
    for l in &labels {
        let mut sorted = l.clone();
        sorted.sort();
        assert_eq!(&sorted, l);
    }
    // A counter on kiosk 2 calls all 300, in issue order.
    until_waiting(&mut store, 1, "A", 300).await;
    let called = call_all(&mut store, 1, "7").await;
    assert_eq!(called, expected_sequence("A", 300));
    let board = until_boards_equal(&mut store).await;
    assert_eq!(board["services"][0]["waiting"], 0);
    assert_eq!(board["recent_calls"][0]["label"], "A-300");
    // Each turn reached the CRM once, with its label, from the kiosk that issued it.
    let at_crm = crm_tickets(&store, 300).await;
    assert_eq!(at_crm.len(), 300);
    let crm_labels: BTreeSet<&String> = at_crm.values().map(|(l, _)| l).collect();
    assert_eq!(crm_labels.len(), 300);
    let mut per_kiosk: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, k) in at_crm.values() {
        *per_kiosk.entry(k.as_str()).or_default() += 1;
    }
    for k in &store.kiosks {
        assert_eq!(per_kiosk.get(k.id.as_str()), Some(&100), "{per_kiosk:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_cut_off_keeps_issuing_tagged_numbers_and_after_the_heal_every_kiosk_holds_the_same_store()
 {
    let mut store = Store::start(3).await;
    until_connected(&mut store).await;
    let before = issue_everywhere(&store, 3, "A").await;
    until_waiting(&mut store, 2, "A", 9).await;
    // Kiosk 3 is cut off: its connections are refused, then stall.
    store.isolate(2, Link::Down);
    let mut during = issue_everywhere(&store, 5, "A").await;
    // A counter on kiosk 1 and the same counter name on kiosk 3 both call the first waiting
    // turn, which both know: one of the calls must lose after the heal.
    let (s1, a1) = store.staff(0, "1", json!({"action": "call_next"})).await;
    let (s3, a3) = store.staff(2, "1", json!({"action": "call_next"})).await;
    assert_eq!((s1, s3), (200, 200), "{a1} {a3}");
    assert_eq!(a1["label"], "A-001");
    assert_eq!(a3["label"], "A-001");
    store.isolate(2, Link::Stall);
    let stalled = issue_everywhere(&store, 3, "B").await;
    for (k, l) in stalled.iter().enumerate() {
        during[k].extend(l.iter().cloned());
    }
    store.isolate(2, Link::Up);

    // The cut-off kiosk tagged its numbers with its place in the store; the others did not.
    for l in &during[2] {
        assert!(l.starts_with("A3-") || l.starts_with("B3-"), "{l}");
    }
    for l in during[..2].iter().flatten() {
        assert!(!l.contains("3-"), "{l}");
    }
    let mut all: Vec<String> = before.iter().chain(&during).flatten().cloned().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "no label twice: {all:?}");

    // Healed: same boards everywhere, the lost call shown alike.
    let board = until_boards_equal(&mut store).await;
    let conflicts = board["conflicts"].as_array().cloned().unwrap_or_default();
    assert_eq!(conflicts.len(), 1, "{board}");
    assert_eq!(conflicts[0]["label"], "A-001");
    assert_eq!(conflicts[0]["step"], "call");
    // Every turn is on every kiosk: kiosk 1 calls them all (counter 1 first finishes A-001).
    let serving = board["serving"].as_array().unwrap().clone();
    assert_eq!(serving.len(), 1, "counter 1 serves one customer: {board}");
    let turn_id = store
        .board(0)
        .await
        .get("serving")
        .and_then(|s| s[0]["turn_id"].as_str().map(str::to_owned))
        .unwrap();
    let (status, _) = store
        .staff(0, "1", json!({"action": "served", "turn_id": turn_id}))
        .await;
    assert_eq!(status, 200);
    let mut called = call_all(&mut store, 0, "1").await;
    called.push("A-001".to_owned());
    called.sort();
    assert_eq!(called, all, "kiosk 1 held every turn of the store");
    until_boards_equal(&mut store).await;
    for k in &store.kiosks {
        assert_eq!(integrity(&k.journal()), "ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_any_kiosk_mid_issue_and_mid_call_never_duplicates_a_label_or_loses_a_turn() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("KIOSK_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("KIOSK_SOAK_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rounds: usize = std::env::var("KIOSK_STORE_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut store = Store::start(3).await;
    until_connected(&mut store).await;
    let mut shown: Vec<String> = Vec::new();
    for round in 0..rounds {
        let victim = rng.gen_range(0..3);
        // Everyone issues; a counter on another kiosk calls; the victim dies mid-way.
        let issuing: Vec<_> = store
            .kiosks
            .iter()
            .map(|k| {
                let http = store.http.clone();
                let ui = k.ui.clone();
                tokio::spawn(async move {
                    let mut labels = Vec::new();
                    for _ in 0..6 {
                        match take_ticket(&http, &ui, "A").await {
                            Ok(l) => labels.push(l),
                            Err(_) => break,
                        }
                    }
                    labels
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
        let caller = (victim + 1) % 3;
        let _ = store
            .staff(caller, "9", json!({"action": "call_next"}))
            .await;
        // Mid-call: a call at the victim's own counter in flight when it dies.
        let cookie = store.cookie(victim).await;
        let url = format!("{}/api/counter/command", store.kiosks[victim].ui);
        let http = store.http.clone();
        let in_flight = tokio::spawn(async move {
            let _ = http
                .post(url)
                .header("cookie", cookie)
                .json(&json!({"counter": "8", "command": {"action": "call_next"}}))
                .send()
                .await;
        });
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
        store.kiosks[victim].kill9();
        let _ = in_flight.await;
        for t in issuing {
            shown.extend(t.await.unwrap());
        }
        println!("round {round}: killed kiosk {}", victim + 1);
        let http = store.http.clone();
        store.kiosks[victim].start(&http).await;
        store.forget_sessions();
        // Finish whatever counter 9 serves, so rounds do not pile up.
        let board = store.board(caller).await;
        if let Some(t) = board["serving"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["counter"] == "9"))
        {
            let id = t["turn_id"].clone();
            let _ = store
                .staff(caller, "9", json!({"action": "served", "turn_id": id}))
                .await;
        }
    }
    until_connected(&mut store).await;
    let board = until_boards_equal(&mut store).await;
    // Two counters on two kiosks pressing "call next" within the replication delay (a few ms:
    // here on purpose, the victim's call in flight beside the caller's) may pick the same turn:
    // the merge keeps one call and shows the other. Nothing else may conflict.
    for c in board["conflicts"].as_array().cloned().unwrap_or_default() {
        assert_eq!(c["step"], "call", "only concurrent calls conflict: {board}");
    }
    // Every label a screen showed is in the store, once: kiosk 1 calls what still waits, and
    // together with what was served before, it is every label shown.
    let mut n = shown.clone();
    n.sort();
    n.dedup();
    assert_eq!(n.len(), shown.len(), "a label was shown twice: {shown:?}");
    call_all(&mut store, 0, "5").await;
    let at_crm = crm_tickets(&store, shown.len()).await;
    let labels: Vec<&String> = at_crm.values().map(|(l, _)| l).collect();
    let mut dedup = labels.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), labels.len(), "a label reached the CRM twice");
    for l in &shown {
        assert!(
            labels.contains(&l),
            "{l} was shown but never reached the CRM"
        );
    }
    for k in &mut store.kiosks {
        k.stop();
        assert_eq!(integrity(&k.journal()), "ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_listener_answers_only_signed_requests_of_the_stores_kiosks_and_refuses_replays()
{
    use kiosk_protocol::auth::sign_request;
    use kiosk_protocol::wire::Key32;
    let mut store = Store::start(2).await;
    until_connected(&mut store).await;
    let http = store.http.clone();
    let base = format!("http://{}", store.kiosks[0].store_addr);
    let me = &store.kiosks[1];
    let creds = kiosk::credentials::Credentials::load(&me.dir.join("credentials.toml")).unwrap();
    let key = |label: &str| {
        let k = creds.derived_key(label);
        Key32::from_bytes(k[..32].try_into().unwrap())
    };
    let store_key = key(&kiosk::store::store_key_label(crm_endpoint::DEMO_STORE_ID));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let send = |id: &str, key: &Key32, method: &str, path: &str, body: &[u8], ts: i64| {
        let headers = sign_request(id, key, method, path, body, ts);
        let mut req = if method == "GET" {
            http.get(format!("{base}{path}"))
        } else {
            http.post(format!("{base}{path}")).body(body.to_vec())
        };
        for (k, v) in headers.pairs() {
            req = req.header(k, v);
        }
        req.send()
    };
    let path = "/store/v1/ops?after=&wait_ms=0";
    // Unsigned.
    let r = http.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Signed with another store's key, or the tenant's turn-ticket key.
    let other = key(&kiosk::store::store_key_label("another-store"));
    assert_eq!(
        send(&me.id, &other, "GET", path, b"", now)
            .await
            .unwrap()
            .status(),
        401
    );
    // A kiosk id that is not in the store's list, with the right key.
    assert_eq!(
        send("k-intruder", &store_key, "GET", path, b"", now)
            .await
            .unwrap()
            .status(),
        403
    );
    // A stale timestamp.
    assert_eq!(
        send(&me.id, &store_key, "GET", path, b"", now - 3600)
            .await
            .unwrap()
            .status(),
        401
    );
    // The real thing answers.
    let ok = send(&me.id, &store_key, "GET", path, b"", now)
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // A number request, then the same bytes again: refused as a replay.
    let body =
        serde_json::to_vec(&json!({"service": "A", "turn_id": uuid::Uuid::now_v7()})).unwrap();
    let first = send(&me.id, &store_key, "POST", "/store/v1/numbers", &body, now)
        .await
        .unwrap();
    assert_eq!(first.status(), 200, "{:?}", first.text().await);
    let again = send(&me.id, &store_key, "POST", "/store/v1/numbers", &body, now)
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
}
