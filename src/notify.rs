//! systemd's `sd_notify`: a datagram to `$NOTIFY_SOCKET`, when it is set.

use std::io;

use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

use crate::machine::Notify;

/// The text systemd expects for `notify`.
pub(crate) fn message(notify: &Notify) -> String {
    match notify {
        // systemd (Type=notify-reload) wants the time the reload began, on
        // the monotonic clock, in the same message.
        Notify::Reloading => format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()),
        Notify::Ready { main_pid } => format!("MAINPID={main_pid}\nREADY=1"),
        Notify::Stopping => "STOPPING=1".into(),
        Notify::Status(status) => format!("STATUS={}", status.replace('\n', " ")),
    }
}

fn monotonic_usec() -> u128 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u128 * 1_000_000 + now.tv_nsec as u128 / 1_000
}

/// Sends `text` to the service manager; does nothing without `NOTIFY_SOCKET`.
pub(crate) fn send(text: &str) -> io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let addr = match bytes.strip_prefix(b"@") {
        Some(abstract_name) => SocketAddrUnix::new_abstract_name(abstract_name)?,
        None => SocketAddrUnix::new(bytes)?,
    };
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::sendto(&fd, text.as_bytes(), SendFlags::NOSIGNAL, &addr)?;
    Ok(())
}
