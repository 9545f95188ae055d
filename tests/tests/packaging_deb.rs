//! The kiosk Debian package as a technician installs it: builds the amd64 .deb with
//! `scripts/package` (cargo-deb, from a debug build staged without rebuilding) and inspects what
//! dpkg would install: files and modes, control fields, conffiles, maintainer scripts, and the
//! systemd units through `systemd-analyze verify` and `systemd-analyze security`.
//!
//! Needs dpkg-dev and systemd (scripts/apt-packages.txt) and cargo-deb (scripts/package installs
//! it when missing). A missing tool fails these tests; it never skips them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The package built once for all tests in this file, unpacked beside it.
struct Built {
    _dir: tempfile::TempDir,
    deb: PathBuf,
    /// `dpkg-deb -x`: the data tarball as it lands on the kiosk.
    root: PathBuf,
    /// `dpkg-deb -e`: control, conffiles, maintainer scripts.
    control: PathBuf,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_owned()
}

/// The target dir this test binary was built in (`<target>/debug/deps/packaging_deb-*`): building
/// the kiosk binary there reuses what `cargo test --workspace` already compiled.
fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_owned()
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {shown}: {e} (is it installed? see scripts/apt-packages.txt)")
    });
    assert!(
        out.status.success(),
        "{shown} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("utf-8 output")
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = stdout(
            Command::new(repo().join("scripts/package"))
                .args(["amd64", "--debug", "--output"])
                .arg(dir.path().join("debs"))
                .arg("--target-dir")
                .arg(target_dir()),
        );
        let deb = out
            .lines()
            .find_map(|l| l.strip_prefix("DEB amd64 "))
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!("scripts/package printed no `DEB amd64 <path>` line:\n{out}")
            });
        let root = dir.path().join("root");
        let control = dir.path().join("control");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
        Built {
            _dir: dir,
            deb,
            root,
            control,
        }
    })
}

/// `dpkg-deb -c`: path (without the leading `.`) → permission string.
fn listing() -> BTreeMap<String, String> {
    let text = stdout(Command::new("dpkg-deb").arg("-c").arg(&built().deb));
    text.lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let mode = fields.next()?.to_owned();
            let path = fields.nth(4)?.trim_start_matches('.').to_owned();
            Some((path, mode))
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The value of `key=` lines of a unit file, in order (repeatable keys keep every value).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
        .map(str::to_owned)
        .collect()
}

fn unit(name: &str) -> String {
    read(&built().root.join("usr/lib/systemd/system").join(name))
}

/// The body of one `case` branch (`purge)` ... `;;`) of a maintainer script; a one-line branch
/// (`upgrade | failed-upgrade) ;;`) has an empty body.
fn case_branch<'a>(script: &'a str, label: &str) -> &'a str {
    let mut offset = 0;
    for line in script.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with(label) {
            if let Some(paren) = trimmed.find(')') {
                let start = offset + (line.len() - trimmed.len()) + paren + 1;
                let rest = &script[start..];
                return &rest[..rest.find(";;").unwrap_or(rest.len())];
            }
        }
        offset += line.len();
    }
    panic!("no `{label})` branch in:\n{script}")
}

