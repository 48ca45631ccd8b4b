//! Outcomes → OpenTelemetry instruments. This is the one place that maps measurements
//! to metrics; it reads the probes' measurement catalogs and per-probe plans as data and
//! knows no probe kind.
//!
//! A probe's series depend only on that probe: histograms use fixed, documented edges per
//! unit, and every budget or SLO threshold becomes a pair of exact counters
//! (`probe.threshold.runs{measurement, threshold, verdict}`) on that probe alone.

mod attributes;
pub mod buckets;
pub mod config;
pub mod exemplars;
mod field;
pub mod in_flight;
pub mod names;
pub mod otlp;
mod otlp_encode;
pub mod plan;
pub mod probe_text;
pub mod process;
pub mod prometheus;
pub mod protobuf;
pub mod pull;
mod resource;
mod self_metrics;
pub mod spans;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::metrics::{Aggregation, Instrument as SdkInstrument, SdkMeterProvider, Stream};

pub use attributes::otel_unit;
pub use config::{HistogramMode, MetricsConfig, OtlpProtocol, OtlpSettings};
pub use plan::{FIELD_THRESHOLD, Plan, ProbePlan, RUNS, THRESHOLD_RUNS};
pub use resource::{SERVICE_NAME, host_name, stable_instance_id};

use attributes::{fill_attributes, histogram, sorted};
use field::Field;
use plan::{SCHEDULED, SERIES_FLOOR, SKIPPED, SUCCESS, series_limits, series_needed};
use resource::{random_instance_id, resource};

use crate::outcome::{ERROR_TYPE_LABEL, FieldVital, Instrument, Measure, Outcome, Unit};

/// The telemetry of the running config, swapped whole when a reload resizes it.
pub type SharedTelemetry = Arc<RwLock<Arc<Telemetry>>>;

pub struct Telemetry {
    provider: SdkMeterProvider,
    pull: pull::PullReader,
    location: String,
    catalogs: HashMap<&'static str, Vec<&'static Measure>>,
    histograms: HashMap<&'static str, Histogram<f64>>,
    gauges: HashMap<&'static str, Gauge<f64>>,
    counters: HashMap<&'static str, Counter<u64>>,
    runs: Counter<u64>,
    success: Gauge<f64>,
    scheduled: Gauge<u64>,
    thresholds: Counter<u64>,
    /// Daemon-wide, with buckets: lateness is the host's and the scheduler's, not a
    /// probe's (a per-probe mean was 2 series and ~0.3 KB of SDK state a probe).
    lateness: Histogram<f64>,
    skipped: Counter<u64>,
    reloads: Counter<u64>,
    last_reload: Gauge<f64>,
    last_reload_ok: Gauge<u64>,
    /// The loaded config's hash, which `sloprobe.config.info` observes: only the current
    /// one is a series (a recorded gauge would keep every replaced hash at 0, forever).
    config_hash: Arc<RwLock<String>>,
    /// The RUM collector's instruments, only when it is on: the SDK reserves each
    /// instrument's whole series table up front (tens of MB at 10,000 probes' limits).
    field: Option<Field>,
    plan: Arc<RwLock<Arc<Plan>>>,
    /// The latest run's trace id per headline or budgeted histogram series.
    exemplars: Arc<exemplars::Exemplars>,
    /// Runs waiting to go out as spans, when `[export.otlp] traces = true`.
    spans: Arc<spans::SpanQueue>,
    traces: bool,
    /// OTLP push with delta temporality is on.
    delta: bool,
    /// The OTLP push thread, when `[export.otlp]` is on.
    pusher: std::sync::Mutex<Option<otlp::Pusher>>,
    /// Series each instrument was sized for; a reload that needs more rebuilds
    /// telemetry.
    limits: HashMap<&'static str, usize>,
    mode: HistogramMode,
}

