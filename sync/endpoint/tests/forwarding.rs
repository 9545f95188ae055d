//! Forwarding to the company's CRM (issue 21 item 6): what real kiosk batches store reaches a
//! subscribed Standard Webhooks receiver, which verifies each signature with its own HMAC (the
//! `hmac` and `sha2` crates, not the endpoint's code), once per webhook-id and in each
//! customer's order; a batch sent again forwards nothing twice; a receiver that keeps failing
//! gets the stated schedule, its message becomes a dead letter, its endpoint is disabled, and a
//! replay delivers the message with its original webhook-id; the HubSpot connector against a
//! local fake of HubSpot's API that checks the requests as HubSpot documents them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use common::{Backend, Harness};
use crm_endpoint::db::forward::NewEndpoint;
use crm_endpoint::forward::{self, MAX_ATTEMPTS, base_backoff};
use hmac::{Hmac, Mac};
use kiosk_protocol::events::Event;
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

const ANA: &str = "0123456789abcdef0123456789abcdef";
const BEA: &str = "fedcba9876543210fedcba9876543210";

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

fn event(v: Value) -> Event {
    serde_json::from_value(v).unwrap()
}

/// What a receiver took: (webhook-id, body) in arrival order.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A Standard Webhooks receiver on loopback: verifies the signature (HMAC-SHA256 keyed with the
/// base64 after `whsec_`, over `id.timestamp.body`, against each `v1,` signature; timestamp
/// within five minutes); answers `fail(body)` when it says so, else records and answers 204.
struct Receiver {
    url: String,
    received: Received,
    attempts: Arc<AtomicU32>,
    rejected: Arc<AtomicU32>,
    secret: Arc<Mutex<String>>,
}

type FailRule = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

