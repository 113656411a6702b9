//! [`Handle`]: ask a running driver to restart or shut down, and see what it
//! is doing.

use std::sync::Arc;

use futures_channel::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::state::{Published, State};

pub(crate) enum Command {
    Restart(oneshot::Sender<Result<u32>>),
    Shutdown,
    InFlight(oneshot::Sender<usize>),
}

/// A cloneable handle to the driver of this generation.
///
/// Requests made before [`Handoff::run`](crate::Handoff::run) starts are
/// carried out once it does.
///
/// A readiness endpoint answers from [`state`](Handle::state), which turns
/// unready the moment a shutdown begins:
///
/// ```
/// fn readyz(handle: &handoff::Handle) -> (u16, String) {
///     let state = handle.state();
///     let status = if state.is_ready() { 200 } else { 503 };
///     (status, format!("{state} generation={}\n", handle.generation()))
/// }
/// # let handoff = handoff::Handoff::new().unwrap();
/// # assert_eq!(readyz(&handoff.handle()).0, 503); // not running yet
/// ```
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) tx: mpsc::UnboundedSender<Command>,
    pub(crate) published: Arc<Published>,
}

impl Handle {
    /// Restarts into a new process and resolves to its pid once it accepts
    /// (this generation then drains and exits). Resolves to an error if the
    /// successor could not start, exited or hung (this generation then serves
    /// on), or if this generation is draining. Requests made while a restart is
    /// in flight share its result.
    pub async fn restart(&self) -> Result<u32> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .unbounded_send(Command::Restart(tx))
            .map_err(|_| Error::DriverGone)?;
        rx.await.map_err(|_| Error::DriverGone)?
    }

    /// Starts a graceful shutdown: report unready, serve on for the shutdown
    /// delay if one is set, then stop accepting, let in-flight work finish
    /// within the stop timeout, and exit. A second shutdown request skips
    /// what is left of the delay.
    pub fn shutdown(&self) {
        let _ = self.tx.unbounded_send(Command::Shutdown);
    }

    /// What this generation is doing now, as its restart machine decided
    /// (no wait: read from memory the driver updates).
    pub fn state(&self) -> State {
        self.published.state()
    }

    /// Whether this generation should get new work: [`State::is_ready`].
    pub fn is_ready(&self) -> bool {
        self.state().is_ready()
    }

    /// This process's generation: 1 for the first process of the service
    /// (or the first worker of a supervisor), one more for each successor.
    pub fn generation(&self) -> u64 {
        self.published.generation()
    }

    /// How the latest restart this generation saw end went: the
    /// successor's pid, or why it failed; `None` before any. A successor
    /// that was ready and then died while this generation still drained
    /// shows here as [`Error::SuccessorLost`] (this generation took the
    /// listeners back and serves again), after the `Ok` its restart first
    /// resolved to.
    ///
    /// Under a supervisor, a worker sees the restarts it asked for (a
    /// restart signal sent to the worker, or [`restart`](Handle::restart))
    /// and a successor lost while it drained; the supervisor reports the
    /// restarts it was signalled for.
    ///
    /// ```
    /// fn last_restart(handle: &handoff::Handle) -> &'static str {
    ///     match handle.last_restart() {
    ///         None => "none",
    ///         Some(Ok(_)) => "ok",
    ///         Some(Err(handoff::Error::SuccessorLost { .. })) => "lost",
    ///         Some(Err(_)) => "failed",
    ///     }
    /// }
    /// # let handoff = handoff::Handoff::new().unwrap();
    /// # assert_eq!(last_restart(&handoff.handle()), "none");
    /// ```
    pub fn last_restart(&self) -> Option<Result<u32>> {
        self.published.last_restart()
    }

    /// How many connections or requests the server counts in flight
    /// ([`Drainable::in_flight`](crate::Drainable::in_flight)), asked of the
    /// driver: resolves once [`Handoff::run`](crate::Handoff::run) runs, and
    /// to [`Error::DriverGone`] once it has returned.
    pub async fn in_flight(&self) -> Result<usize> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .unbounded_send(Command::InFlight(tx))
            .map_err(|_| Error::DriverGone)?;
        rx.await.map_err(|_| Error::DriverGone)
    }
}
