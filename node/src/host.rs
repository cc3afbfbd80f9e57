//! The set of replicas a node hosts, and the only place that opens or deletes one.
//!
//! A node hosts any number of groups on its one RocksDB: the meta group (group 0) on its
//! meta voters, and inventory shards wherever the shard map puts them. Which groups a node
//! hosts is recorded durably (`raft_store::keys::hosted_key`), so a restart reopens exactly
//! those; a replica is created empty by `CreateReplica` (then filled by its leader, through
//! the log or a snapshot) and deleted by `DeleteReplica` after a membership change removed it.
//! Opening and deleting are serialized by one lock so a replica is never half-open.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use proto::{GroupId, META_GROUP};
use raft_store::keys::GROUP_ID_MAX;
use raft_store::{ApplyObserver, Db};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::group::Group;
use crate::metrics::Metrics;
use crate::proposer::{self, ProposerConfig};
use crate::router::Router;
use crate::transport::Channels;
use crate::worker;

/// Everything needed to open, run and delete replicas. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    /// This node's settings.
    pub config: Arc<Config>,
    /// The node's database.
    pub db: Db,
    /// Connections to peers.
    pub channels: Channels,
    /// Hosted replicas by group.
    pub router: Router,
    /// Metrics.
    pub metrics: Metrics,
    /// Background jobs of every replica.
    pub tasks: TaskTracker,
    /// Fires at node shutdown.
    pub shutdown: CancellationToken,
    lifecycle: Arc<tokio::sync::Mutex<()>>,
}

impl Host {
    /// A host with no replicas open yet.
    pub fn new(config: Arc<Config>, db: Db, metrics: Metrics, shutdown: CancellationToken) -> Host {
        Host {
            config,
            db,
            channels: Channels::default(),
            router: Router::default(),
            metrics,
            tasks: TaskTracker::new(),
            shutdown,
            lifecycle: Arc::default(),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.config.id
    }

    /// Reopens every replica this node recorded as hosted.
    ///
    /// # Errors
    /// A replica's storage failed to load.
    pub async fn open_hosted(&self) -> anyhow::Result<()> {
        let db = self.db.clone();
        let groups = tokio::task::spawn_blocking(move || db.hosted_groups()).await??;
        for group in groups {
            self.open_group(group).await.with_context(|| format!("reopening group {group}"))?;
        }
        Ok(())
    }

    /// The local replica of `id`, opened (and recorded as hosted) if this node has none yet.
    ///
    /// # Errors
    /// A group id out of range, or storage that failed to load.
    pub async fn open_group(&self, id: GroupId) -> anyhow::Result<Arc<Group>> {
        anyhow::ensure!(id.0 <= GROUP_ID_MAX, "group ids go up to {GROUP_ID_MAX}");
        let _guard = self.lifecycle.lock().await;
        if let Some(group) = self.router.get(id) {
            return Ok(group);
        }
        self.db.set_hosted(id).await?;
        let label = id.to_string();
        let apply_latency = self.metrics.apply_latency.with_label_values(&[&label]);
        let observer: ApplyObserver =
            Arc::new(move |_entries, took: Duration| apply_latency.observe(took.as_secs_f64()));
        let (group, queue) = Group::open(
            id,
            self.node_id(),
            &self.config,
            self.db.clone(),
            self.channels.clone(),
            observer,
            self.shutdown.child_token(),
        )
        .await?;
        self.router.insert(Arc::clone(&group));
        // The meta group's commands (catalog, accounts, placement) never share an entry.
        let batching = if id == META_GROUP {
            ProposerConfig { batch_max: 1, ..self.config.proposer() }
        } else {
            self.config.proposer()
        };
        let writer = Arc::clone(&group);
        self.tasks.spawn(proposer::run(
            queue,
            batching,
            group.cancel.clone(),
            self.metrics.clone(),
            move |proposals| {
                let group = Arc::clone(&writer);
                async move { group.write(proposals).await }
            },
        ));
        if id != META_GROUP {
            self.tasks.spawn(worker::expiry_ticker(
                Arc::clone(&group),
                self.node_id(),
                Duration::from_millis(self.config.expiry_tick_ms),
            ));
        }
        tracing::info!(group = %id, "replica open");
        Ok(group)
    }

    /// Stops this node's replica of `id` and deletes its log, Raft state and snapshot.
    /// Returns whether there was one.
    ///
    /// # Errors
    /// The delete could not be written.
    pub async fn delete_group(&self, id: GroupId) -> anyhow::Result<bool> {
        let _guard = self.lifecycle.lock().await;
        let Some(group) = self.router.remove(id) else {
            return Ok(false);
        };
        group.cancel.cancel();
        if let Err(e) = group.raft.shutdown().await {
            tracing::warn!(group = %id, error = %e, "raft shutdown");
        }
        self.db.delete_group(id).await?;
        self.metrics.forget_group(id);
        tracing::info!(group = %id, "replica deleted");
        Ok(true)
    }

    /// Shard-map version known to this node: the applied version of its meta replica, or 0.
    pub fn map_version(&self) -> u64 {
        self.router
            .get(META_GROUP)
            .map_or(0, |meta| meta.sm.read().state.topology().map_or(0, |t| t.version))
    }
}
