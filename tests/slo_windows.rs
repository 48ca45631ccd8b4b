//! The SLO rules where traffic is slow, sparse or uneven, checked by promtool against
//! series with known failures: no recorded figure is ever NaN, a window without events is
//! no evidence (no sample), a slow probe still pages on a real outage, one failed run of a
//! 1-minute probe does not page at 99.9 %, a dark location gets its own no-data alert,
//! time-slice SLOs count bad minutes, and a shared error budget counts a minute in breach
//! once however many SLIs are bad in it.

mod common;

use common::*;

/// One input series with explicit values, one per `interval` of the test.
fn series(selector: &str, values: impl IntoIterator<Item = f64>) -> String {
    let values: Vec<String> = values.into_iter().map(|v| format!("{v}")).collect();
    format!("      - series: '{selector}'\n        values: '{}'\n", values.join(" "))
}

/// Runs of probe `p` at `location`: `n` samples, one run every `every` samples, the runs
/// for which `fails(run)` is true failing. Returns success and failure counters.
fn probe_runs(probe: &str, location: &str, n: usize, every: usize, fails: impl Fn(usize) -> bool) -> String {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    let (mut o, mut b) = (0.0, 0.0);
    for i in 0..n {
        if i > 0 && i % every == 0 {
            if fails(i / every) {
                b += 1.0;
            } else {
                o += 1.0;
            }
        }
        ok.push(o);
        bad.push(b);
    }
    let sel = |outcome: &str, extra: &str| {
        format!("probe_runs_total{{probe_name=\"{probe}\",probe_location=\"{location}\",outcome=\"{outcome}\"{extra}}}")
    };
    format!(
        "{}{}",
        series(&sel("success", ""), ok),
        series(&sel("failure", ",error_type=\"timeout\""), bad)
    )
}

/// Every recorded `slo:` sample that is NaN (`x >= -Inf` is false only for NaN).
const NAN_SAMPLES: &str = "{__name__=~\"slo:.+\"} unless ({__name__=~\"slo:.+\"} >= -Inf)";

fn no_nan_at(times: &[&str]) -> String {
    times
        .iter()
        .map(|t| {
            format!(
                "      - expr: '{}'\n        eval_time: {t}\n        exp_samples: []\n",
                NAN_SAMPLES.replace('\'', "''")
            )
        })
        .collect()
}

fn alert(at: &str, name: &str, labels: &str, summary: &str, description: &str) -> String {
    format!(
        "      - eval_time: {at}\n        alertname: {name}\n        exp_alerts:\n          - exp_labels: {labels}\n            exp_annotations:\n              summary: '{summary}'\n              description: '{description}'\n"
    )
}

fn probe_slo(every: &str, objective: &str, window: &str, extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"{every}\"\n\n[[slo]]\nname = \"s\"\nprobes = [\"p\"]\nsli = \"success\"\nobjective = {objective}\nwindow = \"{window}\"\n{extra}"
    )
}

const PAGE_LABELS: &str = "{severity: page, sloth_severity: page, slo: s, sloth_id: sloprobe-s, sloth_service: sloprobe, sloth_slo: s, probe_location: l}";

