//! `marqueectl`'s library: reading a cluster's state and changing its membership and
//! placement through the nodes' `Cluster` and `Inventory` gRPC services.
//!
//! Every operation is a sequence of idempotent steps, so an operation interrupted (the tool
//! killed, a node restarted) is finished by running it again. A replica move is always
//! *add learner -> wait for catch-up (log or snapshot) -> promote -> remove the old voter ->
//! delete its data -> record the new replica set in the meta group*: the group keeps a voting
//! majority throughout, so bookings continue while replicas move.
//!
//! The meta group's map is updated *after* each membership change; the Raft membership of a
//! group is the truth, and [`Admin::move_replica`] re-records it when it finds the two apart.

pub mod backup;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use client::{ChannelConfig, ClusterError, RetryPolicy};
use proto::command::Reply;
use proto::meta::{MetaCommand, NodeState, Topology};
use proto::pb::cluster_client::ClusterClient;
use proto::pb::{
    change_membership_reply, change_membership_request, ChangeMembershipRequest,
    DeleteReplicaRequest, GroupRequest, GroupStatus, Member, NodeIds, SetElectionRequest,
    StatusReply, StatusRequest,
};
use proto::{GroupId, META_GROUP};
use tonic::transport::Channel;

/// Attempts of one step that meets elections or unreachable nodes.
const STEP_ATTEMPTS_MAX: u32 = 40;
/// Pause between attempts.
const STEP_PAUSE: Duration = Duration::from_millis(250);
/// How long to wait for a leadership change after a campaign.
const CAMPAIGN_WAIT: Duration = Duration::from_secs(2);
/// A balancing transfer mutes the current leader (and stops its proposals) this long at most.
const BALANCE_LEADER_HOLD: Duration = Duration::from_secs(3);
/// After muting, before the target campaigns: a heartbeat or two for it to catch up.
const CATCH_UP_PAUSE: Duration = Duration::from_millis(300);
/// Entries a voter may trail the leader by and still be picked for a leadership transfer.
const CAUGHT_UP_SLACK: u64 = 64;
/// How long the other voters are kept from starting elections during a leadership transfer.
const ELECTION_HOLD: Duration = Duration::from_secs(10);
/// Per-call timeout of a gRPC call (a learner catch-up can take a while).
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// Meta calls: evenly paced steps; every meta command this tool sends is idempotent (register
/// a node, set a state or a replica set, register a user: a repeat is refused as taken), so
/// an unknown outcome is retried too.
const META_POLICY: RetryPolicy =
    RetryPolicy { retry_unknown: true, ..RetryPolicy::paced(STEP_ATTEMPTS_MAX, STEP_PAUSE) };

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// No node answered, or the step kept failing.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request makes no sense for this cluster (unknown node, not a replica, …).
    #[error("{0}")]
    Invalid(String),
    /// The meta group refused a change.
    #[error("refused by the meta group: {0}")]
    Refused(proto::command::Rejection),
}

impl From<ClusterError> for CtlError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Unavailable(cause) => CtlError::Unavailable(cause),
            ClusterError::OutcomeUnknown(cause) => {
                CtlError::Unavailable(format!("outcome unknown: {cause}"))
            }
            ClusterError::Invalid(cause) => CtlError::Invalid(cause),
            ClusterError::UnknownShow(show) => CtlError::Invalid(format!("unknown show {show}")),
            ClusterError::Refused(rejection) => CtlError::Refused(rejection),
        }
    }
}

type Result<T> = std::result::Result<T, CtlError>;

/// What one node reported, or why it could not.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// The node.
    pub node_id: u64,
    /// Its address.
    pub addr: String,
    /// Its status, or the error reaching it.
    pub status: std::result::Result<StatusReply, String>,
}

/// The whole cluster as seen now: the meta group's map and every registered node's report.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// The map.
    pub topology: Topology,
    /// Reports by node id.
    pub nodes: BTreeMap<u64, NodeReport>,
}

impl ClusterView {
    /// The status of `group` on its leader, if a reachable node leads it.
    pub fn leader_status(&self, group: GroupId) -> Option<(u64, &GroupStatus)> {
        self.nodes.values().find_map(|report| {
            let status = report.status.as_ref().ok()?;
            let g = status.groups.iter().find(|g| g.group_id == group.0 && g.is_leader)?;
            Some((report.node_id, g))
        })
    }

