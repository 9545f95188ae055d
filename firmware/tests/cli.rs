//! The `kiosk` command line as a technician runs it: the real binary, its output and exit codes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::process::Command;

fn kiosk() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiosk"))
}

fn zbar(png: &std::path::Path) -> String {
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(png)
        .output()
        .expect("zbarimg runs (Debian package zbar-tools, installed by scripts/test)");
    assert!(
        out.status.success(),
        "zbarimg found no code in {}",
        png.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn version_names_the_commit_and_the_target() {
    let out = kiosk().arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains("commit "), "{text}");
    assert!(
        text.contains("x86_64") || text.contains("aarch64") || text.contains("arm"),
        "{text}"
    );
}

#[test]
fn ticket_preview_renders_the_sample_ticket_with_a_scannable_qr_in_each_language() {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["es", "en"] {
        let png = dir.path().join(format!("{lang}.png"));
        let out = kiosk()
            .args(["ticket-preview", "--lang", lang, "--paper", "58", "--out"])
            .arg(&png)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let decoded = zbar(&png);
        assert!(!decoded.trim().is_empty());
    }
}

#[test]
fn ticket_preview_renders_a_captured_escpos_stream() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("capture.bin");
    // ESC @, a line of text, GS ( k native QR "HELLO-42", print it, full cut.
    let mut bytes = b"\x1b@Hola caf\x82\n".to_vec();
    let data = b"HELLO-42";
    let len = (data.len() + 3) as u8;
    bytes.extend_from_slice(&[0x1d, 0x28, 0x6b, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]);
    bytes.extend_from_slice(&[0x1d, 0x28, 0x6b, 0x03, 0x00, 0x31, 0x43, 0x06]);
    bytes.extend_from_slice(&[0x1d, 0x28, 0x6b, len, 0x00, 0x31, 0x50, 0x30]);
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(&[0x1d, 0x28, 0x6b, 0x03, 0x00, 0x31, 0x51, 0x30]);
    bytes.extend_from_slice(b"\n\x1dV\x00");
    std::fs::write(&bin, &bytes).unwrap();
    let png = dir.path().join("capture.png");
    let out = kiosk()
        .args(["ticket-preview", "--escpos"])
        .arg(&bin)
        .arg("--out")
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(zbar(&png).trim(), "HELLO-42");
}

#[test]
fn check_config_accepts_the_example_and_names_file_line_and_key_of_a_mistake() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/site.example.toml");
    let ok = kiosk().args(["check-config", example]).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("site.toml");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("counters = 2", "counters = 2\ncounterz = 3");
    std::fs::write(&bad, text).unwrap();
    let out = kiosk().arg("check-config").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("site.toml"), "{err}");
    assert!(err.contains("counterz"), "{err}");
    assert!(err.contains(':'), "{err}");
}

#[test]
fn run_without_credentials_says_to_provision() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/site.example.toml");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace(
            "/var/lib/kiosk",
            &dir.path().join("data").display().to_string(),
        )
        .replace("pi4-mfrc522-usb-printer", "simulated");
    let site = dir.path().join("site.toml");
    std::fs::write(&site, text).unwrap();
    let out = kiosk()
        .args(["run", "--config"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kiosk provision"), "{err}");
}

#[test]
fn pin_digest_reads_the_pin_from_stdin_never_from_the_arguments_and_refuses_a_short_one() {
    use std::io::Write as _;
    let digest = |pin: &str| {
        let mut child = kiosk()
            .arg("pin-digest")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pin}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = digest("246810");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    // SHA-256 of the ASCII digits, as `printf %s 246810 | sha256sum` prints it (the prompt
    // goes before it on the same stream).
    assert_eq!(
        text.trim_end().rsplit(['\n', ' ']).next().unwrap(),
        "7c2523c985881fb2c2b4cfbe917eb12c4c4b61e898ad4e7160cfca487ca3c4f3",
        "{text}"
    );
    let short = digest("1234");
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 6 digits"),
        "{short:?}"
    );
    let extra = kiosk().args(["pin-digest", "246810"]).output().unwrap();
    assert!(
        !extra.status.success(),
        "a PIN on the command line is refused"
    );
}
