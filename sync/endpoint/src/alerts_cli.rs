//! `crm-endpoint alerts ...`: the thresholds and the webhook of the fleet alerts, kept in the
//! database so that every replica evaluates with the same ones.

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::alerts::{THRESHOLDS_KEY, Thresholds, WEBHOOK_KEY, Webhook};

/// `crm-endpoint alerts ...`.
#[derive(Subcommand)]
pub enum AlertCmd {
    /// Set thresholds; those not named keep theirs (defaults: offline 15 min, printer 10 min,
    /// backlog 30 min, dead letters in the last 1440 min, skew 120 s, queue wait 20 min).
    Set {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// A kiosk not seen for this many minutes.
        #[arg(long)]
        offline_minutes: Option<u32>,
        /// A printer out of paper or with its cover open for this many minutes.
        #[arg(long)]
        printer_minutes: Option<u32>,
        /// A kiosk's outbox not drained for this many minutes.
        #[arg(long)]
        backlog_minutes: Option<u32>,
        /// Dead-lettered events in the last this many minutes.
        #[arg(long)]
        dead_letter_minutes: Option<u32>,
        /// A kiosk clock this many seconds off.
        #[arg(long)]
        skew_seconds: Option<u32>,
        /// The longest wait target of every store without its own, minutes.
        #[arg(long)]
        queue_wait_minutes: Option<u32>,
        /// With --store-wait-minutes: the store whose own target it is.
        #[arg(long, requires = "store_wait_minutes", value_parser = parse_store)]
        store: Option<String>,
        /// The store's own wait target, minutes (0: use the fleet's again).
        #[arg(long, requires = "store")]
        store_wait_minutes: Option<u32>,
    },
    /// Print the thresholds (JSON) and where alerts are sent.
    Show {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
    },
    /// Send alerts to a webhook (https://, or http:// on this machine): prints the new signing
    /// secret once (`whsec_...`, Standard Webhooks) for the receiver to verify messages with.
    Webhook {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// The receiver's URL.
        #[arg(long, required_unless_present = "remove")]
        url: Option<String>,
        /// Stop sending alerts.
        #[arg(long, conflicts_with = "url")]
        remove: bool,
    },
    /// List the open alerts (JSON lines).
    List {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
    },
}

/// A store id (`kiosk_protocol::ident`).
fn parse_store(s: &str) -> Result<String, String> {
    kiosk_protocol::ident::check(s).map_err(|e| format!("the store id {e}"))?;
    Ok(s.to_owned())
}

async fn open(db: &str) -> Result<crate::db::SharedDb> {
    crate::db::open(db)
        .await
        .with_context(|| format!("opening {}", crate::db::redact_url(db)))
}

/// Runs an `alerts` command.
pub async fn run(command: AlertCmd) -> Result<()> {
    match command {
        AlertCmd::Set {
            db,
            offline_minutes,
            printer_minutes,
            backlog_minutes,
            dead_letter_minutes,
            skew_seconds,
            queue_wait_minutes,
            store,
            store_wait_minutes,
        } => {
            let database = open(&db).await?;
            let mut t = crate::alerts::thresholds(&database).await?;
            let sets = [
                (&mut t.offline_minutes, offline_minutes),
                (&mut t.printer_minutes, printer_minutes),
                (&mut t.backlog_minutes, backlog_minutes),
                (&mut t.dead_letter_minutes, dead_letter_minutes),
                (&mut t.skew_seconds, skew_seconds),
                (&mut t.queue_wait_minutes, queue_wait_minutes),
            ];
            let mut changed = false;
            for (field, value) in sets {
                if let Some(v) = value {
                    *field = v;
                    changed = true;
                }
            }
            if let (Some(store), Some(m)) = (store, store_wait_minutes) {
                if database.store(store.clone()).await?.is_none() {
                    anyhow::bail!("there is no store {store:?}");
                }
                if m == 0 {
                    t.store_wait_minutes.remove(&store);
                } else {
                    t.store_wait_minutes.insert(store, m);
                }
                changed = true;
            }
            if !changed {
                anyhow::bail!("name at least one threshold to set (see --help)");
            }
            t.check().map_err(anyhow::Error::msg)?;
            database
                .set_setting(THRESHOLDS_KEY, Some(serde_json::to_string(&t)?))
                .await?;
            println!("{}", serde_json::to_string_pretty(&t)?);
        }
        AlertCmd::Show { db } => {
            let database = open(&db).await?;
            let t: Thresholds = crate::alerts::thresholds(&database).await?;
            println!("{}", serde_json::to_string_pretty(&t)?);
            match crate::alerts::webhook(&database).await? {
                Some(h) => println!("webhook: {}", h.url),
                None => println!("webhook: none"),
            }
        }
        AlertCmd::Webhook { db, url, remove } => {
            let database = open(&db).await?;
            if remove {
                database.set_setting(WEBHOOK_KEY, None).await?;
                println!("alerts are no longer sent");
            } else if let Some(url) = url {
                let hook = Webhook::new(&url).map_err(anyhow::Error::msg)?;
                database
                    .set_setting(WEBHOOK_KEY, Some(serde_json::to_string(&hook)?))
                    .await?;
                println!("alerts are sent to {url}");
                println!("signing secret (shown once): {}", hook.secret);
            }
        }
        AlertCmd::List { db } => {
            let database = open(&db).await?;
            for a in database.alerts(None).await? {
                if a.opened_ms.is_some() {
                    println!("{}", serde_json::to_string(&a)?);
                }
            }
        }
    }
    Ok(())
}
