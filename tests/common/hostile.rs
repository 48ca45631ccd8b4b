//! Hostile targets for the fault matrix: raw TCP servers that misbehave on purpose
//! (silence, garbage, endless or huge bodies, absurd headers), run on their own runtime
//! so a probe under test cannot slow them down, and only on loopback.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub type Handler = fn(TcpStream, String) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// The runtime hostile servers (and the healthy neighbour's target) live on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A server that stops accepting when dropped; connections it holds end within 20 s.
pub struct Hostile {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `read_request`: read the request head (up to 64 KiB) before calling the handler.
pub fn start(handler: Handler, read_request: bool) -> Hostile {
    let listener = runtime()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = runtime().spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let head = if read_request {
                    read_head(&mut tcp).await
                } else {
                    String::new()
                };
                let _ = tokio::time::timeout(Duration::from_secs(20), handler(tcp, head)).await;
            });
        }
    });
    Hostile { port, task }
}

async fn read_head(tcp: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The request path of a head.
pub fn path(head: &str) -> &str {
    head.split_whitespace().nth(1).unwrap_or("/")
}

/// Percent-decoding for values passed in the path.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Request heads a recorder server saw, by its port.
pub fn recorded(port: u16) -> Vec<String> {
    recorder_log()
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| *p == port)
        .map(|(_, h)| h.clone())
        .collect()
}

fn recorder_log() -> &'static Mutex<Vec<(u16, String)>> {
    static LOG: OnceLock<Mutex<Vec<(u16, String)>>> = OnceLock::new();
    LOG.get_or_init(Mutex::default)
}

async fn write_then_hold(mut tcp: TcpStream, bytes: Vec<u8>) {
    let _ = tcp.write_all(&bytes).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
}

async fn write_then_close(mut tcp: TcpStream, bytes: Vec<u8>) {
    let _ = tcp.write_all(&bytes).await;
    let _ = tcp.shutdown().await;
}

