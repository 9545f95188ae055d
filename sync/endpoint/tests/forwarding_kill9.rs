//! The forwarding outbox survives the endpoint's death: `crm-endpoint serve` as a real process
//! takes kiosk batches and forwards them to a slow Standard Webhooks receiver, is killed with
//! SIGKILL mid-delivery and started again on the same database; every message arrives, and a
//! message arriving twice does so only under its one webhook-id. On PostgreSQL, two replicas
//! forwarding from one database never send a message twice (rows claimed with a lease,
//! `FOR UPDATE SKIP LOCKED`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use common::Backend;
use common::fleet::{FLEET_ADMIN, Replica, enroll, ticket};
use crm_endpoint::db::StoreRecord;
use hmac::{Hmac, Mac};
use kiosk_protocol::auth::sign_request;
use kiosk_protocol::events::Envelope;
use kiosk_protocol::wire::{BatchRequest, EnrollResponse, KioskClock, batches_path};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_crm-endpoint");

/// Every verified arrival's webhook-id, in order.
type Arrivals = Arc<Mutex<Vec<String>>>;

/// A receiver that verifies each signature with its own HMAC and takes `delay` per message.
async fn receiver(
    secret: Arc<Mutex<String>>,
    delay: Duration,
) -> (String, Arrivals, Arc<Mutex<u32>>) {
    let arrivals: Arrivals = Arc::default();
    let rejected = Arc::new(Mutex::new(0u32));
    let (arr, rej) = (arrivals.clone(), rejected.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (arr, rej, secret) = (arr.clone(), rej.clone(), secret.clone());
            async move {
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let (id, ts, sig) = (
                    h("webhook-id"),
                    h("webhook-timestamp"),
                    h("webhook-signature"),
                );
                let key = base64::engine::general_purpose::STANDARD
                    .decode(secret.lock().unwrap().trim_start_matches("whsec_"))
                    .unwrap_or_default();
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                mac.update(format!("{id}.{ts}.{body}").as_bytes());
                let expected = format!(
                    "v1,{}",
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
                );
                if key.is_empty() || !sig.split(' ').any(|s| s == expected) {
                    *rej.lock().unwrap() += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                tokio::time::sleep(delay).await;
                arr.lock().unwrap().push(id);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, arrivals, rejected)
}

async fn subscribe(client: &reqwest::Client, base: &str, url: &str) -> String {
    let resp = client
        .post(format!("{base}/v1/admin/forwarding/endpoints"))
        .header("x-admin-token", FLEET_ADMIN)
        .json(&json!({ "kind": "webhook", "url": url, "event_types": ["turn.issued"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["secret"].as_str().unwrap().to_owned()
}

/// Posts `n` batches of `per` tickets as the kiosk; the expected webhook-ids.
async fn post_tickets(
    client: &reqwest::Client,
    base: &str,
    kiosk: &EnrollResponse,
    n: u64,
    per: u64,
) -> BTreeSet<String> {
    let boot = Uuid::now_v7();
    let mut ids = BTreeSet::new();
    for b in 0..n {
        let events: Vec<Envelope> = (0..per)
            .map(|i| {
                let seq = b * per + i + 1;
                let env = Envelope {
                    id: Uuid::now_v7(),
                    kiosk_id: kiosk.kiosk_id.clone(),
                    seq,
                    boot_id: boot,
                    wall_time: OffsetDateTime::now_utc(),
                    mono_ms: seq * 10,
                    schema_version: 1,
                    event: ticket(Uuid::now_v7(), u32::try_from(seq).unwrap()),
                };
                ids.insert(format!("msg_{}", env.id));
                env
            })
            .collect();
        let mono = events.last().unwrap().mono_ms;
        let body = serde_json::to_vec(
            &BatchRequest::new(&kiosk.kiosk_id, KioskClock::now(boot, mono), events).unwrap(),
        )
        .unwrap();
        let path = batches_path(&kiosk.kiosk_id);
        let headers = sign_request(
            &kiosk.kiosk_id,
            &kiosk.device_secret,
            "POST",
            &path,
            &body,
            OffsetDateTime::now_utc().unix_timestamp(),
        );
        let mut req = client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers.pairs() {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    ids
}

async fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn prepare(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    common::install_crypto();
    let (url, dir) = common::fresh_url(backend).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    db.upsert_store(StoreRecord {
        id: "north".into(),
        name: "Tienda Norte".into(),
    })
    .await
    .unwrap();
    (url, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_across_a_kill_9_duplicates_only_under_their_own_id() {
    let (url, _dir) = prepare(Backend::Sqlite).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    let client = reqwest::Client::new();
    let mut replica = Replica::start(BIN, &url, &[]);
    let kiosk = enroll(&db, &client, &replica.base(), "north").await;
    let secret = Arc::new(Mutex::new(String::new()));
    let (hook, arrivals, rejected) = receiver(secret.clone(), Duration::from_millis(40)).await;
    *secret.lock().unwrap() = subscribe(&client, &replica.base(), &hook).await;
    let expected = post_tickets(&client, &replica.base(), &kiosk, 10, 20).await;
    wait_until("deliveries to start", 60, || {
        arrivals.lock().unwrap().len() >= 30
    })
    .await;
    replica.kill();
    let at_kill = arrivals.lock().unwrap().len();
    assert!(
        at_kill < expected.len(),
        "all delivered before the kill: slow the receiver"
    );
    let replica = Replica::start(BIN, &url, &[]);
    // Messages claimed by the killed process wait out their lease (60 s).
    wait_until("every message", 240, || {
        arrivals
            .lock()
            .unwrap()
            .iter()
            .collect::<BTreeSet<_>>()
            .len()
            >= expected.len()
    })
    .await;
    drop(replica);
    let got = arrivals.lock().unwrap().clone();
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique, expected, "a message lost or unknown");
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for id in &got {
        *counts.entry(id).or_default() += 1;
    }
    let repeated = counts.values().filter(|n| **n > 1).count();
    println!(
        "{} messages, {at_kill} before the kill, {} arrivals, {repeated} repeated under their own id",
        expected.len(),
        got.len()
    );
    assert!(
        repeated <= 20,
        "more repeats than one round could claim: {repeated}"
    );
    assert_eq!(*rejected.lock().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_replicas_never_send_a_message_twice() {
    let (url, _dir) = prepare(Backend::Postgres).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    let client = reqwest::Client::new();
    let a = Replica::start(BIN, &url, &[]);
    let b = Replica::start(BIN, &url, &[]);
    let kiosk = enroll(&db, &client, &a.base(), "north").await;
    let secret = Arc::new(Mutex::new(String::new()));
    let (hook, arrivals, rejected) = receiver(secret.clone(), Duration::from_millis(5)).await;
    *secret.lock().unwrap() = subscribe(&client, &b.base(), &hook).await;
    let expected = post_tickets(&client, &a.base(), &kiosk, 10, 30).await;
    wait_until("every message", 120, || {
        arrivals.lock().unwrap().len() >= expected.len()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = arrivals.lock().unwrap().clone();
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique, expected);
    assert_eq!(got.len(), expected.len(), "a message was sent twice");
    assert_eq!(*rejected.lock().unwrap(), 0);
    drop((a, b));
}
