//! `kind = "websocket"`: what a user of a realtime feature waits for. Opens the socket over
//! the shared timed connection (DNS, connect, TLS timed by `net`), times the upgrade,
//! control ping → pong round trips (with loss and jitter), application round trips (send a
//! message, wait for the reply that matches), server pushes, the close handshake and a
//! reconnect. The WebSocket protocol itself is tokio-tungstenite's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue};
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use super::http_config::{self, HttpVersion, Request, TargetKeys, Tls};
use super::kind::{BoxFuture, BuildContext, Kind, Probe, ProbeConfig, Settings};
use crate::config::{ConfigError, Dur, Size, Spanned};
use crate::net::{self, Endpoint, Resolver, Stream, TimedIo};
use crate::outcome::{ErrorType, Instrument, Measure, ProbeError, Recorder, Unit};

pub const KIND: Kind = Kind {
    name: "websocket",
    measures: MEASURES,
    settings: super::kind::settings_of::<WebsocketSettings>,
    schema: <WebsocketSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["open", "message_rtt", "ping_rtt"],
    median_gate: false,
};

/// The keys of `kind = "websocket"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebsocketSettings {
    /// ws:// or wss:// URL.
    pub url: Spanned<String>,
    /// Offered in Sec-WebSocket-Protocol, e.g. ["graphql-transport-ws"].
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// Sent as the Origin header.
    pub origin: Option<String>,
    /// Control-frame pings after open (default 0).
    #[serde(default)]
    pub pings: u32,
    /// Time between pings (default 100ms).
    pub ping_interval: Option<Spanned<Dur>>,
    /// A pong not seen within this counts as lost (default 1s).
    pub pong_timeout: Option<Spanned<Dur>>,
    /// Close, reopen, and time the reopen (`reconnect`).
    #[serde(default)]
    pub reconnect: bool,
    /// The largest message accepted (default 1MiB, at most 64MiB); larger is `message_too_large`.
    pub max_message: Option<Spanned<Size>>,
    /// Headers and secrets for the upgrade request (`headers`, `bearer`).
    #[serde(default)]
    pub request: Request,
    /// TLS options for wss://.
    #[serde(default)]
    pub tls: Tls,
    /// Steps run in order after open: send and expect a reply, or wait for a push.
    #[serde(default, rename = "step")]
    pub steps: Vec<StepConfig>,
}

/// `[[probe.step]]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// A text message to send.
    pub send: Option<Spanned<String>>,
    /// The reply to wait for after `send`; other messages are skipped and counted.
    pub expect: Option<Spanned<MatchConfig>>,
    /// A server-initiated message to wait for (timed from the step's start).
    pub expect_push: Option<Spanned<MatchConfig>>,
    /// The measurement this step feeds (default "message_rtt", or "push_wait" for a push).
    pub measure: Option<Spanned<String>>,
    /// How long to wait for the match (default 2s).
    pub timeout: Option<Spanned<Dur>>,
}

/// A message matcher: a JSON pointer (equal to `equals`, or present), or a regex.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// JSON pointer into the message, e.g. "/type".
    pub pointer: Option<String>,
    /// The value at `pointer` (string, number or bool).
    #[schemars(with = "Option<serde_json::Value>")]
    pub equals: Option<toml::Value>,
    /// A regex the whole text must match.
    pub regex: Option<String>,
}

const PHASE_DESC: &str =
    "WebSocket open by phase (dns, connect, tls, upgrade); count and sum only: rate(sum)/rate(count) is the mean.";

macro_rules! ws_phase {
    ($key:literal) => {
        Measure {
            key: $key,
            metric: "probe.websocket.phase.duration",
            unit: Unit::Seconds,
            instrument: Instrument::Mean,
            description: PHASE_DESC,
            fixed: &[("phase", $key)],
            labels: &[],
        }
    };
}

