//! The SLO layer against real Prometheus tooling: promtool checks and unit-tests the
//! generated rules (fast burn pages, slow burn tickets, healthy stays quiet), the shipped
//! files stay in step with the code, and a real Prometheus scraping a running daemon
//! returns data for every recording rule and every dashboard query.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

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

/// 60 runs a minute at `location`, `failed` of which fail, as promtool input series.
fn runs(location: &str, ok: &str, failed: &str) -> String {
    format!(
        "      - series: 'probe_runs_total{{probe_name=\"p\",probe_location=\"{location}\",outcome=\"success\"}}'\n        values: '{ok}'\n      - series: 'probe_runs_total{{probe_name=\"p\",probe_location=\"{location}\",outcome=\"failure\",error_type=\"timeout\"}}'\n        values: '{failed}'\n"
    )
}

fn labels(slo: &str, severity: &str, extra: &str) -> String {
    format!(
        "{{severity: {severity}, slo: {slo}, sloth_id: sloprobe-{slo}, sloth_service: sloprobe, sloth_slo: {slo}{extra}}}"
    )
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    // Fast burn: everything fails (1000× the budget). Slow burn: 0.5 % fails (5×: under
    // both page rates, over the 3× ticket). Healthy: nothing fails.
    let alert = |at: &str, name: &str, severity: &str| {
        let burn = if severity == "page" {
            "14.4× over 1h/5m or 6× over 6h/30m"
        } else {
            "3× over 1d/2h or 1× over 3d/6h"
        };
        format!(
            "      - eval_time: {at}\n        alertname: {name}\n        exp_alerts:\n          - exp_labels: {}\n            exp_annotations:\n              summary: 'SLO p-availability is burning its error budget (at l)'\n              description: '99.9% of runs of p succeed over 30d. Error budget burn above {burn} at l.'\n              runbook_url: 'https://runbooks.example/p'\n",
            labels(
                "p-availability",
                severity,
                &format!(", sloth_severity: {severity}, team: search, probe_location: l")
            )
        )
    };
    let test = |input: String, alerts: Vec<String>, extra: &str| {
        format!(
            "  - interval: 1m\n    input_series:\n{input}    alert_rule_test:\n{}{extra}",
            alerts.concat()
        )
    };
    let tests = [
        test(
            runs("l", "0+0x120", "0+60x120"),
            vec![
                alert("70m", "SloprobeBurnRatePage", "page"),
                alert("70m", "SloprobeBurnRateTicket", "ticket"),
            ],
            "",
        ),
        test(
            runs("l", "0+995x1600", "0+5x1600"),
            vec![
                no_alert("1500m", "SloprobeBurnRatePage"),
                alert("1500m", "SloprobeBurnRateTicket", "ticket"),
            ],
            "",
        ),
        test(
            runs("l", "0+1000x1600", "0+0x1600"),
            vec![
                no_alert("1500m", "SloprobeBurnRatePage"),
                no_alert("1500m", "SloprobeBurnRateTicket"),
            ],
            "    promql_expr_test:\n      - expr: slo:error_budget_remaining:ratio{slo=\"p-availability\"}\n        eval_time: 1500m\n        exp_samples:\n          - labels: 'slo:error_budget_remaining:ratio{slo=\"p-availability\",sloth_id=\"sloprobe-p-availability\",sloth_service=\"sloprobe\",sloth_slo=\"p-availability\",team=\"search\",probe_location=\"l\"}'\n            value: 1\n      - expr: sloth_slo_info{sloth_slo=\"p-availability\"}\n        eval_time: 10m\n        exp_samples:\n          - labels: 'sloth_slo_info{slo=\"p-availability\",sloth_id=\"sloprobe-p-availability\",sloth_mode=\"cli-gen-prom\",sloth_objective=\"99.9\",sloth_service=\"sloprobe\",sloth_slo=\"p-availability\",sloth_spec=\"sloprobe/v1\",sloth_version=\"0.1.0\",team=\"search\"}'\n            value: 1\n",
        ),
    ];
    let config = UNIT_CONFIG.replace(
        "window = \"30d\"",
        "window = \"30d\"\nlabels = { team = \"search\" }\nannotations = { runbook_url = \"https://runbooks.example/p\" }",
    );
    promtool_test(&config, &tests.concat());
}

