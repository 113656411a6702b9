//! Restart and shutdown are bounded by the stop and kill timeouts
//! (`--stop-timeout 2 --kill-timeout 2`), and the service manager hears of
//! both (a stand-in `NOTIFY_SOCKET`):
//! - (a) a request that never finishes (`sleep 1000s`) holds the old
//!   generation after SIGHUP until the stop timeout, no longer than stop +
//!   kill: it exits by itself, the hanging request is dropped, and the load
//!   running meanwhile sees 0 failures; the old generation tells the service
//!   manager `MAINPID=<successor>` and `READY=1`;
//! - (b) SIGTERM with a hanging request: the process waits for it until the
//!   stop timeout and exits by itself within stop + kill; it says
//!   `STOPPING=1` first;
//! - (c) SIGTERM with no clients (stop timeout 30 s): the process exits
//!   promptly, well under the stop timeout;
//! - (d) SIGINT with idle clients (stop timeout 30 s): each gets a clean
//!   end-of-file, then the process exits promptly;
//! - (e) line protocol only: work that ignores the hammer (echo's `hold D`)
//!   is still in flight at stop + kill: `run()` returns `KillTimeout`, and
//!   the example exits by itself with status 1, saying so, at stop + kill.
//!
//! A process exits by itself (with a code, whichever), never killed by a
//! signal, and never panics.
//!
//! Supervised: the generations are the supervisor's workers; the signals go
//! to the supervisor, which alone talks to the service manager (`MAINPID` is
//! always itself), and exits once its worker has: within the same bounds,
//! and its worker exited by itself (as the supervisor reports it).

use std::time::{Duration, Instant};

use super::Flavor;
use crate::harness::client::{Protocol, RawConn, ReadError, Request, Target};
use crate::harness::load::{Load, Work};
use crate::harness::notify::NotifySocket;
use crate::harness::process::{Signal, T5, T10};
use crate::harness::server::Server;

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
    sigint_with_idle_clients(flavor).await;
    if flavor.protocol == Protocol::Lines {
        kill_timeout_exits_with_a_failure(flavor).await;
    }
}

async fn kill_timeout_exits_with_a_failure(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &TIMEOUTS);
    let pid = server.first_pid;
    let mut conn = RawConn::connect(&target).await;
    conn.send_raw(b"hold 1000s\n").await.expect("send hold");
    let reply = conn.reply().await.expect("the hold is acknowledged");
    assert!(reply.text().starts_with("holding 1000s"), "{reply:?}");

    let signalled = Instant::now();
    server.signal_service(pid, Signal::TERM);
    let status = server
        .wait_child_exit(STOP + KILL + SLACK)
        .unwrap_or_else(|| panic!("still running after stop + kill\n{}", server.diagnostics()));
    expect_worker_exit(&server, pid, "the kill timeout");
    let exited = signalled.elapsed();
    assert!(
        exited >= STOP + KILL - EARLY,
        "exited {exited:?} after SIGTERM, before stop + kill, with work in flight"
    );
    assert_eq!(
        status.code(),
        Some(1),
        "the kill timeout must end in a failure status\n{}",
        server.diagnostics()
    );
    assert!(
        server.stderr().contains("kill timeout"),
        "the example does not say why it failed\n{}",
        server.diagnostics()
    );
    println!(
        "[{}] shutdown bounds (e): work ignoring the hammer: exited with {status} {exited:?} \
         after SIGTERM (stop {STOP:?} + kill {KILL:?})",
        flavor.name
    );
}

/// Sends `sleep 1000s` on a new connection; returns it once the server
/// printed that it started sleeping.
async fn hang(server: &Server, target: &Target) -> RawConn {
    let mut conn = RawConn::connect(target).await;
    let pid = conn
        .ask(Request::Pid)
        .await
        .expect("a request")
        .pid()
        .expect("a pid");
    let mark = server.mark();
    conn.send(Request::Sleep("1000s"))
        .await
        .expect("send the hanging request");
    let sleeping = format!("sleeping 1000s in pid {pid}");
    server
        .wait_line(mark, T10, |l| l == sleeping)
        .unwrap_or_else(|| {
            panic!(
                "{pid} never started the hanging request\n{}",
                server.diagnostics()
            )
        });
    conn
}

