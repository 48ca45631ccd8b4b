//! `once --junit FILE`: JUnit XML, which CI systems show as test results. A test suite
//! per probe; a test case for its runs and one per budget, failed with the reason.

use std::fmt::Write as _;

use super::html::esc;
use super::verdict::ProbeReport;
use crate::probe::BuiltProbe;

struct Case {
    name: String,
    failure: Option<String>,
    seconds: f64,
}

pub fn render(judged: &[(&BuiltProbe, &ProbeReport)], runs: u32) -> String {
    let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
    let suites: Vec<(&BuiltProbe, Vec<Case>)> = judged.iter().map(|(p, r)| (*p, cases(p, r, runs))).collect();
    let all: Vec<&Case> = suites.iter().flat_map(|(_, c)| c).collect();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"sloprobe\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3}\">",
        all.len(),
        all.iter().filter(|c| c.failure.is_some()).count(),
        all.iter().map(|c| c.seconds).sum::<f64>()
    );
    for (p, cases) in &suites {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\" timestamp=\"{timestamp}\">",
            esc(&p.name),
            cases.len(),
            cases.iter().filter(|c| c.failure.is_some()).count(),
            cases.iter().map(|c| c.seconds).sum::<f64>()
        );
        for c in cases {
            let _ = write!(
                x,
                "    <testcase classname=\"sloprobe.{}\" name=\"{}\" time=\"{:.3}\"",
                esc(&p.name),
                esc(&c.name),
                c.seconds
            );
            match &c.failure {
                Some(why) => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                        if c.name == "runs" { "run" } else { "budget" },
                        esc(why),
                        esc(why)
                    );
                }
                None => x.push_str("/>\n"),
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

fn cases(p: &BuiltProbe, r: &ProbeReport, runs: u32) -> Vec<Case> {
    let total: f64 = r.outcomes.iter().filter_map(|o| o.get("total")).sum();
    let mut out = Vec::new();
    let failed: Vec<String> = r
        .outcomes
        .iter()
        .filter_map(|o| o.error.as_ref())
        .map(|e| format!("{}: {}", e.kind, e.message))
        .collect();
    let missing = (runs as usize).saturating_sub(r.outcomes.len());
    let failure = (!failed.is_empty() || missing > 0).then(|| {
        let mut why = Vec::new();
        if !failed.is_empty() {
            let mut kinds = failed.clone();
            kinds.sort();
            kinds.dedup();
            why.push(format!(
                "{} of {} runs failed ({})",
                failed.len(),
                r.outcomes.len(),
                kinds.join("; ")
            ));
        }
        if missing > 0 {
            why.push(format!("{missing} run(s) missing"));
        }
        why.join(", ")
    });
    out.push(Case {
        name: "runs".into(),
        failure,
        seconds: total,
    });
    if !r.median {
        for t in &p.budgets.per_run {
            let broken: Vec<Option<f64>> = r
                .outcomes
                .iter()
                .flat_map(|o| &o.breaches)
                .filter(|b| b.measurement == t.key)
                .map(|b| b.value)
                .collect();
            let failure = (!broken.is_empty()).then(|| {
                let worst = t.unit.worst(broken.iter().copied());
                format!(
                    "{} {} {} in {} of {} runs (worst {})",
                    t.key,
                    t.unit.beyond(),
                    t.unit.format(t.value),
                    broken.len(),
                    r.outcomes.len(),
                    t.unit.format_opt(worst)
                )
            });
            out.push(Case {
                name: format!("budget {} {} {} per run", t.key, t.unit.bound(), t.unit.format(t.value)),
                failure,
                seconds: 0.0,
            });
        }
    }
    for v in &r.verdicts {
        out.push(Case {
            name: format!(
                "budget p{} {} {} {}",
                v.q,
                v.key,
                v.unit.bound(),
                v.unit.format(v.threshold)
            ),
            failure: (!v.passed).then(|| {
                format!(
                    "p{} {} = {} {} {}",
                    v.q,
                    v.key,
                    v.unit.format_opt(v.value),
                    v.unit.beyond(),
                    v.unit.format(v.threshold)
                )
            }),
            seconds: 0.0,
        });
    }
    out
}
