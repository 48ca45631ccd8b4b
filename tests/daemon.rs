//! The daemon as deployed: scheduled runs, faults that never stop it, /metrics,
//! health endpoints, and a clean stop on SIGTERM. Plus a real Prometheus scraping it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn daemon_config(listen: u16, target: &str, refused: u16) -> String {
    format!(
        r#"location = "test-lab"
[server]
listen = "127.0.0.1:{listen}"

[[probe]]
name = "good"
kind = "http"
url = "{target}/delay/5"
every = "300ms"
timeout = "250ms"
[probe.budget]
ttfb = "123ms"

[[probe]]
name = "refused"
kind = "http"
url = "http://127.0.0.1:{refused}/"
every = "300ms"
timeout = "250ms"

[[probe]]
name = "hangs"
kind = "http"
url = "{target}/endless?interval=50"
every = "400ms"
timeout = "200ms"
"#
    )
}

#[tokio::test]
async fn daemon_keeps_probing_through_faults_and_stops_cleanly() {
    let t = plain_target().await;
    let port = free_port();
    let dir = write_files(&[(
        "sloprobe.toml",
        &daemon_config(port, &format!("http://{}", t.addr), refused_port()),
    )]);
    let mut child = start_daemon(&dir.path().join("sloprobe.toml"));
    let base = format!("http://127.0.0.1:{port}");

    let ready = eventually(50, Duration::from_millis(100), || async {
        http_get(&format!("{base}/readyz")).await.filter(|(s, _)| *s == 200)
    })
    .await;
    assert!(ready.is_some(), "daemon never became ready");
    assert_eq!(http_get(&format!("{base}/healthz")).await.unwrap().0, 200);

    // Several runs of each probe, the failing ones classified, the daemon still serving.
    let metrics = eventually(60, Duration::from_millis(100), || async {
        let (_, text) = http_get(&format!("{base}/metrics")).await?;
        let good = sample(
            &text,
            "probe_runs_total",
            &["probe_name=\"good\"", "outcome=\"success\""],
        )?;
        let refused = sample(&text, "probe_runs_total", &["error_type=\"connect_refused\""])?;
        let hangs = sample(
            &text,
            "probe_runs_total",
            &["probe_name=\"hangs\"", "error_type=\"timeout\""],
        )?;
        (good >= 4.0 && refused >= 4.0 && hangs >= 3.0).then_some(text)
    })
    .await
    .expect("runs did not accumulate");
    assert!(child.0.try_wait().unwrap().is_none(), "daemon died");

    // The budget is an exact pair of counters on this probe alone (not a bucket edge).
    assert!(
        sample(
            &metrics,
            "probe_threshold_runs_total",
            &[
                "probe_name=\"good\"",
                "measurement=\"ttfb\"",
                "threshold=\"0.123\"",
                "verdict=\"good\""
            ]
        )
        .unwrap_or(0.0)
            >= 4.0,
        "no exact ttfb threshold counter:\n{metrics}"
    );
    assert!(!metrics.contains("le=\"0.123\""), "a budget became a bucket edge");
    assert!(
        sample(
            &metrics,
            "probe_http_phase_duration_seconds_count",
            &["phase=\"wait\"", "probe_name=\"good\""]
        )
        .unwrap()
            >= 4.0
    );
    assert!(
        sample(
            &metrics,
            "http_client_request_duration_seconds_count",
            &["http_response_status_code=\"200\""]
        )
        .unwrap()
            >= 4.0
    );
    assert_eq!(
        sample(&metrics, "probe_success", &["probe_name=\"refused\""]),
        Some(0.0)
    );
    assert_eq!(sample(&metrics, "probe_success", &["probe_name=\"good\""]), Some(1.0));
    // Scheduling stays tight: every run starts within 100 ms of its due time even here
    // (the daemon-wide histogram).
    let on_time = sample(&metrics, "sloprobe_schedule_lateness_seconds_bucket", &["le=\"0.1\""]).unwrap();
    let all = sample(&metrics, "sloprobe_schedule_lateness_seconds_count", &[]).unwrap();
    assert!(on_time >= all - 1.0, "late runs: {on_time} of {all} on time");

    // SIGTERM: in-flight runs finish or time out (≤ 250 ms here), then exit 0.
    let status = sigterm_and_wait(&mut child, Duration::from_secs(5)).await;
    assert!(status.success(), "exit status {status}");
}

