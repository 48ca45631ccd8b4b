//! The RUM collector: web-vitals (`POST /rum`) and Grafana Faro (`POST /collect`) beacons
//! from real browsers, on their own listener. A beacon passes origin, rate, key and size
//! checks, is parsed (`beacon`), its page URL becomes a route label (`route`), repeated
//! reports of one metric collapse to the final value (`store`), and the result goes to
//! telemetry on the same `browser.web_vital.*` instruments as the browser probe, judged
//! against `[rum.budget]`. Every refusal is counted by reason.

pub mod beacon;
mod catalog;
mod config;
pub mod limit;
mod pool;
pub mod route;
pub mod store;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;

use crate::outcome::FieldVital;
use crate::outcome::Watch;
use crate::telemetry::SharedTelemetry;
use beacon::{Reject, Vital};
use catalog::to_unit;
pub use catalog::{MEASURES, device_class, measure};
pub use config::{RumConfig, RumRoute, RumSettings};
use store::{BeaconMeta, Final, Flushed, Store};

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
/// Beacon threads, and beacons that may wait for one (each holds its reserved body).
const PARSE_THREADS: usize = 2;
const PARSE_QUEUE: usize = 256;

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
    /// `[rum] max_inflight_bytes`, one permit a byte of body held.
    inflight: Arc<tokio::sync::Semaphore>,
    /// Where beacons are parsed and recorded, off the probes' runtime.
    pool: pool::Pool,
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
            store: Store::new(settings.flush_after, settings.page_view_window, settings.max_pending),
            routes,
            telemetry,
            watches,
            coverage: Mutex::new(VecDeque::with_capacity(COVERAGE_WINDOW)),
            inflight: Arc::new(tokio::sync::Semaphore::new(settings.max_inflight_bytes)),
            pool: pool::Pool::new(PARSE_THREADS, PARSE_QUEUE),
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
            // Grafana Cloud's form: the app key in the path, checked like `api_key`.
            .route("/collect/{app_key}", axum::routing::any(beacon::<true>))
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
                Flushed::PageView {
                    route, adopted: true, ..
                } => {
                    telemetry.record_adopted_page_view(&names.get(route));
                }
                Flushed::PageView {
                    route,
                    vitals,
                    sample_rate,
                    ..
                } => {
                    telemetry.record_page_view(&names.get(route), sample_rate);
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
        req: &Incoming,
        body: Body,
    ) -> Result<(axum::body::Bytes, tokio::sync::OwnedSemaphorePermit), Response> {
        let Incoming {
            peer,
            method,
            headers,
            uri,
            path_key,
        } = req;
        let (method, headers, query, path_key) = (method, headers, uri.query(), path_key.as_deref());
        let allowed = self.allowed_origin(headers);
        let refuse = |status: StatusCode, reason: &'static str| {
            self.count_beacon(format, Some(reason));
            respond(status, allowed, reason)
        };
        // A browser always sends Origin on a cross-origin POST; a request without one is
        // not from a page (curl, a server): CORS does not apply, the key still does. Any
        // Origin header (two of them, or one that is not text) must be an allowed one.
        if method == Method::OPTIONS {
            if headers.contains_key(header::ORIGIN) {
                let telemetry = self.telemetry.read().expect("telemetry lock").clone();
                telemetry.count_preflight(format.endpoint(), allowed.is_some());
            }
            if headers.contains_key(header::ORIGIN) && allowed.is_none() {
                return Err(respond(StatusCode::FORBIDDEN, None, "origin"));
            }
            return Err(self.preflight(allowed));
        }
        if headers.contains_key(header::ORIGIN) && allowed.is_none() {
            return Err(refuse(StatusCode::FORBIDDEN, "origin"));
        }
        if method != Method::POST {
            return Err(refuse(StatusCode::METHOD_NOT_ALLOWED, "method"));
        }
        // A key in the path with no key configured is a URL this collector does not serve.
        if path_key.is_some() && self.settings.api_key.is_none() {
            return Err(refuse(StatusCode::NOT_FOUND, "app_key"));
        }
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.as_bytes().to_ascii_lowercase());
        if encoding.as_deref().is_some_and(|e| e != b"gzip" && e != b"identity") {
            return Err(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "encoding"));
        }
        // The key first: requests without it must not spend the rate budget of those with it.
        if let Some(key) = &self.settings.api_key {
            let given = headers
                .get("x-api-key")
                .map(|v| v.as_bytes().to_vec())
                .or_else(|| path_key.map(|k| k.as_bytes().to_vec()))
                .or_else(|| query_param(query?, "api_key").map(String::into_bytes));
            let ok = given.is_some_and(|g| constant_time_eq(&g, key.expose().as_bytes()));
            if !ok {
                return Err(refuse(StatusCode::UNAUTHORIZED, "api_key"));
            }
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
        let cap = self.cap(format);
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"));
        }
        // The body's memory is reserved before a byte of it is read: slow bodies from many
        // addresses cannot add up past max_inflight_bytes. A gzip body's inflated form
        // (at most `cap` too) is reserved with it.
        let gzip = encoding.as_deref() == Some(b"gzip");
        let reserve = declared.map_or(cap, |n| (n as usize).min(cap)).max(1) + if gzip { cap } else { 0 };
        let Ok(permit) = self.inflight.clone().try_acquire_many_owned(reserve as u32) else {
            let mut r = refuse(StatusCode::SERVICE_UNAVAILABLE, "memory_budget");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            return Err(r);
        };
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
            Ok(Ok(b)) => Ok((b.to_bytes(), permit)),
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"))
            }
            Ok(Err(_)) => Err(refuse(StatusCode::BAD_REQUEST, "body_read")),
        }
    }

    /// The request's `Origin`, when it is exactly one header, text, and one of
    /// `allowed_origins`.
    fn allowed_origin<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let mut all = headers.get_all(header::ORIGIN).iter();
        let (Some(one), None) = (all.next(), all.next()) else {
            return None;
        };
        one.to_str()
            .ok()
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
            HeaderValue::from_str(&self.settings.allow_headers).expect("checked header names"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        r
    }

    async fn handle(self: Arc<Self>, format: Format, req: Incoming, body: Body) -> Response {
        // The permit (the body's share of max_inflight_bytes) is held until the body is parsed.
        let (body, permit) = match self.admit(format, &req, body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let headers = req.headers;
        let allowed = self.allowed_origin(&headers);
        let meta = match beacon_meta(req.uri.query().unwrap_or("")) {
            Ok(m) => m,
            Err(reason) => {
                self.count_beacon(format, Some(reason));
                return respond(StatusCode::BAD_REQUEST, allowed, reason);
            }
        };
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (referer, agent) = (text(header::REFERER), text(header::USER_AGENT));
        let gzip = headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let c = self.clone();
        let done = self
            .pool
            .run(move || {
                let _permit = permit;
                let body = if gzip {
                    match inflate(&body, c.cap(format)) {
                        Ok(b) => std::borrow::Cow::Owned(b),
                        Err(reason) => {
                            c.count_beacon(format, Some(reason));
                            let status = if reason == "body_too_large" {
                                StatusCode::PAYLOAD_TOO_LARGE
                            } else {
                                StatusCode::BAD_REQUEST
                            };
                            return (status, reason);
                        }
                    }
                } else {
                    std::borrow::Cow::Borrowed(&body[..])
                };
                c.process(format, &body, meta, referer.as_deref(), agent.as_deref().unwrap_or(""))
            })
            .await;
        match done {
            Ok((status, reason)) => respond(status, allowed, reason),
            Err(pool::Refused::Busy) => {
                self.count_beacon(format, Some("busy"));
                let mut r = respond(StatusCode::SERVICE_UNAVAILABLE, allowed, "busy");
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
                r
            }
            Err(pool::Refused::Failed) => {
                self.count_beacon(format, Some("internal"));
                respond(StatusCode::INTERNAL_SERVER_ERROR, allowed, "internal")
            }
        }
    }

    /// Parses an admitted beacon and stores its vitals (on the pool): the status and
    /// reason to answer with.
    fn process(
        &self,
        format: Format,
        body: &[u8],
        meta: BeaconMeta,
        referer: Option<&str>,
        agent: &str,
    ) -> (StatusCode, &'static str) {
        let parsed = match format {
            Format::WebVitals => beacon::parse_web_vitals(body, self.settings.max_batch),
            Format::Faro => beacon::parse_faro(body, self.settings.max_batch),
        };
        let reports = match parsed {
            Ok(r) => r,
            Err(reject) => {
                self.count_beacon(format, Some(reject.as_str()));
                let status = match reject {
                    Reject::TooManyMetrics => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                return (status, reject.as_str());
            }
        };
        let device = device_class(agent);
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
                    keys.push(store::Incoming {
                        report: fin,
                        id: report.id.as_deref(),
                        page: report.page_id.as_deref(),
                        resent: report.resent,
                    });
                }
                Err(reason) => {
                    rejected += 1;
                    telemetry.count_vitals(Some(reason.as_str()), 1);
                }
            }
        }
        let store::Added {
            flushed,
            duplicates,
            unseen_resends,
        } = self.store.add(keys, meta, now);
        // A value its page view recorded already, or that another collector holds:
        // taken, never recorded twice.
        if duplicates > 0 {
            telemetry.count_vitals(Some("duplicate"), duplicates as u64);
        }
        if unseen_resends > 0 {
            telemetry.count_vitals(Some("unseen_resend"), unseen_resends as u64);
        }
        let dropped = (duplicates + unseen_resends) as u64;
        if accepted > dropped {
            telemetry.count_vitals(None, accepted - dropped);
        }
        // A full shard flushed early: recorded here, on the pool.
        self.emit(flushed);
        let format_reason = (accepted == 0 && rejected > 0).then_some("no_valid_metrics");
        telemetry.count_beacon(format.endpoint(), format_reason);
        drop(telemetry);
        if format_reason.is_some() {
            return (StatusCode::BAD_REQUEST, "no_valid_metrics");
        }
        let status = match format {
            Format::WebVitals => StatusCode::NO_CONTENT,
            // Grafana's receiver answers 202.
            Format::Faro => StatusCode::ACCEPTED,
        };
        (status, "")
    }

    /// The largest body a format may have (inflated, for a gzip body).
    fn cap(&self, format: Format) -> usize {
        match format {
            Format::WebVitals => self.settings.max_body,
            Format::Faro => self.settings.max_faro_body,
        }
    }

    fn count_beacon(&self, format: Format, reason: Option<&'static str>) {
        let telemetry = self.telemetry.read().expect("telemetry lock").clone();
        telemetry.count_beacon(format.endpoint(), reason);
    }
}

