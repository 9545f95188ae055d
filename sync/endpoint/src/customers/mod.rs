//! The console's customers page at `/dashboard/customers` (issue 21 item 3), HQ admins only
//! (data minimisation, docs/CONSOLE.md "Customers"): search by name, email, phone, card token or
//! a card number typed or tapped on a keyboard-wedge reader; a profile (visits, turns, services,
//! surveys, coupons, segment, consent history with policy version and kiosk); correcting a field;
//! exporting everything stored about one person (GDPR Art. 15/20, JSON and CSV); erasing
//! (Art. 17) with each kiosk's progress; a CSV import with row-level errors, all or nothing.
//!
//! Data flow: page → `/dashboard/api/customers…` → [`Admin`] (403 and a `forbidden` audit line
//! for every other role) → [`crate::db::customers`] → JSON; every read of personal data is
//! audited (`read_customer`, `search_customers`, `export_customer`), every write by the write
//! layer and by its own line (`correct_customer`, `erase_customer`, `import_customers`).

pub mod import;

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kiosk_drivers::card::Uid;
use kiosk_drivers::card::settings::UidFormat;
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::TenantKey;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::accounts::Role;
use crate::db::customers::{
    CustomerCorrection, CustomerHistory, CustomerHit, CustomerSearch, ErasureStatus,
    MIN_NAME_CHARS, StoredEvent,
};
use crate::db::{ConsentRecord, CustomerRecord};
use crate::http::doc::{Security, path_param, query_param, raw_op, schema_ref, text};
use crate::http::{Admin, ApiError, AppState, Principal, Route, Verb, json_body, now_ms, peer_ip};

const PAGE_HTML: &str = include_str!("page.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const HQ_ONLY_HTML: &str = include_str!("../dashboard/hq-only.html");

/// Longest search text.
pub const MAX_QUERY_CHARS: usize = 254;

/// One of the customer's turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnView {
    /// Turn id.
    pub turn_id: String,
    /// Its label (`A-001`).
    pub label: String,
    /// The service queued for.
    pub service: String,
    /// Store.
    pub store_id: String,
    /// The kiosk that issued it.
    pub kiosk_id: String,
    /// Issued, unix ms.
    pub issued_ms: i64,
    /// First called, unix ms.
    pub called_ms: Option<i64>,
    /// Served, unix ms.
    pub served_ms: Option<i64>,
}

/// Turns per service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceCount {
    /// Service.
    pub service: String,
    /// Turns taken for it.
    pub turns: u64,
}

/// A survey answer about one of the customer's turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SurveyView {
    /// The turn rated.
    pub turn_id: Option<String>,
    /// 0 to 10.
    pub score: Option<i64>,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// When, unix ms.
    pub at_ms: i64,
    /// Where it was given (a kiosk id, or the customer's phone).
    pub kiosk_id: String,
}

/// A coupon the customer got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CouponView {
    /// Its code.
    pub code: String,
    /// Campaign.
    pub campaign_id: Option<String>,
    /// A/B variant.
    pub variant: Option<String>,
    /// Issued, unix ms.
    pub issued_ms: i64,
    /// The kiosk that issued it.
    pub kiosk_id: String,
    /// Redeemed, unix ms (absent: not yet).
    pub redeemed_ms: Option<i64>,
}

/// One consent change, with the kiosk it was given at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConsentView {
    /// The change.
    #[serde(flatten)]
    pub consent: ConsentRecord,
    /// The kiosk it was given or withdrawn at (absent: set through the admin API or an import).
    pub kiosk_id: Option<String>,
}

/// The profile page's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerProfile {
    /// The stored profile.
    pub customer: CustomerRecord,
    /// Consent history, oldest first, with kiosks.
    pub consents: Vec<ConsentView>,
    /// Turns, newest first.
    pub turns: Vec<TurnView>,
    /// Turns per service, most first.
    pub services: Vec<ServiceCount>,
    /// Survey answers, newest first.
    pub surveys: Vec<SurveyView>,
    /// Coupons, newest first.
    pub coupons: Vec<CouponView>,
}

/// Answer of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchResult {
    /// What the text was read as (`card token`, `card number`, `email`, `phone`, `name`).
    pub searched: Vec<String>,
    /// The customers found (at most 50).
    pub customers: Vec<CustomerHit>,
}

