//! Restart under load: client tasks (a connection kept, a new connection per
//! request, HTTP/2 if the example speaks it) run for the whole scenario while
//! the server is restarted 20 times, the next restart once the old
//! generation is gone: requests that name the pid serving them, and echoes
//! (HTTP: `POST /echo`) of a unique body per request that must come back
//! byte for byte. Beside them, for HTTP, clients nobody here wrote: Python's
//! `http.client` (keep-alive POSTs to `/echo`) and oha (keep-alive GETs).
//! None of them ever sends a request again. Each new generation must answer
//! its share of requests before the next restart. 0 failed requests, every
//! generation served (21 distinct pids), every restart reported complete,
//! every old generation gone within 30 s. Supervised: the generations are
//! the workers, restarted by SIGHUP to the supervisor, which reports each
//! restart, and the pid file names the supervisor throughout. The only requests counted apart
//! are those the server provably never took (see `harness/load.rs`): HTTP,
//! at most 1 %; lines, at most one per kept connection a restart closed.

use std::time::{Duration, Instant};

use super::Flavor;
use crate::harness::client::Protocol;
use crate::harness::external::{self, ClientProcess, OhaCounts, PythonCounts};
use crate::harness::load::{ECHO_SIZES, Load, Work};
use crate::harness::process::{T10, T30};
use crate::harness::server::Restart;

const RESTARTS: usize = 20;
/// Requests each new generation must answer before the next restart.
const PER_GENERATION: u64 = 200;
/// The load stops by itself at the latest after this.
const LOAD_DEADLINE: Duration = Duration::from_secs(180);
/// How long the external clients run: through the restarts.
const EXTERNAL_SECONDS: u64 = 8;

pub fn run(flavor: Flavor) {
    super::run(flavor, "restart under load", body);
}

async fn body(flavor: Flavor) {
    let name = flavor.name;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &["--stop-timeout", "10"]);
    let first = server.first_pid;
    let modes = flavor.load_modes(2);
    let started = Instant::now();
    let load = Load::start(&target, &modes, Work::Pid, LOAD_DEADLINE);
    let echo = Load::start(
        &target,
        &modes,
        Work::Echo(ECHO_SIZES.to_vec()),
        LOAD_DEADLINE,
    );
    let external =
        (flavor.protocol == Protocol::Http).then(|| start_external(&target.socket_addr()));
    assert!(
        load.stats
            .wait_for(T10, |s| s.served_by(first) >= PER_GENERATION)
            .await,
        "[{name}] no load on the first generation: {}",
        load.stats
    );

    let mut restarts: Vec<Restart> = Vec::new();
    for i in 0..RESTARTS {
        let r = server.restart_and_wait_old();
        assert!(
            load.stats
                .wait_for(T10, |s| s.served_by(r.new) >= PER_GENERATION)
                .await,
            "[{name}] restart {i}: generation {} does not serve: {}",
            r.new,
            load.stats
        );
        for stats in [&load.stats, &echo.stats] {
            assert_eq!(
                stats.failed(),
                0,
                "[{name}] restart {i} ({} -> {}): {stats}",
                r.old,
                r.new
            );
        }
        restarts.push(r);
    }
    let stats = load.stop().await;
    let echoed = echo.stop().await;
    let took = started.elapsed();
    if let Some((python, oha)) = external {
        check_external(name, python, oha);
    }
    println!(
        "[{name}] restart under load: {RESTARTS} restarts in {took:?}, modes {modes:?}\n  {stats}\n  echo {echoed}"
    );
    println!("[{name}] restart under load: {}", summarize(&restarts));
    for s in [&stats, &echoed] {
        assert_eq!(s.failed(), 0, "{s}");
        assert!(s.served() > 0, "{s}");
        match flavor.protocol {
            Protocol::Http => assert!(s.refused() * 100 <= s.served(), "over 1 % refused: {s}"),
            // A drain closes each kept connection once: one line each at most.
            Protocol::Lines => assert!(s.refused() <= (RESTARTS * 2) as u64, "{s}"),
        }
    }
    for pid in std::iter::once(first).chain(restarts.iter().map(|r| r.new)) {
        assert!(
            stats.served_by(pid) > 0,
            "generation {pid} served nothing: {stats}"
        );
    }
    assert_eq!(stats.pids().len(), RESTARTS + 1, "{stats}");
    for r in &restarts {
        let line = format!("restart complete: successor pid {}", r.new);
        assert!(
            super::printed(&server, &line),
            "{} never printed {line:?}\n{}",
            r.old,
            server.diagnostics()
        );
    }
    let failed = server
        .verdicts()
        .into_iter()
        .find(|l| l.starts_with("restart failed"));
    assert_eq!(failed, None, "{}", server.diagnostics());

    server.terminate(restarts.last().expect("restarts").new);
}

/// Python's `http.client` POSTing echoes and oha (if installed) GETting `/`,
/// with keep-alive connections, through the restarts.
fn start_external(addr: &std::net::SocketAddr) -> (ClientProcess, Option<ClientProcess>) {
    let sizes = ECHO_SIZES.map(|s| s.to_string()).join(",");
    let args = [
        "--path",
        "/echo",
        "--echo",
        "--sizes",
        &sizes,
        "--threads",
        "2",
        "--requests",
        "1000000",
    ];
    let python = external::python(*addr, EXTERNAL_SECONDS, &args);
    let oha =
        external::oha().map(|oha| external::start_oha(&oha, *addr, "/", 4, EXTERNAL_SECONDS, None));
    (python, oha)
}

fn check_external(name: &str, python: ClientProcess, oha: Option<ClientProcess>) {
    let python = PythonCounts::parse(&python.finish(T30));
    let oha = oha.map(|oha| OhaCounts::parse(&oha.finish(T30)));
    let oha_line = oha
        .as_ref()
        .map_or("not installed (set OHA or PATH)".into(), |o| {
            format!("{o:?}")
        });
    println!(
        "[{name}] restart under load: python http.client: {}\n  oha: {oha_line}",
        python.line
    );
    assert!(
        python.ok > 0 && python.failed == 0,
        "python: {}",
        python.line
    );
    if let Some(oha) = oha {
        assert!(oha.ok > 0, "oha: {oha:?}");
        assert_eq!((oha.errors, oha.other_status), (0, 0), "oha: {oha:?}");
    }
}

/// `min / median / max` of the times to ready and to the old generation's exit.
fn summarize(restarts: &[Restart]) -> String {
    let figures = |mut v: Vec<Duration>| {
        v.sort();
        format!("{:?} / {:?} / {:?}", v[0], v[v.len() / 2], v[v.len() - 1])
    };
    format!(
        "after the signal (min / median / max): successor ready {}; old generation gone {}",
        figures(restarts.iter().map(|r| r.ready).collect()),
        figures(restarts.iter().filter_map(|r| r.old_exit).collect())
    )
}
