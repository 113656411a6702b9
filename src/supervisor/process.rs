//! The supervisor process: a plain loop (no async runtime) that feeds the
//! supervisor's [`Machine`] from signals, workers and deadlines, and carries
//! out its actions. It holds the listening sockets for the life of the
//! service, reaps every child (it is a child subreaper, and may be PID 1),
//! and forwards the signals it does not act on to the serving worker.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use rustix::process::WaitOptions;

use super::machine::{Action, Event, Machine};
use super::wire::{self, ToSupervisor, ToWorker};
use crate::machine::Timeouts;
use crate::runtime::Signal;
use crate::spawn::{self, Command, Successor};
use crate::telemetry;
use crate::{inherited::own_pid, notify, pidfile, protocol, sys};

/// Signals forwarded to the serving worker.
const FORWARDED: [i32; 3] = [libc::SIGUSR1, libc::SIGQUIT, libc::SIGWINCH];
/// The loop wakes at least this often to reap, whatever else happens.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// What the supervisor runs with.
pub(crate) struct Config {
    pub timeouts: Timeouts,
    pub pid_file: Option<PathBuf>,
    pub command: Command,
    pub listeners: Vec<(String, OwnedFd)>,
    pub restart_signals: Vec<Signal>,
    pub shutdown_signals: Vec<Signal>,
}

enum Input {
    Signal(i32),
    Message { pid: u32, message: ToSupervisor },
    Malformed { pid: u32, error: std::io::Error },
}

struct Worker {
    process: Successor,
    channel: Arc<OwnedFd>,
    /// Listeners it sent up, until it says ready.
    pending: Vec<(String, OwnedFd)>,
}

struct Supervisor {
    config: Config,
    machine: Machine,
    workers: HashMap<u32, Worker>,
    /// Workers that asked for the restart in flight.
    askers: Vec<u32>,
    /// The worker whose request is being handled: it joins `askers` only
    /// after, so that an answer the same event gives to earlier requests
    /// does not reach it.
    new_asker: Option<u32>,
    /// The last reports, for an exit that fails (the cause, then what the
    /// supervisor concluded).
    reports: std::collections::VecDeque<String>,
    inputs: mpsc::Sender<Input>,
    /// Workers started: the next one's generation is one more.
    generations: u64,
    /// The restart in flight: its span, and when it began (its new worker
    /// was spawned).
    restart_began: Option<(tracing::Span, Instant)>,
}

/// Runs the supervisor until the service stops; its exit status, and why it
/// failed if it did.
pub(crate) fn run(config: Config) -> (u8, Option<String>) {
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        tracing::warn!("cannot become a child subreaper (orphans go to init): {e}");
    }
    let (tx, rx) = mpsc::channel();
    if let Err(e) = catch_signals(&config, tx.clone()) {
        return (1, Some(format!("cannot catch signals: {e}")));
    }
    let mut supervisor = Supervisor {
        machine: Machine::new(config.timeouts, own_pid()),
        config,
        workers: HashMap::new(),
        askers: Vec::new(),
        new_asker: None,
        reports: Default::default(),
        inputs: tx,
        generations: 0,
        restart_began: None,
    };
    tracing::info!(pid = own_pid(), "supervising");
    let code = supervisor.run(rx);
    let mut reports = Vec::from(std::mem::take(&mut supervisor.reports));
    reports.reverse();
    let reason = (code != 0 && !reports.is_empty()).then(|| reports.join(": "));
    (code, reason)
}

