//! Turning a kiosk's batch into rows: each event is checked against the catalog (the checked-in
//! JSON Schema of the envelope, then the Rust types), given a skew-corrected time beside its
//! device time (docs/DESIGN.md invariant 6), and mapped to its effects on customers and campaigns.
//!
//! Data flow: outbox → batch → **ingest** → db. Pure: no I/O, time passed in.

use kiosk_protocol::events::{DeviceHealth, DeviceKind, Envelope, Event};
use kiosk_protocol::wire::KioskClock;
use serde_json::Value;
use uuid::Uuid;

use crate::db::{Effect, IngestEvent, OpsFact, QueueStep, SkewEstimate, SkewSamples, purpose_name};

/// The envelope schema exactly as published in `sync/schema/` (drift-checked against the types).
const ENVELOPE_SCHEMA: &str = include_str!("../../schema/envelope.schema.json");

/// Schema versions of each event type this endpoint accepts.
pub const KNOWN_SCHEMA_VERSIONS: &[u16] = &[1];

/// Earliest wall time the endpoint believes from a kiosk: 2020-01-01T00:00:00Z, unix ms. A Pi
/// without a real-time clock starts from the time fake-hwclock saved or systemd's build date,
/// both later; anything earlier is a clock that was never set.
pub const EARLIEST_WALL_MS: i64 = 1_577_836_800_000;

/// How far ahead of the endpoint's clock a kiosk's wall time may be: 7 days.
pub const MAX_AHEAD_MS: i64 = 7 * 24 * 3600 * 1000;

/// Clock samples kept per kiosk boot; the skew estimate is their median.
pub const SKEW_SAMPLES: usize = 5;

/// Longest rejection reason sent back (schema errors can quote large values).
const MAX_REASON_LEN: usize = 300;

/// The endpoint could not build its validator.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The embedded schema is not JSON.
    #[error("embedded envelope schema is not json; rebuild from sync/schema")]
    Json(#[from] serde_json::Error),
    /// The embedded schema is not a valid JSON Schema.
    #[error("embedded envelope schema does not compile: {0}")]
    Schema(String),
}

/// An event the endpoint refuses, with what to tell the kiosk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Event id, nil when unreadable.
    pub id: Uuid,
    /// Sequence, 0 when unreadable.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// Validates events against the catalog.
pub struct Validator {
    schema: jsonschema::Validator,
    /// One validator per event type's payload, for reasons that point at the field.
    payloads: std::collections::HashMap<String, jsonschema::Validator>,
}

impl Validator {
    /// Compiles the embedded envelope schema.
    pub fn new() -> Result<Self, ValidatorError> {
        let schema: Value = serde_json::from_str(ENVELOPE_SCHEMA)?;
        let compile = |v: &Value| {
            jsonschema::validator_for(v).map_err(|e| ValidatorError::Schema(e.to_string()))
        };
        let schema = compile(&schema)?;
        let mut payloads = std::collections::HashMap::new();
        for file in kiosk_protocol::schema::all() {
            let Some(kind) = file
                .path
                .strip_prefix("events/")
                .and_then(|p| p.strip_suffix(".schema.json"))
            else {
                continue;
            };
            payloads.insert(
                kind.to_owned(),
                compile(&serde_json::from_str(&file.text)?)?,
            );
        }
        Ok(Validator { schema, payloads })
    }

