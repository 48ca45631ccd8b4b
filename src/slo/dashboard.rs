//! A Grafana dashboard for the probes and SLOs that works at 1,000 probes: an overview
//! (failing probes, worst compliance, soonest certificate expiry, schedule lateness,
//! skipped runs, the daemon's own health), one row repeated per selected probe (phase
//! breakdown, headline latency p50/p95/p99, threshold compliance, success ratio), and per
//! SLO its compliance, budget left and burn rate. `location` and `probe` variables filter.

use serde_json::{Value, json};

use super::{ErrorBudget, Sli, Slo, num, prom_duration};
use crate::telemetry::{HistogramMode, names::metric_name, otel_unit};

const DS: &str = "${datasource}";
const LOC: &str = "probe_location=~\"$location\"";
/// The daemon's own series (they carry no probe label).
const SELF: &str = "job=~\".+\"";

fn panel(
    id: &mut u32,
    title: &str,
    kind: &str,
    grid: (u32, u32, u32, u32),
    targets: Vec<Value>,
    field: Value,
) -> Value {
    *id += 1;
    json!({
        "id": *id,
        "title": title,
        "type": kind,
        "datasource": {"type": "prometheus", "uid": DS},
        "gridPos": {"x": grid.0, "y": grid.1, "w": grid.2, "h": grid.3},
        "targets": targets,
        "fieldConfig": field,
    })
}

fn target(expr: String, legend: &str, ref_id: &str) -> Value {
    json!({"expr": expr, "legendFormat": legend, "refId": ref_id, "datasource": {"type": "prometheus", "uid": DS}})
}

/// Threshold lines drawn on a time series.
fn lines(unit: &str, thresholds: &[f64]) -> Value {
    let mut steps = vec![json!({"color": "green", "value": null})];
    steps.extend(thresholds.iter().map(|t| json!({"color": "red", "value": t})));
    json!({
        "defaults": {
            "unit": unit,
            "custom": {"thresholdsStyle": {"mode": "line+area"}},
            "thresholds": {"mode": "absolute", "steps": steps},
        },
        "overrides": [],
    })
}

fn ratio_field(decimals: u32, green_from: f64) -> Value {
    json!({"defaults": {"unit": "percentunit", "decimals": decimals, "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": null}, {"color": "green", "value": green_from}]}}, "overrides": []})
}

fn row(id: &mut u32, title: &str, y: u32, repeat: Option<&str>) -> Value {
    *id += 1;
    let mut r = json!({"id": *id, "type": "row", "title": title, "collapsed": false, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []});
    if let Some(var) = repeat {
        r["repeat"] = json!(var);
    }
    r
}

