//! The customer's turn page at `/t/{token}`: the link in the ticket's QR code opens it on the
//! customer's phone (no app, no login). It shows the turn, its service, how many turns are
//! ahead and an estimated wait, live; "it's your turn: counter 3" when called; then the
//! satisfaction survey for that turn, one answer per turn as at the kiosks.
//!
//! Data flow: kiosk batch → ingest → live queue (`queue_turns`) → change notice
//! ([`AppState::subscribe_changes`]) → **turn page** (SSE) → phone.
//!
//! The token is the ticket's signed turn (`KT1.…`, `kiosk_drivers::scanner::code`), signed by
//! the kiosks with a key derived from the tenant key the endpoint holds ([`TURN_KEY_LABEL`]).
//! A token is shown only on its store's business day, and only its own turn of its own store:
//! a token whose store does not hold that turn, or of another day, gets a page saying so and
//! nothing else. The page is rendered on the server (it works without script); its script only
//! swaps in the fragments the event stream sends, so the texts live in one place (here).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Form, extract::Request};
use futures::Stream;
use kiosk_drivers::scanner::code::{self, CodeKey, TurnTicket};
use kiosk_protocol::events::SurveyAnswered;
use kiosk_protocol::wire::{ErrorCode, SurveyStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use crate::db::phone::TurnView;
use crate::db::queue::{self, TurnStatus};
use crate::http::doc::{Security, error_answer, event_stream, json_data, raw_op, schema_ref, text};
use crate::http::{ApiError, AppState, Route, Verb};
use crate::ingest::unix_ms;

/// The label the kiosks derive their turn tickets' key with from the tenant key (the
/// firmware's `runtime::TURN_KEY_LABEL`; the workspace test `turn_page` pins them equal).
pub const TURN_KEY_LABEL: &str = "kiosk turn ticket qr v1";
/// The page's stream sends the turn at least this often (ages move, offline is noticed).
pub const REFRESH_EVERY: Duration = Duration::from_secs(15);
/// The longest token read (a turn is about 90 characters; labels and ids are short).
pub const MAX_TOKEN_LEN: usize = 400;

const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const SW_JS: &str = include_str!("sw.js");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
    worker-src 'self'; manifest-src 'self'";

/// A turn ticket's token as the QR code's link carries it (`KT1.<record>.<tag>`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(
    description = "the signed turn of a ticket (`KT1.<record>.<tag>`, base64url), as the ticket's QR link carries it",
    extend("pattern" = r"^KT1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$", "maxLength" = 400)
)]
pub struct TurnToken(pub String);

/// The survey form of the turn page.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SurveyForm {
    /// 0 to 10 (NPS scale).
    #[schemars(range(min = 0, max = 10))]
    pub score: u8,
    /// The page's language (`es` or `en`), kept after answering.
    #[serde(default)]
    pub lang: Option<Lang>,
}

/// What the page's stream sends: the turn and its fragment, rendered.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TurnUpdate {
    /// The turn as the endpoint knows it.
    pub view: TurnView,
    /// The page's live part for it, HTML in the page's language.
    pub html: String,
}

/// The page's languages.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Spanish (the default).
    #[default]
    Es,
    /// English.
    En,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Lang::Es => "es",
            Lang::En => "en",
        }
    }

    /// `?lang=` if given, else the first of `es`/`en` the browser prefers (Accept-Language by
    /// weight), else Spanish.
    pub fn pick(query: Option<Lang>, headers: &HeaderMap) -> Lang {
        if let Some(l) = query {
            return l;
        }
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut best: Option<(u16, Lang)> = None;
        for part in accept.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let weight = (q.clamp(0.0, 1.0) * 1000.0) as u16;
            let lang = match tag.split('-').next() {
                Some("es") => Lang::Es,
                Some("en") => Lang::En,
                _ => continue,
            };
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map_or(Lang::Es, |(_, l)| l)
    }
}

/// The page's query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    /// The language, overriding Accept-Language (the page's switch sets it).
    #[serde(default)]
    pub lang: Option<Lang>,
}

