//! The store managers' dashboard over HTTP, on SQLite and on a throwaway PostgreSQL: login and
//! sessions, figures computed from a crafted set of events (known waits, scores, conversions,
//! device logs), store isolation, and live updates over server-sent events.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::time::Duration;

use common::{ADMIN, Backend, Harness, Kiosk};
use crm_endpoint::db::Dashboard;
use crm_endpoint::db::dashboard::{Health, StoreSummary};
use kiosk_protocol::CardToken;
use kiosk_protocol::events::{
    CampaignShown, CouponIssued, CouponRedeemed, CustomerIdentified, DeviceHealth, DeviceKind,
    DeviceLog, DeviceStatusChanged, Envelope, Event, IdentifiedBy, LogLevel, ProfileSource,
    Surface, SurveyAnswered, TicketIssued, TurnCalled, TurnServed,
};
use kiosk_protocol::wire::{BatchRequest, KioskClock, TenantKey, batches_path};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use time::OffsetDateTime;
use uuid::Uuid;

const SEC: u64 = 1000;

fn token(n: u8) -> CardToken {
    TenantKey::from_bytes([7; 32]).card_token(&[n, 1, 2, 3])
}

/// Events of one kiosk placed on its monotonic clock: within one batch their skew-corrected
/// times differ exactly as their `mono_ms` do.
struct Timeline {
    kiosk: Kiosk,
    events: Vec<Envelope>,
    seq: u64,
}

impl Timeline {
    fn new(kiosk: &Kiosk, first_seq: u64) -> Self {
        Timeline {
            kiosk: kiosk.clone(),
            events: Vec::new(),
            seq: first_seq,
        }
    }

    fn at(&mut self, mono_ms: u64, event: Event) -> &mut Self {
        self.seq += 1;
        self.events.push(Envelope {
            id: Uuid::now_v7(),
            kiosk_id: self.kiosk.id.clone(),
            seq: self.seq,
            boot_id: self.kiosk.boot_id,
            wall_time: OffsetDateTime::now_utc(),
            mono_ms,
            schema_version: 1,
            event,
        });
        self
    }

    /// Posts everything as one batch sent at the latest `mono_ms`; all accepted.
    async fn post(&mut self, h: &Harness) {
        let n = self.events.len();
        let statuses = self.post_statuses(h).await;
        assert_eq!(statuses, vec!["accepted"; n]);
    }

