//! One Raft replica hosted by this node: the openraft handle, its log and its state machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, SnapshotPolicy};
use proto::command::{Command, LogCommand, Outcome, Proposal, Reply, COMMAND_VERSION};
use proto::pb::raft_transport_client::RaftTransportClient;
use proto::pb::{ClockRequest, NotLeader};
use proto::GroupId;
use raft_store::{ApplyObserver, Db, LogStore, NodeId, StateMachineStore, TypeConfig};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::logtime::{term_start, Reading, TermClock, CLOCK_READ_TIMEOUT};
use crate::proposer::{self, ProposeError, Proposer, Queue, PROPOSE_TIMEOUT};
use crate::transport::{Channels, NetworkFactory};

/// The longest a proposal waits on a leader that is handing its leadership over
/// ([`Group::term_clock`]): well inside [`PROPOSE_TIMEOUT`] and the callers' per-call limits.
pub const YIELD_WAIT_MAX: Duration = Duration::from_secs(2);

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
    /// Where log time started in this node's latest term as leader ([`crate::logtime`]).
    term_clock: std::sync::Mutex<Option<TermClock>>,
    /// Channels to peers, for reading the voters' clocks at the start of a term.
    channels: Channels,
    /// Until when this replica, asked to give up leadership (`SetElection(false)` while it
    /// leads), holds new proposals back, so the voter taking over catches up and wins.
    yielding_until: tokio::sync::watch::Sender<Option<Instant>>,
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
            NetworkFactory::new(id, channels.clone()),
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
            term_clock: std::sync::Mutex::new(None),
            channels,
            yielding_until: tokio::sync::watch::Sender::new(None),
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
        let entry = self.entry(proposals).await?;
        append(&self.raft, entry, count).await
    }

    /// Wraps proposals into one log entry stamped with the term's log time
    /// ([`Group::term_clock`], then [`Group::stamp`]).
    ///
    /// # Errors
    /// Not the leader, or too few voters' clocks could be read to start the term's log time.
    pub async fn entry(&self, proposals: Vec<Proposal>) -> Result<LogCommand, ProposeError> {
        let clock = self.term_clock().await?;
        Ok(self.stamp(proposals, &clock))
    }

    /// Holds new proposals back until `until` (or lets them through again with `None`): set
    /// while this replica is asked to hand its leadership over (`SetElection(false)`). See
    /// [`Group::term_clock`] for what a held proposal does.
    pub fn yield_leadership(&self, until: Option<Instant>) {
        self.yielding_until.send_replace(until);
    }

    /// While this replica hands its leadership over, waits (at most [`YIELD_WAIT_MAX`]) until
    /// it has lost the leadership, the hand-over has ended, or the wait is up, so a proposal
    /// that arrives during a leader move is answered "not the leader, ask the new one" or goes
    /// through once the move gave up, instead of being refused at once: a caller bounced
    /// between a muted leader and followers that still name it would spend its retries
    /// (and be told the outcome is unknown) before the move ends.
    ///
    /// Returns whether the replica is still holding proposals back after the wait.
    async fn wait_out_yield(&self) -> bool {
        let still_yielding = |until: &Option<Instant>| until.is_some_and(|u| Instant::now() < u);
        let mut yielding = self.yielding_until.subscribe();
        let Some(until) = *yielding.borrow_and_update() else { return false };
        if Instant::now() >= until {
            return false;
        }
        let deadline = tokio::time::Instant::from_std(until.min(Instant::now() + YIELD_WAIT_MAX));
        let mut metrics = self.raft.metrics();
        let id = metrics.borrow().id;
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            _ = metrics.wait_for(|m| m.current_leader != Some(id)) => {}
            _ = yielding.wait_for(|until| !still_yielding(until)) => {}
        }
        still_yielding(&self.yielding_until.borrow())
    }

    /// This node's log time now if it leads the group in a term whose clock it started (see
    /// [`crate::logtime`]); `None` otherwise.
    pub fn log_now_ms(&self) -> Option<u64> {
        let term = self.raft.metrics().borrow().current_term;
        let clock = *self.term_clock.lock().expect("term clock lock never poisoned");
        clock.filter(|c| c.term == term).map(|c| c.now_ms(self.sm.read().now_ms()))
    }

    /// The log-time clock of this node's current term as leader: started, on the term's first
    /// proposal, at the (f+1)-th largest of a majority of the voters' wall clocks
    /// ([`crate::logtime::term_start`]), never below the applied log time.
    ///
    /// # Errors
    /// Not the leader, or fewer than a majority of voters' clocks could be read.
    pub async fn term_clock(&self) -> Result<TermClock, ProposeError> {
        let yielding = self.wait_out_yield().await;
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(metrics.id) {
            let membership = metrics.membership_config.membership();
            let leader_addr = metrics
                .current_leader
                .and_then(|leader| membership.get_node(&leader))
                .map(|node| node.addr.clone())
                .unwrap_or_default();
            return Err(ProposeError::NotLeader(NotLeader {
                leader_id: metrics.current_leader.unwrap_or(0),
                leader_addr,
            }));
        }
        if yielding {
            // Leadership is still being handed over after the wait: no new entries (the caller
            // retries elsewhere).
            return Err(ProposeError::NotLeader(NotLeader {
                leader_id: 0,
                leader_addr: String::new(),
            }));
        }
        let term = metrics.current_term;
        if let Some(clock) = *self.term_clock.lock().expect("term clock lock never poisoned") {
            if clock.term == term {
                return Ok(clock);
            }
        }
        let membership = metrics.membership_config.membership();
        let peers: Vec<String> = membership
            .voter_ids()
            .filter(|id| *id != metrics.id)
            .filter_map(|id| membership.get_node(&id).map(|node| node.addr.clone()))
            .collect();
        let voters = membership.voter_ids().count();
        let readings = join_all(peers.iter().map(|addr| self.read_clock(addr))).await;
        let at = Instant::now();
        let own_ms = wall_clock_ms();
        let mut estimates = vec![own_ms];
        estimates.extend(readings.iter().flatten().map(|reading| match reading {
            // A node from before clock readings: its vote goes to this node's own clock
            // (docs/architecture.md, "Upgrades").
            PeerClock::Unsupported => own_ms,
            PeerClock::Read(reading) => reading.estimate_at(at),
        }));
        let answered = estimates.len();
        let start = term_start(estimates, voters).ok_or_else(|| {
            ProposeError::Unavailable(format!(
                "read the wall clocks of {answered} of {voters} voters; a majority is needed to \
                 start the term's log time"
            ))
        })?;
        let floor = self.sm.read().now_ms();
        let clock = TermClock { term, start_ms: start.max(floor), at };
        let offset_ms = i128::from(own_ms) - i128::from(start);
        if offset_ms.abs() > 1_000 {
            tracing::warn!(
                group = %self.id, term, offset_ms,
                "this node's wall clock differs from its voters' by over a second; log time \
                 follows theirs (check NTP on this node)"
            );
        }
        let mut cached = self.term_clock.lock().expect("term clock lock never poisoned");
        match *cached {
            // Another proposal of the same term started the clock first: one start per term.
            Some(existing) if existing.term == term => Ok(existing),
            _ => {
                tracing::debug!(group = %self.id, term, start_ms = clock.start_ms, offset_ms, "term clock started");
                *cached = Some(clock);
                Ok(clock)
            }
        }
    }

    /// One voter's wall clock, or `None` when it did not answer within [`CLOCK_READ_TIMEOUT`].
    async fn read_clock(&self, addr: &str) -> Option<PeerClock> {
        let channel = self.channels.get(addr).ok()?;
        let mut client = RaftTransportClient::new(channel);
        let mut request = tonic::Request::new(ClockRequest {});
        request.set_timeout(CLOCK_READ_TIMEOUT);
        let sent = Instant::now();
        match tokio::time::timeout(CLOCK_READ_TIMEOUT, client.clock(request)).await {
            Ok(Ok(reply)) => Some(PeerClock::Read(Reading {
                wall_ms: reply.into_inner().wall_ms,
                sent,
                received: Instant::now(),
            })),
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                Some(PeerClock::Unsupported)
            }
            Ok(Err(status)) => {
                tracing::debug!(group = %self.id, %addr, error = %status, "clock reading failed");
                None
            }
            Err(_) => None,
        }
    }

    /// Wraps client proposals into one log entry: stamps the log time of `clock` (never below
    /// what this node stamped before nor the applied log time) and fills cluster defaults. One
    /// proposal makes a plain entry; several make a [`Command::Batch`].
    ///
    /// # Panics
    /// If `proposals` is empty (the proposer never stamps an empty batch).
    pub fn stamp(&self, proposals: Vec<Proposal>, clock: &TermClock) -> LogCommand {
        let now_ms = clock.now_ms(self.sm.read().now_ms());
        let previous = self.last_stamp_ms.fetch_max(now_ms, Ordering::Relaxed);
        wrap(proposals, now_ms.max(previous), self.hold_ttl_ms, self.version_of_replicas())
    }

    /// The highest command version every other replica of the group (voters and learners)
    /// applies, as their Raft replies last said ([`Channels::version_of_all`]); the rules a
    /// leader may write (metric `marquee_node_raft{field="command_version"}`).
    pub fn version_of_replicas(&self) -> u32 {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let me = metrics.id;
        let others: Vec<NodeId> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != me)
            .collect();
        self.channels.version_of_all(others)
    }
}

