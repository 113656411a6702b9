//! [`Listener`]: what the accept loop needs from a listening socket.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// A listening socket the HTTP server accepts on: tokio's `TcpListener` and
/// `UnixListener` implement it.
pub trait Listener: Send + 'static {
    /// An accepted connection.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Accepts one connection.
    fn accept_stream(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Resolves when `stream` has something to read (data or end-of-file).
    ///
    /// The server waits for it before anything else, so that a connection
    /// whose client has not sent a byte yet can be told apart when draining.
    fn readable(stream: &Self::Stream) -> impl Future<Output = io::Result<()>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept_stream(&self) -> io::Result<Self::Stream> {
        let (stream, _) = self.accept().await?;
        // Responses are written whole; don't let Nagle delay their tails.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        Ok(stream)
    }

    fn readable(stream: &Self::Stream) -> impl Future<Output = io::Result<()>> + Send {
        stream.readable()
    }
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn accept_stream(&self) -> io::Result<Self::Stream> {
        self.accept().await.map(|(stream, _)| stream)
    }

    fn readable(stream: &Self::Stream) -> impl Future<Output = io::Result<()>> + Send {
        stream.readable()
    }
}
