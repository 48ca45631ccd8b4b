//! The daemon's own HTTP endpoints (`/metrics`, `/healthz`, `/readyz`), and [`serve`], the
//! one accept loop every listener the daemon opens goes through: a connection cap, a
//! header-read timeout and an idle timeout, so slow or silent clients cannot pin file
//! descriptors that the probes need.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::Dur;
use crate::telemetry::Telemetry;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

// `[server]`: the daemon's own endpoints.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for /metrics, /healthz and /readyz (default 127.0.0.1:9464).
    #[serde(default = "default_listen")]
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// Open connections at most (default: a quarter of the open-files limit, ≤ 1024).
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers (default 5s).
    pub header_read_timeout: Option<Dur>,
    /// Close a connection with no traffic for this long (default 60s).
    pub idle_timeout: Option<Dur>,
    /// Accept `POST /-/reload` from any address (default: loopback only).
    #[serde(default)]
    pub remote_reload: bool,
    /// `/probe` runs in flight at most (default 16); more wait up to their timeout, then 503.
    pub probe_concurrency: Option<usize>,
    /// Serve HTTPS only, with this certificate (and client CA for mutual TLS).
    pub tls: Option<crate::web_security::TlsKeys>,
    /// user → bcrypt hash: every endpoint but /healthz and /-/healthy asks for one of them.
    #[serde(default)]
    pub basic_auth_users: std::collections::BTreeMap<String, crate::config::Spanned<String>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            max_connections: None,
            header_read_timeout: None,
            idle_timeout: None,
            remote_reload: false,
            probe_concurrency: None,
            tls: None,
            basic_auth_users: std::collections::BTreeMap::new(),
        }
    }
}

impl ServerConfig {
    pub fn limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            header_read_timeout: self.header_read_timeout.map_or(d.header_read_timeout, |t| t.0),
            idle_timeout: self.idle_timeout.map_or(d.idle_timeout, |t| t.0),
        }
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default")
}

/// Limits on one listener. Defaults: docs/config.md, `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; more wait in the kernel's accept queue, holding no fd here.
    pub max_connections: usize,
    /// Time a client has to send a request's complete headers (HTTP/1).
    pub header_read_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: default_max_connections(),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A quarter of the soft open-files limit, at most 1,024: the rest stays for probes.
pub fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and has no other effects.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur as usize
    } else {
        1024
    };
    (soft / 4).clamp(8, 1024)
}

/// Streams a listener serves: plain TCP or TLS over it.
trait ServerIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ServerIo for T {}

/// Paths a liveness check reaches without credentials (they say only "the process runs").
const OPEN_PATHS: &[&str] = &["/healthz", "/-/healthy"];

async fn basic_auth(
    axum::extract::State(security): axum::extract::State<crate::web_security::Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let current = security.read().expect("security lock").clone();
    let Some(auth) = &current.auth else {
        return next.run(req).await;
    };
    if OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // bcrypt is slow by design: off the async threads, and two at a time at most (others
    // queue, bounded by the connection cap), so a flood of wrong passwords costs at most
    // two threads of hashing, never the probes' CPU.
    static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let Ok(_slot) = CHECKS.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy\n").into_response();
    };
    let auth = auth.clone();
    let ok = tokio::task::spawn_blocking(move || auth.allows(given.as_deref()))
        .await
        .unwrap_or(false);
    if ok {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"sloprobe\"")],
            "unauthorized\n",
        )
            .into_response()
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes, with the TLS
/// and basic auth `security` holds when each connection is accepted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    security: crate::web_security::Shared,
    shutdown: impl Future<Output = ()>,
) {
    let router = router.layer(axum::middleware::from_fn_with_state(security.clone(), basic_auth));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let tcp = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = match tcp {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of fds or a reset before accept: back off instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // An IPv4 client of a `[::]` listener arrives as ::ffff:a.b.c.d: compared as IPv4
        // everywhere (loopback checks, trusted proxies, rate keys).
        let peer = canonical(peer);
        let service = TowerToHyperService::new(router.clone().layer(axum::Extension(Peer(peer))));
        let tls = security.read().expect("security lock").tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            // hyper's header timeout starts at the first byte: a client that sends nothing
            // would hold its slot until the idle timeout. It gets the header time from accept.
            let mut first = [0u8; 1];
            match tokio::time::timeout(limits.header_read_timeout, tcp.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let stream: Box<dyn ServerIo> = match tls {
                None => Box::new(tcp),
                // The handshake shares the header time: a client that stalls in it is cut too.
                Some(config) => {
                    let accept = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
                    match tokio::time::timeout(limits.header_read_timeout, accept).await {
                        Ok(Ok(tls)) => Box::new(tls),
                        _ => return,
                    }
                }
            };
            let (io, activity) = IdleIo::new(stream);
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder.http2().timer(TokioTimer::new()).max_concurrent_streams(64);
            // With upgrades: the demo target's /ws hands its connection to a WebSocket.
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            tokio::select! {
                _ = conn => {}
                () = activity.idle_for(limits.idle_timeout) => {}
            }
        });
    }
    connections.shutdown().await;
}

