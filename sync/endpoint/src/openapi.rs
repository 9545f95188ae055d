//! The OpenAPI 3.1 document of protocol v1, served at `/openapi.json`. Paths are written here;
//! the schemas of request and answer bodies are generated from the wire types in
//! `kiosk_protocol::wire`, so they cannot drift from what the code sends. A test checks that the
//! document's operations and [`crate::api::ROUTES`] plus [`crate::dashboard::ROUTES`] are the same
//! set.

use kiosk_protocol::wire;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema_ref(name) } } })
}

fn answer(description: &str, schema: Option<&str>) -> Value {
    match schema {
        Some(s) => {
            json!({ "description": description, "content": { "application/json": { "schema": schema_ref(s) } } })
        }
        None => json!({ "description": description }),
    }
}

fn errors(codes: &[&str]) -> Map<String, Value> {
    codes
        .iter()
        .map(|c| {
            (
                (*c).to_owned(),
                answer("error; see ErrorBody.error", Some("ErrorBody")),
            )
        })
        .collect()
}

fn op(
    summary: &str,
    security: &str,
    request: Option<&str>,
    ok: (&str, &str, Option<&str>),
    errs: &[&str],
) -> Value {
    let mut responses = errors(errs);
    responses.insert(ok.0.to_owned(), answer(ok.1, ok.2));
    let mut o = json!({ "summary": summary, "responses": responses });
    if let Some(r) = request {
        o["requestBody"] = body(r);
    }
    o["security"] = match security {
        "kiosk" => json!([{ "kioskId": [], "kioskTimestamp": [], "kioskSignature": [] }]),
        "admin" => json!([{ "adminToken": [] }]),
        _ => json!([]),
    };
    o
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
}

fn components() -> Map<String, Value> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "#/components/schemas/".into();
    let mut generator = settings.into_generator();
    fn add<T: JsonSchema>(g: &mut schemars::SchemaGenerator, out: &mut Map<String, Value>) {
        let s = g.root_schema_for::<T>();
        let mut v = s.to_value();
        if let Some(o) = v.as_object_mut() {
            o.remove("$schema");
            o.remove("$defs");
        }
        out.insert(T::schema_name().into_owned(), v);
    }
    let mut out = Map::new();
    add::<wire::EnrollRequest>(&mut generator, &mut out);
    add::<wire::EnrollResponse>(&mut generator, &mut out);
    add::<wire::BatchRequest>(&mut generator, &mut out);
    add::<wire::BatchResponse>(&mut generator, &mut out);
    add::<wire::FeedResponse>(&mut generator, &mut out);
    add::<wire::ProfileLookupResponse>(&mut generator, &mut out);
    add::<wire::HealthResponse>(&mut generator, &mut out);
    add::<wire::ErrorBody>(&mut generator, &mut out);
    add::<wire::Campaign>(&mut generator, &mut out);
    for (k, v) in generator.take_definitions(true) {
        out.entry(k).or_insert(v);
    }
    let object = |d: &str| json!({ "type": "object", "description": d });
    out.insert(
        "StoreRecord".into(),
        json!({ "type": "object", "required": ["id", "name"],
        "properties": { "id": { "type": "string" }, "name": { "type": "string" },
            "timezone": { "type": "string", "description": "IANA time zone of the dashboard's hours (e.g. Europe/Madrid); absent leaves it unchanged" } } }),
    );
    out.insert("EnrollCodeRequest".into(), json!({ "type": "object", "required": ["store_id"],
        "properties": { "store_id": { "type": "string" }, "ttl_s": { "type": "integer", "minimum": 1 } } }));
    out.insert(
        "EnrollCodeResponse".into(),
        json!({ "type": "object", "required": ["code", "expires_ms"],
        "properties": { "code": { "type": "string" }, "expires_ms": { "type": "integer" } } }),
    );
    out.insert("NewCustomer".into(), object("card_token, store_id, display_name, locale?, email?, phone?, consents? (purposes), segment?, visits?"));
    out.insert(
        "CustomerRecord".into(),
        object("profile, segment, visits, stores and consent history of one customer"),
    );
    out.insert("SegmentRequest".into(), json!({ "type": "object", "required": ["segment"],
        "properties": { "segment": { "type": ["string", "null"], "description": "null returns the customer to the computed segment" } } }));
    out.insert("StoreStats".into(), object("events, tickets, identified tickets, customers, kiosk health, campaign conversion per variant, NPS"));
    out.insert(
        "RecomputeResponse".into(),
        json!({ "type": "object", "properties": { "changed": { "type": "integer" } } }),
    );
    out.insert(
        "CampaignList".into(),
        json!({ "type": "array", "items": schema_ref("Campaign") }),
    );
    out.insert("OpenApi".into(), object("this document"));
    out.extend(crate::dashboard::openapi_schemas());
    out
}

