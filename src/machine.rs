//! The restart state machine: sans-IO, with time passed in.
//!
//! [`Machine::on`] takes an [`Event`] and the current time and returns the
//! [`Action`]s to carry out; [`Machine::deadline`] says when the next
//! [`Event::Tick`] is due. The driver feeds it from signals, timers and child
//! processes and carries its actions out; tests feed it from a virtual clock.
//! Every decision is here, down to the pid file, the service manager's
//! messages and what happens at the kill timeout: a reader follows a restart,
//! signal to exit, in this file alone.
//!
//! The rules it enforces:
//! - this generation never stops accepting before its successor said ready;
//! - at most two generations are alive: no successor is spawned while one is
//!   starting, nor while our own parent is still draining (a request made then
//!   is deferred until the parent exits);
//! - requests made while an upgrade is in flight share its result;
//! - a successor that fails (spawn error, exit, ready timeout) is killed and
//!   reaped, and this generation serves on;
//! - a successor that dies after it said ready, while this generation still
//!   drains, hands the listeners back: this generation accepts again and is
//!   the one serving (pid file, service manager and report say so);
//! - the pid file names the generation that accepts, and is written before
//!   the service manager is told;
//! - a drain ends in [`Action::Exit`] by stop timeout + kill timeout.

use std::time::{Duration, Instant};

use crate::error::Error;
pub use crate::host::{Driver, Host};
use crate::state::State;

/// The timeouts that bound a restart and a drain, and the shutdown delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a successor has to say it is ready before it is killed.
    pub ready: Duration,
    /// How long in-flight work may take after draining starts before it is
    /// hammered (aborted).
    pub stop: Duration,
    /// How long after the hammer the process exits, whatever remains.
    pub kill: Duration,
    /// How long a generation told to shut down keeps accepting and serving,
    /// unready, before it drains (load balancers take it out meanwhile). A
    /// second shutdown request ends it early. The stop timeout starts after it.
    pub shutdown_delay: Duration,
}

impl Default for Timeouts {
    /// 30 s to become ready, 30 s to drain, 10 s more after the hammer; no
    /// shutdown delay.
    fn default() -> Self {
        Timeouts {
            ready: Duration::from_secs(30),
            stop: Duration::from_secs(30),
            kill: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// This generation accepts on every listener (and has told its parent,
    /// if it has one): the first event.
    Started,
    /// A restart was asked for (signal or handle).
    RestartRequested,
    /// A graceful shutdown was asked for (signal or handle).
    ShutdownRequested,
    /// The successor process was started.
    ChildSpawned {
        /// Its pid.
        pid: u32,
    },
    /// The successor could not be started (or the before-spawn hook refused).
    SpawnFailed(Error),
    /// The successor said it is ready.
    ChildReady {
        /// Its pid.
        pid: u32,
    },
    /// The successor, ready before, said it is shutting down deliberately (it
    /// was told to stop, not to hand over): its exit is not a crash.
    ChildStopping {
        /// Its pid.
        pid: u32,
    },
    /// A successor exited and was reaped.
    ChildExited {
        /// Its pid.
        pid: u32,
        /// How it ended, for the report.
        status: String,
    },
    /// This generation's own parent exited (for a supervised worker: its
    /// supervisor is gone).
    ParentExited,
    /// Supervised: the supervisor says stop accepting and drain (`successor`:
    /// the worker that took over; none on shutdown).
    DrainRequested {
        /// The worker that took over.
        successor: Option<u32>,
    },
    /// Supervised: the supervisor says accept again (the successor died).
    ResumeRequested,
    /// Supervised: the supervisor's answer to [`Action::AskSupervisor`].
    RestartAnswered(Result<u32, Error>),
    /// Nothing is in flight any more (reported only while draining).
    DrainIdle,
    /// The deadline returned by [`Machine::deadline`] passed.
    Tick,
}

/// Why the process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReason {
    /// A successor took over and everything in flight finished.
    HandedOver {
        /// The successor's pid.
        successor: u32,
    },
    /// Graceful shutdown finished: everything in flight finished.
    Shutdown,
    /// The kill timeout passed after the hammer with work still in flight.
    /// Exiting is the application's choice; the examples exit with status 1.
    KillTimeout,
}

/// A message for the service manager (systemd's `sd_notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notify {
    /// `RELOADING=1` with `MONOTONIC_USEC`: a restart began.
    Reloading,
    /// `MAINPID=pid` and `READY=1`: this process accepts, or its successor
    /// does, or it took the listeners back.
    Ready {
        /// The pid of the process that accepts.
        main_pid: u32,
    },
    /// `STOPPING=1`: draining without a successor.
    Stopping,
    /// `STATUS=...`: a human-readable status line.
    Status(String),
}

