//! The state every handler shares ([`AppState`]: the database, the event validator, the admin
//! token, rate limits, the dashboard's change notices, shutdown) and where a request came from.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::request::now_ms;
use crate::db::{DbError, RateLimit, SharedDb};
use crate::ingest::{self, Validator};

/// Failed enrollment attempts allowed per source address and window.
pub const ENROLL_ATTEMPTS: u32 = 10;
/// Wrong admin tokens one source address may send per [`ADMIN_WINDOW`] on any admin route (the
/// admin API, statistics, the dashboard's API); past it every admin request from that address
/// answers 429 with `Retry-After`, the right token included.
pub const ADMIN_ATTEMPTS: u32 = 10;
/// The window of [`ADMIN_ATTEMPTS`].
pub const ADMIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The shortest admin token the endpoint accepts: 32 characters (`crm-endpoint admin-token`
/// prints 43 of base64url, 256 random bits).
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Refuses an admin token too short to resist guessing.
pub fn check_admin_token(token: &str) -> Result<(), String> {
    let n = token.chars().count();
    if n < MIN_ADMIN_TOKEN_LEN {
        return Err(format!(
            "the admin token has {n} characters; use at least {MIN_ADMIN_TOKEN_LEN} random ones (`crm-endpoint admin-token` prints one)"
        ));
    }
    Ok(())
}
/// The window of [`ENROLL_ATTEMPTS`].
pub const ENROLL_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Live profile lookups allowed per kiosk and [`LOOKUP_WINDOW`]: far above what customers
/// tapping cards need, far below what enumerating card tokens would (a stolen kiosk holds the
/// tenant key and could compute the tokens of short UIDs).
pub const LOOKUPS_PER_WINDOW: u32 = 60;
/// The window of [`LOOKUPS_PER_WINDOW`].
pub const LOOKUP_WINDOW: Duration = Duration::from_secs(60);

/// Shared state of all handlers. Nothing in it is a decision another replica must see: limits
/// and throttles are counted in the database ([`AttemptCounter`]), sessions are signed cookies,
/// replay guards are rows; the change channels only wake this process's live streams
/// ([`crate::fleet`] carries changes between replicas).
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: SharedDb,
    pub(crate) validator: Arc<Validator>,
    admin_token: Option<Arc<str>>,
    /// Wrong enrollment codes per source address.
    pub(crate) enroll_failures: AttemptCounter,
    /// Wrong admin tokens per source address.
    pub(crate) admin_failures: AttemptCounter,
    /// Live profile lookups per kiosk in the current window.
    pub(crate) lookups: AttemptCounter,
    /// Batches stored at once by this replica, at most; past it a batch is answered 503 with
    /// `Retry-After` (admission control, [`crate::Admission`]).
    pub(crate) ingest_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) admission: crate::Admission,
    /// This replica's name on the change bus (random per process).
    replica: Arc<str>,
    /// Ids of stores that changed, here or on another replica (the live streams).
    changes: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Ids of stores whose kiosks just sent a batch to this replica (the turn notifier, the
    /// change bus).
    local_changes: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Cancelled when the server begins its graceful shutdown: long-lived responses (the
    /// dashboard's event streams) end so that the shutdown does not wait on them forever.
    closing: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// State over `db`; admin routes answer 403 unless `admin_token` is set.
    pub fn new(db: SharedDb, admin_token: Option<String>) -> Result<Self, ingest::ValidatorError> {
        Self::with_admission(db, admin_token, crate::Admission::default())
    }

    /// [`AppState::new`] admitting batches as `admission` says.
    pub fn with_admission(
        db: SharedDb,
        admin_token: Option<String>,
        admission: crate::Admission,
    ) -> Result<Self, ingest::ValidatorError> {
        Ok(AppState {
            db,
            validator: Arc::new(Validator::new()?),
            admin_token: admin_token.map(Arc::from),
            enroll_failures: AttemptCounter::new("enroll", ENROLL_ATTEMPTS, ENROLL_WINDOW),
            admin_failures: AttemptCounter::new("admin", ADMIN_ATTEMPTS, ADMIN_WINDOW),
            lookups: AttemptCounter::new("lookup", LOOKUPS_PER_WINDOW, LOOKUP_WINDOW),
            ingest_slots: Arc::new(tokio::sync::Semaphore::new(admission.max_ingests.max(1))),
            admission,
            replica: Arc::from(hex::encode(rand::random::<[u8; 8]>())),
            changes: tokio::sync::broadcast::channel(256).0,
            local_changes: tokio::sync::broadcast::channel(256).0,
            closing: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Cancelled when the server is shutting down (see [`crate::serve`]).
    pub fn closing(&self) -> &tokio_util::sync::CancellationToken {
        &self.closing
    }

    /// The admin token, if admin routes are enabled.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// This replica's name on the change bus.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Store ids, each sent after a batch from one of that store's kiosks was stored here or on
    /// another replica. A lagging receiver should refresh everything.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.changes.subscribe()
    }

    /// Store ids, each sent after a batch from one of that store's kiosks was stored by this
    /// replica (what this replica alone acts on: the turn notices, publishing to the others).
    pub fn subscribe_local_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.local_changes.subscribe()
    }

    /// Tells the live streams and the notifier that `store_id` changed (nobody listening is
    /// normal).
    pub(crate) fn store_changed(&self, store_id: &str) {
        let store: Arc<str> = Arc::from(store_id);
        let _ = self.local_changes.send(store.clone());
        let _ = self.changes.send(store);
    }

    /// Tells this replica's live streams that another replica changed `store_id`.
    pub(crate) fn remote_store_changed(&self, store_id: &str) {
        let _ = self.changes.send(Arc::from(store_id));
    }
}

/// Attempts per key (a source address, a kiosk) in a fixed window: the rate limits of
/// enrollment, live lookups, admin tokens and the dashboard's login. Counted in the database
/// ([`crate::db::limits`]), so every replica sees the same count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttemptCounter(RateLimit);

impl AttemptCounter {
    pub(crate) fn new(scope: &'static str, limit: u32, window: Duration) -> Self {
        AttemptCounter(RateLimit {
            scope,
            limit,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        })
    }

    /// `Some(seconds to wait)` when `key` used up its attempts in the current window.
    pub(crate) async fn blocked(&self, db: &SharedDb, key: &str) -> Result<Option<u64>, DbError> {
        db.rate_blocked(self.0, key.to_owned(), now_ms()).await
    }

    /// Counts a (failed) attempt of `key`. A database failure is logged: the request is
    /// refused anyway.
    pub(crate) async fn count(&self, db: &SharedDb, key: &str) {
        if let Err(e) = db.rate_take(self.0, key.to_owned(), now_ms()).await {
            tracing::warn!(error = %e, scope = self.0.scope, "cannot count a failed attempt");
        }
    }

    /// Counts an attempt of `key` unless it is over the limit: `Some(seconds to wait)` then.
    pub(crate) async fn take(&self, db: &SharedDb, key: &str) -> Result<Option<u64>, DbError> {
        db.rate_take(self.0, key.to_owned(), now_ms()).await
    }

    /// Gives back an attempt [`AttemptCounter::take`] counted (it succeeded).
    pub(crate) async fn refund(&self, db: &SharedDb, key: &str) {
        if let Err(e) = db.rate_refund(self.0, key.to_owned(), now_ms()).await {
            tracing::warn!(error = %e, scope = self.0.scope, "cannot give back an attempt");
        }
    }
}

/// The address a request came from (set by [`crate::serve`]'s listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        PeerAddr(addr)
    }
}

/// The source a request is counted as by the rate limits: its IPv4 address, or the /64 of its
/// IPv6 one (one customer line gets a whole /64: keyed on the full address, a client would
/// change address at every attempt). `0.0.0.0` when served without [`PeerAddr`]s, as in tests.
/// Behind a load balancer every request comes from its address (docs/FLEET.md).
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<axum::extract::ConnectInfo<PeerAddr>>()
        .map(|c| kiosk_serve::peer_key(c.0.0.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}
