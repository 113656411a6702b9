//! Starting the successor and watching it: readiness, exit, reaping.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_channel::mpsc::UnboundedSender;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use rustix::process::{PidfdFlags, WaitId, WaitIdOptions};

use crate::error::Error;
use crate::machine::Event;
use crate::protocol;
use crate::sys;

/// What to execute for the next generation.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    /// The executable path, resolved when this process started.
    pub path: PathBuf,
    /// argv, including `argv[0]`.
    pub args: Vec<OsString>,
}

impl Command {
    /// The path this process was started from (`argv[0]` resolved against the
    /// starting directory and `PATH`) and its arguments.
    ///
    /// `/proc/self/exe` is not used: once a new build is installed over the
    /// old file it names a deleted file, and the point is to start the new one.
    pub(crate) fn from_startup() -> io::Result<Self> {
        let args: Vec<OsString> = std::env::args_os().collect();
        let argv0 = args.first().cloned().unwrap_or_default();
        let path = resolve_argv0(Path::new(&argv0)).or_else(|| std::env::current_exe().ok());
        let path = path.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("cannot find the executable {argv0:?} was started as"),
            )
        })?;
        Ok(Command { path, args })
    }
}

fn resolve_argv0(argv0: &Path) -> Option<PathBuf> {
    if argv0.as_os_str().is_empty() {
        return None;
    }
    if argv0.as_os_str().as_bytes().contains(&b'/') {
        return std::path::absolute(argv0).ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(argv0))
        .find(|candidate| rustix::fs::access(candidate, rustix::fs::Access::EXEC_OK).is_ok())
        .and_then(|p| std::path::absolute(p).ok())
}

/// A started child (a successor, or a supervisor's worker).
#[derive(Debug)]
pub(crate) struct Successor {
    pub pid: u32,
    pidfd: Arc<OwnedFd>,
    /// The handover channel, to tell the successor what this generation's
    /// drain counted (re-exec mode).
    channel: Option<Arc<OwnedFd>>,
}

impl Successor {
    pub(crate) fn new(pid: u32, pidfd: Arc<OwnedFd>) -> Self {
        Successor {
            pid,
            pidfd,
            channel: None,
        }
    }

    /// Tells the successor what this generation's drain counted
    /// (`drained:closed_idle:hammered`): it adds that to the service's
    /// counters (docs/PROTOCOL.md, "The channel").
    pub(crate) fn send_drain_counts(&self, counts: [u64; 3]) {
        self.send_line(&crate::telemetry::drain_line(counts));
    }

    /// Tells the successor how long the restart that made it took: it
    /// records that, where it is scraped.
    pub(crate) fn send_took(&self, took: std::time::Duration) {
        self.send_line(&crate::telemetry::took_line(true, took));
    }

    fn send_line(&self, line: &str) {
        let Some(channel) = &self.channel else { return };
        match rustix::net::send(
            &**channel,
            line.as_bytes(),
            rustix::net::SendFlags::NOSIGNAL,
        ) {
            Ok(_) => {}
            Err(e) => tracing::debug!(pid = self.pid, "cannot tell the successor {line:?}: {e}"),
        }
    }

    /// Sends SIGKILL. Safe against pid reuse: it goes through a pidfd.
    pub(crate) fn kill(&self) {
        self.signal(rustix::process::Signal::KILL);
    }

    /// Sends `signal` through the pidfd; one that has exited is left alone.
    pub(crate) fn signal(&self, signal: rustix::process::Signal) {
        match rustix::process::pidfd_send_signal(&*self.pidfd, signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => tracing::error!(pid = self.pid, ?signal, "cannot signal the child: {e}"),
        }
    }
}

/// A started child: its pid, a pidfd for it, and our end of its channel
/// (its identity already written).
pub(crate) struct Started {
    pub pid: u32,
    pub pidfd: Arc<OwnedFd>,
    pub channel: OwnedFd,
}

/// How a child is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kin {
    /// Our child (`posix_spawn`): we reap it.
    Child,
    /// A child of our parent, the service manager, if the kernel allows:
    /// see [`sibling_wanted`].
    SiblingIfAllowed,
}

/// Whether a successor should be started as this process's sibling: under a
/// service manager that tracks the main process (`NOTIFY_SOCKET` is set) and
/// is this process's parent (pid 1, or `$MANAGERPID` for a user manager).
///
/// systemd watches the main process it is told of (`MAINPID=`) only if it is
/// its own child: for any other it logs "Supervising process N which is not
/// our child. We'll most likely not notice when it exits.", does not wait
/// for it on `systemctl stop` (SIGKILL follows at once if nothing else is left
/// in the unit) and misses its crash (`Restart=` does nothing). A successor
/// started with `CLONE_PARENT` is systemd's child, like the first generation.
pub(crate) fn sibling_wanted() -> bool {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return false;
    }
    let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
    let manager = std::env::var("MANAGERPID")
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok());
    parent == 1 || Some(parent) == manager
}

