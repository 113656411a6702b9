//! Processes a test started or saw: signals, `/proc`, bounded waits, and a
//! guard that kills and reaps a child on every path.
//!
//! Every wait is bounded in time; every loop in count and time.

use std::fs;
use std::io;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

pub use rustix::process::Signal;

/// "Soon", "surely", "at the very latest": the bounds of the waits.
pub const T5: Duration = Duration::from_secs(5);
pub const T10: Duration = Duration::from_secs(10);
pub const T30: Duration = Duration::from_secs(30);

/// Calls `f` every `every` until it returns `Some`, or `timeout` passed.
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

/// Sends `signal` to `pid`.
pub fn kill(pid: i32, signal: Signal) -> io::Result<()> {
    let p = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
    rustix::process::kill_process(p, signal).map_err(io::Error::from)
}

/// The fields of `/proc/PID/stat` the tests need.
#[derive(Debug, Clone)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    /// Start time in clock ticks since boot.
    pub starttime: u64,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command, in parentheses: state (field 3), ppid (4), ...,
    // starttime (22).
    let rest: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    Some(ProcStat {
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        starttime: rest.get(19)?.parse().ok()?,
    })
}

/// Every process in `/proc`, zombies included.
pub fn processes() -> Vec<(i32, ProcStat)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .collect()
}

/// The pids whose parent is `ppid` (zombies included).
pub fn children_of(ppid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, st)| st.ppid == ppid)
        .map(|(pid, _)| pid)
        .collect()
}

/// True when the process does not exist any more, or is a zombie: a later
/// generation is reparented, so the test cannot reap it.
pub fn is_gone(pid: i32) -> bool {
    proc_stat(pid).is_none_or(|st| matches!(st.state, 'Z' | 'X' | 'x'))
}

/// Waits (bounded) until [`is_gone`]`(pid)`.
pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    poll_until(timeout, Duration::from_millis(2), || {
        is_gone(pid).then_some(())
    })
    .is_some()
}

/// A child process, killed and reaped when dropped, whatever happened.
pub struct Reaped(pub Child);

impl Reaped {
    /// Waits (bounded) for the child to exit by itself; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        poll_until(timeout, Duration::from_millis(5), || {
            self.0.try_wait().ok().flatten()
        })
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
