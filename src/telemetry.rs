//! Metrics through the `metrics` facade (feature `metrics`): what the driver
//! and the adapters count. Without the feature every function here is empty.
//!
//! Names (all prefixed `handoff_`; see the crate docs, "Metrics"):
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `handoff_generation` | gauge | this process's generation: 1, then one more per restart |
//! | `handoff_ready` | gauge | 1 while serving (restarts included), 0 from shutdown on |
//! | `handoff_restarts_total{result="ok"/"failed"}` | counter | restart attempts by result |
//! | `handoff_restart_duration_seconds{result}` | histogram | request (signal, handle) to successor ready, or to the failure; measured where the restart ran, recorded where it is scraped |
//! | `handoff_successors_lost_total` | counter | successors that died after ready, listeners taken back |
//! | `handoff_connections_in_flight` | gauge | connections open |
//! | `handoff_requests_in_flight` | gauge | requests being answered (HTTP adapters) |
//! | `handoff_connections_drained_total` | counter | connections that ended on their own during a drain |
//! | `handoff_connections_closed_idle_total` | counter | idle connections closed by a drain |
//! | `handoff_connections_hammered_total` | counter | connections aborted at the stop timeout |
//!
//! Handles are taken once, at the first use after [`init`] (called by
//! `Builder::build` and `launch`): install the recorder before that.
//!
//! The counters are the service's, not one process's, so that a scrape of
//! whichever generation serves sees them all: a successor starts from its
//! parent's counts (`HANDOFF_COUNTS`, with the restart that made it counted
//! ok), and the parent, once drained, sends it what its drain counted; a
//! supervisor gathers what its workers' drains counted and passes its counts
//! to each worker it starts and to the serving worker whenever they change.

#![allow(dead_code)] // which parts are used depends on the adapters built

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

macro_rules! with {
    (|$h:ident| $body:expr) => {{
        #[cfg(feature = "metrics")]
        {
            let $h = on::handles();
            $body;
        }
    }};
}

/// The service's counters so far: restart attempts by result, and how
/// drained connections ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub ok: u64,
    pub failed: u64,
    pub lost: u64,
    pub drained: u64,
    pub closed_idle: u64,
    pub hammered: u64,
}

impl Counts {
    /// `ok:failed:lost:drained:closed_idle:hammered`.
    pub(crate) fn encode(&self) -> String {
        let c = self;
        let fields = [c.ok, c.failed, c.lost, c.drained, c.closed_idle, c.hammered];
        fields.map(|n| n.to_string()).join(":")
    }

    pub(crate) fn from_fields(
        [ok, failed, lost, drained, closed_idle, hammered]: [u64; 6],
    ) -> Self {
        Counts {
            ok,
            failed,
            lost,
            drained,
            closed_idle,
            hammered,
        }
    }
}

/// The counts behind the counters (kept with or without a recorder, so they
/// can be passed on): ok, failed, lost, drained, closed idle, hammered.
static COUNTS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
/// What this process's drains counted (drained, closed idle, hammered), to
/// send on once it is done.
static OWN_DRAIN: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
const OK: usize = 0;
const FAILED: usize = 1;
const LOST: usize = 2;
const DRAINED: usize = 3;
const CLOSED_IDLE: usize = 4;
const HAMMERED: usize = 5;

/// The service's counts as this process knows them.
pub(crate) fn counts() -> Counts {
    Counts::from_fields(std::array::from_fn(|i| COUNTS[i].load(Ordering::Relaxed)))
}

/// What this process's own drains counted: `(drained, closed idle, hammered)`.
pub(crate) fn own_drain() -> [u64; 3] {
    std::array::from_fn(|i| OWN_DRAIN[i].load(Ordering::Relaxed))
}

/// Takes over the service's counts (from the parent or supervisor).
pub(crate) fn set_counts(counts: Counts) {
    let fields = [
        counts.ok,
        counts.failed,
        counts.lost,
        counts.drained,
        counts.closed_idle,
        counts.hammered,
    ];
    for (count, value) in COUNTS.iter().zip(fields) {
        count.store(value, Ordering::Relaxed);
    }
    with!(|h| {
        h.restarts_ok.absolute(counts.ok);
        h.restarts_failed.absolute(counts.failed);
        h.lost.absolute(counts.lost);
        h.drained.absolute(counts.drained);
        h.closed_idle.absolute(counts.closed_idle);
        h.hammered.absolute(counts.hammered);
    });
}

/// Adds what another generation's drain counted (it has exited).
pub(crate) fn add_drain([drained, closed_idle, hammered]: [u64; 3]) {
    let mut c = counts();
    c.drained += drained;
    c.closed_idle += closed_idle;
    c.hammered += hammered;
    set_counts(c);
}

