//! `marquee-gateway`: Marquee's stateless public REST API.
//!
//! It validates requests at the edge, routes inventory commands to the group's leader
//! ([`cluster`]), runs the booking saga with the payment provider ([`saga`], [`payment`]) and
//! renders every error as problem+json ([`http::error`]). It keeps no state of its own: any
//! number of gateways can serve the same cluster, and each runs the recovery [`sweeper`] that
//! settles checkouts a crashed gateway left pending.

pub mod cluster;
pub mod http;
pub mod limits;
pub mod payment;
pub mod saga;
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
    /// Token admins send in `X-Marquee-Admin-Token`.
    #[arg(long, env = "MARQUEE_ADMIN_TOKEN")]
    pub admin_token: String,
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
        Metrics {
            registry,
            requests,
            latency,
            holds,
            bookings,
            payments,
            sweeper_settled,
            sweeper_errors,
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
    /// Admin token.
    pub admin_token: String,
    /// Payment window of a checkout.
    pub checkout_window_ms: u64,
    /// Timeout of one payment call.
    pub payment_timeout: Duration,
    /// Metrics.
    pub metrics: Metrics,
}

/// Runs the gateway until `shutdown` fires.
///
/// # Errors
/// Invalid configuration or a port that cannot be bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(!config.nodes.is_empty(), "--nodes needs at least one address");
    anyhow::ensure!(config.admin_token.len() >= 8, "--admin-token must be at least 8 characters");
    anyhow::ensure!(config.payment_timeout_ms > 0, "--payment-timeout-ms must be positive");
    anyhow::ensure!(
        config.sweep_min_age_ms >= SWEEP_MIN_AGE_MS_MIN.max(config.payment_timeout_ms),
        "--sweep-min-age-ms must be at least {SWEEP_MIN_AGE_MS_MIN} and --payment-timeout-ms"
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
    let state = Arc::new(AppState {
        cluster: ClusterClient::new(config.nodes.clone()),
        payments,
        sandbox,
        payments_http,
        admin_token: config.admin_token.clone(),
        checkout_window_ms: config.checkout_window_ms,
        payment_timeout,
        metrics: Metrics::new(),
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
    let served = axum::serve(listener, http::routes(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server");
    sweep_stop.cancel();
    if let Some(sweeper) = sweeper {
        sweeper.await.context("recovery sweeper panicked")?;
    }
    served
}
