//! Dedupe: web-vitals reports a metric again (same id, new value) as CLS and INP grow and
//! when the page is hidden. Reports wait here until their id has been quiet for
//! `flush_after`, and only the last value of each id is recorded: one value per vital per
//! page view. Page views (by page id) are tracked alike, for coverage.
//!
//! Bounded: the table is split in shards by id; a shard at its share of `max_pending`
//! flushes what it holds early (each with the last value it had), so a flood of ids
//! costs CPU, not memory, and stalls only that shard.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::beacon::{Navigation, Vital};
use super::route::RouteId;

/// A vital as it will be recorded: 32 bytes, no pointer to share.
#[derive(Clone, Copy, Debug)]
pub struct Final {
    pub vital: Vital,
    pub value: f64,
    pub route: RouteId,
    pub navigation: Navigation,
    pub device: &'static str,
}

#[derive(Debug)]
pub enum Flushed {
    Vital(Final),
    /// A page view ended: its route and the vitals it reported (`Vital::bit`s).
    PageView {
        route: RouteId,
        vitals: u8,
    },
}

/// Milliseconds since the store started (wraps after 49 days; entries live hours at most).
type Ms = u32;

struct Pending {
    last: Final,
    first: Ms,
    updated: Ms,
}

struct Page {
    route: RouteId,
    vitals: u8,
    first: Ms,
    updated: Ms,
}

pub struct Store {
    quiet: Duration,
    /// A page open for hours keeps reporting; its values are recorded after this anyway.
    max_age: Duration,
    /// Per shard.
    max_pending: usize,
    shards: Vec<Mutex<Inner>>,
    keys: std::collections::hash_map::RandomState,
    epoch: Instant,
}

const SHARDS: usize = 16;

/// Tables are keyed by a keyed (SipHash, random per process) 64-bit hash of the id, not
/// the id: no string kept or hashed twice, and a client cannot aim ids at one bucket.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("keys are u64")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Table<V> = HashMap<u64, V, BuildHasherDefault<Prehashed>>;

#[derive(Default)]
struct Inner {
    metrics: Table<Pending>,
    pages: Table<Page>,
}

impl Store {
    pub fn new(quiet: Duration, max_pending: usize) -> Store {
        Store {
            quiet,
            max_age: (quiet * 20).max(Duration::from_secs(600)),
            max_pending: (max_pending / SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(Inner::default())).collect(),
            keys: Default::default(),
            epoch: Instant::now(),
        }
    }

    fn ms(&self, t: Instant) -> Ms {
        t.saturating_duration_since(self.epoch).as_millis() as Ms
    }

    fn key(&self, tag: u8, id: &str) -> u64 {
        let mut h = self.keys.build_hasher();
        h.write_u8(tag);
        h.write(id.as_bytes());
        h.finish()
    }

    /// Takes one beacon's reports: (vital, metric id, page id). A report without an id
    /// is final at once. Returns what is final now.
    ///
    /// A page view's metrics live in the shard of its page id (of the metric id without
    /// one), so a beacon takes one lock, not one per metric: the lock's cache line moving
    /// between cores was the costliest step of a beacon (docs/benchmarks.md).
    pub fn add(&self, reports: Vec<(Final, Option<&str>, Option<&str>)>, now: Instant) -> Vec<Flushed> {
        let now = self.ms(now);
        let mut out = Vec::new();
        let mut keyed = Vec::with_capacity(reports.len());
        // A beacon's metrics share their page id: hash it once.
        let mut last_page: Option<(&str, u64)> = None;
        for (report, id, page) in reports {
            let page_key = page.map(|p| match last_page {
                Some((q, k)) if q == p => k,
                _ => {
                    let k = self.key(u8::MAX, p);
                    last_page = Some((p, k));
                    k
                }
            });
            match id {
                None => {
                    if let Some(k) = page_key {
                        keyed.push((k as usize % SHARDS, None, page_key, report.vital.bit(), report.route));
                    }
                    out.push(Flushed::Vital(report));
                }
                Some(id) => {
                    let key = self.key(report.vital as u8, id);
                    let shard = page_key.unwrap_or(key) as usize % SHARDS;
                    keyed.push((shard, Some((key, report)), page_key, report.vital.bit(), report.route));
                }
            }
        }
        keyed.sort_unstable_by_key(|k| k.0);
        let mut i = 0;
        while i < keyed.len() {
            let shard = keyed[i].0;
            let mut inner = self.shards[shard].lock().expect("store lock");
            if inner.metrics.len() + inner.pages.len() >= self.max_pending {
                drain_into(&mut inner, &mut out);
            }
            while i < keyed.len() && keyed[i].0 == shard {
                let (_, metric, page_key, bit, route) = &keyed[i];
                if let Some(k) = page_key {
                    let p = inner.pages.entry(*k).or_insert_with(|| Page {
                        route: *route,
                        vitals: 0,
                        first: now,
                        updated: now,
                    });
                    p.vitals |= bit;
                    p.updated = now;
                }
                if let Some((key, report)) = metric {
                    match inner.metrics.get_mut(key) {
                        Some(p) => {
                            p.last = *report;
                            p.updated = now;
                        }
                        None => {
                            inner.metrics.insert(
                                *key,
                                Pending {
                                    last: *report,
                                    first: now,
                                    updated: now,
                                },
                            );
                        }
                    }
                }
                i += 1;
            }
        }
        out
    }

