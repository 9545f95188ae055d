//! Signed releases: what a kiosk checks before anything of a new firmware package is installed.
//!
//! A release is the kiosk `.deb` built by `scripts/package`, described by a [`ReleaseManifest`]
//! (version, architecture, SHA-256 and size of the package file) and signed with the fleet's
//! ed25519 release key. The public half is pinned on each kiosk at provisioning
//! (`/etc/kiosk/release-key.pub`, root's, see [`RELEASE_KEY_PATH`]); the secret half never
//! leaves the release manager's machine. The CRM stores and hands out releases but cannot make
//! one: a compromised CRM can at most withhold or replay a genuinely signed release.
//!
//! Data flow: release manager (`crm-endpoint release-sign`) → CRM (`PUT /v1/admin/releases/…`,
//! rollout) → feed ([`crate::wire::ReleaseAssignment`]) → kiosk download → privileged helper
//! (`kiosk update apply`, which verifies again, as root, on its own copy) → dpkg.

use std::fmt;
use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where a provisioned kiosk keeps the fleet's release public key (root-owned, 0644). Kept out
/// of `site.toml` on purpose: a kiosk rolled back to a firmware that predates updates must still
/// read its site config.
pub const RELEASE_KEY_PATH: &str = "/etc/kiosk/release-key.pub";

/// Largest package a kiosk accepts (the amd64 release .deb is about 8 MiB): a bound on what a
/// download may write to the SD card.
pub const MAX_RELEASE_BYTES: u64 = 128 * 1024 * 1024;

/// Domain separation of the signed message (a signature over anything else never verifies).
const CONTEXT: &str = "kiosk-release-v1";

/// What a release signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// The package's `Version` (Debian version syntax, e.g. `0.2.0` or `0.2.0-1`).
    pub version: String,
    /// The package's `Architecture` (`arm64`, `armhf`, `amd64`).
    pub arch: String,
    /// SHA-256 of the whole `.deb` file, lowercase hex.
    pub sha256: String,
    /// Size of the `.deb` file in bytes.
    pub size: u64,
}

/// A manifest and its signature: the `.sig` file a release manager uploads beside the `.deb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedRelease {
    /// What is signed.
    #[serde(flatten)]
    pub manifest: ReleaseManifest,
    /// ed25519 signature of [`ReleaseManifest::signed_message`], base64 (64 bytes).
    pub signature: String,
}

/// Why a release was refused. Each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The public or secret key file is not a key.
    #[error("release key: {0}")]
    BadKey(String),
    /// No signature, or not one at all.
    #[error(
        "release {version} ({arch}) is not signed: {why}; sign it with `crm-endpoint release-sign`"
    )]
    Unsigned {
        /// The release.
        version: String,
        /// Its architecture.
        arch: String,
        /// What is wrong with the signature field.
        why: String,
    },
    /// The signature does not verify with the pinned key.
    #[error(
        "release {version} ({arch}): the signature does not match the pinned release key; refused"
    )]
    BadSignature {
        /// The release.
        version: String,
        /// Its architecture.
        arch: String,
    },
    /// The package bytes are not the ones the manifest describes.
    #[error("release {version} ({arch}): the package is not the signed one ({what}); refused")]
    Tampered {
        /// The release.
        version: String,
        /// Its architecture.
        arch: String,
        /// What differs (size or SHA-256).
        what: String,
    },
    /// A manifest field is out of bounds.
    #[error("release manifest: {0}")]
    Malformed(String),
    /// The package could not be read.
    #[error("cannot read the package")]
    Io(#[from] std::io::Error),
}

impl ReleaseManifest {
    /// The manifest of the package bytes read from `reader`, for `version` and `arch`.
    pub fn of_package(
        version: &str,
        arch: &str,
        reader: impl Read,
    ) -> Result<ReleaseManifest, ReleaseError> {
        let (sha256, size) = sha256_of(reader)?;
        let m = ReleaseManifest {
            version: version.to_owned(),
            arch: arch.to_owned(),
            sha256,
            size,
        };
        m.check()?;
        Ok(m)
    }

