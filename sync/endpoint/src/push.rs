//! Web Push to the customers' turn pages: a notification when few turns are ahead and when the
//! turn is called, to the browsers that opted in on the page.
//!
//! Data flow: kiosk batch → live queue → change notice → **notifier** ([`run`]) → the browser's
//! push service (RFC 8030) → service worker (`/t/sw.js`) → notification.
//!
//! Standard Web Push: the message is encrypted for the subscription (aes128gcm, RFC 8291) by
//! `web-push-native` (RustCrypto), and the request carries the endpoint's VAPID identity (RFC
//! 8292): an ES256 JWT (audience: the push service's origin; expiry; subject: a contact) signed
//! with `p256`, and the public key the browser subscribed with. The VAPID key pair is made once
//! and kept in the database (settings `vapid_key`): every replica signs with the same key, and
//! subscriptions outlive a restart.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::db::SharedDb;
pub use crate::db::phone::{DEFAULT_TURNS_AHEAD, PushKeys, PushSubscription, PushTarget};
use crate::db::queue::TurnStatus;
use crate::ingest::unix_ms;

/// How long a push service keeps an undelivered message (its `TTL`): a turn moves in minutes.
pub const MESSAGE_TTL: Duration = Duration::from_secs(15 * 60);
/// The VAPID JWT's lifetime (RFC 8292: at most 24 hours).
pub const JWT_LIFETIME_S: i64 = 12 * 3600;
/// The VAPID subject: who the push services may contact about this sender.
pub const DEFAULT_SUBJECT: &str = "mailto:crm@example.invalid";

/// What can go wrong with Web Push.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The stored VAPID key is not a P-256 private key.
    #[error(
        "the stored VAPID key is not a P-256 private key; delete settings 'vapid_key' to make a new one (subscriptions then have to be renewed)"
    )]
    BadVapidKey,
    /// A subscription's keys or endpoint are unusable.
    #[error("subscription {0}")]
    BadSubscription(&'static str),
    /// Encryption failed.
    #[error("cannot encrypt the push message")]
    Encrypt(#[source] web_push_native::Error),
    /// The push service could not be reached.
    #[error("cannot reach the push service")]
    Http(#[source] reqwest::Error),
}

/// The endpoint's VAPID identity.
#[derive(Clone)]
pub struct Vapid {
    key: SigningKey,
    subject: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl Vapid {
    /// A new random private key, base64url (what is stored).
    pub fn generate_secret() -> String {
        let key = SigningKey::random(&mut rand_core_rng());
        URL_SAFE_NO_PAD.encode(key.to_bytes())
    }

    /// The identity of a stored private key.
    pub fn from_secret(secret_b64: &str, subject: impl Into<String>) -> Result<Self, PushError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(secret_b64.trim())
            .map_err(|_| PushError::BadVapidKey)?;
        let key = SigningKey::from_slice(&bytes).map_err(|_| PushError::BadVapidKey)?;
        Ok(Vapid {
            key,
            subject: subject.into(),
        })
    }

    /// The public key as the page hands it to `PushManager.subscribe` (`applicationServerKey`):
    /// the uncompressed point, base64url.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_encoded_point(false).as_bytes())
    }

    /// The `Authorization` header for a message to `endpoint` at `now_s` (RFC 8292 section 3):
    /// `vapid t=<JWT>, k=<public key>`.
    pub fn authorization(&self, endpoint: &reqwest::Url, now_s: i64) -> Result<String, PushError> {
        let origin = endpoint.origin();
        if !origin.is_tuple() {
            return Err(PushError::BadSubscription("endpoint has no origin"));
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": origin.ascii_serialization(),
            "exp": now_s + JWT_LIFETIME_S,
            "sub": self.subject,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes()),
            self.public_key()
        ))
    }
}

