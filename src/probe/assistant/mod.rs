//! `kind = "assistant"`: time to first token over a streaming LLM response, the way the
//! user sees it. Connection phases come from the shared timed HTTP exchange; the stream is
//! read event by event (SSE through the bounded decoder in `sse.rs`) and each event is
//! classified by the configured wire format. Definitions: docs/metrics.md, "Assistant".

pub mod sse;

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

pub const KIND: Kind = Kind {
    name: "assistant",
    measures: MEASURES,
    settings: super::kind::settings_of::<AssistantSettings>,
    schema: <AssistantSettings as JsonSchema>::json_schema,
    goodput: &["ttft", "tpot"],
    headline: &["ttft", "tpot", "e2e"],
    median_gate: false,
};

/// The keys of `kind = "assistant"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssistantSettings {
    /// The streaming endpoint, http:// or https://.
    pub url: Spanned<String>,
    /// The stream's wire format.
    pub format: Format,
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

const GENAI: &[&str] = &["gen_ai.request.model", "gen_ai.provider.name", "gen_ai.operation.name"];
const GENAI_E2E: &[&str] = &[
    "gen_ai.request.model",
    "gen_ai.provider.name",
    "gen_ai.operation.name",
    "http.response.status_code",
    crate::outcome::ERROR_TYPE_LABEL,
];
const TOKENS: &[&str] = &[
    "gen_ai.request.model",
    "gen_ai.provider.name",
    "gen_ai.operation.name",
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
        Mean,
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
        Mean,
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
        instrument: Instrument::Mean,
        description: "Tokens per run, by gen_ai.token.type; from server usage when sent, else counted output events.",
        fixed: &[("gen_ai.token.type", "output")],
        labels: TOKENS,
    },
    Measure {
        key: "input_tokens",
        metric: "gen_ai.client.token.usage",
        unit: Unit::Tokens,
        instrument: Instrument::Mean,
        description: "Tokens per run, by gen_ai.token.type; from server usage when sent, else counted output events.",
        fixed: &[("gen_ai.token.type", "input")],
        labels: TOKENS,
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

/// The stream's wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Format {
    /// OpenAI chat.completions SSE.
    #[serde(rename = "openai-chat")]
    OpenAiChat,
    /// OpenAI Responses API events.
    #[serde(rename = "openai-responses")]
    OpenAiResponses,
    /// Anthropic Messages SSE.
    #[serde(rename = "anthropic-messages")]
    AnthropicMessages,
    /// Any SSE stream: the first non-empty `data` is the first token.
    #[serde(rename = "sse")]
    Sse,
    /// Any streamed body: the first non-empty bytes are the first token.
    #[serde(rename = "chunked")]
    Chunked,
}

impl Format {
    fn provider(self) -> Option<&'static str> {
        match self {
            Format::OpenAiChat | Format::OpenAiResponses => Some("openai"),
            Format::AnthropicMessages => Some("anthropic"),
            Format::Sse | Format::Chunked => None,
        }
    }

    /// The event that ends a well-formed stream, for formats that have one.
    fn terminal(self) -> Option<&'static str> {
        match self {
            Format::OpenAiChat => Some("data: [DONE]"),
            Format::OpenAiResponses => Some("response.completed"),
            Format::AnthropicMessages => Some("message_stop"),
            Format::Sse | Format::Chunked => None,
        }
    }
}

/// What one event means for the measurements.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Visible output (text, refusal, tool-call arguments).
    Content,
    /// Reasoning / thinking output.
    Reasoning,
    /// Token usage reported by the server (absent fields stay as they were).
    Usage { input: Option<u64>, output: Option<u64> },
    /// The stream's terminal event.
    Done,
    /// An error reported inside the stream.
    Error(String),
}

