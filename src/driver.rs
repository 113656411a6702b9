//! `Handoff::run`: the async loop that feeds the [`Driver`] from signals,
//! timers, handles, child processes and the server, and the process
//! [`Host`] that performs the machine's actions.

use std::future::{Future, poll_fn};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use futures_channel::mpsc;
use futures_channel::oneshot;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tracing::Instrument;

use crate::drain::Drainable;
use crate::error::{Error, Result};
use crate::handle::Command as HandleCommand;
use crate::handoff::{Handoff, Hooks};
use crate::host::{Driver, Host};
use crate::inherited::{ParentLink, own_pid};
use crate::machine::{Action, Event, ExitReason, Machine, Notify};
use crate::registry::Listeners;
use crate::runtime::{Runtime, Signal};
use crate::spawn::{self, Command, Successor};
use crate::state::Published;
use crate::{notify, pidfile, telemetry};

pub(crate) async fn run<R: Runtime, D: Drainable>(
    handoff: Handoff,
    runtime: R,
    server: D,
) -> Result<ExitReason> {
    let span = tracing::info_span!("handoff", pid = own_pid(), generation = handoff.generation);
    let reason = Loop::start(handoff, runtime, &server)
        .instrument(span.clone())
        .await?
        .run()
        .instrument(span.clone())
        .await;
    server.finish().instrument(span).await;
    Ok(reason)
}

/// The process host: spawns, signals the successor, writes the pid file,
/// tells systemd, drains the server, reports to hooks and handles.
struct ProcessHost<'a, D: Drainable> {
    server: &'a D,
    pid_file: Option<PathBuf>,
    command: Command,
    listeners: Listeners,
    hooks: Hooks,
    events: mpsc::UnboundedSender<Event>,
    waiters: Vec<oneshot::Sender<Result<u32>>>,
    successor: Option<Successor>,
    generation: u64,
    /// The restart in flight: its span and when it began.
    restart: Option<(tracing::Span, Instant)>,
    /// The handover's span and when this generation began to drain for it.
    handover: Option<(tracing::Span, Instant)>,
    /// What this generation's drains had counted when the successor started.
    drain_counted: [u64; 3],
    /// The channel to the parent, while it drains.
    parent: Option<ParentLink>,
    /// Resolves once the server is idle, while draining.
    idle: Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>,
    /// Where handles read the latest restart's outcome.
    published: Arc<Published>,
    /// What tells a starting successor to shut down: the first configured
    /// shutdown signal (it is built from the same code), else SIGTERM.
    stop_signal: rustix::process::Signal,
}

