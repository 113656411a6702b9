//! Property tests for the restart state machine, driven through the real
//! `Driver` against a fake host (tests/machine_world).
//!
//! A run is a generated [`Scenario`]: timeouts, whether this generation's
//! parent is still alive, up to 60 world moves, and how the world settles at
//! the end. Each move becomes the events a real world could produce given
//! what the host was asked so far, plus some nonsense a buggy or racy world
//! might deliver: events for unknown pids, a `SpawnFailed` nobody asked for,
//! `DrainIdle` at any time, `ChildReady` from a child that already exited,
//! early Ticks, a second `ParentExited`, a duplicate of the previous event.
//! Each property is a check over the run's trace; a failure prints the whole
//! (shrunk) run.

mod machine_world;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use handoff::machine::{Action, Event, ExitReason, Timeouts};
use handoff::{Error, State};
use machine_world::{Check, Origin, Settle, Trace, World};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

/// How an `Advance` move treats deadlines that fall inside the jump.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// The clock stops at each deadline and a Tick is delivered right then.
    Punctual,
    /// The clock jumps to the end; Ticks due are delivered then (late).
    Late,
    /// The clock jumps and no Tick is delivered (the world lags).
    Silent,
}

#[derive(Debug, Clone)]
enum Nonsense {
    ReadyUnknownPid,
    ExitedUnknownPid,
    SpawnedUnknownPid,
    SpawnFailedUnasked,
    DrainIdleAnyTime,
    EarlyTick,
    ParentExitedAgain,
    ReadyAfterExit(Index),
    DuplicatePrevious,
}

/// One move of the world.
#[derive(Debug, Clone)]
enum Move {
    Advance {
        ms: u64,
        clock: Clock,
    },
    Restart,
    Shutdown,
    /// A live child that has not said ready says ready (a child told
    /// KillChild may still do so: the kill races with its message).
    ChildReady(Index),
    /// A live child exits (crash, kill landing, or the successor dying).
    ChildExits(Index),
    /// A live child that said ready says it stops deliberately (it was told
    /// to shut down).
    ChildStops(Index),
    ParentExits,
    WorkArrives,
    WorkFinishes,
    ReportIdle,
    Nonsense(Nonsense),
}

#[derive(Debug, Clone)]
struct Scenario {
    timeouts: Timeouts,
    parent_alive: bool,
    /// Each move with whether a spawn it provokes fails.
    moves: Vec<(Move, bool)>,
    settle: Settle,
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        2 => (1u64..2_000).prop_map(Duration::from_millis),
        6 => (1u64..=60).prop_map(Duration::from_secs),
    ]
}

fn clock() -> impl Strategy<Value = Clock> {
    prop_oneof![4 => Just(Clock::Punctual), 2 => Just(Clock::Late), 1 => Just(Clock::Silent)]
}

fn nonsense() -> impl Strategy<Value = Nonsense> {
    prop_oneof![
        1 => Just(Nonsense::ReadyUnknownPid),
        1 => Just(Nonsense::ExitedUnknownPid),
        1 => Just(Nonsense::SpawnedUnknownPid),
        1 => Just(Nonsense::SpawnFailedUnasked),
        1 => Just(Nonsense::DrainIdleAnyTime),
        1 => Just(Nonsense::EarlyTick),
        1 => Just(Nonsense::ParentExitedAgain),
        1 => any::<Index>().prop_map(Nonsense::ReadyAfterExit),
        2 => Just(Nonsense::DuplicatePrevious),
    ]
}

