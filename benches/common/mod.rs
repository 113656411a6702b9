//! What the bench programs share: flags (`--quick`), release builds of the
//! examples, a guard around server processes (every pid it saw is killed and
//! reaped on drop), waiting for a process to exit through its pidfd, external
//! tools found on `PATH`, and medians with min-max.
//!
//! The bench programs measure whole processes, so they are plain programs
//! (`harness = false`) that print Markdown tables. Every wait is bounded.

#![allow(dead_code)] // each bench uses the part it needs

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

pub mod load;

/// Bound for "a server starts" and "a restart completes".
pub const T10: Duration = Duration::from_secs(10);

/// The flags every bench takes: `--quick` (fewer rounds, smaller sizes), and
/// optionally names of the sections to run (all when none is given). cargo's
/// own `--bench` flag is ignored.
pub struct Flags {
    pub quick: bool,
    pub only: Vec<String>,
}

impl Flags {
    pub fn parse() -> Flags {
        let mut flags = Flags {
            quick: false,
            only: Vec::new(),
        };
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--bench" => {}
                "--quick" => flags.quick = true,
                other if other.starts_with('-') => {
                    eprintln!("unknown flag {other:?}: expected --quick and section names");
                    std::process::exit(2);
                }
                other => flags.only.push(other.to_string()),
            }
        }
        flags
    }

    /// Whether the section `name` was asked for.
    pub fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }

    /// `quick` rounds in quick mode, else `full`.
    pub fn rounds(&self, quick: usize, full: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

/// Makes this process the reaper of its orphaned descendants: a successor
/// whose parent (the old generation) exits becomes our child, so we can reap
/// it and never leave a zombie behind.
pub fn become_subreaper() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .expect("PR_SET_CHILD_SUBREAPER");
}

