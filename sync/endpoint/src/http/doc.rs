//! Helpers route modules write their OpenAPI operations with (see [`super::Route::doc`]); the
//! document itself is assembled in [`crate::openapi`].

use serde_json::{Map, Value, json};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Anyone.
    None,
    /// A signed kiosk request.
    Kiosk,
    /// The admin token, or an HQ admin's session (some admin routes let other roles in, scoped:
    /// their summaries say so).
    Admin,
    /// A dashboard session or the admin token.
    Dashboard,
}

impl Security {
    fn requirement(self) -> Value {
        match self {
            Security::None => json!([]),
            Security::Kiosk => {
                json!([{ "kioskId": [], "kioskTimestamp": [], "kioskSignature": [] }])
            }
            Security::Admin => json!([{ "adminToken": [] }, { "dashboardSession": [] }]),
            Security::Dashboard => json!([{ "dashboardSession": [] }, { "adminToken": [] }]),
        }
    }
}

/// Errors of admin operations.
pub const ADMIN_ERRORS: &[&str] = &["400", "403", "404", "429", "503"];
/// Errors of signed kiosk operations.
pub const KIOSK_ERRORS: &[&str] = &["400", "401", "403", "409", "503"];

/// A reference to a component schema.
pub fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn answer(description: &str, schema: Option<&str>) -> Value {
    match schema {
        Some(s) => {
            json!({ "description": description, "content": { "application/json": { "schema": schema_ref(s) } } })
        }
        None => json!({ "description": description }),
    }
}

/// A JSON operation: `summary`, who may call it, the request body's schema, the success answer
/// `(status, description, schema)` and the error statuses (each an `ErrorBody`).
pub fn op(
    summary: &str,
    security: Security,
    request: Option<&str>,
    ok: (&str, &str, Option<&str>),
    errs: &[&str],
) -> Value {
    let mut responses: Map<String, Value> = errs
        .iter()
        .map(|c| {
            (
                (*c).to_owned(),
                answer("error; see ErrorBody.error", Some("ErrorBody")),
            )
        })
        .collect();
    responses.insert(ok.0.to_owned(), answer(ok.1, ok.2));
    let mut o = json!({ "summary": summary, "responses": responses });
    if let Some(r) = request {
        o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_ref(r) } } });
    }
    o["security"] = security.requirement();
    o
}

/// `op` with `parameters`.
pub fn with_params(mut op: Value, parameters: Value) -> Value {
    op["parameters"] = parameters;
    op
}

/// A required path parameter of the component schema `schema` (`Ident`, `CardToken`).
pub fn path_param(name: &str, schema: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema_ref(schema) })
}

/// A query parameter: `name`, whether `required`, its `schema` and a `description`.
pub fn query_param(name: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": required, "schema": schema, "description": description })
}

/// A `text/event-stream` answer: `description` and, per event name, what its data is (a
/// description and the data's schema). As in OpenAPI 3.2's reading of a stream, the media type's
/// schema describes one event (`event`, `data`); JSON data carries `contentMediaType` and its
/// `contentSchema`.
pub fn event_stream(description: &str, events: &[(&str, &str, Value)]) -> Value {
    let one_of: Vec<Value> = events
        .iter()
        .map(|(name, about, data)| {
            json!({ "type": "object", "description": about, "required": ["event", "data"],
                "properties": { "event": { "const": name }, "data": data, "id": { "type": "string" } } })
        })
        .collect();
    json!({ "description": description, "content": { "text/event-stream": {
        "schema": { "description": "one server-sent event", "oneOf": one_of } } } })
}

/// The `data` of an event carrying `schema` as JSON text.
pub fn json_data(schema: &str) -> Value {
    json!({ "type": "string", "contentMediaType": "application/json", "contentSchema": schema_ref(schema) })
}

/// An operation answering something other than JSON (the dashboard's pages): `security`,
/// `summary`, and `responses` as written.
pub fn raw_op(summary: &str, security: Security, responses: Value) -> Value {
    json!({ "summary": summary, "security": security.requirement(), "responses": responses })
}

/// A response of `content_type` text.
pub fn text(content_type: &str, description: &str) -> Value {
    json!({ "description": description, "content": { content_type: { "schema": { "type": "string" } } } })
}

/// The error answer of JSON operations.
pub fn error_answer() -> Value {
    answer("error; see ErrorBody.error", Some("ErrorBody"))
}
