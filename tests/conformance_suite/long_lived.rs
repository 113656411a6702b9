//! A long-lived connection is drained cleanly (the gracedemo): a slow request
//! (`sleep 3s`) is in flight on a connection of the old generation when
//! SIGUSR2 (the second restart signal) arrives; a new connection is answered
//! by the new pid while the slow one is still in flight; the slow one then
//! completes on the old pid, its connection closes cleanly, and the old
//! generation exits. Meanwhile an idle connection of the old generation (and
//! an idle HTTP/2 one, if the example speaks it) is closed cleanly and
//! promptly: end-of-file, not a reset, within the idle grace, while the slow
//! request is still in flight. HTTP: requests pipelined behind one in
//! progress while draining are each answered with `Connection: close` (or
//! refused by the close before them), then the connection ends cleanly.

use std::time::{Duration, Instant};

use super::Flavor;
use crate::harness::client::{Protocol, RawConn, ReadError, Request};
use crate::harness::http::{HttpConn, Mode};
use crate::harness::process::{Signal, T5, T10};
use crate::harness::server::Server;

/// How long the slow request takes.
const SLOW: &str = "3s";
/// How long the request ahead of the pipelined ones takes.
const PIPED: &str = "500ms";

pub fn run(flavor: Flavor) {
    super::run(flavor, "long-lived connection drained cleanly", body);
}

async fn body(flavor: Flavor) {
    let name = flavor.name;
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A stop timeout far longer than anything here.
    let (server, target) = flavor.start(dir.path(), &["--stop-timeout", "30"]);
    let old = server.first_pid;

    // Idle connections of the old generation, each served one request.
    let mut idle = RawConn::connect(&target).await;
    let reply = idle.ask(Request::Pid).await.expect("idle connection");
    assert_eq!(reply.pid(), Some(old), "{reply:?}");
    let idle_h2 = if flavor.h2 {
        let mut conn = HttpConn::connect(&target, Mode::H2)
            .await
            .expect("an h2 connection");
        let reply = conn.get("/").await.expect("h2: GET /");
        assert_eq!(reply.pid(), Some(old), "{reply:?}");
        Some(conn.split())
    } else {
        None
    };

    // A connection of the old generation carries the slow request.
    let mut slow_conn = RawConn::connect(&target).await;
    let reply = slow_conn
        .ask(Request::Pid)
        .await
        .expect("the slow connection");
    assert_eq!(reply.pid(), Some(old), "{reply:?}");
    let slow = start_request(&server, &mut slow_conn, SLOW, old).await;
    let slow = tokio::spawn(async move {
        let reply = slow_conn.reply().await;
        (reply, slow.elapsed(), slow_conn)
    });
    // HTTP: a request in flight, behind which the client pipelines two more
    // once draining has started.
    let mut piped = None;
    if flavor.protocol == Protocol::Http {
        let conn = piped.insert(RawConn::connect(&target).await);
        start_request(&server, conn, PIPED, old).await;
    }

    let signalled = Instant::now();
    let restart = server.restart(Signal::USR2);
    assert_eq!(restart.old, old);
    let new = restart.new;

    super::new_connections_reach(flavor, &target, old, new).await;
    assert!(
        !slow.is_finished(),
        "the slow request must still be in flight when the new pid answers"
    );
    if let Some(piped) = piped.as_mut() {
        pipelined_while_draining(flavor, piped, old).await;
    }

    // The idle connections close cleanly and promptly: not when the old
    // generation exits (after the slow request).
    idle.wait_closed(T5)
        .await
        .unwrap_or_else(|e| panic!("[{name}] the idle connection of the old generation: {e}"));
    let idle_closed = signalled.elapsed();
    let mut idle_h2_closed = None;
    if let Some((guard, closed)) = idle_h2 {
        match tokio::time::timeout(T5, closed).await {
            Ok(Ok(Ok(()))) => idle_h2_closed = Some(signalled.elapsed()),
            Ok(Ok(Err(e))) => panic!("the idle HTTP/2 connection closed with an error: {e}"),
            Ok(Err(e)) => panic!("the idle HTTP/2 connection's task: {e}"),
            Err(_) => panic!("the idle HTTP/2 connection still open 5 s after the restart"),
        }
        drop(guard);
    }
    // At once after the idle grace: 750 ms of slack for a loaded machine
    // (and the successor's start), where a close takes milliseconds.
    let bound = flavor.idle_grace + Duration::from_millis(750);
    for (what, closed) in [("idle", Some(idle_closed)), ("idle HTTP/2", idle_h2_closed)] {
        if let Some(closed) = closed {
            assert!(
                closed <= bound,
                "[{name}] the {what} connection closed {closed:?} after the signal; draining must \
                 close it at once (idle grace {:?})",
                flavor.idle_grace
            );
        }
    }
    assert!(
        !slow.is_finished(),
        "[{name}] the idle connections closed only after the slow request finished \
         ({idle_closed:?} after the signal): they must close when draining starts"
    );

    // The slow request completes on the old generation, then its connection
    // closes cleanly.
    let (slow_reply, slow_took, mut slow_conn) = tokio::time::timeout(T10, slow)
        .await
        .expect("the slow request did not finish within 10 s")
        .expect("the slow request's task");
    let slow_done = signalled.elapsed();
    let slow_reply = slow_reply.unwrap_or_else(|e| panic!("[{name}] the slow request: {e}"));
    assert_eq!(
        (slow_reply.status, slow_reply.pid()),
        (200, Some(old)),
        "{slow_reply:?}"
    );
    assert!(
        slow_took >= Duration::from_secs(3),
        "the slow request took {slow_took:?}"
    );
    slow_conn
        .wait_closed(T5)
        .await
        .unwrap_or_else(|e| panic!("[{name}] the slow request's connection after its reply: {e}"));

    // The old generation exits, right after its last request.
    server.expect_gone(old, T5);
    let exited = signalled.elapsed();
    let line = format!("restart complete: successor pid {new}");
    assert!(
        super::printed(&server, &line),
        "no {line:?}\n{}",
        server.diagnostics()
    );
    println!(
        "[{name}] long-lived: {old} -> {new}; successor ready {:?} after SIGUSR2; idle connection \
         closed (end-of-file) {idle_closed:?} after SIGUSR2, idle h2 {idle_h2_closed:?}; slow \
         request answered by the old pid after {slow_took:?}, {slow_done:?} after SIGUSR2; old \
         generation exited {exited:?} after SIGUSR2",
        restart.ready
    );
    server.terminate(new);
}

