//! The Prometheus protobuf exposition (`io.prometheus.client.MetricFamily`, delimited),
//! served when a scraper asks for it. It is the only exposition that carries native
//! histograms, so `histograms = "exponential"` reaches Prometheus with its buckets.
//! Messages are declared with prost from the public metrics.proto (field numbers kept).

use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, ExponentialHistogramDataPoint, Metric as OtelMetric, MetricData, ResourceMetrics,
};
use prost::Message;

use super::names::{Live, Num, is_live, is_mean, label_name, metric_name, scope_labels};

#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Gauge {
    #[prost(double, tag = "1")]
    pub value: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Counter {
    #[prost(double, tag = "1")]
    pub value: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Bucket {
    #[prost(uint64, tag = "1")]
    pub cumulative_count: u64,
    #[prost(double, tag = "2")]
    pub upper_bound: f64,
}

#[derive(Clone, PartialEq, Message)]
pub struct BucketSpan {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    #[prost(sint32, tag = "5")]
    pub schema: i32,
    #[prost(double, tag = "6")]
    pub zero_threshold: f64,
    #[prost(uint64, tag = "7")]
    pub zero_count: u64,
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "10")]
    pub negative_delta: Vec<i64>,
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "13")]
    pub positive_delta: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MetricFamily {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub help: String,
    /// 0 counter, 1 gauge, 4 histogram.
    #[prost(int32, tag = "3")]
    pub r#type: i32,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

const COUNTER: i32 = 0;
const GAUGE: i32 = 1;
const SUMMARY: i32 = 2;
const HISTOGRAM: i32 = 4;

/// Prometheus treats a histogram as native when it has a zero threshold (or spans); the
/// client libraries' default threshold, 2^-128, is far below any latency.
const ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// Prometheus native histograms take schemas -4..=8; the SDK is configured to stay there.
pub const MAX_SCHEMA: i8 = 8;

pub fn encode(rm: &ResourceMetrics, live: &Live<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let resource: Vec<LabelPair> = rm
        .resource()
        .iter()
        .map(|(k, v)| LabelPair {
            name: label_name(k.as_str()),
            value: v.as_str().into_owned(),
        })
        .collect();
    push(
        &mut out,
        MetricFamily {
            name: "target_info".into(),
            help: "Target metadata".into(),
            r#type: GAUGE,
            metric: vec![Metric {
                label: sorted(resource),
                gauge: Some(Gauge { value: 1.0 }),
                ..Default::default()
            }],
        },
    );
    for scope in rm.scope_metrics() {
        let scope_pairs: Vec<LabelPair> = scope_labels(scope.scope())
            .into_iter()
            .map(|(name, value)| LabelPair {
                name: name.into(),
                value,
            })
            .collect();
        for metric in scope.metrics() {
            if metric.name().starts_with(super::process::OTEL_PREFIX) {
                continue;
            }
            let family = match metric.data() {
                AggregatedMetrics::F64(d) => family(metric, d, &scope_pairs, live),
                AggregatedMetrics::U64(d) => family(metric, d, &scope_pairs, live),
                AggregatedMetrics::I64(d) => family(metric, d, &scope_pairs, live),
            };
            if let Some(f) = family.filter(|f| !f.metric.is_empty()) {
                push(&mut out, f);
            }
        }
    }
    for (name, kind, help, value) in super::process::metrics() {
        let (r#type, counter, gauge) = if kind == "counter" {
            (COUNTER, Some(Counter { value }), None)
        } else {
            (GAUGE, None, Some(Gauge { value }))
        };
        push(
            &mut out,
            MetricFamily {
                name: name.into(),
                help: help.into(),
                r#type,
                metric: vec![Metric {
                    counter,
                    gauge,
                    ..Default::default()
                }],
            },
        );
    }
    out
}

fn push(out: &mut Vec<u8>, family: MetricFamily) {
    family.encode_length_delimited(out).expect("a Vec grows as needed");
}

fn sorted(mut labels: Vec<LabelPair>) -> Vec<LabelPair> {
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels
}

fn labels<'a>(
    attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>,
    scope: &[LabelPair],
    live: &Live<'_>,
) -> Option<Vec<LabelPair>> {
    let attrs: Vec<&opentelemetry::KeyValue> = attrs.collect();
    if !is_live(&attrs, live) {
        return None;
    }
    let mut out: Vec<LabelPair> = attrs
        .iter()
        .map(|kv| LabelPair {
            name: label_name(kv.key.as_str()),
            value: kv.value.as_str().into_owned(),
        })
        .collect();
    out.extend(scope.iter().cloned());
    Some(sorted(out))
}

