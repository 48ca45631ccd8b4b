//! Loading and validating the TOML config: one daemon file plus probe files it includes.
//!
//! This layer checks what every probe shares (names, schedules, timeouts); each probe kind
//! checks its own keys when it is built (`probe::build`), with the same file:line errors.

mod error;
mod values;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use error::{ConfigError, Source};
pub use values::{Dur, Secret, Size, fmt_seconds, parse_duration, parse_size, read_capped};

/// Largest config file read (daemon file or probe file).
pub const MAX_CONFIG_FILE: u64 = 16 * 1024 * 1024;
/// Largest request body file (`body_file`); `body_size` generates larger bodies.
pub const MAX_BODY_FILE: u64 = 64 * 1024 * 1024;

use crate::schedule::Schedule;

pub const DEFAULT_CONFIG: &str = "config/sloprobe.toml";
const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub location: String,
    pub server: ServerConfig,
    pub demo: Option<DemoConfig>,
    pub otlp: Option<OtlpSettings>,
    pub probes: Vec<ProbeConfig>,
    /// `[[slo]]` entries as written; `slo::resolve` checks them against the probes.
    pub slos: Vec<(RawSlo, Arc<Source>)>,
}

/// A `[[slo]]` table as written (daemon file or probe files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    pub name: Spanned<String>,
    pub probes: Spanned<Vec<String>>,
    /// `success`, or a measurement (`ttfb`, `ttft`, ...) judged against `threshold`.
    pub sli: Spanned<String>,
    /// For a measurement SLI: the good/bad line; defaults to the probes' per-run budget.
    pub threshold: Option<Spanned<toml::Value>>,
    pub objective: Spanned<f64>,
    #[serde(default = "default_slo_window")]
    pub window: Spanned<Dur>,
    /// Error types left out of a success SLI, e.g. `["rate_limited"]`.
    #[serde(default)]
    pub exclude_errors: Vec<Spanned<String>>,
}

fn default_slo_window() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(30 * 24 * 3600)))
}

