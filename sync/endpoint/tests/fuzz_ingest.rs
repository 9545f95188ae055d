//! Never-panic properties of the endpoint's batch decoding (`api` parses the body as a
//! `BatchRequest<Value>`, then `ingest::Validator::check` validates each event): arbitrary bytes
//! and valid batches with their fields replaced, removed or added decode to a batch or an error,
//! and every event is either accepted as the same event or rejected with a reason, never a
//! panic. `PROPTEST_CASES` scales it (scripts/soak runs it with many more cases).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::sync::OnceLock;

use crm_endpoint::db::SkewEstimate;
use crm_endpoint::ingest::Validator;
use kiosk_protocol::events::{Envelope, Event, TicketIssued};
use kiosk_protocol::wire::{BatchRequest, KioskClock};
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

const KIOSK: &str = "k-fuzz";
const SKEW: SkewEstimate = SkewEstimate {
    skew_ms: 0,
    at_ms: 0,
};

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new().unwrap())
}

fn envelope(seq: u64) -> Value {
    let env = Envelope {
        id: Uuid::now_v7(),
        kiosk_id: KIOSK.into(),
        seq,
        boot_id: Uuid::from_u128(9),
        wall_time: time::OffsetDateTime::now_utc(),
        mono_ms: 1000 + seq,
        schema_version: 1,
        event: Event::TicketIssued(TicketIssued {
            turn_id: Uuid::from_u128(u128::from(seq)),
            turn: format!("A-{seq:03}"),
            service: "A".into(),
            number: seq as u32,
            business_day: "2026-11-23".into(),
            priority: false,
            position: 1,
            estimated_wait_s: 60,
            card_token: None,
            locale: "es".into(),
            campaign_id: None,
            out_of_sequence: false,
        }),
    };
    serde_json::to_value(env).unwrap()
}

fn clock() -> KioskClock {
    KioskClock::now(Uuid::from_u128(9), 5000)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
        Just(json!("2026-11-23T10:00:00Z")),
        Just(json!("00000000-0000-0000-0000-000000000000")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Paths into an envelope: top-level fields and payload fields.
const FIELDS: &[&str] = &[
    "id",
    "kiosk_id",
    "seq",
    "boot_id",
    "wall_time",
    "mono_ms",
    "schema_version",
    "type",
    "payload",
    "payload.turn_id",
    "payload.turn",
    "payload.number",
    "payload.business_day",
    "payload.card_token",
    "payload.locale",
    "payload.estimated_wait_s",
    "extra",
    "payload.extra",
];

fn slot<'a>(
    v: &'a mut Value,
    path: &str,
) -> Option<(&'a mut serde_json::Map<String, Value>, String)> {
    match path.split_once('.') {
        Some((head, rest)) => v
            .get_mut(head)?
            .as_object_mut()
            .map(|m| (m, rest.to_owned())),
        None => v.as_object_mut().map(|m| (m, path.to_owned())),
    }
}

fn check_each(events: &[Value]) {
    for raw in events {
        match validator().check(raw, KIOSK, &clock(), SKEW) {
            Ok(accepted) => {
                // Accepted means it is the catalog's event: it reads back as an Envelope.
                let _: Envelope = serde_json::from_value(raw.clone())
                    .expect("an accepted event is a catalog envelope");
                let _ = accepted;
            }
            Err(rejection) => assert!(!rejection.reason.is_empty(), "rejection without a reason"),
        }
    }
}

#[test]
fn a_valid_event_is_accepted() {
    let raw = envelope(1);
    assert!(validator().check(&raw, KIOSK, &clock(), SKEW).is_ok());
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_a_batch_or_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(batch) = serde_json::from_slice::<BatchRequest<Value>>(&bytes) {
            check_each(&batch.events);
        }
    }

    #[test]
    fn arbitrary_json_events_are_accepted_or_rejected_with_a_reason(events in prop::collection::vec(json_value(), 0..8)) {
        check_each(&events);
    }

    #[test]
    fn valid_events_with_fields_replaced_removed_or_added_never_panic(
        edits in prop::collection::vec((prop::sample::select(FIELDS), prop::option::of(json_value())), 1..5),
        seq in 1u64..1_000_000,
    ) {
        let mut raw = envelope(seq);
        for (path, value) in edits {
            if let Some((map, key)) = slot(&mut raw, path) {
                match value {
                    Some(v) => { map.insert(key, v); }
                    None => { map.remove(&key); }
                }
            }
        }
        check_each(std::slice::from_ref(&raw));
        let body = json!({"batch_id": Uuid::now_v7(), "kiosk_clock": clock(), "events": [raw]});
        let text = serde_json::to_vec(&body).unwrap();
        let decoded = serde_json::from_slice::<BatchRequest<Value>>(&text);
        prop_assert!(decoded.is_ok(), "a well-formed batch body decodes: {:?}", decoded.err());
    }

    #[test]
    fn a_batch_body_cut_or_with_a_byte_flipped_never_panics(cut in any::<usize>(), at in any::<usize>(), byte in any::<u8>()) {
        let body = json!({"batch_id": Uuid::now_v7(), "kiosk_clock": clock(),
            "events": [envelope(1), envelope(2)]});
        let mut text = serde_json::to_vec(&body).unwrap();
        let i = at % text.len();
        text[i] = byte;
        text.truncate(cut % (text.len() + 1));
        if let Ok(batch) = serde_json::from_slice::<BatchRequest<Value>>(&text) {
            check_each(&batch.events);
        }
    }
}
