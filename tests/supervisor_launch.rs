//! `Builder::launch` with supervision: misuse and a worker binary that cannot
//! be started fail with errors that say what is wrong. (The supervisor at
//! work, with real workers, is in the conformance suite.)

use std::process::Command;

use handoff::{Error, Handoff, Launch};

#[test]
fn build_with_supervise_points_to_launch() {
    let err = Handoff::builder().supervise(true).build().unwrap_err();
    assert!(matches!(err, Error::Supervise { .. }), "{err}");
    assert!(err.to_string().contains("launch()"), "{err}");
}

#[test]
fn an_unusable_worker_binary_at_start_ends_the_supervisor_naming_it() {
    let missing =
        std::env::temp_dir().join(format!("handoff-no-such-worker-{}", std::process::id()));
    let launched = Handoff::builder()
        .supervise(true)
        .restart_signals(&[])
        .shutdown_signals(&[])
        .executable(&missing)
        .launch()
        .unwrap();
    let Launch::Supervised(exit) = launched else {
        panic!("this process is no worker");
    };
    assert_eq!(exit.code(), 1);
    let reason = exit.reason().expect("a reason");
    assert!(reason.contains(missing.to_str().unwrap()), "{reason}");
}

/// Run as a child of [`supervise_in_a_generation_started_by_another_is_refused`].
#[test]
fn supervise_probe() {
    if std::env::var_os("HANDOFF_SUPERVISE_PROBE").is_none() {
        return;
    }
    let err = Handoff::builder().supervise(true).launch().unwrap_err();
    assert!(matches!(err, Error::Supervise { .. }), "{err}");
    println!("probe: {err}");
}

#[test]
fn supervise_in_a_generation_started_by_another_is_refused() {
    // This test binary again, as if started by a re-exec generation (the
    // channel variable is set): it cannot become a supervisor.
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "supervise_probe", "--nocapture"])
        .env("HANDOFF_SUPERVISE_PROBE", "1")
        .env("HANDOFF_CHANNEL_FD", "9")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("probe: cannot supervise"), "{stdout}");
}

/// Run as a child of [`a_worker_of_another_supervisor_version_refuses_naming_both`].
#[test]
fn version_probe() {
    if std::env::var_os("HANDOFF_VERSION_PROBE").is_none() {
        return;
    }
    let err = Handoff::builder().supervise(true).launch().unwrap_err();
    println!("probe: {err}");
}

#[test]
fn a_worker_of_another_supervisor_version_refuses_naming_both() {
    // This test binary again, as a worker started by a supervisor that
    // speaks version 2 of the exchange.
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "version_probe", "--nocapture"])
        .env("HANDOFF_VERSION_PROBE", "1")
        .env("HANDOFF_PROTOCOL", "1")
        .env("LISTEN_FDS", "0")
        .env("HANDOFF_CHANNEL_FD", "9")
        .env("HANDOFF_SUPERVISOR", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "probe: the supervisor exchange versions differ: the other side speaks \
             version 2, this build of handoff speaks version 1"
        ),
        "{stdout}"
    );
}
