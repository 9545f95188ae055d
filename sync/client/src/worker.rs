//! The sync worker: drains the outbox to the endpoint in batches, retries through any outage, and
//! pulls the sync feed into the journal's caches.
//!
//! Data flow: journal → outbox → **worker** (batch, send, acknowledge or dead-letter) → endpoint;
//! endpoint → feed → **worker** → feed sink. One tokio task runs two loops: the outbox loop and
//! the feed loop. Journal calls are blocking and go through `spawn_blocking`.
//!
//! What each answer to a batch does (docs/DESIGN.md invariants 3 to 5):
//! - 2xx: `accepted` and `duplicate` events are acknowledged, `rejected` ones dead-lettered with
//!   the endpoint's reason; the backoff resets;
//! - 400/413/422 on the whole batch: the batch is halved and resent until the event at fault is
//!   alone; a lone event the endpoint itself refuses (its answer is a protocol `ErrorBody`) is
//!   dead-lettered with that reason, so one bad event never blocks the queue and is never dropped
//!   silently. A 4xx from something that is not the endpoint (a proxy's HTML page) proves nothing
//!   about the event: the worker backs off and reports it instead;
//! - 401/403: backoff, status `AuthRejected` (a `stale_timestamp` is first retried at once with
//!   the signature timed by the endpoint's clock);
//! - 429/503: `Retry-After` (seconds or HTTP date) as a floor, plus the backoff's full jitter
//!   (growing with each refusal in a row), so a fleet told "2 s" by a saturated endpoint does
//!   not come back in lockstep 2 s later; without `Retry-After`, backoff;
//! - anything else (network error, timeout, 5xx, 404, a 2xx that is not protocol v1): backoff.
//!
//! Backoff is full jitter, capped, and nothing cuts it short: events appended during a backoff
//! (a customer's journey, the kiosk's own warnings) wait for the next attempt. A busy kiosk used
//! to wake at every new event and retried every half second through an outage, its own "sync
//! failed" warnings among the events that woke it; a fleet then came back in step. A batch that
//! failed is retried as the same batch (same
//! seq range, same id) unless its events were erased or dead-lettered meanwhile; after a restart
//! it is the same batch when nothing was appended in between, and the endpoint dedupes events by
//! id whatever the batch.

use std::sync::Arc;
use std::time::Duration;

use kiosk_protocol::wire::{BatchResponse, EventStatus, FeedItem};
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::StatusCode;
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, full_jitter};
use crate::batch::{Batch, assemble, events_byte_budget, unsendable_reason};
use crate::clock::SyncClock;
use crate::config::SyncConfig;
use crate::outbox::{Backlog, BoxError, FeedSink, Outbox};
use crate::status::{LinkState, SyncStatus, SyncStatusReceiver};
use crate::transport::{RequestError, SetupError, Transport};

