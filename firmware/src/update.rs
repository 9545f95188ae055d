//! `kiosk update apply`: the privileged side of a firmware update, run as root by
//! `kiosk-update.service` when the (unprivileged) firmware writes the version it downloaded to
//! `/run/kiosk/update-request` (`kiosk-update.path` watches it, as the screen watchdog's
//! request does). The firmware never gains root: all it can ask is "install version V", and
//! this helper decides.
//!
//! Data flow: request → copy of the downloaded package into the root-owned releases directory →
//! signature and SHA-256 checked on that copy against the pinned key (nothing reaches dpkg
//! before) → the installed version's package kept for rollback (signed too) → `dpkg -i` → the
//! **trial**: the new firmware must answer `kiosk status` as running the new version with a sync
//! after the install, then pass `kiosk selftest`, within the confirm window → committed, or
//! `dpkg -i` of the kept previous package (rolled back). The outcome is written for the firmware
//! (`update-outcome.json` in its data directory), which journals it as an event for the CRM.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kiosk_protocol::release::{
    MAX_RELEASE_BYTES, ReleaseError, ReleasePublicKey, SignedPin, SignedRelease,
};
use serde::{Deserialize, Serialize};

/// Where the firmware asks for an install (written by the kiosk user, read and removed by root).
pub const REQUEST_PATH: &str = "/run/kiosk/update-request";
/// Where the firmware downloads packages (`kiosk_<version>_<arch>.deb` and `.sig`): its own.
pub const DOWNLOADS_DIR: &str = "/var/lib/kiosk/downloads";
/// Where the helper keeps verified packages (root-owned): the installed one and the one before.
pub const RELEASES_DIR: &str = "/var/lib/kiosk/releases";
/// The outcome of the last update, for the firmware to report (then remove).
pub const OUTCOME_PATH: &str = "/var/lib/kiosk/update-outcome.json";

/// Options of `kiosk update apply` (paths are parameters so the tests run it in a scratch root).
#[derive(Debug, Clone)]
pub struct Options {
    /// The request file.
    pub request: PathBuf,
    /// The firmware's downloads.
    pub downloads: PathBuf,
    /// The kept, verified packages.
    pub releases: PathBuf,
    /// The pinned public key.
    pub key: PathBuf,
    /// The site config (for `kiosk status` and `kiosk selftest`).
    pub config: PathBuf,
    /// The outcome file.
    pub outcome: PathBuf,
    /// The kiosk binary the checks run (the newly installed one).
    pub kiosk_bin: PathBuf,
    /// The user the checks run as (`kiosk`; none: as this process).
    pub run_checks_as: Option<String>,
    /// How long the new version has to reach READY, sync and pass its self-test.
    pub confirm: Duration,
    /// How often the trial asks `kiosk status`.
    pub poll: Duration,
}

/// What happened, as the firmware reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The version asked for.
    pub version: String,
    /// The version installed before (if known).
    pub previous: Option<String>,
    /// `installed`, `rolled_back` or `refused`.
    pub result: OutcomeKind,
    /// Why (for `rolled_back` and `refused`), for people.
    pub reason: Option<String>,
    /// When it was decided (Unix ms).
    pub at_ms: i64,
}

/// The result of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The new version passed its trial and stays.
    Installed,
    /// The new version failed its trial; the previous package is installed again.
    RolledBack,
    /// Nothing was installed (bad signature, tampered package, no rollback package, ...).
    Refused,
}

/// Why an update could not even be tried.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The request file is missing or not a version.
    #[error("update request {path}: {why}")]
    Request {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// No pinned key: the kiosk was provisioned before updates, or the file was removed.
    #[error(
        "no release key pinned at {0} (or unreadable): provision it with `sudo kiosk provision --release-key FILE`"
    )]
    NoKey(PathBuf),
    /// The package or signature was refused.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The installed version's package is not kept, so a rollback would be impossible.
    #[error(
        "no verified package of the installed version {0} to roll back to: not installing (the firmware downloads it before asking)"
    )]
    NoRollback(String),
    /// dpkg-query or dpkg could not run or failed.
    #[error("{0}")]
    Dpkg(String),
    /// The release is older than the installed one and no operator's signed pin allows it.
    #[error(
        "release {version} is older than the installed {installed}: a downgrade needs the operator's signed pin of this kiosk to it (crm-endpoint release-sign-pin); {why}"
    )]
    Downgrade {
        /// The release asked for.
        version: String,
        /// The installed one.
        installed: String,
        /// What is missing or wrong with the pin.
        why: String,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UpdateError {
    let path = path.to_owned();
    move |source| UpdateError::Io { what, path, source }
}

/// The Debian architecture this binary was built for.
pub fn deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "arm" => "armhf",
        "x86_64" => "amd64",
        other => other,
    }
}

