//! The service hyper runs for each connection: the application's service,
//! wrapped so that every request carries the server's [`Draining`] and the
//! client's [`PeerAddr`], and, on
//! HTTP/1, so that no response leaves the connection in a state its client
//! did not hear about:
//!
//! - a request body the handler left unread is drained by hyper before the
//!   response head is written, so that when it cannot be (the rest has not
//!   arrived), the head says `Connection: close` (see [`ResponseFuture`]);
//! - once draining has started, every response says `Connection: close`;
//! - the connection's [`Activity`] (requests in progress, when the last one
//!   ended) tells the connection when it may close while draining.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING, UPGRADE};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode, Version};

use super::activity::{Activity, Busy};
use super::io::LingerPolicy;
use super::{BoxError, Draining, PeerAddr};
use crate::telemetry;

/// Wraps the application's service for one connection.
#[derive(Clone)]
pub(super) struct ConnService<S> {
    inner: S,
    draining: Draining,
    /// The client, cloned into each request.
    peer: PeerAddr,
    /// `Some` on HTTP/1 connections.
    activity: Option<Arc<Activity>>,
    /// How the connection lingers once closed.
    linger: LingerPolicy,
}

impl<S> ConnService<S> {
    /// For an HTTP/1 connection: responses follow the connection's rules.
    pub(super) fn http1(
        inner: S,
        draining: Draining,
        peer: PeerAddr,
        activity: Arc<Activity>,
        linger: LingerPolicy,
    ) -> Self {
        ConnService {
            inner,
            draining,
            peer,
            activity: Some(activity),
            linger,
        }
    }

    /// For an HTTP/2 connection, drained with GOAWAY: requests only get the
    /// [`Draining`] and [`PeerAddr`] extensions.
    pub(super) fn http2(
        inner: S,
        draining: Draining,
        peer: PeerAddr,
        linger: LingerPolicy,
    ) -> Self {
        ConnService {
            inner,
            draining,
            peer,
            activity: None,
            linger,
        }
    }
}

/// Whether an HTTP/1 request announces a body (RFC 9112, section 6.3).
fn has_body<B>(request: &Request<B>) -> bool {
    let headers = request.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

/// Whether the request asks to switch protocols: its response may be a 101
/// that hands the connection over, which must not say `Connection: close`.
fn wants_upgrade<B>(request: &Request<B>) -> bool {
    request.method() == Method::CONNECT || request.headers().contains_key(UPGRADE)
}

impl<S, B> Service<Request<Incoming>> for ConnService<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<ActivityBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, B>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let extensions = request.extensions_mut();
        extensions.insert(self.draining.clone());
        extensions.insert(self.peer.clone());
        let http1 = self.activity.is_some() && request.version() <= Version::HTTP_11;
        let body = has_body(&request);
        if http1 && body {
            // If the connection closes with this body unread, the client may
            // still be sending it: closing must wait for the client, whatever
            // the socket's queues say between two segments.
            self.linger.wait_for_client();
        }
        let rules = self
            .activity
            .as_ref()
            .filter(|_| http1)
            .map(|activity| Rules {
                busy: activity.begin(),
                yield_before_head: body,
                upgrade: wants_upgrade(&request),
                draining: self.draining.clone(),
            });
        ResponseFuture {
            inner: self.inner.call(request),
            rules,
            ready: None,
            counted: Some(telemetry::InFlight::request()),
        }
    }
}

/// What an HTTP/1 response is held to.
struct Rules {
    /// Counts the request as in progress until its response body is gone.
    busy: Busy,
    /// The request announced a body: give hyper one turn to drain what the
    /// handler left unread before the head is written.
    yield_before_head: bool,
    /// The request asked for an upgrade.
    upgrade: bool,
    draining: Draining,
}

pin_project_lite::pin_project! {
    /// The application's response future, then the rules above.
    ///
    /// Why the turn before the head: hyper notices that a handler dropped the
    /// request body unread only when it next reads, and then drains what has
    /// already arrived or, failing that, disables keep-alive. If the head was
    /// already written by then, the connection closes after a response that
    /// promised to keep it open, and a client that sent its next request on it
    /// sees the connection closed without a response. Taking one turn (waking
    /// the task and returning `Pending` once) lets hyper read first, so the
    /// head it writes tells the truth: kept alive, or `Connection: close`.
    pub(super) struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        rules: Option<Rules>,
        ready: Option<Response<B>>,
        // The `metrics` feature's gauge of requests in flight, handed to
        // the body: a request counts until its response is sent.
        counted: Option<telemetry::InFlight>,
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ActivityBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.ready.take() {
            Some(response) => response,
            None => match std::task::ready!(this.inner.poll(cx)) {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(response) => {
                    if let Some(rules) = this.rules.as_mut().filter(|r| r.yield_before_head) {
                        rules.yield_before_head = false;
                        *this.ready = Some(response);
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    response
                }
            },
        };
        let Some(rules) = this.rules.take() else {
            let counted = this.counted.take();
            return Poll::Ready(Ok(response.map(|body| ActivityBody {
                inner: body,
                busy: None,
                counted,
            })));
        };
        let mut response = response;
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if rules.draining.is_draining() && !(rules.upgrade && switching) {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let (busy, counted) = (Some(rules.busy), this.counted.take());
        Poll::Ready(Ok(response.map(|body| ActivityBody {
            inner: body,
            busy,
            counted,
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in progress until
    /// hyper has sent it in full (and dropped it).
    pub(super) struct ActivityBody<B> {
        #[pin]
        inner: B,
        busy: Option<Busy>,
        counted: Option<telemetry::InFlight>,
    }
}

impl<B: Body> Body for ActivityBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A hyper service the server can run: cloned for each connection, with
/// futures that may move between tasks and errors any `BoxError` can hold.
///
/// Implemented for every service that qualifies; it only names the bounds.
pub trait HttpService<B: HttpBody>:
    Service<
        Request<Incoming>,
        Response = Response<B>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> HttpService<B> for S
where
    B: HttpBody,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
}

/// A response body the server can send: movable between tasks, with errors
/// any `BoxError` can hold.
///
/// Implemented for every body that qualifies; it only names the bounds.
pub trait HttpBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> HttpBody for B
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
}
