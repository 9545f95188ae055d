//! Who may call what: [`Principal`] (a console account's session, a token login's session, or
//! the admin token: who is calling and the [`Scope`] of stores they see), the [`Admin`] extractor
//! (a principal allowed everything: the admin token or an HQ admin), [`SignedKiosk`] and
//! [`verify_kiosk`] (a kiosk's signed request, see [`kiosk_protocol::auth`]).
//!
//! Scoping lives here, once: a handler takes a [`Principal`] and asks it for the stores it may
//! see ([`Principal::stores`]), for one store ([`Principal::store`], 403 outside the scope), or
//! for the right to write ([`Principal::require_write`]); the queries then run on what it
//! answered. Writes are audited by [`audit_writes`], one layer over every non-GET route.
//!
//! An account's session cookie (`u1.SECRET`) is a row of `user_sessions` keyed by the SHA-256 of
//! its secret: logging out, disabling the account or changing its password ends it on every
//! replica. A token login's cookie (`v1.EXPIRES.NONCE.MAC`) holds an HMAC under a key derived
//! from the admin token — never the token itself; changing the token ends those sessions.

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
use crate::accounts::{Account, Role, Scope};
use crate::db::{KioskRecord, ReplayGuard, StoreSummary};

/// Name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "crm_dashboard";

/// A caller allowed everything: the admin token (`x-admin-token` or `Authorization: Bearer`),
/// a token login's session, or an HQ admin's session; 403 otherwise, or when the endpoint runs
/// without an admin token and the caller has no account session.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Where the request came from.
    pub peer: IpAddr,
    /// Who is calling.
    pub who: Principal,
}

impl Admin {
    /// Appends `action` on `target` to the operator's audit log, in the background (the answer
    /// does not wait for it; a failure is logged).
    pub fn audit(&self, st: &AppState, action: &str, target: &str, outcome: &str) {
        self.who.audit(st, action, target, outcome);
    }
}

/// Appends a line to the audit log in the background (no account: the admin token or a caller
/// not logged in).
pub(crate) fn audit(st: &AppState, actor: String, action: &str, target: &str, outcome: &str) {
    audit_as(st, None, actor, action, target, outcome);
}

/// Appends a line of account `user`'s to the audit log in the background.
pub(crate) fn audit_as(
    st: &AppState,
    user: Option<&str>,
    actor: String,
    action: &str,
    target: &str,
    outcome: &str,
) {
    let entry = crate::db::AuditEntry {
        at_ms: now_ms(),
        actor,
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
        user: user.map(str::to_owned),
    };
    st.write_audit(entry);
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
            Some(g) if token_matches(g, expected) => Ok(Admin {
                peer: ip,
                who: Principal {
                    peer: ip,
                    caller: Caller::Token,
                },
            }),
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
        let who = Principal::from_request_parts(parts, st).await?;
        who.require_hq(st, "this")?;
        Ok(Admin {
            peer: who.peer,
            who,
        })
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

/// How a caller got in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The admin token in the request (scripts, machines).
    Token,
    /// A session opened with the admin token at the login form, valid until this unix second.
    TokenSession(i64),
    /// A console account's session, valid until `expires_s` (unix seconds).
    Account {
        /// The account, as the session's row joined it (enabled).
        account: Account,
        /// When the session ends, unix seconds.
        expires_s: i64,
    },
}

/// Who is calling a dashboard page or an admin/console API, and so which stores they see: the
/// one value every scoped handler takes (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Where the request came from.
    pub peer: IpAddr,
    /// How they got in.
    pub caller: Caller,
}

impl Principal {
    /// The caller's role: the admin token counts as an HQ admin.
    pub fn role(&self) -> Role {
        match &self.caller {
            Caller::Token | Caller::TokenSession(_) => Role::HqAdmin,
            Caller::Account { account, .. } => account.role,
        }
    }

