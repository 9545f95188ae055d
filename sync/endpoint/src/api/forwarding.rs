//! The forwarding admin API (`/v1/admin/forwarding/*`, the admin token): subscribe an endpoint
//! (a Standard Webhooks receiver, whose secret the endpoint makes and shows once, or the HubSpot
//! connector with the private app's token), list them with their counts, enable, disable,
//! delete, list the dead letters and replay them. Delivery itself is [`crate::forward`]'s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::forward::{DeadLetter, EVENT_TYPES, EndpointView, NewEndpoint};
use crate::forward::hubspot;
use crate::http::doc::{ADMIN_ERRORS, Security, op, path_param, query_param, with_params};
use crate::http::{Admin, ApiError, AppState, Route, Verb, json_body, now_ms};

/// The most dead letters one call lists.
pub const MAX_DEAD_LIMIT: i64 = 500;

fn admin_op(
    summary: &str,
    request: Option<&str>,
    ok: (&str, &str, Option<&str>),
) -> serde_json::Value {
    op(summary, Security::Admin, request, ok, ADMIN_ERRORS)
}

/// The forwarding routes.
pub fn routes() -> Vec<Route> {
    let id = || json!([path_param("endpoint_id", "ForwardEndpointId")]);
    vec![
        Route::new(
            Verb::Post,
            "/v1/admin/forwarding/endpoints",
            create,
            admin_op(
                "subscribe an endpoint to forwarded messages: a Standard Webhooks receiver (its signing secret is made here and shown only in this answer) or the HubSpot connector",
                Some("ForwardEndpointRequest"),
                (
                    "200",
                    "the endpoint, and a webhook's secret",
                    Some("ForwardEndpointCreated"),
                ),
            ),
        ),
        Route::new(
            Verb::Get,
            "/v1/admin/forwarding/endpoints",
            list,
            admin_op(
                "every forwarding endpoint with its state and counts (pending, delivered, dead)",
                None,
                ("200", "the endpoints", Some("ForwardEndpointList")),
            ),
        ),
        Route::new(
            Verb::Delete,
            "/v1/admin/forwarding/endpoints/{endpoint_id}",
            delete,
            with_params(
                admin_op(
                    "delete an endpoint and its messages",
                    None,
                    ("204", "deleted", None),
                ),
                id(),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/forwarding/endpoints/{endpoint_id}/enable",
            enable,
            with_params(
                admin_op(
                    "enable an endpoint (its failure streak forgotten, its waiting messages due at once)",
                    None,
                    ("204", "enabled", None),
                ),
                id(),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/forwarding/endpoints/{endpoint_id}/disable",
            disable,
            with_params(
                admin_op(
                    "disable an endpoint (its messages keep being queued, none is sent)",
                    None,
                    ("204", "disabled", None),
                ),
                id(),
            ),
        ),
        Route::new(
            Verb::Get,
            "/v1/admin/forwarding/dead-letters",
            dead,
            with_params(
                admin_op(
                    "dead letters (messages given up after their retries), newest first; never their bodies",
                    None,
                    ("200", "the dead letters", Some("DeadLetterList")),
                ),
                json!([
                    query_param(
                        "endpoint_id",
                        false,
                        crate::http::doc::schema_ref("ForwardEndpointId"),
                        "only this endpoint's"
                    ),
                    query_param(
                        "limit",
                        false,
                        json!({ "type": "integer", "minimum": 1, "maximum": MAX_DEAD_LIMIT, "default": 100 }),
                        "most lines; out of range is refused (400)"
                    )
                ]),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/forwarding/endpoints/{endpoint_id}/replay",
            replay,
            with_params(
                admin_op(
                    "send dead letters again, with their own webhook-id (one by seq, or all of the endpoint's)",
                    Some("ReplayRequest"),
                    ("200", "how many", Some("ReplayResponse")),
                ),
                id(),
            ),
        ),
    ]
}

/// Adds the schemas the forwarding paths refer to.
pub fn register_schemas(g: &mut schemars::SchemaGenerator) {
    g.subschema_for::<ForwardEndpointId>();
    g.subschema_for::<ForwardUrl>();
    g.subschema_for::<ForwardEndpointRequest>();
    g.subschema_for::<ForwardEndpointCreated>();
    g.subschema_for::<ForwardEndpointList>();
    g.subschema_for::<DeadLetterList>();
    g.subschema_for::<ReplayRequest>();
    g.subschema_for::<ReplayResponse>();
}

/// An endpoint's id (`fwd_` and a UUID).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("pattern" = "^fwd_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"))]
pub struct ForwardEndpointId(pub String);

/// Every endpoint.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ForwardEndpointList(pub Vec<EndpointView>);

/// Dead letters.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct DeadLetterList(pub Vec<DeadLetter>);

/// A message type an endpoint subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MessageType {
    /// A customer registered at a kiosk.
    #[serde(rename = "customer.registered")]
    CustomerRegistered,
    /// A customer changed through the admin API.
    #[serde(rename = "customer.updated")]
    CustomerUpdated,
    /// A consent given or withdrawn.
    #[serde(rename = "consent.changed")]
    ConsentChanged,
    /// A turn issued.
    #[serde(rename = "turn.issued")]
    TurnIssued,
    /// A turn called to a counter.
    #[serde(rename = "turn.called")]
    TurnCalled,
    /// A turn served.
    #[serde(rename = "turn.served")]
    TurnServed,
    /// A survey answered.
    #[serde(rename = "survey.answered")]
    SurveyAnswered,
    /// A coupon redeemed.
    #[serde(rename = "coupon.redeemed")]
    CouponRedeemed,
    /// A customer erased (GDPR Art. 17): erase them downstream too.
    #[serde(rename = "customer.erased")]
    CustomerErased,
}

impl MessageType {
    fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// `POST /v1/admin/forwarding/endpoints` body.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ForwardEndpointRequest {
    /// A receiver of Standard Webhooks messages; its signing secret is made by the endpoint.
    Webhook {
        /// The receiver's URL.
        #[schemars(with = "ForwardUrl")]
        url: String,
        /// The message types it wants (at least one, each once).
        #[schemars(length(min = 1, max = 9), extend("uniqueItems" = true))]
        event_types: Vec<MessageType>,
    },
    /// The HubSpot connector.
    Hubspot {
        /// HubSpot's API base (`https://api.hubapi.com`).
        #[schemars(with = "ForwardUrl")]
        url: String,
        /// The message types it wants (at least one, each once).
        #[schemars(length(min = 1, max = 9), extend("uniqueItems" = true))]
        event_types: Vec<MessageType>,
        /// The private app's access token.
        #[schemars(regex(pattern = r"^[A-Za-z0-9._~+/=-]{1,500}$"))]
        token: String,
        /// The connector's settings.
        hubspot: hubspot::Options,
    },
}

/// A forwarding URL: `https://` and a lower-case host name (its last label starting with a
/// letter), or `http://` to `127.0.0.1` or `localhost`; an optional port (1 to 65535 without
/// leading zeros, or up to four digits) and path (`A-Z a-z 0-9 . _ ~ / -`), no query.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("pattern" = r"^(https://([a-z0-9]+(-[a-z0-9]+)*\.)*[a-z][a-z0-9]*(-[a-z0-9]+)*|http://(127\.0\.0\.1|localhost))(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?(/[A-Za-z0-9._~/-]*)?$"))]
pub struct ForwardUrl(pub String);

fn label_ok(label: &str) -> bool {
    !label.is_empty()
        && label.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Whether `url` has the shape [`ForwardUrl`]'s pattern states.
pub fn url_shape_ok(url: &str) -> bool {
    let (rest, host_end) = if let Some(rest) = url.strip_prefix("https://") {
        let end = rest.find([':', '/']).unwrap_or(rest.len());
        let host = &rest[..end];
        let mut labels: Vec<&str> = host.split('.').collect();
        let Some(last) = labels.pop() else {
            return false;
        };
        let ok = labels.iter().all(|l| label_ok(l))
            && label_ok(last)
            && last.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
        if !ok {
            return false;
        }
        (rest, end)
    } else if let Some(rest) = url.strip_prefix("http://") {
        let end = rest.find([':', '/']).unwrap_or(rest.len());
        if !matches!(&rest[..end], "127.0.0.1" | "localhost") {
            return false;
        }
        (rest, end)
    } else {
        return false;
    };
    let mut tail = &rest[host_end..];
    if let Some(after) = tail.strip_prefix(':') {
        let digits = after.find('/').unwrap_or(after.len());
        let port = &after[..digits];
        let ok = (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && (port.len() < 5
                || (!port.starts_with('0') && port.parse::<u32>().is_ok_and(|p| p <= 65_535)));
        if !ok {
            return false;
        }
        tail = &after[digits..];
    }
    tail.is_empty()
        || (tail.starts_with('/')
            && tail
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~/-".contains(&b)))
}

/// `POST /v1/admin/forwarding/endpoints` answer.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ForwardEndpointCreated {
    /// The endpoint.
    pub endpoint: EndpointView,
    /// A webhook's signing secret (`whsec_…`): shown only here; the receiver verifies with it.
    pub secret: Option<String>,
}

/// `POST .../replay` body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// One dead letter (its `seq`); absent: all of the endpoint's.
    #[schemars(range(min = 1))]
    pub seq: Option<i64>,
}

/// `POST .../replay` answer.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ReplayResponse {
    /// Dead letters sent again.
    pub replayed: u64,
}

fn endpoint_param(id: &str) -> Result<String, ApiError> {
    // Only the form the pattern states: lower-case, hyphenated.
    let ok = id
        .strip_prefix("fwd_")
        .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok_and(|p| p.hyphenated().to_string() == u));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(ApiError::malformed(
            "endpoint_id: not an endpoint id (fwd_ and a UUID)",
        ))
    }
}