fn rand_core_rng() -> p256::elliptic_curve::rand_core::OsRng {
    p256::elliptic_curve::rand_core::OsRng
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Checks a subscription's keys and endpoint (an `https` URL, or `http` to a loopback address).
pub fn check(sub: &PushSubscription) -> Result<(), PushError> {
    let this = sub;
    let url = reqwest::Url::parse(&this.endpoint)
        .map_err(|_| PushError::BadSubscription("endpoint is not a URL"))?;
    let loopback = url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            || h == "[::1]"
    });
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(PushError::BadSubscription("endpoint is not an https URL")),
    }
    let public = b64url(&this.keys.p256dh)
        .ok_or(PushError::BadSubscription("keys.p256dh is not base64url"))?;
    p256::PublicKey::from_sec1_bytes(&public)
        .map_err(|_| PushError::BadSubscription("keys.p256dh is not a P-256 public key"))?;
    if b64url(&this.keys.auth).map(|a| a.len()) != Some(16) {
        return Err(PushError::BadSubscription(
            "keys.auth is not 16 bytes of base64url",
        ));
    }
    Ok(())
}

/// The encrypted, signed request carrying `payload` to subscription `sub`.
pub fn request(
    sub: &PushSubscription,
    vapid: &Vapid,
    payload: &[u8],
    now_s: i64,
) -> Result<axum::http::Request<Vec<u8>>, PushError> {
    check(sub)?;
    let url = reqwest::Url::parse(&sub.endpoint)
        .map_err(|_| PushError::BadSubscription("endpoint is not a URL"))?;
    let uri: axum::http::Uri = sub
        .endpoint
        .parse()
        .map_err(|_| PushError::BadSubscription("endpoint is not a URI"))?;
    let public = b64url(&sub.keys.p256dh)
        .and_then(|b| p256::PublicKey::from_sec1_bytes(&b).ok())
        .ok_or(PushError::BadSubscription(
            "keys.p256dh is not a P-256 public key",
        ))?;
    let auth = b64url(&sub.keys.auth)
        .filter(|a| a.len() == 16)
        .ok_or(PushError::BadSubscription("keys.auth is not 16 bytes"))?;
    let mut req = web_push_native::WebPushBuilder::new(
        uri,
        public,
        *web_push_native::Auth::from_slice(&auth),
    )
    .with_valid_duration(MESSAGE_TTL)
    .build(payload.to_vec())
    .map_err(PushError::Encrypt)?;
    let authorization = vapid.authorization(&url, now_s)?;
    req.headers_mut().insert(
        axum::http::header::AUTHORIZATION,
        axum::http::HeaderValue::from_str(&authorization)
            .map_err(|_| PushError::BadSubscription("unencodable authorization"))?,
    );
    req.headers_mut()
        .insert("urgency", axum::http::HeaderValue::from_static("high"));
    Ok(req)
}

/// What a notification says (the service worker shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
    /// The page to open when tapped (the turn page's path).
    pub url: String,
    /// Replaces an earlier notification of the same turn.
    pub tag: String,
}

/// Which message a turn is due, if any: `called` once called, `near` once `ahead` turns or
/// fewer wait before it; each once.
pub fn due(
    status: TurnStatus,
    ahead: Option<u64>,
    threshold: u32,
    sent_near: bool,
    sent_called: bool,
) -> Option<Kind> {
    match status {
        TurnStatus::Called if !sent_called => Some(Kind::Called),
        TurnStatus::Waiting if !sent_near && ahead.is_some_and(|a| a <= u64::from(threshold)) => {
            Some(Kind::Near)
        }
        _ => None,
    }
}

/// The two notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Few turns ahead.
    Near,
    /// Called to a counter.
    Called,
}