    /// Field bounds: a version in Debian's characters, a known-looking arch, a hex digest, a
    /// size within [`MAX_RELEASE_BYTES`].
    pub fn check(&self) -> Result<(), ReleaseError> {
        let v = &self.version;
        if v.is_empty()
            || v.len() > 64
            || !v.starts_with(|c: char| c.is_ascii_digit())
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".+-~:".contains(&b))
        {
            return Err(ReleaseError::Malformed(format!(
                "version {v:?}: a Debian version (digits first, then letters, digits and . + - ~ :), at most 64 characters"
            )));
        }
        if !(1..=16).contains(&self.arch.len())
            || !self
                .arch
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(ReleaseError::Malformed(format!(
                "arch {:?}: a Debian architecture such as arm64, armhf or amd64",
                self.arch
            )));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ReleaseError::Malformed(
                "sha256: 64 lowercase hex digits".to_owned(),
            ));
        }
        if self.size == 0 || self.size > MAX_RELEASE_BYTES {
            return Err(ReleaseError::Malformed(format!(
                "size {}: 1 to {MAX_RELEASE_BYTES} bytes",
                self.size
            )));
        }
        Ok(())
    }

    /// The exact bytes signed: a context line, then one field a line. No JSON canonicalisation
    /// to get wrong.
    pub fn signed_message(&self) -> Vec<u8> {
        format!(
            "{CONTEXT}\nversion {}\narch {}\nsha256 {}\nsize {}\n",
            self.version, self.arch, self.sha256, self.size
        )
        .into_bytes()
    }

    /// Signs the manifest.
    pub fn sign(&self, key: &ReleaseSigningKey) -> SignedRelease {
        SignedRelease {
            manifest: self.clone(),
            signature: B64.encode(key.0.sign(&self.signed_message()).to_bytes()),
        }
    }
}

impl SignedRelease {
    /// Checks the signature against the pinned key (the package bytes are checked by
    /// [`SignedRelease::verify_package`]).
    pub fn verify_signature(&self, key: &ReleasePublicKey) -> Result<(), ReleaseError> {
        let sig = self.signature_of_form()?;
        let m = &self.manifest;
        key.0
            .verify_strict(&m.signed_message(), &sig)
            .map_err(|_| ReleaseError::BadSignature {
                version: m.version.clone(),
                arch: m.arch.clone(),
            })
    }

    /// The manifest in bounds and a signature that is one (64 bytes of base64); whether it
    /// verifies is [`SignedRelease::verify_signature`]'s question.
    pub fn check_form(&self) -> Result<(), ReleaseError> {
        self.signature_of_form().map(|_| ())
    }

    fn signature_of_form(&self) -> Result<ed25519_dalek::Signature, ReleaseError> {
        self.manifest.check()?;
        let m = &self.manifest;
        let unsigned = |why: &str| ReleaseError::Unsigned {
            version: m.version.clone(),
            arch: m.arch.clone(),
            why: why.to_owned(),
        };
        if self.signature.trim().is_empty() {
            return Err(unsigned("the signature is empty"));
        }
        let bytes = B64
            .decode(self.signature.trim())
            .map_err(|_| unsigned("the signature is not base64"))?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| unsigned("the signature is not 64 bytes"))?;
        Ok(ed25519_dalek::Signature::from_bytes(&bytes))
    }

    /// Checks the signature, then that `package` is exactly the signed file (size and SHA-256).
    /// Reads at most one byte past the signed size.
    pub fn verify_package(
        &self,
        key: &ReleasePublicKey,
        package: impl Read,
    ) -> Result<(), ReleaseError> {
        self.verify_signature(key)?;
        let m = &self.manifest;
        let (sha256, size) = sha256_of(package.take(m.size.saturating_add(1)))?;
        let tampered = |what: String| ReleaseError::Tampered {
            version: m.version.clone(),
            arch: m.arch.clone(),
            what,
        };
        if size != m.size {
            return Err(tampered(format!(
                "{size}{} bytes, signed {}",
                if size > m.size { "+" } else { "" },
                m.size
            )));
        }
        if sha256 != m.sha256 {
            return Err(tampered(format!("SHA-256 {sha256}, signed {}", m.sha256)));
        }
        Ok(())
    }
}

/// `GET /v1/kiosks/{kiosk_id}/release` answer: the release this kiosk should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseAssignment {
    /// The release to run, with its signature (none: keep what runs).
    pub release: Option<SignedRelease>,
    /// The release the kiosk runs now, when the CRM stores it: what the kiosk downloads to roll
    /// back to when its update helper keeps no package of it yet (a kiosk installed by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<SignedRelease>,
    /// The operator's signed pin of this kiosk to `release`, when the CRM holds one: the only
    /// thing that lets a kiosk install a release older than the one it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<SignedPin>,
    /// The operator pinned this kiosk to `release`: it is tried even if this kiosk rolled it
    /// back before (a rollout's release it rolled back is not retried).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

/// Domain separation of a pin's signed message.
const PIN_CONTEXT: &str = "kiosk-pin-v1";

/// Longest a signed pin may be valid for (days): a downgrade decision is for one incident.
pub const MAX_PIN_DAYS: u32 = 90;

