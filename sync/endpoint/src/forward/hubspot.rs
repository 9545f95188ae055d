//! The ready HubSpot connector: a forwarding message becomes calls of HubSpot's public REST API
//! with a private app's access token (`Authorization: Bearer`, scopes
//! `crm.objects.contacts.write` and the custom events' `analytics.behavioral_events.send`):
//!
//! - `customer.registered`, `customer.updated`, `consent.changed` → `POST
//!   /crm/v3/objects/contacts/batch/upsert`, the contact identified by the card token in the
//!   unique custom property [`Options::id_property`] (default `kiosk_card_token`, to create in
//!   HubSpot with "unique values" on); `firstname`, `email`, `phone`, `hs_language` set while the
//!   customer consents to the profile and cleared (empty strings) when they do not;
//! - `turn.issued`, `turn.called`, `turn.served`, `survey.answered`, `coupon.redeemed` of an
//!   identified customer → the contact upserted by its card token (its id is in the answer),
//!   then `POST /events/v3/send` with `eventName` `{event_prefix}kiosk_turn_issued` (and so on:
//!   the custom event definitions to create in HubSpot, `pe{HubID}_` prefixed), `objectId`,
//!   `occurredAt`, `uuid` (the message's UUID: HubSpot keeps the first occurrence of a uuid, so a
//!   retry does not count twice) and the data as string properties; anonymous ones are skipped;
//! - `customer.erased` → `POST /crm/v3/objects/contacts/gdpr-delete` by the card token (a
//!   contact HubSpot does not have counts as erased).
//!
//! A 429 is throttling (its `Retry-After` honoured); other failures are retried by the
//! forwarding's schedule. Answers' bodies are never quoted (they can echo personal data).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::outbound::{Failure, classify, without_url};

/// The connector's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The custom events' prefix, `pe{HubID}_` (e.g. `pe1234567_`).
    #[schemars(regex(pattern = r"^pe[0-9]{1,20}_$"))]
    pub event_prefix: String,
    /// The contact property holding the card token (unique values).
    #[serde(default = "default_id_property")]
    #[schemars(regex(pattern = r"^[a-z0-9_]{1,100}$"))]
    pub id_property: String,
}

fn default_id_property() -> String {
    "kiosk_card_token".to_owned()
}

impl Options {
    /// Refuses what HubSpot would: a prefix not `pe` digits `_`, a property name not lowercase.
    pub fn check(&self) -> Result<(), String> {
        let digits = self
            .event_prefix
            .strip_prefix("pe")
            .and_then(|p| p.strip_suffix('_'))
            .unwrap_or("");
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "event_prefix must be pe, the HubSpot account id and _ (pe1234567_), not {:?}",
                self.event_prefix
            ));
        }
        let ok = !self.id_property.is_empty()
            && self.id_property.len() <= 100
            && self
                .id_property
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(format!(
                "id_property must be a HubSpot property's internal name (a-z, 0-9, _), not {:?}",
                self.id_property
            ));
        }
        Ok(())
    }
}

/// One HubSpot account.
pub struct HubSpot<'a> {
    /// The client.
    pub http: &'a reqwest::Client,
    /// `https://api.hubapi.com` (a fake's in tests).
    pub base: &'a str,
    /// The private app's access token.
    pub token: &'a str,
    /// Settings.
    pub options: &'a Options,
}

fn bad(what: &str) -> Failure {
    Failure::Failed(format!("the forwarding message lacks {what}"))
}

impl HubSpot<'_> {
    async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response, Failure> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        self.http
            .post(url)
            .timeout(crate::outbound::TIMEOUT)
            .bearer_auth(self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| Failure::Failed(format!("HubSpot {path}: {}", without_url(&e))))
    }

    /// Upserts the contact of `token` with `properties`; its HubSpot id.
    async fn upsert(&self, token: &str, properties: Map<String, Value>) -> Result<String, Failure> {
        const PATH: &str = "/crm/v3/objects/contacts/batch/upsert";
        let body = json!({ "inputs": [{ "idProperty": self.options.id_property, "id": token,
                                        "properties": properties }] });
        let resp = self.post(PATH, &body).await?;
        classify(&format!("HubSpot {PATH}"), resp.status(), resp.headers())?;
        let answer: Value = resp
            .json()
            .await
            .map_err(|_| Failure::Failed(format!("HubSpot {PATH} answered no JSON")))?;
        answer
            .pointer("/results/0/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Failure::Failed(format!("HubSpot {PATH} answered no contact id")))
    }

    /// Delivers one forwarding message (`msg_id`, its JSON `payload`).
    pub async fn deliver(&self, msg_id: &str, payload: &str) -> Result<(), Failure> {
        let msg: Value = serde_json::from_str(payload).map_err(|_| bad("a JSON body"))?;
        let kind = msg["type"].as_str().ok_or_else(|| bad("its type"))?;
        let data = &msg["data"];
        let token = data["card_token"].as_str();
        match kind {
            "customer.registered" | "customer.updated" | "consent.changed" => {
                let token = token.ok_or_else(|| bad("a card token"))?;
                let profile = &data["customer"]["profile"];
                let field = |k: &str| Value::String(profile[k].as_str().unwrap_or("").to_owned());
                let mut props = Map::new();
                props.insert("firstname".into(), field("display_name"));
                props.insert("email".into(), field("email"));
                props.insert("phone".into(), field("phone"));
                props.insert("hs_language".into(), field("locale"));
                self.upsert(token, props).await.map(|_| ())
            }
            "turn.issued" | "turn.called" | "turn.served" | "survey.answered"
            | "coupon.redeemed" => {
                let Some(token) = token else {
                    // Nothing to tie an anonymous event to in HubSpot.
                    return Ok(());
                };
                let contact = self.upsert(token, Map::new()).await?;
                let mut props = Map::new();
                if let Some(d) = data.as_object() {
                    for (k, v) in d {
                        let text = match v {
                            Value::Null => continue,
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        if k != "card_token" {
                            props.insert(k.clone(), Value::String(text));
                        }
                    }
                }
                let uuid = msg_id.strip_prefix("msg_").unwrap_or(msg_id);
                let body = json!({
                    "eventName": format!("{}kiosk_{}", self.options.event_prefix, kind.replace('.', "_")),
                    "objectId": contact,
                    "occurredAt": msg["timestamp"],
                    "uuid": uuid,
                    "properties": props,
                });
                let resp = self.post("/events/v3/send", &body).await?;
                classify("HubSpot /events/v3/send", resp.status(), resp.headers())
            }
            "customer.erased" => {
                let token = token.ok_or_else(|| bad("a card token"))?;
                let body = json!({ "objectId": token, "idProperty": self.options.id_property });
                let resp = self
                    .post("/crm/v3/objects/contacts/gdpr-delete", &body)
                    .await?;
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(());
                }
                classify(
                    "HubSpot /crm/v3/objects/contacts/gdpr-delete",
                    resp.status(),
                    resp.headers(),
                )
            }
            other => Err(Failure::Failed(format!(
                "the HubSpot connector does not know {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_refuse_what_hubspot_would() {
        let ok = Options {
            event_prefix: "pe1234567_".into(),
            id_property: default_id_property(),
        };
        assert_eq!(ok.check(), Ok(()));
        let bad_prefix = Options {
            event_prefix: "kiosk_".into(),
            ..ok.clone()
        };
        assert!(bad_prefix.check().unwrap_err().contains("event_prefix"));
        let bad_prop = Options {
            id_property: "Card Token".into(),
            ..ok
        };
        assert!(bad_prop.check().unwrap_err().contains("id_property"));
    }
}
