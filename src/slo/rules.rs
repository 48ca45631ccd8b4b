//! Prometheus rules for the SLOs, in Sloth's layout (per SLO the groups
//! `sloth-slo-sli-recordings-<id>`, `sloth-slo-meta-recordings-<id>` and
//! `sloth-slo-alerts-<id>`, `sloth_window` on SLI records, `sloth_severity` on alerts) so
//! Sloth's dashboards read them: SLI error ratios over the alert windows and the period,
//! the budget left, multi-window multi-burn-rate alerts (`windows.rs`), and no-data alerts
//! per SLO and per probe and location. Time-slice SLOs and shared error budgets add a
//! group evaluated once a slice. Every ratio's denominator is guarded: a window with no
//! events yields no sample (no evidence), never 0 and never NaN.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Budgeting, ErrorBudget, Sli, Slo, Tier, num, prom_duration, windows};
use crate::telemetry::names::float_text;

/// The window the period figures are summed from.
pub const BASE_WINDOW: &str = "5m";

/// How long the SLI's input may be missing before the no-data alert fires.
pub const NO_DATA_AFTER: &str = "10m";

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
        Sli::Parts => format!("probe_workflow_parts_total{{{sel}}}"),
        Sli::Below { key, threshold, .. } => format!(
            "probe_threshold_runs_total{{{sel},measurement=\"{key}\",threshold=\"{}\"}}",
            float_text(*threshold)
        ),
    }
}

/// The SLI's bad and total event selectors (no window yet): (bad, all).
fn event_selectors(slo: &Slo) -> (String, String) {
    let sel = probe_selector(slo);
    match &slo.sli {
        Sli::Success => {
            let excl = if slo.exclude_errors.is_empty() {
                String::new()
            } else {
                format!(",error_type!~\"{}\"", slo.exclude_errors.join("|"))
            };
            (
                format!("probe_runs_total{{{sel},outcome=\"failure\"{excl}}}"),
                format!("probe_runs_total{{{sel}{excl}}}"),
            )
        }
        Sli::Parts => (
            format!("probe_workflow_parts_total{{{sel},outcome=\"failed\"}}"),
            format!("probe_workflow_parts_total{{{sel}}}"),
        ),
        Sli::Below { key, threshold, .. } => {
            let base = format!(
                "probe_threshold_runs_total{{{sel},measurement=\"{key}\",threshold=\"{}\"",
                float_text(*threshold)
            );
            (format!("{base},verdict=\"bad\"}}"), format!("{base}}}"))
        }
        Sli::Field { key, threshold, .. } => {
            let base = field_base(slo, key, *threshold);
            (format!("{base},verdict=\"bad\"}}"), format!("{base}}}"))
        }
    }
}

/// The rate of bad events over `window` by location; 0 while no bad series exists yet
/// (a clean record is 0 errors, not no data).
fn bad_rate(slo: &Slo, window: &str) -> String {
    let (bad, all) = event_selectors(slo);
    format!("(sum by (probe_location) (rate({bad}[{window}])) or sum by (probe_location) (rate({all}[{window}])) * 0)")
}

fn all_rate(slo: &Slo, window: &str) -> String {
    let (_, all) = event_selectors(slo);
    format!("sum by (probe_location) (rate({all}[{window}]))")
}

/// The occurrence SLI's error ratio over `window`, by location; no sample when the
/// window holds no event.
pub fn error_ratio(slo: &Slo, window: &str) -> String {
    format!("{} / ({} > 0)", bad_rate(slo, window), all_rate(slo, window))
}

