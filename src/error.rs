//! The one error type of the crate.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in handoff.
///
/// Each variant names the input that caused it: the environment variable, the
/// file descriptor, the listener name, the path. `Error` is `Clone` (I/O causes
/// are shared behind an [`Arc`]) so one failed restart can be reported to every
/// caller that was waiting for it, and converts into [`std::io::Error`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable of the handover protocol holds a value that
    /// cannot be used.
    #[error("{var}={value:?} is invalid: {reason}")]
    InvalidEnv {
        /// The variable, e.g. `LISTEN_FDS`.
        var: &'static str,
        /// The value found.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// An inherited file descriptor is not what it claims to be.
    #[error("inherited fd {fd} (name {name:?}) is unusable: {reason}")]
    InvalidFd {
        /// The descriptor number.
        fd: i32,
        /// The name it was passed under.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A listener name cannot be used in `LISTEN_FDNAMES`.
    #[error("listener name {name:?} is invalid: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },

    /// An address string could not be parsed.
    #[error("address {input:?} is invalid: {reason}")]
    InvalidAddress {
        /// The text given.
        input: String,
        /// Why it is rejected.
        reason: String,
    },

    /// The same listener name was claimed twice in one generation.
    #[error("listener name {name:?} is already in use in this process")]
    DuplicateName {
        /// The name claimed twice.
        name: String,
    },

    /// A fresh socket could not be created, configured, bound or listened on.
    #[error("cannot bind listener {name:?} to {address}: {source}")]
    Bind {
        /// The listener name.
        name: String,
        /// The address it was to be bound to.
        address: String,
        /// The cause.
        #[source]
        source: Arc<io::Error>,
    },

    /// The handover channel to the parent or successor failed.
    #[error("handover channel: {context}: {source}")]
    Channel {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: Arc<io::Error>,
    },

    /// The successor could not be started.
    #[error("cannot start successor {path}: {source}")]
    Spawn {
        /// The executable path.
        path: PathBuf,
        /// The cause (missing file, permission denied, ...).
        #[source]
        source: Arc<io::Error>,
    },

    /// The hook that runs before spawning refused the restart.
    #[error("before-spawn hook failed: {0}")]
    Hook(String),

    /// The successor exited before it said it was ready.
    #[error("successor pid {pid} exited before it was ready ({status})")]
    SuccessorExited {
        /// Its pid.
        pid: u32,
        /// How it ended, e.g. `exit status 1` or `killed by signal 9`.
        status: String,
    },

    /// The successor exited after it said it was ready, while this generation
    /// was still draining: this generation took its listeners back and serves
    /// on.
    #[error(
        "successor pid {pid} exited after it was ready ({status}); \
         this generation took the listeners back"
    )]
    SuccessorLost {
        /// Its pid.
        pid: u32,
        /// How it ended, e.g. `exit status 1` or `killed by signal 9`.
        status: String,
    },

    /// The successor did not say it was ready within the ready timeout.
    #[error("successor pid {pid} was not ready within {timeout:?}; it was killed")]
    ReadyTimeout {
        /// Its pid.
        pid: u32,
        /// The ready timeout in force.
        timeout: std::time::Duration,
    },

    /// A restart was requested while this generation is draining; it no longer
    /// accepts and cannot start a successor.
    #[error("cannot restart: this generation is shutting down")]
    ShuttingDown,

    /// A restart was requested of a generation that has already handed over.
    #[error("cannot restart: already handed over to pid {successor}")]
    HandedOver {
        /// The pid of the generation that now accepts.
        successor: u32,
    },

    /// A TLS certificate or key file cannot be used.
    #[error("TLS {what} {path}: {reason}")]
    Tls {
        /// What the file holds: `certificate`, `private key`, or both.
        what: &'static str,
        /// The file (for a mismatch, the certificate file; the reason names the key).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The driver is gone (its `run` future was dropped or finished).
    #[error("the handoff driver is not running")]
    DriverGone,

    /// A signal could not be installed or a runtime facility failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: Arc<io::Error>,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn channel(context: &'static str, source: io::Error) -> Self {
        Error::Channel {
            context,
            source: Arc::new(source),
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::InvalidEnv { .. }
            | Error::InvalidFd { .. }
            | Error::InvalidName { .. }
            | Error::InvalidAddress { .. }
            | Error::DuplicateName { .. } => io::ErrorKind::InvalidInput,
            Error::Tls { .. } => io::ErrorKind::InvalidData,
            Error::Bind { source, .. }
            | Error::Channel { source, .. }
            | Error::Spawn { source, .. }
            | Error::Io { source, .. } => source.kind(),
            Error::ReadyTimeout { .. } => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
