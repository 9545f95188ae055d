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
        // nextest runs every test in its own process: build the package once per run, in a
        // directory of that run under the target directory, the first process to take the
        // lock building it for all (one package build instead of one per test). Plain `cargo
        // test` runs them all in this process: its pid names the run. The directory lives
        // under the target dir, never in a `TempDir` held by this static (statics are never
        // dropped, so such a directory would outlive every run), and the next run removes it.
        let run = std::env::var("NEXTEST_RUN_ID")
            .unwrap_or_else(|_| format!("cargo-test-{}", std::process::id()));
        let base = target_dir().join("packaging-test");
        std::fs::create_dir_all(&base).expect("packaging-test dir");
        let lock = std::fs::File::create(base.join(".lock")).expect("lock file");
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock the packaging-test dir");
        let dir = base.join(&run);
        if !dir.join("done").exists() {
            // Runs before this one are finished with their packages.
            for old in std::fs::read_dir(&base)
                .expect("packaging-test dir")
                .flatten()
            {
                if old.path().is_dir() {
                    let _ = std::fs::remove_dir_all(old.path());
                }
            }
            std::fs::create_dir_all(&dir).expect("run dir");
            build_into(&dir);
            std::fs::write(dir.join("done"), b"").expect("done mark");
        }
        drop(lock);
        built_in(&dir)
    })
}

/// `scripts/package amd64 --debug` into `dir/debs`, unpacked into `dir/root` and `dir/control`.
fn build_into(dir: &Path) {
    let out = stdout(
        Command::new(repo().join("scripts/package"))
            .args(["amd64", "--debug", "--output"])
            .arg(dir.join("debs"))
            .arg("--target-dir")
            .arg(target_dir()),
    );
    let deb = out
        .lines()
        .find_map(|l| l.strip_prefix("DEB amd64 "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("scripts/package printed no `DEB amd64 <path>` line:\n{out}"));
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.join("root")));
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(dir.join("control")));
    std::fs::write(dir.join("deb-path"), deb.as_os_str().as_encoded_bytes()).expect("deb path");
}

