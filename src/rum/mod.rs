//! The RUM collector: web-vitals (`POST /rum`) and Grafana Faro (`POST /collect`) beacons
//! from real browsers, on their own listener. A beacon passes origin, rate, key and size
//! checks, is parsed (`beacon`), its page URL becomes a route label (`route`), repeated
//! reports of one metric collapse to the final value (`store`), and the result goes to
//! telemetry on the same `browser.web_vital.*` instruments as the browser probe, judged
//! against `[rum.budget]`. Every refusal is counted by reason.

pub mod beacon;
pub mod limit;
pub mod route;
pub mod store;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{ConfigError, Dur, Secret, SecretText, Size, Source, Spanned};
use crate::outcome::Watch;
use crate::outcome::{FieldVital, Measure, Unit};
use crate::telemetry::SharedTelemetry;
use beacon::{Reject, Vital};
use store::{Final, Flushed, Store};

/// `[rum]` as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RumConfig {
    /// Address the collector listens on, e.g. "0.0.0.0:9466": browsers reach it, while
    /// `/metrics` stays on `[server] listen`.
    pub listen: Spanned<String>,
    /// Origins of the pages allowed to send beacons, e.g. "https://app.example.com".
    #[serde(default)]
    pub allowed_origins: Vec<Spanned<String>>,
    /// Optional key ("env:NAME" or "file:PATH"): X-API-Key header or ?api_key=.
    pub api_key: Option<Spanned<SecretText>>,
    /// Largest /rum body (default 64KiB, the sendBeacon cap).
    pub max_body: Option<Spanned<Size>>,
    /// Largest /collect (Faro) body (default 5MiB, as Grafana's receiver).
    pub max_faro_body: Option<Spanned<Size>>,
    /// Requests per second over all clients (default 50).
    pub rate: Option<Spanned<f64>>,
    /// Burst over `rate` (default 100).
    pub burst: Option<Spanned<f64>>,
    /// Requests per second per client IP (default 5; burst twice that).
    pub per_client_rate: Option<Spanned<f64>>,
    /// Proxies whose X-Forwarded-For is believed, as CIDRs.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Distinct route labels at most (default 200); the rest fold into "other".
    pub max_routes: Option<Spanned<usize>>,
    /// URL path patterns → route labels: "/orders/:id", "/docs/*".
    #[serde(default)]
    pub route: Vec<RumRoute>,
    /// Per-vital budgets, as probe budgets: lcp = "2.5s", inp = "200ms", cls = 0.1.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, crate::config::ThresholdSchema>")]
    pub budget: BTreeMap<String, Spanned<toml::Value>>,
    /// Metrics one beacon may carry (default 64).
    pub max_batch: Option<Spanned<usize>>,
    /// A metric is recorded once its id has been quiet this long (default "30s").
    pub flush_after: Option<Spanned<Dur>>,
    /// Metrics and page views waiting for their final value at most (default 100000).
    pub max_pending: Option<Spanned<usize>>,
    /// Where browsers reach the collector, for `sloprobe rum snippet` (default: from listen).
    pub public_url: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RumRoute {
    /// "/orders/:id": `:name` matches one segment, a trailing `*` the rest.
    pub pattern: Spanned<String>,
}

/// `[rum]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RumSettings {
    pub listen: SocketAddr,
    pub allowed_origins: Vec<String>,
    pub api_key: Option<Secret>,
    pub max_body: usize,
    pub max_faro_body: usize,
    pub rate: f64,
    pub burst: f64,
    pub per_client_rate: f64,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub max_routes: usize,
    pub routes: Vec<String>,
    /// Per vital, in the measure's unit (seconds, or the CLS score).
    pub budgets: Vec<(Vital, f64)>,
    pub max_batch: usize,
    pub flush_after: Duration,
    pub max_pending: usize,
    pub public_url: String,
}

const LABELS: &[&str] = &[
    "http.route",
    "browser.web_vital.rating",
    "browser.web_vital.navigation_type",
    "rum.device.class",
    "budget.verdict",
];

macro_rules! field_vital {
    ($key:literal, $unit:expr) => {
        crate::outcome::web_vital($key, concat!("browser.web_vital.", $key), $unit, &[], LABELS)
    };
}

/// What the collector records: the browser probe's vital histograms (field data has no
/// `user_agent.synthetic.type`), plus INP and FID, which only real users produce.
pub const MEASURES: &[Measure] = &[
    field_vital!("ttfb", Unit::Seconds),
    field_vital!("fcp", Unit::Seconds),
    field_vital!("lcp", Unit::Seconds),
    field_vital!("cls", Unit::Score),
    field_vital!("inp", Unit::Seconds),
    field_vital!("fid", Unit::Seconds),
];

