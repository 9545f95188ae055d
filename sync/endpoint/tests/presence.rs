//! Who is in the store, on the dashboard, on SQLite and on a throwaway PostgreSQL, against a
//! known truth: a scripted stretch of a store's day (served visits of a VIP and an anonymous
//! customer, four customers waiting, the people counter, signage plays with their audiences,
//! an assistance request taken and one still open) sent as one signed batch, answered with the
//! exact figures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::collections::BTreeMap;

use common::{ADMIN, Backend, Harness};
use crm_endpoint::db::NewCustomer;
use crm_endpoint::db::presence::{AssistanceRecord, ContentPlays, StorePresence};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::{
    AssistanceAcknowledged, AssistanceRequested, AssistanceSource, ContentPlayed, ContentSurface,
    Envelope, Event, PeopleCounted, SegmentCount, TicketIssued, TurnServed,
};
use kiosk_protocol::wire::{BatchRequest, KioskClock, batches_path};
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// A fixed-offset zone where it is about noon now, so the scripted minutes are today.
fn noon_zone() -> (String, String) {
    let now = OffsetDateTime::now_utc();
    let offset = 12 - i8::try_from(now.hour()).unwrap();
    let zone = match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    let day = now
        .to_offset(UtcOffset::from_hms(offset, 0, 0).unwrap())
        .date()
        .to_string();
    (zone, day)
}

fn customer(token: &CardToken, segment: Option<&str>) -> NewCustomer {
    serde_json::from_value(serde_json::json!({
        "card_token": token.to_string(),
        "store_id": "north",
        "display_name": "Cliente",
        "segment": segment,
    }))
    .unwrap()
}

