//! The endpoint's PostgreSQL store over TLS, against a throwaway server (Debian's `postgresql`)
//! with a certificate from a CA made here, and `hostssl` only for the endpoint's database: a
//! connection that gets in used TLS. `sslmode` as libpq reads it: `verify-full` checks the chain
//! and the name, `verify-ca` the chain, `require` encrypts; `disable` is refused by the server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use crm_endpoint::testing::TempPostgres;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA, and a server certificate it signed for `names`.
fn pki(names: &[&str]) -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), server.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_connects_over_tls_as_sslmode_says_and_refuses_a_server_it_cannot_verify() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    // The server's certificate names 127.0.0.1 (the URL's host) and localhost.
    let (ca, cert, key) = pki(&["127.0.0.1", "localhost"]);
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    let (other_ca, _, _) = pki(&["127.0.0.1"]);
    let other_ca_path = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_path, &other_ca).unwrap();

    let pg = tokio::task::spawn_blocking(move || TempPostgres::start_tls(&cert, &key))
        .await
        .unwrap()
        .expect("a throwaway PostgreSQL server with TLS");
    let url = pg.fresh_database().await.unwrap();
    let with = |q: String| format!("{url}?{q}");

    // verify-full: chain and name checked; the session is encrypted (pg_stat_ssl says so).
    let db = crm_endpoint::db::open(&with(format!(
        "sslmode=verify-full&sslrootcert={}",
        ca_path.display()
    )))
    .await
    .expect("verify-full with the right CA");
    assert_eq!(db.kind().as_str(), "postgres");
    drop(db);

    // require without a root certificate: encrypted, as libpq does.
    crm_endpoint::db::open(&with("sslmode=require".into()))
        .await
        .expect("require");

    // A server signed by another CA is refused under verify-full and verify-ca.
    for mode in ["verify-full", "verify-ca"] {
        let err = crm_endpoint::db::open(&with(format!(
            "sslmode={mode}&sslrootcert={}",
            other_ca_path.display()
        )))
        .await
        .err()
        .unwrap_or_else(|| panic!("{mode} accepted a server of another CA"));
        let text = format!("{err:?}");
        assert!(
            text.to_lowercase().contains("certificate"),
            "{mode}: {text}"
        );
    }
    // No TLS: the server accepts only TLS for this database.
    assert!(
        crm_endpoint::db::open(&with("sslmode=disable".into()))
            .await
            .is_err(),
        "the server takes only TLS here"
    );
    // verify-full needs the CA, and a bad mode is named.
    let err = crm_endpoint::db::open(&with("sslmode=verify-full".into()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("needs sslrootcert"), "{err}");
    let err = crm_endpoint::db::open(&with("sslmode=allow-maybe".into()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("allow-maybe"), "{err}");
}
