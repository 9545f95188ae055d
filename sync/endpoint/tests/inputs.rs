//! Inputs the endpoint never trusts, against a real endpoint on loopback (SQLite and a throwaway
//! PostgreSQL): absurd kiosk clocks cannot take over a kiosk's skew estimate nor reach a stored
//! time, identifiers keep their character set on every route, numeric fields their bounds, and
//! every refusal is a 400 whose message names the field.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{Backend, Harness, Kiosk};
use kiosk_protocol::events::{Envelope, Event, KioskStarted, TicketIssued};
use kiosk_protocol::wire::{
    BatchRequest, BatchResponse, ErrorBody, ErrorCode, EventStatus, KioskClock, batches_path,
    feed_path_and_query,
};
use reqwest::Method;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

on_both_databases!(
    an_absurd_kiosk_clock_cannot_take_over_the_skew_estimate,
    events_with_absurd_times_are_rejected_naming_the_field_and_the_rest_stored,
);

fn started() -> Event {
    Event::KioskStarted(KioskStarted {
        version: "0.1.0".into(),
        git_commit: "abc".into(),
        hardware_profile: "simulated".into(),
        unclean_shutdown: false,
    })
}

fn ticket(number: u32) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id: Uuid::now_v7(),
        turn: format!("A-{number:03}"),
        service: "A".into(),
        number,
        business_day: "2026-11-23".into(),
        priority: false,
        position: 0,
        estimated_wait_s: 60,
        card_token: None,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

/// Posts `events` of `k` with `clock` as the batch's clock reading.
async fn post(h: &Harness, k: &Kiosk, clock: KioskClock, events: Vec<Envelope>) -> BatchResponse {
    let batch = BatchRequest::new(&k.id, clock, events).unwrap();
    let r = h
        .signed(
            k,
            Method::POST,
            &batches_path(&k.id),
            serde_json::to_vec(&batch).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// The kiosk's skew as the endpoint keeps it (and the dashboard shows it).
async fn skew_ms(h: &Harness, k: &Kiosk) -> i64 {
    let stats = h.db.stats("north".into()).await.unwrap();
    stats
        .kiosks
        .iter()
        .find(|x| x.kiosk_id == k.id)
        .unwrap()
        .skew_ms
        .unwrap()
}

/// Tickets the dashboard counts in the last day.
async fn tickets_today(h: &Harness) -> u64 {
    let now = crm_endpoint::ingest::unix_ms(OffsetDateTime::now_utc());
    let q = crm_endpoint::db::DashboardQuery::new("north", now - 24 * 3_600_000, now + 60_000);
    h.db.dashboard(q).await.unwrap().tickets.total
}

/// The case: one batch says the kiosk's clock reads 9999-12-31T23:59:59Z. Its skew
/// sample of about -251,600,000,000,000 ms used to become the estimate for 10 minutes (even for
/// a new boot), placing correct events thousands of years off.
async fn an_absurd_kiosk_clock_cannot_take_over_the_skew_estimate(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let mut seq = 0;
    let mut next = |event: Event| {
        seq += 1;
        h.envelope(&k, seq, event)
    };
    let good = |mono| KioskClock::now(k.boot_id, mono);
    post(&h, &k, good(1_000), vec![next(started())]).await;
    assert!(skew_ms(&h, &k).await.abs() < 60_000);

    let mut absurd = good(2_000);
    absurd.wall_time = datetime!(9999-12-31 23:59:59 UTC);
    let r = post(&h, &k, absurd, vec![next(ticket(1))]).await;
    assert_eq!(r.results[0].status, EventStatus::Accepted);
    assert!(
        skew_ms(&h, &k).await.abs() < 60_000,
        "the absurd reading became the skew estimate"
    );
    // Its event was placed from the receive time, not from the year 9999.
    assert_eq!(tickets_today(&h).await, 1);

    post(&h, &k, good(3_000), vec![next(ticket(2))]).await;
    assert!(skew_ms(&h, &k).await.abs() < 60_000);
    assert_eq!(tickets_today(&h).await, 2);

    // A new boot of the same kiosk: a correct clock, a correct estimate.
    let rebooted = Kiosk {
        boot_id: Uuid::now_v7(),
        ..k.clone()
    };
    let mut e = h.envelope(&rebooted, 10, ticket(3));
    e.mono_ms = 500;
    post(
        &h,
        &rebooted,
        KioskClock::now(rebooted.boot_id, 600),
        vec![e],
    )
    .await;
    assert!(skew_ms(&h, &rebooted).await.abs() < 60_000);
    assert_eq!(tickets_today(&h).await, 3);

    // The dashboard shows no absurd clock warning for the kiosk.
    let now = crm_endpoint::ingest::unix_ms(OffsetDateTime::now_utc());
    let d =
        h.db.dashboard(crm_endpoint::db::DashboardQuery::new(
            "north",
            now - 3_600_000,
            now,
        ))
        .await
        .unwrap();
    let kiosk = d.kiosks.iter().find(|x| x.kiosk_id == k.id).unwrap();
    assert!(
        !kiosk.problems.iter().any(|p| p.contains("clock")),
        "{:?}",
        kiosk.problems
    );
    h.stop().await;
}

async fn events_with_absurd_times_are_rejected_naming_the_field_and_the_rest_stored(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let mut far = h.envelope(&k, 1, ticket(1));
    far.wall_time = datetime!(9999-12-31 23:59:59 UTC);
    let mut never_set = h.envelope(&k, 2, ticket(2));
    never_set.wall_time = datetime!(1970-01-01 00:00:05 UTC);
    let fine = h.envelope(&k, 3, ticket(3));
    let mut broken_mono = serde_json::to_value(h.envelope(&k, 4, ticket(4))).unwrap();
    broken_mono["mono_ms"] = json!(u64::MAX);
    let mut batch = serde_json::to_value(
        BatchRequest::new(
            &k.id,
            KioskClock::now(k.boot_id, 100),
            vec![far, never_set, fine],
        )
        .unwrap(),
    )
    .unwrap();
    batch["events"].as_array_mut().unwrap().push(broken_mono);
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
    let r: BatchResponse = r.json().await.unwrap();
    let reasons: Vec<(EventStatus, String)> = r
        .results
        .iter()
        .map(|x| (x.status, x.reason.clone().unwrap_or_default()))
        .collect();
    assert!(
        reasons[0]
            .1
            .starts_with("wall_time: 9999-12-31T23:59:59Z is more than 7 days ahead"),
        "{reasons:?}"
    );
    assert!(
        reasons[1]
            .1
            .starts_with("wall_time: 1970-01-01T00:00:05Z is before 2020"),
        "{reasons:?}"
    );
    assert_eq!(reasons[2].0, EventStatus::Accepted);
    assert!(reasons[3].1.contains("/mono_ms"), "{reasons:?}");
    assert_eq!(h.event_count().await, 1);

    // A clock reading whose monotonic part no kiosk can have: the whole batch is refused.
    let mut batch = serde_json::to_value(
        BatchRequest::new(
            &k.id,
            KioskClock::now(k.boot_id, 100),
            vec![h.envelope(&k, 5, started())],
        )
        .unwrap(),
    )
    .unwrap();
    batch["kiosk_clock"]["mono_ms"] = json!(u64::MAX);
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
    let (status, body) = refusal(r).await;
    assert_eq!(status, 400);
    assert!(
        body.message.contains("kiosk_clock.mono_ms"),
        "{}",
        body.message
    );
    assert_eq!(h.event_count().await, 1);
    h.stop().await;
}

async fn refusal(r: reqwest::Response) -> (u16, ErrorBody) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, body)
}