pub fn measure(v: Vital) -> &'static Measure {
    MEASURES
        .iter()
        .find(|m| m.key == v.key())
        .expect("every vital has a measure")
}

/// web-vitals reports milliseconds; the instruments take seconds (CLS stays a score).
fn to_unit(v: Vital, value: f64) -> f64 {
    match v {
        Vital::Cls => value,
        _ => value / 1000.0,
    }
}

impl RumConfig {
    pub fn check(&self, source: &Source) -> Result<RumSettings, ConfigError> {
        let at = |s: std::ops::Range<usize>, key: &str, msg: String| source.error_at(s, Some(key), msg);
        let listen: SocketAddr = self.listen.get_ref().parse().map_err(|_| {
            at(
                self.listen.span(),
                "rum.listen",
                format!("{:?} is not an address such as \"0.0.0.0:9466\"", self.listen.get_ref()),
            )
        })?;
        if self.allowed_origins.is_empty() {
            return Err(at(
                self.listen.span(),
                "rum.allowed_origins",
                "list the origins of the pages that send beacons, e.g. [\"https://app.example.com\"]".into(),
            ));
        }
        let mut allowed_origins = Vec::new();
        for o in &self.allowed_origins {
            allowed_origins.push(origin_of(o.get_ref()).map_err(|e| at(o.span(), "rum.allowed_origins", e))?);
        }
        let api_key = self
            .api_key
            .as_ref()
            .map(|k| {
                let base = source.path.parent().unwrap_or(std::path::Path::new("."));
                Secret::resolve(k.get_ref().as_str(), base).map_err(|e| at(k.span(), "rum.api_key", e))
            })
            .transpose()?;
        let size = |v: &Option<Spanned<Size>>, key: &str, default: u64, max: u64| -> Result<usize, ConfigError> {
            match v {
                None => Ok(default as usize),
                Some(s) if s.get_ref().0 == 0 || s.get_ref().0 > max => Err(at(
                    s.span(),
                    key,
                    format!("between 1 byte and {}", bytesize::ByteSize(max).display().iec()),
                )),
                Some(s) => Ok(s.get_ref().0 as usize),
            }
        };
        let positive = |v: &Option<Spanned<f64>>, key: &str, default: f64| -> Result<f64, ConfigError> {
            match v {
                None => Ok(default),
                Some(r) if !(r.get_ref().is_finite() && *r.get_ref() > 0.0 && *r.get_ref() <= 1e6) => {
                    Err(at(r.span(), key, "a number of requests per second above 0".into()))
                }
                Some(r) => Ok(*r.get_ref()),
            }
        };
        let count = |v: &Option<Spanned<usize>>, key: &str, default: usize, max: usize| -> Result<usize, ConfigError> {
            match v {
                None => Ok(default),
                Some(n) if *n.get_ref() == 0 || *n.get_ref() > max => {
                    Err(at(n.span(), key, format!("between 1 and {max}")))
                }
                Some(n) => Ok(*n.get_ref()),
            }
        };
        let mut trusted_proxies = Vec::new();
        for p in &self.trusted_proxies {
            let text = p.get_ref();
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    at(
                        p.span(),
                        "rum.trusted_proxies",
                        format!("{text:?} is not an address or CIDR such as \"10.0.0.0/8\""),
                    )
                })?;
            trusted_proxies.push(net);
        }
        let max_routes = count(&self.max_routes, "rum.max_routes", 200, 10_000)?;
        let routes: Vec<String> = self.route.iter().map(|r| r.pattern.get_ref().clone()).collect();
        if let Err(e) = route::Routes::new(&routes, max_routes) {
            let span = self.route.last().map_or(self.listen.span(), |r| r.pattern.span());
            return Err(at(span, "rum.route.pattern", e));
        }
        let mut budgets = Vec::new();
        for (key, value) in &self.budget {
            let path = format!("rum.budget.{key}");
            let vital = Vital::parse(key).filter(|v| v.key() == key).ok_or_else(|| {
                at(
                    value.span(),
                    &path,
                    format!("`{key}` is not a vital; budgets can name: ttfb, fcp, lcp, cls, inp, fid"),
                )
            })?;
            let v = crate::budget::parse_value(measure(vital).unit, key, value.get_ref())
                .map_err(|e| at(value.span(), &path, e))?;
            budgets.push((vital, v));
        }
        let flush_after = match &self.flush_after {
            None => Duration::from_secs(30),
            Some(d) if d.get_ref().0 < Duration::from_millis(100) || d.get_ref().0 > Duration::from_secs(3600) => {
                return Err(at(d.span(), "rum.flush_after", "between 100ms and 1h".into()));
            }
            Some(d) => d.get_ref().0,
        };
        let public_url = match &self.public_url {
            Some(u) => {
                let parsed = url::Url::parse(u.get_ref())
                    .ok()
                    .filter(|p| matches!(p.scheme(), "http" | "https") && p.has_host());
                if parsed.is_none() {
                    return Err(at(
                        u.span(),
                        "rum.public_url",
                        format!("{:?} is not an http(s) URL", u.get_ref()),
                    ));
                }
                u.get_ref().trim_end_matches('/').to_string()
            }
            None => format!("http://{listen}"),
        };
        Ok(RumSettings {
            listen,
            allowed_origins,
            api_key,
            max_body: size(&self.max_body, "rum.max_body", 64 * 1024, 1 << 20)?,
            max_faro_body: size(&self.max_faro_body, "rum.max_faro_body", 5 << 20, 64 << 20)?,
            rate: positive(&self.rate, "rum.rate", 50.0)?,
            burst: positive(&self.burst, "rum.burst", 100.0)?.max(1.0),
            per_client_rate: positive(&self.per_client_rate, "rum.per_client_rate", 5.0)?,
            trusted_proxies,
            max_routes,
            routes,
            budgets,
            max_batch: count(&self.max_batch, "rum.max_batch", 64, 1000)?,
            flush_after,
            max_pending: count(&self.max_pending, "rum.max_pending", 100_000, 10_000_000)?,
            public_url,
        })
    }
}

