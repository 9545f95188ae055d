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
        /// Batches read and stored at once by this process; more wait up to a second, then
        /// get 503 with Retry-After (admission control: a fleet back from an outage is spread
        /// out instead of queued in memory).
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=4096))]
        max_ingests: u16,
        /// How long, in milliseconds, a batch waits for one of the --max-ingests slots before
        /// it is refused.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
        ingest_queue_wait_ms: u64,
        /// The Retry-After, in seconds, of a batch refused because --max-ingests are running.
        #[arg(long, default_value_t = crate::http::Admission::default().retry_after_s, value_parser = clap::value_parser!(u64).range(1..=3600))]
        busy_retry_after: u64,
        /// A load balancer in front of this replica (repeat for several): requests from it are
        /// counted by rate limits and logged as coming from the last address of their
        /// X-Forwarded-For, not from the balancer (docs/FLEET.md). Never list an address
        /// clients can connect from directly.
        #[arg(
            long = "trusted-proxy",
            env = "CRM_TRUSTED_PROXIES",
            value_delimiter = ','
        )]
        trusted_proxies: Vec<std::net::IpAddr>,
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
    /// The console's accounts (the dashboard's logins): add, list, disable, enable, passwd.
    User {
        /// Which.
        #[command(subcommand)]
        command: crate::users_cli::UserCmd,
    },
    /// Store administration.
    Stores {
        /// Which.
        #[command(subcommand)]
        command: StoreCmd,
    },
    /// Make the fleet's release signing key: writes the secret key to OUT (0600; keep it off
    /// the CRM server, offline) and OUT.pub, and prints the public key that every kiosk pins
    /// (`kiosk pin-release-key`).
    ReleaseKeygen {
        /// The secret key file to create (refuses to overwrite one).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a release: the .deb built by scripts/package, its version and architecture read from
    /// the package; writes `<deb without .deb>.sig` and prints the signature for the upload's
    /// x-release-signature header.
    ReleaseSign {
        /// The secret key file (`release-keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The package.
        #[arg(long)]
        deb: PathBuf,
    },
    /// Sign the decision to pin one kiosk to one release: prints the JSON to send as `signed`
    /// with `PUT /v1/admin/kiosks/{kiosk_id}/pin`. A kiosk installs a release older than the one
    /// it runs only with this (a downgrade), so a CRM offering an old release cannot force one.
    ReleaseSignPin {
        /// The secret key file (`release-keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The kiosk.
        #[arg(long, value_parser = parse_ident)]
        kiosk: String,
        /// The release.
        #[arg(long)]
        version: String,
        /// Days the pin lets the kiosk downgrade (1 to 90).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=90))]
        days: u32,
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
    /// Set a store's configuration from a TOML (.toml) or JSON file: any of `services`
    /// ([[services]] with letter, name = { es, en }, priority, expected_minutes, ticket_note),
    /// `opening_time`, `counters`, `staff_pin_sha256`, `staff` ([[staff]] with id, name,
    /// pin_sha256: members with PINs of their own), `privacy` (version, text = { es, en }).
    /// Checked with the kiosks' check-config rules, saved as the next version and sent to the
    /// store's kiosks in their feed; a part left out stays as each kiosk's site.toml says.
    SetConfig {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// Store id.
        #[arg(long, value_parser = parse_ident)]
        store: String,
        /// The file.
        file: PathBuf,
    },
    /// Print a store's configuration (its newest version, JSON) and the version each of its
    /// kiosks reported running or refusing.
    ShowConfig {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// Store id.
        #[arg(long, value_parser = parse_ident)]
        store: String,
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
