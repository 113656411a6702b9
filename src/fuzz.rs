//! Property tests over every parser of untrusted input: the `LISTEN_*` and
//! `HANDOFF_*` variables, the identity message a child reads from its
//! parent, the readiness byte a parent reads from its child, listener names,
//! the pid file's content, and addresses.
//!
//! Each property runs a fixed number of cases ([`CASES`], [`CHANNEL_CASES`])
//! so the whole file finishes in seconds; the outsized inputs (a
//! `LISTEN_FDS` of 10^9, a 1 MiB `LISTEN_FDNAMES`) are explicit cases. The
//! properties: no panic, a typed error naming the variable, bounded error
//! messages, and results consistent with the input.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};

use crate::error::Error;
use crate::protocol::{self, Parsed, Source};

/// Cases per pure parser.
const CASES: u32 = 5_000;
/// Cases per channel reader (each makes a socketpair).
const CHANNEL_CASES: u32 = 2_000;
/// The pid the parsed environment belongs to.
const OWN_PID: u32 = 4242;
/// The longest error message any input may produce.
const MAX_MESSAGE: usize = 1024;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Keep the source tree clean: a failure prints its shrunk input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A variable's value: absent, a number (plausible or not), or any text.
fn value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        3 => (0i64..8).prop_map(|n| Some(n.to_string())),
        1 => any::<i64>().prop_map(|n| Some(n.to_string())),
        1 => any::<u64>().prop_map(|n| Some(format!(" {n}\n"))),
        1 => Just(Some(OWN_PID.to_string())),
        2 => ".{0,40}".prop_map(Some),
        1 => "[0-9:+-]{0,24}".prop_map(Some),
    ]
}

/// `LISTEN_FDNAMES`: absent, names joined by `:`, or any text.
fn names() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        3 => prop::collection::vec("[a-z0-9:]{0,8}", 0..8).prop_map(|v| Some(v.join(":"))),
        1 => ".{0,300}".prop_map(Some),
        1 => (0usize..600).prop_map(|n| Some("x".repeat(n))),
    ]
}

fn run(vars: &HashMap<&'static str, String>) -> Result<Parsed, Error> {
    protocol::parse(|k| vars.get(k).cloned(), OWN_PID)
}