fn built_in(dir: &Path) -> Built {
    let deb = PathBuf::from(read(&dir.join("deb-path")));
    Built {
        deb,
        root: dir.join("root"),
        control: dir.join("control"),
    }
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
        ("/usr/lib/kiosk/screen-restart", "-rwxr-xr-x"),
        (
            "/usr/lib/systemd/system/kiosk-screen-restart.path",
            "-rw-r--r--",
        ),
        ("/usr/lib/systemd/system/kiosk-update.path", "-rw-r--r--"),
        ("/usr/lib/systemd/system/kiosk-update.service", "-rw-r--r--"),
        (
            "/usr/lib/systemd/system/kiosk-screen-restart.service",
            "-rw-r--r--",
        ),
        ("/usr/share/man/man1/kiosk.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/kiosk-provision.1.gz", "-rw-r--r--"),
        ("/usr/share/doc/kiosk/copyright", "-rw-r--r--"),
        ("/usr/share/doc/kiosk/changelog.Debian.gz", "-rw-r--r--"),
        ("/usr/share/doc/kiosk/FIELD.md", "-rw-r--r--"),
        ("/usr/share/doc/kiosk/README.md", "-rw-r--r--"),
        ("/usr/share/lintian/overrides/kiosk", "-rw-r--r--"),
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
    let deps: Vec<&str> = depends.split(", ").collect();
    for dep in ["adduser", "libc6", "init-system-helpers", "systemd", "udev"] {
        assert!(
            deps.iter().any(|d| d.starts_with(dep)),
            "Depends lacks {dep}: {depends}"
        );
    }
    // The screen is part of the product: without cage and a Chromium the kiosk passes its checks
    // and shows a black screen, so they are Depends (apt installs them), not Recommends.
    assert!(deps.contains(&"cage"), "Depends: {depends}");
    assert!(
        deps.contains(&"chromium | chromium-browser"),
        "Depends: {depends}"
    );
    assert!(
        !info
            .lines()
            .any(|l| l.starts_with("Recommends:") && l.contains("cage")),
        "{info}"
    );
    // Essential packages need no Depends, unless versioned (lintian:
    // depends-on-essential-package-without-using-version).
    for essential in [
        "init-system-helpers",
        "util-linux",
        "coreutils",
        "bash",
        "dpkg",
    ] {
        assert!(
            !deps.contains(&essential),
            "unversioned Depends on the essential {essential}: {depends}"
        );
    }
    // The synopsis is one line that policy's 80 columns hold, not a sentence cut in two.
    let synopsis = field("Description");
    assert!(synopsis.len() < 80, "synopsis too long: {synopsis}");
    let extended = info
        .split_once(&format!("Description: {synopsis}\n"))
        .map(|(_, rest)| rest)
        .expect("extended description");
    assert!(
        extended.starts_with(" Runs a self-service kiosk"),
        "the extended description must start a sentence, not continue the synopsis:\n{extended}"
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
    // The systemd part follows the case, for configure and the abort-* actions as in debhelper.
    assert!(
        postinst.contains("systemctl --system daemon-reload"),
        "{postinst}"
    );
    assert!(
        postinst.contains("deb-systemd-helper enable \"$unit\""),
        "{postinst}"
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
        case_branch(&prerm, "remove | deconfigure").contains("kiosk-browser.service kiosk.service")
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
        "kiosk-screen-restart.path",
        "kiosk-screen-restart.service",
        "kiosk-update.path",
        "kiosk-update.service",
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

/// `systemd-analyze security`'s overall exposure level of a packaged unit (0 = locked down, 10 =
/// unprotected), and the whole table for the failure message.
fn exposure(unit: &str) -> (f64, String) {
    let root = analyze_root();
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager", "--threshold=100"])
        .arg(format!("--root={}", root.display()))
        .arg(root.join("usr/lib/systemd/system").join(unit)));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split(&format!("Overall exposure level for {unit}: "))
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"));
    println!("{unit} exposure level {level}");
    (level, text)
}

#[test]
fn kiosk_service_exposure_stays_under_two_in_systemd_analyze_security() {
    let (level, text) = exposure("kiosk.service");
    assert!(level < 2.0, "kiosk.service exposure {level}:\n{text}");
}

/// 9.2 (UNSAFE) before issue 18, 2.8 with the sandbox docs/SECURITY.md describes: what remains is
/// what cage and Chromium need (namespaces for Chromium's own sandbox, JIT memory, devices).
#[test]
fn browser_and_screen_restart_units_stay_sandboxed_in_systemd_analyze_security() {
    let (level, text) = exposure("kiosk-browser.service");
    assert!(
        level <= 2.8,
        "kiosk-browser.service exposure {level}:\n{text}"
    );
    let (level, text) = exposure("kiosk-screen-restart.service");
    assert!(
        level < 2.0,
        "kiosk-screen-restart.service exposure {level}:\n{text}"
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

#[test]
fn screen_starts_on_console_and_desktop_boots_and_the_firmware_can_ask_for_a_restart() {
    let browser = unit("kiosk-browser.service");
    // raspi-config's console boot is multi-user.target; graphical.target pulls that in.
    assert_eq!(unit_values(&browser, "WantedBy"), ["multi-user.target"]);
    assert!(
        unit_values(&browser, "ConditionPathExists")
            .iter()
            .all(|p| p != "/usr/bin/cage"),
        "a missing cage must fail the unit, not skip it silently"
    );
    let kiosk = unit("kiosk.service");
    assert_eq!(unit_values(&kiosk, "RuntimeDirectory"), ["kiosk"]);
    assert_eq!(unit_values(&kiosk, "RuntimeDirectoryMode"), ["0750"]);
    let path = unit("kiosk-screen-restart.path");
    assert_eq!(
        unit_values(&path, "PathExists"),
        ["/run/kiosk/screen-restart"]
    );
    assert_eq!(unit_values(&path, "WantedBy"), ["multi-user.target"]);
    let service = unit("kiosk-screen-restart.service");
    assert_eq!(unit_values(&service, "Type"), ["oneshot"]);
    assert_eq!(
        unit_values(&service, "ExecStart"),
        ["/usr/lib/kiosk/screen-restart /run/kiosk/screen-restart"]
    );
    assert!(unit_values(&service, "User").is_empty(), "runs as root");
}

/// The restart hook as kiosk-screen-restart.service runs it: the request goes first, the reason
/// reaches the journal (stdout) without the control characters an unprivileged writer could use
/// to forge lines, then systemctl restarts the browser. systemctl is a logging stand-in: this
/// machine runs no systemd.
#[test]
fn screen_restart_hook_logs_the_reason_removes_the_request_and_restarts_the_browser() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let calls = dir.path().join("calls");
    let request = dir.path().join("screen-restart");
    std::fs::write(
        bin.join("systemctl"),
        format!(
            "#!/bin/sh\n[ -e '{}' ] && echo 'request still there' >>'{}'\necho \"$*\" >>'{}'\n",
            request.display(),
            calls.display(),
            calls.display()
        ),
    )
    .expect("stub");
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::write(
        &request,
        "no screen client for 120 s\x1b[2J\rforged\nsecond line\n",
    )
    .expect("request");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = stdout(
        Command::new(built().root.join("usr/lib/kiosk/screen-restart"))
            .arg(&request)
            .env("PATH", path),
    );
    assert_eq!(
        out,
        "kiosk-screen-restart: restarting kiosk-browser.service: no screen client for 120 s[2Jforged\n"
    );
    assert!(!request.exists(), "the request file must be removed");
    assert_eq!(read(&calls), "restart kiosk-browser.service\n");
}

#[test]
fn lintian_finds_no_error_or_warning_that_is_not_overridden() {
    let out = Command::new("lintian")
        .args(["--fail-on", "error,warning", "--tag-display-limit", "0"])
        .arg(&built().deb)
        .output()
        .expect("lintian (apt-get install lintian; see scripts/apt-packages.txt)");
    let said = String::from_utf8_lossy(&out.stdout);
    let tags: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .collect();
    assert!(
        out.status.success() && tags.is_empty(),
        "lintian {}:\n{said}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Every override says why the tag does not apply to an appliance: a comment right above it.
    let overrides = read(&built().root.join("usr/share/lintian/overrides/kiosk"));
    let lines: Vec<&str> = overrides.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("kiosk: ") {
            assert!(
                i > 0 && lines[i - 1].starts_with('#'),
                "override without a justification: {line}"
            );
        }
    }
}

#[test]
fn every_unit_points_its_documentation_at_what_the_package_ships() {
    let root = &built().root;
    for unit_name in [
        "kiosk.service",
        "kiosk-browser.service",
        "kiosk-firstboot.service",
        "kiosk-screen-restart.path",
        "kiosk-screen-restart.service",
        "kiosk-update.path",
        "kiosk-update.service",
    ] {
        let docs = unit_values(&unit(unit_name), "Documentation");
        assert!(!docs.is_empty(), "{unit_name} has no Documentation=");
        for doc in docs.iter().flat_map(|d| d.split(' ')) {
            let shipped = if let Some(file) = doc.strip_prefix("file://") {
                root.join(file.trim_start_matches('/'))
            } else if let Some(page) = doc.strip_prefix("man:") {
                let (name, section) = page
                    .strip_suffix(')')
                    .and_then(|p| p.split_once('('))
                    .unwrap_or_else(|| panic!("{unit_name}: bad man reference {doc}"));
                root.join(format!("usr/share/man/man{section}/{name}.{section}.gz"))
            } else {
                panic!("{unit_name}: Documentation={doc} is neither file:// nor man:");
            };
            assert!(
                shipped.is_file(),
                "{unit_name}: Documentation={doc} is not in the package"
            );
        }
    }
}

/// `man kiosk` on the kiosk: rendered by man-db without a warning, naming every subcommand the
/// packaged binary has (from the same clap definition), and not the demo the device build lacks.
#[test]
fn man_pages_render_cleanly_and_document_every_subcommand_of_the_packaged_binary() {
    let root = &built().root;
    let page = root.join("usr/share/man/man1/kiosk.1.gz");
    let out = run(Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "groff warnings:\n{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    let help = stdout(Command::new(root.join("usr/bin/kiosk")).arg("--help"));
    let subcommands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .expect("kiosk --help lists commands")
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help" && *c != "demo")
        .collect();
    assert!(subcommands.len() >= 8, "{help}");
    for sub in subcommands {
        assert!(
            text.contains(&format!("kiosk-{sub}(1)")),
            "kiosk(1) lacks {sub}:\n{text}"
        );
        assert!(
            root.join(format!("usr/share/man/man1/kiosk-{sub}.1.gz"))
                .is_file(),
            "no kiosk-{sub}(1) page"
        );
    }
    assert!(
        !text.contains("kiosk-demo"),
        "kiosk(1) documents the demo:\n{text}"
    );
}

/// The amd64 package ships the same device build as the Pi packages: `kiosk demo` answers that
/// the build has none, and none of the embedded CRM endpoint's code is in the binary.
#[test]
fn packaged_binary_is_the_device_build_without_the_demo() {
    let bin = built().root.join("usr/bin/kiosk");
    let out = Command::new(&bin)
        .args(["demo", "--data-dir"])
        .arg(built().root.join("demo-must-not-run"))
        .output()
        .expect("run kiosk demo");
    assert!(!out.status.success(), "kiosk demo ran from the package");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("this kiosk build has no demo"), "{stderr}");
    let help = Command::new(&bin)
        .arg("--help")
        .output()
        .expect("kiosk --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        !help.lines().any(|l| l.trim_start().starts_with("demo ")),
        "the device build's help offers the demo it lacks:\n{help}"
    );
    let bytes = std::fs::read(&bin).expect("binary");
    let needle = b"sync/endpoint/src/";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the packaged kiosk embeds the CRM endpoint"
    );
}

/// `dpkg --verify` needs md5sums: every shipped file but the conffiles, with the right sums.
#[test]
fn md5sums_cover_every_shipped_file_but_the_conffiles() {
    let b = built();
    let sums = read(&b.control.join("md5sums"));
    let listed: BTreeMap<String, String> = sums
        .lines()
        .map(|l| {
            let (sum, path) = l.split_once("  ").expect("`SUM  PATH` lines");
            (format!("/{path}"), sum.to_owned())
        })
        .collect();
    let conffiles = read(&b.control.join("conffiles"));
    for (path, mode) in listing() {
        if mode.starts_with('-') && !conffiles.lines().any(|c| c == path) {
            assert!(listed.contains_key(&path), "{path} has no md5sum");
        }
    }
    for conffile in conffiles.lines() {
        assert!(!listed.contains_key(conffile), "{conffile} is a conffile");
    }
    let check = run(Command::new("md5sum")
        .arg("--check")
        .arg("--quiet")
        .arg(b.control.join("md5sums"))
        .current_dir(&b.root));
    assert!(check.status.success());
}

/// Changelog in Debian format for this version; copyright in DEP-5 with a Files paragraph per
/// linked crate and a License paragraph for every licence named.
#[test]
fn changelog_and_machine_readable_copyright_describe_what_ships() {
    let b = built();
    let changelog = b.root.join("usr/share/doc/kiosk/changelog.Debian.gz");
    let text = b.root.join("changelog.txt");
    std::fs::write(
        &text,
        run(Command::new("gzip").arg("-dc").arg(&changelog)).stdout,
    )
    .expect("write changelog");
    let parsed = stdout(Command::new("dpkg-parsechangelog").arg("-l").arg(&text));
    let version = stdout(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(&b.deb)
            .arg("Version"),
    );
    assert!(
        parsed.contains(&format!("Version: {}", version.trim())),
        "changelog's latest entry is not the package version {version}:\n{parsed}"
    );

    let copyright = read(&b.root.join("usr/share/doc/kiosk/copyright"));
    assert!(copyright.starts_with(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    ));
    let paragraphs: Vec<&str> = copyright.split("\n\n").collect();
    let license_of = |p: &str| {
        p.lines()
            .find_map(|l| l.strip_prefix("License: "))
            .map(str::to_owned)
    };
    let files: Vec<&str> = paragraphs
        .iter()
        .copied()
        .filter(|p| p.starts_with("Files: "))
        .collect();
    let texts: Vec<String> = paragraphs
        .iter()
        .filter(|p| p.starts_with("License: "))
        .filter_map(|p| license_of(p))
        .collect();
    for crate_name in ["tokio-", "rusqlite-", "ring-", "axum-", "clap-"] {
        assert!(
            files
                .iter()
                .any(|p| p.starts_with(&format!("Files: {crate_name}"))),
            "no Files paragraph for {crate_name}*"
        );
    }
    assert!(files.len() > 100, "only {} Files paragraphs", files.len());
    assert!(
        !files.iter().any(|p| p.starts_with("Files: crm-endpoint")),
        "the device build does not link the endpoint"
    );
    for paragraph in &files {
        assert!(paragraph.contains("\nCopyright: "), "{paragraph}");
        let license = license_of(paragraph).unwrap_or_else(|| panic!("{paragraph}"));
        for id in license
            .split([' ', ','])
            .filter(|t| !t.is_empty() && *t != "or" && *t != "and")
        {
            assert!(
                texts.iter().any(|t| t == id),
                "licence {id} has no License paragraph"
            );
        }
    }
}

/// Runs `script` as root in a throwaway copy of this machine: an overlay over `/` whose changes
/// land in `upper` (kept between calls), in a private mount namespace, chrooted. dpkg, adduser,
/// deb-systemd-helper and the maintainer scripts are the real ones; only `systemctl` is a
/// stand-in that logs its calls (no systemd runs here), answers that nothing is active, and hands
/// unit-file verbs (enable, disable, preset, is-enabled, ...) to the real systemctl, which works on
/// files in a chroot.
fn in_scratch_root(state: &Path, script: &str) -> String {
    in_scratch_root_with(state, script, &[])
}

/// [`in_scratch_root`] with extra `unshare` flags (`--net`: a network namespace with no link, a
/// kiosk whose network is down).
fn in_scratch_root_with(state: &Path, script: &str, unshare: &[&str]) -> String {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the maintainer-script test installs the package with dpkg in a scratch root: run as root"
    );
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(state.join(d)).expect("mkdir");
    }
    let setup = format!(
        "set -e; mount -t overlay overlay -o lowerdir=/,upperdir={s}/upper,workdir={s}/work {s}/merged; \
         mount --bind /dev {s}/merged/dev; mount -t proc proc {s}/merged/proc; \
         exec chroot {s}/merged /bin/sh -c \"$0\"",
        s = state.display()
    );
    let script = format!(
        "set -e; export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; {script}"
    );
    stdout(
        Command::new("unshare")
            .args(["--mount", "--fork"])
            .args(unshare)
            .args(["sh", "-c", &setup, &script]),
    )
}

