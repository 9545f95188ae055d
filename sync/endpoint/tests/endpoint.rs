//! Protocol v1 against a real endpoint on loopback, on SQLite and on a throwaway PostgreSQL:
//! enrollment, idempotent ingest, validation, authentication failures, feed scoping, erasure,
//! segments, campaign conversion, clock skew and TLS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::io::Write as _;

use common::{Backend, Harness, Kiosk};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::*;
use kiosk_protocol::wire::{
    BatchResponse, ErrorBody, ErrorCode, EventStatus, FeedItem, FeedResponse, KioskClock,
    MAX_BATCH_EVENTS, ProfileLookupResponse, batches_path, feed_path_and_query,
};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

fn token(n: u8) -> CardToken {
    CardToken::from_bytes([n; 16])
}

fn started() -> Event {
    Event::KioskStarted(KioskStarted {
        version: "0.1.0".into(),
        git_commit: "abc".into(),
        hardware_profile: "simulated".into(),
        unclean_shutdown: false,
    })
}

fn registered(t: &CardToken, name: &str) -> Event {
    Event::CustomerRegistered(CustomerRegistered {
        card_token: t.clone(),
        display_name: name.into(),
        email: Some(format!("{name}@example.com")),
        phone: None,
        locale: "es".into(),
    })
}

fn consent(t: &CardToken, purpose: ConsentPurpose, given: bool) -> Event {
    let c = ConsentChange {
        card_token: t.clone(),
        purpose,
        policy_version: "2026-01".into(),
        policy_sha256: "ab".repeat(32),
    };
    if given {
        Event::ConsentGiven(c)
    } else {
        Event::ConsentWithdrawn(c)
    }
}

fn ticket(t: Option<&CardToken>, number: u32) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id: Uuid::now_v7(),
        turn: format!("A-{number:03}"),
        service: "A".into(),
        number,
        business_day: "2026-11-23".into(),
        priority: false,
        position: 0,
        estimated_wait_s: 60,
        card_token: t.cloned(),
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

async fn error_of(resp: reqwest::Response) -> (u16, ErrorCode) {
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.unwrap();
    (status, body.error)
}

