//! Routes of "who is in the store" and the lobby's signage: the store picture for staff (behind
//! the staff session, like the counter board), the lobby's next play and play reports, the
//! content pictures by id, and the campaigns' pictures on the kiosk screen.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::routes::{deny_cross_site, deny_unless_staff, sse};

/// The routes, merged into the UI's router.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/counter/store", get(store_picture))
        .route("/api/counter/store/stream", get(store_stream))
        .route("/api/lobby/signage", post(lobby_signage))
        .route(
            "/api/lobby/content/{campaign}/{content}",
            get(content_picture),
        )
        .route(
            "/api/kiosk/campaign/{campaign}/{variant}/picture",
            get(campaign_picture),
        )
}

async fn store_picture(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = deny_unless_staff(&app, &headers) {
        return r;
    }
    Json(app.0.channels.picture.borrow().clone()).into_response()
}

async fn store_stream(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = deny_unless_staff(&app, &headers) {
        return r;
    }
    sse(app.0.channels.picture.clone(), |p| {
        serde_json::to_string(p).ok()
    })
    .into_response()
}

/// A play the lobby page finished (or a call cut short).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Done {
    play: Uuid,
    shown_ms: u64,
}

/// What the lobby page posts: the play it finished, if any, and whether it wants the next one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignageRequest {
    #[serde(default)]
    done: Option<Done>,
    #[serde(default = "yes")]
    next: bool,
}

fn yes() -> bool {
    true
}

async fn lobby_signage(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<SignageRequest>,
) -> Response {
    if let Some(r) = deny_cross_site(&headers) {
        return r;
    }
    let Some(signage) = app.0.channels.signage.clone() else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let answer = tokio::task::spawn_blocking(move || {
        if let Some(done) = req.done {
            if let Err(e) = signage.played(done.play, done.shown_ms) {
                tracing::info!(error = %e, "a lobby play report was not journaled");
            }
        }
        req.next.then(|| signage.next_lobby()).flatten()
    })
    .await;
    match answer {
        Ok(Some(slide)) => Json(slide).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "signage failed").into_response(),
    }
}

async fn content_picture(
    State(app): State<AppState>,
    Path((campaign, content)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(signage) = app.0.channels.signage.clone() else {
        return (StatusCode::NOT_FOUND, "no such content").into_response();
    };
    let pic = tokio::task::spawn_blocking(move || signage.picture(&campaign, &content))
        .await
        .ok()
        .flatten();
    // A campaign's picture changes only with a new feed: an hour, then revalidate by ETag.
    serve_picture(pic, &headers, "public, max-age=3600")
}

/// The picture of a campaign's variant on the kiosk screen (greeting, goodbye), read from the
/// campaign cache and checked on every request: a campaign edited at the CRM shows its new
/// picture at once (the page revalidates by ETag: 304 while it is the same).
async fn campaign_picture(
    State(app): State<AppState>,
    Path((campaign, variant)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(signage) = app.0.channels.signage.clone() else {
        return (StatusCode::NOT_FOUND, "no such picture").into_response();
    };
    let pic = tokio::task::spawn_blocking(move || signage.campaign_picture(&campaign, &variant))
        .await
        .ok()
        .flatten();
    serve_picture(pic, &headers, "no-cache")
}

/// A checked picture with its type and ETag (304 when the page has it), or 404.
fn serve_picture(
    pic: Option<crate::signage::Picture>,
    headers: &HeaderMap,
    cache: &'static str,
) -> Response {
    let Some(pic) = pic else {
        return (StatusCode::NOT_FOUND, "no such picture").into_response();
    };
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == pic.etag);
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        axum::body::Body::from(pic.bytes.as_ref().clone()).into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&pic.mime) {
        h.insert(CONTENT_TYPE, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&pic.etag) {
        h.insert(ETAG, v);
    }
    res
}