const SYSTEMCTL_STUB: &str = r#"#!/bin/sh
echo "$*" >>/var/log/systemctl.calls
for a in "$@"; do
    case "$a" in
    start | stop | restart | try-restart | reload | reload-or-restart | daemon-reload) exit 0 ;;
    is-active) exit 3 ;;
    esac
done
# unit-file verbs work on the files, offline, as on a kiosk they would through systemd
case " $* " in
*" --root="*) exec /usr/bin/systemctl "$@" ;;
*) exec /usr/bin/systemctl --root=/ "$@" ;;
esac
"#;

/// Install, an administrator's `systemctl disable`, upgrade, first boot's technician set-up, and
/// purge, with dpkg in a scratch root: an upgrade keeps the unit disabled and no start or restart
/// blocks; purge removes what first boot created and nothing an administrator made or changed.
#[test]
fn upgrade_keeps_disabled_units_and_purge_removes_exactly_what_first_boot_created() {
    let b = built();
    let state = tempfile::tempdir_in(b.root.parent().expect("dir")).expect("scratch dir");
    let deb = b.deb.display();
    let firstboot = b.root.join("usr/lib/kiosk/firstboot");
    let firstboot = firstboot.display();
    let wants = "/etc/systemd/system/multi-user.target.wants";
    std::fs::write(state.path().join("systemctl"), SYSTEMCTL_STUB).expect("stub");
    let stub = state.path().join("systemctl");

    // Install on a running system (postinst takes the start path), without a container's
    // policy-rc.d (which forbids every start, and which the scripts respect).
    let out = in_scratch_root(
        state.path(),
        &format!(
            "install -m 0755 {stub} /usr/local/sbin/systemctl; mkdir -p /run/systemd/system; \
             rm -f /usr/sbin/policy-rc.d; \
             dpkg --force-depends -i {deb} >/dev/null 2>&1; ls {wants}; echo ---; cat /var/log/systemctl.calls",
            stub = stub.display()
        ),
    );
    let (enabled, calls) = out.split_once("---\n").expect("marker");
    for unit in [
        "kiosk.service",
        "kiosk-browser.service",
        "kiosk-firstboot.service",
        "kiosk-screen-restart.path",
        "kiosk-update.path",
    ] {
        assert!(
            enabled.lines().any(|l| l == unit),
            "{unit} not enabled on install:\n{enabled}"
        );
    }
    assert!(
        calls.lines().any(|l| l == "--no-block start kiosk.service"),
        "fresh install did not start kiosk.service without blocking:\n{calls}"
    );

    // First boot's technician set-up (the real script, bootstrap stage), and an administrator's
    // own account, sudoers file and an edit to first boot's sshd drop-in.
    let out = in_scratch_root(
        state.path(),
        &format!(
            "k=/boot/firmware/kiosk; mkdir -p $k; cp {firstboot} $k/firstboot; \
             cp /usr/lib/systemd/system/kiosk-firstboot.service $k/; \
             echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk4 tech@laptop' >$k/authorized_keys; \
             printf 'KIOSK_SSH_USER=tech\\n' >$k/firstboot.env; \
             bash $k/firstboot --bootstrap $k >/dev/null; \
             useradd --create-home --comment 'shop admin' shopadmin; \
             echo 'shopadmin ALL=(ALL) ALL' >/etc/sudoers.d/020-shop; \
             echo 'MaxAuthTries 3' >>/etc/ssh/sshd_config.d/10-kiosk.conf; \
             getent passwd tech; ls /etc/sudoers.d; cat /var/lib/kiosk-firstboot/created"
        ),
    );
    assert!(
        out.contains("tech:x:"),
        "first boot made no technician:\n{out}"
    );
    assert!(out.contains("010-kiosk-technician"), "{out}");
    assert!(
        out.contains("user tech"),
        "first boot recorded nothing:\n{out}"
    );

    // The administrator turns the screen off for good; an upgrade must not turn it back on.
    let out = in_scratch_root(
        state.path(),
        &format!(
            ": >/var/log/systemctl.calls; systemctl disable kiosk-browser.service >/dev/null 2>&1; \
             dpkg --force-depends -i {deb} >/dev/null 2>&1; ls {wants}; echo ---; cat /var/log/systemctl.calls"
        ),
    );
    let (enabled, calls) = out.split_once("---\n").expect("marker");
    assert!(
        !enabled.lines().any(|l| l == "kiosk-browser.service"),
        "the upgrade re-enabled a unit the administrator disabled:\n{enabled}"
    );
    assert!(enabled.lines().any(|l| l == "kiosk.service"), "{enabled}");
    assert!(
        calls
            .lines()
            .any(|l| l == "--no-block restart kiosk.service"),
        "upgrade did not restart kiosk.service:\n{calls}"
    );
    for call in calls.lines() {
        let verb = call
            .split_whitespace()
            .find(|w| !w.starts_with('-'))
            .unwrap_or("");
        assert!(
            !["start", "restart", "try-restart", "reload"].contains(&verb)
                || call.contains("--no-block"),
            "a blocking `systemctl {call}` in the upgrade"
        );
    }
    assert!(
        !calls
            .lines()
            .any(|l| l.contains("kiosk-browser.service") && l.contains("restart")),
        "the upgrade restarted the disabled screen:\n{calls}"
    );

    // Purge.
    let out = in_scratch_root(
        state.path(),
        "dpkg --purge kiosk >/dev/null 2>&1; \
         for u in tech shopadmin; do getent passwd $u >/dev/null && echo \"user $u\"; done; \
         ls /etc/sudoers.d /etc/ssh/sshd_config.d; ls -d /home/* /etc/kiosk /var/lib/kiosk /var/lib/kiosk-firstboot 2>/dev/null || true; \
         ls /etc/systemd/system/multi-user.target.wants",
    );
    assert!(
        !out.contains("user tech"),
        "purge left the technician account:\n{out}"
    );
    assert!(
        !out.contains("/home/tech"),
        "purge left the technician's home:\n{out}"
    );
    assert!(
        !out.contains("010-kiosk-technician"),
        "purge left the NOPASSWD sudoers file:\n{out}"
    );
    assert!(
        out.contains("user shopadmin") && out.contains("/home/shopadmin"),
        "{out}"
    );
    assert!(
        out.contains("020-shop"),
        "purge removed the administrator's sudoers file:\n{out}"
    );
    assert!(
        out.contains("10-kiosk.conf"),
        "purge removed an sshd drop-in the administrator had changed:\n{out}"
    );
    for gone in ["/etc/kiosk", "/var/lib/kiosk", "/var/lib/kiosk-firstboot"] {
        assert!(!out.lines().any(|l| l == gone), "purge left {gone}:\n{out}");
    }
    assert!(
        !out.contains("kiosk.service") && !out.contains("kiosk-screen-restart.path"),
        "{out}"
    );
}