/// The text of a notification of turn `label`.
pub fn message(
    kind: Kind,
    label: &str,
    ahead: u64,
    counter: Option<&str>,
    lang: &str,
    url: String,
) -> Message {
    let es = lang != "en";
    let counter = counter.unwrap_or("?");
    let (title, body) = match (kind, es) {
        (Kind::Near, true) => (
            format!("Turno {label}: ya casi"),
            match ahead {
                0 => "Es el siguiente. Acérquese a los mostradores.".to_owned(),
                1 => "Queda 1 turno antes que usted. Acérquese a los mostradores.".to_owned(),
                n => format!("Quedan {n} turnos antes que usted. Acérquese a los mostradores."),
            },
        ),
        (Kind::Near, false) => (
            format!("Turn {label}: almost there"),
            match ahead {
                0 => "You are next. Please come to the counters.".to_owned(),
                1 => "1 turn ahead of you. Please come to the counters.".to_owned(),
                n => format!("{n} turns ahead of you. Please come to the counters."),
            },
        ),
        (Kind::Called, true) => (
            format!("¡Es su turno! {label}"),
            format!("Mostrador {counter}"),
        ),
        (Kind::Called, false) => (
            format!("It’s your turn: {label}"),
            format!("Counter {counter}"),
        ),
    };
    Message {
        title,
        body,
        url,
        tag: format!("turn-{label}"),
    }
}

