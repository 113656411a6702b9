//! The axum example: a router on an inherited listener, restarted.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

mod common;
mod http_common;

use common::{T10, T30, TempDir};
use http_common::{Mode, Target, blocking, restart, start_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_router_restarts_and_its_handlers_see_the_drain_state() {
    let dir = TempDir::new("http-axum");
    let (server, serving) = blocking(|| start_server(&http_common::axum_bin(), &dir, &[]));
    let target = Target::plain(http_common::socket_addr(&serving));

    let mut conn = target.connect(Mode::KeepAlive).await.unwrap();
    let reply = conn.get("/").await.unwrap();
    assert_eq!(reply.status, 200);
    let old = reply.pid.expect("pid");
    let reply = conn.get("/sleep?duration=10ms").await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!reply.body.contains("draining"), "{reply:?}");
    let reply = conn.get("/sleep?duration=soon").await.unwrap();
    assert_eq!(reply.status, 400, "{reply:?}");

    let r = blocking(|| restart(&server, T30));
    assert_eq!(r.old as u32, old);
    let mut conn = target.connect(Mode::H2).await.unwrap();
    let reply = conn.get("/").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.pid, Some(r.new as u32));
    println!("axum: restarted from pid {old} to {}: {r:?}", r.new);

    server.signal(r.new, common::Signal::TERM);
    assert!(
        blocking(|| common::wait_gone(r.new, T10)),
        "graceful shutdown"
    );
}
