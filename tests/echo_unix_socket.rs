//! Guarantee: Unix-socket listeners survive restarts like TCP ones. With
//! `--listen unix:PATH`, 5 restarts under load fail no request; the socket
//! path exists and is a socket at every moment, including after every old
//! generation has exited (an old generation must not unlink the path its
//! successor serves); the newest generation answers on it; SIGTERM then ends
//! the server, and a cold start on the same path works again.

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod http;
    pub mod load;
    pub mod process;
    pub mod server;
}

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::client::{Address, Target};
use harness::http::Mode;
use harness::load::{ECHO_SIZES, Load, Work};
use harness::process::{Signal, T10, T30};
use harness::server::{self, Server};

const RESTARTS: usize = 5;

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_restarts_under_load() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sock = dir.path().join("echo.sock");
    let listen = format!("unix:{}", sock.display());
    let echo = server::example("echo");
    let server = Server::start(
        &echo,
        dir.path(),
        &["--listen", &listen, "--stop-timeout", "10"],
    );
    let target = Target::of(&server.wait_started());
    assert_eq!(target.address, Address::Unix(sock.clone()));
    assert!(is_socket(&sock), "{} is not a socket", sock.display());

    // Watch the path for the whole restart phase (bounded: 120 s).
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (sock, stop) = (sock.clone(), stop_watch.clone());
        std::thread::spawn(move || {
            let (mut checks, mut missing) = (0u64, 0u64);
            let end = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                checks += 1;
                if !is_socket(&sock) {
                    missing += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (checks, missing)
        })
    };

    let modes = [(Mode::KeepAlive, 2), (Mode::NewConnection, 2)];
    let load = Load::start(&target, &modes, Work::Pid, Duration::from_secs(120));
    let echoes = Load::start(
        &target,
        &modes,
        Work::Echo(ECHO_SIZES.to_vec()),
        Duration::from_secs(120),
    );
    let first = server.first_pid;
    assert!(
        load.stats
            .wait_for(T30, |s| s.served_by(first) >= 200)
            .await,
        "{}",
        load.stats
    );

    let mut restarts = Vec::new();
    let mut current = first;
    for i in 0..RESTARTS {
        let r = server.restart(Signal::HUP);
        assert_eq!(r.old, current);
        assert!(
            load.stats.wait_for(T10, |s| s.served_by(r.new) >= 50).await,
            "restart {i}: the load stalled after successor {} became ready: {}",
            r.new,
            load.stats
        );
        current = r.new;
        restarts.push(r);
    }
    for r in &restarts {
        server.expect_gone(r.old, T30);
    }
    // After every old generation is gone, the path is still there and served.
    assert!(
        is_socket(&sock),
        "the socket path is gone after the old generations exited"
    );
    assert_eq!(
        target.ask_pid().await,
        current,
        "the newest generation on the socket path"
    );
    let served = load.stats.served_by(current);
    assert!(
        load.stats
            .wait_for(T10, |s| s.served_by(current) >= served + 50)
            .await,
        "the load stalled after the old generations exited: {}",
        load.stats
    );
    let (stats, echoed) = (load.stop().await, echoes.stop().await);
    stop_watch.store(true, Ordering::Relaxed);
    let (checks, missing) = watcher.join().expect("the watcher");
    let ready: Vec<_> = restarts.iter().map(|r| r.ready).collect();
    println!("unix socket: {RESTARTS} restarts, ready after {ready:?}\n  {stats}\n  echo {echoed}");
    println!("  path checks: {checks}, missing or not a socket: {missing}");
    for s in [&stats, &echoed] {
        assert_eq!(s.failed(), 0, "{s}");
        assert!(s.served() > 0, "{s}");
    }
    assert_eq!(
        missing, 0,
        "the socket path missing during {missing} of {checks} checks"
    );
    server.terminate(current);

    // A cold start on the same path (e.g. a service restarted without socket
    // activation) must work whether or not the previous run left the socket
    // file behind.
    println!(
        "  after SIGTERM, the socket path is {}",
        if sock.exists() {
            "still present"
        } else {
            "removed"
        }
    );
    let again = Server::start(&echo, dir.path(), &["--listen", &listen]);
    assert_eq!(Target::of(&again.wait_started()).address, target.address);
    assert_eq!(
        target.ask_pid().await,
        again.first_pid,
        "a cold start on the same path"
    );
}
