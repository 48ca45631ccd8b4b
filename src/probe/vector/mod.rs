//! `kind = "vector"`: top-k search latency, and recall measured continuously against an
//! exact search of the same query, on pgvector (`pgvector.rs`) or an HTTP vector API
//! (`http.rs`, with Qdrant and Chroma presets). A short result (fewer than k rows, as
//! filtered HNSW scans return) is measured and fails the run as `short_result`.

mod http;
mod pg_guard;
mod pgvector;
mod search;
mod settings;

use schemars::JsonSchema;

use super::kind::{BoxFuture, BuildContext, Kind, Probe, ProbeConfig, Settings};
use crate::config::ConfigError;
use crate::outcome::{Instrument, Measure, ProbeError, Recorder, Unit};

use search::Plan;
pub use search::{Hit, parse_vector_text, recall, vector_text};
pub use settings::{Backend, Distance, Preset, VectorSettings};
use settings::{DEFAULT_K, MAX_K};

pub const KIND: Kind = Kind {
    name: "vector",
    measures: MEASURES,
    settings: super::kind::settings_of::<VectorSettings>,
    schema: <VectorSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["query", "recall", "result_count"],
    median_gate: false,
    long_runs: false,
    target_key: None,
};

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
    super::kind::CERT_EXPIRY,
    phase!("auth"),
    Measure {
        key: "query",
        metric: "db.client.operation.duration",
        unit: Unit::Seconds,
        instrument: Instrument::Histogram,
        description: "The top-k search alone: statement sent → every row received (OpenTelemetry database semantic conventions).",
        fixed: &[],
        labels: &[
            "db.system.name",
            "db.operation.name",
            "db.collection.name",
            "db.namespace",
            "server.address",
            "server.port",
        ],
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
        let plan = Plan::new(k as usize, u64::from(self.recall_every.unwrap_or(10)));
        let source = self.source(cfg)?;
        let engine = match self.backend {
            Backend::Pgvector => Engine::Pg(pgvector::PgSearch::build(self, cfg, ctx, plan, source)?),
            Backend::Http => Engine::Http(http::HttpSearch::build(self, cfg, ctx, plan, source)?),
        };
        Ok(Box::new(VectorProbe { engine }))
    }
}
