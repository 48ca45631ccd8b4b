//! Run logging that stays readable at 1,000 probes: a probe's state changes
//! (ok → failing, one error type → another, failing → ok) are logged when they happen;
//! repeats are only counted, and a periodic summary names the probes still failing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::fmt_seconds;
use crate::outcome::Outcome;

/// How often the "still failing" summary is written.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, PartialEq, Eq)]
enum State {
    Ok,
    Failed(&'static str),
    OverBudget(Vec<String>),
}

struct Failing {
    state: State,
    /// Runs in this state since the last summary (the first one was logged).
    repeats: u64,
}

#[derive(Default)]
pub struct RunLog {
    failing: Mutex<BTreeMap<String, Failing>>,
}

impl RunLog {
    /// Logs the run if it changed the probe's state; otherwise counts it.
    pub fn record(&self, o: &Outcome) {
        let state = match &o.error {
            Some(e) => State::Failed(e.kind.as_str()),
            None if o.breaches.is_empty() => State::Ok,
            None => State::OverBudget(o.breaches.iter().map(|b| b.measurement.clone()).collect()),
        };
        let mut failing = self.failing.lock().expect("run log lock");
        let previous = failing.get(&o.probe).map(|f| f.state.clone());
        match (&state, previous) {
            (State::Ok, None) => log_ok(o),
            (State::Ok, Some(_)) => {
                let f = failing.remove(&o.probe).expect("present");
                tracing::info!(probe = %o.probe, kind = o.kind, repeats_since_summary = f.repeats, total = %ms(o, "total"), "recovered");
            }
            (s, Some(prev)) if *s == prev => {
                if let Some(f) = failing.get_mut(&o.probe) {
                    f.repeats += 1;
                }
                tracing::debug!(probe = %o.probe, kind = o.kind, "still failing (logged on change and in the summary)");
            }
            (s, _) => {
                log_failure(o);
                failing.insert(
                    o.probe.clone(),
                    Failing {
                        state: s.clone(),
                        repeats: 0,
                    },
                );
            }
        }
    }

    /// A one-line status for systemd: "120 probes, 3 failing".
    pub fn status(&self, probes: usize) -> String {
        let failing = self.failing.lock().expect("run log lock").len();
        format!("{probes} probes, {failing} failing")
    }

    /// Forgets probes that no longer exist (after a reload).
    pub fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        self.failing.lock().expect("run log lock").retain(|k, _| keep(k));
    }

    /// One line naming the probes still failing and how many runs were not logged.
    pub fn summary(&self) {
        let mut failing = self.failing.lock().expect("run log lock");
        if failing.is_empty() {
            return;
        }
        let repeats: u64 = failing.values().map(|f| f.repeats).sum();
        let mut names: Vec<String> = failing
            .iter()
            .take(10)
            .map(|(name, f)| match &f.state {
                State::Failed(t) => format!("{name} ({t})"),
                State::OverBudget(keys) => format!("{name} (over budget: {})", keys.join(",")),
                State::Ok => name.clone(),
            })
            .collect();
        if failing.len() > 10 {
            names.push(format!("and {} more", failing.len() - 10));
        }
        tracing::warn!(failing = failing.len(), repeated_runs_not_logged = repeats, probes = %names.join(", "), "probes still failing");
        for f in failing.values_mut() {
            f.repeats = 0;
        }
    }
}

fn ms(o: &Outcome, k: &str) -> String {
    o.get(k).map(fmt_seconds).unwrap_or_else(|| "-".into())
}

/// One line per successful run at info, with the kind's headline measurements (TTFT for
/// the assistant kind). `--log-level warn` keeps only state changes and summaries.
fn log_ok(o: &Outcome) {
    tracing::info!(probe = %o.probe, kind = o.kind, summary = %headline(o), trace_id = %o.run_id(), "ok")
}

/// "ttft=412.003ms tpot=21.020ms e2e=1.203s" (a websocket ping RTT from its first sample),
/// each in its measure's unit ("cls=0.050 total_bytes=17336B").
fn headline(o: &Outcome) -> String {
    let kind = crate::assembly::kind(o.kind);
    let keys = kind.map_or(&["total"][..], |k| k.headline);
    let catalog = kind.map(crate::probe::measures_of).unwrap_or_default();
    keys.iter()
        .filter_map(|k| {
            let v = o.get(k).or_else(|| o.samples_of(k).next().map(|s| s.value))?;
            let text = match catalog.iter().find(|m| m.key == *k) {
                Some(m) => m.unit.format(v),
                None => fmt_seconds(v),
            };
            Some(format!("{k}={text}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn log_failure(o: &Outcome) {
    match &o.error {
        Some(e) => {
            tracing::warn!(probe = %o.probe, kind = o.kind, error_type = %e.kind, error = %e.message, total = %ms(o, "total"), trace_id = %o.run_id(), "failed")
        }
        None => {
            tracing::warn!(probe = %o.probe, kind = o.kind, ttfb = %ms(o, "ttfb"), total = %ms(o, "total"), budget = %broken(o), trace_id = %o.run_id(), "budget broken")
        }
    }
}

/// "lcp 3.100s > 2.500s, recall 0.700 < 0.850": each broken budget, the sign its way.
fn broken(o: &Outcome) -> String {
    o.breaches
        .iter()
        .map(|b| {
            format!(
                "{} {} {} {}",
                b.measurement,
                b.unit.format_opt(b.value),
                b.unit.beyond(),
                b.unit.format(b.threshold)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_headline_uses_each_measures_unit() {
        let o = crate::outcome::Outcome::measured(
            "p",
            "browser",
            vec![("lcp", 0.052), ("cls", 0.05), ("total_bytes", 17336.0)],
        );
        let h = super::headline(&o);
        assert!(h.contains("lcp=52.000ms"), "{h}");
        assert!(h.contains("cls=0.05") && !h.contains("cls=0.050ms"), "{h}");
        assert!(h.contains("total_bytes=17336B"), "{h}");
        let v = crate::outcome::Outcome::measured("p", "vector", vec![("recall", 0.9), ("result_count", 10.0)]);
        let h = super::headline(&v);
        assert!(h.contains("recall=0.900") && h.contains("result_count=10"), "{h}");
        assert!(!h.contains("ms") && !h.contains("10.000s"), "{h}");
    }

    #[test]
    fn a_broken_floor_reads_under_its_threshold() {
        use crate::outcome::{Breach, Unit};
        let mut o = crate::outcome::Outcome::measured("p", "vector", vec![("recall", 0.7)]);
        o.breaches.push(Breach {
            measurement: "recall".into(),
            value: Some(0.7),
            threshold: 0.85,
            unit: Unit::Ratio,
        });
        assert_eq!(super::broken(&o), "recall 0.700 < 0.850");
    }
}
