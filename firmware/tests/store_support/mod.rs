//! A store of real kiosk processes (`kiosk run` on the simulated profile) sharing one queue, with
//! the real CRM endpoint in the test process and a LAN link per kiosk that a test can cut.
//!
//! Kiosk i reaches kiosk j through its own [`LanLink`] `links[i][j]`, a TCP relay in front of j's
//! store listener (each kiosk's `[store].kiosks` lists the same ids in the same order; only the
//! addresses differ). Cutting a link refuses new connections and drops open ones (the long
//! polls); stalling it accepts and never answers. [`Store::isolate`] cuts every link to and from
//! one kiosk: a LAN partition.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(60);

/// What a LAN link does to connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Relays both ways.
    Up,
    /// Refuses new connections (reset at once) and drops open ones.
    Down,
    /// Accepts connections and never answers (open ones are dropped when it starts).
    Stall,
}

/// A cuttable TCP relay in front of one kiosk's store listener.
pub struct LanLink {
    /// Where peers connect.
    pub addr: SocketAddr,
    state: Arc<Mutex<(Link, Vec<JoinHandle<()>>)>>,
    accept: JoinHandle<()>,
}

impl LanLink {
    /// A relay to `upstream`, up.
    pub async fn start(upstream: SocketAddr) -> LanLink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<(Link, Vec<JoinHandle<()>>)>> =
            Arc::new(Mutex::new((Link::Up, Vec::new())));
        let st = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mode = st.lock().unwrap().0;
                let task = match mode {
                    Link::Down => {
                        let _ = inbound.set_zero_linger();
                        drop(inbound);
                        continue;
                    }
                    Link::Stall => tokio::spawn(async move {
                        let mut sink = tokio::io::sink();
                        let _ = tokio::io::copy(&mut inbound, &mut sink).await;
                    }),
                    Link::Up => tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                            let _ = inbound.shutdown().await;
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }),
                };
                let mut guard = st.lock().unwrap();
                guard.1.retain(|t| !t.is_finished());
                guard.1.push(task);
            }
        });
        LanLink {
            addr,
            state,
            accept,
        }
    }

    /// Sets the link's behaviour; anything but `Up` drops the open connections.
    pub fn set(&self, link: Link) {
        let mut guard = self.state.lock().unwrap();
        guard.0 = link;
        if link != Link::Up {
            for t in guard.1.drain(..) {
                t.abort();
            }
        }
    }
}

impl Drop for LanLink {
    fn drop(&mut self) {
        self.accept.abort();
        self.set(Link::Down);
    }
}

/// The CRM endpoint on SQLite, in the test process.
pub struct Crm {
    /// Its database.
    pub db: crm_endpoint::SharedDb,
    /// `http://127.0.0.1:N`.
    pub url: String,
    stop: tokio_util::sync::CancellationToken,
}

impl Crm {
    /// Starts it, seeded with the demo store.
    pub async fn start(dir: &Path) -> Crm {
        let db = crm_endpoint::db::open(&format!("sqlite://{}", dir.join("crm.db").display()))
            .await
            .unwrap();
        crm_endpoint::seed_demo(&db).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(crm_endpoint::serve(
            crm_endpoint::ServeConfig {
                db: db.clone(),
                admin_token: None,
                tls: None,
            },
            listener,
            stop.clone().cancelled_owned(),
        ));
        Crm { db, url, stop }
    }
}

