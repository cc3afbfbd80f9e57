//! Node configuration: flags with `MARQUEE_NODE_*` environment overrides.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// `marquee-node`: hosts Raft replicas of Marquee's groups.
#[derive(Debug, Clone, Parser)]
#[command(name = "marquee-node", version, about)]
pub struct Config {
    /// This node's id: a positive integer unique in the cluster, fixed for the node's life.
    #[arg(long, env = "MARQUEE_NODE_ID")]
    pub id: u64,
    /// Address to serve gRPC (Raft and inventory) on.
    #[arg(long, env = "MARQUEE_NODE_GRPC_ADDR", default_value = "127.0.0.1:7001")]
    pub grpc_addr: SocketAddr,
    /// Address other nodes and gateways use to reach this node's gRPC server, if it differs
    /// from `grpc_addr` (containers, NAT).
    #[arg(long, env = "MARQUEE_NODE_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Address to serve `/metrics`, `/healthz` and `/readyz` on.
    #[arg(long, env = "MARQUEE_NODE_HTTP_ADDR", default_value = "127.0.0.1:9001")]
    pub http_addr: SocketAddr,
    /// Directory holding this node's RocksDB. Created if missing.
    #[arg(long, env = "MARQUEE_NODE_DATA_DIR", default_value = "./data/node")]
    pub data_dir: PathBuf,
    /// Added to `--id`: lets a StatefulSet pass its 0-based pod ordinal as the id (offset 1).
    #[arg(long, env = "MARQUEE_NODE_ID_OFFSET", default_value_t = 0)]
    pub id_offset: u64,
    /// Initialize a new cluster whose voters are `--peers` (run on exactly one node, once;
    /// ignored when the node already has Raft state).
    #[arg(long, env = "MARQUEE_NODE_BOOTSTRAP")]
    pub bootstrap: bool,
    /// Bootstrap if this node's id (after `--id-offset`) equals this one: for templated
    /// deployments where every node gets the same flags.
    #[arg(long, env = "MARQUEE_NODE_BOOTSTRAP_NODE")]
    pub bootstrap_node: Option<u64>,
    /// Initial voters as `id=host:port,...`, used with `--bootstrap`.
    #[arg(long, env = "MARQUEE_NODE_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Inventory shards to create at bootstrap (used with `--bootstrap`).
    #[arg(long, env = "MARQUEE_NODE_SHARDS", default_value_t = 8)]
    pub shards: u64,
    /// Replicas of each group, the meta group included (used with `--bootstrap`; capped at the
    /// number of peers).
    #[arg(long, env = "MARQUEE_NODE_REPLICAS", default_value_t = 3)]
    pub replicas: usize,
    /// gRPC address of a meta-group member: register this node in the cluster's registry. It
    /// then holds no replicas until an operator moves some to it (`marqueectl rebalance`).
    #[arg(long, env = "MARQUEE_NODE_JOIN")]
    pub join: Option<String>,
    /// This node's failure domain (a rack, an availability zone: up to 64 ASCII letters,
    /// digits, '-', '_', '.'), recorded in the registry on every start. Self-repair places a
    /// group's new replica outside the zones of its other replicas where it can.
    #[arg(long, env = "MARQUEE_NODE_ZONE")]
    pub zone: Option<String>,
    /// Default hold lifetime stamped into holds that do not ask for one (cluster-wide
    /// setting: give every node the same value).
    #[arg(long, env = "MARQUEE_NODE_HOLD_TTL_MS", default_value_t = proto::limits::HOLD_TTL_MS_DEFAULT)]
    pub hold_ttl_ms: u64,
    /// Build a snapshot after this many applied entries since the last one.
    #[arg(long, env = "MARQUEE_NODE_SNAPSHOT_LOGS", default_value_t = 20_000)]
    pub snapshot_logs: u64,
    /// Entries kept in the log behind a snapshot, so a briefly lagging follower can catch up
    /// without a snapshot transfer.
    #[arg(long, env = "MARQUEE_NODE_LOGS_KEPT", default_value_t = 2_000)]
    pub logs_kept: u64,
    /// Raft heartbeat interval.
    #[arg(long, env = "MARQUEE_NODE_HEARTBEAT_MS", default_value_t = 150)]
    pub heartbeat_ms: u64,
    /// Minimum election timeout (the maximum is twice this).
    #[arg(long, env = "MARQUEE_NODE_ELECTION_TIMEOUT_MS", default_value_t = 750)]
    pub election_timeout_ms: u64,
    /// How often the leader checks for due holds and proposes `ExpireDue`.
    #[arg(long, env = "MARQUEE_NODE_EXPIRY_TICK_MS", default_value_t = 500)]
    pub expiry_tick_ms: u64,
    /// Most client proposals one Raft entry carries (1 turns batching off). Mixed-version
    /// clusters: nodes older than command version 3 cannot apply batched entries, so run an
    /// upgrade with 1 until every node runs this build (docs/operations.md, "Upgrades").
    #[arg(long, env = "MARQUEE_NODE_PROPOSE_BATCH_MAX", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub propose_batch_max: u64,
    /// Entries of one group proposed and not yet applied at once (pipelining depth).
    #[arg(long, env = "MARQUEE_NODE_PROPOSE_INFLIGHT", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub propose_inflight: u64,
    /// Tokio worker threads (0: one per CPU). Several processes sharing a small machine run
    /// best with 1–2 each (docs/benchmarks.md).
    #[arg(long, env = "MARQUEE_NODE_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
    /// fsync every group-commit batch. Turning this off loses acknowledged writes on power
    /// failure; it exists only to measure the disk's share in benchmarks.
    #[arg(long, env = "MARQUEE_NODE_FSYNC", default_value_t = true, action = clap::ArgAction::Set)]
    pub fsync: bool,
    /// Seconds between steps of the placement loop (self-repair, tombstones, leader balance),
    /// run by the meta leader; 0 turns it off (docs/operations.md).
    #[arg(long, env = "MARQUEE_NODE_PLACEMENT_INTERVAL_S", default_value_t = 10)]
    pub placement_interval_s: u64,
    /// Seconds a node must be unreachable before the placement loop re-creates its replicas on
    /// other nodes.
    #[arg(long, env = "MARQUEE_NODE_REPAIR_AFTER_S", default_value_t = 300)]
    pub repair_after_s: u64,
    /// On SIGTERM/SIGINT, seconds allowed to hand this node's leaderships to other voters
    /// before stopping (0: stop at once; the groups then wait out an election timeout).
    #[arg(long, env = "MARQUEE_NODE_HANDOFF_S", default_value_t = 15)]
    pub handoff_s: u64,
    /// After a failed storage write, the node restarts itself (reopening its database from
    /// what is durable) once this many MiB can be written and synced in its data directory
    /// (keep it above `--storage-min-free-mb`); 0: never, it stays up, unready, until stopped
    /// (docs/reliability.md, "Disk faults").
    #[arg(long, env = "MARQUEE_NODE_STORAGE_RESTART_FREE_MB", default_value_t = 128)]
    pub storage_restart_free_mb: u64,
    /// The node stops writing (as after a failed write) when less than this many MiB are
    /// available on its data directory's filesystem, before RocksDB runs out of space
    /// mid-write; 0: no such guard.
    #[arg(long, env = "MARQUEE_NODE_STORAGE_MIN_FREE_MB", default_value_t = 64)]
    pub storage_min_free_mb: u64,
    /// Where `Backup` writes checkpoints (default: `<data-dir>/backups`; on the same filesystem
    /// as the data dir, checkpoints are hard links and cost no copy).
    #[arg(long, env = "MARQUEE_NODE_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Before opening the data dir, restore this node's replicas from an online backup taken
    /// by `marqueectl backup` (docs/operations.md, "Backup and restore"). Start every node of
    /// the new cluster with it, each with its id and address from the backup. A data dir that
    /// already holds a database is refused, unless it was restored from this same backup (then
    /// the node just starts, so the flag may stay set).
    #[arg(long, env = "MARQUEE_NODE_RESTORE_FROM")]
    pub restore_from: Option<PathBuf>,
}

