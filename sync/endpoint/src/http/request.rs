//! Small readers of a request: the time, a header, a JSON body.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use time::OffsetDateTime;

use super::error::ApiError;
use crate::ingest;

/// Now, unix ms.
pub(crate) fn now_ms() -> i64 {
    ingest::unix_ms(OffsetDateTime::now_utc())
}

/// A header's value if it is text.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON body, 400 when unreadable or not a `T`; the message names the field at fault
/// (`body.store_id: ...`, `body.events[3]: ...`).
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError::malformed(format!("could not read the body: {e}")))?;
    let mut de = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let place = if path == "." { "body".to_owned() } else { format!("body.{path}") };
        ApiError::malformed(format!("{place}: {}", e.into_inner()))
    })?;
    de.end()
        .map_err(|e| ApiError::malformed(format!("body: {e}")))?;
    Ok(value)
}