/// A journal call (outbox or feed sink) that failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The implementation returned an error.
    #[error("journal {op} failed; check the journal database (disk full, permissions, corruption)")]
    Failed {
        /// Which call.
        op: &'static str,
        /// The implementation's error.
        #[source]
        source: BoxError,
    },
    /// The implementation panicked.
    #[error("journal {op} panicked")]
    Panicked {
        /// Which call.
        op: &'static str,
        /// The panic, as tokio reports it.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Starts the sync worker.
#[derive(Debug)]
pub struct SyncWorker;

impl SyncWorker {
    /// Spawns the worker on the current tokio runtime. It runs until `shutdown` is cancelled (the
    /// handle then completes) or the handle is aborted (safe at any point: delivery is
    /// at-least-once and the endpoint dedupes). Poke `outbox_appended` after journaling an event
    /// to have it sent at once (`notify_one`; pokes while busy are remembered).
    ///
    /// Fails only on bad settings (URL, TLS root); nothing is sent before it returns.
    pub fn spawn(
        config: SyncConfig,
        outbox: Arc<dyn Outbox>,
        feed_sink: Arc<dyn FeedSink>,
        clock: Arc<dyn SyncClock>,
        shutdown: CancellationToken,
        outbox_appended: Arc<Notify>,
    ) -> Result<(JoinHandle<()>, SyncStatusReceiver), SetupError> {
        let transport = Transport::new(&config, clock.clone())?;
        let (status, receiver) = watch::channel(SyncStatus::default());
        let shared = Arc::new(Shared {
            config,
            transport,
            clock,
            outbox,
            feed_sink,
            status,
            shutdown,
            appended: outbox_appended,
            feed_wake: Notify::new(),
            batch_failures: FailureLog::new("sync batches failing", "sync batches recovered"),
            feed_failures: FailureLog::new("sync feed failing", "sync feed recovered"),
        });
        let handle = tokio::spawn(async move {
            tokio::join!(outbox_loop(shared.clone()), feed_loop(shared));
        });
        Ok((handle, receiver))
    }
}

struct Shared {
    config: SyncConfig,
    transport: Transport,
    clock: Arc<dyn SyncClock>,
    outbox: Arc<dyn Outbox>,
    feed_sink: Arc<dyn FeedSink>,
    status: watch::Sender<SyncStatus>,
    shutdown: CancellationToken,
    appended: Arc<Notify>,
    feed_wake: Notify,
    batch_failures: FailureLog,
    feed_failures: FailureLog,
}

/// How often a failure that goes on is logged again as a warning; the attempts in between are
/// logged at debug level.
pub const STILL_FAILING_EVERY: Duration = Duration::from_secs(600);

/// A streak of failures logged as one: a warning at the first attempt, one every
/// [`STILL_FAILING_EVERY`] while it lasts (with the attempts so far), and an info line when it
/// ends. A warning is shipped to the CRM as a `device_log` event, which the outbox then has to
/// send: a warning per attempt would feed the very queue it reports on (up to 20 lines a
/// minute through an outage) and push every other warning off the dashboard.
#[derive(Debug)]
struct FailureLog {
    failing: &'static str,
    recovered: &'static str,
    streak: std::sync::Mutex<Option<Streak>>,
}

#[derive(Debug, Clone, Copy)]
struct Streak {
    since: Instant,
    told: Instant,
    attempts: u32,
}

impl FailureLog {
    fn new(failing: &'static str, recovered: &'static str) -> Self {
        FailureLog {
            failing,
            recovered,
            streak: std::sync::Mutex::new(None),
        }
    }

    /// Logs one failed attempt; true when it was logged as a warning.
    fn failed(&self, error: &str) -> bool {
        self.failed_at(error, Instant::now())
    }

    fn failed_at(&self, error: &str, now: Instant) -> bool {
        let mut streak = self
            .streak
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = streak.get_or_insert(Streak {
            since: now,
            told: now,
            attempts: 0,
        });
        s.attempts += 1;
        let failing_for_s = now.duration_since(s.since).as_secs();
        if s.attempts == 1 || now.duration_since(s.told) >= STILL_FAILING_EVERY {
            s.told = now;
            tracing::warn!(attempts = s.attempts, failing_for_s, error = %error, "{}", self.failing);
            true
        } else {
            tracing::debug!(attempts = s.attempts, failing_for_s, error = %error, "{}", self.failing);
            false
        }
    }

    fn succeeded(&self) {
        let ended = self
            .streak
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(s) = ended {
            tracing::info!(
                attempts = s.attempts,
                failed_for_s = s.since.elapsed().as_secs(),
                "{}",
                self.recovered
            );
        }
    }
}

/// Runs a blocking journal call off the async threads.
async fn journal<T, F>(op: &'static str, f: F) -> Result<T, JournalError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BoxError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(JournalError::Failed { op, source }),
        Err(source) => Err(JournalError::Panicked { op, source }),
    }
}

/// An error and its sources on one line, for the status.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cur = s.source();
    }
    text
}

/// What to do after a batch went wrong.
#[derive(Debug, PartialEq)]
enum Disposition {
    /// Wait, then retry the same batch. Nothing cuts the wait short: events appended meanwhile
    /// (a customer's journey, the kiosk's own logs) wait for the next attempt, so the delay
    /// grows as configured through an outage and a fleet coming back does not arrive in step.
    Retry { delay: Duration, link: LinkState },
    /// Resend at once, at most this many events (isolating the event at fault).
    Split(usize),
    /// Dead-letter the lone event with this reason.
    DeadLetter(String),
}

