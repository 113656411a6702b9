//! Load: client tasks that send request after request until stopped (or a
//! deadline), in the protocol of their [`Target`], and count every outcome.
//! A request is never sent again: every error is a failure, except a request
//! the server provably never took, counted apart as `refused`: an HTTP/2
//! stream refused by GOAWAY or REFUSED_STREAM, or handed back unsent
//! ([`refused_stream`]); a line sent as the server closed the idle
//! connection it came on (end-of-file before any byte of its answer: the
//! echo example answers a line it read, or closes a connection only when it
//! has read nothing).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::client::{Probe, Protocol, RawConn, ReadError, Reply, Target};
use super::http::{HttpConn, Mode, refused_stream};
use super::process::T30;

/// What every request of a [`Load`] is.
#[derive(Debug, Clone)]
pub enum Work {
    /// `GET /` or the line `pid`: the answer names the pid that served it.
    Pid,
    /// A body (`POST /echo`) or a line of each size in turn, unique to the
    /// request, which must come back byte for byte.
    Echo(Vec<usize>),
}

/// Sizes for [`Work::Echo`]: small, a few KiB, and more than one read.
pub const ECHO_SIZES: [usize; 3] = [16, 5 * 1024, 70 * 1024];

/// Counters shared by the client tasks.
#[derive(Default)]
pub struct Stats {
    served: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    reconnects: AtomicU64,
    by_pid: Mutex<BTreeMap<i32, u64>>,
    by_mode: Mutex<BTreeMap<Mode, u64>>,
    refused_kinds: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<Vec<String>>,
    certs: Mutex<Vec<Vec<u8>>>,
    progress: Notify,
}

impl Stats {
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    pub fn served_by(&self, pid: i32) -> u64 {
        self.by_pid.lock().unwrap().get(&pid).copied().unwrap_or(0)
    }

    /// The pids that served a [`Work::Pid`] request.
    pub fn pids(&self) -> Vec<i32> {
        self.by_pid.lock().unwrap().keys().copied().collect()
    }

    /// The distinct certificates seen (TLS), in the order first seen.
    #[allow(dead_code, reason = "only tests/http_tls.rs speaks TLS")]
    pub fn certs(&self) -> Vec<Vec<u8>> {
        self.certs.lock().unwrap().clone()
    }

    /// Waits (bounded) until `cond` holds; checked again on every outcome.
    pub async fn wait_for(&self, timeout: Duration, cond: impl Fn(&Stats) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return cond(self);
            }
        }
    }

    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(what);
        }
        self.progress.notify_waiters();
    }

    fn refuse(&self, kind: &'static str) {
        self.refused.fetch_add(1, Ordering::SeqCst);
        *self.refused_kinds.lock().unwrap().entry(kind).or_default() += 1;
    }

    /// A reply to `sent` (the body or line that must come back, if any).
    fn record(&self, mode: Mode, reply: &Reply, sent: Option<&Bytes>, cert: Option<&Vec<u8>>) {
        if reply.status != 200 {
            return self.fail(format!(
                "{mode:?}: status {} body {:?}",
                reply.status,
                reply.text()
            ));
        }
        match (sent, reply.pid()) {
            (Some(sent), _) if reply.body != *sent => {
                return self.fail(format!(
                    "{mode:?}: {} bytes sent came back as {} different bytes",
                    sent.len(),
                    reply.body.len()
                ));
            }
            (Some(_), _) => {}
            (None, Some(pid)) => *self.by_pid.lock().unwrap().entry(pid).or_default() += 1,
            (None, None) => return self.fail(format!("{mode:?}: no pid in {:?}", reply.text())),
        }
        *self.by_mode.lock().unwrap().entry(mode).or_default() += 1;
        if let Some(cert) = cert {
            let mut certs = self.certs.lock().unwrap();
            if !certs.contains(cert) {
                certs.push(cert.clone());
            }
        }
        self.served.fetch_add(1, Ordering::SeqCst);
        self.progress.notify_waiters();
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served={} failed={} refused={} {:?} reconnects={} by_mode={:?} pids={}",
            self.served(),
            self.failed(),
            self.refused(),
            self.refused_kinds.lock().unwrap(),
            self.reconnects.load(Ordering::SeqCst),
            self.by_mode.lock().unwrap(),
            self.by_pid.lock().unwrap().len(),
        )?;
        for e in self.errors.lock().unwrap().iter() {
            write!(f, "\n  error: {e}")?;
        }
        Ok(())
    }
}

/// Client tasks sending requests until stopped (or a deadline).
pub struct Load {
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Most requests one client task sends.
const MAX_REQUESTS: u64 = 1_000_000;

impl Load {
    /// Starts `count` tasks of each mode (lines: a connection kept, or one
    /// per request); they stop after `deadline` at the latest.
    pub fn start(target: &Target, modes: &[(Mode, usize)], work: Work, deadline: Duration) -> Load {
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + deadline;
        let mut tasks = Vec::new();
        for &(mode, count) in modes {
            assert!(
                target.protocol == Protocol::Http || mode != Mode::H2,
                "lines have no HTTP/2"
            );
            for _ in 0..count {
                let task = Task {
                    target: target.clone(),
                    mode,
                    work: work.clone(),
                    stats: stats.clone(),
                    stop: stop.clone(),
                    deadline,
                };
                tasks.push(match target.protocol {
                    Protocol::Http => tokio::spawn(task.http()),
                    Protocol::Lines => tokio::spawn(task.lines()),
                });
            }
        }
        Load { stats, stop, tasks }
    }

