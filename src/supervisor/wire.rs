//! The supervisor–worker exchange (docs/PROTOCOL.md, "Supervisor mode"):
//! text messages, one per packet on a `SOCK_SEQPACKET` socket pair, the
//! worker's listeners passed up with `SCM_RIGHTS`.

use crate::telemetry;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

pub(crate) use crate::protocol::SUPERVISOR_VERSION as VERSION;
/// Most descriptors in one packet (the kernel allows 253).
const FDS_PER_PACKET: usize = 200;
/// Largest packet.
const MAX_PACKET: usize = 64 * 1024;

/// What a worker tells its supervisor.
#[derive(Debug)]
pub(crate) enum ToSupervisor {
    /// Some of the worker's listeners, by name (`L`, before `R`).
    Listeners(Vec<(String, OwnedFd)>),
    /// The worker accepts; it speaks this version (`R <version>`).
    Ready { version: Option<u32> },
    /// The worker asks for a restart (`H`).
    Restart,
    /// The worker accepts again, as it was told (`U`).
    Resumed,
    /// The worker stopped accepting, as it was told (`D`).
    Draining,
    /// What the worker's drains counted (`C drained:closed_idle:hammered`),
    /// sent once it is done: the supervisor adds it to the service's counters.
    Drained([u64; 3]),
}

/// What a supervisor tells its worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToWorker {
    /// Stop accepting and drain (`D <pid>`, `D -` on shutdown).
    Drain { successor: Option<u32> },
    /// Accept again (`U`).
    Resume,
    /// The answer to a restart request (`A ok <pid>`, `A err <reason>`).
    Answer(Result<u32, String>),
    /// The service's counters (`C ok:failed:lost:drained:closed_idle:hammered`),
    /// for the serving worker's metrics.
    Counts(telemetry::Counts),
    /// How long the last restart took (`T ok|failed SECONDS`), for the
    /// serving worker's histogram.
    Took(bool, std::time::Duration),
}

