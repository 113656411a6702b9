//! Request bodies the handler never reads, in steady state: Python's
//! `http.client` (which never sends a request again) POSTs bodies of 10 B,
//! 5 KiB and 300 KiB on keep-alive connections, to a route that ignores the
//! body (`/`) and to one that does not exist (404). Not one request fails:
//! a connection is never closed after a response that promised to keep it
//! open. 300 KiB is above what the server drains, so every such response
//! says `Connection: close`. `POST /echo` round trips the same sizes. A
//! request whose announced body never arrives gets a response that says
//! `Connection: close`, then a clean end-of-file. 8 MiB bodies the handler
//! ignores: the client finishes sending and reads its response, never a
//! reset under it.

use std::time::Duration;

use super::Flavor;
use crate::harness::client::RawConn;
use crate::harness::external::{self, PythonCounts};
use crate::harness::process::T10;

/// Above what any adapter drains of an unread body (256 KiB).
const ABOVE_BOUND: usize = 300 * 1024;
/// A body that takes the client a while to send.
const BIG: usize = 8 << 20;

pub fn run(flavor: Flavor) {
    super::run(flavor, "unread request bodies", body);
}

async fn body(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &[]);
    let addr = target.socket_addr();
    let sizes = format!("10,5120,{ABOVE_BOUND}");
    let cases: [(&str, &[&str]); 3] = [
        ("POST / (body ignored)", &["--path", "/", "--status", "200"]),
        ("POST /nope (404)", &["--path", "/nope", "--status", "404"]),
        ("POST /echo", &["--path", "/echo", "--echo"]),
    ];
    for (what, args) in cases {
        let mut all = vec!["--sizes", &sizes, "--requests", "150", "--threads", "2"];
        all.extend_from_slice(args);
        let counts =
            PythonCounts::parse(&external::python(addr, 60, &all).finish(Duration::from_secs(90)));
        println!("[{}] {what}: {}", flavor.name, counts.line);
        assert_eq!(
            counts.sent, 300,
            "[{}] {what}: {}",
            flavor.name, counts.line
        );
        assert_eq!(
            counts.failed, 0,
            "[{}] {what}: {}",
            flavor.name, counts.line
        );
        if !args.contains(&"--echo") {
            // 100 requests of each size over the two threads' 150 each.
            assert_eq!(
                counts.closed_for(ABOVE_BOUND),
                100,
                "[{}] {what}: a response to an unread body above the bound must say \
                 Connection: close: {}",
                flavor.name,
                counts.line
            );
        }
    }

    // A body announced and never sent in full: the handler answers anyway;
    // the response says `Connection: close` and the connection then ends
    // cleanly (no reset, nothing more).
    let mut conn = RawConn::connect(&target).await;
    conn.send_raw(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nonly this")
        .await
        .expect("send");
    let reply = conn.reply().await.expect("a response to a truncated body");
    assert_eq!(reply.status, 200, "[{}] {reply:?}", flavor.name);
    assert_eq!(
        reply.header("connection"),
        Some("close"),
        "[{}] a response to a body that never arrives must say Connection: close: {reply:?}",
        flavor.name
    );
    conn.wait_closed(T10)
        .await
        .unwrap_or_else(|e| panic!("[{}] after a truncated body: {e}", flavor.name));

    // A body far larger than the drain: the response says Connection: close
    // while the client is still sending; the server must let it finish
    // sending (lingering) rather than reset the connection under it.
    let big = BIG.to_string();
    let args = [
        "--path",
        "/",
        "--sizes",
        &big,
        "--requests",
        "10",
        "--threads",
        "2",
    ];
    let counts =
        PythonCounts::parse(&external::python(addr, 60, &args).finish(Duration::from_secs(90)));
    println!(
        "[{}] POST / {BIG} B (body ignored): {}",
        flavor.name, counts.line
    );
    assert_eq!(
        (counts.sent, counts.failed),
        (20, 0),
        "[{}] {BIG}-byte bodies: {}",
        flavor.name,
        counts.line
    );

    server.terminate(server.first_pid);
}
