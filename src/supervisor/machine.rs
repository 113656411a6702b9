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
//!   still drains, tell the previous one to resume; once it says it accepts
//!   ([`Event::WorkerResumed`]) it is the current worker again (`READY=1`,
//!   STATUS, report).
//! - **A worker that dies unexpectedly** (the current one, with nothing to
//!   take back) is replaced after a backoff: 100 ms, doubling up to 10 s,
//!   reset once a worker has been ready for 10 s. Connections wait in the
//!   kernel's accept queue meanwhile (the supervisor holds the sockets). After
//!   [`CRASH_LOOP`] consecutive workers that exited before they were ready,
//!   the supervisor gives up: it exits with a failure status (STATUS says so).
//! - **Shutdown** (SIGTERM or SIGINT to the supervisor): `STOPPING=1`, tell
//!   every worker to drain, a worker that is still starting too; at stop +
//!   kill + [`KILL_MARGIN`] kill whatever is left; once every worker has exited,
//!   remove the pid file and exit: status 0 if every worker drained and exited
//!   with status 0, 1 otherwise.
//! - A worker's exit is reported by its watcher after it was reaped; a
//!   draining worker's exit needs nothing more.
//!
//! Where the rules above are silent, it decides:
//! - **The first worker** is started at [`Event::Started`]. If it cannot be
//!   spawned at all ([`Event::SpawnFailed`] before any worker was ever ready:
//!   a missing or non-executable binary), the supervisor reports the error
//!   and exits with status 1 at once: waiting would not help. If it exits or
//!   times out before it is ready, it is replaced after a backoff and counts
//!   towards [`CRASH_LOOP`], like any worker that fails with nothing serving.
//! - **Restart requests** made before [`Event::Started`], while a worker
//!   starts, or during a backoff join the worker on its way: they are answered
//!   once, when it is ready (`Ok(pid)`) or fails (the error). A restart asked
//!   while shutting down is answered [`Error::ShuttingDown`] at once; the
//!   pending one is answered so when the shutdown begins. A worker started
//!   without a request (the first one, a replacement) reports its failure
//!   with [`Action::Report`] instead.
//! - **The crash-loop count** is of consecutive workers that failed before
//!   ready while no worker served; a restart that fails while the current
//!   worker serves on does not count (the service is up). Any ready worker
//!   resets it.
//! - **`Notify::Ready`** (naming the supervisor) is said whenever a worker
//!   becomes the serving one (first, restarted, replacement, taken back) and
//!   after a restart that failed; the pid file is written once, at the first
//!   ready.
//! - **Take-back**: when the serving worker dies, the most recently drained
//!   worker that still drains (and was not killed) is told to resume,
//!   whatever it was drained for; only with none is the worker replaced after
//!   a backoff. Nothing serves until it answers. If it exits first (it had
//!   finished draining and was on its way out) or has not answered within
//!   [`TAKE_BACK_WAIT`], the dead worker is replaced after a backoff; an
//!   answer after that, or after another worker became ready, drains it
//!   again. A restart on its way meanwhile goes on and, once ready, drains
//!   the one taken back.
//! - **Draining workers** are killed at stop + kill + [`KILL_MARGIN`] after
//!   their drain, or at the shutdown's deadline if that is earlier.
//! - **The exit status** reflects the shutdown: 0 if a worker had been ready,
//!   no draining worker had to be killed, and every worker that drained
//!   exited with status 0; 1 otherwise, and 1 when the supervisor gave up. A
//!   worker that was still starting when the shutdown came is told to drain
//!   like the others (it may already accept: its server runs before it says
//!   ready, and what it took is served), but how it ends does not count, not
//!   even a kill at the deadline: it never served as the service, and a stop
//!   right after a reload is no failure of the service (systemd would mark
//!   the unit failed).
//!   Failures before the shutdown (a crash that was replaced, a successor
//!   killed at its ready timeout) are reported when they happen, not in the
//!   status.
//! - Events that fit no state (a pid it does not know, a ready from a worker
//!   it killed, a second shutdown, a stray spawn answer) change nothing;
//!   after [`Action::Exit`] every event is ignored.

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
/// How long a draining worker told to accept again ([`Action::Resume`]) has
/// to say it does before the supervisor starts a replacement instead.
pub const TAKE_BACK_WAIT: Duration = Duration::from_secs(1);
/// How long a worker told to drain for its successor has to say it stopped
/// accepting ([`Event::WorkerDraining`]) before the supervisor reports the
/// restart done anyway.
pub const DRAIN_WAIT: Duration = Duration::from_secs(1);

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
    /// A draining worker told to accept again ([`Action::Resume`]) said it
    /// does.
    WorkerResumed {
        /// Its pid.
        pid: u32,
    },
    /// A worker told to drain ([`Action::Drain`]) said it stopped accepting.
    WorkerDraining {
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
    /// It serves once it says so ([`Event::WorkerResumed`]).
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
    /// A restart's new worker died after it was ready and the worker it
    /// replaced took the listeners back: counted
    /// (`handoff_successors_lost_total`), after its [`Action::Report`].
    SuccessorLost {
        /// The worker that died.
        pid: u32,
    },
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
            Action::SuccessorLost { .. } => "SuccessorLost",
            Action::Exit(_) => "Exit",
        }
    }
}

/// How long a worker told to drain has before it is killed.
fn drain_bound(timeouts: Timeouts) -> Duration {
    timeouts.stop + timeouts.kill + KILL_MARGIN
}

#[derive(Debug, Clone)]
enum Phase {
    /// Before [`Event::Started`].
    Idle,
    /// A worker serves, or one is being started to serve.
    Running,
    /// Every worker was told to drain (or killed); waiting for their exits.
    ShuttingDown,
    /// [`Action::Exit`] was said.
    Exited,
}

/// The worker being started, if any: at most one at a time.
#[derive(Debug, Clone)]
enum Starting {
    No,
    /// Waiting out a backoff before replacing a worker that failed.
    Backoff {
        at: Instant,
    },
    /// [`Action::Spawn`] was said; its answer is not in yet.
    Spawning,
    AwaitingReady {
        pid: u32,
        deadline: Instant,
    },
    /// Killed at the ready timeout: its exit ends the attempt with `error`.
    Killing {
        pid: u32,
        error: Error,
    },
}

/// The worker that serves.
#[derive(Debug, Clone, Copy)]
struct Serving {
    pid: u32,
    /// When it said ready (for the backoff reset).
    since: Instant,
}

