//! Stamps the binary with its git commit and target triple for `kiosk version`.

use std::process::Command;

fn main() {
    let commit = std::env::var("KIOSK_GIT_COMMIT").ok().unwrap_or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output();
        let mut commit = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            _ => "unknown".to_owned(),
        };
        let dirty = Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
        if dirty && commit != "unknown" {
            commit.push_str("-dirty");
        }
        commit
    });
    println!("cargo:rustc-env=KIOSK_GIT_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=KIOSK_TARGET={target}");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=KIOSK_PROFILE={profile}");
    println!("cargo:rerun-if-env-changed=KIOSK_GIT_COMMIT");
    for path in ["../.git/HEAD", "../.git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