/// "https://app.example.com" (no path, no "*": credentials need an exact origin).
fn origin_of(text: &str) -> Result<String, String> {
    if text == "*" {
        return Err(
            "\"*\" cannot be used: sendBeacon sends credentials, and browsers refuse `*` with them; list the origins"
                .into(),
        );
    }
    let u =
        url::Url::parse(text).map_err(|_| format!("{text:?} is not an origin such as \"https://app.example.com\""))?;
    if !matches!(u.scheme(), "http" | "https") || !u.has_host() || !matches!(u.path(), "" | "/") || u.query().is_some()
    {
        return Err(format!(
            "{text:?} is not an origin such as \"https://app.example.com\" (scheme, host, optional port; no path)"
        ));
    }
    Ok(u.origin().ascii_serialization())
}

/// mobile / tablet / desktop from a User-Agent header, by the tokens MDN recommends
/// ("Mobi", plus the tablets that lack it). iPadOS Safari says it is a Mac: desktop.
pub fn device_class(ua: &str) -> &'static str {
    let has = |s: &str| ua.contains(s);
    if has("iPad") || has("Tablet") || has("Kindle") || has("Silk/") || (has("Android") && !has("Mobi")) {
        "tablet"
    } else if has("Mobi") || has("iPhone") || has("iPod") {
        "mobile"
    } else {
        "desktop"
    }
}

/// Route labels by id, looked up once per flush batch.
struct RouteNames<'a> {
    routes: &'a route::Routes,
    seen: std::collections::HashMap<route::RouteId, Arc<str>>,
}

impl<'a> RouteNames<'a> {
    fn new(routes: &'a route::Routes) -> Self {
        RouteNames {
            routes,
            seen: std::collections::HashMap::new(),
        }
    }

    fn get(&mut self, id: route::RouteId) -> Arc<str> {
        self.seen.entry(id).or_insert_with(|| self.routes.name(id)).clone()
    }
}

/// How long a beacon's body may take to arrive.
const BODY_TIME: Duration = Duration::from_secs(10);

/// Coverage over the last page views: the share that reported each vital.
const COVERAGE_WINDOW: usize = 1000;

pub struct Collector {
    settings: RumSettings,
    routes: route::Routes,
    limiter: limit::Limiter,
    store: Store,
    telemetry: SharedTelemetry,
    /// Per vital, the thresholds counted exactly: its budget and SLO thresholds.
    watches: Vec<(Vital, Vec<Watch>)>,
    coverage: Mutex<VecDeque<u8>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    WebVitals,
    Faro,
}

impl Format {
    fn endpoint(self) -> &'static str {
        match self {
            Format::WebVitals => "/rum",
            Format::Faro => "/collect",
        }
    }
}

