//! Configuration: the site config (`site.toml`: who this kiosk is, where its CRM is, what the
//! store offers) and the hardware profile it names (`hw-config/*.toml`: which devices, real or
//! simulated). Loaded once at start-up; every error names the file, the line and the key, and
//! says what was expected. Unknown keys are errors: a typo must not silently become a default.

mod error;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kiosk_drivers::card::settings::CardReaderSettings;
use kiosk_drivers::gpio::settings::GpioSettings;
use kiosk_drivers::keypad::settings::{HOLD_MS_RANGE, KeypadSettings};
use kiosk_drivers::printer::settings::PrinterSettings;
use kiosk_drivers::scanner::settings::ScannerSettings;
use kiosk_drivers::speech::settings::{
    CallsOutput, CustomerOutput, RATE_WPM_RANGE, SpeechSettings, VOLUME_RANGE,
};
use serde::Deserialize;

pub use error::{ConfigError, line_col, span_of_key};
pub use kiosk_protocol::store_config::parse_hh_mm;

mod remote;
pub use remote::{RemoteConfigError, StoreConfigSource};

use kiosk_journal::Synchronous;

/// Hardware profiles compiled into the binary, so `kiosk demo` and `kiosk provision` work on a
/// machine that has only the binary. A profile file on disk with the same name wins.
#[derive(rust_embed::RustEmbed)]
#[folder = "../hw-config/"]
#[include = "*.toml"]
struct EmbeddedProfiles;

/// The whole configuration of one kiosk.
#[derive(Debug, Clone)]
pub struct Config {
    /// The site config.
    pub site: SiteConfig,
    /// The hardware profile it names.
    pub hardware: HardwareProfile,
    /// Where the site config was read from.
    pub site_path: PathBuf,
    /// Where the hardware profile was read from (`embedded:<name>` for a built-in one).
    pub hardware_source: String,
}

/// `site.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Who this kiosk is.
    pub kiosk: KioskSection,
    /// The CRM endpoint.
    pub crm: CrmSection,
    /// The turn queue.
    pub queue: QueueSection,
    /// The local web UI.
    #[serde(default)]
    pub ui: UiSection,
    /// The journal.
    #[serde(default)]
    pub journal: JournalSection,
    /// Privacy policy shown at registration.
    pub privacy: PrivacySection,
    /// Logging.
    #[serde(default)]
    pub logging: LoggingSection,
    /// The other kiosks of the store (absent: a store of one kiosk).
    #[serde(default)]
    pub store: StoreSection,
    /// A bench kiosk's simulator control panel (only with a profile that has simulators).
    #[serde(default)]
    pub bench: BenchSection,
    /// Step-In devices near the store (an ATM, a bill-payment machine) allowed to issue turns
    /// and call staff through the kiosk's staff listener (docs/STEP-IN.md).
    #[serde(default)]
    pub stepin: StepInSection,
}

/// `[stepin]`: the devices allowed to use the Step-In API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepInSection {
    /// `[[stepin.devices]]`.
    #[serde(default)]
    pub devices: Vec<StepInDevice>,
}

/// One Step-In device.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepInDevice {
    /// Its id (letters, digits, `-`, `_`; 1 to 32): the `x-stepin-device` header names it.
    pub id: String,
    /// The device as staff know it (`Cajero de la entrada`): on the counter pages' alerts.
    pub name: String,
    /// Its key: 32 random bytes, base64 (`openssl rand -base64 32`).
    pub key: String,
}

impl std::fmt::Debug for StepInDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepInDevice")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl StepInDevice {
    /// The decoded key (32 bytes), or why it is not one.
    pub fn key_bytes(&self) -> Result<[u8; 32], String> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.key.trim())
            .map_err(|e| {
                format!("the key is not base64 ({e}): make one with `openssl rand -base64 32`")
            })?;
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            format!(
                "the key decodes to {} bytes, expected 32: make one with `openssl rand -base64 32`",
                bytes.len()
            )
        })
    }
}

/// `[bench]`: what `kiosk run` serves besides the kiosk when the hardware profile has
/// simulators (a bench kiosk, to rehearse a store or reproduce a report): the simulator control
/// panel on loopback, and every printed ticket saved as a PNG under the data directory's
/// `tickets/`. Ignored with real hardware.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchSection {
    /// Serve the panel (default true).
    #[serde(default = "default_true")]
    pub panel: bool,
    /// Where the panel listens: loopback only (default `127.0.0.1`, the UI's port + 3).
    pub panel_listen: Option<SocketAddr>,
    /// Known test cards the panel offers to tap (besides an unknown card and a typed UID).
    #[serde(default)]
    pub cards: Vec<BenchCard>,
}

