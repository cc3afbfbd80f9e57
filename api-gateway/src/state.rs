//! What every request handler shares: the workflows' handles, credentials, limits, search and
//! the live seat-map hub, built once by [`crate::run`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ApiError;
use crate::live_hub::LiveHub;
use crate::metrics::Metrics;
use crate::payment::http::HttpProvider;
use crate::payment::SandboxProvider;
use crate::ratelimit;
use crate::saga::Saga;
use crate::shards::Shards;

/// Shared state of the handlers.
pub struct AppState {
    /// Typed calls to the cluster.
    pub shards: Shards,
    /// The booking saga (book, cancel, cancel a show).
    pub saga: Saga,
    /// The sandbox provider when it is the one in use (exposes its ledger).
    pub sandbox: Option<SandboxProvider>,
    /// The `marquee-payments` client when it is the one in use (its ledger is proxied).
    pub payments_http: Option<HttpProvider>,
    /// Access-token keys and token lifetimes.
    pub tokens: auth::TokenKeys,
    /// Password hashing, bounded.
    pub hasher: auth::Hasher,
    /// Metrics.
    pub metrics: Metrics,
    /// Rate limiters.
    pub limits: Limits,
    /// The search backend (`None`: search is off).
    pub search: Option<Arc<dyn search_sync::SearchIndex>>,
    /// Progress of this gateway's search sync worker, if it runs one.
    pub search_status: Option<Arc<search_sync::sync::SyncStatus>>,
    /// Open live seat-map connections.
    pub live_connections: std::sync::atomic::AtomicUsize,
    /// Most live seat-map connections at once.
    pub live_max_connections: usize,
    /// A live send blocked this long closes the connection (4008).
    pub live_send_timeout: Duration,
    /// Shared shard streams of the watched shows.
    pub live_hub: LiveHub,
}

/// The gateway's rate limiters (see [`ratelimit`]).
#[derive(Debug)]
pub struct Limits {
    /// Per client IP, every request.
    pub ip: ratelimit::Limiter<std::net::IpAddr>,
    /// Per user, every authenticated request.
    pub user: ratelimit::Limiter<u64>,
    /// Header carrying the client IP, lowercased.
    pub client_ip_header: Option<axum::http::HeaderName>,
}

impl AppState {
    /// Takes a token from `user_id`'s rate-limit bucket.
    ///
    /// # Errors
    /// `RateLimited` with the seconds until the next token.
    pub fn check_user_rate(&self, user_id: u64) -> Result<(), ApiError> {
        self.limits.user.check(&user_id).map_err(|wait| {
            self.metrics.rate_limited.with_label_values(&["user"]).inc();
            ApiError::RateLimited(ratelimit::retry_after_secs(wait))
        })
    }
}

/// The client IP of a request: from the configured proxy header, else the TCP peer.
pub fn client_ip(state: &AppState, request: &axum::extract::Request) -> Option<std::net::IpAddr> {
    if let Some(name) = &state.limits.client_ip_header {
        return request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
    }
    request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}
