//! The driver boundary of privacy: a card UID becomes a keyed [`CardToken`] here and goes no
//! further. The UID lives in a [`Uid`] buffer that is zeroised on drop and never printed.
//!
//! Token = first 128 bits of HMAC-SHA256(tenant key, UID bytes), as 32 lowercase hex characters:
//! [`CardToken`] is the shared vocabulary's type (`kiosk_types`), the one the firmware journals
//! and the protocol carries: the drivers still know nothing of sync.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

pub use kiosk_types::CardToken;

/// Length of a card token in hex characters.
pub const CARD_TOKEN_HEX_LEN: usize = 32;

/// A tenant key that is too short to be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card token key must have at least 16 bytes, got {0}: generate one with `kiosk provision`")]
pub struct WeakKey(pub usize);

/// The tenant's secret key for card tokens. Zeroised on drop; `Debug` does not print it.
#[derive(Clone)]
pub struct TenantKey(Zeroizing<Vec<u8>>);

impl TenantKey {
    /// Wraps key bytes (at least 16).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, WeakKey> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.len() < 16 {
            return Err(WeakKey(bytes.len()));
        }
        Ok(TenantKey(bytes))
    }

    /// The token for a UID under this key.
    pub fn token(&self, uid: &Uid) -> CardToken {
        token_for_bytes(self, uid.as_bytes())
    }
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantKey(<redacted>)")
    }
}

fn token_for_bytes(key: &TenantKey, uid: &[u8]) -> CardToken {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&key.0) else {
        unreachable!("hmac takes keys of any length")
    };
    mac.update(uid);
    // The digest is no secret: its first half is the token, the rest is discarded.
    let digest = mac.finalize().into_bytes();
    let mut head = [0u8; 16];
    head.copy_from_slice(&digest[..16]);
    CardToken::from_bytes(head)
}

/// A raw card UID (1 to 10 bytes), zeroised on drop. It has no `Display`, its `Debug` prints
/// only the length, and only [`TenantKey::token`] reads it.
pub struct Uid {
    bytes: Zeroizing<[u8; 10]>,
    len: usize,
}

impl Uid {
    /// Copies UID bytes; `None` if empty or longer than 10 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > 10 {
            return None;
        }
        let mut buf = Zeroizing::new([0u8; 10]);
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(Uid {
            bytes: buf,
            len: bytes.len(),
        })
    }

    /// Number of UID bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a UID has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Text from a serial or keyboard-wedge reader that is not a UID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidTextError {
    /// Nothing but separators.
    #[error("reader sent an empty line")]
    Empty,
    /// A character that is not a digit of the configured format (the text itself is not echoed:
    /// it may be a card number).
    #[error("reader sent a character that is not a {0} digit: check uid_format in the profile")]
    BadDigit(&'static str),
    /// Too many digits for a card UID.
    #[error("reader sent {0} digits, more than a card uid has")]
    TooLong(usize),
    /// An odd number of hex digits.
    #[error("reader sent an odd number ({0}) of hex digits")]
    OddHex(usize),
}

