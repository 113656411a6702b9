//! The world around one generation, for the machine's tests: a [`FakeHost`]
//! that records what the real [`Driver`] asks of it, a [`World`] that feeds
//! the driver on a virtual clock (`t0 + offset`, never a sleep) and reacts to
//! that record, the [`Trace`] of a run, and the machine's properties as
//! checks over a trace. Shared by tests/machine_properties.rs (generated
//! runs) and tests/machine_scenarios.rs (scripted runs).
//!
//! What the world guarantees (and what it does not):
//! - the first event is `Started`; a spawn is answered by the driver itself,
//!   with the pid (or the failure) the world chose before the event;
//! - a spawned child says ready at most once and exits at most once; a child
//!   told `KillChild` exits within the run (at the latest while settling);
//! - `ParentExited` comes once, only if the generation started with a live
//!   parent (a second one is nonsense);
//! - `DrainIdle` comes only while draining, when the in-flight model (a flag
//!   moves set and clear; the hammer clears all work) says idle, at most once
//!   per drain;
//! - Ticks come when the deadline passed: punctually, late, not at all for a
//!   while, or early (nonsense);
//! - at the end the world settles: the parent exits, every child but the
//!   successor becomes ready or exits, work finishes or the clock runs out,
//!   until the machine has exited or serves with nothing in flight.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use handoff::machine::{Action, Driver, Event, ExitReason, Host, Machine, Notify, Timeouts};
use handoff::{Error, State};

/// The pid of the generation under test; its children are 100, 101...
pub const OWN: u32 = 1;

/// A host that performs nothing: it records every action, and answers a
/// spawn with the pid (`None`: a failure) the world chose beforehand.
#[derive(Debug, Default)]
pub struct FakeHost {
    spawn: Option<u32>,
    log: Vec<Action>,
}

impl Host for FakeHost {
    fn spawn(&mut self) -> Result<u32, Error> {
        self.log.push(Action::Spawn);
        self.spawn.ok_or_else(|| Error::Hook("refused".into()))
    }
    fn kill(&mut self, pid: u32) {
        self.log.push(Action::KillChild { pid });
    }
    fn stop_child(&mut self, pid: u32) {
        self.log.push(Action::StopChild { pid });
    }
    fn begin_drain(&mut self) {
        self.log.push(Action::BeginDrain);
    }
    fn resume(&mut self) {
        self.log.push(Action::Resume);
    }
    fn hammer(&mut self) {
        self.log.push(Action::Hammer);
    }
    fn notify(&mut self, message: &Notify) {
        self.log.push(Action::Notify(message.clone()));
    }
    fn write_pid_file(&mut self, pid: u32) {
        self.log.push(Action::WritePidFile(pid));
    }
    fn remove_pid_file(&mut self) {
        self.log.push(Action::RemovePidFile);
    }
    fn ready(&mut self) {
        self.log.push(Action::Ready);
    }
    fn tell_parent_stopping(&mut self) {
        self.log.push(Action::TellParentStopping);
    }
    fn ask_supervisor(&mut self) {
        self.log.push(Action::AskSupervisor);
    }
    fn restart_done(&mut self, result: Result<u32, Error>) {
        self.log.push(Action::RestartDone(result));
    }
    fn successor_lost(&mut self, error: Error) {
        let Error::SuccessorLost { pid, status } = error else {
            panic!("successor_lost({error:?})");
        };
        self.log.push(Action::SuccessorLost { pid, status });
    }
    fn request_held(&mut self, action: &Action) {
        self.log.push(action.clone());
    }
    fn exit(&mut self, reason: ExitReason) {
        self.log.push(Action::Exit(reason));
    }
}

/// A fresh driver on a fake host, before `Started`.
fn driver(timeouts: Timeouts, parent_alive: bool) -> Driver<FakeHost> {
    Driver::new(
        Machine::new(timeouts, OWN, parent_alive),
        FakeHost::default(),
    )
}

/// Feeds `event` at `now`, a spawn getting `spawn`; what the host was asked.
fn handle(d: &mut Driver<FakeHost>, event: Event, now: Instant, spawn: Option<u32>) -> Vec<Action> {
    d.host_mut().spawn = spawn;
    d.handle(event, now);
    std::mem::take(&mut d.host_mut().log)
}

