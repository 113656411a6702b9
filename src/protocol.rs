//! The handover protocol between two generations, version 1.
//!
//! See `docs/PROTOCOL.md` for the full description. In short: listening
//! sockets sit at descriptors `3..3+LISTEN_FDS` (systemd's socket activation
//! format, named by `LISTEN_FDNAMES`), and a stream socket at
//! `HANDOFF_CHANNEL_FD` connects the child to its parent. The parent writes
//! the child's pid and a newline on it (standing in for `LISTEN_PID`, which a
//! `posix_spawn`ing parent cannot know in advance); the child writes one byte,
//! [`READY`], once it accepts; each side sees end-of-file when the other exits.

use crate::error::Error;
use std::os::fd::RawFd;

/// First descriptor number of the inherited sockets (after stdin, stdout, stderr).
pub const LISTEN_FDS_START: RawFd = 3;
/// Number of inherited sockets (systemd).
pub const ENV_LISTEN_FDS: &str = "LISTEN_FDS";
/// Pid the sockets are meant for (systemd).
pub const ENV_LISTEN_PID: &str = "LISTEN_PID";
/// Colon-separated names of the inherited sockets (systemd).
pub const ENV_LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
/// The pidfd inode id of the process the sockets are meant for (systemd 256
/// and later, beside `LISTEN_PID`). Not read; removed like the others so it
/// never reaches a child.
pub const ENV_LISTEN_PIDFDID: &str = "LISTEN_PIDFDID";
/// Protocol version spoken by the parent.
pub const ENV_PROTOCOL: &str = "HANDOFF_PROTOCOL";
/// Descriptor of the channel to the parent.
pub const ENV_CHANNEL_FD: &str = "HANDOFF_CHANNEL_FD";
/// Set by a supervisor for its workers: the version of the supervisor
/// exchange it speaks (docs/PROTOCOL.md, "Supervisor mode").
pub const ENV_SUPERVISOR: &str = "HANDOFF_SUPERVISOR";
/// The supervisor exchange version this build speaks.
pub const SUPERVISOR_VERSION: u32 = 1;
/// The child's generation (decimal, 2 or more; a supervisor's first worker
/// gets 1): one more than its parent's, or the supervisor's count of workers.
/// Read only beside [`ENV_CHANNEL_FD`]; absent, the child counts 1.
pub const ENV_GENERATION: &str = "HANDOFF_GENERATION";
/// The largest generation accepted: far more restarts than a service makes.
pub const MAX_GENERATION: u64 = 1 << 53;
/// The service's counters so far (the `metrics` feature's, carried across
/// generations): `OK:FAILED:LOST:DRAINED:CLOSED_IDLE:HAMMERED` in decimal.
/// Read only beside [`ENV_CHANNEL_FD`].
pub const ENV_COUNTS: &str = "HANDOFF_COUNTS";
/// Every variable of the protocol; all are removed from the environment once read.
pub const ALL_VARS: [&str; 9] = [
    ENV_LISTEN_FDS,
    ENV_LISTEN_PID,
    ENV_LISTEN_PIDFDID,
    ENV_LISTEN_FDNAMES,
    ENV_PROTOCOL,
    ENV_CHANNEL_FD,
    ENV_SUPERVISOR,
    ENV_GENERATION,
    ENV_COUNTS,
];
/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// The byte a child writes on the channel once it accepts connections.
pub const READY: u8 = b'R';
/// The byte a ready child sends its parent when it starts a shutdown (not a
/// handover): its exit is deliberate, not a crash to recover from.
pub const STOPPING: u8 = b'S';
/// The largest number of inherited sockets accepted.
pub const MAX_FDS: usize = 4096;
/// systemd's name for a socket passed without a name.
pub const UNNAMED: &str = "unknown";
/// The longest name in `LISTEN_FDNAMES` (systemd's limit).
pub const MAX_NAME_LEN: usize = 255;
/// How much of an invalid value an error quotes; the rest is summarised.
const MAX_QUOTED: usize = 64;

