//! Shared harness of the HTTP integration tests (`tests/http_*.rs`), on top
//! of `tests/common` (process guard, example builder, pid file).
//!
//! - [`start_demo`]: the demo example with `--listen 127.0.0.1:0`, its ports
//!   read from the `serving` lines.
//! - [`Certs`]: self-signed certificates made with rcgen at test time.
//! - [`Target`] and [`Mode`]: hyper client connections (HTTP/1.1 keep-alive,
//!   a new connection per request, HTTP/2), plain or TLS.
//! - [`Load`]: client tasks that run until stopped or a deadline, and
//!   classify every request: served (by which pid), failed, non-200. A
//!   request is never sent again: every error is a failure, except an HTTP/2
//!   stream refused by GOAWAY or REFUSED_STREAM (RFC 9113, section 8.7),
//!   which is counted apart as `refused`.
//!
//! Loopback only; every loop bounded in count and time.
#![allow(dead_code)]

pub mod external;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use crate::common::{self, Serving};

/// The demo example, built with every feature this test was built with.
pub fn demo_bin() -> PathBuf {
    common::example_bin("demo", &features())
}

/// The axum example.
pub fn axum_bin() -> PathBuf {
    common::example_bin("axum", &features())
}

/// The features of this build (building the examples with the same set
/// avoids recompiling the library).
pub fn features() -> String {
    let all = [
        ("tokio", cfg!(feature = "tokio")),
        ("hyper", cfg!(feature = "hyper")),
        ("tls", cfg!(feature = "tls")),
        ("smol", cfg!(feature = "smol")),
        ("async-std", cfg!(feature = "async-std")),
        ("actix", cfg!(feature = "actix")),
    ];
    let on: Vec<&str> = all.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    on.join(",")
}

/// Raises this process's soft limit on open files to the hard limit.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
    }
    limit.current.unwrap_or(u64::MAX)
}

/// Starts `program` (`--listen 127.0.0.1:0 --pid-file DIR/server.pid` added)
/// and returns the guard and the address of its first listener.
pub fn start_server(
    program: &Path,
    dir: &common::TempDir,
    args: &[&str],
) -> (common::Server, Serving) {
    let server = common::Server::start(program, dir, args);
    let serving = server.wait_serving(0, 1, common::T30).remove(0);
    server.wait_pid_file(common::T30);
    (server, serving)
}

/// The demo, see [`start_server`].
pub fn start_demo(dir: &common::TempDir, args: &[&str]) -> (common::Server, SocketAddr) {
    let (server, serving) = start_server(&demo_bin(), dir, args);
    let addr = socket_addr(&serving);
    (server, addr)
}

/// The address of a `serving http://ADDR` or `https://ADDR` line.
pub fn socket_addr(serving: &Serving) -> SocketAddr {
    let addr = serving
        .url
        .strip_prefix("http://")
        .or_else(|| serving.url.strip_prefix("https://"))
        .unwrap_or_else(|| panic!("not an http url: {}", serving.url));
    let addr: SocketAddr = addr.parse().expect("socket address");
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    addr
}

/// Runs a blocking harness call (pid file polling, /proc) without stalling
/// the runtime's other tasks.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// A self-signed certificate for `localhost`, written as PEM files.
pub struct Certs {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub der: Vec<u8>,
}

impl Certs {
    /// Makes a new certificate and writes it to `dir/NAME.cert.pem` and
    /// `dir/NAME.key.pem`.
    pub fn generate(dir: &Path, name: &str) -> Certs {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("generate certificate");
        let cert_path = dir.join(format!("{name}.cert.pem"));
        let key_path = dir.join(format!("{name}.key.pem"));
        std::fs::write(&cert_path, certified.cert.pem()).unwrap();
        std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
        Certs {
            cert_path,
            key_path,
            der: certified.cert.der().to_vec(),
        }
    }

