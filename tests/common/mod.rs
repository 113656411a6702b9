//! Shared harness for the real-process integration tests (`tests/echo_*.rs`).
//!
//! What lives here:
//! - [`example_bin`]: builds an example once per test process and returns the
//!   path of its binary next to the test executable.
//! - [`TempDir`]: a private scratch directory (kept on failure for debugging).
//! - [`Server`]: a guard around a spawned server process. Its stdout is read by
//!   a background thread into a shared list of lines; its stderr goes to a file
//!   in the scratch directory. On drop it SIGKILLs every pid the test ever saw
//!   (all generations plus their descendants) and reaps the direct child.
//! - `/proc` helpers: process state, children, open fds.
//! - [`Client`]: a scripted blocking line client with bounded reads.
//! - [`Load`]: a bounded load generator that classifies every outcome.
//!
//! Every wait in here is bounded; every loop is bounded in count and in time.
//! Only loopback addresses and Unix sockets in private directories are used.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use rustix::process::Signal;

/// Default bound for "this should happen soon" waits.
pub const T5: Duration = Duration::from_secs(5);
pub const T10: Duration = Duration::from_secs(10);
pub const T30: Duration = Duration::from_secs(30);
/// Polling period for events that have no notification (pid file, /proc).
pub const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Locating example binaries
// ---------------------------------------------------------------------------

/// Builds `cargo build --example NAME --features FEATURES --quiet` once per
/// test process (per (name, features) pair) and returns the binary path,
/// derived from the location of the running test executable:
/// `<target>/<profile>/deps/<test>` → `<target>/<profile>/examples/<name>`.
pub fn example_bin(name: &str, features: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    // Holding the lock while building serialises concurrent first calls.
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    let key = (name.to_string(), features.to_string());
    if let Some(p) = map.get(&key) {
        return p.clone();
    }

    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test exe has a parent dir");
    let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps dir has a parent")
    } else {
        deps
    };
    let target_dir = profile_dir.parent().expect("profile dir has a parent");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--example", name, "--quiet"]);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    if release {
        cmd.arg("--release");
    }
    // Build exactly where we are going to look for the binary.
    cmd.env("CARGO_TARGET_DIR", target_dir);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.stdin(Stdio::null());
    let out = cmd.output().expect("failed to run cargo build");
    assert!(
        out.status.success(),
        "cargo build --example {name} --features {features:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "example binary not found at {}",
        bin.display()
    );
    map.insert(key, bin.clone());
    bin
}

/// The echo example, built with the tokio adapter.
pub fn echo_bin() -> PathBuf {
    example_bin("echo", "tokio")
}

// ---------------------------------------------------------------------------
// Scratch directories
// ---------------------------------------------------------------------------

/// A private directory under the system temp dir. Removed on drop, except when
/// the thread is panicking (then it is kept and its path printed).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            // Keep it short: Unix socket paths are limited to ~107 bytes.
            let path = base.join(format!("ho-{tag}-{}-{n}-{nanos:x}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create temp dir {}: {e}", path.display()),
            }
        }
        panic!("could not create a temp dir under {}", base.display());
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("[harness] keeping {} for inspection", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes `contents` with `mode` to a sibling temp file and renames it over
/// `dest` (the way a deploy replaces a binary).
pub fn replace_file(dest: &Path, contents: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dest.with_extension("replacing");
    {
        let mut f = File::create(&tmp).expect("create replacement");
        f.write_all(contents).expect("write replacement");
        f.sync_all().ok();
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).expect("chmod replacement");
    fs::rename(&tmp, dest).expect("rename replacement over destination");
}

/// Copies the file at `src` to `dest` atomically (copy to temp + rename).
pub fn replace_with_copy(dest: &Path, src: &Path, mode: u32) {
    let bytes = fs::read(src).expect("read source binary");
    replace_file(dest, &bytes, mode);
}

// ---------------------------------------------------------------------------
// Polling helper
// ---------------------------------------------------------------------------

/// Calls `f` every `every` until it returns `Some`, or until `timeout`.
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(every);
    }
}

// ---------------------------------------------------------------------------
// Processes, signals, /proc
// ---------------------------------------------------------------------------

/// Sends `sig` to `pid` (via rustix, no unsafe).
pub fn send_signal(pid: i32, sig: Signal) -> io::Result<()> {
    let p = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
    rustix::process::kill_process(p, sig).map_err(io::Error::from)
}

/// The fields of `/proc/PID/stat` the tests need.
#[derive(Debug, Clone)]
pub struct ProcStat {
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    /// Start time in clock ticks since boot.
    pub starttime: u64,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let rest: Vec<&str> = s[close + 1..].split_whitespace().collect();
    // rest[0] = state (field 3), rest[1] = ppid (field 4), rest[19] = starttime (field 22)
    Some(ProcStat {
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        starttime: rest.get(19)?.parse().ok()?,
    })
}