/// Burn factors and windows follow the period. From 28d up the factors scale (Sloth's
/// formula: 13.44 over 1h at 28d) and never drop below 1 (Sloth's 0.93 over 3d at 28d is
/// 1). Shorter periods scale the windows instead (as Pyrra does): a 7d SLO pages on 13.44×
/// over 15m/75s, so a 4× burn opens a ticket there and no page, and a 20× burn pages.
#[test]
fn burn_factors_and_windows_follow_the_period() {
    let slo = |window: &str| {
        format!(
            "[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"30s\"\n\n[[slo]]\nname = \"s\"\nprobes = [\"p\"]\nsli = \"success\"\nobjective = 0.99\nwindow = \"{window}\"\n"
        )
    };
    // 1 % budget: 4 % of runs failing is a 4× burn, 20 % a 20× burn.
    let alert = |name: &str, severity: &str, burn: &str, period: &str| {
        format!(
            "      - eval_time: 70m\n        alertname: {name}\n        exp_alerts:\n          - exp_labels: {}\n            exp_annotations:\n              summary: 'SLO s is burning its error budget (at l)'\n              description: '99% of runs of p succeed over {period}. Error budget burn above {burn} at l.'\n",
            labels(
                "s",
                severity,
                &format!(", sloth_severity: {severity}, probe_location: l")
            )
        )
    };
    let case = |ok: &str, failed: &str, alerts: String| {
        format!(
            "  - interval: 1m\n    input_series:\n{}    alert_rule_test:\n{alerts}",
            runs("l", ok, failed)
        )
    };
    let page7 = "13.44× over 15m/75s or 5.6× over 90m/450s";
    let ticket7 = "2.8× over 6h/30m or 1× over 18h/90m";
    let tests7 = [
        case(
            "0+96x120",
            "0+4x120",
            format!(
                "{}{}",
                no_alert("70m", "SloprobeBurnRatePage"),
                alert("SloprobeBurnRateTicket", "ticket", ticket7, "7d")
            ),
        ),
        case(
            "0+80x120",
            "0+20x120",
            alert("SloprobeBurnRatePage", "page", page7, "7d"),
        ),
    ];
    let rules7 = promtool_test(&slo("7d"), &tests7.concat());
    assert!(
        rules7.contains("(13.44 * 0.01)") && rules7.contains("(5.6 * 0.01)"),
        "{rules7}"
    );
    assert!(rules7.contains("slo:sli_error:ratio_rate75s"), "{rules7}");
    promtool_test(
        &slo("30d"),
        &case("0+96x120", "0+4x120", no_alert("70m", "SloprobeBurnRatePage")),
    );
    let under_one = regex::Regex::new(r"\(0\.\d+ \* ").unwrap();
    for (window, factors) in [
        ("28d", ["13.44", "5.6", "2.8", "1"]),
        ("7d", ["13.44", "5.6", "2.8", "1"]),
    ] {
        let dir = write_files(&[("sloprobe.toml", &slo(window))]);
        let rules = sloprobe(&["slo", "rules"], &dir.path().join("sloprobe.toml"));
        for f in factors {
            assert!(rules.contains(&format!("({f} * 0.01)")), "{window}: {f} in\n{rules}");
        }
        assert!(!rules.contains("0000000"), "float artifact in:\n{rules}");
        // No factor under 1 anywhere.
        assert!(!under_one.is_match(&rules), "a factor under 1 in:\n{rules}");
    }
}

/// When the probes' series stop (daemon dead, scrape broken), the burn alerts go quiet;
/// the no-data alert fires instead.
#[test]
fn no_data_alert_fires_when_scrapes_stop() {
    let input = runs("l", "0+60x30 _x60", "0+0x30 _x60");
    let tests = format!(
        "  - interval: 1m\n    input_series:\n{input}    alert_rule_test:\n{}      - eval_time: 60m\n        alertname: SloprobeSLONoData\n        exp_alerts:\n          - exp_labels: {}\n            exp_annotations:\n              summary: 'SLO p-availability has no data'\n              description: 'No samples of p for 10m: the probes, the collector or the daemon are down or not scraped, and the burn-rate alerts of p-availability cannot fire.'\n",
        no_alert("20m", "SloprobeSLONoData"),
        labels("p-availability", "ticket", "")
    );
    let availability_only = &UNIT_CONFIG[..UNIT_CONFIG.find("[[slo]]\nname = \"p-ttfb\"").unwrap()];
    promtool_test(availability_only, &tests);
}

