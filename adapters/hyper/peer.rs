//! [`PeerAddr`]: who is at the other end of a connection, as accept told it,
//! carried by every request; and [`MapPeer`], which copies it into an
//! extension of the application's own type (axum's `ConnectInfo`).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::Request;

/// The address of the client at the other end of the connection, as the
/// listener's accept returned it. Every request the [`Server`](super::Server)
/// serves carries one as an extension
/// (`request.extensions().get::<PeerAddr>()`, or axum's
/// `Extension<PeerAddr>`), on HTTP/1.1 and HTTP/2, over TLS or not, on every
/// runtime; [`map_peer`] makes axum's `ConnectInfo<SocketAddr>` work too.
///
/// It is the address of the TCP (or Unix socket) peer: behind a reverse
/// proxy, the proxy's. A dual-stack listener (`[::]:8080`) sees IPv4
/// clients as IPv4-mapped IPv6 addresses (`[::ffff:192.0.2.1]:50000`).
///
/// One is made per connection and cloned into each request: cheap (a
/// socket address, or a reference-counted path).
///
/// ```
/// use std::net::SocketAddr;
/// use handoff::hyper::PeerAddr;
///
/// let peer = PeerAddr::Tcp("127.0.0.1:50000".parse().unwrap());
/// assert_eq!(peer.tcp(), Some(SocketAddr::from(([127, 0, 0, 1], 50000))));
/// assert_eq!(peer.to_string(), "127.0.0.1:50000");
/// assert_eq!(PeerAddr::Unix(None).to_string(), "unix:(unnamed)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A TCP client: its IP address and port.
    Tcp(SocketAddr),
    /// A client on a Unix stream socket: the path its own socket is bound
    /// to, or `None` when it is unnamed (as clients' sockets almost always
    /// are) or has an abstract name.
    Unix(Option<Arc<Path>>),
}

impl PeerAddr {
    /// The client's IP address and port, if it came over TCP.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Tcp(addr) => Some(*addr),
            PeerAddr::Unix(_) => None,
        }
    }

    /// Whether the client came over a Unix socket.
    pub fn is_unix(&self) -> bool {
        matches!(self, PeerAddr::Unix(_))
    }

    /// The path of the client's Unix socket, if it bound one.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            PeerAddr::Unix(path) => path.as_deref(),
            PeerAddr::Tcp(_) => None,
        }
    }

    /// A Unix peer from the address accept returned.
    pub(crate) fn unix(path: Option<&Path>) -> PeerAddr {
        PeerAddr::Unix(path.map(Arc::from))
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        PeerAddr::Tcp(addr)
    }
}

/// `IP:PORT` (`[IPv6]:PORT`) for TCP, as [`SocketAddr`] shows it;
/// `unix:PATH` or `unix:(unnamed)` for a Unix socket.
impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(addr) => addr.fmt(f),
            PeerAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            PeerAddr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

/// Wraps `service` so that each request also carries `map(&peer)` as an
/// extension, when it returns `Some`: the [`PeerAddr`] in a type the
/// application's framework looks for. See [`MapPeer`].
///
/// For axum's `ConnectInfo<SocketAddr>` (TCP clients; a request from a Unix
/// socket gets none, and the extractor rejects it):
///
/// ```no_run
/// use std::net::SocketAddr;
/// use axum::{Router, extract::ConnectInfo, routing::get};
///
/// async fn peer(ConnectInfo(peer): ConnectInfo<SocketAddr>) -> String {
///     format!("peer={peer}\n")
/// }
///
/// # async fn example() -> Result<(), handoff::Error> {
/// let router = Router::new().route("/peer", get(peer));
/// let app = handoff::hyper::map_peer(router, |peer| peer.tcp().map(ConnectInfo));
/// let handoff = handoff::Handoff::new()?;
/// handoff::hyper::serve_tower(handoff, [("http", "127.0.0.1:8080")], app).await?;
/// # Ok(()) }
/// ```
pub fn map_peer<S, F, T>(service: S, map: F) -> MapPeer<S, F>
where
    F: Fn(&PeerAddr) -> Option<T>,
    T: Clone + Send + Sync + 'static,
{
    MapPeer {
        inner: service,
        map,
    }
}

/// A service that inserts `map(&peer)` into the extensions of each request
/// before passing it on, made by [`map_peer`]: a tower service when the
/// service it wraps is one (an axum `Router`), and a hyper service when the
/// service it wraps is one. Requests without a [`PeerAddr`] (served by
/// something else than [`Server`](super::Server)) pass unchanged.
///
/// The generic way to reach framework types handoff does not depend on; the
/// cost is one call of `map` and one extension per request.
#[derive(Debug, Clone, Copy)]
pub struct MapPeer<S, F> {
    inner: S,
    map: F,
}

impl<S, F> MapPeer<S, F> {
    /// The service wrapped.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn insert<B, T>(&self, request: &mut Request<B>)
    where
        F: Fn(&PeerAddr) -> Option<T>,
        T: Clone + Send + Sync + 'static,
    {
        if let Some(value) = request.extensions().get::<PeerAddr>().and_then(&self.map) {
            request.extensions_mut().insert(value);
        }
    }
}

impl<S, F, T, B> tower_service::Service<Request<B>> for MapPeer<S, F>
where
    S: tower_service::Service<Request<B>>,
    F: Fn(&PeerAddr) -> Option<T>,
    T: Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        self.insert(&mut request);
        self.inner.call(request)
    }
}

impl<S, F, T, B> hyper::service::Service<Request<B>> for MapPeer<S, F>
where
    S: hyper::service::Service<Request<B>>,
    F: Fn(&PeerAddr) -> Option<T>,
    T: Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: Request<B>) -> S::Future {
        self.insert(&mut request);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Seen(SocketAddr);

    /// Answers with the `Seen` extension of the request.
    #[derive(Clone)]
    struct Echo;

    impl hyper::service::Service<Request<()>> for Echo {
        type Response = Option<Seen>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Option<Seen>, Self::Error>>;

        fn call(&self, request: Request<()>) -> Self::Future {
            std::future::ready(Ok(request.extensions().get::<Seen>().cloned()))
        }
    }

    #[test]
    fn map_peer_inserts_what_the_map_returns() {
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let service = map_peer(Echo, |peer| peer.tcp().map(Seen));
        let call = |peer: Option<PeerAddr>| {
            let mut request = Request::new(());
            if let Some(peer) = peer {
                request.extensions_mut().insert(peer);
            }
            let fut = hyper::service::Service::call(&service, request);
            futures_util::FutureExt::now_or_never(fut).unwrap().unwrap()
        };
        assert_eq!(call(Some(PeerAddr::Tcp(addr))), Some(Seen(addr)));
        assert_eq!(call(Some(PeerAddr::Unix(None))), None);
        assert_eq!(call(None), None);
    }

    #[test]
    fn unix_peers_show_their_path() {
        let peer = PeerAddr::unix(Some(Path::new("/run/client.sock")));
        assert_eq!(peer.to_string(), "unix:/run/client.sock");
        assert_eq!(peer.unix_path(), Some(Path::new("/run/client.sock")));
        assert!(peer.is_unix());
        assert_eq!(peer.tcp(), None);
    }
}