/// `[export.otlp]`, with secrets resolved. Unset fields fall back to the standard
/// `OTEL_EXPORTER_OTLP_*` environment variables, then to defaults (docs/config.md).
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    pub headers: Vec<(String, String)>,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub delta: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExport {
    otlp: Option<RawOtlp>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOtlp {
    endpoint: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    /// Values may be secrets (`env:NAME`, `file:PATH`).
    #[serde(default, deserialize_with = "values::secret_text_map")]
    headers: BTreeMap<String, Spanned<String>>,
    interval: Option<Spanned<Dur>>,
    timeout: Option<Spanned<Dur>>,
    temporality: Option<Spanned<String>>,
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

fn resolve_otlp(raw: RawOtlp, source: &Source) -> Result<OtlpSettings, ConfigError> {
    let protocol_text = match &raw.protocol {
        Some(p) => Some((p.get_ref().clone(), Some(p.span()))),
        None => env_first(&["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]).map(|p| (p, None)),
    };
    let protocol = match protocol_text {
        None => OtlpProtocol::Grpc,
        Some((p, span)) => match p.as_str() {
            "grpc" => OtlpProtocol::Grpc,
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            other => {
                let msg = format!("OTLP protocol {other:?}: use \"grpc\" or \"http/protobuf\"");
                return Err(match span {
                    Some(span) => source.error_at(span, Some("export.otlp.protocol"), msg),
                    None => source.error(format!("{msg} (from OTEL_EXPORTER_OTLP_PROTOCOL)")),
                });
            }
        },
    };
    let delta = match &raw.temporality {
        Some(t) => match t.get_ref().as_str() {
            "cumulative" => false,
            "delta" => true,
            other => {
                return Err(source.error_at(
                    t.span(),
                    Some("export.otlp.temporality"),
                    format!("temporality {other:?}: use \"cumulative\" or \"delta\""),
                ));
            }
        },
        None => env_first(&["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"])
            .is_some_and(|v| v.eq_ignore_ascii_case("delta")),
    };
    let base = source.path.parent().unwrap_or(Path::new("."));
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let v = if Secret::is_reference(value.get_ref()) {
            Secret::resolve(value.get_ref(), base)
                .map_err(|e| source.error_at(value.span(), Some(&format!("export.otlp.headers.{name}")), e))?
                .expose()
                .to_string()
        } else {
            value.get_ref().clone()
        };
        let key = format!("export.otlp.headers.{name}");
        if http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
            return Err(source.error_at(value.span(), Some(&key), format!("invalid header name {name:?}")));
        }
        if http::HeaderValue::from_str(&v).is_err() {
            return Err(source.error_at(value.span(), Some(&key), "header value has invalid characters"));
        }
        headers.push((name.clone(), v));
    }
    let interval = match &raw.interval {
        Some(i) if i.get_ref().0 < Duration::from_secs(1) => {
            return Err(source.error_at(i.span(), Some("export.otlp.interval"), "interval must be at least 1s"));
        }
        Some(i) => i.get_ref().0,
        None => env_first(&["OTEL_METRIC_EXPORT_INTERVAL"])
            .and_then(|ms| ms.parse::<u64>().ok())
            .map_or(Duration::from_secs(15), Duration::from_millis),
    };
    if let Some(e) = &raw.endpoint {
        let bad = match url::Url::parse(e.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => None,
            Ok(u) => Some(format!(
                "scheme {:?}: OTLP endpoints are http:// or https:// URLs with a host",
                u.scheme()
            )),
            Err(err) => Some(format!("not a URL ({err}); write e.g. \"http://127.0.0.1:4317\"")),
        };
        if let Some(msg) = bad {
            return Err(source.error_at(e.span(), Some("export.otlp.endpoint"), msg));
        }
    }
    // For http/protobuf a bare base URL gets the signal path, as OTEL_EXPORTER_OTLP_ENDPOINT does.
    let endpoint = raw.endpoint.map(|e| {
        let e = e.into_inner();
        match url::Url::parse(&e) {
            Ok(u) if protocol == OtlpProtocol::HttpProtobuf && matches!(u.path(), "" | "/") => {
                format!("{}/v1/metrics", e.trim_end_matches('/'))
            }
            _ => e,
        }
    });
    Ok(OtlpSettings {
        endpoint,
        protocol,
        headers,
        interval,
        timeout: raw.timeout.map(|t| t.get_ref().0),
        delta,
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Open connections at most (default: a quarter of the open-files limit, ≤ 1024).
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers (default 5s).
    pub header_read_timeout: Option<Dur>,
    /// Close a connection with no traffic for this long (default 60s).
    pub idle_timeout: Option<Dur>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            max_connections: None,
            header_read_timeout: None,
            idle_timeout: None,
        }
    }
}

impl ServerConfig {
    pub fn limits(&self) -> crate::server::Limits {
        let d = crate::server::Limits::default();
        crate::server::Limits {
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            header_read_timeout: self.header_read_timeout.map_or(d.header_read_timeout, |t| t.0),
            idle_timeout: self.idle_timeout.map_or(d.idle_timeout, |t| t.0),
        }
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default")
}

/// The built-in demo target (see `demo.rs`): lets a fresh install show real numbers
/// with no outside service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    pub listen: SocketAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemonFile {
    location: Option<String>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    server: ServerConfig,
    demo: Option<DemoConfig>,
    #[serde(default)]
    export: RawExport,
    #[serde(default, rename = "probe")]
    probes: Vec<RawProbe>,
    #[serde(default, rename = "slo")]
    slos: Vec<RawSlo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbeFile {
    #[serde(default, rename = "probe")]
    probes: Vec<RawProbe>,
    #[serde(default, rename = "slo")]
    slos: Vec<RawSlo>,
}

/// A `[[probe]]` table as written. Keys for every kind live here; a kind rejects the
/// keys it does not use when it is built.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    pub url: Option<Spanned<String>>,
    pub every: Option<Spanned<Dur>>,
    pub cron: Option<Spanned<String>>,
    /// Upper bound of the name-derived start offset; `"0s"` turns it off.
    pub splay: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    /// `fresh` (default): a new connection per run. `reuse`: keep one warm connection.
    pub connection: Option<Spanned<String>>,
    pub follow_redirects: Option<Spanned<u32>>,
    /// `same-origin` (default): credentials are dropped when a redirect leaves the
    /// original scheme/host/port, as curl and browsers do. `always`: keep sending them.
    pub redirect_credentials: Option<Spanned<String>>,
    /// `auto` (ALPN h2 or http/1.1), `1.1` or `2`.
    pub http_version: Option<Spanned<String>>,
    /// assistant: the stream's wire format (`openai-chat`, `openai-responses`,
    /// `anthropic-messages`, `sse`, `chunked`).
    pub format: Option<Spanned<String>>,
    /// assistant: the longest silence allowed between two events.
    pub stall_timeout: Option<Spanned<Dur>>,
    /// assistant: the longest SSE line or event accepted (default 1 MiB).
    pub max_event: Option<Spanned<Size>>,
    /// assistant: the request body (JSON) inline, or from a file.
    pub body: Option<Spanned<String>>,
    pub body_file: Option<Spanned<String>>,
    #[serde(default)]
    pub request: RequestConfig,
    #[serde(default)]
    pub expect: ExpectConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub budget: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    pub method: Option<Spanned<String>>,
    /// Values may be secrets (`env:NAME`, `file:PATH`).
    #[serde(default, deserialize_with = "values::secret_text_map")]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub body_file: Option<Spanned<String>>,
    /// A generated body of this many bytes (upload checks).
    pub body_size: Option<Spanned<Size>>,
    /// `env:NAME` or `file:PATH`; sent as `Authorization: Bearer ...`.
    #[serde(default, deserialize_with = "values::secret_text")]
    pub bearer: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectConfig {
    pub status: Option<Spanned<Vec<u16>>>,
    #[serde(default)]
    pub header_present: Vec<Spanned<String>>,
    pub body_regex: Option<Spanned<String>>,
    pub body_not_regex: Option<Spanned<String>>,
    /// Body assertions look at this many leading bytes (default 1 MiB, at most 64 MiB).
    pub match_window: Option<Spanned<Size>>,
    pub max_body: Option<Spanned<Size>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with extra trusted CA certificates.
    pub ca_file: Option<Spanned<String>>,
    /// Accept any certificate. Only for targets you control.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// SNI / verification name when it differs from the URL host.
    pub server_name: Option<Spanned<String>>,
}

/// One probe after the shared checks: schedule resolved, raw keys kept for the kind's build.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub name: String,
    pub kind: String,
    pub schedule: Schedule,
    pub timeout: Duration,
    pub raw: RawProbe,
    pub source: Arc<Source>,
}

impl ProbeConfig {
    /// An error located at a span of this probe's file.
    pub fn error_at<T>(&self, spanned: &Spanned<T>, key: &str, msg: impl Into<String>) -> ConfigError {
        self.source.error_at(spanned.span(), Some(key), msg)
    }

    /// Resolves a secret reference, reporting a missing one at its line.
    pub fn secret(&self, reference: &Spanned<String>, key: &str) -> Result<Secret, ConfigError> {
        let base = self.source.path.parent().unwrap_or(Path::new("."));
        Secret::resolve(reference.get_ref(), base).map_err(|e| self.error_at(reference, key, e))
    }

    /// Reads a file named at `at` (relative to this config file) up to `cap` bytes.
    pub fn read_file(&self, at: &Spanned<String>, key: &str, cap: u64) -> Result<Vec<u8>, ConfigError> {
        read_capped(&self.path(at.get_ref()), cap).map_err(|e| self.error_at(at, key, e))
    }

    /// Resolves a path written in config relative to the file it is written in.
    pub fn path(&self, p: &str) -> PathBuf {
        self.source.path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

impl Config {
    /// Reads the daemon file and every probe file it includes.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = read_source(path)?;
        let raw: RawDaemonFile = toml::from_str(&source.text).map_err(|e| source.from_toml(&e))?;
        let otlp = raw.export.otlp.map(|o| resolve_otlp(o, &source)).transpose()?;
        let source = Arc::new(source);

        let mut probes: Vec<(RawProbe, Arc<Source>)> = raw.probes.into_iter().map(|p| (p, source.clone())).collect();
        let mut slos: Vec<(RawSlo, Arc<Source>)> = raw.slos.into_iter().map(|s| (s, source.clone())).collect();
        let base = path.parent().unwrap_or(Path::new("."));
        let mut files_read = 0;
        for pattern in &raw.include {
            for file in expand_include(&source, base, pattern)? {
                files_read += 1;
                let src = Arc::new(read_source(&file)?);
                let pf: RawProbeFile = toml::from_str(&src.text).map_err(|e| src.from_toml(&e))?;
                probes.extend(pf.probes.into_iter().map(|p| (p, src.clone())));
                slos.extend(pf.slos.into_iter().map(|s| (s, src.clone())));
            }
        }

        // Positions are turned into line numbers only for the error: doing it for every
        // probe made loading quadratic in the file size.
        let mut seen: HashMap<String, (Arc<Source>, usize)> = HashMap::with_capacity(probes.len());
        let mut out = Vec::with_capacity(probes.len());
        for (raw_probe, src) in probes {
            let cfg = validate_probe(raw_probe, src)?;
            if let Some((first_src, first_at)) = seen.get(&cfg.name) {
                let (line, _) = error::line_col(&first_src.text, *first_at);
                return Err(cfg.error_at(
                    &cfg.raw.name,
                    "probe.name",
                    format!(
                        "duplicate probe name {:?} (first defined at {}:{line})",
                        cfg.name,
                        first_src.path.display()
                    ),
                ));
            }
            seen.insert(cfg.name.clone(), (cfg.source.clone(), cfg.raw.name.span().start));
            out.push(cfg);
        }
        if out.is_empty() {
            return Err(source.error(format!(
                "no probes defined: add [[probe]] tables here or in files matched by `include` ({} include pattern(s), {} file(s) read)",
                raw.include.len(),
                files_read
            )));
        }

        Ok(Config {
            path: path.to_path_buf(),
            location: raw.location.unwrap_or_else(|| "default".to_string()),
            server: raw.server,
            demo: raw.demo,
            otlp,
            probes: out,
            slos,
        })
    }
}

fn read_source(path: &Path) -> Result<Source, ConfigError> {
    let error = |message: String| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        key: String::new(),
        message,
    };
    let bytes = read_capped(path, MAX_CONFIG_FILE).map_err(|e| error(format!("cannot load config file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| error("config file is not UTF-8 text".to_string()))?;
    Ok(Source {
        path: path.to_path_buf(),
        text,
    })
}

fn expand_include(source: &Source, base: &Path, pattern: &Spanned<String>) -> Result<Vec<PathBuf>, ConfigError> {
    let full = base.join(pattern.get_ref());
    if full.is_dir() {
        return Err(source.error_at(
            pattern.span(),
            Some("include"),
            format!(
                "{} is a directory; include its files with a glob such as \"{}/*.toml\"",
                full.display(),
                pattern.get_ref().trim_end_matches('/')
            ),
        ));
    }
    let full_str = full.to_string_lossy();
    let paths = glob::glob(&full_str)
        .map_err(|e| source.error_at(pattern.span(), Some("include"), format!("bad glob: {e}")))?;
    let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
    files.sort();
    let is_glob = pattern.get_ref().contains(['*', '?', '[']);
    if files.is_empty() && !is_glob {
        return Err(source.error_at(
            pattern.span(),
            Some("include"),
            format!("included file {} does not exist", full.display()),
        ));
    }
    Ok(files)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn validate_probe(raw: RawProbe, source: Arc<Source>) -> Result<ProbeConfig, ConfigError> {
    let err = |span: std::ops::Range<usize>, key: &str, msg: String| source.error_at(span, Some(key), msg);
    let name = raw.name.get_ref().clone();
    if !valid_name(&name) {
        return Err(err(
            raw.name.span(),
            "probe.name",
            format!("probe name {name:?} must be 1-64 characters of A-Z a-z 0-9 - _ ."),
        ));
    }
    let schedule = match (&raw.every, &raw.cron) {
        (Some(_), Some(c)) => {
            return Err(err(
                c.span(),
                "probe.cron",
                "set either `every` or `cron`, not both".into(),
            ));
        }
        (None, None) => {
            return Err(err(
                raw.name.span(),
                "probe.every",
                format!("probe {name:?} has no schedule: set `every = \"30s\"` or `cron = \"*/5 * * * *\"`"),
            ));
        }
        (Some(every), None) => {
            let interval = every.get_ref().0;
            // The upper bound keeps timeline arithmetic far from overflow.
            if interval < Duration::from_millis(100) || interval > Duration::from_secs(366 * 86400) {
                return Err(err(
                    every.span(),
                    "probe.every",
                    "interval must be between 100ms and 366d".into(),
                ));
            }
            if let Some(s) = &raw.splay
                && s.get_ref().0 > interval
            {
                return Err(err(
                    s.span(),
                    "probe.splay",
                    format!(
                        "splay {} is longer than the interval {}: the start offset is always within one interval",
                        humantime::format_duration(s.get_ref().0),
                        humantime::format_duration(interval)
                    ),
                ));
            }
            let max_splay = raw.splay.as_ref().map_or(interval, |s| s.get_ref().0);
            Schedule::every(interval, &name, max_splay)
        }
        (None, Some(cron)) => {
            let max_splay = raw.splay.as_ref().map_or(Duration::ZERO, |s| s.get_ref().0);
            let schedule =
                Schedule::cron(cron.get_ref(), &name, max_splay).map_err(|e| err(cron.span(), "probe.cron", e))?;
            if let Some(s) = &raw.splay
                && s.get_ref().0 > schedule.shortest_period()
            {
                return Err(err(
                    s.span(),
                    "probe.splay",
                    format!(
                        "splay {} is longer than the cron period {}",
                        humantime::format_duration(s.get_ref().0),
                        humantime::format_duration(schedule.shortest_period())
                    ),
                ));
            }
            schedule
        }
    };
    let period = schedule.shortest_period();
    let timeout = match &raw.timeout {
        Some(t) => {
            let t_val = t.get_ref().0;
            if t_val.is_zero() {
                return Err(err(t.span(), "probe.timeout", "timeout must be above zero".into()));
            }
            if t_val >= period {
                return Err(err(
                    t.span(),
                    "probe.timeout",
                    format!(
                        "timeout {} must be shorter than the interval {} (runs of one probe never overlap)",
                        humantime::format_duration(t_val),
                        humantime::format_duration(period)
                    ),
                ));
            }
            t_val
        }
        None => MAX_DEFAULT_TIMEOUT.min(period.mul_f64(0.9)),
    };
    Ok(ProbeConfig {
        name,
        kind: raw.kind.get_ref().clone(),
        schedule,
        timeout,
        raw,
        source,
    })
}