fn world_move() -> impl Strategy<Value = Move> {
    prop_oneof![
        // Mostly short steps (seconds), sometimes long jumps (up to 120 s).
        18 => (0u64..5_000, clock()).prop_map(|(ms, clock)| Move::Advance { ms, clock }),
        12 => (0u64..120_000, clock()).prop_map(|(ms, clock)| Move::Advance { ms, clock }),
        14 => Just(Move::Restart),
        3 => Just(Move::Shutdown),
        12 => any::<Index>().prop_map(Move::ChildReady),
        6 => any::<Index>().prop_map(Move::ChildExits),
        2 => any::<Index>().prop_map(Move::ChildStops),
        4 => Just(Move::ParentExits),
        2 => Just(Move::WorkArrives),
        4 => Just(Move::WorkFinishes),
        6 => Just(Move::ReportIdle),
        8 => nonsense().prop_map(Move::Nonsense),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        (duration(), duration(), duration()),
        prop_oneof![1 => Just(Duration::ZERO), 1 => duration()],
        any::<bool>(),
        prop::collection::vec((world_move(), prop::bool::weighted(0.2)), 0..=60),
        (any::<bool>(), any::<bool>(), prop::bool::weighted(0.2)),
    )
        .prop_map(
            |(
                (ready, stop, kill),
                shutdown_delay,
                parent_alive,
                moves,
                (ready_at_end, idle, spawn_fails),
            )| {
                Scenario {
                    timeouts: Timeouts {
                        ready,
                        stop,
                        kill,
                        shutdown_delay,
                    },
                    parent_alive,
                    moves,
                    settle: Settle {
                        ready: ready_at_end,
                        idle,
                        spawn_fails,
                    },
                }
            },
        )
}

fn pick(ix: &Index, pids: &[u32]) -> Option<u32> {
    (!pids.is_empty()).then(|| *ix.get(pids))
}

fn play(w: &mut World, mv: &Move) {
    match mv {
        Move::Advance { ms, clock } => {
            let by = Duration::from_millis(*ms);
            match clock {
                Clock::Punctual => w.advance(by),
                Clock::Late => {
                    w.now += by;
                    w.catch_up();
                }
                Clock::Silent => w.now += by,
            }
        }
        Move::Restart => _ = w.deliver(Event::RestartRequested, Origin::World),
        Move::Shutdown => _ = w.deliver(Event::ShutdownRequested, Origin::World),
        Move::ChildReady(ix) => {
            let mut waiting = w.alive(false);
            waiting.retain(|pid| !w.ready_sent.contains(pid));
            if let Some(pid) = pick(ix, &waiting) {
                w.deliver(Event::ChildReady { pid }, Origin::World);
            }
        }
        Move::ChildExits(ix) => {
            if let Some(pid) = pick(ix, &w.alive(false)) {
                w.child_exits(pid, Origin::World);
            }
        }
        Move::ChildStops(ix) => {
            let mut ready = w.alive(false);
            ready.retain(|pid| w.ready_sent.contains(pid));
            if let Some(pid) = pick(ix, &ready) {
                w.deliver(Event::ChildStopping { pid }, Origin::World);
            }
        }
        Move::ParentExits => w.parent_exits(Origin::World),
        // Nothing new is accepted while draining.
        Move::WorkArrives if !w.draining => w.work_idle = false,
        Move::WorkArrives => {}
        Move::WorkFinishes => w.work_idle = true,
        Move::ReportIdle if w.draining && w.work_idle && !w.idle_reported => {
            w.drain_idle(Origin::World);
        }
        Move::ReportIdle => {}
        Move::Nonsense(n) => nonsense_event(w, n),
    }
}

fn nonsense_event(w: &mut World, n: &Nonsense) {
    let pid = 90_000 + w.trace.entries.len() as u32; // no child's
    let event = match n {
        Nonsense::ReadyUnknownPid => Event::ChildReady { pid },
        Nonsense::ExitedUnknownPid => Event::ChildExited {
            pid,
            status: "exit status 0".into(),
        },
        Nonsense::SpawnedUnknownPid => Event::ChildSpawned { pid },
        Nonsense::SpawnFailedUnasked => Event::SpawnFailed(Error::Hook("x".into())),
        Nonsense::DrainIdleAnyTime => Event::DrainIdle,
        Nonsense::EarlyTick => Event::Tick,
        // Not nonsense yet while the parent is alive.
        Nonsense::ParentExitedAgain if w.parent_alive => return,
        Nonsense::ParentExitedAgain => Event::ParentExited,
        Nonsense::ReadyAfterExit(ix) => {
            let dead: Vec<u32> = w.exited.iter().copied().collect();
            let Some(pid) = pick(ix, &dead) else { return };
            Event::ChildReady { pid }
        }
        Nonsense::DuplicatePrevious => w.trace.steps().last().unwrap().event.clone(),
    };
    w.deliver(event, Origin::Nonsense);
}

