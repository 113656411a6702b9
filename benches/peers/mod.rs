//! The servers `benches/overhead.rs` compares: each framework bare, and the
//! same app on handoff. Every one answers `GET /` with `hello from pid=PID\n`
//! (the examples' `GET /`), sets TCP_NODELAY on accepted connections as
//! handoff does, binds 127.0.0.1:0 and prints `serving http://ADDR with pid
//! PID`. They run as `overhead --serve NAME`.

use std::process::ExitCode;

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

/// Runs the server named `name`.
pub fn serve(name: &str) -> ExitCode {
    let peer = PAIRS
        .iter()
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
    ::handoff::Handoff::builder()
        .on_restart(|result| match result {
            Ok(pid) => println!("restart complete: successor pid {pid}"),
            Err(e) => println!("restart failed: {e}"),
        })
        .build()
}

fn print_addr(address: ::handoff::Address) {
    serving(address);
}