    /// Checks one raw event of `kiosk_id`'s batch and prepares it for the store.
    pub fn check(
        &self,
        raw: &Value,
        kiosk_id: &str,
        clock: &KioskClock,
        skew: SkewEstimate,
    ) -> Result<IngestEvent, Rejection> {
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let seq = raw.get("seq").and_then(Value::as_u64);
        let reject = |reason: String| Rejection {
            id: id.unwrap_or_else(Uuid::nil),
            seq: seq.unwrap_or(0),
            reason: truncate(reason),
        };
        if !self.schema.is_valid(raw) {
            return Err(reject(self.explain(raw)));
        }
        let env: Envelope = serde_json::from_value(raw.clone()).map_err(|e| {
            reject(format!(
                "event does not match the catalog types: {}",
                without_quoted_values(&e.to_string())
            ))
        })?;
        if env.kiosk_id != kiosk_id {
            return Err(reject(format!(
                "event belongs to kiosk {:?} but was posted by kiosk {kiosk_id:?}",
                env.kiosk_id
            )));
        }
        if !KNOWN_SCHEMA_VERSIONS.contains(&env.schema_version) {
            return Err(reject(format!(
                "schema version {} of {} is unknown to this endpoint (known: {KNOWN_SCHEMA_VERSIONS:?})",
                env.schema_version,
                env.event.type_name()
            )));
        }
        let device_ms = unix_ms(env.wall_time);
        let now_ms = unix_ms(clock.wall_time).saturating_add(skew.skew_ms);
        if let Some(problem) = wall_time_problem(device_ms, now_ms) {
            return Err(reject(format!("wall_time: {problem}")));
        }
        if env.mono_ms > kiosk_protocol::wire::MAX_MONO_MS {
            return Err(reject(format!(
                "mono_ms: {} is above {} (100 years of uptime)",
                env.mono_ms,
                kiosk_protocol::wire::MAX_MONO_MS
            )));
        }
        Ok(IngestEvent {
            id: env.id,
            seq: env.seq,
            kind: env.event.type_name(),
            schema_version: env.schema_version,
            device_ms,
            corrected_ms: corrected_ms(&env, clock, skew),
            card_token: env.event.card_token().cloned(),
            envelope: raw.to_string(),
            effect: effect_of(&env.event),
            ops: ops_of(&env.event),
            queue: queue_step_of(&env.event),
        })
    }
}

impl Validator {
    /// Why `raw` fails the envelope schema, pointing at the field when the type is known (the
    /// envelope's `oneOf` alone would only say "at /").
    fn explain(&self, raw: &Value) -> String {
        let kind = raw.get("type").and_then(Value::as_str);
        if let (Some(kind), Some(payload)) = (kind, raw.get("payload")) {
            match self.payloads.get(kind) {
                Some(v) => {
                    if let Some(err) = v.iter_errors(payload).next() {
                        return format!(
                            "{kind} payload does not match the catalog at /payload{}: the value {}",
                            err.instance_path(),
                            describe(err.kind())
                        );
                    }
                }
                None => return format!("event type {kind:?} is not in the catalog"),
            }
        }
        match self.schema.iter_errors(raw).find(|e| !e.instance_path().to_string().is_empty()) {
            Some(err) => format!(
                "event does not match the catalog envelope at {}: the value {}",
                err.instance_path(),
                describe(err.kind())
            ),
            None => "event is not a catalog envelope (needs id, kiosk_id, seq, boot_id, wall_time, mono_ms, schema_version, type, payload)".to_owned(),
        }
    }
}

/// What a schema error is about, never quoting the value: rejection reasons are stored with the
/// kiosk's dead letters and shown to technicians, and the value can be a customer's name, email
/// or phone (jsonschema's own message starts with the value).
fn describe(kind: &jsonschema::error::ValidationErrorKind) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match kind {
        K::Format { format } => format!("is not a valid {format}"),
        K::MaxLength { limit } => format!("is longer than {limit} characters"),
        K::MinLength { limit } => format!("is shorter than {limit} characters"),
        K::Type { kind } => format!("has the wrong type (expected {kind:?})"),
        K::Pattern { pattern } => format!("does not match the pattern {pattern}"),
        K::Required { property } => format!("lacks the required property {property}"),
        K::AdditionalProperties { unexpected } => {
            format!("has properties the catalog does not know: {unexpected:?}")
        }
        K::Enum { .. } => "is not one of the allowed values".to_owned(),
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => format!("is below {limit}"),
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => format!("is above {limit}"),
        other => format!("fails the schema's {} rule", other.keyword()),
    }
}