impl Collector {
    /// `slo_thresholds`: (vital key, threshold) of every `[[slo]]` on a RUM vital.
    pub fn new(settings: RumSettings, slo_thresholds: &[(String, f64)], telemetry: SharedTelemetry) -> Arc<Collector> {
        let routes = route::Routes::new(&settings.routes, settings.max_routes).expect("checked at load");
        let watches = Vital::ALL
            .iter()
            .map(|v| {
                let mut t: Vec<f64> = settings
                    .budgets
                    .iter()
                    .filter(|(b, _)| b == v)
                    .map(|(_, x)| *x)
                    .chain(slo_thresholds.iter().filter(|(k, _)| k == v.key()).map(|(_, x)| *x))
                    .collect();
                t.sort_by(f64::total_cmp);
                t.dedup();
                let m = measure(*v);
                let t = t
                    .into_iter()
                    .map(|x| Watch {
                        key: m.key,
                        value: x,
                        unit: m.unit,
                    })
                    .collect();
                (*v, t)
            })
            .collect();
        Arc::new(Collector {
            limiter: limit::Limiter::new(settings.rate, settings.burst, settings.per_client_rate),
            store: Store::new(settings.flush_after, settings.max_pending),
            routes,
            telemetry,
            watches,
            coverage: Mutex::new(VecDeque::with_capacity(COVERAGE_WINDOW)),
            settings,
        })
    }

    pub fn settings(&self) -> &RumSettings {
        &self.settings
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/rum", axum::routing::any(beacon::<false>))
            .route("/collect", axum::routing::any(beacon::<true>))
            .route("/healthz", axum::routing::get(|| async { "ok\n" }))
            .with_state(self.clone())
    }

