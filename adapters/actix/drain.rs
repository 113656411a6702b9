//! How a [`Server`](super::Server) drains: actix's accept loop pauses,
//! idle connections close, busy ones close after their response, and once
//! none is left actix stops; the hammer stops actix at once.
//!
//! actix's own graceful stop is not used to start draining: it drops the
//! connections its accept thread has handed to a worker that has not picked
//! them up yet (a client that connected an instant before would see its
//! request fail), leaves idle keep-alive connections open until actix's
//! keep-alive timeout, and checks for the end once a second. Pausing first
//! and stopping only when nothing is left avoids all three.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_rt::ArbiterHandle;
use actix_web::dev::ServerHandle;
use event_listener::Event;
use futures_util::future::{BoxFuture, join_all, select};

use super::connections::Connections;
use crate::{DrainGroup, Drainable};

/// After actix confirms the pause, how long its accept thread gets to act on
/// it before "no connection open" can mean idle: a connection accepted just
/// before the pause must reach a worker (and be counted) before actix is
/// stopped, or actix would drop it. actix confirms the pause when it has
/// woken its accept thread, not when that thread has paused, and gives no
/// event for that; the accept thread only has to be scheduled once. What it
/// handed to the workers before, they are then made to take (see
/// [`Shared::probe_workers`]).
const SETTLE: Duration = Duration::from_millis(20);

/// The state a [`Server`](super::Server) and its clones share.
pub(super) struct Shared {
    pub(super) group: DrainGroup,
    pub(super) connections: Arc<Connections>,
    /// Set once a worker has built an app with [`Server::app`](super::Server::app).
    pub(super) app_built: AtomicBool,
    /// Listeners added with [`Server::listen`](super::Server::listen).
    pub(super) listeners: AtomicUsize,
    /// actix's server, once started.
    handle: Mutex<Option<ServerHandle>>,
    /// actix's worker threads, which each build an app.
    workers: Mutex<Vec<ArbiterHandle>>,
    /// Resolves once actix has been told to pause accepting.
    pausing: Mutex<Option<BoxFuture<'static, ()>>>,
    finished: Finished,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("connections", &self.connections.len())
            .field("draining", &self.group.is_draining())
            .field("started", &lock(&self.handle).is_some())
            .field("finished", &self.finished.is_set())
            .finish_non_exhaustive()
    }
}

impl Default for Shared {
    fn default() -> Self {
        let group = DrainGroup::default();
        Shared {
            connections: Arc::new(Connections::new(group.clone())),
            group,
            app_built: AtomicBool::default(),
            listeners: AtomicUsize::default(),
            handle: Mutex::default(),
            workers: Mutex::default(),
            pausing: Mutex::default(),
            finished: Finished::default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Records the started actix server; `finished` must be called when its
    /// future completes.
    pub(super) fn started(&self, handle: ServerHandle) {
        *lock(&self.handle) = Some(handle);
    }

    /// An actix worker is building its app: called on its thread.
    pub(super) fn worker_started(&self) {
        if let Some(worker) = actix_rt::Arbiter::try_current() {
            lock(&self.workers).push(worker);
        }
    }

    /// Resolves once every actix worker has run a task queued after what
    /// it had been handed before this call: the connections actix's accept
    /// thread had passed on have reached `on_connect` (and are counted), and
    /// a connection that just closed is no longer counted by actix either.
    async fn probe_workers(&self) {
        let workers = lock(&self.workers).clone();
        let probes = workers.iter().filter_map(|worker| {
            let (done, probe) = futures_channel::oneshot::channel::<()>();
            let queued = worker.spawn(async move {
                tokio::task::yield_now().await;
                let _ = done.send(());
            });
            queued.then_some(probe)
        });
        // A worker that stopped drops its probe: nothing to wait for.
        join_all(probes).await;
    }

    /// The actix server future has completed.
    pub(super) fn finished(&self) {
        self.finished.set();
    }

    pub(super) fn begin_drain(&self, grace: Duration) {
        self.group.begin_drain();
        if let Some(handle) = lock(&self.handle).clone() {
            // The command is sent now; the future only confirms it.
            *lock(&self.pausing) = Some(Box::pin(handle.pause()));
        }
        self.connections.close_idle(Instant::now(), grace);
    }

    pub(super) async fn idle(&self, grace: Duration) {
        let mut hammer = self.group.hammer_signal();
        let pausing = lock(&self.pausing).take();
        if let Some(pausing) = pausing {
            let settled = async {
                pausing.await;
                tokio::time::sleep(SETTLE).await;
                self.probe_workers().await;
            };
            select(pin!(settled), &mut hammer).await;
        }
        // Scanning every connection on every change would cost O(n²) while
        // many close at once: scan when one may have become due.
        let mut scanned = None;
        let mut next: Option<Instant> = None;
        while !hammer.is_fired() {
            let changed = self.connections.listen();
            let idled = self.connections.idled();
            let now = Instant::now();
            if scanned != Some(idled) || next.is_some_and(|at| at <= now) {
                next = self.connections.close_idle(now, grace);
                scanned = Some(idled);
            }
            if self.connections.len() == 0 {
                break;
            }
            let due = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            select(select(changed, pin!(due)), &mut hammer).await;
        }
        let handle = lock(&self.handle).clone();
        let Some(handle) = handle else {
            return;
        };
        // actix's workers count a connection a moment longer than handoff
        // does; a worker that still counts one when told to stop gracefully
        // checks again only a second later.
        if !hammer.is_fired() {
            select(pin!(self.probe_workers()), &mut hammer).await;
        }
        // Graceful: actix's workers hold nothing more.
        handle.stop(!hammer.is_fired()).await;
        self.finished.wait().await;
    }

    pub(super) fn abort(&self) {
        self.group.abort();
        if let Some(handle) = lock(&self.handle).clone() {
            // Sent now; the connections are dropped with actix's workers.
            stop_now(handle.stop(false));
        }
    }
}

/// Lets a stop command's confirmation go: the command was sent when the
/// future was made.
pub(super) fn stop_now(confirmation: impl Future<Output = ()>) {
    drop(confirmation);
}

/// Set once, awaited by many.
#[derive(Debug, Default)]
struct Finished {
    set: AtomicBool,
    event: Event,
}

impl Finished {
    fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.event.notify(usize::MAX);
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    async fn wait(&self) {
        loop {
            if self.is_set() {
                return;
            }
            let listener = self.event.listen();
            if self.is_set() {
                return;
            }
            listener.await;
        }
    }
}
