//! `GET /peer` from clients that know their own address: every HTTP example
//! answers `peer=IP:PORT`, the client's end of the connection as the server
//! accepted it. HTTP/1.1 or HTTP/2 (prior knowledge; ALPN with TLS), on an
//! [`HttpConn`], which knows its local address.

use std::net::SocketAddr;

use super::client::Target;
use super::http::{HttpConn, Mode};
use super::process::T10;

/// Requests sent on each connection: the address is the connection's, not
/// the first request's.
const PER_CONNECTION: usize = 2;

/// Opens one connection to `target` in `mode` (HTTP/2 for [`Mode::H2`],
/// HTTP/1.1 keep-alive otherwise) and sends `GET /peer` on it
/// [`PER_CONNECTION`] times; the connection's local address and the bodies.
pub async fn ask(target: &Target, mode: Mode) -> Result<(SocketAddr, Vec<String>), String> {
    tokio::time::timeout(T10, ask_unbounded(target, mode))
        .await
        .map_err(|_| format!("{mode:?}: no answer within {T10:?}"))?
}

async fn ask_unbounded(target: &Target, mode: Mode) -> Result<(SocketAddr, Vec<String>), String> {
    let mut conn = HttpConn::connect(target, mode).await?;
    let mut bodies = Vec::new();
    for _ in 0..PER_CONNECTION {
        let reply = conn
            .get("/peer")
            .await
            .map_err(|e| format!("GET /peer: {e}"))?;
        if reply.status != 200 {
            return Err(format!("status {}: {:?}", reply.status, reply.text()));
        }
        bodies.push(reply.text().into_owned());
    }
    Ok((conn.local, bodies))
}

/// Asserts that `target` answers each `GET /peer` with exactly
/// `peer=IP:PORT\n`, the address of the client's end of the connection: on
/// two connections in each of `modes`, two requests on each.
pub async fn expect_peer(name: &str, target: &Target, modes: &[Mode]) {
    for &mode in modes {
        for _ in 0..2 {
            let (local, bodies) = ask(target, mode)
                .await
                .unwrap_or_else(|e| panic!("[{name}] GET /peer ({mode:?}): {e}"));
            assert!(
                local.ip().is_loopback(),
                "[{name}] the client's address {local}"
            );
            for body in bodies {
                assert_eq!(
                    body,
                    format!("peer={local}\n"),
                    "[{name}] GET /peer ({mode:?}) from {local}"
                );
            }
            println!("[{name}] GET /peer ({mode:?}) from {local}: answered with it");
        }
    }
}
