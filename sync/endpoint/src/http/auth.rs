//! Who may call what: the [`Admin`] extractor (the admin token), [`SignedKiosk`] and
//! [`verify_kiosk`] (a kiosk's signed request, see [`kiosk_protocol::auth`]), and
//! [`DashboardUser`] (a dashboard session cookie, or the admin token for scripts).
//!
//! The session cookie holds an expiry, a nonce and an HMAC under a key derived from the admin
//! token — never the token itself; changing the token ends every session.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use hmac::{Hmac, Mac};
use kiosk_protocol::auth;
use kiosk_protocol::wire::{
    ErrorCode, HEADER_ADMIN_TOKEN, HEADER_KIOSK_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::error::ApiError;
use super::request::{header_str, now_ms};
use super::state::{AppState, peer_ip};
use crate::db::{KioskRecord, ReplayGuard};

/// Name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "crm_dashboard";

/// Proof that the request carries the admin token (`x-admin-token` or `Authorization: Bearer`);
/// rejects with 403 otherwise, or when the endpoint runs without an admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin {
    /// Where the request came from (the audit log's actor).
    pub peer: IpAddr,
}

impl Admin {
    /// Appends `action` on `target` to the operator's audit log, in the background (the answer
    /// does not wait for it; a failure is logged).
    pub fn audit(&self, st: &AppState, action: &str, target: &str, outcome: &str) {
        audit(st, format!("token@{}", self.peer), action, target, outcome);
    }
}

/// Appends a line to the audit log in the background.
pub(crate) fn audit(st: &AppState, actor: String, action: &str, target: &str, outcome: &str) {
    let entry = crate::db::AuditEntry {
        at_ms: now_ms(),
        actor,
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
    };
    let db = st.db.clone();
    tokio::spawn(async move {
        if let Err(e) = db.audit(entry).await {
            tracing::warn!(error = %e, "cannot write the audit log");
        }
    });
}

impl Admin {
    /// Checks the admin token in `headers` of a request from `ip`. Wrong tokens are counted and
    /// logged per address; an address past [`crate::http::ADMIN_ATTEMPTS`] wrong tokens in the
    /// window gets 429 with `Retry-After` on every admin route, whatever it sends.
    pub async fn check(st: &AppState, headers: &HeaderMap, ip: IpAddr) -> Result<Admin, ApiError> {
        let Some(expected) = st.admin_token() else {
            return Err(ApiError::forbidden(
                "admin api is disabled; start the endpoint with --admin-token",
            ));
        };
        if let Some(wait) = st.admin_failures.blocked(&st.db, &ip.to_string()).await? {
            return Err(ApiError::rate_limited(
                format!("too many wrong admin tokens from {ip}; try again in {wait} s"),
                wait,
            ));
        }
        let given = header_str(headers, HEADER_ADMIN_TOKEN).or_else(|| {
            header_str(headers, header::AUTHORIZATION.as_str())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
        match given {
            Some(g) if token_matches(g, expected) => Ok(Admin { peer: ip }),
            Some(_) => {
                st.admin_failures.count(&st.db, &ip.to_string()).await;
                tracing::warn!(%ip, "admin request with a wrong token");
                audit(
                    st,
                    ip.to_string(),
                    "admin_auth_failed",
                    "admin token",
                    "refused",
                );
                Err(ApiError::forbidden(
                    "wrong admin token (x-admin-token or Authorization: Bearer)",
                ))
            }
            None => Err(ApiError::forbidden(
                "missing admin token (x-admin-token or Authorization: Bearer)",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        Admin::check(st, &parts.headers, peer_ip(&parts.extensions)).await
    }
}

/// Whether `given` is the admin token (in constant time).
pub(crate) fn token_matches(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// A kiosk's signed request without a body (the feed, live lookups): the kiosk, verified and,
/// unless a GET, remembered against replays. The kiosk id is the path's `kiosk_id`.
pub struct SignedKiosk(pub KioskRecord);

impl FromRequestParts<AppState> for SignedKiosk {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, st)
            .await
            .map_err(|e| ApiError::malformed(format!("path: {e}")))?;
        let path_kiosk = params.get("kiosk_id").map_or("", String::as_str);
        let (kiosk, guard) = verify_kiosk(
            st,
            &parts.method,
            &parts.uri,
            &parts.headers,
            &[],
            path_kiosk,
        )
        .await?;
        // Reads are harmless to repeat; only requests that change state are refused as replays.
        if parts.method != Method::GET
            && !st
                .db
                .remember_signature(guard.signature, guard.expires_ms, guard.now_ms)
                .await?
        {
            return Err(ApiError::replayed());
        }
        Ok(SignedKiosk(kiosk))
    }
}

/// Verifies a kiosk request's signature, timestamp, kiosk id and freshness (see
/// [`kiosk_protocol::auth`]); `body` is the body as received. The signature is to be remembered
/// by the caller (a batch does it in the transaction that stores it).
pub async fn verify_kiosk(
    st: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    path_kiosk: &str,
) -> Result<(KioskRecord, ReplayGuard), ApiError> {
    let unauthenticated =
        |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, m);
    let (Some(kiosk_id), Some(ts), Some(sig)) = (
        header_str(headers, HEADER_KIOSK_ID),
        header_str(headers, HEADER_TIMESTAMP),
        header_str(headers, HEADER_SIGNATURE),
    ) else {
        return Err(unauthenticated(
            "missing x-kiosk-id, x-kiosk-timestamp or x-kiosk-signature; kiosk requests must be signed",
        ));
    };
    let ts: i64 = ts
        .parse()
        .map_err(|_| unauthenticated("x-kiosk-timestamp is not unix seconds"))?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if let Err(e) = auth::check_timestamp(ts, now) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::StaleTimestamp,
            e.to_string(),
        ));
    }
    let bad_signature =
        |m: String| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::BadSignature, m);
    let Some(kiosk) = st.db.kiosk(kiosk_id.to_owned()).await? else {
        return Err(bad_signature(
            "unknown kiosk or bad signature; enroll the kiosk again".into(),
        ));
    };
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| uri.path());
    auth::verify(
        &kiosk.secret,
        method.as_str(),
        path_and_query,
        ts,
        body,
        sig,
    )
    .map_err(|e| bad_signature(e.to_string()))?;
    if kiosk.id != path_kiosk {
        return Err(ApiError::forbidden(format!(
            "kiosk {} may not act as kiosk {path_kiosk}",
            kiosk.id
        )));
    }
    let guard = ReplayGuard {
        signature: sig.to_ascii_lowercase(),
        expires_ms: (ts + auth::REPLAY_WINDOW_S + 1).saturating_mul(1000),
        now_ms: now_ms(),
    };
    Ok((kiosk, guard))
}

