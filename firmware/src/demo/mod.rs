//! `kiosk demo`: the whole kiosk on simulated hardware, with an embedded CRM endpoint (SQLite,
//! seeded with demo customers and campaigns), a network switch between the two and a simulator
//! control panel. Everything listens on loopback, on consecutive ports from `--port`:
//!
//! | port   | what                                                                 |
//! |--------|----------------------------------------------------------------------|
//! | N      | kiosk screen `/`, counter page `/counter`, lobby display `/lobby`    |
//! | N + 1  | CRM endpoint and its dashboard `/dashboard`                          |
//! | N + 2  | the network switch the kiosk syncs through (cut it from the panel)   |
//! | N + 3  | simulator control panel                                              |
//!
//! The kiosk enrolls with the endpoint the way a provisioned kiosk does (one-time code) and
//! keeps its journal, credentials and printed tickets (PNG) under the data directory; a second
//! run with the same directory picks up where the first stopped.

mod panel;
mod switch;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use kiosk_protocol::wire::EnrollRequest;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::credentials::Credentials;
use crate::paths::DataDir;
use crate::runtime::{self, RunOptions, Running};
use kiosk_journal::clock::SystemClock;

pub use switch::NetworkSwitch;

/// The counter page PIN of the demo.
pub const DEMO_PIN: &str = "1234";

/// What `kiosk demo` is asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where everything is kept.
    pub data_dir: PathBuf,
    /// The first of four consecutive loopback ports (0: any free ports, for tests).
    pub port: u16,
}

/// A running demo.
pub struct Demo {
    /// The kiosk.
    pub kiosk: Running,
    /// The CRM endpoint's address.
    pub crm_addr: SocketAddr,
    /// The control panel's address.
    pub panel_addr: SocketAddr,
    /// The network between kiosk and CRM.
    pub network: NetworkSwitch,
    /// The CRM's admin token (also opens the dashboard).
    pub admin_token: String,
    /// The CRM database.
    pub crm: crm_endpoint::SharedDb,
    /// Where printed tickets are written.
    pub tickets_dir: PathBuf,
    /// The one-time enrollment code the kiosk used (spent).
    pub enrolled_with: Option<String>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Demo {
    /// The URLs to print.
    pub fn urls(&self) -> Vec<(&'static str, String)> {
        let ui = self.kiosk.ui_addr;
        vec![
            ("kiosk screen", format!("http://{ui}/")),
            (
                "counter page",
                format!("http://{}/counter  (PIN {DEMO_PIN})", self.kiosk.staff_addr),
            ),
            (
                "lobby display",
                format!("http://{}/lobby", self.kiosk.staff_addr),
            ),
            ("simulator panel", format!("http://{}/", self.panel_addr)),
            (
                "CRM dashboard",
                format!(
                    "http://{}/dashboard  (token {})",
                    self.crm_addr, self.admin_token
                ),
            ),
            ("CRM API", format!("http://{}/openapi.json", self.crm_addr)),
        ]
    }

    /// Stops the kiosk, then the panel, the switch and the endpoint.
    pub async fn stop(self) {
        self.kiosk.stop().await;
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), t).await;
        }
    }
}

async fn listen(port: u16, offset: u16) -> anyhow::Result<TcpListener> {
    let port = if port == 0 { 0 } else { port + offset };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; pick other ports with `kiosk demo --port N`")
    })
}

/// The site config of the demo kiosk (validated by the same loader as a real one), with its data
/// under `data/kiosk`, the screen on `ui` and the CRM at `crm`. The kiosk bench runs `kiosk run`
/// on it too.
pub fn site_config(data: &Path, ui: SocketAddr, crm: &str) -> String {
    let pin = crate::ui::pin_digest(DEMO_PIN);
    let data_dir = data.join("kiosk");
    format!(
        r#"# Written by `kiosk demo`.
[kiosk]
store = "{store}"
store_name = "Tienda demo"
locale = "es"
hardware_profile = "simulated"
data_dir = "{data_dir}"
timezone = "Europe/Madrid"

[crm]
url = "{crm}"
backoff_base_ms = 200
backoff_cap_ms = 5000
connect_timeout_ms = 2000
request_timeout_ms = 10000
feed_interval_s = 5

[queue]
opening_time = "00:00"
counters = 3

[[queue.services]]
letter = "A"
name = {{ es = "Caja", en = "Cashier" }}
expected_minutes = 3

[[queue.services]]
letter = "B"
name = {{ es = "Atención al cliente", en = "Customer service" }}
expected_minutes = 8

[[queue.services]]
letter = "P"
name = {{ es = "Atención preferente", en = "Priority service" }}
priority = true
expected_minutes = 6

[ui]
listen = "{ui}"
staff_pin_sha256 = "{pin}"
idle_timeout_s = 45

[privacy]
policy_version = "demo-2026-01"
policy_text = {{ es = "Tratamos tus datos para gestionar tu tarjeta de fidelización y, si lo aceptas, enviarte ofertas. Puedes retirar tu consentimiento en cualquier momento.", en = "We process your data to manage your loyalty card and, if you agree, to send you offers. You can withdraw your consent at any time." }}
"#,
        store = crm_endpoint::DEMO_STORE_ID,
        data_dir = data_dir.display(),
    )
}