impl Telemetry {
    pub fn new(location: &str, plan: Plan, otlp: Option<&OtlpSettings>) -> anyhow::Result<Telemetry> {
        let pull = pull::PullReader::new();
        let instance_id = plan.instance_id.clone().unwrap_or_else(random_instance_id);
        let resource = resource(location, &instance_id, plan.field_routes > 0);
        let limits = series_limits(&plan);
        let view_limits = limits.clone();
        let exponential: HashSet<&'static str> = match plan.histograms {
            HistogramMode::Explicit => HashSet::new(),
            HistogramMode::Exponential => plan
                .catalogs
                .values()
                .flatten()
                .filter(|m| matches!(m.instrument, Instrument::Histogram | Instrument::LongHistogram))
                .map(|m| m.metric)
                .collect(),
        };
        let provider = SdkMeterProvider::builder()
            .with_reader(pull.clone())
            .with_view(move |i: &SdkInstrument| {
                // What the probes feeding an instrument can produce; at least 2,000.
                let limit = view_limits.get(i.name()).copied().unwrap_or(SERIES_FLOOR);
                let mut stream = Stream::builder().with_cardinality_limit(limit);
                if exponential.contains(i.name()) {
                    // Scale ≤ 8: Prometheus native histograms take schemas up to 8, so the
                    // buckets go out unchanged (8 ≈ 0.27 % relative error).
                    stream = stream.with_aggregation(Aggregation::Base2ExponentialHistogram {
                        max_size: 160,
                        max_scale: protobuf::MAX_SCHEMA,
                        record_min_max: true,
                    });
                }
                stream.build().ok()
            })
            .with_resource(resource);
        // Cumulative push reads the reader `/metrics` reads: one aggregation. Delta needs
        // its own (it resets at each collection), kept only for what changed in between.
        let delta = otlp.filter(|s| s.delta).map(|_| pull::PullReader::delta());
        let provider = match &delta {
            Some(d) => provider.with_reader(d.clone()),
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
        // Kinds' catalogs, and measures a probe adds (a browser probe's script_metrics).
        let extras = plan.probes.values().flat_map(|p| p.extra.iter());
        for m in plan.catalogs.values().flatten().chain(extras) {
            match m.instrument {
                Instrument::Histogram | Instrument::LongHistogram | Instrument::Mean => {
                    histograms.entry(m.metric).or_insert_with(|| {
                        let edges = match m.instrument {
                            Instrument::Histogram => buckets::for_metric(m.metric, m.unit).to_vec(),
                            Instrument::LongHistogram => buckets::LONG_SECONDS.to_vec(),
                            _ => Vec::new(),
                        };
                        histogram(&meter, m.metric, m.unit, m.description, edges)
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
        self_metrics::register(&meter);
        if otlp.is_some() {
            // /metrics has its own process_* lines; these are for the push path.
            process::register(&meter);
        }
        in_flight::register(&meter);
        let field = (plan.field_routes > 0)
            .then(|| Field::new(&meter, location, (plan.field_routes + 1) * plan::FIELD_SERIES_PER_ROUTE));

        let telemetry = Telemetry {
            field,
            exemplars: Arc::default(),
            spans: Arc::default(),
            traces: otlp.is_some_and(|o| o.traces),
            runs: meter
                .u64_counter(RUNS)
                .with_unit("{run}")
                .with_description("Probe runs by outcome and error type.")
                .build(),
            success: meter
                .f64_gauge(SUCCESS)
                .with_description("1 if the last run succeeded, else 0.")
                .build(),
            scheduled: meter
                .u64_gauge(SCHEDULED)
                .with_description("1 if the probe runs on this host, 0 if it is configured but cannot (its reason is logged).")
                .build(),
            thresholds: meter
                .u64_counter(THRESHOLD_RUNS)
                .with_unit("{run}")
                .with_description(
                    "Runs that measured `measurement`, by verdict against one threshold (a budget or an SLO threshold): good = at or under it. Exact compliance: good / (good + bad).",
                )
                .build(),
            lateness: histogram(
                &meter,
                "sloprobe.schedule.lateness",
                Unit::Seconds,
                "How late runs of all probes started after their due time, in buckets.",
                buckets::LATENESS.to_vec(),
            ),
            skipped: meter
                .u64_counter(SKIPPED)
                .with_unit("{run}")
                .with_description(
                    "Due runs not started: `overlap` (previous still running), `missed` (host stalled), `retry_after` (target asked to wait).",
                )
                .build(),
            reloads: meter
                .u64_counter("sloprobe.config.reloads")
                .with_unit("{reload}")
                .with_description("SIGHUP or /-/reload config reloads by outcome.")
                .build(),
            last_reload: meter
                .f64_gauge("sloprobe.config.last_reload.timestamp")
                .with_unit("s")
                .with_description("When the config was last (re)loaded successfully, Unix seconds.")
                .build(),
            last_reload_ok: meter
                .u64_gauge("sloprobe.config.last_reload.success")
                .with_description("1 if the last reload attempt succeeded, else 0.")
                .build(),
            config_hash: {
                let hash: Arc<RwLock<String>> = Arc::default();
                let seen = hash.clone();
                let _info = meter
                    .u64_observable_gauge("sloprobe.config.info")
                    .with_description("1, with the hash of the loaded config as `config_hash`.")
                    .with_callback(move |o| {
                        let h = seen.read().expect("config hash lock").clone();
                        if !h.is_empty() {
                            o.observe(1, &[KeyValue::new("config_hash", h)]);
                        }
                    })
                    .build();
                hash
            },
            provider,
            pull,
            location: location.to_string(),
            catalogs: plan.catalogs.clone(),
            histograms,
            gauges,
            counters,
            plan: Arc::new(RwLock::new(Arc::new(Plan::default()))),
            pusher: std::sync::Mutex::new(None),
            delta: delta.is_some(),
            limits,
            mode: plan.histograms,
        };
        telemetry.config_loaded(plan, false);
        if let Some(settings) = otlp {
            let source = delta.unwrap_or_else(|| telemetry.pull.clone());
            let plan = telemetry.plan.clone();
            let collect: otlp::Collect = Box::new(move || {
                let mut rm = opentelemetry_sdk::metrics::data::ResourceMetrics::default();
                opentelemetry_sdk::metrics::reader::MetricReader::collect(&source, &mut rm)
                    .map_err(|e| e.to_string())?;
                let plan = plan.read().expect("plan lock").clone();
                Ok((
                    rm,
                    Box::new(move |name: &str, kind: Option<&str>| live(&plan, name, kind)),
                ))
            });
            let spans = settings.traces.then(|| telemetry.spans.clone());
            *telemetry.pusher.lock().expect("pusher lock") = Some(otlp::Pusher::start(
                settings,
                collect,
                spans,
                telemetry.exemplars.clone(),
            )?);
        }
        Ok(telemetry)
    }

    /// Swaps in the plan of a (re)loaded config. Series of probes no longer in it stop
    /// being served on /metrics. `reload` counts it as a reload.
    pub fn config_loaded(&self, plan: Plan, reload: bool) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        plan.config_hash
            .clone_into(&mut self.config_hash.write().expect("config hash lock"));
        self.last_reload.record(now, &[]);
        if reload {
            self.reload_attempt(true);
        } else {
            self.last_reload_ok.record(1, &[]);
        }
        let mut plan = plan;
        let location: Arc<str> = Arc::from(self.location.as_str());
        for (name, p) in plan.probes.iter_mut() {
            let mut attrs = vec![
                KeyValue::new("probe.name", Value::String(Arc::<str>::from(name.as_str()).into())),
                KeyValue::new("probe.kind", p.kind),
                KeyValue::new("probe.location", Value::String(location.clone().into())),
            ];
            attrs.extend(
                p.labels
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), Value::String(Arc::<str>::from(v.as_str()).into()))),
            );
            let attrs = sorted(attrs);
            let mut success = attrs.clone();
            success.push(KeyValue::new("outcome", "success"));
            p.run_success = Arc::from(sorted(success));
            p.base = Arc::from(attrs);
            self.scheduled.record(u64::from(!p.unscheduled), &p.base);
        }
        self.exemplars.retain_probes(|name| plan.probes.contains_key(name));
        *self.plan.write().expect("plan lock") = Arc::new(plan);
    }

    /// Counts a reload attempt (a failed one leaves the running config as it was).
    pub fn reload_attempt(&self, ok: bool) {
        self.reloads
            .add(1, &[KeyValue::new("outcome", if ok { "success" } else { "failure" })]);
        self.last_reload_ok.record(u64::from(ok), &[]);
    }

    pub fn histogram_mode(&self) -> HistogramMode {
        self.mode
    }

    /// Whether a plan still fits the series limits this telemetry was built with,
    /// and has an instrument for every measure a probe added.
    pub fn fits(&self, plan: &Plan) -> bool {
        let instrumented = |m: &&Measure| match m.instrument {
            Instrument::Histogram | Instrument::LongHistogram | Instrument::Mean => {
                self.histograms.contains_key(m.metric)
            }
            Instrument::Gauge => self.gauges.contains_key(m.metric),
            Instrument::Counter => self.counters.contains_key(m.metric),
        };
        plan.probes.values().flat_map(|p| p.extra.iter()).all(instrumented)
            && series_needed(plan)
                .iter()
                .all(|(metric, need)| *need <= self.limits.get(metric).copied().unwrap_or(SERIES_FLOOR))
    }

    /// The attributes every series of a probe carries. Their strings are shared (`Arc`)
    /// by all of its series: at 10,000 probes a copy per series is tens of MB.
    fn base(&self, plan: &Plan, probe: &str, kind: &'static str) -> Vec<KeyValue> {
        if let Some(p) = plan.probes.get(probe) {
            return p.base.to_vec();
        }
        vec![
            KeyValue::new("probe.name", probe.to_string()),
            KeyValue::new("probe.kind", kind),
            KeyValue::new("probe.location", Value::String(self.location.clone().into())),
        ]
    }

    pub fn record(&self, o: &Outcome) {
        if self.traces {
            self.spans.push_run(o, &self.location);
        }
        let plan = self.plan.read().expect("plan lock").clone();
        let probe = plan.probes.get(&o.probe);
        // Attribute sets made once per plan where a run's are always the same: each
        // vector built and sorted here is ~1 µs of a run's ~100 (docs/benchmarks.md).
        let base: std::borrow::Cow<'_, [KeyValue]> = match probe {
            Some(p) => std::borrow::Cow::Borrowed(&p.base),
            None => std::borrow::Cow::Owned(sorted(self.base(&plan, &o.probe, o.kind))),
        };
        match (o.success(), probe) {
            (true, Some(p)) => self.runs.add(1, &p.run_success),
            _ => {
                let mut run_attrs = base.to_vec();
                run_attrs.push(KeyValue::new(
                    "outcome",
                    if o.success() { "success" } else { "failure" },
                ));
                if let Some(e) = &o.error {
                    run_attrs.push(KeyValue::new(ERROR_TYPE_LABEL, e.kind.as_str()));
                }
                self.runs.add(1, &sorted(run_attrs));
            }
        }
        // A delta reader exports only what was recorded since its last push: there the
        // gauge is recorded every run.
        let success = u8::from(o.success());
        let changed = self.delta
            || probe
                .is_none_or(|p| p.last_success.swap(1 + success, std::sync::atomic::Ordering::Relaxed) != 1 + success);
        if changed {
            self.success.record(f64::from(success), &base);
        }
        if let Some(p) = probe {
            for w in &p.thresholds {
                if let Some(v) = o.judged(w.key, w.unit) {
                    let mut attrs = base.to_vec();
                    attrs.push(KeyValue::new("measurement", w.key));
                    attrs.push(KeyValue::new("threshold", names::float_text(w.value)));
                    attrs.push(KeyValue::new(
                        "verdict",
                        if w.unit.within(v, w.value) { "good" } else { "bad" },
                    ));
                    self.thresholds.add(1, &sorted(attrs));
                }
            }
        }

        let Some(kind_catalog) = self.catalogs.get(o.kind) else {
            return;
        };
        let extra = probe.map(|p| p.extra.as_slice()).unwrap_or(&[]);
        let catalog = || kind_catalog.iter().chain(extra);
        let exemplar_keys = probe.map(|p| p.exemplar_keys.as_slice()).unwrap_or(&[]);
        let error = o.error.as_ref().map(|e| e.kind.as_str());
        let mut attrs = Vec::with_capacity(base.len() + 4);
        for (key, value) in &o.measurements {
            for m in catalog().filter(|m| m.key == *key) {
                fill_attributes(&mut attrs, &base, m, &o.labels, error);
                self.write(m, *value, &attrs);
                if exemplar_keys.contains(key)
                    && matches!(m.instrument, Instrument::Histogram | Instrument::LongHistogram)
                {
                    let series = exemplars::Exemplars::key(m.metric, attrs.iter());
                    let e = exemplars::Exemplar {
                        trace_id: o.trace.trace_id,
                        span_id: o.trace.span_id,
                        value: *value,
                        time: o.started_at,
                    };
                    self.exemplars.put(series, &o.probe, e);
                }
            }
        }
        for s in &o.samples {
            for m in catalog().filter(|m| m.key == s.key) {
                match &s.attrs {
                    // A sample with its own attributes (one request of a run) carries its
                    // own error type, not the run's verdict.
                    Some(own) => {
                        let err = own
                            .iter()
                            .find(|(k, _)| *k == ERROR_TYPE_LABEL)
                            .map(|(_, v)| v.text.as_str());
                        fill_attributes(&mut attrs, &base, m, own, err);
                    }
                    None => fill_attributes(&mut attrs, &base, m, &o.labels, error),
                }
                self.write(m, s.value, &attrs);
            }
        }
    }

