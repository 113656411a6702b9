//! The connections actix has open, seen from outside actix: counted from
//! `on_connect` until actix drops them, with the requests in flight on each,
//! so that draining can close the idle ones.
//!
//! actix-web gives no handle on a connection once it is accepted. The
//! `on_connect` hook sees the socket, though, and whatever it puts into the
//! connection's extensions lives exactly as long as actix serves the
//! connection. So the hook keeps a duplicate of the descriptor there, and
//! draining closes an idle connection with `shutdown(SHUT_RD)` on it: actix
//! reads end-of-file, serves what it already received, and closes cleanly.
//! The duplicate is close-on-exec and closed with the connection, so a
//! descriptor number is never acted on after actix has let it go.
//!
//! The duplicate also keeps the socket open once actix has closed its own
//! descriptor: when actix lets a connection go with bytes the client sent
//! still unread, or bytes it sent not yet acknowledged, closing the socket
//! would make the kernel answer with a reset, which can destroy a response
//! the client has not read yet (or fail a client still sending its request
//! body). Such a connection lingers (see [`linger`]): what the client sends is
//! read and discarded until it closes, for at most [`LINGER`], and the
//! connection counts as open until then. One with nothing unread and
//! everything acknowledged closes at once, so clients that never close their
//! side do not hold the generation.

use std::any::Any;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::rt::net::TcpStream;
use event_listener::{Event, EventListener};

use crate::telemetry;
use crate::{DrainGroup, DrainSignal, Draining};

/// How long a connection actix has let go may linger, reading and discarding
/// what its client still sends, before it is closed anyway.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// Every connection actix serves for one [`Server`](super::Server).
#[derive(Debug, Default)]
pub(super) struct Connections {
    /// The server's drain group: lingering stops when the hammer falls.
    group: DrainGroup,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Notified when a connection opens, closes, or finishes a request.
    changed: Event,
    /// Counts connections opening and requests finishing: the events after
    /// which a connection may become due to close.
    idled: AtomicU64,
}

/// One connection.
#[derive(Debug)]
pub(super) struct Conn {
    /// A duplicate of actix's descriptor; `None` if it could not be made
    /// (out of descriptors), then the connection closes on actix's terms.
    /// Taken when the connection lingers.
    fd: Mutex<Option<OwnedFd>>,
    opened: Instant,
    /// Requests whose response has not been sent in full.
    busy: AtomicUsize,
    /// When the connection last became idle, in nanoseconds after `opened`.
    idle_at: AtomicU64,
    /// Set once draining has shut its read side.
    closed: AtomicBool,
    /// Set when a response went out with its request's body not read to
    /// the end: the client may still be sending it when the connection
    /// closes.
    body_unread: AtomicBool,
    /// The drain as this connection sees it: one that started while it was
    /// open closes it, even if the generation resumed accepting since.
    draining: Draining,
    /// Set when a drain closed it idle (for the metrics).
    idle_closed: AtomicBool,
    /// The `metrics` feature's gauge of connections in flight.
    _counted: telemetry::InFlight,
}

impl Connections {
    /// The connections of a server whose drain group is `group`.
    pub(super) fn new(group: DrainGroup) -> Self {
        Connections {
            group,
            next_id: AtomicU64::new(0),
            open: Mutex::default(),
            changed: Event::new(),
            idled: AtomicU64::new(0),
        }
    }

