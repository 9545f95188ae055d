//! `kiosk selftest`: checks each configured device and the kiosk's surroundings, and prints a
//! pass/fail table with the fix for each failure.
//!
//! Checks, in order: site config and hardware profile; credentials; data directory and free
//! disk; journal integrity; card reader (spidev present — else the `config.txt` line —, chip
//! answering its version register); scanner; printer (present, paper, cover); CRM reachable and
//! clock skew against it; clock synchronised. Then a **test ticket** with the kiosk's identity
//! and a QR of the results, and, when interactive, a **test tap** and a **test scan**.
//!
//! The devices are opened by the self-test itself, so run it while `kiosk.service` is stopped;
//! when the kiosk is running, the device rows come from its live status and the ticket, tap and
//! scan are skipped (the table says so).
//!
//! Exit codes: 0 every check passed (skips allowed), 1 at least one failed, 2 warnings only.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiosk_drivers::DeviceHealth;
use kiosk_drivers::card;
use kiosk_drivers::card::settings::CardReaderSettings;
use kiosk_drivers::printer::{Language, ThermalPrinter, Ticket};
use kiosk_drivers::scanner::settings::ScannerSettings;
use kiosk_drivers::scanner::{self, ScannerOptions};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::credentials::Credentials;
use crate::devices::{self, DeviceMsg};
use crate::paths::DataDir;
use crate::runtime::Simulators;
use kiosk_core::journey::{Input, ScanInput};

/// Clock difference with the CRM beyond which signed requests are refused (its replay window
/// is five minutes; a minute leaves margin).
pub const MAX_SKEW: Duration = Duration::from_secs(60);

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Works.
    Pass,
    /// Works, but a person should look.
    Warn,
    /// Does not work.
    Fail,
    /// Not checked (and why is in the detail).
    Skip,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The result.
    pub outcome: Outcome,
    /// What was seen.
    pub detail: String,
    /// What to do about a failure or warning.
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &str, outcome: Outcome, detail: impl Into<String>, fix: Option<String>) -> Self {
        Check {
            name: name.to_owned(),
            outcome,
            detail: detail.into(),
            fix,
        }
    }
    fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Pass, detail, None)
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Outcome::Fail, detail, Some(fix.into()))
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Outcome::Warn, detail, Some(fix.into()))
    }
    fn skip(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Skip, detail, None)
    }
}

/// The whole result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The rows.
    pub checks: Vec<Check>,
}

impl Report {
    /// 0 passed, 1 failed, 2 warnings only.
    pub fn exit_code(&self) -> u8 {
        if self.checks.iter().any(|c| c.outcome == Outcome::Fail) {
            1
        } else if self.checks.iter().any(|c| c.outcome == Outcome::Warn) {
            2
        } else {
            0
        }
    }

    /// The pass/fail table with the fixes under it.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{:<14} {:<6} detail", "check", "result");
        let _ = writeln!(o, "{}", "-".repeat(72));
        for c in &self.checks {
            let result = match c.outcome {
                Outcome::Pass => "PASS",
                Outcome::Warn => "WARN",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "skip",
            };
            let _ = writeln!(o, "{:<14} {:<6} {}", c.name, result, c.detail);
            if let Some(fix) = &c.fix {
                let _ = writeln!(o, "{:<14} {:<6} -> {}", "", "", fix);
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .count();
        let warned = self
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Warn)
            .count();
        let _ = writeln!(o, "{}", "-".repeat(72));
        let _ = writeln!(
            o,
            "{}",
            match (failed, warned) {
                (0, 0) => "self-test PASSED".to_owned(),
                (0, w) => format!("self-test passed with {w} warning(s)"),
                (f, _) => format!("self-test FAILED: {f} check(s) failed"),
            }
        );
        o
    }

    /// Compact text for the test ticket's QR: `kiosk version check=P|W|F|S ...`.
    pub fn qr_text(&self, kiosk_id: &str) -> String {
        let mut s = format!("kiosk-selftest {kiosk_id} {}", crate::version::VERSION);
        for c in &self.checks {
            let r = match c.outcome {
                Outcome::Pass => 'P',
                Outcome::Warn => 'W',
                Outcome::Fail => 'F',
                Outcome::Skip => 'S',
            };
            let _ = write!(s, " {}={r}", c.name.replace(' ', "_"));
        }
        s
    }
}

