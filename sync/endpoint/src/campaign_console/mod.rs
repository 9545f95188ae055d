//! The console's campaigns page at `/dashboard/campaigns` (issue 21 item 2): every campaign with
//! its status, its A/B variants' exposures, conversions and rate updating live, and a stated
//! significance test of each variant against the first; create, edit (dates, targets, texts,
//! picture, coupon and its rules, variants and weights), pause and resume. A saved change is a
//! feed change: the kiosks of the campaign's stores get it at their next feed poll, and a store
//! it no longer targets gets it withdrawn.
//!
//! Data flow: form → `PUT /dashboard/api/campaigns/{id}` → [`crate::campaigns::check`] (the same
//! rules as the admin API and `crm-endpoint campaigns import`) → `campaigns` + feed change; every
//! store's period rows (the dashboard's own, roll-ups included) → per-variant totals → **test**
//! → `/dashboard/api/campaigns` → `app.js` (polled every 5 s).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use kiosk_protocol::ident;
use kiosk_protocol::wire::Campaign;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::http::auth::Principal;
use crate::http::doc::{Security, error_answer, path_param, raw_op, schema_ref, text};
use crate::http::request::json_body;
use crate::http::{ApiError, AppState, Route, Verb};
use crate::ingest::unix_ms;

/// The significance level of the test: a difference is called significant below it.
pub const ALPHA: f64 = 0.05;
/// The normal approximation behind the test holds when each arm has at least this many
/// conversions and this many exposures without one; below, the page says "not enough data".
pub const MIN_EACH: u64 = 5;
/// Results cover at most this many days back from today (the longest store period).
pub const MAX_DAYS: u32 = 366;

const PAGE_HTML: &str = include_str!("page.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// What the test says of a variant against the control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Converts better, p < [`ALPHA`].
    Better,
    /// Converts worse, p < [`ALPHA`].
    Worse,
    /// No significant difference (yet).
    NoDifference,
    /// Too few exposures or conversions for the test to hold.
    NotEnoughData,
}

/// A variant against the control: a two-proportion z-test (pooled standard error, two-sided).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Comparison {
    /// The control variant (the campaign's first).
    pub control: String,
    /// This variant's rate minus the control's, percentage points.
    pub difference_pts: f64,
    /// The z statistic (absent when not enough data).
    pub z: Option<f64>,
    /// Two-sided p-value (absent when not enough data).
    pub p_value: Option<f64>,
    /// What that means at [`ALPHA`].
    pub verdict: Verdict,
}

/// One variant's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VariantResult {
    /// Variant name.
    pub variant: String,
    /// Its weight now.
    pub weight: u32,
    /// Visits that saw it (docs/DESIGN.md invariant 16).
    pub exposures: u64,
    /// Its coupons redeemed.
    pub conversions: u64,
    /// conversions / exposures, percent (absent without exposures).
    pub rate_pct: Option<f64>,
    /// Against the control (absent for the control itself).
    pub vs_control: Option<Comparison>,
}

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Starts later.
    Scheduled,
    /// On the kiosks today.
    Running,
    /// Withdrawn (`active: false`): kiosks drop it until resumed.
    Paused,
    /// Its last day is past.
    Ended,
}

/// A campaign with its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CampaignView {
    /// The definition, as kiosks get it.
    pub campaign: Campaign,
    /// Its status today (UTC day).
    pub status: Status,
    /// Per variant, the definition's order (the first is the control).
    pub results: Vec<VariantResult>,
}

/// The page's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CampaignsView {
    /// When, unix ms.
    pub now_ms: i64,
    /// The significance level used.
    pub alpha: f64,
    /// The stores a campaign can target: `(id, name)`.
    pub stores: Vec<(String, String)>,
    /// The regions a campaign can target: those of the stores above, sorted.
    pub regions: Vec<String>,
    /// Every campaign, newest first by start date.
    pub campaigns: Vec<CampaignView>,
}

