//! `kind = "vector"`: top-k search latency, and recall measured continuously against an
//! exact search of the same query, on pgvector (`pgvector.rs`) or an HTTP vector API
//! (`http.rs`, with Qdrant and Chroma presets). A short result (fewer than k rows, as
//! filtered HNSW scans return) is measured and fails the run as `short_result`.

mod http;
mod pgvector;

use std::collections::BTreeMap;
use std::sync::Mutex;

use schemars::JsonSchema;
use serde::Deserialize;

use super::http_config::{Request, Tls};
use super::{BoxFuture, BuildContext, Kind, Probe, Settings};
use crate::config::{ConfigError, ProbeConfig, SecretText, Spanned};
use crate::outcome::{ErrorType, Instrument, Measure, ProbeError, Recorder, Unit};

pub const KIND: Kind = Kind {
    name: "vector",
    measures: MEASURES,
    settings: super::settings_of::<VectorSettings>,
    schema: <VectorSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["query", "recall", "result_count"],
    median_gate: false,
};

/// The keys of `kind = "vector"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorSettings {
    /// "pgvector" (default) or "http".
    #[serde(default)]
    pub backend: Backend,
    /// pgvector: postgres://user:password@host:port/db as a secret ("env:NAME" or
    /// "file:PATH"); `sslmode=disable|prefer|require` in it (default prefer).
    pub dsn: Option<Spanned<SecretText>>,
    /// pgvector: the table (optionally schema.table).
    pub table: Option<Spanned<String>>,
    /// pgvector: the vector column.
    pub column: Option<Spanned<String>>,
    /// pgvector: the id column (default "id").
    pub id_column: Option<Spanned<String>>,
    /// pgvector: "l2" (default), "cosine" or "inner_product" (<->, <=>, <#>).
    #[serde(default)]
    pub distance: Distance,
    /// pgvector: a SQL condition for the WHERE clause, e.g. "org_id = 42" (no `;`, no comments).
    pub filter: Option<Spanned<String>>,
    /// Results asked for (default 10, at most 1000).
    pub k: Option<Spanned<u32>>,
    /// pgvector: settings for the query's transaction (SET LOCAL), e.g. { "hnsw.ef_search" = "40" }.
    #[serde(default)]
    pub settings: BTreeMap<String, Spanned<String>>,
    /// "sample" (rows of the table, pgvector only; default there), "random" (needs
    /// `dimension` over HTTP) or "file:PATH" (a JSON array of vectors, used in turn).
    pub query_vectors: Option<Spanned<String>>,
    /// Every Nth run also runs the exact search and records recall (default 10; 0 = never).
    pub recall_every: Option<u32>,
    /// http: the search endpoint, e.g. http://qdrant:6333/collections/docs/points/query.
    pub url: Option<Spanned<String>>,
    /// http: "qdrant" or "chroma": body, exact body and where the ids are.
    pub preset: Option<Spanned<Preset>>,
    /// http: the JSON body, with {{vector}} and {{k}} filled in.
    pub body: Option<Spanned<String>>,
    /// http: the body of the exact search (for recall).
    pub exact_body: Option<Spanned<String>>,
    /// http: JSON pointer to the result list, e.g. "/result/points".
    pub ids_pointer: Option<Spanned<String>>,
    /// http: in a list of objects, the id's field (default: the element is the id).
    pub id_field: Option<String>,
    /// http: in a list of objects, the distance or score field (ties count as hits).
    pub score_field: Option<String>,
    /// http: whether a higher score is closer (Qdrant: true; Chroma's distances: false).
    pub higher_is_closer: Option<bool>,
    /// http: the vector dimension, for `query_vectors = "random"`.
    pub dimension: Option<u32>,
    /// http: request headers and bearer token (secrets as "env:"/"file:").
    #[serde(default)]
    pub request: Request,
    /// TLS options (https:// or a Postgres server with TLS).
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Pgvector,
    Http,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    #[default]
    L2,
    Cosine,
    InnerProduct,
}

