//! Restarts under load: failed requests per restart, under the same load
//! (oha when it is on `PATH`, for HTTP/1.1 keep-alive and h2c; else wrk for
//! HTTP/1.1 and h2load for h2c; none retries), for each handoff example and,
//! where installed, for `nginx -s reload` and a HAProxy reload (SIGUSR2 to
//! its master).
//!
//! ```text
//! cargo bench --all-features --bench under_load [-- --quick] [NAME...]
//! ```
//!
//! NAME is an example (demo, smol, async_std, axum, actix), nginx or haproxy.
//! Nothing is installed: a missing tool is reported and its rows skipped
//! (oha: `cargo install oha`; wrk and h2load: `apt-get install wrk
//! nghttp2-client`; `nginx-light`; `haproxy`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::load::{self, Figures, Generator, Proto};
use common::{Flags, Server, Summary, table};

mod common;

/// Load generator connections.
const CONNS: usize = 50;

/// The handoff examples, and whether they serve h2c.
const EXAMPLES: [(&str, bool); 5] = [
    ("demo", true),
    ("smol", true),
    ("async_std", true),
    ("axum", true),
    ("actix", false),
];

fn main() -> ExitCode {
    let flags = Flags::parse();
    common::become_subreaper();
    common::machine();
    let generator = if common::tool("oha").is_some() {
        Generator::Oha
    } else {
        let missing = load::missing_tools();
        if !missing.is_empty() {
            eprintln!(
                "no oha (cargo install oha), and missing: {} (Debian/Ubuntu: apt-get install wrk nghttp2-client)",
                missing.join(", ")
            );
            return ExitCode::FAILURE;
        }
        eprintln!("oha is not on PATH: loading with wrk (HTTP/1.1) and h2load (h2c)");
        Generator::Classic
    };
    let restarts = flags.rounds(3, 10);
    let mut rows = Vec::new();
    for (name, h2) in EXAMPLES {
        if !flags.wants(name) {
            continue;
        }
        let bin = common::example(name);
        for proto in [Proto::H1, Proto::H2c] {
            if proto == Proto::H2c && !h2 {
                continue;
            }
            let mut server = Server::start(&bin, &["--listen", "127.0.0.1:0"]);
            let url = format!("http://{}/", server.addr);
            let (f, times) = under_load(generator, proto, &url, restarts, || {
                server.restart(common::T10).0
            });
            rows.push(row(
                &format!("handoff `{name}` example (SIGHUP)"),
                (generator, proto),
                restarts,
                f,
                &times,
            ));
        }
    }
    for (name, start) in [
        (
            "nginx",
            Nginx::start as fn(&Path) -> Option<Box<dyn Reloadable>>,
        ),
        ("haproxy", Haproxy::start),
    ] {
        if !flags.wants(name) {
            continue;
        }
        let Some(bin) = common::tool(name) else {
            eprintln!("{name} is not installed: its rows are skipped");
            continue;
        };
        let dir = scratch(name);
        let Some(mut peer) = start(&dir) else {
            continue;
        };
        for proto in [Proto::H1, Proto::H2c] {
            let url = peer.url(proto);
            let (f, times) = under_load(generator, proto, &url, restarts, || peer.reload(&bin));
            rows.push(row(&peer.title(), (generator, proto), restarts, f, &times));
        }
        drop(peer);
        let _ = std::fs::remove_dir_all(&dir);
    }
    table(
        &format!(
            "Restarts under load: {CONNS} connections, {restarts} restarts per run, one every {} ms",
            SPACING.as_millis()
        ),
        &[
            "server",
            "load",
            "requests ok",
            "failed",
            "failed per restart",
            "errors (oha)",
            "restart took (ms)",
        ],
        &rows,
    );
    ExitCode::SUCCESS
}

/// Time between restarts: the old generation has drained by then.
const SPACING: Duration = Duration::from_millis(1000);

/// Loads `url` and restarts `restarts` times, one every SPACING, starting
/// after one SPACING of load and ending one SPACING before the load does.
/// Returns the load figures and the durations `restart` reported.
fn under_load(
    generator: Generator,
    proto: Proto,
    url: &str,
    restarts: usize,
    mut restart: impl FnMut() -> Duration,
) -> (Figures, Vec<Duration>) {
    let total = SPACING * (restarts as u32 + 2);
    let run = load::start_with(generator, proto, url, CONNS, total);
    let begin = Instant::now();
    let mut times = Vec::new();
    for i in 1..=restarts {
        let due = begin + SPACING * i as u32;
        // A schedule, not a wait for an event: restarts are evenly spread.
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        times.push(restart());
    }
    (run.finish(), times)
}

