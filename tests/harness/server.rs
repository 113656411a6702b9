//! A started example server, all its generations: the binary (built once per
//! test process), its standard output read line by line (with the pids named
//! in it), its standard error in a file, its pid file, restarts. Dropping the
//! guard SIGKILLs every process it saw and reaps the one it started.
//!
//! Started with `--supervise`, the process the test started is the
//! supervisor and the generations are its workers: the supervisor prints no
//! `serving` line, names itself in the pid file, takes the restart and stop
//! signals, and reports on standard error (`restart complete worker=PID`,
//! `restart failed: REASON`, `worker exited pid=PID status=...`), which
//! [`Server`] reads back as it grows.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{self, Reaped, Signal, T10, T30};

/// The binary of example `name`, built once per test process with the
/// features of this test build (so that it reuses the library already
/// built), next to the test executable: `<target>/<profile>/examples/`.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    // Held while building: concurrent first calls build once.
    let mut built = lock(BUILT.get_or_init(Default::default));
    if let Some(bin) = built.get(name) {
        return bin.clone();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("the test executable has a directory");
    let profile = if deps.ends_with("deps") {
        deps.parent().expect("deps has a parent")
    } else {
        deps
    };
    let features = [
        ("tokio", cfg!(feature = "tokio")),
        ("hyper", cfg!(feature = "hyper")),
        ("tls", cfg!(feature = "tls")),
        ("smol", cfg!(feature = "smol")),
        ("async-std", cfg!(feature = "async-std")),
        ("actix", cfg!(feature = "actix")),
        ("metrics", cfg!(feature = "metrics")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(f, _)| *f)
    .collect::<Vec<_>>()
    .join(",");
    let mut cargo =
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    cargo.args([
        "build",
        "--quiet",
        "--example",
        name,
        "--features",
        &features,
    ]);
    if profile.ends_with("release") {
        cargo.arg("--release");
    }
    // `cargo test` gives this process the variables it gives every target it
    // runs; build scripts that watch them (ring's) would see them change and
    // rebuild, here and in the next `cargo test`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let per_target = [
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "OUT_DIR",
        ];
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || per_target.contains(&&*key)
        {
            cargo.env_remove(&*key);
        }
    }
    // Build exactly where the binary is looked for.
    cargo.env(
        "CARGO_TARGET_DIR",
        profile.parent().expect("a target directory"),
    );
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    let out = cargo.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build --example {name} --features {features:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile.join("examples").join(name);
    assert!(bin.is_file(), "no example binary at {}", bin.display());
    built.insert(name.to_string(), bin.clone());
    bin
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `serving URL with pid PID` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    pub url: String,
    pub pid: i32,
}

impl Serving {
    pub fn parse(line: &str) -> Option<Serving> {
        let (url, pid) = line.strip_prefix("serving ")?.rsplit_once(" with pid ")?;
        Some(Serving {
            url: url.to_string(),
            pid: pid.trim().parse().ok()?,
        })
    }
}

/// Figures of one restart.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    pub old: i32,
    pub new: i32,
    /// From the signal to the successor ready (the pid file names it).
    pub ready: Duration,
    /// From the signal to the old generation gone, when waited for.
    pub old_exit: Option<Duration>,
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    eof: bool,
}

/// What the stdout reader shares with the guard.
#[derive(Default)]
struct Output {
    lines: Mutex<Lines>,
    more: Condvar,
    /// Every pid named in a line (`pid N`, `pid=N`): cleaned up on drop.
    pids: Mutex<BTreeSet<i32>>,
}

/// Standard error read back from its file as it grows, line by line.
#[derive(Default)]
struct ErrLog {
    /// Bytes of the file read so far.
    read: u64,
    /// The start of a line not yet complete.
    pending: Vec<u8>,
    lines: Vec<String>,
}

/// A started server and all its generations (see the module docs).
pub struct Server {
    name: String,
    child: Mutex<Reaped>,
    status: Mutex<Option<ExitStatus>>,
    /// The pid of the process the test started.
    started: i32,
    /// The first generation: the process the test started, or with
    /// `--supervise` its first worker (known once it serves:
    /// [`Server::wait_first_worker`]).
    pub first_pid: i32,
    first_starttime: u64,
    /// Started with `--supervise`.
    supervised: bool,
    /// The worker that serves, with `--supervise`, once known.
    current: Mutex<Option<i32>>,
    out: Arc<Output>,
    pid_file: Option<PathBuf>,
    stderr_path: PathBuf,
    err: Mutex<ErrLog>,
}

