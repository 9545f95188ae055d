//! The store managers' dashboard figures: what one store (or one of its kiosks) did in a time
//! window, and how its kiosks are now.
//!
//! Data flow: ingest → store (`turns`, `kiosk_devices`, `events`) → **figures** → `/dashboard`.
//! Each backend fetches the same small, pre-aggregated rows ([`DashboardRows`]) with indexed
//! queries, and this module turns them into a [`Dashboard`] with the same pure code, so SQLite and
//! PostgreSQL answer identically. Times are the skew-corrected times the store keeps; hours and
//! days are the store's local ones when its time zone is known, else UTC.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::model::{StoreRecord, variant_stats};

/// Device-log lines per kiosk when the caller does not say.
pub const DEFAULT_LOGS_PER_KIOSK: u32 = 10;
/// At most this many device-log lines per kiosk.
pub const MAX_LOGS_PER_KIOSK: u32 = 100;
/// Raw device-log rows read for each line the dashboard shows (see [`fold_logs`]).
pub const LOG_ROWS_PER_SHOWN: i64 = 10;
/// Windows longer than this are counted per day instead of per hour.
pub const HOURLY_UP_TO_MS: i64 = 48 * HOUR_MS;
/// A kiosk with no authenticated request for this long is offline.
pub const OFFLINE_AFTER_MS: i64 = 10 * 60 * 1000;
/// An outbox backlog from this many events is a warning.
pub const BACKLOG_WARNING: i64 = 100;
/// A clock skew at least this large (either way) is a warning.
pub const SKEW_WARNING_MS: i64 = 60 * 1000;
/// Error lines logged this recently make a kiosk's health a warning.
pub const RECENT_ERRORS_MS: i64 = 15 * 60 * 1000;

const HOUR_MS: i64 = 3600 * 1000;
/// Ticket counts come from the store per quarter hour: every time zone in use today has an
/// offset that is a multiple of 15 minutes, so quarters fall into exactly one local hour.
pub const QUARTER_MS: i64 = 15 * 60 * 1000;

/// What to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardQuery {
    /// The store.
    pub store_id: String,
    /// Only this kiosk of the store, if set.
    pub kiosk_id: Option<String>,
    /// Window start, unix ms (skew-corrected time), inclusive.
    pub since_ms: i64,
    /// Window end and "now" for health, unix ms, inclusive.
    pub now_ms: i64,
    /// Device-log lines per kiosk (at most [`MAX_LOGS_PER_KIOSK`]).
    pub logs_per_kiosk: u32,
}

impl DashboardQuery {
    /// The whole store from `since_ms` to `now_ms`, with [`DEFAULT_LOGS_PER_KIOSK`] log lines.
    pub fn new(store_id: impl Into<String>, since_ms: i64, now_ms: i64) -> Self {
        DashboardQuery {
            store_id: store_id.into(),
            kiosk_id: None,
            since_ms,
            now_ms,
            logs_per_kiosk: DEFAULT_LOGS_PER_KIOSK,
        }
    }

    /// Only `kiosk_id`.
    pub fn kiosk(mut self, kiosk_id: impl Into<String>) -> Self {
        self.kiosk_id = Some(kiosk_id.into());
        self
    }

    /// The lines shown per kiosk, after folding repeats ([`fold_logs`]).
    pub fn shown_logs(&self) -> usize {
        self.logs_per_kiosk.min(MAX_LOGS_PER_KIOSK) as usize
    }

    /// The raw log rows the stores read per kiosk: [`LOG_ROWS_PER_SHOWN`] per line shown, so
    /// that a line repeated through an outage folds into one and leaves room for the others.
    pub fn log_limit(&self) -> i64 {
        i64::from(self.logs_per_kiosk.min(MAX_LOGS_PER_KIOSK)) * LOG_ROWS_PER_SHOWN
    }
}

/// A store as the dashboard's store selector lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoreSummary {
    /// Store id.
    pub id: String,
    /// Store name.
    pub name: String,
    /// IANA time zone, when set (`crm-endpoint store-timezone`, the admin API).
    pub timezone: Option<String>,
    /// Region code (`ES-MD`), when set: regional managers see the stores of their region.
    #[serde(default)]
    pub region: Option<String>,
    /// WGS 84 latitude, degrees, when set.
    #[serde(default)]
    pub latitude: Option<f64>,
    /// WGS 84 longitude, degrees, when set.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Its kiosks' ids, sorted.
    pub kiosks: Vec<String>,
}

/// Whether tickets are counted per hour or per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// Local hours.
    Hour,
    /// Local days.
    Day,
}

