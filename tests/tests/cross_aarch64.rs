//! The Raspberry Pi build: `scripts/build-pi` cross-compiles `kiosk` for aarch64 with Debian's
//! cross gcc (bundled SQLite and ring's assembly included), then the binary runs under
//! `qemu-aarch64`: `kiosk version` names the target, the shipped site config validates, and the
//! journal's own tests (WAL, migrations, appends, acknowledgements, erasure, retention) pass on
//! the emulated CPU.
//!
//! The quickest build there is (`--quick`: profile `cross-test`, no optimisation, no debug info)
//! into `target/cross` (kept between runs, so later suites only rebuild what changed).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

const TRIPLE: &str = "aarch64-unknown-linux-gnu";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("cross"),
        None => workspace().join("target/cross"),
    }
}

#[test]
fn the_aarch64_build_runs_its_journal_tests_and_commands_under_qemu() {
    let out = Command::new(workspace().join("scripts/build-pi"))
        .args(["aarch64", "--quick", "--test", "", "--target-dir"])
        .arg(target_dir())
        .output()
        .expect("scripts/build-pi runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "build-pi failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The journal tests ran under qemu and passed (libtest's summary line).
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("test result:"))
        .unwrap_or_else(|| panic!("no test summary in\n{stdout}"));
    assert!(summary.contains(" 0 failed"), "{summary}");
    let passed: u32 = summary
        .split("ok. ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 30, "only {passed} journal tests ran: {summary}");

    // ARTIFACT <triple> <path> <size> <stripped size>
    let artifact: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with(&format!("ARTIFACT {TRIPLE} ")))
        .unwrap_or_else(|| panic!("no ARTIFACT line in\n{stdout}"))
        .split(' ')
        .collect();
    let bin = PathBuf::from(artifact[2]);
    let elf = std::fs::read(&bin).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([elf[18], elf[19]]),
        0xB7,
        "e_machine is not AArch64"
    );

    let qemu = |args: &[&str]| {
        let out = Command::new("qemu-aarch64")
            .args(["-L", "/usr/aarch64-linux-gnu"])
            .arg(&bin)
            .args(args)
            .output()
            .expect("qemu-aarch64 runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, version) = qemu(&["version"]);
    assert!(ok, "{version}");
    assert!(version.contains(&format!("target {TRIPLE}")), "{version}");
    let example = workspace().join("firmware/config/site.example.toml");
    let (ok, checked) = qemu(&["check-config", example.to_str().unwrap()]);
    assert!(ok, "{checked}");
    assert!(checked.contains("site config is valid"), "{checked}");
    // Device firmware has no embedded CRM: `demo` says so and where to find it.
    let (ok, demo) = qemu(&["demo"]);
    assert!(!ok, "{demo}");
    assert!(demo.contains("build-pi --with-demo"), "{demo}");
}