fn check_parse(vars: &HashMap<&'static str, String>) -> Result<(), TestCaseError> {
    match run(vars) {
        Ok(Parsed::Nothing) => prop_assert!(!vars.contains_key(protocol::ENV_LISTEN_FDS)),
        Ok(Parsed::Ignored(why)) => prop_assert!(why.len() <= MAX_MESSAGE, "{why}"),
        Ok(Parsed::Take(plan)) => {
            let fds = vars[protocol::ENV_LISTEN_FDS].trim().parse::<usize>();
            prop_assert_eq!(fds, Ok(plan.names.len()));
            prop_assert!(plan.names.len() <= protocol::MAX_FDS);
            prop_assert!(
                plan.names
                    .iter()
                    .all(|n| n.len() <= protocol::MAX_NAME_LEN && !n.contains(':'))
            );
            if let Source::Parent { channel_fd } = plan.source {
                let first_free = protocol::LISTEN_FDS_START + plan.names.len() as i32;
                prop_assert!(channel_fd >= first_free, "channel {channel_fd} overlaps");
            }
        }
        Err(Error::InvalidEnv { var, .. }) if !protocol::ALL_VARS.contains(&var) => {
            prop_assert!(false, "error names an unknown variable {var}");
        }
        Err(err @ Error::InvalidEnv { .. }) => {
            let text = err.to_string();
            prop_assert!(text.len() <= MAX_MESSAGE, "{} bytes: {text}", text.len());
        }
        Err(other) => prop_assert!(false, "untyped error {other:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn listen_variables_never_panic_and_errors_name_the_variable(
        fds in value(),
        pid in value(),
        fdnames in names(),
        channel in value(),
        version in value(),
    ) {
        let vars: HashMap<&'static str, String> = [
            (protocol::ENV_LISTEN_FDS, fds),
            (protocol::ENV_LISTEN_PID, pid),
            (protocol::ENV_LISTEN_FDNAMES, fdnames),
            (protocol::ENV_CHANNEL_FD, channel),
            (protocol::ENV_PROTOCOL, version),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        check_parse(&vars)?;
    }

    #[test]
    fn well_formed_looking_environments_are_checked_name_by_name(
        count in 0usize..6,
        names in prop::collection::vec("[a-z0-9:]{0,4}|[a-z]{250,300}", 0..7),
        parent in any::<bool>(),
        channel_offset in -2i32..3,
    ) {
        let mut vars: HashMap<&'static str, String> = HashMap::new();
        vars.insert(protocol::ENV_LISTEN_FDS, count.to_string());
        vars.insert(protocol::ENV_LISTEN_FDNAMES, names.join(":"));
        if parent {
            let fd = protocol::LISTEN_FDS_START + count as i32 + channel_offset;
            vars.insert(protocol::ENV_CHANNEL_FD, fd.to_string());
            vars.insert(protocol::ENV_PROTOCOL, protocol::VERSION.to_string());
        } else {
            vars.insert(protocol::ENV_LISTEN_PID, OWN_PID.to_string());
        }
        check_parse(&vars)?;
    }

    #[test]
    fn identity_message_parses_only_a_decimal_pid_and_newline(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Some(pid) = protocol::parse_identity(&bytes) {
            let text = std::str::from_utf8(&bytes).unwrap();
            prop_assert_eq!(text.strip_suffix('\n').unwrap().trim_start_matches('+').trim_start_matches('0'),
                if pid == 0 { String::new() } else { pid.to_string() });
        }
    }

    #[test]
    fn identity_round_trips(pid in any::<u32>()) {
        prop_assert_eq!(protocol::parse_identity(&protocol::identity_message(pid)), Some(pid));
    }

    #[test]
    fn listener_names_follow_systemds_rules(name in prop_oneof![
        ".{0,20}",
        prop::collection::vec(0x20u8..0x7f, 250..260)
            .prop_map(|b| String::from_utf8(b).expect("ASCII")),
    ]) {
        let ok = protocol::validate_name(&name).is_ok();
        let rules = (1..=protocol::MAX_NAME_LEN).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        prop_assert_eq!(ok, rules);
    }

    #[test]
    fn pid_file_content_is_a_positive_decimal_or_nothing(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80),
        "[ \n0-9]{0,20}".prop_map(String::into_bytes),
    ]) {
        if let Some(pid) = crate::pidfile::parse_pid(&bytes) {
            prop_assert!(pid > 0);
            let text = std::str::from_utf8(&bytes).unwrap().trim();
            prop_assert_eq!(text.parse::<u32>(), Ok(pid));
        }
    }

    #[test]
    fn addresses_parse_or_name_the_input(text in prop_oneof![
        ".{0,40}",
        "(tcp://|udp://|unix:|unix://)?[0-9.:\\[\\]a-f/]{0,30}",
    ]) {
        match text.parse::<crate::Address>() {
            Ok(address) => prop_assert_eq!(address.to_string().parse::<crate::Address>().ok(), Some(address)),
            Err(Error::InvalidAddress { input, .. }) => prop_assert_eq!(input, text),
            Err(other) => prop_assert!(false, "untyped error {other:?}"),
        }
    }
}

fn pair() -> (OwnedFd, OwnedFd) {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair")
}

/// Writes `bytes` on one end, closes it, and gives the other end.
fn channel_with(bytes: &[u8]) -> OwnedFd {
    let (ours, theirs) = pair();
    let mut left = bytes;
    while !left.is_empty() {
        let n = rustix::net::send(&theirs, left, SendFlags::NOSIGNAL).expect("send");
        left = &left[n..];
    }
    ours
}

