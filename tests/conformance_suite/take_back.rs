//! A successor that dies after it said ready never takes the service down.
//!
//! (a) While the old generation drains a slow request: the successor is
//! killed with SIGKILL right after the restart completed. Connections made
//! at once (they queue in the kernel while nobody accepts) and every request
//! for the next 2 s are answered by the old pid, none refused; the slow
//! request completes; the pid file names the old pid again, and the old
//! generation tells the service manager `MAINPID=<old>` and `READY=1`; the
//! example reports the loss; and a later restart works.
//!
//! (b) After the old generation has exited (nothing in flight, so it exits
//! at once): there is nothing to take back, and new connections are refused.
//! That is the documented behaviour (README, "When the new build dies after
//! it said ready"); supervisor mode and systemd's `Restart=` are the way out.
//!
//! (c) The successor is told to stop while the old generation drains: a
//! deliberate exit, nothing is taken back.
//!
//! Supervised, the generations are the supervisor's workers: (a) the same,
//! the supervisor reports the loss and tells the service manager `READY=1`
//! (`MAINPID` itself), and the pid file names it throughout; (b) the
//! opposite of the above is promised: the supervisor replaces the killed
//! worker, and every request in the next 2 s is answered by the
//! replacement, none refused; (c) the service is told to stop (SIGTERM to
//! the supervisor) while the old worker drains: the old worker finishes its
//! slow request, nothing is taken back, and the supervisor exits.

use std::time::{Duration, Instant};

use super::Flavor;
use crate::harness::client::{Protocol, RawConn, ReadError, Reply, Request, Target};
use crate::harness::notify::NotifySocket;
use crate::harness::observe;
use crate::harness::process::{self, Signal, T5, T10};
use crate::harness::server::Server;

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

/// A request for [`SLOW`] in flight on generation `pid`.
struct SlowRequest(tokio::task::JoinHandle<Result<Reply, ReadError>>);

impl SlowRequest {
    /// Sends it and waits until `pid` printed that it started.
    async fn start(server: &Server, target: &Target, pid: i32) -> SlowRequest {
        let mut conn = RawConn::connect(target).await;
        let mark = server.mark();
        conn.send(Request::Sleep(SLOW))
            .await
            .expect("send the slow request");
        let reply = tokio::spawn(async move { conn.reply().await });
        let sleeping = format!("sleeping {SLOW} in pid {pid}");
        server
            .wait_line(mark, T10, |l| l == sleeping)
            .expect("the old generation never started the slow request");
        SlowRequest(reply)
    }

    /// It completes with 200 from `pid` (bounded).
    async fn completes_on(self, name: &str, pid: i32) {
        let reply = tokio::time::timeout(T10, self.0)
            .await
            .expect("the slow request did not finish")
            .expect("the slow request's task");
        let reply = reply.unwrap_or_else(|e| panic!("[{name}] the slow request: {e}"));
        assert_eq!((reply.status, reply.pid()), (200, Some(pid)), "{reply:?}");
    }
}

/// One request on a new connection, within 5 s; the pid that answered, or
/// why none did.
async fn ask(target: &Target) -> Result<i32, String> {
    let request = async {
        let mut conn = RawConn::try_connect(target)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let reply = conn.ask(Request::Pid).await?;
        match (reply.status, reply.pid()) {
            (200, Some(pid)) => Ok(pid),
            _ => Err(format!("{reply:?}")),
        }
    };
    tokio::time::timeout(T5, request)
        .await
        .unwrap_or_else(|_| Err("no answer within 5 s".into()))
}

async fn while_draining(flavor: Flavor) {
    let name = flavor.name;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let notify = NotifySocket::bind(dir.path());
    let mut cmd = Server::command(
        &flavor.bin(),
        dir.path(),
        &flavor.args(&["--stop-timeout", "30"]),
    );
    notify.pass_to(&mut cmd);
    let (server, target) = flavor.serving(Server::spawn(cmd, dir.path()));
    let old = server.first_pid;

    let slow = SlowRequest::start(&server, &target, old).await;

    let new = server.restart(Signal::HUP).new;
    super::new_connections_reach(flavor, &target, old, new).await;

    // The crash, right after ready, while the old generation drains.
    let notified = notify.mark();
    let killed = Instant::now();
    server.signal(new, Signal::KILL);
    let burst: Vec<_> = (0..BURST)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move { ask(&target).await })
        })
        .collect();
    for (i, task) in burst.into_iter().enumerate() {
        let answer = task.await.expect("a burst task");
        let pid = answer.unwrap_or_else(|e| {
            panic!(
                "[{name}] burst request {i} after the kill: {e}\n{}",
                server.diagnostics()
            )
        });
        assert_eq!(pid, old, "[{name}] burst request {i} after the kill");
    }
    let mut sequential = 0;
    while killed.elapsed() < AFTER && sequential < 1000 {
        let answer = ask(&target).await.unwrap_or_else(|e| {
            let after = killed.elapsed();
            panic!(
                "[{name}] a request {after:?} after the kill: {e}\n{}",
                server.diagnostics()
            )
        });
        assert_eq!(answer, old, "[{name}] a request after the kill");
        sequential += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    slow.completes_on(name, old).await;

    let lost = server.wait_taken_back(new, old);
    // Its handle says so: the readiness line ends in `last-restart=lost`.
    let ready = observe::readiness_until(&target, true).await;
    assert_eq!(
        ready,
        format!("ready serving generation=1 pid={old} last-restart=lost"),
        "[{name}]"
    );
    let pid_file = server.pid_file_pid();
    let main = server.main_pid(old);
    assert_eq!(
        pid_file,
        Some(main),
        "[{name}] the pid file must name the old generation again (supervised: the supervisor)"
    );
    let told = notify.wait_for(
        notified,
        |d| d.sender == main && d.get("MAINPID") == Some(&main.to_string()),
        T10,
    );
    let told = told.unwrap_or_else(|| {
        panic!(
            "[{name}] {main} never told MAINPID={main} again: {:?}",
            notify.received()
        )
    });
    assert_eq!(told.get("READY"), Some("1"), "{told:?}");
    assert!(
        process::wait_gone(new, T10),
        "the killed successor {new} was not reaped"
    );
    println!(
        "[{name}] take-back: successor {new} killed after ready; {BURST} connections made at once \
         and {sequential} requests in the next {AFTER:?} answered by {old}; the slow request \
         completed; {main} told {:?}; reported: {lost:?}",
        told.text
    );

    // The loss is counted where it is scraped: the generation serving again.
    if cfg!(feature = "metrics") && flavor.protocol == Protocol::Http {
        let lost = "handoff_successors_lost_total";
        let page = observe::metrics_until(&target, |p| observe::sample(p, lost) == Some(1.0)).await;
        assert_eq!(observe::sample(&page, lost), Some(1.0), "[{name}]\n{page}");
    }

    // A later restart works, and the old generation then exits.
    let r = server.restart(Signal::HUP);
    assert_eq!(r.old, old);
    super::new_connections_reach(flavor, &target, old, r.new).await;
    server.expect_gone(old, T10);
    server.terminate(r.new);
}

