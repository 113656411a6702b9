//! The restart state machine: sans-IO, with time passed in.
//!
//! [`Machine::on`] takes an [`Event`] and the current time and returns the
//! [`Action`]s to carry out; [`Machine::deadline`] says when the next
//! [`Event::Tick`] is due. The driver (`crate::driver`) feeds it from signals,
//! timers and child processes; tests feed it from a virtual clock.
//!
//! The rules it enforces:
//! - this generation never stops accepting before its successor said ready;
//! - at most two generations are alive: no successor is spawned while one is
//!   starting, nor while our own parent is still draining (a request made then
//!   is deferred until the parent exits);
//! - requests made while an upgrade is in flight share its result;
//! - a successor that fails (spawn error, exit, ready timeout) is killed and
//!   reaped, and this generation serves on;
//! - a drain ends in [`Action::Exit`] by stop timeout + kill timeout.

use std::time::{Duration, Instant};

use crate::error::Error;

/// The three timeouts that bound a restart and a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a successor has to say it is ready before it is killed.
    pub ready: Duration,
    /// How long in-flight work may take after draining starts before it is
    /// hammered (aborted).
    pub stop: Duration,
    /// How long after the hammer the process exits, whatever remains.
    pub kill: Duration,
}

impl Default for Timeouts {
    /// 30 s to become ready, 30 s to drain, 10 s more after the hammer.
    fn default() -> Self {
        Timeouts {
            ready: Duration::from_secs(30),
            stop: Duration::from_secs(30),
            kill: Duration::from_secs(10),
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
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
    /// A successor exited and was reaped.
    ChildExited {
        /// Its pid.
        pid: u32,
        /// How it ended, for the report.
        status: String,
    },
    /// This generation's own parent exited.
    ParentExited,
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
    KillTimeout,
}

/// A message for the service manager (systemd's `sd_notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notify {
    /// `RELOADING=1`: a restart began.
    Reloading,
    /// `MAINPID=pid` and `READY=1`: the successor accepts.
    MainPid(u32),
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
    /// Stop accepting, close idle connections, fire the drain signal.
    BeginDrain,
    /// Abort whatever is still in flight.
    Hammer,
    /// Tell the service manager.
    Notify(Notify),
    /// Write this pid to the pid file: the successor accepts and this
    /// generation has just been told to stop.
    WritePidFile(u32),
    /// Remove the pid file if it still names this process.
    RemovePidFile,
    /// Answer everyone waiting for a restart.
    RestartDone(Result<u32, Error>),
    /// A restart request joined the one already in flight.
    Coalesced,
    /// A restart request waits until this generation's parent has exited.
    Deferred,
    /// Exit the process.
    Exit(ExitReason),
}

#[derive(Debug, Clone)]
enum Phase {
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
    parent_alive: bool,
    restart_deferred: bool,
    shutdown_pending: bool,
    idle: bool,
    unreaped: Option<u32>,
}

impl Machine {
    /// A machine for a generation that has just become ready. `parent_alive`
    /// is true when it took over from a parent that is still draining.
    pub fn new(timeouts: Timeouts, parent_alive: bool) -> Self {
        Machine {
            phase: Phase::Serving,
            timeouts,
            parent_alive,
            restart_deferred: false,
            shutdown_pending: false,
            idle: false,
            unreaped: None,
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
            Phase::Draining { stop_at, .. } => Some(stop_at),
            Phase::Hammered { exit_at, .. } => Some(exit_at),
            _ => None,
        }
    }

    /// Whether this generation still accepts connections.
    pub fn is_accepting(&self) -> bool {
        matches!(
            self.phase,
            Phase::Serving | Phase::Spawning | Phase::AwaitingReady { .. } | Phase::Killing { .. }
        )
    }

    /// Whether the machine has said [`Action::Exit`].
    pub fn has_exited(&self) -> bool {
        matches!(self.phase, Phase::Exited)
    }

    /// Feeds one event at time `now` and returns what to do, in order.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::RestartRequested => self.on_restart(now, &mut out),
            Event::ShutdownRequested => self.on_shutdown(now, &mut out),
            Event::ChildSpawned { pid } => {
                if let Phase::Spawning = self.phase {
                    if self.shutdown_pending {
                        out.push(Action::KillChild { pid });
                        out.push(Action::RestartDone(Err(Error::ShuttingDown)));
                        self.unreaped = Some(pid);
                        self.begin_drain(None, now, &mut out);
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
                    out.push(Action::RestartDone(Err(error)));
                    self.phase = Phase::Serving;
                    if self.shutdown_pending {
                        self.begin_drain(None, now, &mut out);
                    }
                }
            }
            Event::ChildReady { pid } => {
                if let Phase::AwaitingReady { pid: child, .. } = self.phase {
                    if child == pid {
                        out.push(Action::RestartDone(Ok(pid)));
                        out.push(Action::Notify(Notify::MainPid(pid)));
                        self.begin_drain(Some(pid), now, &mut out);
                        out.push(Action::WritePidFile(pid));
                    }
                }
            }
            Event::ChildExited { pid, status } => self.on_child_exited(pid, status, now, &mut out),
            Event::ParentExited => {
                if self.parent_alive {
                    self.parent_alive = false;
                    if self.restart_deferred && matches!(self.phase, Phase::Serving) {
                        self.restart_deferred = false;
                        self.start_spawn(&mut out);
                    }
                }
            }
            Event::DrainIdle => {
                if matches!(self.phase, Phase::Draining { .. } | Phase::Hammered { .. }) {
                    self.idle = true;
                    self.maybe_exit(&mut out);
                }
            }
            Event::Tick => self.on_tick(now, &mut out),
        }
        out
    }