/// Sends the messages due to the subscriptions of `store_id`'s turns; drops the subscriptions
/// of past days and those the push service says are gone (404, 410).
pub async fn notify_store(
    db: &SharedDb,
    client: &reqwest::Client,
    vapid: &Vapid,
    store_id: &str,
) -> Result<usize, crate::db::DbError> {
    let now = unix_ms(OffsetDateTime::now_utc());
    let (day, threshold, subs) = db.push_subscriptions(store_id.to_owned(), now).await?;
    let mut sent = 0;
    let mut views = HashMap::new();
    for s in subs {
        let view = match views.get(&s.turn_id) {
            Some(v) => v,
            None => {
                let v = db
                    .turn_view(
                        store_id.to_owned(),
                        day.clone(),
                        s.turn_id,
                        s.label.clone(),
                        now,
                    )
                    .await?;
                views.entry(s.turn_id).or_insert(v)
            }
        };
        let Some(view) = view else { continue };
        let Some(kind) = due(
            view.status,
            view.ahead,
            threshold,
            s.sent_near,
            s.sent_called,
        ) else {
            continue;
        };
        let msg = message(
            kind,
            &view.turn,
            view.ahead.unwrap_or(0),
            view.counter.as_deref(),
            &s.lang,
            s.page.clone(),
        );
        let payload = serde_json::to_vec(&msg).unwrap_or_default();
        let outcome = match request(&s.subscription, vapid, &payload, now / 1000) {
            Ok(req) => match reqwest::Request::try_from(req) {
                Ok(req) => client.execute(req).await.map_err(PushError::Http),
                Err(e) => Err(PushError::Http(e)),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(resp) if resp.status().is_success() => {
                db.mark_push_sent(
                    s.turn_id,
                    s.subscription.endpoint.clone(),
                    kind == Kind::Called,
                )
                .await?;
                sent += 1;
            }
            Ok(resp) if matches!(resp.status().as_u16(), 404 | 410) => {
                db.drop_push(s.turn_id, s.subscription.endpoint.clone())
                    .await?;
            }
            // The endpoint of a push service is the browser maker's: never logged in full.
            Ok(resp) => {
                tracing::warn!(status = %resp.status(), "a push service refused a turn notification; retrying at the next change")
            }
            Err(e) => {
                tracing::warn!(error = %e, "a turn notification was not sent; retrying at the next change")
            }
        }
    }
    Ok(sent)
}

/// SMS notices: the sender and how local numbers are completed.
#[derive(Clone)]
pub struct SmsNotices {
    /// The provider adapter.
    pub sender: crate::sms::SharedSms,
    /// Country code for numbers registered without one (`+34`).
    pub default_country: Option<String>,
}

/// Tells consenting registered customers by SMS that their turn is near (once per turn).
pub async fn sms_store(
    db: &SharedDb,
    sms: &SmsNotices,
    store_id: &str,
) -> Result<usize, crate::db::DbError> {
    let now = unix_ms(OffsetDateTime::now_utc());
    let (day, threshold, due_now) = db.sms_due(store_id.to_owned(), now).await?;
    let mut sent = 0;
    for c in due_now {
        let Some(view) = db
            .turn_view(
                store_id.to_owned(),
                day.clone(),
                c.turn_id,
                String::new(),
                now,
            )
            .await?
        else {
            continue;
        };
        let near = view.status == TurnStatus::Waiting
            && view.ahead.is_some_and(|a| a <= u64::from(threshold));
        if !near {
            continue;
        }
        let to = match crate::sms::e164(&c.phone, sms.default_country.as_deref()) {
            Ok(to) => to,
            Err(e) => {
                tracing::warn!(turn = %c.turn_id, error = %e, "no SMS for a turn");
                continue;
            }
        };
        // Claimed before sending: two replicas never both send; a failed send is not retried.
        if !db
            .mark_sms_sent(c.turn_id, store_id.to_owned(), day.clone(), now)
            .await?
        {
            continue;
        }
        let text = crate::sms::near_text(
            &c.store_name,
            &view.turn,
            view.ahead.unwrap_or(0),
            &c.locale,
        );
        match sms.sender.send(&to, &text).await {
            Ok(()) => sent += 1,
            Err(e) => tracing::warn!(turn = %c.turn_id, error = %e, "a turn SMS was not sent"),
        }
    }
    Ok(sent)
}

/// What the notifier sends.
#[derive(Clone, Default)]
pub struct Notices {
    /// Web Push with this identity.
    pub vapid: Option<Vapid>,
    /// SMS through this sender.
    pub sms: Option<SmsNotices>,
}

/// Follows the stores' changes and sends their turns' notices until `changes` closes.
pub async fn run(
    db: SharedDb,
    notices: Notices,
    mut changes: tokio::sync::broadcast::Receiver<std::sync::Arc<str>>,
) {
    let client = match crate::sms::outbound_client(Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the Web Push client; no turn notifications");
            return;
        }
    };
    loop {
        let store = match changes.recv().await {
            Ok(store) => store,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if let Some(vapid) = &notices.vapid
            && let Err(e) = notify_store(&db, &client, vapid, &store).await
        {
            tracing::warn!(error = %e, store = %store, "turn notifications failed; retrying at the next change");
        }
        if let Some(sms) = &notices.sms
            && let Err(e) = sms_store(&db, sms, &store).await
        {
            tracing::warn!(error = %e, store = %store, "turn SMS failed; retrying at the next change");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_is_due_once_and_near_means_at_most_the_threshold_ahead() {
        assert_eq!(due(TurnStatus::Waiting, Some(4), 3, false, false), None);
        assert_eq!(
            due(TurnStatus::Waiting, Some(3), 3, false, false),
            Some(Kind::Near)
        );
        assert_eq!(due(TurnStatus::Waiting, Some(0), 3, true, false), None);
        assert_eq!(
            due(TurnStatus::Called, None, 3, true, false),
            Some(Kind::Called)
        );
        assert_eq!(due(TurnStatus::Called, None, 3, true, true), None);
        assert_eq!(due(TurnStatus::Served, None, 3, false, false), None);
    }

    #[test]
    fn a_stored_key_gives_the_same_public_key_and_a_bad_one_is_refused() {
        let secret = Vapid::generate_secret();
        let a = Vapid::from_secret(&secret, DEFAULT_SUBJECT).unwrap();
        let b = Vapid::from_secret(&secret, DEFAULT_SUBJECT).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(URL_SAFE_NO_PAD.decode(a.public_key()).unwrap().len(), 65);
        assert!(Vapid::from_secret("not a key", DEFAULT_SUBJECT).is_err());
    }
}
