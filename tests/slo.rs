//! The SLO layer against real Prometheus tooling: promtool checks and unit-tests the
//! generated rules (fast burn pages, slow burn tickets, healthy stays quiet), the shipped
//! files stay in step with the code, and a real Prometheus scraping a running daemon
//! returns data for every recording rule and every dashboard query.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn sloprobe(args: &[&str], config: &std::path::Path) -> String {
    let out = Command::new(bin()).args(args).arg("-c").arg(config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const UNIT_CONFIG: &str = r#"
[[probe]]
name = "p"
kind = "http"
url = "http://127.0.0.1:1/"
every = "30s"
[probe.budget]
ttfb = "300ms"

[[slo]]
name = "p-availability"
probes = ["p"]
sli = "success"
objective = 0.999
window = "30d"

[[slo]]
name = "p-ttfb"
probes = ["p"]
sli = "ttfb"
objective = 0.99
"#;

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let dir = write_files(&[("sloprobe.toml", UNIT_CONFIG)]);
    let rules = sloprobe(&["slo", "rules"], &dir.path().join("sloprobe.toml"));
    std::fs::write(dir.path().join("rules.yml"), &rules).unwrap();
    run_ok(
        Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(dir.path().join("rules.yml")),
    );

    // 60 runs a minute. Fast burn: everything fails (1000× the budget). Slow burn: 0.5 %
    // fails (5×: under both page rates, over the 3× ticket). Healthy: nothing fails.
    let series = |ok: &str, failed: &str| {
        format!(
            "      - series: 'probe_runs_total{{probe_name=\"p\",probe_location=\"l\",outcome=\"success\"}}'\n        values: '{ok}'\n      - series: 'probe_runs_total{{probe_name=\"p\",probe_location=\"l\",outcome=\"failure\",error_type=\"timeout\"}}'\n        values: '{failed}'\n"
        )
    };
    let alert = |at: &str, name: &str, severity: Option<&str>| match severity {
        Some(s) => {
            let burn = if s == "page" {
                "14.4× over 1h/5m or 6× over 6h/30m"
            } else {
                "3× over 1d/2h or 1× over 3d/6h"
            };
            format!(
                "      - eval_time: {at}\n        alertname: {name}\n        exp_alerts:\n          - exp_labels: {{severity: {s}, slo: p-availability, probe_location: l}}\n            exp_annotations:\n              summary: 'SLO p-availability is burning its error budget (l)'\n              description: '99.9% of runs of p succeed over 30d. Error budget burn above {burn} at l.'\n"
            )
        }
        None => format!("      - eval_time: {at}\n        alertname: {name}\n        exp_alerts: []\n"),
    };
    let test = format!(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{}    alert_rule_test:\n{}{}\n  - interval: 1m\n    input_series:\n{}    alert_rule_test:\n{}{}\n  - interval: 1m\n    input_series:\n{}    alert_rule_test:\n{}{}    promql_expr_test:\n      - expr: slo:error_budget_remaining:ratio{{slo=\"p-availability\"}}\n        eval_time: 1500m\n        exp_samples:\n          - labels: 'slo:error_budget_remaining:ratio{{slo=\"p-availability\",probe_location=\"l\"}}'\n            value: 1\n",
        series("0+0x120", "0+60x120"),
        alert("70m", "SloprobeBurnRatePage", Some("page")),
        alert("70m", "SloprobeBurnRateTicket", Some("ticket")),
        series("0+995x1600", "0+5x1600"),
        alert("1500m", "SloprobeBurnRatePage", None),
        alert("1500m", "SloprobeBurnRateTicket", Some("ticket")),
        series("0+1000x1600", "0+0x1600"),
        alert("1500m", "SloprobeBurnRatePage", None),
        alert("1500m", "SloprobeBurnRateTicket", None),
    );
    std::fs::write(dir.path().join("test.yml"), test).unwrap();
    run_ok(
        Command::new(tool("promtool"))
            .args(["test", "rules", "test.yml"])
            .current_dir(dir.path()),
    );
}

#[test]
fn shipped_rules_and_dashboard_match_the_code() {
    let cfg = std::path::Path::new("config/sloprobe.toml");
    let rules = sloprobe(&["slo", "rules"], cfg);
    let shipped = std::fs::read_to_string("config/slo-rules.yml").unwrap();
    assert!(
        rules == shipped,
        "config/slo-rules.yml is stale: run `sloprobe slo rules > config/slo-rules.yml`"
    );
    let dashboard = sloprobe(&["slo", "dashboard"], cfg);
    let shipped = std::fs::read_to_string("config/dashboard.json").unwrap();
    assert!(
        dashboard == shipped,
        "config/dashboard.json is stale: run `sloprobe slo dashboard > config/dashboard.json`"
    );
}

#[test]
fn slo_config_errors() {
    let base = "[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"30s\"\n";
    let slo = |body: &str| format!("{base}[[slo]]\nname = \"s\"\n{body}\n");
    let check = |text: String| {
        let dir = write_files(&[("sloprobe.toml", &text)]);
        let out = Command::new(bin())
            .args(["check", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let msg = check(slo("probes = [\"nope\"]\nsli = \"success\"\nobjective = 0.99"));
    assert!(
        msg.contains("sloprobe.toml:8:") && msg.contains("`slo.probes`") && msg.contains("\"nope\""),
        "{msg}"
    );
    let msg = check(slo(
        "probes = [\"p\"]\nsli = \"ttfb\"\nthreshold = \"123ms\"\nobjective = 0.99",
    ));
    assert!(
        msg.contains("`slo.threshold`") && msg.contains("not a bucket edge"),
        "{msg}"
    );
    let msg = check(slo("probes = [\"p\"]\nsli = \"ttfb\"\nobjective = 0.99"));
    assert!(msg.contains("`slo.threshold`"), "{msg}");
    let msg = check(slo("probes = [\"p\"]\nsli = \"success\"\nobjective = 99.9"));
    assert!(msg.contains("`slo.objective`"), "{msg}");
    let msg = check(slo(
        "probes = [\"p\"]\nsli = \"success\"\nobjective = 0.99\nexclude_errors = [\"rate_limitd\"]",
    ));
    assert!(msg.contains("`slo.exclude_errors`"), "{msg}");
    // A default bucket edge is fine without a budget.
    let dir = write_files(&[(
        "sloprobe.toml",
        &slo("probes = [\"p\"]\nsli = \"ttfb\"\nthreshold = \"250ms\"\nobjective = 0.99"),
    )]);
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(dir.path().join("sloprobe.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn real_prometheus_returns_data_for_every_rule_and_panel() {
    let (listen, demo) = (free_port(), free_port());
    let config = format!(
        r#"location = "e2e"
[server]
listen = "127.0.0.1:{listen}"
[demo]
listen = "127.0.0.1:{demo}"

[[probe]]
name = "api"
kind = "http"
url = "http://127.0.0.1:{demo}/api/items"
every = "500ms"
[probe.budget]
ttfb = "100ms"

[[probe]]
name = "chat"
kind = "assistant"
format = "openai-chat"
url = "http://127.0.0.1:{demo}/llm/openai-chat?first=50&gap=5&tokens=5"
body = '{{"model":"m","stream":true}}'
every = "1s"
[probe.budget]
ttft = "250ms"

[[slo]]
name = "api-availability"
probes = ["api", "chat"]
sli = "success"
objective = 0.999
exclude_errors = ["rate_limited"]

[[slo]]
name = "api-ttfb"
probes = ["api"]
sli = "ttfb"
objective = 0.99

[[slo]]
name = "chat-ttft"
probes = ["chat"]
sli = "ttft"
objective = 0.95
window = "28d"
"#
    );
    let dir = write_files(&[("sloprobe.toml", &config)]);
    let cfg = dir.path().join("sloprobe.toml");
    std::fs::write(dir.path().join("rules.yml"), sloprobe(&["slo", "rules"], &cfg)).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&sloprobe(&["slo", "dashboard"], &cfg)).unwrap();
    let _daemon = Child(
        Command::new(bin())
            .args(["run", "-c"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: sloprobe\n    static_configs:\n      - targets: ['127.0.0.1:{listen}']\n",
        dir.path().join("rules.yml").display()
    );
    let (_prom, prom_port) = start_prometheus(dir.path(), &prom_cfg);

    let query = |q: String| {
        let url = format!("http://127.0.0.1:{prom_port}/api/v1/query?query={}", urlencode(&q));
        async move {
            let (_, body) = http_get(&url).await?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let n = v["data"]["result"].as_array()?.len();
            (n > 0).then_some(())
        }
    };

    let mut recorded: Vec<String> = Vec::new();
    for slo in ["api-availability", "api-ttfb", "chat-ttft"] {
        let period = if slo == "chat-ttft" { "28d" } else { "30d" };
        for w in sloprobe::slo::rules::WINDOWS.iter().copied().chain([period]) {
            recorded.push(format!("slo:sli_error:ratio_rate{w}{{slo=\"{slo}\"}}"));
        }
        recorded.push(format!("slo:objective:ratio{{slo=\"{slo}\"}}"));
        recorded.push(format!("slo:error_budget_remaining:ratio{{slo=\"{slo}\"}}"));
    }
    for q in recorded {
        let ok = eventually(90, Duration::from_millis(500), || query(q.clone())).await;
        assert!(ok.is_some(), "no data for recording rule {q}");
    }
    let panels = sloprobe::slo::dashboard::queries(&dashboard);
    assert!(panels.len() >= 12, "{panels:?}");
    for q in panels {
        let q = q
            .replace("$__rate_interval", "10s")
            .replace("$__range", "1m")
            .replace("$location", ".*");
        let ok = eventually(30, Duration::from_millis(500), || query(q.clone())).await;
        assert!(ok.is_some(), "no data for dashboard query {q}");
    }
}
