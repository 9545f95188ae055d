//! Two `crm-endpoint serve` replicas on one PostgreSQL database (issue 20): what one replica
//! counts, the other sees (the live-lookup limit is 60 a minute across both, not 120; the
//! dashboard's login throttle, the admin-token throttle and the enrollment throttle hold across
//! replicas; a session made on one opens the dashboard on the other), a batch stored by replica 2
//! reaches a dashboard stream connected to replica 1 at once (LISTEN/NOTIFY, the figure is
//! printed), and a replica one schema version behind keeps serving a database an additive
//! migration moved ahead (rolling upgrades).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use common::fleet::{FLEET_ADMIN, Replica, enroll};
use common::{Backend, fresh_url};
use crm_endpoint::db::StoreRecord;
use kiosk_protocol::CardToken;
use kiosk_protocol::auth::sign_request;
use kiosk_protocol::events::Envelope;
use kiosk_protocol::wire::{BatchRequest, EnrollResponse, KioskClock, batches_path, profile_path};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use time::OffsetDateTime;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_crm-endpoint");

/// Two replicas on a new database with stores `north` and `south`.
async fn two_replicas() -> (Replica, Replica, crm_endpoint::SharedDb, String) {
    common::install_crypto();
    let (url, _) = fresh_url(Backend::Postgres).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    for (id, name) in [("north", "Tienda Norte"), ("south", "Tienda Sur")] {
        db.upsert_store(StoreRecord {
            id: id.into(),
            name: name.into(),
        })
        .await
        .unwrap();
    }
    let (u1, u2) = (url.clone(), url.clone());
    let r1 = tokio::task::spawn_blocking(move || Replica::start(BIN, &u1, &[]))
        .await
        .unwrap();
    let r2 = tokio::task::spawn_blocking(move || Replica::start(BIN, &u2, &[]))
        .await
        .unwrap();
    (r1, r2, db, url)
}

