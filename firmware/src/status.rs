//! The one screen of truth for a technician: `kiosk status`, `GET /api/status` (JSON) and
//! `GET /metrics` (Prometheus text format) all show the same [`Status`].
//!
//! A running kiosk answers from its live state ([`StatusSource`]); when it is not running,
//! `kiosk status` reads the journal read-only and says so ([`offline`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiosk_drivers::DeviceHealth;
use kiosk_sync::{LinkState, SyncStatusReceiver};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

use crate::devices::DeviceHealthMap;
use crate::paths::DataDir;
use crate::service::Liveness;
use kiosk_journal::Journal;
use kiosk_journal::crypto::DeviceKey;
use kiosk_journal::db::KioskDb;

/// Free space below which the disk counts as nearly full.
pub const DISK_LOW_BYTES: u64 = 512 * 1024 * 1024;
/// Free fraction below which the disk counts as nearly full.
pub const DISK_LOW_FRACTION: f64 = 0.05;

/// Everything `kiosk status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Firmware version.
    pub version: String,
    /// Git commit it was built from.
    pub commit: String,
    /// Target triple.
    pub target: String,
    /// Whether this is a running kiosk's live state (false: read from disk, kiosk stopped).
    pub running: bool,
    /// Kiosk id (from enrollment).
    pub kiosk_id: Option<String>,
    /// Store id.
    pub store_id: Option<String>,
    /// Hardware profile.
    pub hardware_profile: String,
    /// When the process started (RFC 3339), if running.
    pub started_at: Option<String>,
    /// Seconds since start, if running.
    pub uptime_s: Option<u64>,
    /// Device health (empty when not running).
    pub devices: Vec<DeviceStatus>,
    /// The journal.
    pub journal: JournalStatus,
    /// The link to the CRM (None when not running).
    pub sync: Option<SyncSummary>,
    /// The data directory's file system.
    pub disk: Option<DiskStatus>,
    /// The system clock.
    pub clock: ClockStatus,
    /// Whether the firmware's loops are alive (what the systemd watchdog is petted on).
    pub loops: Option<LoopStatus>,
    /// The other kiosks of the store, when it has any (and the kiosk runs).
    #[serde(default)]
    pub store: Option<StoreStatus>,
    /// The customer screen: kiosk pages open, the watchdog (absent when not running).
    #[serde(default)]
    pub screen: Option<crate::screen::ScreenStatus>,
    /// Who is in the store: customers waiting and the people counter (absent when not running).
    #[serde(default)]
    pub in_store: Option<InStoreStatus>,
    /// The store configuration from the CRM: the version run, a refused one, one waiting.
    #[serde(default)]
    pub store_config: StoreConfigStatus,
}

/// The store configuration from the CRM as the journal holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfigStatus {
    /// The CRM's version the kiosk runs (0: `site.toml` alone).
    pub version: u64,
    /// The parts it sets over `site.toml` (`services`, `opening_time`, ...).
    pub parts: Vec<String>,
    /// A newer version received and checked, waiting for the attract screen.
    pub waiting: Option<u64>,
    /// The last version refused, if newer than the one run.
    pub refused: Option<u64>,
    /// Why it was refused.
    pub refused_reason: Option<String>,
}

fn store_config_status(sql: &rusqlite::Connection) -> StoreConfigStatus {
    let held = match kiosk_journal::store_config::held(sql) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store configuration held in the journal");
            return StoreConfigStatus::default();
        }
    };
    let version = held.good.as_ref().map_or(0, |g| g.version);
    let parts = held.good.as_ref().map_or_else(Vec::new, |g| {
        serde_json::to_value(&g.parts)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
            .unwrap_or_default()
    });
    let refused = held.refused.filter(|r| r.version > version);
    let decided = version.max(refused.as_ref().map_or(0, |r| r.version));
    StoreConfigStatus {
        version,
        parts,
        waiting: held.received.map(|r| r.version).filter(|v| *v > decided),
        refused: refused.as_ref().map(|r| r.version),
        refused_reason: refused.map(|r| r.reason),
    }
}

/// Who is in the store, from the store picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InStoreStatus {
    /// Customers waiting.
    pub waiting: u32,
    /// Of them, with a card.
    pub identified: u32,
    /// People the counter on the presence input saw enter today (`None`: no counter fitted).
    pub entered_today: Option<u32>,
}

/// This kiosk's place in its store and what it sees of the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// The kiosk keeping the store's number sequence.
    pub sequencer: String,
    /// Whether it is this kiosk.
    pub this_is_sequencer: bool,
    /// The others.
    pub peers: Vec<crate::store::PeerStatus>,
}

