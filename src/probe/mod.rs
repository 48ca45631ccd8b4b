//! Probe kinds behind one small interface. Each kind is one file (or folder) that owns its
//! config keys (a serde [`Settings`] type), its measurement catalog and its run; the
//! registry below is the only list of kinds. Runs are driven here, so timeouts and
//! budgets work the same for every kind.

/// A connection phase of an HTTP-speaking probe, all feeding one bucketless histogram
/// labelled by `phase` (its sum and count give the mean per phase). Defined before the
/// kind modules so both can use it.
macro_rules! http_phase {
    ($key:literal, $labels:expr) => {
        $crate::outcome::Measure {
            key: $key,
            metric: "probe.http.phase.duration",
            unit: $crate::outcome::Unit::Seconds,
            instrument: $crate::outcome::Instrument::Mean,
            description: "HTTP probe time by phase (dns, connect, tls, send, wait, transfer); phases are disjoint. Count and sum only: rate(sum)/rate(count) is the mean.",
            fixed: &[("phase", $key)],
            labels: $labels,
        }
    };
}

pub mod assistant;
pub mod browser;
pub mod http;
pub mod http_config;
pub mod vector;
pub mod websocket;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt as _;

use crate::budget::{self, Budgets};
use crate::config::{ConfigError, ProbeConfig};
use crate::net::{self, Resolver};
use crate::outcome::{COMMON_MEASURES, ErrorType, Measure, Outcome, ProbeError, Recorder};
use crate::schedule::Schedule;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The one probe signature: run once, writing measurements into `rec` as phases complete.
/// The runner may drop the future at the timeout; whatever `rec` holds by then is kept.
pub trait Probe: Send + Sync {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>>;
}

type TlsKey = (Option<PathBuf>, bool, Vec<Vec<u8>>);

/// Shared, long-lived things a probe may need.
#[derive(Clone)]
pub struct BuildContext {
    pub resolver: Resolver,
    /// `[browser]`: one chromedriver and one slot pool for the browser probes built
    /// together, started at their first run.
    browser_settings: browser::driver::HostSettings,
    browsers: Arc<std::sync::OnceLock<Arc<browser::driver::Browsers>>>,
    /// TLS client configs shared by probes with the same settings: a root store is
    /// ~150 KB, which 1,000 probes should not each hold a copy of.
    tls: Arc<Mutex<HashMap<TlsKey, Arc<rustls::ClientConfig>>>>,
}

impl BuildContext {
    pub fn new() -> Self {
        BuildContext {
            resolver: net::dns::system_resolver(),
            browser_settings: browser::driver::HostSettings::default(),
            browsers: Arc::default(),
            tls: Arc::default(),
        }
    }

    /// With the daemon file's `[browser]` settings.
    pub fn with_browser(settings: browser::driver::HostSettings) -> Self {
        BuildContext {
            browser_settings: settings,
            ..BuildContext::new()
        }
    }

    pub fn browsers(&self) -> Arc<browser::driver::Browsers> {
        self.browsers
            .get_or_init(|| Arc::new(browser::driver::Browsers::new(self.browser_settings.clone())))
            .clone()
    }

    pub fn tls_config(
        &self,
        ca_file: Option<&Path>,
        insecure_skip_verify: bool,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let key = (
            ca_file.map(Path::to_path_buf),
            insecure_skip_verify,
            alpn.iter().map(|a| a.to_vec()).collect(),
        );
        let mut cache = self.tls.lock().expect("tls cache lock");
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let config = net::tls::client_config(ca_file, insecure_skip_verify, alpn)?;
        cache.insert(key, config.clone());
        Ok(config)
    }
}

impl Default for BuildContext {
    fn default() -> Self {
        Self::new()
    }
}

