//! [`State`]: what a generation is doing, as its [`Handle`](crate::Handle)
//! sees it, and the cell the driver publishes it in.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::error::Result;

/// What this generation is doing. Decided by the
/// [`Machine`](crate::machine::Machine); read with
/// [`Handle::state`](crate::Handle::state).
///
/// Readiness for a load balancer or Kubernetes: [`State::is_ready`] is true
/// while serving or restarting, and false from the moment a shutdown begins
/// (during the shutdown delay too, while connections are still served).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Before [`Handoff::run`](crate::Handoff::run) started.
    Starting,
    /// Accepting and serving.
    Serving,
    /// Accepting and serving while a successor starts.
    Restarting,
    /// A shutdown was asked for: unready, but still accepting and serving
    /// until the shutdown delay ends ([`Builder::shutdown_delay`](crate::Builder::shutdown_delay)).
    ShuttingDown,
    /// Not accepting; in-flight work finishes (handed over, or shutting down).
    Draining,
    /// The generation is done: `run()` returned or is about to.
    Done,
}

impl State {
    /// Whether a health check should send this generation new work: serving
    /// or restarting.
    pub fn is_ready(self) -> bool {
        matches!(self, State::Serving | State::Restarting)
    }

    /// Whether this generation accepts new connections.
    pub fn is_accepting(self) -> bool {
        matches!(
            self,
            State::Starting | State::Serving | State::Restarting | State::ShuttingDown
        )
    }

    /// A short lowercase name: `serving`, `shutting-down`...
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Serving => "serving",
            State::Restarting => "restarting",
            State::ShuttingDown => "shutting-down",
            State::Draining => "draining",
            State::Done => "done",
        }
    }

    fn from_u8(value: u8) -> State {
        match value {
            1 => State::Serving,
            2 => State::Restarting,
            3 => State::ShuttingDown,
            4 => State::Draining,
            5 => State::Done,
            _ => State::Starting,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            State::Starting => 0,
            State::Serving => 1,
            State::Restarting => 2,
            State::ShuttingDown => 3,
            State::Draining => 4,
            State::Done => 5,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the driver publishes the state for every handle.
#[derive(Debug)]
pub(crate) struct Published {
    state: AtomicU8,
    generation: AtomicU64,
    last_restart: Mutex<Option<Result<u32>>>,
}

impl Published {
    pub(crate) fn new(generation: u64) -> Self {
        Published {
            state: AtomicU8::new(State::Starting.to_u8()),
            generation: AtomicU64::new(generation),
            last_restart: Mutex::new(None),
        }
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Publishes `state`; true if it changed.
    pub(crate) fn set_state(&self, state: State) -> bool {
        self.state.swap(state.to_u8(), Ordering::AcqRel) != state.to_u8()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub(crate) fn last_restart(&self) -> Option<Result<u32>> {
        self.last_restart
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_last_restart(&self, result: &Result<u32>) {
        *self.last_restart.lock().unwrap_or_else(|e| e.into_inner()) = Some(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_and_only_serving_ones_are_ready() {
        let all = [
            State::Starting,
            State::Serving,
            State::Restarting,
            State::ShuttingDown,
            State::Draining,
            State::Done,
        ];
        for s in all {
            assert_eq!(State::from_u8(s.to_u8()), s);
        }
        let ready: Vec<_> = all.iter().filter(|s| s.is_ready()).collect();
        assert_eq!(ready, [&State::Serving, &State::Restarting]);
        assert!(State::ShuttingDown.is_accepting() && !State::Draining.is_accepting());
    }
}