/// One device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// `card_reader`, `scanner`, `printer`, `presence_sensor`, ...
    pub device: String,
    /// `ok`, `degraded` or `absent`.
    pub state: String,
    /// Why, when not ok.
    pub reason: Option<String>,
}

/// The journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStatus {
    /// Its file.
    pub path: PathBuf,
    /// Database plus WAL, bytes.
    pub file_bytes: u64,
    /// Events kept.
    pub events: u64,
    /// Events not yet acknowledged by the CRM.
    pub pending: u64,
    /// Device wall time of the oldest pending event.
    pub oldest_pending: Option<String>,
    /// Its age in seconds (by this kiosk's clock).
    pub oldest_pending_age_s: Option<u64>,
    /// Events the CRM rejected (`kiosk events --dead-letters`).
    pub dead_letters: u64,
    /// Highest sequence number used.
    pub last_seq: u64,
    /// Low-value events dropped at the journal's disk budget (taps, campaign views, logs).
    #[serde(default)]
    pub dropped_over_budget: u64,
    /// Whether such events are being dropped now (the backlog reached the budget).
    #[serde(default)]
    pub dropping_low_value: bool,
}

/// The link to the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSummary {
    /// `starting`, `online`, `offline`, `auth_rejected`, `throttled`.
    pub link: String,
    /// Last usable answer (RFC 3339).
    pub last_success: Option<String>,
    /// Seconds since then.
    pub last_success_age_s: Option<u64>,
    /// The last failure, for people.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Kiosk clock minus CRM clock, ms.
    pub clock_skew_ms: Option<i64>,
    /// Events acknowledged since start.
    pub events_acknowledged: u64,
    /// Events dead-lettered since start.
    pub events_dead_lettered: u64,
    /// Last complete feed pull (RFC 3339).
    pub last_feed_sync: Option<String>,
}

/// The data directory's file system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskStatus {
    /// Bytes available to the kiosk.
    pub free_bytes: u64,
    /// Size of the file system.
    pub total_bytes: u64,
    /// Below [`DISK_LOW_BYTES`] or [`DISK_LOW_FRACTION`].
    pub nearly_full: bool,
}

/// The system clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// Now, by the system clock (RFC 3339).
    pub now: String,
    /// Whether the kernel says NTP has synchronised it (`None`: cannot tell).
    pub synchronised: Option<bool>,
}

/// The firmware's own loops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopStatus {
    /// All alive.
    pub healthy: bool,
    /// What is wrong.
    pub problem: Option<String>,
}

/// What a running kiosk reads its status from.
#[derive(Clone)]
pub struct StatusSource {
    /// The kiosk database.
    pub db: KioskDb,
    /// Device health.
    pub health: watch::Receiver<DeviceHealthMap>,
    /// The sync worker.
    pub sync: SyncStatusReceiver,
    /// The loops.
    pub liveness: Liveness,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Who the kiosk is.
    pub kiosk_id: String,
    /// Its store.
    pub store_id: String,
    /// Hardware profile name.
    pub hardware_profile: String,
    /// Start time.
    pub started: Instant,
    /// Start time by the wall clock.
    pub started_at: OffsetDateTime,
    /// The store link.
    pub store: Option<std::sync::Arc<crate::store::StoreLink>>,
    /// The customer screen's clients.
    pub screen: Option<crate::screen::ScreenPresence>,
    /// Who is in the store.
    pub picture: Option<watch::Receiver<kiosk_core::audience::StorePicture>>,
}

