//! `crm-endpoint`: serve protocol v1, make enrollment codes, import campaigns, seed a demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use crm_endpoint::db::StoreRecord;

#[derive(Parser)]
#[command(
    name = "crm-endpoint",
    version,
    about = "CRM endpoint for the kiosk fleet (protocol v1)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// How registered customers who consented are told their turn is near by SMS or WhatsApp.
#[derive(clap::Args)]
struct SmsArgs {
    /// Tell registered customers who consented to turn notices (`turn_sms`) that their turn
    /// is near, through this provider: `twilio` (needs the --twilio-* options and --sms-from).
    #[arg(long, value_parser = ["twilio"])]
    sms_provider: Option<String>,
    /// Send over SMS or WhatsApp (Twilio's `whatsapp:` numbers).
    #[arg(long, value_parser = ["sms", "whatsapp"], default_value = "sms")]
    sms_channel: String,
    /// The sending number, E.164 (`+15550001111`), owned by the provider account.
    #[arg(long, env = "CRM_SMS_FROM")]
    sms_from: Option<String>,
    /// Country code for customers' numbers registered without one (`+34`).
    #[arg(long)]
    sms_default_country: Option<String>,
    /// Twilio account SID (`AC...`).
    #[arg(long, env = "CRM_TWILIO_ACCOUNT_SID")]
    twilio_account_sid: Option<String>,
    /// Twilio auth token; from the environment, never a flag (a command line is visible to
    /// every user of the machine). Never logged.
    #[arg(
        long,
        env = "CRM_TWILIO_AUTH_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    twilio_auth_token: Option<String>,
    /// Twilio's API base (a test double's address in tests).
    #[arg(long, default_value = crm_endpoint::sms::TWILIO_API)]
    twilio_api: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve HTTP(S) until SIGTERM or Ctrl-C.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Database: sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// Certificate chain (PEM) for HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Private key (PEM) for HTTPS.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Token for the admin API, statistics and the dashboard: at least 32 random characters
        /// (`crm-endpoint admin-token` prints one). Prefer the environment variable to the flag:
        /// a command line is visible to every user of the machine.
        #[arg(long, env = "CRM_ADMIN_TOKEN")]
        admin_token: Option<String>,
        /// Seed the demo store, customers and campaigns first.
        #[arg(long)]
        demo: bool,
        /// Connections open at once, in all (lowered to fit the open-file limit).
        #[arg(long, default_value_t = kiosk_serve::Limits::PUBLIC.max_connections)]
        max_connections: usize,
        /// Connections open at once from one address (an IPv6 /64 is one address); at most a
        /// quarter of --max-connections. Behind a load balancer every request comes from its
        /// address: raise this to --max-connections there.
        #[arg(long, default_value_t = kiosk_serve::Limits::PUBLIC.max_per_peer)]
        max_per_peer: usize,
        /// Turn notices by SMS or WhatsApp.
        #[command(flatten)]
        sms: Box<SmsArgs>,
    },
    /// Print a one-time enrollment code for a store.
    EnrollCode {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// Store id (created if missing, named after --store-name): 1 to 64 of a-z, 0-9, '.',
        /// '_', '-', starting with a letter or digit.
        #[arg(long, value_parser = parse_ident)]
        store: String,
        /// Name of the store, when creating it.
        #[arg(long)]
        store_name: Option<String>,
        /// Validity: a number with s, m, h or d (e.g. 24h); 1 s to 30 days.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: Duration,
    },
    /// Campaign administration.
    Campaigns {
        #[command(subcommand)]
        command: CampaignCmd,
    },
    /// Print a new random admin token (256 bits, base64url) for --admin-token / CRM_ADMIN_TOKEN.
    AdminToken,
    /// Store administration.
    Stores {
        #[command(subcommand)]
        command: StoreCmd,
    },
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Set the time zone a store's times are shown in on the dashboard (an IANA name such as
    /// Europe/Madrid or Atlantic/Canary; without one they are shown in UTC).
    SetTimezone {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// Store id.
        #[arg(long, value_parser = parse_ident)]
        store: String,
        /// IANA time zone name.
        timezone: String,
    },
    /// Set how many turns ahead count as "near" at a store: when the customers' phones (Web
    /// Push) and, for those who consented, SMS tell them their turn is near (default 3).
    SetNotifyAhead {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// Store id.
        #[arg(long, value_parser = parse_ident)]
        store: String,
        /// Turns ahead (0: only when next), at most 50.
        #[arg(value_parser = clap::value_parser!(u32).range(0..=50))]
        turns: u32,
    },
}

#[derive(Subcommand)]
enum CampaignCmd {
    /// Import (create or replace) the campaigns of a TOML or JSON file.
    Import {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// The file.
        file: PathBuf,
    },
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not like 24h, 30m, 7d or 90s"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86400),
        _ => return Err(format!("unit {unit:?} in {s:?} is not s, m, h or d")),
    };
    let ttl = Duration::from_secs(secs);
    crm_endpoint::api::admin::check_enroll_ttl(ttl)?;
    Ok(ttl)
}

