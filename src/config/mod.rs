//! Loading and validating the TOML config: one daemon file plus probe files it includes.
//!
//! This layer reads what every probe shares (`name`, `kind`, the schedule, `timeout`,
//! budgets). The rest of each `[[probe]]` table, with its source spans, goes to the kind's
//! own settings type (`probe::Kind::settings`), so errors keep file, line and key and no
//! key of one kind is named here.

mod error;
pub mod schema;
mod values;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::IntoDeserializer as _;
use toml::de::{DeTable, DeValue};

pub use error::{ConfigError, Source};
pub use values::{Dur, Secret, SecretText, Size, Spanned, fmt_seconds, parse_duration, parse_size, read_capped};

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
    /// FNV-1a of every file read, in order (`sloprobe_config_info{config_hash}`).
    pub hash: String,
    pub histograms: crate::telemetry::HistogramMode,
    /// `[fleet] shard`.
    pub shard: Option<crate::fleet::Shard>,
    pub location: String,
    pub server: ServerConfig,
    pub demo: Option<DemoConfig>,
    pub otlp: Option<OtlpSettings>,
    /// `[browser]`, checked.
    pub browser: crate::probe::browser::driver::HostSettings,
    /// `[rum]`, checked; `None` when the collector is off.
    pub rum: Option<crate::rum::RumSettings>,
    pub probes: Vec<ProbeConfig>,
    /// `[[slo]]` entries as written; `slo::resolve` checks them against the probes.
    pub slos: Vec<(RawSlo, Arc<Source>)>,
}

/// A `[[slo]]` table as written (daemon file or probe files).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    /// Unique SLO name (A-Z a-z 0-9 - _ .).
    pub name: Spanned<String>,
    /// The probes whose runs count toward this SLO.
    pub probes: Option<Spanned<Vec<String>>>,
    /// Instead of probes: RUM routes whose real page views count ("*" = every route).
    pub routes: Option<Spanned<Vec<String>>>,
    /// `success`, or a measurement (`ttfb`, `ttft`, ...) judged against `threshold`; with
    /// `routes`, a vital (`lcp`, `inp`, `cls`, ...).
    pub sli: Spanned<String>,
    /// For a measurement SLI: the good/bad line; defaults to the probes' per-run budget.
    #[schemars(with = "Option<schema::Threshold>")]
    pub threshold: Option<Spanned<toml::Value>>,
    /// The target share of good runs, between 0 and 1 (e.g. 0.999).
    pub objective: Spanned<f64>,
    /// The SLO period (default 30d).
    #[serde(default = "default_slo_window")]
    pub window: Spanned<Dur>,
    /// Error types left out of a success SLI, e.g. `["rate_limited"]`.
    #[serde(default)]
    pub exclude_errors: Vec<Spanned<String>>,
    /// Labels on every rule and alert of this SLO, e.g. `{ team = "search" }` (routing).
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
    /// Alert annotations, e.g. `{ runbook_url = "https://…", summary = "…" }`.
    #[serde(default)]
    pub annotations: BTreeMap<String, Spanned<String>>,
    /// The `severity` label of the two alert tiers (default "page" and "ticket").
    #[serde(default)]
    pub severity: SloSeverity,
    /// Page only when at least this many locations burn at once (multi-location quorum).
    pub min_locations: Option<Spanned<u32>>,
    /// Sloth's `service` label (`sloth_service`); default "sloprobe".
    pub service: Option<Spanned<String>>,
}

/// `[slo.severity]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloSeverity {
    /// Severity of the fast-burn alert (default "page").
    #[serde(default = "default_page")]
    pub page: String,
    /// Severity of the slow-burn and no-data alerts (default "ticket").
    #[serde(default = "default_ticket")]
    pub ticket: String,
}

impl Default for SloSeverity {
    fn default() -> Self {
        SloSeverity {
            page: default_page(),
            ticket: default_ticket(),
        }
    }
}

fn default_page() -> String {
    "page".into()
}