    /// Atomically replaces the files at `cert` and `key` with these.
    pub fn install(&self, cert: &Path, key: &Path) {
        common::replace_with_copy(key, &self.key_path, 0o600);
        common::replace_with_copy(cert, &self.cert_path, 0o644);
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// How a client talks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// HTTP/1.1, one connection reused for request after request.
    KeepAlive,
    /// HTTP/1.1, a new connection for every request.
    NewConnection,
    /// HTTP/2, one connection reused (ALPN `h2` with TLS, prior knowledge
    /// without).
    H2,
}

/// Where the clients connect: an address, plain or TLS.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    tls: Option<TlsClient>,
}

#[derive(Clone)]
struct TlsClient {
    h1: tokio_rustls::TlsConnector,
    h2: tokio_rustls::TlsConnector,
}

impl Target {
    pub fn plain(addr: SocketAddr) -> Target {
        Target { addr, tls: None }
    }

    /// TLS to `localhost` at `addr`, trusting exactly `trusted`.
    pub fn tls(addr: SocketAddr, trusted: &[&[u8]]) -> Target {
        let mut roots = rustls::RootCertStore::empty();
        for der in trusted {
            roots.add(der.to_vec().into()).expect("trust anchor");
        }
        let config = |alpn: &[u8]| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            tokio_rustls::TlsConnector::from(Arc::new(config))
        };
        Target {
            addr,
            tls: Some(TlsClient {
                h1: config(b"http/1.1"),
                h2: config(b"h2"),
            }),
        }
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Connects (TCP, then TLS if any). Returns the stream and the DER of
    /// the certificate the server presented.
    pub async fn connect_io(&self, mode: Mode) -> Result<(Box<dyn Io>, Option<Vec<u8>>), String> {
        let tcp = tokio::time::timeout(common::T10, TcpStream::connect(self.addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).ok();
        let Some(tls) = &self.tls else {
            return Ok((Box::new(tcp), None));
        };
        let connector = if mode == Mode::H2 { &tls.h2 } else { &tls.h1 };
        let name = ServerName::try_from("localhost").unwrap();
        let stream = tokio::time::timeout(common::T10, connector.connect(name, tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let (_, session) = stream.get_ref();
        let alpn = session.alpn_protocol().map(|p| p.to_vec());
        let want: &[u8] = if mode == Mode::H2 { b"h2" } else { b"http/1.1" };
        if alpn.as_deref() != Some(want) {
            return Err(format!("ALPN chose {alpn:?}"));
        }
        let cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        Ok((Box::new(stream), cert))
    }

    /// A new client connection, driven by a spawned task.
    pub async fn connect(&self, mode: Mode) -> Result<Conn, String> {
        let (io, cert) = self.connect_io(mode).await?;
        let io = TokioIo::new(io);
        let (sender, closed) = match mode {
            Mode::H2 => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
                (
                    Sender::H2(sender),
                    tokio::spawn(async move { conn.await.map_err(|e| e.to_string()) }),
                )
            }
            _ => {
                let (sender, conn) = http1::handshake(io)
                    .await
                    .map_err(|e| format!("h1 handshake: {e}"))?;
                (
                    Sender::H1(sender),
                    tokio::spawn(async move { conn.await.map_err(|e| e.to_string()) }),
                )
            }
        };
        Ok(Conn {
            sender,
            closed,
            target: self.clone(),
            served: 0,
            cert,
            unsent: false,
        })
    }
}

/// Plain or TLS client stream.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One client connection.
pub struct Conn {
    sender: Sender,
    /// Resolves when the connection is closed: `Ok` when the server closed
    /// it cleanly (end-of-file), `Err` on a protocol or I/O error.
    pub closed: tokio::task::JoinHandle<Result<(), String>>,
    target: Target,
    /// Requests answered on it so far.
    pub served: u64,
    /// The server's certificate (TLS).
    pub cert: Option<Vec<u8>>,
    /// Whether the last request failed without being sent: the HTTP/2
    /// client handed it back (the connection was going away).
    pub unsent: bool,
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    /// The body as received.
    pub bytes: Bytes,
    /// The `pid=N` in the body.
    pub pid: Option<u32>,
    /// The `Connection` header.
    pub connection: Option<String>,
}

pub fn pid_in(body: &str) -> Option<u32> {
    let tail = &body[body.find("pid=")? + 4..];
    let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl Conn {
    /// The handle that resolves when the connection closes, and a guard that
    /// keeps the client side open (dropping it lets the client close).
    pub fn split(
        self,
    ) -> (
        impl Send + 'static,
        tokio::task::JoinHandle<Result<(), String>>,
    ) {
        (self.sender, self.closed)
    }

    /// Whether the connection can take another request (false once the
    /// server closed it, or sent GOAWAY).
    pub async fn ready(&mut self) -> bool {
        let ready = match &mut self.sender {
            Sender::H1(s) => tokio::time::timeout(common::T5, s.ready()).await,
            Sender::H2(s) => tokio::time::timeout(common::T5, s.ready()).await,
        };
        matches!(ready, Ok(Ok(())))
    }

    /// Sends `GET path` and returns the response as soon as its head
    /// arrived, its body unread (for streamed bodies).
    pub async fn get_streaming(
        &mut self,
        path: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error> {
        let response = self.send(path).await?;
        self.served += 1;
        Ok(response)
    }

    /// Sends `GET path`; the response head, its body unread.
    async fn send(
        &mut self,
        path: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error> {
        self.send_request(hyper::Method::GET, path, Bytes::new())
            .await
    }

    /// Sends `method path` with `body`; the response head, its body unread.
    async fn send_request(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error> {
        let uri = match self.sender {
            Sender::H1(_) => path.to_string(),
            Sender::H2(_) => format!(
                "{}://localhost:{}{path}",
                self.target.scheme(),
                self.target.addr.port()
            ),
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, "localhost")
            .body(Full::new(body))
            .unwrap();
        // hyper rejects a request sent before the connection is ready again
        // (the previous response just read); wait for it.
        self.unsent = false;
        match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await
            }
            Sender::H2(s) => {
                // A connection that is gone before the request is handed to
                // it: nothing was sent.
                if let Err(e) = s.ready().await {
                    self.unsent = true;
                    return Err(e);
                }
                match s.try_send_request(request).await {
                    Ok(response) => Ok(response),
                    Err(mut e) => {
                        // hyper hands a request back only if it never sent it.
                        self.unsent = e.take_message().is_some();
                        Err(e.into_error())
                    }
                }
            }
        }
    }

    /// Sends `POST path` with `body` and reads the whole response.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Reply, hyper::Error> {
        let response = self.send_request(hyper::Method::POST, path, body).await?;
        self.reply(response).await
    }

    /// Sends `GET path` and reads the whole response.
    pub async fn get(&mut self, path: &str) -> Result<Reply, hyper::Error> {
        let response = self.send(path).await?;
        self.reply(response).await
    }

    async fn reply(
        &mut self,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Reply, hyper::Error> {
        let status = response.status();
        let connection = response
            .headers()
            .get(hyper::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        self.served += 1;
        Ok(Reply {
            pid: pid_in(&body),
            status,
            body,
            bytes,
            connection,
        })
    }
}

/// Whether a failed HTTP/2 request is a stream the server provably never
/// received: the client library handed the request back unsent (`unsent`:
/// the connection was going away after a GOAWAY), or the server refused it
/// with GOAWAY below its stream id or REFUSED_STREAM (RFC 9113, section 8.7).
/// The only failure a client may set apart; no HTTP/1.1 error qualifies.
pub fn refused_stream(e: &hyper::Error, unsent: bool) -> Option<&'static str> {
    if unsent {
        return Some("h2 handed back unsent");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return Some("h2 refused stream");
            }
            if h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR) {
                return Some("h2 goaway");
            }
        }
        source = s.source();
    }
    None
}

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

/// Counters shared by the client tasks.
#[derive(Default)]
pub struct Stats {
    pub served: AtomicU64,
    pub failed: AtomicU64,
    pub non_200: AtomicU64,
    /// HTTP/2 streams refused by GOAWAY or REFUSED_STREAM (see
    /// [`refused_stream`]): never sent again, counted apart from failures.
    pub refused: AtomicU64,
    pub reconnects: AtomicU64,
    by_pid: Mutex<BTreeMap<u32, u64>>,
    by_mode: Mutex<BTreeMap<Mode, u64>>,
    refused_kinds: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<Vec<String>>,
    certs: Mutex<Vec<Vec<u8>>>,
    progress: Notify,
}

impl Stats {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(what);
        }
        self.progress.notify_waiters();
    }

    fn record(&self, mode: Mode, reply: &Reply, cert: Option<&Vec<u8>>, echo: bool) {
        if reply.status != StatusCode::OK {
            self.non_200.fetch_add(1, Ordering::SeqCst);
            self.fail(format!(
                "{mode:?}: status {} body {:?}",
                reply.status, reply.body
            ));
            return;
        }
        match reply.pid {
            Some(pid) => *self.by_pid.lock().unwrap().entry(pid).or_default() += 1,
            None if echo => {}
            None => return self.fail(format!("{mode:?}: no pid in {:?}", reply.body)),
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

    pub fn served_by(&self, pid: u32) -> u64 {
        self.by_pid.lock().unwrap().get(&pid).copied().unwrap_or(0)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.by_pid.lock().unwrap().keys().copied().collect()
    }

    /// The distinct certificates seen, in the order first seen.
    pub fn certs(&self) -> Vec<Vec<u8>> {
        self.certs.lock().unwrap().clone()
    }

    /// Waits (bounded) until `cond` holds; re-checked on every outcome.
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
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "served={} failed={} non_200={} refused_h2={} {:?} reconnects={} by_mode={:?} pids={}",
            self.served.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            self.non_200.load(Ordering::SeqCst),
            self.refused.load(Ordering::SeqCst),
            self.refused_kinds.lock().unwrap(),
            self.reconnects.load(Ordering::SeqCst),
            self.by_mode.lock().unwrap(),
            self.by_pid.lock().unwrap().len(),
        )?;
        let errors = self.errors.lock().unwrap();
        for e in errors.iter() {
            write!(f, "\n  error: {e}")?;
        }
        Ok(())
    }
}

