//! What `collect.js` reads off the page, and how it becomes measurements: vitals in
//! seconds, and requests and bytes per resource type and party.

use serde::Deserialize;

use super::network::Log;
pub use super::network::first_party_host;
use super::timeline::{Span, Task, max_potential_fid, time_to_interactive, total_blocking_time};
use crate::outcome::{ErrorType, ProbeError, Recorder};

const COLLECT_JS: &str = include_str!("collect.js");

/// Reads what the page's Performance APIs say (`collect.js`).
pub async fn read(client: &fantoccini::Client) -> Result<PageData, ProbeError> {
    let data = client
        .execute(COLLECT_JS, Vec::new())
        .await
        .map_err(|e| super::session::error("reading the page's metrics", e))?;
    serde_json::from_value(data).map_err(|e| super::session::error("reading the page's metrics", e))
}

/// Resource types, as Lighthouse's budgets name them.
pub const TYPES: &[&str] = &["document", "script", "stylesheet", "image", "font", "media", "other"];
pub const PARTIES: &[&str] = &["first", "third"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageData {
    pub ready_state: String,
    #[serde(default)]
    pub error_page: String,
    #[serde(default)]
    pub status: f64,
    pub ttfb: Option<f64>,
    pub fcp: Option<f64>,
    pub lcp: Option<f64>,
    #[serde(default)]
    pub lcp_element: String,
    #[serde(default)]
    pub lcp_url: String,
    pub cls: f64,
    /// [start, duration] of every long task, ms; `None` when the page had too many to keep.
    pub long_tasks: Option<Vec<[f64; 2]>>,
    /// performance.now() and performance.timeOrigin when read.
    pub now: f64,
    pub time_origin: f64,
    pub dom_content_loaded: Option<f64>,
    pub load: Option<f64>,
    pub errors: f64,
    #[serde(default)]
    pub first_error: String,
    pub document: Option<Resource>,
    #[serde(default)]
    pub resources: Vec<Resource>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub url: String,
    #[serde(default)]
    pub initiator: String,
    #[serde(default)]
    pub mime: String,
    pub encoded: f64,
    pub transfer: f64,
    #[serde(default = "one")]
    pub response_start: f64,
}

fn one() -> f64 {
    1.0
}

/// Requests and bytes of one type and party. A byte count is `None` once one of its
/// requests could not be measured: unknown, never a smaller number.
#[derive(Clone, Copy)]
struct Tally {
    requests: f64,
    bytes: Option<f64>,
    transfer: Option<f64>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            requests: 0.0,
            bytes: Some(0.0),
            transfer: Some(0.0),
        }
    }
}

fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? + b?)
}

/// Records everything the page said. Milliseconds become seconds. Bytes come from the
/// run's DevTools network log when there is one, else from Resource Timing.
/// `keys` names the catalog key a figure is recorded under (the first page: the catalog;
/// a journey step's navigation: "<step>.lcp" and its few siblings), or leaves it out.
pub fn record(
    rec: &mut Recorder,
    page: &PageData,
    first_party: &[String],
    network: Option<&Log>,
    keys: &dyn Fn(&str) -> Option<&'static str>,
) {
    let ms = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0).map(|v| v / 1000.0);
    for (k, v) in [
        ("ttfb", ms(page.ttfb)),
        ("fcp", ms(page.fcp)),
        ("lcp", ms(page.lcp)),
        ("dom_content_loaded", ms(page.dom_content_loaded)),
        ("load", ms(page.load)),
    ] {
        set(rec, keys, k, v);
    }
    if page.cls.is_finite() && page.cls >= 0.0 {
        set(rec, keys, "cls", Some(page.cls));
    }
    let network = network.filter(|n| n.broken.is_none());
    record_main_thread(rec, page, network, keys);
    set(rec, keys, "js_errors", Some(page.errors.max(0.0)));
    // Details describe the probe's own page; a journey's later pages have step reports.
    if keys("lcp") != Some("lcp") {
        return record_bytes(rec, page, first_party, network, keys);
    }
    if !page.lcp_element.is_empty() {
        rec.detail("lcp_element", page.lcp_element.clone());
    }
    if !page.lcp_url.is_empty() {
        rec.detail("lcp_url", crate::redact::url(&page.lcp_url));
    }
    if !page.first_error.is_empty() {
        let first = crate::redact::text(&page.first_error);
        rec.detail("first_js_error", first.chars().take(200).collect::<String>());
    }
    rec.detail("ready_state", page.ready_state.clone());
    record_bytes(rec, page, first_party, network, keys);
}

