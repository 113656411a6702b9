//! The driver: a small async loop that feeds the [`Machine`] from signals,
//! timers, handles and child processes, and carries out its actions.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use futures_channel::mpsc;
use futures_channel::oneshot;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tracing::Instrument;

use crate::drain::Drainable;
use crate::error::Result;
use crate::handle::Command as HandleCommand;
use crate::handoff::Handoff;
use crate::inherited::own_pid;
use crate::machine::{Action, Event, ExitReason, Machine};
use crate::runtime::Runtime;
use crate::spawn::{self, Successor};
use crate::{notify, pidfile};

pub(crate) async fn run<R: Runtime, D: Drainable>(
    handoff: Handoff,
    runtime: R,
    server: D,
) -> Result<ExitReason> {
    let span = tracing::info_span!("handoff", pid = own_pid());
    Driver::start(handoff, runtime, &server)
        .instrument(span.clone())
        .await?
        .run()
        .instrument(span)
        .await
}

struct Driver<'a, R: Runtime, D: Drainable> {
    handoff: Handoff,
    runtime: R,
    server: &'a D,
    machine: Machine,
    signals: Option<futures_util::stream::BoxStream<'static, crate::runtime::Signal>>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    waiters: Vec<oneshot::Sender<Result<u32>>>,
    successor: Option<Successor>,
    timer: Option<(Instant, BoxFuture<'static, ()>)>,
    idle: Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>,
}

enum Input {
    Signal(crate::runtime::Signal),
    Handle(HandleCommand),
    Event(Event),
}

impl<'a, R: Runtime, D: Drainable> Driver<'a, R, D> {
    async fn start(mut handoff: Handoff, runtime: R, server: &'a D) -> Result<Self> {
        let mut wanted = handoff.restart_signals.clone();
        wanted.extend(handoff.shutdown_signals.iter().copied());
        let signals = if wanted.is_empty() {
            None
        } else {
            Some(runtime.signals(&wanted)?)
        };

        handoff.listeners.close_unclaimed();
        let pid = own_pid();
        let (events_tx, events_rx) = mpsc::unbounded();
        let parent_alive = match handoff.parent.take() {
            Some(parent) => {
                let parent_pid = parent.pid();
                match parent.send_ready() {
                    Ok(()) => {
                        tracing::info!(
                            parent = parent_pid,
                            "ready; the previous generation drains"
                        );
                        let tx = events_tx.clone();
                        parent.watch(move || {
                            let _ = tx.unbounded_send(Event::ParentExited);
                        });
                        true
                    }
                    Err(e) => {
                        tracing::warn!(parent = parent_pid, "parent gone before ready: {e}");
                        false
                    }
                }
            }
            None => {
                tracing::info!("ready");
                false
            }
        };
        // A successor's pid is written by its parent once the parent has
        // stopped accepting; without a parent, this generation writes its own.
        if !parent_alive {
            if let Some(path) = &handoff.pid_file {
                pidfile::write(path, pid)?;
            }
        }
        if let Err(e) = notify::send(&format!("READY=1\nMAINPID={pid}")) {
            tracing::warn!("sd_notify failed: {e}");
        }
        if let Some(hook) = handoff.hooks.on_ready.as_mut() {
            hook(());
        }
        Ok(Driver {
            machine: Machine::new(handoff.timeouts, parent_alive),
            handoff,
            runtime,
            server,
            signals,
            events_tx,
            events_rx,
            waiters: Vec::new(),
            successor: None,
            timer: None,
            idle: None,
        })
    }

    async fn run(mut self) -> Result<ExitReason> {
        loop {
            let event = self.next_event().await;
            let mut queue = VecDeque::from([event]);
            while let Some(event) = queue.pop_front() {
                tracing::debug!(?event, "event");
                if let Event::ParentExited = event {
                    tracing::info!("the previous generation has exited");
                    // Normally the parent wrote our pid already; if it died
                    // before it could, the pid file must still name us.
                    self.restore_pid_file();
                }
                for action in self.machine.on(event, Instant::now()) {
                    if let Some(reason) = self.perform(action, &mut queue) {
                        return Ok(reason);
                    }
                }
            }
        }
    }