/// Once the process holding it is gone, the hanging request was dropped (a
/// clean close or a reset), not answered.
async fn expect_dropped(mut conn: RawConn) -> String {
    match conn.reply().await {
        Err(ReadError::Closed) => "closed".into(),
        Err(ReadError::Io(e)) => format!("{e}"),
        other => panic!("the hanging request got {other:?}"),
    }
}

/// Waits for generation `pid` to exit by itself within stop + kill (+
/// slack), not before the stop timeout; when it exited.
fn expect_bounded_exit(server: &Server, pid: i32, signalled: Instant, what: &str) -> Duration {
    let status = server
        .wait_exit(pid, STOP + KILL + SLACK)
        .unwrap_or_else(|| {
            panic!(
                "{what}: still running {:?} after the signal (stop {STOP:?} + kill {KILL:?})\n{}",
                signalled.elapsed(),
                server.diagnostics()
            )
        });
    let exited = signalled.elapsed();
    assert!(
        exited >= STOP - EARLY,
        "{what}: exited {exited:?} after the signal, before the stop timeout, with a request in flight"
    );
    expect_own_exit(server, status, what);
    exited
}

/// Supervised: worker `pid` exited by itself, as the supervisor reported
/// (it has, once the supervisor exited). Nothing to add otherwise: `pid` is
/// the process the test started.
fn expect_worker_exit(server: &Server, pid: i32, what: &str) {
    if server.supervised() {
        let status = server.wait_exit(pid, Duration::ZERO).unwrap_or_else(|| {
            panic!(
                "{what}: the supervisor exited without reporting its worker {pid}'s exit\n{}",
                server.diagnostics()
            )
        });
        expect_own_exit(server, status, &format!("{what}: worker {pid}"));
    }
}

fn expect_own_exit(server: &Server, status: std::process::ExitStatus, what: &str) {
    assert!(
        status.code().is_some(),
        "{what}: killed by a signal instead of exiting: {status:?}"
    );
    assert!(
        !server.stderr().contains("panicked"),
        "{what}: a panic\n{}",
        server.diagnostics()
    );
}

async fn restart_with_a_hanging_request(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let notify = NotifySocket::bind(dir.path());
    let mut cmd = Server::command(&flavor.bin(), dir.path(), &flavor.args(&TIMEOUTS));
    notify.pass_to(&mut cmd);
    let (server, target) = flavor.serving(Server::spawn(cmd, dir.path()));
    let old = server.first_pid;
    let load = Load::start(
        &target,
        &flavor.load_modes(1),
        Work::Pid,
        Duration::from_secs(120),
    );
    let hanging = hang(&server, &target).await;
    assert!(
        load.stats.wait_for(T10, |s| s.served_by(old) >= 50).await,
        "no load on the first generation: {}",
        load.stats
    );

    let notified = notify.mark();
    let signalled = Instant::now();
    let r = server.restart(Signal::HUP);
    // Who speaks for each generation: itself, or the supervisor for both.
    let (sender, main) = (server.main_pid(old), server.main_pid(r.new));
    let said = notify.wait_for(
        notified,
        |d| d.sender == sender && d.get("MAINPID") == Some(&main.to_string()),
        T5,
    );
    let said = said.unwrap_or_else(|| {
        panic!(
            "{sender} never told MAINPID={main} after the restart: {:?}",
            notify.received()
        )
    });
    assert_eq!(said.get("READY"), Some("1"), "{said:?}");
    let exited = expect_bounded_exit(&server, old, signalled, "the old generation after SIGHUP");
    let dropped = expect_dropped(hanging).await;

    assert!(
        load.stats.wait_for(T10, |s| s.served_by(r.new) >= 50).await,
        "the new generation does not serve: {}",
        load.stats
    );
    let stats = load.stop().await;
    println!(
        "[{}] shutdown bounds (a): SIGHUP with a hanging request: successor ready {:?}, {old} said \
         {:?}, exited {exited:?} after SIGHUP (stop {STOP:?}, kill {KILL:?}); hanging request \
         dropped ({dropped}); load: {stats}",
        flavor.name, r.ready, said.text
    );
    assert_eq!(stats.failed(), 0, "{stats}");
    server.terminate(r.new);
}