fn record_bytes(
    rec: &mut Recorder,
    page: &PageData,
    first_party: &[String],
    network: Option<&Log>,
    keys: &dyn Fn(&str) -> Option<&'static str>,
) {
    let mut tally = [[Tally::default(); 2]; 7];
    let mut unmeasured = 0.0;
    let mut count = |url: &str, t: usize, body: Option<f64>, transfer: Option<f64>| {
        let Ok(u) = url::Url::parse(url) else { return };
        let party = usize::from(!first_party_host(u.host_str().unwrap_or_default(), first_party));
        let slot = &mut tally[t][party];
        slot.requests += 1.0;
        if body.is_none() || transfer.is_none() {
            unmeasured += 1.0;
        }
        slot.bytes = add(slot.bytes, body);
        slot.transfer = add(slot.transfer, transfer);
    };
    match network {
        Some(log) => {
            for r in &log.requests {
                let t = lighthouse_type(&r.resource_type);
                // Headless Chromium asks for no favicon; Lighthouse leaves it out too.
                if t == 6 && r.url.ends_with("/favicon.ico") {
                    continue;
                }
                let (body, transfer) = if !r.finished && !r.failed {
                    (None, None) // still loading when the page was read
                } else if r.from_cache {
                    // Nothing crossed the wire. The cached body's encoded size is Resource
                    // Timing's when the page may see it, else what DevTools says.
                    let timing = page.resources.iter().find(|e| e.url == r.url && e.encoded > 0.0);
                    let body = timing.map(|e| e.encoded).or((r.body() > 0.0).then(|| r.body()));
                    (body, Some(0.0))
                } else {
                    (Some(r.body()), Some(r.transfer))
                };
                count(&r.url, t, body, transfer);
            }
            if log.dropped > 0 {
                // Their types are unknown: every type's bytes are.
                unmeasured += log.dropped as f64;
                for slot in tally.iter_mut().flatten() {
                    (slot.bytes, slot.transfer) = (None, None);
                }
            }
        }
        None => {
            let docs = page.document.iter().map(|d| (d, Some(0)));
            let others = page.resources.iter().map(|r| (r, None));
            for (r, forced) in docs.chain(others) {
                let Ok(u) = url::Url::parse(&r.url) else { continue };
                if u.path() == "/favicon.ico" {
                    continue;
                }
                let t = forced.unwrap_or_else(|| classify(&u, &r.initiator, &r.mime));
                // Without Timing-Allow-Origin a cross-origin entry reads 0 everywhere: unknown.
                let hidden = forced.is_none() && r.response_start == 0.0 && r.encoded == 0.0 && r.transfer == 0.0;
                let (body, transfer) = if hidden {
                    (None, None)
                } else {
                    (Some(r.encoded.max(0.0)), Some(r.transfer.max(0.0)))
                };
                count(&r.url, t, body, transfer);
            }
        }
    }
    let mut total = Tally::default();
    let mut third = Tally::default();
    for (t, name) in TYPES.iter().enumerate() {
        let mut of_type = Tally::default();
        for (p, party) in PARTIES.iter().enumerate() {
            let s = tally[t][p];
            set(rec, keys, &format!("{name}_{party}_party_bytes"), s.bytes);
            set(rec, keys, &format!("{name}_{party}_party_transfer"), s.transfer);
            set(rec, keys, &format!("{name}_{party}_party_requests"), Some(s.requests));
            of_type = of_type.plus(s);
        }
        set(rec, keys, &format!("{name}_bytes"), of_type.bytes);
        set(rec, keys, &format!("{name}_transfer"), of_type.transfer);
        set(rec, keys, &format!("{name}_requests"), Some(of_type.requests));
        total = total.plus(of_type);
        third = third.plus(tally[t][1]);
    }
    set(rec, keys, "total_bytes", total.bytes);
    set(rec, keys, "total_transfer", total.transfer);
    set(rec, keys, "requests", Some(total.requests));
    set(rec, keys, "third_party_bytes", third.bytes);
    set(rec, keys, "third_party_transfer", third.transfer);
    set(rec, keys, "third_party_requests", Some(third.requests));
    set(rec, keys, "unmeasured_requests", Some(unmeasured));
}

