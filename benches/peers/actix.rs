//! actix-web: a bare `HttpServer` and the same on handoff
//! (`handoff::actix::Server`), both with 2 workers as in `examples/actix.rs`.
//! actix sets TCP_NODELAY itself.

use actix_web::{App, HttpServer, web};

const WORKERS: usize = 2;

async fn hello() -> String {
    super::hello()
}

pub fn bare() -> Result<(), Box<dyn std::error::Error>> {
    actix_web::rt::System::new().block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        super::serving(listener.local_addr()?);
        HttpServer::new(|| App::new().route("/", web::get().to(hello)))
            .workers(WORKERS)
            .listen(listener)?
            .run()
            .await?;
        Ok(())
    })
}

pub fn handoff() -> Result<(), Box<dyn std::error::Error>> {
    let mut handoff = super::handoff()?;
    actix_web::rt::System::new().block_on(async {
        let server = handoff::actix::Server::new();
        let http = HttpServer::new(server.app(|| App::new().route("/", web::get().to(hello))))
            .workers(WORKERS);
        let (http, bound) = server.listen(&mut handoff, http, "http", "127.0.0.1:0")?;
        super::print_addr(bound);
        server.start(&handoff, http)?;
        handoff.run(handoff::tokio::Tokio, server).await?;
        Ok(())
    })
}