    /// Records what has become final, every quarter of `flush_after` (at most 1 s),
    /// until `stop`; then everything still waiting.
    pub async fn flush_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let every = (self.settings.flush_after / 4).min(Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let due = self.store.due(Instant::now());
                    self.emit_off_thread(due).await;
                }
                _ = stop.changed() => break,
            }
        }
        let rest = self.store.drain();
        self.emit_off_thread(rest).await;
    }

    /// Recording thousands of vitals is CPU work: it runs on the blocking pool, so the
    /// runtime's workers keep answering beacons meanwhile.
    async fn emit_off_thread(self: &Arc<Self>, flushed: Vec<Flushed>) {
        if flushed.is_empty() {
            return;
        }
        let c = self.clone();
        let _ = tokio::task::spawn_blocking(move || c.emit(flushed)).await;
    }

    fn emit(&self, flushed: Vec<Flushed>) {
        if flushed.is_empty() {
            return;
        }
        let telemetry = self.telemetry.read().expect("telemetry lock").clone();
        let mut coverage = self.coverage.lock().expect("coverage lock");
        let mut views = false;
        let mut names = RouteNames::new(&self.routes);
        for f in flushed {
            match f {
                Flushed::Vital(v) => {
                    let m = measure(v.vital);
                    let value = to_unit(v.vital, v.value);
                    let mut attrs = [
                        ("browser.web_vital.rating", v.vital.rating(v.value).as_str()),
                        ("browser.web_vital.navigation_type", v.navigation.as_str()),
                        ("rum.device.class", v.device),
                        ("budget.verdict", ""),
                    ];
                    let mut attr_count = 3;
                    if let Some((_, limit)) = self.settings.budgets.iter().find(|(b, _)| *b == v.vital) {
                        attrs[3].1 = if m.unit.within(value, *limit) { "good" } else { "bad" };
                        attr_count = 4;
                    }
                    let thresholds = self
                        .watches
                        .iter()
                        .find(|(w, _)| *w == v.vital)
                        .map_or(&[][..], |(_, t)| &t[..]);
                    telemetry.record_field(&FieldVital {
                        measure: m,
                        value,
                        route: names.get(v.route),
                        attrs,
                        attr_count,
                        thresholds,
                    });
                }
                Flushed::PageView { route, vitals } => {
                    telemetry.record_page_view(&names.get(route));
                    if coverage.len() == COVERAGE_WINDOW {
                        coverage.pop_front();
                    }
                    coverage.push_back(vitals);
                    views = true;
                }
            }
        }
        if views {
            let n = coverage.len() as f64;
            for v in Vital::ALL {
                let reported = coverage.iter().filter(|m| *m & v.bit() != 0).count() as f64;
                if v != Vital::Fid || reported > 0.0 {
                    telemetry.record_coverage(v.key(), reported / n);
                }
            }
        }
        telemetry.record_routes(self.routes.len());
    }

    /// The origin check, then the shared refusals: rate, key, size. `Ok` holds the body.
    async fn admit(
        &self,
        format: Format,
        peer: Option<SocketAddr>,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
        body: Body,
    ) -> Result<axum::body::Bytes, Response> {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let allowed = self.allowed_origin(headers);
        let refuse = |status: StatusCode, reason: &'static str| {
            self.count_beacon(format, Some(reason));
            respond(status, allowed, reason)
        };
        // A browser always sends Origin on a cross-origin POST; a request without one is
        // not from a page (curl, a server): CORS does not apply, the key still does.
        if origin.is_some() && allowed.is_none() {
            return Err(refuse(StatusCode::FORBIDDEN, "origin"));
        }
        if method == Method::OPTIONS {
            return Err(self.preflight(allowed));
        }
        if method != Method::POST {
            return Err(refuse(StatusCode::METHOD_NOT_ALLOWED, "method"));
        }
        let peer_ip = peer.map_or(std::net::IpAddr::from([127, 0, 0, 1]), |p| p.ip());
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let client = limit::client_ip(peer_ip, forwarded, &self.settings.trusted_proxies);
        if let Err(wait) = self.limiter.admit(client) {
            let mut r = refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return Err(r);
        }
        if let Some(key) = &self.settings.api_key {
            let given = headers
                .get("x-api-key")
                .map(|v| v.as_bytes().to_vec())
                .or_else(|| query_param(query?, "api_key").map(String::into_bytes));
            let ok = given.is_some_and(|g| constant_time_eq(&g, key.expose().as_bytes()));
            if !ok {
                return Err(refuse(StatusCode::UNAUTHORIZED, "api_key"));
            }
        }
        let cap = match format {
            Format::WebVitals => self.settings.max_body,
            Format::Faro => self.settings.max_faro_body,
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"));
        }
        // A body trickled in a byte at a time would hold a connection for as long as the
        // idle timeout keeps being reset: it gets BODY_TIME in all.
        // Usually the whole body came with the headers: then no timer is armed at all.
        let collect = http_body_util::Limited::new(body, cap).collect();
        tokio::pin!(collect);
        let collected = match futures_util::poll!(&mut collect) {
            std::task::Poll::Ready(r) => Ok(r),
            std::task::Poll::Pending => tokio::time::timeout(BODY_TIME, collect).await,
        };
        match collected {
            Err(_) => Err(refuse(StatusCode::REQUEST_TIMEOUT, "body_timeout")),
            Ok(Ok(b)) => Ok(b.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"))
            }
            Ok(Err(_)) => Err(refuse(StatusCode::BAD_REQUEST, "body_read")),
        }
    }

    /// The request's `Origin`, when it is one of `allowed_origins`.
    fn allowed_origin<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .filter(|o| self.settings.allowed_origins.iter().any(|a| a == o))
    }

    fn preflight(&self, allowed: Option<&str>) -> Response {
        let Some(origin) = allowed else {
            // No Origin at all: not a CORS preflight.
            return (StatusCode::NO_CONTENT, ()).into_response();
        };
        let mut r = respond(StatusCode::NO_CONTENT, Some(origin), "");
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type, Idempotency-Key, X-API-Key"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        r
    }

    async fn handle(
        self: Arc<Self>,
        format: Format,
        peer: Option<axum::Extension<crate::server::Peer>>,
        method: Method,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Body,
    ) -> Response {
        let peer = peer.map(|p| p.0.0);
        let body = match self.admit(format, peer, &method, &headers, uri.query(), body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let allowed = self.allowed_origin(&headers);
        let parsed = match format {
            Format::WebVitals => beacon::parse_web_vitals(&body, self.settings.max_batch),
            Format::Faro => beacon::parse_faro(&body, self.settings.max_batch),
        };
        let reports = match parsed {
            Ok(r) => r,
            Err(reject) => {
                self.count_beacon(format, Some(reject.as_str()));
                let status = match reject {
                    Reject::TooManyMetrics => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                return respond(status, allowed, reject.as_str());
            }
        };
        let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok());
        let device = device_class(
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        let telemetry = self.telemetry.read().expect("telemetry lock").clone();
        let now = Instant::now();
        let (mut accepted, mut rejected) = (0, 0);
        let mut keys = Vec::with_capacity(reports.len());
        // A batch comes from one page: its URL is usually the same for every metric.
        let mut last_route: Option<(&str, route::RouteId)> = None;
        for r in &reports {
            match r {
                Ok(report) => {
                    accepted += 1;
                    let page = report.url.as_deref().or(referer).unwrap_or("/");
                    let route = match last_route {
                        Some((url, route)) if url == page => route,
                        _ => {
                            let route = self.routes.label(page);
                            last_route = Some((page, route));
                            route
                        }
                    };
                    let fin = Final {
                        vital: report.vital,
                        value: report.value,
                        route,
                        navigation: report.navigation,
                        device,
                    };
                    keys.push((fin, report.id.as_deref(), report.page_id.as_deref()));
                }
                Err(reason) => {
                    rejected += 1;
                    telemetry.count_vitals(Some(reason.as_str()), 1);
                }
            }
        }
        if accepted > 0 {
            telemetry.count_vitals(None, accepted);
        }
        let flushed = self.store.add(keys, now);
        if !flushed.is_empty() {
            // A full shard flushed early: record it off the request path.
            let c = self.clone();
            tokio::task::spawn_blocking(move || c.emit(flushed));
        }
        let format_reason = (accepted == 0 && rejected > 0).then_some("no_valid_metrics");
        telemetry.count_beacon(format.endpoint(), format_reason);
        drop(telemetry);
        if format_reason.is_some() {
            return respond(StatusCode::BAD_REQUEST, allowed, "no_valid_metrics");
        }
        let status = match format {
            Format::WebVitals => StatusCode::NO_CONTENT,
            // Grafana's receiver answers 202.
            Format::Faro => StatusCode::ACCEPTED,
        };
        respond(status, allowed, "")
    }

    fn count_beacon(&self, format: Format, reason: Option<&'static str>) {
        let telemetry = self.telemetry.read().expect("telemetry lock").clone();
        telemetry.count_beacon(format.endpoint(), reason);
    }
}

/// `/rum` (`FARO = false`) and `/collect` (`true`).
async fn beacon<const FARO: bool>(
    State(c): State<Arc<Collector>>,
    peer: Option<axum::Extension<crate::server::Peer>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = if FARO { Format::Faro } else { Format::WebVitals };
    c.handle(format, peer, method, uri, headers, body).await
}

/// A response with the CORS headers an allowed origin needs to read it.
fn respond(status: StatusCode, origin: Option<&str>, reason: &str) -> Response {
    let mut r = if reason.is_empty() {
        status.into_response()
    } else {
        (status, format!("{reason}\n")).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
    r
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Equal-time comparison of the key: the time taken does not depend on where the bytes
/// first differ (only on the length of the expected key).
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

/// `sloprobe rum snippet`: the client for this collector, as an ES module that imports
/// web-vitals (bundled, or from a CDN build without a bundler).
pub fn snippet(settings: &RumSettings, import_from: &str) -> String {
    let endpoint = format!("{}/rum", settings.public_url);
    let key_note = if settings.api_key.is_some() {
        "\n// [rum] api_key is set: sendBeacon cannot send headers, so the key rides in the URL.\n// It is visible to anyone who loads the page; it filters noise, it is not a secret.\nconst ENDPOINT = 'ENDPOINT_URL?api_key=' + encodeURIComponent('YOUR_RUM_KEY');\n"
            .replace("ENDPOINT_URL", &endpoint)
    } else {
        format!("\nconst ENDPOINT = '{endpoint}';\n")
    };
    include_str!("snippet.js")
        .replace("__IMPORT_FROM__", import_from)
        .replace("/*__ENDPOINT__*/\n", &key_note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_classes() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let android_phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36";
        let android_tab = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        let ipad = "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15";
        let desktop =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36";
        assert_eq!(device_class(iphone), "mobile");
        assert_eq!(device_class(android_phone), "mobile");
        assert_eq!(device_class(android_tab), "tablet");
        assert_eq!(device_class(ipad), "tablet");
        assert_eq!(device_class(desktop), "desktop");
        assert_eq!(device_class(""), "desktop");
    }

    #[test]
    fn origins() {
        assert_eq!(origin_of("https://app.example.com").unwrap(), "https://app.example.com");
        assert_eq!(origin_of("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(
            origin_of("https://app.example.com:443").unwrap(),
            "https://app.example.com"
        );
        assert!(origin_of("*").is_err());
        assert!(origin_of("https://app.example.com/path").is_err());
        assert!(origin_of("app.example.com").is_err());
    }

    #[test]
    fn key_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
    }
}
