//! `marquee-payments`: a sandbox payment service with fault injection, over HTTP.
//!
//! The gateway's booking saga talks to a payment provider through the `PaymentProvider` trait
//! (`api-gateway/src/payment.rs`). By default that provider lives inside the gateway, keeping
//! this crate's [`ledger`] in process; pointing the gateway at this service (`--payments-url`)
//! moves the money over a network, where calls can be slow, time out, or act and then lose
//! their answer — the faults the saga and its recovery sweeper must survive
//! (`docs/architecture.md`, invariant 4: every successful charge ends as exactly one confirmed
//! booking or one refund).
//!
//! What it guarantees: one charge per idempotency key, one refund per refund key, refunds never
//! above the charge ([`ledger`]); bounded inputs, ledger and concurrency ([`limits`]); no panic
//! on any input. What it leaves out on purpose: persistence (a restart empties the ledger),
//! real card handling, and authentication beyond an optional admin token for the fault flags.
//! Faults are chosen by payment token per call, or service-wide by the admin endpoint
//! ([`http`]).

pub mod http;
pub mod ledger;
pub mod limits;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::http::Service;
use crate::limits::DELAY_MS_MAX;

/// `marquee-payments`: Marquee's sandbox payment service.
#[derive(Debug, Clone, Parser)]
#[command(name = "marquee-payments", version, about)]
pub struct Config {
    /// Address to serve HTTP on.
    #[arg(long, env = "MARQUEE_PAYMENTS_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// How long a `tok_timeout` charge stalls before answering `504` (nothing charged).
    #[arg(long, env = "MARQUEE_PAYMENTS_TIMEOUT_STALL_MS", default_value_t = 30_000)]
    pub timeout_stall_ms: u64,
    /// If set, `/v1/admin/faults` requires it in `X-Marquee-Admin-Token`.
    #[arg(long, env = "MARQUEE_PAYMENTS_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
}

/// Binds `config.listen` and serves until `shutdown` fires.
///
/// # Errors
/// Invalid configuration or a port that cannot be bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    serve(listener, config, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0) until `shutdown` fires.
///
/// # Errors
/// Invalid configuration or a failing listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.timeout_stall_ms <= DELAY_MS_MAX,
        "--timeout-stall-ms must be at most {DELAY_MS_MAX}"
    );
    if let Some(token) = &config.admin_token {
        anyhow::ensure!(token.len() >= 8, "--admin-token must be at least 8 characters");
    }
    let service = Arc::new(Service::new(
        Duration::from_millis(config.timeout_stall_ms),
        config.admin_token.clone(),
        shutdown.clone(),
    ));
    let local = listener.local_addr().context("listener address")?;
    tracing::info!(listen = %local, "payments serving");
    axum::serve(listener, http::routes(service))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server")
}