/// True when the process does not exist any more or is a zombie / dead.
pub fn is_gone(pid: i32) -> bool {
    match proc_stat(pid) {
        None => true,
        Some(st) => matches!(st.state, 'Z' | 'X' | 'x'),
    }
}

/// Waits (bounded) until `is_gone(pid)`. Works for any pid; the test cannot
/// reap later generations (they are reparented), so zombies count as gone.
pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    poll_until(timeout, Duration::from_millis(2), || {
        is_gone(pid).then_some(())
    })
    .is_some()
}

pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// All pids whose parent is `ppid` (zombies included), by scanning /proc.
pub fn children_of(ppid: i32) -> Vec<i32> {
    all_procs()
        .into_iter()
        .filter(|(_, st)| st.ppid == ppid)
        .map(|(pid, _)| pid)
        .collect()
}

fn all_procs() -> Vec<(i32, ProcStat)> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                if let Some(st) = proc_stat(pid) {
                    out.push((pid, st));
                }
            }
        }
    }
    out
}

/// Number of open fds of `pid`.
pub fn fd_count(pid: i32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// `fd -> target` for every open fd of `pid`, sorted by fd.
pub fn fd_list(pid: i32) -> Vec<(u32, String)> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let target = fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("<{e}>"));
            v.push((fd, target));
        }
    }
    v.sort();
    v
}

