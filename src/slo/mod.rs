//! The SLO layer: `[[slo]]` entries checked against the probes, turned into Prometheus
//! recording and multi-window burn-rate alerting rules (`rules.rs`, with Sloth-compatible
//! metadata) and a Grafana dashboard (`dashboard.rs`). A measurement SLI is read from the
//! exact threshold counters (`probe.threshold.runs`), so any threshold is exact. Design
//! notes: docs/slo.md.

mod config;
pub mod dashboard;
pub mod rules;
pub mod status;
pub mod windows;

use std::collections::HashSet;
use std::time::Duration;

use crate::budget;
use crate::config::{ConfigError, Source, Spanned, valid_label_name};
use crate::rum::RumSettings;

use crate::outcome::{ErrorType, Unit};
use crate::probe::BuiltProbe;
pub use config::{RawErrorBudget, RawSlo, SloSeverity};
pub use windows::{Burn, Tier};

#[derive(Debug, Clone)]
pub struct Slo {
    pub name: String,
    /// The probes it covers; empty for a field (RUM) SLO.
    pub probes: Vec<String>,
    /// RUM routes it covers (`*` = all); empty for a probe SLO.
    pub routes: Vec<String>,
    pub sli: Sli,
    pub objective: f64,
    pub window: Duration,
    pub exclude_errors: Vec<String>,
    /// Static labels on every rule and alert: the SLO's own, plus each probe label all
    /// its probes share.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub page_severity: String,
    pub ticket_severity: String,
    /// Locations that must burn at once for an alert (1 = any location).
    pub min_locations: u32,
    /// Sloth's service label.
    pub service: String,
    pub budgeting: Budgeting,
    /// The four burn-rate conditions, windows scaled to the period and widened for slow
    /// probes (`windows.rs`).
    pub burns: Vec<Burn>,
    /// A page needs at least this many bad events in its long window.
    pub min_bad_events: u32,
    /// The interval of the slowest probe (none for RUM SLOs).
    pub slowest: Option<Duration>,
    /// What `check` should tell about this SLO (widened windows).
    pub notes: Vec<String>,
}

/// How the error budget is counted (OpenSLO's budgetingMethod).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budgeting {
    /// Bad events / all events.
    Occurrences,
    /// Bad slices / slices with data; a slice is bad when under `target` of its events
    /// are good.
    Timeslices { slice: Duration, target: f64 },
}

/// A `[[error_budget]]`, checked: breach time shared by time-slice SLOs.
#[derive(Debug, Clone)]
pub struct ErrorBudget {
    pub name: String,
    pub slos: Vec<String>,
    pub slice: Duration,
    pub budget: Duration,
    pub period: Duration,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub severity: String,
}

#[derive(Debug, Clone)]
pub enum Sli {
    /// Good = a run that succeeded.
    Success,
    /// Good = a run whose `key` measured at or under `threshold` (exact, from
    /// `probe_threshold_runs_total`).
    Below { key: String, threshold: f64, unit: Unit },
    /// Good = a real page view whose vital `key` was at or under `threshold` (exact, from
    /// `rum_threshold_page_views_total`).
    Field { key: String, threshold: f64, unit: Unit },
    /// Good = an upload part that arrived (ok or after retries), of every part the
    /// workflow probes sent (`probe_workflow_parts_total`): events are parts, not runs.
    Parts,
}

impl Sli {
    /// A threshold SLI's measurement and threshold.
    pub fn threshold(&self) -> Option<(&str, f64)> {
        match self {
            Sli::Success | Sli::Parts => None,
            Sli::Below { key, threshold, .. } | Sli::Field { key, threshold, .. } => Some((key, *threshold)),
        }
    }
}

impl Slo {
    /// The allowed error ratio, 1 − objective.
    pub fn budget(&self) -> f64 {
        1.0 - self.objective
    }
}

