//! Config pieces shared by every probe that speaks HTTP (`http`, `assistant`): the
//! `[probe.request]` and `[probe.tls]` tables, the HTTP version, and turning them into a
//! ready target with secrets resolved.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Method;
use http::header::{self, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

use super::kind::{BuildContext, ProbeConfig};
use crate::config::{ConfigError, Secret, SecretText, Size, Spanned};
use crate::net::http::Version;

/// `[probe.request]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// HTTP method; GET without a body, POST with one.
    pub method: Option<Spanned<String>>,
    /// Header name → value; a value written "env:NAME" or "file:PATH" is a secret.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<SecretText>>,
    /// Literal request body.
    pub body: Option<Spanned<String>>,
    /// Request body read from a regular file (relative to the config file, at most 64 MiB).
    pub body_file: Option<Spanned<String>>,
    /// A generated body of this many bytes, streamed from one shared buffer (upload checks).
    pub body_size: Option<Spanned<Size>>,
    /// "env:NAME" or "file:PATH"; sent as `Authorization: Bearer ...`.
    pub bearer: Option<Spanned<SecretText>>,
}

/// `[probe.tls]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM file with extra trusted CA certificates (added to the Mozilla roots).
    pub ca_file: Option<Spanned<String>>,
    /// Accept any certificate chain (still checks handshake signatures). Only for targets you control.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// SNI and verification name when it differs from the URL host.
    pub server_name: Option<Spanned<String>>,
}

impl Tls {
    /// The client config these keys ask for (shared through `ctx`), offering `alpn`; a bad
    /// CA file is reported at `<at>.ca_file`.
    pub fn client(
        &self,
        cfg: &ProbeConfig,
        ctx: &BuildContext,
        alpn: &[&[u8]],
        at: &str,
    ) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
        let ca = self.ca_file.as_ref();
        ctx.tls_config(
            ca.map(|c| cfg.path(c.get_ref())).as_deref(),
            self.insecure_skip_verify,
            alpn,
        )
        .map_err(|e| match ca {
            Some(c) => cfg.error_at(c, &format!("{at}.ca_file"), e),
            None => cfg.source.error(e),
        })
    }

    pub fn server_name(&self) -> Option<String> {
        self.server_name.as_ref().map(|s| s.get_ref().clone())
    }
}

/// `http_version`.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum HttpVersion {
    /// Offer ALPN h2 and http/1.1.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// HTTP/1.1 only.
    #[serde(rename = "1.1", alias = "1")]
    Http1,
    /// HTTP/2 only (prior-knowledge h2c on http://).
    #[serde(rename = "2")]
    Http2,
}

impl From<HttpVersion> for Version {
    fn from(v: HttpVersion) -> Version {
        match v {
            HttpVersion::Auto => Version::Auto,
            HttpVersion::Http1 => Version::Http1,
            HttpVersion::Http2 => Version::Http2,
        }
    }
}

/// The keys an HTTP-speaking kind hands over to build its target.
pub struct TargetKeys<'a> {
    pub kind: &'static str,
    pub url: &'a Spanned<String>,
    pub http_version: HttpVersion,
    pub request: &'a Request,
    pub status: Option<&'a Spanned<Vec<u16>>>,
    pub header_present: &'a [Spanned<String>],
    pub tls: &'a Tls,
}

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

pub fn target(cfg: &ProbeConfig, ctx: &BuildContext, keys: &TargetKeys<'_>) -> Result<HttpTarget, ConfigError> {
    let url_s = keys.url;
    let url = url::Url::parse(url_s.get_ref()).map_err(|e| {
        cfg.error_at(
            url_s,
            "probe.url",
            format!("invalid URL {:?}: {e}", crate::redact::url(url_s.get_ref())),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(cfg.error_at(
            url_s,
            "probe.url",
            format!("{} probes need an http:// or https:// URL with a host", keys.kind),
        ));
    }

    let mut headers = Vec::new();
    for (name, value) in &keys.request.headers {
        let key = format!("probe.request.headers.{name}");
        let hname = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| cfg.error_at(value, &key, format!("invalid header name {name:?}")))?;
        let (text, sensitive) = if Secret::is_reference(value.get_ref().as_str()) {
            (cfg.secret(value, &key)?.expose().to_string(), true)
        } else {
            (value.get_ref().0.clone(), false)
        };
        let mut hvalue = HeaderValue::from_str(&text)
            .map_err(|_| cfg.error_at(value, &key, "header value has invalid characters"))?;
        hvalue.set_sensitive(sensitive);
        headers.push((hname, hvalue));
    }
    if let Some(b) = &keys.request.bearer {
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

    if let Some(st) = keys.status {
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
    for h in keys.header_present {
        header_present.push(
            HeaderName::from_bytes(h.get_ref().as_bytes())
                .map_err(|_| cfg.error_at(h, "probe.expect.header_present", "invalid header name"))?,
        );
    }

    let version = Version::from(keys.http_version);
    let tls_keys = keys.tls;
    let tls = tls_keys.client(cfg, ctx, version.alpn(), "probe.tls")?;

    Ok(HttpTarget {
        url,
        headers,
        status: keys.status.map(|s| s.get_ref().clone()),
        header_present,
        tls,
        server_name: tls_keys.server_name(),
        version,
    })
}

/// `[probe.request] method`; GET without a body, POST with one.
pub fn method(cfg: &ProbeConfig, request: &Request, has_body: bool) -> Result<Method, ConfigError> {
    match &request.method {
        Some(m) => Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes())
            .map_err(|_| cfg.error_at(m, "probe.request.method", format!("invalid method {:?}", m.get_ref()))),
        None if has_body => Ok(Method::POST),
        None => Ok(Method::GET),
    }
}

/// `check` lines for an HTTP target. Header values are shown only as "secret <ref>" or
/// "literal": a literal can still be a credential someone pasted in.
pub fn plan(url: &Spanned<String>, request: &Request) -> Vec<String> {
    let mut lines = vec![format!("url: {}", crate::redact::url(url.get_ref()))];
    if let Some(m) = &request.method {
        lines.push(format!("method: {}", m.get_ref()));
    }
    for (name, value) in &request.headers {
        let shown = if Secret::is_reference(value.get_ref().as_str()) {
            format!("secret {} <redacted>", value.get_ref().as_str())
        } else {
            "literal <not shown>".to_string()
        };
        lines.push(format!("header {name}: {shown}"));
    }
    if let Some(b) = &request.bearer {
        lines.push(format!("bearer: secret {} <redacted>", b.get_ref().as_str()));
    }
    if let Some(n) = &request.body_size {
        lines.push(format!("body: {} generated bytes", n.get_ref().0));
    }
    lines
}
