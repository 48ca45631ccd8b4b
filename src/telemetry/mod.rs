//! Outcomes → OpenTelemetry instruments. This is the one place that maps measurements
//! to metrics; it reads the probes' measurement catalogs as data and knows no probe.

pub mod buckets;
pub mod otlp;
pub mod prometheus;

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{Instrument as SdkInstrument, SdkMeterProvider, Stream};

use crate::outcome::{ERROR_TYPE_LABEL, Instrument, Measure, Outcome, Unit};

pub const SERVICE_NAME: &str = "sloprobe";

/// What telemetry needs to know up front: each kind's catalog, and the budget thresholds
/// that must become bucket edges (keyed by metric name).
#[derive(Default)]
pub struct Plan {
    pub catalogs: HashMap<&'static str, Vec<&'static Measure>>,
    pub thresholds: HashMap<&'static str, Vec<f64>>,
    /// Probes in the config; sizes the per-instrument series limit.
    pub probes: usize,
}

impl Plan {
    pub fn add_kind(&mut self, kind: &'static str, measures: &[&'static Measure]) {
        self.catalogs.entry(kind).or_insert_with(|| measures.to_vec());
    }

    /// A threshold on `key` becomes an edge of every instrument fed by that key.
    pub fn add_threshold(&mut self, kind: &'static str, key: &str, value: f64) {
        if let Some(measures) = self.catalogs.get(kind) {
            for m in measures.iter().filter(|m| m.key == key) {
                self.thresholds.entry(m.metric).or_default().push(value);
            }
        }
    }
}

pub struct Telemetry {
    provider: SdkMeterProvider,
    pull: prometheus::PullReader,
    location: String,
    catalogs: HashMap<&'static str, Vec<&'static Measure>>,
    histograms: HashMap<&'static str, Histogram<f64>>,
    gauges: HashMap<&'static str, Gauge<f64>>,
    counters: HashMap<&'static str, Counter<u64>>,
    runs: Counter<u64>,
    success: Gauge<f64>,
    breaches: Counter<u64>,
    lateness: Histogram<f64>,
    skipped: Counter<u64>,
}

pub fn otel_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds | Unit::UnixTime => "s",
        Unit::Bytes => "By",
        Unit::Count => "",
        Unit::Tokens => "{token}",
    }
}

impl Telemetry {
    pub fn new(location: &str, plan: Plan, otlp: Option<&crate::config::OtlpSettings>) -> anyhow::Result<Telemetry> {
        let pull = prometheus::PullReader::new();
        let resource = resource(location);
        // The SDK caps each instrument at 2,000 series and preallocates that many slots, so
        // size each cap from the probe count: room for 8 attribute combinations (status,
        // error type, connection) per probe and per measurement that feeds the instrument.
        let mut feeds: HashMap<&'static str, usize> = HashMap::new();
        for measures in plan.catalogs.values() {
            for m in measures {
                *feeds.entry(m.metric).or_default() += 1;
            }
        }
        let probes = plan.probes.max(1);
        let provider = SdkMeterProvider::builder()
            .with_reader(pull.clone())
            .with_view(move |i: &SdkInstrument| {
                let per_probe = 8 * feeds.get(i.name()).copied().unwrap_or(1);
                let limit = (probes * per_probe).max(2_000);
                Stream::builder().with_cardinality_limit(limit).build().ok()
            })
            .with_resource(resource);
        let provider = match otlp {
            Some(settings) => provider.with_reader(otlp::reader(settings)?),
            None => provider,
        }
        .build();
        let scope = InstrumentationScope::builder(SERVICE_NAME)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let meter = provider.meter_with_scope(scope);

        let mut histograms = HashMap::new();
        let mut gauges = HashMap::new();
        let mut counters = HashMap::new();
        for measures in plan.catalogs.values() {
            for m in measures {
                match m.instrument {
                    Instrument::Histogram => {
                        histograms.entry(m.metric).or_insert_with(|| {
                            let extra = plan.thresholds.get(m.metric).map(Vec::as_slice).unwrap_or(&[]);
                            histogram(
                                &meter,
                                m.metric,
                                m.unit,
                                m.description,
                                buckets::with_thresholds(m.unit, extra),
                            )
                        });
                    }
                    Instrument::Gauge => {
                        gauges.entry(m.metric).or_insert_with(|| {
                            meter
                                .f64_gauge(m.metric)
                                .with_unit(otel_unit(m.unit))
                                .with_description(m.description)
                                .build()
                        });
                    }
                    Instrument::Counter => {
                        counters.entry(m.metric).or_insert_with(|| {
                            meter
                                .u64_counter(m.metric)
                                .with_unit(otel_unit(m.unit))
                                .with_description(m.description)
                                .build()
                        });
                    }
                }
            }
        }

        Ok(Telemetry {
            runs: meter
                .u64_counter("probe.runs")
                .with_description("Probe runs by outcome and error type.")
                .build(),
            success: meter
                .f64_gauge("probe.success")
                .with_description("1 if the last run succeeded, else 0.")
                .build(),
            breaches: meter
                .u64_counter("probe.budget.breaches")
                .with_description("Runs that broke a per-run budget, by measurement.")
                .build(),
            lateness: histogram(
                &meter,
                "probe.schedule.lateness",
                Unit::Seconds,
                "How late a run started after its due time.",
                buckets::LATENESS.to_vec(),
            ),
            skipped: meter
                .u64_counter("probe.runs.skipped")
                .with_description(
                    "Due runs not started: `overlap` (previous still running) or `missed` (host stalled).",
                )
                .build(),
            provider,
            pull,
            location: location.to_string(),
            catalogs: plan.catalogs,
            histograms,
            gauges,
            counters,
        })
    }

