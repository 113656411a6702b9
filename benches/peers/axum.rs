//! An axum router: bare (`axum::serve`) and on handoff
//! (`handoff::hyper` with the router as a tower service).

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use hyper_util::service::TowerToHyperService;

fn router() -> Router {
    Router::new().route("/", get(|| async { super::hello() }))
}

pub fn bare() -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        super::serving(listener.local_addr()?);
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router()).await?;
        Ok(())
    })
}

pub fn handoff() -> Result<(), Box<dyn std::error::Error>> {
    let mut handoff = super::handoff()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let server = handoff::hyper::Server::new();
        let service = TowerToHyperService::new(router());
        let bound = server.listen(&mut handoff, "http", "127.0.0.1:0", service)?;
        super::print_addr(bound);
        handoff.run(handoff::tokio::Tokio, server).await?;
        Ok(())
    })
}
