//! [`WithDraining`]: puts a [`Draining`] into every request's extensions.

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};

use super::{BoxError, Draining};

/// Wraps the application's service; each request carries the server's
/// [`Draining`] as an extension.
#[derive(Clone)]
pub(super) struct WithDraining<S> {
    inner: S,
    draining: Draining,
}

impl<S> WithDraining<S> {
    pub(super) fn new(inner: S, draining: Draining) -> Self {
        WithDraining { inner, draining }
    }
}

impl<S, B> Service<Request<B>> for WithDraining<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.draining.clone());
        self.inner.call(request)
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
