//! A technician's day, on the real binary against a real CRM endpoint: `kiosk provision`
//! (flags, a wrong code, re-provisioning that first sends the old identity's unsynced events),
//! `kiosk run` under a fake systemd (READY, watchdog pets, STOPPING), `kiosk status` live and
//! stopped, `/metrics`, and `kiosk selftest` with its test ticket's QR read back by zbarimg.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crm_endpoint::SharedDb;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

fn kiosk() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiosk"))
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP forwarder to the endpoint that can be switched off (connections dropped at once).
struct Link {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
}

impl Link {
    async fn start(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    break;
                };
                if !flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(target).await {
                        let _ = copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        Link { addr, up }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

struct Crm {
    db: SharedDb,
    addr: SocketAddr,
}

impl Crm {
    async fn start(dir: &Path) -> Crm {
        let url = format!("sqlite://{}", dir.join("crm.db").display());
        let db = crm_endpoint::db::open(&url).await.unwrap();
        crm_endpoint::seed_demo(&db).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = crm_endpoint::ServeConfig {
            db: db.clone(),
            admin_token: Some("field-ops-test-admin-token-0123456789".into()),
            tls: None,
        };
        tokio::spawn(async move {
            crm_endpoint::serve(config, listener, std::future::pending())
                .await
                .unwrap();
        });
        Crm { db, addr }
    }

    async fn code(&self) -> String {
        crm_endpoint::api::issue_enroll_code(
            &self.db,
            crm_endpoint::DEMO_STORE_ID,
            Duration::from_secs(600),
        )
        .await
        .unwrap()
        .0
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The shipped example with this test's ports and no LAN listener.
fn seed_site_config(dir: &Path, port: u16) -> PathBuf {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let example = include_str!("../config/site.example.toml")
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .lines()
        .filter(|l| !l.starts_with("staff_listen"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(etc.join("site.toml"), example).unwrap();
    etc
}

async fn run_cmd(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn provision_cmd(etc: &Path, data: &Path, endpoint: &str, code: &str) -> Command {
    let mut cmd = kiosk();
    cmd.args([
        "provision",
        "--non-interactive",
        "--no-selftest",
        "--profile",
        "simulated",
    ])
    .args([
        "--endpoint",
        endpoint,
        "--code",
        code,
        "--staff-pin",
        "432105",
    ])
    .arg("--config-dir")
    .arg(etc)
    .arg("--data-dir")
    .arg(data);
    cmd
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn kiosk_id_of(site: &Path) -> String {
    let text = std::fs::read_to_string(site).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    doc["kiosk"]["id"].as_str().unwrap().to_owned()
}

/// `kiosk run` with a notify socket, as systemd starts it.
struct Service {
    child: Child,
    notify: UnixDatagram,
}

impl Service {
    fn start(site: &Path, dir: &Path) -> Service {
        let sock = dir.join(format!("notify-{}.sock", rand_suffix()));
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let child = kiosk()
            .args(["run", "--config"])
            .arg(site)
            .env("NOTIFY_SOCKET", &sock)
            .env("WATCHDOG_USEC", "300000")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Service { child, notify }
    }

    /// Messages until one contains `want` (all of them returned).
    fn wait_for(&self, want: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = msg.contains(want);
                seen.push(msg);
                if done {
                    return seen;
                }
            }
        }
        panic!("no {want:?} from the kiosk within 60 s; got {seen:?}");
    }

    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let stopping = self.wait_for("STOPPING=1");
        (self.child.wait().unwrap(), stopping)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_run_status_and_reprovision_keep_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let crm = Crm::start(dir.path()).await;
    let link = Link::start(crm.addr).await;
    let port = free_port();
    let etc = seed_site_config(dir.path(), port);
    let site = etc.join("site.toml");
    let data = dir.path().join("data");

    // A wrong code is refused and spends nothing, changes nothing.
    let before = std::fs::read_to_string(&site).unwrap();
    let out = run_cmd(provision_cmd(&etc, &data, &link.url(), "WRONG-CODE")).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("refused the enrollment code"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&site).unwrap(), before);
    assert!(!data.join("credentials.toml").exists());

    // Provision through the link.
    let out = run_cmd(provision_cmd(&etc, &data, &link.url(), &crm.code().await)).await;
    assert!(out.status.success(), "{}", text(&out));
    let first_id = kiosk_id_of(&site);
    assert_eq!(mode(&site), 0o600);
    assert_eq!(mode(&data.join("credentials.toml")), 0o600);
    let written = std::fs::read_to_string(&site).unwrap();
    assert!(
        written.contains("# Site configuration of one kiosk"),
        "comments are kept"
    );
    assert!(written.contains("hardware_profile = \"simulated\""));
    assert!(written.contains(&format!(
        "staff_pin_sha256 = \"{}\"",
        kiosk::ui::pin_digest("432105")
    )));
    assert!(
        !written.contains("432105\""),
        "the PIN itself is not stored"
    );
    let out = run_cmd({
        let mut c = kiosk();
        c.arg("check-config").arg(&site);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out));

    // The CRM is unreachable while the kiosk runs: its events wait in the journal.
    link.set(false);
    let service = Service::start(&site, dir.path());
    let ready = service.wait_for("READY=1");
    assert!(
        ready.last().unwrap().contains("STATUS=serving"),
        "{ready:?}"
    );
    for _ in 0..3 {
        service.wait_for("WATCHDOG=1");
    }

    let out = run_cmd({
        let mut c = kiosk();
        c.args(["status", "--json", "--config"]).arg(&site);
        c
    })
    .await;
    let status: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(status["running"], true);
    assert_eq!(status["kiosk_id"], first_id.as_str());
    assert_eq!(status["loops"]["healthy"], true);
    assert!(status["journal"]["pending"].as_u64().unwrap() >= 1);
    for d in status["devices"].as_array().unwrap() {
        assert_eq!(d["state"], "ok", "{d}");
    }
    assert_eq!(
        out.status.code(),
        Some(1),
        "the CRM is unreachable: a problem"
    );
    let out = run_cmd({
        let mut c = kiosk();
        c.args(["status", "--config"]).arg(&site);
        c
    })
    .await;
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("RUNNING"), "{screen}");
    assert!(screen.contains("the CRM is unreachable"), "{screen}");

    kiosk_sync::install_crypto_provider();
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kiosk_loops_healthy 1"), "{metrics}");
    assert!(
        metrics.contains("kiosk_sync_link{link=\"offline\"} 1"),
        "{metrics}"
    );

    // The self-test while the kiosk runs reports its live devices and leaves them alone.
    let out = run_cmd({
        let mut c = kiosk();
        c.args(["selftest", "--non-interactive", "--config"])
            .arg(&site);
        c
    })
    .await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("ok (live)"), "{table}");
    assert!(
        table.contains("the kiosk is running (it owns the devices)"),
        "{table}"
    );
    assert!(table.contains("CRM unreachable"), "{table}");
    assert_eq!(out.status.code(), Some(1), "{table}");

    let (exit, _) = service.terminate();
    assert!(exit.success(), "{exit:?}");

    // Stopped: the status comes from the files.
    let out = run_cmd({
        let mut c = kiosk();
        c.args(["status", "--json", "--config"]).arg(&site);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stopped: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(stopped["running"], false);
    let pending = stopped["journal"]["pending"].as_u64().unwrap();
    assert!(pending >= 1);

    // Re-provisioning directly while the old identity's CRM link is down: refused, nothing
    // changes (its events could not be sent).
    let code2 = crm.code().await;
    let mut cmd = provision_cmd(&etc, &data, &crm.url(), &code2);
    cmd.args(["--drain-timeout-s", "2"]);
    let out = run_cmd(cmd).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("could not be sent"), "{}", text(&out));
    assert_eq!(kiosk_id_of(&site), first_id);

    // With the link back, they are sent with the old credentials first, then the kiosk
    // enrolls anew; the code was not spent by the refused attempt.
    link.set(true);
    let events_before = crm.db.event_count().await.unwrap();
    let out = run_cmd(provision_cmd(&etc, &data, &crm.url(), &code2)).await;
    assert!(out.status.success(), "{}", text(&out));
    let out_text = text(&out);
    assert!(
        out_text.contains(&format!(
            "replaced kiosk {first_id}: {pending} unsynced events sent first, 0 left"
        )),
        "{out_text}"
    );
    let second_id = kiosk_id_of(&site);
    assert_ne!(second_id, first_id);
    assert_eq!(
        crm.db.event_count().await.unwrap(),
        events_before + pending,
        "every event of the old identity reached the CRM once"
    );

    // The self-test on the stopped, re-provisioned kiosk: its test ticket names it.
    let ticket = dir.path().join("selftest.bin");
    let out = run_cmd({
        let mut c = kiosk();
        c.args(["selftest", "--non-interactive", "--config"])
            .arg(&site)
            .arg("--ticket-copy")
            .arg(&ticket);
        c
    })
    .await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    for row in [
        "config",
        "credentials",
        "journal",
        "card reader",
        "scanner",
        "printer",
        "crm",
        "test ticket",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{row} ")))
            .unwrap_or_else(|| panic!("no {row} row in\n{table}"));
        assert!(line.contains("PASS"), "{line}\n{table}");
    }
    assert!(matches!(out.status.code(), Some(0 | 2)), "{}", text(&out));
    let png = dir.path().join("selftest.png");
    let out = run_cmd({
        let mut c = kiosk();
        c.args(["ticket-preview", "--out"])
            .arg(&png)
            .arg("--escpos")
            .arg(&ticket);
        c
    })
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run_cmd({
        let mut c = Command::new("zbarimg");
        c.args(["--quiet", "--raw"]).arg(&png);
        c
    })
    .await;
    let qr = String::from_utf8_lossy(&out.stdout);
    assert!(
        qr.contains(&format!("kiosk-selftest {second_id}")) && qr.contains("printer=P"),
        "{qr}"
    );
}

/// Polls a JSON answer of the kiosk (`path` on its UI port) until `pred` holds.
async fn json_until(
    port: u16,
    path: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let value: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if pred(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never showed {what}; last: {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The kiosk's live status (`kiosk status --json`'s source) once `pred` holds.
async fn status_until(
    port: u16,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    json_until(port, "/api/status", what, timeout, pred).await
}

/// The kiosk screen's view once `pred` holds.
async fn view_until(
    port: u16,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    json_until(port, "/api/kiosk/view", what, Duration::from_secs(30), pred).await
}

/// A bench kiosk: `kiosk run` on the simulated profile, provisioned against a real CRM, is
/// driven from its simulator panel (a known test card greets its customer, the ticket comes out
/// as a PNG), the panel answers only loopback names, and the screen watchdog sees the kiosk
/// page come and go: absent in the status and at the CRM, a restart request for systemd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_kiosk_is_driven_from_its_panel_and_its_screen_is_watched() {
    let dir = tempfile::tempdir().unwrap();
    let crm = Crm::start(dir.path()).await;
    let port = free_port();
    let etc = seed_site_config(dir.path(), port);
    let site = etc.join("site.toml");
    let data = dir.path().join("data");
    let out = run_cmd(provision_cmd(&etc, &data, &crm.url(), &crm.code().await)).await;
    assert!(out.status.success(), "{}", text(&out));
    // The watchdog at its shortest, and Ana's card (a demo customer of the seeded CRM) as a
    // known test card.
    let panel_port = free_port();
    let mut config = std::fs::read_to_string(&site)
        .unwrap()
        .replace("screen_watchdog_s = 90", "screen_watchdog_s = 10");
    config.push_str(&format!(
        "\n[bench]\npanel_listen = \"127.0.0.1:{panel_port}\"\ncards = [{{ label = \"Ana (test card)\", uid = \"04:A1:B2:C3\" }}]\n"
    ));
    std::fs::write(&site, config).unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();

    let sock = dir.path().join("notify-bench.sock");
    let notify = UnixDatagram::bind(&sock).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let child = kiosk()
        .args(["run", "--config"])
        .arg(&site)
        .env("NOTIFY_SOCKET", &sock)
        .env("RUNTIME_DIRECTORY", &run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let service = Service { child, notify };
    let ready = service.wait_for("READY=1");
    let status_line = ready.last().unwrap().clone();
    assert!(
        status_line.contains(&format!(
            "simulator panel on http://127.0.0.1:{panel_port}/"
        )),
        "{status_line}"
    );
    assert!(status_line.contains("printed tickets in"), "{status_line}");

    kiosk_sync::install_crypto_provider();
    let http = reqwest::Client::new();
    let panel = |path: &str| format!("http://127.0.0.1:{panel_port}{path}");
    let page = http
        .get(panel("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Bench kiosk: simulator control panel"),
        "{page}"
    );
    assert!(
        !page.contains("Network to the CRM"),
        "a bench kiosk has no switch to cut"
    );
    assert!(
        !page.contains("04A1B2C3") && !page.contains("04:A1"),
        "the UID is never shown"
    );
    let state: serde_json::Value = http
        .get(panel("/api/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["customers"], serde_json::json!(["Ana (test card)"]));
    assert_eq!(state["network"], serde_json::Value::Null);

    // Only loopback names: a page of another site (DNS rebinding) is refused.
    let res = http
        .get(panel("/api/state"))
        .header("host", "evil.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::MISDIRECTED_REQUEST);
    let res = http
        .post(panel("/api/network"))
        .json(&serde_json::json!({"up": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::CONFLICT);
    let res = http
        .post(panel("/api/kiosks/1/card"))
        .json(&serde_json::json!({"action": "uid", "uid": "04A1B2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("4, 7 or 10 bytes"));

    // A browser opens the kiosk page: the screen has its client.
    let stream = http
        .get(format!("http://127.0.0.1:{port}/api/kiosk/stream"))
        .send()
        .await
        .unwrap();
    assert!(stream.status().is_success());
    status_until(port, "one screen client", Duration::from_secs(10), |s| {
        s["screen"]["clients"] == 1
    })
    .await;

    // Ana taps her test card on the panel: greeted by name; she takes a ticket.
    let tap = http
        .post(panel("/api/kiosks/1/card"))
        .json(&serde_json::json!({"action": "customer", "index": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(tap.status(), reqwest::StatusCode::NO_CONTENT);
    let greeting = view_until(port, "Ana's greeting", |v| {
        v["body"]["screen"] == "greeting"
    })
    .await;
    assert_eq!(greeting["body"]["name"], "Ana", "{greeting}");
    http.post(panel("/api/kiosks/1/card"))
        .json(&serde_json::json!({"action": "remove"}))
        .send()
        .await
        .unwrap();
    let touch = |body: serde_json::Value| {
        http.post(format!("http://127.0.0.1:{port}/api/kiosk/touch"))
            .json(&body)
            .send()
    };
    touch(serde_json::json!({"action": "continue"}))
        .await
        .unwrap();
    view_until(port, "the services", |v| {
        v["body"]["screen"] == "choose_service"
    })
    .await;
    touch(serde_json::json!({"action": "choose_service", "service": "A"}))
        .await
        .unwrap();
    let goodbye = view_until(port, "a printed ticket", |v| {
        v["body"]["screen"] == "goodbye" && v["body"]["printed"] == true
    })
    .await;
    let label = goodbye["body"]["turn"]["label"]
        .as_str()
        .unwrap()
        .to_owned();
    let tickets = data.join("tickets");
    let pngs: Vec<String> = std::fs::read_dir(&tickets)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let png = pngs
        .iter()
        .find(|n| n.starts_with(&label) && n.ends_with(".png"))
        .unwrap_or_else(|| panic!("no PNG of {label} in {pngs:?}"));
    // The panel shows it, and scanning "the last ticket" works from there.
    let state: serde_json::Value = http
        .get(panel("/api/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        state["kiosks"][0]["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == png.as_str()),
        "{state}"
    );
    let picture = http
        .get(panel(&format!("/kiosks/1/tickets/{png}")))
        .send()
        .await
        .unwrap();
    assert_eq!(picture.headers()["content-type"], "image/png");

    // The browser goes away: after the watchdog's 10 s the screen is absent, in the status and
    // at the CRM, and systemd is asked to restart the browser.
    drop(stream);
    let status = status_until(
        port,
        "the screen reported absent",
        Duration::from_secs(60),
        |s| {
            s["devices"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["device"] == "screen" && d["state"] == "absent")
        },
    )
    .await;
    assert_eq!(status["screen"]["clients"], 0, "{status}");
    assert!(
        status["screen"]["restarts_requested"].as_u64().unwrap() >= 1,
        "{status}"
    );
    let request = std::fs::read_to_string(run_dir.join("screen-restart")).unwrap();
    assert!(
        request.starts_with("no browser has shown the kiosk page for 1"),
        "{request}"
    );
    let out = run_cmd({
        let mut c = kiosk();
        c.args(["status", "--config"]).arg(&site);
        c
    })
    .await;
    let screen_text = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen_text.contains("NO BROWSER ON THE KIOSK PAGE"),
        "{screen_text}"
    );
    assert!(
        screen_text.contains("screen is absent: no browser has shown the kiosk page"),
        "{screen_text}"
    );
    assert_eq!(out.status.code(), Some(1));
    // The self-test knows a bench kiosk has no kiosk browser of its own.
    let out = run_cmd({
        let mut c = kiosk();
        c.args(["selftest", "--non-interactive", "--config"])
            .arg(&site);
        c
    })
    .await;
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("screen "))
        .unwrap_or_else(|| panic!("no screen row in\n{table}"));
    assert!(row.contains("skip") && row.contains("bench kiosk"), "{row}");
    // The CRM's dashboard shows it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let dash = crm
            .db
            .dashboard(crm_endpoint::db::DashboardQuery::new(
                crm_endpoint::DEMO_STORE_ID,
                now_ms - 3_600_000,
                now_ms,
            ))
            .await
            .unwrap();
        let screen = dash
            .kiosks
            .iter()
            .flat_map(|k| &k.devices)
            .find(|d| d.device == "screen");
        if let Some(d) = screen
            && d.status == "absent"
        {
            assert!(
                d.reason.as_deref().unwrap().contains("browser restart"),
                "{d:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the CRM never showed the screen absent: {screen:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // A browser comes back: ok again.
    let _again = http
        .get(format!("http://127.0.0.1:{port}/api/kiosk/stream"))
        .send()
        .await
        .unwrap();
    status_until(port, "the screen ok again", Duration::from_secs(30), |s| {
        s["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["device"] == "screen" && d["state"] == "ok")
    })
    .await;
    let (exit, _) = service.terminate();
    assert!(exit.success(), "{exit:?}");
}
