//! A bad successor is rolled back. The server runs from a copy of the
//! example binary in a private directory, with `--ready-timeout 1`; the copy
//! is replaced (write + rename, like a deploy) with
//! - a script that exits 1,
//! - a script that hangs (`exec sleep 1000`), never ready,
//! - nothing (the file removed),
//! - the binary without its execute bit.
//!
//! For each, SIGHUP under load must print `restart failed: REASON`, leave the
//! pid file on the old pid, leave no child behind (the hung one killed and
//! reaped), and the old generation serves on. Then the good binary is put
//! back and a restart succeeds. The load sees 0 failures throughout.
//!
//! Supervised: SIGHUP goes to the supervisor, which starts the worker from
//! the same path and reports `restart failed: REASON`; the pid file names
//! the supervisor throughout; no child of the supervisor but the old worker
//! remains; the old worker serves on.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Flavor;
use crate::harness::load::{Load, Work};
use crate::harness::process::{self, Signal, T5, T10, T30};
use crate::harness::server::Server;

/// Requests the load must make on the old generation after each failed
/// restart, and on the new one after the good restart.
const PROGRESS: u64 = 50;

/// A broken build installed at `bin`, the good one being `good`.
struct Case {
    name: &'static str,
    install: fn(bin: &Path, good: &Path),
    /// The successor hangs: given up on at the ready timeout, not before.
    hangs: bool,
}

const CASES: [Case; 4] = [
    Case {
        name: "a script that exits 1",
        install: |bin, _| install(bin, b"#!/bin/sh\nexit 1\n", 0o755),
        hangs: false,
    },
    Case {
        name: "a script that hangs (exec sleep 1000), --ready-timeout 1",
        install: |bin, _| install(bin, b"#!/bin/sh\nexec sleep 1000\n", 0o755),
        hangs: true,
    },
    Case {
        name: "the binary removed",
        install: |bin, _| fs::remove_file(bin).expect("remove the binary"),
        hangs: false,
    },
    Case {
        name: "the binary without its execute bit",
        install: |bin, good| install(bin, &fs::read(good).expect("read the binary"), 0o644),
        hangs: false,
    },
];

/// Writes `contents` with `mode` to a file beside `dest` and renames it over
/// `dest`, the way a deploy replaces a binary.
fn install(dest: &Path, contents: &[u8], mode: u32) {
    let tmp = dest.with_extension("installing");
    fs::write(&tmp, contents).expect("write the new file");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).expect("chmod the new file");
    fs::rename(&tmp, dest).expect("rename the new file into place");
}

pub fn run(flavor: Flavor) {
    super::run(flavor, "bad successor rolled back", body);
}

async fn body(flavor: Flavor) {
    let name = flavor.name;
    let good = flavor.bin();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bin = dir.path().join(format!("{}-under-test", flavor.example));
    install(&bin, &fs::read(&good).expect("read the example"), 0o755);
    let args = ["--ready-timeout", "1", "--stop-timeout", "10"];
    let (server, target) = flavor.serving(Server::start(&bin, dir.path(), &flavor.args(&args)));
    let old = server.first_pid;
    let load = Load::start(
        &target,
        &flavor.load_modes(1),
        Work::Pid,
        Duration::from_secs(120),
    );
    assert!(
        load.stats.wait_for(T10, |s| s.served_by(old) >= 100).await,
        "no load on the first generation: {}",
        load.stats
    );

    // The process that starts successors (the old generation, or the
    // supervisor), and its children that are successors (not the old worker).
    let parent = server.main_pid(old);
    let successors = || {
        process::children_of(parent)
            .into_iter()
            .filter(|c| *c != old)
            .collect::<Vec<_>>()
    };
    for case in &CASES {
        (case.install)(&bin, &good);
        let served_before = load.stats.served_by(old);
        let mark = server.verdict_mark();
        let t0 = Instant::now();
        server.signal_service(old, Signal::HUP);

        // While waiting for the verdict, note every successor started.
        let mut children = BTreeSet::new();
        let verdict = process::poll_until(T30, Duration::from_millis(10), || {
            for c in successors() {
                if children.insert(c) {
                    server.note_pid(c);
                }
            }
            server.wait_verdict(mark, Duration::ZERO, |_| true)
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: no `restart ...` line within 30 s\n{}",
                case.name,
                server.diagnostics()
            )
        });
        let took = t0.elapsed();

        assert!(
            verdict.starts_with("restart failed: ") && verdict.len() > "restart failed: ".len(),
            "{}: expected `restart failed: REASON`, got {verdict:?}",
            case.name
        );
        assert_eq!(
            server.pid_file_pid(),
            Some(server.main_pid(old)),
            "{}: the pid file changed",
            case.name
        );
        assert!(
            !process::is_gone(old),
            "{}: the old generation {old} died",
            case.name
        );
        // No child remains: the failed successor was killed and reaped.
        let no_children = process::poll_until(T5, Duration::from_millis(10), || {
            successors().is_empty().then_some(())
        });
        assert!(
            no_children.is_some(),
            "{}: {parent} still has children besides {old} 5 s after {verdict:?}: {:?}",
            case.name,
            successors()
                .into_iter()
                .map(|c| (
                    c,
                    fs::read_to_string(format!("/proc/{c}/cmdline")).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
        );
        for c in &children {
            assert!(
                process::is_gone(*c),
                "{}: failed successor {c} still running",
                case.name
            );
        }
        if case.hangs {
            assert!(
                !children.is_empty(),
                "{}: never saw the hanging successor",
                case.name
            );
            assert!(
                took >= Duration::from_millis(900),
                "{}: gave up on the hanging successor after {took:?}, before --ready-timeout 1",
                case.name
            );
        }

        // The old generation serves on: a new connection, and the load.
        assert_eq!(
            target.ask_pid().await,
            old,
            "{}: a new connection",
            case.name
        );
        assert!(
            load.stats
                .wait_for(T10, |s| s.served_by(old) >= served_before + PROGRESS)
                .await,
            "{}: the load stalled after the failed restart: {}",
            case.name,
            load.stats
        );
        assert_eq!(load.stats.failed(), 0, "{}: {}", case.name, load.stats);
        println!(
            "[{name}] bad successor, {}: {verdict:?} after {took:?}; children {children:?}, all \
             reaped; the pid file still names {parent}; {old} serves on",
            case.name
        );
    }

    // The good binary back: the next restart works.
    install(&bin, &fs::read(&good).expect("read the example"), 0o755);
    let mark = server.verdict_mark();
    let r = server.restart_and_wait_old();
    assert_eq!(r.old, old);
    let verdict = server.wait_verdict(mark, T10, |_| true);
    assert_eq!(
        verdict,
        Some(format!("restart complete: successor pid {}", r.new))
    );
    assert_eq!(target.ask_pid().await, r.new);
    assert!(
        load.stats
            .wait_for(T10, |s| s.served_by(r.new) >= PROGRESS)
            .await,
        "the new generation does not serve the load: {}",
        load.stats
    );
    let stats = load.stop().await;
    println!("[{name}] bad successor: good binary back: {r:?}; load: {stats}");
    assert_eq!(stats.failed(), 0, "{stats}");
    server.terminate(r.new);
}