/// `kiosk_<version>_<arch>` (what scripts/package and cargo-deb name the file, less `.deb`).
pub fn package_stem(version: &str, arch: &str) -> String {
    format!("kiosk_{version}_{arch}")
}

/// Runs one update request to its end (installed, rolled back or refused) and writes the
/// outcome file; an error means not even the outcome could be decided (no request).
pub fn apply(opts: &Options) -> Result<Outcome, UpdateError> {
    let version = read_request(&opts.request)?;
    let previous = installed_version().ok();
    let outcome = match try_apply(opts, &version, previous.as_deref()) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(version, error = %e, "update refused");
            Outcome {
                version: version.clone(),
                previous: previous.clone(),
                result: OutcomeKind::Refused,
                reason: Some(e.to_string()),
                at_ms: now_ms(),
            }
        }
    };
    write_outcome(opts, &outcome)?;
    Ok(outcome)
}

/// The request: one line, the version. Removed first, so the path unit does not fire again.
fn read_request(path: &Path) -> Result<String, UpdateError> {
    let bad = |why: &str| UpdateError::Request {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(io("cannot open the update request", path))?
        .take(256)
        .read_to_string(&mut text)
        .map_err(|_| bad("not text"))?;
    let _ = std::fs::remove_file(path);
    let version = text.lines().next().unwrap_or_default().trim().to_owned();
    // The same bounds as a signed manifest's version (and so no path characters).
    kiosk_protocol::release::ReleaseManifest {
        version: version.clone(),
        arch: deb_arch().to_owned(),
        sha256: "0".repeat(64),
        size: 1,
    }
    .check()
    .map_err(|e| bad(&e.to_string()))?;
    Ok(version)
}

fn try_apply(
    opts: &Options,
    version: &str,
    previous: Option<&str>,
) -> Result<Outcome, UpdateError> {
    let key_text =
        std::fs::read_to_string(&opts.key).map_err(|_| UpdateError::NoKey(opts.key.clone()))?;
    let key = ReleasePublicKey::parse(&key_text)?;
    let arch = deb_arch();
    ensure_releases_dir(&opts.releases)?;
    // Verified before anything else happens: a tampered or unsigned package stops here.
    let new = import(opts, &key, version, arch)?;
    let Some(previous) = previous else {
        return Err(UpdateError::Dpkg(
            "dpkg-query does not know an installed kiosk package".to_owned(),
        ));
    };
    if previous == version {
        return Ok(Outcome {
            version: version.to_owned(),
            previous: Some(previous.to_owned()),
            result: OutcomeKind::Installed,
            reason: Some("already installed".to_owned()),
            at_ms: now_ms(),
        });
    }
    // A genuinely signed but older release (a known flaw) only with the operator's signed pin;
    // the rollback below reinstalls `previous` without coming here.
    check_downgrade(
        &opts.downloads,
        &key,
        version,
        previous,
        arch,
        now_ms() / 1000,
        || kiosk_id_of(&opts.config),
    )?;
    let rollback = match kept(opts, &key, previous, arch) {
        Ok(path) => path,
        // The firmware downloads the installed version too when nothing is kept yet.
        Err(_) => import(opts, &key, previous, arch)
            .map_err(|_| UpdateError::NoRollback(previous.to_owned()))?,
    };
    tracing::info!(version, previous, "installing a verified release");
    let installed_ms = now_ms();
    let outcome = |result, reason: Option<String>| Outcome {
        version: version.to_owned(),
        previous: Some(previous.to_owned()),
        result,
        reason,
        at_ms: now_ms(),
    };
    let failure = match dpkg_install(&new) {
        Err(e) => Some(format!("dpkg could not install it: {e}")),
        Ok(()) => trial(opts, installed_ms).err(),
    };
    match failure {
        None => {
            prune(&opts.releases, &[version, previous], arch);
            tracing::info!(version, "update confirmed");
            Ok(outcome(OutcomeKind::Installed, None))
        }
        Some(why) => {
            tracing::warn!(
                version,
                previous,
                why,
                "update failed its trial: rolling back"
            );
            // Verified again: the kept package sits in a directory inside the firmware's own.
            let rollback_sig = SignedRelease::read(&rollback.with_extension("sig"))?;
            verify_file(&rollback_sig, &key, &rollback)?;
            dpkg_install(&rollback).map_err(|e| {
                UpdateError::Dpkg(format!(
                    "ROLLBACK FAILED: dpkg could not reinstall {previous}: {e} (after: {why})"
                ))
            })?;
            Ok(outcome(OutcomeKind::RolledBack, Some(why)))
        }
    }
}

/// Whether Debian version `a` is older than `b`, as dpkg orders them (`dpkg --compare-versions`:
/// the one definition every kiosk has).
pub fn older_than(a: &str, b: &str) -> Result<bool, UpdateError> {
    let status = Command::new("dpkg")
        .args(["--compare-versions", a, "lt", b])
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| UpdateError::Dpkg(format!("cannot run dpkg --compare-versions: {e}")))?;
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(UpdateError::Dpkg(format!(
            "dpkg --compare-versions cannot compare {a:?} and {b:?}"
        ))),
    }
}