/// The two-sided p-value of `z` under the standard normal distribution.
fn two_sided_p(z: f64) -> f64 {
    libm::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// Variant `(exposures, conversions)` against the control's: the pooled two-proportion z-test.
pub fn compare(control: (&str, u64, u64), variant: (u64, u64)) -> Comparison {
    let (name, n1, x1) = control;
    let (n2, x2) = variant;
    let rate = |x: u64, n: u64| if n == 0 { 0.0 } else { x as f64 / n as f64 };
    let (p1, p2) = (rate(x1, n1), rate(x2, n2));
    let difference_pts = round2(100.0 * (p2 - p1));
    let enough = [x1, n1.saturating_sub(x1), x2, n2.saturating_sub(x2)]
        .iter()
        .all(|&k| k >= MIN_EACH);
    if !enough {
        return Comparison {
            control: name.to_owned(),
            difference_pts,
            z: None,
            p_value: None,
            verdict: Verdict::NotEnoughData,
        };
    }
    let pooled = (x1 + x2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    let z = (p2 - p1) / se;
    let p = two_sided_p(z);
    let verdict = if p >= ALPHA {
        Verdict::NoDifference
    } else if z > 0.0 {
        Verdict::Better
    } else {
        Verdict::Worse
    };
    Comparison {
        control: name.to_owned(),
        difference_pts,
        z: Some(round2(z)),
        p_value: Some((p * 10_000.0).round() / 10_000.0),
        verdict,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A campaign's status on `today`.
pub fn status(c: &Campaign, today: time::Date) -> Status {
    if !c.active {
        Status::Paused
    } else if today < c.starts_on {
        Status::Scheduled
    } else if today > c.ends_on {
        Status::Ended
    } else {
        Status::Running
    }
}

/// The results of `c` from `totals` (`(campaign, variant)` → `(exposures, conversions)`).
pub fn results(
    c: &Campaign,
    totals: &BTreeMap<(String, String), (u64, u64)>,
) -> Vec<VariantResult> {
    let variants: Vec<(String, u32)> = if c.variants.is_empty() {
        vec![("a".to_owned(), 1)]
    } else {
        c.variants
            .iter()
            .map(|v| (v.name.clone(), v.weight))
            .collect()
    };
    let got = |v: &str| {
        totals
            .get(&(c.id.clone(), v.to_owned()))
            .copied()
            .unwrap_or((0, 0))
    };
    let (control, (cn, cx)) = (variants[0].0.clone(), got(&variants[0].0));
    variants
        .iter()
        .enumerate()
        .map(|(i, (name, weight))| {
            let (n, x) = got(name);
            VariantResult {
                variant: name.clone(),
                weight: *weight,
                exposures: n,
                conversions: x,
                rate_pct: (n > 0).then(|| round2(100.0 * x as f64 / n as f64)),
                vs_control: (i > 0).then(|| compare((&control, cn, cx), (n, x))),
            }
        })
        .collect()
}

/// The campaigns page's routes.
pub fn routes() -> Vec<Route> {
    let err = error_answer();
    let mut put_doc = raw_op(
        "create or change a campaign from the console (the same rules as POST /v1/admin/campaigns); the stores' kiosks get it at their next feed poll; audited",
        Security::Dashboard,
        json!({ "204": { "description": "saved" }, "400": err, "403": err, "429": err, "503": err }),
    );
    put_doc["parameters"] = json!([path_param("id", "Ident")]);
    put_doc["requestBody"] = json!({ "required": true, "content": { "application/json": {
        "schema": schema_ref("Campaign") } } });
    let mut routes = vec![
        Route::new(
            Verb::Get,
            "/dashboard/campaigns",
            page,
            raw_op(
                "the campaigns page (HTML); without a session, back to /dashboard's login",
                Security::None,
                json!({ "200": text("text/html", "the campaigns page"),
                        "303": { "description": "log in at /dashboard first" } }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/dashboard/api/campaigns",
            api_campaigns,
            raw_op(
                "every campaign with its status and, per A/B variant, exposures, conversions, rate and a two-proportion z-test against the first variant",
                Security::Dashboard,
                json!({ "200": { "description": "the campaigns", "content": { "application/json": {
                            "schema": schema_ref("CampaignsView") } } },
                        "403": err, "429": err, "503": err }),
            ),
        ),
        Route::new(
            Verb::Put,
            "/dashboard/api/campaigns/{id}",
            put_campaign,
            put_doc,
        )
        .map(|h| {
            h.layer(axum::extract::DefaultBodyLimit::max(
                crate::campaigns::MAX_CAMPAIGN_BODY_BYTES,
            ))
        }),
    ];
    routes.extend(crate::http::page::script_and_style(
        "campaigns page",
        ("/dashboard/campaigns/app.js", APP_JS),
        ("/dashboard/campaigns/app.css", APP_CSS),
    ));
    crate::http::page::console_routes(routes)
}

/// Adds the schemas the campaigns page's paths refer to to `g`'s definitions.
pub fn register_schemas(g: &mut schemars::SchemaGenerator) {
    g.subschema_for::<CampaignsView>();
}

async fn page(State(st): State<AppState>, req: Request) -> Response {
    crate::http::page::console_page(&st, req, PAGE_HTML).await
}

async fn api_campaigns(
    who: Principal,
    State(st): State<AppState>,
) -> Result<Json<CampaignsView>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let now_ms = unix_ms(now);
    let today = now.date();
    // A regional or store manager sees the campaigns that reach one of their stores (those
    // for every store included) and their stores' results only.
    let scope = who.scope();
    let mut campaigns = st.db.campaigns().await?;
    campaigns.sort_by(|a, b| b.starts_on.cmp(&a.starts_on).then(a.id.cmp(&b.id)));
    // Exposures exist only while a campaign runs: one period from the earliest start covers
    // them all.
    let days = campaigns
        .iter()
        .filter(|c| c.starts_on <= today)
        .map(|c| (today - c.starts_on).whole_days() + 1)
        .max()
        .unwrap_or(1)
        .clamp(1, i64::from(MAX_DAYS));
    let periods = st
        .db
        .store_periods(u32::try_from(days).unwrap_or(MAX_DAYS), now_ms)
        .await?;
    let mut totals: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut stores = Vec::with_capacity(periods.len());
    let mut regions = std::collections::BTreeSet::new();
    for (place, rows) in periods {
        if !scope.allows(&place.id, place.region.as_deref()) {
            continue;
        }
        for (c, v, shown, redeemed) in rows.campaigns {
            let e = totals.entry((c, v)).or_default();
            e.0 += u64::try_from(shown).unwrap_or(0);
            e.1 += u64::try_from(redeemed).unwrap_or(0);
        }
        if let Some(r) = place.region {
            regions.insert(r);
        }
        stores.push((place.id, place.name));
    }
    if scope != crate::accounts::Scope::All {
        campaigns.retain(|c| {
            (c.stores.is_empty() && c.regions.is_empty())
                || c.stores
                    .iter()
                    .any(|s| stores.iter().any(|(id, _)| id == s))
                || c.regions.iter().any(|r| regions.contains(r))
        });
    }
    Ok(Json(CampaignsView {
        now_ms,
        alpha: ALPHA,
        stores,
        regions: regions.into_iter().collect(),
        campaigns: campaigns
            .into_iter()
            .map(|c| CampaignView {
                status: status(&c, today),
                results: results(&c, &totals),
                campaign: c,
            })
            .collect(),
    }))
}

async fn put_campaign(
    who: Principal,
    State(st): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<StatusCode, ApiError> {
    who.require_hq(&st, "campaign edits")?;
    let body = <Bytes as axum::extract::FromRequest<AppState>>::from_request(req, &st).await;
    ident::check(&id).map_err(|e| ApiError::malformed(format!("id: the campaign id {e}")))?;
    let campaign: Campaign = json_body(body)?;
    if campaign.id != id {
        return Err(ApiError::malformed(format!(
            "id: the body's id {:?} is not the path's {id:?}",
            campaign.id
        )));
    }
    crate::campaigns::check(&campaign).map_err(|e| ApiError::malformed(e.to_string()))?;
    let known = st.db.campaigns().await?.into_iter().any(|c| c.id == id);
    st.db
        .upsert_campaign(campaign, unix_ms(OffsetDateTime::now_utc()))
        .await?;
    who.audit(
        &st,
        if known {
            "campaign_changed"
        } else {
            "campaign_created"
        },
        &format!("campaign:{id}"),
        "ok",
    );
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textbook case: 20 of 200 against 40 of 200. Pooled rate 0.15, standard error
    /// sqrt(0.15 × 0.85 × (1/200 + 1/200)) = 0.035707, z = 0.10 / 0.035707 = 2.80, two-sided
    /// p = 0.0051.
    #[test]
    fn the_z_test_matches_a_hand_computation() {
        let c = compare(("a", 200, 20), (200, 40));
        assert_eq!(c.difference_pts, 10.0);
        assert_eq!(c.z, Some(2.8));
        assert_eq!(c.p_value, Some(0.0051));
        assert_eq!(c.verdict, Verdict::Better);
        let worse = compare(("a", 200, 40), (200, 20));
        assert_eq!((worse.z, worse.verdict), (Some(-2.8), Verdict::Worse));
        // 10 % against 12 % on 100 each: z = 0.45, p = 0.65: no difference.
        let same = compare(("a", 100, 10), (100, 12));
        assert_eq!(same.verdict, Verdict::NoDifference);
        assert!(same.p_value.unwrap() > 0.6, "{same:?}");
        // 2 conversions of 10: the normal approximation does not hold.
        let few = compare(("a", 10, 2), (10, 8));
        assert_eq!((few.verdict, few.p_value), (Verdict::NotEnoughData, None));
        assert_eq!(few.difference_pts, 60.0);
    }

    #[test]
    fn a_campaign_without_variants_is_one_variant_a_and_nothing_is_compared() {
        let c: Campaign = serde_json::from_value(json!({
            "id": "solo", "name": "Solo", "starts_on": "2026-12-01", "ends_on": "2026-12-31",
            "screen_text": { "es": "Hola", "en": "Hello" },
            "ticket_line": { "es": "Hola", "en": "Hello" } }))
        .unwrap();
        let mut totals = BTreeMap::new();
        totals.insert(("solo".to_owned(), "a".to_owned()), (8, 2));
        let r = results(&c, &totals);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].exposures, r[0].conversions, r[0].rate_pct),
            (8, 2, Some(25.0))
        );
        assert!(r[0].vs_control.is_none());
        let d = |s: &str| {
            time::Date::parse(s, &time::format_description::well_known::Iso8601::DATE).unwrap()
        };
        assert_eq!(status(&c, d("2026-11-30")), Status::Scheduled);
        assert_eq!(status(&c, d("2026-12-31")), Status::Running);
        assert_eq!(status(&c, d("2027-01-01")), Status::Ended);
        let paused = Campaign { active: false, ..c };
        assert_eq!(status(&paused, d("2026-12-15")), Status::Paused);
    }
}