    fn write(&self, m: &Measure, value: f64, attrs: &[KeyValue]) {
        match m.instrument {
            Instrument::Histogram | Instrument::LongHistogram | Instrument::Mean => {
                if let Some(h) = self.histograms.get(m.metric) {
                    h.record(value, attrs);
                }
            }
            Instrument::Gauge => {
                if let Some(g) = self.gauges.get(m.metric) {
                    g.record(value, attrs);
                }
            }
            Instrument::Counter => {
                if let Some(c) = self.counters.get(m.metric) {
                    c.add(value.max(0.0) as u64, attrs);
                }
            }
        }
    }

    /// One final vital of a real page view (the RUM collector), on the same histogram as
    /// the browser probe's vital; its threshold verdicts on the collector's counter.
    pub fn record_field(&self, v: &FieldVital<'_>) {
        if let Some(f) = &self.field {
            if let Some(h) = self.histograms.get(v.measure.metric) {
                f.record_vital(h, v);
            }
            f.record_verdicts(v);
        }
    }

    /// A page view that ended; `sample_rate`: the share of page views its client sends.
    pub fn record_page_view(&self, route: &Arc<str>, sample_rate: f32) {
        if let Some(f) = &self.field {
            f.page_view(route, sample_rate);
        }
    }

    /// A page view whose first beacon another collector took (after a rebalance).
    pub fn record_adopted_page_view(&self, route: &Arc<str>) {
        if let Some(f) = &self.field {
            f.adopted_page_view(route);
        }
    }