    /// Posts everything as one batch; each event's status.
    async fn post_statuses(&mut self, h: &Harness) -> Vec<String> {
        let mono = self.events.iter().map(|e| e.mono_ms).max().unwrap_or(0);
        let events = std::mem::take(&mut self.events);
        let n = events.len();
        let batch = BatchRequest::new(
            &self.kiosk.id,
            KioskClock::now(self.kiosk.boot_id, mono),
            events,
        )
        .unwrap();
        let body = serde_json::to_vec(&batch).unwrap();
        let resp = h
            .signed(
                &self.kiosk,
                reqwest::Method::POST,
                &batches_path(&self.kiosk.id),
                body,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let answer: serde_json::Value = resp.json().await.unwrap();
        let statuses: Vec<String> = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(statuses.len(), n, "{answer}");
        statuses
    }
}

fn issued(turn_id: Uuid, service: &str, card: Option<CardToken>) -> Event {
    Event::TicketIssued(TicketIssued {
        turn_id,
        turn: format!("{service}-001"),
        service: service.into(),
        number: 1,
        business_day: "2026-11-23".into(),
        priority: false,
        position: 0,
        estimated_wait_s: 60,
        card_token: card,
        locale: "es".into(),
        campaign_id: None,
        out_of_sequence: false,
    })
}

fn called(turn_id: Uuid, recall: bool) -> Event {
    Event::TurnCalled(TurnCalled {
        staff: None,
        turn_id,
        turn: "A-001".into(),
        counter: "1".into(),
        recall,
        waited_s: 0,
    })
}

fn served(turn_id: Uuid) -> Event {
    Event::TurnServed(TurnServed {
        staff: None,
        turn_id,
        counter: "1".into(),
        service_s: 0,
    })
}

fn shown(variant: &str) -> Event {
    Event::CampaignShown(CampaignShown {
        campaign_id: "welcome".into(),
        variant: variant.into(),
        card_token: None,
        segment: None,
        surface: Surface::Screen,
        visit_id: None,
    })
}

/// An exposure in a visit, as kiosks with visit ids record it.
fn exposure(variant: &str, visit: Uuid, surface: Surface) -> Event {
    Event::CampaignShown(CampaignShown {
        campaign_id: "welcome".into(),
        variant: variant.into(),
        card_token: None,
        segment: Some("anonymous".into()),
        surface,
        visit_id: Some(visit),
    })
}

fn coupon_issued(code: &str, variant: &str, turn_id: Uuid) -> Event {
    Event::CouponIssued(CouponIssued {
        coupon_code: code.into(),
        campaign_id: Some("welcome".into()),
        variant: Some(variant.into()),
        card_token: None,
        turn_id: Some(turn_id),
    })
}

fn coupon_redeemed(code: &str, variant: Option<&str>) -> Event {
    Event::CouponRedeemed(CouponRedeemed {
        coupon_code: code.into(),
        campaign_id: Some("welcome".into()),
        card_token: None,
        variant: variant.map(str::to_owned),
    })
}

fn answer(turn_id: Uuid, score: u8) -> Event {
    Event::SurveyAnswered(SurveyAnswered {
        turn_id: Some(turn_id),
        score,
        reason: None,
        card_token: None,
    })
}

fn survey(score: u8) -> Event {
    Event::SurveyAnswered(SurveyAnswered {
        turn_id: None,
        score,
        reason: None,
        card_token: None,
    })
}

fn printer(status: DeviceHealth, reason: Option<&str>) -> Event {
    Event::DeviceStatusChanged(DeviceStatusChanged {
        device: DeviceKind::Printer,
        status,
        reason: reason.map(str::to_owned),
    })
}

fn log(level: LogLevel, message: &str, occurrences: u32) -> Event {
    Event::DeviceLog(DeviceLog {
        level,
        target: "kiosk::devices".into(),
        message: message.into(),
        occurrences,
    })
}

/// Logs in through the form; the session cookie (`name=value`).
async fn login(h: &Harness) -> String {
    let resp = no_redirects()
        .post(format!("{}/dashboard/login", h.base))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/dashboard");
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(
        !set.contains(ADMIN),
        "the cookie never holds the token: {set}"
    );
    set.split(';').next().unwrap().to_owned()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn dashboard(h: &Harness, cookie: &str, path_and_query: &str) -> Dashboard {
    let resp = h
        .client
        .get(format!("{}{path_and_query}", h.base))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path_and_query}");
    resp.json().await.unwrap()
}

async fn the_dashboard_needs_a_login_and_refuses_a_wrong_token(b: Backend) {
    let h = Harness::start(b).await;
    let client = no_redirects();
    for path in [
        "/dashboard/api/stores",
        "/dashboard/api/stores/north",
        "/dashboard/events?store=north",
    ] {
        let resp = client
            .get(format!("{}{path}", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        let forged = client
            .get(format!("{}{path}", h.base))
            .header(COOKIE, "crm_dashboard=v1.99999999999.00.00")
            .send()
            .await
            .unwrap();
        assert_eq!(
            forged.status(),
            StatusCode::FORBIDDEN,
            "{path} with a forged cookie"
        );
    }
    let page = client
        .get(format!("{}/dashboard", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let page = page.text().await.unwrap();
    assert!(page.contains("name=\"token\""), "the login form: {page}");
    assert!(!page.contains("app.js"), "no dashboard without a session");

    let wrong = client
        .post(format!("{}/dashboard/login", h.base))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().await.unwrap().contains("Wrong token"));

    let cookie = login(&h).await;
    let page = client
        .get(format!("{}/dashboard", h.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/dashboard/app.js"), "{page}");
    let stores: Vec<StoreSummary> = client
        .get(format!("{}/dashboard/api/stores", h.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = stores.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["north", "south"]);
    assert_eq!(stores[0].kiosks, std::slice::from_ref(&h.kiosk.id));
    // Scripts may use the admin token instead of a session.
    let scripted = client
        .get(format!("{}/dashboard/api/stores/north", h.base))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), 200);
    let gone = client
        .get(format!("{}/dashboard/api/stores/nowhere", h.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    let out = client
        .post(format!("{}/dashboard/logout", h.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    h.stop().await;
}

#[tokio::test]
async fn wrong_tokens_are_rate_limited() {
    let h = Harness::start(Backend::Sqlite).await;
    let client = no_redirects();
    let attempt = |token: &'static str| {
        client
            .post(format!("{}/dashboard/login", h.base))
            .form(&[("token", token)])
            .send()
    };
    for _ in 0..crm_endpoint::dashboard::LOGIN_ATTEMPTS {
        assert_eq!(attempt("guess").await.unwrap().status(), 403);
    }
    let blocked = attempt(ADMIN).await.unwrap();
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right token waits"
    );
    assert!(blocked.headers().contains_key("retry-after"));
    h.stop().await;
}

async fn figures_are_computed_from_the_events(b: Backend) {
    let h = Harness::start(b).await;
    let south = h.enroll("south").await;
    let cookie = login(&h).await;

    let (a1, a2, a3, b1) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let t0 = 1_000 * SEC;
    let mut north = Timeline::new(&h.kiosk, 0);
    north
        // Service A: waits of 60, 120 and 600 s; service times 30 and 90 s.
        .at(t0, issued(a1, "A", Some(token(1))))
        .at(t0, issued(a2, "A", None))
        .at(t0, issued(a3, "A", None))
        .at(t0 + 60 * SEC, called(a1, false))
        .at(t0 + 90 * SEC, called(a1, true))
        .at(t0 + 90 * SEC, served(a1))
        .at(t0 + 120 * SEC, called(a2, false))
        .at(t0 + 210 * SEC, served(a2))
        .at(t0 + 600 * SEC, called(a3, false))
        // Service B: one turn waiting 300 s, not served yet.
        .at(t0 + 10 * SEC, issued(b1, "B", None))
        .at(t0 + 310 * SEC, called(b1, false))
        .at(
            t0 + 20 * SEC,
            Event::CustomerIdentified(CustomerIdentified {
                card_token: Some(token(1)),
                by: IdentifiedBy::Card,
                source: ProfileSource::LocalCache,
                segment: None,
            }),
        );
    // Variant a shown 4 times, never redeemed; variant b shown twice, redeemed once.
    for i in 0..4 {
        north.at(t0 + 30 * SEC + i, shown("a"));
    }
    north
        .at(t0 + 40 * SEC, shown("b"))
        .at(t0 + 41 * SEC, shown("b"))
        .at(
            t0 + 42 * SEC,
            Event::CouponIssued(CouponIssued {
                coupon_code: "WELCOME-B-1".into(),
                campaign_id: Some("welcome".into()),
                variant: Some("b".into()),
                card_token: None,
                turn_id: None,
            }),
        )
        .at(
            t0 + 400 * SEC,
            Event::CouponRedeemed(CouponRedeemed {
                coupon_code: "WELCOME-B-1".into(),
                campaign_id: Some("welcome".into()),
                card_token: None,
                variant: None,
            }),
        );
    // NPS: 3 promoters, 1 passive, 1 detractor → 40.
    for (i, score) in [10, 10, 9, 7, 2].into_iter().enumerate() {
        north.at(t0 + 500 * SEC + i as u64, survey(score));
    }
    // The printer's latest report wins, whatever order the events are listed in.
    north
        .at(
            t0 + 550 * SEC,
            printer(DeviceHealth::Absent, Some("paper out")),
        )
        .at(t0 + 100 * SEC, printer(DeviceHealth::Ok, None))
        .at(
            t0 + 580 * SEC,
            log(LogLevel::Warn, "scanner slow to answer", 1),
        )
        .at(
            t0 + 590 * SEC,
            log(LogLevel::Error, "print failed: paper out", 3),
        )
        .at(
            t0 + 595 * SEC,
            log(LogLevel::Error, "printer still out of paper", 1),
        );
    north.post(&h).await;

    // Another store's kiosk: none of this may show on north's page.
    let mut other = Timeline::new(&south, 0);
    other
        .at(t0, issued(Uuid::now_v7(), "A", None))
        .at(t0, issued(Uuid::now_v7(), "Z", None))
        .at(t0 + 5 * SEC, survey(0))
        .at(t0 + 6 * SEC, shown("a"))
        .at(t0 + 7 * SEC, log(LogLevel::Error, "south only", 1));
    other.post(&h).await;

    let d = dashboard(&h, &cookie, "/dashboard/api/stores/north?range=24h").await;
    assert_eq!(d.store.id, "north");
    assert_eq!((d.timezone.as_str(), d.timezone_known), ("UTC", false));
    assert_eq!(d.tickets.total, 4);
    assert_eq!(d.tickets.services, ["A", "B"]);
    assert_eq!(
        d.tickets.buckets.iter().map(|b| b.total).sum::<u64>(),
        4,
        "every ticket in an hour of the window"
    );
    assert_eq!((d.visitors.identified, d.visitors.anonymous), (1, 3));
    assert_eq!(d.visitors.identified_by.get("card"), Some(&1));

    let a = &d.times[0];
    assert_eq!((a.service.as_str(), a.tickets), ("A", 3));
    let wait = a.wait.as_ref().unwrap();
    assert_eq!(wait.count, 3);
    // Skew-corrected times within a batch are exact to the millisecond.
    assert_eq!(wait.median_s, 120.0);
    assert_eq!(wait.p90_s, 504.0);
    assert_eq!(wait.max_s, 600.0);
    let service = a.service_time.as_ref().unwrap();
    assert_eq!((service.count, service.median_s), (2, 60.0));
    let bt = &d.times[1];
    assert_eq!(bt.wait.as_ref().unwrap().median_s, 300.0);
    assert!(bt.service_time.is_none());

    let variants: Vec<(&str, u64, u64)> = d
        .campaigns
        .iter()
        .map(|v| (v.variant.as_str(), v.shown, v.redeemed))
        .collect();
    assert_eq!(variants, [("a", 4, 0), ("b", 2, 1)]);
    assert_eq!(d.campaigns[1].conversion, 0.5);

    assert_eq!(
        (
            d.nps.responses,
            d.nps.promoters,
            d.nps.passives,
            d.nps.detractors
        ),
        (5, 3, 1, 1)
    );
    assert_eq!(d.nps.score, Some(40.0));

    assert_eq!(d.kiosks.len(), 1, "only north's kiosk");
    let k = &d.kiosks[0];
    assert_eq!(k.kiosk_id, h.kiosk.id);
    let p = k.printer.as_ref().unwrap();
    assert_eq!(
        (p.status.as_str(), p.reason.as_deref()),
        ("absent", Some("paper out"))
    );
    assert_eq!(k.health, Health::Failing);
    assert!(k.problems.iter().any(|p| p == "printer absent: paper out"));
    let logs: Vec<(&str, &str, u64)> = k
        .logs
        .iter()
        .map(|l| (l.level.as_str(), l.message.as_str(), l.occurrences))
        .collect();
    assert_eq!(
        logs,
        [
            ("error", "printer still out of paper", 1),
            ("error", "print failed: paper out", 3),
            ("warn", "scanner slow to answer", 1),
        ],
        "newest first"
    );

    // The kiosk filter and the other store.
    let only = dashboard(
        &h,
        &cookie,
        &format!("/dashboard/api/stores/north?range=24h&kiosk={}", h.kiosk.id),
    )
    .await;
    assert_eq!(only.tickets.total, 4);
    let s = dashboard(&h, &cookie, "/dashboard/api/stores/south?range=24h").await;
    assert_eq!(s.tickets.total, 2);
    assert_eq!(s.tickets.services, ["A", "Z"]);
    assert_eq!(s.nps.score, Some(-100.0));
    assert_eq!(s.kiosks.len(), 1);
    assert_eq!(s.kiosks[0].logs[0].message, "south only");
    assert!(s.kiosks[0].printer.is_none());
    let foreign = h
        .client
        .get(format!(
            "{}/dashboard/api/stores/south?kiosk={}",
            h.base, h.kiosk.id
        ))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        foreign.status(),
        StatusCode::NOT_FOUND,
        "north's kiosk is not south's"
    );
    h.stop().await;
}

async fn hours_are_the_store_time_zone_once_set(b: Backend) {
    let h = Harness::start(b).await;
    let cookie = login(&h).await;
    let bad = h
        .admin(reqwest::Method::POST, "/v1/admin/stores")
        .json(&serde_json::json!({ "id": "north", "name": "Tienda Norte", "timezone": "Mars/Olympus" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ok = h
        .admin(reqwest::Method::POST, "/v1/admin/stores")
        .json(&serde_json::json!({ "id": "north", "name": "Tienda Norte", "timezone": "Asia/Kolkata" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    let mut north = Timeline::new(&h.kiosk, 0);
    north.at(5_000 * SEC, issued(Uuid::now_v7(), "A", None));
    north.post(&h).await;
    let d = dashboard(&h, &cookie, "/dashboard/api/stores/north").await;
    assert_eq!(
        (d.timezone.as_str(), d.timezone_known),
        ("Asia/Kolkata", true)
    );
    // India is UTC+05:30: local hours start at half past a UTC hour.
    assert!(
        d.tickets
            .buckets
            .iter()
            .all(|b| b.start_ms.rem_euclid(3_600_000) == 1_800_000),
        "{:?}",
        d.tickets.buckets
    );
    assert_eq!(
        d.tickets.buckets[0].label, "00:00",
        "today starts at local midnight"
    );
    let stores: Vec<StoreSummary> = h
        .client
        .get(format!("{}/dashboard/api/stores", h.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stores[0].timezone.as_deref(), Some("Asia/Kolkata"));
    h.stop().await;
}

/// Reads server-sent events until one named `dashboard` satisfies `want`.
async fn next_dashboard(
    resp: &mut reqwest::Response,
    buf: &mut String,
    want: impl Fn(&Dashboard) -> bool,
) -> Dashboard {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut name = "message";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event:") {
                        name = n.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.strip_prefix(' ').unwrap_or(d));
                    }
                }
                if name == "dashboard" {
                    let d: Dashboard = serde_json::from_str(&data).unwrap();
                    if want(&d) {
                        return d;
                    }
                }
            }
            let chunk = resp.chunk().await.unwrap().expect("the stream ended");
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("no matching dashboard event within 30 s")
}

async fn live_updates_follow_ingest(b: Backend) {
    let h = Harness::start(b).await;
    let cookie = login(&h).await;
    let mut north = Timeline::new(&h.kiosk, 0);
    north.at(1_000 * SEC, issued(Uuid::now_v7(), "A", None));
    north.post(&h).await;

    let mut resp = h
        .client
        .get(format!("{}/dashboard/events?store=north&range=24h", h.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buf = String::new();
    let first = next_dashboard(&mut resp, &mut buf, |_| true).await;
    assert_eq!(first.tickets.total, 1);

    north
        .at(2_000 * SEC, issued(Uuid::now_v7(), "B", None))
        .at(2_001 * SEC, log(LogLevel::Error, "fresh error", 1));
    north.post(&h).await;
    let next = next_dashboard(&mut resp, &mut buf, |d| d.tickets.total == 2).await;
    assert_eq!(next.tickets.services, ["A", "B"]);
    assert_eq!(next.kiosks[0].logs[0].message, "fresh error");
    h.stop().await;
}

/// A scripted day at a store of two kiosks, whose figures are known: visits, exposures on screen
/// and ticket, coupons redeemed (one reported by both kiosks), survey answers (one turn answered
/// twice, at two kiosks cut off from each other).
async fn the_dashboard_shows_exposures_conversions_and_rates_of_a_scripted_day(b: Backend) {
    let h = Harness::start(b).await;
    let second = h.enroll("north").await;
    let cookie = login(&h).await;
    let t0 = 1_000 * SEC;
    let visit = |_: u8| Uuid::now_v7();
    let (v1, v2, v3, v4, v5) = (visit(1), visit(2), visit(3), visit(4), visit(5));
    let (t2, t3, t5) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut k1 = Timeline::new(&h.kiosk, 0);
    k1
        // Visit 1, variant a: greeting and ticket of one visit, and no coupon used.
        .at(t0, exposure("a", v1, Surface::Screen))
        .at(t0 + SEC, exposure("a", v1, Surface::Ticket))
        // Visit 2, variant a: its coupon redeemed at both kiosks (cut off from each other).
        .at(t0 + 10 * SEC, exposure("a", v2, Surface::Ticket))
        .at(t0 + 10 * SEC, coupon_issued("BIENV-A-0000000002", "a", t2))
        .at(
            t0 + 60 * SEC,
            coupon_redeemed("BIENV-A-0000000002", Some("a")),
        )
        // Visits 3 to 5, variant b: two coupons used, one not.
        .at(t0 + 20 * SEC, exposure("b", v3, Surface::Ticket))
        .at(t0 + 20 * SEC, exposure("b", v3, Surface::Ticket))
        .at(t0 + 20 * SEC, coupon_issued("BIENV-B-0000000003", "b", t3))
        .at(t0 + 30 * SEC, exposure("b", v4, Surface::Ticket))
        .at(t0 + 40 * SEC, exposure("b", v5, Surface::Ticket))
        .at(t0 + 40 * SEC, coupon_issued("BIENV-B-0000000005", "b", t5))
        .at(
            t0 + 90 * SEC,
            coupon_redeemed("BIENV-B-0000000003", Some("b")),
        )
        // Survey: turn 2 rated 0 here; turn 3 rated 9, turn 5 rated 10.
        .at(t0 + 100 * SEC, answer(t2, 0))
        .at(t0 + 101 * SEC, answer(t3, 9))
        .at(t0 + 102 * SEC, answer(t5, 10));
    k1.post(&h).await;
    let mut k2 = Timeline::new(&second, 0);
    k2.at(
        t0 + 70 * SEC,
        coupon_redeemed("BIENV-A-0000000002", Some("a")),
    )
    // Redeemed at the counter page of kiosk 2, the variant read from the code.
    .at(t0 + 80 * SEC, coupon_redeemed("BIENV-B-0000000005", None))
    // Turn 2 rated again at kiosk 2 while cut off: 10 this time.
    .at(t0 + 110 * SEC, answer(t2, 10));
    let statuses = k2.post_statuses(&h).await;
    assert_eq!(
        statuses,
        ["accepted", "accepted", "duplicate"],
        "a second answer for a turn is acknowledged, not stored"
    );

    let d = dashboard(&h, &cookie, "/dashboard/api/stores/north?range=24h").await;
    let figures: Vec<(&str, u64, u64)> = d
        .campaigns
        .iter()
        .map(|v| (v.variant.as_str(), v.shown, v.redeemed))
        .collect();
    // a: visits 1 and 2, coupon 2 once; b: visits 3, 4, 5, coupons 3 and 5.
    assert_eq!(figures, [("a", 2, 1), ("b", 3, 2)]);
    assert_eq!(d.campaigns[0].conversion, 0.5);
    assert!((d.campaigns[1].conversion - 2.0 / 3.0).abs() < 1e-9);
    // NPS: turn 2's first answer (0), 9 and 10: one detractor, two promoters.
    assert_eq!(
        (
            d.nps.responses,
            d.nps.promoters,
            d.nps.passives,
            d.nps.detractors
        ),
        (3, 2, 0, 1)
    );
    assert!((d.nps.score.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert_eq!(d.nps.distribution[10], 1, "the refused 10 is not counted");
    // Per kiosk: kiosk 2's duplicates add nothing of their own.
    let only2 = dashboard(
        &h,
        &cookie,
        &format!("/dashboard/api/stores/north?range=24h&kiosk={}", second.id),
    )
    .await;
    let figures2: Vec<(&str, u64, u64)> = only2
        .campaigns
        .iter()
        .map(|v| (v.variant.as_str(), v.shown, v.redeemed))
        .collect();
    assert_eq!(figures2, [("b", 0, 1)], "kiosk 2 converted coupon 5 only");
    assert_eq!(only2.nps.responses, 0);
    h.stop().await;
}

/// The survey rule the phone companion will ask, by turn id: served and not answered yet.
async fn the_crm_answers_the_kiosks_survey_rule_by_turn_id(b: Backend) {
    use kiosk_protocol::wire::SurveyStatus;
    let h = Harness::start(b).await;
    let (served_one, rated, waiting) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let t0 = 1_000 * SEC;
    let mut k = Timeline::new(&h.kiosk, 0);
    k.at(t0, issued(served_one, "A", None))
        .at(t0, issued(rated, "A", None))
        .at(t0, issued(waiting, "A", None))
        .at(t0 + 10 * SEC, called(served_one, false))
        .at(t0 + 20 * SEC, served(served_one))
        .at(t0 + 30 * SEC, called(rated, false))
        .at(t0 + 40 * SEC, served(rated))
        .at(t0 + 50 * SEC, answer(rated, 8));
    k.post(&h).await;
    let status = |turn: Uuid, store: &str| h.db.survey_status(store.into(), turn);
    assert_eq!(
        status(served_one, "north").await.unwrap(),
        SurveyStatus::Open
    );
    assert_eq!(
        status(rated, "north").await.unwrap(),
        SurveyStatus::AlreadyAnswered
    );
    assert_eq!(
        status(waiting, "north").await.unwrap(),
        SurveyStatus::NotServed
    );
    assert_eq!(
        status(Uuid::now_v7(), "north").await.unwrap(),
        SurveyStatus::Unknown
    );
    assert_eq!(
        status(served_one, "south").await.unwrap(),
        SurveyStatus::Unknown,
        "another store's turn is not this store's"
    );
    h.stop().await;
}

on_both_databases!(
    the_crm_answers_the_kiosks_survey_rule_by_turn_id,
    the_dashboard_shows_exposures_conversions_and_rates_of_a_scripted_day,
    the_dashboard_needs_a_login_and_refuses_a_wrong_token,
    figures_are_computed_from_the_events,
    hours_are_the_store_time_zone_once_set,
    live_updates_follow_ingest,
);
