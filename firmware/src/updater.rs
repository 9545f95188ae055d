//! The firmware's (unprivileged) side of safe updates: report how the last update ended, ask the
//! CRM which release this kiosk should run, download it in the background (resumable, bounded,
//! signed requests like the rest of sync), check its signature against the pinned key, and at a
//! quiet moment ask the root helper (`kiosk apply-update`, [`crate::update`]) to install it by
//! writing the version to `/run/kiosk/update-request`.
//!
//! Data flow: CRM assignment → downloads dir (`kiosk_<v>_<arch>.deb.part` → `.deb` + `.sig`) →
//! quiet moment (attract screen, nobody near, for [`Settings::quiet_for`]; inside the window of
//! `/etc/kiosk/updates.toml` if it sets one) → request file → helper → outcome file → this
//! module's `firmware_updated` event at the next start.
//!
//! Updates are off when the kiosk package is not installed (a development run) or no release
//! key is pinned.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiosk_core::journey::{ScreenBody, ScreenView};
use kiosk_journal::db::KioskDb;
use kiosk_protocol::events::{Event, FirmwareUpdated, UpdateResult};
use kiosk_protocol::release::{MAX_RELEASE_BYTES, ReleasePublicKey, SignedRelease};
use kiosk_sync::ReleaseClient;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::update::{OutcomeKind, deb_arch, package_stem};

/// Bytes asked per download request.
const PIECE_BYTES: u64 = 1024 * 1024;

/// Where and how often.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The pinned release key.
    pub key: PathBuf,
    /// The firmware's downloads.
    pub downloads: PathBuf,
    /// The helper's kept packages (read only here).
    pub releases: PathBuf,
    /// The request file the helper's path unit watches.
    pub request: PathBuf,
    /// The helper's outcome file.
    pub outcome: PathBuf,
    /// How often the CRM is asked (with up to a quarter more, at random).
    pub check_every: Duration,
    /// How long the attract screen must have shown, nobody near, before an install.
    pub quiet_for: Duration,
    /// Local hours `[from, to)` an install may start in (none: any time).
    pub window: Option<(u8, u8)>,
    /// The version this kiosk runs (`None`: the installed package's, from dpkg-query; set by
    /// tests that run the firmware without installing it).
    pub running: Option<String>,
}

/// `/etc/kiosk/updates.toml` (optional; not in site.toml, so a kiosk rolled back to a firmware
/// that predates updates still reads its site config).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatesFile {
    /// Minutes of quiet (attract screen, nobody near) before an install (default 10).
    pub quiet_minutes: Option<u64>,
    /// Local hours an install may start in, `"02-05"` (default: any time).
    pub window: Option<String>,
    /// Minutes between asking the CRM (default 15).
    pub check_minutes: Option<u64>,
}

impl Settings {
    /// The installed kiosk's settings, with `/etc/kiosk/updates.toml` if present.
    pub fn installed() -> Settings {
        let file: UpdatesFile = std::fs::read_to_string("/etc/kiosk/updates.toml")
            .ok()
            .and_then(|t| match toml::from_str(&t) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring /etc/kiosk/updates.toml");
                    None
                }
            })
            .unwrap_or_default();
        Settings {
            key: PathBuf::from(kiosk_protocol::release::RELEASE_KEY_PATH),
            downloads: PathBuf::from(crate::update::DOWNLOADS_DIR),
            releases: PathBuf::from(crate::update::RELEASES_DIR),
            request: PathBuf::from(crate::update::REQUEST_PATH),
            outcome: PathBuf::from(crate::update::OUTCOME_PATH),
            check_every: Duration::from_secs(60 * file.check_minutes.unwrap_or(15).max(1)),
            quiet_for: Duration::from_secs(60 * file.quiet_minutes.unwrap_or(10)),
            window: file.window.as_deref().and_then(parse_window),
            running: None,
        }
    }
}

/// `"02-05"` → `(2, 5)`.
pub fn parse_window(text: &str) -> Option<(u8, u8)> {
    let (a, b) = text.split_once('-')?;
    let (a, b): (u8, u8) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a < 24 && b <= 24 && a != b).then_some((a, b))
}

