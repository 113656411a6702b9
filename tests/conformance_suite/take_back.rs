//! A successor that dies after it said ready never takes the service down.
//!
//! (a) While the old generation drains a slow request: the successor is
//! killed with SIGKILL right after the restart completed. Connections made
//! at once (they queue in the kernel while nobody accepts) and every request
//! for the next 2 s are answered by the old pid, none refused; the slow
//! request completes; the pid file names the old pid again; the example
//! reports the loss; and a later restart works.
//!
//! (b) After the old generation has exited (nothing in flight, so it exits
//! at once): there is nothing to take back, and new connections are refused.
//! That is the documented behaviour (README, "When the new build dies after
//! it said ready"); supervisor mode and systemd's `Restart=` are the way out.
//!
//! (c) The successor is told to stop while the old generation drains: a
//! deliberate exit, nothing is taken back.

use std::time::{Duration, Instant};

use super::Flavor;
use crate::common::{self, T10, T30, TempDir};
use crate::http_common::{Mode, Target, blocking};

/// How long the slow request takes: the old generation drains it while the
/// successor dies.
const SLOW: &str = "3s";
/// Connections opened at once after the kill.
const BURST: usize = 20;
/// How long requests keep coming after the kill.
const AFTER: Duration = Duration::from_secs(2);

pub fn run(flavor: Flavor) {
    super::run(
        flavor,
        "successor killed after ready: taken back",
        while_draining,
    );
    super::run(
        flavor,
        "successor killed after the old generation exited",
        after_exit,
    );
    super::run(
        flavor,
        "successor stopped while the old generation drains",
        successor_stopped,
    );
}

/// One request on a new connection, within 5 s; the pid that answered, or
/// why none did.
async fn ask(target: &Target) -> Result<u32, String> {
    let request = async {
        let mut conn = target.connect(Mode::NewConnection).await?;
        let reply = conn.get("/").await.map_err(|e| format!("GET /: {e}"))?;
        if reply.status != 200 {
            return Err(format!("status {}: {reply:?}", reply.status));
        }
        reply.pid.ok_or_else(|| format!("no pid in {reply:?}"))
    };
    tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .unwrap_or_else(|_| Err("no answer within 5 s".into()))
}

async fn while_draining(flavor: Flavor) {
    let dir = TempDir::new(&format!("cf-takeback-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &["--stop-timeout", "30"]);
    let target = Target::plain(addr);
    let old = blocking(|| server.wait_pid_file(T30)) as u32;

    let mut slow_conn = target.connect(Mode::KeepAlive).await.expect("connect");
    let mark = server.mark();
    let slow = tokio::spawn(async move {
        slow_conn
            .get(&format!("/sleep?duration={SLOW}"))
            .await
            .map_err(|e| e.to_string())
    });
    let sleeping = format!("sleeping {SLOW} in pid {old}");
    blocking(|| server.wait_line(mark, T10, |l| l == sleeping))
        .expect("the old generation never started the slow request");

    let (_, new, _) = blocking(|| server.restart(common::Signal::HUP, T30));
    let new = new as u32;
    super::new_connections_reach(flavor, &target, old, new).await;

    // The crash, right after ready, while the old generation drains.
    let mark = server.mark();
    let killed = Instant::now();
    server.signal(new as i32, common::Signal::KILL);
    let burst: Vec<_> = (0..BURST)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move { ask(&target).await })
        })
        .collect();
    let mut answered = 0;
    for (i, task) in burst.into_iter().enumerate() {
        match task.await.expect("burst task") {
            Ok(pid) => {
                assert_eq!(
                    pid, old,
                    "[{}] burst request {i} after the kill",
                    flavor.name
                );
                answered += 1;
            }
            Err(e) => panic!(
                "[{}] burst request {i} after the kill failed: {e}\n{}",
                flavor.name,
                server.diagnostics()
            ),
        }
    }
    let mut sequential = 0;
    while killed.elapsed() < AFTER && sequential < 1000 {
        match ask(&target).await {
            Ok(pid) => assert_eq!(pid, old, "[{}] request after the kill", flavor.name),
            Err(e) => panic!(
                "[{}] a request {:?} after the kill failed: {e}\n{}",
                flavor.name,
                killed.elapsed(),
                server.diagnostics()
            ),
        }
        sequential += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let slow = tokio::time::timeout(T10, slow)
        .await
        .expect("the slow request did not finish")
        .expect("slow task");
    let slow = slow.unwrap_or_else(|e| panic!("[{}] the slow request failed: {e}", flavor.name));
    assert_eq!(slow.status, 200, "{slow:?}");
    assert_eq!(slow.pid, Some(old), "{slow:?}");

    let lost = format!("restart failed: successor pid {new} exited after it was ready");
    blocking(|| server.wait_line(mark, T10, |l| l.starts_with(&lost))).unwrap_or_else(|| {
        panic!(
            "[{}] no report of the lost successor\n{}",
            flavor.name,
            server.diagnostics()
        )
    });
    assert_eq!(
        server.pid_file_pid(),
        Some(old as i32),
        "[{}] the pid file must name the old generation again",
        flavor.name
    );
    assert!(
        blocking(|| common::wait_gone(new as i32, T10)),
        "the killed successor {new} is still there (not reaped?)"
    );
    println!(
        "[{}] take-back: successor {new} killed after ready; {answered} connections made at \
         once and {sequential} requests in the next {AFTER:?} answered by {old}; the slow request \
         completed",
        flavor.name
    );

    // A later restart works, and the old generation then exits.
    let (from, newer, _) = blocking(|| server.restart(common::Signal::HUP, T30));
    assert_eq!(from as u32, old);
    super::new_connections_reach(flavor, &target, old, newer as u32).await;
    assert!(
        blocking(|| common::wait_gone(old as i32, T10)),
        "the old generation did not exit after the second restart\n{}",
        server.diagnostics()
    );
    super::terminate(&server, newer);
}