/// Everything the dashboard shows for one store (or kiosk) and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Dashboard {
    /// The store.
    pub store: StoreRecord,
    /// Time zone the hours are in (`UTC` when the store's is not known).
    pub timezone: String,
    /// Whether that is the store's own time zone.
    pub timezone_known: bool,
    /// The kiosk filter, if any.
    pub kiosk_id: Option<String>,
    /// Window start, unix ms.
    pub since_ms: i64,
    /// Window end and the "now" of the health figures, unix ms.
    pub now_ms: i64,
    /// Tickets issued in the window.
    pub tickets: Tickets,
    /// Waiting and service times per service, of the turns issued in the window.
    pub times: Vec<ServiceTimes>,
    /// Identified and anonymous visitors in the window.
    pub visitors: Visitors,
    /// Campaign impressions and redemptions in the window, per variant.
    pub campaigns: Vec<VariantFigures>,
    /// Survey answers in the window.
    pub nps: NpsFigures,
    /// The kiosks and their health now.
    pub kiosks: Vec<KioskStatus>,
    /// The store's configuration version at the CRM (0: none set).
    #[serde(default)]
    pub store_config_version: u64,
}

/// Tickets issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tickets {
    /// All tickets of the window.
    pub total: u64,
    /// Services seen, sorted.
    pub services: Vec<String>,
    /// Hours or days.
    pub bucket: Bucket,
    /// One entry per local hour (or day) of the window, oldest first, empty ones included.
    pub buckets: Vec<TicketBucket>,
}

/// Tickets of one hour or day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TicketBucket {
    /// Start, unix ms.
    pub start_ms: i64,
    /// `09:00` (hours) or `Mon 12` (days), local time.
    pub label: String,
    /// Tickets.
    pub total: u64,
    /// Tickets per service (services without tickets left out).
    pub by_service: BTreeMap<String, u64>,
}

/// Waiting and service times of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceTimes {
    /// Service letter.
    pub service: String,
    /// Tickets issued.
    pub tickets: u64,
    /// Issue to first call, of the turns called.
    pub wait: Option<Durations>,
    /// First call to served, of the turns served.
    pub service_time: Option<Durations>,
}

/// Median and 90th percentile of some durations (linear interpolation between ranks, as
/// PostgreSQL's `percentile_cont`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Durations {
    /// How many.
    pub count: u64,
    /// Median, seconds.
    pub median_s: f64,
    /// 90th percentile, seconds.
    pub p90_s: f64,
    /// Longest, seconds.
    pub max_s: f64,
}

/// Visitors (tickets) with and without an identified customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Visitors {
    /// Tickets issued to an identified customer (card token on the ticket).
    pub identified: u64,
    /// Tickets issued anonymously.
    pub anonymous: u64,
    /// `customer_identified` events per way (`card`, `coupon`, `app_qr`).
    pub identified_by: BTreeMap<String, u64>,
}

/// One campaign variant's conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantFigures {
    /// Campaign id.
    pub campaign_id: String,
    /// Campaign name, when the campaign is known.
    pub campaign_name: Option<String>,
    /// Variant.
    pub variant: String,
    /// Exposures: visits that saw the campaign (screen and ticket of one visit count once;
    /// docs/DESIGN.md invariant 16).
    pub shown: u64,
    /// Conversions: coupons of the variant redeemed, each once however many kiosks report it.
    pub redeemed: u64,
    /// redeemed / shown (0 when never shown).
    pub conversion: f64,
}

/// Net promoter score with its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NpsFigures {
    /// Answers: at most one per turn (docs/DESIGN.md invariant 17).
    pub responses: u64,
    /// Scores 9–10.
    pub promoters: u64,
    /// Scores 7–8.
    pub passives: u64,
    /// Scores 0–6.
    pub detractors: u64,
    /// promoters% − detractors%, −100 to 100; `None` without answers.
    pub score: Option<f64>,
    /// Answers per score 0..=10.
    pub distribution: Vec<u64>,
}

/// A kiosk's overall health, worst first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No contact for [`OFFLINE_AFTER_MS`] (or never).
    Offline,
    /// A device is absent (printer out of paper, scanner unplugged).
    Failing,
    /// Something to look at: degraded device, backlog, clock skew, recent errors.
    Warning,
    /// Nothing to report.
    Ok,
}

/// A kiosk, its devices and its last log lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KioskStatus {
    /// Kiosk id.
    pub kiosk_id: String,
    /// Hardware profile at enrollment.
    pub hardware_profile: String,
    /// Firmware version at enrollment.
    pub firmware_version: String,
    /// Last authenticated request, unix ms.
    pub last_seen_ms: Option<i64>,
    /// Clock skew, ms (server − kiosk: positive when the kiosk's clock is behind).
    pub skew_ms: Option<i64>,
    /// Outbox backlog last reported.
    pub backlog: Option<i64>,
    /// Overall health.
    pub health: Health,
    /// What is wrong, in words a technician can act on (empty when healthy).
    pub problems: Vec<String>,
    /// The printer's last reported status, if it ever reported.
    pub printer: Option<DeviceState>,
    /// Every device's last reported status, by device name.
    pub devices: Vec<DeviceState>,
    /// The kiosk's last warnings and errors (`device_log`), newest first.
    pub logs: Vec<DeviceLogLine>,
    /// The store configuration it reported running, and a refused one.
    pub config: KioskConfigState,
}

