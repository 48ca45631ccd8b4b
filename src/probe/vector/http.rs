//! The HTTP backend: a JSON POST built from a template (`{{vector}}`, `{{k}}`), ids read
//! at a JSON pointer, over the shared timed connection and HTTP exchange (dns, connect,
//! tls; `query` is request sent → whole answer read). Presets fill in Qdrant's
//! `points/query` (exact via `"params": {"exact": true}`) and Chroma's query API (which
//! has no exact mode: give `exact_body` for recall, or `recall_every = 0`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::BodyExt as _;
use serde_json::Value;

use super::search::{Hit, Plan, Vectors, judge};
use super::settings::{Preset, VectorSettings};
use crate::config::{ConfigError, Spanned};
use crate::net::Resolver;
use crate::net::http::{self as nethttp, BodySpec};
use crate::outcome::{ErrorType, ProbeError, Recorder};
use crate::probe::http_config::{self, HttpVersion, TargetKeys};
use crate::probe::kind::{BuildContext, ProbeConfig};

/// The largest answer read (a top-1000 with payloads stays well under it).
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// JSON values (numbers, strings, arrays, ...) in an answer that is parsed: k = 1,000 hits
/// with 250 values each.
const MAX_VALUES: usize = 262_144;

pub struct HttpSearch {
    url: url::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    tls: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
    resolver: Resolver,
    body: String,
    exact_body: Option<String>,
    ids_pointer: String,
    id_field: Option<String>,
    score_field: Option<String>,
    scores_pointer: Option<String>,
    higher_is_closer: bool,
    system: &'static str,
    collection: String,
    plan: Plan,
    vectors: Vectors,
    dimension: Option<usize>,
}