/// `HANDOFF_COUNTS` for a child: this process's counts, with `ok_more`
/// more restarts ok.
pub(crate) fn counts_env(ok_more: u64) -> String {
    let mut counts = crate::telemetry::counts();
    counts.ok += ok_more;
    counts.encode()
}

/// Starts `command` with `listeners` at 3.. and a channel of `channel_type`
/// after them, the protocol's variables and `extra_env` set, and writes the
/// child's identity on the channel.
pub(crate) fn start(
    command: &Command,
    listeners: &[(String, OwnedFd)],
    channel_type: SocketType,
    extra_env: &[(&str, String)],
    kin: Kin,
) -> Result<Started, Error> {
    let spawn_err = |e: io::Error| Error::Spawn {
        path: command.path.clone(),
        source: Arc::new(e),
    };
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        channel_type,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::channel("create", e.into()))?;

    let count = listeners.len() as RawFd;
    let channel_target = protocol::LISTEN_FDS_START + count;
    // Move every source above the targets, so no dup2 in the child overwrites
    // a source it still needs. The copies are close-on-exec here and dropped
    // once the child has its own.
    let above = channel_target + 1;
    let dup =
        |fd: &OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, above).map_err(|e| spawn_err(e.into()));
    let mut sources = listeners
        .iter()
        .map(|(_, fd)| dup(fd))
        .collect::<Result<Vec<_>, _>>()?;
    sources.push(dup(&theirs)?);
    drop(theirs);
    let fd_map: Vec<_> = sources
        .iter()
        .enumerate()
        .map(|(i, fd)| (fd.as_fd(), protocol::LISTEN_FDS_START + i as RawFd))
        .collect();

    let names: Vec<&str> = listeners.iter().map(|(n, _)| n.as_str()).collect();
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = std::env::vars_os()
        .filter(|(k, _)| {
            !protocol::ALL_VARS
                .iter()
                .any(|v| k.as_bytes() == v.as_bytes())
        })
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let mut set = |k: &str, v: String| env.push((k.as_bytes().to_vec(), v.into_bytes()));
    set(protocol::ENV_PROTOCOL, protocol::VERSION.to_string());
    set(protocol::ENV_LISTEN_FDS, count.to_string());
    set(protocol::ENV_LISTEN_FDNAMES, names.join(":"));
    set(protocol::ENV_CHANNEL_FD, channel_target.to_string());
    for (name, value) in extra_env {
        set(name, value.clone());
    }

    let args: Vec<&std::ffi::OsStr> = command.args.iter().map(OsString::as_os_str).collect();
    let sibling = match kin {
        Kin::SiblingIfAllowed => match sys::spawn_sibling(&command.path, &args, &env, &fd_map) {
            Ok(Ok(started)) => Some(started),
            Ok(Err(refused)) => {
                tracing::warn!(
                    "the kernel refused to start the successor as a child of the service \
                         manager (clone with CLONE_PARENT: {refused}); it is this process's \
                         child, and the service manager will not watch it as the main process"
                );
                None
            }
            Err(e) => return Err(spawn_err(e)),
        },
        Kin::Child => None,
    };
    let (pid, pidfd) = match sibling {
        Some((pid, pidfd)) => (pid, Some(Arc::new(pidfd))),
        None => (
            sys::spawn(&command.path, &args, &env, &fd_map).map_err(spawn_err)?,
            None,
        ),
    };
    drop(fd_map);
    drop(sources);
    let raw_pid = pid.as_raw_nonzero().get() as u32;

    let pidfd = match pidfd.map_or_else(
        || rustix::process::pidfd_open(pid, PidfdFlags::empty()).map(Arc::new),
        Ok,
    ) {
        Ok(fd) => fd,
        Err(e) => {
            // Without a pidfd we cannot watch it safely; kill it by pid (it is
            // our unreaped child, so the pid cannot have been reused) and reap.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            return Err(spawn_err(io::Error::other(format!(
                "pidfd_open failed: {e}"
            ))));
        }
    };

    // The identity message stands in for LISTEN_PID. If the child is already
    // gone the write fails; the watcher reports its exit.
    let _ = send_all(&ours, &protocol::identity_message(raw_pid));
    Ok(Started {
        pid: raw_pid,
        pidfd,
        channel: ours,
    })
}

