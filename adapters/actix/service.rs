//! The service every app served by [`Server`](super::Server) is wrapped in,
//! outermost, below actix-web's `App`: it counts each request as in flight
//! on its connection until its response is sent, and once draining has
//! started makes every response close its connection (`Connection: close`),
//! so keep-alive clients move to the new generation with no request lost
//! in between. A request body the app left unread is discarded before the
//! response goes out (see [`RequestBody`]), or the response closes the
//! connection.

use std::fmt;

use actix_http::{Request, Response};
use actix_service::IntoServiceFactory;
use actix_web::App;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{AppConfig, Service, ServiceFactory, ServiceResponse, forward_ready};
use actix_web::http::ConnectionType;
use futures_util::future::LocalBoxFuture;

use super::body::TrackedBody;
use super::connections::ConnGuard;
use super::request_body::RequestBody;
use crate::DrainGroup;

/// An actix-web `App` that drains with handoff: what the factory made by
/// [`Server::app`](super::Server::app) returns, for `HttpServer::new`.
pub struct DrainingApp<T> {
    app: App<T>,
    group: DrainGroup,
}

impl<T> DrainingApp<T> {
    pub(super) fn new(app: App<T>, group: DrainGroup) -> Self {
        DrainingApp { app, group }
    }
}

impl<T> fmt::Debug for DrainingApp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainingApp").finish_non_exhaustive()
    }
}

impl<T, S, B> IntoServiceFactory<DrainFactory<S>, Request> for DrainingApp<T>
where
    App<T>: IntoServiceFactory<S, Request>,
    S: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        > + 'static,
    B: MessageBody + 'static,
{
    fn into_factory(self) -> DrainFactory<S> {
        DrainFactory {
            inner: self.app.into_factory(),
            group: self.group,
        }
    }
}

/// Makes a [`DrainService`] for each actix worker, around the app's service.
pub struct DrainFactory<S> {
    inner: S,
    group: DrainGroup,
}

impl<S> fmt::Debug for DrainFactory<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainFactory").finish_non_exhaustive()
    }
}

impl<S, B> ServiceFactory<Request> for DrainFactory<S>
where
    S: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        > + 'static,
    B: MessageBody + 'static,
{
    type Response = Response<TrackedBody<EitherBody<B>>>;
    type Error = actix_web::Error;
    type Config = AppConfig;
    type Service = DrainService<S::Service>;
    type InitError = S::InitError;
    type Future = LocalBoxFuture<'static, Result<Self::Service, Self::InitError>>;

    fn new_service(&self, config: AppConfig) -> Self::Future {
        let service = self.inner.new_service(config);
        let group = self.group.clone();
        Box::pin(async move {
            Ok(DrainService {
                service: service.await?,
                group,
            })
        })
    }
}

/// The app's service on one actix worker, counting requests and closing
/// connections after their response once draining has started.
pub struct DrainService<S> {
    service: S,
    group: DrainGroup,
}

impl<S> fmt::Debug for DrainService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainService").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request> for DrainService<S>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = Response<TrackedBody<EitherBody<B>>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut request: Request) -> Self::Future {
        let guard = request.conn_data::<ConnGuard>();
        let busy = guard.map(ConnGuard::request);
        let draining = match guard {
            Some(guard) => guard.draining().clone(),
            None => self.group.draining(),
        };
        let body = RequestBody::take(&mut request);
        let response = self.service.call(request);
        Box::pin(async move {
            // An error becomes its response here rather than in actix, so
            // that it too can close the connection.
            let response = match response.await {
                Ok(response) => {
                    Response::<B>::from(response).map_body(|_, body| EitherBody::left(body))
                }
                Err(e) => Response::<BoxBody>::from(e).map_body(|_, body| EitherBody::right(body)),
            };
            let keep = match body {
                Some(body) => body.discard(&draining).await,
                None => true,
            };
            if let (false, Some(busy)) = (keep, &busy) {
                busy.body_unread();
            }
            Ok(response.map_body(|head, body| {
                // Decided when the app has answered: a request that was in
                // flight when draining started closes its connection too.
                if !keep || draining.is_draining() {
                    head.set_connection_type(ConnectionType::Close);
                }
                TrackedBody::new(body, busy)
            }))
        })
    }
}