/// How a dashboard request is allowed in: a session until its expiry (unix s), or the admin
/// token itself (scripts). Rejects with 403 saying to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DashboardUser {
    /// A session cookie, valid until this unix second.
    Session(i64),
    /// The admin token.
    Token,
}

impl DashboardUser {
    /// The caller of a dashboard request, if allowed in.
    pub async fn of(st: &AppState, headers: &HeaderMap, ip: IpAddr) -> Option<DashboardUser> {
        Self::check(st, headers, ip).await.ok()
    }

    /// The caller of a dashboard request: a session, else the admin token ([`Admin::check`]'s
    /// throttling applies: an address past its wrong tokens gets 429, not "log in").
    pub async fn check(
        st: &AppState,
        headers: &HeaderMap,
        ip: IpAddr,
    ) -> Result<DashboardUser, ApiError> {
        let login = || {
            ApiError::forbidden(
                "log in at /dashboard first (or send the admin token as x-admin-token)",
            )
        };
        let token = st.admin_token().ok_or_else(login)?;
        if let Some(exp) =
            cookie(headers, SESSION_COOKIE).and_then(|v| session_expiry(token, v, now_s()))
        {
            return Ok(DashboardUser::Session(exp));
        }
        match Admin::check(st, headers, ip).await {
            Ok(Admin { .. }) => Ok(DashboardUser::Token),
            Err(e) if e.status() == StatusCode::TOO_MANY_REQUESTS => Err(e),
            Err(_) => Err(login()),
        }
    }
}

impl FromRequestParts<AppState> for DashboardUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        DashboardUser::check(st, &parts.headers, peer_ip(&parts.extensions)).await
    }
}

/// Now, unix seconds.
pub(crate) fn now_s() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The HMAC key of sessions: derived from the admin token, so the cookie never holds the token
/// and a new token ends the old sessions.
fn session_key(admin_token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"crm-endpoint dashboard session v1\0");
    h.update(admin_token.as_bytes());
    h.finalize().into()
}

fn session_mac(admin_token: &str, payload: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&session_key(admin_token)).ok()?;
    mac.update(payload.as_bytes());
    Some(mac)
}

/// A new session value, valid until `expires_s`: `v1.EXPIRES.NONCE.MAC`.
pub fn new_session(admin_token: &str, expires_s: i64) -> String {
    let payload = format!("v1.{expires_s}.{}", hex::encode(rand::random::<[u8; 16]>()));
    let mac = session_mac(admin_token, &payload)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{payload}.{mac}")
}

/// When a session value made under `admin_token` expires, if it is genuine and not expired at
/// `now_s`.
pub fn session_expiry(admin_token: &str, value: &str, now_s: i64) -> Option<i64> {
    let (payload, mac) = value.rsplit_once('.')?;
    let mut parts = payload.split('.');
    let (Some("v1"), Some(expires), Some(_nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let expires: i64 = expires.parse().ok()?;
    let mac = hex::decode(mac).ok()?;
    session_mac(admin_token, payload)?.verify_slice(&mac).ok()?;
    (expires > now_s).then_some(expires)
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_are_bound_to_the_token_and_expire() {
        let s = new_session("secret-token", 1_000);
        assert!(!s.contains("secret-token"));
        assert_eq!(session_expiry("secret-token", &s, 999), Some(1_000));
        assert_eq!(session_expiry("secret-token", &s, 1_000), None, "expired");
        assert_eq!(session_expiry("other-token", &s, 999), None);
        let forged = s.replacen("v1.1000.", "v1.9000.", 1);
        assert_eq!(session_expiry("secret-token", &forged, 999), None);
        assert_eq!(session_expiry("secret-token", "v1.5.x", 0), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; crm_dashboard=v1.2.3.4 ;b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("v1.2.3.4"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
