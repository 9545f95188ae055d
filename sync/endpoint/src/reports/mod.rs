//! The managers' reports at `/dashboard/reports` (issue 21 item 4): a form (dates, period,
//! grouping, store or region) answered by a page of tables rendered on the server (no script),
//! each table downloadable as CSV (`/dashboard/reports.csv?table=...`), and a printable view
//! (`view=print`: no navigation, no form; print CSS keeps rows whole and repeats headers).
//!
//! Data flow: form (GET) → [`Params::resolve`] → [`crate::db::report::ReportQuery`] of the stores
//! [`visible_stores`] allows → database → [`crate::db::report::Report`] → HTML or CSV.
//!
//! Access is the dashboard's: the page wants a session (the login form otherwise), the CSV a
//! session or the admin token, as the dashboard's JSON routes.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use kiosk_protocol::wire::ErrorCode;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::db::dashboard::Durations;
use crate::db::report::{
    CampaignRow, Grouping, MAX_DAYS, NO_REGION, NpsRow, Period, QueueRow, Report, ReportQuery,
    StorePlace,
};
use crate::http::auth::Principal;
use crate::http::doc::{Security, error_answer, query_param, raw_op, text};
use crate::http::{ApiError, AppState, Route, Verb, peer_ip};
use crate::ingest::unix_ms;

pub mod csv;

const REPORTS_CSS: &str = include_str!("reports.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The days a report covers when the form does not say: the last seven, today included.
pub const DEFAULT_DAYS: i32 = 7;

/// The stores `who` may see in reports: those of its scope (every store, its region's or its
/// one store; docs/CONSOLE.md "Accounts and roles"). The one place reports are scoped: the page,
/// the CSV and both forms' store and region lists go through it.
pub async fn visible_stores(st: &AppState, who: &Principal) -> Result<Vec<StorePlace>, ApiError> {
    let scope = who.scope();
    let mut stores = st.db.store_places().await?;
    stores.retain(|s| scope.allows(&s.id, s.region.as_deref()));
    Ok(stores)
}

/// The report form's fields, as sent (every field optional: the defaults fill in).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Params {
    /// First day, `YYYY-MM-DD` (default: six days before `to`).
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today, UTC).
    #[serde(default)]
    pub to: Option<String>,
    /// `day` (default), `week`, `month` or `range`.
    #[serde(default)]
    pub period: Option<String>,
    /// `store` (default), `region`, `service`, `counter` or `staff`.
    #[serde(default)]
    pub group: Option<String>,
    /// One store's id (empty: all).
    #[serde(default)]
    pub store: Option<String>,
    /// One region's code (empty: all; `(none)`: the stores without one).
    #[serde(default)]
    pub region: Option<String>,
    /// `print` for the printable view.
    #[serde(default)]
    pub view: Option<String>,
    /// CSV only: `queue`, `nps` or `campaigns`.
    #[serde(default)]
    pub table: Option<String>,
}

/// A form resolved: what to ask the database and how the form shows it again.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The query.
    pub query: ReportQuery,
    /// The store filter (`""`: all).
    pub store: String,
    /// The region filter (`""`: all).
    pub region: String,
}

/// A form field's value, trimmed; `None` when absent or blank.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn parse_date(field: &str, value: &str) -> Result<Date, String> {
    value.trim().parse::<Date>().map_err(|_| {
        format!(
            "{field}: {:?} is not a date; enter it as YYYY-MM-DD",
            value.chars().take(40).collect::<String>()
        )
    })
}

fn period_of(v: Option<&str>) -> Result<Period, String> {
    Ok(match v.unwrap_or("day") {
        "day" => Period::Day,
        "week" => Period::Week,
        "month" => Period::Month,
        "range" => Period::Range,
        other => {
            return Err(format!(
                "Period: {:?} is not one of day, week, month, range.",
                other.chars().take(40).collect::<String>()
            ));
        }
    })
}

fn grouping_of(v: Option<&str>) -> Result<Grouping, String> {
    Ok(match v.unwrap_or("store") {
        "store" => Grouping::Store,
        "region" => Grouping::Region,
        "service" => Grouping::Service,
        "counter" => Grouping::Counter,
        "staff" => Grouping::Staff,
        other => {
            return Err(format!(
                "Group by: {:?} is not one of store, region, service, counter, staff.",
                other.chars().take(40).collect::<String>()
            ));
        }
    })
}

