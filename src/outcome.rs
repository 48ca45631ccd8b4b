//! The one result type every probe kind produces, and the one error-type enum.
//!
//! A probe fills a [`Recorder`] as it goes; the runner turns it into an [`Outcome`]
//! (also when the run is cut off by its timeout, so partial phases survive).

use std::fmt;
use std::time::{Instant, SystemTime};

/// Why a run failed. Bounded on purpose: this becomes the `error.type` metric attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    DnsNxdomain,
    DnsNoRecords,
    DnsTimeout,
    DnsError,
    ConnectRefused,
    ConnectTimeout,
    ConnectError,
    TlsHandshake,
    TlsCertInvalid,
    TlsCertExpired,
    Timeout,
    HttpStatus,
    RedirectLimit,
    RateLimited,
    AssertionFailed,
    BodyTooLarge,
    MessageTooLarge,
    ProtocolError,
    ConnectionClosed,
    NoContent,
    NotStreamed,
    StreamStalled,
    UpstreamError,
    AuthFailed,
    QueryError,
    ShortResult,
    ExtractionFailed,
    BrowserError,
    InsufficientMemory,
    Internal,
}

impl ErrorType {
    pub const ALL: &'static [ErrorType] = &[
        ErrorType::DnsNxdomain,
        ErrorType::DnsNoRecords,
        ErrorType::DnsTimeout,
        ErrorType::DnsError,
        ErrorType::ConnectRefused,
        ErrorType::ConnectTimeout,
        ErrorType::ConnectError,
        ErrorType::TlsHandshake,
        ErrorType::TlsCertInvalid,
        ErrorType::TlsCertExpired,
        ErrorType::Timeout,
        ErrorType::HttpStatus,
        ErrorType::RedirectLimit,
        ErrorType::RateLimited,
        ErrorType::AssertionFailed,
        ErrorType::BodyTooLarge,
        ErrorType::MessageTooLarge,
        ErrorType::ProtocolError,
        ErrorType::ConnectionClosed,
        ErrorType::NoContent,
        ErrorType::NotStreamed,
        ErrorType::StreamStalled,
        ErrorType::UpstreamError,
        ErrorType::AuthFailed,
        ErrorType::QueryError,
        ErrorType::ShortResult,
        ErrorType::ExtractionFailed,
        ErrorType::BrowserError,
        ErrorType::InsufficientMemory,
        ErrorType::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::DnsNxdomain => "dns_nxdomain",
            ErrorType::DnsNoRecords => "dns_no_records",
            ErrorType::DnsTimeout => "dns_timeout",
            ErrorType::DnsError => "dns_error",
            ErrorType::ConnectRefused => "connect_refused",
            ErrorType::ConnectTimeout => "connect_timeout",
            ErrorType::ConnectError => "connect_error",
            ErrorType::TlsHandshake => "tls_handshake",
            ErrorType::TlsCertInvalid => "tls_cert_invalid",
            ErrorType::TlsCertExpired => "tls_cert_expired",
            ErrorType::Timeout => "timeout",
            ErrorType::HttpStatus => "http_status",
            ErrorType::RedirectLimit => "redirect_limit",
            ErrorType::RateLimited => "rate_limited",
            ErrorType::AssertionFailed => "assertion_failed",
            ErrorType::BodyTooLarge => "body_too_large",
            ErrorType::MessageTooLarge => "message_too_large",
            ErrorType::ProtocolError => "protocol_error",
            ErrorType::ConnectionClosed => "connection_closed",
            ErrorType::NoContent => "no_content",
            ErrorType::NotStreamed => "not_streamed",
            ErrorType::StreamStalled => "stream_stalled",
            ErrorType::UpstreamError => "upstream_error",
            ErrorType::AuthFailed => "auth_failed",
            ErrorType::QueryError => "query_error",
            ErrorType::ShortResult => "short_result",
            ErrorType::ExtractionFailed => "extraction_failed",
            ErrorType::BrowserError => "browser_error",
            ErrorType::InsufficientMemory => "insufficient_memory",
            ErrorType::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure with a human message (for logs and `once` output, never a metric).
#[derive(Clone, Debug)]
pub struct ProbeError {
    pub kind: ErrorType,
    pub message: String,
}

impl ProbeError {
    /// The message often quotes the target (an error text, a header): it is made
    /// printable here, once, for every kind (`redact::printable`).
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ProbeError {
            kind,
            message: crate::redact::printable(&message.into(), MAX_ERROR_TEXT),
        }
    }
}