impl Uid {
    /// Parses a UID as a reader types it: hex (separators `:`, `-` and spaces ignored, 1 to 10
    /// bytes) or decimal (a number up to 2^64 - 1; 4 big-endian bytes when it fits in 32 bits, as
    /// EM4100 readers print their 10 digits, else 5 or 8 bytes).
    pub fn parse(text: &str, format: super::settings::UidFormat) -> Result<Uid, UidTextError> {
        use super::settings::UidFormat;
        let digits: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !matches!(c, ':' | '-' | ' ' | '\t'))
                .collect(),
        );
        if digits.is_empty() {
            return Err(UidTextError::Empty);
        }
        match format {
            UidFormat::Hex => {
                if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(UidTextError::BadDigit("hex"));
                }
                if digits.len() % 2 == 1 {
                    return Err(UidTextError::OddHex(digits.len()));
                }
                if digits.len() > 20 {
                    return Err(UidTextError::TooLong(digits.len()));
                }
                let bytes = Zeroizing::new(
                    hex::decode(digits.as_bytes()).map_err(|_| UidTextError::BadDigit("hex"))?,
                );
                Uid::from_slice(&bytes).ok_or(UidTextError::Empty)
            }
            UidFormat::Decimal => {
                if !digits.chars().all(|c| c.is_ascii_digit()) {
                    return Err(UidTextError::BadDigit("decimal"));
                }
                let value: u64 = digits
                    .parse()
                    .map_err(|_| UidTextError::TooLong(digits.len()))?;
                let be = Zeroizing::new(value.to_be_bytes());
                let bytes = if value <= u64::from(u32::MAX) {
                    &be[4..]
                } else if value < 1 << 40 {
                    &be[3..]
                } else {
                    &be[..]
                };
                Uid::from_slice(bytes).ok_or(UidTextError::Empty)
            }
        }
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uid(<{} bytes>)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> TenantKey {
        TenantKey::new(vec![b; 32]).unwrap()
    }

    #[test]
    fn token_is_hmac_sha256_truncated_to_128_bits_in_lowercase_hex() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?" is too long for a
        // UID, so check the construction against the hmac crate directly with a UID-sized input.
        let k = TenantKey::new(b"0123456789abcdef".to_vec()).unwrap();
        let uid = Uid::from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]).unwrap();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"0123456789abcdef").unwrap();
        mac.update(&[0xDE, 0xAD, 0xBE, 0xEF]);
        let full = hex::encode(mac.finalize().into_bytes());
        let token = k.token(&uid);
        assert_eq!(token.as_str(), &full[..32]);
        assert!(
            token
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn token_is_stable_per_key_and_differs_across_keys() {
        let uid = Uid::from_slice(&[1, 2, 3, 4, 5, 6, 7]).unwrap();
        assert_eq!(key(1).token(&uid), key(1).token(&uid));
        assert_ne!(key(1).token(&uid), key(2).token(&uid));
    }

    #[test]
    fn token_never_contains_the_uid_hex() {
        for uid in [
            &[0x04, 0xA2, 0x2B, 0x7C][..],
            &[0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
        ] {
            let u = Uid::from_slice(uid).unwrap();
            let token = key(3).token(&u);
            assert!(!token.as_str().contains(&hex::encode(uid)));
            assert_ne!(token.as_str(), hex::encode(uid));
        }
    }

    #[test]
    fn debug_output_never_shows_uid_or_key() {
        let uid = Uid::from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]).unwrap();
        let k = TenantKey::new(b"super-secret-key-material".to_vec()).unwrap();
        let printed = format!("{uid:?} {k:?}");
        assert!(!printed.to_lowercase().contains("deadbeef"));
        assert!(!printed.contains("super-secret"));
        assert_eq!(format!("{uid:?}"), "Uid(<4 bytes>)");
    }

    #[test]
    fn reader_text_parses_as_hex_or_decimal_uids() {
        use crate::card::settings::UidFormat;
        let k = key(9);
        let hex = Uid::parse("04:A2:2B:7C", UidFormat::Hex).unwrap();
        assert_eq!(
            k.token(&hex),
            k.token(&Uid::from_slice(&[0x04, 0xA2, 0x2B, 0x7C]).unwrap())
        );
        let dec = Uid::parse("0012345678", UidFormat::Decimal).unwrap();
        assert_eq!(
            k.token(&dec),
            k.token(&Uid::from_slice(&12_345_678u32.to_be_bytes()).unwrap())
        );
        assert_eq!(
            Uid::parse("9999999999", UidFormat::Decimal).unwrap().len(),
            5
        );
        assert_eq!(
            Uid::parse("04A2B", UidFormat::Hex).unwrap_err(),
            UidTextError::OddHex(5)
        );
        assert_eq!(
            Uid::parse("12x4", UidFormat::Decimal).unwrap_err(),
            UidTextError::BadDigit("decimal")
        );
        assert_eq!(
            Uid::parse("  ", UidFormat::Hex).unwrap_err(),
            UidTextError::Empty
        );
        assert!(Uid::parse(&"00".repeat(11), UidFormat::Hex).is_err());
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(TenantKey::new(vec![0; 8]).unwrap_err(), WeakKey(8));
    }
}