#[test]
fn package_installs_binary_units_udev_rules_profiles_and_first_boot_scripts() {
    let files = listing();
    let expected = [
        ("/usr/bin/kiosk", "-rwxr-xr-x"),
        ("/usr/lib/systemd/system/kiosk.service", "-rw-r--r--"),
        (
            "/usr/lib/systemd/system/kiosk-browser.service",
            "-rw-r--r--",
        ),
        (
            "/usr/lib/systemd/system/kiosk-firstboot.service",
            "-rw-r--r--",
        ),
        ("/usr/lib/udev/rules.d/70-kiosk.rules", "-rw-r--r--"),
        ("/usr/lib/kiosk/firstboot", "-rwxr-xr-x"),
        ("/usr/lib/kiosk/browser", "-rwxr-xr-x"),
        ("/etc/kiosk/hw-config/simulated.toml", "-rw-r--r--"),
        (
            "/etc/kiosk/hw-config/pi4-mfrc522-usb-printer.toml",
            "-rw-r--r--",
        ),
        ("/etc/pam.d/kiosk-browser", "-rw-r--r--"),
        ("/etc/chromium/policies/managed/kiosk.json", "-rw-r--r--"),
        ("/usr/share/kiosk/site.example.toml", "-rw-r--r--"),
    ];
    for (path, mode) in expected {
        assert_eq!(
            files.get(path).map(String::as_str),
            Some(mode),
            "{path} in the package:\n{files:#?}"
        );
    }
    // Every hardware profile of the repository ships, so `kiosk provision --profile` finds it.
    for entry in std::fs::read_dir(repo().join("hw-config")).expect("hw-config/") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        if name.ends_with(".toml") {
            assert!(
                files.contains_key(&format!("/etc/kiosk/hw-config/{name}")),
                "profile {name} missing from the package"
            );
        }
    }
    // Created by postinst with the right owner, never shipped (dpkg would make them root-owned,
    // and an upgrade must never replace the journal or the provisioned site config).
    for path in ["/var/lib/kiosk/", "/etc/kiosk/site.toml"] {
        assert!(
            !files.contains_key(path),
            "{path} must not be in the package's data"
        );
    }
}

#[test]
fn packaged_binary_runs_and_reports_its_version() {
    let out = stdout(Command::new(built().root.join("usr/bin/kiosk")).arg("version"));
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        out.contains(&format!("kiosk {version}")),
        "`kiosk version` printed:\n{out}"
    );
    assert!(
        out.contains("target x86_64-unknown-linux-gnu"),
        "`kiosk version` printed:\n{out}"
    );
}

#[test]
fn control_declares_architecture_and_runtime_dependencies() {
    let info = stdout(Command::new("dpkg-deb").arg("-f").arg(&built().deb));
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} field in:\n{info}"))
            .to_owned()
    };
    assert_eq!(field("Package"), "kiosk");
    assert_eq!(field("Architecture"), "amd64");
    assert!(
        field("Version").starts_with(env!("CARGO_PKG_VERSION")),
        "{info}"
    );
    let depends = field("Depends");
    for dep in ["adduser", "libc6", "init-system-helpers", "systemd", "udev"] {
        assert!(
            depends.split(", ").any(|d| d.starts_with(dep)),
            "Depends lacks {dep}: {depends}"
        );
    }
    let recommends = field("Recommends");
    assert!(
        recommends.contains("cage") && recommends.contains("chromium"),
        "Recommends: {recommends}"
    );
}

#[test]
fn packaged_binary_needs_no_newer_glibc_than_the_package_declares() {
    let b = built();
    let info = stdout(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(&b.deb)
            .arg("Depends"),
    );
    let declared = info
        .split(", ")
        .find_map(|d| d.trim().strip_prefix("libc6 (>= "))
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or_else(|| panic!("Depends has no `libc6 (>= x.y)`: {info}"));
    let symbols = stdout(
        Command::new("objdump")
            .arg("-T")
            .arg(b.root.join("usr/bin/kiosk")),
    );
    let parse = |v: &str| -> Vec<u32> {
        v.split('.')
            .map(|n| n.parse().expect("numeric glibc version"))
            .collect()
    };
    let needed = symbols
        .split_whitespace()
        .filter_map(|w| {
            w.trim_matches(|c| c == '(' || c == ')')
                .strip_prefix("GLIBC_")
        })
        .filter(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(parse)
        .max()
        .expect("the binary links glibc");
    assert!(
        needed <= parse(declared),
        "binary needs glibc {needed:?} but the package declares libc6 (>= {declared})"
    );
}

#[test]
fn etc_files_are_conffiles_but_site_toml_is_left_to_provisioning() {
    let conffiles = read(&built().control.join("conffiles"));
    let listed: Vec<&str> = conffiles.lines().collect();
    let etc_files: Vec<String> = listing()
        .into_keys()
        .filter(|p| p.starts_with("/etc/") && !p.ends_with('/'))
        .collect();
    assert!(!etc_files.is_empty());
    for file in &etc_files {
        assert!(
            listed.contains(&file.as_str()),
            "{file} is not a conffile; an upgrade would overwrite local edits:\n{conffiles}"
        );
    }
    assert!(
        !listed.contains(&"/etc/kiosk/site.toml"),
        "site.toml is managed by postinst and `kiosk provision`"
    );
}

#[test]
fn maintainer_scripts_parse_as_posix_shell() {
    for script in ["postinst", "prerm", "postrm"] {
        let path = built().control.join(script);
        let mode = std::fs::metadata(&path).expect("script in control archive");
        assert!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o111 != 0,
            "{script} is not executable"
        );
        run(Command::new("sh").arg("-n").arg(&path));
        assert!(
            read(&path).starts_with("#!/bin/sh\n"),
            "{script} must be a /bin/sh script"
        );
    }
}