/// Characters of target text kept in an error message, and in a run detail.
pub const MAX_ERROR_TEXT: usize = 512;
pub const MAX_DETAIL_TEXT: usize = 512;

impl ProbeError {
    /// The same error with a secret the run used taken out of its message.
    pub fn scrubbed(mut self, secret: &str) -> ProbeError {
        if secret.len() >= 4 && self.message.contains(secret) {
            self.message = self.message.replace(secret, "<redacted>");
        }
        self
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What a measurement's number means, so telemetry can pick unit and instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Bytes,
    Count,
    /// LLM tokens (OTel unit `{token}`).
    Tokens,
    /// Seconds since the Unix epoch (a point in wall time, e.g. a certificate's notAfter).
    UnixTime,
    /// Probe runs (OTel unit `{run}`), e.g. the goodput counter.
    Runs,
    /// A unitless score between 0 and a few, such as Cumulative Layout Shift.
    Score,
    /// Bytes a second (an upload's throughput).
    BytesPerSecond,
    /// A share from 0 to 1 where more is better, such as search recall: a budget or SLO
    /// threshold on it is a floor.
    Ratio,
    /// A share from 0 to 1 where less is better, such as ping loss: a threshold on it is a
    /// ceiling. OTel unit `1`, so Prometheus names end in `_ratio`.
    Loss,
}

impl Unit {
    /// A value in this unit for people: `12.345ms`, `180000B`, `2026-05-01`.
    pub fn format(self, v: f64) -> String {
        // -0.0 (a difference of equal times) reads as 0.
        let v = if v == 0.0 { 0.0 } else { v };
        match self {
            Unit::Seconds => crate::config::fmt_seconds(v),
            Unit::Bytes => format!("{v:.0}B"),
            Unit::BytesPerSecond => format!("{:.2}MB/s", v / 1e6),
            Unit::Count | Unit::Tokens | Unit::Runs => format!("{v}"),
            Unit::Score | Unit::Ratio | Unit::Loss => format!("{v:.3}"),
            Unit::UnixTime => {
                chrono::DateTime::from_timestamp(v as i64, 0).map_or(v.to_string(), |t| t.date_naive().to_string())
            }
        }
    }

    /// A value that may be missing: "unmeasured" then.
    pub fn format_opt(self, v: Option<f64>) -> String {
        v.map_or_else(|| "unmeasured".to_string(), |v| self.format(v))
    }
}

impl Unit {
    /// Whether `value` meets `threshold`: at or under it, or at or over it for a
    /// [`Unit::Ratio`]. Budgets, percentile budgets and threshold counters all judge here.
    /// "≤", or "≥" for a floor: how a threshold reads.
    pub fn bound(self) -> &'static str {
        if self == Unit::Ratio { "≥" } else { "≤" }
    }

