//! Shared test helpers: local targets (plain and TLS) serving the demo router with known
//! delays, configs written to temp files, and child processes stopped on drop.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sloprobe::assembly::Config;
use sloprobe::outcome::Outcome;
use sloprobe::probe::{self, BuildContext, BuiltProbe};

pub mod hostile;
pub mod postgres;
pub mod server;

/// A target task that stops when dropped.
pub struct Target {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Target {
    pub fn new(addr: SocketAddr, task: tokio::task::JoinHandle<()>) -> Target {
        Target { addr, task }
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.addr.port(), path)
    }
}

pub async fn plain_target() -> Target {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        sloprobe::demo::serve(listener).await;
    });
    Target { addr, task }
}

/// A CA and a leaf certificate for `localhost` it signed.
pub struct Pki {
    pub ca_pem: String,
    pub leaf_der: CertificateDer<'static>,
    pub leaf_key: PrivateKeyDer<'static>,
    /// The leaf's notAfter, Unix seconds.
    pub leaf_not_after: i64,
}

pub fn pki(expired: bool) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sloprobe test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    if expired {
        leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    } else {
        leaf_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2040, 6, 1);
    }
    let leaf_not_after = leaf_params.not_after.unix_timestamp();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        leaf_der: leaf.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        leaf_not_after,
    }
}

/// Serves the demo router over TLS (ALPN h2 and http/1.1) with the given PKI.
pub async fn tls_target(pki: &Pki) -> Target {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.leaf_der.clone()], pki.leaf_key.clone_key())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = TowerToHyperService::new(sloprobe::demo::router());
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Target { addr, task }
}

/// A port with nothing listening on it.
pub fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// Writes files into a temp dir; returns the dir (kept alive by the caller).
pub fn write_files(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// Loads a daemon config made of `probe_toml` and builds its probes.
pub fn build_probes(probe_toml: &str) -> (tempfile::TempDir, Vec<BuiltProbe>) {
    let dir = write_files(&[("sloprobe.toml", probe_toml)]);
    let cfg = Config::load(&dir.path().join("sloprobe.toml")).unwrap_or_else(|e| panic!("config: {e}"));
    let probes = probe::build_all(&cfg.probes, &BuildContext::new()).unwrap_or_else(|e| panic!("build: {e}"));
    (dir, probes)
}

/// Builds a single probe from its `[[probe]]` body and runs it once.
pub async fn run_probe(probe_toml: &str) -> Outcome {
    let (_dir, probes) = build_probes(probe_toml);
    assert_eq!(probes.len(), 1);
    probes[0].execute().await
}

pub fn config_error(files: &[(&str, &str)]) -> String {
    let dir = write_files(files);
    let path = dir.path().join(files[0].0);
    let cfg = match Config::load(&path) {
        Err(e) => return e.to_string(),
        Ok(c) => c,
    };
    match probe::build_all(&cfg.probes, &BuildContext::new()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("config was accepted"),
    }
}

pub fn m(o: &Outcome, key: &str) -> f64 {
    o.get(key)
        .unwrap_or_else(|| panic!("measurement {key} missing in {:?}", o.measurements))
}

pub fn error_type(o: &Outcome) -> &'static str {
    o.error.as_ref().map_or("none", |e| e.kind.as_str())
}

/// A child process killed (and reaped) when dropped.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    refused_port()
}

/// Minimal HTTP/1.1 GET over loopback for talking to daemons and Prometheus.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.host()?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.ok()?;
    tokio::spawn(conn);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or("/".into());
    let req = http::Request::get(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The response head of a raw HTTP/1.1 GET with extra request headers.
pub fn raw_head(addr: &str, path: &str, headers: &[&str]) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split("\r\n\r\n").next().map(str::to_string)
}

/// Polls until `f` returns Some, at most `tries` times `every` apart.
pub async fn eventually<T, F, Fut>(tries: u32, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..tries {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(every).await;
    }
    None
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sloprobe"))
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// A program on PATH; a missing one fails the test with how to install it.
pub fn tool(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|p| p.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/test.sh, which installs it"))
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Starts a real Prometheus on a free loopback port with `config` (YAML) in `dir`.
pub fn start_prometheus(dir: &Path, config: &str) -> (Child, u16) {
    start_prometheus_with(dir, config, &[])
}

/// `start_prometheus` with extra flags (e.g. `--enable-feature=native-histograms`).
pub fn start_prometheus_with(dir: &Path, config: &str, flags: &[&str]) -> (Child, u16) {
    let port = free_port();
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let child = Child(
        std::process::Command::new(tool("prometheus"))
            .args(flags)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    (child, port)
}

/// Runs a command and fails the test with its output unless it succeeds.
pub fn run_ok(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The largest value of the exposition lines of `name` that contain every `must_contain`.
pub fn sample(metrics: &str, name: &str, must_contain: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && must_contain.iter().all(|c| l.contains(c)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(f64::max)
}

/// `sloprobe run -c config`, logging warnings only, stopped when dropped.
pub fn start_daemon(config: &Path) -> Child {
    Child(
        std::process::Command::new(bin())
            .args(["run", "-c"])
            .arg(config)
            .env("SLOPROBE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Runs `sloprobe ARGS -c CONFIG` and returns its standard output (it must succeed).
pub fn sloprobe(args: &[&str], config: &std::path::Path) -> String {
    let out = Command::new(bin()).args(args).arg("-c").arg(config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Writes the rules for `config`, checks them with promtool, and runs `tests` (the body of
/// a promtool test file's `tests:` list) against them.
pub fn promtool_test(config: &str, tests: &str) -> String {
    let dir = write_files(&[("sloprobe.toml", config)]);
    let rules = sloprobe(&["slo", "rules"], &dir.path().join("sloprobe.toml"));
    std::fs::write(dir.path().join("rules.yml"), &rules).unwrap();
    run_ok(
        Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(dir.path().join("rules.yml")),
    );
    let test = format!("rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n{tests}");
    std::fs::write(dir.path().join("test.yml"), test).unwrap();
    run_ok(
        Command::new(tool("promtool"))
            .args(["test", "rules", "test.yml"])
            .current_dir(dir.path()),
    );
    rules
}

/// A promtool alert test case expecting no alert.
pub fn no_alert(at: &str, name: &str) -> String {
    format!("      - eval_time: {at}\n        alertname: {name}\n        exp_alerts: []\n")
}

/// A daemon running `config` and a real Prometheus scraping it every second with the
/// rules at `rules` evaluated every second; both stop when dropped. Returns Prometheus's port.
pub fn daemon_and_prometheus(dir: &Path, config: &Path, listen: u16, rules: &Path) -> (Child, Child, u16) {
    let daemon = Child(
        Command::new(bin())
            .args(["run", "-c"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: sloprobe\n    static_configs:\n      - targets: ['127.0.0.1:{listen}']\n",
        rules.display()
    );
    let (prom, port) = start_prometheus(dir, &prom_cfg);
    (daemon, prom, port)
}

/// A test CA with a server certificate (localhost, 127.0.0.1) and a client certificate,
/// written as PEM files into `dir`: ca.pem, server.pem/.key, client.pem/.key.
pub fn write_pki(dir: &std::path::Path, prefix: &str) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{prefix} CA"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    std::fs::write(dir.join(format!("{prefix}ca.pem")), ca.pem()).unwrap();
    for (name, sans) in [
        ("server", vec!["localhost".to_string(), "127.0.0.1".to_string()]),
        ("client", vec!["sloprobe".to_string()]),
    ] {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(sans).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{prefix}{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{prefix}{name}.key")), key.serialize_pem()).unwrap();
    }
}
