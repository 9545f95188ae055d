//! Rate limits and throttles every endpoint replica shares (issue 20, docs/FLEET.md): attempts
//! per scope and key in a fixed window, counted in the `rate_limits` table so that two replicas
//! behind a load balancer allow what one would, not twice as much. One statement per decision
//! (an `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`), so concurrent requests on any replica
//! never both pass the last free attempt.
//!
//! Data flow: HTTP handler ([`crate::http::AttemptCounter`]) → **limits** → `rate_limits`.
//! Keys reach the database only as SHA-256 digests: an address is personal data.

use sha2::{Digest, Sha256};

use super::dialect::Dialect;
use super::exec::{Exec, args};
use super::model::DbResult;

/// One limit: at most `limit` attempts per key and window of `window_ms`, counted under `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// What is limited (`enroll`, `admin`, `login`, `lookup`): keys of different scopes never meet.
    pub scope: &'static str,
    /// Attempts allowed per window.
    pub limit: u32,
    /// The window, from the first attempt.
    pub window_ms: i64,
}

/// The digest a key is stored as.
fn digest(limit: &RateLimit, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(limit.scope.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Whole seconds until `expires_ms`, at least 1 (a `Retry-After`).
fn wait_s(expires_ms: i64, now_ms: i64) -> u64 {
    let ms = u64::try_from(expires_ms.saturating_sub(now_ms)).unwrap_or(0);
    ms.div_ceil(1000).max(1)
}

/// Counts an attempt of `key` unless it used up its window: `Some(seconds to wait)` then, and
/// nothing counted. Forgets expired windows on the way.
pub(crate) async fn take(
    e: &impl Exec,
    limit: RateLimit,
    key: String,
    now_ms: i64,
) -> DbResult<Option<u64>> {
    let forget = match e.dialect() {
        Dialect::Sqlite => "DELETE FROM rate_limits WHERE expires_ms <= ?1",
        Dialect::Postgres => {
            "DELETE FROM rate_limits WHERE (scope, key) IN (
               SELECT scope, key FROM rate_limits WHERE expires_ms <= ?1
               FOR UPDATE SKIP LOCKED)"
        }
    };
    e.execute(forget, args![now_ms]).await?;
    // Attempts stop at limit + 1: that value means "refused", whatever came after.
    let row = e
        .query_one(
            "INSERT INTO rate_limits (scope, key, window_start_ms, expires_ms, attempts)
             VALUES (?1, ?2, ?3, ?4, 1)
             ON CONFLICT (scope, key) DO UPDATE SET
               window_start_ms = CASE WHEN rate_limits.expires_ms <= ?3 THEN ?3
                                      ELSE rate_limits.window_start_ms END,
               attempts = CASE WHEN rate_limits.expires_ms <= ?3 THEN 1
                               ELSE LEAST(rate_limits.attempts + 1, ?5) END,
               expires_ms = CASE WHEN rate_limits.expires_ms <= ?3 THEN ?4
                                 ELSE rate_limits.expires_ms END
             RETURNING attempts, expires_ms",
            args![
                limit.scope,
                digest(&limit, &key),
                now_ms,
                now_ms.saturating_add(limit.window_ms),
                i64::from(limit.limit) + 1
            ],
        )
        .await?;
    let attempts: i64 = row.get(0)?;
    let expires_ms: i64 = row.get(1)?;
    Ok((attempts > i64::from(limit.limit)).then(|| wait_s(expires_ms, now_ms)))
}

/// `Some(seconds to wait)` when `key` used up its attempts in the current window (nothing
/// counted).
pub(crate) async fn blocked(
    e: &impl Exec,
    limit: RateLimit,
    key: String,
    now_ms: i64,
) -> DbResult<Option<u64>> {
    let row = e
        .query_opt(
            "SELECT attempts, expires_ms FROM rate_limits
             WHERE scope = ?1 AND key = ?2 AND expires_ms > ?3",
            args![limit.scope, digest(&limit, &key), now_ms],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let attempts: i64 = row.get(0)?;
    let expires_ms: i64 = row.get(1)?;
    Ok((attempts >= i64::from(limit.limit)).then(|| wait_s(expires_ms, now_ms)))
}

/// Gives back an attempt [`take`] counted (it succeeded).
pub(crate) async fn refund(
    e: &impl Exec,
    limit: RateLimit,
    key: String,
    now_ms: i64,
) -> DbResult<()> {
    e.execute(
        "UPDATE rate_limits SET attempts = attempts - 1
         WHERE scope = ?1 AND key = ?2 AND expires_ms > ?3 AND attempts > 0",
        args![limit.scope, digest(&limit, &key), now_ms],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_digests_kept_apart_by_scope() {
        let a = RateLimit {
            scope: "login",
            limit: 5,
            window_ms: 1000,
        };
        let b = RateLimit {
            scope: "admin",
            ..a
        };
        assert_ne!(digest(&a, "10.0.0.1"), digest(&b, "10.0.0.1"));
        assert!(!digest(&a, "10.0.0.1").contains("10.0"));
        assert_eq!(digest(&a, "x").len(), 32);
    }

    #[test]
    fn the_wait_rounds_up_and_is_never_zero() {
        assert_eq!(wait_s(10_001, 0), 11);
        assert_eq!(wait_s(5, 10), 1);
    }
}
