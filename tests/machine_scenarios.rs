//! Scripted runs of the restart state machine, through the real `Driver`
//! and the fake host (tests/machine_world): the tricky paths one at a time,
//! with the exact actions each event gets (in brief: `MAINPID=1` is
//! `Notify(Ready { main_pid: 1 })`). Every run is then settled and must
//! satisfy every property; and each property rejects a run that violates it.

mod machine_world;

use std::time::{Duration, Instant};

use handoff::Error;
use handoff::machine::{Action, Event, Machine, Timeouts};
use machine_world::{Check, Entry, OWN, Origin, Settle, Step, Trace, World, brief};

const CHECKS: [(&str, Check); 10] = [
    ("p1", machine_world::p1_never_stops_accepting_early),
    ("p2", machine_world::p2_at_most_two_generations),
    ("p3", machine_world::p3_one_upgrade_at_a_time),
    ("p4", machine_world::p4_children_reaped_or_successor),
    ("p5", machine_world::p5_drain_ends_by_stop_plus_kill),
    ("p6", machine_world::p6_deadlines_and_accepting),
    ("p7", machine_world::p7_deterministic),
    ("p8", machine_world::p8_pid_file_names_who_accepts),
    (
        "p9",
        machine_world::p9_a_lost_successor_leaves_the_parent_serving,
    ),
    ("p10", machine_world::p10_shutdown_delay),
];

/// A restart request while serving.
const SPAWN: &str = "RELOADING, STATUS, Spawn";
/// After a failed restart: this generation is named again.
const SERVING_ON: &str = "WritePidFile(1), MAINPID=1, STATUS";
/// A successor (100) dead after ready: the listeners are taken back.
const TAKE_BACK: &str = "Resume, WritePidFile(1), MAINPID=1, STATUS, SuccessorLost(100)";
const SHUTDOWN_DRAIN: &str = "BeginDrain, STOPPING, STATUS, RemovePidFile";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn timeouts() -> Timeouts {
    let (ready, stop, kill) = (secs(30), secs(20), secs(10));
    Timeouts {
        ready,
        stop,
        kill,
        shutdown_delay: Duration::ZERO,
    }
}

/// A generation (pid 1) started at t0; its children are 100, 101...
fn started(parent_alive: bool) -> World {
    World::new(timeouts(), parent_alive)
}

/// Delivers `event` at t0 + `s` seconds; what the host was asked, in brief.
fn at(w: &mut World, s: u64, event: Event) -> String {
    w.now = w.trace.t0 + secs(s);
    brief(&w.deliver(event, Origin::World).actions)
}

fn ready(pid: u32) -> Event {
    Event::ChildReady { pid }
}

fn exited(pid: u32) -> Event {
    let status = "killed by signal 9".into();
    Event::ChildExited { pid, status }
}

/// The hand-over to `pid`: the pid file names it once draining, then MAINPID.
fn hand_over(pid: u32) -> String {
    format!("BeginDrain, WritePidFile({pid}), MAINPID={pid}, STATUS, RestartDone(Ok({pid}))")
}

/// Lets the world settle (children ready, work idle) and checks every
/// property on the whole run.
fn settled(w: World) -> Trace {
    let (ready, idle, spawn_fails) = (true, true, false);
    let trace = w.settle(Settle {
        ready,
        idle,
        spawn_fails,
    });
    for (name, check) in CHECKS {
        check(&trace).unwrap_or_else(|e| panic!("{name}: {e}\n{trace}"));
    }
    trace
}

/// Restart, a second request joining it, ready after 1 s, idle after 2 s.
fn handover() -> World {
    let mut w = started(false);
    assert_eq!(at(&mut w, 0, Event::RestartRequested), SPAWN);
    assert_eq!(at(&mut w, 0, Event::RestartRequested), "Coalesced");
    assert_eq!(at(&mut w, 1, ready(100)), hand_over(100));
    assert_eq!(at(&mut w, 2, Event::DrainIdle), "Exit(HandedOver(100))");
    w
}

/// Restart; a shutdown while the child is awaited tells it to stop too (it
/// may serve what it accepted) and drains; idle at once, but the exit waits
/// for the reap.
fn reaped() -> World {
    let mut w = started(false);
    at(&mut w, 0, Event::RestartRequested);
    let acts = at(&mut w, 5, Event::ShutdownRequested);
    assert_eq!(
        acts,
        format!("StopChild(100), RestartDone(ShuttingDown), {SHUTDOWN_DRAIN}")
    );
    let stop_at = Some(w.trace.t0 + secs(25));
    assert_eq!(
        w.machine().deadline(),
        stop_at,
        "the ready deadline is gone"
    );
    assert_eq!(at(&mut w, 6, Event::DrainIdle), "", "waits for the reap");
    assert_eq!(at(&mut w, 6, ready(100)), "", "a late ready");
    assert_eq!(
        at(&mut w, 6, Event::RestartRequested),
        "RestartDone(ShuttingDown)"
    );
    assert_eq!(at(&mut w, 7, exited(100)), "Exit(Shutdown)");
    w
}