/// A worker told to drain (or killed), until its exit is reported.
#[derive(Debug, Clone, Copy)]
struct Leaving {
    pid: u32,
    /// When it said ready, if it did (a take-back keeps it).
    since: Instant,
    /// When it is killed if it has not exited.
    kill_at: Instant,
    killed: bool,
    /// A worker that was starting when the shutdown came and was stopped
    /// for it: its exit says nothing about how the service stopped.
    spared: bool,
}

/// A draining worker told to accept again because the worker that served
/// died, until it says it does, exits, or [`TAKE_BACK_WAIT`] passes.
#[derive(Debug, Clone)]
struct TakeBack {
    worker: Leaving,
    /// The worker that died, and how.
    lost: u32,
    status: String,
    deadline: Instant,
}

/// A restart whose new worker is ready, until the worker it replaces says it
/// stopped accepting (or exits, or [`DRAIN_WAIT`] passes): then the restart is
/// reported done, and systemd told `READY=1`.
#[derive(Debug, Clone)]
struct Handover {
    old: u32,
    new: u32,
    /// A restart request waits for this one's answer.
    asked: bool,
    status: String,
    deadline: Instant,
}

/// The supervisor's state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    timeouts: Timeouts,
    pid: u32,
    phase: Phase,
    current: Option<Serving>,
    starting: Starting,
    leaving: Vec<Leaving>,
    taking_back: Option<TakeBack>,
    handover: Option<Handover>,
    /// A restart request waits for its answer.
    restart_asked: bool,
    ever_ready: bool,
    /// Consecutive workers that failed before ready with no worker serving.
    failed_starts: u32,
    /// The next backoff.
    backoff: Duration,
    /// The exit status will be 1: a kill or a failed exit during shutdown,
    /// or the supervisor gave up.
    failed: bool,
    /// Workers wait out the shutdown delay; a second shutdown request ends it.
    delaying: bool,
}

impl Machine {
    /// The machine of supervisor `pid`, before [`Event::Started`].
    pub fn new(timeouts: Timeouts, pid: u32) -> Self {
        Machine {
            timeouts,
            pid,
            phase: Phase::Idle,
            current: None,
            starting: Starting::No,
            leaving: Vec::new(),
            taking_back: None,
            handover: None,
            restart_asked: false,
            ever_ready: false,
            failed_starts: 0,
            backoff: BACKOFF_MIN,
            failed: false,
            delaying: false,
        }
    }

