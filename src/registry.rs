//! The listener registry: sockets keyed by explicit names, inherited when the
//! previous generation passed one of that name, bound fresh otherwise.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::Error;
use crate::inherited::Slot;
use crate::listener::InheritedListener;
use crate::protocol;
use crate::socket::{self, Address};
use crate::unix_socket::UnixOptions;

/// Listening sockets by name: what this generation inherited and what it will
/// hand to the next.
///
/// [`get_or_bind`](Listeners::get_or_bind) returns the inherited socket of a
/// name when there is one bound where asked, and binds a fresh one otherwise.
/// Inherited sockets that no listener claims are closed once this generation is
/// ready, so a new version may drop ports (and add them: a name nobody passed
/// is bound fresh). A Unix socket path is never unlinked by handoff while a
/// socket is served on it.
#[derive(Debug, Default)]
pub struct Listeners {
    inherited: Vec<Slot>,
    active: Vec<(String, OwnedFd)>,
    unix: UnixOptions,
}

impl Listeners {
    pub(crate) fn new(inherited: Vec<Slot>, unix: UnixOptions) -> Self {
        Listeners {
            inherited,
            active: Vec::new(),
            unix,
        }
    }

    /// The inherited socket named `name` if it is bound at `address`, else a
    /// fresh socket bound there (a fresh Unix socket's file gets the
    /// [`Builder::unix_options`](crate::Builder::unix_options)).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), handoff::Error> {
    /// let mut handoff = handoff::Handoff::new()?;
    /// let listener: std::net::TcpListener =
    ///     handoff.listeners().get_or_bind("http", &"127.0.0.1:8080".parse()?)?;
    /// # Ok(()) }
    /// ```
    pub fn get_or_bind<L: InheritedListener>(
        &mut self,
        name: &str,
        address: &Address,
    ) -> Result<L, Error> {
        self.get_or_bind_with(name, address, |_| Ok(()))
    }

    /// Like [`get_or_bind`](Listeners::get_or_bind); `configure` sets socket
    /// options on a fresh socket before it is bound (inherited sockets keep the
    /// options they were created with).
    pub fn get_or_bind_with<L: InheritedListener>(
        &mut self,
        name: &str,
        address: &Address,
        configure: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
    ) -> Result<L, Error> {
        let unix = self.unix;
        self.claim(name, address, configure, &unix)
    }

    /// Like [`get_or_bind`](Listeners::get_or_bind) for a Unix stream socket
    /// at `address`; a fresh socket's file gets the mode, owner and group of
    /// `options` (instead of the builder's) before it accepts (see
    /// [`UnixOptions`]). An inherited socket keeps the file it has.
    ///
    /// ```no_run
    /// # #[cfg(feature = "tokio")]
    /// # fn main() -> Result<(), handoff::Error> {
    /// let mut handoff = handoff::Handoff::new()?;
    /// let options = handoff::UnixOptions::new().mode(0o600);
    /// let listener: tokio::net::UnixListener = handoff
    ///     .listeners()
    ///     .get_or_bind_unix("admin", &"unix:/run/app/admin.sock".parse()?, &options)?;
    /// # Ok(()) }
    /// # #[cfg(not(feature = "tokio"))]
    /// # fn main() {}
    /// ```
    pub fn get_or_bind_unix<L: InheritedListener>(
        &mut self,
        name: &str,
        address: &Address,
        options: &UnixOptions,
    ) -> Result<L, Error> {
        if !matches!(address, Address::Unix(_)) {
            return Err(Error::InvalidAddress {
                input: address.to_string(),
                reason: "Unix socket options need a unix: address".into(),
            });
        }
        self.claim(name, address, |_| Ok(()), options)
    }

