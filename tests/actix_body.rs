//! A request body the app leaves unread never costs the connection on the
//! actix example, for a client that never retries (Python's `http.client`):
//! up to 256 KiB of it is discarded after the response and the connection
//! kept; above that, or when the rest does not come in time, the response
//! says `Connection: close` and the connection closes cleanly after it,
//! even while the client is still sending the body.
//! `POST /echo` sends bodies back byte for byte. A request whose body never
//! comes does not hold the old generation when it drains.

#![cfg(feature = "actix")]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod process;
    pub mod server;
}

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::client::{RawConn, Target};
use harness::process::{Reaped, Signal, T10, T30};
use harness::server::{self, Server};

/// Starts the actix example with `args`; its address.
fn start(dir: &std::path::Path, args: &[&str]) -> (Server, Target) {
    let server = Server::start(&server::example("actix"), dir, args);
    let target = Target::of(&server.wait_started());
    (server, target)
}

/// Sends `count` POSTs with a body of `size` bytes to `path` on one
/// keep-alive connection (`http.client` opens a new one only after a
/// response said `Connection: close`), never retrying, and prints what
/// happened: `statuses` (`STATUSxCOUNT,...`), responses that said `close`, connections `opened`,
/// `errors` (any exception) and for `/echo` `mismatches`.
const CLIENT: &str = r#"
import http.client, sys, time
host, port, path, size, count, chunked = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "chunked"
deadline = time.monotonic() + 20
body = bytes((i * 7 + 3) % 251 for i in range(size))
conn = http.client.HTTPConnection(host, port, timeout=10)
statuses, close, opened, errors, mismatches, sent = {}, 0, 0, [], 0, 0
for i in range(count):
    if time.monotonic() > deadline:
        errors.append("deadline")
        break
    try:
        if conn.sock is None:
            opened += 1
        sent += 1
        if chunked:
            conn.request("POST", path, body=iter([body[:size // 2], body[size // 2:]]), encode_chunked=True)
        else:
            conn.request("POST", path, body=body)
        response = conn.getresponse()
        data = response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if (response.getheader("connection") or "").lower() == "close":
            close += 1
        if path == "/echo" and data != body:
            mismatches += 1
    except Exception as e:
        errors.append(type(e).__name__ + ": " + str(e))
        conn.close()
summary = ",".join("%dx%d" % kv for kv in sorted(statuses.items()))
print(f"sent={sent} statuses={summary} close={close} opened={opened} mismatches={mismatches} errors={len(errors)} first_error={errors[:1]}")
"#;

/// What one run of [`CLIENT`] printed.
struct Run {
    line: String,
    fields: HashMap<String, String>,
}

impl Run {
    fn count(&self, key: &str) -> usize {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.line))
    }
}

fn python(addr: SocketAddr, path: &str, size: usize, count: usize, chunked: bool) -> Run {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(CLIENT)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(path)
        .arg(size.to_string())
        .arg(count.to_string())
        .arg(if chunked { "chunked" } else { "sized" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Reaped(cmd.spawn().expect("python3 runs"));
    child.wait_exit(T30).expect("the python client hung");
    let (mut out, mut err) = (String::new(), String::new());
    child.0.stdout.take().unwrap().read_to_string(&mut out).ok();
    child.0.stderr.take().unwrap().read_to_string(&mut err).ok();
    let line = out.trim().to_string();
    assert!(line.starts_with("sent="), "python client: {out}\n{err}");
    let fields = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Run { line, fields }
}

#[test]
fn unread_bodies_keep_the_connection_up_to_the_bound() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_server, target) = start(dir.path(), &[]);
    let addr = target.socket_addr();
    let mut report = Vec::new();
    // `/` answers without reading the body; `/sleep` is GET-only: 405.
    for (path, status) in [("/", 200), ("/sleep", 405)] {
        for (size, count, chunked) in [
            (10, 200, false),
            (5 * 1024, 200, false),
            (5 * 1024, 50, true),
            (300 * 1024, 20, false),
            // Still being sent when the connection closes.
            (8 << 20, 5, false),
        ] {
            let run = python(addr, path, size, count, chunked);
            report.push(format!(
                "POST {path} {size} B chunked={chunked}: {}",
                run.line
            ));
            assert_eq!(run.count("errors"), 0, "{path} {size} B: {}", run.line);
            assert_eq!(
                run.fields["statuses"],
                format!("{status}x{count}"),
                "{path} {size} B: {}",
                run.line
            );
            if size <= 256 * 1024 {
                // Discarded: one connection throughout.
                assert_eq!(run.count("close"), 0, "{path} {size} B: {}", run.line);
                assert_eq!(run.count("opened"), 1, "{path} {size} B: {}", run.line);
            } else {
                // Over the bound: every response announces the close.
                assert_eq!(run.count("close"), count, "{path} {size} B: {}", run.line);
                assert_eq!(run.count("opened"), count, "{path} {size} B: {}", run.line);
            }
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn echo_sends_bodies_back_byte_for_byte() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_server, target) = start(dir.path(), &[]);
    let addr = target.socket_addr();
    for (size, chunked) in [
        (0, false),
        (1, false),
        (5 * 1024, false),
        (300 * 1024, false),
        (1 << 20, false),
        ((1 << 20) + 1, true),
    ] {
        let run = python(addr, "/echo", size, 5, chunked);
        println!("POST /echo {size} B chunked={chunked}: {}", run.line);
        assert_eq!(run.count("errors"), 0, "{}", run.line);
        assert_eq!(run.count("mismatches"), 0, "{}", run.line);
        assert_eq!(run.fields["statuses"], "200x5", "{}", run.line);
        assert_eq!(run.count("opened"), 1, "{}", run.line);
    }
}

/// Sends a request head announcing `length` body bytes, then `sent` of them.
async fn send_partial(conn: &mut RawConn, path: &str, length: usize, sent: usize) {
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n");
    conn.send_raw(head.as_bytes()).await.unwrap();
    conn.send_raw(&vec![b'x'; sent]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_come_closes_the_connection_announced() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_server, target) = start(dir.path(), &[]);

    // Announces 1000 bytes, sends 10, never the rest.
    let mut missing = RawConn::connect(&target).await;
    let asked = Instant::now();
    send_partial(&mut missing, "/", 1000, 10).await;
    let reply = missing.reply().await.expect("a response");
    let answered = asked.elapsed();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    missing
        .wait_closed(T10)
        .await
        .expect("closed cleanly after the response");

    // Sends 100 KiB at 20 KiB every 300 ms: slower than the rest may take.
    let mut slow = RawConn::connect(&target).await;
    send_partial(&mut slow, "/", 100 * 1024, 20 * 1024).await;
    let sender = tokio::spawn(async move {
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.send_raw(&[b'x'; 20 * 1024]).await.is_err() {
                break;
            }
        }
        slow
    });
    let mut slow = sender.await.unwrap();
    let reply = slow.reply().await.expect("a response");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    slow.wait_closed(T10)
        .await
        .expect("closed cleanly after the response");
    println!("body never sent: answered with Connection: close after {answered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_comes_does_not_hold_the_old_generation() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = start(dir.path(), &["--stop-timeout", "10"]);
    let old = server.first_pid;

    // The handler sleeps 1 s and ignores the body, which never comes.
    let mut stuck = RawConn::connect(&target).await;
    let mark = server.mark();
    let head = "GET /sleep?duration=1s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n";
    stuck.send_raw(head.as_bytes()).await.unwrap();
    let sleeping = format!("sleeping 1s in pid {old}");
    server
        .wait_line(mark, T10, |l| l == sleeping)
        .expect("the old generation started the request");

    let signalled = Instant::now();
    let r = server.restart(Signal::HUP);
    let reply = stuck.reply().await.expect("a response");
    assert_eq!((reply.status, reply.pid()), (200, Some(old)), "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    stuck
        .wait_closed(T10)
        .await
        .expect("closed cleanly after the response");
    server.expect_gone(old, T10);
    let exited = signalled.elapsed();
    // The request takes 1 s; the client never closes its side.
    assert!(
        exited < Duration::from_millis(2500),
        "the old generation exited {exited:?} after SIGHUP (stop timeout 10 s)"
    );
    println!(
        "body never sent, restart: successor ready {:?}, old generation exited {exited:?} after SIGHUP",
        r.ready
    );
    server.terminate(r.new);
}
