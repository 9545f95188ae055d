//! Outbound signed delivery: the one way the endpoint sends a message to another system, used
//! by the fleet alerts ([`crate::alerts`]) and by the forwarding to the company's CRM
//! ([`crate::forward`]). A message is signed as the Standard Webhooks specification says
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` of
//! `{id}.{timestamp}.{body}`, keyed with the bytes of a `whsec_<base64>` secret), posted with a
//! timeout, and the answer classified: delivered (2xx), throttled (429, with the receiver's
//! `Retry-After`), or failed (anything else, with a reason that never quotes the body).
//!
//! Data flow: an outbox row (alerts' or forwarding's, in the database) → **outbound** → the
//! receiver. Queues, retries and ordering belong to the callers; this module keeps no state.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `Retry-After` believed (a receiver asking for more is retried after this).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// Where messages are sent: a URL and its signing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// `https://...` (`http://` only to a loopback address).
    pub url: String,
    /// The signing secret, `whsec_` and base64 (Standard Webhooks).
    pub secret: String,
}

impl Webhook {
    /// A webhook to `url` with a new random 32-byte secret.
    pub fn new(url: &str) -> Result<Webhook, String> {
        check_url(url)?;
        Ok(Webhook {
            url: url.to_owned(),
            secret: new_secret(),
        })
    }

    fn key(&self) -> Result<Vec<u8>, String> {
        let b64 = self.secret.strip_prefix("whsec_").unwrap_or(&self.secret);
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "the webhook secret is not whsec_ and base64".to_owned())
    }
}

/// A new random 32-byte signing secret, `whsec_` and base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A webhook URL: https, or http to a loopback address (a receiver on the same machine).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "the webhook URL must be https:// (http:// only to this machine), not {url:?}"
        )),
    }
}

/// The Standard Webhooks signature of a message: `v1,` and the base64 HMAC-SHA256, keyed with
/// the secret's bytes, of `{id}.{timestamp}.{body}`.
pub fn sign(webhook: &Webhook, id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&webhook.key()?)
        .map_err(|_| "the webhook secret is empty".to_owned())?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The receiver asked to slow down (429): try again after `retry_after` (its `Retry-After`,
    /// when it gave one). Not a failure of the receiver.
    #[error("the receiver asked to slow down (429)")]
    Throttled {
        /// How long it asked to wait.
        retry_after: Option<Duration>,
    },
    /// Anything else: a transport error, a timeout, a status that is not 2xx.
    #[error("{0}")]
    Failed(String),
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3), at most [`MAX_RETRY_AFTER`];
/// `None` when absent or unreadable.
pub fn retry_after(
    headers: &reqwest::header::HeaderMap,
    now: time::OffsetDateTime,
) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at =
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
                    .ok()?;
            Duration::try_from(at - now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What a receiver's answer means (its body is never quoted: it may echo personal data).
pub fn classify(
    what: &str,
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Result<(), Failure> {
    if status.is_success() {
        Ok(())
    } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Failure::Throttled {
            retry_after: retry_after(headers, time::OffsetDateTime::now_utc()),
        })
    } else {
        Err(Failure::Failed(format!("{what} answered {status}")))
    }
}

/// Posts `body` to `webhook` as message `id`, signed at `timestamp` (unix seconds).
pub async fn post_signed(
    http: &reqwest::Client,
    webhook: &Webhook,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<(), Failure> {
    let signature = sign(webhook, id, timestamp, body).map_err(Failure::Failed)?;
    let resp = http
        .post(&webhook.url)
        .timeout(TIMEOUT)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| {
            Failure::Failed(format!(
                "sending to the webhook failed: {}",
                without_url(&e)
            ))
        })?;
    classify("the webhook", resp.status(), resp.headers())
}

/// A reqwest error in words, without the URL (a receiver's URL can carry a token in its query).
pub fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    match last {
        Some(cause) => format!("{kind} ({cause})"),
        None => kind.to_owned(),
    }
}

/// An HTTP client for outbound messages: no redirects (a receiver cannot bounce a signed
/// message, or a connector's token, elsewhere).
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_one_the_standard_webhooks_spec_shows() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md).
        let hook = Webhook {
            url: "https://example.com".into(),
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        };
        let sig = sign(
            &hook,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_is_capped() {
        let now = time::macros::datetime!(2026-12-06 16:00:00 UTC);
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Sun, 06 Dec 2026 16:00:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", "999999999".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(MAX_RETRY_AFTER));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn new_secrets_are_whsec_and_32_random_bytes() {
        let a = Webhook::new("https://crm.example.com/hook").unwrap();
        let b = Webhook::new("https://crm.example.com/hook").unwrap();
        assert!(a.secret.starts_with("whsec_"));
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.key().unwrap().len(), 32);
    }
}
