//! The daemon file's whole shape, assembled from the components' own section types (as
//! Vector's config builder composes component configs): which sections exist, how probe
//! files compose with the daemon file, and the registry of probe kinds. Everything here
//! imports downward: assembly → components → config. A new section is one type next to
//! its component and one field below.

mod kinds;
pub mod module;
pub mod schema;

use kinds::read_probe;
pub use kinds::{KINDS, kind};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::bundle::BundleConfig;
use crate::config::{self, ConfigError, ConfigHash, Source, Spanned};
use crate::demo::DemoConfig;
use crate::fleet::{FleetConfig, Shard};
use crate::probe::ProbeConfig;
use crate::probe::browser::driver::{BrowserConfig, HostSettings};
use crate::rum::{RumConfig, RumSettings};
use crate::server::ServerConfig;
use crate::slo::{RawErrorBudget, RawSlo};
use crate::telemetry::config::ExportConfig;
use crate::telemetry::{HistogramMode, MetricsConfig, OtlpSettings};

pub const DEFAULT_CONFIG: &str = "config/sloprobe.toml";

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// FNV-1a of every file read, in order (`sloprobe_config_info{config_hash}`).
    pub hash: String,
    pub histograms: HistogramMode,
    /// `[fleet] shard`.
    pub shard: Option<Shard>,
    pub location: String,
    pub server: ServerConfig,
    /// `[server.tls]` and `[server.basic_auth_users]`, checked.
    pub server_security: crate::web_security::Security,
    pub demo: Option<DemoConfig>,
    pub otlp: Option<OtlpSettings>,
    /// `[browser]`, checked.
    pub browser: HostSettings,
    /// `[rum]`, checked; `None` when the collector is off.
    pub rum: Option<RumSettings>,
    pub artifacts: Option<crate::artifacts::ArtifactSettings>,
    pub probes: Vec<ProbeConfig>,
    /// `[[module]]`: probe templates for `/probe?target=…&module=…`.
    pub modules: Vec<module::Module>,
    /// `[[slo]]` entries as written; `slo::resolve` checks them against the probes.
    pub slos: Vec<(RawSlo, Arc<Source>)>,
    /// `[[error_budget]]` entries as written; `slo::resolve_error_budgets` checks them.
    pub error_budgets: Vec<(RawErrorBudget, Arc<Source>)>,
}

/// The daemon file, less its `[[probe]]` tables (read by the kinds). Probe files hold
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
    export: ExportConfig,
    /// How metrics are aggregated.
    #[serde(default)]
    metrics: MetricsConfig,
    /// Running several daemons as one fleet.
    #[serde(default)]
    fleet: FleetConfig,
    /// SLOs over the probes (docs/slo.md).
    #[serde(default, rename = "slo")]
    slos: Vec<RawSlo>,
    /// Time-based error budgets shared by several time-slice SLOs (docs/slo.md).
    #[serde(default, rename = "error_budget")]
    error_budgets: Vec<RawErrorBudget>,
    /// Client bundle budgets for `sloprobe bundle`. Parsed here so a typo in them is a
    /// config error for `check` too; the daemon itself does not use them.
    #[serde(default, rename = "bundle")]
    #[allow(dead_code)]
    bundles: Vec<BundleConfig>,
    /// Where browser probes find Chromium and chromedriver, and how many run at once.
    #[serde(default)]
    browser: BrowserConfig,
    /// The RUM collector: web-vitals and Faro beacons from real browsers (docs/rum.md).
    rum: Option<RumConfig>,
    /// Where failed runs leave their evidence (screenshots, responses), bounded.
    artifacts: Option<crate::artifacts::ArtifactsConfig>,
}

