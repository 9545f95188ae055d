//! The `crm-endpoint` command line, in the library so that its man page is made from the same
//! definition the binary parses (firmware/manpages writes `crm-endpoint.1`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// `crm-endpoint`'s arguments.
#[derive(Parser)]
#[command(
    name = "crm-endpoint",
    version,
    about = "CRM endpoint for the kiosk fleet (protocol v1)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// How registered customers who consented are told their turn is near by SMS or WhatsApp.
#[derive(clap::Args)]
pub struct SmsArgs {
    /// Tell registered customers who consented to turn notices (`turn_sms`) that their turn
    /// is near, through this provider: `twilio` (needs the --twilio-* options and --sms-from).
    #[arg(long, value_parser = ["twilio"])]
    pub sms_provider: Option<String>,
    /// Send over SMS or WhatsApp (Twilio's `whatsapp:` numbers).
    #[arg(long, value_parser = ["sms", "whatsapp"], default_value = "sms")]
    pub sms_channel: String,
    /// The sending number, E.164 (`+15550001111`), owned by the provider account.
    #[arg(long, env = "CRM_SMS_FROM")]
    pub sms_from: Option<String>,
    /// Country code for customers' numbers registered without one (`+34`).
    #[arg(long)]
    pub sms_default_country: Option<String>,
    /// Twilio account SID (`AC...`).
    #[arg(long, env = "CRM_TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    /// Twilio auth token; from the environment, never a flag (a command line is visible to
    /// every user of the machine). Never logged.
    #[arg(
        long,
        env = "CRM_TWILIO_AUTH_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    pub twilio_auth_token: Option<String>,
    /// Twilio's API base (a test double's address in tests).
    #[arg(long, default_value = crate::sms::TWILIO_API)]
    pub twilio_api: String,
}

/// The commands.
#[derive(Subcommand)]
pub enum Cmd {
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
        /// Which.
        #[command(subcommand)]
        command: CampaignCmd,
    },
    /// Print a new random admin token (256 bits, base64url) for --admin-token / CRM_ADMIN_TOKEN.
    AdminToken,
    /// How long each class of data is kept (personal data, events, aggregates), for this
    /// tenant; the endpoint enforces it every hour while serving.
    Retention {
        /// Which.
        #[command(subcommand)]
        command: RetentionCmd,
    },
    /// Fleet alerts: thresholds and the webhook they are sent to.
    Alerts {
        /// Which.
        #[command(subcommand)]
        command: crate::alerts_cli::AlertCmd,
    },
    /// Store administration.
    Stores {
        /// Which.
        #[command(subcommand)]
        command: StoreCmd,
    },
}

/// `crm-endpoint stores ...`.
#[derive(Subcommand)]
pub enum StoreCmd {
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

/// `crm-endpoint retention ...`.
#[derive(Subcommand)]
pub enum RetentionCmd {
    /// Set the retention of one or more classes: days (395), years (7y) or forever; 1 day to
    /// 100 years. Classes not named keep theirs.
    Set {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// Customers' personal data (profile, stores), counted from their last visit; erased as
        /// an erasure request erases it.
        #[arg(long, value_parser = crate::db::storage::parse_retention_arg)]
        personal: Option<crate::db::storage::Retention>,
        /// Raw events, counted from their reception (PostgreSQL drops them by whole months).
        #[arg(long, value_parser = crate::db::storage::parse_retention_arg)]
        events: Option<crate::db::storage::Retention>,
        /// The dashboard's per-turn figures, counted from the turn.
        #[arg(long, value_parser = crate::db::storage::parse_retention_arg)]
        aggregates: Option<crate::db::storage::Retention>,
    },
    /// Print the retention of each class.
    Show {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
    },
    /// Enforce the retention now (what `serve` does every hour) and print what was removed.
    Apply {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
    },
}

/// `crm-endpoint campaigns ...`.
#[derive(Subcommand)]
pub enum CampaignCmd {
    /// Import (create or replace) the campaigns of a TOML or JSON file.
    Import {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// The file.
        file: PathBuf,
    },
}

/// An enrollment code's validity: `24h`, `30m`, `7d`, `90s` (1 s to 30 days).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
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
    crate::api::admin::check_enroll_ttl(ttl)?;
    Ok(ttl)
}

/// A store id (`kiosk_protocol::ident`).
pub fn parse_ident(s: &str) -> Result<String, String> {
    kiosk_protocol::ident::check(s).map_err(|e| format!("the store id {e}"))?;
    Ok(s.to_owned())
}