/// `/rum` (`FARO = false`), `/collect` and `/collect/<app-key>` (`true`).
async fn beacon<const FARO: bool>(
    State(c): State<Arc<Collector>>,
    peer: Option<axum::Extension<crate::server::Peer>>,
    path_key: Option<axum::extract::Path<String>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = if FARO { Format::Faro } else { Format::WebVitals };
    let req = Incoming {
        peer: peer.map(|p| p.0.0),
        method,
        headers,
        uri,
        path_key: path_key.map(|p| p.0),
    };
    c.handle(format, req, body).await
}

/// A beacon request, less its body.
struct Incoming {
    peer: Option<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
    /// The app key of `/collect/<app-key>`.
    path_key: Option<String>,
}

/// A gzip body, inflated to at most `cap` bytes (a zip bomb stops there).
fn inflate(body: &[u8], cap: usize) -> Result<Vec<u8>, &'static str> {
    use std::io::Read as _;
    let mut out = Vec::with_capacity((body.len() * 4).min(cap));
    let mut decoder = flate2::read::GzDecoder::new(body).take(cap as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|_| "bad_encoding")?;
    if out.len() > cap {
        return Err("body_too_large");
    }
    Ok(out)
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

/// The beacon's own query parameters: `b`, its index within its page view (0 = the
/// first), and `sr`, the share of page views its client samples (0 < sr ≤ 1).
fn beacon_meta(query: &str) -> Result<BeaconMeta, &'static str> {
    let mut meta = BeaconMeta::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "b" => meta.opens = v.parse::<u32>().map_err(|_| "bad_beacon_index")? == 0,
            "sr" => {
                meta.sample_rate = v
                    .parse::<f32>()
                    .ok()
                    .filter(|r| *r > 0.0 && *r <= 1.0)
                    .ok_or("bad_sample_rate")?;
            }
            _ => {}
        }
    }
    Ok(meta)
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
    let endpoint = js_string(&format!("{}/rum", settings.public_url));
    let key_note = if settings.api_key.is_some() {
        format!(
            "\n// [rum] api_key is set: sendBeacon cannot send headers, so the key rides in the URL.\n// It is visible to anyone who loads the page; it filters noise, it is not a secret.\nconst ENDPOINT = {endpoint} + '?api_key=' + encodeURIComponent('YOUR_RUM_KEY');\n"
        )
    } else {
        format!("\nconst ENDPOINT = {endpoint};\n")
    };
    include_str!("snippet.js")
        .replace("'__IMPORT_FROM__'", &js_string(import_from))
        .replace("/*__SAMPLE_RATE__*/1", &format!("{}", settings.sample_rate))
        .replace("/*__ENDPOINT__*/\n", &key_note)
}

/// A JavaScript string literal of `s`, safe inside an inline `<script>` too: config and
/// command-line text never becomes code.
fn js_string(s: &str) -> String {
    serde_json::to_string(s)
        .expect("a string serializes")
        .replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_text_never_becomes_code() {
        let hostile = "x';alert(1);//</script>";
        let lit = js_string(hostile);
        assert!(lit.starts_with('"') && lit.ends_with('"'), "{lit}");
        assert!(!lit.contains("</script>") && !lit.contains("\";"), "{lit}");
        assert_eq!(serde_json::from_str::<String>(&lit).unwrap(), hostile);
    }

    #[test]
    fn key_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
    }
}
