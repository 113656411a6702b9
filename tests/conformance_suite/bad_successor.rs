//! A bad successor is rolled back. The server runs from a copy of the
//! example binary in a private directory, with `--ready-timeout 1`; the copy
//! is replaced (write + rename, like a deploy) with
//! - a script that exits 1,
//! - a script that hangs (`exec sleep 1000`), never ready.
//!
//! For each, SIGHUP under load must print `restart failed: REASON`, leave the
//! pid file on the old pid, leave no child behind (the hung one killed and
//! reaped), and the old generation serves on. Then the good binary is put
//! back and a restart succeeds. The load sees 0 failures throughout.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Flavor;
use crate::common::{self, T5, T10, T30, TempDir};
use crate::http_common::{Load, Mode, Target, blocking, restart};

/// Requests the load must make on the old generation after each failed
/// restart, and on the new one after the good restart.
const PROGRESS: u64 = 50;

struct Case {
    name: &'static str,
    script: &'static [u8],
    /// The successor hangs: the old generation gives up after the ready
    /// timeout, not before.
    hangs: bool,
}

const CASES: [Case; 2] = [
    Case {
        name: "script exits 1",
        script: b"#!/bin/sh\nexit 1\n",
        hangs: false,
    },
    Case {
        name: "script hangs (exec sleep 1000), --ready-timeout 1",
        script: b"#!/bin/sh\nexec sleep 1000\n",
        hangs: true,
    },
];

pub fn run(flavor: Flavor) {
    super::run(flavor, "bad successor rolled back", body);
}

async fn body(flavor: Flavor) {
    let good = flavor.bin();
    let dir = TempDir::new(&format!("cf-bad-{}", flavor.name));
    let bin = dir.join(format!("{}-under-test", flavor.example));
    common::replace_with_copy(&bin, &good, 0o755);
    let (server, addr) = flavor.start_from(
        &bin,
        &dir,
        &["--ready-timeout", "1", "--stop-timeout", "10"],
    );
    let old = blocking(|| server.wait_pid_file(T30));
    let target = Target::plain(addr);
    let load = Load::start(
        &target,
        &flavor.load_modes(1),
        "/",
        Duration::from_secs(120),
    );
    assert!(
        load.stats
            .wait_for(T10, |s| s.served_by(old as u32) >= 100)
            .await,
        "no load on the first generation: {}",
        load.stats
    );

    for case in &CASES {
        common::replace_file(&bin, case.script, 0o755);
        let failed_before = load.stats.failed.load(Ordering::SeqCst);
        let served_before = load.stats.served_by(old as u32);
        let mark = server.mark();
        let t0 = Instant::now();
        server.signal(old, common::Signal::HUP);

        // While waiting for the verdict, note every child of the old generation.
        let mut children_seen = BTreeSet::new();
        let verdict = blocking(|| {
            common::poll_until(T30, Duration::from_millis(10), || {
                for c in common::children_of(old) {
                    if children_seen.insert(c) {
                        server.note_pid(c);
                    }
                }
                server.wait_line(mark, Duration::ZERO, |l| l.starts_with("restart "))
            })
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
            Some(old),
            "{}: the pid file changed on a failed restart",
            case.name
        );
        assert!(
            !common::is_gone(old),
            "{}: the old generation {old} died",
            case.name
        );
        // No child remains: the failed successor was killed and reaped.
        let no_children = blocking(|| {
            common::poll_until(T5, Duration::from_millis(10), || {
                common::children_of(old).is_empty().then_some(())
            })
        });
        assert!(
            no_children.is_some(),
            "{}: the old generation {old} still has children 5 s after {verdict:?}: {:?}",
            case.name,
            common::children_of(old)
                .into_iter()
                .map(|c| (c, common::proc_stat(c).map(|s| s.state), common::cmdline(c)))
                .collect::<Vec<_>>()
        );
        for c in &children_seen {
            assert!(
                common::is_gone(*c),
                "{}: failed successor {c} still running: {:?}",
                case.name,
                common::proc_stat(*c)
            );
        }
        if case.hangs {
            assert!(
                !children_seen.is_empty(),
                "{}: never saw the hanging successor as a child of {old}",
                case.name
            );
            assert!(
                took >= Duration::from_millis(900),
                "{}: gave up on the hanging successor after {took:?}, before --ready-timeout 1",
                case.name
            );
        }

        // The old generation serves on: a new connection, and the load.
        let mut conn = target.connect(Mode::NewConnection).await.expect("connect");
        let reply = conn.get("/").await.expect("GET / after a failed restart");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.pid,
            Some(old as u32),
            "{}: a new connection was not served by the old generation",
            case.name
        );
        assert!(
            load.stats
                .wait_for(T10, |s| s.served_by(old as u32) >= served_before + PROGRESS)
                .await,
            "{}: the load stalled after the failed restart: {}",
            case.name,
            load.stats
        );
        assert_eq!(
            load.stats.failed.load(Ordering::SeqCst),
            failed_before,
            "{}: requests failed during the failed restart: {}",
            case.name,
            load.stats
        );
        println!(
            "[{}] bad successor, {}: {verdict:?} after {took:?}; children seen {children_seen:?}, \
             all reaped; pid file still {old}; the old generation serves on",
            flavor.name, case.name
        );
    }

    // The good binary back: the next restart works.
    common::replace_with_copy(&bin, &good, 0o755);
    let mark = server.mark();
    let r = blocking(|| restart(&server, T30));
    assert_eq!(r.old, old);
    let verdict = blocking(|| server.wait_line(mark, T10, |l| l.starts_with("restart ")))
        .expect("a `restart ...` line after the good restart");
    assert_eq!(
        verdict,
        format!("restart complete: successor pid {}", r.new)
    );
    let mut conn = target.connect(Mode::NewConnection).await.expect("connect");
    let reply = conn.get("/").await.expect("GET / after the good restart");
    assert_eq!(reply.pid, Some(r.new as u32), "{reply:?}");
    assert!(
        load.stats
            .wait_for(T10, |s| s.served_by(r.new as u32) >= PROGRESS)
            .await,
        "the new generation does not serve the load: {}",
        load.stats
    );

    let stats = load.stop().await;
    println!(
        "[{}] bad successor: good binary back: {old} -> {}, ready {:?} after SIGHUP, old generation \
         exited {:?} after SIGHUP; load: {stats}",
        flavor.name, r.new, r.ready, r.old_exit
    );
    assert_eq!(stats.failed.load(Ordering::SeqCst), 0, "{stats}");
    assert_eq!(stats.non_200.load(Ordering::SeqCst), 0, "{stats}");

    super::terminate(&server, r.new);
}
