//! `kind = "assistant"`: time to first token over a streaming LLM response, the way the
//! user sees it. Connection phases come from the shared timed HTTP exchange; the stream is
//! read event by event (SSE through the bounded decoder in `sse.rs`) and each event is
//! classified by the configured wire format. Definitions: docs/metrics.md, "Assistant".

pub mod sse;
mod wire;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::Method;
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use serde_json::Value;

use schemars::JsonSchema;
use serde::Deserialize;

use super::http_config::{self, HttpVersion, Request, TargetKeys, Tls};
use super::kind::{BoxFuture, BuildContext, Kind, Probe, ProbeConfig, Settings};
use crate::config::{ConfigError, Dur, Size, Spanned};
use crate::net::Resolver;
use crate::net::http::{self as nethttp, BodySpec, Version};
use crate::outcome::{ErrorType, Instrument, Measure, ProbeError, Recorder, Unit};
pub use wire::{Format, Signal, classify};

pub const KIND: Kind = Kind {
    name: "assistant",
    measures: MEASURES,
    settings: super::kind::settings_of::<AssistantSettings>,
    schema: <AssistantSettings as JsonSchema>::json_schema,
    goodput: &["ttft", "tpot"],
    headline: &["ttft", "tpot", "e2e"],
    median_gate: false,
    long_runs: false,
    target_key: Some(("url", "http://127.0.0.1:1/")),
};

/// The keys of `kind = "assistant"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantSettings {
    /// The streaming endpoint, http:// or https://.
    pub url: Spanned<String>,
    /// The stream's wire format.
    pub format: Format,
    /// `gen_ai.provider.name` (e.g. "openai", "aws.bedrock", "gcp.vertex_ai"): the vendor
    /// formats set it; for "sse" and "chunked" streams only this key does.
    pub provider: Option<Spanned<String>>,
    /// The longest silence between two events before the run fails with `stream_stalled`; at most `timeout`.
    pub stall_timeout: Option<Spanned<Dur>>,
    /// The longest SSE line or event accepted (default 1MiB, at most 64MiB); longer is `protocol_error`.
    pub max_event: Option<Spanned<Size>>,
    /// The request body (JSON for the vendor formats); its `model` becomes `gen_ai.request.model`.
    pub body: Option<Spanned<String>>,
    /// The request body read from a file (relative to the config file, at most 64 MiB).
    pub body_file: Option<Spanned<String>>,
    /// "auto" (ALPN h2 or http/1.1), "1.1" or "2".
    #[serde(default)]
    pub http_version: HttpVersion,
    /// The request: method, headers, secrets (`body` / `body_file` here too; no `body_size`).
    #[serde(default)]
    pub request: Request,
    /// What a good response looks like before the stream starts.
    #[serde(default)]
    pub expect: StreamExpect,
    /// TLS options.
    #[serde(default)]
    pub tls: Tls,
}

/// `[probe.expect]` of the assistant kind.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamExpect {
    /// Accepted status codes (default: any 2xx).
    pub status: Option<Spanned<Vec<u16>>>,
    /// Response headers that must be present.
    #[serde(default)]
    pub header_present: Vec<Spanned<String>>,
}

const GENAI: &[&str] = &[
    "gen_ai.request.model",
    "gen_ai.provider.name",
    "gen_ai.operation.name",
    "server.address",
    "server.port",
];
const GENAI_E2E: &[&str] = &[
    "gen_ai.request.model",
    "gen_ai.provider.name",
    "gen_ai.operation.name",
    "server.address",
    "server.port",
    "http.response.status_code",
    crate::outcome::ERROR_TYPE_LABEL,
];
const TOKENS: &[&str] = &[
    "gen_ai.request.model",
    "gen_ai.provider.name",
    "gen_ai.operation.name",
    "server.address",
    "server.port",
    "probe.token.source",
];

macro_rules! seconds {
    ($key:literal, $metric:literal, $labels:expr, $desc:literal) => {
        seconds!($key, $metric, Histogram, $labels, $desc)
    };
    ($key:literal, $metric:literal, $instrument:ident, $labels:expr, $desc:literal) => {
        Measure {
            key: $key,
            metric: $metric,
            unit: Unit::Seconds,
            instrument: Instrument::$instrument,
            description: $desc,
            fixed: &[],
            labels: $labels,
        }
    };
}

