//! [`Listener`]: what the accept loop needs from a listening socket.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;

use tokio::io::{AsyncRead, AsyncWrite};

use super::PeerAddr;

/// A listening socket the HTTP server accepts on: tokio's `TcpListener` and
/// `UnixListener` (feature `tokio`), async-io's `Async<TcpListener>` and
/// `Async<UnixListener>` (features `smol`, `async-std`) implement it.
///
/// Accepted streams are seen through tokio's I/O traits whatever the runtime
/// (hyper itself depends on tokio for them; no tokio runtime is needed):
/// async-io streams are wrapped in `tokio_util::compat::Compat`.
pub trait Listener: Send + 'static {
    /// An accepted connection.
    ///
    /// Its descriptor tells, when the connection closes, whether anything is
    /// still queued on it (see the module documentation on lingering).
    type Stream: AsyncRead + AsyncWrite + AsFd + Send + Unpin + 'static;

    /// Accepts one connection, with the client's address as accept returned
    /// it (requests carry it, see [`PeerAddr`]).
    fn accept_stream(&self) -> impl Future<Output = io::Result<(Self::Stream, PeerAddr)>> + Send;

    /// Resolves when `stream` has something to read (data or end-of-file).
    ///
    /// The server waits for it before anything else, so that a connection
    /// whose client has not sent a byte yet can be told apart when draining.
    fn readable(stream: &Self::Stream) -> impl Future<Output = io::Result<()>> + Send;
}