    /// The status of `group` on `node`.
    pub fn replica_status(&self, node: u64, group: GroupId) -> Option<&GroupStatus> {
        let status = self.nodes.get(&node)?.status.as_ref().ok()?;
        status.groups.iter().find(|g| g.group_id == group.0)
    }
}

/// A client for operator actions against one cluster.
pub struct Admin {
    cluster: client::ClusterClient,
    log: Box<dyn Fn(&str) + Send + Sync>,
}

impl Admin {
    /// A client that finds the cluster through `seeds` (gRPC addresses; at least one should
    /// host a meta replica). `log` receives one line per step taken.
    pub fn new(seeds: Vec<String>, log: impl Fn(&str) + Send + Sync + 'static) -> Admin {
        let channels = ChannelConfig {
            connect_timeout: Duration::from_millis(700),
            request_timeout: Some(CALL_TIMEOUT),
            ..ChannelConfig::default()
        };
        Admin {
            cluster: client::ClusterClient::with_policy(seeds, META_POLICY, channels),
            log: Box::new(log),
        }
    }

    fn say(&self, line: &str) {
        (self.log)(line);
    }

    fn cluster(&self, addr: &str) -> Result<ClusterClient<Channel>> {
        Ok(self.cluster.channels().cluster(addr)?)
    }

    /// The meta group's current map (linearizable read on its leader).
    ///
    /// # Errors
    /// No meta replica answered.
    pub async fn topology(&self) -> Result<Topology> {
        Ok(self.cluster.meta_topology().await?)
    }

    /// Proposes a meta command on the meta leader.
    ///
    /// # Errors
    /// The meta group is unreachable or refused the change.
    pub async fn meta(&self, command: MetaCommand) -> Result<Reply> {
        Ok(self.cluster.propose_meta(command).await?)
    }

