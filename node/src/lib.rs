//! `marquee-node`: hosts Raft replicas of Marquee's groups on one RocksDB and serves them over
//! gRPC.
//!
//! Layout follows TiKV's raftstore split: [`group`] (one replica), [`router`] (group id ->
//! replica), [`transport`] (Raft RPCs multiplexed by group), [`service`] (gRPC handlers),
//! [`worker`] (expiry ticker, join), [`http`] (metrics and health). The group-commit writer
//! lives with the storage in `raft-store` (`raft_store::db`).
//!
//! Today a node hosts the single inventory group [`proto::INVENTORY_GROUP`]; the router and
//! storage are keyed by group id so more groups slot in without format changes.

pub mod config;
pub mod group;
pub mod http;
pub mod metrics;
pub mod router;
pub mod service;
pub mod transport;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::BasicNode;
use proto::pb::cluster_server::ClusterServer;
use proto::pb::inventory_server::InventoryServer;
use proto::pb::raft_transport_server::RaftTransportServer;
use proto::{GRPC_MESSAGE_BYTES_MAX, INVENTORY_GROUP};
use raft_store::{ApplyObserver, Db};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

use crate::group::Group;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::service::NodeService;
use crate::transport::Channels;

/// Runs a node until `shutdown` fires.
///
/// # Errors
/// Bad configuration, storage that fails to open, or ports that cannot be bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(config.id > 0, "node id must be positive");
    let peers = config.parsed_peers().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let db_path = config.data_dir.join("db");
    let fsync = config.fsync;
    let db = tokio::task::spawn_blocking(move || Db::open(&db_path, fsync))
        .await?
        .context("opening RocksDB")?;
    let metrics = Metrics::new();
    let channels = Channels::default();
    let router = Router::default();

    let apply_latency = metrics.apply_latency.with_label_values(&[&INVENTORY_GROUP.to_string()]);
    let observer: ApplyObserver =
        Arc::new(move |_entries, took: Duration| apply_latency.observe(took.as_secs_f64()));
    let group =
        Group::open(INVENTORY_GROUP, config.id, &config, db.clone(), channels.clone(), observer)
            .await?;
    router.insert(Arc::clone(&group));

    if config.bootstrap && !group.raft.is_initialized().await? {
        anyhow::ensure!(!peers.is_empty(), "--bootstrap needs --peers");
        anyhow::ensure!(
            peers.iter().any(|(id, _)| *id == config.id),
            "--peers must include this node"
        );
        let members: BTreeMap<u64, BasicNode> =
            peers.iter().map(|(id, addr)| (*id, BasicNode { addr: addr.clone() })).collect();
        group.raft.initialize(members).await.context("initializing the cluster")?;
        tracing::info!(voters = peers.len(), "bootstrapped a new cluster");
    }

    let tasks = TaskTracker::new();
    tasks.spawn(worker::expiry_ticker(
        Arc::clone(&group),
        config.id,
        Duration::from_millis(config.expiry_tick_ms),
        shutdown.child_token(),
    ));
    if let Some(seed) = config.join.clone() {
        if !group.raft.is_initialized().await? {
            tasks.spawn(worker::join(
                channels.clone(),
                seed,
                INVENTORY_GROUP,
                config.id,
                config.advertised(),
                shutdown.child_token(),
            ));
        }
    }

    let service = NodeService {
        router: router.clone(),
        metrics: metrics.clone(),
        node_id: config.id,
        advertised: config.advertised(),
    };
    let grpc = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(
            RaftTransportServer::new(service.clone())
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
        )
        .add_service(
            InventoryServer::new(service.clone())
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
        )
        .add_service(ClusterServer::new(service));
    let grpc_listener = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC on {}", config.grpc_addr))?;
    let http_listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_addr))?;
    tracing::info!(id = config.id, grpc = %config.grpc_addr, http = %config.http_addr, "node serving");

    let grpc_shutdown = shutdown.clone();
    let grpc_task = tokio::spawn(grpc.serve_with_incoming_shutdown(
        tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
        async move { grpc_shutdown.cancelled().await },
    ));
    let http_shutdown = shutdown.clone();
    let http_state = http::HttpState { router: router.clone(), metrics, db, node_id: config.id };
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, http::routes(http_state))
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await
    });

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    tasks.close();
    tasks.wait().await;
    for group in router.all() {
        if let Err(e) = group.raft.shutdown().await {
            tracing::warn!(group = %group.id, error = %e, "raft shutdown");
        }
    }
    grpc_task.await?.context("gRPC server")?;
    http_task.await?.context("HTTP server")?;
    Ok(())
}