/// What a kiosk reported about the store's configuration (`store_config_applied`,
/// `store_config_refused`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KioskConfigState {
    /// The version it runs (0: its `site.toml` alone, or it never reported one).
    pub running: u64,
    /// The last version it refused, if newer than the one it runs.
    pub refused: Option<u64>,
    /// Why it refused it.
    pub refused_reason: Option<String>,
}

/// A device's last reported status (`device_status_changed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeviceState {
    /// `printer`, `scanner`, `card_reader`, `presence_sensor`, `network`, `storage`, `screen`.
    pub device: String,
    /// `ok`, `degraded` or `absent`.
    pub status: String,
    /// Why, as the kiosk said it.
    pub reason: Option<String>,
    /// When, unix ms (skew-corrected).
    pub at_ms: i64,
}

/// One shipped log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeviceLogLine {
    /// When, unix ms (skew-corrected).
    pub at_ms: i64,
    /// `warn` or `error`.
    pub level: String,
    /// Module that logged it.
    pub target: String,
    /// The message.
    pub message: String,
    /// Times logged: since the previous shipment of the same line, or, folded, in all.
    pub occurrences: u64,
    /// Folded: when the first of the folded lines was logged (equal to `at_ms` for one line).
    #[serde(default)]
    pub first_at_ms: i64,
    /// Folded: how many shipped lines were folded into this one.
    #[serde(default = "one")]
    pub reports: u64,
}

fn one() -> u64 {
    1
}

/// The same line logged again and again (a sync failure through a whole outage, a printer
/// broken pipe on every job) folded into one: lines of the same level, module and message (its
/// numbers aside, so `attempts=3` and `attempts=18` are one line) become the newest of them,
/// with the total of their occurrences and the time of the first. `lines` newest first; the
/// result too, at most `limit` lines, so a line repeated through an outage never pushes another
/// kind of warning (a printer out of paper) out of the list.
pub fn fold_logs(lines: Vec<DeviceLogLine>, limit: usize) -> Vec<DeviceLogLine> {
    fn shape(l: &DeviceLogLine) -> (String, String, String) {
        let mut message = String::with_capacity(l.message.len());
        let mut in_number = false;
        for c in l.message.chars() {
            if c.is_ascii_digit() {
                if !in_number {
                    message.push('#');
                }
                in_number = true;
            } else {
                in_number = false;
                message.push(c);
            }
        }
        (l.level.clone(), l.target.clone(), message)
    }
    let mut folded: Vec<DeviceLogLine> = Vec::new();
    let mut index: HashMap<(String, String, String), usize> = HashMap::new();
    for line in lines {
        let key = shape(&line);
        match index.get(&key) {
            Some(&i) => {
                let f = &mut folded[i];
                f.occurrences += line.occurrences.max(1);
                f.reports += 1;
                f.first_at_ms = f.first_at_ms.min(line.at_ms);
            }
            None => {
                index.insert(key, folded.len());
                folded.push(DeviceLogLine {
                    first_at_ms: line.at_ms,
                    reports: 1,
                    occurrences: line.occurrences.max(1),
                    ..line
                });
            }
        }
    }
    folded.truncate(limit);
    folded
}

/// Tickets of one quarter hour, service and identification (a store query's row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketCount {
    /// `issued_ms / QUARTER_MS`.
    pub quarter: i64,
    /// Service letter.
    pub service: String,
    /// Whether the ticket carries a card token.
    pub identified: bool,
    /// Tickets.
    pub count: i64,
}

/// A called turn's wait and, if served, its service time, ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnTiming {
    /// Service letter.
    pub service: String,
    /// First call minus issue.
    pub wait_ms: i64,
    /// Served minus first call.
    pub service_ms: Option<i64>,
}

/// A kiosk row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskRow {
    /// Kiosk id.
    pub kiosk_id: String,
    /// Hardware profile.
    pub hardware_profile: String,
    /// Firmware version.
    pub firmware_version: String,
    /// Last seen.
    pub last_seen_ms: Option<i64>,
    /// Skew.
    pub skew_ms: Option<i64>,
    /// Backlog.
    pub backlog: Option<i64>,
}

/// The figures of one store (or kiosk) and time window: what a window's queries fetch, and what
/// a daily roll-up keeps of one local day ([`super::rollup`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRows {
    /// Ticket counts.
    pub tickets: Vec<TicketCount>,
    /// Timings of the called turns issued in the window.
    pub timings: Vec<TurnTiming>,
    /// `customer_identified` per way.
    pub identified_by: Vec<(String, i64)>,
    /// Survey answers per score.
    pub scores: Vec<(i64, i64)>,
    /// `(campaign, variant, shown, redeemed)`.
    pub campaigns: Vec<(String, String, i64, i64)>,
}

