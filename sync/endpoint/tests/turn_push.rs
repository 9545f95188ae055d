//! Web Push from the turn page, on SQLite and on a throwaway PostgreSQL, through a local push
//! service that checks what a real one checks: the VAPID JWT (ES256 over the audience, expiry
//! and subject claims, RFC 8292) against the key in the `Authorization` header, which must be
//! the key the page gave the browser; and a payload that decrypts (aes128gcm, RFC 8291) with the
//! subscription's private key. The browser's side (its key pair and auth secret) is the test's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, Harness, Kiosk};
use crm_endpoint::db::phone::{PushKeys, PushSubscription, PushTarget};
use crm_endpoint::phone::turn_key;
use crm_endpoint::push::Message;
use kiosk_drivers::scanner::code::{TurnTicket, sign_turn};
use kiosk_protocol::events::{Event, TicketIssued, TurnCalled};
use p256::ecdsa::signature::Verifier as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use reqwest::StatusCode;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

/// What the push service received, checked.
#[derive(Debug)]
struct Delivered {
    vapid_key: String,
    message: Message,
}

/// A push service on loopback: verifies each request's VAPID signature and decrypts it.
async fn push_service(
    browser_secret: p256::SecretKey,
    auth: [u8; 16],
) -> (String, mpsc::UnboundedReceiver<Result<Delivered, String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let aud = origin.clone();
    let app = axum::Router::new().route(
        "/push/{id}",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (tx, aud, secret) = (tx.clone(), aud.clone(), browser_secret.clone());
            async move {
                let checked = check(&headers, &body, &aud, &secret, &auth);
                let status = if checked.is_ok() { 201 } else { 400 };
                tx.send(checked).unwrap();
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (origin, rx)
}

fn check(
    headers: &HeaderMap,
    body: &[u8],
    aud: &str,
    secret: &p256::SecretKey,
    auth: &[u8; 16],
) -> Result<Delivered, String> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if h("content-encoding") != "aes128gcm" {
        return Err(format!("content-encoding {:?}", h("content-encoding")));
    }
    if h("ttl").parse::<u64>().is_err() {
        return Err("no TTL".into());
    }
    let authz = h("authorization");
    let rest = authz.strip_prefix("vapid ").ok_or("not vapid")?;
    let (mut t, mut k) = ("", "");
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("t=") {
            t = v;
        } else if let Some(v) = part.strip_prefix("k=") {
            k = v;
        }
    }
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(
        &URL_SAFE_NO_PAD.decode(k).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("k: {e}"))?;
    let (input, sig) = t.rsplit_once('.').ok_or("jwt has no signature")?;
    let sig = p256::ecdsa::Signature::from_slice(
        &URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("signature: {e}"))?;
    key.verify(input.as_bytes(), &sig)
        .map_err(|e| format!("the VAPID signature does not verify: {e}"))?;
    let (header, claims) = input.split_once('.').ok_or("jwt has no claims")?;
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    if header["alg"] != "ES256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    if claims["aud"] != aud {
        return Err(format!("aud {} is not {aud}", claims["aud"]));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    if exp <= now || exp > now + 24 * 3600 {
        return Err(format!("exp {exp} is not within 24 h of {now}"));
    }
    let sub = claims["sub"].as_str().ok_or("no sub")?;
    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return Err(format!("sub {sub}"));
    }
    let plain = web_push_native::decrypt(
        body.to_vec(),
        secret,
        web_push_native::Auth::from_slice(auth),
    )
    .map_err(|e| format!("cannot decrypt: {e:?}"))?;
    Ok(Delivered {
        vapid_key: k.to_owned(),
        message: serde_json::from_slice(&plain).map_err(|e| e.to_string())?,
    })
}

fn issued(id: Uuid, n: u32) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id: id,
        turn: format!("A-{n:03}"),
        service: "A".into(),
        number: n,
        business_day: OffsetDateTime::now_utc().date().to_string(),
        priority: false,
        position: n,
        estimated_wait_s: 0,
        card_token: None,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

fn called(id: Uuid, n: u32) -> Event {
    Event::TurnCalled(TurnCalled {
        staff: None,
        turn_id: id,
        turn: format!("A-{n:03}"),
        counter: "3".into(),
        recall: false,
        waited_s: 60,
    })
}

