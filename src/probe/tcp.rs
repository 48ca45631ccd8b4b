//! `kind = "tcp"`: connect (optionally with TLS) and, like blackbox_exporter's
//! `query_response`, a dialogue of lines: wait for a line matching a regex, send a line,
//! upgrade to TLS mid-dialogue (STARTTLS). DNS, connect and TLS are timed by `net`; the
//! dialogue is timed as `exchange`.

use std::sync::Arc;
use std::time::Instant;

use regex::Regex;
use rustls::ClientConfig;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::http_config::Tls;
use super::kind::{BoxFuture, BuildContext, CERT_EXPIRY, Kind, Probe, ProbeConfig, Settings};
use crate::config::{ConfigError, Spanned};
use crate::net::{self, Endpoint, Resolver, Stream};
use crate::outcome::{ErrorType, Instrument, Measure, ProbeError, Recorder, Unit};

pub const KIND: Kind = Kind {
    name: "tcp",
    measures: MEASURES,
    settings: super::kind::settings_of::<TcpSettings>,
    schema: <TcpSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["connect", "total"],
    median_gate: false,
    long_runs: false,
    target_key: Some(("target", "127.0.0.1:1")),
};

/// The keys of `kind = "tcp"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpSettings {
    /// "host:port" ("[::1]:port" for an IPv6 literal).
    pub target: Spanned<String>,
    /// Handshake TLS right after connecting.
    #[serde(default)]
    pub tls: bool,
    /// TLS options (`ca_file`, `insecure_skip_verify`, `server_name`), for `tls = true` and
    /// for a `starttls` step.
    #[serde(default)]
    pub tls_config: Tls,
    /// The dialogue, in order (blackbox_exporter's query_response).
    #[serde(default)]
    pub query: Vec<QueryStep>,
}

/// One `[[probe.query]]` step: `expect`, then `send`, then `starttls`, each optional.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryStep {
    /// Read lines until one matches this regex; the connection ending first fails the run.
    pub expect: Option<Spanned<String>>,
    /// Fail if a line read while waiting for `expect` matches this regex.
    pub fail_if: Option<Spanned<String>>,
    /// Written followed by "\n" (as blackbox_exporter does); `$1`/`${name}` take groups of the
    /// line `expect` matched.
    pub send: Option<String>,
    /// Upgrade the connection to TLS after this step.
    #[serde(default)]
    pub starttls: bool,
}

macro_rules! tcp_phase {
    ($key:literal) => {
        Measure {
            key: $key,
            metric: "probe.tcp.phase.duration",
            unit: Unit::Seconds,
            instrument: Instrument::Mean,
            description: "TCP probe time by phase (dns, connect, tls, exchange: the query/response dialogue, less any STARTTLS handshake). Count and sum only.",
            fixed: &[("phase", $key)],
            labels: &[],
        }
    };
}

pub const MEASURES: &[Measure] = &[
    tcp_phase!("dns"),
    tcp_phase!("connect"),
    tcp_phase!("tls"),
    tcp_phase!("exchange"),
    CERT_EXPIRY,
];

/// A line longer than this fails the run (`message_too_large`) instead of growing a buffer.
const MAX_LINE: usize = 64 * 1024;
/// All bytes one run reads, at most.
const MAX_READ: usize = 1024 * 1024;

struct Step {
    expect: Option<Regex>,
    fail_if: Option<Regex>,
    send: Option<String>,
    starttls: bool,
}

pub struct TcpProbe {
    host: String,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
    /// For STARTTLS: the config used mid-dialogue.
    starttls: Option<Arc<ClientConfig>>,
    server_name: Option<String>,
    steps: Vec<Step>,
    resolver: Resolver,
}

/// Splits "host:port", "[v6]:port"; the port is required.
pub fn host_port(target: &str) -> Result<(String, u16), String> {
    if target.contains("://") || target.contains('/') {
        return Err(format!("{target:?} is not host:port (no scheme or path)"));
    }
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("{target:?} is not host:port"))?;
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return Err(format!(
            "{target:?} is not host:port (write an IPv6 address as [addr]:port)"
        ));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{target:?}: the port must be 1-65535"))?;
    Ok((host.to_string(), port))
}

fn regex_at(cfg: &ProbeConfig, at: &Spanned<String>, key: &str) -> Result<Regex, ConfigError> {
    Regex::new(at.get_ref()).map_err(|e| cfg.error_at(at, key, format!("invalid regex: {e}")))
}

impl Settings for TcpSettings {
    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        let (host, port) =
            host_port(self.target.get_ref()).map_err(|e| cfg.error_at(&self.target, "probe.target", e))?;
        let client = || self.tls_config.client(cfg, ctx, &[], "probe.tls_config");
        let mut steps = Vec::new();
        for (i, s) in self.query.iter().enumerate() {
            let key = |k: &str| format!("probe.query[{i}].{k}");
            steps.push(Step {
                expect: s
                    .expect
                    .as_ref()
                    .map(|r| regex_at(cfg, r, &key("expect")))
                    .transpose()?,
                fail_if: s
                    .fail_if
                    .as_ref()
                    .map(|r| regex_at(cfg, r, &key("fail_if")))
                    .transpose()?,
                send: s.send.clone(),
                starttls: s.starttls,
            });
        }
        let wants_starttls = steps.iter().any(|s| s.starttls);
        if wants_starttls && self.tls {
            return Err(cfg.error_at(
                &self.target,
                "probe.query.starttls",
                "starttls upgrades a plain connection; it cannot follow tls = true",
            ));
        }
        Ok(Box::new(TcpProbe {
            host,
            port,
            tls: self.tls.then(client).transpose()?,
            starttls: wants_starttls.then(client).transpose()?,
            server_name: self.tls_config.server_name(),
            steps,
            resolver: ctx.resolver.clone(),
        }))
    }

    fn plan(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "tcp {}{}",
            self.target.get_ref(),
            if self.tls { " (TLS)" } else { "" }
        )];
        if !self.query.is_empty() {
            lines.push(format!("{} query step(s)", self.query.len()));
        }
        lines
    }
}

