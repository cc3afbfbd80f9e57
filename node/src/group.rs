//! One Raft replica hosted by this node: the openraft handle, its log and its state machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, SnapshotPolicy};
use proto::command::{Command, LogCommand, Outcome, Proposal, Reply, COMMAND_VERSION};
use proto::pb::NotLeader;
use proto::GroupId;
use raft_store::{ApplyObserver, Db, LogStore, NodeId, StateMachineStore, TypeConfig};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::proposer::{self, ProposeError, Proposer, Queue, PROPOSE_TIMEOUT};
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
    /// The group's proposal queue: every client proposal goes through it (batching).
    pub proposer: Proposer,
    /// Highest time this node stamped on a proposal of this group.
    last_stamp_ms: AtomicU64,
    /// Log time and monotonic instant of this node's first stamp in its current term: bounds
    /// how fast it may move log time during the term (see [`bounded_log_time`]).
    reference: std::sync::Mutex<Option<Reference>>,
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
        // Entries may carry batches of up to `--propose-batch-max` commands: 64 of them stay
        // well under the gRPC message limit.
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
        max_in_snapshot_log_to_keep: config.logs_kept,
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        ..Default::default()
    }
    .validate()
    .map_err(Box::new)
}

/// Where a leader's log time started in its term.
#[derive(Debug, Clone, Copy)]
struct Reference {
    term: u64,
    log_ms: u64,
    at: Instant,
}

/// Slack over real elapsed time a leader may add to log time at once.
const LOG_TIME_SLACK_MS: u64 = 1_000;

/// The log time a leader stamps: its wall clock, never below the applied log time (`floor`),
/// and never further ahead of its first stamp of the term (`reference_ms`) than the real time
/// elapsed since (`elapsed_ms`, monotonic) plus one second. (An allowance proportional to the
/// term's length would let a long-lived leader's jump through: a clock trusted at the term's
/// start needs no catching up.)
///
/// Without the ceiling, a leader whose wall clock jumped ahead during its term moved log time
/// with it and expired every hold early: the chaos harness's clock-skew nemesis caught seats
/// given away 10 s before their promised expiry. A clock that is already wrong when a node
/// becomes leader is trusted (there is nothing to compare it with but other nodes' clocks).
pub fn bounded_log_time(wall_ms: u64, floor: u64, reference_ms: u64, elapsed_ms: u64) -> u64 {
    let ceiling = reference_ms.saturating_add(elapsed_ms).saturating_add(LOG_TIME_SLACK_MS);
    wall_ms.min(ceiling).max(floor)
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

    /// Opens the group's storage and starts its Raft replica. The caller runs the returned
    /// queue ([`proposer::run`]).
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
    ) -> anyhow::Result<(Arc<Group>, Queue)> {
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
        let (proposer, queue) = proposer::channel();
        let group = Arc::new(Group {
            id,
            raft,
            sm,
            log,
            cancel,
            proposer,
            last_stamp_ms: AtomicU64::new(0),
            reference: std::sync::Mutex::new(None),
            hold_ttl_ms: config.hold_ttl_ms,
        });
        Ok((group, queue))
    }

    /// Proposes `proposals` as one entry ([`Group::stamp`]) and returns one outcome per
    /// proposal, in order, once the entry is applied.
    ///
    /// # Errors
    /// Not the leader, not applied within [`PROPOSE_TIMEOUT`], or Raft failed.
    pub async fn write(&self, proposals: Vec<Proposal>) -> Result<Vec<Outcome>, ProposeError> {
        let count = proposals.len();
        let entry = self.stamp(proposals);
        let response =
            match tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.client_write(entry)).await {
                Err(_) => return Err(ProposeError::Timeout),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(hint)))) => {
                    return Err(ProposeError::NotLeader(not_leader(&hint)))
                }
                Ok(Err(e)) => return Err(ProposeError::Unavailable(e.to_string())),
                Ok(Ok(response)) => response,
            };
        match (response.data, count) {
            (Some(Ok(Reply::Batch(outcomes))), n) if n > 1 && outcomes.len() == n => Ok(outcomes),
            (Some(outcome), 1) => Ok(vec![outcome]),
            (other, _) => Err(ProposeError::Unavailable(format!(
                "entry of {count} proposals answered {other:?}"
            ))),
        }
    }

    /// Wraps client proposals into one log entry: stamps the log time (never below what this
    /// node stamped before nor the applied log time) and fills cluster defaults. One proposal
    /// makes a plain entry; several make a [`Command::Batch`].
    ///
    /// # Panics
    /// If `proposals` is empty (the proposer never stamps an empty batch).
    pub fn stamp(&self, mut proposals: Vec<Proposal>) -> LogCommand {
        assert!(!proposals.is_empty(), "an entry carries at least one proposal");
        let wall_ms = wall_clock_ms();
        let floor = self.sm.read().now_ms();
        let term = self.raft.metrics().borrow().current_term;
        let (reference_ms, elapsed_ms) = {
            let mut reference = self.reference.lock().expect("reference lock never poisoned");
            // The clock is trusted when the term's first entry is stamped; from then on it may
            // not run ahead of monotonic time (a jump during the term is cut off).
            let current = reference.filter(|r| r.term == term).unwrap_or(Reference {
                term,
                log_ms: wall_ms.max(floor),
                at: Instant::now(),
            });
            *reference = Some(current);
            (current.log_ms, u64::try_from(current.at.elapsed().as_millis()).unwrap_or(u64::MAX))
        };
        let now_ms = bounded_log_time(wall_ms, floor, reference_ms, elapsed_ms);
        let previous = self.last_stamp_ms.fetch_max(now_ms, Ordering::Relaxed);
        let now_ms = now_ms.max(previous);
        for proposal in &mut proposals {
            if let Command::Hold { ttl_ms, .. } = &mut proposal.command {
                ttl_ms.get_or_insert(self.hold_ttl_ms);
            }
        }
        let (request_id, command) = if proposals.len() == 1 {
            let proposal = proposals.pop().expect("one proposal: length checked");
            (proposal.request_id, proposal.command)
        } else {
            (None, Command::Batch(proposals))
        };
        LogCommand { v: COMMAND_VERSION, now_ms, request_id, command }
    }
}

