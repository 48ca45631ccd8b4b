//! The keys every `[[probe]]` shares (name, kind, schedule, timeout, budgets, labels) and
//! the split of a probe table into those and the kind's own keys. No key of one kind is
//! named here: the rest of the table, spans kept, goes to the kind's settings type.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::IntoDeserializer as _;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, Source};
use super::file::ProbeTable;
use super::values::{Dur, Spanned, ThresholdSchema};

/// The keys every probe kind shares. The kind's own keys are its settings type's.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeCommon {
    /// Unique across all files; 1-64 of A-Z a-z 0-9 - _ .
    pub name: Spanned<String>,
    /// The probe kind; it decides which other keys the table takes.
    pub kind: Spanned<String>,
    /// Fixed interval, 100ms to 366d; set this or `cron`.
    pub every: Option<Spanned<Dur>>,
    /// Cron expression, 5 fields (minute first) or 6 (seconds first), local time.
    pub cron: Option<Spanned<String>>,
    /// Upper bound of the name-derived start offset; "0s" turns it off.
    pub splay: Option<Spanned<Dur>>,
    /// Bounds the whole run; shorter than the interval. Default min(10s, 0.9 × interval).
    pub timeout: Option<Spanned<Dur>>,
    /// Per-run thresholds by measurement, and `pNN` tables of percentile thresholds.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ThresholdSchema>")]
    pub budget: BTreeMap<String, Spanned<toml::Value>>,
    /// Up to 8 labels on every series of this probe and its SLOs' alerts, e.g. `team = "search"`.
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// Send W3C `traceparent` (the run's trace id) on every HTTP request of a run
    /// (default true; docs/tracing.md).
    pub trace_context: Option<bool>,
}

/// The keys `ProbeCommon` takes; everything else in a `[[probe]]` table is the kind's.
pub const COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "every",
    "cron",
    "splay",
    "timeout",
    "budget",
    "labels",
    "trace_context",
];

/// At most this many `[probe.labels]` per probe, so series stay bounded.
pub const MAX_PROBE_LABELS: usize = 8;

/// Label names the daemon sets itself; `[probe.labels]` cannot take them.
const RESERVED_LABELS: &[&str] = &[
    "le",
    "job",
    "instance",
    "outcome",
    "measurement",
    "threshold",
    "verdict",
    "phase",
    "reason",
    "slo",
    "severity",
];

/// Splits one `[[probe]]` table into the shared keys (parsed) and the kind's (as written).
pub fn split_probe<'a>(table: ProbeTable<'a>, source: &Source) -> Result<(ProbeCommon, ProbeTable<'a>), ConfigError> {
    let span = table.span();
    let DeValue::Table(entries) = table.into_inner() else {
        return Err(source.error_at(span, Some("probe"), "write probes as [[probe]] tables"));
    };
    let (mut common, mut own) = (DeTable::new(), DeTable::new());
    for (key, value) in entries {
        if COMMON_KEYS.contains(&key.get_ref().as_ref()) {
            common.insert(key, value);
        } else {
            own.insert(key, value);
        }
    }
    let common = ProbeCommon::deserialize(toml::Spanned::new(span.clone(), DeValue::Table(common)).into_deserializer())
        .map_err(|e| probe_key_error(source, &e, span.start, None))?;
    Ok((common, toml::Spanned::new(span, DeValue::Table(own))))
}

/// A serde error inside a `[[probe]]` table, with the key path named: `missing field` is
/// placed at the probe's name, and an unknown key says which kind rejected it.
pub fn probe_key_error(source: &Source, e: &toml::de::Error, name_at: usize, kind: Option<&str>) -> ConfigError {
    let message = e.message().trim();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        // Missing inside a nested table (`[[probe.step]]`): point there, not at the probe.
        if let Some(span) = e.span() {
            let at = source.error_at(span.clone(), None, "");
            if at.key.starts_with("probe.") {
                return source.error_at(
                    span,
                    Some(&format!("{}.{field}", at.key)),
                    format!("each [{}] table needs `{field}`", at.key),
                );
            }
        }
        let what = kind.map_or_else(|| "every probe".to_string(), |k| format!("a {k:?} probe"));
        return source.error_at(
            name_at..name_at,
            Some(&format!("probe.{field}")),
            format!("{what} needs `{field}`"),
        );
    }
    let mut err = source.from_toml(e);
    if let Some(rest) = message.strip_prefix("unknown variant") {
        // "unknown variant `grpc`" reads better as "unknown format `grpc`".
        let what = err.key.rsplit('.').next().unwrap_or("value").to_string();
        err.message = format!("unknown {what}{rest}");
    }
    if message.starts_with("unknown field") {
        // A key of the [[probe]] table itself may be a shared one or the kind's own:
        // list and suggest from both.
        let own_table = err.key.matches('.').count() == 1;
        let also: &[&str] = if own_table { COMMON_KEYS } else { &[] };
        let context = kind.map_or_else(String::new, |k| format!(" for kind {k:?}"));
        if let Some(m) = super::error::unknown_field(message, also, &context) {
            err.message = m;
        }
    }
    err
}

/// The probe's name, checked.
pub fn check_name(raw: &ProbeCommon, source: &Source) -> Result<String, ConfigError> {
    let name = raw.name.get_ref();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(source.error_at(
            raw.name.span(),
            Some("probe.name"),
            format!("probe name {name:?} must be 1-64 characters of A-Z a-z 0-9 - _ ."),
        ));
    }
    Ok(name.clone())
}

/// A Prometheus label name we accept in config: `[a-zA-Z_][a-zA-Z0-9_]*`, not reserved.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
        && name.len() <= 64
}

/// `[probe.labels]`, checked: bounded names and fixed values.
pub fn check_labels(raw: &ProbeCommon, source: &Source) -> Result<Vec<(String, String)>, ConfigError> {
    if raw.labels.len() > MAX_PROBE_LABELS {
        let (_, first) = raw.labels.iter().nth(MAX_PROBE_LABELS).expect("more than the max");
        return Err(source.error_at(
            first.span(),
            Some("probe.labels"),
            format!(
                "at most {MAX_PROBE_LABELS} labels per probe (each multiplies nothing, but each is on every series)"
            ),
        ));
    }
    let mut out = Vec::with_capacity(raw.labels.len());
    for (k, v) in &raw.labels {
        let key = format!("probe.labels.{k}");
        let name_ok = valid_label_name(k)
            && k.len() <= 32
            && !RESERVED_LABELS.contains(&k.as_str())
            && !k.starts_with("probe_")
            && !k.starts_with("otel_")
            && !k.starts_with("error_")
            && !k.contains("__");
        if !name_ok {
            return Err(source.error_at(
                v.span(),
                Some(&key),
                format!("label name {k:?}: use 1-32 of a-z A-Z 0-9 _ (not starting with a digit), and not a name sloprobe sets itself (probe_*, otel_*, error_*, le, job, instance, outcome, measurement, threshold, verdict, phase, reason, slo, severity)"),
            ));
        }
        let value = v.get_ref();
        if value.is_empty() || value.len() > 64 || value.chars().any(char::is_control) {
            return Err(source.error_at(
                v.span(),
                Some(&key),
                "label values are 1-64 printable characters (a fixed value, never a URL or an id)",
            ));
        }
        out.push((k.clone(), value.clone()));
    }
    Ok(out)
}
