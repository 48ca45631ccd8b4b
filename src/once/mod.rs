//! `sloprobe once`: run probes now, N times each, print every run, judge per-run and
//! percentile budgets, and exit non-zero when anything broke. This is the CI gate.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Map, Value, json};

use crate::budget::percentile;
use crate::outcome::{Outcome, Unit};
use crate::probe::BuiltProbe;

mod html;
mod junit;
mod verdict;

use verdict::{ProbeReport, SampleStats, measurement_keys, sampled_keys, unit_of};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Exit codes of `once`.
pub const EXIT_PASS: i32 = 0;
pub const EXIT_FAIL: i32 = 1;
pub const EXIT_CONFIG: i32 = 2;
/// A mistyped command line (BSD's EX_USAGE), apart from a bad config file.
pub const EXIT_USAGE: i32 = 64;

/// Screenshots `--report` keeps in memory at most, all runs together.
const MAX_SCREENSHOT_BYTES: usize = 64 * 1024 * 1024;

/// Files `once` writes besides its output (`--report`, `--junit`).
#[derive(Debug, Default)]
pub struct Files {
    pub report: Option<std::path::PathBuf>,
    pub junit: Option<std::path::PathBuf>,
    /// `--artifacts DIR`: failed runs' evidence, as the daemon's `[artifacts]` keeps it.
    pub artifacts: Option<std::path::PathBuf>,
}