fn parse_ident(s: &str) -> Result<String, String> {
    kiosk_protocol::ident::check(s).map_err(|e| format!("the store id {e}"))?;
    Ok(s.to_owned())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[tokio::main]
async fn main() -> Result<()> {
    // The database holds every kiosk's secret, the tenant key and all personal data: nothing the
    // endpoint creates is readable by other users.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Serve {
            listen,
            db,
            tls_cert,
            tls_key,
            admin_token,
            demo,
            max_connections,
            max_per_peer,
            sms,
        } => {
            let SmsArgs {
                sms_provider,
                sms_channel,
                sms_from,
                sms_default_country,
                twilio_account_sid,
                twilio_auth_token,
                twilio_api,
            } = *sms;
            let sms = match sms_provider.as_deref() {
                Some("twilio") => {
                    let (Some(sid), Some(token), Some(from)) =
                        (twilio_account_sid, twilio_auth_token, sms_from)
                    else {
                        anyhow::bail!(
                            "--sms-provider twilio needs --twilio-account-sid, CRM_TWILIO_AUTH_TOKEN and --sms-from"
                        );
                    };
                    let from = crm_endpoint::sms::e164(&from, None)
                        .context("--sms-from must be a full international number (+15550001111)")?;
                    let channel = if sms_channel == "whatsapp" {
                        crm_endpoint::sms::Channel::WhatsApp
                    } else {
                        crm_endpoint::sms::Channel::Sms
                    };
                    let sender =
                        crm_endpoint::sms::Twilio::new(twilio_api, sid, token, from, channel)
                            .context("building the SMS client")?;
                    tracing::info!(provider = "twilio", channel = %sms_channel, "turn notices by SMS");
                    Some(crm_endpoint::push::SmsNotices {
                        sender: std::sync::Arc::new(sender),
                        default_country: sms_default_country,
                    })
                }
                _ => None,
            };
            if let Some(token) = &admin_token {
                crm_endpoint::http::check_admin_token(token).map_err(anyhow::Error::msg)?;
            }
            let open_files = kiosk_serve::raise_open_file_limit();
            let limits = kiosk_serve::Limits {
                max_connections,
                max_per_peer,
                ..kiosk_serve::Limits::PUBLIC
            }
            .fit_open_files(open_files);
            let database = crm_endpoint::db::open(&db)
                .await
                .with_context(|| format!("opening {}", crm_endpoint::db::redact_url(&db)))?;
            if demo {
                let seed = crm_endpoint::seed_demo(&database)
                    .await
                    .context("seeding the demo")?;
                println!(
                    "demo store {:?}; enrollment code {}",
                    seed.store.id, seed.enroll_code
                );
            }
            let tls = match (tls_cert, tls_key) {
                (Some(c), Some(k)) => Some(
                    crm_endpoint::tls::server_config_from_files(&c, &k)
                        .context("loading the tls certificate and key")?,
                ),
                _ => None,
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}; is another endpoint running there?"))?;
            let bound = listener.local_addr().context("reading the bound address")?;
            tracing::info!(
                %bound,
                tls = tls.is_some(),
                db = database.kind().as_str(),
                open_files,
                max_connections = limits.max_connections,
                max_per_peer = limits.max_per_peer,
                "serving"
            );
            // Scripts and tests that pass port 0 learn the port from this line.
            println!("listening on {bound}");
            let config = crm_endpoint::ServeConfig {
                db: database,
                admin_token,
                tls,
            };
            crm_endpoint::serve_with_sms(config, sms, limits, listener, shutdown_signal()).await?;
        }
        Cmd::EnrollCode {
            db,
            store: store_id,
            store_name,
            ttl,
        } => {
            let database = crm_endpoint::db::open(&db)
                .await
                .with_context(|| format!("opening {}", crm_endpoint::db::redact_url(&db)))?;
            if database.store(store_id.clone()).await?.is_none() || store_name.is_some() {
                let name = store_name.unwrap_or_else(|| store_id.clone());
                database
                    .upsert_store(StoreRecord {
                        id: store_id.clone(),
                        name,
                    })
                    .await?;
            }
            let (code, _) = crm_endpoint::api::issue_enroll_code(&database, &store_id, ttl).await?;
            println!("{code}");
        }
        Cmd::AdminToken => {
            use base64::Engine as _;
            let bytes: [u8; 32] = rand::random();
            println!(
                "{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            );
        }
        Cmd::Stores {
            command:
                StoreCmd::SetTimezone {
                    db,
                    store,
                    timezone,
                },
        } => {
            if !crm_endpoint::db::dashboard::known_timezone(&timezone) {
                anyhow::bail!(
                    "{timezone:?} is not an IANA time zone name (e.g. Europe/Madrid, Atlantic/Canary)"
                );
            }
            let database = crm_endpoint::db::open(&db)
                .await
                .with_context(|| format!("opening {}", crm_endpoint::db::redact_url(&db)))?;
            if database.store(store.clone()).await?.is_none() {
                anyhow::bail!(
                    "there is no store {store:?} in {}",
                    crm_endpoint::db::redact_url(&db)
                );
            }
            database
                .set_store_timezone(store.clone(), Some(timezone.clone()))
                .await?;
            println!("store {store}: times shown in {timezone}");
        }
        Cmd::Stores {
            command: StoreCmd::SetNotifyAhead { db, store, turns },
        } => {
            let database = crm_endpoint::db::open(&db)
                .await
                .with_context(|| format!("opening {}", crm_endpoint::db::redact_url(&db)))?;
            database
                .set_turns_ahead(store.clone(), turns)
                .await
                .with_context(|| format!("setting store {store:?}'s notices"))?;
            println!("store {store}: customers are told their turn is near at {turns} turns ahead");
        }
        Cmd::Campaigns {
            command: CampaignCmd::Import { db, file },
        } => {
            let campaigns = crm_endpoint::campaigns::load(&file)?;
            let database = crm_endpoint::db::open(&db)
                .await
                .with_context(|| format!("opening {}", crm_endpoint::db::redact_url(&db)))?;
            let now = crm_endpoint::ingest::unix_ms(time::OffsetDateTime::now_utc());
            for c in campaigns {
                let id = c.id.clone();
                database
                    .upsert_campaign(c, now)
                    .await
                    .with_context(|| format!("saving campaign {id}"))?;
                println!("imported {id}");
            }
        }
    }
    Ok(())
}
