//! The keys of `kind = "vector"` (besides the shared ones), and where query vectors come
//! from.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::search::{Source, Vectors};
use crate::config::{ConfigError, SecretText, Spanned};
use crate::probe::http_config::{Request, Tls};
use crate::probe::kind::ProbeConfig;

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
    /// http: the vector dimension, for `query_vectors = "random"` (at most 16000,
    /// pgvector's own limit).
    pub dimension: Option<Spanned<u32>>,
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

pub const DEFAULT_K: u32 = 10;

pub const MAX_K: u32 = 1000;

const MAX_VECTORS_FILE: u64 = 16 * 1024 * 1024;

/// The largest vector dimension a probe builds or accepts from a server: pgvector's own
/// limit for `vector`. A query vector costs at most 64 KB, never what a target says.
pub const MAX_DIMENSION: usize = 16_000;

/// Numbers in a `query_vectors` file at most (8 MB as f32).
const MAX_FILE_NUMBERS: usize = 2_000_000;

impl VectorSettings {
    pub fn source(&self, cfg: &ProbeConfig) -> Result<Vectors, ConfigError> {
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
                if let Some(d) = &self.dimension
                    && (*d.get_ref() == 0 || *d.get_ref() as usize > MAX_DIMENSION)
                {
                    return Err(cfg.error_at(
                        d,
                        "probe.dimension",
                        format!("dimension {} is not within 1..={MAX_DIMENSION}", d.get_ref()),
                    ));
                }
                Source::Random(self.dimension.as_ref().map(|d| *d.get_ref() as usize))
            }
            Some((q, s)) if s.starts_with("file:") => {
                let path = Spanned::new(q.span(), s["file:".len()..].to_string());
                let bytes = cfg.read_file(&path, key, MAX_VECTORS_FILE)?;
                let list: Vec<Vec<f32>> = serde_json::from_slice(&bytes)
                    .map_err(|e| cfg.error_at(q, key, format!("not a JSON array of vectors: {e}")))?;
                let dim = list.first().map_or(0, Vec::len);
                if list.is_empty()
                    || dim == 0
                    || dim > MAX_DIMENSION
                    || list.len().saturating_mul(dim) > MAX_FILE_NUMBERS
                    || list.iter().any(|v| v.len() != dim || v.iter().any(|x| !x.is_finite()))
                {
                    return Err(cfg.error_at(
                        q,
                        key,
                        format!("the file needs at least one vector, all of one dimension (at most {MAX_DIMENSION}), finite numbers only, {MAX_FILE_NUMBERS} numbers in all at most"),
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
