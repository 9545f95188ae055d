//! The error answer of every route: [`ApiError`] (status, `ErrorBody`, maybe `Retry-After`), and
//! how database errors answer.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kiosk_protocol::wire::{ErrorBody, ErrorCode};

use crate::db::DbError;

/// An error answer: status, [`ErrorBody`] and maybe `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error answer with `status`, `error` and a message saying what to do.
    pub fn new(status: StatusCode, error: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
            },
            retry_after: None,
        }
    }
    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The message it tells the caller.
    pub fn message(&self) -> &str {
        &self.body.message
    }
    /// The same answer with `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Malformed, message)
    }
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }
    pub(crate) fn rate_limited(message: impl Into<String>, wait_s: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            message,
        )
        .retry_after(wait_s)
    }
    pub(crate) fn replayed() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            ErrorCode::Replay,
            "this signed request was already received; sign a retry with a fresh timestamp",
        )
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound(what) => ApiError::not_found(format!("{what} does not exist")),
            DbError::Replayed => ApiError::replayed(),
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "database failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "the endpoint's database is unavailable; retry later",
                )
                .retry_after(5)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
