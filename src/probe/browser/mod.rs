//! `kind = "browser"`: loads a page in real headless Chromium over WebDriver (fantoccini +
//! chromedriver) and reads what the page's own Performance APIs say: TTFB, FCP, LCP (with
//! its element), CLS in session windows, DOMContentLoaded, load, total blocking time, and
//! request counts and bytes per resource type, first and third party. Optional user
//! JavaScript adds named numbers. Chromium and chromedriver belong to `driver`.

mod budget_file;
pub mod driver;
mod page;
mod session;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use fantoccini::wd::WebDriverCompatibleCommand;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{BoxFuture, BuildContext, Kind, Probe, Settings};
use crate::budget::Threshold;
use crate::config::{ConfigError, Dur, ProbeConfig, SecretText, Spanned};
use crate::outcome::{ErrorType, Instrument, Measure, ProbeError, Recorder, Unit};
use driver::Browsers;
pub use page::{PARTIES, TYPES};

pub const KIND: Kind = Kind {
    name: "browser",
    measures: MEASURES,
    settings: super::settings_of::<BrowserProbeSettings>,
    schema: <BrowserProbeSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["lcp", "fcp", "cls", "total_bytes"],
    median_gate: true,
};

/// The keys of `kind = "browser"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserProbeSettings {
    /// http:// or https:// page to load.
    pub url: Spanned<String>,
    /// "cold": a fresh profile, nothing cached (default); "warm": load once, then measure a
    /// second load in the same profile.
    #[serde(default)]
    pub cache: CacheMode,
    /// Window and layout viewport, "WIDTHxHEIGHT" (default "1350x940"): CLS depends on it.
    pub viewport: Option<Spanned<String>>,
    /// "none" (default), "4g" or "3g": network emulation through chromedriver's CDP
    /// passthrough, with Lighthouse's throttling figures (docs/config.md).
    #[serde(default)]
    pub throttle: Throttle,
    /// Hosts counted as first party ("cdn.example.com", "*.example.com"); default: the
    /// page's own host.
    #[serde(default)]
    pub first_party_hosts: Vec<String>,
    /// Quiet time after the load event before the metrics are read (default "1s").
    pub settle: Option<Spanned<Dur>>,
    /// A JavaScript file (a function body, may return a Promise) returning {name: number};
    /// names declared in `script_metrics` are recorded.
    pub metrics_script: Option<Spanned<String>>,
    /// The numbers `metrics_script` returns, name → unit: "ms" (recorded in seconds),
    /// "bytes" or "count". Budgets can name them.
    #[serde(default)]
    pub script_metrics: BTreeMap<String, Spanned<ScriptUnit>>,
    /// A Lighthouse budget.json whose timings, resourceSizes and resourceCounts become
    /// budgets of this probe (keys in [probe.budget] win).
    pub budgets_file: Option<Spanned<String>>,
    /// Accept any TLS certificate (targets you control only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Steps: set a cookie before the measured load, or wait for an element after it.
    #[serde(default, rename = "step")]
    pub steps: Vec<StepConfig>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    #[default]
    Cold,
    Warm,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum Throttle {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "4g")]
    Slow4g,
    #[serde(rename = "3g")]
    Regular3g,
}

