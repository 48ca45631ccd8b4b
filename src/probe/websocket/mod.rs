//! `kind = "websocket"`: what a user of a realtime feature waits for. Opens the socket over
//! the shared timed connection (DNS, connect, TLS timed by `net`), times the upgrade,
//! application round trips (send a message, wait for the reply that matches), server
//! pushes, then control ping → pong round trips (with loss and jitter), the close
//! handshake and a reconnect, answering the protocol's own heartbeats throughout. The
//! WebSocket protocol itself is tokio-tungstenite's.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use super::http_config::{self, HttpVersion, Request, TargetKeys, Tls};
use super::kind::{BuildContext, Kind, Probe, ProbeConfig, Settings};
use crate::config::{ConfigError, Dur, Size, Spanned};
use crate::outcome::{Instrument, Measure, Unit};

mod run;

pub use run::WebsocketProbe;
use run::{Keepalive, Matcher, Step};

pub const KIND: Kind = Kind {
    name: "websocket",
    measures: MEASURES,
    settings: super::kind::settings_of::<WebsocketSettings>,
    schema: <WebsocketSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["open", "message_rtt", "ping_rtt"],
    median_gate: false,
    long_runs: false,
    target_key: Some(("url", "ws://127.0.0.1:1/")),
};

/// The keys of `kind = "websocket"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebsocketSettings {
    /// ws:// or wss:// URL.
    pub url: Spanned<String>,
    /// Offered in Sec-WebSocket-Protocol, e.g. ["graphql-transport-ws"] (tokens).
    #[serde(default)]
    pub subprotocols: Vec<Spanned<String>>,
    /// Sent as the Origin header: "https://app.example.com" (scheme, host, optional port).
    pub origin: Option<Spanned<String>>,
    /// Control-frame pings, sent after the steps (default 0).
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
    /// Application-level heartbeats to answer whenever a message matches, e.g. Engine.IO's
    /// `when = { regex = "^2$" }`, `reply = "3"`.
    #[serde(default)]
    pub keepalive: Vec<KeepaliveConfig>,
}

/// `[[probe.keepalive]]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepaliveConfig {
    /// The server's heartbeat message.
    pub when: Spanned<MatchConfig>,
    /// The text sent back at once.
    pub reply: Spanned<String>,
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
    super::kind::CERT_EXPIRY,
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
        unit: Unit::Loss,
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
        key: "keepalive_replies",
        metric: "probe.websocket.keepalive.replies",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "Application heartbeats ([[probe.keepalive]]) answered in the last run.",
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

impl Settings for WebsocketSettings {
    fn plan(&self) -> Vec<String> {
        let mut lines = http_config::plan(&self.url, &self.request);
        lines.push(format!(
            "steps: {}, then pings: {}, keepalive rules: {}, reconnect: {}",
            self.steps.len(),
            self.pings,
            self.keepalive.len(),
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
        if !url.username().is_empty() || url.password().is_some() {
            return Err(cfg.error_at(
                &raw.url,
                "probe.url",
                "credentials in a ws:// URL are never sent by a WebSocket client; put them in [probe.request] headers (an env: or file: secret)",
            ));
        }
        if let Some(o) = &raw.origin {
            let ok = o.get_ref() == "null"
                || url::Url::parse(o.get_ref()).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.username().is_empty()
                        && u.path() == "/"
                        && u.query().is_none()
                        && u.fragment().is_none()
                        && !o.get_ref().ends_with('/')
                });
            if !ok {
                return Err(cfg.error_at(
                    o,
                    "probe.origin",
                    format!("{:?} is not an origin such as \"https://app.example.com\"", o.get_ref()),
                ));
            }
        }
        for p in &raw.subprotocols {
            // RFC 6455: a subprotocol is an HTTP token.
            let token = !p.get_ref().is_empty()
                && p.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(cfg.error_at(
                    p,
                    "probe.subprotocols",
                    format!("{:?} is not a subprotocol name (an HTTP token)", p.get_ref()),
                ));
            }
        }
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
        let keepalive = raw
            .keepalive
            .iter()
            .map(|k| {
                Ok(Keepalive {
                    when: matcher(cfg, &k.when, "probe.keepalive.when")?,
                    reply: k.reply.get_ref().clone(),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Box::new(WebsocketProbe {
            url,
            headers: t.headers,
            subprotocols: raw.subprotocols.iter().map(|p| p.get_ref().clone()).collect(),
            origin: raw.origin.as_ref().map(|o| o.get_ref().clone()),
            pings: raw.pings,
            ping_interval: duration(&raw.ping_interval, Duration::from_millis(100)),
            pong_timeout,
            reconnect: raw.reconnect,
            max_message: max_message as usize,
            steps,
            keepalive,
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
