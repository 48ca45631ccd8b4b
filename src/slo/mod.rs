//! The SLO layer: `[[slo]]` entries checked against the probes and their histogram bucket
//! edges, turned into Prometheus recording and multi-window burn-rate alerting rules
//! (`rules.rs`) and a Grafana dashboard (`dashboard.rs`). Design notes: docs/slo.md.

pub mod dashboard;
pub mod rules;

use std::collections::HashSet;
use std::time::Duration;

use crate::budget;
use crate::config::{Config, ConfigError};
use crate::outcome::{ErrorType, Instrument, Unit};
use crate::probe::BuiltProbe;
use crate::telemetry::{Plan, buckets, otel_unit, prometheus::metric_name};

#[derive(Debug, Clone)]
pub struct Slo {
    pub name: String,
    pub probes: Vec<String>,
    pub sli: Sli,
    pub objective: f64,
    pub window: Duration,
    pub exclude_errors: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Sli {
    /// Good = a run that succeeded.
    Success,
    /// Good = a measured value at or under the threshold (a bucket edge of `metric`).
    Below {
        key: String,
        /// Prometheus base name of the histogram, e.g. `probe_http_ttfb_seconds`.
        metric: String,
        threshold: f64,
        unit: Unit,
    },
}

impl Slo {
    /// The allowed error ratio, 1 − objective.
    pub fn budget(&self) -> f64 {
        1.0 - self.objective
    }
}

/// Checks every `[[slo]]` against the built probes and the bucket edges they export.
pub fn resolve(config: &Config, probes: &[BuiltProbe], plan: &Plan) -> Result<Vec<Slo>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (raw, src) in &config.slos {
        let err = |span: std::ops::Range<usize>, key: &str, msg: String| src.error_at(span, Some(key), msg);
        let name = raw.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(err(
                raw.name.span(),
                "slo.name",
                format!("SLO name {name:?} must be A-Z a-z 0-9 - _ ."),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(err(raw.name.span(), "slo.name", format!("duplicate SLO name {name:?}")));
        }
        let listed = raw.probes.get_ref();
        if listed.is_empty() {
            return Err(err(raw.probes.span(), "slo.probes", "name at least one probe".into()));
        }
        let mut members = Vec::new();
        for p in listed {
            match probes.iter().find(|b| &b.name == p) {
                Some(b) => members.push(b),
                None => {
                    return Err(err(
                        raw.probes.span(),
                        "slo.probes",
                        format!("SLO {name:?} names probe {p:?}, which does not exist"),
                    ));
                }
            }
        }
        let objective = *raw.objective.get_ref();
        if !(objective > 0.0 && objective < 1.0) {
            return Err(err(
                raw.objective.span(),
                "slo.objective",
                "objective must be between 0 and 1, e.g. 0.999".into(),
            ));
        }
        let window = raw.window.get_ref().0;
        if window < Duration::from_secs(3600) {
            return Err(err(
                raw.window.span(),
                "slo.window",
                "window must be at least 1h (typically 28d or 30d)".into(),
            ));
        }
        let mut exclude_errors = Vec::new();
        for e in &raw.exclude_errors {
            if !ErrorType::ALL.iter().any(|t| t.as_str() == e.get_ref()) {
                return Err(err(
                    e.span(),
                    "slo.exclude_errors",
                    format!("{:?} is not an error type", e.get_ref()),
                ));
            }
            exclude_errors.push(e.get_ref().clone());
        }
        let sli_key = raw.sli.get_ref().as_str();
        let sli = if sli_key == "success" {
            if raw.threshold.is_some() {
                return Err(err(
                    raw.sli.span(),
                    "slo.threshold",
                    "a success SLI takes no threshold".into(),
                ));
            }
            Sli::Success
        } else {
            if !exclude_errors.is_empty() {
                return Err(err(
                    raw.sli.span(),
                    "slo.exclude_errors",
                    "exclude_errors applies to `sli = \"success\"` only".into(),
                ));
            }
            // Every member must feed the same histogram for this key.
            let mut found: Option<(&'static str, Unit)> = None;
            for b in &members {
                let m = b
                    .measures
                    .iter()
                    .find(|m| m.key == sli_key && m.instrument == Instrument::Histogram && m.unit != Unit::UnixTime)
                    .ok_or_else(|| {
                        err(
                            raw.sli.span(),
                            "slo.sli",
                            format!(
                                "probe {:?} ({}) has no histogram measurement {sli_key:?}",
                                b.name, b.kind
                            ),
                        )
                    })?;
                match found {
                    None => found = Some((m.metric, m.unit)),
                    Some((metric, _)) if metric != m.metric => {
                        return Err(err(
                            raw.sli.span(),
                            "slo.sli",
                            format!(
                                "the probes export {sli_key:?} as different metrics ({metric}, {})",
                                m.metric
                            ),
                        ));
                    }
                    _ => {}
                }
            }
            let (metric, unit) = found.expect("at least one member");
            let threshold = match &raw.threshold {
                Some(t) => {
                    budget::parse_value(unit, sli_key, t.get_ref()).map_err(|e| err(t.span(), "slo.threshold", e))?
                }
                None => members[0]
                    .budgets
                    .per_run
                    .iter()
                    .find(|t| t.key == sli_key)
                    .map(|t| t.value)
                    .ok_or_else(|| {
                        err(
                            raw.sli.span(),
                            "slo.threshold",
                            format!(
                                "set `threshold`, or a per-run `{sli_key}` budget on probe {:?}",
                                members[0].name
                            ),
                        )
                    })?,
            };
            let extra = plan.thresholds.get(metric).map(Vec::as_slice).unwrap_or(&[]);
            let edges = buckets::with_thresholds(unit, extra);
            if !edges
                .iter()
                .any(|e| (e - threshold).abs() <= 1e-12 * threshold.abs().max(1.0))
            {
                let at = raw.threshold.as_ref().map_or(raw.sli.span(), |t| t.span());
                return Err(err(
                    at,
                    "slo.threshold",
                    format!(
                        "threshold {threshold} is not a bucket edge of {metric}, so compliance could only be estimated; add it as a budget on the probes (e.g. `{sli_key} = ...` under [probe.budget]) or pick an edge: {}",
                        edges.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            Sli::Below {
                key: sli_key.to_string(),
                metric: metric_name(metric, otel_unit(unit), false),
                threshold,
                unit,
            }
        };
        out.push(Slo {
            name,
            probes: listed.clone(),
            sli,
            objective,
            window,
            exclude_errors,
        });
    }
    Ok(out)
}

/// A duration as Prometheus writes it: `30d`, `6h`, `5m`, `90s`.
pub fn prom_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
