//! The customer's turn page (`/t/{token}`, the ticket's QR link) on SQLite and on a throwaway
//! PostgreSQL: a turn followed over its event stream from issue to call to survey, the survey's
//! one answer per turn reaching the store's kiosks' feed, and tokens of another store, another
//! day or another key refused with a page that says so and shows nothing of any turn.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::time::Duration;

use common::{Backend, Harness, Kiosk};
use crm_endpoint::db::queue::TurnStatus;
use crm_endpoint::phone::{TurnUpdate, turn_key};
use kiosk_drivers::scanner::code::{CodeKey, TurnTicket, sign_turn};
use kiosk_protocol::events::{Event, TicketIssued, TurnCalled, TurnServed};
use kiosk_protocol::wire::{FeedItem, FeedResponse, SurveyStatus, feed_path_and_query};
use reqwest::StatusCode;
use time::OffsetDateTime;
use uuid::Uuid;

fn today() -> time::Date {
    OffsetDateTime::now_utc().date()
}

/// The link's token of a turn, signed as the kiosks sign it (key derived from the tenant key).
fn token(k: &Kiosk, store: &str, day: time::Date, label: &str, id: Uuid) -> String {
    let key = turn_key(&k.enrolled.tenant_key).unwrap();
    let t = TurnTicket {
        store_id: store.into(),
        kiosk_id: k.id.clone(),
        business_day: day,
        turn: label.into(),
        turn_id: id,
    };
    sign_turn(&t, &key).unwrap()
}

fn issued(id: Uuid, label: &str, number: u32) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id: id,
        turn: label.into(),
        service: "A".into(),
        number,
        business_day: today().to_string(),
        priority: false,
        position: number,
        estimated_wait_s: 0,
        card_token: None,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

fn called(id: Uuid, label: &str) -> Event {
    Event::TurnCalled(TurnCalled {
        staff: None,
        turn_id: id,
        turn: label.into(),
        counter: "3".into(),
        recall: false,
        waited_s: 60,
    })
}