fn signed(
    client: &reqwest::Client,
    base: &str,
    kiosk: &EnrollResponse,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let headers = sign_request(
        &kiosk.kiosk_id,
        &kiosk.device_secret,
        method.as_str(),
        path,
        &body,
        now,
    );
    let mut req = client
        .request(method, format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers.pairs() {
        req = req.header(k, v);
    }
    req
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_lookup_limit_is_sixty_a_minute_across_both_replicas_not_each() {
    let (r1, r2, db, _) = two_replicas().await;
    let client = reqwest::Client::new();
    let kiosk = enroll(&db, &client, &r1.base(), "north").await;
    let mut answers = Vec::new();
    // Alternating replicas, as a round-robin balancer sends them: 120 lookups of unknown cards.
    for n in 0..120u32 {
        let base = if n % 2 == 0 { r1.base() } else { r2.base() };
        let token = CardToken::from_bytes([(n % 250) as u8 + 1; 16]);
        let r = signed(
            &client,
            &base,
            &kiosk,
            Method::GET,
            &profile_path(&kiosk.kiosk_id, &token),
            vec![],
        )
        .send()
        .await
        .unwrap();
        answers.push((r.status(), r.headers().contains_key("retry-after")));
    }
    let ok = answers.iter().filter(|a| a.0 == StatusCode::OK).count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|a| a.0 == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        ok,
        crm_endpoint::api::LOOKUPS_PER_WINDOW as usize,
        "{answers:?}"
    );
    assert_eq!(limited.len(), 60, "{answers:?}");
    assert!(limited.iter().all(|a| a.1), "every 429 says when to retry");
    // The first 60 passed, the rest were refused, on both replicas alike.
    assert!(answers[..60].iter().all(|a| a.0 == StatusCode::OK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_replica_opens_the_dashboard_on_the_other() {
    let (r1, r2, _db, _) = two_replicas().await;
    let client = no_redirects();
    let resp = client
        .post(format!("{}/dashboard/login", r1.base()))
        .form(&[("token", FLEET_ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // What the manager sees on replica 2: the dashboard page, not the login form.
    let page = client
        .get(format!("{}/dashboard", r2.base()))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/dashboard/logout"),
        "the dashboard, not the login form"
    );
    assert!(!html.contains("name=\"token\""), "no login form: {html}");
    let stores = client
        .get(format!("{}/dashboard/api/stores", r2.base()))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stores.status(), StatusCode::OK);
    assert!(stores.text().await.unwrap().contains("Tienda Norte"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_admin_and_enrollment_throttles_count_across_replicas() {
    let (r1, r2, db, _) = two_replicas().await;
    let client = no_redirects();
    let bases = [r1.base(), r2.base()];

    // Dashboard login: 5 wrong tokens, alternating replicas; then even the right one waits,
    // on either replica, and the page says so.
    for n in 0..crm_endpoint::dashboard::LOGIN_ATTEMPTS as usize {
        let r = client
            .post(format!("{}/dashboard/login", bases[n % 2]))
            .form(&[("token", "wrong-token")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "wrong token {n}");
    }
    for base in &bases {
        let r = client
            .post(format!("{base}/dashboard/login"))
            .form(&[("token", FLEET_ADMIN)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{base}");
        assert!(r.headers().contains_key("retry-after"));
        let page = r.text().await.unwrap();
        assert!(page.contains("Too many wrong tokens"), "{page}");
    }

    // Admin token: 10 wrong ones, alternating; then the right one is refused on both.
    for n in 0..crm_endpoint::http::ADMIN_ATTEMPTS as usize {
        let r = client
            .get(format!("{}/v1/stats", bases[n % 2]))
            .header("x-admin-token", "wrong-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "wrong admin token {n}");
    }
    for base in &bases {
        let r = client
            .get(format!("{base}/v1/stats"))
            .header("x-admin-token", FLEET_ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{base}");
    }

    // Enrollment: 10 wrong codes, alternating; then a good code waits too.
    for n in 0..crm_endpoint::http::ENROLL_ATTEMPTS as usize {
        let r = client
            .post(format!("{}/v1/enroll", bases[n % 2]))
            .json(&serde_json::json!({
                "code": "AAAA-BBBB-CCCC", "hardware_profile": "simulated", "firmware_version": "0.1.0"
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "wrong code {n}");
    }
    let (code, _) = crm_endpoint::api::issue_enroll_code(&db, "north", Duration::from_secs(60))
        .await
        .unwrap();
    let r = client
        .post(format!("{}/v1/enroll", bases[1]))
        .json(&serde_json::json!({
            "code": code, "hardware_profile": "simulated", "firmware_version": "0.1.0"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Reads server-sent events until one named `dashboard` whose ticket total is `tickets`.
async fn wait_for_tickets(resp: &mut reqwest::Response, buf: &mut String, tickets: u64) {
    tokio::time::timeout(Duration::from_secs(60), async {
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
                    let d: serde_json::Value = serde_json::from_str(&data).unwrap();
                    if d["tickets"]["total"] == tickets {
                        return;
                    }
                }
            }
            let chunk = resp.chunk().await.unwrap().expect("the stream ended");
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no dashboard event with {tickets} tickets within 60 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stored_by_replica_two_reaches_a_dashboard_on_replica_one_at_once() {
    let (r1, r2, db, _) = two_replicas().await;
    let client = reqwest::Client::new();
    let kiosk = enroll(&db, &client, &r2.base(), "north").await;
    let mut stream = client
        .get(format!(
            "{}/dashboard/events?store=north&range=24h",
            r1.base()
        ))
        .header("x-admin-token", FLEET_ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut buf = String::new();
    wait_for_tickets(&mut stream, &mut buf, 0).await;
    let boot = Uuid::now_v7();
    let mut delays = Vec::new();
    for n in 1..=5u64 {
        let id = Uuid::now_v7();
        let envelope = Envelope {
            id,
            kiosk_id: kiosk.kiosk_id.clone(),
            seq: n,
            boot_id: boot,
            wall_time: OffsetDateTime::now_utc(),
            mono_ms: n * 1000,
            schema_version: 1,
            event: common::fleet::ticket(id, u32::try_from(n).unwrap()),
        };
        let batch = BatchRequest::new(
            &kiosk.kiosk_id,
            KioskClock::now(boot, n * 1000),
            vec![envelope],
        )
        .unwrap();
        let sent = Instant::now();
        let r = signed(
            &client,
            &r2.base(),
            &kiosk,
            Method::POST,
            &batches_path(&kiosk.kiosk_id),
            serde_json::to_vec(&batch).unwrap(),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        wait_for_tickets(&mut stream, &mut buf, n).await;
        delays.push(sent.elapsed());
        // Past the stream's coalescing interval, so each batch is its own update.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
    println!("FIGURE replica_to_replica_dashboard_ms {ms:?}");
    // Without the bus replica 1 refreshes every 15 s; a generous bound well below that.
    assert!(
        delays.iter().all(|d| *d < Duration::from_secs(5)),
        "batch on replica 2 to dashboard on replica 1: {ms:?} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_replica_keeps_serving_a_schema_an_additive_migration_moved_ahead_and_refuses_a_breaking_one()
 {
    common::install_crypto();
    let (url, _) = fresh_url(Backend::Postgres).await;
    drop(crm_endpoint::db::open(&url).await.unwrap());
    let latest = crm_endpoint::db::migrations::latest(crm_endpoint::db::DbKind::Postgres);
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // A newer endpoint migrated: two versions ahead, additive (this version still fits).
    client
        .batch_execute(&format!(
            "UPDATE schema_version SET version = {}; CREATE TABLE future_thing (id INTEGER);",
            latest + 2
        ))
        .await
        .unwrap();
    let db = crm_endpoint::db::open(&url)
        .await
        .expect("an additive newer schema is served");
    db.upsert_store(StoreRecord {
        id: "north".into(),
        name: "Tienda Norte".into(),
    })
    .await
    .unwrap();
    // And the real binary starts on it.
    let u = url.clone();
    let replica = tokio::task::spawn_blocking(move || Replica::start(BIN, &u, &[]))
        .await
        .unwrap();
    let health = reqwest::get(format!("{}/v1/health", replica.base()))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    drop(replica);
    // A breaking migration says this version no longer fits: refused, naming both versions.
    client
        .batch_execute(&format!(
            "UPDATE schema_compat SET oldest_code = {}",
            latest + 2
        ))
        .await
        .unwrap();
    let err = crm_endpoint::db::open(&url).await.err().expect("refused");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}", latest + 2)) && text.contains(&format!("{latest}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_balancer_the_login_throttle_counts_each_client_not_the_balancer() {
    common::install_crypto();
    let (url, _) = fresh_url(Backend::Postgres).await;
    drop(crm_endpoint::db::open(&url).await.unwrap());
    let (u1, u2) = (url.clone(), url.clone());
    // Replica 1 trusts the balancer at 127.0.0.1; replica 2 trusts nobody.
    let trusting = tokio::task::spawn_blocking(move || {
        Replica::start(BIN, &u1, &["--trusted-proxy", "127.0.0.1"])
    })
    .await
    .unwrap();
    let plain = tokio::task::spawn_blocking(move || Replica::start(BIN, &u2, &[]))
        .await
        .unwrap();
    let client = no_redirects();
    let login = |base: String, from: &'static str, token: &'static str| {
        client
            .post(format!("{base}/dashboard/login"))
            .header("x-forwarded-for", from)
            .form(&[("token", token)])
            .send()
    };
    for _ in 0..crm_endpoint::dashboard::LOGIN_ATTEMPTS {
        let r = login(trusting.base(), "198.51.100.1", "wrong-token")
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    // The client who guessed waits; another client behind the same balancer logs in.
    let r = login(trusting.base(), "198.51.100.1", FLEET_ADMIN)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = login(trusting.base(), "198.51.100.2", FLEET_ADMIN)
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "another client is not throttled"
    );
    // A replica that trusts nobody ignores the header: the guesser cannot dodge the throttle
    // by naming another address, and counts as 127.0.0.1.
    for n in 0..crm_endpoint::dashboard::LOGIN_ATTEMPTS {
        let from = [
            "203.0.113.1",
            "203.0.113.2",
            "203.0.113.3",
            "203.0.113.4",
            "203.0.113.5",
        ][n as usize];
        let r = login(plain.base(), from, "wrong-token").await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let r = login(plain.base(), "203.0.113.9", FLEET_ADMIN)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}
