//! The pgvector backend. DNS and TCP come from the shared timed connection; TLS is
//! PostgreSQL's in-band SSLRequest (8 bytes, then one byte of answer), written here so the
//! handshake is timed on its own, then rustls over the shared TLS path; tokio-postgres
//! does the startup and authentication (`auth`) on that stream, and the queries.
//!
//! Each run is one transaction: `SET LOCAL` the configured settings and a
//! `statement_timeout` that ends before the probe's timeout (the server cancels the
//! query itself), then the top-k statement alone as `query`. A recall run turns index
//! scans off and runs the same statement exactly. If the run is cut off mid-query
//! anyway, a cancel request goes to the server, so nothing is left running there.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{CancelToken, NoTls, SimpleQueryMessage, SimpleQueryRow};

use super::pg_guard::{Guarded, Verdict};
use super::search::{Hit, Plan, Vectors, judge, quote_ident, vector_text};
use super::settings::VectorSettings;
use crate::config::ConfigError;
use crate::net::{self, Endpoint, Resolver, Stream};
use crate::outcome::{ErrorType, ProbeError, Recorder};
use crate::probe::kind::{BuildContext, ProbeConfig};

/// PostgreSQL's SSLRequest: length 8, request code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
/// Vectors sampled from the table at a time, used in turn.
const SAMPLE: usize = 64;

pub struct PgSearch {
    /// Startup parameters and credentials; TLS is done before tokio-postgres sees the stream.
    config: tokio_postgres::Config,
    host: String,
    port: u16,
    ssl: SslMode,
    tls: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
    resolver: Resolver,
    /// Scrubbed from any text the server sends back.
    password: Option<String>,
    table: String,
    table_label: String,
    column: String,
    search: String,
    settings: Vec<(String, String)>,
    plan: Plan,
    vectors: Vectors,
    dimension: std::sync::Mutex<Option<usize>>,
    timeout: Duration,
}

