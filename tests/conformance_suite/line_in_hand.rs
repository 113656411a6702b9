//! Lines only: a line half received when draining starts is finished, not
//! cut, and the stop timeout bounds the wait for it:
//! - (a) restart: a connection holding half a line keeps the old generation
//!   alive; once the line is complete it is echoed, the connection closes
//!   cleanly, and the old generation exits promptly;
//! - (b) SIGTERM (stop timeout 30 s): the same, the process waits for the
//!   line, echoes it, closes, and exits promptly after the client closed;
//! - (c) SIGTERM (stop 1 s, kill 1 s) with a line never completed: the
//!   process waits until the stop timeout and is gone by stop + kill; the
//!   half line is never echoed.
//!
//! The process exits by itself (with a code), never killed by a signal.

use std::thread;
use std::time::{Duration, Instant};

use super::Flavor;
use crate::harness::client::{RawConn, ReadError, Request, Target};
use crate::harness::process::{self, Signal, T5, T10};

const HALF: &str = "half of a line, ";

pub fn run(flavor: Flavor) {
    super::run(flavor, "a line in hand is finished", body);
}

async fn body(flavor: Flavor) {
    restart_with_a_line_in_hand(flavor).await;
    sigterm_with_a_line_completed_while_draining(flavor).await;
    sigterm_with_a_line_never_completed(flavor).await;
}

/// A connection that was served one line and holds half of the next.
async fn half_line(target: &Target) -> RawConn {
    let mut conn = RawConn::connect(target).await;
    conn.ask(Request::Pid).await.expect("a first line");
    conn.send_raw(HALF.as_bytes())
        .await
        .expect("send half a line");
    // No event tells that the server has read it (it reads as soon as bytes
    // arrive): give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn
}

/// Completes the half line: it must come back whole, then a clean close.
async fn complete(conn: &mut RawConn, what: &str) {
    conn.send_raw(b"second half\n")
        .await
        .expect("complete the line");
    let echo = conn
        .reply()
        .await
        .unwrap_or_else(|e| panic!("{what}: the completed line: {e}"));
    assert_eq!(echo.text(), format!("{HALF}second half"), "{what}");
    conn.wait_closed(T10)
        .await
        .unwrap_or_else(|e| panic!("{what}: after the echo: {e}"));
}

async fn restart_with_a_line_in_hand(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &["--stop-timeout", "30"]);
    let mut held = half_line(&target).await;
    let r = server.restart(Signal::HUP);
    // Draining has started (the pid file names the successor); the line in
    // hand holds the old generation.
    thread::sleep(Duration::from_millis(300));
    assert!(
        !process::is_gone(r.old),
        "{} exited with half a line in hand",
        r.old
    );
    complete(&mut held, "restart").await;
    drop(held); // a well-behaved client closes its side on end-of-file
    let closed = Instant::now();
    server.expect_gone(r.old, T5);
    println!(
        "[{}] line in hand, restart: echoed whole, then closed; {} exited {:?} after the client closed",
        flavor.name,
        r.old,
        closed.elapsed()
    );
    server.terminate(r.new);
}

async fn sigterm_with_a_line_completed_while_draining(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) =
        flavor.start(dir.path(), &["--stop-timeout", "30", "--kill-timeout", "5"]);
    let mut held = half_line(&target).await;
    server.signal_service(server.first_pid, Signal::TERM);
    // The process waits for the line: still there a little later.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.try_wait_child(),
        None,
        "exited with half a line in hand (stop timeout 30 s)"
    );
    complete(&mut held, "SIGTERM").await;
    drop(held);
    let closed = Instant::now();
    let status = server
        .wait_child_exit(T5)
        .expect("still running 5 s after its last connection closed");
    assert!(status.code().is_some(), "killed by a signal: {status:?}");
    assert!(
        !server.stderr().contains("panicked"),
        "{}",
        server.diagnostics()
    );
    println!(
        "[{}] line in hand, SIGTERM: echoed whole, then closed; exited ({status}) {:?} after the client closed",
        flavor.name,
        closed.elapsed()
    );
}

async fn sigterm_with_a_line_never_completed(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) =
        flavor.start(dir.path(), &["--stop-timeout", "1", "--kill-timeout", "1"]);
    let mut held = half_line(&target).await;
    let signalled = Instant::now();
    server.signal_service(server.first_pid, Signal::TERM);
    // Stop 1 s + kill 1 s, and 3 s of slack for a loaded machine.
    let status = server.wait_child_exit(T5);
    let took = signalled.elapsed();
    let status = status
        .unwrap_or_else(|| panic!("still running {took:?} after SIGTERM (stop 1 s, kill 1 s)"));
    assert!(
        took >= Duration::from_millis(800),
        "exited {took:?} after SIGTERM, before the stop timeout, with half a line in hand"
    );
    assert!(status.code().is_some(), "killed by a signal: {status:?}");
    let after = held.reply().await;
    assert!(
        matches!(after, Err(ReadError::Closed | ReadError::Io(_))),
        "the unfinished line must not be echoed: {after:?}"
    );
    assert!(
        !server.stderr().contains("panicked"),
        "{}",
        server.diagnostics()
    );
    println!(
        "[{}] line never completed, SIGTERM (stop 1 s, kill 1 s): exited ({status}) {took:?} after \
         SIGTERM; the client then saw {after:?}",
        flavor.name
    );
}
