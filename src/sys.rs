//! The crate's only `unsafe` code: claiming inherited descriptors by number,
//! editing the process environment, `posix_spawn` and `clone3` (a successor
//! started as a sibling), asking a socket how much it still has queued, and
//! catching signals before the runtime's handlers exist.
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

    let exec = Exec::new(path, args, env)?;
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
                exec.path.as_ptr(),
                &actions,
                &attr,
                exec.argv.as_ptr(),
                exec.envp.as_ptr(),
            ))?;
            Pid::from_raw(pid).ok_or_else(|| io::Error::other("posix_spawn returned pid 0"))
        })();
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        result
    }
}

/// What `execve` needs, prepared before any process is created: the child of
/// a `clone3` may not allocate.
struct Exec {
    path: CString,
    _args: Vec<CString>,
    _env: Vec<CString>,
    /// NULL-terminated pointers into `_args` and `_env`, which outlive them.
    argv: Vec<*mut libc::c_char>,
    envp: Vec<*mut libc::c_char>,
}

impl Exec {
    fn new(path: &Path, args: &[&OsStr], env: &[(Vec<u8>, Vec<u8>)]) -> io::Result<Self> {
        let path = cstring(path.as_os_str().as_bytes(), "executable path")?;
        let args = args
            .iter()
            .map(|a| cstring(a.as_bytes(), "argument"))
            .collect::<io::Result<Vec<_>>>()?;
        let env = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone();
                kv.push(b'=');
                kv.extend_from_slice(v);
                cstring(&kv, "environment variable")
            })
            .collect::<io::Result<Vec<_>>>()?;
        let pointers = |strings: &[CString]| {
            let mut p: Vec<*mut libc::c_char> =
                strings.iter().map(|c| c.as_ptr() as *mut _).collect();
            p.push(ptr::null_mut());
            p
        };
        Ok(Exec {
            argv: pointers(&args),
            envp: pointers(&env),
            path,
            _args: args,
            _env: env,
        })
    }
}

