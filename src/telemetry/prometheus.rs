//! Prometheus text exposition written straight from the OpenTelemetry SDK's collected
//! data, in chunks.
//!
//! Hand-written on purpose: the `opentelemetry-prometheus` exporter first converts every
//! series into `prometheus` crate structs and then into one string. With 1,000 probes
//! that is ~200k lines, and a scrape briefly tripled the daemon's memory (26 → 104 MB;
//! docs/benchmarks.md). Here one collection is walked once and streamed out in 64 KiB
//! chunks. The naming rules follow the OpenTelemetry → Prometheus compatibility spec:
//! dots become `_`, the unit becomes a suffix (`s` → `_seconds`, `By` → `_bytes`),
//! monotonic sums get `_total`, resource attributes go to `target_info`.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::Value;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

const CHUNK: usize = 64 * 1024;

/// The pull reader: the meter provider owns one handle, the `/metrics` handler another.
#[derive(Debug, Clone)]
pub struct PullReader(Arc<ManualReader>);

impl PullReader {
    pub fn new() -> Self {
        PullReader(Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        ))
    }

    /// Collects once and hands the text to `emit` in chunks of about 64 KiB; series of
    /// probes for which `live` is false are left out.
    pub fn encode(&self, live: &dyn Fn(&str) -> bool, emit: &mut dyn FnMut(String)) -> OTelSdkResult {
        let mut rm = ResourceMetrics::default();
        self.0.collect(&mut rm)?;
        encode(&rm, live, emit);
        Ok(())
    }

    /// Collects once and encodes the protobuf exposition (native histograms included).
    pub fn encode_protobuf(
        &self,
        live: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<u8>, opentelemetry_sdk::error::OTelSdkError> {
        let mut rm = ResourceMetrics::default();
        self.0.collect(&mut rm)?;
        Ok(super::protobuf::encode(&rm, live))
    }
}

impl Default for PullReader {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricReader for PullReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// True when the point belongs to a live probe (or to no probe).
pub fn is_live(attrs: &[&opentelemetry::KeyValue], live: &dyn Fn(&str) -> bool) -> bool {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == "probe.name")
        .is_none_or(|kv| live(kv.value.as_str().as_ref()))
}

/// `otel_scope_name` / `otel_scope_version`, as the OTel → Prometheus compatibility spec asks.
pub fn scope_labels(scope: &opentelemetry::InstrumentationScope) -> Vec<(&'static str, String)> {
    let mut out = vec![("otel_scope_name", scope.name().to_string())];
    if let Some(v) = scope.version() {
        out.push(("otel_scope_version", v.to_string()));
    }
    out
}

pub fn encode(rm: &ResourceMetrics, live: &dyn Fn(&str) -> bool, emit: &mut dyn FnMut(String)) {
    let mut buf = String::with_capacity(CHUNK + 4096);
    let mut flush = |buf: &mut String, force: bool| {
        if (force && !buf.is_empty()) || buf.len() >= CHUNK {
            emit(std::mem::replace(buf, String::with_capacity(CHUNK + 4096)));
        }
    };

    buf.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\n");
    let resource = label_text(rm.resource().iter().map(|(k, v)| (k.as_str(), v)));
    sample(&mut buf, "target_info", "", &resource, None, "1");

    for scope in rm.scope_metrics() {
        let scope_labels = scope_labels(scope.scope());
        let ctx = Ctx {
            live,
            scope: &scope_labels,
        };
        for metric in scope.metrics() {
            match metric.data() {
                AggregatedMetrics::F64(d) => write_metric(&mut buf, metric, d, &ctx, &mut flush),
                AggregatedMetrics::U64(d) => write_metric(&mut buf, metric, d, &ctx, &mut flush),
                AggregatedMetrics::I64(d) => write_metric(&mut buf, metric, d, &ctx, &mut flush),
            }
        }
    }
    for (name, kind, help, value) in super::process::metrics() {
        let _ = writeln!(buf, "# HELP {name} {help}\n# TYPE {name} {kind}");
        sample(&mut buf, name, "", "", None, &float_text(value));
    }
    flush(&mut buf, true);
}

