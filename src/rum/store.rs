//! Dedupe: web-vitals reports a metric again (same id, new value) as CLS and INP grow and
//! when the page is hidden. Reports wait here until their id has been quiet for
//! `flush_after`, and only the last value of each id is recorded: one value per vital per
//! page view. Page views (by page id) are tracked alike, for coverage.
//!
//! Bounded: the table is split in shards by id; a shard at its share of `max_pending`
//! flushes what it holds early (each with the last value it had), so a flood of ids
//! costs CPU, not memory, and stalls only that shard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::beacon::{Navigation, Vital};

/// A vital as it will be recorded.
#[derive(Clone, Debug)]
pub struct Final {
    pub vital: Vital,
    pub value: f64,
    pub route: Arc<str>,
    pub navigation: Navigation,
    pub device: &'static str,
}

#[derive(Debug)]
pub enum Flushed {
    Vital(Final),
    /// A page view ended: its route and the vitals it reported (`Vital::bit`s).
    PageView {
        route: Arc<str>,
        vitals: u8,
    },
}

struct Pending {
    last: Final,
    first: Instant,
    updated: Instant,
}

struct Page {
    route: Arc<str>,
    vitals: u8,
    first: Instant,
    updated: Instant,
}

pub struct Store {
    quiet: Duration,
    /// A page open for hours keeps reporting; its values are recorded after this anyway.
    max_age: Duration,
    /// Per shard.
    max_pending: usize,
    shards: Vec<Mutex<Inner>>,
}

const SHARDS: usize = 16;

fn shard_of(key: &str) -> usize {
    // FNV-1a: cheap, and ids are random already.
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h as usize) % SHARDS
}

#[derive(Default)]
struct Inner {
    metrics: HashMap<(Vital, String), Pending>,
    pages: HashMap<String, Page>,
}

impl Store {
    pub fn new(quiet: Duration, max_pending: usize) -> Store {
        Store {
            quiet,
            max_age: (quiet * 20).max(Duration::from_secs(600)),
            max_pending: (max_pending / SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(Inner::default())).collect(),
        }
    }

    /// Takes one report. Without an id it is final at once; returns what is final now.
    pub fn add(&self, report: Final, id: Option<String>, page_id: Option<String>, now: Instant) -> Vec<Flushed> {
        let mut out = Vec::new();
        if let Some(page) = page_id {
            let mut inner = self.shards[shard_of(&page)].lock().expect("store lock");
            if inner.metrics.len() + inner.pages.len() >= self.max_pending {
                drain_into(&mut inner, &mut out);
            }
            let p = inner.pages.entry(page).or_insert_with(|| Page {
                route: report.route.clone(),
                vitals: 0,
                first: now,
                updated: now,
            });
            p.vitals |= report.vital.bit();
            p.updated = now;
        }
        match id {
            None => out.push(Flushed::Vital(report)),
            Some(id) => {
                let mut inner = self.shards[shard_of(&id)].lock().expect("store lock");
                if inner.metrics.len() + inner.pages.len() >= self.max_pending {
                    drain_into(&mut inner, &mut out);
                }
                let key = (report.vital, id);
                match inner.metrics.get_mut(&key) {
                    Some(p) => {
                        p.last = report;
                        p.updated = now;
                    }
                    None => {
                        inner.metrics.insert(
                            key,
                            Pending {
                                last: report,
                                first: now,
                                updated: now,
                            },
                        );
                    }
                }
            }
        }
        out
    }

    /// What has been quiet for `flush_after` (or waited `max_age`) by `now`.
    pub fn due(&self, now: Instant) -> Vec<Flushed> {
        let (quiet, max_age) = (self.quiet, self.max_age);
        let ready = |first: Instant, updated: Instant| {
            now.saturating_duration_since(updated) >= quiet || now.saturating_duration_since(first) >= max_age
        };
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

fn due_into(inner: &mut Inner, ready: &dyn Fn(Instant, Instant) -> bool, out: &mut Vec<Flushed>) {
    inner.metrics.retain(|_, p| {
        if ready(p.first, p.updated) {
            out.push(Flushed::Vital(p.last.clone()));
            false
        } else {
            true
        }
    });
    inner.pages.retain(|_, p| {
        if ready(p.first, p.updated) {
            out.push(Flushed::PageView {
                route: p.route.clone(),
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
            route: Arc::from("/"),
            navigation: Navigation::Navigate,
            device: "desktop",
        }
    }

    #[test]
    fn the_last_value_of_an_id_is_kept() {
        let s = Store::new(Duration::from_secs(1), 100);
        let t0 = Instant::now();
        assert!(s.add(lcp(100.0), Some("a".into()), Some("p".into()), t0).is_empty());
        s.add(
            lcp(250.0),
            Some("a".into()),
            Some("p".into()),
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
        assert_eq!(s.add(lcp(1.0), None, None, t0).len(), 1);
    }

    #[test]
    fn bounded_by_max_pending() {
        let s = Store::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let mut flushed = 0;
        for i in 0..1000 {
            flushed += s.add(lcp(1.0), Some(format!("id{i}")), None, t0).len();
            assert!(s.pending() <= SHARDS, "{}", s.pending());
        }
        assert_eq!(flushed + s.pending(), 1000);
    }
}