macro_rules! ws_step {
    ($key:literal) => {
        Measure {
            key: $key,
            metric: STEP_METRIC,
            unit: Unit::Seconds,
            instrument: Instrument::Histogram,
            description: STEP_DESC,
            fixed: &[("step", $key)],
            labels: &[],
        }
    };
}

const STEP_METRIC: &str = "probe.websocket.message.rtt";
const STEP_DESC: &str = "Application round trip of a step: message sent → matching reply (or step start → matching push), by step measure name.";

pub const MEASURES: &[Measure] = &[
    ws_phase!("dns"),
    ws_phase!("connect"),
    ws_phase!("tls"),
    ws_phase!("upgrade"),
    Measure {
        key: "open",
        metric: "probe.websocket.open.duration",
        unit: Unit::Seconds,
        instrument: Instrument::Histogram,
        description: "Run start to a usable socket (DNS, connect, TLS and upgrade).",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "ping_rtt",
        metric: "probe.websocket.ping.rtt",
        unit: Unit::Seconds,
        instrument: Instrument::Histogram,
        description: "Control ping → matching pong, every pong of every run.",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "ping_loss",
        metric: "probe.websocket.ping.loss",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "Share of the last run's pings whose pong did not come within pong_timeout (0 to 1).",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "ping_jitter",
        metric: "probe.websocket.ping.jitter",
        unit: Unit::Seconds,
        instrument: Instrument::Mean,
        description: "Mean absolute difference between consecutive ping round trips of a run.",
        fixed: &[],
        labels: &[],
    },
    ws_step!("message_rtt"),
    ws_step!("subscribe"),
    ws_step!("push_wait"),
    Measure {
        key: "skipped_messages",
        metric: "probe.websocket.messages.skipped",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "Messages in the last run that matched no step (not errors).",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "close",
        metric: "probe.websocket.close.duration",
        unit: Unit::Seconds,
        instrument: Instrument::Mean,
        description: "Close frame sent → the server's close (or end of stream).",
        fixed: &[],
        labels: &[],
    },
    Measure {
        key: "reconnect",
        metric: "probe.websocket.reconnect.duration",
        unit: Unit::Seconds,
        instrument: Instrument::Histogram,
        description: "After a close: DNS, connect, TLS and upgrade of a new socket, until usable again.",
        fixed: &[],
        labels: &[],
    },
];

const DEFAULT_MAX_MESSAGE: u64 = 1024 * 1024;
const MAX_MAX_MESSAGE: u64 = 64 * 1024 * 1024;
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// A step measure name not in the catalog gets a catalog entry of its own, made once per
/// distinct name for the life of the process (names come from config, so they are few).
fn step_measure(name: &str) -> &'static Measure {
    static MADE: OnceLock<Mutex<HashMap<String, &'static Measure>>> = OnceLock::new();
    if let Some(m) = MEASURES.iter().find(|m| m.key == name) {
        return m;
    }
    let mut made = MADE.get_or_init(Mutex::default).lock().expect("step measures");
    made.entry(name.to_string()).or_insert_with(|| {
        let key: &'static str = Box::leak(name.to_string().into_boxed_str());
        let fixed: &'static [(&'static str, &'static str)] = Box::leak(Box::new([("step", key)]));
        Box::leak(Box::new(Measure {
            key,
            metric: STEP_METRIC,
            unit: Unit::Seconds,
            instrument: Instrument::Histogram,
            description: STEP_DESC,
            fixed,
            labels: &[],
        }))
    })
}

struct Matcher {
    pointer: Option<String>,
    equals: Option<Value>,
    regex: Option<Regex>,
}

impl Matcher {
    fn matches(&self, text: &str) -> bool {
        if let Some(re) = &self.regex
            && !re.is_match(text)
        {
            return false;
        }
        if let Some(p) = &self.pointer {
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                return false;
            };
            return match (v.pointer(p), &self.equals) {
                (Some(found), Some(want)) => found == want,
                (Some(_), None) => true,
                (None, _) => false,
            };
        }
        true
    }
}

struct Step {
    send: Option<String>,
    expect: Option<Matcher>,
    measure: Option<&'static str>,
    timeout: Duration,
    label: String,
}

