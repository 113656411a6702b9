//! The smol adapter: [`Smol`], the [`Runtime`] that gives the driver
//! async-io timers and async-signal signals, and [`InheritedListener`] for
//! smol's listeners.
//!
//! Listeners: `smol::Async<std::net::TcpListener>` (async-io's `Async`, also
//! for `UnixListener` and `UdpSocket`), and smol's `smol::net::TcpListener`,
//! `smol::net::unix::UnixListener`, `smol::net::UdpSocket`. None needs a
//! runtime context to be built.
//!
//! ```no_run
//! use smol::Async;
//! use std::net::TcpListener;
//!
//! # fn main() -> Result<(), handoff::Error> {
//! let mut handoff = handoff::Handoff::new()?;
//! let listener: Async<TcpListener> = handoff.listen("echo", "127.0.0.1:7000")?;
//! let group = handoff::DrainGroup::new();
//! // ... spawn an accept loop on `listener` that tracks connections in `group` ...
//! # drop(listener);
//! smol::block_on(handoff.run(handoff::smol::Smol::new(), group))?;
//! # Ok(()) }
//! ```
//!
//! With the `hyper` feature, `handoff::hyper::Server::with_runtime(Smol::new())`
//! serves HTTP on smol.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::error::Result;
use crate::listener::InheritedListener;
use crate::reactor;
use crate::runtime::{Runtime, Signal};
use crate::socket::SocketKind;

/// The smol [`Runtime`]: async-io timers and async-signal signals. Tasks the
/// HTTP server starts go to smol's global executor, or to the one given to
/// [`with_executor`](Smol::with_executor).
#[derive(Clone, Default)]
pub struct Smol {
    executor: Option<Arc<smol::Executor<'static>>>,
}

impl fmt::Debug for Smol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smol")
            .field(
                "executor",
                &if self.executor.is_some() {
                    "own"
                } else {
                    "global"
                },
            )
            .finish()
    }
}

impl Smol {
    /// Spawns on smol's global executor (`smol::spawn`).
    pub fn new() -> Self {
        Smol { executor: None }
    }

    /// Spawns on `executor`, which the application runs (for example with
    /// `smol::block_on(executor.run(...))` on each of its threads).
    pub fn with_executor(executor: Arc<smol::Executor<'static>>) -> Self {
        Smol {
            executor: Some(executor),
        }
    }

    /// Runs `future` as a detached task.
    #[cfg_attr(not(feature = "hyper"), allow(dead_code))]
    pub(crate) fn spawn_detached<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match &self.executor {
            Some(executor) => executor.spawn(future).detach(),
            None => smol::spawn(future).detach(),
        }
    }
}

impl Runtime for Smol {
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        reactor::sleep_until(deadline)
    }

    fn signals(&self, signals: &[Signal]) -> Result<BoxStream<'static, Signal>> {
        reactor::signals(signals)
    }
}

impl InheritedListener for smol::net::TcpListener {
    const KIND: SocketKind = SocketKind::Tcp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Self::try_from(fd)
    }
}

impl InheritedListener for smol::net::unix::UnixListener {
    const KIND: SocketKind = SocketKind::Unix;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Self::try_from(fd)
    }
}

impl InheritedListener for smol::net::UdpSocket {
    const KIND: SocketKind = SocketKind::Udp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Self::try_from(fd)
    }
}

#[cfg(feature = "hyper")]
impl crate::hyper::HttpRuntime for Smol {
    type TcpListener = smol::Async<std::net::TcpListener>;
    type UnixListener = smol::Async<std::os::unix::net::UnixListener>;
    type Timer = crate::hyper::AsyncIoTimer;

    fn timer(&self) -> Self::Timer {
        crate::hyper::AsyncIoTimer
    }

    fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.spawn_detached(future);
    }
}