/// Body of `PUT /dashboard/api/customers/{card_token}`: the fields to correct; absent fields
/// stay as they are, `null` removes an email or phone.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub struct CorrectionRequest {
    /// Name.
    #[serde(default, deserialize_with = "some_name")]
    #[schemars(with = "crate::input::Name")]
    pub display_name: Option<String>,
    /// Email, or `null` to remove it.
    #[serde(default, deserialize_with = "some_email")]
    #[schemars(with = "Option<crate::input::Email>")]
    pub email: Option<Option<String>>,
    /// Phone, or `null` to remove it.
    #[serde(default, deserialize_with = "some_phone")]
    #[schemars(with = "Option<crate::input::Phone>")]
    pub phone: Option<Option<String>>,
    /// Locale.
    #[serde(default, deserialize_with = "some_locale")]
    #[schemars(with = "crate::input::Locale")]
    pub locale: Option<String>,
}

fn some_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    crate::input::name(d).map(Some)
}

fn some_email<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    crate::input::email(d).map(Some)
}

fn some_phone<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    crate::input::phone(d).map(Some)
}

fn some_locale<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    crate::input::locale(d).map(Some)
}

/// Answer of a good import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImportDone {
    /// Customers created or updated.
    pub imported: u64,
}

/// Answer of a refused import (400): nothing was imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImportRefused {
    /// `malformed`.
    pub error: String,
    /// What to do.
    pub message: String,
    /// Every refused row (none when the file or the query could not be read).
    pub rows: Vec<import::RowError>,
}

