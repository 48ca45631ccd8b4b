//! One collection of the SDK's metrics → OTLP export requests of bounded size, with the
//! series of removed probes left out. Requests are built one at a time from the collected
//! data: the caller sends each and drops it before the next is built, so a push never
//! holds more than one request beside the collection (the SDK's exporter converted the
//! whole collection at once: ~100 MB at 10,000 probes, on top of a second aggregation).

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exemplar,
    exponential_histogram_data_point, metric::Data, number_data_point,
};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{self as sdk, AggregatedMetrics, MetricData};
use prost::Message as _;

use super::names::{Live, is_live};

/// A request is closed once its points encode to about this much (gRPC receivers refuse
/// messages over 4 MiB by default). Its prost message, every attribute an owned string,
/// is several times that while it is built: at 1 MiB an export's peak was 6 MB above a
/// scrape's at 1,000 probes, at 256 KiB 1.3 MB (docs/benchmarks.md).
pub const REQUEST_BYTES: usize = 256 * 1024;

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn temporality(t: Temporality) -> i32 {
    match t {
        Temporality::Delta => AggregationTemporality::Delta as i32,
        _ => AggregationTemporality::Cumulative as i32,
    }
}

trait Number: Copy {
    fn f64(self) -> f64;
    fn point(self) -> number_data_point::Value;
}
impl Number for f64 {
    fn f64(self) -> f64 {
        self
    }
    fn point(self) -> number_data_point::Value {
        number_data_point::Value::AsDouble(self)
    }
}
impl Number for u64 {
    fn f64(self) -> f64 {
        self as f64
    }
    fn point(self) -> number_data_point::Value {
        number_data_point::Value::AsInt(self as i64)
    }
}
impl Number for i64 {
    fn f64(self) -> f64 {
        self as f64
    }
    fn point(self) -> number_data_point::Value {
        number_data_point::Value::AsInt(self)
    }
}

/// Points of one metric, as data of the metric's own type, ready to be cut into requests.
enum Points {
    Gauge(Vec<NumberDataPoint>),
    Sum(Vec<NumberDataPoint>, i32, bool),
    Histogram(Vec<HistogramDataPoint>, i32),
    Exponential(Vec<ExponentialHistogramDataPoint>, i32),
}

impl Points {
    fn data(self) -> Data {
        match self {
            Points::Gauge(data_points) => Data::Gauge(Gauge { data_points }),
            Points::Sum(data_points, aggregation_temporality, is_monotonic) => Data::Sum(Sum {
                data_points,
                aggregation_temporality,
                is_monotonic,
            }),
            Points::Histogram(data_points, aggregation_temporality) => Data::Histogram(Histogram {
                data_points,
                aggregation_temporality,
            }),
            Points::Exponential(data_points, aggregation_temporality) => {
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points,
                    aggregation_temporality,
                })
            }
        }
    }

    fn empty_like(&self) -> Points {
        match self {
            Points::Gauge(_) => Points::Gauge(Vec::new()),
            Points::Sum(_, t, m) => Points::Sum(Vec::new(), *t, *m),
            Points::Histogram(_, t) => Points::Histogram(Vec::new(), *t),
            Points::Exponential(_, t) => Points::Exponential(Vec::new(), *t),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Points::Gauge(p) | Points::Sum(p, ..) => p.is_empty(),
            Points::Histogram(p, _) => p.is_empty(),
            Points::Exponential(p, _) => p.is_empty(),
        }
    }
}

fn attributes<'a>(attrs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Vec<KeyValue> {
    attrs.map(KeyValue::from).collect()
}

/// A metric's name and the exemplar store: a histogram point's exemplar, if any.
struct Ex<'a>(&'a str, &'a super::exemplars::Exemplars);

impl Ex<'_> {
    fn of<'b>(&self, attrs: impl Iterator<Item = &'b opentelemetry::KeyValue>) -> Vec<Exemplar> {
        let Some(e) = self.1.get(&super::exemplars::Exemplars::key(self.0, attrs)) else {
            return Vec::new();
        };
        vec![Exemplar {
            time_unix_nano: nanos(e.time),
            value: Some(exemplar::Value::AsDouble(e.value)),
            span_id: e.span_id.to_vec(),
            trace_id: e.trace_id.to_vec(),
            ..Default::default()
        }]
    }
}

