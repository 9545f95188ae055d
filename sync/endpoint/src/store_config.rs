//! Store configurations as operators write them (`crm-endpoint stores set-config FILE`, `PUT
//! /v1/admin/stores/{store_id}/config`): TOML or JSON with the parts of
//! [`kiosk_protocol::store_config::StoreConfigParts`], checked with the rules the kiosks'
//! `check-config` applies (one definition, in `kiosk_protocol::store_config`) before any kiosk
//! sees them. Unknown keys are errors: a typo must not silently become `site.toml`'s value.

use std::path::Path;

use kiosk_protocol::store_config::{StoreConfigParts, unknown_key};

/// What is wrong with a store configuration.
#[derive(Debug, thiserror::Error)]
pub enum StoreConfigError {
    /// The file could not be read.
    #[error("cannot read store config file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML or JSON, or a value of the wrong type.
    #[error("{place}: {message}")]
    Syntax {
        /// The file or `body`.
        place: String,
        /// What the parser said.
        message: String,
    },
    /// A key no part has.
    #[error(
        "{place}: unknown key `{key}`: expected services, opening_time, counters, staff_pin_sha256, staff or privacy (services: letter, name, priority, expected_minutes, ticket_note; staff: id, name, pin_sha256; privacy: version, text)"
    )]
    UnknownKey {
        /// The file or `body`.
        place: String,
        /// The key's path.
        key: String,
    },
    /// Nothing set.
    #[error(
        "{place}: no part set: a store config sets at least one of services, opening_time, counters, staff_pin_sha256, staff or privacy"
    )]
    Empty {
        /// The file or `body`.
        place: String,
    },
    /// A rule `kiosk check-config` applies is broken.
    #[error("{place}: key `{key}`: {message}")]
    Rule {
        /// The file or `body`.
        place: String,
        /// The key as in `site.toml`.
        key: String,
        /// What was expected.
        message: String,
    },
}

/// Checks parts given as JSON (`place` names where they came from in errors).
pub fn from_json(
    place: &str,
    value: serde_json::Value,
) -> Result<StoreConfigParts, StoreConfigError> {
    let syntax = |message: String| StoreConfigError::Syntax {
        place: place.to_owned(),
        message,
    };
    let parts: StoreConfigParts = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        syntax(if path == "." {
            e.inner().to_string()
        } else {
            format!("key `{path}`: {}", e.inner())
        })
    })?;
    let written = serde_json::to_value(&parts).map_err(|e| syntax(e.to_string()))?;
    if let Some(key) = unknown_key(&value, &written) {
        return Err(StoreConfigError::UnknownKey {
            place: place.to_owned(),
            key,
        });
    }
    if parts.is_empty() {
        return Err(StoreConfigError::Empty {
            place: place.to_owned(),
        });
    }
    parts.check().map_err(|e| StoreConfigError::Rule {
        place: place.to_owned(),
        key: e.key,
        message: e.message,
    })?;
    Ok(parts)
}

/// Reads and checks a TOML (`.toml`) or JSON (anything else) file.
pub fn load(path: &Path) -> Result<StoreConfigParts, StoreConfigError> {
    let place = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| StoreConfigError::Read {
        path: place.clone(),
        source,
    })?;
    let value: serde_json::Value = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        toml::from_str(&text).map_err(|e| StoreConfigError::Syntax {
            place: place.clone(),
            message: e.to_string(),
        })?
    } else {
        serde_json::from_str(&text).map_err(|e| StoreConfigError::Syntax {
            place: place.clone(),
            message: e.to_string(),
        })?
    };
    from_json(&place, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_toml_store_config_is_read_and_checked_with_the_kiosks_rules() {
        let (_d, path) = write(
            "north.toml",
            r#"
opening_time = "08:30"
counters = 3
[[services]]
letter = "A"
name = { es = "Caja", en = "Till" }
expected_minutes = 4
[[services]]
letter = "D"
name = { es = "Devoluciones", en = "Returns" }
priority = true
"#,
        );
        let parts = load(&path).unwrap();
        assert_eq!(parts.counters, Some(3));
        assert_eq!(parts.services.as_ref().map(Vec::len), Some(2));
        assert_eq!(parts.services.unwrap()[1].expected_minutes, 5);
    }

    #[test]
    fn a_typo_a_broken_rule_and_an_empty_config_are_refused_naming_the_key() {
        let (_d, path) = write("a.toml", "counters = 3\nopening_tme = \"08:00\"\n");
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("unknown key `opening_tme`"), "{e}");
        let (_d, path) = write(
            "b.json",
            r#"{"services": [{"letter": "a", "name": {"es": "x", "en": "y"}}]}"#,
        );
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("key `queue.services[0].letter`") && e.contains("one capital letter"),
            "{e}"
        );
        let (_d, path) = write(
            "c.json",
            r#"{"services": [{"letter": "A", "name": {"es": "x", "en": "y"}, "minutes": 3}]}"#,
        );
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("unknown key `services[0].minutes`"), "{e}");
        let (_d, path) = write("d.json", "{}");
        assert!(load(&path).unwrap_err().to_string().contains("no part set"));
        let (_d, path) = write("e.json", r#"{"counters": "three"}"#);
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("key `counters`"), "{e}");
    }
}
