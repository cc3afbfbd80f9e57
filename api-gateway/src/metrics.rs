//! The gateway's Prometheus metrics, registered once per process and served on `/metrics`.
//!
//! One struct so every counter is declared (name, help, labels) in one place; layers get the
//! handles they count with, and `/metrics` sets the gauges that are read when scraped.

use prometheus::{
    exponential_buckets, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

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
    /// Stale checkouts the sweeper's last look at each shard found and could not settle.
    pub sweeper_backlog: prometheus::IntGauge,
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
        let sweeper_backlog = prometheus::IntGauge::new(
            "marquee_gateway_sweeper_backlog",
            "Abandoned checkouts the recovery sweeper found and has not settled yet (retried \
             every pass)",
        )
        .expect("valid metric");
        registry.register(Box::new(sweeper_backlog.clone())).expect("unique metric name");
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
            sweeper_backlog,
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
