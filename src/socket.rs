//! Socket plumbing: addresses, fresh binds, and validation of inherited
//! descriptors. Runtime-neutral; everything goes through rustix.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::str::FromStr;

use rustix::fs::OFlags;
use rustix::io::FdFlags;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::error::Error;
use crate::unix_socket::{self, UnixOptions};

/// The kind of socket a listener type wraps; inherited descriptors are checked
/// against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketKind {
    /// A listening TCP socket (IPv4 or IPv6).
    Tcp,
    /// A listening Unix stream socket.
    Unix,
    /// A UDP socket (IPv4 or IPv6).
    Udp,
}

impl fmt::Display for SocketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketKind::Tcp => "listening TCP socket",
            SocketKind::Unix => "listening Unix stream socket",
            SocketKind::Udp => "UDP socket",
        })
    }
}

/// Where a listener is bound: `127.0.0.1:8080` or `tcp://127.0.0.1:8080`,
/// `unix:/run/app.sock` or `unix:///run/app.sock`, `udp://127.0.0.1:5353`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP address; port 0 lets the kernel choose.
    Tcp(SocketAddr),
    /// A Unix stream socket path.
    Unix(PathBuf),
    /// A UDP address; port 0 lets the kernel choose.
    Udp(SocketAddr),
}

impl Address {
    /// The socket kind this address is bound as.
    pub fn kind(&self) -> SocketKind {
        match self {
            Address::Tcp(_) => SocketKind::Tcp,
            Address::Unix(_) => SocketKind::Unix,
            Address::Udp(_) => SocketKind::Udp,
        }
    }

    /// Whether an inherited socket bound at `actual` serves a request for `self`:
    /// same kind and IP (any port when `self` asks for port 0), or same path.
    pub fn is_satisfied_by(&self, actual: &Address) -> bool {
        match (self, actual) {
            (Address::Tcp(want), Address::Tcp(got)) | (Address::Udp(want), Address::Udp(got)) => {
                want.ip() == got.ip() && (want.port() == 0 || want.port() == got.port())
            }
            (Address::Unix(want), Address::Unix(got)) => want == got,
            _ => false,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "tcp://{addr}"),
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
            Address::Udp(addr) => write!(f, "udp://{addr}"),
        }
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidAddress {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let inet = |rest: &str| {
            rest.parse::<SocketAddr>()
                .map_err(|_| bad("expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"))
        };
        if let Some(path) = input
            .strip_prefix("unix://")
            .or_else(|| input.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(bad("empty Unix socket path"));
            }
            Ok(Address::Unix(PathBuf::from(path)))
        } else if let Some(rest) = input.strip_prefix("udp://") {
            inet(rest).map(Address::Udp)
        } else {
            inet(input.strip_prefix("tcp://").unwrap_or(input)).map(Address::Tcp)
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Tcp(addr)
    }
}

/// Checks that an inherited `fd` is a socket of `kind`, then makes it
/// non-blocking and close-on-exec (so it does not leak into processes the
/// application spawns).
pub(crate) fn adopt(fd: &OwnedFd, raw: i32, name: &str, kind: SocketKind) -> Result<(), Error> {
    let bad = |reason: String| Error::InvalidFd {
        fd: raw,
        name: name.to_owned(),
        reason,
    };
    let ty = rustix::net::sockopt::socket_type(fd).map_err(|e| {
        if e == rustix::io::Errno::NOTSOCK {
            bad("not a socket".to_owned())
        } else {
            bad(format!("cannot query socket type: {e}"))
        }
    })?;
    let domain = rustix::net::sockopt::socket_domain(fd)
        .map_err(|e| bad(format!("cannot query socket family: {e}")))?;
    let inet = domain == AddressFamily::INET || domain == AddressFamily::INET6;
    let (want_type, family_ok) = match kind {
        SocketKind::Tcp => (SocketType::STREAM, inet),
        SocketKind::Udp => (SocketType::DGRAM, inet),
        SocketKind::Unix => (SocketType::STREAM, domain == AddressFamily::UNIX),
    };
    if ty != want_type || !family_ok {
        return Err(bad(format!(
            "expected a {kind}, found a socket of family {} and type {}",
            family_name(domain),
            type_name(ty)
        )));
    }
    if want_type == SocketType::STREAM {
        let listening = rustix::net::sockopt::socket_acceptconn(fd)
            .map_err(|e| bad(format!("cannot query listening state: {e}")))?;
        if !listening {
            return Err(bad(format!("expected a {kind}, but it is not listening")));
        }
    }
    set_nonblocking_cloexec(fd).map_err(|e| bad(format!("cannot set flags: {e}")))
}

fn family_name(domain: AddressFamily) -> String {
    match domain {
        AddressFamily::INET => "AF_INET".into(),
        AddressFamily::INET6 => "AF_INET6".into(),
        AddressFamily::UNIX => "AF_UNIX".into(),
        other => format!("{}", other.as_raw()),
    }
}

