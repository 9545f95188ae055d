//! `crm-endpoint user add|list|disable|enable|passwd ...`: the console's accounts from the shell,
//! so that the first HQ admin can exist before anyone can log in. A password is read from the
//! terminal without echo (asked twice), or as the first line of stdin when stdin is not a
//! terminal (scripts: `printf '%s\n' "$PW" | crm-endpoint user add ...`); never from the
//! command line, where `ps` and the shell's history would show it.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::accounts::{self, Role};
use crate::db::accounts::{AccountChange, NewAccount};

/// `crm-endpoint user ...`.
#[derive(Subcommand)]
pub enum UserCmd {
    /// Create an account; its password is read from the terminal (or stdin's first line).
    Add {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// Login name: 1 to 64 of a-z, 0-9, '.', '_', '-'.
        name: String,
        /// hq-admin (everything), regional-manager (--region), store-manager (--store) or
        /// analyst (every store, read only).
        #[arg(long)]
        role: String,
        /// A regional manager's region (the stores' `region`, e.g. ES-MD).
        #[arg(long)]
        region: Option<String>,
        /// A store manager's store id.
        #[arg(long)]
        store: Option<String>,
    },
    /// List the accounts (never a password).
    List {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
    },
    /// Disable an account: it can no longer log in and its sessions end at once.
    Disable {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// The account.
        name: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// The account.
        name: String,
    },
    /// Set an account's password (read from the terminal, or stdin's first line); its sessions
    /// end.
    Passwd {
        /// Database URL.
        #[arg(long, env = "CRM_DB", default_value = "sqlite://crm.db")]
        db: String,
        /// The account.
        name: String,
    },
}

/// Runs `command`.
pub async fn run(command: UserCmd) -> Result<()> {
    match command {
        UserCmd::Add {
            db,
            name,
            role,
            region,
            store,
        } => {
            accounts::check_name(&name).map_err(anyhow::Error::msg)?;
            let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
            accounts::check_grant(role, region.as_deref(), store.as_deref())
                .map_err(anyhow::Error::msg)?;
            let database = open(&db).await?;
            let password = read_new_password(&format!("password for {name}"))?;
            let password_hash = accounts::hash_password(&password)?;
            let created = database
                .add_account(
                    NewAccount {
                        name: name.clone(),
                        password_hash,
                        role,
                        region,
                        store_id: store,
                    },
                    now_ms(),
                )
                .await
                .context("creating the account")?;
            if !created {
                bail!(
                    "an account named {name:?} exists already (`crm-endpoint user passwd {name}` sets its password)"
                );
            }
            audit(&database, &name, "add_account").await;
            println!("account {name} created ({})", role.as_str());
        }
        UserCmd::List { db } => {
            let database = open(&db).await?;
            for a in database.accounts().await? {
                let sees = match (&a.region, &a.store_id) {
                    (_, Some(s)) => format!("store {s}"),
                    (Some(r), _) => format!("region {r}"),
                    _ => "every store".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}",
                    a.name,
                    a.role.as_str(),
                    sees,
                    if a.disabled { "disabled" } else { "active" }
                );
            }
        }
        UserCmd::Disable { db, name } => set_disabled(&db, &name, true).await?,
        UserCmd::Enable { db, name } => set_disabled(&db, &name, false).await?,
        UserCmd::Passwd { db, name } => {
            accounts::check_name(&name).map_err(anyhow::Error::msg)?;
            let database = open(&db).await?;
            let password = read_new_password(&format!("new password for {name}"))?;
            let change = AccountChange {
                password_hash: Some(accounts::hash_password(&password)?),
                ..AccountChange::default()
            };
            if !database
                .change_account(name.clone(), change, now_ms())
                .await?
            {
                bail!("there is no account named {name:?} (`crm-endpoint user list`)");
            }
            audit(&database, &name, "set_password").await;
            println!("account {name}: new password set; its sessions ended");
        }
    }
    Ok(())
}

async fn set_disabled(db: &str, name: &str, disabled: bool) -> Result<()> {
    accounts::check_name(name).map_err(anyhow::Error::msg)?;
    let database = open(db).await?;
    let change = AccountChange {
        disabled: Some(disabled),
        ..AccountChange::default()
    };
    if !database
        .change_account(name.to_owned(), change, now_ms())
        .await?
    {
        bail!("there is no account named {name:?} (`crm-endpoint user list`)");
    }
    let what = if disabled { "disabled" } else { "enabled" };
    audit(
        &database,
        name,
        if disabled {
            "disable_account"
        } else {
            "enable_account"
        },
    )
    .await;
    println!("account {name} {what}");
    Ok(())
}

async fn open(db: &str) -> Result<crate::db::SharedDb> {
    crate::db::open(db)
        .await
        .with_context(|| format!("opening {}", crate::db::redact_url(db)))
}

fn now_ms() -> i64 {
    crate::ingest::unix_ms(time::OffsetDateTime::now_utc())
}

/// The audit line of a change made from the shell (actor `cli`).
async fn audit(db: &crate::db::SharedDb, name: &str, action: &str) {
    let entry = crate::db::AuditEntry {
        at_ms: now_ms(),
        actor: "cli".to_owned(),
        action: action.to_owned(),
        target: name.to_owned(),
        outcome: "ok".to_owned(),
        user: None,
    };
    if let Err(e) = db.audit(entry).await {
        tracing::warn!(error = %e, "cannot write the audit log");
    }
}

/// A new password: from the terminal without echo, typed twice; else stdin's first line.
fn read_new_password(what: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = prompt_hidden(&format!("{what}: "))?;
        let again = prompt_hidden("again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing changed");
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    accounts::check_password(&password).map_err(anyhow::Error::msg)?;
    Ok(password)
}

/// Asks on stderr and reads a line from the terminal with echo off (restored after).
fn prompt_hidden(prompt: &str) -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning the terminal's echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    tcsetattr(&stdin, SetArg::TCSANOW, &saved).context("restoring the terminal's echo")?;
    eprintln!();
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
