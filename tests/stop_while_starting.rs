//! A stop that comes while a new generation is still starting: its server
//! runs before it says ready (it already accepts on the shared sockets), so
//! it may hold requests, and they are served, not cut. The starting
//! generation is told to shut down like the one that serves, and killed
//! only if it outlasts the stop and kill timeouts. Both modes: SIGTERM to the
//! generation that serves (re-exec), and to the supervisor.
//!
//! A starting generation that never gets ready (hung in its startup) is
//! killed at the bound: in re-exec mode at the serving generation's stop
//! timeout, under a supervisor at stop + kill + 1 s; every process is gone
//! and the service exits 0 (a worker that never served is no failure of the
//! service).
//!
//! The service is this test binary again ([`stop_probe`]): every generation
//! after the first takes [`STARTUP`] (or `HANDOFF_STOP_PROBE_STARTUP`
//! seconds) to get ready after its server started, as a server that warms a
//! cache or connects to a database after it binds.

#![cfg(feature = "tokio")]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod lines;
    pub mod process;
}

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use handoff::{DrainGroup, Handoff, Launch};
use harness::lines;
use harness::process::{self, Reaped, Signal, T10, T30};

/// How long a new generation takes to get ready once its server runs.
const STARTUP: Duration = Duration::from_secs(3);
/// How long the request `slow` takes.
const SLOW: Duration = Duration::from_secs(1);
/// Requests held by the starting generation when the stop comes.
const HELD: usize = 3;

/// Run as a child of the tests below: the service (the supervisor and its
/// workers, or each generation). One connection: `pid` is answered at once
/// with `pid=N`, then `slow` after [`SLOW`] with `done pid=N`.
#[test]
fn stop_probe() {
    let Some(dir) = std::env::var_os("HANDOFF_STOP_PROBE") else {
        return;
    };
    let supervise = std::env::var_os("HANDOFF_STOP_PROBE_SUPERVISE").is_some();
    let secs = |name: &str, default: u64| {
        let value = std::env::var(name).ok();
        Duration::from_secs(value.map_or(default, |v| v.parse().unwrap()))
    };
    let startup = secs("HANDOFF_STOP_PROBE_STARTUP", STARTUP.as_secs());
    let stop = secs("HANDOFF_STOP_PROBE_STOP", 10);
    let launched = Handoff::builder()
        .supervise(supervise)
        .pid_file(Path::new(&dir).join("service.pid"))
        .ready_timeout(Duration::from_secs(120))
        .stop_timeout(stop)
        .kill_timeout(stop)
        .launch()
        .expect("launch");
    let mut handoff = match launched {
        Launch::Supervised(exit) => {
            assert!(exit.success(), "the supervisor: {:?}", exit.reason());
            return;
        }
        Launch::Worker(handoff) => handoff,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener: std::net::TcpListener = handoff.listen("main", "127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let group = DrainGroup::new();
        serve(listener, group.clone());
        let (generation, pid) = (handoff.generation(), std::process::id());
        println!("generation {generation} pid {pid} accepts on {port}");
        if generation > 1 {
            tokio::time::sleep(startup).await;
        }
        let exit = handoff.run(handoff::tokio::Tokio, group).await;
        println!("pid {pid} done: {exit:?}");
    });
}

fn serve(listener: std::net::TcpListener, group: DrainGroup) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let accepting = group.clone();
    tokio::spawn(async move {
        accepting
            .accept_loop(&handoff::tokio::Tokio, listener, |stream, tracked| {
                tokio::spawn(async move {
                    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
                    let pid = std::process::id();
                    let mut stream = tokio::io::BufReader::new(stream);
                    let mut line = String::new();
                    loop {
                        // Between requests, a drain closes the connection.
                        let read = tokio::select! {
                            biased;
                            read = stream.read_line(&mut line) => read,
                            _ = tracked.drained() => break,
                        };
                        if !matches!(read, Ok(n) if n > 0) {
                            break;
                        }
                        let reply = match line.trim() {
                            "slow" => {
                                tokio::time::sleep(SLOW).await;
                                format!("done pid={pid}\n")
                            }
                            _ => format!("pid={pid}\n"),
                        };
                        if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
                            break;
                        }
                        line.clear();
                    }
                    drop(tracked);
                });
            })
            .await
    });
}

/// The service, its stdout lines on a channel.
struct Service {
    child: Reaped,
    lines: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

impl Service {
    fn start(supervise: bool, env: &[(&str, &str)]) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec![("HANDOFF_STOP_PROBE", dir.path().as_os_str())];
        all.extend(env.iter().map(|(k, v)| (*k, std::ffi::OsStr::new(v))));
        if supervise {
            all.push(("HANDOFF_STOP_PROBE_SUPERVISE", "1".as_ref()));
        }
        let (child, lines) = lines::start_probe("stop_probe", &all);
        Service { child, lines, dir }
    }

    /// The next line a generation printed that starts with `prefix`, split
    /// into words (bounded: `within`).
    fn wait(&self, prefix: &str, within: Duration) -> Vec<String> {
        let line = lines::next_line(&self.lines, within, prefix, |_| true);
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("service.pid")
    }
}

/// Kills a grandchild of the test (the starting generation) when dropped,
/// whatever happened: its parent reaps it, or init does once the service is
/// gone.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = process::kill(self.0, Signal::KILL);
    }
}