async fn create(
    admin: Admin,
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ForwardEndpointCreated>, ApiError> {
    let req: ForwardEndpointRequest = json_body(body)?;
    let (url, event_types) = match &req {
        ForwardEndpointRequest::Webhook { url, event_types }
        | ForwardEndpointRequest::Hubspot {
            url, event_types, ..
        } => (url.clone(), event_types),
    };
    if !url_shape_ok(&url) {
        return Err(ApiError::malformed(
            "url: https:// and a lower-case host name (http:// only to 127.0.0.1 or localhost), an optional port and path, no query",
        ));
    }
    crate::outbound::check_url(&url).map_err(|e| ApiError::malformed(format!("url: {e}")))?;
    let mut types: Vec<String> = event_types.iter().map(|t| t.name()).collect();
    types.sort();
    types.dedup();
    if types.is_empty() || types.len() != event_types.len() || types.len() > EVENT_TYPES.len() {
        return Err(ApiError::malformed(format!(
            "event_types: at least one, each once, of {EVENT_TYPES:?}"
        )));
    }
    let (kind, secret, options, shown) = match req {
        ForwardEndpointRequest::Webhook { .. } => {
            let secret = crate::outbound::new_secret();
            ("webhook", secret.clone(), json!({}), Some(secret))
        }
        ForwardEndpointRequest::Hubspot { token, hubspot, .. } => {
            hubspot
                .check()
                .map_err(|e| ApiError::malformed(format!("hubspot: {e}")))?;
            let token_ok = (1..=500).contains(&token.len())
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b));
            if !token_ok {
                return Err(ApiError::malformed(
                    "token: the private app's access token (1-500 of A-Z a-z 0-9 . _ ~ + / = -)",
                ));
            }
            let options = serde_json::to_value(hubspot)
                .map_err(|e| ApiError::malformed(format!("hubspot: {e}")))?;
            ("hubspot", token, options, None)
        }
    };
    let id = format!("fwd_{}", uuid::Uuid::now_v7());
    st.db
        .forward_create_endpoint(
            NewEndpoint {
                id: id.clone(),
                kind: kind.to_owned(),
                url,
                secret,
                event_types: types,
                options,
            },
            now_ms(),
        )
        .await?;
    admin.audit(&st, "forward_create_endpoint", &id, "ok");
    let endpoint = st
        .db
        .forward_endpoint(id)
        .await?
        .ok_or_else(|| ApiError::not_found("the endpoint vanished"))?;
    Ok(Json(ForwardEndpointCreated {
        endpoint,
        secret: shown,
    }))
}