/// Sorts a failed batch request into what to do next. Counts the failure in `backoff` when it is
/// one.
fn dispose(
    e: &RequestError,
    batch_len: usize,
    backoff: &mut Backoff,
    retry_after_max: Duration,
    rng: &mut StdRng,
) -> Disposition {
    let offline = |backoff: &mut Backoff, rng: &mut StdRng, link| Disposition::Retry {
        delay: backoff.fail(rng),
        link,
    };
    match e {
        RequestError::Network { .. } | RequestError::Protocol { .. } => {
            offline(backoff, rng, LinkState::Offline)
        }
        RequestError::Compress(_) => offline(backoff, rng, LinkState::Offline),
        RequestError::Status {
            status,
            code,
            message,
            retry_after,
            ..
        } => match *status {
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNPROCESSABLE_ENTITY
                if batch_len > 1 =>
            {
                Disposition::Split(batch_len / 2)
            }
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNPROCESSABLE_ENTITY
                if code.is_some() =>
            {
                let code = code.map(|c| format!(" {c:?}")).unwrap_or_default();
                Disposition::DeadLetter(format!(
                    "endpoint refused the event with {status}{code}: {message}"
                ))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Disposition::Retry {
                delay: backoff.fail(rng),
                link: LinkState::AuthRejected,
            },
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                let delay = match retry_after {
                    // The endpoint's wait is a floor; full jitter above it spreads the fleet.
                    Some(after) => (*after).min(retry_after_max) + backoff.fail(rng),
                    None => backoff.fail(rng),
                };
                Disposition::Retry {
                    delay,
                    link: LinkState::Throttled,
                }
            }
            // Replay: an identical signed request already arrived (an attempt whose answer was
            // lost). Re-signing in a later second makes a new request.
            StatusCode::CONFLICT => Disposition::Retry {
                delay: Duration::from_millis(1000) + full_jitter(backoff.base(), rng),
                link: LinkState::Online,
            },
            _ => offline(backoff, rng, LinkState::Offline),
        },
    }
}

/// A rejected event: its seq and the endpoint's reason.
type Rejection = (u64, String);

/// Sorts a batch answer into seqs to acknowledge and seqs to dead-letter. `Err` when the answer
/// does not match the batch (then nothing is trusted and the batch is retried).
fn sort_results(
    batch: &Batch,
    response: &BatchResponse,
) -> Result<(Vec<u64>, Vec<Rejection>), String> {
    if response.batch_id != batch.id {
        return Err(format!(
            "answer is for batch {} but batch {} was sent",
            response.batch_id, batch.id
        ));
    }
    if response.results.len() != batch.len() {
        return Err(format!(
            "answer has {} results for {} events",
            response.results.len(),
            batch.len()
        ));
    }
    let mut acks = Vec::with_capacity(batch.len());
    let mut rejects = Vec::new();
    for ((seq, id), r) in batch.seqs.iter().zip(&batch.ids).zip(&response.results) {
        // A rejected event may be too malformed to have a readable id (nil, seq 0); any other
        // answer must name the event it answers.
        let named_right = r.id == *id && r.seq == *seq;
        let unreadable = r.status == EventStatus::Rejected && r.id.is_nil();
        if !named_right && !unreadable {
            return Err(format!(
                "result for seq {seq} names event {} seq {}",
                r.id, r.seq
            ));
        }
        match r.status {
            EventStatus::Accepted | EventStatus::Duplicate => acks.push(*seq),
            EventStatus::Rejected => rejects.push((
                *seq,
                r.reason
                    .clone()
                    .unwrap_or_else(|| "endpoint rejected the event without a reason".into()),
            )),
        }
    }
    Ok((acks, rejects))
}

impl Shared {
    fn set_status(&self, f: impl FnOnce(&mut SyncStatus)) {
        self.status.send_modify(f);
    }

