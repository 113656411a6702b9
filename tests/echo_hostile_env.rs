//! Guarantee: a hostile or broken socket-activation environment never makes
//! the server panic or hang. A python3 wrapper sets up the environment and
//! fd 3, then `os.execv`s the echo binary (same pid, so `LISTEN_PID` can name
//! the server itself). Expected, per case:
//! - validation cases (LISTEN_PID is the server's own pid, so systemd's rules
//!   say the variables are meant for it): exit with a non-zero code and a
//!   message on stderr naming the variable or the fd;
//! - cases systemd says to ignore (LISTEN_PID of another process, LISTEN_PID
//!   unset, LISTEN_FDS=0): bind fresh and serve normally;
//! - the control case (a valid inherited listener): serve on it;
//! - unusable sockets passed without a name (matched by address only): refuse,
//!   or leave them alone and bind fresh, but never serve on them.
//!
//! Never `panicked` on stderr, never a hang. Each case prints what it did.

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod process;
    pub mod server;
}

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use harness::client::{RawConn, Target};
use harness::process::{Signal, T10};
use harness::server::{self, Server, Serving};

const WRAPPER: &str = r#"
import os, socket, sys
binary = sys.argv[1]
args = sys.argv[2:]
case = os.environ.pop('HOSTILE_CASE')
scratch = os.environ.pop('HOSTILE_SCRATCH')
LISTENER_NAME = os.environ.pop('HOSTILE_LISTENER_NAME')
for k in ('LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'):
    os.environ.pop(k, None)
me = str(os.getpid())
keep = []

def put3(fd, target=3):
    if fd != target:
        os.dup2(fd, target)
    os.set_inheritable(target, True)

def listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', 0))
    s.listen(64)
    keep.append(s)
    put3(s.fileno())
    port = s.getsockname()[1]
    print('wrapper fd3 port %d' % port, flush=True)
    return port

for fd in (3, 4):
    try:
        os.close(fd)
    except OSError:
        pass

env = os.environ
if case == 'fds_abc':
    env.update(LISTEN_FDS='abc', LISTEN_PID=me)
elif case == 'fds_minus_one':
    env.update(LISTEN_FDS='-1', LISTEN_PID=me)
elif case == 'fds_huge':
    env.update(LISTEN_FDS='99999999999', LISTEN_PID=me)
elif case == 'fds_zero':
    env.update(LISTEN_FDS='0', LISTEN_PID=me)
elif case == 'fd3_closed':
    env.update(LISTEN_FDS='1', LISTEN_PID=me)
elif case == 'fds_two_only_one_open':
    listener()
    env.update(LISTEN_FDS='2', LISTEN_PID=me)
elif case == 'pid_other_process':
    listener()
    env.update(LISTEN_FDS='1', LISTEN_PID=str(os.getppid()))
elif case == 'pid_unset':
    # systemfd's way (for the listenfd crate): no LISTEN_PID, no handoff parent.
    port = listener()
    env.update(LISTEN_FDS='1')
    args += ['--listen', '127.0.0.1:%d' % port]
elif case == 'pid_garbage':
    listener()
    env.update(LISTEN_FDS='1', LISTEN_PID='not-a-pid')
elif case == 'control_inherited':
    port = listener()
    env.update(LISTEN_FDS='1', LISTEN_PID=me)
    args += ['--listen', '127.0.0.1:%d' % port]
elif case == 'systemd_256':
    # As systemd 256 and later activate: with LISTEN_PIDFDID too.
    port = listener()
    env.update(LISTEN_FDS='1', LISTEN_PID=me, LISTEN_PIDFDID='4242', LISTEN_FDNAMES=LISTENER_NAME)
    args += ['--listen', '127.0.0.1:%d' % port]
elif case == 'fdnames_mismatch':
    port = listener()
    env.update(LISTEN_FDS='1', LISTEN_PID=me, LISTEN_FDNAMES='one:two')
    args += ['--listen', '127.0.0.1:%d' % port]
elif case == 'fd3_regular_file':
    f = open(os.path.join(scratch, 'regular-file'), 'w+')
    keep.append(f)
    put3(f.fileno())
    env.update(LISTEN_FDS='1', LISTEN_PID=me)
