//! Personal data at rest: the device key and the AEAD that seals personal fields before they
//! touch the SD card (journal rows of events with personal data, cached customer profiles).
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per message (no counter to persist, no nonce
//! reuse across power cuts) and the row's identity as associated data, so a sealed value moved to
//! another row does not open. The key is 32 random bytes in a 0600 file in the data directory;
//! losing it makes the sealed data unreadable, which is the point for a stolen SD card only when
//! the key lives elsewhere (see docs/SECURITY.md for where production keeps it).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

/// Prefix of a sealed value stored as text: `sealed:v1:<base64(nonce || ciphertext)>`.
pub const SEALED_PREFIX: &str = "sealed:v1:";

const NONCE_LEN: usize = 24;

/// Errors of the device key and the sealing of personal data.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key file could not be read or created.
    #[error("device key at {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What the filesystem said.
        #[source]
        source: std::io::Error,
    },
    /// The key file exists but is not 32 bytes.
    #[error(
        "device key at {path} is {len} bytes, expected 32: restore it from backup or re-provision"
    )]
    KeyLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The key file can be read by other users.
    #[error("device key at {path} has mode {mode:o}: run `chmod 600 {path}`")]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A sealed value did not open: wrong key, wrong row or tampered data.
    #[error("sealed value does not open with this device key (wrong key, moved or tampered)")]
    Open,
    /// A value that should be sealed is not in the sealed format.
    #[error("value is not sealed (missing `{SEALED_PREFIX}` prefix or bad base64)")]
    Format,
}

/// The device key: seals and opens personal data. Never logged (Debug prints nothing secret).
#[derive(Clone)]
pub struct DeviceKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

impl DeviceKey {
    /// A key from raw bytes (tests, and keys delivered by provisioning).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            key: Zeroizing::new(bytes),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self { key }
    }

    /// Loads the key from `path`, creating it (mode 0600, fsynced) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let io = |source| CryptoError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(CryptoError::KeyPermissions {
                        path: path.to_owned(),
                        mode,
                    });
                }
                let key: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| CryptoError::KeyLength {
                            path: path.to_owned(),
                            len: bytes.len(),
                        })?;
                Ok(Self::from_bytes(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                file.write_all(key.key.as_ref()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }

    /// Seals `plaintext`, bound to `aad` (e.g. the event id), as printable text.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Encryption only fails for messages beyond 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", B64.encode(out))
    }

    /// Opens a value made by [`seal`](Self::seal) with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(CryptoError::Format)?;
        let raw = B64.decode(body).map_err(|_| CryptoError::Format)?;
        if raw.len() < NONCE_LEN {
            return Err(CryptoError::Format);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }
}

/// Whether a stored text value is sealed.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_with_the_same_key_and_aad_only() {
        let key = DeviceKey::generate();
        let sealed = key.seal(b"Ana Garcia", b"row-1");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("Ana"));
        assert_eq!(
            key.open(&sealed, b"row-1").unwrap().as_slice(),
            b"Ana Garcia"
        );
        assert!(matches!(
            key.open(&sealed, b"row-2"),
            Err(CryptoError::Open)
        ));
        assert!(matches!(
            DeviceKey::generate().open(&sealed, b"row-1"),
            Err(CryptoError::Open)
        ));
    }

    #[test]
    fn tampered_sealed_value_is_refused() {
        let key = DeviceKey::generate();
        let sealed = key.seal(b"secret", b"a");
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(key.open(&tampered, b"a").is_err());
        assert!(matches!(
            key.open("plain text", b"a"),
            Err(CryptoError::Format)
        ));
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let a = DeviceKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = DeviceKey::load_or_create(&path).unwrap();
        assert_eq!(b.open(&a.seal(b"x", b"y"), b"y").unwrap().as_slice(), b"x");
    }

    #[test]
    fn world_readable_key_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        DeviceKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = DeviceKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