fn default_ticket() -> String {
    "ticket".into()
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

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExport {
    /// OTLP push beside /metrics (docs/config.md).
    otlp: Option<RawOtlp>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawOtlp {
    /// Collector URL (http:// or https://); default from OTEL_EXPORTER_OTLP_ENDPOINT.
    endpoint: Option<Spanned<String>>,
    /// "grpc" (default) or "http/protobuf".
    protocol: Option<Spanned<String>>,
    /// Header name → value; values may be secrets (`env:NAME`, `file:PATH`).
    #[serde(default)]
    headers: BTreeMap<String, Spanned<SecretText>>,
    /// How often to push (at least 1s; default 15s).
    interval: Option<Spanned<Dur>>,
    /// Per export (default 10s).
    timeout: Option<Spanned<Dur>>,
    /// "cumulative" (default) or "delta".
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
        let v = if Secret::is_reference(value.get_ref().as_str()) {
            Secret::resolve(value.get_ref().as_str(), base)
                .map_err(|e| source.error_at(value.span(), Some(&format!("export.otlp.headers.{name}")), e))?
                .expose()
                .to_string()
        } else {
            value.get_ref().0.clone()
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for /metrics, /healthz and /readyz (default 127.0.0.1:9464).
    #[serde(default = "default_listen")]
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// Open connections at most (default: a quarter of the open-files limit, ≤ 1024).
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers (default 5s).
    pub header_read_timeout: Option<Dur>,
    /// Close a connection with no traffic for this long (default 60s).
    pub idle_timeout: Option<Dur>,
    /// Accept `POST /-/reload` from any address (default: loopback only).
    #[serde(default)]
    pub remote_reload: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            max_connections: None,
            header_read_timeout: None,
            idle_timeout: None,
            remote_reload: false,
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

/// The built-in demo target (see `demo/`): lets a fresh install show real numbers
/// with no outside service.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Address the demo target listens on, e.g. "127.0.0.1:9465".
    #[schemars(with = "String")]
    pub listen: SocketAddr,
}

/// The daemon file, less its `[[probe]]` tables (read by `read_probes`). Probe files hold
/// only `[[probe]]` and `[[slo]]`, so they are read as this too and checked for that.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDaemonFile {
    /// Where the probes run from: the `probe.location` attribute on every metric.
    location: Option<String>,
    /// Probe files, as globs relative to this file.
    #[serde(default)]
    include: Vec<Spanned<String>>,
    /// The daemon's own endpoints.
    #[serde(default)]
    server: ServerConfig,
    /// The built-in demo target.
    demo: Option<DemoConfig>,
    /// Push exporters.
    #[serde(default)]
    export: RawExport,
    /// How metrics are aggregated.
    #[serde(default)]
    metrics: RawMetrics,
    /// Running several daemons as one fleet.
    #[serde(default)]
    fleet: RawFleet,
    /// SLOs over the probes (docs/slo.md).
    #[serde(default, rename = "slo")]
    slos: Vec<RawSlo>,
    /// Client bundle budgets for `sloprobe bundle`. Parsed here so a typo in them is a
    /// config error for `check` too; the daemon itself does not use them.
    #[serde(default, rename = "bundle")]
    #[allow(dead_code)]
    bundles: Vec<crate::bundle::BundleConfig>,
    /// Where browser probes find Chromium and chromedriver, and how many run at once.
    #[serde(default)]
    browser: crate::probe::browser::driver::BrowserConfig,
    /// The RUM collector: web-vitals and Faro beacons from real browsers (docs/rum.md).
    rum: Option<crate::rum::RumConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    /// Run only the probes rendezvous hashing assigns to shard "i/n" (--shard and
    /// SLOPROBE_SHARD win over this).
    shard: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// "explicit" (default): fixed bucket edges. "exponential": OTel base-2 exponential
    /// histograms over OTLP, Prometheus native histograms over the protobuf exposition.
    #[serde(default)]
    histograms: crate::telemetry::HistogramMode,
}

/// The keys every probe kind shares. The kind's own keys are its settings type's.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeCommon {
    /// Unique across all files; 1-64 of A-Z a-z 0-9 - _ .
    pub name: Spanned<String>,
    /// The probe kind; it decides which other keys the table takes.
    pub kind: Spanned<String>,
    /// Fixed interval, 100ms to 366d; set this or `cron`.
    pub every: Option<Spanned<Dur>>,
    /// Cron expression, 5 fields (minute first) or 6 (seconds first), local time.
    pub cron: Option<Spanned<String>>,
    /// Upper bound of the name-derived start offset; "0s" turns it off.
    pub splay: Option<Spanned<Dur>>,
    /// Bounds the whole run; shorter than the interval. Default min(10s, 0.9 × interval).
    pub timeout: Option<Spanned<Dur>>,
    /// Per-run thresholds by measurement, and `pNN` tables of percentile thresholds.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, schema::Threshold>")]
    pub budget: BTreeMap<String, Spanned<toml::Value>>,
    /// Up to 8 labels on every series of this probe and its SLOs' alerts, e.g. `team = "search"`.
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
}

/// The keys `ProbeCommon` takes; everything else in a `[[probe]]` table is the kind's.
pub const COMMON_KEYS: &[&str] = &["name", "kind", "every", "cron", "splay", "timeout", "budget", "labels"];

/// At most this many `[probe.labels]` per probe, so series stay bounded.
pub const MAX_PROBE_LABELS: usize = 8;

/// Label names the daemon sets itself; `[probe.labels]` cannot take them.
const RESERVED_LABELS: &[&str] = &[
    "le",
    "job",
    "instance",
    "outcome",
    "measurement",
    "threshold",
    "verdict",
    "phase",
    "reason",
    "slo",
    "severity",
];

fn check_labels(raw: &ProbeCommon, source: &Source) -> Result<Vec<(String, String)>, ConfigError> {
    if raw.labels.len() > MAX_PROBE_LABELS {
        let (_, first) = raw.labels.iter().nth(MAX_PROBE_LABELS).expect("more than the max");
        return Err(source.error_at(
            first.span(),
            Some("probe.labels"),
            format!(
                "at most {MAX_PROBE_LABELS} labels per probe (each multiplies nothing, but each is on every series)"
            ),
        ));
    }
    let mut out = Vec::with_capacity(raw.labels.len());
    for (k, v) in &raw.labels {
        let key = format!("probe.labels.{k}");
        let name_ok = crate::slo::valid_label_name(k)
            && k.len() <= 32
            && !RESERVED_LABELS.contains(&k.as_str())
            && !k.starts_with("probe_")
            && !k.starts_with("otel_")
            && !k.starts_with("error_")
            && !k.contains("__");
        if !name_ok {
            return Err(source.error_at(
                v.span(),
                Some(&key),
                format!("label name {k:?}: use 1-32 of a-z A-Z 0-9 _ (not starting with a digit), and not a name sloprobe sets itself (probe_*, otel_*, error_*, le, job, instance, outcome, measurement, threshold, verdict, phase, reason, slo, severity)"),
            ));
        }
        let value = v.get_ref();
        if value.is_empty() || value.len() > 64 || value.chars().any(char::is_control) {
            return Err(source.error_at(
                v.span(),
                Some(&key),
                "label values are 1-64 printable characters (a fixed value, never a URL or an id)",
            ));
        }
        out.push((k.clone(), value.clone()));
    }
    Ok(out)
}

/// One probe after the shared checks, with its kind's settings parsed.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub name: String,
    pub kind: &'static crate::probe::Kind,
    pub schedule: Schedule,
    pub timeout: Duration,
    /// `[probe.labels]`, validated.
    pub labels: Vec<(String, String)>,
    pub common: ProbeCommon,
    pub settings: Arc<dyn crate::probe::Settings>,
    pub source: Arc<Source>,
}

