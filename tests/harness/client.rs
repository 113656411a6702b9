//! Where clients connect ([`Target`]: an address and the protocol spoken
//! there) and a connection driven by hand ([`RawConn`]): bytes go out exactly
//! when the test says, and what the server does to the connection (a reply,
//! end-of-file, a reset, stray bytes) is seen as is. It speaks the echo
//! example's lines and plain HTTP/1.1; [`Request`] is what both answer.
//!
//! Loopback and private Unix sockets only; every read is bounded.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::rustls;

use super::process::T10;
use super::server::Serving;

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// What a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (and HTTP/2 where a flavour says so): `GET /` answers
    /// `pid=PID`, `GET /sleep?duration=D` waits D.
    Http,
    /// The echo example's lines: a line comes back as is, `pid` answers
    /// `pid=PID`, `sleep D` waits D.
    Lines,
}

/// Where clients connect, and what they speak there.
#[derive(Clone)]
pub struct Target {
    pub address: Address,
    pub protocol: Protocol,
    /// TLS: the client configuration (trust anchors; ALPN is set per
    /// connection). HTTP only, through hyper.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = if self.tls.is_some() { " over TLS" } else { "" };
        write!(f, "{:?} at {:?}{tls}", self.protocol, self.address)
    }
}

impl Target {
    /// The target of a `serving` line: `http://ADDR`, or the echo example's
    /// `tcp://ADDR` and `unix://PATH`.
    pub fn of(serving: &Serving) -> Target {
        let (scheme, rest) = serving.url.split_once("://").expect("a URL");
        let (address, protocol) = match scheme {
            "http" => (
                Address::Tcp(rest.parse().expect("an address")),
                Protocol::Http,
            ),
            "tcp" => (
                Address::Tcp(rest.parse().expect("an address")),
                Protocol::Lines,
            ),
            "unix" => (Address::Unix(rest.into()), Protocol::Lines),
            _ => panic!("no target for {serving:?}"),
        };
        if let Address::Tcp(addr) = &address {
            assert!(
                addr.ip().is_loopback(),
                "tests only talk to loopback, not {addr}"
            );
        }
        Target {
            address,
            protocol,
            tls: None,
        }
    }

    /// The TCP address.
    pub fn socket_addr(&self) -> SocketAddr {
        match &self.address {
            Address::Tcp(addr) => *addr,
            Address::Unix(path) => panic!("{} is a Unix socket", path.display()),
        }
    }

    /// Which generation answers a new connection: the pid it names.
    pub async fn ask_pid(&self) -> i32 {
        let mut conn = RawConn::connect(self).await;
        let reply = conn
            .ask(Request::Pid)
            .await
            .unwrap_or_else(|e| panic!("{self:?}: pid: {e}"));
        reply
            .pid()
            .unwrap_or_else(|| panic!("{self:?}: no pid in {reply:?}"))
    }
}

/// A request every example answers, whatever it speaks.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// `GET /`, or the line `pid`: the answer names the pid.
    Pid,
    /// `GET /sleep?duration=D`, or the line `sleep D`: the generation prints
    /// `sleeping D in pid PID`, waits D, then answers `slept D, pid=PID`.
    Sleep(&'a str),
    /// `GET /readyz`, or the line `ready`: `ready STATE generation=N
    /// pid=PID` (HTTP 200), or `unready STATE ...` (HTTP 503).
    Ready,
}

/// A reply: an HTTP response, or a line (status 200, no headers, the line
/// without its newline as the body).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The `N` of the first `pid=N` in the body.
    pub fn pid(&self) -> Option<i32> {
        let text = self.text();
        let tail = &text[text.find("pid=")? + 4..];
        tail[..tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len())]
            .parse()
            .ok()
    }
}

/// How reading a reply failed.
#[derive(Debug)]
pub enum ReadError {
    /// A clean end-of-file before any byte of a reply.
    Closed,
    /// End-of-file in the middle of a reply.
    Truncated(String),
    /// A reset or another I/O error.
    Io(io::Error),
    /// Nothing within the bound.
    Timeout(Duration),
    /// Not a reply of the protocol.
    Malformed(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => write!(f, "end-of-file before a reply"),
            ReadError::Truncated(partial) => write!(f, "end-of-file after {partial:?}"),
            ReadError::Io(e) => write!(f, "read: {e}"),
            ReadError::Timeout(t) => write!(f, "no reply within {t:?}"),
            ReadError::Malformed(what) => write!(f, "malformed reply: {what}"),
        }
    }
}

/// What a connection about to be reused holds (see [`RawConn::probe`]).
#[derive(Debug)]
pub enum Probe {
    /// Nothing to read: still open.
    Open,
    /// The server closed it (end-of-file).
    Closed,
    /// Bytes nobody asked for.
    Unsolicited(Vec<u8>),
    /// A reset or another error.
    Error(io::Error),
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A connection driven by hand (see the module docs).
pub struct RawConn {
    stream: Stream,
    protocol: Protocol,
    /// Received and not yet consumed.
    buf: Vec<u8>,
    /// Replies read on it so far.
    pub replies: u64,
}

impl RawConn {
    /// Connects (bounded: 10 s); panics on failure.
    pub async fn connect(target: &Target) -> RawConn {
        RawConn::try_connect(target)
            .await
            .unwrap_or_else(|e| panic!("connect to {target:?}: {e}"))
    }

