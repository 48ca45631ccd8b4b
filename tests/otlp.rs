//! OTLP push into real receivers: rotel (a real collector) over gRPC and HTTP/protobuf,
//! and an in-process HTTP/protobuf receiver that decodes the payload for exact checks.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;

/// rotel's collector binary, installed by scripts/test.sh into .venv-test.
fn rotel() -> PathBuf {
    if let Some(p) = std::env::var_os("ROTEL_AGENT") {
        return PathBuf::from(p);
    }
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-test/lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path().join("site-packages/rotel/rotel-agent"))))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "rotel-agent not found under {}: run scripts/test.sh, which installs it",
                lib.display()
            )
        })
}

fn start_rotel(grpc: u16, http: u16, log: &std::path::Path) -> Child {
    start_rotel_logging(grpc, http, log, "metrics")
}

/// rotel logging what it receives of one signal (`metrics`, `traces`) in detail.
fn start_rotel_logging(grpc: u16, http: u16, log: &std::path::Path, signal: &str) -> Child {
    Child(
        Command::new(rotel())
            .args([
                "start",
                "--exporter",
                "blackhole",
                "--debug-log",
                signal,
                "--debug-log-verbosity",
                "detailed",
            ])
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn daemon_config(listen: u16, target: &str, endpoint: &str, protocol: &str, probes: usize) -> String {
    let mut s = format!(
        "location = \"otlp-lab\"\n[server]\nlisten = \"127.0.0.1:{listen}\"\n[export.otlp]\nendpoint = \"{endpoint}\"\nprotocol = \"{protocol}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n"
    );
    for i in 0..probes {
        s.push_str(&format!(
            "[[probe]]\nname = \"otlp-{i}\"\nkind = \"http\"\nurl = \"{target}/\"\nevery = \"1s\"\n[probe.budget]\nttfb = \"123ms\"\n"
        ));
    }
    s
}

fn start_daemon(cfg: &std::path::Path, log: &std::path::Path) -> Child {
    Child(
        Command::new(bin())
            .args(["run", "-c"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn sigterm_and_wait(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_for_text(path: &std::path::Path, needle: &str, secs: u64) -> bool {
    eventually((secs * 5) as u32, Duration::from_millis(200), || async {
        std::fs::read_to_string(path)
            .ok()
            .filter(|t| t.contains(needle))
            .map(|_| ())
    })
    .await
    .is_some()
}

#[tokio::test]
async fn rotel_receives_over_grpc_and_http_protobuf() {
    let t = plain_target().await;
    for protocol in ["grpc", "http/protobuf"] {
        let (grpc, http) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let rotel_log = dir.path().join("rotel.log");
        let _rotel = start_rotel(grpc, http, &rotel_log);
        let endpoint = if protocol == "grpc" {
            format!("http://127.0.0.1:{grpc}")
        } else {
            format!("http://127.0.0.1:{http}")
        };
        let cfg = dir.path().join("sloprobe.toml");
        std::fs::write(
            &cfg,
            daemon_config(free_port(), &format!("http://{}", t.addr), &endpoint, protocol, 1),
        )
        .unwrap();
        let mut daemon = start_daemon(&cfg, &dir.path().join("daemon.log"));
        assert!(
            wait_for_text(&rotel_log, "Name: probe.http.ttfb", 20).await,
            "{protocol}: nothing arrived"
        );
        assert!(sigterm_and_wait(&mut daemon).success());
        let text = std::fs::read_to_string(&rotel_log).unwrap();
        for needle in [
            "Name: probe.http.ttfb",
            "Name: probe.http.phase.duration",
            "Name: http.client.request.duration",
            "Name: probe.runs",
            "Unit: s",
            "Name: probe.threshold.runs",
            "threshold: Str(0.123)",
            "http.response.status_code: Int(200)",
            "server.port: Int(",
            "server.address: Str(127.0.0.1)",
            "http.request.method: Str(GET)",
            "Name: sloprobe.build.info",
            "revision: Str(",
            "probe.name: Str(otlp-0)",
            "probe.location: Str(otlp-lab)",
            "service.name: Str(sloprobe)",
            "user_agent.synthetic.type: Str(test)",
            "service.instance.id: Str(",
            "host.name: Str(",
        ] {
            assert!(text.contains(needle), "{protocol}: {needle} missing");
        }
    }
}

#[tokio::test]
async fn collector_down_at_start_then_up() {
    let t = plain_target().await;
    let (grpc, http, listen) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sloprobe.toml");
    // 200 probes make each export ~1 MB, so a queue of failed batches would show in RSS.
    std::fs::write(
        &cfg,
        daemon_config(
            listen,
            &format!("http://{}", t.addr),
            &format!("http://127.0.0.1:{grpc}"),
            "grpc",
            200,
        ),
    )
    .unwrap();
    let daemon_log = dir.path().join("daemon.log");
    let mut daemon = start_daemon(&cfg, &daemon_log);
    let rss = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap()
    };
    // Anchored to the daemon's own count of failed exports, not to sleeps: RSS after the
    // 3rd failure and after the 15th. Twelve ~1 MB batches kept would be ~12 MB more.
    let failures = |n: f64| {
        let url = format!("http://127.0.0.1:{listen}/metrics");
        async move {
            eventually(600, Duration::from_millis(100), || async {
                let (_, text) = http_get(&url).await?;
                sample(&text, "sloprobe_otlp_exports_total", &["outcome=\"failure\""]).filter(|f| *f >= n)
            })
            .await
            .expect("the exporter never counted its failures")
        }
    };
    failures(3.0).await;
    let before = rss(daemon.0.id());
    failures(15.0).await;
    let after = rss(daemon.0.id());
    assert!(
        after < before + 6 * 1024,
        "RSS grew from {before} kB to {after} kB over 12 failed exports"
    );
    let log = std::fs::read_to_string(&daemon_log).unwrap();
    // Fifteen failed exports, one warning (rate-limited to one a minute).
    assert_eq!(log.matches("OTLP export failed").count(), 1, "{log}");

    let rotel_log = dir.path().join("rotel.log");
    let _rotel = start_rotel(grpc, http, &rotel_log);
    assert!(
        wait_for_text(&rotel_log, "Name: probe.runs", 20).await,
        "export never resumed"
    );
    assert!(wait_for_text(&daemon_log, "OTLP export resumed", 10).await);
    assert!(daemon.0.try_wait().unwrap().is_none(), "daemon died");
    assert!(sigterm_and_wait(&mut daemon).success());
}

type Received = Arc<Mutex<Vec<ExportMetricsServiceRequest>>>;

async fn receiver() -> (u16, Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::default();
    let state = got.clone();
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post(move |body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let req = ExportMetricsServiceRequest::decode(body).expect("valid OTLP protobuf");
                state.lock().unwrap().push(req);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, got, task)
}

fn attr(attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(n) => Some(format!("int:{n}")),
            other => Some(format!("{other:?}")),
        })
}

#[tokio::test]
async fn exact_names_units_buckets_and_attributes() {
    let t = plain_target().await;
    let (port, got, _task) = receiver().await;
    let toml = format!(
        "location = \"exact\"\n[export.otlp]\nendpoint = \"http://127.0.0.1:{port}\"\nprotocol = \"http/protobuf\"\ninterval = \"60s\"\n[[probe]]\nname = \"exact\"\nkind = \"http\"\nurl = \"{}\"\nevery = \"30s\"\n[probe.budget]\nttfb = \"321ms\"\n",
        t.url("/delay/5")
    );
    let dir = write_files(&[("sloprobe.toml", &toml)]);
    let cfg = sloprobe::assembly::Config::load(&dir.path().join("sloprobe.toml")).unwrap();
    let probes = sloprobe::probe::build_all(&cfg.probes, &sloprobe::probe::BuildContext::new()).unwrap();
    let plan = sloprobe::daemon::telemetry_plan(&probes, &[]);
    let telemetry = sloprobe::telemetry::Telemetry::new(&cfg.location, plan, cfg.otlp.as_ref()).unwrap();
    let o = probes[0].execute().await;
    assert!(o.success());
    telemetry.record(&o);
    // The 60 s interval has not passed: only the shutdown flush can deliver this.
    telemetry.shutdown(Duration::from_secs(5)).await;

    let reqs = got.lock().unwrap();
    assert_eq!(reqs.len(), 1, "one flush on shutdown");
    let rm = &reqs[0].resource_metrics[0];
    let res = &rm.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(res, "service.name").as_deref(), Some("sloprobe"));
    assert_eq!(attr(res, "probe.location").as_deref(), Some("exact"));
    assert_eq!(attr(res, "user_agent.synthetic.type").as_deref(), Some("test"));
    assert!(attr(res, "service.version").is_some() && attr(res, "service.instance.id").is_some());
    let metrics: Vec<_> = rm.scope_metrics.iter().flat_map(|s| &s.metrics).collect();
    let find = |name: &str| {
        *metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };

    let ttfb = find("probe.http.ttfb");
    assert_eq!(ttfb.unit, "s");
    let Some(Data::Histogram(h)) = &ttfb.data else {
        panic!("ttfb is not a histogram")
    };
    let dp = &h.data_points[0];
    // Fixed edges (the Prometheus client defaults), whatever the budgets.
    assert_eq!(dp.explicit_bounds, sloprobe::telemetry::buckets::SECONDS);
    assert_eq!(dp.count, 1);
    assert_eq!(attr(&dp.attributes, "probe.name").as_deref(), Some("exact"));
    assert_eq!(attr(&dp.attributes, "probe.kind").as_deref(), Some("http"));
    assert_eq!(attr(&dp.attributes, "probe.location").as_deref(), Some("exact"));
    assert!(dp.sum.unwrap() >= 0.005);

    let phases = find("probe.http.phase.duration");
    let Some(Data::Histogram(h)) = &phases.data else {
        panic!()
    };
    let mut seen: Vec<String> = h
        .data_points
        .iter()
        .filter_map(|d| attr(&d.attributes, "phase"))
        .collect();
    seen.sort();
    assert_eq!(seen, ["connect", "dns", "send", "tls", "transfer", "wait"]);

    let semconv = find("http.client.request.duration");
    let Some(Data::Histogram(h)) = &semconv.data else {
        panic!()
    };
    let dp = &h.data_points[0];
    assert_eq!(attr(&dp.attributes, "http.request.method").as_deref(), Some("GET"));
    // Semantic conventions: the status code and port are integers; no error.type on a 200.
    assert_eq!(
        attr(&dp.attributes, "http.response.status_code").as_deref(),
        Some("int:200")
    );
    assert_eq!(attr(&dp.attributes, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(&dp.attributes, "server.port"),
        Some(format!("int:{}", t.addr.port()))
    );
    assert_eq!(attr(&dp.attributes, "url.scheme").as_deref(), Some("http"));
    assert_eq!(attr(&dp.attributes, "network.protocol.version").as_deref(), Some("1.1"));
    assert_eq!(attr(&dp.attributes, "error.type"), None);

    // The budget is an exact pair of counters on this probe.
    let thresholds = find("probe.threshold.runs");
    let Some(Data::Sum(sum)) = &thresholds.data else {
        panic!("probe.threshold.runs is not a sum")
    };
    let good = sum
        .data_points
        .iter()
        .find(|d| attr(&d.attributes, "verdict").as_deref() == Some("good"))
        .expect("a good verdict");
    assert_eq!(attr(&good.attributes, "threshold").as_deref(), Some("0.321"));
    assert_eq!(attr(&good.attributes, "measurement").as_deref(), Some("ttfb"));
    assert_eq!(thresholds.unit, "{run}");

    let body = find("http.client.response.body.size");
    assert_eq!(body.unit, "By");
    let runs = find("probe.runs");
    let Some(Data::Sum(s)) = &runs.data else {
        panic!("probe.runs is not a sum")
    };
    assert!(s.is_monotonic);
    assert_eq!(
        attr(&s.data_points[0].attributes, "outcome").as_deref(),
        Some("success")
    );
}

/// Push is cut into requests of about 256 KiB, each complete OTLP (resource and scope
/// repeated): 2,000 probes' series arrive whole, every point once. After a reload that
/// drops probes, their series are no longer pushed (they linger in the SDK).
#[tokio::test]
async fn pushed_in_pieces_and_removed_probes_stop_being_pushed() {
    let t = plain_target().await;
    let (port, got, _task) = receiver().await;
    let toml = |names: &[String]| {
        let mut s = format!(
            "location = \"pieces\"\n[export.otlp]\nendpoint = \"http://127.0.0.1:{port}\"\nprotocol = \"http/protobuf\"\ninterval = \"60s\"\n"
        );
        for n in names {
            s.push_str(&format!(
                "[[probe]]\nname = \"{n}\"\nkind = \"http\"\nurl = \"{}\"\nevery = \"30s\"\n",
                t.url("/")
            ));
        }
        s
    };
    let plan_of = |names: &[String]| {
        let dir = write_files(&[("sloprobe.toml", &toml(names))]);
        let cfg = sloprobe::assembly::Config::load(&dir.path().join("sloprobe.toml")).unwrap();
        let probes = sloprobe::probe::build_all(&cfg.probes, &sloprobe::probe::BuildContext::new()).unwrap();
        (cfg, probes)
    };
    let all: Vec<String> = (0..2000).map(|i| format!("p{i}")).collect();
    let (cfg, probes) = plan_of(&all);
    let plan = sloprobe::daemon::telemetry_plan(&probes, &[]);
    let telemetry = sloprobe::telemetry::Telemetry::new(&cfg.location, plan, cfg.otlp.as_ref()).unwrap();
    let one = probes[0].execute().await;
    assert!(one.success());
    for name in &all {
        let mut o = one.clone();
        o.probe = name.clone();
        telemetry.record(&o);
    }
    // A reload keeps the first 500.
    let kept: Vec<String> = all[..500].to_vec();
    let (_, fewer) = plan_of(&kept);
    telemetry.config_loaded(sloprobe::daemon::telemetry_plan(&fewer, &[]), true);
    telemetry.shutdown(Duration::from_secs(10)).await;

    let reqs = got.lock().unwrap();
    assert!(reqs.len() > 1, "one request held everything: {}", reqs.len());
    let mut ttfb_probes = std::collections::BTreeSet::new();
    let mut ttfb_points = 0;
    for r in reqs.iter() {
        assert!(r.encoded_len() < 320 * 1024, "a request of {} bytes", r.encoded_len());
        let rm = &r.resource_metrics[0];
        assert_eq!(
            attr(&rm.resource.as_ref().unwrap().attributes, "probe.location").as_deref(),
            Some("pieces")
        );
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            if let Some(Data::Histogram(h)) = &m.data {
                for dp in &h.data_points {
                    let name = attr(&dp.attributes, "probe.name").unwrap_or_default();
                    assert!(
                        kept.contains(&name) || name.is_empty(),
                        "{} of removed probe {name}",
                        m.name
                    );
                    if m.name == "probe.http.ttfb" {
                        ttfb_points += 1;
                        ttfb_probes.insert(name);
                    }
                }
            }
        }
    }
    assert_eq!(
        (ttfb_points, ttfb_probes.len()),
        (500, 500),
        "each kept probe's ttfb once"
    );
}

/// The RUM collector over OTLP: field vitals on the browser vitals' instrument with their
/// route, rating, navigation and device attributes, and no synthetic marker on the data
/// points or the resource. A vital still waiting for its quiet period when the daemon is
/// stopped is recorded and exported by the shutdown flush.
#[tokio::test]
async fn field_vitals_reach_otlp_and_pending_ones_survive_shutdown() {
    let (port, got, _task) = receiver().await;
    let rum = free_port();
    let toml = format!(
        "location = \"field\"\n[server]\nlisten = \"127.0.0.1:{}\"\n[export.otlp]\nendpoint = \"http://127.0.0.1:{port}\"\nprotocol = \"http/protobuf\"\ninterval = \"60s\"\n[rum]\nlisten = \"127.0.0.1:{rum}\"\nallowed_origins = [\"https://app.example.com\"]\nflush_after = \"30s\"\n[[rum.route]]\npattern = \"/orders/:id\"\n[rum.budget]\nlcp = \"2.5s\"\n",
        free_port()
    );
    let dir = write_files(&[("sloprobe.toml", &toml)]);
    let mut daemon = start_daemon(&dir.path().join("sloprobe.toml"), &dir.path().join("daemon.log"));
    let up = eventually(50, Duration::from_millis(100), || async {
        http_get(&format!("http://127.0.0.1:{rum}/healthz")).await
    })
    .await;
    assert!(up.is_some(), "collector never listened");
    let body = r#"[{"name":"LCP","value":3100,"id":"v5-1","navigationType":"reload","url":"https://app.example.com/orders/9","pageId":"p"}]"#;
    let status = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", rum)).unwrap();
        write!(
            tcp,
            "POST /rum HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\nUser-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        let _ = tcp.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 204"), "{status}");
    // Quiet period 30 s, export interval 60 s: only the shutdown path can deliver it. (The
    // wait runs off this runtime, whose thread also serves the receiver.)
    let stopped = tokio::task::spawn_blocking(move || sigterm_and_wait(&mut daemon).success())
        .await
        .unwrap();
    assert!(stopped);

    let reqs = got.lock().unwrap();
    let rm = reqs
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .last()
        .expect("an export on shutdown");
    let res = &rm.resource.as_ref().unwrap().attributes;
    assert_eq!(
        attr(res, "user_agent.synthetic.type"),
        None,
        "field data is not synthetic"
    );
    assert_eq!(attr(res, "probe.location").as_deref(), Some("field"));
    let metrics: Vec<_> = rm.scope_metrics.iter().flat_map(|s| &s.metrics).collect();
    let lcp = metrics
        .iter()
        .find(|m| m.name == "browser.web_vital.lcp")
        .expect("browser.web_vital.lcp exported");
    assert_eq!(lcp.unit, "s");
    let Some(Data::Histogram(h)) = &lcp.data else {
        panic!("lcp is not a histogram")
    };
    let dp = &h.data_points[0];
    assert_eq!((dp.count, dp.sum), (1, Some(3.1)));
    for (key, value) in [
        ("http.route", "/orders/:id"),
        ("browser.web_vital.rating", "needs-improvement"),
        ("browser.web_vital.navigation_type", "reload"),
        ("rum.device.class", "mobile"),
        ("budget.verdict", "bad"),
        ("probe.location", "field"),
    ] {
        assert_eq!(attr(&dp.attributes, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(attr(&dp.attributes, "user_agent.synthetic.type"), None);
    assert!(metrics.iter().any(|m| m.name == "rum.beacons"));
    assert!(metrics.iter().any(|m| m.name == "rum.threshold.page_views"));
}

/// The operator's `OTEL_RESOURCE_ATTRIBUTES` wins over the daemon's own defaults (it can
/// pin `host.name` and `service.instance.id`), while what the config states stays; and
/// the process metrics reach OTLP under their semantic-convention names, without showing
/// twice on `/metrics`.
#[tokio::test]
async fn resource_from_the_environment_and_process_metrics_over_otlp() {
    let t = plain_target().await;
    let (port, got, _task) = receiver().await;
    let listen = free_port();
    let cfg = daemon_config(
        listen,
        &t.url(""),
        &format!("http://127.0.0.1:{port}"),
        "http/protobuf",
        1,
    );
    let dir = write_files(&[("sloprobe.toml", &cfg)]);
    let _daemon = Child(
        Command::new(bin())
            .args(["run", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .env(
                "OTEL_RESOURCE_ATTRIBUTES",
                "host.name=pinned-host,service.instance.id=pinned-id,deployment.environment.name=staging,probe.location=from-env",
            )
            .env_remove("OTEL_SERVICE_NAME")
            .env("SLOPROBE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while got.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let req = got
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("no OTLP export within 20 s");
    let rm = &req.resource_metrics[0];
    let res = &rm.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(res, "host.name").as_deref(), Some("pinned-host"));
    assert_eq!(attr(res, "service.instance.id").as_deref(), Some("pinned-id"));
    assert_eq!(attr(res, "deployment.environment.name").as_deref(), Some("staging"));
    // The config's `location` is stated, not a default: it stays.
    assert_eq!(attr(res, "probe.location").as_deref(), Some("otlp-lab"));
    assert_eq!(attr(res, "service.name").as_deref(), Some("sloprobe"));
    let metrics: Vec<_> = rm.scope_metrics.iter().flat_map(|s| &s.metrics).collect();
    for (name, unit) in [
        ("process.cpu.time", "s"),
        ("process.memory.usage", "By"),
        ("process.open_file_descriptor.count", "{file_descriptor}"),
    ] {
        let m = metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} not exported"));
        assert_eq!(m.unit, unit, "{name}");
    }
    let (_, text) = http_get(&format!("http://127.0.0.1:{listen}/metrics")).await.unwrap();
    assert!(
        text.contains("\nprocess_cpu_seconds_total "),
        "client-library names stay"
    );
    assert!(
        !text.contains("process_cpu_time"),
        "OTLP's process metrics leaked into /metrics"
    );
    assert!(
        text.contains("host_name=\"pinned-host\""),
        "target_info should carry the same resource"
    );
}

/// nginx (Debian) terminating TLS in front of rotel: one port with server TLS, one asking
/// for a client certificate signed by the test CA; gRPC and HTTP/protobuf both proxied.
/// A process and its children (nginx's workers), killed as a group when dropped: killing
/// the master alone leaves the workers running.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test started.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn start_nginx(dir: &std::path::Path, tls: u16, mtls: u16, grpc: u16, http: u16) -> Group {
    let d = dir.display();
    let server = |port: u16, verify: &str| {
        format!(
            "server {{ listen 127.0.0.1:{port} ssl http2; ssl_certificate {d}/server.pem; ssl_certificate_key {d}/server.key; {verify}
  location /opentelemetry.proto.collector.metrics.v1.MetricsService/ {{ grpc_pass grpc://127.0.0.1:{grpc}; }}
  location /v1/metrics {{ proxy_pass http://127.0.0.1:{http}; }} }}\n"
        )
    };
    let conf = format!(
        "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx-error.log;\nevents {{}}\nhttp {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n{}{}}}\n",
        server(tls, ""),
        server(
            mtls,
            &format!("ssl_client_certificate {d}/ca.pem; ssl_verify_client on;")
        )
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    use std::os::unix::process::CommandExt as _;
    Group(
        Command::new(tool("nginx"))
            .args(["-c"])
            .arg(dir.join("nginx.conf"))
            .args(["-p"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    )
}

/// OTLP over TLS to a real collector: gRPC with the test CA, HTTP/protobuf with mutual TLS
/// and gzip, gRPC with mutual TLS configured only through the standard
/// `OTEL_EXPORTER_OTLP_*` variables, and a collector whose certificate the configured CA
/// did not sign: a clear error in the log, and probing goes on.
#[tokio::test]
async fn otlp_over_tls_and_mutual_tls_to_a_real_collector() {
    let t = plain_target().await;
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path(), "");
    write_pki(dir.path(), "other-");
    let (grpc, http, tls, mtls) = (free_port(), free_port(), free_port(), free_port());
    let rotel_log = dir.path().join("rotel.log");
    let _rotel = start_rotel(grpc, http, &rotel_log);
    let _nginx = start_nginx(dir.path(), tls, mtls, grpc, http);
    for port in [tls, mtls] {
        let up = eventually(100, Duration::from_millis(100), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()
        })
        .await;
        assert!(up.is_some(), "nginx did not listen on {port}");
    }
    let d = dir.path().display().to_string();
    let target = format!("http://{}", t.addr);
    let config = |location: &str, endpoint: String, protocol: &str, tls_keys: &str| {
        daemon_config(free_port(), &target, &endpoint, protocol, 1)
            .replace("location = \"otlp-lab\"", &format!("location = \"{location}\""))
            .replace("[export.otlp]\n", &format!("[export.otlp]\n{tls_keys}"))
    };
    let cases = [
        (
            "tls-grpc",
            config(
                "tls-grpc",
                format!("https://localhost:{tls}"),
                "grpc",
                &format!("ca_file = \"{d}/ca.pem\"\n"),
            ),
            Vec::<(&str, String)>::new(),
        ),
        (
            "mtls-http",
            config(
                "mtls-http",
                format!("https://127.0.0.1:{mtls}"),
                "http/protobuf",
                &format!(
                    "ca_file = \"{d}/ca.pem\"\nclient_cert_file = \"{d}/client.pem\"\nclient_key_file = \"{d}/client.key\"\ncompression = \"gzip\"\n"
                ),
            ),
            vec![],
        ),
        (
            "mtls-env",
            config("mtls-env", format!("https://localhost:{mtls}"), "grpc", ""),
            vec![
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", format!("{d}/ca.pem")),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", format!("{d}/client.pem")),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", format!("{d}/client.key")),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_string()),
            ],
        ),
    ];
    let mut daemons = Vec::new();
    for (name, cfg, env) in &cases {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, cfg).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["run", "-c"]).arg(&path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        daemons.push(Child(cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap()));
    }
    for (name, _, _) in &cases {
        assert!(
            wait_for_text(&rotel_log, &format!("probe.location: Str({name})"), 30).await,
            "{name}: nothing arrived through TLS:\n{}",
            std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default()
        );
    }

    // The collector's certificate is not signed by the configured CA.
    let listen = free_port();
    let wrong = daemon_config(listen, &target, &format!("https://localhost:{tls}"), "grpc", 1).replace(
        "[export.otlp]\n",
        &format!("[export.otlp]\nca_file = \"{d}/other-ca.pem\"\n"),
    );
    let path = dir.path().join("wrong-ca.toml");
    std::fs::write(&path, wrong).unwrap();
    let log = dir.path().join("wrong-ca.log");
    let _wrong = start_daemon(&path, &log);
    assert!(
        wait_for_text(&log, "OTLP export failed", 30).await,
        "no export failure logged"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.to_ascii_lowercase().contains("certificate") || text.contains("UnknownIssuer"),
        "the failure does not say why: {text}"
    );
    let runs = eventually(50, Duration::from_millis(200), || async {
        let (_, m) = http_get(&format!("http://127.0.0.1:{listen}/metrics")).await?;
        (sample(&m, "probe_runs_total", &["outcome=\"success\""])? >= 2.0).then_some(())
    })
    .await;
    assert!(runs.is_some(), "probing stopped while the export failed");
}

/// `traces = true`: every run reaches the collector as a client span whose trace id is the
/// one on the pushed TTFB histogram's exemplar, its phases as children; rotel (a real
/// collector) takes the same spans over HTTP/protobuf.
#[tokio::test]
async fn runs_go_out_as_spans_and_histograms_carry_their_trace_id() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let t = plain_target().await;
    let spans: Arc<Mutex<Vec<ExportTraceServiceRequest>>> = Arc::default();
    let metrics: Received = Arc::default();
    let (s, m) = (spans.clone(), metrics.clone());
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let s = s.clone();
                async move {
                    s.lock()
                        .unwrap()
                        .push(ExportTraceServiceRequest::decode(body).expect("valid OTLP traces"));
                    ""
                }
            }),
        )
        .route(
            "/v1/metrics",
            axum::routing::post(move |body: axum::body::Bytes| {
                let m = m.clone();
                async move {
                    m.lock()
                        .unwrap()
                        .push(ExportMetricsServiceRequest::decode(body).expect("valid OTLP"));
                    ""
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sloprobe.toml");
    let config = daemon_config(
        free_port(),
        &t.url(""),
        &format!("http://127.0.0.1:{port}/v1/metrics"),
        "http/protobuf",
        1,
    )
    .replace("timeout = \"1s\"\n", "timeout = \"1s\"\ntraces = true\n");
    std::fs::write(&cfg, &config).unwrap();
    let mut daemon = start_daemon(&cfg, &dir.path().join("daemon.log"));
    let got = eventually(60, Duration::from_millis(250), || async {
        let all = spans.lock().unwrap().clone();
        let list: Vec<opentelemetry_proto::tonic::trace::v1::Span> = all
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .flat_map(|r| r.scope_spans.iter())
            .flat_map(|s| s.spans.clone())
            .collect();
        (list.iter().filter(|s| s.parent_span_id.is_empty()).count() >= 2).then_some(list)
    })
    .await
    .expect("no spans within 15 s");
    sigterm_and_wait(&mut daemon);
    let runs: Vec<_> = got.iter().filter(|s| s.parent_span_id.is_empty()).collect();
    for run in &runs {
        assert_eq!(run.name, "probe otlp-0");
        assert_eq!(run.kind, 3, "SPAN_KIND_CLIENT");
        assert_eq!(run.trace_id.len(), 16);
        assert_eq!(attr(&run.attributes, "probe.name").as_deref(), Some("otlp-0"));
        let children: Vec<_> = got.iter().filter(|c| c.parent_span_id == run.span_id).collect();
        let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"connect") && names.contains(&"wait"), "{names:?}");
        for c in children {
            assert_eq!(c.trace_id, run.trace_id);
            assert!(
                c.start_time_unix_nano >= run.start_time_unix_nano && c.end_time_unix_nano <= run.end_time_unix_nano
            );
        }
    }
    // The TTFB histogram's exemplar names one of those runs.
    let exemplar_traces: Vec<Vec<u8>> = metrics
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.resource_metrics.iter())
        .flat_map(|r| r.scope_metrics.iter())
        .flat_map(|s| s.metrics.iter())
        .filter(|m| m.name == "probe.http.ttfb")
        .filter_map(|m| match &m.data {
            Some(Data::Histogram(h)) => Some(h.data_points.clone()),
            _ => None,
        })
        .flatten()
        .flat_map(|p| p.exemplars)
        .map(|e| e.trace_id)
        .collect();
    assert!(!exemplar_traces.is_empty(), "no exemplar on the pushed TTFB histogram");
    let run_traces: Vec<Vec<u8>> = runs.iter().map(|r| r.trace_id.clone()).collect();
    assert!(
        exemplar_traces.iter().any(|t| run_traces.contains(t)),
        "no exemplar names a run that went out as a span"
    );

    // A real collector takes them.
    let (grpc, http) = (free_port(), free_port());
    let rotel_log = dir.path().join("rotel-traces.log");
    let _rotel = start_rotel_logging(grpc, http, &rotel_log, "traces");
    let config = daemon_config(
        free_port(),
        &t.url(""),
        &format!("http://127.0.0.1:{http}/v1/metrics"),
        "http/protobuf",
        1,
    )
    .replace("timeout = \"1s\"\n", "timeout = \"1s\"\ntraces = true\n");
    std::fs::write(&cfg, &config).unwrap();
    let _daemon = start_daemon(&cfg, &dir.path().join("daemon2.log"));
    assert!(
        wait_for_text(&rotel_log, "probe otlp-0", 30).await,
        "rotel logged no span: {}",
        std::fs::read_to_string(&rotel_log).unwrap_or_default()
    );
}