struct Ctx<'a> {
    live: &'a dyn Fn(&str) -> bool,
    scope: &'a [(&'static str, String)],
}

impl Ctx<'_> {
    /// The label text of a point, or None when it belongs to a probe a reload removed.
    fn labels<'a>(&self, attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Option<String> {
        let attrs: Vec<&opentelemetry::KeyValue> = attrs.collect();
        if !is_live(&attrs, self.live) {
            return None;
        }
        let scope: Vec<(&str, Value)> = self.scope.iter().map(|(k, v)| (*k, Value::from(v.clone()))).collect();
        let all = attrs
            .iter()
            .map(|kv| (kv.key.as_str(), &kv.value))
            .chain(scope.iter().map(|(k, v)| (*k, v)));
        Some(label_text(all))
    }
}

pub trait Num: Copy {
    fn text(self) -> String;
    fn as_f64(self) -> f64;
}

impl Num for f64 {
    fn text(self) -> String {
        float_text(self)
    }
    fn as_f64(self) -> f64 {
        self
    }
}
impl Num for u64 {
    fn text(self) -> String {
        self.to_string()
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}
impl Num for i64 {
    fn text(self) -> String {
        self.to_string()
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

fn write_metric<T: Num>(
    buf: &mut String,
    metric: &Metric,
    data: &MetricData<T>,
    ctx: &Ctx<'_>,
    flush: &mut dyn FnMut(&mut String, bool),
) {
    let (kind, counter) = match data {
        MetricData::Sum(s) if s.is_monotonic() => ("counter", true),
        MetricData::Sum(_) | MetricData::Gauge(_) => ("gauge", false),
        MetricData::Histogram(h) if is_mean(h) => ("summary", false),
        MetricData::Histogram(_) | MetricData::ExponentialHistogram(_) => ("histogram", false),
    };
    let name = metric_name(metric.name(), metric.unit(), counter);
    let _ = writeln!(buf, "# HELP {name} {}", escape_help(metric.description()));
    let _ = writeln!(buf, "# TYPE {name} {kind}");
    match data {
        MetricData::Sum(s) => {
            for p in s.data_points() {
                let Some(labels) = ctx.labels(p.attributes()) else {
                    continue;
                };
                sample(buf, &name, "", &labels, None, &p.value().text());
                flush(buf, false);
            }
        }
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                let Some(labels) = ctx.labels(p.attributes()) else {
                    continue;
                };
                sample(buf, &name, "", &labels, None, &p.value().text());
                flush(buf, false);
            }
        }
        MetricData::Histogram(h) if is_mean(h) => {
            for p in h.data_points() {
                let Some(labels) = ctx.labels(p.attributes()) else {
                    continue;
                };
                sample(buf, &name, "_sum", &labels, None, &p.sum().text());
                sample(buf, &name, "_count", &labels, None, &p.count().to_string());
                flush(buf, false);
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                let Some(labels) = ctx.labels(p.attributes()) else {
                    continue;
                };
                let mut cumulative = 0u64;
                for (bound, count) in p.bounds().zip(p.bucket_counts()) {
                    cumulative += count;
                    sample(
                        buf,
                        &name,
                        "_bucket",
                        &labels,
                        Some(&float_text(bound)),
                        &cumulative.to_string(),
                    );
                }
                let count = p.count().to_string();
                sample(buf, &name, "_bucket", &labels, Some("+Inf"), &count);
                sample(buf, &name, "_sum", &labels, None, &p.sum().text());
                sample(buf, &name, "_count", &labels, None, &count);
                flush(buf, false);
            }
        }
        // The text format has no exponential buckets: count and sum (and the +Inf bucket
        // a histogram needs) here; the buckets go out as native histograms over protobuf.
        MetricData::ExponentialHistogram(h) => {
            for p in h.data_points() {
                let Some(labels) = ctx.labels(p.attributes()) else {
                    continue;
                };
                let count = p.count().to_string();
                sample(buf, &name, "_bucket", &labels, Some("+Inf"), &count);
                sample(buf, &name, "_sum", &labels, None, &p.sum().text());
                sample(buf, &name, "_count", &labels, None, &count);
                flush(buf, false);
            }
        }
    }
}

/// A histogram without bucket edges (a "mean" instrument): Prometheus gets it as a
/// summary without quantiles, `_sum` and `_count`, which is what it is; an explicit `+Inf`
/// bucket would only repeat `_count` on every series.
pub fn is_mean<T>(h: &opentelemetry_sdk::metrics::data::Histogram<T>) -> bool {
    h.data_points().next().is_some_and(|p| p.bounds().next().is_none())
}

/// One sample line; `labels` is a point's label text from [`label_text`], made once and
/// reused for each of its bucket lines.
fn sample(buf: &mut String, name: &str, suffix: &str, labels: &str, le: Option<&str>, value: &str) {
    buf.push_str(name);
    buf.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        buf.push('{');
        buf.push_str(labels);
        if let Some(le) = le {
            if !labels.is_empty() {
                buf.push(',');
            }
            buf.push_str("le=\"");
            buf.push_str(le);
            buf.push('"');
        }
        buf.push('}');
    }
    buf.push(' ');
    buf.push_str(value);
    buf.push('\n');
}

