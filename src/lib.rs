//! Zero-downtime restarts and graceful shutdown for socket servers.
//!
//! A server built on handoff can be replaced by a new build of itself without
//! refusing, resetting or failing a client request:
//!
//! 1. The running process (generation N) gets a restart request: SIGHUP or
//!    SIGUSR2, or [`Handle::restart`].
//! 2. It starts the executable path it was started from, with the same
//!    arguments, and passes every listening socket to it (systemd's
//!    `LISTEN_FDS` format, see `docs/PROTOCOL.md`).
//! 3. The new process takes the inherited sockets from its [`Handoff`]
//!    (never binding them again), builds its app, and says it is ready.
//! 4. Only then does N stop accepting. The kernel's accept queue is shared, so
//!    nothing queued is lost. N closes idle connections, lets in-flight work
//!    finish (see [`Drainable`]), and exits, or aborts what remains at the stop
//!    timeout and exits at the kill timeout.
//! 5. If the new process fails to start, exits, or hangs past the ready
//!    timeout, N kills and reaps it, serves on, and reports the error. If it
//!    dies after it said ready while N still drains, N takes its listeners
//!    back and serves on (connections queued meanwhile included).
//!
//! SIGTERM and SIGINT drain the same way without a successor.
//!
//! The pid file is safe in a directory other users may write, a fresh Unix
//! listener's file can be given a mode, owner and group ([`UnixOptions`]), and
//! every input from the environment and the handover channel is bounded and
//! checked: see `docs/SECURITY.md`.
//!
//! The core is runtime-neutral: a runtime adapter supplies a timer and a
//! signal stream ([`Runtime`]) and implements [`InheritedListener`] for its
//! listener types. Adapters are behind features:
//!
//! - `tokio`: tokio's listeners, signals and timers (`handoff::tokio::Tokio`);
//! - `smol`: async-io's and smol's listeners, async-io timers, async-signal
//!   signals (`handoff::smol::Smol`);
//! - `async-std`: async-std's listeners on the same timers and signals
//!   (`handoff::async_std::AsyncStd`; async-std is discontinued upstream);
//! - `hyper`: HTTP/1.1 and HTTP/2 servers on hyper 1, tower services too
//!   (axum), draining per connection, on any of these runtimes;
//! - `actix`: actix-web apps on handoff's listeners, drained through actix's
//!   server handle;
//! - `tls`: rustls (ring provider) configuration from PEM files, read again by
//!   every generation;
//! - `metrics`: the metrics below, through the `metrics` facade.
//!
//! Linux only: successors are watched through pidfds.
//!
//! # Metrics and readiness
//!
//! [`Handle::state`] says what this generation is doing: [`State::is_ready`]
//! while serving or restarting, unready from the moment a shutdown begins.
//! Serve it as a readiness endpoint (`/readyz`) for a load balancer or a
//! Kubernetes readinessProbe. [`Builder::shutdown_delay`] keeps a generation
//! told to shut down accepting and serving, unready, for that long before it
//! drains, while load balancers and Kubernetes' endpoint removal catch up; the
//! stop and kill timeouts start after it. [`Handle::generation`] counts the
//! processes: 1 for the first, one more per successor.
//!
//! With the `metrics` feature, handoff records these through the
//! [`metrics`](https://docs.rs/metrics) facade. It installs no exporter:
//! install a recorder **before** [`Builder::build`] or [`Builder::launch`]
//! (and so before [`Handoff::new`]), which take the metric handles; a recorder
//! installed later sees nothing from handoff.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `handoff_generation` | gauge | this process's generation ([`Handle::generation`]) |
//! | `handoff_ready` | gauge | 1 while serving or restarting, 0 once shutting down (the delay included) or draining ([`State::is_ready`]) |
//! | `handoff_restarts_total{result="ok"/"failed"}` | counter | the service's restart attempts, by result |
//! | `handoff_restart_duration_seconds{result}` | histogram | from the restart request (signal or handle) to the successor's ready, or to the failure; measured where the restart ran (the old generation, or the supervisor), recorded by the generation that serves after it |
//! | `handoff_successors_lost_total` | counter | successors that died after ready while their parent drained; it took its listeners back (re-exec mode) |
//! | `handoff_connections_in_flight` | gauge | connections open |
//! | `handoff_requests_in_flight` | gauge | requests being answered (the HTTP adapters) |
//! | `handoff_connections_drained_total` | counter | connections that ended on their own during a drain |
//! | `handoff_connections_closed_idle_total` | counter | idle connections a drain closed |
//! | `handoff_connections_hammered_total` | counter | connections aborted at the stop timeout |
//!
//! Each generation is its own process with its own recorder, and a scrape
//! reaches the generation that accepts it; the old one has stopped accepting
//! by the time its drain is counted. So the counters are the service's, not
//! one process's: a successor starts from its parent's counts (the restart
//! that made it counted ok), and the parent sends it what its drain counted
//! just before it exits; a supervisor keeps the service's counts, gathers
//! its workers' drain counts and passes them to the worker that serves. After
//! five restarts and a failed one, the serving generation says
//! `handoff_generation 6`, `handoff_restarts_total{result="ok"} 5` and
//! `{result="failed"} 1`, in either mode. Gauges are the process's own; the
//! restart duration histogram holds the restarts this generation saw end:
//! the one that made it, and those that failed while it served.
//!
//! ```no_run
//! use std::time::Duration;
//! use metrics_exporter_prometheus::PrometheusBuilder;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let prometheus = PrometheusBuilder::new().install_recorder()?; // first
//! let handoff = handoff::Handoff::builder()
//!     .shutdown_delay(Duration::from_secs(5))
//!     .build()?;
//! let handle = handoff.handle();
//! let readyz = move || match handle.is_ready() {
//!     true => (200, format!("ready generation={}\n", handle.generation())),
//!     false => (503, format!("unready {}\n", handle.state())),
//! };
//! // ... serve readyz() on GET /readyz and prometheus.render() on GET /metrics,
//! // then handoff.run(...)
//! # Ok(()) }
//! ```
//!
//! Kubernetes, with a readinessProbe on `/readyz`, the shutdown delay and the
//! grace period worked out: `docs/deploy/kubernetes/README.md` in the
//! repository (other deployments: `docs/deploy/README.md`).

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod accept;
mod drain;
mod driver;
mod error;
#[cfg(test)]
mod fuzz;
mod handle;
mod handoff;
mod host;
mod inherited;
mod latch;
mod listener;
pub mod machine;
mod notify;
mod pidfile;
pub mod protocol;
mod registry;
mod runtime;
mod signals;
mod socket;
mod spawn;
mod state;
pub mod supervisor;
mod sys;
mod telemetry;
mod unix_socket;

