//! Performance budgets: per-run thresholds judged on every outcome, and percentile
//! thresholds (`[probe.budget.p95]`) judged over a batch of runs by `once`.

use std::collections::BTreeMap;

use crate::config::{ConfigError, Source, Spanned, parse_duration, parse_size};
use crate::outcome::{Breach, Measure, Outcome, Unit};

#[derive(Debug, Clone)]
pub struct Threshold {
    pub key: &'static str,
    pub unit: Unit,
    /// Seconds, bytes or a plain number, as the measure's unit says.
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct PercentileThreshold {
    /// 0 < q ≤ 100.
    pub q: f64,
    pub threshold: Threshold,
}

#[derive(Debug, Clone, Default)]
pub struct Budgets {
    pub per_run: Vec<Threshold>,
    pub percentiles: Vec<PercentileThreshold>,
}

impl Budgets {
    /// Every threshold, for histogram bucket edges.
    pub fn all(&self) -> impl Iterator<Item = &Threshold> {
        self.per_run.iter().chain(self.percentiles.iter().map(|p| &p.threshold))
    }

    /// Marks every per-run budget the outcome broke. A run that succeeded without
    /// measuring a budgeted value breaks that budget (a failed run fails anyway).
    pub fn judge(&self, outcome: &mut Outcome) {
        let measured_run = outcome.error.is_none() && outcome.skipped.is_none();
        for t in &self.per_run {
            let value = outcome.judged(t.key, t.unit);
            let broken = match value {
                Some(v) => !t.unit.within(v, t.value),
                None => measured_run,
            };
            if broken {
                outcome.breaches.push(Breach {
                    measurement: t.key.to_string(),
                    value,
                    threshold: t.value,
                    unit: t.unit,
                });
            }
        }
    }

