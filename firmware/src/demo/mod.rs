//! `kiosk demo`: a store of 1 to 8 kiosks on simulated hardware, with an embedded CRM endpoint
//! (SQLite, seeded with demo customers and campaigns), a network switch between the kiosks and
//! the CRM, the shop LAN between the kiosks, and a simulator control panel. Everything listens on
//! loopback, on ports counted from `--port` (`P`):
//!
//! | port                 | what                                                                     |
//! |----------------------|--------------------------------------------------------------------------|
//! | P                    | kiosk 1: screen `/`, counter page `/counter`, lobby display `/lobby`     |
//! | P + 1                | CRM endpoint and its dashboard `/dashboard`                              |
//! | P + 2                | the network switch the kiosks sync through (cut it from the panel)       |
//! | P + 3                | simulator control panel                                                  |
//! | P + 10 (k - 1)       | kiosk k > 1: screen, counter page, lobby display                         |
//! | P + 10 (k - 1) + 5   | kiosk k's store listener (`[store].listen`), with 2 kiosks or more       |
//! | P + 10 (k - 1) + 6   | kiosk k's cable on the shop LAN: its URL for the other kiosks            |
//!
//! Each kiosk enrolls with the endpoint the way a provisioned kiosk does (one-time code, same
//! store) and keeps its journal, credentials and printed tickets (PNG) in its own directory
//! (`kiosk/` for kiosk 1, `kiosk-k/` for kiosk k, each with its site config beside it); a second
//! run with the same directory picks up where the first stopped. With several kiosks, each
//! site config gets the same `[store]` list built from the kiosks' ids, each kiosk's URL being
//! its port on the shop LAN ([`StoreLan`]), whose cables the panel cuts and restores.

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

use crate::bench::panel;
pub use crate::bench::switch::{LanPort, Link, NetworkSwitch, StoreLan};

/// The counter page PIN of the demo (store-wide: whoever uses it is not named on the turns).
pub const DEMO_PIN: &str = "1234";

/// The demo's staff members with PINs of their own (`[[ui.staff]]`): id, name, PIN. The turns
/// they call and serve are counted per staff member in the managers' reports.
pub const DEMO_STAFF: [(&str, &str, &str); 2] = [
    ("marta", "Marta Ruiz", "246810"),
    ("javier", "Javier Gil", "135790"),
];

/// Most kiosks in the demo's store.
pub const MAX_KIOSKS: usize = 8;

/// How long a kiosk waits for the sequencer's number before it numbers from its own block. The
/// default (80 ms) suits a real LAN; the demo's kiosks share the machine's cores with a CRM and
/// the browser, so they wait longer rather than step outside the sequence when it is only busy.
/// A cut cable answers at once, so a cut kiosk still issues at once.
const DEMO_SEQUENCER_TIMEOUT_MS: u64 = 1000;

/// What `kiosk demo` is asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where everything is kept.
    pub data_dir: PathBuf,
    /// The first of the demo's loopback ports (0: any free ports, for tests).
    pub port: u16,
    /// How many kiosks the store has (1 to [`MAX_KIOSKS`]).
    pub kiosks: usize,
    /// The store's last kiosk runs as a browse point (`kiosk.role = "browse"`); needs two
    /// kiosks or more, so that one issues turns.
    pub browse_point: bool,
}

/// One more kiosk of the demo's store (kiosks 2 to N).
pub struct StoreKiosk {
    /// The kiosk.
    pub kiosk: Running,
    /// Where its printed tickets are written.
    pub tickets_dir: PathBuf,
}

