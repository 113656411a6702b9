//! Guarantee: `--unix-mode`/`--unix-owner` decide who may connect to a fresh
//! Unix listener, and a restart keeps the socket file as it is.
//!
//! Tests run as root, which bypasses file permissions, so "another user" is a
//! python3 client started with uid and gid 65534 (nobody). Per case:
//! - mode 0666 (control): nobody connects, so the environment lets that user
//!   reach the socket at all and a refusal below is the mode's doing;
//! - mode 0600: the file is `srw-------` root's; nobody gets EACCES, root
//!   (the owner) is served; after a SIGHUP restart the file is unchanged,
//!   nobody is still refused and root is served by the successor;
//! - mode 0600, owner 65534: the file is nobody's, and nobody connects.

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod process;
    pub mod server;
}

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use harness::client::Target;
use harness::process::{Signal, T30};
use harness::server::{self, Server};
use tempfile::TempDir;

const NOBODY: u32 = 65534;

/// Connects to `argv[1]`, asks `pid`, prints one line: `connected pid=N` or
/// `refused ERRNO_NAME`.
const CLIENT: &str = r#"
import errno, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
    s.sendall(b"pid\n")
    print("connected " + s.recv(64).decode().strip(), flush=True)
except OSError as e:
    print("refused " + errno.errorcode.get(e.errno, str(e.errno)), flush=True)
"#;

/// A python3 the nobody user can execute (a pyenv shim under /root is not).
fn python_for_nobody() -> PathBuf {
    ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// What `uid` gets when it connects to `sock` (bounded: the client times out
/// after 5 s, and is killed and reaped by `output()` returning).
fn connect_as(uid: u32, sock: &Path) -> String {
    let started = Instant::now();
    let out = Command::new(python_for_nobody())
        .args(["-c", CLIENT])
        .arg(sock)
        .uid(uid)
        .gid(uid)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("run the python3 client");
    assert!(
        out.status.success(),
        "client as uid {uid} failed ({}) after {:?}: {}",
        out.status,
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A scratch directory everybody may traverse (the socket's file mode, not
/// the directory, is under test).
fn open_dir() -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    dir
}

fn start(dir: &TempDir, sock: &Path, extra: &[&str]) -> (Server, Target) {
    let listen = format!("unix:{}", sock.display());
    let mut args = vec!["--listen", &listen];
    args.extend_from_slice(extra);
    let server = Server::start(&server::example("echo"), dir.path(), &args);
    let target = Target::of(&server.wait_started());
    (server, target)
}

fn file_of(sock: &Path) -> (u32, u32) {
    let meta = fs::symlink_metadata(sock).expect("lstat socket");
    assert!(
        meta.file_type().is_socket(),
        "{} is not a socket",
        sock.display()
    );
    (meta.mode() & 0o7777, meta.uid())
}

#[test]
fn mode_0666_lets_another_user_connect() {
    let dir = open_dir();
    let sock = dir.path().join("echo.sock");
    let (server, _) = start(&dir, &sock, &["--unix-mode", "666"]);
    assert_eq!(file_of(&sock), (0o666, 0));
    let got = connect_as(NOBODY, &sock);
    assert_eq!(got, format!("connected pid={}", server.first_pid));
    println!("mode 0666: nobody -> {got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_0600_refuses_another_user_and_survives_a_restart() {
    let dir = open_dir();
    let sock = dir.path().join("echo.sock");
    let (server, target) = start(&dir, &sock, &["--unix-mode", "600"]);
    let pid0 = server.first_pid;
    assert_eq!(
        file_of(&sock),
        (0o600, 0),
        "mode and owner of a fresh socket"
    );
    let nobody = connect_as(NOBODY, &sock);
    assert_eq!(nobody, "refused EACCES", "another user");
    assert_eq!(
        connect_as(0, &sock),
        format!("connected pid={pid0}"),
        "the owner"
    );
    println!("mode 0600: nobody -> {nobody}; root -> served by {pid0}");

    let new = server.restart(Signal::HUP).new;
    server.expect_gone(pid0, T30);
    assert_eq!(file_of(&sock), (0o600, 0), "after a restart");
    assert_eq!(
        connect_as(NOBODY, &sock),
        "refused EACCES",
        "after a restart"
    );
    assert_eq!(target.ask_pid().await, new, "the owner, after a restart");
    println!("after SIGHUP: same file, nobody refused, root served by {new}");
}

#[test]
fn owner_65534_with_mode_0600_lets_that_user_connect() {
    let dir = open_dir();
    let sock = dir.path().join("echo.sock");
    let (server, _) = start(
        &dir,
        &sock,
        &[
            "--unix-mode",
            "0600",
            "--unix-owner",
            "65534",
            "--unix-group",
            "65534",
        ],
    );
    assert_eq!(file_of(&sock), (0o600, NOBODY));
    let gid = fs::symlink_metadata(&sock).expect("lstat").gid();
    assert_eq!(gid, NOBODY, "--unix-group 65534");
    let got = connect_as(NOBODY, &sock);
    assert_eq!(got, format!("connected pid={}", server.first_pid));
    println!("mode 0600 owner nobody: nobody -> {got}");
}