/// A probe every 10 minutes at 99.9 % over 28d: its windows widen to hold two runs
/// (1h/20m), nothing recorded is NaN while the 5m rates see no run, and a real outage
/// pages once two failed runs are in the hour (min_bad_events defaults to 2: one failed
/// run of six is 16.7 % of the hour, over 13.44 × 0.1 %).
#[test]
fn a_probe_every_ten_minutes_never_yields_nan_and_pages_on_an_outage() {
    let config = probe_slo("10m", "0.999", "28d", "");
    // One sample a minute for 3h; the outage starts with the run at minute 120.
    let input = probe_runs("p", "l", 180, 10, |run| run >= 12);
    let tests = format!(
        "  - interval: 1m\n    input_series:\n{input}    alert_rule_test:\n{}{}{}    promql_expr_test:\n{}      - expr: slo:sli_error:ratio_rate28d{{slo=\"s\"}}\n        eval_time: 115m\n        exp_samples:\n          - labels: 'slo:sli_error:ratio_rate28d{{probe_location=\"l\",slo=\"s\",sloth_id=\"sloprobe-s\",sloth_service=\"sloprobe\",sloth_slo=\"s\",sloth_window=\"28d\"}}'\n            value: 0\n",
        no_alert("115m", "SloprobeBurnRatePage"),
        // The first failed run alone does not page; the second one does.
        no_alert("125m", "SloprobeBurnRatePage"),
        alert(
            "135m",
            "SloprobeBurnRatePage",
            PAGE_LABELS,
            "SLO s is burning its error budget (at l)",
            "99.9% of runs of p succeed over 28d. Error budget burn above 13.44× over 1h/20m or 5.6× over 6h/30m at l."
        ),
        no_nan_at(&["30m", "61m", "115m", "125m", "135m", "179m"]),
    );
    let rules = promtool_test(&config, &tests);
    assert!(
        rules.contains("> 1.5"),
        "min_bad_events 2 is in the page rule:\n{rules}"
    );
    // `check` says why the windows widened and what to do.
    let dir = write_files(&[("sloprobe.toml", &config)]);
    let plan = sloprobe(&["check"], &dir.path().join("sloprobe.toml"));
    assert!(
        plan.contains("runs every 10m") && plan.contains("widened") && plan.contains("1h/20m"),
        "{plan}"
    );
}

/// A 1-minute probe at 99.9 %: one failed run (1.67 % of the hour, over 14.4 × 0.1 %)
/// does not page; a real outage pages within two runs (documented: 2-3 minutes).
#[test]
fn one_failed_run_of_a_one_minute_probe_does_not_page() {
    let config = probe_slo("1m", "0.999", "30d", "");
    let one = probe_runs("p", "l", 120, 1, |run| run == 60);
    let outage = probe_runs("p", "l", 120, 1, |run| run >= 60);
    let tests = format!(
        "  - interval: 1m\n    input_series:\n{one}    alert_rule_test:\n{}{}{}  - interval: 1m\n    input_series:\n{outage}    alert_rule_test:\n{}{}",
        no_alert("61m", "SloprobeBurnRatePage"),
        no_alert("63m", "SloprobeBurnRatePage"),
        no_alert("70m", "SloprobeBurnRatePage"),
        no_alert("60m", "SloprobeBurnRatePage"),
        alert(
            "63m",
            "SloprobeBurnRatePage",
            PAGE_LABELS,
            "SLO s is burning its error budget (at l)",
            "99.9% of runs of p succeed over 30d. Error budget burn above 14.4× over 1h/5m or 6× over 6h/30m at l."
        ),
    );
    promtool_test(&config, &tests);
    // Set explicitly to 1, the single failure pages, as plain burn-rate rules do.
    let eager = probe_slo("1m", "0.999", "30d", "min_bad_events = 1\n");
    let tests = format!(
        "  - interval: 1m\n    input_series:\n{one}    alert_rule_test:\n{}",
        alert(
            "62m",
            "SloprobeBurnRatePage",
            PAGE_LABELS,
            "SLO s is burning its error budget (at l)",
            "99.9% of runs of p succeed over 30d. Error budget burn above 14.4× over 1h/5m or 6× over 6h/30m at l."
        )
    );
    promtool_test(&eager, &tests);
}

