//! Guarantee: restarts leak no file descriptors. After 20 restarts the newest
//! generation, once idle, has exactly as many open fds (`/proc/PID/fd`) as
//! the first generation had when idle and serving; each generation in
//! between serves (`pid` answers with its own pid).

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod process;
    pub mod server;
}

use std::time::{Duration, Instant};

use harness::client::Target;
use harness::process::T5;
use harness::server::{self, Server};

const RESTARTS: usize = 20;

/// `fd -> target` for every open fd of `pid`, sorted by fd.
fn fds(pid: i32) -> Vec<(u32, String)> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("fds of {pid}: {e}"));
    let mut fds: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            Some((
                fd,
                std::fs::read_link(e.path())
                    .map_or_else(|e| format!("<{e}>"), |p| p.display().to_string()),
            ))
        })
        .collect();
    fds.sort();
    fds
}

/// The fds of `pid` once three samples 100 ms apart agree (bounded).
fn settled_fds(pid: i32, timeout: Duration) -> Vec<(u32, String)> {
    let deadline = Instant::now() + timeout;
    let (mut last, mut same) = (fds(pid), 0);
    while same < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = fds(pid);
        same = if now.len() == last.len() { same + 1 } else { 0 };
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_restarts_leak_no_fds() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(
        &server::example("echo"),
        dir.path(),
        &["--stop-timeout", "10"],
    );
    let target = Target::of(&server.wait_started());
    let first = server.first_pid;
    assert_eq!(target.ask_pid().await, first);
    let fds_first = settled_fds(first, T5);

    let started = Instant::now();
    let mut current = first;
    for i in 0..RESTARTS {
        let r = server.restart_and_wait_old();
        assert_eq!(r.old, current, "restart {i}");
        assert_eq!(
            target.ask_pid().await,
            r.new,
            "restart {i}: a new connection"
        );
        current = r.new;
    }
    let took = started.elapsed();
    let fds_last = settled_fds(current, T5);
    println!(
        "fd count: generation 1 (pid {first}) {} fds; generation {} (pid {current}) {} fds; {RESTARTS} \
         restarts in {took:?}",
        fds_first.len(),
        RESTARTS + 1,
        fds_last.len()
    );
    assert_eq!(
        fds_last.len(),
        fds_first.len(),
        "the fd count changed over {RESTARTS} restarts\n first: {fds_first:?}\n newest: {fds_last:?}"
    );
}
