//! The conformance suite: one set of scenario bodies, run unchanged against
//! the example of every flavour (`tests/conformance.rs` lists them, one
//! [`conformance!`] line each).
//!
//! Every example has the same contract (`examples/common/cli.rs`): `--listen
//! ADDR --pid-file PATH --ready-timeout SECS --stop-timeout SECS
//! --kill-timeout SECS`; a `serving URL with pid PID` line per listener; a
//! `restart complete: successor pid PID` or `restart failed: REASON` line
//! after each restart attempt; SIGHUP and SIGUSR2 restart, SIGTERM and SIGINT
//! stop gracefully. Each answers the [`Request`]s: which pid serves, and a
//! slow request that prints `sleeping D in pid PID` when it starts. The HTTP
//! examples (`examples/common/http_app.rs`) also have `GET /stream`,
//! `POST /echo`, `GET /peer`, `GET /readyz` and `GET /metrics`, and
//! `--shutdown-delay SECS`.
//!
//! The scenarios, one file each:
//! - [`restart_under_load`]: 20 restarts under continuous load, 0 failures;
//! - [`long_lived`]: a slow request finishes on the old generation while the
//!   new one serves, idle connections close cleanly and promptly;
//! - [`bad_successor`]: successors that exit, hang or cannot start are rolled
//!   back;
//! - [`shutdown_bounds`]: restart and shutdown bounded by stop + kill timeout,
//!   and what the service manager is told;
//! - [`idle_connections`]: 1,000 idle connections close cleanly;
//! - [`take_back`]: a successor that dies after ready hands the listeners
//!   back;
//! - HTTP only: [`drain_signal`] (long-lived responses see the drain signal
//!   and end), [`unread_body`] (request bodies a handler ignores never
//!   fail a request), [`peer_addr`] (`GET /peer` answers the client's
//!   address);
//! - lines only: [`line_in_hand`] (a line half received when draining starts
//!   is finished, not cut);
//! - both: [`readiness`] (readiness, metrics where HTTP, the shutdown delay).
//!
//! A flavour with `supervise` runs the example with `--supervise`: the
//! process started is a supervisor and the generations are its workers
//! (the harness's `Server` knows which is which: `main_pid`, `restart`,
//! `terminate`); each scenario says what it checks instead where supervisor
//! mode promises something else.
//!
//! The scenarios run one at a time (see [`run`]): restarts under load are
//! sensitive to CPU starvation, and the timing bounds too. Loopback only,
//! addresses read back from the `serving` lines, every wait and loop bounded.

pub mod bad_successor;
pub mod drain_signal;
pub mod idle_connections;
pub mod line_in_hand;
pub mod long_lived;
pub mod peer_addr;
pub mod readiness;
pub mod restart_under_load;
pub mod shutdown_bounds;
pub mod take_back;
pub mod unread_body;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::harness::client::{Protocol, RawConn, Request, Target};
use crate::harness::http::Mode;
use crate::harness::server::{self, Server};

/// One line of the suite, see `tests/conformance.rs`: expands to `mod
/// FLAVOR { #[test] fn SCENARIO() ... }`, one test per scenario of the
/// flavour's protocol, compiled only when the test build has every feature
/// listed.
macro_rules! conformance {
    (@bool) => { false };
    (@bool $value:literal) => { $value };
    (@flavor $flavor:ident, [$($feature:literal),+], $example:literal, $protocol:ident, $h2:literal,
        $grace:literal, [$($supervise:literal)?], [$($scenario:ident),+]) => {
        #[cfg(all($(feature = $feature),+))]
        mod $flavor {
            use crate::conformance_suite::{self as suite, Flavor};

            const FLAVOR: Flavor = Flavor {
                name: stringify!($flavor),
                example: $example,
                protocol: crate::harness::client::Protocol::$protocol,
                h2: $h2,
                idle_grace: std::time::Duration::from_millis($grace),
                supervise: conformance!(@bool $($supervise)?),
            };

            $(
                #[test]
                fn $scenario() {
                    suite::$scenario::run(FLAVOR);
                }
            )+
        }
    };
    ($flavor:ident, example = $example:literal, features = [$($feature:literal),+ $(,)?],
        http(h2 = $h2:literal), idle_grace_ms = $grace:literal
        $(, supervise = $supervise:literal)? $(,)?) => {
        conformance!(@flavor $flavor, [$($feature),+], $example, Http, $h2, $grace, [$($supervise)?], [
            restart_under_load, long_lived, bad_successor, shutdown_bounds, idle_connections,
            take_back, drain_signal, unread_body, peer_addr, readiness
        ]);
    };
    ($flavor:ident, example = $example:literal, features = [$($feature:literal),+ $(,)?],
        lines, idle_grace_ms = $grace:literal $(, supervise = $supervise:literal)? $(,)?) => {
        conformance!(@flavor $flavor, [$($feature),+], $example, Lines, false, $grace, [$($supervise)?], [
            restart_under_load, long_lived, bad_successor, shutdown_bounds, idle_connections,
            take_back, line_in_hand, readiness
        ]);
    };
}

