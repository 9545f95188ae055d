//! The console's forwarding page (issue 21 item 6) in a real browser (headless Chromium): a real
//! endpoint forwards to a CRM webhook that keeps failing, so its message goes through the whole
//! retry schedule (the delivery driven at a clock three days on) and becomes a dead letter and
//! the endpoint is disabled. After logging in with the admin token, the manager sees the
//! endpoint disabled with the reason in words and the dead letter named in words; pressing
//! Replay empties the list; once the endpoint is enabled the message reaches the CRM under its
//! original webhook-id. At 1920x1080, 1080x1920 and the Pi display's 800x480: the page fits the
//! width, its controls are at least 44 px and not covered, axe-core finds no critical or serious
//! violation. Screenshots go to `<target dir>/artifacts/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use crm_endpoint::db::StoreRecord;
use crm_endpoint::db::forward::NewEndpoint;
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::json;
use time::OffsetDateTime;

const ADMIN: &str = "forwarding-view-admin-token-of-at-least-32-chars";
const MIN_TARGET: f64 = 44.0;
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// Logs in at `/dashboard/forwarding` and waits for the endpoint's row.
async fn open(browser: &Browser, base: &str) {
    browser
        .goto(&format!("{base}/dashboard/forwarding"))
        .await
        .unwrap();
    browser.wait_for("#token", WAIT).await.expect("login form");
    browser.type_into("#token", ADMIN).await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    browser
        .wait_for("#kpi-tickets", WAIT)
        .await
        .expect("logged in");
    browser
        .goto(&format!("{base}/dashboard/forwarding"))
        .await
        .unwrap();
    browser
        .wait_until(
            "the endpoint's row",
            "document.querySelectorAll('#endpoint-rows tr[data-endpoint]').length === 1",
            WAIT,
        )
        .await
        .expect("one endpoint");
}

