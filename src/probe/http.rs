//! `kind = "http"`: one request (plus redirect hops) on a fresh connection, with DNS,
//! connect, TLS, send, wait and transfer timed as disjoint phases, and TTFB measured
//! from run start to the first response byte read off the socket.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use http::header::{self, HeaderName, HeaderValue};
use regex::Regex;
use rustls::ClientConfig;

use schemars::JsonSchema;
use serde::Deserialize;

use super::http_config::{self, HttpVersion, Request, TargetKeys, Tls};
use super::kind::{BoxFuture, BuildContext, CERT_EXPIRY, Kind, Probe, ProbeConfig, Settings};
use crate::config::{ConfigError, Size, Spanned};
use crate::net::Resolver;
use crate::net::http::{self as nethttp, BodySpec, HttpConn, Version};
use crate::outcome::{ErrorType, Instrument, Measure, ProbeError, Recorder, Unit};

pub const KIND: Kind = Kind {
    name: "http",
    measures: MEASURES,
    settings: super::kind::settings_of::<HttpSettings>,
    schema: <HttpSettings as JsonSchema>::json_schema,
    goodput: &[],
    headline: &["ttfb", "total"],
    median_gate: false,
    long_runs: false,
    target_key: Some(("url", "http://127.0.0.1:1/")),
};

/// The keys of `kind = "http"` (besides the shared ones).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Target URL, http:// or https://.
    pub url: Spanned<String>,
    /// "fresh" (default): a new connection every run. "reuse": keep one warm connection.
    #[serde(default)]
    pub connection: Connection,
    /// Follow up to N redirects; phases are summed over hops. Past N: `redirect_limit`.
    #[serde(default)]
    pub follow_redirects: u32,
    /// "same-origin" (default): drop credentials when a redirect leaves the original
    /// scheme, host and port. "always": keep sending them.
    #[serde(default)]
    pub redirect_credentials: RedirectCredentials,
    /// "auto" (ALPN h2 or http/1.1), "1.1" or "2".
    #[serde(default)]
    pub http_version: HttpVersion,
    /// The request: method, headers, secrets, body.
    #[serde(default)]
    pub request: Request,
    /// What a good response looks like.
    #[serde(default)]
    pub expect: HttpExpect,
    /// TLS options.
    #[serde(default)]
    pub tls: Tls,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Connection {
    /// A new connection (DNS, connect, TLS) every run.
    #[default]
    Fresh,
    /// One warm connection kept between runs; runs are labelled new or reused.
    Reuse,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RedirectCredentials {
    /// Drop Authorization, Cookie and secret headers on a redirect to another origin.
    #[default]
    SameOrigin,
    /// Keep sending them (curl's --location-trusted).
    Always,
}

/// `[probe.expect]` of the http kind.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Accepted status codes (default: any 2xx).
    pub status: Option<Spanned<Vec<u16>>>,
    /// Response headers that must be present.
    #[serde(default)]
    pub header_present: Vec<Spanned<String>>,
    /// The body must match this regex (within `match_window`).
    pub body_regex: Option<Spanned<String>>,
    /// The body must not match this regex (within `match_window`).
    pub body_not_regex: Option<Spanned<String>>,
    /// Leading body bytes the regexes see (default 1MiB, at most 64MiB).
    pub match_window: Option<Spanned<Size>>,
    /// Read the body up to this size, then fail with `body_too_large` (default 10MiB).
    pub max_body: Option<Spanned<Size>>,
}

const CONN: &[&str] = &["probe.connection"];
/// The semantic conventions' attributes of `http.client.request.duration`; each request
/// (redirect hop) carries its own.
const SEMCONV: &[&str] = &[
    "http.request.method",
    "http.response.status_code",
    "network.protocol.version",
    "server.address",
    "server.port",
    "url.scheme",
    crate::outcome::ERROR_TYPE_LABEL,
];

