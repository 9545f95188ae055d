//! The customers page (issue 21 item 3) in a real browser (headless Chromium) at 800x480,
//! 1080x1920 and 1920x1080: the HQ admin logs in, sees the "Customers" link, searches a
//! customer by a typed card number and by name, opens her profile, corrects her phone, exports
//! her (JSON and CSV attachments), erases her and sees each kiosk's progress, and imports a CSV
//! whose bad row is named and nothing imported. A store manager sees no link and gets "HQ admins
//! only" on the page, and the API answers 403. Every control can be reached, is at least 24 px
//! and uncovered; axe-core finds no critical or serious violation. Screenshots go to
//! `<target dir>/artifacts/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use crm_endpoint::accounts::{Role, hash_password};
use crm_endpoint::db::StoreRecord;
use crm_endpoint::db::accounts::NewAccount;
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::{Value, json};

const ADMIN: &str = "customers-browser-admin-token-of-at-least-32-chars";
const MIN_TARGET: f64 = 24.0;

const VIEWPORTS: [Viewport; 3] = [
    Viewport::PI_DISPLAY,
    Viewport {
        width: 1080,
        height: 1920,
    },
    Viewport::FULL_HD,
];

async fn check_page(b: &Browser, what: &str) {
    let problems = b.reachability_problems(MIN_TARGET).await.unwrap();
    assert!(
        problems.is_empty(),
        "{what} at {}: {problems:#?}",
        b.viewport()
    );
    let axe = b.axe_violations().await.unwrap();
    assert!(axe.is_empty(), "{what} at {}: {axe:#?}", b.viewport());
}

