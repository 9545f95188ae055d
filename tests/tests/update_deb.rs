//! Safe updates with the real package and the real dpkg: the .deb that `scripts/package` builds
//! (the same build as packaging_deb.rs, shared per nextest run) is installed with dpkg into a
//! throwaway copy of this machine (an overlay over `/`, chrooted, as packaging_deb.rs does), then
//! `kiosk apply-update` — the root helper that kiosk-update.service runs — is asked to install
//! releases signed with a test release key pinned at `/etc/kiosk/release-key.pub`:
//!
//! - an unsigned release and a tampered one (a byte of the signed package changed) are refused
//!   before dpkg runs (dpkg's log does not grow, the installed version stays);
//! - an older release, genuinely signed, is refused before dpkg runs unless the operator's signed
//!   pin of this kiosk to it lies beside it (docs/SECURITY.md: downgrades), while the helper's
//!   own rollback to the previous (older) package below stays allowed;
//! - a bad release (its hardware profile broken, so its self-test fails) is installed by dpkg,
//!   fails its trial, and the previous package (kept, verified) is reinstalled by dpkg; the
//!   outcome file the firmware reports says so and why.
//!
//! - a good release, on a kiosk provisioned against a real CRM endpoint (in this process, on
//!   loopback) whose new firmware really runs, syncs and passes `kiosk selftest`, is kept; the
//!   firmware reports the outcome as a `firmware_updated` event and the CRM counts the install.
//!
//! Releases are the built package repacked with `dpkg-deb` under a new Debian version (and, for
//! the bad one, a broken conffile): what changes between two real releases of this firmware.
//! Runs as root (mount namespace, chroot), like packaging_deb's maintainer-script tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use kiosk_protocol::release::{ReleaseManifest, ReleaseSigningKey};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_owned()
}

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

/// The package: under nextest, the one packaging_deb.rs builds for the run (same directory and
/// lock); under plain `cargo test`, built here.
fn built_deb() -> &'static PathBuf {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        // A developer iterating on this test alone may point it at a package just built.
        if let Ok(deb) = std::env::var("KIOSK_TEST_DEB") {
            return PathBuf::from(deb);
        }
        let base = target_dir().join("packaging-test");
        std::fs::create_dir_all(&base).expect("packaging-test dir");
        let dir = match std::env::var("NEXTEST_RUN_ID") {
            Ok(run) => base.join(run),
            Err(_) => base.join(format!("update-deb-{}", std::process::id())),
        };
        let lock = std::fs::File::create(base.join(".lock")).expect("lock file");
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock the packaging-test dir");
        if !dir.join("deb-path").exists() {
            std::fs::create_dir_all(&dir).expect("run dir");
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
                .unwrap_or_else(|| panic!("scripts/package printed no `DEB amd64` line:\n{out}"));
            std::fs::write(dir.join("deb-path"), deb).expect("deb path");
        }
        drop(lock);
        PathBuf::from(
            std::fs::read_to_string(dir.join("deb-path"))
                .expect("deb path")
                .trim(),
        )
    })
}

/// Runs `script` as root, chrooted into an overlay of this machine whose changes stay in
/// `state/upper` between calls (see packaging_deb.rs `in_scratch_root`). Returns stdout; the
/// script's exit status is its own business (`; echo rc=$?`).
fn in_scratch_root(state: &Path, script: &str) -> String {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the update test installs the package with dpkg in a scratch root: run as root"
    );
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(state.join(d)).expect("mkdir");
    }
    let setup = format!(
        "set -e; mount -t overlay overlay -o lowerdir=/,upperdir={s}/upper,workdir={s}/work {s}/merged; \
         mount --bind /dev {s}/merged/dev; mount -t proc proc {s}/merged/proc; \
         mount -t tmpfs tmpfs {s}/merged/run; \
         exec chroot {s}/merged /bin/sh -c \"$0\"",
        s = state.display()
    );
    let script = format!(
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; {script}"
    );
    stdout(
        Command::new("unshare")
            .args(["--mount", "--fork"])
            .args(["sh", "-c", &setup, &script]),
    )
}

