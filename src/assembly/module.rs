//! `[[module]]`: a probe written without its target, which `/probe?target=…&module=…`
//! fills in and runs once per scrape (blackbox_exporter's multi-target pattern). A module
//! is a `[[probe]]` table less the kind's target key and the schedule, plus `allow`:
//! the patterns a target must match whole, so the endpoint cannot be pointed at any host.

use std::path::PathBuf;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize as _;
use serde::de::IntoDeserializer as _;
use toml::de::DeValue;

use super::kinds;
use crate::config::{ConfigError, ProbeTable, Source};
use crate::probe::{Kind, ProbeConfig};

/// Keys a module may not set: it runs when scraped, on the target it is given.
const SCHEDULE_KEYS: &[&str] = &["every", "cron", "splay"];
/// A module's stand-in schedule: a module never runs on one, but a probe needs it.
const STAND_IN_EVERY: &str = "1d";

#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub kind: &'static Kind,
    /// Each anchored at both ends.
    allow: Vec<Regex>,
    /// As written.
    allow_written: Vec<String>,
    /// The table as written, less `allow`.
    table: toml::Table,
    source_path: PathBuf,
    /// The module with its kind's sample target, checked as a probe (for `check` and so
    /// that `Settings::build` errors point at the module's lines).
    pub sample: ProbeConfig,
}

impl Module {
    /// Whether `target` matches one of the `allow` patterns, whole.
    pub fn allows(&self, target: &str) -> bool {
        self.allow.iter().any(|re| re.is_match(target))
    }

    pub fn allow_patterns(&self) -> &[String] {
        &self.allow_written
    }

    /// The module as a probe on `target`; the error says what is wrong with the target.
    pub fn instantiate(&self, target: &str) -> Result<ProbeConfig, String> {
        let (key, _) = self.kind.target_key.expect("checked at load");
        let mut table = self.table.clone();
        table.insert(key.to_string(), toml::Value::String(target.to_string()));
        table.insert("every".into(), toml::Value::String(STAND_IN_EVERY.into()));
        let mut doc = toml::Table::new();
        doc.insert("probe".into(), toml::Value::Array(vec![toml::Value::Table(table)]));
        let text = toml::to_string(&doc).map_err(|e| e.to_string())?;
        let source = Arc::new(Source {
            path: PathBuf::from(format!("{} (module {})", self.source_path.display(), self.name)),
            text,
        });
        let split = crate::config::split_file::<serde::de::IgnoredAny>(&source).map_err(|e| e.message)?;
        let table = split.probes.into_iter().next().ok_or("the module made no probe")?;
        kinds::read_probe(table, &source).map_err(|e| e.message)
    }
}

fn key_at<'a>(entries: &toml::de::DeTable<'a>, key: &str) -> Option<(std::ops::Range<usize>, DeValue<'a>)> {
    entries
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(k, v)| (k.span(), v.get_ref().clone()))
}

/// One `[[module]]` table: checked as a probe with its kind's sample target.
pub fn read_module(table: ProbeTable<'_>, source: &Arc<Source>) -> Result<Module, ConfigError> {
    let span = table.span();
    let DeValue::Table(mut entries) = table.into_inner() else {
        return Err(source.error_at(span, Some("module"), "write modules as [[module]] tables"));
    };
    for key in SCHEDULE_KEYS {
        if let Some((at, _)) = key_at(&entries, key) {
            return Err(source.error_at(
                at,
                Some(&format!("module.{key}")),
                format!("a module runs when /probe is scraped; remove `{key}`"),
            ));
        }
    }
    let kind_name = match key_at(&entries, "kind") {
        Some((_, DeValue::String(s))) => s.to_string(),
        _ => return Err(source.error_at(span, Some("module.kind"), "a module needs `kind`")),
    };
    let offered = || {
        let names: Vec<&str> = kinds::KINDS
            .iter()
            .filter(|k| k.target_key.is_some())
            .map(|k| k.name)
            .collect();
        names.join(", ")
    };
    let Some(kind) = kinds::kind(&kind_name) else {
        return Err(source.error_at(
            span,
            Some("module.kind"),
            format!("unknown kind {kind_name:?}; modules take: {}", offered()),
        ));
    };
    let Some((target_key, sample_target)) = kind.target_key else {
        return Err(source.error_at(
            span,
            Some("module.kind"),
            format!(
                "a {kind_name} probe cannot be a module (it has no single target); modules take: {}",
                offered()
            ),
        ));
    };
    if let Some((at, _)) = key_at(&entries, target_key) {
        return Err(source.error_at(
            at,
            Some(&format!("module.{target_key}")),
            format!("a module's `{target_key}` comes from /probe?target=…; remove it here"),
        ));
    }
    let allow_key = entries.keys().find(|k| k.get_ref() == "allow").cloned();
    let Some(allow_key) = allow_key else {
        return Err(source.error_at(
            span,
            Some("module.allow"),
            "a module needs `allow`: the patterns a target must match (e.g. allow = ['[a-z0-9.-]+\\.example\\.com:443']), so /probe cannot be pointed at any host",
        ));
    };
    let allow_value = entries.remove(&allow_key).expect("found above");
    let allow_at = allow_value.span();
    let patterns: Vec<String> = Vec::<String>::deserialize(allow_value.into_deserializer())
        .map_err(|_| source.error_at(allow_at.clone(), Some("module.allow"), "`allow` is a list of regexes"))?;
    if patterns.is_empty() {
        return Err(source.error_at(
            allow_at,
            Some("module.allow"),
            "`allow` is empty, so no target could be probed",
        ));
    }
    let allow = patterns
        .iter()
        .map(|p| {
            Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                source.error_at(
                    allow_at.clone(),
                    Some("module.allow"),
                    format!("invalid regex {p:?}: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let owned =
        toml::Table::deserialize(toml::Spanned::new(span.clone(), DeValue::Table(entries.clone())).into_deserializer())
            .map_err(|e| source.from_toml(&e))?;
    let mut checked = entries;
    let synthetic = |s: &'static str| toml::Spanned::new(span.clone(), std::borrow::Cow::Borrowed(s));
    checked.insert(
        synthetic(target_key),
        toml::Spanned::new(span.clone(), DeValue::String(sample_target.into())),
    );
    checked.insert(
        synthetic("every"),
        toml::Spanned::new(span.clone(), DeValue::String(STAND_IN_EVERY.into())),
    );
    let sample = kinds::read_probe(toml::Spanned::new(span, DeValue::Table(checked)), source).map_err(|mut e| {
        e.key = e.key.replacen("probe", "module", 1);
        e
    })?;
    Ok(Module {
        name: sample.name.clone(),
        kind,
        allow,
        allow_written: patterns,
        table: owned,
        source_path: source.path.clone(),
        sample,
    })
}