#[test]
fn postinst_creates_the_kiosk_user_with_device_groups_and_a_private_data_dir() {
    let postinst = read(&built().control.join("postinst"));
    let configure = case_branch(&postinst, "configure");
    assert!(
        configure.contains("adduser --quiet --system --group --home /var/lib/kiosk"),
        "{configure}"
    );
    assert!(
        configure.contains("for g in spi gpio dialout lp input; do"),
        "{configure}"
    );
    assert!(
        configure.contains("adduser --quiet kiosk \"$g\""),
        "{configure}"
    );
    assert!(
        configure.contains("install -d -m 0750 -o kiosk -g kiosk /var/lib/kiosk"),
        "{configure}"
    );
    assert!(
        configure.contains("install -d -m 0750 -o root -g kiosk /etc/kiosk"),
        "{configure}"
    );
    assert!(
        configure.contains("[ ! -e /etc/kiosk/site.toml ]"),
        "site.toml must only be created when absent:\n{configure}"
    );
    assert!(
        configure.contains("udevadm control --reload-rules"),
        "{configure}"
    );
    assert!(configure.contains("systemctl daemon-reload"), "{configure}");
    assert!(
        configure.contains("deb-systemd-helper enable \"$unit\""),
        "{configure}"
    );
    for unit in [
        "kiosk.service",
        "kiosk-browser.service",
        "kiosk-firstboot.service",
    ] {
        assert!(postinst.contains(unit), "postinst does not enable {unit}");
    }
}

#[test]
fn purge_removes_config_and_data_but_remove_and_upgrade_keep_them() {
    let postrm = read(&built().control.join("postrm"));
    let purge = case_branch(&postrm, "purge");
    assert!(
        purge.contains("rm -rf /etc/kiosk /var/lib/kiosk"),
        "purge branch:\n{purge}"
    );
    let remove = case_branch(&postrm, "remove");
    assert!(
        !remove.contains("rm "),
        "remove must keep config and data:\n{remove}"
    );
    let keep = case_branch(&postrm, "upgrade | failed-upgrade");
    assert!(
        keep.trim().is_empty(),
        "upgrade must not touch anything:\n{keep}"
    );
    let prerm = read(&built().control.join("prerm"));
    assert!(
        case_branch(&prerm, "upgrade | failed-upgrade")
            .trim()
            .is_empty(),
        "prerm upgrade must not stop the kiosk"
    );
    assert!(
        case_branch(&prerm, "remove | deconfigure")
            .contains("stop kiosk-browser.service kiosk.service")
    );
}

/// A root for `systemd-analyze --root`: the package's files plus the host's units (targets such
/// as sysinit.target must resolve) and a stand-in `cage`, which is only recommended.
fn analyze_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = built().root.clone();
        let units = root.join("usr/lib/systemd/system");
        let host_units = Path::new("/usr/lib/systemd/system");
        assert!(
            host_units.join("sysinit.target").exists(),
            "no systemd units on this host: apt-get install systemd"
        );
        for entry in std::fs::read_dir(host_units).expect("host units") {
            let entry = entry.expect("dir entry");
            let dest = units.join(entry.file_name());
            if !dest.exists() && entry.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::copy(entry.path(), &dest).expect("copy host unit");
            }
        }
        let cage = root.join("usr/bin/cage");
        std::fs::write(&cage, "#!/bin/sh\n").expect("stand-in cage");
        std::fs::set_permissions(&cage, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod cage");
        root
    })
    .clone()
}

