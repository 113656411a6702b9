//! [`Handoff`]: the entry point. Takes what the previous generation passed,
//! hands out listeners, and runs the restart driver.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::mpsc;

use crate::drain::Drainable;
use crate::error::{Error, Result};
use crate::handle::{Command as HandleCommand, Handle};
use crate::inherited::{Inheritance, ParentLink};
use crate::listener::InheritedListener;
use crate::machine::{ExitReason, Timeouts};
use crate::registry::Listeners;
use crate::runtime::{Runtime, Signal};
use crate::signals::EarlySignals;
use crate::spawn::Command;
use crate::state::Published;
use crate::unix_socket::UnixOptions;

type Hook<A, R> = Box<dyn FnMut(A) -> R + Send>;
type ResultHook = Box<dyn FnMut(&Result<u32>) + Send>;

#[derive(Default)]
pub(crate) struct Hooks {
    pub before_spawn: Option<Hook<(), std::result::Result<(), String>>>,
    pub on_ready: Option<Hook<(), ()>>,
    pub on_drain: Option<Hook<(), ()>>,
    pub on_restart_result: Option<ResultHook>,
}

/// Configures a [`Handoff`].
///
/// Defaults: ready timeout 30 s, stop timeout 30 s, kill timeout 10 s, no
/// shutdown delay;
/// SIGHUP and SIGUSR2 restart, SIGTERM and SIGINT shut down; no pid file; no
/// Unix socket options (the umask decides); the successor is the executable
/// path this process was started from, with the same arguments.
#[must_use]
pub struct Builder {
    timeouts: Timeouts,
    restart_signals: Vec<Signal>,
    shutdown_signals: Vec<Signal>,
    pid_file: Option<PathBuf>,
    unix: UnixOptions,
    executable: Option<PathBuf>,
    args: Option<Vec<OsString>>,
    hooks: Hooks,
    supervise: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("timeouts", &self.timeouts)
            .field("restart_signals", &self.restart_signals)
            .field("shutdown_signals", &self.shutdown_signals)
            .field("pid_file", &self.pid_file)
            .field("unix", &self.unix)
            .field("executable", &self.executable)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            timeouts: Timeouts::default(),
            restart_signals: vec![Signal::Hup, Signal::Usr2],
            shutdown_signals: vec![Signal::Term, Signal::Int],
            pid_file: None,
            unix: UnixOptions::new(),
            executable: None,
            args: None,
            hooks: Hooks::default(),
            supervise: false,
        }
    }
}

