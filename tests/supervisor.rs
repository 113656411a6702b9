//! Supervisor mode with real processes, beyond the conformance suite's
//! supervised flavours: as PID 1 of a PID namespace, a crash loop, and a
//! shutdown with a request in flight.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod lines;
    pub mod notify;
    pub mod process;
    pub mod server;
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::lines;
use harness::process::{self, Reaped, Signal, T10, T30};
use harness::server::example;

/// `GET path` on a new connection (10 s at most): status and body.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, T10)?;
    stream.set_read_timeout(Some(T10))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((status, body))
}

fn pid_in(body: &str) -> Option<i32> {
    body.rsplit("pid=").next()?.trim().parse().ok()
}

/// A supervised demo started with `wrap` before it (e.g. `unshare ...`):
/// the child, and its stdout lines arriving on a channel.
fn start(wrap: &[&str], args: &[&str]) -> (Reaped, mpsc::Receiver<String>, tempfile::TempDir) {
    start_in(tempfile::tempdir().unwrap(), wrap, args, |_| {})
}

fn start_in(
    dir: tempfile::TempDir,
    wrap: &[&str],
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> (Reaped, mpsc::Receiver<String>, tempfile::TempDir) {
    let bin = example("demo");
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(&bin);
            cmd
        }
        None => Command::new(&bin),
    };
    cmd.args(["--supervise", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap());
    configure(&mut cmd);
    let (child, rx) = lines::spawn_with_lines(&mut cmd);
    (child, rx, dir)
}

fn serving_addr(lines: &mpsc::Receiver<String>) -> SocketAddr {
    let line = lines.recv_timeout(T30).expect("a serving line");
    let url = line
        .strip_prefix("serving http://")
        .unwrap_or_else(|| panic!("not a serving line: {line}"));
    url.split_whitespace().next().unwrap().parse().unwrap()
}

fn stderr(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
}

#[test]
fn as_pid_1_of_a_pid_namespace_restarts_work_and_no_zombie_is_left() {
    let wrap = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
    let (mut unshare, lines, dir) = start(&wrap, &[]);
    let addr = serving_addr(&lines);
    // The supervisor: unshare's child (pid 1 inside).
    let supervisor = process::poll_until(T10, Duration::from_millis(10), || {
        process::children_of(unshare.0.id() as i32).first().copied()
    })
    .expect("unshare's child");
    assert!(
        stderr(&dir).contains("supervising pid=1"),
        "{}",
        stderr(&dir)
    );
    let mut seen = vec![pid_in(&get(addr, "/").unwrap().1).unwrap()];
    for restarts in 1..=3 {
        process::kill(supervisor, Signal::HUP).unwrap();
        if lines.recv_timeout(T30).is_err() {
            panic!("no new worker serves\n{}", stderr(&dir));
        }
        let next = process::poll_until(T10, Duration::from_millis(20), || {
            let pid = pid_in(&get(addr, "/").ok()?.1)?;
            (!seen.contains(&pid)).then_some(pid)
        })
        .expect("a new worker answers");
        seen.push(next);
        // The next SIGHUP only once this restart is done: one that comes
        // while it is in flight (the new worker may answer before the
        // supervisor has its ready message) joins it.
        let done = process::poll_until(T10, Duration::from_millis(10), || {
            let n = stderr(&dir).matches("restart complete").count();
            (n >= restarts).then_some(())
        });
        assert!(
            done.is_some(),
            "restart {restarts} never done\n{}",
            stderr(&dir)
        );
    }
    // Every worker that drained was reaped: the supervisor's only child is
    // the serving worker, and nothing in the namespace is a zombie.
    let settled = process::poll_until(T10, Duration::from_millis(20), || {
        let children = process::children_of(supervisor);
        let zombies = children
            .iter()
            .filter(|&&c| process::proc_stat(c).is_some_and(|s| s.state == 'Z'))
            .count();
        (children.len() == 1 && zombies == 0).then_some(())
    });
    assert!(
        settled.is_some(),
        "children of the supervisor: {:?}",
        process::children_of(supervisor)
            .iter()
            .map(|&c| (c, process::proc_stat(c)))
            .collect::<Vec<_>>()
    );
    process::kill(supervisor, Signal::TERM).unwrap();
    let status = unshare.wait_exit(T30).expect("the namespace ended");
    assert!(status.success(), "{status:?}\n{}", stderr(&dir));
    println!("PID 1: workers {seen:?} (namespace pids), no zombie, exit {status}");
}

