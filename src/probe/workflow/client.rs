//! The requests of a workflow run: each on a fresh connection over the shared timed path
//! (phases and TTFB per request), with the run's cookies and variables, bodies streamed
//! (a file's slice read 64 KiB at a time) and response bodies read within `max_body`.

use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::body::{Body, Frame, SizeHint};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncSeekExt as _, ReadBuf};

use super::plan::{Mark, PHASES, Step};
use super::template::{Template, Vars};
use crate::net::Resolver;
use crate::net::http::{self as nethttp, BodySpec, Version};
use crate::outcome::{ErrorType, ProbeError, Recorder};

/// How a workflow's requests are made: shared by its steps and parts.
pub struct Client {
    pub tls: Arc<ClientConfig>,
    pub server_name: Option<String>,
    pub version: Version,
    pub resolver: Resolver,
    pub max_body: usize,
}

/// Cookies a run may hold: a server setting more is not followed further.
const MAX_COOKIES: usize = 64;
/// The longest extracted value (a token, an id, one URL).
pub const MAX_VALUE: usize = 64 * 1024;

/// What one run carries from step to step.
pub struct RunState {
    pub vars: Vars,
    pub jar: Mutex<cookie_store::CookieStore>,
    pub marks: Vec<(Mark, Instant)>,
}

impl RunState {
    pub fn mark(&mut self, m: Mark, at: Instant) {
        if !self.marks.iter().any(|(have, _)| *have == m) {
            self.marks.push((m, at));
        }
    }

    pub fn at(&self, m: &Mark) -> Option<Instant> {
        self.marks.iter().find(|(have, _)| have == m).map(|(_, t)| *t)
    }

    /// The Cookie header for `url`, if the jar has any.
    pub fn cookie_header(&self, url: &url::Url) -> Option<HeaderValue> {
        let jar = self.jar.lock().expect("cookie jar");
        let pairs: Vec<String> = jar.get_request_values(url).map(|(k, v)| format!("{k}={v}")).collect();
        drop(jar);
        if pairs.is_empty() {
            return None;
        }
        let mut v = HeaderValue::from_str(&pairs.join("; ")).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    pub fn keep_cookies(&self, url: &url::Url, headers: &HeaderMap) {
        let mut jar = self.jar.lock().expect("cookie jar");
        for v in headers.get_all(header::SET_COOKIE) {
            if jar.iter_any().count() >= MAX_COOKIES {
                break;
            }
            if let Ok(text) = v.to_str() {
                let _ = jar.parse(text, url);
            }
        }
    }
}

/// What goes in a request's body.
pub enum Outgoing {
    Empty,
    Text(Bytes),
    Generated(u64),
    File {
        path: std::path::PathBuf,
        offset: u64,
        len: u64,
    },
}

/// One request to send.
pub struct Req<'a> {
    pub url: &'a url::Url,
    pub method: &'a Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Outgoing,
    pub timeout: Duration,
    /// Keep the body (up to `max_body`) for extraction; else count it.
    pub keep_body: bool,
}

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    pub end: Instant,
}

/// One request's timings: phases (dns … transfer) and TTFB from the request's start.
pub struct Timing {
    pub phases: [Option<f64>; 6],
    pub ttfb: Option<f64>,
    pub duration: Duration,
}

impl Timing {
    /// Into the run's samples under the step's keys.
    pub fn record(&self, rec: &mut Recorder, step: &Step) {
        for (key, v) in step.keys.phases.iter().zip(self.phases) {
            if let Some(v) = v {
                rec.sample(key, v);
            }
        }
        if let Some(t) = self.ttfb {
            rec.sample(step.keys.ttfb, t);
        }
    }
}

impl Client {
    /// One request on a fresh timed connection, bounded by `req.timeout`.
    pub async fn request(&self, req: &Req<'_>) -> (Timing, Result<Response, ProbeError>) {
        let start = Instant::now();
        let mut sub = Recorder::new(start);
        let result = tokio::time::timeout(req.timeout, self.exchange(&mut sub, req)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(crate::probe::timeout_error(sub.phase(), req.timeout)),
        };
        let timing = Timing {
            phases: PHASES.map(|p| sub.get(p)),
            ttfb: sub.get("ttfb"),
            duration: start.elapsed(),
        };
        (timing, result)
    }

