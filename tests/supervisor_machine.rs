//! Property tests for the supervisor's state machine
//! (`handoff::supervisor::machine`), over generated runs in a small world on
//! a virtual clock.
//!
//! The world answers each `Spawn` at a later move (with a pid, a failure, or a
//! worker that exits at once), lets live workers say ready or exit, lets a
//! worker told to accept again say it does at a later move, kills nothing on
//! its own, and delivers each Tick exactly at the machine's
//! deadline (so backoff delays can be measured), plus a few events that fit no
//! state. A run ends with a shutdown and settles until the machine exits.
//! In a "flaky" run every worker exits at once: the crash loop.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use handoff::Error;
use handoff::machine::{Notify, Timeouts};
use handoff::supervisor::machine::{
    Action, BACKOFF_MAX, BACKOFF_MIN, BACKOFF_RESET, CRASH_LOOP, Event, Machine,
};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Answer {
    Pid,
    Fails,
    ExitsAtOnce,
}

#[derive(Debug, Clone)]
enum Move {
    Advance(u64),
    NextDeadline,
    Restart,
    Shutdown,
    AnswerSpawn(Answer),
    Ready(Pick),
    /// A worker told `Resume` says it accepts again, or (false) exits
    /// instead: it had finished draining and was on its way out.
    Resumed(bool),
    /// A worker told `Drain` says it stopped accepting.
    Draining,
    Exits(Pick, bool),
    /// An event that fits no state: an unknown pid's exit or ready, an early
    /// Tick.
    Stray(u8),
}

/// Which of the workers a move picks: a fraction of the list (as
/// proptest's `Index`, which a test cannot build), so a run replays.
#[derive(Debug, Clone, Copy)]
struct Pick(usize);