/// Samples `fd_count(pid)` until three consecutive samples (100 ms apart)
/// agree, bounded by `timeout`. Returns the settled count.
pub fn settled_fd_count(pid: i32, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut last: Option<usize> = None;
    let mut same = 0;
    loop {
        let n = fd_count(pid).unwrap_or_else(|e| panic!("count fds of {pid}: {e}"));
        if last == Some(n) {
            same += 1;
        } else {
            same = 0;
        }
        last = Some(n);
        if same >= 2 || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Human summary of a set of durations: `n=.. min=.. median=.. max=..`.
pub fn summarize(ds: &[Duration]) -> String {
    if ds.is_empty() {
        return "n=0".into();
    }
    let mut v = ds.to_vec();
    v.sort();
    format!(
        "n={} min={:?} median={:?} max={:?}",
        v.len(),
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    )
}

// ---------------------------------------------------------------------------
// Server guard
// ---------------------------------------------------------------------------

/// One `serving URL with pid PID` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    pub url: String,
    pub pid: i32,
}

impl Serving {
    pub fn parse(line: &str) -> Option<Serving> {
        let rest = line.strip_prefix("serving ")?;
        let (url, pid) = rest.rsplit_once(" with pid ")?;
        Some(Serving {
            url: url.to_string(),
            pid: pid.trim().parse().ok()?,
        })
    }

    /// The address to connect to.
    pub fn target(&self) -> Target {
        if let Some(a) = self.url.strip_prefix("tcp://") {
            Target::Tcp(
                a.parse()
                    .unwrap_or_else(|e| panic!("bad tcp url {:?}: {e}", self.url)),
            )
        } else if let Some(p) = self.url.strip_prefix("unix://") {
            Target::Unix(PathBuf::from(p))
        } else {
            panic!("unknown url scheme in {:?}", self.url)
        }
    }

    pub fn port(&self) -> Option<u16> {
        match self.target() {
            Target::Tcp(a) => Some(a.port()),
            Target::Unix(_) => None,
        }
    }
}

#[derive(Default)]
struct OutState {
    lines: Vec<String>,
    eof: bool,
}

struct Output {
    state: Mutex<OutState>,
    cv: Condvar,
    pids: Mutex<BTreeSet<i32>>,
}

impl Output {
    fn note_pids_in(&self, line: &str) {
        // Any "pid N" / "pid=N" in a line names a process of this server.
        let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        for (i, _) in line.match_indices("pid") {
            let tail = &line[i + 3..];
            let tail = tail
                .strip_prefix(' ')
                .or_else(|| tail.strip_prefix('='))
                .unwrap_or("");
            let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(p) = digits.parse::<i32>() {
                if p > 1 {
                    pids.insert(p);
                }
            }
        }
    }
}

/// How a startup ended (see [`Server::wait_serving_or_exit`]).
#[derive(Debug)]
pub enum Startup {
    Serving(Serving),
    Exited(ExitStatus),
    Hung,
}

/// A spawned server (all its generations). Drop kills everything it saw.
pub struct Server {
    pub name: String,
    child: Mutex<Child>,
    child_status: Mutex<Option<ExitStatus>>,
    /// Pid of the process the test spawned (the first generation).
    pub first_pid: i32,
    base_starttime: u64,
    out: Arc<Output>,
    pub pid_file: Option<PathBuf>,
    pub stderr_path: PathBuf,
    pub started: Instant,
}

impl Server {
    /// Starts `program` with `args`, adding `--pid-file DIR/server.pid` and,
    /// unless `args` has one, `--listen 127.0.0.1:0`.
    pub fn start(program: &Path, dir: &TempDir, args: &[&str]) -> Server {
        let pid_file = dir.join("server.pid");
        let mut cmd = Command::new(program);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args);
        cmd.arg("--pid-file").arg(&pid_file);
        Server::spawn(cmd, dir, Some(pid_file))
    }

    /// Spawns an arbitrary command (e.g. a python wrapper that execs the server).
    pub fn spawn(mut cmd: Command, dir: &TempDir, pid_file: Option<PathBuf>) -> Server {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let stderr_path = dir.join(format!("stderr-{n}.log"));
        let errf = File::create(&stderr_path).expect("create stderr log");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(errf);
        let name = format!(
            "{}#{n}",
            Path::new(cmd.get_program())
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        );
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let first_pid = child.id() as i32;
        let base_starttime = proc_stat(first_pid).map(|s| s.starttime).unwrap_or(0);
        let out = Arc::new(Output {
            state: Mutex::new(OutState::default()),
            cv: Condvar::new(),
            pids: Mutex::new(BTreeSet::from([first_pid])),
        });
        let stdout = child.stdout.take().expect("piped stdout");
        {
            let out = out.clone();
            let tag = name.clone();
            thread::Builder::new()
                .name(format!("stdout-{tag}"))
                .spawn(move || read_stdout(stdout, out, tag))
                .expect("spawn stdout reader");
        }
        Server {
            name,
            child: Mutex::new(child),
            child_status: Mutex::new(None),
            first_pid,
            base_starttime,
            out,
            pid_file,
            stderr_path,
            started,
        }
    }

    /// Remembers a pid so Drop kills it too.
    pub fn note_pid(&self, pid: i32) {
        if pid > 1 {
            self.out
                .pids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(pid);
        }
    }

    pub fn seen_pids(&self) -> BTreeSet<i32> {
        self.out
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    // --- stdout lines -----------------------------------------------------

    pub fn lines(&self) -> Vec<String> {
        self.out
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines
            .clone()
    }

    /// Number of stdout lines so far (a mark for [`Server::wait_line`]).
    pub fn mark(&self) -> usize {
        self.out
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines
            .len()
    }

    /// Waits (bounded) for a line at index >= `from` matching `pred`; returns
    /// it. Returns None on timeout or when stdout reached EOF without a match.
    pub fn wait_line(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.wait_line_idx(from, timeout, pred).map(|(_, l)| l)
    }

    fn wait_line_idx(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(usize, String)> {
        let deadline = Instant::now() + timeout;
        let mut st = self.out.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = from;
        loop {
            while next < st.lines.len() {
                if pred(&st.lines[next]) {
                    return Some((next, st.lines[next].clone()));
                }
                next += 1;
            }
            if st.eof {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .out
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for `count` `serving ...` lines at index >= `from`.
    pub fn wait_serving(&self, from: usize, count: usize, timeout: Duration) -> Vec<Serving> {
        let deadline = Instant::now() + timeout;
        let mut found = Vec::new();
        let mut next = from;
        while found.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.wait_line_idx(next, left, |l| Serving::parse(l).is_some()) {
                Some((i, l)) => {
                    found.push(Serving::parse(&l).unwrap());
                    next = i + 1;
                }
                None => panic!(
                    "{}: timed out after {timeout:?} waiting for {count} serving line(s) (got {found:?})\n{}",
                    self.name,
                    self.diagnostics()
                ),
            }
        }
        found
    }

    /// Waits for the first `serving` line of the given pid.
    pub fn wait_serving_pid(&self, pid: i32, timeout: Duration) -> Serving {
        match self.wait_line(0, timeout, |l| {
            Serving::parse(l).is_some_and(|s| s.pid == pid)
        }) {
            Some(l) => Serving::parse(&l).unwrap(),
            None => panic!(
                "{}: no serving line for pid {pid} within {timeout:?}\n{}",
                self.name,
                self.diagnostics()
            ),
        }
    }

    /// Waits until either a serving line appears, the direct child exits, or
    /// `timeout` passes.
    pub fn wait_serving_or_exit(&self, timeout: Duration) -> Startup {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.wait_line(0, Duration::from_millis(20), |l| {
                Serving::parse(l).is_some()
            }) {
                return Startup::Serving(Serving::parse(&l).unwrap());
            }
            if let Some(st) = self.try_wait_child() {
                // A serving line may still be in the pipe: give the reader a moment.
                if let Some(l) = self.wait_line(0, Duration::from_millis(200), |l| {
                    Serving::parse(l).is_some()
                }) {
                    return Startup::Serving(Serving::parse(&l).unwrap());
                }
                return Startup::Exited(st);
            }
            if Instant::now() >= deadline {
                return Startup::Hung;
            }
        }
    }

    // --- pid file ---------------------------------------------------------

    /// The pid currently in the pid file (also remembered for cleanup).
    pub fn pid_file_pid(&self) -> Option<i32> {
        let path = self.pid_file.as_ref()?;
        let s = fs::read_to_string(path).ok()?;
        if !s.ends_with('\n') {
            return None;
        }
        let pid = s.trim().parse::<i32>().ok()?;
        self.note_pid(pid);
        Some(pid)
    }

    /// Waits (bounded) for the pid file to exist and hold a pid.
    pub fn wait_pid_file(&self, timeout: Duration) -> i32 {
        poll_until(timeout, POLL, || self.pid_file_pid()).unwrap_or_else(|| {
            panic!(
                "{}: pid file not written within {timeout:?}\n{}",
                self.name,
                self.diagnostics()
            )
        })
    }

    /// Waits (bounded) for the pid file to hold a pid different from `old`.
    pub fn wait_pid_file_change(&self, old: i32, timeout: Duration) -> Result<i32, String> {
        // Poll fast: the time to this change is reported as "time to ready".
        let every = Duration::from_millis(2);
        poll_until(timeout, every, || self.pid_file_pid().filter(|p| *p != old)).ok_or_else(|| {
            format!(
                "pid file still {:?} (old {old}) after {timeout:?}",
                self.pid_file_pid()
            )
        })
    }

    // --- processes --------------------------------------------------------

    pub fn signal(&self, pid: i32, sig: Signal) {
        self.note_pid(pid);
        send_signal(pid, sig).unwrap_or_else(|e| panic!("kill({pid}, {sig:?}): {e}"));
    }

    /// Non-blocking check of the direct child (reaps it if it exited).
    pub fn try_wait_child(&self) -> Option<ExitStatus> {
        let mut cs = self.child_status.lock().unwrap_or_else(|e| e.into_inner());
        if cs.is_none() {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            *cs = child.try_wait().ok().flatten();
        }
        *cs
    }

    /// Waits (bounded) for the direct child to exit; returns its status.
    pub fn wait_child_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, Duration::from_millis(5), || self.try_wait_child())
    }

    /// Waits (bounded) for any generation to be gone.
    pub fn wait_exit(&self, pid: i32, timeout: Duration) -> bool {
        if pid == self.first_pid {
            self.wait_child_exit(timeout).is_some()
        } else {
            wait_gone(pid, timeout)
        }
    }

    /// Sends `sig` to the pid in the pid file and waits for the pid file to
    /// change. Returns (old, new, time from signal to successor ready).
    pub fn restart(&self, sig: Signal, timeout: Duration) -> (i32, i32, Duration) {
        let old = self.wait_pid_file(timeout);
        let t0 = Instant::now();
        self.signal(old, sig);
        let new = self.wait_pid_file_change(old, timeout).unwrap_or_else(|e| {
            panic!(
                "{}: restart of {old}: {e}\n{}",
                self.name,
                self.diagnostics()
            )
        });
        (old, new, t0.elapsed())
    }

    // --- diagnostics ------------------------------------------------------

    pub fn stderr(&self) -> String {
        fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Last lines of stderr and stdout, for failure messages.
    pub fn diagnostics(&self) -> String {
        let err = self.stderr();
        let err_tail: Vec<&str> = err
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let lines = self.lines();
        let out_tail = &lines[lines.len().saturating_sub(40)..];
        format!(
            "--- {} stdout (last {} lines) ---\n{}\n--- {} stderr (last {} lines) ---\n{}\n---",
            self.name,
            out_tail.len(),
            out_tail.join("\n"),
            self.name,
            err_tail.len(),
            err_tail.join("\n")
        )
    }

    fn kill_everything(&self) {
        let mut pids = self.seen_pids();
        if let Some(p) = self.pid_file_pid() {
            pids.insert(p);
        }
        // Add descendants (e.g. a successor's children) of every known pid.
        let procs = all_procs();
        loop {
            let before = pids.len();
            for (pid, st) in &procs {
                if pids.contains(&st.ppid) && st.starttime >= self.base_starttime {
                    pids.insert(*pid);
                }
            }
            if pids.len() == before {
                break;
            }
        }
        let me = std::process::id() as i32;
        for pid in pids {
            if pid <= 1 || pid == me {
                continue;
            }
            // Only processes started no earlier than our first generation:
            // guards against a long-gone pid having been reused.
            if let Some(st) = proc_stat(pid) {
                if st.starttime >= self.base_starttime && !matches!(st.state, 'Z' | 'X') {
                    let _ = send_signal(pid, Signal::KILL);
                }
            }
        }
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "[harness] test failed; server diagnostics:\n{}",
                self.diagnostics()
            );
        }
        self.kill_everything();
    }
}

