//! The drain signal reaches long-lived responses: `GET /stream` (over
//! HTTP/1.1, and HTTP/2 if the example speaks it) streams `streaming in pid
//! OLD` and ticks; on SIGHUP each stream receives `draining pid=OLD` and
//! ends cleanly (a complete body, no error), a new request is answered by
//! the new pid, and the old generation exits promptly, long before its 30 s
//! stop timeout. Then the same with SIGTERM on the new generation.

use std::time::{Duration, Instant};

use super::{BodyReader, Flavor};
use crate::common::{self, Server, T5, T10, T30, TempDir};
use crate::http_common::{Conn, Mode, Target, blocking};

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
    _conn: Conn,
}

/// Opens a `/stream` per connection mode; returns once each has streamed
/// `streaming in pid PID` and a tick.
async fn open_streams(flavor: Flavor, target: &Target, pid: u32) -> Vec<Stream> {
    let mut streams = Vec::new();
    for mode in flavor.connection_modes() {
        let mut conn = target.connect(mode).await.expect("connect");
        let response = conn
            .get_streaming("/stream")
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
    pid: u32,
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
        blocking(|| common::wait_gone(pid, PROMPT)),
        "{what}: pid {pid} still running {:?} after the signal (stop timeout 30 s): \
         are the drained connections left open?\n{}",
        signalled.elapsed(),
        server.diagnostics()
    );
    signalled.elapsed()
}

async fn body(flavor: Flavor) {
    let dir = TempDir::new(&format!("cf-drain-{}", flavor.name));
    let (server, addr) = flavor.start(&dir, &["--stop-timeout", "30"]);
    let target = Target::plain(addr);
    let old = blocking(|| server.wait_pid_file(T30)) as u32;

    // SIGHUP: the old generation's streams are told to drain.
    let mut streams = open_streams(flavor, &target, old).await;
    let signalled = Instant::now();
    let (from, new, ready) = blocking(|| server.restart(common::Signal::HUP, T30));
    assert_eq!(from as u32, old);
    super::new_connections_reach(flavor, &target, old, new as u32).await;
    let ended = expect_drained(&mut streams, old, signalled).await;
    let exited = wait_exit(&server, old as i32, signalled, "SIGHUP");
    drop(streams);
    println!(
        "[{}] drain signal, SIGHUP: successor ready {ready:?}; streams ended cleanly after \
         `draining pid={old}`: {ended:?} after SIGHUP; old generation exited {exited:?} after SIGHUP",
        flavor.name
    );

    // SIGTERM: the new generation's streams are told to drain too.
    let mut streams = open_streams(flavor, &target, new as u32).await;
    let signalled = Instant::now();
    server.signal(new, common::Signal::TERM);
    let ended = expect_drained(&mut streams, new as u32, signalled).await;
    let exited = wait_exit(&server, new, signalled, "SIGTERM");
    drop(streams);
    println!(
        "[{}] drain signal, SIGTERM: streams ended cleanly after `draining pid={new}`: {ended:?} \
         after SIGTERM; the process exited {exited:?} after SIGTERM",
        flavor.name
    );
}