/// The turn page's routes.
pub fn routes() -> Vec<Route> {
    let token = json!({ "name": "token", "in": "path", "required": true, "schema": schema_ref("TurnToken") });
    let lang = json!({ "name": "lang", "in": "query", "required": false,
        "schema": schema_ref("Lang"), "description": "the page's language; absent: the browser's (Accept-Language), else Spanish" });
    let page_answers = |ok: &str| {
        json!({ "200": text("text/html", ok),
            "400": text("text/html", "not a ticket's link (says so, in the page's language)"),
            "404": text("text/html", "the ticket's signature does not verify, its store does not exist or does not hold its turn"),
            "410": text("text/html", "the ticket was for another business day"),
            "503": text("text/html", "the endpoint's database is unavailable") })
    };
    let mut page_doc = raw_op(
        "the customer's turn page (HTML; the ticket's QR link): the turn, its service, turns ahead and estimated wait, live; the counter when called; the satisfaction survey once served",
        Security::None,
        page_answers("the turn page"),
    );
    page_doc["parameters"] = json!([token, lang]);
    let err = error_answer();
    let mut events_doc = raw_op(
        "server-sent events of one turn: `turn` (the turn and the page's fragment for it) at once, after each batch from the store's kiosks and every 15 s",
        Security::None,
        json!({ "200": event_stream("the event stream (it does not end by itself; comments keep it alive)", &[
                    ("turn", "the turn now and the page's live fragment", json_data("TurnUpdate")),
                ]),
                "400": err, "404": err, "410": err, "503": err }),
    );
    events_doc["parameters"] = json!([token, lang]);
    let mut survey_doc = raw_op(
        "answer the satisfaction survey of a served turn (one answer per turn, as at the kiosks); back to the turn page",
        Security::None,
        json!({ "303": { "description": "kept; the turn page thanks the customer" },
            "400": text("text/html", "no score, or out of 0..10, or not a ticket's link"),
            "404": text("text/html", "the ticket's signature does not verify, its store does not exist or does not hold its turn"),
            "409": text("text/html", "the turn may not be rated (not served yet, already rated, closed)"),
            "410": text("text/html", "the ticket was for another business day"),
            "503": text("text/html", "the endpoint's database is unavailable") }),
    );
    survey_doc["parameters"] = json!([token]);
    survey_doc["requestBody"] = json!({ "required": true, "content": {
        "application/x-www-form-urlencoded": { "schema": schema_ref("SurveyForm") } } });
    let mut push_doc = raw_op(
        "opt in to Web Push notifications for this turn (when few turns are ahead and when called): the browser's PushSubscription (toJSON), made with the endpoint's VAPID public key the page carries; kept until the store's business day ends",
        Security::None,
        json!({ "204": { "description": "kept" },
                "400": err, "404": err, "410": err, "503": err }),
    );
    push_doc["parameters"] = json!([token, lang]);
    push_doc["requestBody"] = json!({ "required": true, "content": {
        "application/json": { "schema": schema_ref("PushSubscription") } } });
    let routes = vec![
        Route::new(Verb::Get, "/t/{token}", page, page_doc),
        Route::new(Verb::Post, "/t/{token}/push", subscribe, push_doc),
        Route::new(
            Verb::Get,
            "/t/sw.js",
            || async {
                let mut r = asset("text/javascript", SW_JS);
                r.headers_mut()
                    .insert("service-worker-allowed", HeaderValue::from_static("/t/"));
                r
            },
            raw_op(
                "the turn page's service worker (shows the turn's push notifications)",
                Security::None,
                json!({ "200": text("text/javascript", "script") }),
            ),
        ),
        Route::new(Verb::Get, "/t/{token}/events", events, events_doc),
        Route::new(Verb::Post, "/t/{token}/survey", survey, survey_doc),
        Route::new(
            Verb::Get,
            "/t/app.js",
            || async { asset("text/javascript", APP_JS) },
            raw_op(
                "the turn page's script",
                Security::None,
                json!({ "200": text("text/javascript", "script") }),
            ),
        ),
        Route::new(
            Verb::Get,
            "/t/app.css",
            || async { asset("text/css", APP_CSS) },
            raw_op(
                "the turn page's style",
                Security::None,
                json!({ "200": text("text/css", "style") }),
            ),
        ),
    ];
    routes
        .into_iter()
        .map(|r| r.map(|h| h.layer::<_, Infallible>(middleware::from_fn(security_headers))))
        .collect()
}

