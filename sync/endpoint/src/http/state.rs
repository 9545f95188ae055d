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

/// Admission control of one replica (issue 20's reconnect storm): at most `max_ingests`
/// batches are read and stored at once; a batch waits up to `queue_wait` for a slot, then is
/// answered 503 with `Retry-After: retry_after_s` before its body is read. So a thousand kiosks
/// back from an outage get told to come back later instead of filling memory with bodies and
/// the database's pool with queued transactions; their sync clients wait at least that long,
/// plus full jitter (kiosk-sync's backoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Batches read and stored at once by this replica.
    pub max_ingests: usize,
    /// How long a batch may wait for a slot before it is refused.
    pub queue_wait: Duration,
    /// The `Retry-After` of a refused batch, in seconds.
    pub retry_after_s: u64,
}

impl Default for Admission {
    /// 16 batches at once (twice the PostgreSQL pool of a replica: more only queue for a
    /// connection), a second's wait, then `Retry-After: 2`.
    fn default() -> Self {
        Admission {
            max_ingests: 16,
            queue_wait: Duration::from_secs(1),
            retry_after_s: 2,
        }
    }
}

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
    /// `Retry-After` (admission control, [`Admission`]).
    pub(crate) ingest_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) admission: Admission,
    /// Load balancers whose `X-Forwarded-For` names the client ([`forwarded_client`]).
    trusted_proxies: Arc<[IpAddr]>,
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
    /// The audit log's one writer on this replica, started by the first line: lines are stored
    /// in the order they were written (one background task per line stored them in any order).
    audit_writer:
        Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<crate::db::AuditEntry>>>,
}

impl AppState {
    /// State over `db`; admin routes answer 403 unless `admin_token` is set.
    pub fn new(db: SharedDb, admin_token: Option<String>) -> Result<Self, ingest::ValidatorError> {
        Self::with_admission(db, admin_token, Admission::default())
    }

    /// [`AppState::new`] admitting batches as `admission` says.
    pub fn with_admission(
        db: SharedDb,
        admin_token: Option<String>,
        admission: Admission,
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
            trusted_proxies: Arc::from(Vec::new()),
            replica: Arc::from(hex::encode(rand::random::<[u8; 8]>())),
            changes: tokio::sync::broadcast::channel(256).0,
            local_changes: tokio::sync::broadcast::channel(256).0,
            closing: tokio_util::sync::CancellationToken::new(),
            audit_writer: Arc::new(std::sync::OnceLock::new()),
        })
    }

    /// Appends `entry` to the audit log in the background (the answer does not wait for it; a
    /// failure is logged), after every line this replica wrote before.
    pub(crate) fn write_audit(&self, entry: crate::db::AuditEntry) {
        let writer = self.audit_writer.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<crate::db::AuditEntry>();
            let db = self.db.clone();
            tokio::spawn(async move {
                while let Some(entry) = rx.recv().await {
                    if let Err(e) = db.audit(entry).await {
                        tracing::warn!(error = %e, "cannot write the audit log");
                    }
                }
            });
            tx
        });
        if writer.send(entry).is_err() {
            tracing::warn!("cannot write the audit log: its writer stopped");
        }
    }

    /// The same state, taking the client's address from the `X-Forwarded-For` of requests that
    /// come from one of `proxies` (the fleet's load balancers, docs/FLEET.md).
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = Arc::from(proxies);
        self
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

/// Behind a trusted load balancer, the client's address is the last `X-Forwarded-For` entry
/// (the one the balancer added; earlier ones are the client's own say): the request's
/// [`PeerAddr`] becomes it, so that rate limits and logs see the client, not the balancer. A
/// request from anywhere else keeps its TCP peer, whatever header it sends.
pub async fn forwarded_client(
    axum::extract::State(st): axum::extract::State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !st.trusted_proxies.is_empty() {
        let ext = req.extensions();
        let peer = ext
            .get::<axum::extract::ConnectInfo<PeerAddr>>()
            .map(|c| c.0.0.ip());
        if let Some(peer) = peer
            && st.trusted_proxies.contains(&peer)
            && let Some(client) = last_forwarded(req.headers())
        {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(PeerAddr(SocketAddr::new(
                    client, 0,
                ))));
        }
    }
    next.run(req).await
}

/// The last address of the last `X-Forwarded-For` header, if it is one.
fn last_forwarded(headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    let value = headers.get_all("x-forwarded-for").iter().next_back()?;
    value.to_str().ok()?.rsplit(',').next()?.trim().parse().ok()
}

/// The source a request is counted as by the rate limits: its IPv4 address, or the /64 of its
/// IPv6 one (one customer line gets a whole /64: keyed on the full address, a client would
/// change address at every attempt). `0.0.0.0` when served without [`PeerAddr`]s, as in tests.
/// Behind a load balancer every request comes from its address unless it is trusted
/// ([`forwarded_client`], docs/FLEET.md).
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<axum::extract::ConnectInfo<PeerAddr>>()
        .map(|c| kiosk_serve::peer_key(c.0.0.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_last_address_the_balancer_added() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(last_forwarded(&h), None);
        h.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.append("x-forwarded-for", "203.0.113.7".parse().unwrap());
        assert_eq!(last_forwarded(&h), Some(IpAddr::from([203, 0, 113, 7])));
        let mut h = axum::http::HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 2001:db8::1".parse().unwrap());
        assert_eq!(last_forwarded(&h), "2001:db8::1".parse().ok());
        let mut h = axum::http::HeaderMap::new();
        h.append("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(last_forwarded(&h), None);
    }
}