/// How to run it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Site config.
    pub config: PathBuf,
    /// Ask for a test tap and a test scan.
    pub interactive: bool,
    /// How long to wait for each of them.
    pub wait: Duration,
    /// Print the test ticket.
    pub ticket: bool,
    /// Also write the test ticket's ESC/POS bytes here (`kiosk ticket-preview --escpos` renders
    /// them).
    pub ticket_copy: Option<PathBuf>,
}

/// What the self-test tells the technician while it runs, and what tests hook into.
pub trait Console {
    /// A line for the technician.
    fn say(&mut self, text: &str);
    /// The self-test now waits for a tap (`"tap"`) or a scan (`"scan"`) on these devices.
    fn waiting_for(&mut self, _what: &str, _sims: &Simulators) {}
}

/// Prints to stdout.
pub struct Stdout;

impl Console for Stdout {
    fn say(&mut self, text: &str) {
        use std::io::Write as _;
        println!("{text}");
        let _ = std::io::stdout().flush();
    }
}

/// Runs the self-test.
pub async fn run(opts: &Options, console: &mut dyn Console) -> Report {
    let mut checks = Vec::new();
    let config = match Config::load(&opts.config) {
        Ok(c) => {
            checks.push(Check::pass(
                "config",
                format!("{} ({} profile)", opts.config.display(), c.hardware.name),
            ));
            c
        }
        Err(e) => {
            checks.push(Check::fail(
                "config",
                e.to_string(),
                "fix the file and line named above; `kiosk check-config FILE` checks it",
            ));
            return Report { checks };
        }
    };
    let data = DataDir::new(&config.site.kiosk.data_dir);
    let credentials = match Credentials::load(&data.credentials()) {
        Ok(c) => {
            checks.push(Check::pass(
                "credentials",
                format!("kiosk {} of store {}", c.kiosk_id, c.store_id),
            ));
            Some(c)
        }
        Err(e) => {
            checks.push(Check::fail(
                "credentials",
                e.to_string(),
                "enroll the kiosk: `sudo kiosk provision`",
            ));
            None
        }
    };
    checks.push(disk_check(data.root()));
    checks.push(journal_check(&data));

    let running = crate::status::fetch_live(&config).await;
    if let Some(status) = &running {
        console.say("the kiosk is running: device rows come from its live status");
        for name in ["card_reader", "scanner", "printer"] {
            let row = status.devices.iter().find(|d| d.device == name);
            checks.push(match row {
                Some(d) if d.state == "ok" => Check::pass(name, "ok (live)"),
                Some(d) => Check::fail(
                    name,
                    format!("{} (live): {}", d.state, d.reason.clone().unwrap_or_default()),
                    "see `kiosk status`; stop the kiosk (`sudo systemctl stop kiosk`) and run the self-test again for the device checks",
                ),
                None => Check::skip(name, "not configured"),
            });
        }
    } else {
        checks.extend(device_checks(&config, credentials.as_ref(), opts, console).await);
    }

    checks.push(screen_check(&config, running.as_ref()));
    checks.push(speech_check(&config.hardware.speech));
    checks.push(keypad_check(&config.hardware.keypad));
    checks.push(crm_check(&config, credentials.as_ref()).await);
    checks.push(clock_check());

    if running.is_some() {
        for name in ["test tap", "test scan", "test ticket"] {
            checks.push(Check::skip(
                name,
                "the kiosk is running (it owns the devices)",
            ));
        }
    }
    let mut report = Report { checks };
    if running.is_none() && opts.ticket {
        let kiosk_id = credentials
            .as_ref()
            .map(|c| c.kiosk_id.clone())
            .unwrap_or_else(|| "not-provisioned".to_owned());
        let (row, bytes) = print_test_ticket(&config, &report, &kiosk_id);
        if let Some(path) = &opts.ticket_copy
            && !bytes.is_empty()
            && let Err(e) = std::fs::write(path, &bytes)
        {
            console.say(&format!("cannot write {}: {e}", path.display()));
        }
        report.checks.push(row);
    }
    report
}

