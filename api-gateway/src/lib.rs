//! `marquee-gateway`: Marquee's stateless public REST API.
//!
//! It validates requests at the edge, routes inventory commands to the group's leader
//! ([`cluster`]), runs the booking saga with the payment provider ([`saga`], [`payment`]) and
//! renders every error as problem+json ([`http::error`]). It keeps no state of its own: any
//! number of gateways can serve the same cluster, and each runs the recovery [`sweeper`] that
//! settles checkouts a crashed gateway left pending.

pub mod accounts;
pub mod cache;
pub mod cluster;
pub mod http;
pub mod limits;
pub mod live_hub;
pub mod openapi;
pub mod payment;
pub mod ratelimit;
pub mod saga;
pub mod search_sync;
pub mod sweeper;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use prometheus::{
    exponential_buckets, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterClient;
use crate::limits::SWEEP_MIN_AGE_MS_MIN;
use crate::payment::http::HttpProvider;
use crate::payment::{PaymentProvider, SandboxProvider};
use crate::sweeper::SweepConfig;

/// `marquee-gateway`: Marquee's public REST API.
#[derive(Debug, Clone, Parser)]
#[command(name = "marquee-gateway", version, about)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "MARQUEE_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// gRPC addresses of the cluster's nodes, comma separated.
    #[arg(long, env = "MARQUEE_GATEWAY_NODES", value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// Secret signing access tokens (HS256), at least 32 bytes; every gateway of a cluster
    /// must share it. Prefer the environment variable to the flag (process lists show flags).
    #[arg(long, env = "MARQUEE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
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
    /// Search backend: `embedded` (an in-memory index per gateway, fed by its own sync worker),
    /// `meilisearch` (`--meili-url`) or `off`.
    #[arg(long, env = "MARQUEE_SEARCH", value_enum, default_value = "embedded")]
    pub search: search_sync::Backend,
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
    pub fn check_user_rate(&self, user_id: u64) -> Result<(), http::error::ApiError> {
        self.limits.user.check(&user_id).map_err(|wait| {
            self.metrics.rate_limited.with_label_values(&["user"]).inc();
            http::error::ApiError::RateLimited(ratelimit::retry_after_secs(wait))
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

/// Gateway metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Registry served on `/metrics`.
    pub registry: Registry,
    /// HTTP requests by method, route template and status.
    pub requests: IntCounterVec,
    /// HTTP latency by method and route template.
    pub latency: HistogramVec,
    /// Holds by event (created, released).
    pub holds: IntCounterVec,
    /// Bookings by outcome (confirmed, failed, cancelled, refunded_late).
    pub bookings: IntCounterVec,
    /// Payment calls by outcome (charged, declined, unavailable, unknown, refunded).
    pub payments: IntCounterVec,
    /// Checkouts the recovery sweeper settled, by outcome (confirmed, failed, refunded,
    /// already_settled, nothing_charged).
    pub sweeper_settled: IntCounterVec,
    /// Sweeper steps that failed and will be retried (cluster or provider unreachable).
    pub sweeper_errors: IntCounter,
    /// Requests refused by a rate limit, by limit (ip, user).
    pub rate_limited: IntCounterVec,
    /// Money charged for confirmed bookings, minor units, by currency.
    pub revenue_minor: IntCounterVec,
    /// Money refunded, minor units, by currency.
    pub refunds_minor: IntCounterVec,
    /// Public catalog reads answered from the cache (`hit`) or the cluster (`miss`).
    pub catalog_cache: IntCounterVec,
    /// Live seat-map connections closed by the gateway or the client, by reason (client,
    /// slow_consumer, unavailable).
    pub live_closed: IntCounterVec,
    /// Open live seat-map connections, set when scraped.
    pub live_connections: prometheus::IntGauge,
    /// Shard streams followed for live seat maps (one per watched show), set when scraped.
    pub live_streams: prometheus::IntGauge,
    /// Search sync progress by field (indexed_seq, head_seq, lag, rebuilds, errors), set when
    /// scraped.
    pub search: prometheus::IntGaugeVec,
}

impl Metrics {
    /// Creates and registers the metrics.
    ///
    /// # Panics
    /// On duplicate metric names, a programming error any test starting a gateway catches.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric name");
            c
        };
        let requests = counter(
            "marquee_gateway_requests_total",
            "HTTP requests",
            &["method", "route", "status"],
        );
        let holds = counter("marquee_gateway_holds_total", "Hold events", &["event"]);
        let bookings = counter("marquee_gateway_bookings_total", "Booking outcomes", &["status"]);
        let payments =
            counter("marquee_gateway_payments_total", "Payment call outcomes", &["outcome"]);
        let latency = HistogramVec::new(
            HistogramOpts::new("marquee_gateway_request_latency_seconds", "HTTP request latency")
                .buckets(exponential_buckets(0.000_1, 2.0, 18).expect("static buckets")),
            &["method", "route"],
        )
        .expect("valid metric");
        registry.register(Box::new(latency.clone())).expect("unique metric name");
        let sweeper_settled = counter(
            "marquee_gateway_sweeper_settled_total",
            "Abandoned checkouts settled by the recovery sweeper",
            &["outcome"],
        );
        let sweeper_errors = IntCounter::new(
            "marquee_gateway_sweeper_errors_total",
            "Recovery sweeper steps that failed and will be retried",
        )
        .expect("valid metric");
        registry.register(Box::new(sweeper_errors.clone())).expect("unique metric name");
        let rate_limited = counter(
            "marquee_gateway_rate_limited_total",
            "Requests refused with 429 by a rate limit",
            &["limit"],
        );
        let revenue_minor = counter(
            "marquee_gateway_revenue_minor_total",
            "Money charged for confirmed bookings, in minor units",
            &["currency"],
        );
        let refunds_minor = counter(
            "marquee_gateway_refunds_minor_total",
            "Money refunded, in minor units",
            &["currency"],
        );
        let search = prometheus::IntGaugeVec::new(
            Opts::new(
                "marquee_gateway_search",
                "Search sync worker: indexed_seq and head_seq of the change feed, lag (changes \
                 not yet indexed), rebuilds, errors",
            ),
            &["field"],
        )
        .expect("valid metric");
        registry.register(Box::new(search.clone())).expect("unique metric name");
        let catalog_cache = counter(
            "marquee_gateway_catalog_cache_total",
            "Public catalog reads by cache result (hit, miss)",
            &["result"],
        );
        let live_closed = counter(
            "marquee_gateway_live_closed_total",
            "Live seat-map connections ended, by reason (client, slow_consumer, unavailable)",
            &["reason"],
        );
        let live_connections = prometheus::IntGauge::new(
            "marquee_gateway_live_connections",
            "Open live seat-map WebSocket connections",
        )
        .expect("valid metric");
        registry.register(Box::new(live_connections.clone())).expect("unique metric name");
        let live_streams = prometheus::IntGauge::new(
            "marquee_gateway_live_streams",
            "Shard seat-map streams followed for live clients (one per watched show)",
        )
        .expect("valid metric");
        registry.register(Box::new(live_streams.clone())).expect("unique metric name");
        Metrics {
            live_closed,
            live_connections,
            live_streams,
            catalog_cache,
            search,
            registry,
            requests,
            latency,
            holds,
            bookings,
            payments,
            sweeper_settled,
            sweeper_errors,
            rate_limited,
            revenue_minor,
            refunds_minor,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Shared state of the handlers.
pub struct AppState {
    /// Client to the cluster.
    pub cluster: ClusterClient,
    /// Payment provider.
    pub payments: Arc<dyn PaymentProvider>,
    /// The sandbox provider when it is the one in use (exposes its ledger).
    pub sandbox: Option<SandboxProvider>,
    /// The `marquee-payments` client when it is the one in use (its ledger is proxied).
    pub payments_http: Option<HttpProvider>,
    /// Access-token keys and token lifetimes.
    pub tokens: accounts::TokenKeys,
    /// Password hashing, bounded.
    pub hasher: accounts::Hasher,
    /// Payment window of a checkout.
    pub checkout_window_ms: u64,
    /// Timeout of one payment call.
    pub payment_timeout: Duration,
    /// Metrics.
    pub metrics: Metrics,
    /// Rate limiters.
    pub limits: Limits,
    /// The cancellation policy.
    pub cancel_policy: saga::CancelPolicy,
    /// The search backend (`None`: search is off).
    pub search: Option<Arc<dyn search::SearchIndex>>,
    /// Progress of this gateway's search sync worker, if it runs one.
    pub search_status: Option<Arc<search::sync::SyncStatus>>,
    /// Cache of public catalog reads, invalidated from the change feed.
    pub cache: Arc<cache::CatalogCache>,
    /// Open live seat-map connections.
    pub live_connections: std::sync::atomic::AtomicUsize,
    /// Most live seat-map connections at once.
    pub live_max_connections: usize,
    /// A live send blocked this long closes the connection (4008).
    pub live_send_timeout: Duration,
    /// Shared shard streams of the watched shows.
    pub live_hub: live_hub::LiveHub,
}

/// Runs the gateway until `shutdown` fires.
///
/// # Errors
/// Invalid configuration or a port that cannot be bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(!config.nodes.is_empty(), "--nodes needs at least one address");
    anyhow::ensure!(
        (60..=86_400).contains(&config.access_token_ttl_s),
        "--access-token-ttl-s must be 60..=86400"
    );
    anyhow::ensure!(
        (1..=24 * 365).contains(&config.refresh_token_ttl_h),
        "--refresh-token-ttl-h must be 1..=8760"
    );
    let tokens = accounts::TokenKeys::new(
        config.jwt_secret.as_bytes(),
        Duration::from_secs(config.access_token_ttl_s),
        Duration::from_secs(config.refresh_token_ttl_h * 3600),
    )
    .context("--jwt-secret")?;
    anyhow::ensure!(config.payment_timeout_ms > 0, "--payment-timeout-ms must be positive");
    anyhow::ensure!(
        config.sweep_min_age_ms >= SWEEP_MIN_AGE_MS_MIN.max(config.payment_timeout_ms),
        "--sweep-min-age-ms must be at least {SWEEP_MIN_AGE_MS_MIN} and --payment-timeout-ms"
    );
    for (name, rate, burst) in [
        ("ip", config.rate_limit_ip_per_s, config.rate_limit_ip_burst),
        ("user", config.rate_limit_user_per_s, config.rate_limit_user_burst),
    ] {
        anyhow::ensure!(
            rate.is_finite() && rate >= 0.0 && (rate == 0.0 || (burst.is_finite() && burst >= 1.0)),
            "--rate-limit-{name}-per-s must be >= 0 and --rate-limit-{name}-burst >= 1"
        );
    }
    let client_ip_header = config
        .client_ip_header
        .as_deref()
        .map(|h| axum::http::HeaderName::try_from(h.to_ascii_lowercase()))
        .transpose()
        .context("--client-ip-header is not a valid header name")?;
    anyhow::ensure!(config.late_refund_percent <= 100, "--late-refund-percent must be 0..=100");
    anyhow::ensure!(
        config.full_refund_before_min >= config.cancel_cutoff_min,
        "--full-refund-before-min must be at least --cancel-cutoff-min"
    );
    let payment_timeout = Duration::from_millis(config.payment_timeout_ms);
    let (payments, sandbox, payments_http): (Arc<dyn PaymentProvider>, _, _) =
        match &config.payments_url {
            Some(url) => {
                let provider = HttpProvider::new(url, payment_timeout)?;
                tracing::info!(%url, "payments through marquee-payments");
                (Arc::new(provider.clone()), None, Some(provider))
            }
            None => {
                let sandbox = SandboxProvider::new(payment_timeout + Duration::from_millis(500));
                (Arc::new(sandbox.clone()), Some(sandbox), None)
            }
        };
    let search = search_sync::open_backend(
        config.search,
        config.meili_url.as_deref(),
        config.meili_key.as_deref(),
        &config.meili_index,
    )
    .await
    .context("search backend")?;
    let cluster = ClusterClient::new(config.nodes.clone());
    let run_sync = config.search_sync || config.search == search_sync::Backend::Embedded;
    let syncer = match (&search, run_sync) {
        (Some(index), true) => Some(search::sync::Syncer::new(
            Arc::clone(index),
            Arc::new(search_sync::ClusterCatalogSource::new(cluster.clone())),
            Box::new(search::sync::NoCursor),
        )),
        _ => None,
    };
    let search_status = syncer.as_ref().map(search::sync::Syncer::status);
    let state = Arc::new(AppState {
        cluster,
        payments,
        sandbox,
        payments_http,
        tokens,
        hasher: accounts::Hasher::new(config.password_hash_concurrency),
        checkout_window_ms: config.checkout_window_ms,
        payment_timeout,
        metrics: Metrics::new(),
        limits: Limits {
            ip: ratelimit::Limiter::new(ratelimit::Rate {
                per_second: config.rate_limit_ip_per_s,
                burst: config.rate_limit_ip_burst,
            }),
            user: ratelimit::Limiter::new(ratelimit::Rate {
                per_second: config.rate_limit_user_per_s,
                burst: config.rate_limit_user_burst,
            }),
            client_ip_header,
        },
        cancel_policy: saga::CancelPolicy {
            cutoff_ms: config.cancel_cutoff_min.saturating_mul(60_000),
            full_refund_before_ms: config.full_refund_before_min.saturating_mul(60_000),
            late_refund_percent: config.late_refund_percent,
        },
        search,
        search_status,
        cache: Arc::default(),
        live_connections: std::sync::atomic::AtomicUsize::new(0),
        live_max_connections: config.live_max_connections,
        live_send_timeout: Duration::from_millis(config.live_send_timeout_ms.max(1)),
        live_hub: live_hub::LiveHub::default(),
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, nodes = ?config.nodes, "gateway serving");
    // The sweeper stops with the server, whether it shuts down or fails.
    let sweep_stop = shutdown.child_token();
    let sweeper = (config.sweep_interval_ms > 0).then(|| {
        let sweep = SweepConfig {
            interval: Duration::from_millis(config.sweep_interval_ms),
            min_age: Duration::from_millis(config.sweep_min_age_ms),
        };
        tokio::spawn(sweeper::run(Arc::clone(&state), sweep, sweep_stop.clone()))
    });
    let cache_stop = shutdown.child_token();
    let cache_watch = {
        let (cache, cluster) = (Arc::clone(&state.cache), state.cluster.clone());
        let stop = cache_stop.clone();
        tokio::spawn(async move { cache.watch(cluster, stop).await })
    };
    let sync_stop = shutdown.child_token();
    let sync = syncer.map(|syncer| tokio::spawn(syncer.run(sync_stop.clone())));
    let app = http::routes(state).into_make_service_with_connect_info::<SocketAddr>();
    let send_buffer = config.tcp_send_buffer;
    let listener = axum::serve::ListenerExt::tap_io(listener, move |stream| {
        if let Some(bytes) = send_buffer {
            if let Err(e) = socket2::SockRef::from(&*stream).set_send_buffer_size(bytes) {
                tracing::warn!(error = %e, "setting SO_SNDBUF");
            }
        }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server");
    sweep_stop.cancel();
    sync_stop.cancel();
    cache_stop.cancel();
    cache_watch.await.context("catalog cache watcher panicked")?;
    if let Some(sync) = sync {
        sync.await.context("search sync worker panicked")?;
    }
    if let Some(sweeper) = sweeper {
        sweeper.await.context("recovery sweeper panicked")?;
    }
    served
}