    /// Feeds one event at `now`; the actions to carry out, in order.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match (&self.phase, event) {
            (Phase::Exited, _) => {}
            (Phase::Idle, Event::Started) => self.on_started(&mut out),
            // A request before the start is answered by the first worker.
            (Phase::Idle, Event::RestartRequested) => self.restart_asked = true,
            (Phase::Idle, Event::ShutdownRequested) => {
                self.begin_shutdown("shutting down before start".into(), now, &mut out);
            }
            (Phase::Idle, _) | (_, Event::Started) => {}
            (_, Event::RestartRequested) => self.on_restart(&mut out),
            (Phase::Running, Event::ShutdownRequested) => {
                let status = "shutting down: workers drain".into();
                self.begin_shutdown(status, now, &mut out);
            }
            (Phase::ShuttingDown, Event::ShutdownRequested) if self.delaying => {
                self.end_delay(now, &mut out);
            }
            (_, Event::ShutdownRequested) => {}
            (_, Event::WorkerSpawned { pid }) => self.on_spawned(pid, now, &mut out),
            (_, Event::SpawnFailed(error)) => self.on_spawn_failed(error, now, &mut out),
            (_, Event::WorkerReady { pid }) => self.on_ready(pid, now, &mut out),
            (_, Event::WorkerResumed { pid }) => self.on_resumed(pid, &mut out),
            (_, Event::WorkerDraining { pid }) => {
                if self.handover.as_ref().is_some_and(|h| h.old == pid) {
                    self.complete_handover(&mut out);
                }
            }
            (
                _,
                Event::WorkerExited {
                    pid,
                    status,
                    success,
                },
            ) => self.on_exited(pid, status, success, now, &mut out),
            (_, Event::Tick) => self.on_tick(now, &mut out),
        }
        out
    }

    /// When the next [`Event::Tick`] is due, if any.
    pub fn deadline(&self) -> Option<Instant> {
        let starting = match (&self.phase, &self.starting) {
            (Phase::Running, Starting::Backoff { at }) => Some(*at),
            (Phase::Running, Starting::AwaitingReady { deadline, .. }) => Some(*deadline),
            _ => None,
        };
        let kills = self.leaving.iter().filter(|w| !w.killed).map(|w| w.kill_at);
        let take_back = self.taking_back.as_ref().map(|t| t.deadline);
        let handover = self.handover.as_ref().map(|h| h.deadline);
        starting
            .into_iter()
            .chain(take_back)
            .chain(handover)
            .chain(kills)
            .min()
    }

    /// The worker that serves (ready and not draining), if any.
    pub fn current(&self) -> Option<u32> {
        self.current.map(|w| w.pid)
    }

    /// The workers told to drain (or killed) that have not exited yet, oldest
    /// first.
    pub fn draining(&self) -> Vec<u32> {
        self.leaving.iter().map(|w| w.pid).collect()
    }

    /// The worker told to drain for a ready successor that has not said it
    /// stopped accepting yet, if any: until it does, the restart is not
    /// reported done.
    pub fn handing_over(&self) -> Option<u32> {
        self.handover.as_ref().map(|h| h.old)
    }

    /// Whether a restart request waits for its answer ([`Action::RestartDone`]).
    /// Right after [`Event::RestartRequested`], false means the request was
    /// refused at once (the supervisor is shutting down).
    pub fn restart_pending(&self) -> bool {
        self.restart_asked || self.handover.as_ref().is_some_and(|h| h.asked)
    }

    /// The draining worker told to accept again that has not said it does
    /// yet, if any.
    pub fn taking_back(&self) -> Option<u32> {
        self.taking_back.as_ref().map(|t| t.worker.pid)
    }

    /// Whether [`Action::Exit`] was said.
    pub fn has_exited(&self) -> bool {
        matches!(self.phase, Phase::Exited)
    }

    fn on_started(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Running;
        out.push(Action::Notify(Notify::Status("starting a worker".into())));
        self.spawn(out);
    }

    fn spawn(&mut self, out: &mut Vec<Action>) {
        self.starting = Starting::Spawning;
        out.push(Action::Spawn);
    }

    fn on_restart(&mut self, out: &mut Vec<Action>) {
        if !matches!(self.phase, Phase::Running) {
            out.push(Action::RestartDone(Err(Error::ShuttingDown)));
            return;
        }
        // A restart not yet reported done (the old worker has not said it
        // stopped accepting) is done as far as this request goes: its new
        // worker serves. This request wants another one.
        self.complete_handover(out);
        self.restart_asked = true;
        // A worker on its way (or due after a backoff) answers this request.
        if let Starting::No = self.starting {
            out.push(Action::Notify(Notify::Reloading));
            out.push(Action::Notify(Notify::Status(
                "restarting: starting a new worker".into(),
            )));
            self.spawn(out);
        }
    }

    fn on_spawned(&mut self, pid: u32, now: Instant, out: &mut Vec<Action>) {
        if !matches!(self.starting, Starting::Spawning) {
            return;
        }
        if let Phase::ShuttingDown = self.phase {
            self.starting = Starting::No;
            let kill_at = now + self.shutdown_bound();
            self.stop_starting(pid, now, kill_at, out);
            return;
        }
        self.starting = Starting::AwaitingReady {
            pid,
            deadline: now + self.timeouts.ready,
        };
    }

    fn on_spawn_failed(&mut self, error: Error, now: Instant, out: &mut Vec<Action>) {
        if !matches!(self.starting, Starting::Spawning) {
            return;
        }
        self.starting = Starting::No;
        match self.phase {
            Phase::Running => self.start_failed(error, true, now, out),
            _ => self.maybe_exit(out),
        }
    }

    fn on_ready(&mut self, pid: u32, now: Instant, out: &mut Vec<Action>) {
        match self.starting {
            Starting::AwaitingReady { pid: starting, .. } if starting == pid => {}
            _ => return,
        }
        self.starting = Starting::No;
        self.failed_starts = 0;
        let asked = std::mem::take(&mut self.restart_asked);
        let previous = self.current.replace(Serving { pid, since: now });
        if let Some(old) = previous {
            // Reported done once the old worker stopped accepting.
            out.push(Action::Drain {
                pid: old.pid,
                successor: Some(pid),
            });
            self.leaving.push(Leaving {
                pid: old.pid,
                since: old.since,
                kill_at: now + drain_bound(self.timeouts),
                killed: false,
                spared: false,
            });
            // A handover still waiting is overtaken: reported done now.
            self.complete_handover(out);
            self.handover = Some(Handover {
                old: old.pid,
                new: pid,
                asked,
                status: format!("serving: worker pid {pid}; worker pid {} drains", old.pid),
                deadline: now + DRAIN_WAIT,
            });
            return;
        }
        if asked {
            out.push(Action::RestartDone(Ok(pid)));
        }
        let status = if self.ever_ready {
            format!("serving: worker pid {pid} (a replacement)")
        } else {
            format!("serving: worker pid {pid}")
        };
        if !self.ever_ready {
            self.ever_ready = true;
            out.push(Action::WritePidFile);
        }
        out.push(Action::Notify(Notify::Ready { main_pid: self.pid }));
        out.push(Action::Notify(Notify::Status(status)));
    }

    /// Reports the pending handover done: the restart's answer, `READY=1`,
    /// STATUS.
    fn complete_handover(&mut self, out: &mut Vec<Action>) {
        let Some(h) = self.handover.take() else {
            return;
        };
        if h.asked {
            out.push(Action::RestartDone(Ok(h.new)));
        }
        out.push(Action::Notify(Notify::Ready { main_pid: self.pid }));
        out.push(Action::Notify(Notify::Status(h.status)));
    }

    fn on_exited(
        &mut self,
        pid: u32,
        status: String,
        success: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if self
            .handover
            .as_ref()
            .is_some_and(|h| h.old == pid || h.new == pid)
        {
            self.complete_handover(out);
        }
        if let Some(t) = self.taking_back.take_if(|t| t.worker.pid == pid) {
            self.take_back_failed(t, &format!("exited ({status})"), now, out);
            return;
        }
        if let Some(i) = self.leaving.iter().position(|w| w.pid == pid) {
            let left = self.leaving.remove(i);
            if let Phase::ShuttingDown = self.phase {
                self.failed |= !success && !left.spared;
                self.maybe_exit(out);
            }
            return;
        }
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        match self.starting.clone() {
            Starting::AwaitingReady { pid: starting, .. } if starting == pid => {
                self.starting = Starting::No;
                let error = Error::SuccessorExited { pid, status };
                self.start_failed(error, false, now, out);
            }
            Starting::Killing {
                pid: starting,
                error,
            } if starting == pid => {
                self.starting = Starting::No;
                self.start_failed(error, false, now, out);
            }
            _ => {
                if let Some(current) = self.current.filter(|w| w.pid == pid) {
                    self.current = None;
                    self.current_died(current, status, now, out);
                }
            }
        }
    }

    /// The worker being started failed before it was ready (and is reaped).
    fn start_failed(&mut self, error: Error, spawn: bool, now: Instant, out: &mut Vec<Action>) {
        if let Some(current) = self.current {
            let status = format!(
                "restart failed: {error}; worker pid {} serves on",
                current.pid
            );
            self.answer_or_report(error, out);
            out.push(Action::Notify(Notify::Ready { main_pid: self.pid }));
            out.push(Action::Notify(Notify::Status(status)));
            return;
        }
        // Nothing serves: try again after a backoff, within bounds.
        self.failed_starts += 1;
        self.answer_or_report(error, out);
        if spawn && !self.ever_ready {
            let status = "giving up: the first worker cannot be started".to_string();
            self.give_up(status, now, out);
        } else if self.failed_starts >= CRASH_LOOP {
            let status = format!(
                "giving up: {} workers in a row exited before they were ready",
                self.failed_starts
            );
            self.give_up(status, now, out);
        } else {
            self.respawn_after_backoff(now, out);
        }
    }

    /// Answers the pending restart request with `error`, or reports it if
    /// nobody asked.
    fn answer_or_report(&mut self, error: Error, out: &mut Vec<Action>) {
        if std::mem::take(&mut self.restart_asked) {
            out.push(Action::RestartDone(Err(error)));
        } else {
            out.push(Action::Report(format!(
                "worker failed before it was ready: {error}"
            )));
        }
    }

    fn give_up(&mut self, status: String, now: Instant, out: &mut Vec<Action>) {
        self.failed = true;
        out.push(Action::Report(status.clone()));
        self.begin_shutdown(status, now, out);
    }

    fn respawn_after_backoff(&mut self, now: Instant, out: &mut Vec<Action>) {
        let delay = self.backoff;
        self.backoff = (delay * 2).min(BACKOFF_MAX);
        self.starting = Starting::Backoff { at: now + delay };
        out.push(Action::Notify(Notify::Status(format!(
            "no worker serves: starting a new one in {delay:?}"
        ))));
    }

    /// The serving worker exited: ask the previous one to take the listeners
    /// back if it still drains, else replace it.
    fn current_died(&mut self, dead: Serving, status: String, now: Instant, out: &mut Vec<Action>) {
        let pid = dead.pid;
        if now.saturating_duration_since(dead.since) >= BACKOFF_RESET {
            self.backoff = BACKOFF_MIN;
        }
        // Only the newest draining worker: an older one drained for it.
        let newest = self.leaving.iter().rposition(|w| !w.killed);
        if let Some(i) = newest.filter(|_| self.taking_back.is_none()) {
            let previous = self.leaving.remove(i);
            out.push(Action::Resume { pid: previous.pid });
            out.push(Action::Notify(Notify::Status(format!(
                "worker pid {pid} exited ({status}); worker pid {} is asked to take the \
                 listeners back",
                previous.pid
            ))));
            self.taking_back = Some(TakeBack {
                worker: previous,
                lost: pid,
                status,
                deadline: now + TAKE_BACK_WAIT,
            });
            return;
        }
        out.push(Action::Report(format!(
            "worker pid {pid} exited unexpectedly ({status}); replacing it"
        )));
        self.replace(pid, &status, now, out);
    }

    /// The draining worker asked to take the listeners back said it accepts
    /// again: it serves, unless another worker became ready meanwhile.
    fn on_resumed(&mut self, pid: u32, out: &mut Vec<Action>) {
        let Some(t) = self.taking_back.take_if(|t| t.worker.pid == pid) else {
            // Too late (a replacement was started): it drains again.
            if self.leaving.iter().any(|w| w.pid == pid && !w.killed) {
                out.push(Action::Drain {
                    pid,
                    successor: self.current.map(|w| w.pid),
                });
            }
            return;
        };
        let (lost, status) = (t.lost, t.status);
        if let Some(current) = self.current {
            // A restart's new worker was ready first: this one drains again.
            out.push(Action::Drain {
                pid,
                successor: Some(current.pid),
            });
            self.leaving.push(t.worker);
            return;
        }
        if let Phase::ShuttingDown = self.phase {
            self.leaving.push(t.worker);
            return;
        }
        self.current = Some(Serving {
            pid,
            since: t.worker.since,
        });
        out.push(Action::Report(format!(
            "worker pid {lost} exited after it was ready ({status}); \
             worker pid {pid} took the listeners back"
        )));
        out.push(Action::SuccessorLost { pid: lost });
        out.push(Action::Notify(Notify::Ready { main_pid: self.pid }));
        out.push(Action::Notify(Notify::Status(format!(
            "serving: worker pid {pid} again (worker pid {lost} exited: {status})"
        ))));
    }

    /// The take-back did not happen (`why`: what became of the draining
    /// worker): the worker that died is replaced.
    fn take_back_failed(&mut self, t: TakeBack, why: &str, now: Instant, out: &mut Vec<Action>) {
        let (lost, status, back) = (t.lost, t.status, t.worker.pid);
        if !matches!(self.phase, Phase::Running) {
            return self.maybe_exit(out);
        }
        let then = match self.current {
            Some(current) => format!("worker pid {} serves", current.pid),
            None => "replacing it".into(),
        };
        out.push(Action::Report(format!(
            "worker pid {lost} exited unexpectedly ({status}); worker pid {back}, asked to take \
             the listeners back, {why}; {then}"
        )));
        if self.current.is_none() {
            self.replace(lost, &status, now, out);
        }
    }

    /// Nothing serves since worker `pid` exited: a worker on its way
    /// replaces it, or a new one after a backoff.
    fn replace(&mut self, pid: u32, status: &str, now: Instant, out: &mut Vec<Action>) {
        match self.starting {
            // The worker on its way replaces it.
            Starting::No => self.respawn_after_backoff(now, out),
            _ => out.push(Action::Notify(Notify::Status(format!(
                "no worker serves (worker pid {pid} exited: {status}); a new one starts"
            )))),
        }
    }

    fn begin_shutdown(&mut self, status: String, now: Instant, out: &mut Vec<Action>) {
        self.complete_handover(out);
        if std::mem::take(&mut self.restart_asked) {
            out.push(Action::RestartDone(Err(Error::ShuttingDown)));
        }
        self.phase = Phase::ShuttingDown;
        out.push(Action::Notify(Notify::Stopping));
        out.push(Action::Notify(Notify::Status(status)));
        // The workers told to drain now wait out the shutdown delay first.
        let delay = self.timeouts.shutdown_delay;
        self.delaying = !delay.is_zero();
        let kill_at = now + self.shutdown_bound();
        if let Some(t) = self.taking_back.take() {
            // Told to accept again: it may, so it is told to drain too.
            out.push(Action::Drain {
                pid: t.worker.pid,
                successor: None,
            });
            self.leaving.push(t.worker);
        }
        for w in &mut self.leaving {
            w.kill_at = w.kill_at.min(kill_at);
        }
        if let Some(current) = self.current.take() {
            out.push(Action::Drain {
                pid: current.pid,
                successor: None,
            });
            self.leaving.push(Leaving {
                pid: current.pid,
                since: current.since,
                kill_at,
                killed: false,
                spared: false,
            });
        }
        match std::mem::replace(&mut self.starting, Starting::No) {
            Starting::No | Starting::Backoff { .. } => {}
            // Killed once its pid is known.
            Starting::Spawning => self.starting = Starting::Spawning,
            Starting::AwaitingReady { pid, .. } => self.stop_starting(pid, now, kill_at, out),
            Starting::Killing { pid, .. } => self.leaving.push(Leaving {
                pid,
                since: now,
                kill_at: now,
                killed: true,
                spared: true,
            }),
        }
        self.maybe_exit(out);
    }

    /// A second shutdown request: the workers drain now, within the usual
    /// bound from now.
    fn end_delay(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.delaying = false;
        let kill_at = now + drain_bound(self.timeouts);
        for w in self.leaving.iter_mut().filter(|w| !w.killed) {
            // A worker already draining ignores it.
            out.push(Action::Drain {
                pid: w.pid,
                successor: None,
            });
            w.kill_at = w.kill_at.min(kill_at);
        }
    }

    /// Tells a worker that was starting when the shutdown came to drain: its
    /// server may already have taken connections (it runs before the worker
    /// says ready). It reads the message once it runs, and is killed at
    /// `kill_at` if it has not exited by then.
    fn stop_starting(&mut self, pid: u32, now: Instant, kill_at: Instant, out: &mut Vec<Action>) {
        out.push(Action::Drain {
            pid,
            successor: None,
        });
        self.leaving.push(Leaving {
            pid,
            since: now,
            kill_at,
            killed: false,
            spared: true,
        });
    }

    /// How long the workers have from a shutdown's start: the shutdown delay
    /// they wait out, then the drain's bound.
    fn shutdown_bound(&self) -> Duration {
        self.timeouts.shutdown_delay + drain_bound(self.timeouts)
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.handover.as_ref().is_some_and(|h| now >= h.deadline) {
            self.complete_handover(out);
        }
        if let Phase::Running = self.phase {
            match self.starting {
                Starting::AwaitingReady { pid, deadline } if now >= deadline => {
                    out.push(Action::Kill { pid });
                    self.starting = Starting::Killing {
                        pid,
                        error: Error::ReadyTimeout {
                            pid,
                            timeout: self.timeouts.ready,
                        },
                    };
                }
                Starting::Backoff { at } if now >= at => {
                    out.push(Action::Notify(Notify::Status(
                        "starting a new worker".into(),
                    )));
                    self.spawn(out);
                }
                _ => {}
            }
        }
        if let Some(t) = self.taking_back.take_if(|t| now >= t.deadline) {
            // It drains on, within its bound; if it answers late, it is told
            // to drain again.
            self.leaving.push(t.worker);
            let why = format!("did not answer within {TAKE_BACK_WAIT:?}");
            self.take_back_failed(t, &why, now, out);
        }
        let shutting_down = matches!(self.phase, Phase::ShuttingDown);
        for w in &mut self.leaving {
            if !w.killed && now >= w.kill_at {
                w.killed = true;
                self.failed |= shutting_down && !w.spared;
                out.push(Action::Kill { pid: w.pid });
            }
        }
    }

    fn maybe_exit(&mut self, out: &mut Vec<Action>) {
        let spawning = matches!(self.starting, Starting::Spawning);
        if !matches!(self.phase, Phase::ShuttingDown) || spawning || !self.leaving.is_empty() {
            return;
        }
        self.phase = Phase::Exited;
        out.push(Action::RemovePidFile);
        out.push(Action::Exit(if self.failed || !self.ever_ready {
            1
        } else {
            0
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUP: u32 = 1;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn names(actions: &[Action]) -> Vec<&'static str> {
        actions.iter().map(Action::name).collect()
    }

    fn exited(pid: u32, success: bool) -> Event {
        Event::WorkerExited {
            pid,
            status: if success {
                "exit status 0"
            } else {
                "exit status 1"
            }
            .into(),
            success,
        }
    }

    /// A supervisor whose first worker, pid 10, is ready at `t0`.
    fn serving(t0: Instant) -> Machine {
        serving_with(Timeouts::default(), t0)
    }

    /// `serving`, with `timeouts`.
    fn serving_with(timeouts: Timeouts, t0: Instant) -> Machine {
        let mut m = Machine::new(timeouts, SUP);
        m.on(Event::Started, t0);
        m.on(Event::WorkerSpawned { pid: 10 }, t0);
        m.on(Event::WorkerReady { pid: 10 }, t0);
        m
    }

    /// `serving`, then a restart whose new worker, `pid`, was spawned.
    fn restarting(t0: Instant, pid: u32) -> Machine {
        let mut m = serving(t0);
        m.on(Event::RestartRequested, t0);
        m.on(Event::WorkerSpawned { pid }, t0);
        m
    }

    #[test]
    fn the_first_ready_writes_the_pid_file_and_names_the_supervisor() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), SUP);
        assert_eq!(names(&m.on(Event::Started, t0)), ["Notify", "Spawn"]);
        assert!(m.on(Event::WorkerSpawned { pid: 10 }, t0).is_empty());
        assert_eq!(m.deadline(), Some(t0 + secs(30)), "the ready timeout");
        assert_eq!(m.current(), None);
        let acts = m.on(Event::WorkerReady { pid: 10 }, t0);
        assert!(matches!(
            &acts[..],
            [
                Action::WritePidFile,
                Action::Notify(Notify::Ready { main_pid: SUP }),
                Action::Notify(Notify::Status(_)),
            ]
        ));
        assert_eq!(m.current(), Some(10));
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn a_restart_drains_the_old_worker_once_the_new_one_is_ready() {
        let t0 = Instant::now();
        let mut m = serving(t0);
        let acts = m.on(Event::RestartRequested, t0);
        assert!(matches!(
            &acts[..],
            [
                Action::Notify(Notify::Reloading),
                Action::Notify(Notify::Status(_)),
                Action::Spawn,
            ]
        ));
        assert!(m.on(Event::RestartRequested, t0).is_empty(), "coalesced");
        assert!(m.on(Event::WorkerSpawned { pid: 11 }, t0).is_empty());
        assert!(m.on(Event::RestartRequested, t0).is_empty(), "coalesced");
        assert_eq!(m.current(), Some(10), "the old one serves meanwhile");
        let acts = m.on(Event::WorkerReady { pid: 11 }, t0 + secs(1));
        assert!(matches!(
            &acts[..],
            [Action::Drain {
                pid: 10,
                successor: Some(11)
            }]
        ));
        assert_eq!(m.current(), Some(11));
        assert_eq!(m.draining(), [10]);
        // Done once 10 says it stopped accepting, not before.
        assert_eq!(m.handing_over(), Some(10));
        assert_eq!(m.deadline(), Some(t0 + secs(1) + DRAIN_WAIT));
        let acts = m.on(Event::WorkerDraining { pid: 10 }, t0 + secs(1));
        assert!(matches!(
            &acts[..],
            [
                Action::RestartDone(Ok(11)),
                Action::Notify(Notify::Ready { main_pid: SUP }),
                Action::Notify(Notify::Status(_)),
            ]
        ));
        assert_eq!(m.handing_over(), None);
        assert_eq!(m.deadline(), Some(t0 + secs(1) + secs(40) + KILL_MARGIN));
        assert!(m.on(exited(10, true), t0 + secs(2)).is_empty());
        assert_eq!(m.draining(), Vec::<u32>::new());
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn a_restart_is_done_without_the_old_workers_word_once_it_exits_or_at_the_deadline() {
        let t0 = Instant::now();
        let mut m = restarting(t0, 11);
        m.on(Event::WorkerReady { pid: 11 }, t0);
        assert!(m.on(Event::Tick, t0 + DRAIN_WAIT / 2).is_empty());
        let acts = m.on(Event::Tick, t0 + DRAIN_WAIT);
        assert_eq!(names(&acts), ["RestartDone", "Notify", "Notify"]);
        assert!(
            m.on(Event::WorkerDraining { pid: 10 }, t0 + DRAIN_WAIT)
                .is_empty()
        );

        let mut m = restarting(t0, 11);
        m.on(Event::WorkerReady { pid: 11 }, t0);
        let acts = m.on(exited(10, true), t0);
        assert_eq!(names(&acts), ["RestartDone", "Notify", "Notify"]);
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn a_restart_asked_while_the_last_one_is_not_reported_done_starts_another() {
        let t0 = Instant::now();
        let mut m = restarting(t0, 11);
        m.on(Event::WorkerReady { pid: 11 }, t0);
        assert!(m.restart_pending(), "the first request waits for 10's word");
        let acts = m.on(Event::RestartRequested, t0);
        assert_eq!(
            names(&acts),
            [
                "RestartDone",
                "Notify",
                "Notify",
                "Notify",
                "Notify",
                "Spawn"
            ]
        );
        assert!(matches!(acts[0], Action::RestartDone(Ok(11))));
        assert!(m.restart_pending(), "the second waits for the new worker");
        assert_eq!(m.handing_over(), None);
    }

    #[test]
    fn a_ready_timeout_kills_the_new_worker_and_the_old_one_serves_on() {
        let t0 = Instant::now();
        let mut m = restarting(t0, 11);
        assert!(m.on(Event::Tick, t0 + secs(29)).is_empty());
        let acts = m.on(Event::Tick, t0 + secs(30));
        assert!(matches!(&acts[..], [Action::Kill { pid: 11 }]));
        assert_eq!(m.deadline(), None, "waits for the reap");
        assert!(
            m.on(Event::WorkerReady { pid: 11 }, t0 + secs(30))
                .is_empty()
        );
        let acts = m.on(exited(11, false), t0 + secs(30));
        assert!(matches!(
            &acts[..],
            [
                Action::RestartDone(Err(Error::ReadyTimeout { pid: 11, .. })),
                Action::Notify(Notify::Ready { main_pid: SUP }),
                Action::Notify(Notify::Status(_)),
            ]
        ));
        assert_eq!(m.current(), Some(10));
        assert_eq!(
            names(&m.on(Event::RestartRequested, t0 + secs(31))),
            ["Notify", "Notify", "Spawn"],
            "a later restart works"
        );
    }

    #[test]
    fn a_new_worker_that_exits_or_cannot_spawn_fails_the_restart() {
        let t0 = Instant::now();
        let mut m = restarting(t0, 11);
        let acts = m.on(exited(11, false), t0);
        assert!(matches!(
            &acts[..],
            [
                Action::RestartDone(Err(Error::SuccessorExited { pid: 11, .. })),
                Action::Notify(Notify::Ready { main_pid: SUP }),
                Action::Notify(Notify::Status(_)),
            ]
        ));
        assert_eq!(m.current(), Some(10));
        m.on(Event::RestartRequested, t0);
        let acts = m.on(Event::SpawnFailed(Error::Hook("no binary".into())), t0);
        assert!(matches!(
            &acts[..],
            [
                Action::RestartDone(Err(Error::Hook(_))),
                Action::Notify(Notify::Ready { main_pid: SUP }),
                Action::Notify(Notify::Status(_)),
            ]
        ));
        assert_eq!(m.current(), Some(10));
        assert_eq!(m.deadline(), None, "no backoff: a worker serves");
    }

    /// Worker 10 drains for 11, which dies after ready at t0 + 1 s: 10 is
    /// asked to take the listeners back.
    fn taking_back(t0: Instant) -> Machine {
        let mut m = restarting(t0, 11);
        m.on(Event::WorkerReady { pid: 11 }, t0);
        m.on(Event::WorkerDraining { pid: 10 }, t0);
        let acts = m.on(exited(11, false), t0 + secs(1));
        assert!(matches!(
            &acts[..],
            [
                Action::Resume { pid: 10 },
                Action::Notify(Notify::Status(_))
            ]
        ));
        assert_eq!(m.current(), None, "nothing serves until 10 says it does");
        assert_eq!(m.taking_back(), Some(10));
        assert_eq!(m.deadline(), Some(t0 + secs(1) + TAKE_BACK_WAIT));
        m
    }

    #[test]
    fn a_new_worker_that_dies_after_ready_hands_back_to_the_draining_one() {
        let t0 = Instant::now();
        let mut m = taking_back(t0);
        let acts = m.on(Event::WorkerResumed { pid: 10 }, t0 + secs(1));
        assert!(matches!(
            &acts[..],
            [
                Action::Report(_),
                Action::SuccessorLost { pid: 11 },
                Action::Notify(Notify::Ready { main_pid: SUP }),
                Action::Notify(Notify::Status(_)),
            ]
        ));
        let Action::Report(report) = &acts[0] else {
            unreachable!()
        };
        assert!(
            report.contains("worker pid 10 took the listeners back"),
            "{report}"
        );
        assert_eq!(m.current(), Some(10));
        assert!(m.draining().is_empty());
        assert_eq!(m.deadline(), None, "no kill deadline any more");
        assert_eq!(
            names(&m.on(Event::RestartRequested, t0 + secs(2))),
            ["Notify", "Notify", "Spawn"]
        );
    }

    #[test]
    fn a_draining_worker_that_exits_before_it_takes_back_is_replaced() {
        let t0 = Instant::now();
        let mut m = taking_back(t0);
        let acts = m.on(exited(10, true), t0 + secs(1));
        assert_eq!(names(&acts), ["Report", "Notify"]);
        let Action::Report(report) = &acts[0] else {
            unreachable!()
        };
        assert!(
            report.starts_with("worker pid 11 exited unexpectedly")
                && report.contains("worker pid 10, asked to take the listeners back, exited")
                && report.ends_with("replacing it"),
            "{report}"
        );
        assert_eq!(m.taking_back(), None);
        assert_eq!(m.deadline(), Some(t0 + secs(1) + BACKOFF_MIN));
        assert_eq!(names(&m.on(Event::Tick, t0 + secs(2))), ["Notify", "Spawn"]);
        // An answer from a worker that is gone changes nothing.
        assert!(
            m.on(Event::WorkerResumed { pid: 10 }, t0 + secs(2))
                .is_empty()
        );
    }

    #[test]
    fn a_draining_worker_that_does_not_answer_is_replaced_and_told_to_drain_if_it_answers_late() {
        let t0 = Instant::now();
        let mut m = taking_back(t0);
        let wait_over = t0 + secs(1) + TAKE_BACK_WAIT;
        assert!(m.on(Event::Tick, wait_over - secs(1) / 2).is_empty());
        let acts = m.on(Event::Tick, wait_over);
        assert_eq!(names(&acts), ["Report", "Notify"]);
        assert_eq!(m.taking_back(), None);
        assert_eq!(m.draining(), [10], "it drains on, within its bound");
        m.on(Event::Tick, wait_over + BACKOFF_MIN);
        m.on(Event::WorkerSpawned { pid: 12 }, wait_over + BACKOFF_MIN);
        let acts = m.on(Event::WorkerResumed { pid: 10 }, wait_over + secs(1));
        assert!(
            matches!(
                &acts[..],
                [Action::Drain {
                    pid: 10,
                    successor: None
                }]
            ),
            "{acts:?}"
        );
        let acts = m.on(Event::WorkerReady { pid: 12 }, wait_over + secs(1));
        assert_eq!(m.current(), Some(12), "{acts:?}");
    }

    #[test]
    fn a_worker_ready_while_another_takes_back_serves_and_the_other_drains_again() {
        let t0 = Instant::now();
        let mut m = taking_back(t0);
        m.on(Event::RestartRequested, t0 + secs(1));
        m.on(Event::WorkerSpawned { pid: 12 }, t0 + secs(1));
        m.on(Event::WorkerReady { pid: 12 }, t0 + secs(1));
        assert_eq!(m.current(), Some(12));
        let acts = m.on(Event::WorkerResumed { pid: 10 }, t0 + secs(1));
        assert!(matches!(
            &acts[..],
            [Action::Drain {
                pid: 10,
                successor: Some(12)
            }]
        ));
        assert_eq!(m.draining(), [10]);
    }

    #[test]
    fn a_shutdown_while_taking_back_drains_that_worker_too() {
        let t0 = Instant::now();
        let mut m = taking_back(t0);
        let acts = m.on(Event::ShutdownRequested, t0 + secs(1));
        assert!(
            acts.iter().any(|a| matches!(
                a,
                Action::Drain {
                    pid: 10,
                    successor: None
                }
            )),
            "{acts:?}"
        );
        assert!(m.on(Event::WorkerResumed { pid: 10 }, t0 + secs(1)).len() <= 1);
        let acts = m.on(exited(10, true), t0 + secs(2));
        assert!(
            matches!(&acts[..], [Action::RemovePidFile, Action::Exit(0)]),
            "{acts:?}"
        );
    }

    #[test]
    fn a_draining_worker_that_overstays_is_killed() {
        let t0 = Instant::now();
        let mut m = restarting(t0, 11);
        m.on(Event::WorkerReady { pid: 11 }, t0);
        m.on(Event::WorkerDraining { pid: 10 }, t0);
        let bound = secs(40) + KILL_MARGIN;
        assert!(m.on(Event::Tick, t0 + bound - secs(1)).is_empty());
        let acts = m.on(Event::Tick, t0 + bound);
        assert!(matches!(&acts[..], [Action::Kill { pid: 10 }]));
        assert!(m.on(Event::Tick, t0 + bound).is_empty(), "killed once");
        assert_eq!(m.deadline(), None);
        // Killed: it cannot be taken back.
        let acts = m.on(exited(11, false), t0 + bound);
        assert_eq!(names(&acts), ["Report", "Notify"]);
        assert_eq!(m.current(), None);
    }

    #[test]
    fn a_first_worker_that_never_gets_ready_is_retried_with_backoff_then_given_up() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), SUP);
        m.on(Event::Started, t0);
        let mut now = t0;
        let mut delays = Vec::new();
        for n in 1..=CRASH_LOOP {
            let pid = 100 + n;
            m.on(Event::WorkerSpawned { pid }, now);
            let acts = m.on(exited(pid, false), now);
            if n == CRASH_LOOP {
                assert_eq!(
                    names(&acts),
                    [
                        "Report",
                        "Report",
                        "Notify",
                        "Notify",
                        "RemovePidFile",
                        "Exit"
                    ]
                );
                assert!(matches!(acts.last(), Some(Action::Exit(1))));
                break;
            }
            assert_eq!(names(&acts), ["Report", "Notify"]);
            let at = m.deadline().expect("a backoff");
            delays.push(at - now);
            assert!(m.on(Event::Tick, at - Duration::from_millis(1)).is_empty());
            now = at;
            assert_eq!(names(&m.on(Event::Tick, now)), ["Notify", "Spawn"]);
        }
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert!(m.has_exited());
        assert!(
            m.on(Event::RestartRequested, now).is_empty(),
            "nothing after Exit"
        );
    }

    #[test]
    fn a_first_worker_that_cannot_be_spawned_ends_the_supervisor() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), SUP);
        m.on(Event::Started, t0);
        let acts = m.on(Event::SpawnFailed(Error::Hook("missing".into())), t0);
        assert_eq!(
            names(&acts),
            [
                "Report",
                "Report",
                "Notify",
                "Notify",
                "RemovePidFile",
                "Exit"
            ]
        );
        assert!(matches!(&acts[0], Action::Report(r) if r.contains("missing")));
        assert!(matches!(acts.last(), Some(Action::Exit(1))));
    }

    #[test]
    fn a_crashed_worker_is_replaced_and_the_backoff_resets_after_ten_seconds_ready() {
        let t0 = Instant::now();
        let mut m = serving(t0);
        let acts = m.on(exited(10, false), t0 + secs(1));
        assert_eq!(names(&acts), ["Report", "Notify"]);
        assert_eq!(m.deadline(), Some(t0 + secs(1) + BACKOFF_MIN));
        // A restart asked meanwhile joins the replacement.
        assert!(m.on(Event::RestartRequested, t0 + secs(1)).is_empty());
        let now = t0 + secs(1) + BACKOFF_MIN;
        assert_eq!(names(&m.on(Event::Tick, now)), ["Notify", "Spawn"]);
        m.on(Event::WorkerSpawned { pid: 11 }, now);
        let acts = m.on(Event::WorkerReady { pid: 11 }, now);
        assert!(matches!(
            &acts[..],
            [
                Action::RestartDone(Ok(11)),
                Action::Notify(Notify::Ready { main_pid: SUP }),
                Action::Notify(Notify::Status(_)),
            ]
        ));
        // Ready for less than BACKOFF_RESET: the backoff doubles.
        m.on(exited(11, false), now + secs(1));
        assert_eq!(m.deadline(), Some(now + secs(1) + 2 * BACKOFF_MIN));
        let now = now + secs(1) + 2 * BACKOFF_MIN;
        m.on(Event::Tick, now);
        m.on(Event::WorkerSpawned { pid: 12 }, now);
        m.on(Event::WorkerReady { pid: 12 }, now);
        // Ready for BACKOFF_RESET: it starts over.
        m.on(exited(12, false), now + BACKOFF_RESET);
        assert_eq!(m.deadline(), Some(now + BACKOFF_RESET + BACKOFF_MIN));
    }

    #[test]
    fn shutdown_drains_every_worker_and_exits_zero_only_when_all_went_well() {
        let t0 = Instant::now();
        let mut m = restarting(t0, 11);
        m.on(Event::WorkerReady { pid: 11 }, t0);
        m.on(Event::WorkerDraining { pid: 10 }, t0);
        m.on(Event::RestartRequested, t0);
        m.on(Event::WorkerSpawned { pid: 12 }, t0);
        let acts = m.on(Event::ShutdownRequested, t0 + secs(1));
        assert!(matches!(
            &acts[..],
            [
                Action::RestartDone(Err(Error::ShuttingDown)),
                Action::Notify(Notify::Stopping),
                Action::Notify(Notify::Status(_)),
                Action::Drain {
                    pid: 11,
                    successor: None
                },
                Action::Drain {
                    pid: 12,
                    successor: None
                },
            ]
        ));
        assert!(m.on(Event::ShutdownRequested, t0 + secs(1)).is_empty());
        assert!(matches!(
            &m.on(Event::RestartRequested, t0 + secs(1))[..],
            [Action::RestartDone(Err(Error::ShuttingDown))]
        ));
        assert_eq!(m.current(), None);
        assert!(m.on(exited(10, true), t0 + secs(2)).is_empty());
        assert!(m.on(exited(12, false), t0 + secs(2)).is_empty());
        let acts = m.on(exited(11, true), t0 + secs(3));
        assert!(
            matches!(&acts[..], [Action::RemovePidFile, Action::Exit(0)]),
            "a starting worker stopped for the shutdown is no failure: {acts:?}"
        );

        let mut m = serving(t0);
        m.on(Event::ShutdownRequested, t0);
        let acts = m.on(exited(10, true), t0 + secs(1));
        assert!(matches!(
            &acts[..],
            [Action::RemovePidFile, Action::Exit(0)]
        ));
    }

    #[test]
    fn a_shutdown_delay_lengthens_the_workers_bound_and_a_second_request_ends_it() {
        let t0 = Instant::now();
        let timeouts = Timeouts {
            shutdown_delay: secs(5),
            ..Timeouts::default()
        };
        let mut m = serving_with(timeouts, t0);
        let bound = drain_bound(timeouts);
        m.on(Event::ShutdownRequested, t0);
        // The worker waits out the delay, then drains within the usual bound.
        assert_eq!(m.deadline(), Some(t0 + secs(5) + bound));
        let acts = m.on(Event::ShutdownRequested, t0 + secs(1));
        assert!(
            matches!(
                &acts[..],
                [Action::Drain {
                    pid: 10,
                    successor: None
                }]
            ),
            "{acts:?}"
        );
        assert_eq!(m.deadline(), Some(t0 + secs(1) + bound));
        // Only the second request does.
        assert!(m.on(Event::ShutdownRequested, t0 + secs(2)).is_empty());
    }

    #[test]
    fn shutdown_kills_what_is_left_at_its_deadline_and_exits_one() {
        let t0 = Instant::now();
        let mut m = serving(t0);
        m.on(Event::ShutdownRequested, t0);
        let bound = secs(40) + KILL_MARGIN;
        assert_eq!(m.deadline(), Some(t0 + bound));
        assert_eq!(names(&m.on(Event::Tick, t0 + bound)), ["Kill"]);
        let acts = m.on(exited(10, false), t0 + bound);
        assert!(matches!(
            &acts[..],
            [Action::RemovePidFile, Action::Exit(1)]
        ));
    }

    #[test]
    fn shutdown_while_spawning_waits_for_the_pid_to_stop_it() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), SUP);
        m.on(Event::Started, t0);
        assert_eq!(
            names(&m.on(Event::ShutdownRequested, t0)),
            ["Notify", "Notify"]
        );
        assert_eq!(
            names(&m.on(Event::WorkerSpawned { pid: 10 }, t0)),
            ["Drain"]
        );
        assert!(m.on(Event::WorkerReady { pid: 10 }, t0).is_empty());
        let acts = m.on(exited(10, true), t0);
        assert!(
            matches!(&acts[..], [Action::RemovePidFile, Action::Exit(1)]),
            "never ready: status 1"
        );
    }

    #[test]
    fn a_worker_starting_at_the_shutdown_drains_and_is_killed_only_at_the_bound() {
        let t0 = Instant::now();
        let mut m = restarting(t0, 11);
        m.on(Event::ShutdownRequested, t0);
        let bound = drain_bound(Timeouts::default());
        assert_eq!(m.deadline(), Some(t0 + bound));
        // The serving worker drains and exits; the starting one, told to
        // drain, says ready (ignored) and is still busy at the bound.
        assert!(m.on(exited(10, true), t0 + secs(1)).is_empty());
        assert!(
            m.on(Event::WorkerReady { pid: 11 }, t0 + secs(1))
                .is_empty()
        );
        assert_eq!(m.current(), None);
        assert!(m.on(Event::Tick, t0 + bound - secs(1)).is_empty());
        assert!(matches!(
            &m.on(Event::Tick, t0 + bound)[..],
            [Action::Kill { pid: 11 }]
        ));
        let acts = m.on(exited(11, false), t0 + bound);
        assert!(
            matches!(&acts[..], [Action::RemovePidFile, Action::Exit(0)]),
            "a starting worker is no failure of the service: {acts:?}"
        );
    }

    #[test]
    fn events_that_fit_no_state_change_nothing() {
        let t0 = Instant::now();
        let mut m = serving(t0);
        assert!(m.on(Event::Started, t0).is_empty());
        assert!(m.on(Event::WorkerSpawned { pid: 99 }, t0).is_empty());
        assert!(m.on(Event::WorkerReady { pid: 99 }, t0).is_empty());
        assert!(m.on(exited(99, false), t0).is_empty());
        assert!(m.on(Event::SpawnFailed(Error::ShuttingDown), t0).is_empty());
        assert!(m.on(Event::Tick, t0).is_empty());
        assert_eq!(m.current(), Some(10));
    }
}