impl HttpSearch {
    pub fn build(
        raw: &VectorSettings,
        cfg: &ProbeConfig,
        ctx: &BuildContext,
        plan: Plan,
        vectors: Vectors,
    ) -> Result<HttpSearch, ConfigError> {
        let Some(url) = &raw.url else {
            return Err(cfg.source.error_at(
                cfg.common.name.span(),
                Some("probe.url"),
                "an http vector probe needs `url`",
            ));
        };
        for (key, set) in [
            ("probe.dsn", raw.dsn.as_ref().map(|d| d.span())),
            ("probe.table", raw.table.as_ref().map(|d| d.span())),
            ("probe.column", raw.column.as_ref().map(|d| d.span())),
            ("probe.filter", raw.filter.as_ref().map(|d| d.span())),
            ("probe.request.method", raw.request.method.as_ref().map(|d| d.span())),
            ("probe.request.body", raw.request.body.as_ref().map(|d| d.span())),
            (
                "probe.request.body_file",
                raw.request.body_file.as_ref().map(|d| d.span()),
            ),
            (
                "probe.request.body_size",
                raw.request.body_size.as_ref().map(|d| d.span()),
            ),
        ] {
            if let Some(span) = set {
                return Err(cfg.source.error_at(
                    span,
                    Some(key),
                    "not a key of backend = \"http\" (the body is `body`, a POST; pgvector keys need backend = \"pgvector\")",
                ));
            }
        }
        let t = http_config::target(
            cfg,
            ctx,
            &TargetKeys {
                kind: "vector",
                url,
                http_version: HttpVersion::Auto,
                request: &raw.request,
                status: None,
                header_present: &[],
                tls: &raw.tls,
            },
        )?;
        let preset = raw.preset.as_ref().map(|p| *p.get_ref());
        let (body, exact, pointer, id_field, score_field, scores_pointer, higher) = match preset {
            Some(Preset::Qdrant) => (
                r#"{"query": {{vector}}, "limit": {{k}}, "with_payload": false}"#,
                Some(r#"{"query": {{vector}}, "limit": {{k}}, "with_payload": false, "params": {"exact": true}}"#),
                "/result/points",
                Some("id"),
                Some("score"),
                None,
                true,
            ),
            Some(Preset::Chroma) => (
                r#"{"query_embeddings": [{{vector}}], "n_results": {{k}}, "include": ["distances"]}"#,
                None,
                "/ids/0",
                None,
                None,
                Some("/distances/0"),
                false,
            ),
            None => ("", None, "", None, None, None, false),
        };
        let body = raw.body.as_ref().map_or(body.to_string(), |b| b.get_ref().clone());
        let exact_body = raw
            .exact_body
            .as_ref()
            .map(|b| b.get_ref().clone())
            .or(exact.map(str::to_string));
        let ids_pointer = raw
            .ids_pointer
            .as_ref()
            .map_or(pointer.to_string(), |p| p.get_ref().clone());
        let check_template = |text: &str, at: Option<&Spanned<String>>, key: &str| -> Result<(), ConfigError> {
            let filled = text.replace("{{vector}}", "[0.5]").replace("{{k}}", "1");
            let err = |msg: String| match at {
                Some(at) => cfg.error_at(at, key, msg),
                None => cfg.source.error_at(cfg.common.name.span(), Some(key), msg),
            };
            if !text.contains("{{vector}}") {
                return Err(err(format!(
                    "`{}` needs {{{{vector}}}} where the query vector goes",
                    &key[6..]
                )));
            }
            serde_json::from_str::<Value>(&filled)
                .map(|_| ())
                .map_err(|e| err(format!("not JSON once {{{{vector}}}} and {{{{k}}}} are filled in: {e}")))
        };
        if body.is_empty() {
            return Err(cfg.source.error_at(
                cfg.common.name.span(),
                Some("probe.body"),
                "an http vector probe needs `body` (or preset = \"qdrant\" / \"chroma\")",
            ));
        }
        check_template(&body, raw.body.as_ref(), "probe.body")?;
        if let Some(e) = &exact_body {
            check_template(e, raw.exact_body.as_ref(), "probe.exact_body")?;
        } else if plan.recall_every > 0 {
            return Err(cfg.source.error_at(
                cfg.common.name.span(),
                Some("probe.exact_body"),
                "recall needs an exact search: give `exact_body`, or set recall_every = 0",
            ));
        }
        if !(ids_pointer.is_empty() || ids_pointer.starts_with('/')) {
            let at = raw.ids_pointer.as_ref().expect("set when not from a preset");
            return Err(cfg.error_at(at, "probe.ids_pointer", "a JSON pointer starts with '/'"));
        }
        let collection = t
            .url
            .path_segments()
            .and_then(|mut s| {
                s.by_ref().find(|p| *p == "collections")?;
                s.next().map(str::to_string)
            })
            .unwrap_or_else(|| "unknown".to_string());
        let mut headers = t.headers;
        headers.push((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        Ok(HttpSearch {
            url: t.url,
            headers,
            tls: t.tls,
            server_name: t.server_name,
            resolver: ctx.resolver.clone(),
            body,
            exact_body,
            ids_pointer,
            id_field: raw.id_field.clone().or(id_field.map(str::to_string)),
            score_field: raw.score_field.clone().or(score_field.map(str::to_string)),
            scores_pointer: scores_pointer.map(str::to_string),
            higher_is_closer: raw.higher_is_closer.unwrap_or(higher),
            system: match preset {
                Some(Preset::Qdrant) => "qdrant",
                Some(Preset::Chroma) => "chromadb",
                None => "other",
            },
            collection,
            plan,
            vectors,
            dimension: raw.dimension.as_ref().map(|d| *d.get_ref() as usize),
        })
    }

    pub async fn run(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        rec.label("db.system.name", self.system);
        rec.label("db.operation.name", "search");
        rec.label("db.collection.name", self.collection.clone());
        rec.label("server.address", self.url.host_str().unwrap_or_default());
        rec.label("server.port", i64::from(self.url.port_or_known_default().unwrap_or(0)));
        let vector = self
            .vectors
            .take(self.dimension)
            .ok_or_else(|| ProbeError::new(ErrorType::Internal, "no query vector"))?;
        let literal = super::search::vector_text(&vector);
        let fill = |t: &str, k: usize| t.replace("{{vector}}", &literal).replace("{{k}}", &k.to_string());
        let mut conn = self.open(rec).await?;
        let t = Instant::now();
        let answer = self.post(rec, &mut conn, fill(&self.body, self.plan.k)).await?;
        rec.set("query", t.elapsed().as_secs_f64());
        let approx = self.hits(&answer, self.plan.k)?;
        let exact = match &self.exact_body {
            Some(body) if self.plan.recall_now() => {
                if !conn.is_ready() {
                    // The exact search's own connection phases are not the run's.
                    conn = self.open(&mut rec.child(Instant::now())).await?;
                }
                let t = Instant::now();
                // Past k, the rows tied with the k-th (super::search::recall).
                let limit = self.plan.k + super::search::TIES;
                let answer = self.post(&mut rec.child(t), &mut conn, fill(body, limit)).await?;
                rec.set("exact_query", t.elapsed().as_secs_f64());
                Some(self.hits(&answer, limit)?)
            }
            _ => None,
        };
        judge(rec, &self.plan, &approx, exact.as_deref())
    }

    async fn open(&self, rec: &mut Recorder) -> Result<nethttp::HttpConn, ProbeError> {
        nethttp::open(
            &self.resolver,
            rec,
            &self.url,
            &self.tls,
            self.server_name.as_deref(),
            nethttp::Version::Auto,
        )
        .await
    }

    async fn post(&self, rec: &mut Recorder, conn: &mut nethttp::HttpConn, body: String) -> Result<Value, ProbeError> {
        let req = nethttp::build_request(
            &self.url,
            &http::Method::POST,
            &self.headers,
            &BodySpec::Bytes(Bytes::from(body)),
            conn.is_h2(),
            true,
        )?;
        let (resp, _) = conn.exchange(rec, req).await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            rec.label("http.response.status_code", i64::from(status));
            return Err(nethttp::status_error(rec, status, resp.headers()));
        }
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| {
                let kind = if e.to_string().contains("length limit") {
                    ErrorType::BodyTooLarge
                } else {
                    ErrorType::ConnectionClosed
                };
                ProbeError::new(kind, format!("reading the answer: {e}"))
            })?
            .to_bytes();
        crate::probe::json::parse_capped(bytes, MAX_VALUES, "the answer", ErrorType::ProtocolError).await
    }

    /// The answer's hits; more than the `limit` asked for is a protocol error.
    fn hits(&self, answer: &Value, limit: usize) -> Result<Vec<Hit>, ProbeError> {
        let list = answer
            .pointer(&self.ids_pointer)
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ProbeError::new(
                    ErrorType::ProtocolError,
                    format!("no result list at {} in the answer", self.ids_pointer),
                )
            })?;
        if list.len() > limit {
            return Err(ProbeError::new(
                ErrorType::ProtocolError,
                format!("the answer holds {} results; {limit} were asked for", list.len()),
            ));
        }
        let scores = self
            .scores_pointer
            .as_deref()
            .and_then(|p| answer.pointer(p))
            .and_then(Value::as_array);
        // Strings and integers are ids; anything else (null, objects, floats) is none.
        let id_text = |v: &Value| match v {
            Value::String(s) => s.chars().take(256).collect(),
            Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => String::new(),
        };
        let closeness = |score: Option<f64>| score.map(|s| if self.higher_is_closer { -s } else { s });
        Ok(list
            .iter()
            .enumerate()
            .map(|(i, item)| match &self.id_field {
                Some(field) => Hit {
                    id: item.get(field).map(id_text).unwrap_or_default(),
                    distance: closeness(
                        self.score_field
                            .as_deref()
                            .and_then(|f| item.get(f))
                            .and_then(Value::as_f64),
                    ),
                },
                None => Hit {
                    id: id_text(item),
                    distance: closeness(scores.and_then(|s| s.get(i)).and_then(Value::as_f64)),
                },
            })
            .collect())
    }
}
