//! A line echo server that restarts without dropping a connection.
//!
//! Each line received is written back; the line `pid` is answered with
//! `pid=PID`, `sleep D` with `slept D, pid=PID` after D, `hold D` with
//! `holding D, pid=PID` at once while work that ignores the hammer stays in
//! flight for D (a drain then ends at the kill timeout, and the process exits
//! with status 1), `ready` with `ready serving generation=N pid=PID`, or
//! `unready STATE ...` from the moment a shutdown begins (the readiness the
//! HTTP examples serve as `GET /readyz`) (UDP: each datagram is sent back,
//! `pid` likewise). On drain, a
//! connection finishes the line in hand, then closes cleanly (FIN, never RST).
//! SIGHUP or SIGUSR2 restarts, SIGTERM or SIGINT shuts down.
//!
//! As with HTTP keep-alive, a client that sends a line at the very moment an
//! idle connection is closed sees end-of-file without an echo: that line was
//! not processed, and the client retries it on a new connection.
//!
//! ```text
//! cargo run --example echo --features tokio -- --listen 127.0.0.1:7000
//! echo hello | nc 127.0.0.1 7000
//! kill -HUP <pid>
//! ```
//!
//! Flags: `--listen ADDR` (repeatable; `127.0.0.1:7000`, `unix:/path`,
//! `udp://127.0.0.1:7001`), `--pid-file PATH`, `--ready-timeout SECS`,
//! `--stop-timeout SECS`, `--kill-timeout SECS`, `--shutdown-delay SECS`,
//! `--unix-mode OCTAL`,
//! `--unix-owner USER|UID`, `--unix-group GROUP|GID` (who may connect to a
//! fresh Unix listener).

use std::process::ExitCode;
use std::time::Duration;

use handoff::{Accept, Address, DrainGroup, Handoff, Tracked};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

#[path = "common/cli.rs"]
mod cli;

/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(1);

/// How long a connection accepted just before draining started may take to
/// send its first line: its client may have written it already.
const FIRST_LINE_GRACE: Duration = Duration::from_secs(1);

/// The answer to one line: `pid` → `pid=PID`; `ready` → the readiness;
/// `sleep D` (D like `500ms`,
/// `2s`) prints `sleeping D in pid PID`, waits D, then answers `slept D,
/// pid=PID`, like the HTTP examples' `/sleep`; any other line comes back as is.
async fn answer(line: Vec<u8>) -> Vec<u8> {
    let pid = std::process::id();
    if line == b"pid\n" {
        return format!("pid={pid}\n").into_bytes();
    }
    if line == b"ready\n" {
        return cli::readiness().1.into_bytes();
    }
    let sleep = std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.strip_prefix("sleep "))
        .map(str::trim_end)
        .and_then(|d| Some((d, cli::parse_duration(d)?)));
    let Some((text, duration)) = sleep else {
        return line;
    };
    println!("sleeping {text} in pid {pid}");
    tokio::time::sleep(duration).await;
    format!("slept {text}, pid={pid}\n").into_bytes()
}

/// `hold D`: starts background work that stays in flight for D and ignores
/// the hammer (a job that cannot be interrupted), answered at once with
/// `holding D, pid=PID`. A drain then lasts until the kill timeout, and
/// `run()` returns `KillTimeout`: the process exits with status 1.
fn hold(line: &[u8], guard: &Tracked) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line)
        .ok()?
        .strip_prefix("hold ")?
        .trim_end();
    let duration = cli::parse_duration(text)?;
    let work = guard.draining().group().track();
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        drop(work);
    });
    Some(format!("holding {text}, pid={}\n", std::process::id()).into_bytes())
}

fn main() -> ExitCode {
    cli::init_logging();
    let cli = match cli::Cli::parse("echo", &["127.0.0.1:7000"], false) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("echo: {e}");
            return ExitCode::from(2);
        }
    };
    let addresses = match cli
        .listen
        .iter()
        .map(|a| a.parse())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo: --listen: {e}");
            return ExitCode::from(2);
        }
    };
    // Take the inherited sockets before the runtime starts its threads.
    let handoff = match cli.launch() {
        Ok(handoff) => handoff,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(serve(handoff, addresses)) {
        Ok(reason) => cli.done(reason),
        Err(e) => cli.fail(e),
    }
}

