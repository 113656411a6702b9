//! What the driver needs from an async runtime: a timer and a signal stream.
//!
//! Runtime adapters (`handoff::tokio`, ...) implement [`Runtime`]; nothing
//! else in the core knows which runtime runs it. Child processes and the
//! parent's liveness are watched on plain threads, so they need no runtime
//! support.

use std::fmt;
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::error::Result;

/// A Unix signal the driver can react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// SIGHUP: restart, by default.
    Hup,
    /// SIGINT: graceful shutdown, by default.
    Int,
    /// SIGQUIT.
    Quit,
    /// SIGTERM: graceful shutdown, by default.
    Term,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2: restart, by default.
    Usr2,
}

impl Signal {
    /// The signal number.
    pub fn as_raw(self) -> i32 {
        match self {
            Signal::Hup => libc::SIGHUP,
            Signal::Int => libc::SIGINT,
            Signal::Quit => libc::SIGQUIT,
            Signal::Term => libc::SIGTERM,
            Signal::Usr1 => libc::SIGUSR1,
            Signal::Usr2 => libc::SIGUSR2,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Quit => "SIGQUIT",
            Signal::Term => "SIGTERM",
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
        })
    }
}

/// The runtime services the restart driver uses.
pub trait Runtime: Send + Sync + 'static {
    /// A future that resolves at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;

    /// A stream that yields each of `signals` as it arrives. Called once, when
    /// the driver starts; installing the handlers must not lose a signal that
    /// arrives right after this returns.
    fn signals(&self, signals: &[Signal]) -> Result<BoxStream<'static, Signal>>;
}
