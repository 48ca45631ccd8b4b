//! `once --report FILE`: one self-contained HTML page (inline CSS and SVG, no script, no
//! network at view time) that a reviewer opens from a CI run. Per probe: the verdict,
//! every budget with its margin, each headline measurement's runs as a strip plot with
//! p50, p95 and the budget marked, and the median run drawn the way its kind reads (an
//! HTTP waterfall, a stream's chunk timeline, a websocket's steps, a page's screenshot).

use std::fmt::Write as _;

use base64::Engine as _;

use super::verdict::{ProbeReport, unit_of};
use crate::budget::percentile;
use crate::outcome::{Outcome, Unit};
use crate::probe::BuiltProbe;

const STYLE: &str = r#"
:root { color-scheme: light dark; --fg: #1f2328; --bg: #ffffff; --muted: #59636e; --line: #d1d9e0;
  --ok: #1a7f37; --bad: #cf222e; --dot: #0969da; --bar: #54aeff; --panel: #f6f8fa; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1;
  --line: #3d444d; --ok: #3fb950; --bad: #f85149; --dot: #4493f8; --bar: #1f6feb; --panel: #151b23; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 2rem auto; max-width: 980px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.2rem; margin: 0; } h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.muted { color: var(--muted); } section.probe { border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem; margin: 1.25rem 0; background: var(--panel); }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-size: .8rem; font-weight: 600; color: #fff; vertical-align: middle; }
.badge.pass { background: var(--ok); } .badge.fail { background: var(--bad); }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .2rem .6rem .2rem 0; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; }
td.ok { color: var(--ok); } td.bad { color: var(--bad); font-weight: 600; }
svg { display: block; max-width: 100%; } svg text { fill: var(--fg); font: 11px system-ui, sans-serif; } svg .muted { fill: var(--muted); }
.axis { stroke: var(--line); } .dot { fill: var(--dot); fill-opacity: .75; } .p50 { stroke: var(--fg); stroke-width: 2; }
.p95 { stroke: var(--fg); stroke-width: 2; stroke-dasharray: 4 3; } .budget { stroke: var(--bad); stroke-width: 2; }
.bar { fill: var(--bar); } .tick { stroke: var(--dot); stroke-width: 2; } img.shot { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
nav a { margin-right: .2rem; } nav .mark { margin-right: 1rem; } code { font-size: .9em; }
"#;

/// The whole page.
pub fn render(judged: &[(&BuiltProbe, &ProbeReport)], runs: u32) -> String {
    let passed = judged.iter().all(|(_, r)| r.passed(runs));
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>sloprobe report: {}</title><style>{STYLE}</style></head><body>\n",
        if passed { "PASS" } else { "FAIL" }
    );
    let _ = write!(
        h,
        "<header><h1>sloprobe report {}</h1><p class=\"muted\">{} probe(s), {runs} run(s) each, {} (sloprobe {})</p>",
        badge(passed),
        judged.len(),
        esc(&chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        env!("CARGO_PKG_VERSION")
    );
    h.push_str("<nav>");
    for (p, r) in judged {
        let _ = write!(
            h,
            "<a href=\"#{}\">{}</a>{} ",
            anchor(&p.name),
            esc(&p.name),
            mark(r.passed(runs))
        );
    }
    h.push_str("</nav></header>\n");
    for (p, r) in judged {
        probe_section(&mut h, p, r, runs);
    }
    h.push_str("</body></html>\n");
    h
}

fn probe_section(h: &mut String, p: &BuiltProbe, r: &ProbeReport, runs: u32) {
    let ok = r.passed(runs);
    let failed = r.outcomes.iter().filter(|o| !o.success()).count();
    let _ = write!(
        h,
        "<section class=\"probe\" id=\"{}\" data-probe=\"{}\"><h2>{} {}</h2><p class=\"muted\">kind {} · {} of {runs} run(s) · {failed} failed</p>",
        anchor(&p.name),
        esc(&p.name),
        esc(&p.name),
        badge(ok),
        esc(p.kind),
        r.outcomes.len()
    );
    if !ok {
        let _ = write!(h, "<p><strong>Why:</strong> {}</p>", esc(&r.why(runs)));
    }
    budgets_table(h, p, r);
    h.push_str("<h3>Runs</h3>");
    for key in shown_keys(p, r) {
        distribution(h, p, r, key);
    }
    if let Some(o) = median_run(p, r) {
        let _ = write!(
            h,
            "<h3>Median run</h3><p class=\"muted\">by {}</p>",
            esc(headline_key(p))
        );
        match p.kind {
            "http" => waterfall(h, o),
            "assistant" => {
                waterfall(h, o);
                chunk_timeline(h, o);
            }
            "websocket" => websocket_steps(h, p, o),
            "browser" => page(h, o),
            "workflow" => workflow_steps(h, o),
            _ => seconds_bars(h, p, o),
        }
    }
    let mut errors: Vec<String> = r
        .outcomes
        .iter()
        .filter_map(|o| o.error.as_ref())
        .map(|e| format!("{}: {}", e.kind, e.message))
        .collect();
    errors.sort();
    errors.dedup();
    if !errors.is_empty() {
        h.push_str("<h3>Errors</h3><ul>");
        for e in errors.iter().take(20) {
            let _ = write!(h, "<li><code>{}</code></li>", esc(e));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>\n");
}

/// Every budget: per run (how many runs broke it, the worst value) and per percentile.
fn budgets_table(h: &mut String, p: &BuiltProbe, r: &ProbeReport) {
    if p.budgets.per_run.is_empty() && p.budgets.percentiles.is_empty() {
        h.push_str("<h3>Budgets</h3><p class=\"muted\">none configured</p>");
        return;
    }
    h.push_str("<h3>Budgets</h3><table><tr><th>budget</th><th>threshold</th><th>value</th><th>margin</th><th>verdict</th></tr>");
    for t in &p.budgets.per_run {
        let values: Vec<Option<f64>> = r
            .outcomes
            .iter()
            .filter(|o| o.success())
            .map(|o| o.judged(t.key, t.unit))
            .collect();
        let broken = r
            .outcomes
            .iter()
            .filter(|o| o.breaches.iter().any(|b| b.measurement == t.key))
            .count();
        // The worst run: the furthest past the threshold (unmeasured is worst of all).
        let worst = t.unit.worst(values.iter().copied());
        let verdict = if r.median {
            "judged on the median".to_string()
        } else if broken == 0 {
            "ok".to_string()
        } else {
            format!("broken in {broken} run(s)")
        };
        row(
            h,
            &format!("{} per run (worst)", t.key),
            t.unit,
            t.value,
            worst,
            broken == 0 && !values.is_empty(),
            &verdict,
        );
    }
    for v in &r.verdicts {
        let verdict = if v.passed { "ok" } else { "BROKEN" };
        row(
            h,
            &format!("p{} {}", v.q, v.key),
            v.unit,
            v.threshold,
            v.value,
            v.passed,
            verdict,
        );
    }
    h.push_str("</table>");
}

fn row(h: &mut String, name: &str, unit: Unit, threshold: f64, value: Option<f64>, ok: bool, verdict: &str) {
    let margin = value.map(|v| {
        if unit == Unit::Ratio {
            v - threshold
        } else {
            threshold - v
        }
    });
    let _ = write!(
        h,
        "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
        esc(name),
        unit.bound(),
        esc(&unit.format(threshold)),
        esc(&unit.format_opt(value)),
        margin.map_or("—".to_string(), |m| {
            let sign = if m < 0.0 { "−" } else { "+" };
            format!("{sign}{}", esc(&unit.format(m.abs())))
        }),
        if ok { "ok" } else { "bad" },
        esc(verdict)
    );
}

/// The kind's headline measurements and every budgeted one, in that order.
fn shown_keys(p: &BuiltProbe, r: &ProbeReport) -> Vec<&'static str> {
    let kind = crate::assembly::kind(p.kind);
    let mut keys: Vec<&'static str> = kind.map_or(&[][..], |k| k.headline).to_vec();
    for t in p.budgets.all() {
        if !keys.contains(&t.key) {
            keys.push(t.key);
        }
    }
    keys.retain(|k| r.outcomes.iter().any(|o| o.judged(k, unit_of(p, k)).is_some()));
    keys
}

/// One measurement over the runs: a dot per run (per sample for sampled keys), p50 and
/// p95 as lines, the budget in red.
fn distribution(h: &mut String, p: &BuiltProbe, r: &ProbeReport, key: &str) {
    let unit = unit_of(p, key);
    let sampled = r.outcomes.iter().any(|o| o.samples_of(key).next().is_some())
        && r.outcomes.iter().all(|o| o.get(key).is_none());
    let mut values: Vec<f64> = if sampled {
        r.outcomes
            .iter()
            .flat_map(|o| o.samples_of(key))
            .map(|s| s.value)
            .collect()
    } else {
        r.outcomes.iter().filter_map(|o| o.judged(key, unit)).collect()
    };
    if values.is_empty() {
        return;
    }
    let budget = p
        .budgets
        .per_run
        .iter()
        .find(|t| t.key == key)
        .or_else(|| {
            p.budgets
                .percentiles
                .iter()
                .map(|q| &q.threshold)
                .find(|t| t.key == key)
        })
        .map(|t| t.value);
    let p50 = percentile(&mut values.clone(), 50.0).unwrap_or_default();
    let p95 = percentile(&mut values.clone(), 95.0).unwrap_or_default();
    let top = values
        .iter()
        .copied()
        .fold(budget.unwrap_or(0.0), f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.08;
    // Room on the right for a p95 label at the far end.
    let (w, left, right) = (900.0, 150.0, 110.0);
    let x = |v: f64| left + (v / top).clamp(0.0, 1.0) * (w - left - right);
    let _ = write!(
        h,
        "<svg class=\"strip\" data-key=\"{}\" viewBox=\"0 0 {w} 64\" role=\"img\" aria-label=\"{} over {} value(s)\">",
        esc(key),
        esc(key),
        values.len()
    );
    let _ = write!(
        h,
        "<text x=\"0\" y=\"24\">{}</text><text x=\"0\" y=\"40\" class=\"muted\">{} {}</text><line class=\"axis\" x1=\"{left}\" x2=\"{}\" y1=\"48\" y2=\"48\"/>",
        esc(key),
        values.len(),
        if sampled { "samples" } else { "runs" },
        w - right
    );
    values.sort_by(f64::total_cmp);
    for (i, v) in values.iter().enumerate() {
        // A fixed scatter over three rows, so equal values stay visible.
        let y = 20.0 + (i % 3) as f64 * 10.0;
        let _ = write!(h, "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{y}\" r=\"3.5\"/>", x(*v));
    }
    // p50's label to the left of its line, p95's to the right: close values stay legible.
    for (class, v, anchor, dx) in [("p50", p50, "end", -4.0), ("p95", p95, "start", 4.0)] {
        let _ = write!(
            h,
            "<line class=\"{class}\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"12\" y2=\"50\"/><text x=\"{1:.1}\" y=\"62\" text-anchor=\"{anchor}\">{class} {2}</text>",
            x(v),
            x(v) + dx,
            esc(&unit.format(v))
        );
    }
    if let Some(b) = budget {
        let _ = write!(
            h,
            "<line class=\"budget\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"4\" y2=\"50\"/><text x=\"{0:.1}\" y=\"10\" text-anchor=\"end\">budget {1}</text>",
            x(b),
            esc(&unit.format(b))
        );
    }
    h.push_str("</svg>");
}

/// The kind's first headline measurement: what "median run" means.
fn headline_key(p: &BuiltProbe) -> &'static str {
    match p.kind {
        "http" | "workflow" | "websocket" => "total",
        "browser" => "lcp",
        _ => crate::assembly::kind(p.kind)
            .and_then(|k| k.headline.first().copied())
            .unwrap_or("total"),
    }
}

/// The successful run at the median of the headline measurement (any run if none
/// succeeded).
fn median_run<'a>(p: &BuiltProbe, r: &'a ProbeReport) -> Option<&'a Outcome> {
    let key = headline_key(p);
    let mut ok: Vec<&Outcome> = r
        .outcomes
        .iter()
        .filter(|o| o.success() && o.get(key).is_some())
        .collect();
    if ok.is_empty() {
        return r.outcomes.first();
    }
    ok.sort_by(|a, b| {
        a.get(key)
            .unwrap_or_default()
            .total_cmp(&b.get(key).unwrap_or_default())
    });
    Some(ok[(ok.len() - 1) / 2])
}