/// Streams a head, then `piece` up to `total` bytes, then holds the connection.
async fn stream(mut tcp: TcpStream, head: &str, piece: Vec<u8>, total: usize) {
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut sent = 0;
    while sent < total {
        if tcp.write_all(&piece).await.is_err() {
            return;
        }
        sent += piece.len();
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

pub fn silent(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let _hold = tcp;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
}

pub fn never_answer(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    silent(tcp, String::new())
}

pub fn close_at_once(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move { drop(tcp) })
}

pub fn hang_mid_body(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(write_then_hold(
        tcp,
        b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789".to_vec(),
    ))
}

pub fn endless_body(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let mut piece = b"4000\r\n".to_vec();
    piece.extend_from_slice(&[b'e'; 0x4000]);
    piece.extend_from_slice(b"\r\n");
    Box::pin(stream(
        tcp,
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        piece,
        usize::MAX,
    ))
}

/// 429 with the Retry-After given (percent-encoded) after `/ra/` in the path.
pub fn retry_after(tcp: TcpStream, head: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let value = unescape(path(&head).trim_start_matches("/ra/"));
    let resp = format!("HTTP/1.1 429 Too Many Requests\r\nretry-after: {value}\r\ncontent-length: 0\r\n\r\n");
    Box::pin(write_then_close(tcp, resp.into_bytes()))
}

pub fn redirect_loop(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(write_then_close(
        tcp,
        b"HTTP/1.1 302 Found\r\nlocation: /loop\r\ncontent-length: 0\r\n\r\n".to_vec(),
    ))
}

/// `/xo/{port}` redirects to the recorder on that port (another origin); `/same/...` to
/// a path on this server, which then answers 200.
pub fn redirector(tcp: TcpStream, head: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
    let p = path(&head).to_string();
    let resp = if let Some(port) = p.strip_prefix("/xo/") {
        format!("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/landing\r\ncontent-length: 0\r\n\r\n")
    } else if p.starts_with("/same/") {
        "HTTP/1.1 302 Found\r\nlocation: /landed\r\ncontent-length: 0\r\n\r\n".to_string()
    } else {
        recorder_log().lock().unwrap().push((port, head.clone()));
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string()
    };
    Box::pin(write_then_close(tcp, resp.into_bytes()))
}

/// Answers 200 and keeps every request head it saw (see [`recorded`]).
pub fn recorder(tcp: TcpStream, head: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
    recorder_log().lock().unwrap().push((port, head));
    Box::pin(write_then_close(
        tcp,
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
    ))
}

pub fn garbage(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(write_then_close(tcp, b"HELLO \x00\xff NOT HTTP\r\n\r\n".to_vec()))
}

pub fn oversize_headers(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let mut resp = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
    resp.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    resp.extend_from_slice(b"\r\n\r\n");
    Box::pin(write_then_hold(tcp, resp))
}

/// Not hostile: replays a stream captured from a real server, named by the request path
/// (`/<file>` under tests/fixtures/streams; `.json` files go out as application/json).
pub fn captured_stream(tcp: TcpStream, head: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let name = path(&head).trim_start_matches('/').to_string();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/streams")
        .join(&name);
    let body = std::fs::read(&file).unwrap_or_default();
    let ct = if name.ends_with(".json") {
        "application/json"
    } else {
        "text/event-stream"
    };
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    Box::pin(write_then_close(tcp, resp))
}

/// Plain HTTP where the client expects a TLS handshake.
pub fn plain_to_tls(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(write_then_close(tcp, b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()))
}

/// One `data:` line of 200 MB with no line break.
pub fn sse_huge_line(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let mut piece = b"data: ".to_vec();
    piece.resize(64 * 1024, b'x');
    Box::pin(stream(tcp, SSE_HEAD, piece, 200 * 1024 * 1024))
}

/// 26 M short `data:` lines and never a blank line: one event that never ends.
pub fn sse_many_lines(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(stream(tcp, SSE_HEAD, b"data: x\n".repeat(8192), 26_000_000 * 8))
}

/// Valid events, as fast as the socket takes them, forever.
pub fn sse_endless(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(stream(tcp, SSE_HEAD, b"data: x\n\n".repeat(8192), usize::MAX))
}

pub fn sse_malformed(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let body = format!("{SSE_HEAD}data: {{\"choices\":[{{\"delta\":{{\"content\":\"x\"\n\n");
    Box::pin(write_then_close(tcp, body.into_bytes()))
}

pub fn sse_stalled(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let body = format!("{SSE_HEAD}data: {{\"choices\":[{{\"delta\":{{\"content\":\"Hi\"}}}}]}}\n\n");
    Box::pin(write_then_hold(tcp, body.into_bytes()))
}

pub fn sse_error_event(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let body = format!("{SSE_HEAD}data: {{\"error\":{{\"message\":\"overloaded\"}}}}\n\n");
    Box::pin(write_then_close(tcp, body.into_bytes()))
}

/// Open client sockets of this process whose peer is `port` (from /proc/net/tcp{,6}):
/// what a probe leaked, if anything, to the target on that port.
pub fn client_sockets_to(port: u16) -> usize {
    let mut ours = std::collections::HashSet::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            if let Ok(link) = std::fs::read_link(e.path()) {
                let l = link.to_string_lossy();
                if let Some(inode) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    ours.insert(inode.to_string());
                }
            }
        }
    }
    let mut n = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let remote_port = f[2].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) && ours.contains(f[9]) {
                n += 1;
            }
        }
    }
    n
}