/// An SLO on real users: "75 % of page views on /dashboard have LCP ≤ 2.5 s" reads the
/// collector's exact page-view counters for that route only. Every page view over the
/// threshold for two hours opens a ticket (at 75 %, a page-level burn is arithmetically
/// impossible: 13.44 × 25 % > 100 %); another route's bad page views change nothing.
#[test]
fn a_rum_slo_burns_on_its_route_only() {
    let config = r#"
[rum]
listen = "127.0.0.1:9466"
allowed_origins = ["https://app.example.com"]
[rum.budget]
lcp = "2.5s"

[[slo]]
name = "dashboard-lcp"
routes = ["/dashboard"]
sli = "lcp"
objective = 0.75
window = "28d"
"#;
    let views = |route: &str, good: &str, bad: &str| {
        format!(
            "      - series: 'rum_threshold_page_views_total{{http_route=\"{route}\",measurement=\"lcp\",threshold=\"2.5\",verdict=\"good\",probe_location=\"l\"}}'\n        values: '{good}'\n      - series: 'rum_threshold_page_views_total{{http_route=\"{route}\",measurement=\"lcp\",threshold=\"2.5\",verdict=\"bad\",probe_location=\"l\"}}'\n        values: '{bad}'\n"
        )
    };
    let burning = views("/dashboard", "0+0x120", "0+60x120");
    let elsewhere = format!(
        "{}{}",
        views("/dashboard", "0+60x120", "0+0x120"),
        views("/other", "0+0x120", "0+60x120")
    );
    let tests = format!(
        "  - interval: 1m\n    input_series:\n{burning}    alert_rule_test:\n{}      - eval_time: 70m\n        alertname: SloprobeBurnRateTicket\n        exp_alerts:\n          - exp_labels: {}\n            exp_annotations:\n              summary: 'SLO dashboard-lcp is burning its error budget (at l)'\n              description: '75% of real page views on /dashboard have lcp ≤ 2.500s over 28d. Error budget burn above 2.8× over 1d/2h or 1× over 3d/6h at l.'\n  - interval: 1m\n    input_series:\n{elsewhere}    alert_rule_test:\n{}{}",
        no_alert("70m", "SloprobeBurnRatePage"),
        labels("dashboard-lcp", "ticket", ", sloth_severity: ticket, probe_location: l"),
        no_alert("70m", "SloprobeBurnRatePage"),
        no_alert("70m", "SloprobeBurnRateTicket"),
    );
    let rules = promtool_test(config, &tests);
    assert!(
        rules.contains(
            "rum_threshold_page_views_total{measurement=\"lcp\",threshold=\"2.5\",http_route=~\"^(/dashboard)$\"}"
        ),
        "{rules}"
    );
}