impl Throttle {
    /// (latency ms, download and upload bytes/s): Lighthouse's mobileSlow4G and
    /// mobileRegular3G, with its DevTools-throttling adjustments (latency × 3.75,
    /// throughput × 0.9).
    fn conditions(self) -> Option<(f64, f64, f64)> {
        let kbps = |k: f64| k * 1024.0 / 8.0;
        match self {
            Throttle::None => None,
            Throttle::Slow4g => Some((150.0 * 3.75, kbps(1.6 * 1024.0 * 0.9), kbps(750.0 * 0.9))),
            Throttle::Regular3g => Some((300.0 * 3.75, kbps(700.0 * 0.9), kbps(700.0 * 0.9))),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ScriptUnit {
    Ms,
    Bytes,
    Count,
}

/// `[[probe.step]]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// A cookie for the page's URL, set before the measured load.
    pub set_cookie: Option<Spanned<CookieConfig>>,
    /// A CSS selector that must match after the load (polled until the run's deadline).
    pub wait_for: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    pub name: String,
    /// The value; "env:NAME" or "file:PATH" is a secret and never logged.
    pub value: SecretText,
}

const SYNTHETIC: &[(&str, &str)] = &[("user_agent.synthetic.type", "test")];

macro_rules! vital {
    ($key:literal, $unit:expr) => {
        crate::outcome::web_vital($key, concat!("browser.web_vital.", $key), $unit, SYNTHETIC, &[])
    };
}

macro_rules! res {
    ($t:literal, $party:literal, $what:literal, $metric:literal, $unit:expr, $desc:expr) => {
        Measure {
            key: concat!($t, "_", $party, "_party_", $what),
            metric: $metric,
            unit: $unit,
            instrument: Instrument::Gauge,
            description: $desc,
            fixed: &[("type", $t), ("party", $party)],
            labels: &[],
        }
    };
}

macro_rules! page_total {
    ($key:expr, $t:literal, $metric:literal, $unit:expr, $desc:expr) => {
        Measure {
            key: $key,
            metric: $metric,
            unit: $unit,
            instrument: Instrument::Gauge,
            description: $desc,
            fixed: &[("type", $t)],
            labels: &[],
        }
    };
}

const SIZE_DESC: &str = "Encoded (compressed) body bytes of the last run's resources, by type and party; resources without Timing-Allow-Origin are not in it (see probe.browser.resource.unmeasured).";
const TRANSFER_DESC: &str =
    "Bytes on the wire (headers included, 0 from cache) of the last run's resources, by type and party.";
const REQUESTS_DESC: &str = "Requests of the last run, by resource type and party (favicon excluded).";
const PAGE_SIZE_DESC: &str = "Encoded body bytes of the last run by type, all parties; type=\"total\" and type=\"third_party\" sum over types. What size budgets judge.";
const PAGE_REQUESTS_DESC: &str =
    "Requests of the last run by type, all parties; type=\"total\" and type=\"third_party\" sum over types.";

macro_rules! catalog {
    ($($t:literal),*) => {
        &[
            vital!("ttfb", Unit::Seconds),
            vital!("fcp", Unit::Seconds),
            vital!("lcp", Unit::Seconds),
            vital!("cls", Unit::Score),
            Measure {
                key: "dom_content_loaded",
                metric: "probe.browser.page.event",
                unit: Unit::Seconds,
                instrument: Instrument::Mean,
                description: "Navigation start to a page event (DOMContentLoaded, load). Count and sum only: the mean.",
                fixed: &[("event", "dom_content_loaded")],
                labels: &[],
            },
            Measure {
                key: "load",
                metric: "probe.browser.page.event",
                unit: Unit::Seconds,
                instrument: Instrument::Mean,
                description: "Navigation start to a page event (DOMContentLoaded, load). Count and sum only: the mean.",
                fixed: &[("event", "load")],
                labels: &[],
            },
            Measure {
                key: "tbt",
                metric: "probe.browser.total_blocking_time",
                unit: Unit::Seconds,
                instrument: Instrument::Histogram,
                description: "Total blocking time: the part over 50 ms of every long task from FCP to the end of the settle time.",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "js_errors",
                metric: "probe.browser.js_errors",
                unit: Unit::Count,
                instrument: Instrument::Gauge,
                description: "Uncaught script errors and unhandled rejections in the last run's page.",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "memory",
                metric: "probe.browser.memory",
                unit: Unit::Bytes,
                instrument: Instrument::Gauge,
                description: "Proportional set size of all of the run's Chromium processes after the page settled (local chromedriver only).",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "browser_start",
                metric: "probe.browser.start.duration",
                unit: Unit::Seconds,
                instrument: Instrument::Mean,
                description: "Run start to a tab ready for the page: waiting for a browser slot, the memory floor, the chromedriver health check, and a browser launch when none was ready.",
                fixed: &[],
                labels: &[],
            },
            Measure {
                key: "unmeasured_requests",
                metric: "probe.browser.resource.unmeasured",
                unit: Unit::Count,
                instrument: Instrument::Gauge,
                description: "Cross-origin requests without Timing-Allow-Origin in the last run: counted as requests, their bytes unknown (never 0).",
                fixed: &[],
                labels: &[],
            },
            page_total!("total_bytes", "total", "probe.browser.page.size", Unit::Bytes, PAGE_SIZE_DESC),
            page_total!("third_party_bytes", "third_party", "probe.browser.page.size", Unit::Bytes, PAGE_SIZE_DESC),
            page_total!("requests", "total", "probe.browser.page.requests", Unit::Count, PAGE_REQUESTS_DESC),
            page_total!("third_party_requests", "third_party", "probe.browser.page.requests", Unit::Count, PAGE_REQUESTS_DESC),
            Measure {
                key: "total_transfer",
                metric: "probe.browser.page.transfer_size",
                unit: Unit::Bytes,
                instrument: Instrument::Gauge,
                description: "Bytes on the wire of the last run, document included (0 for what came from cache).",
                fixed: &[],
                labels: &[],
            },
            $(
                page_total!(concat!($t, "_bytes"), $t, "probe.browser.page.size", Unit::Bytes, PAGE_SIZE_DESC),
                page_total!(concat!($t, "_requests"), $t, "probe.browser.page.requests", Unit::Count, PAGE_REQUESTS_DESC),
                res!($t, "first", "bytes", "probe.browser.resource.size", Unit::Bytes, SIZE_DESC),
                res!($t, "first", "transfer", "probe.browser.resource.transfer_size", Unit::Bytes, TRANSFER_DESC),
                res!($t, "first", "requests", "probe.browser.resource.requests", Unit::Count, REQUESTS_DESC),
                res!($t, "third", "bytes", "probe.browser.resource.size", Unit::Bytes, SIZE_DESC),
                res!($t, "third", "transfer", "probe.browser.resource.transfer_size", Unit::Bytes, TRANSFER_DESC),
                res!($t, "third", "requests", "probe.browser.resource.requests", Unit::Count, REQUESTS_DESC),
            )*
        ]
    };
}

pub const MEASURES: &[Measure] = catalog!("document", "script", "stylesheet", "image", "font", "media", "other");

/// The catalog key for a name built at run time (`script_third_party_bytes`).
fn key(name: &str) -> Option<&'static str> {
    MEASURES.iter().find(|m| m.key == name).map(|m| m.key)
}

/// A `script_metrics` name's catalog entry, made once per distinct (name, unit).
fn script_measure(name: &str, unit: ScriptUnit) -> &'static Measure {
    static MADE: OnceLock<Mutex<BTreeMap<(String, u8), &'static Measure>>> = OnceLock::new();
    let mut made = MADE.get_or_init(Mutex::default).lock().expect("script measures");
    made.entry((name.to_string(), unit as u8)).or_insert_with(|| {
        let key: &'static str = Box::leak(name.to_string().into_boxed_str());
        let fixed: &'static [(&'static str, &'static str)] = Box::leak(Box::new([("name", key)]));
        let (metric, unit, instrument, description) = match unit {
            ScriptUnit::Ms => (
                "probe.browser.script.duration",
                Unit::Seconds,
                Instrument::Histogram,
                "A time returned by the probe's metrics_script (milliseconds there, seconds here), by name.",
            ),
            ScriptUnit::Bytes => (
                "probe.browser.script.size",
                Unit::Bytes,
                Instrument::Gauge,
                "A size returned by the probe's metrics_script, by name.",
            ),
            ScriptUnit::Count => (
                "probe.browser.script.value",
                Unit::Count,
                Instrument::Gauge,
                "A number returned by the probe's metrics_script, by name.",
            ),
        };
        Box::leak(Box::new(Measure {
            key,
            metric,
            unit,
            instrument,
            description,
            fixed,
            labels: &[],
        }))
    })
}

