//! Taking what the previous generation (or systemd) passed: the listening
//! sockets at 3.. and, from a handoff parent, the channel to it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::net::{RecvFlags, SendFlags};

use crate::error::Error;
use crate::protocol::{self, Parsed, Source};
use crate::sys;
use crate::telemetry;

/// One inherited descriptor, not yet claimed by a listener.
#[derive(Debug)]
pub(crate) struct Slot {
    pub name: String,
    pub raw: RawFd,
    pub fd: OwnedFd,
}

/// Everything inherited at startup.
#[derive(Debug)]
pub(crate) struct Inheritance {
    pub slots: Vec<Slot>,
    pub parent: Option<ParentLink>,
    /// This process's generation: the parent's word, else 1.
    pub generation: u64,
    /// The service's counters, from the parent or supervisor.
    pub restarts: Option<telemetry::Counts>,
}

/// How long a child waits for its parent's identity message. The parent
/// writes it right after `posix_spawn` returns, so this only matters if the
/// descriptor is not really a handoff channel.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a child keeps of what its parent says after the identity.
const MAX_PARENT_SAYS: usize = 256;

/// Acts on one line from the parent: `C drained:closed_idle:hammered` (its
/// drain's counts) or `T ok|failed SECONDS` (how long the restart took).
fn heard_from_parent(line: &[u8]) {
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    if let Some(counts) = telemetry::parse_drain_line(text) {
        telemetry::add_drain(counts);
    } else if let Some((ok, took)) = text.strip_prefix("T ").and_then(telemetry::parse_took) {
        telemetry::restart_took(ok, took);
    }
}

pub(crate) fn own_pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

impl Default for Inheritance {
    fn default() -> Self {
        Inheritance {
            slots: Vec::new(),
            parent: None,
            generation: 1,
            restarts: None,
        }
    }
}

impl Inheritance {
    /// Reads the protocol variables, claims the descriptors they announce and
    /// removes the variables from the environment, whatever the outcome.
    pub(crate) fn from_env() -> Result<Self, Error> {
        let result = Self::take();
        sys::remove_env_vars(&protocol::ALL_VARS);
        result
    }