impl Distance {
    pub fn operator(self) -> &'static str {
        match self {
            Distance::L2 => "<->",
            Distance::Cosine => "<=>",
            Distance::InnerProduct => "<#>",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Qdrant,
    Chroma,
}

macro_rules! phase {
    ($key:literal) => {
        Measure {
            key: $key,
            metric: "probe.vector.phase.duration",
            unit: Unit::Seconds,
            instrument: Instrument::Mean,
            description: "Vector probe connection phases (dns, connect, tls, auth); count and sum only: the mean.",
            fixed: &[("phase", $key)],
            labels: &[],
        }
    };
}

pub const MEASURES: &[Measure] = &[
    phase!("dns"),
    phase!("connect"),
    phase!("tls"),
    phase!("auth"),
    Measure {
        key: "query",
        metric: "db.client.operation.duration",
        unit: Unit::Seconds,
        instrument: Instrument::Histogram,
        description: "The top-k search alone: statement sent → every row received (OpenTelemetry database semantic conventions).",
        fixed: &[],
        labels: &["db.system.name", "db.operation.name", "db.collection.name"],
    },
    Measure {
        key: "exact_query",
        metric: "probe.vector.exact.duration",
        unit: Unit::Seconds,
        instrument: Instrument::Mean,
        description: "The exact (brute-force) search of a recall run; count and sum only.",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "recall",
        metric: "probe.vector.recall",
        unit: Unit::Ratio,
        instrument: Instrument::Gauge,
        description: "Recall@k of the last recall run: approximate results that are in the exact top k (ties at the k-th distance count), over k.",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "result_count",
        metric: "probe.vector.result.count",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "Rows the last top-k search returned (fewer than k fails the run as short_result).",
        fixed: &[],
        labels: &[],
    },
];

const DEFAULT_K: u32 = 10;
const MAX_K: u32 = 1000;
const MAX_VECTORS_FILE: u64 = 64 * 1024 * 1024;

/// One search hit: an id and, where known, its distance (lower is closer).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub distance: Option<f64>,
}

/// Recall@k of `approx` against `exact` (both ordered closest first). An approximate hit
/// counts when the exact top k has its id, or when it is exactly as close as the k-th
/// exact hit (another valid top k). The denominator is k, or fewer when the exact search
/// itself has fewer rows (a filter).
pub fn recall(approx: &[Hit], exact: &[Hit], k: usize) -> Option<f64> {
    let exact = &exact[..exact.len().min(k)];
    if exact.is_empty() {
        return None;
    }
    let kth = exact.last().and_then(|h| h.distance);
    let hits = approx
        .iter()
        .take(k)
        .filter(|a| {
            exact.iter().any(|e| e.id == a.id)
                || matches!((a.distance, kth), (Some(d), Some(kd)) if d <= kd + kd.abs() * 1e-12)
        })
        .count();
    Some(hits as f64 / exact.len() as f64)
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

enum Engine {
    Pg(pgvector::PgSearch),
    Http(http::HttpSearch),
}

pub struct VectorProbe {
    engine: Engine,
}

impl Probe for VectorProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        match &self.engine {
            Engine::Pg(p) => Box::pin(p.run(rec)),
            Engine::Http(h) => Box::pin(h.run(rec)),
        }
    }
}

