//! HTTP/1.1 and HTTP/2 on hyper 1, restarted without failing a request.
//!
//! The one-call entry point, the equivalent of Go's `ListenAndServe`:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use hyper::{Request, Response, body::Incoming};
//!
//! # async fn hello(_: Request<Incoming>) -> Result<Response<String>, Infallible> {
//! #     Ok(Response::new("hello\n".to_string()))
//! # }
//! # async fn example() -> Result<(), handoff::Error> {
//! let handoff = handoff::Handoff::new()?; // early in main, before the runtime's threads
//! // ... then, inside a tokio runtime:
//! let service = hyper::service::service_fn(hello);
//! handoff::hyper::serve(handoff, [("http", "127.0.0.1:8080")], service).await?;
//! # Ok(()) }
//! ```
//!
//! Each `(name, address)` is inherited from the previous generation or bound
//! fresh (see [`Listeners`](crate::Listeners)); addresses are TCP
//! (`127.0.0.1:8080`) or Unix (`unix:/run/app.sock`). HTTP/1.1 and HTTP/2
//! (prior knowledge, or ALPN with TLS) are served on the same port. SIGHUP
//! restarts into the new build, SIGTERM shuts down; either way this
//! generation drains:
//!
//! - it stops accepting (the successor accepts from the same socket);
//! - an HTTP/1 connection idle for longer than the
//!   [idle grace](Server::idle_grace) (1 s) closes at once; one active more
//!   recently gets until its last activity + the grace for its next request,
//!   which is answered with `Connection: close`; a request in progress is
//!   answered with `Connection: close`. A client never has a keep-alive
//!   connection closed under a request it was about to send, unless it
//!   waited longer than the grace to send it;
//! - HTTP/2 connections get GOAWAY in two steps (the highest stream id, a
//!   PING round trip, then the last stream id taken), so no stream the
//!   client sent before it saw the first GOAWAY is refused; the streams in
//!   flight finish;
//! - upgraded connections (WebSocket) count as in flight until their socket
//!   is dropped; handlers learn that draining started through the
//!   [`Draining`] extension of the request;
//! - a closed connection reads and discards what the client still sends,
//!   for at most 1 s, so the kernel never answers it with a reset; an HTTP/1
//!   connection closes at once when nothing is unread and everything sent
//!   was acknowledged (an HTTP/2 one waits for its client to close, which
//!   may still be sending frames after the last GOAWAY);
//! - at the stop timeout whatever remains is dropped (the hammer).
//!
//! # Request bodies the handler does not read
//!
//! In steady state as while draining, a handler may answer without reading
//! the request body (a 405, a redirect, an early error). Before the response
//! head is written, the server discards what of the body has already
//! arrived and keeps the connection; if the rest has not arrived, the
//! response says `Connection: close` and the connection closes after it.
//! Either way the client is told the truth: a connection is never closed
//! after a response that promised to keep it open. A handler that reads the
//! body, even in part, is unaffected.
//!
//! Use [`Server`] to configure timeouts, limits, TLS, or to serve several
//! services; `serve_tower` takes a tower service such as an axum `Router`.
//!
//! # The client's address
//!
//! Every request carries the address of the client at the other end of its
//! connection, as accept returned it: a [`PeerAddr`] extension
//! (`request.extensions().get::<PeerAddr>()`, or axum's
//! `Extension<PeerAddr>`), on HTTP/1.1 and HTTP/2, with TLS or not, whatever
//! the runtime. axum's `ConnectInfo<SocketAddr>` extractor looks for an
//! extension of its own type, which handoff cannot name without depending
//! on axum: wrap the router with [`map_peer`], which inserts what a closure
//! makes of the [`PeerAddr`].
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use axum::{Router, extract::ConnectInfo, routing::get};
//! use handoff::hyper::{Server, TowerToHyperService, map_peer};
//!
//! async fn peer(ConnectInfo(peer): ConnectInfo<SocketAddr>) -> String {
//!     format!("peer={peer}\n")
//! }
//!
//! # async fn example(mut handoff: handoff::Handoff) -> Result<(), handoff::Error> {
//! let router = Router::new().route("/peer", get(peer));
//! // TCP clients get a ConnectInfo; Unix socket ones none (the extractor rejects them).
//! let app = map_peer(router, |peer| peer.tcp().map(ConnectInfo));
//! let server = Server::new();
//! server.listen(&mut handoff, "http", "127.0.0.1:8080", TowerToHyperService::new(app))?;
//! handoff.run(handoff::tokio::Tokio, server).await?;
//! # Ok(()) }
//! ```
//!
//! # Runtimes
//!
//! `serve` and `Server::new` run on tokio (feature `tokio`).
//! [`Server::with_runtime`] runs the same server on any [`HttpRuntime`]:
//! `handoff::smol::Smol` (feature `smol`) or `handoff::async_std::AsyncStd`
//! (feature `async-std`), TLS included. Whatever the runtime, connections are
//! driven through tokio's I/O traits, which hyper depends on anyway; only the
//! tokio runtime adapter starts a tokio runtime.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::{Request, Response};

