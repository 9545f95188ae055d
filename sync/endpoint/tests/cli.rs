//! The `crm-endpoint` binary: enrollment codes, campaign import, serving and graceful shutdown
//! on SIGTERM.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_crm-endpoint");

#[test]
fn enroll_code_and_campaign_import_work_on_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crm.db").display());
    let out = Command::new(BIN)
        .args([
            "enroll-code",
            "--db",
            &db,
            "--store",
            "centro",
            "--ttl",
            "2h",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8(out.stdout).unwrap();
    let code = code.trim();
    assert_eq!(code.len(), 14, "{code:?}");
    assert_eq!(code.matches('-').count(), 2);

    let file = dir.path().join("campaigns.json");
    let campaigns = crm_endpoint::demo::demo_campaigns();
    std::fs::write(&file, serde_json::to_string(&campaigns).unwrap()).unwrap();
    let out = Command::new(BIN)
        .args(["campaigns", "import", "--db", &db])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        campaigns.len()
    );

    let bad = Command::new(BIN)
        .args(["enroll-code", "--db", &db, "--store", "x", "--ttl", "3w"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

/// Kills the server if the test fails before stopping it.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn serve_answers_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crm.db").display());
    let mut child = Reaped(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", &db, "--demo"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map(Result::unwrap)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        .expect("serve prints its address");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("http://{addr}/v1/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(health["status"], "ok");
    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn a_store_gets_its_time_zone_from_a_command_and_a_wrong_name_or_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    let db = format!("sqlite://{}", path.display());
    let run = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    assert!(
        run(&["enroll-code", "--db", &db, "--store", "canarias"])
            .status
            .success()
    );

    let ok = run(&[
        "stores",
        "set-timezone",
        "--db",
        &db,
        "--store",
        "canarias",
        "Atlantic/Canary",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let tz: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT timezone FROM store_timezones WHERE store_id = 'canarias'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tz, "Atlantic/Canary");

    let bad = run(&[
        "stores",
        "set-timezone",
        "--db",
        &db,
        "--store",
        "canarias",
        "Madrid",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("\"Madrid\" is not an IANA time zone"), "{err}");
    let missing = run(&[
        "stores",
        "set-timezone",
        "--db",
        &db,
        "--store",
        "nowhere",
        "Europe/Madrid",
    ]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no store \"nowhere\""), "{err}");
}