/// Sends `sleep DURATION` on `conn`; returns once generation `pid` printed
/// that it started it.
async fn start_request(server: &Server, conn: &mut RawConn, duration: &str, pid: i32) -> Instant {
    let mark = server.mark();
    let sent = Instant::now();
    conn.send(Request::Sleep(duration))
        .await
        .expect("send a slow request");
    let sleeping = format!("sleeping {duration} in pid {pid}");
    server
        .wait_line(mark, T10, |l| l == sleeping)
        .unwrap_or_else(|| {
            panic!(
                "{pid} never started the request: {sleeping:?}\n{}",
                server.diagnostics()
            )
        });
    sent
}

/// Requests pipelined behind one in progress while draining: each is
/// answered, or refused by the `Connection: close` of the response before
/// it (which tells the client they were not processed, RFC 9112, section
/// 9.6); then a clean end-of-file, never a reset.
async fn pipelined_while_draining(flavor: Flavor, piped: &mut RawConn, old: i32) {
    let name = flavor.name;
    piped
        .send_get("/")
        .await
        .expect("pipeline a second request");
    piped.send_get("/").await.expect("pipeline a third request");
    let first = piped
        .reply()
        .await
        .expect("the pipelined connection's first response");
    assert_eq!((first.status, first.pid()), (200, Some(old)), "{first:?}");
    assert_eq!(
        first.header("connection"),
        Some("close"),
        "[{name}] a response sent while draining must say Connection: close: {first:?}"
    );
    for answered in 1.. {
        match piped.reply().await {
            Err(ReadError::Closed) => break,
            Ok(reply) if answered < 3 => {
                assert_eq!(reply.status, 200, "[{name}] pipelined: {reply:?}");
                assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
            }
            Ok(reply) => panic!("[{name}] a fourth response: {reply:?}"),
            Err(e) => panic!(
                "[{name}] pipelined requests while draining: after {answered} response(s), \
                 neither a response nor a clean close: {e}"
            ),
        }
    }
}
