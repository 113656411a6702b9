//! Many idle connections whose clients never close their side: 1,000
//! connections each send one request, then sit idle for 2 s (longer than the
//! idle grace) without ever closing. On SIGHUP the old generation closes them
//! all at once, cleanly (end-of-file, no reset), and exits within 5 s. HTTP:
//! without lingering on them either, since nothing is unread on those
//! sockets and every byte sent was acknowledged (the echo example waits up to
//! 1 s for each client to close its side).

use std::time::{Duration, Instant};

use super::Flavor;
use crate::harness::client::{Protocol, RawConn, Request};
use crate::harness::process::{Signal, T5};

const CONNECTIONS: usize = 1000;
/// Longer than every flavour's idle grace.
const IDLE: Duration = Duration::from_secs(2);

pub fn run(flavor: Flavor) {
    super::run(flavor, "idle connections", body);
}

async fn body(flavor: Flavor) {
    let name = flavor.name;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &[]);
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut conn = RawConn::connect(&target).await;
        let reply = conn
            .ask(Request::Pid)
            .await
            .unwrap_or_else(|e| panic!("[{name}] connection {i}: {e}"));
        assert_eq!(reply.status, 200, "{reply:?}");
        conns.push(conn);
    }
    tokio::time::sleep(IDLE).await;

    let signalled = Instant::now();
    let r = server.restart(Signal::HUP);
    // Every connection sees a clean end-of-file; the client side stays open
    // (each connection is kept) until the old generation is gone.
    let closing: Vec<_> = conns
        .into_iter()
        .map(|mut conn| tokio::spawn(async move { (conn.wait_closed(T5).await, conn) }))
        .collect();
    let (mut failures, mut kept) = (Vec::new(), Vec::new());
    for (i, task) in closing.into_iter().enumerate() {
        let (closed, conn) = task.await.expect("a close task");
        if let Err(e) = closed {
            failures.push(format!("connection {i}: {e}"));
        }
        kept.push(conn);
    }
    let closed = signalled.elapsed();
    assert!(
        failures.is_empty(),
        "[{name}] {} of {CONNECTIONS} idle connections did not close cleanly: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    server.expect_gone(r.old, T5);
    let exited = signalled.elapsed();
    drop(kept);
    println!(
        "[{name}] idle connections: {CONNECTIONS} idle {IDLE:?}; successor ready {:?} after SIGHUP; \
         all closed cleanly {closed:?} after SIGHUP; old generation exited {:?} after its successor \
         was ready",
        r.ready,
        exited.saturating_sub(r.ready)
    );
    if flavor.protocol == Protocol::Http {
        // Lingering on a client that never closes lasts 1 s: the old
        // generation must be gone well before that.
        assert!(
            exited < r.ready + Duration::from_millis(900),
            "[{name}] the old generation exited {exited:?} after SIGHUP (successor ready after {:?}): \
             it waited on idle connections",
            r.ready
        );
    }
    server.terminate(r.new);
}