/// The customers page's routes; every one but the page and its assets is HQ admins'.
pub fn routes() -> Vec<Route> {
    let err = json!({ "description": "error; see ErrorBody.error", "content": { "application/json": { "schema": schema_ref("ErrorBody") } } });
    let ok = |desc: &str, schema: &str| json!({ "description": desc, "content": { "application/json": { "schema": schema_ref(schema) } } });
    let token = || path_param("card_token", "CardToken");
    let errs = |mut v: Value| {
        for c in ["400", "403", "404", "429", "503"] {
            v[c] = err.clone();
        }
        v
    };
    let with = |mut op: Value, params: Value| {
        op["parameters"] = params;
        op
    };
    let mut routes = vec![
        Route::new(
            Verb::Get,
            "/dashboard/customers",
            page,
            raw_op(
                "the customers page (HQ admins; another role's session gets a page saying who may see it)",
                Security::None,
                json!({ "200": text("text/html", "the page"),
                        "303": { "description": "no session: to the login" },
                        "403": text("text/html", "a session of another role than hq-admin") }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/customers",
            search,
            with(
                raw_op(
                    "search customers by name (part, 2+ characters), email (whole), phone (digits), card token, or a card number as a reader types it (HQ admins; audited)",
                    Security::Admin,
                    errs(json!({ "200": ok("the customers found (at most 50)", "SearchResult") })),
                ),
                json!([query_param(
                    "q",
                    true,
                    json!({ "type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS }),
                    "what to look for"
                )]),
            ),
        ),
        Route::new(
            Verb::Post,
            "/dashboard/api/customers/import",
            import_csv,
            with(
                json!({
                    "summary": "import customers from CSV (columns in docs/CONSOLE.md), card numbers tokenized with the tenant key; every row checked first, all or nothing (HQ admins)",
                    "security": [{ "adminToken": [] }, { "dashboardSession": [] }],
                    "requestBody": { "required": true, "content": { "text/csv": { "schema": { "type": "string" } } } },
                    "responses": {
                        "200": ok("imported", "ImportDone"),
                        "400": ok("refused, nothing imported: every bad row, or why the file or query cannot be read (no row)", "ImportRefused"),
                        "403": err.clone(), "429": err.clone(), "503": err.clone()
                    }
                }),
                json!([query_param(
                    "format",
                    false,
                    json!({ "type": "string", "enum": ["hex", "decimal"], "default": "hex" }),
                    "how card_number is written when a row has no card_format"
                )]),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/customers/{card_token}",
            profile,
            with(
                raw_op(
                    "a customer's profile: visits, turns, services, surveys, coupons, segment, consent history with policy versions and kiosks (HQ admins; audited)",
                    Security::Admin,
                    errs(json!({ "200": ok("the profile", "CustomerProfile") })),
                ),
                json!([token()]),
            ),
        ),
        Route::new(
            Verb::Put,
            "/dashboard/api/customers/{card_token}",
            correct,
            with(
                json!({
                    "summary": "correct a customer's name, email, phone or locale; the kiosks get the profile with their next feed poll (HQ admins; audited)",
                    "security": [{ "adminToken": [] }, { "dashboardSession": [] }],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": schema_ref("CorrectionRequest") } } },
                    "responses": errs(json!({ "200": ok("the profile after the correction", "CustomerProfile") }))
                }),
                json!([token()]),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/customers/{card_token}/export",
            export,
            with(
                raw_op(
                    "everything stored about one customer (GDPR Art. 15 and 20) as a JSON or CSV attachment (HQ admins; audited)",
                    Security::Admin,
                    errs(json!({ "200": { "description": "the export", "content": {
                        "application/json": { "schema": schema_ref("CustomerExport") },
                        "text/csv": { "schema": { "type": "string" } } } } })),
                ),
                json!([
                    token(),
                    query_param(
                        "format",
                        false,
                        json!({ "type": "string", "enum": ["json", "csv"], "default": "json" }),
                        "the file's format"
                    )
                ]),
            ),
        ),
        Route::new(
            Verb::Post,
            "/dashboard/api/customers/{card_token}/erase",
            erase,
            with(
                raw_op(
                    "erase a customer (GDPR Art. 17): personal data deleted or redacted, an erasure sent to every kiosk; answers each kiosk's progress (HQ admins; audited)",
                    Security::Admin,
                    errs(json!({ "200": ok("erased; each kiosk's progress", "ErasureStatus") })),
                ),
                json!([token()]),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/customers/{card_token}/erasure",
            erasure,
            with(
                raw_op(
                    "how far a customer's erasure has reached: per kiosk, applied (it polled its feed past the erasure), pending or unknown (HQ admins)",
                    Security::Admin,
                    errs(json!({ "200": ok("each kiosk's progress", "ErasureStatus") })),
                ),
                json!([token()]),
            ),
        ),
    ];
    routes.extend(crate::http::page::script_and_style(
        "customers page",
        ("/dashboard/customers/app.js", APP_JS),
        ("/dashboard/customers/app.css", APP_CSS),
    ));
    crate::http::page::console_routes(routes)
}

/// Adds the schemas the customers page's paths refer to.
pub fn register_schemas(g: &mut schemars::SchemaGenerator) {
    g.subschema_for::<SearchResult>();
    g.subschema_for::<CustomerProfile>();
    g.subschema_for::<CorrectionRequest>();
    g.subschema_for::<ErasureStatus>();
    g.subschema_for::<ImportDone>();
    g.subschema_for::<ImportRefused>();
    g.subschema_for::<CustomerExport>();
}

/// The JSON export's shape (documentation only: [`export_json`] writes it).
#[derive(Debug, Serialize, JsonSchema)]
pub struct CustomerExport {
    /// When, RFC 3339.
    pub exported_at: String,
    /// What the file is.
    pub about: String,
    /// The stored profile.
    pub profile: CustomerRecord,
    /// Consent history with kiosks.
    pub consents: Vec<ConsentView>,
    /// Turns, newest first.
    pub turns: Vec<TurnView>,
    /// Turns per service.
    pub services: Vec<ServiceCount>,
    /// Survey answers.
    pub surveys: Vec<SurveyView>,
    /// Coupons.
    pub coupons: Vec<CouponView>,
    /// Every stored event naming the card token, as stored.
    pub events: Vec<StoredEvent>,
    /// When the card token was last erased (a registration arriving later is stored redacted).
    pub erased_at: Option<String>,
}

async fn page(State(st): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let ip = peer_ip(&parts.extensions);
    let html = |status: StatusCode, body: &'static str| {
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response()
    };
    match Principal::of(&st, &parts.headers, ip).await {
        Some(p) if p.expires_s().is_some() && p.role() == Role::HqAdmin => {
            html(StatusCode::OK, PAGE_HTML)
        }
        Some(p) if p.expires_s().is_some() => {
            p.audit(&st, "forbidden", parts.uri.path(), "refused");
            html(StatusCode::FORBIDDEN, HQ_ONLY_HTML)
        }
        _ => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, HeaderValue::from_static("/dashboard"))],
        )
            .into_response(),
    }
}

fn token_param(s: &str) -> Result<CardToken, ApiError> {
    s.parse()
        .map_err(|e| ApiError::malformed(format!("card_token: {e}")))
}

/// What a search text is read as: a card token (32 hex digits), a card number as a reader types
/// it (hex and, for digits only, decimal too), an email (has `@`), phone digits (6 or more digits
/// among phone punctuation), a name (2 or more characters with a letter, no digit, no `@`).
/// Several readings are searched together.
pub fn reading(q: &str, key: &TenantKey) -> (CustomerSearch, Vec<String>) {
    let q = q.trim();
    let mut s = CustomerSearch::default();
    let mut what = Vec::new();
    if let Ok(t) = q.to_ascii_lowercase().parse::<CardToken>() {
        s.tokens.push(t);
        what.push("card token".to_owned());
    }
    let mut number = false;
    for format in [UidFormat::Hex, UidFormat::Decimal] {
        if let Ok(uid) = Uid::parse(q, format) {
            s.tokens.push(uid.token(key));
            number = true;
        }
    }
    if number {
        what.push("card number".to_owned());
    }
    if q.contains('@') {
        s.email = Some(q.to_owned());
        what.push("email".to_owned());
    }
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 6
        && q.chars()
            .all(|c| c.is_ascii_digit() || "+() .-".contains(c))
    {
        s.phone_digits = Some(digits);
        what.push("phone".to_owned());
    }
    if q.chars().count() >= MIN_NAME_CHARS
        && q.chars().any(char::is_alphabetic)
        && !q.chars().any(|c| c.is_ascii_digit() || c == '@')
    {
        s.name = Some(q.to_owned());
        what.push("name".to_owned());
    }
    (s, what)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: String,
}

async fn search(
    admin: Admin,
    State(st): State<AppState>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<SearchResult>, ApiError> {
    let Query(SearchQuery { q }) =
        query.map_err(|e| ApiError::malformed(format!("search needs ?q=TEXT: {e}")))?;
    let n = q.chars().count();
    if n == 0 || n > MAX_QUERY_CHARS {
        return Err(ApiError::malformed(format!(
            "q: type 1 to {MAX_QUERY_CHARS} characters"
        )));
    }
    let key = st.db.tenant_key().await?;
    let (s, searched) = reading(&q, &key);
    let customers = if searched.is_empty() {
        Vec::new()
    } else {
        st.db.search_customers(s).await?
    };
    // Which customers a search showed, never the text searched (it may be an email or a card).
    admin.audit(
        &st,
        "search_customers",
        &format!("{} found", customers.len()),
        "ok",
    );
    Ok(Json(SearchResult {
        searched,
        customers,
    }))
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// The profile from the stored rows.
pub fn assemble(
    customer: CustomerRecord,
    history: &CustomerHistory,
    consent_kiosks: &[crate::db::customers::ConsentKiosk],
) -> CustomerProfile {
    let mut turns = Vec::new();
    let mut services: BTreeMap<String, u64> = BTreeMap::new();
    let mut surveys = Vec::new();
    let mut seen_surveys = BTreeSet::new();
    let mut coupons = Vec::new();
    let survey_view = |ev: &StoredEvent| {
        let p = &ev.envelope["payload"];
        SurveyView {
            turn_id: text_of(&p["turn_id"]),
            score: p["score"].as_i64(),
            reason: text_of(&p["reason"]),
            at_ms: ev.at_ms,
            kiosk_id: ev.kiosk_id.clone(),
        }
    };
    for ev in &history.events {
        let p = &ev.envelope["payload"];
        match ev.event_type.as_str() {
            "ticket_issued" => {
                let turn_id = text_of(&p["turn_id"]).unwrap_or_default();
                let service = text_of(&p["service"]).unwrap_or_default();
                *services.entry(service.clone()).or_default() += 1;
                let facts = history.turns.get(&turn_id).cloned().unwrap_or_default();
                if let Some(s) = &facts.survey
                    && seen_surveys.insert(s.id.clone())
                {
                    surveys.push(survey_view(s));
                }
                turns.push(TurnView {
                    label: text_of(&p["turn"]).unwrap_or_default(),
                    turn_id,
                    service,
                    store_id: ev.store_id.clone(),
                    kiosk_id: ev.kiosk_id.clone(),
                    issued_ms: ev.at_ms,
                    called_ms: facts.called_ms,
                    served_ms: facts.served_ms,
                });
            }
            "survey_answered" if seen_surveys.insert(ev.id.clone()) => {
                surveys.push(survey_view(ev));
            }
            "coupon_issued" => {
                let code = text_of(&p["coupon_code"]).unwrap_or_default();
                coupons.push(CouponView {
                    redeemed_ms: history.redemptions.get(&code).map(|r| r.0),
                    code,
                    campaign_id: text_of(&p["campaign_id"]),
                    variant: text_of(&p["variant"]),
                    issued_ms: ev.at_ms,
                    kiosk_id: ev.kiosk_id.clone(),
                });
            }
            _ => {}
        }
    }
    turns.reverse();
    surveys.sort_by_key(|s| std::cmp::Reverse(s.at_ms));
    coupons.reverse();
    let mut services: Vec<ServiceCount> = services
        .into_iter()
        .map(|(service, turns)| ServiceCount { service, turns })
        .collect();
    services.sort_by(|a, b| b.turns.cmp(&a.turns).then(a.service.cmp(&b.service)));
    let consents = customer
        .consents
        .iter()
        .enumerate()
        .map(|(i, c)| ConsentView {
            consent: c.clone(),
            kiosk_id: consent_kiosks
                .get(i)
                .filter(|(p, at, _)| *p == c.purpose && *at == c.at_ms)
                .and_then(|(_, _, k)| k.clone()),
        })
        .collect();
    CustomerProfile {
        customer,
        consents,
        turns,
        services,
        surveys,
        coupons,
    }
}

async fn load(
    st: &AppState,
    t: &CardToken,
) -> Result<Option<(CustomerProfile, CustomerHistory)>, ApiError> {
    let Some(c) = st.db.customer(t.clone()).await? else {
        return Ok(None);
    };
    let history = st.db.customer_history(t.clone()).await?;
    let kiosks = st.db.consent_kiosks(t.clone()).await?;
    Ok(Some((assemble(c, &history, &kiosks), history)))
}

async fn profile(
    admin: Admin,
    State(st): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<CustomerProfile>, ApiError> {
    let t = token_param(&token)?;
    match load(&st, &t).await? {
        Some((p, _)) => {
            admin.audit(&st, "read_customer", t.as_str(), "ok");
            Ok(Json(p))
        }
        None => {
            admin.audit(&st, "read_customer", t.as_str(), "not_found");
            Err(ApiError::not_found("no customer with this card token"))
        }
    }
}

async fn correct(
    admin: Admin,
    State(st): State<AppState>,
    Path(token): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CustomerProfile>, ApiError> {
    let t = token_param(&token)?;
    let req: CorrectionRequest = json_body(body)?;
    let fields: Vec<&str> = [
        ("display_name", req.display_name.is_some()),
        ("email", req.email.is_some()),
        ("phone", req.phone.is_some()),
        ("locale", req.locale.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect();
    if fields.is_empty() {
        return Err(ApiError::malformed(
            "body: name a field to correct (display_name, email, phone, locale)",
        ));
    }
    let known = st
        .db
        .correct_customer(
            t.clone(),
            CustomerCorrection {
                display_name: req.display_name,
                email: req.email,
                phone: req.phone,
                locale: req.locale,
            },
            now_ms(),
        )
        .await?;
    if !known {
        return Err(ApiError::not_found("no customer with this card token"));
    }
    // The fields corrected, never their values.
    admin.audit(
        &st,
        "correct_customer",
        &format!("{} ({})", t.as_str(), fields.join(", ")),
        "ok",
    );
    match load(&st, &t).await? {
        Some((p, _)) => Ok(Json(p)),
        None => Err(ApiError::not_found("no customer with this card token")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
}

fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Everything stored about one customer as JSON: the profile, what the page derives from it,
/// every stored event naming the card token (as stored), and any erasure.
pub fn export_json(p: &CustomerProfile, h: &CustomerHistory, now_ms: i64) -> Value {
    json!({
        "exported_at": iso(now_ms),
        "about": "everything the CRM endpoint stores about this card token (GDPR Art. 15 and 20)",
        "profile": p.customer,
        "consents": p.consents,
        "turns": p.turns,
        "services": p.services,
        "surveys": p.surveys,
        "coupons": p.coupons,
        "events": h.events,
        "erased_at": h.erased_ms.map(iso),
    })
}

/// The same as CSV: one row per fact, `section, at_utc, store_id, kiosk_id, item, value`.
pub fn export_csv(p: &CustomerProfile, h: &CustomerHistory) -> String {
    use crate::reports::csv::{BOM, field};
    let mut out = String::from(BOM);
    let mut row = |cells: [&str; 6]| {
        // An empty cell alone would be quoted (`""`): write it empty.
        let line: Vec<String> = cells
            .iter()
            .map(|c| {
                if c.is_empty() {
                    String::new()
                } else {
                    field(c, true)
                }
            })
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    };
    row(["section", "at_utc", "store_id", "kiosk_id", "item", "value"]);
    let c = &p.customer;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    for (item, value) in [
        ("card_token", c.card_token.to_string()),
        ("display_name", opt(&c.display_name)),
        ("email", opt(&c.email)),
        ("phone", opt(&c.phone)),
        ("locale", opt(&c.locale)),
        ("segment", c.segment.clone()),
        ("segment_manual", c.segment_manual.to_string()),
        ("visits", c.visits.to_string()),
        ("last_visit", c.last_visit_ms.map(iso).unwrap_or_default()),
        ("stores", c.stores.join(" ")),
    ] {
        row(["profile", "", "", "", item, &value]);
    }
    for cv in &p.consents {
        let k = &cv.consent;
        let value = format!(
            "{} (policy {}, sha256 {})",
            if k.given { "given" } else { "withdrawn" },
            k.policy_version,
            k.policy_sha256
        );
        row([
            "consent",
            &iso(k.at_ms),
            "",
            cv.kiosk_id.as_deref().unwrap_or(""),
            &k.purpose,
            &value,
        ]);
    }
    for t in &p.turns {
        let value = format!(
            "{} {}; called {}; served {}",
            t.label,
            t.service,
            t.called_ms.map(iso).unwrap_or_else(|| "never".into()),
            t.served_ms.map(iso).unwrap_or_else(|| "never".into())
        );
        row([
            "turn",
            &iso(t.issued_ms),
            &t.store_id,
            &t.kiosk_id,
            &t.turn_id,
            &value,
        ]);
    }
    for s in &p.surveys {
        let value = format!(
            "score {}{}",
            s.score.map(|n| n.to_string()).unwrap_or_default(),
            s.reason
                .as_deref()
                .map(|r| format!("; {r}"))
                .unwrap_or_default()
        );
        row([
            "survey",
            &iso(s.at_ms),
            "",
            &s.kiosk_id,
            s.turn_id.as_deref().unwrap_or(""),
            &value,
        ]);
    }
    for cp in &p.coupons {
        let value = format!(
            "campaign {} variant {}; {}",
            opt(&cp.campaign_id),
            opt(&cp.variant),
            cp.redeemed_ms
                .map(|r| format!("redeemed {}", iso(r)))
                .unwrap_or_else(|| "not redeemed".into())
        );
        row([
            "coupon",
            &iso(cp.issued_ms),
            "",
            &cp.kiosk_id,
            &cp.code,
            &value,
        ]);
    }
    for ev in &h.events {
        let payload = ev.envelope["payload"].to_string();
        row([
            "event",
            &iso(ev.at_ms),
            &ev.store_id,
            &ev.kiosk_id,
            &ev.event_type,
            &payload,
        ]);
    }
    out
}

async fn export(
    admin: Admin,
    State(st): State<AppState>,
    Path(token): Path<String>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let t = token_param(&token)?;
    let Query(q) = query.map_err(|e| ApiError::malformed(format!("export query: {e}")))?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::malformed(format!(
                "format: {other:?} is not json or csv"
            )));
        }
    };
    let Some((p, h)) = load(&st, &t).await? else {
        admin.audit(&st, "export_customer", t.as_str(), "not_found");
        return Err(ApiError::not_found("no customer with this card token"));
    };
    admin.audit(
        &st,
        "export_customer",
        t.as_str(),
        if csv { "ok csv" } else { "ok json" },
    );
    let (content_type, ext, body) = if csv {
        ("text/csv; charset=utf-8", "csv", export_csv(&p, &h))
    } else {
        (
            "application/json",
            "json",
            serde_json::to_string_pretty(&export_json(&p, &h, now_ms()))
                .map_err(|e| ApiError::from(crate::db::DbError::from(e)))?,
        )
    };
    let name = format!(
        "attachment; filename=\"customer-{}.{ext}\"",
        &t.as_str()[..8]
    );
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response())
}

async fn erase(
    admin: Admin,
    State(st): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<ErasureStatus>, ApiError> {
    let t = token_param(&token)?;
    let known = st.db.erase_customer(t.clone(), now_ms()).await?;
    admin.audit(
        &st,
        "erase_customer",
        t.as_str(),
        if known { "ok" } else { "remembered" },
    );
    if let Err(e) = st.db.purge_erased().await {
        tracing::warn!(error = %e, "erased data not purged from the files yet");
    }
    st.db
        .erasure_status(t)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::from(crate::db::DbError::Internal("erasure not recorded")))
}

async fn erasure(
    _: Admin,
    State(st): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<ErasureStatus>, ApiError> {
    let t = token_param(&token)?;
    st.db
        .erasure_status(t)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("this card token was never erased"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn import_csv(
    admin: Admin,
    State(st): State<AppState>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Every refusal is an ImportRefused (the whole file's problems have no row).
    let Ok(Query(q)) = query else {
        return Ok(refused(
            "import query: format is hex or decimal".into(),
            vec![],
        ));
    };
    let format = match q.format.as_deref() {
        None | Some("hex") => UidFormat::Hex,
        Some("decimal") => UidFormat::Decimal,
        Some(other) => {
            return Ok(refused(
                format!("format: {other:?} is not hex or decimal"),
                vec![],
            ));
        }
    };
    let Ok(body) = body else {
        return Ok(refused("could not read the file".into(), vec![]));
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return Ok(refused(
            "the file is not UTF-8 text; save it as CSV UTF-8".into(),
            vec![],
        ));
    };
    let key = st.db.tenant_key().await?;
    let stores: BTreeSet<String> = st
        .db
        .list_stores()
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    match import::parse(text, format, &key, &stores) {
        Ok(customers) => {
            let n = st.db.import_customers(customers, now_ms()).await?;
            admin.audit(&st, "import_customers", &format!("{n} customers"), "ok");
            Ok(Json(ImportDone { imported: n }).into_response())
        }
        Err(rows) => {
            admin.audit(
                &st,
                "import_customers",
                &format!("{} bad rows", rows.len()),
                "refused",
            );
            Ok(refused(
                format!(
                    "{} row(s) refused; nothing was imported: correct them and import the whole file again",
                    rows.len()
                ),
                rows,
            ))
        }
    }
}

/// A refused import (400): `message`, and the refused rows if the file could be read.
fn refused(message: String, rows: Vec<import::RowError>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(ImportRefused {
            error: "malformed".into(),
            message,
            rows,
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_text_is_read_as_everything_it_can_be() {
        let key = TenantKey::from_bytes([1; 32]);
        let (s, what) = reading("ana@example.com", &key);
        assert_eq!(what, ["email"]);
        assert_eq!(s.email.as_deref(), Some("ana@example.com"));
        let (s, what) = reading("+34 612 345 678", &key);
        assert_eq!(what, ["phone"]);
        assert_eq!(s.phone_digits.as_deref(), Some("34612345678"));
        let (_, what) = reading("Ana", &key);
        assert_eq!(what, ["name"]);
        let (s, what) = reading("04:A1:B2:C3", &key);
        assert_eq!(what, ["card number"]);
        assert_eq!(s.tokens, [key.card_token(&[4, 0xa1, 0xb2, 0xc3])]);
        // Digits only: a hex or a decimal card number, or a phone.
        let (s, what) = reading("12345678", &key);
        assert_eq!(what, ["card number", "phone"]);
        assert_eq!(s.tokens.len(), 2);
        let token = key.card_token(&[1]).to_string();
        let (s, what) = reading(&token, &key);
        assert_eq!(what[0], "card token");
        assert_eq!(s.tokens[0].to_string(), token);
    }
}
