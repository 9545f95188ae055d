//! "Your turn is near" by SMS or WhatsApp, for registered customers who consented to turn
//! notices (`turn_sms`) and left a phone number, without opening the turn page.
//!
//! Data flow: kiosk batch → live queue → change notice → notifier ([`crate::push::run`]) →
//! **[`SmsSender`]** → the provider's HTTP API → the customer's phone.
//!
//! Providers plug in behind [`SmsSender`]; one adapter ships: [`Twilio`] (Programmable
//! Messaging, `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To`, `From`,
//! `Body`, HTTP basic auth with the account SID and auth token; WhatsApp is the same API with
//! `whatsapp:`-prefixed numbers). The auth token never reaches a log or a `Debug` output, and
//! phone numbers are never logged.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

/// An HTTP client for calls out (push services, the SMS provider) with `timeout`. reqwest is
/// built without a TLS crypto provider of its own: the process's default is used, installed
/// here (ring, as the endpoint's own TLS) when nothing installed one yet.
pub fn outbound_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may win the race; either way a provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder().timeout(timeout).build()
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The customer's number cannot be written in E.164.
    #[error(
        "the customer's phone number is not a full international number (E.164); set --sms-default-country for local numbers"
    )]
    BadNumber,
    /// The provider could not be reached.
    #[error("cannot reach the SMS provider")]
    Http(#[source] reqwest::Error),
    /// The provider refused the message.
    #[error("the SMS provider answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The provider's message (never the recipient).
        message: String,
    },
}

/// Sends a short text to a phone number (E.164: `+34600111222`).
pub trait SmsSender: Send + Sync {
    /// Sends `text` to `to`.
    fn send<'a>(&'a self, to: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), SmsError>>;
}

/// A shared sender.
pub type SharedSms = Arc<dyn SmsSender>;

/// Writes a customer's phone as E.164: spaces, dots, dashes and parentheses dropped; a leading
/// `00` read as `+`; a number without a country code gets `default_country` (`+34`), if set.
pub fn e164(phone: &str, default_country: Option<&str>) -> Result<String, SmsError> {
    let compact: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
        .collect();
    let full = if let Some(rest) = compact.strip_prefix('+') {
        format!("+{rest}")
    } else if let Some(rest) = compact.strip_prefix("00") {
        format!("+{rest}")
    } else {
        let cc = default_country.ok_or(SmsError::BadNumber)?;
        format!("{cc}{compact}")
    };
    let digits = &full[1..];
    let ok = full.starts_with('+')
        && (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(full)
    } else {
        Err(SmsError::BadNumber)
    }
}

/// Twilio's channel: a plain SMS, or WhatsApp through the same Messages API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// SMS.
    Sms,
    /// WhatsApp (`whatsapp:+34...` numbers).
    WhatsApp,
}

/// The Twilio adapter.
pub struct Twilio {
    base_url: String,
    account_sid: String,
    auth_token: String,
    from: String,
    channel: Channel,
    client: reqwest::Client,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// Twilio's API.
pub const TWILIO_API: &str = "https://api.twilio.com";

impl Twilio {
    /// An adapter sending from `from` (an E.164 number the account owns) with the account's
    /// SID and auth token, to `base_url` ([`TWILIO_API`]; a local fake in tests).
    pub fn new(
        base_url: impl Into<String>,
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        from: impl Into<String>,
        channel: Channel,
    ) -> Result<Self, SmsError> {
        let client = outbound_client(Duration::from_secs(10)).map_err(SmsError::Http)?;
        Ok(Twilio {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            from: from.into(),
            channel,
            client,
        })
    }

    fn address(&self, number: &str) -> String {
        match self.channel {
            Channel::Sms => number.to_owned(),
            Channel::WhatsApp => format!("whatsapp:{number}"),
        }
    }
}

impl SmsSender for Twilio {
    fn send<'a>(&'a self, to: &'a str, text: &'a str) -> BoxFuture<'a, Result<(), SmsError>> {
        Box::pin(async move {
            let url = format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.base_url, self.account_sid
            );
            let resp = self
                .client
                .post(url)
                .basic_auth(&self.account_sid, Some(&self.auth_token))
                .form(&[
                    ("To", self.address(to)),
                    ("From", self.address(&self.from)),
                    ("Body", text.to_owned()),
                ])
                .send()
                .await
                .map_err(SmsError::Http)?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            // Twilio's errors are JSON: {"code": 21211, "message": "...", ...}.
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            Err(SmsError::Refused {
                status: status.as_u16(),
                message: format!(
                    "{} (code {})",
                    body["message"].as_str().unwrap_or("no message"),
                    body["code"]
                ),
            })
        })
    }
}

/// The text of "your turn is near".
pub fn near_text(store: &str, label: &str, ahead: u64, lang: &str) -> String {
    match (lang == "en", ahead) {
        (false, 0) => {
            format!("{store}: su turno {label} es el siguiente. Acérquese a los mostradores.")
        }
        (false, n) => format!(
            "{store}: quedan {n} turnos antes de su turno {label}. Acérquese a los mostradores."
        ),
        (true, 0) => format!("{store}: your turn {label} is next. Please come to the counters."),
        (true, n) => {
            format!("{store}: {n} turns before your turn {label}. Please come to the counters.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_written_in_e164_or_refused() {
        assert_eq!(e164("+34 600 11-22-33", None).unwrap(), "+34600112233");
        assert_eq!(e164("0034 (600) 112233", None).unwrap(), "+34600112233");
        assert_eq!(e164("600112233", Some("+34")).unwrap(), "+34600112233");
        assert!(e164("600112233", None).is_err());
        assert!(e164("+0600", None).is_err());
        assert!(e164("+3460011223344556677", None).is_err());
    }

    #[test]
    fn the_auth_token_never_shows_in_debug() {
        let t = Twilio::new(
            TWILIO_API,
            "AC1",
            "secret-token",
            "+15550001111",
            Channel::Sms,
        )
        .unwrap();
        assert!(!format!("{t:?}").contains("secret-token"));
    }
}