    /// Waits `delay` from `failed_at` (or until shutdown: false).
    async fn pause(&self, delay: Duration, failed_at: Instant) -> bool {
        let deadline = failed_at + delay;
        let retry_at =
            OffsetDateTime::now_utc() + deadline.saturating_duration_since(Instant::now());
        self.set_status(|s| s.retry_at = Some(retry_at));
        tokio::select! {
            _ = self.shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(deadline) => {}
        }
        self.set_status(|s| s.retry_at = None);
        true
    }

    fn record_failure(&self, link: LinkState, error: String, failures: u32) {
        let _warned = self.batch_failures.failed(&error);
        self.set_status(|s| {
            s.link = link;
            s.last_error = Some(error);
            s.consecutive_failures = failures;
        });
    }
}

async fn outbox_loop(sh: Arc<Shared>) {
    let (max_events, max_bytes) = sh.config.batch_limits();
    let mut backoff = Backoff::new(sh.config.backoff_base, sh.config.backoff_cap);
    let mut rng = StdRng::from_entropy();
    // Shrinks while isolating an event the endpoint refuses with the whole batch; grows back on
    // success.
    let mut limit = max_events;
    // Last seq of a batch that failed: the retry is the same batch.
    let mut retry_upto: Option<u64> = None;
    let mut backlog: Option<(Instant, Backlog)> = None;

    while !sh.shutdown.is_cancelled() {
        let budget = events_byte_budget(limit, max_bytes);
        let outbox = sh.outbox.clone();
        let read = tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            r = journal("outbox read", move || outbox.pending(limit, budget)) => r,
        };
        let mut events = match read {
            Ok(events) => events,
            Err(e) => {
                let delay = backoff.fail(&mut rng);
                sh.record_failure(sh.status.borrow().link, chain(&e), backoff.failures());
                if !sh.pause(delay, Instant::now()).await {
                    return;
                }
                continue;
            }
        };
        if let Some(upto) = retry_upto {
            events.retain(|e| e.seq <= upto);
            if events.is_empty() {
                // Everything of the failed batch went away (erased, dead-lettered): start afresh.
                retry_upto = None;
                continue;
            }
        }

        if events.is_empty() {
            refresh_backlog(&sh, &mut backlog, true).await;
            tokio::select! {
                _ = sh.shutdown.cancelled() => return,
                _ = sh.appended.notified() => {}
                _ = tokio::time::sleep(sh.config.idle_poll) => {}
            }
            continue;
        }

        // Events that can never travel (not JSON, larger than a batch) are dead-lettered here.
        let unsendable: Vec<(u64, String)> = events
            .iter()
            .filter_map(|e| unsendable_reason(e, max_bytes).map(|r| (e.seq, r)))
            .collect();
        if !unsendable.is_empty() {
            if !dead_letter_all(&sh, unsendable, &mut backoff, &mut rng).await {
                return;
            }
            continue;
        }

        refresh_backlog(&sh, &mut backlog, false).await;
        let waiting_after = backlog
            .as_ref()
            .map(|(_, b)| b.events.saturating_sub(events.len() as u64));
        let clock_now = sh.clock.now();
        // Exact for the backlog alert: the age of what will be the oldest unsent event once
        // this batch is in (the journal's wall time of the first event after it).
        let outbox = sh.outbox.clone();
        let last = events.last().map_or(0, |e| e.seq);
        let (waiting_after, backlog_age_ms) =
            match journal("outbox oldest", move || outbox.oldest_after(last)).await {
                Ok(None) => (Some(0), None),
                Ok(Some(t)) => {
                    let age = time::OffsetDateTime::parse(
                        &t,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                    .map(|oldest| {
                        u64::try_from((clock_now.wall_time - oldest).whole_milliseconds())
                            .unwrap_or(0)
                    });
                    (Some(waiting_after.unwrap_or(0).max(1)), age)
                }
                Err(_) => (waiting_after, None),
            };
        let batch = match assemble(
            &sh.config.kiosk_id,
            &clock_now,
            waiting_after,
            backlog_age_ms,
            &events,
        ) {
            Ok(b) => b,
            Err(e) => {
                // Serialising a KioskClock cannot fail in practice; treat it like any failure.
                let delay = backoff.fail(&mut rng);
                sh.record_failure(LinkState::Offline, chain(&e), backoff.failures());
                if !sh.pause(delay, Instant::now()).await {
                    return;
                }
                continue;
            }
        };
        drop(events);

        let sent = tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            r = sh.transport.post_batch(&batch) => r,
        };
        let failed_at = Instant::now();
        let reply = match sent {
            Ok(reply) => reply,
            Err(e) => {
                let disposition = dispose(
                    &e,
                    batch.len(),
                    &mut backoff,
                    sh.config.retry_after_max,
                    &mut rng,
                );
                match disposition {
                    Disposition::Split(n) => {
                        tracing::info!(error = %chain(&e), events = batch.len(), "endpoint refused the whole batch; halving it to find the event at fault");
                        limit = n.max(1);
                        retry_upto = None;
                    }
                    Disposition::DeadLetter(reason) => {
                        let seq = batch.seqs[0];
                        retry_upto = None;
                        if !dead_letter_all(&sh, vec![(seq, reason)], &mut backoff, &mut rng).await
                        {
                            return;
                        }
                    }
                    Disposition::Retry { delay, link } => {
                        retry_upto = batch.seqs.last().copied();
                        sh.record_failure(link, chain(&e), backoff.failures());
                        if !sh.pause(delay, failed_at).await {
                            return;
                        }
                    }
                }
                continue;
            }
        };

        let (acks, rejects) = match sort_results(&batch, &reply.response) {
            Ok(sorted) => sorted,
            Err(what) => {
                let delay = backoff.fail(&mut rng);
                retry_upto = batch.seqs.last().copied();
                sh.record_failure(
                    LinkState::Offline,
                    format!("endpoint's batch answer does not match the batch ({what}); retrying"),
                    backoff.failures(),
                );
                if !sh.pause(delay, failed_at).await {
                    return;
                }
                continue;
            }
        };

        let acked = acks.len() as u64;
        let outbox = sh.outbox.clone();
        let ack = journal("outbox acknowledge", move || outbox.acknowledge(&acks)).await;
        if let Err(e) = ack {
            // The endpoint has the events; resending them later only yields duplicates.
            let delay = backoff.fail(&mut rng);
            retry_upto = batch.seqs.last().copied();
            sh.record_failure(sh.status.borrow().link, chain(&e), backoff.failures());
            if !sh.pause(delay, failed_at).await {
                return;
            }
            continue;
        }
        let was_offline = sh.status.borrow().link != LinkState::Online;
        sh.batch_failures.succeeded();
        sh.set_status(|s| {
            s.link = LinkState::Online;
            s.last_success = Some(OffsetDateTime::now_utc());
            s.last_error = None;
            s.consecutive_failures = 0;
            s.retry_at = None;
            s.clock_skew_ms = Some(reply.skew_ms);
            s.batches_sent += 1;
            s.events_acknowledged += acked;
        });
        backoff.reset();
        retry_upto = None;
        limit = (limit.saturating_mul(2)).min(max_events);
        if was_offline {
            // The endpoint is back: have the feed catch up now rather than at its next interval.
            sh.feed_wake.notify_one();
        }
        if !rejects.is_empty() && !dead_letter_all(&sh, rejects, &mut backoff, &mut rng).await {
            return;
        }
    }
}

