//! The accept loop of one listener: the core's
//! [`DrainGroup::accept_loop`], which pauses while draining and keeps the
//! listener, in case the successor dies and this generation resumes.

use std::future::Future;
use std::io;
use std::sync::Arc;

use super::{Config, HttpBody, HttpRuntime, HttpService, Listener, PeerAddr, connection};
use crate::{Accept, DrainGroup};

/// Accepts on `listener` and serves each connection in a task of its own.
pub(super) async fn accept_loop<R, L, S, B>(
    config: Arc<Config<R>>,
    group: DrainGroup,
    listener: L,
    service: S,
) where
    R: HttpRuntime,
    L: Listener,
    S: HttpService<B>,
    B: HttpBody,
{
    let runtime = config.runtime.clone();
    group
        .accept_loop(
            &runtime,
            Streams(listener),
            move |(stream, peer), tracked| {
                config.runtime.spawn(connection::serve::<R, L, S, B>(
                    config.clone(),
                    stream,
                    peer,
                    tracked,
                    service.clone(),
                ))
            },
        )
        .await
}

/// A [`Listener`] as the core's [`Accept`].
struct Streams<L>(L);

impl<L: Listener> Accept for Streams<L> {
    type Connection = (L::Stream, PeerAddr);

    fn accept(&self) -> impl Future<Output = io::Result<(L::Stream, PeerAddr)>> + Send {
        self.0.accept_stream()
    }
}