    /// What has been quiet for `flush_after` (or waited `max_age`) by `now`.
    pub fn due(&self, now: Instant) -> Vec<Flushed> {
        let now = self.ms(now);
        let (quiet, max_age) = (self.quiet.as_millis() as Ms, self.max_age.as_millis() as Ms);
        let ready = |first: Ms, updated: Ms| now.wrapping_sub(updated) >= quiet || now.wrapping_sub(first) >= max_age;
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut inner = shard.lock().expect("store lock");
            due_into(&mut inner, &ready, &mut out);
        }
        out
    }

    /// Everything, now (shutdown).
    pub fn drain(&self) -> Vec<Flushed> {
        let mut out = Vec::new();
        for shard in &self.shards {
            drain_into(&mut shard.lock().expect("store lock"), &mut out);
        }
        out
    }

    pub fn pending(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let inner = s.lock().expect("store lock");
                inner.metrics.len() + inner.pages.len()
            })
            .sum()
    }
}

fn due_into(inner: &mut Inner, ready: &dyn Fn(Ms, Ms) -> bool, out: &mut Vec<Flushed>) {
    inner.metrics.retain(|_, p| {
        if ready(p.first, p.updated) {
            out.push(Flushed::Vital(p.last));
            false
        } else {
            true
        }
    });
    inner.pages.retain(|_, p| {
        if ready(p.first, p.updated) {
            out.push(Flushed::PageView {
                route: p.route,
                vitals: p.vitals,
            });
            false
        } else {
            true
        }
    });
    // Give back what a burst grew the tables to.
    let (metrics, pages) = (inner.metrics.len(), inner.pages.len());
    if inner.metrics.capacity() > 4 * metrics + 1024 {
        inner.metrics.shrink_to(2 * metrics);
    }
    if inner.pages.capacity() > 4 * pages + 1024 {
        inner.pages.shrink_to(2 * pages);
    }
}

fn drain_into(inner: &mut Inner, out: &mut Vec<Flushed>) {
    out.extend(inner.metrics.drain().map(|(_, p)| Flushed::Vital(p.last)));
    out.extend(inner.pages.drain().map(|(_, p)| Flushed::PageView {
        route: p.route,
        vitals: p.vitals,
    }));
    inner.metrics.shrink_to(1024);
    inner.pages.shrink_to(1024);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcp(v: f64) -> Final {
        Final {
            vital: Vital::Lcp,
            value: v,
            route: 1,
            navigation: Navigation::Navigate,
            device: "desktop",
        }
    }

    #[test]
    fn the_last_value_of_an_id_is_kept() {
        let s = Store::new(Duration::from_secs(1), 100);
        let t0 = Instant::now();
        assert!(s.add(vec![(lcp(100.0), Some("a"), Some("p"))], t0).is_empty());
        s.add(
            vec![(lcp(250.0), Some("a"), Some("p"))],
            t0 + Duration::from_millis(500),
        );
        assert!(
            s.due(t0 + Duration::from_millis(1200)).is_empty(),
            "updated at 0.5 s: quiet until 1.5 s"
        );
        let out = s.due(t0 + Duration::from_millis(1600));
        assert_eq!(out.len(), 2);
        assert!(out.iter().any(|f| matches!(f, Flushed::Vital(v) if v.value == 250.0)));
        assert!(
            out.iter()
                .any(|f| matches!(f, Flushed::PageView { vitals, .. } if *vitals == Vital::Lcp.bit()))
        );
        assert_eq!(s.pending(), 0);
        // No id: final at once.
        assert_eq!(s.add(vec![(lcp(1.0), None, None)], t0).len(), 1);
    }

    #[test]
    fn bounded_by_max_pending() {
        let s = Store::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let mut flushed = 0;
        for i in 0..1000 {
            flushed += s.add(vec![(lcp(1.0), Some(format!("id{i}").as_str()), None)], t0).len();
            assert!(s.pending() <= SHARDS, "{}", s.pending());
        }
        assert_eq!(flushed + s.pending(), 1000);
    }
}