    /// ">", or "<" for a floor: how a broken threshold reads.
    pub fn beyond(self) -> &'static str {
        if self == Unit::Ratio { "<" } else { ">" }
    }

    /// The worse of two values: the larger, or the smaller for a floor.
    pub fn worse(self, a: f64, b: f64) -> f64 {
        if self == Unit::Ratio { a.min(b) } else { a.max(b) }
    }

    /// The worst of values where `None` is unmeasured, which is worst of all.
    pub fn worst(self, values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
        let mut worst: Option<Option<f64>> = None;
        for v in values {
            worst = Some(match (worst, v) {
                (None, v) => v,
                (Some(Some(w)), Some(v)) => Some(self.worse(w, v)),
                _ => None,
            });
        }
        worst.flatten()
    }

    pub fn within(self, value: f64, threshold: f64) -> bool {
        match self {
            Unit::Ratio => value >= threshold,
            _ => value <= threshold,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instrument {
    /// Every value goes into a histogram with the unit's fixed bucket edges
    /// (docs/metrics.md), or an exponential one when `histograms = "exponential"`.
    Histogram,
    /// A histogram of seconds whose buckets span milliseconds to hours
    /// (`buckets::LONG_SECONDS`): a workflow's steps and its wait on a long job.
    LongHistogram,
    /// A histogram without buckets: count and sum, so rates give the mean. For
    /// breakdowns (phases) where a distribution per probe would cost more series than it
    /// tells; thresholds on them are still exact (`probe.threshold.runs`).
    Mean,
    /// Only the last value counts.
    Gauge,
    /// Values are added up (e.g. 1 for every run that met its goodput budgets).
    Counter,
}

/// One entry of a probe kind's measurement catalog: what a `key` in an outcome is
/// exported as. Probe modules declare these as plain data; only telemetry turns them
/// into OpenTelemetry instruments.
#[derive(Debug)]
pub struct Measure {
    /// The name in outcomes, budgets and `once` output (`ttfb`, `dns`, ...).
    pub key: &'static str,
    /// The metric name (OTel style, dots; the unit is not part of it).
    pub metric: &'static str,
    pub unit: Unit,
    pub instrument: Instrument,
    pub description: &'static str,
    /// Constant attributes, e.g. `("phase", "dns")` for the shared phase histogram.
    pub fixed: &'static [(&'static str, &'static str)],
    /// Outcome labels this instrument carries (besides probe name, kind, location).
    pub labels: &'static [&'static str],
}

/// A `browser.web_vital.<key>` histogram. The browser probe (lab, with a synthetic
/// attribute) and the RUM collector (field, per route) feed the same instrument, so they
/// share its description too.
pub const fn web_vital(
    key: &'static str,
    metric: &'static str,
    unit: Unit,
    fixed: &'static [(&'static str, &'static str)],
    labels: &'static [&'static str],
) -> Measure {
    let description = match unit {
        Unit::Score => "Cumulative Layout Shift: the largest session window (web-vitals' definition); lab and field.",
        _ => {
            "A web vital (TTFB, FCP, LCP; INP and FID from real users only); lab data carries user_agent.synthetic.type, field data does not."
        }
    };
    Measure {
        key,
        metric,
        unit,
        instrument: Instrument::Histogram,
        description,
        fixed,
        labels,
    }
}

/// A threshold watched on one probe: a per-run or percentile budget, or an SLO threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Watch {
    pub key: &'static str,
    pub value: f64,
    /// What `value` is in; a ratio's threshold is a floor.
    pub unit: Unit,
}

/// One vital of one real page view from the RUM collector, final after dedupe: what
/// telemetry records on the same instrument as the browser probe's vital.
#[derive(Clone, Debug)]
pub struct FieldVital<'a> {
    pub measure: &'static Measure,
    /// In the measure's unit.
    pub value: f64,
    /// The route label (shared by every vital of the route).
    pub route: std::sync::Arc<str>,
    /// Rating, navigation type, device class, budget verdict: fixed words.
    pub attrs: [(&'static str, &'static str); 4],
    /// How many of `attrs` apply (no verdict without a budget).
    pub attr_count: usize,
    /// Thresholds counted exactly per route (budget and SLO thresholds).
    pub thresholds: &'a [Watch],
}

/// The longest pause a target's Retry-After can impose on a probe (docs/config.md).
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// Label key under which the error type appears when a measure asks for it.
pub const ERROR_TYPE_LABEL: &str = "error.type";

/// Measurements every probe kind has; the runner records them.
pub const COMMON_MEASURES: &[Measure] = &[Measure {
    key: "total",
    // Not `probe.duration`: blackbox_exporter's probe_duration_seconds is a gauge.
    metric: "probe.run.duration",
    unit: Unit::Seconds,
    instrument: Instrument::Mean,
    description: "Whole run, start to last byte or failure. Count and sum only (mean); thresholds on `total` are exact counters.",
    fixed: &[],
    labels: &[],
}];