/// Refuses `version` when it is older than `installed` unless `<downloads>/kiosk_<v>_<arch>.pin`
/// holds the operator's pin of this kiosk to it, signed with the release key and not expired.
/// `kiosk_id` is read only when a pin is there to check.
pub fn check_downgrade(
    downloads: &Path,
    key: &ReleasePublicKey,
    version: &str,
    installed: &str,
    arch: &str,
    now_s: i64,
    kiosk_id: impl FnOnce() -> Result<String, String>,
) -> Result<(), UpdateError> {
    if !older_than(version, installed)? {
        return Ok(());
    }
    let refuse = |why: String| UpdateError::Downgrade {
        version: version.to_owned(),
        installed: installed.to_owned(),
        why,
    };
    let path = downloads.join(format!("{}.pin", package_stem(version, arch)));
    let mut text = String::new();
    match std::fs::File::open(&path) {
        Ok(f) => {
            f.take(4096)
                .read_to_string(&mut text)
                .map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
        }
        Err(_) => return Err(refuse("there is none".to_owned())),
    }
    let pin: SignedPin = serde_json::from_str(&text)
        .map_err(|e| refuse(format!("{} is not a signed pin: {e}", path.display())))?;
    let kiosk_id = kiosk_id().map_err(refuse)?;
    pin.allows(key, &kiosk_id, version, now_s)
        .map_err(|e| refuse(e.to_string()))?;
    tracing::info!(
        version,
        installed,
        "downgrade allowed by the operator's signed pin"
    );
    Ok(())
}

/// This kiosk's id, from the credentials in the data directory `site.toml` names.
fn kiosk_id_of(config: &Path) -> Result<String, String> {
    let site = crate::config::Config::load(config).map_err(|e| e.to_string())?;
    let dir = crate::paths::DataDir::new(&site.site.kiosk.data_dir);
    crate::credentials::Credentials::load(&dir.credentials())
        .map(|c| c.kiosk_id)
        .map_err(|e| e.to_string())
}

/// The trial: `kiosk status` must show the new version running with a sync after the install,
/// then `kiosk selftest` must not fail, before the confirm window ends.
fn trial(opts: &Options, installed_ms: i64) -> Result<(), String> {
    let deadline = Instant::now() + opts.confirm;
    loop {
        let last = match check_status(opts, installed_ms) {
            Ok(()) => {
                return match selftest(opts) {
                    Ok(()) => Ok(()),
                    Err(failures) => Err(format!("its self-test failed: {failures}")),
                };
            }
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            let selftest = match selftest(opts) {
                Ok(()) => "its self-test passed".to_owned(),
                Err(failures) => format!("its self-test failed: {failures}"),
            };
            return Err(format!(
                "it did not reach READY and sync within {} s ({last}); {selftest}",
                opts.confirm.as_secs()
            ));
        }
        std::thread::sleep(opts.poll);
    }
}

fn check_command(opts: &Options, args: &[&str]) -> Command {
    let mut cmd = match &opts.run_checks_as {
        Some(user) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={user}"))
                .arg(format!("--regid={user}"))
                .arg("--init-groups")
                .arg("--")
                .arg(&opts.kiosk_bin);
            c
        }
        None => Command::new(&opts.kiosk_bin),
    };
    cmd.args(args).arg("--config").arg(&opts.config);
    cmd.stdin(std::process::Stdio::null());
    cmd
}

