//! A browse point in a store, on the real binary: two `kiosk run` processes of one store sharing
//! its queue, the second configured with `kiosk.role = "browse"`. A customer takes a turn at the
//! queue kiosk, then taps their card at the browse point: it shows their turn ("A-002, 1 ahead")
//! and the content for their segment, takes no turn, and each item played reaches the CRM as
//! `content_played` (surface browse, their segment); a visitor without a card sees the content
//! for `anonymous`; the visit goes back to the attract screen.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod store_support;

use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use store_support::{Store, WAIT, take_ticket};

/// Ana, the demo's VIP customer (her card's UID, as the bench panel taps it).
const ANA_UID: &str = "04A1B2C3";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Restarts kiosk `k` with its simulator panel on (to tap cards) and, for a browse point, the
/// browse role; returns the panel's base URL.
async fn reconfigure(store: &mut Store, k: usize, browse: bool) -> String {
    let port = free_port();
    let kiosk = &mut store.kiosks[k];
    kiosk.stop();
    let mut site = std::fs::read_to_string(&kiosk.site).unwrap();
    site = site.replace(
        "[bench]\npanel = false",
        &format!("[bench]\npanel_listen = \"127.0.0.1:{port}\""),
    );
    if browse {
        site = site.replace(
            "timezone = \"Europe/Madrid\"",
            "timezone = \"Europe/Madrid\"\nrole = \"browse\"",
        );
    }
    std::fs::write(&kiosk.site, site).unwrap();
    kiosk.start(&store.http).await;
    format!("http://127.0.0.1:{port}")
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

async fn view_until(store: &Store, k: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = view(store, k).await;
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

async fn touch(store: &Store, k: usize, body: Value) {
    let res = store
        .http
        .post(format!("{}/api/kiosk/touch", store.kiosks[k].ui))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "touch {body}: {}", res.status());
}

/// Puts the card on the reader (until [`remove`]).
async fn tap(store: &Store, panel: &str, uid: &str) {
    let res = store
        .http
        .post(format!("{panel}/api/card"))
        .json(&json!({"action": "uid", "uid": uid}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "tap: {}", res.status());
}

async fn remove(store: &Store, panel: &str) {
    let res = store
        .http
        .post(format!("{panel}/api/card"))
        .json(&json!({"action": "remove"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "remove: {}", res.status());
}

/// The `content_played` payloads the CRM holds from kiosk `kiosk_id`, once there are `n`.
async fn crm_plays(store: &Store, kiosk_id: &str, n: usize) -> Vec<Value> {
    let path = store.kiosks[0].dir.parent().unwrap().join("crm.db");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let rows: Vec<String> = conn
            .prepare(
                "SELECT envelope FROM events WHERE type = 'content_played' AND kiosk_id = ?1 \
                 ORDER BY rowid",
            )
            .unwrap()
            .query_map([kiosk_id], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if rows.len() >= n {
            return rows
                .iter()
                .map(|e| serde_json::from_str::<Value>(e).unwrap()["payload"].clone())
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CRM holds {} content_played of {n}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_at_the_browse_point_shows_its_turn_and_its_segments_content_without_taking_one() {
    let mut store = Store::start(2).await;
    let queue_panel = reconfigure(&mut store, 0, false).await;
    let browse_panel = reconfigure(&mut store, 1, true).await;

    // The browse point invites a card tap, and says so in its view.
    let attract = view_until(&store, 1, "the browse attract screen", |v| {
        v["body"]["screen"] == "attract"
    })
    .await;
    assert_eq!(attract["role"], "browse");
    assert_eq!(view(&store, 0).await["role"], "queue");

    // A visitor takes a turn, then Ana (VIP) at the queue kiosk: one turn ahead of hers.
    let first = take_ticket(&store.http, &store.kiosks[0].ui, "A")
        .await
        .unwrap();
    view_until(&store, 0, "the attract screen", |v| {
        v["body"]["screen"] == "attract"
    })
    .await;
    // Her profile reaches the kiosks through the feed (every second here).
    let mut greeted = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !greeted {
        tap(&store, &queue_panel, ANA_UID).await;
        let v = view_until(&store, 0, "Ana's card read", |v| {
            v["body"]["screen"] != "identifying" && v["body"]["screen"] != "attract"
        })
        .await;
        remove(&store, &queue_panel).await;
        greeted = v["body"]["screen"] == "greeting";
        if !greeted {
            touch(&store, 0, json!({"action": "cancel"})).await;
            assert!(tokio::time::Instant::now() < deadline, "never greeted: {v}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    touch(&store, 0, json!({"action": "continue"})).await;
    view_until(&store, 0, "the services", |v| {
        v["body"]["screen"] == "choose_service"
    })
    .await;
    touch(
        &store,
        0,
        json!({"action": "choose_service", "service": "A", "priority": false}),
    )
    .await;
    let goodbye = view_until(&store, 0, "Ana's goodbye", |v| {
        v["body"]["screen"] == "goodbye"
    })
    .await;
    let ana_label = goodbye["body"]["turn"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(ana_label, first);
    touch(&store, 0, json!({"action": "done"})).await;

    // At the browse point: her turn (once the store's queue reached it) and the VIP content.
    let deadline = tokio::time::Instant::now() + WAIT;
    let shown = loop {
        tap(&store, &browse_panel, ANA_UID).await;
        let v = view_until(&store, 1, "the browse screen loaded", |v| {
            v["body"]["screen"] == "browse" && v["body"]["loading"] == false
        })
        .await;
        remove(&store, &browse_panel).await;
        if v["body"]["turn"]["label"] == ana_label.as_str() && v["body"]["item"].is_object() {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never her turn and content: {v}"
        );
        touch(&store, 1, json!({"action": "done"})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let body = &shown["body"];
    assert_eq!(body["turn"]["ahead"], 1, "{shown}");
    assert_eq!(body["item"]["campaign_id"], "demo-vip-coffee", "{shown}");
    assert!(
        body["item"]["image"]
            .as_str()
            .unwrap()
            .starts_with("/api/lobby/content/")
    );
    assert_eq!(body["item"]["alt"], "Una taza de café humeante");
    // Its picture is served by the kiosk.
    let img = store
        .http
        .get(format!(
            "{}{}",
            store.kiosks[1].ui,
            body["item"]["image"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(img.status(), 200);
    assert_eq!(img.headers()["content-type"], "image/png");
    touch(&store, 1, json!({"action": "done"})).await;
    view_until(&store, 1, "attract after Done", |v| {
        v["body"]["screen"] == "attract"
    })
    .await;

    // Without a card: the content for visitors.
    touch(&store, 1, json!({"action": "start"})).await;
    let anon = view_until(&store, 1, "the visitors' content", |v| {
        v["body"]["screen"] == "browse" && v["body"]["loading"] == false
    })
    .await;
    assert_eq!(
        anon["body"]["item"]["campaign_id"], "demo-welcome",
        "{anon}"
    );
    assert!(anon["body"]["turn"].is_null());
    touch(&store, 1, json!({"action": "done"})).await;

    // No turn was taken at the browse point: the store's queue holds the two.
    let board: Value = store.board(0).await;
    let waiting: u64 = board["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["waiting"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(waiting, 2, "{board}");

    // The CRM has the plays: at least Ana's VIP coffee with her segment, and the visitor's.
    let browse_id = store.kiosks[1].id.clone();
    let plays = crm_plays(&store, &browse_id, 2).await;
    let vip = plays
        .iter()
        .find(|p| p["campaign_id"] == "demo-vip-coffee")
        .unwrap_or_else(|| panic!("{plays:?}"));
    assert_eq!(vip["surface"], "browse");
    assert_eq!(vip["audience"], json!([{"segment": "vip", "count": 1}]));
    assert!(vip["card_token"].is_string(), "linked to her card: {vip}");
    let visitor = plays
        .iter()
        .find(|p| p["campaign_id"] == "demo-welcome")
        .unwrap_or_else(|| panic!("{plays:?}"));
    assert_eq!(
        visitor["audience"],
        json!([{"segment": "anonymous", "count": 1}])
    );
    assert!(visitor["card_token"].is_null());
}