/// Adds the schemas the turn page's paths refer to to `g`'s definitions.
pub fn register_schemas(g: &mut schemars::SchemaGenerator) {
    g.subschema_for::<TurnToken>();
    g.subschema_for::<SurveyForm>();
    g.subschema_for::<TurnUpdate>();
    g.subschema_for::<Lang>();
    g.subschema_for::<crate::db::phone::PushSubscription>();
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    crate::http::page::secure(&mut resp, CSP);
    resp
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    crate::http::page::asset(content_type, body)
}

/// Why a token opens nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a ticket's token at all.
    Malformed,
    /// Its signature does not verify, its store does not exist or does not hold its turn.
    NotHere,
    /// It was for another business day (the day it was for).
    OtherDay(String),
    /// The database did not answer.
    Unavailable,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Malformed => StatusCode::BAD_REQUEST,
            Refusal::NotHere => StatusCode::NOT_FOUND,
            Refusal::OtherDay(_) => StatusCode::GONE,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (Refusal::Malformed, Lang::Es) => "Este enlace no es el de un tique de turno. Escanee de nuevo el código del tique.".into(),
            (Refusal::Malformed, Lang::En) => "This link is not a turn ticket's. Scan the ticket's code again.".into(),
            (Refusal::NotHere, Lang::Es) => "No encontramos este tique: puede que no sea de esta tienda o que el código esté dañado. Pida ayuda en la tienda.".into(),
            (Refusal::NotHere, Lang::En) => "We cannot find this ticket: it may be from another store, or its code is damaged. Ask for help in the store.".into(),
            (Refusal::OtherDay(d), Lang::Es) => format!("Este tique era del {d}. Los turnos valen solo el día en que se sacan: saque uno nuevo en el quiosco."),
            (Refusal::OtherDay(d), Lang::En) => format!("This ticket was for {d}. Turns are valid on the day they are taken only: take a new one at the kiosk."),
            (Refusal::Unavailable, Lang::Es) => "El servicio no está disponible ahora mismo. Vuelva a intentarlo en un momento.".into(),
            (Refusal::Unavailable, Lang::En) => "The service is unavailable right now. Try again in a moment.".into(),
        }
    }

    fn api_error(&self) -> ApiError {
        let code = match self {
            Refusal::Malformed => ErrorCode::Malformed,
            Refusal::NotHere | Refusal::OtherDay(_) => ErrorCode::NotFound,
            Refusal::Unavailable => ErrorCode::Unavailable,
        };
        ApiError::new(
            self.status(),
            code,
            format!("token: {}", self.message(Lang::En)),
        )
    }
}

/// A verified ticket of today's business day in its store.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// What the token carries.
    pub turn: TurnTicket,
    /// Its business day, `YYYY-MM-DD`.
    pub day: String,
}

/// The key of turn tickets, derived from the tenant key as the kiosks derive it.
pub fn turn_key(tenant_key: &kiosk_protocol::wire::TenantKey) -> Option<CodeKey> {
    use hmac::Mac as _;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(tenant_key.as_bytes()).ok()?;
    mac.update(TURN_KEY_LABEL.as_bytes());
    CodeKey::new(mac.finalize().into_bytes().to_vec()).ok()
}

/// Verifies `token` and checks that it is of its store's business day at `now_ms`.
pub async fn verify(st: &AppState, token: &str, now_ms: i64) -> Result<Ticket, Refusal> {
    if token.len() > MAX_TOKEN_LEN || !token.starts_with(code::TURN_PREFIX) {
        return Err(Refusal::Malformed);
    }
    let tenant = st.db.tenant_key().await.map_err(|_| Refusal::Unavailable)?;
    let key = turn_key(&tenant).ok_or(Refusal::Unavailable)?;
    let turn = code::verify_turn(token, &key).map_err(|_| Refusal::NotHere)?;
    let stores = st
        .db
        .list_stores()
        .await
        .map_err(|_| Refusal::Unavailable)?;
    let Some(store) = stores.into_iter().find(|s| s.id == turn.store_id) else {
        return Err(Refusal::NotHere);
    };
    let (today, _) = queue::today(store.timezone.as_deref(), now_ms);
    let day = turn.business_day.to_string();
    if day != today {
        return Err(Refusal::OtherDay(day));
    }
    Ok(Ticket { turn, day })
}

