//! A route's report: its chunks against the budget, as a table line or JSON, and the
//! growth against a baseline report.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use super::config::{Compression, InputError, MAX_MANIFEST};
use super::sizes::Chunk;

/// A baseline's (script, stylesheet) compressed bytes by (bundle, route path).
pub type Baseline = HashMap<(String, String), (u64, u64)>;

#[derive(Debug)]
pub struct RouteReport {
    pub bundle: String,
    pub path: String,
    pub scripts: Vec<Chunk>,
    pub stylesheets: Vec<Chunk>,
    /// Files loaded later (dynamic imports): listed, not counted.
    pub deferred: Vec<String>,
    pub budget_script: Option<u64>,
    pub budget_stylesheet: Option<u64>,
    pub max_growth: Option<u64>,
    pub compression: Compression,
}

impl RouteReport {
    pub fn script_bytes(&self) -> u64 {
        self.scripts.iter().map(|c| c.compressed).sum()
    }
    pub fn stylesheet_bytes(&self) -> u64 {
        self.stylesheets.iter().map(|c| c.compressed).sum()
    }
    pub fn within_budget(&self) -> bool {
        self.budget_script.is_none_or(|b| self.script_bytes() <= b)
            && self.budget_stylesheet.is_none_or(|b| self.stylesheet_bytes() <= b)
    }
}

/// The per-route report as JSON (also the `--baseline` input).
pub fn to_json(r: &RouteReport) -> Value {
    let chunks = |list: &[Chunk]| -> Vec<Value> {
        list.iter()
            .map(|c| json!({"file": c.file, "raw": c.raw, "compressed": c.compressed}))
            .collect()
    };
    json!({
        "type": "route",
        "bundle": r.bundle,
        "path": r.path,
        "compression": match r.compression { Compression::Gzip => "gzip", Compression::Brotli => "brotli" },
        "script_bytes": r.script_bytes(),
        "script_raw_bytes": r.scripts.iter().map(|c| c.raw).sum::<u64>(),
        "stylesheet_bytes": r.stylesheet_bytes(),
        "stylesheet_raw_bytes": r.stylesheets.iter().map(|c| c.raw).sum::<u64>(),
        "budget": {"script_bytes": r.budget_script, "stylesheet_bytes": r.budget_stylesheet},
        "within_budget": r.within_budget(),
        "scripts": chunks(&r.scripts),
        "stylesheets": chunks(&r.stylesheets),
        "deferred": r.deferred,
    })
}

/// A previous report's (script, stylesheet) compressed bytes by (bundle, route).
pub fn read_baseline(path: &Path) -> Result<Baseline, InputError> {
    let bytes = crate::config::read_capped(path, MAX_MANIFEST).map_err(InputError)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| {
            InputError(format!(
                "{}:{}: not a `sloprobe bundle --format json` line: {e}",
                path.display(),
                i + 1
            ))
        })?;
        if v["type"] != "route" {
            continue;
        }
        let key = (
            v["bundle"].as_str().unwrap_or_default().to_string(),
            v["path"].as_str().unwrap_or_default().to_string(),
        );
        out.insert(
            key,
            (
                v["script_bytes"].as_u64().unwrap_or(0),
                v["stylesheet_bytes"].as_u64().unwrap_or(0),
            ),
        );
    }
    Ok(out)
}

/// Growth over the baseline, as (script delta, stylesheet delta), when the route is in it.
pub fn delta(r: &RouteReport, baseline: &Baseline) -> Option<(i64, i64)> {
    let (s, c) = baseline.get(&(r.bundle.clone(), r.path.clone()))?;
    // In i128: a baseline of 2^64 − 1 bytes cannot wrap the growth to a shrink.
    let grew =
        |now: u64, then: u64| (i128::from(now) - i128::from(then)).clamp(i64::MIN.into(), i64::MAX.into()) as i64;
    Some((grew(r.script_bytes(), *s), grew(r.stylesheet_bytes(), *c)))
}

/// "36 B" under a kilobyte (a tenth of one would read as 0.0 KB), else "40.0 KB".
pub fn kb(n: u64) -> String {
    if n < 1000 {
        format!("{n} B")
    } else {
        format!("{:.1} KB", n as f64 / 1000.0)
    }
}

fn files(n: usize) -> String {
    if n == 1 { "1 file".into() } else { format!("{n} files") }
}

pub fn print_route(out: &mut dyn std::io::Write, r: &RouteReport, growth: Option<(i64, i64)>, grown: bool) {
    let c = match r.compression {
        Compression::Gzip => "zlib level 9, gzip framing",
        Compression::Brotli => "brotli",
    };
    let _ = writeln!(out, "\n{} {}  ({c})", r.bundle, r.path);
    let verdict = |value: u64, budget: Option<u64>| match budget {
        Some(b) if value <= b => format!(
            "ok, {:.1} % of {}",
            if b == 0 { 0.0 } else { value as f64 * 100.0 / b as f64 },
            kb(b)
        ),
        Some(b) => format!("OVER by {} (budget {})", kb(value - b), kb(b)),
        None => "no budget".to_string(),
    };
    let raw: u64 = r.scripts.iter().map(|c| c.raw).sum();
    let _ = writeln!(
        out,
        "  script      {:>10} ({} raw, {})  {}",
        kb(r.script_bytes()),
        kb(raw),
        files(r.scripts.len()),
        verdict(r.script_bytes(), r.budget_script)
    );
    let raw: u64 = r.stylesheets.iter().map(|c| c.raw).sum();
    let _ = writeln!(
        out,
        "  stylesheet  {:>10} ({} raw, {})  {}",
        kb(r.stylesheet_bytes()),
        kb(raw),
        files(r.stylesheets.len()),
        verdict(r.stylesheet_bytes(), r.budget_stylesheet)
    );
    if let Some((s, css)) = growth {
        let _ = writeln!(
            out,
            "  since baseline: script {s:+} B, stylesheet {css:+} B{}",
            if grown { "  (over max_growth)" } else { "" }
        );
    }
    let mut biggest: Vec<&Chunk> = r.scripts.iter().chain(&r.stylesheets).collect();
    biggest.sort_by_key(|c| std::cmp::Reverse(c.compressed));
    for ch in biggest.iter().take(3) {
        let _ = writeln!(out, "    {:>10}  {}", kb(ch.compressed), ch.file);
    }
    if !r.deferred.is_empty() {
        let _ = writeln!(
            out,
            "  loaded later (dynamic imports, not counted): {}",
            r.deferred.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_sizes_read_in_bytes_and_counts_agree() {
        assert_eq!(super::kb(36), "36 B");
        assert_eq!(super::kb(40_000), "40.0 KB");
        assert_eq!(super::files(1), "1 file");
        assert_eq!(super::files(3), "3 files");
    }
}