/// The 101 answer to an upgrade request `head`.
fn ws_upgrade_bytes(head: &str, out: &mut Vec<u8>) {
    let key = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// Completes a WebSocket upgrade by hand, then sends `after` raw (not framed by a library).
async fn ws_upgrade_then(tcp: TcpStream, head: String, after: &[u8]) {
    let mut bytes = Vec::new();
    ws_upgrade_bytes(&head, &mut bytes);
    bytes.extend_from_slice(after);
    write_then_hold(tcp, bytes).await;
}

/// A valid upgrade, then `frame` over and over for 8 s as fast as the socket takes it,
/// never reading what the probe sends back.
async fn ws_flood(mut tcp: TcpStream, head: String, frame: &[u8]) {
    let mut first = Vec::new();
    ws_upgrade_bytes(&head, &mut first);
    if tcp.write_all(&first).await.is_err() {
        return;
    }
    let burst: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 512).collect();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(8);
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout_at(until, tcp.write_all(&burst)).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
}

/// Pings (125-byte payload, unmasked) in a flood: the probe's pongs have nowhere to go.
pub fn ws_ping_flood(tcp: TcpStream, head: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let mut frame = vec![0x89u8, 125];
    frame.extend_from_slice(&[b'p'; 125]);
    Box::pin(async move { ws_flood(tcp, head, &frame).await })
}

/// Engine.IO heartbeats (`2` text frames) in a flood: the replies are never read.
pub fn ws_heartbeat_flood(tcp: TcpStream, head: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(ws_flood(tcp, head, &[0x81, 1, b'2']))
}

/// A valid upgrade, then bytes that are no WebSocket frame.
pub fn ws_garbage(tcp: TcpStream, head: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(ws_upgrade_then(tcp, head, b"\x0f\xff garbage, not a frame \x00\x01"))
}

/// A valid upgrade, then a text frame whose payload is not UTF-8.
pub fn ws_bad_utf8(tcp: TcpStream, head: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(ws_upgrade_then(tcp, head, b"\x81\x02\xff\xfe"))
}

/// The upgrade refused with 403.
pub fn ws_refused(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(write_then_close(
        tcp,
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n".to_vec(),
    ))
}

/// The text a hostile PostgreSQL quotes in its error: the fault matrix's URL password, as a
/// server that logged or guessed it would.
pub const ECHOED_SECRET: &str = "fm-urlpass-93b";

/// What a hostile PostgreSQL does once a client has started up.
#[derive(Clone, Copy, PartialEq)]
enum PgMode {
    /// Answers every query with rows, without end.
    EndlessRows,
    /// Answers the first query with a message header claiming 2 GiB, then streams it.
    HugeMessage,
    /// Says the column has 20,000,000 dimensions.
    HugeDimension,
    /// Asks for the password in clear text (over the unencrypted connection).
    Cleartext,
    /// Refuses the login with a 1 MB error that quotes the password, with line breaks and
    /// terminal escapes in it.
    EchoingError,
    /// Samples fine, then answers the top-k query with one column where two were asked.
    ShortRow,
}

/// PostgreSQL framing: type byte, length (itself included), body.
fn pg_msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn pg_row_description(columns: usize) -> Vec<u8> {
    let mut body = (columns as u16).to_be_bytes().to_vec();
    for i in 0..columns {
        body.extend_from_slice(format!("c{i}\0").as_bytes());
        body.extend_from_slice(&[0u8; 6]); // table oid, column number
        body.extend_from_slice(&25u32.to_be_bytes()); // text
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
    }
    pg_msg(b'T', &body)
}

fn pg_data_row(values: &[&str]) -> Vec<u8> {
    let mut body = (values.len() as u16).to_be_bytes().to_vec();
    for v in values {
        body.extend_from_slice(&(v.len() as u32).to_be_bytes());
        body.extend_from_slice(v.as_bytes());
    }
    pg_msg(b'D', &body)
}

fn pg_done() -> Vec<u8> {
    let mut m = pg_msg(b'C', b"SELECT 1\0");
    m.extend(pg_msg(b'Z', b"I"));
    m
}