fn read_stdout(mut stdout: impl Read, out: Arc<Output>, tag: String) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw[..raw.len() - 1])
                .trim_end_matches('\r')
                .to_string();
            eprintln!("[{tag} stdout] {line}");
            out.note_pids_in(&line);
            let mut st = out.state.lock().unwrap_or_else(|e| e.into_inner());
            st.lines.push(line);
            out.cv.notify_all();
        }
    }
    let mut st = out.state.lock().unwrap_or_else(|e| e.into_inner());
    if !pending.is_empty() {
        st.lines
            .push(String::from_utf8_lossy(&pending).into_owned());
    }
    st.eof = true;
    out.cv.notify_all();
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A blocking client connection (TCP or Unix).
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    pub fn connect(t: &Target, timeout: Duration) -> io::Result<Conn> {
        let c = match t {
            Target::Tcp(a) => {
                assert!(a.ip().is_loopback(), "tests only talk to loopback, got {a}");
                let s = TcpStream::connect_timeout(a, timeout)?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
            Target::Unix(p) => Conn::Unix(UnixStream::connect(p)?),
        };
        c.set_write_timeout(Some(timeout))?;
        c.set_read_timeout(Some(timeout))?;
        Ok(c)
    }

    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(d),
            Conn::Unix(s) => s.set_read_timeout(d),
        }
    }

    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_write_timeout(d),
            Conn::Unix(s) => s.set_write_timeout(d),
        }
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_nonblocking(on),
            Conn::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// Non-blocking look at the connection before reusing it.
    pub fn probe(&mut self) -> Probe {
        if let Err(e) = self.set_nonblocking(true) {
            return Probe::Error(e);
        }
        let mut b = [0u8; 256];
        let r = self.read(&mut b);
        let _ = self.set_nonblocking(false);
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Probe::Open,
            Ok(0) => Probe::Eof,
            Ok(n) => Probe::Data(b[..n].to_vec()),
            Err(e) if is_reset(&e) => Probe::Reset(e),
            Err(e) => Probe::Error(e),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
pub enum Probe {
    /// Nothing to read: the connection is still open.
    Open,
    /// The server closed the connection cleanly (FIN).
    Eof,
    /// Unsolicited bytes.
    Data(Vec<u8>),
    Reset(io::Error),
    Error(io::Error),
}

pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What a bounded read of one line ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete line (without its `\n`).
    Line(String),
    /// Clean EOF; `partial` holds bytes of an unfinished line, if any.
    Eof {
        partial: String,
    },
    /// ECONNRESET / EPIPE / ECONNABORTED; `partial` as above.
    Reset {
        partial: String,
        error: String,
    },
    Timeout {
        partial: String,
    },
    Error(String),
}