/// `a="x",b="y"`: names sanitized, sorted, values escaped.
pub fn label_text<'a>(attrs: impl Iterator<Item = (&'a str, &'a Value)>) -> String {
    let mut labels: Vec<(String, String)> = attrs.map(|(k, v)| (label_name(k), value_text(v))).collect();
    labels.sort_unstable();
    let mut out = String::new();
    for (k, v) in labels {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

fn value_text(v: &Value) -> String {
    v.as_str().into_owned()
}

pub fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `probe.http.ttfb` + `s` → `probe_http_ttfb_seconds`; counters get `_total`.
pub fn metric_name(name: &str, unit: &str, counter: bool) -> String {
    let mut out = sanitize(name, true);
    if let Some(suffix) = unit_suffix(unit)
        && !out.ends_with(suffix)
    {
        out.push('_');
        out.push_str(suffix);
    }
    if counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

fn unit_suffix(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        "1" => "ratio",
        _ => return None,
    })
}

pub fn label_name(name: &str) -> String {
    sanitize(name, false)
}

fn sanitize(name: &str, allow_colon: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// How a number is written in the exposition (and so in `le` labels PromQL must match).
pub fn float_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    #[test]
    fn names_units_and_buckets() {
        assert_eq!(metric_name("probe.http.ttfb", "s", false), "probe_http_ttfb_seconds");
        assert_eq!(metric_name("probe.runs", "", true), "probe_runs_total");
        assert_eq!(
            metric_name("http.client.response.body.size", "By", false),
            "http_client_response_body_size_bytes"
        );

        let reader = PullReader::new();
        let provider = SdkMeterProvider::builder().with_reader(reader.clone()).build();
        let meter = provider.meter("t");
        let h = meter
            .f64_histogram("x.duration")
            .with_unit("s")
            .with_boundaries(vec![0.1, 0.5])
            .build();
        h.record(0.05, &[KeyValue::new("probe.name", "a\"b")]);
        h.record(0.3, &[KeyValue::new("probe.name", "a\"b")]);
        h.record(9.0, &[KeyValue::new("probe.name", "a\"b")]);
        meter.u64_counter("probe.runs").build().add(2, &[]);
        let mut text = String::new();
        reader.encode(&|_| true, &mut |chunk| text.push_str(&chunk)).unwrap();
        assert!(text.contains("# TYPE x_duration_seconds histogram\n"), "{text}");
        assert!(
            text.contains("x_duration_seconds_bucket{otel_scope_name=\"t\",probe_name=\"a\\\"b\",le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_duration_seconds_bucket{otel_scope_name=\"t\",probe_name=\"a\\\"b\",le=\"0.5\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_duration_seconds_bucket{otel_scope_name=\"t\",probe_name=\"a\\\"b\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("x_duration_seconds_count{otel_scope_name=\"t\",probe_name=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("x_duration_seconds_sum{otel_scope_name=\"t\",probe_name=\"a\\\"b\"} 9.35\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE probe_runs_total counter\nprobe_runs_total{otel_scope_name=\"t\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("target_info{"), "{text}");
    }
}