proptest! {
    #![proptest_config(config(CHANNEL_CASES))]

    #[test]
    fn readiness_is_the_first_byte_and_only_r_means_ready(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            (any::<u8>(), 0usize..65_536).prop_map(|(b, n)| vec![b; n]),
        ]
    ) {
        let channel = channel_with(&bytes);
        let outcome = crate::spawn::wait_ready(channel.as_fd());
        match (bytes.first(), outcome) {
            (None, crate::spawn::Readiness::Closed) => {}
            (Some(&protocol::READY), crate::spawn::Readiness::Ready) => {}
            (Some(&b), crate::spawn::Readiness::Malformed(got)) if b != protocol::READY => {
                prop_assert_eq!(got, b);
            }
            (first, outcome) => prop_assert!(false, "first byte {first:?} gave {outcome:?}"),
        }
    }

    #[test]
    fn identity_reader_is_bounded_and_agrees_with_the_parser(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80),
            "[0-9+]{0,12}\n?[0-9a-z\n]{0,4}".prop_map(String::into_bytes),
            (0usize..100_000).prop_map(|n| vec![b'7'; n]),
        ]
    ) {
        let channel = channel_with(&bytes);
        let started = Instant::now();
        let read = crate::inherited::read_identity(channel.as_fd());
        prop_assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        if let Ok(pid) = read {
            let line = bytes.split(|&b| b == b'\n').next().unwrap();
            let mut message = line.to_vec();
            message.push(b'\n');
            prop_assert_eq!(protocol::parse_identity(&message), Some(pid));
        }
    }
}

#[test]
fn outsized_variables_give_typed_errors_quickly() {
    let mib = 1 << 20;
    let cases: Vec<(&str, Vec<(&'static str, String)>)> = vec![
        (
            "LISTEN_FDS=10^9",
            vec![(protocol::ENV_LISTEN_FDS, "1000000000".into())],
        ),
        (
            "LISTEN_FDS of 1 MiB of digits",
            vec![(protocol::ENV_LISTEN_FDS, "9".repeat(mib))],
        ),
        (
            "1 MiB of separators",
            vec![
                (protocol::ENV_LISTEN_FDS, "1".into()),
                (protocol::ENV_LISTEN_FDNAMES, ":".repeat(mib)),
            ],
        ),
        (
            "one 1 MiB name",
            vec![
                (protocol::ENV_LISTEN_FDS, "1".into()),
                (protocol::ENV_LISTEN_FDNAMES, "x".repeat(mib)),
            ],
        ),
        (
            "4096 names of 256 bytes",
            vec![
                (protocol::ENV_LISTEN_FDS, protocol::MAX_FDS.to_string()),
                (
                    protocol::ENV_LISTEN_FDNAMES,
                    vec!["y".repeat(256); protocol::MAX_FDS].join(":"),
                ),
            ],
        ),
        (
            "HANDOFF_CHANNEL_FD of 1 MiB",
            vec![
                (protocol::ENV_LISTEN_FDS, "1".into()),
                (protocol::ENV_CHANNEL_FD, "5".repeat(mib)),
            ],
        ),
    ];
    for (what, vars) in cases {
        let mut vars: HashMap<&'static str, String> = vars.into_iter().collect();
        vars.entry(protocol::ENV_LISTEN_PID)
            .or_insert_with(|| OWN_PID.to_string());
        if vars.contains_key(protocol::ENV_CHANNEL_FD) {
            vars.remove(protocol::ENV_LISTEN_PID);
        }
        let started = Instant::now();
        let err = run(&vars).expect_err(what);
        let took = started.elapsed();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidEnv { .. }), "{what}: {err:?}");
        assert!(text.len() <= MAX_MESSAGE, "{what}: {} bytes", text.len());
        assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
        check_parse(&vars).unwrap();
    }
}

#[test]
fn the_largest_valid_environment_is_accepted() {
    let names: Vec<String> = (0..protocol::MAX_FDS)
        .map(|i| format!("{i:0>255}"))
        .collect();
    let vars: HashMap<&'static str, String> = [
        (protocol::ENV_LISTEN_FDS, protocol::MAX_FDS.to_string()),
        (protocol::ENV_LISTEN_PID, OWN_PID.to_string()),
        (protocol::ENV_LISTEN_FDNAMES, names.join(":")),
    ]
    .into_iter()
    .collect();
    let Ok(Parsed::Take(plan)) = run(&vars) else {
        panic!("the largest valid environment was refused");
    };
    assert_eq!(plan.names, names);
}