/// The operator's decision that one kiosk may run one release, older than the one it runs if
/// need be (`crm-endpoint release-sign-pin`, signed with the release key the kiosks pin). A
/// kiosk refuses any downgrade without one, so a CRM that offers an old, genuinely signed
/// release with a known flaw gets it refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PinManifest {
    /// The kiosk it is for.
    pub kiosk_id: String,
    /// The release it may run.
    pub version: String,
    /// Unix seconds after which the pin no longer lets the kiosk downgrade.
    pub not_after: i64,
}

/// A pin and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedPin {
    /// What is signed.
    #[serde(flatten)]
    pub manifest: PinManifest,
    /// ed25519 signature of [`PinManifest::signed_message`], base64 (64 bytes).
    pub signature: String,
}

impl PinManifest {
    /// The exact bytes signed.
    pub fn signed_message(&self) -> Vec<u8> {
        format!(
            "{PIN_CONTEXT}\nkiosk {}\nversion {}\nnot_after {}\n",
            self.kiosk_id, self.version, self.not_after
        )
        .into_bytes()
    }

    /// Signs the pin.
    pub fn sign(&self, key: &ReleaseSigningKey) -> SignedPin {
        SignedPin {
            manifest: self.clone(),
            signature: B64.encode(key.0.sign(&self.signed_message()).to_bytes()),
        }
    }
}

impl SignedPin {
    /// Whether this pin, signed with `key`, lets `kiosk_id` run `version` at `now_s` (Unix
    /// seconds). Each refusal says which of the three it is.
    pub fn allows(
        &self,
        key: &ReleasePublicKey,
        kiosk_id: &str,
        version: &str,
        now_s: i64,
    ) -> Result<(), ReleaseError> {
        let m = &self.manifest;
        let sig = B64
            .decode(self.signature.trim())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| ed25519_dalek::Signature::from_bytes(&b))
            .ok_or_else(|| {
                ReleaseError::Malformed("the pin's signature is not 64 bytes of base64".to_owned())
            })?;
        key.0
            .verify_strict(&m.signed_message(), &sig)
            .map_err(|_| {
                ReleaseError::Malformed(
                    "the pin's signature does not match the pinned release key".to_owned(),
                )
            })?;
        if m.kiosk_id != kiosk_id || m.version != version {
            return Err(ReleaseError::Malformed(format!(
                "the pin is for kiosk {} and release {}, not kiosk {kiosk_id} and release {version}",
                m.kiosk_id, m.version
            )));
        }
        if now_s > m.not_after {
            return Err(ReleaseError::Malformed(format!(
                "the pin to {version} expired at {} (Unix seconds); sign a new one",
                m.not_after
            )));
        }
        Ok(())
    }
}

/// Path a kiosk asks for its assignment at (exactly what it signs); `downloaded` reports the
/// release it holds downloaded and verified, waiting for a quiet moment (the rollout's view).
pub fn assignment_path(
    kiosk_id: &str,
    arch: &str,
    version: &str,
    downloaded: Option<&str>,
) -> String {
    match downloaded {
        Some(d) => {
            format!("/v1/kiosks/{kiosk_id}/release?arch={arch}&version={version}&downloaded={d}")
        }
        None => format!("/v1/kiosks/{kiosk_id}/release?arch={arch}&version={version}"),
    }
}

/// Path of a piece of a release package (exactly what the kiosk signs).
pub fn piece_path(kiosk_id: &str, version: &str, arch: &str, offset: u64, length: u64) -> String {
    format!("/v1/kiosks/{kiosk_id}/releases/{version}/{arch}?offset={offset}&length={length}")
}

/// SHA-256 (hex) and length of everything `reader` yields.
pub fn sha256_of(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 64 * 1024];
    let mut size = 0_u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// The fleet's release public key (what kiosks pin), base64 of 32 bytes in its file.
#[derive(Clone, PartialEq, Eq)]
pub struct ReleasePublicKey(VerifyingKey);

impl ReleasePublicKey {
    /// Parses the base64 text of a public key file (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<Self, ReleaseError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| ReleaseError::BadKey("the public key is not base64".to_owned()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ReleaseError::BadKey("the public key is not 32 bytes".to_owned()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(ReleasePublicKey)
            .map_err(|_| ReleaseError::BadKey("not an ed25519 public key".to_owned()))
    }

    /// The key as its file holds it (base64).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }
}

impl fmt::Debug for ReleasePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReleasePublicKey({})", self.to_base64())
    }
}

/// The release manager's secret key (base64 of the 32-byte seed in its file, 0600).
pub struct ReleaseSigningKey(SigningKey);

