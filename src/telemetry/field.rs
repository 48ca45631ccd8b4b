//! Field data from the RUM collector: its vitals go on the browser probe's histograms
//! (lab and field side by side), its verdicts, page views, coverage and beacon counts on
//! instruments of its own, which exist only when the collector is on.
//!
//! Sharing a histogram means sharing its series table. The table is sized for the lab's
//! series plus the field's allotment (`[rum] max_routes` + 1 routes × a few attribute
//! combinations), and the field never takes more than its allotment: past it, a vital
//! whose combination is new goes on the route "other" with no further attributes, and is
//! counted as `rum.vitals{outcome="folded"}`. So no beacon traffic can push a probe's lab
//! series into the SDK's overflow series.

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use opentelemetry::{KeyValue, Value};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};

use super::attributes::sorted;
use super::names::float_text;
use super::plan::FIELD_THRESHOLD;
use crate::outcome::FieldVital;

/// The RUM collector's own instruments.
pub struct Field {
    location: String,
    thresholds: Counter<u64>,
    page_views: Counter<u64>,
    represented: Counter<f64>,
    adopted: Counter<u64>,
    coverage: Gauge<f64>,
    routes: Gauge<u64>,
    beacons: Counter<u64>,
    preflights: Counter<u64>,
    vitals: Counter<u64>,
    /// Field series each shared histogram may hold (the fold's own series included).
    series_share: usize,
    /// The attribute combinations admitted so far, per histogram (as hashes).
    admitted: Mutex<HashMap<&'static str, HashSet<u64>>>,
    /// Whether the first fold was logged (once per telemetry).
    fold_logged: std::sync::atomic::AtomicBool,
}

impl Field {
    pub fn new(meter: &Meter, location: &str, series_share: usize) -> Field {
        Field {
            location: location.to_string(),
            series_share: series_share.max(2),
            admitted: Mutex::default(),
            fold_logged: std::sync::atomic::AtomicBool::new(false),
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
            represented: meter
                .f64_counter("rum.page_views.represented")
                .with_unit("{page_view}")
                .with_description("Page views the sampled ones stand for: each counted page view adds 1 / the sample rate its beacon sent (`sr`), per route. Equal to rum.page_views when nothing is sampled.")
                .build(),
            adopted: meter
                .u64_counter("rum.page_views.adopted")
                .with_unit("{page_view}")
                .with_description("Page views first seen here after their first beacon (it went to another collector before a rebalance): not counted in rum.page_views, which the other collector counted, per route.")
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
            preflights: meter
                .u64_counter("rum.preflights")
                .with_unit("{request}")
                .with_description("CORS preflights (OPTIONS) by endpoint and outcome: allowed, or refused (an origin not allowed). A refused preflight means the browser sent no beacon at all.")
                .build(),
            vitals: meter
                .u64_counter("rum.vitals")
                .with_unit("{vital}")
                .with_description("Metrics in accepted beacons by outcome; rejected ones by reason.")
                .build(),
        }
    }

    /// One final vital of a real page view on the vital's histogram, within the field's
    /// series allotment. Its words are static and its route shared: nothing is copied.
    pub fn record_vital(&self, h: &Histogram<f64>, v: &FieldVital<'_>) {
        let extra = &v.attrs[..v.attr_count];
        let combination = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            v.route.hash(&mut hasher);
            extra.hash(&mut hasher);
            hasher.finish()
        };
        let admitted = {
            let mut admitted = self.admitted.lock().expect("field series");
            let seen = admitted.entry(v.measure.metric).or_default();
            // One slot stays free for the fold.
            seen.contains(&combination) || (seen.len() + 1 < self.series_share && seen.insert(combination))
        };
        let mut attrs = Vec::with_capacity(6);
        attrs.push(self.location());
        if admitted {
            attrs.push(KeyValue::new("http.route", Value::String(v.route.clone().into())));
            attrs.extend(extra.iter().map(|(k, val)| KeyValue::new(*k, *val)));
        } else {
            attrs.push(KeyValue::new("http.route", crate::rum::route::OTHER));
            self.vitals.add(1, &[KeyValue::new("outcome", "folded")]);
            if !self.fold_logged.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    metric = v.measure.metric,
                    allotment = self.series_share,
                    "field series allotment full: further new route/attribute combinations go on the route \"other\" (rum_vitals_total{{outcome=\"folded\"}}); lab series are not affected"
                );
            }
        }
        h.record(v.value, &sorted(attrs));
    }

    fn location(&self) -> KeyValue {
        KeyValue::new("probe.location", Value::String(self.location.clone().into()))
    }

    /// The vital's verdict against each threshold watched on it (per route, exact).
    pub fn record_verdicts(&self, v: &FieldVital<'_>) {
        if v.thresholds.is_empty() {
            return;
        }
        let loc = self.location();
        let route = KeyValue::new("http.route", Value::String(v.route.clone().into()));
        for w in v.thresholds {
            // Already in key order.
            let attrs = [
                route.clone(),
                KeyValue::new("measurement", w.key),
                loc.clone(),
                KeyValue::new("threshold", float_text(w.value)),
                KeyValue::new("verdict", if w.unit.within(v.value, w.value) { "good" } else { "bad" }),
            ];
            self.thresholds.add(1, &attrs);
        }
    }

    pub fn page_view(&self, route: &Arc<str>, sample_rate: f32) {
        let attrs = sorted(vec![
            self.location(),
            KeyValue::new("http.route", Value::String(route.clone().into())),
        ]);
        self.page_views.add(1, &attrs);
        self.represented
            .add(1.0 / f64::from(sample_rate.clamp(1e-6, 1.0)), &attrs);
    }

    pub fn adopted_page_view(&self, route: &Arc<str>) {
        self.adopted.add(
            1,
            &sorted(vec![
                self.location(),
                KeyValue::new("http.route", Value::String(route.clone().into())),
            ]),
        );
    }

    pub fn coverage(&self, vital: &'static str, share: f64) {
        self.coverage.record(
            share,
            &sorted(vec![self.location(), KeyValue::new("browser.web_vital.name", vital)]),
        );
    }

    pub fn routes(&self, n: usize) {
        self.routes.record(n as u64, &[]);
    }

    /// One beacon request; `reason` when it was refused. (Attributes in key order: no
    /// vector to build and sort on the beacon path.)
    pub fn beacon(&self, endpoint: &'static str, reason: Option<&'static str>) {
        let endpoint = KeyValue::new("endpoint", endpoint);
        match reason {
            None => self.beacons.add(1, &[endpoint, KeyValue::new("outcome", "accepted")]),
            Some(r) => self.beacons.add(
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
    pub fn preflight(&self, endpoint: &'static str, allowed: bool) {
        let outcome = if allowed { "allowed" } else { "refused" };
        self.preflights.add(
            1,
            &[KeyValue::new("endpoint", endpoint), KeyValue::new("outcome", outcome)],
        );
    }

    pub fn vitals(&self, reason: Option<&'static str>, n: u64) {
        match reason {
            None => self.vitals.add(n, &[KeyValue::new("outcome", "accepted")]),
            Some(r) => self
                .vitals
                .add(n, &[KeyValue::new("outcome", "rejected"), KeyValue::new("reason", r)]),
        }
    }
}