/// Whether local hour `hour` is inside `[from, to)` (a window may wrap midnight: `22-04`).
pub fn in_window(window: Option<(u8, u8)>, hour: u8) -> bool {
    match window {
        None => true,
        Some((from, to)) if from < to => (from..to).contains(&hour),
        Some((from, to)) => hour >= from || hour < to,
    }
}

/// Since when the kiosk has been quiet, as far as the screen shows.
#[derive(Debug, Default)]
struct Quiet {
    since: Option<tokio::time::Instant>,
}

impl Quiet {
    /// Looks at the screen now. A change not watched (the worker was busy asking the CRM or
    /// downloading) may hide a whole journey, so a quiet screen then counts from now.
    fn observe(
        &mut self,
        screen: &mut watch::Receiver<ScreenView>,
        window: Option<(u8, u8)>,
        hour: u8,
    ) {
        let unwatched = screen.has_changed().unwrap_or(true);
        let quiet = is_quiet(&screen.borrow_and_update()) && in_window(window, hour);
        let now = tokio::time::Instant::now();
        self.since = match (quiet, unwatched) {
            (false, _) => None,
            (true, true) => Some(now),
            (true, false) => self.since.or(Some(now)),
        };
    }

    /// Quiet for at least `d`.
    fn lasted(&self, d: Duration) -> bool {
        self.since
            .is_some_and(|t| tokio::time::Instant::now().duration_since(t) >= d)
    }
}

/// A customer journey is not in progress and nobody stands at the kiosk.
pub fn is_quiet(view: &ScreenView) -> bool {
    matches!(view.body, ScreenBody::Attract { inviting: false }) && !view.assistance_called
}

/// The marker of a release this kiosk rolled back: a rollout offering it again is not followed
/// (no install-and-roll-back loop while the rollout has not halted yet); a pin is.
fn rolled_back_marker(downloads: &Path, version: &str) -> PathBuf {
    downloads.join(format!("{}.rolled-back", package_stem(version, deb_arch())))
}

/// Journals the helper's outcome of the last update (then removes the file), so the CRM learns
/// of an install, a rollback or a refusal through the ordinary sync; a rollback is remembered
/// so that the same release is not tried again unless the kiosk is pinned to it.
pub fn report_outcome(db: &KioskDb, settings: &Settings) {
    let path = settings.outcome.as_path();
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    match serde_json::from_str::<crate::update::Outcome>(&text) {
        Ok(o) => {
            let result = match o.result {
                OutcomeKind::Installed => UpdateResult::Installed,
                OutcomeKind::RolledBack => UpdateResult::RolledBack,
                OutcomeKind::Refused => UpdateResult::Refused,
            };
            let reason = o.reason.map(|r| r.chars().take(2000).collect());
            if result == UpdateResult::RolledBack {
                let marker = rolled_back_marker(&settings.downloads, &o.version);
                if let Err(e) = std::fs::create_dir_all(&settings.downloads)
                    .and_then(|()| std::fs::write(&marker, b""))
                {
                    tracing::warn!(marker = %marker.display(), error = %e, "cannot remember the rolled back release");
                }
            }
            tracing::info!(
                version = o.version,
                ?result,
                reason,
                "firmware update ended"
            );
            if let Err(e) = db.append(Event::FirmwareUpdated(FirmwareUpdated {
                version: o.version,
                previous: o.previous,
                result,
                reason,
            })) {
                tracing::warn!(error = %e, "cannot journal the update outcome; keeping the file");
                return;
            }
        }
        Err(e) => tracing::warn!(error = %e, "unreadable update outcome file; removing it"),
    }
    let _ = std::fs::remove_file(path);
}

/// The Debian version of the installed kiosk package (`None`: not installed from a package).
pub fn installed_package_version() -> Option<String> {
    crate::update::installed_version().ok()
}

/// Starts the update worker, if updates are on (package installed, key pinned).
pub fn spawn(
    settings: Settings,
    client: ReleaseClient,
    kiosk_id: String,
    screen: watch::Receiver<ScreenView>,
    clock_hour: impl Fn() -> u8 + Send + 'static,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    let Some(running) = settings.running.clone().or_else(installed_package_version) else {
        tracing::info!("updates off: the kiosk package is not installed (a development run)");
        return None;
    };
    let key = match std::fs::read_to_string(&settings.key)
        .ok()
        .map(|t| ReleasePublicKey::parse(&t))
    {
        Some(Ok(k)) => k,
        Some(Err(e)) => {
            tracing::warn!(key = %settings.key.display(), error = %e, "updates off: the pinned release key is unreadable");
            return None;
        }
        None => {
            tracing::info!(key = %settings.key.display(), "updates off: no release key pinned (kiosk provision --release-key)");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let worker = Worker {
            settings,
            client,
            kiosk_id,
            key,
            running,
            arch: deb_arch(),
        };
        worker.run(screen, clock_hour, shutdown).await;
    }))
}

