//! What both backends share: query vectors, hits, recall@k against the exact search, and
//! the run's verdict (a short result fails).

use std::sync::Mutex;

use crate::outcome::{ErrorType, ProbeError, Recorder};

/// One search hit: an id and, where known, its distance (lower is closer).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub distance: Option<f64>,
}

/// Rows the exact search reads beyond k: rows tied with the k-th are another valid top k.
pub const TIES: usize = 16;

/// Recall@k of `approx` against `exact` (the exact search's rows, closest first, up to
/// k + [`TIES`]). Only the server's *ids* in the approximate answer are trusted: an
/// approximate hit counts when its id is in the exact top k, or is one of the exact rows
/// beyond k at exactly the k-th distance (a tie, as the exact search itself measured it).
/// Each id counts once, empty ids never, so recall is at most 1 whatever the server sends.
/// The denominator is k, or fewer when the exact search itself has fewer rows (a filter).
pub fn recall(approx: &[Hit], exact: &[Hit], k: usize) -> Option<f64> {
    let top = &exact[..exact.len().min(k)];
    if top.is_empty() {
        return None;
    }
    let kth = top.last().and_then(|h| h.distance);
    let tied = |h: &Hit| matches!((h.distance, kth), (Some(d), Some(kd)) if (d - kd).abs() <= kd.abs() * 1e-9);
    let valid: std::collections::HashSet<&str> = top
        .iter()
        .chain(exact[top.len()..].iter().filter(|h| tied(h)))
        .map(|h| h.id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let hits = approx
        .iter()
        .take(k)
        .filter(|a| valid.contains(a.id.as_str()) && seen.insert(a.id.as_str()))
        .count();
    Some(hits.min(top.len()) as f64 / top.len() as f64)
}

/// Where query vectors come from.
pub enum Source {
    /// Rows of the table, sampled (pgvector).
    Sample,
    Random(Option<usize>),
    List(Vec<Vec<f32>>),
}

/// The next query vector: from the list in turn, or random of `dim`.
pub struct Vectors {
    source: Source,
    next: Mutex<(usize, u64, Vec<Vec<f32>>)>,
}

impl Vectors {
    pub fn new(source: Source) -> Vectors {
        Vectors {
            source,
            next: Mutex::new((0, 0x2545_f491_4f6c_dd1d, Vec::new())),
        }
    }

    pub fn is_sample(&self) -> bool {
        matches!(self.source, Source::Sample)
    }

    pub fn is_random(&self) -> bool {
        matches!(self.source, Source::Random(_))
    }

    pub fn fixed_dimension(&self) -> Option<usize> {
        match &self.source {
            Source::Random(d) => *d,
            _ => None,
        }
    }

    /// A vector from the list (in turn), from sampled rows (in turn, refilled by the
    /// caller when empty), or random with `dim` components in [-1, 1).
    pub fn take(&self, dim: Option<usize>) -> Option<Vec<f32>> {
        let mut g = self.next.lock().expect("vectors");
        match &self.source {
            Source::List(list) => {
                let v = list.get(g.0 % list.len().max(1)).cloned();
                g.0 += 1;
                v
            }
            Source::Sample => {
                if g.2.is_empty() {
                    return None;
                }
                let i = g.0 % g.2.len();
                g.0 += 1;
                Some(g.2[i].clone())
            }
            Source::Random(_) => {
                let dim = dim?;
                let mut x = g.1;
                let v = (0..dim)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
                    })
                    .collect();
                g.1 = x;
                Some(v)
            }
        }
    }

    /// Sampled rows to use in turn.
    pub fn refill(&self, rows: Vec<Vec<f32>>) {
        let mut g = self.next.lock().expect("vectors");
        g.2 = rows;
        g.0 = 0;
    }
}

/// pgvector's text form, "[0.1,0.2]": the shortest decimal that reads back as the same
/// f32, so nothing is lost on the way.
pub fn vector_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 10 + 2);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{x}"));
    }
    s.push(']');
    s
}

pub fn parse_vector_text(s: &str) -> Option<Vec<f32>> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    inner.split(',').map(|x| x.trim().parse::<f32>().ok()).collect()
}

/// A search run shared by both backends: k, recall cadence, the run counter.
pub struct Plan {
    pub k: usize,
    pub recall_every: u64,
    runs: std::sync::atomic::AtomicU64,
}