/// Each signal the supervisor handles becomes an [`Input::Signal`], through
/// a socket written from the signal handler and read on a thread.
fn catch_signals(config: &Config, tx: mpsc::Sender<Input>) -> std::io::Result<()> {
    let (theirs, ours) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let mut signals: Vec<i32> = config
        .restart_signals
        .iter()
        .chain(&config.shutdown_signals)
        .map(|s| s.as_raw())
        .collect();
    signals.push(libc::SIGCHLD);
    signals.extend(FORWARDED);
    for signal in signals {
        sys::send_on_signal(signal, theirs.as_raw_fd())?;
    }
    // The handlers write to it for the life of the process.
    std::mem::forget(theirs);
    rustix::io::ioctl_fionbio(&ours, false)?;
    std::thread::Builder::new()
        .name("handoff-signals".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            loop {
                match rustix::net::recv(&ours, &mut byte, RecvFlags::empty()) {
                    Ok((1, _)) => {
                        if tx.send(Input::Signal(i32::from(byte[0]))).is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return,
                }
            }
        })?;
    Ok(())
}

impl Supervisor {
    fn run(&mut self, rx: mpsc::Receiver<Input>) -> u8 {
        if let Some(code) = self.handle(Event::Started) {
            return code;
        }
        loop {
            let now = Instant::now();
            let wait = self
                .machine
                .deadline()
                .map_or(REAP_EVERY, |at| at.saturating_duration_since(now))
                .min(REAP_EVERY);
            let event = match rx.recv_timeout(wait) {
                Ok(input) => self.input(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return 1,
            };
            let mut events: Vec<Event> = event.into_iter().collect();
            events.extend(self.reap());
            if self
                .machine
                .deadline()
                .is_some_and(|at| at <= Instant::now())
            {
                events.push(Event::Tick);
            }
            for event in events {
                if let Some(code) = self.handle(event) {
                    return code;
                }
            }
            if let Some(pid) = self.new_asker.take() {
                if self.machine.restart_pending() {
                    self.askers.push(pid);
                } else {
                    let refused = crate::Error::ShuttingDown.to_string();
                    self.tell(pid, &ToWorker::Answer(Err(refused)));
                }
            }
        }
    }

    /// Turns an input into an event for the machine, if it is one.
    fn input(&mut self, input: Input) -> Option<Event> {
        match input {
            Input::Signal(signal) => {
                let is = |set: &[Signal]| set.iter().any(|s| s.as_raw() == signal);
                if is(&self.config.restart_signals) {
                    tracing::info!(signal, "restart requested");
                    Some(Event::RestartRequested)
                } else if is(&self.config.shutdown_signals) {
                    tracing::info!(signal, "shutdown requested");
                    Some(Event::ShutdownRequested)
                } else if signal == libc::SIGCHLD {
                    None
                } else {
                    self.forward(signal);
                    None
                }
            }
            Input::Message { pid, message } => self.message(pid, message),
            Input::Malformed { pid, error } => {
                tracing::error!(pid, "worker spoke out of turn: {error}; killing it");
                self.kill(pid);
                None
            }
        }
    }

    fn message(&mut self, pid: u32, message: ToSupervisor) -> Option<Event> {
        // A report, not a decision (and it may come after the worker's exit
        // was handled): the service's counters, passed on to the worker that
        // serves.
        if let ToSupervisor::Drained(counts) = message {
            telemetry::add_drain(counts);
            if let Some(current) = self.machine.current() {
                self.tell(current, &ToWorker::Counts(telemetry::counts()));
            }
            return None;
        }
        let worker = self.workers.get_mut(&pid)?;
        match message {
            ToSupervisor::Listeners(mut part) => {
                worker.pending.append(&mut part);
                None
            }
            ToSupervisor::Drained(_) => unreachable!("handled above"),
            ToSupervisor::Ready {
                version: Some(wire::VERSION),
            } => {
                self.config.listeners = std::mem::take(&mut worker.pending);
                Some(Event::WorkerReady { pid })
            }
            ToSupervisor::Ready { version } => {
                let theirs =
                    version.map_or("none (handover protocol 1 only)".into(), |v| v.to_string());
                let refused = format!(
                    "worker pid {pid} speaks supervisor exchange version {theirs}; this \
                     supervisor speaks version {}: killed",
                    wire::VERSION
                );
                tracing::error!("{refused}");
                self.remember(refused);
                self.kill(pid);
                None
            }
            ToSupervisor::Restart => {
                tracing::info!(pid, "restart requested by a worker");
                self.new_asker = Some(pid);
                Some(Event::RestartRequested)
            }
            ToSupervisor::Resumed => {
                tracing::info!(pid, "worker accepts again");
                Some(Event::WorkerResumed { pid })
            }
            ToSupervisor::Draining => {
                tracing::debug!(pid, "worker stopped accepting");
                Some(Event::WorkerDraining { pid })
            }
        }
    }

    /// Reaps every child that exited: workers become events, orphans are
    /// only reaped.
    fn reap(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        for _ in 0..1024 {
            let (pid, status) = match rustix::process::waitpid(None, WaitOptions::NOHANG) {
                Ok(Some(reaped)) => reaped,
                Ok(None) | Err(_) => break,
            };
            let pid = pid.as_raw_nonzero().get() as u32;
            if self.workers.remove(&pid).is_none() {
                tracing::debug!(pid, "reaped an orphan");
                continue;
            }
            let (status, success) = describe(status);
            tracing::info!(pid, %status, "worker exited");
            events.push(Event::WorkerExited {
                pid,
                status,
                success,
            });
        }
        events
    }

    fn handle(&mut self, event: Event) -> Option<u8> {
        let mut queue = vec![event];
        while let Some(event) = queue.pop() {
            tracing::debug!(?event, "supervisor event");
            for action in self.machine.on(event, Instant::now()) {
                match action {
                    Action::Spawn => queue.insert(0, self.spawn()),
                    Action::Exit(code) => {
                        tracing::info!(code, "supervisor done");
                        return Some(code);
                    }
                    other => self.perform(other),
                }
            }
        }
        None
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Drain { pid, successor } => self.tell(pid, &ToWorker::Drain { successor }),
            Action::Resume { pid } => self.tell(pid, &ToWorker::Resume),
            Action::Kill { pid } => self.kill(pid),
            Action::Notify(message) => {
                if let Err(e) = notify::send(&notify::message(&message)) {
                    tracing::warn!("sd_notify failed: {e}");
                }
            }
            Action::WritePidFile => {
                if let Some(path) = &self.config.pid_file {
                    if let Err(e) = pidfile::write(path, own_pid()) {
                        tracing::warn!("{e}");
                    }
                }
            }
            Action::RemovePidFile => {
                if let Some(path) = &self.config.pid_file {
                    if let Err(e) = pidfile::remove_if_own(path, own_pid()) {
                        tracing::warn!("{e}");
                    }
                }
            }
            Action::RestartDone(result) => {
                let attempt = self.restart_began.take();
                let _entered = attempt.as_ref().map(|(span, _)| span.enter());
                match &result {
                    Ok(pid) => tracing::info!(worker = pid, "restart complete"),
                    Err(e) => tracing::error!("restart failed: {e}"),
                }
                // An attempt (not a request refused): counted, and the
                // serving worker, whose metrics are scraped, is told.
                if let Some((span, began)) = &attempt {
                    let took = began.elapsed();
                    span.record("result", if result.is_ok() { "ok" } else { "failed" });
                    span.record("ready_ms", took.as_secs_f64() * 1e3);
                    telemetry::restart(result.is_ok(), Some(took));
                    if let Some(current) = self.machine.current() {
                        self.tell(current, &ToWorker::Counts(telemetry::counts()));
                        self.tell(current, &ToWorker::Took(result.is_ok(), took));
                    }
                }
                let answer = ToWorker::Answer(result.map_err(|e| e.to_string()));
                for pid in std::mem::take(&mut self.askers) {
                    self.tell(pid, &answer);
                }
            }
            Action::Report(text) => {
                tracing::warn!("{text}");
                self.remember(text);
            }
            Action::SuccessorLost { .. } => {
                telemetry::successor_lost();
                if let Some(current) = self.machine.current() {
                    self.tell(current, &ToWorker::Counts(telemetry::counts()));
                }
            }
            Action::Spawn | Action::Exit(_) => unreachable!("handled by the caller"),
        }
    }