async fn feed(h: &Harness, kiosk: &common::Kiosk, cursor: u64) -> FeedResponse {
    let resp = h
        .signed(
            kiosk,
            Method::GET,
            &feed_path_and_query(&kiosk.id, cursor, 100),
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn whole_feed(h: &Harness, kiosk: &common::Kiosk) -> Vec<FeedItem> {
    feed_from(h, kiosk, 0).await.0
}

on_both_databases!(
    enrollment_code_works_once,
    expired_enrollment_code_is_refused,
    wrong_codes_are_refused_and_then_rate_limited,
    a_concurrent_burst_of_wrong_codes_gets_no_more_tries_than_the_limit,
    wrong_admin_tokens_are_throttled_per_address_on_every_admin_route,
    replayed_batch_changes_nothing_and_reports_duplicates,
    invalid_event_is_rejected_with_reason_and_the_rest_accepted,
    unsigned_and_badly_signed_requests_are_refused_and_change_nothing,
    stale_timestamp_is_refused,
    identical_signed_request_is_refused_as_replay,
    kiosk_cannot_post_as_another_kiosk,
    malformed_json_is_refused,
    oversized_batches_are_refused,
    gzip_batch_signed_over_compressed_bytes_is_accepted,
    feed_carries_only_the_kiosks_store,
    a_campaign_for_a_region_reaches_its_stores_and_follows_a_store_placed_there,
    a_store_no_longer_targeted_gets_the_campaign_withdrawn_and_one_targeted_again_gets_it_back,
    kiosks_of_feed_version_2_get_campaigns_without_pictures_and_coupon_rules,
    a_store_config_is_checked_versioned_and_sent_only_to_its_stores_kiosks_of_feed_v2,
    live_lookup_finds_a_customer_of_another_store_and_links_them,
    erasure_reaches_the_feed_and_removes_the_profile,
    erasing_a_token_not_seen_yet_is_remembered_for_its_late_registration,
    reads_of_personal_data_erasures_and_failed_admin_logins_are_in_the_audit_log,
    visits_make_segments_and_admins_can_override_them,
    conversion_is_counted_per_variant,
    clock_skew_is_estimated_per_kiosk,
    tls_round_trip_enrolls_and_ingests,
);

async fn enrollment_code_works_once(b: Backend) {
    let h = Harness::start(b).await;
    let code = h.code("south").await;
    let first = h.enroll_with(&code).await;
    assert_eq!(first.status(), 200);
    let enrolled: kiosk_protocol::wire::EnrollResponse = first.json().await.unwrap();
    assert_eq!(enrolled.store_id, "south");
    assert_eq!(enrolled.store_name, "Tienda Sur");
    assert_eq!(
        enrolled.tenant_key, h.kiosk.enrolled.tenant_key,
        "one tenant key for all stores"
    );
    assert_ne!(enrolled.device_secret, h.kiosk.secret);
    assert_eq!(
        error_of(h.enroll_with(&code).await).await,
        (401, ErrorCode::InvalidCode)
    );
    h.stop().await;
}

async fn a_concurrent_burst_of_wrong_codes_gets_no_more_tries_than_the_limit(b: Backend) {
    let h = Harness::start(b).await;
    // 40 guesses at once: checked before the awaits, they all passed the limit before.
    let answers = futures::future::join_all((0..40).map(|_| h.enroll_with("AAAA-BBBB-CCCC"))).await;
    let tried = answers.iter().filter(|r| r.status() == 401).count();
    let limited = answers.iter().filter(|r| r.status() == 429).count();
    assert_eq!(
        tried,
        crm_endpoint::api::ENROLL_ATTEMPTS as usize,
        "{limited} limited"
    );
    assert_eq!(tried + limited, 40);
    h.stop().await;
}

async fn wrong_admin_tokens_are_throttled_per_address_on_every_admin_route(b: Backend) {
    let h = Harness::start(b).await;
    // Guessing across the admin API, the statistics and the dashboard's API: one budget.
    let routes = [
        "/v1/admin/campaigns",
        "/v1/stats?store=north",
        "/dashboard/api/stores",
    ];
    for i in 0..crm_endpoint::http::ADMIN_ATTEMPTS {
        let r = h
            .client
            .get(format!("{}{}", h.base, routes[i as usize % routes.len()]))
            .header("x-admin-token", format!("guess-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "guess {i}");
    }
    for route in routes {
        let blocked = h.admin(reqwest::Method::GET, route).send().await.unwrap();
        assert_eq!(blocked.status(), 429, "{route}: even the right token waits");
        assert!(blocked.headers().contains_key("retry-after"), "{route}");
    }
    h.stop().await;
}

async fn expired_enrollment_code_is_refused(b: Backend) {
    let h = Harness::start(b).await;
    let (code, _) = crm_endpoint::api::issue_enroll_code(&h.db, "north", std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        error_of(h.enroll_with(&code).await).await,
        (401, ErrorCode::InvalidCode)
    );
    h.stop().await;
}

async fn wrong_codes_are_refused_and_then_rate_limited(b: Backend) {
    let h = Harness::start(b).await;
    for _ in 0..crm_endpoint::api::ENROLL_ATTEMPTS {
        assert_eq!(
            error_of(h.enroll_with("AAAA-BBBB-CCCC").await).await,
            (401, ErrorCode::InvalidCode)
        );
    }
    let good = h.code("north").await;
    let blocked = h.enroll_with(&good).await;
    assert!(blocked.headers().contains_key("retry-after"));
    assert_eq!(error_of(blocked).await, (429, ErrorCode::RateLimited));
    h.stop().await;
}

async fn replayed_batch_changes_nothing_and_reports_duplicates(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let events: Vec<Envelope> = (1..=20)
        .map(|seq| {
            h.envelope(
                &k,
                seq,
                if seq == 1 {
                    started()
                } else {
                    ticket(None, seq as u32)
                },
            )
        })
        .collect();
    let body = h.batch_body(&k, events.clone());
    let first: BatchResponse = h
        .signed(&k, Method::POST, &batches_path(&k.id), body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        first
            .results
            .iter()
            .all(|r| r.status == EventStatus::Accepted)
    );
    assert_eq!(
        first.results.iter().map(|r| r.id).collect::<Vec<_>>(),
        events.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let stats_before = h.db.stats("north".into()).await.unwrap();
    // The same batch again (as after a lost answer), signed anew a second later.
    let later = time::OffsetDateTime::now_utc().unix_timestamp() + 1;
    let again: BatchResponse = h
        .signed_at(&k, Method::POST, &batches_path(&k.id), body, later)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again.batch_id, first.batch_id);
    assert!(
        again
            .results
            .iter()
            .all(|r| r.status == EventStatus::Duplicate)
    );
    assert_eq!(h.event_count().await, 20);
    let stats_after = h.db.stats("north".into()).await.unwrap();
    assert_eq!(stats_after.tickets_issued, stats_before.tickets_issued);
    assert_eq!(stats_after.events, 20);

    // A batch mixing a stored event, a new one and the new one repeated: the store inserts the
    // batch in one statement and still answers per event, in order.
    let fresh = h.envelope(&k, 21, ticket(None, 21));
    let mixed = h.batch_body(&k, vec![events[3].clone(), fresh.clone(), fresh.clone()]);
    let answer: BatchResponse = h
        .signed(&k, Method::POST, &batches_path(&k.id), mixed)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer
            .results
            .iter()
            .map(|r| (r.id, r.status))
            .collect::<Vec<_>>(),
        [
            (events[3].id, EventStatus::Duplicate),
            (fresh.id, EventStatus::Accepted),
            (fresh.id, EventStatus::Duplicate),
        ]
    );
    assert_eq!(h.event_count().await, 21);
    assert_eq!(
        h.db.stats("north".into()).await.unwrap().tickets_issued,
        stats_after.tickets_issued + 1
    );
    h.stop().await;
}

async fn invalid_event_is_rejected_with_reason_and_the_rest_accepted(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let good1 = h.envelope(&k, 1, started());
    let good2 = h.envelope(&k, 3, ticket(None, 1));
    let mut bad = serde_json::to_value(h.envelope(&k, 2, ticket(None, 2))).unwrap();
    bad["payload"]["number"] = "two".into();
    let foreign = h.envelope(
        &common::Kiosk {
            id: "k-other".into(),
            ..k.clone()
        },
        4,
        started(),
    );
    let batch = serde_json::json!({
        "batch_id": kiosk_protocol::wire::batch_id(&k.id, 1, 4),
        "kiosk_clock": KioskClock::now(k.boot_id, 100),
        "events": [good1, bad, good2, foreign],
    });
    let resp: BatchResponse = h
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
    let statuses: Vec<EventStatus> = resp.results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            EventStatus::Accepted,
            EventStatus::Rejected,
            EventStatus::Accepted,
            EventStatus::Rejected
        ]
    );
    assert_eq!(resp.results[1].seq, 2);
    assert!(
        resp.results[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("/payload/number"),
        "{:?}",
        resp.results[1].reason
    );
    assert!(
        resp.results[3]
            .reason
            .as_deref()
            .unwrap()
            .contains("k-other")
    );
    assert_eq!(h.event_count().await, 2);
    h.stop().await;
}

async fn unsigned_and_badly_signed_requests_are_refused_and_change_nothing(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let body = h.batch_body(&k, vec![h.envelope(&k, 1, started())]);
    let unsigned = h
        .client
        .post(format!("{}{}", h.base, batches_path(&k.id)))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(unsigned).await, (401, ErrorCode::Unauthenticated));
    let wrong_key = common::Kiosk {
        secret: kiosk_protocol::wire::Key32::from_bytes([9; 32]),
        ..k.clone()
    };
    let forged = h
        .signed(&wrong_key, Method::POST, &batches_path(&k.id), body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(forged).await, (401, ErrorCode::BadSignature));
    // Signed for one body, sent with another.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = kiosk_protocol::auth::sign_request(
        &k.id,
        &k.secret,
        "POST",
        &batches_path(&k.id),
        b"{}",
        now,
    );
    let mut req = h
        .client
        .post(format!("{}{}", h.base, batches_path(&k.id)))
        .body(body);
    for (name, v) in sig.pairs() {
        req = req.header(name, v);
    }
    assert_eq!(
        error_of(req.send().await.unwrap()).await,
        (401, ErrorCode::BadSignature)
    );
    let unknown = common::Kiosk {
        id: "k-nobody".into(),
        ..k.clone()
    };
    let resp = h
        .signed(
            &unknown,
            Method::GET,
            &feed_path_and_query("k-nobody", 0, 10),
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await, (401, ErrorCode::BadSignature));
    assert_eq!(h.event_count().await, 0);
    h.stop().await;
}