fn check_status(opts: &Options, installed_ms: i64) -> Result<(), String> {
    let out = check_command(opts, &["status", "--json"])
        .output()
        .map_err(|e| format!("cannot run kiosk status: {e}"))?;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| "kiosk status printed no JSON".to_owned())?;
    if status["running"] != serde_json::Value::Bool(true) {
        return Err("the firmware is not running".to_owned());
    }
    let ms_of = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
    };
    // Started after the install: the process runs the new binary (whatever version it prints).
    match ms_of(&status["started_at"]) {
        Some(ms) if ms + 1000 >= installed_ms => {}
        _ => return Err("the firmware running was started before the install".to_owned()),
    }
    match ms_of(&status["sync"]["last_success"]) {
        Some(ms) if ms >= installed_ms => Ok(()),
        _ => Err("running, but not synced with the CRM since the install".to_owned()),
    }
}

/// `kiosk selftest` without tap, scan or ticket; the failed rows on failure.
fn selftest(opts: &Options) -> Result<(), String> {
    let out = check_command(
        opts,
        &["selftest", "--non-interactive", "--no-ticket", "--json"],
    )
    .output()
    .map_err(|e| format!("cannot run kiosk selftest: {e}"))?;
    if out.status.code().is_some_and(|c| c == 0 || c == 2) {
        return Ok(());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let failed: Vec<String> = report["checks"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["outcome"] == "fail")
                .map(|r| {
                    format!(
                        "{}: {}",
                        r["name"].as_str().unwrap_or("?"),
                        r["detail"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if failed.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "exit {:?}: {}",
            out.status.code(),
            err.lines().last().unwrap_or("no output")
        ))
    } else {
        Err(failed.join("; "))
    }
}

fn ensure_releases_dir(dir: &Path) -> Result<(), UpdateError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io("cannot set the mode of", dir))
}

/// The kept, verified package of `version`.
fn kept(
    opts: &Options,
    key: &ReleasePublicKey,
    version: &str,
    arch: &str,
) -> Result<PathBuf, UpdateError> {
    let stem = package_stem(version, arch);
    let deb = opts.releases.join(format!("{stem}.deb"));
    let sig = SignedRelease::read(&opts.releases.join(format!("{stem}.sig")))?;
    check_names(&sig, version, arch)?;
    verify_file(&sig, key, &deb)?;
    Ok(deb)
}

/// Copies a downloaded package and its signature into the releases directory and verifies the
/// copy (the firmware cannot change it between the check and dpkg).
fn import(
    opts: &Options,
    key: &ReleasePublicKey,
    version: &str,
    arch: &str,
) -> Result<PathBuf, UpdateError> {
    let stem = package_stem(version, arch);
    let src_sig = opts.downloads.join(format!("{stem}.sig"));
    let sig = SignedRelease::read(&src_sig)?;
    check_names(&sig, version, arch)?;
    // The signature first: an unsigned release is refused before its package is even copied.
    sig.verify_signature(key)?;
    let src = opts.downloads.join(format!("{stem}.deb"));
    let tmp = opts.releases.join(format!(".{stem}.deb.part"));
    {
        let mut from = std::fs::File::open(&src).map_err(io("cannot open", &src))?;
        let mut to = std::fs::File::create(&tmp).map_err(io("cannot create", &tmp))?;
        std::io::copy(&mut (&mut from).take(MAX_RELEASE_BYTES + 1), &mut to)
            .map_err(io("cannot copy", &src))?;
        to.sync_all().map_err(io("cannot sync", &tmp))?;
    }
    if let Err(e) = verify_file(&sig, key, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let deb = opts.releases.join(format!("{stem}.deb"));
    let sig_path = opts.releases.join(format!("{stem}.sig"));
    let mut f = std::fs::File::create(&sig_path).map_err(io("cannot create", &sig_path))?;
    f.write_all(
        serde_json::to_string_pretty(&sig)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(io("cannot write", &sig_path))?;
    std::fs::rename(&tmp, &deb).map_err(io("cannot rename", &tmp))?;
    Ok(deb)
}

fn check_names(sig: &SignedRelease, version: &str, arch: &str) -> Result<(), UpdateError> {
    if sig.manifest.version != version || sig.manifest.arch != arch {
        return Err(UpdateError::Release(ReleaseError::Malformed(format!(
            "the signature is for {} ({}), not {version} ({arch})",
            sig.manifest.version, sig.manifest.arch
        ))));
    }
    Ok(())
}

fn verify_file(sig: &SignedRelease, key: &ReleasePublicKey, deb: &Path) -> Result<(), UpdateError> {
    let f = std::fs::File::open(deb).map_err(io("cannot open", deb))?;
    sig.verify_package(key, std::io::BufReader::new(f))?;
    Ok(())
}

trait ReadSig {
    fn read(path: &Path) -> Result<SignedRelease, UpdateError>;
}

impl ReadSig for SignedRelease {
    /// A `.sig` file; missing or empty counts as unsigned.
    fn read(path: &Path) -> Result<SignedRelease, UpdateError> {
        let mut text = String::new();
        match std::fs::File::open(path) {
            Ok(f) => {
                f.take(4096)
                    .read_to_string(&mut text)
                    .map_err(io("cannot read", path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot open", path)(e)),
        }
        if text.trim().is_empty() {
            return Err(UpdateError::Release(ReleaseError::Unsigned {
                version: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                arch: deb_arch().to_owned(),
                why: format!("no signature file {}", path.display()),
            }));
        }
        serde_json::from_str(&text).map_err(|e| {
            UpdateError::Release(ReleaseError::Malformed(format!(
                "{} is not a release signature: {e}",
                path.display()
            )))
        })
    }
}

/// The installed kiosk package's version (dpkg-query).
pub fn installed_version() -> Result<String, UpdateError> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "kiosk"])
        .output()
        .map_err(|e| UpdateError::Dpkg(format!("cannot run dpkg-query: {e}")))?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || v.is_empty() {
        return Err(UpdateError::Dpkg(
            "the kiosk package is not installed".to_owned(),
        ));
    }
    Ok(v)
}

/// `dpkg -i` keeping the kiosk's own conffile edits, never asking.
fn dpkg_install(deb: &Path) -> Result<(), String> {
    let out = Command::new("dpkg")
        .args(["--force-confdef", "--force-confold", "-i"])
        .arg(deb)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run dpkg: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.lines().rev().take(3).collect::<Vec<_>>().join(" / "))
    }
}

