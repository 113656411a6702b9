//! Draining with 1,000 idle connections open on the old generation (500 idle
//! HTTP/1.1 keep-alive connections after a request, 500 that never sent a
//! byte): every client sees end-of-file promptly, and the old generation
//! exits long before its 30 s stop timeout.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod http;
    pub mod process;
    pub mod server;
}

use std::time::{Duration, Instant};

use harness::client::Target;
use harness::http::{HttpConn, Mode};
use harness::process::{self, Signal, T30};
use harness::server::{self, Server};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const KEEP_ALIVE: usize = 500;
const SILENT: usize = 500;
/// The old generation must be gone within this (its stop timeout is 30 s).
const EXIT_BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_close_at_once_when_draining() {
    let limit = raise_fd_limit();
    assert!(
        limit > 2 * (KEEP_ALIVE + SILENT) as u64 + 100,
        "RLIMIT_NOFILE hard limit {limit} is too low for this test"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(
        &server::example("demo"),
        dir.path(),
        &["--stop-timeout", "30"],
    );
    let target = Target::of(&server.wait_started());
    let old = server.first_pid;
    let fd_count = || std::fs::read_dir(format!("/proc/{old}/fd")).map_or(0, |d| d.count());
    let baseline = fd_count();

    // Keep-alive connections, each served one request by the old generation.
    let mut keep_alive = Vec::new();
    for _ in 0..KEEP_ALIVE {
        let mut conn = HttpConn::connect(&target, Mode::KeepAlive).await.unwrap();
        let reply = conn.get("/").await.unwrap();
        assert_eq!(reply.pid(), Some(old));
        keep_alive.push(conn);
    }
    // Connections that never send anything.
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(target.socket_addr()).await.unwrap());
    }
    // All of them accepted by the old generation (a descriptor each).
    let want = baseline + KEEP_ALIVE + SILENT;
    let accepted = process::poll_until(T30, Duration::from_millis(20), || {
        (fd_count() >= want).then_some(())
    });
    assert!(
        accepted.is_some(),
        "the old generation holds {} descriptors, expected {want}",
        fd_count()
    );

    let signalled = Instant::now();
    server.signal(old, Signal::HUP);

    let mut waits = Vec::new();
    for conn in keep_alive {
        let (guard, closed) = conn.split();
        waits.push(tokio::spawn(async move {
            let closed = tokio::time::timeout(EXIT_BOUND, closed).await;
            let outcome = match closed {
                Ok(Ok(Ok(()))) => Ok(signalled.elapsed()),
                Ok(Ok(Err(e))) => Err(format!("keep-alive connection failed: {e}")),
                Ok(Err(e)) => Err(format!("driver: {e}")),
                Err(_) => Err("keep-alive connection still open".into()),
            };
            drop(guard);
            outcome
        }));
    }
    for mut stream in silent {
        waits.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            match tokio::time::timeout(EXIT_BOUND, stream.read(&mut buf)).await {
                Ok(Ok(0)) => Ok(signalled.elapsed()),
                Ok(Ok(n)) => Err(format!("silent connection got {n} bytes")),
                Ok(Err(e)) => Err(format!("silent connection failed: {e}")),
                Err(_) => Err("silent connection still open".into()),
            }
        }));
    }
    let mut closed_after = Vec::new();
    let mut errors = Vec::new();
    for wait in waits {
        match wait.await.unwrap() {
            Ok(d) => closed_after.push(d),
            Err(e) => errors.push(e),
        }
    }
    let exited = process::wait_gone(old, EXIT_BOUND).then(|| signalled.elapsed());
    let (ka, quiet) = closed_after.split_at(KEEP_ALIVE.min(closed_after.len()));
    let max = |d: &[Duration]| d.iter().max().copied();
    println!(
        "idle connections: {} closed with end-of-file, {} errors; the last keep-alive closed {:?}, \
         the last silent one {:?} after SIGHUP; old generation exited after {exited:?}",
        closed_after.len(),
        errors.len(),
        max(ka),
        max(quiet)
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(
        exited.is_some(),
        "the old generation did not exit within {EXIT_BOUND:?}"
    );
    server.terminate(server.wait_pid_file());
}

/// Raises this process's soft limit on open files to the hard limit; the limit.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
    }
    limit.current.unwrap_or(u64::MAX)
}
