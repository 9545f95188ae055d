//! Shared by the whole-kiosk campaigns (`kill9_kiosk.rs`, `security.rs`): runs the real `kiosk
//! demo` binary as a child process on a data directory, finds its addresses on stdout, and drives
//! customer journeys over HTTP the way the screen and the simulator panel do.

#![allow(dead_code)] // each test crate uses part of it

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a start-up, a screen or a sync may take before the test fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(60);

/// A `kiosk demo` child process.
pub struct DemoProcess {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:N` of the kiosk screen and its API.
    pub ui: String,
    /// `http://127.0.0.1:N` of the simulator panel.
    pub panel: String,
    /// `http://127.0.0.1:N` of the CRM endpoint.
    pub crm: String,
}

/// An HTTP client for the demo (reqwest is built without a default TLS provider).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// The `kiosk` binary Cargo built for this test.
pub fn kiosk_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiosk"))
}

fn url_of(line: &str, what: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix(what)?;
    let url = rest.split_whitespace().next()?;
    let url = url.strip_prefix("http://")?;
    let host = url.split('/').next()?;
    Some(format!("http://{host}"))
}

/// Starts `kiosk demo --data-dir DATA --port 0` with `env`, stderr to `stderr`, and returns at
/// once (for kills during start-up).
pub fn start_demo(data: &Path, env: &[(&str, &str)], stderr: Stdio) -> Child {
    let mut cmd = Command::new(kiosk_bin());
    cmd.args(["demo", "--data-dir"])
        .arg(data)
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the kiosk binary starts")
}

/// Starts the demo like [`start_demo`] and returns once it printed its addresses (it prints
/// them when everything listens), or `Err` with the child if it did not within `limit`.
pub async fn spawn_demo(
    data: &Path,
    env: &[(&str, &str)],
    stderr: Stdio,
    limit: Duration,
) -> Result<DemoProcess, Child> {
    let mut child = start_demo(data, env, stderr);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(limit, async {
        let (mut ui, mut panel, mut crm) = (None, None, None);
        while let Ok(Some(line)) = lines.next_line().await {
            ui = ui.or_else(|| url_of(&line, "kiosk screen"));
            panel = panel.or_else(|| url_of(&line, "simulator panel"));
            crm = crm.or_else(|| url_of(&line, "CRM API"));
            if line.starts_with("Ctrl-C") {
                break;
            }
        }
        Some((ui?, panel?, crm?))
    })
    .await;
    match found {
        Ok(Some((ui, panel, crm))) => {
            // Keep draining stdout so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok(DemoProcess {
                child,
                ui,
                panel,
                crm,
            })
        }
        _ => Err(child),
    }
}

impl DemoProcess {
    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running child has a pid") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM delivered");
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the demo stops within the limit after SIGTERM")
            .expect("wait for the demo")
    }

    /// SIGKILL, and reaps it.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("SIGKILL delivered");
        let _ = self.child.wait().await;
    }
}

