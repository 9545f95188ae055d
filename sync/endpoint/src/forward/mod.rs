//! Forwarding to the company's CRM (issue 21): what the kiosks tell (a customer registered, a
//! consent changed, a turn issued, called or served, a survey answered, a coupon redeemed) and
//! what the operator does (a customer changed, a customer erased) reach the endpoints the
//! operator subscribed: a Standard Webhooks receiver, or the ready HubSpot connector
//! ([`hubspot`]).
//!
//! Data flow: ingest / admin change / erasure → **outbox rows in the same transaction**
//! ([`crate::db::forward`], docs/DESIGN.md invariant 21) → [`deliver_due`] at each replica every
//! [`POLL_EVERY`] (rows claimed with a lease, `FOR UPDATE SKIP LOCKED` on PostgreSQL) →
//! [`crate::outbound`] (signed) or the connector → delivered, retried, or dead-lettered.
//!
//! The policy, stated once:
//! - **Retries**: attempt *n*+1 waits [`backoff`]`(n)`: 5 s × 3^(n-1), at most 12 h, ±20 %
//!   jitter; [`MAX_ATTEMPTS`] (15) attempts span about 3 days (73.7 h without jitter); the 15th
//!   failure makes the message a dead letter (replayable). A 429 answer waits its `Retry-After`
//!   (else the backoff) and does not count as an attempt.
//! - **Disabling**: an endpoint whose attempts all failed for [`DISABLE`]`.for_ms` (3 days) and at
//!   least [`DISABLE`]`.failures` (15) times in a row is disabled; its messages keep waiting (new
//!   ones are still queued) until the operator enables it again, when they are due at once.
//! - **Order per customer**: a message is claimed only when no earlier waiting message of its
//!   endpoint has the same key (the card token; an anonymous turn's id) — a later message about
//!   a customer waits until the earlier one is delivered or dead-lettered.
//! - **Retention**: a delivered message is deleted [`KEEP_DELIVERED_MS`] (7 days) after its
//!   delivery; waiting messages and dead letters stay until sent, replayed or their endpoint is
//!   deleted.
//! - **Exactly once in effect**: the webhook-id is the same on every retry and replay (for a
//!   kiosk event, `msg_` and the event's id): a receiver that remembers the ids it took drops the
//!   repeats a crash between its answer and our record can cause.

pub mod hubspot;

use std::time::{Duration, Instant};

use crate::db::forward::{Claimed, DisableRule, ForwardOutcome};
use crate::db::{DbResult, SharedDb};
use crate::outbound::{self, Failure, Webhook};

/// How often each replica looks for due messages.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// A claimed message is not sent by another replica for this long; a round stops sending before
/// its lease could run out (the rest is released).
pub const LEASE_MS: i64 = 60_000;
/// Messages claimed per round.
pub const PER_ROUND: i64 = 20;
/// Delivered messages are kept this long (the console's counts), then deleted.
pub const KEEP_DELIVERED_MS: i64 = 7 * 24 * 3_600_000;
/// How often each replica deletes the delivered messages past [`KEEP_DELIVERED_MS`].
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Attempts at one message before it is a dead letter.
pub const MAX_ATTEMPTS: u32 = 15;
/// When an endpoint that keeps failing is disabled.
pub const DISABLE: DisableRule = DisableRule {
    failures: 15,
    for_ms: 3 * 24 * 3_600_000,
};

/// The wait before attempt `attempts + 1` before jitter: 5 s × 3^(attempts-1), at most 12 h.
pub fn base_backoff(attempts: u32) -> Duration {
    let secs = 5u64.saturating_mul(3u64.saturating_pow(attempts.saturating_sub(1)));
    Duration::from_secs(secs.min(12 * 3600))
}

/// [`base_backoff`] with `jitter` in -1.0..=1.0 scaling it by ±20 % (so that messages failed
/// together do not all come back together).
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    base_backoff(attempts).mul_f64(1.0 + 0.2 * jitter.clamp(-1.0, 1.0))
}

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Delivered.
    pub delivered: usize,
    /// Failed, to be retried.
    pub failed: usize,
    /// Dead-lettered.
    pub dead: usize,
    /// Throttled by their receiver (429).
    pub throttled: usize,
    /// Endpoints disabled by the failure rule.
    pub disabled: usize,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Claims and sends the messages due at `now_ms`.