/// `min_locations = 2`: a burn at one location of three does not page; at two it does.
#[test]
fn quorum_pages_at_two_of_three_locations() {
    let config = UNIT_CONFIG.replace("window = \"30d\"", "window = \"30d\"\nmin_locations = 2");
    let healthy = "0+60x120";
    let zero = "0+0x120";
    let one = format!(
        "{}{}{}",
        runs("a", zero, healthy),
        runs("b", healthy, zero),
        runs("c", healthy, zero)
    );
    let two = format!(
        "{}{}{}",
        runs("a", zero, healthy),
        runs("b", zero, healthy),
        runs("c", healthy, zero)
    );
    let tests = format!(
        "  - interval: 1m\n    input_series:\n{one}    alert_rule_test:\n{}  - interval: 1m\n    input_series:\n{two}    alert_rule_test:\n      - eval_time: 70m\n        alertname: SloprobeBurnRatePage\n        exp_alerts:\n          - exp_labels: {}\n            exp_annotations:\n              summary: 'SLO p-availability is burning its error budget (at 2 or more locations)'\n              description: '99.9% of runs of p succeed over 30d. Error budget burn above 14.4× over 1h/5m or 6× over 6h/30m at 2 or more locations.'\n",
        no_alert("70m", "SloprobeBurnRatePage"),
        labels("p-availability", "page", ", sloth_severity: page")
    );
    promtool_test(&config, &tests);
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
        "probes = [\"p\"]\nsli = \"success\"\nobjective = 0.99\nwindow = \"1d\"",
    ));
    assert!(msg.contains("`slo.window`") && msg.contains("at least 6d"), "{msg}");
    let msg = check(slo(
        "probes = [\"p\"]\nsli = \"success\"\nobjective = 0.99\nlabels = { severity = \"x\" }",
    ));
    assert!(msg.contains("`slo.labels.severity`"), "{msg}");
    let msg = check(slo(
        "probes = [\"p\"]\nsli = \"success\"\nobjective = 0.99\nmin_locations = 0",
    ));
    assert!(msg.contains("`slo.min_locations`"), "{msg}");
    let msg = check(slo("probes = [\"p\"]\nsli = \"ttfb\"\nobjective = 0.99"));
    assert!(msg.contains("`slo.threshold`"), "{msg}");
    let msg = check(slo("probes = [\"p\"]\nsli = \"success\"\nobjective = 99.9"));
    assert!(msg.contains("`slo.objective`"), "{msg}");
    let msg = check(slo(
        "probes = [\"p\"]\nsli = \"success\"\nobjective = 0.99\nexclude_errors = [\"rate_limitd\"]",
    ));
    assert!(msg.contains("`slo.exclude_errors`"), "{msg}");
    // Any threshold is exact (a counter, not a bucket edge), with or without a budget.
    let dir = write_files(&[(
        "sloprobe.toml",
        &slo("probes = [\"p\"]\nsli = \"ttfb\"\nthreshold = \"123ms\"\nobjective = 0.99"),
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
    // A TLS target (certificate panel) and a collector that refuses (OTLP panel).
    let pki = pki(false);
    let tls = tls_target(&pki).await;
    let ca_dir = write_files(&[("ca.pem", &pki.ca_pem)]);
    let ca = ca_dir.path().join("ca.pem");
    let (tls_port, otlp_port) = (tls.addr.port(), refused_port());
    let config = format!(
        r#"location = "e2e"
[server]
listen = "127.0.0.1:{listen}"
[demo]
listen = "127.0.0.1:{demo}"
[export.otlp]
endpoint = "http://127.0.0.1:{otlp_port}"
protocol = "http/protobuf"
interval = "1s"
timeout = "1s"

[[probe]]
name = "tls"
kind = "http"
url = "https://localhost:{tls_port}/"
every = "1s"
[probe.tls]
ca_file = "{ca}"

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

[[slo]]
name = "api-slices"
probes = ["api"]
sli = "success"
objective = 0.99
budgeting = "timeslices"
slice = "10s"
slice_target = 0.9

[[error_budget]]
name = "freeze"
slos = ["api-slices"]
budget = "8h"
"#,
        ca = ca.display()
    );
    let dir = write_files(&[("sloprobe.toml", &config)]);
    let cfg = dir.path().join("sloprobe.toml");
    std::fs::write(dir.path().join("rules.yml"), sloprobe(&["slo", "rules"], &cfg)).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&sloprobe(&["slo", "dashboard"], &cfg)).unwrap();
    let (_daemon, _prom, prom_port) = daemon_and_prometheus(dir.path(), &cfg, listen, &dir.path().join("rules.yml"));

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
        let days = if slo == "chat-ttft" { 28 } else { 30 };
        let period = Duration::from_secs(days * 86400);
        let burns = sloprobe::slo::windows::burns(period, Duration::ZERO).unwrap();
        for w in sloprobe::slo::windows::windows(&burns).into_iter().chain([period]) {
            let w = sloprobe::slo::prom_duration(w);
            recorded.push(format!("slo:sli_error:ratio_rate{w}{{slo=\"{slo}\"}}"));
        }
        recorded.push(format!("slo:objective:ratio{{slo=\"{slo}\"}}"));
        recorded.push(format!("slo:error_budget_remaining:ratio{{slo=\"{slo}\"}}"));
    }
    for q in [
        "slo:slice_bad{slo=\"api-slices\"}",
        "slo:sli_error:ratio_rate30d{slo=\"api-slices\"}",
        "slo:error_budget_spent:seconds{error_budget=\"freeze\"}",
        "slo:error_budget_left:seconds{error_budget=\"freeze\"}",
        "slo:error_budget_spent_by_slo:seconds{error_budget=\"freeze\"}",
    ] {
        recorded.push(q.to_string());
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
            .replace("$location", ".*")
            .replace("$probe", ".*");
        let ok = eventually(30, Duration::from_millis(500), || query(q.clone())).await;
        assert!(ok.is_some(), "no data for dashboard query {q}");
    }
}

