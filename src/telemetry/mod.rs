//! Outcomes → OpenTelemetry instruments. This is the one place that maps measurements
//! to metrics; it reads the probes' measurement catalogs and per-probe plans as data and
//! knows no probe kind.
//!
//! A probe's series depend only on that probe: histograms use fixed, documented edges per
//! unit, and every budget or SLO threshold becomes a pair of exact counters
//! (`probe.threshold.runs{measurement, threshold, verdict}`) on that probe alone.

pub mod buckets;
pub mod config;
pub mod names;
pub mod otlp;
pub mod process;
pub mod prometheus;
pub mod protobuf;
pub mod pull;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{Aggregation, Instrument as SdkInstrument, SdkMeterProvider, Stream};

pub use config::{HistogramMode, MetricsConfig, OtlpProtocol, OtlpSettings};

use crate::outcome::{AttrValue, ERROR_TYPE_LABEL, Instrument, Measure, Outcome, Unit, Watch};

pub const SERVICE_NAME: &str = "sloprobe";

/// What telemetry knows of one probe.
#[derive(Clone, Debug, Default)]
pub struct ProbePlan {
    pub kind: &'static str,
    /// `[probe.labels]`: on every series of the probe.
    pub labels: Vec<(String, String)>,
    pub thresholds: Vec<Watch>,
    /// Measures this probe adds to its kind's catalog (e.g. named websocket steps).
    pub extra: Vec<&'static Measure>,
    /// Outcome labels that take one value on this probe whatever happens (see
    /// `probe::Settings::single_valued_labels`): they do not multiply its series.
    pub single_valued: &'static [&'static str],
    /// The attributes on every series of the probe, built once per plan (filled by
    /// telemetry).
    pub base: Arc<[KeyValue]>,
}

/// Everything telemetry needs up front: each kind's catalog, and per probe its labels and
/// watched thresholds. Rebuilt on every reload; instruments are not.
#[derive(Default)]
pub struct Plan {
    pub catalogs: HashMap<&'static str, Vec<&'static Measure>>,
    pub probes: HashMap<String, ProbePlan>,
    pub histograms: HistogramMode,
    /// `service.instance.id`; a random one when unset (tests).
    pub instance_id: Option<String>,
    /// Reported as `sloprobe_config_info{config_hash}`.
    pub config_hash: String,
    /// `[rum] max_routes` when the RUM collector is on, else 0: it sizes the field
    /// series, and field data means the resource is no longer all synthetic.
    pub field_routes: usize,
    /// The RUM collector's measures (its catalog) when it is on.
    pub field_measures: Vec<&'static Measure>,
}

impl Plan {
    pub fn add_kind(&mut self, kind: &'static str, measures: &[&'static Measure]) {
        self.catalogs.entry(kind).or_insert_with(|| measures.to_vec());
    }
}

/// Metric names of the instruments every probe gets, for docs and tests.
pub const RUNS: &str = "probe.runs";
pub const THRESHOLD_RUNS: &str = "probe.threshold.runs";
pub const FIELD_THRESHOLD: &str = "rum.threshold.page_views";
const SUCCESS: &str = "probe.success";
const SKIPPED: &str = "probe.runs.skipped";

/// The telemetry of the running config, swapped whole when a reload resizes it.
pub type SharedTelemetry = Arc<RwLock<Arc<Telemetry>>>;

/// Field (RUM) series per route an instrument may hold: rating × verdict combinations
/// that a monotone value can produce (≤ 4) × navigation types (7) × device classes (3),
/// of which real traffic fills a few; the SDK folds the rest into an overflow series.
const FIELD_SERIES_PER_ROUTE: usize = 12;

/// The RUM collector's own instruments.
struct Field {
    thresholds: Counter<u64>,
    page_views: Counter<u64>,
    coverage: Gauge<f64>,
    routes: Gauge<u64>,
    beacons: Counter<u64>,
    vitals: Counter<u64>,
}

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
    thresholds: Counter<u64>,
    /// Daemon-wide, with buckets: lateness is the host's and the scheduler's, not a
    /// probe's (a per-probe mean was 2 series and ~0.3 KB of SDK state a probe).
    lateness: Histogram<f64>,
    skipped: Counter<u64>,
    reloads: Counter<u64>,
    last_reload: Gauge<f64>,
    last_reload_ok: Gauge<u64>,
    config_info: Gauge<u64>,
    /// The RUM collector's instruments, only when it is on: the SDK reserves each
    /// instrument's whole series table up front (tens of MB at 10,000 probes' limits).
    field: Option<Field>,
    plan: RwLock<Arc<Plan>>,
    /// Series each instrument was sized for; a reload that needs more rebuilds
    /// telemetry.
    limits: HashMap<&'static str, usize>,
    mode: HistogramMode,
}

