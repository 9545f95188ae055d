//! `kiosk provision`: turns an installed kiosk into an enrolled one.
//!
//! 1. Gather the answers (flags, or questions at the terminal): CRM endpoint, one-time
//!    enrollment code, hardware profile, staff PIN.
//! 2. Build the site config (`<config-dir>/site.toml`: the existing one, else the shipped example)
//!    with those answers, comments kept (`toml_edit`), and validate it *before* the code is spent.
//! 3. Re-provisioning: events of the old identity still unsynced are sent with the old
//!    credentials first (they are signed as that kiosk; the CRM refuses them from another). What
//!    cannot be sent in time stays in the journal: provisioning refuses to go on unless
//!    `--keep-unsynced` says so, and then they remain visible in `kiosk events --pending`/dead
//!    letters. The journal is never deleted or rewritten.
//! 4. Enroll (`POST /v1/enroll`), then write the credentials and the site config atomically,
//!    mode 0600, owned by the `kiosk` user when run as root.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kiosk_protocol::wire::EnrollRequest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use toml_edit::{DocumentMut, value};
use uuid::Uuid;

use crate::config::Config;
use crate::credentials::{Credentials, CredentialsError};
use crate::paths::DataDir;
use kiosk_journal::clock::SystemClock;
use kiosk_journal::crypto::DeviceKey;
use kiosk_journal::db::KioskDb;
use kiosk_journal::{Identity, Journal, Options as JournalOptions};

/// The site config a fresh kiosk starts from.
pub const SITE_TEMPLATE: &str = include_str!("../config/site.example.toml");
/// The system user the service runs as (created by the package).
pub const SERVICE_USER: &str = "kiosk";

/// What `kiosk provision` was given.
#[derive(Debug, Clone)]
pub struct Options {
    /// CRM endpoint URL.
    pub endpoint: Option<String>,
    /// One-time enrollment code.
    pub code: Option<String>,
    /// Hardware profile (a `hw-config/` name or a path).
    pub profile: Option<String>,
    /// Where `site.toml` lives.
    pub config_dir: PathBuf,
    /// Data directory (default: the config's, else `/var/lib/kiosk`).
    pub data_dir: Option<PathBuf>,
    /// Staff PIN for the counter page (stored as its SHA-256).
    pub staff_pin: Option<String>,
    /// Never ask: every missing answer is an error.
    pub non_interactive: bool,
    /// How long to try to send the old identity's unsynced events.
    pub drain_timeout: Duration,
    /// Re-provision even if old events could not be sent.
    pub keep_unsynced: bool,
}

/// What provisioning did.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The site config written.
    pub site_config: PathBuf,
    /// The credentials written.
    pub credentials: PathBuf,
    /// The new kiosk id.
    pub kiosk_id: String,
    /// Its store.
    pub store_id: String,
    /// The previous kiosk id, when re-provisioned.
    pub previous_kiosk_id: Option<String>,
    /// Old events sent before switching identity.
    pub drained: u64,
    /// Old events left unsent (`--keep-unsynced`).
    pub left_unsynced: u64,
}

/// Asks the technician.
pub trait Prompt {
    /// A question with an optional default; the answer (the default when empty).
    fn ask(&mut self, question: &str, default: Option<&str>) -> anyhow::Result<String>;
    /// A secret (not echoed).
    fn ask_secret(&mut self, question: &str) -> anyhow::Result<String>;
    /// Says something.
    fn say(&mut self, text: &str);
}

/// A staff PIN is at least 6 digits: with the per-address lockout (doubling up to an hour
/// after every five wrong PINs), guessing a million PINs from one device takes decades, where
/// four digits took under a year.
pub fn check_pin(pin: &str) -> anyhow::Result<()> {
    if pin.len() < 6 || !pin.chars().all(|c| c.is_ascii_digit()) {
        bail!("the staff PIN must be at least 6 digits");
    }
    Ok(())
}

/// Questions at the terminal.
pub struct Terminal;

impl Prompt for Terminal {
    fn ask(&mut self, question: &str, default: Option<&str>) -> anyhow::Result<String> {
        match default {
            Some(d) => print!("{question} [{d}]: "),
            None => print!("{question}: "),
        }
        std::io::stdout().flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            bail!(
                "no answer to {question:?} (end of input); use the flags of `kiosk provision --non-interactive`"
            );
        }
        let answer = line.trim();
        Ok(match (answer.is_empty(), default) {
            (true, Some(d)) => d.to_owned(),
            _ => answer.to_owned(),
        })
    }

    fn ask_secret(&mut self, question: &str) -> anyhow::Result<String> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        }
        let answer = self.ask(question, None);
        if let Some(t) = &saved {
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
            println!();
        }
        answer
    }

    fn say(&mut self, text: &str) {
        println!("{text}");
    }
}