    pub fn record_coverage(&self, vital: &'static str, share: f64) {
        if let Some(f) = &self.field {
            f.coverage(vital, share);
        }
    }

    pub fn record_routes(&self, n: usize) {
        if let Some(f) = &self.field {
            f.routes(n);
        }
    }

    /// One beacon request; `reason` when it was refused.
    pub fn count_beacon(&self, endpoint: &'static str, reason: Option<&'static str>) {
        if let Some(f) = &self.field {
            f.beacon(endpoint, reason);
        }
    }

    /// A CORS preflight to a RUM endpoint, allowed or refused.
    pub fn count_preflight(&self, endpoint: &'static str, allowed: bool) {
        if let Some(f) = &self.field {
            f.preflight(endpoint, allowed);
        }
    }

    /// `n` metrics of an accepted beacon; `reason` when they were refused.
    pub fn count_vitals(&self, reason: Option<&'static str>, n: u64) {
        if let Some(f) = &self.field {
            f.vitals(reason, n);
        }
    }

    /// How late a due run started (daemon-wide: the scheduler's precision).
    pub fn record_lateness(&self, lateness: Duration) {
        self.lateness.record(
            lateness.as_secs_f64(),
            &[KeyValue::new(
                "probe.location",
                Value::String(self.location.clone().into()),
            )],
        );
    }

