//! The OpenAPI 3.1 document of protocol v1, served at `/openapi.json`. Its paths are the route
//! table's ([`crate::routes::table`]: each route carries its operation); the schemas of request
//! and answer bodies are generated from the wire types in `kiosk_protocol::wire`, so they cannot
//! drift from what the code sends.

use kiosk_protocol::wire;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::http::Route;

/// Every schema the operations name, each defined once: one generator registers the types
/// (nested types become `$ref`s to their own component), then hands over its definitions.
fn components() -> Map<String, Value> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "#/components/schemas/".into();
    let mut g = settings.into_generator();
    g.subschema_for::<wire::EnrollRequest>();
    g.subschema_for::<wire::EnrollResponse>();
    // The batch as the endpoint reads it: each event is checked on its own (`Envelope`).
    g.subschema_for::<wire::BatchRequest<Value>>();
    g.subschema_for::<kiosk_protocol::Envelope>();
    g.subschema_for::<wire::BatchResponse>();
    g.subschema_for::<wire::FeedResponse>();
    g.subschema_for::<wire::ProfileLookupResponse>();
    g.subschema_for::<wire::HealthResponse>();
    g.subschema_for::<wire::ErrorBody>();
    g.subschema_for::<wire::Campaign>();
    g.subschema_for::<kiosk_protocol::CardToken>();
    g.subschema_for::<kiosk_protocol::ident::Ident>();
    crate::api::admin::register_schemas(&mut g);
    crate::api::forwarding::register_schemas(&mut g);
    crate::api::accounts::register_schemas(&mut g);
    crate::api::releases::register_schemas(&mut g);
    crate::dashboard::register_schemas(&mut g);
    crate::phone::register_schemas(&mut g);
    crate::map::register_schemas(&mut g);
    crate::campaign_console::register_schemas(&mut g);
    crate::customers::register_schemas(&mut g);
    let mut out: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    for schema in out.values_mut() {
        drop_null_defaults(schema);
        state_integer_bounds(schema);
    }
    out.extend(crate::api::admin::lists());
    out.extend(crate::api::accounts::lists());
    out.extend(crate::api::releases::named());
    out.insert(
        "OpenApi".into(),
        json!({ "type": "object", "description": "this document" }),
    );
    out
}

/// Removes `"default": null` from properties that cannot be null (an absent optional field:
/// serde's default, not a value a client may send).
fn drop_null_defaults(schema: &mut Value) {
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for p in props.values_mut() {
            // A bare `$ref` property: the referenced schema says what it may be, never null.
            if let Some(o) = p.as_object_mut()
                && o.get("default") == Some(&Value::Null)
                && o.contains_key("$ref")
            {
                o.remove("default");
            }
        }
    }
}

/// Adds the bounds of Rust integer types (schemars states `format` but not every bound) so that
/// a number the type cannot hold is outside the schema too.
fn state_integer_bounds(schema: &mut Value) {
    match schema {
        Value::Object(o) => {
            let bounds: Option<(Value, Value)> = match o.get("format").and_then(Value::as_str) {
                Some("uint8") => Some((0.into(), u8::MAX.into())),
                Some("uint16") => Some((0.into(), u16::MAX.into())),
                Some("uint32") => Some((0.into(), u32::MAX.into())),
                Some("uint64") => Some((0.into(), u64::MAX.into())),
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("int64") => Some((i64::MIN.into(), i64::MAX.into())),
                _ => None,
            };
            if let Some((min, max)) = bounds {
                o.entry("minimum").or_insert(min);
                o.entry("maximum").or_insert(max);
            }
            o.values_mut().for_each(state_integer_bounds);
        }
        Value::Array(a) => a.iter_mut().for_each(state_integer_bounds),
        _ => {}
    }
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

    /// The schema `v` stands for, following one `$ref`.
    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
            None => v,
        }
    }

    /// Every JSON body an operation takes or answers with names its fields: an object schema
    /// without `properties` proves nothing about what travels.
    #[test]
    fn every_json_body_schema_states_its_fields() {
        let doc = document();
        let mut bodies = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let mut contents = vec![&op["requestBody"]["content"]];
                for answer in op["responses"].as_object().unwrap().values() {
                    contents.push(&answer["content"]);
                }
                for c in contents {
                    for (media, m) in c.as_object().into_iter().flatten() {
                        if media.contains("json") {
                            bodies.push((
                                format!("{method} {path} {media}"),
                                resolve(&doc, &m["schema"]),
                            ));
                        }
                    }
                }
            }
        }
        assert!(bodies.len() > 30, "{}", bodies.len());
        for (at, schema) in bodies {
            let schema = match schema["type"].as_str() {
                Some("array") => resolve(&doc, &schema["items"]),
                _ => schema,
            };
            if schema["description"] == "this document" {
                continue;
            }
            assert!(
                schema["properties"].is_object() || schema["oneOf"].is_array(),
                "{at}: {schema}"
            );
        }
        for name in [
            "Dashboard",
            "StoreStats",
            "CustomerRecord",
            "NewCustomer",
            "LiveQueue",
            "StoreSummary",
        ] {
            let fields = doc["components"]["schemas"][name]["properties"].as_object();
            assert!(
                fields.is_some_and(|f| f.len() >= 3),
                "{name} lists no fields"
            );
        }
    }

    #[test]
    fn path_parameters_carry_their_patterns() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["CardToken"]["pattern"], "^[0-9a-f]{32}$");
        assert_eq!(
            schemas["Ident"]["pattern"],
            kiosk_protocol::ident::IDENT_PATTERN
        );
        for (path, item) in doc["paths"].as_object().unwrap() {
            for op in item.as_object().unwrap().values() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let schema = resolve(&doc, &p["schema"]);
                    if p["in"] == "path" {
                        assert!(
                            schema["pattern"].is_string(),
                            "{path} {}: {schema}",
                            p["name"]
                        );
                    }
                    if p["name"] == "card_token" {
                        assert_eq!(
                            p["schema"]["$ref"], "#/components/schemas/CardToken",
                            "{path}"
                        );
                    }
                }
            }
        }
    }

    /// Components are defined once and referenced: the document used to inline the same
    /// definitions in every root schema (287 KB, most of it copies).
    #[test]
    fn components_are_defined_once() {
        let doc = document();
        let text = doc.to_string();
        // 107 KB before issue 20, 160 KB with its routes (releases, store configs, fleet,
        // retention), about 230 KB with issue 21's (accounts, reports, map, campaigns,
        // forwarding): a bound that catches copies (they doubled it), not growth.
        assert!(text.len() < 320_000, "{} bytes", text.len());
        for schema in doc["components"]["schemas"].as_object().unwrap().values() {
            assert!(schema.get("components").is_none() && schema.get("$defs").is_none());
        }
    }

    #[test]
    fn the_event_stream_names_its_events_and_their_data() {
        let doc = document();
        let stream = &doc["paths"]["/dashboard/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            ["schema"]["oneOf"];
        let events: Vec<(&str, &Value)> = stream
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["properties"]["event"]["const"].as_str().unwrap(),
                    &e["properties"]["data"],
                )
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["dashboard", "queue", "presence", "expired", "problem"]
        );
        assert_eq!(
            events[0].1["contentSchema"]["$ref"],
            "#/components/schemas/Dashboard"
        );
        assert_eq!(
            events[1].1["contentSchema"]["$ref"],
            "#/components/schemas/LiveQueue"
        );
        assert_eq!(
            events[2].1["contentSchema"]["$ref"],
            "#/components/schemas/StorePresence"
        );
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