impl ReleaseSigningKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        ReleaseSigningKey(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Parses the base64 text of a secret key file.
    pub fn parse(text: &str) -> Result<Self, ReleaseError> {
        let bytes = zeroize::Zeroizing::new(
            B64.decode(text.trim())
                .map_err(|_| ReleaseError::BadKey("the secret key is not base64".to_owned()))?,
        );
        let seed: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ReleaseError::BadKey("the secret key is not 32 bytes".to_owned()))?;
        Ok(ReleaseSigningKey(SigningKey::from_bytes(seed)))
    }

    /// The key as its file holds it (base64): keep it secret.
    pub fn to_base64(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(B64.encode(self.0.to_bytes()))
    }

    /// Its public half.
    pub fn public(&self) -> ReleasePublicKey {
        ReleasePublicKey(self.0.verifying_key())
    }
}

impl fmt::Debug for ReleaseSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReleaseSigningKey(public {})", self.public().to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_pin_allows_only_its_kiosk_its_version_and_until_it_expires() {
        let key = ReleaseSigningKey::generate();
        let pin = PinManifest {
            kiosk_id: "k-1".into(),
            version: "0.1.9-1".into(),
            not_after: 1_000,
        }
        .sign(&key);
        pin.allows(&key.public(), "k-1", "0.1.9-1", 999).unwrap();
        let why = |r: Result<(), ReleaseError>| r.unwrap_err().to_string();
        assert!(why(pin.allows(&key.public(), "k-2", "0.1.9-1", 999)).contains("not kiosk k-2"));
        assert!(why(pin.allows(&key.public(), "k-1", "0.1.8-1", 999)).contains("release 0.1.8-1"));
        assert!(why(pin.allows(&key.public(), "k-1", "0.1.9-1", 1_001)).contains("expired"));
        let other = ReleaseSigningKey::generate();
        assert!(why(pin.allows(&other.public(), "k-1", "0.1.9-1", 999)).contains("does not match"));
        let mut forged = pin.clone();
        forged.manifest.not_after = 9_999;
        assert!(
            why(forged.allows(&key.public(), "k-1", "0.1.9-1", 2_000)).contains("does not match")
        );
    }

    fn signed(key: &ReleaseSigningKey, package: &[u8]) -> SignedRelease {
        ReleaseManifest::of_package("0.2.0", "arm64", package)
            .unwrap()
            .sign(key)
    }

    #[test]
    fn a_signed_package_verifies_and_any_change_to_it_is_refused() {
        let key = ReleaseSigningKey::generate();
        let pkg = b"!<arch>\ndebian-binary...".to_vec();
        let sig = signed(&key, &pkg);
        sig.verify_package(&key.public(), pkg.as_slice()).unwrap();

        let mut flipped = pkg.clone();
        flipped[9] ^= 1;
        let err = sig
            .verify_package(&key.public(), flipped.as_slice())
            .unwrap_err();
        assert!(matches!(err, ReleaseError::Tampered { .. }), "{err}");
        let mut longer = pkg.clone();
        longer.push(0);
        let err = sig
            .verify_package(&key.public(), longer.as_slice())
            .unwrap_err();
        assert!(err.to_string().contains("bytes, signed"), "{err}");
    }

    #[test]
    fn a_manifest_changed_after_signing_or_another_key_is_refused() {
        let key = ReleaseSigningKey::generate();
        let pkg = b"package".to_vec();
        let mut sig = signed(&key, &pkg);
        let other = ReleaseSigningKey::generate();
        let err = sig.verify_signature(&other.public()).unwrap_err();
        assert!(matches!(err, ReleaseError::BadSignature { .. }), "{err}");
        sig.manifest.version = "9.9.9".to_owned();
        let err = sig.verify_signature(&key.public()).unwrap_err();
        assert!(matches!(err, ReleaseError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn an_unsigned_release_is_refused_naming_the_fix() {
        let key = ReleaseSigningKey::generate();
        let mut sig = signed(&key, b"package");
        sig.signature = String::new();
        let err = sig.verify_signature(&key.public()).unwrap_err();
        assert!(err.to_string().contains("is not signed"), "{err}");
        assert!(err.to_string().contains("release-sign"), "{err}");
    }

    #[test]
    fn keys_round_trip_through_their_files() {
        let key = ReleaseSigningKey::generate();
        let again = ReleaseSigningKey::parse(&key.to_base64()).unwrap();
        assert_eq!(again.public(), key.public());
        let public = ReleasePublicKey::parse(&format!("{}\n", key.public().to_base64())).unwrap();
        assert_eq!(public, key.public());
        assert!(ReleasePublicKey::parse("not a key").is_err());
    }

    #[test]
    fn a_manifest_out_of_bounds_is_refused_before_any_signature_check() {
        let key = ReleaseSigningKey::generate();
        let mut sig = signed(&key, b"package");
        sig.manifest.version = "../../etc/passwd".to_owned();
        let err = sig.verify_signature(&key.public()).unwrap_err();
        assert!(matches!(err, ReleaseError::Malformed(_)), "{err}");
    }
}
