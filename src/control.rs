//! Talking to a running daemon from the command line: `sloprobe health` (what a container
//! HEALTHCHECK runs) and `sloprobe reload` (what the systemd unit's ExecReload runs: it
//! returns once the reload has finished, and fails when the new config was refused).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// One HTTP/1.1 request over loopback-style plain TCP; returns (status, body), the body
/// read up to 64 KiB.
fn request(method: &str, url: &str, headers: &[&str], timeout: Duration) -> Result<(u16, String), String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if u.scheme() != "http" {
        return Err("only http:// URLs".into());
    }
    let host = u.host_str().ok_or("no host")?;
    let port = u.port_or_known_default().unwrap_or(80);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.trim_matches(['[', ']']), port))
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.take(64 * 1024).read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {:?}", text.lines().next().unwrap_or("")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Ok when `url` answers 200.
pub fn health(url: &str) -> Result<(), String> {
    match request("GET", url, &[], Duration::from_secs(3))? {
        (200, _) => Ok(()),
        (status, body) => Err(format!("{status} {body}")),
    }
}

/// Why `reload` did not reload: the exit code and a line.
pub struct ReloadError {
    pub code: u8,
    pub message: String,
}

/// Asks the daemon to reload and waits for the result. The address: `url`, else
/// `SLOPROBE_LISTEN`, else the config's `[server] listen` (read alone, so a config broken
/// elsewhere still finds its daemon), else the default; an unspecified address
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn reload(config: &Path, url: Option<&str>) -> Result<String, ReloadError> {
    let url = match url {
        Some(u) => u.to_string(),
        None => {
            let listen = std::env::var("SLOPROBE_LISTEN")
                .ok()
                .and_then(|v| v.parse::<SocketAddr>().ok())
                .or_else(|| configured_listen(config))
                .unwrap_or_else(|| crate::server::DEFAULT_LISTEN.parse().expect("valid default"));
            format!("http://{}/-/reload?wait=1", reachable(listen))
        }
    };
    let unreachable = |message: String| ReloadError { code: 2, message };
    match request("POST", &url, &["X-Sloprobe-Reload: 1"], Duration::from_secs(130)) {
        Err(e) => Err(unreachable(format!("no daemon answered at {url}: {e}"))),
        Ok((200, body)) => Ok(body),
        Ok((409, body)) => Err(ReloadError { code: 1, message: body }),
        Ok((status, body)) => Err(unreachable(format!("{status} {body}"))),
    }
}

fn configured_listen(config: &Path) -> Option<SocketAddr> {
    let text = crate::config::read_capped(config, crate::config::MAX_CONFIG_FILE).ok()?;
    let doc: toml::Table = toml::from_str(std::str::from_utf8(&text).ok()?).ok()?;
    doc.get("server")?.get("listen")?.as_str()?.parse().ok()
}

fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}