/// Horizontal bars `(label, start, length)` in seconds on one time axis.
fn bars(h: &mut String, class: &str, rows: &[(String, f64, f64)]) {
    if rows.is_empty() {
        return;
    }
    let end = rows.iter().map(|(_, s, l)| s + l).fold(0.0, f64::max).max(1e-6);
    let (w, left, right, step) = (900.0, 150.0, 90.0, 20.0);
    let x = |v: f64| left + v / end * (w - left - right);
    let height = rows.len() as f64 * step + 10.0;
    let _ = write!(h, "<svg class=\"{class}\" viewBox=\"0 0 {w} {height}\" role=\"img\">");
    for (i, (label, start, len)) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * step;
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{:.1}\">{}</text><rect class=\"bar\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"14\" rx=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"muted\">{}</text>",
            y + 11.0,
            esc(label),
            x(*start),
            (x(start + len) - x(*start)).max(1.0),
            x(start + len) + 4.0,
            y + 11.0,
            esc(&Unit::Seconds.format(*len))
        );
    }
    h.push_str("</svg>");
}

/// DNS → connect → TLS → send → wait → transfer, one after another.
fn waterfall(h: &mut String, o: &Outcome) {
    let mut at = 0.0;
    let mut rows = Vec::new();
    for phase in ["dns", "connect", "tls", "send", "wait", "transfer"] {
        if let Some(v) = o.get(phase) {
            rows.push((phase.to_string(), at, v));
            at += v;
        }
    }
    bars(h, "waterfall", &rows);
}