    /// The map plus every registered (not removed) node's status.
    ///
    /// # Errors
    /// The meta group is unreachable.
    pub async fn view(&self) -> Result<ClusterView> {
        let topology = self.topology().await?;
        let mut nodes = BTreeMap::new();
        for (id, info) in &topology.nodes {
            if info.state == NodeState::Removed {
                continue;
            }
            let status = async {
                let mut client = self.cluster(&info.addr)?;
                let mut request = tonic::Request::new(StatusRequest { with_digest: false });
                request.set_timeout(Duration::from_secs(3));
                client
                    .status(request)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| CtlError::Unavailable(s.message().to_owned()))
            }
            .await
            .map_err(|e| e.to_string());
            nodes.insert(*id, NodeReport { node_id: *id, addr: info.addr.clone(), status });
        }
        Ok(ClusterView { topology, nodes })
    }

    /// Registers a node (normally the node does it itself with `--join`).
    ///
    /// # Errors
    /// The meta group refused (id removed before, bad address) or is unreachable.
    pub async fn add_node(&self, node_id: u64, addr: &str) -> Result<()> {
        self.meta(MetaCommand::RegisterNode { node_id, addr: addr.to_owned(), zone: None }).await?;
        self.say(&format!("node {node_id} registered at {addr}"));
        Ok(())
    }

    /// A cluster view in which `group` has a reachable leader. A group between leaders (an
    /// election after a previous step moved its leader, or a node busy catching up) is
    /// normal during maintenance: wait for it, bounded, rather than fail the whole drain.
    async fn view_with_leader(&self, group: GroupId) -> Result<ClusterView> {
        for attempt in 1..=STEP_ATTEMPTS_MAX {
            let view = self.view().await?;
            if view.leader_status(group).is_some() {
                return Ok(view);
            }
            if attempt < STEP_ATTEMPTS_MAX {
                tokio::time::sleep(STEP_PAUSE).await;
            }
        }
        Err(CtlError::Unavailable(format!("group {group} has no reachable leader")))
    }

    /// Runs one membership step on the group's leader, following leader hints.
    async fn change(
        &self,
        group: GroupId,
        change: change_membership_request::Change,
    ) -> Result<GroupStatus> {
        let mut last = String::new();
        for _ in 0..STEP_ATTEMPTS_MAX {
            let view = self.view().await?;
            let Some((leader, _)) = view.leader_status(group) else {
                last = format!("group {group} has no reachable leader");
                tokio::time::sleep(STEP_PAUSE).await;
                continue;
            };
            let addr = view.nodes.get(&leader).map(|n| n.addr.clone()).unwrap_or_default();
            let request =
                ChangeMembershipRequest { group_id: group.0, change: Some(change.clone()) };
            let reply = async {
                self.cluster(&addr)?
                    .change_membership(request)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| CtlError::Unavailable(format!("{:?}: {}", s.code(), s.message())))
            }
            .await;
            match reply.map(|r| r.result) {
                Ok(Some(change_membership_reply::Result::Status(status))) => return Ok(status),
                Ok(_) => last = format!("{addr} is no longer the leader of group {group}"),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(STEP_PAUSE).await;
        }
        Err(CtlError::Unavailable(last))
    }

    async fn node_call<F, Fut>(&self, addr: &str, what: &str, call: F) -> Result<()>
    where
        F: Fn(ClusterClient<Channel>) -> Fut,
        Fut: std::future::Future<
            Output = std::result::Result<tonic::Response<proto::pb::Ack>, tonic::Status>,
        >,
    {
        let mut last = String::new();
        for _ in 0..STEP_ATTEMPTS_MAX {
            match call(self.cluster(addr)?).await {
                Ok(_) => return Ok(()),
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    return Err(CtlError::Invalid(format!(
                        "{what} on {addr}: {}",
                        status.message()
                    )))
                }
                Err(status) => last = format!("{what} on {addr}: {}", status.message()),
            }
            tokio::time::sleep(STEP_PAUSE).await;
        }
        Err(CtlError::Unavailable(last))
    }

    /// Moves `group`'s replica from node `from` to node `to`: learner, catch-up, promote,
    /// remove, delete, record. Safe to re-run after an interruption.
    ///
    /// # Errors
    /// Unknown nodes, `to` already a replica, or a step that kept failing.
    pub async fn move_replica(&self, group: GroupId, from: u64, to: u64) -> Result<()> {
        let view = self.view_with_leader(group).await?;
        let topology = &view.topology;
        let to_addr = match topology.nodes.get(&to) {
            Some(n) if n.state == NodeState::Active => n.addr.clone(),
            Some(_) => return Err(CtlError::Invalid(format!("node {to} is not active"))),
            None => return Err(CtlError::Invalid(format!("node {to} is not registered"))),
        };
        let (_, leader) = view.leader_status(group).ok_or_else(|| {
            CtlError::Unavailable(format!("group {group} has no reachable leader"))
        })?;
        let voters: BTreeSet<u64> = leader.voters.iter().copied().collect();
        if !voters.contains(&from) {
            if voters.contains(&to) {
                // A previous run got past the membership change: just record it.
                self.record(group, &voters).await?;
                return Ok(());
            }
            return Err(CtlError::Invalid(format!(
                "node {from} holds no replica of group {group}"
            )));
        }
        if voters.contains(&to) {
            return Err(CtlError::Invalid(format!(
                "node {to} already holds a replica of group {group}"
            )));
        }
        self.say(&format!("group {group}: moving replica {from} -> {to}"));
        self.node_call(&to_addr, "create replica", |mut c| async move {
            c.create_replica(GroupRequest { group_id: group.0 }).await
        })
        .await?;
        let learner = Member { node_id: to, addr: to_addr.clone() };
        self.change(group, change_membership_request::Change::AddLearner(learner)).await?;
        self.say(&format!("group {group}: learner {to} caught up"));
        self.change(group, change_membership_request::Change::Promote(NodeIds { ids: vec![to] }))
            .await?;
        self.say(&format!("group {group}: {to} promoted to voter"));
        if leader.leader_id == from {
            // Hand leadership to a remaining voter first, so the group elects while the old
            // leader still serves; if that fails, removal makes the old leader step down.
            if let Some(next) = voters.iter().copied().find(|v| *v != from) {
                if let Err(e) = self.transfer_leader(group, next).await {
                    self.say(&format!(
                        "group {group}: hand-over to {next} failed ({e}); removing anyway"
                    ));
                }
            }
        }
        let status = self
            .change(group, change_membership_request::Change::Remove(NodeIds { ids: vec![from] }))
            .await?;
        self.say(&format!("group {group}: {from} removed"));
        let from_reachable = view.nodes.get(&from).is_some_and(|r| r.status.is_ok());
        if !from_reachable {
            self.say(&format!(
                "group {group}: node {from} is unreachable; it deletes its copy when it is back \
                 (the placement loop's tombstones, or marqueectl delete-replica)"
            ));
        } else if let Some(from_node) = topology.nodes.get(&from) {
            let deleted = self
                .node_call(&from_node.addr, "delete replica", |mut c| async move {
                    c.delete_replica(DeleteReplicaRequest { group_id: group.0, force: true }).await
                })
                .await;
            if let Err(e) = deleted {
                self.say(&format!(
                    "group {group}: could not delete the old replica on node {from} ({e}); \
                     delete it when the node is back (marqueectl delete-replica)"
                ));
            }
        }
        self.record(group, &status.voters.iter().copied().collect()).await
    }

    async fn record(&self, group: GroupId, voters: &BTreeSet<u64>) -> Result<()> {
        self.meta(MetaCommand::SetReplicas { group, replicas: voters.clone() }).await?;
        self.say(&format!("group {group}: map records replicas {voters:?}"));
        Ok(())
    }

    /// Deletes a node's replica of a group after it was removed from the membership.
    ///
    /// # Errors
    /// The node still counts itself a voter (use `force` only if the leader says otherwise).
    pub async fn delete_replica(&self, node: u64, group: GroupId, force: bool) -> Result<()> {
        let topology = self.topology().await?;
        let addr = topology
            .nodes
            .get(&node)
            .map(|n| n.addr.clone())
            .ok_or_else(|| CtlError::Invalid(format!("node {node} is not registered")))?;
        self.node_call(&addr, "delete replica", |mut c| async move {
            c.delete_replica(DeleteReplicaRequest { group_id: group.0, force }).await
        })
        .await
    }

    /// Makes `to` the leader of `group`: the other voters stop starting elections for a while
    /// (they still vote), `to` campaigns until it wins, then elections are re-enabled.
    ///
    /// openraft 0.9 has no leadership transfer; with the others muted, the only candidate is
    /// `to`, and it wins as soon as its log is current and the leader lease runs out.
    ///
    /// # Errors
    /// `to` is not a voter or did not win in time.
    pub async fn transfer_leader(&self, group: GroupId, to: u64) -> Result<()> {
        self.transfer(group, to, ELECTION_HOLD).await
    }

    /// Like [`Admin::transfer_leader`] for balancing, where the current leader stays up: it is
    /// muted (and refuses new proposals) for a few seconds only, so if `to` cannot win, the old
    /// leader serves again, or elects itself again, soon instead of after the whole hold.
    ///
    /// # Errors
    /// As [`Admin::transfer_leader`].
    pub async fn rebalance_leader(&self, group: GroupId, to: u64) -> Result<()> {
        self.transfer(group, to, BALANCE_LEADER_HOLD).await
    }

    async fn transfer(&self, group: GroupId, to: u64, leader_hold: Duration) -> Result<()> {
        let view = self.view_with_leader(group).await?;
        let (leader, status) = view.leader_status(group).ok_or_else(|| {
            CtlError::Unavailable(format!("group {group} has no reachable leader"))
        })?;
        if leader == to {
            return Ok(());
        }
        if !status.voters.contains(&to) {
            return Err(CtlError::Invalid(format!("node {to} is not a voter of group {group}")));
        }
        let addr_of = |id: u64| view.topology.nodes.get(&id).map(|n| n.addr.clone());
        let to_addr =
            addr_of(to).ok_or_else(|| CtlError::Invalid(format!("node {to} is not registered")))?;
        let others: Vec<(String, Duration)> = status
            .voters
            .iter()
            .filter(|v| **v != to)
            .filter_map(|v| {
                addr_of(*v).map(|a| (a, if *v == leader { leader_hold } else { ELECTION_HOLD }))
            })
            .collect();
        let set_election = |addr: String, enabled: bool, hold: Duration| async move {
            let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
            let request = SetElectionRequest { group_id: group.0, enabled, hold_ms };
            match self.cluster(&addr) {
                Ok(mut client) => client
                    .set_election(request)
                    .await
                    .map(|_| ())
                    .map_err(|s| s.message().to_owned()),
                Err(e) => Err(e.to_string()),
            }
        };
        // Muting the leader also makes it refuse new proposals for its hold (the node's
        // `SetElection`): its log stops growing, so `to` catches up and can win the vote.
        for (addr, hold) in &others {
            // Best effort: an unreachable voter cannot start elections either.
            let _ = set_election(addr.clone(), false, *hold).await;
        }
        tokio::time::sleep(CATCH_UP_PAUSE).await;
        let mut won = false;
        let deadline = Instant::now() + ELECTION_HOLD - Duration::from_secs(1);
        while !won && Instant::now() < deadline {
            let _ = self
                .node_call(&to_addr, "campaign", |mut c| async move {
                    c.campaign(GroupRequest { group_id: group.0 }).await
                })
                .await;
            let wait_until = Instant::now() + CAMPAIGN_WAIT;
            while Instant::now() < wait_until.min(deadline) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if self.view().await?.leader_status(group).is_some_and(|(id, _)| id == to) {
                    won = true;
                    break;
                }
            }
        }
        for (addr, hold) in others {
            let _ = set_election(addr, true, hold).await;
        }
        if won {
            self.say(&format!("group {group}: node {to} leads"));
            Ok(())
        } else {
            Err(CtlError::Unavailable(format!("node {to} did not become leader of group {group}")))
        }
    }

    /// The id of the node serving at `addr` (its `Cluster.Status`).
    ///
    /// # Errors
    /// It did not answer.
    pub async fn node_id_at(&self, addr: &str) -> Result<u64> {
        let mut client = self.cluster(addr)?;
        let mut request = tonic::Request::new(StatusRequest { with_digest: false });
        request.set_timeout(Duration::from_secs(3));
        let reply = client
            .status(request)
            .await
            .map_err(|s| CtlError::Unavailable(format!("{addr}: {}", s.message())))?;
        Ok(reply.into_inner().node_id)
    }

    /// Moves the leadership of every group `node` leads to another voter, all groups at once:
    /// what a node does when asked to stop (SIGTERM) and `marqueectl hand-off` does by hand, so
    /// a planned restart costs no election timeout. The new leader is the reachable voter whose
    /// log the leader has matched furthest. Returns how many groups moved.
    ///
    /// # Errors
    /// The cluster state could not be read. A transfer that fails is reported, not an error:
    /// that group elects a leader the usual way once the node stops.
    pub async fn hand_off(&self, node: u64) -> Result<usize> {
        let view = self.view().await?;
        let moves: Vec<(GroupId, u64)> = view
            .topology
            .groups
            .keys()
            .filter_map(|group| {
                let (leader, status) = view.leader_status(*group)?;
                if leader != node {
                    return None;
                }
                let to = status
                    .voters
                    .iter()
                    .filter(|v| **v != node && view.nodes.get(v).is_some_and(|r| r.status.is_ok()))
                    .max_by_key(|v| (status.matched.get(v).copied().unwrap_or(0), **v))?;
                Some((*group, *to))
            })
            .collect();
        let results = futures_util::future::join_all(
            moves.iter().map(|(group, to)| self.transfer_leader(*group, *to)),
        )
        .await;
        let mut moved = 0;
        for ((group, to), result) in moves.iter().zip(results) {
            match result {
                Ok(()) => moved += 1,
                Err(e) => self.say(&format!("group {group}: hand-off to {to} failed: {e}")),
            }
        }
        self.say(&format!("node {node} handed off {moved} of {} leaderships", moves.len()));
        Ok(moved)
    }

    /// Moves every replica off `node` (onto the active nodes holding the fewest), marking it
    /// draining first so nothing new lands on it; with `remove`, then marks it removed.
    ///
    /// # Errors
    /// Not enough other active nodes, or a move that kept failing.
    pub async fn drain(&self, node: u64, remove: bool) -> Result<()> {
        self.meta(MetaCommand::SetNodeState { node_id: node, state: NodeState::Draining }).await?;
        self.say(&format!("node {node} draining"));
        loop {
            let topology = self.topology().await?;
            let Some((group, replicas)) = topology
                .groups
                .iter()
                .find(|(_, g)| g.replicas.contains(&node))
                .map(|(id, g)| (*id, g.replicas.clone()))
            else {
                break;
            };
            let staying: BTreeSet<u64> = replicas.iter().copied().filter(|r| *r != node).collect();
            let target = least_loaded(&topology, &replicas, &staying).ok_or_else(|| {
                CtlError::Invalid(format!("no active node can take group {group}'s replica"))
            })?;
            self.move_replica(group, node, target).await?;
        }
        self.say(&format!("node {node} holds no replicas"));
        if remove {
            self.meta(MetaCommand::SetNodeState { node_id: node, state: NodeState::Removed })
                .await?;
            self.say(&format!("node {node} removed: it can be stopped"));
        }
        Ok(())
    }

    /// Moves replicas from the most to the least loaded active nodes until every active node
    /// holds within one replica of the others, then balances leaders.
    ///
    /// # Errors
    /// A move that kept failing.
    pub async fn rebalance(&self) -> Result<()> {
        let groups = self.topology().await?.groups.len();
        for _ in 0..groups * 3 {
            let topology = self.topology().await?;
            let counts = replica_counts(&topology);
            let (Some((&busiest, &most)), Some((&idlest, &least))) = (
                counts.iter().max_by_key(|(id, c)| (**c, std::cmp::Reverse(**id))),
                counts.iter().min_by_key(|(id, c)| (**c, **id)),
            ) else {
                break;
            };
            if most <= least + 1 {
                break;
            }
            // Prefer moving a shard; the meta group moves only if nothing else can.
            let Some(group) = topology
                .groups
                .iter()
                .filter(|(_, g)| g.replicas.contains(&busiest) && !g.replicas.contains(&idlest))
                .min_by_key(|(id, _)| (**id == META_GROUP, **id))
                .map(|(id, _)| *id)
            else {
                break;
            };
            self.move_replica(group, busiest, idlest).await?;
        }
        self.balance_leaders().await
    }

    /// Spreads group leadership evenly over the active nodes by asking under-loaded voters to
    /// campaign, one [`plan_leader_move`] at a time.
    ///
    /// # Errors
    /// The cluster state could not be read.
    pub async fn balance_leaders(&self) -> Result<()> {
        let groups = self.topology().await?.groups.len();
        for _ in 0..groups * 2 {
            let view = self.view().await?;
            let Some((group, to)) = plan_leader_move(&view) else {
                break;
            };
            if let Err(e) = self.rebalance_leader(group, to).await {
                self.say(&format!("group {group}: leadership to {to} failed: {e}"));
            }
        }
        Ok(())
    }
}