/// Starts `command` as generation `generation` with `listeners` at 3.. and
/// the channel after them, and a thread that reports [`Event::ChildReady`] and [`Event::ChildExited`] (after
/// reaping it) on `events`.
pub(crate) fn spawn(
    command: &Command,
    listeners: &[(String, OwnedFd)],
    generation: u64,
    events: UnboundedSender<Event>,
) -> Result<Successor, Error> {
    let Started {
        pid: raw_pid,
        pidfd,
        channel: ours,
    } = start(
        command,
        listeners,
        SocketType::STREAM,
        &[
            (protocol::ENV_GENERATION, generation.to_string()),
            // Once it serves, the restart that made it went well.
            (protocol::ENV_COUNTS, counts_env(1)),
        ],
        if sibling_wanted() {
            Kin::SiblingIfAllowed
        } else {
            Kin::Child
        },
    )?;
    let spawn_err = |e: io::Error| Error::Spawn {
        path: command.path.clone(),
        source: Arc::new(e),
    };
    let ours = Arc::new(ours);
    let channel = Some(ours.clone());
    let watcher_pidfd = pidfd.clone();
    let thread = std::thread::Builder::new()
        .name(format!("handoff-child-{raw_pid}"))
        .spawn(move || watch(raw_pid, ours, watcher_pidfd, events));
    let successor = Successor {
        pid: raw_pid,
        pidfd,
        channel,
    };
    if let Err(e) = thread {
        successor.kill();
        let _ = rustix::process::waitid(
            WaitId::PidFd(successor.pidfd.as_fd()),
            WaitIdOptions::EXITED,
        );
        return Err(spawn_err(e));
    }
    tracing::info!(pid = raw_pid, path = %command.path.display(), "started successor");
    Ok(successor)
}

fn send_all(fd: &OwnedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(fd, bytes, SendFlags::NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Waits for the ready byte (or end-of-file), then reaps the child.
///
/// The channel stays open until the child exits: the child takes its closing
/// as the sign that this (parent) process has exited.
fn watch(pid: u32, channel: Arc<OwnedFd>, pidfd: Arc<OwnedFd>, events: UnboundedSender<Event>) {
    match wait_ready(channel.as_fd()) {
        Readiness::Ready => {
            let _ = events.unbounded_send(Event::ChildReady { pid });
            if wait_stopping_or_exit(channel.as_fd(), pidfd.as_fd()) {
                let _ = events.unbounded_send(Event::ChildStopping { pid });
            }
        }
        Readiness::Closed => {}
        Readiness::Malformed(byte) => tracing::warn!(
            pid,
            "successor sent {byte:#04x} instead of the ready byte; \
             it is not ready (the ready timeout ends it)"
        ),
        Readiness::Failed(e) => {
            tracing::warn!(pid, "handover channel to the successor failed: {e}")
        }
    }
    let status = loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED) {
            Ok(Some(status)) => break describe(&status),
            Ok(None) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            // A sibling (see `sibling_wanted`): its parent reaps it.
            Err(rustix::io::Errno::CHILD) => {
                wait_exit(pidfd.as_fd());
                break "status unknown: reaped by the service manager, its parent".into();
            }
            Err(e) => break format!("unknown ({e})"),
        }
    };
    drop(channel);
    let _ = events.unbounded_send(Event::ChildExited { pid, status });
}

/// Waits until the process of `pidfd` has exited (the pidfd is readable).
fn wait_exit(pidfd: BorrowedFd<'_>) {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(_) if fds[0].revents().is_empty() => continue,
            _ => return,
        }
    }
}

/// What a successor said on the handover channel.
#[derive(Debug)]
pub(crate) enum Readiness {
    /// It sent the ready byte.
    Ready,
    /// End-of-file before anything: it exited or closed the channel.
    Closed,
    /// Its first byte was not the ready byte: it does not speak the protocol,
    /// and nothing more is read from it.
    Malformed(u8),
    /// The channel failed.
    Failed(rustix::io::Errno),
}

/// After ready: waits until the successor says it is stopping (true) or
/// exits, whichever comes first. Any other byte, or end-of-file, ends the
/// reading; the exit is then awaited by the caller.
fn wait_stopping_or_exit(channel: BorrowedFd<'_>, pidfd: BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let mut fds = [
            PollFd::new(&channel, PollFlags::IN),
            PollFd::new(&pidfd, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
        if !fds[1].revents().is_empty() {
            return false;
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        let mut byte = [0u8; 1];
        return match rustix::net::recv(channel, &mut byte, RecvFlags::DONTWAIT) {
            Ok((1, _)) => byte[0] == protocol::STOPPING,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            _ => false,
        };
    }
}

/// Reads the successor's first byte: one `recv` of one byte at a time, so a
/// successor that floods the channel costs nothing.
pub(crate) fn wait_ready(channel: BorrowedFd<'_>) -> Readiness {
    let mut byte = [0u8; 1];
    loop {
        return match rustix::net::recv(channel, &mut byte, RecvFlags::empty()) {
            Ok((0, _)) => Readiness::Closed,
            Ok(_) if byte[0] == protocol::READY => Readiness::Ready,
            Ok(_) => Readiness::Malformed(byte[0]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => Readiness::Failed(e),
        };
    }
}

fn describe(status: &rustix::process::WaitIdStatus) -> String {
    if let Some(code) = status.exit_status() {
        format!("exit status {code}")
    } else if let Some(sig) = status.terminating_signal() {
        format!("killed by signal {sig}")
    } else {
        "ended".into()
    }
}