/// The customer screen: with the kiosk running, a browser shows the kiosk page (its event
/// stream is open); without it, what the screen needs is installed and its unit enabled. A
/// bench kiosk (a profile with simulators) has no kiosk browser: skipped there.
fn screen_check(config: &Config, running: Option<&crate::status::Status>) -> Check {
    const NAME: &str = "screen";
    let bench = config.hardware.has_simulators();
    let fix = "`systemctl status kiosk-browser`, `journalctl -u kiosk-browser -b`;                `sudo systemctl restart kiosk-browser`";
    if let Some(status) = running {
        let Some(screen) = &status.screen else {
            return Check::skip(NAME, "the running kiosk does not report its screen");
        };
        return match screen.clients {
            0 if bench => Check::skip(
                NAME,
                format!(
                    "bench kiosk: no browser shows the kiosk page (open http://{}/)",
                    config.site.ui.listen
                ),
            ),
            0 => Check::fail(
                NAME,
                format!(
                    "no browser has shown the kiosk page for {} s (live; {} restarts requested)",
                    screen.for_s, screen.restarts_requested
                ),
                fix,
            ),
            n => Check::pass(
                NAME,
                format!(
                    "the kiosk page is on the screen ({n} open, for {} s; live)",
                    screen.for_s
                ),
            ),
        };
    }
    if bench {
        return Check::skip(NAME, "bench kiosk: no kiosk browser is installed for it");
    }
    screen_installation(
        Path::new("/"),
        systemctl_is_enabled("kiosk-browser.service").as_deref(),
    )
}

/// `systemctl is-enabled UNIT`'s answer, `None` without systemctl.
fn systemctl_is_enabled(unit: &str) -> Option<String> {
    let out = std::process::Command::new("systemctl")
        .args(["is-enabled", unit])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What the screen needs, under `root`: cage, a Chromium, and the browser unit enabled.
fn screen_installation(root: &Path, enabled: Option<&str>) -> Check {
    const NAME: &str = "screen";
    let has = |paths: &[&str]| {
        paths
            .iter()
            .find(|p| root.join(p.trim_start_matches('/')).exists())
            .map(|p| (*p).to_owned())
    };
    let cage = has(&["/usr/bin/cage"]);
    let chromium = has(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let missing: Vec<&str> = [("cage", cage.is_none()), ("chromium", chromium.is_none())]
        .into_iter()
        .filter_map(|(name, gone)| gone.then_some(name))
        .collect();
    if !missing.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "{} not installed: the screen would stay black",
                missing.join(" and ")
            ),
            format!(
                "`sudo apt-get update && sudo apt-get install {}`",
                missing.join(" ")
            ),
        );
    }
    match enabled {
        Some("enabled" | "static" | "alias" | "indirect") | None => Check::pass(
            NAME,
            format!(
                "{} and {} installed{}; the kiosk page is checked while the kiosk runs",
                cage.unwrap_or_default(),
                chromium.unwrap_or_default(),
                if enabled.is_some() {
                    ", kiosk-browser.service enabled"
                } else {
                    ""
                }
            ),
        ),
        Some(state) => Check::fail(
            NAME,
            format!("kiosk-browser.service is {state}: the screen will not start at boot"),
            "`sudo systemctl enable --now kiosk-browser`",
        ),
    }
}

/// espeak-ng speaks both languages with the profile's voices, and ALSA has the devices named.
fn speech_check(settings: &kiosk_drivers::speech::SpeechSettings) -> Check {
    use kiosk_drivers::speech::{self, CallsOutput, CustomerOutput, Lang, Voice};
    let mut devices = Vec::new();
    match &settings.customer {
        CustomerOutput::Alsa { device, .. } => devices.push(("customer", device.clone())),
        CustomerOutput::Simulated { .. } => {}
        CustomerOutput::None => {
            if matches!(settings.calls, CallsOutput::None) {
                return Check::skip("speech", "none configured");
            }
        }
    }
    if let CallsOutput::Alsa { device, .. } = &settings.calls {
        devices.push(("calls", device.clone()));
    }
    let voice = Voice {
        espeak_ng: settings.espeak_ng.clone(),
        aplay: settings.aplay.clone(),
        voices: settings.voices.clone(),
        rate_wpm: settings.rate_wpm,
    };
    let mut said = Vec::new();
    for (lang, text) in [(Lang::Es, "Prueba del quiosco"), (Lang::En, "Kiosk test")] {
        match speech::try_voice(&voice, text, lang) {
            Ok(secs) => said.push(format!("{} {secs:.1} s", settings.voices.get(lang))),
            Err(e) => {
                return Check::fail(
                    "speech",
                    e,
                    "sudo apt install espeak-ng alsa-utils; `espeak-ng --voices` lists the voices for [speech].voices",
                );
            }
        }
    }
    for (what, device) in &devices {
        if let Err(e) = speech::alsa_has(&settings.aplay, device) {
            return Check::fail(
                "speech",
                format!("{what}: {e}"),
                "`aplay -L` lists the devices: Pi 4 headphone jack plughw:CARD=Headphones,DEV=0 (dtparam=audio=on), HDMI plughw:CARD=vc4hdmi0,DEV=0; a Pi 5 needs a USB audio adapter for the headset",
            );
        }
    }
    Check::pass("speech", format!("espeak-ng: {}", said.join(", ")))
}

