//! TLS client settings (roots, extra CA, opt-in skip-verify, ALPN) and the timed
//! handshake's error classification and certificate expiry.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::outcome::{ErrorType, ProbeError};

/// Builds a client config. `alpn` lists protocols in preference order (`h2`, `http/1.1`).
pub fn client_config(
    ca_file: Option<&Path>,
    insecure_skip_verify: bool,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_file {
            let pem = crate::config::read_capped(path, 4 * 1024 * 1024).map_err(|e| format!("CA file: {e}"))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("bad PEM in CA file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("CA file {} holds no certificates", path.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Resumption would make later handshakes cheaper than a new user's first one.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

pub fn server_name(host: &str) -> Result<ServerName<'static>, ProbeError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        ProbeError::new(
            ErrorType::TlsHandshake,
            format!("invalid TLS server name {host:?}: {e}"),
        )
    })
}

/// Maps a failed handshake to the error enum; expired certificates get their own type.
pub fn classify_handshake_error(e: &io::Error) -> ProbeError {
    let rustls_err = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(rustls::Error::InvalidCertificate(cert_err)) => {
            let kind = match cert_err {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => ErrorType::TlsCertExpired,
                _ => ErrorType::TlsCertInvalid,
            };
            ProbeError::new(kind, format!("TLS certificate rejected: {}", describe(cert_err)))
        }
        Some(other) => ProbeError::new(ErrorType::TlsHandshake, format!("TLS handshake failed: {other}")),
        None if e.kind() == io::ErrorKind::UnexpectedEof => ProbeError::new(
            ErrorType::TlsHandshake,
            "TLS handshake failed: peer closed the connection",
        ),
        None => ProbeError::new(ErrorType::TlsHandshake, format!("TLS handshake failed: {e}")),
    }
}

/// A certificate problem in words a reader acts on (rustls prints several as Debug).
fn describe(e: &CertificateError) -> String {
    match e {
        CertificateError::ExpiredContext { time, not_after } => format!(
            "certificate expired {}s ago (notAfter {})",
            time.as_secs().saturating_sub(not_after.as_secs()),
            fmt_unix(not_after.as_secs())
        ),
        CertificateError::Expired => "certificate has expired".into(),
        CertificateError::NotValidYet => "certificate is not valid yet (check the clocks)".into(),
        CertificateError::UnknownIssuer => {
            "certificate is not signed by a trusted CA (self-signed, or a private CA missing from tls.ca_file)".into()
        }
        CertificateError::BadSignature => "certificate signature does not verify".into(),
        CertificateError::BadEncoding => "certificate is not valid DER".into(),
        CertificateError::Revoked => "certificate has been revoked".into(),
        CertificateError::NotValidForName => "certificate is not valid for this host name".into(),
        CertificateError::InvalidPurpose => "certificate is not meant for TLS servers".into(),
        CertificateError::Other(other) => {
            let inner = other.to_string();
            match inner.as_str() {
                "CaUsedAsEndEntity" => "the server presented a CA certificate as its own certificate".into(),
                "EndEntityUsedAsCa" => "a leaf certificate was used as an issuing CA".into(),
                _ => format!("certificate rejected ({inner})"),
            }
        }
        // The remaining variants carry context rustls already prints in words.
        other => other.to_string(),
    }
}

/// Earliest notAfter in the presented chain, in Unix seconds.
pub fn earliest_expiry(chain: &[CertificateDer<'_>]) -> Option<i64> {
    chain
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()
}

fn fmt_unix(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| secs.to_string())
}

/// `insecure_skip_verify`: accepts any chain but still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
