//! A long-lived connection is drained cleanly (the gracedemo): a slow
//! request (`/sleep?duration=3s`) is in flight on a keep-alive connection of
//! the old generation when SIGHUP arrives; a new request is answered by the
//! new pid while the slow one is still in flight; the slow one then
//! completes with 200 from the old pid, its connection is closed cleanly,
//! and the old generation exits. Meanwhile an idle HTTP/1.1 keep-alive
//! connection to the old generation (and an idle HTTP/2 one, if the example
//! speaks it) is closed cleanly and promptly: end-of-file, not a reset, while
//! the slow request is still in flight (not at the stop timeout, nor only
//! when the old generation exits). Requests pipelined behind one in
//! progress while draining: that one is answered with `Connection: close`,
//! then the connection ends cleanly.

use std::time::{Duration, Instant};

use super::Flavor;
use crate::common::{self, T5, T10, T30, TempDir};
use crate::http_common::{self, Mode, Target, blocking};

/// How long the slow request takes.
const SLOW: &str = "3s";
/// How long the request ahead of the pipelined ones takes.
const PIPED: &str = "500ms";
/// The old generation's stop timeout: far longer than anything here.
const STOP: &str = "30";

pub fn run(flavor: Flavor) {
    super::run(flavor, "long-lived connection drained cleanly", body);
}