/// A RUM route with gaps in its traffic: windows without page views record nothing (no
/// evidence), never NaN; the period ratio weighs every page view once.
#[test]
fn a_rum_route_with_gaps_in_traffic_never_yields_nan() {
    let config = r#"
[rum]
listen = "127.0.0.1:9466"
allowed_origins = ["https://app.example.com"]
[rum.budget]
lcp = "2.5s"

[[slo]]
name = "s"
routes = ["/dashboard"]
sli = "lcp"
objective = 0.75
window = "28d"
"#;
    // Minutes 0-29: 10 views a minute, all good. 30-89: none. 90-119: 2 a minute, half bad.
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    let (mut g, mut b) = (0.0, 0.0);
    for minute in 0..120 {
        match minute {
            1..=29 => g += 10.0,
            91..=119 => {
                g += 1.0;
                b += 1.0;
            }
            _ => {}
        }
        good.push(g);
        bad.push(b);
    }
    let sel = |verdict: &str| {
        format!(
            "rum_threshold_page_views_total{{http_route=\"/dashboard\",measurement=\"lcp\",threshold=\"2.5\",verdict=\"{verdict}\",probe_location=\"l\"}}"
        )
    };
    let input = format!("{}{}", series(&sel("good"), good), series(&sel("bad"), bad));
    let labels = "probe_location=\"l\",slo=\"s\",sloth_id=\"sloprobe-s\",sloth_service=\"sloprobe\",sloth_slo=\"s\"";
    // The exact period ratio: 28 bad of 28 + 290 + 28 views, as 5m rates summed; checked
    // as a range since rate() extrapolates at the edges of each traffic burst.
    let tests = format!(
        "  - interval: 1m\n    input_series:\n{input}    promql_expr_test:\n{}      - expr: slo:sli_error:ratio_rate5m{{slo=\"s\"}}\n        eval_time: 70m\n        exp_samples: []\n      - expr: '(slo:sli_error:ratio_rate28d{{slo=\"s\"}} > bool 0.06) * (slo:sli_error:ratio_rate28d{{slo=\"s\"}} < bool 0.1)'\n        eval_time: 119m\n        exp_samples:\n          - labels: '{{{labels},sloth_window=\"28d\"}}'\n            value: 1\n",
        no_nan_at(&["20m", "50m", "70m", "100m", "119m"]),
    );
    promtool_test(config, &tests);
}

/// Two locations; one goes dark at minute 30. Its no-data alert fires for that probe
/// and location; the other location's does not, and the SLO-wide one stays quiet.
#[test]
fn one_location_going_dark_gets_its_own_no_data_alert() {
    let config = probe_slo("30s", "0.999", "30d", "");
    let a = probe_runs("p", "a", 90, 1, |_| false);
    let mut b = String::new();
    for line in probe_runs("p", "b", 30, 1, |_| false).lines() {
        b.push_str(line);
        if line.trim_start().starts_with("values:") {
            b.pop(); // the closing quote
            b.push_str(" _x60'");
        }
        b.push('\n');
    }
    let labels = "{severity: ticket, slo: s, sloth_id: sloprobe-s, sloth_service: sloprobe, sloth_slo: s, probe_name: p, probe_location: b}";
    let tests = format!(
        "  - interval: 1m\n    input_series:\n{a}{b}    alert_rule_test:\n{}{}{}",
        no_alert("25m", "SloprobeSLOSeriesNoData"),
        alert(
            "50m",
            "SloprobeSLOSeriesNoData",
            labels,
            "SLO s is missing data from part of its inputs",
            "Probe p at b has stopped reporting (gone from the last hour''s series, or no run in 10m): SLO s is judged without it."
        ),
        no_alert("50m", "SloprobeSLONoData"),
    );
    promtool_test(&config, &tests);
}

const TIMESLICE_CONFIG: &str = r#"
[[probe]]
name = "p"
kind = "http"
url = "http://127.0.0.1:1/"
every = "15s"

[[probe]]
name = "q"
kind = "http"
url = "http://127.0.0.1:2/"
every = "15s"

[[slo]]
name = "p-minutes"
probes = ["p"]
sli = "success"
objective = 0.99
window = "30d"
budgeting = "timeslices"
slice = "1m"
slice_target = 0.95

[[slo]]
name = "q-minutes"
probes = ["q"]
sli = "success"
objective = 0.99
window = "30d"
budgeting = "timeslices"
slice = "1m"
slice_target = 0.95

[[error_budget]]
name = "monthly-freeze"
slos = ["p-minutes", "q-minutes"]
budget = "28800s"
period = "30d"
"#;

