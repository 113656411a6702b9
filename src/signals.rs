//! Signals that arrive between [`Builder::build`](crate::Builder::build) and
//! [`Handoff::run`](crate::Handoff::run): caught from `build()` on, so a
//! restart or shutdown signal sent to a starting generation does not kill it,
//! and delivered once `run()` has installed the runtime's handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::runtime::Signal;
use crate::sys;

/// The restart and shutdown signals of one [`Handoff`](crate::Handoff), caught
/// until [`take`](EarlySignals::take).
#[derive(Debug, Default)]
pub(crate) struct EarlySignals {
    caught: Vec<(Signal, Arc<AtomicBool>, signal_hook_registry::SigId)>,
}

impl EarlySignals {
    /// Catches each of `signals` (in this order of delivery). A signal that
    /// cannot be caught keeps its default action, with a warning.
    pub(crate) fn catch(signals: &[Signal]) -> Self {
        let mut caught = Vec::new();
        for &signal in signals {
            let flag = Arc::new(AtomicBool::new(false));
            match sys::raise_on_signal(signal.as_raw(), flag.clone()) {
                Ok(id) => caught.push((signal, flag, id)),
                Err(e) => tracing::warn!(%signal, "cannot catch before run(): {e}"),
            }
        }
        EarlySignals { caught }
    }

    /// Stops catching and returns the signals that arrived meanwhile. Call it
    /// once the runtime's handlers are installed: a signal arriving in between
    /// is seen by both, and a restart or shutdown asked twice at once is the
    /// same as asked once.
    pub(crate) fn take(&mut self) -> Vec<Signal> {
        self.caught
            .drain(..)
            .filter_map(|(signal, flag, id)| {
                signal_hook_registry::unregister(id);
                flag.load(Ordering::SeqCst).then_some(signal)
            })
            .collect()
    }
}

impl Drop for EarlySignals {
    fn drop(&mut self) {
        let missed = self.take();
        if !missed.is_empty() {
            tracing::warn!(
                ?missed,
                "the Handoff was dropped before run(): these signals were caught and not acted on"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_signal_is_delivered_once() {
        let mut early = EarlySignals::catch(&[Signal::Usr1]);
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::USR1)
            .unwrap();
        // Another thread of the test harness may take it, a moment later.
        let flag = early.caught[0].1.clone();
        for _ in 0..1000 {
            if flag.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(early.take(), [Signal::Usr1]);
        assert!(early.take().is_empty());
    }
}