    async fn next_event(&mut self) -> Event {
        loop {
            let deadline = self.machine.deadline();
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
                if let Poll::Ready(Some(cmd)) = self.handoff.rx.poll_next_unpin(cx) {
                    return Poll::Ready(Some(Input::Handle(cmd)));
                }
                if let Poll::Ready(Some(event)) = self.events_rx.poll_next_unpin(cx) {
                    return Poll::Ready(Some(Input::Event(event)));
                }
                if let Some(idle) = self.idle.as_mut() {
                    if idle.as_mut().poll(cx).is_ready() {
                        self.idle = None;
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
                Some(Input::Signal(sig)) => {
                    if self.handoff.restart_signals.contains(&sig) {
                        tracing::info!(signal = %sig, "restart requested");
                        return Event::RestartRequested;
                    }
                    tracing::info!(signal = %sig, "shutdown requested");
                    return Event::ShutdownRequested;
                }
                Some(Input::Handle(HandleCommand::Restart(reply))) => {
                    tracing::info!("restart requested through a handle");
                    self.waiters.push(reply);
                    return Event::RestartRequested;
                }
                Some(Input::Handle(HandleCommand::Shutdown)) => {
                    tracing::info!("shutdown requested through a handle");
                    return Event::ShutdownRequested;
                }
                Some(Input::Event(event)) => return event,
                None => continue,
            }
        }
    }

    /// Carries out one action; returns the exit reason when the loop is done.
    fn perform(&mut self, action: Action, queue: &mut VecDeque<Event>) -> Option<ExitReason> {
        match action {
            Action::Spawn => queue.push_back(self.spawn()),
            Action::KillChild { pid } => {
                if let Some(successor) = self.successor.as_ref().filter(|s| s.pid == pid) {
                    tracing::warn!(pid, "killing successor");
                    successor.kill();
                }
            }
            Action::BeginDrain => {
                if let Some(hook) = self.handoff.hooks.on_drain.as_mut() {
                    hook(());
                }
                tracing::info!(in_flight = self.server.in_flight(), "draining");
                self.server.begin_drain();
                self.idle = Some(self.server.idle());
            }
            Action::Hammer => {
                tracing::warn!(
                    in_flight = self.server.in_flight(),
                    "stop timeout reached; aborting what remains"
                );
                self.server.abort();
            }
            Action::Notify(n) => {
                if let Err(e) = notify::send(&notify::message(&n)) {
                    tracing::warn!("sd_notify failed: {e}");
                }
            }
            Action::WritePidFile(pid) => {
                if let Some(path) = &self.handoff.pid_file {
                    if let Err(e) = pidfile::write(path, pid) {
                        tracing::warn!("{e}");
                    }
                }
            }
            Action::RemovePidFile => {
                if let Some(path) = &self.handoff.pid_file {
                    if let Err(e) = pidfile::remove_if_own(path, own_pid()) {
                        tracing::warn!("{e}");
                    }
                }
            }
            Action::RestartDone(result) => {
                match &result {
                    Ok(pid) => tracing::info!(successor = pid, "restart complete"),
                    Err(e) => tracing::error!("restart failed: {e}"),
                }
                if result.is_err() && self.machine.is_accepting() {
                    self.successor = None;
                    self.restore_pid_file();
                }
                if let Some(hook) = self.handoff.hooks.on_restart_result.as_mut() {
                    hook(&result);
                }
                for waiter in self.waiters.drain(..) {
                    let _ = waiter.send(result.clone());
                }
            }
            Action::Coalesced => tracing::info!("a restart is already in progress; joining it"),
            Action::Deferred => {
                tracing::info!("restart deferred until the previous generation has exited")
            }
            Action::Exit(reason) => {
                match reason {
                    ExitReason::KillTimeout => {
                        tracing::error!(
                            in_flight = self.server.in_flight(),
                            "kill timeout reached; exiting with work still in flight"
                        );
                        std::process::exit(1);
                    }
                    _ => tracing::info!(?reason, "drained; exiting"),
                }
                return Some(reason);
            }
        }
        None
    }

    /// Makes the pid file name this generation if it does not: after a failed
    /// restart (this generation still accepts), or once the parent exited.
    fn restore_pid_file(&self) {
        let Some(path) = &self.handoff.pid_file else {
            return;
        };
        let own = own_pid();
        if !matches!(pidfile::read(path), Ok(pidfile::Content::Pid(pid)) if pid == own) {
            if let Err(e) = pidfile::write(path, own) {
                tracing::warn!("cannot restore: {e}");
            }
        }
    }

    fn spawn(&mut self) -> Event {
        if let Some(hook) = self.handoff.hooks.before_spawn.as_mut() {
            if let Err(e) = hook(()) {
                return Event::SpawnFailed(crate::Error::Hook(e));
            }
        }
        match spawn::spawn(
            &self.handoff.command,
            self.handoff.listeners.handover(),
            self.events_tx.clone(),
        ) {
            Ok(successor) => {
                let pid = successor.pid;
                self.successor = Some(successor);
                Event::ChildSpawned { pid }
            }
            Err(e) => Event::SpawnFailed(e),
        }
    }
}
