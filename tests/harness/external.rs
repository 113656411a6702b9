//! Clients nobody on this project wrote, run as processes beside the
//! project's own client: Python's `http.client` (`tests/clients/
//! http_client.py`) and oha. Neither ever sends a request again; each
//! prints its counts, read back here.
//!
//! oha is looked up as `$OHA`, then on `PATH`. CI installs it
//! (`.ci/run`) and sets `REQUIRE_OHA=1`, so there a missing oha is
//! a failure; elsewhere a scenario says that it ran without it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::Reaped;

/// A client process, killed and reaped when dropped.
pub struct ClientProcess {
    child: Reaped,
    what: String,
}

impl ClientProcess {
    fn spawn(mut command: Command, what: String) -> ClientProcess {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        ClientProcess {
            child: Reaped(child),
            what,
        }
    }

    /// Waits (bounded) for the client to finish by itself; its standard
    /// output, once it exited successfully.
    pub fn finish(mut self, timeout: Duration) -> String {
        let status = self
            .child
            .wait_exit(timeout)
            .unwrap_or_else(|| panic!("{} still running after {timeout:?}", self.what));
        let read = |pipe: Option<&mut dyn std::io::Read>| {
            let mut text = String::new();
            pipe.map(|p| p.read_to_string(&mut text));
            text
        };
        let stdout = read(self.child.0.stdout.as_mut().map(|p| p as _));
        let stderr = read(self.child.0.stderr.as_mut().map(|p| p as _));
        assert!(
            status.success(),
            "{} failed: {status}\nstdout: {stdout}\nstderr: {stderr}",
            self.what
        );
        stdout
    }
}

/// `tests/clients/http_client.py`.
pub fn python_client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/http_client.py")
}

/// Starts Python's `http.client` against `addr` with `args` (see the
/// script's documentation), for at most `seconds`.
pub fn python(addr: SocketAddr, seconds: u64, args: &[&str]) -> ClientProcess {
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    let mut command = Command::new("python3");
    command
        .arg(python_client_script())
        .arg(addr.port().to_string())
        .args(["--seconds", &seconds.to_string()])
        .args(args);
    ClientProcess::spawn(command, format!("python http.client {args:?}"))
}

/// What `http_client.py` printed.
#[derive(Debug, Clone, Default)]
pub struct PythonCounts {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub line: String,
}

impl PythonCounts {
    /// Reads the JSON line the script prints (flat numbers, so no JSON
    /// crate: each field is found by name).
    pub fn parse(stdout: &str) -> PythonCounts {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no result line in {stdout:?}"))
            .to_string();
        PythonCounts {
            sent: number(&line, "sent"),
            ok: number(&line, "ok"),
            failed: number(&line, "failed"),
            line,
        }
    }

    /// How many responses of `size`-byte requests said `Connection: close`.
    pub fn closed_for(&self, size: usize) -> u64 {
        let Some(start) = self.line.find("\"close_by_size\": {") else {
            return 0;
        };
        let map = &self.line[start..];
        let map = &map[..map.find('}').unwrap_or(map.len())];
        number(map, &size.to_string())
    }
}

/// The number after `"key": ` in `text` (0 if absent).
fn number(text: &str, key: &str) -> u64 {
    let needle = format!("\"{key}\": ");
    let Some(at) = text.find(&needle) else {
        return 0;
    };
    text[at + needle.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// The oha binary, if there is one (see the module documentation).
pub fn oha() -> Option<PathBuf> {
    let found = std::env::var_os("OHA").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("oha"))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() && std::env::var_os("REQUIRE_OHA").is_some() {
        panic!("REQUIRE_OHA is set but oha is not installed (set OHA or PATH)");
    }
    found
}

/// Starts oha against `http://addr{path}` with `connections` keep-alive
/// HTTP/1.1 connections for `seconds`, sending `body` if any (as a POST).
pub fn start_oha(
    oha: &Path,
    addr: SocketAddr,
    path: &str,
    connections: usize,
    seconds: u64,
    body: Option<&str>,
) -> ClientProcess {
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    let mut command = Command::new(oha);
    // -w: requests in flight when the duration ends are waited for, not
    // counted as "aborted due to deadline" (oha's own cancellation).
    command.args([
        "--no-tui",
        "-w",
        "--output-format",
        "json",
        "-z",
        &format!("{seconds}s"),
        "-c",
        &connections.to_string(),
    ]);
    if let Some(body) = body {
        command.args(["-m", "POST", "-d", body]);
    }
    command.arg(format!("http://{addr}{path}"));
    ClientProcess::spawn(command, format!("oha {path}"))
}

/// What oha's JSON says: requests by status, and errors by message.
#[derive(Debug, Clone, Default)]
pub struct OhaCounts {
    pub ok: u64,
    pub other_status: u64,
    pub errors: u64,
    pub error_text: String,
}

impl OhaCounts {
    /// Reads oha's JSON report: `statusCodeDistribution` and
    /// `errorDistribution` are flat objects of counts.
    pub fn parse(json: &str) -> OhaCounts {
        let statuses = object(json, "statusCodeDistribution");
        let errors = object(json, "errorDistribution");
        let mut counts = OhaCounts::default();
        for (key, n) in pairs(&statuses) {
            if key == "200" {
                counts.ok += n;
            } else {
                counts.other_status += n;
            }
        }
        for (_, n) in pairs(&errors) {
            counts.errors += n;
        }
        counts.error_text = errors;
        counts
    }
}

/// The text of the flat object `"name": {...}`.
fn object(json: &str, name: &str) -> String {
    let needle = format!("\"{name}\":");
    let Some(at) = json.find(&needle) else {
        return String::new();
    };
    let rest = &json[at + needle.len()..];
    let Some(open) = rest.find('{') else {
        return String::new();
    };
    let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
    rest[open + 1..close].to_string()
}

/// `"key": n` pairs of a flat object's text; keys may contain anything but
/// an unescaped quote.
fn pairs(object: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut rest = object;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { break };
        let key = after[..end].to_string();
        let value = after[end + 1..].trim_start_matches([':', ' ']);
        let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
        out.push((key, digits.parse().unwrap_or(0)));
        rest = &value[digits.len()..];
    }
    out
}

#[test]
fn oha_report_is_read() {
    let json = r#"{"summary":{},"statusCodeDistribution":{"200":120,"503":2},"errorDistribution":{"connection closed before message completed":3,"a \"quoted\": 1":4}}"#;
    let counts = OhaCounts::parse(json);
    assert_eq!((counts.ok, counts.other_status, counts.errors), (120, 2, 7));
    let python = PythonCounts::parse(
        r#"{"sent": 9, "ok": 8, "failed": 1, "close_announced": 2, "close_by_size": {"10": 0, "307200": 2}, "pids": [1], "errors": []}"#,
    );
    assert_eq!((python.sent, python.ok, python.failed), (9, 8, 1));
    assert_eq!((python.closed_for(10), python.closed_for(307200)), (0, 2));
}
