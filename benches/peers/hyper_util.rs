//! hyper 1 on tokio: bare (hyper-util's auto builder, HTTP/1.1 and h2 on one
//! port) and on handoff (`handoff::hyper`, which serves both the same way).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from(super::hello()))))
}

pub fn bare() -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        super::serving(listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    })
}

pub fn handoff() -> Result<(), Box<dyn std::error::Error>> {
    let mut handoff = super::handoff()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let server = handoff::hyper::Server::new();
        let bound = server.listen(&mut handoff, "http", "127.0.0.1:0", service_fn(hello))?;
        super::print_addr(bound);
        handoff.run(handoff::tokio::Tokio, server).await?;
        Ok(())
    })
}
