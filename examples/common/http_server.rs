//! The `main` every hyper example shares, whatever runtime runs it: flags
//! (`examples/common/cli.rs`), the handoff, TLS when `--tls-cert` and
//! `--tls-key` are given (feature `tls`), metrics and readiness
//! (`examples/common/observe.rs`), the app (`examples/common/http_app.rs`) on
//! every `--listen` address, and handoff's restart loop.

#![allow(dead_code)] // each example uses the part it needs

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use handoff::hyper::{HttpRuntime, Server};
use handoff::{Address, ExitReason, Handoff};

use super::{cli, http_app, observe};

/// The default listeners, as in Go's gracedemo.
pub const DEFAULT_LISTEN: [&str; 3] = ["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082"];

/// What serving returns.
pub type Serving = Pin<Box<dyn Future<Output = Result<ExitReason, handoff::Error>>>>;

/// Parses the flags, takes the inherited sockets, then runs the server on
/// `runtime` with `block_on` (which must provide the runtime's context).
pub fn main<R: HttpRuntime>(
    program: &'static str,
    runtime: R,
    sleep: http_app::Sleep,
    block_on: impl FnOnce(Serving) -> Result<ExitReason, handoff::Error>,
) -> ExitCode {
    cli::init_logging();
    let cli = match cli::Cli::parse(program, &DEFAULT_LISTEN, cfg!(feature = "tls")) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("{program}: {e}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit();
    // Before the handoff is built: handoff takes its metric handles then.
    observe::install();
    // Take the inherited sockets before the runtime starts its threads.
    let handoff = match cli.launch() {
        Ok(handoff) => handoff,
        Err(code) => return code,
    };
    let mut server = Server::with_runtime(runtime);
    let mut scheme = "http";
    // Every generation reads the certificate again: a restart rotates it.
    #[cfg(feature = "tls")]
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        match handoff::tls::server_config(cert, key) {
            Ok(config) => server = server.tls(config),
            Err(e) => return cli.fail(e),
        }
        scheme = "https";
    }
    match block_on(Box::pin(serve(
        handoff,
        cli.listen.clone(),
        server,
        scheme,
        sleep,
    ))) {
        Ok(reason) => cli.done(reason),
        Err(e) => cli.fail(e),
    }
}

async fn serve<R: HttpRuntime>(
    mut handoff: Handoff,
    addresses: Vec<String>,
    server: Server<R>,
    scheme: &'static str,
    sleep: http_app::Sleep,
) -> Result<ExitReason, handoff::Error> {
    let pid = std::process::id();
    for (i, address) in addresses.iter().enumerate() {
        let name = format!("http{i}");
        let bound = server.listen(&mut handoff, &name, address, http_app::service(sleep))?;
        match bound {
            Address::Tcp(addr) => println!("serving {scheme}://{addr} with pid {pid}"),
            other => println!("serving {scheme}+{other} with pid {pid}"),
        }
    }
    let runtime = server.runtime().clone();
    handoff.run(runtime, server).await
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
