//! Calls for assistance and Step-In devices (issue 19), on a store of two real `kiosk run`
//! processes (simulated profile), the real CRM endpoint and cuttable LAN links:
//!
//! - "call an assistant" pressed on kiosk 1's screen shows on both kiosks' counter pages; an
//!   acknowledgement at a counter of kiosk 2 clears it on kiosk 1 and frees kiosk 1's button;
//!   a second acknowledgement is refused;
//! - a kiosk cut off from the other still shows its own call on its own counter page, and the
//!   call reaches the other kiosk when the LAN comes back;
//! - a call open when its kiosk is killed (-9) is still open after the restart, on the counter
//!   pages and on the kiosk's button;
//! - every request and acknowledgement reaches the CRM once, the acknowledgement with its
//!   response time;
//! - a signed Step-In request prints a ticket at the kiosk (the simulated printer's picture),
//!   `print: false` answers the ticket's link, a Step-In call for staff shows on the counter
//!   pages, and unsigned, badly signed, stale and replayed requests are refused with 401 and a
//!   JSON reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod store_support;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use store_support::{Link, Store, WAIT};

const DEVICE_KEY: [u8; 32] = [0x5a; 32];

fn stepin_config() -> String {
    format!(
        r#"
[stepin]
[[stepin.devices]]
id = "atm-1"
name = "Cajero de la entrada"
key = "{}"
"#,
        base64::engine::general_purpose::STANDARD.encode(DEVICE_KEY)
    )
}

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
        return;
    }
}

