//! Restart under load: client tasks (HTTP/1.1 keep-alive, a new connection
//! per request, HTTP/2 if the example speaks it) run for the whole scenario
//! while the server is restarted 20 times: GETs, and `POST /echo` with a
//! unique body per request that must come back byte for byte. Beside them,
//! clients nobody here wrote: Python's `http.client` (keep-alive POSTs to
//! `/echo`) and oha (keep-alive GETs). None of them ever sends a request
//! again. Each new generation must answer its share of requests before the
//! next restart. 0 failed requests, 0 non-200, every generation served,
//! every restart reported complete. The only requests counted apart are
//! HTTP/2 streams the server provably never received (see
//! `http_common::refused_stream`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Flavor;
use crate::common::{T10, T30, TempDir};
use crate::http_common::external::{self, OhaCounts, PythonCounts};
use crate::http_common::{ECHO_SIZES, Load, Target, Work, blocking, restart, summarize_restarts};

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
    let dir = TempDir::new(&format!("cf-load-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &["--stop-timeout", "10"]);
    let first = blocking(|| server.wait_pid_file(T30));
    let modes = flavor.load_modes(2);
    let started = Instant::now();
    let load = Load::start(&Target::plain(addr), &modes, "/", LOAD_DEADLINE);
    let echo = Load::start(
        &Target::plain(addr),
        &modes,
        Work::Echo(ECHO_SIZES.to_vec()),
        LOAD_DEADLINE,
    );
    // Clients nobody here wrote; they stop by themselves.
    let sizes = ECHO_SIZES.map(|s| s.to_string()).join(",");
    let python = external::python(
        addr,
        EXTERNAL_SECONDS,
        &[
            "--path",
            "/echo",
            "--echo",
            "--sizes",
            &sizes,
            "--threads",
            "2",
            "--requests",
            "1000000",
        ],
    );
    let oha =
        external::oha().map(|oha| external::start_oha(&oha, addr, "/", 4, EXTERNAL_SECONDS, None));
    assert!(
        load.stats
            .wait_for(T10, |s| s.served_by(first as u32) >= PER_GENERATION)
            .await,
        "[{}] no load on the first generation: {}",
        flavor.name,
        load.stats
    );

    let mut restarts = Vec::new();
    for i in 0..RESTARTS {
        let r = blocking(|| restart(&server, T30));
        let new = r.new as u32;
        assert!(
            load.stats
                .wait_for(T10, |s| s.served_by(new) >= PER_GENERATION)
                .await,
            "[{}] restart {i}: generation {new} does not serve: {}",
            flavor.name,
            load.stats
        );
        for stats in [&load.stats, &echo.stats] {
            assert_eq!(
                stats.failed.load(Ordering::SeqCst),
                0,
                "[{}] restart {i} ({} -> {new}): {stats}",
                flavor.name,
                r.old,
            );
        }
        restarts.push(r);
    }
    let last = restarts.last().expect("restarts").new;
    let stats = load.stop().await;
    let echoed = echo.stop().await;
    let took = started.elapsed();
    let python = PythonCounts::parse(&blocking(|| python.finish(T30)));
    let oha = oha.map(|oha| OhaCounts::parse(&blocking(|| oha.finish(T30))));
    println!(
        "[{}] restart under load: echo {echoed}\n  python http.client: {}\n  oha: {}",
        flavor.name,
        python.line,
        oha.as_ref()
            .map_or("not installed (set OHA or PATH)".to_string(), |o| format!(
                "{o:?}"
            ))
    );
    assert_eq!(echoed.failed.load(Ordering::SeqCst), 0, "{echoed}");
    assert_eq!(echoed.non_200.load(Ordering::SeqCst), 0, "{echoed}");
    assert!(echoed.served.load(Ordering::SeqCst) > 0, "{echoed}");
    // HTTP/2 streams the client handed back unsent, or the server refused,
    // are counted apart (RFC 9113, section 8.7); they are a small share.
    for s in [&stats, &echoed] {
        let refused = s.refused.load(Ordering::SeqCst);
        assert!(
            refused * 100 <= s.served.load(Ordering::SeqCst),
            "h2 refused: {s}"
        );
    }
    assert!(
        python.ok > 0 && python.failed == 0,
        "python: {}",
        python.line
    );
    if let Some(oha) = oha {
        assert!(oha.ok > 0, "oha: {oha:?}");
        assert_eq!((oha.errors, oha.other_status), (0, 0), "oha: {oha:?}");
    }

    println!(
        "[{}] restart under load: {RESTARTS} restarts in {took:?}, modes {modes:?}; {stats}",
        flavor.name
    );
    println!(
        "[{}] restart under load: {}",
        flavor.name,
        summarize_restarts(&restarts)
    );
    assert_eq!(stats.failed.load(Ordering::SeqCst), 0, "{stats}");
    assert_eq!(stats.non_200.load(Ordering::SeqCst), 0, "{stats}");
    let generations: Vec<u32> = std::iter::once(first as u32)
        .chain(restarts.iter().map(|r| r.new as u32))
        .collect();
    for pid in &generations {
        assert!(
            stats.served_by(*pid) > 0,
            "generation {pid} served nothing: {stats}"
        );
    }
    assert!(
        stats.pids().len() > RESTARTS,
        "{} generations served: {stats}",
        stats.pids().len()
    );
    for r in &restarts {
        let line = format!("restart complete: successor pid {}", r.new);
        assert!(
            super::wait_line(&server, 0, &line),
            "generation {} never printed {line:?}\n{}",
            r.old,
            server.diagnostics()
        );
    }
    assert!(
        !server
            .lines()
            .iter()
            .any(|l| l.starts_with("restart failed")),
        "a restart failed\n{}",
        server.diagnostics()
    );

    super::terminate(&server, last);
}