/// First boot of a kiosk whose network is down: apt can neither refresh its lists nor fetch the
/// screen the package depends on. First boot retries (bounded), logs each attempt, then fails
/// with a line saying the kiosk is not installed, keeping the enrollment code for the next boot;
/// it never falls back to `dpkg -i`, which would install a kiosk without its screen.
#[test]
fn first_boot_offline_retries_then_fails_clearly_and_never_installs_a_kiosk_without_its_screen() {
    let b = built();
    let state = tempfile::tempdir_in(b.root.parent().expect("dir")).expect("scratch dir");
    let out = in_scratch_root_with(
        state.path(),
        &format!(
            "rm -f /usr/sbin/policy-rc.d; k=/boot/firmware/kiosk; mkdir -p $k; cp {deb} $k/; \
             echo K7Q2-9XD4-PL3M >$k/enroll.code; \
             printf 'KIOSK_PROFILE=simulated\\nKIOSK_ENDPOINT=https://crm.example.invalid\\n' >$k/firstboot.env; \
             rc=0; KIOSK_NTP_WAIT_S=0 KIOSK_INSTALL_TRIES=2 KIOSK_INSTALL_RETRY_S=0 \
             bash {firstboot} $k >/dev/null 2>&1 || rc=$?; echo \"exit $rc\"; \
             dpkg-query -W -f='${{Status}}\\n' kiosk 2>/dev/null || echo 'kiosk not installed'; \
             ls $k; echo ---; cat $k/firstboot.log",
            deb = b.deb.display(),
            firstboot = b.root.join("usr/lib/kiosk/firstboot").display(),
        ),
        &["--net"],
    );
    let (state_lines, log) = out.split_once("---\n").expect("marker");
    assert!(
        state_lines.contains("exit 1"),
        "first boot did not fail:\n{out}"
    );
    assert!(
        state_lines.contains("kiosk not installed"),
        "the kiosk got installed without its screen:\n{out}"
    );
    assert!(
        state_lines.lines().any(|l| l == "enroll.code"),
        "the enrollment code must stay for the next boot:\n{out}"
    );
    assert!(
        log.contains(
            "failed (attempt 1 of 2: offline, or the package mirror unreachable?); retrying in 0s"
        ),
        "{log}"
    );
    assert!(
        log.contains("after 2 attempts")
            && log.contains("the kiosk is NOT installed; the next boot tries again"),
        "{log}"
    );
    assert!(!log.contains("attempt 3"), "retries are bounded:\n{log}");
}