pub const MEASURES: &[Measure] = &[
    http_phase!("dns", &[]),
    http_phase!("connect", &[]),
    http_phase!("tls", &[]),
    super::kind::CERT_EXPIRY,
    http_phase!("send", &[]),
    http_phase!("wait", &[]),
    seconds!(
        "ttfb",
        "probe.http.ttfb",
        &[],
        "Run start to first response byte (curl's time_starttransfer)."
    ),
    seconds!(
        "first_chunk",
        "gen_ai.client.operation.time_to_first_chunk",
        GENAI,
        "Run start to the first streamed event of any kind."
    ),
    seconds!(
        "ttft",
        "probe.assistant.ttft",
        GENAI,
        "Run start to the first event carrying visible output."
    ),
    seconds!(
        "ttft_reasoning",
        "probe.assistant.ttft_reasoning",
        Mean,
        GENAI,
        "Run start to the first reasoning/thinking output, when it comes before visible output."
    ),
    seconds!(
        "e2e",
        "gen_ai.client.operation.duration",
        GENAI_E2E,
        "Run start to the end of the stream."
    ),
    seconds!(
        "gap",
        "gen_ai.client.operation.time_per_output_chunk",
        GENAI,
        "Time between consecutive output events (every gap of every run)."
    ),
    seconds!(
        "tpot",
        "probe.assistant.tpot",
        Mean,
        GENAI,
        "Time per output token after the first: (last − first output) / (output tokens − 1)."
    ),
    Measure {
        key: "output_tokens",
        metric: "gen_ai.client.token.usage",
        unit: Unit::Tokens,
        instrument: Instrument::Histogram,
        description: "Tokens per run, by gen_ai.token.type, from the server's usage (not reported when the stream carries none).",
        fixed: &[("gen_ai.token.type", "output")],
        labels: TOKENS,
    },
    Measure {
        key: "input_tokens",
        metric: "gen_ai.client.token.usage",
        unit: Unit::Tokens,
        instrument: Instrument::Histogram,
        description: "Tokens per run, by gen_ai.token.type, from the server's usage (not reported when the stream carries none).",
        fixed: &[("gen_ai.token.type", "input")],
        labels: TOKENS,
    },
    Measure {
        key: "output_events",
        metric: "probe.assistant.output.events",
        unit: Unit::Count,
        instrument: Instrument::Mean,
        description: "Events carrying visible output in the run (what TPOT is per when the stream has no usage).",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "goodput",
        metric: "probe.assistant.goodput",
        unit: Unit::Runs,
        instrument: Instrument::Counter,
        description: "Runs that succeeded within both their ttft and tpot budgets.",
        fixed: &[],
        labels: GENAI,
    },
];

pub struct AssistantProbe {
    url: url::Url,
    format: Format,
    /// `provider`, when set: wins over the format's own.
    provider: Option<String>,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: BodySpec,
    model: Option<String>,
    status: Option<Vec<u16>>,
    header_present: Vec<HeaderName>,
    stall_timeout: Option<Duration>,
    max_event: usize,
    tls: std::sync::Arc<rustls::ClientConfig>,
    server_name: Option<String>,
    version: Version,
    resolver: Resolver,
}

/// Longest SSE line or event accepted by default; a longer one is a `protocol_error`.
const DEFAULT_MAX_EVENT: usize = 1024 * 1024;
const MAX_MAX_EVENT: usize = 64 * 1024 * 1024;

impl Settings for AssistantSettings {
    fn plan(&self) -> Vec<String> {
        let mut lines = http_config::plan(&self.url, &self.request);
        lines.push(format!("format: {}", crate::config::as_written(&self.format)));
        lines
    }

    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        build(self, cfg, ctx)
    }
}

