//! Draining closes the idle connections of the actix example early, not at
//! actix's keep-alive timeout: a keep-alive connection idle for longer than
//! the idle grace (1 s) and a connection that never sent a byte are closed
//! cleanly (end-of-file, no reset) right after the restart, while a slow
//! request still holds the old generation. A connection accepted just
//! before the restart, whose client sends its request 200 ms into the
//! drain, is still served by the old generation, with `Connection: close`.

#![cfg(feature = "actix")]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod process;
    pub mod server;
}

use std::time::{Duration, Instant};

use harness::client::{RawConn, Request, Target};
use harness::process::{Signal, T5, T10};
use harness::server::{self, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_when_draining_and_fresh_ones_get_their_grace() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(
        &server::example("actix"),
        dir.path(),
        &["--stop-timeout", "30"],
    );
    let target = Target::of(&server.wait_started());
    let old = server.first_pid;

    let mut keep_alive = RawConn::connect(&target).await;
    let reply = keep_alive.ask(Request::Pid).await.expect("GET /");
    assert_eq!((reply.status, reply.pid()), (200, Some(old)), "{reply:?}");
    assert_eq!(reply.header("connection"), None, "{reply:?}");
    let silent = RawConn::connect(&target).await;

    // A slow request holds the old generation for the whole test.
    let mut slow = RawConn::connect(&target).await;
    let mark = server.mark();
    slow.send(Request::Sleep("4s"))
        .await
        .expect("send the slow request");
    let sleeping = format!("sleeping 4s in pid {old}");
    server
        .wait_line(mark, T10, |l| l == sleeping)
        .expect("the old generation started the slow request");
    // Older than the idle grace by the time draining starts.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Accepted by the old generation just before the restart.
    let mut fresh = RawConn::connect(&target).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let signalled = Instant::now();
    let closed = |mut conn: RawConn| {
        tokio::spawn(async move { conn.wait_closed(T5).await.map(|()| signalled.elapsed()) })
    };
    let (keep_alive, silent) = (closed(keep_alive), closed(silent));
    let r = server.restart(Signal::HUP);

    // Its client sends the request 200 ms into the drain: served by the old
    // generation, which closes the connection after the response.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = fresh
        .ask(Request::Pid)
        .await
        .expect("GET / on the fresh connection");
    assert_eq!((reply.status, reply.pid()), (200, Some(old)), "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    fresh
        .wait_closed(T5)
        .await
        .expect("the fresh connection closes after its response");

    let keep_alive_closed = keep_alive
        .await
        .unwrap()
        .expect("the idle keep-alive connection closes cleanly");
    let silent_closed = silent
        .await
        .unwrap()
        .expect("the silent connection closes cleanly");
    // Both were idle for longer than the grace: closed as draining starts.
    for (what, closed) in [("keep-alive", keep_alive_closed), ("silent", silent_closed)] {
        assert!(
            closed < r.ready + Duration::from_millis(500),
            "the idle {what} connection closed {closed:?} after SIGHUP (successor ready after {:?})",
            r.ready
        );
    }

    // The slow request completes on the old generation.
    let reply = slow.reply().await.expect("the slow request's response");
    assert_eq!((reply.status, reply.pid()), (200, Some(old)), "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    server.expect_gone(old, T10);
    println!(
        "actix idle: successor ready {:?} after SIGHUP; idle keep-alive closed {keep_alive_closed:?}, \
         silent connection closed {silent_closed:?} after SIGHUP; request sent 200 ms into the drain \
         served by the old pid; old generation exited {:?} after SIGHUP (slow request of 4 s)",
        r.ready,
        signalled.elapsed()
    );
    server.terminate(r.new);
}
