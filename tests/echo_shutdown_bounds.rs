//! Guarantee: graceful shutdown is bounded at both ends.
//! - A client holding half a line keeps the server alive (it waits for the
//!   line) until `--stop-timeout`, and the process is gone by
//!   stop + kill timeout whatever the client does.
//! - A client that completes its line during shutdown gets its echo, then a
//!   clean EOF, and the process exits right after.
//! - With no clients, or only idle ones, SIGTERM / SIGINT exits promptly,
//!   long before the stop timeout, and idle clients see a clean EOF.
//!
//! In every case the process handles the signal itself (it exits with a
//! code, it is not killed by the signal).

mod common;

use common::*;
use std::thread;
use std::time::{Duration, Instant};

fn held_line_client(target: &Target) -> Client {
    let mut c = Client::connect(target);
    assert_eq!(c.request("hello"), "hello");
    c.send("half a line without its newline")
        .expect("send half line");
    // No event tells us the server has read the partial line; give it a moment.
    thread::sleep(Duration::from_millis(200));
    c
}

#[test]
fn held_line_delays_exit_until_stop_timeout_and_kill_timeout_bounds_it() {
    let dir = TempDir::new("sb1");
    let server = Server::start(
        &echo_bin(),
        &dir,
        &["--stop-timeout", "1", "--kill-timeout", "1"],
    );
    let target = server.wait_serving(0, 1, T30).remove(0).target();
    let pid = server.wait_pid_file(T30);
    let mut c = held_line_client(&target);

    let t0 = Instant::now();
    server.signal(pid, Signal::TERM);
    // stop 1 s + kill 1 s, plus 3 s of slack for a loaded CI machine.
    let status = server.wait_child_exit(Duration::from_secs(5));
    let took = t0.elapsed();
    let client_saw = c.read(Duration::from_secs(1));
    println!(
        "shutdown with a held line (stop 1 s, kill 1 s): exit {status:?} after {took:?}; client then saw {client_saw:?}"
    );

    let status = status.unwrap_or_else(|| {
        panic!("server still running {took:?} after SIGTERM (bound: 2 s + 3 s slack)")
    });
    assert!(
        took >= Duration::from_millis(800),
        "server exited after {took:?}, well before --stop-timeout 1 s, while a client held half a line"
    );
    assert!(
        status.code().is_some(),
        "server was killed by a signal instead of shutting down: {status:?}"
    );
    assert!(
        !matches!(client_saw, Outcome::Line(_)),
        "the unfinished line must not be echoed: {client_saw:?}"
    );
    assert!(
        !server.stderr().contains("panicked"),
        "panic on stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn line_completed_during_shutdown_is_echoed_then_exit_is_prompt() {
    let dir = TempDir::new("sb2");
    let server = Server::start(
        &echo_bin(),
        &dir,
        &["--stop-timeout", "30", "--kill-timeout", "5"],
    );
    let target = server.wait_serving(0, 1, T30).remove(0).target();
    let pid = server.wait_pid_file(T30);
    let mut c = held_line_client(&target);

    let t0 = Instant::now();
    server.signal(pid, Signal::TERM);
    // The server must wait for the line: still there a little later.
    thread::sleep(Duration::from_millis(300));
    assert!(
        server.try_wait_child().is_none(),
        "server exited while a client held half a line (stop timeout 30 s)"
    );

    c.send(", finished\n").expect("finish the line");
    assert_eq!(
        c.read(T10),
        Outcome::Line("half a line without its newline, finished".into()),
        "line completed during shutdown was not echoed"
    );
    assert_eq!(
        c.read(T10),
        Outcome::Eof {
            partial: String::new()
        },
        "connection not closed cleanly after its echo"
    );
    drop(c); // a well-behaved client closes its side on EOF
    let t1 = Instant::now();
    let status = server.wait_child_exit(T5);
    println!(
        "shutdown, line completed during drain: echo received, exit {status:?} {:?} after the client closed ({:?} after SIGTERM)",
        t1.elapsed(),
        t0.elapsed()
    );
    let status = status
        .expect("server still running 5 s after its last connection closed (stop timeout 30 s)");
    assert!(status.code().is_some(), "killed by a signal: {status:?}");
    assert!(
        !server.stderr().contains("panicked"),
        "panic on stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn sigterm_without_clients_exits_promptly() {
    let dir = TempDir::new("sb3");
    let server = Server::start(
        &echo_bin(),
        &dir,
        &["--stop-timeout", "30", "--kill-timeout", "30"],
    );
    server.wait_serving(0, 1, T30);
    let pid = server.wait_pid_file(T30);

    let t0 = Instant::now();
    server.signal(pid, Signal::TERM);
    let status = server.wait_child_exit(T5);
    let took = t0.elapsed();
    println!("SIGTERM, no clients (stop timeout 30 s): exit {status:?} after {took:?}");
    let status =
        status.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM with no clients"));
    assert!(
        status.code().is_some(),
        "killed by the signal instead of shutting down: {status:?}"
    );
    assert!(
        !server.stderr().contains("panicked"),
        "panic on stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn sigint_with_idle_clients_closes_them_cleanly_and_exits_promptly() {
    let dir = TempDir::new("sb4");
    let server = Server::start(
        &echo_bin(),
        &dir,
        &["--stop-timeout", "30", "--kill-timeout", "30"],
    );
    let target = server.wait_serving(0, 1, T30).remove(0).target();
    let pid = server.wait_pid_file(T30);
    let mut idle: Vec<Client> = (0..3)
        .map(|i| {
            let mut c = Client::connect(&target);
            assert_eq!(c.request(&format!("idle {i}")), format!("idle {i}"));
            c
        })
        .collect();

    let t0 = Instant::now();
    server.signal(pid, Signal::INT);
    for (i, c) in idle.iter_mut().enumerate() {
        let o = c.read(T5);
        assert_eq!(
            o,
            Outcome::Eof {
                partial: String::new()
            },
            "idle client {i} did not get a clean EOF"
        );
    }
    let eof_after = t0.elapsed();
    drop(idle); // well-behaved clients close their side on EOF
    let status = server.wait_child_exit(T5);
    let took = t0.elapsed();
    println!(
        "SIGINT, 3 idle clients (stop timeout 30 s): all got EOF after {eof_after:?} and closed; exit {status:?} after {took:?}"
    );
    let status = status
        .unwrap_or_else(|| panic!("still running {took:?} after SIGINT with only idle clients"));
    assert!(
        status.code().is_some(),
        "killed by the signal instead of shutting down: {status:?}"
    );
    assert!(
        !server.stderr().contains("panicked"),
        "panic on stderr:\n{}",
        server.stderr()
    );
}
