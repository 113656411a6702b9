//! The hyper adapter inside the test process: upgraded connections count as
//! in flight, get the drain signal and are cut by the hammer; the one-call
//! `serve` serves, drains on shutdown and rejects datagram addresses.

#![cfg(all(feature = "tokio", feature = "hyper"))]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use handoff::hyper::{Draining, Server};
use handoff::{Drainable, Error, ExitReason, Handoff};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const T5: Duration = Duration::from_secs(5);

/// Answers every request with 101 and then, on the upgraded connection,
/// `hello`; `/polite` says `bye` and closes when draining starts, anything
/// else echoes until its reads fail.
async fn upgrade(mut request: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    let draining = request
        .extensions()
        .get::<Draining>()
        .cloned()
        .expect("every request carries Draining");
    let polite = request.uri().path() == "/polite";
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let mut io = TokioIo::new(on_upgrade.await.expect("upgrade"));
        io.write_all(b"hello\n").await.unwrap();
        if polite {
            draining.signal().await;
            let _ = io.write_all(b"bye\n").await;
            let _ = io.shutdown().await;
            return;
        }
        let mut buf = [0u8; 64];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if io.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "line")
        .body(Empty::new())
        .unwrap();
    Ok(response)
}

async fn upgraded_client(addr: std::net::SocketAddr, path: &str) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: line\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        tokio::time::timeout(T5, reader.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(read_line(&mut reader).await, "hello\n");
    reader
}

async fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    tokio::time::timeout(T5, reader.read_line(&mut line))
        .await
        .expect("read timed out")
        .expect("read failed");
    line
}

async fn wait_in_flight(server: &Server, n: usize) {
    for _ in 0..500 {
        if server.in_flight() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("in flight: {}, expected {n}", server.in_flight());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_connections_are_in_flight_get_the_drain_signal_and_fall_to_the_hammer() {
    let server = Server::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    server.serve_listener(listener, service_fn(upgrade));

    let mut polite = upgraded_client(addr, "/polite").await;
    let mut rude = upgraded_client(addr, "/rude").await;
    wait_in_flight(&server, 2).await;

    server.begin_drain();
    assert_eq!(read_line(&mut polite).await, "bye\n");
    assert_eq!(read_line(&mut polite).await, "", "end-of-file after bye");
    drop(polite);
    wait_in_flight(&server, 1).await;

    // The rude one ignores draining and still echoes.
    rude.get_mut().write_all(b"ping\n").await.unwrap();
    assert_eq!(read_line(&mut rude).await, "ping\n");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), server.idle())
            .await
            .is_err(),
        "an upgraded connection is in flight"
    );

    server.abort();
    let mut rest = Vec::new();
    let end = tokio::time::timeout(T5, rude.read_to_end(&mut rest)).await;
    assert!(end.is_ok(), "the hammer must close the upgraded connection");
    tokio::time::timeout(T5, server.idle())
        .await
        .expect("idle after the hammer");
}

/// Notified when a `/slow` request reaches the handler.
static SLOW_STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

async fn slow_hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/slow" {
        SLOW_STARTED.notify_one();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Response::new(Full::new(Bytes::from(format!(
        "pid={}\n",
        std::process::id()
    )))))
}

async fn get_unix(path: &std::path::Path, uri: &str) -> (StatusCode, Option<String>, String) {
    let stream = tokio::net::UnixStream::connect(path).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::get(uri)
        .header(header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let connection = response
        .headers()
        .get(header::CONNECTION)
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, connection, String::from_utf8_lossy(&body).into())
}

fn quiet_handoff() -> Handoff {
    Handoff::builder()
        .restart_signals(&[])
        .shutdown_signals(&[])
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_is_listen_and_serve_and_drains_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("http.sock");
    let handoff = quiet_handoff();
    let handle = handoff.handle();
    let address = format!("unix:{}", path.display());
    let running = tokio::spawn(handoff::hyper::serve(
        handoff,
        [("http", address)],
        service_fn(slow_hello),
    ));
    for _ in 0..500 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, _, body) = get_unix(&path, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("pid={}\n", std::process::id()));

    let slow = tokio::spawn({
        let path = path.clone();
        async move { get_unix(&path, "/slow").await }
    });
    tokio::time::timeout(T5, SLOW_STARTED.notified())
        .await
        .expect("the slow request reaches the handler");
    // What the handle sees: serving, generation 1, one connection in flight.
    assert_eq!(handle.state(), handoff::State::Serving);
    assert!(handle.is_ready());
    assert_eq!(handle.generation(), 1);
    assert_eq!(handle.in_flight().await.unwrap(), 1);
    handle.shutdown();
    let (status, connection, _) = tokio::time::timeout(T5, slow).await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(connection.as_deref(), Some("close"));
    let reason = tokio::time::timeout(T5, running).await.unwrap().unwrap();
    assert_eq!(reason.unwrap(), ExitReason::Shutdown);
    assert_eq!(handle.state(), handoff::State::Done);
    assert!(matches!(handle.in_flight().await, Err(Error::DriverGone)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_rejects_a_datagram_address() {
    let err = handoff::hyper::serve(
        quiet_handoff(),
        [("dns", "udp://127.0.0.1:0")],
        service_fn(slow_hello),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
}
