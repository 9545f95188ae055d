//! Staff authentication for the counter page: a PIN typed on the page (answered with a session
//! cookie) or a bearer token for scripts.
//!
//! - **The PIN says who logs in**: a member's own PIN (`[[ui.staff]]`, or the store
//!   configuration's `staff`) opens a session in their name, and the turns they call, serve or
//!   mark no-show carry their id; the store-wide PIN opens one in nobody's name. No two PINs of a
//!   store are the same (`check_staff`). A member removed from the list, or whose PIN changed,
//!   is logged out at once.
//!
//! - **Sessions are per login**: each right PIN opens a session of its own (a random 256-bit
//!   token in the cookie; the kiosk keeps only its SHA-256), which ends after [`SESSION_TTL`] (a
//!   working day), at logout (the server forgets it: the old cookie reads nothing more), or when
//!   the kiosk restarts. At most [`MAX_SESSIONS`] are open; a new login ends the oldest.
//! - **Wrong PINs lock out their own client**, not everyone: [`MAX_FAILURES`] wrong PINs from
//!   one address lock that address for [`LOCKOUT`], doubling with every further lockout up to
//!   [`MAX_LOCKOUT`] (a 6-digit PIN then takes years to guess from one device, and a device
//!   that keeps guessing never locks the counters out). Every failure and lockout is logged with
//!   the address.
//! - **No cross-site posts**: a login, logout or command whose `Origin` (or, without one,
//!   `Referer`) names another site than the kiosk's own is refused, and the cookie is
//!   `SameSite=Strict`: a page open elsewhere on the shop's LAN cannot post a PIN or a command
//!   with the staff's cookie.
//!
//! Comparisons are constant-time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, REFERER};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;

/// Name of the staff session cookie.
pub(super) const COOKIE_NAME: &str = "kiosk_staff";
/// How long a session lasts from its login.
pub(super) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions open at once.
const MAX_SESSIONS: usize = 64;
/// Wrong PINs from one address before it is locked out.
const MAX_FAILURES: u32 = 5;
/// The first lockout of an address; each further one doubles.
const LOCKOUT: Duration = Duration::from_secs(60);
/// The longest lockout.
const MAX_LOCKOUT: Duration = Duration::from_secs(3600);
/// Addresses whose failures are remembered; the oldest is forgotten beyond.
const MAX_CLIENTS: usize = 1024;

/// Wrong PINs of one address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    lockouts: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// An open session.
#[derive(Debug, Clone)]
struct Session {
    ends: Instant,
    /// The member it was opened for (`None`: the store-wide PIN).
    member: Option<super::StaffMember>,
}

/// Who a staff request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StaffWho {
    /// A script with the bearer token.
    Token,
    /// A session of the store-wide PIN.
    Store,
    /// A session of a member's own PIN.
    Member {
        /// Their id.
        id: String,
        /// Their name.
        name: String,
    },
}

impl StaffWho {
    /// The member's id, when a member is logged in.
    pub(super) fn member_id(&self) -> Option<String> {
        match self {
            StaffWho::Member { id, .. } => Some(id.clone()),
            StaffWho::Token | StaffWho::Store => None,
        }
    }
}

/// Open sessions and wrong PINs.
#[derive(Debug, Default)]
pub(super) struct Staff {
    /// SHA-256 of each open session's token, and the session.
    sessions: HashMap<[u8; 32], Session>,
    failures: HashMap<IpAddr, Failures>,
}

/// The outcome of a PIN entry.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Login {
    /// Right PIN: set this cookie value.
    Granted(String),
    /// Wrong PIN.
    Denied,
    /// Too many wrong PINs from this address: try again after this long.
    Locked(Duration),
    /// No PIN configured: the counter page is off.
    Disabled,
}

/// The member whose digest is `digest` (lowercase hex), compared in constant time with every
/// member's, so the time taken says nothing of which one (or whether any) matched.
fn member_of<'a>(
    members: &'a [super::StaffMember],
    digest: &str,
) -> Option<&'a super::StaffMember> {
    let mut found = None;
    for m in members {
        if equal(digest, &m.pin_sha256.to_ascii_lowercase()) {
            found = Some(m);
        }
    }
    found
}