/// Bad events (runs, page views, or bad slices) in `window`, by location.
fn bad_events(slo: &Slo, id: &str, window: &str) -> String {
    match slo.budgeting {
        Budgeting::Occurrences => {
            let (bad, all) = event_selectors(slo);
            format!(
                "(sum by (probe_location) (increase({bad}[{window}])) or sum by (probe_location) (increase({all}[{window}])) * 0)"
            )
        }
        Budgeting::Timeslices { .. } => {
            format!("sum by (probe_location) (sum_over_time(slo:slice_bad{{{id}}}[{window}]))")
        }
    }
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn describe(slo: &Slo) -> String {
    match &slo.sli {
        Sli::Success => format!("{} of runs of {} succeed", pct(slo.objective), slo.probes.join(", ")),
        Sli::Parts => format!(
            "{} of upload parts of {} arrive",
            pct(slo.objective),
            slo.probes.join(", ")
        ),
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
pub fn render(slos: &[Slo], budgets: &[ErrorBudget], source: &str) -> String {
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
        slo_groups(&mut y, slo);
    }
    let mut slices: Vec<Duration> = slos
        .iter()
        .filter_map(|s| match s.budgeting {
            Budgeting::Timeslices { slice, .. } => Some(slice),
            Budgeting::Occurrences => None,
        })
        .collect();
    slices.sort();
    slices.dedup();
    for slice in slices {
        slice_group(&mut y, slice, slos, budgets);
    }
    for b in budgets {
        budget_group(&mut y, b);
    }
    y
}

fn sloth_id(slo: &Slo) -> String {
    format!("{}-{}", slo.service, slo.name)
}

/// The selector of one SLO's records.
fn id_selector(slo: &Slo) -> String {
    format!("sloth_id=\"{}\"", sloth_id(slo))
}

fn group(y: &mut String, name: &str, interval: Option<Duration>) {
    let _ = writeln!(y, "  - name: {name}");
    if let Some(i) = interval {
        let _ = writeln!(y, "    interval: {}", prom_duration(i));
    }
    y.push_str("    rules:\n");
}

fn with(labels: &[(String, String)], extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = labels.to_vec();
    out.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    out
}

/// The three Sloth groups of one SLO.
fn slo_groups(y: &mut String, slo: &Slo) {
    let name = &slo.name;
    let budget = num(slo.budget());
    let period = prom_duration(slo.window);
    let labels = rule_labels(slo);
    let id = id_selector(slo);
    let windows = windows::windows(&slo.burns);

    group(y, &format!("sloth-slo-sli-recordings-{}", sloth_id(slo)), None);
    if slo.budgeting == Budgeting::Occurrences {
        // The period ratio sums these: a ratio of sums weighs quiet and busy times right,
        // where an average of 5m ratios would not (and one NaN would poison it).
        record(y, "slo:sli_bad:rate5m", &bad_rate(slo, BASE_WINDOW), &labels);
        record(y, "slo:sli_total:rate5m", &all_rate(slo, BASE_WINDOW), &labels);
    }
    for w in &windows {
        let w = prom_duration(*w);
        let expr = match slo.budgeting {
            Budgeting::Occurrences => error_ratio(slo, &w),
            Budgeting::Timeslices { .. } => format!("avg_over_time(slo:slice_bad{{{id}}}[{w}])"),
        };
        record(
            y,
            &format!("slo:sli_error:ratio_rate{w}"),
            &expr,
            &with(&labels, &[("sloth_window", w.clone())]),
        );
    }
    let period_expr = match slo.budgeting {
        Budgeting::Occurrences => format!(
            "sum_over_time(slo:sli_bad:rate5m{{{id}}}[{period}]) / (sum_over_time(slo:sli_total:rate5m{{{id}}}[{period}]) > 0)"
        ),
        Budgeting::Timeslices { .. } => format!("avg_over_time(slo:slice_bad{{{id}}}[{period}])"),
    };
    record(
        y,
        &format!("slo:sli_error:ratio_rate{period}"),
        &period_expr,
        &with(&labels, &[("sloth_window", period.clone())]),
    );

    // Sloth's metadata rules, by the names its dashboards read.
    group(y, &format!("sloth-slo-meta-recordings-{}", sloth_id(slo)), None);
    record(
        y,
        "slo:objective:ratio",
        &format!("vector({})", num(slo.objective)),
        &labels,
    );
    record(y, "slo:error_budget:ratio", &format!("vector({budget})"), &labels);
    record(
        y,
        "slo:time_period:days",
        &format!("vector({})", num(slo.window.as_secs_f64() / 86400.0)),
        &labels,
    );
    let shortest = prom_duration(windows[0]);
    record(
        y,
        "slo:current_burn_rate:ratio",
        &format!(
            "slo:sli_error:ratio_rate{shortest}{{{id}}} / on(sloth_id, sloth_slo, sloth_service) group_left slo:error_budget:ratio{{{id}}}"
        ),
        &labels,
    );
    record(
        y,
        "slo:period_burn_rate:ratio",
        &format!(
            "slo:sli_error:ratio_rate{period}{{{id}}} / on(sloth_id, sloth_slo, sloth_service) group_left slo:error_budget:ratio{{{id}}}"
        ),
        &labels,
    );
    record(
        y,
        "slo:period_error_budget_remaining:ratio",
        &format!("1 - slo:period_burn_rate:ratio{{{id}}}"),
        &labels,
    );
    record(
        y,
        "slo:error_budget_remaining:ratio",
        &format!("1 - max without (sloth_window) (slo:sli_error:ratio_rate{period}{{{id}}}) / {budget}"),
        &labels,
    );
    let info = with(
        &labels,
        &[
            ("sloth_mode", "cli-gen-prom".to_string()),
            ("sloth_objective", num(slo.objective * 100.0)),
            ("sloth_spec", "sloprobe/v1".to_string()),
            ("sloth_version", env!("CARGO_PKG_VERSION").to_string()),
        ],
    );
    record(y, "sloth_slo_info", "vector(1)", &info);

    group(y, &format!("sloth-slo-alerts-{}", sloth_id(slo)), None);
    for (tier, alert) in [
        (Tier::Page, "SloprobeBurnRatePage"),
        (Tier::Ticket, "SloprobeBurnRateTicket"),
    ] {
        let (severity, sloth_severity) = match tier {
            Tier::Page => (&slo.page_severity, "page"),
            Tier::Ticket => (&slo.ticket_severity, "ticket"),
        };
        let burns: Vec<_> = slo.burns.iter().filter(|b| b.tier == tier).collect();
        let conds: Vec<String> = burns
            .iter()
            .map(|b| {
                let (long, short) = (prom_duration(b.long), prom_duration(b.short));
                let limit = format!("({} * {budget})", num(b.factor));
                let mut c = format!(
                    "(slo:sli_error:ratio_rate{long}{{{id}}} > {limit} and ignoring (sloth_window) slo:sli_error:ratio_rate{short}{{{id}}} > {limit}"
                );
                if tier == Tier::Page && slo.min_bad_events > 1 {
                    // Counts are extrapolated by Prometheus: n events read n ± a little.
                    let _ = write!(
                        c,
                        " and on (probe_location) {} > {}",
                        bad_events(slo, &id, &long),
                        num(f64::from(slo.min_bad_events) - 0.5)
                    );
                }
                c.push(')');
                c
            })
            .collect();
        let burning = conds.join(" or ignoring (sloth_window) ");
        // Quorum: several locations must burn at once (Grafana SM's "N of M probes").
        let expr = if slo.min_locations > 1 {
            format!("count({burning}) >= {}", slo.min_locations)
        } else {
            // One alert per location whichever condition fires (not one per window).
            format!("max without (sloth_window) ({burning})")
        };
        let described: Vec<String> = burns
            .iter()
            .map(|b| {
                format!(
                    "{}× over {}/{}",
                    num(b.factor),
                    prom_duration(b.long),
                    prom_duration(b.short)
                )
            })
            .collect();
        let at = if slo.min_locations > 1 {
            format!("at {} or more locations", slo.min_locations)
        } else {
            "at {{ $labels.probe_location }}".to_string()
        };
        let alert_labels = with(
            &[("severity".to_string(), severity.clone())],
            &[("sloth_severity", sloth_severity.to_string())],
        );
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
                    described.join(" or ")
                ),
            ),
        ];
        merge(&mut annotations, &slo.annotations);
        write_alert(
            y,
            alert,
            &expr,
            None,
            &with(
                &alert_labels,
                &labels.iter().map(|(k, v)| (k.as_str(), v.clone())).collect::<Vec<_>>(),
            ),
            &annotations,
        );
    }
    no_data_alerts(y, slo, &labels);
}

