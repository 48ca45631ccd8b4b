//! The interface every probe kind implements: its settings type ([`Settings`]), the
//! running probe ([`Probe`]), its registry entry ([`Kind`]), the checked per-probe config
//! they are built from ([`ProbeConfig`]), and the long-lived things they share
//! ([`BuildContext`]). Kinds import this file, never `probe/mod.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::budget;
use crate::config::{ConfigError, ProbeCommon, Secret, SecretText, Size, Source, Spanned, read_capped};
use crate::net::{self, Resolver};
use crate::outcome::{Instrument, Measure, ProbeError, Recorder, Unit};
use crate::schedule::{self, Schedule};

use super::browser::{driver, session};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The one probe signature: run once, writing measurements into `rec` as phases complete.
/// The runner may drop the future at the timeout; whatever `rec` holds by then is kept.
pub trait Probe: Send + Sync {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>>;
}

type TlsKey = (Option<PathBuf>, bool, Vec<Vec<u8>>);

/// The earliest certificate expiry of a run's TLS handshakes (`net::start_tls` records
/// it), in the catalog of every kind that speaks TLS.
pub const CERT_EXPIRY: Measure = Measure {
    key: "cert_expiry",
    metric: "probe.tls.cert.expiry_timestamp",
    unit: crate::outcome::Unit::UnixTime,
    instrument: crate::outcome::Instrument::Gauge,
    description: "Earliest notAfter in the server's certificate chain, Unix seconds (every kind that speaks TLS).",
    fixed: &[],
    labels: &[],
};

/// One measure per distinct (metric, key) for the life of the process: keys come from
/// config, so they are few, and telemetry holds `&'static` catalog entries (workflow steps, browser journey steps).
pub fn made_measure(
    key: String,
    metric: &'static str,
    unit: Unit,
    instrument: Instrument,
    description: &'static str,
    fixed: Vec<(&'static str, String)>,
) -> &'static Measure {
    static MADE: std::sync::OnceLock<Mutex<HashMap<(&'static str, String), &'static Measure>>> =
        std::sync::OnceLock::new();
    let mut all = MADE.get_or_init(Mutex::default).lock().expect("made measures");
    all.entry((metric, key.clone())).or_insert_with(|| {
        let fixed: Vec<(&'static str, &'static str)> = fixed
            .into_iter()
            .map(|(k, v)| (k, &*Box::leak(v.into_boxed_str())))
            .collect();
        Box::leak(Box::new(Measure {
            key: Box::leak(key.into_boxed_str()),
            metric,
            unit,
            instrument,
            description,
            fixed: Box::leak(fixed.into_boxed_slice()),
            labels: &[],
        }))
    })
}

/// Shared, long-lived things a probe may need.
#[derive(Clone)]
pub struct BuildContext {
    pub resolver: Resolver,
    /// `[browser]`: one chromedriver and one slot pool for the browser probes built
    /// together, started at their first run.
    browser_settings: driver::HostSettings,
    browsers: Arc<std::sync::OnceLock<Arc<session::Pool>>>,
    /// TLS client configs shared by probes with the same settings: a root store is
    /// ~150 KB, which 1,000 probes should not each hold a copy of.
    tls: Arc<Mutex<HashMap<TlsKey, Arc<rustls::ClientConfig>>>>,
}

impl BuildContext {
    pub fn new() -> Self {
        BuildContext {
            resolver: net::dns::system_resolver(),
            browser_settings: driver::HostSettings::default(),
            browsers: Arc::default(),
            tls: Arc::default(),
        }
    }

    /// With the daemon file's `[browser]` settings.
    pub fn with_browser(settings: driver::HostSettings) -> Self {
        BuildContext {
            browser_settings: settings,
            ..BuildContext::new()
        }
    }

    pub fn browsers(&self) -> Arc<session::Pool> {
        self.browsers
            .get_or_init(|| Arc::new(session::Pool::new(driver::Browsers::new(self.browser_settings.clone()))))
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
    /// Runs of this probe that may be in flight at once (only kinds with `long_runs`
    /// take more than 1); a due run past it is skipped and counted as `overlap`.
    fn max_in_flight(&self) -> usize {
        1
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
    /// Runs may outlast the interval (a workflow waiting on a long job): `timeout` may
    /// exceed it, and runs overlap up to the probe's `max_in_flight`.
    pub long_runs: bool,
    /// The key `/probe?target=` fills in a module (blackbox_exporter's multi-target
    /// pattern) and a sample value that checks the module at load; `None`: the kind is
    /// not offered as a module.
    pub target_key: Option<(&'static str, &'static str)>,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kind({})", self.name)
    }
}

/// One probe after the shared checks, with its kind's settings parsed.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub name: String,
    pub kind: &'static Kind,
    pub schedule: Schedule,
    pub timeout: Duration,
    /// `[probe.labels]`, validated.
    pub labels: Vec<(String, String)>,
    pub common: ProbeCommon,
    pub settings: Arc<dyn Settings>,
    pub source: Arc<Source>,
}

impl ProbeConfig {
    /// Checks the shared keys (name, schedule, timeout, labels) of a probe whose kind has
    /// parsed its own.
    pub fn new(
        common: ProbeCommon,
        kind: &'static Kind,
        settings: Arc<dyn Settings>,
        source: Arc<Source>,
    ) -> Result<ProbeConfig, ConfigError> {
        let name = crate::config::check_name(&common, &source)?;
        let (schedule, timeout) = schedule::from_keys(&common, &name, &source, kind.long_runs)?;
        let labels = crate::config::check_labels(&common, &source)?;
        Ok(ProbeConfig {
            name,
            kind,
            schedule,
            timeout,
            labels,
            common,
            settings,
            source,
        })
    }

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
