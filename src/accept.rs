//! The accept-loop contract that makes a drain reset-free, written once for
//! custom protocols and the HTTP adapter alike: [`DrainGroup::accept_loop`]
//! over any [`Accept`].

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::future::{Either, select};

use crate::drain::{DrainGroup, Tracked};
use crate::runtime::Runtime;

/// How long to wait after a failed accept (out of descriptors, for one)
/// before trying again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A listener that accepts connections: implemented by the runtime
/// adapters for their stream listeners (`tokio::net::TcpListener` and
/// `UnixListener` under `tokio`), and by you for anything else.
pub trait Accept: Send {
    /// An accepted connection.
    type Connection: Send;

    /// Accepts one connection.
    fn accept(&self) -> impl Future<Output = io::Result<Self::Connection>> + Send;
}

impl DrainGroup {
    /// Accepts on `listener` and hands each connection to `serve` with its
    /// [`Tracked`] guard, until the generation is
    /// [finished](crate::Drainable::finish); then drops the listener.
    ///
    /// - While it accepts it holds an [`accepting`](DrainGroup::accepting)
    ///   guard, and tracks each connection before `serve` sees it, so the
    ///   group never looks idle with a connection accepted but not counted.
    /// - When draining starts it stops accepting but keeps the listener
    ///   (`accept` is not called again): the successor accepts from the same
    ///   socket, so the kernel's queue loses nothing; and if the successor
    ///   dies, this generation [resumes](crate::Drainable::resume) accepting
    ///   from the connections that queued meanwhile.
    /// - A failed accept (out of descriptors, for one) is logged and retried
    ///   after 50 ms, on `runtime`'s timer.
    ///
    /// `serve` should spawn a task for the connection and return at once.
    ///
    /// ```no_run
    /// # #[cfg(feature = "tokio")]
    /// # async fn example(listener: tokio::net::TcpListener) {
    /// use handoff::DrainGroup;
    ///
    /// let group = DrainGroup::new();
    /// let accepting = group.clone();
    /// tokio::spawn(async move {
    ///     accepting
    ///         .accept_loop(&handoff::tokio::Tokio, listener, |stream, tracked| {
    ///             tokio::spawn(async move {
    ///                 // serve `stream`; finish the unit of work in hand and
    ///                 // close once `tracked.drained()` resolves
    ///                 drop((stream, tracked));
    ///             });
    ///         })
    ///         .await
    /// });
    /// // handoff.run(handoff::tokio::Tokio, group).await
    /// # }
    /// ```
    pub async fn accept_loop<R, A, S>(&self, runtime: &R, listener: A, mut serve: S)
    where
        R: Runtime + ?Sized,
        A: Accept,
        S: FnMut(A::Connection, Tracked) + Send,
    {
        // One function, the listener owned here: only its accept future is
        // held across an await, so the listener need not be `Sync`.
        loop {
            let accepting = self.accepting();
            let mut drained = self.signal();
            while !drained.is_fired() {
                // The drain signal is polled first: once it fired, nothing
                // more is accepted.
                let accepted = match select(&mut drained, pin!(listener.accept())).await {
                    Either::Left(_) => break,
                    Either::Right((accepted, _)) => accepted,
                };
                match accepted {
                    Ok(connection) => serve(connection, self.track()),
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        let backoff = runtime.sleep_until(Instant::now() + ACCEPT_BACKOFF);
                        if let Either::Left(_) = select(&mut drained, backoff).await {
                            break;
                        }
                    }
                }
            }
            drop(accepting);
            tracing::debug!("stopped accepting");
            if !self.resumed().await {
                return;
            }
            tracing::debug!("accepting again");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use futures_util::FutureExt;
    use futures_util::future::BoxFuture;
    use futures_util::stream::BoxStream;

    use super::*;
    use crate::Drainable;
    use crate::runtime::Signal;

    struct NoTimer;

    impl Runtime for NoTimer {
        fn sleep_until(&self, _: Instant) -> BoxFuture<'static, ()> {
            Box::pin(std::future::ready(()))
        }
        fn signals(&self, _: &[Signal]) -> crate::Result<BoxStream<'static, Signal>> {
            Ok(Box::pin(futures_util::stream::pending()))
        }
    }

    /// Polls `fut` until it stalls; whether it ended.
    fn ended(fut: &mut (impl Future<Output = ()> + Unpin)) -> bool {
        fut.now_or_never().is_some()
    }

    /// A listener that accepts what the test queued, then waits.
    struct Scripted(Arc<Mutex<VecDeque<Result<u32, ()>>>>);

    impl Accept for Scripted {
        type Connection = u32;

        fn accept(&self) -> impl Future<Output = io::Result<u32>> + Send {
            let next = self.0.lock().unwrap().pop_front();
            async move {
                match next {
                    Some(Ok(n)) => Ok(n),
                    Some(Err(())) => Err(io::Error::other("EMFILE")),
                    None => std::future::pending().await,
                }
            }
        }
    }

    #[test]
    fn pauses_on_drain_resumes_and_ends_when_finished() {
        let group = DrainGroup::new();
        let queue = Arc::new(Mutex::new(VecDeque::from([Ok(1), Err(()), Ok(2)])));
        let served = Arc::new(Mutex::new(Vec::new()));
        let s = served.clone();
        let mut accept_loop = Box::pin(group.accept_loop(
            &NoTimer,
            Scripted(queue.clone()),
            move |n, tracked| s.lock().unwrap().push((n, tracked)),
        ));
        assert!(!ended(&mut accept_loop));
        assert_eq!(served.lock().unwrap().len(), 2, "accepted past an error");
        assert_eq!(group.in_flight(), 2, "tracked before served");

        group.begin_drain();
        queue.lock().unwrap().push_back(Ok(3));
        assert!(!ended(&mut accept_loop));
        assert_eq!(
            served.lock().unwrap().len(),
            2,
            "nothing accepted while draining"
        );
        served.lock().unwrap().clear();
        assert!(
            group.idle().now_or_never().is_some(),
            "a paused loop is idle"
        );

        group.resume();
        assert!(!ended(&mut accept_loop));
        assert_eq!(
            served.lock().unwrap().len(),
            1,
            "the queued connection is served"
        );

        group.begin_drain();
        assert!(!ended(&mut accept_loop));
        futures_util::FutureExt::now_or_never(group.finish()).unwrap();
        assert!(ended(&mut accept_loop), "finished: the loop ends");
    }
}
