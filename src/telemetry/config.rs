//! Telemetry's sections of the daemon file: `[metrics]` (how histograms aggregate) and
//! `[export.otlp]` (the push exporter, with secrets resolved and the standard
//! `OTEL_EXPORTER_OTLP_*` variables as fallbacks).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use rustls::pki_types::pem::PemObject as _;

use crate::config::{ConfigError, Dur, Secret, SecretText, Source, Spanned};

/// How `Instrument::Histogram` measures are aggregated (`[metrics] histograms`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HistogramMode {
    /// Fixed bucket edges per unit (docs/metrics.md).
    #[default]
    Explicit,
    /// OTel base-2 exponential histograms; Prometheus native histograms over the protobuf
    /// exposition (the text exposition carries their count and sum).
    Exponential,
}

// `[metrics]`: how metrics are aggregated. (The schema keeps the definition name it had.)
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RawMetrics")]
pub struct MetricsConfig {
    /// "explicit" (default): fixed bucket edges. "exponential": OTel base-2 exponential
    /// histograms over OTLP, Prometheus native histograms over the protobuf exposition.
    #[serde(default)]
    pub histograms: HistogramMode,
}

/// `[export.otlp]`, with secrets resolved. Unset fields fall back to the standard
/// `OTEL_EXPORTER_OTLP_*` environment variables, then to defaults (docs/config.md).
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    pub headers: Vec<(String, String)>,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub delta: bool,
    /// PEM of extra trusted CAs (beside the Mozilla roots).
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key (PEM) for mutual TLS.
    pub identity: Option<ClientIdentity>,
    pub gzip: bool,
    /// Runs go out as spans too.
    pub traces: bool,
}

/// A client certificate and its key; the key never shows in `Debug` (configs are logged).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientIdentity({} bytes of certificate, key <redacted>)",
            self.cert_pem.len()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

// `[export]`: push exporters.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RawExport")]
pub struct ExportConfig {
    /// OTLP push beside /metrics (docs/config.md).
    pub otlp: Option<OtlpConfig>,
}

// `[export.otlp]` as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "RawOtlp")]
pub struct OtlpConfig {
    /// Collector URL (http:// or https://); default from OTEL_EXPORTER_OTLP_ENDPOINT.
    endpoint: Option<Spanned<String>>,
    /// "grpc" (default) or "http/protobuf".
    protocol: Option<Spanned<String>>,
    /// Header name → value; values may be secrets (`env:NAME`, `file:PATH`).
    #[serde(default)]
    headers: BTreeMap<String, Spanned<SecretText>>,
    /// How often to push (at least 1s; default 15s).
    interval: Option<Spanned<Dur>>,
    /// Per export (default 10s).
    timeout: Option<Spanned<Dur>>,
    /// "cumulative" (default) or "delta".
    temporality: Option<Spanned<String>>,
    /// PEM file of CAs trusted for the collector's certificate, beside the Mozilla roots;
    /// default from OTEL_EXPORTER_OTLP_CERTIFICATE.
    ca_file: Option<Spanned<String>>,
    /// Client certificate (PEM) for mutual TLS; default from OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE.
    client_cert_file: Option<Spanned<String>>,
    /// The client certificate's private key (PEM); default from OTEL_EXPORTER_OTLP_CLIENT_KEY.
    client_key_file: Option<Spanned<String>>,
    /// "gzip" or "none" (default); default from OTEL_EXPORTER_OTLP_COMPRESSION.
    compression: Option<Spanned<String>>,
    /// Also export each probe run as a client span (with its steps or phases as child
    /// spans) to the collector's trace service (default false; docs/tracing.md).
    #[serde(default)]
    traces: bool,
}

/// A PEM file named by a key or by the environment: (text, where it was named).
fn pem_file(
    source: &Source,
    key: &str,
    given: &Option<Spanned<String>>,
    env: &[&str],
) -> Result<Option<Vec<u8>>, ConfigError> {
    let (path, span) = match given {
        Some(p) => (
            source.path.parent().unwrap_or(Path::new(".")).join(p.get_ref()),
            Some(p.span()),
        ),
        None => match env_first(env) {
            Some(p) => (std::path::PathBuf::from(p), None),
            None => return Ok(None),
        },
    };
    let err = |msg: String| match &span {
        Some(span) => source.error_at(span.clone(), Some(key), msg),
        None => source.error(format!("{msg} (from {})", env[env.len() - 1])),
    };
    let bytes = crate::config::read_capped(&path, 1024 * 1024).map_err(|e| err(e.to_string()))?;
    Ok(Some(bytes))
}