/// Reads until one `\n`-terminated line is in `buf` (bounded by `timeout`).
/// Bytes after the newline stay in `buf`.
fn read_line_buffered(conn: &mut Conn, buf: &mut Vec<u8>, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = buf.drain(..=pos).collect();
            return Outcome::Line(String::from_utf8_lossy(&raw[..raw.len() - 1]).into_owned());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::Timeout {
                partial: String::from_utf8_lossy(buf).into_owned(),
            };
        }
        if let Err(e) = conn.set_read_timeout(Some(left.max(Duration::from_millis(1)))) {
            return Outcome::Error(e.to_string());
        }
        match conn.read(&mut chunk) {
            Ok(0) => {
                return Outcome::Eof {
                    partial: String::from_utf8_lossy(buf).into_owned(),
                };
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) if is_reset(&e) => {
                return Outcome::Reset {
                    partial: String::from_utf8_lossy(buf).into_owned(),
                    error: e.to_string(),
                };
            }
            Err(e) => return Outcome::Error(e.to_string()),
        }
    }
}

/// A scripted line client for step-by-step tests. Panics on unexpected
/// outcomes in the convenience methods.
pub struct Client {
    pub conn: Conn,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(t: &Target) -> Client {
        Client::try_connect(t).unwrap_or_else(|e| panic!("connect to {t:?}: {e}"))
    }

    pub fn try_connect(t: &Target) -> io::Result<Client> {
        Ok(Client {
            conn: Conn::connect(t, T10)?,
            buf: Vec::new(),
        })
    }

    /// Writes raw bytes (no newline added).
    pub fn send(&mut self, s: &str) -> io::Result<()> {
        self.conn.write_all(s.as_bytes())
    }

    /// Reads one line (bounded).
    pub fn read(&mut self, timeout: Duration) -> Outcome {
        read_line_buffered(&mut self.conn, &mut self.buf, timeout)
    }