impl Default for BenchSection {
    fn default() -> Self {
        BenchSection {
            panel: true,
            panel_listen: None,
            cards: Vec::new(),
        }
    }
}

/// One card in `[bench].cards`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchCard {
    /// What the panel's button says (`Test card: VIP`).
    pub label: String,
    /// The card's UID in hex (4, 7 or 10 bytes; `:`, `-` and spaces allowed).
    pub uid: String,
}

fn default_true() -> bool {
    true
}

impl SiteConfig {
    /// Where the bench panel listens: `[bench].panel_listen`, or 127.0.0.1 on the UI's port + 3
    /// (8083 by default; any free port when the UI's port is 0, as in tests).
    pub fn bench_panel_addr(&self) -> SocketAddr {
        self.bench.panel_listen.unwrap_or_else(|| {
            let port = match self.ui.listen.port() {
                0 => 0,
                p => p.saturating_add(3),
            };
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port))
        })
    }
}

/// A card UID as a person types it: hex digits, 4, 7 or 10 bytes (ISO 14443-3 single, double
/// and triple size), separators `:`, `-` and spaces ignored.
pub fn parse_card_uid(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect();
    let uid = hex::decode(&digits).map_err(|_| {
        "a UID is hex digits (0-9, A-F), e.g. 04A1B2C3 or 04:11:22:33:44:55:66".to_owned()
    })?;
    match uid.len() {
        4 | 7 | 10 => Ok(uid),
        n => Err(format!(
            "a UID has 4, 7 or 10 bytes (8, 14 or 20 hex digits); this one has {n}"
        )),
    }
}

/// `[store]`: the kiosks that share this store's queue. The same list, in the same order, on
/// every kiosk of the store; the first one keeps the store's number sequence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Where this kiosk answers the others on the shop LAN (`0.0.0.0:8082`).
    pub listen: Option<SocketAddr>,
    /// Every kiosk of the store, this one included.
    #[serde(default)]
    pub kiosks: Vec<StoreKiosk>,
    /// How long a number request to the sequencer may take before this kiosk numbers from its
    /// own block, in milliseconds.
    #[serde(default = "default_sequencer_timeout_ms")]
    pub sequencer_timeout_ms: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            listen: None,
            kiosks: Vec::new(),
            sequencer_timeout_ms: default_sequencer_timeout_ms(),
        }
    }
}

/// One kiosk in `[store].kiosks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreKiosk {
    /// Its kiosk id (from enrollment; `kiosk status` shows it).
    pub id: String,
    /// Base URL of its store listener (`http://192.168.1.12:8082`).
    pub url: String,
}

/// UI languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// Spanish.
    Es,
    /// English.
    En,
}

impl Locale {
    /// The BCP 47 tag.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::Es => "es",
            Locale::En => "en",
        }
    }
}

/// `[kiosk]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskSection {
    /// The kiosk id; assigned by enrollment (`kiosk provision`), so optional before it.
    pub id: Option<String>,
    /// The store id in the CRM.
    pub store: String,
    /// The store's name as printed on tickets.
    pub store_name: String,
    /// Default language of the screen and tickets.
    #[serde(default = "default_locale")]
    pub locale: Locale,
    /// A hardware profile name (`simulated`, `pi4-mfrc522-usb-printer`) or a path to a profile.
    pub hardware_profile: String,
    /// Where the journal, keys and credentials live.
    pub data_dir: PathBuf,
    /// The store's IANA time zone (business days and opening times are local).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The kiosk as staff know it (`Quiosco de la entrada`), on the counter pages when a
    /// customer calls an assistant from it; default `Quiosco <kiosk id>`.
    #[serde(default)]
    pub place_name: Option<String>,
    /// `queue` (customers take turns; the default) or `browse` (a browse point: a tapped card
    /// sees content and offers for its segment and its turn, without taking one).
    #[serde(default)]
    pub role: kiosk_core::journey::KioskRole,
}

/// `[crm]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmSection {
    /// Base URL of the CRM endpoint (`https://...`; `http://` only for loopback).
    pub url: String,
    /// First retry delay after a failure, in milliseconds.
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[serde(default = "default_backoff_cap_ms")]
    pub backoff_cap_ms: u64,
    /// TCP/TLS connect timeout, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How often to pull campaigns, profiles and erasures, in seconds.
    #[serde(default = "default_feed_interval_s")]
    pub feed_interval_s: u64,
    /// How long the screen waits for the CRM to greet an unknown card, in milliseconds.
    #[serde(default = "default_lookup_timeout_ms")]
    pub lookup_timeout_ms: u64,
    /// Extra CA certificate (PEM) to trust, for a private CRM.
    pub ca_file: Option<PathBuf>,
    /// The CRM's address as customers' phones reach it (`https://turnos.example.com`), for the
    /// link in the ticket's QR (`<public_url>/t/<signed turn>`: the customer's live turn page).
    /// Default: `url`.
    pub public_url: Option<String>,
}

