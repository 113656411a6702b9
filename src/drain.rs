//! Draining: the [`Drainable`] trait, and [`DrainGroup`], a ready-made
//! implementation for servers that track their own connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use async_trait::async_trait;
use event_listener::Event;

use crate::latch::Latch;
use crate::telemetry;

/// Anything that serves connections and can be drained.
///
/// The driver calls [`begin_drain`](Drainable::begin_drain) once the successor
/// is ready (or on shutdown), then awaits [`idle`](Drainable::idle); at the
/// stop timeout it calls [`abort`](Drainable::abort). Once the generation is
/// done it awaits [`finish`](Drainable::finish), and `run()` returns.
///
/// If the successor dies while this generation drains, the driver calls
/// [`resume`](Drainable::resume): this generation accepts again and is the
/// one serving. It may later drain again (another restart, or a shutdown).
/// So stopping to accept must keep the listener open, not drop it; see
/// [`DrainGroup::accept_loop`], which does that.
///
/// Implement it for a custom protocol, or use [`DrainGroup`], which implements
/// it. Framework adapters implement it for their servers.
#[async_trait]
pub trait Drainable: Send + Sync {
    /// Stops accepting (keeping the listeners), closes idle connections at
    /// once, and tells long-lived work (streams, upgraded connections) to wrap
    /// up. Called once per drain: again only after [`resume`](Drainable::resume).
    fn begin_drain(&self);

    /// Accepts again after [`begin_drain`](Drainable::begin_drain) (or after
    /// [`abort`](Drainable::abort)): the successor died, and this generation
    /// takes its listeners back. Connections already told to close still close.
    fn resume(&self);

    /// How many connections or requests are still in flight.
    fn in_flight(&self) -> usize;

    /// Resolves when nothing is in flight any more. Only awaited after
    /// [`begin_drain`](Drainable::begin_drain); dropped unfinished when the
    /// drain is cancelled by [`resume`](Drainable::resume).
    async fn idle(&self);

    /// Aborts whatever is still in flight (the hammer).
    fn abort(&self);

    /// Called once when the generation is done (drained, or at the kill
    /// timeout after [`abort`](Drainable::abort)), right before `run()`
    /// returns: release what is left, such as the listeners an accept loop
    /// kept while paused. Nothing by default.
    async fn finish(&self) {}
}

macro_rules! forward_drainable {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<D: Drainable + ?Sized> Drainable for $ty {
            fn begin_drain(&self) {
                (**self).begin_drain()
            }
            fn resume(&self) {
                (**self).resume()
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
            async fn finish(&self) {
                (**self).finish().await
            }
        }
    )*};
}

forward_drainable!(Arc<D>, Box<D>);

/// Several servers drained together (for example one per listener).
#[async_trait]
impl<D: Drainable> Drainable for Vec<D> {
    fn begin_drain(&self) {
        self.iter().for_each(|d| d.begin_drain())
    }
    fn resume(&self) {
        self.iter().for_each(|d| d.resume())
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
    async fn finish(&self) {
        for d in self {
            d.finish().await
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    draining: Latch,
    hammered: Latch,
    /// How many drains (hammers) have started, resumed ones included: a
    /// connection told to close by one still closes after a resume.
    drains: AtomicU64,
    hammers: AtomicU64,
    /// Set once the generation is done: paused accept loops end.
    finished: Latch,
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

    fn latch(&self, which: Which) -> &Latch {
        match which {
            Which::Drain => &self.draining,
            Which::Hammer => &self.hammered,
        }
    }

    fn started(&self, which: Which) -> u64 {
        match which {
            Which::Drain => self.drains.load(Ordering::SeqCst),
            Which::Hammer => self.hammers.load(Ordering::SeqCst),
        }
    }

    /// Whether `which` is on now, or started since `since` started ones.
    fn fired(&self, which: Which, since: u64) -> bool {
        self.latch(which).is_set() || self.started(which) > since
    }

    fn start(&self, which: Which) {
        let latch = self.latch(which);
        if !latch.is_set() {
            // Counted first: whoever wakes on the latch sees the count.
            match which {
                Which::Drain => self.drains.fetch_add(1, Ordering::SeqCst),
                Which::Hammer => self.hammers.fetch_add(1, Ordering::SeqCst),
            };
            latch.raise();
        }
    }
}

/// Tracks the connections of a server and implements [`Drainable`] for it.
///
/// Every connection holds a [`Tracked`] guard from [`track`](DrainGroup::track)
/// while it is open, watches the guard's drain signal to finish what it is
/// doing and close, and its hammer signal to stop at once. Accept with
/// [`accept_loop`](DrainGroup::accept_loop), which keeps the contract that
/// makes a drain reset-free: it pauses when draining starts (keeping the
/// listener, in case the successor dies and this generation
/// [resumes](Drainable::resume)), holds an [`accepting`](DrainGroup::accepting)
/// guard while it accepts, tracks each connection before serving it, and backs
/// off when accepting fails (out of descriptors).
///
/// Cloning is cheap and shares the group. (The same shape as hyper-util's
/// `GracefulShutdown`, without a runtime.)
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
            draining: self.draining(),
            _counted: telemetry::InFlight::connection(),
            idle_closed: false,
        }
    }