async fn after_exit(flavor: Flavor) {
    let name = flavor.name;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &[]);
    let old = server.first_pid;
    assert_eq!(ask(&target).await, Ok(old));
    let new = server.restart(Signal::HUP).new;
    server.expect_gone(old, T10);
    server.signal(new, Signal::KILL);
    if server.supervised() {
        return replaced(flavor, &server, &target, new).await;
    }
    assert!(process::wait_gone(new, T10), "{new} outlived SIGKILL");
    // Nobody holds the listening socket any more. (A killed process shows as
    // a zombie while its other threads still close its descriptors, so the
    // socket may accept for a moment longer.)
    let mut refused = false;
    for _ in 0..100 {
        match RawConn::try_connect(&target).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(
        refused,
        "[{name}] 2 s after both generations are gone, connections are still not refused"
    );
    println!(
        "[{name}] take-back after the old generation exited: nothing to take back; connections \
         refused, as documented"
    );
}

/// (b), supervised: the supervisor holds the listening socket and replaces
/// worker `killed` (just sent SIGKILL): connections made at once and every
/// request for the next 2 s are answered by the replacement, none refused.
async fn replaced(flavor: Flavor, server: &Server, target: &Target, killed: i32) {
    let name = flavor.name;
    let since = Instant::now();
    let burst: Vec<_> = (0..BURST)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move { ask(&target).await })
        })
        .collect();
    let mut answers = Vec::new();
    for (i, task) in burst.into_iter().enumerate() {
        let answer = task.await.expect("a burst task");
        answers.push(answer.unwrap_or_else(|e| {
            panic!(
                "[{name}] burst request {i} after the kill: {e}\n{}",
                server.diagnostics()
            )
        }));
    }
    let first_answer = since.elapsed();
    let mut sequential = 0;
    while since.elapsed() < AFTER && sequential < 1000 {
        let answer = ask(target).await.unwrap_or_else(|e| {
            let after = since.elapsed();
            panic!(
                "[{name}] a request {after:?} after the kill: {e}\n{}",
                server.diagnostics()
            )
        });
        answers.push(answer);
        sequential += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let replacement = server.wait_replaced(killed);
    assert!(process::wait_gone(killed, T10), "{killed} outlived SIGKILL");
    let others: Vec<_> = answers.iter().filter(|p| **p != replacement).collect();
    assert!(
        others.is_empty(),
        "[{name}] requests after the kill answered by {others:?}, not by the replacement \
         {replacement}"
    );
    assert_eq!(
        server.pid_file_pid(),
        Some(server.main_pid(replacement)),
        "[{name}] the pid file must name the supervisor"
    );
    println!(
        "[{name}] worker {killed} killed after the old generation exited: replaced by \
         {replacement}; {BURST} connections made at once (all answered within {first_answer:?}) \
         and {sequential} requests in the next {AFTER:?} answered by it, none refused"
    );
    server.terminate(replacement);
}

/// (c) The successor is told to stop (SIGTERM) while the old generation
/// still drains: its exit is deliberate, and nothing is taken back. The old
/// generation finishes its slow request and exits; connections are refused.
/// Supervised: the service is told to stop (SIGTERM to the supervisor).
async fn successor_stopped(flavor: Flavor) {
    let name = flavor.name;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &["--stop-timeout", "30"]);
    let old = server.first_pid;
    let slow = SlowRequest::start(&server, &target, old).await;
    let new = server.restart(Signal::HUP).new;
    server.terminate(new);
    slow.completes_on(name, old).await;
    assert!(
        process::wait_gone(old, T10),
        "[{name}] the old generation took the listeners back from a successor that was told \
         to stop\n{}",
        server.diagnostics()
    );
    // Where a lost successor would be reported: the generation's output, or
    // the supervisor's log.
    let reports = if server.supervised() {
        server.stderr().lines().map(String::from).collect()
    } else {
        server.lines()
    };
    assert!(
        !reports
            .iter()
            .any(|l| l.contains("exited after it was ready")),
        "[{name}] a deliberate stop was reported as a lost successor"
    );
}