const OBSERVE_JS: &str = include_str!("observe.js");
const COLLECT_JS: &str = include_str!("collect.js");
const MAX_SCRIPT: u64 = 1024 * 1024;
const DEFAULT_SETTLE: Duration = Duration::from_secs(1);
/// How often the load state is polled (a WebDriver round trip is a few ms).
const POLL: Duration = Duration::from_millis(10);

enum Step {
    Cookie { name: String, value: crate::config::Secret },
    WaitFor(String),
}

pub struct BrowserProbe {
    url: url::Url,
    cache: CacheMode,
    viewport: (u32, u32),
    throttle: Throttle,
    first_party: Vec<String>,
    settle: Duration,
    script: Option<String>,
    script_metrics: Vec<(&'static str, ScriptUnit)>,
    insecure: bool,
    steps: Vec<Step>,
    /// The part of the timeout kept back to read what was measured and close the browser.
    reserve: Duration,
    timeout: Duration,
    browsers: Arc<Browsers>,
}

impl Settings for BrowserProbeSettings {
    fn plan(&self) -> Vec<String> {
        let mut lines = vec![format!("url: {}", crate::redact::url(self.url.get_ref()))];
        lines.push(format!(
            "cache: {:?}, viewport: {}, throttle: {:?}",
            self.cache,
            self.viewport.as_ref().map_or("1350x940", |v| v.get_ref().as_str()),
            self.throttle
        ));
        for s in &self.steps {
            if let Some(c) = &s.set_cookie {
                let c = c.get_ref();
                let shown = if crate::config::Secret::is_reference(c.value.as_str()) {
                    format!("secret {} <redacted>", c.value.as_str())
                } else {
                    "literal <not shown>".into()
                };
                lines.push(format!("step: set cookie {}: {shown}", c.name));
            }
            if let Some(w) = &s.wait_for {
                lines.push(format!("step: wait for {}", w.get_ref()));
            }
        }
        if let Some(f) = &self.budgets_file {
            lines.push(format!("budgets from {}", f.get_ref()));
        }
        lines
    }

