//! An HTTP server that restarts without failing a request: the gracedemo of
//! Go's facebookgo/grace, on handoff and hyper.
//!
//! ```text
//! cargo run --example demo --features hyper,tls
//! curl 'http://127.0.0.1:8080/sleep?duration=20s' &   # a slow request
//! kill -HUP <pid>                                     # restart
//! curl http://127.0.0.1:8080/                         # answered by the new pid
//!                                                     # ... the slow one finishes with the old pid
//! ```
//!
//! `GET /` answers `pid=PID`; `GET /sleep?duration=D` (D like `500ms`, `2s`,
//! `1m`) waits D, then answers `pid=PID`; `GET /stream` streams a `tick` line
//! every 100 ms until draining starts, then `draining pid=PID` and ends
//! (see `examples/common/http_app.rs`). SIGHUP or SIGUSR2 restarts, SIGTERM
//! or SIGINT shuts down gracefully.
//!
//! Flags: `--listen ADDR` (repeatable; default 127.0.0.1:8080, :8081, :8082),
//! `--pid-file PATH`, `--ready-timeout SECS`, `--stop-timeout SECS`,
//! `--kill-timeout SECS`, `--tls-cert PEM --tls-key PEM` (then HTTPS; each
//! generation reads the files again, so a restart rotates the certificate).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use handoff::{Address, Handoff};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/http_app.rs"]
mod http_app;

const DEFAULT_LISTEN: [&str; 3] = ["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082"];

fn sleep(duration: Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(tokio::time::sleep(duration))
}

/// Raises the soft limit on open files to the hard limit: a server holds a
/// descriptor per connection.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!("cannot raise the open file limit: {e}");
        }
    }
}

fn main() -> ExitCode {
    cli::init_logging();
    let cli = match cli::Cli::parse("demo", &DEFAULT_LISTEN, true) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit();
    // Take the inherited sockets before the runtime starts its threads.
    let handoff = match cli.builder().build() {
        Ok(h) => h,
        Err(e) => return cli.fail(e),
    };
    // Every generation reads the certificate again: a restart rotates it.
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => match handoff::tls::server_config(cert, key) {
            Ok(config) => Some(config),
            Err(e) => return cli.fail(e),
        },
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(serve(handoff, &cli.listen, tls)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli.fail(e),
    }
}

async fn serve(
    mut handoff: Handoff,
    addresses: &[String],
    tls: Option<Arc<handoff::tls::rustls::ServerConfig>>,
) -> Result<(), handoff::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut server = handoff::hyper::Server::new();
    if let Some(config) = tls {
        server = server.tls(config);
    }
    let pid = std::process::id();
    for (i, address) in addresses.iter().enumerate() {
        let bound = server.listen(
            &mut handoff,
            &format!("http{i}"),
            address,
            http_app::service(sleep),
        )?;
        match bound {
            Address::Tcp(addr) => println!("serving {scheme}://{addr} with pid {pid}"),
            other => println!("serving {scheme}+{other} with pid {pid}"),
        }
    }
    handoff.run(handoff::tokio::Tokio, server).await?;
    Ok(())
}
