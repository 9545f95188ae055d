//! Safe updates, the firmware's side, end to end with a real `crm-endpoint` on loopback: the
//! kiosk (simulated hardware, the real runtime and its update worker) asks for its assignment
//! (`GET /v1/kiosks/{id}/release`), downloads the signed package in pieces in the background,
//! and writes the install request for the root helper only at a quiet moment:
//!
//! - a customer's journey is held open while the release is ready: no request however long it
//!   stays open; the journey ends, the attract screen stays quiet for `quiet_for`, then the
//!   request names the release;
//! - the helper's outcome (a rollback) reaches the CRM at the kiosk's next start and the rollout
//!   halts by itself (max 1 failure): the kiosk is offered nothing more and asks for nothing;
//! - a pin to the halted release brings it back to that one kiosk;
//! - a pin to an older release without the operator's signed pin is refused (not even
//!   downloaded); with it, the kiosk downloads it, keeps the pin beside it for the helper and
//!   asks for the install (docs/SECURITY.md: downgrades).
//!
//! The root helper's side (dpkg, trial, rollback, its own downgrade check) is
//! tests/tests/update_deb.rs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiosk::config::Config;
use kiosk::credentials::Credentials;
use kiosk::runtime::{self, RunOptions, Running};
use kiosk::updater::Settings;
use kiosk_journal::clock::SystemClock;
use kiosk_protocol::release::{PinManifest, ReleaseManifest, ReleaseSigningKey};
use kiosk_protocol::wire::EnrollRequest;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const ADMIN: &str = "update-path-test-admin-token-0123456789";
/// Generous: the machine may be loaded.
const WAIT: Duration = Duration::from_secs(90);
/// What the kiosk runs.
const RUNNING: &str = "1.0.0-1";
const NEW: &str = "1.1.0-1";
const OLD: &str = "0.9.0-1";
/// How long the attract screen must stay quiet before an install.
const QUIET: Duration = Duration::from_secs(2);

fn arch() -> &'static str {
    kiosk::update::deb_arch()
}

fn site_config(data: &Path, ui: SocketAddr, crm: &str) -> String {
    format!(
        r#"[kiosk]
store = "{store}"
store_name = "Update test"
locale = "es"
hardware_profile = "simulated"
data_dir = "{data}"
timezone = "Europe/Madrid"

[crm]
url = "{crm}"
backoff_base_ms = 100
backoff_cap_ms = 1000
feed_interval_s = 1

[queue]
opening_time = "00:00"

[[queue.services]]
letter = "A"
name = {{ es = "Caja", en = "Cashier" }}

[ui]
listen = "{ui}"
staff_pin_sha256 = "{pin}"
idle_timeout_s = 900

[privacy]
policy_version = "upd-1"
policy_text = {{ es = "Política", en = "Policy" }}
"#,
        store = crm_endpoint::DEMO_STORE_ID,
        data = data.display(),
        pin = kiosk::ui::pin_digest("4321"),
    )
}

struct Harness {
    dir: tempfile::TempDir,
    crm: String,
    http: reqwest::Client,
    credentials: Credentials,
    key: ReleaseSigningKey,
    packages: std::collections::HashMap<&'static str, Vec<u8>>,
}

impl Harness {
    fn kiosk_dir(&self) -> PathBuf {
        self.dir.path().join("kiosk")
    }

    fn settings(&self) -> Settings {
        let d = self.dir.path();
        Settings {
            key: d.join("release-key.pub"),
            downloads: d.join("downloads"),
            releases: d.join("releases"),
            request: d.join("run/update-request"),
            outcome: d.join("update-outcome.json"),
            check_every: Duration::from_secs(1),
            quiet_for: QUIET,
            window: None,
            running: Some(RUNNING.to_owned()),
        }
    }

