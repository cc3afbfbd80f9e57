//! `marquee-gateway`: Marquee's stateless public REST API.
//!
//! It validates requests at the edge, routes commands to the group's leader, runs the booking
//! saga with the payment provider and renders every error as problem+json. It keeps no state
//! of its own: any number of gateways can serve the same cluster, and each runs the recovery
//! sweeper that settles checkouts a crashed gateway left pending.
//!
//! The modules form layers; each imports only modules below it (`docs/architecture.md`,
//! "Gateway layers"):
//!
//! 1. [`http`] (handlers, router) and [`openapi`] (the document's fixed parts);
//! 2. [`state`]: what handlers share;
//! 3. workflows, each with its own handle: [`sweeper`] over [`saga`]; [`live_hub`];
//! 4. [`shards`]: typed calls to the meta group and the shards, with the [`cache`];
//! 5. [`payment`] (providers), [`metrics`], [`ratelimit`], [`error`], [`config`], [`clock`],
//!    [`limits`];
//!
//! and below them the `client` crate (routing, leader following, retries). This file only
//! wires them together.

pub mod cache;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod limits;
pub mod live_hub;
pub mod metrics;
pub mod openapi;
pub mod payment;
pub mod ratelimit;
pub mod saga;
pub mod shards;
pub mod state;
pub mod sweeper;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use client::{ClusterClient, RetryPolicy};
use search_sync::backend::{open_backend, Backend};
use search_sync::cluster_source::ClusterCatalogSource;
use search_sync::sync::{NoCursor, Syncer};
use tokio_util::sync::CancellationToken;

pub use crate::config::{Config, StartError};
use crate::metrics::Metrics;
use crate::payment::http::HttpProvider;
use crate::payment::{PaymentProvider, SandboxProvider};
use crate::saga::{CancelPolicy, Saga, SagaConfig};
use crate::shards::Shards;
use crate::state::{AppState, HoldPolicy, Limits};
use crate::sweeper::{SweepConfig, Sweeper};