/// The log entry for `proposals` at log time `now_ms`: holds without a lifetime get
/// `hold_ttl_ms`; one proposal makes a plain entry, several a [`Command::Batch`] (also what the
/// deterministic simulator's nodes do). Rules newer than `replicas_version` (what every
/// replica of the group applies) are dropped ([`Command::downgrade`]), and the entry carries
/// the lowest version that gives it its meaning ([`Command::version_needed`]).
///
/// # Panics
/// If `proposals` is empty (the proposer never stamps an empty batch).
pub fn wrap(
    mut proposals: Vec<Proposal>,
    now_ms: u64,
    hold_ttl_ms: u64,
    replicas_version: u32,
) -> LogCommand {
    assert!(!proposals.is_empty(), "an entry carries at least one proposal");
    for proposal in &mut proposals {
        if let Command::Hold { ttl_ms, .. } = &mut proposal.command {
            ttl_ms.get_or_insert(hold_ttl_ms);
        }
        proposal.command.downgrade(replicas_version.min(COMMAND_VERSION));
    }
    let (request_id, command) = if proposals.len() == 1 {
        let proposal = proposals.pop().expect("one proposal: length checked");
        (proposal.request_id, proposal.command)
    } else {
        (None, Command::Batch(proposals))
    };
    LogCommand { v: command.version_needed(), now_ms, request_id, command }
}

/// Appends `entry` (carrying `count` proposals) through `raft` and returns one outcome per
/// proposal, in order, once it is applied (also what the deterministic simulator's nodes do).
///
/// # Errors
/// Not the leader, not applied within [`PROPOSE_TIMEOUT`], or Raft failed.
pub async fn append(
    raft: &Raft<TypeConfig>,
    entry: LogCommand,
    count: usize,
) -> Result<Vec<Outcome>, ProposeError> {
    let response = match tokio::time::timeout(PROPOSE_TIMEOUT, raft.client_write(entry)).await {
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
        (other, _) => {
            Err(ProposeError::Unavailable(format!("entry of {count} proposals answered {other:?}")))
        }
    }
}

/// What a voter said when asked for its clock.
enum PeerClock {
    Read(Reading),
    /// A node from before the `Clock` RPC.
    Unsupported,
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

/// The node's wall clock, Unix ms: the one place a node reads it (its vote when a term's log
/// time starts, and the `Clock` RPC; the state machines only ever see the stamped log time).
pub(crate) fn wall_clock_ms() -> u64 {
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(wall.as_millis()).unwrap_or(u64::MAX)
}