/// The metric names, for the docs and the tests.
pub(crate) mod names {
    pub const GENERATION: &str = "handoff_generation";
    pub const READY: &str = "handoff_ready";
    pub const RESTARTS: &str = "handoff_restarts_total";
    pub const RESTART_DURATION: &str = "handoff_restart_duration_seconds";
    pub const SUCCESSORS_LOST: &str = "handoff_successors_lost_total";
    pub const CONNECTIONS: &str = "handoff_connections_in_flight";
    pub const REQUESTS: &str = "handoff_requests_in_flight";
    pub const DRAINED: &str = "handoff_connections_drained_total";
    pub const CLOSED_IDLE: &str = "handoff_connections_closed_idle_total";
    pub const HAMMERED: &str = "handoff_connections_hammered_total";
}

#[cfg(feature = "metrics")]
mod on {
    use std::sync::OnceLock;

    use metrics::{Counter, Gauge, Histogram};

    use super::names::*;

    pub(super) struct Handles {
        pub generation: Gauge,
        pub ready: Gauge,
        pub restarts_ok: Counter,
        pub restarts_failed: Counter,
        pub duration_ok: Histogram,
        pub duration_failed: Histogram,
        pub lost: Counter,
        pub connections: Gauge,
        pub requests: Gauge,
        pub drained: Counter,
        pub closed_idle: Counter,
        pub hammered: Counter,
    }

    pub(super) fn handles() -> &'static Handles {
        static HANDLES: OnceLock<Handles> = OnceLock::new();
        HANDLES.get_or_init(|| {
            metrics::describe_gauge!(
                GENERATION,
                "This process's generation: 1, then one more per restart."
            );
            metrics::describe_gauge!(
                READY,
                "1 while this generation serves, 0 once it shuts down or drains."
            );
            metrics::describe_counter!(RESTARTS, "Restart attempts, by result.");
            metrics::describe_histogram!(
                RESTART_DURATION,
                metrics::Unit::Seconds,
                "From the restart request to the successor's ready (or the failure)."
            );
            metrics::describe_counter!(
                SUCCESSORS_LOST,
                "Successors that died after ready; this generation took its listeners back."
            );
            metrics::describe_gauge!(CONNECTIONS, "Connections open.");
            metrics::describe_gauge!(REQUESTS, "Requests being answered.");
            metrics::describe_counter!(
                DRAINED,
                "Connections that ended on their own while draining."
            );
            metrics::describe_counter!(CLOSED_IDLE, "Idle connections closed by a drain.");
            metrics::describe_counter!(HAMMERED, "Connections aborted at the stop timeout.");
            Handles {
                generation: metrics::gauge!(GENERATION),
                ready: metrics::gauge!(READY),
                restarts_ok: metrics::counter!(RESTARTS, "result" => "ok"),
                restarts_failed: metrics::counter!(RESTARTS, "result" => "failed"),
                duration_ok: metrics::histogram!(RESTART_DURATION, "result" => "ok"),
                duration_failed: metrics::histogram!(RESTART_DURATION, "result" => "failed"),
                lost: metrics::counter!(SUCCESSORS_LOST),
                connections: metrics::gauge!(CONNECTIONS),
                requests: metrics::gauge!(REQUESTS),
                drained: metrics::counter!(DRAINED),
                closed_idle: metrics::counter!(CLOSED_IDLE),
                hammered: metrics::counter!(HAMMERED),
            }
        })
    }
}

/// Takes the handles from the recorder installed now (feature `metrics`).
pub(crate) fn init() {
    with!(|_h| {});
}

/// This process's generation.
pub(crate) fn generation(generation: u64) {
    let _ = generation;
    with!(|h| h.generation.set(generation as f64));
}

/// Whether this generation reports ready.
pub(crate) fn ready(ready: bool) {
    let _ = ready;
    with!(|h| h.ready.set(if ready { 1.0 } else { 0.0 }));
}

/// A restart attempt ended; `took` since it was asked for, if known.
pub(crate) fn restart(ok: bool, took: Option<Duration>) {
    let _ = (ok, took);
    COUNTS[if ok { OK } else { FAILED }].fetch_add(1, Ordering::Relaxed);
    with!(|h| {
        let (count, duration) = match ok {
            true => (&h.restarts_ok, &h.duration_ok),
            false => (&h.restarts_failed, &h.duration_failed),
        };
        count.increment(1);
        if let Some(took) = took {
            duration.record(took.as_secs_f64());
        }
    });
}

/// How long a restart took, measured by the process that ran it (the old
/// generation, or the supervisor) and passed on to the one that serves.
pub(crate) fn restart_took(ok: bool, took: Duration) {
    let _ = (ok, took);
    with!(|h| match ok {
        true => h.duration_ok.record(took.as_secs_f64()),
        false => h.duration_failed.record(took.as_secs_f64()),
    });
}