async fn stale_timestamp_is_refused(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let body = h.batch_body(&k, vec![h.envelope(&k, 1, started())]);
    let old = time::OffsetDateTime::now_utc().unix_timestamp() - 301 - 5;
    let resp = h
        .signed_at(&k, Method::POST, &batches_path(&k.id), body, old)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await, (401, ErrorCode::StaleTimestamp));
    assert_eq!(h.event_count().await, 0);
    h.stop().await;
}

async fn identical_signed_request_is_refused_as_replay(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let body = h.batch_body(&k, vec![h.envelope(&k, 1, started())]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let first = h
        .signed_at(&k, Method::POST, &batches_path(&k.id), body.clone(), now)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let replay = h
        .signed_at(&k, Method::POST, &batches_path(&k.id), body, now)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(replay).await, (409, ErrorCode::Replay));
    // Reads change nothing and may repeat.
    let path = feed_path_and_query(&k.id, 0, 10);
    for _ in 0..2 {
        let read = h
            .signed_at(&k, Method::GET, &path, vec![], now)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200);
    }
    assert_eq!(h.event_count().await, 1);
    h.stop().await;
}

async fn kiosk_cannot_post_as_another_kiosk(b: Backend) {
    let h = Harness::start(b).await;
    let a = h.kiosk.clone();
    let other = h.enroll("south").await;
    // Kiosk a signs correctly, but for kiosk b's path, with b's id in the events.
    let body = h.batch_body(&other, vec![h.envelope(&other, 1, started())]);
    let resp = h
        .signed(&a, Method::POST, &batches_path(&other.id), body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await, (403, ErrorCode::Forbidden));
    let resp = h
        .signed(
            &a,
            Method::GET,
            &feed_path_and_query(&other.id, 0, 10),
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await, (403, ErrorCode::Forbidden));
    assert_eq!(h.event_count().await, 0);
    h.stop().await;
}

async fn malformed_json_is_refused(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let resp = h
        .signed(
            &k,
            Method::POST,
            &batches_path(&k.id),
            b"{\"batch_id\": [".to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await, (400, ErrorCode::Malformed));
    let resp = h
        .signed(
            &k,
            Method::POST,
            &batches_path(&k.id),
            b"{\"events\": []}".to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await, (400, ErrorCode::Malformed));
    assert_eq!(h.event_count().await, 0);
    h.stop().await;
}

async fn oversized_batches_are_refused(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let many: Vec<Envelope> = (1..=MAX_BATCH_EVENTS as u64 + 1)
        .map(|s| h.envelope(&k, s, started()))
        .collect();
    let resp = h.post_events(&k, many).await;
    assert_eq!(error_of(resp).await, (413, ErrorCode::TooLarge));
    let mut big = h.envelope(&k, 1, started());
    if let Event::KioskStarted(s) = &mut big.event {
        s.git_commit = "x".repeat(300 * 1024);
    }
    let resp = h.post_events(&k, vec![big.clone()]).await;
    assert_eq!(error_of(resp).await, (413, ErrorCode::TooLarge));
    // Compressed it is small on the wire, but still over the limit once inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&h.batch_body(&k, vec![big])).unwrap();
    let resp = h
        .signed(&k, Method::POST, &batches_path(&k.id), gz.finish().unwrap())
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await, (413, ErrorCode::TooLarge));
    assert_eq!(h.event_count().await, 0);
    h.stop().await;
}

async fn gzip_batch_signed_over_compressed_bytes_is_accepted(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let events: Vec<Envelope> = (1..=50)
        .map(|s| h.envelope(&k, s, ticket(None, s as u32)))
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&h.batch_body(&k, events)).unwrap();
    let resp = h
        .signed(&k, Method::POST, &batches_path(&k.id), gz.finish().unwrap())
        .header("content-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp: BatchResponse = resp.json().await.unwrap();
    assert_eq!(resp.results.len(), 50);
    assert_eq!(h.event_count().await, 50);
    h.stop().await;
}

fn profiles(items: &[FeedItem]) -> Vec<(CardToken, String)> {
    items
        .iter()
        .filter_map(|i| match i {
            FeedItem::Profile(p) => Some((p.card_token.clone(), p.display_name.clone())),
            _ => None,
        })
        .collect()
}

