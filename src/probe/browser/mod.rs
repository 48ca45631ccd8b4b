//! `kind = "browser"`: loads a page in real headless Chromium over WebDriver (fantoccini +
//! chromedriver) and reads what the page's own Performance APIs say: TTFB, FCP, LCP (with
//! its element), CLS in session windows, DOMContentLoaded, load, total blocking time, and
//! request counts and bytes per resource type, first and third party. Optional user
//! JavaScript adds named numbers. Chromium and chromedriver belong to `driver`.

mod budget_file;
mod catalog;
pub mod driver;
mod journey;
mod journey_run;
mod network;
mod page;
pub mod session;
mod settings;
mod settle;
mod timeline;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use fantoccini::wd::WebDriverCompatibleCommand;
use schemars::JsonSchema;
use serde_json::{Value, json};

use super::kind::{BoxFuture, BuildContext, Kind, Probe, ProbeConfig, Settings};
use crate::budget::Threshold;
use crate::config::ConfigError;
use crate::outcome::{ErrorType, Measure, ProbeError, Recorder};
pub use catalog::{MEASURES, ScriptUnit};

/// Whether runs end with a screenshot of the page (`once --report` turns it on; the
/// daemon never does: a PNG a run is megabytes nobody asked for).
static SCREENSHOTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn capture_screenshots(on: bool) {
    SCREENSHOTS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// A screenshot larger than this is left out of the report.
const MAX_SCREENSHOT: usize = 8 * 1024 * 1024;
use catalog::{key, script_measure};
pub use page::{PARTIES, TYPES};
pub use settings::{BrowserProbeSettings, CacheMode, CookieConfig, StepConfig, Throttle, TraceRequests};

pub const KIND: Kind = Kind {
    name: "browser",
    measures: MEASURES,
    settings: super::kind::settings_of::<BrowserProbeSettings>,
    schema: <BrowserProbeSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["lcp", "fcp", "cls", "total_bytes"],
    median_gate: true,
    long_runs: false,
    target_key: Some(("url", "http://127.0.0.1:1/")),
};

const OBSERVE_JS: &str = include_str!("observe.js");
const MAX_SCRIPT: u64 = 1024 * 1024;
const DEFAULT_SETTLE: Duration = Duration::from_secs(1);
const DEFAULT_SETTLE_MAX: Duration = Duration::from_secs(10);
/// Lighthouse's time-to-interactive needs a 5 s quiet window to have been seen.
const TTI_WINDOW: Duration = Duration::from_secs(5);
/// How often the load state is polled (a WebDriver round trip is a few ms).
const POLL: Duration = Duration::from_millis(10);

pub struct BrowserProbe {
    url: url::Url,
    cache: CacheMode,
    viewport: (u32, u32),
    throttle: Throttle,
    first_party: Vec<String>,
    /// The quiet window the settle waits for, and the most it waits after load.
    settle: Duration,
    settle_max: Duration,
    script: Option<String>,
    script_metrics: Vec<(&'static str, ScriptUnit)>,
    insecure: bool,
    trace_requests: TraceRequests,
    steps: Vec<journey::Step>,
    /// The part of the timeout kept back to read what was measured and close the browser.
    reserve: Duration,
    timeout: Duration,
    browsers: Arc<session::Pool>,
}

impl Settings for BrowserProbeSettings {
    fn plan(&self) -> Vec<String> {
        let mut lines = vec![format!("url: {}", crate::redact::url(self.url.get_ref()))];
        lines.push(format!(
            "cache: {}, viewport: {}, throttle: {}",
            crate::config::as_written(&self.cache),
            self.viewport.as_ref().map_or("1350x940", |v| v.get_ref().as_str()),
            crate::config::as_written(&self.throttle)
        ));
        for (i, s) in self.steps.iter().enumerate() {
            lines.push(format!("step {}", journey::plan_line(s, i)));
        }
        if let Some(f) = &self.budgets_file {
            lines.push(format!("budgets from {}", f.get_ref()));
        }
        lines
    }

    fn measures(&self) -> Vec<&'static Measure> {
        let mut out: Vec<&'static Measure> = self
            .script_metrics
            .iter()
            .map(|(name, unit)| script_measure(name, *unit.get_ref()))
            .collect();
        out.extend(journey::measures(&self.steps));
        out
    }

    fn budgets(&self, cfg: &ProbeConfig, measures: &[&'static Measure]) -> Result<Vec<Threshold>, ConfigError> {
        Ok(self.budget_file(cfg, measures)?.thresholds)
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
        let mut settle = self.settle.as_ref().map_or(DEFAULT_SETTLE, |d| d.get_ref().0);
        let settle_max = self.settle_max.as_ref().map_or(DEFAULT_SETTLE_MAX, |d| d.get_ref().0);
        if let Some(m) = &self.settle_max
            && m.get_ref().0 < settle
        {
            return Err(cfg.error_at(m, "probe.settle_max", "settle_max is shorter than settle"));
        }
        // A budget on time to interactive needs Lighthouse's 5 s quiet window to be seen.
        let from_file = self.budget_file(cfg, &MEASURES.iter().collect::<Vec<_>>())?;
        if cfg.common.budget.contains_key("interactive") || from_file.thresholds.iter().any(|t| t.key == "interactive")
        {
            settle = settle.max(TTI_WINDOW);
        }
        let settle_max = settle_max.max(settle);
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
        let steps = journey::build(cfg, &self.steps, &url)?;
        // budget.json's firstPartyHostnames decide, as in Lighthouse, unless the probe names
        // its own; both at once must agree.
        let own: Vec<String> = self.first_party_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        let first_party = match from_file.first_party {
            Some(hosts) if !own.is_empty() && !hosts.iter().all(|h| own.contains(h)) => {
                return Err(cfg.source.error_at(
                    cfg.common.name.span(),
                    Some("probe.first_party_hosts"),
                    "first_party_hosts and the budgets_file's options.firstPartyHostnames disagree; keep one",
                ));
            }
            Some(hosts) if own.is_empty() => hosts,
            _ if own.is_empty() => vec![url.host_str().unwrap_or_default().to_ascii_lowercase()],
            _ => own,
        };
        Ok(Box::new(BrowserProbe {
            url,
            cache: self.cache,
            viewport,
            throttle: self.throttle,
            first_party,
            settle,
            settle_max,
            script,
            script_metrics,
            insecure: self.insecure_skip_verify,
            trace_requests: self.trace_requests,
            steps,
            reserve,
            timeout: cfg.timeout,
            browsers: ctx.browsers(),
        }))
    }
}

impl BrowserProbeSettings {
    /// What `budgets_file` says about this probe's page (its path and query).
    fn budget_file(
        &self,
        cfg: &ProbeConfig,
        measures: &[&'static Measure],
    ) -> Result<budget_file::PageBudgets, ConfigError> {
        let Some(file) = &self.budgets_file else {
            return Ok(budget_file::PageBudgets::default());
        };
        let bytes = cfg.read_file(file, "probe.budgets_file", MAX_SCRIPT)?;
        let path = url::Url::parse(self.url.get_ref()).map_or("/".to_string(), |u| {
            format!("{}{}", u.path(), u.query().map(|q| format!("?{q}")).unwrap_or_default())
        });
        budget_file::thresholds(&bytes, &path, measures)
            .map_err(|e| cfg.error_at(file, "probe.budgets_file", format!("{}: {e}", file.get_ref())))
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

use session::session_lost;

/// What the page looked like when the run ended (at its failing step, when one failed):
/// a PNG screenshot, the page's console, and the requests that failed. Kept for
/// `[artifacts]`; secrets the run used are scrubbed from the text by the caller.
async fn evidence(rec: &mut Recorder, client: &fantoccini::Client, network: Option<&Mutex<network::Log>>) {
    use std::fmt::Write as _;
    if let Ok(png) = client.screenshot().await {
        rec.evidence("screenshot.png", png);
    }
    let mut page = String::new();
    if let Ok(u) = client.current_url().await {
        let _ = writeln!(page, "url: {}", crate::redact::url(u.as_str()));
    }
    let console = client
        .execute(
            "const c = window.__sloprobe && window.__sloprobe.console; \
             return Array.isArray(c) ? c.slice(0, 50).map((x) => String(x).slice(0, 300)) : []",
            Vec::new(),
        )
        .await
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let _ = writeln!(page, "console ({} message(s), at most 50 kept):", console.len());
    for line in console.iter().filter_map(Value::as_str).take(50) {
        let _ = writeln!(page, "  {}", crate::redact::printable(line, 300));
    }
    rec.evidence("console.txt", page.into_bytes());
    if let Some(log) = network {
        let log = log.lock().expect("network log");
        let mut failed = String::new();
        for r in log.requests.iter().filter(|r| r.failed || r.status >= 400).take(200) {
            let what = if r.failed {
                "failed".to_string()
            } else {
                r.status.to_string()
            };
            let _ = writeln!(failed, "{what} {} {}", r.resource_type, crate::redact::url(&r.url));
        }
        if failed.is_empty() {
            failed.push_str("no failed request\n");
        }
        rec.evidence("requests.txt", failed.into_bytes());
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
        let network = lease.browser().network();
        if rec.trace().propagate
            && let Some(tracer) = lease.browser().tracer()
        {
            let rule = network::TraceRule {
                traceparent: rec.trace().traceparent(),
                hosts: (self.trace_requests == TraceRequests::FirstParty).then(|| self.first_party.clone()),
            };
            if !tracer.start(rule).await {
                rec.detail(
                    "trace_context",
                    "DevTools did not take the traceparent rule: requests went without it",
                );
            }
        }
        let mut result = self
            .measure(rec, lease.browser().client(), network.as_deref(), deadline)
            .await;
        if crate::outcome::evidence_on() {
            rec.enter("evidence");
            evidence(rec, lease.browser().client(), network.as_deref()).await;
        }
        // A page can echo its cookies into an error or an element: never into our output.
        for secret in self.steps.iter().filter_map(journey::Step::secret) {
            rec.scrub(secret);
            result = result.map_err(|e| e.scrubbed(secret));
        }
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
        network: Option<&Mutex<network::Log>>,
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
            if let journey::Action::Cookie { name, value } = &s.action {
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
            let state = self.load(client, network, deadline).await?;
            if state != "complete" {
                return Err(ProbeError::new(
                    ErrorType::Timeout,
                    format!("warm-up load did not finish (readyState {state:?})"),
                ));
            }
        }
        rec.enter("load");
        let state = self.load(client, network, deadline).await?;
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
            if let Some(busy) = settle::settle(self.settle, self.settle_max, client, network, deadline).await? {
                rec.detail("not_quiet", busy);
            }
        }
        let mut journey = journey_run::Journey::new(
            &self.steps,
            &self.first_party,
            (self.settle, self.settle_max),
            client,
            network,
            deadline,
        );
        let mut first_read = false;
        let mut result = Ok(());
        if loaded {
            for (i, step) in self.steps.iter().enumerate() {
                if matches!(step.action, journey::Action::Cookie { .. }) {
                    continue;
                }
                // Input ends the page's LCP: its figures are read before the first action.
                if step.acts() && !first_read {
                    first_read = true;
                    self.read_first_page(rec, client, network).await?;
                }
                if let Err(e) = journey.run_step(rec, i).await {
                    result = Err(e);
                    break;
                }
            }
        }
        if !first_read {
            self.read_first_page(rec, client, network).await?;
        }
        if result.is_ok() {
            result = journey.read_led_to_page(rec, true).await;
        }
        if self.steps.iter().any(journey::Step::acts) {
            journey.record_interactions(rec).await;
        }
        // The user's numbers, from the page the journey ends on.
        if let Some(script) = &self.script
            && loaded
            && result.is_ok()
        {
            rec.enter("metrics_script");
            self.run_script(rec, client, script).await?;
        }
        if SCREENSHOTS.load(std::sync::atomic::Ordering::Relaxed) {
            // After every measurement is read: it costs the run time, not the page's.
            rec.enter("screenshot");
            if let Ok(png) = client.screenshot().await
                && png.len() <= MAX_SCREENSHOT
            {
                rec.screenshot(png);
            }
        }
        result?;
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
    async fn load(
        &self,
        client: &fantoccini::Client,
        network: Option<&Mutex<network::Log>>,
        deadline: Instant,
    ) -> Result<String, ProbeError> {
        if let Some(n) = network {
            n.lock().expect("network log").reset();
        }
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

    /// The probe's own page: its vitals and bytes, under the catalog keys.
    async fn read_first_page(
        &self,
        rec: &mut Recorder,
        client: &fantoccini::Client,
        network: Option<&Mutex<network::Log>>,
    ) -> Result<(), ProbeError> {
        rec.enter("collect");
        let page = page::read(client).await?;
        if let Some(e) = page::navigation_error(rec, &page) {
            return Err(e);
        }
        {
            let seen = network.map(|n| n.lock().expect("network log"));
            page::record(rec, &page, &self.first_party, seen.as_deref(), &catalog::key);
        }
        Ok(())
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
            // A declared number that is missing stays unmeasured (a budget on it fails);
            // one that is not a finite, non-negative number fails the run.
            match map.get(*key) {
                None | Some(Value::Null) => {}
                Some(v) => match v.as_f64() {
                    Some(v) if v.is_finite() && v >= 0.0 => {
                        rec.set(key, if *unit == ScriptUnit::Ms { v / 1000.0 } else { v });
                    }
                    _ => {
                        return Err(ProbeError::new(
                            ErrorType::AssertionFailed,
                            format!("metrics_script: {key} is not a finite number of at least 0"),
                        ));
                    }
                },
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