    /// The stores the caller sees.
    pub fn scope(&self) -> Scope {
        match &self.caller {
            Caller::Token | Caller::TokenSession(_) => Scope::All,
            Caller::Account { account, .. } => account.scope(),
        }
    }

    /// The account's name, if the caller is one.
    pub fn user(&self) -> Option<&str> {
        match &self.caller {
            Caller::Account { account, .. } => Some(&account.name),
            _ => None,
        }
    }

    /// When the caller's session ends (unix s); `None` for the admin token itself.
    pub fn expires_s(&self) -> Option<i64> {
        match &self.caller {
            Caller::Token => None,
            Caller::TokenSession(e) => Some(*e),
            Caller::Account { expires_s, .. } => Some(*expires_s),
        }
    }

    /// The audit log's actor: `token@ADDR`, `session@ADDR` or `user:NAME@ADDR`.
    pub fn actor(&self) -> String {
        match &self.caller {
            Caller::Token => format!("token@{}", self.peer),
            Caller::TokenSession(_) => format!("session@{}", self.peer),
            Caller::Account { account, .. } => format!("user:{}@{}", account.name, self.peer),
        }
    }

    /// Appends `action` on `target` with `outcome` to the audit log as this caller (in the
    /// background).
    pub fn audit(&self, st: &AppState, action: &str, target: &str, outcome: &str) {
        audit_as(st, self.user(), self.actor(), action, target, outcome);
    }

    fn refuse(&self, st: &AppState, what: &str, why: String) -> ApiError {
        self.audit(st, "forbidden", what, "refused");
        ApiError::forbidden(why)
    }

    /// 403 (audited) unless the caller may change things: everyone but an analyst.
    pub fn require_write(&self, st: &AppState, what: &str) -> Result<(), ApiError> {
        if self.role().writes() {
            return Ok(());
        }
        Err(self.refuse(
            st,
            what,
            format!(
                "a {} account reads only; ask an HQ admin to change {what}",
                self.role().as_str()
            ),
        ))
    }

    /// 403 (audited) unless the caller is an HQ admin or the admin token.
    pub fn require_hq(&self, st: &AppState, what: &str) -> Result<(), ApiError> {
        if self.role() == Role::HqAdmin {
            return Ok(());
        }
        Err(self.refuse(
            st,
            what,
            format!(
                "only HQ admins may do {what}; this {} account may not",
                self.role().as_str()
            ),
        ))
    }

    /// The stores the caller sees, by id.
    pub async fn stores(&self, st: &AppState) -> Result<Vec<StoreSummary>, ApiError> {
        let scope = self.scope();
        let mut stores = st.db.list_stores().await?;
        stores.retain(|s| scope.allows(&s.id, s.region.as_deref()));
        Ok(stores)
    }

    /// Store `store_id` if the caller sees it: 404 when it does not exist for a caller who sees
    /// every store; 403 (audited) when it is outside the caller's scope, whether or not it exists
    /// (a store manager learns nothing about other stores, not even their ids).
    pub async fn store(&self, st: &AppState, store_id: &str) -> Result<StoreSummary, ApiError> {
        let scope = self.scope();
        let found = st
            .db
            .list_stores()
            .await?
            .into_iter()
            .find(|s| s.id == store_id);
        match found {
            Some(s) if scope.allows(&s.id, s.region.as_deref()) => Ok(s),
            None if scope == Scope::All => Err(ApiError::not_found(format!(
                "store {store_id:?} does not exist"
            ))),
            _ => Err(self.refuse(
                st,
                store_id,
                format!(
                    "store {store_id:?} is not one of this {} account's stores",
                    self.role().as_str()
                ),
            )),
        }
    }