/// The turn now, or why it cannot be shown.
async fn view_of(st: &AppState, token: &str) -> Result<(Ticket, TurnView), Refusal> {
    let now = unix_ms(OffsetDateTime::now_utc());
    let ticket = verify(st, token, now).await?;
    let view = st
        .db
        .turn_view(
            ticket.turn.store_id.clone(),
            ticket.day.clone(),
            ticket.turn.turn_id,
            ticket.turn.turn.clone(),
            now,
        )
        .await
        .map_err(|_| Refusal::Unavailable)?
        .ok_or(Refusal::NotHere)?;
    Ok((ticket, view))
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

fn escape(s: &str) -> String {
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

fn shell(lang: Lang, title: &str, body: &str, data: &str) -> String {
    let (es, en) = match lang {
        Lang::Es => (" aria-current=\"true\"", ""),
        Lang::En => ("", " aria-current=\"true\""),
    };
    let nav = match lang {
        Lang::Es => "Idioma",
        Lang::En => "Language",
    };
    format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><link rel=\"stylesheet\" href=\"/t/app.css\">\
<script src=\"/t/app.js\" defer></script></head>\
<body><header><nav aria-label=\"{nav}\"><a href=\"?lang=es\" lang=\"es\" hreflang=\"es\"{es}>Español</a>\
<a href=\"?lang=en\" lang=\"en\" hreflang=\"en\"{en}>English</a></nav></header>\
<main id=\"turn\"{data}>{body}</main></body></html>\n",
        code = lang.code(),
        title = escape(title),
    )
}

fn refusal_page(refusal: &Refusal, lang: Lang) -> Response {
    let title = match lang {
        Lang::Es => "Tique no válido aquí",
        Lang::En => "Ticket not valid here",
    };
    let body = format!(
        "<h1>{}</h1><p class=\"notice\" role=\"alert\">{}</p>",
        escape(title),
        escape(&refusal.message(lang))
    );
    html(refusal.status(), shell(lang, title, &body, ""))
}

fn minutes(ms: i64) -> i64 {
    (ms.max(0) + 30_000) / 60_000
}

/// The page's live part for `view`, in `lang`.
pub fn fragment(view: &TurnView, token: &str, lang: Lang) -> String {
    let es = lang == Lang::Es;
    let mut out = String::new();
    if view.offline {
        let age = view.last_contact_ms.map(|at| minutes(view.now_ms - at));
        let text = match (es, age) {
            (true, Some(m)) => format!(
                "La tienda está sin conexión. Esto es lo último que sabemos, de hace {m} min."
            ),
            (false, Some(m)) => {
                format!("The store is offline. This is the last we know, from {m} min ago.")
            }
            (true, None) => {
                "La tienda aún no se ha conectado: no sabemos nada de este turno todavía."
                    .to_owned()
            }
            (false, None) => {
                "The store has not connected yet: we know nothing of this turn so far.".to_owned()
            }
        };
        out.push_str(&format!(
            "<p class=\"notice offline\" role=\"status\">{}</p>",
            escape(&text)
        ));
    }
    out.push_str(&format!(
        "<p class=\"store\">{}</p><h1>{} <span class=\"label\">{}</span></h1>",
        escape(&view.store_name),
        if es { "Su turno" } else { "Your turn" },
        escape(&view.turn)
    ));
    if let Some(s) = &view.service {
        out.push_str(&format!(
            "<p class=\"service\">{} {}</p>",
            if es { "Servicio" } else { "Service" },
            escape(s)
        ));
    }
    let status = |class: &str, text: String| {
        format!(
            "<p class=\"status {class}\" id=\"status\">{}</p>",
            escape(&text)
        )
    };
    match view.status {
        TurnStatus::Waiting => {
            let ahead = view.ahead.unwrap_or(0);
            out.push_str(&status(
                "waiting",
                match (es, ahead) {
                    (true, 0) => "Es el siguiente.".to_owned(),
                    (false, 0) => "You are next.".to_owned(),
                    (true, 1) => "Hay 1 turno antes que usted.".to_owned(),
                    (false, 1) => "There is 1 turn ahead of you.".to_owned(),
                    (true, n) => format!("Hay {n} turnos antes que usted."),
                    (false, n) => format!("There are {n} turns ahead of you."),
                },
            ));
            let wait = match (es, view.estimated_wait_s) {
                (true, Some(s)) => format!("Espera estimada: unos {} min.", minutes(i64::try_from(s).unwrap_or(i64::MAX / 2).saturating_mul(1000)).max(1)),
                (false, Some(s)) => format!("Estimated wait: about {} min.", minutes(i64::try_from(s).unwrap_or(i64::MAX / 2).saturating_mul(1000)).max(1)),
                (true, None) => "Aún no podemos estimar la espera.".to_owned(),
                (false, None) => "We cannot estimate the wait yet.".to_owned(),
            };
            out.push_str(&format!("<p class=\"wait\">{}</p>", escape(&wait)));
        }
        TurnStatus::Called => {
            let counter = view.counter.as_deref().unwrap_or("?");
            out.push_str(&format!(
                "<p class=\"status called\" id=\"status\" role=\"alert\">{}</p>",
                escape(&if es {
                    format!("¡Es su turno! Mostrador {counter}")
                } else {
                    format!("It’s your turn: counter {counter}")
                })
            ));
        }
        TurnStatus::Parked => out.push_str(&status(
            "parked",
            if es {
                "Su turno está en espera en el mostrador; le volverán a llamar.".to_owned()
            } else {
                "Your turn is on hold at the counter; you will be called again.".to_owned()
            },
        )),
        TurnStatus::Served => {
            out.push_str(&status(
                "served",
                if es { "Ya le han atendido.".to_owned() } else { "You have been served.".to_owned() },
            ));
            out.push_str(&survey_part(view.survey, token, lang));
        }
        TurnStatus::NoShow => out.push_str(&status(
            "closed",
            if es {
                "Le llamaron y no llegó: este turno se cerró. Saque uno nuevo en el quiosco.".to_owned()
            } else {
                "You were called and did not come: this turn is closed. Take a new one at the kiosk.".to_owned()
            },
        )),
        TurnStatus::WalkedOut => out.push_str(&status(
            "closed",
            if es { "Este turno se cerró.".to_owned() } else { "This turn is closed.".to_owned() },
        )),
        TurnStatus::Unknown => out.push_str(&status(
            "unknown",
            if es {
                "Su tique está registrado; la cola de la tienda aparecerá aquí en un momento.".to_owned()
            } else {
                "Your ticket is registered; the store's queue will appear here in a moment.".to_owned()
            },
        )),
    }
    out
}

fn survey_part(survey: SurveyStatus, token: &str, lang: Lang) -> String {
    let es = lang == Lang::Es;
    match survey {
        SurveyStatus::Open => {
            let mut buttons = String::new();
            for score in 0..=10 {
                buttons.push_str(&format!(
                    "<button type=\"submit\" name=\"score\" value=\"{score}\">{score}</button>"
                ));
            }
            format!(
                "<form class=\"survey\" method=\"post\" action=\"/t/{token}/survey\">\
<fieldset><legend>{q}</legend><p class=\"scale\" aria-hidden=\"true\"><span>{lo}</span><span>{hi}</span></p>\
<div class=\"scores\">{buttons}</div></fieldset>\
<input type=\"hidden\" name=\"lang\" value=\"{code}\"></form>",
                token = escape(token),
                q = if es {
                    "¿Recomendaría esta tienda a un amigo? (0: nada probable, 10: muy probable)"
                } else {
                    "Would you recommend this store to a friend? (0: not at all likely, 10: extremely likely)"
                },
                lo = if es { "0 nada" } else { "0 not at all" },
                hi = if es { "10 mucho" } else { "10 extremely" },
                code = lang.code(),
            )
        }
        SurveyStatus::AlreadyAnswered => format!(
            "<p class=\"thanks\">{}</p>",
            if es {
                "Gracias por su opinión."
            } else {
                "Thank you for your answer."
            }
        ),
        _ => String::new(),
    }
}

fn page_of(view: &TurnView, token: &str, lang: Lang, vapid: Option<&str>) -> String {
    let title = match lang {
        Lang::Es => format!("Turno {} · {}", view.turn, view.store_name),
        Lang::En => format!("Turn {} · {}", view.turn, view.store_name),
    };
    let (button, done, denied) = match lang {
        Lang::Es => (
            "Avisarme en este teléfono",
            "Le avisaremos en este teléfono cuando falte poco y cuando le llamen.",
            "Este navegador no permite avisos: mantenga esta página abierta.",
        ),
        Lang::En => (
            "Notify me on this phone",
            "We will notify you on this phone when your turn is near and when you are called.",
            "This browser does not allow notifications: keep this page open.",
        ),
    };
    // A notice is worth asking for only while the turn is still ahead of the customer.
    let open = matches!(
        view.status,
        TurnStatus::Waiting | TurnStatus::Called | TurnStatus::Parked | TurnStatus::Unknown
    );
    let push = if vapid.is_some() && open {
        format!(
            "<p><button type=\"button\" id=\"push\" hidden data-done=\"{}\" data-denied=\"{}\">{}</button></p>\
<p id=\"push-status\" role=\"status\"></p>",
            escape(done),
            escape(denied),
            escape(button)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<div id=\"live\" aria-live=\"polite\">{}</div>{push}",
        fragment(view, token, lang)
    );
    let mut data = format!(
        " data-events=\"/t/{t}/events?lang={l}\" data-push=\"/t/{t}/push?lang={l}\"",
        t = escape(token),
        l = lang.code()
    );
    if let Some(key) = vapid {
        data.push_str(&format!(" data-vapid=\"{}\"", escape(key)));
    }
    shell(lang, &title, &body, &data)
}

fn lang_of(query: Result<Query<PageQuery>, QueryRejection>, headers: &HeaderMap) -> Lang {
    Lang::pick(query.ok().and_then(|Query(q)| q.lang), headers)
}

async fn page(
    State(st): State<AppState>,
    Path(token): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let lang = lang_of(query, &headers);
    match view_of(&st, &token).await {
        Ok((_, view)) => {
            let vapid = vapid_public(&st).await;
            html(
                StatusCode::OK,
                page_of(&view, &token, lang, vapid.as_deref()),
            )
        }
        Err(refusal) => refusal_page(&refusal, lang),
    }
}

/// The endpoint's VAPID public key (made on first use), `None` if the database fails.
async fn vapid_public(st: &AppState) -> Option<String> {
    let secret = st
        .db
        .vapid_secret(crate::push::Vapid::generate_secret())
        .await
        .ok()?;
    crate::push::Vapid::from_secret(&secret, crate::push::DEFAULT_SUBJECT)
        .ok()
        .map(|v| v.public_key())
}

async fn subscribe(
    State(st): State<AppState>,
    Path(token): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let lang = lang_of(query, &headers);
    let now = unix_ms(OffsetDateTime::now_utc());
    let ticket = verify(&st, &token, now).await.map_err(|r| r.api_error())?;
    let sub: crate::db::phone::PushSubscription = crate::http::request::json_body(body)?;
    crate::push::check(&sub).map_err(|e| ApiError::malformed(format!("body: {e}")))?;
    let target = crate::db::phone::PushTarget {
        turn_id: ticket.turn.turn_id,
        label: ticket.turn.turn.clone(),
        lang: lang.code().to_owned(),
        page: format!("/t/{token}?lang={}", lang.code()),
        subscription: sub,
        sent_near: false,
        sent_called: false,
    };
    st.db
        .subscribe_push(ticket.turn.store_id.clone(), ticket.day, target, now)
        .await?;
    // A turn already near or called hears so at once.
    st.store_changed(&ticket.turn.store_id);
    Ok(StatusCode::NO_CONTENT)
}

async fn survey(
    State(st): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<SurveyForm>, FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    let lang = Lang::pick(form.as_ref().and_then(|f| f.lang), &headers);
    let now = unix_ms(OffsetDateTime::now_utc());
    let ticket = match verify(&st, &token, now).await {
        Ok(t) => t,
        Err(refusal) => return refusal_page(&refusal, lang),
    };
    let back = format!("/t/{token}?lang={}", lang.code());
    let Some(form) = form.filter(|f| f.score <= 10) else {
        let msg = match lang {
            Lang::Es => "Elija una puntuación de 0 a 10.",
            Lang::En => "Pick a score from 0 to 10.",
        };
        return message_page(StatusCode::BAD_REQUEST, lang, msg, &back);
    };
    let answer = SurveyAnswered {
        turn_id: Some(ticket.turn.turn_id),
        score: form.score,
        reason: None,
        card_token: None,
    };
    match st
        .db
        .rate_turn(ticket.turn.store_id.clone(), answer, now)
        .await
    {
        Ok(SurveyStatus::Open) => {
            st.store_changed(&ticket.turn.store_id);
            (
                StatusCode::SEE_OTHER,
                [(
                    header::LOCATION,
                    HeaderValue::from_str(&back).unwrap_or(HeaderValue::from_static("/")),
                )],
            )
                .into_response()
        }
        Ok(status) => {
            let msg = match (status, lang) {
                (SurveyStatus::AlreadyAnswered, Lang::Es) => {
                    "Este turno ya se valoró: una respuesta por turno. Gracias."
                }
                (SurveyStatus::AlreadyAnswered, Lang::En) => {
                    "This turn was rated already: one answer per turn. Thank you."
                }
                (SurveyStatus::NotServed, Lang::Es) => {
                    "Podrá valorar su turno cuando le hayan atendido."
                }
                (SurveyStatus::NotServed, Lang::En) => {
                    "You can rate your turn once you have been served."
                }
                (_, Lang::Es) => "Este turno no se puede valorar.",
                (_, Lang::En) => "This turn cannot be rated.",
            };
            message_page(StatusCode::CONFLICT, lang, msg, &back)
        }
        Err(_) => refusal_page(&Refusal::Unavailable, lang),
    }
}

fn message_page(status: StatusCode, lang: Lang, message: &str, back: &str) -> Response {
    let link = match lang {
        Lang::Es => "Volver a su turno",
        Lang::En => "Back to your turn",
    };
    let body = format!(
        "<p class=\"notice\" role=\"alert\">{}</p><p><a class=\"button\" href=\"{}\">{link}</a></p>",
        escape(message),
        escape(back)
    );
    html(status, shell(lang, link, &body, ""))
}

async fn events(
    State(st): State<AppState>,
    Path(token): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let lang = lang_of(query, &headers);
    // Subscribed before the first view: no change between the two goes unseen.
    let changes = st.subscribe_changes();
    let (ticket, first) = view_of(&st, &token).await.map_err(|r| r.api_error())?;
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + REFRESH_EVERY, REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = LiveTurn {
        st,
        token,
        store_id: ticket.turn.store_id,
        lang,
        changes,
        tick,
        first: Some(first),
    };
    let stream = futures::stream::unfold(live, |mut live| async move {
        let ev = live.next_event().await?;
        Some((Ok(ev), live))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One phone following its turn.
struct LiveTurn {
    st: AppState,
    token: String,
    store_id: String,
    lang: Lang,
    changes: tokio::sync::broadcast::Receiver<std::sync::Arc<str>>,
    tick: tokio::time::Interval,
    first: Option<TurnView>,
}

impl LiveTurn {
    async fn wait_for_change(&mut self) -> bool {
        loop {
            tokio::select! {
                r = self.changes.recv() => match r {
                    Ok(store) if *store == *self.store_id => return true,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => return true,
                    Err(RecvError::Closed) => return false,
                },
                _ = self.tick.tick() => return true,
                _ = self.st.closing().cancelled() => return false,
            }
        }
    }

    async fn next_event(&mut self) -> Option<Event> {
        let view = match self.first.take() {
            Some(v) => v,
            None => loop {
                if !self.wait_for_change().await {
                    return None;
                }
                match view_of(&self.st, &self.token).await {
                    Ok((_, v)) => break v,
                    // A day that ended, a database that failed: the page keeps what it shows.
                    Err(_) => continue,
                }
            },
        };
        let update = TurnUpdate {
            html: fragment(&view, &self.token, self.lang),
            view,
        };
        Some(
            Event::default()
                .event("turn")
                .json_data(&update)
                .unwrap_or_else(|_| Event::default().comment("unencodable turn")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_the_browser_by_weight_and_the_switch_wins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("fr-FR, en-GB;q=0.8, es;q=0.5"),
        );
        assert_eq!(Lang::pick(None, &h), Lang::En);
        assert_eq!(Lang::pick(Some(Lang::Es), &h), Lang::Es);
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("de"));
        assert_eq!(Lang::pick(None, &h), Lang::Es);
    }

    #[test]
    fn texts_from_the_store_are_escaped() {
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}
