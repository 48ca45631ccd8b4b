//! `[rum]`: the collector's listener, origins, keys, limits, routes and budgets, checked
//! into [`RumSettings`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::beacon::Vital;
use super::catalog::measure;
use super::route;
use crate::config::{ConfigError, Dur, Secret, SecretText, Size, Source, Spanned};

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
    /// Body bytes all requests in flight may hold at once (default 64MiB); a request is
    /// admitted against it before its body is read, else 503 + Retry-After.
    pub max_inflight_bytes: Option<Spanned<Size>>,
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
    /// The share of page views the snippet measures (0 < rate ≤ 1, default 1), decided
    /// once per page view and sent with its beacons.
    pub sample_rate: Option<Spanned<f64>>,
    /// TTFB, FCP and LCP are recorded once their id has been quiet this long (default "30s").
    pub flush_after: Option<Spanned<Dur>>,
    /// A page view is closed (counted, its CLS and INP recorded with their last value)
    /// once it has sent nothing for this long (default "10m"); until then a vital it
    /// already recorded is never recorded again.
    pub page_view_window: Option<Spanned<Dur>>,
    /// Request headers browsers may send, beyond the ones Faro and the snippet send
    /// (Content-Type, Content-Encoding, Idempotency-Key, X-API-Key, X-Faro-Session-Id).
    #[serde(default)]
    pub allow_headers: Vec<Spanned<String>>,
    /// Metrics and page views waiting for their final value at most (default 100000).
    pub max_pending: Option<Spanned<usize>>,
    /// Where browsers reach the collector, for `sloprobe rum snippet` (default: from listen).
    pub public_url: Option<Spanned<String>>,
    /// Serve HTTPS only: pages served over https may only send beacons to https.
    pub tls: Option<crate::web_security::TlsKeys>,
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
    pub max_inflight_bytes: usize,
    pub rate: f64,
    pub burst: f64,
    pub per_client_rate: f64,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub max_routes: usize,
    pub routes: Vec<String>,
    /// Per vital, in the measure's unit (seconds, or the CLS score).
    pub budgets: Vec<(Vital, f64)>,
    pub max_batch: usize,
    /// `sample_rate`, written into the snippet.
    pub sample_rate: f64,
    pub flush_after: Duration,
    pub page_view_window: Duration,
    /// The preflight's Access-Control-Allow-Headers value.
    pub allow_headers: String,
    pub max_pending: usize,
    pub public_url: String,
    /// `[rum.tls]`, checked.
    pub security: crate::web_security::Security,
}

/// What Faro's fetch transport and the snippet send.
const DEFAULT_ALLOW_HEADERS: &str = "Content-Type, Content-Encoding, Idempotency-Key, X-API-Key, X-Faro-Session-Id";

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
        let page_view_window = match &self.page_view_window {
            None => Duration::from_secs(600).max(flush_after),
            Some(d) if d.get_ref().0 < flush_after || d.get_ref().0 > Duration::from_secs(86_400) => {
                return Err(at(
                    d.span(),
                    "rum.page_view_window",
                    "between flush_after and 24h".into(),
                ));
            }
            Some(d) => d.get_ref().0,
        };
        let mut allow_headers = DEFAULT_ALLOW_HEADERS.to_string();
        for h in &self.allow_headers {
            let name = h.get_ref();
            if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(at(
                    h.span(),
                    "rum.allow_headers",
                    format!("{name:?} is not a header name"),
                ));
            }
            allow_headers.push_str(", ");
            allow_headers.push_str(name);
        }
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
            None => format!("{}://{listen}", if self.tls.is_some() { "https" } else { "http" }),
        };
        let max_faro_body = size(&self.max_faro_body, "rum.max_faro_body", 5 << 20, 64 << 20)?;
        let max_inflight_bytes = size(&self.max_inflight_bytes, "rum.max_inflight_bytes", 64 << 20, 1 << 30)?;
        if let Some(m) = &self.max_inflight_bytes
            && max_inflight_bytes < 2 * max_faro_body
        {
            return Err(at(
                m.span(),
                "rum.max_inflight_bytes",
                format!(
                    "max_inflight_bytes must hold at least two max_faro_body ({} bytes): a gzip body and its inflated form",
                    2 * max_faro_body
                ),
            ));
        }
        Ok(RumSettings {
            listen,
            allowed_origins,
            api_key,
            max_body: size(&self.max_body, "rum.max_body", 64 * 1024, 1 << 20)?,
            max_faro_body,
            max_inflight_bytes,
            rate: positive(&self.rate, "rum.rate", 50.0)?,
            burst: positive(&self.burst, "rum.burst", 100.0)?.max(1.0),
            per_client_rate: positive(&self.per_client_rate, "rum.per_client_rate", 5.0)?,
            trusted_proxies,
            max_routes,
            routes,
            budgets,
            max_batch: count(&self.max_batch, "rum.max_batch", 64, 1000)?,
            sample_rate: match &self.sample_rate {
                None => 1.0,
                Some(r) if *r.get_ref() > 0.0 && *r.get_ref() <= 1.0 => *r.get_ref(),
                Some(r) => {
                    return Err(at(
                        r.span(),
                        "rum.sample_rate",
                        "between 0 (exclusive) and 1".to_string(),
                    ));
                }
            },
            flush_after,
            page_view_window,
            allow_headers,
            max_pending: count(&self.max_pending, "rum.max_pending", 100_000, 10_000_000)?,
            public_url,
            security: crate::web_security::check(source, self.tls.as_ref(), &Default::default(), "rum")?,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
