//! `crm-endpoint.1` renders through man-db without a warning and documents every subcommand
//! `crm-endpoint --help` lists (the same clap definition).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::process::Command;

#[test]
fn the_crm_endpoint_man_pages_render_cleanly_and_cover_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kiosk-manpages"))
        .arg("--crm-endpoint")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = dir.path().join("crm-endpoint.1");
    let man = Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man (man-db) is installed");
    let warnings = String::from_utf8_lossy(&man.stderr);
    assert!(warnings.trim().is_empty(), "groff warnings:\n{warnings}");
    let text = String::from_utf8_lossy(&man.stdout);
    let cli = <crm_endpoint::cli::Cli as clap::CommandFactory>::command();
    let subcommands: Vec<String> = cli
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    assert!(subcommands.len() >= 5, "{subcommands:?}");
    for sub in subcommands {
        assert!(
            text.contains(&format!("crm-endpoint-{sub}(1)")),
            "crm-endpoint(1) lacks {sub}:\n{text}"
        );
        assert!(
            dir.path().join(format!("crm-endpoint-{sub}.1")).is_file(),
            "no crm-endpoint-{sub}(1) page"
        );
    }
}
