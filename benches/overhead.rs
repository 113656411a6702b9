//! Steady-state overhead: each framework bare against the same app on
//! handoff (same handler, same runtime, same worker count), loaded in turn,
//! A/B/A/B, in one run: throughput and p99 latency (wrk for HTTP/1.1
//! keep-alive, h2load for h2c), and resident memory per idle keep-alive
//! connection. The `metrics` section compares a handoff server without a
//! metrics recorder against the same server with the Prometheus recorder
//! installed (feature `metrics`; skipped without it).
//!
//! ```text
//! cargo bench --all-features --bench overhead [-- --quick] [h1|h2|memory|metrics]
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
        throughput(&flags, Proto::H1, &peers::PAIRS, &BARE);
    }
    if flags.wants("h2") && missing.is_empty() {
        // actix serves cleartext HTTP/1.1 only; axum and smol ride on the
        // same hyper HTTP/2 code as hyper-util.
        throughput(&flags, Proto::H2c, &peers::PAIRS[..1], &BARE);
    }
    if flags.wants("memory") {
        memory(&flags);
    }
    if flags.wants("metrics") {
        #[cfg(feature = "metrics")]
        {
            if missing.is_empty() {
                throughput(&flags, Proto::H1, &peers::METRICS, &METRICS);
                throughput(&flags, Proto::H2c, &peers::METRICS[..1], &METRICS);
                println!("\n{}", METRICS_NOTE.join("\n"));
            }
            gauge_cost(&flags);
        }
        #[cfg(not(feature = "metrics"))]
        eprintln!(
            "the metrics section needs the `metrics` feature (cargo bench --all-features): skipped"
        );
    }
    ExitCode::SUCCESS
}

fn start(name: &str) -> Server {
    let exe = std::env::current_exe().expect("current_exe");
    Server::start(&exe, &["--serve", name])
}

/// What a throughput table compares: server A against server B.
struct Ab {
    /// The table's title, before the protocol.
    what: &'static str,
    /// A's and B's names in the column headers.
    a: &'static str,
    b: &'static str,
    /// Rounds with --quick, and without.
    rounds: (usize, usize),
    /// Whether odd rounds load B first (A B, B A, A B, ...), so that a drift
    /// in the machine's load over the run does not favour one side.
    abba: bool,
    /// Whether to add each server's CPU time per request (user + system,
    /// all its threads, from `/proc/PID/stat`): on a shared machine less
    /// sensitive than req/s to whatever else runs, though not immune.
    cpu: bool,
}

/// Each framework bare against the same app on handoff.
const BARE: Ab = Ab {
    what: "Steady state",
    a: "bare",
    b: "handoff",
    rounds: (1, 3),
    abba: false,
    cpu: false,
};

/// A handoff server without a metrics recorder against the same server with
/// the Prometheus recorder. The difference sought is small (the goal: within
/// 2 %), so more rounds, in alternating order.
#[cfg(feature = "metrics")]
const METRICS: Ab = Ab {
    what: "Metrics",
    a: "off",
    b: "on",
    rounds: (1, 5),
    abba: true,
    cpu: true,
};

/// What the metrics tables compare, printed under them.
#[cfg(feature = "metrics")]
const METRICS_NOTE: [&str; 8] = [
    "off: feature `metrics` compiled in, no recorder installed: every handle is the `metrics`",
    "facade's no-op (an `Option` checked per call). Built without the feature the calls compile",
    "to nothing, so this column is an upper bound of the cost with the feature off.",
    "on: the same binary and server, with metrics-exporter-prometheus's recorder installed before",
    "the `Handoff` is built (as the examples do), nothing scraping it; per request the",
    "`handoff_requests_in_flight` gauge goes up and down, per connection `handoff_connections_in_flight`.",
    "CPU µs/req: the server's user + system CPU time during a run (all its threads, /proc/PID/stat)",
    "over the requests it answered; less sensitive than req/s to what else the machine runs.",
];