/// Puts `text` in the file input as a file named `customers.csv` (a WebDriver cannot drive the
/// system's file dialog).
const SET_FILE: &str = r#"
const dt = new DataTransfer();
dt.items.add(new File([arguments[0]], 'customers.csv', { type: 'text/csv' }));
document.getElementById('i-file').files = dt.files;
return true;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hq_admin_finds_corrects_exports_and_erases_a_customer_and_others_are_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = crm_endpoint::db::open(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    for (id, name) in [("centro", "Tienda Centro"), ("sur", "Tienda Sur")] {
        db.upsert_store(StoreRecord {
            id: id.into(),
            name: name.into(),
        })
        .await
        .unwrap();
    }
    for (name, password, role, store) in [
        ("hq", "hq password 123", Role::HqAdmin, None),
        (
            "sergio",
            "sergio password 1",
            Role::StoreManager,
            Some("sur"),
        ),
    ] {
        db.add_account(
            NewAccount {
                name: name.into(),
                password_hash: hash_password(password).unwrap(),
                role,
                region: None,
                store_id: store.map(Into::into),
            },
            0,
        )
        .await
        .unwrap();
    }
    let key = db.tenant_key().await.unwrap();
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

    for viewport in VIEWPORTS {
        // A customer per screen size, with a card whose number the admin types.
        // Distinct per size: 800, 1080 and 1920 end in different bytes.
        let tag = (viewport.width % 256) as u8;
        let uid = [0x04, 0x10, 0x20, tag];
        let card: String = uid.iter().map(|b| format!("{b:02X}")).collect();
        let token = key.card_token(&uid);
        let name = format!("Lucía Pérez {}", viewport.width);
        db.upsert_customer(
            serde_json::from_value(json!({
                "card_token": token, "store_id": "centro", "display_name": name,
                "email": format!("lucia{}@example.com", viewport.width),
                "phone": "+34 600 000 000", "consents": ["profile"], "visits": 4
            }))
            .unwrap(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        )
        .await
        .unwrap();

        let b = Browser::launch(viewport).await.expect("chromium");
        // A store manager: no link, the page says who may see it, the API refuses.
        b.goto(&format!("{base}/dashboard")).await.unwrap();
        b.wait_for("#user", WAIT).await.unwrap();
        b.log_in_dashboard("sergio", "sergio password 1")
            .await
            .unwrap();
        b.wait_until(
            "who is logged in",
            "document.getElementById('who').textContent.length > 0",
            WAIT,
        )
        .await
        .unwrap();
        let link = b
            .eval(
                "const a = document.querySelector('a[href=\"/dashboard/customers\"]'); return !!a && a.getClientRects().length > 0;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            link,
            json!(false),
            "the store manager sees no Customers link"
        );
        b.goto(&format!("{base}/dashboard/customers"))
            .await
            .unwrap();
        let text = b.text("main").await.unwrap();
        assert!(text.contains("HQ admins only"), "{text}");
        let status = b
            .eval(
                "return fetch('/dashboard/api/customers?q=Luc', { credentials: 'same-origin' }).then((r) => r.status);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, json!(403));
        b.goto(&format!("{base}/dashboard")).await.unwrap();
        b.wait_for("form.logout button", WAIT).await.unwrap();
        b.click("form.logout button").await.unwrap();
        b.wait_for("#user", WAIT).await.unwrap();

        // The HQ admin.
        b.log_in_dashboard("hq", "hq password 123").await.unwrap();
        b.wait_until(
            "the Customers link",
            "(() => { const a = document.querySelector('a[href=\"/dashboard/customers\"]'); return !!a && a.getClientRects().length > 0; })()",
            WAIT,
        )
        .await
        .expect("the HQ admin sees the Customers link");
        b.click("a[href=\"/dashboard/customers\"]").await.unwrap();
        b.wait_for("#q", WAIT).await.unwrap();
        check_page(&b, "the customers page").await;
        b.screenshot(&format!("customers-{viewport}-01-page"))
            .await
            .unwrap();

        // A card number typed (as a desk reader types it): one customer, opened at once.
        b.type_slowly("#q", &card, std::time::Duration::from_millis(20))
            .await
            .unwrap();
        b.click("#search-go").await.unwrap();
        b.wait_for_text("#h-profile", &name, WAIT)
            .await
            .expect("her profile");
        let facts = b.text("#facts").await.unwrap();
        assert!(facts.contains(&token.to_string()), "{facts}");
        assert!(facts.contains("regular"), "{facts}");
        let consents = b.text("#consent-rows").await.unwrap();
        assert!(
            consents.contains("profile") && consents.contains("given"),
            "{consents}"
        );
        check_page(&b, "a profile").await;
        b.screenshot(&format!("customers-{viewport}-02-profile"))
            .await
            .unwrap();

        // Search by part of the name lists her.
        b.eval(
            "document.getElementById('q').value = ''; return true;",
            vec![],
        )
        .await
        .unwrap();
        b.type_slowly("#q", "lucía pérez", std::time::Duration::from_millis(20))
            .await
            .unwrap();
        b.click("#search-go").await.unwrap();
        b.wait_for_text("#status", "read as name", WAIT)
            .await
            .unwrap();
        b.wait_until(
            "the results",
            &format!("document.getElementById('result-rows').textContent.includes('{name}')"),
            WAIT,
        )
        .await
        .unwrap();

        // Correct her phone.
        b.eval(
            "document.getElementById('c-phone').value = ''; return true;",
            vec![],
        )
        .await
        .unwrap();
        b.type_slowly(
            "#c-phone",
            "+34 611 222 333",
            std::time::Duration::from_millis(20),
        )
        .await
        .unwrap();
        b.click("#c-save").await.unwrap();
        b.wait_for_text("#status", "Saved", WAIT).await.unwrap();
        assert!(b.text("#facts").await.unwrap().contains("+34 611 222 333"));
        let stored = db.customer(token.clone()).await.unwrap().unwrap();
        assert_eq!(stored.phone.as_deref(), Some("+34 611 222 333"));

        // Both exports are attachments holding her data.
        let v: Value = b
            .eval(
                "return Promise.all(['export-json', 'export-csv'].map((id) => fetch(document.getElementById(id).href, { credentials: 'same-origin' }).then(async (r) => [r.status, r.headers.get('content-disposition'), await r.text()])));",
                vec![],
            )
            .await
            .unwrap();
        for (i, ext) in ["json", "csv"].iter().enumerate() {
            assert_eq!(v[i][0], json!(200), "{v}");
            let disposition = v[i][1].as_str().unwrap();
            assert!(
                disposition.starts_with("attachment;")
                    && disposition.ends_with(&format!(".{ext}\"")),
                "{disposition}"
            );
            assert!(
                v[i][2].as_str().unwrap().contains("+34 611 222 333"),
                "{ext}"
            );
        }

        // Erase her: confirmed, then each kiosk's progress (none enrolled here: the fleet is
        // empty, so the page says so).
        b.eval("window.confirm = () => true; return true;", vec![])
            .await
            .unwrap();
        b.click("#erase").await.unwrap();
        b.wait_for_text("#status", "Erased", WAIT).await.unwrap();
        b.wait_until(
            "the erasure's progress",
            "!document.getElementById('erasure').hidden",
            WAIT,
        )
        .await
        .unwrap();
        assert!(db.customer(token.clone()).await.unwrap().is_none());
        // Nothing of hers stays on the screen (the search's answer showed her name and email).
        let shown = b
            .eval("return document.body.innerText;", vec![])
            .await
            .unwrap();
        let shown = shown.as_str().unwrap();
        assert!(
            !shown.contains("@example.com") && !shown.contains("+34 6") && !shown.contains("Pérez"),
            "{viewport}: the erased customer still shown: {shown}"
        );
        check_page(&b, "an erasure").await;
        b.screenshot(&format!("customers-{viewport}-03-erased"))
            .await
            .unwrap();

        // An import with a bad row: named, nothing imported.
        let csv = format!(
            "card_number,store_id,display_name,email\n0A0B0C{:02X},centro,Nuria,nuria@example.com\n0A0B0D{:02X},nowhere,Omar,\n",
            tag, tag
        );
        b.eval(SET_FILE, vec![json!(csv)]).await.unwrap();
        b.click("#i-go").await.unwrap();
        b.wait_for_text("#import-errors", "Line 3, store_id", WAIT)
            .await
            .expect("the bad row named");
        let nuria = key.card_token(&[0x0a, 0x0b, 0x0c, tag]);
        assert!(db.customer(nuria.clone()).await.unwrap().is_none());
        check_page(&b, "a refused import").await;
        b.screenshot(&format!("customers-{viewport}-04-import-refused"))
            .await
            .unwrap();
        let good = csv.replace("nowhere", "sur");
        b.eval(SET_FILE, vec![json!(good)]).await.unwrap();
        b.click("#i-go").await.unwrap();
        b.wait_for_text("#status", "2 customers imported", WAIT)
            .await
            .unwrap();
        assert!(db.customer(nuria).await.unwrap().is_some());

        b.click("form.logout button").await.unwrap();
        b.wait_for("#user", WAIT).await.unwrap();
        b.close().await.expect("browser closes");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