/// The keypad's event node exists (the kiosk grabs it when it runs).
fn keypad_check(settings: &kiosk_drivers::keypad::KeypadSettings) -> Check {
    use kiosk_drivers::keypad::KeypadSettings;
    match settings {
        KeypadSettings::None => Check::skip("keypad", "none configured"),
        KeypadSettings::Simulated { .. } => Check::pass("keypad", "simulated"),
        KeypadSettings::Evdev { device, .. } => match std::fs::metadata(device) {
            Ok(_) => Check::pass("keypad", device.clone()),
            Err(e) => Check::fail(
                "keypad",
                format!("{device}: {e}"),
                "plug the USB keypad in; `ls /dev/input/by-id/` shows its -event-kbd name for [keypad].device",
            ),
        },
    }
}

fn disk_check(dir: &Path) -> Check {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Check::fail(
            "data dir",
            format!("{}: {e}", dir.display()),
            "create it writable by the kiosk user (the package does: reinstall it)",
        );
    }
    let probe = dir.join(".selftest-write");
    if let Err(e) = std::fs::write(&probe, b"ok") {
        return Check::fail(
            "data dir",
            format!("{} is not writable: {e}", dir.display()),
            "a read-only or full card: `df -h`, `dmesg | tail`; replace the SD card if it went read-only",
        );
    }
    let _ = std::fs::remove_file(&probe);
    match crate::status::disk_status(dir) {
        Some(d) if d.nearly_full => Check::warn(
            "disk",
            format!(
                "{} MiB free of {} MiB",
                d.free_bytes >> 20,
                d.total_bytes >> 20
            ),
            "disk nearly full: lower journal.retention_days, check that sync works (`kiosk status`), remove old logs (`journalctl --vacuum-size=50M`)",
        ),
        Some(d) => Check::pass(
            "disk",
            format!(
                "{} MiB free of {} MiB",
                d.free_bytes >> 20,
                d.total_bytes >> 20
            ),
        ),
        None => Check::warn("disk", "cannot read free space", "check `df -h`"),
    }
}

fn journal_check(data: &DataDir) -> Check {
    let path = data.journal();
    if !path.exists() {
        return Check::pass("journal", "none yet (made at first start)");
    }
    let key = match kiosk_journal::crypto::DeviceKey::load_or_create(&data.device_key()) {
        Ok(k) => k,
        Err(e) => {
            return Check::fail(
                "journal",
                e.to_string(),
                "the device key is unreadable: check owner and mode 0600 of the key file",
            );
        }
    };
    match kiosk_journal::Journal::open_read_only(&path, key) {
        Ok(j) => match (j.integrity_check(), j.stats()) {
            (Ok(problems), Ok(s)) if problems.is_empty() => Check::pass(
                "journal",
                format!(
                    "{} events, {} unsynced, {} dead letters",
                    s.events, s.pending, s.dead_letters
                ),
            ),
            (Err(e), _) | (_, Err(e)) => {
                Check::fail("journal", e.to_string(), "see `kiosk status`")
            }
            (Ok(problems), Ok(_)) => Check::fail(
                "journal",
                format!("integrity check: {}", problems.join("; ")),
                "the kiosk moves a corrupt journal aside and rebuilds it at start: restart it and report the file to support",
            ),
        },
        Err(e) => Check::fail("journal", e.to_string(), "see `journalctl -u kiosk`"),
    }
}