/// Actions in a word or two each, comma-separated: the name, and the pid
/// or reason each names (`MAINPID=1`, `RestartDone(HandedOver(100))`).
pub fn brief(actions: &[Action]) -> String {
    let error = |e: &Error| match e {
        Error::HandedOver { successor } => format!("HandedOver({successor})"),
        Error::ReadyTimeout { pid, timeout } => format!("ReadyTimeout({pid}, {timeout:?})"),
        Error::SuccessorExited { pid, .. } => format!("SuccessorExited({pid})"),
        Error::ShuttingDown => "ShuttingDown".into(),
        _ => "Err".into(),
    };
    let brief = |a: &Action| match a {
        Action::KillChild { pid } | Action::StopChild { pid } | Action::WritePidFile(pid) => {
            format!("{}({pid})", a.name())
        }
        Action::SuccessorLost { pid, .. } => format!("SuccessorLost({pid})"),
        Action::RestartDone(Ok(pid)) => format!("RestartDone(Ok({pid}))"),
        Action::RestartDone(Err(e)) => format!("RestartDone({})", error(e)),
        Action::Notify(Notify::Ready { main_pid }) => format!("MAINPID={main_pid}"),
        Action::Notify(Notify::Reloading) => "RELOADING".into(),
        Action::Notify(Notify::Stopping) => "STOPPING".into(),
        Action::Notify(_) => "STATUS".into(),
        Action::Exit(ExitReason::HandedOver { successor }) => {
            format!("Exit(HandedOver({successor}))")
        }
        Action::Exit(reason) => format!("Exit({reason:?})"),
        _ => a.name().into(),
    };
    actions.iter().map(brief).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A world move (or a Tick the world owed).
    World,
    /// Something a buggy or racy world delivers.
    Nonsense,
    /// A move of the final settling.
    Settle,
}

/// One `Driver::handle`, with what could be observed around it.
#[derive(Debug, Clone)]
pub struct Step {
    pub at: Instant,
    pub origin: Origin,
    pub event: Event,
    /// What the host was asked to do, in order.
    pub actions: Vec<Action>,
    /// The pid a spawn in this step got (`None`: no spawn, or it failed).
    pub spawned: Option<u32>,
    pub deadline_before: Option<Instant>,
    pub deadline_after: Option<Instant>,
    pub state_before: State,
    pub state_after: State,
    pub accepting_after: bool,
    pub exited_after: bool,
}