/// Restart, ready after 1 s; the successor dies at 2 s while this
/// generation drains: it takes the listeners back.
fn taken_back() -> World {
    let mut w = started(false);
    at(&mut w, 0, Event::RestartRequested);
    at(&mut w, 1, ready(100));
    assert_eq!(at(&mut w, 2, exited(100)), TAKE_BACK);
    assert!(w.machine().is_accepting());
    assert_eq!(w.machine().deadline(), None, "no stop timeout any more");
    w
}

/// With a 5 s shutdown delay: SIGTERM tells systemd it stops and serves on,
/// unready; a restart asked meanwhile is refused; the drain starts at 5 s
/// (or at a second request at 2 s) and the stop timeout counts from there.
fn delayed(second_request: bool) -> World {
    let delayed = Timeouts {
        shutdown_delay: secs(5),
        ..timeouts()
    };
    let mut w = World::new(delayed, false);
    assert_eq!(at(&mut w, 0, Event::ShutdownRequested), "STOPPING, STATUS");
    assert_eq!(w.machine().state(), handoff::State::ShuttingDown);
    assert!(w.machine().is_accepting());
    assert_eq!(
        at(&mut w, 1, Event::RestartRequested),
        "RestartDone(ShuttingDown)"
    );
    let drain_at = if second_request { 2 } else { 5 };
    let event = match second_request {
        true => Event::ShutdownRequested,
        false => Event::Tick,
    };
    assert_eq!(
        at(&mut w, drain_at, event),
        "BeginDrain, STATUS, RemovePidFile"
    );
    let stop_at = w.trace.t0 + secs(drain_at + 20);
    assert_eq!(w.machine().deadline(), Some(stop_at));
    assert_eq!(at(&mut w, drain_at + 1, Event::DrainIdle), "Exit(Shutdown)");
    w
}

#[test]
fn a_shutdown_delay_serves_on_unready_then_drains() {
    settled(delayed(false));
    settled(delayed(true));
}

#[test]
fn a_restart_hands_over_once_the_successor_is_ready() {
    settled(handover());
}

#[test]
fn shutdown_while_awaiting_ready_stops_the_child_and_exits_after_the_reap_or_the_kill_timeout() {
    settled(reaped());

    // Not exited by the stop timeout: killed at the hammer. Never reaped:
    // the drain still ends at stop + kill after it began.
    let mut w = started(false);
    at(&mut w, 0, Event::RestartRequested);
    at(&mut w, 0, Event::ShutdownRequested);
    assert_eq!(at(&mut w, 0, Event::DrainIdle), "");
    assert_eq!(at(&mut w, 19, Event::Tick), "");
    assert_eq!(at(&mut w, 20, Event::Tick), "Hammer, KillChild(100)");
    assert_eq!(at(&mut w, 29, Event::Tick), "");
    assert_eq!(at(&mut w, 30, Event::Tick), "Exit(KillTimeout)");
    assert_eq!(w.machine().deadline(), None);
    assert_eq!(at(&mut w, 31, exited(100)), "", "the reap after the exit");
    settled(w);
}

#[test]
fn a_failed_restart_names_this_generation_again() {
    let mut w = started(false);
    w.spawn_fails = true;
    let acts = at(&mut w, 0, Event::RestartRequested);
    assert_eq!(acts, format!("{SPAWN}, RestartDone(Err), {SERVING_ON}"));

    w.spawn_fails = false;
    at(&mut w, 1, Event::RestartRequested);
    let acts = at(&mut w, 2, exited(100));
    assert_eq!(
        acts,
        format!("RestartDone(SuccessorExited(100)), {SERVING_ON}")
    );

    at(&mut w, 3, Event::RestartRequested);
    assert_eq!(at(&mut w, 32, Event::Tick), "", "early Tick");
    assert_eq!(at(&mut w, 33, Event::Tick), "KillChild(101)");
    assert_eq!(w.machine().deadline(), None);
    assert_eq!(at(&mut w, 33, ready(101)), "", "its ready was on its way");
    assert_eq!(at(&mut w, 33, Event::RestartRequested), "Coalesced");
    let acts = at(&mut w, 34, exited(101));
    assert_eq!(
        acts,
        format!("RestartDone(ReadyTimeout(101, 30s)), {SERVING_ON}")
    );
    assert_eq!(at(&mut w, 35, ready(101)), "", "still ignored once reaped");
    assert_eq!(at(&mut w, 36, Event::RestartRequested), SPAWN);
    settled(w);
}

