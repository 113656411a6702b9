//! The demo under real supervisord, with docs/deploy/supervisord/demo.conf,
//! through `scripts/supervisord/check.sh`: five `supervisorctl signal HUP`
//! reloads under oha load (GET, and POST with a body), 0 failed requests, a
//! new worker after each and the program's pid unchanged; `supervisorctl stop`
//! with a 2 s request in flight: it completes, and the program stops with exit
//! status 0.
//!
//! Needs supervisord (Debian: `apt-get install supervisor`) and oha. Without
//! them the test says so and passes; CI installs supervisor and sets
//! `REQUIRE_SUPERVISORD=1`, which makes a missing prerequisite a failure.

#![cfg(all(feature = "tokio", feature = "hyper", feature = "tls"))]

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod external;
    pub mod process;
    pub mod script;
    pub mod server;
}

use std::process::Command;
use std::time::Duration;

use harness::script::{self, free_port, repo};
use harness::server::example;

#[test]
fn reloads_under_load_and_a_stop_with_a_request_in_flight() {
    let missing = if !script::installed("supervisord") {
        Some("no supervisord".to_owned())
    } else if harness::external::oha().is_none() {
        Some("no oha".to_owned())
    } else {
        None
    };
    let what = "real supervisord scenario";
    if !script::prerequisite(missing, "REQUIRE_SUPERVISORD", what) {
        return;
    }
    let mut cmd = Command::new(repo().join("scripts/supervisord/check.sh"));
    cmd.arg(example("demo"))
        .arg(free_port().to_string())
        .env("PATH", script::path_with_oha());
    let report = script::run(what, cmd, Duration::from_secs(180), "--- ");
    println!("{}", report.text);
    let reloads = report.get(what, "RELOAD");
    assert_eq!(reloads.len(), 5, "{reloads:?}");
    let programs: Vec<&str> = reloads
        .iter()
        .filter_map(|r| r.split_whitespace().find(|w| w.starts_with("program_pid=")))
        .collect();
    assert!(
        programs.len() == 5 && programs.iter().all(|p| *p == programs[0]),
        "supervisord's program must keep its pid: {programs:?}"
    );
    let load = report.get(what, "LOAD");
    assert_eq!(load.len(), 2, "GET and POST: {load:?}");
    assert!(load.iter().all(|l| l.contains(" failed=0 ")), "{load:?}");
    let stop = &report.get(what, "STOP")[0];
    assert!(
        stop.starts_with("exit=0 ") && stop.contains("http:200"),
        "{stop}"
    );
    assert_eq!(report.get(what, "FINAL")[0], "state=STOPPED clean_exit=1");
}
