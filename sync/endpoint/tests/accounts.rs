//! Console accounts and roles over HTTP (issue 21, docs/CONSOLE.md "Accounts and roles"), on
//! SQLite and on a throwaway PostgreSQL: each role logs in through the form and gets exactly its
//! stores from every scoped page and API, and a 403 (never data) for the rest; analysts write
//! nothing; only HQ admins reach accounts and the audit log; logins, failures, writes and
//! refusals are in the audit log under the account; logout, disabling and a new password end
//! sessions at once; the CLI makes the first HQ admin with the password read from stdin.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{ADMIN, Backend, Harness};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_crm-endpoint");

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The stores `east` (ES-MD), `north` (ES-MD) and `south` (ES-AN), placed through the admin API
/// with the token, and one account per role, made through the admin API too.
async fn set_up(h: &Harness) {
    h.db.upsert_store(crm_endpoint::db::StoreRecord {
        id: "east".into(),
        name: "Tienda Este".into(),
    })
    .await
    .unwrap();
    for (store, region, lat, lon) in [
        ("north", "ES-MD", 40.45, -3.69),
        ("east", "ES-MD", 40.42, -3.65),
        ("south", "ES-AN", 37.39, -5.98),
    ] {
        let r = h
            .admin(Method::PUT, &format!("/v1/admin/stores/{store}/location"))
            .json(&json!({ "region": region, "latitude": lat, "longitude": lon }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }
    for body in [
        json!({ "name": "hq", "role": "hq-admin", "password": "hq password 123" }),
        json!({ "name": "mad", "role": "regional-manager", "region": "ES-MD", "password": "mad password 123" }),
        json!({ "name": "sur", "role": "store-manager", "store_id": "south", "password": "sur password 123" }),
        json!({ "name": "ana", "role": "analyst", "password": "ana password 123" }),
    ] {
        let r = h
            .admin(Method::POST, "/v1/admin/accounts")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}

/// Logs in through the form as `user`; the session cookie (`name=value`).
async fn login(h: &Harness, user: &str, password: &str) -> String {
    let resp = no_redirects()
        .post(format!("{}/dashboard/login", h.base))
        .form(&[("user", user), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "login of {user}");
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(password), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("crm_dashboard=u1."), "{cookie}");
    cookie
}

async fn get(h: &Harness, cookie: &str, path: &str) -> reqwest::Response {
    h.client
        .get(format!("{}{path}", h.base))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

async fn send(h: &Harness, cookie: &str, method: Method, path: &str, body: Value) -> StatusCode {
    h.client
        .request(method, format!("{}{path}", h.base))
        .header(COOKIE, cookie)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn each_role_gets_exactly_its_stores_and_a_403_for_the_rest(b: Backend) {
    let h = Harness::start(b).await;
    set_up(&h).await;
    let all = ["east", "north", "south"];
    let roles: [(&str, &str, &[&str], bool, &str); 4] = [
        ("hq", "hq password 123", &all, true, "hq-admin"),
        (
            "mad",
            "mad password 123",
            &["east", "north"],
            true,
            "regional-manager",
        ),
        ("sur", "sur password 123", &["south"], true, "store-manager"),
        ("ana", "ana password 123", &all, false, "analyst"),
    ];
    for (user, password, seen, writes, role) in roles {
        let cookie = login(&h, user, password).await;
        let me: Value = get(&h, &cookie, "/dashboard/api/me")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["user"], user);
        assert_eq!(me["role"], role);
        assert_eq!(me["writes"], writes);
        // The store picker.
        let stores: Value = get(&h, &cookie, "/dashboard/api/stores")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(ids(&stores), seen, "{user}'s store picker");
        // The fleet view.
        let fleet: Value = get(&h, &cookie, "/dashboard/api/fleet")
            .await
            .json()
            .await
            .unwrap();
        let mut fleet_ids: Vec<&str> = fleet["stores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["store_id"].as_str().unwrap())
            .collect();
        fleet_ids.sort_unstable();
        assert_eq!(fleet_ids, seen, "{user}'s fleet view");
        // The regions map: its stores, and regions made of them only.
        let map: Value = get(&h, &cookie, "/dashboard/api/map?days=7")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(ids(&map["stores"]), seen, "{user}'s map");
        // The campaigns page's view: readable by every role.
        assert_eq!(
            get(&h, &cookie, "/dashboard/api/campaigns").await.status(),
            200,
            "{user} reads the campaigns page's view"
        );
        for store in all {
            let inside = seen.contains(&store);
            for path in [
                format!("/dashboard/api/stores/{store}"),
                format!("/dashboard/api/stores/{store}/queue"),
                format!("/dashboard/api/stores/{store}/presence"),
                format!("/dashboard/events?store={store}"),
                format!("/v1/stats?store={store}"),
                format!("/v1/admin/stores/{store}/config"),
            ] {
                let r = get(&h, &cookie, &path).await;
                let status = r.status();
                if inside {
                    assert_eq!(status, 200, "{user} GET {path}");
                } else {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{user} GET {path}");
                    let body = r.text().await.unwrap();
                    assert!(
                        !body.contains("Tienda"),
                        "{user} GET {path}: a refusal carries no data: {body}"
                    );
                }
            }
            // Writes: a store's configuration and an enrollment code.
            let config = send(
                &h,
                &cookie,
                Method::PUT,
                &format!("/v1/admin/stores/{store}/config"),
                json!({ "counters": 2 }),
            )
            .await;
            let code = send(
                &h,
                &cookie,
                Method::POST,
                "/v1/admin/enroll-codes",
                json!({ "store_id": store }),
            )
            .await;
            let expected = if inside && writes {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            // Reports: a store outside the scope is not among the user's (404, no data).
            let report = get(
                &h,
                &cookie,
                &format!("/dashboard/reports.csv?table=queue&store={store}"),
            )
            .await;
            let status = report.status();
            let body = report.text().await.unwrap();
            if inside {
                assert_eq!(status, 200, "{user}'s report of {store}: {body}");
            } else {
                assert_eq!(status, 404, "{user}'s report of {store}: {body}");
                assert!(!body.contains("Tienda"), "{user}: {body}");
            }
            assert_eq!(config, expected, "{user} PUT {store}'s configuration");
            assert_eq!(code, expected, "{user} POST an enrollment code for {store}");
        }
        // A store that does not exist: 404 for who sees everything, 403 for the others.
        let nowhere = get(&h, &cookie, "/dashboard/api/stores/nowhere")
            .await
            .status();
        let expected = if seen.len() == all.len() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(nowhere, expected, "{user}: an unknown store");
        // HQ admins only: accounts, the audit log, campaigns, releases, stores' places, customers.
        let hq = role == "hq-admin";
        let only_hq = if hq { 200 } else { 403 };
        for path in [
            "/v1/admin/accounts",
            "/v1/admin/audit",
            "/dashboard/accounts",
            "/dashboard/audit",
            "/v1/admin/releases",
            "/dashboard/forwarding",
            "/dashboard/api/forwarding",
        ] {
            let r = get(&h, &cookie, path).await;
            let status = r.status();
            assert_eq!(
                status,
                only_hq,
                "{user} GET {path}: {}",
                r.text().await.unwrap()
            );
        }
        assert_eq!(
            get(&h, &cookie, "/v1/admin/campaigns").await.status(),
            200,
            "{user} reads the campaigns"
        );
        for (method, path, body) in [
            (
                Method::POST,
                "/v1/admin/accounts",
                json!({ "name": format!("new-{user}"), "role": "analyst", "password": "a new password 1" }),
            ),
            (
                Method::PUT,
                "/v1/admin/stores/south/location",
                json!({ "region": "ES-AN", "latitude": 37.39, "longitude": -5.98 }),
            ),
            (
                Method::PUT,
                "/v1/admin/rollouts/1.2.3",
                json!({ "percent": 10, "max_failures": 1 }),
            ),
            (Method::POST, "/v1/admin/segments/recompute", json!({})),
            // Campaign edits from the console (an empty body: 400 for an HQ admin).
            (Method::PUT, "/dashboard/api/campaigns/spring", json!({})),
            (
                Method::POST,
                "/dashboard/api/forwarding/replay",
                json!({ "endpoint_id": "none" }),
            ),
        ] {
            let status = send(&h, &cookie, method.clone(), path, body).await;
            if hq {
                assert_ne!(status, StatusCode::FORBIDDEN, "{user} {method} {path}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{user} {method} {path}");
            }
        }
    }
    // The admin token keeps working for scripts: everything, as before.
    let r = h
        .admin(Method::GET, "/v1/stats?store=south")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.stop().await;
}

async fn logins_writes_and_refusals_are_audited_and_sessions_end_at_once(b: Backend) {
    let h = Harness::start(b).await;
    set_up(&h).await;
    let client = no_redirects();
    // A wrong password: 403, no cookie, the account's failure in the audit log.
    let wrong = client
        .post(format!("{}/dashboard/login", h.base))
        .form(&[("user", "sur"), ("password", "not the password")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Wrong user name or password")
    );
    // An unknown name answers the same.
    let unknown = client
        .post(format!("{}/dashboard/login", h.base))
        .form(&[("user", "nobody"), ("password", "not the password")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::FORBIDDEN);

    let sur = login(&h, "sur", "sur password 123").await;
    assert_eq!(
        send(
            &h,
            &sur,
            Method::PUT,
            "/v1/admin/stores/south/config",
            json!({ "counters": 4 })
        )
        .await,
        200
    );
    assert_eq!(
        get(&h, &sur, "/dashboard/api/stores/north").await.status(),
        403
    );
    let out = client
        .post(format!("{}/dashboard/logout", h.base))
        .header(COOKIE, &sur)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        get(&h, &sur, "/dashboard/api/stores").await.status(),
        403,
        "a logged-out session opens nothing, even if the cookie was kept"
    );

    // The audit log, as an HQ admin reads it: newest first, filtered by account.
    let hq = login(&h, "hq", "hq password 123").await;
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..100 {
        // Audit lines are written in the background: wait for the logout's.
        lines = get(&h, &hq, "/v1/admin/audit?user=sur")
            .await
            .json()
            .await
            .unwrap();
        if lines.iter().any(|l| l["action"] == "logout") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "logout",
            "forbidden",
            "PUT /v1/admin/stores/{store_id}/config",
            "login",
            "login_failed"
        ],
        "newest first: {lines:#?}"
    );
    assert!(lines.iter().all(|l| l["user"] == "sur"), "{lines:#?}");
    assert_eq!(lines[1]["target"], "north");
    assert_eq!(lines[2]["target"], "/v1/admin/stores/south/config");
    assert_eq!(lines[2]["outcome"], "ok");
    assert!(lines[3]["actor"].as_str().unwrap().starts_with("user:sur@"));
    let everyone = get(&h, &hq, "/v1/admin/audit?limit=1000")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        everyone.contains("nobody"),
        "the unknown name's failure is kept"
    );
    for password in ["sur password 123", "not the password", "hq password 123"] {
        assert!(!everyone.contains(password), "a password in the audit log");
    }
    // The database keeps an Argon2id hash, never the password.
    let (_, hash) =
        h.db.account_credentials("sur".into())
            .await
            .unwrap()
            .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    // Disabling ends the account's sessions at once; it cannot log in again until enabled.
    let sur = login(&h, "sur", "sur password 123").await;
    assert_eq!(
        send(
            &h,
            &hq,
            Method::PUT,
            "/v1/admin/accounts/sur",
            json!({ "disabled": true })
        )
        .await,
        200
    );
    assert_eq!(get(&h, &sur, "/dashboard/api/stores").await.status(), 403);
    let refused = client
        .post(format!("{}/dashboard/login", h.base))
        .form(&[("user", "sur"), ("password", "sur password 123")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        send(
            &h,
            &hq,
            Method::PUT,
            "/v1/admin/accounts/sur",
            json!({ "disabled": false })
        )
        .await,
        200
    );
    // A new password ends the sessions and replaces the old one.
    let sur = login(&h, "sur", "sur password 123").await;
    assert_eq!(
        send(
            &h,
            &hq,
            Method::PUT,
            "/v1/admin/accounts/sur/password",
            json!({ "password": "a brand new password" })
        )
        .await,
        204
    );
    assert_eq!(get(&h, &sur, "/dashboard/api/stores").await.status(), 403);
    login(&h, "sur", "a brand new password").await;
    // Bad input gets a clear error and changes nothing.
    let short = h
        .admin(Method::POST, "/v1/admin/accounts")
        .json(&json!({ "name": "x", "role": "analyst", "password": "short" }))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 400);
    assert!(short.text().await.unwrap().contains("at least 12"));
    let no_store = h
        .admin(Method::POST, "/v1/admin/accounts")
        .json(&json!({ "name": "x", "role": "store-manager", "password": "long enough password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_store.status(), 400);
    assert!(no_store.text().await.unwrap().contains("needs a store"));
    let twice = h
        .admin(Method::POST, "/v1/admin/accounts")
        .json(&json!({ "name": "sur", "role": "analyst", "password": "long enough password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 409);
    let accounts: Value = h
        .admin(Method::GET, "/v1/admin/accounts")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ana", "hq", "mad", "sur"]);
    assert!(
        !accounts.to_string().contains("argon2"),
        "no hash is listed"
    );
    h.stop().await;
}

on_both_databases!(
    each_role_gets_exactly_its_stores_and_a_403_for_the_rest,
    logins_writes_and_refusals_are_audited_and_sessions_end_at_once,
);

#[tokio::test]
async fn the_login_form_asks_for_a_name_once_an_account_exists_and_the_token_still_logs_in() {
    let h = Harness::start(Backend::Sqlite).await;
    let client = no_redirects();
    let page = client
        .get(format!("{}/dashboard", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("name=\"token\""),
        "no account yet: the token form"
    );
    assert!(page.contains("crm-endpoint user add"), "{page}");
    set_up(&h).await;
    let page = client
        .get(format!("{}/dashboard", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"user\"") && page.contains("name=\"password\""));
    assert!(
        !page.contains("name=\"token\""),
        "people log in by name now"
    );
    // Machines and existing scripts may still post the token (an HQ-level session).
    let token = client
        .post(format!("{}/dashboard/login", h.base))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::SEE_OTHER);
    h.stop().await;
}

#[tokio::test]
async fn the_cli_makes_the_first_hq_admin_with_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crm.db").display());
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .env("CRM_DB", &db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(
        &["user", "add", "boss", "--role", "hq-admin"],
        "first boss password\n",
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("account boss created (hq-admin)"), "{out}");
    let (ok, _, err) = run(&["user", "add", "weak", "--role", "analyst"], "short\n");
    assert!(!ok && err.contains("at least 12"), "{err}");
    let (ok, _, err) = run(
        &["user", "add", "who", "--role", "store-manager"],
        "long enough password\n",
    );
    assert!(!ok && err.contains("needs a store"), "{err}");
    let (ok, out, _) = run(&["user", "list"], "");
    assert!(ok);
    assert_eq!(out.trim(), "boss\thq-admin\tevery store\tactive");
    let (ok, out, err) = run(&["user", "disable", "boss"], "");
    assert!(ok, "{err}");
    assert!(out.contains("account boss disabled"));
    let (ok, out, _) = run(&["user", "list"], "");
    assert!(ok && out.contains("disabled"), "{out}");
    let (ok, out, err) = run(&["user", "passwd", "boss"], "second boss password\n");
    assert!(ok && out.contains("new password set"), "{out}{err}");
    let (ok, _, err) = run(&["user", "passwd", "ghost"], "second boss password\n");
    assert!(!ok && err.contains("no account named"), "{err}");
    // What the CLI stored verifies the password read from stdin.
    let database = crm_endpoint::db::open(&db).await.unwrap();
    let (account, hash) = database
        .account_credentials("boss".into())
        .await
        .unwrap()
        .unwrap();
    assert!(account.disabled);
    assert!(crm_endpoint::accounts::verify_password(
        "second boss password",
        &hash
    ));
    assert!(!crm_endpoint::accounts::verify_password(
        "first boss password",
        &hash
    ));
}