impl CrmSection {
    /// The base of the ticket's link: `public_url`, else `url`, without a trailing `/`.
    pub fn ticket_link_base(&self) -> &str {
        self.public_url
            .as_deref()
            .unwrap_or(&self.url)
            .trim_end_matches('/')
    }
}

/// `[queue]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// Local time the store opens; turn numbers restart every day at this time (`HH:MM`).
    pub opening_time: String,
    /// How many counters serve at once (for wait estimates when no history exists yet).
    #[serde(default = "default_counters")]
    pub counters: u32,
    /// The services customers queue for.
    pub services: Vec<ServiceConfig>,
}

/// One service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The letter that prefixes its turn numbers (`A`).
    pub letter: String,
    /// Names per language.
    pub name: Names,
    /// Priority service (e.g. accessibility): its turns are called first.
    #[serde(default)]
    pub priority: bool,
    /// Expected minutes per customer before real service times are known.
    #[serde(default = "default_service_minutes")]
    pub expected_minutes: u32,
    /// Extra line printed on this service's tickets.
    pub ticket_note: Option<Names>,
}

/// A text in both languages.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Names {
    /// Spanish.
    pub es: String,
    /// English.
    pub en: String,
}

impl Names {
    /// The text in `locale`.
    pub fn get(&self, locale: Locale) -> &str {
        match locale {
            Locale::Es => &self.es,
            Locale::En => &self.en,
        }
    }
}

/// `[ui]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiSection {
    /// The customer screen and local API: loopback only.
    #[serde(default = "default_ui_listen")]
    pub listen: SocketAddr,
    /// The staff pages (counter, lobby) for the shop's LAN; `None` serves them on `listen` only.
    pub staff_listen: Option<SocketAddr>,
    /// SHA-256 (hex) of the store-wide staff PIN; `kiosk provision` sets it. Whoever logs in
    /// with it is not named on the turns they call.
    pub staff_pin_sha256: Option<String>,
    /// Staff members with PINs of their own: the turns they call and serve carry their id, so
    /// the managers' reports count per staff member. A store config from the CRM may replace
    /// the list.
    #[serde(default)]
    pub staff: Vec<StaffEntry>,
    /// Seconds without interaction before the screen returns to the attract loop.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u32,
    /// Seconds before a screen's time limit that the warning (banner with "More time", a tone,
    /// spoken in accessible mode) appears. WCAG 2.2.1 asks for at least 20.
    #[serde(default = "default_time_warning_s")]
    pub time_warning_s: u32,
    /// Accessible mode multiplies the customer's time limits by this.
    #[serde(default = "default_accessible_time_factor")]
    pub accessible_time_factor: u32,
    /// Host names the staff pages may be reached by besides IP addresses, `localhost` and this
    /// machine's own name (and `NAME.local`): e.g. `["kiosk-3.tienda.lan"]`. Requests naming any
    /// other host are refused, which defeats DNS rebinding (a page of another site whose name
    /// points at the kiosk).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Seconds without any browser showing the kiosk page (while the kiosk runs) after which
    /// the screen is reported absent and the kiosk browser restarted (then again with a doubling
    /// interval while it stays dark). 0 turns the watchdog off; otherwise 10 to 3600 (longer than
    /// the browser takes to start: up to a minute on a Pi).
    #[serde(default = "default_screen_watchdog_s")]
    pub screen_watchdog_s: u32,
}

fn default_screen_watchdog_s() -> u32 {
    90
}

impl Default for UiSection {
    fn default() -> Self {
        Self {
            listen: default_ui_listen(),
            staff_listen: None,
            staff_pin_sha256: None,
            staff: Vec::new(),
            idle_timeout_s: default_idle_timeout_s(),
            time_warning_s: default_time_warning_s(),
            accessible_time_factor: default_accessible_time_factor(),
            allowed_hosts: Vec::new(),
            screen_watchdog_s: default_screen_watchdog_s(),
        }
    }
}

/// `[[ui.staff]]`: a staff member with a PIN of their own.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffEntry {
    /// Stable id recorded on their turns (`ana`, `s-0042`).
    pub id: String,
    /// Name as the counter page shows it.
    pub name: String,
    /// SHA-256 (hex) of their PIN (`kiosk pin-digest` prints it).
    pub pin_sha256: String,
}

