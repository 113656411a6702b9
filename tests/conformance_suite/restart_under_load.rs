//! Restart under load: client tasks (HTTP/1.1 keep-alive, a new connection
//! per request, HTTP/2 if the example speaks it) run for the whole scenario
//! while the server is restarted 20 times. Each new generation must answer
//! its share of requests before the next restart. 0 failed requests, 0
//! non-200, every generation served, every restart reported complete.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Flavor;
use crate::common::{T10, T30, TempDir};
use crate::http_common::{Load, Target, blocking, restart, summarize_restarts};

const RESTARTS: usize = 20;
/// Requests each new generation must answer before the next restart.
const PER_GENERATION: u64 = 200;
/// The load stops by itself at the latest after this.
const LOAD_DEADLINE: Duration = Duration::from_secs(180);

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
        assert_eq!(
            load.stats.failed.load(Ordering::SeqCst),
            0,
            "[{}] restart {i} ({} -> {new}): {}",
            flavor.name,
            r.old,
            load.stats
        );
        restarts.push(r);
    }
    let last = restarts.last().expect("restarts").new;
    let stats = load.stop().await;
    let took = started.elapsed();

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
