//! The drain signal reaches long-lived responses: `GET /stream` (over
//! HTTP/1.1, and HTTP/2 if the example speaks it) streams `streaming in pid
//! OLD` and ticks; on SIGHUP each stream receives `draining pid=OLD` and
//! ends cleanly (a complete body, no error), a new request is answered by
//! the new pid, and the old generation exits promptly, long before its 30 s
//! stop timeout. Then the same with SIGTERM on the new generation.
//! Supervised: the signals go to the supervisor, which exits after its
//! worker.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use super::Flavor;
use crate::harness::client::Target;
use crate::harness::http::{HttpConn, Mode};
use crate::harness::process::{Signal, T5, T10};
use crate::harness::server::Server;

/// "Promptly": far below the stop timeout of 30 s.
const PROMPT: Duration = Duration::from_secs(5);

pub fn run(flavor: Flavor) {
    super::run(flavor, "drain signal delivered", body);
}

/// A `/stream` response in progress.
struct Stream {
    mode: Mode,
    reader: BodyReader,
    /// Keeps the client connection open.
    _conn: HttpConn,
}

/// Opens a `/stream` per connection mode; returns once each has streamed
/// `streaming in pid PID` and a tick.
async fn open_streams(flavor: Flavor, target: &Target, pid: i32) -> Vec<Stream> {
    let mut streams = Vec::new();
    let modes: &[Mode] = if flavor.h2 {
        &[Mode::KeepAlive, Mode::H2]
    } else {
        &[Mode::KeepAlive]
    };
    for &mode in modes {
        let mut conn = HttpConn::connect(target, mode).await.expect("connect");
        let response = conn
            .send(hyper::Method::GET, "/stream", bytes::Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: GET /stream: {e}"));
        assert_eq!(response.status(), 200, "{mode:?}: {response:?}");
        let mut reader = BodyReader::new(response.into_body());
        let first = format!("streaming in pid {pid}\n");
        reader
            .until(&first, T10)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: waiting for {first:?}: {e}"));
        reader
            .until(&format!("{first}tick\n"), T5)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: waiting for a tick: {e}"));
        streams.push(Stream {
            mode,
            reader,
            _conn: conn,
        });
    }
    streams
}

/// Each stream must receive `draining pid=PID` and then end cleanly;
/// returns, per stream, the time from `signalled` to its end. The client
/// connections stay open: the draining server must close them.
async fn expect_drained(
    streams: &mut [Stream],
    pid: i32,
    signalled: Instant,
) -> Vec<(Mode, Duration)> {
    let draining = format!("draining pid={pid}\n");
    let mut ended = Vec::new();
    for stream in streams {
        let mode = stream.mode;
        stream
            .reader
            .until(&draining, T5)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: no {draining:?} within 5 s: {e}"));
        stream
            .reader
            .read_to_end(T5)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: the stream did not end cleanly: {e}"));
        let text = &stream.reader.text;
        assert!(
            text.ends_with(&draining),
            "{mode:?}: the stream went on after {draining:?}: {text:?}"
        );
        assert!(
            text.lines().all(|l| l == "tick"
                || l.starts_with("streaming in pid")
                || l == draining.trim_end()),
            "{mode:?}: unexpected lines in {text:?}"
        );
        ended.push((mode, signalled.elapsed()));
    }
    ended
}

fn wait_exit(server: &Server, pid: i32, signalled: Instant, what: &str) -> Duration {
    assert!(
        crate::harness::process::wait_gone(pid, PROMPT),
        "{what}: pid {pid} still running {:?} after the signal (stop timeout 30 s): \
         are the drained connections left open?\n{}",
        signalled.elapsed(),
        server.diagnostics()
    );
    signalled.elapsed()
}

async fn body(flavor: Flavor) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (server, target) = flavor.start(dir.path(), &["--stop-timeout", "30"]);
    let old = server.first_pid;

    // SIGHUP: the old generation's streams are told to drain.
    let mut streams = open_streams(flavor, &target, old).await;
    let signalled = Instant::now();
    let r = server.restart(Signal::HUP);
    super::new_connections_reach(flavor, &target, old, r.new).await;
    let ended = expect_drained(&mut streams, old, signalled).await;
    let exited = wait_exit(&server, old, signalled, "SIGHUP");
    drop(streams);
    println!(
        "[{}] drain signal, SIGHUP: successor ready {:?}; streams ended cleanly after \
         `draining pid={old}`: {ended:?} after SIGHUP; old generation exited {exited:?} after SIGHUP",
        flavor.name, r.ready
    );

    // SIGTERM: the new generation's streams are told to drain too.
    let new = r.new;
    let mut streams = open_streams(flavor, &target, new).await;
    let signalled = Instant::now();
    server.signal_service(new, Signal::TERM);
    let ended = expect_drained(&mut streams, new, signalled).await;
    let exited = wait_exit(&server, new, signalled, "SIGTERM");
    // Supervised: the supervisor exits with its worker.
    server.expect_gone(server.main_pid(new), PROMPT);
    drop(streams);
    println!(
        "[{}] drain signal, SIGTERM: streams ended cleanly after `draining pid={new}`: {ended:?} \
         after SIGTERM; the process exited {exited:?} after SIGTERM",
        flavor.name
    );
}

/// A response body read as it arrives.
struct BodyReader {
    body: hyper::body::Incoming,
    /// Everything received so far.
    text: String,
}

/// Most frames one body may take (ten minutes of ticks).
const MAX_FRAMES: usize = 10_000;

impl BodyReader {
    fn new(body: hyper::body::Incoming) -> BodyReader {
        BodyReader {
            body,
            text: String::new(),
        }
    }

    /// Reads one frame (bounded); `Ok(false)` at the end of the body.
    async fn next(&mut self, deadline: tokio::time::Instant) -> Result<bool, String> {
        match tokio::time::timeout_at(deadline, self.body.frame()).await {
            Err(_) => Err(format!("timed out; received so far: {:?}", self.text)),
            Ok(None) => Ok(false),
            Ok(Some(Err(e))) => Err(format!(
                "body error: {e} ({e:?}); received so far: {:?}",
                self.text
            )),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    self.text.push_str(&String::from_utf8_lossy(&data));
                }
                Ok(true)
            }
        }
    }

    /// Reads until the text received holds `needle` (bounded).
    async fn until(&mut self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        for _ in 0..MAX_FRAMES {
            if self.text.contains(needle) {
                return Ok(());
            }
            if !self.next(deadline).await? {
                return Err(format!(
                    "the body ended without {needle:?}: {:?}",
                    self.text
                ));
            }
        }
        Err(format!("{MAX_FRAMES} frames without {needle:?}"))
    }

    /// Reads to the end of the body (bounded); `Err` if it ends with an error
    /// (truncated, reset) or does not end in time.
    async fn read_to_end(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        for _ in 0..MAX_FRAMES {
            if !self.next(deadline).await? {
                return Ok(());
            }
        }
        Err(format!("{MAX_FRAMES} frames and no end"))
    }
}
