//! One Raft replica hosted by this node: the openraft handle, its log and its state machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::{Raft, SnapshotPolicy};
use proto::inventory::{Command, LogCommand, Proposal, COMMAND_VERSION};
use proto::GroupId;
use raft_store::{ApplyObserver, Db, LogStore, NodeId, StateMachineStore, TypeConfig};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::transport::{Channels, NetworkFactory};

/// A replica of one group.
pub struct Group {
    /// The group.
    pub id: GroupId,
    /// The openraft handle.
    pub raft: Raft<TypeConfig>,
    /// The state machine (shared with openraft), for reads.
    pub sm: StateMachineStore,
    /// The log (shared with openraft), for status.
    pub log: LogStore,
    /// Cancelled when the replica is deleted from this node or the node shuts down; stops the
    /// group's background jobs.
    pub cancel: CancellationToken,
    /// Highest time this node stamped on a proposal of this group.
    last_stamp_ms: AtomicU64,
    hold_ttl_ms: u64,
}

/// openraft settings derived from the node config.
///
/// # Errors
/// Inconsistent timing settings.
pub fn raft_config(config: &Config) -> Result<openraft::Config, Box<openraft::ConfigError>> {
    openraft::Config {
        cluster_name: "marquee".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_ms,
        election_timeout_max: config.election_timeout_ms * 2,
        install_snapshot_timeout: 2_000,
        max_payload_entries: 512,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
        max_in_snapshot_log_to_keep: config.logs_kept,
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        ..Default::default()
    }
    .validate()
    .map_err(Box::new)
}

impl Group {
    /// Whether this node's replica counts itself a voter of the group (its local view of the
    /// membership, which may lag the leader's).
    pub fn is_local_voter(&self, node_id: NodeId) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == node_id)
    }

    /// Opens the group's storage and starts its Raft replica.
    ///
    /// # Errors
    /// Storage failed to load or openraft refused to start.
    pub async fn open(
        id: GroupId,
        node_id: NodeId,
        config: &Config,
        db: Db,
        channels: Channels,
        observer: ApplyObserver,
        cancel: CancellationToken,
    ) -> anyhow::Result<Arc<Group>> {
        // Loading scans the group's log and decodes its snapshot: blocking RocksDB reads.
        let (log, sm) = tokio::task::spawn_blocking(move || {
            let log = LogStore::open(db.clone(), id)?;
            let sm = StateMachineStore::open(db, id, Some(observer))?;
            Ok::<_, raft_store::Error>((log, sm))
        })
        .await??;
        let raft = Raft::new(
            node_id,
            Arc::new(raft_config(config)?),
            NetworkFactory::new(id, channels),
            log.clone(),
            sm.clone(),
        )
        .await?;
        Ok(Arc::new(Group {
            id,
            raft,
            sm,
            log,
            cancel,
            last_stamp_ms: AtomicU64::new(0),
            hold_ttl_ms: config.hold_ttl_ms,
        }))
    }

    /// Wraps a client proposal into a log entry: stamps the log time (never below what this
    /// node stamped before nor the applied log time) and fills cluster defaults.
    pub fn stamp(&self, proposal: Proposal) -> LogCommand {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let wall_ms = u64::try_from(wall.as_millis()).unwrap_or(u64::MAX);
        let floor = self.sm.read().now_ms();
        let now_ms = wall_ms.max(floor);
        let previous = self.last_stamp_ms.fetch_max(now_ms, Ordering::Relaxed);
        let now_ms = now_ms.max(previous);
        let mut command = proposal.command;
        if let Command::Hold { ttl_ms, .. } = &mut command {
            ttl_ms.get_or_insert(self.hold_ttl_ms);
        }
        LogCommand { v: COMMAND_VERSION, now_ms, request_id: proposal.request_id, command }
    }
}