/// A drain's counts as a line of the channels:
/// `C drained:closed_idle:hammered`.
pub(crate) fn drain_line([drained, closed_idle, hammered]: [u64; 3]) -> String {
    format!("C {drained}:{closed_idle}:{hammered}\n")
}

/// Parses [`drain_line`]'s line (its end of line optional).
pub(crate) fn parse_drain_line(line: &str) -> Option<[u64; 3]> {
    let counts = line.trim_end().strip_prefix("C ")?;
    crate::protocol::parse_counts(crate::protocol::ENV_COUNTS, counts).ok()
}

/// A restart's duration as a line of the channels: `T ok|failed SECONDS`.
pub(crate) fn took_line(ok: bool, took: Duration) -> String {
    let result = if ok { "ok" } else { "failed" };
    format!("T {result} {:.6}\n", took.as_secs_f64())
}

/// Parses what follows `T ` in [`took_line`]'s line; at most a day.
pub(crate) fn parse_took(text: &str) -> Option<(bool, Duration)> {
    let (result, secs) = text.trim().split_once(' ')?;
    let ok = match result {
        "ok" => true,
        "failed" => false,
        _ => return None,
    };
    let secs: f64 = secs.parse().ok()?;
    let took = Duration::try_from_secs_f64(secs).ok()?;
    (took <= Duration::from_secs(86_400)).then_some((ok, took))
}

/// A successor died after ready; its listeners were taken back.
pub(crate) fn successor_lost() {
    COUNTS[LOST].fetch_add(1, Ordering::Relaxed);
    with!(|h| h.lost.increment(1));
}

/// A connection ended; counted by how, if a drain saw it: aborted by the
/// hammer, closed idle by the drain (`closed_idle`: its server says so), or
/// ended on its own while draining (`drained`). Free without the feature.
pub(crate) fn connection_ended(
    hammered: impl FnOnce() -> bool,
    closed_idle: bool,
    drained: impl FnOnce() -> bool,
) {
    if !cfg!(feature = "metrics") {
        return;
    }
    let which = if hammered() {
        HAMMERED
    } else if closed_idle {
        CLOSED_IDLE
    } else if drained() {
        DRAINED
    } else {
        return;
    };
    COUNTS[which].fetch_add(1, Ordering::Relaxed);
    OWN_DRAIN[which - DRAINED].fetch_add(1, Ordering::Relaxed);
    with!(|h| match which {
        HAMMERED => h.hammered.increment(1),
        CLOSED_IDLE => h.closed_idle.increment(1),
        _ => h.drained.increment(1),
    });
}

/// Counts a connection, or a request, in flight while it lives.
#[derive(Debug)]
#[must_use]
pub(crate) struct InFlight(Unit);

#[derive(Debug, Clone, Copy)]
enum Unit {
    Connection,
    Request,
}

impl InFlight {
    /// A connection: `handoff_connections_in_flight`.
    pub(crate) fn connection() -> Self {
        InFlight::new(Unit::Connection)
    }

    /// A request: `handoff_requests_in_flight`.
    pub(crate) fn request() -> Self {
        InFlight::new(Unit::Request)
    }

    fn new(unit: Unit) -> Self {
        let _ = unit;
        with!(|h| Self::gauge(h, unit).increment(1.0));
        InFlight(unit)
    }

    #[cfg(feature = "metrics")]
    fn gauge(h: &on::Handles, unit: Unit) -> &metrics::Gauge {
        match unit {
            Unit::Connection => &h.connections,
            Unit::Request => &h.requests,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        with!(|h| Self::gauge(h, self.0).decrement(1.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_line_round_trips() {
        assert_eq!(parse_drain_line(&drain_line([3, 2, 1])), Some([3, 2, 1]));
        let line = took_line(true, Duration::from_micros(12_500));
        assert_eq!(
            parse_took(line.trim_end().strip_prefix("T ").unwrap()),
            Some((true, Duration::from_micros(12_500)))
        );
    }

    #[test]
    fn the_lines_of_the_channels_parse_bounded_else_not_at_all() {
        assert_eq!(parse_drain_line("C 3:2:1\n"), Some([3, 2, 1]));
        assert_eq!(parse_drain_line("C 0:0:9"), Some([0, 0, 9]));
        for bad in [
            "",
            "C 3:2\n",
            "C 1:2:3:4\n",
            "C a:b:c\n",
            "3:2:1",
            "T ok 0.1",
        ] {
            assert_eq!(parse_drain_line(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_took("ok 0.012500"),
            Some((true, Duration::from_micros(12_500)))
        );
        for bad in ["", "ok", "fine 1", "ok -1", "ok NaN", "ok 1e9", "failed x"] {
            assert_eq!(parse_took(bad), None, "{bad:?}");
        }
    }
}