pub const MEASURES: &[Measure] = &[
    http_phase!("dns", CONN),
    http_phase!("connect", CONN),
    http_phase!("tls", CONN),
    http_phase!("send", CONN),
    http_phase!("wait", CONN),
    http_phase!("transfer", CONN),
    Measure {
        key: "ttfb",
        metric: "probe.http.ttfb",
        unit: Unit::Seconds,
        instrument: Instrument::Histogram,
        description: "Run start to first response byte (curl's time_starttransfer).",
        fixed: &[],
        labels: CONN,
    },
    Measure {
        key: "request",
        metric: "http.client.request.duration",
        unit: Unit::Seconds,
        // A Stable semantic-convention histogram: buckets on both paths, so stock OTel HTTP
        // dashboards (which read `_bucket`) work; 8 edges (`buckets::HTTP_REQUEST`).
        instrument: Instrument::Histogram,
        description: "Duration of one HTTP request (each redirect hop is one), connection to last body byte (OTel semantic conventions). error.type: the transport failure, or the status code of a 4xx/5xx.",
        fixed: &[],
        labels: SEMCONV,
    },
    Measure {
        key: "body_bytes",
        metric: "http.client.response.body.size",
        unit: Unit::Bytes,
        instrument: Instrument::Mean,
        description: "Size of the final response body.",
        fixed: &[],
        labels: &[
            "http.request.method",
            "http.response.status_code",
            "server.address",
            "server.port",
        ],
    },
    CERT_EXPIRY,
    Measure {
        key: "redirects",
        metric: "probe.http.redirects",
        unit: Unit::Count,
        instrument: Instrument::Gauge,
        description: "Redirect hops followed in the last run.",
        fixed: &[],
        labels: &[],
    },
];

const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
/// Body regexes see the first MiB by default: memory per run stays bounded whatever
/// `max_body` allows (docs/config.md).
const DEFAULT_MATCH_WINDOW: usize = 1024 * 1024;
const MAX_MATCH_WINDOW: usize = 64 * 1024 * 1024;

struct Expect {
    status: Option<Vec<u16>>,
    header_present: Vec<HeaderName>,
    body_regex: Option<Regex>,
    body_not_regex: Option<Regex>,
    /// Leading body bytes the regexes see; the rest is counted, not kept.
    match_window: usize,
    max_body: u64,
}

pub struct HttpProbe {
    url: url::Url,
    /// `url` redacted, as the run's `url` detail shows it (made once, not every run).
    shown_url: String,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: BodySpec,
    expect: Expect,
    tls: Arc<ClientConfig>,
    server_name: Option<String>,
    version: Version,
    follow_redirects: u32,
    /// Keep credentials on redirects to another origin (`redirect_credentials = "always"`).
    credentials_cross_origin: bool,
    /// `Some` in `connection = "reuse"` mode: the warm connection between runs.
    pool: Option<tokio::sync::Mutex<Option<Pooled>>>,
    resolver: Resolver,
}

/// The start of a response body a failed run's evidence keeps.
const EVIDENCE_BODY: usize = 1024;

impl Settings for HttpSettings {
    fn plan(&self) -> Vec<String> {
        http_config::plan(&self.url, &self.request)
    }