/// Without data every burn alert is silent: say so, for the whole SLO and per series.
fn no_data_alerts(y: &mut String, slo: &Slo, labels: &[(String, String)]) {
    let name = &slo.name;
    let no_data_labels = with(&[("severity".to_string(), slo.ticket_severity.clone())], &[]);
    let no_data_labels = with(
        &no_data_labels,
        &labels.iter().map(|(k, v)| (k.as_str(), v.clone())).collect::<Vec<_>>(),
    );
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
        y,
        "SloprobeSLONoData",
        &format!("absent_over_time({}[{NO_DATA_AFTER}])", input_selector(slo)),
        Some("5m"),
        &no_data_labels,
        &annotations,
    );
    // One dead location, one vanished or stalled probe, one route gone quiet: the SLO as
    // a whole still has data, so the alert above stays silent.
    let input = input_selector(slo);
    let (expr, what) = if slo.probes.is_empty() {
        (
            format!(
                "(sum by (http_route, probe_location) (increase({input}[1d])) > 0) unless on (http_route, probe_location) (sum by (http_route, probe_location) (increase({input}[1h])) > 0)"
            ),
            "Route {{ $labels.http_route }} at {{ $labels.probe_location }} had page views in the last day and none in the last hour".to_string(),
        )
    } else {
        let stall = slo
            .slowest
            .map_or(Duration::from_secs(600), |i| (3 * i).max(Duration::from_secs(600)));
        let stall = prom_duration(stall);
        let runs = format!("probe_runs_total{{{}}}", probe_selector(slo));
        (
            format!(
                "(group by (probe_name, probe_location) (present_over_time({input}[1h])) unless on (probe_name, probe_location) {input}) or on (probe_name, probe_location) (sum by (probe_name, probe_location) (increase({runs}[{stall}])) == 0)"
            ),
            format!(
                "Probe {{{{ $labels.probe_name }}}} at {{{{ $labels.probe_location }}}} has stopped reporting (gone from the last hour's series, or no run in {stall})"
            ),
        )
    };
    let mut annotations = vec![
        (
            "summary".to_string(),
            format!("SLO {name} is missing data from part of its inputs"),
        ),
        (
            "description".to_string(),
            format!("{what}: SLO {name} is judged without it."),
        ),
    ];
    merge(&mut annotations, &slo.annotations);
    write_alert(
        y,
        "SloprobeSLOSeriesNoData",
        &expr,
        Some("5m"),
        &no_data_labels,
        &annotations,
    );
}