/// Layout and accessibility at the browser's size: nothing wider than the window; every
/// control (scrolled into view first) at least 44 px and not covered; axe-core clean.
async fn check_layout(browser: &Browser, name: &str) {
    let wide = browser
        .eval(
            "return document.documentElement.scrollWidth > window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        wide,
        json!(false),
        "{name}: the page is wider than the window"
    );
    let problems = browser
        .eval(
            r#"const bad = [];
for (const c of document.querySelectorAll('button, a[href]')) {
  if (c.getClientRects().length === 0) continue;
  c.scrollIntoView({ block: 'center' });
  const r = c.getBoundingClientRect();
  const label = `${c.tagName.toLowerCase()} "${c.textContent.trim().slice(0, 30)}"`;
  if (r.width < arguments[0] || r.height < arguments[0]) bad.push(`${label} is ${Math.round(r.width)}x${Math.round(r.height)}`);
  const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
  if (!(hit && (hit === c || c.contains(hit)))) bad.push(`${label} is covered`);
}
window.scrollTo(0, 0);
return bad;"#,
            vec![json!(MIN_TARGET)],
        )
        .await
        .unwrap();
    assert_eq!(problems, json!([]), "{name}: controls hard to use");
    let top = browser.usability_problems(MIN_TARGET).await.unwrap();
    let covered_or_small: Vec<&String> =
        top.iter().filter(|p| !p.contains("out of view")).collect();
    assert!(covered_or_small.is_empty(), "{name}: {top:?}");
    let violations = browser.axe_violations().await.unwrap();
    assert!(violations.is_empty(), "{name}: axe-core: {violations:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarding_page_shows_a_dead_letter_in_words_and_replays_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = crm_endpoint::db::open(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    db.upsert_store(StoreRecord {
        id: "centro".into(),
        name: "Tienda Centro".into(),
    })
    .await
    .unwrap();

    // The company's CRM: down (503) until told otherwise; what it took, by webhook-id.
    let down = Arc::new(AtomicBool::new(true));
    let took: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = {
        let (down, took) = (down.clone(), took.clone());
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let (down, took) = (down.clone(), took.clone());
                async move {
                    if down.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let id = headers["webhook-id"].to_str().unwrap().to_owned();
                    took.lock().unwrap().push(id);
                    StatusCode::NO_CONTENT
                }
            }),
        )
    };
    let crm = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", crm.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(crm, app).await.unwrap() });
    let endpoint = "fwd_0190f1a2-3b4c-7d5e-8f60-718293a4b5c6".to_owned();
    db.forward_create_endpoint(
        NewEndpoint {
            id: endpoint.clone(),
            kind: "webhook".into(),
            url: hook,
            secret: crm_endpoint::outbound::new_secret(),
            event_types: vec!["customer.updated".into()],
            options: json!({}),
        },
        now_ms(),
    )
    .await
    .unwrap();
    let customer: crm_endpoint::db::NewCustomer = serde_json::from_value(json!({
        "card_token": TOKEN, "store_id": "centro", "display_name": "Ana", "locale": "es",
        "email": null, "phone": null, "consents": ["profile"] }))
    .unwrap();
    db.upsert_customer(customer, now_ms()).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = crm_endpoint::ServeConfig {
        db: db.clone(),
        admin_token: Some(ADMIN.into()),
        tls: None,
    };
    let server = tokio::spawn(crm_endpoint::serve(config, listener, async {
        let _ = stopped.await;
    }));

    // Three days of retries, at a clock moved on by each wait (as serve does, later).
    let http = reqwest::Client::new();
    let mut at = now_ms();
    for _ in 0..60 {
        at += 13 * 3_600_000;
        crm_endpoint::forward::deliver_due(&db, &http, at)
            .await
            .unwrap();
        if !db.forward_dead_letters(None, 1).await.unwrap().is_empty() {
            break;
        }
    }
    let dead = db.forward_dead_letters(None, 1).await.unwrap();
    assert_eq!(dead.len(), 1, "the message never became a dead letter");
    let original_id = dead[0].msg_id.clone();

    let browser = Browser::launch(Viewport::FULL_HD).await.expect("chromium");
    open(&browser, &base).await;
    browser
        .wait_until(
            "the dead letter",
            "document.querySelectorAll('#dead-rows tr[data-seq]').length === 1",
            WAIT,
        )
        .await
        .expect("one dead letter");
    browser
        .screenshot("forwarding-1920x1080-01-dead-letter")
        .await
        .unwrap();
    let row = browser.text("#endpoint-rows tr").await.unwrap();
    assert!(row.contains("Disabled"), "{row}");
    assert!(row.contains("disabled automatically"), "{row}");
    assert!(row.contains("Webhook 127.0.0.1"), "{row}");
    let letter = browser.text("#dead-rows tr").await.unwrap();
    assert!(letter.contains("Customer changed"), "{letter}");
    assert!(letter.contains("503"), "{letter}");
    assert!(
        !letter.contains("Ana"),
        "a dead letter shows no personal data: {letter}"
    );
    assert_eq!(browser.text("#kpi-dead").await.unwrap(), "1");
    check_layout(&browser, "1920x1080").await;

    browser.click("#dead-rows button.replay").await.unwrap();
    browser
        .wait_for_text(
            "#notice",
            "Sent again: it waits until the endpoint is enabled",
            WAIT,
        )
        .await
        .expect("the replay confirmed");
    browser
        .wait_until(
            "the list emptied",
            "document.querySelectorAll('#dead-rows tr[data-seq]').length === 0",
            WAIT,
        )
        .await
        .expect("no dead letters");
    browser
        .screenshot("forwarding-1920x1080-02-replayed")
        .await
        .unwrap();
    // The CRM is back; the operator enables the endpoint: the message arrives, same id.
    down.store(false, Ordering::SeqCst);
    let resp = reqwest::Client::new()
        .post(format!(
            "{base}/v1/admin/forwarding/endpoints/{endpoint}/enable"
        ))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let deadline = std::time::Instant::now() + WAIT;
    while took.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the replay never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(*took.lock().unwrap(), [original_id]);
    browser
        .goto(&format!("{base}/dashboard/forwarding"))
        .await
        .unwrap();
    browser
        .wait_until(
            "the endpoint enabled and the message delivered",
            "[...document.querySelectorAll('#endpoint-rows td')].map((t) => t.innerText).join('|').startsWith('Enabled|0|1|0')",
            WAIT,
        )
        .await
        .expect("enabled, one delivered");
    browser.close().await.unwrap();

    for viewport in [
        Viewport {
            width: 1080,
            height: 1920,
        },
        Viewport::PI_DISPLAY,
    ] {
        let browser = Browser::launch(viewport).await.expect("chromium");
        open(&browser, &base).await;
        browser
            .screenshot(&format!("forwarding-{viewport}-01"))
            .await
            .unwrap();
        check_layout(&browser, &viewport.to_string()).await;
        browser.close().await.unwrap();
    }

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
