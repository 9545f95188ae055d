//! The schemas under `sync/schema/` are generated from the types; this test fails when they drift.
//! Regenerate with `UPDATE_SCHEMA=1 cargo test -p kiosk-protocol --test schema_drift`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::PathBuf;

use kiosk_protocol::events::EVENT_TYPES;
use kiosk_protocol::schema;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema")
}

#[test]
fn checked_in_schemas_match_the_types() {
    let update = std::env::var_os("UPDATE_SCHEMA").is_some();
    let mut drifted = Vec::new();
    for file in schema::all() {
        let path = schema_dir().join(&file.path);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &file.text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == file.text => {}
            _ => drifted.push(file.path),
        }
    }
    assert!(
        drifted.is_empty(),
        "schemas drifted from the types: {drifted:?}; run UPDATE_SCHEMA=1 cargo test -p kiosk-protocol --test schema_drift and commit"
    );
}

#[test]
fn every_event_type_has_a_payload_schema_file() {
    let files: Vec<String> = schema::all().into_iter().map(|f| f.path).collect();
    for t in EVENT_TYPES {
        assert!(
            files.contains(&format!("events/{t}.schema.json")),
            "no schema file for {t}"
        );
    }
}