async fn list(_: Admin, State(st): State<AppState>) -> Result<Json<ForwardEndpointList>, ApiError> {
    Ok(Json(ForwardEndpointList(st.db.forward_endpoints().await?)))
}

async fn delete(
    admin: Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = endpoint_param(&id)?;
    if st.db.forward_delete_endpoint(id.clone()).await? {
        admin.audit(&st, "forward_delete_endpoint", &id, "ok");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such endpoint"))
    }
}

async fn set_enabled(st: &AppState, id: &str, enabled: bool) -> Result<StatusCode, ApiError> {
    let id = endpoint_param(id)?;
    if st.db.forward_set_enabled(id, enabled, now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such endpoint"))
    }
}

async fn enable(
    admin: Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let answer = set_enabled(&st, &id, true).await?;
    admin.audit(&st, "forward_enable_endpoint", &id, "ok");
    Ok(answer)
}

async fn disable(
    admin: Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let answer = set_enabled(&st, &id, false).await?;
    admin.audit(&st, "forward_disable_endpoint", &id, "ok");
    Ok(answer)
}

/// `GET /v1/admin/forwarding/dead-letters` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    /// Only this endpoint's.
    pub endpoint_id: Option<String>,
    /// Most lines.
    pub limit: Option<i64>,
}

async fn dead(
    _: Admin,
    State(st): State<AppState>,
    q: Result<Query<DeadQuery>, QueryRejection>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::malformed(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_DEAD_LIMIT).contains(&limit) {
        return Err(ApiError::malformed(format!(
            "limit: 1 to {MAX_DEAD_LIMIT}, not {limit}"
        )));
    }
    let endpoint = q.endpoint_id.as_deref().map(endpoint_param).transpose()?;
    Ok(Json(DeadLetterList(
        st.db.forward_dead_letters(endpoint, limit).await?,
    )))
}