/// Reads one frontend message (type, body); None at the end or on a silly length.
async fn pg_read(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    tcp.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
    if !(4..=1 << 20).contains(&len) {
        return None;
    }
    let mut body = vec![0u8; len - 4];
    tcp.read_exact(&mut body).await.ok()?;
    Some((head[0], body))
}

/// Declines TLS, reads the startup message.
async fn pg_startup(tcp: &mut TcpStream) -> Option<()> {
    let mut len = [0u8; 4];
    tcp.read_exact(&mut len).await.ok()?;
    let mut rest = vec![0u8; (u32::from_be_bytes(len) as usize).clamp(4, 1 << 16) - 4];
    tcp.read_exact(&mut rest).await.ok()?;
    if rest == [0x04, 0xd2, 0x16, 0x2f] {
        tcp.write_all(b"N").await.ok()?;
        tcp.read_exact(&mut len).await.ok()?;
        let mut startup = vec![0u8; (u32::from_be_bytes(len) as usize).clamp(4, 1 << 16) - 4];
        tcp.read_exact(&mut startup).await.ok()?;
    }
    Some(())
}

async fn pg_serve(mut tcp: TcpStream, mode: PgMode) {
    let port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
    if pg_startup(&mut tcp).await.is_none() {
        return;
    }
    match mode {
        PgMode::Cleartext => {
            let _ = tcp.write_all(&pg_msg(b'R', &3u32.to_be_bytes())).await;
            // Whatever comes back (a password message, if the client gave in) is recorded.
            if let Some((kind, body)) = pg_read(&mut tcp).await {
                let text = format!("pg {} {}", kind as char, String::from_utf8_lossy(&body));
                recorder_log().lock().unwrap().push((port, text));
            }
            return;
        }
        PgMode::EchoingError => {
            let mut message = format!("password authentication failed: {} is wrong\n", ECHOED_SECRET);
            message.push_str("\x1b[31mFORGED 2026-01-01 ERROR everything is down\r\n");
            message.push_str(&"x".repeat(1_000_000));
            let mut body = b"SFATAL\0C28P01\0M".to_vec();
            body.extend_from_slice(message.as_bytes());
            body.extend_from_slice(b"\0\0");
            let _ = tcp.write_all(&pg_msg(b'E', &body)).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
        _ => {}
    }
    let mut hello = pg_msg(b'R', &0u32.to_be_bytes());
    hello.extend(pg_msg(b'Z', b"I"));
    if tcp.write_all(&hello).await.is_err() {
        return;
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    while let Some((kind, body)) = pg_read(&mut tcp).await {
        if kind != b'Q' {
            continue;
        }
        let sql = String::from_utf8_lossy(&body).into_owned();
        let reply = match mode {
            PgMode::EndlessRows => {
                let mut burst = pg_row_description(2);
                let row = pg_data_row(&["1", "0.5"]);
                let many: Vec<u8> = row.iter().copied().cycle().take(row.len() * 4096).collect();
                if tcp.write_all(&burst).await.is_err() {
                    return;
                }
                burst = many;
                while tokio::time::Instant::now() < until {
                    match tokio::time::timeout_at(until, tcp.write_all(&burst)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                }
                return;
            }
            PgMode::HugeMessage => {
                let mut head = vec![b'D'];
                head.extend_from_slice(&0x7fff_fff0u32.to_be_bytes());
                if tcp.write_all(&head).await.is_err() {
                    return;
                }
                let piece = vec![b'x'; 1 << 16];
                while tokio::time::Instant::now() < until {
                    match tokio::time::timeout_at(until, tcp.write_all(&piece)).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                }
                return;
            }
            PgMode::HugeDimension if sql.contains("vector_dims") => {
                let mut r = pg_row_description(1);
                r.extend(pg_data_row(&["20000000"]));
                r.extend(pg_done());
                r
            }
            PgMode::ShortRow if sql.contains("TABLESAMPLE") || sql.contains("LIMIT 64") => {
                let mut r = pg_row_description(1);
                for _ in 0..32 {
                    r.extend(pg_data_row(&["[1,2,3]"]));
                }
                r.extend(pg_done());
                r
            }
            PgMode::ShortRow if sql.contains("ORDER BY") => {
                let mut r = pg_row_description(1);
                r.extend(pg_data_row(&["7"]));
                r.extend(pg_done());
                r
            }
            _ => {
                let mut r = pg_msg(b'C', b"SET\0");
                r.extend(pg_msg(b'Z', b"T"));
                r
            }
        };
        if tcp.write_all(&reply).await.is_err() {
            return;
        }
    }
}

pub fn pg_endless_rows(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(pg_serve(tcp, PgMode::EndlessRows))
}

pub fn pg_huge_message(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(pg_serve(tcp, PgMode::HugeMessage))
}

pub fn pg_huge_dimension(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(pg_serve(tcp, PgMode::HugeDimension))
}

pub fn pg_cleartext(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(pg_serve(tcp, PgMode::Cleartext))
}

pub fn pg_echoing_error(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(pg_serve(tcp, PgMode::EchoingError))
}

pub fn pg_short_row(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(pg_serve(tcp, PgMode::ShortRow))
}

/// An HTTP server's 400 where PostgreSQL was expected, the connection held open.
pub fn http_400_held(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(write_then_hold(
        tcp,
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n\r\nBad Request".to_vec(),
    ))
}

/// A 200 whose JSON body is ~16 MiB of tiny values (`[0,0,0,...]`): cheap to send, costly
/// to parse into a tree. Streamed, so the server itself holds 64 KiB.
pub fn json_of_tiny_values(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let mut tcp = tcp;
        let open = b"{\"result\":{\"points\":[{\"id\":1,\"score\":0.5,\"payload\":[";
        let close = b"0]}]}}";
        let piece = b"0,".repeat(32 * 1024);
        let pieces = (16 * 1024 * 1024 - 4096) / piece.len();
        let len = open.len() + pieces * piece.len() + close.len();
        let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n");
        if tcp.write_all(head.as_bytes()).await.is_err() || tcp.write_all(open).await.is_err() {
            return;
        }
        for _ in 0..pieces {
            if tcp.write_all(&piece).await.is_err() {
                return;
            }
        }
        let _ = tcp.write_all(close).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
}

/// 200 with a job status that never changes, then close: a poll that never converges.
pub fn json_status(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let body = r#"{"status":"queued"}"#;
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    Box::pin(write_then_close(tcp, resp.into_bytes()))
}

/// 200 with an HTML page where JSON was expected.
pub fn html_page(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let body = "<!doctype html><title>maintenance</title>";
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    Box::pin(write_then_close(tcp, resp.into_bytes()))
}

/// A line that never ends: 200 MB of bytes without a newline.
pub fn endless_line(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(stream(tcp, "", vec![b'x'; 16 * 1024], 200 * 1024 * 1024))
}

/// Short lines forever, none of them what the probe waits for.
pub fn endless_lines(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(stream(tcp, "", b"250-still talking\r\n".repeat(512), usize::MAX))
}

/// A DNS-over-TCP answer announcing 65,535 bytes, then silence.
pub fn dns_long_length_then_silence(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(write_then_hold(tcp, vec![0xff, 0xff, 0x12, 0x34]))
}

/// A DNS-over-TCP frame of 300 bytes that is not a DNS message.
pub fn dns_garbage_answer(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let mut frame = vec![0x01, 0x2c];
    frame.extend(std::iter::repeat_n(0xffu8, 300));
    Box::pin(write_then_hold(tcp, frame))
}

/// Bytes that are no protocol at all, then the connection held open (so the client reads
/// them, rather than a reset, whatever the timing).
pub fn garbage_held(tcp: TcpStream, _: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(write_then_hold(tcp, b"HELLO \x00\xff NOT HTTP\r\n\r\n".to_vec()))
}
