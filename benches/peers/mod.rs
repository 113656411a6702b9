//! The servers `benches/overhead.rs` compares: each framework bare, and the
//! same app on handoff. Every one answers `GET /` with `hello from pid=PID\n`
//! (the examples' `GET /`), sets TCP_NODELAY on accepted connections as
//! handoff does, binds 127.0.0.1:0 and prints `serving http://ADDR with pid
//! PID`. They run as `overhead --serve NAME`.
//!
//! [`METRICS`] pairs a handoff server with the same server with a Prometheus
//! recorder installed before its `Handoff` is built (feature `metrics`).

use std::process::ExitCode;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

mod actix;
mod axum;
mod hyper_util;
mod smol;

/// The body every server answers.
pub fn hello() -> String {
    format!("hello from pid={}\n", std::process::id())
}

/// A server: its name on the command line and its `main`.
pub type Peer = (&'static str, fn() -> Result<(), Box<dyn std::error::Error>>);

/// (bare, on handoff) pairs, with the protocol they are loaded with.
pub const PAIRS: [(&str, Peer, Peer); 4] = [
    (
        "hyper-util (tokio)",
        ("hyper-util", hyper_util::bare),
        ("handoff-hyper", hyper_util::handoff),
    ),
    (
        "axum::serve",
        ("axum", axum::bare),
        ("handoff-axum", axum::handoff),
    ),
    (
        "actix-web HttpServer",
        ("actix", actix::bare),
        ("handoff-actix", actix::handoff),
    ),
    (
        "hyper on smol",
        ("smol-hyper", smol::bare),
        ("handoff-smol", smol::handoff),
    ),
];

/// (no recorder, Prometheus recorder) pairs: the same handoff server, with
/// the `metrics` feature's handles taken from the facade's no-op recorder or
/// from metrics-exporter-prometheus's, as the examples install it.
pub const METRICS: [(&str, Peer, Peer); 2] = [
    (
        "handoff-hyper (tokio)",
        ("handoff-hyper", hyper_util::handoff),
        ("handoff-hyper-metrics", hyper_util_metrics),
    ),
    (
        "handoff-actix",
        ("handoff-actix", actix::handoff),
        ("handoff-actix-metrics", actix_metrics),
    ),
];

fn hyper_util_metrics() -> Result<(), Box<dyn std::error::Error>> {
    install_prometheus()?;
    hyper_util::handoff()
}

fn actix_metrics() -> Result<(), Box<dyn std::error::Error>> {
    install_prometheus()?;
    actix::handoff()
}

/// The recorder of the `-metrics` servers, once installed.
static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as `examples/common/observe.rs` does
/// (before the `Handoff` is built, which takes the metric handles). Nothing
/// scrapes it during the run, and no upkeep task runs (it only drains
/// histograms, which no request records).
fn install_prometheus() -> Result<(), Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    _ = PROMETHEUS.set(handle);
    Ok(())
}

/// Runs the server named `name`.
pub fn serve(name: &str) -> ExitCode {
    let peer = PAIRS
        .iter()
        .chain(&METRICS)
        .flat_map(|(_, bare, handoff)| [bare, handoff])
        .find(|(n, _)| *n == name);
    let Some((_, main)) = peer else {
        eprintln!("unknown server {name:?}");
        return ExitCode::from(2);
    };
    match main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the line the bench waits for.
fn serving(addr: impl std::fmt::Display) {
    println!("serving http://{addr} with pid {}", std::process::id());
}

/// The restart hook every handoff server shares (the bench restarts none of
/// them, but a server on handoff is configured like the examples).
fn handoff() -> Result<::handoff::Handoff, ::handoff::Error> {
    let handoff = ::handoff::Handoff::builder()
        .on_restart(|result| match result {
            Ok(pid) => println!("restart complete: successor pid {pid}"),
            Err(e) => println!("restart failed: {e}"),
        })
        .build()?;
    // A `-metrics` server whose handles did not come from the recorder
    // (built without the feature, or installed too late) would measure
    // nothing: refuse to serve.
    if let Some(prometheus) = PROMETHEUS.get() {
        let rendered = prometheus.render();
        if !rendered.contains("handoff_requests_in_flight") {
            eprintln!("the Prometheus recorder has no handoff metrics:\n{rendered}");
            std::process::exit(2);
        }
    }
    Ok(handoff)
}

fn print_addr(address: ::handoff::Address) {
    serving(address);
}