struct Worker {
    settings: Settings,
    client: ReleaseClient,
    kiosk_id: String,
    key: ReleasePublicKey,
    running: String,
    arch: &'static str,
}

impl Worker {
    async fn run(
        &self,
        mut screen: watch::Receiver<ScreenView>,
        clock_hour: impl Fn() -> u8,
        shutdown: CancellationToken,
    ) {
        // The first look soon after start (the CRM learns what this kiosk runs), then spread.
        let mut wait = self.settings.check_every.min(Duration::from_secs(30));
        // Since when the kiosk has been quiet, watched across checks: a quiet moment longer
        // than the time between two checks still counts whole.
        let mut quiet = Quiet::default();
        let mut ready: Option<String> = None;
        loop {
            let next_check = tokio::time::Instant::now() + wait;
            // Between checks: watch the screen; with a release ready, install at a quiet moment.
            loop {
                quiet.observe(&mut screen, self.settings.window, clock_hour());
                if let Some(version) = &ready
                    && quiet.lasted(self.settings.quiet_for)
                {
                    match self.ask_install(version) {
                        Ok(()) => {
                            tracing::info!(version, "asked the update helper to install");
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot ask for the install"),
                    }
                    // The helper restarts this process with the new version (or rolls back);
                    // until then, not again.
                    ready = None;
                    quiet = Quiet::default();
                }
                let now = tokio::time::Instant::now();
                if now >= next_check {
                    break;
                }
                let poll = self
                    .settings
                    .quiet_for
                    .min(Duration::from_secs(5))
                    .max(Duration::from_millis(200));
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = screen.changed() => {}
                    () = tokio::time::sleep(poll.min(next_check - now)) => {}
                }
            }
            let jitter = rand::random::<f64>() * 0.25;
            wait = self.settings.check_every.mul_f64(1.0 + jitter);
            ready = match self.prepare().await {
                Ok(version) => version,
                Err(e) => {
                    tracing::warn!(error = %e, "firmware update not ready");
                    None
                }
            };
        }
    }

    /// Asks the CRM; downloads and verifies what it assigns (and the running version's package
    /// when the helper keeps none, for the rollback). The version to install, when ready.
    async fn prepare(&self) -> Result<Option<String>, String> {
        let assigned = self
            .client
            .assignment(self.arch, &self.running, None)
            .await
            .map_err(|e| format!("cannot ask the CRM for a release: {e}"))?;
        let Some(release) = assigned.release else {
            return Ok(None);
        };
        let version = release.manifest.version.clone();
        if version == self.running {
            return Ok(None);
        }
        if !assigned.pinned && rolled_back_marker(&self.settings.downloads, &version).exists() {
            tracing::debug!(version, "not retrying a release this kiosk rolled back");
            return Ok(None);
        }
        release
            .verify_signature(&self.key)
            .map_err(|e| e.to_string())?;
        // An older release only with the operator's signed pin of this kiosk to it (the root
        // helper checks it again); not even downloaded otherwise.
        let (older, running) = (version.clone(), self.running.clone());
        let older =
            tokio::task::spawn_blocking(move || crate::update::older_than(&older, &running))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        if older {
            let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
            let allowed = match &assigned.pin {
                Some(pin) => pin
                    .allows(&self.key, &self.kiosk_id, &version, now_s)
                    .map_err(|e| e.to_string()),
                None => Err("the CRM sent no signed pin".to_owned()),
            };
            if let Err(why) = allowed {
                return Err(format!(
                    "refusing release {version}: older than the running {} and {why}",
                    self.running
                ));
            }
        }
        self.download(&release).await?;
        let pin_path = self.settings.downloads.join(format!(
            "{}.pin",
            package_stem(&version, &release.manifest.arch)
        ));
        match (&assigned.pin, older) {
            (Some(pin), true) => {
                let text = serde_json::to_string_pretty(pin).map_err(|e| e.to_string())?;
                std::fs::write(&pin_path, text)
                    .map_err(|e| format!("{}: {e}", pin_path.display()))?;
            }
            _ => {
                let _ = std::fs::remove_file(&pin_path);
            }
        }
        let kept = self
            .settings
            .releases
            .join(format!("{}.deb", package_stem(&self.running, self.arch)));
        if !kept.exists() {
            match assigned.current {
                Some(current) => {
                    current
                        .verify_signature(&self.key)
                        .map_err(|e| e.to_string())?;
                    self.download(&current).await?;
                }
                None => {
                    return Err(format!(
                        "the CRM has no signed package of the running version {} to roll back to; upload it",
                        self.running
                    ));
                }
            }
        }
        // Ready: the CRM's rollout view counts this kiosk as downloaded.
        if let Err(e) = self
            .client
            .assignment(self.arch, &self.running, Some(&version))
            .await
        {
            tracing::debug!(error = %e, "cannot report the download to the CRM");
        }
        Ok(Some(version))
    }

