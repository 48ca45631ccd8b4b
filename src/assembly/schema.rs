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
    let mut module_branches = Vec::new();
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
        if let Some((target_key, _)) = kind.target_key {
            // A module: the probe less its target and schedule, plus `allow`.
            let mut module_props = properties.clone();
            for key in [target_key, "every", "cron", "splay"] {
                module_props.remove(key);
            }
            module_props.insert(
                "allow".into(),
                json!({
                    "type": "array",
                    "minItems": 1,
                    "items": { "type": "string" },
                    "description": "Regexes a /probe target must match whole (e.g. '[a-z0-9.-]+\\.example\\.com:443')."
                }),
            );
            let mut module_required: Vec<Value> = required.iter().filter(|r| *r != target_key).cloned().collect();
            module_required.push(json!("allow"));
            module_branches.push(json!({
                "if": { "properties": { "kind": { "const": kind.name } }, "required": ["kind"] },
                "then": {
                    "type": "object",
                    "properties": module_props,
                    "required": module_required,
                    "additionalProperties": false
                }
            }));
        }
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
    let module_kinds: Vec<&str> = KINDS
        .iter()
        .filter(|k| k.target_key.is_some())
        .map(|k| k.name)
        .collect();
    let module = json!({
        "type": "object",
        "description": "A probe template that /probe?target=…&module=… fills with a target (blackbox_exporter's multi-target pattern).",
        "properties": { "kind": { "enum": module_kinds } },
        "required": ["name", "kind", "allow"],
        "allOf": module_branches
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
    obj["properties"].as_object_mut().expect("properties").insert(
        "module".into(),
        json!({ "type": "array", "description": "Modules for /probe ([[module]] tables).", "items": module }),
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