/// Something the driver must do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Action {
    /// Run the before-spawn hook and spawn the successor; report
    /// [`Event::ChildSpawned`] or [`Event::SpawnFailed`].
    Spawn,
    /// Kill the successor with SIGKILL (it is reaped by the child watcher,
    /// which then reports [`Event::ChildExited`]).
    KillChild {
        /// Its pid.
        pid: u32,
    },
    /// Tell the successor, still starting when this generation was asked to
    /// shut down, to shut down too (the first configured shutdown signal):
    /// its server may already serve what it accepted. It is reaped as any
    /// child; if it has not exited by this generation's stop timeout it is
    /// told [`Action::KillChild`].
    StopChild {
        /// Its pid.
        pid: u32,
    },
    /// Stop accepting (keeping the listeners), close idle connections, fire
    /// the drain signal; report [`Event::DrainIdle`] once nothing is in flight.
    BeginDrain,
    /// Accept again: the successor died after it was ready, and this
    /// generation takes its listeners back. Stop watching for idle.
    Resume,
    /// Abort whatever is still in flight.
    Hammer,
    /// Tell the service manager.
    Notify(Notify),
    /// Make the pid file name this pid: the generation that accepts.
    WritePidFile(u32),
    /// Remove the pid file if it still names this process.
    RemovePidFile,
    /// This generation is ready: run the ready hook.
    Ready,
    /// Tell the parent, still draining, that this generation shuts down
    /// deliberately ([`Event::ChildStopping`] on its side).
    TellParentStopping,
    /// Supervised: ask the supervisor for a restart; it answers with
    /// [`Event::RestartAnswered`].
    AskSupervisor,
    /// Answer everyone waiting for a restart, and report the result.
    RestartDone(Result<u32, Error>),
    /// The successor died after it said ready; this generation took the
    /// listeners back. Report it ([`Error::SuccessorLost`]).
    SuccessorLost {
        /// Its pid.
        pid: u32,
        /// How it ended.
        status: String,
    },
    /// A restart request joined the one already in flight.
    Coalesced,
    /// A restart request waits until this generation's parent has exited.
    Deferred,
    /// The generation is done: release what is left and return `reason`
    /// from `run()`.
    Exit(ExitReason),
}

impl Action {
    /// The action's name, without its data: `"Spawn"`, `"WritePidFile"`...
    pub fn name(&self) -> &'static str {
        match self {
            Action::Spawn => "Spawn",
            Action::KillChild { .. } => "KillChild",
            Action::StopChild { .. } => "StopChild",
            Action::BeginDrain => "BeginDrain",
            Action::Resume => "Resume",
            Action::Hammer => "Hammer",
            Action::Notify(_) => "Notify",
            Action::WritePidFile(_) => "WritePidFile",
            Action::RemovePidFile => "RemovePidFile",
            Action::Ready => "Ready",
            Action::TellParentStopping => "TellParentStopping",
            Action::AskSupervisor => "AskSupervisor",
            Action::RestartDone(_) => "RestartDone",
            Action::SuccessorLost { .. } => "SuccessorLost",
            Action::Coalesced => "Coalesced",
            Action::Deferred => "Deferred",
            Action::Exit(_) => "Exit",
        }
    }
}

#[derive(Debug, Clone)]
enum Phase {
    /// Before [`Event::Started`].
    Starting,
    Serving,
    Spawning,
    AwaitingReady {
        pid: u32,
        deadline: Instant,
    },
    Killing {
        pid: u32,
        error: Error,
    },
    /// Shutting down: unready, still accepting until `drain_at`.
    Delaying {
        drain_at: Instant,
    },
    Draining {
        successor: Option<u32>,
        stop_at: Instant,
    },
    Hammered {
        successor: Option<u32>,
        exit_at: Instant,
    },
    Exited,
}

/// The restart state machine of one generation.
#[derive(Debug, Clone)]
pub struct Machine {
    phase: Phase,
    timeouts: Timeouts,
    pid: u32,
    parent_alive: bool,
    restart_deferred: bool,
    shutdown_pending: bool,
    /// A shutdown was asked of this generation: it never takes back.
    shutdown_asked: bool,
    /// The successor said it stops deliberately: its exit is no crash.
    successor_stopping: Option<u32>,
    /// A worker of a supervisor: it never spawns, writes no pid file and
    /// tells no service manager; the supervisor decides.
    supervised: bool,
    /// Supervised: a restart was asked of the supervisor, not answered yet.
    asked: bool,
    idle: bool,
    unreaped: Option<u32>,
    /// A successor told to stop while starting, killed at the hammer if it
    /// has not exited by then.
    stopping_child: Option<u32>,
}

impl Machine {
    /// The machine of generation `pid`, before [`Event::Started`].
    /// `parent_alive` is true when it took over from a parent that is still
    /// draining (that parent names it in the pid file and to the service
    /// manager).
    pub fn new(timeouts: Timeouts, pid: u32, parent_alive: bool) -> Self {
        Machine {
            phase: Phase::Starting,
            timeouts,
            pid,
            parent_alive,
            restart_deferred: false,
            shutdown_pending: false,
            shutdown_asked: false,
            successor_stopping: None,
            supervised: false,
            asked: false,
            idle: false,
            unreaped: None,
            stopping_child: None,
        }
    }

