//! Prometheus text exposition written straight from the OpenTelemetry SDK's collected
//! data, in chunks.
//!
//! Hand-written on purpose: the `opentelemetry-prometheus` exporter first converts every
//! series into `prometheus` crate structs and then into one string. With 1,000 probes
//! that is ~200k lines, and a scrape briefly tripled the daemon's memory (26 → 104 MB;
//! docs/benchmarks.md). Here one collection is walked once and streamed out in 64 KiB
//! chunks. Names follow `names.rs`; resource attributes go to `target_info`.

use std::borrow::Cow;
use std::fmt::Write as _;

use opentelemetry::Value;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};

use super::exemplars::{Exemplar, Exemplars};
use super::names::{Live, Num, float_text, is_live, is_mean, label_name_cow, metric_name, scope_labels};

const CHUNK: usize = 64 * 1024;

/// `exemplars` set: OpenMetrics 1.0 (counters' families without `_total`, exemplars on
/// histogram buckets, `# EOF`); else the Prometheus text format 0.0.4.
pub fn encode(rm: &ResourceMetrics, live: &Live<'_>, exemplars: Option<&Exemplars>, emit: &mut dyn FnMut(String)) {
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
        let scope_labels: Vec<(&'static str, Value)> = scope_labels(scope.scope())
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        let ctx = Ctx {
            live,
            scope: &scope_labels,
            exemplars,
        };
        for metric in scope.metrics() {
            if metric.name().starts_with(super::process::OTEL_PREFIX) {
                continue;
            }
            match metric.data() {
                AggregatedMetrics::F64(d) => write_metric(&mut buf, metric, d, &ctx, &mut flush),
                AggregatedMetrics::U64(d) => write_metric(&mut buf, metric, d, &ctx, &mut flush),
                AggregatedMetrics::I64(d) => write_metric(&mut buf, metric, d, &ctx, &mut flush),
            }
        }
    }
    for (name, kind, help, value) in super::process::metrics() {
        let family = family_name(name, kind == "counter", exemplars.is_some());
        let _ = writeln!(
            buf,
            "# HELP {family} {}\n# TYPE {family} {kind}",
            escape_help(help, exemplars.is_some())
        );
        sample(&mut buf, name, "", "", None, &float_text(value));
    }
    if exemplars.is_some() {
        buf.push_str("# EOF\n");
    }
    flush(&mut buf, true);
}

struct Ctx<'a> {
    live: &'a Live<'a>,
    scope: &'a [(&'static str, Value)],
    /// OpenMetrics, with these exemplars.
    exemplars: Option<&'a Exemplars>,
}

/// A metric family's name: OpenMetrics names a counter's family without `_total`.
fn family_name(name: &str, counter: bool, open_metrics: bool) -> &str {
    if open_metrics && counter {
        name.strip_suffix("_total").unwrap_or(name)
    } else {
        name
    }
}

/// ` # {trace_id="…",span_id="…"} value timestamp`, OpenMetrics' exemplar on a line.
fn exemplar_text(e: &Exemplar) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let ts = e
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    format!(
        " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {ts:.3}",
        hex(&e.trace_id),
        hex(&e.span_id),
        float_text(e.value)
    )
}

impl Ctx<'_> {
    /// The label text of a point, or None when it belongs to a probe a reload removed.
    fn labels<'a>(&self, attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Option<String> {
        let attrs: Vec<&opentelemetry::KeyValue> = attrs.collect();
        if !is_live(&attrs, self.live) {
            return None;
        }
        let all = attrs
            .iter()
            .map(|kv| (kv.key.as_str(), &kv.value))
            .chain(self.scope.iter().map(|(k, v)| (*k, v)));
        Some(label_text(all))
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
    let om = ctx.exemplars.is_some();
    let family = family_name(&name, counter, om);
    let _ = writeln!(buf, "# HELP {family} {}", escape_help(metric.description(), om));
    let _ = writeln!(buf, "# TYPE {family} {kind}");
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
                // The exemplar goes on the first bucket its value falls in.
                let mut exemplar = ctx
                    .exemplars
                    .and_then(|x| x.get(&Exemplars::key(metric.name(), p.attributes())));
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
                    if let Some(e) = exemplar.filter(|e| e.value <= bound) {
                        exemplar = None;
                        buf.pop();
                        buf.push_str(&exemplar_text(&e));
                        buf.push('\n');
                    }
                }
                let count = p.count().to_string();
                sample(buf, &name, "_bucket", &labels, Some("+Inf"), &count);
                if let Some(e) = exemplar {
                    buf.pop();
                    buf.push_str(&exemplar_text(&e));
                    buf.push('\n');
                }
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
    // Borrowed where nothing needs changing (nearly always): a scrape of 1,000 probes
    // writes ~50k label sets, and two strings each were a fifth of its CPU.
    let mut labels: Vec<(Cow<'a, str>, Cow<'a, str>)> = attrs.map(|(k, v)| (label_name_cow(k), v.as_str())).collect();
    labels.sort_unstable();
    let mut out = String::with_capacity(labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum());
    for (k, v) in labels {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&k);
        out.push_str("=\"");
        if v.contains(['\\', '"', '\n']) {
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
        } else {
            out.push_str(&v);
        }
        out.push('"');
    }
    out
}

/// HELP text escaped: OpenMetrics escapes double quotes too.
pub fn escape_help(s: &str, open_metrics: bool) -> String {
    let s = s.replace('\\', "\\\\").replace('\n', "\\n");
    if open_metrics { s.replace('"', "\\\"") } else { s }
}