async fn after_exit(flavor: Flavor) {
    let dir = TempDir::new(&format!("cf-takeback-late-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &[]);
    let target = Target::plain(addr);
    let old = blocking(|| server.wait_pid_file(T30));
    assert_eq!(ask(&target).await, Ok(old as u32));
    let (_, new, _) = blocking(|| server.restart(common::Signal::HUP, T30));
    assert!(
        blocking(|| common::wait_gone(old, T10)),
        "the old generation, with nothing in flight, did not exit"
    );
    server.signal(new, common::Signal::KILL);
    assert!(blocking(|| common::wait_gone(new, T10)));
    // Nobody holds the listening socket any more. (A killed process shows as
    // a zombie while its other threads still close its descriptors, so the
    // socket may accept for a moment longer.)
    let mut refused = false;
    for _ in 0..100 {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(
        refused,
        "[{}] 2 s after both generations are gone, connections are still not refused",
        flavor.name
    );
    println!(
        "[{}] take-back after the old generation exited: nothing to take back; connections \
         refused, as documented",
        flavor.name
    );
}

/// (c) The successor is told to stop (SIGTERM) while the old generation
/// still drains: its exit is deliberate, and nothing is taken back. The old
/// generation finishes its slow request and exits; connections are refused.
async fn successor_stopped(flavor: Flavor) {
    let dir = TempDir::new(&format!("cf-takeback-stop-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &["--stop-timeout", "30"]);
    let target = Target::plain(addr);
    let old = blocking(|| server.wait_pid_file(T30));
    let mut slow_conn = target.connect(Mode::KeepAlive).await.expect("connect");
    let mark = server.mark();
    let slow = tokio::spawn(async move {
        slow_conn
            .get(&format!("/sleep?duration={SLOW}"))
            .await
            .map_err(|e| e.to_string())
    });
    let sleeping = format!("sleeping {SLOW} in pid {old}");
    blocking(|| server.wait_line(mark, T10, |l| l == sleeping))
        .expect("the old generation never started the slow request");
    let (_, new, _) = blocking(|| server.restart(common::Signal::HUP, T30));
    super::terminate(&server, new);
    let slow = tokio::time::timeout(T10, slow)
        .await
        .expect("the slow request did not finish")
        .expect("slow task")
        .unwrap_or_else(|e| panic!("[{}] the slow request failed: {e}", flavor.name));
    assert_eq!(slow.pid, Some(old as u32), "{slow:?}");
    assert!(
        blocking(|| common::wait_gone(old, T10)),
        "[{}] the old generation took the listeners back from a successor that was told to stop\n{}",
        flavor.name,
        server.diagnostics()
    );
    assert!(
        !server
            .lines()
            .iter()
            .any(|l| l.contains("exited after it was ready")),
        "[{}] a deliberate stop was reported as a lost successor",
        flavor.name
    );
}
