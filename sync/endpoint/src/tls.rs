//! TLS for [`crate::serve`]: the rustls server configuration (ring provider) from PEM. The
//! handshakes run in each admitted connection's own task ([`kiosk_serve::serve`]), bounded by
//! its header timeout, so a slow or silent client never holds up the others.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate PEM holds no certificate.
    #[error("no certificate in the certificate PEM; pass a PEM with BEGIN CERTIFICATE blocks")]
    NoCertificate,
    /// The key PEM holds no private key.
    #[error("no private key in the key PEM; pass a PEM with a BEGIN PRIVATE KEY block")]
    NoKey,
    /// The PEM text is broken.
    #[error("pem is malformed")]
    Pem(#[source] std::io::Error),
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("certificate and key are not usable together")]
    Rustls(#[from] rustls::Error),
}

/// A rustls server configuration from PEM text (certificate chain, private key).
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(TlsError::Pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(TlsError::Pem)?
        .ok_or(TlsError::NoKey)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A rustls server configuration from PEM files.
pub fn server_config_from_files(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    server_config_from_pem(&read(cert)?, &read(key)?)
}