/// The live points of one SDK metric, each with its encoded size.
fn points<T: Number>(
    data: &MetricData<T>,
    live: &Live<'_>,
    ex: &Ex<'_>,
    each: &mut dyn FnMut(&mut Points, usize) -> bool,
) {
    let keep = |a: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| is_live(&a.collect::<Vec<_>>(), live);
    match data {
        MetricData::Gauge(g) => {
            let mut out = Points::Gauge(Vec::new());
            for dp in g.data_points() {
                if !keep(&mut dp.attributes()) {
                    continue;
                }
                let p = NumberDataPoint {
                    attributes: attributes(dp.attributes()),
                    start_time_unix_nano: g.start_time().map_or(0, nanos),
                    time_unix_nano: nanos(g.time()),
                    value: Some(dp.value().point()),
                    ..Default::default()
                };
                let size = p.encoded_len();
                if let Points::Gauge(v) = &mut out {
                    v.push(p);
                }
                if !each(&mut out, size) {
                    return;
                }
            }
        }
        MetricData::Sum(s) => {
            let mut out = Points::Sum(Vec::new(), temporality(s.temporality()), s.is_monotonic());
            for dp in s.data_points() {
                if !keep(&mut dp.attributes()) {
                    continue;
                }
                let p = NumberDataPoint {
                    attributes: attributes(dp.attributes()),
                    start_time_unix_nano: nanos(s.start_time()),
                    time_unix_nano: nanos(s.time()),
                    value: Some(dp.value().point()),
                    ..Default::default()
                };
                let size = p.encoded_len();
                if let Points::Sum(v, ..) = &mut out {
                    v.push(p);
                }
                if !each(&mut out, size) {
                    return;
                }
            }
        }
        MetricData::Histogram(h) => {
            let mut out = Points::Histogram(Vec::new(), temporality(h.temporality()));
            for dp in h.data_points() {
                if !keep(&mut dp.attributes()) {
                    continue;
                }
                let p = HistogramDataPoint {
                    attributes: attributes(dp.attributes()),
                    start_time_unix_nano: nanos(h.start_time()),
                    time_unix_nano: nanos(h.time()),
                    count: dp.count(),
                    sum: Some(dp.sum().f64()),
                    bucket_counts: dp.bucket_counts().collect(),
                    explicit_bounds: dp.bounds().collect(),
                    min: dp.min().map(Number::f64),
                    max: dp.max().map(Number::f64),
                    exemplars: ex.of(dp.attributes()),
                    ..Default::default()
                };
                let size = p.encoded_len();
                if let Points::Histogram(v, _) = &mut out {
                    v.push(p);
                }
                if !each(&mut out, size) {
                    return;
                }
            }
        }
        MetricData::ExponentialHistogram(h) => {
            let mut out = Points::Exponential(Vec::new(), temporality(h.temporality()));
            for dp in h.data_points() {
                if !keep(&mut dp.attributes()) {
                    continue;
                }
                let buckets = |b: &sdk::ExponentialBucket| exponential_histogram_data_point::Buckets {
                    offset: b.offset(),
                    bucket_counts: b.counts().collect(),
                };
                let p = ExponentialHistogramDataPoint {
                    attributes: attributes(dp.attributes()),
                    start_time_unix_nano: nanos(h.start_time()),
                    time_unix_nano: nanos(h.time()),
                    count: dp.count() as u64,
                    sum: Some(dp.sum().f64()),
                    scale: i32::from(dp.scale()),
                    zero_count: dp.zero_count(),
                    positive: Some(buckets(dp.positive_bucket())),
                    negative: Some(buckets(dp.negative_bucket())),
                    min: dp.min().map(Number::f64),
                    max: dp.max().map(Number::f64),
                    zero_threshold: dp.zero_threshold(),
                    ..Default::default()
                };
                let size = p.encoded_len();
                if let Points::Exponential(v, _) = &mut out {
                    v.push(p);
                }
                if !each(&mut out, size) {
                    return;
                }
            }
        }
    }
}

