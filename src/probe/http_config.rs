//! Config keys shared by every probe that speaks HTTP (`http`, `assistant`): the URL,
//! request headers and secrets, expected status and headers, TLS and HTTP version.

use std::sync::Arc;

use http::Method;
use http::header::{self, HeaderName, HeaderValue};

use super::BuildContext;
use crate::config::{ConfigError, ProbeConfig, Secret};
use crate::net::http::Version;

pub struct HttpTarget {
    pub url: url::Url,
    /// Request headers, secrets resolved and marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub status: Option<Vec<u16>>,
    pub header_present: Vec<HeaderName>,
    pub tls: Arc<rustls::ClientConfig>,
    pub server_name: Option<String>,
    pub version: Version,
}

pub fn target(cfg: &ProbeConfig, ctx: &BuildContext, kind: &str) -> Result<HttpTarget, ConfigError> {
    let raw = &cfg.raw;
    let Some(url_s) = &raw.url else {
        return Err(cfg.error_at(
            &raw.name,
            "probe.url",
            format!("{kind} probe {:?} needs `url`", cfg.name),
        ));
    };
    let url = url::Url::parse(url_s.get_ref())
        .map_err(|e| cfg.error_at(url_s, "probe.url", format!("invalid URL {:?}: {e}", url_s.get_ref())))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(cfg.error_at(
            url_s,
            "probe.url",
            format!("{kind} probes need an http:// or https:// URL with a host"),
        ));
    }

    let req = &raw.request;
    let mut headers = Vec::new();
    for (name, value) in &req.headers {
        let key = format!("probe.request.headers.{name}");
        let hname = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| cfg.error_at(value, &key, format!("invalid header name {name:?}")))?;
        let (text, sensitive) = if Secret::is_reference(value.get_ref()) {
            (cfg.secret(value, &key)?.expose().to_string(), true)
        } else {
            (value.get_ref().clone(), false)
        };
        let mut hvalue = HeaderValue::from_str(&text)
            .map_err(|_| cfg.error_at(value, &key, "header value has invalid characters"))?;
        hvalue.set_sensitive(sensitive);
        headers.push((hname, hvalue));
    }
    if let Some(b) = &req.bearer {
        let secret = cfg.secret(b, "probe.request.bearer")?;
        let mut v = HeaderValue::from_str(&format!("Bearer {}", secret.expose())).map_err(|_| {
            cfg.error_at(
                b,
                "probe.request.bearer",
                "token has characters not allowed in a header",
            )
        })?;
        v.set_sensitive(true);
        headers.push((header::AUTHORIZATION, v));
    }

    let ex = &raw.expect;
    if let Some(st) = &ex.status {
        if st.get_ref().is_empty() {
            return Err(cfg.error_at(
                st,
                "probe.expect.status",
                "status is empty, so every run would fail; list the codes that count as up, e.g. [200], or drop the key for any 2xx",
            ));
        }
        if let Some(bad) = st.get_ref().iter().find(|s| !(100..=599).contains(*s)) {
            return Err(cfg.error_at(st, "probe.expect.status", format!("{bad} is not an HTTP status code")));
        }
    }
    let mut header_present = Vec::new();
    for h in &ex.header_present {
        header_present.push(
            HeaderName::from_bytes(h.get_ref().as_bytes())
                .map_err(|_| cfg.error_at(h, "probe.expect.header_present", "invalid header name"))?,
        );
    }

    let version = match raw.http_version.as_ref().map(|v| v.get_ref().as_str()) {
        None | Some("auto") => Version::Auto,
        Some("1.1") | Some("1") => Version::Http1,
        Some("2") => Version::Http2,
        Some(other) => {
            return Err(cfg.error_at(
                raw.http_version.as_ref().expect("matched Some"),
                "probe.http_version",
                format!("http_version {other:?}: use \"auto\", \"1.1\" or \"2\""),
            ));
        }
    };
    let ca_file = raw.tls.ca_file.as_ref().map(|f| (cfg.path(f.get_ref()), f));
    let tls = ctx
        .tls_config(
            ca_file.as_ref().map(|(p, _)| p.as_path()),
            raw.tls.insecure_skip_verify,
            version.alpn(),
        )
        .map_err(|e| match &ca_file {
            Some((_, span)) => cfg.error_at(*span, "probe.tls.ca_file", e),
            None => cfg.source.error(e),
        })?;

    Ok(HttpTarget {
        url,
        headers,
        status: ex.status.as_ref().map(|s| s.get_ref().clone()),
        header_present,
        tls,
        server_name: raw.tls.server_name.as_ref().map(|s| s.get_ref().clone()),
        version,
    })
}

/// `[probe.request] method`; GET without a body, POST with one.
pub fn method(cfg: &ProbeConfig, has_body: bool) -> Result<Method, ConfigError> {
    match &cfg.raw.request.method {
        Some(m) => Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes())
            .map_err(|_| cfg.error_at(m, "probe.request.method", format!("invalid method {:?}", m.get_ref()))),
        None if has_body => Ok(Method::POST),
        None => Ok(Method::GET),
    }
}