    /// Counts a connection actix just accepted; `io` is the `&dyn Any` actix
    /// passes to `on_connect`. The guard belongs in the connection's extensions.
    pub(super) fn open(self: &Arc<Self>, io: &dyn Any) -> ConnGuard {
        let fd = socket_of(io).and_then(|fd| match rustix::io::fcntl_dupfd_cloexec(fd, 3) {
            Ok(dup) => Some(dup),
            Err(e) => {
                tracing::debug!("cannot duplicate a connection's descriptor: {e}");
                None
            }
        });
        let conn = Arc::new(Conn {
            fd: Mutex::new(fd),
            opened: Instant::now(),
            busy: AtomicUsize::new(0),
            idle_at: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            body_unread: AtomicBool::new(false),
            draining: self.group.draining(),
            idle_closed: AtomicBool::new(false),
            _counted: telemetry::InFlight::connection(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, conn.clone());
        self.idled.fetch_add(1, Ordering::SeqCst);
        self.changed.notify(usize::MAX);
        ConnGuard {
            id,
            conn,
            connections: self.clone(),
        }
    }

    /// How many connections are open.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Changes when a connection opens or finishes a request: when it
    /// has not, [`close_idle`](Self::close_idle) need not run again before
    /// the time it last returned.
    pub(super) fn idled(&self) -> u64 {
        self.idled.load(Ordering::SeqCst)
    }

    /// Starts listening for the next change; check the state after this.
    pub(super) fn listen(&self) -> EventListener {
        self.changed.listen()
    }

    /// Closes every connection that has had no request in flight for
    /// `grace` (counted from its last response, or from its accept if it
    /// never sent one). Returns when the next one will have been idle that
    /// long, if any connection may become due.
    pub(super) fn close_idle(&self, now: Instant, grace: Duration) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for conn in self.lock().values() {
            if conn.closed.load(Ordering::SeqCst) || conn.busy.load(Ordering::SeqCst) > 0 {
                continue;
            }
            let due = conn.idle_since() + grace;
            if due <= now {
                conn.idle_closed.store(true, Ordering::SeqCst);
                conn.close_read();
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        next
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        lock(&self.open)
    }

    /// No longer counts connection `id`.
    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.changed.notify(usize::MAX);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // What the mutexes guard stays consistent whatever panicked holding them.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Conn {
    /// How the connection ended, for the metrics: on its own during a drain,
    /// closed idle by it, or cut by the hammer.
    fn drop(&mut self) {
        telemetry::connection_ended(
            || self.draining.hammer_signal().is_fired(),
            self.idle_closed.load(Ordering::SeqCst),
            || self.draining.is_draining(),
        );
    }
}

impl Conn {
    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_nanos(self.idle_at.load(Ordering::SeqCst))
    }

    /// Shuts the read side: actix reads end-of-file once it has read what
    /// arrived before, answers a request it has, and closes.
    fn close_read(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(fd) = &*lock(&self.fd) {
            match rustix::net::shutdown(fd, rustix::net::Shutdown::Read) {
                Ok(()) => tracing::debug!("closed an idle connection"),
                Err(e) => tracing::debug!("cannot shut an idle connection down: {e}"),
            }
        }
    }
}

/// The socket under what actix hands to `on_connect`: a TCP stream, or a
/// TLS stream over one (the only kinds [`Server`](super::Server) listens on).
fn socket_of(io: &dyn Any) -> Option<BorrowedFd<'_>> {
    #[cfg(feature = "tls")]
    if let Some(tls) = io.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>() {
        return Some(tls.get_ref().0.as_fd());
    }
    io.downcast_ref::<TcpStream>().map(TcpStream::as_fd)
}

/// Kept in a connection's extensions: counts the connection as open until
/// actix drops it.
#[derive(Debug)]
pub(super) struct ConnGuard {
    id: u64,
    conn: Arc<Conn>,
    connections: Arc<Connections>,
}

impl ConnGuard {
    /// Counts a request as in flight on this connection until the guard drops.
    pub(super) fn request(&self) -> Busy {
        self.conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy {
            conn: self.conn.clone(),
            connections: self.connections.clone(),
            _counted: telemetry::InFlight::request(),
        }
    }

    /// The drain as this connection sees it.
    pub(super) fn draining(&self) -> &Draining {
        &self.conn.draining
    }
}

impl Drop for ConnGuard {
    /// actix let the connection go: it closes now, or lingers first.
    fn drop(&mut self) {
        let fd = lock(&self.conn.fd).take();
        if let Some(fd) = &fd {
            // actix is done with the connection; its close sent the FIN
            // already, or dropping it without one (an error) would have.
            let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Write);
        }
        let hammer = self.conn.draining.hammer_signal();
        let runtime = tokio::runtime::Handle::try_current();
        match (fd, runtime) {
            (Some(fd), Ok(runtime)) if !hammer.is_fired() && self.conn.must_linger(&fd) => {
                self.conn.closed.store(true, Ordering::SeqCst);
                let (id, connections) = (self.id, self.connections.clone());
                let sending = self.conn.body_unread.load(Ordering::SeqCst)
                    || rustix::io::ioctl_fionread(&fd).unwrap_or(1) > 0;
                runtime.spawn(async move {
                    linger(fd, sending, hammer).await;
                    connections.remove(id);
                });
            }
            _ => self.connections.remove(self.id),
        }
    }
}

