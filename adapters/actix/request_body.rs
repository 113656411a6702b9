//! [`RequestBody`]: an HTTP/1.1 request's body, read by the app through a
//! shared handle, and what the app left of it discarded after its response
//! (up to [`DISCARD_LIMIT`]), so that an unread body does not cost the
//! connection.
//!
//! actix-http closes a connection whose request body was not read to its end
//! when the response is done, without saying so in the response: a client
//! that reuses the connection for its next request (Python's `http.client`,
//! any client that never retries) sees it fail. Like Go's `net/http`, the
//! adapter reads and discards the rest before the response head goes out;
//! when that is too much or too slow, the response says `Connection: close`.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::header::CONTENT_LENGTH;
use actix_http::{Method, Payload, Request};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;
use futures_util::future::{Either, select};

use crate::Draining;

/// How much of a request body the app left unread is read and discarded to
/// keep the connection (Go's `net/http` uses the same bound).
pub(super) const DISCARD_LIMIT: u64 = 256 * 1024;

/// How long the rest of a request body may take to arrive after the app's
/// response is ready.
pub(super) const DISCARD_TIMEOUT: Duration = Duration::from_secs(1);

/// The body of one HTTP/1.1 request, shared by the app (which reads it
/// through [`AppBody`]) and the adapter (which discards what is left).
pub(super) struct RequestBody {
    state: Rc<RefCell<State>>,
    /// `Content-Length`, when the request announced one.
    length: Option<u64>,
}

struct State {
    payload: Payload,
    /// Bytes read so far, by the app or the adapter.
    read: u64,
    /// The body was read to its end.
    done: bool,
}

impl State {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, PayloadError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let next = Pin::new(&mut self.payload).poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => self.read += chunk.len() as u64,
            Poll::Ready(None) => self.done = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        next
    }
}

/// The request body as the app reads it.
struct AppBody(Rc<RefCell<State>>);

impl Stream for AppBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.borrow_mut().poll_chunk(cx)
    }
}

impl RequestBody {
    /// Takes the body of an HTTP/1.1 request that has one and gives the app
    /// a stream reading through it. `None` for requests the adapter leaves
    /// alone: no body; HTTP/2 (an unread body costs the stream, which the
    /// server resets with `NO_ERROR` after its complete response, not the
    /// connection); upgrades and `CONNECT` (the body is the tunnel).
    pub(super) fn take(request: &mut Request) -> Option<RequestBody> {
        if !matches!(request.payload(), Payload::H1 { .. })
            || request.head().upgrade()
            || request.method() == Method::CONNECT
        {
            return None;
        }
        let length = request
            .head()
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let payload = request.take_payload();
        let state = Rc::new(RefCell::new(State {
            payload,
            read: 0,
            done: false,
        }));
        let app: actix_http::BoxedPayloadStream = Box::pin(AppBody(state.clone()));
        *request.payload() = Payload::Stream { payload: app };
        Some(RequestBody { state, length })
    }

    /// Once the app's response is ready, reads and discards what the app left
    /// of the body: up to [`DISCARD_LIMIT`] bytes, for at most
    /// [`DISCARD_TIMEOUT`], and not once draining has started (the response
    /// closes the connection then anyway). Returns whether the connection
    /// may be kept: the body was read to its end.
    ///
    /// A body the app still holds (a response streaming it back, a spawned
    /// task) is the app's: it is left alone, and actix closes the connection
    /// if it is not read to its end.
    pub(super) async fn discard(self, draining: &Draining) -> bool {
        if Rc::strong_count(&self.state) > 1 {
            return true;
        }
        let read = {
            let state = self.state.borrow();
            if state.done {
                return true;
            }
            state.read
        };
        if draining.is_draining() {
            return false;
        }
        if self
            .length
            .is_some_and(|length| length.saturating_sub(read) > DISCARD_LIMIT)
        {
            tracing::debug!(
                length = self.length,
                read,
                "request body left unread is over the discard limit: closing after the response"
            );
            return false;
        }
        let mut discarded = 0u64;
        let rest = poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            loop {
                match state.poll_chunk(cx) {
                    Poll::Ready(Some(Ok(chunk))) => {
                        discarded += chunk.len() as u64;
                        if discarded > DISCARD_LIMIT {
                            return Poll::Ready(false);
                        }
                    }
                    Poll::Ready(None) => return Poll::Ready(true),
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!("request body failed while discarding it: {e}");
                        return Poll::Ready(false);
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        let timeout = pin!(tokio::time::sleep(DISCARD_TIMEOUT));
        let stop = select(timeout, draining.signal());
        match select(pin!(rest), stop).await {
            Either::Left((kept, _)) => {
                if !kept {
                    tracing::debug!(
                        discarded,
                        "request body left unread is over the discard limit: closing after the response"
                    );
                }
                kept
            }
            Either::Right(_) => {
                tracing::debug!(
                    discarded,
                    "the rest of the request body did not come in time: closing after the response"
                );
                false
            }
        }
    }
}
