//! Runs in flight of long-running probes (workflows waiting on a job): how many, and how
//! old the oldest is, observed at each collection, so a stuck job shows on a dashboard
//! before its deadline fails it. Process-wide: a reload that rebuilds telemetry keeps
//! the runs already in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

#[derive(Default)]
struct Entry {
    attrs: Vec<KeyValue>,
    /// Probe loops watching this probe (a reload may briefly run two).
    watchers: usize,
    runs: Vec<(u64, Instant)>,
}

fn table() -> &'static Mutex<HashMap<String, Entry>> {
    static TABLE: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

/// Keeps a probe's gauges exported (at 0 when idle) while its loop runs.
pub struct Watch(String);

/// One run in flight; dropping it (run ended, or cut off) takes it out.
pub struct Run(String, u64);

pub fn watch(probe: &str, attrs: Vec<KeyValue>) -> Watch {
    let mut t = table().lock().expect("in-flight lock");
    let e = t.entry(probe.to_string()).or_default();
    e.attrs = attrs;
    e.watchers += 1;
    Watch(probe.to_string())
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut t = table().lock().expect("in-flight lock");
        if let Some(e) = t.get_mut(&self.0) {
            e.watchers -= 1;
            if e.watchers == 0 && e.runs.is_empty() {
                t.remove(&self.0);
            }
        }
    }
}

pub fn start(probe: &str) -> Run {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut t = table().lock().expect("in-flight lock");
    t.entry(probe.to_string()).or_default().runs.push((id, Instant::now()));
    Run(probe.to_string(), id)
}

impl Drop for Run {
    fn drop(&mut self) {
        let mut t = table().lock().expect("in-flight lock");
        if let Some(e) = t.get_mut(&self.0) {
            e.runs.retain(|(id, _)| *id != self.1);
            if e.watchers == 0 && e.runs.is_empty() {
                t.remove(&self.0);
            }
        }
    }
}

/// (runs in flight, age of the oldest in seconds) of a watched probe.
pub fn of(probe: &str) -> Option<(usize, f64)> {
    let t = table().lock().expect("in-flight lock");
    t.get(probe).map(|e| (e.runs.len(), oldest_age(e)))
}

fn oldest_age(e: &Entry) -> f64 {
    e.runs
        .iter()
        .map(|(_, t)| t.elapsed().as_secs_f64())
        .fold(0.0, f64::max)
}

pub fn register(meter: &Meter) {
    let _count = meter
        .u64_observable_gauge("probe.runs.in_flight")
        .with_unit("{run}")
        .with_description("Runs of a long-running probe (workflow) started and not yet ended.")
        .with_callback(|o| {
            for e in table().lock().expect("in-flight lock").values() {
                o.observe(e.runs.len() as u64, &e.attrs);
            }
        })
        .build();
    let _age = meter
        .f64_observable_gauge("probe.run.oldest_in_flight.age")
        .with_unit("s")
        .with_description("Age of the oldest run in flight of a long-running probe; 0 when none is.")
        .with_callback(|o| {
            for e in table().lock().expect("in-flight lock").values() {
                o.observe(oldest_age(e), &e.attrs);
            }
        })
        .build();
}