/// A kind's own config keys, parsed from the `[[probe]]` table (less the shared keys) by
/// serde with `deny_unknown_fields`; the type is the one source of the kind's keys, for
/// parsing, for the JSON Schema and for the docs' key tables.
pub trait Settings: std::fmt::Debug + Send + Sync {
    /// Checks what serde cannot (secrets, files, value ranges) and builds the probe.
    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError>;
    /// Lines for `check`'s plan: the target (URL redacted), secrets as references only.
    fn plan(&self) -> Vec<String>;
    /// Measurements this probe adds to its kind's catalog (named by its config, such as a
    /// websocket step's `measure`).
    fn measures(&self) -> Vec<&'static Measure> {
        Vec::new()
    }
    /// Budgets the kind reads from elsewhere (a Lighthouse budget.json); keys in
    /// `[probe.budget]` win over these.
    fn budgets(
        &self,
        _cfg: &ProbeConfig,
        _measures: &[&'static Measure],
    ) -> Result<Vec<budget::Threshold>, ConfigError> {
        Ok(Vec::new())
    }
    /// Why this probe cannot run on this host (its browser is not installed), if so: the
    /// daemon then leaves it unscheduled with a log line; `once` runs it and fails.
    fn unavailable(&self, _ctx: &BuildContext) -> Option<String> {
        None
    }
    /// Outcome labels that take one value on this probe whatever happens, such as a
    /// fresh-connection http probe's `probe.connection`. Telemetry sizes its series
    /// tables by them (a filled table is resident memory).
    fn single_valued_labels(&self) -> &'static [&'static str] {
        &[]
    }
}

/// Parses a kind's settings from what is left of its `[[probe]]` table.
pub type SettingsFn = fn(toml::de::ValueDeserializer<'_>) -> Result<Box<dyn Settings>, toml::de::Error>;

/// `Kind::settings` for a settings type.
pub fn settings_of<T: Settings + serde::de::DeserializeOwned + 'static>(
    d: toml::de::ValueDeserializer<'_>,
) -> Result<Box<dyn Settings>, toml::de::Error> {
    Ok(Box::new(T::deserialize(d)?))
}

/// A registered probe kind.
pub struct Kind {
    pub name: &'static str,
    pub measures: &'static [Measure],
    pub settings: SettingsFn,
    /// The settings type's JSON Schema (`<T as JsonSchema>::json_schema`).
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// Budgets that together define a "good" run; when set, every run records
    /// `goodput` = 1 if it succeeded within all of them, else 0.
    pub goodput: &'static [&'static str],
    /// The measurements a one-line run summary shows (the kind's headline first).
    pub headline: &'static [&'static str],
    /// `once --runs N` judges per-run budgets on the median of the N runs (as Lighthouse
    /// CI does), not on every run: for noisy page loads.
    pub median_gate: bool,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kind({})", self.name)
    }
}

pub const KINDS: &[Kind] = &[
    http::KIND,
    assistant::KIND,
    websocket::KIND,
    browser::KIND,
    vector::KIND,
];

pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// Every measure a kind can produce, including the ones all kinds share.
pub fn measures_of(kind: &Kind) -> Vec<&'static Measure> {
    COMMON_MEASURES.iter().chain(kind.measures.iter()).collect()
}

/// A probe ready to run: its config checked, budgets parsed, secrets resolved.
pub struct BuiltProbe {
    pub name: String,
    pub kind: &'static str,
    /// `[probe.labels]`.
    pub labels: Vec<(String, String)>,
    pub schedule: Schedule,
    pub timeout: Duration,
    pub budgets: Budgets,
    pub measures: Vec<&'static Measure>,
    /// Set when the probe cannot run here (see [`Settings::unavailable`]).
    pub unavailable: Option<String>,
    /// See [`Kind::median_gate`].
    pub median_gate: bool,
    /// See [`Settings::single_valued_labels`].
    pub single_valued: &'static [&'static str],
    goodput: &'static [&'static str],
    probe: Box<dyn Probe>,
    /// No run before this instant: the target answered 429 with Retry-After.
    backoff_until: Mutex<Option<Instant>>,
}