impl ProbeConfig {
    /// An error located at a span of this probe's file.
    pub fn error_at<T>(&self, spanned: &Spanned<T>, key: &str, msg: impl Into<String>) -> ConfigError {
        self.source.error_at(spanned.span(), Some(key), msg)
    }

    /// Resolves a secret reference, reporting a missing one at its line.
    pub fn secret(&self, reference: &Spanned<SecretText>, key: &str) -> Result<Secret, ConfigError> {
        let base = self.source.path.parent().unwrap_or(Path::new("."));
        Secret::resolve(reference.get_ref().as_str(), base).map_err(|e| self.error_at(reference, key, e))
    }

    /// Reads a file named at `at` (relative to this config file) up to `cap` bytes.
    pub fn read_file(&self, at: &Spanned<String>, key: &str, cap: u64) -> Result<Vec<u8>, ConfigError> {
        read_capped(&self.path(at.get_ref()), cap).map_err(|e| self.error_at(at, key, e))
    }

    /// A size key bounded to 1 byte ..= `max`, or `default` when unset.
    pub fn size_within(
        &self,
        at: Option<&Spanned<Size>>,
        key: &str,
        default: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match at {
            None => Ok(default),
            Some(s) if s.get_ref().0 == 0 || s.get_ref().0 > max => {
                let field = key.rsplit('.').next().unwrap_or(key);
                Err(self.error_at(
                    s,
                    key,
                    format!(
                        "{field} must be between 1 byte and {}",
                        bytesize::ByteSize(max).display().iec()
                    ),
                ))
            }
            Some(s) => Ok(s.get_ref().0),
        }
    }