async fn sigterm_with_a_hanging_request(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let notify = NotifySocket::bind(dir.path());
    let mut cmd = Server::command(&flavor.bin(), dir.path(), &flavor.args(&TIMEOUTS));
    notify.pass_to(&mut cmd);
    let (server, target) = flavor.serving(Server::spawn(cmd, dir.path()));
    let pid = server.first_pid;
    let main = server.main_pid(pid);
    let hanging = hang(&server, &target).await;

    let signalled = Instant::now();
    server.signal_service(pid, Signal::TERM);
    let stopping = notify.wait_for(
        0,
        |d| d.sender == main && d.get("STOPPING") == Some("1"),
        T5,
    );
    assert!(
        stopping.is_some(),
        "{main} never said STOPPING=1: {:?}",
        notify.received()
    );
    let exited = expect_bounded_exit(&server, main, signalled, "SIGTERM");
    expect_worker_exit(&server, pid, "SIGTERM");
    let dropped = expect_dropped(hanging).await;
    println!(
        "[{}] shutdown bounds (b): SIGTERM with a hanging request: said STOPPING=1, exited \
         {exited:?} after SIGTERM (stop {STOP:?}, kill {KILL:?}); hanging request dropped ({dropped})",
        flavor.name
    );
}

async fn sigterm_without_clients(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(
        dir.path(),
        &["--stop-timeout", "30", "--kill-timeout", "30"],
    );
    // One request first, on a connection closed since: the server has served.
    assert_eq!(target.ask_pid().await, server.first_pid);

    let signalled = Instant::now();
    server.signal_service(server.first_pid, Signal::TERM);
    let status = server.wait_child_exit(PROMPT);
    let exited = signalled.elapsed();
    println!(
        "[{}] shutdown bounds (c): SIGTERM without clients (stop timeout 30 s): exited {status:?} \
         {exited:?} after SIGTERM",
        flavor.name
    );
    let status =
        status.unwrap_or_else(|| panic!("still running {exited:?} after SIGTERM with no clients"));
    expect_own_exit(&server, status, "SIGTERM without clients");
    expect_worker_exit(&server, server.first_pid, "SIGTERM without clients");
}

async fn sigint_with_idle_clients(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(
        dir.path(),
        &["--stop-timeout", "30", "--kill-timeout", "30"],
    );
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut conn = RawConn::connect(&target).await;
        conn.ask(Request::Pid).await.expect("a request");
        idle.push(conn);
    }

    let signalled = Instant::now();
    server.signal_service(server.first_pid, Signal::INT);
    for (i, conn) in idle.iter_mut().enumerate() {
        let closed = conn.wait_closed(PROMPT).await;
        closed.unwrap_or_else(|e| panic!("idle connection {i} after SIGINT: {e}"));
    }
    let closed = signalled.elapsed();
    drop(idle); // well-behaved clients close their side on end-of-file
    let status = server.wait_child_exit(PROMPT);
    let exited = signalled.elapsed();
    println!(
        "[{}] shutdown bounds (d): SIGINT, 3 idle clients (stop timeout 30 s): all closed cleanly \
         {closed:?}, exited {status:?} {exited:?} after SIGINT",
        flavor.name
    );
    let status =
        status.unwrap_or_else(|| panic!("still running {exited:?} after SIGINT with idle clients"));
    expect_own_exit(&server, status, "SIGINT with idle clients");
    expect_worker_exit(&server, server.first_pid, "SIGINT with idle clients");
}
