//! A request that never finishes (`/sleep?duration=1000s`) holds the old
//! generation only until stop + kill timeout: then it is dropped and the old
//! generation exits. The load running meanwhile does not see a failure.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

mod common;
mod http_common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{T10, T30, TempDir};
use http_common::{Load, Mode, Target, blocking, start_demo};

const STOP: Duration = Duration::from_secs(2);
const KILL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_request_ends_at_the_stop_timeout_and_nothing_else_fails() {
    let dir = TempDir::new("http-hang");
    let args = ["--stop-timeout", "2", "--kill-timeout", "2"];
    let (server, addr) = blocking(|| start_demo(&dir, &args));
    let target = Target::plain(addr);
    let modes = [
        (Mode::KeepAlive, 1),
        (Mode::NewConnection, 1),
        (Mode::H2, 1),
    ];
    let load = Load::start(&target, &modes, "/", Duration::from_secs(120));

    let mut hanging_conn = target.connect(Mode::KeepAlive).await.unwrap();
    let old = hanging_conn.get("/").await.unwrap().pid.expect("pid");
    let mark = server.mark();
    let hanging = tokio::spawn(async move { hanging_conn.get("/sleep?duration=1000s").await });
    let sleeping = format!("sleeping 1000s in pid {old}");
    blocking(|| server.wait_line(mark, T10, |l| l == sleeping))
        .unwrap_or_else(|| panic!("the old generation never started the hanging request"));

    let signalled = Instant::now();
    let (_, new, _) = blocking(|| server.restart(common::Signal::HUP, T30));
    let bound = STOP + KILL + Duration::from_secs(3);
    assert!(
        blocking(|| common::wait_gone(old as i32, bound)),
        "the old generation outlived stop + kill timeout\n{}",
        server.diagnostics()
    );
    let exited = signalled.elapsed();
    assert!(
        exited >= STOP,
        "the old generation left after {exited:?}, before the stop timeout, with a request in flight"
    );
    // The hanging request was dropped, not answered.
    let outcome = tokio::time::timeout(T10, hanging).await.unwrap().unwrap();
    assert!(outcome.is_err(), "the hanging request got {outcome:?}");

    assert!(
        load.stats
            .wait_for(T10, |s| s.served_by(new as u32) >= 50)
            .await,
        "the new generation does not serve: {}",
        load.stats
    );
    let stats = load.stop().await;
    println!(
        "hanging request: old generation exited {exited:?} after SIGHUP \
         (stop timeout {STOP:?}, kill timeout {KILL:?}); load: {stats}"
    );
    assert_eq!(stats.failed.load(Ordering::SeqCst), 0, "{stats}");
    assert_eq!(stats.non_200.load(Ordering::SeqCst), 0, "{stats}");

    server.signal(new, common::Signal::TERM);
    assert!(
        blocking(|| common::wait_gone(new, T10)),
        "graceful shutdown"
    );
}
