//! Restart and shutdown are bounded by the stop and kill timeouts
//! (`--stop-timeout 2 --kill-timeout 2`):
//! - (a) a request that never finishes (`/sleep?duration=1000s`) holds the
//!   old generation after SIGHUP until the stop timeout, no longer than
//!   stop + kill: it exits by itself, the hanging request is dropped, and
//!   the load running meanwhile sees 0 failures;
//! - (b) SIGTERM with a hanging request: the process waits for it until the
//!   stop timeout and exits by itself within stop + kill;
//! - (c) SIGTERM with no clients (stop timeout 30 s): the process exits
//!   promptly, well under the stop timeout.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Flavor;
use crate::common::{self, Server, T10, T30, TempDir};
use crate::http_common::{Conn, Load, Mode, Target, blocking};

const STOP: Duration = Duration::from_secs(2);
const KILL: Duration = Duration::from_secs(2);
const TIMEOUTS: [&str; 4] = ["--stop-timeout", "2", "--kill-timeout", "2"];
/// Allowance for a loaded machine on top of stop + kill.
const SLACK: Duration = Duration::from_secs(3);
/// How much earlier than the stop timeout a process may leave (timer and
/// polling granularity).
const EARLY: Duration = Duration::from_millis(200);
/// "Promptly", for a process with nothing to drain and a 30 s stop timeout.
const PROMPT: Duration = Duration::from_secs(3);

pub fn run(flavor: Flavor) {
    super::run(flavor, "shutdown within stop + kill timeout", body);
}

async fn body(flavor: Flavor) {
    restart_with_a_hanging_request(flavor).await;
    sigterm_with_a_hanging_request(flavor).await;
    sigterm_without_clients(flavor).await;
}

/// Starts `/sleep?duration=1000s` on a new connection; returns the task
/// (its outcome) once the server printed that it started sleeping.
async fn hang(
    server: &Server,
    target: &Target,
) -> (
    u32,
    tokio::task::JoinHandle<Result<crate::http_common::Reply, hyper::Error>>,
) {
    let mut conn: Conn = target.connect(Mode::KeepAlive).await.expect("connect");
    let pid = conn.get("/").await.expect("GET /").pid.expect("pid");
    let mark = server.mark();
    let task = tokio::spawn(async move { conn.get("/sleep?duration=1000s").await });
    let sleeping = format!("sleeping 1000s in pid {pid}");
    blocking(|| server.wait_line(mark, T10, |l| l == sleeping))
        .unwrap_or_else(|| panic!("pid {pid} never started the hanging request"));
    (pid, task)
}

async fn restart_with_a_hanging_request(flavor: Flavor) {
    let dir = TempDir::new(&format!("cf-hang-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &TIMEOUTS);
    let target = Target::plain(addr);
    let load = Load::start(
        &target,
        &flavor.load_modes(1),
        "/",
        Duration::from_secs(120),
    );
    let (old, hanging) = hang(&server, &target).await;
    assert_eq!(old as i32, server.first_pid);
    assert!(
        load.stats.wait_for(T10, |s| s.served_by(old) >= 50).await,
        "no load on the first generation: {}",
        load.stats
    );

    let signalled = Instant::now();
    let (_, new, ready) = blocking(|| server.restart(common::Signal::HUP, T30));
    let bound = STOP + KILL + SLACK;
    let status = blocking(|| server.wait_child_exit(bound)).unwrap_or_else(|| {
        panic!(
            "the old generation outlived stop + kill timeout ({:?} after SIGHUP)\n{}",
            signalled.elapsed(),
            server.diagnostics()
        )
    });
    let exited = signalled.elapsed();
    assert!(
        exited >= STOP - EARLY,
        "the old generation left {exited:?} after SIGHUP, before the stop timeout, \
         with a request in flight"
    );
    assert!(
        status.code().is_some(),
        "the old generation was killed by a signal: {status:?}"
    );
    // The hanging request was dropped, not answered.
    let outcome = tokio::time::timeout(T10, hanging)
        .await
        .expect("the hanging request still pending after the old generation exited")
        .expect("hanging request task");
    assert!(outcome.is_err(), "the hanging request got {outcome:?}");

    assert!(
        load.stats
            .wait_for(T10, |s| s.served_by(new as u32) >= 50)
            .await,
        "the new generation does not serve: {}",
        load.stats
    );
    let stats = load.stop().await;
    println!(
        "[{}] shutdown bounds (a): SIGHUP with a hanging request: successor ready {ready:?}, \
         old generation exited ({status}) {exited:?} after SIGHUP (stop {STOP:?}, kill {KILL:?}); \
         hanging request dropped: {}; load: {stats}",
        flavor.name,
        outcome.err().map(|e| e.to_string()).unwrap_or_default()
    );
    assert_eq!(stats.failed.load(Ordering::SeqCst), 0, "{stats}");
    assert_eq!(stats.non_200.load(Ordering::SeqCst), 0, "{stats}");

    super::terminate(&server, new);
}

async fn sigterm_with_a_hanging_request(flavor: Flavor) {
    let dir = TempDir::new(&format!("cf-term-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &TIMEOUTS);
    let target = Target::plain(addr);
    let (pid, hanging) = hang(&server, &target).await;

    let signalled = Instant::now();
    server.signal(pid as i32, common::Signal::TERM);
    let bound = STOP + KILL + SLACK;
    let status = blocking(|| server.wait_child_exit(bound)).unwrap_or_else(|| {
        panic!(
            "still running {:?} after SIGTERM (stop {STOP:?} + kill {KILL:?})\n{}",
            signalled.elapsed(),
            server.diagnostics()
        )
    });
    let exited = signalled.elapsed();
    let outcome = tokio::time::timeout(T10, hanging)
        .await
        .expect("the hanging request still pending after the process exited")
        .expect("hanging request task");
    println!(
        "[{}] shutdown bounds (b): SIGTERM with a hanging request: exited ({status}) {exited:?} \
         after SIGTERM (stop {STOP:?}, kill {KILL:?}); hanging request dropped: {}",
        flavor.name,
        outcome
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    );
    assert!(
        exited >= STOP - EARLY,
        "exited {exited:?} after SIGTERM, before the stop timeout, with a request in flight"
    );
    assert!(
        status.code().is_some(),
        "killed by a signal instead of shutting down: {status:?}"
    );
    assert!(outcome.is_err(), "the hanging request got {outcome:?}");
}

async fn sigterm_without_clients(flavor: Flavor) {
    let dir = TempDir::new(&format!("cf-quiet-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &["--stop-timeout", "30", "--kill-timeout", "30"]);
    // One request first, its connection closed: the server has served.
    let pid = {
        let mut conn = Target::plain(addr)
            .connect(Mode::NewConnection)
            .await
            .expect("connect");
        conn.get("/").await.expect("GET /").pid.expect("pid")
    };
    assert_eq!(pid as i32, server.first_pid);

    let signalled = Instant::now();
    server.signal(pid as i32, common::Signal::TERM);
    let status = blocking(|| server.wait_child_exit(T10));
    let exited = signalled.elapsed();
    println!(
        "[{}] shutdown bounds (c): SIGTERM without clients (stop timeout 30 s): exited {status:?} \
         {exited:?} after SIGTERM",
        flavor.name
    );
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running {exited:?} after SIGTERM with no clients\n{}",
            server.diagnostics()
        )
    });
    assert!(
        exited < PROMPT,
        "exited {exited:?} after SIGTERM with no clients: not promptly"
    );
    assert!(
        status.code().is_some(),
        "killed by a signal instead of shutting down: {status:?}"
    );
}
