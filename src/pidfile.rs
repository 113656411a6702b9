//! The pid file: the pid of the generation that accepts, written atomically
//! and without ever opening a path somebody else may have planted.
//!
//! A pid file often lives in a directory other users can write (`/tmp`, a
//! shared `/run` subdirectory). So:
//! - the pid is written to a temporary file created exclusively (`O_CREAT |
//!   O_EXCL | O_NOFOLLOW`: an existing name, symlink or not, is never opened)
//!   under an unpredictable name in the pid file's own directory, with mode
//!   0644, then renamed over the pid file. A symlink at the pid file's path is
//!   replaced by the regular file, never followed;
//! - reading and removing open the path with `O_NOFOLLOW | O_NONBLOCK` and
//!   only trust a regular file: a symlink, FIFO or device there is "not ours".

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::Error;

/// Permissions of the pid file (and its temporary file): anyone may read it,
/// only its owner may write it. Set explicitly, whatever the umask.
pub(crate) const MODE: u32 = 0o644;
/// Fresh temporary names tried before giving up (each is 64 random bits, so
/// more than one attempt only happens if somebody pre-creates names).
const TEMP_ATTEMPTS: usize = 16;
/// The longest pid file that is read back; anything longer is not ours.
const MAX_LEN: usize = 64;

/// Writes `pid` to `path` through an exclusively created temporary file and a
/// rename, so a reader sees the old pid or the new one, never a partial file.
pub(crate) fn write(path: &Path, pid: u32) -> Result<(), Error> {
    let (dir_path, name) = split(path)?;
    let dir = rustix::fs::open(
        dir_path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(path, "cannot open its directory", e.into()))?;
    let (tmp_name, file) = create_temp(&dir, name, path)?;
    let tmp_path = dir_path.join(&tmp_name);
    let result = fill(file, pid)
        .map_err(|e| fail(&tmp_path, "cannot write the temporary pid file", e))
        .and_then(|()| {
            rustix::fs::renameat(&dir, &tmp_name, &dir, name).map_err(|e| {
                fail(
                    path,
                    &format!("cannot rename {} over it", tmp_path.display()),
                    e.into(),
                )
            })
        });
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dir, &tmp_name, AtFlags::empty());
    }
    result
}

/// What the pid file at a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// No file there.
    Missing,
    /// A regular file holding this pid.
    Pid(u32),
    /// Something else: not a regular file (a symlink, a FIFO...), or not a pid.
    Foreign,
}

/// Reads the pid file without following a symlink or blocking on a FIFO.
pub(crate) fn read(path: &Path) -> Result<Content, Error> {
    Ok(match open_regular(path)? {
        Opened::Missing => Content::Missing,
        Opened::Regular(_, Some(pid)) => Content::Pid(pid),
        Opened::Regular(_, None) | Opened::Foreign => Content::Foreign,
    })
}

/// Removes the pid file if it is a regular file that still holds `pid` (a
/// successor may have replaced it). A symlink or anything else is left alone.
pub(crate) fn remove_if_own(path: &Path, pid: u32) -> Result<(), Error> {
    let Opened::Regular(file, Some(found)) = open_regular(path)? else {
        return Ok(());
    };
    if found != pid {
        return Ok(());
    }
    // Unlink only the file just read, not one renamed into place since.
    let read = rustix::fs::fstat(&file).map_err(|e| fail(path, "cannot stat", e.into()))?;
    match rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) if (now.st_dev, now.st_ino) == (read.st_dev, read.st_ino) => {
            rustix::fs::unlink(path).map_err(|e| fail(path, "cannot remove", e.into()))
        }
        Ok(_) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(fail(path, "cannot stat", e.into())),
    }
}

/// The pid in a pid file's bytes: ASCII decimal, surrounding whitespace
/// allowed; `None` for anything else.
pub(crate) fn parse_pid(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&pid| pid > 0)
}

enum Opened {
    Missing,
    /// A symlink, FIFO, device, directory...: never read.
    Foreign,
    /// A regular file, open, and the pid it holds if it holds one.
    Regular(OwnedFd, Option<u32>),
}

fn open_regular(path: &Path) -> Result<Opened, Error> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let file = match rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()) {
        Ok(file) => file,
        Err(Errno::NOENT) => return Ok(Opened::Missing),
        Err(Errno::LOOP) => {
            tracing::warn!(path = %path.display(), "pid file path is a symlink; not following it");
            return Ok(Opened::Foreign);
        }
        Err(e) => return Err(fail(path, "cannot open", e.into())),
    };
    let stat = rustix::fs::fstat(&file).map_err(|e| fail(path, "cannot stat", e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Ok(Opened::Foreign);
    }
    let mut bytes = Vec::with_capacity(MAX_LEN + 1);
    let reader = file.try_clone().map_err(|e| fail(path, "cannot read", e))?;
    std::fs::File::from(reader)
        .take(MAX_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(path, "cannot read", e))?;
    let pid = (bytes.len() <= MAX_LEN)
        .then(|| parse_pid(&bytes))
        .flatten();
    Ok(Opened::Regular(file, pid))
}