fn build(raw: &AssistantSettings, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
    let t = http_config::target(
        cfg,
        ctx,
        &TargetKeys {
            kind: "assistant",
            url: &raw.url,
            http_version: raw.http_version,
            request: &raw.request,
            status: raw.expect.status.as_ref(),
            header_present: &raw.expect.header_present,
            tls: &raw.tls,
        },
    )?;
    let format = raw.format;
    let req = &raw.request;
    if let Some(n) = &req.body_size {
        return Err(cfg.error_at(
            n,
            "probe.request.body_size",
            "an assistant request needs a real body (`body` or `body_file`), not a generated one",
        ));
    }
    let given = [
        raw.body.is_some(),
        raw.body_file.is_some(),
        req.body.is_some(),
        req.body_file.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        // Point at the second one given.
        let (at, key) = match (&raw.body_file, &req.body_file, &req.body) {
            (Some(f), _, _) => (f, "probe.body_file"),
            (None, Some(f), _) => (f, "probe.request.body_file"),
            (None, None, Some(b)) => (b, "probe.request.body"),
            _ => (&cfg.common.name, "probe.body"),
        };
        return Err(cfg.error_at(at, key, "set the request body once: `body` or `body_file`"));
    }
    let body_text = if let Some(b) = raw.body.as_ref().or(req.body.as_ref()) {
        Some((b.get_ref().clone(), b))
    } else if let Some(f) = raw.body_file.as_ref().or(req.body_file.as_ref()) {
        let bytes = cfg.read_file(f, "probe.body_file", crate::config::MAX_BODY_FILE)?;
        let text =
            String::from_utf8(bytes).map_err(|_| cfg.error_at(f, "probe.body_file", "body file is not UTF-8 text"))?;
        Some((text, f))
    } else {
        None
    };
    // The vendor formats take JSON; an app's own stream (`sse`, `chunked`) may not.
    let mut model = None;
    if let Some((text, at)) = &body_text {
        match serde_json::from_str::<Value>(text) {
            Ok(json) => model = json.get("model").and_then(Value::as_str).map(str::to_string),
            Err(e) if !matches!(format, Format::Sse | Format::Chunked) => {
                return Err(cfg.error_at(*at, "probe.body", format!("body is not valid JSON: {e}")));
            }
            Err(_) => {}
        }
    }
    let body = body_text.map_or(BodySpec::Empty, |(t, _)| BodySpec::Bytes(Bytes::from(t)));
    let method = http_config::method(cfg, req, !matches!(body, BodySpec::Empty))?;

    let mut headers = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (
            header::ACCEPT,
            HeaderValue::from_static(if format == Format::Chunked {
                "*/*"
            } else {
                "text/event-stream"
            }),
        ),
    ];
    for (name, value) in t.headers {
        headers.retain(|(k, _)| *k != name);
        headers.push((name, value));
    }
    let stall_timeout = raw.stall_timeout.as_ref().map(|s| s.get_ref().0);
    if let (Some(st), Some(span)) = (stall_timeout, raw.stall_timeout.as_ref())
        && (st.is_zero() || st > cfg.timeout)
    {
        return Err(cfg.error_at(
            span,
            "probe.stall_timeout",
            "stall_timeout must be above zero and at most `timeout`",
        ));
    }
    let max_event = cfg.size_within(
        raw.max_event.as_ref(),
        "probe.max_event",
        DEFAULT_MAX_EVENT as u64,
        MAX_MAX_EVENT as u64,
    )? as usize;
    let provider = match &raw.provider {
        Some(p)
            if p.get_ref().is_empty()
                || p.get_ref().len() > 64
                || !p
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._".contains(c)) =>
        {
            return Err(cfg.error_at(
                p,
                "probe.provider",
                "a provider name is 1-64 of a-z 0-9 . _ (e.g. \"openai\", \"aws.bedrock\")",
            ));
        }
        p => p.as_ref().map(|p| p.get_ref().clone()),
    };
    Ok(Box::new(AssistantProbe {
        url: t.url,
        format,
        provider,
        method,
        headers,
        body,
        model,
        status: t.status,
        header_present: t.header_present,
        stall_timeout,
        max_event,
        tls: t.tls,
        server_name: t.server_name,
        version: t.version,
        resolver: ctx.resolver.clone(),
    }))
}

impl Probe for AssistantProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(self.run_stream(rec))
    }
}

/// The measurements of one stream, filled event by event so a cut-off run keeps them.
#[derive(Default)]
struct Tally {
    first_content: Option<Instant>,
    last_content: Option<Instant>,
    content_events: u64,
    usage_input: Option<u64>,
    usage_output: Option<u64>,
    done: bool,
    body_bytes: u64,
}

