//! The smol and async-std adapters in process: every listener type they
//! implement `InheritedListener` for comes out of the registry non-blocking
//! and close-on-exec and accepts (or receives) on its runtime; the `Runtime`
//! timer waits until its deadline; the signal stream delivers a signal sent
//! to this process; and `Handoff::run` on the runtime drains a `DrainGroup`
//! with a connection in flight, then returns on `Handle::shutdown`.
//!
//! The same guarantees across real restarts are the conformance suite's
//! (`tests/conformance.rs`).

#![cfg(any(feature = "smol", feature = "async-std"))]

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use handoff::{DrainGroup, ExitReason, Handoff, Runtime, Signal};

/// Non-blocking and close-on-exec, as the registry promises.
fn assert_flags(what: &str, fd: impl AsFd) {
    let fd = fd.as_fd();
    let status = rustix::fs::fcntl_getfl(fd).unwrap();
    assert!(
        status.contains(rustix::fs::OFlags::NONBLOCK),
        "{what}: not non-blocking"
    );
    let flags = rustix::io::fcntl_getfd(fd).unwrap();
    assert!(
        flags.contains(rustix::io::FdFlags::CLOEXEC),
        "{what}: not close-on-exec"
    );
}

/// The bound address, whatever the wrapper type.
fn local_addr(fd: impl AsFd) -> std::net::SocketAddr {
    let any = rustix::net::getsockname(fd).unwrap();
    std::net::SocketAddr::try_from(any).unwrap()
}

fn temp_socket_path(tag: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{tag}.sock"));
    (dir, format!("unix:{}", path.display()))
}

/// Binds a TCP listener of type `$ty` through the registry, connects to it
/// from a std client, and accepts the connection on the runtime.
macro_rules! tcp_accepts {
    ($block_on:path, $ty:ty) => {{
        let what = stringify!($ty);
        let mut handoff = Handoff::new().unwrap();
        let listener: $ty = handoff.listen("tcp", "127.0.0.1:0").unwrap();
        assert_flags(what, &listener);
        let addr = local_addr(&listener);
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.write_all(b"x").unwrap();
        let (_stream, peer) = $block_on(listener.accept()).unwrap();
        assert_eq!(peer, client.local_addr().unwrap(), "{what}");
    }};
}

macro_rules! unix_accepts {
    ($block_on:path, $ty:ty) => {{
        let what = stringify!($ty);
        let (_dir, address) = temp_socket_path("unix");
        let mut handoff = Handoff::new().unwrap();
        let listener: $ty = handoff.listen("unix", &address).unwrap();
        assert_flags(what, &listener);
        let path = address.strip_prefix("unix:").unwrap();
        let _client = std::os::unix::net::UnixStream::connect(path).unwrap();
        $block_on(listener.accept()).unwrap();
    }};
}

macro_rules! udp_receives {
    ($block_on:path, $ty:ty) => {{
        let what = stringify!($ty);
        let mut handoff = Handoff::new().unwrap();
        let socket: $ty = handoff.listen("udp", "udp://127.0.0.1:0").unwrap();
        assert_flags(what, &socket);
        let addr = local_addr(&socket);
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"ping", addr).unwrap();
        let mut buf = [0u8; 16];
        let (n, peer) = $block_on(socket.recv_from(&mut buf)).unwrap();
        assert_eq!(&buf[..n], b"ping", "{what}");
        assert_eq!(peer, client.local_addr().unwrap(), "{what}");
    }};
}