    fn single_valued_labels(&self) -> &'static [&'static str] {
        match self.connection {
            Connection::Fresh => CONN, // always "fresh"
            Connection::Reuse => &[],  // "new", then "reused"
        }
    }

    fn build(&self, cfg: &ProbeConfig, ctx: &BuildContext) -> Result<Box<dyn Probe>, ConfigError> {
        let raw = self;
        let t = http_config::target(
            cfg,
            ctx,
            &TargetKeys {
                kind: "http",
                url: &raw.url,
                http_version: raw.http_version,
                request: &raw.request,
                status: raw.expect.status.as_ref(),
                header_present: &raw.expect.header_present,
                tls: &raw.tls,
            },
        )?;

        let req = &raw.request;
        let bodies = [req.body.is_some(), req.body_file.is_some(), req.body_size.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            return Err(cfg.error_at(
                &cfg.common.name,
                "probe.request",
                "set only one of `body`, `body_file`, `body_size`",
            ));
        }
        let body = if let Some(b) = &req.body {
            BodySpec::Bytes(Bytes::from(b.get_ref().clone()))
        } else if let Some(f) = &req.body_file {
            let data = cfg.read_file(f, "probe.request.body_file", crate::config::MAX_BODY_FILE)?;
            BodySpec::Bytes(Bytes::from(data))
        } else if let Some(n) = &req.body_size {
            BodySpec::Generated(n.get_ref().0)
        } else {
            BodySpec::Empty
        };
        let method = http_config::method(cfg, req, !matches!(body, BodySpec::Empty))?;

        let ex = &raw.expect;
        if let Some(mb) = &ex.max_body
            && mb.get_ref().0 == 0
        {
            return Err(cfg.error_at(
                mb,
                "probe.expect.max_body",
                "max_body = 0 fails every response with a body; give a size such as \"10MiB\"",
            ));
        }
        let regex = |r: &Option<Spanned<String>>, key: &str| -> Result<Option<Regex>, ConfigError> {
            r.as_ref()
                .map(|s| Regex::new(s.get_ref()).map_err(|e| cfg.error_at(s, key, format!("invalid regex: {e}"))))
                .transpose()
        };
        let expect = Expect {
            status: t.status.clone(),
            header_present: t.header_present.clone(),
            body_regex: regex(&ex.body_regex, "probe.expect.body_regex")?,
            body_not_regex: regex(&ex.body_not_regex, "probe.expect.body_not_regex")?,
            max_body: ex.max_body.as_ref().map_or(DEFAULT_MAX_BODY, |s| s.get_ref().0),
            match_window: cfg.size_within(
                ex.match_window.as_ref(),
                "probe.expect.match_window",
                DEFAULT_MATCH_WINDOW as u64,
                MAX_MATCH_WINDOW as u64,
            )? as usize,
        };

        let pool = (raw.connection == Connection::Reuse).then(|| tokio::sync::Mutex::new(None));
        Ok(Box::new(HttpProbe {
            shown_url: crate::redact::url(t.url.as_str()),
            url: t.url,
            method,
            headers: t.headers,
            body,
            expect,
            tls: t.tls,
            server_name: t.server_name,
            version: t.version,
            follow_redirects: raw.follow_redirects,
            credentials_cross_origin: raw.redirect_credentials == RedirectCredentials::Always,
            pool,
            resolver: ctx.resolver.clone(),
        }))
    }
}

impl Probe for HttpProbe {
    fn run<'a>(&'a self, rec: &'a mut Recorder) -> BoxFuture<'a, Result<(), ProbeError>> {
        Box::pin(async move {
            let result = self.run_hops(rec).await;
            if crate::outcome::evidence_on() {
                // A target may echo a credential back: never into the evidence.
                for (_, v) in self.headers.iter().filter(|(_, v)| v.is_sensitive()) {
                    if let Ok(secret) = v.to_str() {
                        rec.scrub(secret);
                        rec.scrub(secret.trim_start_matches("Bearer "));
                    }
                }
            }
            result
        })
    }
}

/// What one request of a run brought back.
struct Hop {
    status: http::StatusCode,
    headers: http::HeaderMap,
    /// The Location to follow, when this response is a redirect within the limit.
    redirect_to: Option<String>,
    has_location: bool,
    body_bytes: u64,
    captured: Option<Vec<u8>>,
    conn: HttpConn,
}

struct Pooled {
    origin: (String, String, u16),
    conn: HttpConn,
}

fn origin(url: &url::Url) -> (String, String, u16) {
    (
        url.scheme().to_string(),
        url.host_str().unwrap_or_default().to_string(),
        url.port_or_known_default().unwrap_or(80),
    )
}