impl StatusSource {
    /// The status now. Reads the journal: call from a blocking context.
    pub fn snapshot(&self) -> Status {
        let now = OffsetDateTime::now_utc();
        let journal = journal_status(&self.db.journal(), now);
        let devices = self
            .health
            .borrow()
            .iter()
            .map(|(kind, h)| DeviceStatus {
                device: kind_name(*kind),
                state: state_name(h.state).to_owned(),
                reason: h.reason.clone(),
            })
            .collect();
        let s = self.sync.borrow().clone();
        let sync = SyncSummary {
            link: link_name(s.link).to_owned(),
            last_success: s.last_success.and_then(|t| t.format(&Rfc3339).ok()),
            last_success_age_s: s.last_success.map(|t| age_s(t, now)),
            last_error: s.last_error,
            consecutive_failures: s.consecutive_failures,
            clock_skew_ms: s.clock_skew_ms,
            events_acknowledged: s.events_acknowledged,
            events_dead_lettered: s.events_dead_lettered,
            last_feed_sync: s.last_feed_sync.and_then(|t| t.format(&Rfc3339).ok()),
        };
        let loops = match self.liveness.check() {
            Ok(()) => LoopStatus {
                healthy: true,
                problem: None,
            },
            Err(p) => LoopStatus {
                healthy: false,
                problem: Some(p),
            },
        };
        Status {
            version: crate::version::VERSION.to_owned(),
            commit: crate::version::GIT_COMMIT.to_owned(),
            target: crate::version::TARGET.to_owned(),
            running: true,
            kiosk_id: Some(self.kiosk_id.clone()),
            store_id: Some(self.store_id.clone()),
            hardware_profile: self.hardware_profile.clone(),
            started_at: self.started_at.format(&Rfc3339).ok(),
            uptime_s: Some(self.started.elapsed().as_secs()),
            devices,
            journal,
            sync: Some(sync),
            disk: disk_status(&self.data_dir),
            clock: clock_status(now),
            loops: Some(loops),
            store: self
                .store
                .as_ref()
                .filter(|l| l.members.len() > 1)
                .map(|l| StoreStatus {
                    sequencer: l.sequencer().id.clone(),
                    this_is_sequencer: l.is_sequencer(),
                    peers: l.peer_status(),
                }),
            screen: self
                .screen
                .as_ref()
                .map(crate::screen::ScreenPresence::status),
            in_store: self.picture.as_ref().map(|p| {
                let p = p.borrow();
                InStoreStatus {
                    waiting: p.waiting,
                    identified: p.identified,
                    entered_today: p.people_entered_today,
                }
            }),
            store_config: store_config_status(self.db.journal().sql()),
        }
    }
}

/// The live status of the kiosk `config` describes, asked over its local API; `None` when no
/// kiosk answers there (not running, or still starting).
pub async fn fetch_live(config: &crate::config::Config) -> Option<Status> {
    let mut addr = config.site.ui.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    kiosk_sync::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = http
        .get(format!("http://{addr}/api/status"))
        .send()
        .await
        .map_err(|e| tracing::debug!(error = %e, "no running kiosk answered"))
        .ok()?;
    resp.error_for_status().ok()?.json().await.ok()
}

/// The status of a kiosk that is not running, from its files (journal opened read-only).
pub fn offline(data_dir: &Path, hardware_profile: &str) -> anyhow::Result<Status> {
    use anyhow::Context as _;
    let data = DataDir::new(data_dir);
    let journal_path = data.journal();
    if !journal_path.exists() {
        anyhow::bail!(
            "no journal at {}: the kiosk never ran with this data directory",
            journal_path.display()
        );
    }
    let key = DeviceKey::load_or_create(&data.device_key())
        .with_context(|| format!("reading the device key in {}", data_dir.display()))?;
    let journal = Journal::open_read_only(&journal_path, key)?;
    let now = OffsetDateTime::now_utc();
    let credentials = crate::credentials::Credentials::load(&data.credentials()).ok();
    Ok(Status {
        version: crate::version::VERSION.to_owned(),
        commit: crate::version::GIT_COMMIT.to_owned(),
        target: crate::version::TARGET.to_owned(),
        running: false,
        kiosk_id: credentials.as_ref().map(|c| c.kiosk_id.clone()),
        store_id: credentials.as_ref().map(|c| c.store_id.clone()),
        hardware_profile: hardware_profile.to_owned(),
        started_at: None,
        uptime_s: None,
        devices: Vec::new(),
        journal: journal_status(&journal, now),
        store_config: store_config_status(journal.sql()),
        sync: None,
        disk: disk_status(data_dir),
        clock: clock_status(now),
        loops: None,
        store: None,
        screen: None,
        in_store: None,
    })
}

fn journal_status(journal: &Journal, now: OffsetDateTime) -> JournalStatus {
    let path = journal.path().to_owned();
    match journal.stats() {
        Ok(s) => JournalStatus {
            path,
            file_bytes: s.file_bytes,
            events: s.events,
            pending: s.pending,
            oldest_pending_age_s: s
                .oldest_pending_wall_time
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .map(|t| age_s(t, now)),
            oldest_pending: s.oldest_pending_wall_time,
            dead_letters: s.dead_letters,
            last_seq: s.last_seq,
            dropped_over_budget: s.dropped_over_budget,
            dropping_low_value: s.dropping_low_value,
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read journal statistics");
            JournalStatus {
                path,
                file_bytes: 0,
                events: 0,
                pending: 0,
                oldest_pending: None,
                oldest_pending_age_s: None,
                dead_letters: 0,
                last_seq: 0,
                dropped_over_budget: 0,
                dropping_low_value: false,
            }
        }
    }
}