async fn view(store: &Store, k: usize) -> Value {
    store
        .http
        .get(format!("{}/api/kiosk/view", store.kiosks[k].ui))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn touch(store: &Store, k: usize, body: Value) {
    let r = store
        .http
        .post(format!("{}/api/kiosk/touch", store.kiosks[k].ui))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// Waits until kiosk `k`'s counter board lists exactly `places` as open calls (in order).
async fn until_calls(store: &mut Store, k: usize, places: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let b = store.board(k).await;
        let now: Vec<String> = b["assistance"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c["place"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if now == places {
            return b;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kiosk {k}'s counter page shows calls from {now:?}, expected {places:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until_view(store: &Store, k: usize, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = view(store, k).await;
        if ok(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kiosk {k}'s screen never showed {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CRM's events of `kind`: request id → payloads.
async fn crm_events(store: &Store, kind: &str, n: usize) -> BTreeMap<String, Vec<Value>> {
    let path = store.kiosks[0].dir.parent().unwrap().join("crm.db");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let rows: Vec<String> = conn
            .prepare("SELECT envelope FROM events WHERE type = ?1")
            .unwrap()
            .query_map([kind], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if rows.len() >= n || tokio::time::Instant::now() > deadline {
            let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for env in rows {
                let v: Value = serde_json::from_str(&env).unwrap();
                let id = v["payload"]["request_id"].as_str().unwrap().to_owned();
                out.entry(id).or_default().push(v["payload"].clone());
            }
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_one_kiosk_shows_on_every_counter_page_until_a_counter_of_any_kiosk_takes_it() {
    let mut store = Store::start_with(2, &stepin_config()).await;
    until_connected(&mut store).await;
    let k1 = store.kiosks[0].id.clone();
    let k2 = store.kiosks[1].id.clone();

    // The button on kiosk 1's attract screen.
    touch(&store, 0, json!({"action": "call_assistant"})).await;
    let v = until_view(&store, 0, "the call", |v| {
        v["assistance_called"] == json!(true)
    })
    .await;
    assert_eq!(v["notice"]["kind"], "assistance_called", "{v}");
    assert_eq!(v["body"]["screen"], "attract", "the screen stays: {v}");
    // Pressed again: the same call, not a second alert.
    touch(&store, 0, json!({"action": "call_assistant"})).await;
    for k in 0..2 {
        let b = until_calls(&mut store, k, &[&k1]).await;
        let call = &b["assistance"][0];
        assert_eq!(call["source"], "kiosk");
        assert_eq!(call["place_name"], format!("Quiosco {k1}"));
        assert!(call["age_s"].as_u64().is_some(), "{call}");
    }
    let request_id = store.board(0).await["assistance"][0]["request_id"].clone();

    // Staff at counter 2, served by kiosk 2, take it: it leaves kiosk 1's page too, and kiosk
    // 1's screen says someone is coming.
    let (status, answer) = store
        .staff(
            1,
            "2",
            json!({"action": "acknowledge_assistance", "request_id": request_id}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    until_calls(&mut store, 1, &[]).await;
    until_calls(&mut store, 0, &[]).await;
    let v = until_view(&store, 0, "the call taken", |v| {
        v["assistance_called"] == json!(false)
    })
    .await;
    assert_eq!(v["notice"]["kind"], "assistance_coming", "{v}");
    // A second counter is told it was taken.
    let (status, answer) = store
        .staff(
            0,
            "1",
            json!({"action": "acknowledge_assistance", "request_id": request_id}),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("counter 2 already took")),
        "{answer}"
    );

    // Kiosk 2 cut off: its own call shows on its own page, not on kiosk 1's, until the heal.
    store.isolate(1, Link::Down);
    touch(&store, 1, json!({"action": "call_assistant"})).await;
    until_calls(&mut store, 1, &[&k2]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    until_calls(&mut store, 0, &[]).await;
    store.isolate(1, Link::Up);
    let b = until_calls(&mut store, 0, &[&k2]).await;
    let second = b["assistance"][0]["request_id"].clone();
    let (status, answer) = store
        .staff(
            0,
            "1",
            json!({"action": "acknowledge_assistance", "request_id": second}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    until_calls(&mut store, 1, &[]).await;
    until_view(&store, 1, "its call taken", |v| {
        v["assistance_called"] == json!(false)
    })
    .await;

    // A call open when kiosk 1 dies (kill -9) is still open after the restart: on both counter
    // pages, and on kiosk 1's button.
    touch(&store, 0, json!({"action": "call_assistant"})).await;
    until_calls(&mut store, 0, &[&k1]).await;
    until_calls(&mut store, 1, &[&k1]).await;
    store.kiosks[0].kill9();
    store.kiosks[0].start(&store.http.clone()).await;
    store.forget_sessions();
    until_view(&store, 0, "the call after a restart", |v| {
        v["assistance_called"] == json!(true)
    })
    .await;
    let b = until_calls(&mut store, 0, &[&k1]).await;
    let third = b["assistance"][0]["request_id"].clone();
    let (status, answer) = store
        .staff(
            1,
            "2",
            json!({"action": "acknowledge_assistance", "request_id": third}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    until_calls(&mut store, 0, &[]).await;

    // At the CRM: three requests, three acknowledgements, each once, from the kiosk that took
    // it.
    let requested = crm_events(&store, "assistance_requested", 3).await;
    let acknowledged = crm_events(&store, "assistance_acknowledged", 3).await;
    assert_eq!(requested.len(), 3, "{requested:?}");
    assert!(requested.values().all(|v| v.len() == 1), "{requested:?}");
    assert_eq!(acknowledged.len(), 3, "{acknowledged:?}");
    assert!(
        acknowledged.values().all(|v| v.len() == 1),
        "{acknowledged:?}"
    );
    let first = &acknowledged[request_id.as_str().unwrap()][0];
    assert_eq!(first["counter"], "2");
    assert!(first["response_ms"].as_u64().is_some(), "{first}");
}

/// A signed Step-In request: status and JSON answer.
async fn stepin(
    store: &Store,
    k: usize,
    path: &str,
    body: &Value,
    key: &[u8; 32],
    timestamp: i64,
    nonce: &str,
) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = kiosk::stepin::sign(key, "POST", path, timestamp, nonce, &bytes);
    let r = store
        .http
        .post(format!("{}{path}", store.kiosks[k].ui))
        .header("content-type", "application/json")
        .header(kiosk::stepin::HEADER_DEVICE, "atm-1")
        .header(kiosk::stepin::HEADER_TIMESTAMP, timestamp.to_string())
        .header(kiosk::stepin::HEADER_NONCE, nonce)
        .header(kiosk::stepin::HEADER_SIGNATURE, signature)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_in_device_issues_printed_and_linked_turns_calls_staff_and_is_refused_unsigned_or_replayed()
 {
    let mut store = Store::start_with(2, &stepin_config()).await;
    until_connected(&mut store).await;
    let turns = "/api/stepin/v1/turns";

    // Printed at the kiosk: the simulated printer's picture of the ticket is there.
    let (status, answer) = stepin(
        &store,
        0,
        turns,
        &json!({"service": "A"}),
        &DEVICE_KEY,
        now(),
        "nonce-000000000001",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let label = answer["turn"]["label"].as_str().unwrap().to_owned();
    assert_eq!(answer["turn"]["printed"], true, "{answer}");
    let tickets = store.kiosks[0].dir.join("tickets");
    let printed = std::fs::read_dir(&tickets)
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with(&label))
        })
        .unwrap_or(false);
    assert!(printed, "no picture of {label} in {}", tickets.display());

    // Shown on the device: the link a phone opens, with the wait.
    let (status, answer) = stepin(
        &store,
        0,
        turns,
        &json!({"service": "B", "print": false}),
        &DEVICE_KEY,
        now(),
        "nonce-000000000002",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let t = &answer["turn"];
    assert_eq!(t["printed"], false);
    assert!(
        t["label"].as_str().is_some_and(|l| l.starts_with("B-")),
        "{t}"
    );
    assert!(t["estimated_wait_s"].as_u64().is_some(), "{t}");
    let link = t["link"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{}/t/KT1", store.crm.url)),
        "{link}"
    );
    // Both turns are the store's: on the other kiosk's board too.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let b = store.board(1).await;
        let waiting: u64 = b["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["waiting"].as_u64().unwrap())
            .sum();
        if waiting == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A call for staff from the device: on both counter pages, by the device's name.
    let (status, answer) = stepin(
        &store,
        0,
        "/api/stepin/v1/assistance",
        &json!({}),
        &DEVICE_KEY,
        now(),
        "nonce-000000000003",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    for k in 0..2 {
        let b = until_calls(&mut store, k, &["atm-1"]).await;
        assert_eq!(b["assistance"][0]["place_name"], "Cajero de la entrada");
        assert_eq!(b["assistance"][0]["source"], "step_in");
    }

    // Refused, each with 401 and its reason; nothing is issued.
    let body = json!({"service": "A"});
    let unsigned = store
        .http
        .post(format!("{}{turns}", store.kiosks[0].ui))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let reason: Value = unsigned.json().await.unwrap();
    assert_eq!(reason["error"], "unsigned", "{reason}");
    let (status, reason) = stepin(
        &store,
        0,
        turns,
        &body,
        &[0x11; 32],
        now(),
        "nonce-000000000004",
    )
    .await;
    assert_eq!(
        (status, reason["error"].as_str()),
        (401, Some("bad_signature")),
        "{reason}"
    );
    let (status, reason) = stepin(
        &store,
        0,
        turns,
        &body,
        &DEVICE_KEY,
        now() - 180,
        "nonce-000000000005",
    )
    .await;
    assert_eq!(
        (status, reason["error"].as_str()),
        (401, Some("stale_timestamp")),
        "{reason}"
    );
    let ts = now();
    let (status, answer) = stepin(
        &store,
        0,
        turns,
        &body,
        &DEVICE_KEY,
        ts,
        "nonce-000000000006",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, reason) = stepin(
        &store,
        0,
        turns,
        &body,
        &DEVICE_KEY,
        ts,
        "nonce-000000000006",
    )
    .await;
    assert_eq!(
        (status, reason["error"].as_str()),
        (401, Some("replayed_nonce")),
        "{reason}"
    );
    assert!(
        reason["message"]
            .as_str()
            .is_some_and(|m| m.contains("nonce")),
        "{reason}"
    );
    let b = store.board(0).await;
    let waiting: u64 = b["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["waiting"].as_u64().unwrap())
        .sum();
    assert_eq!(waiting, 3, "only the signed requests issued turns: {b}");
}
