//! The demo under real systemd (254, PID 1 of a container booted with
//! systemd-nspawn), with the unit files of docs/deploy/systemd, so the docs
//! cannot drift from what is tested. One test per unit file, one fresh
//! container each, run one at a time (they share the root).
//!
//! Each runs `scripts/systemd/scenario.sh` through `scripts/systemd/boot.sh`:
//! reloads under load from oha (GET, and POST with a body): 0 failed requests,
//! every `systemctl reload` exits 0, MainPID as documented; a bad build at
//! ExecStart's path: the failure shows in StatusText and the unit stays active
//! on the same MainPID and served pid; `systemctl stop` with a 1 s request in
//! flight: the request completes and the unit ends inactive, not failed; then
//! started again, reloaded once, its main process SIGKILLed: systemd restarts
//! it. Throughout, systemd never logged "not our child" nor sent SIGKILL.
//!
//! Needs root, systemd-nspawn and debootstrap (`scripts/systemd/root.sh`
//! installs them with apt, then builds the root once, about 2-3 minutes, into
//! `/var/cache/handoff/systemd-root` or `$HANDOFF_SYSTEMD_ROOT`), and oha.
//! Without them each test says so and passes; CI sets `REQUIRE_SYSTEMD=1`,
//! which makes a missing prerequisite a failure.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod external;
    pub mod process;
    pub mod script;
    pub mod server;
}

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use harness::script::{self, Report, free_port, repo};
use harness::server::example;

/// One container at a time: they boot the same root.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// The longest one scenario may take (boot, about 10 s of load, stop,
/// poweroff; the first run also builds the root).
const SCENARIO_BOUND: Duration = Duration::from_secs(600);

/// Why the scenario cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !script::is_root() {
        return Some("not root (systemd-nspawn needs it)".into());
    }
    if !script::installed("systemd-nspawn") && !script::installed("apt-get") {
        return Some("no systemd-nspawn, and no apt-get to install it".into());
    }
    if harness::external::oha().is_none() {
        return Some("no oha".into());
    }
    None
}

/// Runs the scenario for `docs/deploy/systemd/{unit}.service`; its report,
/// after checking it passed.
fn scenario(unit: &str) -> Option<Report> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let what = format!("real systemd scenario for {unit}");
    if !script::prerequisite(missing_prerequisite(), "REQUIRE_SYSTEMD", &what) {
        return None;
    }
    let scripts = repo().join("scripts/systemd");
    let root = std::env::var_os("HANDOFF_SYSTEMD_ROOT").map_or_else(
        || PathBuf::from("/var/cache/handoff/systemd-root"),
        PathBuf::from,
    );
    let built = Command::new(scripts.join("root.sh"))
        .arg(&root)
        .status()
        .expect("run scripts/systemd/root.sh");
    assert!(built.success(), "root.sh {root:?}: {built}");

    // The demo as built for these tests, alone in a directory bound at
    // /usr/local/bin (the scenario swaps it for a bad build and back).
    let bin = tempfile::tempdir().expect("a temporary directory");
    std::fs::copy(example("demo"), bin.path().join("demo")).expect("copy the demo binary");
    let mut cmd = Command::new(scripts.join("boot.sh"));
    cmd.arg("--bind-ro")
        .arg(format!("{}:/usr/local/bin", bin.path().display()))
        .arg("--host")
        .arg(&root)
        .arg("--")
        .arg(scripts.join("scenario.sh"))
        .arg(repo().join(format!("docs/deploy/systemd/{unit}.service")))
        .arg(free_port().to_string())
        .arg(bin.path())
        .env("PATH", script::path_with_oha());
    let report = script::run(&what, cmd, SCENARIO_BOUND, "--- journal");
    println!("== {unit} under real systemd\n{}", report.text);
    Some(report)
}

/// Checks what every scenario must have shown, beyond its exit status: each
/// phase ran and said what it saw.
fn check_common(unit: &str, report: &Report) {
    let get = |key: &str| report.get(unit, key);
    let reloads = get("RELOAD");
    assert!(reloads.len() >= 6, "{unit}: {reloads:?}");
    assert!(
        reloads.iter().all(|r| r.contains(" exit=0 ")),
        "{reloads:?}"
    );
    let bad = &get("BAD_RELOAD")[0];
    assert!(bad.contains("restart failed"), "{unit}: {bad}");
    let load = get("LOAD");
    assert_eq!(load.len(), 2, "{unit}: GET and POST: {load:?}");
    assert!(load.iter().all(|l| l.contains(" failed=0 ")), "{load:?}");
    let stop = &get("STOP")[0];
    assert!(
        stop.starts_with("exit=0 ") && stop.contains("http:200"),
        "{unit}: {stop}"
    );
    assert_eq!(get("FINAL")[0], "state=inactive result=success", "{unit}");
    // `restarts=A->B`: systemd restarted the unit after the crash.
    let crash = &get("CRASH")[0];
    let restarts = crash
        .split_whitespace()
        .find_map(|w| w.strip_prefix("restarts="))
        .and_then(|r| r.split_once("->"))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    assert!(matches!(restarts, Some((a, b)) if b > a), "{unit}: {crash}");
    // systemd watched every main process as its own child, and until the
    // crash never had to SIGKILL anything. (After a supervisor's crash,
    // KillMode=mixed SIGKILLs its orphaned workers: see the unit file.)
    let journal = get("JOURNAL");
    assert!(
        journal[0].starts_with("before_crash ")
            && journal[0].ends_with(" not_our_child=0 sigkill=0"),
        "{unit}: {journal:?}"
    );
    assert!(
        journal[1].starts_with("all ") && journal[1].contains(" not_our_child=0 "),
        "{unit}: {journal:?}"
    );
}

/// `RELOAD` lines' `main_pid=A->B`.
fn main_pids(report: &Report) -> Vec<(String, String)> {
    report
        .get("main_pids", "RELOAD")
        .iter()
        .filter_map(|l| {
            let field = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("main_pid="))?;
            let (a, b) = field.split_once("->")?;
            Some((a.to_owned(), b.to_owned()))
        })
        .collect()
}

/// Re-exec model: MainPID follows each new generation.
fn check_reexec(unit: &str) {
    let Some(lines) = scenario(unit) else { return };
    check_common(unit, &lines);
    for (before, after) in main_pids(&lines) {
        assert_ne!(
            before, after,
            "{unit}: MainPID must move to the new generation"
        );
    }
}

/// Supervisor model: MainPID is the supervisor throughout.
fn check_supervised(unit: &str) {
    let Some(lines) = scenario(unit) else { return };
    check_common(unit, &lines);
    for (before, after) in main_pids(&lines) {
        assert_eq!(before, after, "{unit}: MainPID must stay the supervisor");
    }
}

#[test]
fn reexec_type_notify() {
    check_reexec("reexec-notify");
}

#[test]
fn reexec_type_notify_reload() {
    check_reexec("reexec-notify-reload");
}

#[test]
fn supervised_type_notify() {
    check_supervised("supervise-notify");
}

#[test]
fn supervised_type_notify_reload() {
    check_supervised("supervise-notify-reload");
}