impl Params {
    /// Whether the fields have the documented shape (dates, the period, grouping and view
    /// among theirs), whoever asks; what is wrong, in words.
    pub fn check_shape(&self) -> Result<(), String> {
        for (field, v) in [("From", &self.from), ("To", &self.to)] {
            if let Some(v) = given(v) {
                parse_date(field, v)?;
            }
        }
        period_of(given(&self.period))?;
        grouping_of(given(&self.group))?;
        match given(&self.view) {
            None | Some("print") => Ok(()),
            Some(other) => Err(format!(
                "View: {:?} is not print (or empty).",
                other.chars().take(40).collect::<String>()
            )),
        }
    }

    /// The query these fields ask for among `visible` stores, or what is wrong: 400 with a
    /// form that cannot be answered (dates out of order, a range too long), 404 with a store or
    /// region that is not among `visible`.
    pub fn resolve(
        &self,
        visible: &[StorePlace],
        now_ms: i64,
    ) -> Result<Resolved, (StatusCode, String)> {
        self.check_shape()
            .map_err(|m| (StatusCode::BAD_REQUEST, m))?;
        let bad = |m: String| (StatusCode::BAD_REQUEST, m);
        let today = jiff::Timestamp::from_millisecond(now_ms)
            .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
            .map_err(|e| bad(format!("the server's clock: {e}")))?;
        let to = match given(&self.to) {
            Some(v) => parse_date("To", v).map_err(bad)?,
            None => today,
        };
        let from = match given(&self.from) {
            Some(v) => parse_date("From", v).map_err(bad)?,
            None => to
                .checked_sub(jiff::Span::new().days(DEFAULT_DAYS - 1))
                .map_err(|e| bad(format!("From: {e}")))?,
        };
        if from > to {
            return Err(bad(format!(
                "From ({from}) is after To ({to}): pick a first day on or before the last."
            )));
        }
        let days = to
            .since((jiff::Unit::Day, from))
            .map(|s| s.get_days() + 1)
            .map_err(|e| bad(format!("the range: {e}")))?;
        if days > MAX_DAYS {
            return Err(bad(format!(
                "A report covers at most {MAX_DAYS} days; {from} to {to} is {days}."
            )));
        }
        let period = period_of(given(&self.period)).map_err(bad)?;
        let grouping = grouping_of(given(&self.group)).map_err(bad)?;
        let store = given(&self.store).unwrap_or("").to_owned();
        let region = given(&self.region).unwrap_or("").to_owned();
        if !store.is_empty() && !visible.iter().any(|p| p.id == store) {
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "Store: there is no store {:?} among yours.",
                    store.chars().take(40).collect::<String>()
                ),
            ));
        }
        let region_of = |p: &StorePlace| p.region.as_deref().unwrap_or(NO_REGION).to_owned();
        if !region.is_empty() && !visible.iter().any(|p| region_of(p) == region) {
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "Region: there is no region {:?} among your stores.",
                    region.chars().take(40).collect::<String>()
                ),
            ));
        }
        let stores = visible
            .iter()
            .filter(|p| store.is_empty() || p.id == store)
            .filter(|p| region.is_empty() || region_of(p) == region)
            .map(|p| p.id.clone())
            .collect();
        Ok(Resolved {
            query: ReportQuery {
                from,
                to,
                period,
                grouping,
                stores,
                now_ms,
            },
            store,
            region,
        })
    }
}