async fn receiver(fail: FailRule) -> Receiver {
    let received: Received = Arc::default();
    let attempts = Arc::new(AtomicU32::new(0));
    let rejected = Arc::new(AtomicU32::new(0));
    let secret = Arc::new(Mutex::new(String::new()));
    let (rec, att, rej, sec) = (
        received.clone(),
        attempts.clone(),
        rejected.clone(),
        secret.clone(),
    );
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (rec, att, rej, sec, fail) = (
                rec.clone(),
                att.clone(),
                rej.clone(),
                sec.clone(),
                fail.clone(),
            );
            async move {
                att.fetch_add(1, Ordering::SeqCst);
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
                let secret = sec.lock().unwrap().clone();
                let key = base64::engine::general_purpose::STANDARD
                    .decode(secret.strip_prefix("whsec_").unwrap_or(""))
                    .unwrap_or_default();
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
                if key.is_empty() || !(valid && fresh && id.starts_with("msg_")) {
                    rej.fetch_add(1, Ordering::SeqCst);
                    return StatusCode::UNAUTHORIZED;
                }
                let body: Value = serde_json::from_str(&body).unwrap();
                if fail(&body) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                rec.lock().unwrap().push((id, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url,
        received,
        attempts,
        rejected,
        secret,
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn seq() -> u64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn registration(token: &str, name: &str) -> Vec<Event> {
    vec![
        event(json!({ "type": "customer_registered", "payload": {
            "card_token": token, "display_name": name, "email": "ana@example.com",
            "phone": null, "locale": "es" } })),
        event(json!({ "type": "consent_given", "payload": {
            "card_token": token, "purpose": "profile", "policy_version": "2026-01",
            "policy_sha256": "ab".repeat(32) } })),
    ]
}

fn turn(turn_id: Uuid, token: Option<&str>) -> Vec<Event> {
    vec![
        event(json!({ "type": "ticket_issued", "payload": {
            "turn_id": turn_id, "turn": "A-001", "service": "A", "number": 1,
            "business_day": "2026-12-06", "priority": false, "position": 0,
            "estimated_wait_s": 60, "card_token": token, "locale": "es", "campaign_id": null,
            "out_of_sequence": false } })),
        event(json!({ "type": "turn_called", "payload": {
            "turn_id": turn_id, "turn": "A-001", "counter": "1", "recall": false, "waited_s": 30,
            "staff": "marta" } })),
        event(json!({ "type": "turn_served", "payload": {
            "turn_id": turn_id, "counter": "1", "service_s": 120 } })),
    ]
}

async fn subscribe(h: &Harness, body: Value) -> Value {
    let resp = h
        .admin(reqwest::Method::POST, "/v1/admin/forwarding/endpoints")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    resp.json().await.unwrap()
}

async fn every_forwarded_message_reaches_the_receiver_signed_once_in_customer_order(
    backend: Backend,
) {
    let h = Harness::start(backend).await;
    let k = h.kiosk.clone();
    // The receiver refuses the first message once: the customer's later messages wait for it.
    let refused = Arc::new(AtomicU32::new(0));
    let r = {
        let refused = refused.clone();
        receiver(Arc::new(move |_b: &Value| {
            refused.fetch_add(1, Ordering::SeqCst) == 0
        }))
        .await
    };
    let created = subscribe(
        &h,
        json!({ "kind": "webhook", "url": r.url,
                "event_types": ["customer.registered", "customer.updated", "consent.changed",
                  "turn.issued", "turn.called", "turn.served", "survey.answered",
                  "coupon.redeemed", "customer.erased"] }),
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    *r.secret.lock().unwrap() = secret;
    // The list never shows the secret again.
    let list: Value = h
        .admin(reqwest::Method::GET, "/v1/admin/forwarding/endpoints")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!list.to_string().contains("whsec_"), "{list}");

    let ana_turn = Uuid::now_v7();
    let anonymous_turn = Uuid::now_v7();
    let mut first: Vec<_> = registration(ANA, "Ana")
        .into_iter()
        .chain(turn(ana_turn, Some(ANA)))
        .chain(turn(anonymous_turn, None))
        .map(|e| h.envelope(&k, seq(), e))
        .collect();
    for (i, e) in first.iter_mut().enumerate() {
        e.mono_ms = 1000 + i as u64;
    }
    assert_eq!(h.post_events(&k, first.clone()).await.status(), 200);
    // The same batch again (a kiosk that lost the answer): duplicates, nothing forwarded twice.
    assert_eq!(h.post_events(&k, first).await.status(), 200);
    let later: Vec<_> = [
        event(json!({ "type": "survey_answered", "payload": {
            "turn_id": ana_turn, "score": 9, "reason": null, "card_token": ANA } })),
        event(json!({ "type": "coupon_redeemed", "payload": {
            "coupon_code": "BIENV-A-0000000002", "campaign_id": "welcome", "card_token": ANA,
            "variant": "a" } })),
    ]
    .into_iter()
    .map(|e| h.envelope(&k, seq(), e))
    .collect();
    assert_eq!(h.post_events(&k, later).await.status(), 200);
    wait_for("ten messages", || r.received.lock().unwrap().len() >= 10).await;
    let resp = h
        .admin(
            reqwest::Method::POST,
            &format!("/v1/admin/customers/{ANA}/erase"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    wait_for("the erasure", || r.received.lock().unwrap().len() >= 11).await;
    // A kiosk that was offline sends Ana's registration made before her erasure: stored
    // redacted, and not forwarded (it would bring her back in the CRM).
    let mut late = h.envelope(&k, seq(), registration(ANA, "Ana").remove(0));
    late.boot_id = Uuid::now_v7();
    late.wall_time = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    assert_eq!(h.post_events(&k, vec![late]).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let got = r.received.lock().unwrap().clone();
    assert_eq!(r.rejected.load(Ordering::SeqCst), 0, "a signature failed");
    let mut ids: Vec<&String> = got.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "a message arrived twice: {got:?}");
    assert_eq!(got.len(), 11, "{got:#?}");
    let about = |token: Option<&str>| -> Vec<String> {
        got.iter()
            .filter(|(_, b)| b["data"]["card_token"].as_str() == token)
            .map(|(_, b)| b["type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        about(Some(ANA)),
        [
            "customer.registered",
            "consent.changed",
            "turn.issued",
            "turn.called",
            "turn.served",
            "survey.answered",
            "coupon.redeemed",
            "customer.erased"
        ],
        "Ana's messages out of order"
    );
    assert_eq!(about(None), ["turn.issued", "turn.called", "turn.served"]);
    let registered = &got
        .iter()
        .find(|(_, b)| b["type"] == "customer.registered")
        .unwrap()
        .1;
    // Consent to the profile came in the same batch: the CRM gets the name.
    assert_eq!(
        registered["data"]["customer"]["profile"]["display_name"],
        "Ana"
    );
    assert_eq!(registered["data"]["customer"]["consents"]["profile"], true);
    assert_eq!(registered["data"]["store_id"], "north");
    let called = &got
        .iter()
        .find(|(_, b)| b["type"] == "turn.called" && b["data"]["card_token"] == ANA)
        .unwrap()
        .1;
    assert_eq!(called["data"]["turn_id"], ana_turn.to_string());
    assert_eq!(
        called["data"]["staff"], "marta",
        "the staff member who called, by id"
    );
    // The refused first message was sent again under the same id.
    assert!(r.attempts.load(Ordering::SeqCst) >= 12);
    h.stop().await;
}

/// A customer in the admin API's shape.
fn customer(token: &str, name: &str, consents: &[&str]) -> crm_endpoint::db::NewCustomer {
    serde_json::from_value(json!({ "card_token": token, "store_id": "north",
        "display_name": name, "locale": "es", "email": null, "phone": "+34600000000",
        "consents": consents }))
    .unwrap()
}

async fn webhook_endpoint(db: &crm_endpoint::db::SharedDb, url: &str, secret: &str) -> String {
    let id = format!("fwd_{}", Uuid::now_v7());
    db.forward_create_endpoint(
        NewEndpoint {
            id: id.clone(),
            kind: "webhook".into(),
            url: url.into(),
            secret: secret.into(),
            event_types: vec!["customer.updated".into(), "customer.erased".into()],
            options: json!({}),
        },
        now_ms(),
    )
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_schedule_then_a_dead_letter_the_endpoint_disabled_and_a_replay()
 {
    common::install_crypto();
    let (db, _dir) = common::open_db(Backend::Sqlite).await;
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let r = {
        let failing = failing.clone();
        receiver(Arc::new(move |_| failing.load(Ordering::SeqCst))).await
    };
    let secret = crm_endpoint::outbound::new_secret();
    *r.secret.lock().unwrap() = secret.clone();
    let endpoint = webhook_endpoint(&db, &r.url, &secret).await;
    let t0 = now_ms();
    db.upsert_customer(customer(ANA, "Ana", &["profile"]), t0)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut now = t0;
    let mut dead = 0;
    for attempt in 1..=MAX_ATTEMPTS {
        // Not due before the schedule's wait less its jitter.
        if attempt > 1 {
            let early = now + (base_backoff(attempt - 1).as_millis() as i64) * 79 / 100;
            let round = forward::deliver_due(&db, &http, early).await.unwrap();
            assert_eq!(
                round,
                forward::Round::default(),
                "sent early at attempt {attempt}"
            );
            now += (base_backoff(attempt - 1).as_millis() as i64) * 121 / 100;
        }
        let round = forward::deliver_due(&db, &http, now).await.unwrap();
        assert_eq!(round.delivered, 0);
        dead += round.dead;
        assert_eq!(r.attempts.load(Ordering::SeqCst), attempt);
    }
    assert_eq!(dead, 1, "the 15th failure makes a dead letter");
    let hours = (now - t0) as f64 / 3_600_000.0;
    assert!(
        (72.0..95.0).contains(&hours),
        "the retries spanned {hours} h"
    );
    let ep = db
        .forward_endpoint(endpoint.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ep.state, "disabled", "{ep:?}");
    assert!(ep.state_reason.unwrap().contains("automatically"));
    assert_eq!((ep.pending, ep.dead), (0, 1));
    let letters = db.forward_dead_letters(None, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, i64::from(MAX_ATTEMPTS));
    assert!(letters[0].last_error.as_deref().unwrap().contains("503"));

    // Disabled: a new message is queued but not sent, even when due.
    db.upsert_customer(customer(BEA, "Bea", &[]), now)
        .await
        .unwrap();
    failing.store(false, Ordering::SeqCst);
    assert_eq!(
        db.forward_replay(endpoint.clone(), Some(letters[0].seq), now)
            .await
            .unwrap(),
        1
    );
    let round = forward::deliver_due(&db, &http, now + 1000).await.unwrap();
    assert_eq!(round.delivered, 0, "a disabled endpoint is sent nothing");
    assert!(
        db.forward_set_enabled(endpoint.clone(), true, now)
            .await
            .unwrap()
    );
    let round = forward::deliver_due(&db, &http, now + 1000).await.unwrap();
    assert_eq!(round.delivered, 2);
    let got = r.received.lock().unwrap().clone();
    assert_eq!(got[0].0, letters[0].msg_id, "a replay keeps the webhook-id");
    assert_eq!(got[0].1["data"]["card_token"], ANA);
    assert_eq!(got[1].1["data"]["card_token"], BEA);
    // Bea gave no consent to the profile: nothing personal beyond the card token.
    assert!(
        got[1].1["data"]["customer"]["profile"].is_null(),
        "{}",
        got[1].1
    );
    let ep = db.forward_endpoint(endpoint).await.unwrap().unwrap();
    assert_eq!(
        (ep.state.as_str(), ep.failures, ep.delivered, ep.dead),
        ("enabled", 0, 2, 0)
    );
    // Delivered messages are deleted once delivered before the cut (serve: a week ago).
    assert_eq!(db.forward_purge_delivered(now + 1000).await.unwrap(), 0);
    assert_eq!(db.forward_purge_delivered(now + 1001).await.unwrap(), 2);
    assert_eq!(
        db.forward_endpoint(ep.id).await.unwrap().unwrap().delivered,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_later_message_waits_until_the_earlier_is_delivered() {
    common::install_crypto();
    let (db, _dir) = common::open_db(Backend::Sqlite).await;
    // Ana's first message fails once; Bea's are independent of hers.
    let seen_ana = Arc::new(AtomicU32::new(0));
    let r = {
        let seen_ana = seen_ana.clone();
        receiver(Arc::new(move |b: &Value| {
            b["data"]["card_token"] == ANA && seen_ana.fetch_add(1, Ordering::SeqCst) == 0
        }))
        .await
    };
    let secret = crm_endpoint::outbound::new_secret();
    *r.secret.lock().unwrap() = secret.clone();
    webhook_endpoint(&db, &r.url, &secret).await;
    let t0 = now_ms();
    db.upsert_customer(customer(ANA, "Ana", &["profile"]), t0)
        .await
        .unwrap();
    db.upsert_customer(customer(ANA, "Ana María", &["profile"]), t0)
        .await
        .unwrap();
    db.upsert_customer(customer(BEA, "Bea", &["profile"]), t0)
        .await
        .unwrap();
    db.erase_customer(ANA.parse().unwrap(), t0).await.unwrap();
    let http = reqwest::Client::new();
    let round = forward::deliver_due(&db, &http, t0).await.unwrap();
    // Ana's first (refused) and Bea's: Ana's second waits behind her first.
    assert_eq!((round.delivered, round.failed), (1, 1));
    assert_eq!(r.attempts.load(Ordering::SeqCst), 2);
    let round = forward::deliver_due(&db, &http, t0 + 1000).await.unwrap();
    assert_eq!(
        round,
        forward::Round::default(),
        "Ana's second overtook her first"
    );
    let mut now = t0 + 7000;
    for _ in 0..4 {
        forward::deliver_due(&db, &http, now).await.unwrap();
        now += 1000;
    }
    let got = r.received.lock().unwrap().clone();
    let ana: Vec<(String, Value)> = got
        .iter()
        .filter(|(_, b)| b["data"]["card_token"] == ANA)
        .cloned()
        .collect();
    let kinds: Vec<&str> = ana
        .iter()
        .map(|(_, b)| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["customer.updated", "customer.updated", "customer.erased"]
    );
    // The erasure stripped the profile from Ana's messages not yet sent: the second update
    // went out with the card token only.
    assert!(
        ana[1].1["data"]["customer"]["profile"].is_null(),
        "{}",
        ana[1].1
    );
}

/// What the fake HubSpot keeps.
#[derive(Default)]
struct HubSpotState {
    /// Contacts: (id, card token, properties).
    contacts: Vec<(String, String, serde_json::Map<String, Value>)>,
    /// Custom event occurrences.
    events: Vec<Value>,
    /// GDPR deletions by card token.
    deleted: Vec<String>,
    /// Requests refused for not being as HubSpot documents them.
    refused: Vec<String>,
    /// Requests answered 429.
    throttled: u32,
    /// Requests seen.
    requests: u32,
}

const HUBSPOT_TOKEN: &str = "pat-eu1-11111111-2222-3333-4444-555555555555";

/// A fake of HubSpot's API as its reference documents it: a Bearer private-app token; batch
/// upsert of contacts (`inputs` of `idProperty`, `id`, `properties` with string values; the
/// answer's `results` carry the contact `id`); custom event occurrences (`eventName`
/// `pe{HubID}_…`, `properties` required with string values, `objectId` a known contact,
/// `occurredAt` date-time, answered 204); GDPR deletion (`objectId`, `idProperty`, 204). Its
/// first request is answered 429 with `Retry-After: 1`, as HubSpot does past its rate limit.
async fn fake_hubspot() -> (String, Arc<Mutex<HubSpotState>>) {
    let state: Arc<Mutex<HubSpotState>> = Arc::default();
    let st = state.clone();
    let check = move |headers: &HeaderMap, path: &str, body: &Value| -> Result<(), String> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {HUBSPOT_TOKEN}") {
            return Err(format!("{path}: no Bearer private-app token"));
        }
        if !headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
        {
            return Err(format!("{path}: not application/json"));
        }
        let strings = |v: &Value| {
            v.as_object()
                .is_some_and(|o| o.values().all(Value::is_string))
        };
        match path {
            "/crm/v3/objects/contacts/batch/upsert" => {
                let inputs = body["inputs"].as_array().ok_or("upsert: no inputs")?;
                if inputs.is_empty() {
                    return Err("upsert: empty inputs".into());
                }
                for i in inputs {
                    if i["idProperty"] != "kiosk_card_token"
                        || !i["id"].is_string()
                        || !strings(&i["properties"])
                    {
                        return Err(format!("upsert: bad input {i}"));
                    }
                }
            }
            "/events/v3/send" => {
                let name = body["eventName"].as_str().unwrap_or("");
                if !name.starts_with("pe1234567_") || !strings(&body["properties"]) {
                    return Err(format!("send: bad event {body}"));
                }
                let at = body["occurredAt"].as_str().unwrap_or("");
                if OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .is_err()
                {
                    return Err("send: occurredAt is not a date-time".into());
                }
            }
            "/crm/v3/objects/contacts/gdpr-delete" => {
                if !body["objectId"].is_string() || body["idProperty"] != "kiosk_card_token" {
                    return Err(format!("gdpr-delete: bad body {body}"));
                }
            }
            other => return Err(format!("unknown path {other}")),
        }
        Ok(())
    };
    let handler = move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
        let st = st.clone();
        async move {
            use axum::response::IntoResponse;
            let path = uri.path().to_owned();
            let mut s = st.lock().unwrap();
            s.requests += 1;
            if s.requests == 1 {
                s.throttled += 1;
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    "{}".to_owned(),
                )
                    .into_response();
            }
            let body: Value = match serde_json::from_str(&body) {
                Ok(b) => b,
                Err(_) => {
                    s.refused.push(format!("{path}: not JSON"));
                    return (StatusCode::BAD_REQUEST, "{}").into_response();
                }
            };
            if let Err(e) = check(&headers, &path, &body) {
                s.refused.push(e);
                return (StatusCode::BAD_REQUEST, "{}").into_response();
            }
            match path.as_str() {
                "/crm/v3/objects/contacts/batch/upsert" => {
                    let mut results = Vec::new();
                    for i in body["inputs"].as_array().unwrap() {
                        let token = i["id"].as_str().unwrap().to_owned();
                        let props = i["properties"].as_object().unwrap().clone();
                        let n = s.contacts.len();
                        let c = match s.contacts.iter_mut().find(|c| c.1 == token) {
                            Some(c) => c,
                            None => {
                                s.contacts.push((
                                    format!("{}", 5100 + n),
                                    token,
                                    Default::default(),
                                ));
                                s.contacts.last_mut().unwrap()
                            }
                        };
                        c.2.extend(props);
                        results.push(json!({ "id": c.0, "properties": c.2, "archived": false }));
                    }
                    (
                        StatusCode::OK,
                        axum::Json(json!({ "status": "COMPLETE", "results": results })),
                    )
                        .into_response()
                }
                "/events/v3/send" => {
                    let known = s.contacts.iter().any(|c| body["objectId"] == c.0);
                    if !known {
                        s.refused
                            .push(format!("send: unknown objectId {}", body["objectId"]));
                        return (StatusCode::BAD_REQUEST, "{}").into_response();
                    }
                    s.events.push(body);
                    StatusCode::NO_CONTENT.into_response()
                }
                _ => {
                    let token = body["objectId"].as_str().unwrap().to_owned();
                    let before = s.contacts.len();
                    s.contacts.retain(|c| c.1 != token);
                    if s.contacts.len() == before {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    s.deleted.push(token);
                    StatusCode::NO_CONTENT.into_response()
                }
            }
        }
    };
    let app = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubspot_connector_upserts_contacts_sends_events_and_gdpr_deletes() {
    let h = Harness::start(Backend::Sqlite).await;
    let k = h.kiosk.clone();
    let (base, hub) = fake_hubspot().await;
    // A bad prefix is refused with a reason.
    let resp = h
        .admin(reqwest::Method::POST, "/v1/admin/forwarding/endpoints")
        .json(
            &json!({ "kind": "hubspot", "url": base, "event_types": ["turn.issued"],
                       "token": HUBSPOT_TOKEN, "hubspot": { "event_prefix": "kiosk_" } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("event_prefix"));
    let created = subscribe(
        &h,
        json!({ "kind": "hubspot", "url": base, "token": HUBSPOT_TOKEN,
                "hubspot": { "event_prefix": "pe1234567_" },
                "event_types": ["customer.registered", "consent.changed", "turn.issued",
                                "turn.served", "customer.erased"] }),
    )
    .await;
    assert!(
        created["secret"].is_null(),
        "a connector has no secret to show"
    );
    let ana_turn = Uuid::now_v7();
    let events: Vec<_> = registration(ANA, "Ana")
        .into_iter()
        .chain(turn(ana_turn, Some(ANA)))
        .chain(turn(Uuid::now_v7(), None))
        .map(|e| h.envelope(&k, seq(), e))
        .collect();
    assert_eq!(h.post_events(&k, events).await.status(), 200);
    wait_for("the turn's events in HubSpot", || {
        hub.lock().unwrap().events.len() >= 2
    })
    .await;
    {
        let s = hub.lock().unwrap();
        assert_eq!(s.refused, Vec::<String>::new());
        assert_eq!(s.throttled, 1);
        assert_eq!(s.contacts.len(), 1, "anonymous turns make no contact");
        let (id, token, props) = &s.contacts[0];
        assert_eq!(token, ANA);
        assert_eq!(props["firstname"], "Ana");
        assert_eq!(props["email"], "ana@example.com");
        let names: Vec<&str> = s
            .events
            .iter()
            .map(|e| e["eventName"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["pe1234567_kiosk_turn_issued", "pe1234567_kiosk_turn_served"]
        );
        assert_eq!(s.events[0]["objectId"], id.as_str());
        assert_eq!(s.events[0]["properties"]["turn_id"], ana_turn.to_string());
        assert!(s.events[0]["uuid"].is_string());
    }
    let resp = h
        .admin(
            reqwest::Method::POST,
            &format!("/v1/admin/customers/{ANA}/erase"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    wait_for("the GDPR deletion", || {
        !hub.lock().unwrap().deleted.is_empty()
    })
    .await;
    let s = hub.lock().unwrap();
    assert_eq!(s.deleted, [ANA]);
    assert!(s.contacts.is_empty());
    assert_eq!(s.refused, Vec::<String>::new());
}

on_both_databases!(every_forwarded_message_reaches_the_receiver_signed_once_in_customer_order);