/// A serde message without the values it quotes (`invalid type: string "Ana", expected ...`).
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…");
            }
            quoted = !quoted;
            if !quoted {
                out.push('"');
            }
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_REASON_LEN {
        let mut cut = MAX_REASON_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Unix milliseconds of a timestamp (saturating far outside the representable range).
pub fn unix_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Why a kiosk's wall time (unix ms) cannot be believed when the endpoint's clock says `now_ms`,
/// or `None` when it is inside the window: [`EARLIEST_WALL_MS`] to `now_ms` + [`MAX_AHEAD_MS`].
pub fn wall_time_problem(wall_ms: i64, now_ms: i64) -> Option<String> {
    let shown = || {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(wall_ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("{wall_ms} ms"))
    };
    if wall_ms < EARLIEST_WALL_MS {
        Some(format!(
            "{} is before 2020-01-01T00:00:00Z; the kiosk's clock was never set",
            shown()
        ))
    } else if wall_ms > now_ms.saturating_add(MAX_AHEAD_MS) {
        Some(format!(
            "{} is more than 7 days ahead of the endpoint's clock; set the kiosk's clock",
            shown()
        ))
    } else {
        None
    }
}

/// What a batch's clock reading (`kiosk_clock`, received at `received_ms`) tells: the skew to
/// correct its events with, the samples to keep, and the clock to place its events by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockReading {
    /// The estimate: the median of the boot's samples; `None` while there is no usable sample
    /// (the events' wall times are then taken as they are).
    pub skew: Option<SkewEstimate>,
    /// The samples to keep (the reading's own when it was believable).
    pub samples: SkewSamples,
    /// The clock events of the batch's boot are placed by: the kiosk's reading, or, when it was
    /// refused, the receive time in the kiosk's terms (so no absurd time reaches an event).
    pub clock: KioskClock,
    /// Why the reading was refused as a sample, if it was.
    pub refused: Option<String>,
}

impl ClockReading {
    /// The estimate, or no correction at all.
    pub fn skew_or_zero(&self, received_ms: i64) -> SkewEstimate {
        self.skew.unwrap_or(SkewEstimate {
            skew_ms: 0,
            at_ms: received_ms,
        })
    }
}

/// Reads a batch's clock reading against the kiosk's `history`.
///
/// A sample (receive time minus the kiosk's send time) is the true offset plus the request's
/// transit delay. The estimate is the median of the last [`SKEW_SAMPLES`] samples of the kiosk's
/// current boot (an even count drops the newest first), so one bad sample cannot displace the
/// good ones around it, and a clock stepped by NTP is followed after three batches. A reading
/// outside the believable window ([`wall_time_problem`]) never becomes a sample; a new boot
/// starts a new history (the clock may have been set anew).
pub fn read_clock(history: &SkewSamples, clock: &KioskClock, received_ms: i64) -> ClockReading {
    let mut samples = if history.boot_id == Some(clock.boot_id) {
        history.clone()
    } else {
        SkewSamples {
            boot_id: Some(clock.boot_id),
            samples: Vec::new(),
        }
    };
    let wall_ms = unix_ms(clock.wall_time);
    let refused = wall_time_problem(wall_ms, received_ms);
    if refused.is_none() {
        samples.samples.push(SkewEstimate {
            skew_ms: received_ms.saturating_sub(wall_ms),
            at_ms: received_ms,
        });
        let excess = samples.samples.len().saturating_sub(SKEW_SAMPLES);
        samples.samples.drain(..excess);
    }
    let skew = median(&samples.samples);
    let clock = match &refused {
        None => *clock,
        Some(_) => {
            let kiosk_ms = received_ms.saturating_sub(skew.map_or(0, |s| s.skew_ms));
            KioskClock {
                wall_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(kiosk_ms) * 1_000_000,
                )
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                ..*clock
            }
        }
    };
    ClockReading {
        skew,
        samples,
        clock,
        refused,
    }
}

/// The median sample by skew (of all but the newest when their number is even).
fn median(samples: &[SkewEstimate]) -> Option<SkewEstimate> {
    let n = samples.len() - usize::from(samples.len() % 2 == 0 && !samples.is_empty());
    let mut sorted: Vec<SkewEstimate> = samples.get(..n)?.to_vec();
    sorted.sort_by_key(|s| s.skew_ms);
    sorted.get(n / 2).copied()
}

/// The server-time estimate of when an event happened. Events of the batch's boot are placed by
/// their monotonic clock relative to the batch's clock reading (immune to wall-clock steps);
/// older boots' events by their wall time plus the skew.
/// A placement before [`EARLIEST_WALL_MS`] (a monotonic reading far older than the boot could
/// be) falls back to the wall time.
pub fn corrected_ms(env: &Envelope, clock: &KioskClock, skew: SkewEstimate) -> i64 {
    let by_wall = unix_ms(env.wall_time).saturating_add(skew.skew_ms);
    if env.boot_id == clock.boot_id && env.mono_ms <= clock.mono_ms {
        let sent_server_ms = unix_ms(clock.wall_time).saturating_add(skew.skew_ms);
        let ago = i64::try_from(clock.mono_ms - env.mono_ms).unwrap_or(i64::MAX);
        let by_mono = sent_server_ms.saturating_sub(ago);
        if by_mono >= EARLIEST_WALL_MS {
            by_mono
        } else {
            by_wall
        }
    } else {
        by_wall
    }
}

