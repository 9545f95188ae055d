//! `scripts/flash` on generated Raspberry Pi OS-like images: a partition table (sfdisk), a FAT
//! boot partition at an offset (mtools `mformat`), Bookworm-style (cmdline.txt only) or
//! Trixie-style (cloud-init user-data). The script writes the first-boot kit without mounting;
//! the tests read it back with `mdir`/`mtype`, and check that the script refuses to write to the
//! disk the running system lives on.
//!
//! Needs mtools, fdisk (sfdisk) and dpkg-dev (scripts/apt-packages.txt); a missing tool fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Boot partition start, in 512-byte sectors, as on Raspberry Pi OS images.
const BOOT_START: u64 = 8192;
const BOOT_SECTORS: u64 = 262_144; // 128 MiB: FAT32 needs at least 65,525 clusters
const CMDLINE: &str = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet splash";
const USER_DATA: &str = "#cloud-config\nhostname: raspberrypi\nruncmd:\n  - [echo, imager-was-here]\nusers:\n  - name: pi\n";
const CODE: &str = "K7Q2-9XD4-PL3M";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_owned()
}

fn output(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.env("MTOOLS_SKIP_CHECK", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {shown}: {e} (is it installed? see scripts/apt-packages.txt)")
        })
}

fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{shown} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A 192 MiB sparse image: 128 MiB FAT32 boot partition with cmdline.txt and config.txt, and a root partition.
fn make_image(dir: &Path, cloud_init: bool) -> PathBuf {
    let img = dir.join("raspios.img");
    fs::File::create(&img)
        .and_then(|f| f.set_len(192 << 20))
        .expect("sparse image file");
    let mut sfdisk = Command::new("sfdisk")
        .arg("--quiet")
        .arg(&img)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sfdisk (apt-get install fdisk)");
    let table = format!(
        "label: dos\nstart={BOOT_START}, size={BOOT_SECTORS}, type=c\nstart={}, type=83\n",
        BOOT_START + BOOT_SECTORS
    );
    std::io::Write::write_all(
        sfdisk.stdin.as_mut().expect("sfdisk stdin"),
        table.as_bytes(),
    )
    .expect("write table");
    drop(sfdisk.stdin.take());
    assert!(sfdisk.wait().expect("sfdisk").success(), "sfdisk failed");
    let fat = fat(&img);
    run(Command::new("mformat").args([
        "-i",
        &fat,
        "-F",
        "-T",
        &BOOT_SECTORS.to_string(),
        "-v",
        "bootfs",
        "::",
    ]));
    let files = dir.join("bootfiles");
    fs::create_dir_all(&files).expect("mkdir");
    fs::write(files.join("cmdline.txt"), format!("{CMDLINE}\n")).expect("cmdline");
    fs::write(
        files.join("config.txt"),
        "# http://rptl.io/configtxt\n#dtparam=spi=on\ndtoverlay=vc4-kms-v3d\n[all]\n",
    )
    .expect("config");
    let mut copy = Command::new("mcopy");
    copy.args(["-i", &fat])
        .arg(files.join("cmdline.txt"))
        .arg(files.join("config.txt"));
    if cloud_init {
        fs::write(files.join("user-data"), USER_DATA).expect("user-data");
        fs::write(files.join("meta-data"), "instance-id: rpios-image\n").expect("meta-data");
        copy.arg(files.join("user-data"))
            .arg(files.join("meta-data"));
    }
    run(copy.arg("::/"));
    img
}

/// mtools drive spec of the boot partition.
fn fat(img: &Path) -> String {
    format!("{}@@{}", img.display(), BOOT_START * 512)
}

fn mtype(img: &Path, path: &str) -> String {
    run(Command::new("mtype").args(["-i", &fat(img), &format!("::{path}")]))
}