impl WindowRows {
    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
            && self.timings.is_empty()
            && self.identified_by.is_empty()
            && self.scores.is_empty()
            && self.campaigns.is_empty()
    }

    /// Adds `other`'s figures (counts of the same key summed).
    pub fn merge(&mut self, other: WindowRows) {
        self.tickets.extend(other.tickets);
        self.timings.extend(other.timings);
        let mut by: BTreeMap<String, i64> = self.identified_by.drain(..).collect();
        for (k, n) in other.identified_by {
            *by.entry(k).or_default() += n;
        }
        self.identified_by = by.into_iter().collect();
        let mut scores: BTreeMap<i64, i64> = self.scores.drain(..).collect();
        for (k, n) in other.scores {
            *scores.entry(k).or_default() += n;
        }
        self.scores = scores.into_iter().collect();
        let mut campaigns: BTreeMap<(String, String), (i64, i64)> = self
            .campaigns
            .drain(..)
            .map(|(c, v, s, r)| ((c, v), (s, r)))
            .collect();
        for (c, v, s, r) in other.campaigns {
            let e = campaigns.entry((c, v)).or_default();
            e.0 += s;
            e.1 += r;
        }
        self.campaigns = campaigns
            .into_iter()
            .map(|((c, v), (s, r))| (c, v, s, r))
            .collect();
    }

    /// The same figures with every ticket counted at `day_ms` (a local day's start, which is
    /// on a quarter hour in every time zone in use): what a day's roll-up keeps.
    pub fn at_day(mut self, day_ms: i64) -> WindowRows {
        let mut tickets: BTreeMap<(String, bool), i64> = BTreeMap::new();
        for t in self.tickets.drain(..) {
            *tickets.entry((t.service, t.identified)).or_default() += t.count;
        }
        self.tickets = tickets
            .into_iter()
            .map(|((service, identified), count)| TicketCount {
                quarter: day_ms.div_euclid(QUARTER_MS),
                service,
                identified,
                count,
            })
            .collect();
        self
    }
}

/// The start of the local day after the one containing `ms` in `timezone` (UTC when unknown).
pub fn next_day_start_ms(timezone: Option<&str>, ms: i64) -> i64 {
    let (tz, _, _) = zone(timezone);
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .and_then(|t| t.to_zoned(tz).tomorrow().ok())
        .and_then(|z| z.start_of_day().ok())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(ms - ms.rem_euclid(24 * HOUR_MS) + 24 * HOUR_MS)
}

/// What a backend fetches; [`assemble`] makes the [`Dashboard`] of it.
#[derive(Debug, Clone, Default)]
pub struct DashboardRows {
    /// The store (`None`: it does not exist).
    pub store: Option<StoreRecord>,
    /// Its time zone, if set.
    pub timezone: Option<String>,
    /// Ticket counts.
    pub tickets: Vec<TicketCount>,
    /// Timings of the called turns issued in the window.
    pub timings: Vec<TurnTiming>,
    /// `customer_identified` per way.
    pub identified_by: Vec<(String, i64)>,
    /// Survey answers per score.
    pub scores: Vec<(i64, i64)>,
    /// `(campaign, variant, shown, redeemed)`.
    pub campaigns: Vec<(String, String, i64, i64)>,
    /// Campaign definitions (JSON) by id, for their names.
    pub campaign_names: HashMap<String, String>,
    /// The kiosks.
    pub kiosks: Vec<KioskRow>,
    /// What each kiosk reported about the store configuration, by kiosk.
    pub configs: BTreeMap<String, KioskConfigState>,
    /// The store's configuration version at the CRM.
    pub store_config_version: u64,
    /// `(kiosk, device state)`.
    pub devices: Vec<(String, DeviceState)>,
    /// `(kiosk, at_ms, envelope JSON)` of the last device logs, newest first per kiosk.
    pub logs: Vec<(String, i64, String)>,
}

/// The store's time zone, or UTC.
fn zone(name: Option<&str>) -> (jiff::tz::TimeZone, String, bool) {
    match name.map(|n| (n, jiff::tz::TimeZone::get(n))) {
        Some((n, Ok(tz))) => (tz, n.to_owned(), true),
        _ => (jiff::tz::TimeZone::UTC, "UTC".to_owned(), false),
    }
}

/// Whether `name` is an IANA time zone this endpoint knows.
pub fn known_timezone(name: &str) -> bool {
    jiff::tz::TimeZone::get(name).is_ok()
}