async fn device_checks(
    config: &Config,
    credentials: Option<&Credentials>,
    opts: &Options,
    console: &mut dyn Console,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut sims = Simulators::default();
    let (tx, mut rx) = mpsc::channel::<DeviceMsg>(64);

    // Card reader.
    let hw = &config.hardware;
    let mut reader_thread = None;
    match &hw.card_reader {
        CardReaderSettings::None => checks.push(Check::skip("card reader", "none configured")),
        settings => {
            if let CardReaderSettings::Mfrc522 { spi_device, .. } = settings
                && !Path::new(spi_device).exists()
            {
                checks.push(Check::fail(
                    "card reader",
                    format!("{spi_device} does not exist: SPI is not enabled"),
                    "add the line `dtparam=spi=on` to /boot/firmware/config.txt and reboot",
                ));
            } else {
                let key = credentials
                    .map(|c| c.tenant_key.clone())
                    .unwrap_or(card::TenantKey::from_bytes([0u8; 32]));
                match card::open(settings, key).map_err(|e| e.to_string()) {
                    Ok(Some(open)) => {
                        sims.card = open.sim;
                        match devices::spawn_card_reader(open.reader, tx.clone()) {
                            Ok(t) => {
                                reader_thread = Some(t);
                                checks.push(Check::pass("card reader", "answers"));
                            }
                            Err(e) => checks.push(Check::fail(
                                "card reader",
                                e.to_string(),
                                "see `journalctl -u kiosk`",
                            )),
                        }
                    }
                    Ok(None) => checks.push(Check::skip("card reader", "none configured")),
                    Err(e) => checks.push(Check::fail("card reader", e, card_fix(settings))),
                }
            }
        }
    }

    // Scanner.
    let mut scanner_thread = None;
    match &hw.scanner {
        ScannerSettings::None => checks.push(Check::skip("scanner", "none configured")),
        settings => match scanner::open(settings, ScannerOptions::default()) {
            Ok(Some(handle)) => {
                sims.scanner = handle.simulator();
                match devices::spawn_scanner(handle, tx.clone()) {
                    Ok(t) => {
                        scanner_thread = Some(t);
                        checks.push(Check::pass("scanner", "found"));
                    }
                    Err(e) => checks.push(Check::fail("scanner", e.to_string(), "see `journalctl -u kiosk`")),
                }
            }
            Ok(None) => checks.push(Check::skip("scanner", "none configured")),
            Err(e) => checks.push(Check::fail(
                "scanner",
                format!("scanner not found: {e}"),
                "plug the scanner in (USB); `ls -l /dev/kiosk-scanner /dev/ttyACM* /dev/input/by-id/`; check the port in the hardware profile",
            )),
        },
    }

    // Printer: present, paper, cover.
    checks.push(match ThermalPrinter::from_settings(&hw.printer) {
        Ok(mut p) => {
            sims.printer = p.virtual_printer().cloned();
            let h = p.health();
            match h.state {
                DeviceHealth::Ok => Check::pass("printer", format!("{} ready", p.device())),
                DeviceHealth::Degraded => Check::warn(
                    "printer",
                    h.reason.unwrap_or_default(),
                    "paper is running out: load a new roll soon",
                ),
                DeviceHealth::Absent => {
                    let reason = h.reason.unwrap_or_default();
                    let fix = if reason.contains("paper") {
                        "no paper: open the cover, load a roll (printing side out), close the cover"
                    } else if reason.contains("cover") {
                        "close the printer cover"
                    } else {
                        "printer absent: check power and the USB/serial/network cable; `ls -l /dev/kiosk-printer /dev/usb/lp*`"
                    };
                    Check::fail("printer", reason, fix)
                }
            }
        }
        Err(kiosk_drivers::printer::PrinterError::NotConfigured) => {
            Check::skip("printer", "none configured")
        }
        Err(e) => Check::fail(
            "printer",
            e.to_string(),
            "check the printer section of the hardware profile",
        ),
    });

    // Test tap and test scan.
    let wait = opts.wait;
    if !opts.interactive {
        checks.push(Check::skip("test tap", "non-interactive"));
        checks.push(Check::skip("test scan", "non-interactive"));
    } else {
        for (what, name, ask) in [
            ("tap", "test tap", "Tap a card on the reader"),
            ("scan", "test scan", "Scan any barcode or QR code"),
        ] {
            let present = match what {
                "tap" => reader_thread.is_some(),
                _ => scanner_thread.is_some(),
            };
            if !present {
                checks.push(Check::skip(name, "device not working"));
                continue;
            }
            console.say(&format!("{ask} (within {} s)...", wait.as_secs()));
            console.waiting_for(what, &sims);
            let got = tokio::time::timeout(wait, async {
                while let Some(msg) = rx.recv().await {
                    match (what, msg) {
                        ("tap", DeviceMsg::Input(Input::CardTapped { .. })) => return true,
                        ("scan", DeviceMsg::Input(Input::Scanned(s))) => {
                            console.say(match s {
                                ScanInput::Unknown => "  read, but not a code the kiosk knows (that is fine for this test)",
                                _ => "  read",
                            });
                            return true;
                        }
                        _ => {}
                    }
                }
                false
            })
            .await;
            checks.push(match got {
                Ok(true) => Check::pass(name, "received"),
                _ => Check::fail(
                    name,
                    format!("nothing within {} s", wait.as_secs()),
                    match what {
                        "tap" => "hold the card flat on the reader's marked area for a second; check the antenna cable; lower card_reader.spi_hz for long wires",
                        _ => "check the scanner's beep and light; set it to send CR or LF after each code (its setup barcodes)",
                    },
                ),
            });
        }
    }
    drop(tx);
    if let Some(t) = reader_thread {
        let _ = tokio::task::spawn_blocking(move || t.stop()).await;
    }
    drop(scanner_thread);
    checks
}

