//! Telemetry's sections of the daemon file: `[metrics]` (how histograms aggregate) and
//! `[export.otlp]` (the push exporter, with secrets resolved and the standard
//! `OTEL_EXPORTER_OTLP_*` variables as fallbacks).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

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
        Ok(OtlpSettings {
            endpoint,
            protocol,
            headers,
            interval,
            timeout: raw.timeout.map(|t| t.get_ref().0),
            delta,
        })
    }
}
