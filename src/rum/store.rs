//! Dedupe: one value per vital per page view, the final one, whatever the gap between
//! reports. web-vitals reports TTFB, FCP and LCP once (final when sent); CLS and INP grow
//! while the page is open and are sent again each time the tab is hidden, possibly minutes
//! apart. So:
//! - TTFB, FCP, LCP (and FID) are recorded once their id has been quiet for `flush_after`;
//! - CLS and INP wait until their page view has been quiet for `page_view_window`, and the
//!   last value is recorded;
//! - a page view is counted once, with the vitals it reported (coverage), when it has been
//!   quiet for `page_view_window`; until then a later report of a vital it already recorded
//!   is a duplicate, dropped and counted, never a second value.
//!
//! A page open past `max_age` (6 × the window, at least an hour) is closed anyway: what
//! it sends after that starts a new page view.
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
        /// First seen here after its first beacon (which another collector took, before
        /// a rebalance): counted apart, never as a page view (the other one counted it).
        adopted: bool,
        /// The share of page views the client sampled in (1 = all).
        sample_rate: f32,
    },
}

/// What one beacon says about itself (the snippet's `b` and `sr` query parameters).
#[derive(Debug, Clone, Copy)]
pub struct BeaconMeta {
    /// Whether it is its page view's first beacon (or says nothing about it).
    pub opens: bool,
    pub sample_rate: f32,
}

impl Default for BeaconMeta {
    fn default() -> Self {
        BeaconMeta {
            opens: true,
            sample_rate: 1.0,
        }
    }
}

/// One report of a beacon, as the store takes it.
pub struct Incoming<'a> {
    pub report: Final,
    /// The metric id (web-vitals' `id`).
    pub id: Option<&'a str>,
    pub page: Option<&'a str>,
    /// The client sent this metric id in an earlier beacon too.
    pub resent: bool,
}

/// What `Store::add` did with a beacon.
#[derive(Default)]
pub struct Added {
    /// Final now (a full shard flushes early).
    pub flushed: Vec<Flushed>,
    /// Reports of a value their page view recorded already: dropped.
    pub duplicates: usize,
    /// Resends of a metric this collector never saw: another collector (before a
    /// rebalance) or an expired page view holds it. Dropped, so it is not counted twice.
    pub unseen_resends: usize,
}

/// Milliseconds since the store started (wraps after 49 days; entries live hours at most).
type Ms = u32;

struct Pending {
    last: Final,
    first: Ms,
    updated: Ms,
    /// Its page view's key, if it has one (same shard).
    page: Option<u64>,
}

struct Page {
    route: RouteId,
    adopted: bool,
    sample_rate: f32,
    /// Vitals reported, and vitals already recorded (`Vital::bit`s).
    vitals: u8,
    recorded: u8,
    first: Ms,
    updated: Ms,
}

/// Whether a vital's value can still change after it was first reported.
fn grows(v: super::beacon::Vital) -> bool {
    matches!(v, super::beacon::Vital::Cls | super::beacon::Vital::Inp)
}

