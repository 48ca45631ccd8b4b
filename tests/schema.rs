//! The config's JSON Schema: shipped in step with the code, accepted by a real JSON Schema
//! validator for every shipped config, rejecting bad ones, and mirrored key by key in
//! docs/config.md.

use std::path::Path;

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Value {
    sloprobe::assembly::schema::config_schema()
}

fn toml_as_json(text: &str) -> Value {
    let v: toml::Value = toml::from_str(text).unwrap();
    serde_json::to_value(v).unwrap()
}

fn errors(validator: &jsonschema::Validator, text: &str) -> Vec<String> {
    validator
        .iter_errors(&toml_as_json(text))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn shipped_schema_is_in_step() {
    let shipped: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("config/sloprobe.schema.json")).unwrap()).unwrap();
    assert!(
        shipped == schema(),
        "config/sloprobe.schema.json is stale: run `cargo run -- schema > config/sloprobe.schema.json`"
    );
}

#[test]
fn shipped_configs_validate_and_bad_ones_do_not() {
    let validator = jsonschema::draft7::new(&schema()).expect("the schema itself is valid draft-07");
    let mut files = vec![root().join("config/sloprobe.toml"), root().join("config/example.toml")];
    for e in std::fs::read_dir(root().join("probes")).unwrap().flatten() {
        files.push(e.path());
    }
    for f in &files {
        let errs = errors(&validator, &std::fs::read_to_string(f).unwrap());
        assert!(errs.is_empty(), "{}: {errs:?}", f.display());
    }

    let http = "[[probe]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\nevery = \"30s\"\n";
    let assistant =
        "[[probe]]\nname = \"b\"\nkind = \"assistant\"\nformat = \"sse\"\nurl = \"http://x/\"\nevery = \"30s\"\n";
    assert!(errors(&validator, http).is_empty());
    assert!(errors(&validator, assistant).is_empty());
    for bad in [
        format!("{http}[probe.expect]\nstatuss = [200]\n"),
        format!("{http}stall_timeout = \"1s\"\n"),
        format!("{http}connection = \"sometimes\"\n"),
        format!("{http}[probe.tls]\ninsecure_skip_verify = \"yes\"\n"),
        format!("{assistant}follow_redirects = 2\n"),
        format!("{assistant}format = \"grpc\"\n").replace("format = \"sse\"\n", ""),
        format!("{assistant}[probe.expect]\nbody_regex = \"x\"\n"),
        http.replace("\"http\"", "\"htp\""),
        http.replace("url = \"http://x/\"\n", ""),
        format!("locaton = \"x\"\n{http}"),
        format!("[server]\nlisten = 9464\n{http}"),
    ] {
        assert!(!errors(&validator, &bad).is_empty(), "schema accepted:\n{bad}");
    }
}

/// The key table of one `## ` section of docs/config.md: the first column's code spans.
fn doc_keys(section_title: &str) -> Vec<String> {
    let docs = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
    let start = docs
        .find(section_title)
        .unwrap_or_else(|| panic!("docs/config.md has no section {section_title:?}"));
    let rest = &docs[start + section_title.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    section
        .lines()
        .filter(|l| l.starts_with("| `") || l.starts_with("| [probe"))
        .filter_map(|l| l.split('|').nth(1))
        .map(|c| c.trim().replace('`', ""))
        .collect()
}

/// Every key of a kind's settings as docs write them: `url`, `[probe.request] method`.
fn schema_keys(kind: &str) -> Vec<String> {
    let s = schema();
    let branch = s["properties"]["probe"]["items"]["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["if"]["properties"]["kind"]["const"] == kind)
        .unwrap_or_else(|| panic!("no schema branch for kind {kind}"))
        .clone();
    let common: Vec<String> = schema_common();
    let mut keys = Vec::new();
    for (key, prop) in branch["then"]["properties"].as_object().unwrap() {
        if common.contains(key) {
            continue;
        }
        let def = prop["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/definitions/"))
            .map(|name| s["definitions"][name].clone());
        match def.as_ref().and_then(|d| d["properties"].as_object()) {
            Some(nested) => keys.extend(nested.keys().map(|k| format!("[probe.{key}] {k}"))),
            None => keys.push(key.clone()),
        }
    }
    keys
}

fn schema_common() -> Vec<String> {
    let mut generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let v = <sloprobe::config::ProbeCommon as schemars::JsonSchema>::json_schema(&mut generator).to_value();
    v["properties"].as_object().unwrap().keys().cloned().collect()
}

fn covered(doc: &[String], key: &str) -> bool {
    // A row may document several keys at once: "`body` / `body_file`".
    doc.iter()
        .any(|d| d.split(" / ").any(|part| part.trim() == key) || d == key)
}

#[test]
fn docs_list_every_key_of_every_kind() {
    let mut missing = Vec::new();
    for kind in sloprobe::assembly::KINDS {
        let doc = doc_keys(&format!("## `kind = \"{}\"`", kind.name));
        for key in schema_keys(kind.name) {
            if !covered(&doc, &key) {
                missing.push(format!("{}: {key}", kind.name));
            }
        }
    }
    let mut generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let rum = <sloprobe::rum::RumConfig as schemars::JsonSchema>::json_schema(&mut generator).to_value();
    let doc = doc_keys("## `[rum]`: the RUM collector");
    for key in rum["properties"].as_object().unwrap().keys() {
        if !covered(&doc, key) {
            missing.push(format!("[rum]: {key}"));
        }
    }
    let doc = doc_keys("## Probe (every kind)");
    for key in schema_common() {
        if !covered(&doc, &key) && key != "budget" {
            missing.push(format!("every kind: {key}"));
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from docs/config.md:\n{}",
        missing.join("\n")
    );
}

#[test]
fn docs_name_every_kind_where_they_list_kinds() {
    let docs = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
    let row = docs
        .lines()
        .find(|l| l.starts_with("| `kind` |"))
        .expect("the `kind` row of docs/config.md");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for kind in sloprobe::assembly::KINDS {
        assert!(
            row.contains(&format!("`{}`", kind.name)),
            "docs/config.md's kind row lacks {}: {row}",
            kind.name
        );
        assert!(
            docs.contains(&format!("## `kind = \"{}\"`", kind.name)),
            "docs/config.md has no section for {}",
            kind.name
        );
        assert!(
            readme.contains(&format!("- `{}`:", kind.name)),
            "README's list of probes lacks {}",
            kind.name
        );
    }
    assert!(!row.contains("to come"), "{row}");
}