impl Drop for Crm {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A free loopback port (bound, then released for the kiosk to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One kiosk of the store.
pub struct KioskProc {
    /// Kiosk id from enrollment.
    pub id: String,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its site config.
    pub site: PathBuf,
    /// Screen and staff base URL.
    pub ui: String,
    /// Its store listener.
    pub store_addr: SocketAddr,
    child: Option<Child>,
}

impl KioskProc {
    /// Starts (or restarts) the process and waits until it answers.
    pub async fn start(&mut self, http: &reqwest::Client) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("kiosk.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kiosk"))
            .args(["run", "--config"])
            .arg(&self.site)
            .env("RUST_LOG", "info,kiosk::store=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = http.get(format!("{}/api/health", self.ui)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "kiosk {} did not start; see {}",
                self.id,
                self.dir.join("kiosk.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    /// The journal file.
    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal.db")
    }

    /// The kiosk's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kiosk.log")).unwrap_or_default()
    }
}

impl Drop for KioskProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A store: the CRM, N kiosk processes and their LAN links.
pub struct Store {
    /// The CRM.
    pub crm: Crm,
    /// The kiosks, in the store's order (the first is the sequencer).
    pub kiosks: Vec<KioskProc>,
    /// `links[i][j]`: how kiosk i reaches kiosk j (`None` on the diagonal).
    pub links: Vec<Vec<Option<LanLink>>>,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Staff session cookie per kiosk.
    cookies: Vec<Option<String>>,
    _dir: tempfile::TempDir,
}

const PIN: &str = "4321";

impl Store {
    /// Enrolls and starts `n` kiosks of the demo store.
    pub async fn start(n: usize) -> Store {
        Store::start_with(n, "").await
    }