/// Starts the demo.
pub async fn start(opts: DemoOptions) -> anyhow::Result<Demo> {
    let data = &opts.data_dir;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create the demo directory {}", data.display()))?;
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();

    // The CRM endpoint.
    let crm_listener = listen(opts.port, 1).await?;
    let crm_addr = crm_listener.local_addr()?;
    let crm_url = format!("sqlite://{}", data.join("crm.db").display());
    let crm = crm_endpoint::db::open(&crm_url)
        .await
        .with_context(|| format!("cannot open the demo CRM database {crm_url}"))?;
    let seed = crm_endpoint::seed_demo(&crm)
        .await
        .context("cannot seed the demo CRM")?;
    let admin_token = admin_token(data)?;
    {
        let config = crm_endpoint::ServeConfig {
            db: crm.clone(),
            admin_token: Some(admin_token.clone()),
            tls: None,
        };
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crm_endpoint::serve(config, crm_listener, stop.cancelled_owned()).await
            {
                tracing::error!(error = %e, "demo CRM endpoint stopped");
            }
        }));
    }

    // The network between kiosk and CRM.
    let switch_listener = listen(opts.port, 2).await?;
    let network = NetworkSwitch::start(switch_listener, crm_addr, shutdown.clone())?;
    let via_switch = format!("http://{}", network.addr());

    // Enrollment, once per data directory.
    let ui_listener = listen(opts.port, 0).await?;
    let ui_addr = ui_listener.local_addr()?;
    let site_path = data.join("site.toml");
    std::fs::write(&site_path, site_config(data, ui_addr, &via_switch))
        .with_context(|| format!("cannot write {}", site_path.display()))?;
    let config = Config::load(&site_path)?;
    let kiosk_data = DataDir::new(&config.site.kiosk.data_dir);
    std::fs::create_dir_all(kiosk_data.root())?;
    let mut enrolled_with = None;
    let credentials = match Credentials::load(&kiosk_data.credentials()) {
        Ok(c) => c,
        Err(crate::credentials::CredentialsError::Missing { .. }) => {
            let answer = kiosk_sync::enroll(
                &via_switch,
                &kiosk_sync::TlsSettings::default(),
                &EnrollRequest {
                    code: seed.enroll_code.clone(),
                    hardware_profile: config.hardware.name.clone(),
                    firmware_version: env!("CARGO_PKG_VERSION").to_owned(),
                },
            )
            .await
            .context("the demo kiosk could not enroll with the demo CRM")?;
            let c = Credentials::from_enrollment(&via_switch, answer);
            c.save(&kiosk_data.credentials())?;
            enrolled_with = Some(seed.enroll_code.clone());
            c
        }
        Err(e) => return Err(e.into()),
    };

    // The kiosk.
    let tickets_dir = kiosk_data.tickets();
    let kiosk = runtime::start(RunOptions {
        config,
        credentials,
        endpoint_url: Some(via_switch),
        ui_listener: Some(ui_listener),
        staff_listener: None,
        store_listener: None,
        ticket_previews: Some(tickets_dir.clone()),
        clock: Arc::new(SystemClock),
    })
    .await?;

    // The control panel.
    let panel_listener = listen(opts.port, 3).await?;
    let panel_addr = panel_listener.local_addr()?;
    let panel_state = panel::PanelState {
        sims: kiosk.sims.clone(),
        network: network.clone(),
        last_ticket_qr: kiosk.last_ticket_qr.clone(),
        tickets_dir: tickets_dir.clone(),
        kiosk_url: format!("http://{ui_addr}/"),
    };
    {
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let app = panel::router(panel_state);
            if let Err(e) = axum::serve(panel_listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "simulator panel stopped");
            }
        }));
    }

    Ok(Demo {
        kiosk,
        crm_addr,
        panel_addr,
        network,
        admin_token,
        crm,
        tickets_dir,
        enrolled_with,
        shutdown,
        tasks,
    })
}

/// The demo CRM's admin token: random once, kept in the data directory (0600).
fn admin_token(data: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data.join("crm-admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_owned());
        }
    }
    let token = hex::encode(rand::random::<[u8; 16]>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, token.as_bytes())?;
    Ok(token)
}

/// `kiosk demo`: starts, prints the URLs, runs until Ctrl-C or SIGTERM, stops cleanly.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let demo = start(opts.clone()).await?;
    let shipper = crate::remote_log::ship_to(demo.kiosk.db.clone());
    println!(
        "kiosk demo is running (data in {})",
        opts.data_dir.display()
    );
    for (what, url) in demo.urls() {
        println!("  {what:<16} {url}");
    }
    println!("  printed tickets  {}", demo.tickets_dir.display());
    println!("Ctrl-C stops it.");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("stopping...");
    drop(shipper);
    demo.stop().await;
    println!("stopped.");
    Ok(())
}