/// A stream: first event, first token, then a tick per output chunk, to the end.
fn chunk_timeline(h: &mut String, o: &Outcome) {
    let (Some(ttft), Some(e2e)) = (o.get("ttft"), o.get("e2e")) else {
        return;
    };
    let mut ticks = vec![ttft];
    let mut t = ttft;
    for g in o.samples_of("gap") {
        t += g.value;
        ticks.push(t);
    }
    let (w, left, right) = (900.0, 150.0, 20.0);
    let end = e2e.max(t).max(1e-6);
    let x = |v: f64| left + v / end * (w - left - right);
    let _ = write!(
        h,
        "<svg class=\"chunks\" viewBox=\"0 0 {w} 60\" role=\"img\"><text x=\"0\" y=\"28\">chunks ({})</text><line class=\"axis\" x1=\"{left}\" x2=\"{}\" y1=\"36\" y2=\"36\"/>",
        ticks.len(),
        w - right
    );
    for v in &ticks {
        let _ = write!(
            h,
            "<line class=\"tick\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"22\" y2=\"36\"/>",
            x(*v)
        );
    }
    // First chunk to the left of its mark, TTFT to the right, the end inside the edge.
    let marks = [
        ("first chunk", o.get("first_chunk"), "end", -4.0),
        ("TTFT", Some(ttft), "start", 4.0),
        ("end", Some(e2e), "end", 0.0),
    ];
    for (label, v, anchor, dx) in marks {
        if let Some(v) = v {
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"52\" text-anchor=\"{anchor}\">{label} {}</text>",
                x(v) + dx,
                esc(&Unit::Seconds.format(v))
            );
        }
    }
    h.push_str("</svg>");
}