pub struct WebsocketProbe {
    url: url::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    subprotocols: Vec<String>,
    origin: Option<String>,
    pings: u32,
    ping_interval: Duration,
    pong_timeout: Duration,
    reconnect: bool,
    max_message: usize,
    steps: Vec<Step>,
    tls: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
    resolver: Resolver,
}

impl Settings for WebsocketSettings {
    fn plan(&self) -> Vec<String> {
        let mut lines = http_config::plan(&self.url, &self.request);
        lines.push(format!(
            "pings: {}, steps: {}, reconnect: {}",
            self.pings,
            self.steps.len(),
            self.reconnect
        ));
        lines
    }

    fn measures(&self) -> Vec<&'static Measure> {
        self.steps
            .iter()
            .filter_map(|s| s.measure.as_ref())
            .map(|m| step_measure(m.get_ref()))
            .collect()
    }

    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        let raw = self;
        let url = url::Url::parse(raw.url.get_ref()).map_err(|e| {
            cfg.error_at(
                &raw.url,
                "probe.url",
                format!("invalid URL {:?}: {e}", crate::redact::url(raw.url.get_ref())),
            )
        })?;
        let secure = match url.scheme() {
            "ws" => false,
            "wss" => true,
            _ => return Err(cfg.error_at(&raw.url, "probe.url", "websocket probes need a ws:// or wss:// URL")),
        };
        // The shared HTTP target checks headers, secrets and TLS; it wants http(s).
        let as_http = Spanned::new(
            raw.url.span(),
            format!(
                "{}{}",
                if secure { "https" } else { "http" },
                &raw.url.get_ref()[url.scheme().len()..]
            ),
        );
        let req = &raw.request;
        for (key, set) in [
            ("probe.request.method", req.method.as_ref().map(|m| m.span())),
            ("probe.request.body", req.body.as_ref().map(|m| m.span())),
            ("probe.request.body_file", req.body_file.as_ref().map(|m| m.span())),
            ("probe.request.body_size", req.body_size.as_ref().map(|m| m.span())),
        ] {
            if let Some(span) = set {
                return Err(cfg.source.error_at(
                    span,
                    Some(key),
                    "a websocket upgrade is a GET without a body; send messages with [[probe.step]] send",
                ));
            }
        }
        let t = http_config::target(
            cfg,
            ctx,
            &TargetKeys {
                kind: "websocket",
                url: &as_http,
                http_version: HttpVersion::Http1,
                request: req,
                status: None,
                header_present: &[],
                tls: &raw.tls,
            },
        )?;
        let duration = |d: &Option<Spanned<Dur>>, default: Duration| d.as_ref().map_or(default, |d| d.get_ref().0);
        let pong_timeout = duration(&raw.pong_timeout, Duration::from_secs(1));
        if let Some(p) = &raw.pong_timeout
            && (p.get_ref().0.is_zero() || p.get_ref().0 > cfg.timeout)
        {
            return Err(cfg.error_at(
                p,
                "probe.pong_timeout",
                "pong_timeout must be above zero and at most `timeout`",
            ));
        }
        if raw.pings > 1000 {
            return Err(cfg.source.error_at(
                cfg.common.name.span(),
                Some("probe.pings"),
                "at most 1000 pings per run",
            ));
        }
        let max_message = cfg.size_within(
            raw.max_message.as_ref(),
            "probe.max_message",
            DEFAULT_MAX_MESSAGE,
            MAX_MAX_MESSAGE,
        )?;
        let mut steps = Vec::new();
        for (i, s) in raw.steps.iter().enumerate() {
            let key = |k: &str| format!("probe.step.{k}");
            let (matcher, push) = match (&s.expect, &s.expect_push) {
                (Some(_), Some(p)) => {
                    return Err(cfg.error_at(p, &key("expect_push"), "a step has `expect` or `expect_push`, not both"));
                }
                (Some(m), None) => (Some(matcher(cfg, m, &key("expect"))?), false),
                (None, Some(m)) => (Some(matcher(cfg, m, &key("expect_push"))?), true),
                (None, None) => (None, false),
            };
            if push && let Some(send) = &s.send {
                return Err(cfg.error_at(
                    send,
                    &key("send"),
                    "a push step waits for the server; use `expect` to wait for a reply to `send`",
                ));
            }
            if s.send.is_none() && matcher.is_none() {
                return Err(cfg.source.error_at(
                    cfg.common.name.span(),
                    Some("probe.step"),
                    format!("step {} has neither `send` nor `expect_push`", i + 1),
                ));
            }
            let measure = match (&s.measure, &matcher) {
                (Some(m), _) => {
                    let name = m.get_ref();
                    if name.is_empty()
                        || name.len() > 32
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(cfg.error_at(m, &key("measure"), "a measure name is 1-32 of a-z A-Z 0-9 _"));
                    }
                    Some(step_measure(name).key)
                }
                (None, Some(_)) => Some(if push { "push_wait" } else { "message_rtt" }),
                (None, None) => None,
            };
            let timeout = duration(&s.timeout, DEFAULT_STEP_TIMEOUT.min(cfg.timeout));
            steps.push(Step {
                send: s.send.as_ref().map(|t| t.get_ref().clone()),
                expect: matcher,
                measure,
                timeout,
                label: format!("step {} ({})", i + 1, measure.unwrap_or("send")),
            });
        }
        Ok(Box::new(WebsocketProbe {
            url,
            headers: t.headers,
            subprotocols: raw.subprotocols.clone(),
            origin: raw.origin.clone(),
            pings: raw.pings,
            ping_interval: duration(&raw.ping_interval, Duration::from_millis(100)),
            pong_timeout,
            reconnect: raw.reconnect,
            max_message: max_message as usize,
            steps,
            tls: t.tls,
            server_name: t.server_name,
            resolver: ctx.resolver.clone(),
        }))
    }
}

