//! One simulated node: its disk (which outlives its processes) and the current process, if it
//! is up. A process is what `marquee-node` runs for one inventory group: openraft over the real
//! log store and state-machine adapter (on the simulated disk), the real proposer (batching),
//! the real log-time rule (`node::logtime`: a new leader starts the term's log time from a
//! majority of the voters' clocks, read over the simulated network), and an expiry ticker. The
//! gRPC glue around them is not run; what it does is done here by function calls.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use node::logtime::{term_start, Reading, TermClock, CLOCK_READ_TIMEOUT};
use node::proposer::{self, ProposeError, Proposer, ProposerConfig};
use openraft::{BasicNode, Raft};
use proto::command::{Command, LogCommand, Outcome, Proposal, COMMAND_VERSION};
use raft_store::{LogStore, NodeId, SimDisk, StateMachineStore, TypeConfig};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::net::SimNetwork;
use super::World;

/// The one inventory group every simulated node hosts.
pub const GROUP: proto::GroupId = proto::GroupId(1);
/// Hold lifetime the cluster fills in when a hold names none.
const HOLD_TTL_MS: u64 = 10_000;

/// A node: a disk and at most one running process.
pub struct SimNode {
    /// Node id (1-based).
    pub id: NodeId,
    /// Its disk.
    pub disk: SimDisk,
    process: Mutex<Option<Process>>,
    epochs: AtomicU64,
    /// How far this node's wall clock is from true time, ms.
    pub clock_offset_ms: AtomicI64,
}

/// A running process of a node.
#[derive(Clone)]
pub struct Process {
    /// Incarnation number.
    pub epoch: u64,
    /// The replica.
    pub raft: Raft<TypeConfig>,
    /// Its state machine.
    pub sm: StateMachineStore,
    proposer: Proposer,
    cancel: CancellationToken,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

/// openraft's settings in the simulator: the node's defaults, scaled to simulated time.
fn raft_config() -> Arc<openraft::Config> {
    Arc::new(
        openraft::Config {
            cluster_name: "marquee-sim".into(),
            heartbeat_interval: 100,
            election_timeout_min: 500,
            election_timeout_max: 1_000,
            install_snapshot_timeout: 2_000,
            max_payload_entries: 64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(200),
            max_in_snapshot_log_to_keep: 50,
            ..Default::default()
        }
        .validate()
        .expect("the simulator's raft settings are consistent"),
    )
}

impl SimNode {
    /// A node with a blank disk and no process.
    pub fn new(id: NodeId) -> SimNode {
        SimNode {
            id,
            disk: SimDisk::new(),
            process: Mutex::new(None),
            epochs: AtomicU64::new(0),
            clock_offset_ms: AtomicI64::new(0),
        }
    }

    /// The running process, if any.
    pub fn process(&self) -> Option<Process> {
        self.process.lock().expect("process lock").clone()
    }

    /// Whether a process is up.
    pub fn is_running(&self) -> bool {
        self.process.lock().expect("process lock").is_some()
    }

    /// Whether process `epoch` is the one running.
    pub fn is_process(&self, epoch: u64) -> bool {
        self.process.lock().expect("process lock").as_ref().is_some_and(|p| p.epoch == epoch)
    }

    /// The running replica, if any.
    pub fn raft(&self) -> Option<Raft<TypeConfig>> {
        self.process().map(|p| p.raft)
    }

    /// This node's wall clock now, Unix ms (true time plus its skew).
    pub fn wall_ms(&self, world: &World) -> u64 {
        let offset = self.clock_offset_ms.load(Ordering::Relaxed);
        world.now_ms().saturating_add_signed(offset)
    }

