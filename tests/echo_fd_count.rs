//! Guarantee: restarts leak no file descriptors. After 20 restarts the newest
//! generation, once idle, has exactly as many open fds (`/proc/PID/fd`) as
//! the first generation had when idle and serving; each generation in
//! between serves (`pid` answers with its own pid).

mod common;

use common::*;
use std::time::Instant;

const RESTARTS: usize = 20;

#[test]
fn twenty_restarts_leak_no_fds() {
    let dir = TempDir::new("fd");
    let server = Server::start(&echo_bin(), &dir, &["--stop-timeout", "10"]);
    let target = server.wait_serving(0, 1, T30).remove(0).target();
    let pid0 = server.wait_pid_file(T30);
    assert_eq!(ask_pid(&target), pid0);
    let fds0 = settled_fd_count(pid0, T5);
    let list0 = fd_list(pid0);

    let t0 = Instant::now();
    let mut current = pid0;
    for i in 0..RESTARTS {
        let (old, new, _) = server.restart(Signal::HUP, T30);
        assert_eq!(old, current);
        assert!(
            server.wait_exit(old, T30),
            "restart {i}: old generation {old} did not exit"
        );
        assert_eq!(
            ask_pid(&target),
            new,
            "restart {i}: new connection not served by {new}"
        );
        current = new;
    }
    let took = t0.elapsed();

    let fds_n = settled_fd_count(current, T5);
    let list_n = fd_list(current);
    println!(
        "fd count: generation 1 (pid {pid0}) {fds0} fds; generation {} (pid {current}) {fds_n} fds; {RESTARTS} restarts in {took:?}",
        RESTARTS + 1
    );
    assert_eq!(
        fds_n, fds0,
        "fd count changed over {RESTARTS} restarts\n first: {list0:?}\n newest: {list_n:?}"
    );
}
