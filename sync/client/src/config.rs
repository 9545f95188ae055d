//! What the sync worker needs to know: where the endpoint is, who the kiosk is, and how patient
//! to be. Built by the firmware from its configuration and enrollment.

use std::sync::Arc;
use std::time::Duration;

use kiosk_protocol::wire::{DeviceSecret, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};

/// TLS settings for the connection to the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM of the CA (or self-signed certificate) to trust *instead of* the system's roots: a
    /// fleet's private CA, or a test endpoint's self-signed certificate. `None` trusts the system's
    /// roots (through the platform verifier).
    pub root_ca_pem: Option<String>,
}

/// How the endpoint's host name is resolved: a [`reqwest::dns::Resolve`] in place of the
/// system's resolver (`getaddrinfo`, which follows `/etc/hosts` and `/etc/resolv.conf`). For a
/// fleet that pins its CRM's address or resolves through its own DNS, and for tests that make
/// name resolution fail under a running worker.
#[derive(Clone)]
pub struct DnsResolver(pub Arc<dyn reqwest::dns::Resolve>);

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnsResolver(..)")
    }
}

/// What one batch request came to: for a fleet's metrics, and how the reconnect-storm
/// simulation measures latency, refusals and whether `Retry-After` was honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchAttempt {
    /// When the request was sent.
    pub started: std::time::Instant,
    /// From sending to the last byte of the answer (or the failure).
    pub elapsed: Duration,
    /// The HTTP status (200 for any success); `None` when no answer came (network error,
    /// timeout).
    pub status: Option<u16>,
    /// The answer's `Retry-After`, when it had a readable one.
    pub retry_after: Option<Duration>,
    /// Events in the batch.
    pub events: usize,
}

/// Called after every batch request (see [`BatchAttempt`]); must be quick (it runs on the
/// worker's task).
#[derive(Clone)]
pub struct BatchObserver(pub Arc<dyn Fn(&BatchAttempt) + Send + Sync>);

impl std::fmt::Debug for BatchObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchObserver(..)")
    }
}

/// Settings of one [`crate::SyncWorker`].
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Base URL of the endpoint, `https://crm.example.com` (a path prefix is kept and signed).
    pub endpoint_url: String,
    /// The kiosk id given at enrollment.
    pub kiosk_id: String,
    /// The device secret given at enrollment; requests are signed with it.
    pub device_secret: DeviceSecret,
    /// First backoff ceiling after a failure.
    pub backoff_base: Duration,
    /// Highest backoff ceiling: how long at most a kiosk stays silent when the endpoint is down.
    pub backoff_cap: Duration,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for a whole request, from sending to the last byte of the answer.
    pub request_timeout: Duration,
    /// Most events per batch (clamped to the protocol's 500).
    pub max_batch_events: usize,
    /// Most bytes of uncompressed JSON per batch body (clamped to the protocol's 256 KiB).
    pub max_batch_bytes: usize,
    /// How often the sync feed is pulled.
    pub feed_interval: Duration,
    /// Items asked for per feed page (clamped to 1 to the protocol's 1000: the endpoint refuses
    /// other limits).
    pub feed_page_limit: u32,
    /// How often an idle worker looks at the outbox when nobody pokes it.
    pub idle_poll: Duration,
    /// Longest `Retry-After` honoured; longer ones are cut to this (a misconfigured proxy must not
    /// silence a kiosk for a day).
    pub retry_after_max: Duration,
    /// Whether batch bodies are sent gzip-compressed (`Content-Encoding: gzip`).
    pub gzip_requests: bool,
    /// TLS settings.
    pub tls: TlsSettings,
    /// Name resolution; `None` is the system's resolver.
    pub resolver: Option<DnsResolver>,
    /// Told about every batch request; `None` for nobody.
    pub batch_observer: Option<BatchObserver>,
}

impl SyncConfig {
    /// Settings with the defaults: backoff 500 ms to 60 s, connect timeout 5 s, request timeout
    /// 30 s, batches of 500 events or 256 KiB, feed every 60 s, idle poll every 5 s, `Retry-After`
    /// up to 15 min, gzip on, system roots, system resolver.
    pub fn new(
        endpoint_url: impl Into<String>,
        kiosk_id: impl Into<String>,
        device_secret: DeviceSecret,
    ) -> Self {
        SyncConfig {
            endpoint_url: endpoint_url.into(),
            kiosk_id: kiosk_id.into(),
            device_secret,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_batch_events: MAX_BATCH_EVENTS,
            max_batch_bytes: MAX_BATCH_BYTES,
            feed_interval: Duration::from_secs(60),
            feed_page_limit: 200,
            idle_poll: Duration::from_secs(5),
            retry_after_max: Duration::from_secs(15 * 60),
            gzip_requests: true,
            tls: TlsSettings::default(),
            resolver: None,
            batch_observer: None,
        }
    }

    /// Batch limits as the worker applies them: within the protocol's, at least one event and
    /// 1 KiB.
    pub(crate) fn batch_limits(&self) -> (usize, usize) {
        (
            self.max_batch_events.clamp(1, MAX_BATCH_EVENTS),
            self.max_batch_bytes.clamp(1024, MAX_BATCH_BYTES),
        )
    }
}
