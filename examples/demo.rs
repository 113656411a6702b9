//! An HTTP server that restarts without failing a request: the gracedemo of
//! Go's facebookgo/grace, on handoff and hyper.
//!
//! ```text
//! cargo run --example demo --features tokio,hyper,tls,metrics
//! curl 'http://127.0.0.1:8080/sleep?duration=20s' &   # a slow request
//! kill -HUP <pid>                                     # restart
//! curl http://127.0.0.1:8080/                         # answered by the new pid
//!                                                     # ... the slow one finishes with the old pid
//! ```
//!
//! `GET /` answers `hello from pid=PID`; `GET /sleep?duration=D` (D like
//! `500ms`, `2s`, `1m`) waits D, then answers `slept D, pid=PID`; `GET /stream` streams a `tick` line
//! every 100 ms until draining starts, then `draining pid=PID` and ends;
//! `POST /echo` answers the body; `GET /peer` the client's address; `GET
//! /readyz` 200 `ready serving generation=N pid=PID`, or 503 from the moment
//! a shutdown begins; `GET /metrics` the Prometheus page (handoff's metrics
//! with the `metrics` feature) (see `examples/common/http_app.rs`). SIGHUP or
//! SIGUSR2 restarts, SIGTERM or SIGINT shuts down gracefully (a second one
//! ends the shutdown delay).
//!
//! Flags: `--listen ADDR` (repeatable; default 127.0.0.1:8080, :8081, :8082),
//! `--pid-file PATH`, `--ready-timeout SECS`, `--stop-timeout SECS`,
//! `--kill-timeout SECS`, `--shutdown-delay SECS` (after SIGTERM, serve on
//! unready that long before draining), `--supervise`, `--tls-cert PEM
//! --tls-key PEM` (then HTTPS; each generation reads the files again, so a
//! restart rotates the certificate).

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/http_app.rs"]
mod http_app;
#[path = "common/http_server.rs"]
mod http_server;
#[path = "common/observe.rs"]
mod observe;

fn sleep(duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(tokio::time::sleep(duration))
}

fn main() -> ExitCode {
    http_server::main("demo", handoff::tokio::Tokio, sleep, |serving| {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        runtime.block_on(serving)
    })
}