/// Sends SIGTERM and waits (at most `limit`) for the daemon to exit.
async fn sigterm_and_wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            return s;
        }
        assert!(t0.elapsed() < limit, "daemon did not stop within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn real_prometheus_scrapes_the_daemon() {
    let t = plain_target().await;
    let port = free_port();
    let dir = write_files(&[(
        "sloprobe.toml",
        &daemon_config(port, &format!("http://{}", t.addr), refused_port()),
    )]);
    let _daemon = start_daemon(&dir.path().join("sloprobe.toml"));

    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sloprobe\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    );
    let (_prom, prom_port) = start_prometheus(dir.path(), &prom_cfg);

    let api = format!("http://127.0.0.1:{prom_port}/api/v1/query?query=");
    let query = |q: &str| format!("{api}{}", urlencode(q));
    // The scrape target is healthy and the ttfb histogram has series with our budget edge.
    let up = eventually(60, Duration::from_millis(500), || async {
        let (_, body) = http_get(&query("up{job=\"sloprobe\"}")).await?;
        body.contains("\"1\"]").then_some(body)
    })
    .await;
    assert!(up.is_some(), "prometheus never saw the daemon up");

    let ratio_q = "sum(probe_threshold_runs_total{probe_name=\"good\",measurement=\"ttfb\",threshold=\"0.123\",verdict=\"good\"}) / sum(probe_threshold_runs_total{probe_name=\"good\",measurement=\"ttfb\",threshold=\"0.123\"})";
    let body = eventually(60, Duration::from_millis(500), || async {
        let (_, body) = http_get(&query(ratio_q)).await?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let value = v["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok()?;
        Some(value)
    })
    .await
    .expect("ttfb compliance ratio never returned data");
    // Every run of `good` (5 ms of server time) is under the 123 ms budget.
    assert_eq!(body, 1.0);

    let q = "histogram_quantile(0.5, sum by (le) (probe_http_ttfb_seconds_bucket{probe_name=\"good\"}))";
    let (_, body) = http_get(&query(q)).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let p50: f64 = v["data"]["result"][0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(p50 > 0.004 && p50 <= 0.123, "p50 {p50}");

    let q = "sum(probe_runs_total{probe_name=\"refused\",error_type=\"connect_refused\"})";
    let (_, body) = http_get(&query(q)).await.unwrap();
    assert!(body.contains("\"result\":[{"), "{body}");
}

#[tokio::test]
async fn sighup_reloads_and_a_bad_config_keeps_the_running_one() {
    let t = plain_target().await;
    let port = free_port();
    let probe = |name: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://{}/\"\nevery = \"200ms\"\n",
            t.addr
        )
    };
    let head = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n");
    let dir = write_files(&[("sloprobe.toml", &format!("{head}{}", probe("before")))]);
    let cfg = dir.path().join("sloprobe.toml");
    let log = dir.path().join("daemon.log");
    let mut child = Child(
        Command::new(bin())
            .args(["run", "-c"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let runs = |name: &'static str| {
        let url = format!("{base}/metrics");
        async move {
            let (_, text) = http_get(&url).await?;
            sample(&text, "probe_runs_total", &[&format!("probe_name=\"{name}\"")]).filter(|v| *v >= 2.0)
        }
    };
    assert!(
        eventually(50, Duration::from_millis(100), || runs("before"))
            .await
            .is_some()
    );

    let hup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    std::fs::write(&cfg, format!("{head}{}", probe("after"))).unwrap();
    hup(child.0.id());
    assert!(
        eventually(50, Duration::from_millis(100), || runs("after"))
            .await
            .is_some(),
        "reload did not start the new probe"
    );
    let (_, text) = http_get(&format!("{base}/metrics")).await.unwrap();
    assert!(
        !text.contains("probe_name=\"before\""),
        "the removed probe is still exported"
    );

    // A broken file: logged with file:line, the running probes go on.
    std::fs::write(&cfg, format!("{head}{}bogus = 1\n", probe("broken"))).unwrap();
    hup(child.0.id());
    // Wait for the daemon to have read (and refused) the file, then for a run after it.
    let refused = eventually(100, Duration::from_millis(100), || async {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("reload failed"))
    })
    .await;
    assert!(refused.is_some(), "the failed reload was never logged");
    let (_, text) = http_get(&format!("{base}/metrics")).await.unwrap();
    let n1 = sample(&text, "probe_runs_total", &["probe_name=\"after\""]).unwrap();
    let more = eventually(100, Duration::from_millis(100), || async {
        let (_, text) = http_get(&format!("{base}/metrics")).await?;
        sample(&text, "probe_runs_total", &["probe_name=\"after\""]).filter(|n| *n > n1)
    })
    .await;
    assert!(more.is_some(), "probing stopped after a failed reload");
    assert!(child.0.try_wait().unwrap().is_none(), "daemon died on a bad reload");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("reload failed") && text.contains("sloprobe.toml:8:"),
        "{text}"
    );
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success());
}

