//! What `collect.js` reads off the page, and how it becomes measurements: vitals in
//! seconds, and requests and bytes per resource type and party.

use serde::Deserialize;

use super::catalog::key;
use crate::outcome::{ErrorType, ProbeError, Recorder};

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
    pub tbt: f64,
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

#[derive(Default, Clone, Copy)]
struct Tally {
    requests: f64,
    bytes: f64,
    transfer: f64,
}

/// Records everything the page said. Milliseconds become seconds.
pub fn record(rec: &mut Recorder, page: &PageData, first_party: &[String]) {
    let ms = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0).map(|v| v / 1000.0);
    for (k, v) in [
        ("ttfb", ms(page.ttfb)),
        ("fcp", ms(page.fcp)),
        ("lcp", ms(page.lcp)),
        ("dom_content_loaded", ms(page.dom_content_loaded)),
        ("load", ms(page.load)),
        ("tbt", ms(Some(page.tbt))),
    ] {
        if let Some(v) = v {
            rec.set(k, v);
        }
    }
    if page.cls.is_finite() && page.cls >= 0.0 {
        rec.set("cls", page.cls);
    }
    rec.set("js_errors", page.errors.max(0.0));
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

    let mut tally = [[Tally::default(); 2]; 7];
    let mut unmeasured = 0.0;
    let mut transfer_total = 0.0;
    let docs = page.document.iter().map(|d| (d, Some(0)));
    let others = page.resources.iter().map(|r| (r, None));
    for (r, forced) in docs.chain(others) {
        let Ok(u) = url::Url::parse(&r.url) else { continue };
        if u.path() == "/favicon.ico" {
            continue;
        }
        let t = forced.unwrap_or_else(|| classify(&u, &r.initiator, &r.mime));
        let party = usize::from(!first_party_host(u.host_str().unwrap_or_default(), first_party));
        let slot = &mut tally[t][party];
        slot.requests += 1.0;
        // Without Timing-Allow-Origin a cross-origin entry reads 0 everywhere: unknown, not 0.
        if forced.is_none() && r.response_start == 0.0 && r.encoded == 0.0 && r.transfer == 0.0 {
            unmeasured += 1.0;
            continue;
        }
        slot.bytes += r.encoded.max(0.0);
        slot.transfer += r.transfer.max(0.0);
        transfer_total += r.transfer.max(0.0);
    }
    let (mut total, mut requests, mut third, mut third_requests) = (0.0, 0.0, 0.0, 0.0);
    for (t, name) in TYPES.iter().enumerate() {
        let (mut bytes, mut count) = (0.0, 0.0);
        for (p, party) in PARTIES.iter().enumerate() {
            let s = tally[t][p];
            set(rec, &format!("{name}_{party}_party_bytes"), s.bytes);
            set(rec, &format!("{name}_{party}_party_transfer"), s.transfer);
            set(rec, &format!("{name}_{party}_party_requests"), s.requests);
            bytes += s.bytes;
            count += s.requests;
        }
        set(rec, &format!("{name}_bytes"), bytes);
        set(rec, &format!("{name}_requests"), count);
        total += bytes;
        requests += count;
        third += tally[t][1].bytes;
        third_requests += tally[t][1].requests;
    }
    rec.set("total_bytes", total);
    rec.set("requests", requests);
    rec.set("third_party_bytes", third);
    rec.set("third_party_requests", third_requests);
    rec.set("total_transfer", transfer_total);
    rec.set("unmeasured_requests", unmeasured);
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

fn set(rec: &mut Recorder, name: &str, v: f64) {
    if let Some(k) = key(name) {
        rec.set(k, v);
    }
}

/// `host` is first party: equal to an entry, or under a "*.domain" entry.
pub fn first_party_host(host: &str, first_party: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    first_party.iter().any(|p| match p.strip_prefix("*.") {
        Some(domain) => {
            host.len() > domain.len() + 1 && host.ends_with(domain) && host[..host.len() - domain.len()].ends_with('.')
        }
        None => host == *p,
    })
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
