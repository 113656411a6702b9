//! `Handle::restart()` and `Handle::shutdown()` with this test process as the
//! running generation and real successor processes: a successor that follows
//! docs/PROTOCOL.md (written in Python, so the protocol text alone is enough
//! to interoperate), and bad successors (missing, not executable, exits, hangs,
//! refused by the before-spawn hook). The error reaches the caller, this
//! generation serves on, and a later restart works.

#![cfg(feature = "tokio")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use handoff::{DrainGroup, Error, ExitReason, Handoff};

/// A successor written from docs/PROTOCOL.md: checks the variables, reads its
/// identity, says ready, then answers every connection on fd 3 with its pid.
const PROTOCOL_SUCCESSOR: &str = r#"#!/usr/bin/env python3
import os, socket, signal, sys
assert os.environ["HANDOFF_PROTOCOL"] == "1"
assert os.environ["LISTEN_FDS"] == "1", os.environ["LISTEN_FDS"]
assert os.environ["LISTEN_FDNAMES"] == "main"
assert "LISTEN_PID" not in os.environ
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

/// Serves `pid=<own pid>` on `listener` until draining starts.
fn serve_pid(listener: TcpListener, group: DrainGroup) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        let _accepting = group.accepting();
        let mut drained = group.signal();
        loop {
            tokio::select! {
                _ = &mut drained => break,
                Ok((stream, _)) = listener.accept() => {
                    let _guard = group.track();
                    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
                    let mut stream = tokio::io::BufReader::new(stream);
                    let mut request = String::new();
                    let _ = stream.read_line(&mut request).await;
                    let reply = format!("pid={}\n", std::process::id());
                    let _ = stream.get_mut().write_all(reply.as_bytes()).await;
                }
            }
        }
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
