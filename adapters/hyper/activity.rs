//! [`Activity`]: what an HTTP/1 connection is doing, and so when draining
//! may close it without racing its client.
//!
//! HTTP/1.1 has no way to tell a keep-alive client "no more requests": a
//! server that closes an idle connection races a client that is sending its
//! next request on it, and that request fails. The rule, with `grace` the
//! server's [idle grace](super::Server::idle_grace):
//!
//! - a connection idle for longer than `grace` when draining starts is
//!   closed at once: its client is not in the middle of a conversation;
//! - one active more recently gets until its last activity + `grace` to
//!   send its next request, which is answered with `Connection: close`;
//! - a request in progress is answered with `Connection: close`.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests in progress on one HTTP/1 connection and when the last ended.
#[derive(Debug)]
pub(super) struct Activity {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    busy: usize,
    last: Instant,
}

/// What draining should do with the connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// Close it now (it is idle and its grace has passed).
    Now,
    /// Wait: it may close at this instant if still idle.
    At(Instant),
    /// A request is in progress: its response says `Connection: close`.
    AfterResponse,
}

impl Activity {
    /// A connection whose last activity was `since` (when it was accepted).
    pub(super) fn new(since: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(State {
                busy: 0,
                last: since,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request started; it is in progress until the guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.lock().busy += 1;
        Busy(self.clone())
    }

    /// The rule above, at `now`.
    pub(super) fn closing(&self, now: Instant, grace: Duration) -> Closing {
        let state = *self.lock();
        if state.busy > 0 {
            return Closing::AfterResponse;
        }
        let at = state.last + grace;
        if at <= now {
            Closing::Now
        } else {
            Closing::At(at)
        }
    }
}

/// A request in progress (see [`Activity::begin`]).
#[derive(Debug)]
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.busy -= 1;
        state.last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(1);

    #[test]
    fn idle_past_the_grace_closes_now() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(activity.closing(start + GRACE, GRACE), Closing::Now);
        assert_eq!(activity.closing(start + 2 * GRACE, GRACE), Closing::Now);
    }

    #[test]
    fn recently_active_waits_until_last_activity_plus_grace() {
        let start = Instant::now();
        let activity = Activity::new(start);
        assert_eq!(
            activity.closing(start + GRACE / 2, GRACE),
            Closing::At(start + GRACE)
        );
    }

    #[test]
    fn in_progress_closes_after_its_response_and_restarts_the_grace() {
        let start = Instant::now();
        let activity = Activity::new(start);
        let busy = activity.begin();
        let second = activity.begin();
        assert_eq!(
            activity.closing(start + 5 * GRACE, GRACE),
            Closing::AfterResponse
        );
        drop(busy);
        assert_eq!(
            activity.closing(start + 5 * GRACE, GRACE),
            Closing::AfterResponse
        );
        drop(second);
        let now = Instant::now();
        match activity.closing(now, GRACE) {
            Closing::At(at) => assert!(at > now && at <= now + GRACE),
            other => panic!("expected a deadline, got {other:?}"),
        }
    }
}
