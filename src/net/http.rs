//! A timed HTTP exchange on top of the timed connection: opens HTTP/1.1 or HTTP/2 over
//! `net::connect`, and times `send` (request written) and `wait` (to the first response
//! byte) from the socket. Shared by every probe that speaks HTTP.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;

use super::{Endpoint, MarksHandle, Resolver};
use crate::outcome::{ErrorType, ProbeError, Recorder};

pub const USER_AGENT: &str = concat!("sloprobe/", env!("CARGO_PKG_VERSION"), " (synthetic)");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Auto,
    Http1,
    Http2,
}

impl Version {
    /// ALPN protocols to offer, in preference order.
    pub fn alpn(self) -> &'static [&'static [u8]] {
        match self {
            Version::Auto => &[b"h2", b"http/1.1"],
            Version::Http1 => &[b"http/1.1"],
            Version::Http2 => &[b"h2"],
        }
    }
}

#[derive(Clone)]
pub enum BodySpec {
    Empty,
    Bytes(Bytes),
    Generated(u64),
}

pub type ReqBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

enum Sender {
    H1(http1::SendRequest<ReqBody>),
    H2(http2::SendRequest<ReqBody>),
}

/// Aborts the connection task when the run ends, including when it is cut off.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An open HTTP session whose socket reads and writes are timestamped.
pub struct HttpConn {
    sender: Sender,
    marks: MarksHandle,
    task: AbortOnDrop,
    /// How the connection ended, when it ended in an error: a request the connection's
    /// end cancelled is reported with this cause ("operation was canceled" tells nothing).
    ended: Arc<std::sync::Mutex<Option<ProbeError>>>,
    reused: bool,
}

impl HttpConn {
    pub fn is_h2(&self) -> bool {
        matches!(self.sender, Sender::H2(_))
    }

    pub fn is_ready(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }

    /// Marks a pooled session as served from the pool (its dns/connect/tls are 0).
    pub fn reused(mut self) -> Self {
        self.reused = true;
        self
    }

    pub fn was_reused(&self) -> bool {
        self.reused
    }

    /// Sends the request; adds `send` and `wait`, sets `ttfb`, and returns the response
    /// head with the instant of its first byte.
    pub async fn exchange(
        &mut self,
        rec: &mut Recorder,
        req: Request<ReqBody>,
    ) -> Result<(Response<Incoming>, Instant), ProbeError> {
        if self.reused {
            for phase in [super::PHASE_DNS, super::PHASE_CONNECT, super::PHASE_TLS] {
                rec.add(phase, 0.0);
            }
        }
        let mut req = req;
        if let Some((k, v)) = rec.trace().header_for(req.headers()) {
            req.headers_mut().insert(k, v);
        }
        rec.enter("send");
        let body_end = req.extensions().get::<BodyEnd>().cloned().unwrap_or_default();
        let is_h2 = self.is_h2();
        self.marks.reset();
        // Once the request is on the wire, a cut-off run was waiting for the server.
        let (marks, end, no_body) = (self.marks.clone(), body_end.clone(), req.body().is_end_stream());
        rec.hint_phase(move || {
            let written = marks.get().first_write.is_some() && (no_body || end.get().is_some());
            written.then_some("wait")
        });
        let t_send = Instant::now();
        let sent = match &mut self.sender {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.cause(classify_hyper(&e, "waiting for the response")).await),
        };
        let t_head = Instant::now();
        if crate::outcome::evidence_on() {
            rec.evidence("response-head.txt", head_text(&resp).into_bytes());
        }
        let marks = self.marks.get();
        // HTTP/1: the first byte read off the socket. HTTP/2: the peer's SETTINGS
        // arrive first, so the decoded HEADERS frame stands for the first byte.
        // HTTP/2 also writes housekeeping frames (SETTINGS ACK) while waiting, so the
        // request counts as written at its first frame, or when its body ended.
        let first_byte = if is_h2 {
            t_head
        } else {
            marks.first_read.unwrap_or(t_head)
        };
        let written = if is_h2 {
            marks.first_write.max(body_end.get())
        } else {
            marks.last_write_before_read
        };
        let written = written.filter(|w| *w >= t_send && *w <= first_byte).unwrap_or(t_send);
        rec.add("send", (written - t_send).as_secs_f64());
        rec.add("wait", (first_byte - written).as_secs_f64());
        rec.set("ttfb", rec.offset(first_byte));
        rec.enter("transfer");
        Ok((resp, first_byte))
    }
}