impl HttpProbe {
    async fn run_hops(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let mut pool_guard = match &self.pool {
            Some(p) => Some(p.lock().await),
            None => None,
        };
        let mut url = self.url.clone();
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        let mut headers = std::borrow::Cow::Borrowed(self.headers.as_slice());
        let mut hops = 0u32;
        rec.label("server.address", self.url.host_str().unwrap_or_default());
        rec.label("server.port", i64::from(self.url.port_or_known_default().unwrap_or(0)));
        rec.label("url.scheme", self.url.scheme());

        loop {
            rec.open_sample(
                "request",
                vec![
                    ("http.request.method", method.as_str().into()),
                    ("server.address", url.host_str().unwrap_or_default().into()),
                    (
                        "server.port",
                        i64::from(url.port_or_known_default().unwrap_or(80)).into(),
                    ),
                    ("url.scheme", url.scheme().into()),
                ],
            );
            let hop = match self
                .hop(rec, &mut pool_guard, &url, &method, &headers, &body, hops)
                .await
            {
                Ok(h) => h,
                Err(e) => {
                    rec.close_sample(Some(e.kind.as_str()));
                    return Err(e);
                }
            };
            let status = hop.status.as_u16();
            rec.close_sample((status >= 400).then(|| status.to_string()).as_deref());

            if let Some(loc) = hop.redirect_to {
                hops += 1;
                rec.set("redirects", f64::from(hops));
                let next = url.join(&loc).map_err(|e| {
                    ProbeError::new(
                        ErrorType::ProtocolError,
                        format!("bad redirect Location {:?}: {e}", crate::redact::url(&loc)),
                    )
                })?;
                if !matches!(next.scheme(), "http" | "https") || next.host_str().is_none() {
                    return Err(ProbeError::new(
                        ErrorType::ProtocolError,
                        format!("redirect to unsupported URL {}", crate::redact::url(next.as_str())),
                    ));
                }
                if origin(&next) != origin(&self.url) && !self.credentials_cross_origin {
                    headers = std::borrow::Cow::Owned(without_credentials(&headers));
                }
                url = next;
                if hop.status == http::StatusCode::SEE_OTHER {
                    method = Method::GET;
                    body = BodySpec::Empty;
                }
                self.keep(&mut pool_guard, hop.conn, &url);
                continue;
            }
            if hop.status.is_redirection() && hop.has_location && self.follow_redirects > 0 {
                return Err(ProbeError::new(
                    ErrorType::RedirectLimit,
                    format!(
                        "more than follow_redirects = {} redirects (status {})",
                        self.follow_redirects, hop.status
                    ),
                ));
            }
            rec.set("body_bytes", hop.body_bytes as f64);
            rec.set("redirects", f64::from(hops));
            if url == self.url {
                rec.detail_redacted("url", self.shown_url.clone());
            } else {
                rec.detail("url", crate::redact::url(url.as_str()));
            }
            let result = self.check(rec, status, &hop.headers, hop.captured.as_deref());
            if result.is_ok() {
                self.keep(&mut pool_guard, hop.conn, &url);
            }
            return result;
        }
    }

