//! OTLP push of the same instruments the `/metrics` endpoint serves, driven here instead
//! of by the SDK's periodic reader: each interval, one collection from the reader that
//! `/metrics` uses, cut into requests of about 256 KiB, each sent and freed before the next
//! is built (`otlp_encode`). No second aggregation, no second copy of the collection;
//! series of probes a reload removed are left out, as on `/metrics`.
//!
//! A collector that is down, slow or refusing costs one bounded log line a minute, never
//! memory: a failed export is dropped (the next carries cumulative state again) and
//! nothing queues up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use prost::Message as _;

use super::config::{OtlpProtocol, OtlpSettings};
use super::names::Live;
use super::otlp_encode;

const LOG_EVERY: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

static EXPORTS_OK: AtomicU64 = AtomicU64::new(0);
static EXPORTS_FAILED: AtomicU64 = AtomicU64::new(0);
static EXPORT_MICROS: AtomicU64 = AtomicU64::new(0);
static LAST_FAILED: AtomicBool = AtomicBool::new(false);

/// Whether the last OTLP export failed (for /readyz).
pub fn failing() -> bool {
    LAST_FAILED.load(Ordering::Relaxed)
}

/// (successful exports, failed exports, seconds spent exporting) since the process started.
pub fn stats() -> (u64, u64, f64) {
    (
        EXPORTS_OK.load(Ordering::Relaxed),
        EXPORTS_FAILED.load(Ordering::Relaxed),
        EXPORT_MICROS.load(Ordering::Relaxed) as f64 / 1e6,
    )
}

