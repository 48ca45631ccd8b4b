//! `kind = "grpc"`: the standard health check (`grpc.health.v1.Health/Check`) over HTTP/2
//! on the shared timed connection (h2c, or TLS with ALPN h2), as blackbox_exporter's grpc
//! prober: the run passes when the service answers SERVING. Messages are prost's.

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut as _, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http_body_util::BodyExt as _;
use prost::Message as _;
use rustls::ClientConfig;
use schemars::JsonSchema;
use serde::Deserialize;

use super::http_config::Tls;
use super::kind::{BoxFuture, BuildContext, CERT_EXPIRY, Kind, Probe, ProbeConfig, Settings};
use crate::config::{ConfigError, Spanned};
use crate::net::Resolver;
use crate::net::http::{self as nethttp, BodySpec, Version};
use crate::outcome::{ErrorType, Instrument, Measure, ProbeError, Recorder, Unit};

pub const KIND: Kind = Kind {
    name: "grpc",
    measures: MEASURES,
    settings: super::kind::settings_of::<GrpcSettings>,
    schema: <GrpcSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["check", "total"],
    median_gate: false,
    long_runs: false,
    target_key: Some(("target", "127.0.0.1:1")),
};

/// The keys of `kind = "grpc"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrpcSettings {
    /// "host:port" ("[::1]:port" for an IPv6 literal).
    pub target: Spanned<String>,
    /// The service asked about; "" (default) is the server as a whole.
    #[serde(default)]
    pub service: String,
    /// TLS with ALPN h2; otherwise HTTP/2 over plain TCP (h2c).
    #[serde(default)]
    pub tls: bool,
    /// TLS options (`ca_file`, `insecure_skip_verify`, `server_name`).
    #[serde(default)]
    pub tls_config: Tls,
}

macro_rules! grpc_phase {
    ($key:literal) => {
        Measure {
            key: $key,
            metric: "probe.grpc.phase.duration",
            unit: Unit::Seconds,
            instrument: Instrument::Mean,
            description: "gRPC probe time by phase (dns, connect, tls, send, wait, transfer), as the http kind's. Count and sum only.",
            fixed: &[("phase", $key)],
            labels: &[],
        }
    };
}

pub const MEASURES: &[Measure] = &[
    grpc_phase!("dns"),
    grpc_phase!("connect"),
    grpc_phase!("tls"),
    grpc_phase!("send"),
    grpc_phase!("wait"),
    grpc_phase!("transfer"),
    Measure {
        key: "check",
        metric: "rpc.client.call.duration",
        unit: Unit::Seconds,
        instrument: Instrument::Histogram,
        description: "The Check call: request sent to the trailers read (OTel semantic conventions' RPC client call duration), without connection setup.",
        fixed: &[("rpc.method", "grpc.health.v1.Health/Check")],
        labels: &[],
    },
    Measure {
        key: "serving_status",
        metric: "probe.grpc.serving_status",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "The health answer: 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN (grpc.health.v1).",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "status_code",
        metric: "probe.grpc.status_code",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "The call's grpc-status (0 OK; 12 UNIMPLEMENTED when the server has no health service).",
        fixed: &[],
        labels: &[],
    },
    CERT_EXPIRY,
];

/// grpc.health.v1.HealthCheckRequest.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// grpc.health.v1.HealthCheckResponse (status as its enum's number).
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

const SERVING_STATUS: &[&str] = &["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/// A health answer is a few bytes; more than this is not one.
const MAX_RESPONSE: u64 = 64 * 1024;

pub struct GrpcProbe {
    url: url::Url,
    tls: Arc<ClientConfig>,
    server_name: Option<String>,
    message: Bytes,
    service: String,
    resolver: Resolver,
}

impl Settings for GrpcSettings {
    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        let (host, port) =
            super::tcp::host_port(self.target.get_ref()).map_err(|e| cfg.error_at(&self.target, "probe.target", e))?;
        let scheme = if self.tls { "https" } else { "http" };
        let url = url::Url::parse(&format!("{scheme}://{host}:{port}/grpc.health.v1.Health/Check"))
            .map_err(|e| cfg.error_at(&self.target, "probe.target", format!("not a host:port: {e}")))?;
        let tls = self
            .tls_config
            .client(cfg, ctx, Version::Http2.alpn(), "probe.tls_config")?;
        // Length-prefixed message: 1 byte "not compressed", 4 bytes length, the bytes.
        let body = HealthCheckRequest {
            service: self.service.clone(),
        }
        .encode_to_vec();
        let mut framed = BytesMut::with_capacity(5 + body.len());
        framed.put_u8(0);
        framed.put_u32(body.len() as u32);
        framed.put_slice(&body);
        Ok(Box::new(GrpcProbe {
            url,
            tls,
            server_name: self.tls_config.server_name(),
            message: framed.freeze(),
            service: self.service.clone(),
            resolver: ctx.resolver.clone(),
        }))
    }

    fn plan(&self) -> Vec<String> {
        vec![format!(
            "grpc health {}{} service {:?}",
            self.target.get_ref(),
            if self.tls { " (TLS)" } else { "" },
            self.service
        )]
    }
}