/// Where the inherited descriptors come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// systemd (or another socket activator) set `LISTEN_PID` to our pid, or
    /// left it unset with no handoff parent either (systemfd, for listenfd).
    Activator,
    /// A handoff parent; identity is confirmed over the channel at this fd.
    Parent {
        /// The channel descriptor number.
        channel_fd: RawFd,
    },
}

/// What the environment says this process inherited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Names of the sockets at `3..3 + names.len()`.
    pub names: Vec<String>,
    /// Who passed them.
    pub source: Source,
}

/// The outcome of reading the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// No sockets are meant for this process.
    Nothing,
    /// Sockets are present but systemd's rules say to ignore them.
    Ignored(String),
    /// Sockets to take.
    Take(Plan),
}

fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidEnv {
        var,
        value: quote(value),
        reason: reason.into(),
    }
}

/// `value` itself if short, else its first bytes and its length, so that a
/// 1 MiB variable does not become a 1 MiB error message.
fn quote(value: &str) -> String {
    if value.len() <= MAX_QUOTED {
        return value.to_owned();
    }
    let mut end = MAX_QUOTED;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &value[..end], value.len())
}

/// Reads the protocol variables through `get` for a process whose pid is `own_pid`.
///
/// Pure, so that every malformed combination can be tested without touching
/// the real environment.
pub fn parse(get: impl Fn(&str) -> Option<String>, own_pid: u32) -> Result<Parsed, Error> {
    let Some(fds) = get(ENV_LISTEN_FDS) else {
        return Ok(Parsed::Nothing);
    };
    let count: usize = match fds.trim().parse::<i64>() {
        Err(_) => return Err(invalid(ENV_LISTEN_FDS, &fds, "not a number")),
        Ok(n) if n < 0 => return Err(invalid(ENV_LISTEN_FDS, &fds, "negative")),
        Ok(n) if n as u64 > MAX_FDS as u64 => {
            return Err(invalid(
                ENV_LISTEN_FDS,
                &fds,
                format!("more than {MAX_FDS} descriptors"),
            ));
        }
        Ok(n) => n as usize,
    };

    if let Some(version) = get(ENV_PROTOCOL) {
        match version.trim().parse::<u32>() {
            Ok(VERSION) => {}
            _ => {
                return Err(invalid(
                    ENV_PROTOCOL,
                    &version,
                    format!("this build of handoff speaks protocol version {VERSION}"),
                ));
            }
        }
    }

    let source = match (get(ENV_LISTEN_PID), get(ENV_CHANNEL_FD)) {
        (Some(pid), _) => match pid.trim().parse::<u32>() {
            Err(_) => return Err(invalid(ENV_LISTEN_PID, &pid, "not a pid")),
            Ok(p) if p != own_pid => {
                return Ok(Parsed::Ignored(format!(
                    "{ENV_LISTEN_PID}={pid} names another process (this is {own_pid})"
                )));
            }
            Ok(_) => Source::Activator,
        },
        (None, Some(channel)) => {
            let channel_fd = match channel.trim().parse::<RawFd>() {
                Ok(fd) if fd >= LISTEN_FDS_START + count as RawFd => fd,
                Ok(_) => {
                    return Err(invalid(
                        ENV_CHANNEL_FD,
                        &channel,
                        "overlaps stdio or the listening sockets",
                    ));
                }
                Err(_) => return Err(invalid(ENV_CHANNEL_FD, &channel, "not a number")),
            };
            Source::Parent { channel_fd }
        }
        // No pid to check and no handoff parent: systemfd and other tools
        // for the listenfd crate pass sockets this way (a spawning process
        // cannot know the pid in advance), and listenfd takes them.
        (None, None) => Source::Activator,
    };

    let names = match get(ENV_LISTEN_FDNAMES) {
        None => vec![UNNAMED.to_owned(); count],
        Some(joined) => {
            // Counted and measured before anything is allocated per name.
            let held = if joined.is_empty() && count == 0 {
                0
            } else {
                joined.bytes().filter(|&b| b == b':').count() + 1
            };
            if held != count {
                return Err(invalid(
                    ENV_LISTEN_FDNAMES,
                    &joined,
                    format!("holds {held} names but {ENV_LISTEN_FDS}={count}"),
                ));
            }
            if let Some(long) = joined.split(':').find(|n| n.len() > MAX_NAME_LEN) {
                return Err(invalid(
                    ENV_LISTEN_FDNAMES,
                    &joined,
                    format!(
                        "a name of {} bytes (at most {MAX_NAME_LEN}): {}",
                        long.len(),
                        quote(long)
                    ),
                ));
            }
            joined.split(':').take(count).map(str::to_owned).collect()
        }
    };
    Ok(Parsed::Take(Plan { names, source }))
}