fn matcher(cfg: &ProbeConfig, m: &Spanned<MatchConfig>, key: &str) -> Result<Matcher, ConfigError> {
    let raw = m.get_ref();
    if raw.pointer.is_none() && raw.regex.is_none() {
        return Err(cfg.error_at(m, key, "give `pointer` (with `equals`) or `regex`"));
    }
    if raw.equals.is_some() && raw.pointer.is_none() {
        return Err(cfg.error_at(m, key, "`equals` needs a `pointer`, e.g. pointer = \"/type\""));
    }
    if let Some(p) = &raw.pointer
        && !(p.is_empty() || p.starts_with('/'))
    {
        return Err(cfg.error_at(m, key, format!("JSON pointer {p:?} must start with '/'")));
    }
    let equals = raw
        .equals
        .as_ref()
        .map(|v| serde_json::to_value(v).map_err(|e| cfg.error_at(m, key, format!("`equals`: {e}"))))
        .transpose()?;
    let regex = raw
        .regex
        .as_ref()
        .map(|r| Regex::new(r).map_err(|e| cfg.error_at(m, key, format!("invalid regex: {e}"))))
        .transpose()?;
    Ok(Matcher {
        pointer: raw.pointer.clone(),
        equals,
        regex,
    })
}

type Socket = WebSocketStream<TimedIo<Stream>>;

impl Probe for WebsocketProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(self.session(rec))
    }
}

impl WebsocketProbe {
    async fn session(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let mut ws = self.open(rec).await?;
        rec.set("open", rec.offset(Instant::now()));
        let mut skipped = 0u64;
        let result = self.exchange(rec, &mut ws, &mut skipped).await;
        rec.set("skipped_messages", skipped as f64);
        result?;
        rec.enter("close");
        let t = Instant::now();
        close(&mut ws).await;
        rec.set("close", t.elapsed().as_secs_f64());
        if self.reconnect {
            rec.enter("reconnect");
            let t = Instant::now();
            // The reopen's own phases are not the first open's: keep them apart.
            let mut scratch = Recorder::new(t);
            let mut again = self.open(&mut scratch).await?;
            rec.set("reconnect", t.elapsed().as_secs_f64());
            close(&mut again).await;
        }
        Ok(())
    }