/// An endpoint from an environment variable, checked as a configured one is.
fn env_url(source: &Source, var: &str, e: String) -> Result<String, ConfigError> {
    match url::Url::parse(&e) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(e),
        _ => Err(source.error(format!("{var} is not an http:// or https:// URL with a host"))),
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs, comma-separated, values percent-encoded.
fn env_headers(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or("expected key=value pairs")?;
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| "a value is not UTF-8 once decoded")?
            .into_owned();
        let k = k.trim().to_string();
        if http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).is_err()
            || http::HeaderValue::from_str(&v).is_err()
        {
            // The value may be a credential: never echoed.
            return Err(format!("header {k:?} has an invalid name or value"));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

impl OtlpConfig {
    /// Checks the section and resolves its secrets; unset keys fall back to the standard
    /// `OTEL_EXPORTER_OTLP_*` environment variables.
    pub fn check(self, source: &Source) -> Result<OtlpSettings, ConfigError> {
        let raw = self;
        let protocol_text = match &raw.protocol {
            Some(p) => Some((p.get_ref().clone(), Some(p.span()))),
            None => {
                env_first(&["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]).map(|p| (p, None))
            }
        };
        let protocol = match protocol_text {
            None => OtlpProtocol::Grpc,
            Some((p, span)) => match p.as_str() {
                "grpc" => OtlpProtocol::Grpc,
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                other => {
                    let msg = format!("OTLP protocol {other:?}: use \"grpc\" or \"http/protobuf\"");
                    return Err(match span {
                        Some(span) => source.error_at(span, Some("export.otlp.protocol"), msg),
                        None => source.error(format!("{msg} (from OTEL_EXPORTER_OTLP_PROTOCOL)")),
                    });
                }
            },
        };
        let delta = match &raw.temporality {
            Some(t) => match t.get_ref().as_str() {
                "cumulative" => false,
                "delta" => true,
                other => {
                    return Err(source.error_at(
                        t.span(),
                        Some("export.otlp.temporality"),
                        format!("temporality {other:?}: use \"cumulative\" or \"delta\""),
                    ));
                }
            },
            None => env_first(&["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"])
                .is_some_and(|v| v.eq_ignore_ascii_case("delta")),
        };
        let base = source.path.parent().unwrap_or(Path::new("."));
        let mut headers = Vec::new();
        for (name, value) in &raw.headers {
            let v = if Secret::is_reference(value.get_ref().as_str()) {
                Secret::resolve(value.get_ref().as_str(), base)
                    .map_err(|e| source.error_at(value.span(), Some(&format!("export.otlp.headers.{name}")), e))?
                    .expose()
                    .to_string()
            } else {
                value.get_ref().0.clone()
            };
            let key = format!("export.otlp.headers.{name}");
            if http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
                return Err(source.error_at(value.span(), Some(&key), format!("invalid header name {name:?}")));
            }
            if http::HeaderValue::from_str(&v).is_err() {
                return Err(source.error_at(value.span(), Some(&key), "header value has invalid characters"));
            }
            headers.push((name.clone(), v));
        }
        let interval = match &raw.interval {
            Some(i) if i.get_ref().0 < Duration::from_secs(1) => {
                return Err(source.error_at(i.span(), Some("export.otlp.interval"), "interval must be at least 1s"));
            }
            Some(i) => i.get_ref().0,
            None => env_first(&["OTEL_METRIC_EXPORT_INTERVAL"])
                .and_then(|ms| ms.parse::<u64>().ok())
                .map_or(Duration::from_secs(15), Duration::from_millis),
        };
        if let Some(e) = &raw.endpoint {
            let bad = match url::Url::parse(e.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => None,
                Ok(u) => Some(format!(
                    "scheme {:?}: OTLP endpoints are http:// or https:// URLs with a host",
                    u.scheme()
                )),
                Err(err) => Some(format!("not a URL ({err}); write e.g. \"http://127.0.0.1:4317\"")),
            };
            if let Some(msg) = bad {
                return Err(source.error_at(e.span(), Some("export.otlp.endpoint"), msg));
            }
        }
        // For http/protobuf a bare base URL gets the signal path, as OTEL_EXPORTER_OTLP_ENDPOINT does.
        let endpoint = raw.endpoint.map(|e| {
            let e = e.into_inner();
            match url::Url::parse(&e) {
                Ok(u) if protocol == OtlpProtocol::HttpProtobuf && matches!(u.path(), "" | "/") => {
                    format!("{}/v1/metrics", e.trim_end_matches('/'))
                }
                _ => e,
            }
        });
        // Unset in the file: the standard variables, as the specification reads them (the
        // signal-specific one as is; the general one gets the signal path over HTTP).
        let endpoint = match endpoint {
            Some(e) => Some(e),
            None => match (
                env_first(&["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]),
                env_first(&["OTEL_EXPORTER_OTLP_ENDPOINT"]),
            ) {
                (Some(e), _) => Some(env_url(source, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", e)?),
                (None, Some(e)) => {
                    let e = env_url(source, "OTEL_EXPORTER_OTLP_ENDPOINT", e)?;
                    Some(match protocol {
                        OtlpProtocol::HttpProtobuf => format!("{}/v1/metrics", e.trim_end_matches('/')),
                        OtlpProtocol::Grpc => e,
                    })
                }
                (None, None) => None,
            },
        };
        if headers.is_empty()
            && let Some(list) = env_first(&["OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"])
        {
            headers = env_headers(&list).map_err(|e| source.error(format!("OTEL_EXPORTER_OTLP_HEADERS: {e}")))?;
        }
        let ca_pem = pem_file(
            source,
            "export.otlp.ca_file",
            &raw.ca_file,
            &[
                "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ],
        )?;
        if let Some(pem) = &ca_pem {
            let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
                .filter(Result::is_ok)
                .count();
            if certs == 0 {
                return Err(match &raw.ca_file {
                    Some(c) => source.error_at(c.span(), Some("export.otlp.ca_file"), "no PEM certificate in the file"),
                    None => source.error("OTEL_EXPORTER_OTLP_CERTIFICATE names a file with no PEM certificate"),
                });
            }
        }
        let cert = pem_file(
            source,
            "export.otlp.client_cert_file",
            &raw.client_cert_file,
            &[
                "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ],
        )?;
        let key = pem_file(
            source,
            "export.otlp.client_key_file",
            &raw.client_key_file,
            &["OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"],
        )?;
        let identity = match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => {
                if rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
                    return Err(match &raw.client_key_file {
                        Some(k) => source.error_at(
                            k.span(),
                            Some("export.otlp.client_key_file"),
                            "no PEM private key in the file",
                        ),
                        None => source.error("OTEL_EXPORTER_OTLP_CLIENT_KEY names a file with no PEM private key"),
                    });
                }
                Some(ClientIdentity { cert_pem, key_pem })
            }
            (None, None) => None,
            _ => {
                return Err(source.error(
                    "[export.otlp]: mutual TLS needs both client_cert_file and client_key_file (or both OTEL_EXPORTER_OTLP_CLIENT_* variables)",
                ));
            }
        };
        let gzip = match &raw.compression {
            Some(c) => match c.get_ref().as_str() {
                "gzip" => true,
                "none" => false,
                other => {
                    return Err(source.error_at(
                        c.span(),
                        Some("export.otlp.compression"),
                        format!("compression {other:?}: use \"gzip\" or \"none\""),
                    ));
                }
            },
            None => env_first(&[
                "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            ])
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip")),
        };
        Ok(OtlpSettings {
            endpoint,
            protocol,
            headers,
            interval,
            timeout: raw.timeout.map(|t| t.get_ref().0).or_else(|| {
                env_first(&["OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"])
                    .and_then(|ms| ms.trim().parse::<u64>().ok())
                    .map(Duration::from_millis)
            }),
            delta,
            traces: raw.traces,
            ca_pem,
            identity,
            gzip,
        })
    }
}
