//! TLS and basic auth for the daemon's listeners, as Prometheus exporters do it
//! (exporter-toolkit's web config): `[server.tls]` and `[server.basic_auth_users]` in TOML,
//! or an exporter-toolkit `web-config.yml` as is (`run --web.config.file`). The RUM
//! collector takes `[rum.tls]`. Certificates are re-read on reload; a connection uses the
//! ones current when it was accepted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{ConfigError, Source, Spanned};

/// `[server.tls]` / `[rum.tls]`: the listener speaks only TLS when set.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsKeys {
    /// Certificate chain (PEM), leaf first.
    pub cert_file: Option<Spanned<String>>,
    /// Its private key (PEM).
    pub key_file: Option<Spanned<String>>,
    /// CAs (PEM) whose client certificates are required (mutual TLS); unset: no client
    /// certificate asked for.
    pub client_ca_file: Option<Spanned<String>>,
}

/// What a listener enforces, built from config or a web config file.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// user → bcrypt hash.
    pub users: BTreeMap<String, String>,
    /// The check of `users`, with its cache; `None` when there are no users.
    pub auth: Option<Arc<BasicAuth>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Security(tls: {}, users: {:?})",
            self.tls.is_some(),
            self.users.keys().collect::<Vec<_>>()
        )
    }
}

impl PartialEq for Security {
    fn eq(&self, other: &Self) -> bool {
        self.tls.is_some() == other.tls.is_some() && self.users == other.users
    }
}

impl Security {
    fn new(tls: Option<Arc<rustls::ServerConfig>>, users: BTreeMap<String, String>) -> Self {
        let auth = (!users.is_empty()).then(|| Arc::new(BasicAuth::new(users.clone())));
        Security { tls, users, auth }
    }

    pub fn is_open(&self) -> bool {
        self.tls.is_none() && self.users.is_empty()
    }
}

/// Files named in config resolve relative to it; a key's errors name file, line and key.
pub fn check(
    source: &Source,
    tls: Option<&TlsKeys>,
    users: &BTreeMap<String, Spanned<String>>,
    at: &str,
) -> Result<Security, ConfigError> {
    let base = source.path.parent().unwrap_or(Path::new("."));
    let tls = match tls {
        None => None,
        Some(keys) => {
            let path = |f: &Spanned<String>| (base.join(f.get_ref()), f.clone());
            let required = |f: &Option<Spanned<String>>, key: &str| {
                f.as_ref()
                    .map(path)
                    .ok_or_else(|| source.error(format!("[{at}.tls] needs `{key}`")))
            };
            let cert = required(&keys.cert_file, "cert_file")?;
            let key = required(&keys.key_file, "key_file")?;
            let ca = keys.client_ca_file.as_ref().map(path);
            let config = server_config(&cert.0, &key.0, ca.as_ref().map(|c| c.0.as_path())).map_err(|(which, e)| {
                let (span, name) = match which {
                    Which::Cert => (cert.1.span(), "cert_file"),
                    Which::Key => (key.1.span(), "key_file"),
                    Which::ClientCa => (ca.as_ref().map_or(cert.1.span(), |c| c.1.span()), "client_ca_file"),
                };
                source.error_at(span, Some(&format!("{at}.tls.{name}")), e)
            })?;
            Some(config)
        }
    };
    let mut checked = BTreeMap::new();
    for (user, hash) in users {
        if bcrypt_cost(hash.get_ref()).is_none() {
            return Err(source.error_at(
                hash.span(),
                Some(&format!("{at}.basic_auth_users.{user}")),
                "not a bcrypt hash ($2a$/$2b$/$2y$…; make one with `htpasswd -nBC 10 USER`)",
            ));
        }
        checked.insert(user.clone(), hash.get_ref().clone());
    }
    Ok(Security::new(tls, checked))
}

enum Which {
    Cert,
    Key,
    ClientCa,
}

fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, (Which, String)> {
    let read = |p: &Path, which: Which| {
        crate::config::read_capped(p, 1024 * 1024).map_err(|e| (which, format!("{}: {e}", p.display())))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert, Which::Cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| (Which::Cert, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err((Which::Cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key, Which::Key)?)
        .map_err(|_| (Which::Key, "no PEM private key in the file".to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| (Which::Cert, e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&read(ca, Which::ClientCa)?) {
                let c = c.map_err(|e| (Which::ClientCa, format!("bad PEM: {e}")))?;
                roots.add(c).map_err(|e| (Which::ClientCa, e.to_string()))?;
            }
            if roots.is_empty() {
                return Err((Which::ClientCa, "no certificate in the file".into()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| (Which::ClientCa, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| (Which::Key, format!("the key does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = hash
        .strip_prefix("$2a$")
        .or_else(|| hash.strip_prefix("$2b$"))
        .or_else(|| hash.strip_prefix("$2y$"))?;
    (hash.len() == 60).then_some(())?;
    rest.get(..2)?.parse().ok()
}

/// exporter-toolkit's web config file, as Prometheus exporters read it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<ToolkitTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    http_server_config: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
struct ToolkitTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// Reads an exporter-toolkit web config file (`--web.config.file`): `tls_server_config`
/// (cert_file, key_file, client_ca_file, client_auth_type) and `basic_auth_users`. Options
/// it has no equivalent for are refused by name, never ignored.
pub fn from_web_config_file(path: &Path) -> Result<Security, String> {
    let text = crate::config::read_capped(path, 1024 * 1024).map_err(|e| format!("{}: {e}", path.display()))?;
    let parsed: WebConfigFile = serde_yaml_ng::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    if parsed.http_server_config.is_some() {
        return Err(format!("{}: http_server_config is not supported", path.display()));
    }
    let tls = match parsed.tls_server_config {
        None => None,
        Some(t) => {
            if let Some(k) = t.other.keys().next() {
                return Err(format!("{}: tls_server_config.{k} is not supported", path.display()));
            }
            let need = |v: Option<String>, key: &str| {
                v.map(|p| base.join(p))
                    .ok_or_else(|| format!("{}: tls_server_config needs {key}", path.display()))
            };
            let cert = need(t.cert_file, "cert_file")?;
            let key = need(t.key_file, "key_file")?;
            let ca = t.client_ca_file.map(|p| base.join(p));
            match (t.client_auth_type.as_deref(), &ca) {
                (None | Some("NoClientCert"), None) | (Some("RequireAndVerifyClientCert"), Some(_)) => {}
                (None, Some(_)) => {
                    return Err(format!(
                        "{}: client_ca_file without client_auth_type: RequireAndVerifyClientCert",
                        path.display()
                    ));
                }
                (Some(other), _) => {
                    return Err(format!(
                        "{}: client_auth_type {other:?}: sloprobe supports NoClientCert and RequireAndVerifyClientCert (with client_ca_file)",
                        path.display()
                    ));
                }
            }
            Some(server_config(&cert, &key, ca.as_deref()).map_err(|(_, e)| format!("{}: {e}", path.display()))?)
        }
    };
    for (user, hash) in &parsed.basic_auth_users {
        if bcrypt_cost(hash).is_none() {
            return Err(format!(
                "{}: basic_auth_users.{user} is not a bcrypt hash",
                path.display()
            ));
        }
    }
    Ok(Security::new(tls, parsed.basic_auth_users))
}

/// Checks `Authorization: Basic …` against the users. A bcrypt check costs tens of ms by
/// design, so a pair that passed is remembered (by a SHA-256 of user and password, never
/// the password itself), as exporter-toolkit does; at most 64 are kept.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    passed: Mutex<Vec<[u8; 32]>>,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        BasicAuth {
            users,
            passed: Mutex::new(Vec::new()),
        }
    }

    pub fn allows(&self, header: Option<&str>) -> bool {
        use base64::Engine as _;
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Some((user, password)) = std::str::from_utf8(&decoded).ok().and_then(|s| s.split_once(':')) else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let fingerprint = fingerprint(user, password, hash);
        if self.passed.lock().expect("auth cache").iter().any(|f| {
            use subtle::ConstantTimeEq as _;
            bool::from(f.ct_eq(&fingerprint))
        }) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            let mut passed = self.passed.lock().expect("auth cache");
            if passed.len() >= 64 {
                passed.remove(0);
            }
            passed.push(fingerprint);
        }
        ok
    }
}

fn fingerprint(user: &str, password: &str, hash: &str) -> [u8; 32] {
    use ring::digest;
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [user, password, hash] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The security a listener applies now; a reload swaps it.
pub type Shared = Arc<RwLock<Arc<Security>>>;

pub fn shared(s: Security) -> Shared {
    Arc::new(RwLock::new(Arc::new(s)))
}