elif case in ('fd3_udp', 'fd3_udp_unnamed'):
    # Pick a port that is free for TCP (a UDP ephemeral port may collide
    # with a TCP port in use), then bind the UDP socket to it.
    for attempt in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(('127.0.0.1', 0))
        port = t.getsockname()[1]
        t.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(('127.0.0.1', port))
            break
        except OSError:
            s.close()
    else:
        sys.exit('no port free for both TCP and UDP')
    keep.append(s)
    put3(s.fileno())
    env.update(LISTEN_FDS='1', LISTEN_PID=me)
    if case == 'fd3_udp':
        env['LISTEN_FDNAMES'] = LISTENER_NAME
    else:
        # Unnamed: matched by address, so ask for TCP on the very same address.
        args += ['--listen', '127.0.0.1:%d' % s.getsockname()[1]]
elif case in ('fd3_tcp_not_listening', 'fd3_tcp_not_listening_unnamed'):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    keep.append(s)
    put3(s.fileno())
    env.update(LISTEN_FDS='1', LISTEN_PID=me)
    if case == 'fd3_tcp_not_listening':
        env['LISTEN_FDNAMES'] = LISTENER_NAME
else:
    sys.exit('unknown case ' + case)

if not any(a == '--listen' for a in args):
    args += ['--listen', '127.0.0.1:0']
os.execv(binary, [binary] + args)
"#;

/// The name the echo example gives its first listener (`echo0`, `echo1`, ...
/// in `--listen` order). Passing fd 3 under this name in `LISTEN_FDNAMES`
/// makes the TCP listener claim it, so its kind must be checked.
const LISTENER_NAME: &str = "echo0";

#[derive(Debug)]
enum Expect {
    /// Exit non-zero; stderr names one of these.
    Reject(&'static [&'static str]),
    /// Serve normally on a freshly bound port (not the wrapper's fd 3 port).
    ServeFresh,
    /// Serve on the inherited socket (the wrapper's fd 3 port).
    ServeInherited,
    /// An unnamed socket that no listener can use: either refuse as in
    /// `Reject`, or leave it alone and serve on a fresh socket (never on fd 3).
    RejectOrIgnore(&'static [&'static str]),
}

/// How a start ended.
#[derive(Debug)]
enum Startup {
    Serving(Serving),
    Exited(ExitStatus),
    Hung,
}

/// Waits (bounded) until the server serves, or the process exits.
fn startup(server: &Server, timeout: Duration) -> Startup {
    let deadline = Instant::now() + timeout;
    let serving = |wait| {
        server
            .wait_line(0, wait, |l| Serving::parse(l).is_some())
            .and_then(|l| Serving::parse(&l))
    };
    loop {
        if let Some(s) = serving(Duration::from_millis(20)) {
            return Startup::Serving(s);
        }
        if let Some(status) = server.try_wait_child() {
            // A serving line may still be in the pipe.
            return serving(Duration::from_millis(200))
                .map_or(Startup::Exited(status), Startup::Serving);
        }
        if Instant::now() >= deadline {
            return Startup::Hung;
        }
    }
}

/// Proves that the server serves at `serving`: an echo, and `pid`.
fn serves(serving: &Serving) -> i32 {
    let target = Target::of(serving);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut conn = RawConn::connect(&target).await;
        conn.send_raw(b"hostile?\n").await.expect("send a line");
        let echo = conn.reply().await.expect("its echo");
        assert_eq!(echo.text(), "hostile?", "echo over {}", serving.url);
        target.ask_pid().await
    })
}