/// Start (unix ms) of the local day containing `now_ms` in `timezone` (UTC when unknown): the
/// dashboard's "today".
pub fn start_of_day_ms(timezone: Option<&str>, now_ms: i64) -> i64 {
    let (tz, _, _) = zone(timezone);
    jiff::Timestamp::from_millisecond(now_ms)
        .ok()
        .and_then(|t| t.to_zoned(tz).start_of_day().ok())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(now_ms - now_ms.rem_euclid(24 * HOUR_MS))
}

/// Start of the local hour or day containing `ms`.
fn floor(tz: &jiff::tz::TimeZone, bucket: Bucket, ms: i64) -> Option<jiff::Zoned> {
    let z = jiff::Timestamp::from_millisecond(ms)
        .ok()?
        .to_zoned(tz.clone());
    match bucket {
        Bucket::Day => z.start_of_day().ok(),
        Bucket::Hour => z
            .with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok(),
    }
}

/// Local hour (or day) starts covering `[since_ms, now_ms]`, with their labels.
fn bucket_starts(
    tz: &jiff::tz::TimeZone,
    bucket: Bucket,
    since_ms: i64,
    now_ms: i64,
) -> Vec<(i64, String)> {
    // A window is at most 31 days long (the routes check); the cap only guards the loop.
    const MAX_BUCKETS: usize = 24 * 40;
    let mut out: Vec<(i64, String)> = Vec::new();
    let mut cur = floor(tz, bucket, since_ms);
    while let Some(z) = cur {
        let start = z.timestamp().as_millisecond();
        if start > now_ms || out.len() >= MAX_BUCKETS {
            break;
        }
        if out.last().is_none_or(|(s, _)| *s < start) {
            let label = match bucket {
                Bucket::Hour => z.strftime("%H:%M").to_string(),
                Bucket::Day => z.strftime("%a %d").to_string(),
            };
            out.push((start, label));
        }
        let step = match bucket {
            Bucket::Hour => HOUR_MS,
            Bucket::Day => 25 * HOUR_MS,
        };
        // Step past the next boundary and floor again: right across DST changes of any size
        // (local days last 23 to 25 hours).
        cur = floor(tz, bucket, start + step);
    }
    out
}