impl<D: Drainable> Host for ProcessHost<'_, D> {
    fn spawn(&mut self) -> Result<u32> {
        let span = self.begin_restart();
        let _entered = span.enter();
        if let Some(hook) = self.hooks.before_spawn.as_mut() {
            hook(()).map_err(Error::Hook)?;
        }
        let successor = spawn::spawn(
            &self.command,
            self.listeners.handover(),
            self.generation + 1,
            self.events.clone(),
        )?;
        let pid = successor.pid;
        // The successor's counters start from ours (HANDOFF_COUNTS); what
        // this generation's drains count from now on is sent at the exit.
        self.drain_counted = telemetry::own_drain();
        span.record("successor", pid);
        tracing::info!(successor = pid, "started the successor");
        self.successor = Some(successor);
        Ok(pid)
    }

    fn kill(&mut self, pid: u32) {
        if let Some(successor) = self.successor.as_ref().filter(|s| s.pid == pid) {
            tracing::warn!(pid, "killing successor");
            successor.kill();
        }
    }

    fn stop_child(&mut self, pid: u32) {
        if let Some(successor) = self.successor.as_ref().filter(|s| s.pid == pid) {
            tracing::info!(pid, signal = ?self.stop_signal, "the successor is starting: telling it to shut down too");
            successor.signal(self.stop_signal);
        }
    }

    fn begin_drain(&mut self) {
        let span = self.restart.as_ref().map(|(span, _)| span.clone());
        let _entered = span.as_ref().map(tracing::Span::enter);
        if let Some(span) = span.clone() {
            self.handover = Some((span, Instant::now()));
        }
        if let Some(hook) = self.hooks.on_drain.as_mut() {
            hook(());
        }
        tracing::info!(in_flight = self.server.in_flight(), "draining");
        self.server.begin_drain();
        self.idle = Some(self.server.idle());
        // A supervisor waits for this before it reports its restart done.
        if let Some(link) = self.parent.as_ref().filter(|p| p.is_supervisor()) {
            if let Err(e) = crate::supervisor::wire::send_draining(link.channel()) {
                tracing::debug!("cannot tell the supervisor: {e}");
            }
        }
    }

    fn resume(&mut self) {
        self.handover = None;
        self.idle = None;
        self.server.resume();
        tracing::info!("accepting again");
        // A supervisor that asked for this waits for the answer before it
        // names this worker the one that serves.
        if let Some(link) = self.parent.as_ref().filter(|p| p.is_supervisor()) {
            if let Err(e) = crate::supervisor::wire::send_resumed(link.channel()) {
                tracing::error!("cannot tell the supervisor: {e}");
            }
        }
    }

    fn hammer(&mut self) {
        tracing::warn!(
            in_flight = self.server.in_flight(),
            "stop timeout reached; aborting what remains"
        );
        self.server.abort();
    }

    fn notify(&mut self, message: &Notify) {
        if let Err(e) = notify::send(&notify::message(message)) {
            tracing::warn!("sd_notify failed: {e}");
        }
    }

    fn write_pid_file(&mut self, pid: u32) {
        if let Some(path) = &self.pid_file {
            // Rewritten only if it does not name `pid` already: whoever
            // watches the file sees a change only when the pid changes.
            if matches!(pidfile::read(path), Ok(pidfile::Content::Pid(named)) if named == pid) {
                return;
            }
            if let Err(e) = pidfile::write(path, pid) {
                tracing::warn!("{e}");
            }
        }
    }

    fn remove_pid_file(&mut self) {
        if let Some(path) = &self.pid_file {
            if let Err(e) = pidfile::remove_if_own(path, own_pid()) {
                tracing::warn!("{e}");
            }
        }
    }

    fn ready(&mut self) {
        tracing::info!("ready");
        if let Some(hook) = self.hooks.on_ready.as_mut() {
            hook(());
        }
    }

    fn tell_parent_stopping(&mut self) {
        if let Some(parent) = &self.parent {
            if let Err(e) = parent.send_stopping() {
                tracing::debug!("cannot tell the parent: {e}");
            }
        }
    }

    fn ask_supervisor(&mut self) {
        let span = self.begin_restart();
        let _entered = span.enter();
        let sent = match &self.parent {
            Some(parent) => crate::supervisor::wire::send_restart(parent.channel()),
            None => Err(std::io::Error::other("no supervisor")),
        };
        if let Err(e) = sent {
            // The supervisor is gone: that is reported as the parent exiting.
            tracing::error!("cannot ask the supervisor for a restart: {e}");
        }
    }

    fn restart_done(&mut self, result: Result<u32>) {
        // Only an attempt is counted, not a request refused while draining.
        let attempt = self.restart.take();
        let _entered = attempt.as_ref().map(|(span, _)| span.enter());
        if let Some((span, began)) = &attempt {
            let took = began.elapsed();
            span.record("result", if result.is_ok() { "ok" } else { "failed" });
            span.record("ready_ms", took.as_secs_f64() * 1e3);
            // Supervised, the supervisor spawned it: named only now.
            if let (Ok(pid), None) = (&result, &self.successor) {
                span.record("successor", pid);
            }
            // Under a supervisor the supervisor counts it (and tells the
            // worker that serves).
            if !self.supervised() {
                telemetry::restart(result.is_ok(), Some(took));
            }
            // The successor serves from now on: it records the duration
            // where it is scraped.
            if let (Ok(pid), Some(s)) = (&result, &self.successor) {
                if s.pid == *pid {
                    s.send_took(took);
                }
            }
        }
        self.published.set_last_restart(&result);
        match &result {
            Ok(pid) => tracing::info!(successor = pid, "restart complete"),
            Err(e) => tracing::error!("restart failed: {e}"),
        }
        if let Some(hook) = self.hooks.on_restart_result.as_mut() {
            hook(&result);
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(result.clone());
        }
    }

    fn successor_lost(&mut self, error: Error) {
        if let Some((span, _)) = self.handover.take() {
            span.record("result", "lost");
            span.in_scope(|| tracing::error!("{error}"));
        } else {
            tracing::error!("{error}");
        }
        // Under a supervisor the supervisor counts it (and tells the
        // worker that serves).
        if !self.supervised() {
            telemetry::successor_lost();
        }
        let error = Err(error);
        self.published.set_last_restart(&error);
        if let Some(hook) = self.hooks.on_restart_result.as_mut() {
            hook(&error);
        }
    }

    fn request_held(&mut self, action: &Action) {
        match action {
            Action::Deferred => {
                tracing::info!("restart deferred until the previous generation has exited")
            }
            _ => tracing::info!("a restart is already in progress; joining it"),
        }
    }

    fn exit(&mut self, reason: ExitReason) {
        self.idle = None;
        // What this generation's drains counted goes to whoever serves on, so
        // the service's counters go on there.
        let own = telemetry::own_drain();
        match (&reason, &self.successor, &self.parent) {
            (ExitReason::HandedOver { successor }, Some(s), _) if s.pid == *successor => {
                s.send_drain_counts(std::array::from_fn(|i| own[i] - self.drain_counted[i]));
            }
            (_, _, Some(link)) if link.is_supervisor() => {
                if let Err(e) = crate::supervisor::wire::send_drained(link.channel(), own) {
                    tracing::debug!("cannot tell the supervisor the drain counts: {e}");
                }
            }
            _ => {}
        }
        let handover = self.handover.take();
        let _entered = handover.as_ref().map(|(span, began)| {
            span.record("drain_ms", began.elapsed().as_secs_f64() * 1e3);
            span.enter()
        });
        match reason {
            ExitReason::KillTimeout => tracing::error!(
                in_flight = self.server.in_flight(),
                "kill timeout reached; done with work still in flight"
            ),
            _ => tracing::info!(?reason, "drained; done"),
        }
    }
}