    /// Starts a process: opens the disk, starts the replica (the first node of a blank cluster
    /// also initializes the membership), the disk's sync loop, the proposer and the expiry
    /// ticker.
    ///
    /// # Errors
    /// The disk's contents could not be loaded or openraft refused to start.
    pub async fn start(
        self: &Arc<Self>,
        world: &Arc<World>,
        initialize: bool,
    ) -> anyhow::Result<()> {
        let epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
        let db = raft_store::Db::simulated(&self.disk);
        let log = LogStore::open(db.clone(), GROUP)?;
        let sm = StateMachineStore::open(db, GROUP, None)?;
        let network = SimNetwork { world: Arc::clone(world), from: self.id, epoch };
        let raft = Raft::new(self.id, raft_config(), network, log, sm.clone()).await?;
        let (proposer, queue) = proposer::channel();
        let cancel = CancellationToken::new();
        let process = Process {
            epoch,
            raft: raft.clone(),
            sm,
            proposer,
            cancel: cancel.clone(),
            tasks: Arc::default(),
        };
        *self.process.lock().expect("process lock") = Some(process.clone());

        let mut tasks = Vec::new();
        // Group commit: whatever is pending when the previous sync ends goes in the next one.
        let (disk, w) = (self.disk.clone(), Arc::clone(world));
        tasks.push(
            tokio::spawn(async move {
                loop {
                    disk.wait_pending().await;
                    tokio::time::sleep(Duration::from_micros(w.fsync_us())).await;
                    disk.sync(usize::MAX);
                }
            })
            .abort_handle(),
        );
        let clock = Arc::new(TermClockCell::default());
        let writer = Writer {
            world: Arc::clone(world),
            node: Arc::clone(self),
            raft: raft.clone(),
            sm: process.sm.clone(),
            clock: Arc::clone(&clock),
        };
        let config = ProposerConfig { batch_max: 16, inflight_max: 2 };
        let write = writer.clone();
        tasks.push(
            tokio::spawn(proposer::run(
                queue,
                config,
                cancel.clone(),
                node::metrics::Metrics::new(),
                move |proposals| {
                    let write = write.clone();
                    async move { write.write(proposals).await }
                },
            ))
            .abort_handle(),
        );
        tasks.push(tokio::spawn(expiry_ticker(writer, self.id, cancel)).abort_handle());
        process.tasks.lock().expect("tasks lock").extend(tasks);

        if initialize {
            let members: BTreeMap<NodeId, BasicNode> = world
                .nodes
                .iter()
                .map(|n| (n.id, BasicNode { addr: format!("sim-{}", n.id) }))
                .collect();
            raft.initialize(members).await?;
        }
        Ok(())
    }

    /// The process dies at once: the oldest `survivors` of its unsynced writes reach the disk
    /// unacknowledged, the rest are lost, and its tasks stop.
    pub async fn crash(&self, survivors: usize) {
        let Some(process) = self.process.lock().expect("process lock").take() else { return };
        self.disk.crash(survivors);
        process.cancel.cancel();
        for task in process.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
        // openraft's own tasks end once the core stops; its storage now refuses every write.
        let _ = tokio::time::timeout(Duration::from_secs(2), process.raft.shutdown()).await;
    }

    /// Proposes one command through this node's proposer, as the inventory service does.
    ///
    /// # Errors
    /// No process, not the leader, a timeout (outcome unknown) or Raft failed.
    pub async fn propose(&self, proposal: Proposal) -> Result<Outcome, ProposeError> {
        let Some(process) = self.process() else {
            return Err(ProposeError::Unavailable("node down".into()));
        };
        process.proposer.propose(proposal).await
    }

    /// Whether this node's process believes it leads the group.
    pub fn is_leader(&self) -> bool {
        self.raft().is_some_and(|raft| raft.metrics().borrow().current_leader == Some(self.id))
    }
}

#[derive(Default)]
struct TermClockCell {
    clock: Mutex<Option<TermClock>>,
    last_stamp_ms: AtomicU64,
}

/// What the node's `Group::write` does: start the term's log time if needed, stamp, append,
/// wait for the outcome.
#[derive(Clone)]
struct Writer {
    world: Arc<World>,
    node: Arc<SimNode>,
    raft: Raft<TypeConfig>,
    sm: StateMachineStore,
    clock: Arc<TermClockCell>,
}

impl Writer {
    async fn write(&self, proposals: Vec<Proposal>) -> Result<Vec<Outcome>, ProposeError> {
        let count = proposals.len();
        let entry = self.entry(proposals).await?;
        node::group::append(&self.raft, entry, count).await
    }