/// A running demo.
pub struct Demo {
    /// Kiosk 1 (the store's sequencer).
    pub kiosk: Running,
    /// The last kiosk is a browse point (`--browse-point`).
    pub browse_point: bool,
    /// Kiosks 2 to N of the store (none with `--kiosks 1`).
    pub others: Vec<StoreKiosk>,
    /// The CRM endpoint's address.
    pub crm_addr: SocketAddr,
    /// The control panel's address.
    pub panel_addr: SocketAddr,
    /// The network between the kiosks and the CRM.
    pub network: NetworkSwitch,
    /// The shop LAN between the kiosks (with 2 kiosks or more).
    pub lan: Option<StoreLan>,
    /// The CRM's admin token (machine access: the admin API, scripts).
    pub admin_token: String,
    /// One CRM console account per role with its password (`hq`, `madrid`, `tienda`,
    /// `analista`), for a person to try each role on the dashboard.
    pub accounts: Vec<crm_endpoint::DemoAccount>,
    /// The CRM database.
    pub crm: crm_endpoint::SharedDb,
    /// Where kiosk 1's printed tickets are written.
    pub tickets_dir: PathBuf,
    /// The one-time enrollment code kiosk 1 used (spent), if it enrolled in this run.
    pub enrolled_with: Option<String>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Demo {
    /// How many kiosks the store has.
    pub fn kiosk_count(&self) -> usize {
        1 + self.others.len()
    }

    /// Kiosk `number` (1 to N).
    pub fn kiosk_number(&self, number: usize) -> Option<&Running> {
        match number {
            1 => Some(&self.kiosk),
            n => self.others.get(n.checked_sub(2)?).map(|k| &k.kiosk),
        }
    }

    /// Where kiosk `number`'s printed tickets are written.
    pub fn tickets_dir_of(&self, number: usize) -> Option<&Path> {
        match number {
            1 => Some(&self.tickets_dir),
            n => self
                .others
                .get(n.checked_sub(2)?)
                .map(|k| k.tickets_dir.as_path()),
        }
    }

    /// The URLs to print for a store of one kiosk: kiosk 1's, then [`Demo::shared_urls`].
    pub fn urls(&self) -> Vec<(&'static str, String)> {
        let ui = self.kiosk.ui_addr;
        let mut urls = vec![
            ("kiosk screen", format!("http://{ui}/")),
            (
                "counter page",
                format!("http://{}/counter  (PIN {DEMO_PIN})", self.kiosk.staff_addr),
            ),
            (
                "lobby display",
                format!("http://{}/lobby", self.kiosk.staff_addr),
            ),
        ];
        urls.extend(self.shared_urls());
        urls
    }

    /// The URLs of what the kiosks share: the simulator panel and the CRM.
    pub fn shared_urls(&self) -> Vec<(&'static str, String)> {
        vec![
            ("simulator panel", format!("http://{}/", self.panel_addr)),
            (
                "CRM dashboard",
                format!("http://{}/dashboard  (log in as:)", self.crm_addr),
            ),
        ]
        .into_iter()
        .chain(self.accounts.iter().map(|a| {
            (
                "  account",
                format!("{} / {}  ({})", a.name, a.password, a.role.as_str()),
            )
        }))
        .chain([
            (
                "CRM admin token",
                format!("{}  (machine access: the admin API)", self.admin_token),
            ),
            ("CRM API", format!("http://{}/openapi.json", self.crm_addr)),
        ])
        .collect()
    }

    /// One line per kiosk: `kiosk 1: screen http://…/, counter http://…/counter, lobby …`.
    pub fn kiosk_lines(&self) -> Vec<String> {
        (1..=self.kiosk_count())
            .filter_map(|n| {
                let k = self.kiosk_number(n)?;
                let role = if k.store.is_sequencer() {
                    ", numbers the store's turns"
                } else if self.browse_point && n == self.kiosk_count() {
                    ", a browse point: tap a card there to see its turn and offers"
                } else {
                    ""
                };
                Some(format!(
                    "kiosk {n}: screen http://{}/, counter http://{}/counter, lobby http://{}/lobby  (id {}{role})",
                    k.ui_addr, k.staff_addr, k.staff_addr, k.store.me
                ))
            })
            .collect()
    }

    /// Whether every kiosk reaches every other one and the sequencer has heard from them (always
    /// true for a store of one): from then on, turns are numbered in the store's sequence.
    pub fn store_ready(&self) -> bool {
        (1..=self.kiosk_count())
            .filter_map(|n| self.kiosk_number(n))
            .all(|k| {
                k.store.heard_from_peers() && k.store.peer_status().iter().all(|p| p.reachable)
            })
    }

    /// Stops the kiosks, then the panel, the network and the endpoint.
    pub async fn stop(self) {
        // Every kiosk's parts stop at once, so that none waits for a peer's long poll to end.
        let kiosks = std::iter::once(self.kiosk).chain(self.others.into_iter().map(|k| k.kiosk));
        let kiosks: Vec<Running> = kiosks.collect();
        for k in &kiosks {
            k.shutdown_token().cancel();
        }
        futures::future::join_all(kiosks.into_iter().map(Running::stop)).await;
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), t).await;
        }
    }
}

