//! Property tests for the restart state machine (`handoff::machine`).
//!
//! The machine is sans-IO, so these tests play the rest of the world: the
//! driver, the successor processes, the parent, the in-flight work and the
//! clock. The clock is virtual (`t0 + offset`, never a sleep).
//!
//! A run is a generated [`Scenario`]: timeouts, whether this generation's
//! parent is still alive, up to 60 "world moves", and how the world settles at
//! the end. The [`World`] turns each move into the events a real world could
//! produce given the actions it has seen so far (plus some nonsense a buggy or
//! racy world might deliver), feeds them to the machine and records a
//! [`Trace`]. Each property is a pure check over the trace, so one trace
//! format serves all of them and a failure prints the whole (shrunk) run.
//!
//! What the world guarantees (and what it does not):
//! - it answers an `Action::Spawn` at once, before any other event, with
//!   `ChildSpawned` (fresh pid) or `SpawnFailed` (as the driver does);
//! - a spawned child says ready at most once and exits at most once; a child
//!   told `KillChild` exits within the run (at the latest while settling);
//! - `ParentExited` comes once, only if the machine was created with
//!   `parent_alive = true` (a second one is nonsense);
//! - `DrainIdle` comes only after `BeginDrain`, when the in-flight model (a
//!   flag moves set and clear; the hammer clears all work) says idle, at any
//!   later time, at most once;
//! - Ticks are delivered when the deadline passed: punctually (the clock stops
//!   at each deadline), late (after a long jump), not at all for a while (a
//!   lagging world), or early (nonsense);
//! - nonsense: ChildReady/ChildExited/ChildSpawned for unknown pids, a
//!   SpawnFailed nobody asked for, DrainIdle at any time, ChildReady from a
//!   child that already exited, early Ticks, a second ParentExited, and a
//!   duplicate of the previous event.
//!
//! At the end of each run the world settles: the parent exits, every child
//! either becomes ready or exits (killed children exit), in-flight work
//! either finishes or the clock runs out, until the machine has exited or
//! serves with nothing in flight.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use handoff::Error;
use handoff::machine::{Action, Event, ExitReason, Machine, Notify, Timeouts};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

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

/// Something a buggy or racy world might deliver.
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
    /// A live child that has not said ready yet says ready (a child already
    /// told KillChild may still do so: the kill races with its message).
    ChildReady(Index),
    /// A live child exits (crash, kill landing, or the successor quitting).
    ChildExits(Index),
    ParentExits,
    WorkArrives,
    WorkFinishes,
    ReportIdle,
    Nonsense(Nonsense),
}

/// How the world settles at the end of a run.
#[derive(Debug, Clone, Copy)]
struct Settle {
    /// The child awaited becomes ready (else it exits).
    ready: bool,
    /// In-flight work finishes and `DrainIdle` is reported (else the clock
    /// runs out: hammer, kill timeout).
    idle: bool,
    /// Spawns made while settling fail.
    spawn_fails: bool,
}

#[derive(Debug, Clone)]
struct Scenario {
    timeouts: Timeouts,
    parent_alive: bool,
    /// Each move with whether a Spawn it provokes fails.
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
        any::<bool>(),
        prop::collection::vec((world_move(), prop::bool::weighted(0.2)), 0..=60),
        (any::<bool>(), any::<bool>(), prop::bool::weighted(0.2)),
    )
        .prop_map(
            |((ready, stop, kill), parent_alive, moves, (r, i, f))| Scenario {
                timeouts: Timeouts { ready, stop, kill },
                parent_alive,
                moves,
                settle: Settle {
                    ready: r,
                    idle: i,
                    spawn_fails: f,
                },
            },
        )
}

// ---------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A real world move (or a Tick the world owed).
    World,
    /// The driver's immediate answer to `Action::Spawn`.
    SpawnReply,
    /// Something a buggy or racy world delivers.
    Nonsense,
    /// A move of the final settling.
    Settle,
}

/// One call of `Machine::on`, with what could be observed around it.
#[derive(Debug, Clone)]
struct Step {
    at: Instant,
    origin: Origin,
    event: Event,
    actions: Vec<Action>,
    deadline_before: Option<Instant>,
    deadline_after: Option<Instant>,
    accepting_after: bool,
    exited_after: bool,
}

#[derive(Debug, Clone)]
enum Entry {
    Step(Step),
    /// The world delivered Ticks until the deadline was in the future (or
    /// gone); `caught_up` is false if it gave up because Ticks made no
    /// progress.
    TickLoopDone {
        at: Instant,
        caught_up: bool,
    },
    /// Start of the final settling.
    SettleBegin,
    /// End of the run; `quiescent`: the machine exited, or serves with nothing
    /// in flight (no child, no parent, no deadline).
    End {
        quiescent: bool,
    },
}

#[derive(Debug, Clone)]
struct Trace {
    t0: Instant,
    timeouts: Timeouts,
    parent_alive: bool,
    entries: Vec<Entry>,
}