/// The reports' routes.
pub fn routes() -> Vec<Route> {
    let params = || {
        json!([
            query_param(
                "from",
                false,
                json!({ "anyOf": [{ "type": "string", "format": "date" }, { "const": "" }] }),
                "first local day (empty or absent: six days before `to`)"
            ),
            query_param(
                "to",
                false,
                json!({ "anyOf": [{ "type": "string", "format": "date" }, { "const": "" }] }),
                "last local day, inclusive (empty or absent: today, UTC); at most 366 days after `from`"
            ),
            query_param(
                "period",
                false,
                json!({ "type": "string", "enum": ["", "day", "week", "month", "range"], "default": "day" }),
                "rows per local day, ISO week, month, or the whole range (empty: day)"
            ),
            query_param(
                "group",
                false,
                json!({ "type": "string", "enum": ["", "store", "region", "service", "counter", "staff"], "default": "store" }),
                "rows per store, region, service, counter or staff member (empty: store)"
            ),
            query_param(
                "store",
                false,
                json!({ "type": "string" }),
                "only this store (empty: all)"
            ),
            query_param(
                "region",
                false,
                json!({ "type": "string" }),
                "only the stores of this region (empty: all; `(none)`: stores without a region)"
            ),
        ])
    };
    let mut page_doc = raw_op(
        "the managers' reports (HTML): a form (dates, period, grouping, store or region) and the tables it asks for: tickets, waits and service times (median, p90), no-shows and walkouts; NPS; campaign exposures, conversions and rate. The login form without a session",
        Security::None,
        json!({ "200": text("text/html", "the report, or the login form"),
                "400": text("text/html", "the form with what is wrong in it (dates out of order, more than 366 days, a field of the wrong shape)"),
                "404": text("text/html", "the form, saying the store or region is not among the user's"),
                "403": text("text/html", "no admin token configured") }),
    );
    let mut page_params = params();
    if let Some(list) = page_params.as_array_mut() {
        list.push(query_param(
            "view",
            false,
            json!({ "type": "string", "enum": ["", "print"] }),
            "`print`: the printable view (no navigation, no form)",
        ));
    }
    page_doc["parameters"] = page_params;
    let err = error_answer();
    let mut csv_doc = raw_op(
        "one table of a report as CSV (RFC 4180, UTF-8 with a byte order mark, a header row; text cells starting with = + - @ are prefixed with ' so that a spreadsheet never runs them)",
        Security::Dashboard,
        json!({ "200": text("text/csv", "the table"),
                "400": err, "403": err, "404": err, "429": err, "503": err }),
    );
    let mut csv_params = params();
    if let Some(list) = csv_params.as_array_mut() {
        list.push(query_param(
            "table",
            true,
            json!({ "type": "string", "enum": ["queue", "nps", "campaigns"] }),
            "the table",
        ));
    }
    csv_doc["parameters"] = csv_params;
    let routes = vec![
        Route::new(Verb::Get, "/dashboard/reports", page, page_doc),
        Route::new(Verb::Get, "/dashboard/reports.csv", download, csv_doc),
        Route::new(
            Verb::Get,
            "/dashboard/reports.css",
            || async { crate::http::page::asset("text/css", REPORTS_CSS) },
            raw_op(
                "the reports' style (screen and print)",
                Security::None,
                json!({ "200": text("text/css", "style") }),
            ),
        ),
    ];
    routes
        .into_iter()
        .map(|r| {
            r.map(|h| h.layer::<_, std::convert::Infallible>(middleware::from_fn(security_headers)))
        })
        .collect()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    crate::http::page::secure(&mut resp, CSP);
    resp
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// `s` safe in HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn now() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

async fn page(
    State(st): State<AppState>,
    query: Result<Query<Params>, QueryRejection>,
    req: Request,
) -> Response {
    let (headers, ip) = (req.headers(), peer_ip(req.extensions()));
    let user = Principal::of(&st, headers, ip)
        .await
        .filter(|p| p.expires_s().is_some());
    // A query of the wrong shape is refused whoever sends it; the form comes back with it only
    // to a session.
    let shape = match &query {
        Ok(Query(p)) => p.check_shape(),
        Err(e) => Err(format!(
            "The report's address is malformed: {}",
            e.body_text()
        )),
    };
    let Some(user) = user else {
        return match shape {
            Ok(()) => crate::dashboard::login_form(&st, StatusCode::OK, "").await,
            Err(problem) => {
                crate::dashboard::login_form(&st, StatusCode::BAD_REQUEST, &problem).await
            }
        };
    };
    let visible = match visible_stores(&st, &user).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let params = match query {
        Ok(Query(p)) => p,
        Err(_) => Params::default(),
    };
    if let Err(problem) = shape {
        return html(
            StatusCode::BAD_REQUEST,
            render_page(&visible, &params, None, Some(&problem)),
        );
    }
    let resolved = match params.resolve(&visible, now()) {
        Ok(r) => r,
        Err((status, problem)) => {
            return html(status, render_page(&visible, &params, None, Some(&problem)));
        }
    };
    match st.db.report(resolved.query.clone()).await {
        Ok(report) => html(
            StatusCode::OK,
            render_page(&visible, &params, Some((&resolved, &report)), None),
        ),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn download(
    user: Principal,
    State(st): State<AppState>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Malformed,
            format!("report query: {e}"),
        )
    })?;
    let visible = visible_stores(&st, &user).await?;
    let table = match params.table.as_deref() {
        Some(t @ ("queue" | "nps" | "campaigns")) => t,
        _ => {
            return Err(ApiError::malformed(
                "table: ask for table=queue, table=nps or table=campaigns",
            ));
        }
    };
    let resolved = params.resolve(&visible, now()).map_err(|(status, m)| {
        let code = if status == StatusCode::NOT_FOUND {
            ErrorCode::NotFound
        } else {
            ErrorCode::Malformed
        };
        ApiError::new(status, code, m)
    })?;
    let report = st.db.report(resolved.query).await?;
    let body = match table {
        "queue" => csv::queue(&report),
        "nps" => csv::nps(&report),
        _ => csv::campaigns(&report),
    };
    let name = format!(
        "attachment; filename=\"report-{table}-{}-{}.csv\"",
        report.from, report.to
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response())
}

