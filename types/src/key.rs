//! Secret keys as they travel and rest: [`Key32`] (32 bytes, base64 on the wire and in config
//! files, zeroised on drop, never printed) and the tenant's card-token key ([`TenantKey`]), the
//! one place a card UID becomes a [`CardToken`](crate::CardToken).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::CardToken;

/// A 32-byte key, base64 (standard alphabet, padded) on the wire. Debug output never shows it.
/// Zeroised on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// Wraps 32 key bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Key32(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as base64 (what travels in JSON and sits in config files).
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, BadKey> {
        let bytes = BASE64.decode(s.trim()).map_err(BadKey::Base64)?;
        let len = bytes.len();
        <[u8; 32]>::try_from(bytes)
            .map(Key32)
            .map_err(|_| BadKey::Length(len))
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

impl Serialize for Key32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Key32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Key32::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Key32 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Key32".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "contentEncoding": "base64",
            "description": "32 bytes, base64 (standard alphabet, padded)"
        })
    }
}

/// A key that is not base64 of 32 bytes.
#[derive(Debug, thiserror::Error)]
pub enum BadKey {
    /// Not base64 at all.
    #[error("key is not valid base64; expected 44 characters of standard base64")]
    Base64(#[source] base64::DecodeError),
    /// Base64, but of the wrong length.
    #[error("key decodes to {0} bytes; expected 32")]
    Length(usize),
}

/// The tenant-wide key card tokens are made with: the same on every kiosk of the tenant, so a card
/// has the same token in every store. Given to a kiosk at enrollment; the drivers make tokens with
/// it at the card boundary.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct TenantKey(Key32);

impl TenantKey {
    /// Wraps 32 key bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        TenantKey(Key32::from_bytes(bytes))
    }

    /// Copies key bytes; anything but 32 bytes is refused (a short key makes guessable tokens).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, BadKey> {
        <[u8; 32]>::try_from(bytes)
            .map(Self::from_bytes)
            .map_err(|_| BadKey::Length(bytes.len()))
    }

    /// Parses base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, BadKey> {
        Key32::from_base64(s).map(TenantKey)
    }

    /// The key as base64.
    pub fn to_base64(&self) -> String {
        self.0.to_base64()
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The card token of a card UID: HMAC-SHA256(tenant key, UID bytes) truncated to 128 bits,
    /// as 32 lowercase hex characters. Call it at the driver boundary and drop the UID.
    pub fn card_token(&self, uid: &[u8]) -> CardToken {
        // HMAC accepts keys of any length, so new_from_slice cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(self.as_bytes()) else {
            unreachable!("hmac takes keys of any length")
        };
        mac.update(uid);
        // The digest is no secret: its first half is the token, the rest is discarded.
        let digest = mac.finalize().into_bytes();
        let mut head = [0u8; 16];
        head.copy_from_slice(&digest[..16]);
        CardToken::from_bytes(head)
    }
}

impl fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantKey(<redacted>)")
    }
}

impl From<Key32> for TenantKey {
    fn from(key: Key32) -> Self {
        TenantKey(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_tokens_are_hmac_sha256_of_the_uid_truncated_to_128_bits() {
        let key = TenantKey::from_bytes([3; 32]);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[3; 32]).unwrap();
        mac.update(&[0xde, 0xad, 0xbe, 0xef]);
        let full = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            key.card_token(&[0xde, 0xad, 0xbe, 0xef]).as_str(),
            &full[..32]
        );
    }

    #[test]
    fn keys_of_any_other_length_than_32_bytes_are_refused() {
        assert!(matches!(
            TenantKey::from_slice(&[0; 16]),
            Err(BadKey::Length(16))
        ));
        assert!(TenantKey::from_slice(&[0; 32]).is_ok());
    }

    #[test]
    fn debug_output_never_shows_a_key() {
        let key = TenantKey::from_bytes([0xab; 32]);
        assert!(!format!("{key:?} {:?}", Key32::from_bytes([0xab; 32])).contains("ab"));
    }

    #[test]
    fn a_tenant_key_travels_as_the_base64_of_its_bytes() {
        let key = TenantKey::from_bytes([7; 32]);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{}\"", key.to_base64()));
        assert_eq!(serde_json::from_str::<TenantKey>(&json).unwrap(), key);
    }
}
