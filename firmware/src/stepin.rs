//! Step-In: devices near the store (an ATM, a bill-payment machine) issue turns and call a staff
//! member through the kiosk's staff listener (docs/STEP-IN.md).
//!
//! ```text
//!  device ──signed POST /api/stepin/v1/...──> ui routes ──[`StepIn::verify`]──> StaffRequest
//!        ──> executor (issue a turn / raise an assistance request) ──> answer to the device
//! ```
//!
//! Each device has its own 32-byte key (`[[stepin.devices]]`). A request is signed as the
//! kiosks' own requests are (HMAC-SHA256 over the method, the path and query, the timestamp
//! and the body's SHA-256), with a nonce added to the signed string: a request is refused when
//! unsigned, signed badly or by an unknown device, stamped more than [`WINDOW_S`] away from
//! the kiosk's clock, or carrying a nonce the device used within the window.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::StepInDevice;

/// Header naming the device.
pub const HEADER_DEVICE: &str = "x-stepin-device";
/// Header with the unix time (seconds) the request was signed at.
pub const HEADER_TIMESTAMP: &str = "x-stepin-timestamp";
/// Header with the request's nonce (16 to 64 characters: letters, digits, `-`, `_`).
pub const HEADER_NONCE: &str = "x-stepin-nonce";
/// Header with the lowercase hex HMAC-SHA256 of [`string_to_sign`].
pub const HEADER_SIGNATURE: &str = "x-stepin-signature";

/// How far, in seconds, a request's timestamp may be from the kiosk's clock, either way.
pub const WINDOW_S: i64 = 120;

/// Most nonces remembered at once (a device signing faster than this in a window is refused).
const MAX_NONCES: usize = 100_000;

type HmacSha256 = Hmac<Sha256>;

/// The string a device signs: `METHOD\npath-and-query\ntimestamp\nnonce\nhex SHA-256(body)`.
pub fn string_to_sign(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path_and_query,
        timestamp,
        nonce,
        kiosk_protocol::auth::body_sha256_hex(body)
    )
}

/// Lowercase hex signature of a request (what a device computes; the tests sign with it).
pub fn sign(
    key: &[u8; 32],
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    let mut m = mac(key);
    m.update(string_to_sign(method, path_and_query, timestamp, nonce, body).as_bytes());
    hex::encode(m.finalize().into_bytes())
}

fn mac(key: &[u8; 32]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// Why a Step-In request was refused (each is a 401 with its code and message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A header is missing.
    #[error("unsigned request: missing {0}")]
    Unsigned(&'static str),
    /// The device is not in `[[stepin.devices]]`.
    #[error("device `{0}` is not configured in [[stepin.devices]]")]
    UnknownDevice(String),
    /// A header is malformed.
    #[error("{0}")]
    Malformed(String),
    /// The signature does not match.
    #[error(
        "signature does not match: sign METHOD\\npath-and-query\\ntimestamp\\nnonce\\nsha256(body) with the device's key"
    )]
    BadSignature,
    /// The timestamp is outside the window.
    #[error(
        "timestamp {timestamp} is {skew_s} s away from the kiosk's clock (window ±{WINDOW_S} s); check the device's clock"
    )]
    StaleTimestamp {
        /// The request's timestamp.
        timestamp: i64,
        /// Request time minus kiosk time.
        skew_s: i64,
    },
    /// The nonce was used before within the window.
    #[error("nonce already used: a replayed request; sign each request with a fresh nonce")]
    Replayed,
    /// Too many nonces in the window.
    #[error("too many requests in the last {WINDOW_S} s; slow down")]
    TooMany,
}

impl Refusal {
    /// A short machine-readable code (`bad_signature`, `replayed_nonce`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unsigned(_) => "unsigned",
            Refusal::UnknownDevice(_) => "unknown_device",
            Refusal::Malformed(_) => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::StaleTimestamp { .. } => "stale_timestamp",
            Refusal::Replayed => "replayed_nonce",
            Refusal::TooMany => "too_many_requests",
        }
    }
}