pub fn build(cfg: &ProbeConfig, ctx: &BuildContext) -> Result<BuiltProbe, ConfigError> {
    let kind = cfg.kind;
    let mut measures = measures_of(kind);
    for m in cfg.settings.measures() {
        if !measures.iter().any(|have| have.key == m.key) {
            measures.push(m);
        }
    }
    let mut budgets = budget::parse(cfg, &measures)?;
    for t in cfg.settings.budgets(cfg, &measures)? {
        if !budgets.per_run.iter().any(|have| have.key == t.key) {
            budgets.per_run.push(t);
        }
    }
    let probe = cfg.settings.build(cfg, ctx)?;
    Ok(BuiltProbe {
        name: cfg.name.clone(),
        kind: kind.name,
        labels: cfg.labels.clone(),
        schedule: cfg.schedule.clone(),
        timeout: cfg.timeout,
        budgets,
        measures,
        unavailable: cfg.settings.unavailable(ctx),
        median_gate: kind.median_gate,
        single_valued: cfg.settings.single_valued_labels(),
        goodput: kind.goodput,
        probe,
        backoff_until: Mutex::new(None),
    })
}

pub fn build_all(cfgs: &[ProbeConfig], ctx: &BuildContext) -> Result<Vec<BuiltProbe>, ConfigError> {
    cfgs.iter().map(|c| build(c, ctx)).collect()
}

impl BuiltProbe {
    /// Runs once under the timeout and judges per-run budgets.
    pub async fn execute(&self) -> Outcome {
        let started_at = SystemTime::now();
        let start = Instant::now();
        let mut rec = Recorder::new(start);
        // A panic in a probe is a classified failed run: never a lost run, never a pass.
        let guarded = AssertUnwindSafe(self.probe.run(&mut rec)).catch_unwind();
        let result = tokio::time::timeout(self.timeout, guarded).await;
        let end = Instant::now();
        let error = match result {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e),
            Ok(Err(panic)) => Some(panic_error(panic.as_ref())),
            Err(_) => Some(timeout_error(rec.phase(), self.timeout)),
        };
        let mut outcome = rec.finish(&self.name, self.kind, started_at, end, error);
        self.budgets.judge(&mut outcome);
        if !self.goodput.is_empty() {
            let good = outcome.success()
                && !outcome
                    .breaches
                    .iter()
                    .any(|b| self.goodput.contains(&b.measurement.as_str()));
            outcome.measurements.push(("goodput", if good { 1.0 } else { 0.0 }));
        }
        if let Some(d) = outcome.retry_after {
            // `d` is capped when recorded; checked_add keeps even a bad cap from panicking.
            *self.backoff_until.lock().expect("backoff lock") = end.checked_add(d);
        }
        outcome
    }

    /// Time left before the target's Retry-After passes, if any.
    pub fn backoff_remaining(&self) -> Option<Duration> {
        let until = (*self.backoff_until.lock().expect("backoff lock"))?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }
}

fn panic_error(panic: &(dyn std::any::Any + Send)) -> ProbeError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    ProbeError::new(ErrorType::Internal, format!("internal error: {what}"))
}

/// A timeout is named after the phase it cut short.
fn timeout_error(phase: &str, timeout: Duration) -> ProbeError {
    let kind = match phase {
        net::PHASE_DNS => ErrorType::DnsTimeout,
        net::PHASE_CONNECT => ErrorType::ConnectTimeout,
        _ => ErrorType::Timeout,
    };
    ProbeError::new(
        kind,
        format!(
            "no result within {} (during {phase})",
            humantime::format_duration(timeout)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panics;

    impl Probe for Panics {
        fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
            Box::pin(async move {
                rec.set("dns", 0.001);
                let far = Instant::now() + Duration::from_secs(u64::MAX / 2);
                panic!("overflow when adding duration to instant: {far:?}");
            })
        }
    }

    #[tokio::test]
    async fn a_panicking_probe_is_an_internal_failure_not_a_lost_run() {
        let p = BuiltProbe {
            name: "p".into(),
            kind: "http",
            labels: Vec::new(),
            schedule: Schedule::every(Duration::from_secs(30), "p", Duration::ZERO),
            timeout: Duration::from_secs(1),
            budgets: Budgets::default(),
            measures: measures_of(&http::KIND),
            unavailable: None,
            median_gate: false,
            single_valued: &[],
            goodput: &[],
            probe: Box::new(Panics),
            backoff_until: Mutex::new(None),
        };
        let o = p.execute().await;
        assert_eq!(o.error.as_ref().map(|e| e.kind), Some(ErrorType::Internal));
        assert!(!o.passed());
        // What was measured before the panic survives.
        assert_eq!(o.get("dns"), Some(0.001));
    }
}
