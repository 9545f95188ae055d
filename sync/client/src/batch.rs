//! Turning outbox events into a batch request body: the journaled JSON goes out byte for byte
//! (never re-serialised), wrapped in the batch envelope of protocol v1 with its deterministic id.
//!
//! Data flow: outbox → **batch** → transport → endpoint.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use kiosk_protocol::wire::{KioskClock, batch_id};
use uuid::Uuid;

use crate::outbox::OutboxEvent;

/// Bytes reserved in a batch body for everything but the events (`batch_id`, `kiosk_clock`,
/// `backlog`, `backlog_age_ms`, brackets): about 250 are used.
pub(crate) const BODY_OVERHEAD: usize = 512;

/// A batch ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// Its deterministic id.
    pub id: Uuid,
    /// Sequence numbers of its events, in order.
    pub seqs: Vec<u64>,
    /// Ids of its events, in order.
    pub ids: Vec<Uuid>,
    /// The uncompressed JSON body.
    pub body: Vec<u8>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.seqs.len()
    }
}

/// Why an event cannot travel at all, whatever the endpoint says: it is dead-lettered locally.
pub(crate) fn unsendable_reason(event: &OutboxEvent, max_batch_bytes: usize) -> Option<String> {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&event.json) {
        return Some(format!(
            "journaled envelope is not valid JSON ({e}); it can never be sent"
        ));
    }
    let limit = max_batch_bytes.saturating_sub(BODY_OVERHEAD);
    if event.json.len() > limit {
        return Some(format!(
            "envelope is {} bytes of JSON, more than a batch may carry ({limit} bytes); it can never be sent",
            event.json.len()
        ));
    }
    None
}

/// The byte budget to ask the outbox for, so that the assembled body stays within
/// `max_batch_bytes` (events, commas and the envelope).
pub(crate) fn events_byte_budget(max_batch_events: usize, max_batch_bytes: usize) -> usize {
    max_batch_bytes
        .saturating_sub(BODY_OVERHEAD)
        .saturating_sub(max_batch_events)
        .max(1)
}

/// Wraps `events` (non-empty, in seq order, each valid JSON) in a batch body.
pub(crate) fn assemble(
    kiosk_id: &str,
    clock: &KioskClock,
    backlog: Option<u64>,
    backlog_age_ms: Option<u64>,
    events: &[OutboxEvent],
) -> Result<Batch, serde_json::Error> {
    let first = events.first().map_or(0, |e| e.seq);
    let last = events.last().map_or(0, |e| e.seq);
    let id = batch_id(kiosk_id, first, last);
    let events_len: usize = events.iter().map(|e| e.json.len() + 1).sum();
    let mut body = Vec::with_capacity(BODY_OVERHEAD + events_len);
    body.extend_from_slice(b"{\"batch_id\":\"");
    body.extend_from_slice(id.hyphenated().to_string().as_bytes());
    body.extend_from_slice(b"\",\"kiosk_clock\":");
    serde_json::to_writer(&mut body, clock)?;
    if let Some(n) = backlog {
        body.extend_from_slice(b",\"backlog\":");
        body.extend_from_slice(n.to_string().as_bytes());
    }
    if let Some(ms) = backlog_age_ms {
        body.extend_from_slice(b",\"backlog_age_ms\":");
        body.extend_from_slice(ms.to_string().as_bytes());
    }
    body.extend_from_slice(b",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e.json.as_bytes());
    }
    body.extend_from_slice(b"]}");
    Ok(Batch {
        id,
        seqs: events.iter().map(|e| e.seq).collect(),
        ids: events.iter().map(|e| e.id).collect(),
        body,
    })
}