use crate::{Address, DrainGroup, Drainable, Error, ExitReason, Handoff, Result};

mod accept;
mod activity;
mod connection;
mod io;
mod listener;
mod peer;
mod runtime;
mod service;

#[cfg(any(feature = "smol", feature = "async-std"))]
pub use crate::reactor::{AsyncIoStream, AsyncIoTimer};
pub use hyper_util::service::TowerToHyperService;
pub use listener::Listener;
pub use peer::{MapPeer, PeerAddr, map_peer};
pub use runtime::{DefaultRuntime, Executor, HttpRuntime};
pub use service::{HttpBody, HttpService};

/// The error type services may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Default for [`Server::header_read_timeout`].
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Server::idle_grace`].
const IDLE_GRACE: Duration = Duration::from_secs(1);
/// How long a closed connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(1);

/// Serves `service` on every `(name, address)` pair with a default [`Server`],
/// then runs `handoff` until this generation is done: restarts on SIGHUP or
/// SIGUSR2, graceful shutdown on SIGTERM or SIGINT.
///
/// Must be called from within a tokio runtime (with I/O and time enabled).
/// See the [module documentation](self) for an example; on smol or
/// async-std, use [`Server::with_runtime`].
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub async fn serve<I, N, A, S, B>(handoff: Handoff, listeners: I, service: S) -> Result<ExitReason>
where
    I: IntoIterator<Item = (N, A)>,
    N: AsRef<str>,
    A: AsRef<str>,
    S: HttpService<B>,
    B: HttpBody,
{
    Server::new().serve(handoff, listeners, service).await
}

/// [`serve`] for a tower service, such as an axum `Router`.
///
/// ```no_run
/// # async fn example(router: axum::Router) -> Result<(), handoff::Error> {
/// let handoff = handoff::Handoff::new()?;
/// handoff::hyper::serve_tower(handoff, [("http", "127.0.0.1:8080")], router).await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub async fn serve_tower<I, N, A, S, B>(
    handoff: Handoff,
    listeners: I,
    service: S,
) -> Result<ExitReason>
where
    I: IntoIterator<Item = (N, A)>,
    N: AsRef<str>,
    A: AsRef<str>,
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: HttpBody,
{
    serve(handoff, listeners, TowerToHyperService::new(service)).await
}

/// Whether the server is draining: every request carries one as an
/// extension (`request.extensions().get::<Draining>()`, or axum's
/// `Extension<Draining>`). Long-lived handlers (streams, upgraded
/// connections) await [`signal`](Draining::signal) to wrap up, and may await
/// [`hammer_signal`](Draining::hammer_signal) to stop at once: the server
/// drops the connections it drives itself, and reads and writes on upgraded
/// connections fail from then on.
pub use crate::Draining;