    fn measures(&self) -> Vec<&'static Measure> {
        self.script_metrics
            .iter()
            .map(|(name, unit)| script_measure(name, *unit.get_ref()))
            .collect()
    }

    fn budgets(&self, cfg: &ProbeConfig, measures: &[&'static Measure]) -> Result<Vec<Threshold>, ConfigError> {
        let Some(file) = &self.budgets_file else {
            return Ok(Vec::new());
        };
        let bytes = cfg.read_file(file, "probe.budgets_file", MAX_SCRIPT)?;
        let path = url::Url::parse(self.url.get_ref()).map_or("/".to_string(), |u| u.path().to_string());
        budget_file::thresholds(&bytes, &path, measures)
            .map_err(|e| cfg.error_at(file, "probe.budgets_file", format!("{}: {e}", file.get_ref())))
    }

    fn unavailable(&self, ctx: &BuildContext) -> Option<String> {
        ctx.browsers().settings.missing()
    }

    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        let url = url::Url::parse(self.url.get_ref()).map_err(|e| {
            cfg.error_at(
                &self.url,
                "probe.url",
                format!("invalid URL {:?}: {e}", crate::redact::url(self.url.get_ref())),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(cfg.error_at(
                &self.url,
                "probe.url",
                "browser probes load an http:// or https:// page",
            ));
        }
        let viewport = match &self.viewport {
            None => (1350, 940),
            Some(v) => parse_viewport(v.get_ref()).ok_or_else(|| {
                cfg.error_at(
                    v,
                    "probe.viewport",
                    "viewport is WIDTHxHEIGHT in pixels, e.g. \"1350x940\" (each 100..=8000)",
                )
            })?,
        };
        for h in &self.first_party_hosts {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            if bare.is_empty() || bare.contains(['/', ':', '*', ' ']) {
                return Err(cfg.source.error_at(
                    cfg.common.name.span(),
                    Some("probe.first_party_hosts"),
                    format!("{h:?} is not a host name or \"*.domain\" pattern"),
                ));
            }
        }
        let settle = self.settle.as_ref().map_or(DEFAULT_SETTLE, |d| d.get_ref().0);
        let reserve = (cfg.timeout / 5).clamp(Duration::from_secs(1), Duration::from_secs(5));
        if settle + reserve >= cfg.timeout
            && let Some(s) = &self.settle
        {
            return Err(cfg.error_at(
                s,
                "probe.settle",
                "settle leaves no time to load the page within `timeout`",
            ));
        }
        let script = self
            .metrics_script
            .as_ref()
            .map(|f| {
                let bytes = cfg.read_file(f, "probe.metrics_script", MAX_SCRIPT)?;
                String::from_utf8(bytes).map_err(|_| cfg.error_at(f, "probe.metrics_script", "the script is not UTF-8"))
            })
            .transpose()?;
        let mut script_metrics = Vec::new();
        for (name, unit) in &self.script_metrics {
            if name.is_empty() || name.len() > 32 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(cfg.error_at(unit, "probe.script_metrics", "a metric name is 1-32 of a-z A-Z 0-9 _"));
            }
            if key(name).is_some() {
                return Err(cfg.error_at(
                    unit,
                    "probe.script_metrics",
                    format!("{name:?} is a built-in measurement of kind \"browser\""),
                ));
            }
            if script.is_none() {
                return Err(cfg.error_at(unit, "probe.script_metrics", "script_metrics needs a metrics_script"));
            }
            script_metrics.push((script_measure(name, *unit.get_ref()).key, *unit.get_ref()));
        }
        let mut steps = Vec::new();
        for s in &self.steps {
            match (&s.set_cookie, &s.wait_for) {
                (Some(c), None) => {
                    let raw = c.get_ref();
                    if raw.name.is_empty() || raw.name.contains([';', '=', ' ', ',']) {
                        return Err(cfg.error_at(c, "probe.step.set_cookie", "invalid cookie name"));
                    }
                    let value = crate::config::Secret::resolve(
                        raw.value.as_str(),
                        cfg.source.path.parent().unwrap_or(std::path::Path::new(".")),
                    )
                    .map_err(|e| cfg.error_at(c, "probe.step.set_cookie.value", e))?;
                    steps.push(Step::Cookie {
                        name: raw.name.clone(),
                        value,
                    });
                }
                (None, Some(w)) => steps.push(Step::WaitFor(w.get_ref().clone())),
                (Some(c), Some(_)) => {
                    return Err(cfg.error_at(c, "probe.step", "a step has one of `set_cookie` or `wait_for`"));
                }
                (None, None) => {
                    return Err(cfg.source.error_at(
                        cfg.common.name.span(),
                        Some("probe.step"),
                        "a step needs `set_cookie` or `wait_for`",
                    ));
                }
            }
        }
        let first_party = if self.first_party_hosts.is_empty() {
            vec![url.host_str().unwrap_or_default().to_ascii_lowercase()]
        } else {
            self.first_party_hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
        };
        Ok(Box::new(BrowserProbe {
            url,
            cache: self.cache,
            viewport,
            throttle: self.throttle,
            first_party,
            settle,
            script,
            script_metrics,
            insecure: self.insecure_skip_verify,
            steps,
            reserve,
            timeout: cfg.timeout,
            browsers: ctx.browsers(),
        }))
    }
}

fn parse_viewport(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once(['x', 'X'])?;
    let (w, h): (u32, u32) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    ((100..=8000).contains(&w) && (100..=8000).contains(&h)).then_some((w, h))
}

impl Probe for BrowserProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(self.visit(rec))
    }
}

