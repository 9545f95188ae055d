//! The OpenAPI contract, proved by schemathesis against the real `crm-endpoint` binary: every
//! operation of `/openapi.json` is fuzzed with schema-valid and schema-invalid requests (admin
//! routes with the admin token, kiosk routes signed as an enrolled kiosk signs them, by
//! `tests/schemathesis/hooks.py`), and the run fails on any server error, any answer that does
//! not match its documented schema, status or content type, any invalid request accepted and any
//! valid one refused.
//!
//! schemathesis is pinned (`tests/schemathesis/requirements.txt`) and installed by
//! `scripts/test-setup` into a venv under the target directory. Without it this test fails and
//! says how to install it: it never skips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PINNED: &str = "4.32.5";
const ADMIN: &str = "schemathesis-admin-token-of-at-least-32-characters";
/// Examples per operation and phase: about 20,000 requests in a few minutes on a loaded machine.
const MAX_EXAMPLES: &str = "100";
/// A fixed seed: a failure reproduces with the same command.
const SEED: &str = "18";

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis")
}

/// The venv's schemathesis (`CRM_SCHEMATHESIS` overrides).
fn schemathesis() -> PathBuf {
    std::env::var_os("CRM_SCHEMATHESIS").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-venv/bin/schemathesis"),
        PathBuf::from,
    )
}

/// The endpoint process, killed when the test ends however it ends.
struct Endpoint(Child);

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> reqwest::Response {
    client
        .post(url)
        .header("x-admin-token", ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_keeps_its_openapi_contract_under_schemathesis() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "schemathesis {PINNED} is not installed at {}: run scripts/test-setup, which creates that venv \
         (python3 -m venv; pip install -r sync/endpoint/tests/schemathesis/requirements.txt; Debian \
         package python3-venv), or point CRM_SCHEMATHESIS at a schemathesis {PINNED}",
        st.display()
    );
    let version = Command::new(&st).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.contains(PINNED),
        "{} is {version:?}, not the pinned {PINNED}: run scripts/test-setup",
        st.display()
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("endpoint.log")).unwrap();
    let _endpoint = Endpoint(
        Command::new(env!("CARGO_BIN_EXE_crm-endpoint"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db"])
            .arg(format!("sqlite://{}", dir.path().join("crm.db").display()))
            .env("CRM_ADMIN_TOKEN", ADMIN)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{base}/v1/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "crm-endpoint did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A store and a kiosk enrolled in it, whose keys the signing hook gets.
    let r = post(
        &client,
        format!("{base}/v1/admin/stores"),
        json!({ "id": "north", "name": "Norte" }),
    )
    .await;
    assert_eq!(r.status(), 204);
    let code: Value = post(
        &client,
        format!("{base}/v1/admin/enroll-codes"),
        json!({ "store_id": "north" }),
    )
    .await
    .json()
    .await
    .unwrap();
    let enrolled: Value = client
        .post(format!("{base}/v1/enroll"))
        .json(&json!({ "code": code["code"], "hardware_profile": "simulated", "firmware_version": "0.1.0" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // A registered customer, whose card token the hook puts in customer and lookup paths.
    let card_token = "5ca1ab1e".repeat(4);
    let r = post(
        &client,
        format!("{base}/v1/admin/customers"),
        json!({ "card_token": card_token, "store_id": "north", "display_name": "Ana", "consents": ["profile"] }),
    )
    .await;
    assert_eq!(r.status(), 204);

    let started = Instant::now();
    let out = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(here().join("schemathesis.toml"))
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--checks", "all"])
        // Re-sending a request without its credentials is what `ignored_auth` does; the hook signs
        // every kiosk request, so it would sign those too. Refusals of missing or wrong
        // credentials are tested in tests/endpoint.rs (unsigned_and_badly_signed_requests_...,
        // wrong_admin_tokens_are_throttled_...).
        .args(["--exclude-checks", "ignored_auth"])
        .args(["--header", &format!("x-admin-token: {ADMIN}")])
        .args(["--generation-with-security-parameters", "false"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--request-timeout", "30", "--no-color"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(dir.path().join("junit.xml"))
        // Its example database and cache go to the temporary directory, not the source tree.
        .current_dir(dir.path())
        .env("PYTHONPATH", here())
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("CRM_KIOSK_ID", enrolled["kiosk_id"].as_str().unwrap())
        .env(
            "CRM_KIOSK_SECRET",
            enrolled["device_secret"].as_str().unwrap(),
        )
        .env("CRM_CARD_TOKEN", &card_token)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" generated") || l.contains("passed") || l.contains("failures"))
        .collect();
    println!(
        "schemathesis {PINNED}: {} in {:.0?}",
        summary.join(" / "),
        started.elapsed()
    );
    let log = std::fs::read_to_string(dir.path().join("endpoint.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "schemathesis found contract violations:\n{stdout}\n{}\nendpoint log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every documented operation was exercised, but the document itself (schemathesis leaves out
    // the schema's own URL).
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let tested: std::collections::BTreeSet<String> = junit
        .split("testcase name=\"")
        .skip(1)
        .filter_map(|t| t.split('"').next())
        .map(str::to_owned)
        .collect();
    for (method, path) in crm_endpoint::openapi::operations(&crm_endpoint::openapi::document()) {
        let op = format!("{method} {path}");
        assert!(
            tested.contains(&op) || op == "GET /openapi.json",
            "schemathesis did not test {op}: {tested:?}"
        );
    }
}
