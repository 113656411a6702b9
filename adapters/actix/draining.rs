//! [`Draining`]: the drain signal, as an actix-web extractor.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use crate::{DrainGroup, DrainSignal};

/// Whether this generation is draining, for handlers: an extractor (and the
/// app data of every app made by [`Server::app`](super::Server::app)).
///
/// Long-lived handlers (streaming responses, WebSockets) await
/// [`signal`](Draining::signal) to wrap up, and may await
/// [`hammer_signal`](Draining::hammer_signal) to stop at once.
///
/// ```no_run
/// use actix_web::HttpResponse;
/// use handoff::actix::Draining;
///
/// async fn status(draining: Draining) -> HttpResponse {
///     if draining.is_draining() {
///         HttpResponse::Ok().body("draining; the next request goes to the new generation\n")
///     } else {
///         HttpResponse::Ok().body("serving\n")
///     }
/// }
/// ```
///
/// Extracting it in an app that handoff does not serve fails with
/// 500 Internal Server Error.
#[derive(Debug, Clone)]
pub struct Draining {
    group: DrainGroup,
}

impl Draining {
    pub(super) fn new(group: DrainGroup) -> Self {
        Draining { group }
    }

    /// Resolves when draining starts (at once if it has).
    pub fn signal(&self) -> DrainSignal {
        self.group.signal()
    }

    /// Resolves when what is still in flight is to be aborted (the stop
    /// timeout passed); actix then drops every connection it serves.
    pub fn hammer_signal(&self) -> DrainSignal {
        self.group.hammer_signal()
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.group.is_draining()
    }
}

impl FromRequest for Draining {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(request.app_data::<Draining>().cloned().ok_or_else(|| {
            actix_web::error::ErrorInternalServerError(
                "handoff::actix::Draining is only available in apps made by handoff::actix::Server::app",
            )
        }))
    }
}
