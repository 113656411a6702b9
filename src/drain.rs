//! Draining: the [`Drainable`] trait, and [`DrainGroup`], a ready-made
//! implementation for servers that track their own connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use async_trait::async_trait;
use event_listener::Event;

/// Anything that serves connections and can be drained.
///
/// The driver calls [`begin_drain`](Drainable::begin_drain) once the successor
/// is ready (or on shutdown), then awaits [`idle`](Drainable::idle); at the
/// stop timeout it calls [`abort`](Drainable::abort), and at the kill timeout
/// the process exits whatever remains.
///
/// Implement it for a custom protocol, or use [`DrainGroup`], which implements
/// it. Framework adapters implement it for their servers.
#[async_trait]
pub trait Drainable: Send + Sync {
    /// Stops accepting, closes idle connections at once, and tells long-lived
    /// work (streams, upgraded connections) to wrap up. Called once.
    fn begin_drain(&self);

    /// How many connections or requests are still in flight.
    fn in_flight(&self) -> usize;

    /// Resolves when nothing is in flight any more. Only awaited after
    /// [`begin_drain`](Drainable::begin_drain).
    async fn idle(&self);

    /// Aborts whatever is still in flight (the hammer).
    fn abort(&self);
}

#[async_trait]
impl<D: Drainable + ?Sized> Drainable for Arc<D> {
    fn begin_drain(&self) {
        (**self).begin_drain()
    }
    fn in_flight(&self) -> usize {
        (**self).in_flight()
    }
    async fn idle(&self) {
        (**self).idle().await
    }
    fn abort(&self) {
        (**self).abort()
    }
}

#[async_trait]
impl<D: Drainable + ?Sized> Drainable for Box<D> {
    fn begin_drain(&self) {
        (**self).begin_drain()
    }
    fn in_flight(&self) -> usize {
        (**self).in_flight()
    }
    async fn idle(&self) {
        (**self).idle().await
    }
    fn abort(&self) {
        (**self).abort()
    }
}

/// Several servers drained together (for example one per listener).
#[async_trait]
impl<D: Drainable> Drainable for Vec<D> {
    fn begin_drain(&self) {
        self.iter().for_each(|d| d.begin_drain())
    }
    fn in_flight(&self) -> usize {
        self.iter().map(|d| d.in_flight()).sum()
    }
    async fn idle(&self) {
        for d in self {
            d.idle().await
        }
    }
    fn abort(&self) {
        self.iter().for_each(|d| d.abort())
    }
}

#[derive(Debug, Default)]
struct Flag {
    set: AtomicBool,
    event: Event,
}

impl Flag {
    fn raise(&self) {
        if !self.set.swap(true, Ordering::SeqCst) {
            self.event.notify(usize::MAX);
        }
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Default)]
struct Inner {
    draining: Flag,
    hammered: Flag,
    /// Connections (or requests) in flight.
    count: AtomicUsize,
    /// Accept loops that have not stopped yet.
    accepting: AtomicUsize,
    idle: Event,
}

impl Inner {
    fn is_idle(&self) -> bool {
        self.count.load(Ordering::SeqCst) == 0 && self.accepting.load(Ordering::SeqCst) == 0
    }
}

/// Tracks the connections of a server and implements [`Drainable`] for it.
///
/// The accept loop stops when [`signal`](DrainGroup::signal) resolves; every
/// connection holds a [`Tracked`] guard from [`track`](DrainGroup::track)
/// while it is open, watches the guard's drain signal to finish what it is
/// doing and close, and its hammer signal to stop at once.
///
/// An accept loop holds an [`accepting`](DrainGroup::accepting) guard until
/// it has stopped accepting. Otherwise the group could look idle in the
/// instant between an `accept()` and the `track()` of that connection, the
/// process would exit, and the kernel would answer the client with a reset. Cloning is cheap
/// and shares the group. (The same shape as hyper-util's `GracefulShutdown`,
/// without a runtime.)
///
/// ```
/// use handoff::{DrainGroup, Drainable};
/// # futures_util::FutureExt::now_or_never(async {
/// let group = DrainGroup::new();
/// let conn = group.track();
/// assert_eq!(group.in_flight(), 1);
/// group.begin_drain();
/// conn.drained().await; // resolved: draining started
/// drop(conn);
/// group.idle().await;   // resolved: nothing in flight
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct DrainGroup {
    inner: Arc<Inner>,
}

impl DrainGroup {
    /// A group with nothing in flight that is not draining.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one connection (or request) as in flight until the guard drops.
    pub fn track(&self) -> Tracked {
        self.inner.count.fetch_add(1, Ordering::SeqCst);
        Tracked {
            group: self.clone(),
        }
    }

    /// Held by an accept loop until it stops accepting: the group is not idle
    /// while any is held, but they do not count as [in flight](Drainable::in_flight).
    pub fn accepting(&self) -> Accepting {
        self.inner.accepting.fetch_add(1, Ordering::SeqCst);
        Accepting {
            group: self.clone(),
        }
    }

    /// A future that resolves when draining starts (immediately if it has).
    pub fn signal(&self) -> DrainSignal {
        DrainSignal::new(self.inner.clone(), Which::Drain)
    }