fn throughput(flags: &Flags, proto: Proto, pairs: &[(&str, peers::Peer, peers::Peer)], ab: &Ab) {
    let rounds = flags.rounds(ab.rounds.0, ab.rounds.1);
    let secs = Duration::from_secs(if flags.quick { 2 } else { 5 });
    let mut rows = Vec::new();
    for (title, (a_name, _), (b_name, _)) in pairs {
        let server_a = start(a_name);
        let server_b = start(b_name);
        let url = |s: &Server| format!("http://{}/", s.addr);
        // Warm both up (connection pools, allocator), unmeasured.
        load::run(proto, &url(&server_a), CONNS, Duration::from_secs(1));
        load::run(proto, &url(&server_b), CONNS, Duration::from_secs(1));
        let (mut a, mut b, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cpu_a, mut cpu_b) = (Vec::new(), Vec::new());
        // One run, and the server's CPU µs per request during it.
        let run = |server: &Server| {
            let before = cpu_secs(server.pid);
            let f = load::run(proto, &url(server), CONNS, secs);
            let cpu = (cpu_secs(server.pid) - before) * 1e6 / f.ok.max(1) as f64;
            (f, cpu)
        };
        for round in 0..rounds {
            let ((fa, ca), (fb, cb)) = if ab.abba && round % 2 == 1 {
                let b = run(&server_b);
                (run(&server_a), b)
            } else {
                let a = run(&server_a);
                (a, run(&server_b))
            };
            cpu_a.push(ca);
            cpu_b.push(cb);
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
        let mut row = vec![
            title.to_string(),
            rps(&a).show(0),
            rps(&b).show(0),
            Summary::of(&ratio).show(2),
            p99(&a).show(2),
            p99(&b).show(2),
        ];
        if ab.cpu {
            let ratio: Vec<f64> = cpu_a.iter().zip(&cpu_b).map(|(a, b)| b / a).collect();
            row.push(Summary::of(&cpu_a).show(1));
            row.push(Summary::of(&cpu_b).show(1));
            row.push(Summary::of(&ratio).show(3));
        }
        rows.push(row);
    }
    let mut header = vec![
        "server".to_string(),
        format!("{} req/s", ab.a),
        format!("{} req/s", ab.b),
        format!("{}/{}", ab.b, ab.a),
        format!("{} p99 ms", ab.a),
        format!("{} p99 ms", ab.b),
    ];
    if ab.cpu {
        header.extend([
            format!("{} CPU µs/req", ab.a),
            format!("{} CPU µs/req", ab.b),
            format!("CPU {}/{}", ab.b, ab.a),
        ]);
    }
    let order = match ab.abba {
        true => format!("{rounds} rounds, {}/{} then {}/{}", ab.a, ab.b, ab.b, ab.a),
        false => format!("{rounds} A/B rounds"),
    };
    table(
        &format!(
            "{}, {}: {} with {CONNS} connections, {} s per run, {order} (median (min-max))",
            ab.what,
            match proto {
                Proto::H1 => "HTTP/1.1 keep-alive",
                Proto::H2c => "h2c (10 streams per connection)",
            },
            proto.tool(),
            secs.as_secs()
        ),
        &header.iter().map(String::as_str).collect::<Vec<_>>(),
        &rows,
    );
}

/// CPU time (user + system, every thread) `pid` has used, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    (ticks(14) + ticks(15)) as f64 / hz as f64
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

/// What the `metrics` feature adds to a request, in process and without the
/// noise of a load test: `handoff_requests_in_flight` up then down, as
/// `RequestInFlight` does, on a gauge from the Prometheus recorder (an
/// `AtomicU64` holding an f64, updated by a compare-and-swap loop, plus the
/// recorder's generation counter: two atomic read-modify-writes per call),
/// by one thread, and by two threads on the same gauge as on a multi-threaded
/// runtime, where its cache line moves between cores; against the no-op
/// handle a build with the feature and no recorder has. CPU time of each
/// thread (`CLOCK_THREAD_CPUTIME_ID`), so time the threads spend preempted
/// is not counted; median of 5.
#[cfg(feature = "metrics")]
fn gauge_cost(flags: &Flags) {
    use metrics::Gauge;
    use metrics_exporter_prometheus::PrometheusBuilder;

    fn thread_cpu_ns() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write to.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
    }

    let n = flags.rounds(2_000_000, 20_000_000);
    // ns of one thread's CPU per up-and-down, each of `threads` threads
    // doing `n` of them at once.
    let per_request = |gauge: &Gauge, threads: usize| {
        let samples: Vec<f64> = (0..5)
            .map(|_| {
                let together = std::sync::Barrier::new(threads);
                let spent: Vec<f64> = std::thread::scope(|s| {
                    let workers: Vec<_> = (0..threads)
                        .map(|_| {
                            s.spawn(|| {
                                together.wait();
                                let start = thread_cpu_ns();
                                for _ in 0..n {
                                    let gauge = std::hint::black_box(gauge);
                                    gauge.increment(1.0);
                                    gauge.decrement(1.0);
                                }
                                thread_cpu_ns() - start
                            })
                        })
                        .collect();
                    workers
                        .into_iter()
                        .map(|w| w.join().expect("worker"))
                        .collect()
                });
                spent.iter().sum::<f64>() / (threads * n) as f64
            })
            .collect();
        Summary::of(&samples)
    };
    let recorder = PrometheusBuilder::new().build_recorder();
    let prometheus =
        metrics::with_local_recorder(&recorder, || metrics::gauge!("handoff_requests_in_flight"));
    let noop = Gauge::noop();
    let rows = vec![
        vec![
            "no recorder (no-op handle)".to_string(),
            per_request(&noop, 1).show(2),
            per_request(&noop, 2).show(2),
        ],
        vec![
            "Prometheus recorder".to_string(),
            per_request(&prometheus, 1).show(2),
            per_request(&prometheus, 2).show(2),
        ],
    ];
    table(
        &format!(
            "Metrics, per request in process: ns of CPU per `handoff_requests_in_flight` up and down, {n} per thread, median (min-max) of 5"
        ),
        &["handle", "1 thread", "2 threads, same gauge"],
        &rows,
    );
}
