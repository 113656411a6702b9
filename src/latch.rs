//! [`Latch`]: a flag that can be awaited in either state. The one type behind
//! "draining started", "the hammer fell" and "finished", in the core and the
//! adapters alike.

use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

/// A boolean that tasks can wait on: raised or lowered by anyone, awaited
/// until it is in the state a waiter wants.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    set: AtomicBool,
    event: Event,
}

impl Latch {
    /// Raises the flag; true if it was lowered.
    pub(crate) fn raise(&self) -> bool {
        self.change(true)
    }

    /// Lowers the flag; true if it was raised.
    pub(crate) fn lower(&self) -> bool {
        self.change(false)
    }

    fn change(&self, to: bool) -> bool {
        let changed = self.set.swap(to, Ordering::SeqCst) != to;
        if changed {
            self.event.notify(usize::MAX);
        }
        changed
    }

    /// Whether the flag is raised.
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Resolves once the flag is raised (at once if it is).
    pub(crate) async fn raised(&self) {
        self.until(true).await
    }

    /// Resolves once the flag is in state `want` (at once if it is).
    pub(crate) async fn until(&self, want: bool) {
        self.until_with(|set| set == want).await
    }

    /// Resolves once `done` holds, checked with the flag's state whenever the
    /// flag changes (and at once).
    pub(crate) async fn until_with(&self, done: impl Fn(bool) -> bool) {
        loop {
            if done(self.is_set()) {
                return;
            }
            let listener = self.event.listen();
            if done(self.is_set()) {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn waits_for_either_state() {
        let latch = Latch::default();
        assert!(latch.until(false).now_or_never().is_some());
        let mut raised = Box::pin(latch.raised());
        assert!((&mut raised).now_or_never().is_none());
        assert!(latch.raise());
        assert!(!latch.raise(), "raising twice changes nothing");
        assert!(raised.now_or_never().is_some());
        let mut lowered = Box::pin(latch.until(false));
        assert!((&mut lowered).now_or_never().is_none());
        assert!(latch.lower());
        assert!(lowered.now_or_never().is_some());
    }
}