impl Tally {
    fn apply(&mut self, rec: &mut Recorder, signals: &[Signal], at: Instant) -> Result<(), ProbeError> {
        let mut content = false;
        for s in signals {
            match s {
                Signal::Content => content = true,
                Signal::Reasoning => {
                    if self.first_content.is_none() && rec.get("ttft_reasoning").is_none() {
                        rec.set("ttft_reasoning", rec.offset(at));
                    }
                }
                Signal::Usage { input, output } => {
                    self.usage_input = input.or(self.usage_input);
                    self.usage_output = output.or(self.usage_output);
                }
                Signal::Done => self.done = true,
                Signal::Error(msg) => {
                    return Err(ProbeError::new(
                        ErrorType::UpstreamError,
                        format!("error event in stream: {msg}"),
                    ));
                }
            }
        }
        if content {
            if let Some(prev) = self.last_content {
                rec.sample("gap", (at - prev).as_secs_f64());
            } else {
                self.first_content = Some(at);
                rec.set("ttft", rec.offset(at));
            }
            self.last_content = Some(at);
            self.content_events += 1;
        }
        Ok(())
    }

    fn finish(&self, rec: &mut Recorder) {
        // Token counts come from the server's usage only: the semantic conventions say not
        // to report tokens that are not known, so a stream without usage reports its
        // output events apart (`output_events`), and TPOT is then per event.
        let (output, source) = match self.usage_output {
            Some(n) => {
                rec.set("output_tokens", n as f64);
                (n, "usage")
            }
            None => (self.content_events, "counted"),
        };
        rec.set("output_events", self.content_events as f64);
        rec.label("probe.token.source", source);
        if let Some(n) = self.usage_input {
            rec.set("input_tokens", n as f64);
        }
        if let (Some(first), Some(last)) = (self.first_content, self.last_content)
            && output > 1
        {
            rec.set("tpot", (last - first).as_secs_f64() / (output - 1) as f64);
        }
    }
}

/// How much of a non-streamed answer is kept to describe it.
const NOT_STREAMED_HEAD: usize = 4096;

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence == "application/json" || essence.ends_with("+json")
}

/// `not_streamed`: what came instead of an event stream, with its shape when it is one of
/// the vendors' non-streamed answers.
fn not_streamed(content_type: &str, bytes: Option<u64>, head: Option<&[u8]>) -> ProbeError {
    let ct = if content_type.is_empty() {
        "no content type"
    } else {
        content_type
    };
    let size = bytes.map_or("over max_event".to_string(), |n| format!("{n} bytes"));
    let json = head.and_then(|h| serde_json::from_slice::<Value>(h).ok());
    let shape = match &json {
        Some(v) if v.get("error").is_some_and(|e| !e.is_null()) => {
            format!("an error object: {}", wire::error_message(v))
        }
        Some(v) if v.get("choices").is_some() => "a whole chat completion".to_string(),
        Some(v) if v.get("object").and_then(Value::as_str) == Some("response") => {
            "a whole Responses object".to_string()
        }
        Some(v) if v.get("type").and_then(Value::as_str) == Some("message") => "a whole Anthropic message".to_string(),
        Some(Value::Object(m)) => {
            let keys: Vec<&str> = m.keys().take(6).map(String::as_str).collect();
            format!("a JSON object with keys {}", keys.join(", "))
        }
        Some(_) => "a JSON value".to_string(),
        None if head.is_some() || is_json(content_type) => "JSON".to_string(),
        None => "no event-stream events".to_string(),
    };
    ProbeError::new(
        ErrorType::NotStreamed,
        format!(
            "the server answered a stream request without a stream ({ct}, {size}: {shape}); was `stream: true` sent and honoured?"
        ),
    )
}