/// Client tasks hammering a target until stopped (or a deadline).
pub struct Load {
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Most requests one client task sends.
const MAX_REQUESTS_PER_TASK: u64 = 1_000_000;

/// What each request of a [`Load`] is.
#[derive(Debug, Clone)]
pub enum Work {
    /// `GET path`; the answer must be 200 and name a pid.
    Get(String),
    /// `POST /echo` with a body of each size in turn, unique to the
    /// request; the answer must be 200 with that body, byte for byte.
    Echo(Vec<usize>),
}

impl From<&str> for Work {
    fn from(path: &str) -> Work {
        Work::Get(path.to_string())
    }
}

/// Body sizes for [`Work::Echo`]: small, a few KiB, and above what a
/// single read brings in.
pub const ECHO_SIZES: [usize; 3] = [16, 5 * 1024, 70 * 1024];

impl Load {
    /// Starts `count` tasks of each mode; they stop at `deadline` at the latest.
    pub fn start(
        target: &Target,
        modes: &[(Mode, usize)],
        work: impl Into<Work>,
        deadline: Duration,
    ) -> Load {
        let work = work.into();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + deadline;
        let mut tasks = Vec::new();
        for &(mode, count) in modes {
            for _ in 0..count {
                tasks.push(tokio::spawn(client_task(
                    target.clone(),
                    mode,
                    work.clone(),
                    stats.clone(),
                    stop.clone(),
                    deadline,
                )));
            }
        }
        Load { stats, stop, tasks }
    }