/// 10 probes failing every 100 ms for 2 s are ~200 failed runs: the log gets one line per
/// probe when it starts failing, not one per run.
#[tokio::test]
async fn failing_probes_log_state_changes_not_every_run() {
    let port = free_port();
    let refused = refused_port();
    let mut text = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n");
    for i in 0..10 {
        text.push_str(&format!(
            "\n[[probe]]\nname = \"down-{i}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{refused}/\"\nevery = \"100ms\"\n"
        ));
    }
    let dir = write_files(&[("sloprobe.toml", &text)]);
    let log = dir.path().join("daemon.log");
    let child = Child(
        Command::new(bin())
            .args(["run", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .env("SLOPROBE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let runs = eventually(60, Duration::from_millis(100), || async {
        let (_, t) = http_get(&format!("http://127.0.0.1:{port}/metrics")).await?;
        let n: f64 = t
            .lines()
            .filter(|l| l.starts_with("probe_runs_total") && l.contains("connect_refused"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (n >= 150.0).then_some(n)
    })
    .await
    .expect("failed runs did not accumulate");
    drop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    let failed_lines = text
        .lines()
        .filter(|l| l.contains("failed") && l.contains("down-"))
        .count();
    assert_eq!(
        failed_lines, 10,
        "{runs} failed runs gave {failed_lines} log lines:\n{text}"
    );
}

/// `sloprobe health` (the container HEALTHCHECK) and `POST /-/reload` from loopback.
#[tokio::test]
async fn health_command_and_reload_endpoint() {
    use std::io::{Read, Write};
    let port = free_port();
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"1s\"\n"
        ),
    )]);
    let _d = start_daemon(&dir.path().join("sloprobe.toml"));
    let health = |url: String| {
        Command::new(bin())
            .args(["health", "--url", &url])
            .status()
            .unwrap()
            .code()
    };
    let ok = eventually(50, Duration::from_millis(100), || {
        let url = format!("http://127.0.0.1:{port}/readyz");
        async move { (tokio::task::spawn_blocking(move || health(url)).await.ok()? == Some(0)).then_some(()) }
    })
    .await;
    assert!(ok.is_some(), "health never passed");
    let refused = format!("http://127.0.0.1:{}/readyz", refused_port());
    assert_eq!(
        tokio::task::spawn_blocking(move || health(refused)).await.unwrap(),
        Some(1)
    );

    let post = |headers: &'static str| {
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(
                format!(
                    "POST /-/reload HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
    };
    // What a page can send (even no-cors): an Origin, and no custom header without a
    // preflight this server never grants. Both are refused.
    let reply = post("Origin: http://evil.example\r\nX-Sloprobe-Reload: 1\r\n")
        .await
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    let reply = post("Sec-Fetch-Site: cross-site\r\n").await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    let reply = post("").await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let (_, text) = http_get(&format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
    assert!(
        sample(&text, "sloprobe_config_reloads_total", &["outcome=\"success\""]).is_none(),
        "a refused reload reloaded"
    );
    let reply = post("X-Sloprobe-Reload: 1\r\n").await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
    let reloaded = eventually(50, Duration::from_millis(100), || async {
        let (_, text) = http_get(&format!("http://127.0.0.1:{port}/metrics")).await?;
        sample(&text, "sloprobe_config_reloads_total", &["outcome=\"success\""]).filter(|v| *v >= 1.0)
    })
    .await;
    assert!(reloaded.is_some(), "POST /-/reload did not reload");
}

/// Connections that send nothing get the header-read timeout from accept: a few dozen of
/// them cannot hold every connection slot (and `/healthz`) for the 60s idle timeout.
#[tokio::test]
async fn silent_connections_do_not_hold_the_slots() {
    let port = free_port();
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nmax_connections = 4\nheader_read_timeout = \"1s\"\n\n[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"1s\"\n"
        ),
    )]);
    let _d = start_daemon(&dir.path().join("sloprobe.toml"));
    let up = eventually(50, Duration::from_millis(100), || {
        http_get_ok(format!("http://127.0.0.1:{port}/healthz"))
    })
    .await;
    assert!(up.is_some(), "daemon never served");
    // Twice the slots, silent.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let start = std::time::Instant::now();
    let served = eventually(30, Duration::from_millis(100), || {
        http_get_ok(format!("http://127.0.0.1:{port}/healthz"))
    })
    .await;
    assert!(served.is_some(), "silent connections held every slot");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "served only after {:?}",
        start.elapsed()
    );
    drop(silent);
}