    /// Exports `probe`'s in-flight gauges while the returned watch lives.
    pub fn watch_in_flight(&self, probe: &str, kind: &'static str) -> in_flight::Watch {
        let plan = self.plan.read().expect("plan lock").clone();
        in_flight::watch(probe, sorted(self.base(&plan, probe, kind)))
    }

    pub fn record_skipped(&self, probe: &str, kind: &'static str, reason: &'static str, n: u64) {
        let plan = self.plan.read().expect("plan lock").clone();
        let mut attrs = self.base(&plan, probe, kind);
        attrs.push(KeyValue::new("reason", reason));
        self.skipped.add(n, &sorted(attrs));
    }

    /// The Prometheus text exposition of everything recorded so far, in chunks. Series
    /// of probes that a reload removed are left out.
    pub fn prometheus_text(&self, emit: &mut dyn FnMut(String)) -> Result<(), String> {
        let plan = self.plan.read().expect("plan lock").clone();
        let live = |name: &str, kind: Option<&str>| live(&plan, name, kind);
        self.pull.encode(&live, emit).map_err(|e| e.to_string())
    }

    /// The OpenMetrics text exposition, with the latest run's trace id as an exemplar on
    /// headline and budgeted histograms (what Prometheus asks for by default).
    pub fn openmetrics_text(&self, emit: &mut dyn FnMut(String)) -> Result<(), String> {
        let plan = self.plan.read().expect("plan lock").clone();
        let live = |name: &str, kind: Option<&str>| live(&plan, name, kind);
        self.pull
            .encode_openmetrics(&live, &self.exemplars, emit)
            .map_err(|e| e.to_string())
    }

    /// The protobuf exposition (with native histograms), delimited `MetricFamily` messages.
    pub fn prometheus_protobuf(&self) -> Result<Vec<u8>, String> {
        let plan = self.plan.read().expect("plan lock").clone();
        let live = |name: &str, kind: Option<&str>| live(&plan, name, kind);
        self.pull.encode_protobuf(&live).map_err(|e| e.to_string())
    }

    /// Pushes once more and stops pushing; bounded by `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let pusher = self.pusher.lock().expect("pusher lock").take();
        if let Some(mut p) = pusher {
            p.stop(deadline).await;
        }
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

/// A probe's series are served while the running plan has a probe of that name and kind
/// (a reload that changes a probe's kind retires its old kind's series).
fn live(plan: &Plan, name: &str, kind: Option<&str>) -> bool {
    plan.probes.is_empty() || plan.probes.get(name).is_some_and(|p| kind.is_none_or(|k| k == p.kind))
}