/// The port of the demo's listener at `offset` from `port` (any free port when `port` is 0).
fn demo_port(port: u16, offset: usize) -> anyhow::Result<u16> {
    if port == 0 {
        return Ok(0);
    }
    u16::try_from(usize::from(port) + offset)
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| {
            format!(
                "--port {port}: the demo needs the ports up to {port} + {offset}; pick a lower one"
            )
        })
}

async fn listen(port: u16, offset: usize) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, demo_port(port, offset)?));
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; pick other ports with `kiosk demo --port N`")
    })
}

/// The offsets from `--port` of kiosk `number`'s screen, store listener and LAN cable.
fn kiosk_offsets(number: usize) -> (usize, usize, usize) {
    let base = 10 * (number - 1);
    (base, base + 5, base + 6)
}

/// Where kiosk `number` of the demo keeps its site config and its data.
fn kiosk_paths(data: &Path, number: usize) -> (PathBuf, PathBuf) {
    if number == 1 {
        (data.join("site.toml"), data.join("kiosk"))
    } else {
        (
            data.join(format!("site-{number}.toml")),
            data.join(format!("kiosk-{number}")),
        )
    }
}

/// The site config of the demo kiosk (validated by the same loader as a real one), with its data
/// under `data/kiosk`, the screen on `ui` and the CRM at `crm`. The kiosk bench runs `kiosk run`
/// on it too.
pub fn site_config(data: &Path, ui: SocketAddr, crm: &str) -> String {
    kiosk_site_config(&data.join("kiosk"), None, ui, crm, None, None, false)
}

/// The `[store]` section of every kiosk of a demo store: the same list on each.
struct StoreSection<'a> {
    /// This kiosk's store listener.
    listen: SocketAddr,
    /// Every kiosk's id and URL (its port on the shop LAN), in the store's order.
    kiosks: &'a [(String, SocketAddr)],
}

fn kiosk_site_config(
    data_dir: &Path,
    kiosk_id: Option<&str>,
    ui: SocketAddr,
    crm: &str,
    store: Option<StoreSection<'_>>,
    public_url: Option<&str>,
    browse: bool,
) -> String {
    let pin = crate::ui::pin_digest(DEMO_PIN);
    let staff: String = DEMO_STAFF
        .iter()
        .map(|(id, name, pin)| {
            format!(
                "\n[[ui.staff]]\nid = \"{id}\"\nname = \"{name}\"\npin_sha256 = \"{}\"\n",
                crate::ui::pin_digest(pin)
            )
        })
        .collect();
    let mut id = kiosk_id
        .map(|id| format!("id = \"{id}\"\n"))
        .unwrap_or_default();
    if browse {
        id.push_str("# A browse point: a card shows its turn and offers; no tickets here.\nrole = \"browse\"\n");
    }
    // The ticket's link goes to the CRM itself, not through the network switch that a demo
    // can cut: a phone follows its turn at the address it can always reach.
    let public = public_url
        .map(|u| format!("public_url = \"{u}\"\n"))
        .unwrap_or_default();
    let mut text = format!(
        r#"# Written by `kiosk demo`.
[kiosk]
{id}store = "{store}"
store_name = "Tienda demo"
locale = "es"
hardware_profile = "simulated"
data_dir = "{data_dir}"
timezone = "Europe/Madrid"

[crm]
url = "{crm}"
{public}backoff_base_ms = 200
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
# The demo's screens are tabs of the developer's browser, opened when they like.
screen_watchdog_s = 0
{staff}
[privacy]
policy_version = "demo-2026-01"
policy_text = {{ es = "Tratamos sus datos para gestionar su tarjeta de fidelización y, si lo acepta, enviarle ofertas o avisos de su turno. Puede retirar su consentimiento en cualquier momento.", en = "We process your data to manage your loyalty card and, if you agree, to send you offers or notices about your turn. You can withdraw your consent at any time." }}
"#,
        store = crm_endpoint::DEMO_STORE_ID,
        data_dir = data_dir.display(),
    );
    if let Some(store) = store {
        text.push_str(&format!(
            "\n# The kiosks of the store: the same list, in the same order, on every kiosk; the first\n\
             # numbers the store's turns. Each URL is the kiosk's cable on the demo's shop LAN.\n\
             [store]\nlisten = \"{}\"\nsequencer_timeout_ms = {DEMO_SEQUENCER_TIMEOUT_MS}\nkiosks = [\n",
            store.listen
        ));
        for (id, url) in store.kiosks {
            text.push_str(&format!("  {{ id = \"{id}\", url = \"http://{url}\" }},\n"));
        }
        text.push_str("]\n");
    }
    text
}

