//! The admin API (`/v1/admin/*` and `/v1/stats`): stores, enrollment codes, customers and their
//! segments, erasure, campaigns and statistics. A handler takes the [`Admin`] extractor (the
//! admin token or an HQ admin), or a [`Principal`] where other roles may act within their scope:
//! statistics, a store's configuration and enrollment codes (their stores; analysts read only),
//! the campaign list (read).

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::Campaign;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::kiosk::issue_enroll_code;
use kiosk_protocol::ident::{self, Ident};
use schemars::JsonSchema;

use crate::db::{AuditEntry, CustomerRecord, NewCustomer, StoreRecord, StoreStats};
use crate::http::doc::{
    ADMIN_ERRORS, Security, op, path_param, query_param, schema_ref, with_params,
};
use crate::http::{Admin, ApiError, AppState, Principal, Route, Verb, json_body, now_ms};
use crate::input;

fn admin_op(summary: &str, request: Option<&str>, ok: (&str, &str, Option<&str>)) -> Value {
    op(summary, Security::Admin, request, ok, ADMIN_ERRORS)
}

/// The admin routes.
pub fn routes() -> Vec<Route> {
    let token = || json!([path_param("card_token", "CardToken")]);
    vec![
        Route::new(
            Verb::Get,
            "/v1/stats",
            stats,
            with_params(
                admin_op(
                    "statistics of one store (any role, within its stores)",
                    None,
                    ("200", "statistics", Some("StoreStats")),
                ),
                json!([query_param(
                    "store",
                    true,
                    schema_ref("Ident"),
                    "the store's id"
                )]),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/stores",
            admin_store,
            admin_op(
                "create or rename a store",
                Some("StoreRequest"),
                ("204", "saved", None),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/enroll-codes",
            admin_enroll_code,
            admin_op(
                "make a one-time enrollment code (HQ admins, regional and store managers, within their stores)",
                Some("EnrollCodeRequest"),
                ("200", "the code", Some("EnrollCodeResponse")),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/customers",
            admin_customer,
            admin_op(
                "create or update a customer",
                Some("NewCustomer"),
                ("204", "saved", None),
            ),
        ),
        Route::new(
            Verb::Get,
            "/v1/admin/audit",
            admin_audit,
            with_params(
                admin_op(
                    "the operator's audit log, newest first: logins, logouts and failed logins, every write (who, what, when, outcome), reads of personal data, erasures, calls refused by role, failed admin authentication; one account's lines with ?user=",
                    None,
                    ("200", "the audit lines", Some("AuditLog")),
                ),
                json!([
                    query_param(
                        "since_ms",
                        false,
                        json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0 }),
                        "only lines at or after this time, unix ms"
                    ),
                    query_param(
                        "limit",
                        false,
                        json!({ "type": "integer", "minimum": 1, "maximum": MAX_AUDIT_LIMIT, "default": 100 }),
                        "most lines; out of range is refused (400)"
                    ),
                    query_param(
                        "user",
                        false,
                        schema_ref("Ident"),
                        "only this account's lines"
                    )
                ]),
            ),
        ),
        Route::new(
            Verb::Get,
            "/v1/admin/customers/{card_token}",
            admin_get_customer,
            with_params(
                admin_op(
                    "a customer's profile and consent history",
                    None,
                    ("200", "the customer", Some("CustomerRecord")),
                ),
                token(),
            ),
        ),
        Route::new(
            Verb::Put,
            "/v1/admin/customers/{card_token}/segment",
            admin_segment,
            with_params(
                admin_op(
                    "set a customer's segment by hand, or null to compute it",
                    Some("SegmentRequest"),
                    ("204", "set", None),
                ),
                token(),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/customers/{card_token}/erase",
            admin_erase,
            with_params(
                admin_op(
                    "erase a customer's personal data and tell every kiosk; a token with nothing stored yet is remembered, so a registration arriving later is stored redacted",
                    None,
                    ("204", "erased (or remembered)", None),
                ),
                token(),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/segments/recompute",
            admin_recompute,
            admin_op(
                "recompute computed segments now",
                None,
                ("200", "how many changed", Some("RecomputeResponse")),
            ),
        ),
        Route::new(
            Verb::Put,
            "/v1/admin/stores/{store_id}/config",
            admin_set_store_config,
            with_params(
                admin_op(
                    "set a store's configuration (HQ admins, regional and store managers, within their stores; analysts get 403) (services, opening time, counters, staff PIN digest, privacy policy; each part optional, absent parts stay as each kiosk's site.toml says): checked with the kiosks' check-config rules, saved as the next version and sent to the store's kiosks in their feed",
                    Some("StoreConfigParts"),
                    ("200", "the version saved", Some("StoreConfig")),
                ),
                json!([path_param("store_id", "Ident")]),
            ),
        ),
        Route::new(
            Verb::Get,
            "/v1/admin/stores/{store_id}/config",
            admin_store_config,
            with_params(
                admin_op(
                    "a store's configuration (its newest version) and what each of its kiosks reported running (any role, within its stores)",
                    None,
                    (
                        "200",
                        "the configuration and the kiosks' reports",
                        Some("StoreConfigView"),
                    ),
                ),
                json!([path_param("store_id", "Ident")]),
            ),
        ),
        Route::new(
            Verb::Get,
            "/v1/admin/campaigns",
            admin_campaigns,
            admin_op(
                "all campaigns (any role)",
                None,
                ("200", "campaigns", Some("CampaignList")),
            ),
        ),
        Route::new(
            Verb::Post,
            "/v1/admin/campaigns",
            admin_upsert_campaign,
            admin_op(
                "create or replace a campaign",
                Some("Campaign"),
                ("204", "saved", None),
            ),
        )
        .map(|h| {
            h.layer(axum::extract::DefaultBodyLimit::max(
                crate::campaigns::MAX_CAMPAIGN_BODY_BYTES,
            ))
        }),
    ]
}

/// Adds the schemas the admin paths refer to (beside the wire types') to `g`'s definitions.
pub fn register_schemas(g: &mut schemars::SchemaGenerator) {
    g.subschema_for::<StoreRequest>();
    g.subschema_for::<EnrollCodeRequest>();
    g.subschema_for::<EnrollCodeResponse>();
    g.subschema_for::<NewCustomer>();
    g.subschema_for::<CustomerRecord>();
    g.subschema_for::<SegmentRequest>();
    g.subschema_for::<StoreStats>();
    g.subschema_for::<RecomputeResponse>();
    g.subschema_for::<AuditEntry>();
    g.subschema_for::<kiosk_protocol::store_config::StoreConfigParts>();
    g.subschema_for::<kiosk_protocol::store_config::StoreConfig>();
    g.subschema_for::<StoreConfigView>();
}

/// `GET /v1/admin/stores/{store_id}/config` answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StoreConfigView {
    /// The newest version (`null`: none set; the kiosks run their site.toml).
    pub config: Option<kiosk_protocol::store_config::StoreConfig>,
    /// What each kiosk last reported running or refusing, by kiosk id.
    pub kiosks: std::collections::BTreeMap<String, crate::db::dashboard::KioskConfigState>,
}

fn store_param(store_id: &str) -> Result<String, ApiError> {
    ident::check(store_id)
        .map_err(|e| ApiError::malformed(format!("store_id: the store id {e}")))?;
    Ok(store_id.to_owned())
}

async fn admin_set_store_config(
    who: Principal,
    State(st): State<AppState>,
    Path(store_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<kiosk_protocol::store_config::StoreConfig>, ApiError> {
    let store_id = store_param(&store_id)?;
    who.require_write(&st, "a store's configuration")?;
    who.store(&st, &store_id).await?;
    let value: Value = json_body(body)?;
    let parts = crate::store_config::from_json("body", value)
        .map_err(|e| ApiError::malformed(e.to_string()))?;
    let config = st
        .db
        .set_store_config(store_id.clone(), parts, now_ms())
        .await?;
    tracing::info!(store = %store_id, version = config.version, "store configuration set");
    Ok(Json(config))
}

async fn admin_store_config(
    who: Principal,
    State(st): State<AppState>,
    Path(store_id): Path<String>,
) -> Result<Json<StoreConfigView>, ApiError> {
    let store_id = store_param(&store_id)?;
    who.store(&st, &store_id).await?;
    Ok(Json(StoreConfigView {
        config: st.db.store_config(store_id.clone()).await?,
        kiosks: st.db.kiosk_configs(store_id).await?,
    }))
}

/// Array schemas the admin paths refer to by name.
pub fn lists() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "CampaignList".into(),
        json!({ "type": "array", "items": schema_ref("Campaign") }),
    );
    out.insert(
        "AuditLog".into(),
        json!({ "type": "array", "items": schema_ref("AuditEntry") }),
    );
    out
}

fn token_param(s: &str) -> Result<CardToken, ApiError> {
    s.parse()
        .map_err(|e| ApiError::malformed(format!("card token in path: {e}")))
}

/// Most lines `/v1/admin/audit` answers with.
pub const MAX_AUDIT_LIMIT: i64 = 1000;

/// Query of `/v1/admin/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    since_ms: i64,
    #[serde(default)]
    user: Option<String>,
    #[serde(default = "default_audit_limit")]
    limit: i64,
}

fn default_audit_limit() -> i64 {
    100
}

async fn admin_audit(
    _: Admin,
    State(st): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::malformed(format!("audit query: {e}")))?;
    if !(1..=MAX_AUDIT_LIMIT).contains(&q.limit) {
        return Err(ApiError::malformed(format!(
            "limit: {} is out of range; ask for 1 to {MAX_AUDIT_LIMIT} lines",
            q.limit
        )));
    }
    if q.since_ms < 0 {
        return Err(ApiError::malformed(format!(
            "since_ms: {} is before 1970; give a unix time in ms",
            q.since_ms
        )));
    }
    if let Some(u) = &q.user {
        ident::check(u).map_err(|e| ApiError::malformed(format!("user: the account name {e}")))?;
    }
    Ok(Json(st.db.audit_log(q.since_ms, q.limit, q.user).await?).into_response())
}

