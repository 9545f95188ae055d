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
    g.subschema_for::<ForwardEndpointRequest>();
    g.subschema_for::<ForwardEndpointCreated>();
    g.subschema_for::<ForwardEndpointList>();
    g.subschema_for::<DeadLetterList>();
    g.subschema_for::<ReplayRequest>();
    g.subschema_for::<ReplayResponse>();
}

/// An endpoint's id (`fwd_` and a UUID).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("pattern" = "^fwd_[0-9a-f-]{36}$"))]
pub struct ForwardEndpointId(pub String);

/// Every endpoint.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ForwardEndpointList(pub Vec<EndpointView>);

/// Dead letters.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct DeadLetterList(pub Vec<DeadLetter>);

/// What kind of endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// A receiver of Standard Webhooks messages.
    Webhook,
    /// The HubSpot connector.
    Hubspot,
}

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
#[serde(deny_unknown_fields)]
pub struct ForwardEndpointRequest {
    /// `webhook` or `hubspot`.
    pub kind: EndpointKind,
    /// The receiver's URL, or HubSpot's API base (`https://api.hubapi.com`); https (http only to
    /// this machine).
    #[schemars(length(min = 1, max = 2000))]
    pub url: String,
    /// The message types it wants (at least one, each once).
    #[schemars(length(min = 1, max = 9))]
    pub event_types: Vec<MessageType>,
    /// HubSpot: the private app's access token (required for `hubspot`, refused for `webhook`).
    #[schemars(length(min = 1, max = 500))]
    pub token: Option<String>,
    /// HubSpot: the connector's settings (required for `hubspot`).
    pub hubspot: Option<hubspot::Options>,
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
    let ok = id.len() == 40
        && id
            .strip_prefix("fwd_")
            .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok());
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
    crate::outbound::check_url(&req.url).map_err(|e| ApiError::malformed(format!("url: {e}")))?;
    let mut types: Vec<String> = req.event_types.iter().map(|t| t.name()).collect();
    types.sort();
    types.dedup();
    if types.is_empty() || types.len() != req.event_types.len() {
        return Err(ApiError::malformed(format!(
            "event_types: at least one, each once, of {EVENT_TYPES:?}"
        )));
    }
    let (kind, secret, options, shown) = match (req.kind, req.token, req.hubspot) {
        (EndpointKind::Webhook, None, None) => {
            let secret = crate::outbound::new_secret();
            ("webhook", secret.clone(), json!({}), Some(secret))
        }
        (EndpointKind::Webhook, _, _) => {
            return Err(ApiError::malformed(
                "token and hubspot are for the hubspot kind; a webhook's secret is made here",
            ));
        }
        (EndpointKind::Hubspot, Some(token), Some(options)) => {
            options
                .check()
                .map_err(|e| ApiError::malformed(format!("hubspot: {e}")))?;
            if token.trim().is_empty() || token.chars().any(char::is_whitespace) {
                return Err(ApiError::malformed(
                    "token: the private app's access token, without spaces",
                ));
            }
            let options = serde_json::to_value(options)
                .map_err(|e| ApiError::malformed(format!("hubspot: {e}")))?;
            ("hubspot", token, options, None)
        }
        (EndpointKind::Hubspot, _, _) => {
            return Err(ApiError::malformed(
                "the hubspot kind needs token (the private app's access token) and hubspot (event_prefix)",
            ));
        }
    };
    let id = format!("fwd_{}", uuid::Uuid::now_v7());
    st.db
        .forward_create_endpoint(
            NewEndpoint {
                id: id.clone(),
                kind: kind.to_owned(),
                url: req.url,
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
