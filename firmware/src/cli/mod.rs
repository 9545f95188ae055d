//! The `kiosk` command line: what a technician types, and what systemd runs.

mod events;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, LogFormat};

use crate::version::{GIT_COMMIT, TARGET, VERSION};

/// Default site config location on an installed kiosk.
pub const DEFAULT_CONFIG: &str = "/etc/kiosk/site.toml";

/// Self-service kiosk firmware: card reader, scanner, ticket printer, touchscreen and CRM sync.
#[derive(Debug, Parser)]
#[command(name = "kiosk", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr (default: the config's `[logging] format`, else text). `RUST_LOG`
    /// sets the filter, e.g. `RUST_LOG=debug` or `RUST_LOG=info,kiosk_drivers=trace`.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the kiosk with its configured hardware (what kiosk.service starts).
    Run {
        /// Site config.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// The whole kiosk on simulated hardware with an embedded CRM endpoint.
    // Device builds have no demo: hidden from their help and man pages (it refuses to run).
    #[cfg_attr(not(feature = "demo"), command(hide = true))]
    Demo {
        /// Where the demo keeps its journal, CRM database and printed tickets (default: a
        /// `kiosk-demo` directory under the system's temp dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// First of the loopback ports the demo uses (kiosk k's screen is on port + 10 (k - 1)).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// How many kiosks the demo's store has (1 to 8): they share one queue over a simulated
        /// shop LAN whose cables the simulator panel can cut.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
        kiosks: u8,
        /// The store's last kiosk is a browse point (`kiosk.role = "browse"`): a tapped card
        /// sees its turn and the offers for its segment, and takes no ticket (needs --kiosks 2
        /// or more).
        #[arg(long)]
        browse_point: bool,
    },
    /// Validate a site config (and the hardware profile it names) or a hardware profile.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Inspect the journal.
    Events {
        /// Site config (to find the data directory).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Data directory (overrides the config's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Only events not yet acknowledged by the CRM.
        #[arg(long)]
        pending: bool,
        /// One JSON envelope per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Newest N events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Show dead letters (events the CRM rejected) instead.
        #[arg(long)]
        dead_letters: bool,
    },
    /// Print version, git commit and target.
    Version,
    /// Print the SHA-256 of a staff PIN (at least 6 digits), as `ui.staff_pin_sha256`,
    /// `[[ui.staff]] pin_sha256` and the CRM's store config hold it. The PIN is asked for
    /// without echo (or read from standard input's first line), never taken as an argument, so
    /// it stays out of the shell's history and the process list.
    PinDigest,
    /// Enroll this kiosk with the CRM (one-time code), write its site config and credentials
    /// (0600), then run the self-test. Asks for what the flags do not give.
    Provision {
        /// Never ask; every missing answer is an error.
        #[arg(long)]
        non_interactive: bool,
        /// CRM endpoint URL.
        #[arg(long)]
        endpoint: Option<String>,
        /// One-time enrollment code (`crm-endpoint enroll-code --store STORE`).
        #[arg(long)]
        code: Option<String>,
        /// Hardware profile (a hw-config name, e.g. pi4-mfrc522-usb-printer, or a path).
        #[arg(long)]
        profile: Option<String>,
        /// Where site.toml is written.
        #[arg(long, default_value = "/etc/kiosk")]
        config_dir: PathBuf,
        /// Data directory (default: the site config's, else /var/lib/kiosk).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Staff PIN of the counter page (at least 6 digits; stored as SHA-256).
        #[arg(long, env = "KIOSK_STAFF_PIN", hide_env_values = true)]
        staff_pin: Option<String>,
        /// Seconds to spend sending the old identity's unsynced events when re-provisioning.
        #[arg(long, default_value_t = 120)]
        drain_timeout_s: u64,
        /// Re-provision even if old unsynced events could not be sent (they stay in the journal).
        #[arg(long)]
        keep_unsynced: bool,
        /// Do not run the self-test afterwards.
        #[arg(long)]
        no_selftest: bool,
    },
    /// Check every configured device, the CRM link, the clock and the disk; print a test
    /// ticket; ask for a test tap and scan. Exit code 0: passed, 1: failed, 2: warnings only.
    Selftest {
        /// Site config.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Do not ask for a tap and a scan (scripts, first boot).
        #[arg(long)]
        non_interactive: bool,
        /// Seconds to wait for the test tap and the test scan.
        #[arg(long, default_value_t = 30)]
        wait_s: u64,
        /// Do not print the test ticket.
        #[arg(long)]
        no_ticket: bool,
        /// Keep the test ticket's ESC/POS bytes in this file.
        #[arg(long)]
        ticket_copy: Option<PathBuf>,
        /// The result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One screen of truth: devices, journal, unsynced backlog, last sync, clock, disk. Asks the
    /// running kiosk; when it is not running, reads its files. Exit code 0: all good, 1: running
    /// with problems, 2: not running.
    Status {
        /// Site config.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Pin the fleet's release public key (`crm-endpoint release-keygen` printed it): from then
    /// on this kiosk installs only releases signed with its secret half. Run as root; writes
    /// `/etc/kiosk/release-key.pub` (0644).
    PinReleaseKey {
        /// The public key: a file holding it, or the base64 text itself.
        key: String,
        /// Where the key file goes.
        #[arg(long, default_value = "/etc/kiosk")]
        config_dir: PathBuf,
    },
    /// Install a downloaded firmware release (run as root by kiosk-update.service when the
    /// firmware asks): verify its signature against the pinned key, keep the installed package,
    /// `dpkg -i`, then give the new version the confirm window to reach READY, sync and pass its
    /// self-test, else reinstall the previous package. Exit code 0: installed, 1: rolled back or
    /// refused (the outcome file says why).
    ApplyUpdate {
        /// The request the firmware wrote (its first line: the version).
        #[arg(long, default_value = crate::update::REQUEST_PATH)]
        request: PathBuf,
        /// Where the firmware downloaded `kiosk_<version>_<arch>.deb` and `.sig`.
        #[arg(long, default_value = crate::update::DOWNLOADS_DIR)]
        downloads: PathBuf,
        /// Where verified packages are kept (the installed one and the one before).
        #[arg(long, default_value = crate::update::RELEASES_DIR)]
        releases: PathBuf,
        /// The pinned release public key.
        #[arg(long, default_value = kiosk_protocol::release::RELEASE_KEY_PATH)]
        key: PathBuf,
        /// Site config (for the new version's status and self-test).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Where the outcome is written for the firmware to report.
        #[arg(long, default_value = crate::update::OUTCOME_PATH)]
        outcome: PathBuf,
        /// The user the new version's checks run as.
        #[arg(long, default_value = "kiosk")]
        check_user: String,
        /// Seconds the new version has to reach READY, sync and pass its self-test.
        #[arg(long, default_value_t = 600)]
        confirm_s: u64,
    },
    /// Render a sample turn ticket (through the real layout code and the virtual printer), or a
    /// captured ESC/POS stream, as a PNG.
    TicketPreview {
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
        /// Language of the sample ticket.
        #[arg(long, value_enum, default_value_t = LangArg::Es)]
        lang: LangArg,
        /// Render this captured ESC/POS stream instead of the sample ticket.
        #[arg(long)]
        escpos: Option<PathBuf>,
        /// Paper width in mm.
        #[arg(long, value_enum, default_value_t = PaperArg::Mm80)]
        paper: PaperArg,
        /// Print the QR code as a raster image instead of the printer's native QR command.
        #[arg(long)]
        raster_qr: bool,
    },
}

/// Ticket language.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LangArg {
    /// Spanish.
    Es,
    /// English.
    En,
}

/// Paper width.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PaperArg {
    /// 58 mm (384 dots).
    #[value(name = "58")]
    Mm58,
    /// 80 mm (576 dots).
    #[value(name = "80")]
    Mm80,
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    // Everything the kiosk creates (journal, ticket pictures, configs, logs, the data directory)
    // is its own: the files hold card tokens, personal data and secrets.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    let format = match cli.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => LogFormat::Text,
    };
    init_logging(format, None);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::PinDigest => {
            use crate::provision::Prompt as _;
            let pin = crate::provision::Terminal.ask_secret("staff PIN")?;
            crate::provision::check_pin(&pin)?;
            println!("{}", crate::ui::pin_digest(&pin));
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("kiosk {VERSION}");
            println!("commit {GIT_COMMIT}");
            println!("target {TARGET}");
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Status { config, json } => status(&config, json),
        Command::Selftest {
            config,
            non_interactive,
            wait_s,
            no_ticket,
            ticket_copy,
            json,
        } => {
            let opts = crate::selftest::Options {
                config,
                interactive: !non_interactive,
                wait: std::time::Duration::from_secs(wait_s),
                ticket: !no_ticket,
                ticket_copy,
            };
            let report = tokio_runtime()?
                .block_on(crate::selftest::run(&opts, &mut crate::selftest::Stdout));
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::PinReleaseKey { key, config_dir } => {
            use std::os::unix::fs::PermissionsExt as _;
            let text = match std::fs::read_to_string(&key) {
                Ok(t) => t,
                Err(_) => key.clone(),
            };
            let parsed = kiosk_protocol::release::ReleasePublicKey::parse(&text)
                .map_err(|e| anyhow::anyhow!("{e}: give the .pub file or its base64 text"))?;
            std::fs::create_dir_all(&config_dir)?;
            let path = config_dir.join("release-key.pub");
            std::fs::write(&path, format!("{}\n", parsed.to_base64()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
            println!(
                "release key pinned in {}: {}",
                path.display(),
                parsed.to_base64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ApplyUpdate {
            request,
            downloads,
            releases,
            key,
            config,
            outcome,
            check_user,
            confirm_s,
        } => {
            let opts = crate::update::Options {
                request,
                downloads,
                releases,
                key,
                config,
                outcome,
                // The installed binary, not this process's (dpkg replaces it under us).
                kiosk_bin: PathBuf::from("/usr/bin/kiosk"),
                run_checks_as: Some(check_user),
                confirm: std::time::Duration::from_secs(confirm_s),
                poll: std::time::Duration::from_secs(2),
            };
            let done = crate::update::apply(&opts)?;
            println!("{}", serde_json::to_string_pretty(&done)?);
            Ok(if done.result == crate::update::OutcomeKind::Installed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Provision {
            non_interactive,
            endpoint,
            code,
            profile,
            config_dir,
            data_dir,
            staff_pin,
            drain_timeout_s,
            keep_unsynced,
            no_selftest,
        } => {
            let opts = crate::provision::Options {
                endpoint,
                code,
                profile,
                config_dir,
                data_dir,
                staff_pin,
                non_interactive,
                drain_timeout: std::time::Duration::from_secs(drain_timeout_s),
                keep_unsynced,
            };
            let rt = tokio_runtime()?;
            let done = rt.block_on(crate::provision::provision(
                &opts,
                &mut crate::provision::Terminal,
            ))?;
            println!(
                "provisioned: kiosk {} of store {}",
                done.kiosk_id, done.store_id
            );
            println!("  site config  {}", done.site_config.display());
            println!("  credentials  {}", done.credentials.display());
            if let Some(prev) = &done.previous_kiosk_id {
                println!(
                    "  replaced kiosk {prev}: {} unsynced events sent first, {} left in the journal",
                    done.drained, done.left_unsynced
                );
            }
            println!("start it with: sudo systemctl restart kiosk");
            if no_selftest {
                return Ok(ExitCode::SUCCESS);
            }
            println!();
            let report = rt.block_on(crate::selftest::run(
                &crate::selftest::Options {
                    config: done.site_config,
                    interactive: !non_interactive,
                    wait: std::time::Duration::from_secs(30),
                    ticket: true,
                    ticket_copy: None,
                },
                &mut crate::selftest::Stdout,
            ));
            print!("{}", report.to_text());
            Ok(ExitCode::from(report.exit_code()))
        }
        Command::TicketPreview {
            out,
            lang,
            escpos,
            paper,
            raster_qr,
        } => {
            ticket_preview(&out, lang, escpos.as_deref(), paper, raster_qr)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Events {
            config,
            data_dir,
            pending,
            json,
            limit,
            dead_letters,
        } => {
            let data_dir = match data_dir {
                Some(d) => d,
                None => Config::load(&config)?.site.kiosk.data_dir,
            };
            events::print(
                &data_dir,
                events::Options {
                    pending,
                    json,
                    limit,
                    dead_letters,
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => {
            tokio_runtime()?.block_on(run_kiosk(&config))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            data_dir,
            port,
            kiosks,
            browse_point,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| std::env::temp_dir().join("kiosk-demo"));
            tokio_runtime()?.block_on(crate::demo::run(crate::demo::DemoOptions {
                data_dir,
                port,
                kiosks: usize::from(kiosks),
                browse_point,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => anyhow::bail!(
            "this kiosk build has no demo: device firmware is built without the embedded CRM \
             endpoint (scripts/build-pi); run `kiosk demo` from a development build \
             (cargo run -p kiosk -- demo), or cross-build with `scripts/build-pi --with-demo`"
        ),
    }
}

fn status(config_path: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let live = tokio_runtime()?.block_on(crate::status::fetch_live(&config));
    let status = match live {
        Some(s) => s,
        None => crate::status::offline(&config.site.kiosk.data_dir, &config.hardware.name)?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status.to_text());
    }
    Ok(if !status.running {
        ExitCode::from(2)
    } else if status.problems().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn ticket_preview(
    out: &std::path::Path,
    lang: LangArg,
    escpos: Option<&std::path::Path>,
    paper: PaperArg,
    raster_qr: bool,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use kiosk_drivers::printer::{self, Language, PaperWidth, QrMode};
    let paper = match paper {
        PaperArg::Mm58 => PaperWidth::Mm58,
        PaperArg::Mm80 => PaperWidth::Mm80,
    };
    let qr = if raster_qr {
        QrMode::Raster
    } else {
        QrMode::Native
    };
    let profile = printer::standard_profile(paper, qr);
    let preview = match escpos {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            printer::render_escpos_to_png(&bytes, &profile)?
        }
        None => {
            let lang = match lang {
                LangArg::Es => Language::Es,
                LangArg::En => Language::En,
            };
            printer::render_sample_ticket(lang, &profile)?
        }
    };
    std::fs::write(out, &preview.png).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "{}: {} bytes of PNG, {} lines of text",
        out.display(),
        preview.png.len(),
        preview.record.lines.len()
    );
    Ok(())
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `kiosk run`: the configured kiosk until SIGTERM or Ctrl-C.
async fn run_kiosk(config_path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let data = crate::paths::DataDir::new(&config.site.kiosk.data_dir);
    let credentials = crate::credentials::Credentials::load(&data.credentials())?;
    // A bench kiosk (simulators in the profile) saves its tickets as pictures and gets the
    // simulator panel; real hardware gets neither.
    let bench = crate::bench::wanted(&config).then(|| config.clone());
    let ticket_previews = config
        .hardware
        .printer_is_simulated()
        .then(|| data.tickets());
    let running = crate::runtime::start(crate::runtime::RunOptions {
        config,
        credentials,
        endpoint_url: None,
        ui_listener: None,
        staff_listener: None,
        store_listener: None,
        ticket_previews: ticket_previews.clone(),
        clock: std::sync::Arc::new(kiosk_journal::clock::SystemClock),
        updates: None,
    })
    .await?;
    // The panel is the technician's convenience: a kiosk whose panel cannot listen still runs.
    let panel = match &bench {
        Some(config) => match crate::bench::serve(&running, config).await {
            Ok(panel) => Some(panel),
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "bench kiosk without its simulator panel"
                );
                None
            }
        },
        None => None,
    };
    let _shipper = crate::remote_log::ship_to(running.db.clone());
    let mut serving = format!(
        "serving: screen on http://{}/, staff pages on http://{}/counter",
        running.ui_addr, running.staff_addr
    );
    if let Some(panel) = &panel {
        serving.push_str(&format!(", simulator panel on http://{}/", panel.addr));
    }
    if let Some(dir) = &ticket_previews {
        serving.push_str(&format!(", printed tickets in {}", dir.display()));
    }
    println!("kiosk {serving}");
    crate::service::notify_ready(&serving);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    crate::service::notify_stopping();
    if let Some(panel) = panel {
        panel.stop().await;
    }
    running.stop().await;
    Ok(())
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let text = match crate::config::read_config_text(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    // A hardware profile has top-level `name` and `card_reader`; a site config has `[kiosk]`.
    let is_profile = text
        .lines()
        .any(|l| l.trim_start().starts_with("[card_reader]"));
    let result = if is_profile {
        crate::config::parse_profile(file, &text)
            .map(|p| format!("hardware profile `{}` is valid: {}", p.name, p.description))
    } else {
        Config::from_text(file, &text).map(|c| {
            format!(
                "site config is valid: store `{}`, {} services, hardware profile `{}` ({})",
                c.site.kiosk.store,
                c.site.queue.services.len(),
                c.hardware.name,
                c.hardware_source
            )
        })
    };
    match result {
        Ok(summary) => {
            println!("{}: {summary}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up tracing on stderr: `RUST_LOG` if set, else `default_filter`, else `info`.
pub fn init_logging(format: LogFormat, default_filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter.unwrap_or("info")));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(crate::remote_log::RemoteLogLayer);
    // A second initialisation (tests, demo restarts) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
}