    async fn start_kiosk(&self) -> (Running, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ui = listener.local_addr().unwrap();
        let site = self.dir.path().join("site.toml");
        std::fs::write(&site, site_config(&self.kiosk_dir(), ui, &self.crm)).unwrap();
        let kiosk = runtime::start(RunOptions {
            config: Config::load(&site).unwrap(),
            credentials: self.credentials.clone(),
            endpoint_url: Some(self.crm.clone()),
            ui_listener: Some(listener),
            staff_listener: None,
            store_listener: None,
            ticket_previews: None,
            clock: Arc::new(SystemClock),
            updates: Some(self.settings()),
        })
        .await
        .unwrap();
        (kiosk, format!("http://{ui}"))
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.crm))
            .header("x-admin-token", ADMIN)
    }

    async fn upload(&mut self, version: &'static str, seed: u8) {
        // Over two download pieces (1 MiB each), not a whole number of them.
        let bytes: Vec<u8> = (0..2_500_000_u32)
            .map(|i| (i.wrapping_mul(31) as u8) ^ seed)
            .collect();
        let signed = ReleaseManifest::of_package(version, arch(), bytes.as_slice())
            .unwrap()
            .sign(&self.key);
        let resp = self
            .admin(
                reqwest::Method::PUT,
                &format!("/v1/admin/releases/{version}/{}", arch()),
            )
            .header("x-release-signature", &signed.signature)
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        self.packages.insert(version, bytes);
    }

    async fn put(&self, path: &str, body: Value) {
        let resp = self
            .admin(reqwest::Method::PUT, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{path}: {}", resp.text().await.unwrap());
    }

    async fn releases(&self) -> Value {
        self.admin(reqwest::Method::GET, "/v1/admin/releases")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn download(&self, version: &str, ext: &str) -> PathBuf {
        self.dir
            .path()
            .join("downloads")
            .join(format!("kiosk_{version}_{}.{ext}", arch()))
    }

    fn request(&self) -> Option<String> {
        std::fs::read_to_string(self.settings().request).ok()
    }

    /// What the root helper does with a request: takes it away.
    fn take_request(&self) {
        let _ = std::fs::remove_file(self.settings().request);
    }
}

async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn touch(http: &reqwest::Client, ui: &str, body: Value) {
    let res = http
        .post(format!("{ui}/api/kiosk/touch"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "touch refused: {}", res.status());
}

async fn screen(http: &reqwest::Client, ui: &str) -> String {
    let v: Value = http
        .get(format!("{ui}/api/kiosk/view"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["body"]["screen"].as_str().unwrap_or_default().to_owned()
}

/// The rollout view's counts of `version` (GET /v1/admin/releases).
fn counts(list: &Value, version: &str) -> Value {
    list["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version)
        .unwrap_or_else(|| panic!("no release {version} in {list}"))["kiosks"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_downloads_its_release_waits_for_a_quiet_moment_and_a_failing_rollout_halts() {
    let dir = tempfile::tempdir().unwrap();
    let kiosk_dir = dir.path().join("kiosk");
    std::fs::create_dir_all(&kiosk_dir).unwrap();
    std::fs::create_dir_all(dir.path().join("run")).unwrap();

    // The real endpoint on SQLite, the demo store seeded.
    let db = crm_endpoint::db::open(&format!("sqlite://{}", dir.path().join("crm.db").display()))
        .await
        .unwrap();
    let seed = crm_endpoint::seed_demo(&db).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let crm = format!("http://{}", listener.local_addr().unwrap());
    let stop_crm = tokio_util::sync::CancellationToken::new();
    let serve = tokio::spawn(crm_endpoint::serve(
        crm_endpoint::ServeConfig {
            db: db.clone(),
            admin_token: Some(ADMIN.into()),
            tls: None,
        },
        listener,
        stop_crm.clone().cancelled_owned(),
    ));
    let answer = kiosk_sync::enroll(
        &crm,
        &kiosk_sync::TlsSettings::default(),
        &EnrollRequest {
            code: seed.enroll_code.clone(),
            hardware_profile: "simulated".into(),
            firmware_version: RUNNING.into(),
        },
    )
    .await
    .unwrap();
    let credentials = Credentials::from_enrollment(&crm, answer);
    let key = ReleaseSigningKey::generate();
    std::fs::write(dir.path().join("release-key.pub"), key.public().to_base64()).unwrap();
    let mut h = Harness {
        dir,
        crm,
        http: reqwest::Client::new(),
        credentials,
        key,
        packages: Default::default(),
    };
    let kiosk_id = h.credentials.kiosk_id.clone();
    // What the kiosk runs (its rollback package) and the new release.
    h.upload(RUNNING, 1).await;
    h.upload(NEW, 2).await;

    let (kiosk, ui) = h.start_kiosk().await;
    let http = h.http.clone();
    until("the attract screen", async || {
        (screen(&http, &ui).await == "attract").then_some(())
    })
    .await;

    // A customer starts a journey before the release is offered, and stays on it.
    touch(&http, &ui, json!({"action": "start"})).await;
    until("the service choice", async || {
        (screen(&http, &ui).await == "choose_service").then_some(())
    })
    .await;
    h.put(
        &format!("/v1/admin/rollouts/{NEW}"),
        json!({ "percent": 100, "max_failures": 1 }),
    )
    .await;

    // Downloaded in the background, with the running version's package for the rollback, both
    // exactly the uploaded bytes; the CRM's rollout view counts the kiosk as downloaded.
    until("the download of the release", async || {
        (h.download(NEW, "deb").exists() && h.download(RUNNING, "deb").exists()).then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read(h.download(NEW, "deb")).unwrap(),
        h.packages[NEW]
    );
    assert_eq!(
        std::fs::read(h.download(RUNNING, "deb")).unwrap(),
        h.packages[RUNNING]
    );
    until("the CRM counting the download", async || {
        let c = counts(&h.releases().await, NEW);
        (c["downloaded"] == 1).then_some(())
    })
    .await;

    // The journey stays open: however long, no install request (many quiet periods and checks).
    let held = Instant::now();
    while held.elapsed() < QUIET * 5 {
        assert_eq!(
            h.request(),
            None,
            "the install was asked for during a customer's journey"
        );
        assert_eq!(screen(&http, &ui).await, "choose_service");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The customer leaves: after QUIET on the attract screen, the request names the release.
    touch(&http, &ui, json!({"action": "cancel"})).await;
    let left = Instant::now();
    let asked = until("the install request", async || h.request()).await;
    assert_eq!(asked, format!("{NEW}\n"));
    assert!(
        left.elapsed() >= QUIET,
        "asked {:?} after the journey ended, before {QUIET:?} of quiet",
        left.elapsed()
    );

    // The helper installs it, the trial fails and it rolls back: its outcome file. The kiosk
    // (the previous version again) reports it at its start; one failure halts the rollout.
    h.take_request();
    kiosk.stop().await;
    std::fs::write(
        h.settings().outcome,
        json!({ "version": NEW, "previous": RUNNING, "result": "rolled_back",
                "reason": "its self-test failed: printer: absent", "at_ms": 1 })
        .to_string(),
    )
    .unwrap();
    let (kiosk, ui) = h.start_kiosk().await;
    let halted = until("the rollout to halt", async || {
        let list = h.releases().await;
        let r = list["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["version"] == NEW)
            .cloned()
            .unwrap();
        r["rollout"]["halted_ms"].is_i64().then_some(r)
    })
    .await;
    assert!(
        halted["rollout"]["halted_reason"]
            .as_str()
            .unwrap()
            .contains("1 kiosks rolled back or refused it (threshold 1)"),
        "{halted}"
    );
    assert_eq!(halted["kiosks"]["rolled_back"], 1, "{halted}");
    assert!(
        !h.settings().outcome.exists(),
        "the outcome was not taken in"
    );
    // Halted: the kiosk is offered nothing, so it asks for nothing (it stays quiet meanwhile).
    let quiet = Instant::now();
    while quiet.elapsed() < QUIET * 4 {
        assert_eq!(
            h.request(),
            None,
            "a halted rollout still reached the kiosk"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(screen(&http, &ui).await, "attract");

    // A pin brings the halted release back to this one kiosk.
    h.put(
        &format!("/v1/admin/kiosks/{kiosk_id}/pin"),
        json!({ "version": NEW }),
    )
    .await;
    let asked = until("the pinned install request", async || h.request()).await;
    assert_eq!(asked, format!("{NEW}\n"));
    h.take_request();
    until("the rollout view counting the pin", async || {
        (counts(&h.releases().await, NEW)["pinned"] == 1).then_some(())
    })
    .await;

    // A pin to an older release without the operator's signature: refused, not even downloaded.
    h.upload(OLD, 3).await;
    h.put(
        &format!("/v1/admin/kiosks/{kiosk_id}/pin"),
        json!({ "version": OLD }),
    )
    .await;
    let refused = Instant::now();
    while refused.elapsed() < QUIET * 4 {
        assert_eq!(
            h.request(),
            None,
            "a downgrade was asked for without a signed pin"
        );
        assert!(
            !h.download(OLD, "deb").exists(),
            "an unsigned downgrade was downloaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // With the operator's signed pin: downloaded, the pin kept beside it for the root helper
    // (which checks it again), and asked for.
    let not_after = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let signed = PinManifest {
        kiosk_id: kiosk_id.clone(),
        version: OLD.into(),
        not_after,
    }
    .sign(&h.key);
    h.put(
        &format!("/v1/admin/kiosks/{kiosk_id}/pin"),
        json!({ "version": OLD, "signed": signed }),
    )
    .await;
    let asked = until("the signed downgrade's install request", async || {
        h.request()
    })
    .await;
    assert_eq!(asked, format!("{OLD}\n"));
    assert_eq!(
        std::fs::read(h.download(OLD, "deb")).unwrap(),
        h.packages[OLD]
    );
    let kept: kiosk_protocol::release::SignedPin =
        serde_json::from_str(&std::fs::read_to_string(h.download(OLD, "pin")).unwrap()).unwrap();
    assert_eq!(kept, signed);
    // A pin signed for another kiosk is refused by the CRM at once.
    let other = PinManifest {
        kiosk_id: "someone-else".into(),
        version: OLD.into(),
        not_after,
    }
    .sign(&h.key);
    let resp = h
        .admin(
            reqwest::Method::PUT,
            &format!("/v1/admin/kiosks/{kiosk_id}/pin"),
        )
        .json(&json!({ "version": OLD, "signed": other }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);

    kiosk.stop().await;
    stop_crm.cancel();
    let _ = serve.await;
}