impl Config {
    /// Reads the daemon file and every probe file it includes.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = Arc::new(config::read_source(path)?);
        let mut hash = ConfigHash::default();
        hash.add(source.text.as_bytes());
        let (raw, mut probes, mut modules) = read_file(&source)?;
        let otlp = raw.export.otlp.map(|o| o.check(&source)).transpose()?;
        let browser = raw.browser.check(&source)?;
        let rum = raw.rum.as_ref().map(|r| r.check(&source)).transpose()?;
        let artifacts = raw.artifacts.as_ref().map(|a| a.check(&source)).transpose()?;
        let shard = raw.fleet.check(&source)?;
        let server_security =
            crate::web_security::check(&source, raw.server.tls.as_ref(), &raw.server.basic_auth_users, "server")?;
        let mut slos: Vec<(RawSlo, Arc<Source>)> = raw.slos.into_iter().map(|s| (s, source.clone())).collect();
        let mut error_budgets: Vec<(RawErrorBudget, Arc<Source>)> =
            raw.error_budgets.into_iter().map(|b| (b, source.clone())).collect();
        let base = path.parent().unwrap_or(Path::new("."));
        let mut files_read = 0;
        for pattern in &raw.include {
            for file in config::expand_include(&source, base, pattern)? {
                files_read += 1;
                let src = Arc::new(config::read_source(&file)?);
                hash.add(src.path.to_string_lossy().as_bytes());
                hash.add(src.text.as_bytes());
                let (pf, more, more_modules) = read_file(&src)?;
                if let Some(key) = pf.daemon_only_key() {
                    return Err(src.error(format!(
                        "`{key}` belongs in the daemon file; probe files hold only [[probe]], [[slo]] and [[error_budget]]"
                    )));
                }
                probes.extend(more);
                modules.extend(more_modules);
                slos.extend(pf.slos.into_iter().map(|s| (s, src.clone())));
                error_budgets.extend(pf.error_budgets.into_iter().map(|b| (b, src.clone())));
            }
        }

        // Positions are turned into line numbers only for the error: doing it for every
        // probe made loading quadratic in the file size.
        let mut seen: HashMap<String, (Arc<Source>, usize)> = HashMap::with_capacity(probes.len());
        for cfg in &probes {
            if let Some((first_src, first_at)) = seen.get(&cfg.name) {
                let (line, _) = config::line_col(&first_src.text, *first_at);
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
        let mut module_names: HashMap<&str, ()> = HashMap::new();
        for m in &modules {
            if module_names.insert(&m.name, ()).is_some() {
                return Err(m.sample.error_at(
                    &m.sample.common.name,
                    "module.name",
                    format!("duplicate module name {:?}", m.name),
                ));
            }
        }
        if probes.is_empty() && modules.is_empty() && rum.is_none() {
            return Err(source.error(format!(
                "no probes defined (and no [[module]] or [rum] collector): add [[probe]] tables here or in files matched by `include` ({} include pattern(s), {} file(s) read)",
                raw.include.len(),
                files_read
            )));
        }

        Ok(Config {
            path: path.to_path_buf(),
            hash: hash.hex(),
            histograms: raw.metrics.histograms,
            shard,
            location: raw.location.unwrap_or_else(|| "default".to_string()),
            server: raw.server,
            server_security,
            demo: raw.demo,
            otlp,
            browser,
            rum,
            artifacts,
            probes,
            modules,
            slos,
            error_budgets,
        })
    }
}

impl RawDaemonFile {
    /// A key set that only the daemon file may set, if any.
    fn daemon_only_key(&self) -> Option<&'static str> {
        let server_set = self.server.listen != ServerConfig::default().listen
            || self.server.max_connections.is_some()
            || self.server.header_read_timeout.is_some()
            || self.server.idle_timeout.is_some()
            || self.server.tls.is_some()
            || !self.server.basic_auth_users.is_empty();
        [
            (self.location.is_some(), "location"),
            (!self.include.is_empty(), "include"),
            (server_set, "server"),
            (self.demo.is_some(), "demo"),
            (self.rum.is_some(), "rum"),
            (self.artifacts.is_some(), "artifacts"),
            (self.export.otlp.is_some(), "export"),
            (self.metrics.histograms != HistogramMode::default(), "metrics"),
        ]
        .into_iter()
        .find_map(|(set, key)| set.then_some(key))
    }
}

type FileParts = (RawDaemonFile, Vec<ProbeConfig>, Vec<module::Module>);

/// Parses one file: the `[[probe]]` and `[[module]]` tables one by one (shared keys by
/// config, the rest by the kind), and everything else as a daemon file.
fn read_file(source: &Arc<Source>) -> Result<FileParts, ConfigError> {
    let split = config::split_file::<RawDaemonFile>(source)?;
    let probes = split
        .probes
        .into_iter()
        .map(|t| read_probe(t, source))
        .collect::<Result<_, _>>()?;
    let modules = split
        .modules
        .into_iter()
        .map(|t| module::read_module(t, source))
        .collect::<Result<_, _>>()?;
    Ok((split.rest, probes, modules))
}