    /// Sends `line\n` and returns the reply line; panics otherwise.
    pub fn request(&mut self, line: &str) -> String {
        self.send(&format!("{line}\n"))
            .unwrap_or_else(|e| panic!("send {line:?}: {e}"));
        match self.read(T10) {
            Outcome::Line(l) => l,
            other => panic!("request {line:?}: expected a reply line, got {other:?}"),
        }
    }

    /// Asks `pid` and returns the number in `pid=N`.
    pub fn ask_pid(&mut self) -> i32 {
        let r = self.request("pid");
        r.strip_prefix("pid=")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("reply to `pid` was {r:?}"))
    }
}

/// Connects, asks `pid`, returns it.
pub fn ask_pid(t: &Target) -> i32 {
    Client::connect(t).ask_pid()
}

// ---------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Clients that reuse one connection for several lines.
    pub keepalive_clients: usize,
    /// Clients that open a new connection for every line.
    pub reconnect_clients: usize,
    /// Lines per keep-alive connection before the client closes it itself.
    pub lines_per_conn: u64,
    /// Pause between two requests of one client (keeps the number of
    /// TIME_WAIT sockets and the CPU use bounded; 0 = back to back).
    pub think: Duration,
    /// Hard caps: requests per client and wall time.
    pub max_requests_per_client: u64,
    pub max_duration: Duration,
    /// Connect / read / write timeout; a timeout is a failure (a hang).
    pub io_timeout: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            keepalive_clients: 2,
            reconnect_clients: 2,
            lines_per_conn: 200,
            think: Duration::from_millis(1),
            max_requests_per_client: 200_000,
            max_duration: Duration::from_secs(90),
            io_timeout: T10,
        }
    }
}

/// Figures of one load run. See the field docs for what counts as a failure.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    /// Lines sent and echoed back exactly.
    pub successes: u64,
    pub connects: u64,
    /// FAILURE: connect() failed (refused, timed out, path missing, ...).
    pub connect_failures: u64,
    /// FAILURE: ECONNRESET / EPIPE at any point.
    pub resets: u64,
    /// FAILURE: reply different from the line sent (or unsolicited bytes).
    pub wrong_echoes: u64,
    /// FAILURE: part of the echo arrived, then EOF/reset: the server had the
    /// line and did not finish echoing it.
    pub truncated: u64,
    /// FAILURE: no reply within `io_timeout`.
    pub timeouts: u64,
    /// FAILURE: any other I/O error.
    pub other_errors: u64,
    /// Normal: a keep-alive connection found closed (clean EOF) by the
    /// non-blocking check made before reusing it: a drain close; the client
    /// reconnects.
    pub idle_closes: u64,
    /// Race (reported, not a proven loss): a line was sent and the connection
    /// then ended with a clean EOF without a single byte of echo. The server
    /// closed a connection it saw as idle while the line was in flight;
    /// whether the server had already received it cannot be told from the
    /// client. Split by fresh (first line on a new connection) / reused.
    pub eof_race_fresh: u64,
    pub eof_race_reused: u64,
    /// Breakdown of `resets` by where they were seen.
    pub reset_where: BTreeMap<String, u64>,
    /// Breakdown of connect failures / other errors by error text.
    pub error_kinds: BTreeMap<String, u64>,
    /// A few examples of failures, for the report.
    pub samples: Vec<String>,
}

impl LoadStats {
    pub fn failures(&self) -> u64 {
        self.connect_failures
            + self.resets
            + self.wrong_echoes
            + self.truncated
            + self.timeouts
            + self.other_errors
    }

    pub fn races(&self) -> u64 {
        self.eof_race_fresh + self.eof_race_reused
    }