/// What an event does to customers and campaigns.
pub fn effect_of(event: &Event) -> Effect {
    match event {
        Event::CustomerRegistered(e) => Effect::Registered {
            token: e.card_token.clone(),
            display_name: e.display_name.clone(),
            email: e.email.clone(),
            phone: e.phone.clone(),
            locale: e.locale.clone(),
        },
        Event::ConsentGiven(c) | Event::ConsentWithdrawn(c) => Effect::Consent {
            token: c.card_token.clone(),
            purpose: purpose_name(c.purpose),
            given: matches!(event, Event::ConsentGiven(_)),
            policy_version: c.policy_version.clone(),
            policy_sha256: c.policy_sha256.clone(),
        },
        Event::TicketIssued(t) => match &t.card_token {
            Some(token) => Effect::Visit {
                token: token.clone(),
            },
            None => Effect::None,
        },
        Event::CardTapped(c) => Effect::Seen {
            token: c.card_token.clone(),
        },
        Event::CustomerIdentified(c) => match &c.card_token {
            Some(token) => Effect::Seen {
                token: token.clone(),
            },
            None => Effect::None,
        },
        Event::CampaignShown(c) => Effect::CampaignShown {
            campaign_id: c.campaign_id.clone(),
            variant: c.variant.clone(),
            visit_id: c.visit_id.map(|v| v.to_string()),
        },
        Event::CouponIssued(c) => Effect::CouponIssued {
            code: c.coupon_code.clone(),
            campaign_id: c.campaign_id.clone(),
            variant: c.variant.clone(),
        },
        Event::CouponRedeemed(c) => Effect::CouponRedeemed {
            code: c.coupon_code.clone(),
            campaign_id: c.campaign_id.clone(),
            token: c.card_token.clone(),
            variant: c.variant.clone(),
        },
        Event::SurveyAnswered(s) => match s.turn_id {
            Some(turn_id) => Effect::SurveyAnswered {
                turn_id: turn_id.to_string(),
            },
            None => Effect::None,
        },
        _ => Effect::None,
    }
}

/// The name a device has in the catalog (and on the dashboard).
pub fn device_name(d: DeviceKind) -> &'static str {
    match d {
        DeviceKind::CardReader => "card_reader",
        DeviceKind::Scanner => "scanner",
        DeviceKind::Printer => "printer",
        DeviceKind::PresenceSensor => "presence_sensor",
        DeviceKind::Network => "network",
        DeviceKind::Storage => "storage",
        DeviceKind::Screen => "screen",
    }
}

/// The name a device health has in the catalog.
pub fn health_name(h: DeviceHealth) -> &'static str {
    match h {
        DeviceHealth::Ok => "ok",
        DeviceHealth::Degraded => "degraded",
        DeviceHealth::Absent => "absent",
    }
}

/// What an event does to its store's live queue (see [`crate::db::queue`]).
pub fn queue_step_of(event: &Event) -> Option<QueueStep> {
    crate::db::queue::step_of(event)
}

