//! The gateway's flags and environment (`marquee-gateway --help`), and their checks.
//!
//! Parsed once by the binary; [`crate::run`] validates what clap cannot express (ranges that
//! depend on each other) before anything starts.

use std::net::SocketAddr;

use clap::Parser;
use search_sync::backend::Backend;

use crate::limits::{
    HOLD_SEATS_PER_ACCOUNT_HARD_MAX, SWEEP_MIN_AGE_MS_MIN, TTL_MS_MAX, TTL_MS_MIN,
};

/// `marquee-gateway`: Marquee's public REST API.
#[derive(Debug, Clone, Parser)]
#[command(name = "marquee-gateway", version, about)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "MARQUEE_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Tokio worker threads (0: one per CPU). Processes sharing a small machine run best with
    /// 1–2 each (docs/benchmarks.md).
    #[arg(long, env = "MARQUEE_GATEWAY_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
    /// `ProposeBatch` calls in flight to one node at once (the gateway's proposal batching,
    /// docs/architecture.md "Batching"; docs/benchmarks.md has measurements).
    #[arg(long, env = "MARQUEE_GATEWAY_PROPOSE_INFLIGHT",
          default_value_t = client::PROPOSE_INFLIGHT_DEFAULT as u64,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub propose_inflight: u64,
    /// gRPC addresses of the cluster's nodes, comma separated.
    #[arg(long, env = "MARQUEE_GATEWAY_NODES", value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// Secret signing access tokens (HS256), at least 32 bytes; every gateway of a cluster
    /// must share it. Prefer the environment variable to the flag (process lists show flags).
    #[arg(long, env = "MARQUEE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// Secret ticket codes are computed with (HMAC-SHA-256 of the booking id), at least 32
    /// bytes; every gateway of a cluster must share it, and it is never written to the cluster.
    /// Unset: a key derived from `--jwt-secret`. Changing it changes the codes of bookings
    /// confirmed afterwards only (codes are stored with their booking).
    #[arg(long, env = "MARQUEE_TICKET_SECRET", hide_env_values = true)]
    pub ticket_secret: Option<String>,
    /// Lifetime of an access token, seconds.
    #[arg(long, env = "MARQUEE_GATEWAY_ACCESS_TOKEN_TTL_S", default_value_t = 900)]
    pub access_token_ttl_s: u64,
    /// Lifetime of a refresh token (a session's inactivity limit), hours.
    #[arg(long, env = "MARQUEE_GATEWAY_REFRESH_TOKEN_TTL_H", default_value_t = 720)]
    pub refresh_token_ttl_h: u64,
    /// Password hashes (argon2id, ~19 MiB and tens of ms each) computed at once; more
    /// register/login requests queue.
    #[arg(long, env = "MARQUEE_GATEWAY_PASSWORD_HASH_CONCURRENCY", default_value_t = 2)]
    pub password_hash_concurrency: usize,
    /// How long a checkout may wait for its payment before it expires.
    #[arg(long, env = "MARQUEE_GATEWAY_CHECKOUT_WINDOW_MS", default_value_t = 120_000)]
    pub checkout_window_ms: u64,
    /// Timeout of one payment provider call.
    #[arg(long, env = "MARQUEE_GATEWAY_PAYMENT_TIMEOUT_MS", default_value_t = 3_000)]
    pub payment_timeout_ms: u64,
    /// Base URL of a `marquee-payments` service (e.g. `http://127.0.0.1:8090`). Unset: the
    /// in-process sandbox provider.
    #[arg(long, env = "MARQUEE_PAYMENTS_URL")]
    pub payments_url: Option<String>,
    /// Pause between recovery sweeper passes; 0 turns the sweeper off.
    #[arg(long, env = "MARQUEE_GATEWAY_SWEEP_INTERVAL_MS", default_value_t = 5_000)]
    pub sweep_interval_ms: u64,
    /// Age a pending checkout must reach before the sweeper settles it; at least the payment
    /// timeout, so live sagas finish first.
    #[arg(long, env = "MARQUEE_GATEWAY_SWEEP_MIN_AGE_MS", default_value_t = 30_000)]
    pub sweep_min_age_ms: u64,
    /// Customers cannot cancel a booking this many minutes before its show starts.
    #[arg(long, env = "MARQUEE_GATEWAY_CANCEL_CUTOFF_MIN", default_value_t = 60)]
    pub cancel_cutoff_min: u64,
    /// Cancelled at least this many minutes before the start: full refund.
    #[arg(long, env = "MARQUEE_GATEWAY_FULL_REFUND_BEFORE_MIN", default_value_t = 1440)]
    pub full_refund_before_min: u64,
    /// Cancelled later than that (but before the cutoff): this percentage is refunded.
    #[arg(long, env = "MARQUEE_GATEWAY_LATE_REFUND_PERCENT", default_value_t = 50)]
    pub late_refund_percent: u8,
    /// Sustained requests per second one client IP may make to this gateway; 0 turns the
    /// per-IP limit off.
    #[arg(long, env = "MARQUEE_GATEWAY_RATE_LIMIT_IP_PER_S", default_value_t = 50.0)]
    pub rate_limit_ip_per_s: f64,
    /// Burst one client IP may make at once.
    #[arg(long, env = "MARQUEE_GATEWAY_RATE_LIMIT_IP_BURST", default_value_t = 100.0)]
    pub rate_limit_ip_burst: f64,
    /// Sustained requests per second one signed-in user may make to this gateway; 0 turns the
    /// per-user limit off.
    #[arg(long, env = "MARQUEE_GATEWAY_RATE_LIMIT_USER_PER_S", default_value_t = 10.0)]
    pub rate_limit_user_per_s: f64,
    /// Burst one signed-in user may make at once.
    #[arg(long, env = "MARQUEE_GATEWAY_RATE_LIMIT_USER_BURST", default_value_t = 30.0)]
    pub rate_limit_user_burst: f64,
    /// Seats one customer may hold on one show at once (active holds and checkouts), 1..=20.
    #[arg(long, env = "MARQUEE_GATEWAY_HOLD_SEATS_PER_ACCOUNT_MAX", default_value_t = 10)]
    pub hold_seats_per_account_max: u32,
    /// Longest hold anyone may ask for (`ttl_ms`), ms (at most 2 hours).
    #[arg(long, env = "MARQUEE_GATEWAY_HOLD_TTL_MAX_MS", default_value_t = HOLD_TTL_MAX_MS_DEFAULT)]
    pub hold_ttl_max_ms: u64,
    /// Holds one signed-in account may create per minute (sustained); 0 turns it off.
    #[arg(long, env = "MARQUEE_GATEWAY_HOLD_RATE_USER_PER_MIN", default_value_t = 10.0)]
    pub hold_rate_user_per_min: f64,
    /// Holds one account may create at once.
    #[arg(long, env = "MARQUEE_GATEWAY_HOLD_RATE_USER_BURST", default_value_t = 10.0)]
    pub hold_rate_user_burst: f64,
    /// Holds one client IP may create per minute (sustained); 0 turns it off.
    #[arg(long, env = "MARQUEE_GATEWAY_HOLD_RATE_IP_PER_MIN", default_value_t = 60.0)]
    pub hold_rate_ip_per_min: f64,
    /// Holds one client IP may create at once.
    #[arg(long, env = "MARQUEE_GATEWAY_HOLD_RATE_IP_BURST", default_value_t = 60.0)]
    pub hold_rate_ip_burst: f64,
    /// Accounts one client IP may register per minute (sustained); 0 turns it off.
    #[arg(long, env = "MARQUEE_GATEWAY_REGISTER_RATE_IP_PER_MIN", default_value_t = 0.5)]
    pub register_rate_ip_per_min: f64,
    /// Accounts one client IP may register at once.
    #[arg(long, env = "MARQUEE_GATEWAY_REGISTER_RATE_IP_BURST", default_value_t = 5.0)]
    pub register_rate_ip_burst: f64,
    /// Search backend: `embedded` (an in-memory index per gateway, fed by its own sync worker),
    /// `meilisearch` (`--meili-url`) or `off`.
    #[arg(long, env = "MARQUEE_SEARCH", value_enum, default_value = "embedded")]
    pub search: Backend,
    /// Meilisearch base URL, e.g. `http://127.0.0.1:7700`.
    #[arg(long, env = "MEILI_URL")]
    pub meili_url: Option<String>,
    /// Meilisearch API key.
    #[arg(long, env = "MEILI_MASTER_KEY", hide_env_values = true)]
    pub meili_key: Option<String>,
    /// Meilisearch index name.
    #[arg(long, env = "MARQUEE_MEILI_INDEX", default_value = "movies")]
    pub meili_index: String,
    /// Run the search sync worker in this gateway. Always on for `embedded`; with
    /// `meilisearch`, turn it off on all but one gateway, or run `marquee-search-sync` instead.
    #[arg(long, env = "MARQUEE_SEARCH_SYNC", default_value_t = true, action = clap::ArgAction::Set)]
    pub search_sync: bool,
    /// Live seat-map WebSocket connections this gateway accepts at once (`503` beyond).
    #[arg(long, env = "MARQUEE_GATEWAY_LIVE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub live_max_connections: usize,
    /// A live seat-map client whose socket takes no data for this long is closed as a slow
    /// consumer (WebSocket close code 4008).
    #[arg(long, env = "MARQUEE_GATEWAY_LIVE_SEND_TIMEOUT_MS", default_value_t = 10_000)]
    pub live_send_timeout_ms: u64,
    /// Kernel send buffer (SO_SNDBUF, bytes) of each accepted connection. Unset: the kernel's
    /// autotuning, which lets one client that stops reading pin up to `net.ipv4.tcp_wmem`'s
    /// maximum (4 MiB by default); with many live seat-map connections, a bound such as
    /// 65536 caps that kernel memory and makes slow consumers show sooner.
    #[arg(long, env = "MARQUEE_GATEWAY_TCP_SEND_BUFFER")]
    pub tcp_send_buffer: Option<usize>,
    /// Header naming the client IP when the gateway sits behind a proxy that sets it (e.g.
    /// `x-forwarded-for`: its first address is used). Unset: the TCP peer address. Only set it
    /// behind a proxy that overwrites the header, or clients can pick their own bucket.
    #[arg(long, env = "MARQUEE_GATEWAY_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
}

