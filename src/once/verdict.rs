//! What `once` concluded about each probe, shared by the table, the JSON lines, the HTML
//! report and the JUnit file.

use crate::budget::{PercentileVerdict, percentile};
use crate::outcome::{Outcome, Unit};
use crate::probe::BuiltProbe;

pub struct ProbeReport {
    pub outcomes: Vec<Outcome>,
    pub verdicts: Vec<PercentileVerdict>,
    /// Per-run budgets are judged on the median of the runs (browser probes).
    pub median: bool,
}

impl ProbeReport {
    /// Why the probe did not pass, in a few words: failed runs by error type, broken
    /// budgets, missing runs.
    pub fn why(&self, runs: u32) -> String {
        let mut parts = Vec::new();
        let failed: Vec<&Outcome> = self.outcomes.iter().filter(|o| !o.success()).collect();
        if !failed.is_empty() {
            let mut kinds: Vec<&str> = failed
                .iter()
                .filter_map(|o| o.error.as_ref())
                .map(|e| e.kind.as_str())
                .collect();
            kinds.dedup();
            parts.push(format!(
                "{} of {} runs failed: {}",
                failed.len(),
                self.outcomes.len(),
                kinds.join(", ")
            ));
        }
        let mut broken: Vec<String> = self
            .outcomes
            .iter()
            .filter(|_| !self.median)
            .flat_map(|o| &o.breaches)
            .map(|b| format!("{} {} {}", b.measurement, b.unit.beyond(), b.unit.format(b.threshold)))
            .collect();
        broken.sort();
        broken.dedup();
        parts.extend(broken);
        parts.extend(self.verdicts.iter().filter(|v| !v.passed).map(|v| {
            format!(
                "p{} {} {} > {}",
                v.q,
                v.key,
                v.unit.format_opt(v.value),
                v.unit.format(v.threshold)
            )
        }));
        if self.outcomes.len() < runs as usize {
            parts.push(format!("{} run(s) missing", runs as usize - self.outcomes.len()));
        }
        parts.join(", ")
    }

    /// Every expected run happened and passed, and every percentile budget held.
    pub fn passed(&self, runs: u32) -> bool {
        self.outcomes.len() == runs as usize
            && self.outcomes.iter().all(|o| o.success() && (self.median || o.passed()))
            && self.verdicts.iter().all(|v| v.passed)
    }
}

pub fn measurement_keys(outcomes: &[Outcome]) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for o in outcomes {
        for (k, _) in &o.measurements {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
    }
    keys
}

/// Keys recorded as samples (several values a run), in first-seen order.
pub fn sampled_keys(outcomes: &[Outcome]) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for s in outcomes.iter().flat_map(|o| &o.samples) {
        if !keys.contains(&s.key) {
            keys.push(s.key);
        }
    }
    keys
}

/// Distribution of one sampled measurement over every sample of every run.
pub struct SampleStats {
    pub n: usize,
    pub min: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

impl SampleStats {
    pub fn of(outcomes: &[Outcome], key: &str) -> SampleStats {
        let mut values: Vec<f64> = outcomes
            .iter()
            .flat_map(|o| o.samples_of(key))
            .map(|s| s.value)
            .collect();
        SampleStats {
            n: values.len(),
            min: values.iter().copied().reduce(f64::min),
            max: values.iter().copied().reduce(f64::max),
            p50: percentile(&mut values, 50.0),
            p95: percentile(&mut values, 95.0),
        }
    }
}

pub fn unit_of(p: &BuiltProbe, key: &str) -> Unit {
    p.measures.iter().find(|m| m.key == key).map_or(Unit::Count, |m| m.unit)
}