fn family<T: Num>(
    metric: &OtelMetric,
    data: &MetricData<T>,
    scope: &[LabelPair],
    live: &Live<'_>,
) -> Option<MetricFamily> {
    let (r#type, counter) = match data {
        MetricData::Sum(s) if s.is_monotonic() => (COUNTER, true),
        MetricData::Sum(_) | MetricData::Gauge(_) => (GAUGE, false),
        MetricData::Histogram(h) if is_mean(h) => (SUMMARY, false),
        MetricData::Histogram(_) | MetricData::ExponentialHistogram(_) => (HISTOGRAM, false),
    };
    let mut metrics = Vec::new();
    match data {
        MetricData::Sum(s) => {
            for p in s.data_points() {
                let Some(label) = labels(p.attributes(), scope, live) else {
                    continue;
                };
                let value = p.value().as_f64();
                metrics.push(if counter {
                    Metric {
                        label,
                        counter: Some(Counter { value }),
                        ..Default::default()
                    }
                } else {
                    Metric {
                        label,
                        gauge: Some(Gauge { value }),
                        ..Default::default()
                    }
                });
            }
        }
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                let Some(label) = labels(p.attributes(), scope, live) else {
                    continue;
                };
                metrics.push(Metric {
                    label,
                    gauge: Some(Gauge {
                        value: p.value().as_f64(),
                    }),
                    ..Default::default()
                });
            }
        }
        MetricData::Histogram(h) if is_mean(h) => {
            for p in h.data_points() {
                let Some(label) = labels(p.attributes(), scope, live) else {
                    continue;
                };
                metrics.push(Metric {
                    label,
                    summary: Some(Summary {
                        sample_count: p.count(),
                        sample_sum: p.sum().as_f64(),
                    }),
                    ..Default::default()
                });
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                let Some(label) = labels(p.attributes(), scope, live) else {
                    continue;
                };
                let mut cumulative = 0;
                let bucket = p
                    .bounds()
                    .zip(p.bucket_counts())
                    .map(|(upper_bound, count)| {
                        cumulative += count;
                        Bucket {
                            cumulative_count: cumulative,
                            upper_bound,
                        }
                    })
                    .collect();
                metrics.push(Metric {
                    label,
                    histogram: Some(Histogram {
                        sample_count: p.count(),
                        sample_sum: p.sum().as_f64(),
                        bucket,
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            }
        }
        MetricData::ExponentialHistogram(h) => {
            for p in h.data_points() {
                let Some(label) = labels(p.attributes(), scope, live) else {
                    continue;
                };
                metrics.push(Metric {
                    label,
                    histogram: Some(native(p)),
                    ..Default::default()
                });
            }
        }
    }
    Some(MetricFamily {
        name: metric_name(metric.name(), metric.unit(), counter),
        help: metric.description().to_string(),
        r#type,
        metric: metrics,
    })
}

/// OTel exponential → Prometheus native: the same base-2 schema; OTel bucket `i` covers
/// (base^i, base^(i+1)] and Prometheus bucket `k` covers (base^(k-1), base^k], so
/// k = i + 1. Counts go out as deltas within one span.
pub fn native<T: Num>(p: &ExponentialHistogramDataPoint<T>) -> Histogram {
    let (positive_span, positive_delta) = spans(p.positive_bucket().offset(), p.positive_bucket().counts());
    let (negative_span, negative_delta) = spans(p.negative_bucket().offset(), p.negative_bucket().counts());
    Histogram {
        sample_count: p.count() as u64,
        sample_sum: p.sum().as_f64(),
        bucket: Vec::new(),
        schema: i32::from(p.scale().min(MAX_SCHEMA)),
        zero_threshold: p.zero_threshold().max(ZERO_THRESHOLD),
        zero_count: p.zero_count(),
        negative_span,
        negative_delta,
        positive_span,
        positive_delta,
    }
}

fn spans(offset: i32, counts: impl Iterator<Item = u64>) -> (Vec<BucketSpan>, Vec<i64>) {
    let counts: Vec<u64> = counts.collect();
    if counts.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut prev = 0i64;
    let deltas = counts
        .iter()
        .map(|c| {
            let d = *c as i64 - prev;
            prev = *c as i64;
            d
        })
        .collect();
    (
        vec![BucketSpan {
            offset: offset + 1,
            length: counts.len() as u32,
        }],
        deltas,
    )
}
