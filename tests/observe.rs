//! What an operator sees, on real processes: `GET /metrics` (the generation
//! after restarts, a failed restart counted where it failed), `GET /readyz`,
//! and the shutdown delay (unready at once, still serving, then a drain; a
//! second SIGTERM ends the delay), in re-exec and supervisor mode.

#![cfg(all(
    feature = "tokio",
    feature = "hyper",
    feature = "tls",
    feature = "metrics"
))]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod external;
    pub mod http;
    pub mod observe;
    pub mod process;
    pub mod server;
}

use std::path::Path;
use std::time::{Duration, Instant};

use harness::client::{Reply, Target};
use harness::http::{HttpConn, Mode};
use harness::observe::{metrics, metrics_until, readiness_until, sample};
use harness::process::{Signal, T5, T10, T30};
use harness::server::{self, Server};

/// `GET path` on a new connection.
async fn get(target: &Target, path: &str) -> Result<Reply, String> {
    let mut conn = HttpConn::connect(target, Mode::NewConnection).await?;
    conn.get(path).await.map_err(|e| format!("GET {path}: {e}"))
}

/// Starts the demo (`--supervise` if `supervise`) with `args`; once it
/// serves, its first generation's listener.
fn start(program: &Path, dir: &Path, supervise: bool, args: &[&str]) -> (Server, Target) {
    let mut all = args.to_vec();
    if supervise {
        all.push("--supervise");
    }
    let mut server = Server::start(program, dir, &all);
    let target = Target::of(&server.wait_first_worker());
    (server, target)
}

/// The demo copied to `dir`, so that a test can replace the file later.
fn own_demo(dir: &Path) -> std::path::PathBuf {
    let program = dir.join("demo");
    std::fs::copy(server::example("demo"), &program).expect("copy the demo");
    program
}

/// Puts a build that exits at once at `program`'s path (renamed over it, as
/// a deploy does); generations already running keep their own file.
fn replace_with_a_bad_build(program: &Path) {
    let bad = program.with_extension("bad");
    std::fs::write(&bad, "#!/bin/sh\nexit 3\n").unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&bad, mode).unwrap();
    std::fs::rename(&bad, program).unwrap();
}

/// Five restarts, then one into a build that exits at once, in both modes:
/// the serving generation's `/metrics` (and `/readyz`) say generation 6,
/// five restarts ok (the service's count, carried across generations) and
/// one failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_generation_six_after_five_restarts_and_a_failed_restart_once() {
    for supervise in [false, true] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let program = own_demo(dir.path());
        let (server, target) = start(&program, dir.path(), supervise, &[]);
        let page = metrics(&target).await;
        assert_eq!(sample(&page, "handoff_generation"), Some(1.0), "{page}");
        assert_eq!(sample(&page, "handoff_ready"), Some(1.0), "{page}");

        let mut serving = server.first_pid;
        for n in 2..=6 {
            let r = server.restart(Signal::HUP);
            assert_eq!(r.old, serving);
            serving = r.new;
            // Ready once its driver runs, which may be just after its parent
            // named it in the pid file.
            let ready = readiness_until(&target, true).await;
            let want = format!("ready serving generation={n} pid={serving}");
            assert_eq!(ready, want, "after {} restarts", n - 1);
        }
        // The restart that made this generation, timed where it ran, is
        // recorded here (told by its parent, or by the supervisor).
        let took_ok = "handoff_restart_duration_seconds_count{result=\"ok\"}";
        let page = metrics_until(&target, |page| sample(page, took_ok) == Some(1.0)).await;
        assert_eq!(
            sample(&page, took_ok),
            Some(1.0),
            "supervise={supervise}\n{page}"
        );
        assert_eq!(sample(&page, "handoff_generation"), Some(6.0), "{page}");
        let ok = "handoff_restarts_total{result=\"ok\"}";
        assert_eq!(
            sample(&page, ok),
            Some(5.0),
            "supervise={supervise}\n{page}"
        );

        // A restart into a build that exits: the serving generation counts it.
        replace_with_a_bad_build(&program);
        let from = server.verdict_mark();
        server.signal_service(serving, Signal::HUP);
        let verdict = server.wait_verdict(from, T30, |_| true).unwrap();
        assert!(verdict.starts_with("restart failed"), "{verdict}");
        assert_eq!(get(&target, "/").await.unwrap().pid(), Some(serving));
        let failed = "handoff_restarts_total{result=\"failed\"}";
        let took = "handoff_restart_duration_seconds_count{result=\"failed\"}";
        // Under a supervisor, told after the verdict.
        let told =
            |page: &str| sample(page, failed) == Some(1.0) && sample(page, took) == Some(1.0);
        let page = metrics_until(&target, told).await;
        assert_eq!(
            sample(&page, failed),
            Some(1.0),
            "supervise={supervise}\n{page}"
        );
        assert_eq!(sample(&page, ok), Some(5.0), "{page}");
        assert_eq!(sample(&page, "handoff_generation"), Some(6.0), "{page}");
        assert_eq!(sample(&page, "handoff_ready"), Some(1.0), "{page}");
        assert_eq!(
            sample(&page, took),
            Some(1.0),
            "supervise={supervise}\n{page}"
        );
        // Its handle: the generation that ran the failed restart says so;
        // a supervised worker was not asked (the supervisor reported it).
        let last = if supervise {
            ""
        } else {
            " last-restart=failed"
        };
        let ready = readiness_until(&target, true).await;
        assert_eq!(
            ready,
            format!("ready serving generation=6 pid={serving}{last}")
        );
        println!(
            "supervise={supervise}: the serving generation's metrics after a failed restart:\n{page}"
        );
        server.terminate(serving);
    }
}

