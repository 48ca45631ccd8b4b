//! The tcp, dns, grpc and icmp kinds side by side with a real blackbox_exporter (Debian
//! package), both answering `/probe?target=…&module=…` for the same modules: sloprobe's
//! come from `sloprobe import blackbox` on blackbox_exporter's own config file. Peers are
//! real servers nobody here wrote or small ones with known faults: a DNS server on dnslib
//! (NXDOMAIN, SERVFAIL, truncation, a slow answer, SOA, DNS over TLS), the reference gRPC
//! health service (grpcio-health-checking: SERVING, NOT_SERVING, UNKNOWN, NOT_FOUND, TLS), an
//! SMTP-like line server with STARTTLS, and ICMP echo to 127.0.0.1 and ::1. For each case
//! the two tools must agree on success, and on timings within the stated tolerances.
//! Loopback only; every process started here is stopped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::server::Server;
use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv_python() -> PathBuf {
    let p = root().join(".venv-test/bin/python3");
    assert!(p.exists(), "{} is missing: run scripts/test.sh", p.display());
    p
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A GET with extra headers; returns (status, body). Both exporters close when asked.
fn get(port: u16, path: &str, headers: &[&str]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return (status, body.to_string());
    }
    // blackbox_exporter answers in chunks: size line, data, CRLF, until size 0.
    let (mut rest, mut out) = (body, String::new());
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    (status, out)
}

fn probe(port: u16, module: &str, target: &str) -> String {
    let (status, body) = get(
        port,
        &format!("/probe?module={module}&target={}", urlencode(target)),
        &["X-Prometheus-Scrape-Timeout-Seconds: 10"],
    );
    assert_eq!(status, 200, "/probe {module} {target} on :{port}: {body}");
    body
}