    /// [`Store::start`] with `extra` TOML tables appended to every kiosk's site config.
    pub async fn start_with(n: usize, extra: &str) -> Store {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let crm = Crm::start(dir.path()).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        // Enroll every kiosk first: the store list needs their ids.
        let mut ids = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..n {
            let kdir = dir.path().join(format!("kiosk{}", i + 1));
            std::fs::create_dir_all(&kdir).unwrap();
            let (code, _) = crm_endpoint::api::issue_enroll_code(
                &crm.db,
                crm_endpoint::DEMO_STORE_ID,
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
            let answer = kiosk_sync::enroll(
                &crm.url,
                &kiosk_sync::TlsSettings::default(),
                &kiosk_protocol::wire::EnrollRequest {
                    code,
                    hardware_profile: "simulated".into(),
                    firmware_version: "test".into(),
                },
            )
            .await
            .unwrap();
            let credentials = kiosk::credentials::Credentials::from_enrollment(&crm.url, answer);
            credentials.save(&kdir.join("credentials.toml")).unwrap();
            ids.push(credentials.kiosk_id.clone());
            dirs.push(kdir);
        }
        // Store listeners, and a LAN link in front of each.
        let store_addrs: Vec<SocketAddr> = (0..n)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let mut links = Vec::new();
        for i in 0..n {
            let mut row = Vec::new();
            for (j, addr) in store_addrs.iter().enumerate() {
                row.push(if i == j {
                    None
                } else {
                    Some(LanLink::start(*addr).await)
                });
            }
            links.push(row);
        }
        let mut kiosks = Vec::new();
        for i in 0..n {
            let members: String = ids
                .iter()
                .enumerate()
                .map(|(j, id)| {
                    let addr = links[i][j].as_ref().map_or(store_addrs[j], |l| l.addr);
                    format!("  {{ id = \"{id}\", url = \"http://{addr}\" }},\n")
                })
                .collect();
            let ui = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let site = dirs[i].join("site.toml");
            std::fs::write(
                &site,
                site_config(&dirs[i], ui, &crm.url, store_addrs[i], &members) + extra,
            )
            .unwrap();
            kiosks.push(KioskProc {
                id: ids[i].clone(),
                dir: dirs[i].clone(),
                site,
                ui: format!("http://{ui}"),
                store_addr: store_addrs[i],
                child: None,
            });
        }
        let mut store = Store {
            crm,
            kiosks,
            links,
            http,
            cookies: vec![None; n],
            _dir: dir,
        };
        for k in &mut store.kiosks {
            k.start(&store.http).await;
        }
        store
    }

    /// Cuts kiosk `k` off from the others both ways (`Link::Down` or `Link::Stall`), or
    /// restores it (`Link::Up`): a LAN partition.
    pub fn isolate(&self, k: usize, link: Link) {
        for (i, row) in self.links.iter().enumerate() {
            for (j, l) in row.iter().enumerate() {
                if let Some(l) = l
                    && (i == k || j == k)
                {
                    l.set(link);
                }
            }
        }
    }

    /// Kiosk `k`'s staff session.
    pub async fn cookie(&mut self, k: usize) -> String {
        if let Some(c) = &self.cookies[k] {
            return c.clone();
        }
        let login = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/counter/login", self.kiosks[k].ui))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("pin={PIN}"))
            .send()
            .await
            .unwrap();
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        self.cookies[k] = Some(cookie.clone());
        cookie
    }

    /// A staff command at `counter` on kiosk `k`'s counter page; the answer's status and JSON.
    pub async fn staff(&mut self, k: usize, counter: &str, command: Value) -> (u16, Value) {
        let cookie = self.cookie(k).await;
        let r = self
            .http
            .post(format!("{}/api/counter/command", self.kiosks[k].ui))
            .header("cookie", cookie)
            .json(&json!({"counter": counter, "command": command}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Kiosk `k`'s counter board.
    pub async fn board(&mut self, k: usize) -> Value {
        let cookie = self.cookie(k).await;
        self.http
            .get(format!("{}/api/counter/board", self.kiosks[k].ui))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Resets the staff sessions (after a kiosk restarted: sessions live in its memory).
    pub fn forget_sessions(&mut self) {
        self.cookies.iter_mut().for_each(|c| *c = None);
    }
}

/// Takes one anonymous ticket for `service` at the kiosk screen `ui`; returns its label.
pub async fn take_ticket(
    http: &reqwest::Client,
    ui: &str,
    service: &str,
) -> Result<String, String> {
    let touch = |body: Value| {
        let http = http.clone();
        let url = format!("{ui}/api/kiosk/touch");
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())
                .map(drop)
        }
    };
    let view = || async {
        http.get(format!("{ui}/api/kiosk/view"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json::<Value>()
            .await
            .map_err(|e| e.to_string())
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut chose = false;
    loop {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("no ticket within {WAIT:?}: {}", view().await?));
        }
        let v = view().await?;
        match v["body"]["screen"].as_str().unwrap_or_default() {
            "attract" if !chose => touch(json!({"action": "start"})).await?,
            "choose_service" => {
                touch(json!({"action": "choose_service", "service": service, "priority": false}))
                    .await?;
                chose = true;
            }
            "goodbye" if chose => {
                let label = v["body"]["turn"]["label"].as_str().map(str::to_owned);
                touch(json!({"action": "done"})).await?;
                return label.ok_or_else(|| format!("goodbye without a label: {v}"));
            }
            "goodbye" | "survey" => touch(json!({"action": "done"})).await?,
            "error" => return Err(format!("the kiosk showed an error: {v}")),
            "attract" => return Err(format!("back at attract without a ticket: {v}")),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn site_config(
    data: &Path,
    ui: SocketAddr,
    crm: &str,
    store_listen: SocketAddr,
    members: &str,
) -> String {
    format!(
        r#"[kiosk]
store = "{store}"
store_name = "Store test"
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
counters = 2

[[queue.services]]
letter = "A"
name = {{ es = "Caja", en = "Cashier" }}
expected_minutes = 2

[[queue.services]]
letter = "B"
name = {{ es = "Atención", en = "Customer care" }}
expected_minutes = 8

[ui]
listen = "{ui}"
staff_pin_sha256 = "{pin}"

[privacy]
policy_version = "store-1"
policy_text = {{ es = "Política", en = "Policy" }}

# Store kiosks on simulated devices, driven by the tests themselves: no bench panel.
[bench]
panel = false

[store]
listen = "{store_listen}"
# Generous: the suite runs beside other tests on two cores (a cut link still fails at once).
sequencer_timeout_ms = 1000
kiosks = [
{members}]
"#,
        store = crm_endpoint::DEMO_STORE_ID,
        data = data.display(),
        pin = kiosk::ui::pin_digest(PIN),
    )
}
