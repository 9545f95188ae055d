//! `crm-endpoint`: serve protocol v1, make enrollment codes, import campaigns, seed a demo.

use anyhow::{Context, Result};
use clap::Parser as _;
use crm_endpoint::cli::{CampaignCmd, Cli, Cmd, RetentionCmd, SmsArgs, StoreCmd};
use crm_endpoint::db::StoreRecord;
use crm_endpoint::db::storage::DataClass;

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
            max_ingests,
            ingest_queue_wait_ms,
            busy_retry_after,
            trusted_proxies,
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
            let options = crm_endpoint::ServeOptions {
                sms,
                trusted_proxies,
                admission: crm_endpoint::Admission {
                    max_ingests: usize::from(max_ingests),
                    queue_wait: std::time::Duration::from_millis(ingest_queue_wait_ms),
                    retry_after_s: busy_retry_after,
                },
            };
            crm_endpoint::serve_with_options(config, options, limits, listener, shutdown_signal())
                .await?;
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
        Cmd::Retention { command } => retention(command).await?,
        Cmd::Alerts { command } => crm_endpoint::alerts_cli::run(command).await?,
        Cmd::User { command } => crm_endpoint::users_cli::run(command).await?,
        Cmd::ReleaseKeygen { out } => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let key = kiosk_protocol::release::ReleaseSigningKey::generate();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", out.display())
                })?;
            writeln!(f, "{}", key.to_base64().as_str())?;
            let public = key.public().to_base64();
            let pub_path = out.with_extension("pub");
            std::fs::write(&pub_path, format!("{public}\n"))
                .with_context(|| format!("cannot write {}", pub_path.display()))?;
            println!("{public}");
        }
        Cmd::ReleaseSign { key, deb } => {
            let text = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read the signing key {}", key.display()))?;
            let key = kiosk_protocol::release::ReleaseSigningKey::parse(&text)?;
            let field = |name: &str| -> Result<String> {
                let out = std::process::Command::new("dpkg-deb")
                    .arg("-f")
                    .arg(&deb)
                    .arg(name)
                    .output()
                    .context("cannot run dpkg-deb (apt-get install dpkg)")?;
                anyhow::ensure!(
                    out.status.success(),
                    "{} is not a Debian package: {}",
                    deb.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            };
            let (version, arch) = (field("Version")?, field("Architecture")?);
            let file = std::fs::File::open(&deb)
                .with_context(|| format!("cannot open {}", deb.display()))?;
            let signed = kiosk_protocol::release::ReleaseManifest::of_package(
                &version,
                &arch,
                std::io::BufReader::new(file),
            )?
            .sign(&key);
            let sig_path = deb.with_extension("sig");
            std::fs::write(&sig_path, serde_json::to_string_pretty(&signed)?)
                .with_context(|| format!("cannot write {}", sig_path.display()))?;
            eprintln!(
                "signed {} {version} ({arch}), {} bytes, sha256 {}: {}",
                deb.display(),
                signed.manifest.size,
                signed.manifest.sha256,
                sig_path.display()
            );
            println!("{}", signed.signature);
        }
        Cmd::ReleaseSignPin {
            key,
            kiosk,
            version,
            days,
        } => {
            let text = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read the signing key {}", key.display()))?;
            let key = kiosk_protocol::release::ReleaseSigningKey::parse(&text)?;
            // The version's form, as a manifest checks it.
            kiosk_protocol::release::ReleaseManifest {
                version: version.clone(),
                arch: "all".to_owned(),
                sha256: "0".repeat(64),
                size: 1,
            }
            .check()?;
            let not_after =
                time::OffsetDateTime::now_utc().unix_timestamp() + i64::from(days) * 86_400;
            let pin = kiosk_protocol::release::PinManifest {
                kiosk_id: kiosk,
                version,
                not_after,
            }
            .sign(&key);
            println!("{}", serde_json::to_string(&pin)?);
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
        Cmd::Stores {
            command: StoreCmd::SetConfig { db, store, file },
        } => {
            let parts = crm_endpoint::store_config::load(&file)?;
            let database = crm_endpoint::db::open(&db)
                .await
                .with_context(|| format!("opening {}", crm_endpoint::db::redact_url(&db)))?;
            let now = crm_endpoint::ingest::unix_ms(time::OffsetDateTime::now_utc());
            let config = database
                .set_store_config(store.clone(), parts, now)
                .await
                .with_context(|| format!("setting store {store:?}'s configuration"))?;
            println!(
                "store {store}: configuration v{} saved; its kiosks apply it at their next feed pull, between two customers",
                config.version
            );
        }
        Cmd::Stores {
            command: StoreCmd::ShowConfig { db, store },
        } => {
            let database = crm_endpoint::db::open(&db)
                .await
                .with_context(|| format!("opening {}", crm_endpoint::db::redact_url(&db)))?;
            if database.store(store.clone()).await?.is_none() {
                anyhow::bail!(
                    "there is no store {store:?} in {}",
                    crm_endpoint::db::redact_url(&db)
                );
            }
            match database.store_config(store.clone()).await? {
                Some(c) => println!("{}", serde_json::to_string_pretty(&c)?),
                None => {
                    println!("store {store}: no configuration set; its kiosks run their site.toml")
                }
            }
            for (kiosk, state) in database.kiosk_configs(store.clone()).await? {
                match (state.refused, state.refused_reason) {
                    (Some(v), reason) => println!(
                        "kiosk {kiosk}: runs v{}; REFUSED v{v}: {}",
                        state.running,
                        reason.unwrap_or_default()
                    ),
                    (None, _) => println!("kiosk {kiosk}: runs v{}", state.running),
                }
            }
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

fn days(d: Option<u32>) -> String {
    d.map_or_else(|| "forever".to_owned(), |d| format!("{d} days"))
}

async fn retention(command: RetentionCmd) -> Result<()> {
    let open = async |db: &str| {
        crm_endpoint::db::open(db)
            .await
            .with_context(|| format!("opening {}", crm_endpoint::db::redact_url(db)))
    };
    let now = crm_endpoint::ingest::unix_ms(time::OffsetDateTime::now_utc());
    match command {
        RetentionCmd::Set {
            db,
            personal,
            events,
            aggregates,
        } => {
            let changes: Vec<(DataClass, Option<u32>)> = [
                (DataClass::Personal, personal),
                (DataClass::Events, events),
                (DataClass::Aggregates, aggregates),
            ]
            .into_iter()
            .filter_map(|(c, d)| Some((c, d?.0)))
            .collect();
            if changes.is_empty() {
                anyhow::bail!("name at least one of --personal, --events, --aggregates");
            }
            let database = open(&db).await?;
            for (class, d) in changes {
                database.set_retention(class, d, now).await?;
                println!("{class}: kept {}", days(d));
            }
        }
        RetentionCmd::Show { db } => {
            let policy = open(&db).await?.retention().await?;
            for class in DataClass::ALL {
                println!("{class}: kept {}", days(policy.of(class)));
            }
        }
        RetentionCmd::Apply { db } => {
            let report = open(&db).await?.maintain_storage(now).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}
