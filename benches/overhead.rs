//! Steady-state overhead: each framework bare against the same app on
//! handoff (same handler, same runtime, same worker count), loaded in turn,
//! A/B/A/B, in one run: throughput and p99 latency (wrk for HTTP/1.1
//! keep-alive, h2load for h2c), and resident memory per idle keep-alive
//! connection.
//!
//! ```text
//! cargo bench --all-features --bench overhead [-- --quick] [h1|h2|memory]
//! ```
//!
//! The servers are this program, started as `overhead --serve NAME` (see
//! `benches/peers/`).

use std::process::ExitCode;
use std::time::Duration;

use common::load::{self, Proto};
use common::{Flags, Server, Summary, table};

mod common;
mod peers;

/// Connections the load generator keeps open.
const CONNS: usize = 50;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        return peers::serve(args.get(i + 1).map_or("", String::as_str));
    }
    let flags = Flags::parse();
    common::machine();
    let missing = load::missing_tools();
    if !missing.is_empty() {
        eprintln!(
            "missing load generators: {} (Debian/Ubuntu: apt-get install wrk nghttp2-client); \
             the throughput sections are skipped",
            missing.join(", ")
        );
    }
    if flags.wants("h1") && missing.is_empty() {
        throughput(&flags, Proto::H1, &peers::PAIRS);
    }
    if flags.wants("h2") && missing.is_empty() {
        // actix serves cleartext HTTP/1.1 only; axum and smol ride on the
        // same hyper HTTP/2 code as hyper-util.
        throughput(&flags, Proto::H2c, &peers::PAIRS[..1]);
    }
    if flags.wants("memory") {
        memory(&flags);
    }
    ExitCode::SUCCESS
}

fn start(name: &str) -> Server {
    let exe = std::env::current_exe().expect("current_exe");
    Server::start(&exe, &["--serve", name])
}

fn throughput(flags: &Flags, proto: Proto, pairs: &[(&str, peers::Peer, peers::Peer)]) {
    let rounds = flags.rounds(1, 3);
    let secs = Duration::from_secs(if flags.quick { 2 } else { 5 });
    let mut rows = Vec::new();
    for (title, (bare_name, _), (handoff_name, _)) in pairs {
        let bare = start(bare_name);
        let handoff = start(handoff_name);
        let url = |s: &Server| format!("http://{}/", s.addr);
        // Warm both up (connection pools, allocator), unmeasured.
        load::run(proto, &url(&bare), CONNS, Duration::from_secs(1));
        load::run(proto, &url(&handoff), CONNS, Duration::from_secs(1));
        let (mut a, mut b, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let fa = load::run(proto, &url(&bare), CONNS, secs);
            let fb = load::run(proto, &url(&handoff), CONNS, secs);
            assert_eq!(
                fa.failed + fb.failed,
                0,
                "{title}: failed requests in steady state"
            );
            ratio.push(fb.rps / fa.rps);
            a.push(fa);
            b.push(fb);
        }
        let rps = |f: &[load::Figures]| Summary::of(&f.iter().map(|f| f.rps).collect::<Vec<_>>());
        let p99 =
            |f: &[load::Figures]| Summary::of(&f.iter().map(|f| f.p99_ms).collect::<Vec<_>>());
        rows.push(vec![
            title.to_string(),
            rps(&a).show(0),
            rps(&b).show(0),
            Summary::of(&ratio).show(2),
            p99(&a).show(2),
            p99(&b).show(2),
        ]);
    }
    table(
        &format!(
            "Steady state, {}: {} with {CONNS} connections, {} s per run, {rounds} A/B rounds (median (min-max))",
            match proto {
                Proto::H1 => "HTTP/1.1 keep-alive",
                Proto::H2c => "h2c (10 streams per connection)",
            },
            proto.tool(),
            secs.as_secs()
        ),
        &[
            "server",
            "bare req/s",
            "handoff req/s",
            "handoff/bare",
            "bare p99 ms",
            "handoff p99 ms",
        ],
        &rows,
    );
}

fn memory(flags: &Flags) {
    let n = flags.rounds(200, 1000);
    let mut rows = Vec::new();
    for (title, (bare_name, _), (handoff_name, _)) in &peers::PAIRS {
        let mut row = vec![title.to_string()];
        for name in [bare_name, handoff_name] {
            let server = start(name);
            // One connection first, so lazily built state is not counted.
            let first =
                common::keep_alive(&server.addr, "/", common::T10).expect("first connection");
            let before = server.rss_kib();
            let conns: Vec<_> = (0..n)
                .map(|i| {
                    common::keep_alive(&server.addr, "/", common::T10)
                        .unwrap_or_else(|e| panic!("{name}: connection {i}: {e}"))
                })
                .collect();
            let after = server.rss_kib();
            row.push(format!(
                "{:.1}",
                (after.saturating_sub(before)) as f64 / n as f64
            ));
            drop((first, conns));
        }
        rows.push(row);
    }
    table(
        &format!(
            "Resident memory per idle keep-alive connection (KiB; RSS growth over {n} connections that each made one request)"
        ),
        &["server", "bare", "handoff"],
        &rows,
    );
}