/// A Chrome DevTools Protocol command through chromedriver's passthrough endpoint.
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"cmd": self.0, "params": self.1}).to_string()),
        )
    }
}

use session::error as browser_error;

/// Errors while a navigation is under way (the old document is gone) are retried;
/// a lost session or browser is not.
fn session_lost(e: &fantoccini::error::CmdError) -> bool {
    use fantoccini::error::{CmdError, ErrorStatus};
    match e {
        CmdError::Standard(w) => matches!(
            w.error,
            ErrorStatus::InvalidSessionId | ErrorStatus::NoSuchWindow | ErrorStatus::SessionNotCreated
        ),
        CmdError::Lost(_) | CmdError::Failed(_) => true,
        _ => false,
    }
}

impl BrowserProbe {
    async fn visit(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let deadline = rec.start() + self.timeout.saturating_sub(self.reserve);
        rec.enter("queue");
        let Some(slot) = self
            .browsers
            .slot(deadline.saturating_duration_since(Instant::now()))
            .await
        else {
            rec.skip("browser_busy");
            return Ok(());
        };
        rec.enter("launch");
        self.browsers.check_memory()?;
        // Dropped unfinished (the run cut off by its timeout), the lease discards the
        // browser and kills its processes.
        let lease = session::Lease::take(self.browsers.clone(), slot).await?;
        rec.set("browser_start", rec.offset(Instant::now()));
        let result = self.measure(rec, lease.browser().client(), deadline).await;
        let pids = lease.browser().profile().map(|p| p.dir.clone());
        if let Some(dir) = pids {
            // /proc scans block: off the async threads.
            let pss =
                tokio::task::spawn_blocking(move || driver::pss(&driver::processes_of(&dir.display().to_string())))
                    .await
                    .unwrap_or(0);
            rec.set("memory", pss as f64);
        }
        // A browser told to ignore certificate errors is not handed to another probe: the
        // override may outlive this run's context.
        let healthy = !self.insecure && !matches!(&result, Err(e) if e.kind == ErrorType::BrowserError);
        lease.finish(healthy).await;
        result
    }

