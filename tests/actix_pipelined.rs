//! Requests pipelined on one connection of the actix example while it
//! drains are each answered by the old generation, every response saying
//! `Connection: close`, and the connection then closes cleanly: none is
//! dropped unannounced.

#![cfg(feature = "actix")]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod process;
    pub mod server;
}

use harness::client::{RawConn, Target};
use harness::process::{Signal, T10};
use harness::server::{self, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_while_draining() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(
        &server::example("actix"),
        dir.path(),
        &["--stop-timeout", "10"],
    );
    let target = Target::of(&server.wait_started());
    let old = server.first_pid;

    let mut conn = RawConn::connect(&target).await;
    // The first request is still running when draining starts; the others
    // wait behind it, one with a body its handler does not read.
    let requests = [
        "GET /sleep?duration=1s HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
        "GET /sleep/?duration=10ms HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ];
    let mark = server.mark();
    conn.send_raw(requests.concat().as_bytes())
        .await
        .expect("send");
    let sleeping = format!("sleeping 1s in pid {old}");
    server
        .wait_line(mark, T10, |l| l == sleeping)
        .expect("the old generation started the first request");

    let r = server.restart(Signal::HUP);
    for (i, request) in requests.iter().enumerate() {
        let reply = conn
            .reply()
            .await
            .unwrap_or_else(|e| panic!("response {i} to {request:?}: {e}"));
        assert_eq!(
            (reply.status, reply.pid()),
            (200, Some(old)),
            "response {i}: {reply:?}"
        );
        assert_eq!(
            reply.header("connection"),
            Some("close"),
            "response {i}: {reply:?}"
        );
    }
    conn.wait_closed(T10)
        .await
        .expect("closed cleanly after the last response");
    server.expect_gone(old, T10);
    server.terminate(r.new);
}
