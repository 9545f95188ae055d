//! The CRM endpoint: enrollment of kiosks, idempotent ingest of their signed event batches, the
//! per-store sync feed (campaigns, profiles, erasures), customers and segments, campaigns with
//! A/B variants, statistics, and the admin API. Protocol v1 lives in `kiosk_protocol::wire` and
//! `kiosk_protocol::auth`; this crate is the server side.
//!
//! Data flow: kiosk outbox → batch → [`api`] (authenticate, size limits) → [`ingest`] (validate,
//! correct time) → [`db`] (dedupe by event id, forever) → feed → kiosk caches.
//!
//! Layout: [`http`] (state, errors, authentication extractors) ← the route modules
//! [`api::kiosk`], [`api::admin`] and [`dashboard`], each owning its routes and their OpenAPI
//! operations ← [`routes`] (the one route table) ← [`openapi`] and [`router`]. [`db`] is the
//! database layer: one logic for SQLite and PostgreSQL behind a small dialect seam, with
//! numbered migrations (see its docs and the crate's README).
//!
//! Embedding (the firmware's `kiosk demo` runs the endpoint in-process):
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let db = crm_endpoint::db::open("sqlite::memory:").await?;
//! let seed = crm_endpoint::seed_demo(&db).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = crm_endpoint::ServeConfig { db, admin_token: None, tls: None };
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! tokio::spawn(crm_endpoint::serve(config, listener, async { let _ = stopped.await; }));
//! # let _ = (seed, stop); Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod accounts;
pub mod alerts;
pub mod alerts_cli;
pub mod api;
pub mod campaign_console;
pub mod campaigns;
pub mod cli;
pub mod customers;
pub mod dashboard;
pub mod db;
pub mod demo;
pub mod fleet;
pub mod forward;
pub mod http;
pub mod ingest;
pub mod input;
pub mod map;
pub mod openapi;
pub mod outbound;
pub mod phone;
pub mod push;
pub mod reports;
pub mod router;
pub mod routes;
pub mod sms;
pub mod store_config;
pub mod testing;
pub mod tls;
pub mod users_cli;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use db::{Database, DbError, SharedDb};
pub use demo::{
    DEMO_CUSTOMERS, DEMO_STORE_ID, DEMO_TENANT_KEY, DemoAccount, DemoSeed, demo_token, seed_demo,
    seed_demo_accounts,
};
pub use http::{Admission, AppState};
pub use router::app;

/// How often computed segments are refreshed while serving (customers lapse without events).
pub const SEGMENT_REFRESH: Duration = Duration::from_secs(3600);