impl PgSearch {
    pub fn build(
        raw: &VectorSettings,
        cfg: &ProbeConfig,
        ctx: &BuildContext,
        plan: Plan,
        vectors: Vectors,
    ) -> Result<PgSearch, ConfigError> {
        let need = |v: Option<&crate::config::Spanned<String>>, key: &str| {
            v.map(|s| s.get_ref().clone()).ok_or_else(|| {
                cfg.source.error_at(
                    cfg.common.name.span(),
                    Some(key),
                    format!("a pgvector probe needs `{}`", &key[6..]),
                )
            })
        };
        let Some(dsn_ref) = &raw.dsn else {
            return Err(cfg.source.error_at(
                cfg.common.name.span(),
                Some("probe.dsn"),
                "a pgvector probe needs `dsn`",
            ));
        };
        let dsn = cfg.secret(dsn_ref, "probe.dsn")?;
        // tokio-postgres knows disable/prefer/require; the TLS here always verifies the
        // certificate and the host name, which is libpq's verify-full.
        let mut text = dsn.expose().to_string();
        let mut verify_asked = false;
        for strict in ["sslmode=verify-full", "sslmode=verify-ca"] {
            if text.contains(strict) {
                text = text.replace(strict, "sslmode=require");
                verify_asked = true;
            }
        }
        if verify_asked && raw.tls.insecure_skip_verify {
            return Err(cfg.error_at(
                dsn_ref,
                "probe.dsn",
                "sslmode=verify-full (or verify-ca) contradicts tls.insecure_skip_verify",
            ));
        }
        // The parser's messages can quote the string; never echo a DSN.
        let mut config = tokio_postgres::Config::from_str(&text).map_err(|_| {
            cfg.error_at(
                dsn_ref,
                "probe.dsn",
                "not a valid postgres:// URL or key=value connection string",
            )
        })?;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(_) => {
                return Err(cfg.error_at(dsn_ref, "probe.dsn", "Unix sockets are not supported: give a TCP host"));
            }
            None => {
                return Err(cfg.error_at(
                    dsn_ref,
                    "probe.dsn",
                    "the DSN names no host: give one (postgres://user@host:5432/db or host=...)",
                ));
            }
        };
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .filter(|p| !p.is_empty());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let ssl = config.get_ssl_mode();
        config.ssl_mode(SslMode::Disable);
        config.application_name("sloprobe");
        let table_raw = need(raw.table.as_ref(), "probe.table")?;
        let column_raw = need(raw.column.as_ref(), "probe.column")?;
        let ident = |s: &str, at: Option<&crate::config::Spanned<String>>, key: &str| {
            quote_ident(s).ok_or_else(|| {
                let msg = format!("{s:?} is not a plain SQL identifier (letters, digits, _; schema.table allowed)");
                match at {
                    Some(at) => cfg.error_at(at, key, msg),
                    None => cfg.source.error_at(cfg.common.name.span(), Some(key), msg),
                }
            })
        };
        let table = ident(&table_raw, raw.table.as_ref(), "probe.table")?;
        let column = ident(&column_raw, raw.column.as_ref(), "probe.column")?;
        let id = raw.id_column.as_ref().map_or("id".to_string(), |c| c.get_ref().clone());
        let id = ident(&id, raw.id_column.as_ref(), "probe.id_column")?;
        let filter = match &raw.filter {
            Some(f) => {
                let text = f.get_ref();
                if text.contains(';') || text.contains("--") || text.contains("/*") || text.trim().is_empty() {
                    return Err(cfg.error_at(f, "probe.filter", "filter is one SQL condition: no `;`, no comments"));
                }
                format!(" AND ({text})")
            }
            None => String::new(),
        };
        let mut settings = Vec::new();
        for (name, value) in &raw.settings {
            let ok = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
            if !ok {
                return Err(cfg.error_at(value, "probe.settings", format!("{name:?} is not a setting name")));
            }
            settings.push((name.clone(), value.get_ref().replace('\'', "''")));
        }
        let op = raw.distance.operator();
        let search = format!(
            // NULL vectors have no distance: they are no neighbours (and cannot fill a top k).
            "SELECT {id}::text, ({column} {op} '{{v}}')::float8 FROM {table} WHERE {column} IS NOT NULL{filter} ORDER BY {column} {op} '{{v}}' LIMIT {{limit}}"
        );
        let server_name = raw.tls.server_name.as_ref().map(|s| s.get_ref().clone());
        let ca = raw.tls.ca_file.as_ref().map(|f| cfg.path(f.get_ref()));
        let tls = ctx
            .tls_config(ca.as_deref(), raw.tls.insecure_skip_verify, &[])
            .map_err(|e| cfg.source.error_at(cfg.common.name.span(), Some("probe.tls"), e))?;
        Ok(PgSearch {
            config,
            host,
            port,
            ssl,
            tls,
            server_name,
            resolver: ctx.resolver.clone(),
            password,
            table_label: table_raw,
            table,
            column,
            search,
            settings,
            plan,
            vectors,
            dimension: std::sync::Mutex::new(None),
            timeout: cfg.timeout,
        })
    }

    pub async fn run(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        rec.label("db.system.name", "postgresql");
        rec.label("db.operation.name", "SELECT");
        rec.label("db.collection.name", self.table_label.clone());
        if let Some(db) = self.config.get_dbname() {
            rec.label("db.namespace", db.to_string());
        }
        rec.label("server.address", self.host.clone());
        rec.label("server.port", i64::from(self.port));
        let ep = Endpoint {
            host: &self.host,
            port: self.port,
            tls: None,
            server_name: None,
        };
        let connected = net::connect(&self.resolver, rec, &ep).await?;
        let Stream::Plain(tcp) = connected.io.into_inner() else {
            return Err(ProbeError::new(ErrorType::Internal, "expected a plain TCP stream"));
        };
        let stream = self.negotiate_tls(rec, tcp).await?;
        let encrypted = matches!(stream, Stream::Tls(_));
        let verdict = Verdict::default();
        rec.enter("auth");
        let t = Instant::now();
        let (client, connection) = self
            .config
            .connect_raw(Guarded::new(stream, encrypted, verdict.clone()), NoTls)
            .await
            .map_err(|e| self.classify(&e, "connecting", &verdict))?;
        rec.set("auth", t.elapsed().as_secs_f64());
        let _connection = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let mut in_flight = Cancel {
            token: Some(client.cancel_token()),
            host: self.host.clone(),
            port: self.port,
        };
        let db = Db { client, verdict };
        let result = self.search(rec, &db).await;
        in_flight.token = None;
        result
    }

    /// SSLRequest and, when the server agrees, TLS over the shared path.
    async fn negotiate_tls(&self, rec: &mut Recorder, mut tcp: tokio::net::TcpStream) -> Result<Stream, ProbeError> {
        if self.ssl == SslMode::Disable {
            return Ok(Stream::Plain(tcp));
        }
        rec.enter(net::PHASE_TLS);
        let t = Instant::now();
        let mut answer = [0u8; 1];
        let asked = async {
            tcp.write_all(&SSL_REQUEST).await?;
            tcp.read_exact(&mut answer).await
        };
        asked
            .await
            .map_err(|e| ProbeError::new(ErrorType::ConnectionClosed, format!("asking for TLS: {e}")))?;
        match answer[0] {
            b'S' => {
                let name = self.server_name.as_deref().unwrap_or(&self.host).to_string();
                let (stream, _) = net::start_tls(rec, tcp, &self.tls, &name).await?;
                // start_tls timed the handshake; the SSLRequest round trip belongs to it too.
                rec.set(net::PHASE_TLS, t.elapsed().as_secs_f64());
                Ok(stream)
            }
            b'N' if self.ssl != SslMode::Require => Ok(Stream::Plain(tcp)),
            b'N' => Err(ProbeError::new(
                ErrorType::TlsHandshake,
                "the server does not offer TLS and the DSN says sslmode=require",
            )),
            other => Err(ProbeError::new(
                ErrorType::ProtocolError,
                format!("unexpected answer {other:#04x} to SSLRequest: not a PostgreSQL server?"),
            )),
        }
    }

    async fn search(&self, rec: &mut Recorder, db: &Db) -> Result<(), ProbeError> {
        rec.enter("prepare");
        let vector = self.query_vector(db).await?;
        let literal = vector_text(&vector);
        let left = self
            .timeout
            .saturating_sub(Duration::from_secs_f64(rec.offset(Instant::now())));
        // The server gives up just before the probe does, and cancels the query itself:
        // 200 ms before, or a fifth of what is left when that is less (a 150 ms probe).
        let statement_timeout = left
            .saturating_sub(Duration::from_millis(200).min(left / 5))
            .max(Duration::from_millis(1));
        let mut setup = format!(
            "BEGIN; SET LOCAL statement_timeout = {};",
            statement_timeout.as_millis()
        );
        for (name, value) in &self.settings {
            setup.push_str(&format!(" SET LOCAL {name} = '{value}';"));
        }
        db.client
            .batch_execute(&setup)
            .await
            .map_err(|e| self.classify(&e, "setting up the transaction", &db.verdict))?;
        let sql = self.search.replace("{v}", &literal);
        let k = self.plan.k;
        rec.enter("query");
        let t = Instant::now();
        let approx = self
            .hits(db, &sql.replace("{limit}", &k.to_string()), k, "top-k query")
            .await?;
        rec.set("query", t.elapsed().as_secs_f64());
        let exact = if self.plan.recall_now() {
            rec.enter("exact_query");
            db.client
                .batch_execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off; SET LOCAL enable_bitmapscan = off;")
                .await
                .map_err(|e| self.classify(&e, "exact query", &db.verdict))?;
            let t = Instant::now();
            // Past k, the rows tied with the k-th (super::search::recall).
            let limit = k + super::search::TIES;
            let exact = self
                .hits(db, &sql.replace("{limit}", &limit.to_string()), limit, "exact query")
                .await?;
            rec.set("exact_query", t.elapsed().as_secs_f64());
            Some(exact)
        } else {
            None
        };
        let _ = db.client.batch_execute("ROLLBACK").await;
        judge(rec, &self.plan, &approx, exact.as_deref())
    }

    /// The next query vector; sampled rows are fetched (untimed) when the supply runs out.
    async fn query_vector(&self, db: &Db) -> Result<Vec<f32>, ProbeError> {
        if self.vectors.is_sample() {
            if let Some(v) = self.vectors.take(None) {
                return Ok(v);
            }
            let rows = self.sample(db).await?;
            if rows.is_empty() {
                return Err(ProbeError::new(
                    ErrorType::NoContent,
                    format!("{} has no vectors to sample", self.table_label),
                ));
            }
            self.vectors.refill(rows);
            return self
                .vectors
                .take(None)
                .ok_or_else(|| ProbeError::new(ErrorType::Internal, "no sampled vector"));
        }
        let mut dim = self
            .vectors
            .fixed_dimension()
            .or(*self.dimension.lock().expect("dimension"));
        if dim.is_none() && self.vectors.is_random() {
            // Random vectors need the column's dimension, asked once.
            let sql = format!("SELECT vector_dims({}) FROM {} LIMIT 1", self.column, self.table);
            let d = self
                .rows(db, &sql, 1, "reading the dimension", |r| {
                    Ok(cell(r, 0)?.parse::<usize>().ok())
                })
                .await?
                .into_iter()
                .flatten()
                .next();
            // The server's word is capped before a vector of that size is built.
            if let Some(n) = d.filter(|n| *n > super::settings::MAX_DIMENSION) {
                return Err(ProbeError::new(
                    ErrorType::ProtocolError,
                    format!(
                        "the column's dimension {n} is beyond pgvector's limit of {}",
                        super::settings::MAX_DIMENSION
                    ),
                ));
            }
            *self.dimension.lock().expect("dimension") = d;
            dim = d;
        }
        self.vectors
            .take(dim)
            .ok_or_else(|| ProbeError::new(ErrorType::NoContent, format!("{} has no vectors", self.table_label)))
    }

    async fn sample(&self, db: &Db) -> Result<Vec<Vec<f32>>, ProbeError> {
        let vector = |r: &SimpleQueryRow| Ok(super::search::parse_vector_text(cell(r, 0)?));
        // A Bernoulli sample sized to give ~4×SAMPLE rows: spread over the table, not
        // its first pages. Small or never-analyzed tables are read from the start.
        let sampled = format!(
            "SELECT {c}::text FROM {t} TABLESAMPLE BERNOULLI ((SELECT least(100, greatest(0.001, {n} * 100.0 / greatest(reltuples, 1))) FROM pg_class WHERE oid = '{t}'::regclass)) LIMIT {s}",
            c = self.column,
            t = self.table.replace('\'', "''"),
            n = SAMPLE * 4,
            s = SAMPLE
        );
        let mut vectors: Vec<Vec<f32>> = self
            .rows(db, &sampled, SAMPLE, "sampling query vectors", vector)
            .await?
            .into_iter()
            .flatten()
            .collect();
        if vectors.len() < SAMPLE / 4 {
            let plain = format!("SELECT {}::text FROM {} LIMIT {SAMPLE}", self.column, self.table);
            vectors = self
                .rows(db, &plain, SAMPLE, "sampling query vectors", vector)
                .await?
                .into_iter()
                .flatten()
                .collect();
        }
        Ok(vectors)
    }

    /// The hits of a top-k statement: (id, distance) rows.
    async fn hits(&self, db: &Db, sql: &str, limit: usize, during: &str) -> Result<Vec<Hit>, ProbeError> {
        self.rows(db, sql, limit, during, |r| {
            Ok(Hit {
                id: cell(r, 0)?.chars().take(MAX_ID).collect(),
                distance: cell(r, 1)?.parse::<f64>().ok(),
            })
        })
        .await
    }

    /// Runs `sql` and reads its rows through `read`, at most `limit` of them: a server that
    /// sends more than the statement's LIMIT is not PostgreSQL as asked, and is never read
    /// further. Rows are read as they arrive (one message at a time, each capped by the
    /// guard), never gathered first.
    async fn rows<T>(
        &self,
        db: &Db,
        sql: &str,
        limit: usize,
        during: &str,
        read: impl Fn(&SimpleQueryRow) -> Result<T, String>,
    ) -> Result<Vec<T>, ProbeError> {
        use futures_util::StreamExt as _;
        let stream = db
            .client
            .simple_query_raw(sql)
            .await
            .map_err(|e| self.classify(&e, during, &db.verdict))?;
        futures_util::pin_mut!(stream);
        let mut out = Vec::with_capacity(limit.min(1024));
        while let Some(m) = stream.next().await {
            if let SimpleQueryMessage::Row(r) = m.map_err(|e| self.classify(&e, during, &db.verdict))? {
                if out.len() == limit {
                    return Err(ProbeError::new(
                        ErrorType::ProtocolError,
                        format!("{during}: the server sent more than the {limit} rows asked for"),
                    ));
                }
                out.push(read(&r).map_err(|e| ProbeError::new(ErrorType::ProtocolError, format!("{during}: {e}")))?);
            }
        }
        Ok(out)
    }

    /// The error for `e`, with the DSN's password scrubbed from the server's text before
    /// it is cut to length (so no part of it survives a cut).
    fn classify(&self, e: &tokio_postgres::Error, during: &str, verdict: &Verdict) -> ProbeError {
        let scrub = |text: String| match &self.password {
            Some(p) if p.len() >= 4 => text.replace(p.as_str(), "<redacted>"),
            _ => text,
        };
        // The guard's verdict, whether the error came from it or from the connection it
        // ended ("closed").
        if let Some((kind, text)) = verdict.lock().expect("verdict").clone() {
            return ProbeError::new(kind, format!("{during}: {text}"));
        }
        let (kind, text) = classify(e, during);
        ProbeError::new(kind, scrub(text))
    }
}

