//! `[export.otlp] traces = true`: each probe run as an OTLP client span, the parent of the
//! backend's spans (its id is the `traceparent` the run sent), with the run's steps (a
//! journey's, a workflow's) or its request phases as child spans. Runs wait in a bounded
//! queue for the next push; past its cap the oldest are dropped and counted.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span, status};

use crate::outcome::Outcome;

/// Spans waiting for the next push at most (a run's span and its children are ~1 KB).
const MAX_QUEUED: usize = 20_000;
/// The phases laid out as child spans when a run has no steps, in the order they happen.
const PHASES: &[&str] = &["dns", "connect", "tls", "send", "wait", "transfer"];

pub static DROPPED: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
pub struct SpanQueue(Mutex<VecDeque<Span>>);

impl SpanQueue {
    /// Queues a finished run's spans.
    pub fn push_run(&self, o: &Outcome, location: &str) {
        let spans = run_spans(o, location);
        let mut q = self.0.lock().expect("span queue lock");
        for s in spans {
            if q.len() >= MAX_QUEUED {
                q.pop_front();
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(s);
        }
    }

    /// Takes up to `n` queued spans.
    pub fn take(&self, n: usize) -> Vec<Span> {
        let mut q = self.0.lock().expect("span queue lock");
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.lock().expect("span queue lock").is_empty()
    }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "sloprobe".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

fn text(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A child span id derived from the run's span id and the child's index: unique within the
/// trace, no second random draw.
fn child_id(parent: [u8; 8], i: usize) -> Vec<u8> {
    let mut id = parent;
    let n = (i as u64 + 1).to_be_bytes();
    for (b, x) in id.iter_mut().zip(n) {
        *b ^= x.rotate_left(3) ^ 0x5a;
    }
    if id == [0; 8] {
        id[7] = 1;
    }
    id.to_vec()
}

/// The run's span and its children.
pub fn run_spans(o: &Outcome, location: &str) -> Vec<Span> {
    let start = o.started_at;
    let total = Duration::from_secs_f64(o.get("total").unwrap_or(0.0).clamp(0.0, 86_400.0 * 7.0));
    let trace_id = o.trace.trace_id.to_vec();
    let mut attributes = vec![
        text("probe.name", &o.probe),
        text("probe.kind", o.kind),
        text("probe.location", location),
        text("user_agent.synthetic.type", "test"),
        text("outcome", if o.success() { "success" } else { "failure" }),
    ];
    if let Some(e) = &o.error {
        attributes.push(text("error.type", e.kind.as_str()));
    }
    if let Some(code) = o.labels.iter().find(|(k, _)| *k == "http.response.status_code") {
        attributes.push(text("http.response.status_code", &code.1.text));
    }
    let run = Span {
        trace_id: trace_id.clone(),
        span_id: o.trace.span_id.to_vec(),
        name: format!("probe {}", o.probe),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: nanos(start),
        end_time_unix_nano: nanos(start + total),
        attributes,
        status: Some(Status {
            code: if o.success() {
                status::StatusCode::Ok as i32
            } else {
                status::StatusCode::Error as i32
            },
            // The error type only: a message may quote the target.
            message: o
                .error
                .as_ref()
                .map(|e| e.kind.as_str().to_string())
                .unwrap_or_default(),
        }),
        ..Default::default()
    };
    let child = |i: usize, name: String, from: f64, len: f64, failed: bool| Span {
        trace_id: trace_id.clone(),
        span_id: child_id(o.trace.span_id, i),
        parent_span_id: o.trace.span_id.to_vec(),
        name,
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: nanos(start + Duration::from_secs_f64(from.clamp(0.0, 1e6))),
        end_time_unix_nano: nanos(start + Duration::from_secs_f64((from + len).clamp(0.0, 1e6))),
        status: failed.then(|| Status {
            code: status::StatusCode::Error as i32,
            message: String::new(),
        }),
        ..Default::default()
    };
    let mut spans = vec![run];
    if !o.steps.is_empty() {
        for (i, s) in o.steps.iter().take(64).enumerate() {
            spans.push(child(i, s.name.clone(), s.start, s.duration, s.error.is_some()));
        }
    } else {
        // Disjoint phases, one after another from the start.
        let mut at = 0.0;
        for (i, p) in PHASES.iter().enumerate() {
            if let Some(d) = o.get(p).filter(|d| *d > 0.0) {
                spans.push(child(i, (*p).to_string(), at, d, false));
                at += d;
            }
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_a_client_span_and_its_phases_its_children() {
        let mut o = Outcome::measured(
            "api",
            "http",
            vec![("dns", 0.001), ("connect", 0.002), ("wait", 0.01), ("total", 0.02)],
        );
        o.trace = crate::trace::TraceContext::new(true);
        let spans = run_spans(&o, "eu");
        assert_eq!(spans.len(), 4);
        assert_eq!(spans[0].span_id, o.trace.span_id.to_vec());
        assert_eq!(spans[0].kind, span::SpanKind::Client as i32);
        let ids: std::collections::HashSet<Vec<u8>> = spans.iter().map(|s| s.span_id.clone()).collect();
        assert_eq!(ids.len(), 4, "span ids are unique");
        for c in &spans[1..] {
            assert_eq!(c.parent_span_id, o.trace.span_id.to_vec());
            assert_eq!(c.trace_id, o.trace.trace_id.to_vec());
            assert!(c.start_time_unix_nano >= spans[0].start_time_unix_nano);
            assert!(c.end_time_unix_nano <= spans[0].end_time_unix_nano);
        }
        let q = SpanQueue::default();
        q.push_run(&o, "eu");
        assert_eq!(q.take(3).len(), 3);
        assert_eq!(q.take(10).len(), 1);
        assert!(q.is_empty());
    }
}