/// Open, then each step's round trip, then the pings, close and reconnect.
fn websocket_steps(h: &mut String, p: &BuiltProbe, o: &Outcome) {
    let mut rows = Vec::new();
    let mut at = 0.0;
    if let Some(open) = o.get("open") {
        rows.push(("open".to_string(), 0.0, open));
        at = open;
    }
    for m in p.measures.iter().filter(|m| m.metric == "probe.websocket.message.rtt") {
        if let Some(v) = o.get(m.key) {
            rows.push((format!("step {}", m.key), at, v));
            at += v;
        }
    }
    for (i, s) in o.samples_of("ping_rtt").enumerate().take(50) {
        rows.push((format!("ping {}", i + 1), at, s.value));
        at += s.value;
    }
    for key in ["close", "reconnect"] {
        if let Some(v) = o.get(key) {
            rows.push((key.to_string(), at, v));
            at += v;
        }
    }
    bars(h, "steps", &rows);
}

/// The page's vitals and, with `--report`, what it looked like.
fn page(h: &mut String, o: &Outcome) {
    h.push_str("<table class=\"vitals\"><tr>");
    let vitals = [
        ("ttfb", Unit::Seconds),
        ("fcp", Unit::Seconds),
        ("lcp", Unit::Seconds),
        ("cls", Unit::Score),
        ("tbt", Unit::Seconds),
        ("dom_content_loaded", Unit::Seconds),
        ("load", Unit::Seconds),
    ];
    for (k, _) in vitals {
        let _ = write!(h, "<th>{k}</th>");
    }
    h.push_str("</tr><tr>");
    for (k, unit) in vitals {
        let _ = write!(h, "<td>{}</td>", esc(&unit.format_opt(o.get(k))));
    }
    h.push_str("</tr></table>");
    let mut rows = Vec::new();
    for k in ["ttfb", "fcp", "lcp", "dom_content_loaded", "load"] {
        if let Some(v) = o.get(k) {
            rows.push((k.to_string(), 0.0, v));
        }
    }
    bars(h, "page-timeline", &rows);
    if let Some(png) = &o.screenshot {
        let _ = write!(
            h,
            "<p><img class=\"shot\" alt=\"the page at the end of the median run\" src=\"data:image/png;base64,{}\"></p>",
            base64::engine::general_purpose::STANDARD.encode(png)
        );
    }
}