    /// Resolves a path written in config relative to the file it is written in.
    pub fn path(&self, p: &str) -> PathBuf {
        self.source.path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

impl Config {
    /// Reads the daemon file and every probe file it includes.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = Arc::new(read_source(path)?);
        let mut hash = FNV_OFFSET;
        hash = fnv(hash, source.text.as_bytes());
        let (raw, mut probes) = read_file(&source)?;
        let otlp = raw.export.otlp.map(|o| resolve_otlp(o, &source)).transpose()?;
        let browser = check_browser(&raw.browser, &source)?;
        let rum = raw.rum.as_ref().map(|r| r.check(&source)).transpose()?;
        let shard = raw
            .fleet
            .shard
            .as_ref()
            .map(|s| {
                crate::fleet::Shard::parse(s.get_ref()).map_err(|e| source.error_at(s.span(), Some("fleet.shard"), e))
            })
            .transpose()?;
        let mut slos: Vec<(RawSlo, Arc<Source>)> = raw.slos.into_iter().map(|s| (s, source.clone())).collect();
        let base = path.parent().unwrap_or(Path::new("."));
        let mut files_read = 0;
        for pattern in &raw.include {
            for file in expand_include(&source, base, pattern)? {
                files_read += 1;
                let src = Arc::new(read_source(&file)?);
                hash = fnv(hash, src.path.to_string_lossy().as_bytes());
                hash = fnv(hash, src.text.as_bytes());
                let (pf, more) = read_file(&src)?;
                if let Some(key) = pf.daemon_only_key() {
                    return Err(src.error(format!(
                        "`{key}` belongs in the daemon file; probe files hold only [[probe]] and [[slo]]"
                    )));
                }
                probes.extend(more);
                slos.extend(pf.slos.into_iter().map(|s| (s, src.clone())));
            }
        }

        // Positions are turned into line numbers only for the error: doing it for every
        // probe made loading quadratic in the file size.
        let mut seen: HashMap<String, (Arc<Source>, usize)> = HashMap::with_capacity(probes.len());
        for cfg in &probes {
            if let Some((first_src, first_at)) = seen.get(&cfg.name) {
                let (line, _) = error::line_col(&first_src.text, *first_at);
                return Err(cfg.error_at(
                    &cfg.common.name,
                    "probe.name",
                    format!(
                        "duplicate probe name {:?} (first defined at {}:{line})",
                        cfg.name,
                        first_src.path.display()
                    ),
                ));
            }
            seen.insert(cfg.name.clone(), (cfg.source.clone(), cfg.common.name.span().start));
        }
        if probes.is_empty() && rum.is_none() {
            return Err(source.error(format!(
                "no probes defined (and no [rum] collector): add [[probe]] tables here or in files matched by `include` ({} include pattern(s), {} file(s) read)",
                raw.include.len(),
                files_read
            )));
        }

        Ok(Config {
            path: path.to_path_buf(),
            hash: format!("{hash:016x}"),
            histograms: raw.metrics.histograms,
            shard,
            location: raw.location.unwrap_or_else(|| "default".to_string()),
            server: raw.server,
            demo: raw.demo,
            otlp,
            browser,
            rum,
            probes,
            slos,
        })
    }
}

impl RawDaemonFile {
    /// A key set that only the daemon file may set, if any.
    fn daemon_only_key(&self) -> Option<&'static str> {
        let server_set = self.server.listen != default_listen()
            || self.server.max_connections.is_some()
            || self.server.header_read_timeout.is_some()
            || self.server.idle_timeout.is_some();
        [
            (self.location.is_some(), "location"),
            (!self.include.is_empty(), "include"),
            (server_set, "server"),
            (self.demo.is_some(), "demo"),
            (self.rum.is_some(), "rum"),
            (self.export.otlp.is_some(), "export"),
            (
                self.metrics.histograms != crate::telemetry::HistogramMode::default(),
                "metrics",
            ),
        ]
        .into_iter()
        .find_map(|(set, key)| set.then_some(key))
    }
}

/// Parses one file: the `[[probe]]` tables one by one (shared keys here, the rest by the
/// kind), and everything else as a daemon file.
fn read_file(source: &Arc<Source>) -> Result<(RawDaemonFile, Vec<ProbeConfig>), ConfigError> {
    let doc = DeTable::parse(&source.text).map_err(|e| source.from_toml(&e))?;
    let span = doc.span();
    let mut rest = DeTable::new();
    let mut probe_tables = None;
    for (key, value) in doc.into_inner() {
        if key.get_ref() == "probe" {
            probe_tables = Some(value);
        } else {
            rest.insert(key, value);
        }
    }
    let raw = RawDaemonFile::deserialize(toml::Spanned::new(span, rest).into_deserializer())
        .map_err(|e| source.from_toml(&e))?;
    let mut probes = Vec::new();
    if let Some(tables) = probe_tables {
        let at = tables.span();
        let DeValue::Array(items) = tables.into_inner() else {
            return Err(source.error_at(at, Some("probe"), "write probes as [[probe]] tables"));
        };
        for item in items {
            probes.push(read_probe(item, source)?);
        }
    }
    Ok((raw, probes))
}

