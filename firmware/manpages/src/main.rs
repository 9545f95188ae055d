//! `kiosk-manpages OUTDIR`: writes `kiosk.1` and one page per subcommand (`kiosk-run.1`,
//! `kiosk-provision.1`, ...) from the clap definition the binary itself parses, so the man pages
//! the Debian package ships (scripts/package) can never disagree with `kiosk --help`.
//! `kiosk-manpages --crm-endpoint OUTDIR` writes `crm-endpoint.1` and its subcommands' pages the
//! same way, from `crm_endpoint::cli`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

fn main() -> Result<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match args.as_slice() {
        [out] => kiosk_pages(PathBuf::from(out)),
        [flag, out] if flag == "--crm-endpoint" => crm_endpoint_pages(PathBuf::from(out)),
        _ => bail!(
            "usage: kiosk-manpages OUTDIR (writes kiosk.1 and kiosk-SUBCOMMAND.1 there)\n       \
             kiosk-manpages --crm-endpoint OUTDIR (crm-endpoint.1 and its subcommands' pages)"
        ),
    }
}

/// The CRM endpoint's pages, from `crm_endpoint::cli::Cli` (the server's package or install
/// ships them; the kiosk package does not carry the endpoint).
fn crm_endpoint_pages(out: PathBuf) -> Result<()> {
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let command = crm_endpoint::cli::Cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .after_help(
            "Environment: CRM_DB (database URL), CRM_ADMIN_TOKEN (admin token). \
             Documentation: sync/endpoint/README.md in the source tree.",
        );
    clap_mangen::generate_to(command, &out)
        .with_context(|| format!("cannot write the man pages into {}", out.display()))?;
    for entry in std::fs::read_dir(&out)? {
        println!("{}", entry?.path().display());
    }
    Ok(())
}

fn kiosk_pages(out: PathBuf) -> Result<()> {
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    // The package ships the device build, which has no `kiosk demo` (it answers that the build
    // has no demo): the pages leave it out rather than document a command that cannot run.
    let command = kiosk::cli::Cli::command()
        .version(kiosk::version::VERSION)
        .mut_subcommand("demo", |demo| demo.hide(true))
        .after_help(
            "Files: /etc/kiosk/site.toml (site config), /etc/kiosk/hw-config/ (hardware \
             profiles), /var/lib/kiosk/ (journal and credentials). Documentation: \
             /usr/share/doc/kiosk/.",
        );
    // Subcommand pages carry the parent's date and version; generate_to writes one file per
    // (sub)command, named after its path (kiosk-provision.1).
    clap_mangen::generate_to(command, &out)
        .with_context(|| format!("cannot write the man pages into {}", out.display()))?;
    for entry in std::fs::read_dir(&out)? {
        println!("{}", entry?.path().display());
    }
    Ok(())
}