/// Gzip at the fastest level: batches are repetitive JSON, level 1 already shrinks them ~8x and
/// keeps a Pi's CPU free for the customer in front of it.
pub(crate) fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 6 + 64), Compression::fast());
    enc.write_all(body)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiosk_protocol::Envelope;
    use kiosk_protocol::events::{Event, KioskStarted};
    use kiosk_protocol::wire::{BatchRequest, MAX_BATCH_BYTES};
    use time::OffsetDateTime;

    fn envelope(seq: u64) -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            kiosk_id: "k1".into(),
            seq,
            boot_id: Uuid::nil(),
            wall_time: OffsetDateTime::UNIX_EPOCH,
            mono_ms: seq,
            schema_version: 1,
            event: Event::KioskStarted(KioskStarted {
                version: "0.1.0".into(),
                git_commit: "abc".into(),
                hardware_profile: "simulated".into(),
                unclean_shutdown: false,
            }),
        }
    }

    fn outbox_event(env: &Envelope) -> OutboxEvent {
        OutboxEvent {
            seq: env.seq,
            id: env.id,
            json: serde_json::to_string(env).unwrap(),
        }
    }

    #[test]
    fn assembled_body_reads_back_as_the_protocol_batch_with_its_deterministic_id() {
        let envs: Vec<Envelope> = (3..=7).map(envelope).collect();
        let events: Vec<OutboxEvent> = envs.iter().map(outbox_event).collect();
        let clock = KioskClock::now(Uuid::now_v7(), 99);
        let batch = assemble("k1", &clock, Some(12), Some(90_000), &events).unwrap();
        let back: BatchRequest = serde_json::from_slice(&batch.body).unwrap();
        assert_eq!(back.batch_id, batch_id("k1", 3, 7));
        assert_eq!(back.kiosk_clock, clock);
        assert_eq!(back.backlog, Some(12));
        assert_eq!(back.backlog_age_ms, Some(90_000));
        assert_eq!(back.events, envs);
        assert_eq!(batch.seqs, vec![3, 4, 5, 6, 7]);
        let expected = BatchRequest::new("k1", clock, envs).unwrap();
        assert_eq!(batch.id, expected.batch_id);
    }

    #[test]
    fn a_full_batch_within_the_byte_budget_stays_within_the_protocol_limit() {
        // Pad events so that the budget, not the count, is what limits.
        let mut events = Vec::new();
        let budget = events_byte_budget(500, MAX_BATCH_BYTES);
        let mut used = 0;
        let mut seq = 1;
        loop {
            let mut env = envelope(seq);
            if let Event::KioskStarted(k) = &mut env.event {
                k.git_commit = "x".repeat(900);
            }
            let e = outbox_event(&env);
            if used + e.json.len() > budget || events.len() == 500 {
                break;
            }
            used += e.json.len();
            events.push(e);
            seq += 1;
        }
        let clock = KioskClock {
            wall_time: OffsetDateTime::now_utc(),
            mono_ms: u64::MAX,
            boot_id: Uuid::max(),
        };
        let batch = assemble(
            "a-rather-long-kiosk-id-0001",
            &clock,
            Some(u64::MAX),
            Some(u64::MAX),
            &events,
        )
        .unwrap();
        assert!(
            batch.body.len() <= MAX_BATCH_BYTES,
            "{} bytes",
            batch.body.len()
        );
    }

    #[test]
    fn invalid_json_and_oversized_envelopes_are_unsendable_with_a_reason() {
        let bad = OutboxEvent {
            seq: 1,
            id: Uuid::nil(),
            json: "{\"id\":".into(),
        };
        assert!(
            unsendable_reason(&bad, MAX_BATCH_BYTES)
                .unwrap()
                .contains("not valid JSON")
        );
        let huge = OutboxEvent {
            seq: 2,
            id: Uuid::nil(),
            json: format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_BATCH_BYTES)),
        };
        assert!(
            unsendable_reason(&huge, MAX_BATCH_BYTES)
                .unwrap()
                .contains("more than a batch")
        );
        let fine = outbox_event(&envelope(3));
        assert_eq!(unsendable_reason(&fine, MAX_BATCH_BYTES), None);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read as _;
        let body = b"{\"events\":[1,2,3]}".repeat(100);
        let packed = gzip(&body).unwrap();
        assert!(packed.len() < body.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
