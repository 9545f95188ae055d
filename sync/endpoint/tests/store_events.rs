//! The events of "who is in the store" (issue 19): `content_played` from lobby displays and
//! browse points and `people_counted` from the presence input are ingested and stored like every
//! event, on SQLite and PostgreSQL, and a malformed one is refused with its reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{Backend, Harness};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::{ContentPlayed, ContentSurface, Event, PeopleCounted, SegmentCount};
use kiosk_protocol::wire::{BatchResponse, EventStatus, KioskClock, batches_path};
use reqwest::Method;

on_both_databases!(content_plays_and_people_counts_are_stored_like_every_event);

async fn content_plays_and_people_counts_are_stored_like_every_event(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let lobby = Event::ContentPlayed(ContentPlayed {
        campaign_id: "demo-vip-coffee".into(),
        content_id: "coffee-1".into(),
        surface: ContentSurface::Lobby,
        duration_ms: 9_500,
        audience: vec![
            SegmentCount {
                segment: "vip".into(),
                count: 2,
            },
            SegmentCount {
                segment: "anonymous".into(),
                count: 1,
            },
        ],
        card_token: None,
    });
    let browse = Event::ContentPlayed(ContentPlayed {
        campaign_id: "demo-vip-coffee".into(),
        content_id: "coffee-1".into(),
        surface: ContentSurface::Browse,
        duration_ms: 10_000,
        audience: vec![SegmentCount {
            segment: "vip".into(),
            count: 1,
        }],
        card_token: Some(CardToken::from_bytes([7; 16])),
    });
    let counted = Event::PeopleCounted(PeopleCounted {
        entries: 14,
        period_s: 300,
    });
    let events = vec![
        h.envelope(&k, 1, lobby),
        h.envelope(&k, 2, browse),
        h.envelope(&k, 3, counted),
    ];
    let res: BatchResponse = h.post_events(&k, events).await.json().await.unwrap();
    assert!(
        res.results
            .iter()
            .all(|r| r.status == EventStatus::Accepted),
        "{res:?}"
    );
    assert_eq!(h.event_count().await, 3);

    // A play whose audience count is not a number is refused with where it is wrong, and the
    // rest of its batch is stored.
    let good = h.envelope(
        &k,
        5,
        Event::PeopleCounted(PeopleCounted {
            entries: 1,
            period_s: 60,
        }),
    );
    let mut bad = serde_json::to_value(h.envelope(
        &k,
        4,
        Event::ContentPlayed(ContentPlayed {
            campaign_id: "c".into(),
            content_id: "i".into(),
            surface: ContentSurface::Lobby,
            duration_ms: 1,
            audience: vec![SegmentCount {
                segment: "vip".into(),
                count: 1,
            }],
            card_token: None,
        }),
    ))
    .unwrap();
    bad["payload"]["audience"][0]["count"] = "many".into();
    let batch = serde_json::json!({
        "batch_id": kiosk_protocol::wire::batch_id(&k.id, 4, 5),
        "kiosk_clock": KioskClock::now(k.boot_id, 100),
        "events": [bad, good],
    });
    let res: BatchResponse = h
        .signed(
            &k,
            Method::POST,
            &batches_path(&k.id),
            serde_json::to_vec(&batch).unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<EventStatus> = res.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [EventStatus::Rejected, EventStatus::Accepted]);
    let reason = res.results[0].reason.as_deref().unwrap();
    assert!(reason.contains("/payload/audience/0/count"), "{reason}");
    assert_eq!(h.event_count().await, 4);
    h.stop().await;
}