/// What an event tells the dashboard's tables.
pub fn ops_of(event: &Event) -> Option<OpsFact> {
    Some(match event {
        Event::TicketIssued(t) => OpsFact::TurnIssued {
            turn_id: t.turn_id,
            service: t.service.clone(),
            identified: t.card_token.is_some(),
        },
        Event::TurnCalled(t) => OpsFact::TurnCalled { turn_id: t.turn_id },
        Event::TurnServed(t) => OpsFact::TurnServed { turn_id: t.turn_id },
        Event::DeviceStatusChanged(d) => OpsFact::DeviceStatus {
            device: device_name(d.device),
            status: health_name(d.status),
            reason: d.reason.clone(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiosk_protocol::events::KioskStarted;
    use time::OffsetDateTime;

    fn env(boot: Uuid, wall_ms: i64, mono_ms: u64) -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            kiosk_id: "k1".into(),
            seq: 1,
            boot_id: boot,
            wall_time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(wall_ms) * 1_000_000)
                .unwrap(),
            mono_ms,
            schema_version: 1,
            event: Event::KioskStarted(KioskStarted {
                version: "1".into(),
                git_commit: "x".into(),
                hardware_profile: "simulated".into(),
                unclean_shutdown: false,
            }),
        }
    }

    fn clock(boot: Uuid, wall_ms: i64, mono_ms: u64) -> KioskClock {
        KioskClock {
            wall_time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(wall_ms) * 1_000_000)
                .unwrap(),
            mono_ms,
            boot_id: boot,
        }
    }

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    /// Feeds readings `(kiosk wall ms, transit ms)` of `boot`, one a minute, and returns the
    /// estimate after each.
    fn feed(history: &mut SkewSamples, boot: Uuid, readings: &[(i64, i64)]) -> Vec<Option<i64>> {
        readings
            .iter()
            .enumerate()
            .map(|(i, (wall, transit))| {
                let received = NOW + i64::try_from(i).unwrap() * 60_000 + transit;
                let r = read_clock(history, &clock(boot, *wall, 1_000), received);
                *history = r.samples;
                r.skew.map(|s| s.skew_ms)
            })
            .collect()
    }

    #[test]
    fn the_estimate_is_the_median_of_the_boots_recent_samples() {
        let boot = Uuid::now_v7();
        let mut h = SkewSamples::default();
        // The kiosk's clock an hour behind; transits 50, 20, 80, 30 ms.
        let got = feed(
            &mut h,
            boot,
            &[
                (NOW - HOUR, 50),
                (NOW - HOUR + 60_000, 20),
                (NOW - HOUR + 120_000, 80),
                (NOW - HOUR + 180_000, 30),
            ],
        );
        assert_eq!(
            got,
            vec![
                Some(HOUR + 50),
                Some(HOUR + 50),
                Some(HOUR + 50),
                Some(HOUR + 50)
            ]
        );
        assert_eq!(h.samples.len(), 4);
        let more: Vec<(i64, i64)> = (4..10).map(|i| (NOW - HOUR + i * 60_000, 10)).collect();
        feed(&mut h, boot, &more);
        assert_eq!(
            h.samples.len(),
            SKEW_SAMPLES,
            "only the last samples are kept"
        );
    }

    #[test]
    fn a_reading_outside_the_window_never_becomes_a_sample() {
        let boot = Uuid::now_v7();
        let mut h = SkewSamples::default();
        feed(&mut h, boot, &[(NOW, 40), (NOW + 60_000, 40)]);
        let kept = h.clone();
        let year_9999 = 253_402_300_799_000;
        for wall in [year_9999, 5_000, NOW + MAX_AHEAD_MS + 600_000] {
            let r = read_clock(&h, &clock(boot, wall, 1_000), NOW + 120_000);
            assert!(
                r.refused.as_deref().is_some_and(|p| !p.is_empty()),
                "{wall}"
            );
            assert_eq!(r.samples, kept, "{wall} entered the samples");
            assert_eq!(r.skew.map(|s| s.skew_ms), Some(40));
            // Events of the batch's boot are placed from the receive time instead.
            assert_eq!(unix_ms(r.clock.wall_time) + 40, NOW + 120_000);
        }
    }

    #[test]
    fn one_bad_sample_inside_the_window_cannot_displace_good_ones() {
        let boot = Uuid::now_v7();
        let six_days = 6 * 24 * HOUR;
        // A good sample, then a clock six days ahead once, then good again.
        let mut h = SkewSamples::default();
        let got = feed(
            &mut h,
            boot,
            &[
                (NOW, 30),
                (NOW + 60_000 + six_days, 30),
                (NOW + 120_000, 30),
            ],
        );
        assert_eq!(got, vec![Some(30), Some(30), Some(30)]);
        // The same when the bad one comes first among several good ones.
        let mut h = SkewSamples::default();
        let got = feed(
            &mut h,
            boot,
            &[
                (NOW + six_days, 30),
                (NOW + 60_000, 30),
                (NOW + 120_000, 30),
            ],
        );
        assert_eq!(got[2], Some(30));
    }

    #[test]
    fn a_new_boot_starts_a_new_history_and_a_stepped_clock_is_followed() {
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        let mut h = SkewSamples::default();
        feed(
            &mut h,
            first,
            &[
                (NOW - HOUR, 0),
                (NOW - HOUR + 60_000, 0),
                (NOW - HOUR + 120_000, 0),
            ],
        );
        // After a reboot the clock is right: the old boot's samples say nothing about it.
        let got = feed(&mut h, second, &[(NOW, 5)]);
        assert_eq!(got, vec![Some(5)]);
        assert_eq!(h.boot_id, Some(second));
        // NTP steps the clock an hour forward mid-boot: followed once most samples say so.
        let mut h = SkewSamples::default();
        let got = feed(
            &mut h,
            first,
            &[
                (NOW - HOUR, 0),
                (NOW - HOUR + 60_000, 0),
                (NOW - HOUR + 120_000, 0),
                (NOW + 180_000, 0),
                (NOW + 240_000, 0),
                (NOW + 300_000, 0),
            ],
        );
        assert_eq!(got[3..], [Some(HOUR), Some(HOUR), Some(0)]);
    }

    #[test]
    fn events_with_times_outside_the_window_are_rejected_naming_the_field() {
        let v = Validator::new().unwrap();
        let boot = Uuid::now_v7();
        let c = clock(boot, NOW, 10_000);
        let skew = SkewEstimate {
            skew_ms: 0,
            at_ms: NOW,
        };
        for wall in [253_402_300_799_000, 1_000, NOW + MAX_AHEAD_MS + 1] {
            let raw = serde_json::to_value(env(boot, wall, 5_000)).unwrap();
            let r = v.check(&raw, "k1", &c, skew).unwrap_err();
            assert!(r.reason.starts_with("wall_time: "), "{}", r.reason);
        }
        let mut raw = serde_json::to_value(env(boot, NOW, 5_000)).unwrap();
        raw["mono_ms"] = serde_json::json!(u64::MAX);
        let r = v.check(&raw, "k1", &c, skew).unwrap_err();
        assert!(r.reason.contains("/mono_ms"), "{}", r.reason);
        raw["mono_ms"] = serde_json::json!(5_000);
        assert!(v.check(&raw, "k1", &c, skew).is_ok());
    }

    #[test]
    fn events_of_the_same_boot_are_placed_by_monotonic_time_despite_a_clock_step() {
        let boot = Uuid::now_v7();
        let skew = SkewEstimate {
            skew_ms: 0,
            at_ms: 0,
        };
        // The event was recorded when the wall clock still said what fake-hwclock saved at the
        // last shutdown (before NTP set it); 4 s of monotonic time before the batch was sent at
        // a correct wall time.
        let e = env(boot, EARLIEST_WALL_MS + 5_000, 1_000);
        let c = clock(boot, 1_700_000_000_000, 5_000);
        assert_eq!(corrected_ms(&e, &c, skew), 1_700_000_000_000 - 4_000);
        // From an earlier boot only the wall clock and the skew are available.
        let old = env(Uuid::now_v7(), 1_600_000_000_000, 1_000);
        let skew = SkewEstimate {
            skew_ms: 250,
            at_ms: 0,
        };
        assert_eq!(corrected_ms(&old, &c, skew), 1_600_000_000_250);
    }

    #[test]
    fn catalog_violations_are_rejected_with_their_place() {
        let v = Validator::new().unwrap();
        let boot = Uuid::now_v7();
        let c = clock(boot, NOW, 0);
        let skew = SkewEstimate {
            skew_ms: 0,
            at_ms: 0,
        };
        let mut raw = serde_json::to_value(env(boot, NOW, 0)).unwrap();
        assert!(v.check(&raw, "k1", &c, skew).is_ok());
        let other = v.check(&raw, "k2", &c, skew).unwrap_err();
        assert!(
            other.reason.contains("posted by kiosk \"k2\""),
            "{}",
            other.reason
        );
        raw["payload"]["unclean_shutdown"] = "yes".into();
        let bad = v.check(&raw, "k1", &c, skew).unwrap_err();
        assert_eq!(bad.seq, 1);
        assert!(
            bad.reason.contains("/payload/unclean_shutdown"),
            "{}",
            bad.reason
        );
        let junk = v.check(&serde_json::json!(42), "k1", &c, skew).unwrap_err();
        assert_eq!(junk.id, Uuid::nil());
        // A reason is stored with the kiosk's dead letters: it names the field and the rule,
        // never the value, which can be a customer's name.
        raw["payload"]["unclean_shutdown"] = "Ana Pérez García".into();
        let personal = v.check(&raw, "k1", &c, skew).unwrap_err();
        assert!(
            personal.reason.contains("/payload/unclean_shutdown")
                && personal.reason.contains("wrong type"),
            "{}",
            personal.reason
        );
        assert!(!personal.reason.contains("Ana"), "{}", personal.reason);
        assert_eq!(
            without_quoted_values(r#"invalid type: string "Ana Pérez", expected u32"#),
            r#"invalid type: string "…", expected u32"#
        );
    }
}