/// A kiosk's credentials: kept in its data directory, or enrolled now with a one-time code for
/// the demo store (`code`, else a fresh one). Also returns the code when it was spent now.
async fn credentials(
    crm: &crm_endpoint::SharedDb,
    data_dir: &Path,
    via_switch: &str,
    code: Option<&str>,
) -> anyhow::Result<(Credentials, Option<String>)> {
    let kiosk_data = DataDir::new(data_dir);
    std::fs::create_dir_all(kiosk_data.root())
        .with_context(|| format!("cannot create {}", kiosk_data.root().display()))?;
    match Credentials::load(&kiosk_data.credentials()) {
        Ok(c) => Ok((c, None)),
        Err(crate::credentials::CredentialsError::Missing { .. }) => {
            let code = match code {
                Some(code) => code.to_owned(),
                None => {
                    crm_endpoint::api::issue_enroll_code(
                        crm,
                        crm_endpoint::DEMO_STORE_ID,
                        std::time::Duration::from_secs(3600),
                    )
                    .await
                    .context("cannot issue an enrollment code at the demo CRM")?
                    .0
                }
            };
            let answer = kiosk_sync::enroll(
                via_switch,
                &kiosk_sync::TlsSettings::default(),
                &EnrollRequest {
                    code: code.clone(),
                    hardware_profile: "simulated".to_owned(),
                    firmware_version: env!("CARGO_PKG_VERSION").to_owned(),
                },
            )
            .await
            .context("a demo kiosk could not enroll with the demo CRM")?;
            let c = Credentials::from_enrollment(via_switch, answer);
            c.save(&kiosk_data.credentials())?;
            Ok((c, Some(code)))
        }
        Err(e) => Err(e.into()),
    }
}

/// One kiosk, enrolled and with its listeners bound, before it starts.
struct Prepared {
    number: usize,
    site_path: PathBuf,
    data_dir: PathBuf,
    credentials: Credentials,
    ui: TcpListener,
    /// The store listener (2 kiosks or more).
    store: Option<TcpListener>,
    /// The listener of its cable on the shop LAN (2 kiosks or more).
    cable: Option<TcpListener>,
}