    async fn cdp(&self, client: &fantoccini::Client, cmd: &'static str, params: Value) -> Result<Value, ProbeError> {
        client
            .issue_cmd(Cdp(cmd, params))
            .await
            .map_err(|e| browser_error(cmd, e))
    }

    async fn measure(
        &self,
        rec: &mut Recorder,
        client: &fantoccini::Client,
        deadline: Instant,
    ) -> Result<(), ProbeError> {
        let (w, h) = self.viewport;
        self.cdp(
            client,
            "Emulation.setDeviceMetricsOverride",
            json!({"width": w, "height": h, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        self.cdp(
            client,
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": OBSERVE_JS}),
        )
        .await?;
        if self.insecure {
            self.cdp(client, "Security.setIgnoreCertificateErrors", json!({"ignore": true}))
                .await?;
        }
        if let Some((latency, down, up)) = self.throttle.conditions() {
            self.cdp(client, "Network.enable", json!({})).await?;
            self.cdp(
                client,
                "Network.emulateNetworkConditions",
                json!({"offline": false, "latency": latency, "downloadThroughput": down, "uploadThroughput": up}),
            )
            .await?;
        }
        for s in &self.steps {
            if let Step::Cookie { name, value } = s {
                self.cdp(
                    client,
                    "Network.setCookie",
                    json!({"name": name, "value": value.expose(), "url": self.url.as_str()}),
                )
                .await
                .map_err(|_| ProbeError::new(ErrorType::BrowserError, format!("setting cookie {name:?} failed")))?;
            }
        }
        if self.cache == CacheMode::Warm {
            rec.enter("warmup");
            let state = self.load(client, deadline).await?;
            if state != "complete" {
                return Err(ProbeError::new(
                    ErrorType::Timeout,
                    format!("warm-up load did not finish (readyState {state:?})"),
                ));
            }
        }
        rec.enter("load");
        let state = self.load(client, deadline).await?;
        if state == "pending" {
            return Err(ProbeError::new(
                ErrorType::Timeout,
                format!(
                    "no page within {}: the navigation never committed",
                    humantime::format_duration(self.timeout)
                ),
            ));
        }
        let loaded = state == "complete";
        if loaded {
            rec.enter("settle");
            tokio::time::sleep_until(deadline.min(Instant::now() + self.settle).into()).await;
        }
        for s in &self.steps {
            if let Step::WaitFor(selector) = s {
                rec.enter("wait_for");
                self.wait_for(client, selector, deadline).await?;
            }
        }
        rec.enter("collect");
        let data = client
            .execute(COLLECT_JS, Vec::new())
            .await
            .map_err(|e| browser_error("reading the page's metrics", e))?;
        let page: page::PageData =
            serde_json::from_value(data).map_err(|e| browser_error("reading the page's metrics", e))?;
        if let Some(e) = page::navigation_error(rec, &page) {
            return Err(e);
        }
        page::record(rec, &page, &self.first_party);
        if let Some(script) = &self.script
            && loaded
        {
            rec.enter("metrics_script");
            self.run_script(rec, client, script).await?;
        }
        if !loaded {
            return Err(ProbeError::new(
                ErrorType::Timeout,
                format!(
                    "the page did not finish loading within {} (readyState {state:?}); what it measured is kept",
                    humantime::format_duration(self.timeout)
                ),
            ));
        }
        Ok(())
    }

    /// Navigates and waits for the load event (or the deadline); returns the readyState.
    async fn load(&self, client: &fantoccini::Client, deadline: Instant) -> Result<String, ProbeError> {
        let asked = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
            - 5.0;
        client
            .goto(self.url.as_str())
            .await
            .map_err(|e| browser_error("navigating", e))?;
        // The document that answers must be the new one: its time origin is after `asked`.
        let poll = format!(
            "return performance.timeOrigin >= {asked} && location.href !== 'about:blank' ? document.readyState : 'pending'"
        );
        let mut state = String::from("pending");
        while Instant::now() < deadline {
            match client.execute(&poll, Vec::new()).await {
                Ok(Value::String(s)) => {
                    if s == "complete" {
                        return Ok(s);
                    }
                    state = s;
                }
                Ok(_) => {}
                Err(e) if session_lost(&e) => return Err(browser_error("loading the page", e)),
                Err(_) => {}
            }
            tokio::time::sleep_until(deadline.min(Instant::now() + POLL).into()).await;
        }
        Ok(state)
    }

    async fn wait_for(&self, client: &fantoccini::Client, selector: &str, deadline: Instant) -> Result<(), ProbeError> {
        let script = "return document.querySelector(arguments[0]) !== null";
        while Instant::now() < deadline {
            match client.execute(script, vec![json!(selector)]).await {
                Ok(Value::Bool(true)) => return Ok(()),
                Err(e) if session_lost(&e) => return Err(browser_error("wait_for", e)),
                Err(fantoccini::error::CmdError::Standard(w))
                    if w.error == fantoccini::error::ErrorStatus::InvalidSelector =>
                {
                    return Err(ProbeError::new(
                        ErrorType::AssertionFailed,
                        format!("wait_for: invalid selector {selector:?}"),
                    ));
                }
                _ => {}
            }
            tokio::time::sleep_until(deadline.min(Instant::now() + POLL).into()).await;
        }
        Err(ProbeError::new(
            ErrorType::AssertionFailed,
            format!("wait_for: no element matches {selector:?}"),
        ))
    }

    async fn run_script(
        &self,
        rec: &mut Recorder,
        client: &fantoccini::Client,
        script: &str,
    ) -> Result<(), ProbeError> {
        let value = client.execute(script, Vec::new()).await.map_err(|e| {
            ProbeError::new(
                ErrorType::AssertionFailed,
                format!(
                    "metrics_script failed: {}",
                    crate::redact::text(&e.to_string())
                        .chars()
                        .take(300)
                        .collect::<String>()
                ),
            )
        })?;
        let Value::Object(map) = value else {
            return Err(ProbeError::new(
                ErrorType::AssertionFailed,
                "metrics_script must return an object of numbers",
            ));
        };
        for (key, unit) in &self.script_metrics {
            match map.get(*key).and_then(Value::as_f64) {
                Some(v) if v.is_finite() && v >= 0.0 => {
                    rec.set(key, if *unit == ScriptUnit::Ms { v / 1000.0 } else { v });
                }
                Some(_) => {
                    return Err(ProbeError::new(
                        ErrorType::AssertionFailed,
                        format!("metrics_script: {key} is negative or not finite"),
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_keys_are_unique_and_cover_every_type_and_party() {
        let mut keys: Vec<&str> = MEASURES.iter().map(|m| m.key).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n);
        for t in TYPES {
            for p in PARTIES {
                for what in ["bytes", "transfer", "requests"] {
                    assert!(key(&format!("{t}_{p}_party_{what}")).is_some(), "{t} {p} {what}");
                }
            }
            assert!(key(&format!("{t}_bytes")).is_some());
        }
    }

    #[test]
    fn viewports() {
        assert_eq!(parse_viewport("1350x940"), Some((1350, 940)));
        assert_eq!(parse_viewport("0x940"), None);
        assert_eq!(parse_viewport("1350"), None);
        assert_eq!(parse_viewport("axb"), None);
    }
}
