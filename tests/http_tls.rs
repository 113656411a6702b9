//! The restart-under-load test over TLS (HTTP/1.1 keep-alive, a new
//! connection per request, HTTP/2 by ALPN), with certificates made at test
//! time; a certificate replaced on disk between two restarts is what clients
//! see after the next restart.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod http;
    pub mod load;
    pub mod peer;
    pub mod process;
    pub mod server;
}

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harness::client::{Address, Protocol, Target};
use harness::http::{HttpConn, Mode};
use harness::load::{Load, Work};
use harness::process::T10;
use harness::server::{self, Server};
use tokio_rustls::rustls;

const RESTARTS: usize = 20;
/// The certificate on disk is replaced after this many restarts.
const SWAP_AFTER: usize = 10;
const PER_GENERATION: u64 = 100;

/// A self-signed certificate for `localhost`, written as PEM files.
struct Certs {
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
}

impl Certs {
    /// Makes one, written to `dir/NAME.cert.pem` and `dir/NAME.key.pem`.
    fn generate(dir: &Path, name: &str) -> Certs {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("a certificate");
        let (cert, key) = (
            dir.join(format!("{name}.cert.pem")),
            dir.join(format!("{name}.key.pem")),
        );
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
        Certs {
            cert,
            key,
            der: certified.cert.der().to_vec(),
        }
    }

    /// Replaces the files at `cert` and `key` with these, each by a rename.
    fn install(&self, cert: &Path, key: &Path) {
        for (from, to) in [(&self.key, key), (&self.cert, cert)] {
            let tmp = to.with_extension("installing");
            std::fs::copy(from, &tmp).expect("copy a PEM file");
            std::fs::rename(&tmp, to).expect("rename a PEM file into place");
        }
    }
}

/// TLS to `localhost` at `addr`, trusting exactly `trusted`.
fn https(addr: std::net::SocketAddr, trusted: &[&[u8]]) -> Target {
    let mut roots = rustls::RootCertStore::empty();
    for der in trusted {
        roots.add(der.to_vec().into()).expect("a trust anchor");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Target {
        address: Address::Tcp(addr),
        protocol: Protocol::Http,
        tls: Some(Arc::new(config)),
    }
}

/// The demo serving HTTPS with the PEM files `cert` and `key` (and `args`),
/// once it serves; a target trusting exactly `trusted`.
fn start_https(
    dir: &Path,
    cert: &Path,
    key: &Path,
    args: &[&str],
    trusted: &[&[u8]],
) -> (Server, Target) {
    let mut all = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let server = Server::start(&server::example("demo"), dir, &all);
    let serving = server.wait_started();
    let addr = serving
        .url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("{serving:?}"));
    let target = https(addr.parse().expect("an address"), trusted);
    (server, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tls_restarts_under_load_fail_no_request_and_rotate_the_certificate() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = Certs::generate(dir.path(), "first");
    let second = Certs::generate(dir.path(), "second");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    first.install(&cert, &key);
    let trusted: &[&[u8]] = &[&first.der, &second.der];
    let stop = ["--stop-timeout", "10"];
    let (server, target) = start_https(dir.path(), &cert, &key, &stop, trusted);

    let modes = [
        (Mode::KeepAlive, 2),
        (Mode::NewConnection, 2),
        (Mode::H2, 2),
    ];
    let load = Load::start(&target, &modes, Work::Pid, Duration::from_secs(300));
    assert!(
        load.stats.wait_for(T10, |s| s.served() >= 50).await,
        "no load before the restarts: {}",
        load.stats
    );

    let mut restarts = Vec::new();
    for i in 0..RESTARTS {
        if i == SWAP_AFTER {
            second.install(&cert, &key);
        }
        let r = server.restart_and_wait_old();
        assert!(
            load.stats
                .wait_for(T10, |s| s.served_by(r.new) >= PER_GENERATION)
                .await,
            "restart {i}: generation {} does not serve: {}",
            r.new,
            load.stats
        );
        // A fresh connection sees the certificate on disk at the last restart.
        let conn = HttpConn::connect(&target, Mode::NewConnection)
            .await
            .unwrap();
        let expected = if i < SWAP_AFTER {
            &first.der
        } else {
            &second.der
        };
        assert!(
            conn.cert.as_ref() == Some(expected),
            "restart {i}: {} presents the wrong certificate",
            r.new
        );
        restarts.push(r);
    }
    let stats = load.stop().await;
    println!("https restart under load: {RESTARTS} restarts; {stats}");
    println!(
        "https restart under load: clients saw {} distinct certificates; {restarts:?}",
        stats.certs().len()
    );
    assert_eq!(stats.failed(), 0, "{stats}");
    assert_eq!(
        stats.certs(),
        vec![first.der.clone(), second.der.clone()],
        "the first certificate, then the second"
    );
    server.terminate(restarts.last().unwrap().new);
}

/// The demo over TLS tells handlers the client's address: `GET /peer`
/// answers exactly `peer=127.0.0.1:PORT`, the client's end of the TCP
/// connection under TLS, over HTTP/1.1 and HTTP/2 (ALPN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handlers_get_the_clients_address() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let certs = Certs::generate(dir.path(), "peer");
    let trusted: &[&[u8]] = &[&certs.der];
    let (server, target) = start_https(dir.path(), &certs.cert, &certs.key, &[], trusted);
    harness::peer::expect_peer("demo over TLS", &target, &[Mode::KeepAlive, Mode::H2]).await;
    server.terminate(server.first_pid);
}