    fn take() -> Result<Self, Error> {
        let get = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        let plan = match protocol::parse(get, own_pid())? {
            Parsed::Nothing => return Ok(Self::default()),
            Parsed::Ignored(why) => {
                tracing::warn!("ignoring inherited sockets: {why}");
                return Ok(Self::default());
            }
            Parsed::Take(plan) => plan,
        };
        let supervisor = match (&plan.source, get(protocol::ENV_SUPERVISOR)) {
            (Source::Parent { .. }, Some(value)) => {
                let theirs: u32 = value.trim().parse().map_err(|_| Error::InvalidEnv {
                    var: protocol::ENV_SUPERVISOR,
                    value: value.clone(),
                    reason: "not a version number".into(),
                })?;
                if theirs != protocol::SUPERVISOR_VERSION {
                    return Err(Error::SupervisorVersion {
                        theirs,
                        ours: protocol::SUPERVISOR_VERSION,
                    });
                }
                Some(theirs)
            }
            _ => None,
        };
        let channel_fd = match plan.source {
            Source::Activator => None,
            Source::Parent { channel_fd } => {
                let bad = |reason: String| Error::InvalidEnv {
                    var: protocol::ENV_CHANNEL_FD,
                    value: channel_fd.to_string(),
                    reason,
                };
                let identity = sys::with_borrowed_fd(channel_fd, read_identity)
                    .map_err(|e| bad(format!("not an open descriptor ({e})")))?
                    .map_err(|e| bad(e.to_string()))?;
                if identity != own_pid() {
                    tracing::warn!(
                        identity,
                        "ignoring inherited sockets: the handover was meant for another process"
                    );
                    return Ok(Self::default());
                }
                Some(channel_fd)
            }
        };
        let generation = match (channel_fd, get(protocol::ENV_GENERATION)) {
            (Some(_), Some(value)) => protocol::parse_generation(&value)?,
            _ => 1,
        };
        let restarts = match (channel_fd, get(protocol::ENV_COUNTS)) {
            (Some(_), Some(value)) => Some(telemetry::Counts::from_fields(protocol::parse_counts(
                protocol::ENV_COUNTS,
                &value,
            )?)),
            _ => None,
        };

        let count = plan.names.len();
        let mut raws: Vec<RawFd> = (0..count)
            .map(|i| protocol::LISTEN_FDS_START + i as RawFd)
            .collect();
        raws.extend(channel_fd);
        let claimed = sys::claim_inherited_fds(&raws).ok_or_else(|| Error::InvalidEnv {
            var: protocol::ENV_LISTEN_FDS,
            value: count.to_string(),
            reason: "the inherited descriptors were already taken in this process".into(),
        })?;

        let mut slots = Vec::with_capacity(count);
        let mut parent = None;
        // Claim everything first so that on error every descriptor is closed.
        let mut owned = Vec::with_capacity(claimed.len());
        let mut first_error = None;
        for (raw, fd) in raws.iter().zip(claimed) {
            match fd {
                Ok(fd) => owned.push((*raw, fd)),
                Err(e) => {
                    first_error.get_or_insert(Error::InvalidFd {
                        fd: *raw,
                        name: name_of(&plan.names, *raw),
                        reason: format!("not an open descriptor ({e})"),
                    });
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        for (raw, fd) in owned {
            if Some(raw) == channel_fd {
                rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
                    .map_err(|e| Error::channel("set close-on-exec", e.into()))?;
                parent = Some(ParentLink {
                    pid: previous_generation(&fd),
                    channel: std::sync::Arc::new(fd),
                    supervisor,
                });
                continue;
            }
            let name = name_of(&plan.names, raw);
            // Every inherited descriptor must be a socket, and a stream socket
            // must be listening; the family and type are checked when a
            // listener claims it.
            check_listening_socket(&fd).map_err(|reason| Error::InvalidFd {
                fd: raw,
                name: name.clone(),
                reason,
            })?;
            rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).map_err(|e| {
                Error::InvalidFd {
                    fd: raw,
                    name: name.clone(),
                    reason: format!("cannot set close-on-exec: {e}"),
                }
            })?;
            slots.push(Slot { name, raw, fd });
        }
        tracing::info!(
            count = slots.len(),
            names = ?slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            from_parent = parent.is_some(),
            "inherited listening sockets"
        );
        Ok(Inheritance {
            slots,
            parent,
            generation,
            restarts,
        })
    }
}

/// The pid of the process at the other end of the handover channel: the
/// one that created it (`SO_PEERCRED`). Not `getppid()`: under systemd a
/// successor is started as the previous generation's sibling (see
/// `spawn::sibling_wanted`).
fn previous_generation(channel: &OwnedFd) -> u32 {
    let own = |p: rustix::process::Pid| p.as_raw_nonzero().get() as u32;
    match rustix::net::sockopt::socket_peercred(channel) {
        Ok(cred) => own(cred.pid),
        Err(_) => rustix::process::getppid().map_or(0, own),
    }
}

fn check_listening_socket(fd: &OwnedFd) -> Result<(), String> {
    let ty = rustix::net::sockopt::socket_type(fd).map_err(|e| {
        if e == rustix::io::Errno::NOTSOCK {
            "not a socket".to_owned()
        } else {
            format!("cannot query socket type: {e}")
        }
    })?;
    if ty == rustix::net::SocketType::STREAM
        && !rustix::net::sockopt::socket_acceptconn(fd)
            .map_err(|e| format!("cannot query listening state: {e}"))?
    {
        return Err("a stream socket that is not listening".into());
    }
    Ok(())
}

fn name_of(names: &[String], raw: RawFd) -> String {
    names
        .get((raw - protocol::LISTEN_FDS_START) as usize)
        .cloned()
        .unwrap_or_else(|| "handoff channel".into())
}

/// Reads the parent's identity message: the pid the handover is meant for.
pub(crate) fn read_identity(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let domain = rustix::net::sockopt::socket_domain(fd)?;
    if domain != rustix::net::AddressFamily::UNIX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a Unix socket",
        ));
    }
    let mut message = Vec::with_capacity(16);
    let deadline = std::time::Instant::now() + IDENTITY_TIMEOUT;
    while !message.ends_with(b"\n") && message.len() < 32 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut pfd = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec::try_from(left).ok();
        match rustix::event::poll(&mut pfd, timeout.as_ref()) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no identity message from the parent",
                ));
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 32];
        match rustix::net::recv(fd, &mut buf, RecvFlags::empty()) {
            Ok((0, _)) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the parent exited before the handover",
                ));
            }
            Ok((n, _)) => message.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    protocol::parse_identity(&message).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "malformed identity message {:?}",
                String::from_utf8_lossy(&message)
            ),
        )
    })
}

