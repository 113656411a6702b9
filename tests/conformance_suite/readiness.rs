//! What the example tells a load balancer and a scraper: readiness (`GET
//! /readyz`, or the line `ready`) says `ready serving generation=N pid=PID`
//! while it serves, before and after a restart (the generation counted on);
//! HTTP examples serve `GET /metrics`, a Prometheus page naming that
//! generation (with the `metrics` feature); with `--shutdown-delay 1`,
//! SIGTERM turns readiness to `unready shutting-down` (HTTP 503) at once
//! while new connections are still served by the same generation, which then
//! drains and exits no earlier than the delay, within its bounds.

use std::time::{Duration, Instant};

use super::Flavor;
use crate::harness::client::{Protocol, Target};
use crate::harness::observe::{metrics, readiness_until, sample};
use crate::harness::process::{Signal, T10};

pub fn run(flavor: Flavor) {
    super::run(flavor, "readiness, metrics and the shutdown delay", body);
}

async fn expect_ready(flavor: Flavor, target: &Target, generation: u32, pid: i32) {
    let text = readiness_until(target, true).await;
    let want = format!("ready serving generation={generation} pid={pid}");
    assert_eq!(text, want, "[{}]", flavor.name);
    if flavor.protocol != Protocol::Http {
        return;
    }
    let page = metrics(target).await;
    if cfg!(feature = "metrics") {
        let shown = sample(&page, "handoff_generation");
        assert_eq!(
            shown,
            Some(f64::from(generation)),
            "[{}]\n{page}",
            flavor.name
        );
    }
}

async fn body(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &["--shutdown-delay", "1"]);
    expect_ready(flavor, &target, 1, server.first_pid).await;
    let restart = server.restart_and_wait_old();
    expect_ready(flavor, &target, 2, restart.new).await;

    let signalled = Instant::now();
    server.signal_service(restart.new, Signal::TERM);
    let unready = readiness_until(&target, false).await;
    assert!(
        unready.starts_with("unready shutting-down generation=2"),
        "[{}] {unready:?}",
        flavor.name
    );
    // Still served, by the same generation, until the delay ends.
    assert_eq!(target.ask_pid().await, restart.new, "[{}]", flavor.name);
    server.expect_gone(restart.new, T10);
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "[{}] gone {took:?} after SIGTERM, within the 1 s delay",
        flavor.name
    );
    if flavor.supervise {
        let status = server.wait_child_exit(T10).expect("the supervisor exits");
        assert!(status.success(), "[{}] {status}", flavor.name);
    }
}