/// A peer as IPv4 when it is an IPv4-mapped IPv6 address.
pub fn canonical(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// Stream wrapper that notes the last time bytes moved.
struct IdleIo<S> {
    inner: S,
    activity: Activity,
}

#[derive(Clone)]
struct Activity {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Completes once no byte has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.base.elapsed().saturating_sub(last);
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

impl<S> IdleIo<S> {
    fn new(inner: S) -> (Self, Activity) {
        let activity = Activity {
            base: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        };
        (
            IdleIo {
                inner,
                activity: activity.clone(),
            },
            activity,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Where a reload's result goes: `POST /-/reload?wait=1` waits for it.
pub type ReloadReply = tokio::sync::oneshot::Sender<Result<String, String>>;

#[derive(Clone)]
pub struct AppState {
    /// Swapped on reload, when the probes (and so the instruments) change.
    pub telemetry: Arc<RwLock<Arc<Telemetry>>>,
    /// Set once every probe's schedule is running; cleared when shutting down.
    pub ready: Arc<AtomicBool>,
    /// `POST /-/reload` asks the daemon to reload, as SIGHUP does; with `?wait=1` the
    /// request carries where the result goes.
    pub reload: Option<tokio::sync::mpsc::Sender<Option<ReloadReply>>>,
    /// Accept `POST /-/reload` from any address, not only loopback.
    pub remote_reload: bool,
    /// `[[module]]`s for `/probe`, swapped on reload.
    pub multi: Arc<RwLock<Arc<crate::multi_target::MultiTarget>>>,
}

/// The client's address, attached to every request by [`serve`].
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        // The Prometheus ecosystem's names for the same two checks.
        .route("/-/healthy", get(|| async { "ok\n" }))
        .route("/-/ready", get(readyz))
        .route("/-/reload", axum::routing::post(reload))
        .route("/probe", get(probe))
        .with_state(state)
}

#[derive(serde::Deserialize)]
struct ProbeQuery {
    #[serde(default)]
    target: String,
    #[serde(default)]
    module: String,
}

/// blackbox_exporter's multi-target endpoint (src/multi_target.rs).
async fn probe(
    State(s): State<AppState>,
    query: Result<axum::extract::Query<ProbeQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Ok(axum::extract::Query(q)) = query else {
        return (StatusCode::BAD_REQUEST, "bad query string\n").into_response();
    };
    let scrape_timeout = headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let multi = s.multi.read().expect("modules lock").clone();
    match multi.probe(&q.target, &q.module, scrape_timeout).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            text,
        )
            .into_response(),
        Err(r) => (
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
            format!("{}\n", r.message),
        )
            .into_response(),
    }
}

/// The header a reload request must carry. A browser cannot send it cross-origin without
/// a CORS preflight, which this server never grants, so a page (even one the browser probe
/// loads on this host) cannot make the daemon reload.
pub const RELOAD_HEADER: &str = "x-sloprobe-reload";

#[derive(serde::Deserialize)]
struct ReloadQuery {
    #[serde(default)]
    wait: Option<String>,
}

/// How long `?wait=1` waits for a reload (validating and building a large config included).
const RELOAD_WAIT: Duration = Duration::from_secs(120);

async fn reload(
    State(s): State<AppState>,
    peer: Option<axum::Extension<Peer>>,
    query: Result<axum::extract::Query<ReloadQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Response {
    let wait = query.is_ok_and(|q| q.0.wait.is_some_and(|w| w != "0" && w != "false"));
    // Browsers send Origin (and Sec-Fetch-Site) on every cross-origin POST, no-cors
    // included; tools like curl and Prometheus's ecosystem send neither.
    if headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site") {
        return (StatusCode::FORBIDDEN, "reload is not accepted from a web page\n").into_response();
    }
    if !headers.contains_key(RELOAD_HEADER) {
        return (
            StatusCode::BAD_REQUEST,
            "send the header `X-Sloprobe-Reload: 1` (e.g. curl -X POST -H 'X-Sloprobe-Reload: 1' …)\n",
        )
            .into_response();
    }
    let from_loopback = peer.is_some_and(|p| p.0.0.ip().is_loopback());
    if !from_loopback && !s.remote_reload {
        return (
            StatusCode::FORBIDDEN,
            "reload is allowed from loopback only ([server] remote_reload)\n",
        )
            .into_response();
    }
    let Some(tx) = &s.reload else {
        return (StatusCode::NOT_FOUND, "no reload here\n").into_response();
    };
    if !wait {
        return match tx.try_send(None) {
            Ok(()) => (StatusCode::ACCEPTED, "reloading\n").into_response(),
            Err(_) => (StatusCode::TOO_MANY_REQUESTS, "a reload is already pending\n").into_response(),
        };
    }
    let (reply, result) = tokio::sync::oneshot::channel();
    if tx.try_send(Some(reply)).is_err() {
        return (StatusCode::TOO_MANY_REQUESTS, "a reload is already pending\n").into_response();
    }
    match tokio::time::timeout(RELOAD_WAIT, result).await {
        Ok(Ok(Ok(done))) => (StatusCode::OK, format!("{done}\n")).into_response(),
        Ok(Ok(Err(e))) => (
            StatusCode::CONFLICT,
            format!("reload failed, the running config stays: {e}\n"),
        )
            .into_response(),
        Ok(Err(_)) => (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response(),
        Err(_) => (StatusCode::GATEWAY_TIMEOUT, "the reload did not finish in time\n").into_response(),
    }
}

/// Scrapes encoded at once; more get 503 with Retry-After.
const ENCODERS: usize = 2;

const PROTOBUF: &str = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Collection and encoding are CPU work proportional to the series count. They run on
/// their own thread at a lower CPU priority, so on a busy host the probes' timers win the
/// CPU and a scrape does not make runs start late. The text exposition streams out in
/// chunks (gzipped when the scraper accepts it); a scraper that asks for protobuf (as
/// Prometheus does with native histograms on) gets the delimited `MetricFamily` format.
async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let accepts = |name: header::HeaderName, what: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(what))
    };
    let protobuf = accepts(header::ACCEPT, "application/vnd.google.protobuf");
    // Prometheus asks for OpenMetrics first by default: exemplars need it.
    let open_metrics = !protobuf && accepts(header::ACCEPT, "application/openmetrics-text");
    let gzip = accepts(header::ACCEPT_ENCODING, "gzip");
    // At most ENCODERS collections at once: each holds a copy of every series, and
    // scrapes over HTTP/2 streams could otherwise start a thread each without bound.
    static SLOTS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    let Ok(permit) = SLOTS
        .get_or_init(|| Arc::new(tokio::sync::Semaphore::new(ENCODERS)))
        .clone()
        .try_acquire_owned()
    else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many scrapes at once\n",
        )
            .into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let telemetry = s.telemetry.read().expect("telemetry lock").clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-encode".into())
        .spawn(move || {
            let _permit = permit;
            lower_thread_priority();
            let mut sink = Sink::new(tx, gzip);
            let result = if protobuf {
                telemetry.prometheus_protobuf().map(|bytes| sink.write(&bytes))
            } else if open_metrics {
                telemetry.openmetrics_text(&mut |chunk| sink.write(chunk.as_bytes()))
            } else {
                telemetry.prometheus_text(&mut |chunk| sink.write(chunk.as_bytes()))
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "collecting metrics");
            }
            sink.finish();
            crate::telemetry::process::give_back_freed_memory();
        });
    if let Err(e) = spawned {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("cannot start encoder: {e}\n")).into_response();
    }
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    let content_type = if protobuf {
        PROTOBUF
    } else if open_metrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    let mut resp = ([(header::CONTENT_TYPE, content_type)], Body::from_stream(body)).into_response();
    if gzip {
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, axum::http::HeaderValue::from_static("gzip"));
    }
    resp.headers_mut().insert(
        header::VARY,
        axum::http::HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    resp
}