/// What the connections of a [`Server`] are served with.
#[derive(Clone)]
struct Config<R> {
    runtime: R,
    h1: http1::Builder,
    h2: http2::Builder<Executor<R>>,
    header_read_timeout: Option<Duration>,
    grace: Duration,
    linger: Duration,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// An HTTP server on handoff's listeners that implements [`Drainable`].
///
/// ```no_run
/// use std::time::Duration;
/// # use std::convert::Infallible;
/// # use hyper::{Request, Response, body::Incoming};
/// # async fn hello(_: Request<Incoming>) -> Result<Response<String>, Infallible> {
/// #     Ok(Response::new("hello\n".to_string()))
/// # }
/// # async fn example(mut handoff: handoff::Handoff) -> Result<(), handoff::Error> {
/// let server = handoff::hyper::Server::new()
///     .header_read_timeout(Duration::from_secs(10))
///     .max_header_size(16 * 1024);
/// let service = hyper::service::service_fn(hello);
/// let bound = server.listen(&mut handoff, "http", "127.0.0.1:0", service)?;
/// println!("serving {bound}");
/// handoff.run(handoff::tokio::Tokio, server).await?;
/// # Ok(()) }
/// ```
///
/// Cloning is cheap: clones share the connections and the drain state.
/// Configure first, then [`listen`](Server::listen): a listener is served
/// with the configuration the server had when it was added.
#[derive(Clone)]
pub struct Server<R = DefaultRuntime> {
    group: DrainGroup,
    config: Arc<Config<R>>,
}

impl<R> std::fmt::Debug for Server<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Server");
        s.field("in_flight", &self.group.in_flight())
            .field("draining", &self.group.is_draining())
            .field("header_read_timeout", &self.config.header_read_timeout)
            .field("idle_grace", &self.config.grace);
        #[cfg(feature = "tls")]
        s.field("tls", &self.config.tls.is_some());
        s.finish_non_exhaustive()
    }
}

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl Default for Server<crate::tokio::Tokio> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl Server<crate::tokio::Tokio> {
    /// A server on tokio with the defaults, see [`with_runtime`](Server::with_runtime).
    pub fn new() -> Self {
        Self::with_runtime(crate::tokio::Tokio)
    }
}