/// The `p` quantile (0–1) of sorted values, interpolated linearly between ranks.
pub fn percentile(sorted: &[i64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = p.clamp(0.0, 1.0) * last as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (sorted[lo] as f64, sorted[hi.min(last)] as f64);
    Some(a + (b - a) * (pos - lo as f64))
}

/// Median, 90th percentile and longest of some durations in ms (`None` when empty): the
/// dashboard's and the reports' one way to sum up waits and service times.
pub fn durations(mut ms: Vec<i64>) -> Option<Durations> {
    ms.sort_unstable();
    Some(Durations {
        count: ms.len() as u64,
        median_s: percentile(&ms, 0.5)? / 1000.0,
        p90_s: percentile(&ms, 0.9)? / 1000.0,
        max_s: *ms.last()? as f64 / 1000.0,
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// NPS of answers per score.
pub fn nps_figures(scores: &[(i64, i64)]) -> NpsFigures {
    let mut distribution = vec![0u64; 11];
    for (score, n) in scores {
        if let Some(slot) = usize::try_from(*score)
            .ok()
            .and_then(|s| distribution.get_mut(s))
        {
            *slot += count(*n);
        }
    }
    let promoters = distribution[9] + distribution[10];
    let passives = distribution[7] + distribution[8];
    let detractors: u64 = distribution[..7].iter().sum();
    let responses = promoters + passives + detractors;
    let score =
        (responses > 0).then(|| 100.0 * (promoters as f64 - detractors as f64) / responses as f64);
    NpsFigures {
        responses,
        promoters,
        passives,
        detractors,
        score,
        distribution,
    }
}

fn minutes(ms: i64) -> String {
    let m = ms.unsigned_abs() / 60_000;
    if m >= 120 {
        format!("{} h", m / 60)
    } else if m >= 1 {
        format!("{m} min")
    } else {
        format!("{} s", ms.unsigned_abs() / 1000)
    }
}

fn log_line(at_ms: i64, envelope: &str) -> Option<DeviceLogLine> {
    let v: serde_json::Value = serde_json::from_str(envelope).ok()?;
    let p = v.get("payload")?;
    Some(DeviceLogLine {
        at_ms,
        level: p.get("level")?.as_str()?.to_owned(),
        target: p.get("target")?.as_str()?.to_owned(),
        message: p.get("message")?.as_str()?.to_owned(),
        occurrences: p.get("occurrences")?.as_u64()?,
        first_at_ms: at_ms,
        reports: 1,
    })
}

/// A kiosk's health and the problems behind it, at `now_ms`.
pub fn kiosk_health(
    row: &KioskRow,
    devices: &[DeviceState],
    logs: &[DeviceLogLine],
    now_ms: i64,
) -> (Health, Vec<String>) {
    let mut health = Health::Ok;
    let mut problems = Vec::new();
    let mut flag = |h: Health, p: String| {
        health = health.min(h);
        problems.push(p);
    };
    match row.last_seen_ms {
        None => flag(Health::Offline, "never connected".to_owned()),
        Some(seen) if now_ms - seen >= OFFLINE_AFTER_MS => flag(
            Health::Offline,
            format!("no contact for {}", minutes(now_ms - seen)),
        ),
        Some(_) => {}
    }
    for d in devices {
        let why = d
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let name = d.device.replace('_', " ");
        match d.status.as_str() {
            "absent" => flag(Health::Failing, format!("{name} absent{why}")),
            "degraded" => flag(Health::Warning, format!("{name} degraded{why}")),
            _ => {}
        }
    }
    if let Some(b) = row.backlog.filter(|b| *b >= BACKLOG_WARNING) {
        flag(Health::Warning, format!("{b} events waiting to be sent"));
    }
    if let Some(s) = row.skew_ms.filter(|s| s.abs() >= SKEW_WARNING_MS) {
        let way = if s > 0 { "behind" } else { "ahead of" };
        flag(
            Health::Warning,
            format!("clock {} {way} the server", minutes(s)),
        );
    }
    let recent: u64 = logs
        .iter()
        .filter(|l| l.level == "error" && now_ms - l.at_ms < RECENT_ERRORS_MS)
        .map(|l| l.occurrences.max(1))
        .sum();
    if recent > 0 {
        flag(
            Health::Warning,
            format!(
                "{recent} error{} in the last {}",
                if recent == 1 { "" } else { "s" },
                minutes(RECENT_ERRORS_MS)
            ),
        );
    }
    (health, problems)
}

/// Builds the dashboard from a backend's rows. `None` when the store does not exist.
pub fn assemble(query: &DashboardQuery, mut rows: DashboardRows) -> Option<Dashboard> {
    let store = rows.store?;
    let (tz, timezone, timezone_known) = zone(rows.timezone.as_deref());
    let bucket = if query.now_ms - query.since_ms > HOURLY_UP_TO_MS {
        Bucket::Day
    } else {
        Bucket::Hour
    };
    let starts = bucket_starts(&tz, bucket, query.since_ms, query.now_ms);
    let mut buckets: Vec<TicketBucket> = starts
        .iter()
        .map(|(start_ms, label)| TicketBucket {
            start_ms: *start_ms,
            label: label.clone(),
            total: 0,
            by_service: BTreeMap::new(),
        })
        .collect();
    let mut per_service: BTreeMap<String, u64> = BTreeMap::new();
    let (mut identified, mut anonymous) = (0u64, 0u64);
    for t in &rows.tickets {
        let n = count(t.count);
        *per_service.entry(t.service.clone()).or_default() += n;
        if t.identified {
            identified += n;
        } else {
            anonymous += n;
        }
        let at = t.quarter.saturating_mul(QUARTER_MS);
        let i = buckets.partition_point(|b| b.start_ms <= at);
        if let Some(b) = i.checked_sub(1).and_then(|i| buckets.get_mut(i)) {
            b.total += n;
            *b.by_service.entry(t.service.clone()).or_default() += n;
        }
    }
    let mut waits: BTreeMap<String, (Vec<i64>, Vec<i64>)> = BTreeMap::new();
    for t in rows.timings {
        let (w, s) = waits.entry(t.service).or_default();
        // Clocks can put a call a moment before its issue across a reboot; nobody waits < 0.
        w.push(t.wait_ms.max(0));
        s.extend(t.service_ms.map(|ms| ms.max(0)));
    }
    let mut services: Vec<String> = per_service.keys().cloned().collect();
    for s in waits.keys() {
        if !services.contains(s) {
            services.push(s.clone());
        }
    }
    services.sort();
    let times = services
        .iter()
        .map(|s| {
            let (w, st) = waits.remove(s).unwrap_or_default();
            ServiceTimes {
                service: s.clone(),
                tickets: per_service.get(s).copied().unwrap_or(0),
                wait: durations(w),
                service_time: durations(st),
            }
        })
        .collect();
    let campaign_names: HashMap<String, String> = rows
        .campaign_names
        .into_iter()
        .filter_map(|(id, def)| {
            let v: serde_json::Value = serde_json::from_str(&def).ok()?;
            Some((id, v.get("name")?.as_str()?.to_owned()))
        })
        .collect();
    let campaigns = rows
        .campaigns
        .into_iter()
        .map(|(campaign_id, variant, shown, redeemed)| {
            let v = variant_stats(campaign_id, variant, shown, redeemed);
            VariantFigures {
                campaign_name: campaign_names.get(&v.campaign_id).cloned(),
                campaign_id: v.campaign_id,
                variant: v.variant,
                shown: v.shown,
                redeemed: v.redeemed,
                conversion: v.conversion,
            }
        })
        .collect();
    let mut devices: HashMap<String, Vec<DeviceState>> = HashMap::new();
    for (kiosk, d) in rows.devices {
        devices.entry(kiosk).or_default().push(d);
    }
    let mut logs: HashMap<String, Vec<DeviceLogLine>> = HashMap::new();
    for (kiosk, at_ms, envelope) in rows.logs {
        if let Some(line) = log_line(at_ms, &envelope) {
            logs.entry(kiosk).or_default().push(line);
        }
    }
    let kiosks = rows
        .kiosks
        .into_iter()
        .map(|row| {
            let mut devs = devices.remove(&row.kiosk_id).unwrap_or_default();
            devs.sort_by(|a, b| a.device.cmp(&b.device));
            let raw = logs.remove(&row.kiosk_id).unwrap_or_default();
            let config = rows.configs.remove(&row.kiosk_id).unwrap_or_default();
            let (mut health, mut problems) = kiosk_health(&row, &devs, &raw, query.now_ms);
            if let Some(v) = config.refused {
                health = health.min(Health::Warning);
                problems.push(format!(
                    "refused store configuration v{v}: {}; runs v{}",
                    config
                        .refused_reason
                        .as_deref()
                        .unwrap_or("no reason given"),
                    config.running
                ));
            }
            let lines = fold_logs(raw, query.shown_logs());
            KioskStatus {
                printer: devs.iter().find(|d| d.device == "printer").cloned(),
                kiosk_id: row.kiosk_id,
                hardware_profile: row.hardware_profile,
                firmware_version: row.firmware_version,
                last_seen_ms: row.last_seen_ms,
                skew_ms: row.skew_ms,
                backlog: row.backlog,
                health,
                problems,
                devices: devs,
                logs: lines,
                config,
            }
        })
        .collect();
    Some(Dashboard {
        store,
        timezone,
        timezone_known,
        kiosk_id: query.kiosk_id.clone(),
        since_ms: query.since_ms,
        now_ms: query.now_ms,
        tickets: Tickets {
            total: identified + anonymous,
            services: per_service.keys().cloned().collect(),
            bucket,
            buckets,
        },
        times,
        visitors: Visitors {
            identified,
            anonymous,
            identified_by: rows
                .identified_by
                .into_iter()
                .map(|(by, n)| (by, count(n)))
                .collect(),
        },
        campaigns,
        nps: nps_figures(&rows.scores),
        kiosks,
        store_config_version: rows.store_config_version,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_line_repeated_through_an_outage_folds_into_one_and_keeps_the_printer_warning() {
        let line = |at_ms: i64, target: &str, message: &str| super::DeviceLogLine {
            at_ms,
            level: "warn".into(),
            target: target.into(),
            message: message.into(),
            occurrences: 1,
            first_at_ms: at_ms,
            reports: 1,
        };
        // Newest first: 30 sync reports over half an hour, a printer warning in the middle.
        let mut lines: Vec<_> = (0..30)
            .rev()
            .map(|i| {
                line(
                    1_000_000 + i * 60_000,
                    "kiosk_sync::worker",
                    &format!("sync failing attempts={} error=connection refused", i + 1),
                )
            })
            .collect();
        lines.insert(
            15,
            line(1_000_000 + 14 * 60_000 + 1, "kiosk::devices", "paper out"),
        );
        let folded = super::fold_logs(lines, 10);
        assert_eq!(folded.len(), 2, "{folded:?}");
        let sync = &folded[0];
        assert_eq!(
            sync.message,
            "sync failing attempts=30 error=connection refused"
        );
        assert_eq!(sync.at_ms, 1_000_000 + 29 * 60_000, "shown at its newest");
        assert_eq!(sync.first_at_ms, 1_000_000, "failing since the first");
        assert_eq!((sync.occurrences, sync.reports), (30, 30));
        assert_eq!(folded[1].message, "paper out");
        assert_eq!(folded[1].reports, 1);
        // Words that differ are different lines.
        let two = super::fold_logs(
            vec![
                line(2, "t", "printer: broken pipe"),
                line(1, "t", "printer: timed out"),
            ],
            10,
        );
        assert_eq!(two.len(), 2);
    }

    use super::*;

    // 2026-03-29 00:00 UTC: Madrid moves from +01:00 to +02:00 at 01:00 UTC that night.
    const DST_DAY_UTC: i64 = 1_774_742_400_000;

    fn store() -> StoreRecord {
        StoreRecord {
            id: "s".into(),
            name: "S".into(),
        }
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.9), Some(7.0));
        assert_eq!(percentile(&[60, 120, 600], 0.5), Some(120.0));
        assert_eq!(percentile(&[60, 120, 180, 240], 0.5), Some(150.0));
        // rank 0.9 * 9 = 8.1 of 10 values 10..=100
        let v: Vec<i64> = (1..=10).map(|i| i * 10).collect();
        assert!((percentile(&v, 0.9).unwrap() - 91.0).abs() < 1e-9);
    }

    #[test]
    fn nps_counts_promoters_passives_and_detractors() {
        let n = nps_figures(&[(10, 2), (9, 1), (8, 1), (7, 1), (6, 1), (0, 1), (11, 5)]);
        assert_eq!((n.promoters, n.passives, n.detractors), (3, 2, 2));
        assert_eq!(n.responses, 7);
        assert!((n.score.unwrap() - 100.0 / 7.0).abs() < 1e-9);
        assert_eq!(nps_figures(&[]).score, None);
    }

    #[test]
    fn hours_follow_the_store_time_zone_across_a_dst_change() {
        let since = start_of_day_ms(Some("Europe/Madrid"), DST_DAY_UTC + 12 * HOUR_MS);
        assert_eq!(since, DST_DAY_UTC - HOUR_MS, "local midnight is 23:00 UTC");
        let tz = jiff::tz::TimeZone::get("Europe/Madrid").unwrap();
        let hours = bucket_starts(&tz, Bucket::Hour, since, since + 5 * HOUR_MS - 1);
        let labels: Vec<&str> = hours.iter().map(|(_, l)| l.as_str()).collect();
        // 02:00 does not exist that night.
        assert_eq!(labels, ["00:00", "01:00", "03:00", "04:00", "05:00"]);
    }

    #[test]
    fn tickets_land_in_their_local_hour_and_unknown_zones_fall_back_to_utc() {
        let since = DST_DAY_UTC + 8 * HOUR_MS;
        let now = since + 3 * HOUR_MS;
        let rows = |tz: Option<&str>| DashboardRows {
            store: Some(store()),
            timezone: tz.map(str::to_owned),
            tickets: vec![
                TicketCount {
                    quarter: (since + HOUR_MS + 20 * 60_000) / QUARTER_MS,
                    service: "A".into(),
                    identified: true,
                    count: 3,
                },
                TicketCount {
                    quarter: (since + HOUR_MS + 50 * 60_000) / QUARTER_MS,
                    service: "B".into(),
                    identified: false,
                    count: 2,
                },
            ],
            ..DashboardRows::default()
        };
        let q = DashboardQuery::new("s", since, now);
        let d = assemble(&q, rows(Some("Europe/Madrid"))).unwrap();
        assert!(d.timezone_known);
        let labels: Vec<&str> = d.tickets.buckets.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["10:00", "11:00", "12:00", "13:00"]);
        assert_eq!(d.tickets.buckets[1].total, 5);
        assert_eq!(d.tickets.buckets[1].by_service["A"], 3);
        assert_eq!((d.visitors.identified, d.visitors.anonymous), (3, 2));
        let utc = assemble(&q, rows(Some("Mars/Olympus"))).unwrap();
        assert_eq!((utc.timezone.as_str(), utc.timezone_known), ("UTC", false));
        assert_eq!(utc.tickets.buckets[1].label, "09:00");
    }

    #[test]
    fn long_windows_are_counted_per_day() {
        let since = DST_DAY_UTC;
        let q = DashboardQuery::new("s", since, since + 7 * 24 * HOUR_MS - 1);
        let rows = DashboardRows {
            store: Some(store()),
            ..DashboardRows::default()
        };
        let d = assemble(&q, rows).unwrap();
        assert_eq!(d.tickets.bucket, Bucket::Day);
        assert_eq!(d.tickets.buckets.len(), 7);
        assert_eq!(d.tickets.buckets[0].label, "Sun 29");
    }

    #[test]
    fn kiosk_health_names_what_is_wrong() {
        let now = 10 * HOUR_MS;
        let row = KioskRow {
            kiosk_id: "k".into(),
            hardware_profile: "pi".into(),
            firmware_version: "1".into(),
            last_seen_ms: Some(now - 1000),
            skew_ms: Some(-3 * 60_000),
            backlog: Some(5),
        };
        let (h, p) = kiosk_health(&row, &[], &[], now);
        assert_eq!(h, Health::Warning);
        assert_eq!(p, ["clock 3 min ahead of the server"]);
        let printer = DeviceState {
            device: "printer".into(),
            status: "absent".into(),
            reason: Some("paper out".into()),
            at_ms: now - 5000,
        };
        let (h, p) = kiosk_health(&row, &[printer], &[], now);
        assert_eq!(h, Health::Failing);
        assert_eq!(p[0], "printer absent: paper out");
        let gone = KioskRow {
            last_seen_ms: Some(now - OFFLINE_AFTER_MS - 60_000),
            skew_ms: None,
            ..row
        };
        let (h, p) = kiosk_health(&gone, &[], &[], now);
        assert_eq!(
            (h, p[0].as_str()),
            (Health::Offline, "no contact for 11 min")
        );
    }
}