/// One collection of everything to push, and which of its series are live.
pub type Collect = Box<dyn Fn() -> Result<(ResourceMetrics, Box<Live<'static>>), String> + Send>;

/// The push loop's thread; dropping it without `stop` leaves the thread to end at exit.
pub struct Pusher {
    stop: Option<std::sync::mpsc::Sender<()>>,
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl Pusher {
    /// Starts pushing every `settings.interval` on a thread of its own, with a small
    /// runtime of its own for the sends: an export of 10,000 probes' series must not
    /// delay probe runs.
    /// `spans`: runs waiting to go out as spans (`traces = true`); `exemplars`: the latest
    /// run's trace id per histogram series, attached to the pushed points.
    pub fn start(
        settings: &OtlpSettings,
        collect: Collect,
        spans: Option<std::sync::Arc<super::spans::SpanQueue>>,
        exemplars: std::sync::Arc<super::exemplars::Exemplars>,
    ) -> anyhow::Result<Pusher> {
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let settings = settings.clone();
        std::thread::Builder::new().name("otlp-push".into()).spawn(move || {
            let started = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                // The gRPC channel is made inside the runtime: its tasks live there.
                .and_then(|rt| rt.block_on(async { Transport::new(&settings) }).map(|t| (rt, t)));
            let (rt, transport) = match started {
                Ok(ok) => ok,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let exporter = Exporter {
                rt,
                transport,
                collect,
                spans,
                exemplars,
                endpoint: settings.endpoint.clone(),
                log: LogState::default(),
            };
            let mut exporter = exporter;
            let mut next = Instant::now() + settings.interval;
            loop {
                match stop_rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        exporter.export();
                        next = (next + settings.interval).max(Instant::now());
                    }
                    // Stopped (or the daemon is gone): the last interval's runs, once.
                    _ => {
                        exporter.export();
                        break;
                    }
                }
            }
            let _ = done_tx.send(());
        })?;
        ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the OTLP push thread ended at start"))??;
        Ok(Pusher {
            stop: Some(stop_tx),
            done: Some(done_rx),
        })
    }

    /// Pushes once more and stops, waiting at most `deadline`.
    pub async fn stop(&mut self, deadline: Duration) {
        let (Some(stop), Some(done)) = (self.stop.take(), self.done.take()) else {
            return;
        };
        let _ = stop.send(());
        let waited = tokio::task::spawn_blocking(move || done.recv_timeout(deadline)).await;
        if !matches!(waited, Ok(Ok(()))) {
            tracing::warn!(?deadline, "the last OTLP export did not finish in time; exiting anyway");
        }
    }
}

enum Transport {
    Grpc {
        client: MetricsServiceClient<tonic::transport::Channel>,
        traces: Box<TraceServiceClient<tonic::transport::Channel>>,
        metadata: tonic::metadata::MetadataMap,
    },
    Http {
        client: reqwest::Client,
        url: String,
        /// The trace service's URL: the metrics URL with `/v1/metrics` made `/v1/traces`.
        traces_url: String,
        headers: reqwest::header::HeaderMap,
        gzip: bool,
    },
}

impl Transport {
    /// Must run inside the push thread's runtime (the gRPC channel's tasks live on it).
    fn new(settings: &OtlpSettings) -> anyhow::Result<Transport> {
        let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut headers = http::HeaderMap::new();
        for (k, v) in &settings.headers {
            let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| anyhow::anyhow!("bad OTLP header name {k:?}"))?;
            let value =
                http::HeaderValue::from_str(v).map_err(|_| anyhow::anyhow!("bad OTLP header value for {k:?}"))?;
            headers.insert(name, value);
        }
        let endpoint = settings.endpoint.clone().unwrap_or_else(|| match settings.protocol {
            OtlpProtocol::Grpc => "http://localhost:4317".into(),
            OtlpProtocol::HttpProtobuf => "http://localhost:4318/v1/metrics".into(),
        });
        Ok(match settings.protocol {
            OtlpProtocol::Grpc => {
                use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
                let mut ep = Endpoint::from_shared(endpoint)?
                    .timeout(timeout)
                    .connect_timeout(timeout);
                if ep.uri().scheme_str() == Some("https") {
                    let mut tls = ClientTlsConfig::new().with_webpki_roots();
                    if let Some(ca) = &settings.ca_pem {
                        tls = tls.ca_certificate(Certificate::from_pem(ca));
                    }
                    if let Some(id) = &settings.identity {
                        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
                    }
                    ep = ep.tls_config(tls)?;
                }
                let channel = ep.connect_lazy();
                let mut client = MetricsServiceClient::new(channel.clone()).max_encoding_message_size(usize::MAX);
                let mut traces = TraceServiceClient::new(channel).max_encoding_message_size(usize::MAX);
                if settings.gzip {
                    client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                    traces = traces.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                Transport::Grpc {
                    client,
                    traces: Box::new(traces),
                    metadata: tonic::metadata::MetadataMap::from_headers(headers),
                }
            }
            OtlpProtocol::HttpProtobuf => Transport::Http {
                client: http_client(settings, timeout)?,
                traces_url: traces_url(&endpoint),
                url: endpoint,
                headers,
                gzip: settings.gzip,
            },
        })
    }

    async fn send_traces(&self, request: ExportTraceServiceRequest) -> Result<(), String> {
        match self {
            Transport::Grpc { traces, metadata, .. } => {
                grpc_result((**traces).clone().export(with_metadata(request, metadata)).await)
            }
            Transport::Http {
                client,
                traces_url,
                headers,
                gzip,
                ..
            } => post_protobuf(client, traces_url, headers, *gzip, request.encode_to_vec()).await,
        }
    }

    async fn send(&self, request: ExportMetricsServiceRequest) -> Result<(), String> {
        match self {
            Transport::Grpc { client, metadata, .. } => {
                grpc_result(client.clone().export(with_metadata(request, metadata)).await)
            }
            Transport::Http {
                client,
                url,
                headers,
                gzip,
                ..
            } => {
                let body = request.encode_to_vec();
                drop(request);
                post_protobuf(client, url, headers, *gzip, body).await
            }
        }
    }
}

fn with_metadata<T>(message: T, metadata: &tonic::metadata::MetadataMap) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    *req.metadata_mut() = metadata.clone();
    req
}

fn grpc_result<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<(), String> {
    r.map(|_| ())
        .map_err(|s| format!("gRPC status {:?}: {}", s.code(), s.message()))
}

/// The trace service's URL beside a metrics URL (`…/v1/metrics` → `…/v1/traces`).
fn traces_url(metrics: &str) -> String {
    match metrics.strip_suffix("/v1/metrics") {
        Some(base) => format!("{base}/v1/traces"),
        None => format!("{}/v1/traces", metrics.trim_end_matches('/')),
    }
}