impl Builder {
    /// How long a successor has to become ready before it is killed (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.ready = timeout;
        self
    }

    /// How long in-flight work may run once draining starts before it is
    /// aborted (default 30 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.stop = timeout;
        self
    }

    /// How long after the abort the process exits whatever remains (default 10 s).
    pub fn kill_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.kill = timeout;
        self
    }

    /// How long, after a shutdown request (SIGTERM, SIGINT,
    /// [`Handle::shutdown`]), this generation keeps accepting and serving
    /// while it reports unready ([`Handle::state`] says
    /// [`State::ShuttingDown`](crate::State::ShuttingDown)), before it drains
    /// as without a delay (default none). Load balancers and Kubernetes
    /// take it out of rotation meanwhile, so nothing is sent to a process that
    /// no longer accepts. A second shutdown request ends the delay at once.
    /// The stop and kill timeouts start after it.
    ///
    /// Under a supervisor the worker waits out the delay (and the supervisor
    /// gives it that much longer); a second SIGTERM to the supervisor ends it.
    pub fn shutdown_delay(mut self, delay: Duration) -> Self {
        self.timeouts.shutdown_delay = delay;
        self
    }

    /// Signals that start a restart (default SIGHUP, SIGUSR2); empty for none.
    pub fn restart_signals(mut self, signals: &[Signal]) -> Self {
        self.restart_signals = signals.to_vec();
        self
    }

    /// Signals that start a graceful shutdown (default SIGTERM, SIGINT); empty for none.
    pub fn shutdown_signals(mut self, signals: &[Signal]) -> Self {
        self.shutdown_signals = signals.to_vec();
        self
    }

    /// Keeps the pid of the generation that accepts in `path`, written
    /// atomically: by the first generation when it is ready, then by each
    /// old generation, naming its successor, right after it was told to stop
    /// accepting. So when the file changes, the new process serves and the
    /// old one is draining. Removed on shutdown.
    ///
    /// Safe in a directory other users may write: the pid goes to a temporary
    /// file created exclusively under an unpredictable name next to `path`
    /// (mode 0644), renamed over `path`. A symlink planted at `path` or at any
    /// temporary name is never followed (one at `path` is replaced by the
    /// regular file); reading and removing never follow a symlink either.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(path.into());
        self
    }

    /// The mode, owner and group of the socket file of every fresh Unix
    /// listener (default: none, the umask decides); see [`UnixOptions`].
    /// [`Listeners::get_or_bind_unix`] sets them per listener instead.
    pub fn unix_options(mut self, options: UnixOptions) -> Self {
        self.unix = options;
        self
    }

    /// Starts the successor from `path` instead of the path this process was
    /// started from.
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.executable = Some(path.into());
        self
    }

    /// Gives the successor these arguments (`argv[0]` first) instead of this
    /// process's own.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Runs before a successor is spawned (release what the successor needs,
    /// as grace's `PreStartProcess`); an error cancels that restart.
    pub fn before_spawn(
        mut self,
        mut hook: impl FnMut() -> std::result::Result<(), String> + Send + 'static,
    ) -> Self {
        self.hooks.before_spawn = Some(Box::new(move |()| hook()));
        self
    }

    /// Runs once this generation accepts and has told its parent so.
    pub fn on_ready(mut self, mut hook: impl FnMut() + Send + 'static) -> Self {
        self.hooks.on_ready = Some(Box::new(move |()| hook()));
        self
    }

    /// Runs when this generation starts draining (successor ready, or shutdown).
    pub fn on_drain(mut self, mut hook: impl FnMut() + Send + 'static) -> Self {
        self.hooks.on_drain = Some(Box::new(move |()| hook()));
        self
    }

    /// Runs after every restart attempt, with the successor's pid or the
    /// error, whoever asked for it (signal or [`Handle::restart`]); and again,
    /// with [`Error::SuccessorLost`], if a successor that was ready dies while
    /// this generation still drains (this generation then took the listeners
    /// back and serves on).
    pub fn on_restart(mut self, hook: impl FnMut(&Result<u32>) + Send + 'static) -> Self {
        self.hooks.on_restart_result = Some(Box::new(hook));
        self
    }

    /// Runs the service under a supervisor (see [`crate::supervisor`]): the
    /// process started stays, with one pid, holds the listening sockets and
    /// runs each generation as its child. Start with
    /// [`launch`](Builder::launch).
    pub fn supervise(mut self, supervise: bool) -> Self {
        self.supervise = supervise;
        self
    }

    /// Starts this process in its role: without [`supervise`](Builder::supervise),
    /// [`build`](Builder::build) ([`Launch::Worker`](crate::Launch::Worker)). With it, in a worker,
    /// the same; in the process that was started, runs the supervisor until
    /// the service stops ([`Launch::Supervised`](crate::Launch::Supervised)). Fails, as `build()` does,
    /// on bad inherited input; and with [`Error::Supervise`] when this
    /// process is a generation started by another (re-exec mode), which a
    /// supervisor cannot take over from.
    pub fn launch(mut self) -> Result<crate::Launch> {
        let from_supervisor = std::env::var_os(crate::protocol::ENV_SUPERVISOR).is_some();
        if !self.supervise || from_supervisor {
            return self.into_handoff().map(crate::Launch::Worker);
        }
        if std::env::var_os(crate::protocol::ENV_CHANNEL_FD).is_some() {
            return Err(Error::Supervise {
                reason: "this process was started by a running generation (re-exec mode), not \
                         by a supervisor; stop the service and start it with supervision"
                    .into(),
            });
        }
        crate::telemetry::init();
        let inheritance = Inheritance::from_env()?;
        let command = self.command()?;
        let config = crate::supervisor::Config {
            timeouts: self.timeouts,
            pid_file: self.pid_file,
            command,
            listeners: inheritance
                .slots
                .into_iter()
                .map(|slot| (slot.name, slot.fd))
                .collect(),
            restart_signals: self.restart_signals,
            shutdown_signals: self.shutdown_signals,
        };
        let (code, reason) = crate::supervisor::run(config);
        Ok(crate::Launch::Supervised(crate::SupervisorExit::new(
            code, reason,
        )))
    }

    /// Takes the sockets passed by the previous generation (or systemd),
    /// removes the protocol's variables from the environment, and catches the
    /// restart and shutdown signals: one that arrives before
    /// [`Handoff::run`] has installed the runtime's handlers does not end the
    /// process, and is acted on once `run()` starts.
    ///
    /// Call it early in `main`, before starting threads that read the
    /// environment: removing variables is not thread-safe on every libc.
    pub fn build(self) -> Result<Handoff> {
        if self.supervise && std::env::var_os(crate::protocol::ENV_SUPERVISOR).is_none() {
            return Err(Error::Supervise {
                reason: "supervise(true) starts with Builder::launch(), which runs the supervisor"
                    .into(),
            });
        }
        self.into_handoff()
    }

    /// What a successor (or a worker) is started as: this process's
    /// executable and arguments, or the overrides.
    fn command(&mut self) -> Result<Command> {
        let mut command = Command::from_startup()
            .map_err(|e| Error::io("cannot determine the executable to restart", e))?;
        if let Some(path) = self.executable.take() {
            command.path = path;
        }
        if let Some(args) = self.args.take() {
            command.args = args;
        }
        Ok(command)
    }

    fn into_handoff(mut self) -> Result<Handoff> {
        crate::telemetry::init();
        let inheritance = Inheritance::from_env()?;
        let command = self.command()?;
        let (tx, rx) = mpsc::unbounded();
        crate::telemetry::generation(inheritance.generation);
        crate::telemetry::ready(false);
        if let Some(counts) = inheritance.restarts {
            crate::telemetry::set_counts(counts);
        }
        let mut caught = self.restart_signals.clone();
        caught.extend(self.shutdown_signals.iter().copied());
        Ok(Handoff {
            early_signals: EarlySignals::catch(&caught),
            timeouts: self.timeouts,
            restart_signals: self.restart_signals,
            shutdown_signals: self.shutdown_signals,
            pid_file: self.pid_file,
            command,
            hooks: self.hooks,
            listeners: Listeners::new(inheritance.slots, self.unix),
            parent: inheritance.parent,
            published: Arc::new(Published::new(inheritance.generation)),
            generation: inheritance.generation,
            tx,
            rx,
        })
    }
}

