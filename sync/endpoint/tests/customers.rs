//! The console's customers page over HTTP (issue 21 item 3, docs/CONSOLE.md "Customers"), on
//! SQLite and on a throwaway PostgreSQL: search by name, email, phone, card token and typed card
//! number; the profile from what the kiosks sent (turns, services, surveys, coupons, consents
//! with their kiosk); a correction; JSON and CSV exports as attachments; erasure with each
//! kiosk's progress read from its feed polls; the CSV import, all or nothing; HQ admins only,
//! every read of personal data audited.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{Backend, Harness};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::*;
use kiosk_protocol::wire::{FeedResponse, feed_path_and_query};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

const API: &str = "/dashboard/api/customers";

fn ticket(t: &CardToken, turn_id: Uuid, service: &str) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id,
        turn: format!("{service}-001"),
        service: service.into(),
        number: 1,
        business_day: "2026-11-23".into(),
        priority: false,
        position: 0,
        estimated_wait_s: 60,
        card_token: Some(t.clone()),
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

/// Ana registered at the harness's kiosk, consented, took a turn that was served and rated, got
/// a coupon and redeemed it.
async fn ana(h: &Harness) -> CardToken {
    let k = h.kiosk.clone();
    let ana = CardToken::from_bytes([7; 16]);
    let turn = Uuid::now_v7();
    let events = vec![
        Event::CustomerRegistered(CustomerRegistered {
            card_token: ana.clone(),
            display_name: "Ana Martínez".into(),
            email: Some("Ana@Example.com".into()),
            phone: Some("+34 612 345 678".into()),
            locale: "es".into(),
        }),
        Event::ConsentGiven(ConsentChange {
            card_token: ana.clone(),
            purpose: ConsentPurpose::Profile,
            policy_version: "2026-01".into(),
            policy_sha256: "ab".repeat(32),
        }),
        ticket(&ana, turn, "B"),
        Event::TurnCalled(TurnCalled {
            staff: None,
            turn_id: turn,
            turn: "B-001".into(),
            counter: "1".into(),
            recall: false,
            waited_s: 60,
        }),
        Event::TurnServed(TurnServed {
            staff: None,
            turn_id: turn,
            counter: "1".into(),
            service_s: 120,
        }),
        Event::SurveyAnswered(SurveyAnswered {
            turn_id: Some(turn),
            score: 9,
            reason: None,
            card_token: Some(ana.clone()),
        }),
        Event::CouponIssued(CouponIssued {
            coupon_code: "CPN-ANA-1".into(),
            campaign_id: Some("welcome".into()),
            variant: Some("a".into()),
            card_token: Some(ana.clone()),
            turn_id: Some(turn),
        }),
        Event::CouponRedeemed(CouponRedeemed {
            coupon_code: "CPN-ANA-1".into(),
            campaign_id: Some("welcome".into()),
            card_token: None,
            variant: Some("a".into()),
        }),
    ];
    let envelopes = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| h.envelope(&k, i as u64 + 1, e))
        .collect();
    let r = h.post_events(&k, envelopes).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    ana
}

