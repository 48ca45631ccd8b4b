//! The answer of `/probe?target=…&module=…`: one run, in the Prometheus text format, the
//! way blackbox_exporter answers a scrape. Every value is a gauge of this run alone (the
//! scraping Prometheus keeps the history), named as on `/metrics` with `probe_success`,
//! `probe_duration_seconds` and blackbox_exporter's names beside them where one exists.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use opentelemetry::Value;

use super::attributes::otel_unit;
use super::names::{float_text, metric_name};
use super::prometheus::{escape_help, label_text};
use crate::outcome::{Measure, Outcome};

/// One metric name's measure and its series: (label text, value).
type Family<'a> = (&'a Measure, Vec<(String, f64)>);

/// blackbox_exporter's name for a measurement, where it has one with the same meaning.
fn blackbox_name(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "cert_expiry" => (
            "probe_ssl_earliest_cert_expiry",
            "Earliest notAfter in the server's certificate chain, Unix seconds.",
        ),
        "dns" => (
            "probe_dns_lookup_time_seconds",
            "Time resolving the target's name, seconds.",
        ),
        _ => return None,
    })
}

/// The run as text. Measurements recorded more than once (ping round trips) give their mean.
pub fn render(outcome: &Outcome, measures: &[&Measure]) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, labels: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} gauge", escape_help(help, false));
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {}", float_text(value));
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {}", float_text(value));
        }
    };
    gauge(
        "probe_success",
        "1 when the run succeeded and met its per-run budgets, else 0.",
        "",
        if outcome.passed() { 1.0 } else { 0.0 },
    );
    gauge(
        "probe_duration_seconds",
        "How long the run took, seconds.",
        "",
        outcome.get("total").unwrap_or(0.0),
    );
    if let Some(e) = &outcome.error {
        let labels = label_text([("error.type", &Value::from(e.kind.as_str()))].into_iter());
        gauge("probe_error", "1: the run failed with this error.type.", &labels, 1.0);
    }
    // Series of one metric name come together, as the text format wants.
    let mut by_name: BTreeMap<String, Family<'_>> = BTreeMap::new();
    for m in measures {
        if m.key == "total" {
            continue;
        }
        let value = outcome.get(m.key).or_else(|| {
            let (sum, n) = outcome
                .samples_of(m.key)
                .fold((0.0, 0usize), |(s, n), x| (s + x.value, n + 1));
            (n > 0).then(|| sum / n as f64)
        });
        let Some(value) = value else { continue };
        if let Some((name, help)) = blackbox_name(m.key) {
            gauge(name, help, "", value);
        }
        let fixed: Vec<(&str, Value)> = m.fixed.iter().map(|(k, v)| (*k, Value::from(*v))).collect();
        let labels = label_text(fixed.iter().map(|(k, v)| (*k, v)));
        let name = metric_name(m.metric, otel_unit(m.unit), false);
        by_name
            .entry(name)
            .or_insert_with(|| (m, Vec::new()))
            .1
            .push((labels, value));
    }
    for (name, (m, series)) in by_name {
        // The catalog's words on aggregation ("Count and sum only") describe the instrument
        // on /metrics, not this one run's gauge.
        let help = m
            .description
            .split(" Count and sum only")
            .next()
            .unwrap_or(m.description);
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} gauge", escape_help(help, false));
        for (labels, value) in series {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {}", float_text(value));
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {}", float_text(value));
            }
        }
    }
    out
}