/// The channel to the parent generation.
#[derive(Debug)]
pub(crate) struct ParentLink {
    channel: std::sync::Arc<OwnedFd>,
    pid: u32,
    /// The supervisor protocol version, when the parent is a supervisor.
    supervisor: Option<u32>,
}

impl ParentLink {
    /// The parent's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the parent is a supervisor (this process is its worker).
    pub(crate) fn is_supervisor(&self) -> bool {
        self.supervisor.is_some()
    }

    /// The channel to the parent.
    pub(crate) fn channel(&self) -> BorrowedFd<'_> {
        self.channel.as_fd()
    }

    /// The channel, to be read from another thread.
    pub(crate) fn shared_channel(&self) -> std::sync::Arc<OwnedFd> {
        self.channel.clone()
    }

    /// Tells the parent this generation accepts: it may stop accepting.
    pub(crate) fn send_ready(&self) -> Result<(), Error> {
        self.send(protocol::READY)
            .map_err(|e| Error::channel("send ready", e.into()))
    }

    /// Tells the parent this generation is shutting down deliberately: its
    /// exit is not a crash the parent should recover from.
    pub(crate) fn send_stopping(&self) -> Result<(), Error> {
        self.send(protocol::STOPPING)
            .map_err(|e| Error::channel("send stopping", e.into()))
    }

    fn send(&self, byte: u8) -> Result<(), rustix::io::Errno> {
        loop {
            match rustix::net::send(&*self.channel, &[byte], SendFlags::NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Calls `on_exit` from a thread once the parent has exited (its end of
    /// the channel closed).
    pub(crate) fn watch(&self, on_exit: impl FnOnce() + Send + 'static) {
        let channel = self.channel.clone();
        let spawned = std::thread::Builder::new()
            .name("handoff-parent".into())
            .spawn(move || {
                let mut buf = [0u8; 64];
                // What the parent says after the identity, a line at a time:
                // how long the restart that made this generation took (`T`),
                // and before it exits its drain's counts (`C`). Bounded;
                // anything else is ignored.
                let mut said = Vec::new();
                let mut heard = 0;
                loop {
                    match rustix::net::recv(channel.as_fd(), &mut buf, RecvFlags::empty()) {
                        Ok((0, _)) => break,
                        Ok((n, _)) if heard < MAX_PARENT_SAYS => {
                            heard += n;
                            said.extend_from_slice(&buf[..n.min(buf.len())]);
                            while let Some(end) = said.iter().position(|b| *b == b'\n') {
                                let line: Vec<u8> = said.drain(..=end).collect();
                                heard_from_parent(&line);
                            }
                        }
                        Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                        Err(_) => break,
                    }
                }
                on_exit();
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the parent watcher thread: {e}");
        }
    }
}
