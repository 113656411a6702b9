//! The HTTP app every hyper example serves, whatever runtime runs it:
//!
//! - `GET /` → `hello from pid=PID`;
//! - `GET /sleep?duration=D` (D like `500ms`, `2s`, `1m`; `/sleep/` too)
//!   prints `sleeping D in pid PID`, waits D, then answers `slept D, pid=PID`;
//! - `POST /echo` → the request body, byte for byte (up to 16 MiB);
//! - `GET /readyz` → 200 `ready serving generation=N pid=PID`, or 503
//!   `unready STATE ...` from the moment a shutdown begins;
//! - `GET /metrics` → the Prometheus text page (`examples/common/observe.rs`);
//! - `GET /peer` → `peer=IP:PORT`, the client's address (`PeerAddr`);
//! - `GET /stream` → a streamed body: `streaming in pid PID`, then `tick`
//!   every 100 ms, until this generation starts draining: then `draining
//!   pid=PID` and the end of the body (at most 10 minutes of ticks).
//!
//! The examples pass their runtime's sleep function in.

#![allow(dead_code)] // each example uses the part it needs

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use handoff::hyper::{Draining, PeerAddr};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};

/// A runtime's sleep.
pub type Sleep = fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// The response body of every route.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

const TICK: Duration = Duration::from_millis(100);
/// Ten minutes of ticks.
const MAX_TICKS: u32 = 6000;

/// The app as a hyper service.
pub fn service(
    sleep: Sleep,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |request| handle(request, sleep))
}

fn reply(status: StatusCode, body: String) -> Result<Response<Body>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    Ok(response)
}

fn status_reply((status, body): (u16, String)) -> Result<Response<Body>, Infallible> {
    reply(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
}

async fn handle(request: Request<Incoming>, sleep: Sleep) -> Result<Response<Body>, Infallible> {
    let pid = std::process::id();
    match request.uri().path() {
        "/" => reply(StatusCode::OK, format!("hello from pid={pid}\n")),
        "/echo" if request.method() == Method::POST => echo(request).await,
        "/readyz" => status_reply(super::observe::readyz()),
        "/metrics" => status_reply(super::observe::metrics()),
        "/peer" => match request.extensions().get::<PeerAddr>() {
            Some(peer) => reply(StatusCode::OK, format!("peer={peer}\n")),
            None => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no peer address\n".into(),
            ),
        },
        "/sleep" | "/sleep/" => {
            let duration = request
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|pair| pair.strip_prefix("duration="));
            let Some(text) = duration else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "missing duration, e.g. /sleep?duration=2s\n".into(),
                );
            };
            let Some(wait) = super::cli::parse_duration(text) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    format!("bad duration {text:?}: expected e.g. 500ms, 2s, 1m\n"),
                );
            };
            println!("sleeping {text} in pid {pid}");
            sleep(wait).await;
            reply(StatusCode::OK, format!("slept {text}, pid={pid}\n"))
        }
        "/stream" => {
            let Some(draining) = request.extensions().get::<Draining>().cloned() else {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no drain signal\n".into(),
                );
            };
            Ok(Response::new(stream(draining, sleep)))
        }
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// The largest body `POST /echo` sends back.
const MAX_ECHO: usize = 16 << 20;

/// `POST /echo`: the request body, byte for byte.
async fn echo(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    match http_body_util::Limited::new(request.into_body(), MAX_ECHO)
        .collect()
        .await
    {
        Ok(body) => Ok(Response::new(Full::new(body.to_bytes()).boxed_unsync())),
        Err(e) => reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("cannot read the body (at most {MAX_ECHO} bytes): {e}\n"),
        ),
    }
}

/// What the stream sends next.
enum Step {
    Start,
    Tick(u32),
    Done,
}

/// `streaming in pid PID`, ticks, and `draining pid=PID` once draining starts.
fn stream(draining: Draining, sleep: Sleep) -> Body {
    let pid = std::process::id();
    let lines = futures_util::stream::unfold(Step::Start, move |step| {
        let draining = draining.clone();
        async move {
            let (line, next) = match step {
                Step::Start => (format!("streaming in pid {pid}\n"), Step::Tick(0)),
                Step::Tick(n) if n < MAX_TICKS => {
                    let mut drained = std::pin::pin!(draining.signal());
                    let tick = sleep(TICK);
                    match futures_util::future::select(drained.as_mut(), tick).await {
                        futures_util::future::Either::Left(_) => {
                            (format!("draining pid={pid}\n"), Step::Done)
                        }
                        futures_util::future::Either::Right(_) => {
                            ("tick\n".into(), Step::Tick(n + 1))
                        }
                    }
                }
                Step::Tick(_) => ("done\n".into(), Step::Done),
                Step::Done => return None,
            };
            Some((Ok(Frame::data(Bytes::from(line))), next))
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(lines.boxed()))
}