/// Splits one `[[probe]]` table into the shared keys and the kind's, and parses both.
fn read_probe(table: toml::Spanned<DeValue<'_>>, source: &Arc<Source>) -> Result<ProbeConfig, ConfigError> {
    let span = table.span();
    let DeValue::Table(entries) = table.into_inner() else {
        return Err(source.error_at(span, Some("probe"), "write probes as [[probe]] tables"));
    };
    let (mut common, mut own) = (DeTable::new(), DeTable::new());
    for (key, value) in entries {
        if COMMON_KEYS.contains(&key.get_ref().as_ref()) {
            common.insert(key, value);
        } else {
            own.insert(key, value);
        }
    }
    let common = ProbeCommon::deserialize(toml::Spanned::new(span.clone(), DeValue::Table(common)).into_deserializer())
        .map_err(|e| probe_key_error(source, &e, span.start, None))?;
    let Some(kind) = crate::probe::kind(common.kind.get_ref()) else {
        let known: Vec<&str> = crate::probe::KINDS.iter().map(|k| k.name).collect();
        return Err(source.error_at(
            common.kind.span(),
            Some("probe.kind"),
            format!(
                "unknown probe kind {:?}; known kinds: {}",
                common.kind.get_ref(),
                known.join(", ")
            ),
        ));
    };
    let settings = (kind.settings)(toml::Spanned::new(span.clone(), DeValue::Table(own)).into_deserializer())
        .map_err(|e| probe_key_error(source, &e, common.name.span().start, Some(kind.name)))?;
    validate_probe(common, kind, settings.into(), source.clone())
}

/// A serde error inside a `[[probe]]` table, with the key path named: `missing field` is
/// placed at the probe's name, and an unknown key says which kind rejected it.
fn probe_key_error(source: &Source, e: &toml::de::Error, name_at: usize, kind: Option<&str>) -> ConfigError {
    let message = e.message().trim();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        let what = kind.map_or_else(|| "every probe".to_string(), |k| format!("a {k:?} probe"));
        return source.error_at(
            name_at..name_at,
            Some(&format!("probe.{field}")),
            format!("{what} needs `{field}`"),
        );
    }
    let mut err = source.from_toml(e);
    if let Some(rest) = message.strip_prefix("unknown variant") {
        // "unknown variant `grpc`" reads better as "unknown format `grpc`".
        let what = err.key.rsplit('.').next().unwrap_or("value").to_string();
        err.message = format!("unknown {what}{rest}");
    }
    if let (Some(kind), true) = (kind, message.starts_with("unknown field")) {
        err.message = message.replacen(", expected", &format!(" for kind {kind:?}, expected"), 1);
    }
    err
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
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

fn validate_probe(
    raw: ProbeCommon,
    kind: &'static crate::probe::Kind,
    settings: Arc<dyn crate::probe::Settings>,
    source: Arc<Source>,
) -> Result<ProbeConfig, ConfigError> {
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
    let labels = check_labels(&raw, &source)?;
    Ok(ProbeConfig {
        name,
        kind,
        schedule,
        timeout,
        labels,
        common: raw,
        settings,
        source,
    })
}

/// `[browser]`: a WebDriver URL that parses, a sane slot count.
fn check_browser(
    c: &crate::probe::browser::driver::BrowserConfig,
    source: &Source,
) -> Result<crate::probe::browser::driver::HostSettings, ConfigError> {
    if let Some(u) = &c.webdriver_url {
        let ok =
            url::Url::parse(u.get_ref()).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(source.error_at(
                u.span(),
                Some("browser.webdriver_url"),
                format!("{:?} is not an http(s) URL", crate::redact::url(u.get_ref())),
            ));
        }
    }
    if let Some(n) = &c.max_concurrent_browsers
        && !(1..=64).contains(n.get_ref())
    {
        return Err(source.error_at(n.span(), Some("browser.max_concurrent_browsers"), "between 1 and 64"));
    }
    for (key, p) in [
        ("browser.chromedriver", &c.chromedriver),
        ("browser.chromium", &c.chromium),
    ] {
        if let Some(p) = p
            && !std::path::Path::new(p.get_ref()).is_file()
        {
            return Err(source.error_at(p.span(), Some(key), format!("{} is not a file", p.get_ref())));
        }
    }
    Ok(crate::probe::browser::driver::HostSettings::from_config(c))
}