/// A driver that answers a spawn later than at once reaches this; the
/// `Driver` does not, so the bare machine plays it.
#[test]
fn shutdown_while_spawning_waits_for_the_spawn_then_drains() {
    let t0 = Instant::now();
    let failed = Event::SpawnFailed(Error::Hook("no".into()));
    for answer in [Event::ChildSpawned { pid: 7 }, failed] {
        let spawned = matches!(answer, Event::ChildSpawned { .. });
        let mut m = Machine::new(timeouts(), OWN, false);
        m.on(Event::Started, t0);
        assert_eq!(brief(&m.on(Event::RestartRequested, t0)), SPAWN);
        assert_eq!(brief(&m.on(Event::ShutdownRequested, t0)), "");
        assert!(m.is_accepting());
        assert_eq!(brief(&m.on(Event::RestartRequested, t0)), "Coalesced");
        let kill = if spawned {
            "StopChild(7), RestartDone(ShuttingDown)"
        } else {
            "RestartDone(Err)"
        };
        let acts = brief(&m.on(answer, t0 + secs(1)));
        assert_eq!(acts, format!("{kill}, {SHUTDOWN_DRAIN}"));
        assert_eq!(m.deadline(), Some(t0 + secs(21)));
        assert_eq!(brief(&m.on(ready(7), t0 + secs(1))), "");
        let mut acts = m.on(Event::DrainIdle, t0 + secs(2));
        if spawned {
            assert_eq!(brief(&acts), "", "waits for the reap");
            acts = m.on(exited(7), t0 + secs(2));
        }
        assert_eq!(brief(&acts), "Exit(Shutdown)");
    }
}

#[test]
fn restart_while_the_successor_waits_for_its_parent_is_deferred() {
    let mut w = started(true);
    assert_eq!(at(&mut w, 0, Event::RestartRequested), "Deferred");
    assert_eq!(at(&mut w, 0, Event::RestartRequested), "Deferred");
    assert!(w.machine().is_accepting());
    let acts = at(&mut w, 1, Event::ParentExited);
    assert_eq!(acts, format!("WritePidFile(1), MAINPID=1, {SPAWN}"));
    let again = w.deliver(Event::ParentExited, Origin::Nonsense);
    assert!(again.actions.is_empty(), "a second ParentExited");
    assert_eq!(at(&mut w, 2, Event::RestartRequested), "Coalesced");
    assert_eq!(at(&mut w, 3, ready(100)), hand_over(100));
    settled(w);

    // A shutdown while deferred answers the request and drains; the
    // parent's exit afterwards starts nothing.
    let mut w = started(true);
    at(&mut w, 0, Event::RestartRequested);
    let acts = at(&mut w, 0, Event::ShutdownRequested);
    assert_eq!(
        acts,
        "RestartDone(ShuttingDown), BeginDrain, TellParentStopping, STOPPING, STATUS, RemovePidFile"
    );
    assert_eq!(at(&mut w, 1, Event::ParentExited), "");
    settled(w);
}

#[test]
fn a_successor_that_dies_while_its_parent_drains_is_taken_back() {
    let mut w = taken_back();
    assert_eq!(at(&mut w, 3, Event::DrainIdle), "", "no longer draining");
    assert_eq!(at(&mut w, 30, Event::Tick), "", "no hammer");
    settled(w);
}

#[test]
fn a_successor_that_dies_while_its_parent_is_hammered_is_taken_back() {
    let mut w = started(false);
    at(&mut w, 0, Event::RestartRequested);
    at(&mut w, 1, ready(100));
    let refused = "RestartDone(HandedOver(100))";
    assert_eq!(at(&mut w, 2, Event::RestartRequested), refused);
    w.advance(secs(20));
    let kill_at = Some(w.trace.t0 + secs(31));
    assert_eq!(w.machine().deadline(), kill_at, "hammered at 21 s");
    assert_eq!(at(&mut w, 23, Event::RestartRequested), refused);
    assert_eq!(at(&mut w, 25, exited(100)), TAKE_BACK);
    assert!(w.machine().is_accepting());
    assert_eq!(w.machine().deadline(), None, "no kill timeout any more");
    assert_eq!(at(&mut w, 31, Event::Tick), "");
    settled(w);
}