/// Removes kept packages other than `keep` (the installed one and the one before).
fn prune(dir: &Path, keep: &[&str], arch: &str) {
    let keep: Vec<String> = keep.iter().map(|v| package_stem(v, arch)).collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        if stem.is_some_and(|s| s.starts_with("kiosk_") && !keep.contains(&s)) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn write_outcome(opts: &Options, outcome: &Outcome) -> Result<(), UpdateError> {
    let tmp = opts.outcome.with_extension("json.part");
    let text = serde_json::to_string_pretty(outcome).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(io("cannot write", &tmp))?;
    // The firmware reads it and removes it: its own file.
    if let Some(user) = &opts.run_checks_as
        && let Ok(Some(u)) = nix::unistd::User::from_name(user)
    {
        let _ = nix::unistd::chown(&tmp, Some(u.uid), Some(u.gid));
    }
    std::fs::rename(&tmp, &opts.outcome).map_err(io("cannot rename", &tmp))
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiosk_protocol::release::{PinManifest, ReleaseSigningKey};

    fn write_pin(dir: &Path, key: &ReleaseSigningKey, kiosk: &str, version: &str, not_after: i64) {
        let pin = PinManifest {
            kiosk_id: kiosk.into(),
            version: version.into(),
            not_after,
        }
        .sign(key);
        std::fs::write(
            dir.join(format!("{}.pin", package_stem(version, "arm64"))),
            serde_json::to_string(&pin).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn an_older_release_needs_the_operators_signed_pin_of_this_kiosk_and_a_newer_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = ReleaseSigningKey::generate();
        let public = key.public();
        let me = || Ok("k-1".to_owned());
        let check = |version: &str| {
            check_downgrade(dir.path(), &public, version, "0.2.0-1", "arm64", 1_000, me)
        };
        // Newer (and dpkg's ordering, not the text's: 0.10 is newer than 0.2).
        check("0.2.1-1").unwrap();
        check("0.10.0-1").unwrap();
        check("0.2.0-1").unwrap();
        // Older without a pin: refused, saying what would allow it.
        let why = check("0.1.9-1").unwrap_err().to_string();
        assert!(
            why.contains("older than the installed 0.2.0-1") && why.contains("there is none"),
            "{why}"
        );
        // A pin for another kiosk, an expired one, one signed by another key: refused.
        write_pin(dir.path(), &key, "k-2", "0.1.9-1", 2_000);
        assert!(
            check("0.1.9-1")
                .unwrap_err()
                .to_string()
                .contains("not kiosk k-1")
        );
        write_pin(dir.path(), &key, "k-1", "0.1.9-1", 999);
        assert!(
            check("0.1.9-1")
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
        write_pin(
            dir.path(),
            &ReleaseSigningKey::generate(),
            "k-1",
            "0.1.9-1",
            2_000,
        );
        assert!(
            check("0.1.9-1")
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        // The operator's signed pin of this kiosk to that release: allowed.
        write_pin(dir.path(), &key, "k-1", "0.1.9-1", 2_000);
        check("0.1.9-1").unwrap();
    }
}