/// Dead-letters events one by one; on a journal failure waits and returns (the events are still
/// pending and come back). False on shutdown.
async fn dead_letter_all(
    sh: &Shared,
    items: Vec<(u64, String)>,
    backoff: &mut Backoff,
    rng: &mut StdRng,
) -> bool {
    for (seq, reason) in items {
        tracing::warn!(seq, reason = %reason, "dead-lettering event");
        let outbox = sh.outbox.clone();
        let r = reason.clone();
        match journal("outbox dead-letter", move || outbox.dead_letter(seq, &r)).await {
            Ok(()) => sh.set_status(|s| s.events_dead_lettered += 1),
            Err(e) => {
                let delay = backoff.fail(rng);
                sh.record_failure(sh.status.borrow().link, chain(&e), backoff.failures());
                return sh.pause(delay, Instant::now()).await;
            }
        }
    }
    true
}

/// Reads the backlog for the status, at most once a second unless `force`.
async fn refresh_backlog(sh: &Shared, cached: &mut Option<(Instant, Backlog)>, force: bool) {
    let fresh = cached
        .as_ref()
        .is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(1));
    if fresh && !force {
        return;
    }
    let outbox = sh.outbox.clone();
    match journal("outbox backlog", move || outbox.backlog()).await {
        Ok(b) => {
            let changed = sh.status.borrow().backlog.as_ref() != Some(&b);
            if changed {
                let copy = b.clone();
                sh.set_status(|s| s.backlog = Some(copy));
            }
            *cached = Some((Instant::now(), b));
        }
        Err(e) => tracing::warn!(error = %chain(&e), "could not read the outbox backlog"),
    }
}

