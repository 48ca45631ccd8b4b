//! The built-in demo target: injectable timings and faults, one file of routes per probe
//! kind. It backs the shipped default config (a fresh install shows real numbers with no
//! outside service), the integration tests and the benchmarks, where known delays make the
//! expected numbers known. Routes and parameters: docs/demo.md.

mod browser;
mod dns;
mod grpc;
mod http;
mod llm;
mod vector;
mod workflow;
mod ws;

use std::net::SocketAddr;

pub use browser::gzipped_asset;

use axum::Router;
use schemars::JsonSchema;
use serde::Deserialize;

/// The built-in demo target (see `demo/`): lets a fresh install show real numbers
/// with no outside service.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Address the demo target listens on, e.g. "127.0.0.1:9465".
    #[schemars(with = "String")]
    pub listen: SocketAddr,
}

/// Every kind's routes on one router.
pub fn router() -> Router {
    Router::new()
        .merge(http::routes())
        .merge(llm::routes())
        .merge(ws::routes())
        .merge(browser::routes())
        .merge(vector::routes())
        .merge(workflow::routes())
        .merge(grpc::routes())
        .layer(axum::middleware::map_response(http::add_request_id))
}

/// Serves the target (through the daemon's hardened accept loop) until the future is
/// dropped; DNS answers come over UDP on the same port, when it is free.
pub async fn serve(listener: tokio::net::TcpListener) {
    let udp = match listener.local_addr() {
        Ok(addr) => tokio::net::UdpSocket::bind(addr).await.ok(),
        Err(_) => None,
    };
    let _dns = udp.map(|socket| AbortOnDrop(tokio::spawn(dns::serve(socket))));
    crate::server::serve(
        listener,
        router(),
        crate::server::Limits::default(),
        crate::web_security::shared(Default::default()),
        std::future::pending(),
    )
    .await
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