struct Seq(u64);
impl Seq {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

async fn send(h: &Harness, k: &Kiosk, seq: &mut Seq, event: Event) {
    let env = h.envelope(k, seq.next(), event);
    let resp = h.post_events(k, vec![env]).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

async fn page(h: &Harness, token: &str, lang: &str) -> (StatusCode, String) {
    let resp = h
        .client
        .get(format!("{}/t/{token}", h.base))
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Reads the stream until a `turn` event satisfies `want`.
async fn next_turn(
    resp: &mut reqwest::Response,
    buf: &mut String,
    want: impl Fn(&TurnUpdate) -> bool,
) -> TurnUpdate {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut name = "";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n;
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if name == "turn" {
                    let u: TurnUpdate = serde_json::from_str(&data).unwrap();
                    if want(&u) {
                        return u;
                    }
                }
            }
            let chunk = resp.chunk().await.unwrap().expect("the stream ended");
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("no such turn event within 30 s")
}

async fn a_turn_is_followed_from_issue_to_call_to_one_survey_answer(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let mut seq = Seq(0);
    let (before, mine) = (Uuid::now_v7(), Uuid::now_v7());
    let t = token(&k, "north", today(), "A-002", mine);
    // Before the kiosk's events arrive: the printed turn, registered.
    let (status, html) = page(&h, &t, "es-ES,es;q=0.9").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("A-002") && html.contains("Su tique está registrado"),
        "{html}"
    );
    assert!(html.contains("lang=\"es\""));

    let mut stream = h
        .client
        .get(format!("{}/t/{t}/events?lang=en", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut buf = String::new();
    let first = next_turn(&mut stream, &mut buf, |_| true).await;
    assert_eq!(first.view.status, TurnStatus::Unknown);

    send(&h, &k, &mut seq, issued(before, "A-001", 1)).await;
    send(&h, &k, &mut seq, issued(mine, "A-002", 2)).await;
    let waiting = next_turn(&mut stream, &mut buf, |u| {
        u.view.status == TurnStatus::Waiting
    })
    .await;
    assert_eq!(waiting.view.ahead, Some(1));
    assert_eq!(waiting.view.service.as_deref(), Some("A"));
    assert!(!waiting.view.offline, "the kiosk just sent a batch");
    assert!(
        waiting.html.contains("There is 1 turn ahead of you."),
        "{}",
        waiting.html
    );

    send(&h, &k, &mut seq, called(before, "A-001")).await;
    let next = next_turn(&mut stream, &mut buf, |u| u.view.ahead == Some(0)).await;
    assert!(next.html.contains("You are next."));
    send(&h, &k, &mut seq, called(mine, "A-002")).await;
    let call = next_turn(&mut stream, &mut buf, |u| {
        u.view.status == TurnStatus::Called
    })
    .await;
    assert_eq!(call.view.counter.as_deref(), Some("3"));
    assert!(
        call.html.contains("It’s your turn: counter 3"),
        "{}",
        call.html
    );
    // Not served yet: no survey, and an answer is refused.
    let early = h
        .client
        .post(format!("{}/t/{t}/survey", h.base))
        .form(&[("score", "9"), ("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), StatusCode::CONFLICT);
    assert!(
        early
            .text()
            .await
            .unwrap()
            .contains("once you have been served")
    );

    send(
        &h,
        &k,
        &mut seq,
        Event::TurnServed(TurnServed {
            staff: None,
            turn_id: mine,
            counter: "3".into(),
            service_s: 120,
        }),
    )
    .await;
    let served = next_turn(&mut stream, &mut buf, |u| {
        u.view.status == TurnStatus::Served
    })
    .await;
    assert_eq!(served.view.survey, SurveyStatus::Open);
    assert!(served.html.contains("Would you recommend this store"));
    assert_eq!(served.html.matches("name=\"score\"").count(), 11);

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = client
        .post(format!("{}/t/{t}/survey", h.base))
        .form(&[("score", "9"), ("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()["location"], format!("/t/{t}?lang=en"));
    let thanked = next_turn(&mut stream, &mut buf, |u| {
        u.view.survey == SurveyStatus::AlreadyAnswered
    })
    .await;
    assert!(thanked.html.contains("Thank you for your answer."));
    let again = client
        .post(format!("{}/t/{t}/survey", h.base))
        .form(&[("score", "0"), ("lang", "es")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("una respuesta por turno")
    );
    let bad = client
        .post(format!("{}/t/{t}/survey", h.base))
        .form(&[("score", "11")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // The kiosks' rule and their feed agree: the turn is rated, a kiosk answer is not kept.
    assert_eq!(
        h.db.survey_status("north".into(), mine).await.unwrap(),
        SurveyStatus::AlreadyAnswered
    );
    let feed: FeedResponse = h
        .signed(
            &k,
            reqwest::Method::GET,
            &feed_path_and_query(&k.id, 0, 200),
            vec![],
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        feed.items
            .iter()
            .any(|i| matches!(i, FeedItem::TurnRated(r) if r.turn_id == mine)),
        "{:?}",
        feed.items
    );
    let stats: serde_json::Value = h
        .admin(reqwest::Method::GET, "/v1/stats?store=north")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["nps"]["responses"], 1, "{stats}");
    h.stop().await;
}

async fn tokens_of_another_store_day_or_key_are_refused(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let mut seq = Seq(0);
    let north_turn = Uuid::now_v7();
    send(&h, &k, &mut seq, issued(north_turn, "A-001", 1)).await;
    let own = token(&k, "north", today(), "A-001", north_turn);
    assert_eq!(page(&h, &own, "en").await.0, 200);

    // The same turn id under another store's name: refused, nothing of the turn shown.
    let elsewhere = token(&k, "south", today(), "A-001", north_turn);
    let (status, html) = page(&h, &elsewhere, "en").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("it may be from another store"), "{html}");
    assert!(!html.contains("Tienda Norte") && !html.contains("Tienda Sur"));
    // Yesterday's ticket of this very turn.
    let yesterday = today().previous_day().unwrap();
    let old = token(&k, "north", yesterday, "A-001", north_turn);
    let (status, html) = page(&h, &old, "en").await;
    assert_eq!(status, StatusCode::GONE);
    assert!(
        html.contains(&format!("This ticket was for {yesterday}")),
        "{html}"
    );
    assert!(!html.contains("A-001"));
    // Signed with a key that is not the tenant's.
    let forged = sign_turn(
        &TurnTicket {
            store_id: "north".into(),
            kiosk_id: k.id.clone(),
            business_day: today(),
            turn: "A-001".into(),
            turn_id: north_turn,
        },
        &CodeKey::new(vec![7u8; 32]).unwrap(),
    )
    .unwrap();
    assert_eq!(page(&h, &forged, "en").await.0, StatusCode::NOT_FOUND);
    // Not a token at all; its stream refuses too (JSON, naming the token).
    assert_eq!(page(&h, "hello", "en").await.0, StatusCode::BAD_REQUEST);
    let stream = h
        .client
        .get(format!("{}/t/{old}/events", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::GONE);
    assert!(stream.text().await.unwrap().contains("token:"));
    h.stop().await;
}

on_both_databases!(
    a_turn_is_followed_from_issue_to_call_to_one_survey_answer,
    tokens_of_another_store_day_or_key_are_refused,
);