fn card_fix(settings: &CardReaderSettings) -> String {
    match settings {
        CardReaderSettings::Mfrc522 { .. } => "the MFRC522 does not answer: check its wiring (SDA/CE0, SCK, MOSI, MISO, 3.3 V, GND, RST), lower spi_hz in the hardware profile for long wires".to_owned(),
        _ => "plug the reader in; check its device path in the hardware profile (`ls -l /dev/input/by-id/ /dev/ttyACM* /dev/ttyUSB*`)".to_owned(),
    }
}

async fn crm_check(config: &Config, credentials: Option<&Credentials>) -> Check {
    let url = credentials
        .map(|c| c.endpoint_url.clone())
        .unwrap_or_else(|| config.site.crm.url.clone());
    let url = format!("{}/v1/health", url.trim_end_matches('/'));
    kiosk_sync::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    if let Some(ca) = &config.site.crm.ca_file {
        match std::fs::read(ca).map(|pem| reqwest::Certificate::from_pem(&pem)) {
            Ok(Ok(cert)) => builder = builder.add_root_certificate(cert),
            _ => {
                return Check::fail(
                    "crm",
                    format!("cannot read crm.ca_file {}", ca.display()),
                    "fix crm.ca_file in the site config",
                );
            }
        }
    }
    let Ok(http) = builder.build() else {
        return Check::fail("crm", "cannot build an HTTP client", "report to support");
    };
    let before = time::OffsetDateTime::now_utc();
    match http.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => {
            let server = resp
                .headers()
                .get(reqwest::header::DATE)
                .and_then(|d| d.to_str().ok())
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .map(time::OffsetDateTime::from);
            match server {
                Some(server) => {
                    let skew = (before - server).whole_seconds();
                    if skew.unsigned_abs() > MAX_SKEW.as_secs() {
                        Check::fail(
                            "crm",
                            format!("reachable, but the kiosk's clock is {skew} s off the CRM's"),
                            "the CRM refuses signed requests from a wrong clock: enable NTP (`timedatectl set-ntp true`) and let the network reach an NTP server",
                        )
                    } else {
                        Check::pass(
                            "crm",
                            format!("{url} answers; clocks agree within {} s", skew.abs()),
                        )
                    }
                }
                None => Check::pass("crm", format!("{url} answers")),
            }
        }
        Ok(resp) => Check::fail(
            "crm",
            format!("{url} answered {}", resp.status()),
            "the CRM is up but unhealthy: tell the CRM operator",
        ),
        Err(e) => Check::fail(
            "crm",
            format!("CRM unreachable: {e}"),
            "check the network cable/Wi-Fi, DNS and that the shop's firewall lets the kiosk reach the CRM URL (`curl -v URL/v1/health`)",
        ),
    }
}