/// A kiosk flashed before first boot kept its record (no /var/lib/kiosk-firstboot): purge still
/// finds the technician account by its comment and first boot's files by their exact contents.
#[test]
fn purge_of_a_kiosk_set_up_before_first_boot_kept_a_record_removes_its_technician_too() {
    let b = built();
    let state = tempfile::tempdir_in(b.root.parent().expect("dir")).expect("scratch dir");
    std::fs::write(state.path().join("systemctl"), SYSTEMCTL_STUB).expect("stub");
    let out = in_scratch_root(
        state.path(),
        &format!(
            "install -m 0755 {stub} /usr/local/sbin/systemctl; \
             k=/boot/firmware/kiosk; mkdir -p $k /etc/sudoers.d; cp {firstboot} $k/firstboot; \
             cp {unit} $k/; echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk4 tech@laptop' >$k/authorized_keys; \
             printf 'KIOSK_SSH_USER=fieldtech\\n' >$k/firstboot.env; \
             bash $k/firstboot --bootstrap $k >/dev/null; rm -r /var/lib/kiosk-firstboot; \
             useradd --create-home --comment 'shop admin' shopadmin; \
             dpkg --force-depends -i {deb} >/dev/null 2>&1; dpkg --purge kiosk >/dev/null 2>&1; \
             for u in fieldtech shopadmin; do getent passwd $u >/dev/null && echo \"user $u\"; done; \
             ls /etc/sudoers.d /etc/ssh/sshd_config.d",
            stub = state.path().join("systemctl").display(),
            firstboot = b.root.join("usr/lib/kiosk/firstboot").display(),
            unit = b
                .root
                .join("usr/lib/systemd/system/kiosk-firstboot.service")
                .display(),
            deb = b.deb.display(),
        ),
    );
    assert!(
        !out.contains("user fieldtech"),
        "purge left the technician:\n{out}"
    );
    assert!(
        out.contains("user shopadmin"),
        "purge removed an administrator's account:\n{out}"
    );
    assert!(!out.contains("010-kiosk-technician"), "{out}");
    assert!(!out.contains("10-kiosk.conf"), "{out}");
}
