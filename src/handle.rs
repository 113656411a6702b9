//! [`Handle`]: ask a running driver to restart or shut down.

use futures_channel::{mpsc, oneshot};

use crate::error::{Error, Result};

pub(crate) enum Command {
    Restart(oneshot::Sender<Result<u32>>),
    Shutdown,
}

/// A cloneable handle to the driver of this generation.
///
/// Requests made before [`Handoff::run`](crate::Handoff::run) starts are
/// carried out once it does.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) tx: mpsc::UnboundedSender<Command>,
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

    /// Starts a graceful shutdown: stop accepting, let in-flight work finish
    /// within the stop timeout, then exit.
    pub fn shutdown(&self) {
        let _ = self.tx.unbounded_send(Command::Shutdown);
    }
}