impl Tally {
    fn plus(self, o: Tally) -> Tally {
        Tally {
            requests: self.requests + o.requests,
            bytes: add(self.bytes, o.bytes),
            transfer: add(self.transfer, o.transfer),
        }
    }
}

/// TBT, time to interactive and max potential FID (timeline.rs). Time to interactive
/// needs the run's network timeline; without it, it is unmeasured and TBT runs to the
/// end of the observation.
fn record_main_thread(
    rec: &mut Recorder,
    page: &PageData,
    network: Option<&Log>,
    keys: &dyn Fn(&str) -> Option<&'static str>,
) {
    let (Some(tasks), Some(fcp)) = (&page.long_tasks, page.fcp) else {
        return;
    };
    let tasks: Vec<Task> = tasks
        .iter()
        .filter(|t| t[0].is_finite() && t[1].is_finite() && t[1] >= 0.0)
        .map(|t| Task {
            start: t[0],
            end: t[0] + t[1],
        })
        .collect();
    let tti = network.zip(page.dom_content_loaded).and_then(|(log, dcl)| {
        let (ts0, wall0) = log.clock?;
        // DevTools' monotonic seconds → page milliseconds, through the wall clock.
        let at = |ts: f64| (wall0 + (ts - ts0)) * 1000.0 - page.time_origin;
        let spans: Vec<Span> = log
            .requests
            .iter()
            .filter_map(|r| match r.end {
                None if !r.failed => Some(Span {
                    start: at(r.start),
                    end: None,
                }),
                Some(end) if r.finished && r.get && r.status < 400 => Some(Span {
                    start: at(r.start),
                    end: Some(at(end)),
                }),
                _ => None,
            })
            .collect();
        time_to_interactive(&tasks, &spans, fcp, dcl, page.now)
    });
    if let Some(tti) = tti {
        set(rec, keys, "interactive", Some(tti / 1000.0));
    }
    let end = tti.unwrap_or(page.now);
    set(rec, keys, "tbt", Some(total_blocking_time(&tasks, fcp, end) / 1000.0));
    set(
        rec,
        keys,
        "max_potential_fid",
        Some(max_potential_fid(&tasks, fcp) / 1000.0),
    );
}

/// The navigation's own failure, if any: Chromium's network error, or an HTTP error status.
pub fn navigation_error(rec: &mut Recorder, page: &PageData) -> Option<ProbeError> {
    if !page.error_page.is_empty() {
        let code = page.error_page.as_str();
        let kind = match code {
            "ERR_CONNECTION_REFUSED" => ErrorType::ConnectRefused,
            "ERR_NAME_NOT_RESOLVED" => ErrorType::DnsNxdomain,
            "ERR_CONNECTION_TIMED_OUT" | "ERR_TIMED_OUT" => ErrorType::ConnectTimeout,
            "ERR_CERT_DATE_INVALID" => ErrorType::TlsCertExpired,
            c if c.starts_with("ERR_CERT_") => ErrorType::TlsCertInvalid,
            c if c.starts_with("ERR_SSL_") => ErrorType::TlsHandshake,
            "ERR_EMPTY_RESPONSE" | "ERR_CONNECTION_RESET" | "ERR_CONNECTION_CLOSED" => ErrorType::ConnectionClosed,
            "ERR_TOO_MANY_REDIRECTS" => ErrorType::RedirectLimit,
            c if c.starts_with("ERR_INVALID_") || c.starts_with("ERR_RESPONSE_") || c.contains("HTTP") => {
                ErrorType::ProtocolError
            }
            _ => ErrorType::BrowserError,
        };
        return Some(ProbeError::new(kind, format!("the page did not load: {code}")));
    }
    let status = page.status as i64;
    if status >= 400 {
        rec.label("http.response.status_code", status);
        if status == 429 {
            return Some(ProbeError::new(ErrorType::RateLimited, "the page answered HTTP 429"));
        }
        return Some(ProbeError::new(
            ErrorType::HttpStatus,
            format!("the page answered HTTP {status}"),
        ));
    }
    None
}

