//! Prometheus metrics of a node. Labels stay low-cardinality: group id and command kind, never
//! show or user ids.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

/// The node's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// The registry served on `/metrics`.
    pub registry: Registry,
    /// Commands proposed through this node, by kind and outcome.
    pub commands: IntCounterVec,
    /// Time from receiving a proposal to its applied outcome, by kind.
    pub propose_latency: HistogramVec,
    /// Time to apply one batch of entries, by group.
    pub apply_latency: HistogramVec,
    /// Raft gauges, by group: term, is_leader, leader id, last log index, applied index,
    /// snapshot index, purged index, replication lag (on the leader: entries its slowest
    /// replica has not matched; 0 elsewhere).
    pub raft: IntGaugeVec,
    /// Synced group-commit batches written.
    pub writer_batches: IntCounter,
    /// Batches of lazy writes only (committed indexes), written without an fsync.
    pub writer_unsynced_batches: IntCounter,
    /// Writes merged into those batches.
    pub writer_writes: IntCounter,
    /// Bytes written by the writer.
    pub writer_bytes: IntCounter,
    /// Time of each group-commit batch write, the fsync included.
    pub writer_sync: Histogram,
    /// Bytes available to the node on the filesystem of its data directory, set when scraped.
    pub disk_available: IntGauge,
    /// Size of that filesystem, set when scraped.
    pub disk_size: IntGauge,
    /// 1 once the node's storage failed a write (it writes and acknowledges nothing more until
    /// it restarts itself), else 0.
    pub storage_failed: IntGauge,
    /// Writes that failed or were refused after a failure.
    pub storage_failed_writes: IntCounter,
    /// Proposals carried per Raft entry (docs/architecture.md, "Batching").
    pub batch_size: Histogram,
    /// Placement loop steps taken on this node while it led the meta group, by kind
    /// (`repair`, `tombstone`, `lead`) and outcome (`ok`, `failed`).
    pub placement_steps: IntCounterVec,
    /// Nodes the placement loop currently sees as unreachable (0 on non-meta-leaders).
    pub placement_unreachable: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Panics
    /// If two metrics share a name: a programming error caught by any test that starts a node.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let latency =
            || exponential_buckets(0.000_1, 2.0, 18).expect("static bucket parameters are valid");
        let commands = IntCounterVec::new(
            Opts::new(
                "marquee_node_commands_total",
                "Commands proposed through this node by kind and outcome",
            ),
            &["kind", "outcome"],
        )
        .expect("valid metric");
        let propose_latency = HistogramVec::new(
            HistogramOpts::new(
                "marquee_node_propose_latency_seconds",
                "Proposal to applied outcome",
            )
            .buckets(latency()),
            &["kind"],
        )
        .expect("valid metric");
        let apply_latency = HistogramVec::new(
            HistogramOpts::new(
                "marquee_node_apply_latency_seconds",
                "Time to apply a batch of entries",
            )
            .buckets(latency()),
            &["group"],
        )
        .expect("valid metric");
        let raft = IntGaugeVec::new(
            Opts::new("marquee_node_raft", "Raft state per group (metric label names the field)"),
            &["group", "field"],
        )
        .expect("valid metric");
        let writer_batches =
            IntCounter::new("marquee_node_writer_batches_total", "Synced group-commit batches")
                .expect("valid metric");
        let writer_unsynced_batches = IntCounter::new(
            "marquee_node_writer_unsynced_batches_total",
            "Group-commit batches of lazy writes only (committed indexes), written without an fsync",
        )
        .expect("valid metric");
        let writer_writes = IntCounter::new(
            "marquee_node_writer_writes_total",
            "Writes merged into group-commit batches",
        )
        .expect("valid metric");
        let writer_bytes = IntCounter::new(
            "marquee_node_writer_bytes_total",
            "Bytes written by the group-commit writer",
        )
        .expect("valid metric");
        let writer_sync = Histogram::with_opts(
            HistogramOpts::new(
                "marquee_node_writer_sync_seconds",
                "Time to write one group-commit batch, fsync included",
            )
            .buckets(latency()),
        )
        .expect("valid metric");
        let disk_available = IntGauge::new(
            "marquee_node_disk_available_bytes",
            "Bytes available to the node on the filesystem holding its data directory",
        )
        .expect("valid metric");
        let disk_size = IntGauge::new(
            "marquee_node_disk_size_bytes",
            "Size of the filesystem holding the node's data directory",
        )
        .expect("valid metric");
        let storage_failed = IntGauge::new(
            "marquee_node_storage_failed",
            "1 once a write to the node's storage failed (disk full, I/O error, failed fsync): \
             it acknowledges nothing more and restarts itself once the disk is usable",
        )
        .expect("valid metric");
        let storage_failed_writes = IntCounter::new(
            "marquee_node_storage_failed_writes_total",
            "Writes that failed, or were refused because an earlier write failed",
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "marquee_node_proposal_batch_size",
                "Proposals carried by one Raft entry this node proposed",
            )
            .buckets(
                exponential_buckets(1.0, 2.0, 10).expect("static bucket parameters are valid"),
            ),
        )
        .expect("valid metric");
        let placement_steps = IntCounterVec::new(
            Opts::new(
                "marquee_node_placement_steps_total",
                "Placement loop steps (repair, tombstone, lead) by outcome",
            ),
            &["kind", "outcome"],
        )
        .expect("valid metric");
        let placement_unreachable = IntGauge::new(
            "marquee_node_placement_unreachable_nodes",
            "Nodes the placement loop sees as unreachable",
        )
        .expect("valid metric");
        for collector in [
            Box::new(commands.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(placement_steps.clone()),
            Box::new(placement_unreachable.clone()),
            Box::new(propose_latency.clone()),
            Box::new(apply_latency.clone()),
            Box::new(raft.clone()),
            Box::new(writer_batches.clone()),
            Box::new(writer_unsynced_batches.clone()),
            Box::new(writer_writes.clone()),
            Box::new(writer_bytes.clone()),
            Box::new(writer_sync.clone()),
            Box::new(disk_available.clone()),
            Box::new(disk_size.clone()),
            Box::new(storage_failed.clone()),
            Box::new(storage_failed_writes.clone()),
            Box::new(batch_size.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        Metrics {
            registry,
            commands,
            propose_latency,
            apply_latency,
            raft,
            writer_batches,
            writer_unsynced_batches,
            writer_writes,
            writer_bytes,
            writer_sync,
            disk_available,
            disk_size,
            storage_failed,
            storage_failed_writes,
            batch_size,
            placement_steps,
            placement_unreachable,
        }
    }
}

/// Fields of the per-group `marquee_node_raft` gauge.
pub const RAFT_FIELDS: [&str; 9] = [
    "term",
    "is_leader",
    "leader_id",
    "last_log_index",
    "applied_index",
    "snapshot_index",
    "purged_index",
    "replication_lag",
    // The newest command rules this node would write for the group if it led it: the lowest
    // version its replicas (itself included) said they apply (docs/architecture.md,
    // "Upgrades"); below this build's during a rolling upgrade.
    "command_version",
];

impl Metrics {
    /// Drops the series of a group this node no longer hosts.
    pub fn forget_group(&self, group: proto::GroupId) {
        let label = group.to_string();
        for field in RAFT_FIELDS {
            let _ = self.raft.remove_label_values(&[label.as_str(), field]);
        }
        let _ = self.apply_latency.remove_label_values(&[label.as_str()]);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Advances `counter` to `value` (for counters mirrored from atomics at scrape time).
pub fn sync_counter(counter: &IntCounter, value: u64) {
    let current = counter.get();
    if value > current {
        counter.inc_by(value - current);
    }
}