impl Plan {
    pub fn new(k: usize, recall_every: u64) -> Plan {
        Plan {
            k,
            recall_every,
            runs: Default::default(),
        }
    }

    /// Whether this run also measures recall (the first run does, then every Nth).
    pub fn recall_now(&self) -> bool {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.recall_every > 0 && n.is_multiple_of(self.recall_every)
    }
}

/// Records what a search found and fails a short one.
pub fn judge(rec: &mut Recorder, plan: &Plan, approx: &[Hit], exact: Option<&[Hit]>) -> Result<(), ProbeError> {
    rec.set("result_count", approx.len() as f64);
    if let Some(exact) = exact
        && let Some(r) = recall(approx, exact, plan.k)
    {
        rec.set("recall", r);
    }
    if approx.len() < plan.k {
        return Err(ProbeError::new(
            ErrorType::ShortResult,
            format!("the search returned {} of k = {} results", approx.len(), plan.k),
        ));
    }
    Ok(())
}

/// A SQL identifier (or schema.identifier), double-quoted.
pub fn quote_ident(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 2 {
        return None;
    }
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    parts
        .iter()
        .all(|p| ok(p))
        .then(|| parts.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(id: &str, d: f64) -> Hit {
        Hit {
            id: id.into(),
            distance: Some(d),
        }
    }

    #[test]
    fn recall_counts_ties_at_the_kth_distance() {
        // The exact search read past k: "d" is tied with the 3rd, "e" is not.
        let exact = [h("a", 0.1), h("b", 0.2), h("c", 0.3), h("d", 0.3), h("e", 0.4)];
        assert_eq!(recall(&[h("a", 0.1), h("b", 0.2), h("c", 0.3)], &exact, 3), Some(1.0));
        assert_eq!(
            recall(&[h("a", 0.1), h("x", 0.5), h("c", 0.3)], &exact, 3),
            Some(2.0 / 3.0)
        );
        // "d" is as close as the 3rd by the exact search's own measure: another valid top 3.
        assert_eq!(recall(&[h("a", 0.1), h("b", 0.2), h("d", 0.9)], &exact, 3), Some(1.0));
        assert_eq!(
            recall(&[h("a", 0.1), h("b", 0.2), h("e", 0.3)], &exact, 3),
            Some(2.0 / 3.0)
        );
        // A filter that leaves 2 rows: recall over 2.
        assert_eq!(recall(&[h("a", 0.1)], &exact[..2], 3), Some(0.5));
        assert_eq!(recall(&[], &[], 3), None);
    }

    /// What a hostile or broken server can send never raises recall: duplicates count
    /// once, empty ids never, invented ids with a perfect score not at all, and recall is
    /// at most 1.
    #[test]
    fn recall_trusts_only_distinct_ids_the_exact_search_confirms() {
        let exact = [h("a", 0.1), h("b", 0.2), h("c", 0.3)];
        assert_eq!(
            recall(&[h("a", 0.1), h("a", 0.1), h("a", 0.1)], &exact, 3),
            Some(1.0 / 3.0)
        );
        assert_eq!(
            recall(&[h("", 0.0), h("", 0.0), h("a", 0.1)], &exact, 3),
            Some(1.0 / 3.0)
        );
        assert_eq!(
            recall(&[h("zz", 0.0), h("yy", -1.0), h("xx", 0.3)], &exact, 3),
            Some(0.0)
        );
        let flood: Vec<Hit> = (0..100).map(|_| h("a", 0.0)).chain(exact.iter().cloned()).collect();
        assert!(recall(&flood, &exact, 3).unwrap() <= 1.0);
        let none = Hit {
            id: "b".into(),
            distance: None,
        };
        assert_eq!(recall(&[none], &exact, 3), Some(1.0 / 3.0));
    }

    #[test]
    fn identifiers_are_checked_and_quoted() {
        assert_eq!(quote_ident("chunks").as_deref(), Some("\"chunks\""));
        assert_eq!(quote_ident("app.chunks").as_deref(), Some("\"app\".\"chunks\""));
        for bad in ["", "a b", "a;b", "a\"b", "1a", "a.b.c", "a--"] {
            assert_eq!(quote_ident(bad), None, "{bad}");
        }
    }

    #[test]
    fn vectors_round_trip_through_text() {
        let v = vec![0.1f32, -2.5, 1e-7, 3.0];
        assert_eq!(parse_vector_text(&vector_text(&v)), Some(v));
    }
}