    /// The caller of a dashboard or admin request: an account's session, a token login's
    /// session, else the admin token ([`Admin::check`]'s throttling applies: an address past its
    /// wrong tokens gets 429, not "log in").
    pub async fn check(
        st: &AppState,
        headers: &HeaderMap,
        ip: IpAddr,
    ) -> Result<Principal, ApiError> {
        let login = || {
            ApiError::forbidden(
                "log in at /dashboard first (or send the admin token as x-admin-token)",
            )
        };
        match cookie(headers, SESSION_COOKIE) {
            Some(v) if v.starts_with(ACCOUNT_SESSION_PREFIX) => {
                if let Some((account, expires_ms)) =
                    st.db.session(session_digest(v), now_ms()).await?
                {
                    return Ok(Principal {
                        peer: ip,
                        caller: Caller::Account {
                            account,
                            expires_s: expires_ms.div_euclid(1000),
                        },
                    });
                }
            }
            Some(v) => {
                if let Some(exp) = st
                    .admin_token()
                    .and_then(|token| session_expiry(token, v, now_s()))
                {
                    return Ok(Principal {
                        peer: ip,
                        caller: Caller::TokenSession(exp),
                    });
                }
            }
            None => {}
        }
        match Admin::check(st, headers, ip).await {
            Ok(admin) => Ok(admin.who),
            Err(e) if e.status() == StatusCode::TOO_MANY_REQUESTS => Err(e),
            Err(e) if has_token(headers) => Err(e),
            Err(_) => Err(login()),
        }
    }

    /// The caller, if allowed in (the pages: the login form otherwise).
    pub async fn of(st: &AppState, headers: &HeaderMap, ip: IpAddr) -> Option<Principal> {
        Self::check(st, headers, ip).await.ok()
    }
}

fn has_token(headers: &HeaderMap) -> bool {
    header_str(headers, HEADER_ADMIN_TOKEN).is_some()
        || header_str(headers, header::AUTHORIZATION.as_str()).is_some()
}

/// Where [`audit_writes`] learns who made a request (the extractor fills it, with the state to
/// write the line with).
#[derive(Clone, Default)]
struct WhoSlot(std::sync::Arc<std::sync::Mutex<Option<(Principal, AppState)>>>);

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let who = Principal::check(st, &parts.headers, peer_ip(&parts.extensions)).await?;
        if let Some(slot) = parts.extensions.get::<WhoSlot>()
            && let Ok(mut s) = slot.0.lock()
        {
            *s = Some((who.clone(), st.clone()));
        }
        Ok(who)
    }
}

/// The layer over every route that changes something: once the handler answered, a line in the
/// audit log says who (the [`Principal`] its extractor resolved), what (`METHOD /route/{param}`),
/// on what (the path as called) and how it ended (`ok`, `refused` for 401/403/429, else the
/// status). Callers refused before being identified are logged by [`Admin::check`] and the
/// login.
pub async fn audit_writes(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.method() == Method::GET {
        return next.run(req).await;
    }
    let slot = WhoSlot::default();
    req.extensions_mut().insert(slot.clone());
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let action = format!("{} {route}", req.method());
    let target = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let who = slot.0.lock().ok().and_then(|mut s| s.take());
    if let Some((who, st)) = who {
        let status = resp.status();
        let outcome = if status.is_success() || status.is_redirection() {
            "ok".to_owned()
        } else if matches!(status.as_u16(), 401 | 403 | 429) {
            "refused".to_owned()
        } else {
            format!("error {}", status.as_u16())
        };
        who.audit(&st, &action, &target, &outcome);
    }
    resp
}

/// The prefix of an account session's cookie value.
pub const ACCOUNT_SESSION_PREFIX: &str = "u1.";

/// A new account session's cookie value (`u1.` and 256 random bits) and the digest it is
/// stored as.
pub fn new_account_session() -> (String, String) {
    use base64::Engine as _;
    let value = format!(
        "{ACCOUNT_SESSION_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let digest = session_digest(&value);
    (value, digest)
}

/// The digest an account session's cookie value is stored as (SHA-256, hex).
pub fn session_digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
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

pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
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