/// Waits until the kiosk's outbox is empty (read from the journal file while the kiosk runs).
pub async fn wait_until_synced(journal: &Path) {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        let pending: i64 = rusqlite::Connection::open_with_flags(
            journal,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("journal opens read-only")
        .query_row(
            "SELECT count(*) FROM events WHERE acked_at IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} events never synced after the last restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a driver saw: turn labels the screen showed (only shown once `ticket_issued` is
/// journaled) and how many journeys reached their goodbye.
#[derive(Debug, Default)]
pub struct Seen {
    /// Labels on a printing or goodbye screen, with the round they were seen in.
    pub labels: BTreeSet<(usize, String)>,
    /// Journeys that reached the goodbye screen.
    pub goodbyes: u64,
    /// Touches and panel actions sent.
    pub actions: u64,
}

/// Drives journeys against one running demo until a request fails (the kiosk was killed) or
/// `journeys` goodbyes were reached.
pub struct Driver {
    /// HTTP client.
    pub http: reqwest::Client,
    /// Kiosk UI base URL.
    pub ui: String,
    /// Panel base URL.
    pub panel: String,
    /// Randomness (seeded by the caller: campaigns print their seed).
    pub rng: StdRng,
    /// What was seen, shared with the caller (survives the driver being aborted).
    pub seen: Arc<Mutex<Seen>>,
    /// The round this driver belongs to.
    pub round: usize,
    /// Also cut and restore the network at random.
    pub flap_network: bool,
    /// Demo customers whose cards may be tapped.
    pub customers: usize,
}

/// Why a driver stopped.
#[derive(Debug)]
pub enum Stopped {
    /// A request failed: the kiosk is gone.
    Gone(reqwest::Error),
    /// The number of journeys asked for was reached.
    Done,
    /// A screen did not change within [`WAIT`].
    Stuck(Value),
}

impl Driver {
    async fn post(&self, url: String, body: Value) -> Result<reqwest::StatusCode, reqwest::Error> {
        let r = self.http.post(url).json(&body).send().await?;
        let status = r.status();
        r.bytes().await?;
        self.seen.lock().unwrap().actions += 1;
        Ok(status)
    }

    async fn touch(&self, body: Value) -> Result<(), reqwest::Error> {
        self.post(format!("{}/api/kiosk/touch", self.ui), body)
            .await
            .map(drop)
    }

    async fn panel(&self, path: &str, body: Value) -> Result<(), reqwest::Error> {
        self.post(format!("{}{path}", self.panel), body)
            .await
            .map(drop)
    }

    async fn view(&self) -> Result<Value, reqwest::Error> {
        self.http
            .get(format!("{}/api/kiosk/view", self.ui))
            .send()
            .await?
            .json()
            .await
    }

    fn saw(&self, v: &Value) {
        if let Some(label) = v["body"]["turn"]["label"].as_str() {
            self.seen
                .lock()
                .unwrap()
                .labels
                .insert((self.round, label.to_owned()));
        }
    }

    /// Runs journeys: at the attract screen it picks one (anonymous, a demo customer's card, an
    /// unknown card that registers or not), then answers each screen as a customer would.
    pub async fn run(&mut self, journeys: u64) -> Stopped {
        let mut last_version = None;
        let mut since = tokio::time::Instant::now();
        let mut done = 0;
        let mut last_goodbye = None;
        loop {
            let v = match self.view().await {
                Ok(v) => v,
                Err(e) => return Stopped::Gone(e),
            };
            if last_version != Some(v["version"].clone()) {
                last_version = Some(v["version"].clone());
                since = tokio::time::Instant::now();
            } else if since.elapsed() > WAIT {
                return Stopped::Stuck(v);
            }
            self.saw(&v);
            let screen = v["body"]["screen"].as_str().unwrap_or_default().to_owned();
            let acted = match screen.as_str() {
                "attract" => {
                    if done >= journeys {
                        return Stopped::Done;
                    }
                    self.begin().await
                }
                "greeting" => {
                    let _ = self.panel("/api/card", json!({"action": "remove"})).await;
                    self.touch(json!({"action": "continue"})).await
                }
                "offer_registration" => {
                    let _ = self.panel("/api/card", json!({"action": "remove"})).await;
                    if self.rng.gen_bool(0.5) {
                        self.touch(json!({"action": "register"})).await
                    } else {
                        self.touch(json!({"action": "skip_registration"})).await
                    }
                }
                "registering" => {
                    let mut consents = vec!["profile"];
                    if self.rng.gen_bool(0.5) {
                        consents.push("marketing_email");
                    }
                    let n: u32 = self.rng.r#gen();
                    self.touch(
                        json!({"action": "submit_registration", "name": format!("Soak {n}"),
                        "email": format!("soak{n}@example.invalid"), "phone": null,
                        "consents": consents}),
                    )
                    .await
                }
                "choose_service" => {
                    let service = ["A", "B", "P"][self.rng.gen_range(0..3)];
                    let priority = service == "P";
                    self.touch(json!({"action": "choose_service", "service": service,
                        "priority": priority}))
                        .await
                }
                "goodbye" => {
                    let label = v["body"]["turn"]["label"].as_str().map(str::to_owned);
                    if label != last_goodbye {
                        done += 1;
                        self.seen.lock().unwrap().goodbyes += 1;
                        last_goodbye = label;
                    }
                    if self.rng.gen_bool(0.3) {
                        let score = self.rng.gen_range(0..=10);
                        let _ = self
                            .touch(json!({"action": "survey_score", "score": score}))
                            .await;
                        self.touch(json!({"action": "survey_reason", "reason": null}))
                            .await
                    } else {
                        self.touch(json!({"action": "done"})).await
                    }
                }
                "survey" => self.touch(json!({"action": "done"})).await,
                "error" => self.touch(json!({"action": "cancel"})).await,
                // identifying, issuing, printing: the kiosk is working.
                _ => Ok(()),
            };
            if let Err(e) = acted {
                return Stopped::Gone(e);
            }
            // Poll pace of a person at the screen; also lets the engine move on.
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }

    async fn begin(&mut self) -> Result<(), reqwest::Error> {
        if self.flap_network && self.rng.gen_bool(0.2) {
            let up = self.rng.gen_bool(0.6);
            self.panel("/api/network", json!({"up": up})).await?;
        }
        match self.rng.gen_range(0..10) {
            0..=3 => self.touch(json!({"action": "start"})).await,
            4..=7 if self.customers > 0 => {
                let index = self.rng.gen_range(0..self.customers);
                self.panel("/api/card", json!({"action": "customer", "index": index}))
                    .await
            }
            _ => self.panel("/api/card", json!({"action": "unknown"})).await,
        }
    }
}