    fn on_restart(&mut self, _now: Instant, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Serving if self.parent_alive => {
                self.restart_deferred = true;
                out.push(Action::Deferred);
            }
            Phase::Serving => self.start_spawn(out),
            Phase::Spawning | Phase::AwaitingReady { .. } | Phase::Killing { .. } => {
                out.push(Action::Coalesced)
            }
            Phase::Draining { successor, .. } | Phase::Hammered { successor, .. } => {
                out.push(Action::RestartDone(Err(match successor {
                    Some(successor) => Error::HandedOver { successor },
                    None => Error::ShuttingDown,
                })))
            }
            Phase::Exited => out.push(Action::RestartDone(Err(Error::ShuttingDown))),
        }
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.phase.clone() {
            Phase::Serving => {
                if self.restart_deferred {
                    self.restart_deferred = false;
                    out.push(Action::RestartDone(Err(Error::ShuttingDown)));
                }
                self.begin_drain(None, now, out);
            }
            Phase::Spawning => self.shutdown_pending = true,
            Phase::AwaitingReady { pid, .. } => {
                out.push(Action::KillChild { pid });
                out.push(Action::RestartDone(Err(Error::ShuttingDown)));
                self.unreaped = Some(pid);
                self.begin_drain(None, now, out);
            }
            Phase::Killing { pid, error } => {
                out.push(Action::RestartDone(Err(error)));
                self.unreaped = Some(pid);
                self.begin_drain(None, now, out);
            }
            Phase::Draining { .. } | Phase::Hammered { .. } | Phase::Exited => {}
        }
    }

    fn on_child_exited(&mut self, pid: u32, status: String, now: Instant, out: &mut Vec<Action>) {
        if self.unreaped == Some(pid) {
            self.unreaped = None;
            self.maybe_exit(out);
            return;
        }
        match self.phase.clone() {
            Phase::AwaitingReady { pid: child, .. } if child == pid => {
                out.push(Action::RestartDone(Err(Error::SuccessorExited {
                    pid,
                    status,
                })));
                self.phase = Phase::Serving;
            }
            Phase::Killing { pid: child, error } if child == pid => {
                out.push(Action::RestartDone(Err(error)));
                self.phase = Phase::Serving;
                if self.shutdown_pending {
                    self.begin_drain(None, now, out);
                }
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
            Phase::Draining { successor, stop_at } if now >= stop_at => {
                out.push(Action::Hammer);
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
        out.push(Action::Spawn);
    }

    fn begin_drain(&mut self, successor: Option<u32>, now: Instant, out: &mut Vec<Action>) {
        if successor.is_none() {
            out.push(Action::Notify(Notify::Stopping));
            out.push(Action::RemovePidFile);
        }
        out.push(Action::BeginDrain);
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

    fn names(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| {
                let text = format!("{a:?}");
                text.split(['(', ' ', '{']).next().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn happy_restart_drains_after_ready() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), false);
        assert_eq!(
            names(&m.on(Event::RestartRequested, t0)),
            ["Notify", "Spawn"]
        );
        assert!(m.on(Event::ChildSpawned { pid: 7 }, t0).is_empty());
        assert!(m.is_accepting());
        assert_eq!(names(&m.on(Event::RestartRequested, t0)), ["Coalesced"]);
        let acts = m.on(Event::ChildReady { pid: 7 }, t0 + secs(1));
        assert_eq!(
            names(&acts),
            ["RestartDone", "Notify", "BeginDrain", "WritePidFile"]
        );
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
        let mut m = Machine::new(Timeouts::default(), false);
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
            [Action::RestartDone(Err(Error::ReadyTimeout { pid: 7, .. }))]
        ));
        assert!(m.is_accepting());
        assert_eq!(
            names(&m.on(Event::RestartRequested, t0 + secs(31))),
            ["Notify", "Spawn"]
        );
    }

    #[test]
    fn successor_waits_for_parent_before_upgrading() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), true);
        assert_eq!(names(&m.on(Event::RestartRequested, t0)), ["Deferred"]);
        assert_eq!(names(&m.on(Event::ParentExited, t0)), ["Notify", "Spawn"]);
    }

    #[test]
    fn drain_is_bounded_by_stop_plus_kill() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), false);
        assert_eq!(
            names(&m.on(Event::ShutdownRequested, t0)),
            ["Notify", "RemovePidFile", "BeginDrain"]
        );
        assert_eq!(names(&m.on(Event::Tick, t0 + secs(30))), ["Hammer"]);
        let acts = m.on(Event::Tick, t0 + secs(40));
        assert!(matches!(acts[..], [Action::Exit(ExitReason::KillTimeout)]));
    }

    #[test]
    fn shutdown_during_upgrade_kills_the_child_and_waits_for_its_reaping() {
        let t0 = Instant::now();
        let mut m = Machine::new(Timeouts::default(), false);
        m.on(Event::RestartRequested, t0);
        m.on(Event::ChildSpawned { pid: 9 }, t0);
        let acts = m.on(Event::ShutdownRequested, t0);
        assert_eq!(
            names(&acts),
            [
                "KillChild",
                "RestartDone",
                "Notify",
                "RemovePidFile",
                "BeginDrain"
            ]
        );
        assert!(
            m.on(Event::DrainIdle, t0).is_empty(),
            "must wait for the reap"
        );
        let acts = m.on(
            Event::ChildExited {
                pid: 9,
                status: "killed".into(),
            },
            t0,
        );
        assert!(matches!(acts[..], [Action::Exit(ExitReason::Shutdown)]));
    }
}