/// The release directory this bench binary runs from (`target/release`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("bench binary has a parent dir");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// Builds `--example NAME --all-features` with the profile this bench was
/// built with (`bench` under `cargo bench`) and returns the binary. Every
/// example is built with every feature (they are additive), so one build of
/// the library serves them all and the benches (`cargo bench --all-features`).
pub fn example(name: &str) -> PathBuf {
    let profile = profile_dir();
    let target = profile.parent().expect("profile dir has a parent");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--example", name, "--all-features"]);
    if profile.file_name().is_some_and(|n| n == "release") {
        // The profile `cargo bench` builds with: the library built for the
        // bench is reused, not rebuilt with `--release`'s fingerprint.
        cmd.args(["--profile", "bench"]);
    } else {
        eprintln!(
            "warning: not a release build ({}): figures are meaningless",
            profile.display()
        );
    }
    // `cargo bench` gives this process the variables it gives every target
    // it runs (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...). Build scripts that
    // watch them (ring's) would see them change and rebuild everything.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&key.as_ref())
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.env("CARGO_TARGET_DIR", target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    let status = cmd.status().expect("run cargo build");
    assert!(
        status.success(),
        "cargo build --example {name} --all-features failed"
    );
    profile.join("examples").join(name)
}

/// An external program on `PATH`, if installed.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A free loopback port: bound to port 0, read back, released. Only for
/// programs that cannot take port 0 themselves (nginx, HAProxy, wrk targets
/// are always read back from the server instead).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A server process and every generation that follows it. Its stdout lines
/// arrive on a channel with the instant they were read; stderr goes to a
/// file. On drop every pid it saw is SIGKILLed and reaped.
pub struct Server {
    child: Option<Child>,
    lines: mpsc::Receiver<(String, Instant)>,
    pids: BTreeSet<i32>,
    /// The pid currently serving (the newest generation).
    pub pid: u32,
    /// The address from the first `serving http://ADDR` (or `serving ADDR`) line.
    pub addr: String,
    pub stderr: PathBuf,
}

impl Server {
    /// Starts `program args`, and waits (at most 10 s) for its first
    /// `serving ... with pid PID` line.
    pub fn start(program: &Path, args: &[&str]) -> Server {
        let stderr = std::env::temp_dir().join(format!(
            "handoff-bench-{}-{}.log",
            program.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("create stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((line, Instant::now())).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        let mut server = Server {
            child: Some(child),
            lines,
            pids: BTreeSet::from([pid as i32]),
            pid,
            addr: String::new(),
            stderr,
        };
        let (line, _) = server
            .line_with("serving ", T10)
            .unwrap_or_else(|| panic!("{} printed no `serving` line", program.display()));
        let addr = line
            .strip_prefix("serving ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default();
        server.addr = addr
            .trim_start_matches("http://")
            .trim_start_matches("tcp://")
            .to_string();
        server
    }

    /// The next stdout line containing `needle`, within `timeout`.
    pub fn line_with(&mut self, needle: &str, timeout: Duration) -> Option<(String, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok((line, at)) if line.contains(needle) => return Some((line, at)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Sends SIGHUP to the serving generation, waits for `restart complete:
    /// successor pid PID` and then for the old generation to exit. Returns
    /// (signal -> successor ready, signal -> old generation exited).
    pub fn restart(&mut self, timeout: Duration) -> (Duration, Duration) {
        let old = self.pid;
        wait_catches_sighup(old, timeout);
        let pidfd = pidfd(old);
        let sent = Instant::now();
        signal(old, Signal::HUP);
        let (line, ready_at) = self
            .line_with("restart complete: successor pid ", timeout)
            .unwrap_or_else(|| {
                panic!(
                    "no successor within {timeout:?} (log: {})",
                    self.stderr.display()
                )
            });
        let successor: u32 = line
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        self.pids.insert(successor as i32);
        self.pid = successor;
        let exited_at = wait_exit(&pidfd, timeout)
            .unwrap_or_else(|| panic!("old generation {old} still running after {timeout:?}"));
        self.reap(old);
        (ready_at - sent, exited_at - sent)
    }

    /// Reaps `pid` if it is our child (the first generation, or an orphaned
    /// successor re-parented to us as subreaper) and has exited.
    fn reap(&mut self, pid: u32) {
        if self.child.as_ref().is_some_and(|c| c.id() == pid) {
            if let Some(mut child) = self.child.take() {
                let _ = child.wait();
            }
        } else if let Some(pid) = Pid::from_raw(pid as i32) {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
        }
    }

    /// The resident memory of the serving generation, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Kept when a bench fails: the panic message names it.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.stderr);
        }
        for &pid in &self.pids {
            if let Some(p) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        for &pid in &self.pids {
            if let Some(p) = Pid::from_raw(pid) {
                // Blocking is fine: SIGKILL was sent; only our children are reaped.
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            }
        }
    }
}

/// Waits until `pid` has a SIGHUP handler (`SigCgt` in `/proc/PID/status`):
/// a server prints its address before its restart loop installs the
/// handler, and SIGHUP's default action would kill it. There is no event
/// for this, so it is polled, every millisecond, outside any measurement.
pub fn wait_catches_sighup(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let caught = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("SigCgt:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(0);
        // Bit n-1 stands for signal n; SIGHUP is 1.
        if caught & 1 == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} installed no SIGHUP handler within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A pidfd for `pid`.
pub fn pidfd(pid: u32) -> OwnedFd {
    let p = Pid::from_raw(pid as i32).expect("nonzero pid");
    rustix::process::pidfd_open(p, PidfdFlags::empty()).expect("pidfd_open")
}

/// Waits for the process behind `pidfd` to exit (its pidfd becomes
/// readable); returns the instant it was seen, or `None` after `timeout`.
pub fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> Option<Instant> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        let left = Timespec::try_from(left).expect("timeout fits a timespec");
        match rustix::event::poll(&mut fds, Some(&left)) {
            Ok(n) if n > 0 => return Some(Instant::now()),
            Ok(_) => return None,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll pidfd: {e}"),
        }
    }
}

/// Reaps an exited child through its pidfd (a no-op if it is not ours).
pub fn reap_pidfd(pidfd: &OwnedFd) {
    let _ = rustix::process::waitid(
        WaitId::PidFd(std::os::fd::AsFd::as_fd(pidfd)),
        WaitIdOptions::EXITED,
    );
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: Signal) {
    let p = Pid::from_raw(pid as i32).expect("nonzero pid");
    rustix::process::kill_process(p, sig).unwrap_or_else(|e| panic!("kill {pid}: {e}"));
}

/// `VmRSS` of `pid` in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------

/// Median, min and max of a sample.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        assert!(!values.is_empty(), "no samples");
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Summary {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }

    /// Durations, in milliseconds.
    pub fn ms(values: &[Duration]) -> Summary {
        Summary::of(
            &values
                .iter()
                .map(|d| d.as_secs_f64() * 1e3)
                .collect::<Vec<_>>(),
        )
    }

    /// `median (min-max)` with `decimals` digits.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}-{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// Prints a Markdown table.
pub fn table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    println!("\n### {title}\n");
    println!("| {} |", header.join(" | "));
    println!(
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
}

/// The machine the figures come from: CPU model, cores, kernel, git commit.
pub fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "machine: {cpu}, {cores} cores, Linux {}, commit {commit}",
        kernel.trim()
    );
}

// ---------------------------------------------------------------------------
// A blocking HTTP/1.1 client for setting up connections (not for load)
// ---------------------------------------------------------------------------

/// Opens a keep-alive connection to `addr` and makes one `GET path` on it;
/// returns the open connection. Reads are bounded by `timeout`.
pub fn keep_alive(
    addr: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<std::net::TcpStream> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let (status, _) = get(&mut stream, path)?;
    if status != 200 {
        return Err(std::io::Error::other(format!(
            "GET {path}: status {status}"
        )));
    }
    Ok(stream)
}

/// Sends `GET path` on `stream` and reads the response (its body sized by
/// `Content-Length`). Returns the status and the body.
pub fn get(stream: &mut std::net::TcpStream, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| std::io::Error::other(format!("no Content-Length in {head:?}")))?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((
        status,
        String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string(),
    ))
}
