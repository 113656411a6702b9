//! HTTP clients through hyper: HTTP/1.1 keep-alive, a new connection per
//! request, or HTTP/2 ([`Mode`]), plain or TLS. A request is never sent
//! again; [`refused_stream`] tells the one failure a client may set apart.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::ServerName;

use super::client::{Reply, Target};
use super::process::{T5, T10};

/// How a client talks HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// HTTP/1.1, one connection for request after request.
    KeepAlive,
    /// HTTP/1.1, a new connection for every request.
    NewConnection,
    /// HTTP/2, one connection (ALPN `h2` with TLS, prior knowledge without).
    H2,
}

/// Plain or TLS client stream.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One client connection, driven by a task of its own.
pub struct HttpConn {
    sender: Sender,
    /// Resolves when the connection is closed: `Ok` when the server closed
    /// it cleanly, `Err` on a protocol or I/O error.
    pub closed: JoinHandle<Result<(), String>>,
    authority: String,
    /// Responses received on it so far.
    pub served: u64,
    /// The certificate the server presented (TLS).
    pub cert: Option<Vec<u8>>,
    /// Whether the last request failed without being sent: hyper's HTTP/2
    /// client handed it back (the connection was going away).
    pub unsent: bool,
    /// The client's end of the connection.
    pub local: SocketAddr,
}

impl HttpConn {
    /// Connects to `target` (TCP, TLS if it has it, then HTTP in `mode`).
    pub async fn connect(target: &Target, mode: Mode) -> Result<HttpConn, String> {
        let addr = target.socket_addr();
        let tcp = tokio::time::timeout(T10, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).ok();
        let local = tcp.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        let (io, cert, scheme): (Box<dyn Io>, _, _) = match &target.tls {
            None => (Box::new(tcp), None, "http"),
            Some(config) => {
                let alpn: &[u8] = if mode == Mode::H2 { b"h2" } else { b"http/1.1" };
                let mut config = (**config).clone();
                config.alpn_protocols = vec![alpn.to_vec()];
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let name = ServerName::try_from("localhost").expect("a server name");
                let stream = tokio::time::timeout(T10, connector.connect(name, tcp))
                    .await
                    .map_err(|_| "TLS handshake timed out".to_string())?
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                let session = stream.get_ref().1;
                if session.alpn_protocol() != Some(alpn) {
                    return Err(format!("ALPN chose {:?}", session.alpn_protocol()));
                }
                let cert = session
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                (Box::new(stream), cert, "https")
            }
        };
        let io = TokioIo::new(io);
        let (sender, closed) = if mode == Mode::H2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            (
                Sender::H2(sender),
                tokio::spawn(async move { conn.await.map_err(|e| e.to_string()) }),
            )
        } else {
            let (sender, conn) = http1::handshake(io)
                .await
                .map_err(|e| format!("h1 handshake: {e}"))?;
            (
                Sender::H1(sender),
                tokio::spawn(async move { conn.await.map_err(|e| e.to_string()) }),
            )
        };
        Ok(HttpConn {
            sender,
            closed,
            authority: format!("{scheme}://localhost:{}", addr.port()),
            served: 0,
            cert,
            unsent: false,
            local,
        })
    }

    /// The task that resolves when the connection closes, and a guard that
    /// keeps the client side open (dropping it lets the client close).
    pub fn split(self) -> (impl Send + 'static, JoinHandle<Result<(), String>>) {
        (self.sender, self.closed)
    }

    /// Whether the connection can take another request (false once the
    /// server closed it, or sent GOAWAY); bounded: 5 s.
    pub async fn ready(&mut self) -> bool {
        let ready = match &mut self.sender {
            Sender::H1(s) => tokio::time::timeout(T5, s.ready()).await,
            Sender::H2(s) => tokio::time::timeout(T5, s.ready()).await,
        };
        matches!(ready, Ok(Ok(())))
    }

    /// Sends `method path` with `body`; the response head, its body unread.
    pub async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error> {
        let uri = match self.sender {
            Sender::H1(_) => path.to_string(),
            Sender::H2(_) => format!("{}{path}", self.authority),
        };
        let request = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, "localhost")
            .body(Full::new(body))
            .expect("a request");
        self.unsent = false;
        let response = match &mut self.sender {
            Sender::H1(s) => {
                // hyper rejects a request sent before the connection is
                // ready again (the previous response just read).
                s.ready().await?;
                s.send_request(request).await
            }
            Sender::H2(s) => {
                // Gone before the request was handed over: nothing was sent.
                if let Err(e) = s.ready().await {
                    self.unsent = true;
                    return Err(e);
                }
                s.try_send_request(request).await.map_err(|mut e| {
                    // hyper hands a request back only if it never sent it.
                    self.unsent = e.take_message().is_some();
                    e.into_error()
                })
            }
        }?;
        self.served += 1;
        Ok(response)
    }

    /// Sends `GET path` and reads the whole response.
    pub async fn get(&mut self, path: &str) -> Result<Reply, hyper::Error> {
        let response = self.send(hyper::Method::GET, path, Bytes::new()).await?;
        read_reply(response).await
    }

    /// Sends `POST path` with `body` and reads the whole response.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Reply, hyper::Error> {
        let response = self.send(hyper::Method::POST, path, body).await?;
        read_reply(response).await
    }
}

async fn read_reply(
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<Reply, hyper::Error> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Whether a failed HTTP/2 request is a stream the server provably never
/// received: hyper's client handed the request back unsent (`unsent`: the
/// connection was going away after a GOAWAY), or the server refused it with
/// GOAWAY below its stream id or REFUSED_STREAM (RFC 9113, section 8.7).
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
