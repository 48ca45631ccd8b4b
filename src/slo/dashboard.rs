//! A Grafana dashboard for the probes and SLOs: per probe, the phase breakdown, the
//! headline latency's p50/p95/p99 from the histograms with budget lines, and the success
//! ratio; per SLO, compliance over the window and the error budget left. A `location`
//! variable filters everything.

use serde_json::{Value, json};

use super::{Sli, Slo, prom_duration};
use crate::outcome::Unit;
use crate::probe::BuiltProbe;
use crate::telemetry::{otel_unit, prometheus::metric_name};

const DS: &str = "${datasource}";
const LOC: &str = "probe_location=~\"$location\"";

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

fn grafana_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds => "s",
        Unit::Bytes => "bytes",
        _ => "short",
    }
}

/// The measurement a probe kind is judged by first: time to first token, else TTFB.
fn headline(p: &BuiltProbe) -> Option<&'static crate::outcome::Measure> {
    ["ttft", "ttfb", "total"].iter().find_map(|k| {
        p.measures
            .iter()
            .find(|m| m.key == *k && m.instrument == crate::outcome::Instrument::Histogram)
            .copied()
    })
}

pub fn render(probes: &[BuiltProbe], slos: &[Slo]) -> Value {
    let mut panels = Vec::new();
    let mut id = 0;
    let mut y = 0;
    for p in probes {
        let sel = format!("probe_name=\"{}\",{LOC}", p.name);
        id += 1;
        panels.push(json!({"id": id, "type": "row", "title": format!("{} ({})", p.name, p.kind), "collapsed": false, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}}));
        y += 1;

        // Phase breakdown: mean seconds per phase, stacked.
        if let Some(m) = p.measures.iter().find(|m| m.fixed.iter().any(|(k, _)| *k == "phase")) {
            let name = metric_name(m.metric, otel_unit(m.unit), false);
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
                (0, y, 8, 8),
                vec![target(expr, "{{phase}}", "A")],
                field,
            ));
        }

        if let Some(m) = headline(p) {
            let name = metric_name(m.metric, otel_unit(m.unit), false);
            let targets = [("0.5", "p50", "A"), ("0.95", "p95", "B"), ("0.99", "p99", "C")]
                .iter()
                .map(|(q, legend, r)| {
                    target(
                        format!(
                            "histogram_quantile({q}, sum by (le) (rate({name}_bucket{{{sel}}}[$__rate_interval])))"
                        ),
                        legend,
                        r,
                    )
                })
                .collect();
            let budgets: Vec<f64> = p.budgets.all().filter(|t| t.key == m.key).map(|t| t.value).collect();
            panels.push(panel(
                &mut id,
                &format!("{} p50 / p95 / p99", m.key),
                "timeseries",
                (8, y, 8, 8),
                targets,
                lines(grafana_unit(m.unit), &budgets),
            ));
        }

        let expr = format!(
            "sum(rate(probe_runs_total{{{sel},outcome=\"success\"}}[$__range])) / sum(rate(probe_runs_total{{{sel}}}[$__range]))"
        );
        let field = json!({"defaults": {"unit": "percentunit", "decimals": 3, "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": null}, {"color": "green", "value": 0.99}]}}, "overrides": []});
        panels.push(panel(
            &mut id,
            "Success ratio (range)",
            "stat",
            (16, y, 8, 8),
            vec![target(expr, "", "A")],
            field,
        ));
        y += 8;
    }

    if !slos.is_empty() {
        id += 1;
        panels.push(json!({"id": id, "type": "row", "title": "SLOs", "collapsed": false, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}}));
        y += 1;
    }
    for slo in slos {
        let period = prom_duration(slo.window);
        let what = match &slo.sli {
            Sli::Success => "success".to_string(),
            Sli::Below { key, .. } => key.clone(),
        };
        let compliance = format!("1 - slo:sli_error:ratio_rate{period}{{slo=\"{}\",{LOC}}}", slo.name);
        let field = json!({"defaults": {"unit": "percentunit", "decimals": 3, "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": null}, {"color": "green", "value": slo.objective}]}}, "overrides": []});
        panels.push(panel(
            &mut id,
            &format!(
                "{}: {what} compliance over {period} (objective {})",
                slo.name, slo.objective
            ),
            "stat",
            (0, y, 8, 6),
            vec![target(compliance, "{{probe_location}}", "A")],
            field,
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
        let burn = format!(
            "slo:sli_error:ratio_rate1h{{slo=\"{}\",{LOC}}} / {}",
            slo.name,
            slo.budget()
        );
        let mut field = lines("short", &[1.0, 6.0, 14.4]);
        field["defaults"]["custom"]["thresholdsStyle"] = json!({"mode": "line"});
        panels.push(panel(
            &mut id,
            &format!("{}: burn rate (1h)", slo.name),
            "timeseries",
            (16, y, 8, 6),
            vec![target(burn, "{{probe_location}}", "A")],
            field,
        ));
        y += 6;
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