/// The timer waits at least until its deadline, and not absurdly longer.
fn timer_waits<R: Runtime>(
    runtime: &R,
    block_on: impl FnOnce(futures_util::future::BoxFuture<'static, ()>),
) {
    let start = Instant::now();
    let deadline = start + Duration::from_millis(50);
    block_on(runtime.sleep_until(deadline));
    let took = start.elapsed();
    assert!(Instant::now() >= deadline, "woke before the deadline");
    assert!(took < Duration::from_secs(10), "the timer took {took:?}");
}

/// A signal sent to this process arrives on the stream (handlers are in
/// place when `signals` returns).
fn signal_arrives<R: Runtime>(
    runtime: &R,
    signal: Signal,
    block_on: impl FnOnce(futures_util::future::BoxFuture<'static, Option<Signal>>) -> Option<Signal>,
) {
    let mut stream = runtime.signals(&[signal]).unwrap();
    rustix::process::kill_process(
        rustix::process::getpid(),
        rustix::process::Signal::from_named_raw(signal.as_raw()).unwrap(),
    )
    .unwrap();
    let timeout = runtime.sleep_until(Instant::now() + Duration::from_secs(10));
    let got = block_on(Box::pin(async move {
        futures_util::pin_mut!(timeout);
        match futures_util::future::select(stream.next(), timeout).await {
            futures_util::future::Either::Left((got, _)) => got,
            futures_util::future::Either::Right(_) => None,
        }
    }));
    assert_eq!(got, Some(signal));
}

/// `run` drains: a tracked connection holds it until it is dropped, then
/// shutdown completes.
fn run_drains<R: Runtime + Clone>(
    runtime: R,
    block_on: impl FnOnce(
        futures_util::future::BoxFuture<'static, (ExitReason, Duration)>,
    ) -> (ExitReason, Duration),
) {
    let handoff = Handoff::builder()
        .restart_signals(&[])
        .shutdown_signals(&[])
        .build()
        .unwrap();
    let handle = handoff.handle();
    let group = DrainGroup::new();
    let tracked = group.track();
    let mut drained = group.signal();
    let timer = runtime.clone();
    let (reason, held) = block_on(Box::pin(async move {
        let started = Instant::now();
        let releaser = async move {
            (&mut drained).await;
            // The connection finishes its work a little after the drain signal.
            timer
                .sleep_until(Instant::now() + Duration::from_millis(100))
                .await;
            drop(tracked);
            std::future::pending::<()>().await
        };
        handle.shutdown();
        let run = handoff.run(runtime, group);
        futures_util::pin_mut!(run, releaser);
        match futures_util::future::select(run, releaser).await {
            futures_util::future::Either::Left((reason, _)) => (reason.unwrap(), started.elapsed()),
            futures_util::future::Either::Right(_) => unreachable!("pending"),
        }
    }));
    assert_eq!(reason, ExitReason::Shutdown);
    assert!(
        held >= Duration::from_millis(100),
        "run returned after {held:?}, before the tracked connection was dropped"
    );
}

#[cfg(feature = "smol")]
mod smol_adapter {
    use super::*;
    use handoff::smol::Smol;
    use smol::Async;

    #[test]
    fn listeners_come_from_the_registry_and_serve() {
        tcp_accepts!(smol::block_on, Async<std::net::TcpListener>);
        tcp_accepts!(smol::block_on, smol::net::TcpListener);
        unix_accepts!(smol::block_on, Async<std::os::unix::net::UnixListener>);
        unix_accepts!(smol::block_on, smol::net::unix::UnixListener);
        udp_receives!(smol::block_on, Async<std::net::UdpSocket>);
        udp_receives!(smol::block_on, smol::net::UdpSocket);
    }

    #[test]
    fn timer_and_signals() {
        timer_waits(&Smol::new(), smol::block_on);
        signal_arrives(&Smol::new(), Signal::Usr1, smol::block_on);
    }

    #[test]
    fn run_drains_then_returns() {
        run_drains(Smol::new(), smol::block_on);
    }
}

#[cfg(feature = "async-std")]
mod async_std_adapter {
    use super::*;
    use async_std::task::block_on;
    use handoff::async_std::AsyncStd;

    #[test]
    fn listeners_come_from_the_registry_and_serve() {
        tcp_accepts!(block_on, async_std::net::TcpListener);
        tcp_accepts!(block_on, async_io::Async<std::net::TcpListener>);
        unix_accepts!(block_on, async_std::os::unix::net::UnixListener);
        udp_receives!(block_on, async_std::net::UdpSocket);
    }

    #[test]
    fn timer_and_signals() {
        timer_waits(&AsyncStd, block_on);
        signal_arrives(&AsyncStd, Signal::Usr2, block_on);
    }

    #[test]
    fn run_drains_then_returns() {
        run_drains(AsyncStd, block_on);
    }
}
