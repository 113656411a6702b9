//! The axum example: a router on an inherited listener, restarted.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod http;
    pub mod observe;
    pub mod peer;
    pub mod process;
    pub mod server;
}

use harness::client::Target;
use harness::http::{HttpConn, Mode};
use harness::observe;
use harness::server::{self, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_router_restarts_and_its_handlers_see_the_drain_state() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&server::example("axum"), dir.path(), &[]);
    let target = Target::of(&server.wait_started());
    let old = server.first_pid;

    let mut conn = HttpConn::connect(&target, Mode::KeepAlive).await.unwrap();
    let reply = conn.get("/").await.unwrap();
    assert_eq!((reply.status, reply.pid()), (200, Some(old)), "{reply:?}");
    let reply = conn.get("/sleep?duration=10ms").await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!reply.text().contains("draining"), "{reply:?}");
    let reply = conn.get("/sleep?duration=soon").await.unwrap();
    assert_eq!(reply.status, 400, "{reply:?}");

    let r = server.restart_and_wait_old();
    assert_eq!(r.old, old);
    let mut conn = HttpConn::connect(&target, Mode::H2).await.unwrap();
    let reply = conn.get("/").await.unwrap();
    assert_eq!((reply.status, reply.pid()), (200, Some(r.new)), "{reply:?}");
    // Readiness and metrics, as every HTTP example has them (polled: the new
    // generation is ready once its driver runs).
    let ready = observe::readiness_until(&target, true).await;
    assert_eq!(ready, format!("ready serving generation=2 pid={}", r.new));
    let page = observe::metrics(&target).await;
    if cfg!(feature = "metrics") {
        let generation = observe::sample(&page, "handoff_generation");
        assert_eq!(generation, Some(2.0), "{page}");
    }
    println!("axum: restarted: {r:?}");
    server.terminate(r.new);
}

/// axum's `ConnectInfo<SocketAddr>`, filled from handoff's `PeerAddr` by
/// `map_peer`: `GET /peer` answers exactly `peer=127.0.0.1:PORT`, the
/// client's end of the connection, over HTTP/1.1 and HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_handlers_get_the_clients_address_as_connect_info() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&server::example("axum"), dir.path(), &[]);
    let target = Target::of(&server.wait_started());
    harness::peer::expect_peer("axum", &target, &[Mode::KeepAlive, Mode::H2]).await;
    server.terminate(server.first_pid);
}
