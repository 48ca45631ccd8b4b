//! The metric surface at fleet scale: a probe's series are its own (other probes' budgets
//! never change them) and within the series budget; reloads keep unchanged probes'
//! counters and the instance id; real Prometheus scrapes text, gzip and protobuf with
//! native histograms.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

use sloprobe::outcome::{ErrorType, Outcome, ProbeError, Unit, Watch};
use sloprobe::telemetry::{Plan, ProbePlan, Telemetry};

use common::*;

/// The exposition lines (series) of one probe, values stripped.
fn series_of(text: &str, probe: &str) -> Vec<String> {
    let needle = format!("probe_name=\"{probe}\"");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&needle))
        .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s).to_string())
        .collect();
    lines.sort();
    lines
}

async fn scrape_after_one_run(toml: &str) -> String {
    let (_d, probes) = build_probes(toml);
    let telemetry =
        sloprobe::telemetry::Telemetry::new("lab", sloprobe::daemon::telemetry_plan(&probes, &[]), None).unwrap();
    for p in &probes {
        let o = p.execute().await;
        assert!(o.success(), "{}: {:?}", p.name, o.error);
        telemetry.record(&o);
        telemetry.record_lateness(Duration::from_micros(300));
    }
    let mut text = String::new();
    telemetry.prometheus_text(&mut |c| text.push_str(&c)).unwrap();
    text
}

fn http_probe(name: &str, url: &str, ttfb_ms: u32) -> String {
    format!(
        "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\nevery = \"30s\"\n[probe.labels]\nteam = \"web\"\n[probe.budget]\nttfb = \"{ttfb_ms}ms\"\ntotal = \"1s\"\n"
    )
}

#[tokio::test]
async fn a_probes_series_are_its_own_and_within_budget() {
    let t = plain_target().await;
    let url = t.url("/delay/5");
    let alone = scrape_after_one_run(&http_probe("a", &url, 100)).await;
    let mine = series_of(&alone, "a");
    eprintln!("one healthy http probe: {} series", mine.len());
    assert!(
        mine.len() <= 80,
        "{} series for one healthy http probe:\n{}",
        mine.len(),
        mine.join("\n")
    );
    assert!(mine.iter().all(|l| l.contains("team=\"web\"")), "probe labels missing");

    // 50 more probes with distinct budgets (101..150 ms): a's series do not change.
    let mut many = http_probe("a", &url, 100);
    for i in 0..50 {
        many.push_str(&http_probe(&format!("b{i}"), &url, 101 + i));
    }
    let crowded = scrape_after_one_run(&many).await;
    assert_eq!(
        series_of(&crowded, "a"),
        mine,
        "another probe's budgets changed a's series"
    );
    let b7 = series_of(&crowded, "b7");
    assert!(b7.len() <= 80, "{}", b7.len());
    assert!(
        b7.iter().any(|l| l.contains("threshold=\"0.108\"")),
        "b7's own threshold missing"
    );
    assert!(!crowded.contains("le=\"0.108\""), "a budget became a bucket edge");
}

#[tokio::test]
async fn assistant_series_within_budget() {
    let t = plain_target().await;
    let url = t.url("/llm/openai-chat?first=20&gap=2&tokens=5");
    let toml = format!(
        "[[probe]]\nname = \"a\"\nkind = \"assistant\"\nformat = \"openai-chat\"\nurl = \"{url}\"\nevery = \"30s\"\nbody = '{{\"model\":\"m\",\"stream\":true}}'\n[probe.budget]\nttft = \"3s\"\ntpot = \"50ms\"\n[probe.budget.p95]\nttft = \"8s\"\n"
    );
    let text = scrape_after_one_run(&toml).await;
    let mine = series_of(&text, "a");
    eprintln!("one healthy assistant probe: {} series", mine.len());
    assert!(
        mine.len() <= 100,
        "{} series for one healthy assistant probe:\n{}",
        mine.len(),
        mine.join("\n")
    );
}

fn hup(child: &Child) {
    let sent = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test]
