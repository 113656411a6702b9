//! The accept loop of one listener.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Config, HttpBody, HttpRuntime, HttpService, Listener, connection};
use crate::DrainGroup;

/// How long to wait after a failed accept (out of descriptors, for one)
/// before trying again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts until draining starts, then drops the listener: the successor
/// holds the same socket, so the kernel queue keeps every pending connection.
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
    // The group is not idle until the loop has stopped: otherwise it could look
    // idle between an accept() and the track() of that connection, and the
    // process would exit with the new connection unread (a reset).
    let _accepting = group.accepting();
    let mut drained = group.signal();
    loop {
        tokio::select! {
            biased;
            _ = &mut drained => break,
            accepted = listener.accept_stream() => match accepted {
                Ok(stream) => {
                    let tracked = group.track();
                    config.runtime.spawn(connection::serve::<R, L, S, B>(
                        config.clone(),
                        group.clone(),
                        stream,
                        tracked,
                        service.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::select! {
                        _ = &mut drained => break,
                        _ = config.runtime.sleep_until(Instant::now() + ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }
    tracing::debug!("stopped accepting");
}