fn run_case(case: &str, expect: Expect) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(WRAPPER).arg(server::example("echo"));
    cmd.args([
        "--stop-timeout",
        "2",
        "--kill-timeout",
        "2",
        "--ready-timeout",
        "5",
    ]);
    cmd.env("HOSTILE_CASE", case)
        .env("HOSTILE_SCRATCH", dir.path());
    cmd.env("HOSTILE_LISTENER_NAME", LISTENER_NAME);
    cmd.env_remove("RUST_BACKTRACE");
    let server = Server::spawn(cmd, dir.path());
    let pid = server.first_pid;

    let startup = startup(&server, T10);
    let fd3_port: Option<u16> = server
        .lines()
        .iter()
        .find_map(|l| l.strip_prefix("wrapper fd3 port ")?.trim().parse().ok());
    let port = |s: &Serving| Target::of(s).socket_addr().port();

    let did = match &startup {
        Startup::Hung => panic!(
            "{case}: neither serving nor exited within 10 s (hang)\n{}",
            server.diagnostics()
        ),
        Startup::Exited(status) => {
            let stderr = server.stderr();
            format!(
                "exited {status:?}; stderr: {:?}",
                stderr.lines().take(3).collect::<Vec<_>>()
            )
        }
        Startup::Serving(s) => {
            assert_eq!(serves(s), pid, "{case}: `pid` over {}", s.url);
            server.signal(pid, Signal::TERM);
            let status = server.wait_child_exit(T10);
            let status = status
                .unwrap_or_else(|| panic!("{case}: served, then still running 10 s after SIGTERM"));
            format!(
                "served on {} (wrapper fd 3 port {fd3_port:?}); after SIGTERM exited {status:?}",
                s.url
            )
        }
    };
    println!("hostile env {case}: expected {expect:?}; did: {did}");

    let stderr = server.stderr();
    assert!(
        !stderr.contains("panicked"),
        "{case}: panic on stderr:\n{stderr}"
    );
    match (expect, startup) {
        (Expect::Reject(words) | Expect::RejectOrIgnore(words), Startup::Exited(status)) => {
            assert!(
                status.code().is_some_and(|c| c != 0),
                "{case}: expected a non-zero exit code, got {status:?}\nstderr:\n{stderr}"
            );
            assert!(
                words.iter().any(|w| stderr.contains(w)),
                "{case}: stderr does not name any of {words:?}:\n{stderr}"
            );
        }
        (Expect::Reject(words), Startup::Serving(s)) => {
            panic!(
                "{case}: expected a refusal naming {words:?}, but it served on {}\nstderr:\n{stderr}",
                s.url
            )
        }
        (Expect::ServeFresh | Expect::RejectOrIgnore(_), Startup::Serving(s)) => {
            assert_ne!(
                Some(port(&s)),
                fd3_port,
                "{case}: used the inherited fd 3 although it must be ignored"
            );
        }
        (Expect::ServeInherited, Startup::Serving(s)) => {
            assert!(fd3_port.is_some());
            assert_eq!(
                Some(port(&s)),
                fd3_port,
                "{case}: did not serve on the inherited socket"
            );
        }
        (Expect::ServeFresh | Expect::ServeInherited, Startup::Exited(status)) => {
            panic!("{case}: expected to serve normally, but exited {status:?}\nstderr:\n{stderr}")
        }
        (_, Startup::Hung) => unreachable!(),
    }
}

const FD3: &[&str] = &["fd 3", "fd=3", "fd #3", "fd(3)", "descriptor 3"];

#[test]
fn listen_fds_not_a_number() {
    run_case("fds_abc", Expect::Reject(&["LISTEN_FDS"]));
}

#[test]
fn listen_fds_negative() {
    run_case("fds_minus_one", Expect::Reject(&["LISTEN_FDS"]));
}

#[test]
fn listen_fds_overflows() {
    run_case("fds_huge", Expect::Reject(&["LISTEN_FDS"]));
}

#[test]
fn listen_fds_zero_binds_fresh() {
    run_case("fds_zero", Expect::ServeFresh);
}

#[test]
fn listen_fds_names_a_closed_fd() {
    run_case("fd3_closed", Expect::Reject(FD3));
}

#[test]
fn listen_fds_counts_more_fds_than_are_open() {
    run_case(
        "fds_two_only_one_open",
        Expect::Reject(&["fd 4", "fd=4", "fd #4", "fd(4)", "descriptor 4"]),
    );
}

#[test]
fn listen_pid_of_another_process_is_ignored() {
    run_case("pid_other_process", Expect::ServeFresh);
}

