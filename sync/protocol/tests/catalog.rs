//! Round trips and schema validation of every event type in the catalog.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use kiosk_protocol::events::*;
use kiosk_protocol::{CardToken, Envelope, Event, schema};
use time::OffsetDateTime;
use uuid::Uuid;

fn token() -> CardToken {
    "00112233445566778899aabbccddeeff".parse().unwrap()
}

/// One example of every event type, in catalog order.
fn examples() -> Vec<Event> {
    let turn_id = Uuid::now_v7();
    let consent = ConsentChange {
        card_token: token(),
        purpose: ConsentPurpose::MarketingEmail,
        policy_version: "2026-01".into(),
        policy_sha256: "ab".repeat(32),
    };
    vec![
        Event::KioskStarted(KioskStarted {
            version: "0.1.0".into(),
            git_commit: "abc".into(),
            hardware_profile: "simulated".into(),
            unclean_shutdown: false,
        }),
        Event::CardTapped(CardTapped {
            card_token: token(),
            reader: ReaderKind::Mfrc522,
            known: true,
        }),
        Event::CustomerIdentified(CustomerIdentified {
            card_token: Some(token()),
            by: IdentifiedBy::Card,
            source: ProfileSource::LocalCache,
            segment: Some("vip".into()),
        }),
        Event::CustomerRegistered(CustomerRegistered {
            card_token: token(),
            display_name: "Begoña".into(),
            email: None,
            phone: Some("+34600000000".into()),
            locale: "es".into(),
        }),
        Event::ConsentGiven(consent.clone()),
        Event::ConsentWithdrawn(consent),
        Event::TicketIssued(TicketIssued {
            turn_id,
            turn: "A-042".into(),
            service: "A".into(),
            number: 42,
            business_day: "2026-11-22".into(),
            priority: false,
            position: 3,
            estimated_wait_s: 420,
            card_token: None,
            locale: "es".into(),
            campaign_id: Some("cafe-2x1".into()),
            out_of_sequence: false,
        }),
        Event::TicketPrinted(TicketPrinted {
            turn_id,
            bytes: 812,
            reprint: false,
        }),
        Event::TicketPrintFailed(TicketPrintFailed {
            turn_id,
            reason: "paper out".into(),
            shown_on_screen: true,
        }),
        Event::TurnCalled(TurnCalled {
            staff: None,
            turn_id,
            turn: "A-042".into(),
            counter: "3".into(),
            recall: false,
            waited_s: 300,
        }),
        Event::TurnServed(TurnServed {
            staff: None,
            turn_id,
            counter: "3".into(),
            service_s: 240,
        }),
        Event::TurnNoShow(TurnNoShow {
            staff: None,
            turn_id,
            counter: "3".into(),
            recall_limit: false,
        }),
        Event::TurnTransferred(TurnTransferred {
            turn_id,
            turn: "A-042".into(),
            from_service: "A".into(),
            to_service: "B".into(),
            counter: Some("3".into()),
        }),
        Event::TurnParked(TurnParked {
            turn_id,
            turn: "A-042".into(),
            counter: "3".into(),
        }),
        Event::TurnWalkedOut(TurnWalkedOut {
            turn_id,
            turn: "A-042".into(),
            counter: None,
        }),
        Event::QueueConflict(QueueConflict {
            turn_id: Some(turn_id),
            turn: "A-042".into(),
            counter: Some("2".into()),
            step: "call".into(),
            reason: "A-042 was called at counter 1 first".into(),
        }),
        Event::CampaignShown(CampaignShown {
            campaign_id: "cafe-2x1".into(),
            variant: "b".into(),
            card_token: Some(token()),
            segment: Some("regular".into()),
            surface: Surface::Screen,
            visit_id: None,
        }),
        Event::CouponIssued(CouponIssued {
            coupon_code: "CP-1".into(),
            campaign_id: None,
            variant: None,
            card_token: None,
            turn_id: Some(turn_id),
        }),
        Event::CouponRedeemed(CouponRedeemed {
            coupon_code: "CP-1".into(),
            campaign_id: None,
            card_token: None,
            variant: None,
        }),
        Event::SurveyAnswered(SurveyAnswered {
            turn_id: Some(turn_id),
            score: 9,
            reason: None,
            card_token: None,
        }),
        Event::DeviceStatusChanged(DeviceStatusChanged {
            device: DeviceKind::Printer,
            status: DeviceHealth::Absent,
            reason: Some("paper out".into()),
        }),
        Event::JournalRecovered(JournalRecovered {
            moved_to: "/var/lib/kiosk/journal.db.corrupt-1".into(),
            error: "database disk image is malformed".into(),
            salvaged_events: 10,
        }),
        Event::EventDeadLettered(EventDeadLettered {
            event_id: Uuid::now_v7(),
            seq: 7,
            reason: "bad".into(),
        }),
        Event::CustomerErased(CustomerErased {
            card_token: token(),
            redacted_events: 2,
        }),
        Event::DeviceLog(DeviceLog {
            level: LogLevel::Error,
            target: "kiosk::devices".into(),
            message: "printer: write failed: broken pipe".into(),
            occurrences: 3,
        }),
        Event::AssistanceRequested(AssistanceRequested {
            request_id: Uuid::now_v7(),
            source: AssistanceSource::StepIn,
            place: "atm-entrance".into(),
            place_name: "Cajero de la entrada".into(),
            turn_id: None,
        }),
        Event::AssistanceAcknowledged(AssistanceAcknowledged {
            request_id: Uuid::now_v7(),
            counter: "2".into(),
            response_ms: 48_000,
        }),
        Event::ContentPlayed(ContentPlayed {
            campaign_id: "spring-coffee-2026".into(),
            content_id: "spring-1".into(),
            surface: ContentSurface::Lobby,
            duration_ms: 8_000,
            audience: vec![
                SegmentCount {
                    segment: "vip".into(),
                    count: 2,
                },
                SegmentCount {
                    segment: "anonymous".into(),
                    count: 5,
                },
            ],
            card_token: None,
        }),
        Event::PeopleCounted(PeopleCounted {
            entries: 7,
            period_s: 300,
        }),
        Event::FirmwareUpdated(FirmwareUpdated {
            version: "0.2.0-1".into(),
            previous: Some("0.1.0-1".into()),
            result: UpdateResult::RolledBack,
            reason: Some("its self-test failed: printer: absent".into()),
        }),
        Event::StoreConfigApplied(StoreConfigApplied {
            version: 4,
            services: vec!["A".into(), "C".into()],
        }),
        Event::StoreConfigRefused(StoreConfigRefused {
            version: 5,
            reason: "queue.services[1].letter: `a` is not a service letter".into(),
            running_version: 4,
        }),
    ]
}

