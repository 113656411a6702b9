//! Requests pipelined on one connection of the actix example while it
//! drains are each answered by the old generation, every response saying
//! `Connection: close`, and the connection then closes cleanly: none is
//! dropped unannounced.

#![cfg(feature = "actix")]

mod common;
mod http_common;

use common::{T10, T30, TempDir};
use http_common::{RawConn, blocking, pid_in, start_actix};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_while_draining() {
    let dir = TempDir::new("actix-pipelined");
    let (server, addr) = blocking(|| start_actix(&dir, &["--stop-timeout", "10"]));
    let old = blocking(|| server.wait_pid_file(T30)) as u32;

    let mut conn = RawConn::connect(addr).await;
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
    conn.stream
        .write_all(requests.concat().as_bytes())
        .await
        .unwrap();
    let sleeping = format!("sleeping 1s in pid {old}");
    blocking(|| server.wait_line(mark, T10, |l| l == sleeping))
        .expect("the old generation started the first request");

    let (from, new, _ready) = blocking(|| server.restart(common::Signal::HUP, T30));
    assert_eq!(from as u32, old);
    for (i, request) in requests.iter().enumerate() {
        let reply = conn
            .response()
            .await
            .unwrap_or_else(|e| panic!("response {i} to {request:?}: {e}"));
        assert_eq!(
            (reply.status, pid_in(&reply.body)),
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
    assert!(
        blocking(|| common::wait_gone(old as i32, T10)),
        "old generation still running\n{}",
        server.diagnostics()
    );
    server.signal(new, common::Signal::TERM);
    assert!(
        blocking(|| common::wait_gone(new, T10)),
        "graceful shutdown"
    );
}