/// Tells, when the run is cut off, whether the phase has moved on without the probe
/// getting a chance to say so (a request fully written while the probe awaits the reply).
pub struct PhaseHint(Box<dyn Fn() -> Option<&'static str> + Send + Sync>);

impl fmt::Debug for PhaseHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhaseHint")
    }
}

/// An attribute value: text, and for numeric attributes (status codes, ports) the number,
/// which OTLP carries as an integer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttrValue {
    pub text: String,
    pub int: Option<i64>,
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue {
            text: s.to_string(),
            int: None,
        }
    }
}

impl From<String> for AttrValue {
    fn from(text: String) -> Self {
        AttrValue { text, int: None }
    }
}

impl From<i64> for AttrValue {
    fn from(n: i64) -> Self {
        AttrValue {
            text: n.to_string(),
            int: Some(n),
        }
    }
}

pub type Attrs = Vec<(&'static str, AttrValue)>;

/// One of many values of a key in a run. A sample with its own attributes (one HTTP
/// request of several redirect hops) is exported with those instead of the run's labels.
#[derive(Clone, Debug)]
pub struct Sample {
    pub key: &'static str,
    pub value: f64,
    pub attrs: Option<Attrs>,
}

/// Samples one run keeps (every gap, every round trip); the rest are counted in the
/// `samples_dropped` detail.
pub const MAX_SAMPLES: usize = 16_384;

/// One named stage of a run (a workflow step), for `once` output and logs: when it began
/// and ended relative to the run's start, and how it ended.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepReport {
    pub name: String,
    pub start: f64,
    pub duration: f64,
    /// The last HTTP status the step saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Short facts: polls made, states seen, parts uploaded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Whether runs keep evidence for `[artifacts]` (off: no cost). Set once at start.
static EVIDENCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn capture_evidence(on: bool) {
    EVIDENCE.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn evidence_on() -> bool {
    EVIDENCE.load(std::sync::atomic::Ordering::Relaxed)
}

/// The largest evidence file a run keeps (a screenshot); larger ones are left out.
pub const MAX_EVIDENCE_FILE: usize = 8 * 1024 * 1024;

/// One evidence file of a run: its name in the run's artifact folder and its bytes.
pub type EvidenceFile = (&'static str, std::sync::Arc<[u8]>);

/// Accumulates a run's measurements as it goes.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    phase: &'static str,
    phase_hint: Option<PhaseHint>,
    measurements: Vec<(&'static str, f64)>,
    samples: Vec<Sample>,
    /// Samples past [`MAX_SAMPLES`], counted instead of kept.
    dropped_samples: u64,
    labels: Attrs,
    details: Vec<(&'static str, String)>,
    retry_after: Option<std::time::Duration>,
    /// A sample being timed (an HTTP request in flight); closed at the run's end if the
    /// run is cut off, so a timed-out request is still counted, with its error type.
    open: Option<(&'static str, Instant, Attrs)>,
    /// Keys that take the run's total when the run ends without them.
    at_end: Vec<&'static str>,
    skipped: Option<&'static str>,
    steps: Vec<StepReport>,
    screenshot: Option<std::sync::Arc<[u8]>>,
    trace: crate::trace::TraceContext,
    evidence: Vec<EvidenceFile>,
}

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Recorder {
            start,
            phase: "start",
            phase_hint: None,
            // Room for a typical run's entries: growing them push by push was a few
            // reallocations a run (docs/benchmarks.md, CPU per run).
            measurements: Vec::with_capacity(12),
            samples: Vec::new(),
            dropped_samples: 0,
            labels: Vec::with_capacity(4),
            details: Vec::with_capacity(2),
            retry_after: None,
            open: None,
            at_end: Vec::new(),
            skipped: None,
            steps: Vec::new(),
            screenshot: None,
            trace: crate::trace::TraceContext::NONE,
            evidence: Vec::new(),
        }
    }

    /// Evidence for a failed run's artifacts (when [`evidence_on`]): replaces an earlier
    /// file of the same name; past [`MAX_EVIDENCE_FILE`] it is left out.
    pub fn evidence(&mut self, name: &'static str, bytes: Vec<u8>) {
        if bytes.len() > MAX_EVIDENCE_FILE {
            return;
        }
        let file: std::sync::Arc<[u8]> = bytes.into();
        match self.evidence.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = file,
            None => self.evidence.push((name, file)),
        }
    }

    /// The run's trace context (the runner sets it; scratch recorders have none).
    pub fn set_trace(&mut self, trace: crate::trace::TraceContext) {
        self.trace = trace;
    }

    pub fn trace(&self) -> crate::trace::TraceContext {
        self.trace
    }

    /// A scratch recorder for timings that are not the run's (a second connection's
    /// phases) whose requests still carry the run's trace context.
    pub fn child(&self, start: Instant) -> Recorder {
        let mut r = Recorder::new(start);
        r.trace = self.trace;
        r
    }

    /// A PNG of the page as the run left it (browser runs for `once --report`).
    pub fn screenshot(&mut self, png: Vec<u8>) {
        self.screenshot = Some(png.into());
    }

    /// A finished stage of the run (see [`StepReport`]).
    pub fn step(&mut self, step: StepReport) {
        self.steps.push(step);
    }

    /// One of many values of a key in a run (e.g. every inter-chunk gap).
    /// Past [`MAX_SAMPLES`] in a run they are counted, not kept: a target that streams
    /// events without pause cannot grow the run (a sample is ~48 bytes).
    pub fn sample(&mut self, key: &'static str, value: f64) {
        if self.samples.len() >= MAX_SAMPLES {
            self.dropped_samples += 1;
            return;
        }
        self.samples.push(Sample {
            key,
            value,
            attrs: None,
        });
    }

    /// Starts timing a sample of `key` that carries its own attributes.
    pub fn open_sample(&mut self, key: &'static str, attrs: Attrs) {
        self.open = Some((key, Instant::now(), attrs));
    }

    /// Adds an attribute to the open sample.
    pub fn open_attr(&mut self, key: &'static str, value: impl Into<AttrValue>) {
        if let Some((_, _, attrs)) = self.open.as_mut() {
            *slot(attrs, key) = value.into();
        }
    }

    /// Ends the open sample now; `error` becomes its `error.type`.
    pub fn close_sample(&mut self, error: Option<&str>) {
        self.close_at(Instant::now(), error);
    }

    fn close_at(&mut self, end: Instant, error: Option<&str>) {
        if let Some((key, start, mut attrs)) = self.open.take() {
            if let Some(e) = error {
                *slot(&mut attrs, ERROR_TYPE_LABEL) = e.into();
            }
            if self.samples.len() >= MAX_SAMPLES {
                self.dropped_samples += 1;
                return;
            }
            self.samples.push(Sample {
                key,
                value: end.saturating_duration_since(start).as_secs_f64(),
                attrs: Some(attrs),
            });
        }
    }

    /// If the run ends without `key` (it failed or was cut off first), `key` takes the
    /// run's total: e.g. the GenAI operation duration of a failed call.
    pub fn default_to_total(&mut self, key: &'static str) {
        self.at_end.push(key);
    }

    /// The server asked for no requests before this much time passes (HTTP Retry-After).
    /// Capped at [`MAX_RETRY_AFTER`]: the value comes from the network, and the daemon
    /// and `once` both honour what is stored here.
    pub fn retry_after(&mut self, d: std::time::Duration) {
        self.retry_after = Some(d.min(MAX_RETRY_AFTER));
    }

    /// The run did not happen (no browser slot within its time): the scheduler counts it
    /// under `probe.runs.skipped{reason}`, not as a run.
    pub fn skip(&mut self, reason: &'static str) {
        self.skipped = Some(reason);
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Seconds from run start to `t`.
    pub fn offset(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64()
    }

    /// Names the phase the run is in now; a timeout is classified by it.
    pub fn enter(&mut self, phase: &'static str) {
        self.phase = phase;
        self.phase_hint = None;
    }

    /// Until the next `enter`, `hint` may name a later phase than the one entered.
    pub fn hint_phase(&mut self, hint: impl Fn() -> Option<&'static str> + Send + Sync + 'static) {
        self.phase_hint = Some(PhaseHint(Box::new(hint)));
    }

    pub fn phase(&self) -> &'static str {
        self.phase_hint.as_ref().and_then(|h| (h.0)()).unwrap_or(self.phase)
    }

    /// Sets a measurement, replacing an earlier value of the same key.
    pub fn set(&mut self, key: &'static str, value: f64) {
        *slot(&mut self.measurements, key) = value;
    }

    /// Adds to a measurement (phases summed over redirect hops).
    pub fn add(&mut self, key: &'static str, value: f64) {
        *slot(&mut self.measurements, key) += value;
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.measurements.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// A bounded attribute that metrics may carry (status code, protocol version).
    pub fn label(&mut self, key: &'static str, value: impl Into<AttrValue>) {
        *slot(&mut self.labels, key) = value.into();
    }

    /// Free-form information for logs and `once` output only (addresses, URLs), made
    /// printable (one line, bounded): it often comes from the target.
    pub fn detail(&mut self, key: &'static str, value: impl Into<String>) {
        *slot(&mut self.details, key) = crate::redact::printable(&value.into(), MAX_DETAIL_TEXT);
    }

    /// A detail this crate made safe already (a URL `redact::url` gave back): kept as is.
    pub fn detail_redacted(&mut self, key: &'static str, value: String) {
        *slot(&mut self.details, key) = value;
    }

    /// Replaces a secret the run used wherever the target may have echoed it back (a
    /// page's error text quoting its cookie).
    pub fn scrub(&mut self, secret: &str) {
        if secret.len() < 4 {
            return;
        }
        for (_, v) in &mut self.details {
            if v.contains(secret) {
                *v = v.replace(secret, "<redacted>");
            }
        }
        for (name, file) in &mut self.evidence {
            if name.ends_with(".txt")
                && let Ok(text) = std::str::from_utf8(file)
                && text.contains(secret)
            {
                *file = text.replace(secret, "<redacted>").into_bytes().into();
            }
        }
    }

    pub fn finish(
        mut self,
        probe: &str,
        kind: &'static str,
        started_at: SystemTime,
        end: Instant,
        error: Option<ProbeError>,
    ) -> Outcome {
        self.set("total", self.offset(end));
        let error_kind = error.as_ref().map(|e| e.kind.as_str());
        self.close_at(end, error_kind);
        for key in std::mem::take(&mut self.at_end) {
            if self.get(key).is_none() {
                self.set(key, self.offset(end));
            }
        }
        if self.dropped_samples > 0 {
            let n = self.dropped_samples;
            self.detail(
                "samples_dropped",
                format!("{n} sample(s) past the cap of {MAX_SAMPLES} a run"),
            );
        }
        Outcome {
            probe: probe.to_string(),
            kind,
            started_at,
            error,
            measurements: self.measurements,
            samples: self.samples,
            labels: self.labels,
            details: self.details,
            breaches: Vec::new(),
            retry_after: self.retry_after,
            skipped: self.skipped,
            steps: self.steps,
            screenshot: self.screenshot,
            trace: self.trace,
            evidence: self.evidence,
        }
    }
}

/// The value for `key` in a small keyed list, inserted as the default when absent.
/// (Outcomes hold a handful of keys: a Vec keeps their order and beats a map.)
fn slot<'a, V: Default>(list: &'a mut Vec<(&'static str, V)>, key: &'static str) -> &'a mut V {
    let i = match list.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            list.push((key, V::default()));
            list.len() - 1
        }
    };
    &mut list[i].1
}

