//! The seam between decisions and effects: [`Host`] performs every effect,
//! [`Driver`] feeds the [`Machine`] and hands its actions to the host.
//!
//! `Handoff::run` drives a process host (spawning, signals, the pid file,
//! `sd_notify`, the server); tests drive the same [`Driver`] against a fake
//! host on a virtual clock.

use std::collections::VecDeque;
use std::time::Instant;

use crate::error::Error;
use crate::machine::{Action, Event, ExitReason, Machine, Notify};

/// Everything a generation does to the world, at the [`Machine`]'s request.
///
/// Each method is one [`Action`]; none decides anything. Errors that the
/// machine need not act on (a pid file that cannot be written, a service
/// manager that cannot be reached) are the host's to report.
pub trait Host {
    /// Runs the before-spawn hook and starts the successor; its pid, or why
    /// not ([`Action::Spawn`]).
    fn spawn(&mut self) -> Result<u32, Error>;
    /// Kills the successor `pid` ([`Action::KillChild`]); its exit is
    /// reported later as [`Event::ChildExited`].
    fn kill(&mut self, pid: u32);
    /// Tells the successor `pid`, still starting, to shut down
    /// ([`Action::StopChild`]); its exit is reported later as
    /// [`Event::ChildExited`].
    fn stop_child(&mut self, pid: u32);
    /// Stops accepting and starts draining ([`Action::BeginDrain`]); reports
    /// [`Event::DrainIdle`] once nothing is in flight.
    fn begin_drain(&mut self);
    /// Accepts again and stops watching for idle ([`Action::Resume`]).
    fn resume(&mut self);
    /// Aborts what is in flight ([`Action::Hammer`]).
    fn hammer(&mut self);
    /// Tells the service manager ([`Action::Notify`]).
    fn notify(&mut self, message: &Notify);
    /// Makes the pid file name `pid` ([`Action::WritePidFile`]).
    fn write_pid_file(&mut self, pid: u32);
    /// Removes the pid file if it names this process ([`Action::RemovePidFile`]).
    fn remove_pid_file(&mut self);
    /// This generation is ready ([`Action::Ready`]).
    fn ready(&mut self);
    /// Tells the parent this generation shuts down deliberately
    /// ([`Action::TellParentStopping`]).
    fn tell_parent_stopping(&mut self);
    /// Asks the supervisor for a restart ([`Action::AskSupervisor`]).
    fn ask_supervisor(&mut self);
    /// Reports a restart's result to whoever waits for it ([`Action::RestartDone`]).
    fn restart_done(&mut self, result: Result<u32, Error>);
    /// Reports a successor lost after it was ready ([`Action::SuccessorLost`]).
    fn successor_lost(&mut self, error: Error);
    /// Notes a restart request that joined the one in flight
    /// ([`Action::Coalesced`]) or waits for the parent ([`Action::Deferred`]).
    fn request_held(&mut self, action: &Action);
    /// The generation is done ([`Action::Exit`]).
    fn exit(&mut self, reason: ExitReason);
}

/// Feeds events to a [`Machine`] and has a [`Host`] perform its actions.
#[derive(Debug)]
pub struct Driver<H> {
    machine: Machine,
    host: H,
}

impl<H: Host> Driver<H> {
    /// A driver of `machine` on `host`.
    pub fn new(machine: Machine, host: H) -> Self {
        Driver { machine, host }
    }

    /// The machine.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The host, to feed it or inspect it.
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// Feeds `event` at `now`, performs every action that follows (a spawn's
    /// outcome is fed back at once), and returns the exit reason once the
    /// machine says [`Action::Exit`].
    pub fn handle(&mut self, event: Event, now: Instant) -> Option<ExitReason> {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            tracing::debug!(?event, "event");
            for action in self.machine.on(event, now) {
                if let Some(reason) = self.perform(action, &mut queue) {
                    return Some(reason);
                }
            }
        }
        None
    }

    fn perform(&mut self, action: Action, queue: &mut VecDeque<Event>) -> Option<ExitReason> {
        let host = &mut self.host;
        match action {
            Action::Spawn => queue.push_back(match host.spawn() {
                Ok(pid) => Event::ChildSpawned { pid },
                Err(e) => Event::SpawnFailed(e),
            }),
            Action::KillChild { pid } => host.kill(pid),
            Action::StopChild { pid } => host.stop_child(pid),
            Action::BeginDrain => host.begin_drain(),
            Action::Resume => host.resume(),
            Action::Hammer => host.hammer(),
            Action::Notify(message) => host.notify(&message),
            Action::WritePidFile(pid) => host.write_pid_file(pid),
            Action::RemovePidFile => host.remove_pid_file(),
            Action::Ready => host.ready(),
            Action::TellParentStopping => host.tell_parent_stopping(),
            Action::AskSupervisor => host.ask_supervisor(),
            Action::RestartDone(result) => host.restart_done(result),
            Action::SuccessorLost { pid, status } => {
                host.successor_lost(Error::SuccessorLost { pid, status })
            }
            Action::Coalesced | Action::Deferred => host.request_held(&action),
            Action::Exit(reason) => {
                host.exit(reason);
                return Some(reason);
            }
        }
        None
    }
}