impl<D: Drainable> ProcessHost<'_, D> {
    /// Whether this generation is a supervisor's worker (the supervisor
    /// counts its restarts and losses).
    fn supervised(&self) -> bool {
        self.parent.as_ref().is_some_and(ParentLink::is_supervisor)
    }

    /// Opens the span of a restart attempt (a child of the generation's).
    fn begin_restart(&mut self) -> tracing::Span {
        let span = tracing::info_span!(
            "restart",
            generation = self.generation,
            successor = tracing::field::Empty,
            result = tracing::field::Empty,
            ready_ms = tracing::field::Empty,
            drain_ms = tracing::field::Empty,
        );
        self.restart = Some((span.clone(), Instant::now()));
        span
    }
}

/// What the loop waits on.
enum Input {
    Signal(Signal),
    Handle(HandleCommand),
    Event(Event),
}

struct Loop<'a, R: Runtime, D: Drainable> {
    driver: Driver<ProcessHost<'a, D>>,
    runtime: R,
    restart_signals: Vec<Signal>,
    signals: Option<BoxStream<'static, Signal>>,
    early: Vec<Signal>,
    commands: mpsc::UnboundedReceiver<HandleCommand>,
    events: mpsc::UnboundedReceiver<Event>,
    timer: Option<(Instant, BoxFuture<'static, ()>)>,
    published: Arc<Published>,
}

impl<'a, R: Runtime, D: Drainable> Loop<'a, R, D> {
    async fn start(mut handoff: Handoff, runtime: R, server: &'a D) -> Result<Self> {
        let mut wanted = handoff.restart_signals.clone();
        wanted.extend(handoff.shutdown_signals.iter().copied());
        let signals = if wanted.is_empty() {
            None
        } else {
            Some(runtime.signals(&wanted)?)
        };
        // The runtime's handlers are installed: what arrived since build()
        // is delivered now, and no longer caught on the side.
        let early = handoff.early_signals.take();

        handoff.listeners.close_unclaimed();
        let (events_tx, events_rx) = mpsc::unbounded();
        let supervisor = match handoff.parent.take() {
            Some(link) if link.is_supervisor() => Some(link),
            other => {
                handoff.parent = other;
                None
            }
        };
        if let Some(link) = &supervisor {
            crate::supervisor::wire::send_ready(link.channel(), handoff.listeners.handover())
                .map_err(|e| Error::channel("tell the supervisor ready", e))?;
            tracing::info!(supervisor = link.pid(), "ready; supervised");
            crate::supervisor::link::watch(link.shared_channel(), events_tx.clone());
        }
        let parent = handoff.parent.take().and_then(|parent| {
            let parent_pid = parent.pid();
            match parent.send_ready() {
                Ok(()) => {
                    tracing::info!(parent = parent_pid, "the previous generation drains");
                    let tx = events_tx.clone();
                    parent.watch(move || {
                        let _ = tx.unbounded_send(Event::ParentExited);
                    });
                    Some(parent)
                }
                Err(e) => {
                    tracing::warn!(parent = parent_pid, "parent gone before ready: {e}");
                    None
                }
            }
        });
        let parent_alive = parent.is_some();
        let parent = parent.or(supervisor);
        let supervised = parent.as_ref().is_some_and(ParentLink::is_supervisor);
        let host = ProcessHost {
            server,
            pid_file: handoff.pid_file,
            command: handoff.command,
            listeners: handoff.listeners,
            hooks: handoff.hooks,
            events: events_tx,
            waiters: Vec::new(),
            successor: None,
            generation: handoff.generation,
            restart: None,
            handover: None,
            drain_counted: [0; 3],
            parent,
            idle: None,
            published: handoff.published.clone(),
            stop_signal: handoff
                .shutdown_signals
                .first()
                .and_then(|s| rustix::process::Signal::from_named_raw(s.as_raw()))
                .unwrap_or(rustix::process::Signal::TERM),
        };
        let machine = match supervised {
            true => Machine::supervised(handoff.timeouts, own_pid()),
            false => Machine::new(handoff.timeouts, own_pid(), parent_alive),
        };
        Ok(Loop {
            driver: Driver::new(machine, host),
            runtime,
            restart_signals: handoff.restart_signals,
            signals,
            early,
            commands: handoff.rx,
            events: events_rx,
            timer: None,
            published: handoff.published,
        })
    }