fn version_of(deb: &Path) -> String {
    stdout(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version"))
        .trim()
        .to_owned()
}

/// The built package repacked as `version`, with `edit` applied to its unpacked tree.
fn repack(deb: &Path, dir: &Path, version: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let tree = dir.join(format!("tree-{version}"));
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).expect("control");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("Version: ") {
                format!("Version: {version}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&control, text).expect("control");
    edit(&tree);
    let out = dir.join(format!("kiosk_{version}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&tree)
        .arg(&out));
    out
}

/// Empty stand-in packages for the package's dependencies this machine lacks (here: `cage`, the
/// screen's compositor, and `udev`): the helper runs dpkg as a kiosk does, without
/// `--force-depends`, so the scratch root must satisfy them. Nothing of the update path uses them.
fn stand_ins(deb: &Path, dir: &Path) -> Vec<PathBuf> {
    let depends = stdout(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Depends"));
    let mut out = Vec::new();
    for dep in depends.split(',') {
        let names: Vec<&str> = dep
            .split('|')
            .map(|alt| alt.split_whitespace().next().unwrap_or_default())
            .collect();
        let installed = names.iter().any(|name| {
            Command::new("dpkg-query")
                .args(["-W", "-f", "${Status}", name])
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"install ok installed"))
        });
        if installed {
            continue;
        }
        let name = names[0];
        let tree = dir.join(format!("stand-in-{name}"));
        std::fs::create_dir_all(tree.join("DEBIAN")).expect("stand-in dir");
        std::fs::write(
            tree.join("DEBIAN/control"),
            format!(
                "Package: {name}\nVersion: 999\nArchitecture: all\n\
                 Maintainer: kiosk tests <t@example.invalid>\n\
                 Description: empty stand-in for the update test's scratch root\n"
            ),
        )
        .expect("control");
        let pkg = dir.join(format!("stand-in-{name}.deb"));
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(&pkg));
        out.push(pkg);
    }
    out
}

/// The scratch root's first install: the stand-ins, then the package, forcing nothing.
fn install_script(deb: &Path, dir: &Path) -> String {
    let stand_ins: Vec<String> = stand_ins(deb, dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let stand_ins = if stand_ins.is_empty() {
        String::new()
    } else {
        format!("dpkg -i {} >/dev/null;", stand_ins.join(" "))
    };
    format!(
        "rm -f /usr/sbin/policy-rc.d; {stand_ins} \
         dpkg -i {} >/tmp/install.log 2>&1 || {{ cat /tmp/install.log; exit 1; }}",
        deb.display()
    )
}

/// Puts `deb` and its signature where the firmware downloads releases, as the firmware would.
fn offer(state: &Path, deb: &Path, version: &str, signature: Option<String>) {
    let downloads = state.join("upper/var/lib/kiosk/downloads");
    std::fs::create_dir_all(&downloads).expect("downloads");
    let stem = format!("kiosk_{version}_amd64");
    std::fs::copy(deb, downloads.join(format!("{stem}.deb"))).expect("copy deb");
    let sig = downloads.join(format!("{stem}.sig"));
    match signature {
        Some(s) => std::fs::write(&sig, s).expect("sig"),
        None => {
            let _ = std::fs::remove_file(&sig);
        }
    }
}

fn signed(key: &ReleaseSigningKey, deb: &Path, version: &str) -> String {
    let manifest =
        ReleaseManifest::of_package(version, "amd64", std::fs::File::open(deb).expect("deb"))
            .expect("manifest");
    serde_json::to_string(&manifest.sign(key)).expect("json")
}

/// The firmware's request, the helper's run, and what dpkg says afterwards.
struct Attempt {
    outcome: serde_json::Value,
    installed: String,
    dpkg_log_grew: bool,
    output: String,
}

fn attempt(state: &Path, version: &str) -> Attempt {
    let out = in_scratch_root(
        state,
        &format!(
            "mkdir -p /run/kiosk; echo {version} >/run/kiosk/update-request; \
             before=$(wc -l </var/log/dpkg.log); \
             kiosk apply-update --confirm-s 4 >/tmp/apply.out 2>&1; echo \"rc=$?\"; \
             after=$(wc -l </var/log/dpkg.log); echo \"dpkg-log $before $after\"; \
             echo \"installed $(dpkg-query -W -f='${{Version}}' kiosk)\"; \
             echo ---; cat /var/lib/kiosk/update-outcome.json; echo ---; cat /tmp/apply.out"
        ),
    );
    let mut parts = out.splitn(3, "---\n");
    let head = parts.next().unwrap_or_default();
    let outcome = parts.next().unwrap_or_default();
    let tail = parts.next().unwrap_or_default();
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
            .to_owned()
    };
    let counts: Vec<u64> = field("dpkg-log")
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    Attempt {
        outcome: serde_json::from_str(outcome)
            .unwrap_or_else(|e| panic!("outcome file is not JSON ({e}):\n{out}")),
        installed: field("installed"),
        dpkg_log_grew: counts[1] > counts[0],
        output: format!("{head}\n{tail}"),
    }
}

#[test]
fn unsigned_and_tampered_releases_are_refused_before_dpkg_and_a_bad_release_is_rolled_back() {
    let deb = built_deb();
    let work = tempfile::tempdir_in(deb.parent().expect("debs dir")).expect("work dir");
    let state = work.path().join("root");
    let key = ReleaseSigningKey::generate();
    let v1 = version_of(deb);
    let v2 = format!("{v1}+upd2");
    let v3 = format!("{v1}+upd3");
    let good = repack(deb, work.path(), &v2, |_| {});
    let bad = repack(deb, work.path(), &v3, |tree| {
        // A release whose hardware profile does not parse: the new version's self-test fails.
        let profile = tree.join("etc/kiosk/hw-config/pi4-mfrc522-usb-printer.toml");
        let mut text = std::fs::read_to_string(&profile).expect("profile");
        text.push_str("\n[card_reader\nbroken = \n");
        std::fs::write(&profile, text).expect("profile");
    });

    // The kiosk as a technician leaves it: v1 installed with dpkg, the release key pinned, and
    // v1's signed package kept by its last update.
    let pinned = key.public().to_base64();
    let out = in_scratch_root(
        &state,
        &format!(
            "set -e; {install}; \
             echo {pinned} >/etc/kiosk/release-key.pub; \
             stat -c '%U:%G %a %n' /var/lib/kiosk/downloads /var/lib/kiosk/releases; \
             dpkg-query -W -f='${{Version}}' kiosk",
            install = install_script(deb, work.path())
        ),
    );
    assert!(out.ends_with(&v1), "v1 not installed:\n{out}");
    assert!(
        out.contains("kiosk:kiosk 750 /var/lib/kiosk/downloads")
            && out.contains("root:root 755 /var/lib/kiosk/releases"),
        "postinst made no downloads (kiosk's) and releases (root's) directories:\n{out}"
    );
    offer(&state, deb, &v1, Some(signed(&key, deb, &v1)));

    // Unsigned: refused, nothing installed, dpkg never ran.
    offer(&state, &good, &v2, None);
    let a = attempt(&state, &v2);
    assert_eq!(a.outcome["result"], "refused", "{}", a.output);
    let reason = a.outcome["reason"].as_str().unwrap();
    assert!(reason.contains("is not signed"), "{reason}");
    assert_eq!(a.installed, v1, "{}", a.output);
    assert!(
        !a.dpkg_log_grew,
        "dpkg ran for an unsigned release:\n{}",
        a.output
    );
    assert!(a.output.contains("rc=1"), "{}", a.output);

    // Signed by another key: refused the same way.
    let stranger = ReleaseSigningKey::generate();
    offer(&state, &good, &v2, Some(signed(&stranger, &good, &v2)));
    let a = attempt(&state, &v2);
    assert_eq!(a.outcome["result"], "refused", "{}", a.output);
    assert!(
        a.outcome["reason"]
            .as_str()
            .unwrap()
            .contains("does not match the pinned release key"),
        "{}",
        a.outcome
    );
    assert!(!a.dpkg_log_grew, "{}", a.output);

    // Tampered: the genuine signature, one byte of the package changed afterwards.
    let signature = signed(&key, &good, &v2);
    let mut bytes = std::fs::read(&good).expect("deb");
    let last = bytes.len() - 100;
    bytes[last] ^= 0x01;
    let tampered = work.path().join("tampered.deb");
    std::fs::write(&tampered, &bytes).expect("tampered");
    offer(&state, &tampered, &v2, Some(signature));
    let a = attempt(&state, &v2);
    assert_eq!(a.outcome["result"], "refused", "{}", a.output);
    assert!(
        a.outcome["reason"]
            .as_str()
            .unwrap()
            .contains("the package is not the signed one"),
        "{}",
        a.outcome
    );
    assert_eq!(a.installed, v1);
    assert!(
        !a.dpkg_log_grew,
        "dpkg ran for a tampered package:\n{}",
        a.output
    );

    // An older release, genuinely signed (a known flaw a CRM could offer): refused before dpkg.
    let v0 = format!("{v1}~old");
    let old = repack(deb, work.path(), &v0, |_| {});
    offer(&state, &old, &v0, Some(signed(&key, &old, &v0)));
    let a = attempt(&state, &v0);
    assert_eq!(a.outcome["result"], "refused", "{}", a.output);
    let reason = a.outcome["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("release {v0} is older than the installed {v1}"))
            && reason.contains("signed pin")
            && reason.contains("there is none"),
        "{reason}"
    );
    assert_eq!(a.installed, v1);
    assert!(!a.dpkg_log_grew, "dpkg ran for a downgrade:\n{}", a.output);
    // A pin signed by another key beside it: refused the same way.
    let stranger_pin = kiosk_protocol::release::PinManifest {
        kiosk_id: "any".into(),
        version: v0.clone(),
        not_after: i64::MAX,
    }
    .sign(&stranger);
    std::fs::write(
        state.join(format!(
            "upper/var/lib/kiosk/downloads/kiosk_{v0}_amd64.pin"
        )),
        serde_json::to_string(&stranger_pin).unwrap(),
    )
    .unwrap();
    let a = attempt(&state, &v0);
    assert_eq!(a.outcome["result"], "refused", "{}", a.output);
    assert!(!a.dpkg_log_grew, "dpkg ran for a downgrade:\n{}", a.output);

    // The bad release: signed, installed by dpkg, fails its self-test, and v1 comes back.
    offer(&state, &bad, &v3, Some(signed(&key, &bad, &v3)));
    let a = attempt(&state, &v3);
    assert_eq!(a.outcome["result"], "rolled_back", "{}", a.output);
    assert_eq!(a.outcome["previous"], v1.as_str());
    let reason = a.outcome["reason"].as_str().unwrap();
    assert!(
        reason.contains("its self-test failed") && reason.contains("config:"),
        "the rollback does not say the self-test failed on the config:\n{reason}"
    );
    assert!(a.dpkg_log_grew);
    assert_eq!(a.installed, v1, "not rolled back:\n{}", a.output);
    let log = in_scratch_root(
        &state,
        "grep -E ' (install|upgrade) kiosk:' /var/log/dpkg.log | tail -n 2; \
         grep -c broken /etc/kiosk/hw-config/pi4-mfrc522-usb-printer.toml || true; \
         ls /var/lib/kiosk/releases",
    );
    assert!(
        log.contains(&format!(" kiosk:amd64 {v1} {v3}"))
            && log.contains(&format!(" kiosk:amd64 {v3} {v1}")),
        "dpkg did not install {v3} then reinstall {v1}:\n{log}"
    );
    assert!(
        log.lines().any(|l| l == "0"),
        "the broken profile of the bad release is still there:\n{log}"
    );
    assert!(
        log.contains(&format!("kiosk_{v1}_amd64.deb")),
        "the rollback package is no longer kept:\n{log}"
    );
}

/// The CRM endpoint on loopback, with the demo store and the release uploaded.
struct Crm {
    db: crm_endpoint::SharedDb,
    addr: std::net::SocketAddr,
}

impl Crm {
    async fn start(dir: &Path) -> Crm {
        let url = format!("sqlite://{}", dir.join("crm.db").display());
        let db = crm_endpoint::db::open(&url).await.unwrap();
        crm_endpoint::seed_demo(&db).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = crm_endpoint::ServeConfig {
            db: db.clone(),
            admin_token: Some("update-deb-test-admin-token-0123456789".into()),
            tls: None,
        };
        tokio::spawn(async move {
            crm_endpoint::serve(config, listener, std::future::pending())
                .await
                .unwrap();
        });
        Crm { db, addr }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_release_runs_syncs_passes_its_self_test_and_is_kept_and_reported() {
    let deb = built_deb().clone();
    let work = tempfile::tempdir_in(deb.parent().expect("debs dir")).expect("work dir");
    let state = work.path().join("root");
    let key = ReleaseSigningKey::generate();
    let v1 = version_of(&deb);
    let v2 = format!("{v1}+good");
    let good = repack(&deb, work.path(), &v2, |_| {});
    let crm = Crm::start(work.path()).await;
    let code = crm_endpoint::api::issue_enroll_code(
        &crm.db,
        crm_endpoint::DEMO_STORE_ID,
        std::time::Duration::from_secs(600),
    )
    .await
    .unwrap()
    .0;
    // The CRM stores the good release, so it can count the kiosk that reports installing it.
    let v2_sig: kiosk_protocol::release::SignedRelease =
        serde_json::from_str(&signed(&key, &good, &v2)).unwrap();
    crm.db
        .put_release(crm_endpoint::db::releases::NewRelease {
            signed: v2_sig.clone(),
            package: std::fs::read(&good).unwrap(),
            uploaded_ms: 1,
        })
        .await
        .unwrap();

    // v1 installed with dpkg, provisioned against the CRM on a bench (simulated) profile, on
    // ports of its own, the key pinned; v1's signed package kept by its last update.
    let ui = free_port();
    let pinned = key.public().to_base64();
    let endpoint = format!("http://{}", crm.addr);
    let st = state.clone();
    let install = install_script(&deb, work.path());
    let out = tokio::task::spawn_blocking(move || {
        in_scratch_root(
            &st,
            &format!(
                "set -e; {install}; \
                 sed -i -e 's/^listen = .*/listen = \"127.0.0.1:{ui}\"/' -e '/^staff_listen/d' /etc/kiosk/site.toml; \
                 printf '\\n[bench]\\npanel = false\\n' >>/etc/kiosk/site.toml; \
                 kiosk provision --non-interactive --no-selftest --profile simulated --endpoint {endpoint} \
                     --code {code} --staff-pin 432105 >/dev/null; \
                 kiosk pin-release-key {pinned}; dpkg-query -W -f='${{Version}}' kiosk"
            ),
        )
    })
    .await
    .unwrap();
    assert!(
        out.ends_with(&v1),
        "v1 not installed and provisioned:\n{out}"
    );
    offer(&state, &deb, &v1, Some(signed(&key, &deb, &v1)));
    offer(
        &state,
        &good,
        &v2,
        Some(serde_json::to_string(&v2_sig).unwrap()),
    );

    // The helper installs v2; the new firmware is started once dpkg has installed it (what
    // kiosk.service's restart by postinst does on a kiosk; no systemd runs here), syncs, and
    // the helper's trial (status, then self-test) keeps it. Then the firmware restarts once
    // more and reports the outcome to the CRM.
    let st = state.clone();
    let v2_text = v2.clone();
    let out = tokio::task::spawn_blocking(move || {
        in_scratch_root(
            &st,
            &format!(
                "mkdir -p /run/kiosk; echo {v2_text} >/run/kiosk/update-request; \
                 kiosk apply-update --confirm-s 150 >/tmp/apply.out 2>&1 & helper=$!; \
                 i=0; until [ \"$(dpkg-query -W -f='${{Version}}' kiosk)\" = {v2_text} ] || [ $i -gt 600 ]; do sleep 0.2; i=$((i+1)); done; \
                 setpriv --reuid=kiosk --regid=kiosk --init-groups -- kiosk run --config /etc/kiosk/site.toml >/tmp/kiosk.log 2>&1 & fw=$!; \
                 wait $helper; echo \"rc=$?\"; kill -TERM $fw; wait $fw || true; \
                 echo \"installed $(dpkg-query -W -f='${{Version}}' kiosk)\"; ls /var/lib/kiosk/releases; \
                 echo ---; cat /var/lib/kiosk/update-outcome.json; echo ---; cat /tmp/apply.out; echo ---; tail -n 30 /tmp/kiosk.log"
            ),
        )
    })
    .await
    .unwrap();
    let mut parts = out.split("---\n");
    let head = parts.next().unwrap_or_default();
    let outcome: serde_json::Value = serde_json::from_str(parts.next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no outcome ({e}):\n{out}"));
    assert_eq!(outcome["result"], "installed", "{out}");
    assert!(head.contains("rc=0"), "{out}");
    assert!(head.contains(&format!("installed {v2}")), "{out}");
    assert!(
        head.contains(&format!("kiosk_{v1}_amd64.deb"))
            && head.contains(&format!("kiosk_{v2}_amd64.deb")),
        "the installed and the previous package are not both kept:\n{out}"
    );

    // The firmware's next start journals the outcome and syncs it: the CRM counts the install.
    let st = state.clone();
    let wait_for = crm.db.clone();
    let version = v2.clone();
    let reported = tokio::spawn(async move {
        for _ in 0..600 {
            let list = wait_for.releases().await.unwrap();
            if list
                .iter()
                .any(|r| r.version == version && r.installed == 1)
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        false
    });
    let out = tokio::task::spawn_blocking(move || {
        in_scratch_root(
            &st,
            "setpriv --reuid=kiosk --regid=kiosk --init-groups -- kiosk run --config /etc/kiosk/site.toml >/tmp/kiosk2.log 2>&1 & fw=$!; \
             i=0; while [ -e /var/lib/kiosk/update-outcome.json ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done; \
             sleep 20; kill -TERM $fw; wait $fw || true; ls /var/lib/kiosk; tail -n 20 /tmp/kiosk2.log",
        )
    })
    .await
    .unwrap();
    assert!(
        !out.contains("update-outcome.json"),
        "the firmware did not take the outcome in:\n{out}"
    );
    assert!(
        reported.await.unwrap(),
        "the CRM never counted the kiosk's install of {v2}:\n{out}"
    );
}