fn workflow_steps(h: &mut String, o: &Outcome) {
    let rows: Vec<(String, f64, f64)> = o.steps.iter().map(|s| (s.name.clone(), s.start, s.duration)).collect();
    bars(h, "steps", &rows);
}

/// Any other kind: each measured time of the run, from the start.
fn seconds_bars(h: &mut String, p: &BuiltProbe, o: &Outcome) {
    let rows: Vec<(String, f64, f64)> = o
        .measurements
        .iter()
        .filter(|(k, _)| unit_of(p, k) == Unit::Seconds && *k != "total")
        .map(|(k, v)| (k.to_string(), 0.0, *v))
        .collect();
    bars(h, "times", &rows);
}

fn badge(ok: bool) -> &'static str {
    if ok {
        "<span class=\"badge pass\">PASS</span>"
    } else {
        "<span class=\"badge fail\">FAIL</span>"
    }
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "<span class=\"mark\">✓</span>"
    } else {
        "<span class=\"mark\">✗</span>"
    }
}

fn anchor(name: &str) -> String {
    format!(
        "probe-{}",
        name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_', "_")
    )
}

/// Markup escaping good for HTML and XML alike (the JUnit file uses it too); control
/// characters, which XML 1.0 does not allow at all, are dropped, and tab and line breaks
/// kept as character references so attributes keep them.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push_str(&format!("&#{};", c as u32)),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped() {
        assert_eq!(
            super::esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
        assert_eq!(super::esc("a\u{1b}[31m\nb"), "a[31m&#10;b");
    }
}