fn mfiles(img: &Path, dir: &str) -> Vec<String> {
    run(Command::new("mdir").args(["-b", "-i", &fat(img), &format!("::{dir}")]))
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A minimal `kiosk` package for `arch`: flash only reads its control fields.
fn fake_deb(dir: &Path, version: &str, arch: &str) -> PathBuf {
    let tree = dir.join(format!("deb-{version}-{arch}"));
    fs::create_dir_all(tree.join("DEBIAN")).expect("mkdir");
    fs::write(
        tree.join("DEBIAN/control"),
        format!("Package: kiosk\nVersion: {version}\nArchitecture: {arch}\nMaintainer: test <t@example.invalid>\nDescription: test\n"),
    )
    .expect("control");
    let deb = dir.join(format!("kiosk_{version}_{arch}.deb"));
    run(Command::new("dpkg-deb").arg("--build").arg(&tree).arg(&deb));
    deb
}

struct Kit {
    dir: tempfile::TempDir,
    site: PathBuf,
    key: PathBuf,
}

fn kit() -> Kit {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = dir.path().join("site.toml");
    fs::copy(repo().join("firmware/config/site.example.toml"), &site).expect("site example");
    let key = dir.path().join("tech.pub");
    fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAmkpvTYrxVYBlqg0XGH1nBGWCrD+y7rQv0fCbKUaLUH tech@laptop\n")
        .expect("key");
    Kit { dir, site, key }
}

fn flash(k: &Kit, img: &Path, deb: &Path, profile: &str, extra: &[&str]) -> Output {
    output(
        Command::new(repo().join("scripts/flash"))
            .arg("--image")
            .arg(img)
            .arg("--deb")
            .arg(deb)
            .arg("--site")
            .arg(&k.site)
            .args(["--profile", profile, "--code", CODE])
            .args(extra),
    )
}

fn flash_ok(k: &Kit, img: &Path, deb: &Path, profile: &str, extra: &[&str]) -> String {
    let out = flash(k, img, deb, profile, extra);
    assert!(
        out.status.success(),
        "scripts/flash failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn flashing_an_image_puts_the_first_boot_kit_in_the_boot_partition() {
    let k = kit();
    let img = make_image(k.dir.path(), false);
    let deb = fake_deb(k.dir.path(), "0.1.0-1", "arm64");
    let key = k.key.display().to_string();
    let said = flash_ok(
        &k,
        &img,
        &deb,
        "pi4-mfrc522-usb-printer",
        &[
            "--wifi-ssid",
            "Tienda 24",
            "--wifi-psk",
            "s3cret-pass",
            "--wifi-country",
            "ES",
            "--ssh-key",
            &key,
        ],
    );
    assert!(
        said.contains("FLASHED") && said.contains("hook=systemd-run"),
        "{said}"
    );

    let mut files = mfiles(&img, "/kiosk");
    files.sort();
    assert_eq!(
        files,
        [
            "authorized_keys",
            "bootstrap",
            "enroll.code",
            "firstboot",
            "firstboot.env",
            "kiosk-firstboot.service",
            "kiosk_0.1.0-1_arm64.deb",
            "site.toml",
            "wifi.nmconnection"
        ]
    );
    assert_eq!(mtype(&img, "/kiosk/enroll.code").trim(), CODE);
    assert_eq!(
        mtype(&img, "/kiosk/site.toml"),
        fs::read_to_string(&k.site).expect("site")
    );
    assert_eq!(
        mtype(&img, "/kiosk/firstboot"),
        fs::read_to_string(repo().join("firmware/debian/firstboot")).expect("firstboot")
    );
    assert_eq!(
        mtype(&img, "/kiosk/authorized_keys"),
        fs::read_to_string(&k.key).expect("key")
    );
    let env = mtype(&img, "/kiosk/firstboot.env");
    for line in [
        "KIOSK_PROFILE=pi4-mfrc522-usb-printer",
        "KIOSK_ENDPOINT=https://crm.example.com",
        "KIOSK_SSH_USER=tech",
        "KIOSK_WIFI_COUNTRY=ES",
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "firstboot.env lacks `{line}`:\n{env}"
        );
    }
    let wifi = mtype(&img, "/kiosk/wifi.nmconnection");
    assert!(
        wifi.lines().any(|l| l == "ssid=Tienda 24") && wifi.lines().any(|l| l == "psk=s3cret-pass"),
        "{wifi}"
    );
    assert!(wifi.lines().any(|l| l == "key-mgmt=wpa-psk"), "{wifi}");
    // The package on the card is byte for byte the one given.
    let copied = k.dir.path().join("copied.deb");
    run(Command::new("mcopy")
        .args(["-i", &fat(&img), "::/kiosk/kiosk_0.1.0-1_arm64.deb"])
        .arg(&copied));
    assert_eq!(
        fs::read(&copied).expect("copied deb"),
        fs::read(&deb).expect("deb")
    );
    // The bootstrap unit on the card is the packaged one (firstboot rewrites only its ExecStart).
    assert_eq!(
        mtype(&img, "/kiosk/kiosk-firstboot.service"),
        fs::read_to_string(repo().join("firmware/debian/kiosk-firstboot.service")).expect("unit")
    );
}

#[test]
fn bookworm_image_gets_one_systemd_run_hook_even_when_flashed_twice() {
    let k = kit();
    let img = make_image(k.dir.path(), false);
    let deb = fake_deb(k.dir.path(), "0.1.0-1", "arm64");
    flash_ok(&k, &img, &deb, "simulated", &[]);
    flash_ok(&k, &img, &deb, "simulated", &[]);
    let cmdline = mtype(&img, "/cmdline.txt");
    assert_eq!(
        cmdline.lines().count(),
        1,
        "cmdline.txt must stay one line:\n{cmdline}"
    );
    let line = cmdline.trim_end();
    assert!(
        line.starts_with(CMDLINE),
        "original kernel arguments kept: {line}"
    );
    let count = |arg: &str| line.split(' ').filter(|a| *a == arg).count();
    assert_eq!(
        count("systemd.run=/boot/firmware/kiosk/bootstrap"),
        1,
        "{line}"
    );
    assert_eq!(count("systemd.run_success_action=reboot"), 1, "{line}");
    assert_eq!(
        count("systemd.unit=kernel-command-line.target"),
        1,
        "{line}"
    );
    assert_eq!(count("consoleblank=0"), 1, "{line}");
}

#[test]
fn trixie_image_gets_a_cloud_init_runcmd_entry_and_keeps_its_own() {
    let k = kit();
    let img = make_image(k.dir.path(), true);
    let deb = fake_deb(k.dir.path(), "0.1.0-1", "armhf");
    let said = flash_ok(&k, &img, &deb, "simulated", &[]);
    assert!(said.contains("hook=cloud-init"), "{said}");
    flash_ok(&k, &img, &deb, "simulated", &[]);
    let user_data = mtype(&img, "/user-data");
    let lines: Vec<&str> = user_data.lines().collect();
    assert_eq!(lines.first(), Some(&"#cloud-config"));
    let runcmd = lines
        .iter()
        .position(|l| *l == "runcmd:")
        .expect("runcmd block");
    let items: Vec<&str> = lines[runcmd + 1..]
        .iter()
        .take_while(|l| l.starts_with("  - "))
        .copied()
        .collect();
    assert_eq!(
        items,
        [
            "  - [sh, /boot/firmware/kiosk/bootstrap, --now]",
            "  - [echo, imager-was-here]"
        ],
        "{user_data}"
    );
    assert!(
        user_data.contains("users:\n  - name: pi\n"),
        "the image's own user-data is kept:\n{user_data}"
    );
    let cmdline = mtype(&img, "/cmdline.txt");
    assert!(
        !cmdline.contains("systemd.run"),
        "cloud-init images need no kernel command line hook: {cmdline}"
    );
    assert!(mfiles(&img, "/kiosk").contains(&"kiosk_0.1.0-1_armhf.deb".to_owned()));
}

#[test]
fn mfrc522_profile_enables_spi_and_the_simulated_one_does_not() {
    let k = kit();
    let deb = fake_deb(k.dir.path(), "0.1.0-1", "arm64");
    let img = make_image(k.dir.path(), false);
    flash_ok(&k, &img, &deb, "simulated", &[]);
    assert!(
        !mtype(&img, "/config.txt")
            .lines()
            .any(|l| l == "dtparam=spi=on")
    );
    flash_ok(&k, &img, &deb, "pi4-mfrc522-usb-printer", &[]);
    flash_ok(&k, &img, &deb, "pi4-mfrc522-usb-printer", &[]);
    let config = mtype(&img, "/config.txt");
    assert_eq!(
        config.lines().filter(|l| *l == "dtparam=spi=on").count(),
        1,
        "{config}"
    );
    assert!(
        config.contains("dtoverlay=vc4-kms-v3d"),
        "existing settings kept:\n{config}"
    );
}

#[test]
fn reflashing_with_a_newer_package_leaves_only_the_newer_one() {
    let k = kit();
    let img = make_image(k.dir.path(), false);
    flash_ok(
        &k,
        &img,
        &fake_deb(k.dir.path(), "0.1.0-1", "arm64"),
        "simulated",
        &[],
    );
    flash_ok(
        &k,
        &img,
        &fake_deb(k.dir.path(), "0.2.0-1", "arm64"),
        "simulated",
        &[],
    );
    let debs: Vec<String> = mfiles(&img, "/kiosk")
        .into_iter()
        .filter(|f| f.ends_with(".deb"))
        .collect();
    assert_eq!(debs, ["kiosk_0.2.0-1_arm64.deb"]);
}

#[test]
fn a_package_built_for_a_pc_is_refused_with_the_fix() {
    let k = kit();
    let img = make_image(k.dir.path(), false);
    let out = flash(
        &k,
        &img,
        &fake_deb(k.dir.path(), "0.1.0-1", "amd64"),
        "simulated",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("built for amd64") && err.contains("scripts/package arm64"),
        "{err}"
    );
    assert!(
        !mfiles(&img, "/").iter().any(|f| f == "kiosk"),
        "nothing may be written after a refusal"
    );
}

/// The block device `/` is mounted from or, when `/` is an overlay (containers), the first
/// mounted filesystem whose source is a block device node.
fn mounted_block_device() -> PathBuf {
    let is_block = |p: &Path| {
        fs::metadata(p)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
    };
    let root = run(Command::new("findmnt").args(["-no", "SOURCE", "/"]));
    let root = PathBuf::from(root.trim().split('[').next().unwrap_or_default());
    if is_block(&root) {
        return root;
    }
    let mounts = fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
    mounts
        .lines()
        .filter_map(|l| l.split(' ').next())
        .map(PathBuf::from)
        .find(|p| is_block(p))
        .unwrap_or_else(|| panic!("no filesystem here is mounted from a block device node in /dev, so the refusal cannot be exercised:\n{mounts}"))
}

#[test]
fn refuses_the_disk_the_running_system_is_mounted_from() {
    let k = kit();
    let deb = fake_deb(k.dir.path(), "0.1.0-1", "arm64");
    let dev = mounted_block_device();
    let mut candidates = vec![dev.clone()];
    // A partition: its whole disk must be refused too.
    let parent = run(Command::new("lsblk").args(["-ndo", "PKNAME"]).arg(&dev));
    if !parent.trim().is_empty() {
        candidates.push(PathBuf::from("/dev").join(parent.trim()));
    }
    for device in candidates {
        let out = output(
            Command::new(repo().join("scripts/flash"))
                .arg("--device")
                .arg(&device)
                .arg("--deb")
                .arg(&deb)
                .arg("--site")
                .arg(&k.site)
                .args(["--profile", "simulated", "--code", CODE, "--yes"]),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "flash accepted {}: {err}",
            device.display()
        );
        assert!(
            err.contains(&format!("refusing to write to {}", device.display())),
            "unclear refusal: {err}"
        );
    }
}

#[test]
fn a_regular_file_given_as_device_is_refused_with_the_fix() {
    let k = kit();
    let img = make_image(k.dir.path(), false);
    let deb = fake_deb(k.dir.path(), "0.1.0-1", "arm64");
    let out = output(
        Command::new(repo().join("scripts/flash"))
            .arg("--device")
            .arg(&img)
            .arg("--deb")
            .arg(&deb)
            .arg("--site")
            .arg(&k.site)
            .args(["--profile", "simulated", "--code", CODE, "--yes"]),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a block device; for an image file use --image"),
        "{err}"
    );
}
