//! Unix socket files: who may connect to a fresh listener ([`UnixOptions`]),
//! and the removal of a stale socket file before a fresh bind.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// Who may connect to a fresh Unix listener: its socket file's permission
/// bits, owner and group (like php-fpm's `listen.mode`/`listen.owner`/
/// `listen.group` and systemd's `SocketMode=`/`SocketUser=`/`SocketGroup=`).
///
/// Connecting to a Unix socket needs write permission on its file. Without
/// options the file gets what the process umask leaves of 0777, and the owner
/// and group of the process. The options are applied after `bind` and before
/// `listen`: until `listen` every connection attempt is refused whatever the
/// mode, so there is no moment when the socket accepts a client the options
/// exclude, and the process umask (shared by every thread) is never touched.
/// Changing the owner or group needs the privileges `chown` needs (root or
/// `CAP_CHOWN`; an owner may give the file to a group it is in).
///
/// Applied to fresh sockets only: an inherited socket keeps the file it was
/// bound with (a warning is logged when its mode, owner or group differ).
/// Keep the socket's directory writable only by trusted users: whoever may
/// write there may replace the socket file.
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # fn main() -> Result<(), handoff::Error> {
/// use handoff::{Handoff, UnixOptions};
///
/// let mut handoff = Handoff::new()?;
/// let listener: tokio::net::UnixListener =
///     handoff.listen_unix("api", "/run/app/api.sock", &UnixOptions::new().mode(0o660).group(33))?;
/// # Ok(()) }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[must_use]
pub struct UnixOptions {
    mode: Option<u32>,
    owner: Option<u32>,
    group: Option<u32>,
}

impl UnixOptions {
    /// No options: the umask decides the mode, the process owns the file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of the socket file, e.g. `0o660` (at most `0o7777`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The uid that owns the socket file.
    pub fn owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// The gid of the socket file.
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Whether any option is set.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the options to the socket file at `path`, which this process
    /// has just bound and not yet listens on.
    ///
    /// The path is opened once with `O_PATH | O_NOFOLLOW` and must be a
    /// socket; owner and group are set through that descriptor and the mode
    /// through `/proc/self/fd`, so a path swapped meanwhile is never followed.
    pub(crate) fn apply(&self, path: &Path) -> io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        if let Some(mode) = self.mode.filter(|m| *m > 0o7777) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket mode {mode:#o} has bits beyond 0o7777"),
            ));
        }
        let file = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let stat = rustix::fs::fstat(&file)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
            return Err(io::Error::other(
                "the path is no longer the socket just bound",
            ));
        }
        if self.owner.is_some() || self.group.is_some() {
            rustix::fs::chownat(
                &file,
                "",
                self.owner.map(Uid::from_raw),
                self.group.map(Gid::from_raw),
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if let Some(mode) = self.mode {
            let mode = Mode::from_raw_mode(mode);
            let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
            match rustix::fs::chmod(by_fd.as_str(), mode) {
                // Without /proc: the path itself (checked to be a socket above).
                Err(Errno::NOENT) => rustix::fs::chmod(path, mode)?,
                other => other?,
            }
        }
        tracing::debug!(path = %path.display(), options = ?self, "set socket file permissions");
        Ok(())
    }

    /// Logs a warning if the socket file of an inherited listener does not
    /// have what these options ask for (they apply to fresh sockets only).
    pub(crate) fn check_inherited(&self, path: &Path) {
        if self.is_empty() {
            return;
        }
        let Ok(stat) = rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) else {
            return;
        };
        let mode = stat.st_mode & 0o7777;
        let differs = self.mode.is_some_and(|m| m != mode)
            || self.owner.is_some_and(|u| u != stat.st_uid)
            || self.group.is_some_and(|g| g != stat.st_gid);
        if differs {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:#o}"),
                owner = stat.st_uid,
                group = stat.st_gid,
                requested = ?self,
                "inherited Unix socket keeps its permissions; the options apply to fresh sockets only"
            );
        }
    }
}

/// Removes the socket file at `path` if nobody listens on it (left behind by
/// a process that died), so a fresh bind can take the path.
///
/// Anything else is left alone, and the bind then fails naming the path: a
/// missing path, a symlink, a regular file, a socket somebody listens on (or
/// whose backlog is full), a socket this process may not connect to, a
/// datagram socket in use, and a socket file replaced between the check and the
/// removal.
pub(crate) fn remove_stale(path: &Path) -> io::Result<()> {
    let before = match rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(before.st_mode) != FileType::Socket || !nobody_listens(path)? {
        return Ok(());
    }
    match rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) if (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino) => {
            tracing::info!(path = %path.display(), "removing stale Unix socket");
            rustix::fs::unlink(path)?;
        }
        _ => {
            tracing::warn!(path = %path.display(), "socket file replaced while checking it; left alone")
        }
    }
    Ok(())
}

/// Whether a connection to `path` is refused: nobody listens there. A
/// non-blocking connect, so a listener with a full backlog does not make this
/// block (it answers `EAGAIN`: somebody listens).
fn nobody_listens(path: &Path) -> io::Result<bool> {
    let probe = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    Ok(matches!(
        rustix::net::connect(&probe, &SocketAddrUnix::new(path)?),
        Err(Errno::CONNREFUSED)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::net::{UnixDatagram, UnixListener};

    fn bound(path: &Path) -> std::os::fd::OwnedFd {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::bind(&fd, &SocketAddrUnix::new(path).unwrap()).unwrap();
        fd
    }

    #[test]
    fn mode_owner_and_group_are_set_before_listen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _fd = bound(&path);
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        UnixOptions::new()
            .mode(0o600)
            .owner(uid)
            .group(gid)
            .apply(&path)
            .unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
        let err = UnixOptions::new().mode(0o10000).apply(&path).unwrap_err();
        assert!(err.to_string().contains("0o10000"), "{err}");
    }

    #[test]
    fn apply_refuses_what_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("file");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let options = UnixOptions::new().mode(0o666);
        assert!(options.apply(&link).is_err(), "symlink followed");
        assert!(options.apply(&target).is_err(), "regular file changed");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_ne!(mode & 0o777, 0o666);
    }

    #[test]
    fn only_a_socket_nobody_listens_on_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A live listener stays.
        let live = dir.path().join("live.sock");
        let _listener = UnixListener::bind(&live).unwrap();
        remove_stale(&live).unwrap();
        assert!(live.exists());
        // A bound socket nobody listens on goes.
        let stale = dir.path().join("stale.sock");
        drop(bound(&stale));
        remove_stale(&stale).unwrap();
        assert!(!stale.exists());
        // A regular file, a symlink to a stale socket, a datagram socket stay.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        remove_stale(&file).unwrap();
        assert!(file.exists());
        drop(bound(&stale));
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&stale, &link).unwrap();
        remove_stale(&link).unwrap();
        assert!(link.symlink_metadata().is_ok() && stale.exists());
        let dgram = dir.path().join("dgram.sock");
        let _dgram = UnixDatagram::bind(&dgram).unwrap();
        remove_stale(&dgram).unwrap();
        assert!(dgram.exists());
        remove_stale(&dir.path().join("missing")).unwrap();
    }
}