#[test]
fn units_pass_systemd_analyze_verify_without_a_single_warning() {
    let root = analyze_root();
    let units = [
        "kiosk.service",
        "kiosk-browser.service",
        "kiosk-firstboot.service",
    ]
    .map(|u| root.join("usr/lib/systemd/system").join(u));
    // verify exits 0 on unknown keys and unparsable values (it only warns): any output fails.
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .args(&units));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify complained:\n{said}"
    );
}

#[test]
fn kiosk_service_exposure_stays_under_two_in_systemd_analyze_security() {
    let root = analyze_root();
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager", "--threshold=20"])
        .arg(format!("--root={}", root.display()))
        .arg(root.join("usr/lib/systemd/system/kiosk.service")));
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for kiosk.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"));
    println!("kiosk.service exposure level {level}");
    assert!(
        level < 2.0,
        "kiosk.service exposure {level} (0 = locked down, 10 = unprotected):\n{text}"
    );
}

#[test]
fn kiosk_service_is_notify_with_watchdog_restart_and_hardening() {
    let unit = unit("kiosk.service");
    let one = |key: &str| {
        unit_values(&unit, key)
            .pop()
            .unwrap_or_else(|| panic!("no {key}= in kiosk.service"))
    };
    assert_eq!(one("Type"), "notify");
    assert_eq!(one("WatchdogSec"), "30");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("User"), "kiosk");
    assert_eq!(
        one("ExecStart"),
        "/usr/bin/kiosk run --config /etc/kiosk/site.toml"
    );
    assert_eq!(one("StateDirectory"), "kiosk");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ReadWritePaths"), "/var/lib/kiosk");
    for key in [
        "NoNewPrivileges",
        "PrivateTmp",
        "ProtectHome",
        "ProtectKernelTunables",
        "RestrictNamespaces",
    ] {
        assert_eq!(one(key), "yes", "{key}");
    }
    assert_eq!(
        one("CapabilityBoundingSet"),
        "",
        "the firmware needs no capability"
    );
    assert!(!one("RestrictAddressFamilies").contains("AF_PACKET"));
    assert_eq!(one("DevicePolicy"), "closed");
    let allowed = unit_values(&unit, "DeviceAllow");
    for class in [
        "char-spi rw",
        "char-gpiochip rw",
        "char-ttyACM rw",
        "char-usb rw",
        "char-input rw",
    ] {
        assert!(
            allowed.iter().any(|a| a == class),
            "DeviceAllow={class} missing: {allowed:?}"
        );
    }
    assert_eq!(
        unit_values(&unit, "SupplementaryGroups"),
        ["spi gpio dialout lp input audio"]
    );
}

