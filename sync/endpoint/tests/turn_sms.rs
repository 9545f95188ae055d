//! "Your turn is near" by SMS: the Twilio adapter against a local fake of Twilio's Messages API
//! that checks requests as Twilio documents them (the account's path, HTTP basic auth with the
//! account SID and auth token, form-encoded `To`/`From`/`Body`, E.164 numbers, `whatsapp:`
//! prefixes), and the endpoint telling only the registered customer who consented to turn
//! notices, once, on SQLite and on a throwaway PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use common::{Backend, Harness};
use crm_endpoint::db::NewCustomer;
use crm_endpoint::push::SmsNotices;
use crm_endpoint::sms::{Channel, SmsError, SmsSender, Twilio};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::{Event, TicketIssued, TurnCalled};
use time::OffsetDateTime;
use uuid::Uuid;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-of-the-test";

/// A message the fake accepted: (To, From, Body).
type Sent = Arc<Mutex<Vec<(String, String, String)>>>;

fn e164(n: &str) -> bool {
    let d = n.strip_prefix('+').unwrap_or("x");
    (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// Twilio's Messages API as documented: 201 with the message resource, or 401/400 with
/// Twilio's error body.
async fn fake_twilio() -> (String, Sent) {
    let sent: Sent = Arc::default();
    let log = sent.clone();
    let app = axum::Router::new().route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        axum::routing::post(
            move |Path(sid): Path<String>, headers: HeaderMap, form: Form<HashMap<String, String>>| {
                let log = log.clone();
                async move {
                    let expected = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
                    );
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                    if sid != SID || auth != Some(expected.as_str()) {
                        return (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(serde_json::json!({ "code": 20003, "message": "Authenticate", "status": 401 })),
                        )
                            .into_response();
                    }
                    let ctype = headers.get("content-type").and_then(|v| v.to_str().ok());
                    assert_eq!(ctype, Some("application/x-www-form-urlencoded"));
                    let (to, from, body) = (
                        form.get("To").cloned().unwrap_or_default(),
                        form.get("From").cloned().unwrap_or_default(),
                        form.get("Body").cloned().unwrap_or_default(),
                    );
                    let number = |a: &str| {
                        let whatsapp = a.strip_prefix("whatsapp:");
                        e164(whatsapp.unwrap_or(a))
                    };
                    let same_channel = to.starts_with("whatsapp:") == from.starts_with("whatsapp:");
                    if !number(&to) || !number(&from) || !same_channel || body.is_empty() || body.chars().count() > 1600 {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(serde_json::json!({ "code": 21211, "message": format!("Invalid 'To' Phone Number: {to}"), "status": 400 })),
                        )
                            .into_response();
                    }
                    log.lock().unwrap().push((to.clone(), from.clone(), body.clone()));
                    (
                        StatusCode::CREATED,
                        axum::Json(serde_json::json!({ "sid": "SM0123", "status": "queued", "to": to, "from": from, "body": body })),
                    )
                        .into_response()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, sent)
}

#[tokio::test]
async fn the_twilio_adapter_sends_as_twilio_documents_and_reports_refusals() {
    let (base, sent) = fake_twilio().await;
    let sms = Twilio::new(&base, SID, TOKEN, "+15550001111", Channel::Sms).unwrap();
    sms.send("+34600112233", "hola").await.unwrap();
    let wa = Twilio::new(&base, SID, TOKEN, "+15550001111", Channel::WhatsApp).unwrap();
    wa.send("+34600112233", "hello").await.unwrap();
    assert_eq!(
        *sent.lock().unwrap(),
        vec![
            ("+34600112233".into(), "+15550001111".into(), "hola".into()),
            (
                "whatsapp:+34600112233".into(),
                "whatsapp:+15550001111".into(),
                "hello".into()
            ),
        ]
    );
    let wrong = Twilio::new(&base, SID, "not-the-token", "+15550001111", Channel::Sms).unwrap();
    match wrong.send("+34600112233", "x").await {
        Err(SmsError::Refused {
            status: 401,
            message,
        }) => {
            assert!(
                message.contains("Authenticate") && message.contains("20003"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    match sms.send("+34 600", "x").await {
        Err(SmsError::Refused { status: 400, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sent.lock().unwrap().len(),
        2,
        "refused messages are not sent"
    );
}

fn customer(token: &CardToken, phone: &str, consents: &[&str]) -> NewCustomer {
    serde_json::from_value(serde_json::json!({
        "card_token": token.to_string(),
        "store_id": "north",
        "display_name": "Ana",
        "locale": "en",
        "phone": phone,
        "consents": consents,
    }))
    .unwrap()
}

fn issued(id: Uuid, n: u32, token: &CardToken) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id: id,
        turn: format!("A-{n:03}"),
        service: "A".into(),
        number: n,
        business_day: OffsetDateTime::now_utc().date().to_string(),
        priority: false,
        position: n,
        estimated_wait_s: 0,
        card_token: Some(token.clone()),
        locale: "en".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

async fn only_consenting_customers_are_told_their_turn_is_near_once(b: Backend) {
    let (base, sent) = fake_twilio().await;
    let sender = Twilio::new(&base, SID, TOKEN, "+15550001111", Channel::Sms).unwrap();
    let h = Harness::start_with_sms(
        b,
        SmsNotices {
            sender: Arc::new(sender),
            default_country: Some("+34".into()),
        },
    )
    .await;
    let k = h.kiosk.clone();
    let tenant = &k.enrolled.tenant_key;
    let (yes, no, other) = (
        tenant.card_token(b"consents"),
        tenant.card_token(b"marketing-only"),
        tenant.card_token(b"someone"),
    );
    h.db.upsert_customer(customer(&yes, "600 11 22 33", &["profile", "turn_sms"]), 0)
        .await
        .unwrap();
    h.db.upsert_customer(
        customer(&no, "+34 611 22 33 44", &["profile", "marketing_sms"]),
        0,
    )
    .await
    .unwrap();
    // Five turns ahead of both customers' turns (6 and 7).
    let ids: Vec<Uuid> = (0..7).map(|_| Uuid::now_v7()).collect();
    let mut seq = 0;
    let mut events: Vec<Event> = (0..5)
        .map(|i| issued(ids[i], i as u32 + 1, &other))
        .collect();
    events.push(issued(ids[5], 6, &yes));
    events.push(issued(ids[6], 7, &no));
    let envs = events
        .into_iter()
        .map(|e| {
            seq += 1;
            h.envelope(&k, seq, e)
        })
        .collect();
    assert_eq!(h.post_events(&k, envs).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sent.lock().unwrap().is_empty(), "five ahead is not near");
    let call = |seq: u64, i: usize| {
        let call = Event::TurnCalled(TurnCalled {
            staff: None,
            turn_id: ids[i],
            turn: format!("A-{:03}", i + 1),
            counter: "1".into(),
            recall: false,
            waited_s: 60,
        });
        h.envelope(&k, seq, call)
    };
    // Two called: three ahead of A-006, which is near.
    let calls = vec![call(seq + 1, 0), call(seq + 2, 1)];
    seq += 2;
    assert_eq!(h.post_events(&k, calls).await.status(), 200);
    tokio::time::timeout(Duration::from_secs(30), async {
        while sent.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("no SMS within 30 s");
    // Nearer still: no second message.
    assert_eq!(
        h.post_events(&k, vec![call(seq + 1, 2)]).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sent.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![(
            "+34600112233".to_owned(),
            "+15550001111".to_owned(),
            "Tienda Norte: 3 turns before your turn A-006. Please come to the counters.".to_owned()
        )],
        "only the customer who consented to turn notices, once"
    );
    h.stop().await;
}

on_both_databases!(only_consenting_customers_are_told_their_turn_is_near_once);
