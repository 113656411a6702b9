//! [`TrackedBody`]: a response body that counts its request as in flight
//! until it has been sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;

use super::connections::Busy;

/// The response body of an app served by [`Server`](super::Server): the
/// app's body, counting its request as in flight until the last chunk is
/// out (or actix drops it).
pub struct TrackedBody<B> {
    body: Pin<Box<B>>,
    busy: Option<Busy>,
}

impl<B> TrackedBody<B> {
    pub(super) fn new(body: B, busy: Option<Busy>) -> Self {
        TrackedBody {
            body: Box::pin(body),
            busy,
        }
    }
}

impl<B> std::fmt::Debug for TrackedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedBody")
            .field("in_flight", &self.busy.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: MessageBody> MessageBody for TrackedBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let next = self.body.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            self.busy = None;
        }
        next
    }
}