impl StaffEntry {
    /// The member as the store configuration's rules and the staff login know them.
    pub fn member(&self) -> kiosk_protocol::store_config::StaffMember {
        kiosk_protocol::store_config::StaffMember {
            id: self.id.clone(),
            name: self.name.clone(),
            pin_sha256: self.pin_sha256.clone(),
        }
    }
}

/// `[journal]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// Days acknowledged events are kept before pruning.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Most disk space the journal may use, in MiB.
    #[serde(default = "default_disk_budget_mib")]
    pub disk_budget_mib: u64,
    /// Commit durability (`full`; see the journal docs before changing it).
    #[serde(default)]
    pub synchronous: Synchronous,
}

impl Default for JournalSection {
    fn default() -> Self {
        Self {
            retention_days: default_retention_days(),
            disk_budget_mib: default_disk_budget_mib(),
            synchronous: Synchronous::Full,
        }
    }
}

/// `[privacy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySection {
    /// Version of the privacy policy the registration screen shows (recorded with each consent).
    pub policy_version: String,
    /// The policy text per language.
    pub policy_text: Names,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (journald, log shippers).
    Json,
}

/// `[logging]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSection {
    /// Output format (overridden by `--log-format`).
    #[serde(default)]
    pub format: LogFormat,
    /// Default filter when `RUST_LOG` is unset (e.g. `info,kiosk=debug`).
    pub filter: Option<String>,
}

/// A hardware profile (`hw-config/*.toml`): which device of each kind, real or simulated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareProfile {
    /// Profile name (matches the file name).
    pub name: String,
    /// What build this is, for technicians.
    pub description: String,
    /// The loyalty card reader.
    pub card_reader: CardReaderSettings,
    /// The barcode / QR scanner.
    pub scanner: ScannerSettings,
    /// The ticket printer.
    pub printer: PrinterSettings,
    /// Presence sensor and status LED.
    pub gpio: GpioSettings,
    /// The keypad that operates the kiosk without touch and starts accessible mode (absent:
    /// none).
    #[serde(default)]
    pub keypad: KeypadSettings,
    /// The kiosk's own speech (absent: none).
    #[serde(default)]
    pub speech: SpeechSettings,
}

impl HardwareProfile {
    /// Whether any device of the profile is a simulator: a bench kiosk (the `simulated`
    /// profile, or a real one with a simulated part), whose simulator control panel
    /// `kiosk run` serves on loopback.
    pub fn has_simulators(&self) -> bool {
        matches!(self.card_reader, CardReaderSettings::Simulated { .. })
            || matches!(self.scanner, ScannerSettings::Simulated { .. })
            || self.printer_is_simulated()
            || matches!(self.gpio, GpioSettings::Simulated)
            || matches!(self.keypad, KeypadSettings::Simulated { .. })
    }

    /// Whether the printer is the virtual one (its tickets can be saved as PNGs).
    pub fn printer_is_simulated(&self) -> bool {
        matches!(
            self.printer.connection,
            kiosk_drivers::printer::settings::PrinterConnection::Simulated
        )
    }
}

fn default_locale() -> Locale {
    Locale::Es
}
fn default_timezone() -> String {
    "Europe/Madrid".into()
}
fn default_backoff_base_ms() -> u64 {
    500
}
fn default_backoff_cap_ms() -> u64 {
    60_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_feed_interval_s() -> u64 {
    60
}
fn default_lookup_timeout_ms() -> u64 {
    800
}
fn default_sequencer_timeout_ms() -> u64 {
    // A sequencer persists the number before answering: one fsync, tens of ms on an SD card
    // under load. A cut link fails at once whatever this is; only a stalled one waits it out.
    250
}
fn default_counters() -> u32 {
    1
}
fn default_service_minutes() -> u32 {
    5
}
fn default_ui_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_idle_timeout_s() -> u32 {
    45
}
fn default_time_warning_s() -> u32 {
    20
}
fn default_accessible_time_factor() -> u32 {
    3
}
fn default_retention_days() -> u32 {
    30
}
fn default_disk_budget_mib() -> u64 {
    1024
}

/// Parses `text` (the contents of `file`) as `T`, with located errors.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| ConfigError::from_toml(file, text, &e, None))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::from_toml(file, text, e.inner(), Some(key))
    })
}

/// Largest config or profile file read (real ones are a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads a config or profile file: a regular file of at most [`MAX_CONFIG_BYTES`] in UTF-8. A
/// path naming a device, a FIFO or a directory (`/dev/zero`, a typo'd `/dev/ttyUSB0`) is an
/// error, not an endless read.
pub fn read_config_text(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_BYTES} bytes: not a config file"),
        ));
    }
    Ok(text)
}