    /// Downloads `release` into the downloads dir, resuming a partial file; verified before it
    /// gets its final name.
    async fn download(&self, release: &SignedRelease) -> Result<(), String> {
        let m = &release.manifest;
        if m.size > MAX_RELEASE_BYTES {
            return Err(format!(
                "release {} is over {MAX_RELEASE_BYTES} bytes",
                m.version
            ));
        }
        let stem = package_stem(&m.version, &m.arch);
        let dir = &self.settings.downloads;
        let deb = dir.join(format!("{stem}.deb"));
        let sig = dir.join(format!("{stem}.sig"));
        let verified = |path: &Path| {
            std::fs::File::open(path)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    release
                        .verify_package(&self.key, std::io::BufReader::new(f))
                        .map_err(|e| e.to_string())
                })
        };
        if deb.exists() && verified(&deb).is_ok() && sig.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let part = dir.join(format!("{stem}.deb.part"));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(|e| format!("{}: {e}", part.display()))?;
        let mut have = file.metadata().map(|m| m.len()).unwrap_or(0);
        if have > m.size {
            file.set_len(0).map_err(|e| e.to_string())?;
            have = 0;
        }
        while have < m.size {
            let piece = self
                .client
                .piece(&m.version, &m.arch, have, PIECE_BYTES.min(m.size - have))
                .await
                .map_err(|e| format!("download of {} stopped at {have} bytes: {e}", m.version))?;
            if piece.is_empty() || have + piece.len() as u64 > m.size {
                let _ = file.set_len(0);
                return Err(format!("the CRM sent a bad piece of {}", m.version));
            }
            file.write_all(&piece).map_err(|e| e.to_string())?;
            have += piece.len() as u64;
        }
        file.sync_all().map_err(|e| e.to_string())?;
        drop(file);
        if let Err(e) = verified(&part) {
            let _ = std::fs::remove_file(&part);
            return Err(format!("downloaded release refused: {e}"));
        }
        let text = serde_json::to_string_pretty(release).map_err(|e| e.to_string())?;
        std::fs::write(&sig, text).map_err(|e| format!("{}: {e}", sig.display()))?;
        std::fs::rename(&part, &deb).map_err(|e| format!("{}: {e}", deb.display()))?;
        tracing::info!(
            version = m.version,
            bytes = m.size,
            "release downloaded and verified"
        );
        Ok(())
    }

    fn ask_install(&self, version: &str) -> std::io::Result<()> {
        let tmp = self.settings.request.with_extension("part");
        std::fs::write(&tmp, format!("{version}\n"))?;
        std::fs::rename(&tmp, &self.settings.request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_may_wrap_midnight() {
        assert_eq!(parse_window("02-05"), Some((2, 5)));
        assert_eq!(parse_window("22-4"), Some((22, 4)));
        assert_eq!(parse_window("5-5"), None);
        assert_eq!(parse_window("nope"), None);
        assert!(in_window(Some((2, 5)), 3));
        assert!(!in_window(Some((2, 5)), 5));
        assert!(in_window(Some((22, 4)), 23) && in_window(Some((22, 4)), 1));
        assert!(!in_window(Some((22, 4)), 12));
        assert!(in_window(None, 12));
    }
}
