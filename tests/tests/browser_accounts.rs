//! Console accounts and roles (issue 21) in a real browser (headless Chromium) at 800x480,
//! 1080x1920 and 1920x1080: a real endpoint with three stores in two regions and one account per
//! role; each person logs in through the form, typing at a person's pace, and sees exactly their
//! stores in the store picker and the fleet view, the HQ links only if they are an HQ admin, and
//! "HQ admins only" when they open the accounts page anyway. The HQ admin makes an account on
//! the accounts page and reads the audit log filtered by that person's name, newest first. Every
//! page fits the window with controls a finger can hit, and axe-core finds no critical or
//! serious violation. Screenshots go to `<target dir>/artifacts/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use crm_endpoint::accounts::{Role, hash_password};
use crm_endpoint::db::StoreRecord;
use crm_endpoint::db::accounts::NewAccount;
use crm_endpoint::db::places::PlaceUpdate;
use kiosk_e2e::browser::{Browser, Viewport, WAIT};
use serde_json::{Value, json};

const ADMIN: &str = "accounts-browser-admin-token-of-at-least-32-chars";
const MIN_TARGET: f64 = 24.0;

/// The three screens the console is used on.
const VIEWPORTS: [Viewport; 3] = [
    Viewport::PI_DISPLAY,
    Viewport {
        width: 1080,
        height: 1920,
    },
    Viewport::FULL_HD,
];

/// (name, password, role, region, store, the stores the person must see)
type Person = (
    &'static str,
    &'static str,
    Role,
    Option<&'static str>,
    Option<&'static str>,
    &'static [&'static str],
);

const PEOPLE: [Person; 4] = [
    (
        "hq",
        "hq password 123",
        Role::HqAdmin,
        None,
        None,
        &["centro", "norte", "sur"],
    ),
    (
        "marta",
        "marta password 1",
        Role::RegionalManager,
        Some("ES-MD"),
        None,
        &["centro", "norte"],
    ),
    (
        "sergio",
        "sergio password 1",
        Role::StoreManager,
        None,
        Some("sur"),
        &["sur"],
    ),
    (
        "ana",
        "ana password 123",
        Role::Analyst,
        None,
        None,
        &["centro", "norte", "sur"],
    ),
];

/// What the page shows: the store picker's values, the fleet's rows, whether the HQ links are
/// visible, the header's "who" and whether the page is wider than the window.
const SEEN: &str = r#"
// What the eye sees: laid out with a size, whatever the attributes say.
const visible = (el) => !!el && el.getClientRects().length > 0 && el.getBoundingClientRect().width > 0 && getComputedStyle(el).visibility !== 'hidden';
return {
  picker: [...document.querySelectorAll('#store option')].map((o) => o.value),
  fleet: [...document.querySelectorAll('#fleet-rows tr')].map((tr) => tr.dataset.store),
  hq_links: [...document.querySelectorAll('a[data-hq]')].map(visible),
  who: (document.getElementById('who') || {}).textContent || '',
  wide: document.documentElement.scrollWidth > window.innerWidth,
};
"#;

/// The page fits the window's width and, scrolled a screen at a time from top to bottom (a
/// console page is longer than a 480 px screen), every control in view is big enough and not
/// covered; axe-core finds no critical or serious violation.
async fn check_page(b: &Browser, what: &str) {
    let mut problems = Vec::new();
    let mut y = 0.0;
    loop {
        b.eval(
            "window.scrollTo(0, arguments[0]); return true;",
            vec![json!(y)],
        )
        .await
        .unwrap();
        problems.extend(
            b.usability_problems(MIN_TARGET)
                .await
                .unwrap()
                .into_iter()
                .filter(|p| !p.contains("is out of view")),
        );
        let v = b
            .eval(
                "return [window.scrollY + window.innerHeight, document.documentElement.scrollHeight, window.innerHeight];",
                vec![],
            )
            .await
            .unwrap();
        let (bottom, height, screen) = (
            v[0].as_f64().unwrap(),
            v[1].as_f64().unwrap(),
            v[2].as_f64().unwrap(),
        );
        if bottom + 1.0 >= height {
            break;
        }
        y += screen * 0.8;
    }
    b.eval("window.scrollTo(0, 0); return true;", vec![])
        .await
        .unwrap();
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "{what} at {}: {problems:#?}",
        b.viewport()
    );
    let axe = b.axe_violations().await.unwrap();
    assert!(axe.is_empty(), "{what} at {}: {axe:#?}", b.viewport());
}