impl HttpConn {
    /// A request that failed because the connection ended: the connection's own error
    /// when it had one (a peer speaking something else is a protocol error, not a close).
    async fn cause(&mut self, err: ProbeError) -> ProbeError {
        if err.kind != ErrorType::ConnectionClosed {
            return err;
        }
        // The connection task records its end just after failing the request.
        if !self.task.0.is_finished() {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), &mut self.task.0).await;
        }
        self.ended.lock().expect("connection end lock").take().unwrap_or(err)
    }
}

/// A response's status line and headers as a failed run's evidence shows them.
fn head_text(resp: &Response<Incoming>) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{:?} {}\n", resp.version(), resp.status());
    for (k, v) in resp.headers().iter().take(100) {
        let _ = writeln!(out, "{k}: {}", crate::redact::header(k.as_str(), v.as_bytes()));
    }
    out
}

/// Opens a timed connection (dns, connect, tls recorded) and the HTTP/1 or HTTP/2 session.
pub async fn open(
    resolver: &Resolver,
    rec: &mut Recorder,
    url: &url::Url,
    tls: &Arc<ClientConfig>,
    server_name: Option<&str>,
    version: Version,
) -> Result<HttpConn, ProbeError> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let https = url.scheme() == "https";
    let ep = Endpoint {
        host,
        port,
        tls: https.then_some(tls),
        server_name,
    };
    let connected = super::connect(resolver, rec, &ep).await?;
    let use_h2 = match connected.alpn.as_deref() {
        Some(b"h2") => true,
        Some(_) => false,
        // Plain http with http_version = "2": prior-knowledge h2c.
        None => !https && version == Version::Http2,
    };
    rec.enter("send");
    let io = TokioIo::new(connected.io);
    let ended: Arc<std::sync::Mutex<Option<ProbeError>>> = Arc::default();
    let record = {
        let ended = ended.clone();
        move |e: hyper::Error| {
            *ended.lock().expect("connection end lock") = Some(classify_hyper(&e, "the connection failed"));
        }
    };
    let (sender, task) = if use_h2 {
        let (s, c) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| classify_hyper(&e, "HTTP/2 handshake"))?;
        (
            Sender::H2(s),
            tokio::spawn(async move {
                if let Err(e) = c.await {
                    record(e);
                }
            }),
        )
    } else {
        let (s, c) = http1::handshake(io)
            .await
            .map_err(|e| classify_hyper(&e, "HTTP/1 handshake"))?;
        (
            Sender::H1(s),
            tokio::spawn(async move {
                if let Err(e) = c.await {
                    record(e);
                }
            }),
        )
    };
    Ok(HttpConn {
        sender,
        marks: connected.marks,
        task: AbortOnDrop(task),
        ended,
        reused: false,
    })
}

/// Builds a request: origin-form plus `Host` for HTTP/1, absolute URI for HTTP/2.
pub fn build_request(
    url: &url::Url,
    method: &Method,
    extra_headers: &[(HeaderName, HeaderValue)],
    body: &BodySpec,
    h2: bool,
    keep_alive: bool,
) -> Result<Request<ReqBody>, ProbeError> {
    let body_end = BodyEnd::default();
    // HTTP/1 wants origin-form plus Host; HTTP/2 wants the absolute URI (:authority).
    let target = if h2 {
        url.as_str().to_string()
    } else {
        let mut t = url.path().to_string();
        if let Some(q) = url.query() {
            t.push('?');
            t.push_str(q);
        }
        t
    };
    let mut builder = Request::builder().method(method.clone()).uri(target);
    let headers = builder.headers_mut().expect("fresh builder");
    if !h2 {
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&host)
                .map_err(|_| ProbeError::new(ErrorType::ProtocolError, "host is not a valid header"))?,
        );
        if !keep_alive {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    for (k, v) in extra_headers {
        headers.insert(k.clone(), v.clone());
    }
    let body: ReqBody = match body {
        BodySpec::Empty => http_body_util::Empty::new().boxed(),
        BodySpec::Bytes(b) => NoteEnd::new(http_body_util::Full::new(b.clone()), &body_end).boxed(),
        BodySpec::Generated(n) => NoteEnd::new(GeneratedBody::new(*n), &body_end).boxed(),
    };
    let mut req = builder
        .body(body)
        .map_err(|e| ProbeError::new(ErrorType::Internal, format!("building request: {e}")))?;
    req.extensions_mut().insert(body_end);
    Ok(req)
}

