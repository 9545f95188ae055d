//! The driver boundary of privacy: a card UID becomes a keyed [`CardToken`] here and goes no
//! further. The UID lives in a [`Uid`] buffer that is zeroised on drop and never printed.
//!
//! Token = first 128 bits of HMAC-SHA256(tenant key, UID bytes), as 32 lowercase hex characters:
//! [`CardToken`] and [`TenantKey`] are the shared vocabulary's types (`kiosk_types`), the ones the
//! firmware journals and the protocol carries: the drivers still know nothing of sync. The UID
//! reaches the key only through [`Uid::token`].

use std::fmt;

use zeroize::Zeroizing;

pub use kiosk_types::{BadKey, CARD_TOKEN_HEX_LEN, CardToken, TenantKey};

/// A raw card UID (1 to 10 bytes), zeroised on drop. It has no `Display`, its `Debug` prints
/// only the length, and only [`Uid::token`] reads it.
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

    /// The card token for this UID under the tenant's key.
    pub fn token(&self, key: &TenantKey) -> CardToken {
        key.card_token(self.as_bytes())
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
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;

    fn key(b: u8) -> TenantKey {
        TenantKey::from_bytes([b; 32])
    }

    #[test]
    fn token_is_hmac_sha256_truncated_to_128_bits_in_lowercase_hex() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?" is too long for a
        // UID, so check the construction against the hmac crate directly with a UID-sized input.
        let k = TenantKey::from_slice(b"0123456789abcdef0123456789abcdef").unwrap();
        let uid = Uid::from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]).unwrap();
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(b"0123456789abcdef0123456789abcdef").unwrap();
        mac.update(&[0xDE, 0xAD, 0xBE, 0xEF]);
        let full = hex::encode(mac.finalize().into_bytes());
        let token = uid.token(&k);
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
        assert_eq!(uid.token(&key(1)), uid.token(&key(1)));
        assert_ne!(uid.token(&key(1)), uid.token(&key(2)));
    }

    #[test]
    fn token_never_contains_the_uid_hex() {
        for uid in [
            &[0x04, 0xA2, 0x2B, 0x7C][..],
            &[0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
        ] {
            let u = Uid::from_slice(uid).unwrap();
            let token = u.token(&key(3));
            assert!(!token.as_str().contains(&hex::encode(uid)));
            assert_ne!(token.as_str(), hex::encode(uid));
        }
    }

    #[test]
    fn debug_output_never_shows_uid_or_key() {
        let uid = Uid::from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]).unwrap();
        let k = TenantKey::from_slice(b"super-secret-key-material-32byte").unwrap();
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
            hex.token(&k),
            Uid::from_slice(&[0x04, 0xA2, 0x2B, 0x7C])
                .unwrap()
                .token(&k)
        );
        let dec = Uid::parse("0012345678", UidFormat::Decimal).unwrap();
        assert_eq!(
            dec.token(&k),
            Uid::from_slice(&12_345_678u32.to_be_bytes())
                .unwrap()
                .token(&k)
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
        assert!(matches!(
            TenantKey::from_slice(&[0; 8]),
            Err(BadKey::Length(8))
        ));
    }
}