async fn get_json(h: &Harness, path: &str) -> Value {
    let r = h.admin(Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn found(h: &Harness, q: &str) -> Vec<String> {
    let v = get_json(h, &format!("{API}?q={}", urlencode(q))).await;
    v["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["card_token"].as_str().unwrap().to_owned())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn audit_actions(h: &Harness) -> Vec<(String, String)> {
    // The audit log is written in the background: wait for it to settle.
    let mut last = Vec::new();
    for _ in 0..50 {
        let v = get_json(h, "/v1/admin/audit?limit=1000").await;
        let now: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["action"].as_str().unwrap().to_owned(),
                    l["target"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

on_both_databases!(
    an_hq_admin_finds_reads_corrects_and_exports_a_customer_and_every_read_is_audited,
    an_erasure_shows_each_kiosk_pending_until_it_polls_its_feed_past_it,
    a_csv_import_tokenizes_card_numbers_and_imports_nothing_when_a_row_is_bad,
    other_roles_get_403_from_every_customer_route_and_the_page_says_who_may_see_it,
);

async fn an_hq_admin_finds_reads_corrects_and_exports_a_customer_and_every_read_is_audited(
    b: Backend,
) {
    let h = Harness::start(b).await;
    let ana = ana(&h).await;
    let t = ana.to_string();
    // Every way of asking finds her; a stranger finds nobody.
    for q in ["martí", "ANA@example.COM", "612 345 678", "612345678", &t] {
        assert_eq!(found(&h, q).await, vec![t.clone()], "searching {q:?}");
    }
    assert!(found(&h, "nobody@example.com").await.is_empty());
    // A card number typed as the reader types it finds the card's token.
    let key = h.db.tenant_key().await.unwrap();
    let bea = key.card_token(&[0x04, 0xa1, 0xb2, 0xc3]);
    h.db.upsert_customer(
        serde_json::from_value(
            json!({ "card_token": bea, "store_id": "north", "display_name": "Bea" }),
        )
        .unwrap(),
        1,
    )
    .await
    .unwrap();
    assert_eq!(found(&h, "04:A1:B2:C3").await, [bea.to_string()]);

    let p = get_json(&h, &format!("{API}/{t}")).await;
    assert_eq!(p["customer"]["display_name"], "Ana Martínez");
    assert_eq!(p["customer"]["visits"], 1);
    assert_eq!(p["turns"][0]["label"], "B-001");
    assert!(p["turns"][0]["served_ms"].is_i64(), "{p}");
    assert_eq!(p["services"], json!([{ "service": "B", "turns": 1 }]));
    assert_eq!(p["surveys"][0]["score"], 9);
    assert_eq!(p["coupons"][0]["code"], "CPN-ANA-1");
    assert!(p["coupons"][0]["redeemed_ms"].is_i64(), "{p}");
    assert_eq!(p["consents"][0]["purpose"], "profile");
    assert_eq!(p["consents"][0]["policy_version"], "2026-01");
    assert_eq!(p["consents"][0]["kiosk_id"], h.kiosk.id.as_str());

    // Correct her email; a bad email is refused naming the field.
    let r = h
        .admin(Method::PUT, &format!("{API}/{t}"))
        .json(&json!({ "email": "ana.m@example.com", "phone": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["customer"]["email"], "ana.m@example.com");
    assert_eq!(p["customer"]["phone"], Value::Null);
    assert_eq!(p["customer"]["display_name"], "Ana Martínez");
    let r = h
        .admin(Method::PUT, &format!("{API}/{t}"))
        .json(&json!({ "email": "not an email" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("email"));

    // Exports: attachments holding everything, the events included.
    let r = h
        .admin(Method::GET, &format!("{API}/{t}/export?format=json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"customer-")
    );
    let export: Value = r.json().await.unwrap();
    assert_eq!(export["profile"]["email"], "ana.m@example.com");
    let types: Vec<&str> = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for ty in [
        "customer_registered",
        "consent_given",
        "ticket_issued",
        "survey_answered",
        "coupon_issued",
    ] {
        assert!(types.contains(&ty), "{ty} missing from {types:?}");
    }
    let r = h
        .admin(Method::GET, &format!("{API}/{t}/export?format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        r.headers()[CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .ends_with(".csv\"")
    );
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("\u{feff}section,at_utc,store_id,kiosk_id,item,value\r\n"));
    assert!(
        csv.contains("profile,,,,email,ana.m@example.com\r\n"),
        "{csv}"
    );
    assert!(csv.contains("consent,"), "{csv}");
    assert!(csv.contains(",ticket_issued,"), "{csv}");

    let audit = audit_actions(&h).await;
    for action in [
        "search_customers",
        "read_customer",
        "correct_customer",
        "export_customer",
    ] {
        assert!(
            audit.iter().any(|(a, _)| a == action),
            "{action} not audited: {audit:?}"
        );
    }
    // The audit log names card tokens and fields, never the personal data itself.
    assert!(
        !audit
            .iter()
            .any(|(_, target)| target.contains("example.com") || target.contains("Ana")),
        "{audit:?}"
    );
    h.stop().await;
}

async fn poll(h: &Harness, cursor: u64) -> FeedResponse {
    let k = h.kiosk.clone();
    let r = h
        .signed(
            &k,
            Method::GET,
            &feed_path_and_query(&k.id, cursor, 100),
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn an_erasure_shows_each_kiosk_pending_until_it_polls_its_feed_past_it(b: Backend) {
    let h = Harness::start(b).await;
    let ana = ana(&h).await;
    let south = h.enroll("south").await;
    let page = poll(&h, 0).await;
    let r = h
        .admin(Method::POST, &format!("{API}/{ana}/erase"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let st: Value = r.json().await.unwrap();
    let status_of = |st: &Value, kiosk: &str| {
        st["kiosks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kiosk_id"] == kiosk)
            .map(|k| k["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    // The north kiosk polled before the erasure; the south kiosk never polled.
    assert_eq!(status_of(&st, &h.kiosk.id), "pending");
    assert_eq!(status_of(&st, &south.id), "unknown");
    // The next poll fetches the erasure; only the one after (from the cursor the kiosk stored
    // with that page) says it was applied.
    let page = poll(&h, page.next_cursor).await;
    assert!(
        page.items.iter().any(
            |i| matches!(i, kiosk_protocol::wire::FeedItem::Erasure(e) if e.card_token == ana)
        )
    );
    let st = get_json(&h, &format!("{API}/{ana}/erasure")).await;
    assert_eq!(status_of(&st, &h.kiosk.id), "pending");
    poll(&h, page.next_cursor).await;
    let st = get_json(&h, &format!("{API}/{ana}/erasure")).await;
    assert_eq!(status_of(&st, &h.kiosk.id), "applied");
    // Her profile is gone; a token never erased has no erasure.
    let r = h
        .admin(Method::GET, &format!("{API}/{ana}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let other = CardToken::from_bytes([9; 16]);
    let r = h
        .admin(Method::GET, &format!("{API}/{other}/erasure"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    h.stop().await;
}

async fn import(h: &Harness, csv: &str) -> reqwest::Response {
    h.admin(Method::POST, &format!("{API}/import"))
        .header(CONTENT_TYPE, "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap()
}

async fn a_csv_import_tokenizes_card_numbers_and_imports_nothing_when_a_row_is_bad(b: Backend) {
    let h = Harness::start(b).await;
    let key = h.db.tenant_key().await.unwrap();
    let bad = "card_number,store_id,display_name,email,consents\n\
               04:A1:B2:C3,north,Carla,carla@example.com,profile\n\
               04:A1:B2:C4,nowhere,Dario,,\n\
               04:A1:B2:C5,north,Elena,elena-at-example,\n";
    let r = import(&h, bad).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let rows: Vec<(u64, &str)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["column"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [(3, "store_id"), (4, "email")], "{v}");
    let carla = key.card_token(&[0x04, 0xa1, 0xb2, 0xc3]);
    assert!(
        h.db.customer(carla.clone()).await.unwrap().is_none(),
        "nothing of a refused file is imported"
    );

    let good = "\u{feff}card_number,store_id,display_name,email,consents,visits\n\
                04:A1:B2:C3,north,Carla,carla@example.com,profile marketing_email,12\n\
                04A1B2C5,south,Elena,,,\n";
    let r = import(&h, good).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["imported"], 2);
    let c = h.db.customer(carla).await.unwrap().unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Carla"));
    assert_eq!(c.segment, "vip");
    assert_eq!(c.consents.len(), 2);
    let elena = key.card_token(&[0x04, 0xa1, 0xb2, 0xc5]);
    assert_eq!(
        h.db.customer(elena).await.unwrap().unwrap().stores,
        ["south"]
    );
    // Decimal numbers, as 125 kHz readers type them.
    let r = h
        .admin(Method::POST, &format!("{API}/import?format=decimal"))
        .header(CONTENT_TYPE, "text/csv")
        .body("card_number,store_id,display_name\n0012345678,north,Fran\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fran = key.card_token(&12_345_678u32.to_be_bytes());
    assert!(h.db.customer(fran).await.unwrap().is_some());
    h.stop().await;
}

async fn login(h: &Harness, user: &str, password: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .post(format!("{}/dashboard/login", h.base))
        .form(&[("user", user), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "login of {user}");
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

async fn other_roles_get_403_from_every_customer_route_and_the_page_says_who_may_see_it(
    b: Backend,
) {
    let h = Harness::start(b).await;
    let ana = ana(&h).await;
    for body in [
        json!({ "name": "hq", "role": "hq-admin", "password": "hq password 123" }),
        json!({ "name": "sur", "role": "store-manager", "store_id": "south", "password": "sur password 123" }),
        json!({ "name": "mad", "role": "regional-manager", "region": "ES-MD", "password": "mad password 123" }),
        json!({ "name": "ana", "role": "analyst", "password": "ana password 123" }),
    ] {
        let r = h
            .admin(Method::POST, "/v1/admin/accounts")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let routes = [
        (Method::GET, format!("{API}?q=ana")),
        (Method::GET, format!("{API}/{ana}")),
        (Method::PUT, format!("{API}/{ana}")),
        (Method::GET, format!("{API}/{ana}/export?format=csv")),
        (Method::GET, format!("{API}/{ana}/erasure")),
        (Method::POST, format!("{API}/{ana}/erase")),
        (Method::POST, format!("{API}/import")),
    ];
    for (user, password) in [
        ("sur", "sur password 123"),
        ("mad", "mad password 123"),
        ("ana", "ana password 123"),
    ] {
        let cookie = login(&h, user, password).await;
        for (m, path) in &routes {
            let r = h
                .client
                .request(m.clone(), format!("{}{path}", h.base))
                .header(COOKIE, &cookie)
                .json(&json!({ "email": "x@example.com" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{user} {m} {path}");
            let text = r.text().await.unwrap();
            assert!(!text.contains("Ana"), "{text}");
        }
        let r = h
            .client
            .get(format!("{}/dashboard/customers", h.base))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("HQ admins"));
    }
    // Nothing was erased by the refused calls.
    assert!(h.db.customer(ana.clone()).await.unwrap().is_some());
    let cookie = login(&h, "hq", "hq password 123").await;
    let r = h
        .client
        .get(format!("{}/dashboard/customers", h.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Import customers"));
    let r = h
        .client
        .get(format!("{}{API}/{ana}", h.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.stop().await;
}