fn answer(
    given: Option<String>,
    flag: &str,
    opts: &Options,
    prompt: &mut dyn Prompt,
    question: &str,
    default: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(v) = given.filter(|v| !v.trim().is_empty()) {
        return Ok(v.trim().to_owned());
    }
    if opts.non_interactive {
        match default {
            Some(d) => return Ok(d.to_owned()),
            None => bail!("{flag} is required with --non-interactive ({question})"),
        }
    }
    loop {
        let a = prompt.ask(question, default)?;
        if !a.trim().is_empty() {
            return Ok(a.trim().to_owned());
        }
        prompt.say(&format!("{question}: an answer is needed"));
    }
}

/// Provisions the kiosk.
pub async fn provision(opts: &Options, prompt: &mut dyn Prompt) -> anyhow::Result<Provisioned> {
    let site_path = opts.config_dir.join("site.toml");
    let existing = match std::fs::read_to_string(&site_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", site_path.display())),
    };
    let base = existing.clone().unwrap_or_else(|| SITE_TEMPLATE.to_owned());
    let mut doc: DocumentMut = base
        .parse()
        .with_context(|| format!("{} is not valid TOML", site_path.display()))?;
    let current = |doc: &DocumentMut, table: &str, key: &str| {
        doc.get(table)
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };

    let endpoint = answer(
        opts.endpoint.clone(),
        "--endpoint",
        opts,
        prompt,
        "CRM endpoint URL",
        existing
            .as_ref()
            .and_then(|_| current(&doc, "crm", "url"))
            .as_deref(),
    )?;
    let profile = answer(
        opts.profile.clone(),
        "--profile",
        opts,
        prompt,
        &format!(
            "hardware profile ({})",
            crate::config::embedded_profiles().join(", ")
        ),
        current(&doc, "kiosk", "hardware_profile").as_deref(),
    )?;
    let data_dir = match &opts.data_dir {
        Some(d) => d.clone(),
        None => current(&doc, "kiosk", "data_dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/lib/kiosk")),
    };
    let code = answer(
        opts.code.clone(),
        "--code",
        opts,
        prompt,
        "one-time enrollment code (crm-endpoint enroll-code --store STORE)",
        None,
    )?;
    let pin = match (&opts.staff_pin, opts.non_interactive) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => None,
        (None, false) => {
            let p = prompt
                .ask_secret("staff PIN for the counter page (empty: keep the current one)")?;
            (!p.is_empty()).then_some(p)
        }
    };
    if let Some(p) = &pin {
        check_pin(p)?;
    }

    doc["kiosk"]["hardware_profile"] = value(&profile);
    doc["kiosk"]["data_dir"] = value(data_dir.display().to_string());
    doc["crm"]["url"] = value(endpoint.trim_end_matches('/'));
    if let Some(p) = &pin {
        doc["ui"]["staff_pin_sha256"] = value(crate::ui::pin_digest(p));
    }
    // Validate before the one-time code is spent.
    let config = Config::from_text(&site_path, &doc.to_string())?;

    let data = DataDir::new(&data_dir);
    std::fs::create_dir_all(data.root())
        .with_context(|| format!("cannot create {}", data.root().display()))?;
    let old = match Credentials::load(&data.credentials()) {
        Ok(c) => Some(c),
        Err(CredentialsError::Missing { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let (drained, left_unsynced) = match &old {
        Some(old) => {
            prompt.say(&format!(
                "re-provisioning kiosk {}: sending its unsynced events first",
                old.kiosk_id
            ));
            drain_old(&config, old, &data, opts.drain_timeout).await?
        }
        None => (0, 0),
    };
    if left_unsynced > 0 && !opts.keep_unsynced {
        bail!(
            "{left_unsynced} events of kiosk {} could not be sent with its old credentials; \
             connect the kiosk to its CRM and run provision again, or pass --keep-unsynced to go on \
             (they stay in the journal: `kiosk events --pending`)",
            old.as_ref().map(|o| o.kiosk_id.as_str()).unwrap_or("?")
        );
    }

    let tls = kiosk_sync::TlsSettings {
        root_ca_pem: match &config.site.crm.ca_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read crm.ca_file {}", p.display()))?,
            ),
            None => None,
        },
    };
    let answer = kiosk_sync::enroll(
        &endpoint,
        &tls,
        &EnrollRequest {
            code,
            hardware_profile: config.hardware.name.clone(),
            firmware_version: env!("CARGO_PKG_VERSION").to_owned(),
        },
    )
    .await
    .map_err(|e| match &e {
        kiosk_sync::EnrollError::Request(kiosk_sync::RequestError::Status { status, .. })
            if status.as_u16() == 401 =>
        {
            anyhow::anyhow!(
                "the CRM refused the enrollment code (wrong, already used or expired): make a new \
                 one with `crm-endpoint enroll-code --store STORE` ({e})"
            )
        }
        _ => anyhow::anyhow!("cannot enroll with {endpoint}: {e}"),
    })?;
    let credentials = Credentials::from_enrollment(&endpoint, answer);
    doc["kiosk"]["id"] = value(&credentials.kiosk_id);
    doc["kiosk"]["store"] = value(&credentials.store_id);
    if !credentials.store_name.is_empty() {
        doc["kiosk"]["store_name"] = value(&credentials.store_name);
    }
    let text = doc.to_string();
    Config::from_text(&site_path, &text)?;

    let owner = service_user();
    credentials.save_owned(&data.credentials(), owner)?;
    std::fs::create_dir_all(&opts.config_dir)
        .with_context(|| format!("cannot create {}", opts.config_dir.display()))?;
    crate::paths::write_private(&site_path, text.as_bytes(), owner)
        .with_context(|| format!("cannot write {}", site_path.display()))?;
    if let Some(o) = owner {
        // The data directory itself, without following a link put in its place.
        if let Err(e) = std::os::unix::fs::lchown(data.root(), Some(o.uid), Some(o.gid)) {
            tracing::warn!(path = %data.root().display(), error = %e, "cannot hand the data directory to the kiosk user");
        }
    }
    if let Some(old) = &old
        && left_unsynced > 0
    {
        tracing::warn!(
            previous = %old.kiosk_id,
            left_unsynced,
            "re-provisioned with events of the previous identity unsent"
        );
    }
    Ok(Provisioned {
        site_config: site_path,
        credentials: data.credentials(),
        kiosk_id: credentials.kiosk_id,
        store_id: credentials.store_id,
        previous_kiosk_id: old.map(|o| o.kiosk_id),
        drained,
        left_unsynced,
    })
}