    fn spawn(&mut self) -> Event {
        let generation = (self.generations + 1).min(protocol::MAX_GENERATION);
        // A worker started for a restart (another serves) counts it ok: if
        // it never serves, its counts are never seen.
        let restart = self.machine.current().is_some();
        if restart && self.restart_began.is_none() {
            // One span per restart attempt, as a generation's own restarts.
            let span = tracing::info_span!(
                "restart",
                generation,
                worker = tracing::field::Empty,
                result = tracing::field::Empty,
                ready_ms = tracing::field::Empty,
            );
            self.restart_began = Some((span, Instant::now()));
        }
        let env = [
            (protocol::ENV_SUPERVISOR, wire::VERSION.to_string()),
            (protocol::ENV_GENERATION, generation.to_string()),
            (protocol::ENV_COUNTS, spawn::counts_env(u64::from(restart))),
        ];
        match spawn::start(
            &self.config.command,
            &self.config.listeners,
            SocketType::SEQPACKET,
            &env,
            spawn::Kin::Child,
        ) {
            Ok(started) => {
                self.generations = generation;
                let pid = started.pid;
                let channel = Arc::new(started.channel);
                self.read_worker(pid, channel.clone());
                self.workers.insert(
                    pid,
                    Worker {
                        process: Successor::new(pid, started.pidfd),
                        channel,
                        pending: Vec::new(),
                    },
                );
                if let Some((span, _)) = self.restart_began.as_ref().filter(|_| restart) {
                    span.record("worker", pid);
                }
                tracing::info!(pid, "started a worker");
                Event::WorkerSpawned { pid }
            }
            Err(e) => Event::SpawnFailed(e),
        }
    }