fn value(text: &str, name: &str, must_contain: &[&str]) -> Option<f64> {
    // `sample` matches prefixes; a name followed by a space or `{` is this metric.
    text.lines()
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .filter(|l| must_contain.iter().all(|c| l.contains(c)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(f64::max)
}

const BLACKBOX_YML: &str = r#"
modules:
  tcp_connect:
    prober: tcp
    timeout: 3s
  smtp_starttls:
    prober: tcp
    timeout: 3s
    tcp:
      query_response:
        - expect: "^220 ([^ ]+) ESMTP (.+)$"
        - send: "EHLO prober\r"
        - expect: "^250-STARTTLS"
        - send: "STARTTLS\r"
        - expect: "^220"
        - starttls: true
        - send: "EHLO prober\r"
        - expect: "^250-AUTH"
        - send: "QUIT\r"
      tls_config:
        ca_file: ca.pem
        server_name: localhost
  tls_connect:
    prober: tcp
    timeout: 3s
    tcp:
      tls: true
      tls_config:
        ca_file: ca.pem
        server_name: localhost
  dns_ok:
    prober: dns
    timeout: 3s
    dns:
      query_name: ok.test
      query_type: A
      validate_answer_rrs:
        fail_if_not_matches_regexp:
          - "ok\\.test\\.\t300\tIN\tA\t127\\.0\\.0\\.1"
  dns_ok_tcp:
    prober: dns
    timeout: 3s
    dns:
      transport_protocol: tcp
      query_name: ok.test
      query_type: A
  dns_wrong_answer:
    prober: dns
    timeout: 3s
    dns:
      query_name: ok.test
      query_type: A
      validate_answer_rrs:
        fail_if_matches_regexp:
          - "127\\.0\\.0\\.1"
  dns_nx:
    prober: dns
    timeout: 3s
    dns:
      query_name: nx.test
      query_type: A
  dns_nx_expected:
    prober: dns
    timeout: 3s
    dns:
      query_name: nx.test
      query_type: A
      valid_rcodes: [NXDOMAIN]
  dns_servfail:
    prober: dns
    timeout: 3s
    dns:
      query_name: fail.test
      query_type: A
  dns_soa:
    prober: dns
    timeout: 3s
    dns:
      query_name: test
      query_type: SOA
  dns_big:
    prober: dns
    timeout: 3s
    dns:
      query_name: big.test
      query_type: A
      validate_answer_rrs:
        fail_if_none_matches_regexp:
          - "10\\.0\\."
  dns_slow:
    prober: dns
    timeout: 3s
    dns:
      query_name: slow.test
      query_type: A
  dns_slow_short:
    prober: dns
    timeout: 1s
    dns:
      query_name: slow.test
      query_type: A
  grpc_serving:
    prober: grpc
    timeout: 3s
    grpc:
      service: ""
  grpc_down:
    prober: grpc
    timeout: 3s
    grpc:
      service: down
  grpc_unknown:
    prober: grpc
    timeout: 3s
    grpc:
      service: unknown
  grpc_missing:
    prober: grpc
    timeout: 3s
    grpc:
      service: missing
  grpc_tls:
    prober: grpc
    timeout: 3s
    grpc:
      tls: true
      tls_config:
        ca_file: ca.pem
        server_name: localhost
  icmp:
    prober: icmp
    timeout: 3s
"#;

struct Peers {
    dns: Server,
    dot_port: u16,
    grpc: Server,
    grpc_tls_port: u16,
    lines: Server,
    bad_port: u16,
    tls_port: u16,
}

async fn peers(dir: &Path) -> Peers {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let py = venv_python();
    let (dns_port, dot_port) = (free_port(), free_port());
    let mut cmd = Command::new(&py);
    cmd.arg(root().join("tests/servers/dns_server.py"))
        .args([dns_port.to_string(), dot_port.to_string()])
        .args([&cert, &key]);
    let dns = Server::start(cmd, dns_port, tempfile::tempdir().unwrap(), "dnslib server").await;

    let (grpc_port, grpc_tls_port) = (free_port(), free_port());
    let mut cmd = Command::new(&py);
    cmd.arg(root().join("tests/servers/grpc_health_server.py"))
        .args([grpc_port.to_string(), grpc_tls_port.to_string()])
        .args([&cert, &key]);
    let grpc = Server::start(cmd, grpc_port, tempfile::tempdir().unwrap(), "grpc health server").await;

    let (smtp_port, bad_port, tls_port) = (free_port(), free_port(), free_port());
    let mut cmd = Command::new(&py);
    cmd.arg(root().join("tests/servers/line_server.py"))
        .args([smtp_port.to_string(), bad_port.to_string(), tls_port.to_string()])
        .args([&cert, &key]);
    let lines = Server::start(cmd, smtp_port, tempfile::tempdir().unwrap(), "line server").await;
    Peers {
        dns,
        dot_port,
        grpc,
        grpc_tls_port,
        lines,
        bad_port,
        tls_port,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_blackbox_prober_agrees_with_blackbox_exporter_on_the_same_faults() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(false);
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.path().join("cert.pem"), pem("CERTIFICATE", &pki.leaf_der)).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        pem("PRIVATE KEY", pki.leaf_key.secret_der()),
    )
    .unwrap();
    std::fs::write(dir.path().join("blackbox.yml"), BLACKBOX_YML).unwrap();
    let p = peers(dir.path()).await;

    // blackbox_exporter on its config; sloprobe on what `import blackbox` makes of it.
    let bb_port = free_port();
    let _bb = Child(
        Command::new(tool("prometheus-blackbox-exporter"))
            .current_dir(dir.path())
            .arg("--config.file=blackbox.yml")
            .arg(format!("--web.listen-address=127.0.0.1:{bb_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let imported = Command::new(bin())
        .current_dir(dir.path())
        .args(["import", "blackbox", "--config", "blackbox.yml", "--out", "probes.toml"])
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let notes = String::from_utf8_lossy(&imported.stderr);
    assert!(notes.contains("imported 19 module(s) and 0 probe(s)"), "{notes}");
    let sp_port = free_port();
    let config = dir.path().join("sloprobe.toml");
    std::fs::write(
        &config,
        format!("include = [\"probes.toml\"]\n[server]\nlisten = \"127.0.0.1:{sp_port}\"\n"),
    )
    .unwrap();
    sloprobe(&["check"], &config);
    let _daemon = start_daemon(&config);
    for port in [bb_port, sp_port] {
        let up = eventually(300, Duration::from_millis(100), || async move {
            http_get(&format!("http://127.0.0.1:{port}/metrics"))
                .await
                .filter(|(s, _)| *s == 200)
        })
        .await;
        assert!(up.is_some(), "exporter on :{port} did not come up");
    }

    let dns = format!("127.0.0.1:{}", p.dns.port);
    let smtp = format!("127.0.0.1:{}", p.lines.port);
    let grpc = format!("127.0.0.1:{}", p.grpc.port);
    let cases: Vec<(&str, String, bool)> = vec![
        ("tcp_connect", smtp.clone(), true),
        ("tcp_connect", format!("127.0.0.1:{}", refused_port()), false),
        ("smtp_starttls", smtp.clone(), true),
        ("smtp_starttls", format!("127.0.0.1:{}", p.bad_port), false),
        ("tls_connect", format!("127.0.0.1:{}", p.tls_port), true),
        ("tls_connect", smtp.clone(), false),
        ("dns_ok", dns.clone(), true),
        ("dns_ok_tcp", dns.clone(), true),
        ("dns_wrong_answer", dns.clone(), false),
        ("dns_ok", format!("127.0.0.1:{}", refused_port()), false),
        ("dns_nx", dns.clone(), false),
        ("dns_nx_expected", dns.clone(), true),
        ("dns_servfail", dns.clone(), false),
        ("dns_soa", dns.clone(), true),
        ("dns_big", dns.clone(), false),
        ("dns_slow", dns.clone(), true),
        ("dns_slow_short", dns.clone(), false),
        ("grpc_serving", grpc.clone(), true),
        ("grpc_down", grpc.clone(), false),
        ("grpc_unknown", grpc.clone(), false),
        ("grpc_missing", grpc.clone(), false),
        ("grpc_serving", smtp.clone(), false),
        ("grpc_tls", format!("127.0.0.1:{}", p.grpc_tls_port), true),
        ("grpc_tls", grpc.clone(), false),
        ("icmp", "127.0.0.1".to_string(), true),
        ("icmp", "::1".to_string(), true),
    ];
    let mut disagreements = Vec::new();
    let mut answers = Vec::new();
    for (module, target, expected) in &cases {
        let ours = probe(sp_port, module, target);
        let theirs = probe(bb_port, module, target);
        let (o, t) = (
            value(&ours, "probe_success", &[]).unwrap_or(-1.0),
            value(&theirs, "probe_success", &[]).unwrap_or(-1.0),
        );
        let want = if *expected { 1.0 } else { 0.0 };
        if o != want || t != want {
            disagreements.push(format!(
                "{module} {target}: sloprobe {o}, blackbox_exporter {t}, expected {want}\n--- sloprobe\n{ours}\n--- blackbox_exporter\n{theirs}"
            ));
        }
        answers.push((*module, target.clone(), ours, theirs));
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));

    let find = |module: &str, target: &str| {
        answers
            .iter()
            .find(|(m, t, _, _)| *m == module && t == target)
            .map(|(_, _, o, t)| (o.clone(), t.clone()))
            .unwrap()
    };
    // The slow DNS answer (1.5 s): both durations see it, within 250 ms of each other.
    let (o, t) = find("dns_slow", &dns);
    let (od, td) = (
        value(&o, "probe_duration_seconds", &[]).unwrap(),
        value(&t, "probe_duration_seconds", &[]).unwrap(),
    );
    assert!((1.5..2.5).contains(&od) && (1.5..2.5).contains(&td), "{od} {td}");
    assert!(
        (od - td).abs() < 0.25,
        "slow DNS: sloprobe {od} s, blackbox_exporter {td} s"
    );
    // The same query's time: ours `dns.lookup.duration`, theirs phase="request".
    let ol = value(&o, "dns_lookup_duration_seconds", &[]).unwrap();
    let tl = value(&t, "probe_dns_duration_seconds", &["phase=\"request\""]).unwrap();
    assert!(
        (ol - tl).abs() < 0.25,
        "lookup: sloprobe {ol} s, blackbox_exporter {tl} s"
    );
    // Record counts and the SOA serial as blackbox_exporter reports them.
    let (o, t) = find("dns_ok", &dns);
    assert_eq!(
        value(&o, "probe_dns_records", &["dns_section=\"answer\""]),
        value(&t, "probe_dns_answer_rrs", &[])
    );
    let (o, t) = find("dns_soa", &dns);
    assert_eq!(value(&o, "probe_dns_serial", &[]), Some(2026120601.0), "{o}");
    assert_eq!(value(&t, "probe_dns_serial", &[]), Some(2026120601.0), "{t}");
    // Certificate expiry: the test leaf's notAfter, from both, for tcp and grpc over TLS.
    for (module, target) in [
        ("tls_connect", format!("127.0.0.1:{}", p.tls_port)),
        ("grpc_tls", format!("127.0.0.1:{}", p.grpc_tls_port)),
    ] {
        let (o, t) = find(module, &target);
        let want = Some(pki.leaf_not_after as f64);
        assert_eq!(value(&o, "probe_ssl_earliest_cert_expiry", &[]), want, "{module}: {o}");
        assert_eq!(value(&t, "probe_ssl_earliest_cert_expiry", &[]), want, "{module}: {t}");
    }
    // Loopback round trips: both well under 10 ms.
    for target in ["127.0.0.1", "::1"] {
        let (o, t) = find("icmp", target);
        let ours = value(&o, "probe_icmp_rtt_seconds", &[]).unwrap();
        let theirs = value(&t, "probe_icmp_duration_seconds", &["phase=\"rtt\""]).unwrap();
        assert!(
            ours > 0.0 && ours < 0.01 && theirs > 0.0 && theirs < 0.01,
            "icmp {target}: {ours} {theirs}"
        );
    }
    let (o, t) = find("tcp_connect", &smtp);
    let ours = value(&o, "probe_tcp_phase_duration_seconds", &["phase=\"connect\""]).unwrap();
    let theirs = value(&t, "probe_duration_seconds", &[]).unwrap();
    assert!(ours < 0.05 && theirs < 0.05, "connect {ours} {theirs}");

    // What only sloprobe does: DNS over TLS, and a truncated UDP answer asked again over
    // TCP, as resolvers do (the import keeps blackbox_exporter's way, `retry_tcp = false`).
    let extra = dir.path().join("extra.toml");
    std::fs::write(
        &extra,
        format!(
            r#"[[probe]]
name = "dot"
kind = "dns"
server = "127.0.0.1:{dot}"
transport = "tls"
query_name = "ok.test"
every = "1m"
tls_config = {{ ca_file = "ca.pem", server_name = "localhost" }}
[probe.validate_answer]
fail_if_none_matches_regexp = ['127\.0\.0\.1']

[[probe]]
name = "big-resolver-like"
kind = "dns"
server = "{dns}"
query_name = "big.test"
every = "1m"
[probe.validate_answer]
fail_if_none_matches_regexp = ['10\.0\.']
"#,
            dot = p.dot_port
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["once", "--format", "json", "-c"])
        .arg(&extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let run = |name: &str| {
        runs.iter()
            .find(|r| r["probe"] == name)
            .unwrap_or_else(|| panic!("{name} not in {text}"))
            .clone()
    };
    let dot = run("dot");
    assert!(dot["measurements"]["tls"].as_f64().unwrap() > 0.0, "{dot}");
    let big = run("big-resolver-like");
    assert_eq!(big["measurements"]["truncated"], 1.0, "{big}");
    assert_eq!(big["measurements"]["answer_rrs"], 60.0, "{big}");

    // The endpoint's guards: a target outside `allow`, an unknown module, and a scrape
    // timeout shorter than the slow answer (the run is cut at the timeout less 0.5 s).
    let (status, body) = get(sp_port, "/probe?module=tcp_connect&target=10.0.0.1:22", &[]);
    assert_eq!(status, 403, "{body}");
    let (status, body) = get(sp_port, "/probe?module=nope&target=127.0.0.1:1", &[]);
    assert_eq!(status, 400, "{body}");
    let t0 = std::time::Instant::now();
    let (status, body) = get(
        sp_port,
        &format!("/probe?module=dns_slow&target={}", urlencode(&dns)),
        &["X-Prometheus-Scrape-Timeout-Seconds: 1.2"],
    );
    assert_eq!(status, 200);
    assert_eq!(value(&body, "probe_success", &[]), Some(0.0), "{body}");
    assert!(t0.elapsed() < Duration::from_millis(1200), "{:?}", t0.elapsed());
    drop(p);
}

/// blackbox_exporter's published example configuration (tests/fixtures/blackbox/, written
/// by hand from its documented format) with a Prometheus config that scrapes it: the
/// import yields modules and probes that `check` accepts, and lists what it left out.
#[test]
fn the_importer_converts_blackbox_exporters_example_config() {
    let fixtures = root().join("tests/fixtures/blackbox");
    let dir = tempfile::tempdir().unwrap();
    // The example's http_custom_ca_example names certs/my_cert.crt: a real CA file there.
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/my_cert.crt"), pki(false).ca_pem).unwrap();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["import", "blackbox", "--out", "blackbox.toml", "--config"])
        .arg(fixtures.join("blackbox.yml"))
        .arg("--prometheus")
        .arg(fixtures.join("prometheus.yml"))
        .output()
        .unwrap();
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{notes}");
    assert!(notes.contains("imported 15 module(s) and 5 probe(s)"), "{notes}");
    for left_out in [
        "http_basic_auth_example: http.basic_auth",
        "http_with_proxy: http.proxy_url",
        "http_2xx_example: http.fail_if_header_matches",
        "icmp_example: icmp.source_ip_address",
        "job blackbox_dns: file_sd_configs",
    ] {
        assert!(notes.contains(left_out), "{left_out:?} not listed:\n{notes}");
    }
    // Secrets are never copied into the probe file.
    let written = std::fs::read_to_string(dir.path().join("blackbox.toml")).unwrap();
    assert!(!written.contains("mysecret"), "{written}");
    assert!(!written.contains("fixture-token-9f3"), "{written}");
    assert!(
        notes.contains("http_post_2xx: header Authorization is a credential"),
        "{notes}"
    );
    let config = dir.path().join("sloprobe.toml");
    std::fs::write(&config, "include = [\"blackbox.toml\"]\n").unwrap();
    let plan = sloprobe(&["check"], &config);
    assert!(plan.contains("probes: 5"), "{plan}");
    for module in [
        "http_2xx_example",
        "smtp_starttls",
        "dns_udp_example",
        "icmp_example",
        "grpc_plain",
    ] {
        assert!(plan.contains(&format!("module {module} ")), "{module} missing:\n{plan}");
    }
    // The scrape job's static targets became probes on its interval, labelled with the job.
    let parsed: toml::Table = toml::from_str(&written).unwrap();
    let probes = parsed["probe"].as_array().unwrap();
    let tcp = probes
        .iter()
        .find(|p| p.get("target").and_then(|v| v.as_str()) == Some("db.internal:5432"))
        .expect("the tcp job's target");
    assert_eq!(tcp["every"].as_str(), Some("15s"));
    assert_eq!(tcp["labels"]["blackbox_job"].as_str(), Some("blackbox_tcp"));
    let http = probes
        .iter()
        .find(|p| p.get("url").and_then(|v| v.as_str()) == Some("https://prometheus.io"))
        .expect("the http job's target");
    assert_eq!(http["follow_redirects"].as_integer(), Some(10));
    assert_eq!(http["every"].as_str(), Some("30s"));
}

/// A real Prometheus scraping sloprobe's `/probe` with blackbox_exporter's documented
/// relabelling (the target moved into `__param_target`, the address replaced): each
/// target's `probe_success` lands under its own `instance`.
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_probe_with_blackbox_relabelling() {
    let target = plain_target().await;
    let open = format!("127.0.0.1:{}", target.addr.port());
    let closed = format!("127.0.0.1:{}", refused_port());
    let dir = tempfile::tempdir().unwrap();
    let sp_port = free_port();
    let config = dir.path().join("sloprobe.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{sp_port}\"\n\n[[module]]\nname = \"tcp_connect\"\nkind = \"tcp\"\nallow = ['127\\.0\\.0\\.1:\\d+']\n"
        ),
    )
    .unwrap();
    let _daemon = start_daemon(&config);
    let up = eventually(300, Duration::from_millis(100), || async {
        http_get(&format!("http://127.0.0.1:{sp_port}/readyz"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    assert!(up.is_some(), "sloprobe did not come up");
    let prometheus_yml = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [tcp_connect]
    static_configs:
      - targets: ["{open}", "{closed}"]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:{sp_port}
"#
    );
    let (_prom, prom_port) = start_prometheus(dir.path(), &prometheus_yml);
    let query = |q: &str| {
        let url = format!("http://127.0.0.1:{prom_port}/api/v1/query?query={}", urlencode(q));
        async move { http_get(&url).await.map(|(_, body)| body) }
    };
    let both = eventually(600, Duration::from_millis(100), || async {
        let body = query("probe_success").await?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let results = v["data"]["result"].as_array()?.clone();
        (results.len() == 2).then_some(results)
    })
    .await
    .expect("Prometheus never had probe_success for both targets");
    let success = |instance: &str| {
        both.iter()
            .find(|r| r["metric"]["instance"] == instance)
            .and_then(|r| r["value"][1].as_str())
            .map(str::to_string)
    };
    assert_eq!(success(&open).as_deref(), Some("1"), "{both:?}");
    assert_eq!(success(&closed).as_deref(), Some("0"), "{both:?}");
    // The scrape itself succeeded for both (`up` is about the scrape, not the target).
    let up = query("sum(up{job=\"blackbox\"})").await.unwrap();
    assert!(up.contains("\"2\""), "{up}");
}
