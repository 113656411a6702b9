//! hyper 1 on smol: bare (smol-hyper's I/O glue, hyper-util's auto builder,
//! connections on smol's global executor) and on handoff
//! (`handoff::hyper::Server::with_runtime(Smol::new())`, as `examples/smol.rs`).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use smol_hyper::rt::FuturesIo;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from(super::hello()))))
}

/// smol's global executor (where `smol::spawn` puts tasks), for hyper's
/// HTTP/2 streams.
#[derive(Clone, Copy)]
struct Global;

impl<F> hyper::rt::Executor<F> for Global
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        smol::spawn(future).detach();
    }
}

pub fn bare() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await?;
        super::serving(listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            smol::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(Global);
                let _ = builder
                    .serve_connection(FuturesIo::new(stream), service_fn(hello))
                    .await;
            })
            .detach();
        }
    })
}

pub fn handoff() -> Result<(), Box<dyn std::error::Error>> {
    let mut handoff = super::handoff()?;
    smol::block_on(async {
        let server = handoff::hyper::Server::with_runtime(handoff::smol::Smol::new());
        let bound = server.listen(&mut handoff, "http", "127.0.0.1:0", service_fn(hello))?;
        super::print_addr(bound);
        let runtime = server.runtime().clone();
        handoff.run(runtime, server).await?;
        Ok(())
    })
}
