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
//! (`127.0.0.1:8080`). actix's own signal handling is off: SIGHUP restarts
//! into the new build, SIGTERM shuts down, and either way this generation
//! drains:
//!
//! - actix's accept loop pauses (the successor accepts from the same socket);
//! - responses sent from then on carry `Connection: close`, so keep-alive
//!   clients reconnect, to the new generation, after their current request;
//! - connections with no request in flight close once they have been idle
//!   for the [idle grace](Server::idle_grace) (1 s), rather than at actix's
//!   keep-alive timeout;
//! - handlers of long-lived responses learn that draining started through
//!   the [`Draining`] extractor;
//! - once no connection is open, actix stops and the process exits; at the
//!   stop timeout actix is stopped at once (the hammer), which drops what
//!   remains.
//!
//! [`Server`] keeps the `HttpServer` in your hands: worker count, keep-alive,
//! request timeouts and limits are set on it as usual.
//!
//! Limits, from actix itself: HTTP/1.1 only (actix serves cleartext HTTP/2
//! only with its `http2` feature, and has no GOAWAY to drain it with); TCP
//! only (actix-server deletes a Unix socket's path whenever it stops
//! accepting on it, which would take the socket from the next generation;
//! `handoff::hyper` serves both).

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

pub use body::TrackedBody;
pub use draining::Draining;
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
