//! Guarantee: a pid file in a directory other users may write (world-writable
//! and sticky, like /tmp) cannot be used to overwrite another file.
//!
//! The attack: symlinks, planted at every name the pid file's temporary file
//! could predictably have (`.server.pid.PID.tmp` for the next pids, the
//! scheme before 0.1's fix), point at a file of value. The echo server runs
//! as root with `--pid-file` in that directory and is restarted with SIGHUP
//! (each old generation writes its successor's pid). Expected: the victim
//! file is untouched, every planted symlink is still a symlink to it, the pid
//! file is a regular file with mode 0644 naming the process that serves, and
//! SIGTERM removes it.
//!
//! Second case: the pid file's path itself is a symlink to the victim. The
//! chosen (and documented) behaviour: the symlink is replaced by a regular
//! file through the rename, the victim untouched; at shutdown the regular file
//! is removed.

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod process;
    pub mod server;
}

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::client::Target;
use harness::process::{self, Signal, T10, T30};
use harness::server::{self, Server};
use tempfile::TempDir;

const PRECIOUS: &str = "precious data\n";
/// Symlinks planted for the pids after the newest one, before each step.
const PLANTED: u32 = 400;
const RESTARTS: usize = 3;

/// A world-writable sticky directory (mode 1777) and a victim file outside it.
struct Scene {
    dir: TempDir,
    shared: PathBuf,
    victim: PathBuf,
    /// The pids a symlink was planted for.
    planted: BTreeSet<u32>,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).expect("create shared dir");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
        let victim = dir.path().join("victim");
        fs::write(&victim, PRECIOUS).expect("write victim");
        Scene {
            dir,
            shared,
            victim,
            planted: BTreeSet::new(),
        }
    }

    fn assert_victim_intact(&self, when: &str) {
        let content = fs::read_to_string(&self.victim).expect("read victim");
        assert_eq!(content, PRECIOUS, "{when}: the victim file was overwritten");
    }

    /// Plants `.NAME.PID.tmp -> victim` for the next [`PLANTED`] pids the
    /// kernel will hand out (after `ns_last_pid`, skipping pids in use, and
    /// wrapping from `pid_max` to 300 as Linux does); returns how many new
    /// symlinks it made.
    fn plant(&mut self, name: &str) -> usize {
        let read =
            |path: &str| -> Option<u32> { fs::read_to_string(path).ok()?.trim().parse().ok() };
        let last = read("/proc/sys/kernel/ns_last_pid").expect("read ns_last_pid");
        let max = read("/proc/sys/kernel/pid_max").unwrap_or(4_194_304);
        let (mut pid, mut free, mut made) = (last, 0, 0);
        // Bounded: at most one lap of the pid space.
        for _ in 0..max {
            pid = if pid + 1 >= max { 300 } else { pid + 1 };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let link = self.shared.join(format!(".{name}.{pid}.tmp"));
            if std::os::unix::fs::symlink(&self.victim, &link).is_ok() {
                made += 1;
                self.planted.insert(pid);
            }
            free += 1;
            if free == PLANTED {
                break;
            }
        }
        made
    }

    fn planted_for(&self, pid: i32) -> bool {
        u32::try_from(pid).is_ok_and(|pid| self.planted.contains(&pid))
    }

    /// Every planted name is still a symlink to the victim.
    fn assert_symlinks_intact(&self) -> usize {
        let mut count = 0;
        for entry in fs::read_dir(&self.shared).expect("read shared dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let meta = fs::symlink_metadata(&path).expect("lstat");
                assert!(
                    meta.file_type().is_symlink(),
                    "{name} is no longer the planted symlink"
                );
                count += 1;
            }
        }
        count
    }

    fn start(&self, pid_file: &Path) -> (Server, Target) {
        let mut cmd = Command::new(server::example("echo"));
        cmd.args(["--listen", "127.0.0.1:0", "--pid-file"])
            .arg(pid_file)
            .env("RUST_LOG", "info,handoff=debug");
        let server = Server::spawn(cmd, self.dir.path());
        let target = Target::of(&server.wait_started());
        (server, target)
    }
}

