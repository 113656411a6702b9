//! `GET /peer` from clients that know their own address: every HTTP example
//! answers `peer=IP:PORT`, the client's end of the connection as the server
//! accepted it. HTTP/1.1 or HTTP/2 (prior knowledge; ALPN with TLS), through
//! hyper on a TCP stream whose local address is read back.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

use super::client::Target;
use super::http::Mode;
use super::process::T10;

/// Requests sent on each connection: the address is the connection's, not
/// the first request's.
const PER_CONNECTION: usize = 2;

/// Plain or TLS client stream.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Opens one connection to `target` in `mode` (HTTP/2 for [`Mode::H2`],
/// HTTP/1.1 keep-alive otherwise) and sends `GET /peer` on it
/// [`PER_CONNECTION`] times; the connection's local address and the bodies.
pub async fn ask(target: &Target, mode: Mode) -> Result<(SocketAddr, Vec<String>), String> {
    tokio::time::timeout(T10, ask_unbounded(target, mode))
        .await
        .map_err(|_| format!("{mode:?}: no answer within {T10:?}"))?
}

async fn ask_unbounded(target: &Target, mode: Mode) -> Result<(SocketAddr, Vec<String>), String> {
    let addr = target.socket_addr();
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let local = tcp.local_addr().map_err(|e| format!("local_addr: {e}"))?;
    let io: Box<dyn Io> = match &target.tls {
        None => Box::new(tcp),
        Some(config) => {
            let alpn: &[u8] = if mode == Mode::H2 { b"h2" } else { b"http/1.1" };
            let mut config = (**config).clone();
            config.alpn_protocols = vec![alpn.to_vec()];
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = ServerName::try_from("localhost").expect("a server name");
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            if stream.get_ref().1.alpn_protocol() != Some(alpn) {
                return Err(format!(
                    "ALPN chose {:?}",
                    stream.get_ref().1.alpn_protocol()
                ));
            }
            Box::new(stream)
        }
    };
    let scheme = if target.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let io = TokioIo::new(io);
    let mut bodies = Vec::new();
    if mode == Mode::H2 {
        let (mut sender, conn) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(conn);
        for _ in 0..PER_CONNECTION {
            let uri = format!("{scheme}://localhost:{}/peer", addr.port());
            let response = sender
                .send_request(request(&uri))
                .await
                .map_err(|e| format!("h2 GET /peer: {e}"))?;
            bodies.push(body(response).await?);
        }
    } else {
        let (mut sender, conn) = http1::handshake(io)
            .await
            .map_err(|e| format!("h1 handshake: {e}"))?;
        tokio::spawn(conn);
        for _ in 0..PER_CONNECTION {
            sender.ready().await.map_err(|e| format!("h1: {e}"))?;
            let response = sender
                .send_request(request("/peer"))
                .await
                .map_err(|e| format!("h1 GET /peer: {e}"))?;
            bodies.push(body(response).await?);
        }
    }
    Ok((local, bodies))
}

fn request(uri: &str) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(uri)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::new())
        .expect("a request")
}

async fn body(response: hyper::Response<hyper::body::Incoming>) -> Result<String, String> {
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status != hyper::StatusCode::OK {
        return Err(format!("status {status}: {text:?}"));
    }
    Ok(text)
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
