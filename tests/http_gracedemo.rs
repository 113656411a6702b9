//! The gracedemo scenario, automated: a slow request is in flight on the old
//! generation, the demo restarts, a quick request is answered by the new pid,
//! and the slow one still completes, with 200 from the old pid.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

mod common;
mod http_common;

use std::time::Instant;

use common::{T10, T30, TempDir};
use http_common::{Mode, Target, blocking, start_demo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_finishes_on_the_old_generation_while_the_new_one_serves() {
    let dir = TempDir::new("http-gracedemo");
    let (server, addr) = blocking(|| start_demo(&dir, &[]));
    let target = Target::plain(addr);

    // A keep-alive connection of the old generation carries the slow request.
    let mut slow_conn = target.connect(Mode::KeepAlive).await.unwrap();
    let old = slow_conn.get("/").await.unwrap().pid.expect("pid");
    let mark = server.mark();
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let reply = slow_conn.get("/sleep?duration=3s").await;
        (reply, started.elapsed())
    });
    let sleeping = format!("sleeping 3s in pid {old}");
    blocking(|| server.wait_line(mark, T10, |l| l == sleeping))
        .unwrap_or_else(|| panic!("the old generation never started the slow request"));

    let signalled = Instant::now();
    let (from, new, ready) = blocking(|| server.restart(common::Signal::HUP, T30));
    assert_eq!(from as u32, old);

    // A quick request on a new connection: the new generation answers.
    let mut quick = target.connect(Mode::KeepAlive).await.unwrap();
    let reply = quick.get("/").await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.pid, Some(new as u32), "{reply:?}");
    assert!(
        !slow.is_finished(),
        "the slow request must still be in flight when the new pid answers"
    );

    // The slow request completes on the old generation.
    let (slow_reply, slow_took) = tokio::time::timeout(T10, slow).await.unwrap().unwrap();
    let slow_reply = slow_reply.expect("the slow request must succeed");
    assert_eq!(slow_reply.status, 200, "{slow_reply:?}");
    assert_eq!(slow_reply.pid, Some(old), "{slow_reply:?}");
    assert_eq!(
        slow_reply.connection.as_deref(),
        Some("close"),
        "a response sent while draining closes its HTTP/1 connection"
    );
    assert!(
        blocking(|| common::wait_gone(old as i32, T10)),
        "old generation did not exit"
    );
    let exited = signalled.elapsed();
    let line = format!("restart complete: successor pid {new}");
    assert!(blocking(|| server.wait_line(0, T10, |l| l == line)).is_some());

    println!(
        "gracedemo: old pid {old}, new pid {new}; successor ready {ready:?} after SIGHUP; \
         slow request 200 from the old pid after {slow_took:?}; old generation exited \
         {exited:?} after SIGHUP"
    );

    server.signal(new, common::Signal::TERM);
    assert!(
        blocking(|| common::wait_gone(new, T10)),
        "graceful shutdown"
    );
}
