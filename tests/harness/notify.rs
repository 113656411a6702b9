//! A stand-in for systemd's notification socket: a Unix datagram socket in a
//! private directory, passed to a server as `NOTIFY_SOCKET`, that keeps every
//! datagram with the pid of the process that sent it (`SO_PASSCRED`, as
//! systemd reads it).

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The pid of the process that sent it.
    pub sender: i32,
    pub text: String,
}

impl Datagram {
    /// The value of `KEY` in the datagram's `KEY=VALUE` lines.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }
}

#[derive(Default)]
struct Received {
    datagrams: Mutex<Vec<Datagram>>,
    more: Condvar,
}

/// The socket and the thread that reads it (see the module docs).
pub struct NotifySocket {
    path: PathBuf,
    received: Arc<Received>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

/// How long the reader keeps reading at most.
const LIFETIME: Duration = Duration::from_secs(600);

impl NotifySocket {
    /// Binds `dir/notify.sock`.
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notification socket");
        rustix::net::sockopt::set_socket_passcred(&socket, true).expect("SO_PASSCRED");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("a read timeout");
        let (received, stop) = (
            Arc::new(Received::default()),
            Arc::new(AtomicBool::new(false)),
        );
        let (r, s) = (received.clone(), stop.clone());
        let reader = thread::Builder::new()
            .name("notify-socket".into())
            .spawn(move || read(&socket, &r, &s))
            .expect("spawn the notification reader");
        NotifySocket {
            path,
            received,
            stop,
            reader: Some(reader),
        }
    }

    /// Sets `NOTIFY_SOCKET` for `cmd`.
    pub fn pass_to(&self, cmd: &mut Command) {
        cmd.env("NOTIFY_SOCKET", &self.path);
    }

    /// Every datagram so far, in order of arrival.
    pub fn received(&self) -> Vec<Datagram> {
        self.lock().clone()
    }

    /// The number of datagrams so far: where [`NotifySocket::wait_for`]
    /// starts looking for what a step sends.
    pub fn mark(&self) -> usize {
        self.lock().len()
    }

    /// Waits (bounded) for a datagram at index >= `from`, received so far or
    /// later, for which `pred` holds.
    pub fn wait_for(
        &self,
        from: usize,
        pred: impl Fn(&Datagram) -> bool,
        timeout: Duration,
    ) -> Option<Datagram> {
        let deadline = Instant::now() + timeout;
        let mut datagrams = self.lock();
        loop {
            if let Some(d) = datagrams.iter().skip(from).find(|d| pred(d)) {
                return Some(d.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            datagrams = self
                .received
                .more
                .wait_timeout(datagrams, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Datagram>> {
        self.received
            .datagrams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn read(socket: &UnixDatagram, received: &Received, stop: &AtomicBool) {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) && started.elapsed() < LIFETIME {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let Ok(msg) = rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::empty(),
        ) else {
            continue; // the read timeout: look at `stop` again
        };
        let sender = control
            .drain()
            .find_map(|m| match m {
                RecvAncillaryMessage::ScmCredentials(cred) => Some(cred.pid.as_raw_nonzero().get()),
                _ => None,
            })
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..msg.bytes]).into_owned();
        eprintln!("[notify socket] from {sender}: {text:?}");
        received
            .datagrams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Datagram { sender, text });
        received.more.notify_all();
    }
}