impl Probe for TcpProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(async move {
            let ep = Endpoint {
                host: &self.host,
                port: self.port,
                tls: self.tls.as_ref(),
                server_name: self.server_name.as_deref(),
            };
            let conn = net::connect(&self.resolver, rec, &ep).await?;
            let mut stream = Some(conn.io.into_inner());
            rec.enter("exchange");
            let t = Instant::now();
            let mut starttls = 0.0;
            let result = self.dialogue(rec, &mut stream, &mut starttls).await;
            // STARTTLS time is its own `tls` phase, not part of the exchange.
            rec.set("exchange", (t.elapsed().as_secs_f64() - starttls).max(0.0));
            result
        })
    }
}

impl TcpProbe {
    async fn dialogue(
        &self,
        rec: &mut Recorder,
        slot: &mut Option<Stream>,
        starttls_time: &mut f64,
    ) -> Result<(), ProbeError> {
        let mut lines = LineReader::default();
        for (i, step) in self.steps.iter().enumerate() {
            let stream = slot.as_mut().expect("a stream between steps");
            let mut matched: Option<String> = None;
            if let Some(expect) = &step.expect {
                loop {
                    let line = lines.next_line(stream).await.map_err(|e| {
                        ProbeError::new(
                            e.kind,
                            format!("query step {}: waiting for /{expect}/: {}", i + 1, e.message),
                        )
                    })?;
                    if let Some(fail) = &step.fail_if
                        && fail.is_match(&line)
                    {
                        return Err(ProbeError::new(
                            ErrorType::AssertionFailed,
                            format!("query step {}: line {:?} matches fail_if /{fail}/", i + 1, clip(&line)),
                        ));
                    }
                    if expect.is_match(&line) {
                        matched = Some(line);
                        break;
                    }
                }
            }
            if let Some(send) = &step.send {
                let text = match (&step.expect, &matched) {
                    (Some(re), Some(line)) => {
                        let caps = re.captures(line).expect("the line matched");
                        let mut out = String::new();
                        caps.expand(send, &mut out);
                        out
                    }
                    _ => send.clone(),
                };
                let write = async {
                    stream.write_all(text.as_bytes()).await?;
                    stream.write_all(b"\n").await?;
                    stream.flush().await
                };
                write.await.map_err(|e| {
                    ProbeError::new(
                        ErrorType::ConnectionClosed,
                        format!("query step {}: sending: {e}", i + 1),
                    )
                })?;
            }
            if step.starttls {
                let Some(config) = &self.starttls else { continue };
                let Some(Stream::Plain(tcp)) = slot.take() else {
                    return Err(ProbeError::new(
                        ErrorType::ProtocolError,
                        "starttls on a TLS connection",
                    ));
                };
                if !lines.buffered.is_empty() {
                    return Err(ProbeError::new(
                        ErrorType::ProtocolError,
                        "the server sent data after the STARTTLS reply, before the TLS handshake",
                    ));
                }
                let before = rec.get(net::PHASE_TLS).unwrap_or(0.0);
                let (tls, _) =
                    net::start_tls(rec, tcp, config, self.server_name.as_deref().unwrap_or(&self.host)).await?;
                *starttls_time += rec.get(net::PHASE_TLS).unwrap_or(0.0) - before;
                *slot = Some(tls);
                rec.enter("exchange");
            }
        }
        Ok(())
    }
}

/// Reads `\n`-terminated lines (a trailing `\r` dropped), bounded per line and per run.
#[derive(Default)]
struct LineReader {
    buffered: Vec<u8>,
    total: usize,
}

impl LineReader {
    async fn next_line(&mut self, stream: &mut Stream) -> Result<String, ProbeError> {
        loop {
            if let Some(end) = self.buffered.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buffered.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buffered.len() >= MAX_LINE {
                return Err(ProbeError::new(
                    ErrorType::MessageTooLarge,
                    format!("a line longer than {} KiB", MAX_LINE / 1024),
                ));
            }
            if self.total >= MAX_READ {
                return Err(ProbeError::new(
                    ErrorType::MessageTooLarge,
                    format!("more than {} KiB read without a match", MAX_READ / 1024),
                ));
            }
            let mut chunk = [0u8; 4096];
            let room = (MAX_LINE - self.buffered.len()).min(chunk.len());
            let n = stream
                .read(&mut chunk[..room])
                .await
                .map_err(|e| ProbeError::new(ErrorType::ConnectionClosed, format!("reading: {e}")))?;
            if n == 0 {
                return Err(ProbeError::new(ErrorType::ConnectionClosed, "the connection closed"));
            }
            self.total += n;
            self.buffered.extend_from_slice(&chunk[..n]);
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}