#[test]
fn a_crash_loop_is_bounded_and_reported() {
    // Every worker fails before it is ready: its certificate is missing.
    let args = [
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ];
    let (mut supervisor, _lines, dir) = start(&[], &args);
    let started = Instant::now();
    // 10 workers, backoffs 0.1 + 0.2 + ... + 6.4 + 10 + 10 s: about 33 s.
    let status = supervisor
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("still looping after 60 s\n{}", stderr(&dir)));
    let took = started.elapsed();
    let log = stderr(&dir);
    assert_eq!(status.code(), Some(1), "{log}");
    let replaced = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("worker failed before it was ready"))
        .count();
    assert_eq!(replaced, 10, "workers started: {replaced}\n{log}");
    let reason = log
        .lines()
        .find(|l| l.starts_with("demo: supervisor:"))
        .unwrap_or_else(|| panic!("no reason given\n{log}"));
    assert!(reason.contains("10"), "{reason}");
    println!("crash loop: gave up after {took:?}: {reason}");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_everything_exits() {
    let (mut supervisor, lines, dir) = start(&[], &["--stop-timeout", "5", "--kill-timeout", "5"]);
    let addr = serving_addr(&lines);
    let worker = pid_in(&get(addr, "/").unwrap().1).unwrap();
    let slow = std::thread::spawn(move || get(addr, "/sleep?duration=1s"));
    // The worker printed that it started sleeping.
    let deadline = Instant::now() + T10;
    while !matches!(lines.recv_timeout(T10), Ok(l) if l.starts_with("sleeping 1s")) {
        assert!(Instant::now() < deadline, "the slow request never started");
    }
    let signalled = Instant::now();
    process::kill(supervisor.0.id() as i32, Signal::TERM).unwrap();
    let (status, body) = slow.join().unwrap().expect("the slow request");
    assert_eq!((status, pid_in(&body)), (200, Some(worker)), "{body}");
    let exit = supervisor
        .wait_exit(Duration::from_secs(13))
        .expect("the supervisor exits");
    assert!(exit.success(), "{exit:?}\n{}", stderr(&dir));
    assert!(process::wait_gone(worker, T10), "the worker is still there");
    println!(
        "SIGTERM: the 1 s request completed; all gone {:?} after the signal",
        signalled.elapsed()
    );
}

#[test]
fn only_the_supervisor_talks_to_the_service_manager_and_the_pid_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let notify = harness::notify::NotifySocket::bind(dir.path());
    let pid_file = dir.path().join("server.pid");
    let args = ["--pid-file", pid_file.to_str().unwrap()];
    let (mut supervisor, lines, _dir) = start_in(dir, &[], &args, |cmd| notify.pass_to(cmd));
    let sup = supervisor.0.id() as i32;
    let addr = serving_addr(&lines);
    let ready = |from| {
        notify
            .wait_for(from, |d| d.get("READY") == Some("1"), T10)
            .unwrap_or_else(|| panic!("no READY=1: {:?}", notify.received()))
    };
    let first = ready(0);
    assert_eq!(
        first.get("MAINPID"),
        Some(sup.to_string().as_str()),
        "{first:?}"
    );
    let mark = notify.mark();
    process::kill(sup, Signal::HUP).unwrap();
    let reloading = notify
        .wait_for(mark, |d| d.get("RELOADING") == Some("1"), T10)
        .expect("RELOADING=1");
    assert!(
        reloading
            .get("MONOTONIC_USEC")
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "{reloading:?}"
    );
    serving_addr(&lines);
    let again = ready(mark);
    assert_eq!(
        again.get("MAINPID"),
        Some(sup.to_string().as_str()),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        sup.to_string(),
        "the pid file names the supervisor"
    );
    let _ = get(addr, "/").unwrap();
    let mark = notify.mark();
    process::kill(sup, Signal::TERM).unwrap();
    notify
        .wait_for(mark, |d| d.get("STOPPING") == Some("1"), T10)
        .expect("STOPPING=1");
    assert!(supervisor.wait_exit(T30).is_some_and(|s| s.success()));
    let strangers: Vec<_> = notify
        .received()
        .into_iter()
        .filter(|d| d.sender != sup)
        .collect();
    assert!(
        strangers.is_empty(),
        "workers spoke to the service manager: {strangers:?}"
    );
    assert!(!pid_file.exists(), "the pid file outlived the service");
}

#[test]
fn a_restart_signal_to_a_worker_is_asked_of_the_supervisor() {
    let (mut supervisor, lines, dir) = start(&[], &[]);
    let addr = serving_addr(&lines);
    let worker = pid_in(&get(addr, "/").unwrap().1).unwrap();
    process::kill(worker, Signal::HUP).unwrap();
    let next = serving_addr(&lines);
    assert_eq!(next, addr);
    let answer = lines
        .recv_timeout(T10)
        .expect("the worker hears the answer");
    let new = answer
        .strip_prefix("restart complete: successor pid ")
        .and_then(|p| p.parse::<i32>().ok())
        .unwrap_or_else(|| panic!("{answer}\n{}", stderr(&dir)));
    assert!(
        process::wait_gone(worker, T10),
        "the old worker did not drain"
    );
    assert_eq!(pid_in(&get(addr, "/").unwrap().1), Some(new));
    assert_eq!(
        process::proc_stat(new).map(|s| s.ppid),
        Some(supervisor.0.id() as i32),
        "the new worker is the supervisor's child"
    );
    process::kill(supervisor.0.id() as i32, Signal::TERM).unwrap();
    assert!(supervisor.wait_exit(T30).is_some_and(|s| s.success()));
}