/// One generation of a restartable server.
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # async fn example() -> Result<(), handoff::Error> {
/// use handoff::{DrainGroup, Handoff};
///
/// let mut handoff = Handoff::new()?;
/// let listener: tokio::net::TcpListener = handoff.listen("http", "127.0.0.1:8080")?;
/// let group = DrainGroup::new();
/// // ... spawn an accept loop on `listener` that tracks connections in `group`
/// //     and stops accepting when `group.signal()` resolves ...
/// handoff.run(handoff::tokio::Tokio, group).await?;
/// # Ok(()) }
/// ```
pub struct Handoff {
    pub(crate) timeouts: Timeouts,
    pub(crate) restart_signals: Vec<Signal>,
    pub(crate) shutdown_signals: Vec<Signal>,
    pub(crate) pid_file: Option<PathBuf>,
    pub(crate) command: Command,
    pub(crate) hooks: Hooks,
    pub(crate) listeners: Listeners,
    pub(crate) parent: Option<ParentLink>,
    pub(crate) generation: u64,
    pub(crate) published: Arc<Published>,
    pub(crate) tx: mpsc::UnboundedSender<HandleCommand>,
    pub(crate) rx: mpsc::UnboundedReceiver<HandleCommand>,
    pub(crate) early_signals: EarlySignals,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("timeouts", &self.timeouts)
            .field("listeners", &self.listeners)
            .field("parent", &self.parent_pid())
            .field("executable", &self.command.path)
            .finish_non_exhaustive()
    }
}

impl Handoff {
    /// [`Builder::build`] with the defaults.
    pub fn new() -> Result<Self> {
        Self::builder().build()
    }

    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The listener registry.
    pub fn listeners(&mut self) -> &mut Listeners {
        &mut self.listeners
    }

    /// The inherited listener named `name` if it is bound at `address`, else
    /// a fresh one. `address` is parsed as an [`Address`](crate::Address):
    /// `127.0.0.1:8080`, `unix:/run/app.sock`, `udp://[::1]:5353`.
    pub fn listen<L: InheritedListener>(&mut self, name: &str, address: &str) -> Result<L> {
        let address = address.parse()?;
        self.listeners.get_or_bind(name, &address)
    }

    /// The inherited Unix stream listener named `name` if it is bound at
    /// `path`, else a fresh one whose socket file gets the mode, owner and
    /// group of `options` before it accepts (see [`UnixOptions`]).
    pub fn listen_unix<L: InheritedListener>(
        &mut self,
        name: &str,
        path: impl AsRef<std::path::Path>,
        options: &UnixOptions,
    ) -> Result<L> {
        let address = crate::Address::Unix(path.as_ref().to_path_buf());
        self.listeners.get_or_bind_unix(name, &address, options)
    }

    /// A handle to request restarts and shutdown.
    pub fn handle(&self) -> Handle {
        Handle {
            tx: self.tx.clone(),
            published: self.published.clone(),
        }
    }

    /// The pid of the previous generation, if this process took over from one.
    pub fn parent_pid(&self) -> Option<u32> {
        self.parent.as_ref().map(ParentLink::pid)
    }

    /// This process's generation: 1 for the first process of the service (or
    /// a supervisor's first worker), one more for each successor. Passed
    /// across the handover (`HANDOFF_GENERATION`, docs/PROTOCOL.md).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Announces readiness (to the parent, the pid file and systemd) and runs
    /// the restart driver until this generation is done.
    ///
    /// Call it once `server` accepts on every listener. Resolves when the
    /// generation has drained after a handover or a shutdown, or at stop +
    /// kill timeout with work still in flight ([`ExitReason::KillTimeout`]:
    /// flush what must be flushed and exit with a failure status; the library
    /// never exits the process itself). Return from `main` then.
    ///
    /// If a successor dies after it said ready while this generation still
    /// drains, this generation takes its listeners back ([`Drainable::resume`])
    /// and serves on, and `run()` goes on.
    pub async fn run<R: Runtime, D: Drainable>(self, runtime: R, server: D) -> Result<ExitReason> {
        crate::driver::run(self, runtime, server).await
    }
}