async fn send(h: &Harness, k: &Kiosk, seq: &mut u64, events: Vec<Event>) {
    let envs = events
        .into_iter()
        .map(|e| {
            *seq += 1;
            h.envelope(k, *seq, e)
        })
        .collect();
    assert_eq!(h.post_events(k, envs).await.status(), 200);
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Result<Delivered, String>>) -> Delivered {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no push message within 30 s")
        .unwrap()
        .unwrap_or_else(|e| panic!("the push service refused the message: {e}"))
}

async fn a_subscribed_turn_is_pushed_near_then_called_once_each(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let mut seq = 0;
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    let mine = ids[5];
    send(
        &h,
        &k,
        &mut seq,
        (0..6).map(|i| issued(ids[i], i as u32 + 1)).collect(),
    )
    .await;
    let token = sign_turn(
        &TurnTicket {
            store_id: "north".into(),
            kiosk_id: k.id.clone(),
            business_day: OffsetDateTime::now_utc().date(),
            turn: "A-006".into(),
            turn_id: mine,
        },
        &turn_key(&k.enrolled.tenant_key).unwrap(),
    )
    .unwrap();
    // The page carries the endpoint's VAPID key for the browser to subscribe with.
    let page = h
        .client
        .get(format!("{}/t/{token}?lang=en", h.base))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    let vapid = page
        .split("data-vapid=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page has no VAPID key")
        .to_owned();
    assert!(page.contains("Notify me on this phone"));

    let browser = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let auth: [u8; 16] = rand::random();
    let (origin, mut rx) = push_service(browser.clone(), auth).await;
    let sub = PushSubscription {
        endpoint: format!("{origin}/push/browser-1"),
        expiration_time: None,
        keys: PushKeys {
            p256dh: URL_SAFE_NO_PAD.encode(browser.public_key().to_encoded_point(false).as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(auth),
        },
    };
    let bad = PushSubscription {
        keys: PushKeys {
            p256dh: URL_SAFE_NO_PAD.encode([4u8; 65]),
            ..sub.keys.clone()
        },
        ..sub.clone()
    };
    let url = format!("{}/t/{token}/push?lang=en", h.base);
    let refused = h.client.post(&url).json(&bad).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("p256dh"));
    let ok = h.client.post(&url).json(&sub).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);

    // Five ahead: nothing yet. Two called: three ahead, "near".
    send(&h, &k, &mut seq, vec![called(ids[0], 1), called(ids[1], 2)]).await;
    let near = next(&mut rx).await;
    assert_eq!(
        near.vapid_key, vapid,
        "signed with the key the page handed out"
    );
    assert_eq!(near.message.title, "Turn A-006: almost there");
    assert_eq!(
        near.message.body,
        "3 turns ahead of you. Please come to the counters."
    );
    assert_eq!(near.message.url, format!("/t/{token}?lang=en"));
    // Nearer still: no second "near". Called: "your turn".
    send(&h, &k, &mut seq, vec![called(ids[2], 3)]).await;
    send(&h, &k, &mut seq, vec![called(mine, 6)]).await;
    let call = next(&mut rx).await;
    assert_eq!(call.message.title, "It’s your turn: A-006");
    assert_eq!(call.message.body, "Counter 3");
    send(&h, &k, &mut seq, vec![called(ids[3], 4)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "each message is sent once");

    // A subscription ends with its service day.
    let yesterday = OffsetDateTime::now_utc().date().previous_day().unwrap();
    let target = PushTarget {
        turn_id: Uuid::now_v7(),
        label: "A-001".into(),
        lang: "es".into(),
        page: "/t/x".into(),
        subscription: sub.clone(),
        sent_near: false,
        sent_called: false,
    };
    h.db.subscribe_push("north".into(), yesterday.to_string(), target, 0)
        .await
        .unwrap();
    let now = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
    let (_, threshold, left) = h.db.push_subscriptions("north".into(), now).await.unwrap();
    assert_eq!(threshold, 3);
    assert!(left.is_empty(), "{left:?}");
    h.db.set_turns_ahead("north".into(), 5).await.unwrap();
    assert_eq!(
        h.db.push_subscriptions("north".into(), now)
            .await
            .unwrap()
            .1,
        5
    );
    h.stop().await;
}

on_both_databases!(a_subscribed_turn_is_pushed_near_then_called_once_each);