impl AssistantProbe {
    async fn run_stream(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        // A failed call is still an operation: its duration is recorded with error.type.
        rec.default_to_total("e2e");
        rec.label("gen_ai.operation.name", "chat");
        if let Some(p) = self.provider.as_deref().or(self.format.provider()) {
            rec.label("gen_ai.provider.name", p.to_string());
        }
        rec.label("server.address", self.url.host_str().unwrap_or_default());
        rec.label("server.port", i64::from(self.url.port_or_known_default().unwrap_or(0)));
        if let Some(m) = &self.model {
            rec.label("gen_ai.request.model", m.clone());
        }
        let mut conn = nethttp::open(
            &self.resolver,
            rec,
            &self.url,
            &self.tls,
            self.server_name.as_deref(),
            self.version,
        )
        .await?;
        let req = nethttp::build_request(&self.url, &self.method, &self.headers, &self.body, conn.is_h2(), false)?;
        let (resp, _first_byte) = conn.exchange(rec, req).await?;
        let status = resp.status().as_u16();
        rec.label("http.response.status_code", i64::from(status));
        let ok = match &self.status {
            Some(list) => list.contains(&status),
            None => (200..300).contains(&status),
        };
        if !ok {
            return Err(nethttp::status_error(rec, status, resp.headers()));
        }
        for h in &self.header_present {
            if !resp.headers().contains_key(h) {
                return Err(ProbeError::new(
                    ErrorType::AssertionFailed,
                    format!("response header {h} is missing"),
                ));
            }
        }
        rec.enter("stream");
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if self.format != Format::Chunked && is_json(&content_type) {
            // The server ignored `stream: true` (or a gateway answered for it): say so,
            // rather than `no_content` after parsing JSON as events.
            let read = nethttp::read_body(resp.into_body(), self.max_event as u64, NOT_STREAMED_HEAD).await;
            rec.set("e2e", rec.offset(Instant::now()));
            let (n, head) = read.map_or((None, None), |(n, head)| (Some(n), head));
            return Err(not_streamed(&content_type, n, head.as_deref()));
        }
        let mut tally = Tally::default();
        let result = self.read_events(rec, resp.into_body(), &mut tally).await;
        rec.set("e2e", rec.offset(Instant::now()));
        tally.finish(rec);
        result?;
        if self.format != Format::Chunked && rec.get("first_chunk").is_none() && tally.body_bytes > 0 {
            return Err(not_streamed(&content_type, Some(tally.body_bytes), None));
        }
        if tally.content_events == 0 {
            return Err(ProbeError::new(ErrorType::NoContent, "stream ended before any output"));
        }
        if let Some(terminal) = self.format.terminal()
            && !tally.done
        {
            return Err(ProbeError::new(
                ErrorType::ProtocolError,
                format!("stream ended without its terminal event ({terminal})"),
            ));
        }
        Ok(())
    }

    async fn read_events(&self, rec: &mut Recorder, body: Incoming, tally: &mut Tally) -> Result<(), ProbeError> {
        let data = BodyDataStream::new(body);
        if self.format == Format::Chunked {
            let mut chunks = Box::pin(data);
            while let Some(chunk) = self.next_within_stall(chunks.next()).await? {
                let chunk = chunk.map_err(|e| nethttp::classify_hyper(&e, "reading the stream"))?;
                let now = Instant::now();
                if rec.get("first_chunk").is_none() {
                    rec.set("first_chunk", rec.offset(now));
                }
                if !chunk.is_empty() {
                    tally.apply(rec, &[Signal::Content], now)?;
                }
                tokio::task::consume_budget().await;
            }
            return Ok(());
        }
        let mut chunks = Box::pin(data);
        let mut decoder = sse::Decoder::new(self.max_event);
        let mut events = Vec::new();
        while let Some(chunk) = self.next_within_stall(chunks.next()).await? {
            let chunk = chunk.map_err(|e| nethttp::classify_hyper(&e, "reading the stream"))?;
            let now = Instant::now();
            tally.body_bytes += chunk.len() as u64;
            decoder.feed(&chunk, &mut events).map_err(|e| {
                ProbeError::new(
                    ErrorType::ProtocolError,
                    format!("an event stream line or event exceeded max_event ({} bytes)", e.limit),
                )
            })?;
            for event in events.drain(..) {
                if rec.get("first_chunk").is_none() {
                    rec.set("first_chunk", rec.offset(now));
                }
                let signals = classify(self.format, &event.event, &event.data)?;
                tally.apply(rec, &signals, now)?;
            }
            // Decoding is bounded per chunk; still, a target that sends without pause
            // should not keep this task on the CPU ahead of other probes and the scrape.
            tokio::task::consume_budget().await;
        }
        Ok(())
    }

    async fn next_within_stall<T>(&self, next: impl Future<Output = Option<T>>) -> Result<Option<T>, ProbeError> {
        match self.stall_timeout {
            None => Ok(next.await),
            Some(d) => tokio::time::timeout(d, next).await.map_err(|_| {
                ProbeError::new(
                    ErrorType::StreamStalled,
                    format!("no event for {}", humantime::format_duration(d)),
                )
            }),
        }
    }
}
