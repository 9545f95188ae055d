//! The kiosk's enrollment credentials (`credentials.toml` in the data directory, mode 0600): who
//! the kiosk is at the CRM endpoint, the secret it signs requests with and the tenant key its card
//! tokens are made with. Written by `kiosk provision` (or `kiosk demo`), read by `kiosk run`.
//!
//! The secrets never reach a log: `Debug` redacts them.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use kiosk_protocol::wire::{DeviceSecret, EnrollResponse, TenantKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

/// What enrollment gave the kiosk.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The endpoint the kiosk enrolled with.
    pub endpoint_url: String,
    /// The id the kiosk signs and journals as.
    pub kiosk_id: String,
    /// The store it belongs to.
    pub store_id: String,
    /// The store's name at the CRM.
    pub store_name: String,
    /// Request-signing secret.
    pub device_secret: DeviceSecret,
    /// Key of card tokens (HMAC of the card UID).
    pub tenant_key: TenantKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("endpoint_url", &self.endpoint_url)
            .field("kiosk_id", &self.kiosk_id)
            .field("store_id", &self.store_id)
            .field("store_name", &self.store_name)
            .field("device_secret", &"<redacted>")
            .field("tenant_key", &"<redacted>")
            .finish()
    }
}

/// Credentials that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file is missing: the kiosk was never provisioned.
    #[error("{path} does not exist: provision the kiosk first (`kiosk provision`)")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("cannot {action} {path}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid credentials.
    #[error("{path} is not a valid credentials file: {message}; provision the kiosk again")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Credentials {
    /// The credentials from an enrollment answer.
    pub fn from_enrollment(endpoint_url: &str, answer: EnrollResponse) -> Self {
        Credentials {
            endpoint_url: endpoint_url.trim_end_matches('/').to_owned(),
            kiosk_id: answer.kiosk_id,
            store_id: answer.store_id,
            store_name: answer.store_name,
            device_secret: answer.device_secret,
            tenant_key: answer.tenant_key,
        }
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CredentialsError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(source) => {
                return Err(CredentialsError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|e| CredentialsError::Invalid {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })
    }

    /// Writes `path` with mode 0600 (atomically: a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        self.save_owned(path, None)
    }

    /// [`Credentials::save`], the file owned by `owner` (root provisioning for the service
    /// user): see [`crate::paths::write_private`], which never follows a link.
    pub fn save_owned(
        &self,
        path: &Path,
        owner: Option<crate::paths::Owner>,
    ) -> Result<(), CredentialsError> {
        let text =
            Zeroizing::new(
                toml::to_string(self).map_err(|e| CredentialsError::Invalid {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?,
            );
        crate::paths::write_private(path, text.as_bytes(), owner).map_err(|source| {
            CredentialsError::Io {
                action: "write",
                path: path.to_owned(),
                source,
            }
        })
    }

    /// A key derived from the tenant key for one purpose (HMAC-SHA256 of the label): the same on
    /// every kiosk of the tenant, so one kiosk verifies what another signed, and unrelated to the
    /// card-token key itself.
    pub fn derived_key(&self, label: &str) -> Zeroizing<Vec<u8>> {
        derive(self.tenant_key.as_bytes(), label)
    }
}

/// HMAC-SHA256(`key`, `label`).
pub fn derive(key: &[u8], label: &str) -> Zeroizing<Vec<u8>> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(label.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn sample() -> Credentials {
        Credentials {
            endpoint_url: "http://127.0.0.1:9".into(),
            kiosk_id: "k-1".into(),
            store_id: "demo".into(),
            store_name: "Tienda demo".into(),
            device_secret: DeviceSecret::from_bytes([7; 32]),
            tenant_key: TenantKey::from_bytes([9; 32]),
        }
    }

    #[test]
    fn credentials_round_trip_through_a_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        sample().save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Credentials::load(&path).unwrap();
        assert_eq!(back.kiosk_id, "k-1");
        assert_eq!(back.device_secret.as_bytes(), &[7; 32]);
        assert_eq!(back.tenant_key.as_bytes(), &[9; 32]);
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let shown = format!("{:?}", sample());
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains("[7, 7"), "{shown}");
        assert!(!shown.contains("0707"), "{shown}");
    }

    #[test]
    fn a_missing_file_says_to_provision() {
        let err = Credentials::load(Path::new("/nonexistent/credentials.toml")).unwrap_err();
        assert!(err.to_string().contains("kiosk provision"), "{err}");
    }

    #[test]
    fn derived_keys_differ_by_label_and_from_the_tenant_key() {
        let c = sample();
        let a = c.derived_key("turn-qr-v1");
        let b = c.derived_key("coupon-qr-v1");
        assert_ne!(*a, *b);
        assert_ne!(a.as_slice(), c.tenant_key.as_bytes());
    }
}