/// What [`serve`] needs.
#[derive(Clone)]
pub struct ServeConfig {
    /// The database (see [`db::open`]).
    pub db: SharedDb,
    /// Token for `/v1/admin/*`, `/v1/stats` and the dashboard; those answer 403 without one.
    pub admin_token: Option<String>,
    /// Serve HTTPS with this rustls configuration (see [`tls::server_config_from_files`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// What [`serve_with_options`] adds to [`serve_with`].
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// SMS or WhatsApp turn notices ([`sms`]).
    pub sms: Option<push::SmsNotices>,
    /// Admission control of batches.
    pub admission: Admission,
    /// Load balancers whose `X-Forwarded-For` names the client (rate limits, logs).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The validator could not be built.
    #[error("cannot build the event validator")]
    Validator(#[from] ingest::ValidatorError),
    /// The listener failed.
    #[error("serving http failed")]
    Io(#[from] std::io::Error),
    /// The admin token is too short to resist guessing.
    #[error("{0}")]
    WeakAdminToken(String),
}

/// Serves protocol v1 and the dashboard (`/dashboard`, opened with the admin token) on
/// `listener` (HTTPS when `config.tls` is set) until `shutdown` resolves, then finishes the
/// requests in flight and returns (live dashboard streams end with it). Under
/// [`kiosk_serve::Limits::PUBLIC`] fitted to the process's open-file limit: see [`serve_with`].
pub async fn serve(
    config: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = kiosk_serve::Limits::PUBLIC.fit_open_files(kiosk_serve::open_file_limit());
    serve_with(config, limits, listener, shutdown).await
}

/// [`serve`] under `limits`: header-read, idle and request timeouts and connection caps (per
/// peer and in all), so that slow or greedy clients cannot take the endpoint down
/// ([`kiosk_serve`]).
pub async fn serve_with(
    config: ServeConfig,
    limits: kiosk_serve::Limits,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_sms(config, None, limits, listener, shutdown).await
}

/// [`serve_with`], also telling registered customers who consented that their turn is near
/// by SMS or WhatsApp through `sms` ([`sms`]).
pub async fn serve_with_sms(
    config: ServeConfig,
    sms: Option<push::SmsNotices>,
    limits: kiosk_serve::Limits,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let options = ServeOptions {
        sms,
        ..ServeOptions::default()
    };
    serve_with_options(config, options, limits, listener, shutdown).await
}

/// [`serve_with`] with turn notices by SMS and admission control as `options` say. On
/// PostgreSQL it joins the other replicas' change bus ([`fleet`]).
pub async fn serve_with_options(
    config: ServeConfig,
    options: ServeOptions,
    limits: kiosk_serve::Limits,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let ServeOptions {
        sms,
        admission,
        trusted_proxies,
    } = options;
    if let Some(token) = &config.admin_token {
        http::check_admin_token(token).map_err(ServeError::WeakAdminToken)?;
    }
    let state = AppState::with_admission(config.db.clone(), config.admin_token, admission)?
        .with_trusted_proxies(trusted_proxies);
    let closing = state.closing().clone();
    let shutdown = async move {
        shutdown.await;
        // Live dashboard streams never end by themselves; a graceful shutdown waits for every
        // connection, so they are told to end first.
        closing.cancel();
    };
    let vapid = config
        .db
        .vapid_secret(push::Vapid::generate_secret())
        .await
        .map_err(|e| e.to_string())
        .and_then(|s| {
            push::Vapid::from_secret(&s, push::DEFAULT_SUBJECT).map_err(|e| e.to_string())
        });
    let notices = push::Notices {
        vapid: match vapid {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, "no VAPID key: turn pages cannot send notifications");
                None
            }
        },
        sms,
    };
    let notifier = tokio::spawn(push::run(
        config.db.clone(),
        notices,
        state.subscribe_local_changes(),
    ));
    let bus = tokio::spawn(fleet::run(state.clone()));
    let app = app(state, config.tls.is_some());
    let storage = tokio::spawn(maintain_storage(config.db.clone()));
    let alerting = tokio::spawn(alerts::run(config.db.clone(), alerts::EVALUATE_EVERY));
    let forwarding = tokio::spawn(forward::run(config.db.clone()));
    let refresher = tokio::spawn(refresh_segments(config.db));
    let result =
        kiosk_serve::serve::<http::PeerAddr>(listener, config.tls, app, limits, shutdown).await;
    refresher.abort();
    storage.abort();
    alerting.abort();
    forwarding.abort();
    notifier.abort();
    bus.abort();
    Ok(result?)
}

async fn refresh_segments(db: SharedDb) {
    let mut tick = tokio::time::interval(SEGMENT_REFRESH);
    loop {
        tick.tick().await;
        let now = ingest::unix_ms(time::OffsetDateTime::now_utc());
        if let Err(e) = db.recompute_segments(now).await {
            tracing::warn!(error = %e, "refreshing segments failed; retrying in an hour");
        }
    }
}

/// The storage job ([`db::storage`]): event partitions ahead and each data class's retention,
/// at start and every [`db::storage::MAINTENANCE_PERIOD`]. What it removed is logged as counts.
async fn maintain_storage(db: SharedDb) {
    let mut tick = tokio::time::interval(db::storage::MAINTENANCE_PERIOD);
    loop {
        tick.tick().await;
        let now = ingest::unix_ms(time::OffsetDateTime::now_utc());
        match db.maintain_storage(now).await {
            Ok(r) => tracing::info!(
                partitions_created = r.partitions_created.len(),
                partitions_dropped = r.partitions_dropped.len(),
                events_deleted = r.events_deleted,
                customers_erased = r.customers_erased,
                turns_deleted = r.turns_deleted,
                "storage job"
            ),
            Err(e) => tracing::warn!(error = %e, "the storage job failed; retrying in an hour"),
        }
    }
}