/// A budget the run broke: the measurement, its value and the threshold. `value` is
/// `None` when the run succeeded without measuring it: unmeasured is never a pass.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Breach {
    pub measurement: String,
    pub value: Option<f64>,
    pub threshold: f64,
    #[serde(skip)]
    pub unit: Unit,
}

/// The result of one probe run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub probe: String,
    pub kind: &'static str,
    pub started_at: SystemTime,
    pub error: Option<ProbeError>,
    pub measurements: Vec<(&'static str, f64)>,
    /// Keys with many values per run, each exported into the key's histogram.
    pub samples: Vec<Sample>,
    pub labels: Attrs,
    pub details: Vec<(&'static str, String)>,
    /// Filled by the budget judge.
    pub breaches: Vec<Breach>,
    /// Set when the target asked for a pause (429 + Retry-After); the scheduler honours it.
    pub retry_after: Option<std::time::Duration>,
    /// Set when the run was skipped rather than run, with the reason.
    pub skipped: Option<&'static str>,
    /// Named stages of the run, in order (workflow steps).
    pub steps: Vec<StepReport>,
    /// The page as the run left it, when screenshots were asked for (`once --report`).
    pub screenshot: Option<std::sync::Arc<[u8]>>,
    /// The run's trace context: its trace id names the run everywhere.
    pub trace: crate::trace::TraceContext,
    /// What the run saw, for `[artifacts]` when it fails (empty unless [`evidence_on`]).
    pub evidence: Vec<EvidenceFile>,
}

impl Outcome {
    /// A successful run of `probe` that measured `measurements` and nothing else (tests,
    /// and runs made from elsewhere than a Recorder).
    pub fn measured(probe: &str, kind: &'static str, measurements: Vec<(&'static str, f64)>) -> Outcome {
        Outcome {
            probe: probe.to_string(),
            kind,
            started_at: SystemTime::now(),
            error: None,
            measurements,
            samples: Vec::new(),
            labels: Vec::new(),
            details: Vec::new(),
            breaches: Vec::new(),
            retry_after: None,
            skipped: None,
            steps: Vec::new(),
            screenshot: None,
            trace: crate::trace::TraceContext::new(false),
            evidence: Vec::new(),
        }
    }

    /// The run's id: its trace id, 32 hex digits.
    pub fn run_id(&self) -> String {
        self.trace.trace_hex()
    }

    pub fn success(&self) -> bool {
        self.error.is_none()
    }

    /// Passed its expectations and every per-run budget.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.breaches.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.measurements.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.text.as_str())
    }

    /// The run's value of `key` as budgets, thresholds and percentiles judge it: its
    /// measurement, or for a per-sample measurement (ping round trips, inter-chunk gaps)
    /// the run's worst sample under `unit` (the largest; the smallest for a floor). A run
    /// with no value of `key` is not judged on it.
    pub fn judged(&self, key: &str, unit: Unit) -> Option<f64> {
        self.get(key)
            .or_else(|| self.samples_of(key).map(|s| s.value).reduce(|a, b| unit.worse(a, b)))
    }

    /// The samples of `key`, in order.
    pub fn samples_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::Unit;

    #[test]
    fn the_worst_value_is_the_furthest_past_and_unmeasured_is_worst_of_all() {
        assert_eq!(Unit::Seconds.worst([Some(0.2), Some(0.5), Some(0.1)]), Some(0.5));
        assert_eq!(Unit::Ratio.worst([Some(0.9), Some(0.7)]), Some(0.7));
        assert_eq!(Unit::Seconds.worst([Some(0.2), None, Some(0.5)]), None);
        assert_eq!(Unit::Seconds.worst([]), None);
    }

    #[test]
    fn values_are_formatted_by_unit() {
        assert_eq!(Unit::Seconds.format(0.0125), "12.500ms");
        assert_eq!(Unit::Bytes.format(180_000.0), "180000B");
        assert_eq!(Unit::Tokens.format(20.0), "20");
        assert_eq!(Unit::UnixTime.format(0.0), "1970-01-01");
    }
}
