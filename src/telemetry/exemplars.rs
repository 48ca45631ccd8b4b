//! The last run's trace id on each headline and budgeted histogram series: an exemplar a
//! Grafana panel follows from a slow bucket to that run's trace. One per series (the
//! latest), so memory is bounded by the series count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use opentelemetry::KeyValue;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub value: f64,
    pub time: SystemTime,
}

/// Series key → (probe, its latest exemplar).
#[derive(Default)]
pub struct Exemplars(Mutex<HashMap<String, (String, Exemplar)>>);

impl Exemplars {
    /// A series' key: its metric and its attributes, sorted by key (as the SDK keeps them).
    pub fn key<'a>(metric: &str, attrs: impl Iterator<Item = &'a KeyValue>) -> String {
        let mut pairs: Vec<(&str, std::borrow::Cow<'_, str>)> =
            attrs.map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
        pairs.sort_unstable();
        let mut key = String::with_capacity(metric.len() + pairs.len() * 24);
        key.push_str(metric);
        for (k, v) in pairs {
            key.push('\u{1f}');
            key.push_str(k);
            key.push('=');
            key.push_str(&v);
        }
        key
    }

    pub fn put(&self, key: String, probe: &str, e: Exemplar) {
        let mut all = self.0.lock().expect("exemplars lock");
        match all.get_mut(&key) {
            Some(slot) => slot.1 = e,
            None => {
                all.insert(key, (probe.to_string(), e));
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<Exemplar> {
        self.0.lock().expect("exemplars lock").get(key).map(|(_, e)| *e)
    }

    /// Forgets the series of probes a reload removed.
    pub fn retain_probes(&self, keep: impl Fn(&str) -> bool) {
        self.0
            .lock()
            .expect("exemplars lock")
            .retain(|_, (probe, _)| keep(probe));
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("exemplars lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
