//! Draining closes the idle connections of the actix example early, not at
//! actix's keep-alive timeout: a keep-alive connection idle for longer than
//! the idle grace (1 s) and a connection that never sent a byte are closed
//! cleanly (end-of-file, no reset) right after the restart, while a slow
//! request still holds the old generation. A connection accepted just
//! before the restart, whose client sends its request 200 ms into the
//! drain, is still served by the old generation, with `Connection: close`.

#![cfg(feature = "actix")]

mod common;
mod http_common;

use std::time::{Duration, Instant};

use common::{T5, T10, T30, TempDir};
use http_common::{RawConn, blocking, pid_in, start_actix};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_when_draining_and_fresh_ones_get_their_grace() {
    let dir = TempDir::new("actix-idle");
    let (server, addr) = blocking(|| start_actix(&dir, &["--stop-timeout", "30"]));
    let old = blocking(|| server.wait_pid_file(T30)) as u32;

    let mut keep_alive = RawConn::connect(addr).await;
    let reply = keep_alive.get("/").await.expect("GET /");
    assert_eq!(
        (reply.status, pid_in(&reply.body)),
        (200, Some(old)),
        "{reply:?}"
    );
    assert_eq!(reply.header("connection"), None, "{reply:?}");
    let silent = RawConn::connect(addr).await;

    // A slow request holds the old generation for the whole test.
    let mut slow = RawConn::connect(addr).await;
    let mark = server.mark();
    slow.send_get("/sleep?duration=4s").await.unwrap();
    let sleeping = format!("sleeping 4s in pid {old}");
    blocking(|| server.wait_line(mark, T10, |l| l == sleeping))
        .unwrap_or_else(|| panic!("the old generation never started the slow request"));
    // Older than the idle grace by the time draining starts.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Accepted by the old generation just before the restart.
    let mut fresh = RawConn::connect(addr).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let signalled = Instant::now();
    let closed = |mut conn: RawConn<TcpStream>| {
        tokio::spawn(async move { conn.wait_closed(T5).await.map(|()| signalled.elapsed()) })
    };
    let (keep_alive, silent) = (closed(keep_alive), closed(silent));
    let (from, new, ready) = blocking(|| server.restart(common::Signal::HUP, T30));
    assert_eq!(from as u32, old);

    // Its client sends the request 200 ms into the drain: served by the old
    // generation, which closes the connection after the response.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = fresh.get("/").await.expect("GET / on the fresh connection");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(pid_in(&reply.body), Some(old), "{reply:?}");
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
            closed < ready + Duration::from_millis(500),
            "the idle {what} connection closed {closed:?} after SIGHUP \
             (successor ready after {ready:?})"
        );
    }

    // The slow request completes on the old generation.
    let reply = slow.response().await.expect("the slow request's response");
    assert_eq!(
        (reply.status, pid_in(&reply.body)),
        (200, Some(old)),
        "{reply:?}"
    );
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    assert!(
        blocking(|| common::wait_gone(old as i32, T10)),
        "old generation still running\n{}",
        server.diagnostics()
    );
    let exited = signalled.elapsed();
    println!(
        "actix idle: successor ready {ready:?} after SIGHUP; idle keep-alive closed \
         {keep_alive_closed:?}, silent connection closed {silent_closed:?} after SIGHUP; \
         request sent 200 ms into the drain served by the old pid; old generation exited \
         {exited:?} after SIGHUP (slow request of 4 s)"
    );

    server.signal(new, common::Signal::TERM);
    assert!(
        blocking(|| common::wait_gone(new, T10)),
        "graceful shutdown"
    );
}
