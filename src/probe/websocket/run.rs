//! A websocket run: open, upgrade, pings, steps, close and reconnect, each timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue};
use regex::Regex;
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use crate::net::{self, Endpoint, Resolver, Stream, TimedIo};
use crate::outcome::{ErrorType, ProbeError, Recorder};
use crate::probe::kind::{BoxFuture, Probe};

pub struct Matcher {
    pub pointer: Option<String>,
    pub equals: Option<Value>,
    pub regex: Option<Regex>,
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

/// A heartbeat the server sends and expects answered (Engine.IO `2` → `3`).
pub struct Keepalive {
    pub when: Matcher,
    pub reply: String,
}

/// Messages a run read that were not what a step or ping waited for.
#[derive(Default)]
struct Counts {
    skipped: u64,
    keepalive_replies: u64,
}

pub struct Step {
    pub send: Option<String>,
    pub expect: Option<Matcher>,
    pub measure: Option<&'static str>,
    pub timeout: Duration,
    pub label: String,
}

pub struct WebsocketProbe {
    pub url: url::Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub subprotocols: Vec<String>,
    pub origin: Option<String>,
    pub pings: u32,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub reconnect: bool,
    pub max_message: usize,
    pub steps: Vec<Step>,
    pub keepalive: Vec<Keepalive>,
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: Option<String>,
    pub resolver: Resolver,
}

pub type Socket = WebSocketStream<TimedIo<Stream>>;

impl Probe for WebsocketProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(self.session(rec))
    }
}

impl WebsocketProbe {
    async fn session(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let mut ws = self.open(rec).await?;
        rec.set("open", rec.offset(Instant::now()));
        let mut counts = Counts::default();
        let result = self.exchange(rec, &mut ws, &mut counts).await;
        rec.set("skipped_messages", counts.skipped as f64);
        if !self.keepalive.is_empty() {
            rec.set("keepalive_replies", counts.keepalive_replies as f64);
        }
        result?;
        rec.enter("close");
        let t = Instant::now();
        close(&mut ws).await;
        rec.set("close", t.elapsed().as_secs_f64());
        if self.reconnect {
            rec.enter("reconnect");
            let t = Instant::now();
            // The reopen's own phases are not the first open's: keep them apart.
            let mut scratch = rec.child(t);
            let mut again = self.open(&mut scratch).await?;
            rec.set("reconnect", t.elapsed().as_secs_f64());
            close(&mut again).await;
        }
        Ok(())
    }

    /// The steps, then the pings: a protocol's handshake (graphql-ws's `connection_init`,
    /// Socket.IO's `40`) comes first, as its server expects it within seconds of the open.
    async fn exchange(&self, rec: &mut Recorder, ws: &mut Socket, counts: &mut Counts) -> Result<(), ProbeError> {
        self.steps(rec, ws, counts).await?;
        if self.pings > 0 {
            rec.enter("ping");
            self.ping(rec, ws, counts).await?;
        }
        Ok(())
    }

    async fn steps(&self, rec: &mut Recorder, ws: &mut Socket, counts: &mut Counts) -> Result<(), ProbeError> {
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
                let msg = self
                    .recv(ws, deadline, counts)
                    .await
                    .map_err(|e| with_step(e, &step.label, step.timeout))?;
                match msg {
                    Message::Text(t) if expect.matches(t.as_str()) => break,
                    Message::Binary(b) if std::str::from_utf8(&b).is_ok_and(|t| expect.matches(t)) => break,
                    Message::Close(frame) => return Err(closed(rec, frame.as_ref().map(|f| f.code), &step.label)),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    _ => counts.skipped += 1,
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
    async fn ping(&self, rec: &mut Recorder, ws: &mut Socket, counts: &mut Counts) -> Result<(), ProbeError> {
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
                match self.recv(ws, deadline, counts).await {
                    Ok(Message::Pong(p)) if p == payload => {
                        let rtt = sent.elapsed().as_secs_f64();
                        rec.sample("ping_rtt", rtt);
                        rtts.push(rtt);
                        break;
                    }
                    Ok(Message::Close(frame)) => return Err(closed(rec, frame.as_ref().map(|f| f.code), "ping")),
                    Ok(Message::Pong(_) | Message::Ping(_) | Message::Frame(_)) => {}
                    Ok(_) => counts.skipped += 1,
                    Err(e) if e.kind == ErrorType::Timeout => {
                        lost += 1;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if i + 1 < self.pings {
                self.idle(rec, ws, sent + self.ping_interval, counts).await?;
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

    /// The next message, answering heartbeats on the way: the server's `2` is answered
    /// wherever the run is (a step, a ping, the pause between pings).
    async fn recv(&self, ws: &mut Socket, deadline: Instant, counts: &mut Counts) -> Result<Message, ProbeError> {
        loop {
            let msg = next(ws, deadline).await?;
            if let Message::Text(t) = &msg
                && let Some(k) = self.keepalive.iter().find(|k| k.when.matches(t.as_str()))
            {
                ws.send(Message::text(k.reply.clone()))
                    .await
                    .map_err(|e| classify(&e, "keepalive reply"))?;
                counts.keepalive_replies += 1;
                continue;
            }
            return Ok(msg);
        }
    }

    /// Reads until `until` (a pause between pings), so heartbeats and a close are seen.
    async fn idle(
        &self,
        rec: &mut Recorder,
        ws: &mut Socket,
        until: Instant,
        counts: &mut Counts,
    ) -> Result<(), ProbeError> {
        loop {
            match self.recv(ws, until, counts).await {
                Err(e) if e.kind == ErrorType::Timeout => return Ok(()),
                Err(e) => return Err(e),
                Ok(Message::Close(frame)) => return Err(closed(rec, frame.as_ref().map(|f| f.code), "ping")),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(_) => counts.skipped += 1,
            }
        }
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
        if let Some((k, v)) = rec.trace().header_for(headers) {
            headers.insert(k, v);
        }
        // The write buffer is capped too: a peer that never reads (while flooding pings,
        // each answered with a pong) makes writes fail instead of queueing without end.
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message))
            .write_buffer_size(64 * 1024)
            .max_write_buffer_size(self.max_message.saturating_add(256 * 1024));
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