/// Escapes a name for a PromQL regex alternative.
fn name_regex(names: &[String]) -> String {
    let alts: Vec<String> = names.iter().map(|n| regex_escape(n)).collect();
    format!("^({})$", alts.join("|"))
}

/// The group evaluated once a slice: each time-slice SLO's verdict for the slice, and
/// whether each shared error budget is in breach.
fn slice_group(y: &mut String, slice: Duration, slos: &[Slo], budgets: &[ErrorBudget]) {
    let s = prom_duration(slice);
    group(y, &format!("sloprobe-timeslices-{s}"), Some(slice));
    for slo in slos
        .iter()
        .filter(|x| matches!(x.budgeting, Budgeting::Timeslices { slice: sl, .. } if sl == slice))
    {
        let Budgeting::Timeslices { target, .. } = slo.budgeting else {
            unreachable!()
        };
        let labels = rule_labels(slo);
        let id = id_selector(slo);
        // 1 = bad, 0 = good; no sample when the slice holds no event.
        record(
            y,
            "slo:slice_verdict",
            &format!("({}) > bool {}", error_ratio(slo, &s), num(1.0 - target)),
            &labels,
        );
        // A slice between two runs of a slower probe keeps the last run's verdict: the
        // service was last seen in that state (as an uptime check counts downtime).
        let carry = slo.slowest.map_or(slice, |i| i + slice);
        record(
            y,
            "slo:slice_bad",
            &format!("last_over_time(slo:slice_verdict{{{id}}}[{}])", prom_duration(carry)),
            &labels,
        );
        record(
            y,
            "slo:slice_bad:any",
            &format!("max without (probe_location) (slo:slice_bad{{{id}}})"),
            &labels,
        );
    }
    for b in budgets.iter().filter(|b| b.slice == slice) {
        record(
            y,
            "slo:error_budget_breach:slice",
            &format!("max(slo:slice_bad:any{{slo=~\"{}\"}})", name_regex(&b.slos)),
            &budget_labels(b),
        );
    }
}