    fn claim<L: InheritedListener>(
        &mut self,
        name: &str,
        address: &Address,
        configure: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
        unix: &UnixOptions,
    ) -> Result<L, Error> {
        protocol::validate_name(name)?;
        if self.active.iter().any(|(n, _)| n == name) {
            return Err(Error::DuplicateName { name: name.into() });
        }
        if address.kind() != L::KIND {
            return Err(Error::InvalidAddress {
                input: address.to_string(),
                reason: format!("a {} cannot be bound there", L::KIND),
            });
        }
        let fd = match self.take_inherited::<L>(name, address)? {
            Some(fd) => {
                if let Address::Unix(path) = address {
                    unix.check_inherited(path);
                }
                fd
            }
            None => {
                let fd = socket::bind_fresh(address, configure, unix).map_err(|e| Error::Bind {
                    name: name.into(),
                    address: address.to_string(),
                    source: e.into(),
                })?;
                tracing::info!(name, %address, "bound fresh listener");
                fd
            }
        };
        self.register(name, &fd)?;
        L::from_fd(fd).map_err(|e| Error::io(format!("cannot wrap listener {name:?}"), e))
    }

    /// Registers a listener created elsewhere so it is handed to the next
    /// generation under `name`.
    pub fn adopt(&mut self, name: &str, listener: &impl AsFd) -> Result<(), Error> {
        protocol::validate_name(name)?;
        if self.active.iter().any(|(n, _)| n == name) {
            return Err(Error::DuplicateName { name: name.into() });
        }
        self.register(name, listener.as_fd())
    }

    /// The names of the sockets that will be handed to the next generation.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.active.iter().map(|(n, _)| n.as_str())
    }

    fn register(&mut self, name: &str, fd: impl AsFd) -> Result<(), Error> {
        // Keep our own duplicate: the application owns (and may drop) the
        // listener, the registry still hands the socket over.
        let dup = rustix::io::fcntl_dupfd_cloexec(fd, 3)
            .map_err(|e| Error::io(format!("cannot duplicate listener {name:?}"), e.into()))?;
        self.active.push((name.into(), dup));
        Ok(())
    }

    /// Takes the inherited socket for `name`: by name, or, among sockets passed
    /// without names (systemd without `FileDescriptorName=`), by address.
    fn take_inherited<L: InheritedListener>(
        &mut self,
        name: &str,
        address: &Address,
    ) -> Result<Option<OwnedFd>, Error> {
        let by_name = self.inherited.iter().position(|s| s.name == name);
        let index = match by_name {
            Some(i) => {
                let slot = &self.inherited[i];
                socket::adopt(&slot.fd, slot.raw, &slot.name, L::KIND)?;
                i
            }
            None => {
                let unnamed = self.inherited.iter().position(|s| {
                    s.name == protocol::UNNAMED
                        && socket::adopt(&s.fd, s.raw, &s.name, L::KIND).is_ok()
                        && socket::local_address(&s.fd, L::KIND)
                            .is_ok_and(|actual| address.is_satisfied_by(&actual))
                });
                match unnamed {
                    Some(i) => i,
                    None => return Ok(None),
                }
            }
        };
        let slot = &self.inherited[index];
        let actual = socket::local_address(&slot.fd, L::KIND).map_err(|e| Error::InvalidFd {
            fd: slot.raw,
            name: slot.name.clone(),
            reason: format!("cannot read its address: {e}"),
        })?;
        if !address.is_satisfied_by(&actual) {
            tracing::info!(
                name,
                inherited = %actual,
                requested = %address,
                "inherited socket is bound elsewhere; binding fresh and closing it once ready"
            );
            return Ok(None);
        }
        let slot = self.inherited.remove(index);
        tracing::info!(name, fd = slot.raw, address = %actual, "using inherited listener");
        Ok(Some(slot.fd))
    }

    /// Closes inherited sockets nobody claimed.
    pub(crate) fn close_unclaimed(&mut self) {
        for slot in self.inherited.drain(..) {
            tracing::info!(name = %slot.name, fd = slot.raw, "closing unclaimed inherited socket");
        }
    }

    /// The sockets to pass to a successor, in order.
    pub(crate) fn handover(&self) -> &[(String, OwnedFd)] {
        &self.active
    }
}
