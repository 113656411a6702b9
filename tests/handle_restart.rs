//! `Handle::restart()` and `Handle::shutdown()` with this test process as the
//! running generation and real successor processes: a successor that follows
//! docs/PROTOCOL.md (written in Python, so the protocol text alone is enough
//! to interoperate), and bad successors (missing, not executable, exits, hangs,
//! refused by the before-spawn hook). The error reaches the caller, this
//! generation serves on, and a later restart works.
//!
//! And how `Handoff::run` ends and what it survives: a successor that dies
//! right after it said ready hands the listeners back; the kill timeout is
//! returned, not exited; a shutdown signal that arrives between `build()` and
//! `run()` is acted on once `run()` starts.

#![cfg(feature = "tokio")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handoff::{DrainGroup, Error, ExitReason, Handoff, Signal};

/// A successor written from docs/PROTOCOL.md: checks the variables, reads its
/// identity, says ready, then answers every connection on fd 3 with its pid.
const PROTOCOL_SUCCESSOR: &str = r#"#!/usr/bin/env python3
import os, socket, signal, sys
assert os.environ["HANDOFF_PROTOCOL"] == "1"
assert os.environ["LISTEN_FDS"] == "1", os.environ["LISTEN_FDS"]
assert os.environ["LISTEN_FDNAMES"] == "main"
assert "LISTEN_PID" not in os.environ
# This test process is generation 1.
assert os.environ["HANDOFF_GENERATION"] == "2", os.environ["HANDOFF_GENERATION"]
channel = socket.socket(fileno=int(os.environ["HANDOFF_CHANNEL_FD"]))
identity = b""
while not identity.endswith(b"\n"):
    identity += channel.recv(32)
assert int(identity) == os.getpid(), identity
listener = socket.socket(fileno=3)
# O_NONBLOCK is shared with the parent's copy of the socket: set the mode we want.
listener.setblocking(True)
assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
channel.send(b"R")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    conn, _ = listener.accept()
    request = b""
    while not request.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            break
        request += chunk
    conn.sendall(b"pid=%d\n" % os.getpid())
    conn.close()
"#;

/// Says ready as docs/PROTOCOL.md asks, then dies: a build that fails on its
/// first real work.
const DIES_AFTER_READY: &str = r#"#!/usr/bin/env python3
import os, socket, time
channel = socket.socket(fileno=int(os.environ["HANDOFF_CHANNEL_FD"]))
identity = b""
while not identity.endswith(b"\n"):
    identity += channel.recv(32)
channel.send(b"R")
time.sleep(0.1)
os._exit(7)
"#;

fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn ask_pid(port: u16) -> u32 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"pid\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim().strip_prefix("pid=").unwrap().parse().unwrap()
}

/// Answers `pid=<own pid>` on every connection, through the core's accept
/// loop (which pauses while draining and resumes).
fn serve_pid(listener: TcpListener, group: DrainGroup) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let accepting = group.clone();
    tokio::spawn(async move {
        accepting
            .accept_loop(&handoff::tokio::Tokio, listener, |stream, tracked| {
                tokio::spawn(async move {
                    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
                    let mut stream = tokio::io::BufReader::new(stream);
                    let mut request = String::new();
                    let _ = stream.read_line(&mut request).await;
                    let reply = format!("pid={}\n", std::process::id());
                    let _ = stream.get_mut().write_all(reply.as_bytes()).await;
                    drop(tracked);
                });
            })
            .await
    });
}

