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
    let mut json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::malformed(format!("body: {e}")))?;
    integral_floats_as_integers(&mut json);
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let place = if path == "." {
            "body".to_owned()
        } else {
            format!("body.{path}")
        };
        ApiError::malformed(format!("{place}: {}", e.into_inner()))
    })
}

/// Rewrites numbers like `488.0` as the integers they are: JSON Schema counts them as integers,
/// serde's integer fields do not.
pub(crate) fn integral_floats_as_integers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                // Exact only inside ±2^53; larger floats are left as they are (and refused).
                const EXACT: f64 = 9_007_199_254_740_992.0;
                if f.abs() <= EXACT {
                    #[expect(
                        clippy::cast_possible_truncation,
                        reason = "integral and within ±2^53"
                    )]
                    let i = f as i64;
                    *v = serde_json::Value::from(i);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(o) => o.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}