async fn reload_keeps_unchanged_probes_counters_and_the_instance_id() {
    let t = plain_target().await;
    let port = free_port();
    let probe = |name: &str, extra: &str| {
        format!(
            "\n[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{}\"\nevery = \"200ms\"\n{extra}",
            t.url("/")
        )
    };
    let head = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n");
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!("{head}{}{}", probe("keep", ""), probe("change", "")),
    )]);
    let cfg = dir.path().join("sloprobe.toml");
    let mut child = start_daemon(&cfg);
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let scrape = || async { http_get(&metrics).await.map(|(_, t)| t) };
    let before = eventually(50, Duration::from_millis(100), || async {
        let text = scrape().await?;
        (sample(&text, "probe_runs_total", &["probe_name=\"keep\""])? >= 5.0).then_some(text)
    })
    .await
    .expect("no runs");
    let runs_before = sample(&before, "probe_runs_total", &["probe_name=\"keep\""]).unwrap();
    let id = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("target_info{"))
            .and_then(|l| l.split("service_instance_id=\"").nth(1))
            .and_then(|r| r.split('"').next())
            .map(str::to_string)
    };
    let id_before = id(&before).expect("instance id");
    let hash_before = before
        .lines()
        .find(|l| l.starts_with("sloprobe_config_info{") && l.ends_with(" 1"))
        .map(str::to_string);

    std::fs::write(
        &cfg,
        format!(
            "{head}{}{}{}",
            probe("keep", ""),
            probe("change", "timeout = \"150ms\""),
            probe("new", "")
        ),
    )
    .unwrap();
    hup(&child);
    let after = eventually(50, Duration::from_millis(100), || async {
        let text = scrape().await?;
        sample(&text, "probe_runs_total", &["probe_name=\"new\""])?;
        Some(text)
    })
    .await
    .expect("the new probe never ran");
    let runs_after = sample(&after, "probe_runs_total", &["probe_name=\"keep\""]).unwrap();
    assert!(
        runs_after >= runs_before,
        "counter reset on reload: {runs_before} → {runs_after}"
    );
    assert_eq!(
        id(&after).as_deref(),
        Some(id_before.as_str()),
        "instance id changed on reload"
    );
    assert_eq!(
        sample(&after, "sloprobe_config_reloads_total", &["outcome=\"success\""]),
        Some(1.0)
    );
    assert_ne!(
        after
            .lines()
            .find(|l| l.starts_with("sloprobe_config_info{") && l.ends_with(" 1"))
            .map(str::to_string),
        hash_before,
        "config hash did not change"
    );
    // Only the loaded config's hash is a series: a replaced one does not linger at 0.
    let info_lines = after.lines().filter(|l| l.starts_with("sloprobe_config_info{")).count();
    assert_eq!(info_lines, 1, "{after}");
    // Removing a probe removes its series from /metrics.
    std::fs::write(&cfg, format!("{head}{}", probe("keep", ""))).unwrap();
    hup(&child);
    let gone = eventually(50, Duration::from_millis(100), || async {
        let text = scrape().await?;
        (!text.contains("probe_name=\"new\"")).then_some(text)
    })
    .await;
    assert!(gone.is_some(), "a removed probe is still exported");

    // A restart keeps the instance id too (derived from host, config path and listener).
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let _ = child.0.wait();
    let _child = start_daemon(&cfg);
    let restarted = eventually(50, Duration::from_millis(100), || async {
        scrape().await.filter(|t| t.contains("target_info"))
    })
    .await
    .expect("restart");
    assert_eq!(
        id(&restarted).as_deref(),
        Some(id_before.as_str()),
        "instance id changed on restart"
    );
}