/// SHA-256 of a PIN as lowercase hex: what `ui.staff_pin_sha256` holds.
pub fn pin_digest(pin: &str) -> String {
    hex::encode(Sha256::digest(pin.as_bytes()))
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The session cookie's value in `headers`, if any.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v)
}

/// Whether a state-changing request comes from the kiosk's own pages: its `Origin` (or, when
/// the browser sends none, its `Referer`) names the host the request was sent to. A request with
/// neither (a script with the bearer token, `curl`) passes: browsers send `Origin` on every
/// cross-site POST.
pub(super) fn same_site(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return true;
    };
    let origin_host = |url: &str| {
        url.split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default().to_owned())
    };
    let from = headers
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|v| *v != "null")
        .map(origin_host)
        .or_else(|| {
            headers
                .get(REFERER)
                .and_then(|v| v.to_str().ok())
                .map(origin_host)
        });
    match from {
        None => headers.get(ORIGIN).is_none(),
        Some(Some(h)) => h.eq_ignore_ascii_case(host),
        Some(None) => false,
    }
}

impl AppState {
    fn staff(&self) -> std::sync::MutexGuard<'_, Staff> {
        // A poisoned lock only means another login panicked mid-count; the state is still usable.
        self.0
            .staff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks a PIN typed on the login page from `peer`.
    pub(super) fn login(&self, pin: &str, peer: IpAddr) -> Login {
        let mut staff = self.staff();
        let logins = self.staff_logins();
        if logins.is_empty() {
            return Login::Disabled;
        }
        let now = Instant::now();
        if let Some(until) = staff
            .failures
            .get(&peer)
            .and_then(|f| f.locked_until)
            .filter(|until| now < *until)
        {
            tracing::warn!(%peer, wait_s = (until - now).as_secs(), "staff login refused: locked out");
            return Login::Locked(until - now);
        }
        let digest = pin_digest(pin);
        let member = member_of(&logins.members, &digest).cloned();
        let store_pin = logins
            .store_pin_sha256
            .as_ref()
            .is_some_and(|p| equal(&digest, &p.to_ascii_lowercase()));
        if member.is_some() || store_pin {
            staff.failures.remove(&peer);
            staff.sessions.retain(|_, s| s.ends > now);
            if staff.sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = staff
                    .sessions
                    .iter()
                    .min_by_key(|(_, s)| s.ends)
                    .map(|(k, _)| *k)
            {
                staff.sessions.remove(&oldest);
            }
            let token = hex::encode(rand::random::<[u8; 32]>());
            let id = member.as_ref().map(|m| m.id.clone());
            staff.sessions.insert(
                token_digest(&token),
                Session {
                    ends: now + SESSION_TTL,
                    member,
                },
            );
            tracing::info!(%peer, staff = id.as_deref().unwrap_or("(store PIN)"), "staff logged in");
            return Login::Granted(token);
        }
        if staff.failures.len() >= MAX_CLIENTS
            && !staff.failures.contains_key(&peer)
            && let Some(oldest) = staff
                .failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(ip, _)| *ip)
        {
            staff.failures.remove(&oldest);
        }
        let f = staff.failures.entry(peer).or_insert(Failures {
            count: 0,
            lockouts: 0,
            locked_until: None,
            last: now,
        });
        f.count += 1;
        f.last = now;
        if f.count >= MAX_FAILURES {
            let lockout = LOCKOUT
                .saturating_mul(1 << f.lockouts.min(16))
                .min(MAX_LOCKOUT);
            f.count = 0;
            f.lockouts += 1;
            f.locked_until = Some(now + lockout);
            tracing::warn!(%peer, lockout_s = lockout.as_secs(), "wrong staff PINs: address locked out");
        } else {
            tracing::warn!(%peer, failures = f.count, "wrong staff PIN");
        }
        Login::Denied
    }

    /// Ends the session of the cookie in `headers` (the server forgets it).
    pub(super) fn logout(&self, headers: &HeaderMap) {
        if let Some(token) = cookie_token(headers) {
            self.staff().sessions.remove(&token_digest(token));
        }
    }

    /// The staff PINs from now on (a store configuration from the CRM set them). Sessions of
    /// the store-wide PIN stay open while there is one (a changed store-wide PIN keeps them); a
    /// member's session ends when the member leaves the list or their PIN changes, and a new
    /// name is shown at once.
    pub fn set_staff_logins(&self, logins: super::StaffLogins) {
        // Under the sessions' lock, as a login reads the PINs: no session of a PIN just removed
        // can be opened after the sweep.
        let mut staff = self.staff();
        let store_pin = logins.store_pin_sha256.is_some();
        staff.sessions.retain(|_, s| match &mut s.member {
            None => store_pin,
            Some(m) => match logins
                .members
                .iter()
                .find(|n| n.id == m.id && n.pin_sha256.eq_ignore_ascii_case(&m.pin_sha256))
            {
                Some(now) => {
                    m.name.clone_from(&now.name);
                    true
                }
                None => {
                    tracing::info!(staff = %m.id, "staff member removed or PIN changed: logged out");
                    false
                }
            },
        });
        *self
            .0
            .logins
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = logins;
    }

    /// Whether a request carries an open staff session's cookie or the staff bearer token.
    pub(super) fn is_staff(&self, headers: &HeaderMap) -> bool {
        self.staff_who(headers).is_some()
    }

    /// Who a request comes from: an open staff session's cookie or the staff bearer token
    /// (`None`: neither).
    pub(super) fn staff_who(&self, headers: &HeaderMap) -> Option<StaffWho> {
        let settings = &self.0.settings;
        if let Some(token) = settings.staff_token.as_ref() {
            let bearer = headers
                .get_all(AUTHORIZATION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.strip_prefix("Bearer "))
                .any(|v| equal(v.trim(), token));
            if bearer {
                return Some(StaffWho::Token);
            }
        }
        let token = cookie_token(headers)?;
        let now = Instant::now();
        // The map is keyed by the token's digest: looking it up reveals nothing of other
        // sessions' tokens, and a memory dump holds no usable cookie.
        let staff = self.staff();
        let session = staff
            .sessions
            .get(&token_digest(token))
            .filter(|s| now < s.ends)?;
        Some(match &session.member {
            Some(m) => StaffWho::Member {
                id: m.id.clone(),
                name: m.name.clone(),
            },
            None => StaffWho::Store,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(axum::http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn host_names_are_this_kiosks_own_or_configured() {
        use super::super::routes::host_allowed;
        let allowed = vec!["kiosk-3.tienda.lan".to_owned()];
        let own = Some("kiosk-3");
        for ok in [
            "127.0.0.1:8080",
            "192.168.1.20",
            "[::1]:8081",
            "localhost:8080",
            "kiosk-3:8081",
            "KIOSK-3.local",
            "kiosk-3.tienda.lan.",
        ] {
            assert!(host_allowed(ok, &allowed, own), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "kiosk-3.evil.example",
            "[evil]:80",
        ] {
            assert!(!host_allowed(bad, &allowed, own), "{bad}");
        }
    }

    #[test]
    fn a_post_from_the_kiosks_own_page_passes_and_one_from_another_site_does_not() {
        let own = headers(&[
            (HOST, "192.168.1.20:8081"),
            (ORIGIN, "http://192.168.1.20:8081"),
        ]);
        assert!(same_site(&own));
        let other = headers(&[(HOST, "192.168.1.20:8081"), (ORIGIN, "http://evil.example")]);
        assert!(!same_site(&other));
        let referer = headers(&[
            (HOST, "192.168.1.20:8081"),
            (REFERER, "http://evil.example/page"),
        ]);
        assert!(!same_site(&referer));
        let own_referer = headers(&[
            (HOST, "192.168.1.20:8081"),
            (REFERER, "http://192.168.1.20:8081/counter"),
        ]);
        assert!(same_site(&own_referer));
        let opaque = headers(&[(HOST, "192.168.1.20:8081"), (ORIGIN, "null")]);
        assert!(
            !same_site(&opaque),
            "a sandboxed or file page posts Origin: null"
        );
        let script = headers(&[(HOST, "192.168.1.20:8081")]);
        assert!(
            same_site(&script),
            "curl with the bearer token sends neither"
        );
    }
}