/// The directory to create the temporary file in, and the pid file's name.
fn split(path: &Path) -> Result<(&Path, &OsStr), Error> {
    let name = path
        .file_name()
        .ok_or_else(|| fail(path, "has no file name", io::ErrorKind::InvalidInput.into()))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Creates `.NAME.RANDOM.tmp` in `dir`, exclusively, with mode [`MODE`].
fn create_temp(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<(PathBuf, OwnedFd), Error> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut last = Errno::EXIST;
    for _ in 0..TEMP_ATTEMPTS {
        let tmp_name = temp_name(name).map_err(|e| fail(path, "cannot get random bytes", e))?;
        match rustix::fs::openat(dir, &tmp_name, flags, Mode::from_raw_mode(MODE)) {
            Ok(file) => {
                // The umask may have removed bits; the mode is part of the contract.
                rustix::fs::fchmod(&file, Mode::from_raw_mode(MODE)).map_err(|e| {
                    let _ = rustix::fs::unlinkat(dir, &tmp_name, AtFlags::empty());
                    fail(&path.with_file_name(&tmp_name), "cannot set mode", e.into())
                })?;
                return Ok((tmp_name, file));
            }
            Err(Errno::EXIST) => {
                tracing::warn!(
                    path = %path.with_file_name(&tmp_name).display(),
                    "temporary pid file name already taken; trying another"
                );
                last = Errno::EXIST;
            }
            Err(e) => {
                return Err(fail(
                    &path.with_file_name(&tmp_name),
                    "cannot create the temporary pid file",
                    e.into(),
                ));
            }
        }
    }
    Err(fail(
        path,
        &format!("no free temporary name after {TEMP_ATTEMPTS} attempts"),
        last.into(),
    ))
}

fn temp_name(name: &OsStr) -> io::Result<PathBuf> {
    let mut random = [0u8; 8];
    let mut filled = 0;
    while filled < random.len() {
        match rustix::rand::getrandom(&mut random[filled..], rustix::rand::GetRandomFlags::empty())
        {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut tmp = Vec::from(b".".as_slice());
    tmp.extend_from_slice(name.as_bytes());
    tmp.extend_from_slice(format!(".{:016x}.tmp", u64::from_ne_bytes(random)).as_bytes());
    Ok(PathBuf::from(OsStr::from_bytes(&tmp)))
}

fn fill(file: OwnedFd, pid: u32) -> io::Result<()> {
    let mut file = std::fs::File::from(file);
    file.write_all(format!("{pid}\n").as_bytes())?;
    file.sync_all()
}

fn fail(path: &Path, what: &str, source: io::Error) -> Error {
    Error::io(format!("pid file {}: {what}", path.display()), source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_replaces_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        write(&path, 10).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "10\n");
        assert_eq!(read(&path).unwrap(), Content::Pid(10));
        write(&path, 11).unwrap();
        remove_if_own(&path, 10).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "11\n");
        remove_if_own(&path, 11).unwrap();
        assert!(!path.exists());
        assert_eq!(read(&path).unwrap(), Content::Missing);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temp files left"
        );
    }

    #[test]
    fn mode_is_0644_whatever_the_umask_gave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        write(&path, 12).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, MODE);
    }

    #[test]
    fn a_symlink_at_the_path_is_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious data").unwrap();
        let path = dir.path().join("app.pid");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert_eq!(read(&path).unwrap(), Content::Foreign);
        remove_if_own(&path, 13).unwrap();
        assert!(path.symlink_metadata().unwrap().is_symlink(), "left alone");
        write(&path, 13).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious data");
        assert!(path.symlink_metadata().unwrap().is_file());
        assert_eq!(read(&path).unwrap(), Content::Pid(13));
    }

    #[test]
    fn a_fifo_or_foreign_content_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        rustix::fs::mknodat(CWD, &path, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        assert_eq!(read(&path).unwrap(), Content::Foreign, "FIFO: no hang");
        remove_if_own(&path, 14).unwrap();
        assert!(path.exists(), "FIFO left alone");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, format!("14\n{}", " ".repeat(100))).unwrap();
        assert_eq!(read(&path).unwrap(), Content::Foreign, "too long");
        remove_if_own(&path, 14).unwrap();
        assert!(path.exists());
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("app.pid");
        let err = write(&path, 15).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
