//! Staff authentication for the counter page: a PIN typed on the page (answered with a session
//! cookie) or a bearer token for scripts. Comparisons are constant-time; repeated wrong PINs lock
//! the login for a while.

use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use subtle::ConstantTimeEq;

use super::AppState;

/// Name of the staff session cookie.
pub(super) const COOKIE_NAME: &str = "kiosk_staff";
/// Wrong PINs allowed before the login locks.
const MAX_FAILURES: u32 = 5;
/// How long the login stays locked.
const LOCKOUT: Duration = Duration::from_secs(60);

/// Counts wrong PINs.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    failures: u32,
    locked_until: Option<Instant>,
}

/// The outcome of a PIN entry.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Login {
    /// Right PIN: set this cookie value.
    Granted(String),
    /// Wrong PIN.
    Denied,
    /// Too many wrong PINs: try again later.
    Locked,
    /// No PIN configured: the counter page is off.
    Disabled,
}

/// SHA-256 of a PIN as lowercase hex: what `ui.staff_pin_sha256` holds.
pub fn pin_digest(pin: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(pin.as_bytes()))
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl AppState {
    /// Checks a PIN typed on the login page.
    pub(super) fn login(&self, pin: &str) -> Login {
        let Some(expected) = self.0.settings.staff_pin_sha256.as_ref() else {
            return Login::Disabled;
        };
        let now = Instant::now();
        // A poisoned lock only means another login panicked mid-count; the count is still usable.
        let mut t = self
            .0
            .login
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.locked_until.is_some_and(|until| now < until) {
            return Login::Locked;
        }
        if equal(&pin_digest(pin), &expected.to_ascii_lowercase()) {
            *t = Throttle::default();
            Login::Granted(self.0.session_secret.to_string())
        } else {
            t.failures += 1;
            if t.failures >= MAX_FAILURES {
                t.failures = 0;
                t.locked_until = Some(now + LOCKOUT);
            }
            Login::Denied
        }
    }

    /// Whether a request carries a staff session cookie or the staff bearer token.
    pub(super) fn is_staff(&self, headers: &HeaderMap) -> bool {
        let settings = &self.0.settings;
        if settings.staff_pin_sha256.is_none() && settings.staff_token.is_none() {
            return false;
        }
        if let Some(token) = settings.staff_token.as_ref() {
            let bearer = headers
                .get_all(AUTHORIZATION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.strip_prefix("Bearer "))
                .any(|v| equal(v.trim(), token));
            if bearer {
                return true;
            }
        }
        settings.staff_pin_sha256.is_some()
            && headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|kv| kv.trim().split_once('='))
                .any(|(k, v)| k == COOKIE_NAME && equal(v, &self.0.session_secret))
    }
}
