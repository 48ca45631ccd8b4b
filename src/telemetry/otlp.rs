//! OTLP push of the same instruments the `/metrics` endpoint serves, through a periodic
//! reader. The exporter is wrapped so that a collector that is down, slow or refusing
//! costs one bounded log line a minute, never memory: failed batches are dropped (the
//! next export carries cumulative state again) and nothing queues up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};

use super::config::{OtlpProtocol, OtlpSettings};

const LOG_EVERY: Duration = Duration::from_secs(60);

static EXPORTS_OK: AtomicU64 = AtomicU64::new(0);
static LAST_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the last OTLP export failed (for /readyz).
pub fn failing() -> bool {
    LAST_FAILED.load(Ordering::Relaxed)
}
static EXPORTS_FAILED: AtomicU64 = AtomicU64::new(0);
static EXPORT_MICROS: AtomicU64 = AtomicU64::new(0);

/// (successful exports, failed exports, seconds spent exporting) since the process started.
pub fn stats() -> (u64, u64, f64) {
    (
        EXPORTS_OK.load(Ordering::Relaxed),
        EXPORTS_FAILED.load(Ordering::Relaxed),
        EXPORT_MICROS.load(Ordering::Relaxed) as f64 / 1e6,
    )
}

/// Builds the periodic reader. Must run inside the Tokio runtime (the gRPC channel lives on it).
pub fn reader(settings: &OtlpSettings) -> anyhow::Result<PeriodicReader<Guarded>> {
    let temporality = if settings.delta {
        Temporality::Delta
    } else {
        Temporality::Cumulative
    };
    let exporter = match settings.protocol {
        OtlpProtocol::Grpc => {
            let mut b = MetricExporter::builder().with_tonic().with_temporality(temporality);
            if let Some(e) = &settings.endpoint {
                b = b.with_endpoint(e.clone());
            }
            if let Some(t) = settings.timeout {
                b = b.with_timeout(t);
            }
            if settings.gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            if settings.ca_pem.is_some() || settings.identity.is_some() {
                use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
                let mut tls = ClientTlsConfig::new().with_webpki_roots();
                if let Some(ca) = &settings.ca_pem {
                    tls = tls.ca_certificate(Certificate::from_pem(ca));
                }
                if let Some(id) = &settings.identity {
                    tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
                }
                b = b.with_tls_config(tls);
            }
            if !settings.headers.is_empty() {
                let mut headers = http::HeaderMap::new();
                for (k, v) in &settings.headers {
                    let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| anyhow::anyhow!("bad OTLP header name {k:?}"))?;
                    let value = http::HeaderValue::from_str(v)
                        .map_err(|_| anyhow::anyhow!("bad OTLP header value for {k:?}"))?;
                    headers.insert(name, value);
                }
                let md = opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers);
                b = b.with_metadata(md);
            }
            b.build()?
        }
        OtlpProtocol::HttpProtobuf => {
            let mut b = MetricExporter::builder().with_http().with_temporality(temporality);
            if let Some(e) = &settings.endpoint {
                b = b.with_endpoint(e.clone());
            }
            if let Some(t) = settings.timeout {
                b = b.with_timeout(t);
            }
            if !settings.headers.is_empty() {
                b = b.with_headers(settings.headers.iter().cloned().collect::<HashMap<_, _>>());
            }
            if settings.gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b = b.with_http_client(http_client(settings)?);
            b.build()?
        }
    };
    let guarded = Guarded {
        inner: exporter,
        state: Mutex::new(LogState::default()),
        endpoint: settings.endpoint.clone(),
    };
    Ok(PeriodicReader::builder(guarded)
        .with_interval(settings.interval)
        .build())
}

/// The HTTP exporter's client: rustls with the probes' provider (ring), the Mozilla roots
/// plus the configured CA, and the client certificate when one is set. Built here, not
/// by the SDK, whose default client speaks plain http:// only.
fn http_client(settings: &OtlpSettings) -> anyhow::Result<reqwest::blocking::Client> {
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
    // The blocking client owns a runtime, which may not be created or dropped on an async
    // thread: built on a thread of its own, as the SDK builds its default one.
    let timeout = settings.timeout.unwrap_or(Duration::from_secs(10));
    let client = std::thread::Builder::new()
        .name("otlp-http-client".into())
        .spawn(move || {
            reqwest::blocking::Client::builder()
                .tls_backend_preconfigured(tls)
                .timeout(timeout)
                .build()
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("building the OTLP HTTP client panicked"))??;
    Ok(client)
}

#[derive(Default)]
struct LogState {
    failing_since: Option<Instant>,
    failures: u64,
    last_log: Option<Instant>,
}

/// The OTLP exporter with rate-limited failure logging and a recovery notice.
pub struct Guarded {
    inner: MetricExporter,
    state: Mutex<LogState>,
    /// Replaced by its redacted form in logged errors (it may carry credentials).
    endpoint: Option<String>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Guarded(OTLP)")
    }
}

impl PushMetricExporter for Guarded {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let started = Instant::now();
        let result = self.inner.export(metrics).await;
        // The request encoding (~100 MB at 10,000 probes) is freed by now.
        super::process::give_back_freed_memory();
        EXPORT_MICROS.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match &result {
            Ok(()) => EXPORTS_OK.fetch_add(1, Ordering::Relaxed),
            Err(_) => EXPORTS_FAILED.fetch_add(1, Ordering::Relaxed),
        };
        LAST_FAILED.store(result.is_err(), Ordering::Relaxed);
        let mut s = self.state.lock().expect("otlp log state");
        match &result {
            Ok(()) => {
                if let Some(since) = s.failing_since.take() {
                    tracing::info!(failed_exports = s.failures, down_for = ?since.elapsed(), "OTLP export resumed");
                    s.failures = 0;
                    s.last_log = None;
                }
            }
            Err(e) => {
                s.failures += 1;
                s.failing_since.get_or_insert_with(Instant::now);
                if s.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    s.last_log = Some(Instant::now());
                    let mut error = e.to_string();
                    if let Some(ep) = self.endpoint.as_deref().filter(|ep| !ep.is_empty()) {
                        error = error.replace(ep, &crate::redact::url(ep));
                    }
                    tracing::warn!(%error, failed_exports = s.failures, "OTLP export failed; probing continues, retrying every interval");
                }
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