    async fn exchange(&self, rec: &mut Recorder, ws: &mut Socket, skipped: &mut u64) -> Result<(), ProbeError> {
        if self.pings > 0 {
            rec.enter("ping");
            self.ping(rec, ws, skipped).await?;
        }
        for step in &self.steps {
            rec.enter("step");
            let start = Instant::now();
            if let Some(text) = &step.send {
                ws.send(Message::text(text.clone()))
                    .await
                    .map_err(|e| classify(&e, &step.label))?;
            }
            let Some(expect) = &step.expect else { continue };
            let deadline = start + step.timeout;
            loop {
                let msg = next(ws, deadline)
                    .await
                    .map_err(|e| with_step(e, &step.label, step.timeout))?;
                match msg {
                    Message::Text(t) if expect.matches(t.as_str()) => break,
                    Message::Binary(b) if std::str::from_utf8(&b).is_ok_and(|t| expect.matches(t)) => break,
                    Message::Close(frame) => return Err(closed(rec, frame.as_ref().map(|f| f.code), &step.label)),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    _ => *skipped += 1,
                }
            }
            // A reply is timed from the send; a push from the step's start (no send).
            if let Some(m) = step.measure {
                rec.set(m, start.elapsed().as_secs_f64());
            }
        }
        Ok(())
    }

    /// `pings` control pings, `ping_interval` apart; each waits up to `pong_timeout` for
    /// the pong carrying its payload. Lost pongs are counted; losing them all fails.
    async fn ping(&self, rec: &mut Recorder, ws: &mut Socket, skipped: &mut u64) -> Result<(), ProbeError> {
        let mut lost = 0u32;
        let mut rtts: Vec<f64> = Vec::new();
        for i in 0..self.pings {
            let sent = Instant::now();
            let payload = Bytes::copy_from_slice(&i.to_be_bytes());
            ws.send(Message::Ping(payload.clone()))
                .await
                .map_err(|e| classify(&e, "ping"))?;
            let deadline = sent + self.pong_timeout;
            loop {
                match next(ws, deadline).await {
                    Ok(Message::Pong(p)) if p == payload => {
                        let rtt = sent.elapsed().as_secs_f64();
                        rec.sample("ping_rtt", rtt);
                        rtts.push(rtt);
                        break;
                    }
                    Ok(Message::Close(frame)) => return Err(closed(rec, frame.as_ref().map(|f| f.code), "ping")),
                    Ok(Message::Pong(_) | Message::Ping(_) | Message::Frame(_)) => {}
                    Ok(_) => *skipped += 1,
                    Err(e) if e.kind == ErrorType::Timeout => {
                        lost += 1;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if i + 1 < self.pings {
                tokio::time::sleep_until((sent + self.ping_interval).into()).await;
            }
        }
        rec.set("ping_loss", f64::from(lost) / f64::from(self.pings));
        if rtts.len() > 1 {
            let jitter = rtts.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (rtts.len() - 1) as f64;
            rec.set("ping_jitter", jitter);
        }
        if lost == self.pings {
            return Err(ProbeError::new(
                ErrorType::Timeout,
                format!(
                    "ping: no pong to any of {} pings within {}",
                    self.pings,
                    humantime::format_duration(self.pong_timeout)
                ),
            ));
        }
        Ok(())
    }

    /// DNS, connect and TLS over the shared timed path, then the upgrade.
    async fn open(&self, rec: &mut Recorder) -> Result<Socket, ProbeError> {
        let host = self.url.host_str().unwrap_or_default();
        let secure = self.url.scheme() == "wss";
        let ep = Endpoint {
            host,
            port: self
                .url
                .port_or_known_default()
                .unwrap_or(if secure { 443 } else { 80 }),
            tls: secure.then_some(&self.tls),
            server_name: self.server_name.as_deref(),
        };
        let connected = net::connect(&self.resolver, rec, &ep).await?;
        rec.enter("upgrade");
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ProbeError::new(ErrorType::ProtocolError, format!("building the upgrade request: {e}")))?;
        let headers = request.headers_mut();
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(crate::net::http::USER_AGENT),
        );
        if let Some(o) = &self.origin
            && let Ok(v) = HeaderValue::from_str(o)
        {
            headers.insert(http::header::ORIGIN, v);
        }
        if !self.subprotocols.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.subprotocols.join(", "))
        {
            headers.insert(http::header::SEC_WEBSOCKET_PROTOCOL, v);
        }
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message));
        connected.marks.reset();
        let t = Instant::now();
        let (ws, _response) = tokio_tungstenite::client_async_with_config(request, connected.io, Some(config))
            .await
            .map_err(|e| upgrade_error(rec, &e))?;
        let done = Instant::now();
        // From the request fully written to the 101 read off the socket.
        let written = connected
            .marks
            .get()
            .last_write_before_read
            .filter(|w| *w >= t && *w <= done)
            .unwrap_or(t);
        rec.add("upgrade", (done - written).as_secs_f64());
        Ok(ws)
    }
}