/// Column `i` of a row as text; a row without it is the server's error (tokio-postgres's
/// `get` would panic).
fn cell(r: &SimpleQueryRow, i: usize) -> Result<&str, String> {
    match r.try_get(i) {
        Ok(v) => Ok(v.unwrap_or_default()),
        Err(_) => Err(format!("a row of {} column(s) where {} were expected", r.len(), i + 1)),
    }
}

/// An id longer than this is cut (ids are compared, never stored long).
const MAX_ID: usize = 256;

fn classify(e: &tokio_postgres::Error, during: &str) -> (ErrorType, String) {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let kind = match code {
            "28P01" | "28000" => ErrorType::AuthFailed,
            "57014" => ErrorType::Timeout,
            "57P01" | "57P02" | "57P03" => ErrorType::ConnectionClosed,
            _ => ErrorType::QueryError,
        };
        return (kind, format!("{during}: {} (SQLSTATE {code})", db.message()));
    }
    if e.is_closed() {
        return (
            ErrorType::ConnectionClosed,
            format!("{during}: the server closed the connection"),
        );
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    let kind = match io.map(std::io::Error::kind) {
        Some(
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe,
        ) => ErrorType::ConnectionClosed,
        _ => ErrorType::ProtocolError,
    };
    (kind, format!("{during}: {e}"))
}

/// A run's connection: the client, and what the guard under it refused, if anything.
struct Db {
    client: tokio_postgres::Client,
    verdict: Verdict,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// While armed, dropping it (the run cut off mid-query) asks the server to cancel the
/// query, on a connection of its own, as `pg_cancel_backend` would.
struct Cancel {
    token: Option<CancelToken>,
    host: String,
    port: u16,
}

impl Drop for Cancel {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let addr = format!("{}:{}", self.host, self.port);
        rt.spawn(async move {
            let cancel = async {
                let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
                token.cancel_query_raw(tcp, NoTls).await.ok()
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), cancel).await;
        });
    }
}
