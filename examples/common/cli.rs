//! The command line every example server shares: `--listen ADDR`
//! (repeatable), `--pid-file PATH`, `--ready-timeout SECS`, `--stop-timeout
//! SECS`, `--kill-timeout SECS`, `--shutdown-delay SECS` (after SIGTERM,
//! serve on unready that long before draining), `--unix-mode OCTAL`, `--unix-owner
//! USER|UID`, `--unix-group GROUP|GID` (the socket file of fresh Unix
//! listeners), `--supervise` (run under a supervisor process with a stable
//! pid), and for HTTPS servers `--tls-cert PEM --tls-key PEM`; logging
//! to stderr; and the lines printed after each restart.

#![allow(dead_code)] // each example uses the part it needs

use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

/// The parsed flags.
pub struct Cli {
    pub program: &'static str,
    pub listen: Vec<String>,
    pub pid_file: Option<String>,
    pub ready: Option<Duration>,
    pub stop: Option<Duration>,
    pub kill: Option<Duration>,
    pub shutdown_delay: Option<Duration>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub unix: handoff::UnixOptions,
    pub supervise: bool,
}

impl Cli {
    /// Parses the process arguments. `default_listen` applies when no
    /// `--listen` is given; `tls` accepts `--tls-cert` and `--tls-key`.
    pub fn parse(program: &'static str, default_listen: &[&str], tls: bool) -> Result<Cli, String> {
        let mut cli = Cli {
            program,
            listen: Vec::new(),
            pid_file: None,
            ready: None,
            stop: None,
            kill: None,
            shutdown_delay: None,
            tls_cert: None,
            tls_key: None,
            unix: handoff::UnixOptions::new(),
            supervise: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            let secs = |v: String| -> Result<Duration, String> {
                v.parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| format!("{flag} {v:?}: expected seconds, e.g. 30 or 0.5"))
            };
            match flag.as_str() {
                "--listen" => cli.listen.push(value()?),
                "--supervise" => cli.supervise = true,
                "--pid-file" => cli.pid_file = Some(value()?),
                "--ready-timeout" => cli.ready = Some(secs(value()?)?),
                "--stop-timeout" => cli.stop = Some(secs(value()?)?),
                "--kill-timeout" => cli.kill = Some(secs(value()?)?),
                "--shutdown-delay" => cli.shutdown_delay = Some(secs(value()?)?),
                "--unix-mode" => cli.unix = cli.unix.mode(parse_mode(&value()?)?),
                "--unix-owner" => cli.unix = cli.unix.owner(lookup_id(&value()?, "/etc/passwd")?),
                "--unix-group" => cli.unix = cli.unix.group(lookup_id(&value()?, "/etc/group")?),
                "--tls-cert" if tls => cli.tls_cert = Some(value()?),
                "--tls-key" if tls => cli.tls_key = Some(value()?),
                "-h" | "--help" => return Err(usage(program, tls)),
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        if cli.tls_cert.is_some() != cli.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together".into());
        }
        if cli.listen.is_empty() {
            cli.listen = default_listen.iter().map(|s| s.to_string()).collect();
        }
        Ok(cli)
    }

    /// A `Handoff` builder with the pid file and timeouts of the flags, which
    /// prints `restart complete: successor pid PID` or `restart failed:
    /// REASON` after each restart attempt.
    pub fn builder(&self) -> handoff::Builder {
        let mut builder = handoff::Handoff::builder().on_restart(|result| match result {
            Ok(pid) => println!("restart complete: successor pid {pid}"),
            Err(e) => println!("restart failed: {e}"),
        });
        if let Some(path) = &self.pid_file {
            builder = builder.pid_file(path);
        }
        builder = builder.unix_options(self.unix);
        if let Some(t) = self.ready {
            builder = builder.ready_timeout(t);
        }
        if let Some(t) = self.stop {
            builder = builder.stop_timeout(t);
        }
        if let Some(t) = self.kill {
            builder = builder.kill_timeout(t);
        }
        if let Some(t) = self.shutdown_delay {
            builder = builder.shutdown_delay(t);
        }
        builder
    }

