//! What smol and async-std share: both run on async-io's reactor, so their
//! timers, signals and `Async<T>` listeners are the same code.
//!
//! `async_io::Async<std::net::TcpListener>`, `Async<UnixListener>` and
//! `Async<UdpSocket>` implement [`InheritedListener`] here (smol re-exports
//! `Async` as `smol::Async`).

use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;

use async_io::Async;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};

use crate::error::{Error, Result};
use crate::listener::InheritedListener;
use crate::runtime::Signal;
use crate::socket::SocketKind;

/// An async-io timer that resolves at `deadline`.
pub(crate) fn sleep_until(deadline: Instant) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        async_io::Timer::at(deadline).await;
    })
}

/// The signal stream of [`Runtime::signals`](crate::Runtime::signals), from
/// async-signal. The handlers are installed before this returns.
pub(crate) fn signals(signals: &[Signal]) -> Result<BoxStream<'static, Signal>> {
    let wanted: Vec<async_signal::Signal> = signals.iter().map(|&s| to_async_signal(s)).collect();
    let names = signals
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let stream = async_signal::Signals::new(wanted)
        .map_err(|e| Error::io(format!("cannot install handlers for {names}"), e))?;
    Ok(stream
        .filter_map(|received| async move {
            match received {
                Ok(signal) => from_async_signal(signal),
                Err(e) => {
                    tracing::warn!("reading signals failed: {e}");
                    None
                }
            }
        })
        .boxed())
}

fn to_async_signal(signal: Signal) -> async_signal::Signal {
    use async_signal::Signal as A;
    match signal {
        Signal::Hup => A::Hup,
        Signal::Int => A::Int,
        Signal::Quit => A::Quit,
        Signal::Term => A::Term,
        Signal::Usr1 => A::Usr1,
        Signal::Usr2 => A::Usr2,
    }
}

fn from_async_signal(signal: async_signal::Signal) -> Option<Signal> {
    use async_signal::Signal as A;
    Some(match signal {
        A::Hup => Signal::Hup,
        A::Int => Signal::Int,
        A::Quit => Signal::Quit,
        A::Term => Signal::Term,
        A::Usr1 => Signal::Usr1,
        A::Usr2 => Signal::Usr2,
        _ => return None,
    })
}

/// Registers with async-io's reactor (no runtime context needed).
impl InheritedListener for Async<std::net::TcpListener> {
    const KIND: SocketKind = SocketKind::Tcp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Async::new(std::net::TcpListener::from(fd))
    }
}

/// Registers with async-io's reactor (no runtime context needed).
impl InheritedListener for Async<std::os::unix::net::UnixListener> {
    const KIND: SocketKind = SocketKind::Unix;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Async::new(std::os::unix::net::UnixListener::from(fd))
    }
}

/// Registers with async-io's reactor (no runtime context needed).
impl InheritedListener for Async<std::net::UdpSocket> {
    const KIND: SocketKind = SocketKind::Udp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Async::new(std::net::UdpSocket::from(fd))
    }
}

#[cfg(feature = "hyper")]
pub use http::{AsyncIoStream, AsyncIoTimer};

/// The hyper glue both runtimes share: async-io listeners and timers.
#[cfg(feature = "hyper")]
mod http {
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use async_io::Async;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

    use crate::hyper::{Listener, PeerAddr};

    /// Accepts on async-io's reactor; streams are seen through tokio's I/O
    /// traits, which hyper's glue and TLS use.
    impl Listener for Async<std::net::TcpListener> {
        type Stream = AsyncIoStream<std::net::TcpStream>;

        async fn accept_stream(&self) -> io::Result<(Self::Stream, PeerAddr)> {
            let (stream, peer) = self.accept().await?;
            // Responses are written whole; don't let Nagle delay their tails.
            if let Err(e) = stream.get_ref().set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
            Ok((AsyncIoStream(stream.compat()), PeerAddr::Tcp(peer)))
        }

        fn readable(stream: &Self::Stream) -> impl Future<Output = io::Result<()>> + Send {
            stream.0.get_ref().readable()
        }
    }

    impl Listener for Async<std::os::unix::net::UnixListener> {
        type Stream = AsyncIoStream<std::os::unix::net::UnixStream>;

        async fn accept_stream(&self) -> io::Result<(Self::Stream, PeerAddr)> {
            let (stream, peer) = self.accept().await?;
            Ok((
                AsyncIoStream(stream.compat()),
                PeerAddr::unix(peer.as_pathname()),
            ))
        }

        fn readable(stream: &Self::Stream) -> impl Future<Output = io::Result<()>> + Send {
            stream.0.get_ref().readable()
        }
    }

    /// A stream that can shut its write side down.
    pub trait ShutdownWrite {
        /// `shutdown(SHUT_WR)`: the peer reads end-of-file.
        fn shutdown_write(&self) -> io::Result<()>;
    }

    impl ShutdownWrite for std::net::TcpStream {
        fn shutdown_write(&self) -> io::Result<()> {
            self.shutdown(std::net::Shutdown::Write)
        }
    }

    impl ShutdownWrite for std::os::unix::net::UnixStream {
        fn shutdown_write(&self) -> io::Result<()> {
            self.shutdown(std::net::Shutdown::Write)
        }
    }

    /// An accepted async-io stream through tokio's I/O traits.
    ///
    /// async-io's `poll_close` only flushes; closing a connection cleanly
    /// needs the FIN that `poll_shutdown` sends here (without it a drained
    /// keep-alive client would not learn that the connection is closed until
    /// the socket is dropped).
    #[derive(Debug)]
    pub struct AsyncIoStream<T>(Compat<Async<T>>);

    impl<T: std::os::fd::AsFd> std::os::fd::AsFd for AsyncIoStream<T> {
        fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
            self.0.get_ref().get_ref().as_fd()
        }
    }

    impl<T> AsyncRead for AsyncIoStream<T>
    where
        Compat<Async<T>>: AsyncRead + Unpin,
    {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl<T: ShutdownWrite> AsyncWrite for AsyncIoStream<T>
    where
        Compat<Async<T>>: AsyncWrite + Unpin,
    {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.0.is_write_vectored()
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            std::task::ready!(Pin::new(&mut self.0).poll_flush(cx))?;
            Poll::Ready(self.0.get_ref().get_ref().shutdown_write())
        }
    }

    /// hyper's timer on async-io: header read timeouts, HTTP/2 keep-alive.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct AsyncIoTimer;

    impl hyper::rt::Timer for AsyncIoTimer {
        fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
            Box::pin(Sleep(async_io::Timer::after(duration)))
        }

        fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
            Box::pin(Sleep(async_io::Timer::at(deadline)))
        }
    }

    struct Sleep(async_io::Timer);

    impl Future for Sleep {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            Pin::new(&mut self.0).poll(cx).map(|_| ())
        }
    }

    impl hyper::rt::Sleep for Sleep {}
}