pub use accept::Accept;
pub use drain::{Accepting, DrainGroup, DrainSignal, Drainable, Draining, Tracked};
pub use error::{Error, Result};
pub use handle::Handle;
pub use handoff::{Builder, Handoff};
pub use listener::InheritedListener;
pub use machine::{ExitReason, Timeouts};
pub use registry::Listeners;
pub use runtime::{Runtime, Signal};
pub use socket::{Address, SocketKind};
pub use state::State;
pub use supervisor::{Launch, SupervisorExit};
pub use unix_socket::UnixOptions;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[path = "../adapters/tokio.rs"]
pub mod tokio;

#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
#[path = "../adapters/smol.rs"]
pub mod smol;

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
#[path = "../adapters/async_std.rs"]
pub mod async_std;

#[cfg(any(feature = "smol", feature = "async-std"))]
#[path = "../adapters/reactor.rs"]
mod reactor;

#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
#[path = "../adapters/hyper/mod.rs"]
pub mod hyper;

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[path = "../adapters/tls.rs"]
pub mod tls;

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
#[path = "../adapters/actix/mod.rs"]
pub mod actix;

/// The examples of `README.md`, compiled as doctests.
#[cfg(all(
    doctest,
    feature = "tokio",
    feature = "smol",
    feature = "hyper",
    feature = "actix",
    feature = "metrics"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