/// A 15s probe (four runs a minute), failing in minutes [from, to).
fn minutes_failing(probe: &str, total: usize, from: usize, to: usize) -> String {
    probe_runs(probe, "l", total * 4, 1, move |run| {
        let minute = run / 4;
        minute >= from && minute < to
    })
}

/// In range: `lo <= expr <= hi`, as a promtool sample of value 1.
fn within(expr: &str, at: &str, lo: f64, hi: f64, labels: &str) -> String {
    format!(
        "      - expr: '({expr} >= bool {lo}) * ({expr} <= bool {hi})'\n        eval_time: {at}\n        exp_samples:\n          - labels: '{labels}'\n            value: 1\n"
    )
}

/// Time slices count bad minutes: p fails for 100 minutes of 200, so about half its
/// slices are bad; the shared budget counts minutes where p or q (or both) is bad once:
/// p bad in [0, 300), q in [180, 480) is 480 minutes of breach (28,800 s: spent, the
/// alert fires), not the 600 a sum would give.
#[test]
fn a_shared_budget_counts_overlapping_breach_minutes_once() {
    let half = format!(
        "{}{}",
        minutes_failing("p", 200, 50, 150),
        minutes_failing("q", 200, 500, 500)
    );
    let p_labels =
        "slo=\"p-minutes\",sloth_id=\"sloprobe-p-minutes\",sloth_service=\"sloprobe\",sloth_slo=\"p-minutes\"";
    let slices = format!(
        "  - interval: 15s\n    input_series:\n{half}    promql_expr_test:\n{}{}{}",
        // Near 100 of 199 slices bad: slice edges may each add one.
        within(
            "slo:sli_error:ratio_rate30d{slo=\"p-minutes\"}",
            "199m",
            0.49,
            0.52,
            &format!("{{probe_location=\"l\",{p_labels},sloth_window=\"30d\"}}")
        ),
        within(
            "slo:error_budget_spent:seconds{error_budget=\"monthly-freeze\"}",
            "199m",
            6000.0,
            6180.0,
            "{error_budget=\"monthly-freeze\"}"
        ),
        no_nan_at(&["10m", "100m", "199m"]),
    );
    let overlap = format!(
        "{}{}",
        minutes_failing("p", 500, 0, 300),
        minutes_failing("q", 500, 180, 480)
    );
    let budget_labels = "{severity: ticket, error_budget: monthly-freeze}";
    let spent = format!(
        "  - interval: 15s\n    input_series:\n{overlap}    alert_rule_test:\n{}{}    promql_expr_test:\n{}{}{}",
        no_alert("400m", "SloprobeErrorBudgetSpent"),
        alert(
            "490m",
            "SloprobeErrorBudgetSpent",
            budget_labels,
            "Error budget monthly-freeze is spent",
            "p-minutes, q-minutes have been in breach for all 28800 s that 30d allows: the feature freeze applies."
        ),
        // 400 minutes of union so far, not 400 + 220 overlapping ones.
        within(
            "slo:error_budget_spent:seconds{error_budget=\"monthly-freeze\"}",
            "400m",
            23940.0,
            24120.0,
            "{error_budget=\"monthly-freeze\"}"
        ),
        within(
            "slo:error_budget_left:seconds{error_budget=\"monthly-freeze\"}",
            "490m",
            -120.0,
            0.0,
            "{error_budget=\"monthly-freeze\"}"
        ),
        within(
            "slo:error_budget_spent_by_slo:seconds{slo=\"q-minutes\"}",
            "490m",
            17940.0,
            18120.0,
            "{error_budget=\"monthly-freeze\",slo=\"q-minutes\",sloth_id=\"sloprobe-q-minutes\",sloth_service=\"sloprobe\",sloth_slo=\"q-minutes\"}"
        ),
    );
    let rules = promtool_test(TIMESLICE_CONFIG, &format!("{slices}{spent}"));
    assert!(
        rules.contains("interval: 1m") && rules.contains("sloprobe-timeslices-1m"),
        "{rules}"
    );
}