fn type_name(ty: SocketType) -> String {
    match ty {
        SocketType::STREAM => "SOCK_STREAM".into(),
        SocketType::DGRAM => "SOCK_DGRAM".into(),
        SocketType::SEQPACKET => "SOCK_SEQPACKET".into(),
        other => format!("{}", other.as_raw()),
    }
}

fn set_nonblocking_cloexec(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    if !flags.contains(OFlags::NONBLOCK) {
        rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
    }
    rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
    Ok(())
}

/// The address `fd` is bound to, as an [`Address`] of `kind`.
pub(crate) fn local_address(fd: impl AsFd, kind: SocketKind) -> io::Result<Address> {
    let any = rustix::net::getsockname(&fd)?;
    Ok(match kind {
        SocketKind::Tcp => Address::Tcp(SocketAddr::try_from(any)?),
        SocketKind::Udp => Address::Udp(SocketAddr::try_from(any)?),
        SocketKind::Unix => {
            let unix = SocketAddrUnix::try_from(any)?;
            let path = unix
                .path_bytes()
                .map(|b| PathBuf::from(std::ffi::OsStr::from_bytes(b)))
                .unwrap_or_default();
            Address::Unix(path)
        }
    })
}

/// Backlog of fresh listening sockets (the kernel caps it at `somaxconn`).
pub(crate) const BACKLOG: i32 = 1024;

/// Creates, configures, binds and (for streams) listens on a fresh socket.
///
/// The socket is close-on-exec and non-blocking from birth. `configure` runs
/// after creation and before `bind`, so options such as `SO_REUSEPORT` or
/// `IPV6_V6ONLY` can be set. A Unix socket's file gets `unix` between `bind`
/// and `listen`.
pub(crate) fn bind_fresh(
    address: &Address,
    configure: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
    unix: &UnixOptions,
) -> io::Result<OwnedFd> {
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let family = |addr: &SocketAddr| {
        if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        }
    };
    match address {
        Address::Tcp(addr) => {
            let fd = rustix::net::socket_with(family(addr), SocketType::STREAM, flags, None)?;
            rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
            configure(fd.as_fd())?;
            rustix::net::bind(&fd, addr)?;
            rustix::net::listen(&fd, BACKLOG)?;
            Ok(fd)
        }
        Address::Udp(addr) => {
            let fd = rustix::net::socket_with(family(addr), SocketType::DGRAM, flags, None)?;
            configure(fd.as_fd())?;
            rustix::net::bind(&fd, addr)?;
            Ok(fd)
        }
        Address::Unix(path) => {
            unix_socket::remove_stale(path)?;
            let fd =
                rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
            configure(fd.as_fd())?;
            rustix::net::bind(&fd, &SocketAddrUnix::new(path.as_path())?)?;
            // Not listening yet: every connect is refused until the file has
            // its final mode and owner.
            unix.apply(path)?;
            rustix::net::listen(&fd, BACKLOG)?;
            Ok(fd)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let tcp: Address = "127.0.0.1:80".parse().unwrap();
        assert_eq!(tcp, "tcp://127.0.0.1:80".parse().unwrap());
        assert_eq!(tcp.to_string(), "tcp://127.0.0.1:80");
        let unix: Address = "unix:/tmp/a.sock".parse().unwrap();
        assert_eq!(unix, "unix:///tmp/a.sock".parse().unwrap());
        assert_eq!(unix.to_string(), "unix:///tmp/a.sock");
        assert_eq!(
            "udp://[::1]:53".parse::<Address>().unwrap().kind(),
            SocketKind::Udp
        );
    }

    #[test]
    fn bad_addresses_are_named() {
        for bad in ["localhost", "1.2.3.4", "unix:", "udp://x"] {
            let err = bad.parse::<Address>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn port_zero_accepts_any_port() {
        let want: Address = "127.0.0.1:0".parse().unwrap();
        assert!(want.is_satisfied_by(&"127.0.0.1:4000".parse().unwrap()));
        assert!(!want.is_satisfied_by(&"127.0.0.2:4000".parse().unwrap()));
        let fixed: Address = "127.0.0.1:80".parse().unwrap();
        assert!(!fixed.is_satisfied_by(&"127.0.0.1:81".parse().unwrap()));
    }

    #[test]
    fn adopt_rejects_the_wrong_kind() {
        let udp = bind_fresh(
            &"udp://127.0.0.1:0".parse().unwrap(),
            |_| Ok(()),
            &UnixOptions::new(),
        )
        .unwrap();
        let err = adopt(&udp, 3, "http", SocketKind::Tcp)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fd 3") && err.contains("SOCK_DGRAM"), "{err}");
        let file = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let err = adopt(&file, 3, "http", SocketKind::Tcp)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a socket"), "{err}");
        let tcp = bind_fresh(
            &"127.0.0.1:0".parse().unwrap(),
            |_| Ok(()),
            &UnixOptions::new(),
        )
        .unwrap();
        adopt(&tcp, 3, "http", SocketKind::Tcp).unwrap();
        assert!(local_address(&tcp, SocketKind::Tcp).unwrap().kind() == SocketKind::Tcp);
    }
}
