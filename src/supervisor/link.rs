//! The worker's side of the supervisor exchange: what the supervisor says
//! becomes events for the worker's machine.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use futures_channel::mpsc::UnboundedSender;

use super::wire::{self, ToWorker};
use crate::error::Error;
use crate::machine::Event;

/// Reads the supervisor's messages on a thread until it is gone (then
/// [`Event::ParentExited`]).
pub(crate) fn watch(channel: Arc<OwnedFd>, events: UnboundedSender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("handoff-supervisor".into())
        .spawn(move || {
            loop {
                let event = match wire::recv_from_supervisor(channel.as_fd()) {
                    Ok(Some(ToWorker::Drain { successor })) => Event::DrainRequested { successor },
                    Ok(Some(ToWorker::Resume)) => Event::ResumeRequested,
                    Ok(Some(ToWorker::Answer(answer))) => Event::RestartAnswered(
                        answer.map_err(|reason| Error::SupervisorRestart { reason }),
                    ),
                    // A report, not a decision: straight to the metrics.
                    Ok(Some(ToWorker::Counts(counts))) => {
                        crate::telemetry::set_counts(counts);
                        continue;
                    }
                    Ok(Some(ToWorker::Took(ok, took))) => {
                        crate::telemetry::restart_took(ok, took);
                        continue;
                    }
                    Ok(None) => break,
                    // A message this worker does not know (a newer
                    // supervisor's): ignored, the exchange goes on.
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        tracing::warn!("ignoring a message from the supervisor: {e}");
                        continue;
                    }
                    Err(e) => {
                        tracing::error!("the supervisor's channel failed: {e}");
                        break;
                    }
                };
                if events.unbounded_send(event).is_err() {
                    return;
                }
            }
            let _ = events.unbounded_send(Event::ParentExited);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the supervisor watcher thread: {e}");
    }
}
