//! The client's address reaches the handler: `GET /peer` answers exactly
//! `peer=127.0.0.1:PORT`, the client's end of the connection, to two
//! requests on each of two HTTP/1.1 keep-alive connections, and over HTTP/2
//! with prior knowledge where the flavour speaks it; again after a restart,
//! from the new generation (which accepts on the inherited socket).

use super::Flavor;
use crate::harness::http::Mode;
use crate::harness::peer;

pub fn run(flavor: Flavor) {
    super::run(flavor, "the client's address", body);
}

async fn body(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &[]);
    let mut modes = vec![Mode::KeepAlive];
    if flavor.h2 {
        modes.push(Mode::H2);
    }
    peer::expect_peer(flavor.name, &target, &modes).await;

    let restart = server.restart_and_wait_old();
    peer::expect_peer(flavor.name, &target, &modes).await;
    server.terminate(restart.new);
}