/// Checks that `name` can travel in `LISTEN_FDNAMES` (systemd's rules: 1 to 255
/// printable ASCII characters, no colon).
pub fn validate_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "longer than 255 bytes"
    } else if name.contains(':') {
        "contains ':', the separator of LISTEN_FDNAMES"
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        "must be printable ASCII without spaces"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Encodes the identity message the parent writes: the child's pid and `\n`.
pub fn identity_message(child_pid: u32) -> Vec<u8> {
    format!("{child_pid}\n").into_bytes()
}

/// Decodes the identity message; `None` if it is malformed.
pub fn parse_identity(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.strip_suffix('\n')?.parse().ok()
}

/// Parses `N` counts up to [`MAX_GENERATION`], `:`-separated (the value of
/// [`ENV_COUNTS`], or of a counts message); `var` names the input in errors.
pub fn parse_counts<const N: usize>(var: &'static str, value: &str) -> Result<[u64; N], Error> {
    let bad = || invalid(var, value, format!("expected {N} counts separated by ':'"));
    let mut counts = [0u64; N];
    let mut fields = value.split(':');
    for count in &mut counts {
        *count = fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .filter(|n| *n <= MAX_GENERATION)
            .ok_or_else(bad)?;
    }
    match fields.next() {
        Some(_) => Err(bad()),
        None => Ok(counts),
    }
}

/// Parses [`ENV_GENERATION`]: a decimal from 1 to [`MAX_GENERATION`].
pub fn parse_generation(value: &str) -> Result<u64, Error> {
    match value.parse::<u64>() {
        Ok(n) if (1..=MAX_GENERATION).contains(&n) => Ok(n),
        _ => Err(invalid(
            ENV_GENERATION,
            value,
            format!("expected a generation from 1 to {MAX_GENERATION}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)]) -> Result<Parsed, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(|k| map.get(k).cloned(), 100)
    }

    fn err_text(vars: &[(&str, &str)]) -> String {
        run(vars).unwrap_err().to_string()
    }

    #[test]
    fn nothing_without_listen_fds() {
        assert_eq!(run(&[]).unwrap(), Parsed::Nothing);
    }

    #[test]
    fn malformed_counts_name_the_variable() {
        for bad in ["abc", "-1", "99999999999", "1.5", ""] {
            let text = err_text(&[("LISTEN_FDS", bad), ("LISTEN_PID", "100")]);
            assert!(text.contains("LISTEN_FDS"), "{bad}: {text}");
        }
    }

    #[test]
    fn another_pid_is_ignored() {
        assert!(matches!(
            run(&[("LISTEN_FDS", "1"), ("LISTEN_PID", "7")]).unwrap(),
            Parsed::Ignored(_)
        ));
    }

    #[test]
    fn no_pid_and_no_parent_is_taken_as_listenfd_does() {
        assert_eq!(
            run(&[("LISTEN_FDS", "1")]).unwrap(),
            Parsed::Take(Plan {
                names: vec![UNNAMED.into()],
                source: Source::Activator
            })
        );
    }

    #[test]
    fn counts_are_bounded_decimals_else_an_error_naming_them() {
        assert_eq!(parse_counts(ENV_COUNTS, "5:1:0").unwrap(), [5, 1, 0]);
        for bad in [
            "",
            "1:2",
            "1:2:3:4",
            "a:b:c",
            "1:-2:3",
            "1:2:9007199254740993",
        ] {
            match parse_counts::<3>(ENV_COUNTS, bad) {
                Err(Error::InvalidEnv { var, .. }) => assert_eq!(var, ENV_COUNTS),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_generation_is_a_bounded_positive_decimal_else_an_error_naming_it() {
        assert_eq!(parse_generation("6").unwrap(), 6);
        assert_eq!(
            parse_generation("9007199254740992").unwrap(),
            MAX_GENERATION
        );
        for bad in [
            "0",
            "-1",
            "",
            "six",
            " 6",
            "9007199254740993",
            &"9".repeat(10_000),
        ] {
            match parse_generation(bad) {
                Err(Error::InvalidEnv { var, value, .. }) => {
                    assert_eq!(var, ENV_GENERATION);
                    assert!(value.len() < 100, "quoted in full: {}", value.len());
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_pid_is_an_error() {
        assert!(err_text(&[("LISTEN_FDS", "1"), ("LISTEN_PID", "x")]).contains("LISTEN_PID"));
    }

    #[test]
    fn names_must_match_count() {
        let text = err_text(&[
            ("LISTEN_FDS", "2"),
            ("LISTEN_PID", "100"),
            ("LISTEN_FDNAMES", "a"),
        ]);
        assert!(text.contains("LISTEN_FDNAMES"), "{text}");
        let ok = run(&[
            ("LISTEN_FDS", "2"),
            ("LISTEN_PID", "100"),
            ("LISTEN_FDNAMES", "a:b"),
        ])
        .unwrap();
        assert_eq!(
            ok,
            Parsed::Take(Plan {
                names: vec!["a".into(), "b".into()],
                source: Source::Activator
            })
        );
    }

    #[test]
    fn unnamed_sockets_get_systemds_default_name() {
        let Parsed::Take(plan) = run(&[("LISTEN_FDS", "2"), ("LISTEN_PID", "100")]).unwrap() else {
            panic!("expected sockets");
        };
        assert_eq!(plan.names, vec!["unknown", "unknown"]);
    }

    #[test]
    fn parent_channel_must_not_overlap() {
        let text = err_text(&[("LISTEN_FDS", "2"), ("HANDOFF_CHANNEL_FD", "4")]);
        assert!(text.contains("HANDOFF_CHANNEL_FD"), "{text}");
        let ok = run(&[
            ("LISTEN_FDS", "2"),
            ("HANDOFF_CHANNEL_FD", "5"),
            ("HANDOFF_PROTOCOL", "1"),
        ])
        .unwrap();
        assert!(matches!(
            ok,
            Parsed::Take(Plan {
                source: Source::Parent { channel_fd: 5 },
                ..
            })
        ));
    }

    #[test]
    fn unknown_protocol_version_is_refused() {
        let text = err_text(&[
            ("LISTEN_FDS", "0"),
            ("HANDOFF_CHANNEL_FD", "3"),
            ("HANDOFF_PROTOCOL", "2"),
        ]);
        assert!(text.contains("HANDOFF_PROTOCOL"), "{text}");
    }

    #[test]
    fn names_follow_systemd_rules() {
        assert!(validate_name("http").is_ok());
        for bad in ["", "a:b", "has space", &"x".repeat(256)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn identity_round_trips() {
        assert_eq!(parse_identity(&identity_message(4242)), Some(4242));
        assert_eq!(parse_identity(b"12"), None);
        assert_eq!(parse_identity(b"x\n"), None);
    }
}