/// The next leadership transfer that evens out leaders over the active nodes, if any: a group
/// led by the busiest node (more than its fair share) goes to one of its voters that leads at
/// least two fewer. Nodes that are not active, or did not answer, are never chosen.
pub fn plan_leader_move(view: &ClusterView) -> Option<(GroupId, u64)> {
    let groups = view.topology.groups.len();
    let active: Vec<u64> = view
        .topology
        .nodes
        .iter()
        .filter(|(id, n)| {
            n.state == NodeState::Active && view.nodes.get(id).is_some_and(|r| r.status.is_ok())
        })
        .map(|(id, _)| *id)
        .collect();
    if active.is_empty() {
        return None;
    }
    let mut leaders: BTreeMap<u64, Vec<GroupId>> =
        active.iter().map(|id| (*id, Vec::new())).collect();
    for group in view.topology.groups.keys() {
        if let Some((leader, _)) = view.leader_status(*group) {
            leaders.entry(leader).or_default().push(*group);
        }
    }
    let ceiling = groups.div_ceil(active.len());
    let floor = groups / active.len();
    let (&busy, led) = leaders
        .iter()
        .filter(|(_, led)| led.len() > ceiling || (led.len() > floor + 1))
        .max_by_key(|(_, led)| led.len())?;
    // A group it leads with a voter that leads at least two fewer: the one leading the fewest.
    led.iter().find_map(|group| {
        let (_, status) = view.leader_status(*group)?;
        // Only a voter whose log is (nearly) current can win at once.
        let caught_up = |v: &u64| {
            status.matched.get(v).is_some_and(|m| m + CAUGHT_UP_SLACK >= status.last_log_index)
        };
        status
            .voters
            .iter()
            .filter(|v| **v != busy && active.contains(v) && caught_up(v))
            .filter(|v| leaders.get(v).is_some_and(|l| l.len() + 1 < led.len()))
            .min_by_key(|v| leaders.get(v).map_or(0, Vec::len))
            .map(|v| (*group, *v))
    })
}