/// Seconds as `m:ss` (rounded to the second), `–` when there is nothing.
pub fn minutes(seconds: Option<f64>) -> String {
    match seconds {
        None => "–".to_owned(),
        Some(s) => {
            let s = s.round() as i64;
            format!("{}:{:02}", s / 60, s % 60)
        }
    }
}

fn select(name: &str, label: &str, options: &[(String, String)], chosen: &str) -> String {
    let mut out =
        format!("<label for=\"{name}\">{label}</label><select id=\"{name}\" name=\"{name}\">");
    for (value, text) in options {
        let sel = if value == chosen { " selected" } else { "" };
        out.push_str(&format!(
            "<option value=\"{}\"{sel}>{}</option>",
            escape(value),
            escape(text)
        ));
    }
    out.push_str("</select>");
    out
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The query string of a resolved form (for the CSV and print links).
fn query_string(r: &Resolved) -> String {
    let q = &r.query;
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "from={}&to={}&period={}&group={}&store={}&region={}",
        q.from,
        q.to,
        period_value(q.period),
        grouping_value(q.grouping),
        enc(&r.store),
        enc(&r.region)
    )
}

fn period_value(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
        Period::Range => "range",
    }
}

fn grouping_value(g: Grouping) -> &'static str {
    match g {
        Grouping::Store => "store",
        Grouping::Region => "region",
        Grouping::Service => "service",
        Grouping::Counter => "counter",
        Grouping::Staff => "staff",
    }
}

/// The column header of the group column.
pub fn group_header(g: Grouping) -> &'static str {
    match g {
        Grouping::Store => "Store",
        Grouping::Region => "Region",
        Grouping::Service => "Service",
        Grouping::Counter => "Counter",
        Grouping::Staff => "Staff member",
    }
}

