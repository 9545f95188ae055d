//! The OpenAPI 3.1 document of protocol v1, served at `/openapi.json`. Its paths are the route
//! table's ([`crate::routes::table`]: each route carries its operation); the schemas of request
//! and answer bodies are generated from the wire types in `kiosk_protocol::wire`, so they cannot
//! drift from what the code sends.

use kiosk_protocol::wire;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::http::Route;

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
    out.extend(crate::api::admin::schemas());
    out.insert(
        "OpenApi".into(),
        json!({ "type": "object", "description": "this document" }),
    );
    out.extend(crate::dashboard::schemas());
    out
}

/// The document of the endpoint's route table.
pub fn document() -> Value {
    document_of(&crate::routes::table(false))
}

/// The document of `routes`.
pub fn document_of(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let item = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        item[r.verb.as_str().to_ascii_lowercase()] = r.doc.clone();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CRM endpoint, protocol v1",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Kiosk requests are signed: x-kiosk-signature = hex HMAC-SHA256(device secret, METHOD\\npath-and-query\\ntimestamp\\nhex SHA-256(body as sent)), timestamps within ±300 s, each signed request accepted once (409 replay)."
        },
        "paths": paths,
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "kioskId": { "type": "apiKey", "in": "header", "name": wire::HEADER_KIOSK_ID },
                "kioskTimestamp": { "type": "apiKey", "in": "header", "name": wire::HEADER_TIMESTAMP },
                "kioskSignature": { "type": "apiKey", "in": "header", "name": wire::HEADER_SIGNATURE },
                "adminToken": { "type": "apiKey", "in": "header", "name": wire::HEADER_ADMIN_TOKEN },
                "dashboardSession": { "type": "apiKey", "in": "cookie", "name": crate::http::auth::SESSION_COOKIE }
            }
        }
    })
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

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        assert_eq!(operations(&document()), crate::routes::operations());
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
