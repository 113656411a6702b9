//! Guarantee: UDP sockets are handed over too. A UDP echo socket keeps its
//! port across 5 restarts, every datagram sent during the restarts is
//! answered (one at a time, so a lost one shows as a timeout), and after each
//! restart the new generation answers on the same socket.

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod process;
    pub mod server;
}

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::process::T30;
use harness::server::{self, Server, Serving};

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket
}

fn ask(socket: &UdpSocket, target: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(payload, target).ok()?;
    let mut buf = [0u8; 256];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn ask_pid(socket: &UdpSocket, target: SocketAddr) -> i32 {
    let reply = String::from_utf8(ask(socket, target, b"pid").expect("a pid reply")).unwrap();
    reply
        .trim()
        .strip_prefix("pid=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{reply:?}"))
}

#[test]
fn udp_socket_survives_restarts() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args = ["--listen", "127.0.0.1:0", "--listen", "udp://127.0.0.1:0"];
    let server = Server::start(&server::example("echo"), dir.path(), &args);
    server.wait_started();
    let udp = server
        .wait_line(0, T30, |l| l.starts_with("serving udp://"))
        .expect("a udp serving line");
    let url = Serving::parse(&udp).expect("a serving line").url;
    let target: SocketAddr = url["udp://".len()..].parse().unwrap();
    let socket = client();
    assert_eq!(ask_pid(&socket, target), server.first_pid);

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socket = client();
            let (mut answered, mut lost) = (0u32, 0u32);
            let deadline = Instant::now() + Duration::from_secs(60);
            for i in 0..200_000u32 {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                let payload = format!("datagram {i}");
                match ask(&socket, target, payload.as_bytes()) {
                    Some(reply) if reply == payload.as_bytes() => answered += 1,
                    _ => lost += 1,
                }
            }
            (answered, lost)
        })
    };

    let mut current = server.first_pid;
    for i in 0..5 {
        let r = server.restart_and_wait_old();
        assert_eq!(r.old, current, "restart {i}");
        assert_eq!(ask_pid(&socket, target), r.new, "restart {i}");
        current = r.new;
    }
    stop.store(true, Ordering::SeqCst);
    let (answered, lost) = load.join().unwrap();
    println!("udp: {answered} datagrams answered, {lost} lost across 5 restarts");
    assert!(answered > 0);
    assert_eq!(lost, 0);
}