    fn base(&self, probe: &str, kind: &str) -> Vec<KeyValue> {
        vec![
            KeyValue::new("probe.name", probe.to_string()),
            KeyValue::new("probe.kind", kind.to_string()),
            KeyValue::new("probe.location", self.location.clone()),
        ]
    }

    pub fn record(&self, o: &Outcome) {
        let base = self.base(&o.probe, o.kind);
        let mut run_attrs = base.clone();
        run_attrs.push(KeyValue::new(
            "outcome",
            if o.success() { "success" } else { "failure" },
        ));
        if let Some(e) = &o.error {
            run_attrs.push(KeyValue::new(ERROR_TYPE_LABEL, e.kind.as_str()));
        }
        self.runs.add(1, &run_attrs);
        self.success.record(if o.success() { 1.0 } else { 0.0 }, &base);
        for b in &o.breaches {
            let mut attrs = base.clone();
            attrs.push(KeyValue::new("measurement", b.measurement.clone()));
            self.breaches.add(1, &attrs);
        }

        let Some(catalog) = self.catalogs.get(o.kind) else {
            return;
        };
        for (key, value) in o.measurements.iter().chain(o.samples.iter()) {
            for m in catalog.iter().filter(|m| m.key == *key) {
                let attrs = self.attributes(&base, m, o);
                match m.instrument {
                    Instrument::Histogram => {
                        if let Some(h) = self.histograms.get(m.metric) {
                            h.record(*value, &attrs);
                        }
                    }
                    Instrument::Gauge => {
                        if let Some(g) = self.gauges.get(m.metric) {
                            g.record(*value, &attrs);
                        }
                    }
                    Instrument::Counter => {
                        if let Some(c) = self.counters.get(m.metric) {
                            c.add(value.max(0.0) as u64, &attrs);
                        }
                    }
                }
            }
        }
    }

    fn attributes(&self, base: &[KeyValue], m: &Measure, o: &Outcome) -> Vec<KeyValue> {
        let mut attrs = base.to_vec();
        attrs.extend(m.fixed.iter().map(|(k, v)| KeyValue::new(*k, *v)));
        for label in m.labels {
            if *label == ERROR_TYPE_LABEL {
                if let Some(e) = &o.error {
                    attrs.push(KeyValue::new(ERROR_TYPE_LABEL, e.kind.as_str()));
                }
            } else if let Some(v) = o.label(label) {
                attrs.push(KeyValue::new(*label, v.to_string()));
            }
        }
        attrs
    }

    pub fn record_lateness(&self, probe: &str, kind: &str, lateness: Duration) {
        self.lateness.record(lateness.as_secs_f64(), &self.base(probe, kind));
    }

    pub fn record_skipped(&self, probe: &str, kind: &str, reason: &'static str, n: u64) {
        let mut attrs = self.base(probe, kind);
        attrs.push(KeyValue::new("reason", reason));
        self.skipped.add(n, &attrs);
    }

    /// The Prometheus text exposition of everything recorded so far, in chunks.
    pub fn prometheus_text(&self, emit: &mut dyn FnMut(String)) -> Result<(), String> {
        self.pull.encode(emit).map_err(|e| e.to_string())
    }

    /// Flushes push exporters once and stops them; bounded by `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let provider = self.provider.clone();
        let flush = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(deadline));
        match tokio::time::timeout(deadline + Duration::from_millis(500), flush).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "metrics shutdown"),
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics shutdown task"),
            Err(_) => tracing::warn!(?deadline, "metrics flush did not finish in time; exiting anyway"),
        }
    }
}

fn histogram(
    meter: &Meter,
    name: &'static str,
    unit: Unit,
    description: &'static str,
    edges: Vec<f64>,
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit(otel_unit(unit))
        .with_description(description)
        .with_boundaries(edges)
        .build()
}

/// Resource attributes. `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` are read by the
/// SDK; the attributes set here win over them, except `service.name`, which the
/// environment may set (the config has no key for it).
fn resource(location: &str) -> Resource {
    let env_names_service = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut b = Resource::builder();
    if !env_names_service {
        b = b.with_service_name(SERVICE_NAME);
    }
    b.with_attributes([
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", instance_id()),
        KeyValue::new("host.name", host_name()),
        KeyValue::new("probe.location", location.to_string()),
        // Everything this process measures is synthetic traffic.
        KeyValue::new("user_agent.synthetic.type", "test"),
    ])
    .build()
}

fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// A random UUIDv4 per process start, as the semantic conventions recommend.
fn instance_id() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    } else {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = (nanos ^ u128::from(std::process::id()) << 64).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