/// The pid file is a regular file (not a symlink) with mode 0644 naming `pid`.
fn assert_pid_file(path: &Path, pid: i32, when: &str) {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{when}: lstat pid file: {e}"));
    assert!(
        meta.file_type().is_file(),
        "{when}: pid file is not a regular file"
    );
    assert_eq!(meta.mode() & 0o7777, 0o644, "{when}: pid file mode");
    let content = fs::read_to_string(path).expect("read pid file");
    assert_eq!(content, format!("{pid}\n"), "{when}: pid file content");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_symlinks_at_the_temporary_names_are_never_followed() {
    server::example("echo"); // built before planting: the build uses pids too
    let mut scene = Scene::new();
    let pid_file = scene.shared.join("server.pid");
    let mut planted = scene.plant("server.pid");
    let (server, target) = scene.start(&pid_file);
    let pid0 = server.first_pid;
    assert!(
        scene.planted_for(pid0),
        "pid {pid0} was not covered by the planted symlinks: the test would prove nothing"
    );
    assert_eq!(target.ask_pid().await, pid0);
    scene.assert_victim_intact("first generation ready");
    assert_pid_file(&pid_file, pid0, "first generation");

    let mut current = pid0;
    for i in 0..RESTARTS {
        planted += scene.plant("server.pid");
        let r = server.restart_and_wait_old();
        let (old, new) = (r.old, r.new);
        assert_eq!(old, current);
        assert!(
            scene.planted_for(new),
            "restart {i}: successor pid {new} was not covered by the planted symlinks"
        );
        scene.assert_victim_intact(&format!("restart {i}"));
        assert_pid_file(&pid_file, new, &format!("restart {i}"));
        assert_eq!(
            target.ask_pid().await,
            new,
            "restart {i}: the pid file names another process"
        );
        println!(
            "restart {i}: {old} -> {new} in {:?}; victim intact",
            r.ready
        );
        current = new;
    }

    server.terminate(current);
    scene.assert_victim_intact("after shutdown");
    assert!(
        fs::symlink_metadata(&pid_file).is_err(),
        "pid file left behind after shutdown"
    );
    let intact = scene.assert_symlinks_intact();
    assert_eq!(intact, planted, "planted symlinks removed or replaced");
    println!("{planted} symlinks planted, all intact; victim intact; pid file removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_at_the_pid_file_path_is_replaced_not_followed() {
    let scene = Scene::new();
    let pid_file = scene.shared.join("link.pid");
    std::os::unix::fs::symlink(&scene.victim, &pid_file).expect("plant symlink");
    let (server, target) = scene.start(&pid_file);
    let pid0 = server.first_pid;
    scene.assert_victim_intact("first generation ready");
    assert_pid_file(&pid_file, pid0, "first generation");

    let new = server.restart(Signal::HUP).new;
    scene.assert_victim_intact("after restart");
    assert_pid_file(&pid_file, new, "after restart");
    assert_eq!(target.ask_pid().await, new);

    // Between generations somebody points the path at the victim again: the
    // exiting generation neither reads through it nor removes the victim.
    server.expect_gone(pid0, T30);
    // ...once the new generation has seen its parent exit (it then makes sure
    // the pid file names it, replacing whatever is at the path): the event,
    // logged at debug level.
    let seen =
        |l: &str| l.contains(&format!("handoff{{pid={new} ")) && l.contains("event=ParentExited");
    let logged = process::poll_until(T10, Duration::from_millis(20), || {
        server.stderr().lines().any(seen).then_some(())
    });
    assert!(
        logged.is_some(),
        "{new} never logged that its parent exited\n{}",
        server.diagnostics()
    );
    fs::remove_file(&pid_file).expect("remove pid file");
    std::os::unix::fs::symlink(&scene.victim, &pid_file).expect("plant symlink again");
    server.terminate(new);
    scene.assert_victim_intact("after shutdown");
    assert!(
        fs::symlink_metadata(&pid_file).is_ok_and(|m| m.file_type().is_symlink()),
        "a symlink that is not ours was removed at shutdown"
    );
    println!("symlinked pid file path: replaced by a regular file; victim intact");
}