/// Checks every `[[slo]]` (with the file it was written in) against the built probes and
/// the RUM collector's settings.
pub fn resolve(
    slos: &[(RawSlo, std::sync::Arc<Source>)],
    rum: Option<&RumSettings>,
    probes: &[BuiltProbe],
) -> Result<Vec<Slo>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (raw, src) in slos {
        let err = |span: std::ops::Range<usize>, key: &str, msg: String| src.error_at(span, Some(key), msg);
        let name = raw.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(err(
                raw.name.span(),
                "slo.name",
                format!("SLO name {name:?} must be A-Z a-z 0-9 - _ ."),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(err(raw.name.span(), "slo.name", format!("duplicate SLO name {name:?}")));
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
        let (members, routes, sli, exclude_errors) = match (&raw.probes, &raw.routes) {
            (Some(_), Some(r)) => {
                return Err(err(
                    r.span(),
                    "slo.routes",
                    "an SLO covers either probes or RUM routes, not both".into(),
                ));
            }
            (None, None) => {
                return Err(err(
                    raw.name.span(),
                    "slo.probes",
                    format!("SLO {name:?} needs `probes` (or `routes` for RUM page views)"),
                ));
            }
            (None, Some(routes)) => {
                let (routes, sli) = field_sli(rum, raw, routes, &err)?;
                (Vec::new(), routes, sli, Vec::new())
            }
            (Some(listed), None) => {
                let (members, sli, exclude) = probe_sli(raw, listed, probes, &err)?;
                (members, Vec::new(), sli, exclude)
            }
        };
        let mut labels = Vec::new();
        for (k, v) in &raw.labels {
            if !valid_label_name(k)
                || matches!(k.as_str(), "slo" | "severity" | "probe_location")
                || k.starts_with("sloth_")
            {
                return Err(err(
                    v.span(),
                    &format!("slo.labels.{k}"),
                    format!(
                        "{k:?} cannot be a label name here (A-Z a-z 0-9 _, not slo, severity, probe_location or sloth_*)"
                    ),
                ));
            }
            labels.push((k.clone(), v.get_ref().clone()));
        }
        // Probe labels every member shares route the SLO's alerts too.
        if let Some(first) = members.first() {
            for (k, v) in &first.labels {
                let shared = members
                    .iter()
                    .all(|m| m.labels.iter().any(|(k2, v2)| k2 == k && v2 == v));
                if shared && !labels.iter().any(|(k2, _)| k2 == k) {
                    labels.push((k.clone(), v.clone()));
                }
            }
        }
        let mut annotations = Vec::new();
        for (k, v) in &raw.annotations {
            if !valid_label_name(k) {
                return Err(err(
                    v.span(),
                    &format!("slo.annotations.{k}"),
                    format!("{k:?} is not a valid annotation name (A-Z a-z 0-9 _)"),
                ));
            }
            annotations.push((k.clone(), v.get_ref().clone()));
        }
        let min_locations = match &raw.min_locations {
            Some(n) if *n.get_ref() == 0 => {
                return Err(err(
                    n.span(),
                    "slo.min_locations",
                    "min_locations must be at least 1".into(),
                ));
            }
            Some(n) => *n.get_ref(),
            None => 1,
        };
        for (key, sev) in [("page", &raw.severity.page), ("ticket", &raw.severity.ticket)] {
            if sev.is_empty() || sev.contains(['\'', '"', '\n']) {
                return Err(err(
                    raw.name.span(),
                    &format!("slo.severity.{key}"),
                    "severity must be a plain word such as \"critical\"".into(),
                ));
            }
        }
        let service = raw
            .service
            .as_ref()
            .map_or_else(|| "sloprobe".to_string(), |s| s.get_ref().clone());
        let budgeting = budgeting(raw, &err)?;
        let slowest = members.iter().map(|b| b.schedule.shortest_period()).max();
        let slice = match budgeting {
            Budgeting::Timeslices { slice, .. } => slice,
            Budgeting::Occurrences => Duration::ZERO,
        };
        let min_window = 2 * slowest.unwrap_or_default().max(slice);
        let burns = windows::burns(window, min_window).map_err(|e| err(raw.window.span(), "slo.window", e))?;
        let unwidened = windows::burns(window, Duration::ZERO).expect("checked above");
        let mut notes = Vec::new();
        if burns != unwidened {
            let pairs = |b: &[Burn]| {
                b.iter()
                    .map(|b| format!("{}/{}", prom_duration(b.long), prom_duration(b.short)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let why = match (slowest, slice.is_zero()) {
                (Some(i), true) => format!("its slowest probe runs every {}", prom_duration(i)),
                (Some(i), false) => format!(
                    "its slowest probe runs every {} and its slices are {}",
                    prom_duration(i),
                    prom_duration(slice)
                ),
                (None, _) => format!("its slices are {}", prom_duration(slice)),
            };
            notes.push(format!(
                "SLO {name:?}: {why}, so a window needs at least {} to hold two of them; its alert windows are widened from {} to {}: pages come later and a short outage may not page. Run the probes more often (every {} or less keeps the 5m window) to page sooner.",
                prom_duration(min_window),
                pairs(&unwidened),
                pairs(&burns),
                prom_duration(unwidened[0].short / 2),
            ));
        }
        let min_bad_events = match &raw.min_bad_events {
            Some(n) if *n.get_ref() == 0 => {
                return Err(err(
                    n.span(),
                    "slo.min_bad_events",
                    "min_bad_events must be at least 1".into(),
                ));
            }
            Some(n) => *n.get_ref(),
            None => default_min_bad_events(&members, budgeting, &burns, 1.0 - objective),
        };
        out.push(Slo {
            name,
            probes: members.iter().map(|b| b.name.clone()).collect(),
            routes,
            sli,
            objective,
            window,
            exclude_errors,
            labels,
            annotations,
            page_severity: raw.severity.page.clone(),
            ticket_severity: raw.severity.ticket.clone(),
            min_locations,
            service,
            budgeting,
            burns,
            min_bad_events,
            slowest,
            notes,
        });
    }
    Ok(out)
}

/// `budgeting`, `slice` and `slice_target`, checked.
fn budgeting(raw: &RawSlo, err: &ErrAt<'_>) -> Result<Budgeting, ConfigError> {
    let method = raw.budgeting.as_ref().map_or("occurrences", |b| b.get_ref().as_str());
    match method {
        "occurrences" => {
            for (set, key) in [
                (raw.slice.as_ref().map(Spanned::span), "slo.slice"),
                (raw.slice_target.as_ref().map(Spanned::span), "slo.slice_target"),
            ] {
                if let Some(at) = set {
                    return Err(err(
                        at,
                        key,
                        format!("`{}` needs budgeting = \"timeslices\"", &key[4..]),
                    ));
                }
            }
            Ok(Budgeting::Occurrences)
        }
        "timeslices" => {
            let slice = raw.slice.as_ref().map_or(Duration::from_secs(60), |s| s.get_ref().0);
            if let Some(s) = &raw.slice
                && (slice < Duration::from_secs(10) || slice > Duration::from_secs(3600) || slice.subsec_nanos() != 0)
            {
                return Err(err(
                    s.span(),
                    "slo.slice",
                    "a slice is whole seconds from 10s to 1h (the rule group evaluates once a slice)".into(),
                ));
            }
            let Some(target) = &raw.slice_target else {
                return Err(err(
                    raw.name.span(),
                    "slo.slice_target",
                    "timeslices need `slice_target`: the share of good events that makes a slice good (0.95 for p95 ≤ threshold)".into(),
                ));
            };
            let t = *target.get_ref();
            if !(t > 0.0 && t <= 1.0) {
                return Err(err(
                    target.span(),
                    "slo.slice_target",
                    "slice_target is a share above 0 and at most 1".into(),
                ));
            }
            Ok(Budgeting::Timeslices { slice, target: t })
        }
        other => Err(err(
            raw.budgeting.as_ref().expect("set").span(),
            "slo.budgeting",
            format!("budgeting {other:?}: use \"occurrences\" or \"timeslices\""),
        )),
    }
}

/// 2 when a single bad event (one run of the SLO's probes, or one slice) would cross a
/// page condition on its own, else 1. One run of a 1-minute probe is 1/60 of an hour,
/// 1.67 % > 14.4 × 0.1 %: at 99.9 % it would page (docs/slo.md).
fn default_min_bad_events(members: &[&BuiltProbe], budgeting: Budgeting, burns: &[Burn], budget: f64) -> u32 {
    if members.is_empty() && matches!(budgeting, Budgeting::Occurrences) {
        return 1; // page views: traffic is not known in advance
    }
    let lone_bad_crosses = burns.iter().filter(|b| b.tier == Tier::Page).any(|b| {
        let long = b.long.as_secs_f64();
        let events = match budgeting {
            Budgeting::Timeslices { slice, .. } => long / slice.as_secs_f64(),
            Budgeting::Occurrences => members
                .iter()
                .map(|m| long / m.schedule.shortest_period().as_secs_f64())
                .sum(),
        };
        1.0 / events > b.factor * budget
    });
    if lone_bad_crosses { 2 } else { 1 }
}

/// An SLO's or error budget's name: it goes into rule group names and label values.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks every `[[error_budget]]` against the SLOs.
pub fn resolve_error_budgets(
    raws: &[(RawErrorBudget, std::sync::Arc<Source>)],
    slos: &[Slo],
) -> Result<Vec<ErrorBudget>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (raw, src) in raws {
        let err = |span: std::ops::Range<usize>, key: &str, msg: String| src.error_at(span, Some(key), msg);
        let name = raw.name.get_ref().clone();
        if !valid_name(&name) || !names.insert(name.clone()) {
            return Err(err(
                raw.name.span(),
                "error_budget.name",
                format!("error budget name {name:?} must be unique, of A-Z a-z 0-9 - _ ."),
            ));
        }
        if raw.slos.get_ref().is_empty() {
            return Err(err(
                raw.slos.span(),
                "error_budget.slos",
                "name at least one SLO".into(),
            ));
        }
        let mut slice = None;
        for listed in raw.slos.get_ref() {
            let Some(slo) = slos.iter().find(|s| &s.name == listed) else {
                return Err(err(
                    raw.slos.span(),
                    "error_budget.slos",
                    format!("no SLO named {listed:?}"),
                ));
            };
            let Budgeting::Timeslices { slice: s, .. } = slo.budgeting else {
                return Err(err(
                    raw.slos.span(),
                    "error_budget.slos",
                    format!(
                        "SLO {listed:?} counts occurrences: a time budget needs budgeting = \"timeslices\" (bad time exists only per slice)"
                    ),
                ));
            };
            if slice.is_some_and(|first| first != s) {
                return Err(err(
                    raw.slos.span(),
                    "error_budget.slos",
                    "every SLO of one error budget needs the same `slice`: breach time is counted slice by slice"
                        .into(),
                ));
            }
            slice = Some(s);
        }
        let (budget, period) = (raw.budget.get_ref().0, raw.period.get_ref().0);
        if budget.is_zero() || budget >= period {
            return Err(err(
                raw.budget.span(),
                "error_budget.budget",
                format!(
                    "the budget must be above 0 and shorter than the period ({})",
                    prom_duration(period)
                ),
            ));
        }
        let mut labels = Vec::new();
        for (k, v) in &raw.labels {
            if !valid_label_name(k)
                || matches!(k.as_str(), "slo" | "severity" | "error_budget")
                || k.starts_with("sloth_")
            {
                return Err(err(
                    v.span(),
                    &format!("error_budget.labels.{k}"),
                    format!("{k:?} cannot be a label name here"),
                ));
            }
            labels.push((k.clone(), v.get_ref().clone()));
        }
        let annotations = raw
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect();
        out.push(ErrorBudget {
            name,
            slos: raw.slos.get_ref().clone(),
            slice: slice.expect("at least one SLO"),
            budget,
            period,
            labels,
            annotations,
            severity: raw.severity.clone(),
        });
    }
    Ok(out)
}

type ErrAt<'a> = dyn Fn(std::ops::Range<usize>, &str, String) -> ConfigError + 'a;

/// A probe SLO's members, SLI and excluded error types.
fn probe_sli<'p>(
    raw: &RawSlo,
    listed: &Spanned<Vec<String>>,
    probes: &'p [BuiltProbe],
    err: &ErrAt<'_>,
) -> Result<(Vec<&'p BuiltProbe>, Sli, Vec<String>), ConfigError> {
    let name = raw.name.get_ref();
    if listed.get_ref().is_empty() {
        return Err(err(listed.span(), "slo.probes", "name at least one probe".into()));
    }
    let mut members = Vec::new();
    for p in listed.get_ref() {
        match probes.iter().find(|b| &b.name == p) {
            Some(b) => members.push(b),
            None => {
                return Err(err(
                    listed.span(),
                    "slo.probes",
                    format!("SLO {name:?} names probe {p:?}, which does not exist"),
                ));
            }
        }
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
    let sli = if sli_key == "parts" {
        if raw.threshold.is_some() || !exclude_errors.is_empty() {
            return Err(err(
                raw.sli.span(),
                "slo.sli",
                "a parts SLI takes no threshold or exclude_errors: a part arrived or it did not".into(),
            ));
        }
        if let Some(b) = members
            .iter()
            .find(|b| !b.measures.iter().any(|m| m.metric == "probe.workflow.parts"))
        {
            return Err(err(
                raw.sli.span(),
                "slo.sli",
                format!(
                    "probe {:?} uploads no parts: `sli = \"parts\"` needs workflow probes with an upload step",
                    b.name
                ),
            ));
        }
        Sli::Parts
    } else if sli_key == "success" {
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
        // Every member must measure this key, in the same unit.
        let mut unit: Option<Unit> = None;
        for b in &members {
            let m = b
                .measures
                .iter()
                .find(|m| m.key == sli_key && budget::budgetable(m))
                .ok_or_else(|| {
                    err(
                        raw.sli.span(),
                        "slo.sli",
                        format!("probe {:?} ({}) has no measurement {sli_key:?}", b.name, b.kind),
                    )
                })?;
            if unit.is_some_and(|u| u != m.unit) {
                return Err(err(
                    raw.sli.span(),
                    "slo.sli",
                    format!("the probes measure {sli_key:?} in different units"),
                ));
            }
            unit = Some(m.unit);
        }
        let unit = unit.expect("at least one member");
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
        Sli::Below {
            key: sli_key.to_string(),
            threshold,
            unit,
        }
    };
    Ok((members, sli, exclude_errors))
}

/// A field SLO's routes and SLI: a vital of real page views, against a threshold or the
/// `[rum.budget]` of that vital.
fn field_sli(
    rum: Option<&RumSettings>,
    raw: &RawSlo,
    routes: &Spanned<Vec<String>>,
    err: &ErrAt<'_>,
) -> Result<(Vec<String>, Sli), ConfigError> {
    let Some(rum) = rum else {
        return Err(err(
            routes.span(),
            "slo.routes",
            "a routes SLO reads RUM page views: turn on the collector with [rum]".into(),
        ));
    };
    if routes.get_ref().is_empty() {
        return Err(err(
            routes.span(),
            "slo.routes",
            "name at least one route, or \"*\" for all".into(),
        ));
    }
    for r in routes.get_ref() {
        if r != "*" && !r.starts_with('/') {
            return Err(err(
                routes.span(),
                "slo.routes",
                format!("{r:?} is not a route: write a path such as \"/dashboard\" or a [[rum.route]] pattern"),
            ));
        }
    }
    if !raw.exclude_errors.is_empty() {
        return Err(err(
            raw.sli.span(),
            "slo.exclude_errors",
            "exclude_errors applies to probe success SLIs only".into(),
        ));
    }
    let key = raw.sli.get_ref().as_str();
    let vital = crate::rum::beacon::Vital::parse(key)
        .filter(|v| v.key() == key)
        .ok_or_else(|| {
            err(
                raw.sli.span(),
                "slo.sli",
                format!("a routes SLO judges a vital: ttfb, fcp, lcp, cls, inp or fid, not {key:?}"),
            )
        })?;
    let unit = crate::rum::measure(vital).unit;
    let threshold = match &raw.threshold {
        Some(t) => budget::parse_value(unit, key, t.get_ref()).map_err(|e| err(t.span(), "slo.threshold", e))?,
        None => rum
            .budgets
            .iter()
            .find(|(v, _)| *v == vital)
            .map(|(_, x)| *x)
            .ok_or_else(|| {
                err(
                    raw.sli.span(),
                    "slo.threshold",
                    format!("set `threshold`, or [rum.budget] {key}"),
                )
            })?,
    };
    Ok((
        routes.get_ref().clone(),
        Sli::Field {
            key: key.to_string(),
            threshold,
            unit,
        },
    ))
}

/// A number for rules and dashboards without binary float artifacts: 1 − 0.999 is
/// written 0.001, not 0.0010000000000000009.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return crate::telemetry::names::float_text(v);
    }
    let s = format!("{v:.12}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
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