#[derive(Debug, Clone)]
pub enum Entry {
    Step(Step),
    /// The world delivered Ticks until the deadline was in the future (or
    /// gone); `caught_up` is false if Ticks made no progress.
    TickLoopDone {
        at: Instant,
        caught_up: bool,
    },
    /// `quiescent`: the machine exited, or serves with nothing in flight.
    End {
        quiescent: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Trace {
    pub t0: Instant,
    pub timeouts: Timeouts,
    pub parent_alive: bool,
    pub entries: Vec<Entry>,
}

impl Trace {
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Step(s) => Some(s),
            _ => None,
        })
    }

    fn off(&self, at: Instant) -> String {
        format!("t+{:?}", at.saturating_duration_since(self.t0))
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "run: {:?}, parent_alive: {}",
            self.timeouts, self.parent_alive
        )?;
        let off = |d: Option<Instant>| d.map_or("-".into(), |d| self.off(d));
        for (i, e) in self.entries.iter().enumerate() {
            match e {
                Entry::Step(s) => writeln!(
                    f,
                    "  #{i:<3} {:<12} {:?} {:?} -> [{}], spawned {:?}; deadline {} -> {}, \
                     accepting: {}, exited: {}",
                    off(Some(s.at)),
                    s.origin,
                    s.event,
                    brief(&s.actions),
                    s.spawned,
                    off(s.deadline_before),
                    off(s.deadline_after),
                    s.accepting_after,
                    s.exited_after,
                )?,
                Entry::TickLoopDone { at, caught_up } => writeln!(
                    f,
                    "  #{i:<3} {:<12} ticks delivered, caught up: {caught_up}",
                    self.off(*at)
                )?,
                Entry::End { quiescent } => writeln!(f, "  #{i:<3} end, quiescent: {quiescent}")?,
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------

/// How the world settles at the end of a run.
#[derive(Debug, Clone, Copy)]
pub struct Settle {
    /// Children other than the successor become ready (else they exit).
    pub ready: bool,
    /// In-flight work finishes and `DrainIdle` is reported (else the clock
    /// runs out: hammer, kill timeout).
    pub idle: bool,
    /// Spawns made while settling fail.
    pub spawn_fails: bool,
}

pub struct World {
    driver: Driver<FakeHost>,
    pub trace: Trace,
    pub now: Instant,
    pub parent_alive: bool,
    /// The children, by pid, in the order spawned; and what they did.
    spawned: Vec<u32>,
    pub ready_sent: BTreeSet<u32>,
    killed: BTreeSet<u32>,
    /// Children told to shut down while starting.
    stopped: BTreeSet<u32>,
    pub exited: BTreeSet<u32>,
    /// The pid the machine named in `RestartDone(Ok)`.
    successor: Option<u32>,
    pub draining: bool,
    pub work_idle: bool,
    pub idle_reported: bool,
    /// Whether a spawn in the next event fails.
    pub spawn_fails: bool,
}

impl World {
    /// A world whose generation has just started (the first event).
    pub fn new(timeouts: Timeouts, parent_alive: bool) -> Self {
        let (t0, entries) = (Instant::now(), Vec::new());
        let mut world = World {
            driver: driver(timeouts, parent_alive),
            trace: Trace {
                t0,
                timeouts,
                parent_alive,
                entries,
            },
            now: t0,
            parent_alive,
            spawned: Vec::new(),
            ready_sent: BTreeSet::new(),
            killed: BTreeSet::new(),
            stopped: BTreeSet::new(),
            exited: BTreeSet::new(),
            successor: None,
            draining: false,
            work_idle: false,
            idle_reported: false,
            spawn_fails: false,
        };
        world.deliver(Event::Started, Origin::World);
        world
    }

    pub fn machine(&self) -> &Machine {
        self.driver.machine()
    }

    /// The children not exited (and not the successor, if `but_successor`).
    pub fn alive(&self, but_successor: bool) -> Vec<u32> {
        let successor = self.successor.filter(|_| but_successor);
        let alive = |pid: &&u32| !self.exited.contains(*pid) && Some(**pid) != successor;
        self.spawned.iter().filter(alive).copied().collect()
    }

    /// Feeds one event through the driver, reacts to what the host was asked
    /// to do, and records the step.
    pub fn deliver(&mut self, event: Event, origin: Origin) -> &Step {
        match &event {
            Event::ChildReady { pid } => _ = self.ready_sent.insert(*pid),
            Event::ChildExited { pid, .. } => _ = self.exited.insert(*pid),
            Event::ParentExited => self.parent_alive = false,
            _ => {}
        }
        let offer = (!self.spawn_fails).then_some(100 + self.spawned.len() as u32);
        let deadline_before = self.machine().deadline();
        let state_before = self.machine().state();
        let actions = handle(&mut self.driver, event.clone(), self.now, offer);
        let mut spawned = None;
        for action in &actions {
            match action {
                Action::Spawn => (spawned, _) = (offer, self.spawned.extend(offer)),
                Action::KillChild { pid } => _ = self.killed.insert(*pid),
                Action::StopChild { pid } => _ = self.stopped.insert(*pid),
                Action::RestartDone(Ok(pid)) => self.successor = Some(*pid),
                Action::BeginDrain => (self.draining, self.idle_reported) = (true, false),
                Action::Resume => self.draining = false,
                // The hammer aborts whatever is in flight.
                Action::Hammer => self.work_idle = true,
                _ => {}
            }
        }
        let machine = self.driver.machine();
        let step = Step {
            at: self.now,
            origin,
            event,
            actions,
            spawned,
            deadline_before,
            deadline_after: machine.deadline(),
            state_before,
            state_after: machine.state(),
            accepting_after: machine.is_accepting(),
            exited_after: machine.has_exited(),
        };
        self.trace.entries.push(Entry::Step(step));
        match self.trace.entries.last() {
            Some(Entry::Step(step)) => step,
            _ => unreachable!(),
        }
    }

    /// Delivers Ticks while the deadline has passed (as the driver's timer
    /// would: a deadline in the past fires at once).
    pub fn catch_up(&mut self) {
        for _ in 0..8 {
            match self.machine().deadline() {
                Some(d) if d <= self.now => self.deliver(Event::Tick, Origin::World),
                _ => break,
            };
        }
        let at = self.now;
        let caught_up = self.machine().deadline().is_none_or(|d| d > at);
        self.trace
            .entries
            .push(Entry::TickLoopDone { at, caught_up });
    }

    /// Moves the clock on, stopping at each deadline to deliver its Tick.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..16 {
            match self.machine().deadline() {
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

    /// Child `pid` exits: killed if it was told to, cleanly if told to stop,
    /// else on its own.
    pub fn child_exits(&mut self, pid: u32, origin: Origin) {
        let status = if self.killed.contains(&pid) {
            "killed by signal 9"
        } else if self.stopped.contains(&pid) {
            "exit status 0"
        } else {
            "exit status 1"
        }
        .into();
        self.deliver(Event::ChildExited { pid, status }, origin);
    }

    pub fn parent_exits(&mut self, origin: Origin) {
        if self.parent_alive {
            self.deliver(Event::ParentExited, origin);
        }
    }

    /// The work in flight finished, and the server says so.
    pub fn drain_idle(&mut self, origin: Origin) {
        (self.work_idle, self.idle_reported) = (true, true);
        self.deliver(Event::DrainIdle, origin);
    }

    /// Lets everything finish: the parent exits, children become ready or
    /// exit, killed children are reaped, work finishes or the clock runs out.
    pub fn settle(mut self, settle: Settle) -> Trace {
        self.spawn_fails = settle.spawn_fails;
        for _ in 0..200 {
            if self.parent_alive {
                self.parent_exits(Origin::Settle);
                continue;
            }
            let killed_first = self
                .alive(true)
                .into_iter()
                .min_by_key(|p| !self.killed.contains(p));
            if let Some(pid) = killed_first {
                if settle.ready && !self.killed.contains(&pid) && !self.ready_sent.contains(&pid) {
                    self.deliver(Event::ChildReady { pid }, Origin::Settle);
                } else {
                    self.child_exits(pid, Origin::Settle);
                }
                continue;
            }
            if self.machine().has_exited() {
                break;
            }
            if self.draining && settle.idle && !self.idle_reported {
                self.drain_idle(Origin::Settle);
                continue;
            }
            let Some(d) = self.machine().deadline() else {
                break;
            };
            self.now = self.now.max(d);
            self.catch_up();
        }
        let machine = self.driver.machine();
        let serving = machine.is_accepting() && machine.deadline().is_none();
        let alone = !self.parent_alive && self.alive(true).is_empty();
        let quiescent = machine.has_exited() || (serving && alone);
        self.trace.entries.push(Entry::End { quiescent });
        self.trace
    }
}

// ---------------------------------------------------------------------------
// Properties, each a check over a trace
// ---------------------------------------------------------------------------

/// A check's verdict: why the trace violates the property, if it does.
pub type Verdict = Result<(), String>;
pub type Check = fn(&Trace) -> Verdict;

/// Fails the check with the message unless `ok`.
macro_rules! ensure {
    ($ok:expr, $($what:tt)+) => {
        if !$ok {
            return Err(format!($($what)+));
        }
    };
}

/// Runs `check` on each entry, naming the time of the one that fails.
fn each_entry(trace: &Trace, mut check: impl FnMut(&Entry) -> Verdict) -> Verdict {
    trace.entries.iter().try_for_each(|e| {
        check(e).map_err(|why| match e {
            Entry::Step(Step { at, .. }) | Entry::TickLoopDone { at, .. } => {
                format!("at {}: {why}", trace.off(*at))
            }
            _ => why,
        })
    })
}

fn each_step(trace: &Trace, mut check: impl FnMut(&Step) -> Verdict) -> Verdict {
    let at = |s: &Step, why| format!("at {}: {why}", trace.off(s.at));
    trace
        .steps()
        .try_for_each(|s| check(s).map_err(|why| at(s, why)))
}

/// The successor a step's `RestartDone(Ok(pid))` names, if it has one.
fn handed_over_in(s: &Step) -> Option<u32> {
    s.actions.iter().find_map(|a| match a {
        Action::RestartDone(Ok(pid)) => Some(*pid),
        _ => None,
    })
}

/// Property 1: never stops accepting early. A `BeginDrain` that no shutdown
/// request preceded follows the `ChildReady` of the child spawned last (and
/// still alive), before `RestartDone(Ok(that pid))` in the same step (the
/// restart is reported done once this generation stopped accepting). The
/// machine accepts until `BeginDrain` and again from `Resume`; it never
/// exits without draining.
pub fn p1_never_stops_accepting_early(trace: &Trace) -> Verdict {
    let (mut shutdown_asked, mut draining) = (false, false);
    let (mut last_spawned, mut ready_of_last) = (None, false);
    each_step(trace, |s| {
        match &s.event {
            Event::ShutdownRequested => shutdown_asked = true,
            Event::ChildReady { pid } if Some(*pid) == last_spawned => ready_of_last = true,
            Event::ChildExited { pid, .. } if Some(*pid) == last_spawned => {
                (last_spawned, ready_of_last) = (None, false);
            }
            _ => {}
        }
        if s.spawned.is_some() {
            (last_spawned, ready_of_last) = (s.spawned, false);
        }
        for (i, a) in s.actions.iter().enumerate() {
            match a {
                Action::BeginDrain => {
                    let answered = s.actions[i + 1..].iter().any(
                        |a| matches!(a, Action::RestartDone(Ok(p)) if Some(*p) == last_spawned),
                    );
                    ensure!(!draining, "BeginDrain while draining");
                    ensure!(
                        shutdown_asked || (ready_of_last && answered),
                        "BeginDrain unasked, before the last child ({last_spawned:?}) was ready and answered"
                    );
                    draining = true;
                }
                Action::Resume => draining = false,
                Action::Exit(_) => ensure!(draining, "Exit without BeginDrain"),
                _ => {}
            }
        }
        ensure!(
            draining || s.accepting_after,
            "not accepting, yet not draining"
        );
        Ok(())
    })
}

/// Property 2: at most two generations alive. No `Spawn` while any child is
/// alive (a successor lives only while this generation drains), nor while
/// this generation's parent is alive, nor while draining; one `Spawn` per
/// upgrade attempt (from the `Spawn` to the `RestartDone` that answers it).
pub fn p2_at_most_two_generations(trace: &Trace) -> Verdict {
    let mut parent_alive = trace.parent_alive;
    let mut alive: BTreeSet<u32> = BTreeSet::new();
    let (mut attempt_open, mut draining) = (false, false);
    each_step(trace, |s| {
        match &s.event {
            Event::ParentExited => parent_alive = false,
            Event::ChildExited { pid, .. } => _ = alive.remove(pid),
            _ => {}
        }
        for a in &s.actions {
            match a {
                Action::Spawn => {
                    ensure!(!parent_alive, "Spawn while our own parent is alive");
                    ensure!(!attempt_open, "a second Spawn in one upgrade attempt");
                    ensure!(!draining, "Spawn while draining");
                    ensure!(alive.is_empty(), "Spawn while child {alive:?} is alive");
                    attempt_open = true;
                }
                Action::RestartDone(_) => attempt_open = false,
                Action::BeginDrain => draining = true,
                Action::Resume => draining = false,
                _ => {}
            }
        }
        alive.extend(s.spawned);
        Ok(())
    })
}

/// Property 3: one upgrade at a time, and every restart request is answered.
///
/// A restart request is pending from the `RestartRequested` event that
/// carries it (duplicates included) until the next `RestartDone`, which the
/// driver fans out to every request pending then. `Coalesced` and `Deferred`
/// acknowledge, they do not answer. Every `RestartDone` must answer at least
/// one request, and at the end of a settled run nothing is pending.
///
/// Each request gets the reply its moment calls for: after `Exit` or while
/// draining, at once `RestartDone(Err)` (naming the successor if draining for
/// one, `ShuttingDown` otherwise); during an upgrade `Coalesced`; during the
/// shutdown delay `RestartDone(ShuttingDown)`; while our
/// parent is alive `Deferred`; else `Notify(Reloading), Notify(Status),
/// Spawn` (followed by the spawn's outcome).
pub fn p3_one_upgrade_at_a_time(trace: &Trace) -> Verdict {
    let (mut pending, mut parent_alive, mut attempt_open) = (0, trace.parent_alive, false);
    // None: not draining; Some(successor): draining (for a successor or not).
    let (mut draining, mut exited) = (None::<Option<u32>>, false);
    each_entry(trace, |e| {
        let s = match e {
            Entry::Step(s) => s,
            Entry::End { quiescent } => {
                ensure!(*quiescent, "the run did not settle");
                ensure!(pending == 0, "{pending} restart request(s) never answered");
                return Ok(());
            }
            _ => return Ok(()),
        };
        parent_alive &= !matches!(s.event, Event::ParentExited);
        if let Event::RestartRequested = s.event {
            pending += 1;
            let got = brief(&s.actions);
            let ok = match draining {
                _ if exited => got == "RestartDone(ShuttingDown)",
                Some(Some(successor)) => got == format!("RestartDone(HandedOver({successor}))"),
                Some(None) => got == "RestartDone(ShuttingDown)",
                None if attempt_open => got == "Coalesced",
                // Serving out the shutdown delay.
                None if s.state_before == State::ShuttingDown => got == "RestartDone(ShuttingDown)",
                None if parent_alive => got == "Deferred",
                None => got.starts_with("RELOADING, STATUS, Spawn"),
            };
            let state =
                format!("exited: {exited}, draining: {draining:?}, upgrading: {attempt_open}");
            ensure!(ok, "restart request while {state} answered with [{got}]");
        }
        // The successor a drain in this step is for (its RestartDone comes
        // right after the BeginDrain).
        let answered_ok = handed_over_in(s);
        for a in &s.actions {
            match a {
                Action::RestartDone(result) => {
                    ensure!(pending > 0, "RestartDone({result:?}) answers no request");
                    (pending, attempt_open) = (0, false);
                }
                Action::Coalesced | Action::Deferred => {
                    let asked = matches!(s.event, Event::RestartRequested);
                    ensure!(asked, "{a:?} without a request");
                }
                Action::Spawn => attempt_open = true,
                Action::BeginDrain => draining = Some(answered_ok),
                Action::Resume => draining = None,
                Action::Exit(_) => exited = true,
                _ => {}
            }
        }
        Ok(())
    })
}

/// Property 4: every spawned child is reaped or is the successor. At `Exit`,
/// each spawned child delivered `ChildExited`, or is the ready successor
/// (named by `HandedOver`; a `KillTimeout` exit after a hand-over leaves it
/// running too), or (only for `KillTimeout`) was told `KillChild`.
/// `KillChild` names a spawned child that has not exited and is not the
/// successor; so does `StopChild`, only at a shutdown. The exit reason matches the drain; a successor lost and taken
/// back is no successor any more.
pub fn p4_children_reaped_or_successor(trace: &Trace) -> Verdict {
    let (mut spawned, mut exited, mut killed) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
    let mut successor: Option<u32> = None;
    each_step(trace, |s| {
        if let Event::ChildExited { pid, .. } = &s.event {
            exited.insert(*pid);
        }
        spawned.extend(s.spawned);
        for a in &s.actions {
            match a {
                Action::RestartDone(Ok(pid)) => successor = Some(*pid),
                Action::SuccessorLost { .. } => successor = None,
                Action::StopChild { pid } => {
                    ensure!(spawned.contains(pid), "StopChild of {pid}, never spawned");
                    ensure!(!exited.contains(pid), "StopChild of {pid}, already exited");
                    ensure!(Some(*pid) != successor, "StopChild of the successor {pid}");
                    ensure!(
                        matches!(
                            s.event,
                            Event::ShutdownRequested | Event::ChildSpawned { .. }
                        ),
                        "StopChild of {pid} on {:?}, not at a shutdown",
                        s.event
                    );
                }
                Action::KillChild { pid } => {
                    ensure!(spawned.contains(pid), "KillChild of {pid}, never spawned");
                    ensure!(!exited.contains(pid), "KillChild of {pid}, already exited");
                    ensure!(Some(*pid) != successor, "KillChild of the successor {pid}");
                    killed.insert(*pid);
                }
                Action::Exit(reason) => {
                    let fits = match reason {
                        ExitReason::HandedOver { successor: p } => Some(*p) == successor,
                        ExitReason::Shutdown => successor.is_none(),
                        _ => true,
                    };
                    ensure!(fits, "Exit({reason:?}) but the successor is {successor:?}");
                    let timed_out = *reason == ExitReason::KillTimeout;
                    let left = spawned.iter().find(|pid| {
                        !exited.contains(pid)
                            && Some(**pid) != successor
                            && !(timed_out && killed.contains(pid))
                    });
                    ensure!(
                        left.is_none(),
                        "Exit({reason:?}) leaves child {left:?} unreaped"
                    );
                }
                _ => {}
            }
        }
        Ok(())
    })
}

/// Property 5: a drain always ends in exit by stop + kill. With the drain
/// begun at T (and not resumed) and B = T + stop + kill: once the world has
/// delivered the Ticks due at a time >= B, the machine has exited; if the
/// world was never late during the drain, `Exit` comes at or before B.
/// Exactly one `Exit`, only while draining, and after it nothing but
/// `RestartDone(Err)`. A run that ends draining ends exited.
pub fn p5_drain_ends_by_stop_plus_kill(trace: &Trace) -> Verdict {
    let budget = trace.timeouts.stop + trace.timeouts.kill;
    let (mut drain_at, mut late, mut exited) = (None::<Instant>, false, false);
    each_entry(trace, |e| {
        match e {
            Entry::Step(s) if exited => {
                let after = s
                    .actions
                    .iter()
                    .find(|a| !matches!(a, Action::RestartDone(Err(_))));
                ensure!(after.is_none(), "{after:?} after Exit");
            }
            Entry::Step(s) => {
                late |= drain_at.is_some() && s.deadline_before.is_some_and(|d| s.at > d);
                for a in &s.actions {
                    match a {
                        Action::BeginDrain => (drain_at, late) = (Some(s.at), false),
                        Action::Resume => drain_at = None,
                        Action::Exit(_) => {
                            let Some(t) = drain_at else {
                                return Err("Exit while not draining".into());
                            };
                            let due = trace.off(t + budget);
                            ensure!(
                                late || s.at <= t + budget,
                                "punctual world, yet Exit after {due}"
                            );
                            exited = true;
                        }
                        _ => {}
                    }
                }
            }
            Entry::TickLoopDone { at, .. } => {
                if let Some(t) = drain_at.filter(|t| !exited && *at >= *t + budget) {
                    return Err(format!(
                        "Ticks delivered past {}, not exited",
                        trace.off(t + budget)
                    ));
                }
            }
            Entry::End { .. } => ensure!(drain_at.is_none() || exited, "drained but never exited"),
        }
        Ok(())
    })
}

/// Property 6: deadlines and accepting. A deadline newly set is not in the
/// past by more than the world's lag (how late the Tick for the previous
/// deadline came); a Tick at a due deadline acts; after the world's Tick loop
/// the deadline is in the future; after `Exit` there is no deadline;
/// `is_accepting()` is false from `BeginDrain` until `Resume`.
pub fn p6_deadlines_and_accepting(trace: &Trace) -> Verdict {
    let mut draining = false;
    each_entry(trace, |e| {
        let s = match e {
            Entry::Step(s) => s,
            Entry::TickLoopDone { caught_up, .. } => {
                ensure!(*caught_up, "Ticks at a due deadline made no progress");
                return Ok(());
            }
            _ => return Ok(()),
        };
        if let Some(new) = s
            .deadline_after
            .filter(|_| s.deadline_after != s.deadline_before)
        {
            let lag = s
                .deadline_before
                .map_or(Duration::ZERO, |d| s.at.saturating_duration_since(d));
            ensure!(
                new + lag >= s.at,
                "new deadline {} in the past by more than the lag {lag:?}",
                trace.off(new)
            );
        }
        // A due Tick must act (kill, hammer, exit) or move the deadline.
        if let (Event::Tick, Some(d)) = (&s.event, s.deadline_before) {
            let idle = d <= s.at && s.actions.is_empty() && s.deadline_after == Some(d);
            ensure!(!idle, "a Tick at a due deadline did nothing");
        }
        for a in &s.actions {
            match a {
                Action::BeginDrain => draining = true,
                Action::Resume => draining = false,
                Action::Exit(_) => ensure!(s.exited_after, "Exit said but has_exited() is false"),
                _ => {}
            }
        }
        ensure!(
            !s.exited_after || s.deadline_after.is_none(),
            "deadline after Exit"
        );
        ensure!(!draining || !s.accepting_after, "accepting while draining");
        Ok(())
    })
}

/// Property 7: determinism. Replaying the same events at the same times (and
/// the same spawn answers) on fresh drivers gives the same actions and the
/// same states.
pub fn p7_deterministic(trace: &Trace) -> Verdict {
    let mut a = driver(trace.timeouts, trace.parent_alive);
    let mut b = driver(trace.timeouts, trace.parent_alive);
    each_step(trace, |s| {
        let recorded = format!("{:?}", s.actions);
        let from_a = format!("{:?}", handle(&mut a, s.event.clone(), s.at, s.spawned));
        let from_b = format!("{:?}", handle(&mut b, s.event.clone(), s.at, s.spawned));
        ensure!(
            recorded == from_a && from_a == from_b,
            "{:?} gave {recorded} / {from_a} / {from_b}",
            s.event
        );
        ensure!(
            format!("{:?}", a.machine()) == format!("{:?}", b.machine()),
            "replayed machines differ"
        );
        Ok(())
    })
}

/// Property 8: the pid file and MAINPID name the generation that accepts.
/// Within a step, a successor's `WritePidFile` comes after `BeginDrain`, and
/// `Notify(Ready{p})` after `WritePidFile(p)` (the pid file written before
/// MAINPID is told, each time);
/// `RemovePidFile` only when draining for a shutdown. After each step until
/// `Exit`: while this generation accepts, the pid file and the last `Ready`
/// name it; while it drains for a successor, they name the successor; while
/// it drains for a shutdown, there is no pid file. A parent alive at the
/// start named this generation already.
pub fn p8_pid_file_names_who_accepts(trace: &Trace) -> Verdict {
    let named = trace.parent_alive.then_some(OWN);
    let (mut pid_file, mut main_pid, mut exited) = (named, named, false);
    // None: accepting; Some(successor): draining (for a shutdown if None).
    let mut drain: Option<Option<u32>> = None;
    each_step(trace, |s| {
        if exited {
            return Ok(()); // p5 checks what comes after Exit
        }
        let (handed_to, mut written) = (handed_over_in(s), None);
        for a in &s.actions {
            match a {
                Action::BeginDrain => drain = Some(handed_to),
                Action::Resume => drain = None,
                Action::WritePidFile(pid) => {
                    ensure!(
                        Some(*pid) == drain.unwrap_or(Some(OWN)),
                        "WritePidFile({pid}), draining: {drain:?}"
                    );
                    (pid_file, written) = (Some(*pid), Some(*pid));
                }
                Action::RemovePidFile => {
                    ensure!(drain == Some(None), "RemovePidFile but not shutting down");
                    pid_file = None;
                }
                Action::Notify(Notify::Ready { main_pid: pid }) => {
                    let why = "without writing the pid file first in the same step";
                    ensure!(written == Some(*pid), "MAINPID={pid} {why}");
                    main_pid = Some(*pid);
                }
                Action::Exit(_) => exited = true,
                _ => {}
            }
        }
        let want = drain.unwrap_or(Some(OWN));
        let named = pid_file == want && (want.is_none() || main_pid == want);
        ensure!(
            exited || named,
            "pid file {pid_file:?}, MAINPID {main_pid:?}, but {want:?} accepts"
        );
        Ok(())
    })
}

/// Property 9: a successor that dies after it said ready, while this
/// generation lives (no `Exit` yet), is taken back from: the step is exactly
/// `Resume, WritePidFile(own), Notify(Ready{own}), Notify(Status),
/// SuccessorLost{it}`, after which there is no deadline and the machine
/// accepts until it drains again. Unless its exit was deliberate (it said it
/// stops) or this generation was asked to shut down: then nothing happens.
/// `Resume` and `SuccessorLost` come at no other time, so each loss is
/// reported once.
pub fn p9_a_lost_successor_leaves_the_parent_serving(trace: &Trace) -> Verdict {
    let (mut successor, mut serving_again) = (None, false);
    let (mut shutdown_asked, mut stopping) = (false, None);
    each_step(trace, |s| {
        match &s.event {
            Event::ShutdownRequested => shutdown_asked = true,
            Event::ChildStopping { pid } => stopping = Some(*pid),
            _ => {}
        }
        match &s.event {
            Event::ChildExited { pid, .. }
                if Some(*pid) == successor && (shutdown_asked || stopping == Some(*pid)) =>
            {
                ensure!(
                    s.actions.is_empty(),
                    "successor {pid} stopped deliberately (or a shutdown was asked): [{}]",
                    brief(&s.actions)
                );
                successor = None;
            }
            Event::ChildExited { pid, status } if Some(*pid) == successor => {
                let got = brief(&s.actions);
                let want = format!(
                    "Resume, WritePidFile({OWN}), MAINPID={OWN}, STATUS, SuccessorLost({pid})"
                );
                ensure!(got == want, "successor {pid} died while draining: [{got}]");
                let said = matches!(s.actions.last(), Some(Action::SuccessorLost { status: st, .. }) if st == status);
                ensure!(said, "SuccessorLost without the successor's exit status");
                ensure!(s.deadline_after.is_none(), "a deadline after the take-back");
                (successor, serving_again) = (None, true);
            }
            _ => {
                for a in &s.actions {
                    match a {
                        Action::RestartDone(Ok(pid)) => successor = Some(*pid),
                        Action::BeginDrain => serving_again = false,
                        Action::Resume | Action::SuccessorLost { .. } => {
                            return Err(format!("{a:?}, yet no successor died"));
                        }
                        Action::Exit(_) => successor = None,
                        _ => {}
                    }
                }
            }
        }
        let serving = s.accepting_after && !s.exited_after;
        ensure!(serving || !serving_again, "not serving after the take-back");
        Ok(())
    })
}

/// Property 10: the shutdown delay. From the first `ShutdownRequested` on,
/// the state is never ready. A shutdown asked while serving, with a delay,
/// starts no drain: the machine is `ShuttingDown`, still accepting, with a
/// deadline; its drain (`BeginDrain`) comes no earlier than the delay after
/// the request, unless a second request ends the delay. Without a delay, a
/// shutdown asked while serving drains in its step. `ShuttingDown` accepts.
pub fn p10_shutdown_delay(trace: &Trace) -> Verdict {
    let delay = trace.timeouts.shutdown_delay;
    let (mut asked, mut delaying_since) = (false, None::<Instant>);
    each_step(trace, |s| {
        let drains = s.actions.iter().any(|a| matches!(a, Action::BeginDrain));
        let shutdown = matches!(s.event, Event::ShutdownRequested);
        if shutdown && matches!(s.state_before, State::Serving | State::Starting) {
            if delay.is_zero() {
                ensure!(drains, "no delay, yet no drain: [{}]", brief(&s.actions));
            } else {
                ensure!(
                    !drains && s.state_after == State::ShuttingDown && s.accepting_after,
                    "shutdown with a {delay:?} delay: [{}], {:?}",
                    brief(&s.actions),
                    s.state_after
                );
                ensure!(s.deadline_after.is_some(), "delaying without a deadline");
                delaying_since = Some(s.at);
            }
        }
        asked |= shutdown;
        if drains {
            if let Some(since) = delaying_since.take() {
                let second = shutdown && s.state_before == State::ShuttingDown;
                ensure!(
                    second || s.at >= since + delay,
                    "drained {} after the shutdown, within its {delay:?} delay",
                    trace.off(s.at)
                );
            }
        }
        ensure!(
            !(asked && s.state_after.is_ready()),
            "{:?} (ready) after a shutdown was asked",
            s.state_after
        );
        ensure!(
            s.state_after != State::ShuttingDown || s.accepting_after,
            "ShuttingDown yet not accepting"
        );
        Ok(())
    })
}