/// A flavour: which example to run and what it speaks.
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    /// The module of its tests, e.g. `tokio`.
    pub name: &'static str,
    /// The example binary, e.g. `demo`.
    pub example: &'static str,
    pub protocol: Protocol,
    /// Whether the example speaks HTTP/2 with prior knowledge on plain TCP.
    pub h2: bool,
    /// How long after draining starts the example may keep an idle
    /// connection that served a request open for its next one.
    pub idle_grace: Duration,
    /// Whether the example runs with `--supervise`: the process started is
    /// a supervisor, the generations are its workers.
    pub supervise: bool,
}

impl Flavor {
    /// The example binary, built with the features of this test build.
    pub fn bin(&self) -> PathBuf {
        server::example(self.example)
    }

    /// The example's arguments: `args`, and `--supervise` if the flavour
    /// supervises.
    pub fn args<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        if self.supervise {
            all.push("--supervise");
        }
        all
    }

    /// Starts the example (`--listen 127.0.0.1:0 --pid-file DIR/server.pid`
    /// added, and `--supervise` if the flavour supervises); returns once it
    /// serves, with its first listener.
    pub fn start(&self, dir: &Path, args: &[&str]) -> (Server, Target) {
        self.serving(Server::start(&self.bin(), dir, &self.args(args)))
    }

    /// Waits until `server` serves; its first listener. Its `first_pid` is
    /// then the first generation (with `--supervise`, the first worker).
    pub fn serving(&self, mut server: Server) -> (Server, Target) {
        assert_eq!(
            server.supervised(),
            self.supervise,
            "[{}] started with `--supervise` or not: use Flavor::args",
            self.name
        );
        let target = Target::of(&server.wait_first_worker());
        assert_eq!(target.protocol, self.protocol, "[{}] {target:?}", self.name);
        (server, target)
    }

    /// `per_mode` client tasks of each mode the example speaks: a connection
    /// kept, a new connection per request, and HTTP/2 if it does.
    pub fn load_modes(&self, per_mode: usize) -> Vec<(Mode, usize)> {
        let mut modes = vec![(Mode::KeepAlive, per_mode), (Mode::NewConnection, per_mode)];
        if self.h2 {
            modes.push((Mode::H2, per_mode));
        }
        modes
    }
}

/// Runs one scenario body for `flavor`: one scenario at a time, whatever the
/// flavour (a failed one poisons the lock; the next runs anyway), on a
/// two-thread tokio runtime for the clients (whatever runtime the server
/// uses), and prints how long it took. The body runs on this thread, the
/// tasks it spawns on the runtime's: it may block on the server's guard.
pub fn run<F: Future<Output = ()>>(flavor: Flavor, scenario: &str, body: impl FnOnce(Flavor) -> F) {
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // Build the example before the clock starts.
    flavor.bin();
    let started = Instant::now();
    runtime.block_on(body(flavor));
    println!(
        "[{} conformance] {scenario}: passed in {:?}",
        flavor.name,
        started.elapsed()
    );
}

/// Raises this process's soft limit on open files to the hard limit.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
    }
}

/// Whether `server` reported the restart verdict `line` (bounded: 30 s):
/// `restart complete: successor pid PID` or `restart failed: ...`, printed
/// by a generation or logged by the supervisor (see
/// [`Server::wait_verdict`]).
pub fn printed(server: &Server, line: &str) -> bool {
    server
        .wait_verdict(0, crate::harness::process::T30, |l| l == line)
        .is_some()
}

/// After a restart from `old` to `new`, a new connection is answered by
/// `new`. actix pauses its accept thread asynchronously, and a supervisor
/// tells the old worker to drain with a message, so the old generation may
/// still take a connection after the restart was reported: that one must be
/// answered, with `Connection: close` (a line protocol closes the
/// connection cleanly after the answer instead), and one of the next must
/// reach `new` (at most 3 connections).
pub async fn new_connections_reach(flavor: Flavor, target: &Target, old: i32, new: i32) {
    for attempt in 0..3 {
        let mut conn = RawConn::connect(target).await;
        let reply = conn
            .ask(Request::Pid)
            .await
            .expect("a request after the restart");
        assert_eq!(reply.status, 200, "{reply:?}");
        if reply.pid() == Some(new) {
            if attempt > 0 {
                println!(
                    "[{}] {attempt} new connection(s) answered by the old generation",
                    flavor.name
                );
            }
            return;
        }
        assert_eq!(reply.pid(), Some(old), "{reply:?}");
        match flavor.protocol {
            Protocol::Http => assert_eq!(
                reply.header("connection"),
                Some("close"),
                "[{}] the old generation answered a new connection after the restart \
                 without Connection: close: {reply:?}",
                flavor.name
            ),
            // A line cannot say `Connection: close`: the old generation
            // closes the connection cleanly right after its answer instead.
            Protocol::Lines => conn
                .wait_closed(crate::harness::process::T5)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "[{}] the old generation answered a new connection after the restart \
                     and did not close it: {e}",
                        flavor.name
                    )
                }),
        }
    }
    panic!("[{}] the new generation never answered", flavor.name);
}
