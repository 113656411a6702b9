//! One connection, from accept to close: wait for the client's first bytes,
//! the TLS handshake, telling HTTP/1 from HTTP/2, then hyper, with graceful
//! shutdown when draining starts and a drop when the hammer falls.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};

use super::activity::{Activity, Closing};
use super::io::{ConnIo, LingerPolicy, Rewind};
use super::service::ConnService;
use super::{BoxError, Config, Draining, HttpBody, HttpRuntime, HttpService, Listener, PeerAddr};
use crate::Tracked;

/// The client connection preface of HTTP/2 (RFC 9113, section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    H1,
    H2,
}

/// The protocol, once the bytes read so far tell it.
fn version_of(prefix: &[u8]) -> Option<Version> {
    let n = prefix.len().min(H2_PREFACE.len());
    if prefix[..n] != H2_PREFACE[..n] {
        Some(Version::H1)
    } else if n == H2_PREFACE.len() {
        Some(Version::H2)
    } else {
        None
    }
}

/// How a wait for the client ended.
enum Step<T> {
    /// The awaited thing happened.
    Go(T),
    /// Close the connection cleanly: header read timeout, or draining with
    /// nothing received within the grace period.
    Close,
    /// The hammer fell: drop the connection.
    Abort,
}

/// Awaits `fut`, something the client has to make happen (send bytes, finish
/// a handshake), bounded by the header read timeout from `since`. When
/// draining starts and `may_close` holds (nothing received yet), the
/// connection is closed once `since + grace` has passed: a connection that
/// was accepted an instant before draining started gets the time to send the
/// request its client has already written.
async fn client_step<F: Future, R: HttpRuntime>(
    fut: F,
    draining: &Draining,
    config: &Config<R>,
    since: Instant,
    may_close: bool,
) -> Step<F::Output> {
    let timeout = async {
        match config.header_read_timeout {
            Some(t) => config.runtime.sleep_until(since + t).await,
            None => std::future::pending().await,
        }
    };
    let drained = async {
        draining.signal().await;
        if may_close {
            config.runtime.sleep_until(since + config.grace).await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        biased;
        _ = draining.hammer_signal() => Step::Abort,
        out = fut => Step::Go(out),
        _ = drained => Step::Close,
        _ = timeout => Step::Close,
    }
}

/// Shuts the write side down (FIN, or TLS close_notify then FIN); the
/// [`ConnIo`] underneath lingers once dropped.
async fn close<I: AsyncWrite + Unpin, R: HttpRuntime>(mut io: I, runtime: &R, limit: Duration) {
    tokio::select! {
        biased;
        _ = io.shutdown() => {}
        _ = runtime.sleep_until(Instant::now() + limit) => {}
    }
}

/// Serves one accepted connection from `peer`. `tracked` counts it until its
/// socket is dropped (after an upgrade, by the handler).
pub(super) async fn serve<R, L, S, B>(
    config: Arc<Config<R>>,
    stream: L::Stream,
    peer: PeerAddr,
    mut tracked: Tracked,
    service: S,
) where
    R: HttpRuntime,
    L: Listener,
    S: HttpService<B>,
    B: HttpBody,
{
    let accepted = Instant::now();
    let draining = tracked.draining().clone();
    match client_step(L::readable(&stream), &draining, &config, accepted, true).await {
        Step::Go(Ok(())) => {}
        Step::Go(Err(e)) => return tracing::debug!("connection failed before its first byte: {e}"),
        // Nothing was received: dropping sends a FIN, never a reset.
        Step::Close => return tracked.closed_idle(),
        Step::Abort => return,
    }
    let policy = LingerPolicy::default();
    let io = ConnIo::new(
        stream,
        tracked,
        config.linger,
        policy.clone(),
        config.runtime.clone(),
    );
    #[cfg(feature = "tls")]
    if let Some(acceptor) = config.tls.clone() {
        let tls = match client_step(acceptor.accept(io), &draining, &config, accepted, false).await
        {
            Step::Go(Ok(tls)) => tls,
            Step::Go(Err(e)) => return tracing::debug!("TLS handshake failed: {e}"),
            Step::Close | Step::Abort => return,
        };
        return http(config, draining, tls, policy, peer, service).await;
    }
    http(config, draining, io, policy, peer, service).await
}

/// Reads until HTTP/1 and HTTP/2 can be told apart, then runs hyper.
async fn http<R, I, S, B>(
    config: Arc<Config<R>>,
    draining: Draining,
    mut io: I,
    linger: LingerPolicy,
    peer: PeerAddr,
    service: S,
) where
    R: HttpRuntime,
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S: HttpService<B>,
    B: HttpBody,
{
    let since = Instant::now();
    let mut prefix = Vec::new();
    let version = loop {
        if let Some(version) = version_of(&prefix) {
            break version;
        }
        let mut chunk = [0u8; 1024];
        let read = io.read(&mut chunk);
        match client_step(read, &draining, &config, since, prefix.is_empty()).await {
            Step::Go(Ok(0)) => return close(io, &config.runtime, config.linger).await,
            Step::Close => {
                linger.closed_idle();
                return close(io, &config.runtime, config.linger).await;
            }
            Step::Go(Ok(n)) => prefix.extend_from_slice(&chunk[..n]),
            Step::Go(Err(e)) => return tracing::debug!("connection failed: {e}"),
            Step::Abort => return,
        }
    };
    let io = TokioIo::new(Rewind::new(prefix, io));
    let outcome = match version {
        Version::H1 => {
            // The first request is under way: the connection was active now.
            let activity = Activity::new(Instant::now());
            let closing = http1_closing(activity.clone(), &config, linger.clone());
            let service = ConnService::http1(service, draining.clone(), peer, activity, linger);
            let conn = config.h1.serve_connection(io, service).with_upgrades();
            drive(conn, &draining, closing).await
        }
        Version::H2 => {
            linger.wait_for_client();
            let service = ConnService::http2(service, draining.clone(), peer, linger);
            let conn = config.h2.serve_connection(io, service);
            drive(conn, &draining, |_| Poll::Ready(())).await
        }
    };
    match outcome {
        None => tracing::debug!(?version, "connection aborted"),
        Some(Err(e)) => tracing::debug!(?version, "connection ended with an error: {e}"),
        Some(Ok(())) => {}
    }
}

/// When draining may close an HTTP/1 connection: as [`Activity`] says, at
/// once if it has been idle for the grace; after the response if a request
/// is in progress (the response says `Connection: close`, see
/// [`ConnService`], and hyper closes after it); otherwise at its last
/// activity + grace unless a request comes first.
fn http1_closing<R: HttpRuntime>(
    activity: Arc<Activity>,
    config: &Config<R>,
    linger: LingerPolicy,
) -> impl FnMut(&mut Context<'_>) -> Poll<()> + use<R> {
    let grace = config.grace;
    let runtime = config.runtime.clone();
    let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
    move |cx| {
        loop {
            match activity.closing(Instant::now(), grace) {
                Closing::Now => {
                    linger.closed_idle();
                    return Poll::Ready(());
                }
                Closing::AfterResponse => return Poll::Pending,
                Closing::At(at) => {
                    if timer.as_ref().is_none_or(|(when, _)| *when != at) {
                        timer = Some((at, runtime.sleep_until(at)));
                    }
                    let (_, sleep) = timer.as_mut().expect("just set");
                    std::task::ready!(sleep.as_mut().poll(cx));
                    timer = None;
                }
            }
        }
    }
}

/// Polls a hyper connection to its end. Once draining starts, and
/// `closing` says it is time, the connection is shut down gracefully: an
/// idle HTTP/1 connection closes at once; HTTP/2 sends GOAWAY with the
/// highest stream id, a PING, and once the PING is answered GOAWAY with the
/// last stream id the server took (h2's two-step shutdown, RFC 9113 section
/// 6.8), so no stream the client sent before it saw the first GOAWAY is
/// refused. The connection is polled before each decision, so bytes the
/// client already sent are read and served. When the hammer falls the
/// connection is dropped, whatever it was doing.
async fn drive<C>(
    conn: C,
    draining: &Draining,
    mut closing: impl FnMut(&mut Context<'_>) -> Poll<()>,
) -> Option<C::Output>
where
    C: Future + GracefulShutdown,
{
    let mut conn = pin!(conn);
    let mut drained = draining.signal();
    let mut hammer = draining.hammer_signal();
    let mut shutting_down = false;
    poll_fn(move |cx| {
        if Pin::new(&mut hammer).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        loop {
            if let Poll::Ready(out) = conn.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            if shutting_down || Pin::new(&mut drained).poll(cx).is_pending() {
                return Poll::Pending;
            }
            std::task::ready!(closing(cx));
            conn.as_mut().graceful_shutdown();
            shutting_down = true;
        }
    })
    .await
}

/// hyper's connections, shut down gracefully.
trait GracefulShutdown {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulShutdown for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self)
    }
}

impl<I, S, B, E> GracefulShutdown for http2::Connection<I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_tells_the_version() {
        assert_eq!(version_of(b""), None);
        assert_eq!(version_of(b"PRI * HT"), None);
        assert_eq!(version_of(b"G"), Some(Version::H1));
        assert_eq!(version_of(b"PRI / HTTP/1.1\r\n"), Some(Version::H1));
        assert_eq!(version_of(H2_PREFACE), Some(Version::H2));
        assert_eq!(
            version_of(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"),
            Some(Version::H2)
        );
    }
}
