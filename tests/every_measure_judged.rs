//! Every measurement a kind lists is either judged wherever a budget or SLI may name it
//! (per-run budgets, percentile budgets, the exact threshold counters the SLO rules read),
//! whether the kind records it once per run or as per-run samples (ping round trips,
//! inter-chunk gaps), or refused at load. A budget that passes `check` and is then never
//! evaluated is a false pass.

use std::collections::BTreeMap;
use std::time::SystemTime;

use sloprobe::budget;
use sloprobe::config::{Source, Spanned};
use sloprobe::outcome::{Outcome, Sample, Unit, Watch};
use sloprobe::telemetry::{Plan, ProbePlan, Telemetry};

/// A threshold every value of 1.0 (or 0.5 for a floor) breaks, written as config would.
fn breaking_threshold(unit: Unit) -> (toml::Value, f64) {
    match unit {
        Unit::Seconds => (toml::Value::String("0s".into()), 1.0),
        Unit::Bytes => (toml::Value::String("0B".into()), 1.0),
        Unit::Ratio => (toml::Value::Float(1.0), 0.5),
        Unit::Loss => (toml::Value::Float(0.0), 1.0),
        Unit::Score => (toml::Value::Float(0.0), 1.0),
        _ => (toml::Value::Integer(0), 1.0),
    }
}

fn outcome(kind: &'static str, key: &'static str, value: f64, as_sample: bool) -> Outcome {
    let (measurements, samples) = if as_sample {
        (
            Vec::new(),
            vec![
                Sample {
                    key,
                    value: if value < 1.0 { 1.0 } else { 0.0 },
                    attrs: None,
                },
                Sample {
                    key,
                    value,
                    attrs: None,
                },
            ],
        )
    } else {
        (vec![(key, value)], Vec::new())
    };
    Outcome {
        probe: "p".into(),
        kind,
        started_at: SystemTime::now(),
        error: None,
        measurements,
        samples,
        labels: Vec::new(),
        details: Vec::new(),
        breaches: Vec::new(),
        retry_after: None,
        skipped: None,
        steps: Vec::new(),
        screenshot: None,
        trace: sloprobe::trace::TraceContext::NONE,
        evidence: Vec::new(),
    }
}

#[test]
fn every_catalog_measurement_is_judged_or_refused() {
    let source = Source {
        path: "probes.toml".into(),
        text: String::new(),
    };
    let mut judged = 0;
    let mut refused = Vec::new();
    for kind in sloprobe::assembly::KINDS {
        let measures = sloprobe::probe::measures_of(kind);
        for m in &measures {
            let (value, run_value) = breaking_threshold(m.unit);
            let mut table = BTreeMap::new();
            table.insert(m.key.to_string(), Spanned::new(0..0, value.clone()));
            let mut p95 = toml::Table::new();
            p95.insert(m.key.to_string(), value);
            table.insert("p95".to_string(), Spanned::new(0..0, toml::Value::Table(p95)));
            let budgets = match budget::parse(&table, kind.name, &source, &measures) {
                Ok(b) => b,
                Err(e) => {
                    assert!(!budget::budgetable(m), "{}.{} refused: {e}", kind.name, m.key);
                    assert!(e.to_string().contains(m.key), "the refusal names the key: {e}");
                    refused.push(format!("{}.{}", kind.name, m.key));
                    continue;
                }
            };
            assert!(
                budget::budgetable(m),
                "{}.{} accepted but not budgetable",
                kind.name,
                m.key
            );
            let threshold = budgets.per_run[0].value;
            for as_sample in [false, true] {
                let form = if as_sample { "sample" } else { "measurement" };
                // Per-run budget.
                let mut o = outcome(kind.name, m.key, run_value, as_sample);
                budgets.judge(&mut o);
                assert!(
                    o.breaches.iter().any(|b| b.measurement == m.key),
                    "{}.{} as a {form}: a per-run budget it breaks was not judged",
                    kind.name,
                    m.key
                );
                // Percentile budget over a batch.
                let verdicts = budgets.judge_batch(&[outcome(kind.name, m.key, run_value, as_sample)], false);
                assert!(
                    verdicts.iter().any(|v| v.key == m.key && !v.passed),
                    "{}.{} as a {form}: a p95 budget it breaks was not judged",
                    kind.name,
                    m.key
                );
                // The exact threshold counters that SLO rules read.
                let mut plan = Plan::default();
                plan.add_kind(kind.name, &measures);
                plan.probes.insert(
                    "p".into(),
                    ProbePlan {
                        kind: kind.name,
                        thresholds: vec![Watch {
                            key: m.key,
                            value: threshold,
                            unit: m.unit,
                        }],
                        ..Default::default()
                    },
                );
                let t = Telemetry::new("l", plan, None).unwrap();
                t.record(&outcome(kind.name, m.key, run_value, as_sample));
                let mut text = String::new();
                t.prometheus_text(&mut |c| text.push_str(&c)).unwrap();
                let bad = text.lines().any(|l| {
                    l.starts_with("probe_threshold_runs_total{")
                        && l.contains(&format!("measurement=\"{}\"", m.key))
                        && l.contains("verdict=\"bad\"")
                        && l.ends_with(" 1")
                });
                assert!(
                    bad,
                    "{}.{} as a {form}: no bad verdict counted for SLOs",
                    kind.name, m.key
                );
            }
            judged += 1;
        }
    }
    assert!(judged > 50, "only {judged} measurements judged");
    // What is refused is refused on purpose: wall-time points and run counters.
    for r in &refused {
        assert!(
            r.ends_with(".cert_expiry") || r.ends_with(".goodput") || r.contains("expir"),
            "{r}"
        );
    }
}
