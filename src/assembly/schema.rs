//! The JSON Schema of the whole config (`sloprobe schema`, shipped as
//! `config/sloprobe.schema.json`): the daemon keys, and for `[[probe]]` the shared keys plus,
//! selected by `kind`, that kind's own settings. Editors with TOML schema support (taplo /
//! Even Better TOML) validate and complete probe files with it.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::{KINDS, RawDaemonFile};
use crate::config::ProbeCommon;

/// The schema as JSON.
pub fn config_schema() -> Value {
    let mut generator = SchemaSettings::draft07().into_generator();
    let mut root = generator.root_schema_for::<RawDaemonFile>().to_value();
    let common = object_parts(&mut generator, ProbeCommon::json_schema);
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.name).collect();

    let mut branches = Vec::new();
    for kind in KINDS {
        let own = object_parts(&mut generator, kind.schema);
        let mut properties = common.0.clone();
        properties.extend(own.0);
        properties.insert(
            "kind".into(),
            json!({ "const": kind.name, "description": common.0["kind"]["description"] }),
        );
        let mut required: Vec<Value> = common.1.clone();
        required.extend(own.1);
        branches.push(json!({
            "if": { "properties": { "kind": { "const": kind.name } }, "required": ["kind"] },
            "then": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false
            }
        }));
    }
    let mut kind_prop = common.0["kind"].clone();
    kind_prop["enum"] = json!(kinds);
    let mut base_props = Map::new();
    base_props.insert("kind".into(), kind_prop);
    let probe = json!({
        "type": "object",
        "description": "A probe: the shared keys plus the keys of its kind.",
        "properties": base_props,
        "required": ["name", "kind"],
        "allOf": branches
    });
    let obj = root.as_object_mut().expect("object schema");
    obj.insert("$id".into(), json!("https://sloprobe.dev/sloprobe.schema.json"));
    obj.insert(
        "title".into(),
        json!("sloprobe configuration (daemon file or probe file)"),
    );
    obj.insert(
        "description".into(),
        json!("A daemon file (location, server, include, export, demo, probes, SLOs) or a probe file (probes and SLOs). Reference: docs/config.md."),
    );
    obj["properties"].as_object_mut().expect("properties").insert(
        "probe".into(),
        json!({ "type": "array", "description": "Probes ([[probe]] tables).", "items": probe }),
    );
    let defs = generator.take_definitions(true);
    if !defs.is_empty() {
        let entry = obj.entry("definitions").or_insert_with(|| json!({}));
        entry.as_object_mut().expect("definitions").extend(defs);
    }
    root
}

/// The properties and required keys of an object schema (its definitions stay in the
/// generator).
fn object_parts(
    generator: &mut SchemaGenerator,
    schema: fn(&mut SchemaGenerator) -> Schema,
) -> (Map<String, Value>, Vec<Value>) {
    let value = schema(generator).to_value();
    let properties = value
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required = value
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    (properties, required)
}
