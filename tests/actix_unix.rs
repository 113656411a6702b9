//! The actix example refuses a Unix socket (`--listen unix:PATH`) with a
//! clear error instead of serving it: actix-server deletes a Unix socket's
//! path when it stops accepting on it, which would take the socket from the
//! next generation at the first restart. Nothing is bound, nothing panics.

#![cfg(feature = "actix")]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod process;
    pub mod server;
}

use harness::process::T30;
use harness::server::{self, Server};

#[test]
fn a_unix_socket_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("http.sock");
    let listen = format!("unix:{}", path.display());
    let server = Server::start(
        &server::example("actix"),
        dir.path(),
        &["--listen", &listen],
    );
    let status = server.wait_child_exit(T30).expect("the example exits");
    assert_eq!(
        status.code(),
        Some(1),
        "{status:?}\n{}",
        server.diagnostics()
    );
    let stderr = server.stderr();
    assert!(
        stderr.contains("actix-server deletes a Unix socket's path"),
        "{stderr}"
    );
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!path.exists(), "nothing is bound at {}", path.display());
    assert!(server.lines().iter().all(|l| !l.starts_with("serving ")));
}