async fn seen(b: &Browser) -> Value {
    b.eval(SEEN, vec![]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_sees_only_its_stores_and_the_hq_admin_reads_the_audit_log() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = crm_endpoint::db::open(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    for (id, name, region, lat, lon) in [
        ("centro", "Tienda Centro", "ES-MD", 40.4169, -3.7035),
        ("norte", "Tienda Norte", "ES-MD", 40.4794, -3.6862),
        ("sur", "Tienda Sur", "ES-AN", 37.3891, -5.9845),
    ] {
        db.upsert_store(StoreRecord {
            id: id.into(),
            name: name.into(),
        })
        .await
        .unwrap();
        db.set_store_place(
            id.into(),
            PlaceUpdate {
                name: None,
                region: Some(region.into()),
                latitude: Some(lat),
                longitude: Some(lon),
            },
        )
        .await
        .unwrap();
    }
    for (name, password, role, region, store, _) in PEOPLE {
        db.add_account(
            NewAccount {
                name: name.into(),
                password_hash: hash_password(password).unwrap(),
                role,
                region: region.map(Into::into),
                store_id: store.map(Into::into),
            },
            0,
        )
        .await
        .unwrap();
    }
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
        let b = Browser::launch(viewport).await.expect("chromium");
        for (name, password, role, _, _, stores) in PEOPLE {
            b.goto(&format!("{base}/dashboard")).await.unwrap();
            b.wait_for("#user", WAIT).await.expect("the login form");
            if name == "hq" {
                check_page(&b, "the login form").await;
                b.screenshot(&format!("accounts-{viewport}-01-login"))
                    .await
                    .unwrap();
            }
            b.log_in_dashboard(name, password).await.expect("log in");
            b.wait_until(
                "the store picker and who is logged in",
                "document.querySelectorAll('#store option').length > 0 && document.getElementById('who').textContent.length > 0",
                WAIT,
            )
            .await
            .expect("the dashboard");
            let v = seen(&b).await;
            assert_eq!(v["picker"], json!(stores), "{name} at {viewport}: {v}");
            let hq = role == Role::HqAdmin;
            let links = v["hq_links"].as_array().unwrap();
            assert!(
                !links.is_empty() && links.iter().all(|l| l == &json!(hq)),
                "{name} at {viewport}: {v}"
            );
            assert!(
                v["who"].as_str().unwrap().starts_with(name),
                "{name} at {viewport}: {v}"
            );
            assert_eq!(v["wide"], json!(false), "{name} at {viewport}: {v}");
            check_page(&b, &format!("{name}'s dashboard")).await;
            b.screenshot(&format!("accounts-{viewport}-02-dashboard-{name}"))
                .await
                .unwrap();

            b.goto(&format!("{base}/dashboard/fleet")).await.unwrap();
            b.wait_until(
                "the fleet's rows",
                &format!(
                    "document.querySelectorAll('#fleet-rows tr').length === {}",
                    stores.len()
                ),
                WAIT,
            )
            .await
            .expect("the fleet view");
            let v = seen(&b).await;
            let mut fleet: Vec<String> = serde_json::from_value(v["fleet"].clone()).unwrap();
            fleet.sort();
            assert_eq!(fleet, stores, "{name}'s fleet at {viewport}: {v}");

            // The accounts page: HQ admins get it; the others a page saying who may.
            b.goto(&format!("{base}/dashboard/accounts")).await.unwrap();
            if hq {
                b.wait_until(
                    "the accounts",
                    "document.querySelectorAll('#account-rows tr').length >= 4",
                    WAIT,
                )
                .await
                .expect("the accounts table");
                check_page(&b, "the accounts page").await;
                b.screenshot(&format!("accounts-{viewport}-03-accounts"))
                    .await
                    .unwrap();
            } else {
                let text = b.text("main").await.unwrap();
                assert!(text.contains("HQ admins only"), "{name}: {text}");
                b.goto(&format!("{base}/dashboard")).await.unwrap();
                b.wait_for("form.logout button", WAIT).await.unwrap();
            }
            b.click("form.logout button").await.expect("log out");
            b.wait_for("#user", WAIT).await.expect("logged out");
        }

        // The HQ admin makes an account on the page, typing, then reads the audit log.
        let newcomer = format!("luis-{}", viewport.width);
        b.goto(&format!("{base}/dashboard")).await.unwrap();
        b.log_in_dashboard("hq", "hq password 123")
            .await
            .expect("log in");
        b.goto(&format!("{base}/dashboard/accounts")).await.unwrap();
        b.wait_until(
            "the stores in the form",
            "document.querySelectorAll('#new-store option').length === 3",
            WAIT,
        )
        .await
        .unwrap();
        b.type_slowly("#new-name", &newcomer, std::time::Duration::from_millis(60))
            .await
            .unwrap();
        b.type_slowly(
            "#new-password",
            "luis password 12",
            std::time::Duration::from_millis(60),
        )
        .await
        .unwrap();
        b.click("#new-account button[type=submit]").await.unwrap();
        b.wait_for_text("#status", &format!("Created {newcomer}"), WAIT)
            .await
            .expect("the account made");
        b.wait_until(
            "the new account listed",
            &format!("!!document.querySelector('#account-rows tr[data-account=\"{newcomer}\"]')"),
            WAIT,
        )
        .await
        .unwrap();

        b.goto(&format!("{base}/dashboard/audit")).await.unwrap();
        b.wait_until(
            "the account filter",
            "[...document.querySelectorAll('#audit-user option')].some((o) => o.value === 'sergio')",
            WAIT,
        )
        .await
        .unwrap();
        b.eval(
            "const s = document.getElementById('audit-user'); s.value = 'sergio'; return true;",
            vec![],
        )
        .await
        .unwrap();
        b.click("#audit-filter button[type=submit]").await.unwrap();
        b.wait_for_text("#status", "of sergio", WAIT)
            .await
            .expect("sergio's lines");
        let rows = b
            .eval(
                "return [...document.querySelectorAll('#audit-rows tr')].map((tr) => [tr.dataset.user, tr.dataset.action]);",
                vec![],
            )
            .await
            .unwrap();
        let rows: Vec<(String, String)> = serde_json::from_value(rows).unwrap();
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|(u, _)| u == "sergio"), "{rows:?}");
        assert_eq!(rows[0].1, "logout", "newest first: {rows:?}");
        assert!(rows.iter().any(|(_, a)| a == "login"), "{rows:?}");
        assert!(
            rows.iter().any(|(_, a)| a == "forbidden"),
            "sergio's visit to the accounts page: {rows:?}"
        );
        check_page(&b, "the audit page").await;
        b.screenshot(&format!("accounts-{viewport}-04-audit"))
            .await
            .unwrap();
        b.click("form.logout button").await.unwrap();
        b.wait_for("#user", WAIT).await.unwrap();
        b.close().await.expect("browser closes");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
