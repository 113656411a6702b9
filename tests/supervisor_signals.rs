//! The signals a supervisor does not act on itself (SIGUSR1, SIGQUIT,
//! SIGWINCH: log reopening, a dump, ...) reach the serving worker, once
//! each, and change nothing else: the same worker serves on, and SIGTERM
//! then stops the service with status 0.
//!
//! The supervisor and its worker are this test binary again
//! ([`forward_probe`]): the supervisor starts its worker from the same
//! executable and arguments, and the worker reports each signal it gets.

#![cfg(feature = "tokio")]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod lines;
    pub mod process;
}

use std::path::Path;
use std::time::Duration;

use handoff::{DrainGroup, Handoff, Launch};
use harness::lines;
use harness::process::{self, Signal, T10, T30};
use tokio::signal::unix::{SignalKind, signal};

/// The signals forwarded, as the worker names them.
const FORWARDED: [(Signal, &str); 3] = [
    (Signal::USR1, "SIGUSR1"),
    (Signal::QUIT, "SIGQUIT"),
    (Signal::WINCH, "SIGWINCH"),
];

/// Run as a child of [`forwarded_signals_reach_the_serving_worker_once`]:
/// the supervisor there, its worker here (started again by the supervisor).
#[test]
fn forward_probe() {
    let Some(pid_file) = std::env::var_os("HANDOFF_FORWARD_PROBE") else {
        return;
    };
    let launched = Handoff::builder()
        .supervise(true)
        .pid_file(Path::new(&pid_file))
        .stop_timeout(Duration::from_secs(5))
        .kill_timeout(Duration::from_secs(5))
        .launch()
        .expect("launch");
    let handoff = match launched {
        Launch::Supervised(exit) => {
            assert!(exit.success(), "the supervisor: {:?}", exit.reason());
            return;
        }
        Launch::Worker(handoff) => handoff,
    };
    let mut handoff = handoff;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let _listener: std::net::TcpListener = handoff.listen("main", "127.0.0.1:0").unwrap();
        let pid = std::process::id();
        for (signal_number, name) in FORWARDED {
            let mut signals = signal(SignalKind::from_raw(signal_number.as_raw())).unwrap();
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    println!("worker {pid} got {name}");
                }
            });
        }
        println!("worker {pid} runs");
        let exit = handoff.run(handoff::tokio::Tokio, DrainGroup::new()).await;
        println!("worker {pid} done: {exit:?}");
    });
}

#[test]
fn forwarded_signals_reach_the_serving_worker_once() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("service.pid");
    let (mut supervisor, lines) = lines::start_probe(
        "forward_probe",
        &[("HANDOFF_FORWARD_PROBE", pid_file.as_os_str())],
    );
    let supervisor_pid = supervisor.0.id() as i32;
    // What the worker printed, from `worker ` on.
    let wait_line =
        |within, is: &dyn Fn(&str) -> bool| lines::next_line(&lines, within, "worker ", is);

    let runs = wait_line(T30, &|l| l.ends_with(" runs"));
    let worker: i32 = runs.split_whitespace().nth(1).unwrap().parse().unwrap();
    // The supervisor writes the pid file once the worker said ready: from
    // then on it is the serving worker.
    let named = process::poll_until(T10, Duration::from_millis(5), || {
        let text = std::fs::read_to_string(&pid_file).ok()?;
        text.trim().parse::<i32>().ok()
    });
    assert_eq!(
        named,
        Some(supervisor_pid),
        "the pid file names the supervisor"
    );

    for (signal, name) in FORWARDED {
        process::kill(supervisor_pid, signal).unwrap();
        let got = wait_line(T10, &|l| l.contains(" got "));
        assert_eq!(
            got,
            format!("worker {worker} got {name}"),
            "{signal:?} forwarded once"
        );
    }
    // Nothing else happened: the same worker, which got each signal once,
    // serves on; SIGTERM stops the service cleanly.
    process::kill(supervisor_pid, Signal::TERM).unwrap();
    let done = wait_line(T10, &|l| l.contains(" got ") || l.contains(" done: "));
    assert_eq!(done, format!("worker {worker} done: Ok(Shutdown)"));
    let status = supervisor.wait_exit(T10).expect("the supervisor exits");
    assert!(status.success(), "{status:?}");
    assert!(
        process::wait_gone(worker, T10),
        "worker {worker} outlived the supervisor"
    );
}
