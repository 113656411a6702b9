//! Restart cost: SIGHUP -> successor ready -> old generation exited, against
//! the parent's resident memory; spawning alone (posix_spawn against
//! fork+exec, from the same parent, alternating); and time to ready with 1,
//! 100 and 1,000 listeners handed over.
//!
//! ```text
//! cargo bench --all-features --bench restart [-- --quick] [spawn|memory|listeners]
//! ```
//!
//! The server is this program itself, started with `--serve`: a handoff
//! server on tokio with `--listeners N` TCP listeners and, in its first
//! generation only, `--ballast-mib M` of touched (resident) memory. Its
//! successors carry no ballast, so the figure is the cost of restarting a
//! big process, not of starting one.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use common::{Flags, Server, Summary, table};

mod common;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        return serve(&args);
    }
    let flags = Flags::parse();
    common::become_subreaper();
    common::machine();
    if flags.wants("spawn") {
        spawn_alone(&flags);
    }
    if flags.wants("memory") {
        restart_by_memory(&flags);
    }
    if flags.wants("listeners") {
        restart_by_listeners(&flags);
    }
    ExitCode::SUCCESS
}

/// `size` MiB, every page written, so it is resident.
fn ballast(mib: usize) -> Vec<u8> {
    let mut v = vec![0u8; mib << 20];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    std::hint::black_box(v)
}

/// The MiB sizes of the parent's ballast.
fn sizes(flags: &Flags) -> Vec<usize> {
    if flags.quick {
        vec![0, 256]
    } else {
        vec![0, 64, 1024, 4096]
    }
}

/// posix_spawn (std's `Command` without options that need a fork) against
/// fork+exec (std's `Command` with `uid` set to our own uid, which makes it
/// fork), both timed until `spawn` returns (the child has exec'd), from this
/// process holding each ballast size in turn.
fn spawn_alone(flags: &Flags) {
    let rounds = flags.rounds(5, 20);
    let uid = rustix::process::getuid().as_raw();
    let mut rows = Vec::new();
    for mib in sizes(flags) {
        let held = ballast(mib);
        let rss = common::rss_kib(std::process::id());
        let mut posix = Vec::new();
        let mut fork = Vec::new();
        for _ in 0..rounds {
            for use_fork in [false, true] {
                let mut cmd = Command::new("/bin/true");
                cmd.stdin(Stdio::null()).stdout(Stdio::null());
                if use_fork {
                    cmd.uid(uid);
                }
                let start = Instant::now();
                let mut child = cmd.spawn().expect("spawn /bin/true");
                let took = start.elapsed();
                child.wait().expect("wait /bin/true");
                if use_fork { &mut fork } else { &mut posix }.push(took);
            }
        }
        drop(held);
        let (p, f) = (Summary::ms(&posix), Summary::ms(&fork));
        rows.push(vec![
            format!("{} MiB", rss / 1024),
            p.show(2),
            f.show(2),
            format!("{:.1}x", f.median / p.median),
        ]);
    }
    table(
        &format!(
            "Spawn alone: parent RSS vs posix_spawn and fork+exec (ms, median (min-max), {rounds} each, alternating)"
        ),
        &["parent RSS", "posix_spawn", "fork+exec", "fork/posix_spawn"],
        &rows,
    );
}

/// Starts the server with `ballast` MiB and `listeners` listeners.
fn start(ballast: usize, listeners: usize) -> Server {
    let exe = std::env::current_exe().expect("current_exe");
    let ballast = ballast.to_string();
    let listeners = listeners.to_string();
    Server::start(
        &exe,
        &[
            "--serve",
            "--ballast-mib",
            &ballast,
            "--listeners",
            &listeners,
        ],
    )
}

fn restart_by_memory(flags: &Flags) {
    let rounds = flags.rounds(2, 5);
    let mut rows = Vec::new();
    for mib in sizes(flags) {
        let mut ready = Vec::new();
        let mut exited = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..rounds {
            let mut server = start(mib, 1);
            rss.push(server.rss_kib() as f64 / 1024.0);
            let (r, e) = server.restart(common::T10);
            ready.push(r);
            exited.push(e);
        }
        rows.push(vec![
            format!("{:.0} MiB", Summary::of(&rss).median),
            Summary::ms(&ready).show(2),
            Summary::ms(&exited).show(2),
        ]);
    }
    table(
        &format!(
            "Restart vs the parent's resident memory (ms from SIGHUP, median (min-max), {rounds} restarts each)"
        ),
        &["parent RSS", "successor ready", "old generation exited"],
        &rows,
    );
}

fn restart_by_listeners(flags: &Flags) {
    let rounds = flags.rounds(3, 10);
    let mut rows = Vec::new();
    for listeners in [1, 100, 1000] {
        let mut server = start(0, listeners);
        let mut ready = Vec::new();
        let mut exited = Vec::new();
        for _ in 0..rounds {
            let (r, e) = server.restart(common::T10);
            ready.push(r);
            exited.push(e);
        }
        rows.push(vec![
            listeners.to_string(),
            Summary::ms(&ready).show(2),
            Summary::ms(&exited).show(2),
        ]);
    }
    table(
        &format!(
            "Handover scale: listeners handed over (ms from SIGHUP, median (min-max), {rounds} restarts each)"
        ),
        &["listeners", "successor ready", "old generation exited"],
        &rows,
    );
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

fn flag(args: &[String], name: &str) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} N expected"))
}

fn serve(args: &[String]) -> ExitCode {
    let first_generation = std::env::var_os("LISTEN_FDS").is_none();
    let held = if first_generation {
        ballast(flag(args, "--ballast-mib"))
    } else {
        Vec::new()
    };
    let listeners = flag(args, "--listeners");
    let handoff = handoff::Handoff::builder()
        .on_restart(|result| match result {
            Ok(pid) => println!("restart complete: successor pid {pid}"),
            Err(e) => println!("restart failed: {e}"),
        })
        .build();
    let mut handoff = match handoff {
        Ok(h) => h,
        Err(e) => {
            eprintln!("restart bench server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result: Result<_, Box<dyn std::error::Error>> = runtime.block_on(async move {
        let mut held_listeners = Vec::with_capacity(listeners);
        for i in 0..listeners {
            let l: tokio::net::TcpListener = handoff.listen(&format!("l{i}"), "127.0.0.1:0")?;
            held_listeners.push(l);
        }
        let addr = held_listeners[0].local_addr()?;
        println!("serving {addr} with pid {}", std::process::id());
        // Nothing is accepted: the restart itself is what is measured.
        Ok(handoff
            .run(handoff::tokio::Tokio, handoff::DrainGroup::new())
            .await?)
    });
    drop(held);
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("restart bench server: {e}");
            ExitCode::FAILURE
        }
    }
}