/// Sends an admin request and expects a 400 naming `field`.
async fn refused(
    h: &Harness,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    field: &str,
) {
    let mut req = h.admin(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let (status, e) = refusal(req.send().await.unwrap()).await;
    assert_eq!(
        (status, e.error),
        (400, ErrorCode::Malformed),
        "{path}: {}",
        e.message
    );
    assert!(
        e.message.contains(field),
        "{path}: {field} not named in {:?}",
        e.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_and_bounds_are_enforced_on_every_route_naming_the_field() {
    let h = Harness::start(Backend::Sqlite).await;
    let stores = "/v1/admin/stores";
    let megabyte = "a".repeat(1 << 20);
    for id in ["", "North", "a/b", "a\nb", "caf\u{e9}", "-a", &megabyte] {
        refused(
            &h,
            Method::POST,
            stores,
            Some(json!({ "id": id, "name": "X" })),
            "body.id",
        )
        .await;
    }
    refused(
        &h,
        Method::POST,
        stores,
        Some(json!({ "id": "west", "name": "" })),
        "body.name",
    )
    .await;
    refused(
        &h,
        Method::POST,
        stores,
        Some(json!({ "id": "west", "name": "W", "timezone": null })),
        "body.timezone",
    )
    .await;
    refused(
        &h,
        Method::POST,
        stores,
        Some(json!({ "id": "west", "name": "W", "timezone": "Mars/Base" })),
        "body.timezone",
    )
    .await;
    let listed: Vec<String> =
        h.db.list_stores()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
    assert_eq!(listed, ["north", "south"], "a refused store was stored");

    let codes = "/v1/admin/enroll-codes";
    for ttl in [0, 30 * 24 * 3600 + 1, u64::MAX] {
        refused(
            &h,
            Method::POST,
            codes,
            Some(json!({ "store_id": "north", "ttl_s": ttl })),
            "ttl_s",
        )
        .await;
    }
    refused(
        &h,
        Method::POST,
        codes,
        Some(json!({ "store_id": "../north" })),
        "body.store_id",
    )
    .await;
    let r = h
        .admin(Method::POST, codes)
        .json(&json!({ "store_id": "nowhere", "ttl_s": 60 }))
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(r).await.0, 404);
    let r = h
        .admin(Method::POST, codes)
        .json(&json!({ "store_id": "north", "ttl_s": 30 * 24 * 3600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let token = "ab".repeat(16);
    let customer = json!({ "card_token": token, "store_id": "north", "display_name": "Ana" });
    for (field, value) in [
        ("visits", json!(-1)),
        ("visits", json!(1_000_001)),
        ("display_name", json!("")),
        ("locale", json!("xx")),
        ("email", json!("not an email")),
        ("phone", json!("call me")),
        ("consents", json!(["everything"])),
        ("segment", json!("VIP!")),
        ("store_id", json!("")),
    ] {
        let mut c = customer.clone();
        c[field] = value;
        refused(
            &h,
            Method::POST,
            "/v1/admin/customers",
            Some(c),
            &format!("body.{field}"),
        )
        .await;
    }
    refused(
        &h,
        Method::PUT,
        &format!("/v1/admin/customers/{token}/segment"),
        Some(json!({ "segment": "a b" })),
        "body.segment",
    )
    .await;
    refused(
        &h,
        Method::GET,
        "/v1/admin/customers/ABC",
        None,
        "card token",
    )
    .await;

    let mut campaign = json!({ "id": "spring", "name": "Spring", "starts_on": "2026-03-01", "ends_on": "2026-04-01",
        "screen_text": { "es": "a", "en": "a" }, "ticket_line": { "es": "a", "en": "a" } });
    campaign["id"] = json!("Spring Sale");
    refused(
        &h,
        Method::POST,
        "/v1/admin/campaigns",
        Some(campaign.clone()),
        "id:",
    )
    .await;
    campaign["id"] = json!("spring");
    campaign["stores"] = json!(["north", "so uth"]);
    refused(
        &h,
        Method::POST,
        "/v1/admin/campaigns",
        Some(campaign.clone()),
        "stores[1]",
    )
    .await;

    refused(&h, Method::GET, "/v1/stats?store=%0A", None, "store").await;
    refused(&h, Method::GET, "/v1/admin/audit?limit=0", None, "limit").await;
    refused(
        &h,
        Method::GET,
        "/v1/admin/audit?since_ms=-1",
        None,
        "since_ms",
    )
    .await;
    refused(
        &h,
        Method::GET,
        "/dashboard/api/stores/a%20b",
        None,
        "store",
    )
    .await;
    refused(
        &h,
        Method::GET,
        "/dashboard/api/stores/north?kiosk=K%2F1",
        None,
        "kiosk",
    )
    .await;
    refused(
        &h,
        Method::GET,
        "/dashboard/api/stores/north/queue?calls=100000",
        None,
        "calls",
    )
    .await;

    // The kiosk's feed refuses a limit out of range instead of clamping it.
    let k = h.kiosk.clone();
    for limit in [0, 1001] {
        let path = feed_path_and_query(&k.id, 0, limit);
        let r = h
            .signed(&k, Method::GET, &path, Vec::new())
            .send()
            .await
            .unwrap();
        let (status, e) = refusal(r).await;
        assert_eq!(status, 400);
        assert!(e.message.starts_with("limit: "), "{}", e.message);
    }
    let path = feed_path_and_query(&k.id, 0, 1000);
    assert_eq!(
        h.signed(&k, Method::GET, &path, Vec::new())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Enrollment names the field too.
    let r = h
        .client
        .post(format!("{}/v1/enroll", h.base))
        .json(&json!({ "code": "XXXX", "hardware_profile": "Pi 4\n", "firmware_version": "0.1.0" }))
        .send()
        .await
        .unwrap();
    let (status, e) = refusal(r).await;
    assert_eq!(status, 400);
    assert!(e.message.contains("hardware_profile"), "{}", e.message);
    h.stop().await;
}

/// The router serves exactly the documented operations: each documented (method, path) is
/// routed (never the JSON "no such route" fallback nor 405), and every other method on a
/// documented path is 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_serves_exactly_the_documented_operations() {
    let h = Harness::start(Backend::Sqlite).await;
    let doc: serde_json::Value = h
        .client
        .get(format!("{}/openapi.json", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/dashboard/events" {
            // A stream that does not end: routed, as the schemathesis contract test shows.
            continue;
        }
        let concrete = path
            .replace("{kiosk_id}", &h.kiosk.id)
            .replace("{card_token}", &"ab".repeat(16))
            .replace("{store}", "north");
        for m in &methods {
            let documented = item.get(m.as_str().to_ascii_lowercase()).is_some();
            let r = h.admin(m.clone(), &concrete).send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            if documented {
                let fallback = status == 404 && body.contains("no such route; see /openapi.json");
                assert!(
                    status != 405 && !fallback,
                    "{m} {path} is documented but not routed: {status}"
                );
            } else {
                assert_eq!(status, 405, "{m} {path} is served but not documented");
            }
        }
    }
    h.stop().await;
}
