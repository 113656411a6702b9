//! The crate's only `unsafe` code: claiming inherited descriptors by number,
//! editing the process environment, `posix_spawn`, asking a socket how much it
//! still has queued, and catching signals before the runtime's handlers exist.
//!
//! Everything else goes through rustix and std with safe signatures. Each block
//! here states why it is sound.

#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::process::Pid;

static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Claims the inherited descriptors `raws` for this process, once.
///
/// Returns `None` if they were already claimed (the inherited set can be taken
/// once per process). A number that is not an open descriptor yields an error
/// for that slot; the others are still claimed.
pub(crate) fn claim_inherited_fds(raws: &[RawFd]) -> Option<Vec<io::Result<OwnedFd>>> {
    if CLAIMED.swap(true, Ordering::SeqCst) {
        return None;
    }
    let fds = raws
        .iter()
        .map(|&raw| {
            // SAFETY: `raw` is only borrowed for the duration of the F_GETFD probe,
            // which has no effect on the descriptor and fails with EBADF if it is
            // not open.
            let probe = unsafe { BorrowedFd::borrow_raw(raw) };
            rustix::io::fcntl_getfd(probe)?;
            // SAFETY: the handover protocol (and systemd socket activation) gives
            // this process ownership of the descriptors at 3.. for the count
            // announced in LISTEN_FDS. CLAIMED guarantees they are turned into
            // owners at most once per process, so no second OwnedFd exists, and
            // the probe above showed the descriptor is open.
            Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
        })
        .collect();
    Some(fds)
}

/// Removes variables from the process environment so processes the application
/// spawns later do not see them.
pub(crate) fn remove_env_vars(names: &[&str]) {
    for name in names {
        if std::env::var_os(name).is_some() {
            // SAFETY: modifying the environment races with other threads reading
            // it through libc. handoff reads and removes the handover variables
            // once, when the application builds its `Handoff` at startup; the
            // crate documents that this must happen before the application starts
            // threads that read the environment. This is the same contract as
            // systemd's sd_listen_fds(unset_environment = true).
            unsafe { std::env::remove_var(name) };
        }
    }
}

fn cstring(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

/// Starts `path` with `args` (argv[0] first) and `env`, with `fd_map` applied
/// in the child: each `(source, target)` makes `source` appear as `target`
/// without close-on-exec. Every other descriptor of this process is
/// close-on-exec and so is not inherited.
///
/// Uses `posix_spawn`, whose cost does not grow with the parent's memory, and
/// reports exec failures (missing file, permission denied) as errors. The child
/// starts with an empty signal mask and SIGPIPE at its default disposition.
///
/// Sources must not be in the set of targets; the caller dups them out of the way.
pub(crate) fn spawn(
    path: &Path,
    args: &[&OsStr],
    env: &[(Vec<u8>, Vec<u8>)],
    fd_map: &[(BorrowedFd<'_>, RawFd)],
) -> io::Result<Pid> {
    use std::os::fd::AsRawFd;

    let path_c = cstring(path.as_os_str().as_bytes(), "executable path")?;
    let args_c = args
        .iter()
        .map(|a| cstring(a.as_bytes(), "argument"))
        .collect::<io::Result<Vec<_>>>()?;
    let env_c = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push(b'=');
            kv.extend_from_slice(v);
            cstring(&kv, "environment variable")
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut argv: Vec<*mut libc::c_char> = args_c.iter().map(|c| c.as_ptr() as *mut _).collect();
    argv.push(ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = env_c.iter().map(|c| c.as_ptr() as *mut _).collect();
    envp.push(ptr::null_mut());

    let check = |ret: libc::c_int| {
        if ret == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(ret))
        }
    };

    // SAFETY: the file-action and attribute objects are initialised by their
    // *_init functions before use and destroyed exactly once below, on every
    // path after successful initialisation. The signal sets are initialised by
    // sigemptyset before they are read. argv and envp are NULL-terminated arrays
    // of pointers into CStrings that outlive the call. posix_spawn does not
    // retain any pointer after it returns.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(e);
        }
        let result = (|| {
            for (source, target) in fd_map {
                check(libc::posix_spawn_file_actions_adddup2(
                    &mut actions,
                    source.as_raw_fd(),
                    *target,
                ))?;
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            check(libc::posix_spawnattr_setsigmask(&mut attr, &empty))?;
            let mut defaults: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut defaults);
            libc::sigaddset(&mut defaults, libc::SIGPIPE);
            check(libc::posix_spawnattr_setsigdefault(&mut attr, &defaults))?;
            check(libc::posix_spawnattr_setflags(
                &mut attr,
                (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
            ))?;
            let mut pid: libc::pid_t = 0;
            check(libc::posix_spawn(
                &mut pid,
                path_c.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            ))?;
            Pid::from_raw(pid).ok_or_else(|| io::Error::other("posix_spawn returned pid 0"))
        })();
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        result
    }
}

/// Runs `f` with the descriptor `raw` borrowed, if it is open.
///
/// Used to read the handover channel's identity message before deciding
/// whether the inherited descriptors belong to this process at all.
pub(crate) fn with_borrowed_fd<R>(
    raw: RawFd,
    f: impl FnOnce(BorrowedFd<'_>) -> R,
) -> io::Result<R> {
    // SAFETY: the borrow does not outlive this call; F_GETFD has no effect and
    // fails with EBADF if `raw` is not open.
    let fd = unsafe { BorrowedFd::borrow_raw(raw) };
    rustix::io::fcntl_getfd(fd)?;
    Ok(f(fd))
}

/// How many bytes written to the socket `fd` its peer has not acknowledged
/// yet (`SIOCOUTQ`, which counts a sent FIN too; for a Unix socket, what the
/// peer has not read); `None` where the platform cannot tell.
#[cfg_attr(not(any(feature = "hyper", feature = "actix")), allow(dead_code))]
pub(crate) fn unacknowledged(fd: BorrowedFd<'_>) -> Option<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let mut queued: libc::c_int = 0;
        // SAFETY: `fd` is a borrowed, open descriptor; TIOCOUTQ (SIOCOUTQ on a
        // socket) writes one c_int through the pointer, which points to one.
        let result = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        (result == 0).then(|| usize::try_from(queued).unwrap_or(0))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = fd;
        None
    }
}

/// Whether a connected socket can be closed without the kernel answering
/// its peer with a reset or throwing away data the peer has not received:
/// nothing received is left unread (`SIOCINQ`), and everything written has
/// been acknowledged (see [`unacknowledged`]).
///
/// When either cannot be told, the answer is `false`: the caller then
/// lingers as if data were pending.
#[cfg_attr(not(feature = "hyper"), allow(dead_code))]
pub(crate) fn socket_settled(fd: BorrowedFd<'_>) -> bool {
    let unread = rustix::io::ioctl_fionread(fd).unwrap_or(1);
    unread == 0 && unacknowledged(fd) == Some(0)
}

/// Makes `signal` raise `flag` from its handler instead of its default action
/// (ending the process), beside whatever else handles it. Undone with
/// [`signal_hook_registry::unregister`].
pub(crate) fn raise_on_signal(
    signal: i32,
    flag: std::sync::Arc<AtomicBool>,
) -> io::Result<signal_hook_registry::SigId> {
    // SAFETY: the action runs in a signal handler. It only stores to an
    // atomic, which is async-signal-safe: no allocation, no lock, no drop (the
    // closure and its Arc are dropped by `unregister`, outside the handler).
    // signal-hook-registry chains it with the handlers the runtimes register
    // later through the same registry.
    unsafe { signal_hook_registry::register(signal, move || flag.store(true, Ordering::SeqCst)) }
}
