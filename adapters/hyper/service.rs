//! [`WithDraining`]: puts a [`Draining`] into every request's extensions.

use hyper::Request;
use hyper::service::Service;

use super::Draining;

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