async fn http_get_ok(url: String) -> Option<()> {
    let (status, _) = tokio::time::timeout(Duration::from_millis(500), http_get(&url))
        .await
        .ok()??;
    (status == 200).then_some(())
}

/// Workflow runs that outlast their interval: up to `max_in_flight` overlap, the rest are
/// skipped and counted, the in-flight gauges show them, and SIGTERM cuts them off after
/// the grace as `interrupted` (logged, never a failed run).
#[tokio::test]
async fn long_workflow_runs_overlap_up_to_max_in_flight_and_are_interrupted_on_stop() {
    let (port, demo) = (free_port(), free_port());
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{port}"
[demo]
listen = "127.0.0.1:{demo}"

[[probe]]
name = "slow-job"
kind = "workflow"
every = "400ms"
timeout = "1m"
max_in_flight = 2
[[probe.step]]
name = "init"
method = "POST"
url = "http://127.0.0.1:{demo}/pipeline/recordings?never=1"
[probe.step.extract]
id = {{ pointer = "/id" }}
[[probe.step]]
name = "finalize"
method = "POST"
url = "http://127.0.0.1:{demo}/pipeline/recordings/${{id}}/finalize"
[[probe.step]]
name = "wait"
url = "http://127.0.0.1:{demo}/pipeline/recordings/${{id}}"
[probe.step.poll]
interval = "100ms"
pointer = "/status"
until = ["ready"]
"#
    );
    let dir = write_files(&[("sloprobe.toml", &config)]);
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = Child(
        Command::new(bin())
            .args(["run", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .env("SLOPROBE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let seen = eventually(60, Duration::from_millis(100), || async {
        let (_, text) = http_get(&metrics).await?;
        let in_flight = sample(&text, "probe_runs_in_flight", &["probe_name=\"slow-job\""])?;
        let overlap = sample(
            &text,
            "probe_runs_skipped_total",
            &["probe_name=\"slow-job\"", "reason=\"overlap\""],
        )?;
        let age = sample(
            &text,
            "probe_run_oldest_in_flight_age_seconds",
            &["probe_name=\"slow-job\""],
        )?;
        (in_flight == 2.0 && overlap >= 1.0 && age > 0.8).then_some(text)
    })
    .await;
    let text = seen.expect("two runs in flight, a skipped start and the oldest run's age on /metrics");
    // No run has ended: none is counted, failed or otherwise.
    assert_eq!(sample(&text, "probe_runs_total", &["probe_name=\"slow-job\""]), None);

    let t0 = Instant::now();
    let status = sigterm_and_wait(&mut child, Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}");
    // The 5 s grace, then the cut.
    assert!(t0.elapsed() >= Duration::from_secs(5), "{:?}", t0.elapsed());
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let interrupted = log
        .lines()
        .filter(|l| l.contains("interrupted") && l.contains("slow-job"))
        .count();
    assert_eq!(interrupted, 2, "{log}");
    assert!(log.contains("init="), "what the cut run measured is logged: {log}");
}

/// A probe the host cannot run (no Chromium on its PATH) is not scheduled, and says so:
/// counted apart at startup, warned about with what is missing, and `probe_scheduled 0`
/// on /metrics beside `probe_scheduled 1` for the probe that runs.
#[tokio::test]
async fn an_unscheduled_probe_is_visible() {
    let port = free_port();
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[probe]]\nname = \"page\"\nkind = \"browser\"\nurl = \"http://127.0.0.1:9/\"\nevery = \"1m\"\n\n[[probe]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\nevery = \"1s\"\n"
        ),
    )]);
    let log = dir.path().join("daemon.log");
    let mut child = Child(
        Command::new(bin())
            .args(["run", "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .env("SLOPROBE_LOG", "info")
            // Neither Chromium nor chromedriver on this PATH.
            .env("PATH", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/metrics");
    let text = eventually(100, Duration::from_millis(100), || async {
        let (_, text) = http_get(&url).await?;
        text.contains("probe_scheduled").then_some(text)
    })
    .await
    .expect("no probe_scheduled on /metrics");
    assert_eq!(
        sample(&text, "probe_scheduled", &["probe_name=\"page\""]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "probe_scheduled", &["probe_name=\"api\""]),
        Some(1.0),
        "{text}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("not_scheduled=1") && logged.contains("probes=1"),
        "{logged}"
    );
    assert!(logged.contains("neither Chromium nor chromedriver found"), "{logged}");
    assert!(sigterm_and_wait(&mut child, Duration::from_secs(10)).await.success());
}

/// The exporter habits: `--web.listen-address` wins over `[server] listen`,
/// `--shard-index`/`--shard-count` select the shard (what a StatefulSet's pod index feeds),
/// `/-/healthy` and `/-/ready` answer beside `/healthz` and `/readyz`, and `/` names them.
#[tokio::test]
async fn listen_flag_shard_flags_and_exporter_endpoints() {
    let target = plain_target().await;
    let (config_port, flag_port) = (free_port(), free_port());
    let mut probes = String::new();
    for i in 0..12 {
        probes.push_str(&format!(
            "[[probe]]\nname = \"p{i}\"\nkind = \"http\"\nurl = \"{}\"\nevery = \"1s\"\ntimeout = \"500ms\"\n",
            target.url("/")
        ));
    }
    let dir = write_files(&[(
        "sloprobe.toml",
        &format!("[server]\nlisten = \"127.0.0.1:{config_port}\"\n{probes}"),
    )]);
    let _daemon = Child(
        Command::new(bin())
            .args([
                "run",
                "--shard-index",
                "1",
                "--shard-count",
                "3",
                "--web.listen-address",
            ])
            .arg(format!("127.0.0.1:{flag_port}"))
            .arg("-c")
            .arg(dir.path().join("sloprobe.toml"))
            .env("SLOPROBE_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{flag_port}");
    let ready = eventually(100, Duration::from_millis(100), || {
        http_get_ok(format!("{base}/-/ready"))
    })
    .await;
    assert!(ready.is_some(), "/-/ready never answered on the flag's address");
    assert_eq!(http_get(&format!("{base}/-/healthy")).await.map(|(s, _)| s), Some(200));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", config_port)).is_err(),
        "[server] listen was used despite the flag"
    );
    let (status, page) = http_get(&format!("{base}/")).await.unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("href=\"metrics\"") && page.contains("/-/ready"), "{page}");
    let shard = sloprobe::fleet::Shard { index: 1, count: 3 };
    let owned: Vec<String> = (0..12).map(|i| format!("p{i}")).filter(|n| shard.owns(n)).collect();
    assert!(!owned.is_empty() && owned.len() < 12, "{owned:?}");
    let metrics = eventually(50, Duration::from_millis(200), || async {
        let (_, text) = http_get(&format!("{base}/metrics")).await?;
        owned
            .iter()
            .all(|n| text.contains(&format!("probe_name=\"{n}\"")))
            .then_some(text)
    })
    .await
    .expect("the shard's probes never reported");
    for i in 0..12 {
        let name = format!("p{i}");
        assert_eq!(
            metrics.contains(&format!("probe_name=\"{name}\"")),
            shard.owns(&name),
            "{name}: shard 1/3 ownership not respected"
        );
    }
    // A half-given shard is a usage error, not a silent "all probes".
    let out = Command::new(bin())
        .args(["run", "--shard-index", "1", "-c"])
        .arg(dir.path().join("sloprobe.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `/metrics` over TLS with basic auth, scraped by a real Prometheus: the right user gets
/// in, a wrong password is refused (the target is down for Prometheus, 401 here). And an
/// exporter-toolkit web config file (`--web.config.file`) with mutual TLS, taken as is.
#[tokio::test]
async fn real_prometheus_scrapes_over_tls_with_basic_auth_and_mtls() {
    let target = plain_target().await;
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path(), "");
    let d = dir.path().display().to_string();
    let hash = bcrypt::hash("s3cret-scrape", 4).unwrap();
    let (basic_port, mtls_port) = (free_port(), free_port());
    let probe = format!(
        "[[probe]]\nname = \"p\"\nkind = \"http\"\nurl = \"{}\"\nevery = \"1s\"\ntimeout = \"500ms\"\n",
        target.url("/")
    );
    std::fs::write(
        dir.path().join("basic.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{basic_port}\"\n[server.tls]\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\n[server.basic_auth_users]\nprom = \"{hash}\"\n{probe}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mtls.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{mtls_port}\"\n{probe}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("web.yml"),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
    )
    .unwrap();
    let _basic = start_daemon(&dir.path().join("basic.toml"));
    let _mtls = Child(
        Command::new(bin())
            .args(["run", "--web.config.file"])
            .arg(dir.path().join("web.yml"))
            .arg("-c")
            .arg(dir.path().join("mtls.toml"))
            .env("SLOPROBE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prometheus_yml = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: basic
    scheme: https
    tls_config: {{ca_file: {d}/ca.pem, server_name: localhost}}
    basic_auth: {{username: prom, password: s3cret-scrape}}
    static_configs: [{{targets: ["127.0.0.1:{basic_port}"]}}]
  - job_name: wrong_password
    scheme: https
    tls_config: {{ca_file: {d}/ca.pem, server_name: localhost}}
    basic_auth: {{username: prom, password: guess}}
    static_configs: [{{targets: ["127.0.0.1:{basic_port}"]}}]
  - job_name: mtls
    scheme: https
    tls_config: {{ca_file: {d}/ca.pem, server_name: localhost, cert_file: {d}/client.pem, key_file: {d}/client.key}}
    static_configs: [{{targets: ["127.0.0.1:{mtls_port}"]}}]
  - job_name: mtls_without_cert
    scheme: https
    tls_config: {{ca_file: {d}/ca.pem, server_name: localhost}}
    static_configs: [{{targets: ["127.0.0.1:{mtls_port}"]}}]
"#
    );
    let (_prom, prom_port) = start_prometheus(dir.path(), &prometheus_yml);
    let up = |job: &'static str| {
        let url = format!(
            "http://127.0.0.1:{prom_port}/api/v1/query?query={}",
            urlencode(&format!("up{{job=\"{job}\"}}"))
        );
        async move {
            let (_, body) = http_get(&url).await?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            v["data"]["result"][0]["value"][1].as_str().map(str::to_string)
        }
    };
    let all = eventually(300, Duration::from_millis(100), || async {
        let got = (
            up("basic").await?,
            up("wrong_password").await?,
            up("mtls").await?,
            up("mtls_without_cert").await?,
        );
        Some(got)
    })
    .await
    .expect("Prometheus never scraped every job");
    assert_eq!(all, ("1".into(), "0".into(), "1".into(), "0".into()), "up by job");
    // The scrape got the probe's series, not just a 200.
    let url = format!(
        "http://127.0.0.1:{prom_port}/api/v1/query?query={}",
        urlencode("probe_runs_total{job=\"basic\"}")
    );
    let runs = eventually(100, Duration::from_millis(100), || async {
        let (_, body) = http_get(&url).await?;
        body.contains("\"probe_name\":\"p\"").then_some(())
    })
    .await;
    assert!(runs.is_some(), "no probe series through TLS and basic auth");
    // Plain HTTP to the TLS listener gets no answer.
    assert!(
        http_get(&format!("http://127.0.0.1:{basic_port}/metrics"))
            .await
            .is_none()
    );
}
