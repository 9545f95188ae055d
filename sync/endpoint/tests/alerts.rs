//! Fleet alerts (issue 20) in a scripted scenario on SQLite and PostgreSQL: each kind (kiosk
//! offline, printer out of paper, printer cover open, backlog, dead letters, clock skew, a
//! store's wait past its target) opens once its condition has held for its threshold and
//! resolves when it clears, from what real kiosk batches stored; each opening and resolution
//! reaches a webhook receiver once, which verifies the signature as the Standard Webhooks
//! specification documents it, through a failed first attempt (retried with backoff).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use common::{Backend, Harness, Kiosk};
use crm_endpoint::alerts::{self, THRESHOLDS_KEY, Thresholds, WEBHOOK_KEY, Webhook};
use crm_endpoint::db::alerts::AlertChanges;
use hmac::{Hmac, Mac};
use kiosk_protocol::events::{Envelope, Event};
use kiosk_protocol::wire::{BatchRequest, KioskClock, batches_path};
use serde_json::json;
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

const MIN: i64 = 60_000;

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// What the receiver accepted: (webhook-id, body) in arrival order.
type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A webhook receiver on loopback that verifies each message as the Standard Webhooks
/// specification says (HMAC-SHA256 keyed with the base64-decoded secret after `whsec_`, over
/// `id.timestamp.body`, compared with each `v1,` signature of the header; a timestamp within
/// five minutes), answers 503 to the first request, and records the verified ones.
async fn receiver(secret: String) -> (String, Received, Arc<Mutex<u32>>) {
    let received: Received = Arc::default();
    let rejected = Arc::new(Mutex::new(0u32));
    let first = Arc::new(Mutex::new(true));
    let (rec, rej) = (received.clone(), rejected.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (rec, rej, first, secret) =
                (rec.clone(), rej.clone(), first.clone(), secret.clone());
            async move {
                if std::mem::replace(&mut *first.lock().unwrap(), false) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let (id, ts, sigs) = (
                    h("webhook-id"),
                    h("webhook-timestamp"),
                    h("webhook-signature"),
                );
                let key = base64::engine::general_purpose::STANDARD
                    .decode(secret.strip_prefix("whsec_").unwrap())
                    .unwrap();
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                mac.update(format!("{id}.{ts}.{body}").as_bytes());
                let expected =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                let fresh = ts
                    .parse::<i64>()
                    .is_ok_and(|t| (OffsetDateTime::now_utc().unix_timestamp() - t).abs() <= 300);
                let valid = sigs
                    .split(' ')
                    .filter_map(|s| s.strip_prefix("v1,"))
                    .any(|s| s == expected);
                if !(valid && fresh && !id.is_empty()) {
                    *rej.lock().unwrap() += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                rec.lock()
                    .unwrap()
                    .push((id, serde_json::from_str(&body).unwrap()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received, rejected)
}

/// Posts `events` from `kiosk` with its clock `clock_off_ms` behind and `backlog` reported.
async fn post(h: &Harness, kiosk: &Kiosk, events: Vec<Event>, clock_off_ms: i64, backlog: u64) {
    post_aged(h, kiosk, events, clock_off_ms, backlog, None).await;
}

/// [`post`], the oldest event still waiting `backlog_age_ms` old as the kiosk reports it.
async fn post_aged(
    h: &Harness,
    kiosk: &Kiosk,
    events: Vec<Event>,
    clock_off_ms: i64,
    backlog: u64,
    backlog_age_ms: Option<u64>,
) {
    let now = OffsetDateTime::now_utc() - time::Duration::milliseconds(clock_off_ms);
    let envs: Vec<Envelope> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut env = h.envelope(kiosk, seq(), e);
            env.wall_time = now;
            env.mono_ms = 1000 + i as u64;
            env
        })
        .collect();
    let mut batch = BatchRequest::new(
        &kiosk.id,
        KioskClock {
            wall_time: now,
            mono_ms: 2000,
            boot_id: kiosk.boot_id,
        },
        envs,
    )
    .unwrap();
    batch.backlog = Some(backlog);
    batch.backlog_age_ms = backlog_age_ms;
    let body = serde_json::to_vec(&batch).unwrap();
    let resp = h
        .signed(kiosk, reqwest::Method::POST, &batches_path(&kiosk.id), body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

fn seq() -> u64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn event(v: serde_json::Value) -> Event {
    serde_json::from_value(v).unwrap()
}

fn printer(status: &str, reason: Option<&str>) -> Event {
    event(json!({ "type": "device_status_changed", "payload": {
        "device": "printer", "status": status, "reason": reason } }))
}

/// The kinds (and subjects) of some changes.
fn kinds(changes: &[crm_endpoint::db::alerts::AlertRecord]) -> Vec<(String, String)> {
    let mut k: Vec<_> = changes
        .iter()
        .map(|a| (a.kind.clone(), a.subject.clone()))
        .collect();
    k.sort();
    k
}

async fn eval(h: &Harness, at: i64) -> AlertChanges {
    alerts::evaluate(&h.db, at).await.unwrap()
}

async fn every_alert_kind_opens_and_resolves_once_and_reaches_the_webhook(backend: Backend) {
    let h = Harness::start(backend).await;
    let (k1, k2) = (h.kiosk.clone(), h.enroll("north").await);
    let k3 = h.enroll("south").await;
    // Offline waits for its own phase: a day first.
    let mut t = Thresholds {
        offline_minutes: 24 * 60,
        printer_minutes: 10,
        backlog_minutes: 30,
        dead_letter_minutes: 60,
        skew_seconds: 120,
        queue_wait_minutes: 20,
        store_wait_minutes: BTreeMap::new(),
    };
    let set = async |t: &Thresholds| {
        h.db.set_setting(THRESHOLDS_KEY, Some(serde_json::to_string(t).unwrap()))
            .await
            .unwrap();
    };
    set(&t).await;
    let hook = Webhook::new("http://127.0.0.1:1/hook").unwrap();
    let (url, received, rejected) = receiver(hook.secret.clone()).await;
    let hook = Webhook { url, ..hook };
    h.db.set_setting(WEBHOOK_KEY, Some(serde_json::to_string(&hook).unwrap()))
        .await
        .unwrap();
    let http = reqwest::Client::new();

    // Every kiosk says hello: nothing is wrong.
    for k in [&k1, &k2, &k3] {
        post(&h, k, vec![printer("ok", None)], 0, 0).await;
    }
    let t0 = now_ms();
    assert_eq!(eval(&h, t0).await, AlertChanges::default());

    // Printers: k1 out of paper, k2 cover open. Nothing before ten minutes, then both.
    post(
        &h,
        &k1,
        vec![printer("absent", Some("paper out; load a new roll"))],
        0,
        0,
    )
    .await;
    post(
        &h,
        &k2,
        vec![printer(
            "absent",
            Some("cover open; close the printer cover"),
        )],
        0,
        0,
    )
    .await;
    let t1 = now_ms();
    assert_eq!(eval(&h, t1 + 9 * MIN).await, AlertChanges::default());
    let c = eval(&h, t1 + 11 * MIN).await;
    let printer_alerts = vec![
        (
            "printer_cover_open".to_owned(),
            format!("{}/printer", k2.id),
        ),
        ("printer_paper_out".to_owned(), format!("{}/printer", k1.id)),
    ];
    assert_eq!(kinds(&c.opened), printer_alerts);
    assert!(c.opened.iter().any(|a| a.detail.contains("out of paper")));
    // Still so a minute later: nothing new (one message per opening).
    assert_eq!(eval(&h, t1 + 12 * MIN).await, AlertChanges::default());
    post(&h, &k1, vec![printer("ok", None)], 0, 0).await;
    post(&h, &k2, vec![printer("ok", None)], 0, 0).await;
    let c = eval(&h, now_ms()).await;
    assert_eq!(kinds(&c.resolved), printer_alerts);
    assert!(c.opened.is_empty());

    // Backlog: k2 reports 40 events waiting; after 30 minutes of that, an alert; 0 clears it.
    post(&h, &k2, vec![printer("ok", None)], 0, 40).await;
    let t2 = now_ms();
    assert_eq!(eval(&h, t2).await, AlertChanges::default());
    let c = eval(&h, t2 + 31 * MIN).await;
    assert_eq!(kinds(&c.opened), [("backlog".to_owned(), k2.id.clone())]);
    post(&h, &k2, vec![printer("ok", None)], 0, 0).await;
    assert_eq!(
        kinds(&eval(&h, t2 + 32 * MIN).await.resolved),
        [("backlog".to_owned(), k2.id.clone())]
    );

    // Clock skew: k3 boots with its clock five minutes behind (the estimate is the median of
    // a boot's samples); a new boot with the right time clears it.
    let k3 = Kiosk {
        boot_id: Uuid::now_v7(),
        ..k3
    };
    post(&h, &k3, vec![printer("ok", None)], 5 * MIN, 0).await;
    let c = eval(&h, now_ms()).await;
    assert_eq!(kinds(&c.opened), [("clock_skew".to_owned(), k3.id.clone())]);
    assert!(c.opened[0].detail.contains("300 s"), "{:?}", c.opened[0]);
    let k3 = Kiosk {
        boot_id: Uuid::now_v7(),
        ..k3
    };
    post(&h, &k3, vec![printer("ok", None)], 0, 0).await;
    assert_eq!(
        kinds(&eval(&h, now_ms()).await.resolved),
        [("clock_skew".to_owned(), k3.id.clone())]
    );

    // A store's wait: a ticket waiting at north for 21 minutes (fleet target 20); south's own
    // target of 30 is not passed by its 21-minute wait.
    t.store_wait_minutes.insert("south".into(), 30);
    set(&t).await;
    let day = OffsetDateTime::now_utc().date().to_string();
    let ticket = |turn_id: Uuid, label: &str| {
        event(json!({ "type": "ticket_issued", "payload": {
            "turn_id": turn_id, "turn": label, "service": "A", "number": 1,
            "business_day": day, "priority": false, "position": 0, "estimated_wait_s": 0,
            "card_token": null, "locale": "es", "campaign_id": null, "out_of_sequence": false } }))
    };
    let (north_turn, south_turn) = (Uuid::now_v7(), Uuid::now_v7());
    post(&h, &k1, vec![ticket(north_turn, "A-001")], 0, 0).await;
    post(&h, &k3, vec![ticket(south_turn, "A-001")], 0, 0).await;
    let t4 = now_ms();
    assert_eq!(eval(&h, t4 + 19 * MIN).await, AlertChanges::default());
    let c = eval(&h, t4 + 21 * MIN).await;
    assert_eq!(
        kinds(&c.opened),
        [("queue_wait".to_owned(), "north".to_owned())]
    );
    assert!(
        c.opened[0].detail.contains("past its target of 20"),
        "{:?}",
        c.opened[0]
    );
    let call = event(json!({ "type": "turn_called", "payload": {
        "turn_id": north_turn, "turn": "A-001", "counter": "1", "recall": false, "waited_s": 0 } }));
    post(&h, &k1, vec![call], 0, 0).await;
    assert_eq!(
        kinds(&eval(&h, t4 + 22 * MIN).await.resolved),
        [("queue_wait".to_owned(), "north".to_owned())]
    );
    let call = event(json!({ "type": "turn_called", "payload": {
        "turn_id": south_turn, "turn": "A-001", "counter": "1", "recall": false, "waited_s": 0 } }));
    post(&h, &k3, vec![call], 0, 0).await;

    // Offline: fifteen minutes without a request opens it for each kiosk; a request clears it.
    t.offline_minutes = 15;
    set(&t).await;
    let t5 = now_ms();
    assert_eq!(eval(&h, t5 + 14 * MIN).await, AlertChanges::default());
    let c = eval(&h, t5 + 16 * MIN).await;
    let mut offline: Vec<_> = [&k1, &k2, &k3]
        .iter()
        .map(|k| ("kiosk_offline".to_owned(), k.id.clone()))
        .collect();
    offline.sort();
    assert_eq!(kinds(&c.opened), offline);
    for k in [&k1, &k2, &k3] {
        post(&h, k, vec![printer("ok", None)], 0, 0).await;
    }
    assert_eq!(kinds(&eval(&h, now_ms()).await.resolved), offline);

    // Dead letters: at once; resolved once the window has passed without another (offline
    // waits a day again meanwhile).
    t.offline_minutes = 24 * 60;
    set(&t).await;
    let dead = event(json!({ "type": "event_dead_lettered", "payload": {
        "event_id": Uuid::now_v7(), "seq": 7, "reason": "rejected: schema" } }));
    post(&h, &k3, vec![dead], 0, 0).await;
    let t3 = now_ms();
    let c = eval(&h, t3).await;
    assert_eq!(
        kinds(&c.opened),
        [("dead_letters".to_owned(), k3.id.clone())]
    );
    assert_eq!(
        kinds(&eval(&h, t3 + 61 * MIN).await.resolved),
        [("dead_letters".to_owned(), k3.id.clone())]
    );

    // The webhook: the first attempt fails (503) and is retried after its backoff; then every
    // opening and every resolution arrives once, verified, opening before resolution.
    let expected_alerts = 2 + 1 + 1 + 1 + 1 + 3;
    // Past every scripted time: every message is due. An alert's resolution waits for its
    // opening to be delivered.
    let when = now_ms() + 3 * 3_600_000;
    let mut sent = alerts::deliver_due(&h.db, &http, when).await.unwrap();
    assert_eq!(
        sent,
        expected_alerts - 1,
        "every opening but the failed one"
    );
    for round in 0..5 {
        sent += alerts::deliver_due(&h.db, &http, when + 1000 + round)
            .await
            .unwrap();
    }
    assert_eq!(
        sent,
        2 * expected_alerts - 2,
        "the failed opening waits for its backoff, its resolution behind it"
    );
    for round in 0..5 {
        sent += alerts::deliver_due(&h.db, &http, when + 6000 + round)
            .await
            .unwrap();
    }
    let got = received.lock().unwrap().clone();
    assert_eq!(*rejected.lock().unwrap(), 0, "every signature verifies");
    assert_eq!(sent, 2 * expected_alerts);
    assert_eq!(got.len(), 2 * expected_alerts);
    let mut ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "each message once");
    let mut per_alert: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, body) in &got {
        per_alert
            .entry(body["data"]["alert_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_alert.len(), expected_alerts);
    for types in per_alert.values() {
        assert_eq!(types, &["alert.opened", "alert.resolved"]);
    }
    let kinds_sent: std::collections::BTreeSet<&str> = got
        .iter()
        .map(|(_, b)| b["data"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds_sent.into_iter().collect::<Vec<_>>(),
        [
            "backlog",
            "clock_skew",
            "dead_letters",
            "kiosk_offline",
            "printer_cover_open",
            "printer_paper_out",
            "queue_wait"
        ]
    );
    // Nothing left to send.
    assert_eq!(
        alerts::deliver_due(&h.db, &http, when + 3_600_000)
            .await
            .unwrap(),
        0
    );
    let _ = when;
    h.stop().await;
}

/// A tampered secret fails the receiver's check: the signature really covers the message.
#[tokio::test]
async fn a_message_signed_with_another_secret_is_refused_by_the_receiver() {
    common::install_crypto();
    let good = Webhook::new("http://127.0.0.1:1/hook").unwrap();
    let (url, received, rejected) = receiver(good.secret.clone()).await;
    let other = Webhook::new(&url).unwrap();
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let body = r#"{"type":"alert.opened"}"#;
        let ts = OffsetDateTime::now_utc().unix_timestamp();
        let sig = alerts::sign(&other, "msg_x", ts, body).unwrap();
        client
            .post(&url)
            .header("webhook-id", "msg_x")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
    }
    assert!(received.lock().unwrap().is_empty());
    assert_eq!(
        *rejected.lock().unwrap(),
        1,
        "the first answered 503, the second refused"
    );
}

on_both_databases!(every_alert_kind_opens_and_resolves_once_and_reaches_the_webhook);

async fn a_backlog_alert_opens_when_the_oldest_unsent_event_passes_the_threshold_exactly(
    backend: Backend,
) {
    let h = Harness::start(backend).await;
    let k = h.kiosk.clone();
    // Only the backlog can open here: the other thresholds out of reach.
    let t = Thresholds {
        backlog_minutes: 30,
        offline_minutes: 100_000,
        skew_seconds: 100_000,
        ..Thresholds::default()
    };
    h.db.set_setting(THRESHOLDS_KEY, Some(serde_json::to_string(&t).unwrap()))
        .await
        .unwrap();
    let age = |m: i64| Some(u64::try_from(m * MIN).unwrap());

    // 5 events waiting, the oldest made 29 minutes ago, reported by a kiosk whose clock is 5
    // minutes behind (an age needs no clock agreement): under the threshold for one more minute.
    let t0 = now_ms();
    post_aged(&h, &k, vec![printer("ok", None)], 5 * MIN, 5, age(29)).await;
    assert_eq!(eval(&h, t0 + MIN - 2_000).await, AlertChanges::default());
    let c = eval(&h, t0 + MIN + 2_000).await;
    assert_eq!(kinds(&c.opened), [("backlog".to_owned(), k.id.clone())]);
    let since = c.opened[0].since_ms;
    assert!(
        (since - (t0 - 29 * MIN)).abs() < 10_000,
        "the alert does not date from the oldest waiting event: {since} vs {}",
        t0 - 29 * MIN
    );
    assert!(
        c.opened[0].detail.contains("the oldest for 30 minutes"),
        "{:?}",
        c.opened[0]
    );

    // The oldest ones went out; what waits now is 10 minutes old: resolved, however many wait.
    post_aged(&h, &k, vec![printer("ok", None)], 0, 300, age(10)).await;
    let c = eval(&h, t0 + 2 * MIN).await;
    assert_eq!(kinds(&c.resolved), [("backlog".to_owned(), k.id.clone())]);
    // Many events but young, then empty: nothing, ever.
    assert_eq!(eval(&h, now_ms() + 19 * MIN).await, AlertChanges::default());
    post_aged(&h, &k, vec![printer("ok", None)], 0, 0, None).await;
    assert_eq!(
        eval(&h, now_ms() + 600 * MIN).await,
        AlertChanges::default()
    );
    h.stop().await;
}

on_both_databases!(a_backlog_alert_opens_when_the_oldest_unsent_event_passes_the_threshold_exactly);