#[test]
fn a_successor_that_dies_after_its_parent_exited_is_nothing_to_take_back() {
    let mut w = handover();
    assert_eq!(at(&mut w, 3, exited(100)), "");
    assert!(w.machine().has_exited());
    settled(w);
}

#[test]
fn a_restart_after_a_take_back_hands_over_to_the_new_successor() {
    let mut w = taken_back();
    assert_eq!(at(&mut w, 3, Event::RestartRequested), SPAWN);
    assert_eq!(at(&mut w, 4, ready(101)), hand_over(101));
    assert_eq!(at(&mut w, 5, Event::DrainIdle), "Exit(HandedOver(101))");
    settled(w);
}

/// `trace` with the first step that `pick` chooses changed by `change`.
fn changed(trace: &Trace, pick: impl Fn(&Step) -> bool, change: impl FnOnce(&mut Step)) -> Trace {
    let mut trace = trace.clone();
    let step = trace.entries.iter_mut().find_map(|e| match e {
        Entry::Step(s) if pick(s) => Some(s),
        _ => None,
    });
    change(step.expect("no such step"));
    trace
}

#[test]
fn each_check_rejects_a_violating_trace() {
    let good = settled(handover());
    let (reaped, taken_back) = (settled(reaped()), settled(taken_back()));
    let [p1, p2, p3, p4, p5, p6, p7, p8, p9, p10] = CHECKS.map(|(_, check)| check);
    let coalesced = |s: &Step| matches!(s.actions[..], [Action::Coalesced]);
    let is_ready = |s: &Step| matches!(s.event, Event::ChildReady { .. });
    let is_exit = |s: &Step| matches!(s.event, Event::ChildExited { .. });
    let started = |s: &Step| matches!(s.event, Event::Started);
    let rejects = |check: Check, t: Trace| assert!(check(&t).is_err(), "passes:\n{t}");

    // p1: the drain follows a ChildReady of some other pid.
    rejects(p1, changed(&good, is_ready, |s| s.event = ready(4242)));
    // p2: a second Spawn in the same attempt.
    let spawn = vec![Action::Spawn];
    rejects(p2, changed(&good, coalesced, |s| s.actions = spawn));
    // p3: a request neither coalesced nor answered; one never answered.
    rejects(p3, changed(&good, coalesced, |s| s.actions.clear()));
    let unanswered = |s: &mut Step| s.actions.retain(|a| !matches!(a, Action::RestartDone(_)));
    rejects(p3, changed(&good, is_ready, unanswered));
    // p4: the killed child's exit was some other pid's.
    rejects(p4, changed(&reaped, is_exit, |s| s.event = exited(4242)));
    // p5: the same punctual run with no drain budget exits too late.
    let mut t = good.clone();
    (t.timeouts.stop, t.timeouts.kill) = (Duration::ZERO, Duration::ZERO);
    rejects(p5, t);
    // p6: still accepting after the drain began.
    rejects(p6, changed(&good, is_ready, |s| s.accepting_after = true));
    // p7: a recorded answer the machine does not give.
    let deferred = vec![Action::Deferred];
    rejects(p7, changed(&good, coalesced, |s| s.actions = deferred));
    // p8: the successor's pid written before the drain; MAINPID before the
    // pid file.
    rejects(p8, changed(&good, is_ready, |s| s.actions.swap(0, 1)));
    rejects(p8, changed(&good, is_ready, |s| s.actions.swap(1, 2)));
    // p9: no Resume; not accepting after it; a SuccessorLost unprovoked.
    rejects(
        p9,
        changed(&taken_back, is_exit, |s| _ = s.actions.remove(0)),
    );
    rejects(
        p9,
        changed(&taken_back, is_exit, |s| s.accepting_after = false),
    );
    let (pid, status) = (100, "killed by signal 9".into());
    let lost = Action::SuccessorLost { pid, status };
    rejects(p9, changed(&taken_back, started, |s| s.actions.push(lost)));
    // p10: the drain within the delay; ready after the shutdown was asked.
    let delayed = settled(delayed(false));
    let is_tick = |s: &Step| matches!(s.event, Event::Tick);
    let early = delayed.t0 + secs(1);
    rejects(p10, changed(&delayed, is_tick, |s| s.at = early));
    let is_shutdown = |s: &Step| matches!(s.event, Event::ShutdownRequested);
    let ready = |s: &mut Step| s.state_after = handoff::State::Serving;
    rejects(p10, changed(&delayed, is_shutdown, ready));
}