impl Settings for VectorSettings {
    fn plan(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match self.backend {
            Backend::Pgvector => {
                if let Some(d) = &self.dsn {
                    lines.push(format!("dsn: secret {} <redacted>", d.get_ref().as_str()));
                }
                lines.push(format!(
                    "search: {}.{} {} k={} filter={}",
                    self.table.as_ref().map_or("?", |t| t.get_ref()),
                    self.column.as_ref().map_or("?", |c| c.get_ref()),
                    self.distance.operator(),
                    self.k.as_ref().map_or(DEFAULT_K, |k| *k.get_ref()),
                    self.filter.as_ref().map_or("none", |f| f.get_ref()),
                ));
            }
            Backend::Http => {
                if let Some(u) = &self.url {
                    lines.extend(super::http_config::plan(u, &self.request));
                }
            }
        }
        lines.push(format!("recall every {} run(s)", self.recall_every.unwrap_or(10)));
        lines
    }

    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        let k = match &self.k {
            None => DEFAULT_K,
            Some(k) if (1..=MAX_K).contains(k.get_ref()) => *k.get_ref(),
            Some(k) => return Err(cfg.error_at(k, "probe.k", format!("k is between 1 and {MAX_K}"))),
        };
        let plan = Plan {
            k: k as usize,
            recall_every: u64::from(self.recall_every.unwrap_or(10)),
            runs: Default::default(),
        };
        let source = self.source(cfg)?;
        let engine = match self.backend {
            Backend::Pgvector => Engine::Pg(pgvector::PgSearch::build(self, cfg, ctx, plan, source)?),
            Backend::Http => Engine::Http(http::HttpSearch::build(self, cfg, ctx, plan, source)?),
        };
        Ok(Box::new(VectorProbe { engine }))
    }
}

impl VectorSettings {
    fn source(&self, cfg: &ProbeConfig) -> Result<Vectors, ConfigError> {
        let key = "probe.query_vectors";
        let source = match self.query_vectors.as_ref().map(|q| (q, q.get_ref().as_str())) {
            None if self.backend == Backend::Pgvector => Source::Sample,
            None => {
                return Err(cfg.source.error_at(
                    cfg.common.name.span(),
                    Some(key),
                    "an http vector probe needs query_vectors = \"random\" (with `dimension`) or \"file:PATH\"",
                ));
            }
            Some((q, "sample")) => {
                if self.backend != Backend::Pgvector {
                    return Err(cfg.error_at(q, key, "\"sample\" reads rows of the table: pgvector only"));
                }
                Source::Sample
            }
            Some((q, "random")) => {
                if self.backend == Backend::Http && self.dimension.is_none() {
                    return Err(cfg.error_at(q, key, "random vectors over http need `dimension`"));
                }
                Source::Random(self.dimension.map(|d| d as usize))
            }
            Some((q, s)) if s.starts_with("file:") => {
                let path = Spanned::new(q.span(), s["file:".len()..].to_string());
                let bytes = cfg.read_file(&path, key, MAX_VECTORS_FILE)?;
                let list: Vec<Vec<f32>> = serde_json::from_slice(&bytes)
                    .map_err(|e| cfg.error_at(q, key, format!("not a JSON array of vectors: {e}")))?;
                let dim = list.first().map_or(0, Vec::len);
                if list.is_empty()
                    || dim == 0
                    || list.iter().any(|v| v.len() != dim || v.iter().any(|x| !x.is_finite()))
                {
                    return Err(cfg.error_at(
                        q,
                        key,
                        "the file needs at least one vector, all of one dimension, finite numbers only",
                    ));
                }
                Source::List(list)
            }
            Some((q, _)) => {
                return Err(cfg.error_at(q, key, "query_vectors is \"sample\", \"random\" or \"file:PATH\""));
            }
        };
        Ok(Vectors::new(source))
    }
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
        let exact = [h("a", 0.1), h("b", 0.2), h("c", 0.3)];
        assert_eq!(recall(&[h("a", 0.1), h("b", 0.2), h("c", 0.3)], &exact, 3), Some(1.0));
        assert_eq!(
            recall(&[h("a", 0.1), h("x", 0.5), h("c", 0.3)], &exact, 3),
            Some(2.0 / 3.0)
        );
        // "d" is as close as the 3rd: another valid top 3.
        assert_eq!(recall(&[h("a", 0.1), h("b", 0.2), h("d", 0.3)], &exact, 3), Some(1.0));
        // A filter that leaves 2 rows: recall over 2.
        assert_eq!(recall(&[h("a", 0.1)], &exact[..2], 3), Some(0.5));
        assert_eq!(recall(&[], &[], 3), None);
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
