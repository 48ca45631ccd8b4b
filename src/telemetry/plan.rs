//! What telemetry knows up front, rebuilt on every reload: each kind's catalog, per probe
//! its labels and watched thresholds, and from those the series each instrument must hold.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::KeyValue;

use super::config::HistogramMode;
use crate::outcome::{Measure, Watch};

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
    /// The attributes on every series of the probe, sorted by key, built once per plan
    /// (filled by telemetry).
    pub base: Arc<[KeyValue]>,
    /// `base` with `outcome = success`, sorted: a passing run's `probe.runs` series.
    pub run_success: Arc<[KeyValue]>,
    /// 1 + the `probe.success` value last recorded under this plan (0: none yet): an
    /// unchanged gauge is not recorded again (with cumulative export).
    pub last_success: Arc<std::sync::atomic::AtomicU8>,
    /// The probe is configured but cannot run on this host (no Chromium): it gets
    /// `probe_scheduled 0` and no other series.
    pub unscheduled: bool,
    /// Keys whose histogram series carry the latest run's trace id as an exemplar: the
    /// kind's headline measurements and the probe's budgeted ones.
    pub exemplar_keys: Vec<&'static str>,
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

pub const SUCCESS: &str = "probe.success";

pub const SCHEDULED: &str = "probe.scheduled";

pub const SKIPPED: &str = "probe.runs.skipped";

/// Field (RUM) series per route an instrument may hold: rating × verdict combinations
/// that a monotone value can produce (≤ 4) × navigation types (7) × device classes (3),
/// of which real traffic fills a few; the SDK folds the rest into an overflow series.
pub const FIELD_SERIES_PER_ROUTE: usize = 12;

/// No instrument's series table is smaller: daemon-wide instruments, and kinds with few
/// probes, get this much.
pub const SERIES_FLOOR: usize = 2_000;

/// The series each instrument must hold for a plan: per probe, what it can produce there.
/// A measure takes 2 attribute variants on a probe (status, error type, connection), or
/// 1 when it has no outcome labels or only labels that are fixed on that probe (a
/// fresh-connection http probe's `probe.connection`).
pub fn series_needed(plan: &Plan) -> HashMap<&'static str, usize> {
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
        *need.entry(SCHEDULED).or_default() += 1;
        *need.entry(SKIPPED).or_default() += 4; // overlap, missed, retry_after, interrupted
        *need.entry(THRESHOLD_RUNS).or_default() += 2 * p.thresholds.len(); // good, bad
    }
    need
}

/// Series limits to build instruments with: what the plan needs plus 25 % for reloads
/// that add probes, at least [`SERIES_FLOOR`]. The SDK reserves each table whole up
/// front and a filled table is resident, so they are sized, not simply set high.
pub fn series_limits(plan: &Plan) -> HashMap<&'static str, usize> {
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