/// `struct clone_args` of `clone3(2)`, its first version (64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Like [`spawn`], but the child is this process's sibling: a child of this
/// process's parent (`CLONE_PARENT`), with a pidfd for it from birth
/// (`CLONE_PIDFD`, so no pid reuse can intervene). This process cannot reap
/// it or learn its exit status; its parent does.
///
/// `Ok(Err(why))` when the kernel refuses such a clone (`ENOSYS` before
/// Linux 5.2, `EPERM` under a seccomp filter, `EINVAL` for the init process
/// of a PID namespace): nothing was started. An exec failure (missing file,
/// permission denied) is an error, as for [`spawn`].
///
/// Unlike `posix_spawn` the child is a copy-on-write copy of this process
/// until it execs: its cost grows with this process's page tables.
pub(crate) fn spawn_sibling(
    path: &Path,
    args: &[&OsStr],
    env: &[(Vec<u8>, Vec<u8>)],
    fd_map: &[(BorrowedFd<'_>, RawFd)],
) -> io::Result<Result<(Pid, OwnedFd), io::Error>> {
    use std::os::fd::{AsRawFd, FromRawFd};

    let exec = Exec::new(path, args, env)?;
    let moves: Vec<(RawFd, RawFd)> = fd_map.iter().map(|(s, t)| (s.as_raw_fd(), *t)).collect();
    // The child reports a failed exec here (its errno); a successful exec
    // closes it (close-on-exec), and the parent reads end-of-file.
    let (report_r, report_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let report_w_raw = report_w.as_raw_fd();
    let mut pidfd: libc::c_int = -1;
    let mut clone = CloneArgs {
        flags: (libc::CLONE_PARENT | libc::CLONE_PIDFD) as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        // With CLONE_PARENT the child's exit signal is this process's own
        // (SIGCHLD to the parent), and clone3 wants 0 here.
        exit_signal: 0,
        ..CloneArgs::default()
    };

    // SAFETY: `clone` is a valid clone_args of the size passed, and `pidfd`
    // outlives the call (the kernel writes the new pidfd there). Without
    // CLONE_VM the child gets a copy of this process's memory, and without a
    // stack argument it runs on (its copy of) this thread's stack, as after
    // fork. The child, possibly one thread copied out of a multi-threaded
    // process, calls only async-signal-safe functions (dup2, sigprocmask,
    // signal, execve, write, _exit) on data prepared before the clone, and
    // never returns from this function: it execs or _exits.
    let mut ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut clone as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    // Seccomp filters (systemd-nspawn's, Docker's default) hide clone3 with
    // ENOSYS so that libc falls back to clone: so do we. Its argument order
    // is the same on these two (flags, stack, parent_tid, ...), and with
    // CLONE_PIDFD the pidfd is stored at parent_tid.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        let flags = libc::CLONE_PARENT | libc::CLONE_PIDFD | libc::SIGCHLD;
        // SAFETY: as for clone3 above: fork semantics (no CLONE_VM, no
        // stack), the kernel writes the pidfd to `pidfd`, which outlives the
        // call; the child takes the same path below.
        ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags as libc::c_ulong,
                0usize,
                &mut pidfd as *mut libc::c_int,
                0usize,
                0usize,
            )
        };
    }
    if ret == 0 {
        // SAFETY: in the child, see above. The descriptors in `moves` are
        // open (borrowed by the caller across the clone), and `exec`'s
        // pointers are valid in the child's copy of memory.
        unsafe {
            for &(source, target) in &moves {
                if libc::dup2(source, target) < 0 {
                    child_failed(report_w_raw);
                }
            }
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execve(
                exec.path.as_ptr(),
                exec.argv.as_ptr() as _,
                exec.envp.as_ptr() as _,
            );
            child_failed(report_w_raw)
        }
    }
    if ret < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM | libc::EINVAL) => Ok(Err(e)),
            _ => Err(e),
        };
    }
    drop(report_w);
    // SAFETY: the kernel stored a new pidfd, owned by nobody else, at `pidfd`
    // (CLONE_PIDFD) when the clone succeeded.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let pid = Pid::from_raw(ret as libc::pid_t)
        .ok_or_else(|| io::Error::other("clone3 returned pid 0"))?;
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < errno.len() {
        match rustix::io::read(&report_r, &mut errno[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    match got {
        // The exec succeeded.
        0 => Ok(Ok((pid, pidfd))),
        // It failed; its parent reaps it.
        4 => Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno))),
        _ => Err(io::Error::other("the child's exec report was cut short")),
    }
}

/// In a child of [`spawn_sibling`]: writes errno to `report` and exits 127.
///
/// # Safety
/// Only in such a child, before exec.
unsafe fn child_failed(report: RawFd) -> ! {
    // SAFETY: async-signal-safe calls on the child's own errno and a
    // descriptor it holds; _exit does not run this process's atexit handlers.
    unsafe {
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(report, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
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

/// Makes `signal` send its number, one byte, on the datagram socket `raw`
/// (non-blocking) from its handler, beside whatever else handles it: a
/// self-pipe for a loop without an async runtime. `raw` must stay open for
/// the life of the process.
pub(crate) fn send_on_signal(signal: i32, raw: RawFd) -> io::Result<signal_hook_registry::SigId> {
    // SAFETY: the action runs in a signal handler; `send` is a plain system
    // call (async-signal-safe), nothing is allocated, locked or dropped. The
    // descriptor is borrowed only for the call, and the caller keeps it open
    // for the life of the process (the supervisor leaks its socket on purpose).
    unsafe {
        signal_hook_registry::register(signal, move || {
            let fd = BorrowedFd::borrow_raw(raw);
            let _ = rustix::net::send(fd, &[signal as u8], rustix::net::SendFlags::DONTWAIT);
        })
    }
}
