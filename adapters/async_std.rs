//! The async-std adapter: [`AsyncStd`], the [`Runtime`] that gives the
//! driver async-io timers and async-signal signals, and [`InheritedListener`]
//! for async-std's listeners.
//!
//! **async-std is discontinued upstream** (its maintainers recommend smol);
//! this adapter is kept working for existing applications, but new ones
//! should use the `smol` feature.
//!
//! Listeners: `async_std::net::TcpListener`, `async_std::net::UdpSocket`,
//! `async_std::os::unix::net::UnixListener`, and async-io's
//! `Async<std::net::TcpListener>` (async-std runs on async-io's reactor).
//!
//! ```no_run
//! # fn main() -> Result<(), handoff::Error> {
//! let mut handoff = handoff::Handoff::new()?;
//! let listener: async_std::net::TcpListener = handoff.listen("echo", "127.0.0.1:7000")?;
//! let group = handoff::DrainGroup::new();
//! // ... spawn an accept loop on `listener` that tracks connections in `group` ...
//! # drop(listener);
//! async_std::task::block_on(handoff.run(handoff::async_std::AsyncStd, group))?;
//! # Ok(()) }
//! ```
//!
//! With the `hyper` feature, `handoff::hyper::Server::with_runtime(AsyncStd)`
//! serves HTTP on async-std.
//!
//! # Caveat
//!
//! async-std's conversions from a descriptor panic if the reactor cannot
//! register it (epoll out of memory or watches). Where that matters, take
//! async-io's `Async<std::net::TcpListener>` from the registry instead: its
//! constructor returns the error.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::error::Result;
use crate::listener::InheritedListener;
use crate::reactor;
use crate::runtime::{Runtime, Signal};
use crate::socket::SocketKind;

/// The async-std [`Runtime`]: async-io timers and async-signal signals; the
/// HTTP server's tasks go to `async_std::task::spawn`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        reactor::sleep_until(deadline)
    }

    fn signals(&self, signals: &[Signal]) -> Result<BoxStream<'static, Signal>> {
        reactor::signals(signals)
    }
}

impl InheritedListener for async_std::net::TcpListener {
    const KIND: SocketKind = SocketKind::Tcp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(fd.into())
    }
}

impl InheritedListener for async_std::os::unix::net::UnixListener {
    const KIND: SocketKind = SocketKind::Unix;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(fd.into())
    }
}

impl InheritedListener for async_std::net::UdpSocket {
    const KIND: SocketKind = SocketKind::Udp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(fd.into())
    }
}

#[cfg(feature = "hyper")]
impl crate::hyper::HttpRuntime for AsyncStd {
    type TcpListener = async_io::Async<std::net::TcpListener>;
    type UnixListener = async_io::Async<std::os::unix::net::UnixListener>;
    type Timer = crate::hyper::AsyncIoTimer;

    fn timer(&self) -> Self::Timer {
        crate::hyper::AsyncIoTimer
    }

    fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        drop(async_std::task::spawn(future));
    }
}