    async fn entry(&self, proposals: Vec<Proposal>) -> Result<LogCommand, ProposeError> {
        let clock = self.term_clock().await?;
        let floor = self.sm.read().now_ms();
        let now_ms = clock.at_instant(self.world.std_now(), floor);
        let previous = self.clock.last_stamp_ms.fetch_max(now_ms, Ordering::Relaxed);
        Ok(node::group::wrap(proposals, now_ms.max(previous), HOLD_TTL_MS, COMMAND_VERSION))
    }

    /// Log time now if this process leads in a term whose clock it started.
    fn log_now_ms(&self) -> Option<u64> {
        let term = self.raft.metrics().borrow().current_term;
        let clock = *self.clock.clock.lock().expect("clock lock");
        clock
            .filter(|c| c.term == term)
            .map(|c| c.at_instant(self.world.std_now(), self.sm.read().now_ms()))
    }

    /// `node::group::Group::term_clock`, with the voters' clocks read over the simulated
    /// network.
    async fn term_clock(&self) -> Result<TermClock, ProposeError> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(metrics.id) {
            return Err(ProposeError::NotLeader(proto::pb::NotLeader::default()));
        }
        let term = metrics.current_term;
        if let Some(clock) = *self.clock.clock.lock().expect("clock lock") {
            if clock.term == term {
                return Ok(clock);
            }
        }
        let membership = metrics.membership_config.membership();
        let voters = membership.voter_ids().count();
        let peers: Vec<NodeId> = membership.voter_ids().filter(|id| *id != metrics.id).collect();
        let readings =
            futures_util::future::join_all(peers.iter().map(|peer| self.read_clock(*peer))).await;
        let at = self.world.std_now();
        let mut estimates = vec![self.node.wall_ms(&self.world)];
        estimates.extend(readings.iter().flatten().map(|reading| reading.estimate_at(at)));
        let start = term_start(estimates, voters).ok_or_else(|| {
            ProposeError::Unavailable("too few voters' clocks to start the term".into())
        })?;
        let floor = self.sm.read().now_ms();
        let clock = TermClock { term, start_ms: start.max(floor), at };
        let mut cached = self.clock.clock.lock().expect("clock lock");
        match *cached {
            Some(existing) if existing.term == term => Ok(existing),
            _ => {
                *cached = Some(clock);
                Ok(clock)
            }
        }
    }

    async fn read_clock(&self, peer: NodeId) -> Option<Reading> {
        let sent = self.world.std_now();
        let trip = async {
            if !self.world.leg(self.node.id, peer).await {
                return None;
            }
            let wall_ms = self.world.node(peer).wall_ms(&self.world);
            self.world.leg(peer, self.node.id).await.then_some(wall_ms)
        };
        let wall_ms = tokio::time::timeout(CLOCK_READ_TIMEOUT, trip).await.ok().flatten()?;
        Some(Reading { wall_ms, sent, received: self.world.std_now() })
    }
}

/// `node::worker::expiry_ticker`: while leading, proposes `ExpireDue` once something is due by
/// log time.
async fn expiry_ticker(writer: Writer, id: NodeId, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if writer.raft.metrics().borrow().current_leader != Some(id) {
            continue;
        }
        let due = writer.sm.read().state.next_deadline_ms();
        let now_ms = writer.log_now_ms().unwrap_or_else(|| writer.node.wall_ms(&writer.world));
        if due.is_some_and(|at| at <= now_ms) {
            let _ = writer.write(vec![expire()]).await;
        }
    }
}

fn expire() -> Proposal {
    Proposal { request_id: None, command: Command::ExpireDue }
}
