//! A guard on the bytes a PostgreSQL server sends, below tokio-postgres. tokio-postgres
//! reserves room for a message as soon as it reads the message's length, so a server that
//! announces 2 GiB gets 2 GiB; and it answers a cleartext-password request on whatever
//! stream it has. The guard reads only the framing (a type byte and a length per message)
//! and fails the stream before either can happen:
//! - a message type the backend protocol does not have, or a length over [`MAX_MESSAGE`]
//!   (an HTTP server's "HTTP/1.1 400" reads as a 1.4 GB message): not PostgreSQL;
//! - more than [`MAX_STARTUP`] bytes before the first ReadyForQuery (endless parameters);
//! - a request for the password in clear text on an unencrypted connection (a server, or
//!   someone in the path who answered the SSLRequest with "no", would read it).
//!
//! Writes pass through untouched.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::outcome::ErrorType;

/// The largest backend message read: a row of a 16,000-dimension vector as text is ~250 KB.
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// Bytes a server may send before it is ready for the first query (a real one sends ~400).
pub const MAX_STARTUP: usize = 64 * 1024;

/// Backend message types (PostgreSQL protocol 3.0, "Message Formats").
const BACKEND_TYPES: &[u8] = b"RKSZTDCEINnst123AcdGHWVv";

/// Why the guard failed the stream. The connection task that reads the stream ends with
/// it, so the queries only see "closed": the verdict is kept here for them to report.
pub type Verdict = Arc<Mutex<Option<(ErrorType, String)>>>;

struct Refused {
    kind: ErrorType,
    text: String,
}

#[derive(Default)]
struct Framing {
    head: [u8; 5],
    head_len: usize,
    body_left: usize,
    /// The first 4 body bytes of an authentication request, as they arrive.
    auth: Option<([u8; 4], usize)>,
    ready: bool,
    startup_bytes: usize,
}

impl Framing {
    fn scan(&mut self, mut bytes: &[u8], encrypted: bool) -> Result<(), Refused> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                if let Some((code, have)) = &mut self.auth {
                    let take = (4 - *have).min(n);
                    code[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    if *have == 4 {
                        let code = u32::from_be_bytes(*code);
                        self.auth = None;
                        // 3: AuthenticationCleartextPassword.
                        if code == 3 && !encrypted {
                            return Err(Refused {
                                kind: ErrorType::AuthFailed,
                                text: "the server asked for the password in clear text over an unencrypted connection; refused (use TLS, or scram-sha-256)".into(),
                            });
                        }
                    }
                }
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let take = (5 - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&bytes[..take]);
            self.head_len += take;
            bytes = &bytes[take..];
            if self.head_len < 5 {
                break;
            }
            self.head_len = 0;
            let kind = self.head[0];
            let len = u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]) as usize;
            if !BACKEND_TYPES.contains(&kind) || len < 4 {
                return Err(not_postgres(format!("a message of type {kind:#04x}")));
            }
            if len - 4 > MAX_MESSAGE {
                return Err(not_postgres(format!(
                    "a message of {len} bytes (the cap is {MAX_MESSAGE})"
                )));
            }
            self.body_left = len - 4;
            // An error ends the startup (the server closes): it is read, not counted.
            if !self.ready && kind != b'E' {
                self.startup_bytes += len + 1;
                if self.startup_bytes > MAX_STARTUP {
                    return Err(not_postgres(format!(
                        "over {MAX_STARTUP} bytes before the server was ready"
                    )));
                }
            }
            match kind {
                b'Z' => self.ready = true,
                b'R' if self.body_left >= 4 => self.auth = Some(([0; 4], 0)),
                _ => {}
            }
        }
        Ok(())
    }
}

fn not_postgres(what: String) -> Refused {
    Refused {
        kind: ErrorType::ProtocolError,
        text: format!("the server sent {what}: not PostgreSQL as expected"),
    }
}

pub struct Guarded<S> {
    inner: S,
    framing: Framing,
    encrypted: bool,
    verdict: Verdict,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, encrypted: bool, verdict: Verdict) -> Self {
        Guarded {
            inner,
            framing: Framing::default(),
            encrypted,
            verdict,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled
            && let Err(refused) = this.framing.scan(&buf.filled()[before..], this.encrypted)
        {
            buf.set_filled(before);
            let text = refused.text.clone();
            *this.verdict.lock().expect("verdict") = Some((refused.kind, refused.text));
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, text)));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// The same bytes, fed whole and one at a time.
    fn verdicts(bytes: &[u8], encrypted: bool) -> [Option<ErrorType>; 2] {
        let whole = Framing::default().scan(bytes, encrypted).err().map(|r| r.kind);
        let mut f = Framing::default();
        let split = bytes
            .iter()
            .find_map(|b| f.scan(&[*b], encrypted).err())
            .map(|r| r.kind);
        [whole, split]
    }

    #[test]
    fn a_normal_startup_and_rows_pass() {
        let mut s = msg(b'R', &10u32.to_be_bytes()); // SASL
        s.extend(msg(b'R', &0u32.to_be_bytes()));
        s.extend(msg(b'S', b"server_version\x0016\0"));
        s.extend(msg(b'K', &[0; 8]));
        s.extend(msg(b'Z', b"I"));
        s.extend(msg(b'T', &[0, 0]));
        s.extend(msg(b'D', &vec![b'x'; MAX_MESSAGE]));
        s.extend(msg(b'C', b"SELECT 1\0"));
        assert_eq!(verdicts(&s, false), [None, None]);
    }

    #[test]
    fn cleartext_is_refused_only_without_tls() {
        let s = msg(b'R', &3u32.to_be_bytes());
        assert_eq!(verdicts(&s, false), [Some(ErrorType::AuthFailed); 2]);
        assert_eq!(verdicts(&s, true), [None, None]);
        // MD5 (5) is salted: allowed, as libpq allows it.
        assert_eq!(verdicts(&msg(b'R', &5u32.to_be_bytes()), false), [None, None]);
    }

    #[test]
    fn huge_messages_foreign_types_and_endless_startups_are_not_postgres() {
        let mut huge = vec![b'D'];
        huge.extend_from_slice(&0x7fff_fff0u32.to_be_bytes());
        assert_eq!(verdicts(&huge, false), [Some(ErrorType::ProtocolError); 2]);
        assert_eq!(
            verdicts(b"HTTP/1.1 400 Bad Request\r\n", false),
            [Some(ErrorType::ProtocolError); 2]
        );
        let params: Vec<u8> = (0..10_000)
            .flat_map(|i| msg(b'S', format!("p{i}\0v\0").as_bytes()))
            .collect();
        assert_eq!(verdicts(&params, false), [Some(ErrorType::ProtocolError); 2]);
        // A long login error is read whole (it ends the startup; its text is cut later).
        assert_eq!(verdicts(&msg(b'E', &vec![b'x'; 900_000]), false), [None, None]);
    }
}
