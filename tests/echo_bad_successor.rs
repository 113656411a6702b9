//! Guarantee: a restart into a broken build never takes the service down.
//! The server runs from a copy of the binary in a private directory; the
//! copy is replaced (write + rename, like a deploy) with
//!   (a) a script that exits 1,
//!   (b) a script that execs `sleep 1000` and so never becomes ready
//!       (`--ready-timeout 1`),
//!   (c) nothing (file removed),
//!   (d) the real binary without its execute bit.
//! For each, SIGHUP under load must print `restart failed: ...`, leave the
//! pid file on the old pid, leave no child behind (the hung successor is
//! killed and reaped), and the old generation keeps serving with zero
//! failures. Then the good binary is put back and a restart succeeds.

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

struct Case {
    name: &'static str,
    install: fn(&std::path::Path, &std::path::Path),
}

fn exit_1(bin: &std::path::Path, _good: &std::path::Path) {
    replace_file(bin, b"#!/bin/sh\nexit 1\n", 0o755);
}

fn hang(bin: &std::path::Path, _good: &std::path::Path) {
    replace_file(bin, b"#!/bin/sh\nexec sleep 1000\n", 0o755);
}

fn missing(bin: &std::path::Path, _good: &std::path::Path) {
    fs::remove_file(bin).expect("remove binary");
}

fn not_executable(bin: &std::path::Path, good: &std::path::Path) {
    replace_with_copy(bin, good, 0o644);
}

#[test]
fn broken_successors_are_rejected_and_the_old_generation_serves_on() {
    let good = echo_bin();
    let dir = TempDir::new("bad");
    let bin = dir.join("echo-under-test");
    replace_with_copy(&bin, &good, 0o755);

    let server = Server::start(
        &bin,
        &dir,
        &["--ready-timeout", "1", "--stop-timeout", "10"],
    );
    let target = server.wait_serving(0, 1, T30).remove(0).target();
    let old = server.wait_pid_file(T30);

    let load = Load::start(target.clone(), LoadConfig::default());
    assert!(load.wait_successes(100, T30), "load did not get going");

    let cases = [
        Case {
            name: "(a) script exits 1",
            install: exit_1,
        },
        Case {
            name: "(b) script hangs (exec sleep 1000), --ready-timeout 1",
            install: hang,
        },
        Case {
            name: "(c) binary removed",
            install: missing,
        },
        Case {
            name: "(d) binary without execute bit",
            install: not_executable,
        },
    ];

    for case in &cases {
        (case.install)(&bin, &good);
        let failures_before = load.failures();
        let mark = server.mark();
        let t0 = Instant::now();
        server.signal(old, Signal::HUP);

        // While waiting for the verdict, record every child the old generation has.
        let mut children_seen = std::collections::BTreeSet::new();
        let verdict = poll_until(T30, Duration::from_millis(10), || {
            for c in children_of(old) {
                if children_seen.insert(c) {
                    server.note_pid(c);
                    println!(
                        "  {}: old generation {old} has child {c}: {:?}",
                        case.name,
                        cmdline(c)
                    );
                }
            }
            server.wait_line(mark, Duration::ZERO, |l| l.starts_with("restart "))
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
            "{}: expected `restart failed: <reason>`, got {verdict:?}",
            case.name
        );
        assert_eq!(
            server.pid_file_pid(),
            Some(old),
            "{}: pid file changed on a failed restart",
            case.name
        );
        assert!(!is_gone(old), "{}: old generation {old} died", case.name);

        // No child may remain: the failed successor was killed and reaped.
        let leftover = poll_until(T5, Duration::from_millis(10), || {
            children_of(old).is_empty().then_some(())
        });
        assert!(
            leftover.is_some(),
            "{}: old generation {old} still has children 5 s after `{verdict}`: {:?}",
            case.name,
            children_of(old)
                .into_iter()
                .map(|c| (c, proc_stat(c).map(|s| s.state), cmdline(c)))
                .collect::<Vec<_>>()
        );
        for c in &children_seen {
            assert!(
                is_gone(*c),
                "{}: failed successor {c} still running: {:?}",
                case.name,
                proc_stat(*c)
            );
        }
        if case.name.starts_with("(b)") {
            assert!(
                !children_seen.is_empty(),
                "(b): never saw the hanging successor as a child of {old}"
            );
            assert!(
                took >= Duration::from_millis(900),
                "(b): gave up on the hanging successor after {took:?}, before --ready-timeout 1"
            );
        }

        // The old generation serves on.
        assert_eq!(
            ask_pid(&target),
            old,
            "{}: a new connection was not served by the old generation",
            case.name
        );
        assert!(
            load.wait_progress(50, T10),
            "{}: load stalled after the failed restart",
            case.name
        );
        assert_eq!(
            load.failures(),
            failures_before,
            "{}: load failures during the failed restart (see figures at the end)",
            case.name
        );
        println!(
            "bad successor {}: {verdict:?} after {took:?}; children seen {children_seen:?}; pid file still {old}",
            case.name
        );
    }

    // Put the good binary back: the next restart works.
    replace_with_copy(&bin, &good, 0o755);
    let mark = server.mark();
    let t0 = Instant::now();
    server.signal(old, Signal::HUP);
    let new = server
        .wait_pid_file_change(old, T30)
        .unwrap_or_else(|e| panic!("good binary back: {e}\n{}", server.diagnostics()));
    let ready = t0.elapsed();
    let verdict = server
        .wait_line(mark, T10, |l| l.starts_with("restart "))
        .expect("`restart ...` line after good restart");
    assert_eq!(verdict, format!("restart complete: successor pid {new}"));
    assert_eq!(ask_pid(&target), new);
    assert!(
        load.wait_progress(50, T10),
        "load stalled after the good restart"
    );
    assert!(
        server.wait_exit(old, T30),
        "old generation {old} did not exit after the good restart"
    );

    let stats = load.stop();
    println!("bad successor: good binary back: {old} -> {new}, ready after {ready:?}");
    println!("  {stats}");
    stats.assert_no_failures("bad successor");
}
