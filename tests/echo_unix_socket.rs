//! Guarantee: Unix-socket listeners survive restarts like TCP ones. With
//! `--listen unix:PATH`, 5 restarts under load lose nothing (no failed
//! connect, reset or wrong echo); the socket path exists and is a socket at
//! every moment, including after every old generation has exited (an old
//! generation must not unlink the path its successor serves); the newest
//! generation answers on it; SIGTERM then ends the server, and a cold start
//! on the same path works again.

mod common;

use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const RESTARTS: usize = 5;

#[test]
fn unix_socket_restarts_under_load() {
    let dir = TempDir::new("ux");
    let sock = dir.join("echo.sock");
    let listen = format!("unix:{}", sock.display());
    let server = Server::start(
        &echo_bin(),
        &dir,
        &["--listen", &listen, "--stop-timeout", "10"],
    );
    let serving = server.wait_serving(0, 1, T30).remove(0);
    assert_eq!(
        serving.url,
        format!("unix://{}", sock.display()),
        "serving line for a Unix listener"
    );
    let target = serving.target();
    assert_eq!(target, Target::Unix(sock.clone()));
    let pid0 = server.wait_pid_file(T30);
    assert!(is_socket(&sock), "{} is not a socket", sock.display());

    // Watch the path for the whole restart phase (bounded: 120 s).
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (sock, stop) = (sock.clone(), stop_watch.clone());
        thread::spawn(move || {
            let (mut checks, mut missing) = (0u64, 0u64);
            let end = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                checks += 1;
                if !is_socket(&sock) {
                    missing += 1;
                }
                thread::sleep(Duration::from_millis(1));
            }
            (checks, missing)
        })
    };

    let load = Load::start(target.clone(), LoadConfig::default());
    assert!(load.wait_successes(200, T30), "load did not get going");

    let mut olds = Vec::new();
    let mut ready = Vec::new();
    let mut current = pid0;
    for i in 0..RESTARTS {
        let (old, new, took) = server.restart(Signal::HUP, T30);
        assert_eq!(old, current);
        ready.push(took);
        olds.push(old);
        assert!(
            load.wait_progress(50, T10),
            "restart {i}: load stalled after successor {new} became ready"
        );
        current = new;
    }
    for old in &olds {
        assert!(
            server.wait_exit(*old, T30),
            "old generation {old} did not exit"
        );
    }
    // After every old generation is gone, the path is still there and served.
    assert!(
        is_socket(&sock),
        "socket path gone after the old generations exited"
    );
    assert_eq!(
        ask_pid(&target),
        current,
        "newest generation not reachable on the socket path"
    );
    assert!(
        load.wait_progress(50, T10),
        "load stalled after the old generations exited"
    );

    let stats = load.stop();
    stop_watch.store(true, Ordering::Relaxed);
    let (checks, missing) = watcher.join().expect("watcher");

    let t0 = Instant::now();
    server.signal(current, Signal::TERM);
    let exited = server.wait_exit(current, T10);
    let exit_took = t0.elapsed();

    println!("unix socket: {RESTARTS} restarts {pid0} -> ... -> {current}");
    println!("  {stats}");
    println!("  SIGHUP -> successor ready: {}", summarize(&ready));
    println!("  path checks: {checks}, missing/not a socket: {missing}");
    println!(
        "  SIGTERM: exited={exited} after {exit_took:?}; socket path after shutdown: {}",
        if sock.exists() {
            "still present"
        } else {
            "removed"
        }
    );

    stats.assert_no_failures("unix socket restarts");
    assert_eq!(
        missing, 0,
        "socket path missing during {missing} of {checks} checks"
    );
    assert!(
        exited,
        "newest generation {current} still running 10 s after SIGTERM"
    );

    // A cold start on the same path (e.g. a service restarted without socket
    // activation) must work whether or not the previous run left the socket
    // file behind.
    let again = Server::start(&echo_bin(), &dir, &["--listen", &listen]);
    match again.wait_serving_or_exit(T10) {
        Startup::Serving(s) => {
            assert_eq!(s.target(), target);
            assert_eq!(
                ask_pid(&target),
                again.first_pid,
                "cold start on the same path not reachable"
            );
            println!(
                "  cold start on the same path: serving again with pid {}",
                again.first_pid
            );
        }
        other => panic!(
            "cold start on the socket path left by the previous run failed: {other:?}\n{}",
            again.diagnostics()
        ),
    }
}