async fn body(flavor: Flavor) {
    let dir = TempDir::new(&format!("cf-long-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &["--stop-timeout", STOP]);
    let target = Target::plain(addr);
    let old = blocking(|| server.wait_pid_file(T30)) as u32;

    // Idle connections of the old generation, each served one request.
    let mut idle = super::RawConn::connect(addr).await;
    let reply = idle.get("/").await.expect("idle connection: GET /");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(http_common::pid_in(&reply.body), Some(old), "{reply:?}");
    let idle_h2 = if flavor.h2 {
        let mut conn = target.connect(Mode::H2).await.expect("h2 connection");
        let reply = conn.get("/").await.expect("h2: GET /");
        assert_eq!(reply.pid, Some(old), "{reply:?}");
        Some(conn.split())
    } else {
        None
    };

    // A keep-alive connection of the old generation carries the slow request.
    let mut slow_conn = target.connect(Mode::KeepAlive).await.expect("connect");
    let reply = slow_conn.get("/").await.expect("GET /");
    assert_eq!(reply.pid, Some(old), "{reply:?}");
    let mark = server.mark();
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let reply = slow_conn.get(&format!("/sleep?duration={SLOW}")).await;
        (reply, started.elapsed(), slow_conn)
    });
    let sleeping = format!("sleeping {SLOW} in pid {old}");
    blocking(|| server.wait_line(mark, T10, |l| l == sleeping))
        .unwrap_or_else(|| panic!("the old generation never started the slow request"));

    // A raw connection with a request in flight, on which the client will
    // pipeline two more once draining has started.
    let mut piped = super::RawConn::connect(addr).await;
    let mark = server.mark();
    piped
        .send_get(&format!("/sleep?duration={PIPED}"))
        .await
        .expect("send the pipelined connection's first request");
    let sleeping = format!("sleeping {PIPED} in pid {old}");
    blocking(|| server.wait_line(mark, T10, |l| l == sleeping))
        .unwrap_or_else(|| panic!("the old generation never started the pipelined request"));

    let signalled = Instant::now();
    let (from, new, ready) = blocking(|| server.restart(common::Signal::HUP, T30));
    assert_eq!(from as u32, old);

    // A new request: the new generation answers, the slow one is in flight.
    super::new_connections_reach(flavor, &target, old, new as u32).await;
    assert!(
        !slow.is_finished(),
        "the slow request must still be in flight when the new pid answers"
    );

    // Requests pipelined behind one in progress while draining: each is
    // answered, or refused by the `Connection: close` of the response before
    // it (which tells the client they were not processed, RFC 9112, section
    // 9.6); then a clean end-of-file, never a reset.
    piped
        .send_get("/")
        .await
        .expect("pipeline a second request");
    piped.send_get("/").await.expect("pipeline a third request");
    let first = piped
        .response()
        .await
        .expect("the pipelined connection's first response");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(http_common::pid_in(&first.body), Some(old), "{first:?}");
    assert_eq!(
        first.header("connection"),
        Some("close"),
        "[{}] a response sent while draining must say Connection: close: {first:?}",
        flavor.name
    );
    let mut answered = 1;
    loop {
        match piped.response_or_close().await {
            Ok(None) => break,
            Ok(Some(reply)) if answered < 3 => {
                answered += 1;
                assert_eq!(reply.status, 200, "[{}] pipelined: {reply:?}", flavor.name);
                assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
            }
            Ok(Some(reply)) => panic!("[{}] a fourth response: {reply:?}", flavor.name),
            Err(e) => panic!(
                "[{}] pipelined requests while draining: after {answered} response(s),                  neither a response nor a clean close: {e}",
                flavor.name
            ),
        }
    }

    // The idle connections close cleanly and promptly: not when the old
    // generation exits (after the slow request).
    idle.wait_closed(T5).await.unwrap_or_else(|e| {
        panic!("idle HTTP/1.1 keep-alive connection of the old generation: {e}")
    });
    let idle_closed = signalled.elapsed();
    let mut idle_h2_closed = None;
    if let Some((guard, closed)) = idle_h2 {
        match tokio::time::timeout(T5, closed).await {
            Ok(Ok(Ok(()))) => idle_h2_closed = Some(signalled.elapsed()),
            Ok(Ok(Err(e))) => panic!("idle HTTP/2 connection closed with an error: {e}"),
            Ok(Err(e)) => panic!("idle HTTP/2 connection driver: {e}"),
            Err(_) => panic!("idle HTTP/2 connection still open 5 s after the restart"),
        }
        drop(guard);
    }
    // Closed at once (after the example's idle grace): 750 ms of slack for a
    // loaded machine, where a close takes milliseconds.
    let bound = flavor.idle_grace + Duration::from_millis(750);
    for (what, closed) in [("HTTP/1.1", Some(idle_closed)), ("HTTP/2", idle_h2_closed)] {
        if let Some(closed) = closed {
            assert!(
                closed <= bound,
                "the idle {what} keep-alive connection closed {closed:?} after SIGHUP; \
                 draining must close it at once (idle grace {:?})",
                flavor.idle_grace
            );
        }
    }
    assert!(
        !slow.is_finished(),
        "the idle connections closed only after the slow request finished \
         ({idle_closed:?} after SIGHUP): they must close when draining starts"
    );

    // The slow request completes on the old generation.
    let (slow_reply, slow_took, slow_conn) = tokio::time::timeout(T10, slow)
        .await
        .expect("the slow request did not finish within 10 s")
        .expect("slow request task");
    let slow_done = signalled.elapsed();
    let slow_reply = slow_reply.expect("the slow request must succeed");
    assert_eq!(slow_reply.status, 200, "{slow_reply:?}");
    assert_eq!(slow_reply.pid, Some(old), "{slow_reply:?}");
    assert!(
        slow_took >= Duration::from_secs(3),
        "the slow request took {slow_took:?}"
    );
    // Its connection then closes cleanly (`Connection: close`, or the
    // server's end-of-file after the response).
    let (guard, closed) = slow_conn.split();
    match tokio::time::timeout(T5, closed).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => panic!("the slow request's connection closed with an error: {e}"),
        Ok(Err(e)) => panic!("connection driver: {e}"),
        Err(_) => panic!(
            "the slow request's connection still open 5 s after its response \
             (Connection: {:?})",
            slow_reply.connection
        ),
    }
    drop(guard);

    // The old generation exits, right after its last request.
    assert!(
        blocking(|| common::wait_gone(old as i32, T5)),
        "old generation {old} still running 5 s after its last request\n{}",
        server.diagnostics()
    );
    let exited = signalled.elapsed();
    let line = format!("restart complete: successor pid {new}");
    assert!(
        super::wait_line(&server, 0, &line),
        "no {line:?}\n{}",
        server.diagnostics()
    );

    println!(
        "[{}] long-lived: old pid {old}, new pid {new}; successor ready {ready:?} after SIGHUP; \
         idle keep-alive closed (EOF) {idle_closed:?} after SIGHUP, idle h2 closed {idle_h2_closed:?}; \
         slow request 200 from the old pid after {slow_took:?} (Connection: {:?}), done \
         {slow_done:?} after SIGHUP; old generation exited {exited:?} after SIGHUP",
        flavor.name, slow_reply.connection
    );

    super::terminate(&server, new);
}
