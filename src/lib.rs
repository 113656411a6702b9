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
//! - `tls`: rustls (ring provider) configuration from PEM files, read again by
//!   every generation.
//!
//! Linux only: successors are watched through pidfds.

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
mod sys;
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
