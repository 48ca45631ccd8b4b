//! Probe kinds behind one small interface. Each kind is one file: it declares its
//! measurement catalog and a `build` that checks its config keys and returns a [`Probe`].
//! Runs are driven here, so timeouts and budgets work the same for every kind.

/// A connection phase of an HTTP-speaking probe, all feeding one histogram labelled by
/// `phase`. Defined before the kind modules so both can use it.
macro_rules! http_phase {
    ($key:literal, $labels:expr) => {
        $crate::outcome::Measure {
            key: $key,
            metric: "probe.http.phase.duration",
            unit: $crate::outcome::Unit::Seconds,
            instrument: $crate::outcome::Instrument::Histogram,
            description: "HTTP probe time by phase (dns, connect, tls, send, wait, transfer); phases are disjoint.",
            fixed: &[("phase", $key)],
            labels: $labels,
        }
    };
}

pub mod assistant;
pub mod http;
pub mod http_config;

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
    /// TLS client configs shared by probes with the same settings: a root store is
    /// ~150 KB, which 1,000 probes should not each hold a copy of.
    tls: Arc<Mutex<HashMap<TlsKey, Arc<rustls::ClientConfig>>>>,
}

impl BuildContext {
    pub fn new() -> Self {
        BuildContext {
            resolver: net::dns::system_resolver(),
            tls: Arc::default(),
        }
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

/// Checks a probe's keys and returns the ready-to-run probe.
pub type BuildFn = fn(&ProbeConfig, &BuildContext) -> Result<Box<dyn Probe>, ConfigError>;

/// A registered probe kind.
pub struct Kind {
    pub name: &'static str,
    pub measures: &'static [Measure],
    pub build: BuildFn,
    /// Budgets that together define a "good" run; when set, every run records
    /// `goodput` = 1 if it succeeded within all of them, else 0.
    pub goodput: &'static [&'static str],
}

pub const KINDS: &[Kind] = &[http::KIND, assistant::KIND];

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
    pub schedule: Schedule,
    pub timeout: Duration,
    pub budgets: Budgets,
    pub measures: Vec<&'static Measure>,
    goodput: &'static [&'static str],
    probe: Box<dyn Probe>,
    /// No run before this instant: the target answered 429 with Retry-After.
    backoff_until: Mutex<Option<Instant>>,
}

pub fn build(cfg: &ProbeConfig, ctx: &BuildContext) -> Result<BuiltProbe, ConfigError> {
    let Some(kind) = kind(&cfg.kind) else {
        let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        return Err(cfg.error_at(
            &cfg.raw.kind,
            "probe.kind",
            format!("unknown probe kind {:?}; known kinds: {}", cfg.kind, known.join(", ")),
        ));
    };
    let measures = measures_of(kind);
    let budgets = budget::parse(cfg, &measures)?;
    let probe = (kind.build)(cfg, ctx)?;
    Ok(BuiltProbe {
        name: cfg.name.clone(),
        kind: kind.name,
        schedule: cfg.schedule.clone(),
        timeout: cfg.timeout,
        budgets,
        measures,
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

/// Rejects keys this kind does not use, so a typo never silently does nothing.
/// Each entry is a key and, when it is set, where (so the error names its line).
pub fn reject_unused(
    cfg: &ProbeConfig,
    kind: &str,
    present: &[(&str, Option<std::ops::Range<usize>>)],
) -> Result<(), ConfigError> {
    match present.iter().find_map(|(key, span)| Some((key, span.clone()?))) {
        Some((key, span)) => Err(cfg.source.error_at(
            span,
            Some(&format!("probe.{key}")),
            format!("probe {:?}: key `{key}` is not used by kind {kind:?}", cfg.name),
        )),
        None => Ok(()),
    }
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
            schedule: Schedule::every(Duration::from_secs(30), "p", Duration::ZERO),
            timeout: Duration::from_secs(1),
            budgets: Budgets::default(),
            measures: measures_of(&http::KIND),
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