/// The document.
pub fn document() -> Value {
    let kiosk = ["400", "401", "403", "409", "503"];
    let admin = ["400", "403", "404", "503"];
    let mut feed = op(
        "read the store's sync feed after a cursor",
        "kiosk",
        None,
        (
            "200",
            "campaigns, profiles and erasures, oldest first",
            Some("FeedResponse"),
        ),
        &kiosk,
    );
    feed["parameters"] = json!([
        path_param("kiosk_id"),
        { "name": "cursor", "in": "query", "schema": { "type": "integer", "minimum": 0 } },
        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": wire::MAX_FEED_LIMIT } }
    ]);
    let mut batches = op(
        "post a batch of events (at most 500 events, 256 KiB uncompressed; gzip accepted)",
        "kiosk",
        Some("BatchRequest"),
        (
            "200",
            "one result per event, in order",
            Some("BatchResponse"),
        ),
        &["400", "401", "403", "409", "413", "415", "503"],
    );
    batches["parameters"] = json!([path_param("kiosk_id")]);
    let mut lookup = op(
        "look up a card the kiosk's cache does not know (the customer becomes known to its store; at most 60 a minute per kiosk)",
        "kiosk",
        None,
        (
            "200",
            "the profile, or null for nobody",
            Some("ProfileLookupResponse"),
        ),
        &["400", "401", "403", "409", "429", "503"],
    );
    lookup["parameters"] = json!([path_param("kiosk_id"), path_param("card_token")]);
    let mut stats = op(
        "statistics of one store",
        "admin",
        None,
        ("200", "statistics", Some("StoreStats")),
        &admin,
    );
    stats["parameters"] = json!([{ "name": "store", "in": "query", "required": true, "schema": { "type": "string" } }]);
    let token = || json!([path_param("card_token")]);
    let mut get_customer = op(
        "a customer's profile and consent history",
        "admin",
        None,
        ("200", "the customer", Some("CustomerRecord")),
        &admin,
    );
    get_customer["parameters"] = token();
    let mut segment = op(
        "set a customer's segment by hand, or null to compute it",
        "admin",
        Some("SegmentRequest"),
        ("204", "set", None),
        &admin,
    );
    segment["parameters"] = token();
    let mut erase = op(
        "erase a customer's personal data and tell every kiosk",
        "admin",
        None,
        ("204", "erased", None),
        &admin,
    );
    erase["parameters"] = token();
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CRM endpoint, protocol v1",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Kiosk requests are signed: x-kiosk-signature = hex HMAC-SHA256(device secret, METHOD\\npath-and-query\\ntimestamp\\nhex SHA-256(body as sent)), timestamps within ±300 s, each signed request accepted once (409 replay)."
        },
        "paths": {
            "/openapi.json": { "get": op("this document", "none", None, ("200", "OpenAPI 3.1", Some("OpenApi")), &[]) },
            "/v1/health": { "get": op("liveness and store health", "none", None, ("200", "health", Some("HealthResponse")), &[]) },
            "/v1/enroll": { "post": op("trade a one-time code for a kiosk id, device secret and tenant key", "none",
                Some("EnrollRequest"), ("200", "enrolled", Some("EnrollResponse")), &["400", "401", "429", "503"]) },
            "/v1/kiosks/{kiosk_id}/batches": { "post": batches },
            "/v1/kiosks/{kiosk_id}/feed": { "get": feed },
            "/v1/kiosks/{kiosk_id}/profiles/{card_token}": { "get": lookup },
            "/v1/stats": { "get": stats },
            "/v1/admin/stores": { "post": op("create or rename a store", "admin", Some("StoreRecord"), ("204", "saved", None), &admin) },
            "/v1/admin/enroll-codes": { "post": op("make a one-time enrollment code", "admin", Some("EnrollCodeRequest"), ("200", "the code", Some("EnrollCodeResponse")), &admin) },
            "/v1/admin/customers": { "post": op("create or update a customer", "admin", Some("NewCustomer"), ("204", "saved", None), &admin) },
            "/v1/admin/customers/{card_token}": { "get": get_customer },
            "/v1/admin/customers/{card_token}/segment": { "put": segment },
            "/v1/admin/customers/{card_token}/erase": { "post": erase },
            "/v1/admin/segments/recompute": { "post": op("recompute computed segments now", "admin", None, ("200", "how many changed", Some("RecomputeResponse")), &admin) },
            "/v1/admin/campaigns": {
                "get": op("all campaigns", "admin", None, ("200", "campaigns", Some("CampaignList")), &admin),
                "post": op("create or replace a campaign", "admin", Some("Campaign"), ("204", "saved", None), &admin)
            }
        },
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "kioskId": { "type": "apiKey", "in": "header", "name": wire::HEADER_KIOSK_ID },
                "kioskTimestamp": { "type": "apiKey", "in": "header", "name": wire::HEADER_TIMESTAMP },
                "kioskSignature": { "type": "apiKey", "in": "header", "name": wire::HEADER_SIGNATURE },
                "adminToken": { "type": "apiKey", "in": "header", "name": wire::HEADER_ADMIN_TOKEN },
                "dashboardSession": { "type": "apiKey", "in": "cookie", "name": crate::dashboard::SESSION_COOKIE }
            }
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.extend(crate::dashboard::openapi_paths());
    }
    doc
}

/// `(METHOD, path)` of every operation in the document.
pub fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            if let Some(item) = item.as_object() {
                for method in item.keys() {
                    ops.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    ops.sort();
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ROUTES;

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let documented = operations(&document());
        let mut routed: Vec<(String, String)> = ROUTES
            .iter()
            .chain(crate::dashboard::ROUTES)
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        routed.sort();
        assert_eq!(documented, routed);
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "dangling reference to {name}");
        }
    }
}