async fn live_lookup_finds_a_customer_of_another_store_and_links_them(b: Backend) {
    let h = Harness::start(b).await;
    let north = h.kiosk.clone();
    let south = h.enroll("south").await;
    let (ana, nobody) = (token(1), token(9));
    let r = h
        .post_events(
            &north,
            vec![
                h.envelope(&north, 1, registered(&ana, "Ana")),
                h.envelope(&north, 2, consent(&ana, ConsentPurpose::Profile, true)),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(profiles(&whole_feed(&h, &south).await).is_empty());

    let lookup = |kiosk: &Kiosk, path_kiosk: &str, t: &CardToken| {
        h.signed(
            kiosk,
            Method::GET,
            &kiosk_protocol::wire::profile_path(path_kiosk, t),
            vec![],
        )
        .send()
    };
    // Ana registered at north taps her card at south: south's kiosk gets her profile at once...
    let found: ProfileLookupResponse = lookup(&south, &south.id, &ana)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = found.profile.expect("Ana is registered");
    assert_eq!(
        (p.card_token, p.display_name.as_str()),
        (ana.clone(), "Ana")
    );
    assert!(p.consent.profile);
    // ... and south's feed carries her from now on.
    assert_eq!(
        profiles(&whole_feed(&h, &south).await),
        [(ana.clone(), "Ana".to_owned())]
    );
    // Nobody with this card: null, and nothing changes.
    let none: ProfileLookupResponse = lookup(&south, &south.id, &nobody)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none.profile, None);
    // Another kiosk's path, a malformed token: refused.
    let r = lookup(&south, &north.id, &ana).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = h
        .signed(
            &south,
            Method::GET,
            &format!("/v1/kiosks/{}/profiles/not-a-token", south.id),
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Enumerating tokens runs into the per-kiosk limit.
    let mut limited = None;
    for n in 0..=crm_endpoint::api::LOOKUPS_PER_WINDOW {
        let r = lookup(&north, &north.id, &token((n % 200) as u8 + 20))
            .await
            .unwrap();
        if r.status() != 200 {
            limited = Some((n, r.status(), r.headers().contains_key("retry-after")));
            break;
        }
    }
    assert_eq!(
        limited,
        Some((
            crm_endpoint::api::LOOKUPS_PER_WINDOW,
            StatusCode::TOO_MANY_REQUESTS,
            true
        ))
    );
    h.stop().await;
}

/// Puts store `store` in `region` through the admin API.
async fn place(h: &Harness, store: &str, region: &str) {
    let r = h
        .admin(Method::PUT, &format!("/v1/admin/stores/{store}/location"))
        .json(&serde_json::json!({ "region": region }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
}

/// The campaign `id` in `feed`, if it is there.
fn campaign_in(feed: &[FeedItem], id: &str) -> Option<kiosk_protocol::wire::Campaign> {
    feed.iter().find_map(|i| match i {
        FeedItem::Campaign(c) if c.id == id => Some(c.clone()),
        _ => None,
    })
}

async fn a_campaign_for_a_region_reaches_its_stores_and_follows_a_store_placed_there(b: Backend) {
    let h = Harness::start(b).await;
    let north = h.kiosk.clone();
    let south = h.enroll("south").await;
    place(&h, "north", "ES-MD").await;
    place(&h, "south", "ES-AN").await;
    let mut campaign = crm_endpoint::demo::demo_campaigns().remove(0);
    campaign.stores = vec![];
    campaign.regions = vec!["ES-MD".into()];
    save_campaign(&h, &campaign).await;

    // Madrid's store gets it, resolved to its store and without the regions (which a kiosk
    // of before this field would refuse); Andalusia's does not.
    let sent = campaign_in(&whole_feed(&h, &north).await, &campaign.id).expect("north's feed");
    assert_eq!(sent.stores, ["north"]);
    assert!(sent.regions.is_empty());
    assert!(campaign_in(&whole_feed(&h, &south).await, &campaign.id).is_none());
    // The console keeps the campaign as written.
    let listed: serde_json::Value = h
        .admin(Method::GET, "/v1/admin/campaigns")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed.to_string().contains("\"regions\":[\"ES-MD\"]"),
        "{listed}"
    );

    // A store moved into the region gets the campaign too.
    place(&h, "south", "ES-MD").await;
    let sent = campaign_in(&whole_feed(&h, &south).await, &campaign.id).expect("south's feed");
    assert_eq!(sent.stores, ["north", "south"]);
    // A new name in the same region sends the campaign to nobody again.
    let mut cursor = 0;
    loop {
        let page = feed(&h, &south, cursor).await;
        cursor = page.next_cursor;
        if !page.more {
            break;
        }
    }
    let r = h
        .admin(Method::PUT, "/v1/admin/stores/south/location")
        .json(&serde_json::json!({ "region": "ES-MD", "name": "Tienda Sur" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let after = feed(&h, &south, cursor).await;
    assert!(
        campaign_in(&after.items, &campaign.id).is_none(),
        "{:?}",
        after.items
    );

    // A region that is not an ISO 3166-2 code is refused, naming the field.
    campaign.regions = vec!["Madrid".into()];
    let r = post_campaign(&h, &campaign).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("regions[0]"));
    h.stop().await;
}

/// What a kiosk reads from `cursor` to the end of its feed, and the cursor after it.
async fn feed_from(h: &Harness, kiosk: &common::Kiosk, mut cursor: u64) -> (Vec<FeedItem>, u64) {
    let mut items = Vec::new();
    loop {
        let page = feed(h, kiosk, cursor).await;
        items.extend(page.items);
        cursor = page.next_cursor;
        if !page.more {
            return (items, cursor);
        }
    }
}

/// A kiosk's feed from its start as JSON, asked with `version` (`&v=N`, or empty as kiosks of
/// before feed versions ask).
async fn raw_feed(h: &Harness, kiosk: &common::Kiosk, version: &str) -> serde_json::Value {
    let path = format!("/v1/kiosks/{}/feed?cursor=0&limit=100{version}", kiosk.id);
    h.signed(kiosk, Method::GET, &path, vec![])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Posts `campaign` to the admin API.
async fn post_campaign(
    h: &Harness,
    campaign: &kiosk_protocol::wire::Campaign,
) -> reqwest::Response {
    h.admin(Method::POST, "/v1/admin/campaigns")
        .json(campaign)
        .send()
        .await
        .unwrap()
}

/// Saves `campaign` through the admin API.
async fn save_campaign(h: &Harness, campaign: &kiosk_protocol::wire::Campaign) {
    let r = post_campaign(h, campaign).await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
}

/// Whether `campaign` comes active (`Some(true)`), withdrawn (`Some(false)`) or not at all in
/// what the kiosk reads after `cursor`; moves `cursor` to the end of its feed.
async fn news_of(
    h: &Harness,
    kiosk: &common::Kiosk,
    cursor: &mut u64,
    campaign: &str,
) -> Option<bool> {
    let (items, next) = feed_from(h, kiosk, *cursor).await;
    *cursor = next;
    items.iter().rev().find_map(|i| match i {
        FeedItem::Campaign(c) if c.id == campaign => Some(c.active),
        _ => None,
    })
}

async fn a_store_no_longer_targeted_gets_the_campaign_withdrawn_and_one_targeted_again_gets_it_back(
    b: Backend,
) {
    let h = Harness::start(b).await;
    let north = h.kiosk.clone();
    let south = h.enroll("south").await;
    place(&h, "north", "ES-MD").await;
    place(&h, "south", "ES-AN").await;
    let (mut n, mut s) = (0, 0);
    // Listed stores: both get it; south dropped from the list gets it withdrawn, in the same
    // save; north, still listed, gets the new definition.
    let mut listed = crm_endpoint::demo::demo_campaigns().remove(1);
    listed.stores = vec!["north".into(), "south".into()];
    save_campaign(&h, &listed).await;
    assert_eq!(news_of(&h, &north, &mut n, &listed.id).await, Some(true));
    assert_eq!(news_of(&h, &south, &mut s, &listed.id).await, Some(true));
    listed.stores = vec!["north".into()];
    listed.name = "Café VIP norte".into();
    save_campaign(&h, &listed).await;
    assert_eq!(news_of(&h, &south, &mut s, &listed.id).await, Some(false));
    let (north_items, _) = feed_from(&h, &north, 0).await;
    let at_north = campaign_in(&north_items, &listed.id).unwrap();
    assert!(at_north.active && at_north.name == "Café VIP norte");
    // Withdrawn stays withdrawn through later edits, even for a kiosk that never polled.
    listed.name = "Café VIP".into();
    save_campaign(&h, &listed).await;
    let (from_start, _) = feed_from(&h, &south, 0).await;
    let withdrawn = campaign_in(&from_start, &listed.id).unwrap();
    assert!(
        !withdrawn.active && withdrawn.content.is_empty(),
        "{withdrawn:?}"
    );
    assert_eq!(news_of(&h, &south, &mut s, &listed.id).await, Some(false));

    // Every store narrowed to one: the others get it withdrawn.
    let mut everyone = crm_endpoint::demo::demo_campaigns().remove(0);
    everyone.stores = vec![];
    save_campaign(&h, &everyone).await;
    assert_eq!(news_of(&h, &south, &mut s, &everyone.id).await, Some(true));
    everyone.stores = vec!["north".into()];
    save_campaign(&h, &everyone).await;
    assert_eq!(news_of(&h, &south, &mut s, &everyone.id).await, Some(false));
    assert_eq!(news_of(&h, &north, &mut n, &everyone.id).await, Some(true));

    // A region's campaign: north moved out of the region gets it withdrawn in the move's
    // transaction, south's feed is untouched; moved back, north gets it again.
    let mut regional = crm_endpoint::demo::demo_campaigns().remove(1);
    regional.id = "regional-coffee".into();
    regional.stores = vec![];
    regional.regions = vec!["ES-MD".into()];
    save_campaign(&h, &regional).await;
    assert_eq!(news_of(&h, &north, &mut n, &regional.id).await, Some(true));
    assert_eq!(news_of(&h, &south, &mut s, &regional.id).await, None);
    place(&h, "north", "ES-CT").await;
    assert_eq!(news_of(&h, &north, &mut n, &regional.id).await, Some(false));
    assert_eq!(news_of(&h, &south, &mut s, &regional.id).await, None);
    place(&h, "north", "ES-MD").await;
    let (items, next) = feed_from(&h, &north, n).await;
    n = next;
    let back = campaign_in(&items, &regional.id).expect("north gets it again");
    assert!(back.active && back.regions.is_empty() && back.stores == ["north"]);
    // Listed by name, the store keeps the campaign wherever it moves.
    regional.stores = vec!["north".into()];
    save_campaign(&h, &regional).await;
    assert_eq!(news_of(&h, &north, &mut n, &regional.id).await, Some(true));
    place(&h, "north", "ES-CT").await;
    assert_eq!(news_of(&h, &north, &mut n, &regional.id).await, None);
    h.stop().await;
}

/// A kiosk of before pictures and coupon rules asks for feed version 2: it gets the campaign
/// without them (its campaigns refuse unknown fields), and keeps its feed.
async fn kiosks_of_feed_version_2_get_campaigns_without_pictures_and_coupon_rules(b: Backend) {
    use base64::Engine as _;
    let h = Harness::start(b).await;
    let north = h.kiosk.clone();
    let mut campaign = crm_endpoint::demo::demo_campaigns().remove(1);
    campaign.stores = vec!["north".into()];
    campaign.image = campaign.content[0].image.clone();
    let coupon = campaign.coupon.as_mut().unwrap();
    coupon.valid_days = Some(7);
    coupon.max_per_customer = Some(2);
    save_campaign(&h, &campaign).await;
    let (items, _) = feed_from(&h, &north, 0).await;
    assert_eq!(campaign_in(&items, &campaign.id).unwrap(), campaign);
    let raw = raw_feed(&h, &north, "&v=2").await;
    let old = raw["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == campaign.id.as_str())
        .unwrap();
    assert!(old.get("image").is_none(), "{old}");
    assert!(old["coupon"].get("valid_days").is_none(), "{old}");
    assert!(old["coupon"].get("max_per_customer").is_none(), "{old}");
    assert_eq!(
        old["content"][0]["image"]["mime"], "image/png",
        "signage is version 1's"
    );
    // A picture that is not the picture it says is refused, naming the field.
    campaign.image.as_mut().unwrap().data =
        base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nnot really");
    let r = post_campaign(&h, &campaign).await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("image.data: not a image/png picture"),
        "{text}"
    );
    h.stop().await;
}

async fn feed_carries_only_the_kiosks_store(b: Backend) {
    let h = Harness::start(b).await;
    let north = h.kiosk.clone();
    let south = h.enroll("south").await;
    let (ana, bea) = (token(1), token(2));
    let r = h
        .post_events(
            &north,
            vec![
                h.envelope(&north, 1, registered(&ana, "Ana")),
                h.envelope(&north, 2, consent(&ana, ConsentPurpose::Profile, true)),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = h
        .post_events(
            &south,
            vec![
                h.envelope(&south, 1, registered(&bea, "Bea")),
                h.envelope(&south, 2, consent(&bea, ConsentPurpose::Profile, true)),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut campaign = crm_endpoint::demo::demo_campaigns().remove(0);
    campaign.stores = vec!["south".into()];
    let r = h
        .admin(Method::POST, "/v1/admin/campaigns")
        .json(&campaign)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let north_feed = whole_feed(&h, &north).await;
    let south_feed = whole_feed(&h, &south).await;
    assert_eq!(profiles(&north_feed), [(ana.clone(), "Ana".to_owned())]);
    assert_eq!(profiles(&south_feed), [(bea.clone(), "Bea".to_owned())]);
    assert!(
        !north_feed
            .iter()
            .any(|i| matches!(i, FeedItem::Campaign(_)))
    );
    assert!(
        south_feed
            .iter()
            .any(|i| matches!(i, FeedItem::Campaign(c) if c.id == campaign.id))
    );
    // Paging with a small limit reaches the same items.
    let page = h
        .signed(
            &south,
            Method::GET,
            &feed_path_and_query(&south.id, 0, 1),
            vec![],
        )
        .send()
        .await
        .unwrap()
        .json::<FeedResponse>()
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.more);
    // Ana shows up at the south store: from then on its kiosks may greet her.
    let r = h
        .post_events(&south, vec![h.envelope(&south, 3, ticket(Some(&ana), 1))])
        .await;
    assert_eq!(r.status(), 200);
    let later = feed(&h, &south, page.next_cursor).await;
    assert!(profiles(&later.items).contains(&(ana.clone(), "Ana".to_owned())));
    h.stop().await;
}

async fn erasure_reaches_the_feed_and_removes_the_profile(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let ana = token(7);
    h.post_events(
        &k,
        vec![
            h.envelope(&k, 1, registered(&ana, "Ana")),
            h.envelope(&k, 2, consent(&ana, ConsentPurpose::Profile, true)),
        ],
    )
    .await;
    assert_eq!(profiles(&whole_feed(&h, &k).await).len(), 1);
    let r = h
        .admin(Method::POST, &format!("/v1/admin/customers/{ana}/erase"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let items = whole_feed(&h, &k).await;
    assert!(
        profiles(&items).is_empty(),
        "the profile with her name left the feed"
    );
    assert!(
        items
            .iter()
            .any(|i| matches!(i, FeedItem::Erasure(e) if e.card_token == ana))
    );
    let r = h
        .admin(Method::GET, &format!("/v1/admin/customers/{ana}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A registration recorded before the erasure, still in some kiosk's outbox, arrives late:
    // stored (redacted), but no profile comes back.
    let mut late = h.envelope(&k, 3, registered(&ana, "Ana"));
    late.wall_time -= time::Duration::hours(1);
    late.boot_id = Uuid::now_v7();
    let r: BatchResponse = h.post_events(&k, vec![late]).await.json().await.unwrap();
    assert_eq!(r.results[0].status, EventStatus::Accepted);
    let cust = h.db.customer(ana.clone()).await.unwrap();
    assert!(cust.is_none_or(|c| c.display_name.is_none()));
    assert!(profiles(&whole_feed(&h, &k).await).is_empty());
    h.stop().await;
}

async fn erasing_a_token_not_seen_yet_is_remembered_for_its_late_registration(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let bea = token(8);
    // The customer asks to be erased before her registration, still in an offline kiosk's
    // outbox, ever reached the CRM.
    let r = h
        .admin(Method::POST, &format!("/v1/admin/customers/{bea}/erase"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "remembered, not 'not found'");
    let mut late = h.envelope(&k, 1, registered(&bea, "Beatriz"));
    late.wall_time -= time::Duration::hours(2);
    late.boot_id = Uuid::now_v7();
    let r: BatchResponse = h.post_events(&k, vec![late]).await.json().await.unwrap();
    assert_eq!(r.results[0].status, EventStatus::Accepted);
    let cust = h.db.customer(bea.clone()).await.unwrap();
    assert!(
        cust.is_none_or(|c| c.display_name.is_none() && c.email.is_none()),
        "stored redacted"
    );
    assert!(profiles(&whole_feed(&h, &k).await).is_empty());
    h.stop().await;
}

async fn reads_of_personal_data_erasures_and_failed_admin_logins_are_in_the_audit_log(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let t = token(11);
    h.post_events(&k, vec![h.envelope(&k, 1, registered(&t, "Dolores"))])
        .await;
    let wrong = h
        .client
        .get(format!("{}/v1/admin/campaigns", h.base))
        .header("x-admin-token", "a-wrong-guess-of-the-admin-token!!")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    for (method, path, status) in [
        (Method::GET, format!("/v1/admin/customers/{t}"), 200),
        (Method::POST, format!("/v1/admin/customers/{t}/erase"), 204),
    ] {
        let r = h.admin(method, &path).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
    }
    // Written in the background: poll until the three lines are there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log: serde_json::Value = h
            .admin(Method::GET, "/v1/admin/audit?limit=10")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if log.as_array().is_some_and(|a| a.len() >= 4) || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let lines: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let f = |k: &str| l[k].as_str().unwrap().to_owned();
            (f("action"), f("target"), f("outcome"))
        })
        .collect();
    let mut actions: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "POST /v1/admin/customers/{card_token}/erase",
            "admin_auth_failed",
            "erase_customer",
            "read_customer"
        ],
        "{log}"
    );
    // Every write is audited by the one layer over non-GET routes, with the path called.
    assert!(lines.contains(&(
        "POST /v1/admin/customers/{card_token}/erase".into(),
        format!("/v1/admin/customers/{}/erase", t.as_str()),
        "ok".into()
    )));
    assert!(lines.contains(&("read_customer".into(), t.as_str().into(), "ok".into())));
    assert!(lines.contains(&("erase_customer".into(), t.as_str().into(), "ok".into())));
    assert!(
        !log.to_string().contains("Dolores"),
        "no personal value in the log: {log}"
    );
    let bad = h
        .admin(Method::GET, "/v1/admin/audit?limit=0")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_customer_cannot_be_read_back_from_the_database_files_while_it_runs() {
    let h = Harness::start(Backend::Sqlite).await;
    let k = h.kiosk.clone();
    let t = token(9);
    let name = "Zacarias Quintanilla";
    let mut events = vec![h.envelope(&k, 1, registered(&t, name))];
    events.push(h.envelope(&k, 2, consent(&t, ConsentPurpose::Profile, true)));
    h.post_events(&k, events).await;
    // Her profile travels in the feed too: read it, so it is in the pages and the WAL.
    assert_eq!(profiles(&whole_feed(&h, &k).await).len(), 1);
    let dir = h.data_dir().unwrap().to_owned();
    let count = |needle: &str| -> usize {
        ["crm.db", "crm.db-wal"]
            .iter()
            .filter_map(|f| std::fs::read(dir.join(f)).ok())
            .map(|bytes| {
                bytes
                    .windows(needle.len())
                    .filter(|w| *w == needle.as_bytes())
                    .count()
            })
            .sum()
    };
    assert!(count(name) > 0, "the scan sees her name before the erasure");
    let r = h
        .admin(Method::POST, &format!("/v1/admin/customers/{t}/erase"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Measured before: her name 6 times and her email 5 times in crm.db-wal while running.
    assert_eq!(count(name), 0, "name left in the files");
    assert_eq!(
        count(&format!("{name}@example.com")),
        0,
        "email left in the files"
    );
    h.stop().await;
}

async fn visits_make_segments_and_admins_can_override_them(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let ana = token(3);
    let mut events = vec![
        h.envelope(&k, 1, registered(&ana, "Ana")),
        h.envelope(&k, 2, consent(&ana, ConsentPurpose::Profile, true)),
        h.envelope(&k, 3, consent(&ana, ConsentPurpose::MarketingEmail, true)),
        h.envelope(&k, 4, consent(&ana, ConsentPurpose::MarketingEmail, false)),
    ];
    for i in 0..3 {
        events.push(h.envelope(&k, 5 + i, ticket(Some(&ana), i as u32 + 1)));
    }
    h.post_events(&k, events).await;
    let c = h.db.customer(ana.clone()).await.unwrap().unwrap();
    assert_eq!((c.visits, c.segment.as_str()), (3, "regular"));
    assert_eq!(
        c.consents.len(),
        3,
        "consent history is kept, not overwritten"
    );
    let profile = |items: &[FeedItem]| {
        items.iter().rev().find_map(|i| match i {
            FeedItem::Profile(p) if p.card_token == ana => Some(p.clone()),
            _ => None,
        })
    };
    let p = profile(&whole_feed(&h, &k).await).unwrap();
    assert_eq!(p.segment, "regular");
    assert!(p.consent.profile && !p.consent.marketing_email);
    let r = h
        .admin(Method::PUT, &format!("/v1/admin/customers/{ana}/segment"))
        .json(&serde_json::json!({ "segment": "vip" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(profile(&whole_feed(&h, &k).await).unwrap().segment, "vip");
    h.stop().await;
}

async fn conversion_is_counted_per_variant(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let shown = |variant: &str, t: u8| {
        Event::CampaignShown(CampaignShown {
            campaign_id: "c1".into(),
            variant: variant.into(),
            card_token: Some(token(t)),
            segment: None,
            surface: Surface::Screen,
            visit_id: None,
        })
    };
    let events = vec![
        h.envelope(&k, 1, shown("a", 1)),
        h.envelope(&k, 2, shown("a", 2)),
        h.envelope(&k, 3, shown("b", 3)),
        h.envelope(
            &k,
            4,
            Event::CouponIssued(CouponIssued {
                coupon_code: "CAFE-1".into(),
                campaign_id: Some("c1".into()),
                variant: Some("b".into()),
                card_token: Some(token(3)),
                turn_id: None,
            }),
        ),
        h.envelope(
            &k,
            5,
            Event::CouponRedeemed(CouponRedeemed {
                coupon_code: "CAFE-1".into(),
                campaign_id: None,
                card_token: Some(token(3)),
                variant: None,
            }),
        ),
    ];
    h.post_events(&k, events).await;
    let stats: serde_json::Value = h
        .admin(Method::GET, "/v1/stats?store=north")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = stats["campaigns"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0]["variant"].as_str(),
            rows[0]["shown"].as_u64(),
            rows[0]["redeemed"].as_u64()
        ),
        (Some("a"), Some(2), Some(0))
    );
    assert_eq!(
        (
            rows[1]["variant"].as_str(),
            rows[1]["shown"].as_u64(),
            rows[1]["redeemed"].as_u64()
        ),
        (Some("b"), Some(1), Some(1))
    );
    assert_eq!(rows[1]["conversion"].as_f64(), Some(1.0));
    let denied = h
        .client
        .get(format!("{}/v1/stats?store=north", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(denied).await, (403, ErrorCode::Forbidden));
    h.stop().await;
}

async fn clock_skew_is_estimated_per_kiosk(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    // The kiosk's clock is an hour behind.
    let behind = time::Duration::hours(1);
    let mut ev = h.envelope(&k, 1, started());
    ev.wall_time -= behind;
    let mut clock = KioskClock::now(k.boot_id, ev.mono_ms + 1000);
    clock.wall_time -= behind;
    let batch = kiosk_protocol::wire::BatchRequest::new(&k.id, clock, vec![ev]).unwrap();
    let r = h
        .signed(
            &k,
            Method::POST,
            &batches_path(&k.id),
            serde_json::to_vec(&batch).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats = h.db.stats("north".into()).await.unwrap();
    let skew = stats
        .kiosks
        .iter()
        .find(|x| x.kiosk_id == k.id)
        .unwrap()
        .skew_ms
        .unwrap();
    // Transit adds to the sample; an hour dwarfs it.
    assert!((3_600_000..3_660_000).contains(&skew), "skew {skew}");
    h.stop().await;
}

async fn tls_round_trip_enrolls_and_ingests(b: Backend) {
    common::install_crypto();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let server = crm_endpoint::tls::server_config_from_pem(
        cert.cert.pem().as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap()])
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let h = Harness::start_with(b, Some((server, client))).await;
    assert!(h.base.starts_with("https://"));
    let k = h.kiosk.clone();
    let r: BatchResponse = h
        .post_events(&k, vec![h.envelope(&k, 1, started())])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r.results[0].status, EventStatus::Accepted);
    // A client that does not trust the certificate gets nowhere.
    let stranger = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                .unwrap()
                .cert
                .pem()
                .as_bytes(),
        )
        .unwrap()])
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    assert!(
        stranger
            .get(format!("{}/v1/health", h.base))
            .send()
            .await
            .is_err()
    );
    h.stop().await;
}

#[tokio::test]
async fn health_needs_no_credentials_and_openapi_is_served() {
    let h = Harness::start(Backend::Sqlite).await;
    let health: kiosk_protocol::wire::HealthResponse = h
        .client
        .get(format!("{}/v1/health", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            health.status.as_str(),
            health.protocol,
            health.store.as_str()
        ),
        ("ok", 1, "sqlite")
    );
    let doc: serde_json::Value = h
        .client
        .get(format!("{}/openapi.json", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        crm_endpoint::openapi::operations(&doc).len(),
        crm_endpoint::routes::operations().len()
    );
    let r = h
        .client
        .get(format!("{}/v1/nothing", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (404, ErrorCode::NotFound));
    h.stop().await;
}

#[tokio::test]
async fn demo_seed_makes_tokens_from_the_demo_uids_and_key() {
    common::install_crypto();
    let (db, _dir) = common::open_db(Backend::Sqlite).await;
    let seed = crm_endpoint::seed_demo(&db).await.unwrap();
    assert_eq!(seed.tenant_key, crm_endpoint::DEMO_TENANT_KEY);
    for (c, t) in crm_endpoint::DEMO_CUSTOMERS.iter().zip(&seed.tokens) {
        assert_eq!(&crm_endpoint::demo_token(c), t);
        let rec = db.customer(t.clone()).await.unwrap().unwrap();
        assert_eq!(rec.segment, c.segment);
    }
    assert_eq!(db.campaigns().await.unwrap().len(), 2);
    let again = crm_endpoint::seed_demo(&db).await.unwrap();
    assert_eq!(again.tokens, seed.tokens);
    let ana = db.customer(seed.tokens[0].clone()).await.unwrap().unwrap();
    assert_eq!(
        ana.consents.len(),
        2,
        "seeding twice does not repeat consents"
    );
}

async fn a_store_config_is_checked_versioned_and_sent_only_to_its_stores_kiosks_of_feed_v2(
    b: Backend,
) {
    let h = Harness::start(b).await;
    let north = h.kiosk.clone();
    let south = h.enroll("south").await;
    let put = |body: serde_json::Value| {
        h.admin(Method::PUT, "/v1/admin/stores/north/config")
            .json(&body)
            .send()
    };
    let bad = put(serde_json::json!({ "opening_time": "9:00" }))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("queue.opening_time"));
    let typo = put(serde_json::json!({ "countres": 2 })).await.unwrap();
    assert_eq!(typo.status(), 400);
    for (n, counters) in [(1, 2), (2, 3)] {
        let ok = put(serde_json::json!({ "counters": counters }))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let saved: serde_json::Value = ok.json().await.unwrap();
        assert_eq!(saved["version"], n);
    }
    let configs = |items: &[FeedItem]| -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| match i {
                FeedItem::StoreConfig(c) => Some(c.version),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        configs(&whole_feed(&h, &north).await),
        [2],
        "only the newest"
    );
    assert!(configs(&whole_feed(&h, &south).await).is_empty());
    // A kiosk of an earlier release asks without `v`: it never gets a kind it cannot read.
    let old = raw_feed(&h, &north, "").await;
    assert!(
        old["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] != "store_config"),
        "{old}"
    );
    let view: serde_json::Value = h
        .admin(Method::GET, "/v1/admin/stores/north/config")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["config"]["counters"], 3);
    let missing = h
        .admin(Method::PUT, "/v1/admin/stores/nowhere/config")
        .json(&serde_json::json!({ "counters": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