/// The dashboard. Headline latencies are the kinds' histogram measures named `ttfb` (http)
/// and `ttft` (assistant), found in the catalogs rather than named here.
/// `rum`: the config runs the RUM collector (a field-vs-lab row).
/// `mode`: with exponential histograms Prometheus holds native histograms, which have no
/// `_bucket` series: quantiles read the histogram itself.
pub fn render(
    kinds: &[&crate::probe::Kind],
    slos: &[Slo],
    budgets: &[ErrorBudget],
    rum: bool,
    mode: HistogramMode,
) -> Value {
    // The quantile of a catalog histogram (`by` adds grouping labels).
    let quantile = |q: &str, name: &str, sel: &str, by: &str, range: &str| match mode {
        HistogramMode::Explicit => {
            format!("histogram_quantile({q}, sum by (le{by}) (rate({name}_bucket{{{sel}}}[{range}])))")
        }
        HistogramMode::Exponential => {
            let by = by.trim_start_matches(", ");
            let group = if by.is_empty() {
                String::new()
            } else {
                format!(" by ({by})")
            };
            format!("histogram_quantile({q}, sum{group} (rate({name}{{{sel}}}[{range}])))")
        }
    };
    let mut panels = Vec::new();
    let mut id = 0;
    let mut y = 0;
    let sel_all = LOC.to_string();

    panels.push(row(&mut id, "Overview", y, None));
    y += 1;
    let failing = format!(
        "topk(20, 1 - (sum by (probe_name) (rate(probe_runs_total{{{sel_all},outcome=\"success\"}}[$__range])) or sum by (probe_name) (rate(probe_runs_total{{{sel_all}}}[$__range])) * 0) / sum by (probe_name) (rate(probe_runs_total{{{sel_all}}}[$__range])))"
    );
    let mut field = ratio_field(2, 0.0);
    field["defaults"]["thresholds"]["steps"] =
        json!([{"color": "green", "value": null}, {"color": "red", "value": 0.001}]);
    panels.push(panel(
        &mut id,
        "Failure ratio by probe (worst 20)",
        "bargauge",
        (0, y, 8, 8),
        vec![target(failing, "{{probe_name}}", "A")],
        field,
    ));
    let worst = format!(
        "bottomk(20, sum by (probe_name, measurement, threshold) (rate(probe_threshold_runs_total{{{sel_all},verdict=\"good\"}}[$__range])) / sum by (probe_name, measurement, threshold) (rate(probe_threshold_runs_total{{{sel_all}}}[$__range])))"
    );
    panels.push(panel(
        &mut id,
        "Budget compliance (worst 20)",
        "bargauge",
        (8, y, 8, 8),
        vec![target(worst, "{{probe_name}} {{measurement}} ≤ {{threshold}}", "A")],
        ratio_field(2, 0.99),
    ));
    let certs =
        format!("bottomk(10, min by (probe_name) (probe_tls_cert_expiry_timestamp_seconds{{{sel_all}}}) - time())");
    let field = json!({"defaults": {"unit": "s", "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": null}, {"color": "orange", "value": 604800}, {"color": "green", "value": 2592000}]}}, "overrides": []});
    panels.push(panel(
        &mut id,
        "Certificates expiring soonest",
        "bargauge",
        (16, y, 8, 8),
        vec![target(certs, "{{probe_name}}", "A")],
        field,
    ));
    y += 8;
    let late = format!(
        "histogram_quantile(0.99, sum by (le) (rate(sloprobe_schedule_lateness_seconds_bucket{{{sel_all}}}[$__rate_interval])))"
    );
    panels.push(panel(
        &mut id,
        "Schedule lateness p99 (all probes)",
        "timeseries",
        (0, y, 6, 7),
        vec![target(late, "p99", "A")],
        lines("s", &[0.005]),
    ));
    let skipped = format!(
        "sum by (reason) (rate(probe_runs_skipped_total{{{sel_all}}}[$__rate_interval])) or sum(rate(probe_runs_total{{{sel_all}}}[$__rate_interval])) * 0"
    );
    panels.push(panel(
        &mut id,
        "Skipped runs/s by reason",
        "timeseries",
        (6, y, 6, 7),
        vec![target(skipped, "{{reason}}", "A")],
        lines("short", &[]),
    ));
    let targets = vec![
        target(
            format!("process_resident_memory_bytes{{{SELF}}}"),
            "RSS {{instance}}",
            "A",
        ),
        target(
            format!("rate(process_cpu_seconds_total{{{SELF}}}[$__rate_interval])"),
            "CPU {{instance}}",
            "B",
        ),
    ];
    panels.push(panel(
        &mut id,
        "Daemon RSS and CPU",
        "timeseries",
        (12, y, 6, 7),
        targets,
        lines("short", &[]),
    ));
    let targets = vec![
        target(
            format!("sum by (outcome) (rate(sloprobe_otlp_exports_total{{{SELF}}}[$__rate_interval]))"),
            "OTLP {{outcome}}",
            "A",
        ),
        target(
            format!("sloprobe_config_last_reload_success{{{SELF}}}"),
            "last reload ok {{instance}}",
            "B",
        ),
        target(
            format!("count by (version, revision) (sloprobe_build_info{{{SELF}}})"),
            "daemons on {{version}} {{revision}}",
            "C",
        ),
    ];
    panels.push(panel(
        &mut id,
        "OTLP exports/s, reloads, versions",
        "timeseries",
        (18, y, 6, 7),
        targets,
        lines("short", &[]),
    ));
    y += 7;

    // One row per selected probe (Grafana repeats it for each value of $probe).
    panels.push(row(&mut id, "$probe", y, Some("probe")));
    y += 1;
    let sel = format!("probe_name=~\"$probe\",{LOC}");
    let phase_metric = kinds
        .iter()
        .flat_map(|k| k.measures.iter())
        .find(|m| m.fixed.iter().any(|(k, _)| *k == "phase"))
        .map(|m| metric_name(m.metric, otel_unit(m.unit), false));
    if let Some(name) = phase_metric {
        let expr = format!(
            "sum by (phase) (rate({name}_sum{{{sel}}}[$__rate_interval])) / sum by (phase) (rate({name}_count{{{sel}}}[$__rate_interval]))"
        );
        let mut field = lines("s", &[]);
        field["defaults"]["custom"]["stacking"] = json!({"mode": "normal"});
        field["defaults"]["custom"]["fillOpacity"] = json!(60);
        panels.push(panel(
            &mut id,
            "Phase breakdown (mean)",
            "timeseries",
            (0, y, 6, 8),
            vec![target(expr, "{{phase}}", "A")],
            field,
        ));
    }
    let mut headline_targets = Vec::new();
    let mut seen = Vec::new();
    for m in kinds.iter().flat_map(|k| k.measures.iter()) {
        if matches!(m.key, "ttfb" | "ttft")
            && m.instrument == crate::outcome::Instrument::Histogram
            && !seen.contains(&m.metric)
        {
            seen.push(m.metric);
            let name = metric_name(m.metric, otel_unit(m.unit), false);
            for (q, legend) in [("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")] {
                let r = format!("{}", (b'A' + headline_targets.len() as u8) as char);
                headline_targets.push(target(
                    quantile(q, &name, &sel, "", "$__rate_interval"),
                    &format!("{} {legend}", m.key),
                    &r,
                ));
            }
        }
    }
    panels.push(panel(
        &mut id,
        "Headline latency p50 / p95 / p99 (ttfb, ttft)",
        "timeseries",
        (6, y, 6, 8),
        headline_targets,
        lines("s", &[]),
    ));
    let compliance = format!(
        "sum by (measurement, threshold) (rate(probe_threshold_runs_total{{{sel},verdict=\"good\"}}[$__range])) / sum by (measurement, threshold) (rate(probe_threshold_runs_total{{{sel}}}[$__range]))"
    );
    panels.push(panel(
        &mut id,
        "Budget compliance (exact)",
        "bargauge",
        (12, y, 6, 8),
        vec![target(compliance, "{{measurement}} ≤ {{threshold}}", "A")],
        ratio_field(3, 0.99),
    ));
    let expr = format!(
        "sum(rate(probe_runs_total{{{sel},outcome=\"success\"}}[$__range])) / sum(rate(probe_runs_total{{{sel}}}[$__range]))"
    );
    panels.push(panel(
        &mut id,
        "Success ratio (range)",
        "stat",
        (18, y, 6, 8),
        vec![target(expr, "", "A")],
        ratio_field(3, 0.99),
    ));
    y += 8;

    if rum {
        panels.push(row(&mut id, "Real users (RUM) and lab", y, None));
        y += 1;
        let p75 = |synthetic: &str, by: &str| {
            quantile(
                "0.75",
                "browser_web_vital_lcp_seconds",
                &format!("{LOC},user_agent_synthetic_type=\"{synthetic}\""),
                by,
                "$__rate_interval",
            )
        };
        panels.push(panel(
            &mut id,
            "LCP p75: real users vs the browser probes",
            "timeseries",
            (0, y, 8, 8),
            vec![target(p75("", ""), "field", "A"), target(p75("test", ""), "lab", "B")],
            lines("s", &[2.5]),
        ));
        let worst = format!(
            "topk(10, {})",
            quantile(
                "0.75",
                "browser_web_vital_lcp_seconds",
                &format!("{LOC},user_agent_synthetic_type=\"\""),
                ", http_route",
                "$__range"
            )
        );
        panels.push(panel(
            &mut id,
            "Field LCP p75 by route (worst 10)",
            "bargauge",
            (8, y, 6, 8),
            vec![target(worst, "{{http_route}}", "A")],
            lines("s", &[2.5]),
        ));
        panels.push(panel(
            &mut id,
            "Coverage: page views reporting each vital",
            "timeseries",
            (14, y, 5, 8),
            vec![target(
                format!("rum_coverage_ratio{{{LOC}}}"),
                "{{browser_web_vital_name}}",
                "A",
            )],
            ratio_field(0, 0.5),
        ));
        panels.push(panel(
            &mut id,
            "Beacons/s by outcome and reason",
            "timeseries",
            (19, y, 5, 8),
            vec![target(
                "sum by (outcome, reason) (rate(rum_beacons_total[$__rate_interval]))".to_string(),
                "{{outcome}} {{reason}}",
                "A",
            )],
            lines("reqps", &[]),
        ));
        y += 8;
    }

    if !slos.is_empty() {
        panels.push(row(&mut id, "SLOs", y, None));
        y += 1;
    }
    for slo in slos {
        let period = prom_duration(slo.window);
        let what = match &slo.sli {
            Sli::Success => "success".to_string(),
            Sli::Parts => "parts".to_string(),
            Sli::Below { key, .. } => key.clone(),
            Sli::Field { key, .. } => format!("field {key}"),
        };
        let compliance = format!("1 - slo:sli_error:ratio_rate{period}{{slo=\"{}\",{LOC}}}", slo.name);
        panels.push(panel(
            &mut id,
            &format!(
                "{}: {what} compliance over {period} (objective {})",
                slo.name,
                num(slo.objective)
            ),
            "stat",
            (0, y, 8, 6),
            vec![target(compliance, "{{probe_location}}", "A")],
            ratio_field(3, slo.objective),
        ));
        let budget = format!("slo:error_budget_remaining:ratio{{slo=\"{}\",{LOC}}}", slo.name);
        let field = json!({"defaults": {"unit": "percentunit", "decimals": 1, "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": null}, {"color": "orange", "value": 0.1}, {"color": "green", "value": 0.5}]}}, "overrides": []});
        panels.push(panel(
            &mut id,
            &format!("{}: error budget left", slo.name),
            "stat",
            (8, y, 8, 6),
            vec![target(budget, "{{probe_location}}", "A")],
            field,
        ));
        let burn = format!("slo:current_burn_rate:ratio{{slo=\"{}\",{LOC}}}", slo.name);
        let factors: Vec<f64> = slo.burns.iter().map(|b| b.factor).collect();
        let mut field = lines("short", &factors);
        field["defaults"]["custom"]["thresholdsStyle"] = json!({"mode": "line"});
        let shortest = slo.burns.iter().map(|b| b.short).min().unwrap_or_default();
        panels.push(panel(
            &mut id,
            &format!("{}: burn rate ({})", slo.name, prom_duration(shortest)),
            "timeseries",
            (16, y, 8, 6),
            vec![target(burn, "{{probe_location}}", "A")],
            field,
        ));
        y += 6;
    }
    for b in budgets {
        y = budget_row(&mut panels, &mut id, y, b);
    }

    json!({
        "title": "sloprobe",
        "uid": "sloprobe",
        "description": "Generated by `sloprobe slo dashboard`. Do not edit: regenerate.",
        "schemaVersion": 39,
        "editable": true,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["sloprobe", "slo"],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
            {
                "name": "location", "label": "Location", "type": "query",
                "datasource": {"type": "prometheus", "uid": DS},
                "query": {"query": "label_values(probe_runs_total, probe_location)", "refId": "location"},
                "definition": "label_values(probe_runs_total, probe_location)",
                "includeAll": true, "multi": true, "allValue": ".*", "refresh": 2,
                "current": {"text": "All", "value": "$__all"}
            },
            {
                "name": "probe", "label": "Probe", "type": "query",
                "datasource": {"type": "prometheus", "uid": DS},
                "query": {"query": "label_values(probe_runs_total{probe_location=~\"$location\"}, probe_name)", "refId": "probe"},
                "definition": "label_values(probe_runs_total{probe_location=~\"$location\"}, probe_name)",
                "includeAll": false, "multi": true, "refresh": 2, "sort": 1,
                "description": "Pick a few probes: each gets a row of panels."
            }
        ]},
        "panels": panels,
    })
}

