//! The restart-under-load test over TLS (HTTP/1.1 keep-alive, a new
//! connection per request, HTTP/2 by ALPN), with certificates made at test
//! time; a certificate replaced on disk between two restarts is what clients
//! see after the next restart.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

mod common;
mod http_common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{T10, T30, TempDir};
use http_common::{Certs, Load, Mode, Target, blocking, restart, start_server, summarize_restarts};

const RESTARTS: usize = 20;
/// The certificate on disk is replaced after this many restarts.
const SWAP_AFTER: usize = 10;
const PER_GENERATION: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tls_restarts_under_load_fail_no_request_and_rotate_the_certificate() {
    http_common::raise_fd_limit();
    let dir = TempDir::new("http-tls");
    let first = Certs::generate(dir.path(), "first");
    let second = Certs::generate(dir.path(), "second");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    first.install(&cert, &key);
    let args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--stop-timeout",
        "10",
    ];
    let (server, serving) = blocking(|| start_server(&http_common::demo_bin(), &dir, &args));
    assert!(serving.url.starts_with("https://"), "{serving:?}");
    let target = Target::tls(
        http_common::socket_addr(&serving),
        &[&first.der, &second.der],
    );

    let modes = [
        (Mode::KeepAlive, 2),
        (Mode::NewConnection, 2),
        (Mode::H2, 2),
    ];
    let load = Load::start(&target, &modes, "/", Duration::from_secs(300));
    assert!(
        load.stats
            .wait_for(T10, |s| s.served.load(Ordering::SeqCst) >= 50)
            .await,
        "no load before the restarts: {}",
        load.stats
    );

    let mut restarts = Vec::new();
    let mut rotated_by = None;
    for i in 0..RESTARTS {
        if i == SWAP_AFTER {
            second.install(&cert, &key);
        }
        let r = blocking(|| restart(&server, T30));
        let new = r.new as u32;
        assert!(
            load.stats
                .wait_for(T10, |s| s.served_by(new) >= PER_GENERATION)
                .await,
            "restart {i}: generation {new} does not serve: {}",
            load.stats
        );
        // A fresh connection sees the certificate on disk at the last restart.
        let conn = target.connect(Mode::NewConnection).await.unwrap();
        let expected = if i < SWAP_AFTER {
            &first.der
        } else {
            &second.der
        };
        assert!(
            conn.cert.as_ref() == Some(expected),
            "restart {i}: generation {new} presents the wrong certificate"
        );
        if i == SWAP_AFTER {
            rotated_by = Some(new);
        }
        restarts.push(r);
    }
    let last = restarts.last().unwrap().new;
    let stats = load.stop().await;

    println!("https restart under load: {RESTARTS} restarts; {stats}");
    println!(
        "https restart under load: {}",
        summarize_restarts(&restarts)
    );
    println!(
        "https restart under load: certificate rotated by generation {:?}; clients saw {} distinct certificates",
        rotated_by,
        stats.certs().len()
    );
    assert_eq!(stats.failed.load(Ordering::SeqCst), 0, "{stats}");
    assert_eq!(stats.non_200.load(Ordering::SeqCst), 0, "{stats}");
    assert_eq!(
        stats.certs(),
        vec![first.der.clone(), second.der.clone()],
        "the load saw the first certificate, then the second"
    );

    server.signal(last, common::Signal::TERM);
    assert!(
        blocking(|| common::wait_gone(last, T10)),
        "graceful shutdown"
    );
}