    /// The machine of a worker run by a supervisor (see
    /// [`Builder::supervise`](crate::Builder::supervise)), before
    /// [`Event::Started`]: restarts are asked of the supervisor, which also
    /// says when to drain and resume; the pid file and the service manager
    /// are the supervisor's.
    pub fn supervised(timeouts: Timeouts, pid: u32) -> Self {
        Machine {
            supervised: true,
            ..Machine::new(timeouts, pid, false)
        }
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// When the next [`Event::Tick`] is due, if any.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitingReady { deadline, .. } => Some(deadline),
            Phase::Delaying { drain_at } => Some(drain_at),
            Phase::Draining { stop_at, .. } => Some(stop_at),
            Phase::Hammered { exit_at, .. } => Some(exit_at),
            _ => None,
        }
    }

    /// Whether this generation accepts connections (or will, once started).
    pub fn is_accepting(&self) -> bool {
        matches!(
            self.phase,
            Phase::Starting
                | Phase::Serving
                | Phase::Spawning
                | Phase::AwaitingReady { .. }
                | Phase::Killing { .. }
                | Phase::Delaying { .. }
        )
    }

    /// What this generation is doing, for [`Handle::state`](crate::Handle::state).
    pub fn state(&self) -> State {
        // Unready from the moment a shutdown is asked, whatever finishes first.
        if self.shutdown_asked && self.is_accepting() {
            return State::ShuttingDown;
        }
        match self.phase {
            Phase::Starting => State::Starting,
            Phase::Serving if self.asked => State::Restarting,
            Phase::Serving => State::Serving,
            Phase::Spawning | Phase::AwaitingReady { .. } | Phase::Killing { .. } => {
                State::Restarting
            }
            Phase::Delaying { .. } => State::ShuttingDown,
            Phase::Draining { .. } | Phase::Hammered { .. } => State::Draining,
            Phase::Exited => State::Done,
        }
    }

    /// Whether the machine has said [`Action::Exit`].
    pub fn has_exited(&self) -> bool {
        matches!(self.phase, Phase::Exited)
    }

    /// Feeds one event at time `now` and returns what to do, in order.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.supervised {
            self.on_supervised(event, now, &mut out);
            return out;
        }
        if let Phase::Starting = self.phase {
            match event {
                Event::Started => self.on_started(&mut out),
                // Requests made before run() wait for it; a parent that exits
                // before is seen when it is reported again.
                Event::RestartRequested | Event::ShutdownRequested | Event::ParentExited => {
                    self.on_started(&mut out);
                    out.extend(self.on(event, now));
                }
                _ => {}
            }
            return out;
        }
        match event {
            Event::Started => {}
            Event::RestartRequested => self.on_restart(&mut out),
            Event::ShutdownRequested => self.on_shutdown(now, &mut out),
            Event::ChildSpawned { pid } => {
                if let Phase::Spawning = self.phase {
                    if self.shutdown_pending {
                        self.stop_child(pid, &mut out);
                        out.push(Action::RestartDone(Err(Error::ShuttingDown)));
                        self.shut_down(now, &mut out);
                    } else {
                        self.phase = Phase::AwaitingReady {
                            pid,
                            deadline: now + self.timeouts.ready,
                        };
                    }
                }
            }
            Event::SpawnFailed(error) => {
                if let Phase::Spawning = self.phase {
                    self.restart_failed(error, now, &mut out);
                }
            }
            Event::ChildReady { pid } => {
                if let Phase::AwaitingReady { pid: child, .. } = self.phase {
                    if child == pid {
                        // Reported once this generation stopped accepting.
                        self.begin_drain(Some(pid), now, &mut out);
                        out.push(Action::RestartDone(Ok(pid)));
                    }
                }
            }
            Event::ChildStopping { pid } => self.successor_stopping = Some(pid),
            Event::ChildExited { pid, status } => self.on_child_exited(pid, status, now, &mut out),
            Event::ParentExited => {
                if self.parent_alive {
                    self.parent_alive = false;
                    // Normally the parent named us already; if it died before
                    // it could, the pid file must still name the one serving.
                    if self.is_accepting() {
                        out.push(Action::WritePidFile(self.pid));
                        out.push(Action::Notify(Notify::Ready { main_pid: self.pid }));
                    }
                    if self.restart_deferred && matches!(self.phase, Phase::Serving) {
                        self.restart_deferred = false;
                        self.start_spawn(&mut out);
                    }
                }
            }
            Event::DrainIdle => self.on_idle(&mut out),
            Event::Tick => self.on_tick(now, &mut out),
            Event::DrainRequested { .. } | Event::ResumeRequested | Event::RestartAnswered(_) => {}
        }
        out
    }

    fn on_idle(&mut self, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Draining { .. } | Phase::Hammered { .. }) {
            self.idle = true;
            self.maybe_exit(out);
        }
    }

    /// A supervised worker: the supervisor spawns, names and decides; the
    /// worker asks, drains and resumes when told, and bounds its own drain.
    fn on_supervised(&mut self, event: Event, now: Instant, out: &mut Vec<Action>) {
        let accepting = matches!(self.phase, Phase::Starting | Phase::Serving);
        let delaying = matches!(self.phase, Phase::Delaying { .. });
        match event {
            Event::Started => {
                if let Phase::Starting = self.phase {
                    self.phase = Phase::Serving;
                    out.push(Action::Ready);
                }
            }
            Event::RestartRequested if accepting && self.asked => out.push(Action::Coalesced),
            Event::RestartRequested if accepting => {
                self.asked = true;
                out.push(Action::AskSupervisor);
            }
            Event::RestartRequested => out.push(Action::RestartDone(Err(Error::ShuttingDown))),
            Event::RestartAnswered(result) if self.asked => {
                self.asked = false;
                out.push(Action::RestartDone(result));
            }
            // The supervisor shuts the service down: the worker's delay first.
            Event::DrainRequested { successor: None } | Event::ShutdownRequested
                if accepting && !self.timeouts.shutdown_delay.is_zero() =>
            {
                self.phase = Phase::Delaying {
                    drain_at: now + self.timeouts.shutdown_delay,
                };
                if std::mem::take(&mut self.asked) {
                    out.push(Action::RestartDone(Err(Error::ShuttingDown)));
                }
            }
            // Told again (a second shutdown signal), or the supervisor gone:
            // the delay ends now.
            Event::DrainRequested { .. } | Event::ShutdownRequested | Event::ParentExited
                if delaying =>
            {
                self.supervised_drain(None, now, out);
            }
            Event::Tick if delaying && Some(now) >= self.deadline() => {
                self.supervised_drain(None, now, out);
            }
            Event::DrainRequested { successor } if accepting => {
                self.phase = Phase::Serving;
                self.supervised_drain(successor, now, out);
            }
            // A shutdown asked of the worker itself, or its supervisor gone.
            Event::ShutdownRequested | Event::ParentExited if accepting => {
                self.supervised_drain(None, now, out);
            }
            Event::ResumeRequested if self.draining_for().is_some() => {
                let successor = self.draining_for().flatten();
                self.phase = Phase::Serving;
                self.idle = false;
                out.push(Action::Resume);
                // The supervisor takes back only from a worker that drained
                // for a successor which then died: report it here too, as a
                // re-exec generation does (the supervisor reaped it).
                if let Some(pid) = successor {
                    out.push(Action::SuccessorLost {
                        pid,
                        status: "seen by the supervisor".into(),
                    });
                }
            }
            Event::DrainIdle => self.on_idle(out),
            Event::Tick => self.on_tick(now, out),
            _ => {}
        }
    }

    /// While draining (or hammered): the successor it drains for, if any.
    fn draining_for(&self) -> Option<Option<u32>> {
        match self.phase {
            Phase::Draining { successor, .. } | Phase::Hammered { successor, .. } => {
                Some(successor)
            }
            _ => None,
        }
    }

    fn supervised_drain(&mut self, successor: Option<u32>, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::BeginDrain);
        self.phase = Phase::Draining {
            successor,
            stop_at: now + self.timeouts.stop,
        };
        if std::mem::take(&mut self.asked) {
            // Drained for a successor: that is the restart asked for, done
            // now that this worker stopped accepting (the supervisor's own
            // answer follows and is ignored). Else the service stops.
            out.push(Action::RestartDone(successor.ok_or(Error::ShuttingDown)));
        }
    }

    fn on_started(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Serving;
        // With a live parent, the parent names this generation once it has
        // stopped accepting; otherwise this generation names itself.
        if !self.parent_alive {
            out.push(Action::WritePidFile(self.pid));
            out.push(Action::Notify(Notify::Ready { main_pid: self.pid }));
        }
        out.push(Action::Notify(Notify::Status("serving".into())));
        out.push(Action::Ready);
    }

    fn on_restart(&mut self, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Serving if self.parent_alive => {
                self.restart_deferred = true;
                out.push(Action::Deferred);
            }
            Phase::Serving => self.start_spawn(out),
            Phase::Starting
            | Phase::Spawning
            | Phase::AwaitingReady { .. }
            | Phase::Killing { .. } => out.push(Action::Coalesced),
            Phase::Draining { successor, .. } | Phase::Hammered { successor, .. } => {
                out.push(Action::RestartDone(Err(match successor {
                    Some(successor) => Error::HandedOver { successor },
                    None => Error::ShuttingDown,
                })))
            }
            Phase::Delaying { .. } | Phase::Exited => {
                out.push(Action::RestartDone(Err(Error::ShuttingDown)))
            }
        }
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.shutdown_asked = true;
        match self.phase.clone() {
            Phase::Starting | Phase::Serving => {
                if self.restart_deferred {
                    self.restart_deferred = false;
                    out.push(Action::RestartDone(Err(Error::ShuttingDown)));
                }
                self.shut_down(now, out);
            }
            Phase::Spawning => self.shutdown_pending = true,
            Phase::AwaitingReady { pid, .. } => {
                self.stop_child(pid, out);
                out.push(Action::RestartDone(Err(Error::ShuttingDown)));
                self.shut_down(now, out);
            }
            Phase::Killing { pid, error } => {
                out.push(Action::RestartDone(Err(error)));
                self.unreaped = Some(pid);
                self.shut_down(now, out);
            }
            // A second request: the delay ends now.
            Phase::Delaying { .. } => self.begin_drain(None, now, out),
            Phase::Draining { .. } | Phase::Hammered { .. } | Phase::Exited => {}
        }
    }

    fn on_child_exited(&mut self, pid: u32, status: String, now: Instant, out: &mut Vec<Action>) {
        if self.unreaped == Some(pid) {
            self.unreaped = None;
            self.stopping_child = None;
            self.maybe_exit(out);
            return;
        }
        match self.phase.clone() {
            Phase::AwaitingReady { pid: child, .. } if child == pid => {
                self.restart_failed(Error::SuccessorExited { pid, status }, now, out);
            }
            Phase::Killing { pid: child, error } if child == pid => {
                self.restart_failed(error, now, out);
            }
            Phase::Draining {
                successor: Some(child),
                ..
            }
            | Phase::Hammered {
                successor: Some(child),
                ..
            } if child == pid => {
                // A successor that stopped deliberately, or a generation told
                // to shut down itself (systemd's stop signals every process
                // of the service), has nothing to take back.
                if self.shutdown_asked || self.successor_stopping == Some(pid) {
                    return;
                }
                self.take_back(pid, status, out)
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.phase {
            Phase::AwaitingReady { pid, deadline } if now >= deadline => {
                out.push(Action::KillChild { pid });
                self.phase = Phase::Killing {
                    pid,
                    error: Error::ReadyTimeout {
                        pid,
                        timeout: self.timeouts.ready,
                    },
                };
            }
            Phase::Delaying { drain_at } if now >= drain_at => self.begin_drain(None, now, out),
            Phase::Draining { successor, stop_at } if now >= stop_at => {
                out.push(Action::Hammer);
                if let Some(pid) = self.stopping_child.take() {
                    out.push(Action::KillChild { pid });
                }
                self.phase = Phase::Hammered {
                    successor,
                    exit_at: stop_at + self.timeouts.kill,
                };
            }
            Phase::Hammered { exit_at, .. } if now >= exit_at => {
                self.phase = Phase::Exited;
                out.push(Action::Exit(ExitReason::KillTimeout));
            }
            _ => {}
        }
    }

    fn start_spawn(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Spawning;
        out.push(Action::Notify(Notify::Reloading));
        out.push(Action::Notify(Notify::Status(
            "restarting: starting a new generation".into(),
        )));
        out.push(Action::Spawn);
    }

    /// A successor still starting at a shutdown: told to shut down too, as
    /// its server may already serve what it accepted; this generation exits
    /// once it is reaped.
    fn stop_child(&mut self, pid: u32, out: &mut Vec<Action>) {
        out.push(Action::StopChild { pid });
        self.unreaped = Some(pid);
        self.stopping_child = Some(pid);
    }

    /// The successor failed before it was ready (and is reaped): serve on,
    /// and say so to whoever saw the restart begin.
    fn restart_failed(&mut self, error: Error, now: Instant, out: &mut Vec<Action>) {
        self.phase = Phase::Serving;
        let status = format!("restart failed: {error}; serving on");
        out.push(Action::RestartDone(Err(error)));
        if self.shutdown_pending {
            self.shut_down(now, out);
            return;
        }
        out.push(Action::WritePidFile(self.pid));
        out.push(Action::Notify(Notify::Ready { main_pid: self.pid }));
        out.push(Action::Notify(Notify::Status(status)));
    }

    /// The successor died after it was ready, while this generation drains:
    /// accept again, and be the one named everywhere.
    fn take_back(&mut self, pid: u32, status: String, out: &mut Vec<Action>) {
        self.phase = Phase::Serving;
        self.idle = false;
        out.push(Action::Resume);
        out.push(Action::WritePidFile(self.pid));
        out.push(Action::Notify(Notify::Ready { main_pid: self.pid }));
        out.push(Action::Notify(Notify::Status(format!(
            "successor pid {pid} exited after it was ready ({status}); serving again"
        ))));
        out.push(Action::SuccessorLost { pid, status });
    }

    /// A shutdown begins: with a shutdown delay, unready but accepting until
    /// it ends (the service manager hears `STOPPING=1` now); else drain.
    fn shut_down(&mut self, now: Instant, out: &mut Vec<Action>) {
        let delay = self.timeouts.shutdown_delay;
        if delay.is_zero() {
            return self.begin_drain(None, now, out);
        }
        if self.parent_alive {
            out.push(Action::TellParentStopping);
        }
        out.push(Action::Notify(Notify::Stopping));
        out.push(Action::Notify(Notify::Status(format!(
            "shutting down: serving for the {delay:?} shutdown delay, then draining"
        ))));
        self.phase = Phase::Delaying {
            drain_at: now + delay,
        };
    }

    fn begin_drain(&mut self, successor: Option<u32>, now: Instant, out: &mut Vec<Action>) {
        let delayed = matches!(self.phase, Phase::Delaying { .. });
        out.push(Action::BeginDrain);
        match successor {
            // Stopped accepting: now the successor is the one to name.
            Some(pid) => {
                out.push(Action::WritePidFile(pid));
                out.push(Action::Notify(Notify::Ready { main_pid: pid }));
                out.push(Action::Notify(Notify::Status(format!(
                    "handed over to pid {pid}; draining"
                ))));
            }
            None => {
                if self.parent_alive && !delayed {
                    out.push(Action::TellParentStopping);
                }
                if !delayed {
                    out.push(Action::Notify(Notify::Stopping));
                }
                out.push(Action::Notify(Notify::Status(
                    "shutting down; draining".into(),
                )));
                out.push(Action::RemovePidFile);
            }
        }
        self.phase = Phase::Draining {
            successor,
            stop_at: now + self.timeouts.stop,
        };
    }

    fn maybe_exit(&mut self, out: &mut Vec<Action>) {
        let successor = match self.phase {
            Phase::Draining { successor, .. } | Phase::Hammered { successor, .. } => successor,
            _ => return,
        };
        if self.idle && self.unreaped.is_none() {
            self.phase = Phase::Exited;
            out.push(Action::Exit(match successor {
                Some(successor) => ExitReason::HandedOver { successor },
                None => ExitReason::Shutdown,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn names(actions: &[Action]) -> Vec<&'static str> {
        actions.iter().map(Action::name).collect()
    }

    fn started(parent_alive: bool, t0: Instant) -> Machine {
        let mut m = Machine::new(Timeouts::default(), 1, parent_alive);
        m.on(Event::Started, t0);
        m
    }

    #[test]
    fn a_first_generation_names_itself_a_successor_is_named_by_its_parent() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), 1, false);
        let acts = m.on(Event::Started, t0);
        assert_eq!(names(&acts), ["WritePidFile", "Notify", "Notify", "Ready"]);
        assert!(matches!(acts[0], Action::WritePidFile(1)));
        assert!(matches!(
            acts[1],
            Action::Notify(Notify::Ready { main_pid: 1 })
        ));
        let mut m = Machine::new(Timeouts::default(), 2, true);
        assert_eq!(names(&m.on(Event::Started, t0)), ["Notify", "Ready"]);
    }

    #[test]
    fn happy_restart_drains_after_ready_and_names_the_successor() {
        let t0 = Instant::now();
        let mut m = started(false, t0);
        assert_eq!(
            names(&m.on(Event::RestartRequested, t0)),
            ["Notify", "Notify", "Spawn"]
        );
        assert!(m.on(Event::ChildSpawned { pid: 7 }, t0).is_empty());
        assert!(m.is_accepting());
        assert_eq!(names(&m.on(Event::RestartRequested, t0)), ["Coalesced"]);
        let acts = m.on(Event::ChildReady { pid: 7 }, t0 + secs(1));
        assert_eq!(
            names(&acts),
            [
                "BeginDrain",
                "WritePidFile",
                "Notify",
                "Notify",
                "RestartDone"
            ]
        );
        assert!(matches!(acts[1], Action::WritePidFile(7)));
        assert!(matches!(
            acts[2],
            Action::Notify(Notify::Ready { main_pid: 7 })
        ));
        assert!(!m.is_accepting());
        assert_eq!(m.deadline(), Some(t0 + secs(31)));
        let acts = m.on(Event::DrainIdle, t0 + secs(2));
        assert!(matches!(
            acts[..],
            [Action::Exit(ExitReason::HandedOver { successor: 7 })]
        ));
    }

    #[test]
    fn ready_timeout_kills_reaps_and_serves_on() {
        let t0 = Instant::now();
        let mut m = started(false, t0);
        m.on(Event::RestartRequested, t0);
        m.on(Event::ChildSpawned { pid: 7 }, t0);
        assert!(m.on(Event::Tick, t0 + secs(29)).is_empty());
        let acts = m.on(Event::Tick, t0 + secs(30));
        assert!(matches!(acts[..], [Action::KillChild { pid: 7 }]));
        let acts = m.on(
            Event::ChildExited {
                pid: 7,
                status: "killed".into(),
            },
            t0 + secs(30),
        );
        assert!(matches!(
            &acts[..],
            [
                Action::RestartDone(Err(Error::ReadyTimeout { pid: 7, .. })),
                Action::WritePidFile(1),
                Action::Notify(Notify::Ready { main_pid: 1 }),
                Action::Notify(Notify::Status(_)),
            ]
        ));
        assert!(m.is_accepting());
        assert_eq!(
            names(&m.on(Event::RestartRequested, t0 + secs(31))),
            ["Notify", "Notify", "Spawn"]
        );
    }

    #[test]
    fn a_successor_that_dies_after_ready_hands_the_listeners_back() {
        let t0 = Instant::now();
        let mut m = started(false, t0);
        m.on(Event::RestartRequested, t0);
        m.on(Event::ChildSpawned { pid: 7 }, t0);
        m.on(Event::ChildReady { pid: 7 }, t0);
        let acts = m.on(
            Event::ChildExited {
                pid: 7,
                status: "killed by signal 9".into(),
            },
            t0 + secs(1),
        );
        assert!(matches!(
            &acts[..],
            [
                Action::Resume,
                Action::WritePidFile(1),
                Action::Notify(Notify::Ready { main_pid: 1 }),
                Action::Notify(Notify::Status(_)),
                Action::SuccessorLost { pid: 7, .. },
            ]
        ));
        assert!(m.is_accepting());
        assert_eq!(m.deadline(), None, "no stop timeout any more");
        assert!(m.on(Event::DrainIdle, t0 + secs(2)).is_empty());
        assert_eq!(
            names(&m.on(Event::RestartRequested, t0 + secs(3))),
            ["Notify", "Notify", "Spawn"],
            "a later restart works"
        );
    }

    #[test]
    fn successor_waits_for_parent_before_upgrading() {
        let t0 = Instant::now();
        let mut m = started(true, t0);
        assert_eq!(names(&m.on(Event::RestartRequested, t0)), ["Deferred"]);
        assert_eq!(
            names(&m.on(Event::ParentExited, t0)),
            ["WritePidFile", "Notify", "Notify", "Notify", "Spawn"]
        );
    }

    #[test]
    fn drain_is_bounded_by_stop_plus_kill() {
        let t0 = Instant::now();
        let mut m = started(false, t0);
        assert_eq!(
            names(&m.on(Event::ShutdownRequested, t0)),
            ["BeginDrain", "Notify", "Notify", "RemovePidFile"]
        );
        assert_eq!(names(&m.on(Event::Tick, t0 + secs(30))), ["Hammer"]);
        let acts = m.on(Event::Tick, t0 + secs(40));
        assert!(matches!(acts[..], [Action::Exit(ExitReason::KillTimeout)]));
    }

    #[test]
    fn shutdown_during_upgrade_stops_the_child_and_waits_for_its_reaping() {
        let t0 = Instant::now();
        let mut m = started(false, t0);
        m.on(Event::RestartRequested, t0);
        m.on(Event::ChildSpawned { pid: 9 }, t0);
        let acts = m.on(Event::ShutdownRequested, t0);
        assert_eq!(
            names(&acts),
            [
                "StopChild",
                "RestartDone",
                "BeginDrain",
                "Notify",
                "Notify",
                "RemovePidFile"
            ]
        );
        assert!(
            m.on(Event::DrainIdle, t0).is_empty(),
            "must wait for the reap"
        );
        let acts = m.on(
            Event::ChildExited {
                pid: 9,
                status: "exit status 0".into(),
            },
            t0,
        );
        assert!(matches!(acts[..], [Action::Exit(ExitReason::Shutdown)]));
    }

    #[test]
    fn a_child_told_to_stop_is_killed_at_the_hammer_if_it_has_not_exited() {
        let t0 = Instant::now();
        let mut m = started(false, t0);
        m.on(Event::RestartRequested, t0);
        m.on(Event::ChildSpawned { pid: 9 }, t0);
        m.on(Event::ShutdownRequested, t0);
        assert!(
            m.on(Event::ChildReady { pid: 9 }, t0).is_empty(),
            "too late"
        );
        assert!(m.on(Event::DrainIdle, t0).is_empty(), "waits for the reap");
        let stop = Timeouts::default().stop;
        assert_eq!(m.deadline(), Some(t0 + stop));
        let acts = m.on(Event::Tick, t0 + stop);
        assert!(
            matches!(acts[..], [Action::Hammer, Action::KillChild { pid: 9 }]),
            "{acts:?}"
        );
        let killed = Event::ChildExited {
            pid: 9,
            status: "killed by signal 9".into(),
        };
        let acts = m.on(killed, t0 + stop);
        assert!(matches!(acts[..], [Action::Exit(ExitReason::Shutdown)]));
    }

    #[test]
    fn a_request_before_started_starts_first() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), 1, false);
        assert_eq!(
            names(&m.on(Event::RestartRequested, t0)),
            [
                "WritePidFile",
                "Notify",
                "Notify",
                "Ready",
                "Notify",
                "Notify",
                "Spawn"
            ]
        );
    }

    #[test]
    fn a_successor_that_stops_deliberately_or_a_shutdown_is_not_taken_back() {
        let t0 = Instant::now();
        let exited = |pid| Event::ChildExited {
            pid,
            status: "exit status 0".into(),
        };
        // The successor was told to stop (it said so before exiting).
        let mut m = started(false, t0);
        m.on(Event::RestartRequested, t0);
        m.on(Event::ChildSpawned { pid: 7 }, t0);
        m.on(Event::ChildReady { pid: 7 }, t0);
        assert!(m.on(Event::ChildStopping { pid: 7 }, t0).is_empty());
        assert!(m.on(exited(7), t0).is_empty());
        assert!(!m.is_accepting());
        // Both generations were told to stop (systemd signals the whole
        // service).
        let mut m = started(false, t0);
        m.on(Event::RestartRequested, t0);
        m.on(Event::ChildSpawned { pid: 7 }, t0);
        m.on(Event::ChildReady { pid: 7 }, t0);
        assert!(m.on(Event::ShutdownRequested, t0).is_empty());
        assert!(m.on(exited(7), t0).is_empty());
        assert!(!m.is_accepting());
    }

    #[test]
    fn a_successor_shutting_down_while_its_parent_drains_tells_it() {
        let t0 = Instant::now();
        let mut m = started(true, t0);
        assert_eq!(
            names(&m.on(Event::ShutdownRequested, t0)),
            [
                "BeginDrain",
                "TellParentStopping",
                "Notify",
                "Notify",
                "RemovePidFile"
            ]
        );
    }

    #[test]
    fn a_supervised_worker_asks_drains_and_resumes_when_told() {
        let t0 = Instant::now();
        let mut m = Machine::supervised(Timeouts::default(), 5);
        assert_eq!(
            names(&m.on(Event::Started, t0)),
            ["Ready"],
            "no pid file, no notify"
        );
        assert_eq!(names(&m.on(Event::RestartRequested, t0)), ["AskSupervisor"]);
        assert_eq!(names(&m.on(Event::RestartRequested, t0)), ["Coalesced"]);
        let acts = m.on(Event::RestartAnswered(Ok(9)), t0);
        assert!(matches!(acts[..], [Action::RestartDone(Ok(9))]));
        let acts = m.on(Event::DrainRequested { successor: Some(9) }, t0);
        assert_eq!(names(&acts), ["BeginDrain"]);
        assert!(!m.is_accepting());
        let acts = m.on(Event::ResumeRequested, t0);
        assert_eq!(names(&acts), ["Resume", "SuccessorLost"]);
        assert!(matches!(acts[1], Action::SuccessorLost { pid: 9, .. }));
        assert!(m.is_accepting());
        assert!(m.on(Event::DrainIdle, t0).is_empty(), "serving again");
        m.on(
            Event::DrainRequested {
                successor: Some(10),
            },
            t0,
        );
        let acts = m.on(Event::DrainIdle, t0);
        assert!(matches!(
            acts[..],
            [Action::Exit(ExitReason::HandedOver { successor: 10 })]
        ));
        // The supervisor gone: drain and exit.
        let mut m = Machine::supervised(Timeouts::default(), 5);
        m.on(Event::Started, t0);
        assert_eq!(names(&m.on(Event::ParentExited, t0)), ["BeginDrain"]);
        let acts = m.on(Event::DrainIdle, t0);
        assert!(matches!(acts[..], [Action::Exit(ExitReason::Shutdown)]));
        // The supervisor drains the asker before it answers (it answers once
        // the old worker stopped accepting): the drain is the answer.
        let mut m = Machine::supervised(Timeouts::default(), 5);
        m.on(Event::Started, t0);
        m.on(Event::RestartRequested, t0);
        let acts = m.on(Event::DrainRequested { successor: Some(9) }, t0);
        assert!(matches!(
            acts[..],
            [Action::BeginDrain, Action::RestartDone(Ok(9))]
        ));
        assert!(m.on(Event::RestartAnswered(Ok(9)), t0).is_empty());
        // Drained for a shutdown instead: the restart will not happen.
        let mut m = Machine::supervised(Timeouts::default(), 5);
        m.on(Event::Started, t0);
        m.on(Event::RestartRequested, t0);
        let acts = m.on(Event::DrainRequested { successor: None }, t0);
        assert!(matches!(
            acts[..],
            [
                Action::BeginDrain,
                Action::RestartDone(Err(Error::ShuttingDown))
            ]
        ));
    }

    #[test]
    fn a_shutdown_delay_serves_unready_then_drains_and_a_second_request_ends_it() {
        let t0 = Instant::now();
        let timeouts = Timeouts {
            shutdown_delay: secs(2),
            ..Timeouts::default()
        };
        let mut m = Machine::new(timeouts, 1, false);
        m.on(Event::Started, t0);
        let acts = m.on(Event::ShutdownRequested, t0);
        assert_eq!(names(&acts), ["Notify", "Notify"]);
        assert!(matches!(acts[0], Action::Notify(Notify::Stopping)));
        assert_eq!(m.state(), State::ShuttingDown);
        assert!(m.is_accepting() && !m.state().is_ready());
        assert_eq!(m.deadline(), Some(t0 + secs(2)));
        assert!(matches!(
            &m.on(Event::RestartRequested, t0)[..],
            [Action::RestartDone(Err(Error::ShuttingDown))]
        ));
        assert!(m.on(Event::Tick, t0 + secs(1)).is_empty());
        let acts = m.on(Event::Tick, t0 + secs(2));
        assert_eq!(names(&acts), ["BeginDrain", "Notify", "RemovePidFile"]);
        assert_eq!(m.state(), State::Draining);
        // The stop timeout starts after the delay.
        assert_eq!(m.deadline(), Some(t0 + secs(32)));

        let mut m = Machine::new(timeouts, 1, false);
        m.on(Event::Started, t0);
        m.on(Event::ShutdownRequested, t0);
        let acts = m.on(Event::ShutdownRequested, t0 + secs(1));
        assert_eq!(names(&acts), ["BeginDrain", "Notify", "RemovePidFile"]);
    }

    #[test]
    fn a_supervised_worker_waits_out_the_delay_when_told_to_stop_but_not_to_hand_over() {
        let t0 = Instant::now();
        let timeouts = Timeouts {
            shutdown_delay: secs(2),
            ..Timeouts::default()
        };
        let mut m = Machine::supervised(timeouts, 1);
        m.on(Event::Started, t0);
        assert!(
            m.on(Event::DrainRequested { successor: None }, t0)
                .is_empty()
        );
        assert_eq!(m.state(), State::ShuttingDown);
        assert_eq!(names(&m.on(Event::Tick, t0 + secs(2))), ["BeginDrain"]);
        assert_eq!(m.state(), State::Draining);

        // Told again: drains at once. A handover never waits.
        let mut m = Machine::supervised(timeouts, 1);
        m.on(Event::Started, t0);
        m.on(Event::ShutdownRequested, t0);
        let acts = m.on(Event::DrainRequested { successor: None }, t0);
        assert_eq!(names(&acts), ["BeginDrain"]);
        let mut m = Machine::supervised(timeouts, 1);
        m.on(Event::Started, t0);
        let acts = m.on(Event::DrainRequested { successor: Some(2) }, t0);
        assert_eq!(names(&acts), ["BeginDrain"]);
    }
}