/// Default of `--hold-ttl-max-ms`: 15 minutes.
pub const HOLD_TTL_MAX_MS_DEFAULT: u64 = 900_000;

/// Why the gateway did not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A flag (or combination of flags) is invalid.
    #[error("{0}")]
    Config(String),
    /// The signing secret is unusable.
    #[error("--jwt-secret: {0}")]
    JwtSecret(#[from] auth::CredentialError),
    /// The `marquee-payments` URL is unusable.
    #[error(transparent)]
    PaymentsUrl(#[from] crate::payment::http::InvalidUrl),
    /// The search backend could not be opened.
    #[error("search backend: {0}")]
    Search(#[from] search_sync::SearchError),
    /// The listening port could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
    /// A background task panicked.
    #[error("{0} panicked")]
    Panicked(&'static str),
}

fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), StartError> {
    if ok {
        Ok(())
    } else {
        Err(StartError::Config(message()))
    }
}

impl Config {
    /// Checks what clap cannot: ranges and flags that depend on each other.
    ///
    /// # Errors
    /// [`StartError::Config`] naming the flag.
    pub fn validate(&self) -> Result<(), StartError> {
        ensure(!self.nodes.is_empty(), || "--nodes needs at least one address".into())?;
        ensure((60..=86_400).contains(&self.access_token_ttl_s), || {
            "--access-token-ttl-s must be 60..=86400".into()
        })?;
        ensure((1..=24 * 365).contains(&self.refresh_token_ttl_h), || {
            "--refresh-token-ttl-h must be 1..=8760".into()
        })?;
        ensure(self.payment_timeout_ms > 0, || "--payment-timeout-ms must be positive".into())?;
        ensure(self.sweep_min_age_ms >= SWEEP_MIN_AGE_MS_MIN.max(self.payment_timeout_ms), || {
            format!(
                "--sweep-min-age-ms must be at least {SWEEP_MIN_AGE_MS_MIN} and --payment-timeout-ms"
            )
        })?;
        for (name, rate, burst) in [
            ("rate-limit-ip-per-s", self.rate_limit_ip_per_s, self.rate_limit_ip_burst),
            ("rate-limit-user-per-s", self.rate_limit_user_per_s, self.rate_limit_user_burst),
            ("hold-rate-user-per-min", self.hold_rate_user_per_min, self.hold_rate_user_burst),
            ("hold-rate-ip-per-min", self.hold_rate_ip_per_min, self.hold_rate_ip_burst),
            (
                "register-rate-ip-per-min",
                self.register_rate_ip_per_min,
                self.register_rate_ip_burst,
            ),
        ] {
            ensure(
                rate.is_finite()
                    && rate >= 0.0
                    && (rate == 0.0 || (burst.is_finite() && burst >= 1.0)),
                || {
                    let burst = name.replace("per-s", "burst").replace("per-min", "burst");
                    format!("--{name} must be >= 0 and --{burst} >= 1")
                },
            )?;
        }
        ensure(
            (1..=HOLD_SEATS_PER_ACCOUNT_HARD_MAX).contains(&self.hold_seats_per_account_max),
            || {
                format!(
                    "--hold-seats-per-account-max must be 1..={HOLD_SEATS_PER_ACCOUNT_HARD_MAX}"
                )
            },
        )?;
        ensure((TTL_MS_MIN..=TTL_MS_MAX).contains(&self.hold_ttl_max_ms), || {
            format!("--hold-ttl-max-ms must be {TTL_MS_MIN}..={TTL_MS_MAX}")
        })?;
        if let Some(secret) = &self.ticket_secret {
            ensure(secret.len() >= auth::JWT_SECRET_BYTES_MIN, || {
                format!("--ticket-secret must be at least {} bytes", auth::JWT_SECRET_BYTES_MIN)
            })?;
        }
        ensure(self.late_refund_percent <= 100, || "--late-refund-percent must be 0..=100".into())?;
        ensure(self.full_refund_before_min >= self.cancel_cutoff_min, || {
            "--full-refund-before-min must be at least --cancel-cutoff-min".into()
        })
    }

    /// The client-IP header, lowercased.
    ///
    /// # Errors
    /// Not a valid header name.
    pub fn client_ip_header(&self) -> Result<Option<axum::http::HeaderName>, StartError> {
        self.client_ip_header
            .as_deref()
            .map(|h| axum::http::HeaderName::try_from(h.to_ascii_lowercase()))
            .transpose()
            .map_err(|e| {
                StartError::Config(format!("--client-ip-header is not a valid header name: {e}"))
            })
    }
}