fn age_s(t: OffsetDateTime, now: OffsetDateTime) -> u64 {
    (now - t).whole_seconds().max(0) as u64
}

/// Free space of the file system holding `dir` (`None` when it cannot be read).
pub fn disk_status(dir: &Path) -> Option<DiskStatus> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = s.fragment_size() as u64;
    let free_bytes = s.blocks_available() as u64 * frag;
    let total_bytes = s.blocks() as u64 * frag;
    let nearly_full = free_bytes < DISK_LOW_BYTES
        || (total_bytes > 0 && (free_bytes as f64) < DISK_LOW_FRACTION * total_bytes as f64);
    Some(DiskStatus {
        free_bytes,
        total_bytes,
        nearly_full,
    })
}

/// The clock and whether NTP synchronised it: the kernel's own flag (`adjtimex`, read-only),
/// or systemd-timesyncd's marker file where the service's seccomp filter forbids `adjtimex`.
pub fn clock_status(now: OffsetDateTime) -> ClockStatus {
    ClockStatus {
        now: now.format(&Rfc3339).unwrap_or_default(),
        synchronised: clock_synchronised(),
    }
}

fn clock_synchronised() -> Option<bool> {
    // SAFETY: a zeroed timex with modes = 0 only reads the kernel's state.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state >= 0 {
        return Some(state != libc::TIME_ERROR);
    }
    if Path::new("/run/systemd/timesync/synchronized").exists() {
        return Some(true);
    }
    None
}

fn kind_name(kind: kiosk_protocol::events::DeviceKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn state_name(s: DeviceHealth) -> &'static str {
    match s {
        DeviceHealth::Ok => "ok",
        DeviceHealth::Degraded => "degraded",
        DeviceHealth::Absent => "absent",
    }
}

fn link_name(l: LinkState) -> &'static str {
    match l {
        LinkState::Starting => "starting",
        LinkState::Online => "online",
        LinkState::Offline => "offline",
        LinkState::AuthRejected => "auth_rejected",
        LinkState::Throttled => "throttled",
    }
}

