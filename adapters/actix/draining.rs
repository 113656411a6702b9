//! [`Draining`] as an actix-web extractor.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use super::connections::ConnGuard;
use crate::Draining;

/// The drain as the request's connection sees it (see [`Draining`]): a
/// handler of a long-lived response awaits [`Draining::signal`] to wrap up.
/// Only in apps made by [`Server::app`](super::Server::app).
impl FromRequest for Draining {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(guard) = request.conn_data::<ConnGuard>() {
            return ready(Ok(guard.draining().clone()));
        }
        ready(
            request
                .app_data::<Draining>()
                .map(|app| app.group().draining())
                .ok_or_else(|| {
                    actix_web::error::ErrorInternalServerError(
                        "handoff::actix::Draining is only available in apps made by handoff::actix::Server::app",
                    )
                }),
        )
    }
}