/// The next message, or a `timeout` error at `deadline`.
async fn next(ws: &mut Socket, deadline: Instant) -> Result<Message, ProbeError> {
    match tokio::time::timeout_at(deadline.into(), ws.next()).await {
        Err(_) => Err(ProbeError::new(ErrorType::Timeout, "no message in time")),
        Ok(None) => Err(ProbeError::new(
            ErrorType::ConnectionClosed,
            "the server ended the stream",
        )),
        Ok(Some(Err(e))) => Err(classify(&e, "reading")),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

fn with_step(e: ProbeError, step: &str, timeout: Duration) -> ProbeError {
    if e.kind == ErrorType::Timeout {
        ProbeError::new(
            ErrorType::Timeout,
            format!(
                "{step}: no matching message within {}",
                humantime::format_duration(timeout)
            ),
        )
    } else {
        ProbeError::new(e.kind, format!("{step}: {}", e.message))
    }
}

fn closed(rec: &mut Recorder, code: Option<CloseCode>, during: &str) -> ProbeError {
    let code = code.map(u16::from);
    if let Some(c) = code {
        rec.label("websocket.close.code", i64::from(c));
    }
    ProbeError::new(
        ErrorType::ConnectionClosed,
        format!(
            "{during}: the server closed the socket{}",
            code.map_or(String::new(), |c| format!(" with code {c}"))
        ),
    )
}

/// Sends a close frame and waits (briefly) for the server's.
async fn close(ws: &mut Socket) {
    let _ = ws.close(None).await;
    let deadline = Instant::now() + Duration::from_secs(1);
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline.into(), ws.next()).await {}
}

fn upgrade_error(rec: &mut Recorder, e: &WsError) -> ProbeError {
    match e {
        WsError::Http(resp) => {
            let status = resp.status().as_u16();
            rec.label("http.response.status_code", i64::from(status));
            crate::net::http::status_error(rec, status, resp.headers())
        }
        other => classify(other, "upgrade"),
    }
}

fn classify(e: &WsError, during: &str) -> ProbeError {
    let kind = match e {
        WsError::Capacity(_) => ErrorType::MessageTooLarge,
        WsError::ConnectionClosed | WsError::AlreadyClosed => ErrorType::ConnectionClosed,
        WsError::Io(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => ErrorType::ConnectionClosed,
            _ => ErrorType::ProtocolError,
        },
        _ => ErrorType::ProtocolError,
    };
    let what = match e {
        WsError::Utf8(_) => "invalid UTF-8 in a text frame".to_string(),
        WsError::Capacity(c) => format!("message over max_message ({c})"),
        other => other.to_string(),
    };
    ProbeError::new(kind, format!("{during}: {what}"))
}