    /// Held by an accept loop while it accepts: the group is not idle while
    /// any is held, but they do not count as [in flight](Drainable::in_flight).
    /// Otherwise the group could look idle in the instant between an
    /// `accept()` and the `track()` of that connection, the process would
    /// exit, and the kernel would answer the client with a reset.
    /// [`accept_loop`](DrainGroup::accept_loop) holds it for you.
    pub fn accepting(&self) -> Accepting {
        self.inner.accepting.fetch_add(1, Ordering::SeqCst);
        Accepting {
            group: self.clone(),
        }
    }

    /// The drain as seen from now on: its signals fire for a drain that is
    /// under way or starts later (see [`Draining`]).
    pub fn draining(&self) -> Draining {
        Draining {
            group: self.clone(),
            drains: self.inner.started(Which::Drain),
            hammers: self.inner.started(Which::Hammer),
        }
    }

    /// A future that resolves when draining starts (immediately if it has).
    pub fn signal(&self) -> DrainSignal {
        self.draining().signal()
    }

    /// A future that resolves when in-flight work is to be aborted.
    pub fn hammer_signal(&self) -> DrainSignal {
        self.draining().hammer_signal()
    }

    /// Whether draining has started (and not been [resumed](Drainable::resume)).
    pub fn is_draining(&self) -> bool {
        self.inner.draining.is_set()
    }

    /// Whether the generation is done ([`finish`](Drainable::finish)).
    pub fn is_finished(&self) -> bool {
        self.inner.finished.is_set()
    }

    /// While draining: resolves to `true` when this generation
    /// [resumes](Drainable::resume) accepting, or `false` once it is
    /// [finished](Drainable::finish) (stop serving for good then). At once
    /// when not draining. A loop that serves a listener or a datagram socket
    /// waits on it after it stopped for the drain signal.
    pub async fn resumed(&self) -> bool {
        let finished = std::pin::pin!(self.inner.finished.raised());
        let resumed = std::pin::pin!(self.inner.draining.until(false));
        match futures_util::future::select(finished, resumed).await {
            futures_util::future::Either::Left(_) => false,
            futures_util::future::Either::Right(_) => !self.is_finished(),
        }
    }
}

#[async_trait]
impl Drainable for DrainGroup {
    fn begin_drain(&self) {
        self.inner.start(Which::Drain);
    }

    fn resume(&self) {
        self.inner.hammered.lower();
        self.inner.draining.lower();
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
        self.inner.start(Which::Drain);
        self.inner.start(Which::Hammer);
    }

    async fn finish(&self) {
        self.inner.finished.raise();
    }
}