/// Why a feed pull failed.
#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

async fn feed_loop(sh: Arc<Shared>) {
    if sh.config.feed_interval.is_zero() {
        return;
    }
    let mut backoff = Backoff::new(sh.config.backoff_base, sh.config.backoff_cap);
    let mut rng = StdRng::from_entropy();
    loop {
        let pulled = tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            r = pull_feed(&sh) => r,
        };
        let wait = match pulled {
            Ok(()) => {
                backoff.reset();
                sh.feed_failures.succeeded();
                let now = OffsetDateTime::now_utc();
                sh.set_status(|s| {
                    s.last_feed_sync = Some(now);
                    s.feed_error = None;
                    // An idle outbox says nothing about the link: the feed does. The outbox
                    // loop's own failure streak takes precedence.
                    if s.consecutive_failures == 0 {
                        s.link = LinkState::Online;
                        s.last_success = Some(now);
                    }
                });
                sh.config.feed_interval
            }
            Err(e) => {
                let text = chain(&e);
                let _warned = sh.feed_failures.failed(&text);
                let link = match &e {
                    FeedError::Request(RequestError::Status { status, .. })
                        if *status == StatusCode::UNAUTHORIZED
                            || *status == StatusCode::FORBIDDEN =>
                    {
                        Some(LinkState::AuthRejected)
                    }
                    FeedError::Request(RequestError::Status { status, .. })
                        if *status == StatusCode::TOO_MANY_REQUESTS =>
                    {
                        Some(LinkState::Throttled)
                    }
                    FeedError::Request(_) => Some(LinkState::Offline),
                    FeedError::Journal(_) => None,
                };
                sh.set_status(|s| {
                    s.feed_error = Some(text);
                    if let Some(link) = link.filter(|_| s.consecutive_failures == 0) {
                        s.link = link;
                    }
                });
                backoff.fail(&mut rng).min(sh.config.feed_interval)
            }
        };
        tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = sh.feed_wake.notified() => {}
        }
    }
}

