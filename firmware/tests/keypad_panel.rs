//! The keypad and speech endpoints of the kiosk as `kiosk demo` runs it, over HTTP: the panel's
//! keypad holds the start key (the simulator writes `input_event`s, the real reader decodes
//! them) and accessible mode comes on; keys reach the screen's event stream as `key` events;
//! the screen may make the kiosk speak only in accessible mode.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::time::Duration;

use kiosk::demo::DemoOptions;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_keypad_starts_accessible_mode_and_its_keys_reach_the_screen_stream() {
    let dir = tempfile::tempdir().unwrap();
    let demo = kiosk::demo::start(DemoOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        kiosks: 1,
        browse_point: false,
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let ui = |p: &str| format!("http://{}{p}", demo.kiosk.ui_addr);
    let panel = |p: &str| format!("http://{}{p}", demo.panel_addr);

    let speak =
        json!({ "text": "¿Qué necesita?", "lang": "es", "class": "screen", "new_screen": true });
    let refused = http
        .post(ui("/api/kiosk/speak"))
        .json(&speak)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        409,
        "no screen speech outside accessible mode"
    );
    assert!(refused.text().await.unwrap().contains("accessible mode"));

    let mut stream = http.get(ui("/api/kiosk/stream")).send().await.unwrap();
    let res = http
        .post(panel("/api/kiosks/1/keypad"))
        .json(&json!({ "action": "hold_start" }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let view: Value = http
            .get(ui("/api/kiosk/view"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["accessible"] == json!(true) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "accessible mode never came: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ok = http
        .post(ui("/api/kiosk/speak"))
        .json(&speak)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);

    for key in ["down", "enter"] {
        let res = http
            .post(panel("/api/kiosks/1/keypad"))
            .json(&json!({ "action": "tap", "key": key }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{key}: {}", res.status());
    }
    let bad = http
        .post(panel("/api/kiosks/1/keypad"))
        .json(&json!({ "action": "tap", "key": "sideways" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(seen.contains("event: key\ndata: {\"key\":\"next\"}")
        && seen.contains("event: key\ndata: {\"key\":\"enter\"}"))
    {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("the stream ended or stalled ({other:?}); it carried:\n{seen}"),
        }
    }
    assert!(
        seen.find("{\"key\":\"next\"}") < seen.find("{\"key\":\"enter\"}"),
        "keys in the order pressed:\n{seen}"
    );
    assert!(
        !seen.contains("digit\",\"n\":5"),
        "the held start key is not also a 5:\n{seen}"
    );
    drop(stream);
    demo.stop().await;
}
