//! What the example tells a load balancer and a scraper: `GET /readyz`
//! answers 200 `ready serving generation=N pid=PID` while it serves, before
//! and after a restart (the generation counted on); `GET /metrics` is a
//! Prometheus page naming that generation (with the `metrics` feature); with
//! `--shutdown-delay 1`, SIGTERM turns `/readyz` to 503 at once while new
//! connections are still served by the same generation, which then drains
//! and exits within its bounds.

use std::time::{Duration, Instant};

use super::Flavor;
use crate::harness::client::{Reply, Target};
use crate::harness::http::{HttpConn, Mode};
use crate::harness::process::{Signal, T5, T10};

pub fn run(flavor: Flavor) {
    super::run(flavor, "readiness, metrics and the shutdown delay", body);
}

async fn get(target: &Target, path: &str) -> Reply {
    let mut conn = HttpConn::connect(target, Mode::NewConnection)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    conn.get(path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `/readyz` until its status is `status` (bounded: 5 s).
async fn readyz(flavor: Flavor, target: &Target, status: u16) -> Reply {
    let start = Instant::now();
    loop {
        let reply = get(target, "/readyz").await;
        if reply.status == status {
            return reply;
        }
        assert!(
            start.elapsed() < T5,
            "[{}] /readyz still {reply:?}, not {status}",
            flavor.name
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn expect_ready(flavor: Flavor, target: &Target, generation: u32, pid: i32) {
    let reply = readyz(flavor, target, 200).await;
    let want = format!("ready serving generation={generation} pid={pid}");
    assert_eq!(reply.text().trim(), want, "[{}]", flavor.name);
    let page = get(target, "/metrics").await;
    assert_eq!(page.status, 200, "[{}] {page:?}", flavor.name);
    if cfg!(feature = "metrics") {
        let line = format!("handoff_generation {generation}");
        let text = page.text();
        assert!(
            text.lines().any(|l| l == line),
            "[{}] no {line:?} in\n{text}",
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
    let unready = readyz(flavor, &target, 503).await;
    assert!(
        unready
            .text()
            .starts_with("unready shutting-down generation=2"),
        "[{}] {unready:?}",
        flavor.name
    );
    // Still served, by the same generation, until the delay ends.
    let reply = get(&target, "/").await;
    assert_eq!(
        reply.pid(),
        Some(restart.new),
        "[{}] {reply:?}",
        flavor.name
    );
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
