//! The admin listener: an HTTP/1.1 server on threads of its own serving Prometheus
//! metrics, health, a JSON API (stats, clients with kick, subscriptions, retained
//! messages) and a live dashboard page. It asks the shards over bounded channels
//! ([`query::AdminHandle`]); a shard answers between its other tasks and never waits on it.

mod api;
pub mod http;
mod prometheus;
pub mod query;

use std::time::Instant;

pub use query::AdminHandle;

use crate::config::AdminConfig;

/// A running admin listener; dropping it stops it.
pub struct AdminServer {
    server: http::Server,
}

impl AdminServer {
    /// Binds `config.listen` and serves it, asking the shards through `handle` (which the
    /// broker connects when it starts: until then the API answers 503).
    pub fn start(config: &AdminConfig, handle: AdminHandle) -> std::io::Result<AdminServer> {
        let api = api::Api {
            handle,
            token: config.token.clone(),
            started: Instant::now(),
        };
        let handler: http::Handler = std::sync::Arc::new(move |req: &http::Request| api.route(req));
        let server = http::Server::start(config.listen, handler)?;
        let addr = server.local_addr();
        if !addr.ip().is_loopback() && config.token.is_empty() {
            tracing::warn!(%addr, "the admin listener is reachable from other hosts without a token: set admin.token");
        }
        tracing::info!(%addr, token = !config.token.is_empty(), "admin listener");
        Ok(AdminServer { server })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }
}