fn envelope(event: Event, seq: u64) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        kiosk_id: "kiosk-1".into(),
        seq,
        boot_id: Uuid::new_v4(),
        wall_time: OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap(),
        mono_ms: 1234,
        schema_version: event.schema_version(),
        event,
    }
}

#[test]
fn examples_cover_the_whole_catalog_in_order() {
    let names: Vec<&str> = examples().iter().map(Event::type_name).collect();
    assert_eq!(names, EVENT_TYPES);
}

#[test]
fn every_event_round_trips_through_json_with_its_type_name() {
    for (i, event) in examples().into_iter().enumerate() {
        let env = envelope(event, i as u64 + 1);
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["type"], env.event.type_name());
        assert!(json["payload"].is_object() || json["payload"].is_null());
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }
}

#[test]
fn every_event_validates_against_the_generated_envelope_schema() {
    let validator = jsonschema::validator_for(&schema::envelope()).unwrap();
    for (i, event) in examples().into_iter().enumerate() {
        let json = serde_json::to_value(envelope(event, i as u64 + 1)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", json["type"]);
    }
}

#[test]
fn schema_rejects_an_unknown_type_and_a_malformed_token() {
    let validator = jsonschema::validator_for(&schema::envelope()).unwrap();
    let mut json = serde_json::to_value(envelope(examples().remove(1), 1)).unwrap();
    json["payload"]["card_token"] = "04a1b2c3d4".into();
    assert!(
        !validator.is_valid(&json),
        "a raw-UID-looking token must not validate"
    );
    json["type"] = "card_tapped_v9".into();
    assert!(!validator.is_valid(&json));
}

#[test]
fn unknown_payload_fields_are_rejected_when_decoding() {
    let mut json = serde_json::to_value(envelope(examples().remove(1), 1)).unwrap();
    json["payload"]["uid"] = "04a1b2c3".into();
    assert!(serde_json::from_value::<Envelope>(json).is_err());
}