/// Starts the demo.
pub async fn start(opts: DemoOptions) -> anyhow::Result<Demo> {
    let n = opts.kiosks;
    anyhow::ensure!(
        (1..=MAX_KIOSKS).contains(&n),
        "--kiosks {n}: the demo's store has 1 to {MAX_KIOSKS} kiosks"
    );
    anyhow::ensure!(
        !opts.browse_point || n >= 2,
        "--browse-point needs --kiosks 2 or more: a browse point issues no turns, another kiosk must"
    );
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
    let accounts = crm_endpoint::seed_demo_accounts(&crm, &demo_secret(data)?)
        .await
        .context("cannot make the demo CRM's accounts")?;
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

    // The network between the kiosks and the CRM.
    let switch_listener = listen(opts.port, 2).await?;
    let network = NetworkSwitch::start(switch_listener, crm_addr, shutdown.clone())?;
    let via_switch = format!("http://{}", network.addr());

    // Every kiosk enrolled (once per data directory), its listeners bound.
    let mut prepared = Vec::new();
    let mut enrolled_with = None;
    for number in 1..=n {
        let (site_path, data_dir) = kiosk_paths(data, number);
        let code = (number == 1).then_some(seed.enroll_code.as_str());
        let (credentials, spent) = credentials(&crm, &data_dir, &via_switch, code).await?;
        if number == 1 {
            enrolled_with = spent;
        }
        let (ui_at, store_at, lan_at) = kiosk_offsets(number);
        let ui = listen(opts.port, ui_at).await?;
        let (store, cable) = if n > 1 {
            (
                Some(listen(opts.port, store_at).await?),
                Some(listen(opts.port, lan_at).await?),
            )
        } else {
            (None, None)
        };
        prepared.push(Prepared {
            number,
            site_path,
            data_dir,
            credentials,
            ui,
            store,
            cable,
        });
    }

    // The shop LAN: one cable per kiosk, relaying to its store listener.
    let mut ports = Vec::new();
    for p in &mut prepared {
        if let (Some(store), Some(cable)) = (&p.store, p.cable.take()) {
            ports.push(LanPort {
                listener: cable,
                upstream: store.local_addr()?,
                kiosk_id: p.credentials.kiosk_id.clone(),
            });
        }
    }
    let lan = if ports.is_empty() {
        None
    } else {
        Some(StoreLan::start(ports, shutdown.clone())?)
    };
    let members: Vec<(String, SocketAddr)> = match &lan {
        Some(lan) => prepared
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.credentials.kiosk_id.clone(), lan.addr(i)?)))
            .collect(),
        None => Vec::new(),
    };

    // The kiosks, in the store's order.
    let mut started = Vec::new();
    for p in prepared {
        let ui_addr = p.ui.local_addr()?;
        let store_listener = p.store;
        let section = match &store_listener {
            Some(l) => Some(StoreSection {
                listen: l.local_addr()?,
                kiosks: &members,
            }),
            None => None,
        };
        let kiosk_id = section.as_ref().map(|_| p.credentials.kiosk_id.as_str());
        let crm_public = format!("http://{crm_addr}");
        let text = kiosk_site_config(
            &p.data_dir,
            kiosk_id,
            ui_addr,
            &via_switch,
            section,
            Some(&crm_public),
            opts.browse_point && p.number == n,
        );
        std::fs::write(&p.site_path, text)
            .with_context(|| format!("cannot write {}", p.site_path.display()))?;
        let config = Config::load(&p.site_path)?;
        let tickets_dir = DataDir::new(&config.site.kiosk.data_dir).tickets();
        let kiosk = runtime::start(RunOptions {
            config,
            credentials: p.credentials,
            endpoint_url: Some(via_switch.clone()),
            ui_listener: Some(p.ui),
            staff_listener: None,
            store_listener,
            ticket_previews: Some(tickets_dir.clone()),
            clock: Arc::new(SystemClock),
            updates: None,
        })
        .await;
        match kiosk {
            Ok(kiosk) => started.push(StoreKiosk { kiosk, tickets_dir }),
            Err(e) => {
                // The kiosks already running stop before the error is returned.
                for k in started {
                    k.kiosk.stop().await;
                }
                shutdown.cancel();
                return Err(
                    anyhow::Error::new(e).context(format!("demo kiosk {} did not start", p.number))
                );
            }
        }
    }
    let mut started = started.into_iter();
    let first = started.next().context("the demo store has no kiosk")?;
    let others: Vec<StoreKiosk> = started.collect();

    // The control panel.
    let panel_listener = listen(opts.port, 3).await?;
    let panel_addr = panel_listener.local_addr()?;
    let panel_state = panel::PanelState {
        kiosks: std::iter::once(&first)
            .chain(&others)
            .enumerate()
            .map(|(i, k)| panel::PanelKiosk {
                number: i + 1,
                sims: k.kiosk.sims.clone(),
                last_ticket_qr: k.kiosk.last_ticket_qr.clone(),
                tickets_dir: k.tickets_dir.clone(),
                kiosk_url: format!("http://{}/", k.kiosk.ui_addr),
                staff_url: format!("http://{}", k.kiosk.staff_addr),
                store: k.kiosk.store.clone(),
                offline_switch: Arc::default(),
            })
            .collect::<Vec<_>>()
            .into(),
        network: Some(network.clone()),
        lan: lan.clone(),
        cards: crm_endpoint::DEMO_CUSTOMERS
            .iter()
            .map(|c| panel::PanelCard {
                label: format!("{} ({}, {})", c.display_name, c.segment, c.locale),
                uid: c.uid.to_vec(),
            })
            .collect::<Vec<_>>()
            .into(),
        kind: panel::PanelKind::Demo { pin: DEMO_PIN },
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
        kiosk: first.kiosk,
        browse_point: opts.browse_point,
        tickets_dir: first.tickets_dir,
        others,
        crm_addr,
        panel_addr,
        network,
        lan,
        admin_token,
        accounts,
        crm,
        enrolled_with,
        shutdown,
        tasks,
    })
}

