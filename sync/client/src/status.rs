//! What the sync worker tells the rest of the kiosk: whether the endpoint is reachable, how much is
//! waiting, what went wrong last. Published on a `watch` channel for the UI, health checks and
//! `kiosk status`.

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::outbox::Backlog;

/// The state of the link to the endpoint, as last observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    /// No request has finished yet.
    #[default]
    Starting,
    /// The last request got a usable answer.
    Online,
    /// The endpoint could not be reached, timed out or failed (network error or 5xx).
    Offline,
    /// The endpoint refused the kiosk's credentials (401/403): check enrollment and the clock.
    AuthRejected,
    /// The endpoint asked the kiosk to slow down (429/503 with or without `Retry-After`).
    Throttled,
}

/// A snapshot of the sync worker's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncStatus {
    /// The link as last observed.
    pub link: LinkState,
    /// When a batch (or, while the outbox has no failure streak, a feed pull) last got a usable
    /// answer from the endpoint.
    pub last_success: Option<OffsetDateTime>,
    /// The last failure, for people (cleared by the next success).
    pub last_error: Option<String>,
    /// Failures of batch sending since the last success.
    pub consecutive_failures: u32,
    /// When the next attempt is due after a failure (`None` when not waiting on a failure).
    pub retry_at: Option<OffsetDateTime>,
    /// Events waiting in the outbox (refreshed at most once a second while draining).
    pub backlog: Option<Backlog>,
    /// The kiosk's wall clock minus the endpoint's, in ms, estimated from the last batch answer
    /// (positive: the kiosk is ahead).
    pub clock_skew_ms: Option<i64>,
    /// Batches that got an answer, since the worker started.
    pub batches_sent: u64,
    /// Events acknowledged (accepted or duplicate), since the worker started.
    pub events_acknowledged: u64,
    /// Events dead-lettered, since the worker started.
    pub events_dead_lettered: u64,
    /// When the sync feed was last read to its end.
    pub last_feed_sync: Option<OffsetDateTime>,
    /// The feed cursor after the last applied page.
    pub feed_cursor: Option<u64>,
    /// The last feed failure (cleared by the next successful pull).
    pub feed_error: Option<String>,
}

/// Receives every change of the worker's [`SyncStatus`].
pub type SyncStatusReceiver = watch::Receiver<SyncStatus>;
