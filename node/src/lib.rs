//! `marquee-node`: hosts Raft replicas of Marquee's groups on one RocksDB and serves them over
//! gRPC.
//!
//! Layout follows TiKV's raftstore split: [`group`] (one replica), [`router`] (group id ->
//! replica), [`transport`] (Raft RPCs multiplexed by group), [`service`] (gRPC handlers),
//! [`proposer`] (concurrent proposals to a group coalesced into few entries),
//! [`worker`] (expiry ticker, join), [`placement`] (self-repair and leader balance on the meta
//! leader), [`logtime`] (the clock entries are stamped with), [`http`] (metrics and health). The group-commit writer
//! lives with the storage in `raft-store` (`raft_store::db`).
//!
//! A node hosts any number of groups ([`host`]): the meta group on its meta voters and the
//! inventory shards the shard map places on it. [`bootstrap`] lays out a new cluster;
//! [`restore`] rebuilds a node's data from an online backup ([`backup`]).

pub mod backup;
pub mod bootstrap;
pub mod config;
pub mod forward;
pub mod group;
pub mod host;
pub mod http;
pub mod logtime;
pub mod metrics;
pub mod placement;
pub mod proposer;
pub mod restore;
pub mod router;
pub mod service;
pub mod storage;
pub mod transport;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;
use proto::pb::cluster_server::ClusterServer;
use proto::pb::inventory_server::InventoryServer;
use proto::pb::raft_transport_server::RaftTransportServer;
use proto::GRPC_MESSAGE_BYTES_MAX;
use raft_store::Db;
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::host::Host;
use crate::metrics::Metrics;
use crate::service::NodeService;

/// Runs a node until `shutdown` fires; then hands its leaderships to other voters (within
/// `--handoff-s`) and stops.
///
/// # Errors
/// Bad configuration, storage that fails to open, or ports that cannot be bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    // `shutdown` is the request to stop; `stop` stops the node once leadership is handed off.
    let requested = shutdown;
    let shutdown = CancellationToken::new();
    let config = config.resolve().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(config.id > 0, "node id must be positive");
    let peers = config.parsed_peers().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        (1..=raft_store::keys::GROUP_ID_MAX).contains(&config.shards),
        "--shards must be at least 1"
    );
    anyhow::ensure!((1..=7).contains(&config.replicas), "--replicas must be 1..=7");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    if let Some(from) = config.restore_from.clone() {
        let restoring = config.clone();
        tokio::task::spawn_blocking(move || restore::restore(&restoring, &from))
            .await?
            .context("restoring from a backup")?;
    }
    let db_path = config.data_dir.join("db");
    let fsync = config.fsync;
    let metrics = Metrics::new();
    let writer_sync = metrics.writer_sync.clone();
    let observer =
        Box::new(move |took: std::time::Duration| writer_sync.observe(took.as_secs_f64()));
    let db = tokio::task::spawn_blocking(move || Db::open_observed(&db_path, fsync, observer))
        .await?
        .context("opening RocksDB")?;
    let config = Arc::new(config);
    let host = Host::new(Arc::clone(&config), db.clone(), metrics, shutdown.clone());
    host.open_hosted().await?;
    tracing::info!(groups = host.router.all().len(), "local replicas open");

    if config.bootstrap {
        anyhow::ensure!(!peers.is_empty(), "--bootstrap needs --peers");
        let plan = bootstrap::Plan {
            peers: peers.iter().cloned().collect(),
            shards: config.shards,
            replicas: config.replicas,
        };
        anyhow::ensure!(plan.peers.contains_key(&config.id), "--peers must include this node");
        let host = host.clone();
        host.tasks.clone().spawn(async move {
            if let Err(e) = bootstrap::run(host, plan).await {
                tracing::error!(error = %format!("{e:#}"), "bootstrap failed");
            }
        });
    }
    // A node given a zone registers it on every start (through itself when it has no seed:
    // any node forwards meta requests), so bootstrapped nodes and nodes moved to another
    // zone are recorded too.
    if let Some(seed) =
        config.join.clone().or_else(|| config.zone.as_ref().map(|_| config.advertised()))
    {
        host.tasks.spawn(worker::join(
            seed,
            config.id,
            config.advertised(),
            config.zone.clone(),
            shutdown.child_token(),
        ));
    }

    host.tasks.spawn(storage::watch(
        db.clone(),
        config.data_dir.clone(),
        storage::Settings {
            min_free_mb: config.storage_min_free_mb,
            restart_free_mb: config.storage_restart_free_mb,
        },
        shutdown.child_token(),
    ));

    host.tasks.spawn(placement::run(
        host.clone(),
        placement::Settings {
            interval: std::time::Duration::from_secs(config.placement_interval_s),
            repair_after: std::time::Duration::from_secs(config.repair_after_s),
        },
    ));

    let service = NodeService {
        host: host.clone(),
        advertised: config.advertised(),
        forward: Arc::default(),
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
    let http_state = http::HttpState {
        router: host.router.clone(),
        metrics: host.metrics.clone(),
        db,
        node_id: config.id,
        data_dir: config.data_dir.clone(),
    };
    let http_task = tokio::spawn(async move {
        axum::serve(http_listener, http::routes(http_state))
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
            .await
    });

    tokio::select! {
        () = requested.cancelled() => {
            // A second signal stops at once (Ctrl-C twice, or a supervisor in a hurry).
            tokio::select! {
                () = placement::hand_off(&host, std::time::Duration::from_secs(config.handoff_s)) => {}
                () = telemetry::wait_for_signal() => tracing::info!("second signal: stopping now"),
            }
            shutdown.cancel();
        }
        () = shutdown.cancelled() => {}
    }
    tracing::info!("shutting down");
    host.tasks.close();
    host.tasks.wait().await;
    for group in host.router.all() {
        if let Err(e) = group.raft.shutdown().await {
            tracing::warn!(group = %group.id, error = %e, "raft shutdown");
        }
    }
    grpc_task.await?.context("gRPC server")?;
    http_task.await?.context("HTTP server")?;
    Ok(())
}
