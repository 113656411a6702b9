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

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

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
fn open_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    dir
}

fn start(dir: &TempDir, sock: &Path, extra: &[&str]) -> (Server, Target) {
    let listen = format!("unix:{}", sock.display());
    let mut args = vec!["--listen", &listen];
    args.extend_from_slice(extra);
    let server = Server::start(&echo_bin(), dir, &args);
    let target = server.wait_serving(0, 1, T30).remove(0).target();
    (server, target)
}

fn file_of(sock: &Path) -> (u32, u32) {
    let meta = fs::symlink_metadata(sock).expect("lstat socket");
    assert!(is_socket(sock), "{} is not a socket", sock.display());
    (meta.mode() & 0o7777, meta.uid())
}

#[test]
fn mode_0666_lets_another_user_connect() {
    let dir = open_dir("ux666");
    let sock = dir.join("echo.sock");
    let (server, _) = start(&dir, &sock, &["--unix-mode", "666"]);
    assert_eq!(file_of(&sock), (0o666, 0));
    let got = connect_as(NOBODY, &sock);
    assert_eq!(got, format!("connected pid={}", server.first_pid));
    println!("mode 0666: nobody -> {got}");
}

#[test]
fn mode_0600_refuses_another_user_and_survives_a_restart() {
    let dir = open_dir("ux600");
    let sock = dir.join("echo.sock");
    let (server, target) = start(&dir, &sock, &["--unix-mode", "600"]);
    let pid0 = server.wait_pid_file(T30);
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

    let (_, new, _) = server.restart(Signal::HUP, T30);
    assert!(server.wait_exit(pid0, T30), "{pid0} did not exit");
    assert_eq!(file_of(&sock), (0o600, 0), "after a restart");
    assert_eq!(
        connect_as(NOBODY, &sock),
        "refused EACCES",
        "after a restart"
    );
    assert_eq!(ask_pid(&target), new, "the owner, after a restart");
    println!("after SIGHUP: same file, nobody refused, root served by {new}");
}

#[test]
fn owner_65534_with_mode_0600_lets_that_user_connect() {
    let dir = open_dir("uxown");
    let sock = dir.join("echo.sock");
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