/// systemfd (for the listenfd crate) sets `LISTEN_FDS` without `LISTEN_PID`;
/// with no handoff parent either, the socket is taken, as listenfd does.
#[test]
fn listen_pid_unset_is_taken_as_listenfd_does() {
    run_case("pid_unset", Expect::ServeInherited);
}

/// systemd's sd_listen_fds treats an unparsable LISTEN_PID as an error; a
/// server may also simply not consider it its own pid. Either way it must
/// not panic or hang, and must not use fd 3.
#[test]
fn listen_pid_garbage_is_ignored_or_named() {
    run_case("pid_garbage", Expect::RejectOrIgnore(&["LISTEN_PID"]));
}

#[test]
fn control_valid_inherited_listener_is_used() {
    run_case("control_inherited", Expect::ServeInherited);
}

/// Activated as systemd 256 does (`LISTEN_PIDFDID` too), then restarted: the
/// successor gets the sockets under handoff's protocol, and none of
/// systemd's variables, which name the first process, reach it.
#[test]
fn systemd_variables_do_not_leak_to_the_successor() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pid_file = dir.path().join("echo.pid");
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(WRAPPER).arg(server::example("echo"));
    cmd.arg("--pid-file").arg(&pid_file);
    cmd.env("HOSTILE_CASE", "systemd_256")
        .env("HOSTILE_SCRATCH", dir.path())
        .env("HOSTILE_LISTENER_NAME", LISTENER_NAME);
    let server = Server::spawn(cmd, dir.path());
    let Startup::Serving(first) = startup(&server, T10) else {
        panic!("did not serve\n{}", server.diagnostics());
    };
    let fd3_port: Option<u16> = server
        .lines()
        .iter()
        .find_map(|l| l.strip_prefix("wrapper fd3 port ")?.trim().parse().ok());
    assert_eq!(
        Some(Target::of(&first).socket_addr().port()),
        fd3_port,
        "serves on the activated socket"
    );
    let r = server.restart(Signal::HUP);
    let environ = std::fs::read(format!("/proc/{}/environ", r.new))
        .unwrap_or_else(|e| panic!("the successor's environment: {e}"));
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let leaked: Vec<&String> = vars
        .iter()
        .filter(|v| v.starts_with("LISTEN_PID=") || v.starts_with("LISTEN_PIDFDID="))
        .collect();
    assert!(leaked.is_empty(), "leaked to the successor: {leaked:?}");
    assert!(
        vars.iter().any(|v| v == "LISTEN_FDS=1"),
        "the successor gets the socket by handoff's protocol: {vars:?}"
    );
    println!(
        "successor {} of an activated {}: LISTEN_FDS=1, no LISTEN_PID, no LISTEN_PIDFDID",
        r.new, r.old
    );
    server.terminate(r.new);
}

#[test]
fn listen_fdnames_count_mismatch() {
    run_case("fdnames_mismatch", Expect::Reject(&["LISTEN_FDNAMES"]));
}

#[test]
fn fd3_is_a_regular_file() {
    run_case("fd3_regular_file", Expect::Reject(FD3));
}

/// fd 3 is passed under the TCP listener's name, so a TCP listener is
/// expected there: a UDP socket must be refused.
#[test]
fn fd3_is_a_udp_socket() {
    run_case("fd3_udp", Expect::Reject(FD3));
}

/// fd 3 is passed under the TCP listener's name: a TCP socket that is bound
/// but not listening must be refused.
#[test]
fn fd3_is_a_tcp_socket_that_is_not_listening() {
    run_case("fd3_tcp_not_listening", Expect::Reject(FD3));
}

/// Unnamed UDP fd 3 at the very address `--listen` asks TCP for: the server
/// must not use it as a TCP listener (refusing or binding fresh are both fine).
#[test]
fn fd3_is_an_unnamed_udp_socket_at_the_listen_address() {
    run_case("fd3_udp_unnamed", Expect::RejectOrIgnore(FD3));
}

/// Unnamed non-listening TCP fd 3: must not be served on.
#[test]
fn fd3_is_an_unnamed_tcp_socket_that_is_not_listening() {
    run_case("fd3_tcp_not_listening_unnamed", Expect::RejectOrIgnore(FD3));
}
