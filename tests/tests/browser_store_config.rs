//! A store configuration set at the CRM reaches what the customer sees: the kiosk screen in a
//! real browser (headless Chromium through chromedriver) offers the new services after the
//! change, at the official Pi display's 800x480, and a turn of a new service is issued from it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use kiosk::demo::DemoOptions;
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::json;

/// The service buttons' text on the screen, in order.
async fn services_on_screen(browser: &Browser) -> Vec<String> {
    let v = browser
        .eval(
            "return [...document.querySelectorAll('.service [data-action=choose_service].main')].map((b) => b.textContent.trim());",
            vec![],
        )
        .await
        .expect("the service buttons");
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_screen_offers_the_services_set_at_the_crm_after_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let demo = kiosk::demo::start(DemoOptions {
        data_dir: dir.path().to_owned(),
        port: 0,
        kiosks: 1,
        browse_point: false,
    })
    .await
    .expect("the demo starts");
    // Created after the demo: its sync worker installs the process's rustls provider.
    let http = reqwest::Client::new();
    let browser = Browser::launch(Viewport::PI_DISPLAY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    browser
        .goto(&format!("http://{}/", demo.kiosk.ui_addr))
        .await
        .unwrap();
    browser.wait_for_screen("attract").await.unwrap();
    browser.click("[data-action=start]").await.unwrap();
    browser.wait_for_screen("choose_service").await.unwrap();
    let before = services_on_screen(&browser).await;
    assert_eq!(
        before,
        [
            "A · Caja",
            "B · Atención al cliente",
            "P · Atención preferente"
        ]
    );
    browser.screenshot("store-config-before").await.unwrap();
    browser.click("[data-action=cancel]").await.unwrap();
    browser.wait_for_screen("attract").await.unwrap();

    let res = http
        .put(format!(
            "http://{}/v1/admin/stores/{}/config",
            demo.crm_addr,
            crm_endpoint::DEMO_STORE_ID
        ))
        .bearer_auth(&demo.admin_token)
        .json(&json!({
            "services": [
                { "letter": "A", "name": { "es": "Caja", "en": "Till" } },
                { "letter": "D", "name": { "es": "Devoluciones", "en": "Returns" }, "priority": true }
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while demo
        .kiosk
        .db
        .good_store_config()
        .unwrap()
        .is_none_or(|c| c.version < 1)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the kiosk never applied the store configuration"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    browser.click("[data-action=start]").await.unwrap();
    browser.wait_for_screen("choose_service").await.unwrap();
    browser
        .wait_for_text(".services", "Devoluciones", WAIT)
        .await
        .expect("the new service on screen");
    assert_eq!(
        services_on_screen(&browser).await,
        ["A · Caja", "D · Devoluciones"]
    );
    let priority = browser
        .eval(
            "return document.querySelectorAll('.service:nth-child(2) [data-action=choose_service]').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(priority, 2, "the new service offers priority turns too");
    browser.screenshot("store-config-after").await.unwrap();
    browser
        .click(".service:nth-child(2) [data-action=choose_service].main")
        .await
        .unwrap();
    browser.wait_for_screen("goodbye").await.unwrap();
    let label = browser
        .wait_for_text("[data-testid=turn]", "D-", WAIT)
        .await
        .expect("a turn of the new service");
    assert!(label.trim().starts_with("D-"), "{label}");
    browser.close().await.unwrap();
    demo.stop().await;
}
