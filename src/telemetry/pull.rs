//! The pull reader behind `/metrics`: one collection, encoded as text or protobuf.

use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use super::names::Live;
use super::{prometheus, protobuf};

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
    pub fn encode(&self, live: &Live<'_>, emit: &mut dyn FnMut(String)) -> OTelSdkResult {
        let mut rm = ResourceMetrics::default();
        self.0.collect(&mut rm)?;
        prometheus::encode(&rm, live, None, emit);
        Ok(())
    }

    /// Like [`encode`](Self::encode), in OpenMetrics with exemplars.
    pub fn encode_openmetrics(
        &self,
        live: &Live<'_>,
        exemplars: &super::exemplars::Exemplars,
        emit: &mut dyn FnMut(String),
    ) -> OTelSdkResult {
        let mut rm = ResourceMetrics::default();
        self.0.collect(&mut rm)?;
        prometheus::encode(&rm, live, Some(exemplars), emit);
        Ok(())
    }

    /// Collects once and encodes the protobuf exposition (native histograms included).
    pub fn encode_protobuf(&self, live: &Live<'_>) -> Result<Vec<u8>, opentelemetry_sdk::error::OTelSdkError> {
        let mut rm = ResourceMetrics::default();
        self.0.collect(&mut rm)?;
        Ok(protobuf::encode(&rm, live))
    }
}

impl PullReader {
    /// A reader of deltas (each collection resets what it read), for OTLP's delta push.
    pub fn delta() -> Self {
        PullReader(Arc::new(
            ManualReader::builder().with_temporality(Temporality::Delta).build(),
        ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::names::metric_name;
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
        reader.encode(&|_, _| true, &mut |chunk| text.push_str(&chunk)).unwrap();
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