fn budget_labels(b: &ErrorBudget) -> Vec<(String, String)> {
    let mut labels = vec![("error_budget".to_string(), b.name.clone())];
    labels.extend(b.labels.iter().cloned());
    labels
}

/// A shared breach budget: seconds spent and left over the period, burn rates, which SLO
/// spent them, and alerts when it is on track to run out and when it is spent.
fn budget_group(y: &mut String, b: &ErrorBudget) {
    let labels = budget_labels(b);
    let sel = format!("error_budget=\"{}\"", b.name);
    let period = prom_duration(b.period);
    let slice_s = num(b.slice.as_secs_f64());
    let budget_s = num(b.budget.as_secs_f64());
    let allowed = b.budget.as_secs_f64() / b.period.as_secs_f64();
    group(y, &format!("sloprobe-error-budget-{}", b.name), None);
    record(y, "slo:error_budget:seconds", &format!("vector({budget_s})"), &labels);
    record(
        y,
        "slo:error_budget_spent:seconds",
        &format!("sum_over_time(slo:error_budget_breach:slice{{{sel}}}[{period}]) * {slice_s}"),
        &labels,
    );
    record(
        y,
        "slo:error_budget_left:seconds",
        &format!("{budget_s} - slo:error_budget_spent:seconds{{{sel}}}"),
        &labels,
    );
    for w in ["1h", "6h", "1d"] {
        record(
            y,
            &format!("slo:error_budget_burn_rate:ratio_rate{w}"),
            &format!(
                "avg_over_time(slo:error_budget_breach:slice{{{sel}}}[{w}]) / {}",
                num(allowed)
            ),
            &labels,
        );
    }
    for slo in &b.slos {
        record(
            y,
            "slo:error_budget_spent_by_slo:seconds",
            &format!("sum_over_time(slo:slice_bad:any{{slo=\"{slo}\"}}[{period}]) * {slice_s}"),
            &labels,
        );
    }
    let alert_labels = with(&[("severity".to_string(), b.severity.clone())], &[]);
    let alert_labels = with(
        &alert_labels,
        &labels.iter().map(|(k, v)| (k.as_str(), v.clone())).collect::<Vec<_>>(),
    );
    let name = &b.name;
    let mut annotations = vec![
        (
            "summary".to_string(),
            format!("Error budget {name} is on track to run out"),
        ),
        (
            "description".to_string(),
            format!(
                "{} have been in breach more than {budget_s} s per {period} allows, over the last day and the last 6h: at this rate the budget runs out within the period.",
                b.slos.join(", ")
            ),
        ),
    ];
    merge(&mut annotations, &b.annotations);
    write_alert(
        y,
        "SloprobeErrorBudgetBurning",
        &format!(
            "slo:error_budget_burn_rate:ratio_rate1d{{{sel}}} > 1 and slo:error_budget_burn_rate:ratio_rate6h{{{sel}}} > 1"
        ),
        None,
        &alert_labels,
        &annotations,
    );
    let mut annotations = vec![
        ("summary".to_string(), format!("Error budget {name} is spent")),
        (
            "description".to_string(),
            format!(
                "{} have been in breach for all {budget_s} s that {period} allows: the feature freeze applies.",
                b.slos.join(", ")
            ),
        ),
    ];
    merge(&mut annotations, &b.annotations);
    write_alert(
        y,
        "SloprobeErrorBudgetSpent",
        &format!("slo:error_budget_left:seconds{{{sel}}} <= 0"),
        None,
        &alert_labels,
        &annotations,
    );
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