impl Conn {
    /// Whether closing the socket now could make the kernel reset it: the
    /// client may still be sending a request body, bytes it sent are
    /// unread, or bytes sent to it are not acknowledged.
    fn must_linger(&self, fd: &OwnedFd) -> bool {
        self.body_unread.load(Ordering::SeqCst)
            || rustix::io::ioctl_fionread(fd).unwrap_or(1) > 0
            || !all_acknowledged(fd.as_fd())
    }
}

/// Whether the client acknowledged every byte sent on a socket whose write
/// side is shut: all but the FIN, which comes after them (an unacknowledged
/// FIN is the kernel's to resend; the client's delayed acknowledgement of it
/// is not worth waiting for).
fn all_acknowledged(fd: BorrowedFd<'_>) -> bool {
    crate::sys::unacknowledged(fd).is_some_and(|n| n <= 1)
}

/// Lingers on a connection actix has let go, its write side shut (the
/// client reads end-of-file after the response): reads and discards
/// until the client closes, the hammer falls, or [`LINGER`] passes. A client
/// that was not `sending` anything (a request body, or bytes still unread)
/// is not waited for: the connection closes as soon as nothing is unread
/// and everything sent was acknowledged.
async fn linger(fd: OwnedFd, sending: bool, mut hammer: DrainSignal) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let Ok(stream) = tokio::net::TcpStream::from_std(std::net::TcpStream::from(fd)) else {
        return;
    };
    let mut sink = [0u8; 4096];
    // How long until the acknowledgements are checked again.
    let mut recheck = Duration::from_millis(1);
    loop {
        loop {
            match stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        if !sending && all_acknowledged(stream.as_fd()) {
            return;
        }
        let next = tokio::time::Instant::now() + recheck;
        let wake = if sending {
            deadline
        } else {
            next.min(deadline)
        };
        recheck = (recheck * 2).min(Duration::from_millis(50));
        tokio::select! {
            biased;
            _ = &mut hammer => return,
            _ = tokio::time::sleep_until(deadline) => {
                tracing::debug!("a lingering connection was not closed by its client in time");
                return;
            }
            _ = stream.readable() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// A request in flight, from the moment actix hands it to the app until its
/// response body has been sent (or dropped).
#[derive(Debug)]
pub(super) struct Busy {
    conn: Arc<Conn>,
    connections: Arc<Connections>,
    /// The `metrics` feature's gauge of requests in flight.
    _counted: telemetry::InFlight,
}

impl Busy {
    /// Its response goes out with the request body not read to the end (and
    /// says `Connection: close`): when the connection closes, the client may
    /// still be sending the body, so it lingers.
    pub(super) fn body_unread(&self) {
        self.conn.body_unread.store(true, Ordering::SeqCst);
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let idle = self.conn.opened.elapsed().as_nanos();
        self.conn
            .idle_at
            .store(u64::try_from(idle).unwrap_or(u64::MAX), Ordering::SeqCst);
        self.conn.busy.fetch_sub(1, Ordering::SeqCst);
        self.connections.idled.fetch_add(1, Ordering::SeqCst);
        self.connections.changed.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connections_are_due_after_the_grace() {
        let connections = Arc::new(Connections::new(DrainGroup::default()));
        let a = connections.open(&());
        let b = connections.open(&());
        assert_eq!(connections.len(), 2);
        let busy = b.request();
        let now = Instant::now();
        let grace = Duration::from_secs(1);
        let next = connections.close_idle(now, grace).expect("a is due later");
        assert!(next > now);
        assert!(!a.conn.closed.load(Ordering::SeqCst));
        connections.close_idle(now + grace * 2, grace);
        assert!(
            a.conn.closed.load(Ordering::SeqCst),
            "idle for longer than the grace"
        );
        assert!(!b.conn.closed.load(Ordering::SeqCst), "busy");
        drop(busy);
        assert!(b.conn.idle_since() > a.conn.idle_since());
        drop(a);
        assert_eq!(connections.len(), 1);
    }
}