    /// A future that resolves when in-flight work is to be aborted.
    pub fn hammer_signal(&self) -> DrainSignal {
        DrainSignal::new(self.inner.clone(), Which::Hammer)
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.is_set()
    }
}

#[async_trait]
impl Drainable for DrainGroup {
    fn begin_drain(&self) {
        self.inner.draining.raise();
    }

    fn in_flight(&self) -> usize {
        self.inner.count.load(Ordering::SeqCst)
    }

    async fn idle(&self) {
        loop {
            if self.inner.is_idle() {
                return;
            }
            let listener = self.inner.idle.listen();
            if self.inner.is_idle() {
                return;
            }
            listener.await;
        }
    }

    fn abort(&self) {
        self.inner.draining.raise();
        self.inner.hammered.raise();
    }
}

/// One connection counted as in flight by a [`DrainGroup`]; dropping it ends
/// the count.
#[derive(Debug)]
pub struct Tracked {
    group: DrainGroup,
}

impl Tracked {
    /// Resolves when draining starts: finish the unit of work in hand, then close.
    pub fn drained(&self) -> DrainSignal {
        self.group.signal()
    }

    /// Resolves when remaining work must be aborted.
    pub fn hammered(&self) -> DrainSignal {
        self.group.hammer_signal()
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.group.is_draining()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.group.inner.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.group.inner.idle.notify(usize::MAX);
        }
    }
}

/// An accept loop of a [`DrainGroup`] that has not stopped yet; see
/// [`DrainGroup::accepting`].
#[derive(Debug)]
pub struct Accepting {
    group: DrainGroup,
}

impl Accepting {
    /// Resolves when draining starts: stop accepting, then drop this guard.
    pub fn drained(&self) -> DrainSignal {
        self.group.signal()
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        if self.group.inner.accepting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.group.inner.idle.notify(usize::MAX);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Drain,
    Hammer,
}

/// A cheap, cloneable future that resolves when draining (or the hammer)
/// starts. Long-lived handlers select on it to wrap up cleanly. It is `Send`
/// and `Sync`, so it can travel in request extensions.
pub struct DrainSignal {
    inner: Arc<Inner>,
    which: Which,
    wait: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

impl DrainSignal {
    fn new(inner: Arc<Inner>, which: Which) -> Self {
        DrainSignal {
            inner,
            which,
            wait: None,
        }
    }

    fn flag(inner: &Inner, which: Which) -> &Flag {
        match which {
            Which::Drain => &inner.draining,
            Which::Hammer => &inner.hammered,
        }
    }

    /// Whether the signal has fired.
    pub fn is_fired(&self) -> bool {
        Self::flag(&self.inner, self.which).is_set()
    }
}

impl Clone for DrainSignal {
    fn clone(&self) -> Self {
        DrainSignal::new(self.inner.clone(), self.which)
    }
}

impl std::fmt::Debug for DrainSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrainSignal")
            .field("which", &self.which)
            .field("fired", &self.is_fired())
            .finish()
    }
}

impl Future for DrainSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_fired() {
            return Poll::Ready(());
        }
        if self.wait.is_none() {
            let inner = self.inner.clone();
            let which = self.which;
            self.wait = Some(Box::pin(async move {
                loop {
                    let flag = DrainSignal::flag(&inner, which);
                    if flag.is_set() {
                        return;
                    }
                    let listener = flag.event.listen();
                    if flag.is_set() {
                        return;
                    }
                    listener.await;
                }
            }));
        }
        self.wait.as_mut().expect("set above").as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn signal_fires_on_drain_and_idle_waits_for_guards() {
        let group = DrainGroup::new();
        let a = group.track();
        let b = group.track();
        let mut signal = a.drained();
        assert!((&mut signal).now_or_never().is_none());
        assert!(group.idle().now_or_never().is_none());
        group.begin_drain();
        assert!(signal.now_or_never().is_some());
        drop(a);
        assert_eq!(group.in_flight(), 1);
        let mut idle = group.idle();
        assert!((&mut idle).now_or_never().is_none());
        drop(b);
        assert!(idle.now_or_never().is_some());
    }

    #[test]
    fn signals_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<DrainSignal>();
        assert_send_sync::<DrainGroup>();
    }

    #[test]
    fn an_accept_loop_holds_off_idle_without_counting_in_flight() {
        let group = DrainGroup::new();
        let accepting = group.accepting();
        assert_eq!(group.in_flight(), 0);
        group.begin_drain();
        let mut idle = group.idle();
        assert!((&mut idle).now_or_never().is_none(), "idle while accepting");
        let conn = group.track();
        drop(accepting);
        assert!(
            (&mut idle).now_or_never().is_none(),
            "idle with a connection"
        );
        drop(conn);
        assert!(idle.now_or_never().is_some());
    }

    #[test]
    fn abort_fires_both_signals() {
        let group = DrainGroup::new();
        let guard = group.track();
        group.abort();
        assert!(guard.drained().now_or_never().is_some());
        assert!(guard.hammered().now_or_never().is_some());
    }

    #[test]
    fn a_vec_drains_every_member() {
        let groups = vec![DrainGroup::new(), DrainGroup::new()];
        let _g = groups[1].track();
        groups.begin_drain();
        assert!(groups.iter().all(DrainGroup::is_draining));
        assert_eq!(groups.in_flight(), 1);
    }
}