/// Sends an endpoint's dead letters again (one by `seq`, or all); how many. 404 when there is
/// no such endpoint. The admin API and the dashboard's Replay button both call this.
pub async fn replay_dead(st: &AppState, id: &str, seq: Option<i64>) -> Result<u64, ApiError> {
    let id = endpoint_param(id)?;
    if st.db.forward_endpoint(id.clone()).await?.is_none() {
        return Err(ApiError::not_found("no such endpoint"));
    }
    if seq.is_some_and(|s| s < 1) {
        return Err(ApiError::malformed("seq: a dead letter's seq, 1 or more"));
    }
    Ok(st.db.forward_replay(id, seq, now_ms()).await?)
}

async fn replay(
    admin: Admin,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReplayResponse>, ApiError> {
    let req: ReplayRequest = json_body(body)?;
    let replayed = replay_dead(&st, &id, req.seq).await?;
    admin.audit(&st, "forward_replay", &id, &replayed.to_string());
    Ok(Json(ReplayResponse { replayed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_urls_have_the_documented_shape() {
        for ok in [
            "https://crm.example.com/kiosk-hook",
            "https://api.hubapi.com",
            "https://a:443/x_y.z~/",
            "http://127.0.0.1:65535/hook",
            "http://localhost",
        ] {
            assert!(url_shape_ok(ok), "{ok}");
        }
        for bad in [
            "https://Example.com",
            "https://crm.example.com/hook?token=x",
            "https://1.2.3.4",
            "https://a--b.com",
            "https://a.-b.com",
            "https://a:65536",
            "https://a:01234",
            "http://crm.example.com",
            "ftp://a",
            "https://",
        ] {
            assert!(!url_shape_ok(bad), "{bad}");
        }
    }

    #[test]
    fn endpoint_ids_are_fwd_and_a_lower_case_uuid() {
        assert!(endpoint_param("fwd_0190f1a2-3b4c-7d5e-8f60-718293a4b5c6").is_ok());
        assert!(endpoint_param("fwd_0190F1A2-3B4C-7D5E-8F60-718293A4B5C6").is_err());
        assert!(endpoint_param("fwd_0190f1a23b4c7d5e8f60718293a4b5c6").is_err());
        assert!(endpoint_param("0190f1a2-3b4c-7d5e-8f60-718293a4b5c6").is_err());
    }
}