pub struct AssistantProbe {
    url: url::Url,
    format: Format,
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
        lines.push(format!("format: {:?}", self.format));
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
        return Err(cfg.error_at(
            &cfg.common.name,
            "probe.body",
            "set the request body once: `body` or `body_file`",
        ));
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
    Ok(Box::new(AssistantProbe {
        url: t.url,
        format,
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
        let (output, source) = match self.usage_output {
            Some(n) => (n, "usage"),
            None => (self.content_events, "counted"),
        };
        rec.set("output_tokens", output as f64);
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

impl AssistantProbe {
    async fn run_stream(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        // A failed call is still an operation: its duration is recorded with error.type.
        rec.default_to_total("e2e");
        rec.label("gen_ai.operation.name", "chat");
        if let Some(p) = self.format.provider() {
            rec.label("gen_ai.provider.name", p);
        }
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
        let mut tally = Tally::default();
        let result = self.read_events(rec, resp.into_body(), &mut tally).await;
        rec.set("e2e", rec.offset(Instant::now()));
        tally.finish(rec);
        result?;
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

fn protocol_error(format: Format, data: &str, e: serde_json::Error) -> ProbeError {
    let snippet: String = data.chars().take(80).collect();
    ProbeError::new(
        ErrorType::ProtocolError,
        format!("malformed {format:?} event ({e}): {snippet}"),
    )
}

fn non_empty_str(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_u64)
}

fn error_message(v: &Value) -> String {
    v.get("message")
        .or_else(|| v.get("error").and_then(|e| e.get("message")))
        .and_then(Value::as_str)
        .unwrap_or("unspecified error")
        .to_string()
}

/// What one SSE event means, per wire format. Role-only chunks, empty or null content,
/// pings and usage-only chunks carry no `Content`.
pub fn classify(format: Format, event: &str, data: &str) -> Result<Vec<Signal>, ProbeError> {
    let mut out = Vec::new();
    match format {
        Format::Sse => {
            if !data.trim().is_empty() {
                out.push(Signal::Content);
            }
        }
        Format::Chunked => out.push(Signal::Content),
        Format::OpenAiChat => {
            if data.trim() == "[DONE]" {
                return Ok(vec![Signal::Done]);
            }
            let v: Value = serde_json::from_str(data).map_err(|e| protocol_error(format, data, e))?;
            if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
                return Ok(vec![Signal::Error(error_message(&serde_json::json!({ "error": err })))]);
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                out.push(Signal::Usage {
                    input: u64_at(u, &["prompt_tokens"]),
                    output: u64_at(u, &["completion_tokens"]),
                });
            }
            for choice in v.get("choices").and_then(Value::as_array).into_iter().flatten() {
                let Some(delta) = choice.get("delta") else { continue };
                if non_empty_str(delta.get("reasoning_content")) || non_empty_str(delta.get("reasoning")) {
                    out.push(Signal::Reasoning);
                }
                let tools = delta
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .is_some_and(|t| !t.is_empty());
                if non_empty_str(delta.get("content")) || non_empty_str(delta.get("refusal")) || tools {
                    out.push(Signal::Content);
                }
            }
        }
        Format::OpenAiResponses => {
            let v: Value = serde_json::from_str(data).map_err(|e| protocol_error(format, data, e))?;
            let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
            match kind {
                "response.output_text.delta" | "response.refusal.delta" | "response.function_call_arguments.delta"
                    if non_empty_str(v.get("delta")) =>
                {
                    out.push(Signal::Content)
                }
                "response.reasoning_text.delta" | "response.reasoning_summary_text.delta"
                    if non_empty_str(v.get("delta")) =>
                {
                    out.push(Signal::Reasoning)
                }
                "response.completed" | "response.incomplete" => {
                    let usage = v
                        .get("response")
                        .and_then(|r| r.get("usage"))
                        .cloned()
                        .unwrap_or_default();
                    out.push(Signal::Usage {
                        input: u64_at(&usage, &["input_tokens"]),
                        output: u64_at(&usage, &["output_tokens"]),
                    });
                    out.push(Signal::Done);
                }
                "response.failed" => {
                    let err = v
                        .get("response")
                        .and_then(|r| r.get("error"))
                        .cloned()
                        .unwrap_or_default();
                    out.push(Signal::Error(error_message(&err)));
                }
                "error" => out.push(Signal::Error(error_message(&v))),
                _ => {}
            }
        }
        Format::AnthropicMessages => {
            let v: Value = serde_json::from_str(data).map_err(|e| protocol_error(format, data, e))?;
            let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
            match kind {
                "message_start" => out.push(Signal::Usage {
                    input: u64_at(&v, &["message", "usage", "input_tokens"]),
                    output: None,
                }),
                "content_block_delta" => {
                    let delta = v.get("delta").cloned().unwrap_or_default();
                    match delta.get("type").and_then(Value::as_str) {
                        Some("text_delta") if non_empty_str(delta.get("text")) => out.push(Signal::Content),
                        Some("input_json_delta") if non_empty_str(delta.get("partial_json")) => {
                            out.push(Signal::Content)
                        }
                        Some("thinking_delta") if non_empty_str(delta.get("thinking")) => out.push(Signal::Reasoning),
                        _ => {}
                    }
                }
                // Cumulative: the last one is the total.
                "message_delta" => out.push(Signal::Usage {
                    input: None,
                    output: u64_at(&v, &["usage", "output_tokens"]),
                }),
                "message_stop" => out.push(Signal::Done),
                "error" => out.push(Signal::Error(error_message(&v))),
                _ => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs raw stream bytes through the SSE parser, split into reads at `cuts`, and
    /// classifies every event.
    fn parse(format: Format, wire: &str, cuts: &[usize]) -> Vec<Result<Vec<Signal>, ErrorType>> {
        let mut pieces = Vec::new();
        let mut last = 0;
        for &c in cuts.iter().chain(std::iter::once(&wire.len())) {
            if c > last && c <= wire.len() {
                pieces.push(&wire.as_bytes()[last..c]);
                last = c;
            }
        }
        let mut decoder = sse::Decoder::new(DEFAULT_MAX_EVENT);
        let mut events = Vec::new();
        for p in pieces {
            decoder.feed(p, &mut events).expect("within max_event");
        }
        events
            .into_iter()
            .map(|e| classify(format, &e.event, &e.data).map_err(|e| e.kind))
            .collect()
    }

    const CHAT: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
: ping\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":null}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\n\
data: [DONE]\n\n";

    fn chat_expected() -> Vec<Result<Vec<Signal>, ErrorType>> {
        vec![
            Ok(vec![]), // role-only, empty content
            Ok(vec![]), // null content
            Ok(vec![Signal::Content]),
            Ok(vec![Signal::Content]),
            Ok(vec![Signal::Usage {
                input: Some(9),
                output: Some(2),
            }]),
            Ok(vec![Signal::Done]),
        ]
    }

    #[test]
    fn openai_chat_at_every_split_point_and_with_crlf() {
        // One read, several events per read.
        assert_eq!(parse(Format::OpenAiChat, CHAT, &[]), chat_expected());
        // Every possible split into two reads, and byte-by-byte.
        for cut in 1..CHAT.len() {
            assert_eq!(parse(Format::OpenAiChat, CHAT, &[cut]), chat_expected(), "cut at {cut}");
        }
        let every: Vec<usize> = (1..CHAT.len()).collect();
        assert_eq!(parse(Format::OpenAiChat, CHAT, &every), chat_expected());
        let crlf = CHAT.replace('\n', "\r\n");
        for cut in 1..crlf.len() {
            assert_eq!(
                parse(Format::OpenAiChat, &crlf, &[cut]),
                chat_expected(),
                "crlf cut at {cut}"
            );
        }
    }

    #[test]
    fn openai_chat_reasoning_tools_errors_and_malformed() {
        let r = classify(
            Format::OpenAiChat,
            "message",
            r#"{"choices":[{"delta":{"content":null,"reasoning_content":"hmm"}}]}"#,
        );
        assert_eq!(r.unwrap(), vec![Signal::Reasoning]);
        let r = classify(
            Format::OpenAiChat,
            "message",
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
        );
        assert_eq!(r.unwrap(), vec![Signal::Content]);
        let r = classify(Format::OpenAiChat, "message", r#"{"error":{"message":"overloaded"}}"#).unwrap();
        assert_eq!(r, vec![Signal::Error("overloaded".into())]);
        let e = classify(Format::OpenAiChat, "message", r#"{"choices":[{"delta":{"content":"x""#).unwrap_err();
        assert_eq!(e.kind, ErrorType::ProtocolError);
    }

    #[test]
    fn anthropic_events() {
        let wire = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n\
event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let expected = vec![
            Ok(vec![Signal::Usage {
                input: Some(25),
                output: None,
            }]),
            Ok(vec![]),
            Ok(vec![Signal::Reasoning]),
            Ok(vec![Signal::Content]),
            Ok(vec![Signal::Usage {
                input: None,
                output: Some(15),
            }]),
            Ok(vec![Signal::Error("Overloaded".into())]),
            Ok(vec![Signal::Done]),
        ];
        for cut in [0, 7, 20, 100, 150, 333] {
            assert_eq!(parse(Format::AnthropicMessages, wire, &[cut]), expected, "cut at {cut}");
        }
    }

    #[test]
    fn responses_events() {
        let wire = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\"}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":7}}}\n\n";
        let got = parse(Format::OpenAiResponses, wire, &[33]);
        assert_eq!(
            got,
            vec![
                Ok(vec![]),
                Ok(vec![]),
                Ok(vec![Signal::Content]),
                Ok(vec![
                    Signal::Usage {
                        input: Some(5),
                        output: Some(7)
                    },
                    Signal::Done
                ]),
            ]
        );
        let failed = r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"boom"}}}"#;
        assert_eq!(
            classify(Format::OpenAiResponses, "response.failed", failed).unwrap(),
            vec![Signal::Error("boom".into())]
        );
    }

    #[test]
    fn generic_sse_counts_first_non_empty_data() {
        let wire = ": keepalive\n\nevent: status\ndata: \n\ndata: first\n\n";
        // The comment is no event; the empty-data event is one, but carries no output.
        assert_eq!(
            parse(Format::Sse, wire, &[3]),
            vec![Ok(vec![]), Ok(vec![Signal::Content])]
        );
    }
}
