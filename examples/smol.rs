//! The demo HTTP server (see `examples/demo.rs`) on smol instead of tokio:
//! hyper driven by async-io, signals through async-signal, no tokio runtime.
//!
//! ```text
//! cargo run --example smol --features smol,hyper
//! curl 'http://127.0.0.1:8080/sleep?duration=20s' &   # a slow request
//! kill -HUP <pid>                                     # restart
//! curl http://127.0.0.1:8080/                         # answered by the new pid
//! ```
//!
//! Same contract as the demo: `GET /` answers `hello from pid=PID`, `GET
//! /sleep?duration=D` waits D, `GET /stream` ticks until draining starts;
//! SIGHUP or SIGUSR2 restarts, SIGTERM or SIGINT shuts down gracefully; flags
//! `--listen ADDR` (repeatable), `--pid-file PATH`, `--ready-timeout SECS`,
//! `--stop-timeout SECS`, `--kill-timeout SECS` (and with the `tls` feature
//! `--tls-cert PEM --tls-key PEM`).

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
    Box::pin(async move {
        smol::Timer::after(duration).await;
    })
}

fn main() -> ExitCode {
    // Connections run on smol's global executor; the restart loop on this thread.
    http_server::main("smol", handoff::smol::Smol::new(), sleep, smol::block_on)
}