    async fn run(mut self) -> ExitReason {
        let mut next = Some(Event::Started);
        loop {
            let event = match next.take() {
                Some(event) => event,
                None => self.next_event().await,
            };
            let exit = self.driver.handle(event, Instant::now());
            self.publish();
            if let Some(reason) = exit {
                return reason;
            }
        }
    }

    /// Publishes the machine's state for handles (and the readiness gauge).
    fn publish(&self) {
        let state = self.driver.machine().state();
        if self.published.set_state(state) {
            tracing::debug!(%state, "state");
            telemetry::ready(state.is_ready());
        }
    }

    async fn next_event(&mut self) -> Event {
        loop {
            if let Some(signal) = (!self.early.is_empty()).then(|| self.early.remove(0)) {
                return self.on_signal(signal);
            }
            let deadline = self.driver.machine().deadline();
            if self.timer.as_ref().map(|(at, _)| *at) != deadline {
                self.timer = deadline.map(|at| (at, self.runtime.sleep_until(at)));
            }
            let input = poll_fn(|cx| {
                if let Some(signals) = self.signals.as_mut() {
                    match signals.poll_next_unpin(cx) {
                        Poll::Ready(Some(sig)) => return Poll::Ready(Some(Input::Signal(sig))),
                        Poll::Ready(None) => self.signals = None,
                        Poll::Pending => {}
                    }
                }
                if let Poll::Ready(Some(cmd)) = self.commands.poll_next_unpin(cx) {
                    return Poll::Ready(Some(Input::Handle(cmd)));
                }
                // Before idleness: a successor that died is seen before the
                // drain that would have ended this generation.
                if let Poll::Ready(Some(event)) = self.events.poll_next_unpin(cx) {
                    return Poll::Ready(Some(Input::Event(event)));
                }
                let host = self.driver.host_mut();
                if let Some(idle) = host.idle.as_mut() {
                    if idle.as_mut().poll(cx).is_ready() {
                        host.idle = None;
                        return Poll::Ready(Some(Input::Event(Event::DrainIdle)));
                    }
                }
                if let Some((_, timer)) = self.timer.as_mut() {
                    if timer.as_mut().poll(cx).is_ready() {
                        self.timer = None;
                        return Poll::Ready(Some(Input::Event(Event::Tick)));
                    }
                }
                Poll::Pending
            })
            .await;
            match input {
                Some(Input::Signal(signal)) => return self.on_signal(signal),
                Some(Input::Handle(HandleCommand::Restart(reply))) => {
                    tracing::info!("restart requested through a handle");
                    self.driver.host_mut().waiters.push(reply);
                    return Event::RestartRequested;
                }
                Some(Input::Handle(HandleCommand::InFlight(reply))) => {
                    let _ = reply.send(self.driver.host().server.in_flight());
                }
                Some(Input::Handle(HandleCommand::Shutdown)) => {
                    tracing::info!("shutdown requested through a handle");
                    return Event::ShutdownRequested;
                }
                Some(Input::Event(event)) => {
                    if let Event::ParentExited = event {
                        // Its channel is closed: nothing more to tell it.
                        self.driver.host_mut().parent = None;
                    }
                    return event;
                }
                None => continue,
            }
        }
    }

    fn on_signal(&self, signal: Signal) -> Event {
        if self.restart_signals.contains(&signal) {
            tracing::info!(%signal, "restart requested");
            Event::RestartRequested
        } else {
            tracing::info!(%signal, "shutdown requested");
            Event::ShutdownRequested
        }
    }
}
