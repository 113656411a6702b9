//! The transports under hyper: [`ConnIo`], which keeps a connection counted
//! while any part of it is alive (upgraded connections included), fails its
//! reads and writes once the hammer falls, and lingers after a clean close;
//! and [`Rewind`], which replays the bytes read to tell HTTP/1 from HTTP/2.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::HttpRuntime;
use crate::drain::{DrainSignal, Tracked};

/// A accepted socket as hyper (and TLS) sees it.
///
/// It owns the connection's [`Tracked`] guard, so the connection counts as
/// in flight until the socket is dropped, wherever it went: hyper's
/// connection task, or a handler's task after an HTTP upgrade. Once the
/// hammer falls, reads and writes fail with `ConnectionAborted`, which ends
/// upgraded connections whose handlers ignore the drain signal.
///
/// When the write side was shut down cleanly (hyper closing a connection),
/// dropping it does not close the socket at once: a task reads and discards
/// what the client still sends, for at most `linger`, until the client closes.
/// Closing a socket with unread data makes the kernel answer with a reset,
/// which can destroy a response the client has not read yet; this way the
/// client sees a clean end-of-file instead.
pub(super) struct ConnIo<T: AsyncRead + AsFd + Unpin + Send + 'static, R: HttpRuntime> {
    inner: Option<T>,
    runtime: R,
    tracked: Option<Tracked>,
    hammer_read: DrainSignal,
    hammer_write: DrainSignal,
    write_closed: bool,
    linger: Duration,
    /// Whether the connection may close without lingering once nothing is
    /// queued on it (see [`LingerPolicy`]).
    policy: LingerPolicy,
}

/// Whether a closed connection may skip lingering when nothing is unread and
/// everything sent was acknowledged. Yes for an HTTP/1 connection that never
/// carried a request body: the server closes it after a response that said
/// so, or once it has been idle for the grace, and the client has nothing
/// more to send. Not after a request with a body (the client may still be
/// sending the part the handler left unread: between two segments the
/// unread count is 0), nor for HTTP/2 (after its last GOAWAY the client may
/// still send acknowledgements, or the rest of a refused stream). A close
/// then would be answered with a reset, so the connection lingers until the
/// client closes, at most `linger`.
///
/// It also carries, for the metrics, whether a drain closed the connection
/// while it was idle.
#[derive(Debug, Clone, Default)]
pub(super) struct LingerPolicy(Arc<PolicyFlags>);

#[derive(Debug, Default)]
struct PolicyFlags {
    wait_for_client: AtomicBool,
    closed_idle: AtomicBool,
}

impl LingerPolicy {
    /// Lingers until the client closes, whatever is queued.
    pub(super) fn wait_for_client(&self) {
        self.0.wait_for_client.store(true, Ordering::Relaxed);
    }

    fn may_close_when_settled(&self) -> bool {
        !self.0.wait_for_client.load(Ordering::Relaxed)
    }

    /// A drain closes the connection because it is idle.
    pub(super) fn closed_idle(&self) {
        self.0.closed_idle.store(true, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + AsFd + Unpin + Send + 'static, R: HttpRuntime> ConnIo<T, R> {
    pub(super) fn new(
        inner: T,
        tracked: Tracked,
        linger: Duration,
        policy: LingerPolicy,
        runtime: R,
    ) -> Self {
        ConnIo {
            inner: Some(inner),
            runtime,
            hammer_read: tracked.hammered(),
            hammer_write: tracked.hammered(),
            tracked: Some(tracked),
            write_closed: false,
            linger,
            policy,
        }
    }

    fn parts(&mut self) -> (&mut T, &mut DrainSignal, &mut DrainSignal) {
        let inner = self.inner.as_mut().expect("only taken on drop");
        (inner, &mut self.hammer_read, &mut self.hammer_write)
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection aborted: stop timeout reached",
    )
}

impl<T: AsyncRead + AsFd + Unpin + Send + 'static, R: HttpRuntime> AsyncRead for ConnIo<T, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (inner, hammer, _) = self.get_mut().parts();
        if Pin::new(hammer).poll(cx).is_ready() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + AsFd + Unpin + Send + 'static, R: HttpRuntime> AsyncWrite
    for ConnIo<T, R>
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let (inner, _, hammer) = self.get_mut().parts();
        if Pin::new(hammer).poll(cx).is_ready() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let (inner, _, hammer) = self.get_mut().parts();
        if Pin::new(hammer).poll(cx).is_ready() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (inner, _, hammer) = self.get_mut().parts();
        if Pin::new(hammer).poll(cx).is_ready() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let (inner, _, hammer) = this.parts();
        if Pin::new(hammer).poll(cx).is_ready() {
            return Poll::Ready(Err(aborted()));
        }
        let done = Pin::new(inner).poll_shutdown(cx);
        if matches!(done, Poll::Ready(Ok(()))) {
            this.write_closed = true;
        }
        done
    }
}

impl<T: AsyncRead + AsFd + Unpin + Send + 'static, R: HttpRuntime> Drop for ConnIo<T, R> {
    fn drop(&mut self) {
        if self.policy.0.closed_idle.load(Ordering::Relaxed) {
            if let Some(tracked) = self.tracked.as_mut() {
                tracked.closed_idle();
            }
        }
        if !self.write_closed || self.hammer_read.is_fired() || self.linger.is_zero() {
            return;
        }
        let early = self.policy.may_close_when_settled();
        if early
            && self
                .inner
                .as_ref()
                .is_some_and(|io| crate::sys::socket_settled(io.as_fd()))
        {
            // Nothing to read that would turn the close into a reset, nothing
            // sent that the client has not got: close now.
            return;
        }
        if let Some(inner) = self.inner.take() {
            let tracked = self.tracked.take();
            let hammer = self.hammer_read.clone();
            let deadline = Instant::now() + self.linger;
            let runtime = self.runtime.clone();
            self.runtime
                .spawn(linger(inner, tracked, hammer, runtime, deadline, early));
        }
    }
}

/// How often a lingering connection asks the kernel whether everything it
/// sent has been acknowledged: there is no readiness event for that. The
/// wait doubles from the first to the last value.
const SETTLE_POLL: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(50));

/// Reads and discards until the client closes, nothing is queued any more
/// (see [`crate::sys::socket_settled`]; only if `close_when_settled`), the
/// hammer falls, or `deadline`.
async fn linger<T: AsyncRead + AsFd + Unpin, R: HttpRuntime>(
    mut io: T,
    tracked: Option<Tracked>,
    mut hammer: DrainSignal,
    runtime: R,
    deadline: Instant,
    close_when_settled: bool,
) {
    let mut sink = [0u8; 512];
    let mut timeout = runtime.sleep_until(deadline);
    let mut wait = SETTLE_POLL.0;
    loop {
        let settle = runtime.sleep_until(Instant::now() + wait);
        tokio::select! {
            biased;
            _ = &mut hammer => break,
            _ = &mut timeout => break,
            read = io.read(&mut sink) => if !matches!(read, Ok(n) if n > 0) { break },
            _ = settle => wait = (wait * 2).min(SETTLE_POLL.1),
        }
        if close_when_settled && crate::sys::socket_settled(io.as_fd()) {
            break;
        }
    }
    drop(tracked);
}

/// A stream that first yields `prefix`, the bytes already read from it.
pub(super) struct Rewind<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub(super) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Rewind {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
