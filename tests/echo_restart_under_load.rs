//! Guarantee: a server restarted 20 times in a row (SIGHUP to the current
//! generation, next SIGHUP only once the pid file names the ready successor)
//! while clients hammer it loses nothing: no connect is refused, no
//! connection is reset, every echo is exact, every restart yields a new
//! process, and every old generation exits on its own.
//!
//! Lines that were in flight exactly when an old generation closed a
//! connection it saw as idle are counted separately as "EOF races" and
//! reported (the client cannot tell whether the server had received them).

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const RESTARTS: usize = 20;

#[test]
fn twenty_restarts_under_load_lose_nothing() {
    let dir = TempDir::new("rul");
    let server = Server::start(&echo_bin(), &dir, &["--stop-timeout", "10"]);
    let first = server.wait_serving(0, 1, T30).remove(0);
    let pid0 = server.wait_pid_file(T30);
    assert_eq!(pid0, first.pid, "pid file and serving line disagree");
    assert_eq!(pid0, server.first_pid);
    let target = first.target();

    let load = Load::start(target.clone(), LoadConfig::default());
    assert!(
        load.wait_successes(200, T30),
        "load did not get going: {} successes",
        load.successes()
    );

    let mut current = pid0;
    let mut new_pids = Vec::new();
    let mut ready_times = Vec::new();
    let mut watchers = Vec::new();
    let started = Instant::now();
    for i in 0..RESTARTS {
        let mark = server.mark();
        let t0 = Instant::now();
        server.signal(current, Signal::HUP);
        let new = server
            .wait_pid_file_change(current, T30)
            .unwrap_or_else(|e| panic!("restart {i}: {e}\n{}", server.diagnostics()));
        ready_times.push(t0.elapsed());
        let report = server
            .wait_line(mark, T10, |l| l.starts_with("restart "))
            .unwrap_or_else(|| {
                panic!(
                    "restart {i}: no `restart ...` line\n{}",
                    server.diagnostics()
                )
            });
        assert_eq!(
            report,
            format!("restart complete: successor pid {new}"),
            "restart {i}"
        );
        watchers.push((current, watch_gone(current, t0, T30)));
        new_pids.push(new);
        current = new;
        // The new generation must carry the load before the next restart.
        assert!(
            load.wait_progress(50, T10),
            "restart {i}: load stalled after successor {new} became ready ({} successes, {} failures)",
            load.successes(),
            load.failures()
        );
    }
    let restart_phase = started.elapsed();

    // Newest generation answers `pid` with its own pid.
    assert_eq!(
        ask_pid(&target),
        current,
        "newest generation does not answer with the pid-file pid"
    );

    let stats = load.stop();

    let mut gone_times = Vec::new();
    let mut not_gone = Vec::new();
    for (pid, h) in watchers {
        match h.join().expect("watcher thread") {
            Some(d) => gone_times.push(d),
            None => not_gone.push(pid),
        }
    }

    println!("restart under load: {RESTARTS} restarts in {restart_phase:?}");
    println!("  {stats}");
    println!(
        "  SIGHUP -> successor ready (pid file changed): {}",
        summarize(&ready_times)
    );
    println!("  SIGHUP -> old pid gone: {}", summarize(&gone_times));
    println!("  pids: {pid0} -> {new_pids:?}");

    stats.assert_no_failures("restart under load");
    assert!(stats.successes > 0);
    let distinct: BTreeSet<i32> = new_pids.iter().copied().chain([pid0]).collect();
    assert_eq!(new_pids.len(), RESTARTS);
    assert_eq!(
        distinct.len(),
        RESTARTS + 1,
        "pids repeated: {pid0} -> {new_pids:?}"
    );
    assert!(
        not_gone.is_empty(),
        "old generations still running 30 s after their restart: {not_gone:?}"
    );
    // Every generation announced itself.
    for p in &new_pids {
        server.wait_serving_pid(*p, Duration::from_secs(1));
    }
}