    /// Stops the tasks and waits for them (each finishes its request).
    pub async fn stop(mut self) -> Arc<Stats> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks.drain(..) {
            tokio::time::timeout(common::T30, task)
                .await
                .expect("client task did not stop")
                .expect("client task panicked");
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

/// A body of `size` bytes that starts with `tag` and is unique to it.
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

/// One request of `work` on `conn`: its reply, and for an echo the body
/// that must come back.
async fn one_request(
    conn: &mut Conn,
    work: &Work,
    n: u64,
) -> Result<(Reply, Option<Bytes>), hyper::Error> {
    match work {
        Work::Get(path) => Ok((conn.get(path).await?, None)),
        Work::Echo(sizes) => {
            let size = sizes[(n % sizes.len() as u64) as usize];
            let body = unique_body(NEXT_TAG.fetch_add(1, Ordering::Relaxed), size);
            let reply = conn.post("/echo", body.clone()).await?;
            Ok((reply, Some(body)))
        }
    }
}

/// Sends requests until stopped, never sending one again: every error is a
/// failure, but for an HTTP/2 stream the server refused (counted apart).
async fn client_task(
    target: Target,
    mode: Mode,
    work: Work,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    deadline: Instant,
) {
    let mut conn: Option<Conn> = None;
    for n in 0..MAX_REQUESTS_PER_TASK {
        if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
            return;
        }
        // A connection the server closed while idle (after a response that
        // said so, or a GOAWAY) is replaced: no request was sent on it.
        if let Some(c) = conn.as_mut() {
            if mode == Mode::NewConnection || !c.ready().await {
                conn = None;
                stats.reconnects.fetch_add(1, Ordering::SeqCst);
            }
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match target.connect(mode).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.fail(format!("{mode:?}: {e}"));
                    continue;
                }
            },
        };
        let reused = c.served > 0;
        match tokio::time::timeout(common::T30, one_request(c, &work, n)).await {
            Ok(Ok((reply, sent))) => {
                if let Some(sent) = &sent {
                    if reply.status == StatusCode::OK && reply.bytes != *sent {
                        stats.fail(format!(
                            "{mode:?}: echo of {} bytes came back as {} different bytes",
                            sent.len(),
                            reply.bytes.len()
                        ));
                        continue;
                    }
                }
                stats.record(mode, &reply, c.cert.as_ref(), sent.is_some());
                if reply.connection.as_deref() == Some("close") {
                    conn = None;
                }
            }
            Ok(Err(e)) => {
                match refused_stream(&e, c.unsent).filter(|_| mode == Mode::H2) {
                    Some(kind) => {
                        stats.refused.fetch_add(1, Ordering::SeqCst);
                        *stats.refused_kinds.lock().unwrap().entry(kind).or_default() += 1;
                    }
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

// ---------------------------------------------------------------------------
// Generations
// ---------------------------------------------------------------------------

/// Figures of one restart.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    pub old: i32,
    pub new: i32,
    /// Signal to successor ready (pid file changed).
    pub ready: Duration,
    /// Signal to the old generation gone.
    pub old_exit: Duration,
}

/// SIGHUP to the generation in the pid file; waits for the successor to be
/// ready and the old generation to exit (both bounded).
pub fn restart(server: &common::Server, exit_timeout: Duration) -> Restart {
    let start = Instant::now();
    let (old, new, ready) = server.restart(common::Signal::HUP, common::T30);
    assert!(
        common::wait_gone(old, exit_timeout),
        "old generation {old} still alive {exit_timeout:?} after the restart\n{}",
        server.diagnostics()
    );
    Restart {
        old,
        new,
        ready,
        old_exit: start.elapsed(),
    }
}

/// `n=.. median=.. max=..` of the restart figures.
pub fn summarize_restarts(restarts: &[Restart]) -> String {
    let ready: Vec<Duration> = restarts.iter().map(|r| r.ready).collect();
    let exit: Vec<Duration> = restarts.iter().map(|r| r.old_exit).collect();
    format!(
        "ready after signal: {}; old generation exit after signal: {}",
        common::summarize(&ready),
        common::summarize(&exit)
    )
}

// ---------------------------------------------------------------------------
// The actix example
// ---------------------------------------------------------------------------

/// The actix example, built with every feature this test was built with.
pub fn actix_bin() -> PathBuf {
    common::example_bin("actix", &features())
}

/// The actix example, see [`start_server`].
pub fn start_actix(dir: &common::TempDir, args: &[&str]) -> (common::Server, SocketAddr) {
    let (server, serving) = start_server(&actix_bin(), dir, args);
    let addr = socket_addr(&serving);
    (server, addr)
}

/// A hand-written HTTP/1.1 client connection over any stream (TCP or Unix),
/// for tests that need to control exactly when bytes are sent.
pub struct RawConn<S> {
    pub stream: S,
    buf: Vec<u8>,
}

/// A response read by [`RawConn`].
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RawConn<TcpStream> {
    /// An HTTP/1.1 connection to `addr` driven by hand: what the server does
    /// to it (end-of-file, reset, stray bytes) is seen as is. Loopback only;
    /// the connect is bounded by 10 s.
    pub async fn connect(addr: SocketAddr) -> RawConn<TcpStream> {
        assert!(addr.ip().is_loopback(), "tests only talk to loopback");
        let stream = tokio::time::timeout(common::T10, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).ok();
        RawConn::new(stream)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawConn<S> {
    pub fn new(stream: S) -> RawConn<S> {
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends `GET path`.
    pub async fn send_get(&mut self, path: &str) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        self.stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// Sends `GET path` and reads the response (bounded by 10 s).
    pub async fn get(&mut self, path: &str) -> Result<RawReply, String> {
        self.send_get(path).await?;
        self.response().await
    }

    /// Reads one response with a `Content-Length` (bounded by 10 s).
    pub async fn response(&mut self) -> Result<RawReply, String> {
        tokio::time::timeout(common::T10, self.read_response())
            .await
            .map_err(|_| "no response within 10 s".to_string())?
    }

    async fn read_response(&mut self) -> Result<RawReply, String> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line in {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        let body = String::from_utf8_lossy(&self.buf[head_end..head_end + length]).into_owned();
        self.buf.drain(..head_end + length);
        Ok(RawReply {
            status,
            headers,
            body,
        })
    }

    async fn fill(&mut self) -> Result<(), String> {
        use tokio::io::AsyncReadExt;
        if self.buf.len() > 1 << 20 {
            return Err("response longer than 1 MiB".into());
        }
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) => Err("end-of-file in the middle of a response".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// The next response, or `None` when the server closes the connection
    /// cleanly before one starts (bounded by 10 s).
    pub async fn response_or_close(&mut self) -> Result<Option<RawReply>, String> {
        use tokio::io::AsyncReadExt;
        if self.buf.is_empty() {
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(common::T10, self.stream.read(&mut chunk)).await {
                Err(_) => return Err("neither a response nor a close within 10 s".into()),
                Ok(Ok(0)) => return Ok(None),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(format!("read: {e}")),
            }
        }
        self.response().await.map(Some)
    }

    /// Waits (bounded) for the server to close the connection: `Ok` on a
    /// clean end-of-file with nothing unread, `Err` on data, a reset, or
    /// the timeout.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Result<(), String> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(timeout, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) if self.buf.is_empty() => Ok(()),
            Ok(Ok(0)) => Err(format!("closed with {} bytes unread", self.buf.len())),
            Ok(Ok(n)) => Err(format!(
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            )),
            Ok(Err(e)) => Err(format!("read: {e}")),
            Err(_) => Err(format!("still open after {timeout:?}")),
        }
    }
}
