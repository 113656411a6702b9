//! The runtime conformance suite: one set of scenario bodies, run unchanged
//! against the HTTP example of every runtime flavour (`tests/conformance.rs`
//! lists the flavours, one [`conformance!`] line each).
//!
//! Every flavour's example has the same contract (`examples/common/cli.rs`,
//! `examples/common/http_app.rs`): `--listen ADDR --pid-file PATH
//! --ready-timeout SECS --stop-timeout SECS --kill-timeout SECS`; a `serving
//! http://ADDR with pid PID` line per listener; `GET /`, `GET
//! /sleep?duration=D`, `GET /stream`; a `restart complete: successor pid PID`
//! or `restart failed: REASON` line after each restart attempt; SIGHUP
//! restarts, SIGTERM stops gracefully.
//!
//! The scenarios, one file each:
//! - [`restart_under_load`]: 20 restarts under continuous load, 0 failures;
//! - [`long_lived`]: a slow request finishes on the old generation while the
//!   new one serves, idle keep-alive connections close cleanly and promptly;
//! - [`bad_successor`]: successors that exit or hang are rolled back;
//! - [`shutdown_bounds`]: restart and shutdown bounded by stop + kill timeout;
//! - [`drain_signal`]: long-lived responses see the drain signal and end;
//! - [`idle_connections`]: 1,000 idle keep-alive connections close cleanly
//!   and the old generation does not linger on them;
//! - [`unread_body`]: request bodies a handler ignores never fail a request;
//! - [`take_back`]: a successor that dies after ready hands the listeners back.
//!
//! The scenarios run one at a time (see [`run`]): restarts under load are
//! sensitive to CPU starvation, and the timing bounds too. Loopback only,
//! ports read back from the `serving` lines, every wait and loop bounded.
#![allow(dead_code)] // a build without any flavour's features uses none of it

pub mod bad_successor;
pub mod drain_signal;
pub mod idle_connections;
pub mod long_lived;
pub mod restart_under_load;
pub mod shutdown_bounds;
pub mod take_back;
pub mod unread_body;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use crate::common::{self, T10, T30, TempDir};
use crate::http_common::{self, Mode, blocking};

/// One line of the suite: a runtime flavour and its HTTP example.
///
/// ```ignore
/// conformance! { tokio, example = "demo", features = ["tokio", "hyper", "tls"], h2 = true, idle_grace_ms = 1000 }
/// ```
///
/// expands to `mod tokio { #[test] fn restart_under_load() ... }`, one test
/// per scenario, compiled only when the test build has every feature listed
/// (those the example requires). `h2` says whether the example speaks HTTP/2
/// with prior knowledge (h2c) on plain TCP; the load then has HTTP/2 clients
/// too.
macro_rules! conformance {
    (
        $flavor:ident,
        example = $example:literal,
        features = [$($feature:literal),+ $(,)?],
        h2 = $h2:literal,
        idle_grace_ms = $grace:literal $(,)?
    ) => {
        #[cfg(all($(feature = $feature),+))]
        mod $flavor {
            use crate::conformance_suite::{self as suite, Flavor};

            const FLAVOR: Flavor = Flavor {
                name: stringify!($flavor),
                example: $example,
                features: &[$($feature),+],
                h2: $h2,
                idle_grace: std::time::Duration::from_millis($grace),
            };

            #[test]
            fn restart_under_load() {
                suite::restart_under_load::run(FLAVOR);
            }

            #[test]
            fn long_lived_connection_drained_cleanly() {
                suite::long_lived::run(FLAVOR);
            }

            #[test]
            fn bad_successor_rolled_back() {
                suite::bad_successor::run(FLAVOR);
            }

            #[test]
            fn shutdown_within_stop_and_kill_timeout() {
                suite::shutdown_bounds::run(FLAVOR);
            }

            #[test]
            fn drain_signal_delivered() {
                suite::drain_signal::run(FLAVOR);
            }

            #[test]
            fn idle_connections_closed_without_lingering() {
                suite::idle_connections::run(FLAVOR);
            }

            #[test]
            fn successor_dead_after_ready_is_taken_back() {
                suite::take_back::run(FLAVOR);
            }

            #[test]
            fn unread_request_bodies_cost_no_request() {
                suite::unread_body::run(FLAVOR);
            }
        }
    };
}

/// A runtime flavour: which example to run and what it speaks.
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    /// The flavour's name (the module of its tests), e.g. `tokio`.
    pub name: &'static str,
    /// The example binary, e.g. `demo`.
    pub example: &'static str,
    /// The crate features the example needs (the line's cfg).
    pub features: &'static [&'static str],
    /// Whether the example speaks HTTP/2 with prior knowledge on plain TCP.
    pub h2: bool,
    /// How long after draining starts the example may keep an idle
    /// keep-alive connection open for its next request: its idle grace.
    pub idle_grace: Duration,
}

impl Flavor {
    /// The example binary, built with the features of this test build (so
    /// that it reuses the library the tests were built with).
    pub fn bin(&self) -> PathBuf {
        blocking(|| common::example_bin(self.example, &http_common::features()))
    }

    /// Starts the example (`--listen 127.0.0.1:0 --pid-file DIR/server.pid`
    /// added); returns the guard and its listener's address.
    pub fn start(&self, dir: &TempDir, args: &[&str]) -> (common::Server, SocketAddr) {
        let bin = self.bin();
        self.start_from(&bin, dir, args)
    }

    /// Starts the example from `bin` (e.g. a copy), see [`Flavor::start`].
    pub fn start_from(
        &self,
        bin: &std::path::Path,
        dir: &TempDir,
        args: &[&str],
    ) -> (common::Server, SocketAddr) {
        let (server, serving) = blocking(|| http_common::start_server(bin, dir, args));
        (server, http_common::socket_addr(&serving))
    }

