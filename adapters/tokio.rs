//! The tokio adapter: tokio's listeners as [`InheritedListener`], and
//! [`Tokio`], the [`Runtime`] that gives the driver tokio's signals and timers.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, SelectAll, StreamExt};

use crate::error::{Error, Result};
use crate::listener::InheritedListener;
use crate::runtime::{Runtime, Signal};
use crate::socket::SocketKind;

/// The tokio [`Runtime`]: `tokio::time` timers and `tokio::signal::unix` signals.
///
/// Must be used from within a tokio runtime with the time driver enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        Box::pin(::tokio::time::sleep_until(deadline.into()))
    }

    fn signals(&self, signals: &[Signal]) -> Result<BoxStream<'static, Signal>> {
        use ::tokio::signal::unix::{SignalKind, signal};
        let mut all = SelectAll::new();
        for &sig in signals {
            let mut stream = signal(SignalKind::from_raw(sig.as_raw()))
                .map_err(|e| Error::io(format!("cannot install a handler for {sig}"), e))?;
            let s =
                futures_util::stream::poll_fn(move |cx| stream.poll_recv(cx)).map(move |()| sig);
            all.push(s.boxed());
        }
        Ok(all.boxed())
    }
}

/// Needs a tokio runtime context.
impl InheritedListener for ::tokio::net::TcpListener {
    const KIND: SocketKind = SocketKind::Tcp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        ::tokio::net::TcpListener::from_std(fd.into())
    }
}

/// Needs a tokio runtime context.
impl InheritedListener for ::tokio::net::UnixListener {
    const KIND: SocketKind = SocketKind::Unix;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        ::tokio::net::UnixListener::from_std(fd.into())
    }
}

/// Needs a tokio runtime context.
impl crate::Accept for ::tokio::net::TcpListener {
    type Connection = ::tokio::net::TcpStream;

    async fn accept(&self) -> io::Result<Self::Connection> {
        ::tokio::net::TcpListener::accept(self)
            .await
            .map(|(s, _)| s)
    }
}

impl crate::Accept for ::tokio::net::UnixListener {
    type Connection = ::tokio::net::UnixStream;

    async fn accept(&self) -> io::Result<Self::Connection> {
        ::tokio::net::UnixListener::accept(self)
            .await
            .map(|(s, _)| s)
    }
}

impl InheritedListener for ::tokio::net::UdpSocket {
    const KIND: SocketKind = SocketKind::Udp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        ::tokio::net::UdpSocket::from_std(fd.into())
    }
}

#[cfg(feature = "hyper")]
mod http {
    use std::future::Future;
    use std::io;

    use hyper_util::rt::TokioTimer;

    use super::Tokio;
    use crate::hyper::{HttpRuntime, Listener, PeerAddr};

    impl HttpRuntime for Tokio {
        type TcpListener = ::tokio::net::TcpListener;
        type UnixListener = ::tokio::net::UnixListener;
        type Timer = TokioTimer;

        fn timer(&self) -> TokioTimer {
            TokioTimer::new()
        }

        fn spawn<F>(&self, future: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            match ::tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(future)),
                Err(_) => tracing::debug!("no tokio runtime: a task was not started"),
            }
        }
    }

    impl Listener for ::tokio::net::TcpListener {
        type Stream = ::tokio::net::TcpStream;

        async fn accept_stream(&self) -> io::Result<(Self::Stream, PeerAddr)> {
            let (stream, peer) = self.accept().await?;
            // Responses are written whole; don't let Nagle delay their tails.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
            Ok((stream, PeerAddr::Tcp(peer)))
        }

        fn readable(stream: &Self::Stream) -> impl Future<Output = io::Result<()>> + Send {
            stream.readable()
        }
    }

    impl Listener for ::tokio::net::UnixListener {
        type Stream = ::tokio::net::UnixStream;

        async fn accept_stream(&self) -> io::Result<(Self::Stream, PeerAddr)> {
            let (stream, peer) = self.accept().await?;
            Ok((stream, PeerAddr::unix(peer.as_pathname())))
        }

        fn readable(stream: &Self::Stream) -> impl Future<Output = io::Result<()>> + Send {
            stream.readable()
        }
    }
}
