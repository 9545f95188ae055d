//! The shipped load balancer configuration (`deploy/haproxy/haproxy.cfg`) run by a real HAProxy
//! in front of two `crm-endpoint serve` replicas on one PostgreSQL (issue 20): requests go
//! through both replicas, a kiosk enrolls and delivers through the balancer over TLS, the
//! dashboard's cookie comes out `Secure`, and a replica taken down is routed around (no request
//! fails, its health check marks it down).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fleet::{FLEET_ADMIN, Replica};
use common::{Backend, fresh_url};
use crm_endpoint::db::StoreRecord;
use kiosk_protocol::wire::{EnrollRequest, EnrollResponse};
use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_crm-endpoint");
const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/haproxy/haproxy.cfg"
);

/// A free loopback port (bound and released; HAProxy binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Per server of the `replicas` backend: its status (`UP`, `DOWN`, ...) and 2xx answers.
/// Empty while HAProxy is not listening yet.
async fn servers(stats: &str) -> HashMap<String, (String, u64)> {
    let Ok(resp) = reqwest::get(format!("http://{stats}/stats;csv")).await else {
        return HashMap::new();
    };
    let csv = resp.text().await.unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (px, sv, status, ok) = (col("pxname"), col("svname"), col("status"), col("hrsp_2xx"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > ok && f[px] == "replicas" && f[sv].starts_with("crm"))
        .map(|f| {
            (
                f[sv].to_owned(),
                (f[status].to_owned(), f[ok].parse().unwrap_or(0)),
            )
        })
        .collect()
}

/// Waits until the servers' statuses are as `want` says.
async fn wait_status(stats: &str, want: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = servers(stats).await;
        if want
            .iter()
            .all(|(s, st)| now.get(*s).is_some_and(|v| v.0.starts_with(st)))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "servers never became {want:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_spreads_requests_over_both_replicas_and_routes_around_one_taken_down() {
    common::install_crypto();
    assert!(
        Command::new("haproxy").arg("-v").output().is_ok(),
        "this test runs the real HAProxy: apt-get install -y haproxy (scripts/apt-packages.txt)"
    );
    let (url, _) = fresh_url(Backend::Postgres).await;
    let db = crm_endpoint::db::open(&url).await.unwrap();
    db.upsert_store(StoreRecord {
        id: "north".into(),
        name: "Tienda Norte".into(),
    })
    .await
    .unwrap();
    // Behind a balancer every connection comes from its address; its X-Forwarded-For names the
    // client.
    let args = [
        "--max-connections",
        "2048",
        "--max-per-peer",
        "2048",
        "--trusted-proxy",
        "127.0.0.1",
    ];
    let (u1, u2) = (url.clone(), url.clone());
    let r1 = tokio::task::spawn_blocking(move || Replica::start(BIN, &u1, &args))
        .await
        .unwrap();
    let mut r2 = tokio::task::spawn_blocking(move || Replica::start(BIN, &u2, &args))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = dir.path().join("lb.pem");
    std::fs::write(
        &pem,
        format!("{}{}", cert.cert.pem(), cert.signing_key.serialize_pem()),
    )
    .unwrap();
    let (port, stats_port) = (free_port(), free_port());
    let stats = format!("127.0.0.1:{stats_port}");
    let _lb = Haproxy(
        Command::new("haproxy")
            .args(["-db", "-f", CONFIG])
            .env("CRM_LB_BIND", format!("127.0.0.1:{port}"))
            .env("CRM_LB_CERT", &pem)
            .env("CRM_LB_STATS", &stats)
            .env("CRM_REPLICA_1", r1.addr.to_string())
            .env("CRM_REPLICA_2", r2.addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_status(&stats, &[("crm1", "UP"), ("crm2", "UP")]).await;

    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap()])
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let lb = format!("https://localhost:{port}");

    // Through the balancer over TLS: health, an enrollment, the dashboard's login.
    for _ in 0..20 {
        let r = client.get(format!("{lb}/v1/health")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (code, _) = crm_endpoint::api::issue_enroll_code(&db, "north", Duration::from_secs(60))
        .await
        .unwrap();
    let r = client
        .post(format!("{lb}/v1/enroll"))
        .json(&EnrollRequest {
            code,
            hardware_profile: "simulated".into(),
            firmware_version: "0.1.0".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let _kiosk: EnrollResponse = r.json().await.unwrap();
    let login = client
        .post(format!("{lb}/dashboard/login"))
        .form(&[("token", FLEET_ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with("crm_dashboard=") && set_cookie.ends_with("; Secure"),
        "the session cookie crosses the Internet over TLS only: {set_cookie}"
    );
    let before = servers(&stats).await;
    assert!(
        before["crm1"].1 >= 10 && before["crm2"].1 >= 10,
        "round robin over both replicas: {before:?}"
    );

    // Replica 2 goes down: nothing fails; the balancer notices and sends everything to 1.
    r2.kill();
    for n in 0..30 {
        let r = client.get(format!("{lb}/v1/health")).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "request {n} after replica 2 died"
        );
    }
    wait_status(&stats, &[("crm1", "UP"), ("crm2", "DOWN")]).await;
    let mid = servers(&stats).await;
    for _ in 0..20 {
        let r = client.get(format!("{lb}/v1/health")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let after = servers(&stats).await;
    assert!(
        after["crm1"].1 >= mid["crm1"].1 + 20,
        "replica 1 served everything: {mid:?} then {after:?}"
    );
    assert_eq!(
        after["crm2"].1, mid["crm2"].1,
        "nothing went to the dead replica"
    );
    drop(r1);
}