fn send(channel: BorrowedFd<'_>, text: &str, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other(
            "too many descriptors for one message",
        ));
    }
    loop {
        match rustix::net::sendmsg(
            channel,
            &[IoSlice::new(text.as_bytes())],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one packet: its text and descriptors (close-on-exec). `None` at
/// end-of-file.
fn recv(channel: BorrowedFd<'_>) -> std::io::Result<Option<(String, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_PACKET))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        match rustix::net::recvmsg(
            channel,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg,
            Err(rustix::io::Errno::INTR) => continue,
            // The other side closed with our last message unread: it is
            // gone, as at end-of-file.
            Err(rustix::io::Errno::CONNRESET) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    let fds: Vec<OwnedFd> = control
        .drain()
        .flat_map(|msg| match msg {
            RecvAncillaryMessage::ScmRights(fds) => fds.collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    if received.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&buf[..received.bytes]).into_owned();
    Ok(Some((text, fds)))
}

fn malformed(text: &str) -> std::io::Error {
    let shown: String = text.chars().take(64).collect();
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("malformed message {shown:?}"),
    )
}

/// Worker side: sends its listeners, then `R`.
pub(crate) fn send_ready(
    channel: BorrowedFd<'_>,
    listeners: &[(String, OwnedFd)],
) -> std::io::Result<()> {
    for chunk in listeners.chunks(FDS_PER_PACKET) {
        let mut text = String::from("L\n");
        for (name, _) in chunk {
            text.push_str(name);
            text.push('\n');
        }
        let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|(_, fd)| fd.as_fd()).collect();
        send(channel, &text, &fds)?;
    }
    send(channel, &format!("R {VERSION}\n"), &[])
}

/// Worker side: asks for a restart.
pub(crate) fn send_restart(channel: BorrowedFd<'_>) -> std::io::Result<()> {
    send(channel, "H\n", &[])
}

/// Worker side: says it stopped accepting (the answer to `D`).
pub(crate) fn send_draining(channel: BorrowedFd<'_>) -> std::io::Result<()> {
    send(channel, "D\n", &[])
}

/// Worker side: what its drains counted, once it is done.
pub(crate) fn send_drained(channel: BorrowedFd<'_>, counts: [u64; 3]) -> std::io::Result<()> {
    send(channel, &telemetry::drain_line(counts), &[])
}

/// Worker side: says it accepts again (the answer to `U`).
pub(crate) fn send_resumed(channel: BorrowedFd<'_>) -> std::io::Result<()> {
    send(channel, "U\n", &[])
}

/// Supervisor side: the next message from a worker; `None` at end-of-file.
pub(crate) fn recv_from_worker(channel: BorrowedFd<'_>) -> std::io::Result<Option<ToSupervisor>> {
    let Some((text, fds)) = recv(channel)? else {
        return Ok(None);
    };
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    let message = match head {
        "L" => {
            let names: Vec<String> = lines.map(str::to_owned).collect();
            if names.len() != fds.len() {
                return Err(malformed(&text));
            }
            ToSupervisor::Listeners(names.into_iter().zip(fds).collect())
        }
        "H" => ToSupervisor::Restart,
        "U" => ToSupervisor::Resumed,
        "D" => ToSupervisor::Draining,
        // A worker of protocol 1 without supervision says `R` alone.
        "R" => ToSupervisor::Ready { version: None },
        _ if head.starts_with("C ") => ToSupervisor::Drained(
            telemetry::parse_drain_line(head).ok_or_else(|| malformed(&text))?,
        ),
        _ => match head.strip_prefix("R ") {
            Some(version) => ToSupervisor::Ready {
                version: Some(version.trim().parse().map_err(|_| malformed(&text))?),
            },
            None => return Err(malformed(&text)),
        },
    };
    Ok(Some(message))
}

/// Supervisor side: tells a worker.
pub(crate) fn send_to_worker(channel: BorrowedFd<'_>, message: &ToWorker) -> std::io::Result<()> {
    let text = match message {
        ToWorker::Drain {
            successor: Some(pid),
        } => format!("D {pid}\n"),
        ToWorker::Drain { successor: None } => "D -\n".into(),
        ToWorker::Resume => "U\n".into(),
        ToWorker::Answer(Ok(pid)) => format!("A ok {pid}\n"),
        ToWorker::Answer(Err(reason)) => format!("A err {}\n", reason.replace('\n', " ")),
        ToWorker::Counts(c) => format!("C {}\n", c.encode()),
        ToWorker::Took(ok, took) => telemetry::took_line(*ok, *took),
    };
    send(channel, &text, &[])
}

/// Worker side: the next message from the supervisor; `None` at end-of-file.
pub(crate) fn recv_from_supervisor(channel: BorrowedFd<'_>) -> std::io::Result<Option<ToWorker>> {
    let Some((text, _fds)) = recv(channel)? else {
        return Ok(None);
    };
    let line = text.lines().next().unwrap_or_default();
    let message = if line == "U" {
        ToWorker::Resume
    } else if line == "D -" {
        ToWorker::Drain { successor: None }
    } else if let Some(pid) = line.strip_prefix("D ") {
        ToWorker::Drain {
            successor: Some(pid.parse().map_err(|_| malformed(&text))?),
        }
    } else if let Some(pid) = line.strip_prefix("A ok ") {
        ToWorker::Answer(Ok(pid.parse().map_err(|_| malformed(&text))?))
    } else if let Some(reason) = line.strip_prefix("A err ") {
        ToWorker::Answer(Err(reason.to_owned()))
    } else if let Some(took) = line.strip_prefix("T ") {
        let (ok, took) = telemetry::parse_took(took).ok_or_else(|| malformed(&text))?;
        ToWorker::Took(ok, took)
    } else if let Some(counts) = line.strip_prefix("C ") {
        let fields = crate::protocol::parse_counts(crate::protocol::ENV_COUNTS, counts)
            .map_err(|_| malformed(&text))?;
        ToWorker::Counts(telemetry::Counts::from_fields(fields))
    } else {
        return Err(malformed(&text));
    };
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    fn pair() -> (OwnedFd, OwnedFd) {
        rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    }

    #[test]
    fn listeners_and_messages_cross_both_ways() {
        let (worker, supervisor) = pair();
        let listeners: Vec<(String, OwnedFd)> = (0..250)
            .map(|i| {
                let fd = rustix::io::fcntl_dupfd_cloexec(&worker, 10).unwrap();
                (format!("l{i}"), fd)
            })
            .collect();
        send_ready(worker.as_fd(), &listeners).unwrap();
        send_restart(worker.as_fd()).unwrap();
        send_resumed(worker.as_fd()).unwrap();
        send_draining(worker.as_fd()).unwrap();
        send_drained(worker.as_fd(), [3, 2, 1]).unwrap();
        let mut got = Vec::new();
        loop {
            match recv_from_worker(supervisor.as_fd()).unwrap().unwrap() {
                ToSupervisor::Listeners(mut part) => got.append(&mut part),
                ToSupervisor::Ready { version } => {
                    assert_eq!(version, Some(VERSION));
                    break;
                }
                other => panic!("{other:?} before ready"),
            }
        }
        assert_eq!(got.len(), 250);
        assert_eq!(got[249].0, "l249");
        assert!(matches!(
            recv_from_worker(supervisor.as_fd()).unwrap(),
            Some(ToSupervisor::Restart)
        ));
        assert!(matches!(
            recv_from_worker(supervisor.as_fd()).unwrap(),
            Some(ToSupervisor::Resumed)
        ));
        assert!(matches!(
            recv_from_worker(supervisor.as_fd()).unwrap(),
            Some(ToSupervisor::Draining)
        ));
        assert!(matches!(
            recv_from_worker(supervisor.as_fd()).unwrap(),
            Some(ToSupervisor::Drained([3, 2, 1]))
        ));
        for message in [
            ToWorker::Counts(telemetry::Counts::from_fields([5, 1, 0, 7, 2, 1])),
            ToWorker::Took(true, std::time::Duration::from_micros(12_345)),
            ToWorker::Drain { successor: Some(7) },
            ToWorker::Drain { successor: None },
            ToWorker::Resume,
            ToWorker::Answer(Ok(9)),
            ToWorker::Answer(Err("no\nway".into())),
        ] {
            send_to_worker(supervisor.as_fd(), &message).unwrap();
            let back = recv_from_supervisor(worker.as_fd()).unwrap().unwrap();
            match &message {
                ToWorker::Answer(Err(_)) => {
                    assert_eq!(back, ToWorker::Answer(Err("no way".into())))
                }
                _ => assert_eq!(back, message),
            }
        }
        drop(supervisor);
        assert!(recv_from_supervisor(worker.as_fd()).unwrap().is_none());
    }

    #[test]
    fn a_peer_gone_with_a_message_unread_is_end_of_file() {
        let (worker, supervisor) = pair();
        send_to_worker(supervisor.as_fd(), &ToWorker::Resume).unwrap();
        drop(worker);
        assert!(recv_from_worker(supervisor.as_fd()).unwrap().is_none());
    }

    #[test]
    fn an_old_worker_and_garbage_are_told_apart() {
        let (worker, supervisor) = pair();
        rustix::net::send(&worker, b"R", SendFlags::empty()).unwrap();
        assert!(matches!(
            recv_from_worker(supervisor.as_fd()).unwrap(),
            Some(ToSupervisor::Ready { version: None })
        ));
        rustix::net::send(&worker, b"\x00junk", SendFlags::empty()).unwrap();
        assert!(recv_from_worker(supervisor.as_fd()).is_err());
    }
}
