//! The handover variables and descriptors do not leak into processes the
//! application spawns: a real successor (this test binary started again by
//! handoff) spawns a shell that reports its environment and open descriptors.
//!
//! Runs without the libtest harness because the same binary plays both
//! generations: without arguments it is the old generation, with
//! `--successor REPORT` the new one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use handoff::{DrainGroup, ExitReason, Handoff};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("--successor") => successor(Path::new(&args[2])),
        _ => old_generation(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("no_leak: {e}");
            println!("no_leak: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The successor: takes its sockets, spawns a shell that writes what it sees,
/// says ready, then shuts down when asked (SIGTERM).
fn successor(report: &Path) -> Result<(), String> {
    let mut handoff = Handoff::builder().build().map_err(|e| e.to_string())?;
    runtime().block_on(async {
        let _l: tokio::net::TcpListener = handoff
            .listen("main", "127.0.0.1:0")
            .map_err(|e| e.to_string())?;
        report_what_a_child_sees(report)?;
        handoff
            .run(handoff::tokio::Tokio, DrainGroup::new())
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Spawns a shell that writes the handover variables and the descriptors it
/// has to `report`.
fn report_what_a_child_sees(report: &Path) -> Result<(), String> {
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(
            "env | grep -E '^(LISTEN_|HANDOFF_)' ; \
             for fd in /proc/$$/fd/*; do echo \"fd ${fd##*/}\"; done",
        )
        .stdout(std::fs::File::create(report).map_err(|e| e.to_string())?)
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("reporting shell failed: {status}"))
    }
}

fn parse_report(text: &str) -> (Vec<String>, Vec<u32>) {
    let vars = text
        .lines()
        .filter(|l| !l.starts_with("fd "))
        .map(str::to_owned)
        .collect();
    let mut fds: Vec<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("fd ")?.parse().ok())
        .collect();
    fds.sort_unstable();
    (vars, fds)
}

fn old_generation() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let report: PathBuf = dir.path().join("report");
    // What any child of this process sees anyway (descriptors the test runner
    // itself passed down), before handoff opens anything.
    let baseline_path = dir.path().join("baseline");
    report_what_a_child_sees(&baseline_path)?;
    let baseline = std::fs::read_to_string(&baseline_path).map_err(|e| e.to_string())?;
    let (_, baseline_fds) = parse_report(&baseline);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut handoff = Handoff::builder()
        .restart_signals(&[])
        .shutdown_signals(&[])
        .executable(&exe)
        .args([exe.as_os_str(), "--successor".as_ref(), report.as_os_str()])
        .ready_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let successor = runtime().block_on(async {
        let _l: tokio::net::TcpListener = handoff
            .listen("main", "127.0.0.1:0")
            .map_err(|e| e.to_string())?;
        let handle = handoff.handle();
        let driver = tokio::spawn(handoff.run(handoff::tokio::Tokio, DrainGroup::new()));
        let successor = handle.restart().await.map_err(|e| e.to_string())?;
        match driver.await.map_err(|e| e.to_string())? {
            Ok(ExitReason::HandedOver { successor: s }) if s == successor => Ok(successor),
            other => Err(format!("old generation ended with {other:?}")),
        }
    })?;
    let pid = rustix::process::Pid::from_raw(successor as i32).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);

    let text = std::fs::read_to_string(&report).map_err(|e| e.to_string())?;
    let (leaked, fds) = parse_report(&text);
    println!(
        "no_leak: a process spawned by the successor saw variables {leaked:?} and descriptors \
         {fds:?}; one spawned before any handover saw {baseline_fds:?}"
    );
    if !leaked.is_empty() {
        return Err(format!("handover variables leaked: {leaked:?}"));
    }
    if fds != baseline_fds {
        return Err(format!(
            "descriptors leaked into a spawned process: {fds:?}, expected {baseline_fds:?}"
        ));
    }
    println!("no_leak: 1 passed, 0 failed");
    Ok(())
}