/// Probe labels every probe of an SLO shares go on its rules and alerts (team routing).
#[test]
fn shared_probe_labels_reach_the_slo_rules() {
    let probe = |name: &str, team: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"30s\"\n[probe.labels]\nteam = \"{team}\"\ntier = \"gold\"\n"
        )
    };
    let slo = "[[slo]]\nname = \"s\"\nprobes = [\"a\", \"b\"]\nsli = \"success\"\nobjective = 0.99\n";
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!("{}{}{slo}", probe("a", "web"), probe("b", "web")),
    )]);
    let rules = sloprobe(&["slo", "rules"], &dir.path().join("sloprobe.toml"));
    assert!(
        rules.contains("team: 'web'") && rules.contains("tier: 'gold'"),
        "{rules}"
    );
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!("{}{}{slo}", probe("a", "web"), probe("b", "api")),
    )]);
    let rules = sloprobe(&["slo", "rules"], &dir.path().join("sloprobe.toml"));
    assert!(!rules.contains("team:") && rules.contains("tier: 'gold'"), "{rules}");
}

/// The freeze gate against a real Prometheus scraping a running daemon: a probe that
/// always fails spends its SLO's budget, a healthy one and a slower one (every 10s) keep
/// theirs. Nothing the rules record is ever NaN, from the first scrape on; `slo status`
/// exits 1 while the failing SLO is in its config, 0 without it, and 2 when the rules of
/// an SLO are not loaded. A bearer token given as file: never reaches the output.
#[tokio::test]
async fn slo_status_gates_on_a_real_prometheus() {
    let (listen, demo) = (free_port(), free_port());
    let refused = refused_port();
    let probes = format!(
        r#"
[[probe]]
name = "ok"
kind = "http"
url = "http://127.0.0.1:{demo}/api/items"
every = "500ms"

[[probe]]
name = "slow"
kind = "http"
url = "http://127.0.0.1:{demo}/api/items"
every = "10s"
splay = "0s"

[[probe]]
name = "broken"
kind = "http"
url = "http://127.0.0.1:{refused}/"
every = "500ms"
"#
    );
    let slo = |name: &str, probe: &str| {
        format!("\n[[slo]]\nname = \"{name}\"\nprobes = [\"{probe}\"]\nsli = \"success\"\nobjective = 0.99\n")
    };
    let head = format!("[server]\nlisten = \"127.0.0.1:{listen}\"\n[demo]\nlisten = \"127.0.0.1:{demo}\"\n");
    let all = format!(
        "{head}{probes}{}{}{}",
        slo("ok-availability", "ok"),
        slo("slow-availability", "slow"),
        slo("broken-availability", "broken")
    );
    let healthy = format!(
        "{head}{probes}{}{}",
        slo("ok-availability", "ok"),
        slo("slow-availability", "slow")
    );
    let unloaded = format!("{head}{probes}{}", slo("never-loaded", "ok"));
    let dir = write_files(&[
        ("all.toml", &all),
        ("healthy.toml", &healthy),
        ("unloaded.toml", &unloaded),
        ("token", "s3cr3t-token-value\n"),
    ]);
    std::fs::write(
        dir.path().join("rules.yml"),
        sloprobe(&["slo", "rules"], &dir.path().join("all.toml")),
    )
    .unwrap();
    let (_daemon, _prom, prom_port) = daemon_and_prometheus(
        dir.path(),
        &dir.path().join("all.toml"),
        listen,
        &dir.path().join("rules.yml"),
    );
    let query = |q: &str| {
        let url = format!("http://127.0.0.1:{prom_port}/api/v1/query?query={}", urlencode(q));
        async move {
            let (_, body) = http_get(&url).await?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            v["data"]["result"].as_array().cloned()
        }
    };
    let status = |config: &str, token: bool| {
        let mut cmd = Command::new(bin());
        cmd.args(["slo", "status", "-c"])
            .arg(dir.path().join(config))
            .arg("--prometheus")
            .arg(format!("http://127.0.0.1:{prom_port}"));
        if token {
            cmd.arg("--bearer")
                .arg(format!("file:{}", dir.path().join("token").display()));
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Every figure has evidence once each probe has run twice.
    let ready = eventually(120, Duration::from_millis(500), || async {
        let n = query("slo:sli_error:ratio_rate30d").await?.len();
        (n == 3).then_some(())
    })
    .await;
    assert!(ready.is_some(), "the period ratios never appeared");
    let nan = "{__name__=~\"slo:.+\"} unless ({__name__=~\"slo:.+\"} >= -Inf)";
    for _ in 0..10 {
        let found = query(nan).await.expect("prometheus answers");
        assert!(found.is_empty(), "NaN recorded: {found:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, out) = status("all.toml", true);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("broken-availability") && out.contains("SPENT"), "{out}");
    assert!(!out.contains("s3cr3t"), "the token leaked: {out}");
    let (code, out) = status("healthy.toml", false);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("within budget"), "{out}");
    let (code, out) = status("unloaded.toml", false);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("load the rules"), "{out}");
    let (code, out) = status("healthy.toml", false);
    assert_eq!(code, Some(0), "{out}");
}

/// The rule file has Sloth's layout, so Sloth's dashboards (grafana.com 14348 and 14643)
/// read it: per SLO the three groups Sloth writes, Sloth's record names (as in Sloth's
/// published `examples/_gen/getting-started.yml`), `sloth_window` on every SLI record,
/// `sloth_severity` on every burn alert, and Sloth's info labels.
#[test]
fn rules_have_sloths_layout() {
    let dir = write_files(&[("sloprobe.toml", UNIT_CONFIG)]);
    let rules = sloprobe(&["slo", "rules"], &dir.path().join("sloprobe.toml"));
    for slo in ["p-availability", "p-ttfb"] {
        let id = format!("sloprobe-{slo}");
        let groups: Vec<&str> = rules
            .lines()
            .filter_map(|l| l.strip_prefix("  - name: "))
            .filter(|g| g.ends_with(&id))
            .collect();
        assert_eq!(
            groups,
            [
                format!("sloth-slo-sli-recordings-{id}"),
                format!("sloth-slo-meta-recordings-{id}"),
                format!("sloth-slo-alerts-{id}")
            ],
            "{rules}"
        );
        // The body of one group, up to the next.
        let group = |name: &str| {
            let start = rules.find(&format!("  - name: {name}\n")).unwrap();
            let rest = &rules[start + 10..];
            rest[..rest.find("\n  - name: ").unwrap_or(rest.len())].to_string()
        };
        let sli = group(&format!("sloth-slo-sli-recordings-{id}"));
        let windows: Vec<&str> = sli
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- record: slo:sli_error:ratio_rate"))
            .collect();
        for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"] {
            assert!(windows.contains(&w), "no slo:sli_error:ratio_rate{w} in\n{sli}");
        }
        for rule in sli.split("      - record: slo:sli_error:ratio_rate").skip(1) {
            let w = rule.lines().next().unwrap();
            for label in [
                format!("sloth_window: '{w}'"),
                format!("sloth_id: '{id}'"),
                "sloth_service: 'sloprobe'".to_string(),
                format!("sloth_slo: '{slo}'"),
            ] {
                assert!(rule.contains(&label), "{label} missing on {w}:\n{rule}");
            }
        }
        let meta = group(&format!("sloth-slo-meta-recordings-{id}"));
        for record in [
            "slo:objective:ratio",
            "slo:error_budget:ratio",
            "slo:time_period:days",
            "slo:current_burn_rate:ratio",
            "slo:period_burn_rate:ratio",
            "slo:period_error_budget_remaining:ratio",
            "sloth_slo_info",
        ] {
            assert!(
                meta.contains(&format!("- record: {record}\n")),
                "{record} missing:\n{meta}"
            );
        }
        for label in [
            "sloth_mode: 'cli-gen-prom'",
            "sloth_spec: ",
            "sloth_version: ",
            "sloth_objective: ",
        ] {
            assert!(meta.contains(label), "{label} missing:\n{meta}");
        }
        let alerts = group(&format!("sloth-slo-alerts-{id}"));
        for (alert, severity) in [("SloprobeBurnRatePage", "page"), ("SloprobeBurnRateTicket", "ticket")] {
            let start = alerts.find(&format!("- alert: {alert}\n")).unwrap();
            let body = &alerts[start..];
            let body = &body[..body[2..].find("- alert:").map_or(body.len(), |i| i + 2)];
            assert!(body.contains(&format!("sloth_severity: '{severity}'")), "{body}");
        }
    }
}

/// With `histograms = "exponential"` Prometheus holds native histograms, which have no
/// `_bucket` series: the dashboard's quantiles of catalog histograms read the histogram.
#[test]
fn dashboard_reads_native_histograms_in_exponential_mode() {
    let config = format!(
        "[metrics]\nhistograms = \"exponential\"\n[rum]\nlisten = \"127.0.0.1:9466\"\nallowed_origins = [\"https://app.example.com\"]\n{UNIT_CONFIG}"
    );
    let dir = write_files(&[("sloprobe.toml", &config)]);
    let d: serde_json::Value =
        serde_json::from_str(&sloprobe(&["slo", "dashboard"], &dir.path().join("sloprobe.toml"))).unwrap();
    let queries = sloprobe::slo::dashboard::queries(&d);
    let quantiles: Vec<&String> = queries
        .iter()
        .filter(|q| q.contains("histogram_quantile") && !q.contains("sloprobe_schedule_lateness"))
        .collect();
    assert!(quantiles.len() >= 4, "{queries:?}");
    for q in quantiles {
        assert!(
            !q.contains("_bucket") && !q.contains("(le"),
            "a classic-histogram query in exponential mode: {q}"
        );
    }
    // Explicit mode keeps the bucket queries.
    let dir = write_files(&[("sloprobe.toml", &config.replace("exponential", "explicit"))]);
    let d: serde_json::Value =
        serde_json::from_str(&sloprobe(&["slo", "dashboard"], &dir.path().join("sloprobe.toml"))).unwrap();
    assert!(
        sloprobe::slo::dashboard::queries(&d)
            .iter()
            .any(|q| q.contains("http_client_request_duration_seconds_bucket") || q.contains("_ttfb_seconds_bucket")),
        "no bucket query in explicit mode"
    );
}

/// `slo status` against a hostile "Prometheus": an endless answer is cut at 8 MiB, a
/// silent one at `--timeout`, text with control characters is printed on one line; every
/// case is exit 2 (cannot judge), in bounded time.
#[tokio::test]
async fn slo_status_against_a_hostile_prometheus() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    async fn serve(mode: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    match mode {
                        "endless" => {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
                                .await;
                            let chunk = vec![b'0'; 64 * 1024];
                            while s.write_all(&chunk).await.is_ok() {}
                        }
                        "forged" => {
                            let body = r#"{"status":"error","error":"bad\nlevel=error msg=\"forged line\"\u001b[2J"}"#;
                            let _ = s
                                .write_all(
                                    format!(
                                        "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n{body}",
                                        body.len()
                                    )
                                    .as_bytes(),
                                )
                                .await;
                        }
                        _ => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        port
    }
    let dir = write_files(&[("sloprobe.toml", UNIT_CONFIG)]);
    for (mode, expect) in [
        ("endless", "over 8 MiB"),
        ("silent", "no answer within 1s"),
        ("forged", "forged line"),
    ] {
        let port = serve(mode).await;
        let cfg = dir.path().join("sloprobe.toml");
        let started = std::time::Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(bin())
                .args(["slo", "status", "--timeout", "1s", "-c"])
                .arg(cfg)
                .arg("--prometheus")
                .arg(format!("http://127.0.0.1:{port}"))
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(2), "{mode}: {text}");
        assert!(text.contains(expect), "{mode}: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{mode} took {:?}",
            started.elapsed()
        );
        // The server's text stays inside its own row: no forged line, no escape sequence.
        assert!(!text.lines().any(|l| l.starts_with("level=error")), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