pub struct Store {
    quiet: Duration,
    window: Duration,
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
    /// `quiet`: `flush_after`; `window`: `page_view_window` (at least `quiet`).
    pub fn new(quiet: Duration, window: Duration, max_pending: usize) -> Store {
        let window = window.max(quiet);
        Store {
            quiet,
            window,
            max_age: (window * 6).max(Duration::from_secs(3600)),
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

    /// Takes one beacon's reports. A report without an id is final at once.
    ///
    /// A page view's metrics live in the shard of its page id (of the metric id without
    /// one), so a beacon takes one lock, not one per metric: the lock's cache line moving
    /// between cores was the costliest step of a beacon (docs/benchmarks.md).
    pub fn add(&self, reports: Vec<Incoming<'_>>, beacon: BeaconMeta, now: Instant) -> Added {
        let now = self.ms(now);
        let mut added = Added::default();
        let out = &mut added.flushed;
        let mut keyed = Vec::with_capacity(reports.len());
        // A beacon's metrics share their page id: hash it once.
        let mut last_page: Option<(&str, u64)> = None;
        for Incoming {
            report,
            id,
            page,
            resent,
        } in reports
        {
            let page_key = page.map(|p| match last_page {
                Some((q, k)) if q == p => k,
                _ => {
                    let k = self.key(u8::MAX, p);
                    last_page = Some((p, k));
                    k
                }
            });
            match id {
                None => match page_key {
                    // Final at once, but its page view may have recorded it already.
                    Some(k) => keyed.push((k as usize % SHARDS, None, page_key, report, resent)),
                    // Sent before without an id or page: nothing here can tell it apart.
                    None if resent => added.unseen_resends += 1,
                    None => out.push(Flushed::Vital(report)),
                },
                Some(id) => {
                    let key = self.key(report.vital as u8, id);
                    let shard = page_key.unwrap_or(key) as usize % SHARDS;
                    keyed.push((shard, Some(key), page_key, report, resent));
                }
            }
        }
        keyed.sort_unstable_by_key(|k| k.0);
        let mut i = 0;
        while i < keyed.len() {
            let shard = keyed[i].0;
            let mut inner = self.shards[shard].lock().expect("store lock");
            if inner.metrics.len() + inner.pages.len() >= self.max_pending {
                drain_into(&mut inner, out);
            }
            while i < keyed.len() && keyed[i].0 == shard {
                let (_, metric, page_key, report, resent) = keyed[i];
                i += 1;
                let bit = report.vital.bit();
                let waiting = metric.is_some_and(|k| inner.metrics.contains_key(&k));
                let seen = waiting
                    || page_key
                        .and_then(|k| inner.pages.get(&k))
                        .is_some_and(|p| p.vitals & bit != 0);
                if resent && !seen {
                    // Sent before, but not here: whoever took that beacon has it.
                    added.unseen_resends += 1;
                    continue;
                }
                if let Some(k) = page_key {
                    let p = inner.pages.entry(k).or_insert_with(|| Page {
                        route: report.route,
                        adopted: !beacon.opens,
                        sample_rate: beacon.sample_rate,
                        vitals: 0,
                        recorded: 0,
                        first: now,
                        updated: now,
                    });
                    p.updated = now;
                    // Beacons of one page view can arrive out of order (two fetches in
                    // flight): its first beacon arriving second still makes it ours.
                    if beacon.opens {
                        p.adopted = false;
                    }
                    if p.recorded & bit != 0 && !waiting {
                        added.duplicates += 1;
                        continue;
                    }
                    p.vitals |= bit;
                    if metric.is_none() {
                        p.recorded |= bit;
                        out.push(Flushed::Vital(report));
                        continue;
                    }
                }
                let Some(key) = metric else { continue };
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
                                page: page_key,
                            },
                        );
                    }
                }
            }
        }
        added
    }

    /// What is final by `now`: vitals quiet for `flush_after` (CLS and INP: for
    /// `page_view_window`), page views quiet for `page_view_window`, and anything that
    /// has waited `max_age`.
    pub fn due(&self, now: Instant) -> Vec<Flushed> {
        let now = self.ms(now);
        let ms = |d: Duration| d.as_millis() as Ms;
        let (quiet, window, max_age) = (ms(self.quiet), ms(self.window), ms(self.max_age));
        let ready =
            |first: Ms, updated: Ms, wait: Ms| now.wrapping_sub(updated) >= wait || now.wrapping_sub(first) >= max_age;
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut inner = shard.lock().expect("store lock");
            due_into(&mut inner, &ready, quiet, window, &mut out);
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

fn due_into(inner: &mut Inner, ready: &dyn Fn(Ms, Ms, Ms) -> bool, quiet: Ms, window: Ms, out: &mut Vec<Flushed>) {
    let Inner { metrics, pages } = inner;
    metrics.retain(|_, p| {
        let wait = if grows(p.last.vital) { window } else { quiet };
        if ready(p.first, p.updated, wait) {
            out.push(Flushed::Vital(p.last));
            if let Some(page) = p.page.and_then(|k| pages.get_mut(&k)) {
                page.recorded |= p.last.vital.bit();
            }
            false
        } else {
            true
        }
    });
    inner.pages.retain(|_, p| {
        if ready(p.first, p.updated, window) {
            out.push(page_view(p));
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

fn page_view(p: &Page) -> Flushed {
    Flushed::PageView {
        route: p.route,
        vitals: p.vitals,
        adopted: p.adopted,
        sample_rate: p.sample_rate,
    }
}

fn drain_into(inner: &mut Inner, out: &mut Vec<Flushed>) {
    out.extend(inner.metrics.drain().map(|(_, p)| Flushed::Vital(p.last)));
    out.extend(inner.pages.drain().map(|(_, p)| page_view(&p)));
    inner.metrics.shrink_to(1024);
    inner.pages.shrink_to(1024);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (vital, metric id, page id) reports of a page view's first beacon.
    fn add(s: &Store, reports: Vec<(Final, Option<&str>, Option<&str>)>, now: Instant) -> (Vec<Flushed>, usize) {
        let reports = reports
            .into_iter()
            .map(|(report, id, page)| Incoming {
                report,
                id,
                page,
                resent: false,
            })
            .collect();
        let a = s.add(reports, BeaconMeta::default(), now);
        (a.flushed, a.duplicates)
    }

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
        let s = Store::new(Duration::from_secs(1), Duration::from_secs(1), 100);
        let t0 = Instant::now();
        assert!(add(&s, vec![(lcp(100.0), Some("a"), Some("p"))], t0).0.is_empty());
        add(
            &s,
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
        assert_eq!(add(&s, vec![(lcp(1.0), None, None)], t0).0.len(), 1);
    }

    fn vital(v: Vital, value: f64) -> Final {
        Final { vital: v, ..lcp(value) }
    }

    /// A visit: early vitals, then LCP and CLS at the first hide, then, after longer than
    /// `flush_after`, CLS again (grown) at the second hide. One page view, one value per
    /// vital, and CLS's is the last.
    #[test]
    fn one_value_per_vital_per_page_view_across_long_gaps() {
        let sec = Duration::from_secs;
        let s = Store::new(sec(2), sec(60), 100);
        let t0 = Instant::now();
        let mut recorded = Vec::new();
        let mut views = 0;
        let mut take = |out: Vec<Flushed>| {
            for f in out {
                match f {
                    Flushed::Vital(v) => recorded.push((v.vital, v.value)),
                    Flushed::PageView { vitals, .. } => {
                        views += 1;
                        assert_eq!(
                            vitals,
                            Vital::Ttfb.bit() | Vital::Fcp.bit() | Vital::Lcp.bit() | Vital::Cls.bit()
                        );
                    }
                }
            }
        };
        let report = |v: Vital, value: f64, id: &'static str| (vital(v, value), Some(id), Some("page-1"));
        take(
            add(
                &s,
                vec![report(Vital::Ttfb, 80.0, "t"), report(Vital::Fcp, 300.0, "f")],
                t0,
            )
            .0,
        );
        take(s.due(t0 + sec(10)));
        take(
            add(
                &s,
                vec![report(Vital::Lcp, 900.0, "l"), report(Vital::Cls, 0.02, "c")],
                t0 + sec(36),
            )
            .0,
        );
        take(s.due(t0 + sec(40)));
        // Hidden, shown, hidden again 20 s later (flush_after is 2 s): CLS grew; LCP is
        // sent again by a snippet that resends everything (a duplicate).
        let (out, dups) = add(
            &s,
            vec![report(Vital::Cls, 0.09, "c"), report(Vital::Lcp, 900.0, "l")],
            t0 + sec(56),
        );
        assert_eq!(dups, 1, "LCP was recorded already");
        take(out);
        take(s.due(t0 + sec(100)));
        take(s.due(t0 + sec(200)));
        let mut got = recorded.clone();
        got.sort_by_key(|a| a.0 as u8);
        assert_eq!(
            got,
            [
                (Vital::Ttfb, 80.0),
                (Vital::Fcp, 300.0),
                (Vital::Lcp, 900.0),
                (Vital::Cls, 0.09)
            ]
        );
        assert_eq!(views, 1);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn bounded_by_max_pending() {
        let s = Store::new(Duration::from_secs(60), Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let mut flushed = 0;
        for i in 0..1000 {
            flushed += add(&s, vec![(lcp(1.0), Some(format!("id{i}").as_str()), None)], t0)
                .0
                .len();
            assert!(s.pending() <= SHARDS, "{}", s.pending());
        }
        assert_eq!(flushed + s.pending(), 1000);
    }

    /// A page view that moved to this collector after its first beacons (a rebalance):
    /// its resent CLS, which the old owner holds, is dropped and counted; its first INP
    /// is recorded; the page view is counted as adopted, not as a page view.
    #[test]
    fn a_moved_page_view_is_never_counted_twice() {
        let s = Store::new(Duration::from_millis(100), Duration::from_millis(200), 100);
        let t0 = Instant::now();
        let third_beacon = BeaconMeta {
            opens: false,
            sample_rate: 0.5,
        };
        let reports = vec![
            Incoming {
                report: vital(Vital::Cls, 0.08),
                id: Some("cls-1"),
                page: Some("pv-1"),
                resent: true,
            },
            Incoming {
                report: vital(Vital::Inp, 120.0),
                id: Some("inp-1"),
                page: Some("pv-1"),
                resent: false,
            },
        ];
        let added = s.add(reports, third_beacon, t0);
        assert_eq!((added.duplicates, added.unseen_resends), (0, 1));
        let out = s.due(t0 + Duration::from_secs(1));
        let vitals: Vec<Vital> = out
            .iter()
            .filter_map(|f| match f {
                Flushed::Vital(v) => Some(v.vital),
                _ => None,
            })
            .collect();
        assert_eq!(vitals, [Vital::Inp]);
        assert!(out.iter().any(|f| matches!(
            f,
            Flushed::PageView { adopted: true, sample_rate, .. } if *sample_rate == 0.5
        )));

        // The same CLS resent to the collector that took its first report: an update.
        let first = s.add(
            vec![Incoming {
                report: vital(Vital::Cls, 0.05),
                id: Some("cls-2"),
                page: Some("pv-2"),
                resent: false,
            }],
            BeaconMeta::default(),
            t0,
        );
        let again = s.add(
            vec![Incoming {
                report: vital(Vital::Cls, 0.09),
                id: Some("cls-2"),
                page: Some("pv-2"),
                resent: true,
            }],
            third_beacon,
            t0 + Duration::from_millis(50),
        );
        assert_eq!(
            (first.unseen_resends, again.unseen_resends, again.duplicates),
            (0, 0, 0)
        );
        let out = s.due(t0 + Duration::from_secs(1));
        assert!(out.iter().any(|f| matches!(f, Flushed::Vital(v) if v.value == 0.09)));
        assert!(
            out.iter()
                .any(|f| matches!(f, Flushed::PageView { adopted: false, .. }))
        );
    }

    /// The page view's second beacon overtakes its first (two fetches in flight): the
    /// page view is still counted here, not adopted.
    #[test]
    fn a_first_beacon_arriving_second_still_opens_the_page_view() {
        let s = Store::new(Duration::from_millis(100), Duration::from_millis(200), 100);
        let t0 = Instant::now();
        let one = |v: Vital, id: &'static str| Incoming {
            report: vital(v, 1.0),
            id: Some(id),
            page: Some("pv-9"),
            resent: false,
        };
        let second = BeaconMeta {
            opens: false,
            sample_rate: 1.0,
        };
        s.add(vec![one(Vital::Lcp, "l")], second, t0);
        s.add(vec![one(Vital::Ttfb, "t")], BeaconMeta::default(), t0);
        let out = s.due(t0 + Duration::from_secs(1));
        assert!(
            out.iter()
                .any(|f| matches!(f, Flushed::PageView { adopted: false, .. }))
        );
        assert_eq!(out.iter().filter(|f| matches!(f, Flushed::Vital(_))).count(), 2);
    }
}