fn row(
    title: &str,
    (generator, proto): (Generator, Proto),
    restarts: usize,
    f: Figures,
    times: &[Duration],
) -> Vec<String> {
    let tool = match generator {
        Generator::Oha => "oha",
        Generator::Classic => proto.tool(),
    };
    let load = match proto {
        Proto::H1 => "HTTP/1.1 keep-alive",
        Proto::H2c => "h2c",
    };
    vec![
        title.to_string(),
        format!("{load} ({tool})"),
        f.ok.to_string(),
        f.failed.to_string(),
        format!("{:.1}", f.failed as f64 / restarts as f64),
        if f.errors.is_empty() {
            "-".into()
        } else {
            f.errors.clone()
        },
        if times.iter().all(Duration::is_zero) {
            "n/a".into()
        } else {
            Summary::ms(times).show(1)
        },
    ]
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("handoff-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

// ---------------------------------------------------------------------------
// nginx and HAProxy
// ---------------------------------------------------------------------------

/// A reverse proxy serving a fixed body on two ports: HTTP/1.1 and h2c.
trait Reloadable {
    fn title(&self) -> String;
    fn url(&self, proto: Proto) -> String;
    /// Reloads its configuration; returns how long the reload command took
    /// (zero when it is a signal).
    fn reload(&mut self, bin: &Path) -> Duration;
}

/// A daemon in the foreground, killed and reaped on drop.
struct Daemon {
    child: Child,
    h1: u16,
    h2: u16,
}

impl Daemon {
    fn spawn(cmd: &mut Command, name: &str, h1: u16, h2: u16) -> Option<Daemon> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| eprintln!("cannot start {name}: {e}"))
            .ok()?;
        let daemon = Daemon { child, h1, h2 };
        // Bounded: the ports accept within 5 s or the rows are skipped.
        let deadline = Instant::now() + Duration::from_secs(5);
        while [h1, h2]
            .iter()
            .any(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_err())
        {
            if Instant::now() > deadline {
                eprintln!("{name} did not listen on 127.0.0.1:{h1} and :{h2} within 5 s: skipped");
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(daemon)
    }

    fn url(&self, proto: Proto) -> String {
        let port = if proto == Proto::H1 { self.h1 } else { self.h2 };
        format!("http://127.0.0.1:{port}/")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The master takes its workers down with it on SIGTERM.
        let pidfd = common::pidfd(self.child.id());
        common::signal(self.child.id(), rustix::process::Signal::TERM);
        if common::wait_exit(&pidfd, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

struct Nginx {
    daemon: Daemon,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path) -> Option<Box<dyn Reloadable>> {
        let (h1, h2) = (common::free_port(), common::free_port());
        let d = dir.display();
        let conf = format!(
            "worker_processes 2;\n\
             daemon off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
               access_log off;\n\
               keepalive_requests 1000000;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               server {{ listen 127.0.0.1:{h1}; location / {{ return 200 \"hello from nginx\\n\"; }} }}\n\
               server {{ listen 127.0.0.1:{h2} http2; location / {{ return 200 \"hello from nginx\\n\"; }} }}\n\
             }}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let bin = common::tool("nginx")?;
        let daemon = Daemon::spawn(
            Command::new(bin).arg("-p").arg(dir).arg("-c").arg(&path),
            "nginx",
            h1,
            h2,
        )?;
        Some(Box::new(Nginx {
            daemon,
            dir: dir.to_path_buf(),
        }))
    }
}

impl Reloadable for Nginx {
    fn title(&self) -> String {
        "nginx 2 workers (`nginx -s reload`)".into()
    }

    fn url(&self, proto: Proto) -> String {
        self.daemon.url(proto)
    }

    fn reload(&mut self, bin: &Path) -> Duration {
        let start = Instant::now();
        let status = Command::new(bin)
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "reload"])
            .stderr(Stdio::null())
            .status()
            .expect("run nginx -s reload");
        assert!(status.success(), "nginx -s reload failed");
        start.elapsed()
    }
}

struct Haproxy {
    daemon: Daemon,
}

impl Haproxy {
    fn start(dir: &Path) -> Option<Box<dyn Reloadable>> {
        let (h1, h2) = (common::free_port(), common::free_port());
        let conf = format!(
            "global\n  nbthread 2\n\
             defaults\n  mode http\n  timeout client 30s\n  timeout server 30s\n  timeout connect 5s\n\
             frontend h1\n  bind 127.0.0.1:{h1}\n  http-request return status 200 content-type text/plain string \"hello from haproxy\"\n\
             frontend h2\n  bind 127.0.0.1:{h2} proto h2\n  http-request return status 200 content-type text/plain string \"hello from haproxy\"\n"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, conf).expect("write haproxy.cfg");
        let bin = common::tool("haproxy")?;
        // -W: master-worker, reloaded by SIGUSR2; -db: in the foreground.
        let daemon = Daemon::spawn(
            Command::new(bin).args(["-W", "-db", "-f"]).arg(&path),
            "haproxy",
            h1,
            h2,
        )?;
        Some(Box::new(Haproxy { daemon }))
    }
}

impl Reloadable for Haproxy {
    fn title(&self) -> String {
        "HAProxy master-worker (SIGUSR2)".into()
    }

    fn url(&self, proto: Proto) -> String {
        self.daemon.url(proto)
    }

    fn reload(&mut self, _: &Path) -> Duration {
        common::signal(self.daemon.child.id(), rustix::process::Signal::USR2);
        Duration::ZERO
    }
}