    /// Stops the tasks and waits for them (each finishes its request).
    pub async fn stop(mut self) -> Arc<Stats> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks.drain(..) {
            tokio::time::timeout(T30, task)
                .await
                .expect("a client task did not stop")
                .expect("a client task panicked");
        }
        self.stats.clone()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A body of `size` bytes, unique to `tag`, without a newline.
pub fn unique_body(tag: u64, size: usize) -> Bytes {
    let mut body = format!("{tag:016x}").into_bytes();
    let mut x = tag | 1;
    while body.len() < size {
        // xorshift: cheap bytes that differ from one request to the next.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push(b'a' + (x % 26) as u8);
    }
    body.truncate(size);
    Bytes::from(body)
}

static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

struct Task {
    target: Target,
    mode: Mode,
    work: Work,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    deadline: Instant,
}

impl Task {
    fn done(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || Instant::now() >= self.deadline
    }

    /// The `n`th echo body, if the work is echoes.
    fn body(&self, n: u64) -> Option<Bytes> {
        let Work::Echo(sizes) = &self.work else {
            return None;
        };
        let size = sizes[(n % sizes.len() as u64) as usize];
        Some(unique_body(NEXT_TAG.fetch_add(1, Ordering::Relaxed), size))
    }

    async fn http(self) {
        let (mode, stats) = (self.mode, &self.stats);
        let mut conn: Option<HttpConn> = None;
        for n in 0..MAX_REQUESTS {
            if self.done() {
                return;
            }
            // A connection the server closed while idle (after a response
            // that said so, or a GOAWAY) is replaced: nothing was sent on it.
            if let Some(c) = conn.as_mut() {
                if mode == Mode::NewConnection || !c.ready().await {
                    conn = None;
                    stats.reconnects.fetch_add(1, Ordering::SeqCst);
                }
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match HttpConn::connect(&self.target, mode).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        stats.fail(format!("{mode:?}: {e}"));
                        continue;
                    }
                },
            };
            let reused = c.served > 0;
            let body = self.body(n);
            let request = async {
                match &body {
                    Some(body) => c.post("/echo", body.clone()).await,
                    None => c.get("/").await,
                }
            };
            match tokio::time::timeout(T30, request).await {
                Ok(Ok(reply)) => {
                    stats.record(mode, &reply, body.as_ref(), c.cert.as_ref());
                    if reply.header("connection") == Some("close") {
                        conn = None;
                    }
                }
                Ok(Err(e)) => {
                    match refused_stream(&e, c.unsent).filter(|_| mode == Mode::H2) {
                        Some(kind) => stats.refuse(kind),
                        None => stats.fail(format!("{mode:?} (reused={reused}): {e} ({e:?})")),
                    }
                    conn = None;
                }
                Err(_) => {
                    stats.fail(format!("{mode:?}: no response within 30 s"));
                    conn = None;
                }
            }
        }
    }

    async fn lines(self) {
        let (mode, stats) = (self.mode, &self.stats);
        let mut conn: Option<RawConn> = None;
        for n in 0..MAX_REQUESTS {
            if self.done() {
                return;
            }
            // Before reusing a connection, look whether the server closed it
            // (draining closes idle connections): that is no failure.
            if let Some(c) = conn.as_mut() {
                match c.probe() {
                    Probe::Open if mode == Mode::KeepAlive => {}
                    Probe::Open | Probe::Closed => {
                        conn = None;
                        stats.reconnects.fetch_add(1, Ordering::SeqCst);
                    }
                    Probe::Unsolicited(bytes) => {
                        stats.fail(format!(
                            "{mode:?}: unsolicited {:?}",
                            String::from_utf8_lossy(&bytes)
                        ));
                        conn = None;
                    }
                    Probe::Error(e) => {
                        stats.fail(format!("{mode:?}: idle connection: {e}"));
                        conn = None;
                    }
                }
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match RawConn::try_connect(&self.target).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        stats.fail(format!("{mode:?}: connect: {e}"));
                        continue;
                    }
                },
            };
            let fresh = c.replies == 0;
            let body = self.body(n);
            let line = [body.as_deref().unwrap_or(b"pid"), b"\n"].concat();
            if let Err(e) = c.send_raw(&line).await {
                stats.fail(format!("{mode:?} (fresh={fresh}): send: {e}"));
                conn = None;
                continue;
            }
            match c.reply().await {
                Ok(reply) => stats.record(mode, &reply, body.as_ref(), None),
                Err(ReadError::Closed) if fresh => {
                    stats.refuse("line sent as a fresh connection closed");
                    conn = None;
                }
                Err(ReadError::Closed) => {
                    stats.refuse("line sent as an idle connection closed");
                    conn = None;
                }
                Err(e) => {
                    stats.fail(format!("{mode:?} (fresh={fresh}): {e}"));
                    conn = None;
                }
            }
        }
    }
}
