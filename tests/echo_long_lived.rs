//! Guarantee: connections opened before a restart are handled by the old
//! generation until they are done, and then closed cleanly:
//! - an idle connection gets a clean EOF (never a reset) once the successor
//!   is ready;
//! - a connection holding a partial line keeps the old generation alive
//!   until the line is complete, gets its echo, then a clean EOF;
//! - a client sending lines back to back across the drain gets every echo
//!   it gets completely, never a reset or a truncated echo, and ends with a
//!   clean EOF;
//! - a new connection is answered by the successor (`pid=` the new pid).
//!
//! The restart is triggered with SIGUSR2 (the contract's second trigger).

mod common;

use common::*;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

/// What the back-to-back client saw.
#[derive(Debug)]
struct Hammer {
    echoed: u64,
    /// How the connection ended.
    end: String,
    /// true when the end was a clean EOF (probe before send or no bytes of echo).
    clean: bool,
    /// true when the last line was sent and EOF came with no echo byte (race).
    race: bool,
}

fn hammer_until_closed(mut c: Client, deadline: Instant) -> Hammer {
    let mut echoed = 0u64;
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let line = format!("hammer-{i}");
        let wire = format!("{line}\n");
        if echoed > 0 {
            match c.conn.probe() {
                Probe::Open => {}
                Probe::Eof => {
                    return Hammer {
                        echoed,
                        end: "clean EOF before next send".into(),
                        clean: true,
                        race: false,
                    };
                }
                other => {
                    return Hammer {
                        echoed,
                        end: format!("probe: {other:?}"),
                        clean: false,
                        race: false,
                    };
                }
            }
        }
        if let Err(e) = c.conn.write_all(wire.as_bytes()) {
            return Hammer {
                echoed,
                end: format!("write of {line:?} failed: {e}"),
                clean: false,
                race: false,
            };
        }
        match c.read(T10) {
            Outcome::Line(l) if l == line => echoed += 1,
            Outcome::Eof { partial } if partial.is_empty() => {
                return Hammer {
                    echoed,
                    end: format!("clean EOF right after sending {line:?} (no echo byte)"),
                    clean: true,
                    race: true,
                };
            }
            other => {
                return Hammer {
                    echoed,
                    end: format!("after sending {line:?}: {other:?}"),
                    clean: false,
                    race: false,
                };
            }
        }
    }
    Hammer {
        echoed,
        end: "still open at deadline".into(),
        clean: false,
        race: false,
    }
}

#[test]
fn connections_from_before_a_restart_are_finished_and_closed_cleanly() {
    let dir = TempDir::new("ll");
    let server = Server::start(
        &echo_bin(),
        &dir,
        &["--stop-timeout", "30", "--kill-timeout", "5"],
    );
    let target = server.wait_serving(0, 1, T30).remove(0).target();
    let p1 = server.wait_pid_file(T30);

    // A: an idle long-lived connection, used before the restart.
    let mut a = Client::connect(&target);
    assert_eq!(a.ask_pid(), p1);
    assert_eq!(a.request("before restart"), "before restart");

    // B: holds half a line across the restart.
    let mut b = Client::connect(&target);
    assert_eq!(b.request("b first"), "b first");
    b.send("half of a line, ").expect("send half line");

    // C: sends lines back to back across the drain (in its own thread).
    let mut c = Client::connect(&target);
    assert_eq!(c.request("c first"), "c first");

    // No event tells us the server has read B's partial line into its buffer;
    // give it a moment (it reads as soon as bytes arrive).
    thread::sleep(Duration::from_millis(200));

    let hammer = thread::spawn(move || hammer_until_closed(c, Instant::now() + T30));
    let t0 = Instant::now();
    server.signal(p1, Signal::USR2);
    let p2 = server
        .wait_pid_file_change(p1, T30)
        .unwrap_or_else(|e| panic!("{e}\n{}", server.diagnostics()));
    let ready = t0.elapsed();
    assert_ne!(p2, p1);

    // A: clean EOF, promptly.
    let a_out = a.read(T10);
    let a_eof_after_ready = t0.elapsed().saturating_sub(ready);
    assert_eq!(
        a_out,
        Outcome::Eof {
            partial: String::new()
        },
        "idle connection A was not closed with a clean EOF"
    );
    assert!(
        a_eof_after_ready < T5,
        "idle connection A closed only {a_eof_after_ready:?} after the successor was ready"
    );

    // C: every line it sent before the drain was echoed; it ended cleanly.
    let h = hammer.join().expect("hammer thread");
    println!("long-lived: C sent lines back to back across the drain: {h:?}");
    assert!(
        h.clean,
        "connection C did not end with a clean EOF: {}",
        h.end
    );
    assert!(h.echoed > 0);

    // The old generation still waits for B's line.
    assert!(
        !is_gone(p1),
        "old generation {p1} exited while connection B still held half a line"
    );

    // B: finish the line; its echo arrives, then a clean EOF.
    b.send("second half\n").expect("finish B's line");
    assert_eq!(
        b.read(T10),
        Outcome::Line("half of a line, second half".into()),
        "B's line in hand was not echoed"
    );
    assert_eq!(
        b.read(T10),
        Outcome::Eof {
            partial: String::new()
        },
        "B was not closed cleanly after its echo"
    );
    drop(b); // a well-behaved client closes its side on EOF
    drop(a);

    // The old generation is done now and must exit promptly.
    let t_b = Instant::now();
    assert!(
        server.wait_exit(p1, T10),
        "old generation {p1} still running 10 s after its last connection was closed"
    );
    let exit_after_b = t_b.elapsed();

    // A new connection is served by the successor.
    assert_eq!(ask_pid(&target), p2);

    println!(
        "long-lived: {p1} -> {p2}; successor ready {ready:?} after SIGUSR2; idle A got EOF {a_eof_after_ready:?} after ready; \
         old exited {exit_after_b:?} after B got EOF and closed; C echoed {} lines, race at end: {}",
        h.echoed, h.race
    );
}