fn run(s: &Scenario) -> Trace {
    let mut world = World::new(s.timeouts, s.parent_alive);
    for (mv, spawn_fails) in &s.moves {
        world.spawn_fails = *spawn_fails;
        play(&mut world, mv);
    }
    world.settle(s.settle)
}

fn check(s: &Scenario, property: Check) -> Result<(), TestCaseError> {
    let trace = run(s);
    property(&trace).map_err(|why| TestCaseError::fail(format!("{why}\n{trace}")))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2_000,
        // Keep the source tree clean: a failure prints its shrunk run.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One proptest per property, named like its check.
macro_rules! properties {
    ($($check:ident),+) => {
        proptest! {
            #![proptest_config(config())]
            $(#[test] fn $check(s in scenario()) { check(&s, machine_world::$check)?; })+
        }
    };
}

properties!(
    p1_never_stops_accepting_early,
    p2_at_most_two_generations,
    p3_one_upgrade_at_a_time,
    p4_children_reaped_or_successor,
    p5_drain_ends_by_stop_plus_kill,
    p6_deadlines_and_accepting,
    p7_deterministic,
    p8_pid_file_names_who_accepts,
    p9_a_lost_successor_leaves_the_parent_serving,
    p10_shutdown_delay
);

// ---------------------------------------------------------------------------
// The generator reaches the tricky paths (else the properties are vacuous)
// ---------------------------------------------------------------------------

/// The paths a trace went through, by name.
fn paths(trace: &Trace) -> BTreeSet<&'static str> {
    let mut seen = BTreeSet::new();
    let mut killing = false; // a ready-timeout kill not yet answered
    let mut killed: BTreeSet<u32> = BTreeSet::new();
    let mut reaped: BTreeSet<u32> = BTreeSet::new();
    let (mut successor, mut hammered, mut exited, mut taken_back) = (None, false, false, false);
    let mut spawns = 0;
    for s in trace.steps() {
        let acts = &s.actions[..];
        let has = |name| acts.iter().any(|a| a.name() == name);
        let mut path = |p| _ = seen.insert(p);
        match &s.event {
            Event::RestartRequested if killing && has("Coalesced") => {
                path("restart while killing a successor: coalesced");
            }
            Event::ShutdownRequested
                if s.state_before == State::ShuttingDown && has("BeginDrain") =>
            {
                path("a second shutdown ends the delay");
            }
            Event::Tick if s.state_before == State::ShuttingDown && has("BeginDrain") => {
                path("the shutdown delay runs out");
            }
            Event::RestartRequested if s.state_before == State::ShuttingDown => {
                path("restart during the shutdown delay");
            }
            Event::ShutdownRequested if killing => path("shutdown while killing a successor"),
            Event::ShutdownRequested if has("StopChild") => {
                path("shutdown while awaiting ready: the successor is told to stop");
            }
            Event::ShutdownRequested if has("RestartDone") => {
                path("shutdown while deferred");
            }
            Event::ChildReady { pid } if killed.contains(pid) && acts.is_empty() => {
                path("late ChildReady of a killed child ignored");
            }
            Event::ChildExited { pid, .. } if Some(*pid) == successor => {
                path(match (exited, hammered) {
                    (true, _) => "successor dies after the parent exited",
                    (false, true) => "take-back while hammered",
                    (false, false) => "take-back while draining",
                });
            }
            Event::ChildExited { .. } if has("Exit") => {
                path("exit waits for the reap");
            }
            Event::ParentExited if has("Spawn") => {
                path("parent exit starts the deferred spawn");
            }
            Event::Tick if has("KillChild") && has("Hammer") => {
                path("a successor told to stop is killed at the hammer");
            }
            Event::Tick if has("KillChild") => path("ready timeout: kill"),
            Event::Tick if s.deadline_before.is_none_or(|d| d > s.at) => path("early Tick"),
            _ => {}
        }
        if s.deadline_before.is_some_and(|d| s.at > d) {
            path("late world");
        }
        if s.origin == Origin::Nonsense {
            path("nonsense event");
        }
        if let Event::ChildExited { pid, .. } = &s.event {
            reaped.insert(*pid);
        }
        for a in acts {
            match a {
                Action::Deferred => path("deferred"),
                Action::Coalesced => path("coalesced"),
                Action::Spawn => {
                    spawns += 1;
                    if spawns == 2 {
                        path("second upgrade attempt");
                    }
                    if taken_back {
                        path("restart after a take-back");
                    }
                    if s.spawned.is_none() {
                        path("spawn failed");
                    }
                }
                Action::KillChild { pid } => {
                    killed.insert(*pid);
                    killing |= matches!(s.event, Event::Tick);
                }
                Action::RestartDone(result) => {
                    killing = false;
                    match result {
                        Ok(pid) => successor = Some(*pid),
                        Err(Error::SuccessorExited { .. }) => path("successor exited before ready"),
                        Err(Error::ReadyTimeout { .. }) => path("answered ReadyTimeout"),
                        Err(Error::HandedOver { .. }) => {
                            path("restart while draining: refused naming the successor");
                        }
                        Err(Error::ShuttingDown) if matches!(s.event, Event::RestartRequested) => {
                            path("restart while shutting down: refused");
                        }
                        _ => {}
                    }
                }
                Action::BeginDrain => hammered = false,
                Action::Resume => (successor, taken_back) = (None, true),
                Action::Hammer => {
                    hammered = true;
                    path("hammer");
                }
                Action::Exit(reason) => {
                    exited = true;
                    path(match reason {
                        ExitReason::HandedOver { .. } if taken_back => {
                            "exit: handed over after a take-back"
                        }
                        ExitReason::HandedOver { .. } => "exit: handed over",
                        ExitReason::Shutdown => "exit: shutdown",
                        _ => "exit: kill timeout",
                    });
                    if killed.difference(&reaped).next().is_some() {
                        path("exit with a killed child not yet reaped");
                    }
                }
                _ => {}
            }
        }
    }
    seen
}

#[test]
fn generated_runs_reach_the_tricky_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = scenario();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for _ in 0..2_000 {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        for path in paths(&run(&s)) {
            *counts.entry(path).or_default() += 1;
        }
    }
    let wanted = [
        "deferred",
        "coalesced",
        "restart while killing a successor: coalesced",
        "shutdown while killing a successor",
        "shutdown while awaiting ready: the successor is told to stop",
        "a successor told to stop is killed at the hammer",
        "shutdown while deferred",
        "late ChildReady of a killed child ignored",
        "take-back while draining",
        "take-back while hammered",
        "restart after a take-back",
        "exit: handed over after a take-back",
        "successor dies after the parent exited",
        "exit waits for the reap",
        "parent exit starts the deferred spawn",
        "ready timeout: kill",
        "early Tick",
        "spawn failed",
        "late world",
        "nonsense event",
        "second upgrade attempt",
        "successor exited before ready",
        "answered ReadyTimeout",
        "restart while draining: refused naming the successor",
        "restart while shutting down: refused",
        "hammer",
        "exit: handed over",
        "exit: shutdown",
        "exit: kill timeout",
        "exit with a killed child not yet reaped",
        "a second shutdown ends the delay",
        "the shutdown delay runs out",
        "restart during the shutdown delay",
    ];
    eprintln!("paths reached in 2000 generated runs: {counts:#?}");
    for path in wanted {
        let n = counts.get(path).copied().unwrap_or(0);
        assert!(
            n >= 10,
            "generated runs reach {path:?} only {n} times in 2000"
        );
    }
}
