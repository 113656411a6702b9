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
//! byte for byte (up to 16 MiB). Flags as the demo:
//! `--listen ADDR` (repeatable; default 127.0.0.1:8080, :8081, :8082),
//! `--pid-file PATH`, `--ready-timeout SECS`, `--stop-timeout SECS`,
//! `--kill-timeout SECS`.

use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use handoff::hyper::{Draining, Server, TowerToHyperService};
use handoff::{Address, ExitReason, Handoff};

#[path = "common/cli.rs"]
mod cli;

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
    // Take the inherited sockets before the runtime starts its threads.
    let handoff = match cli.builder().build() {
        Ok(h) => h,
        Err(e) => return cli.fail(e),
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
        .layer(DefaultBodyLimit::max(16 << 20));
    let server = Server::new();
    let pid = std::process::id();
    for (i, address) in addresses.iter().enumerate() {
        let service = TowerToHyperService::new(router.clone());
        match server.listen(&mut handoff, &format!("http{i}"), address, service)? {
            Address::Tcp(addr) => println!("serving http://{addr} with pid {pid}"),
            other => println!("serving http+{other} with pid {pid}"),
        }
    }
    handoff.run(handoff::tokio::Tokio, server).await
}
