//! The words every part of the kiosk system shares, defined once: the card token a loyalty card
//! becomes at the driver boundary ([`CardToken`]), the keys that make it ([`TenantKey`], a
//! [`Key32`]), the kind of reader that saw it
//! ([`ReaderKind`]) and a device's health ([`DeviceHealth`]).
//!
//! The drivers make these, the firmware journals them, the sync protocol carries them and the CRM
//! endpoint stores them: all four use these types, so nothing converts one spelling of a concept
//! into another. Serde and JSON Schema derive here because they travel in events. Also the one
//! rule every part applies to the files holding secrets and personal data ([`private_file`]).

mod key;
pub mod private_file;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use key::{BadKey, Key32, TenantKey};

/// Length in hex characters of a card token (HMAC-SHA256 truncated to 128 bits).
pub const CARD_TOKEN_HEX_LEN: usize = 32;

/// A keyed, one-way token standing for a loyalty card: HMAC-SHA256(tenant key, UID), truncated to
/// 128 bits, lowercase hex. Made at the driver boundary; the UID itself never gets this far.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String", extend("pattern" = "^[0-9a-f]{32}$"))]
pub struct CardToken(String);

/// A string that is not a well-formed card token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("card token must be {CARD_TOKEN_HEX_LEN} lowercase hex characters, got {0} characters")]
pub struct BadCardToken(usize);

impl CardToken {
    /// Wraps 16 token bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        CardToken(hex::encode(bytes))
    }

    /// The token as lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CardToken {
    type Error = BadCardToken;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let well_formed = s.len() == CARD_TOKEN_HEX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if well_formed {
            Ok(CardToken(s))
        } else {
            Err(BadCardToken(s.chars().count()))
        }
    }
}

impl std::str::FromStr for CardToken {
    type Err = BadCardToken;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CardToken::try_from(s.to_owned())
    }
}

impl From<CardToken> for String {
    fn from(t: CardToken) -> String {
        t.0
    }
}

impl fmt::Display for CardToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CardToken {
    // Tokens are pseudonymous, not secret, but logs only need a prefix to correlate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardToken({}…)", &self.0[..8])
    }
}

/// Which kind of reader saw a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReaderKind {
    /// MFRC522 (ISO 14443A) over SPI.
    Mfrc522,
    /// USB HID keyboard-wedge reader (e.g. 125 kHz EM4100).
    HidWedge,
    /// Serial / USB CDC-ACM reader.
    Serial,
    /// The simulated reader of `kiosk demo`.
    Simulated,
}

/// Health of a device as reported by its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceHealth {
    /// Working.
    Ok,
    /// Working with a problem a person should look at (paper near end, slow answers).
    Degraded,
    /// Not usable: unplugged, not answering, out of paper.
    Absent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_token_accepts_only_32_lowercase_hex() {
        assert!(
            "0123456789abcdef0123456789abcdef"
                .parse::<CardToken>()
                .is_ok()
        );
        assert!(
            "0123456789ABCDEF0123456789abcdef"
                .parse::<CardToken>()
                .is_err()
        );
        assert!("0123".parse::<CardToken>().is_err());
        assert!(serde_json::from_str::<CardToken>("\"zz23456789abcdef0123456789abcdef\"").is_err());
    }
}