impl Server {
    /// `program ARGS --pid-file DIR/server.pid`, with `--listen
    /// 127.0.0.1:0` first unless `args` has a `--listen`.
    pub fn command(program: &Path, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args).arg("--pid-file").arg(dir.join("server.pid"));
        cmd
    }

    /// Starts [`Server::command`].
    pub fn start(program: &Path, dir: &Path, args: &[&str]) -> Server {
        Server::spawn(Server::command(program, dir, args), dir)
    }

    /// Starts `cmd` (its pid file is the path after its `--pid-file`, if
    /// any); its standard error goes to a file in `dir`.
    pub fn spawn(mut cmd: Command, dir: &Path) -> Server {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let pid_file = cmd
            .get_args()
            .skip_while(|a| *a != "--pid-file")
            .nth(1)
            .map(PathBuf::from);
        let stderr_path = dir.join(format!("stderr-{n}.log"));
        let stderr = File::create(&stderr_path).expect("create the stderr log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let program = Path::new(cmd.get_program()).file_name().unwrap_or_default();
        let name = format!("{}#{n}", program.to_string_lossy());
        let mut child: Child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let first_pid = child.id() as i32;
        let out = Arc::new(Output::default());
        lock(&out.pids).insert(first_pid);
        let supervised = cmd.get_args().any(|a| a == "--supervise");
        let stdout = child.stdout.take().expect("piped stdout");
        let (reader_out, tag) = (out.clone(), name.clone());
        thread::Builder::new()
            .name(format!("stdout-{name}"))
            .spawn(move || read_lines(stdout, &reader_out, &tag))
            .expect("spawn the stdout reader");
        Server {
            first_starttime: process::proc_stat(first_pid).map_or(0, |s| s.starttime),
            name,
            child: Mutex::new(Reaped(child)),
            status: Mutex::new(None),
            started: first_pid,
            first_pid,
            supervised,
            current: Mutex::new(None),
            out,
            pid_file,
            stderr_path,
            err: Mutex::default(),
        }
    }

    /// Whether it was started with `--supervise`.
    pub fn supervised(&self) -> bool {
        self.supervised
    }

    /// The process that stands for `generation` to the outside world: the
    /// one the pid file names, that talks to the service manager, and that
    /// takes the restart and stop signals. `generation` itself, or the
    /// supervisor.
    pub fn main_pid(&self, generation: i32) -> i32 {
        if self.supervised {
            self.started
        } else {
            generation
        }
    }

    /// Sends `signal` (a restart or stop signal) to the service whose
    /// serving generation is `generation`: to [`Server::main_pid`].
    pub fn signal_service(&self, generation: i32, signal: Signal) {
        self.signal(self.main_pid(generation), signal);
    }

    /// The worker that serves (`--supervise` only): the first, or the last
    /// one a restart, a take-back or a replacement brought.
    fn current_worker(&self) -> i32 {
        assert!(self.supervised, "only a supervisor has workers");
        lock(&self.current).unwrap_or_else(|| {
            panic!(
                "{}: no worker known to serve yet (wait_started first)",
                self.name
            )
        })
    }

    /// Remembers `pid` as one of this server's: dropping the guard kills it.
    pub fn note_pid(&self, pid: i32) {
        if pid > 1 {
            lock(&self.out.pids).insert(pid);
        }
    }

    /// The standard output so far, line by line.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.out.lines).lines.clone()
    }

    /// The number of lines so far: where [`Server::wait_line`] starts
    /// looking for what a step prints.
    pub fn mark(&self) -> usize {
        lock(&self.out.lines).lines.len()
    }

    /// Waits (bounded) for a line at index >= `from` matching `pred`. `None`
    /// on timeout, or when the output ended without one.
    pub fn wait_line(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut out = lock(&self.out.lines);
        let mut next = from;
        loop {
            while next < out.lines.len() {
                if pred(&out.lines[next]) {
                    return Some(out.lines[next].clone());
                }
                next += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if out.eof || left.is_zero() {
                return None;
            }
            out = self
                .out
                .more
                .wait_timeout(out, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The first `serving` line of generation `pid` (bounded: 30 s).
    pub fn wait_serving(&self, pid: i32) -> Serving {
        let line = self.wait_line(0, T30, |l| Serving::parse(l).is_some_and(|s| s.pid == pid));
        Serving::parse(&line.unwrap_or_else(|| {
            panic!(
                "{}: no serving line of {pid}\n{}",
                self.name,
                self.diagnostics()
            )
        }))
        .expect("a serving line")
    }

    /// Waits for the first generation to serve: its first `serving` line,
    /// and its pid in the pid file if it has one. Both must name it. With
    /// `--supervise`: the first `serving` line of a worker (the supervisor
    /// prints none), and the pid file names the supervisor.
    pub fn wait_started(&self) -> Serving {
        if !self.supervised {
            let serving = self.wait_serving(self.started);
            if self.pid_file.is_some() {
                assert_eq!(
                    self.wait_pid_file(),
                    self.started,
                    "the pid file names another process"
                );
            }
            return serving;
        }
        let line = self.wait_line(0, T30, |l| Serving::parse(l).is_some());
        let serving = Serving::parse(&line.unwrap_or_else(|| {
            panic!(
                "{}: no worker printed a serving line\n{}",
                self.name,
                self.diagnostics()
            )
        }))
        .expect("a serving line");
        assert_ne!(
            serving.pid, self.started,
            "{}: the supervisor itself serves",
            self.name
        );
        if self.pid_file.is_some() {
            assert_eq!(
                self.wait_pid_file(),
                self.started,
                "the pid file must name the supervisor"
            );
        }
        lock(&self.current).get_or_insert(serving.pid);
        serving
    }

    /// [`Server::wait_started`], and [`Server::first_pid`] becomes the first
    /// generation that served (with `--supervise`, the first worker).
    pub fn wait_first_worker(&mut self) -> Serving {
        let serving = self.wait_started();
        self.first_pid = serving.pid;
        serving
    }

    /// The pid in the pid file, complete (newline-terminated).
    pub fn pid_file_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.pid_file.as_ref()?).ok()?;
        let pid = text.strip_suffix('\n')?.parse().ok()?;
        self.note_pid(pid);
        Some(pid)
    }

    /// Waits (bounded: 30 s) for the pid file to name a process.
    pub fn wait_pid_file(&self) -> i32 {
        process::poll_until(T30, Duration::from_millis(20), || self.pid_file_pid()).unwrap_or_else(
            || {
                panic!(
                    "{}: no pid file after 30 s\n{}",
                    self.name,
                    self.diagnostics()
                )
            },
        )
    }

    /// Sends `signal` to `pid`, one of this server's processes.
    pub fn signal(&self, pid: i32, signal: Signal) {
        self.note_pid(pid);
        process::kill(pid, signal).unwrap_or_else(|e| panic!("kill({pid}, {signal:?}): {e}"));
    }

    /// The exit status of the process the test started, if it exited (it is
    /// reaped then).
    pub fn try_wait_child(&self) -> Option<ExitStatus> {
        let mut status = lock(&self.status);
        if status.is_none() {
            *status = lock(&self.child).0.try_wait().ok().flatten();
        }
        *status
    }

    /// Waits (bounded) for the process the test started to exit.
    pub fn wait_child_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        process::poll_until(timeout, Duration::from_millis(5), || self.try_wait_child())
    }

    /// Waits (bounded) for generation `pid` to exit; its exit status: the
    /// process the test started (reaped here), or with `--supervise` a worker
    /// (as the supervisor reported it, `worker exited pid=PID status=...`).
    pub fn wait_exit(&self, pid: i32, timeout: Duration) -> Option<ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        if pid == self.started {
            return self.wait_child_exit(timeout);
        }
        assert!(
            self.supervised,
            "{}: the test sees the exit status of its own child only",
            self.name
        );
        let exited = format!("worker exited pid={pid} status=");
        let line = self.wait_err_line(0, timeout, |l| l.contains(&exited))?;
        let status = &line[line.find(&exited).expect("matched") + exited.len()..];
        let number = |prefix: &str| status.strip_prefix(prefix)?.trim().parse::<i32>().ok();
        match (number("exit status "), number("killed by signal ")) {
            (Some(code), _) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
            (None, Some(signal)) => Some(ExitStatus::from_raw(signal & 0x7f)),
            _ => panic!(
                "{}: an exit status the harness cannot read: {line:?}",
                self.name
            ),
        }
    }

    /// Waits (bounded) until generation `pid` is gone; panics otherwise.
    pub fn expect_gone(&self, pid: i32, timeout: Duration) {
        let gone = if pid == self.started {
            self.wait_child_exit(timeout).is_some()
        } else {
            process::wait_gone(pid, timeout)
        };
        assert!(
            gone,
            "{}: generation {pid} still running after {timeout:?}\n{}",
            self.name,
            self.diagnostics()
        );
    }

    /// Sends `signal` (SIGHUP, SIGUSR2) to the generation in the pid file;
    /// returns once the pid file names its successor (bounded: 30 s), which
    /// must have printed its `serving` line. The old generation may still be
    /// draining. With `--supervise`: sends it to the supervisor; returns once
    /// the supervisor reported `restart complete worker=NEW` (a new worker
    /// ready, the old one told to drain); the pid file names the supervisor
    /// throughout.
    pub fn restart(&self, signal: Signal) -> Restart {
        if self.supervised {
            return self.restart_supervised(signal);
        }
        let old = self.wait_pid_file();
        let signalled = Instant::now();
        self.signal(old, signal);
        // Polled fast: the time to this change is "ready after signal".
        let new = process::poll_until(T30, Duration::from_millis(2), || {
            self.pid_file_pid().filter(|p| *p != old)
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: the pid file still names {old} 30 s after {signal:?}\n{}",
                self.name,
                self.diagnostics()
            )
        });
        let ready = signalled.elapsed();
        self.wait_serving(new);
        Restart {
            old,
            new,
            ready,
            old_exit: None,
        }
    }

    fn restart_supervised(&self, signal: Signal) -> Restart {
        let old = self.current_worker();
        let from = self.verdict_mark();
        let signalled = Instant::now();
        self.signal(self.started, signal);
        let verdict = self.wait_verdict(from, T30, |_| true).unwrap_or_else(|| {
            panic!(
                "{}: no restart verdict 30 s after {signal:?} to the supervisor\n{}",
                self.name,
                self.diagnostics()
            )
        });
        let ready = signalled.elapsed();
        let new = verdict
            .strip_prefix("restart complete: successor pid ")
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "{}: {signal:?} to the supervisor: {verdict}\n{}",
                    self.name,
                    self.diagnostics()
                )
            });
        self.note_pid(new);
        assert_ne!(new, old, "{}: the restart kept worker {old}", self.name);
        self.wait_serving(new);
        if self.pid_file.is_some() {
            assert_eq!(
                self.pid_file_pid(),
                Some(self.started),
                "{}: the pid file must name the supervisor after a restart",
                self.name
            );
        }
        *lock(&self.current) = Some(new);
        Restart {
            old,
            new,
            ready,
            old_exit: None,
        }
    }

    /// Where [`Server::wait_verdict`] starts looking for the verdict of a
    /// restart attempt made from now on.
    pub fn verdict_mark(&self) -> usize {
        if self.supervised {
            self.err_mark()
        } else {
            self.mark()
        }
    }

    /// Waits (bounded) for the verdict of a restart attempt, after `from`
    /// (a [`Server::verdict_mark`]), for which `pred` holds: `restart
    /// complete: successor pid PID` or `restart failed: REASON`, as the
    /// generation printed it or, with `--supervise`, as the supervisor
    /// reported it (`restart complete worker=PID` becomes the former).
    pub fn wait_verdict(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let supervised = self.supervised;
        let matches = |l: &str| verdict(supervised, l).is_some_and(|v| pred(&v));
        let line = if supervised {
            self.wait_err_line(from, timeout, matches)
        } else {
            self.wait_line(from, timeout, matches)
        };
        line.and_then(|l| verdict(supervised, &l))
    }

    /// Every restart verdict so far (see [`Server::wait_verdict`]).
    pub fn verdicts(&self) -> Vec<String> {
        let lines = if self.supervised {
            self.err_mark();
            lock(&self.err).lines.clone()
        } else {
            self.lines()
        };
        lines
            .iter()
            .filter_map(|l| verdict(self.supervised, l))
            .collect()
    }

    /// Waits (bounded: 10 s) for the report that generation `lost`, which
    /// took over from `by` and died after it was ready, handed the listeners
    /// back to `by`: `by` printed `restart failed: successor pid LOST exited
    /// after it was ready`, and with `--supervise` the supervisor reported
    /// `worker pid LOST exited after it was ready (...); worker pid BY took
    /// the listeners back` too (and `by` serves again). The report (the
    /// supervisor's, when supervised).
    pub fn wait_taken_back(&self, lost: i32, by: i32) -> String {
        let own = format!("restart failed: successor pid {lost} exited after it was ready");
        let own_report = self.wait_line(0, T10, |l| l.starts_with(&own));
        let report = if self.supervised {
            let dead = format!("worker pid {lost} exited after it was ready");
            let back = format!("worker pid {by} took the listeners back");
            own_report.and(self.wait_err_line(0, T10, |l| l.contains(&dead) && l.contains(&back)))
        } else {
            own_report
        };
        let report = report.unwrap_or_else(|| {
            panic!(
                "{}: no report that {by} took the listeners back from {lost}\n{}",
                self.name,
                self.diagnostics()
            )
        });
        if self.supervised {
            *lock(&self.current) = Some(by);
        }
        report
    }

    /// `--supervise` only: waits (bounded: 10 s) for the supervisor to
    /// report that worker `dead` exited unexpectedly and to start its
    /// replacement, and for the replacement's `serving` line; its pid.
    pub fn wait_replaced(&self, dead: i32) -> i32 {
        assert!(self.supervised, "only a supervisor replaces a worker");
        let exited = format!("worker pid {dead} exited unexpectedly");
        let (at, _) = self
            .wait_err_at(0, T10, |l| l.contains(&exited))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no report that worker {dead} exited unexpectedly\n{}",
                    self.name,
                    self.diagnostics()
                )
            });
        let started = self
            .wait_err_line(at + 1, T10, |l| l.contains("started a worker pid="))
            .and_then(|l| pids_in(&l).first().copied())
            .unwrap_or_else(|| {
                panic!(
                    "{}: no replacement for worker {dead} started\n{}",
                    self.name,
                    self.diagnostics()
                )
            });
        self.note_pid(started);
        self.wait_serving(started);
        *lock(&self.current) = Some(started);
        started
    }

    /// [`Server::restart`] with SIGHUP, then waits (bounded: 30 s) until the
    /// old generation is gone.
    pub fn restart_and_wait_old(&self) -> Restart {
        let signalled = Instant::now();
        let mut r = self.restart(Signal::HUP);
        self.expect_gone(r.old, T30);
        r.old_exit = Some(signalled.elapsed());
        r
    }

    /// SIGTERM to the service whose serving generation is `pid`, which must
    /// be gone within 10 s. With `--supervise`: to the supervisor; the worker
    /// and then the supervisor must be gone within 10 s, the supervisor with
    /// status 0 (every worker drained and exited cleanly).
    pub fn terminate(&self, pid: i32) {
        self.signal_service(pid, Signal::TERM);
        self.expect_gone(pid, T10);
        if self.supervised {
            let status = self.wait_child_exit(T10).unwrap_or_else(|| {
                panic!(
                    "{}: the supervisor still runs 10 s after SIGTERM\n{}",
                    self.name,
                    self.diagnostics()
                )
            });
            assert!(
                status.success(),
                "{}: the supervisor exited with {status} after SIGTERM\n{}",
                self.name,
                self.diagnostics()
            );
        }
    }

    /// Reads what standard error gained since the last call; the number of
    /// complete lines so far: where [`Server::wait_err_line`] starts looking
    /// for what a step logs.
    pub fn err_mark(&self) -> usize {
        let mut err = lock(&self.err);
        if let Ok(mut file) = File::open(&self.stderr_path) {
            use std::io::{Seek, SeekFrom};
            let mut more = Vec::new();
            if file.seek(SeekFrom::Start(err.read)).is_ok() && file.read_to_end(&mut more).is_ok() {
                err.read += more.len() as u64;
                err.pending.extend_from_slice(&more);
                while let Some(end) = err.pending.iter().position(|b| *b == b'\n') {
                    let raw: Vec<u8> = err.pending.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&raw[..end]).into_owned();
                    err.lines.push(line);
                }
            }
        }
        err.lines.len()
    }

    /// Waits (bounded) for a line of standard error at index >= `from`
    /// matching `pred` (standard error goes to a file; it is read again
    /// every 2 ms). `None` on timeout.
    pub fn wait_err_line(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.wait_err_at(from, timeout, pred).map(|(_, line)| line)
    }

    /// [`Server::wait_err_line`], with the index of the line.
    fn wait_err_at(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(usize, String)> {
        let mut next = from;
        process::poll_until(timeout, Duration::from_millis(2), || {
            let len = self.err_mark();
            let err = lock(&self.err);
            let found = (next.min(len)..len).find(|i| pred(&err.lines[*i]));
            next = next.max(len);
            found.map(|i| (i, err.lines[i].clone()))
        })
    }

    pub fn stderr(&self) -> String {
        fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last 40 lines of standard output and error, for failure messages.
    pub fn diagnostics(&self) -> String {
        let tail = |lines: Vec<&str>| lines[lines.len().saturating_sub(40)..].join("\n");
        let out = self.lines();
        let err = self.stderr();
        format!(
            "--- {0} stdout ---\n{1}\n--- {0} stderr ---\n{2}\n---",
            self.name,
            tail(out.iter().map(String::as_str).collect()),
            tail(err.lines().collect())
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "[harness] the test failed; the server's output:\n{}",
                self.diagnostics()
            );
        }
        // Every pid seen, the pid file's, and their descendants; only those
        // started no earlier than the first generation (a pid may have been
        // reused since).
        let mut pids = lock(&self.out.pids).clone();
        pids.extend(self.pid_file_pid());
        let ours = |st: &process::ProcStat| st.starttime >= self.first_starttime;
        let all = process::processes();
        for _ in 0..all.len() {
            let before = pids.len();
            pids.extend(
                all.iter()
                    .filter(|(_, st)| pids.contains(&st.ppid) && ours(st))
                    .map(|(pid, _)| *pid)
                    .collect::<Vec<_>>(),
            );
            if pids.len() == before {
                break;
            }
        }
        let me = std::process::id() as i32;
        for pid in pids.into_iter().filter(|p| *p > 1 && *p != me) {
            if process::proc_stat(pid).is_some_and(|st| ours(&st) && st.state != 'Z') {
                let _ = process::kill(pid, Signal::KILL);
            }
        }
        // The started process itself is killed and reaped by `Reaped`.
    }
}