/// Where the encoder writes: chunks to the response, through gzip when asked.
struct Sink {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl Sink {
    fn new(tx: tokio::sync::mpsc::Sender<Vec<u8>>, gzip: bool) -> Self {
        let gzip = gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        Sink { tx, gzip }
    }

    fn write(&mut self, bytes: &[u8]) {
        match self.gzip.as_mut() {
            Some(gz) => {
                let _ = std::io::Write::write_all(gz, bytes);
                if gz.get_ref().len() >= 64 * 1024 {
                    let out = std::mem::take(gz.get_mut());
                    let _ = self.tx.blocking_send(out);
                }
            }
            None => {
                let _ = self.tx.blocking_send(bytes.to_vec());
            }
        }
    }

    fn finish(self) {
        if let Some(gz) = self.gzip
            && let Ok(rest) = gz.finish()
            && !rest.is_empty()
        {
            let _ = self.tx.blocking_send(rest);
        }
    }
}

/// A small page naming the endpoints, as exporters serve at `/`; no script, nothing loaded.
async fn landing(State(s): State<AppState>) -> Response {
    let modules = s.multi.read().expect("modules lock").names();
    let probe = if modules.is_empty() {
        String::new()
    } else {
        format!(
            "<li><code>/probe?target=…&amp;module=…</code>: one run of a module ({})</li>",
            modules.join(", ")
        )
    };
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sloprobe</title></head><body>\
<h1>sloprobe {}</h1><ul>\
<li><a href=\"metrics\">/metrics</a>: every probe's series (Prometheus text, or protobuf when asked)</li>\
<li><a href=\"healthz\">/healthz</a> (<a href=\"-/healthy\">/-/healthy</a>): the process is alive</li>\
<li><a href=\"readyz\">/readyz</a> (<a href=\"-/ready\">/-/ready</a>): config loaded and every schedule running</li>\
{probe}</ul></body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        page,
    )
        .into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        // Still ready when the collector is down (probing goes on), but say so.
        match crate::telemetry::otlp::failing() {
            true => "ready\notlp: export failing\n".into_response(),
            false => "ready\n".into_response(),
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Linux keeps a nice value per thread; `PRIO_PROCESS` with 0 means the calling thread.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory-safety preconditions; failure is harmless.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_mapped_peers_are_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        assert!(!mapped.ip().is_loopback(), "std does not see through the mapping");
        let c = canonical(mapped);
        assert_eq!(c, "127.0.0.1:5000".parse().unwrap());
        assert!(c.ip().is_loopback());
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