impl Status {
    /// Problems a technician should act on, in words (empty: all good).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.running {
            p.push(
                "the kiosk is not running: `systemctl status kiosk`, `journalctl -u kiosk`"
                    .to_owned(),
            );
        }
        for d in &self.devices {
            if d.state != "ok" {
                p.push(format!(
                    "{} is {}{}",
                    d.device,
                    d.state,
                    d.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(s) = &self.sync {
            match s.link.as_str() {
                "auth_rejected" => p.push(
                    "the CRM refuses this kiosk's credentials: check the clock, or re-provision"
                        .to_owned(),
                ),
                "offline" => p.push(format!(
                    "the CRM is unreachable{}",
                    s.last_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )),
                _ => {}
            }
        }
        if self.journal.dead_letters > 0 {
            p.push(format!(
                "{} events were rejected by the CRM: `kiosk events --dead-letters`",
                self.journal.dead_letters
            ));
        }
        if self.journal.dropping_low_value {
            p.push(format!(
                "the journal reached its disk budget with the backlog unsent: taps, campaign views \
                 and logs are dropped ({} so far); tickets, registrations and consents are kept; \
                 check the link to the CRM",
                self.journal.dropped_over_budget
            ));
        }
        if self.disk.as_ref().is_some_and(|d| d.nearly_full) {
            p.push("the data disk is nearly full".to_owned());
        }
        if self.clock.synchronised == Some(false) {
            p.push("the clock is not synchronised (NTP): `timedatectl`".to_owned());
        }
        if let Some(l) = &self.loops
            && let Some(problem) = &l.problem
        {
            p.push(format!("firmware loop wedged: {problem}"));
        }
        if let Some(v) = self.store_config.refused {
            p.push(format!(
                "store configuration v{v} from the CRM was refused ({}); {}; fix it at the CRM \
                 (`crm-endpoint stores set-config`)",
                self.store_config
                    .refused_reason
                    .as_deref()
                    .unwrap_or("no reason kept"),
                match self.store_config.version {
                    0 => "running site.toml alone".to_owned(),
                    n => format!("running v{n}"),
                }
            ));
        }
        if let Some(store) = &self.store {
            for peer in store.peers.iter().filter(|p| !p.reachable) {
                p.push(format!(
                    "store kiosk {} is out of reach: its turns appear here when the LAN is back{}; \
                     check its power, cable and [store].kiosks url",
                    peer.id,
                    if peer.id == store.sequencer {
                        " and this kiosk numbers from its own block (A<n>-001) meanwhile"
                    } else {
                        ""
                    }
                ));
            }
        }
        p
    }

    /// The status as a screen of text.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let row = |o: &mut String, k: &str, v: &str| {
            let _ = writeln!(o, "{k:<22} {v}");
        };
        row(
            &mut o,
            "kiosk",
            &format!(
                "{} (store {})  {}",
                self.kiosk_id.as_deref().unwrap_or("not provisioned"),
                self.store_id.as_deref().unwrap_or("?"),
                if self.running {
                    "RUNNING"
                } else {
                    "NOT RUNNING"
                }
            ),
        );
        row(
            &mut o,
            "version",
            &format!("{} ({}, {})", self.version, self.commit, self.target),
        );
        row(&mut o, "hardware profile", &self.hardware_profile);
        let c = &self.store_config;
        row(
            &mut o,
            "store config",
            &format!(
                "{}{}{}",
                match c.version {
                    0 => "site.toml only (none from the CRM)".to_owned(),
                    n => format!("v{n} from the CRM ({}) over site.toml", c.parts.join(", ")),
                },
                c.waiting
                    .map(|w| format!("; v{w} waiting for the attract screen"))
                    .unwrap_or_default(),
                c.refused
                    .map(|r| format!("; v{r} REFUSED"))
                    .unwrap_or_default(),
            ),
        );
        if let Some(up) = self.uptime_s {
            row(&mut o, "uptime", &human_duration(up));
        }
        let _ = writeln!(o);
        if let Some(store) = &self.store {
            let _ = writeln!(o, "store");
            row(
                &mut o,
                "  sequencer",
                &if store.this_is_sequencer {
                    format!("{} (this kiosk)", store.sequencer)
                } else {
                    store.sequencer.clone()
                },
            );
            for peer in &store.peers {
                row(
                    &mut o,
                    &format!("  {}", peer.id),
                    &match (peer.reachable, peer.last_seen_s) {
                        (true, _) => "REACHABLE".to_owned(),
                        (false, Some(s)) => {
                            format!("OUT OF REACH (last answered {} ago)", human_duration(s))
                        }
                        (false, None) => "OUT OF REACH (never answered)".to_owned(),
                    },
                );
            }
            let _ = writeln!(o);
        }
        if !self.devices.is_empty() {
            let _ = writeln!(o, "devices");
            for d in &self.devices {
                row(
                    &mut o,
                    &format!("  {}", d.device),
                    &format!(
                        "{}{}",
                        d.state.to_uppercase(),
                        d.reason
                            .as_deref()
                            .map(|r| format!("  {r}"))
                            .unwrap_or_default()
                    ),
                );
            }
            let _ = writeln!(o);
        }
        if let Some(screen) = &self.screen {
            let shown = match screen.clients {
                0 => format!(
                    "NO BROWSER ON THE KIOSK PAGE for {}",
                    human_duration(screen.for_s)
                ),
                1 => format!(
                    "SHOWING THE KIOSK PAGE for {}",
                    human_duration(screen.for_s)
                ),
                n => format!(
                    "SHOWING THE KIOSK PAGE ({n} pages open) for {}",
                    human_duration(screen.for_s)
                ),
            };
            let watchdog = match screen.watchdog_s {
                Some(w) => format!(
                    "  watchdog restarts the browser after {w} s without it ({} restarts so far)",
                    screen.restarts_requested
                ),
                None => "  watchdog off".to_owned(),
            };
            row(&mut o, "screen", &format!("{shown}{watchdog}"));
            let _ = writeln!(o);
        }
        if let Some(p) = &self.in_store {
            let entered = match p.entered_today {
                Some(n) => format!("  {n} entered today (people counter)"),
                None => "  no people counter".to_owned(),
            };
            row(
                &mut o,
                "in store",
                &format!(
                    "{} waiting ({} with a card){entered}",
                    p.waiting, p.identified
                ),
            );
            let _ = writeln!(o);
        }
        let j = &self.journal;
        let _ = writeln!(o, "journal");
        row(
            &mut o,
            "  file",
            &format!("{} ({})", j.path.display(), human_bytes(j.file_bytes)),
        );
        row(
            &mut o,
            "  events",
            &format!("{} (last seq {})", j.events, j.last_seq),
        );
        row(
            &mut o,
            "  unsynced",
            &match (j.pending, j.oldest_pending_age_s) {
                (0, _) => "0".to_owned(),
                (n, Some(age)) => format!("{n}, oldest {} old", human_duration(age)),
                (n, None) => n.to_string(),
            },
        );
        row(&mut o, "  dead letters", &j.dead_letters.to_string());
        if j.dropped_over_budget > 0 || j.dropping_low_value {
            row(
                &mut o,
                "  dropped",
                &format!(
                    "{} low-value events at the disk budget{}",
                    j.dropped_over_budget,
                    if j.dropping_low_value { " (now)" } else { "" }
                ),
            );
        }
        let _ = writeln!(o);
        if let Some(s) = &self.sync {
            let _ = writeln!(o, "sync");
            row(&mut o, "  link", &s.link.to_uppercase());
            row(
                &mut o,
                "  last sync",
                &match s.last_success_age_s {
                    Some(a) => format!("{} ago", human_duration(a)),
                    None => "never since start".to_owned(),
                },
            );
            if let Some(e) = &s.last_error {
                row(&mut o, "  last error", e);
            }
            row(
                &mut o,
                "  clock skew",
                &s.clock_skew_ms
                    .map(|ms| format!("{ms} ms (kiosk minus CRM)"))
                    .unwrap_or_else(|| "not measured yet".to_owned()),
            );
            let _ = writeln!(o);
        }
        if let Some(d) = &self.disk {
            row(
                &mut o,
                "disk",
                &format!(
                    "{} free of {}{}",
                    human_bytes(d.free_bytes),
                    human_bytes(d.total_bytes),
                    if d.nearly_full { "  NEARLY FULL" } else { "" }
                ),
            );
        }
        row(
            &mut o,
            "clock",
            &format!(
                "{}  {}",
                self.clock.now,
                match self.clock.synchronised {
                    Some(true) => "synchronised",
                    Some(false) => "NOT SYNCHRONISED",
                    None => "sync unknown",
                }
            ),
        );
        let problems = self.problems();
        let _ = writeln!(o);
        if problems.is_empty() {
            let _ = writeln!(o, "all good");
        } else {
            let _ = writeln!(o, "problems");
            for p in problems {
                let _ = writeln!(o, "  - {p}");
            }
        }
        o
    }

    /// The status in Prometheus' text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut o = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, samples: &[(String, f64)]| {
            let _ = writeln!(o, "# HELP kiosk_{name} {help}");
            let _ = writeln!(o, "# TYPE kiosk_{name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(o, "kiosk_{name}{labels} {v}");
            }
        };
        metric(
            "build_info",
            "Firmware build (always 1).",
            "gauge",
            &[(
                format!(
                    "{{version=\"{}\",commit=\"{}\",target=\"{}\"}}",
                    esc(&self.version),
                    esc(&self.commit),
                    esc(&self.target)
                ),
                1.0,
            )],
        );
        if let Some(up) = self.uptime_s {
            metric(
                "uptime_seconds",
                "Seconds since the firmware started.",
                "gauge",
                &[(String::new(), up as f64)],
            );
        }
        if let Some(screen) = &self.screen {
            metric(
                "screen_clients",
                "Kiosk pages open on a screen (0: the customer sees no kiosk).",
                "gauge",
                &[(String::new(), screen.clients as f64)],
            );
            metric(
                "screen_restarts_requested",
                "Browser restarts the screen watchdog requested since the firmware started.",
                "counter",
                &[(String::new(), f64::from(screen.restarts_requested))],
            );
        }
        if let Some(p) = &self.in_store {
            metric(
                "customers_waiting",
                "Customers waiting in the store now (the store's queue).",
                "gauge",
                &[(String::new(), f64::from(p.waiting))],
            );
            if let Some(n) = p.entered_today {
                metric(
                    "people_entered_today",
                    "People the presence input counted entering today.",
                    "gauge",
                    &[(String::new(), f64::from(n))],
                );
            }
        }
        metric(
            "store_config_version",
            "Version of the store configuration from the CRM the kiosk runs (0: site.toml alone).",
            "gauge",
            &[(String::new(), self.store_config.version as f64)],
        );
        let devices: Vec<(String, f64)> = self
            .devices
            .iter()
            .flat_map(|d| {
                ["ok", "degraded", "absent"].into_iter().map(move |s| {
                    (
                        format!("{{device=\"{}\",state=\"{s}\"}}", esc(&d.device)),
                        if d.state == s { 1.0 } else { 0.0 },
                    )
                })
            })
            .collect();
        metric(
            "device_state",
            "Device health (1 for the current state).",
            "gauge",
            &devices,
        );
        let j = &self.journal;
        metric(
            "journal_bytes",
            "Journal database plus WAL.",
            "gauge",
            &[(String::new(), j.file_bytes as f64)],
        );
        metric(
            "journal_events",
            "Events kept in the journal.",
            "gauge",
            &[(String::new(), j.events as f64)],
        );
        metric(
            "journal_last_seq",
            "Highest event sequence number.",
            "counter",
            &[(String::new(), j.last_seq as f64)],
        );
        metric(
            "outbox_events",
            "Events not yet acknowledged by the CRM.",
            "gauge",
            &[(String::new(), j.pending as f64)],
        );
        metric(
            "outbox_oldest_age_seconds",
            "Age of the oldest unacknowledged event (0 when none).",
            "gauge",
            &[(String::new(), j.oldest_pending_age_s.unwrap_or(0) as f64)],
        );
        metric(
            "dead_letters",
            "Events the CRM rejected.",
            "gauge",
            &[(String::new(), j.dead_letters as f64)],
        );
        metric(
            "journal_dropped_events",
            "Low-value events dropped at the journal's disk budget.",
            "counter",
            &[(String::new(), j.dropped_over_budget as f64)],
        );
        if let Some(s) = &self.sync {
            let links: Vec<(String, f64)> = [
                "starting",
                "online",
                "offline",
                "auth_rejected",
                "throttled",
            ]
            .into_iter()
            .map(|l| {
                (
                    format!("{{link=\"{l}\"}}"),
                    if s.link == l { 1.0 } else { 0.0 },
                )
            })
            .collect();
            metric(
                "sync_link",
                "Link to the CRM (1 for the current state).",
                "gauge",
                &links,
            );
            if let Some(a) = s.last_success_age_s {
                metric(
                    "sync_last_success_age_seconds",
                    "Seconds since the CRM last answered.",
                    "gauge",
                    &[(String::new(), a as f64)],
                );
            }
            if let Some(ms) = s.clock_skew_ms {
                metric(
                    "clock_skew_seconds",
                    "Kiosk clock minus CRM clock.",
                    "gauge",
                    &[(String::new(), ms as f64 / 1000.0)],
                );
            }
            metric(
                "sync_events_acknowledged_total",
                "Events acknowledged since start.",
                "counter",
                &[(String::new(), s.events_acknowledged as f64)],
            );
            metric(
                "sync_consecutive_failures",
                "Failed batch attempts since the last success.",
                "gauge",
                &[(String::new(), s.consecutive_failures as f64)],
            );
        }
        if let Some(d) = &self.disk {
            metric(
                "disk_free_bytes",
                "Free space of the data file system.",
                "gauge",
                &[(String::new(), d.free_bytes as f64)],
            );
        }
        if let Some(sync) = self.clock.synchronised {
            metric(
                "clock_synchronised",
                "1 when NTP has synchronised the clock.",
                "gauge",
                &[(String::new(), if sync { 1.0 } else { 0.0 })],
            );
        }
        if let Some(l) = &self.loops {
            metric(
                "loops_healthy",
                "1 while every firmware loop is alive (watchdog petted).",
                "gauge",
                &[(String::new(), if l.healthy { 1.0 } else { 0.0 })],
            );
        }
        o
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn human_bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let b = b as f64;
    if b >= K * K * K {
        format!("{:.1} GiB", b / (K * K * K))
    } else if b >= K * K {
        format!("{:.1} MiB", b / (K * K))
    } else if b >= K {
        format!("{:.1} KiB", b / K)
    } else {
        format!("{b} B")
    }
}