/// Runs the gateway until `shutdown` fires.
///
/// # Errors
/// Invalid configuration or a port that cannot be bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    config.validate()?;
    let tokens = auth::TokenKeys::new(
        config.jwt_secret.as_bytes(),
        Duration::from_secs(config.access_token_ttl_s),
        Duration::from_secs(config.refresh_token_ttl_h * 3600),
    )?;
    let tickets = match &config.ticket_secret {
        Some(secret) => auth::TicketKey::new(secret.as_bytes()),
        None => auth::TicketKey::derived_from_jwt_secret(config.jwt_secret.as_bytes()),
    }?;
    let client_ip_header = config.client_ip_header()?;
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
    let search = open_backend(
        config.search,
        config.meili_url.as_deref(),
        config.meili_key.as_deref(),
        &config.meili_index,
    )?;
    let channels = client::ChannelConfig {
        propose_inflight: usize::try_from(config.propose_inflight)
            .unwrap_or(client::PROPOSE_INFLIGHT_DEFAULT),
        ..client::ChannelConfig::default()
    };
    let cluster = ClusterClient::with_policy(config.nodes.clone(), RetryPolicy::CALLS, channels);
    let run_sync = config.search_sync || config.search == Backend::Embedded;
    let syncer = match (&search, run_sync) {
        (Some(index), true) => Some(Syncer::new(
            Arc::clone(index),
            Arc::new(ClusterCatalogSource::new(cluster.clone())),
            Box::new(NoCursor),
        )),
        _ => None,
    };
    // Without a worker of its own, the gateway follows the progress the syncing process
    // records beside the index, so that every answer still carries the lag.
    let follower = match (&search, &syncer) {
        (Some(index), None) => {
            let status = Arc::new(search_sync::sync::SyncStatus::default());
            let source = Arc::new(ClusterCatalogSource::new(cluster.clone()));
            Some((Arc::clone(index), source, status))
        }
        _ => None,
    };
    let search_status = syncer
        .as_ref()
        .map(Syncer::status)
        .or_else(|| follower.as_ref().map(|(_, _, status)| Arc::clone(status)));
    let metrics = Metrics::new();
    let shards = Shards::new(cluster, Arc::default(), &metrics);
    let saga = Saga::new(
        shards.clone(),
        payments,
        metrics.clone(),
        SagaConfig {
            checkout_window_ms: config.checkout_window_ms,
            payment_timeout,
            cancel_policy: CancelPolicy {
                cutoff_ms: config.cancel_cutoff_min.saturating_mul(60_000),
                full_refund_before_ms: config.full_refund_before_min.saturating_mul(60_000),
                late_refund_percent: config.late_refund_percent,
            },
        },
        tickets,
    );
    let per_min = |per_min: f64, burst: f64| ratelimit::Rate { per_second: per_min / 60.0, burst };
    let state = Arc::new(AppState {
        shards: shards.clone(),
        saga: saga.clone(),
        sandbox,
        payments_http,
        tokens,
        hasher: auth::Hasher::new(config.password_hash_concurrency),
        metrics,
        limits: Limits {
            ip: ratelimit::Limiter::new(ratelimit::Rate {
                per_second: config.rate_limit_ip_per_s,
                burst: config.rate_limit_ip_burst,
            }),
            user: ratelimit::Limiter::new(ratelimit::Rate {
                per_second: config.rate_limit_user_per_s,
                burst: config.rate_limit_user_burst,
            }),
            hold_user: ratelimit::Limiter::new(per_min(
                config.hold_rate_user_per_min,
                config.hold_rate_user_burst,
            )),
            hold_ip: ratelimit::Limiter::new(per_min(
                config.hold_rate_ip_per_min,
                config.hold_rate_ip_burst,
            )),
            register_ip: ratelimit::Limiter::new(per_min(
                config.register_rate_ip_per_min,
                config.register_rate_ip_burst,
            )),
            client_ip_header,
        },
        holds: HoldPolicy {
            seats_per_account_max: config.hold_seats_per_account_max,
            ttl_max_ms: config.hold_ttl_max_ms,
        },
        search,
        search_status,
        live_connections: std::sync::atomic::AtomicUsize::new(0),
        live_max_connections: config.live_max_connections,
        live_send_timeout: Duration::from_millis(config.live_send_timeout_ms.max(1)),
        live_hub: live_hub::LiveHub::default(),
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind { addr: config.listen, source })?;
    tracing::info!(listen = %config.listen, nodes = ?config.nodes, "gateway serving");
    // The sweeper stops with the server, whether it shuts down or fails.
    let sweep_stop = shutdown.child_token();
    let sweeper = (config.sweep_interval_ms > 0).then(|| {
        let sweep = SweepConfig {
            interval: Duration::from_millis(config.sweep_interval_ms),
            min_age: Duration::from_millis(config.sweep_min_age_ms),
        };
        tokio::spawn(Sweeper::new(saga, sweep).run(sweep_stop.clone()))
    });
    let cache_stop = shutdown.child_token();
    let cache_watch = {
        let (cache, cluster) = (Arc::clone(shards.cache()), shards.cluster().clone());
        let stop = cache_stop.clone();
        tokio::spawn(async move { cache.watch(cluster, stop).await })
    };
    let sync_stop = shutdown.child_token();
    let sync = syncer.map(|syncer| tokio::spawn(syncer.run(sync_stop.clone())));
    let follow = follower.map(|(index, source, status)| {
        tokio::spawn(search_sync::sync::follow_progress(index, source, status, sync_stop.clone()))
    });
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
        .map_err(StartError::Serve);
    sweep_stop.cancel();
    sync_stop.cancel();
    cache_stop.cancel();
    cache_watch.await.map_err(|_| StartError::Panicked("catalog cache watcher"))?;
    if let Some(sync) = sync {
        sync.await.map_err(|_| StartError::Panicked("search sync worker"))?;
    }
    if let Some(follow) = follow {
        follow.await.map_err(|_| StartError::Panicked("search progress follower"))?;
    }
    if let Some(sweeper) = sweeper {
        sweeper.await.map_err(|_| StartError::Panicked("recovery sweeper"))?;
    }
    served
}
