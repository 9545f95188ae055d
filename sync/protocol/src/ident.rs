//! Identifiers people choose and the endpoint files things under: store ids, campaign ids,
//! variant names, kiosk ids, segments, service letters. One character set and length for all of
//! them ([`IDENT_PATTERN`]), so an id is always safe in a URL path, a query, a log line, a file
//! name and an HTML page, whatever route or tool it came through.
//!
//! The JSON Schemas name it `Ident` (a `$ref` wherever an id is expected); the endpoint checks it
//! with [`check`] on every route that takes one and answers 400 naming the field.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// Longest identifier, in characters (all ASCII, so also bytes).
pub const IDENT_MAX_LEN: usize = 64;

/// The identifier syntax as a JSON Schema (ECMA-262) regular expression: a lowercase letter or
/// digit, then up to 63 lowercase letters, digits, `.`, `_` or `-`.
pub const IDENT_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";

/// Why a string is not an identifier (the message never quotes the whole value: a mistyped id
/// can be anything, including personal data pasted into the wrong field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadIdent {
    /// The empty string.
    #[error("is empty; an id is 1 to {IDENT_MAX_LEN} characters of a-z, 0-9, '.', '_', '-'")]
    Empty,
    /// Longer than [`IDENT_MAX_LEN`].
    #[error("is {0} characters long; an id has at most {IDENT_MAX_LEN}")]
    TooLong(usize),
    /// A character outside the set, at a 0-based character position.
    #[error(
        "has {found:?} at position {position}; an id is a-z or 0-9, then a-z, 0-9, '.', '_' or '-'"
    )]
    Character {
        /// The offending character.
        found: char,
        /// Its position, in characters.
        position: usize,
    },
}

/// The syntax of a service code (`A`, `caja-2`): an identifier that may also use uppercase
/// letters, since services are named by the letter printed on tickets.
pub const SERVICE_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

/// Checks `s` against [`IDENT_PATTERN`].
pub fn check(s: &str) -> Result<(), BadIdent> {
    check_with(s, false)
}

/// Checks `s` against [`SERVICE_PATTERN`].
pub fn check_service(s: &str) -> Result<(), BadIdent> {
    check_with(s, true)
}

fn check_with(s: &str, uppercase: bool) -> Result<(), BadIdent> {
    let len = s.chars().count();
    if len == 0 {
        return Err(BadIdent::Empty);
    }
    if len > IDENT_MAX_LEN {
        return Err(BadIdent::TooLong(len));
    }
    for (position, c) in s.chars().enumerate() {
        let ok = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || (uppercase && c.is_ascii_uppercase())
            || (position > 0 && matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(BadIdent::Character { found: c, position });
        }
    }
    Ok(())
}

/// An identifier: a `String` that passed [`check`]. Fields that stay `String` use
/// `#[schemars(with = "Ident")]` for the schema and [`deserialize`] for the check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ident(String);

impl Ident {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Ident {
    type Error = BadIdent;
    fn try_from(s: String) -> Result<Self, BadIdent> {
        check(&s)?;
        Ok(Ident(s))
    }
}

impl From<Ident> for String {
    fn from(i: Ident) -> String {
        i.0
    }
}

impl JsonSchema for Ident {
    fn schema_name() -> Cow<'static, str> {
        "Ident".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": IDENT_PATTERN,
            "minLength": 1,
            "maxLength": IDENT_MAX_LEN,
            "description": "an identifier: 1 to 64 characters, a-z or 0-9 first, then a-z, 0-9, '.', '_' or '-'"
        })
    }
}

/// A service code (schema only: fields stay `String`, see [`check_service`]).
pub struct ServiceCode;

impl JsonSchema for ServiceCode {
    fn schema_name() -> Cow<'static, str> {
        "ServiceCode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": SERVICE_PATTERN,
            "minLength": 1,
            "maxLength": IDENT_MAX_LEN,
            "description": "a service code: 1 to 64 characters, a letter or digit first, then letters, digits, '.', '_' or '-'"
        })
    }
}

/// `#[serde(deserialize_with)]` of a `String` field holding an identifier.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ident::deserialize(d).map(String::from)
}

/// `#[serde(deserialize_with)]` of an `Option<String>` field holding an identifier or null.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Ident>::deserialize(d).map(|o| o.map(String::from))
}

/// `#[serde(deserialize_with)]` of a `Vec<String>` field of identifiers.
pub fn deserialize_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<Ident>::deserialize(d).map(|v| v.into_iter().map(String::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_ids_in_use_are_identifiers_and_junk_is_not() {
        for ok in [
            "north",
            "demo",
            "k-0a1b2c3d4e5f",
            "spring-coffee-2026",
            "a",
            "v1.2_b",
            "0",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        assert_eq!(check(""), Err(BadIdent::Empty));
        assert_eq!(check(&"a".repeat(65)), Err(BadIdent::TooLong(65)));
        assert_eq!(check(&"a".repeat(64)), Ok(()));
        for (bad, position) in [
            ("North", 0),
            ("-north", 0),
            ("a/b", 1),
            ("a\nb", 1),
            ("a b", 1),
            ("ñu", 0),
        ] {
            assert!(
                matches!(check(bad), Err(BadIdent::Character { position: p, .. }) if p == position),
                "{bad:?}"
            );
        }
    }

    proptest! {
        /// The checks and the published patterns agree on every string.
        #[test]
        fn checks_agree_with_the_published_patterns(s in "[a-zA-Z0-9._/ \n-]{0,70}|\\PC{0,3}") {
            for (pattern, check) in [(IDENT_PATTERN, check as fn(&str) -> _), (SERVICE_PATTERN, check_service)] {
                let schema = serde_json::json!({ "type": "string", "pattern": pattern });
                let v = jsonschema::validator_for(&schema).unwrap();
                prop_assert_eq!(check(&s).is_ok(), v.is_valid(&serde_json::json!(s)), "{}", pattern);
            }
        }
    }
}
