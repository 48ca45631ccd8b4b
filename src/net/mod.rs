//! The one timed-connection path every network probe uses: DNS → TCP → TLS, each
//! phase measured on the monotonic clock and each failure classified.

pub mod dns;
pub mod http;
pub mod timed_io;
pub mod tls;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::outcome::{ErrorType, ProbeError, Recorder};
pub use dns::Resolver;
pub use timed_io::{IoMarks, MarksHandle, TimedIo};

/// Phase names used in outcomes and as the `phase` attribute.
pub const PHASE_DNS: &str = "dns";
pub const PHASE_CONNECT: &str = "connect";
pub const PHASE_TLS: &str = "tls";

/// Where to connect and how.
pub struct Endpoint<'a> {
    pub host: &'a str,
    pub port: u16,
    /// `Some` for TLS; the name to verify defaults to `host`.
    pub tls: Option<&'a Arc<ClientConfig>>,
    pub server_name: Option<&'a str>,
}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub struct Connected {
    pub io: TimedIo<Stream>,
    pub marks: MarksHandle,
    pub peer: SocketAddr,
    /// Negotiated ALPN protocol, e.g. `h2`.
    pub alpn: Option<Vec<u8>>,
}

/// The addresses of `host` (a name, an IP, or `[v6]`), the lookup timed as `dns` (added
/// to, so redirect hops and retries sum; 0 for an address).
pub async fn resolve(resolver: &dns::Resolver, rec: &mut Recorder, host: &str) -> Result<Vec<IpAddr>, ProbeError> {
    rec.enter(PHASE_DNS);
    let t = Instant::now();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let addrs = dns::resolve(resolver, bare).await;
            rec.add(PHASE_DNS, t.elapsed().as_secs_f64());
            addrs?
        }
    };
    if rec.get(PHASE_DNS).is_none() {
        rec.add(PHASE_DNS, 0.0);
    }
    Ok(addrs)
}

/// Connects with every phase timed into `rec` (`dns`, `connect`, `tls` are added to,
/// so redirect hops sum) and the earliest certificate expiry kept as `cert_expiry`.
pub async fn connect(resolver: &dns::Resolver, rec: &mut Recorder, ep: &Endpoint<'_>) -> Result<Connected, ProbeError> {
    let addrs = resolve(resolver, rec, ep.host).await?;

    rec.enter(PHASE_CONNECT);
    let t = Instant::now();
    let mut last_err: Option<io::Error> = None;
    let mut tcp = None;
    for ip in &addrs {
        let addr = SocketAddr::new(*ip, ep.port);
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some((s, addr));
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    rec.add(PHASE_CONNECT, t.elapsed().as_secs_f64());
    let (tcp, peer) = match tcp {
        Some(x) => x,
        None => {
            let e = last_err.unwrap_or_else(|| io::Error::other("no address to connect to"));
            let kind = match e.kind() {
                io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                io::ErrorKind::TimedOut => ErrorType::ConnectTimeout,
                _ => ErrorType::ConnectError,
            };
            return Err(ProbeError::new(
                kind,
                format!("connecting to {}:{}: {e}", ep.host, ep.port),
            ));
        }
    };
    // Requests are written whole; Nagle would only add delay to the send phase.
    let _ = tcp.set_nodelay(true);
    rec.detail("peer", peer.to_string());

    let Some(tls_config) = ep.tls else {
        rec.add(PHASE_TLS, 0.0);
        let (io, marks) = TimedIo::new(Stream::Plain(tcp));
        return Ok(Connected {
            io,
            marks,
            peer,
            alpn: None,
        });
    };

    let (stream, alpn) = start_tls(rec, tcp, tls_config, ep.server_name.unwrap_or(ep.host)).await?;
    let (io, marks) = TimedIo::new(stream);
    Ok(Connected { io, marks, peer, alpn })
}

/// TLS over a connected TCP stream, timed as `tls` (also for protocols that negotiate TLS
/// in-band first, such as PostgreSQL's SSLRequest). Keeps the certificate expiry.
pub async fn start_tls(
    rec: &mut Recorder,
    tcp: TcpStream,
    config: &Arc<ClientConfig>,
    server_name: &str,
) -> Result<(Stream, Option<Vec<u8>>), ProbeError> {
    rec.enter(PHASE_TLS);
    let t = Instant::now();
    let name = tls::server_name(server_name)?;
    let result = TlsConnector::from(config.clone()).connect(name, tcp).await;
    rec.add(PHASE_TLS, t.elapsed().as_secs_f64());
    let stream = result.map_err(|e| tls::classify_handshake_error(&e))?;
    let (_, session) = stream.get_ref();
    if let Some(expiry) = session.peer_certificates().and_then(tls::earliest_expiry) {
        let expiry = expiry as f64;
        let earliest = rec.get("cert_expiry").map_or(expiry, |prev| prev.min(expiry));
        rec.set("cert_expiry", earliest);
    }
    if let Some(v) = session.protocol_version() {
        rec.detail("tls_version", format!("{v:?}"));
    }
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    Ok((Stream::Tls(Box::new(stream)), alpn))
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