fn generation(executable: &Path) -> Handoff {
    let mut handoff = Handoff::builder()
        .restart_signals(&[])
        .shutdown_signals(&[])
        .executable(executable)
        .args(["successor"])
        .ready_timeout(Duration::from_secs(2))
        .stop_timeout(Duration::from_secs(5))
        .kill_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let _listener: TcpListener = handoff.listen("main", "127.0.0.1:0").unwrap();
    handoff
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_successors_are_reported_and_this_generation_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("server");
    let handoff = generation(&exe);
    let handle = handoff.handle();
    let group = DrainGroup::new();
    let driver = tokio::spawn(handoff.run(handoff::tokio::Tokio, group.clone()));

    // Missing file.
    let err = handle.restart().await.unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err}");
    assert!(err.to_string().contains(exe.to_str().unwrap()), "{err}");

    // Not executable.
    script(dir.path(), "server", "#!/bin/sh\nexit 0\n", 0o644);
    let err = handle.restart().await.unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err}");

    // Exits before ready.
    script(dir.path(), "server", "#!/bin/sh\nexit 3\n", 0o755);
    let err = handle.restart().await.unwrap_err();
    assert!(
        matches!(&err, Error::SuccessorExited { status, .. } if status == "exit status 3"),
        "{err}"
    );

    // Hangs: killed at the ready timeout, and reaped (the error names its pid
    // and /proc no longer has it).
    script(dir.path(), "server", "#!/bin/sh\nexec sleep 1000\n", 0o755);
    let err = handle.restart().await.unwrap_err();
    let Error::ReadyTimeout { pid, .. } = err else {
        panic!("{err}")
    };
    wait_gone(pid);

    assert!(
        !driver.is_finished(),
        "the driver must serve on after failures"
    );
    handle.shutdown();
    let reason = driver.await.unwrap().unwrap();
    assert_eq!(reason, ExitReason::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_successor_takes_over_and_this_generation_drains() {
    let dir = tempfile::tempdir().unwrap();
    let exe = script(dir.path(), "server", PROTOCOL_SUCCESSOR, 0o755);
    let mut handoff = Handoff::builder()
        .restart_signals(&[])
        .shutdown_signals(&[])
        .executable(&exe)
        .args(["successor"])
        .ready_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let listener: TcpListener = handoff.listen("main", "127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let group = DrainGroup::new();
    serve_pid(listener, group.clone());
    assert_eq!(ask_pid(port), std::process::id());

    let handle = handoff.handle();
    let driver = tokio::spawn(handoff.run(handoff::tokio::Tokio, group.clone()));
    // Two concurrent requests share one upgrade.
    let (a, b) = tokio::join!(handle.restart(), handle.restart());
    let successor = a.unwrap();
    assert_eq!(b.unwrap(), successor);
    assert_ne!(successor, std::process::id());

    let reason = driver.await.unwrap().unwrap();
    assert_eq!(reason, ExitReason::HandedOver { successor });
    assert!(group.is_draining());
    // The same port is now served by the successor.
    let answered = tokio::task::spawn_blocking(move || ask_pid(port))
        .await
        .unwrap();
    assert_eq!(answered, successor);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(successor as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    wait_gone(successor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_before_spawn_hook_can_refuse_a_restart() {
    let mut handoff = Handoff::builder()
        .restart_signals(&[])
        .shutdown_signals(&[])
        .executable("/bin/true")
        .before_spawn(|| Err("maintenance window".into()))
        .build()
        .unwrap();
    let _listener: TcpListener = handoff.listen("main", "127.0.0.1:0").unwrap();
    let handle = handoff.handle();
    let driver = tokio::spawn(handoff.run(handoff::tokio::Tokio, DrainGroup::new()));
    let err = handle.restart().await.unwrap_err();
    assert!(err.to_string().contains("maintenance window"), "{err}");
    handle.shutdown();
    assert_eq!(driver.await.unwrap().unwrap(), ExitReason::Shutdown);
    assert!(matches!(handle.restart().await, Err(Error::DriverGone)));
}

/// Waits until `pid` no longer exists (reaped by the child watcher).
fn wait_gone(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} was not reaped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_that_dies_after_ready_hands_the_listeners_back() {
    let dir = tempfile::tempdir().unwrap();
    let exe = script(dir.path(), "server", DIES_AFTER_READY, 0o755);
    let pid_file = dir.path().join("server.pid");
    let results = Arc::new(Mutex::new(Vec::new()));
    let seen = results.clone();
    let mut handoff = Handoff::builder()
        .restart_signals(&[])
        .shutdown_signals(&[])
        .executable(&exe)
        .args(["successor"])
        .pid_file(&pid_file)
        .ready_timeout(Duration::from_secs(10))
        .stop_timeout(Duration::from_secs(30))
        .on_restart(move |result| seen.lock().unwrap().push(result.clone()))
        .build()
        .unwrap();
    let listener: TcpListener = handoff.listen("main", "127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let group = DrainGroup::new();
    serve_pid(listener, group.clone());
    let own = std::process::id();

    // Work in flight keeps this generation draining after the handover.
    let in_flight = group.track();
    let handle = handoff.handle();
    let driver = tokio::spawn(handoff.run(handoff::tokio::Tokio, group.clone()));
    assert!(handle.last_restart().is_none(), "no restart yet");
    let successor = handle.restart().await.expect("the successor said ready");
    assert!(group.is_draining());
    assert!(matches!(handle.last_restart(), Some(Ok(pid)) if pid == successor));

    // It dies; this generation takes the listeners back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while results.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "no report of the lost successor");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reported = results.lock().unwrap().clone();
    assert!(
        matches!(reported[0], Ok(pid) if pid == successor),
        "{reported:?}"
    );
    assert!(
        matches!(&reported[1], Err(Error::SuccessorLost { pid, status })
            if *pid == successor && status == "exit status 7"),
        "{reported:?}"
    );
    assert!(!group.is_draining(), "accepting again");
    // The handle says so too, and this generation serves again.
    assert!(
        matches!(handle.last_restart(), Some(Err(Error::SuccessorLost { pid, .. })) if pid == successor),
        "{:?}",
        handle.last_restart()
    );
    assert_eq!(handle.state(), handoff::State::Serving);
    let answered = tokio::task::spawn_blocking(move || ask_pid(port))
        .await
        .unwrap();
    assert_eq!(answered, own);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        own.to_string(),
        "the pid file names this generation again"
    );
    assert!(
        in_flight.is_draining(),
        "work told to wrap up before the take-back still wraps up"
    );
    drop(in_flight);
    assert!(!driver.is_finished(), "serving on, not exiting");

    // A later restart works (and fails the same way here: the script dies
    // again), and shutdown still drains.
    assert!(handle.restart().await.is_ok());
    handle.shutdown();
    let reason = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("run() did not return after the shutdown")
        .unwrap()
        .unwrap();
    // The second successor may have died before the shutdown (then this
    // generation serves again and shuts down) or after (it had handed over).
    assert!(
        matches!(reason, ExitReason::Shutdown | ExitReason::HandedOver { .. }),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_timeout_is_returned_not_exited() {
    let handoff = Handoff::builder()
        .restart_signals(&[])
        .shutdown_signals(&[])
        .stop_timeout(Duration::from_millis(100))
        .kill_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let group = DrainGroup::new();
    // Work that ignores the hammer.
    let _stuck = group.track();
    let handle = handoff.handle();
    let started = Instant::now();
    let driver = tokio::spawn(handoff.run(handoff::tokio::Tokio, group.clone()));
    handle.shutdown();
    let reason = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("run() did not return at the kill timeout")
        .unwrap()
        .unwrap();
    assert_eq!(reason, ExitReason::KillTimeout);
    assert!(started.elapsed() >= Duration::from_millis(200));
    // This process is still here to say so.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_before_run_is_acted_on_once_run_starts() {
    let handoff = Handoff::builder()
        .restart_signals(&[])
        .shutdown_signals(&[Signal::Usr2])
        .build()
        .unwrap();
    // SIGUSR2 ends a process that does not handle it: this one survives it.
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::USR2)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reason = tokio::time::timeout(
        Duration::from_secs(10),
        handoff.run(handoff::tokio::Tokio, DrainGroup::new()),
    )
    .await
    .expect("the early SIGUSR2 was not acted on")
    .unwrap();
    assert_eq!(reason, ExitReason::Shutdown);
}