/// The drain as one connection (or request, or task) sees it: its
/// [`signal`](Draining::signal) fires when a drain starts, and stays fired
/// for this connection even if the generation later
/// [resumes](Drainable::resume) accepting (a connection told to close
/// closes). Cheap to clone; `Send` and `Sync`, so it travels in request
/// extensions. The HTTP adapters give every request one.
#[derive(Debug, Clone)]
pub struct Draining {
    group: DrainGroup,
    drains: u64,
    hammers: u64,
}

impl Draining {
    /// Resolves when draining starts (at once if it has): finish the unit of
    /// work in hand, then close.
    pub fn signal(&self) -> DrainSignal {
        DrainSignal::new(self.group.inner.clone(), Which::Drain, self.drains)
    }

    /// Resolves when what is still in flight is to be aborted (the stop
    /// timeout passed): stop at once.
    pub fn hammer_signal(&self) -> DrainSignal {
        DrainSignal::new(self.group.inner.clone(), Which::Hammer, self.hammers)
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.group.inner.fired(Which::Drain, self.drains)
    }

    /// The group this view belongs to.
    pub fn group(&self) -> &DrainGroup {
        &self.group
    }
}

/// One connection counted as in flight by a [`DrainGroup`]; dropping it ends
/// the count.
#[derive(Debug)]
pub struct Tracked {
    draining: Draining,
    /// The `metrics` feature's gauge of connections in flight.
    _counted: telemetry::InFlight,
    /// Closed by the drain while idle (counted apart from those drained).
    idle_closed: bool,
}

impl Tracked {
    /// Resolves when draining starts: finish the unit of work in hand, then close.
    pub fn drained(&self) -> DrainSignal {
        self.draining.signal()
    }

    /// Resolves when remaining work must be aborted.
    pub fn hammered(&self) -> DrainSignal {
        self.draining.hammer_signal()
    }

    /// Whether draining has started since this connection was accepted.
    pub fn is_draining(&self) -> bool {
        self.draining.is_draining()
    }

    /// The drain as this connection sees it, to hand to its tasks.
    pub fn draining(&self) -> &Draining {
        &self.draining
    }

    /// Says the connection ends because a drain closed it while idle: the
    /// `metrics` feature counts it in `handoff_connections_closed_idle_total`
    /// rather than `handoff_connections_drained_total`.
    pub fn closed_idle(&mut self) {
        self.idle_closed = true;
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let inner = &self.draining.group.inner;
        telemetry::connection_ended(
            || inner.fired(Which::Hammer, self.draining.hammers),
            self.idle_closed,
            || inner.fired(Which::Drain, self.draining.drains),
        );
        if inner.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            inner.idle.notify(usize::MAX);
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
    since: u64,
    wait: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

impl DrainSignal {
    fn new(inner: Arc<Inner>, which: Which, since: u64) -> Self {
        DrainSignal {
            inner,
            which,
            since,
            wait: None,
        }
    }

    /// Whether the signal has fired.
    pub fn is_fired(&self) -> bool {
        self.inner.fired(self.which, self.since)
    }
}

impl Clone for DrainSignal {
    fn clone(&self) -> Self {
        DrainSignal::new(self.inner.clone(), self.which, self.since)
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
            let (inner, which, since) = (self.inner.clone(), self.which, self.since);
            self.wait = Some(Box::pin(async move {
                let check = |_| inner.fired(which, since);
                inner.latch(which).until_with(check).await
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

    #[test]
    fn a_resume_accepts_again_but_connections_told_to_close_still_close() {
        let group = DrainGroup::new();
        let old = group.track();
        group.begin_drain();
        group.abort();
        group.resume();
        assert!(!group.is_draining());
        assert!(old.is_draining(), "told to close before the resume");
        assert!(old.drained().now_or_never().is_some());
        assert!(old.hammered().now_or_never().is_some());
        let new = group.track();
        assert!(!new.is_draining());
        assert!(new.drained().now_or_never().is_none());
        assert!(new.hammered().now_or_never().is_none());
        group.begin_drain();
        assert!(new.drained().now_or_never().is_some());
        assert!(new.hammered().now_or_never().is_none());
    }
}
