//! Continuous load from several client tasks (HTTP/1.1 keep-alive, a new
//! connection per request, HTTP/2) for the whole test while the demo is
//! restarted 20 times: 0 failed requests, 0 non-200, every generation serves.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

mod common;
mod http_common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{T10, T30, TempDir};
use http_common::{Load, Mode, Target, blocking, restart, start_demo, summarize_restarts};

const RESTARTS: usize = 20;
/// Requests each new generation must answer before the next restart.
const PER_GENERATION: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_restarts_under_load_fail_no_request() {
    http_common::raise_fd_limit();
    let dir = TempDir::new("http-load");
    let (server, addr) = blocking(|| start_demo(&dir, &["--stop-timeout", "10"]));
    let modes = [
        (Mode::KeepAlive, 2),
        (Mode::NewConnection, 2),
        (Mode::H2, 2),
    ];
    let load = Load::start(&Target::plain(addr), &modes, "/", Duration::from_secs(300));
    assert!(
        load.stats
            .wait_for(T10, |s| s.served.load(Ordering::SeqCst) >= 100)
            .await,
        "no load before the restarts: {}",
        load.stats
    );

    let mut restarts = Vec::new();
    for i in 0..RESTARTS {
        let r = blocking(|| restart(&server, T30));
        let new = r.new as u32;
        assert!(
            load.stats
                .wait_for(T10, |s| s.served_by(new) >= PER_GENERATION)
                .await,
            "restart {i}: generation {new} does not serve: {}",
            load.stats
        );
        restarts.push(r);
    }
    let last = restarts.last().unwrap().new;
    let stats = load.stop().await;

    println!("http restart under load: {RESTARTS} restarts; {stats}");
    println!("http restart under load: {}", summarize_restarts(&restarts));
    assert_eq!(stats.failed.load(Ordering::SeqCst), 0, "{stats}");
    assert_eq!(stats.non_200.load(Ordering::SeqCst), 0, "{stats}");
    assert!(stats.pids().len() > RESTARTS, "{stats}");

    server.signal(last, common::Signal::TERM);
    assert!(
        blocking(|| common::wait_gone(last, T10)),
        "graceful shutdown"
    );
}