/// Reads `stdout` into `out` line by line, echoing each to stderr (shown by
/// the test harness when the test fails).
fn read_lines(mut stdout: impl Read, out: &Output, tag: &str) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw[..end])
                .trim_end_matches('\r')
                .to_string();
            eprintln!("[{tag} stdout] {line}");
            lock(&out.pids).extend(pids_in(&line));
            lock(&out.lines).lines.push(line);
            out.more.notify_all();
        }
    }
    let mut lines = lock(&out.lines);
    if !pending.is_empty() {
        lines
            .lines
            .push(String::from_utf8_lossy(&pending).into_owned());
    }
    lines.eof = true;
    out.more.notify_all();
}

/// A restart verdict in `line`: `restart complete: successor pid PID` or
/// `restart failed: REASON`, as a generation prints it, or with a supervisor
/// (`supervised`) from its log (`restart complete worker=PID` becomes the
/// former).
fn verdict(supervised: bool, line: &str) -> Option<String> {
    if !supervised {
        return line.starts_with("restart ").then(|| line.to_string());
    }
    if let Some(at) = line.find("restart complete worker=") {
        let pid = &line[at + "restart complete worker=".len()..];
        let pid: String = pid.chars().take_while(char::is_ascii_digit).collect();
        return Some(format!("restart complete: successor pid {pid}"));
    }
    line.find("restart failed: ")
        .map(|at| line[at..].to_string())
}

/// The numbers after every `pid ` or `pid=` in `line`.
fn pids_in(line: &str) -> Vec<i32> {
    line.match_indices("pid")
        .filter_map(|(i, _)| {
            let tail = &line[i + 3..];
            let tail = tail.strip_prefix(' ').or_else(|| tail.strip_prefix('='))?;
            let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok().filter(|p| *p > 1)
        })
        .collect()
}