#[tokio::test]
async fn real_prometheus_scrapes_gzip_text_and_native_histograms() {
    let t = plain_target().await;
    let (plain_port, native_port) = (free_port(), free_port());
    let config = |port: u16, mode: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[metrics]\nhistograms = \"{mode}\"\n\n[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"{}\"\nevery = \"300ms\"\n",
            t.url("/delay/20")
        )
    };
    let dir = write_files(&[
        ("explicit.toml", &config(plain_port, "explicit")),
        ("exponential.toml", &config(native_port, "exponential")),
    ]);
    let _a = start_daemon(&dir.path().join("explicit.toml"));
    let _b = start_daemon(&dir.path().join("exponential.toml"));

    // The daemon answers gzip and protobuf when asked (Prometheus asks for both).
    let addr = format!("127.0.0.1:{native_port}");
    let gzip = eventually(50, Duration::from_millis(100), || async {
        let head = raw_head(&addr, "/metrics", &["Accept-Encoding: gzip"])?.to_ascii_lowercase();
        head.contains("content-encoding: gzip").then_some(head)
    })
    .await;
    assert!(gzip.is_some(), "no gzip");
    let proto = raw_head(
        &addr,
        "/metrics",
        &["Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"],
    )
    .unwrap()
    .to_ascii_lowercase();
    assert!(
        proto.contains("content-type: application/vnd.google.protobuf"),
        "{proto}"
    );

    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: explicit\n    static_configs:\n      - targets: ['127.0.0.1:{plain_port}']\n  - job_name: native\n    static_configs:\n      - targets: ['127.0.0.1:{native_port}']\n"
    );
    let (_prom, prom_port) = start_prometheus_with(dir.path(), &prom_cfg, &["--enable-feature=native-histograms"]);
    let query = |q: &str| {
        let url = format!("http://127.0.0.1:{prom_port}/api/v1/query?query={}", urlencode(q));
        async move {
            let (_, body) = http_get(&url).await?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let r = v["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok()?;
            r.is_finite().then_some(r)
        }
    };
    // Classic buckets from the text/gzip scrape…
    let classic = eventually(60, Duration::from_millis(500), || {
        query("histogram_quantile(0.5, sum by (le) (rate(probe_http_ttfb_seconds_bucket{job=\"explicit\"}[1m])))")
    })
    .await
    .expect("classic histogram quantile");
    assert!(classic > 0.01 && classic <= 0.05, "classic p50 {classic}");
    // …and a native histogram from the protobuf scrape: no _bucket series, a quantile
    // straight from the histogram, close to the injected 20 ms.
    let native = eventually(60, Duration::from_millis(500), || {
        query("histogram_quantile(0.5, sum(rate(probe_http_ttfb_seconds{job=\"native\"}[1m])))")
    })
    .await
    .expect("native histogram quantile");
    assert!((0.019..0.03).contains(&native), "native p50 {native}");
    assert!(
        query("count(probe_http_ttfb_seconds_bucket{job=\"native\"})")
            .await
            .is_none(),
        "the native scrape should carry no classic buckets"
    );
}

fn http_catalog() -> Vec<&'static sloprobe::outcome::Measure> {
    sloprobe::probe::measures_of(sloprobe::assembly::kind("http").expect("http kind"))
}

fn http_plan(probes: usize, thresholds_each: usize) -> Plan {
    let mut plan = Plan::default();
    plan.add_kind("http", &http_catalog());
    for i in 0..probes {
        let thresholds = (0..thresholds_each)
            .map(|j| Watch {
                // Not a catalog key: the verdicts are counted, nothing else recorded.
                key: "budgeted",
                value: 0.1 + j as f64 / 1000.0,
                unit: Unit::Seconds,
            })
            .collect();
        let p = ProbePlan {
            kind: "http",
            thresholds,
            ..Default::default()
        };
        plan.probes.insert(format!("p{i}"), p);
    }
    plan
}

/// A reload that watches more thresholds than the counters were sized for rebuilds
/// telemetry rather than overflow.
#[test]
fn more_thresholds_than_sized_for_do_not_fit() {
    let t = Telemetry::new("l", http_plan(10, 1), None).expect("telemetry");
    assert!(t.fits(&http_plan(10, 100)), "1,000 thresholds is the floor");
    assert!(!t.fits(&http_plan(10, 101)));
    // 6 phases × 2 connection variants a probe: the phase table's floor holds 166.
    assert!(t.fits(&http_plan(160, 1)));
    assert!(!t.fits(&http_plan(170, 1)), "more probes than sized for");
}

/// The series tables are sized to what a probe produces. With every probe producing
/// all of it (a success and two kinds of failure, each skip reason, a good and a bad
/// verdict, and each measure of its kind in as many attribute variants as it is sized
/// for), nothing lands in the overflow series.
#[test]
fn per_probe_series_fit_their_tables() {
    // Reuse-connection probes, then fresh ones (`probe.connection` fixed): smaller
    // tables, and still nothing overflows.
    series_fit(&[]);
    series_fit(&["probe.connection"]);
}