    /// One request: connect (or take the pooled connection), send, read the response.
    #[allow(clippy::too_many_arguments)]
    async fn hop(
        &self,
        rec: &mut Recorder,
        pool: &mut Option<tokio::sync::MutexGuard<'_, Option<Pooled>>>,
        url: &url::Url,
        method: &Method,
        headers: &[(HeaderName, HeaderValue)],
        body: &BodySpec,
        hops: u32,
    ) -> Result<Hop, ProbeError> {
        let reuse_mode = self.pool.is_some();
        let mut conn = match pool.as_mut().and_then(|g| g.take()) {
            Some(p) if p.origin == origin(url) && p.conn.is_ready() => p.conn.reused(),
            _ => {
                nethttp::open(
                    &self.resolver,
                    rec,
                    url,
                    &self.tls,
                    self.server_name.as_deref(),
                    self.version,
                )
                .await?
            }
        };
        rec.label(
            "probe.connection",
            match (reuse_mode, conn.was_reused()) {
                (false, _) => "fresh",
                (true, false) => "new",
                (true, true) => "reused",
            },
        );
        let proto = if conn.is_h2() { "2" } else { "1.1" };
        rec.label("network.protocol.version", proto);
        rec.open_attr("network.protocol.version", proto);
        rec.label("http.request.method", method.as_str());
        let req = nethttp::build_request(url, method, headers, body, conn.is_h2(), reuse_mode)?;
        let (resp, first_byte) = conn.exchange(rec, req).await?;
        let status = resp.status();
        rec.label("http.response.status_code", i64::from(status.as_u16()));
        rec.open_attr("http.response.status_code", i64::from(status.as_u16()));

        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let has_location = location.is_some();
        let redirect_to = location.filter(|_| status.is_redirection() && hops < self.follow_redirects);
        let capture =
            redirect_to.is_none() && (self.expect.body_regex.is_some() || self.expect.body_not_regex.is_some());
        let (head, incoming) = resp.into_parts();
        let evidence = crate::outcome::evidence_on();
        let window = if capture { self.expect.match_window } else { 0 };
        let kept = if evidence { window.max(EVIDENCE_BODY) } else { window };
        let read = nethttp::read_body(incoming, self.expect.max_body, kept).await;
        rec.add("transfer", first_byte.elapsed().as_secs_f64());
        let (body_bytes, mut captured) = read?;
        if evidence && let Some(b) = &captured {
            rec.evidence("response-body.txt", crate::redact::block(b, EVIDENCE_BODY).into_bytes());
            captured = capture.then(|| b[..b.len().min(window)].to_vec());
        }
        Ok(Hop {
            status,
            headers: head.headers,
            redirect_to,
            has_location,
            body_bytes,
            captured,
            conn,
        })
    }

    /// Returns a connection to the pool in reuse mode (dropped, and so closed, otherwise).
    fn keep(&self, pool: &mut Option<tokio::sync::MutexGuard<'_, Option<Pooled>>>, conn: HttpConn, url: &url::Url) {
        if let Some(slot) = pool.as_mut() {
            **slot = Some(Pooled {
                origin: origin(url),
                conn,
            });
        }
    }

    fn check(
        &self,
        rec: &mut Recorder,
        status: u16,
        headers: &http::HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<(), ProbeError> {
        let status_ok = match &self.expect.status {
            Some(list) => list.contains(&status),
            None => (200..300).contains(&status),
        };
        if !status_ok {
            return Err(nethttp::status_error(rec, status, headers));
        }
        for h in &self.expect.header_present {
            if !headers.contains_key(h) {
                return Err(ProbeError::new(
                    ErrorType::AssertionFailed,
                    format!("response header {h} is missing"),
                ));
            }
        }
        let text = body.map(String::from_utf8_lossy);
        if let (Some(re), Some(t)) = (&self.expect.body_regex, &text)
            && !re.is_match(t)
        {
            return Err(ProbeError::new(
                ErrorType::AssertionFailed,
                format!("body does not match /{}/", re.as_str()),
            ));
        }
        if let (Some(re), Some(t)) = (&self.expect.body_not_regex, &text)
            && re.is_match(t)
        {
            return Err(ProbeError::new(
                ErrorType::AssertionFailed,
                format!("body matches forbidden /{}/", re.as_str()),
            ));
        }
        Ok(())
    }
}

/// The request headers minus every credential: Authorization, Proxy-Authorization, Cookie
/// and any header whose value came from a secret (curl and the Fetch standard drop the
/// first three on a cross-origin redirect; a secret header is a credential by definition).
fn without_credentials(headers: &[(HeaderName, HeaderValue)]) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(k, v)| {
            !v.is_sensitive()
                && *k != header::AUTHORIZATION
                && *k != header::PROXY_AUTHORIZATION
                && *k != header::COOKIE
        })
        .cloned()
        .collect()
}
