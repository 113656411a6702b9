//! The supervisor's state machine: sans-IO, with time passed in, like the
//! generation's machine (`crate::machine`).
//!
//! The supervisor holds the listening sockets for the life of the service and
//! runs each generation as its child (a *worker*). It decides:
//! - **Start:** spawn the first worker. Once it is ready: write the pid file
//!   (naming the supervisor), tell the service manager `MAINPID=<supervisor>`
//!   `READY=1` and a STATUS line.
//! - **Restart** (a signal to the supervisor, or a worker asking): one at a
//!   time (requests meanwhile are coalesced and share the result): `RELOADING`
//!   (with `MONOTONIC_USEC`, added by the host), spawn the next worker; once it
//!   is ready, tell the current one to drain, `READY=1` and STATUS, answer the
//!   requests with its pid. If it fails before ready (spawn error, exit, ready
//!   timeout: kill it), the current worker serves on: answer with the error,
//!   `READY=1`, STATUS.
//! - **Failure after ready:** if the new worker dies while the previous one
//!   still drains, tell the previous one to resume: it is the current worker
//!   again (STATUS, report).
//! - **A worker that dies unexpectedly** (the current one, with nothing to
//!   take back) is replaced after a backoff: 100 ms, doubling up to 10 s,
//!   reset once a worker has been ready for 10 s. Connections wait in the
//!   kernel's accept queue meanwhile (the supervisor holds the sockets). After
//!   [`CRASH_LOOP`] consecutive workers that exited before they were ready,
//!   the supervisor gives up: it exits with a failure status (STATUS says so).
//! - **Shutdown** (SIGTERM or SIGINT to the supervisor): `STOPPING=1`, tell
//!   every worker to drain, kill a worker that is starting; at stop + kill +
//!   [`KILL_MARGIN`] kill whatever is left; once every worker has exited,
//!   remove the pid file and exit: status 0 if every worker drained and exited
//!   with status 0, 1 otherwise.
//! - A worker's exit is reported by its watcher after it was reaped; a
//!   draining worker's exit needs nothing more.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::machine::{Notify, Timeouts};

/// Consecutive workers that exit before they are ready after which the
/// supervisor gives up.
pub const CRASH_LOOP: u32 = 10;
/// How long after stop + kill timeout a draining worker is killed.
pub const KILL_MARGIN: Duration = Duration::from_secs(1);
/// The first backoff before replacing a worker that died.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a worker must have been ready for the backoff to start over.
pub const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// Something that happened to the supervisor.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The supervisor runs: the first event.
    Started,
    /// A restart was asked for: a signal to the supervisor, or a worker.
    RestartRequested,
    /// A shutdown was asked for.
    ShutdownRequested,
    /// A worker was started.
    WorkerSpawned {
        /// Its pid.
        pid: u32,
    },
    /// A worker could not be started.
    SpawnFailed(Error),
    /// A worker said it accepts (and handed its listeners up).
    WorkerReady {
        /// Its pid.
        pid: u32,
    },
    /// A worker exited and was reaped.
    WorkerExited {
        /// Its pid.
        pid: u32,
        /// How it ended, e.g. `exit status 0`.
        status: String,
        /// Whether it exited with status 0.
        success: bool,
    },
    /// The deadline returned by [`Machine::deadline`] passed.
    Tick,
}

/// Something the supervisor must do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Action {
    /// Start a worker with the listeners held; report
    /// [`Event::WorkerSpawned`] or [`Event::SpawnFailed`].
    Spawn,
    /// Tell worker `pid` to stop accepting and drain (`successor`: the worker
    /// that took over, none on shutdown).
    Drain {
        /// The worker.
        pid: u32,
        /// Who took over.
        successor: Option<u32>,
    },
    /// Tell worker `pid` to accept again: its successor died after ready.
    Resume {
        /// The worker.
        pid: u32,
    },
    /// Kill worker `pid` with SIGKILL (reported later as exited).
    Kill {
        /// The worker.
        pid: u32,
    },
    /// Tell the service manager.
    Notify(Notify),
    /// Write the supervisor's pid to the pid file.
    WritePidFile,
    /// Remove the pid file.
    RemovePidFile,
    /// Answer every pending restart request.
    RestartDone(Result<u32, Error>),
    /// Report something worth a log line at warning level or above (a worker
    /// replaced, a successor lost, a crash loop).
    Report(String),
    /// Exit the supervisor with this status.
    Exit(u8),
}

impl Action {
    /// The action's name, without its data.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Spawn => "Spawn",
            Action::Drain { .. } => "Drain",
            Action::Resume { .. } => "Resume",
            Action::Kill { .. } => "Kill",
            Action::Notify(_) => "Notify",
            Action::WritePidFile => "WritePidFile",
            Action::RemovePidFile => "RemovePidFile",
            Action::RestartDone(_) => "RestartDone",
            Action::Report(_) => "Report",
            Action::Exit(_) => "Exit",
        }
    }
}

/// The supervisor's state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    timeouts: Timeouts,
    pid: u32,
    // TODO(helper): state
}

impl Machine {
    /// The machine of supervisor `pid`, before [`Event::Started`].
    pub fn new(timeouts: Timeouts, pid: u32) -> Self {
        let _ = (timeouts, pid);
        todo!()
    }

    /// Feeds one event at `now`; the actions to carry out, in order.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let _ = (event, now);
        todo!()
    }

    /// When the next [`Event::Tick`] is due, if any.
    pub fn deadline(&self) -> Option<Instant> {
        todo!()
    }

    /// The worker that serves (ready and not draining), if any.
    pub fn current(&self) -> Option<u32> {
        todo!()
    }

    /// Whether [`Action::Exit`] was said.
    pub fn has_exited(&self) -> bool {
        todo!()
    }
}
