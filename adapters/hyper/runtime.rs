//! [`HttpRuntime`]: what the HTTP server needs from a runtime besides the
//! driver's timer and signals; and [`Executor`], hyper's executor on top.

use std::future::Future;

use crate::{InheritedListener, Runtime};

use super::Listener;

/// A [`Runtime`] that can run the HTTP server: its listener types, a timer
/// for hyper, and a way to spawn tasks.
///
/// Implemented by `handoff::tokio::Tokio`, `handoff::smol::Smol` and
/// `handoff::async_std::AsyncStd` under their features. A runtime adapter
/// implements it next to its [`Runtime`] impl.
pub trait HttpRuntime: Runtime + Clone + Unpin {
    /// The TCP listener [`Server::listen`](super::Server::listen) takes from
    /// the registry.
    type TcpListener: Listener + InheritedListener;
    /// The Unix stream listener [`Server::listen`](super::Server::listen)
    /// takes from the registry.
    type UnixListener: Listener + InheritedListener;
    /// hyper's timer (header read timeout, HTTP/2 keep-alive).
    type Timer: hyper::rt::Timer + Clone + Send + Sync + 'static;

    /// The timer hyper's connections use.
    fn timer(&self) -> Self::Timer;

    /// Runs `future` as a detached task. Must not panic: when the runtime is
    /// gone (a value dropped while it shuts down), the future is dropped.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;
}

/// The runtime [`Server`](super::Server) runs on when none is named: tokio's,
/// with the `tokio` feature.
#[cfg(feature = "tokio")]
pub type DefaultRuntime = crate::tokio::Tokio;

/// Without the `tokio` feature there is no default runtime: name one, as in
/// `Server<handoff::smol::Smol>`.
#[cfg(not(feature = "tokio"))]
#[derive(Debug, Clone, Copy)]
pub enum DefaultRuntime {}

/// hyper's executor (HTTP/2 streams) on an [`HttpRuntime`].
#[derive(Debug, Clone, Default)]
pub struct Executor<R>(pub R);

impl<R, F> hyper::rt::Executor<F> for Executor<R>
where
    R: HttpRuntime,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.0.spawn(async move {
            future.await;
        });
    }
}