/// Every PromQL expression in a rendered dashboard (for tests and `check`).
pub fn queries(dashboard: &Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

/// A shared error budget: seconds left, spent per SLO, and its burn rate.
fn budget_row(panels: &mut Vec<Value>, id: &mut u32, mut y: u32, b: &ErrorBudget) -> u32 {
    panels.push(row(id, &format!("Error budget {}", b.name), y, None));
    y += 1;
    let sel = format!("error_budget=\"{}\"", b.name);
    let budget = b.budget.as_secs_f64();
    let field = json!({"defaults": {"unit": "s", "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": null}, {"color": "orange", "value": budget * 0.1}, {"color": "green", "value": budget * 0.5}]}}, "overrides": []});
    panels.push(panel(
        id,
        &format!(
            "{}: breach time left of {} per {}",
            b.name,
            prom_duration(b.budget),
            prom_duration(b.period)
        ),
        "stat",
        (0, y, 8, 6),
        vec![target(format!("slo:error_budget_left:seconds{{{sel}}}"), "left", "A")],
        field,
    ));
    panels.push(panel(
        id,
        &format!("{}: breach time spent by SLO", b.name),
        "bargauge",
        (8, y, 8, 6),
        vec![target(
            format!("slo:error_budget_spent_by_slo:seconds{{{sel}}}"),
            "{{slo}}",
            "A",
        )],
        json!({"defaults": {"unit": "s"}, "overrides": []}),
    ));
    let mut field = lines("short", &[1.0]);
    field["defaults"]["custom"]["thresholdsStyle"] = json!({"mode": "line"});
    panels.push(panel(
        id,
        &format!("{}: burn rate", b.name),
        "timeseries",
        (16, y, 8, 6),
        vec![
            target(format!("slo:error_budget_burn_rate:ratio_rate1h{{{sel}}}"), "1h", "A"),
            target(format!("slo:error_budget_burn_rate:ratio_rate1d{{{sel}}}"), "1d", "B"),
        ],
        field,
    ));
    y + 6
}
