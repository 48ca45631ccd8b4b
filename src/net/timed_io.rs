//! A stream wrapper that notes when bytes first come back and when the request was
//! last written, so send/wait/transfer are read off the socket rather than guessed.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Default, Clone, Copy)]
pub struct IoMarks {
    /// First byte read since the last `reset`.
    pub first_read: Option<Instant>,
    /// Last write that happened before `first_read` (the request fully handed to the kernel).
    pub last_write_before_read: Option<Instant>,
    /// First write since the last `reset` (HTTP/2: the request's HEADERS frame).
    pub first_write: Option<Instant>,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// Shared between the probe and the connection task that owns the stream.
#[derive(Debug, Default, Clone)]
pub struct MarksHandle(Arc<Mutex<IoMarks>>);

impl MarksHandle {
    pub fn get(&self) -> IoMarks {
        *self.0.lock().expect("marks lock")
    }

    /// Starts a new request on a (possibly reused) connection.
    pub fn reset(&self) {
        *self.0.lock().expect("marks lock") = IoMarks::default();
    }
}

pub struct TimedIo<S> {
    inner: S,
    marks: MarksHandle,
}

impl<S> TimedIo<S> {
    pub fn new(inner: S) -> (Self, MarksHandle) {
        let marks = MarksHandle::default();
        (
            TimedIo {
                inner,
                marks: marks.clone(),
            },
            marks,
        )
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn into_inner(self) -> S {
        self.inner
    }

    /// `started` is taken before the write call: a thread preempted after the syscall
    /// must not make the request look written later than it was (that would shorten
    /// `wait` below the server's real think time).
    fn note_write(&self, n: usize, started: Instant) {
        if n == 0 {
            return;
        }
        let mut m = self.marks.0.lock().expect("marks lock");
        let now = started;
        m.bytes_written += n as u64;
        m.first_write.get_or_insert(now);
        if m.first_read.is_none() {
            m.last_write_before_read = Some(now);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            let mut m = self.marks.0.lock().expect("marks lock");
            m.bytes_read += n as u64;
            if m.first_read.is_none() {
                m.first_read = Some(Instant::now());
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let started = Instant::now();
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.note_write(n, started);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let started = Instant::now();
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            self.note_write(n, started);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // tokio-rustls already writes records to the socket inside poll_write, so a
        // flush carries no new bytes worth a timestamp (and hyper flushes spuriously).
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