/// The demo CRM's admin token: random once, kept in the data directory (0600).
fn admin_token(data: &Path) -> anyhow::Result<String> {
    kept_secret(data, "crm-admin-token")
}

/// The secret of the demo accounts' passwords (`SECRET-NAME`): random once per data directory.
fn demo_secret(data: &Path) -> anyhow::Result<String> {
    kept_secret(data, "crm-demo-password")
}

/// A random hex secret kept in `data/name` (0600), made at the first run.
fn kept_secret(data: &Path, name: &str) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data.join(name);
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

/// The demo staff members' own counter PINs.
fn print_staff_pins() {
    for (_, name, pin) in DEMO_STAFF {
        println!(
            "  {:<16} {pin} ({name}'s own: named on the turns)",
            "staff PIN"
        );
    }
}

/// `kiosk demo`: starts, prints the URLs, runs until Ctrl-C or SIGTERM, stops cleanly.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let demo = start(opts.clone()).await?;
    let shipper = crate::remote_log::ship_to(demo.kiosk.db.clone());
    if demo.kiosk_count() == 1 {
        println!(
            "kiosk demo is running (data in {})",
            opts.data_dir.display()
        );
        for (what, url) in demo.urls() {
            println!("  {what:<16} {url}");
        }
        print_staff_pins();
        println!("  printed tickets  {}", demo.tickets_dir.display());
    } else {
        println!(
            "kiosk demo is running: a store of {} kiosks (data in {})",
            demo.kiosk_count(),
            opts.data_dir.display()
        );
        for line in demo.kiosk_lines() {
            println!("  {line}");
        }
        println!(
            "  {:<16} {DEMO_PIN} (every kiosk's counter page)",
            "counter PIN"
        );
        print_staff_pins();
        for (what, url) in demo.shared_urls() {
            println!("  {what:<16} {url}");
        }
        let dirs: Vec<String> = (1..=demo.kiosk_count())
            .filter_map(|k| demo.tickets_dir_of(k))
            .map(|d| d.display().to_string())
            .collect();
        println!("  {:<16} {}", "printed tickets", dirs.join(", "));
        if let Some(lan) = &demo.lan {
            let cables: Vec<String> = (0..lan.len())
                .filter_map(|i| Some(format!("kiosk {} at http://{}", i + 1, lan.addr(i)?)))
                .collect();
            println!(
                "  {:<16} {} (cut a kiosk's cable from the panel)",
                "shop LAN",
                cables.join(", ")
            );
        }
    }
    println!("Ctrl-C stops it.");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ready = async {
        if demo.store_ready() {
            return std::future::pending::<()>().await;
        }
        println!(
            "The kiosks are finding each other on the LAN (up to ten seconds); on a first run, \
             turns taken until then are numbered outside the store's sequence (A1-001, A2-001)."
        );
        while !demo.store_ready() {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        println!(
            "Every kiosk reaches the others: turns follow the store's sequence (A-001, A-002, ...)."
        );
        let _ = std::io::stdout().flush();
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = ready => {}
    }
    println!("stopping...");
    drop(shipper);
    demo.stop().await;
    println!("stopped.");
    Ok(())
}