fn series_fit(single_valued: &'static [&'static str]) {
    let n = 2_500; // past the 2,000-series floor, so the sizing decides
    let mut plan = http_plan(n, 1);
    for p in plan.probes.values_mut() {
        p.single_valued = single_valued;
    }
    let t = Telemetry::new("l", plan, None).expect("telemetry");
    let outcome = |probe: &str, error: Option<ErrorType>, measurements, labels| Outcome {
        probe: probe.to_string(),
        kind: "http",
        started_at: SystemTime::now(),
        error: error.map(|e| ProbeError::new(e, "test")),
        measurements,
        samples: Vec::new(),
        labels,
        details: Vec::new(),
        breaches: Vec::new(),
        retry_after: None,
        skipped: None,
        steps: Vec::new(),
        screenshot: None,
        trace: sloprobe::trace::TraceContext::NONE,
        evidence: Vec::new(),
    };
    for i in 0..n {
        let name = format!("p{i}");
        for (error, value) in [
            (None, 0.05),
            (Some(ErrorType::Timeout), 0.2),
            (Some(ErrorType::HttpStatus), 0.3),
        ] {
            t.record(&outcome(&name, error, vec![("budgeted", value)], Vec::new()));
        }
        for m in http_catalog() {
            let fixed = m.labels.iter().all(|l| single_valued.contains(l));
            for variant in ["a", "b"].into_iter().take(if fixed { 1 } else { 2 }) {
                let labels = m.labels.iter().map(|l| (*l, variant.into())).collect();
                t.record(&outcome(&name, None, vec![(m.key, 1.0)], labels));
            }
        }
        for reason in ["overlap", "missed", "retry_after"] {
            t.record_skipped(&name, "http", reason, 1);
        }
    }
    let mut text = String::new();
    t.prometheus_text(&mut |chunk| text.push_str(&chunk)).expect("encode");
    let overflowed: Vec<&str> = text.lines().filter(|l| l.contains("overflow")).collect();
    assert!(overflowed.is_empty(), "overflowed: {overflowed:?}");
    let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("probe_runs_total{"), n * 3);
    assert_eq!(count("probe_runs_skipped_total{"), n * 3);
    assert_eq!(count("probe_threshold_runs_total{"), n * 2);
    assert_eq!(count("probe_success{"), n);
    let connections = if single_valued.is_empty() { 2 } else { 1 };
    assert_eq!(count("probe_http_phase_duration_seconds_count{"), n * 6 * connections);
    assert_eq!(count("probe_http_redirects{"), n);
}

/// One metric name is one instrument: kinds that share a metric must agree on its
/// unit and instrument, or the first kind registered would silently decide for both.
#[test]
fn shared_metric_names_agree_across_kinds() {
    let mut seen: HashMap<&str, (sloprobe::outcome::Unit, sloprobe::outcome::Instrument, &str)> = HashMap::new();
    let kinds = sloprobe::assembly::KINDS
        .iter()
        .map(|k| (k.name, sloprobe::probe::measures_of(k)))
        .chain([("rum", sloprobe::rum::MEASURES.iter().collect::<Vec<_>>())]);
    for (kind, measures) in kinds {
        for m in measures {
            if let Some((unit, instrument, first)) = seen.get(m.metric) {
                assert_eq!(
                    (*unit, *instrument),
                    (m.unit, m.instrument),
                    "{} differs between kinds {first} and {}",
                    m.metric,
                    kind
                );
            } else {
                seen.insert(m.metric, (m.unit, m.instrument, kind));
            }
        }
    }
}

/// A reload that changes a probe's kind retires the old kind's series: /metrics serves
/// only what the running config produces.
#[test]
fn a_probe_whose_kind_changed_loses_its_old_series() {
    let plan_of = |kind: &'static str| {
        let mut plan = Plan::default();
        let k = sloprobe::assembly::kind(kind).unwrap();
        plan.add_kind(kind, &sloprobe::probe::measures_of(k));
        plan.probes.insert(
            "p".into(),
            ProbePlan {
                kind,
                ..Default::default()
            },
        );
        plan
    };
    let run = |kind: &'static str| Outcome::measured("p", kind, vec![("total", 0.1)]);
    let t = Telemetry::new("l", plan_of("http"), None).unwrap();
    t.record(&run("http"));
    t.config_loaded(plan_of("websocket"), true);
    t.record(&run("websocket"));
    let mut text = String::new();
    t.prometheus_text(&mut |c| text.push_str(&c)).unwrap();
    assert!(text.contains("probe_kind=\"websocket\""), "{text}");
    assert!(
        !text.contains("probe_kind=\"http\""),
        "the old kind's series are still served:\n{text}"
    );
}