/// A new connection to `port`, and the pid that answered `pid` on it.
fn connect(port: u16) -> (BufReader<TcpStream>, u32) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(T10)).unwrap();
    let mut conn = BufReader::new(stream);
    let pid = ask(&mut conn, "pid").expect("an answer to pid");
    let pid = pid.strip_prefix("pid=").unwrap().parse().unwrap();
    (conn, pid)
}

fn ask(conn: &mut BufReader<TcpStream>, request: &str) -> std::io::Result<String> {
    conn.get_mut()
        .write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    conn.read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// The service started, then restarted: its main pid (the first generation,
/// or the supervisor), its port, and the pid of generation 2, which has
/// started its server but is not ready yet.
fn restart_into_a_starting_generation(
    supervise: bool,
    env: &[(&str, &str)],
) -> (Service, i32, u16, u32) {
    let service = Service::start(supervise, env);
    let first = service.wait("generation 1 ", T30);
    let port: u16 = first[6].parse().unwrap();
    // Ready once the pid file is written; it names the service's main pid.
    let main = process::poll_until(T10, Duration::from_millis(5), || {
        std::fs::read_to_string(service.pid_file())
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
    })
    .expect("the pid file");
    assert_eq!(main, service.child.0.id() as i32);

    process::kill(main, Signal::HUP).unwrap();
    let second = service.wait("generation 2 ", T30);
    let starting: u32 = second[3].parse().unwrap();
    (service, main, port, starting)
}

fn stop_while_a_generation_starts(supervise: bool) {
    let (service, main, port, starting) = restart_into_a_starting_generation(supervise, &[]);
    let _starting = KillOnDrop(starting as i32);
    // Both generations accept on the same socket: keep connections the
    // starting one took, and start a slow request on each.
    let mut held = Vec::new();
    for _ in 0..500 {
        if held.len() == HELD {
            break;
        }
        let (mut conn, pid) = connect(port);
        if pid == starting {
            conn.get_mut().write_all(b"slow\n").unwrap();
            held.push(conn);
        }
    }
    assert_eq!(
        held.len(),
        HELD,
        "the starting generation took no connection"
    );

    let stopped = Instant::now();
    process::kill(main, Signal::TERM).unwrap();
    for (i, conn) in held.iter_mut().enumerate() {
        let mut line = String::new();
        let read = conn.read_line(&mut line);
        assert!(
            matches!(read, Ok(n) if n > 0) && line.trim() == format!("done pid={starting}"),
            "supervise={supervise}: slow request {i} on the starting generation {starting}: \
             {read:?} {line:?} after {:?}",
            stopped.elapsed()
        );
    }
    let mut service = service;
    let status = service.child.wait_exit(T30).expect("the service exits");
    assert!(status.success(), "supervise={supervise}: {status:?}");
    assert!(
        process::wait_gone(starting as i32, T10),
        "the starting generation {starting} outlived the service"
    );
    println!(
        "supervise={supervise}: {HELD} slow requests held by generation 2 while it started were \
         served; the service exited {status} {:?} after SIGTERM",
        stopped.elapsed()
    );
}

#[test]
fn reexec_a_generation_starting_at_the_stop_serves_what_it_took() {
    stop_while_a_generation_starts(false);
}

#[test]
fn supervised_a_worker_starting_at_the_stop_serves_what_it_took() {
    stop_while_a_generation_starts(true);
}

/// Generation 2 hangs in its startup (10 minutes); stop and kill timeouts
/// of 1 s. It is killed at the bound, not before, and the service exits 0.
fn a_hung_starting_generation_is_killed_at_the_bound(supervise: bool) {
    let env = [
        ("HANDOFF_STOP_PROBE_STARTUP", "600"),
        ("HANDOFF_STOP_PROBE_STOP", "1"),
    ];
    let (mut service, main, _, starting) = restart_into_a_starting_generation(supervise, &env);
    let _starting = KillOnDrop(starting as i32);
    let stopped = Instant::now();
    process::kill(main, Signal::TERM).unwrap();
    let status = service.child.wait_exit(T30).expect("the service exits");
    let took = stopped.elapsed();
    assert!(status.success(), "supervise={supervise}: {status:?}");
    assert!(
        process::wait_gone(starting as i32, T10),
        "the hung generation {starting} outlived the service"
    );
    // Re-exec: killed at the serving generation's stop timeout. Supervised:
    // at the shutdown's bound, stop + kill + 1 s.
    let bound = Duration::from_secs(if supervise { 3 } else { 1 });
    assert!(
        took >= bound && took < bound + T10,
        "supervise={supervise}: exited {took:?} after SIGTERM, the bound is {bound:?}"
    );
    println!(
        "supervise={supervise}: generation 2, hung in its startup, was killed at the bound; the \
         service exited {status} {took:?} after SIGTERM"
    );
}

#[test]
fn reexec_a_hung_starting_generation_is_killed_at_the_stop_timeout() {
    a_hung_starting_generation_is_killed_at_the_bound(false);
}

#[test]
fn supervised_a_hung_starting_worker_is_killed_at_the_shutdown_bound() {
    a_hung_starting_generation_is_killed_at_the_bound(true);
}