/// Runs each probe `runs` times (probes side by side, one probe's runs one after
/// another) and prints the report. Returns the exit code.
pub async fn run(probes: Vec<BuiltProbe>, runs: u32, format: Format, files: &Files, out: &mut dyn Write) -> i32 {
    // The report shows each browser probe's median run as the page looked.
    if files.report.is_some() {
        crate::probe::browser::capture_screenshots(true);
    }
    let store = match &files.artifacts {
        Some(dir) => match crate::artifacts::Store::open(crate::artifacts::ArtifactSettings::in_dir(dir.clone())) {
            Ok(s) => {
                crate::outcome::capture_evidence(true);
                Some(s)
            }
            Err(e) => {
                let _ = writeln!(out, "error: cannot use {} for artifacts: {e}", dir.display());
                return EXIT_CONFIG;
            }
        },
        None => None,
    };
    // Nothing run is nothing proven: the gate never passes on zero probes or runs.
    if probes.is_empty() || runs == 0 {
        let _ = writeln!(
            out,
            "FAIL: nothing to run ({} probe(s), {runs} run(s) each)",
            probes.len()
        );
        return EXIT_FAIL;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u32, Outcome)>();
    let probes: Vec<std::sync::Arc<BuiltProbe>> = probes.into_iter().map(std::sync::Arc::new).collect();
    for (i, p) in probes.iter().enumerate() {
        let (p, tx) = (p.clone(), tx.clone());
        tokio::spawn(async move {
            for run in 1..=runs {
                // Honour a 429's Retry-After between runs rather than hammer the target.
                // Capped at MAX_RETRY_AFTER when recorded, as in the daemon.
                if let Some(left) = p.backoff_remaining() {
                    tokio::time::sleep(left).await;
                }
                let o = p.execute().await;
                if o.skipped.is_some() {
                    // Counted as a missing run: the gate fails on it.
                    continue;
                }
                if tx.send((i, run, o)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);

    let mut reports: Vec<ProbeReport> = probes
        .iter()
        .map(|p| ProbeReport {
            outcomes: Vec::new(),
            verdicts: Vec::new(),
            median: p.median_gate,
        })
        .collect();
    // Screenshots are kept for the report up to a total, so many runs of many browser
    // probes cannot hold gigabytes; past it, a run's screenshot is dropped.
    let mut screenshot_bytes = 0usize;
    while let Some((i, run, mut o)) = rx.recv().await {
        if let Some(png) = &o.screenshot {
            screenshot_bytes += png.len();
            if screenshot_bytes > MAX_SCREENSHOT_BYTES {
                o.screenshot = None;
            }
        }
        let mut json = run_json(&o, run);
        if let Some(store) = &store {
            match store.write(&o, &json) {
                Ok(Some(folder)) => json["artifacts"] = folder.display().to_string().into(),
                Ok(None) => {}
                Err(e) => eprintln!("warning: cannot write artifacts of {}: {e}", o.probe),
            }
        }
        if format == Format::Json {
            let _ = writeln!(out, "{json}");
        }
        reports[i].outcomes.push(o);
    }

    let mut passed = true;
    for (p, r) in probes.iter().zip(reports.iter_mut()) {
        r.verdicts = p.budgets.judge_batch(&r.outcomes, p.median_gate);
        passed &= r.passed(runs);
        match format {
            Format::Json => {
                let _ = writeln!(out, "{}", summary_json(p, r, runs));
            }
            Format::Table => print_table(out, p, r, runs),
        }
    }
    if format == Format::Table {
        if passed {
            let _ = writeln!(out, "\nPASS: {} probe(s), {} run(s) each", probes.len(), runs);
        } else {
            let why: Vec<String> = probes
                .iter()
                .zip(&reports)
                .filter(|(_, r)| !r.passed(runs))
                .map(|(p, r)| format!("{} ({})", p.name, r.why(runs)))
                .collect();
            let _ = writeln!(out, "\nFAIL: {}", why.join("; "));
        }
    }
    let judged: Vec<(&BuiltProbe, &ProbeReport)> = probes.iter().map(|p| &**p).zip(&reports).collect();
    type Render = fn(&[(&BuiltProbe, &ProbeReport)], u32) -> String;
    for (path, render) in [
        (&files.report, html::render as Render),
        (&files.junit, junit::render as Render),
    ] {
        let Some(path) = path else { continue };
        if let Err(e) = std::fs::write(path, render(&judged, runs)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return EXIT_CONFIG;
        }
    }
    if passed { EXIT_PASS } else { EXIT_FAIL }
}

pub fn run_json(o: &Outcome, run: u32) -> Value {
    let measurements: Map<String, Value> = o.measurements.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let labels: Map<String, Value> = o
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.int.map_or_else(|| json!(v.text), |n| json!(n))))
        .collect();
    let details: Map<String, Value> = o.details.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let mut samples: Map<String, Value> = Map::new();
    for s in &o.samples {
        if let Value::Array(list) = samples.entry(s.key.to_string()).or_insert_with(|| json!([])) {
            list.push(json!(s.value));
        }
    }
    let mut v = json!({
        "type": "run",
        "probe": o.probe,
        "kind": o.kind,
        "run": run,
        "trace_id": o.run_id(),
        "started_at": chrono::DateTime::<chrono::Utc>::from(o.started_at).to_rfc3339(),
        "success": o.success(),
        "error_type": o.error.as_ref().map(|e| e.kind.as_str()),
        "error": o.error.as_ref().map(|e| e.message.clone()),
        "passed": o.passed(),
        "budget_breaches": o.breaches,
        "measurements": measurements,
        "samples": samples,
        "labels": labels,
        "details": details,
    });
    if !o.steps.is_empty() {
        v["steps"] = json!(o.steps);
    }
    v
}

fn summary_json(p: &BuiltProbe, r: &ProbeReport, runs: u32) -> Value {
    let mut stats = Map::new();
    let sampled = sampled_keys(&r.outcomes);
    for key in measurement_keys(&r.outcomes)
        .into_iter()
        .filter(|k| !sampled.contains(k))
    {
        let mut values: Vec<f64> = r
            .outcomes
            .iter()
            .filter_map(|o| o.judged(key, unit_of(p, key)))
            .collect();
        let p50 = percentile(&mut values, 50.0);
        let p95 = percentile(&mut values, 95.0);
        stats.insert(key.to_string(), json!({"p50": p50, "p95": p95, "n": values.len()}));
    }
    // Sampled measurements (every ping, every gap): over all samples of all runs.
    for key in sampled {
        let s = SampleStats::of(&r.outcomes, key);
        stats.insert(
            key.to_string(),
            json!({"p50": s.p50, "p95": s.p95, "min": s.min, "max": s.max, "n": s.n, "sampled": true}),
        );
    }
    json!({
        "type": "summary",
        "probe": p.name,
        "kind": p.kind,
        "runs": r.outcomes.len(),
        "expected_runs": runs,
        "failed": r.outcomes.iter().filter(|o| !o.success()).count(),
        "over_budget": r.outcomes.iter().filter(|o| o.success() && !o.breaches.is_empty()).count(),
        "passed": r.passed(runs),
        "why": (!r.passed(runs)).then(|| r.why(runs)),
        "percentile_budgets": r.verdicts,
        "stats": stats,
    })
}

/// Columns a table shows before it narrows to the headline and budgeted keys.
const MAX_COLUMNS: usize = 16;

fn print_table(out: &mut dyn Write, p: &BuiltProbe, r: &ProbeReport, runs: u32) {
    // Columns in the kind's catalog order, so every table of a kind reads the same.
    let sampled = sampled_keys(&r.outcomes);
    let mut present = measurement_keys(&r.outcomes);
    present.extend(sampled.iter().copied());
    let mut keys: Vec<&'static str> = Vec::new();
    for m in &p.measures {
        if present.contains(&m.key) && !keys.contains(&m.key) && m.unit != Unit::UnixTime {
            keys.push(m.key);
        }
    }
    // A wide catalog (a browser probe's ~70 keys) shows its headline, what it is judged
    // on and its own measures; JSON has everything.
    let hidden = keys.len().saturating_sub(MAX_COLUMNS);
    if hidden > 0 {
        let kind = crate::assembly::kind(p.kind);
        let catalog = kind.map_or(&[][..], |k| k.measures);
        keys.retain(|k| {
            *k == "total"
                || kind.is_some_and(|kind| kind.headline.contains(k))
                || p.budgets.all().any(|t| t.key == *k)
                || !catalog.iter().any(|m| m.key == *k)
        });
    }
    let _ = writeln!(out, "\n{} ({}), {} run(s)", p.name, p.kind, r.outcomes.len());
    if hidden > 0 {
        let _ = writeln!(
            out,
            "  (headline and budgeted measurements; every one with --format json)"
        );
    }
    if r.outcomes.len() < runs as usize {
        let _ = writeln!(out, "  {} run(s) missing", runs as usize - r.outcomes.len());
    }
    let mut header = format!("{:<5} {:<18}", "run", "result");
    for k in &keys {
        header.push_str(&format!(" {k:>11}"));
    }
    let _ = writeln!(out, "{header}");
    for (i, o) in r.outcomes.iter().enumerate() {
        let result = match (&o.error, o.breaches.is_empty()) {
            (Some(e), _) => e.kind.as_str().to_string(),
            (None, true) => "ok".to_string(),
            (None, false) => "over budget".to_string(),
        };
        let mut line = format!("{:<5} {:<18}", i + 1, result);
        for k in &keys {
            let v = o
                .judged(k, unit_of(p, k))
                .map_or("-".to_string(), |v| unit_of(p, k).format(v));
            line.push_str(&format!(" {v:>11}"));
        }
        let _ = writeln!(out, "{line}");
    }
    if r.outcomes.len() > 1 {
        for q in [50.0, 95.0] {
            let mut line = format!("{:<5} {:<18}", format!("p{q}"), "");
            for k in &keys {
                let mut values: Vec<f64> = r.outcomes.iter().filter_map(|o| o.judged(k, unit_of(p, k))).collect();
                let v = percentile(&mut values, q).map_or("-".to_string(), |v| unit_of(p, k).format(v));
                line.push_str(&format!(" {v:>11}"));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    // A sampled column is each run's worst sample, as budgets judge it; here is the
    // whole distribution.
    for key in sampled.iter().filter(|k| keys.contains(k)) {
        let s = SampleStats::of(&r.outcomes, key);
        let u = unit_of(p, key);
        let _ = writeln!(
            out,
            "  {key}: {} samples, min {}, p50 {}, p95 {}, max {} (its column: each run's worst)",
            s.n,
            u.format_opt(s.min),
            u.format_opt(s.p50),
            u.format_opt(s.p95),
            u.format_opt(s.max)
        );
    }
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for o in &r.outcomes {
        if let Some(e) = &o.error {
            *errors.entry(format!("{}: {}", e.kind, e.message)).or_default() += 1;
        }
    }
    for (msg, n) in errors {
        let _ = writeln!(out, "  {n}× {msg}");
    }
    // One line per broken budget: how often, and the worst value seen (unmeasured is
    // the worst of all).
    let mut breaches: BTreeMap<(String, u64), (usize, f64, Option<f64>)> = BTreeMap::new();
    for b in r.outcomes.iter().flat_map(|o| &o.breaches) {
        let e = breaches
            .entry((b.measurement.clone(), b.threshold.to_bits()))
            .or_insert((0, b.threshold, b.value));
        e.0 += 1;
        // The worst is the furthest past the threshold: the lowest under a floor.
        e.2 = b.unit.worst([e.2, b.value]);
    }
    for ((key, _), (n, threshold, worst)) in breaches {
        let u = unit_of(p, &key);
        let _ = writeln!(
            out,
            "  {n}× budget broken: {key} {} {} (worst {})",
            u.beyond(),
            u.format(threshold),
            u.format_opt(worst)
        );
    }
    for v in &r.verdicts {
        let _ = writeln!(
            out,
            "  budget p{} {} = {} ({} {}): {}",
            v.q,
            v.key,
            v.unit.format_opt(v.value),
            v.unit.bound(),
            v.unit.format(v.threshold),
            if v.passed { "ok" } else { "BROKEN" }
        );
    }
}