/// Replicas held per active node.
pub fn replica_counts(topology: &Topology) -> BTreeMap<u64, usize> {
    let mut counts: BTreeMap<u64, usize> = topology
        .nodes
        .iter()
        .filter(|(_, n)| n.state == NodeState::Active)
        .map(|(id, _)| (*id, 0))
        .collect();
    for group in topology.groups.values() {
        for replica in &group.replicas {
            if let Some(count) = counts.get_mut(replica) {
                *count += 1;
            }
        }
    }
    counts
}

/// Where a group's new replica goes: the active node outside `exclude` that is not in the zone
/// of any of the group's `staying` replicas if there is one (failure domains first: `--zone`),
/// then the one holding the fewest replicas, then the lowest id. A node without a zone shares
/// a zone with nobody.
pub fn least_loaded(
    topology: &Topology,
    exclude: &BTreeSet<u64>,
    staying: &BTreeSet<u64>,
) -> Option<u64> {
    let zone = |id: &u64| topology.nodes.get(id).and_then(|n| n.zone.as_deref());
    let taken: BTreeSet<&str> = staying.iter().filter_map(zone).collect();
    replica_counts(topology)
        .into_iter()
        .filter(|(id, _)| !exclude.contains(id))
        .min_by_key(|(id, count)| (zone(id).is_some_and(|z| taken.contains(z)), *count, *id))
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use proto::meta::{GroupInfo, GroupKind, NodeInfo};

    use super::*;

    fn topology(groups: &[(u64, &[u64])], nodes: &[(u64, NodeState)]) -> Topology {
        Topology {
            version: 1,
            nodes: nodes
                .iter()
                .map(|(id, state)| {
                    (*id, NodeInfo { addr: format!("n{id}"), state: *state, zone: None })
                })
                .collect(),
            groups: groups
                .iter()
                .map(|(id, replicas)| {
                    let kind = if *id == 0 { GroupKind::Meta } else { GroupKind::Inventory };
                    let replicas = replicas.iter().copied().collect();
                    (GroupId(*id), GroupInfo { kind, replicas, shows: 0, seats: 0 })
                })
                .collect(),
            repair_paused: false,
        }
    }

    #[test]
    fn least_loaded_skips_draining_nodes_and_current_replicas() {
        let t = topology(
            &[(0, &[1, 2, 3]), (1, &[1, 2, 3]), (2, &[1, 2, 4])],
            &[
                (1, NodeState::Active),
                (2, NodeState::Active),
                (3, NodeState::Draining),
                (4, NodeState::Active),
                (5, NodeState::Active),
            ],
        );
        assert_eq!(replica_counts(&t).get(&5), Some(&0));
        assert_eq!(replica_counts(&t).get(&3), None, "draining nodes take nothing");
        let none = BTreeSet::new();
        assert_eq!(least_loaded(&t, &BTreeSet::from([1, 2, 3]), &none), Some(5));
        assert_eq!(least_loaded(&t, &BTreeSet::from([5, 1, 2]), &none), Some(4));
    }

    #[test]
    fn a_new_replica_goes_outside_the_zones_of_the_replicas_that_stay() {
        // Group 1 on 1 (zone a), 2 (zone b), 3 (dead, zone c). Node 4 (zone a) is the least
        // loaded, node 5 (zone c) is busier: the replica goes to zone c all the same.
        let mut t = topology(
            &[(1, &[1, 2, 3]), (2, &[5]), (3, &[5])],
            &[
                (1, NodeState::Active),
                (2, NodeState::Active),
                (3, NodeState::Active),
                (4, NodeState::Active),
                (5, NodeState::Active),
            ],
        );
        for (id, zone) in [(1, "a"), (2, "b"), (3, "c"), (4, "a"), (5, "c")] {
            t.nodes.get_mut(&id).unwrap().zone = Some(zone.into());
        }
        let exclude = BTreeSet::from([1, 2, 3]);
        assert_eq!(least_loaded(&t, &exclude, &BTreeSet::from([1, 2])), Some(5));
        // Every candidate shares a zone: the least loaded wins.
        t.nodes.get_mut(&5).unwrap().zone = Some("b".into());
        assert_eq!(least_loaded(&t, &exclude, &BTreeSet::from([1, 2])), Some(4));
        // Nodes without a zone share it with nobody.
        t.nodes.get_mut(&4).unwrap().zone = None;
        assert_eq!(least_loaded(&t, &exclude, &BTreeSet::from([1, 2])), Some(4));
    }
}
