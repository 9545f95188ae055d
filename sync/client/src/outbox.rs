//! The two seams between the sync worker and the kiosk's journal: the [`Outbox`] events leave
//! through, and the [`FeedSink`] the CRM's sync feed lands in.
//!
//! Data flow: journal → **outbox** → batch → endpoint, and endpoint → feed → **feed sink** →
//! journal caches. The firmware's journal implements both; the worker only sees envelopes as the
//! JSON they were journaled as and never learns what an event means. Methods are blocking (SQLite):
//! the worker calls them through `tokio::task::spawn_blocking`.

use kiosk_protocol::wire::FeedItem;

/// The error type outbox and feed-sink implementations return (kept as the source of the worker's
/// own errors, shown in [`crate::SyncStatus::last_error`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One journaled event waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event's per-device sequence number (its `seq` in the envelope).
    pub seq: u64,
    /// The event's id (its `id` in the envelope).
    pub id: uuid::Uuid,
    /// The envelope exactly as journaled (JSON); sent as is, never re-serialised.
    pub json: String,
}

/// How much is waiting in the outbox, for the status and the health dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Events not yet acknowledged nor dead-lettered.
    pub events: u64,
    /// Wall time (RFC 3339, as journaled) of the oldest of them.
    pub oldest_wall_time: Option<String>,
}

/// The journal's queue of events waiting for the endpoint (docs/DESIGN.md invariants 3 and 4).
pub trait Outbox: Send + Sync + 'static {
    /// The oldest unacknowledged events in seq order, at most `max_events` and `max_bytes` of JSON
    /// (always at least one if any are pending, however large).
    fn pending(&self, max_events: usize, max_bytes: usize) -> Result<Vec<OutboxEvent>, BoxError>;

    /// Marks events as received by the endpoint (accepted or duplicate): they are never sent again.
    /// Unknown or already acknowledged seqs are ignored.
    fn acknowledge(&self, seqs: &[u64]) -> Result<(), BoxError>;

    /// Wall time (RFC 3339, as journaled) of the oldest event waiting after `seq`: what will be
    /// the oldest once the batch ending at `seq` is acknowledged (`None`: nothing waits). An
    /// outbox that cannot tell answers an error, and batches carry the backlog count alone.
    fn oldest_after(&self, seq: u64) -> Result<Option<String>, BoxError> {
        let _ = seq;
        Err("this outbox does not tell the age of its backlog".into())
    }

    /// Moves the event to the dead-letter table with the reason and journals an
    /// `event_dead_lettered` alert, in one transaction.
    fn dead_letter(&self, seq: u64, reason: &str) -> Result<(), BoxError>;

    /// How much is waiting.
    fn backlog(&self) -> Result<Backlog, BoxError>;
}

/// The journal's caches the sync feed fills (campaigns, profiles, erasures).
pub trait FeedSink: Send + Sync + 'static {
    /// The feed cursor stored by the last [`FeedSink::apply`]; `None` before the first.
    fn cursor(&self) -> Result<Option<u64>, BoxError>;

    /// Applies the items in order and stores `next_cursor`, in one transaction (an erasure is
    /// applied at once: the person leaves the caches and the outbox loses their personal data).
    fn apply(&self, items: Vec<FeedItem>, next_cursor: u64) -> Result<(), BoxError>;
}