    /// Reads what worker `pid` says, on a thread, until its channel closes.
    fn read_worker(&self, pid: u32, channel: Arc<OwnedFd>) {
        let tx = self.inputs.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("handoff-worker-{pid}"))
            .spawn(move || {
                loop {
                    let input = match wire::recv_from_worker(channel.as_fd()) {
                        Ok(Some(message)) => Input::Message { pid, message },
                        Ok(None) => return,
                        Err(error) => Input::Malformed { pid, error },
                    };
                    let stop = matches!(input, Input::Malformed { .. });
                    if tx.send(input).is_err() || stop {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(pid, "cannot read from the worker: {e}");
        }
    }

    fn tell(&self, pid: u32, message: &ToWorker) {
        if let Some(worker) = self.workers.get(&pid) {
            if let Err(e) = wire::send_to_worker(worker.channel.as_fd(), message) {
                tracing::warn!(pid, "cannot tell the worker {message:?}: {e}");
            }
        }
    }

    /// Keeps `report` among the last two, for the reason of a failed exit.
    fn remember(&mut self, report: String) {
        if self.reports.len() == 2 {
            self.reports.pop_front();
        }
        self.reports.push_back(report);
    }

    fn kill(&self, pid: u32) {
        if let Some(worker) = self.workers.get(&pid) {
            worker.process.kill();
        }
    }

    fn forward(&self, signal: i32) {
        let Some(pid) = self.machine.current() else {
            return;
        };
        let Some(worker) = self.workers.get(&pid) else {
            return;
        };
        match rustix::process::Signal::from_named_raw(signal) {
            Some(sig) => {
                tracing::debug!(pid, signal, "forwarding");
                worker.process.signal(sig);
            }
            None => tracing::debug!(signal, "cannot forward"),
        }
    }
}

fn describe(status: rustix::process::WaitStatus) -> (String, bool) {
    if let Some(code) = status.exit_status() {
        (format!("exit status {code}"), code == 0)
    } else if let Some(sig) = status.terminating_signal() {
        (format!("killed by signal {sig}"), false)
    } else {
        ("ended".into(), false)
    }
}