fn set(rec: &mut Recorder, keys: &dyn Fn(&str) -> Option<&'static str>, name: &str, v: Option<f64>) {
    if let (Some(k), Some(v)) = (keys(name), v) {
        rec.set(k, v);
    }
}

/// Lighthouse's resource types (an index into [`TYPES`]) from DevTools' resource type.
fn lighthouse_type(devtools: &str) -> usize {
    match devtools {
        "Document" => 0,
        "Script" => 1,
        "Stylesheet" => 2,
        "Image" => 3,
        "Font" => 4,
        "Media" => 5,
        _ => 6,
    }
}

/// The resource type (index into [`TYPES`]): the MIME type when the browser exposes it
/// (same origin), else the file extension, else what initiated the request.
pub fn classify(u: &url::Url, initiator: &str, mime: &str) -> usize {
    let by_mime = |m: &str| -> Option<usize> {
        let m = m.split(';').next()?.trim().to_ascii_lowercase();
        Some(if m.is_empty() {
            return None;
        } else if m == "text/html" || m == "application/xhtml+xml" {
            0
        } else if m.contains("javascript") || m.contains("ecmascript") {
            1
        } else if m == "text/css" {
            2
        } else if m.starts_with("image/") {
            3
        } else if m.starts_with("font/") || m.contains("font") {
            4
        } else if m.starts_with("video/") || m.starts_with("audio/") || m.contains("mpegurl") {
            5
        } else {
            6
        })
    };
    if let Some(t) = by_mime(mime) {
        return t;
    }
    let ext = u
        .path()
        .rsplit('/')
        .next()
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let by_ext = match ext.as_str() {
        "js" | "mjs" | "cjs" => Some(1),
        "css" => Some(2),
        "png" | "jpg" | "jpeg" | "gif" | "webp" | "avif" | "svg" | "ico" | "bmp" => Some(3),
        "woff" | "woff2" | "ttf" | "otf" | "eot" => Some(4),
        "mp4" | "webm" | "m3u8" | "mpd" | "m4s" | "mp3" | "ogg" | "wav" | "aac" => Some(5),
        "html" | "htm" => Some(0),
        _ => None,
    };
    if let Some(t) = by_ext {
        return t;
    }
    match initiator {
        "script" => 1,
        "img" | "image" => 3,
        "video" | "audio" | "track" => 5,
        "iframe" | "frame" => 0,
        _ => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_party_patterns() {
        let fp = vec!["staging.example.com".to_string(), "*.example-cdn.com".to_string()];
        assert!(first_party_host("staging.example.com", &fp));
        assert!(first_party_host("a.example-cdn.com", &fp));
        assert!(!first_party_host("example-cdn.com", &fp));
        assert!(!first_party_host("evilexample-cdn.com", &fp));
        assert!(!first_party_host("example.com", &fp));
    }

    #[test]
    fn types_from_mime_extension_and_initiator() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(classify(&u("http://a/x"), "link", "text/css"), 2);
        assert_eq!(classify(&u("http://a/app.js?v=1"), "script", ""), 1);
        assert_eq!(classify(&u("http://a/f.woff2"), "css", ""), 4);
        assert_eq!(classify(&u("http://a/pic"), "img", ""), 3);
        assert_eq!(classify(&u("http://a/api"), "fetch", "application/json"), 6);
        assert_eq!(classify(&u("http://a/v.webm"), "video", ""), 5);
    }
}