impl<R: HttpRuntime> Server<R> {
    /// A server on `runtime` with the defaults: HTTP/1.1 with keep-alive and
    /// HTTP/2, header read timeout 30 s, hyper's header limits,
    /// idle grace 1 s, no TLS.
    ///
    /// ```no_run
    /// # #[cfg(feature = "smol")]
    /// # fn example(mut handoff: handoff::Handoff) -> Result<(), handoff::Error> {
    /// use handoff::smol::Smol;
    /// # let service = hyper::service::service_fn(|_| async {
    /// #     Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("hello\n")))
    /// # });
    /// let server = handoff::hyper::Server::with_runtime(Smol::new());
    /// server.listen(&mut handoff, "http", "127.0.0.1:8080", service)?;
    /// smol::block_on(handoff.run(Smol::new(), server))?;
    /// # Ok(()) }
    /// ```
    pub fn with_runtime(runtime: R) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(runtime.timer())
            .keep_alive(true)
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let mut h2 = http2::Builder::new(Executor(runtime.clone()));
        h2.timer(runtime.timer());
        Server {
            group: DrainGroup::new(),
            config: Arc::new(Config {
                runtime,
                h1,
                h2,
                header_read_timeout: Some(HEADER_READ_TIMEOUT),
                grace: IDLE_GRACE,
                linger: LINGER,
                #[cfg(feature = "tls")]
                tls: None,
            }),
        }
    }

    fn config(&mut self) -> &mut Config<R> {
        Arc::make_mut(&mut self.config)
    }

    /// How long a client may take to send a request's headers (and, before
    /// that, its first byte and the TLS handshake) before the connection is
    /// closed; `None` for no limit. Default 30 s.
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        let timeout = timeout.into();
        let config = self.config();
        config.header_read_timeout = timeout;
        config.h1.header_read_timeout(timeout);
        self
    }

    /// The largest request head accepted, in bytes: HTTP/1 request line and
    /// headers (a larger one is answered with 431), HTTP/2 header list.
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        let config = self.config();
        config.h1.max_header_size(bytes);
        config
            .h2
            .max_header_list_size(u32::try_from(bytes).unwrap_or(u32::MAX));
        self
    }

    /// How long draining lets an HTTP/1 connection stay open after its last
    /// activity, for its next request. Default 1 s.
    ///
    /// HTTP/1.1 cannot tell a keep-alive client to stop sending requests: a
    /// server that closes an idle connection races a client that is writing
    /// its next request on it, and that request fails. So once draining
    /// starts:
    ///
    /// - a connection idle for longer than the grace (or silent since it was
    ///   accepted that long ago) is closed at once;
    /// - one active more recently gets until its last activity + the grace to
    ///   send its next request, which is answered with `Connection: close`;
    /// - a request in progress is answered with `Connection: close`.
    ///
    /// Activity is the end of a response, or the accept (the TLS handshake)
    /// for a connection that has not sent a request yet. HTTP/2 connections
    /// get GOAWAY at once instead. A longer grace spares slower clients; the
    /// old generation exits at the latest one grace after draining starts
    /// unless a request is still in progress. (Go's `Shutdown` waits 5 s for
    /// connections that have not sent a request yet, and closes idle ones at
    /// once.)
    pub fn idle_grace(mut self, grace: Duration) -> Self {
        self.config().grace = grace;
        self
    }

    /// The former name of [`idle_grace`](Server::idle_grace).
    #[deprecated(since = "0.1.0", note = "renamed to idle_grace")]
    pub fn first_request_grace(self, grace: Duration) -> Self {
        self.idle_grace(grace)
    }

    /// Configures hyper's HTTP/1 builder further (it comes with the
    /// runtime's timer).
    pub fn http1(mut self, configure: impl FnOnce(&mut http1::Builder)) -> Self {
        configure(&mut self.config().h1);
        self
    }

    /// Configures hyper's HTTP/2 builder further (it comes with the
    /// runtime's executor and timer).
    pub fn http2(mut self, configure: impl FnOnce(&mut http2::Builder<Executor<R>>)) -> Self {
        configure(&mut self.config().h2);
        self
    }

    /// Serves HTTPS with `config` (see [`crate::tls::server_config`]); its
    /// ALPN protocols choose between HTTP/2 and HTTP/1.1.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.config().tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// The runtime this server runs on.
    pub fn runtime(&self) -> &R {
        &self.config.runtime
    }

    /// A [`Draining`] of this server, as requests carry it.
    pub fn draining(&self) -> Draining {
        self.group.draining()
    }

    /// Takes the listener `name` from `handoff` (inherited, or bound fresh at
    /// `address`, see [`Handoff::listen`]) and serves `service` on it.
    /// Returns the address actually bound (the real port when 0 was asked).
    ///
    /// On tokio, must be called from within the runtime.
    pub fn listen<S, B>(
        &self,
        handoff: &mut Handoff,
        name: &str,
        address: &str,
        service: S,
    ) -> Result<Address>
    where
        S: HttpService<B>,
        B: HttpBody,
    {
        let address: Address = address.parse()?;
        match &address {
            Address::Tcp(_) => {
                let listener: R::TcpListener = handoff.listeners().get_or_bind(name, &address)?;
                let bound = crate::socket::local_address(&listener, crate::SocketKind::Tcp)
                    .map_err(|e| {
                        Error::io(format!("cannot read the address of listener {name:?}"), e)
                    })?;
                self.serve_listener(listener, service);
                Ok(bound)
            }
            Address::Unix(_) => {
                let listener: R::UnixListener = handoff.listeners().get_or_bind(name, &address)?;
                self.serve_listener(listener, service);
                Ok(address)
            }
            _ => Err(Error::InvalidAddress {
                input: address.to_string(),
                reason: "HTTP is served on TCP or Unix stream sockets".into(),
            }),
        }
    }

    /// Serves `service` on a listener obtained elsewhere (for example
    /// [`Handoff::listen`]); accepting stops when draining starts.
    ///
    /// On tokio, must be called from within the runtime.
    pub fn serve_listener<L, S, B>(&self, listener: L, service: S)
    where
        L: Listener,
        S: HttpService<B>,
        B: HttpBody,
    {
        self.config.runtime.spawn(accept::accept_loop(
            self.config.clone(),
            self.group.clone(),
            listener,
            service,
        ));
    }

    /// Serves `service` on every `(name, address)` pair, then runs `handoff`
    /// with this server until this generation is done. [`serve`] with a
    /// configured server.
    pub async fn serve<I, N, A, S, B>(
        self,
        mut handoff: Handoff,
        listeners: I,
        service: S,
    ) -> Result<ExitReason>
    where
        I: IntoIterator<Item = (N, A)>,
        N: AsRef<str>,
        A: AsRef<str>,
        S: HttpService<B>,
        B: HttpBody,
    {
        for (name, address) in listeners {
            let name = name.as_ref();
            match self.listen(&mut handoff, name, address.as_ref(), service.clone()) {
                Ok(bound) => tracing::info!(name, %bound, "serving HTTP"),
                Err(e) => {
                    self.abort();
                    return Err(e);
                }
            }
        }
        let runtime = self.config.runtime.clone();
        handoff.run(runtime, self).await
    }
}

#[async_trait]
impl<R: HttpRuntime> Drainable for Server<R> {
    fn begin_drain(&self) {
        self.group.begin_drain();
    }

    fn resume(&self) {
        self.group.resume();
    }

    fn in_flight(&self) -> usize {
        self.group.in_flight()
    }

    async fn idle(&self) {
        self.group.idle().await
    }

    fn abort(&self) {
        self.group.abort();
    }

    /// Ends the accept loops, which kept their listeners while paused.
    async fn finish(&self) {
        self.group.finish().await;
    }
}
