//! Every run's W3C Trace Context: a trace id that names the run (in `once` output, the
//! failure log line, artifacts and exemplars) and the `traceparent` header the kinds that
//! speak HTTP send on each request of the run, so the backend's spans of a slow run can be
//! found from the probe's side (docs/tracing.md).

use http::{HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The run's own span: the parent of the backend's spans.
    pub span_id: [u8; 8],
    /// Whether requests of the run carry `traceparent` (the probe's `trace_context`).
    pub propagate: bool,
}

impl TraceContext {
    /// No trace (a scratch recorder's): never sent.
    pub const NONE: TraceContext = TraceContext {
        trace_id: [0; 16],
        span_id: [0; 8],
        propagate: false,
    };

    /// Fresh random ids (uuid's v4, from a thread-local generator the OS seeds).
    pub fn new(propagate: bool) -> TraceContext {
        let a = uuid::Uuid::new_v4().into_bytes();
        let b = uuid::Uuid::new_v4().into_bytes();
        let mut span_id = [0u8; 8];
        span_id.copy_from_slice(&b[..8]);
        // All-zero ids are invalid; v4's version bits make that impossible for the trace id.
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        TraceContext {
            trace_id: a,
            span_id,
            propagate,
        }
    }

    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn span_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// `00-<trace id>-<span id>-01`: version 0, sampled, so a parent-based sampler in the
    /// backend keeps the trace of every probe run.
    pub fn traceparent(&self) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id);
        s.push('-');
        push_hex(&mut s, &self.span_id);
        s.push_str("-01");
        s
    }

    /// The header to add to a request, unless propagation is off or the request has its own.
    pub fn header_for(&self, headers: &http::HeaderMap) -> Option<(HeaderName, HeaderValue)> {
        if !self.propagate || headers.contains_key(TRACEPARENT) {
            return None;
        }
        Some((TRACEPARENT, HeaderValue::from_str(&self.traceparent()).ok()?))
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Lowercase hex without `fmt` (this runs for every request a probe sends).
fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_w3c_version_0_and_ids_differ_per_run() {
        let a = TraceContext::new(true);
        let b = TraceContext::new(true);
        assert_ne!(a.trace_id, b.trace_id);
        let tp = a.traceparent();
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len(), parts[3]),
            ("00", 32, 16, "01")
        );
        assert!(tp.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
        let known = TraceContext {
            trace_id: [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
            ],
            span_id: [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
            propagate: true,
        };
        // The W3C spec's own example.
        assert_eq!(
            known.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let mut own = http::HeaderMap::new();
        assert!(a.header_for(&own).is_some());
        own.insert(TRACEPARENT, HeaderValue::from_static("00-x"));
        assert!(a.header_for(&own).is_none(), "the user's own header wins");
        assert!(TraceContext::NONE.header_for(&http::HeaderMap::new()).is_none());
    }
}
