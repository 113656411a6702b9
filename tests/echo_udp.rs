//! Guarantee: UDP sockets are handed over too. A UDP echo socket keeps its
//! port across 5 restarts, every datagram sent during the restarts is
//! answered (one at a time, so a lost one shows as a timeout), and after each
//! restart the new generation answers on the same socket.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn udp_target(server: &Server) -> SocketAddr {
    let lines = server.wait_serving(0, 2, T30);
    let udp = lines
        .iter()
        .find_map(|s| s.url.strip_prefix("udp://"))
        .expect("a udp serving line");
    udp.parse().unwrap()
}

fn ask(socket: &UdpSocket, target: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(payload, target).ok()?;
    let mut buf = [0u8; 256];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn ask_udp_pid(socket: &UdpSocket, target: SocketAddr) -> i32 {
    let reply = ask(socket, target, b"pid").expect("pid reply");
    let text = String::from_utf8(reply).unwrap();
    text.trim().strip_prefix("pid=").unwrap().parse().unwrap()
}

#[test]
fn udp_socket_survives_restarts() {
    let dir = TempDir::new("udp");
    let server = Server::start(
        &echo_bin(),
        &dir,
        &["--listen", "127.0.0.1:0", "--listen", "udp://127.0.0.1:0"],
    );
    let target = udp_target(&server);
    let mut current = server.wait_pid_file(T30);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert_eq!(ask_udp_pid(&socket, target), current);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let (mut answered, mut lost) = (0u32, 0u32);
            let deadline = Instant::now() + Duration::from_secs(60);
            for i in 0..200_000u32 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) || Instant::now() > deadline {
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

    for i in 0..5 {
        let (old, new, _) = server.restart(Signal::HUP, T30);
        assert_eq!(old, current, "restart {i}");
        assert!(
            server.wait_exit(old, T30),
            "restart {i}: {old} did not exit"
        );
        assert_eq!(ask_udp_pid(&socket, target), new, "restart {i}");
        current = new;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (answered, lost) = load.join().unwrap();
    println!("udp: {answered} datagrams answered, {lost} lost across 5 restarts");
    assert!(answered > 0);
    assert_eq!(lost, 0);
}
