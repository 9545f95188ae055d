//! JSON Schemas generated from the catalog types, checked in under `sync/schema/` for the CRM side
//! and third parties. A test fails when the checked-in files drift from the types.

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};

use crate::events::{self, Envelope};

/// One generated schema file: its path relative to `sync/schema/` and its pretty JSON text.
pub struct SchemaFile {
    /// Path relative to `sync/schema/`.
    pub path: String,
    /// Pretty-printed JSON, ending with a newline.
    pub text: String,
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

fn render(schema: &Schema) -> String {
    // serde_json::Value always serialises; the schema is plain JSON.
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

fn one<T: JsonSchema>(path: &str) -> SchemaFile {
    SchemaFile {
        path: path.to_owned(),
        text: render(&generator().into_root_schema_for::<T>()),
    }
}

/// All schema files: the envelope (with every payload in `$defs`) and one file per payload type.
pub fn all() -> Vec<SchemaFile> {
    vec![
        one::<Envelope>("envelope.schema.json"),
        one::<events::KioskStarted>("events/kiosk_started.schema.json"),
        one::<events::CardTapped>("events/card_tapped.schema.json"),
        one::<events::CustomerIdentified>("events/customer_identified.schema.json"),
        one::<events::CustomerRegistered>("events/customer_registered.schema.json"),
        one::<events::ConsentChange>("events/consent_given.schema.json"),
        one::<events::ConsentChange>("events/consent_withdrawn.schema.json"),
        one::<events::TicketIssued>("events/ticket_issued.schema.json"),
        one::<events::TicketPrinted>("events/ticket_printed.schema.json"),
        one::<events::TicketPrintFailed>("events/ticket_print_failed.schema.json"),
        one::<events::TurnCalled>("events/turn_called.schema.json"),
        one::<events::TurnServed>("events/turn_served.schema.json"),
        one::<events::TurnNoShow>("events/turn_no_show.schema.json"),
        one::<events::TurnTransferred>("events/turn_transferred.schema.json"),
        one::<events::TurnParked>("events/turn_parked.schema.json"),
        one::<events::TurnWalkedOut>("events/turn_walked_out.schema.json"),
        one::<events::QueueConflict>("events/queue_conflict.schema.json"),
        one::<events::CampaignShown>("events/campaign_shown.schema.json"),
        one::<events::CouponIssued>("events/coupon_issued.schema.json"),
        one::<events::CouponRedeemed>("events/coupon_redeemed.schema.json"),
        one::<events::SurveyAnswered>("events/survey_answered.schema.json"),
        one::<events::DeviceStatusChanged>("events/device_status_changed.schema.json"),
        one::<events::JournalRecovered>("events/journal_recovered.schema.json"),
        one::<events::EventDeadLettered>("events/event_dead_lettered.schema.json"),
        one::<events::CustomerErased>("events/customer_erased.schema.json"),
        one::<events::DeviceLog>("events/device_log.schema.json"),
        one::<events::AssistanceRequested>("events/assistance_requested.schema.json"),
        one::<events::AssistanceAcknowledged>("events/assistance_acknowledged.schema.json"),
        one::<events::ContentPlayed>("events/content_played.schema.json"),
        one::<events::PeopleCounted>("events/people_counted.schema.json"),
        one::<events::FirmwareUpdated>("events/firmware_updated.schema.json"),
        one::<events::StoreConfigApplied>("events/store_config_applied.schema.json"),
        one::<events::StoreConfigRefused>("events/store_config_refused.schema.json"),
    ]
}

/// The envelope schema as a JSON value, for validators.
pub fn envelope() -> serde_json::Value {
    serde_json::to_value(generator().into_root_schema_for::<Envelope>()).unwrap_or_default()
}