/// SIGTERM (to the generation, or the supervisor) with a shutdown delay:
/// `/readyz` turns 503, new connections are served by `worker` until the
/// drain, which comes no earlier than `delay` after the signal; what the
/// window looked like.
async fn shutdown_with_delay(server: &Server, target: &Target, worker: i32, delay: Duration) {
    readiness_until(target, true).await;
    let signalled = Instant::now();
    server.signal_service(worker, Signal::TERM);
    let unready = readiness_until(target, false).await;
    let unready_at = signalled.elapsed();
    assert!(unready.starts_with("unready shutting-down"), "{unready:?}");
    let mut served = 0u32;
    let mut last_served = Duration::ZERO;
    // A new connection every 20 ms until one is not answered (bounded).
    let stopped = loop {
        if signalled.elapsed() > T10 {
            panic!(
                "still served 10 s after SIGTERM with a {delay:?} delay\n{}",
                server.diagnostics()
            );
        }
        match get(target, "/").await {
            Ok(reply) if reply.status == 200 => {
                assert_eq!(reply.pid(), Some(worker), "{reply:?}");
                served += 1;
                last_served = signalled.elapsed();
            }
            Ok(reply) => panic!("{reply:?} during the shutdown delay"),
            Err(e) => break e,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let gone = server.wait_exit(worker, T10);
    assert!(
        gone.is_some(),
        "{worker} still runs\n{}",
        server.diagnostics()
    );
    let exited = signalled.elapsed();
    println!(
        "delay {delay:?}: unready {unready_at:?} after SIGTERM; {served} new connections \
         served, the last {last_served:?} after it; then {stopped}; exited {exited:?} after it"
    );
    assert!(served >= 5, "only {served} connections served in the delay");
    // The machine's own clock: no drain (so no exit) before the delay ran out.
    assert!(
        exited >= delay,
        "exited {exited:?} after SIGTERM: within the delay"
    );
    assert!(
        last_served >= delay / 2,
        "the last connection served {last_served:?} after SIGTERM, well before the {delay:?} delay ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_delay_serves_unready_then_drains() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args = ["--shutdown-delay", "1"];
    let (server, target) = start(&server::example("demo"), dir.path(), false, &args);
    shutdown_with_delay(&server, &target, server.first_pid, Duration::from_secs(1)).await;
    let status = server.wait_child_exit(T5).expect("reaped");
    assert!(status.success(), "{status}\n{}", server.diagnostics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_worker_waits_out_the_shutdown_delay_too() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args = ["--shutdown-delay", "1"];
    let (server, target) = start(&server::example("demo"), dir.path(), true, &args);
    // The generation goes on in the supervisor's count of workers.
    let r = server.restart(Signal::HUP);
    let ready = readiness_until(&target, true).await;
    assert_eq!(ready, format!("ready serving generation=2 pid={}", r.new));
    shutdown_with_delay(&server, &target, r.new, Duration::from_secs(1)).await;
    let status = server.wait_child_exit(T5).expect("the supervisor exits");
    assert!(status.success(), "{status}\n{}", server.diagnostics());
}

/// A second SIGTERM ends a 30 s delay at once, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_ends_the_delay() {
    for supervise in [false, true] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let args = ["--shutdown-delay", "30"];
        let (server, target) = start(&server::example("demo"), dir.path(), supervise, &args);
        let worker = server.first_pid;
        let signalled = Instant::now();
        server.signal_service(worker, Signal::TERM);
        readiness_until(&target, false).await;
        assert_eq!(get(&target, "/").await.unwrap().pid(), Some(worker));
        server.signal_service(worker, Signal::TERM);
        assert!(server.wait_exit(worker, T10).is_some());
        let status = server.wait_child_exit(T10).expect("exits");
        let took = signalled.elapsed();
        assert!(status.success(), "{status}\n{}", server.diagnostics());
        assert!(
            took < Duration::from_secs(20),
            "supervise={supervise}: {took:?} to stop with a second SIGTERM"
        );
        println!("supervise={supervise}: stopped {took:?} after the first SIGTERM");
    }
}

/// What a drain counted reaches the generation that serves next (re-exec:
/// from the old generation over the handover channel; supervised: through
/// the supervisor), with the restart counted ok there too: two idle
/// keep-alive connections closed idle (once idle for the 1 s idle grace), a
/// 300 ms request drained, a 10 s one hammered at the 2 s stop timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_generation_shows_what_the_last_drain_counted() {
    for supervise in [false, true] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let args = ["--stop-timeout", "2"];
        let (server, target) = start(&server::example("demo"), dir.path(), supervise, &args);
        let mut idle = Vec::new();
        for _ in 0..2 {
            let mut conn = HttpConn::connect(&target, Mode::KeepAlive).await.unwrap();
            assert_eq!(conn.get("/").await.unwrap().status, 200);
            idle.push(conn);
        }
        let slow = tokio::spawn({
            let target = target.clone();
            async move { get(&target, "/sleep?duration=300ms").await }
        });
        let cut = tokio::spawn({
            let target = target.clone();
            async move { get(&target, "/sleep?duration=10s").await }
        });
        // Both sleeps (and this scrape) in flight.
        let start = Instant::now();
        while sample(&metrics(&target).await, "handoff_requests_in_flight") < Some(3.0) {
            assert!(start.elapsed() < T5, "{}", server.diagnostics());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = server.restart(Signal::HUP);
        assert!(server.wait_exit(r.old, T10).is_some() || !supervise);
        server.expect_gone(r.old, T10);
        assert_eq!(slow.await.unwrap().map(|r| r.status), Ok(200));
        assert!(
            cut.await.unwrap().is_err(),
            "the 10 s request outlived the stop timeout"
        );
        let want = [
            ("handoff_restarts_total{result=\"ok\"}", 1.0),
            ("handoff_connections_closed_idle_total", 2.0),
            ("handoff_connections_drained_total", 1.0),
            ("handoff_connections_hammered_total", 1.0),
            ("handoff_generation", 2.0),
        ];
        let seen = |page: &str| want.iter().all(|(name, n)| sample(page, name) >= Some(*n));
        let page = metrics_until(&target, seen).await;
        for (name, n) in want {
            assert_eq!(
                sample(&page, name),
                Some(n),
                "supervise={supervise}: {name}\n{page}"
            );
        }
        drop(idle);
        server.terminate(r.new);
    }
}

/// A client nobody here wrote, Python's `http.client` (never retries), POSTs
/// bodies to `/echo` on keep-alive connections through the shutdown delay
/// (the only generation: it serves on, unready): not one fails, every body
/// comes back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pythons_http_client_sees_no_failure_during_the_shutdown_delay() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args = ["--shutdown-delay", "3"];
    let (server, target) = start(&server::example("demo"), dir.path(), false, &args);
    let signalled = Instant::now();
    server.signal(server.first_pid, Signal::TERM);
    readiness_until(&target, false).await;
    let python = harness::external::python(
        target.socket_addr(),
        1,
        &[
            "--method",
            "POST",
            "--path",
            "/echo",
            "--sizes",
            "10,5120",
            "--requests",
            "100000",
            "--threads",
            "2",
            "--echo",
        ],
    );
    let out = tokio::task::spawn_blocking(move || python.finish(T10))
        .await
        .unwrap();
    let counts = harness::external::PythonCounts::parse(&out);
    println!("http.client during the delay: {}", counts.line);
    assert_eq!(counts.failed, 0, "{}", counts.line);
    assert!(counts.ok > 10, "{}", counts.line);
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "the delay ran out meanwhile"
    );
    let status = server.wait_child_exit(T10).expect("exits after the delay");
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() >= Duration::from_secs(3));
}
