//! How a [`Server`](super::Server) drains: actix's accept loop pauses,
//! idle connections close, busy ones close after their response; once none
//! is left the generation is idle, and when it is done actix stops. If the
//! successor dies meanwhile, actix's accept loop resumes. The hammer stops
//! actix at once (it cannot resume after that).
//!
//! actix's own graceful stop is not used to start draining: it drops the
//! connections its accept thread has handed to a worker that has not picked
//! them up yet (a client that connected an instant before would see its
//! request fail), leaves idle keep-alive connections open until actix's
//! keep-alive timeout, and checks for the end once a second. Pausing first
//! and stopping only when nothing is left avoids all three.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_rt::ArbiterHandle;
use actix_web::dev::ServerHandle;
use futures_util::future::{BoxFuture, Either, join_all, select};

use super::connections::Connections;
use crate::latch::Latch;
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
/// How long a graceful stop of actix, once it holds no connection handoff
/// counts, may take before it is forced.
const GRACEFUL_STOP: Duration = Duration::from_secs(1);

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
    /// Set once the hammer told actix to stop.
    stopped: Latch,
    /// Set once actix's server future has completed.
    finished: Latch,
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
            stopped: Latch::default(),
            finished: Latch::default(),
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
        self.finished.raise();
    }

    pub(super) fn begin_drain(&self, grace: Duration) {
        self.group.begin_drain();
        if let Some(handle) = lock(&self.handle).clone() {
            // The command is sent now; the future only confirms it.
            *lock(&self.pausing) = Some(Box::pin(handle.pause()));
        }
        self.connections.close_idle(Instant::now(), grace);
    }

    /// Accepts again: the successor died while this generation drained.
    /// Not after the hammer, which stopped actix.
    pub(super) fn resume(&self) {
        self.group.resume();
        lock(&self.pausing).take();
        if self.finished.is_set() || self.stopped.is_set() {
            tracing::error!(
                "actix-web was stopped by the hammer; it cannot accept again: restart the service"
            );
            return;
        }
        if let Some(handle) = lock(&self.handle).clone() {
            // The command is sent now; the future only confirms it.
            stop_now(handle.resume());
        }
    }

    /// Resolves once no connection is open, and actix's workers hold none
    /// handoff has not counted yet.
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
                // actix's workers count a connection a moment longer than
                // handoff does, and one handed over just before the pause may
                // not be counted yet: once they have run, look again.
                select(pin!(self.probe_workers()), &mut hammer).await;
                if self.connections.len() == 0 {
                    break;
                }
                continue;
            }
            let due = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            select(select(changed, pin!(due)), &mut hammer).await;
        }
    }

    /// Stops actix, gracefully (its workers hold nothing more) unless the
    /// hammer fell, and resolves when it has stopped.
    pub(super) async fn finish(&self) {
        let handle = lock(&self.handle).clone();
        let Some(handle) = handle else {
            return;
        };
        let graceful = !self.group.hammer_signal().is_fired() && !self.stopped.is_set();
        let stopped = handle.stop(graceful);
        if graceful {
            // handoff counts no connection any more: a graceful stop that
            // lags (an actix worker that still counts one it closed) ends
            // with a forced one rather than actix's 30 s shutdown timeout.
            let bound = tokio::time::sleep(GRACEFUL_STOP);
            if let Either::Right(_) = select(pin!(stopped), pin!(bound)).await {
                tracing::debug!("actix's graceful stop lags; stopping it now");
                stop_now(handle.stop(false));
            }
        } else {
            stopped.await;
        }
        self.finished.raised().await;
    }

    pub(super) fn abort(&self) {
        self.group.abort();
        if let Some(handle) = lock(&self.handle).clone() {
            self.stopped.raise();
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