async fn serve(
    mut handoff: Handoff,
    addresses: Vec<Address>,
) -> Result<handoff::ExitReason, Box<dyn std::error::Error>> {
    let group = DrainGroup::new();
    let pid = std::process::id();
    for (i, address) in addresses.iter().enumerate() {
        let name = format!("echo{i}");
        let listeners = handoff.listeners();
        match address {
            Address::Tcp(_) => {
                let listener: tokio::net::TcpListener = listeners.get_or_bind(&name, address)?;
                println!("serving tcp://{} with pid {pid}", listener.local_addr()?);
                tokio::spawn(accept_loop(group.clone(), listener));
            }
            Address::Unix(path) => {
                let listener: tokio::net::UnixListener = listeners.get_or_bind(&name, address)?;
                println!("serving unix://{} with pid {pid}", path.display());
                tokio::spawn(accept_loop(group.clone(), listener));
            }
            Address::Udp(_) => {
                let socket: tokio::net::UdpSocket = listeners.get_or_bind(&name, address)?;
                println!("serving udp://{} with pid {pid}", socket.local_addr()?);
                tokio::spawn(udp_loop(group.clone(), socket));
            }
            other => return Err(format!("unsupported address {other}").into()),
        }
    }
    Ok(handoff.run(handoff::tokio::Tokio, group).await?)
}

/// Serves `listener` with handoff's accept loop: it pauses while draining
/// and accepts again if the successor dies (see `DrainGroup::accept_loop`).
async fn accept_loop<L>(group: DrainGroup, listener: L)
where
    L: Accept,
    L::Connection: AsyncRead + AsyncWrite + Unpin + 'static,
{
    group
        .accept_loop(&handoff::tokio::Tokio, listener, |stream, tracked| {
            tokio::spawn(connection(stream, tracked));
        })
        .await
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, guard: Tracked) {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let mut hammered = guard.hammered();
    let mut drained = guard.drained();
    let first_line_due = tokio::time::Instant::now() + FIRST_LINE_GRACE;
    let mut fresh = true;
    loop {
        // Idle and draining: close now (a connection that has sent nothing
        // yet, once its grace is over). A partial line, or bytes already
        // received, are finished first.
        let idle = line.is_empty() && reader.buffer().is_empty();
        let in_grace = fresh && tokio::time::Instant::now() < first_line_due;
        if guard.is_draining() && idle && !in_grace {
            break;
        }
        tokio::select! {
            biased;
            _ = &mut hammered => return,
            _ = tokio::time::sleep_until(first_line_due), if in_grace && guard.is_draining() => {}
            read = reader.read_until(b'\n', &mut line) => match read {
                Ok(0) => return,
                Ok(_) if line.ends_with(b"\n") => {
                    fresh = false;
                    if let Some(reply) = hold(&line, &guard) {
                        line.clear();
                        if write.write_all(&reply).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    let reply = tokio::select! {
                        biased;
                        _ = &mut hammered => return,
                        reply = answer(std::mem::take(&mut line)) => reply,
                    };
                    if write.write_all(&reply).await.is_err() {
                        return;
                    }
                }
                Ok(_) => return, // end of stream inside a line
                Err(_) => return,
            },
            _ = &mut drained, if !guard.is_draining() => {}
        }
    }
    // Close cleanly: send FIN, then read until the client closes, so unread
    // data never turns the close into a reset that could destroy replies the
    // client has not read yet.
    if write.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        loop {
            tokio::select! {
                _ = &mut hammered => return,
                n = reader.read(&mut sink) => if !matches!(n, Ok(n) if n > 0) { return },
            }
        }
    })
    .await;
}

/// Echoes datagrams until draining starts; again if this generation resumes.
async fn udp_loop(group: DrainGroup, socket: tokio::net::UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        // The group is not idle while this loop serves, so a datagram being
        // answered is not cut off.
        let serving = group.accepting();
        let mut drained = group.signal();
        loop {
            tokio::select! {
                biased;
                _ = &mut drained => break,
                received = socket.recv_from(&mut buf) => if let Ok((n, peer)) = received {
                    let reply = if buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]) == b"pid" {
                        format!("pid={}\n", std::process::id()).into_bytes()
                    } else {
                        buf[..n].to_vec()
                    };
                    let _ = socket.send_to(&reply, peer).await;
                },
            }
        }
        drop(serving);
        if !group.resumed().await {
            return;
        }
    }
}