#[test]
fn browser_runs_chromium_in_cage_on_the_local_ui_without_devtools_or_gestures() {
    let b = built();
    let unit = unit("kiosk-browser.service");
    let exec = unit_values(&unit, "ExecStart").pop().expect("ExecStart");
    assert_eq!(
        exec,
        "/usr/bin/cage -d -- /usr/lib/kiosk/browser http://127.0.0.1:8080/"
    );
    assert_eq!(unit_values(&unit, "Restart"), ["always"]);
    assert!(
        unit_values(&unit, "After")
            .iter()
            .any(|a| a.split(' ').any(|u| u == "kiosk.service"))
    );
    assert_eq!(
        unit_values(&unit, "User"),
        ["kiosk-ui"],
        "the browser must not run as the firmware's user"
    );
    assert!(
        unit_values(&unit, "ExecStartPre")
            .iter()
            .any(|e| e.contains("setterm") && e.contains("--blank 0"))
    );
    let browser = read(&b.root.join("usr/lib/kiosk/browser"));
    for flag in [
        "--kiosk",
        "--disable-pinch",
        "--overscroll-history-navigation=0",
        "--noerrdialogs",
    ] {
        assert!(browser.contains(flag), "browser wrapper lacks {flag}");
    }
    let policy: serde_json::Value = serde_json::from_str(&read(
        &b.root.join("etc/chromium/policies/managed/kiosk.json"),
    ))
    .expect("policy is JSON");
    assert_eq!(
        policy["DeveloperToolsAvailability"], 2,
        "2 = developer tools disallowed"
    );
    // Only the kiosk's own loopback UI: nothing else (file://, chrome://, another site) loads,
    // and no page can open a file dialog.
    assert_eq!(policy["URLBlocklist"], serde_json::json!(["*"]));
    assert_eq!(
        policy["URLAllowlist"],
        serde_json::json!(["127.0.0.1", "localhost"])
    );
    assert_eq!(policy["AllowFileSelectionDialogs"], false);
    run(Command::new("bash")
        .arg("-n")
        .arg(b.root.join("usr/lib/kiosk/browser")));
    run(Command::new("bash")
        .arg("-n")
        .arg(b.root.join("usr/lib/kiosk/firstboot")));
}

#[test]
fn firstboot_unit_runs_only_while_an_enrollment_code_waits_on_the_boot_partition() {
    let unit = unit("kiosk-firstboot.service");
    assert_eq!(
        unit_values(&unit, "ConditionPathExists"),
        ["/boot/firmware/kiosk/enroll.code"]
    );
    assert_eq!(
        unit_values(&unit, "ExecStart"),
        ["/usr/lib/kiosk/firstboot /boot/firmware/kiosk"]
    );
    assert_eq!(unit_values(&unit, "Type"), ["oneshot"]);
    let script = read(&built().root.join("usr/lib/kiosk/firstboot"));
    assert!(script.contains(
        "kiosk provision --non-interactive --endpoint \"$KIOSK_ENDPOINT\" --code \"$code\""
    ));
    assert!(
        script.contains("rm -f \"$dir/enroll.code\""),
        "the one-time code must be deleted after use"
    );
    assert!(
        script.contains("rm -f \"$dir/site.toml\""),
        "the site config (with the PIN's digest) must leave the FAT boot partition once installed"
    );
    assert!(script.contains("kiosk selftest --non-interactive"));
}

#[test]
fn udev_rules_name_the_printer_scanner_and_card_reader() {
    let rules = read(&built().root.join("usr/lib/udev/rules.d/70-kiosk.rules"));
    let rule_for = |symlink: &str| -> Vec<&str> {
        rules
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(&format!("SYMLINK+=\"{symlink}\"")))
            .collect()
    };
    let printer = rule_for("kiosk-printer");
    assert!(
        printer
            .iter()
            .any(|r| r.contains("SUBSYSTEM==\"usbmisc\"") && r.contains("KERNEL==\"lp[0-9]*\"")),
        "{printer:?}"
    );
    let scanner = rule_for("kiosk-scanner");
    assert!(
        scanner.iter().any(|r| r.contains("DRIVERS==\"cdc_acm\"")),
        "{scanner:?}"
    );
    assert!(
        scanner
            .iter()
            .any(|r| r.contains("SUBSYSTEM==\"input\"") && r.contains("ID_VENDOR_ID")),
        "{scanner:?}"
    );
    assert!(!rule_for("kiosk-card").is_empty());
    assert!(rules.contains("SUBSYSTEM==\"spidev\"") && rules.contains("GROUP=\"spi\""));
    // Every rule line is key-op-value pairs separated by ", " (a typo silently disables a rule).
    for line in rules
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        for pair in line.split(", ") {
            assert!(
                ["==", "!=", "+=", ":=", "="]
                    .iter()
                    .any(|op| pair.contains(op))
                    && pair.ends_with('"'),
                "malformed udev pair `{pair}` in: {line}"
            );
        }
    }
}