async fn a_scripted_stretch_of_a_day_gives_the_exact_presence(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let (zone, day) = noon_zone();
    h.db.set_store_timezone("north".into(), Some(zone))
        .await
        .unwrap();
    let tenant = &k.enrolled.tenant_key;
    let (vip, newbie) = (tenant.card_token(b"vip"), tenant.card_token(b"newbie"));
    h.db.upsert_customer(customer(&vip, Some("vip")), 0)
        .await
        .unwrap();
    h.db.upsert_customer(customer(&newbie, None), 0)
        .await
        .unwrap();
    let issued = |id: Uuid, n: u32, token: Option<&CardToken>| {
        Event::TicketIssued(TicketIssued {
            turn_id: id,
            turn: format!("A-{n:03}"),
            service: "A".into(),
            number: n,
            business_day: day.clone(),
            priority: false,
            position: n,
            estimated_wait_s: 0,
            card_token: token.cloned(),
            locale: "es".into(),
            campaign_id: None,
            out_of_sequence: false,
        })
    };
    let served = |id: Uuid| {
        Event::TurnServed(TurnServed {
            staff: None,
            turn_id: id,
            counter: "1".into(),
            service_s: 30,
        })
    };
    let audience = |pairs: &[(&str, u32)]| {
        pairs
            .iter()
            .map(|(s, n)| SegmentCount {
                segment: (*s).into(),
                count: *n,
            })
            .collect()
    };
    let played = |content: &str, who: Vec<SegmentCount>| {
        Event::ContentPlayed(ContentPlayed {
            campaign_id: "spring".into(),
            content_id: content.into(),
            surface: ContentSurface::Lobby,
            duration_ms: 8_000,
            audience: who,
            card_token: None,
        })
    };
    let (r1, r2) = (Uuid::now_v7(), Uuid::now_v7());
    let asked = |id: Uuid, place: &str| {
        Event::AssistanceRequested(AssistanceRequested {
            request_id: id,
            source: AssistanceSource::Kiosk,
            place: k.id.clone(),
            place_name: place.into(),
            turn_id: None,
        })
    };
    let t: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    // (kiosk monotonic ms, event): one boot, one batch, so the endpoint places each event
    // exactly that far before the batch's clock reading.
    let script: Vec<(u64, Event)> = vec![
        (1_000, issued(t[0], 1, Some(&vip))),
        (2_000, issued(t[1], 2, None)),
        (61_000, served(t[0])),
        (182_000, served(t[1])),
        (183_000, issued(t[2], 3, Some(&vip))),
        (184_000, issued(t[3], 4, Some(&newbie))),
        (185_000, issued(t[4], 5, None)),
        (186_000, issued(t[5], 6, None)),
        (
            187_000,
            Event::PeopleCounted(PeopleCounted {
                entries: 3,
                period_s: 60,
            }),
        ),
        (
            188_000,
            Event::PeopleCounted(PeopleCounted {
                entries: 4,
                period_s: 60,
            }),
        ),
        (
            189_000,
            played("x", audience(&[("vip", 1), ("anonymous", 2)])),
        ),
        (190_000, played("x", audience(&[("vip", 2)]))),
        (191_000, played("y", audience(&[("new", 1)]))),
        (192_000, asked(r1, "Entrada")),
        (
            237_000,
            Event::AssistanceAcknowledged(AssistanceAcknowledged {
                request_id: r1,
                counter: "2".into(),
                response_ms: 45_000,
            }),
        ),
        (238_000, asked(r2, "Cajero")),
    ];
    let boot = Uuid::now_v7();
    let last = script.last().unwrap().0;
    let envs: Vec<Envelope> = script
        .into_iter()
        .enumerate()
        .map(|(i, (mono, event))| Envelope {
            id: Uuid::now_v7(),
            kiosk_id: k.id.clone(),
            seq: i as u64 + 1,
            boot_id: boot,
            wall_time: OffsetDateTime::now_utc(),
            mono_ms: mono,
            schema_version: 1,
            event,
        })
        .collect();
    let batch = BatchRequest::new(&k.id, KioskClock::now(boot, last), envs).unwrap();
    let resp = h
        .signed(
            &k,
            reqwest::Method::POST,
            &batches_path(&k.id),
            serde_json::to_vec(&batch).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let p: StorePresence = h
        .client
        .get(format!("{}/dashboard/api/stores/north/presence", h.base))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p.business_day, day);
    assert_eq!((p.waiting, p.identified, p.anonymous), (4, 2, 2));
    let weights: Vec<(&str, u64, f64)> = p
        .segments
        .iter()
        .map(|s| (s.segment.as_str(), s.waiting, s.weight))
        .collect();
    assert_eq!(
        weights,
        vec![("anonymous", 2, 0.5), ("new", 1, 0.25), ("vip", 1, 0.25)]
    );
    let dwell: Vec<(&str, u64, f64)> = p
        .dwell
        .iter()
        .map(|d| (d.segment.as_str(), d.visits, d.median_s))
        .collect();
    assert_eq!(dwell, vec![("anonymous", 1, 180.0), ("vip", 1, 60.0)]);
    assert_eq!(p.entries_today, 7);
    assert_eq!(
        p.content,
        vec![
            ContentPlays {
                campaign_id: "spring".into(),
                content_id: "x".into(),
                plays: 2,
                audience: BTreeMap::from([("anonymous".into(), 2), ("vip".into(), 3)]),
            },
            ContentPlays {
                campaign_id: "spring".into(),
                content_id: "y".into(),
                plays: 1,
                audience: BTreeMap::from([("new".into(), 1)]),
            },
        ]
    );
    assert_eq!((p.assistance_requests, p.assistance_open), (2, 1));
    assert_eq!(p.assistance_median_ms, Some(45_000));
    let recent: Vec<(String, Option<String>, Option<u64>)> = p
        .recent_requests
        .iter()
        .map(
            |AssistanceRecord {
                 place_name,
                 counter,
                 response_ms,
                 ..
             }| { (place_name.clone(), counter.clone(), *response_ms) },
        )
        .collect();
    assert_eq!(
        recent,
        vec![
            ("Cajero".into(), None, None),
            ("Entrada".into(), Some("2".into()), Some(45_000)),
        ]
    );
    // Without a login, nothing.
    let anonymous = h
        .client
        .get(format!("{}/dashboard/api/stores/north/presence", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    h.stop().await;
}

on_both_databases!(a_scripted_stretch_of_a_day_gives_the_exact_presence);