/// Reads the feed from the stored cursor to its end, applying each page in one journal call.
async fn pull_feed(sh: &Shared) -> Result<(), FeedError> {
    let sink = sh.feed_sink.clone();
    let mut cursor = journal("feed cursor", move || sink.cursor())
        .await?
        .unwrap_or(0);
    loop {
        let page = sh
            .transport
            .get_feed(
                cursor,
                sh.config
                    .feed_page_limit
                    .clamp(1, kiosk_protocol::wire::MAX_FEED_LIMIT),
            )
            .await?;
        let items: Vec<FeedItem> = page.items;
        let empty = items.is_empty();
        if !empty || page.next_cursor != cursor {
            let sink = sh.feed_sink.clone();
            let next = page.next_cursor;
            journal("feed apply", move || sink.apply(items, next)).await?;
        }
        cursor = page.next_cursor;
        sh.set_status(|s| s.feed_cursor = Some(cursor));
        // `more` with nothing in the page would loop forever: leave it to the next pull.
        if !page.more || empty {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiosk_protocol::wire::{ErrorCode, EventResult};
    use uuid::Uuid;

    #[test]
    fn an_outage_is_one_warning_then_one_every_ten_minutes_and_a_fresh_start_after_it() {
        let log = FailureLog::new("sync batches failing", "sync batches recovered");
        // An hour of attempts every 30 s (the backoff's cap region): 120 attempts.
        let t0 = Instant::now();
        let warned = (0..120)
            .filter(|i| log.failed_at("connection refused", t0 + Duration::from_secs(30 * i)))
            .count();
        assert_eq!(
            warned, 6,
            "the first attempt, then at 10, 20, 30, 40 and 50 minutes"
        );
        log.succeeded();
        assert!(
            log.failed("connection refused"),
            "a new outage warns at once"
        );
        assert!(!log.failed("connection refused"));
    }

    fn status_error(
        status: u16,
        code: Option<ErrorCode>,
        retry_after: Option<u64>,
    ) -> RequestError {
        RequestError::Status {
            url: "http://x/v1".into(),
            status: StatusCode::from_u16(status).unwrap(),
            code,
            message: "m".into(),
            retry_after: retry_after.map(Duration::from_secs),
            server_date: None,
        }
    }

    fn fresh() -> (Backoff, StdRng) {
        (
            Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            StdRng::seed_from_u64(9),
        )
    }

    #[test]
    fn a_refused_batch_is_halved_until_one_event_is_left_then_dead_lettered() {
        let (mut b, mut rng) = fresh();
        let max = Duration::from_secs(900);
        for status in [400, 413, 422] {
            let e = status_error(status, Some(ErrorCode::Malformed), None);
            assert_eq!(
                dispose(&e, 500, &mut b, max, &mut rng),
                Disposition::Split(250)
            );
            assert_eq!(dispose(&e, 3, &mut b, max, &mut rng), Disposition::Split(1));
            assert!(matches!(
                dispose(&e, 1, &mut b, max, &mut rng),
                Disposition::DeadLetter(reason) if reason.contains(&status.to_string())
            ));
        }
        assert_eq!(
            b.failures(),
            0,
            "isolating a bad event is not a link failure"
        );
    }

    #[test]
    fn a_lone_event_refused_by_something_other_than_the_endpoint_is_retried_not_dead_lettered() {
        let (mut b, mut rng) = fresh();
        let e = status_error(413, None, None);
        assert!(matches!(
            dispose(&e, 1, &mut b, Duration::from_secs(900), &mut rng),
            Disposition::Retry {
                link: LinkState::Offline,
                ..
            }
        ));
    }

    #[test]
    fn auth_failures_back_off_without_being_cut_short() {
        let (mut b, mut rng) = fresh();
        for status in [401, 403] {
            let e = status_error(status, Some(ErrorCode::BadSignature), None);
            assert!(matches!(
                dispose(&e, 10, &mut b, Duration::from_secs(900), &mut rng),
                Disposition::Retry { link: LinkState::AuthRejected, delay } if delay <= Duration::from_secs(10)
            ));
        }
        assert_eq!(b.failures(), 2);
    }

    #[test]
    fn throttling_honours_retry_after_within_its_maximum() {
        let (mut b, mut rng) = fresh();
        let max = Duration::from_secs(60);
        for status in [429, 503] {
            let e = status_error(status, None, Some(30));
            let ceiling = b.ceiling();
            let Disposition::Retry { delay, link } = dispose(&e, 10, &mut b, max, &mut rng) else {
                panic!("throttling must be retried");
            };
            assert_eq!(link, LinkState::Throttled);
            assert!(delay >= Duration::from_secs(30) && delay <= Duration::from_secs(30) + ceiling);
            let e = status_error(status, None, Some(3600));
            let ceiling = b.ceiling();
            let Disposition::Retry { delay, .. } = dispose(&e, 10, &mut b, max, &mut rng) else {
                panic!("throttling must be retried");
            };
            assert!(delay >= max && delay <= max + ceiling);
        }
    }

    #[test]
    fn retry_after_is_a_floor_under_full_jitter_that_grows_with_each_refusal() {
        let (mut b, mut rng) = fresh();
        let max = Duration::from_secs(900);
        let floor = Duration::from_secs(2);
        let mut above = Vec::new();
        for _ in 0..200 {
            b.reset();
            for _ in 0..4 {
                let e = status_error(503, None, Some(2));
                let Disposition::Retry { delay, .. } = dispose(&e, 10, &mut b, max, &mut rng)
                else {
                    panic!("throttling must be retried");
                };
                assert!(delay >= floor, "{delay:?} below the endpoint's Retry-After");
                above.push(delay - floor);
            }
        }
        // Four refusals in a row: ceilings 100, 200, 400, 800 ms above the floor. Spread over
        // the whole range, not bunched at the floor (lockstep) nor at a ceiling.
        assert!(above.iter().all(|d| *d <= Duration::from_millis(800)));
        let near_floor = above
            .iter()
            .filter(|d| **d < Duration::from_millis(50))
            .count();
        let far = above
            .iter()
            .filter(|d| **d > Duration::from_millis(400))
            .count();
        assert!(
            near_floor > 20 && near_floor < 300,
            "{near_floor} of 800 within 50 ms"
        );
        assert!(far > 20, "{far} of 800 more than 400 ms above the floor");
        assert_eq!(b.failures(), 4);
    }

    #[test]
    fn server_errors_back_off_as_offline() {
        let (mut b, mut rng) = fresh();
        for status in [500, 502, 404] {
            let e = status_error(status, None, None);
            assert!(matches!(
                dispose(&e, 10, &mut b, Duration::from_secs(900), &mut rng),
                Disposition::Retry {
                    link: LinkState::Offline,
                    ..
                }
            ));
        }
        assert_eq!(b.failures(), 3);
    }

    fn batch_of(seqs: &[u64]) -> Batch {
        Batch {
            id: kiosk_protocol::wire::batch_id("k1", seqs[0], *seqs.last().unwrap()),
            seqs: seqs.to_vec(),
            ids: seqs.iter().map(|_| Uuid::now_v7()).collect(),
            body: Vec::new(),
        }
    }

    fn answer(batch: &Batch, statuses: &[EventStatus]) -> BatchResponse {
        BatchResponse {
            batch_id: batch.id,
            results: batch
                .seqs
                .iter()
                .zip(&batch.ids)
                .zip(statuses)
                .map(|((seq, id), status)| EventResult {
                    id: *id,
                    seq: *seq,
                    status: *status,
                    reason: (*status == EventStatus::Rejected).then(|| "bad payload".into()),
                })
                .collect(),
            server_time: OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn accepted_and_duplicate_are_acknowledged_and_rejected_dead_lettered_with_the_reason() {
        let batch = batch_of(&[4, 5, 7]);
        let resp = answer(
            &batch,
            &[
                EventStatus::Accepted,
                EventStatus::Rejected,
                EventStatus::Duplicate,
            ],
        );
        let (acks, rejects) = sort_results(&batch, &resp).unwrap();
        assert_eq!(acks, vec![4, 7]);
        assert_eq!(rejects, vec![(5, "bad payload".to_owned())]);
    }

    #[test]
    fn an_answer_that_does_not_match_the_batch_is_not_trusted() {
        let batch = batch_of(&[1, 2]);
        let mut resp = answer(&batch, &[EventStatus::Accepted, EventStatus::Accepted]);
        resp.results.pop();
        assert!(sort_results(&batch, &resp).is_err());
        let mut resp = answer(&batch, &[EventStatus::Accepted, EventStatus::Accepted]);
        resp.batch_id = Uuid::nil();
        assert!(sort_results(&batch, &resp).is_err());
        let mut resp = answer(&batch, &[EventStatus::Accepted, EventStatus::Accepted]);
        resp.results.swap(0, 1);
        assert!(sort_results(&batch, &resp).is_err());
        // An unreadable rejected event is answered with a nil id and seq 0.
        let mut resp = answer(&batch, &[EventStatus::Rejected, EventStatus::Accepted]);
        resp.results[0].id = Uuid::nil();
        resp.results[0].seq = 0;
        let (acks, rejects) = sort_results(&batch, &resp).unwrap();
        assert_eq!((acks, rejects.len()), (vec![2], 1));
    }
}