    fn merge(&mut self, o: &LoadStats) {
        self.successes += o.successes;
        self.connects += o.connects;
        self.connect_failures += o.connect_failures;
        self.resets += o.resets;
        self.wrong_echoes += o.wrong_echoes;
        self.truncated += o.truncated;
        self.timeouts += o.timeouts;
        self.other_errors += o.other_errors;
        self.idle_closes += o.idle_closes;
        self.eof_race_fresh += o.eof_race_fresh;
        self.eof_race_reused += o.eof_race_reused;
        for (k, v) in &o.reset_where {
            *self.reset_where.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.error_kinds {
            *self.error_kinds.entry(k.clone()).or_default() += v;
        }
        for s in &o.samples {
            if self.samples.len() < 12 {
                self.samples.push(s.clone());
            }
        }
    }

    /// Asserts: no failed connects, resets, wrong echoes, truncated echoes,
    /// timeouts or other errors.
    pub fn assert_no_failures(&self, what: &str) {
        assert_eq!(self.connect_failures, 0, "{what}: failed connects\n{self}");
        assert_eq!(self.resets, 0, "{what}: connection resets\n{self}");
        assert_eq!(self.wrong_echoes, 0, "{what}: wrong echoes\n{self}");
        assert_eq!(
            self.truncated, 0,
            "{what}: truncated echoes (line received, echo not finished)\n{self}"
        );
        assert_eq!(
            self.timeouts, 0,
            "{what}: timeouts (hung connections)\n{self}"
        );
        assert_eq!(self.other_errors, 0, "{what}: other I/O errors\n{self}");
    }
}

impl fmt::Display for LoadStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests served={} connects={} | failed connects={} resets={} wrong echoes={} truncated={} timeouts={} other errors={} | drain closes seen before reuse={} EOF races (line in flight when an idle-looking connection was closed): fresh={} reused={}",
            self.successes,
            self.connects,
            self.connect_failures,
            self.resets,
            self.wrong_echoes,
            self.truncated,
            self.timeouts,
            self.other_errors,
            self.idle_closes,
            self.eof_race_fresh,
            self.eof_race_reused
        )?;
        if !self.reset_where.is_empty() {
            write!(f, "\n  resets by place: {:?}", self.reset_where)?;
        }
        if !self.error_kinds.is_empty() {
            write!(f, "\n  errors: {:?}", self.error_kinds)?;
        }
        for s in &self.samples {
            write!(f, "\n  sample: {s}")?;
        }
        Ok(())
    }
}

/// Live counters, readable while the load runs.
#[derive(Default)]
pub struct Live {
    pub successes: AtomicU64,
    pub failures: AtomicU64,
    pub races: AtomicU64,
}

/// A running load. `stop()` returns the merged figures; dropping it stops
/// the clients too (they end within `io_timeout`).
pub struct Load {
    stop: Arc<AtomicBool>,
    pub live: Arc<Live>,
    handles: Vec<JoinHandle<LoadStats>>,
    pub started: Instant,
}