    async fn exchange(&self, sub: &mut Recorder, req: &Req<'_>) -> Result<Response, ProbeError> {
        let mut conn = nethttp::open(
            &self.resolver,
            sub,
            req.url,
            &self.tls,
            self.server_name.as_deref(),
            self.version,
        )
        .await?;
        let spec = match &req.body {
            Outgoing::Text(b) => BodySpec::Bytes(b.clone()),
            Outgoing::Generated(n) => BodySpec::Generated(*n),
            Outgoing::Empty | Outgoing::File { .. } => BodySpec::Empty,
        };
        let mut request = nethttp::build_request(req.url, req.method, &req.headers, &spec, conn.is_h2(), false)?;
        if let Outgoing::File { path, offset, len } = &req.body {
            request = nethttp::with_body(request, FileSlice::open(path, *offset, *len).await?);
        }
        let (resp, first_byte) = conn.exchange(sub, request).await?;
        let status = resp.status().as_u16();
        let (head, incoming) = resp.into_parts();
        let window = if req.keep_body { self.max_body } else { 0 };
        let read = nethttp::read_body(incoming, self.max_body as u64, window).await;
        sub.add("transfer", first_byte.elapsed().as_secs_f64());
        Ok(Response {
            status,
            headers: head.headers,
            body: read?.1,
            end: Instant::now(),
        })
    }

    /// The step's URL and headers with variables filled in (and `part` when given), the
    /// run's cookies added.
    pub fn target(
        &self,
        st: &RunState,
        step: &Step,
        text: String,
        vars: &Vars,
    ) -> Result<(url::Url, Vec<(HeaderName, HeaderValue)>), ProbeError> {
        let missing = |e: String| ProbeError::new(ErrorType::ExtractionFailed, format!("step {}: {e}", step.name));
        let parsed = url::Url::parse(&text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                ProbeError::new(
                    ErrorType::ExtractionFailed,
                    format!(
                        "step {}: {:?} is not an http(s) URL",
                        step.name,
                        crate::redact::url(&st.vars.scrub(&text))
                    ),
                )
            })?;
        let mut headers = Vec::new();
        for (name, t) in &step.headers {
            let r = t.render(vars).map_err(missing)?;
            let mut v = HeaderValue::from_str(&r.text).map_err(|_| {
                ProbeError::new(
                    ErrorType::ExtractionFailed,
                    format!("step {}: header {name} has characters a header cannot carry", step.name),
                )
            })?;
            v.set_sensitive(r.secret);
            headers.push((name.clone(), v));
        }
        if let Some(c) = st.cookie_header(&parsed) {
            headers.push((header::COOKIE, c));
        }
        Ok((parsed, headers))
    }
}

/// A template filled in; a variable without a value is `extraction_failed`.
pub fn render(step: &Step, t: &Template, vars: &Vars) -> Result<String, ProbeError> {
    t.render(vars)
        .map(|r| r.text)
        .map_err(|e| ProbeError::new(ErrorType::ExtractionFailed, format!("step {}: {e}", step.name)))
}

/// `len` bytes of a file from `offset`, read 64 KiB at a time as hyper asks for them.
pub struct FileSlice {
    file: tokio::fs::File,
    remaining: u64,
    buf: Box<[u8]>,
}

impl FileSlice {
    pub async fn open(path: &Path, offset: u64, len: u64) -> Result<FileSlice, ProbeError> {
        let err = |e: std::io::Error| ProbeError::new(ErrorType::Internal, format!("reading {}: {e}", path.display()));
        let mut file = tokio::fs::File::open(path).await.map_err(err)?;
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(err)?;
        Ok(FileSlice {
            file,
            remaining: len,
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
        })
    }
}

impl Body for FileSlice {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let want = this.remaining.min(this.buf.len() as u64) as usize;
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            // A file that shrank or failed ends the body short: the server sees fewer
            // bytes than Content-Length and the part fails.
            Poll::Ready(Err(_)) => {
                this.remaining = 0;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    this.remaining = 0;
                    return Poll::Ready(None);
                }
                this.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(&this.buf[..n])))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The run's `traceparent` on a step's request (its own recorder is a scratch one).
pub fn with_trace(rec: &Recorder, headers: &mut Vec<(http::HeaderName, http::HeaderValue)>) {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers.iter() {
        map.insert(k.clone(), v.clone());
    }
    if let Some(h) = rec.trace().header_for(&map) {
        headers.push(h);
    }
}