/// Cuts one collection into requests of about `max_bytes` and hands each to `send`, in
/// order; `send` returning false stops the walk (the rest is not built).
pub fn requests(
    rm: &sdk::ResourceMetrics,
    live: &Live<'_>,
    exemplars: &super::exemplars::Exemplars,
    max_bytes: usize,
    send: &mut dyn FnMut(ExportMetricsServiceRequest) -> bool,
) {
    let resource = opentelemetry_proto::tonic::resource::v1::Resource::from(rm.resource());
    let schema_url = rm.resource().schema_url().unwrap_or_default().to_string();
    let mut builder = Builder {
        resource,
        schema_url,
        scopes: Vec::new(),
        bytes: 0,
        max_bytes,
        stopped: false,
    };
    for sm in rm.scope_metrics() {
        let scope = InstrumentationScope::from((sm.scope(), None));
        builder.scopes.push(ScopeMetrics {
            scope: Some(scope),
            metrics: Vec::new(),
            schema_url: sm.scope().schema_url().unwrap_or_default().to_string(),
        });
        for m in sm.metrics() {
            let header = Metric {
                name: m.name().to_string(),
                description: m.description().to_string(),
                unit: m.unit().to_string(),
                ..Default::default()
            };
            let mut each = |pts: &mut Points, size: usize| builder.add(&header, pts, size, send);
            let ex = Ex(m.name(), exemplars);
            match m.data() {
                AggregatedMetrics::F64(d) => points(d, live, &ex, &mut each),
                AggregatedMetrics::U64(d) => points(d, live, &ex, &mut each),
                AggregatedMetrics::I64(d) => points(d, live, &ex, &mut each),
            }
            if builder.stopped {
                return;
            }
        }
    }
    builder.flush(send);
}

struct Builder {
    resource: opentelemetry_proto::tonic::resource::v1::Resource,
    schema_url: String,
    /// The request being built: its scopes, the last one open.
    scopes: Vec<ScopeMetrics>,
    bytes: usize,
    max_bytes: usize,
    stopped: bool,
}

impl Builder {
    /// Moves the point in `pts` into the request (as part of `header`'s metric), and
    /// sends the request once it is full.
    fn add(
        &mut self,
        header: &Metric,
        pts: &mut Points,
        size: usize,
        send: &mut dyn FnMut(ExportMetricsServiceRequest) -> bool,
    ) -> bool {
        self.pending(header, pts);
        self.bytes += size + 8;
        if self.bytes < self.max_bytes {
            return true;
        }
        let ok = self.flush(send);
        self.stopped = !ok;
        ok
    }

    /// Moves what `pts` holds into the open scope's last metric of that name.
    fn pending(&mut self, header: &Metric, pts: &mut Points) {
        if pts.is_empty() {
            return;
        }
        let taken = std::mem::replace(pts, pts.empty_like());
        let scope = self.scopes.last_mut().expect("a scope is open");
        match scope.metrics.last_mut() {
            Some(m) if m.name == header.name => merge(m, taken),
            _ => scope.metrics.push(Metric {
                data: Some(taken.data()),
                ..header.clone()
            }),
        }
    }

    /// Sends what the request holds; the open scope stays open (empty) in the next.
    fn flush(&mut self, send: &mut dyn FnMut(ExportMetricsServiceRequest) -> bool) -> bool {
        let open = self.scopes.last().map(|s| ScopeMetrics {
            scope: s.scope.clone(),
            metrics: Vec::new(),
            schema_url: s.schema_url.clone(),
        });
        let scopes: Vec<ScopeMetrics> = std::mem::take(&mut self.scopes)
            .into_iter()
            .filter(|s| !s.metrics.is_empty())
            .collect();
        self.scopes.extend(open);
        self.bytes = 0;
        if scopes.is_empty() {
            return true;
        }
        send(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: scopes,
                schema_url: self.schema_url.clone(),
            }],
        })
    }
}

fn merge(m: &mut Metric, more: Points) {
    match (m.data.as_mut(), more) {
        (Some(Data::Gauge(g)), Points::Gauge(p)) => g.data_points.extend(p),
        (Some(Data::Sum(s)), Points::Sum(p, ..)) => s.data_points.extend(p),
        (Some(Data::Histogram(h)), Points::Histogram(p, _)) => h.data_points.extend(p),
        (Some(Data::ExponentialHistogram(h)), Points::Exponential(p, _)) => h.data_points.extend(p),
        _ => {}
    }
}