fn human_duration(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            version: "0.1.0".into(),
            commit: "abc".into(),
            target: "aarch64-unknown-linux-gnu".into(),
            running: true,
            kiosk_id: Some("k-1".into()),
            store_id: Some("madrid".into()),
            hardware_profile: "simulated".into(),
            started_at: Some("2026-11-23T10:00:00Z".into()),
            uptime_s: Some(3725),
            devices: vec![
                DeviceStatus {
                    device: "card_reader".into(),
                    state: "ok".into(),
                    reason: None,
                },
                DeviceStatus {
                    device: "printer".into(),
                    state: "absent".into(),
                    reason: Some("paper out".into()),
                },
            ],
            journal: JournalStatus {
                path: "/var/lib/kiosk/journal.db".into(),
                file_bytes: 3 * 1024 * 1024,
                events: 1200,
                pending: 40,
                oldest_pending: Some("2026-11-23T10:50:00Z".into()),
                oldest_pending_age_s: Some(600),
                dead_letters: 1,
                last_seq: 1200,
                dropped_over_budget: 0,
                dropping_low_value: false,
            },
            sync: Some(SyncSummary {
                link: "offline".into(),
                last_success: None,
                last_success_age_s: Some(610),
                last_error: Some("connection refused".into()),
                consecutive_failures: 7,
                clock_skew_ms: Some(-250),
                events_acknowledged: 1160,
                events_dead_lettered: 1,
                last_feed_sync: None,
            }),
            disk: Some(DiskStatus {
                free_bytes: 100 * 1024 * 1024,
                total_bytes: 16 * 1024 * 1024 * 1024,
                nearly_full: true,
            }),
            clock: ClockStatus {
                now: "2026-11-23T11:00:00Z".into(),
                synchronised: Some(false),
            },
            loops: Some(LoopStatus {
                healthy: true,
                problem: None,
            }),
            store: Some(StoreStatus {
                sequencer: "k-seq".into(),
                this_is_sequencer: false,
                peers: vec![crate::store::PeerStatus {
                    id: "k-seq".into(),
                    reachable: false,
                    last_seen_s: Some(125),
                }],
            }),
            screen: Some(crate::screen::ScreenStatus {
                clients: 0,
                for_s: 130,
                watchdog_s: Some(90),
                restarts_requested: 1,
            }),
            in_store: Some(InStoreStatus {
                waiting: 4,
                identified: 3,
                entered_today: Some(27),
            }),
            store_config: StoreConfigStatus {
                version: 4,
                parts: vec!["services".into()],
                waiting: None,
                refused: Some(5),
                refused_reason: Some("key `queue.services[1].letter`: used twice".into()),
            },
        }
    }

    #[test]
    fn the_text_screen_names_every_problem_with_what_to_do() {
        let text = sample().to_text();
        for want in [
            "k-1 (store madrid)  RUNNING",
            "1 h 2 min",
            "printer",
            "ABSENT  paper out",
            "40, oldest 10 min 0 s old",
            "OFFLINE",
            "-250 ms",
            "NEARLY FULL",
            "NOT SYNCHRONISED",
            "printer is absent: paper out",
            "the CRM is unreachable: connection refused",
            "kiosk events --dead-letters",
            "timedatectl",
            "OUT OF REACH (last answered 2 min 5 s ago)",
            "store kiosk k-seq is out of reach",
            "numbers from its own block",
            "NO BROWSER ON THE KIOSK PAGE for 2 min 10 s",
            "after 90 s without it (1 restarts so far)",
            "4 waiting (3 with a card)  27 entered today (people counter)",
            "v4 from the CRM (services) over site.toml; v5 REFUSED",
            "store configuration v5 from the CRM was refused (key `queue.services[1].letter`: used twice); running v4",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let mut good = sample();
        good.devices.truncate(1);
        good.sync.as_mut().unwrap().link = "online".into();
        good.journal.dead_letters = 0;
        good.disk.as_mut().unwrap().nearly_full = false;
        good.clock.synchronised = Some(true);
        good.store.as_mut().unwrap().peers[0].reachable = true;
        good.store_config.refused = None;
        assert!(good.problems().is_empty(), "{:?}", good.problems());
        assert!(good.to_text().ends_with("all good\n"));
    }

    #[test]
    fn metrics_are_valid_prometheus_text() {
        let text = sample().to_prometheus();
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(declared.insert(name.to_owned()), "{name} declared twice");
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            let name = series.split('{').next().unwrap();
            assert!(declared.contains(name), "{name} has no TYPE");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
        }
        assert!(text.contains("kiosk_outbox_events 40\n"));
        assert!(text.contains("kiosk_device_state{device=\"printer\",state=\"absent\"} 1\n"));
        assert!(text.contains("kiosk_sync_link{link=\"offline\"} 1\n"));
        assert!(text.contains("kiosk_clock_skew_seconds -0.25\n"));
        assert!(text.contains("kiosk_screen_clients 0\n"));
        assert!(text.contains("kiosk_customers_waiting 4\n"));
        assert!(text.contains("kiosk_people_entered_today 27\n"));
    }

    #[test]
    fn the_status_survives_json() {
        let s = sample();
        let back: Status = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn disk_and_clock_are_read_from_the_system() {
        let d = disk_status(Path::new("/")).unwrap();
        assert!(d.total_bytes > 0 && d.free_bytes <= d.total_bytes);
        let c = clock_status(OffsetDateTime::now_utc());
        assert!(c.now.starts_with("20"));
    }
}