/// A browser probe's `script_metrics` reach /metrics under their units' instruments (0.1.0
/// recorded them in the outcome only: no instrument was ever made for them), and a reload
/// that adds one rebuilds telemetry rather than dropping it.
#[test]
fn script_metrics_reach_metrics() {
    let toml = "[[probe]]\nname = \"p\"\nkind = \"browser\"\nurl = \"http://127.0.0.1:9/\"\nevery = \"1m\"\ntimeout = \"10s\"\nmetrics_script = \"m.js\"\nscript_metrics = { first_frame = \"ms\", hero = \"bytes\", tiles = \"count\" }\n";
    let dir = write_files(&[
        ("sloprobe.toml", toml),
        ("m.js", "return {first_frame: 120, hero: 2048, tiles: 7};"),
    ]);
    let cfg = sloprobe::assembly::Config::load(&dir.path().join("sloprobe.toml")).unwrap();
    let probes = sloprobe::probe::build_all(&cfg.probes, &sloprobe::probe::BuildContext::new()).unwrap();
    let plan = sloprobe::daemon::telemetry_plan(&probes, &[]);
    let t = Telemetry::new("l", plan, None).unwrap();
    t.record(&Outcome::measured(
        "p",
        "browser",
        vec![("total", 1.0), ("first_frame", 0.12), ("hero", 2048.0), ("tiles", 7.0)],
    ));
    let mut text = String::new();
    t.prometheus_text(&mut |c| text.push_str(&c)).unwrap();
    let value = |metric: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(metric) && l.contains(&format!("name=\"{name}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(
        value("probe_browser_script_duration_seconds_sum", "first_frame"),
        Some(0.12),
        "{text}"
    );
    assert_eq!(value("probe_browser_script_size_bytes", "hero"), Some(2048.0), "{text}");
    assert_eq!(value("probe_browser_script_value", "tiles"), Some(7.0), "{text}");

    // Telemetry made for a plan without them does not fit a plan with them.
    let bare = Telemetry::new("l", Plan::default(), None).unwrap();
    assert!(!bare.fits(&sloprobe::daemon::telemetry_plan(&probes, &[])));
}

/// Field and lab share the `browser.web_vital.*` histograms, not their room: a beacon
/// flood with every attribute combination on every route fills the field's allotment, the
/// rest folds into the route "other" (counted), and a browser probe's lab series still get
/// their own series, never the SDK's overflow one. (Before, field combinations took the
/// whole table and a new lab series went to `otel_metric_overflow`.)
#[test]
fn field_beacons_cannot_crowd_out_lab_series() {
    let routes = 200;
    let mut plan = Plan::default();
    let browser = sloprobe::assembly::kind("browser").unwrap();
    plan.add_kind("browser", &sloprobe::probe::measures_of(browser));
    plan.probes.insert(
        "lab".into(),
        ProbePlan {
            kind: "browser",
            ..Default::default()
        },
    );
    plan.field_routes = routes;
    plan.field_measures = sloprobe::rum::MEASURES.iter().collect();
    plan.add_kind("rum", &plan.field_measures.clone());
    let t = Telemetry::new("l", plan, None).unwrap();
    let lcp = sloprobe::rum::MEASURES.iter().find(|m| m.key == "lcp").unwrap();
    let names: Vec<std::sync::Arc<str>> = (0..=routes).map(|i| format!("/r{i}").into()).collect();
    let mut sent = 0;
    for route in &names {
        for rating in ["good", "needs-improvement", "poor"] {
            for nav in [
                "navigate",
                "reload",
                "back-forward",
                "back-forward-cache",
                "prerender",
                "restore",
                "other",
            ] {
                for device in ["mobile", "tablet", "desktop"] {
                    for verdict in ["good", "bad"] {
                        t.record_field(&sloprobe::outcome::FieldVital {
                            measure: lcp,
                            value: 1.0,
                            route: route.clone(),
                            attrs: [
                                ("browser.web_vital.rating", rating),
                                ("browser.web_vital.navigation_type", nav),
                                ("rum.device.class", device),
                                ("budget.verdict", verdict),
                            ],
                            attr_count: 4,
                            thresholds: &[],
                        });
                        sent += 1;
                    }
                }
            }
        }
    }
    t.record(&Outcome::measured("lab", "browser", vec![("total", 2.0), ("lcp", 1.5)]));
    let mut text = String::new();
    t.prometheus_text(&mut |c| text.push_str(&c)).unwrap();
    let lab: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("browser_web_vital_lcp_seconds_count") && l.contains("probe_name=\"lab\""))
        .collect();
    assert_eq!(lab.len(), 1, "the lab series: {lab:?}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("browser_web_vital_lcp") && l.contains("otel_metric_overflow")),
        "something went to the overflow series"
    );
    let field_series = text
        .lines()
        .filter(|l| l.starts_with("browser_web_vital_lcp_seconds_count") && l.contains("http_route="))
        .count();
    let share = (routes + 1) * 12;
    assert!(field_series <= share, "{field_series} field series, allotment {share}");
    let folded: f64 = text
        .lines()
        .filter(|l| l.starts_with("rum_vitals_total") && l.contains("outcome=\"folded\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(folded as usize, sent - (share - 1), "{sent} sent");
}
