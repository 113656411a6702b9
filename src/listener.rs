//! The [`InheritedListener`] trait and its implementations for std's sockets.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::socket::SocketKind;

/// A listening socket that either came from the previous generation or was
/// bound fresh, and can be handed to the next one.
///
/// The registry ([`Listeners`](crate::Listeners)) validates an inherited
/// descriptor against [`KIND`](InheritedListener::KIND) (a socket, listening,
/// of the right family and type), makes it non-blocking and close-on-exec,
/// and only then calls [`from_fd`](InheritedListener::from_fd). Fresh binds go
/// through the same constructor, so an implementation only wraps a descriptor.
/// The descriptor to hand over is read through [`AsFd`].
///
/// Runtime adapters implement it for their listener types; std's
/// `TcpListener`, `UnixListener` and `UdpSocket` implement it here.
///
/// # Caveats
///
/// Descriptors arrive in non-blocking mode, as async runtimes want them. A
/// user of std's blocking types must call `set_nonblocking(false)`.
pub trait InheritedListener: AsFd + Sized {
    /// The kind of socket this type wraps.
    const KIND: SocketKind;

    /// Wraps a validated, non-blocking, close-on-exec descriptor.
    fn from_fd(fd: OwnedFd) -> io::Result<Self>;
}

impl InheritedListener for std::net::TcpListener {
    const KIND: SocketKind = SocketKind::Tcp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(fd.into())
    }
}

impl InheritedListener for std::os::unix::net::UnixListener {
    const KIND: SocketKind = SocketKind::Unix;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(fd.into())
    }
}

impl InheritedListener for std::net::UdpSocket {
    const KIND: SocketKind = SocketKind::Udp;
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(fd.into())
    }
}