    /// Judges percentile budgets over a batch of runs of one probe; with `median`, the
    /// per-run budgets too, on the median of the runs (Lighthouse CI's way).
    pub fn judge_batch(&self, outcomes: &[Outcome], median: bool) -> Vec<PercentileVerdict> {
        let medians = self.per_run.iter().filter(|_| median).map(|t| PercentileThreshold {
            q: 50.0,
            threshold: t.clone(),
        });
        self.percentiles
            .iter()
            .cloned()
            .chain(medians)
            .map(|p| {
                let mut values: Vec<f64> = outcomes
                    .iter()
                    .filter_map(|o| o.judged(p.threshold.key, p.threshold.unit))
                    .collect();
                // No run measured it: no evidence, so the budget is not met.
                let value = percentile(&mut values, p.q);
                PercentileVerdict {
                    q: p.q,
                    key: p.threshold.key,
                    value,
                    threshold: p.threshold.value,
                    unit: p.threshold.unit,
                    passed: value.is_some_and(|v| p.threshold.unit.within(v, p.threshold.value)),
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PercentileVerdict {
    pub q: f64,
    pub key: &'static str,
    /// `None`: no run measured it (the verdict fails).
    pub value: Option<f64>,
    pub threshold: f64,
    #[serde(skip)]
    pub unit: Unit,
    pub passed: bool,
}

/// Nearest-rank percentile (the value of a real run, never interpolated).
pub fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// Reads `[probe.budget]` against the measures this probe kind produces.
pub fn parse(
    table: &BTreeMap<String, Spanned<toml::Value>>,
    kind: &str,
    source: &Source,
    measures: &[&'static Measure],
) -> Result<Budgets, ConfigError> {
    let at = Context { kind, source };
    let mut budgets = Budgets::default();
    for (key, value) in table {
        if let Some(q) = percentile_key(key) {
            let toml::Value::Table(table) = value.get_ref() else {
                return Err(source.error_at(
                    value.span(),
                    Some(&format!("probe.budget.{key}")),
                    format!("`{key}` must be a table, e.g. [probe.budget.{key}] ttfb = \"400ms\""),
                ));
            };
            for (inner_key, inner) in table {
                let path = format!("probe.budget.{key}.{inner_key}");
                let threshold = threshold(&at, measures, inner_key, inner, &path, value)?;
                budgets.percentiles.push(PercentileThreshold { q, threshold });
            }
        } else {
            let path = format!("probe.budget.{key}");
            let threshold = threshold(&at, measures, key, value.get_ref(), &path, value)?;
            budgets.per_run.push(threshold);
        }
    }
    // Kept for the daemon's life, one per probe: no spare capacity.
    budgets.per_run.shrink_to_fit();
    budgets.percentiles.shrink_to_fit();
    Ok(budgets)
}

/// `p0` … `p100`, with an optional decimal part (`p99.9`); nothing else (`p1e2`, `p+5`).
fn percentile_key(key: &str) -> Option<f64> {
    let num = key.strip_prefix('p')?;
    let (int, frac) = num.split_once('.').unwrap_or((num, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    let q: f64 = num.parse().ok()?;
    (0.0..=100.0).contains(&q).then_some(q)
}

/// Whether a budget or SLO threshold may name `m`: every measurement but points in wall
/// time (a certificate's notAfter) and run counters (`goodput`, made of other budgets).
pub fn budgetable(m: &Measure) -> bool {
    !matches!(m.unit, Unit::UnixTime | Unit::Runs)
}

/// Where a budget table was written, for its errors.
struct Context<'a> {
    kind: &'a str,
    source: &'a Source,
}

fn threshold(
    cfg: &Context<'_>,
    measures: &[&'static Measure],
    key: &str,
    value: &toml::Value,
    path: &str,
    at: &Spanned<toml::Value>,
) -> Result<Threshold, ConfigError> {
    let Some(measure) = measures.iter().find(|m| m.key == key && budgetable(m)) else {
        let mut known: Vec<&str> = measures.iter().filter(|m| budgetable(m)).map(|m| m.key).collect();
        known.dedup();
        return Err(cfg.source.error_at(
            at.span(),
            Some(path),
            format!(
                "`{key}` is not a measurement of kind {:?}; budgets can name: {}, or p50/p90/p95/p99 tables",
                cfg.kind,
                known.join(", ")
            ),
        ));
    };
    let parsed = parse_value(measure.unit, key, value).map_err(|e| cfg.source.error_at(at.span(), Some(path), e))?;
    Ok(Threshold {
        key: measure.key,
        unit: measure.unit,
        value: parsed,
    })
}

/// A threshold written for a measurement of `unit`: a duration, a size or a number.
/// Budgets and SLO thresholds share this, so both accept the same forms.
pub fn parse_value(unit: Unit, key: &str, value: &toml::Value) -> Result<f64, String> {
    let v = parse_any(unit, key, value)?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{key}` must be a finite value of at least 0"));
    }
    Ok(v)
}

fn parse_any(unit: Unit, key: &str, value: &toml::Value) -> Result<f64, String> {
    match (unit, value) {
        (Unit::Seconds, toml::Value::String(s)) => parse_duration(s).map(|d| d.as_secs_f64()),
        (Unit::Bytes, toml::Value::String(s)) => parse_size(s).map(|b| b as f64),
        (Unit::Bytes | Unit::Count | Unit::Tokens, toml::Value::Integer(n)) => Ok(*n as f64),
        (Unit::Count | Unit::Score, toml::Value::Float(f)) => Ok(*f),
        (Unit::Score, toml::Value::Integer(n)) => Ok(*n as f64),
        (Unit::Ratio, toml::Value::Float(f)) if (0.0..=1.0).contains(f) => Ok(*f),
        (Unit::Ratio, toml::Value::Integer(n)) if (0..=1).contains(n) => Ok(*n as f64),
        (Unit::Ratio, _) => Err(format!("`{key}` takes a share between 0 and 1 (a floor), such as 0.96")),
        (Unit::Loss, toml::Value::Float(f)) if (0.0..=1.0).contains(f) => Ok(*f),
        (Unit::Loss, toml::Value::Integer(n)) if (0..=1).contains(n) => Ok(*n as f64),
        (Unit::Loss, _) => Err(format!(
            "`{key}` takes a share between 0 and 1 (a ceiling), such as 0.01"
        )),
        (Unit::Seconds, _) => Err(format!("`{key}` takes a duration such as \"500ms\"")),
        (Unit::Bytes, _) => Err(format!("`{key}` takes a size such as \"180KB\"")),
        _ => Err(format!("`{key}` takes a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::{percentile, percentile_key};

    #[test]
    fn percentile_keys_are_strict() {
        assert_eq!(percentile_key("p0"), Some(0.0));
        assert_eq!(percentile_key("p95"), Some(95.0));
        assert_eq!(percentile_key("p99.9"), Some(99.9));
        assert_eq!(percentile_key("p100"), Some(100.0));
        for bad in ["p1e2", "p+5", "p-1", "p101", "p", "p.5", "p5.", "pinf", "pNaN", "ttfb"] {
            assert_eq!(percentile_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn median_gate_judges_per_run_budgets_on_the_median() {
        use crate::outcome::{Outcome, Unit};
        let run = |lcp: f64| Outcome::measured("p", "browser", vec![("lcp", lcp)]);
        let b = super::Budgets {
            per_run: vec![super::Threshold {
                key: "lcp",
                unit: Unit::Seconds,
                value: 2.5,
            }],
            percentiles: Vec::new(),
        };
        // One slow run of three: the median holds.
        let v = b.judge_batch(&[run(1.0), run(9.0), run(2.0)], true);
        assert_eq!(v.len(), 1);
        assert!(v[0].passed && v[0].value == Some(2.0) && v[0].q == 50.0);
        let v = b.judge_batch(&[run(3.0), run(9.0), run(2.0)], true);
        assert!(!v[0].passed);
        // Without the gate, per-run budgets are not batch verdicts.
        assert!(b.judge_batch(&[run(3.0)], false).is_empty());
        // Unmeasured is no evidence: a successful run without the value breaks the
        // budget, and a median over runs that never measured it fails.
        let mut blank = run(1.0);
        blank.measurements.clear();
        b.judge(&mut blank);
        assert_eq!(blank.breaches.len(), 1);
        assert_eq!(blank.breaches[0].value, None);
        let v = b.judge_batch(&[blank.clone(), blank], true);
        assert!(!v[0].passed && v[0].value.is_none());
        // A failed run is failed already: no breach is added to it.
        let mut failed = run(1.0);
        failed.measurements.clear();
        failed.error = Some(crate::outcome::ProbeError::new(crate::outcome::ErrorType::Timeout, "x"));
        b.judge(&mut failed);
        assert!(failed.breaches.is_empty());
    }

    #[test]
    fn nearest_rank() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&mut v, 50.0), Some(3.0));
        assert_eq!(percentile(&mut v, 95.0), Some(5.0));
        assert_eq!(percentile(&mut v, 1.0), Some(1.0));
        assert_eq!(percentile(&mut v, 0.0), Some(1.0));
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 95.0), Some(95.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
