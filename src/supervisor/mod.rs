//! Supervisor mode: one process with a stable pid holds the listening
//! sockets for the life of the service and runs each generation as its child
//! (a *worker*), through the same handover.
//!
//! Ask for it with [`Builder::supervise`](crate::Builder::supervise) and
//! start with [`Builder::launch`](crate::Builder::launch): in the process you
//! started, `launch()` runs the supervisor until the service stops and
//! returns [`Launch::Supervised`] with its exit status (the supervisor never
//! runs application code); in each worker it returns [`Launch::Worker`] with
//! the [`Handoff`](crate::Handoff) to serve with, as `build()` would.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # fn main() -> std::process::ExitCode {
//! use handoff::{Handoff, Launch};
//!
//! let handoff = match Handoff::builder().supervise(true).launch() {
//!     Ok(Launch::Worker(handoff)) => handoff,
//!     Ok(Launch::Supervised(exit)) => return exit.exit_code(),
//!     Err(e) => {
//!         eprintln!("{e}");
//!         return std::process::ExitCode::FAILURE;
//!     }
//! };
//! // ... listen, serve, handoff.run(...) as without a supervisor
//! # drop(handoff);
//! # std::process::ExitCode::SUCCESS
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! The supervisor:
//! - binds nothing itself: the first worker binds (or gets systemd's
//!   sockets, which the supervisor inherits) and hands its listeners up when
//!   it is ready; the supervisor keeps them open and passes them to every
//!   later worker;
//! - restarts on SIGHUP or SIGUSR2, or when a worker asks
//!   ([`Handle::restart`](crate::Handle::restart) in a worker): a new worker
//!   starts from the same executable path and arguments, and once it is ready
//!   the old one drains; one restart at a time; a failure rolls back, and a
//!   new worker that dies after ready while the old one drains hands the
//!   listeners back to it;
//! - replaces a worker that dies, with backoff; connections wait in the
//!   kernel's accept queue meanwhile; a crash loop is bounded and reported;
//! - on SIGTERM or SIGINT, drains the worker within the stop and kill
//!   timeouts and exits 0 if it drained cleanly, 1 otherwise;
//! - reaps every child and orphan (child subreaper, PID 1 of a container),
//!   and forwards SIGUSR1, SIGQUIT and SIGWINCH to the serving worker;
//! - is the main pid for systemd (`READY`, `RELOADING`, `STOPPING`, `STATUS`
//!   come from it) and the pid in the pid file.

pub(crate) mod link;
pub mod machine;
mod process;
pub(crate) mod wire;

pub(crate) use process::{Config, run};

/// What [`Builder::launch`](crate::Builder::launch) made of this process.
#[derive(Debug)]
#[must_use]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per process, and a Handoff moved out of it at once"
)]
pub enum Launch {
    /// This process serves: a worker under a supervisor, or a generation of
    /// its own when supervision was not asked for.
    Worker(crate::Handoff),
    /// This process was the supervisor; the service has stopped.
    Supervised(SupervisorExit),
}

/// How the supervisor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorExit {
    code: u8,
    reason: Option<String>,
}

impl SupervisorExit {
    pub(crate) fn new(code: u8, reason: Option<String>) -> Self {
        SupervisorExit { code, reason }
    }

    /// Why the supervisor failed (a worker binary that cannot be started, a
    /// crash loop), if it did.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The exit status: 0 if the last worker drained and exited cleanly.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// Whether the service stopped cleanly.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// The status for `main` to return.
    pub fn exit_code(&self) -> std::process::ExitCode {
        std::process::ExitCode::from(self.code)
    }
}
