//! Prometheus rules for the SLOs: SLI error ratios over the windows the burn-rate alerts
//! need and over the SLO period, the error budget left, Sloth's metadata rules (so Sloth's
//! dashboards work), multi-window multi-burn-rate alerts (Google SRE workbook, ch. 5) with
//! burn factors scaled to the SLO period as Sloth does, and an alert when the data is gone.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Sli, Slo, num, prom_duration};
use crate::telemetry::names::float_text;

/// Windows the alerts read, shortest first.
pub const WINDOWS: &[&str] = &["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// A burn-rate condition: the share of the period's error budget consumed within the long
/// window, the long window, and the short window that confirms it is still burning.
pub type Burn = (f64, &'static str, &'static str);

/// (tier, alert name, conditions any of which fires it). At a 30d period these are the
/// workbook's 14.4×/6× (page) and 3×/1× (ticket).
pub const ALERTS: &[(Tier, &str, &[Burn])] = &[
    (
        Tier::Page,
        "SloprobeBurnRatePage",
        &[(0.02, "1h", "5m"), (0.05, "6h", "30m")],
    ),
    (
        Tier::Ticket,
        "SloprobeBurnRateTicket",
        &[(0.10, "1d", "2h"), (0.10, "3d", "6h")],
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Page,
    Ticket,
}

/// How long the SLI's input may be missing before the no-data alert fires.
pub const NO_DATA_AFTER: &str = "10m";

fn hours(window: &str) -> f64 {
    let (n, unit) = window.split_at(window.len() - 1);
    let n: f64 = n.parse().expect("window literal");
    match unit {
        "m" => n / 60.0,
        "h" => n,
        "d" => n * 24.0,
        _ => unreachable!("window literal {window}"),
    }
}

/// Sloth's burn factor: the budget share consumed × period / long window. 14.4 for 2 % in
/// 1h of 30d; 13.44 at 28d.
pub fn burn_factor(consumed: f64, period: Duration, long_window: &str) -> f64 {
    consumed * (period.as_secs_f64() / 3600.0) / hours(long_window)
}

/// Prometheus regex matching exactly these probe names.
pub fn probe_selector(slo: &Slo) -> String {
    let alts: Vec<String> = slo.probes.iter().map(|p| p.replace('.', "\\\\.")).collect();
    format!("probe_name=~\"^({})$\"", alts.join("|"))
}

/// Prometheus regex matching exactly these routes; empty when `*` (all) is among them.
pub fn route_selector(slo: &Slo) -> String {
    if slo.routes.iter().any(|r| r == "*") {
        return String::new();
    }
    let alts: Vec<String> = slo.routes.iter().map(|r| regex_escape(r)).collect();
    format!(",http_route=~\"^({})$\"", alts.join("|"))
}

/// Escapes regex metacharacters, doubled for a PromQL string.
fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// The field SLI's counter selector (no closing brace).
fn field_base(slo: &Slo, key: &str, threshold: f64) -> String {
    format!(
        "rum_threshold_page_views_total{{measurement=\"{key}\",threshold=\"{}\"{}",
        float_text(threshold),
        route_selector(slo)
    )
}

/// The series an SLI is computed from (for the no-data alert and the dashboard).
pub fn input_selector(slo: &Slo) -> String {
    let sel = probe_selector(slo);
    match &slo.sli {
        Sli::Field { key, threshold, .. } => format!("{}}}", field_base(slo, key, *threshold)),
        Sli::Success => format!("probe_runs_total{{{sel}}}"),
        Sli::Below { key, threshold, .. } => format!(
            "probe_threshold_runs_total{{{sel},measurement=\"{key}\",threshold=\"{}\"}}",
            float_text(*threshold)
        ),
    }
}

/// The SLI's error ratio over `window`, by location.
pub fn error_ratio(slo: &Slo, window: &str) -> String {
    let sel = probe_selector(slo);
    match &slo.sli {
        Sli::Success => {
            let excl = if slo.exclude_errors.is_empty() {
                String::new()
            } else {
                format!(",error_type!~\"{}\"", slo.exclude_errors.join("|"))
            };
            // `or … * 0`: no failure series yet must read as 0 errors, not as no data.
            format!(
                "(sum by (probe_location) (rate(probe_runs_total{{{sel},outcome=\"failure\"{excl}}}[{window}])) \
                 or sum by (probe_location) (rate(probe_runs_total{{{sel}{excl}}}[{window}])) * 0) \
                 / sum by (probe_location) (rate(probe_runs_total{{{sel}{excl}}}[{window}]))"
            )
        }
        Sli::Below { .. } | Sli::Field { .. } => {
            let base = match &slo.sli {
                Sli::Field { key, threshold, .. } => field_base(slo, key, *threshold),
                Sli::Below { key, threshold, .. } => format!(
                    "probe_threshold_runs_total{{{sel},measurement=\"{key}\",threshold=\"{}\"",
                    float_text(*threshold)
                ),
                Sli::Success => unreachable!(),
            };
            format!(
                "(sum by (probe_location) (rate({base},verdict=\"bad\"}}[{window}])) \
                 or sum by (probe_location) (rate({base}}}[{window}])) * 0) \
                 / sum by (probe_location) (rate({base}}}[{window}]))"
            )
        }
    }
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn describe(slo: &Slo) -> String {
    match &slo.sli {
        Sli::Success => format!("{} of runs of {} succeed", pct(slo.objective), slo.probes.join(", ")),
        Sli::Below { key, threshold, unit } => format!(
            "{} of runs of {} have {key} {} {}",
            pct(slo.objective),
            slo.probes.join(", "),
            unit.bound(),
            unit.format(*threshold)
        ),
        Sli::Field { key, threshold, unit } => format!(
            "{} of real page views on {} have {key} {} {}",
            pct(slo.objective),
            slo.routes.join(", "),
            unit.bound(),
            unit.format(*threshold)
        ),
    }
}

/// What the SLO reads, for people.
fn covered(slo: &Slo) -> String {
    if slo.probes.is_empty() {
        format!("RUM page views on {}", slo.routes.join(", "))
    } else {
        slo.probes.join(", ")
    }
}

fn pct(v: f64) -> String {
    format!("{}%", num(v * 100.0))
}

/// The labels every rule of an SLO carries: ours, Sloth's, and the configured ones.
fn rule_labels(slo: &Slo) -> Vec<(String, String)> {
    let mut labels = vec![
        ("slo".to_string(), slo.name.clone()),
        ("sloth_id".to_string(), format!("{}-{}", slo.service, slo.name)),
        ("sloth_service".to_string(), slo.service.clone()),
        ("sloth_slo".to_string(), slo.name.clone()),
    ];
    labels.extend(slo.labels.iter().cloned());
    labels
}

fn write_labels(y: &mut String, labels: &[(String, String)]) {
    y.push_str("        labels:\n");
    for (k, v) in labels {
        let _ = writeln!(y, "          {k}: {}", q(v));
    }
}

fn record(y: &mut String, name: &str, expr: &str, labels: &[(String, String)]) {
    let _ = writeln!(y, "      - record: {name}");
    let _ = writeln!(y, "        expr: {}", q(expr));
    write_labels(y, labels);
}

/// The whole rule file.
pub fn render(slos: &[Slo], source: &str) -> String {
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# Generated by `sloprobe slo rules` from {source}. Do not edit: regenerate."
    );
    if slos.is_empty() {
        y.push_str("groups: []\n");
        return y;
    }
    y.push_str("groups:\n");
    for slo in slos {
        let name = &slo.name;
        let budget = num(slo.budget());
        let period = prom_duration(slo.window);
        let labels = rule_labels(slo);
        let id = format!("sloth_id=\"{}-{name}\"", slo.service);
        let _ = writeln!(y, "  - name: sloprobe-slo-{name}");
        y.push_str("    rules:\n");
        for w in WINDOWS {
            record(
                &mut y,
                &format!("slo:sli_error:ratio_rate{w}"),
                &error_ratio(slo, w),
                &labels,
            );
        }
        record(
            &mut y,
            &format!("slo:sli_error:ratio_rate{period}"),
            &format!("avg_over_time(slo:sli_error:ratio_rate5m{{{id}}}[{period}])"),
            &labels,
        );
        // Sloth's metadata rules, by the names its dashboards read.
        record(
            &mut y,
            "slo:objective:ratio",
            &format!("vector({})", num(slo.objective)),
            &labels,
        );
        record(&mut y, "slo:error_budget:ratio", &format!("vector({budget})"), &labels);
        record(
            &mut y,
            "slo:time_period:days",
            &format!("vector({})", num(slo.window.as_secs_f64() / 86400.0)),
            &labels,
        );
        record(
            &mut y,
            "slo:current_burn_rate:ratio",
            &format!(
                "slo:sli_error:ratio_rate5m{{{id}}} / on(sloth_id, sloth_slo, sloth_service) group_left slo:error_budget:ratio{{{id}}}"
            ),
            &labels,
        );
        record(
            &mut y,
            "slo:period_burn_rate:ratio",
            &format!(
                "slo:sli_error:ratio_rate{period}{{{id}}} / on(sloth_id, sloth_slo, sloth_service) group_left slo:error_budget:ratio{{{id}}}"
            ),
            &labels,
        );
        record(
            &mut y,
            "slo:period_error_budget_remaining:ratio",
            &format!("1 - slo:period_burn_rate:ratio{{{id}}}"),
            &labels,
        );
        record(
            &mut y,
            "slo:error_budget_remaining:ratio",
            &format!("1 - slo:sli_error:ratio_rate{period}{{{id}}} / {budget}"),
            &labels,
        );
        let mut info = labels.clone();
        info.extend([
            ("sloth_mode".to_string(), "cli-gen-prom".to_string()),
            ("sloth_objective".to_string(), num(slo.objective * 100.0)),
            ("sloth_spec".to_string(), "sloprobe/v1".to_string()),
            ("sloth_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ]);
        record(&mut y, "sloth_slo_info", "vector(1)", &info);

        for (tier, alert, pairs) in ALERTS {
            let severity = match tier {
                Tier::Page => &slo.page_severity,
                Tier::Ticket => &slo.ticket_severity,
            };
            let conds: Vec<String> = pairs
                .iter()
                .map(|(consumed, long, short)| {
                    let limit = format!("({} * {budget})", num(burn_factor(*consumed, slo.window, long)));
                    format!(
                        "(slo:sli_error:ratio_rate{long}{{{id}}} > {limit} and slo:sli_error:ratio_rate{short}{{{id}}} > {limit})"
                    )
                })
                .collect();
            let burning = conds.join(" or ");
            // Quorum: several locations must burn at once (Grafana SM's "N of M probes").
            let expr = if slo.min_locations > 1 {
                format!("count({burning}) >= {}", slo.min_locations)
            } else {
                burning
            };
            let windows: Vec<String> = pairs
                .iter()
                .map(|(c, l, s)| format!("{}× over {l}/{s}", num(burn_factor(*c, slo.window, l))))
                .collect();
            let at = if slo.min_locations > 1 {
                format!("at {} or more locations", slo.min_locations)
            } else {
                "at {{ $labels.probe_location }}".to_string()
            };
            let mut alert_labels = vec![("severity".to_string(), severity.clone())];
            alert_labels.extend(labels.iter().cloned());
            let mut annotations = vec![
                (
                    "summary".to_string(),
                    format!("SLO {name} is burning its error budget ({at})"),
                ),
                (
                    "description".to_string(),
                    format!(
                        "{} over {period}. Error budget burn above {} {at}.",
                        describe(slo),
                        windows.join(" or ")
                    ),
                ),
            ];
            merge(&mut annotations, &slo.annotations);
            write_alert(&mut y, alert, &expr, None, &alert_labels, &annotations);
        }
        // Without data every burn alert above is silent: say so.
        let mut no_data_labels = vec![("severity".to_string(), slo.ticket_severity.clone())];
        no_data_labels.extend(labels.iter().cloned());
        let mut annotations = vec![
            ("summary".to_string(), format!("SLO {name} has no data")),
            (
                "description".to_string(),
                format!(
                    "No samples of {} for {NO_DATA_AFTER}: the probes, the collector or the daemon are down or not scraped, and the burn-rate alerts of {name} cannot fire.",
                    covered(slo)
                ),
            ),
        ];
        merge(&mut annotations, &slo.annotations);
        write_alert(
            &mut y,
            "SloprobeSLONoData",
            &format!("absent_over_time({}[{NO_DATA_AFTER}])", input_selector(slo)),
            Some("5m"),
            &no_data_labels,
            &annotations,
        );
    }
    y
}

/// Configured annotations replace defaults of the same name and add the rest.
fn merge(annotations: &mut Vec<(String, String)>, configured: &[(String, String)]) {
    for (k, v) in configured {
        match annotations.iter_mut().find(|(k2, _)| k2 == k) {
            Some(slot) => slot.1 = v.clone(),
            None => annotations.push((k.clone(), v.clone())),
        }
    }
}

fn write_alert(
    y: &mut String,
    alert: &str,
    expr: &str,
    for_: Option<&str>,
    labels: &[(String, String)],
    annotations: &[(String, String)],
) {
    let _ = writeln!(y, "      - alert: {alert}");
    let _ = writeln!(y, "        expr: {}", q(expr));
    if let Some(f) = for_ {
        let _ = writeln!(y, "        for: {f}");
    }
    write_labels(y, labels);
    y.push_str("        annotations:\n");
    for (k, v) in annotations {
        let _ = writeln!(y, "          {k}: {}", q(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_factors_scale_with_the_period() {
        let days = |d: u64| Duration::from_secs(d * 86400);
        assert_eq!(num(burn_factor(0.02, days(30), "1h")), "14.4");
        assert_eq!(num(burn_factor(0.05, days(30), "6h")), "6");
        assert_eq!(num(burn_factor(0.10, days(30), "1d")), "3");
        assert_eq!(num(burn_factor(0.10, days(30), "3d")), "1");
        assert_eq!(num(burn_factor(0.02, days(28), "1h")), "13.44");
        assert_eq!(num(burn_factor(0.02, days(7), "1h")), "3.36");
        assert_eq!(num(1.0 - 0.999), "0.001");
    }
}
