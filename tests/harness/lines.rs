//! A child's stdout, line by line: a started process whose lines arrive on
//! a channel, this test binary started again as a probe (a test that acts
//! only when its variables are set), and bounded waits for a line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::process::Reaped;

/// Starts `cmd` with its stdout piped: the child (killed and reaped when
/// dropped), and its stdout lines arriving on a channel.
pub fn spawn_with_lines(cmd: &mut Command) -> (Reaped, mpsc::Receiver<String>) {
    let mut child = Reaped(cmd.stdout(Stdio::piped()).spawn().expect("spawn"));
    let stdout = child.0.stdout.take().expect("a piped stdout");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, lines)
}

/// This test binary again, running only the test `probe` (which acts when
/// the variables in `env` say so): the child and its stdout lines.
pub fn start_probe(
    probe: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> (Reaped, mpsc::Receiver<String>) {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args(["--exact", probe, "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    spawn_with_lines(&mut cmd)
}

/// The next line of `lines` that holds `anchor`, from `anchor` on (libtest
/// may have begun the line), that `is` picks out; the test fails if none
/// comes within `within`.
pub fn next_line(
    lines: &mpsc::Receiver<String>,
    within: Duration,
    anchor: &str,
    is: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no line with {anchor:?} within {within:?}: {e}"));
        if let Some(at) = line.find(anchor) {
            if is(&line[at..]) {
                return line[at..].to_string();
            }
        }
    }
}
