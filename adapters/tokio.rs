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
impl InheritedListener for ::tokio::net::UdpSocket {
    const KIND: SocketKind = SocketKind::Udp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        ::tokio::net::UdpSocket::from_std(fd.into())
    }
}