impl Config {
    /// Applies `--id-offset` and `--bootstrap-node` (call once, before use).
    ///
    /// # Errors
    /// The id overflows.
    pub fn resolve(mut self) -> Result<Config, String> {
        self.id = self.id.checked_add(self.id_offset).ok_or("--id plus --id-offset overflows")?;
        self.id_offset = 0;
        if self.bootstrap_node == Some(self.id) {
            self.bootstrap = true;
        }
        Ok(self)
    }

    /// How the proposal queues of inventory groups batch.
    pub fn proposer(&self) -> crate::proposer::ProposerConfig {
        crate::proposer::ProposerConfig {
            batch_max: usize::try_from(self.propose_batch_max).unwrap_or(usize::MAX),
            inflight_max: usize::try_from(self.propose_inflight).unwrap_or(usize::MAX),
        }
    }

    /// The address other nodes reach this node at.
    pub fn advertised(&self) -> String {
        self.advertise_addr.clone().unwrap_or_else(|| self.grpc_addr.to_string())
    }

    /// Parses `--peers`.
    ///
    /// # Errors
    /// An entry that is not `id=host:port`.
    pub fn parsed_peers(&self) -> Result<Vec<(u64, String)>, String> {
        self.peers
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (id, addr) =
                    p.split_once('=').ok_or_else(|| format!("peer {p:?} is not id=host:port"))?;
                let id =
                    id.trim().parse::<u64>().map_err(|_| format!("peer {p:?} has a bad id"))?;
                if id == 0 {
                    return Err("node id 0 is reserved".into());
                }
                Ok((id, addr.trim().to_owned()))
            })
            .collect()
    }
}