/// Query of `/v1/stats`.
#[derive(Debug, Deserialize)]
struct StatsQuery {
    store: String,
}

async fn stats(
    who: Principal,
    State(st): State<AppState>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::malformed(format!("stats query needs ?store=ID: {e}")))?;
    ident::check(&q.store).map_err(|e| ApiError::malformed(format!("store: the store id {e}")))?;
    who.store(&st, &q.store).await?;
    Ok(Json(st.db.stats(q.store).await?).into_response())
}

async fn admin_store(
    _: Admin,
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let req: StoreRequest = json_body(body)?;
    st.db
        .upsert_store(StoreRecord {
            id: req.id.clone(),
            name: req.name,
        })
        .await?;
    if req.timezone.is_some() {
        st.db.set_store_timezone(req.id, req.timezone).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /v1/admin/stores`: a store and, optionally, its time zone.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreRequest {
    /// The store's id (`madrid-centro`).
    #[serde(deserialize_with = "ident::deserialize")]
    #[schemars(with = "Ident")]
    pub id: String,
    /// Name shown on screens, tickets and the dashboard.
    #[serde(deserialize_with = "input::name")]
    #[schemars(with = "input::Name")]
    pub name: String,
    /// IANA time zone of the dashboard's hours; absent leaves it as it is (`null` is refused).
    #[serde(default, deserialize_with = "input::timezone")]
    #[schemars(with = "input::Timezone")]
    pub timezone: Option<String>,
}

/// Body of `POST /v1/admin/enroll-codes`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollCodeRequest {
    /// The store the kiosk will belong to.
    #[serde(deserialize_with = "ident::deserialize")]
    #[schemars(with = "Ident")]
    pub store_id: String,
    /// How long the code stays valid, seconds: 1 to 30 days (default a day).
    #[serde(default = "default_ttl_s")]
    #[schemars(range(min = 1, max = input::MAX_ENROLL_TTL_S))]
    pub ttl_s: u64,
}

/// Checks an enrollment code's lifetime: 1 s to [`input::MAX_ENROLL_TTL_S`].
pub fn check_enroll_ttl(ttl: Duration) -> Result<(), String> {
    let max = Duration::from_secs(input::MAX_ENROLL_TTL_S);
    if ttl < Duration::from_secs(1) || ttl > max {
        return Err(format!(
            "{} s is out of range; a code lives 1 s to {} s (30 days)",
            ttl.as_secs(),
            max.as_secs()
        ));
    }
    Ok(())
}

fn default_ttl_s() -> u64 {
    24 * 3600
}

/// Answer of `POST /v1/admin/enroll-codes`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct EnrollCodeResponse {
    /// The one-time code.
    pub code: String,
    /// Expiry, unix ms.
    pub expires_ms: i64,
}

async fn admin_enroll_code(
    who: Principal,
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EnrollCodeResponse>, ApiError> {
    let req: EnrollCodeRequest = json_body(body)?;
    let ttl = Duration::from_secs(req.ttl_s);
    check_enroll_ttl(ttl).map_err(|e| ApiError::malformed(format!("body.ttl_s: {e}")))?;
    who.require_write(&st, "enrollment codes")?;
    who.store(&st, &req.store_id).await?;
    let (code, expires_ms) = issue_enroll_code(&st.db, &req.store_id, ttl).await?;
    Ok(Json(EnrollCodeResponse { code, expires_ms }))
}

async fn admin_customer(
    _: Admin,
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let customer: NewCustomer = json_body(body)?;
    if st.db.store(customer.store_id.clone()).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "store {:?} does not exist",
            customer.store_id
        )));
    }
    st.db.upsert_customer(customer, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_get_customer(
    admin: Admin,
    State(st): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let t = token_param(&token)?;
    match st.db.customer(t.clone()).await? {
        Some(c) => {
            admin.audit(&st, "read_customer", t.as_str(), "ok");
            Ok(Json(c).into_response())
        }
        None => {
            admin.audit(&st, "read_customer", t.as_str(), "not_found");
            Err(ApiError::not_found("no customer with this card token"))
        }
    }
}

/// Body of `PUT /v1/admin/customers/{card_token}/segment`: a segment, or null to compute it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentRequest {
    /// The segment (`new`, `regular`, `lapsed`, `vip` or one of the operator's own), or `null`
    /// to return the customer to the computed segment.
    #[serde(deserialize_with = "ident::deserialize_opt")]
    #[schemars(schema_with = "ident_or_null", required)]
    pub segment: Option<String>,
}

fn ident_or_null(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let ident = g.subschema_for::<Ident>();
    schemars::json_schema!({ "anyOf": [ident, { "type": "null" }] })
}

/// Answer of `POST /v1/admin/segments/recompute`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RecomputeResponse {
    /// Customers whose computed segment changed.
    pub changed: u64,
}

async fn admin_segment(
    _: Admin,
    State(st): State<AppState>,
    Path(token): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let req: SegmentRequest = json_body(body)?;
    if st
        .db
        .set_segment(token_param(&token)?, req.segment, now_ms())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no customer with this card token"))
    }
}

async fn admin_erase(
    admin: Admin,
    State(st): State<AppState>,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    let t = token_param(&token)?;
    let known = st.db.erase_customer(t.clone(), now_ms()).await?;
    admin.audit(
        &st,
        "erase_customer",
        t.as_str(),
        if known { "ok" } else { "remembered" },
    );
    if !known {
        tracing::info!("erasure of a card token with nothing stored yet: remembered");
    }
    // The erasure is committed; making it physical can only fail for the files' sake (logged):
    // the next checkpoint or autovacuum does it then.
    if let Err(e) = st.db.purge_erased().await {
        tracing::warn!(error = %e, "erased data not purged from the files yet");
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_recompute(
    _: Admin,
    State(st): State<AppState>,
) -> Result<Json<RecomputeResponse>, ApiError> {
    let changed = st.db.recompute_segments(now_ms()).await?;
    Ok(Json(RecomputeResponse { changed }))
}

async fn admin_campaigns(
    _: Principal,
    State(st): State<AppState>,
) -> Result<Json<Vec<Campaign>>, ApiError> {
    Ok(Json(st.db.campaigns().await?))
}

async fn admin_upsert_campaign(
    _: Admin,
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let campaign: Campaign = json_body(body)?;
    crate::campaigns::check(&campaign).map_err(|e| ApiError::malformed(e.to_string()))?;
    st.db.upsert_campaign(campaign, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}
