//! [`Server`]: runs an actix-web `HttpServer` on handoff's listeners and
//! drains it.

use std::any::Any;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{
    AppConfig, Extensions, Response, Service, ServiceFactory, ServiceRequest, ServiceResponse,
};
use actix_web::{App, HttpServer};
use async_trait::async_trait;
use futures_util::FutureExt;

use super::drain::{Shared, stop_now};
use super::service::DrainingApp;
use crate::Draining;
use crate::{Address, Drainable, Error, ExitReason, Handoff, Result};

/// Default for [`Server::idle_grace`].
const IDLE_GRACE: Duration = Duration::from_secs(1);

type OnConnect = Arc<dyn Fn(&dyn Any, &mut Extensions) + Send + Sync>;

/// Runs an actix-web `HttpServer` on handoff's listeners and implements
/// [`Drainable`] for it.
///
/// Build the `HttpServer` from [`app`](Server::app), configure it as usual
/// (workers, keep-alive, timeouts, limits), add handoff's listeners with
/// [`listen`](Server::listen), then [`start`](Server::start) it and run
/// `handoff` with this server; or let [`serve`](Server::serve) do the last
/// three steps:
///
/// ```no_run
/// use std::time::Duration;
/// use actix_web::{App, HttpServer, web};
///
/// # async fn example(handoff: handoff::Handoff) -> Result<(), handoff::Error> {
/// let server = handoff::actix::Server::new();
/// let http = HttpServer::new(server.app(|| App::new().route("/", web::get().to(|| async { "hello\n" }))))
///     .workers(4)
///     .keep_alive(Duration::from_secs(75))
///     .client_request_timeout(Duration::from_secs(10));
/// server.serve(handoff, http, [("http", "127.0.0.1:8080")]).await?;
/// # Ok(()) }
/// ```
///
/// Handoff owns the signals (actix's are disabled) and the timeouts: actix
/// is stopped once every connection it serves is done, or at handoff's
/// hammer; actix's `shutdown_timeout` is set to the idle grace (whole
/// seconds, at least 1), which only bounds the connections handoff cannot
/// see (TLS handshakes, [h2c](Server::h2c) connections that have not sent a
/// byte). Listeners that do not come
/// from [`listen`](Server::listen) (`HttpServer::bind`) would not be handed
/// to the next generation, so [`start`](Server::start) refuses them.
///
/// To close idle connections when draining, the server keeps a duplicate of
/// each connection's descriptor (set through `HttpServer::on_connect`, so
/// a hook of your own goes to [`on_connect`](Server::on_connect)): a
/// connection costs two descriptors.
///
/// Cloning is cheap: clones share the connections and the drain state. One
/// `Server` runs one `HttpServer`.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
    idle_grace: Duration,
    on_connect: Option<OnConnect>,
    h2c: bool,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("Server");
        f.field("state", &self.shared)
            .field("idle_grace", &self.idle_grace)
            .field("h2c", &self.h2c);
        #[cfg(feature = "tls")]
        f.field("tls", &self.tls.is_some());
        f.finish_non_exhaustive()
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with an idle grace of 1 s.
    pub fn new() -> Self {
        Server {
            shared: Arc::default(),
            idle_grace: IDLE_GRACE,
            on_connect: None,
            h2c: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Also serves HTTP/2 with prior knowledge (h2c) on the cleartext
    /// listeners added from now on, next to HTTP/1.1 on the same port.
    /// Off by default.
    ///
    /// actix tells the two apart by waiting for the client's first bytes
    /// before it hands the connection to `on_connect`, with no timeout: a
    /// connection that has not sent a byte yet is invisible to handoff, so
    /// draining cannot close it when it has been idle for the
    /// [idle grace](Server::idle_grace). actix closes it when it stops, once
    /// every connection handoff sees is done, at most about one actix
    /// shutdown period (the idle grace in whole seconds, at least 1 s) later.
    /// HTTP/2 connections drain without GOAWAY (see the
    /// [module documentation](super)).
    pub fn h2c(mut self, on: bool) -> Self {
        self.h2c = on;
        self
    }

    /// Serves HTTPS with `config` on the listeners added from now on (HTTP/2
    /// or HTTP/1.1, as the client's ALPN asks); see
    /// [`handoff::tls::server_config`](crate::tls::server_config). actix adds
    /// ALPN `h2` and `http/1.1` to the configuration.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Once draining starts, how long a connection with no request in flight
    /// stays open: until its last activity (its last response, or its
    /// accept if it has not sent a request yet) plus the grace. Default 1 s.
    ///
    /// A client sends its request right after connecting, and a keep-alive
    /// client sends its next one right after a response; closing such a
    /// connection at once could close it under a request on its way. So a
    /// connection idle for longer than the grace when draining starts closes
    /// at once (not at actix's keep-alive timeout); one active more recently
    /// is served if its next request comes before its time is up, with
    /// `Connection: close` like every response once draining has started.
    pub fn idle_grace(mut self, grace: Duration) -> Self {
        self.idle_grace = grace;
        self
    }

    /// Runs `hook` for every new connection, like `HttpServer::on_connect`
    /// (which this server uses itself: set the hook here, not there).
    pub fn on_connect(
        mut self,
        hook: impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static,
    ) -> Self {
        self.on_connect = Some(Arc::new(hook));
        self
    }

    /// A [`Draining`] of this server, as handlers extract it.
    pub fn draining(&self) -> Draining {
        self.shared.group.draining()
    }

    /// Wraps an app factory for `HttpServer::new`: every app it builds gets
    /// [`Draining`] as app data and is served through handoff's service
    /// ([`DrainService`](super::DrainService)), outermost, which counts each
    /// request until its response is sent and, once draining has started,
    /// closes the connection after the response (`Connection: close`).
    pub fn app<F, T, B>(&self, factory: F) -> impl Fn() -> DrainingApp<T> + Send + Clone + 'static
    where
        F: Fn() -> App<T> + Send + Clone + 'static,
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        let shared = self.shared.clone();
        move || {
            shared.app_built.store(true, Ordering::SeqCst);
            // Called on each actix worker's thread.
            shared.worker_started();
            let app = factory().app_data(shared.group.draining());
            DrainingApp::new(app, shared.group.clone())
        }
    }

    /// Takes the listener `name` from `handoff` (inherited, or bound fresh
    /// at `address`, see [`Handoff::listen`]) and adds it to `http`, serving
    /// HTTP/1.1 on it, and HTTP/2 with prior knowledge if
    /// [`h2c`](Server::h2c) is on (HTTPS when [`tls`](Server::tls) was set).
    /// Returns the `HttpServer` and the
    /// address actually bound (the real port when 0 was asked).
    ///
    /// Only TCP addresses (`127.0.0.1:8080`) are served: actix-server deletes
    /// a Unix socket's path whenever it stops accepting on it (pausing
    /// included), which would take the socket from the next generation.
    pub fn listen<F, I, S, B>(
        &self,
        handoff: &mut Handoff,
        http: HttpServer<F, I, S, B>,
        name: &str,
        address: &str,
    ) -> Result<(HttpServer<F, I, S, B>, Address)>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: actix_service::IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let address: Address = address.parse()?;
        if !matches!(address, Address::Tcp(_)) {
            return Err(Error::InvalidAddress {
                input: address.to_string(),
                reason: "actix-web is served on TCP here: actix-server deletes a Unix \
                         socket's path when it stops accepting, which would take the \
                         socket from the next generation (handoff::hyper serves Unix sockets)"
                    .into(),
            });
        }
        let listener: std::net::TcpListener = handoff.listeners().get_or_bind(name, &address)?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io(format!("cannot read the address of listener {name:?}"), e))?;
        // actix reads the hook when a listener is added.
        let http = http.on_connect(self.on_connect_hook());
        let added = match self.tls_config() {
            #[cfg(feature = "tls")]
            Some(config) => http.listen_rustls_0_23(listener, config),
            _ if self.h2c => http.listen_auto_h2c(listener),
            _ => http.listen(listener),
        };
        let http =
            added.map_err(|e| Error::io(format!("actix-web refused listener {name:?}"), e))?;
        self.shared.listeners.fetch_add(1, Ordering::SeqCst);
        Ok((http, Address::Tcp(local)))
    }

    /// Starts `http`: disables actix's signal handling, sets its shutdown
    /// timeout to the idle grace (at most handoff's stop + kill timeout), and
    /// returns once its workers
    /// have built their apps and its accept loop runs, so
    /// [`Handoff::run`] may announce readiness right after.
    ///
    /// Must be called within the actix (or a tokio) runtime. Fails if `http`
    /// has no listener, has one that did not come from
    /// [`listen`](Server::listen), or its factory was not made by
    /// [`app`](Server::app), or if actix cannot start.
    pub fn start<F, I, S, B>(&self, handoff: &Handoff, http: HttpServer<F, I, S, B>) -> Result<()>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: actix_service::IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let misuse = |what: &str| Error::io(what, io::Error::from(io::ErrorKind::InvalidInput));
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(misuse(
                "handoff::actix::Server::start must be called within the actix or a tokio runtime",
            ));
        }
        let ours = self.shared.listeners.load(Ordering::SeqCst);
        if ours == 0 {
            return Err(misuse(
                "the actix-web server has no listener from handoff::actix::Server::listen",
            ));
        }
        if http.addrs().len() != ours {
            return Err(misuse(
                "the actix-web server has a listener handoff does not know (HttpServer::bind?); \
                 it would not be passed to the next generation: use handoff::actix::Server::listen",
            ));
        }
        // actix is stopped once every connection handoff sees is done (or at
        // the hammer, at once): its shutdown timeout only bounds those
        // handoff cannot see (a TLS handshake, an h2c connection that has
        // not sent a byte), which get about the idle grace.
        let timeouts = handoff.timeouts();
        let limit = self
            .idle_grace
            .min(timeouts.stop.saturating_add(timeouts.kill));
        let limit = (limit.as_secs() + u64::from(limit.subsec_nanos() > 0)).max(1);
        let mut server = http.disable_signals().shutdown_timeout(limit).run();
        let handle = server.handle();
        // The first poll starts actix's workers (each builds its app before
        // this returns) and its accept thread.
        match (&mut server).now_or_never() {
            None => {}
            Some(Ok(())) => {
                return Err(Error::io(
                    "the actix-web server stopped as it started",
                    io::Error::from(io::ErrorKind::Interrupted),
                ));
            }
            Some(Err(e)) => return Err(Error::io("cannot start the actix-web server", e)),
        }
        let shared = self.shared.clone();
        let built = shared.app_built.load(Ordering::SeqCst);
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!("the actix-web server failed: {e}");
            }
            shared.finished();
        });
        if !built {
            stop_now(handle.stop(false));
            return Err(misuse(
                "the actix-web app factory must be wrapped by handoff::actix::Server::app",
            ));
        }
        self.shared.started(handle);
        tracing::debug!("actix-web accepts");
        Ok(())
    }

    /// Adds every `(name, address)` listener to `http` (see
    /// [`listen`](Server::listen)), [starts](Server::start) it, then runs
    /// `handoff` with this server until this generation is done: restarts on
    /// SIGHUP or SIGUSR2, graceful shutdown on SIGTERM or SIGINT.
    ///
    /// Must be called within the actix (or a tokio) runtime.
    pub async fn serve<L, N, A, F, I, S, B>(
        self,
        mut handoff: Handoff,
        http: HttpServer<F, I, S, B>,
        listeners: L,
    ) -> Result<ExitReason>
    where
        L: IntoIterator<Item = (N, A)>,
        N: AsRef<str>,
        A: AsRef<str>,
        F: Fn() -> I + Send + Clone + 'static,
        I: actix_service::IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let mut http = http;
        for (name, address) in listeners {
            let name = name.as_ref();
            let (next, bound) = self.listen(&mut handoff, http, name, address.as_ref())?;
            http = next;
            tracing::info!(name, %bound, "serving HTTP with actix-web");
        }
        self.start(&handoff, http)?;
        let result = handoff.run(crate::tokio::Tokio, self.clone()).await;
        if result.is_err() {
            self.abort();
        }
        result
    }

    /// The TLS configuration for actix, if HTTPS is served.
    #[cfg(feature = "tls")]
    fn tls_config(&self) -> Option<rustls::ServerConfig> {
        self.tls.as_deref().cloned()
    }

    #[cfg(not(feature = "tls"))]
    fn tls_config(&self) -> Option<std::convert::Infallible> {
        None
    }

    /// Counts each connection (and calls the user's hook).
    fn on_connect_hook(&self) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
        let connections = self.shared.connections.clone();
        let user = self.on_connect.clone();
        move |io, extensions| {
            extensions.insert(connections.open(io));
            if let Some(user) = &user {
                user(io, extensions);
            }
        }
    }
}

#[async_trait]
impl Drainable for Server {
    /// Pauses actix's accept loop, fires the drain signal, and closes the
    /// connections that have been idle for the [idle grace](Server::idle_grace).
    fn begin_drain(&self) {
        self.shared.begin_drain(self.idle_grace);
    }

    /// The connections still open.
    fn in_flight(&self) -> usize {
        self.shared.connections.len()
    }

    /// Resumes actix's accept loop. Not after the hammer, which stopped actix.
    fn resume(&self) {
        self.shared.resume();
    }

    /// Closes connections as they pass the idle grace; resolves once none
    /// is open.
    async fn idle(&self) {
        self.shared.idle(self.idle_grace).await
    }

    /// Stops actix at once: its workers drop every connection.
    fn abort(&self) {
        self.shared.abort();
    }

    /// Stops actix (gracefully unless the hammer fell) and resolves when it
    /// has stopped.
    async fn finish(&self) {
        self.shared.finish().await
    }
}