/// One OTLP/HTTP protobuf POST, gzipped when asked.
async fn post_protobuf(
    client: &reqwest::Client,
    url: &str,
    headers: &reqwest::header::HeaderMap,
    gzip: bool,
    mut body: Vec<u8>,
) -> Result<(), String> {
    let mut req = client
        .post(url)
        .headers(headers.clone())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf");
    if gzip {
        use std::io::Write as _;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&body).map_err(|e| e.to_string())?;
        body = enc.finish().map_err(|e| e.to_string())?;
        req = req.header(http::header::CONTENT_ENCODING, "gzip");
    }
    let resp = req.body(body).send().await.map_err(|e| error_chain(&e))?;
    let status = resp.status();
    // The body (a partial-success message or an error) is not read: it is the
    // collector's to size, and nothing here acts on it.
    drop(resp);
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP status {status}"))
    }
}

/// An error with its sources (reqwest's top line hides the TLS reason).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

struct Exporter {
    rt: tokio::runtime::Runtime,
    transport: Transport,
    collect: Collect,
    spans: Option<std::sync::Arc<super::spans::SpanQueue>>,
    exemplars: std::sync::Arc<super::exemplars::Exemplars>,
    /// Replaced by its redacted form in logged errors (it may carry credentials).
    endpoint: Option<String>,
    log: LogState,
}

impl Exporter {
    /// Collects once and sends the collection in requests, each built, sent and freed
    /// before the next; the first failed request ends the export (the next export
    /// carries everything again, cumulative).
    fn export(&mut self) {
        let started = Instant::now();
        let result = self.send_all();
        // The collection and the last request are freed by now.
        super::process::give_back_freed_memory();
        EXPORT_MICROS.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match &result {
            Ok(()) => EXPORTS_OK.fetch_add(1, Ordering::Relaxed),
            Err(_) => EXPORTS_FAILED.fetch_add(1, Ordering::Relaxed),
        };
        LAST_FAILED.store(result.is_err(), Ordering::Relaxed);
        self.log(result);
    }

    fn send_all(&self) -> Result<(), String> {
        let (rm, live) = (self.collect)()?;
        let mut result = Ok(());
        otlp_encode::requests(&rm, &*live, &self.exemplars, otlp_encode::REQUEST_BYTES, &mut |req| {
            result = self.rt.block_on(self.transport.send(req));
            result.is_ok()
        });
        let resource = opentelemetry_proto::tonic::resource::v1::Resource::from(rm.resource());
        drop(rm);
        result?;
        self.send_spans(resource)
    }

    /// The queued runs' spans, in requests of at most SPANS_PER_REQUEST; spans a failed
    /// request carried are dropped (counted), as metrics are.
    fn send_spans(&self, resource: opentelemetry_proto::tonic::resource::v1::Resource) -> Result<(), String> {
        const SPANS_PER_REQUEST: usize = 2_000;
        let Some(queue) = &self.spans else { return Ok(()) };
        while !queue.is_empty() {
            let spans = queue.take(SPANS_PER_REQUEST);
            let n = spans.len() as u64;
            let request = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(resource.clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(super::spans::scope()),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            };
            if let Err(e) = self.rt.block_on(self.transport.send_traces(request)) {
                super::spans::DROPPED.fetch_add(n, Ordering::Relaxed);
                return Err(format!("traces: {e}"));
            }
        }
        Ok(())
    }

    fn log(&mut self, result: Result<(), String>) {
        let s = &mut self.log;
        match result {
            Ok(()) => {
                if let Some(since) = s.failing_since.take() {
                    tracing::info!(failed_exports = s.failures, down_for = ?since.elapsed(), "OTLP export resumed");
                    s.failures = 0;
                    s.last_log = None;
                }
            }
            Err(mut error) => {
                s.failures += 1;
                s.failing_since.get_or_insert_with(Instant::now);
                if s.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    s.last_log = Some(Instant::now());
                    if let Some(ep) = self.endpoint.as_deref().filter(|ep| !ep.is_empty()) {
                        error = error.replace(ep, &crate::redact::url(ep));
                    }
                    tracing::warn!(%error, failed_exports = s.failures, "OTLP export failed; probing continues, retrying every interval");
                }
            }
        }
    }
}

/// The HTTP exporter's client: rustls with the probes' provider (ring), the Mozilla roots
/// plus the configured CA, and the client certificate when one is set. Built here, not
/// by the SDK, whose default client speaks plain http:// only.
fn http_client(settings: &OtlpSettings, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &settings.ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem).flatten() {
            roots.add(cert)?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let tls = match &settings.identity {
        Some(id) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(&id.cert_pem).collect::<Result<_, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(&id.key_pem)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .build()?)
}

#[derive(Default)]
struct LogState {
    failing_since: Option<Instant>,
    failures: u64,
    last_log: Option<Instant>,
}
