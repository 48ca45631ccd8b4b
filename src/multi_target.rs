//! `/probe?target=…&module=…`: runs a `[[module]]` once on the target a scrape names and
//! answers with that run, as blackbox_exporter does for Prometheus's multi-target
//! pattern. Targets must match the module's `allow` patterns, runs in flight are bounded
//! (`[server] probe_concurrency`), and the run's timeout is the scrape's less a margin.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::assembly::module::Module;
use crate::probe::{self, BuildContext};

/// Taken off the scrape's timeout so the answer arrives before Prometheus gives up
/// (blackbox_exporter's `--timeout-offset` default).
const TIMEOUT_OFFSET: Duration = Duration::from_millis(500);
/// The least time a run gets, whatever the scrape's header says.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// Targets longer than this are refused before any pattern sees them.
const MAX_TARGET: usize = 2048;

/// Why a `/probe` request got no run: an HTTP status and a line for the body.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

fn refused(status: u16, message: impl Into<String>) -> Refused {
    Refused {
        status,
        message: message.into(),
    }
}

pub struct MultiTarget {
    modules: HashMap<String, Module>,
    ctx: BuildContext,
    slots: Arc<Semaphore>,
}

impl MultiTarget {
    pub fn new(modules: Vec<Module>, ctx: BuildContext, concurrency: usize) -> Self {
        MultiTarget {
            modules: modules.into_iter().map(|m| (m.name.clone(), m)).collect(),
            ctx,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// The same modules with another config's; in-flight runs keep their slots.
    pub fn reloaded(&self, modules: Vec<Module>) -> Self {
        MultiTarget {
            modules: modules.into_iter().map(|m| (m.name.clone(), m)).collect(),
            ctx: self.ctx.clone(),
            slots: self.slots.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// Module names, sorted (HTML-safe: names are A-Z a-z 0-9 - _ .).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.modules.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// Runs `module` on `target` and renders the run.
    pub async fn probe(&self, target: &str, module: &str, scrape_timeout: Option<f64>) -> Result<String, Refused> {
        let Some(m) = self.modules.get(module) else {
            let mut known: Vec<&str> = self.modules.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(refused(
                400,
                format!("unknown module {module:?}; modules: {}", known.join(", ")),
            ));
        };
        if target.is_empty() {
            return Err(refused(400, "target parameter is missing"));
        }
        if target.len() > MAX_TARGET || target.chars().any(char::is_control) {
            return Err(refused(400, "target is too long or holds control characters"));
        }
        // As blackbox_exporter: a URL-speaking module given a bare host probes http://host.
        let (_, sample) = m.kind.target_key.expect("checked at load");
        let target = if sample.contains("://") && !target.contains("://") {
            format!("http://{target}")
        } else {
            target.to_string()
        };
        if !m.allows(&target) {
            return Err(refused(
                403,
                format!("target is not allowed by module {module:?} (its `allow` patterns)"),
            ));
        }
        let cfg = m.instantiate(&target).map_err(|e| refused(400, e))?;
        let mut built = probe::build(&cfg, &self.ctx).map_err(|e| refused(400, e.message))?;
        if let Some(why) = &built.unavailable {
            return Err(refused(503, format!("module {module:?} cannot run here: {why}")));
        }
        if let Some(secs) = scrape_timeout.filter(|s| s.is_finite() && *s > 0.0) {
            let budget = Duration::from_secs_f64(secs.min(3600.0)).saturating_sub(TIMEOUT_OFFSET);
            built.timeout = built.timeout.min(budget.max(MIN_TIMEOUT));
        }
        let permit = tokio::time::timeout(built.timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| refused(503, "too many /probe runs in flight ([server] probe_concurrency)"))?
            .map_err(|_| refused(503, "shutting down"))?;
        let outcome = built.execute().await;
        drop(permit);
        Ok(crate::telemetry::probe_text::render(&outcome, &built.measures))
    }
}
