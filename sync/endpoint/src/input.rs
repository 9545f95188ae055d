//! The bounds of the free-text fields requests carry (names, emails, phones, locales, time
//! zones), each once: a schema type the OpenAPI document refers to, and the `deserialize_with`
//! check that refuses what the schema refuses, so the contract and the code cannot disagree.
//! Identifiers are [`kiosk_protocol::ident`]'s. Imports nothing of the crate: the database's
//! records and the route modules both use it. A refusal names its field through
//! `crate::http::json_body` (`body.name: ...`).

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// Longest name (store, customer), in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest email, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest phone number, in characters.
pub const MAX_PHONE_CHARS: usize = 32;
/// Longest an enrollment code may stay valid: 30 days, in seconds.
pub const MAX_ENROLL_TTL_S: u64 = 30 * 24 * 3600;
/// Most visits a customer import may start from.
pub const MAX_VISITS: i64 = 1_000_000;

fn text_check(s: &str, max: usize, what: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(format!("{what} must be 1 to {max} characters, got {n}"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{what} must not contain control characters such as {c:?}"
        ));
    }
    Ok(())
}

macro_rules! schema_type {
    ($(#[$doc:meta])* $name:ident, $schema:tt) => {
        $(#[$doc])*
        pub struct $name;
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}

schema_type!(
    /// A name shown to people: 1 to 100 characters, no control characters.
    Name,
    { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS,
      "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
      "description": "1 to 100 characters, no control characters" }
);
schema_type!(
    /// An email address as typed (not verified): 3 to 254 characters with an `@`.
    Email,
    { "type": "string", "minLength": 3, "maxLength": MAX_EMAIL_CHARS,
      "pattern": "^[^\\u0000-\\u0020\\u007f-\\u009f@]+@[^\\u0000-\\u0020\\u007f-\\u009f@]+$",
      "description": "an email address: no spaces or control characters, one @" }
);
schema_type!(
    /// A phone number: digits, spaces and `+ ( ) . -`, 1 to 32 characters.
    Phone,
    { "type": "string", "minLength": 1, "maxLength": MAX_PHONE_CHARS,
      "pattern": "^[0-9+() .-]+$",
      "description": "digits, spaces and + ( ) . -" }
);
schema_type!(
    /// A locale the kiosk speaks: `es` or `en`.
    Locale,
    { "type": "string", "enum": ["es", "en"] }
);
/// An IANA time zone name (`Europe/Madrid`), exactly as the bundled time zone database spells
/// it: the schema lists them all.
pub struct Timezone;

impl JsonSchema for Timezone {
    fn schema_name() -> Cow<'static, str> {
        "Timezone".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": timezone_names(),
            "description": "an IANA time zone (Europe/Madrid, UTC)"
        })
    }
}

/// The time zone names the endpoint knows, sorted.
pub fn timezone_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_owned())
            .collect();
        names.sort();
        names
    })
}

/// `deserialize_with` of a [`Name`].
pub fn name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    text_check(&s, MAX_NAME_CHARS, "a name").map_err(D::Error::custom)?;
    Ok(s)
}

/// `deserialize_with` of an optional [`Name`] (`null` or absent: none).
pub fn opt_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    text_check(&s, MAX_NAME_CHARS, "a name").map_err(D::Error::custom)?;
    Ok(Some(s))
}

/// `deserialize_with` of an optional [`Email`] (`null` allowed: no email).
pub fn email<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let n = s.chars().count();
    let ok = (3..=MAX_EMAIL_CHARS).contains(&n)
        && s.matches('@').count() == 1
        && !s.starts_with('@')
        && !s.ends_with('@')
        && !s.chars().any(|c| c.is_control() || c == ' ');
    if !ok {
        return Err(D::Error::custom(
            "not an email address (3 to 254 characters, one @, no spaces)",
        ));
    }
    Ok(Some(s))
}

/// `deserialize_with` of an optional [`Phone`] (`null` allowed: no phone).
pub fn phone<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let ok = (1..=MAX_PHONE_CHARS).contains(&s.chars().count())
        && s.chars()
            .all(|c| c.is_ascii_digit() || "+() .-".contains(c));
    if !ok {
        return Err(D::Error::custom(
            "not a phone number (1 to 32 digits, spaces and + ( ) . -)",
        ));
    }
    Ok(Some(s))
}

/// `deserialize_with` of a [`Locale`].
pub fn locale<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s != "es" && s != "en" {
        return Err(D::Error::custom("locale must be \"es\" or \"en\""));
    }
    Ok(s)
}

/// `deserialize_with` of a [`Timezone`] that may be absent but never `null`: absent leaves the
/// store's zone as it is (use `#[serde(default)]` beside it).
pub fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if timezone_names().binary_search(&s).is_err() {
        return Err(D::Error::custom(
            "not an IANA time zone (e.g. Europe/Madrid)",
        ));
    }
    Ok(Some(s))
}

/// A region code: an ISO 3166-2 subdivision (`ES-MD`), upper-case letters, digits and one `-`.
pub fn check_region(code: &str) -> Result<(), String> {
    let ok = code.len() <= 12
        && code.split_once('-').is_some_and(|(country, sub)| {
            country.len() == 2
                && country.bytes().all(|b| b.is_ascii_uppercase())
                && !sub.is_empty()
                && sub
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{code:?} is not an ISO 3166-2 subdivision code (two capital letters, '-', then capital letters or digits, e.g. ES-MD)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(deserialize_with = "name")]
        #[allow(dead_code, reason = "read by Debug only")]
        name: String,
        #[serde(default, deserialize_with = "timezone")]
        timezone: Option<String>,
        #[serde(default, deserialize_with = "email")]
        email: Option<String>,
    }

    fn probe(json: &str) -> Result<Probe, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_null_time_zone_is_refused_and_an_absent_one_left_alone() {
        assert!(probe(r#"{"name":"Norte","timezone":null}"#).is_err());
        assert_eq!(probe(r#"{"name":"Norte"}"#).unwrap().timezone, None);
        assert_eq!(
            probe(r#"{"name":"Norte","timezone":"Europe/Madrid"}"#)
                .unwrap()
                .timezone
                .as_deref(),
            Some("Europe/Madrid")
        );
        assert!(probe(r#"{"name":"Norte","timezone":"Mars/Olympus"}"#).is_err());
    }

    #[test]
    fn names_and_emails_are_bounded() {
        assert!(probe(r#"{"name":""}"#).is_err());
        assert!(probe(r#"{"name":"a\nb"}"#).is_err());
        assert!(probe(&format!(r#"{{"name":"{}"}}"#, "é".repeat(101))).is_err());
        assert!(probe(&format!(r#"{{"name":"{}"}}"#, "é".repeat(100))).is_ok());
        assert_eq!(probe(r#"{"name":"x","email":null}"#).unwrap().email, None);
        assert!(probe(r#"{"name":"x","email":"ana@example.com"}"#).is_ok());
        assert!(probe(r#"{"name":"x","email":"ana example.com"}"#).is_err());
    }
}
