//! The accept loop of one listener.

use std::sync::Arc;
use std::time::Duration;

use super::{Config, HttpBody, HttpService, Listener, connection};
use crate::DrainGroup;

/// How long to wait after a failed accept (out of descriptors, for one)
/// before trying again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts until draining starts, then drops the listener: the successor
/// holds the same socket, so the kernel queue keeps every pending connection.
pub(super) async fn accept_loop<L, S, B>(
    config: Arc<Config>,
    group: DrainGroup,
    listener: L,
    service: S,
) where
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
                    tokio::spawn(connection::serve::<L, S, B>(
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
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }
    tracing::debug!("stopped accepting");
}