pub fn otel_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Seconds | Unit::UnixTime => "s",
        Unit::Bytes => "By",
        Unit::Count | Unit::Score => "",
        Unit::Ratio => "1",
        Unit::Tokens => "{token}",
        Unit::Runs => "{run}",
    }
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
                .filter(|m| m.instrument == Instrument::Histogram)
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
                    Instrument::Histogram | Instrument::Mean => {
                        histograms.entry(m.metric).or_insert_with(|| {
                            let edges = match m.instrument {
                                Instrument::Histogram => buckets::defaults(m.unit).to_vec(),
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
        }
        self_metrics(&meter);
        let field = (plan.field_routes > 0).then(|| Field {
            thresholds: meter
                .u64_counter(FIELD_THRESHOLD)
                .with_unit("{page_view}")
                .with_description("Real page views that reported `measurement`, per route, by verdict against one threshold ([rum.budget] or an SLO's): good = at or under it.")
                .build(),
            page_views: meter
                .u64_counter("rum.page_views")
                .with_unit("{page_view}")
                .with_description("Page views that sent beacons with a page id (the snippet's), per route.")
                .build(),
            coverage: meter
                .f64_gauge("rum.coverage")
                .with_unit("1")
                .with_description("Share of the last 1,000 page views that reported each vital.")
                .build(),
            routes: meter
                .u64_gauge("rum.routes")
                .with_unit("{route}")
                .with_description("Distinct route labels in use (at most [rum] max_routes; the rest are \"other\").")
                .build(),
            beacons: meter
                .u64_counter("rum.beacons")
                .with_unit("{beacon}")
                .with_description("Beacon requests by endpoint and outcome; rejected ones by reason.")
                .build(),
            vitals: meter
                .u64_counter("rum.vitals")
                .with_unit("{vital}")
                .with_description("Metrics in accepted beacons by outcome; rejected ones by reason.")
                .build(),
        });

        let telemetry = Telemetry {
            field,
            runs: meter
                .u64_counter(RUNS)
                .with_unit("{run}")
                .with_description("Probe runs by outcome and error type.")
                .build(),
            success: meter
                .f64_gauge(SUCCESS)
                .with_description("1 if the last run succeeded, else 0.")
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
            config_info: meter
                .u64_gauge("sloprobe.config.info")
                .with_description("1, with the hash of the loaded config as `config_hash`.")
                .build(),
            provider,
            pull,
            location: location.to_string(),
            catalogs: plan.catalogs.clone(),
            histograms,
            gauges,
            counters,
            plan: RwLock::new(Arc::new(Plan::default())),
            limits,
            mode: plan.histograms,
        };
        telemetry.config_loaded(plan, false);
        Ok(telemetry)
    }

    /// Swaps in the plan of a (re)loaded config. Series of probes no longer in it stop
    /// being served on /metrics. `reload` counts it as a reload.
    pub fn config_loaded(&self, plan: Plan, reload: bool) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let old = self.plan.read().expect("plan lock").config_hash.clone();
        if !old.is_empty() && old != plan.config_hash {
            self.config_info.record(0, &[KeyValue::new("config_hash", old)]);
        }
        self.config_info
            .record(1, &[KeyValue::new("config_hash", plan.config_hash.clone())]);
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
            p.base = Arc::from(attrs);
        }
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

    /// Whether a plan still fits the series limits this telemetry was built with.
    pub fn fits(&self, plan: &Plan) -> bool {
        series_needed(plan)
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
        let plan = self.plan.read().expect("plan lock").clone();
        let base = self.base(&plan, &o.probe, o.kind);
        let mut run_attrs = base.clone();
        run_attrs.push(KeyValue::new(
            "outcome",
            if o.success() { "success" } else { "failure" },
        ));
        if let Some(e) = &o.error {
            run_attrs.push(KeyValue::new(ERROR_TYPE_LABEL, e.kind.as_str()));
        }
        self.runs.add(1, &sorted(run_attrs));
        self.success
            .record(if o.success() { 1.0 } else { 0.0 }, &sorted(base.clone()));
        if let Some(p) = plan.probes.get(&o.probe) {
            for w in &p.thresholds {
                if let Some(v) = o.get(w.key) {
                    let mut attrs = base.clone();
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
        let extra = plan.probes.get(&o.probe).map(|p| p.extra.as_slice()).unwrap_or(&[]);
        let catalog = || kind_catalog.iter().chain(extra);
        for (key, value) in &o.measurements {
            for m in catalog().filter(|m| m.key == *key) {
                let attrs = attributes(&base, m, &o.labels, o.error.as_ref().map(|e| e.kind.as_str()));
                self.write(m, *value, &sorted(attrs));
            }
        }
        for s in &o.samples {
            for m in catalog().filter(|m| m.key == s.key) {
                let attrs = match &s.attrs {
                    // A sample with its own attributes (one request of a run) carries its
                    // own error type, not the run's verdict.
                    Some(own) => {
                        let err = own
                            .iter()
                            .find(|(k, _)| *k == ERROR_TYPE_LABEL)
                            .map(|(_, v)| v.text.as_str());
                        attributes(&base, m, own, err)
                    }
                    None => attributes(&base, m, &o.labels, o.error.as_ref().map(|e| e.kind.as_str())),
                };
                self.write(m, s.value, &sorted(attrs));
            }
        }
    }

    fn write(&self, m: &Measure, value: f64, attrs: &[KeyValue]) {
        match m.instrument {
            Instrument::Histogram | Instrument::Mean => {
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

    /// One final vital of a real page view (the RUM collector). Its words are static and
    /// its route shared: nothing is copied per vital.
    pub fn record_field(&self, v: &crate::outcome::FieldVital<'_>) {
        let loc = KeyValue::new("probe.location", Value::String(self.location.clone().into()));
        let route = KeyValue::new("http.route", Value::String(v.route.clone().into()));
        if let Some(h) = self.histograms.get(v.measure.metric) {
            let mut attrs = Vec::with_capacity(6);
            attrs.push(loc.clone());
            attrs.push(route.clone());
            attrs.extend(v.attrs[..v.attr_count].iter().map(|(k, val)| KeyValue::new(*k, *val)));
            h.record(v.value, &sorted(attrs));
        }
        for w in v.thresholds {
            // Already in key order.
            let attrs = [
                route.clone(),
                KeyValue::new("measurement", w.key),
                loc.clone(),
                KeyValue::new("threshold", names::float_text(w.value)),
                KeyValue::new("verdict", if w.unit.within(v.value, w.value) { "good" } else { "bad" }),
            ];
            if let Some(f) = &self.field {
                f.thresholds.add(1, &attrs);
            }
        }
    }

    pub fn record_page_view(&self, route: &Arc<str>) {
        let Some(f) = &self.field else { return };
        f.page_views.add(
            1,
            &sorted(vec![
                KeyValue::new("probe.location", Value::String(self.location.clone().into())),
                KeyValue::new("http.route", Value::String(route.clone().into())),
            ]),
        );
    }

    pub fn record_coverage(&self, vital: &'static str, share: f64) {
        let Some(f) = &self.field else { return };
        f.coverage.record(
            share,
            &sorted(vec![
                KeyValue::new("probe.location", Value::String(self.location.clone().into())),
                KeyValue::new("browser.web_vital.name", vital),
            ]),
        );
    }

    pub fn record_routes(&self, n: usize) {
        if let Some(f) = &self.field {
            f.routes.record(n as u64, &[]);
        }
    }

    /// One beacon request; `reason` when it was refused. (Attributes in key order: no
    /// vector to build and sort on the beacon path.)
    pub fn count_beacon(&self, endpoint: &'static str, reason: Option<&'static str>) {
        let Some(f) = &self.field else { return };
        let endpoint = KeyValue::new("endpoint", endpoint);
        match reason {
            None => f.beacons.add(1, &[endpoint, KeyValue::new("outcome", "accepted")]),
            Some(r) => f.beacons.add(
                1,
                &[
                    endpoint,
                    KeyValue::new("outcome", "rejected"),
                    KeyValue::new("reason", r),
                ],
            ),
        }
    }

    /// `n` metrics of an accepted beacon; `reason` when they were refused.
    pub fn count_vitals(&self, reason: Option<&'static str>, n: u64) {
        let Some(f) = &self.field else { return };
        match reason {
            None => f.vitals.add(n, &[KeyValue::new("outcome", "accepted")]),
            Some(r) => f
                .vitals
                .add(n, &[KeyValue::new("outcome", "rejected"), KeyValue::new("reason", r)]),
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
        let live = |name: &str| plan.probes.is_empty() || plan.probes.contains_key(name);
        self.pull.encode(&live, emit).map_err(|e| e.to_string())
    }

    /// The protobuf exposition (with native histograms), delimited `MetricFamily` messages.
    pub fn prometheus_protobuf(&self) -> Result<Vec<u8>, String> {
        let plan = self.plan.read().expect("plan lock").clone();
        let live = |name: &str| plan.probes.is_empty() || plan.probes.contains_key(name);
        self.pull.encode_protobuf(&live).map_err(|e| e.to_string())
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

/// Attributes sorted by key: the SDK keeps a series under the order it was given and under
/// the sorted order, so an unsorted vector is stored twice (at 10,000 probes the daemon
/// held 209 MB before any scrape, 166 MB with sorted attributes).
fn sorted(mut attrs: Vec<KeyValue>) -> Vec<KeyValue> {
    attrs.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    attrs.dedup_by(|a, b| a.key == b.key);
    attrs
}

/// No instrument's series table is smaller: daemon-wide instruments, and kinds with few
/// probes, get this much.
const SERIES_FLOOR: usize = 2_000;

/// The series each instrument must hold for a plan: per probe, what it can produce there.
/// A measure takes 2 attribute variants on a probe (status, error type, connection), or
/// 1 when it has no outcome labels or only labels that are fixed on that probe (a
/// fresh-connection http probe's `probe.connection`).
fn series_needed(plan: &Plan) -> HashMap<&'static str, usize> {
    let mut need: HashMap<&'static str, usize> = HashMap::new();
    for p in plan.probes.values() {
        let catalog = plan.catalogs.get(p.kind).map_or(&[][..], Vec::as_slice);
        for m in catalog.iter().chain(&p.extra) {
            let variants = if m.labels.iter().all(|l| p.single_valued.contains(l)) {
                1
            } else {
                2
            };
            *need.entry(m.metric).or_default() += variants;
        }
        *need.entry(RUNS).or_default() += 3; // success, failures by error type
        *need.entry(SUCCESS).or_default() += 1;
        *need.entry(SKIPPED).or_default() += 3; // overlap, missed, retry_after
        *need.entry(THRESHOLD_RUNS).or_default() += 2 * p.thresholds.len(); // good, bad
    }
    need
}

/// Series limits to build instruments with: what the plan needs plus 25 % for reloads
/// that add probes, at least [`SERIES_FLOOR`]. The SDK reserves each table whole up
/// front and a filled table is resident, so they are sized, not simply set high.
fn series_limits(plan: &Plan) -> HashMap<&'static str, usize> {
    let mut limits = series_needed(plan);
    for limit in limits.values_mut() {
        *limit += *limit / 4;
    }
    if plan.field_routes > 0 {
        let routes = plan.field_routes + 1;
        for m in &plan.field_measures {
            *limits.entry(m.metric).or_default() += routes * FIELD_SERIES_PER_ROUTE;
        }
        // Per route and threshold, good and bad.
        *limits.entry(FIELD_THRESHOLD).or_default() += routes * 2 * 12;
        *limits.entry("rum.page_views").or_default() += routes;
    }
    for limit in limits.values_mut() {
        *limit = (*limit).max(SERIES_FLOOR);
    }
    limits
}

/// A measure's attributes: the probe's base set, the measure's fixed ones, and the labels
/// it names, from `labels` (the run's, or a sample's own); `error` for `error.type`.
fn attributes(
    base: &[KeyValue],
    m: &Measure,
    labels: &[(&'static str, AttrValue)],
    error: Option<&str>,
) -> Vec<KeyValue> {
    let mut attrs = base.to_vec();
    attrs.extend(m.fixed.iter().map(|(k, v)| KeyValue::new(*k, *v)));
    for label in m.labels {
        if *label == ERROR_TYPE_LABEL {
            if let Some(e) = error {
                attrs.push(KeyValue::new(ERROR_TYPE_LABEL, e.to_string()));
            }
        } else if let Some((_, v)) = labels.iter().find(|(k, _)| k == label) {
            let value = match v.int {
                Some(n) => Value::I64(n),
                None => Value::from(v.text.clone()),
            };
            attrs.push(KeyValue::new(*label, value));
        }
    }
    attrs
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

/// `sloprobe_build_info` and the OTLP exporter's own counters (observed at collection).
fn self_metrics(meter: &Meter) {
    meter
        .u64_gauge("sloprobe.build.info")
        .with_description("1, with the version and the git revision it was built from.")
        .build()
        .record(
            1,
            &[
                KeyValue::new("version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("revision", crate::REVISION),
            ],
        );
    let _exports = meter
        .u64_observable_counter("sloprobe.otlp.exports")
        .with_unit("{export}")
        .with_description("OTLP exports by outcome (success, failure).")
        .with_callback(|o| {
            let (ok, failed, _) = otlp::stats();
            if ok + failed > 0 {
                o.observe(ok, &[KeyValue::new("outcome", "success")]);
                o.observe(failed, &[KeyValue::new("outcome", "failure")]);
            }
        })
        .build();
    let _time = meter
        .f64_observable_counter("sloprobe.otlp.export.time")
        .with_unit("s")
        .with_description("Time spent in OTLP exports; with sloprobe.otlp.exports, the mean export duration.")
        .with_callback(|o| {
            let (ok, failed, seconds) = otlp::stats();
            if ok + failed > 0 {
                o.observe(seconds, &[]);
            }
        })
        .build();
}

/// Resource attributes. `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` are read by the
/// SDK; the attributes set here win over them, except `service.name`, which the
/// environment may set (the config has no key for it).
fn resource(location: &str, instance_id: &str, field_data: bool) -> Resource {
    let env_names_service = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut b = Resource::builder();
    if !env_names_service {
        b = b.with_service_name(SERVICE_NAME);
    }
    let mut attrs = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", instance_id.to_string()),
        KeyValue::new("host.name", host_name()),
        KeyValue::new("probe.location", location.to_string()),
    ];
    if !field_data {
        // Everything this process measures is synthetic traffic. With the RUM collector
        // on it is not: then only the browser probe's vitals carry the attribute.
        attrs.push(KeyValue::new("user_agent.synthetic.type", "test"));
    }
    b.with_attributes(attrs).build()
}

pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `service.instance.id` that survives reloads and restarts: a UUID (version 8, the
/// custom layout) from FNV-1a hashes of the host name, the absolute config path and the
/// listen address. Two daemons on one host differ by config or listener; one daemon keeps
/// its id, so OTLP backends see one target across restarts (docs/metrics.md).
pub fn stable_instance_id(config_path: &std::path::Path, listen: &str) -> String {
    let path = std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let key = format!("{}\n{}\n{listen}", host_name(), path.display());
    let a = fnv1a(key.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv1a(key.as_bytes(), 0x8422_2325_cbf2_9ce4);
    uuid_text(((u128::from(a)) << 64 | u128::from(b)).to_be_bytes(), 8)
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes
        .iter()
        .fold(seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn uuid_text(mut b: [u8; 16], version: u8) -> String {
    b[6] = (b[6] & 0x0f) | (version << 4);
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

/// A random UUIDv4 (tests and `once`, which have no stable identity to keep).
fn random_instance_id() -> String {
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
    uuid_text(b, 4)
}

#[cfg(test)]
mod tests {
    #[test]
    fn instance_id_is_stable_and_a_uuid() {
        let a = super::stable_instance_id(std::path::Path::new("/etc/sloprobe/sloprobe.toml"), "127.0.0.1:9464");
        assert_eq!(
            a,
            super::stable_instance_id(std::path::Path::new("/etc/sloprobe/sloprobe.toml"), "127.0.0.1:9464")
        );
        assert_ne!(
            a,
            super::stable_instance_id(std::path::Path::new("/etc/sloprobe/sloprobe.toml"), "127.0.0.1:9465")
        );
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
    }
}