pub async fn deliver_due(db: &SharedDb, http: &reqwest::Client, now_ms: i64) -> DbResult<Round> {
    let started = Instant::now();
    let mut round = Round::default();
    let mut throttled: std::collections::HashMap<String, i64> = Default::default();
    let claimed = db.forward_claim(now_ms, LEASE_MS, PER_ROUND).await?;
    // Stop sending while a request could still end inside the lease.
    let budget = Duration::from_millis(u64::try_from(LEASE_MS).unwrap_or(0))
        .saturating_sub(outbound::TIMEOUT * 3);
    for m in claimed {
        let outcome = if let Some(until) = throttled.get(&m.endpoint_id) {
            ForwardOutcome::Throttled { next_ms: *until }
        } else if started.elapsed() > budget {
            ForwardOutcome::Released
        } else {
            match send(http, &m).await {
                Ok(()) => {
                    round.delivered += 1;
                    ForwardOutcome::Delivered
                }
                Err(Failure::Throttled { retry_after }) => {
                    round.throttled += 1;
                    let wait = retry_after.unwrap_or_else(|| backoff(m.attempts, jitter()));
                    let until = now_ms + ms(wait);
                    throttled.insert(m.endpoint_id.clone(), until);
                    tracing::info!(endpoint = %m.endpoint_id, retry_s = wait.as_secs(), "forwarding throttled by the receiver");
                    ForwardOutcome::Throttled { next_ms: until }
                }
                Err(Failure::Failed(error)) if m.attempts >= MAX_ATTEMPTS => {
                    round.dead += 1;
                    tracing::error!(endpoint = %m.endpoint_id, message = %m.msg_id, kind = %m.event_type, %error, "forwarding gave up: dead letter");
                    ForwardOutcome::Dead { error }
                }
                Err(Failure::Failed(error)) => {
                    round.failed += 1;
                    let wait = backoff(m.attempts, jitter());
                    tracing::warn!(endpoint = %m.endpoint_id, message = %m.msg_id, attempt = m.attempts, retry_s = wait.as_secs(), %error, "forwarding failed");
                    ForwardOutcome::Retry {
                        next_ms: now_ms + ms(wait),
                        error,
                    }
                }
            }
        };
        if db
            .forward_finish(m.endpoint_id.clone(), m.seq, outcome, DISABLE, now_ms)
            .await?
        {
            round.disabled += 1;
            tracing::error!(endpoint = %m.endpoint_id, "forwarding endpoint disabled: its attempts failed for 3 days");
        }
    }
    Ok(round)
}

fn jitter() -> f64 {
    rand::random::<f64>() * 2.0 - 1.0
}

async fn send(http: &reqwest::Client, m: &Claimed) -> Result<(), Failure> {
    match m.kind.as_str() {
        "webhook" => {
            let hook = Webhook {
                url: m.url.clone(),
                secret: m.secret.clone(),
            };
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            outbound::post_signed(http, &hook, &m.msg_id, timestamp, &m.payload).await
        }
        "hubspot" => {
            let options: hubspot::Options = serde_json::from_str(&m.options)
                .map_err(|e| Failure::Failed(format!("the connector's options: {e}")))?;
            let connector = hubspot::HubSpot {
                http,
                base: &m.url,
                token: &m.secret,
                options: &options,
            };
            connector.deliver(&m.msg_id, &m.payload).await
        }
        other => Err(Failure::Failed(format!("unknown endpoint kind {other:?}"))),
    }
}

/// Sends due messages every [`POLL_EVERY`] while serving (a full round goes again at once).
pub async fn run(db: SharedDb) {
    let http = match outbound::client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: nothing is forwarded");
            return;
        }
    };
    let mut purged: Option<Instant> = None;
    loop {
        let now = crate::ingest::unix_ms(time::OffsetDateTime::now_utc());
        if purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
            purged = Some(Instant::now());
            match db.forward_purge_delivered(now - KEEP_DELIVERED_MS).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "delivered forwarding messages deleted"),
                Err(e) => {
                    tracing::warn!(error = %e, "deleting delivered forwarding messages failed")
                }
            }
        }
        match deliver_due(&db, &http, now).await {
            Ok(r) if r.delivered + r.failed + r.dead > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "forwarding round failed"),
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spans_about_three_days_in_fifteen_attempts() {
        assert_eq!(base_backoff(1), Duration::from_secs(5));
        assert_eq!(base_backoff(2), Duration::from_secs(15));
        assert_eq!(base_backoff(9), Duration::from_secs(32_805));
        assert_eq!(base_backoff(10), Duration::from_secs(12 * 3600));
        let total: Duration = (1..MAX_ATTEMPTS).map(base_backoff).sum();
        let hours = total.as_secs_f64() / 3600.0;
        assert!((72.0..76.0).contains(&hours), "{hours} h");
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        assert_eq!(backoff(3, 1.0), Duration::from_secs(54));
        assert_eq!(backoff(3, -1.0), Duration::from_secs(36));
        assert_eq!(backoff(3, 7.0), Duration::from_secs(54));
    }
}
