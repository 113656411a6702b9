//! An actix-web app that restarts without failing a request: the demo's
//! contract on actix.
//!
//! ```text
//! cargo run --example actix --features actix -- --listen 127.0.0.1:8080
//! curl 'http://127.0.0.1:8080/sleep?duration=20s' &   # a slow request
//! kill -HUP <pid>                                     # restart
//! curl http://127.0.0.1:8080/                         # answered by the new pid
//!                                                     # ... the slow one finishes with the old pid
//! ```
//!
//! `/` answers `hello from pid=PID` (whatever the method; the body is left
//! unread); `GET /sleep?duration=D` (D like `500ms`, `2s`, `1m`; `/sleep/`
//! too) prints `sleeping D in pid PID`, waits D, then answers `slept D,
//! pid=PID`; `POST /echo` answers with the request body (up to 16 MiB);
//! `GET /stream` streams `streaming in pid PID`, then a
//! `tick` line every 100 ms until draining starts, then `draining pid=PID`
//! and ends; `GET /peer` answers `peer=IP:PORT`, the client's address
//! (`HttpRequest::peer_addr`); `GET /readyz` and `GET /metrics` as the
//! demo's. SIGHUP or SIGUSR2 restarts, SIGTERM or
//! SIGINT shuts down gracefully.
//!
//! Each listener serves HTTP/1.1, and HTTP/2 with prior knowledge too (`curl
//! --http2-prior-knowledge`) when `ACTIX_H2C=1` is in the environment (see
//! `handoff::actix::Server::h2c` for why it is not the default); with
//! `--tls-cert PEM --tls-key PEM` (built with the `tls` feature) HTTPS
//! instead, HTTP/2 or HTTP/1.1 by ALPN, the files read again by each
//! generation.
//!
//! Flags: `--listen ADDR` (repeatable; default 127.0.0.1:8080, :8081, :8082;
//! TCP only), `--pid-file PATH`, `--ready-timeout SECS`,
//! `--stop-timeout SECS`, `--kill-timeout SECS`, `--tls-cert PEM --tls-key
//! PEM`.

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::Stream;
use futures_util::future::{Either, select};
use handoff::actix::{Draining, Server};
use handoff::{Address, ExitReason, Handoff};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/observe.rs"]
mod observe;

const DEFAULT_LISTEN: [&str; 3] = ["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082"];
const TICK: Duration = Duration::from_millis(100);
/// Ten minutes of ticks.
const MAX_TICKS: u32 = 6000;
/// The largest body `POST /echo` sends back.
const ECHO_LIMIT: usize = 16 * 1024 * 1024;

/// Raises the soft limit on open files to the hard limit: a server holds a
/// descriptor per connection (two with handoff's connection tracking).
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
    let cli = match cli::Cli::parse("actix", &DEFAULT_LISTEN, cfg!(feature = "tls")) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("actix: {e}");
            return ExitCode::from(2);
        }
    };
    raise_fd_limit();
    // Before the handoff is built: handoff takes its metric handles then.
    observe::install();
    // Take the inherited sockets before actix starts its threads.
    let handoff = match cli.launch() {
        Ok(handoff) => handoff,
        Err(code) => return code,
    };
    match actix_web::rt::System::new().block_on(serve(handoff, &cli)) {
        Ok(reason) => cli.done(reason),
        Err(e) => cli.fail(e),
    }
}

