//! The state every handler shares ([`AppState`]: the database, the event validator, the admin
//! token, rate limits, the dashboard's change notices, shutdown) and where a request came from.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::SharedDb;
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

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: SharedDb,
    pub(crate) validator: Arc<Validator>,
    admin_token: Option<Arc<str>>,
    /// Wrong enrollment codes per source address.
    pub(crate) enroll_failures: Arc<AttemptCounter<IpAddr>>,
    /// Wrong admin tokens per source address.
    pub(crate) admin_failures: Arc<AttemptCounter<IpAddr>>,
    /// Live profile lookups per kiosk in the current window.
    pub(crate) lookups: Arc<AttemptCounter<String>>,
    /// Ids of stores whose kiosks just sent a batch (the dashboard's live updates).
    changes: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Cancelled when the server begins its graceful shutdown: long-lived responses (the
    /// dashboard's event streams) end so that the shutdown does not wait on them forever.
    closing: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// State over `db`; admin routes answer 403 unless `admin_token` is set.
    pub fn new(db: SharedDb, admin_token: Option<String>) -> Result<Self, ingest::ValidatorError> {
        Ok(AppState {
            db,
            validator: Arc::new(Validator::new()?),
            admin_token: admin_token.map(Arc::from),
            enroll_failures: Arc::new(AttemptCounter::new(ENROLL_ATTEMPTS, ENROLL_WINDOW)),
            admin_failures: Arc::new(AttemptCounter::new(ADMIN_ATTEMPTS, ADMIN_WINDOW)),
            lookups: Arc::new(AttemptCounter::new(LOOKUPS_PER_WINDOW, LOOKUP_WINDOW)),
            changes: tokio::sync::broadcast::channel(256).0,
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

    /// Store ids, each sent after a batch from one of that store's kiosks was stored. A lagging
    /// receiver should refresh everything.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.changes.subscribe()
    }

    /// Tells the dashboard's live streams that `store_id` changed (nobody listening is normal).
    pub(crate) fn store_changed(&self, store_id: &str) {
        let _ = self.changes.send(Arc::from(store_id));
    }
}

/// Attempts per key (a source address, a kiosk) in a fixed window: the rate limits of
/// enrollment, live lookups and the dashboard's login.
pub(crate) struct AttemptCounter<K> {
    limit: u32,
    window: Duration,
    map: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Eq + Hash> AttemptCounter<K> {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        AttemptCounter {
            limit,
            window,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, u32)>> {
        // Counters only: a panic elsewhere cannot leave them half-changed.
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        map
    }

    fn wait(&self, start: Instant) -> u64 {
        self.window
            .saturating_sub(Instant::now().duration_since(start))
            .as_secs()
            .max(1)
    }

    /// `Some(seconds to wait)` when `key` used up its attempts in the current window.
    pub(crate) fn blocked(&self, key: &K) -> Option<u64> {
        match self.lock().get(key) {
            Some((start, n)) if *n >= self.limit => Some(self.wait(*start)),
            _ => None,
        }
    }

    /// Counts a (failed) attempt of `key`.
    pub(crate) fn count(&self, key: K) {
        self.lock().entry(key).or_insert((Instant::now(), 0)).1 += 1;
    }

    /// Counts an attempt of `key` unless it is over the limit: `Some(seconds to wait)` then.
    pub(crate) fn take(&self, key: K) -> Option<u64> {
        let mut map = self.lock();
        let (start, n) = map.entry(key).or_insert((Instant::now(), 0));
        if *n >= self.limit {
            return Some(self.wait(*start));
        }
        *n += 1;
        None
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

/// The source address of a request (`0.0.0.0` when served without [`PeerAddr`]s, as in tests).
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<axum::extract::ConnectInfo<PeerAddr>>()
        .map(|c| c.0.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}
