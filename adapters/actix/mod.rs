//! actix-web apps on handoff's listeners, restarted without failing a request.
//!
//! actix-web in five lines:
//!
//! ```no_run
//! use actix_web::{App, web};
//!
//! fn main() -> Result<(), handoff::Error> {
//!     let handoff = handoff::Handoff::new()?; // first, before any thread starts
//!     actix_web::rt::System::new().block_on(handoff::actix::serve(
//!         handoff,
//!         [("http", "127.0.0.1:8080")],
//!         || App::new().route("/", web::get().to(|| async { "hello\n" })),
//!     ))?;
//!     Ok(())
//! }
//! ```
//!
//! Each `(name, address)` is inherited from the previous generation or bound
//! fresh (see [`Listeners`](crate::Listeners)); addresses are TCP
//! (`127.0.0.1:8080`). Each listener serves HTTP/1.1; HTTP/2 with prior
//! knowledge too with [`Server::h2c`]; HTTPS (HTTP/2 or HTTP/1.1 by ALPN)
//! with [`Server::tls`] and the `tls` feature. actix's own signal handling
//! is off: SIGHUP restarts into the new build, SIGTERM shuts down, and
//! either way this generation drains:
//!
//! - actix's accept loop pauses (the successor accepts from the same socket);
//! - responses sent from then on carry `Connection: close`, so keep-alive
//!   clients reconnect, to the new generation, after their current request;
//! - a connection with no request in flight that has been idle for longer
//!   than the [idle grace](Server::idle_grace) (1 s) closes at once, rather
//!   than at actix's keep-alive timeout; one active more recently closes
//!   when its grace is up, unless its next request came first;
//! - handlers of long-lived responses learn that draining started through
//!   the [`Draining`] extractor;
//! - once no connection is open, actix stops and the process exits; at the
//!   stop timeout actix is stopped at once (the hammer), which drops what
//!   remains.
//!
//! A request body the app leaves unread (a handler that ignores it, a 404
//! or 405) does not cost the connection: after the app's response, up to
//! 256 KiB of what is left is read and discarded, for at most 1 s, before
//! the response goes out; beyond that the response says `Connection:
//! close` (actix itself would close the connection without saying so, and a
//! client that never retries would see its next request fail). A connection
//! that closes with bytes from the client unread, or bytes to it not
//! acknowledged, lingers (reading and discarding, at most 1 s) so that the
//! kernel does not reset it under a response; one with neither closes at
//! once, so clients that never close their side do not hold the generation.
//!
//! [`Server`] keeps the `HttpServer` in your hands: worker count, keep-alive,
//! request timeouts and limits are set on it as usual.
//!
//! # Limits
//!
//! These come from actix itself (actix-web 4, actix-http 3):
//!
//! - HTTP/2 drains without GOAWAY. actix-http's HTTP/2 dispatcher owns the
//!   `h2` connection privately and never calls its `graceful_shutdown`, and
//!   its constructor is not public, so nothing outside actix can send
//!   GOAWAY. An HTTP/2 connection is closed like an idle HTTP/1.1 one, once
//!   no stream has been in flight for the idle grace: a stream the client
//!   opens as it is closed is lost, and a client that keeps a stream in
//!   flight at all times holds the connection until the hammer. HTTP/2
//!   clients that must never lose a request should use
//!   `handoff::hyper`, which sends GOAWAY.
//! - With [h2c](Server::h2c), actix waits (with no timeout) for a
//!   connection's first bytes to tell HTTP/2 from HTTP/1.1 before the
//!   connection is visible to handoff; with TLS, for the handshake. Such
//!   connections are closed when actix stops, about one idle grace (whole
//!   seconds, at least 1 s) after every other connection is done. h2c is
//!   off by default so that a connection that has not sent a byte closes
//!   at once when it has been idle for the grace.
//! - TCP only: actix-server deletes a Unix socket's path whenever it stops
//!   accepting on it, which would take the socket from the next generation;
//!   `handoff::hyper` serves both.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer};

use crate::{ExitReason, Handoff, Result};

mod body;
mod connections;
mod drain;
mod draining;
mod request_body;
mod server;
mod service;

pub use crate::Draining;
pub use body::TrackedBody;
pub use server::Server;
pub use service::{DrainFactory, DrainService, DrainingApp};

/// Serves the app that `factory` builds (once per actix worker) on every
/// `(name, address)` pair with a default [`Server`] and actix's default
/// `HttpServer` settings, then runs `handoff` until this generation is done:
/// restarts on SIGHUP or SIGUSR2, graceful shutdown on SIGTERM or SIGINT.
///
/// Must be called within the actix (or a tokio) runtime. See the
/// [module documentation](self) for an example, and [`Server`] to configure
/// the `HttpServer`.
pub async fn serve<L, N, A, F, T, B>(
    handoff: Handoff,
    listeners: L,
    factory: F,
) -> Result<ExitReason>
where
    L: IntoIterator<Item = (N, A)>,
    N: AsRef<str>,
    A: AsRef<str>,
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
    let server = Server::new();
    let http = HttpServer::new(server.app(factory));
    server.serve(handoff, http, listeners).await
}
