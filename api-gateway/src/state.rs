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
    /// What one customer may hold (docs/api.md, "Limits").
    pub holds: HoldPolicy,
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
    /// Holds created per account.
    pub hold_user: ratelimit::Limiter<u64>,
    /// Holds created per client IP.
    pub hold_ip: ratelimit::Limiter<std::net::IpAddr>,
    /// Accounts registered per client IP.
    pub register_ip: ratelimit::Limiter<std::net::IpAddr>,
    /// Header carrying the client IP, lowercased.
    pub client_ip_header: Option<axum::http::HeaderName>,
}

/// The anti-hoarding policy of holds (gateway flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldPolicy {
    /// Seats one account may hold on one show at once (carried in every `Hold`, enforced by
    /// the shard, so it holds across gateways).
    pub seats_per_account_max: u32,
    /// Longest `ttl_ms` anyone may ask for.
    pub ttl_max_ms: u64,
}

/// The client IP of the request being served, put in the request's extensions by the HTTP
/// layer's observer (`None` when it cannot be told, e.g. a proxy header is missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl AppState {
    /// Takes a token from `user_id`'s rate-limit bucket.
    ///
    /// # Errors
    /// `RateLimited` with the seconds until the next token.
    pub fn check_user_rate(&self, user_id: u64) -> Result<(), ApiError> {
        self.limits.user.check(&user_id).map_err(|wait| self.limited("user", wait))
    }

    /// Takes a token from the hold buckets of `user_id` and of the client IP.
    ///
    /// # Errors
    /// `RateLimited` with the seconds until the next token.
    pub fn check_hold_rate(&self, user_id: u64, ip: ClientIp) -> Result<(), ApiError> {
        self.limits.hold_user.check(&user_id).map_err(|wait| self.limited("hold_user", wait))?;
        match ip.0 {
            Some(ip) => {
                self.limits.hold_ip.check(&ip).map_err(|wait| self.limited("hold_ip", wait))
            }
            None => Ok(()),
        }
    }

    /// Takes a token from the client IP's registration bucket.
    ///
    /// # Errors
    /// `RateLimited` with the seconds until the next token.
    pub fn check_register_rate(&self, ip: ClientIp) -> Result<(), ApiError> {
        match ip.0 {
            Some(ip) => {
                self.limits.register_ip.check(&ip).map_err(|wait| self.limited("register_ip", wait))
            }
            None => Ok(()),
        }
    }

    fn limited(&self, limit: &str, wait: Duration) -> ApiError {
        self.metrics.rate_limited.with_label_values(&[limit]).inc();
        ApiError::RateLimited(ratelimit::retry_after_secs(wait))
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
