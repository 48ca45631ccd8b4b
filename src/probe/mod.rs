//! Probe kinds behind one small interface (`kind.rs`). Each kind is one file (or folder)
//! that owns its config keys (a serde [`Settings`] type), its measurement catalog and its
//! run; the registry of kinds is `assembly::KINDS`. Runs are driven here, so timeouts and
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
pub mod dns;
pub mod grpc;
pub mod http;
pub mod http_config;
pub mod icmp;
pub mod json;
pub mod kind;
pub mod tcp;
pub mod vector;
pub mod websocket;
pub mod workflow;

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt as _;

use crate::budget::{self, Budgets};
use crate::config::ConfigError;
use crate::net;
use crate::outcome::{COMMON_MEASURES, ErrorType, Measure, Outcome, ProbeError, Recorder};
use crate::schedule::Schedule;

pub use kind::{BoxFuture, BuildContext, Kind, Probe, ProbeConfig, Settings};

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
    /// See [`Settings::max_in_flight`].
    pub max_in_flight: usize,
    /// See [`Kind::long_runs`]: its in-flight runs are exported as gauges.
    pub long_runs: bool,
    /// Requests of a run carry its `traceparent` (`trace_context`).
    pub trace_context: bool,
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
    let mut budgets = budget::parse(&cfg.common.budget, kind.name, &cfg.source, &measures)?;
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
        max_in_flight: cfg.settings.max_in_flight(),
        long_runs: kind.long_runs,
        trace_context: cfg.common.trace_context.unwrap_or(true),
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
        self.execute_until(std::future::pending()).await
    }

    /// Like [`execute`](Self::execute), but cut off when `interrupt` completes (the daemon
    /// stopping or dropping the probe past its grace): such a run is no evidence about
    /// the target, so it comes back skipped as `interrupted`, with what it measured.
    pub async fn execute_until(&self, interrupt: impl std::future::Future<Output = ()>) -> Outcome {
        let started_at = SystemTime::now();
        let start = Instant::now();
        let mut rec = Recorder::new(start);
        rec.set_trace(crate::trace::TraceContext::new(self.trace_context));
        // A panic in a probe is a classified failed run: never a lost run, never a pass.
        let guarded = AssertUnwindSafe(self.probe.run(&mut rec)).catch_unwind();
        // The run ends when the timeout fires; cutting it off (dropping it: closing
        // connections, killing a browser) comes after, outside its time.
        let mut run = Box::pin(guarded);
        let result = tokio::select! {
            r = &mut run => Ok(r),
            _ = tokio::time::sleep(self.timeout) => Err(false),
            _ = interrupt => Err(true),
        };
        let end = Instant::now();
        drop(run);
        let error = match result {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e),
            Ok(Err(panic)) => Some(panic_error(panic.as_ref())),
            Err(false) => Some(timeout_error(rec.phase(), self.timeout)),
            Err(true) => {
                rec.skip("interrupted");
                Some(ProbeError::new(
                    ErrorType::Timeout,
                    format!("cut off by the daemon stopping (during {})", rec.phase()),
                ))
            }
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
pub(crate) fn timeout_error(phase: &str, timeout: Duration) -> ProbeError {
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
            max_in_flight: 1,
            long_runs: false,
            trace_context: true,
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