    /// `per_mode` client tasks of each mode the example speaks: HTTP/1.1
    /// keep-alive, a new connection per request, and HTTP/2 if it does.
    pub fn load_modes(&self, per_mode: usize) -> Vec<(Mode, usize)> {
        let mut modes = vec![(Mode::KeepAlive, per_mode), (Mode::NewConnection, per_mode)];
        if self.h2 {
            modes.push((Mode::H2, per_mode));
        }
        modes
    }

    /// The modes of single long-lived client connections.
    pub fn connection_modes(&self) -> Vec<Mode> {
        if self.h2 {
            vec![Mode::KeepAlive, Mode::H2]
        } else {
            vec![Mode::KeepAlive]
        }
    }
}

/// Takes the suite's process-wide lock: one scenario at a time, whatever the
/// flavour. A failed scenario poisons it; the next one runs anyway.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs one scenario body for `flavor`: under the [`serial`] lock, on a
/// two-thread tokio runtime for the clients (whatever runtime the server
/// uses), and prints how long it took.
pub fn run<F: Future<Output = ()>>(flavor: Flavor, scenario: &str, body: impl FnOnce(Flavor) -> F) {
    let _serial = serial();
    http_common::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Build the example before the clock starts.
    runtime.block_on(async { flavor.bin() });
    let started = Instant::now();
    runtime.block_on(body(flavor));
    println!(
        "[{} conformance] {scenario}: passed in {:?}",
        flavor.name,
        started.elapsed()
    );
}

/// Waits (bounded) for a stdout line at index >= `from` equal to `line`.
pub fn wait_line(server: &common::Server, from: usize, line: &str) -> bool {
    blocking(|| server.wait_line(from, T30, |l| l == line)).is_some()
}

/// After a restart, a new connection is answered by the new generation
/// `new`. actix pauses its accept thread asynchronously, so the old
/// generation `old` may still take one connection after the pid file
/// changed: that one must be answered, with `Connection: close`, and the
/// next must reach `new` (at most 3 connections).
pub async fn new_connections_reach(
    flavor: Flavor,
    target: &http_common::Target,
    old: u32,
    new: u32,
) {
    let mut answered_by_old = 0;
    for attempt in 0..3 {
        let mut quick = target.connect(Mode::KeepAlive).await.expect("connect");
        let reply = quick.get("/").await.expect("GET / after the restart");
        assert_eq!(reply.status, 200, "{reply:?}");
        if reply.pid == Some(new) {
            break;
        }
        assert_eq!(reply.pid, Some(old), "{reply:?}");
        assert_eq!(
            reply.connection.as_deref(),
            Some("close"),
            "[{}] the old generation answered a new connection after the restart \
             without Connection: close: {reply:?}",
            flavor.name
        );
        answered_by_old += 1;
        assert!(
            attempt < 2,
            "[{}] the new generation never answered",
            flavor.name
        );
    }
    if answered_by_old > 0 {
        println!(
            "[{}] {answered_by_old} new connection(s) answered by the old generation (with \
             Connection: close) after the pid file changed",
            flavor.name
        );
    }
}

/// SIGTERM to `pid` (a later generation) and waits until it is gone.
pub fn terminate(server: &common::Server, pid: i32) {
    server.signal(pid, common::Signal::TERM);
    assert!(
        blocking(|| common::wait_gone(pid, T10)),
        "generation {pid} still running 10 s after SIGTERM\n{}",
        server.diagnostics()
    );
}

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 connection, to tell a clean close from a reset
// ---------------------------------------------------------------------------

pub use http_common::RawConn;

// ---------------------------------------------------------------------------
// A streamed response body, read piece by piece
// ---------------------------------------------------------------------------

/// A response body read as it arrives.
pub struct BodyReader {
    body: hyper::body::Incoming,
    /// Everything received so far.
    pub text: String,
    /// Whether the body ended (cleanly).
    pub ended: bool,
}

/// Most frames one body may take (ten minutes of ticks).
const MAX_FRAMES: usize = 10_000;

impl BodyReader {
    pub fn new(body: hyper::body::Incoming) -> BodyReader {
        BodyReader {
            body,
            text: String::new(),
            ended: false,
        }
    }

    /// Reads one frame (bounded); `Ok(false)` at the end of the body.
    async fn next(&mut self, deadline: tokio::time::Instant) -> Result<bool, String> {
        match tokio::time::timeout_at(deadline, self.body.frame()).await {
            Err(_) => Err(format!("timed out; received so far: {:?}", self.text)),
            Ok(None) => {
                self.ended = true;
                Ok(false)
            }
            Ok(Some(Err(e))) => Err(format!(
                "body error: {e} ({e:?}); received so far: {:?}",
                self.text
            )),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    self.text.push_str(&String::from_utf8_lossy(&data));
                }
                Ok(true)
            }
        }
    }

    /// Reads until the text received holds `needle` (bounded).
    pub async fn until(&mut self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        for _ in 0..MAX_FRAMES {
            if self.text.contains(needle) {
                return Ok(());
            }
            if !self.next(deadline).await? {
                return Err(format!(
                    "the body ended without {needle:?}: {:?}",
                    self.text
                ));
            }
        }
        Err(format!("{MAX_FRAMES} frames without {needle:?}"))
    }

    /// Reads to the end of the body (bounded); `Err` if it ends with an error
    /// (truncated, reset) or does not end in time.
    pub async fn read_to_end(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        for _ in 0..MAX_FRAMES {
            if !self.next(deadline).await? {
                return Ok(());
            }
        }
        Err(format!("{MAX_FRAMES} frames and no end"))
    }
}
