//! The project's scripts (`scripts/`) run as tests: each in its own process
//! group, bounded in time, torn down on every path, its `KEY ...` report
//! lines read back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{Signal, poll_until};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// Whether `program` runs (`program --version`).
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// When a prerequisite is missing: with `required` (an environment variable
/// CI sets) in the environment, a failure; else the test says why it did not
/// run. Whether to go on.
pub fn prerequisite(missing: Option<String>, required: &str, what: &str) -> bool {
    let Some(why) = missing else { return true };
    if std::env::var_os(required).is_some() {
        panic!("{required} is set, but {why}");
    }
    println!("{what} not run: {why}");
    false
}

/// A free port on 127.0.0.1, for a server that binds it itself.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// `PATH` with oha's directory first (the scripts call `oha`).
pub fn path_with_oha() -> std::ffi::OsString {
    let oha = super::external::oha().expect("oha");
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = oha
        .parent()
        .into_iter()
        .map(Path::to_path_buf)
        .chain(std::env::split_paths(&rest));
    std::env::join_paths(dirs).expect("PATH")
}

/// A process group started for one script: on drop (the test passed, failed
/// or timed out) SIGTERM to the group, so that the script's traps tear down
/// what it started, then SIGKILL to what is left, and the leader is reaped.
struct Group(std::process::Child);

impl Group {
    fn signal(&self, signal: Signal) {
        if let Some(pgid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process_group(pgid, signal);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            self.signal(Signal::TERM);
            let exited = poll_until(Duration::from_secs(60), Duration::from_millis(50), || {
                self.0.try_wait().ok().flatten()
            });
            if exited.is_none() {
                self.signal(Signal::KILL);
            }
        }
        // What the script left behind in its group, if anything.
        self.signal(Signal::KILL);
        let _ = self.0.wait();
    }
}

/// What a script reported: its lines of the form `KEY rest`, by key, up to a
/// line starting with `stop_at` (a journal dump, say), lines starting with
/// `[` (kernel-style log prefixes) left out.
pub struct Report {
    /// The report lines, for printing.
    pub text: String,
    /// `rest` of each `KEY rest` line, by key, in order.
    pub lines: BTreeMap<String, Vec<String>>,
}

impl Report {
    /// The lines of `key`; panics naming `what` if there are none.
    pub fn get(&self, what: &str, key: &str) -> &[String] {
        self.lines
            .get(key)
            .unwrap_or_else(|| panic!("{what}: no {key} line in\n{}", self.text))
    }
}

/// Runs `cmd` in its own process group, its output to a file, for at most
/// `bound`; panics naming `what` with the whole output if it fails or runs
/// over, else its report.
pub fn run(what: &str, mut cmd: Command, bound: Duration, stop_at: &str) -> Report {
    let log = tempfile::NamedTempFile::new().expect("a log file");
    cmd.stdin(Stdio::null())
        .stdout(log.reopen().expect("the log"))
        .stderr(log.reopen().expect("the log"));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut group = Group(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("{what}: run {cmd:?}: {e}")),
    );
    let status = poll_until(bound, Duration::from_millis(100), || {
        group.0.try_wait().ok().flatten()
    });
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    match status {
        None => panic!("{what}: took over {bound:?}\n{output}"),
        Some(s) if !s.success() => panic!("{what}: failed ({s})\n{output}"),
        Some(_) => {}
    }
    drop(group);
    let text: String = output
        .lines()
        .take_while(|l| !l.starts_with(stop_at))
        .filter(|l| !l.starts_with('['))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut lines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((key, rest)) = line.split_once(' ') {
            lines.entry(key.into()).or_default().push(rest.into());
        }
    }
    Report { text, lines }
}