impl Config {
    /// Loads and validates the site config at `path` and the hardware profile it names.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_text(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the site config: {e}")))?;
        Self::from_text(path, &text)
    }

    /// Like [`load`](Self::load), from text already read.
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let site: SiteConfig = parse_toml(path, text)?;
        site.validate(path, text)?;
        let (hardware, hardware_source) = load_profile(path, text, &site.kiosk.hardware_profile)?;
        Ok(Config {
            site,
            hardware,
            site_path: path.to_owned(),
            hardware_source,
        })
    }
}

/// Names of the hardware profiles built into the binary.
pub fn embedded_profiles() -> Vec<String> {
    let mut names: Vec<String> = EmbeddedProfiles::iter()
        .filter_map(|f| f.strip_suffix(".toml").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Loads a hardware profile by name or path, resolving relative paths against the site file.
pub fn load_profile(
    site_path: &Path,
    site_text: &str,
    name: &str,
) -> Result<(HardwareProfile, String), ConfigError> {
    let base = site_path.parent().unwrap_or(Path::new("."));
    let looks_like_path = name.contains('/') || name.ends_with(".toml");
    let candidates: Vec<PathBuf> = if looks_like_path {
        vec![base.join(name)]
    } else {
        vec![
            base.join("hw-config").join(format!("{name}.toml")),
            base.join(format!("{name}.toml")),
            PathBuf::from("/etc/kiosk/hw-config").join(format!("{name}.toml")),
        ]
    };
    for candidate in &candidates {
        match read_config_text(candidate) {
            Ok(text) => {
                let profile = parse_profile(candidate, &text)?;
                return Ok((profile, candidate.display().to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConfigError::at_key(
                    site_path,
                    site_text,
                    "kiosk.hardware_profile",
                    format!(
                        "hardware profile `{name}`: cannot read {}: {e}",
                        candidate.display()
                    ),
                ));
            }
        }
    }
    if !looks_like_path {
        if let Some(file) = EmbeddedProfiles::get(&format!("{name}.toml")) {
            let label = PathBuf::from(format!("embedded:hw-config/{name}.toml"));
            let text = String::from_utf8_lossy(&file.data).into_owned();
            let profile = parse_profile(&label, &text)?;
            return Ok((profile, label.display().to_string()));
        }
    }
    Err(ConfigError::at_key(
        site_path,
        site_text,
        "kiosk.hardware_profile",
        format!(
            "hardware profile `{name}` not found (looked in {}); expected one of: {}",
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            embedded_profiles().join(", ")
        ),
    ))
}

/// The longest `idle_poll_ms`: a card tapped briefly is in the field for about a quarter of a
/// second, and a slower poll can miss it.
const MAX_IDLE_POLL_MS: u32 = 250;

/// The MFRC522's poll intervals (both kinds that poll: `mfrc522` and `simulated`).
fn check_poll_intervals(
    path: &Path,
    text: &str,
    poll_interval_ms: u32,
    idle_poll_ms: Option<u32>,
) -> Result<(), ConfigError> {
    if poll_interval_ms == 0 {
        return Err(ConfigError::at_key(
            path,
            text,
            "card_reader.poll_interval_ms",
            "a poll interval of 0 ms keeps a core busy polling: expected milliseconds between polls, e.g. 25",
        ));
    }
    match idle_poll_ms {
        Some(idle) if idle < poll_interval_ms => Err(ConfigError::at_key(
            path,
            text,
            "card_reader.idle_poll_ms",
            format!(
                "idle_poll_ms {idle} is shorter than poll_interval_ms {poll_interval_ms}: the idle interval is the slower one, used while nobody is in front of the kiosk; expected {poll_interval_ms} to {MAX_IDLE_POLL_MS}"
            ),
        )),
        Some(idle) if idle > MAX_IDLE_POLL_MS => Err(ConfigError::at_key(
            path,
            text,
            "card_reader.idle_poll_ms",
            format!(
                "idle_poll_ms {idle} could miss a card tapped briefly (about a quarter of a second in the field): expected {poll_interval_ms} to {MAX_IDLE_POLL_MS}"
            ),
        )),
        _ => Ok(()),
    }
}

/// Parses and validates a hardware profile file.
pub fn parse_profile(path: &Path, text: &str) -> Result<HardwareProfile, ConfigError> {
    let profile: HardwareProfile = parse_toml(path, text)?;
    match &profile.card_reader {
        CardReaderSettings::Mfrc522 {
            poll_interval_ms,
            idle_poll_ms,
            ..
        }
        | CardReaderSettings::Simulated {
            poll_interval_ms,
            idle_poll_ms,
            ..
        } => check_poll_intervals(path, text, *poll_interval_ms, *idle_poll_ms)?,
        _ => {}
    }
    if let CardReaderSettings::Mfrc522 {
        antenna_gain_db,
        spi_hz,
        irq_chip,
        irq_line,
        transceive,
        ..
    } = &profile.card_reader
    {
        // The IRQ pin is one line on one chip: half of it is a typo, not "no IRQ".
        match (irq_chip, irq_line) {
            (Some(_), None) => {
                return Err(ConfigError::at_key(
                    path,
                    text,
                    "card_reader.irq_chip",
                    "irq_chip is set but irq_line is not: give the line offset of the MFRC522's IRQ pin (BCM number on a Pi, e.g. 24), or remove irq_chip to poll instead",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::at_key(
                    path,
                    text,
                    "card_reader.irq_line",
                    "irq_line is set but irq_chip is not: give the GPIO character device, e.g. \"/dev/gpiochip0\"",
                ));
            }
            (Some(chip), Some(_)) if !chip.starts_with("/dev/") => {
                return Err(ConfigError::at_key(
                    path,
                    text,
                    "card_reader.irq_chip",
                    format!(
                        "irq_chip `{chip}` is not a device path: expected e.g. \"/dev/gpiochip0\""
                    ),
                ));
            }
            (Some(_), Some(_))
                if *transceive == kiosk_drivers::card::settings::Transceive::Crate =>
            {
                return Err(ConfigError::at_key(
                    path,
                    text,
                    "card_reader.irq_line",
                    "the IRQ line is used only by transceive = \"lean\": remove irq_chip and irq_line, or use the lean path",
                ));
            }
            _ => {}
        }
        if ![18, 23, 33, 38, 43, 48].contains(antenna_gain_db) {
            return Err(ConfigError::at_key(
                path,
                text,
                "card_reader.antenna_gain_db",
                format!(
                    "antenna gain {antenna_gain_db} dB is not one the MFRC522 has: expected 18, 23, 33, 38, 43 or 48"
                ),
            ));
        }
        if !(100_000..=10_000_000).contains(spi_hz) {
            return Err(ConfigError::at_key(
                path,
                text,
                "card_reader.spi_hz",
                format!(
                    "SPI clock {spi_hz} Hz is outside what the MFRC522 takes: expected 100000 to 10000000"
                ),
            ));
        }
    }
    check_keypad(path, text, &profile.keypad)?;
    check_speech(path, text, &profile.speech)?;
    Ok(profile)
}

/// The `[keypad]` section.
fn check_keypad(path: &Path, text: &str, keypad: &KeypadSettings) -> Result<(), ConfigError> {
    if let KeypadSettings::Evdev { device, .. } = keypad
        && !device.starts_with("/dev/input/")
    {
        return Err(ConfigError::at_key(
            path,
            text,
            "keypad.device",
            format!(
                "`{device}` is not an input event node: expected a path under /dev/input/, preferably /dev/input/by-id/...-event-kbd (`ls /dev/input/by-id/` lists them)"
            ),
        ));
    }
    match keypad.hold_ms() {
        Some(ms) if !HOLD_MS_RANGE.contains(&ms) => Err(ConfigError::at_key(
            path,
            text,
            "keypad.hold_ms",
            format!(
                "holding the start key for {ms} ms: expected {} to {} (shorter starts by accident while feeling for the key, longer is hard to hold with a tremor)",
                HOLD_MS_RANGE.start(),
                HOLD_MS_RANGE.end()
            ),
        )),
        _ => Ok(()),
    }
}

/// The `[speech]` section.
fn check_speech(path: &Path, text: &str, speech: &SpeechSettings) -> Result<(), ConfigError> {
    let err = |key: &str, msg: String| Err(ConfigError::at_key(path, text, key, msg));
    if !RATE_WPM_RANGE.contains(&speech.rate_wpm) {
        return err(
            "speech.rate_wpm",
            format!(
                "{} words per minute: expected {} to {} (160 is a calm pace)",
                speech.rate_wpm,
                RATE_WPM_RANGE.start(),
                RATE_WPM_RANGE.end()
            ),
        );
    }
    if !VOLUME_RANGE.contains(&speech.volume) {
        return err(
            "speech.volume",
            format!(
                "{}: expected espeak-ng's amplitude, {} to {} (100 is its default)",
                speech.volume,
                VOLUME_RANGE.start(),
                VOLUME_RANGE.end()
            ),
        );
    }
    for (key, voice) in [
        ("speech.voices.es", &speech.voices.es),
        ("speech.voices.en", &speech.voices.en),
    ] {
        let ok = !voice.is_empty()
            && voice
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-+_".contains(c));
        if !ok {
            return err(
                key,
                format!(
                    "`{voice}` is not an espeak-ng voice name: expected e.g. \"es\", \"es-419\", \"en-gb\" (`espeak-ng --voices` lists them)"
                ),
            );
        }
    }
    if let CustomerOutput::Alsa { device, .. } = &speech.customer
        && device.trim().is_empty()
    {
        return err(
            "speech.customer.device",
            "expected an ALSA device, e.g. \"plughw:CARD=Headphones,DEV=0\" (`aplay -L` lists them)".into(),
        );
    }
    match &speech.calls {
        CallsOutput::Alsa { device, .. } if device.trim().is_empty() => {
            return err(
                "speech.calls.device",
                "expected an ALSA device, e.g. \"plughw:CARD=vc4hdmi0,DEV=0\" (`aplay -L` lists them)".into(),
            );
        }
        CallsOutput::Alsa { locales, .. } | CallsOutput::Simulated { locales }
            if locales.is_empty() =>
        {
            return err(
                "speech.calls.locales",
                "no language to call turns in: expected e.g. [\"es\", \"en\"], or kind = \"none\" for silent calls".into(),
            );
        }
        _ => {}
    }
    if let (CustomerOutput::Alsa { device: a, .. }, CallsOutput::Alsa { device: b, .. }) =
        (&speech.customer, &speech.calls)
        && a == b
    {
        return err(
            "speech.calls.device",
            format!(
                "calls would play on the customer's device `{a}`: the customer's speech belongs in the headphone jack and the calls on a loudspeaker; give each its own device"
            ),
        );
    }
    Ok(())
}

impl SiteConfig {
    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let err = |key: &str, msg: String| Err(ConfigError::at_key(path, text, key, msg));
        if self.kiosk.store.trim().is_empty() {
            return err(
                "kiosk.store",
                "expected a store id, found an empty string".into(),
            );
        }
        if jiff::tz::TimeZone::get(&self.kiosk.timezone).is_err() {
            return err(
                "kiosk.timezone",
                format!(
                    "unknown time zone `{}`: expected an IANA name such as `Europe/Madrid`",
                    self.kiosk.timezone
                ),
            );
        }
        match self.crm.url.split_once("://") {
            Some(("https", rest)) if !rest.is_empty() => {}
            Some(("http", rest)) if is_loopback_host(rest) => {}
            Some(("http", _)) => {
                return err(
                    "crm.url",
                    format!(
                        "`{}` would send customer data in clear text: expected an https:// URL (http:// only for 127.0.0.1 or localhost)",
                        self.crm.url
                    ),
                );
            }
            _ => {
                return err(
                    "crm.url",
                    format!(
                        "`{}` is not a URL: expected https://host[:port]",
                        self.crm.url
                    ),
                );
            }
        }
        if let Some(public) = &self.crm.public_url {
            let ok = match public.split_once("://") {
                Some(("https", rest)) => !rest.is_empty(),
                Some(("http", rest)) => is_loopback_host(rest),
                _ => false,
            };
            if !ok || public.contains(char::is_whitespace) || public.contains(['?', '#']) {
                return err(
                    "crm.public_url",
                    format!(
                        "`{public}`: expected the https:// address phones open (http:// only for 127.0.0.1 or localhost), without a query or fragment"
                    ),
                );
            }
        }
        if self.crm.backoff_base_ms == 0 || self.crm.backoff_cap_ms < self.crm.backoff_base_ms {
            return err(
                "crm.backoff_cap_ms",
                format!(
                    "expected backoff_base_ms > 0 and backoff_cap_ms >= backoff_base_ms, found {} and {}",
                    self.crm.backoff_base_ms, self.crm.backoff_cap_ms
                ),
            );
        }
        let mut device_ids = std::collections::HashSet::new();
        for (i, d) in self.stepin.devices.iter().enumerate() {
            let ok = (1..=32).contains(&d.id.len())
                && d.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return err(
                    &format!("stepin.devices[{i}].id"),
                    format!(
                        "`{}` is not a device id: expected 1 to 32 letters, digits, `-` or `_`",
                        d.id
                    ),
                );
            }
            if !device_ids.insert(d.id.clone()) {
                return err(
                    &format!("stepin.devices[{i}].id"),
                    format!(
                        "device id `{}` is used twice: each device needs its own",
                        d.id
                    ),
                );
            }
            if d.name.trim().is_empty() || d.name.chars().count() > 60 {
                return err(
                    &format!("stepin.devices[{i}].name"),
                    "expected the device's name as staff know it (1 to 60 characters)".into(),
                );
            }
            if let Err(msg) = d.key_bytes() {
                return err(&format!("stepin.devices[{i}].key"), msg);
            }
        }
        self.check_store_parts()
            .or_else(|e| err(&e.key, e.message))?;
        if !self.ui.listen.ip().is_loopback() {
            return err(
                "ui.listen",
                format!(
                    "{} is reachable from the network: the customer screen and local API must listen on 127.0.0.1; use ui.staff_listen for the LAN staff pages",
                    self.ui.listen
                ),
            );
        }
        if let Some(addr) = self.bench.panel_listen
            && !addr.ip().is_loopback()
        {
            return err(
                "bench.panel_listen",
                format!(
                    "{addr} is reachable from the network: the simulator panel taps cards and prints tickets without a password, so it listens on 127.0.0.1 only"
                ),
            );
        }
        for (i, c) in self.bench.cards.iter().enumerate() {
            if c.label.trim().is_empty() {
                return err(
                    &format!("bench.cards[{i}].label"),
                    "expected what the panel's button says, found an empty string".into(),
                );
            }
            if let Err(e) = parse_card_uid(&c.uid) {
                return err(&format!("bench.cards[{i}].uid"), e);
            }
        }
        let w = self.ui.screen_watchdog_s;
        if w != 0 && !(10..=3600).contains(&w) {
            return err(
                "ui.screen_watchdog_s",
                format!(
                    "{w} s: expected 0 (off) or 10 to 3600 seconds (more than the browser needs to start: up to a minute on a Pi)"
                ),
            );
        }
        let store = &self.store;
        if !store.kiosks.is_empty() {
            if store.kiosks.len() > 32 {
                return err(
                    "store.kiosks",
                    format!("{} kiosks: a store has at most 32", store.kiosks.len()),
                );
            }
            let mut ids = std::collections::HashSet::new();
            for (i, k) in store.kiosks.iter().enumerate() {
                if k.id.trim().is_empty() || !ids.insert(k.id.as_str()) {
                    return err(
                        &format!("store.kiosks[{i}].id"),
                        format!(
                            "kiosk id `{}` is empty or listed twice: list each kiosk once",
                            k.id
                        ),
                    );
                }
                let ok = k.url.starts_with("http://") || k.url.starts_with("https://");
                if !ok || k.url.len() < 10 {
                    return err(
                        &format!("store.kiosks[{i}].url"),
                        format!(
                            "`{}` is not a kiosk URL: expected http://<address>:<port> of its [store].listen",
                            k.url
                        ),
                    );
                }
            }
            if store.kiosks.len() > 1 && store.listen.is_none() {
                return err(
                    "store.kiosks",
                    "a store of several kiosks needs [store].listen (e.g. \"0.0.0.0:8082\") so the others can reach this one".into(),
                );
            }
            if let Some(id) = &self.kiosk.id
                && !store.kiosks.iter().any(|k| &k.id == id)
            {
                return err(
                    "store.kiosks",
                    format!(
                        "this kiosk ({id}) is not in the list: list every kiosk of the store, this one included"
                    ),
                );
            }
        }
        if !(10..=5_000).contains(&store.sequencer_timeout_ms) {
            return err(
                "store.sequencer_timeout_ms",
                format!(
                    "{} ms: expected 10 to 5000 (a LAN answers in a few ms)",
                    store.sequencer_timeout_ms
                ),
            );
        }
        if !(15..=120).contains(&self.ui.time_warning_s) {
            return err(
                "ui.time_warning_s",
                format!(
                    "{} s: expected 15 to 120 (WCAG 2.2.1 gives a customer at least 20 s to ask for more time)",
                    self.ui.time_warning_s
                ),
            );
        }
        if !(1..=10).contains(&self.ui.accessible_time_factor) {
            return err(
                "ui.accessible_time_factor",
                format!(
                    "{}: expected 1 to 10 (3 gives three times as long in accessible mode)",
                    self.ui.accessible_time_factor
                ),
            );
        }
        if self.journal.retention_days == 0 {
            return err("journal.retention_days", "expected at least 1 day".into());
        }
        if self.journal.disk_budget_mib < 16 {
            return err(
                "journal.disk_budget_mib",
                format!(
                    "{} MiB is too small: expected at least 16",
                    self.journal.disk_budget_mib
                ),
            );
        }
        Ok(())
    }
}

fn is_loopback_host(rest: &str) -> bool {
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests;