impl Probe for GrpcProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(async move {
            let mut conn = nethttp::open(
                &self.resolver,
                rec,
                &self.url,
                &self.tls,
                self.server_name.as_deref(),
                Version::Http2,
            )
            .await?;
            if !conn.is_h2() {
                return Err(ProbeError::new(
                    ErrorType::ProtocolError,
                    "the server did not negotiate HTTP/2 (ALPN h2), which gRPC needs",
                ));
            }
            let headers = [
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-accept-encoding", "identity"),
            ]
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)));
            let req = nethttp::build_request(
                &self.url,
                &http::Method::POST,
                &headers,
                &BodySpec::Bytes(self.message.clone()),
                true,
                false,
            )?;
            let t = Instant::now();
            let result = self.call(rec, &mut conn, req).await;
            rec.set("check", t.elapsed().as_secs_f64());
            let status = result?;
            rec.set("serving_status", f64::from(status));
            let name = SERVING_STATUS.get(status as usize).copied().unwrap_or("unrecognised");
            rec.detail("serving_status", name);
            if status != 1 {
                return Err(ProbeError::new(
                    ErrorType::UpstreamError,
                    format!("service {:?} is {name}", self.service),
                ));
            }
            Ok(())
        })
    }
}

impl GrpcProbe {
    /// Sends the Check; returns the serving status, or the call's failure.
    async fn call(
        &self,
        rec: &mut Recorder,
        conn: &mut nethttp::HttpConn,
        req: http::Request<nethttp::ReqBody>,
    ) -> Result<i32, ProbeError> {
        let (resp, first_byte) = conn.exchange(rec, req).await?;
        let (head, mut body) = resp.into_parts();
        if head.status != http::StatusCode::OK {
            return Err(ProbeError::new(
                ErrorType::ProtocolError,
                format!("HTTP status {} (not a gRPC server?)", head.status.as_u16()),
            ));
        }
        let is_grpc = head
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"));
        if !is_grpc {
            return Err(ProbeError::new(
                ErrorType::ProtocolError,
                "the response is not application/grpc (not a gRPC server?)",
            ));
        }
        let mut data = BytesMut::new();
        // A trailers-only answer carries grpc-status in the headers.
        let mut trailers = head.headers.contains_key("grpc-status").then(|| head.headers.clone());
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| nethttp::classify_hyper(&e, "reading the answer"))?;
            match frame.into_data() {
                Ok(bytes) => {
                    if (data.len() + bytes.len()) as u64 > MAX_RESPONSE {
                        return Err(ProbeError::new(
                            ErrorType::MessageTooLarge,
                            format!("a health answer over {} KiB", MAX_RESPONSE / 1024),
                        ));
                    }
                    data.extend_from_slice(&bytes);
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            }
        }
        rec.add("transfer", first_byte.elapsed().as_secs_f64());
        let trailers =
            trailers.ok_or_else(|| ProbeError::new(ErrorType::ProtocolError, "the call ended without grpc-status"))?;
        let code: i64 = trailers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| ProbeError::new(ErrorType::ProtocolError, "no valid grpc-status"))?;
        rec.set("status_code", code as f64);
        if code != 0 {
            // grpc-message is percent-encoded text chosen by the server: shown clipped.
            let message: String = trailers
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            let kind = if code == 12 {
                ErrorType::ProtocolError
            } else {
                ErrorType::UpstreamError
            };
            return Err(ProbeError::new(
                kind,
                format!("grpc-status {code} {message}").trim_end().to_string(),
            ));
        }
        if data.len() < 5 || data[0] != 0 {
            return Err(ProbeError::new(
                ErrorType::ProtocolError,
                "the answer is not one uncompressed gRPC message",
            ));
        }
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        let message = data
            .get(5..5 + len)
            .ok_or_else(|| ProbeError::new(ErrorType::ProtocolError, "the answer is shorter than its length prefix"))?;
        let resp = HealthCheckResponse::decode(message)
            .map_err(|e| ProbeError::new(ErrorType::ProtocolError, format!("not a HealthCheckResponse: {e}")))?;
        Ok(resp.status)
    }
}
