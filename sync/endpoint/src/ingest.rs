//! Turning a kiosk's batch into rows: each event is checked against the catalog (the checked-in
//! JSON Schema of the envelope, then the Rust types), given a skew-corrected time beside its
//! device time (docs/DESIGN.md invariant 6), and mapped to its effects on customers and campaigns.
//!
//! Data flow: outbox → batch → **ingest** → db. Pure: no I/O, time passed in.

use kiosk_protocol::events::{ConsentPurpose, DeviceHealth, DeviceKind, Envelope, Event};
use kiosk_protocol::wire::KioskClock;
use serde_json::Value;
use uuid::Uuid;

use crate::db::{Effect, IngestEvent, OpsFact, QueueStep, SkewEstimate};

/// The envelope schema exactly as published in `sync/schema/` (drift-checked against the types).
const ENVELOPE_SCHEMA: &str = include_str!("../../schema/envelope.schema.json");

/// Schema versions of each event type this endpoint accepts.
pub const KNOWN_SCHEMA_VERSIONS: &[u16] = &[1];

/// A skew estimate older than this is replaced by the next sample even if that sample is larger
/// (the kiosk's clock may have been stepped back).
pub const SKEW_SAMPLE_TTL_MS: i64 = 10 * 60 * 1000;

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

/// The new skew estimate after a batch whose clock reading arrived at `received_ms`.
///
/// A sample (receive time minus the kiosk's send time) is the true offset plus the request's
/// transit delay, never less: the smallest recent sample is the best estimate (the min-RTT idea
/// of NTP). A sample older than [`SKEW_SAMPLE_TTL_MS`] gives way to the next one, so a kiosk whose
/// clock was stepped back is followed within minutes.
pub fn update_skew(
    current: Option<SkewEstimate>,
    clock: &KioskClock,
    received_ms: i64,
) -> SkewEstimate {
    let sample = SkewEstimate {
        skew_ms: received_ms.saturating_sub(unix_ms(clock.wall_time)),
        at_ms: received_ms,
    };
    match current {
        Some(c) if c.skew_ms <= sample.skew_ms && received_ms - c.at_ms < SKEW_SAMPLE_TTL_MS => c,
        _ => sample,
    }
}

/// The server-time estimate of when an event happened. Events of the batch's boot are placed by
/// their monotonic clock relative to the batch's clock reading (immune to wall-clock steps);
/// older boots' events by their wall time plus the skew.
pub fn corrected_ms(env: &Envelope, clock: &KioskClock, skew: SkewEstimate) -> i64 {
    if env.boot_id == clock.boot_id && env.mono_ms <= clock.mono_ms {
        let sent_server_ms = unix_ms(clock.wall_time).saturating_add(skew.skew_ms);
        let ago = i64::try_from(clock.mono_ms - env.mono_ms).unwrap_or(i64::MAX);
        sent_server_ms.saturating_sub(ago)
    } else {
        unix_ms(env.wall_time).saturating_add(skew.skew_ms)
    }
}

fn purpose_name(p: ConsentPurpose) -> &'static str {
    match p {
        ConsentPurpose::Profile => "profile",
        ConsentPurpose::MarketingEmail => "marketing_email",
        ConsentPurpose::MarketingSms => "marketing_sms",
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

    #[test]
    fn skew_keeps_the_smallest_recent_sample() {
        let boot = Uuid::now_v7();
        // Kiosk clock one hour behind; transit 50 ms then 20 ms then 80 ms.
        let hour = 3_600_000;
        let s1 = update_skew(None, &clock(boot, 1_000_000, 0), 1_000_000 + hour + 50);
        let s2 = update_skew(
            Some(s1),
            &clock(boot, 1_001_000, 1000),
            1_001_000 + hour + 20,
        );
        let s3 = update_skew(
            Some(s2),
            &clock(boot, 1_002_000, 2000),
            1_002_000 + hour + 80,
        );
        assert_eq!(
            (s1.skew_ms, s2.skew_ms, s3.skew_ms),
            (hour + 50, hour + 20, hour + 20)
        );
        let later = 1_002_000 + SKEW_SAMPLE_TTL_MS + 1;
        let s4 = update_skew(Some(s3), &clock(boot, later, 9_000), later + hour + 80);
        assert_eq!(
            s4.skew_ms,
            hour + 80,
            "a stale estimate gives way to a fresh sample"
        );
    }

    #[test]
    fn events_of_the_same_boot_are_placed_by_monotonic_time_despite_a_clock_step() {
        let boot = Uuid::now_v7();
        let skew = SkewEstimate {
            skew_ms: 0,
            at_ms: 0,
        };
        // The event was recorded when the wall clock said 1970 + 5 s (before NTP set it);
        // 4 s of monotonic time before the batch was sent at a correct wall time.
        let e = env(boot, 5_000, 1_000);
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
        let c = clock(boot, 0, 0);
        let skew = SkewEstimate {
            skew_ms: 0,
            at_ms: 0,
        };
        let mut raw = serde_json::to_value(env(boot, 0, 0)).unwrap();
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