    /// The exit code for how `run()` ended: a failure at the kill timeout
    /// (work was still in flight and was cut), success otherwise.
    pub fn done(&self, reason: handoff::ExitReason) -> ExitCode {
        match reason {
            handoff::ExitReason::KillTimeout => {
                eprintln!(
                    "{}: kill timeout: exited with work still in flight",
                    self.program
                );
                ExitCode::FAILURE
            }
            _ => ExitCode::SUCCESS,
        }
    }

    /// This process's `Handoff`: built (its handle kept for [`readiness`]),
    /// or, with `--supervise` in the process that was started, the
    /// supervisor runs until the service stops and `Err` holds the status
    /// `main` returns.
    pub fn launch(&self) -> Result<handoff::Handoff, ExitCode> {
        match self.builder().supervise(self.supervise).launch() {
            Ok(handoff::Launch::Worker(handoff)) => {
                let _ = HANDLE.set(handoff.handle());
                Ok(handoff)
            }
            Ok(handoff::Launch::Supervised(exit)) => {
                if let Some(reason) = exit.reason() {
                    eprintln!("{}: supervisor: {reason}", self.program);
                }
                Err(exit.exit_code())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Reports a fatal error and returns the failure exit code.
    pub fn fail(&self, error: impl Display) -> ExitCode {
        eprintln!("{}: {error}", self.program);
        ExitCode::FAILURE
    }
}

/// This generation's handle, once [`Cli::launch`] built it.
static HANDLE: std::sync::OnceLock<handoff::Handle> = std::sync::OnceLock::new();

/// Whether this generation is ready (serving, or restarting) and the line
/// that says so: `ready serving generation=N pid=PID`, or `unready STATE
/// ...` from the moment a shutdown begins (`GET /readyz`, echo's `ready`).
/// Once this generation saw a restart end, the line goes on with
/// ` last-restart=ok`, `=failed`, or `=lost` (its successor died after it
/// was ready, and this generation took the listeners back).
pub fn readiness() -> (bool, String) {
    let pid = std::process::id();
    let Some(handle) = HANDLE.get() else {
        return (false, format!("unready starting pid={pid}\n"));
    };
    let (state, generation) = (handle.state(), handle.generation());
    let ready = state.is_ready();
    let word = if ready { "ready" } else { "unready" };
    let last = match handle.last_restart() {
        None => "",
        Some(Ok(_)) => " last-restart=ok",
        Some(Err(handoff::Error::SuccessorLost { .. })) => " last-restart=lost",
        Some(Err(_)) => " last-restart=failed",
    };
    (
        ready,
        format!("{word} {state} generation={generation} pid={pid}{last}\n"),
    )
}

fn usage(program: &str, tls: bool) -> String {
    let tls = if tls {
        " [--tls-cert PEM --tls-key PEM]"
    } else {
        ""
    };
    format!(
        "usage: {program} [--listen ADDR]... [--pid-file PATH] [--ready-timeout SECS] \
         [--stop-timeout SECS] [--kill-timeout SECS] [--shutdown-delay SECS] [--unix-mode OCTAL] \
         [--unix-owner USER|UID] [--unix-group GROUP|GID] [--supervise]{tls}"
    )
}

/// `660` or `0o660`: permission bits in octal.
fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("--unix-mode {text:?}: expected octal permission bits, e.g. 660"))
}

/// A numeric id, or the id of a name in `/etc/passwd` or `/etc/group`
/// (`name:password:id:...`).
fn lookup_id(text: &str, database: &str) -> Result<u32, String> {
    if let Ok(id) = text.parse() {
        return Ok(id);
    }
    let entries = std::fs::read_to_string(database).map_err(|e| format!("{database}: {e}"))?;
    entries
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&text))
        .and_then(|fields| fields.get(2)?.parse().ok())
        .ok_or_else(|| format!("{text:?} is neither a number nor a name in {database}"))
}

/// Logs to stderr (`RUST_LOG` filters; default `info`), with colours only on
/// a terminal.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `100us`: a number and a unit.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(number * scale).ok()
}