fn render_page(
    visible: &[StorePlace],
    params: &Params,
    result: Option<(&Resolved, &Report)>,
    problem: Option<&str>,
) -> String {
    let print = params.view.as_deref() == Some("print") && result.is_some();
    let value = |v: &Option<String>| escape(v.as_deref().unwrap_or("").trim());
    let (from, to, period, group, store, region) = match result {
        Some((r, _)) => (
            r.query.from.to_string(),
            r.query.to.to_string(),
            period_value(r.query.period).to_owned(),
            grouping_value(r.query.grouping).to_owned(),
            r.store.clone(),
            r.region.clone(),
        ),
        None => (
            value(&params.from),
            value(&params.to),
            params.period.clone().unwrap_or_else(|| "day".into()),
            params.group.clone().unwrap_or_else(|| "store".into()),
            params.store.clone().unwrap_or_default(),
            params.region.clone().unwrap_or_default(),
        ),
    };
    let mut stores = vec![(String::new(), "All stores".to_owned())];
    stores.extend(
        visible
            .iter()
            .map(|p| (p.id.clone(), format!("{} ({})", p.name, p.id))),
    );
    let mut regions = vec![(String::new(), "All regions".to_owned())];
    let mut seen: Vec<String> = visible
        .iter()
        .map(|p| p.region.clone().unwrap_or_else(|| NO_REGION.to_owned()))
        .collect();
    seen.sort();
    seen.dedup();
    regions.extend(seen.into_iter().map(|r| {
        let label = if r == NO_REGION {
            "No region".to_owned()
        } else {
            r.clone()
        };
        (r, label)
    }));
    let mut body = String::new();
    if !print {
        body.push_str(
            "<header class=\"top no-print\"><h1>Reports</h1>\
             <nav class=\"filters\" aria-label=\"Views\"><a class=\"nav-link\" href=\"/dashboard\">Store dashboard</a>\
             <a class=\"nav-link\" href=\"/dashboard/fleet\">Fleet alerts</a></nav>\
             <form method=\"post\" action=\"/dashboard/logout\" class=\"logout\"><button type=\"submit\">Log out</button></form>\
             </header>",
        );
    }
    body.push_str("<main id=\"main\" class=\"report-main\">");
    if print {
        body.push_str("<h1>Report</h1>");
    }
    if !print {
        body.push_str(&format!(
            "<form id=\"report-form\" class=\"report-form no-print\" method=\"get\" action=\"/dashboard/reports\" aria-label=\"Report\">\
             <div class=\"field\"><label for=\"from\">From</label><input id=\"from\" name=\"from\" type=\"date\" value=\"{}\" required></div>\
             <div class=\"field\"><label for=\"to\">To</label><input id=\"to\" name=\"to\" type=\"date\" value=\"{}\" required></div>\
             <div class=\"field\">{}</div><div class=\"field\">{}</div><div class=\"field\">{}</div><div class=\"field\">{}</div>\
             <div class=\"field field-submit\"><button type=\"submit\">Show report</button></div></form>",
            escape(&from),
            escape(&to),
            select(
                "period",
                "Period",
                &owned(&[("day", "Per day"), ("week", "Per week"), ("month", "Per month"), ("range", "Whole range")]),
                &period
            ),
            select(
                "group",
                "Group by",
                &owned(&[("store", "Store"), ("region", "Region"), ("service", "Service"), ("counter", "Counter"), ("staff", "Staff member")]),
                &group
            ),
            select("store", "Store", &stores, &store),
            select("region", "Region", &regions, &region),
        ));
    }
    if let Some(p) = problem {
        body.push_str(&format!(
            "<p id=\"report-problem\" class=\"problem\" role=\"alert\">{}</p>",
            escape(p)
        ));
    }
    if let Some((resolved, report)) = result {
        let qs = query_string(resolved);
        if !print {
            body.push_str(&format!(
                "<nav class=\"report-actions no-print\" aria-label=\"Downloads\">\
                 <a id=\"csv-queue\" href=\"/dashboard/reports.csv?table=queue&amp;{q}\" download>Queue CSV</a>\
                 <a id=\"csv-nps\" href=\"/dashboard/reports.csv?table=nps&amp;{q}\" download>NPS CSV</a>\
                 <a id=\"csv-campaigns\" href=\"/dashboard/reports.csv?table=campaigns&amp;{q}\" download>Campaigns CSV</a>\
                 <a id=\"print-view\" href=\"/dashboard/reports?view=print&amp;{q}\">Printable view</a></nav>",
                q = escape(&qs)
            ));
        }
        body.push_str(&render_report(resolved, report));
        if print {
            body.push_str(&format!(
                "<p class=\"no-print\"><a href=\"/dashboard/reports?{}\">Back to the report</a></p>",
                escape(&qs)
            ));
        }
    }
    body.push_str("</main>");
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Reports</title><link rel=\"stylesheet\" href=\"/dashboard/app.css\">\
         <link rel=\"stylesheet\" href=\"/dashboard/reports.css\"></head>\
         <body class=\"{}\">{body}</body></html>",
        if print { "print-view" } else { "report-view" }
    )
}

fn num(n: u64) -> String {
    format!("<td class=\"num\">{n}</td>")
}

fn times(d: &Option<Durations>) -> String {
    format!(
        "<td class=\"num\">{}</td><td class=\"num\">{}</td>",
        minutes(d.as_ref().map(|d| d.median_s)),
        minutes(d.as_ref().map(|d| d.p90_s))
    )
}

fn table(
    id: &str,
    caption: &str,
    (head, text_cols): (&[&str], usize),
    rows: Vec<String>,
    empty: &str,
) -> String {
    let mut out = format!(
        "<section class=\"report-table\" aria-labelledby=\"h-{id}\"><h2 id=\"h-{id}\">{caption}</h2>"
    );
    if rows.is_empty() {
        out.push_str(&format!(
            "<p class=\"note\" id=\"{id}-empty\">{empty}</p></section>"
        ));
        return out;
    }
    out.push_str(&format!(
        "<div class=\"table-wrap\" role=\"region\" aria-labelledby=\"h-{id}\" tabindex=\"0\"><table id=\"{id}\"><thead><tr>"
    ));
    for (i, h) in head.iter().enumerate() {
        let class = if i >= text_cols { " class=\"num\"" } else { "" };
        out.push_str(&format!("<th scope=\"col\"{class}>{h}</th>"));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str(&r);
    }
    out.push_str("</tbody></table></div></section>");
    out
}

