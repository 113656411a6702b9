//! Many idle keep-alive connections whose clients never close their side:
//! 1,000 connections each send one request, then sit idle for 2 s (longer
//! than the idle grace) without ever closing. On SIGHUP the old generation
//! closes them all at once, cleanly (end-of-file, no reset), and exits
//! without lingering on them: nothing is unread on those sockets and every
//! byte sent was acknowledged, so there is nothing to wait for.

use std::time::{Duration, Instant};

use super::Flavor;
use crate::common::{self, T30, TempDir};
use crate::http_common::{RawConn, blocking};

const CONNECTIONS: usize = 1000;
/// Longer than every flavour's idle grace.
const IDLE: Duration = Duration::from_secs(2);

pub fn run(flavor: Flavor) {
    super::run(flavor, "idle connections", body);
}

async fn body(flavor: Flavor) {
    let dir = TempDir::new(&format!("cf-idle-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &[]);
    let old = blocking(|| server.wait_pid_file(T30));
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut conn: RawConn<_> = super::RawConn::connect(addr).await;
        let reply = conn
            .get("/")
            .await
            .unwrap_or_else(|e| panic!("[{}] connection {i}: {e}", flavor.name));
        assert_eq!(reply.status, 200, "{reply:?}");
        conns.push(conn);
    }
    tokio::time::sleep(IDLE).await;

    let signalled = Instant::now();
    let (_, new, ready) = blocking(|| server.restart(common::Signal::HUP, T30));
    // Every connection sees a clean end-of-file; none is reset. The client
    // side stays open (each connection is kept) until the old generation
    // is gone.
    let closing = conns.into_iter().map(|mut conn| {
        tokio::spawn(async move {
            let closed = conn.wait_closed(Duration::from_secs(5)).await;
            (conn, closed)
        })
    });
    let mut failures = Vec::new();
    let mut kept = Vec::with_capacity(CONNECTIONS);
    for (i, task) in closing.collect::<Vec<_>>().into_iter().enumerate() {
        let (conn, closed) = task.await.expect("close task");
        if let Err(e) = closed {
            failures.push(format!("connection {i}: {e}"));
        }
        kept.push(conn);
    }
    let closed = signalled.elapsed();
    assert!(
        failures.is_empty(),
        "[{}] {} of {CONNECTIONS} idle connections did not close cleanly: {:?}",
        flavor.name,
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        blocking(|| common::wait_gone(old, Duration::from_secs(5))),
        "[{}] old generation {old} still running 5 s after SIGHUP\n{}",
        flavor.name,
        server.diagnostics()
    );
    let exited = signalled.elapsed();
    drop(kept);
    println!(
        "[{}] idle connections: {CONNECTIONS} idle {IDLE:?}; successor ready {ready:?} after \
         SIGHUP; all closed cleanly {closed:?} after SIGHUP; old generation exited {:?} after \
         its successor was ready",
        flavor.name,
        exited.saturating_sub(ready)
    );
    // Lingering on a client that never closes lasts 1 s: the old generation
    // must be gone well before that.
    assert!(
        exited < ready + Duration::from_millis(900),
        "[{}] the old generation exited {exited:?} after SIGHUP (successor ready after \
         {ready:?}): it waited on idle connections",
        flavor.name
    );
    super::terminate(&server, new);
}