/// Builds a `NotLeader` answer from openraft's forwarding hint.
pub fn not_leader(
    hint: &openraft::error::ForwardToLeader<raft_store::NodeId, openraft::BasicNode>,
) -> NotLeader {
    NotLeader {
        leader_id: hint.leader_id.unwrap_or(0),
        leader_addr: hint.leader_node.as_ref().map(|n| n.addr.clone()).unwrap_or_default(),
    }
}

/// The node's wall clock, Unix ms: the one place a node reads it (log time stamps and the expiry
/// ticker's "is a deadline due" check; the state machines only ever see the stamped log time).
pub(crate) fn wall_clock_ms() -> u64 {
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(wall.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::bounded_log_time;

    #[test]
    fn a_fast_clock_cannot_run_log_time_ahead_of_real_time() {
        // Log time 1_000_000 when the term began, 5 s ago; the wall clock is 60 s ahead.
        let now = bounded_log_time(1_065_000, 1_000_000, 1_000_000, 5_000);
        assert_eq!(now, 1_000_000 + 5_000 + 1_000);
    }

    #[test]
    fn a_correct_clock_is_used_as_is_and_a_slow_one_never_goes_back() {
        assert_eq!(bounded_log_time(1_005_000, 1_000_000, 1_000_000, 5_000), 1_005_000);
        assert_eq!(bounded_log_time(900_000, 1_000_000, 1_000_000, 5_000), 1_000_000);
    }

    #[test]
    fn a_clock_jumping_ahead_late_in_a_long_term_gains_one_second_at_most() {
        // 100 s into the term the clock jumped 60 s: log time runs at most 1 s ahead.
        let now = bounded_log_time(1_160_000, 1_000_000, 1_000_000, 100_000);
        assert_eq!(now, 1_000_000 + 100_000 + 1_000);
    }
}