async fn serve(mut handoff: Handoff, cli: &cli::Cli) -> Result<ExitReason, handoff::Error> {
    let (server, scheme) = match (&cli.tls_cert, &cli.tls_key) {
        // Read by every generation: a restart serves the files on disk then.
        #[cfg(feature = "tls")]
        (Some(cert), Some(key)) => (
            Server::new().tls(handoff::tls::server_config(cert, key)?),
            "https",
        ),
        _ => (Server::new(), "http"),
    };
    // HTTP/2 with prior knowledge next to HTTP/1.1 (see Server::h2c for
    // what actix costs it: connections that have sent nothing are not seen).
    let server = server.h2c(std::env::var_os("ACTIX_H2C").is_some_and(|v| v == "1"));
    let mut http = HttpServer::new(server.app(|| {
        App::new()
            .route("/", web::to(root))
            .service(get_only("/sleep").route(web::get().to(sleep)))
            .service(get_only("/sleep/").route(web::get().to(sleep)))
            .service(get_only("/stream").route(web::get().to(stream)))
            .service(get_only("/peer").route(web::get().to(peer)))
            .service(get_only("/readyz").route(web::get().to(|| status(observe::readyz()))))
            .service(get_only("/metrics").route(web::get().to(|| status(observe::metrics()))))
            .service(
                web::resource("/echo")
                    .app_data(web::PayloadConfig::new(ECHO_LIMIT))
                    .route(web::post().to(echo)),
            )
            .default_service(web::to(|| async {
                HttpResponse::NotFound().body("not found\n")
            }))
    }))
    .workers(2);
    let pid = std::process::id();
    for (i, address) in cli.listen.iter().enumerate() {
        let (next, bound) = server.listen(&mut handoff, http, &format!("http{i}"), address)?;
        http = next;
        match bound {
            Address::Tcp(addr) => println!("serving {scheme}://{addr} with pid {pid}"),
            other => println!("serving {scheme}+{other} with pid {pid}"),
        }
    }
    server.start(&handoff, http)?;
    handoff.run(handoff::tokio::Tokio, server).await
}

/// A GET-only resource (the caller adds its GET route): other methods are
/// answered 405 Method Not Allowed.
fn get_only(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        HttpResponse::MethodNotAllowed()
            .insert_header(("allow", "GET"))
            .body("method not allowed\n")
    }))
}

/// `GET /readyz` and `GET /metrics` (see `examples/common/observe.rs`).
async fn status((status, body): (u16, String)) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).body(body)
}

async fn root() -> String {
    format!("hello from pid={}\n", std::process::id())
}

/// `GET /peer`: the client's address, as actix saw it accept the connection.
async fn peer(request: HttpRequest) -> HttpResponse {
    match request.peer_addr() {
        Some(peer) => HttpResponse::Ok().body(format!("peer={peer}\n")),
        None => HttpResponse::InternalServerError().body("no peer address\n"),
    }
}

async fn echo(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(body)
}

async fn sleep(request: HttpRequest) -> HttpResponse {
    let pid = std::process::id();
    let duration = request
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("duration="));
    let Some(text) = duration else {
        return HttpResponse::BadRequest().body("missing duration, e.g. /sleep?duration=2s\n");
    };
    let Some(wait) = cli::parse_duration(text) else {
        return HttpResponse::BadRequest().body(format!(
            "bad duration {text:?}: expected e.g. 500ms, 2s, 1m\n"
        ));
    };
    println!("sleeping {text} in pid {pid}");
    actix_web::rt::time::sleep(wait).await;
    HttpResponse::Ok().body(format!("slept {text}, pid={pid}\n"))
}

async fn stream(draining: Draining) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(lines(draining))
}

/// What the stream sends next.
enum Step {
    Start,
    Tick(u32),
    Done,
}

/// `streaming in pid PID`, ticks, and `draining pid=PID` once draining starts.
fn lines(draining: Draining) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let pid = std::process::id();
    futures_util::stream::unfold(Step::Start, move |step| {
        let draining = draining.clone();
        async move {
            let (line, next) = match step {
                Step::Start => (format!("streaming in pid {pid}\n"), Step::Tick(0)),
                Step::Tick(n) if n < MAX_TICKS => {
                    let tick = std::pin::pin!(actix_web::rt::time::sleep(TICK));
                    match select(draining.signal(), tick).await {
                        Either::Left(_) => (format!("draining pid={pid}\n"), Step::Done),
                        Either::Right(_) => ("tick\n".to_string(), Step::Tick(n + 1)),
                    }
                }
                Step::Tick(_) => ("done\n".to_string(), Step::Done),
                Step::Done => return None,
            };
            Some((Ok(Bytes::from(line)), next))
        }
    })
}