fn label_cells(period: &str, name: &str) -> String {
    format!(
        "<th scope=\"row\">{}</th><td>{}</td>",
        escape(period),
        escape(name)
    )
}

fn render_report(resolved: &Resolved, report: &Report) -> String {
    let g = group_header(report.grouping);
    let store_word = match report.grouping {
        Grouping::Region => "Region",
        _ => "Store",
    };
    let scope = match (resolved.store.as_str(), resolved.region.as_str()) {
        ("", "") => format!("{} stores", report.stores.len()),
        (s, "") => format!("store {s}"),
        ("", r) => format!("region {r} ({} stores)", report.stores.len()),
        (s, r) => format!("store {s} in region {r}"),
    };
    let mut out = format!(
        "<p id=\"report-summary\" class=\"note\">{} to {} · {} · per {} · {} · days are each store's local days</p>",
        report.from,
        report.to,
        match report.period {
            Period::Day => "per day",
            Period::Week => "per ISO week",
            Period::Month => "per month",
            Period::Range => "whole range",
        },
        g.to_lowercase(),
        escape(&scope)
    );
    let queue: Vec<String> = report
        .queue
        .iter()
        .map(|r: &QueueRow| {
            format!(
                "<tr>{}{}{}{}{}{}{}{}</tr>",
                label_cells(&r.period, &r.group_name),
                num(r.tickets),
                num(r.called),
                num(r.served),
                num(r.no_shows),
                r.walkouts
                    .map(num)
                    .unwrap_or_else(|| "<td class=\"num\">–</td>".to_owned()),
                times(&r.wait),
                times(&r.service_time),
            )
        })
        .collect();
    let tickets_head = if report.grouping.per_called_turn() {
        "Turns called"
    } else {
        "Tickets"
    };
    out.push_str(&table(
        "report-queue",
        "Tickets, waits and service times",
        (
            &[
                "Period",
                g,
                tickets_head,
                "Called",
                "Served",
                "No-shows",
                "Walkouts",
                "Wait median (m:ss)",
                "Wait p90 (m:ss)",
                "Service median (m:ss)",
                "Service p90 (m:ss)",
            ],
            2,
        ),
        queue,
        "No tickets in this period.",
    ));
    let nps: Vec<String> = report
        .nps
        .iter()
        .map(|r: &NpsRow| {
            format!(
                "<tr>{}{}{}{}{}<td class=\"num\">{}</td></tr>",
                label_cells(&r.period, &r.group_name),
                num(r.nps.responses),
                num(r.nps.promoters),
                num(r.nps.passives),
                num(r.nps.detractors),
                r.nps
                    .score
                    .map(|s| format!("{s:.1}"))
                    .unwrap_or_else(|| "–".into())
            )
        })
        .collect();
    out.push_str(&table(
        "report-nps",
        "Satisfaction (NPS)",
        (
            &[
                "Period",
                store_word,
                "Answers",
                "Promoters (9–10)",
                "Passives (7–8)",
                "Detractors (0–6)",
                "NPS",
            ],
            2,
        ),
        nps,
        "No survey answers in this period.",
    ));
    let campaigns: Vec<String> = report
        .campaigns
        .iter()
        .map(|r: &CampaignRow| {
            format!(
                "<tr>{}<td>{}</td><td>{}</td>{}{}<td class=\"num\">{:.1}%</td></tr>",
                label_cells(&r.period, &r.group_name),
                escape(r.campaign_name.as_deref().unwrap_or(&r.campaign_id)),
                escape(&r.variant),
                num(r.shown),
                num(r.redeemed),
                r.conversion * 100.0
            )
        })
        .collect();
    out.push_str(&table(
        "report-campaigns",
        "Campaign results",
        (
            &[
                "Period",
                store_word,
                "Campaign",
                "Variant",
                "Exposures",
                "Conversions",
                "Rate",
            ],
            4,
        ),
        campaigns,
        "No campaign shown in this period.",
    ));
    out
}