/// A configured device.
#[derive(Clone)]
pub struct Device {
    /// Its id.
    pub id: String,
    /// Its name as staff know it.
    pub name: String,
    key: [u8; 32],
}

/// The devices allowed to use the API and the nonces seen lately.
pub struct StepIn {
    devices: HashMap<String, Device>,
    /// `(device, nonce)` → the request's timestamp, kept while within the window.
    nonces: Mutex<HashMap<(String, String), i64>>,
}

impl std::fmt::Debug for StepIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepIn")
            .field("devices", &self.devices.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl StepIn {
    /// The devices of the config (validated at load: a key that does not decode is skipped
    /// with an error in the log).
    pub fn new(devices: &[StepInDevice]) -> Self {
        let devices = devices
            .iter()
            .filter_map(|d| match d.key_bytes() {
                Ok(key) => Some((
                    d.id.clone(),
                    Device {
                        id: d.id.clone(),
                        name: d.name.clone(),
                        key,
                    },
                )),
                Err(e) => {
                    tracing::error!(device = %d.id, error = %e, "Step-In device skipped");
                    None
                }
            })
            .collect();
        StepIn {
            devices,
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any device is configured.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Checks a request; returns its device. `header` reads a request header; `now` is the
    /// kiosk's clock in unix seconds. The nonce is spent only by a request signed correctly.
    pub fn verify<'a>(
        &self,
        method: &str,
        path_and_query: &str,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
        now: i64,
    ) -> Result<&Device, Refusal> {
        let get = |name: &'static str| header(name).ok_or(Refusal::Unsigned(name));
        let id = get(HEADER_DEVICE)?;
        let timestamp = get(HEADER_TIMESTAMP)?;
        let nonce = get(HEADER_NONCE)?;
        let signature = get(HEADER_SIGNATURE)?;
        let device = self
            .devices
            .get(id)
            .ok_or_else(|| Refusal::UnknownDevice(id.chars().take(32).collect()))?;
        let timestamp: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| Refusal::Malformed(format!("{HEADER_TIMESTAMP} is not unix seconds")))?;
        let nonce_ok = (16..=64).contains(&nonce.len())
            && nonce
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !nonce_ok {
            return Err(Refusal::Malformed(format!(
                "{HEADER_NONCE} must be 16 to 64 letters, digits, `-` or `_` (a random hex string will do)"
            )));
        }
        let given = hex::decode(signature.trim())
            .ok()
            .filter(|g| g.len() == 32)
            .ok_or_else(|| {
                Refusal::Malformed(format!("{HEADER_SIGNATURE} is not 64 hex characters"))
            })?;
        let expected = {
            let mut m = mac(&device.key);
            m.update(string_to_sign(method, path_and_query, timestamp, nonce, body).as_bytes());
            m.finalize().into_bytes()
        };
        if !bool::from(expected.as_slice().ct_eq(&given)) {
            return Err(Refusal::BadSignature);
        }
        let skew_s = timestamp.saturating_sub(now);
        if skew_s.unsigned_abs() > WINDOW_S.unsigned_abs() {
            return Err(Refusal::StaleTimestamp { timestamp, skew_s });
        }
        let mut nonces = self
            .nonces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A nonce older than the window cannot come back: its timestamp would be refused.
        nonces.retain(|_, at| now.saturating_sub(*at) <= WINDOW_S);
        if nonces.len() >= MAX_NONCES {
            return Err(Refusal::TooMany);
        }
        if nonces
            .insert((device.id.clone(), nonce.to_owned()), timestamp)
            .is_some()
        {
            return Err(Refusal::Replayed);
        }
        Ok(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str, key: [u8; 32]) -> StepInDevice {
        use base64::Engine as _;
        StepInDevice {
            id: id.into(),
            name: format!("Cajero {id}"),
            key: base64::engine::general_purpose::STANDARD.encode(key),
        }
    }

    fn headers<'a>(pairs: &'a [(&'static str, String)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    fn signed(
        key: &[u8; 32],
        id: &str,
        ts: i64,
        nonce: &str,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        vec![
            (HEADER_DEVICE, id.to_owned()),
            (HEADER_TIMESTAMP, ts.to_string()),
            (HEADER_NONCE, nonce.to_owned()),
            (
                HEADER_SIGNATURE,
                sign(key, "POST", "/api/stepin/v1/turns", ts, nonce, body),
            ),
        ]
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn the_signature_is_the_one_docs_step_in_computes_in_python_and_openssl() {
        // The same inputs through docs/STEP-IN.md's Python and shell examples.
        assert_eq!(
            sign(
                &[0x5a; 32],
                "POST",
                "/api/stepin/v1/turns",
                1_765_000_000,
                "6f1c0d2a9b8e4f3a6f1c0d2a9b8e4f3a",
                br#"{"service":"A"}"#,
            ),
            "98d25d0a72fea0bf41d959efbe20ec0709dff093f22a38f2ce18f0d1c253f1fb"
        );
    }

    #[test]
    fn a_signed_request_passes_once_and_its_replay_is_refused() {
        let key = [7u8; 32];
        let s = StepIn::new(&[config("atm-1", key)]);
        let body = br#"{"service":"A"}"#;
        let h = signed(&key, "atm-1", NOW, "0123456789abcdef", body);
        let d = s
            .verify("POST", "/api/stepin/v1/turns", headers(&h), body, NOW + 5)
            .expect("signed");
        assert_eq!(d.name, "Cajero atm-1");
        assert_eq!(
            s.verify("POST", "/api/stepin/v1/turns", headers(&h), body, NOW + 6)
                .err(),
            Some(Refusal::Replayed)
        );
    }

    #[test]
    fn unsigned_tampered_foreign_and_stale_requests_are_refused() {
        let key = [7u8; 32];
        let s = StepIn::new(&[config("atm-1", key)]);
        let body = br#"{"service":"A"}"#;
        let none: Vec<(&'static str, String)> = Vec::new();
        assert_eq!(
            s.verify("POST", "/api/stepin/v1/turns", headers(&none), body, NOW)
                .err()
                .map(|r| r.code()),
            Some("unsigned")
        );
        let h = signed(&key, "atm-1", NOW, "0123456789abcdef", body);
        assert_eq!(
            s.verify(
                "POST",
                "/api/stepin/v1/turns",
                headers(&h),
                b"{\"service\":\"B\"}",
                NOW
            )
            .err(),
            Some(Refusal::BadSignature)
        );
        let other = signed(&[8u8; 32], "atm-1", NOW, "0123456789abcdeg", body);
        assert_eq!(
            s.verify("POST", "/api/stepin/v1/turns", headers(&other), body, NOW)
                .err(),
            Some(Refusal::BadSignature)
        );
        let old = signed(&key, "atm-1", NOW - 121, "0123456789abcdeh", body);
        assert_eq!(
            s.verify("POST", "/api/stepin/v1/turns", headers(&old), body, NOW)
                .err()
                .map(|r| r.code()),
            Some("stale_timestamp")
        );
        let unknown = signed(&key, "atm-2", NOW, "0123456789abcdei", body);
        assert_eq!(
            s.verify("POST", "/api/stepin/v1/turns", headers(&unknown), body, NOW)
                .err()
                .map(|r| r.code()),
            Some("unknown_device")
        );
        // A badly signed request does not spend the nonce of a good one.
        let good = signed(&key, "atm-1", NOW, "0123456789abcdeg", body);
        assert!(
            s.verify("POST", "/api/stepin/v1/turns", headers(&good), body, NOW)
                .is_ok()
        );
    }
}