impl Pick {
    fn get<T>(self, list: &[T]) -> &T {
        let at = (list.len() as u128 * self.0 as u128) >> usize::BITS;
        &list[at as usize]
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    timeouts: Timeouts,
    flaky: bool,
    moves: Vec<Move>,
    /// Whether draining workers exit with status 0 when the run settles
    /// (else the clock runs out and they are killed).
    clean_end: bool,
}

fn world_move() -> impl Strategy<Value = Move> {
    let answer = prop_oneof![6 => Just(Answer::Pid), 1 => Just(Answer::Fails), 2 => Just(Answer::ExitsAtOnce)];
    // A shutdown mid-run in about a third of the runs; every run ends with one.
    prop_oneof![
        12 => (0u64..8_000).prop_map(Move::Advance),
        4 => Just(Move::NextDeadline),
        12 => Just(Move::Restart),
        1 => Just(Move::Shutdown),
        20 => answer.prop_map(Move::AnswerSpawn),
        24 => any::<usize>().prop_map(|i| Move::Ready(Pick(i))),
        14 => prop::bool::weighted(0.6).prop_map(Move::Resumed),
        6 => Just(Move::Draining),
        5 => (any::<usize>(), prop::bool::weighted(0.3)).prop_map(|(i, ok)| Move::Exits(Pick(i), ok)),
        4 => (0u8..3).prop_map(Move::Stray),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let secs = |max| (0u64..=max).prop_map(Duration::from_secs);
    (
        (secs(30), secs(20), secs(10), secs(5)),
        prop::bool::weighted(0.2),
        prop::collection::vec(world_move(), 0..=80),
        any::<bool>(),
    )
        .prop_map(
            |((ready, stop, kill, shutdown_delay), flaky, moves, clean_end)| Scenario {
                timeouts: Timeouts {
                    ready,
                    stop,
                    kill,
                    shutdown_delay,
                },
                flaky,
                moves,
                clean_end,
            },
        )
}

/// One `Machine::on`, with what could be observed around it.
#[derive(Debug, Clone)]
struct Step {
    at: Duration,
    event: Event,
    actions: Vec<Action>,
    current_before: Option<u32>,
    current_after: Option<u32>,
    taking_back_before: Option<u32>,
    taking_back_after: Option<u32>,
    handing_over_after: Option<u32>,
}

struct World {
    m: Machine,
    t0: Instant,
    now: Instant,
    next_pid: u32,
    spawn_pending: bool,
    alive: BTreeSet<u32>,
    said_ready: BTreeSet<u32>,
    told_resume: BTreeSet<u32>,
    told_drain: BTreeSet<u32>,
    killed: BTreeSet<u32>,
    steps: Vec<Step>,
}

impl World {
    fn new(timeouts: Timeouts) -> Self {
        let t0 = Instant::now();
        let mut w = World {
            m: Machine::new(timeouts, 1),
            t0,
            now: t0,
            next_pid: 100,
            spawn_pending: false,
            alive: BTreeSet::new(),
            said_ready: BTreeSet::new(),
            told_resume: BTreeSet::new(),
            told_drain: BTreeSet::new(),
            killed: BTreeSet::new(),
            steps: Vec::new(),
        };
        w.deliver(Event::Started);
        w
    }

    fn deliver(&mut self, event: Event) {
        let (current_before, taking_back_before) = (self.m.current(), self.m.taking_back());
        let actions = self.m.on(event.clone(), self.now);
        for a in &actions {
            match a {
                Action::Spawn => self.spawn_pending = true,
                Action::Kill { pid } => _ = self.killed.insert(*pid),
                Action::Resume { pid } => _ = self.told_resume.insert(*pid),
                Action::Drain { pid, .. } => _ = self.told_drain.insert(*pid),
                _ => {}
            }
        }
        let (at, current_after) = (self.now - self.t0, self.m.current());
        self.steps.push(Step {
            at,
            event,
            actions,
            current_before,
            current_after,
            taking_back_before,
            taking_back_after: self.m.taking_back(),
            handing_over_after: self.m.handing_over(),
        });
    }

    fn tick_at_deadline(&mut self, until: Option<Instant>) -> bool {
        match self.m.deadline() {
            Some(d) if until.is_none_or(|u| d <= u) => {
                self.now = self.now.max(d);
                self.deliver(Event::Tick);
                true
            }
            _ => false,
        }
    }

    fn exit(&mut self, pid: u32, success: bool) {
        self.alive.remove(&pid);
        let success = success && !self.killed.contains(&pid);
        let status = format!("exit status {}", u8::from(!success));
        self.deliver(Event::WorkerExited {
            pid,
            status,
            success,
        });
    }

    fn answer(&mut self, answer: Answer) {
        if !std::mem::take(&mut self.spawn_pending) {
            return;
        }
        if let Answer::Fails = answer {
            return self.deliver(Event::SpawnFailed(Error::Hook("cannot start".into())));
        }
        let pid = self.next_pid;
        self.next_pid += 1;
        self.alive.insert(pid);
        self.deliver(Event::WorkerSpawned { pid });
        if let Answer::ExitsAtOnce = answer {
            self.exit(pid, false);
        }
    }

    fn play(&mut self, mv: &Move, flaky: bool) {
        if flaky {
            self.answer(Answer::ExitsAtOnce);
        }
        match *mv {
            Move::Advance(ms) => {
                let until = self.now + Duration::from_millis(ms);
                // At most 100 Ticks on the way.
                _ = (0..100)
                    .take_while(|_| self.tick_at_deadline(Some(until)))
                    .count();
                self.now = until;
            }
            Move::NextDeadline => _ = self.tick_at_deadline(None),
            Move::Restart => self.deliver(Event::RestartRequested),
            Move::Shutdown => self.deliver(Event::ShutdownRequested),
            Move::AnswerSpawn(answer) => self.answer(answer),
            Move::Ready(ref ix) => {
                let waiting: Vec<u32> = self.alive.difference(&self.said_ready).copied().collect();
                if !waiting.is_empty() {
                    let pid = *ix.get(&waiting);
                    self.said_ready.insert(pid);
                    self.deliver(Event::WorkerReady { pid });
                }
            }
            Move::Resumed(answers) => {
                let told = self.told_resume.intersection(&self.alive).next().copied();
                if let Some(pid) = told {
                    self.told_resume.remove(&pid);
                    if answers {
                        self.deliver(Event::WorkerResumed { pid });
                    } else {
                        self.exit(pid, true);
                    }
                }
            }
            Move::Draining => {
                let told = self.told_drain.intersection(&self.alive).next().copied();
                if let Some(pid) = told {
                    self.told_drain.remove(&pid);
                    self.deliver(Event::WorkerDraining { pid });
                }
            }
            Move::Exits(ref ix, success) => {
                let alive: Vec<u32> = self.alive.iter().copied().collect();
                if !alive.is_empty() {
                    self.exit(*ix.get(&alive), success);
                }
            }
            Move::Stray(0) => self.deliver(Event::WorkerReady { pid: 7 }),
            Move::Stray(1) => self.deliver(Event::Tick),
            Move::Stray(_) => self.deliver(Event::WorkerExited {
                pid: 7,
                status: "?".into(),
                success: true,
            }),
        }
    }

    /// Shut down and let every worker go, until the machine exits.
    fn settle(&mut self, clean: bool) {
        self.deliver(Event::ShutdownRequested);
        for _ in 0..200 {
            if self.m.has_exited() {
                return;
            }
            if self.spawn_pending {
                self.answer(Answer::Pid);
            } else if let Some(&pid) = self.alive.iter().find(|p| self.killed.contains(p) || clean)
            {
                self.exit(pid, true);
            } else if !self.tick_at_deadline(None) {
                break;
            }
        }
    }
}

fn run(s: &Scenario) -> Vec<Step> {
    let mut w = World::new(s.timeouts);
    for mv in &s.moves {
        w.play(mv, s.flaky);
    }
    w.settle(s.clean_end);
    w.steps
}

fn show(steps: &[Step]) -> String {
    let line = |(i, s): (usize, &Step)| format!("#{i} {s:?}\n");
    steps.iter().enumerate().map(line).collect()
}

fn exited_pid(e: &Event) -> Option<u32> {
    match e {
        Event::WorkerExited { pid, .. } => Some(*pid),
        _ => None,
    }
}

/// Whether the step has an action named `name` (`"Stopping"`: that notice).
fn says(s: &Step, name: &str) -> bool {
    let name_of = |a: &Action| match a {
        Action::Notify(Notify::Stopping) => "Stopping",
        a => a.name(),
    };
    s.actions.iter().any(|a| name_of(a) == name)
}

/// A replacement is due from `at`: the backoff it must wait is fixed now,
/// `BACKOFF_MIN` first (or again after a reset, `prev` cleared), then
/// doubling up to `BACKOFF_MAX`. One already pending stays as it was (the
/// machine replaces a worker once, with the worker on its way).
fn schedule(
    scheduled: &mut Option<(Duration, Duration)>,
    prev: &mut Option<Duration>,
    at: Duration,
) {
    if scheduled.is_some() {
        return;
    }
    let want = prev.map_or(BACKOFF_MIN, |p| (p * 2).min(BACKOFF_MAX));
    *prev = Some(want);
    *scheduled = Some((at, want));
}

/// Whether a spawned worker is starting: alive and never served.
fn on_its_way(
    spawned: &BTreeSet<u32>,
    served: &BTreeMap<u32, Duration>,
    exited: &BTreeSet<u32>,
) -> bool {
    spawned
        .iter()
        .any(|p| !served.contains_key(p) && !exited.contains(p))
}

/// What every property looks at, gathered in one walk over the trace.
fn check(steps: &[Step]) -> Result<(), String> {
    let (mut spawned, mut exited, mut served) = (BTreeSet::new(), BTreeSet::new(), BTreeMap::new());
    let (mut spawn_pending, mut stopping, mut gave_up, mut exit) = (false, false, false, None);
    let (mut asked, mut failed_starts, mut prev_delay, mut scheduled) = (0u32, 0u32, None, None);
    let mut shutdown_went_wrong = false;
    let mut spared = BTreeSet::new();
    let mut drained: BTreeSet<u32> = BTreeSet::new();
    for (i, s) in steps.iter().enumerate() {
        let fail = |why: String| Err(format!("step #{i}: {why}"));
        if exit.is_some() && !s.actions.is_empty() {
            return fail("actions after Exit".into());
        }
        let mut failed_start = false;
        // This step's own request: answered in the step (refused at once),
        // or counted after it (an answer in the step is for earlier ones).
        let mut new_request = matches!(s.event, Event::RestartRequested) && exit.is_none();
        match &s.event {
            Event::WorkerSpawned { pid } => (_, spawn_pending) = (spawned.insert(*pid), false),
            Event::SpawnFailed(_) => (spawn_pending, failed_start) = (false, !stopping),
            Event::WorkerExited { pid, success, .. } if spawned.contains(pid) => {
                exited.insert(*pid);
                shutdown_went_wrong |= stopping && !success && !spared.contains(pid);
                failed_start = !served.contains_key(pid) && !stopping;
            }
            _ => {}
        }
        // p7: consecutive starts that fail with nothing serving.
        if failed_start && s.current_before.is_none() {
            failed_starts += 1;
            let first_spawn_failed = served.is_empty() && matches!(s.event, Event::SpawnFailed(_));
            let must_give_up = failed_starts >= CRASH_LOOP || first_spawn_failed;
            let gives_up = says(s, "Stopping");
            if must_give_up != gives_up {
                return fail(format!(
                    "{failed_starts} failed starts; gives up: {gives_up}"
                ));
            }
            gave_up |= gives_up;
            if !gives_up {
                schedule(&mut scheduled, &mut prev_delay, s.at);
            }
        }
        // p6: a current worker that dies with nothing to take back, or a
        // take-back that does not happen: a replacement is due.
        let nothing_on_its_way = !spawn_pending && !on_its_way(&spawned, &served, &exited);
        if let Some(dead) = s
            .current_before
            .filter(|&p| Some(p) == exited_pid(&s.event))
        {
            if s.at - served[&dead] >= BACKOFF_RESET {
                prev_delay = None;
            }
            if s.current_after.is_none() && !says(s, "Resume") && nothing_on_its_way {
                schedule(&mut scheduled, &mut prev_delay, s.at);
            }
        }
        let take_back_ended = s.taking_back_before.is_some() && s.taking_back_after.is_none();
        if take_back_ended && s.current_after.is_none() && !stopping && nothing_on_its_way {
            schedule(&mut scheduled, &mut prev_delay, s.at);
        }
        // p9: a worker serves again only once it said it accepts, and then
        // unless another serves already; nothing serves while the supervisor
        // waits for that answer.
        if let Some(back) = s.taking_back_before {
            let resumed = matches!(s.event, Event::WorkerResumed { pid } if pid == back);
            let serves = s.current_after == Some(back);
            if serves != (resumed && s.current_before.is_none() && !stopping) {
                return fail(format!(
                    "{back} serves: {serves}; it said it accepts: {resumed}"
                ));
            }
        }
        let claims = s
            .actions
            .iter()
            .any(|a| matches!(a, Action::Report(r) if r.contains("took the listeners back")));
        if claims != (s.taking_back_before.is_some() && s.current_after == s.taking_back_before) {
            return fail(format!("a take-back reported: {claims}"));
        }
        if let Some(pid) = s.current_after {
            served.entry(pid).or_insert(s.at);
            failed_starts = 0;
        }
        for (k, a) in s.actions.iter().enumerate() {
            match a {
                Action::Spawn => {
                    // p1: at most one worker starting at a time.
                    let unserved_alive = on_its_way(&spawned, &served, &exited);
                    if spawn_pending || unserved_alive || stopping {
                        return fail(format!(
                            "Spawn with one starting ({spawn_pending}, {unserved_alive}) or stopping"
                        ));
                    }
                    spawn_pending = true;
                    // p6: backoff before replacing a worker, as long as
                    // was due when it was scheduled. (A spawn for another
                    // reason takes the place of a pending one.)
                    let due = scheduled.take();
                    if let Event::Tick = s.event {
                        let Some((at, want)) = due else {
                            return fail("respawn without a failure".into());
                        };
                        let d = s.at - at;
                        if d != want {
                            return fail(format!("backoff {d:?}, want {want:?}"));
                        }
                    }
                }
                // p2: never drain the current worker before its successor is
                // ready; a worker that says it accepts when it should not
                // (too late, or another serves) drains again.
                Action::Drain { pid, successor } => {
                    let ok = match successor {
                        _ if matches!(s.event, Event::WorkerResumed { pid: p } if p == *pid) => {
                            drained.contains(pid) && *successor == s.current_before
                        }
                        Some(new) => {
                            matches!(s.event, Event::WorkerReady { pid } if pid == *new)
                                && s.current_before == Some(*pid)
                                && s.current_after == Some(*new)
                        }
                        // A second shutdown request ends the shutdown delay of
                        // workers already told to stop.
                        None if matches!(s.event, Event::ShutdownRequested)
                            && drained.contains(pid) =>
                        {
                            stopping
                        }
                        // A worker still starting at the shutdown is
                        // stopped for it, like the others.
                        None if stopping && !served.contains_key(pid) => {
                            spared.insert(*pid);
                            true
                        }
                        None => {
                            stopping
                                && (s.current_before == Some(*pid)
                                    || s.taking_back_before == Some(*pid))
                        }
                    };
                    if !ok {
                        return fail(format!("{a:?} too early"));
                    }
                    drained.insert(*pid);
                }
                Action::Resume { pid } if !drained.contains(pid) || exited.contains(pid) => {
                    return fail(format!("{a:?} of a worker not draining"));
                }
                Action::Notify(Notify::Stopping) => {
                    (stopping, scheduled) = (true, None);
                    // Workers still starting are stopped for the shutdown.
                    for pid in &spawned {
                        if !served.contains_key(pid) && !exited.contains(pid) {
                            spared.insert(*pid);
                        }
                    }
                }
                // A worker still starting at the shutdown is stopped for
                // it, and killed at the bound if it must: that is no failure
                // of the service.
                Action::Kill { pid } if stopping && !served.contains_key(pid) => {
                    _ = spared.insert(*pid)
                }
                Action::Kill { .. } => shutdown_went_wrong |= stopping,
                // p3: every restart request answered exactly once.
                Action::RestartDone(_) if asked == 0 && new_request => new_request = false,
                Action::RestartDone(_) if asked == 0 => {
                    return fail("an answer nobody asked for".into());
                }
                // p10: a restart is not done while the worker it replaces may
                // still accept: never in the step that tells it to drain.
                Action::RestartDone(Ok(new))
                    if s.actions.iter().any(
                        |a| matches!(a, Action::Drain { successor: Some(p), .. } if p == new),
                    ) =>
                {
                    return fail(format!("{a:?} before the old worker stopped accepting"));
                }
                Action::RestartDone(_) => asked = 0,
                // p4: Exit last, after every spawned worker exited.
                Action::Exit(code) => {
                    if k + 1 != s.actions.len() || spawn_pending || spawned != exited {
                        return fail(format!(
                            "Exit early: spawned {spawned:?}, exited {exited:?}"
                        ));
                    }
                    exit = Some(*code);
                }
                _ => {}
            }
        }
        if new_request {
            asked += 1;
        }
        // p3: a request waits only for a worker on its way, or for the
        // worker it replaces to say it stopped accepting.
        let waits = spawn_pending
            || scheduled.is_some()
            || on_its_way(&spawned, &served, &exited)
            || s.handing_over_after.is_some();
        if asked > 0 && !waits {
            return Err(format!("step #{i}: a restart request waits for nothing"));
        }
    }
    // p5: the exit status says how the shutdown went.
    let want = if gave_up || served.is_empty() || shutdown_went_wrong {
        1
    } else {
        0
    };
    match exit {
        None => Err("the run never exited".into()),
        Some(_) if asked > 0 => Err(format!("{asked} restart requests never answered")),
        Some(code) if code != want => Err(format!("Exit({code}), expected Exit({want})")),
        Some(_) => Ok(()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// p1-p7, p9 and p10 over one generated run.
    #[test]
    fn properties_hold(s in scenario()) {
        let steps = run(&s);
        if let Err(why) = check(&steps) {
            return Err(TestCaseError::fail(format!("{why}\n{}", show(&steps))));
        }
    }

    /// p8: the same run gives the same trace.
    #[test]
    fn deterministic(s in scenario()) {
        prop_assert_eq!(show(&run(&s)), show(&run(&s)));
    }
}

/// A run proptest once found (a CI rehearsal): a worker that served 10 s
/// takes the listeners back and dies while a backoff, scheduled before, is
/// pending; the reset applies to the next backoff scheduled, 100 ms again.
#[test]
fn a_backoff_reset_while_one_is_pending_starts_the_next_at_the_minimum() {
    use Move::*;
    let s = Scenario {
        timeouts: Timeouts {
            ready: Duration::ZERO,
            stop: Duration::from_secs(11),
            kill: Duration::from_secs(1),
            shutdown_delay: Duration::ZERO,
        },
        flaky: false,
        moves: vec![
            AnswerSpawn(Answer::Pid),
            Ready(Pick(0)),
            Restart,
            AnswerSpawn(Answer::Pid),
            Ready(Pick(0)),
            Advance(2793),
            Advance(7207),
            Exits(Pick(usize::MAX / 2 + 1), false),
            Restart,
            AnswerSpawn(Answer::Fails),
            Resumed(true),
            Exits(Pick(0), false),
            Advance(100),
            AnswerSpawn(Answer::Fails),
            Advance(100),
        ],
        clean_end: false,
    };
    let steps = run(&s);
    if let Err(why) = check(&steps) {
        panic!("{why}\n{}", show(&steps));
    }
}

/// The generator reaches the paths the properties are about.
#[test]
fn generated_runs_reach_the_tricky_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..2_000 {
        let s = scenario().new_tree(&mut runner).unwrap().current();
        let mut seen = BTreeSet::new();
        for st in run(&s) {
            for a in &st.actions {
                seen.insert(match a {
                    Action::Resume { .. } => "take-back asked",
                    Action::RestartDone(Ok(_))
                        if matches!(st.event, Event::WorkerDraining { .. }) =>
                    {
                        "restart done once the old worker stopped accepting"
                    }
                    Action::Report(r) if r.contains("took the listeners back") => {
                        "take-back answered"
                    }
                    Action::Report(r) if r.contains("asked to take the listeners back, exited") => {
                        "take-back asked of a worker that exits"
                    }
                    Action::Report(r) if r.contains("did not answer") => "take-back unanswered",
                    Action::Drain {
                        successor: Some(_), ..
                    } => "drain for a successor",
                    Action::Drain {
                        pid,
                        successor: None,
                    } if matches!(st.event, Event::WorkerSpawned { .. })
                        || (says(&st, "Stopping")
                            && st.current_before != Some(*pid)
                            && st.taking_back_before != Some(*pid)) =>
                    {
                        "a starting worker drains on shutdown"
                    }
                    Action::Kill { .. } if matches!(st.event, Event::Tick) => "kill at a deadline",
                    Action::RestartDone(Err(Error::ReadyTimeout { .. })) => "ready timeout",
                    Action::RestartDone(Err(Error::SuccessorExited { .. })) => "successor exited",
                    Action::Spawn if matches!(st.event, Event::Tick) => "respawn after backoff",
                    Action::Exit(0) => "exit 0",
                    Action::Report(r) if r.contains("in a row") => "crash loop",
                    Action::Exit(_) => "exit 1",
                    _ => continue,
                });
            }
        }
        for path in seen {
            *counts.entry(path).or_default() += 1;
        }
    }
    eprintln!("paths reached in 2000 runs: {counts:#?}");
    for path in [
        "restart done once the old worker stopped accepting",
        "take-back asked",
        "take-back answered",
        "take-back asked of a worker that exits",
        "take-back unanswered",
        "drain for a successor",
        "kill at a deadline",
        "a starting worker drains on shutdown",
        "ready timeout",
        "successor exited",
        "respawn after backoff",
        "exit 0",
        "exit 1",
        "crash loop",
    ] {
        let n = counts.get(path).copied().unwrap_or(0);
        assert!(n >= 10, "{path:?} reached only {n} times in 2000 runs");
    }
}