    /// Connects (bounded: 10 s).
    pub async fn try_connect(target: &Target) -> io::Result<RawConn> {
        assert!(target.tls.is_none(), "RawConn speaks no TLS");
        let connect = async {
            io::Result::Ok(match &target.address {
                Address::Tcp(addr) => {
                    let s = TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    Stream::Tcp(s)
                }
                Address::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
            })
        };
        let stream = tokio::time::timeout(T10, connect).await.map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, "connect: no answer within 10 s")
        })??;
        Ok(RawConn {
            stream,
            protocol: target.protocol,
            buf: Vec::new(),
            replies: 0,
        })
    }

    /// Sends `bytes` as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write_all(bytes).await,
            Stream::Unix(s) => s.write_all(bytes).await,
        }
    }

    /// Sends `request` in the connection's protocol.
    pub async fn send(&mut self, request: Request<'_>) -> io::Result<()> {
        let text = match (self.protocol, request) {
            (Protocol::Http, Request::Pid) => get("/"),
            (Protocol::Http, Request::Sleep(d)) => get(&format!("/sleep?duration={d}")),
            (Protocol::Lines, Request::Pid) => "pid\n".to_string(),
            (Protocol::Lines, Request::Sleep(d)) => format!("sleep {d}\n"),
            (Protocol::Http, Request::Ready) => get("/readyz"),
            (Protocol::Lines, Request::Ready) => "ready\n".to_string(),
        };
        self.send_raw(text.as_bytes()).await
    }

    /// Sends `GET path` (HTTP/1.1).
    pub async fn send_get(&mut self, path: &str) -> io::Result<()> {
        self.send_raw(get(path).as_bytes()).await
    }

    /// Sends `request` and reads its reply.
    pub async fn ask(&mut self, request: Request<'_>) -> Result<Reply, String> {
        self.send(request)
            .await
            .map_err(|e| format!("send {request:?}: {e}"))?;
        self.reply().await.map_err(|e| format!("{request:?}: {e}"))
    }

    /// Reads the next reply (bounded: 10 s): a line, or an HTTP response
    /// with a `Content-Length`.
    pub async fn reply(&mut self) -> Result<Reply, ReadError> {
        let reply = match tokio::time::timeout(T10, self.read_reply()).await {
            Ok(reply) => reply?,
            Err(_) => return Err(ReadError::Timeout(T10)),
        };
        self.replies += 1;
        Ok(reply)
    }

    async fn read_reply(&mut self) -> Result<Reply, ReadError> {
        if self.protocol == Protocol::Lines {
            let end = self
                .fill_until(|buf| buf.iter().position(|b| *b == b'\n'))
                .await?;
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let body = Bytes::copy_from_slice(&line[..end]);
            return Ok(Reply {
                status: 200,
                headers: Vec::new(),
                body,
            });
        }
        let head_end = self
            .fill_until(|buf| buf.windows(4).position(|w| w == b"\r\n\r\n"))
            .await?
            + 4;
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1)?.parse().ok())
            .ok_or_else(|| ReadError::Malformed(format!("status line of {head:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| ReadError::Malformed(format!("no Content-Length in {head:?}")))?;
        self.fill_until(|buf| (buf.len() >= head_end + length).then_some(()))
            .await?;
        let body = Bytes::copy_from_slice(&self.buf[head_end..head_end + length]);
        self.buf.drain(..head_end + length);
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Reads until `done` finds what it looks for in the buffer (at most
    /// 1 MiB more than it holds now).
    async fn fill_until<T>(&mut self, done: impl Fn(&[u8]) -> Option<T>) -> Result<T, ReadError> {
        let limit = self.buf.len() + (1 << 20);
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(found) = done(&self.buf) {
                return Ok(found);
            }
            if self.buf.len() > limit {
                return Err(ReadError::Malformed("a reply longer than 1 MiB".into()));
            }
            let read = match &mut self.stream {
                Stream::Tcp(s) => s.read(&mut chunk).await,
                Stream::Unix(s) => s.read(&mut chunk).await,
            };
            match read {
                Ok(0) if self.buf.is_empty() => return Err(ReadError::Closed),
                Ok(0) => {
                    return Err(ReadError::Truncated(
                        String::from_utf8_lossy(&self.buf).into_owned(),
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Waits (bounded) for the server to close the connection: `Ok` on a
    /// clean end-of-file with nothing unread; `Err` on bytes, a reset, or the
    /// timeout.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Result<(), String> {
        let mut chunk = [0u8; 1024];
        let read = async {
            match &mut self.stream {
                Stream::Tcp(s) => s.read(&mut chunk).await,
                Stream::Unix(s) => s.read(&mut chunk).await,
            }
        };
        match tokio::time::timeout(timeout, read).await {
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

    /// A look, without waiting, at a connection about to be reused.
    pub fn probe(&mut self) -> Probe {
        if !self.buf.is_empty() {
            return Probe::Unsolicited(std::mem::take(&mut self.buf));
        }
        let mut chunk = [0u8; 256];
        let read = match &self.stream {
            Stream::Tcp(s) => s.try_read(&mut chunk),
            Stream::Unix(s) => s.try_read(&mut chunk),
        };
        match read {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Probe::Open,
            Ok(0) => Probe::Closed,
            Ok(n) => Probe::Unsolicited(chunk[..n].to_vec()),
            Err(e) => Probe::Error(e),
        }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}