/// Sends the journal's pending events with the old identity; returns (sent, left).
async fn drain_old(
    config: &Config,
    old: &Credentials,
    data: &DataDir,
    timeout: Duration,
) -> anyhow::Result<(u64, u64)> {
    if !data.journal().exists() {
        return Ok((0, 0));
    }
    let key = DeviceKey::load_or_create(&data.device_key())?;
    let opened = Journal::open(
        &data.journal(),
        Identity {
            kiosk_id: old.kiosk_id.clone(),
            boot_id: Uuid::new_v4(),
        },
        Arc::new(SystemClock),
        key,
        &JournalOptions::default(),
    )?;
    let before = opened.journal.backlog()?.events;
    if before == 0 {
        return Ok((0, 0));
    }
    let appended = Arc::new(Notify::new());
    let db = KioskDb::new(opened.journal, appended.clone(), None);
    let sync_config = crate::setup::sync_config(config, old, &old.endpoint_url)?;
    let stop = CancellationToken::new();
    let shared = Arc::new(db.clone());
    let (task, mut status) = kiosk_sync::SyncWorker::spawn(
        sync_config,
        shared.clone(),
        shared,
        Arc::new(kiosk_sync::SystemSyncClock::new(Uuid::new_v4())),
        stop.clone(),
        appended,
    )?;
    let pending = |db: &KioskDb| db.journal().backlog().map(|b| b.events).unwrap_or(before);
    let _ = tokio::time::timeout(timeout, async {
        loop {
            if pending(&db) == 0 {
                break;
            }
            if status.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    stop.cancel();
    let _ = task.await;
    let left = pending(&db);
    Ok((before.saturating_sub(left), left))
}

/// Run as root, the service user's ids: the files provisioning writes are handed to it (it
/// reads them, nobody else may).
fn service_user() -> Option<crate::paths::Owner> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name(SERVICE_USER).ok().flatten()?;
    Some(crate::paths::Owner {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    })
}
