//! The load generators, run as child processes: wrk for HTTP/1.1 keep-alive,
//! h2load (nghttp2-client) for h2c, and oha for either. None retries a failed
//! request; each reconnects after a connection closes and goes on.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What a load run reports.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Completed requests per second.
    pub rps: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that failed: connection errors, resets, non-2xx.
    pub failed: u64,
    /// What the failures were, when the generator says (oha).
    pub errors: String,
}

/// A load generator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Generator {
    /// wrk for HTTP/1.1, h2load for h2c.
    Classic,
    /// oha for both.
    Oha,
}

/// The protocol of a load run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Proto {
    /// HTTP/1.1 keep-alive (wrk).
    H1,
    /// HTTP/2 over cleartext, prior knowledge (h2load).
    H2c,
}

impl Proto {
    /// The tool this protocol is loaded with.
    pub fn tool(self) -> &'static str {
        match self {
            Proto::H1 => "wrk",
            Proto::H2c => "h2load",
        }
    }
}

/// A load run in progress.
pub struct Run {
    child: Option<Child>,
    proto: Proto,
    generator: Generator,
    log: std::path::PathBuf,
}

/// Starts loading `url` with `conns` connections for `duration`, with wrk
/// or h2load.
pub fn start(proto: Proto, url: &str, conns: usize, duration: Duration) -> Run {
    start_with(Generator::Classic, proto, url, conns, duration)
}

/// Starts loading `url` with `generator`.
pub fn start_with(
    generator: Generator,
    proto: Proto,
    url: &str,
    conns: usize,
    duration: Duration,
) -> Run {
    let secs = duration.as_secs().max(1).to_string();
    let conns = conns.to_string();
    let log = std::env::temp_dir().join(format!("handoff-bench-h2load-{}.log", std::process::id()));
    let mut cmd = match (generator, proto) {
        (Generator::Oha, _) => {
            // -w: requests still in flight at the deadline are waited for,
            // not counted as errors.
            let mut c = Command::new(super::tool("oha").expect("oha is installed"));
            c.args(["-z", &format!("{secs}s"), "-c", &conns, "-w", "--no-tui"])
                .args(["--output-format", "json"]);
            if proto == Proto::H2c {
                c.arg("--http2");
            }
            c.arg(url);
            c
        }
        (Generator::Classic, Proto::H1) => {
            let mut c = Command::new("wrk");
            c.args([
                "-t2",
                "-c",
                &conns,
                "-d",
                &format!("{secs}s"),
                "--latency",
                url,
            ]);
            c
        }
        (Generator::Classic, Proto::H2c) => {
            let mut c = Command::new("h2load");
            c.args(["-t2", "-c", &conns, "-m", "10", "-D", &secs, "--log-file"])
                .arg(&log)
                .arg(url);
            c
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start the load generator: {e}"));
    Run {
        child: Some(child),
        proto,
        generator,
        log,
    }
}

impl Run {
    /// Waits for the run to end and parses what it printed.
    pub fn finish(mut self) -> Figures {
        let child = self.child.take().expect("running");
        let out = child
            .wait_with_output()
            .expect("wait for the load generator");
        let text = String::from_utf8_lossy(&out.stdout);
        let figures = match (self.generator, self.proto) {
            (Generator::Oha, _) => parse_oha(&text),
            (Generator::Classic, Proto::H1) => parse_wrk(&text),
            (Generator::Classic, Proto::H2c) => parse_h2load(&text, &self.log),
        };
        figures.unwrap_or_else(|| panic!("cannot read the load generator's output:\n{text}"))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Loads `url` for `duration` and returns the figures.
pub fn run(proto: Proto, url: &str, conns: usize, duration: Duration) -> Figures {
    start(proto, url, conns, duration).finish()
}

/// Whether wrk and h2load are installed.
pub fn missing_tools() -> Vec<&'static str> {
    ["wrk", "h2load"]
        .into_iter()
        .filter(|t| super::tool(t).is_none())
        .collect()
}

/// `1.23ms`, `850.00us`, `1.02s`, `1.5m` in ms.
fn wrk_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1e3,
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        _ => return None,
    })
}

fn parse_wrk(text: &str) -> Option<Figures> {
    let mut f = Figures::default();
    let mut total = None;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => f.rps = v.parse().ok()?,
            ["99%", v] => f.p99_ms = wrk_ms(v)?,
            [n, "requests", "in", ..] => total = n.parse::<u64>().ok(),
            ["Socket", "errors:", rest @ ..] => {
                f.failed += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => f.failed += n.parse::<u64>().ok()?,
            _ => {}
        }
    }
    // wrk's total counts completed responses, non-2xx included.
    let total = total?;
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    f.ok = total - non_2xx;
    Some(f)
}

fn parse_h2load(text: &str, log: &Path) -> Option<Figures> {
    let mut f = Figures::default();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            let rps = rest.split(", ").nth(1)?.strip_suffix(" req/s")?;
            f.rps = rps.parse().ok()?;
        }
        if let Some(rest) = line.strip_prefix("requests: ") {
            // "N total, N started, N done, N succeeded, N failed, N errored, N timeout"
            for part in rest.split(", ") {
                let (n, what) = part.split_once(' ')?;
                let n: u64 = n.parse().ok()?;
                match what {
                    "succeeded" => f.ok = n,
                    "failed" => f.failed += n,
                    _ => {}
                }
            }
        }
        if let Some(rest) = line.strip_prefix("status codes: ") {
            // 4xx and 5xx are counted as succeeded by h2load.
            for part in rest.split(", ") {
                if let Some(n) = part.strip_suffix(" 4xx").or(part.strip_suffix(" 5xx")) {
                    let n: u64 = n.parse().ok()?;
                    f.failed += n;
                    f.ok = f.ok.saturating_sub(n);
                }
            }
        }
    }
    // Per-request log: start (µs), status, duration (µs).
    let mut durations: Vec<f64> = std::fs::read_to_string(log)
        .ok()?
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse::<f64>().ok())
        .collect();
    if !durations.is_empty() {
        durations.sort_by(|a, b| a.total_cmp(b));
        let i = ((durations.len() as f64) * 0.99).ceil() as usize - 1;
        f.p99_ms = durations[i.min(durations.len() - 1)] / 1e3;
    }
    (f.rps > 0.0 || f.ok > 0 || f.failed > 0).then_some(f)
}

/// oha's `--output-format json` report.
fn parse_oha(text: &str) -> Option<Figures> {
    let report: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut f = Figures {
        rps: report["summary"]["requestsPerSec"].as_f64()?,
        p99_ms: report["latencyPercentiles"]["p99"].as_f64().unwrap_or(0.0) * 1e3,
        ..Figures::default()
    };
    for (status, n) in report["statusCodeDistribution"].as_object()? {
        let n = n.as_u64()?;
        if status.starts_with('2') {
            f.ok += n;
        } else {
            f.failed += n;
        }
    }
    let mut errors = Vec::new();
    for (error, n) in report["errorDistribution"].as_object()? {
        let n = n.as_u64()?;
        f.failed += n;
        errors.push(format!("{n} {error}"));
    }
    f.errors = errors.join("; ");
    Some(f)
}