/// `req` (built with an empty body) with `body` instead, its end still noted for the
/// send/wait split: for bodies streamed from elsewhere (a file's slice).
pub fn with_body<B>(req: Request<ReqBody>, body: B) -> Request<ReqBody>
where
    B: Body<Data = Bytes, Error = Infallible> + Send + Sync + Unpin + 'static,
{
    let (parts, _) = req.into_parts();
    let end = parts.extensions.get::<BodyEnd>().cloned().unwrap_or_default();
    Request::from_parts(parts, NoteEnd::new(body, &end).boxed())
}

pub fn classify_hyper(e: &hyper::Error, during: &str) -> ProbeError {
    let io_kind = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let kind = if e.is_incomplete_message()
        || e.is_canceled()
        || e.is_closed()
        || matches!(
            io_kind,
            Some(
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        ) {
        ErrorType::ConnectionClosed
    } else if e.is_timeout() {
        ErrorType::Timeout
    } else {
        ErrorType::ProtocolError
    };
    ProbeError::new(kind, format!("{during}: {e}"))
}

/// Reads the body to its end, cutting it off past `max` bytes; keeps the first `window`
/// bytes for assertions (none when 0).
pub async fn read_body(mut body: Incoming, max: u64, window: usize) -> Result<(u64, Option<Vec<u8>>), ProbeError> {
    let mut n: u64 = 0;
    let mut buf = (window > 0).then(Vec::new);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify_hyper(&e, "reading the body"))?;
        if let Ok(data) = frame.into_data() {
            n += data.len() as u64;
            if n > max {
                return Err(ProbeError::new(
                    ErrorType::BodyTooLarge,
                    format!("body exceeded max_body ({max} bytes); cut off"),
                ));
            }
            if let Some(b) = buf.as_mut() {
                let room = window.saturating_sub(b.len());
                b.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
    }
    Ok((n, buf))
}

/// A request body of `n` generated bytes, streamed from one shared chunk so a 10 MB
/// upload check does not allocate 10 MB per run.
pub struct GeneratedBody {
    remaining: u64,
}

static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

impl GeneratedBody {
    pub fn new(n: u64) -> Self {
        GeneratedBody { remaining: n }
    }
}

impl Body for GeneratedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(CHUNK.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// When the request body was fully handed to hyper.
#[derive(Clone, Default)]
pub struct BodyEnd(Arc<std::sync::Mutex<Option<Instant>>>);

impl BodyEnd {
    fn get(&self) -> Option<Instant> {
        *self.0.lock().expect("body end lock")
    }
}

struct NoteEnd<B> {
    inner: B,
    end: BodyEnd,
}

impl<B> NoteEnd<B> {
    fn new(inner: B, end: &BodyEnd) -> Self {
        NoteEnd {
            inner,
            end: end.clone(),
        }
    }
}

impl<B: Body<Data = Bytes, Error = Infallible> + Unpin> Body for NoteEnd<B> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(res, Poll::Ready(None)) || self.inner.is_end_stream() {
            *self.end.0.lock().expect("body end lock") = Some(Instant::now());
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A status outside the expected set: `rate_limited` for 429 (with its Retry-After kept
/// so the scheduler backs off), `http_status` otherwise.
pub fn status_error(rec: &mut Recorder, status: u16, headers: &http::HeaderMap) -> ProbeError {
    let retry = headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok());
    let note = retry.map(|v| format!(" (Retry-After: {v})")).unwrap_or_default();
    if status == 429 {
        if let Some(d) = retry.and_then(parse_retry_after) {
            rec.retry_after(d);
        }
        ProbeError::new(ErrorType::RateLimited, format!("rate limited: status 429{note}"))
    } else {
        ProbeError::new(ErrorType::HttpStatus, format!("unexpected status {status}{note}"))
    }
}

/// Retry-After as delay-seconds or an HTTP-date, capped at `MAX_RETRY_AFTER` (a hostile
/// or broken server may send any number or a date in the year 9999).
pub fn parse_retry_after(v: &str) -> Option<std::time::Duration> {
    let v = v.trim();
    let d = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too long for u64 is still "very long".
        std::time::Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()?
    };
    Some(d.min(crate::outcome::MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::parse_retry_after;
    use std::time::Duration;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None); // in the past
        let future = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let d = parse_retry_after(&future).unwrap();
        assert!(d > Duration::from_secs(80) && d <= Duration::from_secs(90));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
        let cap = crate::outcome::MAX_RETRY_AFTER;
        for huge in [
            "18446744073709551615",
            "9223372036854775807",
            "99999999999999999999999",
            "Thu, 01 Jan 2099 00:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(huge), Some(cap), "{huge}");
        }
    }
}
