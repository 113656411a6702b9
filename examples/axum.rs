//! An axum router on handoff: restarts without failing a request.
//!
//! ```text
//! cargo run --example axum --features hyper -- --listen 127.0.0.1:8080
//! curl http://127.0.0.1:8080/          # pid=PID
//! kill -HUP <pid>                      # restart: the next request gets a new pid
//! ```
//!
//! `GET /` answers `hello from axum, pid=PID`; `GET /sleep?duration=D` (D
//! like `500ms`, `2s`; `/sleep/` too) waits D, then answers `slept D,
//! pid=PID` (or, if the server starts draining meanwhile, still waits:
//! in-flight requests finish); `POST /echo` answers with the request body,
//! byte for byte (up to 16 MiB); `GET /peer` answers `peer=IP:PORT`, the
//! client's address (axum's `ConnectInfo`); `GET /readyz` and `GET
//! /metrics` as the demo's. Flags as the demo:
//! `--listen ADDR` (repeatable; default 127.0.0.1:8080, :8081, :8082),
//! `--pid-file PATH`, `--ready-timeout SECS`, `--stop-timeout SECS`,
//! `--kill-timeout SECS`.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use handoff::hyper::{Draining, Server, TowerToHyperService, map_peer};
use handoff::{Address, ExitReason, Handoff};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/observe.rs"]
mod observe;

async fn root() -> String {
    format!("hello from axum, pid={}\n", std::process::id())
}

async fn sleep(uri: Uri, Extension(draining): Extension<Draining>) -> (StatusCode, String) {
    let pid = std::process::id();
    let text = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("duration="))
        .unwrap_or("");
    let Some(wait) = cli::parse_duration(text) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("bad duration {text:?}: expected e.g. 500ms or 2s\n"),
        );
    };
    tokio::time::sleep(wait).await;
    let note = if draining.is_draining() {
        " (finished while draining)"
    } else {
        ""
    };
    (StatusCode::OK, format!("slept {text}, pid={pid}{note}\n"))
}

async fn echo(body: Bytes) -> Bytes {
    body
}

/// `GET /peer`: the client's address, through axum's `ConnectInfo` (see
/// `map_peer` below).
async fn peer(ConnectInfo(peer): ConnectInfo<SocketAddr>) -> String {
    format!("peer={peer}\n")
}

/// `GET /readyz` and `GET /metrics` (see `examples/common/observe.rs`).
fn status((status, body): (u16, String)) -> (StatusCode, String) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, body)
}

fn main() -> ExitCode {
    cli::init_logging();
    let defaults = ["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082"];
    let cli = match cli::Cli::parse("axum", &defaults, false) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("axum: {e}");
            return ExitCode::from(2);
        }
    };
    // Before the handoff is built: handoff takes its metric handles then.
    observe::install();
    // Take the inherited sockets before the runtime starts its threads.
    let handoff = match cli.launch() {
        Ok(handoff) => handoff,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(serve(handoff, &cli.listen)) {
        Ok(reason) => cli.done(reason),
        Err(e) => cli.fail(e),
    }
}

async fn serve(mut handoff: Handoff, addresses: &[String]) -> Result<ExitReason, handoff::Error> {
    let router = Router::new()
        .route("/", get(root))
        .route("/sleep", get(sleep))
        .route("/sleep/", get(sleep))
        .route("/echo", post(echo))
        .route("/peer", get(peer))
        .route("/readyz", get(|| async { status(observe::readyz()) }))
        .route("/metrics", get(|| async { status(observe::metrics()) }))
        .layer(DefaultBodyLimit::max(16 << 20));
    let server = Server::new();
    let pid = std::process::id();
    for (i, address) in addresses.iter().enumerate() {
        // axum's ConnectInfo<SocketAddr> from the client's PeerAddr.
        let app = map_peer(router.clone(), |peer| peer.tcp().map(ConnectInfo));
        let service = TowerToHyperService::new(app);
        match server.listen(&mut handoff, &format!("http{i}"), address, service)? {
            Address::Tcp(addr) => println!("serving http://{addr} with pid {pid}"),
            other => println!("serving http+{other} with pid {pid}"),
        }
    }
    handoff.run(handoff::tokio::Tokio, server).await
}