impl Trace {
    fn steps(&self) -> impl Iterator<Item = &Step> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Step(s) => Some(s),
            _ => None,
        })
    }

    fn off(&self, at: Instant) -> String {
        format!("{:?}", at.saturating_duration_since(self.t0))
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "run: {:?}, parent_alive: {}",
            self.timeouts, self.parent_alive
        )?;
        for (i, e) in self.entries.iter().enumerate() {
            match e {
                Entry::Step(s) => writeln!(
                    f,
                    "  #{i:<3} t+{:<10} {:<10} {:?} -> {:?}   (deadline {} -> {}{}{})",
                    self.off(s.at),
                    format!("{:?}", s.origin),
                    s.event,
                    s.actions,
                    s.deadline_before
                        .map_or("-".into(), |d| format!("t+{}", self.off(d))),
                    s.deadline_after
                        .map_or("-".into(), |d| format!("t+{}", self.off(d))),
                    if s.accepting_after {
                        ""
                    } else {
                        ", not accepting"
                    },
                    if s.exited_after { ", exited" } else { "" },
                )?,
                Entry::TickLoopDone { at, caught_up } => writeln!(
                    f,
                    "  #{i:<3} t+{:<10} (ticks delivered{})",
                    self.off(*at),
                    if *caught_up { "" } else { "; NO PROGRESS" }
                )?,
                Entry::SettleBegin => writeln!(f, "  #{i:<3} -- settling --")?,
                Entry::End { quiescent } => {
                    writeln!(f, "  #{i:<3} -- end (quiescent: {quiescent}) --")?
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Child {
    pid: u32,
    ready_sent: bool,
    killed: bool,
    exited: bool,
}

struct World {
    machine: Machine,
    t0: Instant,
    now: Instant,
    timeouts: Timeouts,
    parent_alive_at_start: bool,
    parent_alive: bool,
    children: Vec<Child>,
    next_pid: u32,
    next_unknown_pid: u32,
    /// The pid the machine named in `RestartDone(Ok)`.
    successor: Option<u32>,
    draining: bool,
    exited: bool,
    work_idle: bool,
    idle_reported: bool,
    /// Whether a Spawn provoked by the current move fails.
    spawn_fails: bool,
    last_event: Option<(Event, Origin)>,
    entries: Vec<Entry>,
}

impl World {
    fn new(timeouts: Timeouts, parent_alive: bool) -> Self {
        let t0 = Instant::now();
        World {
            machine: Machine::new(timeouts, parent_alive),
            t0,
            now: t0,
            timeouts,
            parent_alive_at_start: parent_alive,
            parent_alive,
            children: Vec::new(),
            next_pid: 100,
            next_unknown_pid: 90_000,
            successor: None,
            draining: false,
            exited: false,
            work_idle: false,
            idle_reported: false,
            spawn_fails: false,
            last_event: None,
            entries: Vec::new(),
        }
    }

    fn child_mut(&mut self, pid: u32) -> Option<&mut Child> {
        self.children.iter_mut().find(|c| c.pid == pid)
    }

    fn unknown_pid(&mut self) -> u32 {
        self.next_unknown_pid += 1;
        self.next_unknown_pid
    }

    /// Feeds one event, carries out the actions the way the driver would, and
    /// answers a Spawn at once (before anything else can happen).
    fn deliver(&mut self, event: Event, origin: Origin) {
        let mut queue = VecDeque::from([(event, origin)]);
        while let Some((event, origin)) = queue.pop_front() {
            let deadline_before = self.machine.deadline();
            let actions = self.machine.on(event.clone(), self.now);
            for action in &actions {
                match action {
                    Action::Spawn => {
                        let reply = if self.spawn_fails {
                            Event::SpawnFailed(Error::Hook("x".into()))
                        } else {
                            let pid = self.next_pid;
                            self.next_pid += 1;
                            self.children.push(Child {
                                pid,
                                ready_sent: false,
                                killed: false,
                                exited: false,
                            });
                            Event::ChildSpawned { pid }
                        };
                        queue.push_back((reply, Origin::SpawnReply));
                    }
                    Action::KillChild { pid } => {
                        if let Some(child) = self.child_mut(*pid) {
                            child.killed = true;
                        }
                    }
                    Action::RestartDone(Ok(pid)) => self.successor = Some(*pid),
                    Action::BeginDrain => self.draining = true,
                    // The hammer aborts whatever is in flight.
                    Action::Hammer => self.work_idle = true,
                    Action::Exit(_) => self.exited = true,
                    _ => {}
                }
            }
            self.entries.push(Entry::Step(Step {
                at: self.now,
                origin,
                event: event.clone(),
                actions,
                deadline_before,
                deadline_after: self.machine.deadline(),
                accepting_after: self.machine.is_accepting(),
                exited_after: self.machine.has_exited(),
            }));
            self.last_event = Some((event, origin));
        }
    }

    /// Delivers Ticks while the deadline has passed (as the driver's timer
    /// would: a deadline in the past fires at once).
    fn catch_up(&mut self) {
        for _ in 0..8 {
            match self.machine.deadline() {
                Some(d) if d <= self.now => self.deliver(Event::Tick, Origin::World),
                _ => break,
            }
        }
        let caught_up = self.machine.deadline().is_none_or(|d| d > self.now);
        self.entries.push(Entry::TickLoopDone {
            at: self.now,
            caught_up,
        });
    }

    fn advance(&mut self, by: Duration, clock: Clock) {
        let target = self.now + by;
        match clock {
            Clock::Punctual => {
                for _ in 0..16 {
                    match self.machine.deadline() {
                        Some(d) if d <= target => {
                            self.now = self.now.max(d);
                            self.catch_up();
                        }
                        _ => break,
                    }
                }
                self.now = target;
                self.catch_up();
            }
            Clock::Late => {
                self.now = target;
                self.catch_up();
            }
            Clock::Silent => self.now = target,
        }
    }

    fn child_exits(&mut self, i: usize, origin: Origin) {
        let child = &mut self.children[i];
        child.exited = true;
        let status = if child.killed {
            "killed by signal 9"
        } else {
            "exit status 1"
        };
        let pid = child.pid;
        self.deliver(
            Event::ChildExited {
                pid,
                status: status.into(),
            },
            origin,
        );
    }

    fn play(&mut self, mv: &Move, spawn_fails: bool) {
        self.spawn_fails = spawn_fails;
        match mv {
            Move::Advance { ms, clock } => self.advance(Duration::from_millis(*ms), *clock),
            Move::Restart => self.deliver(Event::RestartRequested, Origin::World),
            Move::Shutdown => self.deliver(Event::ShutdownRequested, Origin::World),
            Move::ChildReady(ix) => {
                let candidates: Vec<usize> = (0..self.children.len())
                    .filter(|&i| !self.children[i].exited && !self.children[i].ready_sent)
                    .collect();
                if !candidates.is_empty() {
                    let i = *ix.get(&candidates);
                    self.children[i].ready_sent = true;
                    let pid = self.children[i].pid;
                    self.deliver(Event::ChildReady { pid }, Origin::World);
                }
            }
            Move::ChildExits(ix) => {
                let candidates: Vec<usize> = (0..self.children.len())
                    .filter(|&i| !self.children[i].exited)
                    .collect();
                if !candidates.is_empty() {
                    self.child_exits(*ix.get(&candidates), Origin::World);
                }
            }
            Move::ParentExits => {
                if self.parent_alive {
                    self.parent_alive = false;
                    self.deliver(Event::ParentExited, Origin::World);
                }
            }
            // Nothing new is accepted once draining, so work only arrives
            // before.
            Move::WorkArrives if !self.draining => self.work_idle = false,
            Move::WorkArrives => {}
            Move::WorkFinishes => self.work_idle = true,
            Move::ReportIdle => {
                if self.draining && self.work_idle && !self.idle_reported {
                    self.idle_reported = true;
                    self.deliver(Event::DrainIdle, Origin::World);
                }
            }
            Move::Nonsense(n) => self.nonsense(n),
        }
    }

    fn nonsense(&mut self, n: &Nonsense) {
        let event = match n {
            Nonsense::ReadyUnknownPid => Event::ChildReady {
                pid: self.unknown_pid(),
            },
            Nonsense::ExitedUnknownPid => Event::ChildExited {
                pid: self.unknown_pid(),
                status: "exit status 0".into(),
            },
            Nonsense::SpawnedUnknownPid => Event::ChildSpawned {
                pid: self.unknown_pid(),
            },
            Nonsense::SpawnFailedUnasked => Event::SpawnFailed(Error::Hook("x".into())),
            Nonsense::DrainIdleAnyTime => Event::DrainIdle,
            Nonsense::EarlyTick => Event::Tick,
            Nonsense::ParentExitedAgain => {
                if self.parent_alive {
                    // Not nonsense yet: the parent is alive.
                    return;
                }
                Event::ParentExited
            }
            Nonsense::ReadyAfterExit(ix) => {
                let dead: Vec<u32> = self
                    .children
                    .iter()
                    .filter(|c| c.exited)
                    .map(|c| c.pid)
                    .collect();
                match dead.is_empty() {
                    true => return,
                    false => Event::ChildReady {
                        pid: *ix.get(&dead),
                    },
                }
            }
            Nonsense::DuplicatePrevious => match &self.last_event {
                Some((event, _)) => event.clone(),
                None => return,
            },
        };
        // A duplicated request is still a request; the world bookkeeping
        // of requests lives in the checks, which look at events only.
        self.deliver(event, Origin::Nonsense);
    }

    /// Lets everything finish: the parent exits, children become ready or
    /// exit, killed children are reaped, work finishes or the clock runs out.
    fn settle(&mut self, settle: Settle) {
        self.entries.push(Entry::SettleBegin);
        self.spawn_fails = settle.spawn_fails;
        for _ in 0..200 {
            if self.parent_alive {
                self.parent_alive = false;
                self.deliver(Event::ParentExited, Origin::Settle);
                continue;
            }
            if let Some(i) = self.children.iter().position(|c| !c.exited && c.killed) {
                self.child_exits(i, Origin::Settle);
                continue;
            }
            let successor = self.successor;
            if let Some(i) = self
                .children
                .iter()
                .position(|c| !c.exited && Some(c.pid) != successor)
            {
                if settle.ready && !self.children[i].ready_sent {
                    self.children[i].ready_sent = true;
                    let pid = self.children[i].pid;
                    self.deliver(Event::ChildReady { pid }, Origin::Settle);
                } else {
                    self.child_exits(i, Origin::Settle);
                }
                continue;
            }
            if self.exited {
                break;
            }
            if self.draining && settle.idle && !self.idle_reported {
                self.work_idle = true;
                self.idle_reported = true;
                self.deliver(Event::DrainIdle, Origin::Settle);
                continue;
            }
            if let Some(d) = self.machine.deadline() {
                self.now = self.now.max(d);
                self.catch_up();
                continue;
            }
            break;
        }
        let successor = self.successor;
        let quiescent = self.machine.has_exited()
            || (self.machine.is_accepting()
                && self.machine.deadline().is_none()
                && !self.parent_alive
                && self
                    .children
                    .iter()
                    .all(|c| c.exited || Some(c.pid) == successor));
        self.entries.push(Entry::End { quiescent });
    }
}

impl World {
    fn into_trace(self) -> Trace {
        Trace {
            t0: self.t0,
            timeouts: self.timeouts,
            parent_alive: self.parent_alive_at_start,
            entries: self.entries,
        }
    }
}

fn run(s: &Scenario) -> Trace {
    let mut world = World::new(s.timeouts, s.parent_alive);
    for (mv, spawn_fails) in &s.moves {
        world.play(mv, *spawn_fails);
    }
    world.settle(s.settle);
    world.into_trace()
}

// ---------------------------------------------------------------------------
// Properties, each a check over a trace
// ---------------------------------------------------------------------------

type Check = fn(&Trace) -> Result<(), String>;

fn fail<T>(trace: &Trace, at: Instant, what: impl fmt::Display) -> Result<T, String> {
    Err(format!("at t+{}: {what}", trace.off(at)))
}

/// Property 1: never stops accepting early. A `BeginDrain` that no shutdown
/// request preceded must follow the `ChildReady` of the child spawned last,
/// and come with `RestartDone(Ok(that pid))`; before the (only) `BeginDrain`
/// the machine accepts, and it never exits without draining first.
fn p1_never_stops_accepting_early(trace: &Trace) -> Result<(), String> {
    let mut shutdown_asked = false;
    let mut last_spawned: Option<u32> = None;
    let mut ready_of_last = false;
    let mut drained = false;
    for s in trace.steps() {
        match &s.event {
            Event::ShutdownRequested => shutdown_asked = true,
            Event::ChildSpawned { pid } if s.origin == Origin::SpawnReply => {
                last_spawned = Some(*pid);
                ready_of_last = false;
            }
            Event::ChildReady { pid } if Some(*pid) == last_spawned => ready_of_last = true,
            _ => {}
        }
        for (i, a) in s.actions.iter().enumerate() {
            match a {
                Action::BeginDrain => {
                    if drained {
                        return fail(trace, s.at, "a second BeginDrain");
                    }
                    if !shutdown_asked {
                        if !ready_of_last {
                            return fail(
                                trace,
                                s.at,
                                format!(
                                    "BeginDrain without a shutdown request and before the last \
                                     child ({last_spawned:?}) said ready"
                                ),
                            );
                        }
                        let answered = s.actions[..i].iter().any(
                            |a| matches!(a, Action::RestartDone(Ok(p)) if Some(*p) == last_spawned),
                        );
                        if !answered {
                            return fail(
                                trace,
                                s.at,
                                "restart BeginDrain without RestartDone(Ok(successor))",
                            );
                        }
                    }
                    drained = true;
                }
                Action::Exit(_) if !drained => return fail(trace, s.at, "Exit without BeginDrain"),
                _ => {}
            }
        }
        if !drained && !s.accepting_after {
            return fail(trace, s.at, "stopped accepting before BeginDrain");
        }
    }
    Ok(())
}

/// Property 2: at most two generations alive. No `Spawn` while an earlier
/// child has neither exited nor become the ready successor, nor while the
/// machine's parent is alive (created with `parent_alive` and no
/// `ParentExited` yet), nor once draining; one `Spawn` per upgrade attempt
/// (from the `Spawn` to the `RestartDone` that answers it).
fn p2_at_most_two_generations(trace: &Trace) -> Result<(), String> {
    let mut parent_alive = trace.parent_alive;
    let mut children: BTreeMap<u32, bool> = BTreeMap::new(); // pid -> exited
    let mut successor: Option<u32> = None;
    let mut attempt_open = false;
    let mut drained = false;
    for s in trace.steps() {
        match &s.event {
            Event::ParentExited => parent_alive = false,
            Event::ChildSpawned { pid } if s.origin == Origin::SpawnReply => {
                children.insert(*pid, false);
            }
            Event::ChildExited { pid, .. } => {
                if let Some(exited) = children.get_mut(pid) {
                    *exited = true;
                }
            }
            _ => {}
        }
        for a in &s.actions {
            match a {
                Action::Spawn => {
                    if parent_alive {
                        return fail(trace, s.at, "Spawn while our own parent is alive");
                    }
                    if attempt_open {
                        return fail(trace, s.at, "a second Spawn in one upgrade attempt");
                    }
                    if drained {
                        return fail(trace, s.at, "Spawn after BeginDrain");
                    }
                    if let Some((pid, _)) = children
                        .iter()
                        .find(|&(pid, exited)| !exited && Some(*pid) != successor)
                    {
                        return fail(trace, s.at, format!("Spawn while child {pid} is alive"));
                    }
                    attempt_open = true;
                }
                Action::RestartDone(result) => {
                    attempt_open = false;
                    if let Ok(pid) = result {
                        successor = Some(*pid);
                    }
                }
                Action::BeginDrain => drained = true,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Property 3: one upgrade at a time, and every restart request is answered.
///
/// "Pending": a restart request is pending from the `RestartRequested` event
/// that carries it (duplicates included: each delivery is a request) until the
/// next `Action::RestartDone`, which the driver fans out to every request
/// pending at that moment (including one made in the same call). `Coalesced`
/// and `Deferred` are acknowledgements, not answers: the request stays
/// pending. So `pending` is the number of requests since the last
/// `RestartDone`; every `RestartDone` sets it to 0 and must answer at least
/// one request (an answer to nobody would report a restart nobody asked for).
/// When the world has let everything finish (end of a settled run), nothing
/// is pending.
///
/// Each request gets the reply its moment calls for: after Exit or once
/// draining, at once `RestartDone(Err)` (naming the successor if draining for
/// one, `ShuttingDown` otherwise); during an upgrade `Coalesced`; while our
/// parent is alive `Deferred`; else `Notify(Reloading), Spawn`.
fn p3_one_upgrade_at_a_time(trace: &Trace) -> Result<(), String> {
    let mut pending = 0usize;
    let mut parent_alive = trace.parent_alive;
    let mut attempt_open = false;
    // None: not draining; Some(successor): draining (for a successor or not).
    let mut draining: Option<Option<u32>> = None;
    let mut exited = false;
    for e in &trace.entries {
        let s = match e {
            Entry::Step(s) => s,
            Entry::End { quiescent } => {
                if !quiescent {
                    return Err(
                        "the run did not settle (machine neither exited nor idle-serving)".into(),
                    );
                }
                if pending != 0 {
                    return Err(format!("{pending} restart request(s) never answered"));
                }
                continue;
            }
            _ => continue,
        };
        if let Event::ParentExited = s.event {
            parent_alive = false;
        }
        if let Event::RestartRequested = s.event {
            pending += 1;
            let got = format!("{:?}", s.actions);
            let ok = if exited || draining.is_some() {
                let successor = draining.flatten();
                match &s.actions[..] {
                    [Action::RestartDone(Err(Error::HandedOver { successor: p }))] if !exited => {
                        Some(*p) == successor
                    }
                    [Action::RestartDone(Err(Error::ShuttingDown))] => {
                        exited || successor.is_none()
                    }
                    _ => false,
                }
            } else if attempt_open {
                matches!(&s.actions[..], [Action::Coalesced])
            } else if parent_alive {
                matches!(&s.actions[..], [Action::Deferred])
            } else {
                matches!(
                    &s.actions[..],
                    [Action::Notify(Notify::Reloading), Action::Spawn]
                )
            };
            if !ok {
                let state = if exited {
                    "exited".to_string()
                } else if let Some(successor) = draining {
                    format!("draining (successor {successor:?})")
                } else if attempt_open {
                    "upgrading".into()
                } else if parent_alive {
                    "waiting for parent".into()
                } else {
                    "serving".into()
                };
                return fail(
                    trace,
                    s.at,
                    format!("restart request while {state} answered with {got}"),
                );
            }
        }
        let mut answered_ok = None;
        for a in &s.actions {
            match a {
                Action::RestartDone(result) => {
                    if pending == 0 {
                        return fail(
                            trace,
                            s.at,
                            format!("RestartDone({result:?}) answers no request"),
                        );
                    }
                    pending = 0;
                    attempt_open = false;
                    if let Ok(pid) = result {
                        answered_ok = Some(*pid);
                    }
                }
                Action::Coalesced | Action::Deferred
                    if !matches!(s.event, Event::RestartRequested) =>
                {
                    return fail(trace, s.at, "Coalesced/Deferred without a request");
                }
                Action::Spawn => attempt_open = true,
                Action::BeginDrain => draining = Some(answered_ok),
                Action::Exit(_) => exited = true,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Property 4: every spawned child is reaped or is the successor. At `Exit`,
/// each spawned child delivered `ChildExited`, or is the ready successor
/// (named by `HandedOver` when the exit is a hand-over; a `KillTimeout` exit
/// after a hand-over leaves the successor running too), or — only for
/// `KillTimeout` — was told `KillChild`. `KillChild` names a spawned child that
/// has not exited and is not the successor. The exit reason matches the drain.
fn p4_children_reaped_or_successor(trace: &Trace) -> Result<(), String> {
    let mut spawned: Vec<u32> = Vec::new();
    let mut exited: BTreeSet<u32> = BTreeSet::new();
    let mut killed: BTreeSet<u32> = BTreeSet::new();
    let mut successor: Option<u32> = None;
    for s in trace.steps() {
        match &s.event {
            Event::ChildSpawned { pid } if s.origin == Origin::SpawnReply => spawned.push(*pid),
            Event::ChildExited { pid, .. } => {
                exited.insert(*pid);
            }
            _ => {}
        }
        for a in &s.actions {
            match a {
                Action::RestartDone(Ok(pid)) => successor = Some(*pid),
                Action::KillChild { pid } => {
                    if !spawned.contains(pid) {
                        return fail(trace, s.at, format!("KillChild of {pid}, never spawned"));
                    }
                    if exited.contains(pid) {
                        return fail(trace, s.at, format!("KillChild of {pid}, already exited"));
                    }
                    if Some(*pid) == successor {
                        return fail(trace, s.at, format!("KillChild of the successor {pid}"));
                    }
                    killed.insert(*pid);
                }
                Action::Exit(reason) => {
                    match (reason, successor) {
                        (ExitReason::HandedOver { successor: p }, Some(s)) if *p == s => {}
                        (ExitReason::Shutdown, None) | (ExitReason::KillTimeout, _) => {}
                        _ => {
                            return fail(
                                trace,
                                s.at,
                                format!("Exit({reason:?}) but the successor is {successor:?}"),
                            );
                        }
                    }
                    for pid in &spawned {
                        let fine = exited.contains(pid)
                            || Some(*pid) == successor
                            || (*reason == ExitReason::KillTimeout && killed.contains(pid));
                        if !fine {
                            return fail(
                                trace,
                                s.at,
                                format!(
                                    "Exit({reason:?}) leaves child {pid} unreaped (killed: {})",
                                    killed.contains(pid)
                                ),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Property 5: a drain always ends in exit by stop + kill. With the first
/// `BeginDrain` at T and B = T + stop + kill: once the world has delivered
/// the Ticks due at a time >= B, the machine has exited; if the world was
/// never late during the drain (every deadline got its Tick at that very
/// time), `Exit` comes at or before B. Exactly one `Exit`, only after
/// `BeginDrain`, and after it nothing but `RestartDone(Err)`. A run that
/// drained ends exited.
fn p5_drain_ends_by_stop_plus_kill(trace: &Trace) -> Result<(), String> {
    let budget = trace.timeouts.stop + trace.timeouts.kill;
    let mut drain_at: Option<Instant> = None;
    let mut late = false;
    let mut exited = false;
    for e in &trace.entries {
        match e {
            Entry::Step(s) => {
                if exited {
                    if let Some(a) = s
                        .actions
                        .iter()
                        .find(|a| !matches!(a, Action::RestartDone(Err(_))))
                    {
                        return fail(trace, s.at, format!("{a:?} after Exit"));
                    }
                    continue;
                }
                if drain_at.is_some() && s.deadline_before.is_some_and(|d| s.at > d) {
                    late = true;
                }
                for a in &s.actions {
                    match a {
                        Action::BeginDrain if drain_at.is_none() => drain_at = Some(s.at),
                        Action::Exit(_) => {
                            let Some(t) = drain_at else {
                                return fail(trace, s.at, "Exit without BeginDrain");
                            };
                            if !late && s.at > t + budget {
                                return fail(
                                    trace,
                                    s.at,
                                    format!(
                                        "punctual world, but Exit after drain start + stop + kill = t+{}",
                                        trace.off(t + budget)
                                    ),
                                );
                            }
                            exited = true;
                        }
                        _ => {}
                    }
                }
            }
            Entry::TickLoopDone { at, .. } => {
                if let Some(t) = drain_at {
                    if !exited && *at >= t + budget {
                        return fail(
                            trace,
                            *at,
                            format!(
                                "Ticks delivered past drain start + stop + kill = t+{}, not exited",
                                trace.off(t + budget)
                            ),
                        );
                    }
                }
            }
            Entry::End { .. } => {
                if drain_at.is_some() && !exited {
                    return Err("drained but never exited".into());
                }
            }
            Entry::SettleBegin => {}
        }
    }
    Ok(())
}

/// Property 6: deadlines and accepting. A deadline newly set is not in the
/// past by more than the world's lag (how late the Tick for the previous
/// deadline came, 0 if none was due); a Tick at a due deadline acts; after
/// the world's Tick loop the deadline is in the future; after `Exit` the
/// deadline is None; `is_accepting()` is false from `BeginDrain` on.
fn p6_deadlines_and_accepting(trace: &Trace) -> Result<(), String> {
    let mut drained = false;
    for e in &trace.entries {
        let s = match e {
            Entry::Step(s) => s,
            Entry::TickLoopDone { at, caught_up } => {
                if !caught_up {
                    return fail(trace, *at, "Ticks at a due deadline made no progress");
                }
                continue;
            }
            _ => continue,
        };
        if let (Some(new), true) = (s.deadline_after, s.deadline_after != s.deadline_before) {
            let lag = s
                .deadline_before
                .map_or(Duration::ZERO, |d| s.at.saturating_duration_since(d));
            if new + lag < s.at {
                return fail(
                    trace,
                    s.at,
                    format!(
                        "new deadline t+{} is in the past by more than the lag {lag:?}",
                        trace.off(new)
                    ),
                );
            }
        }
        if let (Event::Tick, Some(d)) = (&s.event, s.deadline_before) {
            // A due Tick must do something (kill, hammer, exit) or move the
            // deadline; with a zero timeout the next deadline may equal it.
            if d <= s.at && s.actions.is_empty() && s.deadline_after == Some(d) {
                return fail(trace, s.at, "a Tick at a due deadline did nothing");
            }
        }
        if s.actions.iter().any(|a| matches!(a, Action::BeginDrain)) {
            drained = true;
        }
        if s.exited_after && s.deadline_after.is_some() {
            return fail(trace, s.at, "deadline after Exit");
        }
        if drained && s.accepting_after {
            return fail(trace, s.at, "accepting after BeginDrain");
        }
        let exit_said = s.actions.iter().any(|a| matches!(a, Action::Exit(_)));
        if exit_said && !s.exited_after {
            return fail(trace, s.at, "Exit said but has_exited() is false");
        }
    }
    Ok(())
}

/// Property 7: determinism. Replaying the same events at the same times on
/// fresh machines gives the same actions and the same states.
fn p7_deterministic(trace: &Trace) -> Result<(), String> {
    let mut a = Machine::new(trace.timeouts, trace.parent_alive);
    let mut b = Machine::new(trace.timeouts, trace.parent_alive);
    for s in trace.steps() {
        let recorded = format!("{:?}", s.actions);
        let from_a = format!("{:?}", a.on(s.event.clone(), s.at));
        let from_b = format!("{:?}", b.on(s.event.clone(), s.at));
        if recorded != from_a || from_a != from_b {
            return fail(
                trace,
                s.at,
                format!("{:?} gave {recorded} / {from_a} / {from_b}", s.event),
            );
        }
        if format!("{a:?}") != format!("{b:?}") {
            return fail(trace, s.at, "replayed machines differ in state");
        }
    }
    Ok(())
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

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_stops_accepting_early(s in scenario()) {
        check(&s, p1_never_stops_accepting_early)?;
    }

    #[test]
    fn at_most_two_generations(s in scenario()) {
        check(&s, p2_at_most_two_generations)?;
    }

    #[test]
    fn one_upgrade_at_a_time_and_every_request_answered(s in scenario()) {
        check(&s, p3_one_upgrade_at_a_time)?;
    }

    #[test]
    fn children_reaped_or_successor(s in scenario()) {
        check(&s, p4_children_reaped_or_successor)?;
    }

    #[test]
    fn drain_ends_by_stop_plus_kill(s in scenario()) {
        check(&s, p5_drain_ends_by_stop_plus_kill)?;
    }

    #[test]
    fn deadlines_and_accepting(s in scenario()) {
        check(&s, p6_deadlines_and_accepting)?;
    }

    #[test]
    fn deterministic(s in scenario()) {
        check(&s, p7_deterministic)?;
    }
}

// ---------------------------------------------------------------------------
// The generator reaches the tricky paths (else the properties are vacuous)
// ---------------------------------------------------------------------------

/// The paths a trace went through, by name.
fn paths(trace: &Trace) -> BTreeSet<&'static str> {
    let mut seen = BTreeSet::new();
    let mut killing = false; // a ready-timeout kill not yet answered
    let mut killed: BTreeSet<u32> = BTreeSet::new();
    let mut reaped: BTreeSet<u32> = BTreeSet::new();
    let mut successor = None;
    let mut drained = false;
    let mut exited = false;
    let mut spawns = 0;
    for s in trace.steps() {
        let acts = &s.actions[..];
        let has = |f: fn(&Action) -> bool| acts.iter().any(f);
        match &s.event {
            Event::RestartRequested if killing && has(|a| matches!(a, Action::Coalesced)) => {
                seen.insert("restart while killing a successor: coalesced");
            }
            Event::ShutdownRequested if killing => {
                seen.insert("shutdown while killing a successor");
            }
            Event::ShutdownRequested if has(|a| matches!(a, Action::KillChild { .. })) => {
                seen.insert("shutdown while awaiting ready: kill");
            }
            Event::ShutdownRequested
                if has(|a| matches!(a, Action::RestartDone(Err(Error::ShuttingDown)))) =>
            {
                seen.insert("shutdown while deferred");
            }
            Event::ChildReady { pid } if killed.contains(pid) && acts.is_empty() => {
                seen.insert("late ChildReady of a killed child ignored");
            }
            Event::ChildExited { pid, .. } if drained && !exited && Some(*pid) == successor => {
                seen.insert("successor exits during the drain");
            }
            Event::ChildExited { .. } if has(|a| matches!(a, Action::Exit(_))) => {
                seen.insert("exit waits for the reap");
            }
            Event::ParentExited if has(|a| matches!(a, Action::Spawn)) => {
                seen.insert("parent exit starts the deferred spawn");
            }
            Event::Tick if has(|a| matches!(a, Action::KillChild { .. })) => {
                seen.insert("ready timeout: kill");
            }
            Event::Tick if s.deadline_before.is_none_or(|d| d > s.at) => {
                seen.insert("early Tick");
            }
            Event::SpawnFailed(_) if s.origin == Origin::SpawnReply => {
                seen.insert("spawn failed");
            }
            Event::ChildExited { pid, .. } => {
                reaped.insert(*pid);
            }
            _ => {}
        }
        if s.deadline_before.is_some_and(|d| s.at > d) {
            seen.insert("late world");
        }
        if matches!(s.origin, Origin::Nonsense) {
            seen.insert("nonsense event");
        }
        if let Event::ChildExited { pid, .. } = &s.event {
            reaped.insert(*pid);
        }
        for a in acts {
            match a {
                Action::Deferred => {
                    seen.insert("deferred");
                }
                Action::Coalesced => {
                    seen.insert("coalesced");
                }
                Action::Spawn => {
                    spawns += 1;
                    if spawns == 2 {
                        seen.insert("second upgrade attempt");
                    }
                }
                Action::KillChild { pid } => {
                    killed.insert(*pid);
                    if matches!(s.event, Event::Tick) {
                        killing = true;
                    }
                }
                Action::RestartDone(result) => {
                    killing = false;
                    match result {
                        Ok(pid) => successor = Some(*pid),
                        Err(Error::SuccessorExited { .. }) => {
                            seen.insert("successor exited before ready");
                        }
                        Err(Error::ReadyTimeout { .. }) => {
                            seen.insert("answered ReadyTimeout");
                        }
                        Err(Error::HandedOver { .. }) => {
                            seen.insert("restart while draining: refused naming the successor");
                        }
                        Err(Error::ShuttingDown) if matches!(s.event, Event::RestartRequested) => {
                            seen.insert("restart while shutting down: refused");
                        }
                        _ => {}
                    }
                }
                Action::BeginDrain => drained = true,
                Action::Hammer => {
                    seen.insert("hammer");
                }
                Action::Exit(reason) => {
                    exited = true;
                    seen.insert(match reason {
                        ExitReason::HandedOver { .. } => "exit: handed over",
                        ExitReason::Shutdown => "exit: shutdown",
                        _ => "exit: kill timeout",
                    });
                    if killed.difference(&reaped).next().is_some() {
                        seen.insert("exit with a killed child not yet reaped");
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
        "shutdown while awaiting ready: kill",
        "shutdown while deferred",
        "late ChildReady of a killed child ignored",
        "successor exits during the drain",
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

// ---------------------------------------------------------------------------
// Each check rejects a trace that violates it
// ---------------------------------------------------------------------------

const CHECKS: [(&str, Check); 7] = [
    ("p1", p1_never_stops_accepting_early),
    ("p2", p2_at_most_two_generations),
    ("p3", p3_one_upgrade_at_a_time),
    ("p4", p4_children_reaped_or_successor),
    ("p5", p5_drain_ends_by_stop_plus_kill),
    ("p6", p6_deadlines_and_accepting),
    ("p7", p7_deterministic),
];

/// A trace of a world driven by hand (spawns are still answered at once;
/// pids start at 100).
fn scripted(parent_alive: bool, script: impl FnOnce(&mut World)) -> Trace {
    let mut world = World::new(Timeouts::default(), parent_alive);
    script(&mut world);
    world.settle(Settle {
        ready: true,
        idle: true,
        spawn_fails: false,
    });
    world.into_trace()
}

/// Restart, a coalesced second request, ready after 1 s, idle after 2 s.
fn handover_trace() -> Trace {
    scripted(false, |w| {
        w.deliver(Event::RestartRequested, Origin::World);
        w.deliver(Event::RestartRequested, Origin::World);
        w.now += Duration::from_secs(1);
        w.children[0].ready_sent = true;
        w.deliver(Event::ChildReady { pid: 100 }, Origin::World);
        w.now += Duration::from_secs(1);
        w.idle_reported = true;
        w.deliver(Event::DrainIdle, Origin::World);
    })
}

/// Restart, shutdown while awaiting ready (kill), idle, then the reap.
fn reaped_trace() -> Trace {
    scripted(false, |w| {
        w.deliver(Event::RestartRequested, Origin::World);
        w.deliver(Event::ShutdownRequested, Origin::World);
        w.idle_reported = true;
        w.deliver(Event::DrainIdle, Origin::World);
        w.child_exits(0, Origin::World);
    })
}

fn step_mut(trace: &mut Trace, pick: impl Fn(&Step) -> bool) -> &mut Step {
    trace
        .entries
        .iter_mut()
        .find_map(|e| match e {
            Entry::Step(s) if pick(s) => Some(s),
            _ => None,
        })
        .expect("no such step")
}

#[test]
fn each_check_rejects_a_violating_trace() {
    let (good, reaped) = (handover_trace(), reaped_trace());
    for (name, check) in CHECKS {
        check(&good).unwrap_or_else(|e| panic!("{name} on the hand-over run: {e}\n{good}"));
        check(&reaped).unwrap_or_else(|e| panic!("{name} on the reaped run: {e}\n{reaped}"));
    }
    let coalesced = |s: &Step| matches!(s.actions[..], [Action::Coalesced]);
    let ready = |s: &Step| matches!(s.event, Event::ChildReady { .. });

    // p1: the drain follows a ChildReady of some other pid.
    let mut t = good.clone();
    step_mut(&mut t, ready).event = Event::ChildReady { pid: 4242 };
    assert!(p1_never_stops_accepting_early(&t).is_err());

    // p2: a second Spawn in the same attempt.
    let mut t = good.clone();
    step_mut(&mut t, coalesced).actions = vec![Action::Spawn];
    assert!(p2_at_most_two_generations(&t).is_err());

    // p3: a request neither coalesced nor answered; then one never answered.
    let mut t = good.clone();
    step_mut(&mut t, coalesced).actions.clear();
    assert!(p3_one_upgrade_at_a_time(&t).is_err());
    let mut t = good.clone();
    step_mut(&mut t, ready).actions.remove(0);
    assert!(p3_one_upgrade_at_a_time(&t).is_err());

    // p4: the killed child's exit was some other pid's.
    let mut t = reaped.clone();
    let exited = |s: &Step| matches!(s.event, Event::ChildExited { .. });
    step_mut(&mut t, exited).event = Event::ChildExited {
        pid: 4242,
        status: "exit status 0".into(),
    };
    assert!(p4_children_reaped_or_successor(&t).is_err());

    // p5: the same punctual run with no drain budget exits too late.
    let mut t = good.clone();
    t.timeouts.stop = Duration::ZERO;
    t.timeouts.kill = Duration::ZERO;
    assert!(p5_drain_ends_by_stop_plus_kill(&t).is_err());

    // p6: still accepting after the drain began.
    let mut t = good.clone();
    step_mut(&mut t, ready).accepting_after = true;
    assert!(p6_deadlines_and_accepting(&t).is_err());

    // p7: a recorded answer that the machine does not give.
    let mut t = good.clone();
    step_mut(&mut t, coalesced).actions = vec![Action::Deferred];
    assert!(p7_deterministic(&t).is_err());
}

// ---------------------------------------------------------------------------
// Hand-written scenarios for the tricky paths
// ---------------------------------------------------------------------------

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Action names without payloads, for compact expectations.
fn names(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| {
            let text = format!("{a:?}");
            text.split(['(', ' ', '{']).next().unwrap().to_owned()
        })
        .collect()
}

fn timeouts() -> Timeouts {
    Timeouts {
        ready: secs(30),
        stop: secs(20),
        kill: secs(10),
    }
}

#[test]
fn shutdown_while_spawning_kills_the_new_child_then_drains() {
    let t0 = Instant::now();
    let mut m = Machine::new(timeouts(), false);
    assert_eq!(
        names(&m.on(Event::RestartRequested, t0)),
        ["Notify", "Spawn"]
    );
    // The shutdown arrives before the spawn is answered: it waits.
    assert!(m.on(Event::ShutdownRequested, t0).is_empty());
    assert!(m.is_accepting());
    assert_eq!(m.deadline(), None);
    assert!(matches!(
        m.on(Event::RestartRequested, t0)[..],
        [Action::Coalesced]
    ));
    let acts = m.on(Event::ChildSpawned { pid: 7 }, t0 + secs(1));
    assert!(
        matches!(
            &acts[..],
            [
                Action::KillChild { pid: 7 },
                Action::RestartDone(Err(Error::ShuttingDown)),
                Action::Notify(Notify::Stopping),
                Action::RemovePidFile,
                Action::BeginDrain,
            ]
        ),
        "{acts:?}"
    );
    assert!(!m.is_accepting());
    assert_eq!(m.deadline(), Some(t0 + secs(21)));
    // The killed child's ready message loses the race: ignored.
    assert!(m.on(Event::ChildReady { pid: 7 }, t0 + secs(1)).is_empty());
    assert!(
        m.on(Event::DrainIdle, t0 + secs(2)).is_empty(),
        "must wait for the reap"
    );
    let acts = m.on(
        Event::ChildExited {
            pid: 7,
            status: "killed".into(),
        },
        t0 + secs(2),
    );
    assert!(
        matches!(acts[..], [Action::Exit(ExitReason::Shutdown)]),
        "{acts:?}"
    );
    assert_eq!(m.deadline(), None);
    assert!(m.has_exited());
}

#[test]
fn shutdown_while_spawning_then_spawn_failure_drains_without_a_child() {
    let t0 = Instant::now();
    let mut m = Machine::new(timeouts(), false);
    m.on(Event::RestartRequested, t0);
    assert!(m.on(Event::ShutdownRequested, t0).is_empty());
    let acts = m.on(Event::SpawnFailed(Error::Hook("no".into())), t0);
    assert!(
        matches!(
            &acts[..],
            [
                Action::RestartDone(Err(Error::Hook(_))),
                Action::Notify(Notify::Stopping),
                Action::RemovePidFile,
                Action::BeginDrain,
            ]
        ),
        "{acts:?}"
    );
    let acts = m.on(Event::DrainIdle, t0 + secs(1));
    assert!(
        matches!(acts[..], [Action::Exit(ExitReason::Shutdown)]),
        "{acts:?}"
    );
}

#[test]
fn shutdown_while_awaiting_ready_kills_reaps_and_only_then_exits() {
    let t0 = Instant::now();
    let mut m = Machine::new(timeouts(), false);
    m.on(Event::RestartRequested, t0);
    assert!(m.on(Event::ChildSpawned { pid: 7 }, t0).is_empty());
    let acts = m.on(Event::ShutdownRequested, t0 + secs(5));
    assert!(
        matches!(
            &acts[..],
            [
                Action::KillChild { pid: 7 },
                Action::RestartDone(Err(Error::ShuttingDown)),
                Action::Notify(Notify::Stopping),
                Action::RemovePidFile,
                Action::BeginDrain,
            ]
        ),
        "{acts:?}"
    );
    assert_eq!(
        m.deadline(),
        Some(t0 + secs(25)),
        "the ready deadline is gone"
    );
    assert!(
        m.on(Event::DrainIdle, t0 + secs(6)).is_empty(),
        "must wait for the reap"
    );
    assert!(!m.has_exited());
    // A late ChildReady of the killed child changes nothing.
    assert!(m.on(Event::ChildReady { pid: 7 }, t0 + secs(6)).is_empty());
    let acts = m.on(
        Event::ChildExited {
            pid: 7,
            status: "killed".into(),
        },
        t0 + secs(7),
    );
    assert!(
        matches!(acts[..], [Action::Exit(ExitReason::Shutdown)]),
        "{acts:?}"
    );

    // If the child is never reaped, the kill timeout still ends the drain.
    let mut m = Machine::new(timeouts(), false);
    m.on(Event::RestartRequested, t0);
    m.on(Event::ChildSpawned { pid: 7 }, t0);
    m.on(Event::ShutdownRequested, t0);
    assert!(m.on(Event::DrainIdle, t0).is_empty());
    assert!(m.on(Event::Tick, t0 + secs(19)).is_empty());
    assert_eq!(names(&m.on(Event::Tick, t0 + secs(20))), ["Hammer"]);
    assert_eq!(m.deadline(), Some(t0 + secs(30)));
    let acts = m.on(Event::Tick, t0 + secs(30));
    assert!(
        matches!(acts[..], [Action::Exit(ExitReason::KillTimeout)]),
        "{acts:?}"
    );
    assert_eq!(m.deadline(), None);
    // The reap after the exit produces nothing.
    assert!(
        m.on(
            Event::ChildExited {
                pid: 7,
                status: "killed".into()
            },
            t0 + secs(31)
        )
        .is_empty()
    );
}

#[test]
fn ready_timeout_then_late_ready_is_ignored() {
    let t0 = Instant::now();
    let mut m = Machine::new(timeouts(), false);
    m.on(Event::RestartRequested, t0);
    m.on(Event::ChildSpawned { pid: 7 }, t0);
    assert_eq!(m.deadline(), Some(t0 + secs(30)));
    assert!(m.on(Event::Tick, t0 + secs(29)).is_empty(), "early Tick");
    let acts = m.on(Event::Tick, t0 + secs(30));
    assert!(
        matches!(acts[..], [Action::KillChild { pid: 7 }]),
        "{acts:?}"
    );
    assert_eq!(m.deadline(), None);
    // The child's ready message was already on its way: ignored.
    assert!(m.on(Event::ChildReady { pid: 7 }, t0 + secs(30)).is_empty());
    assert!(m.is_accepting());
    assert!(matches!(
        m.on(Event::RestartRequested, t0 + secs(30))[..],
        [Action::Coalesced]
    ));
    let acts = m.on(
        Event::ChildExited {
            pid: 7,
            status: "killed".into(),
        },
        t0 + secs(31),
    );
    assert!(
        matches!(
            &acts[..],
            [Action::RestartDone(Err(Error::ReadyTimeout { pid: 7, timeout }))] if *timeout == secs(30)
        ),
        "{acts:?}"
    );
    assert!(m.is_accepting());
    // Still ignored once reaped; a new request starts a new attempt.
    assert!(m.on(Event::ChildReady { pid: 7 }, t0 + secs(32)).is_empty());
    assert_eq!(
        names(&m.on(Event::RestartRequested, t0 + secs(33))),
        ["Notify", "Spawn"]
    );
}

#[test]
fn successor_exit_during_the_parents_drain_is_ignored() {
    let t0 = Instant::now();
    let mut m = Machine::new(timeouts(), false);
    m.on(Event::RestartRequested, t0);
    m.on(Event::ChildSpawned { pid: 7 }, t0);
    let acts = m.on(Event::ChildReady { pid: 7 }, t0 + secs(1));
    assert!(
        matches!(
            &acts[..],
            [
                Action::RestartDone(Ok(7)),
                Action::Notify(Notify::MainPid(7)),
                Action::BeginDrain,
                Action::WritePidFile(7),
            ]
        ),
        "{acts:?}"
    );
    let acts = m.on(
        Event::ChildExited {
            pid: 7,
            status: "exit status 1".into(),
        },
        t0 + secs(2),
    );
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(m.deadline(), Some(t0 + secs(21)));
    assert!(!m.is_accepting());
    let acts = m.on(Event::DrainIdle, t0 + secs(3));
    assert!(
        matches!(
            acts[..],
            [Action::Exit(ExitReason::HandedOver { successor: 7 })]
        ),
        "{acts:?}"
    );
}

#[test]
fn restart_while_the_successor_waits_for_its_parent_is_deferred() {
    let t0 = Instant::now();
    let mut m = Machine::new(timeouts(), true);
    assert!(matches!(
        m.on(Event::RestartRequested, t0)[..],
        [Action::Deferred]
    ));
    assert!(matches!(
        m.on(Event::RestartRequested, t0)[..],
        [Action::Deferred]
    ));
    assert!(m.is_accepting());
    assert_eq!(
        names(&m.on(Event::ParentExited, t0 + secs(1))),
        ["Notify", "Spawn"]
    );
    assert!(
        m.on(Event::ParentExited, t0 + secs(1)).is_empty(),
        "a second ParentExited"
    );
    m.on(Event::ChildSpawned { pid: 8 }, t0 + secs(1));
    assert!(matches!(
        m.on(Event::RestartRequested, t0 + secs(2))[..],
        [Action::Coalesced]
    ));
    let acts = m.on(Event::ChildReady { pid: 8 }, t0 + secs(3));
    assert_eq!(
        names(&acts),
        ["RestartDone", "Notify", "BeginDrain", "WritePidFile"]
    );

    // A shutdown while deferred answers the deferred request and drains; the
    // parent's exit afterwards starts nothing.
    let mut m = Machine::new(timeouts(), true);
    m.on(Event::RestartRequested, t0);
    let acts = m.on(Event::ShutdownRequested, t0);
    assert!(
        matches!(
            &acts[..],
            [
                Action::RestartDone(Err(Error::ShuttingDown)),
                Action::Notify(Notify::Stopping),
                Action::RemovePidFile,
                Action::BeginDrain,
            ]
        ),
        "{acts:?}"
    );
    assert!(m.on(Event::ParentExited, t0 + secs(1)).is_empty());
}

#[test]
fn restart_while_draining_is_refused_naming_the_successor() {
    let t0 = Instant::now();
    let mut m = Machine::new(timeouts(), false);
    m.on(Event::RestartRequested, t0);
    m.on(Event::ChildSpawned { pid: 7 }, t0);
    m.on(Event::ChildReady { pid: 7 }, t0);
    let acts = m.on(Event::RestartRequested, t0 + secs(1));
    assert!(
        matches!(
            acts[..],
            [Action::RestartDone(Err(Error::HandedOver { successor: 7 }))]
        ),
        "{acts:?}"
    );
    assert_eq!(names(&m.on(Event::Tick, t0 + secs(20))), ["Hammer"]);
    let acts = m.on(Event::RestartRequested, t0 + secs(21));
    assert!(
        matches!(
            acts[..],
            [Action::RestartDone(Err(Error::HandedOver { successor: 7 }))]
        ),
        "{acts:?}"
    );

    // Draining for a shutdown: refused as shutting down.
    let mut m = Machine::new(timeouts(), false);
    m.on(Event::ShutdownRequested, t0);
    let acts = m.on(Event::RestartRequested, t0 + secs(1));
    assert!(
        matches!(acts[..], [Action::RestartDone(Err(Error::ShuttingDown))]),
        "{acts:?}"
    );
}
