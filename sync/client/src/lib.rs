//! The kiosk side of the sync (crate `kiosk-sync`): a worker that drains the journal's outbox to
//! the CRM endpoint in signed, gzip batches, retries through any outage with capped full-jitter
//! backoff, dead-letters what the endpoint rejects, and pulls the sync feed into the journal's
//! caches.
//!
//! Data flow: engine → journal → [`Outbox`] → [`SyncWorker`] → endpoint, and endpoint → feed →
//! [`SyncWorker`] → [`FeedSink`] → journal caches. The worker knows events only by their envelope
//! (seq, id, JSON); the firmware's journal implements [`Outbox`] and [`FeedSink`].
//!
//! TLS: reqwest is built with rustls and no default crypto provider (the workspace avoids
//! aws-lc-rs); [`SyncWorker::spawn`] installs rustls' *ring* provider as the process default (see
//! [`install_crypto_provider`]) before building its client.

pub mod backoff;
mod batch;
pub mod clock;
pub mod config;
pub mod outbox;
pub mod status;
mod transport;
mod worker;

pub use clock::{SyncClock, SystemSyncClock};
pub use config::{BatchAttempt, BatchObserver, DnsResolver, SyncConfig, TlsSettings};
pub use outbox::{Backlog, BoxError, FeedSink, Outbox, OutboxEvent};
pub use status::{LinkState, SyncStatus, SyncStatusReceiver};
pub use transport::{
    EnrollError, ProfileLookup, ReleaseClient, RequestError, SetupError, enroll,
    install_crypto_provider,
};
pub use worker::{JournalError, SyncWorker};