impl Load {
    pub fn start(target: Target, cfg: LoadConfig) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        let mut handles = Vec::new();
        let total = cfg.keepalive_clients + cfg.reconnect_clients;
        for id in 0..total {
            let keepalive = id < cfg.keepalive_clients;
            let (t, c, s, l) = (target.clone(), cfg.clone(), stop.clone(), live.clone());
            handles.push(
                thread::Builder::new()
                    .name(format!("load-{id}"))
                    .spawn(move || client_loop(id, keepalive, t, c, s, l))
                    .expect("spawn load client"),
            );
        }
        Load {
            stop,
            live,
            handles,
            started: Instant::now(),
        }
    }

    pub fn successes(&self) -> u64 {
        self.live.successes.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.live.failures.load(Ordering::Relaxed)
    }

    pub fn races(&self) -> u64 {
        self.live.races.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until at least `n` requests succeeded in total.
    pub fn wait_successes(&self, n: u64, timeout: Duration) -> bool {
        poll_until(timeout, Duration::from_millis(5), || {
            (self.successes() >= n).then_some(())
        })
        .is_some()
    }

    /// Waits (bounded) for `n` more successes than now.
    pub fn wait_progress(&self, n: u64, timeout: Duration) -> bool {
        let target = self.successes() + n;
        self.wait_successes(target, timeout)
    }

    pub fn stop(mut self) -> LoadStats {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadStats::default();
        for h in self.handles.drain(..) {
            match h.join() {
                Ok(s) => total.merge(&s),
                Err(_) => panic!("a load client thread panicked"),
            }
        }
        total
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn client_loop(
    id: usize,
    keepalive: bool,
    target: Target,
    cfg: LoadConfig,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
) -> LoadStats {
    let mut st = LoadStats::default();
    let deadline = Instant::now() + cfg.max_duration;
    let mut conn: Option<Conn> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut used = 0u64; // lines echoed on the current connection
    let mut conn_no = 0u64;
    let mut req = 0u64;

    let fail = |st: &mut LoadStats, live: &Live, sample: String| {
        live.failures.fetch_add(1, Ordering::Relaxed);
        if st.samples.len() < 4 {
            st.samples.push(sample);
        }
    };

    while !stop.load(Ordering::Relaxed)
        && Instant::now() < deadline
        && req < cfg.max_requests_per_client
    {
        if conn.is_none() {
            match Conn::connect(&target, cfg.io_timeout) {
                Ok(c) => {
                    conn = Some(c);
                    buf.clear();
                    used = 0;
                    conn_no += 1;
                    st.connects += 1;
                }
                Err(e) => {
                    st.connect_failures += 1;
                    *st.error_kinds.entry(format!("connect: {e}")).or_default() += 1;
                    fail(&mut st, &live, format!("client {id}: connect failed: {e}"));
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        // Build the line first so that nothing but a syscall separates the
        // check below from the write (keeps the close/send race window small).
        let pad = "x".repeat(((req + 1) % 61) as usize);
        let line = format!("c{id}-k{conn_no}-r{}-{pad}\n", req + 1);
        let c = conn.as_mut().unwrap();
        let reused = used > 0;
        if reused {
            // Before reusing a connection, look whether the server already
            // closed it (drain of an idle connection): that is normal.
            match c.probe() {
                Probe::Open => {}
                Probe::Eof => {
                    st.idle_closes += 1;
                    conn = None;
                    continue;
                }
                Probe::Data(d) => {
                    st.wrong_echoes += 1;
                    fail(
                        &mut st,
                        &live,
                        format!(
                            "client {id}: unsolicited bytes on idle connection: {:?}",
                            String::from_utf8_lossy(&d)
                        ),
                    );
                    conn = None;
                    continue;
                }
                Probe::Reset(e) => {
                    st.resets += 1;
                    *st.reset_where
                        .entry("idle connection (before reuse)".into())
                        .or_default() += 1;
                    fail(
                        &mut st,
                        &live,
                        format!("client {id}: reset on idle connection: {e}"),
                    );
                    conn = None;
                    continue;
                }
                Probe::Error(e) => {
                    st.other_errors += 1;
                    *st.error_kinds.entry(format!("probe: {e}")).or_default() += 1;
                    fail(&mut st, &live, format!("client {id}: probe error: {e}"));
                    conn = None;
                    continue;
                }
            }
        }

        req += 1;
        let c = conn.as_mut().unwrap();
        let write = c.write_all(line.as_bytes());
        let line = line.trim_end_matches('\n');
        if let Err(e) = write {
            if is_reset(&e) {
                st.resets += 1;
                *st.reset_where
                    .entry(format!(
                        "write ({})",
                        if reused { "reused" } else { "fresh" }
                    ))
                    .or_default() += 1;
            } else if is_timeout(&e) {
                st.timeouts += 1;
            } else {
                st.other_errors += 1;
                *st.error_kinds.entry(format!("write: {e}")).or_default() += 1;
            }
            fail(
                &mut st,
                &live,
                format!("client {id}: write of {line:?} failed: {e}"),
            );
            conn = None;
            continue;
        }
        let where_ = if reused { "reused" } else { "fresh" };
        match read_line_buffered(c, &mut buf, cfg.io_timeout) {
            Outcome::Line(l) if l == line => {
                st.successes += 1;
                live.successes.fetch_add(1, Ordering::Relaxed);
                used += 1;
            }
            Outcome::Line(l) => {
                st.wrong_echoes += 1;
                fail(
                    &mut st,
                    &live,
                    format!("client {id}: sent {line:?}, got {l:?}"),
                );
                conn = None;
            }
            Outcome::Eof { partial } if partial.is_empty() => {
                if reused {
                    st.eof_race_reused += 1;
                } else {
                    st.eof_race_fresh += 1;
                }
                live.races.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
            Outcome::Eof { partial } => {
                st.truncated += 1;
                fail(
                    &mut st,
                    &live,
                    format!("client {id}: sent {line:?}, got {partial:?} then EOF"),
                );
                conn = None;
            }
            Outcome::Reset { partial, error } => {
                if !partial.is_empty() {
                    st.truncated += 1;
                } else {
                    st.resets += 1;
                    *st.reset_where
                        .entry(format!("read after send ({where_})"))
                        .or_default() += 1;
                }
                fail(
                    &mut st,
                    &live,
                    format!("client {id}: sent {line:?} ({where_}), got {partial:?} then {error}"),
                );
                conn = None;
            }
            Outcome::Timeout { partial } => {
                st.timeouts += 1;
                fail(
                    &mut st,
                    &live,
                    format!(
                        "client {id}: sent {line:?} ({where_}), no echo within {:?} (partial {partial:?})",
                        cfg.io_timeout
                    ),
                );
                conn = None;
            }
            Outcome::Error(e) => {
                st.other_errors += 1;
                *st.error_kinds.entry(format!("read: {e}")).or_default() += 1;
                fail(
                    &mut st,
                    &live,
                    format!("client {id}: read error after {line:?}: {e}"),
                );
                conn = None;
            }
        }
        if conn.is_some() && (!keepalive || used >= cfg.lines_per_conn) {
            conn = None; // client closes first
        }
        if !cfg.think.is_zero() {
            thread::sleep(cfg.think);
        }
    }
    st
}

// ---------------------------------------------------------------------------
// Watching for an old generation to go away
// ---------------------------------------------------------------------------

/// Polls (every 5 ms, bounded) until `pid` is gone; the thread returns the
/// time from `since` to gone, or None on timeout.
pub fn watch_gone(pid: i32, since: Instant, timeout: Duration) -> JoinHandle<Option<Duration>> {
    thread::spawn(move || wait_gone(pid, timeout).then(|| since.elapsed()))
}

/// Whether `path` currently exists and is a socket.
pub fn is_socket(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}