fn clock_check() -> Check {
    let c = crate::status::clock_status(time::OffsetDateTime::now_utc());
    match c.synchronised {
        Some(true) => Check::pass("clock", format!("{} (NTP synchronised)", c.now)),
        Some(false) => Check::warn(
            "clock",
            format!("{} not synchronised", c.now),
            "a Pi has no battery clock: enable NTP (`timedatectl set-ntp true`) and allow UDP 123 out",
        ),
        None => Check::warn(
            "clock",
            format!("{} (cannot tell whether NTP synchronised it)", c.now),
            "check `timedatectl`",
        ),
    }
}

fn print_test_ticket(config: &Config, report: &Report, kiosk_id: &str) -> (Check, Vec<u8>) {
    let printer = match ThermalPrinter::from_settings(&config.hardware.printer) {
        Ok(p) => p,
        Err(kiosk_drivers::printer::PrinterError::NotConfigured) => {
            return (
                Check::skip("test ticket", "no printer configured"),
                Vec::new(),
            );
        }
        Err(e) => {
            return (
                Check::fail("test ticket", e.to_string(), "see the printer row"),
                Vec::new(),
            );
        }
    };
    print_ticket_on(printer, config, report, kiosk_id)
}

/// Prints the test ticket on `printer`; also returns the ESC/POS bytes sent (tests render them).
pub fn print_ticket_on(
    mut printer: ThermalPrinter,
    config: &Config,
    report: &Report,
    kiosk_id: &str,
) -> (Check, Vec<u8>) {
    let now = time::OffsetDateTime::now_utc();
    let passed = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Pass)
        .count();
    let ticket = Ticket {
        store_name: config.site.kiosk.store_name.clone(),
        turn_number: "TEST".to_owned(),
        service_name: format!("Kiosk {kiosk_id}"),
        issued_at: time::PrimitiveDateTime::new(now.date(), now.time()),
        estimated_wait_minutes: 0,
        position_in_queue: 0,
        qr_payload: report.qr_text(kiosk_id),
        campaign_line: Some(format!(
            "Self-test: {passed} of {} checks passed",
            report.checks.len()
        )),
        coupon: None,
        note: None,
        footer: format!(
            "kiosk {} {} {}",
            crate::version::VERSION,
            crate::version::GIT_COMMIT,
            crate::version::TARGET
        ),
        language: Language::En,
        copy: false,
    };
    let bytes = match ticket.encode(printer.profile()) {
        Ok(b) => b,
        Err(e) => {
            return (
                Check::fail("test ticket", e.to_string(), "report to support"),
                Vec::new(),
            );
        }
    };
    let job = format!("selftest-{}", now.unix_timestamp_nanos());
    match printer.print_job(&job, &bytes) {
        Ok(_) => (
            Check::pass(
                "test ticket",
                "printed: check it is legible and its QR scans",
            ),
            bytes,
        ),
        Err(e) => (
            Check::fail("test ticket", e.to_string(), "see the printer row"),
            bytes,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(files: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for f in files {
            let p = root.path().join(f.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        root
    }

    #[test]
    fn a_kiosk_without_its_browser_fails_the_screen_check_with_the_install_command() {
        let root = root_with(&["/usr/bin/cage"]);
        let c = screen_installation(root.path(), Some("enabled"));
        assert_eq!(c.outcome, Outcome::Fail, "{c:?}");
        assert!(c.detail.contains("chromium not installed"), "{c:?}");
        assert!(c.fix.unwrap().contains("apt-get install chromium"));

        let root = root_with(&[]);
        let c = screen_installation(root.path(), None);
        assert!(c.detail.contains("cage and chromium"), "{c:?}");
    }

    #[test]
    fn a_disabled_browser_unit_fails_and_an_enabled_one_passes() {
        let root = root_with(&["/usr/bin/cage", "/usr/bin/chromium-browser"]);
        let c = screen_installation(root.path(), Some("disabled"));
        assert_eq!(c.outcome, Outcome::Fail, "{c:?}");
        assert!(
            c.fix
                .unwrap()
                .contains("systemctl enable --now kiosk-browser")
        );
        let c = screen_installation(root.path(), Some("enabled"));
        assert_eq!(c.outcome, Outcome::Pass, "{c:?}");
        assert!(c.detail.contains("/usr/bin/chromium-browser"), "{c:?}");
    }
}
