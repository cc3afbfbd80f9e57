//! The node's gRPC services: Raft transport (server side), inventory (proposals and reads)
//! and cluster (status, registration, replica lifecycle and membership steps).
//!
//! A request for a group this node does not host is answered `WrongShard` (client routing)
//! or `NOT_FOUND` (Raft and operator calls); a request that reached a follower is answered
//! `NotLeader` with the leader's address.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use proto::catalog::{CatalogQuery, CatalogQueryResult};
use proto::command::{Command, Proposal, Query};
use proto::limits::REQUEST_ID_BYTES_MAX;
use proto::meta::MetaCommand;
use proto::meta::{MetaQuery, MetaQueryResult};
use proto::pb::cluster_server::Cluster;
use proto::pb::inventory_server::Inventory;
use proto::pb::raft_transport_server::RaftTransport;
use proto::pb::{
    change_membership_reply, change_membership_request, join_reply, propose_item, propose_reply,
    query_reply, Ack, BackupReply, BackupRequest, ChangeMembershipReply, ChangeMembershipRequest,
    ClockReply, ClockRequest, DeleteReplicaRequest, GroupRequest, GroupStatus,
    InitializeGroupRequest, ItemError, JoinReply, JoinRequest, ProposeBatchReply,
    ProposeBatchRequest, ProposeItem, ProposeReply, ProposeRequest, QueryReply, QueryRequest,
    RaftReply, RaftRequest, SetElectionRequest, StatusReply, StatusRequest, WatchCatalogRequest,
    WatchShowRequest, WrongShard,
};
use proto::{codec, GroupId, META_GROUP};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::forward::MetaForward;
use crate::group::not_leader;
use crate::group::Group;
use crate::host::Host;
use crate::proposer::{ProposeError, PROPOSE_TIMEOUT};
use crate::transport::reply;

/// Most proposals in one `ProposeBatch` call.
const PROPOSE_BATCH_REQUESTS_MAX: usize = 1_024;
/// A catalog watch sends an empty reply this often when nothing changes (a heartbeat: the
/// reader learns the head, and a dead reader is noticed).
const WATCH_HEARTBEAT: Duration = Duration::from_secs(5);
/// Most changes in one watch reply.
const WATCH_BATCH_MAX: u32 = 1_000;
/// How long a linearizable read may wait for its read index.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest a replica stays unable to start elections after `SetElection(false)`.
const ELECTION_HOLD_MAX_MS: u64 = 30_000;
/// How long one membership step may take (a learner catching up included).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);

/// Implements all three services over the node's replicas.
#[derive(Clone)]
pub struct NodeService {
    /// The node's replicas.
    pub host: Host,
    /// This node's advertised gRPC address.
    pub advertised: String,
    /// Forwards meta requests when this node hosts no meta replica.
    pub forward: Arc<MetaForward>,
}

impl NodeService {
    fn group(&self, id: u64) -> Result<Arc<Group>, Status> {
        self.host
            .router
            .get(GroupId(id))
            .ok_or_else(|| Status::not_found(format!("group {id} is not hosted on this node")))
    }

    fn wrong_shard(&self) -> WrongShard {
        WrongShard { map_version: self.host.map_version() }
    }

    fn node_id(&self) -> u64 {
        self.host.node_id()
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    codec::decode(bytes).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    codec::encode(value).map_err(|e| Status::internal(e.to_string()))
}

impl NodeService {
    /// Decodes a Raft RPC, hands it to the addressed group's replica and encodes the result.
    async fn raft_call<Rpc, T, E, F, Fut>(
        &self,
        request: Request<RaftRequest>,
        call: F,
    ) -> Result<Response<RaftReply>, Status>
    where
        Rpc: serde::de::DeserializeOwned,
        T: serde::Serialize,
        E: serde::Serialize,
        F: FnOnce(std::sync::Arc<Group>, Rpc) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let request = request.into_inner();
        let group = self.group(request.group_id)?;
        let rpc = decode(&request.payload)?;
        reply(call(group, rpc).await).map(Response::new)
    }
}

impl NodeService {
    /// One proposal: through the group's proposer queue (batched with concurrent ones) to
    /// its outcome, a redirect, or an error status.
    async fn propose_one(&self, request: ProposeRequest) -> Result<ProposeReply, Status> {
        let Ok(group) = self.group(request.group_id) else {
            if request.group_id == META_GROUP.0 {
                let proposal: Proposal = decode(&request.proposal)?;
                let outcome = self.forward.propose(&self.host, &proposal).await?;
                let result = Some(propose_reply::Result::Outcome(encode(&outcome)?));
                return Ok(ProposeReply { result });
            }
            let result = Some(propose_reply::Result::WrongShard(self.wrong_shard()));
            return Ok(ProposeReply { result });
        };
        let proposal: Proposal = decode(&request.proposal)?;
        if proposal
            .request_id
            .as_ref()
            .is_some_and(|id| id.is_empty() || id.len() > REQUEST_ID_BYTES_MAX)
        {
            return Err(Status::invalid_argument(format!(
                "request id must be 1..={REQUEST_ID_BYTES_MAX} bytes"
            )));
        }
        if matches!(proposal.command, Command::Batch(_)) {
            return Err(Status::invalid_argument("only a leader forms batches: propose commands"));
        }
        if let Some(failure) = self.host.db.failure() {
            // Refused before proposing: another replica may take it.
            return Err(proto::not_applied(Status::unavailable(format!(
                "this node's storage failed ({failure}); it accepts no writes until it restarts"
            ))));
        }
        let result = match group.proposer.propose(proposal).await {
            Ok(outcome) => propose_reply::Result::Outcome(encode(&outcome)?),
            Err(ProposeError::NotLeader(hint)) => propose_reply::Result::NotLeader(hint),
            Err(e @ ProposeError::Timeout) => return Err(Status::deadline_exceeded(e.to_string())),
            Err(ProposeError::Unavailable(e)) => return Err(Status::unavailable(e)),
        };
        Ok(ProposeReply { result: Some(result) })
    }
}

#[tonic::async_trait]
impl RaftTransport for NodeService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        self.raft_call(request, |group, rpc| async move { group.raft.append_entries(rpc).await })
            .await
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.raft_call(request, |group, rpc| async move { group.raft.vote(rpc).await }).await
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        self.raft_call(request, |group, rpc| async move { group.raft.install_snapshot(rpc).await })
            .await
    }

    async fn clock(&self, _: Request<ClockRequest>) -> Result<Response<ClockReply>, Status> {
        Ok(Response::new(ClockReply { wall_ms: crate::group::wall_clock_ms() }))
    }
}

/// Relays a forwarded stream (a catalog watch opened on a meta replica) to this node's caller,
/// until either side ends it or this node shuts down. The shutdown matters: the gRPC server's
/// graceful stop waits for open streams, and the upstream (on another node) never ends by
/// itself, so a node relaying a gateway's catalog watch never exited on SIGTERM (seen after a
/// drain moved its meta replica away and the gateway's watch came back through it).
fn pipe(
    mut upstream: tonic::Streaming<QueryReply>,
    shutdown: CancellationToken,
) -> tokio_stream::wrappers::ReceiverStream<Result<QueryReply, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = tx.send(Err(Status::unavailable("the node is shutting down"))).await;
                    break;
                }
                next = upstream.message() => next,
            };
            let end = !matches!(next, Ok(Some(_)));
            let item = match next {
                Ok(Some(reply)) => Ok(reply),
                Ok(None) => break,
                Err(status) => Err(status),
            };
            if tx.send(item).await.is_err() || end {
                break;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// What a watch sends next, computed from the local replica: a reply to send (or `None`) and
/// whether the stream ends after it.
type WatchStep = Box<dyn FnMut(&Group) -> (Option<proto::command::QueryResult>, bool) + Send>;

impl NodeService {
    /// Runs a watch on a local replica: asks `step` for a reply now and after every applied
    /// change, sends what it returns (an empty heartbeat step is forced every
    /// [`WATCH_HEARTBEAT`]), until the reader goes away, the replica is removed or `step` says
    /// the stream ends.
    async fn watch(
        group: Arc<Group>,
        tx: tokio::sync::mpsc::Sender<Result<QueryReply, Status>>,
        mut step: WatchStep,
        heartbeat: impl Fn(&Group) -> proto::command::QueryResult + Send,
    ) {
        let mut applied = group.raft.metrics();
        let mut last_sent = Instant::now();
        loop {
            let (answer, end) = step(&group);
            let answer = match answer {
                Some(answer) => Some(answer),
                None if last_sent.elapsed() >= WATCH_HEARTBEAT => Some(heartbeat(&group)),
                None => None,
            };
            if let Some(answer) = answer {
                let reply = match codec::encode(&answer) {
                    Ok(bytes) => QueryReply { result: Some(query_reply::Result::Answer(bytes)) },
                    Err(e) => {
                        let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                        return;
                    }
                };
                if tx.send(Ok(reply)).await.is_err() || end {
                    return;
                }
                last_sent = Instant::now();
            }
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(WATCH_HEARTBEAT) => {}
                () = tx.closed() => return,
                () = group.cancel.cancelled() => return,
            }
        }
    }

    /// The catalog feed after `after`, in batches of `limit`.
    fn catalog_step(mut after: u64, limit: u32) -> WatchStep {
        let mut first = true;
        Box::new(move |group: &Group| {
            let query = Query::Meta(MetaQuery::Catalog(CatalogQuery::Changes { after, limit }));
            let answer = group.sm.query(&query);
            let (count, next, truncated) = match &answer {
                proto::command::QueryResult::Meta(MetaQueryResult::Catalog(result)) => {
                    match result.as_ref() {
                        CatalogQueryResult::Changes { changes, truncated, .. } => {
                            (changes.len(), changes.last().map_or(after, |c| c.seq), *truncated)
                        }
                        _ => (0, after, false),
                    }
                }
                _ => (0, after, false),
            };
            after = next;
            let send = std::mem::take(&mut first) || count > 0 || truncated;
            (send.then_some(answer), truncated)
        })
    }

    /// A show's seat map whenever its version passes the last one sent.
    fn show_step(show_id: proto::ids::ShowId, mut after: u64) -> WatchStep {
        Box::new(move |group: &Group| {
            let answer = group.sm.query(&Query::SeatMap { show_id });
            match &answer {
                proto::command::QueryResult::SeatMap { seat_map } if seat_map.version > after => {
                    after = seat_map.version;
                    (Some(answer), false)
                }
                proto::command::QueryResult::SeatMap { .. } => (None, false),
                // The show is not (or no longer) here: say so and end.
                _ => (Some(answer), true),
            }
        })
    }

    fn open_watch(
        &self,
        group_id: u64,
        step: impl FnOnce() -> WatchStep,
        heartbeat: impl Fn(&Group) -> proto::command::QueryResult + Send + 'static,
    ) -> tokio_stream::wrappers::ReceiverStream<Result<QueryReply, Status>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        match self.group(group_id) {
            Ok(group) => {
                tokio::spawn(Self::watch(group, tx, step(), heartbeat));
            }
            Err(_) => {
                let result = Some(query_reply::Result::WrongShard(self.wrong_shard()));
                // The channel has room: the one reply cannot block.
                let _ = tx.try_send(Ok(QueryReply { result }));
            }
        }
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

#[tonic::async_trait]
impl Inventory for NodeService {
    type WatchCatalogStream = tokio_stream::wrappers::ReceiverStream<Result<QueryReply, Status>>;
    type WatchShowStream = tokio_stream::wrappers::ReceiverStream<Result<QueryReply, Status>>;

    async fn watch_catalog(
        &self,
        request: Request<WatchCatalogRequest>,
    ) -> Result<Response<Self::WatchCatalogStream>, Status> {
        let request = request.into_inner();
        let limit = request.limit.clamp(1, WATCH_BATCH_MAX);
        let after = request.after;
        if self.host.router.get(META_GROUP).is_none() {
            let upstream = self.forward.watch_catalog(&self.host, after, limit).await?;
            return Ok(Response::new(pipe(upstream, self.host.shutdown.clone())));
        }
        let heartbeat = move |group: &Group| {
            let head = Query::Meta(MetaQuery::Catalog(CatalogQuery::Changes {
                after: u64::MAX - 1,
                limit: 1,
            }));
            group.sm.query(&head)
        };
        Ok(Response::new(self.open_watch(
            META_GROUP.0,
            || Self::catalog_step(after, limit),
            heartbeat,
        )))
    }

    async fn watch_show(
        &self,
        request: Request<WatchShowRequest>,
    ) -> Result<Response<Self::WatchShowStream>, Status> {
        let request = request.into_inner();
        let show_id = proto::ids::ShowId(request.show_id);
        let heartbeat = move |group: &Group| group.sm.query(&Query::SeatMap { show_id });
        Ok(Response::new(self.open_watch(
            request.group_id,
            || Self::show_step(show_id, request.after_version),
            heartbeat,
        )))
    }

    async fn propose(
        &self,
        request: Request<ProposeRequest>,
    ) -> Result<Response<ProposeReply>, Status> {
        self.propose_one(request.into_inner()).await.map(Response::new)
    }

    async fn propose_batch(
        &self,
        request: Request<ProposeBatchRequest>,
    ) -> Result<Response<ProposeBatchReply>, Status> {
        let requests = request.into_inner().requests;
        if requests.len() > PROPOSE_BATCH_REQUESTS_MAX {
            return Err(Status::invalid_argument(format!(
                "at most {PROPOSE_BATCH_REQUESTS_MAX} proposals per call"
            )));
        }
        // Every proposal is queued at once, so they can share entries.
        let replies = futures_util::future::join_all(
            requests.into_iter().map(|request| self.propose_one(request)),
        )
        .await;
        let replies = replies
            .into_iter()
            .map(|reply| ProposeItem {
                result: Some(match reply {
                    Ok(reply) => propose_item::Result::Reply(reply),
                    Err(status) => propose_item::Result::Error(ItemError {
                        code: status.code() as i32,
                        message: status.message().to_owned(),
                    }),
                }),
            })
            .collect();
        Ok(Response::new(ProposeBatchReply { replies }))
    }

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<QueryReply>, Status> {
        let request = request.into_inner();
        let Ok(group) = self.group(request.group_id) else {
            if request.group_id == META_GROUP.0 {
                let query: Query = decode(&request.query)?;
                let answer = self.forward.query(&self.host, &query, request.linearizable).await?;
                let result = Some(query_reply::Result::Answer(encode(&answer)?));
                return Ok(Response::new(QueryReply { result }));
            }
            let result = Some(query_reply::Result::WrongShard(self.wrong_shard()));
            return Ok(Response::new(QueryReply { result }));
        };
        let query: Query = decode(&request.query)?;
        if request.linearizable {
            match tokio::time::timeout(READ_INDEX_TIMEOUT, group.raft.ensure_linearizable()).await {
                Err(_) => {
                    return Err(Status::deadline_exceeded("read index not confirmed in time"))
                }
                Ok(Ok(_)) => {}
                Ok(Err(RaftError::APIError(
                    openraft::error::CheckIsLeaderError::ForwardToLeader(hint),
                ))) => {
                    let result = Some(query_reply::Result::NotLeader(not_leader(&hint)));
                    return Ok(Response::new(QueryReply { result }));
                }
                Ok(Err(e)) => return Err(Status::unavailable(e.to_string())),
            }
        }
        let answer = group.sm.encode_answer(&query).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(QueryReply { result: Some(query_reply::Result::Answer(answer)) }))
    }
}

/// Status of one local replica; `with_digest` also hashes its whole state (costly on big
/// states, so metrics scrapes skip it).
pub fn group_status(group: &Group, node_id: u64, with_digest: bool) -> GroupStatus {
    let metrics = group.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let learners: Vec<u64> = membership.learner_ids().collect();
    let digest = match with_digest.then(|| group.sm.query(&Query::Digest)) {
        Some(proto::command::QueryResult::Digest { digest, .. }) => digest,
        _ => 0,
    };
    let matched = metrics
        .replication
        .as_ref()
        .map(|r| r.iter().map(|(id, log)| (*id, log.map_or(0, |l| l.index))).collect())
        .unwrap_or_default();
    let map_version = group.sm.read().state.topology().map_or(0, |t| t.version);
    GroupStatus {
        group_id: group.id.0,
        term: metrics.current_term,
        leader_id: metrics.current_leader.unwrap_or(0),
        last_log_index: metrics.last_log_index.unwrap_or(0),
        applied_index: metrics.last_applied.map_or(0, |id| id.index),
        snapshot_index: metrics.snapshot.map_or(0, |id| id.index),
        purged_index: metrics.purged.map_or(0, |id| id.index),
        voters: voters.into_iter().collect(),
        learners,
        is_leader: metrics.current_leader == Some(node_id),
        digest,
        state: format!("{:?}", metrics.state),
        matched,
        map_version,
    }
}

#[tonic::async_trait]
impl Cluster for NodeService {
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let node_id = self.node_id();
        let with_digest = request.into_inner().with_digest;
        let groups =
            self.host.router.all().iter().map(|g| group_status(g, node_id, with_digest)).collect();
        Ok(Response::new(StatusReply { node_id, grpc_addr: self.advertised.clone(), groups }))
    }

    #[tracing::instrument(skip_all, fields(joining = request.get_ref().node_id))]
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let request = request.into_inner();
        let Ok(meta) = self.group(META_GROUP.0) else {
            let zone = Some(request.zone.as_str()).filter(|z| !z.is_empty());
            self.forward.join(&self.host, request.node_id, &request.grpc_addr, zone).await?;
            return Ok(Response::new(JoinReply { result: Some(join_reply::Result::Ok(true)) }));
        };
        let command = Command::Meta(MetaCommand::RegisterNode {
            node_id: request.node_id,
            addr: request.grpc_addr.clone(),
            zone: Some(request.zone.clone()).filter(|z| !z.is_empty()),
        });
        let entry = match meta.entry(vec![Proposal { request_id: None, command }]).await {
            Ok(entry) => entry,
            Err(ProposeError::NotLeader(hint)) => {
                return Ok(Response::new(JoinReply {
                    result: Some(join_reply::Result::NotLeader(hint)),
                }))
            }
            Err(e) => return Err(Status::unavailable(e.to_string())),
        };
        let result = tokio::time::timeout(PROPOSE_TIMEOUT, meta.raft.client_write(entry))
            .await
            .map_err(|_| Status::deadline_exceeded("registration not applied in time"))?;
        let reply = match result {
            Ok(response) => match response.data {
                Some(Ok(_)) => {
                    tracing::info!(node = request.node_id, addr = %request.grpc_addr, "node registered");
                    join_reply::Result::Ok(true)
                }
                Some(Err(rejection)) => {
                    return Err(Status::failed_precondition(rejection.to_string()))
                }
                None => return Err(Status::internal("normal entry without an outcome")),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(hint))) => {
                join_reply::Result::NotLeader(not_leader(&hint))
            }
            Err(e) => return Err(Status::unavailable(e.to_string())),
        };
        Ok(Response::new(JoinReply { result: Some(reply) }))
    }

    #[tracing::instrument(skip_all, fields(group_id = request.get_ref().group_id))]
    async fn create_replica(
        &self,
        request: Request<GroupRequest>,
    ) -> Result<Response<Ack>, Status> {
        let group = GroupId(request.into_inner().group_id);
        self.host
            .open_group(group)
            .await
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
        Ok(Response::new(Ack {}))
    }

    #[tracing::instrument(skip_all, fields(group_id = request.get_ref().group_id))]
    async fn delete_replica(
        &self,
        request: Request<DeleteReplicaRequest>,
    ) -> Result<Response<Ack>, Status> {
        let request = request.into_inner();
        if let Some(group) = self.host.router.get(GroupId(request.group_id)) {
            if !request.force && group.is_local_voter(self.node_id()) {
                return Err(Status::failed_precondition(
                    "this replica still counts itself a voter: remove it from the group first",
                ));
            }
        }
        self.host
            .delete_group(GroupId(request.group_id))
            .await
            .map_err(|e| Status::internal(format!("{e:#}")))?;
        Ok(Response::new(Ack {}))
    }

    #[tracing::instrument(skip_all, fields(group_id = request.get_ref().group_id))]
    async fn initialize_group(
        &self,
        request: Request<InitializeGroupRequest>,
    ) -> Result<Response<Ack>, Status> {
        let request = request.into_inner();
        let members: BTreeMap<u64, BasicNode> =
            request.members.into_iter().map(|m| (m.node_id, BasicNode { addr: m.addr })).collect();
        if members.is_empty() || members.contains_key(&0) {
            return Err(Status::invalid_argument("members must be non-empty positive node ids"));
        }
        let group = self
            .host
            .open_group(GroupId(request.group_id))
            .await
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
        let initialized =
            group.raft.is_initialized().await.map_err(|e| Status::internal(e.to_string()))?;
        if !initialized {
            match group.raft.initialize(members).await {
                Ok(()) => tracing::info!(group = %group.id, "group initialized"),
                // Lost a race with another initializer or a leader's first append: fine.
                Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(Status::failed_precondition(e.to_string())),
            }
        }
        Ok(Response::new(Ack {}))
    }

    #[tracing::instrument(skip_all, fields(group_id = request.get_ref().group_id))]
    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<ChangeMembershipReply>, Status> {
        let request = request.into_inner();
        let group = self.group(request.group_id)?;
        let change = request
            .change
            .ok_or_else(|| Status::invalid_argument("a membership change must name one step"))?;
        let raft = &group.raft;
        let step = async {
            match change {
                change_membership_request::Change::AddLearner(member) => {
                    if member.node_id == 0 || member.addr.is_empty() {
                        return Ok(Err(Status::invalid_argument(
                            "learner needs an id and address",
                        )));
                    }
                    let node = BasicNode { addr: member.addr };
                    raft.add_learner(member.node_id, node, true).await.map(|_| Ok(()))
                }
                change_membership_request::Change::Promote(ids) => {
                    let ids: BTreeSet<u64> = ids.ids.into_iter().collect();
                    raft.change_membership(ChangeMembers::AddVoterIds(ids), false)
                        .await
                        .map(|_| Ok(()))
                }
                change_membership_request::Change::Remove(ids) => {
                    let membership = raft.metrics().borrow().membership_config.membership().clone();
                    let voters: BTreeSet<u64> = ids
                        .ids
                        .iter()
                        .copied()
                        .filter(|id| membership.voter_ids().any(|v| v == *id))
                        .collect();
                    if !voters.is_empty() {
                        raft.change_membership(ChangeMembers::RemoveVoters(voters), false).await?;
                    }
                    let membership = raft.metrics().borrow().membership_config.membership().clone();
                    let learners: BTreeSet<u64> = ids
                        .ids
                        .iter()
                        .copied()
                        .filter(|id| membership.learner_ids().any(|l| l == *id))
                        .collect();
                    if !learners.is_empty() {
                        raft.change_membership(ChangeMembers::RemoveNodes(learners), false).await?;
                    }
                    Ok(Ok(()))
                }
            }
        };
        let result = tokio::time::timeout(MEMBERSHIP_TIMEOUT, step)
            .await
            .map_err(|_| Status::deadline_exceeded("membership step did not finish in time"))?;
        let reply = match result {
            Ok(Ok(())) => {
                change_membership_reply::Result::Status(group_status(&group, self.node_id(), false))
            }
            Ok(Err(status)) => return Err(status),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(hint))) => {
                change_membership_reply::Result::NotLeader(not_leader(&hint))
            }
            Err(e) => return Err(Status::failed_precondition(e.to_string())),
        };
        tracing::info!(group = %group.id, "membership step done");
        Ok(Response::new(ChangeMembershipReply { result: Some(reply) }))
    }

    #[tracing::instrument(skip_all, fields(group_id = request.get_ref().group_id))]
    async fn campaign(&self, request: Request<GroupRequest>) -> Result<Response<Ack>, Status> {
        let group = self.group(request.into_inner().group_id)?;
        if !group.is_local_voter(self.node_id()) {
            return Err(Status::failed_precondition("only a voter can campaign"));
        }
        group.raft.trigger().elect().await.map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(Ack {}))
    }

    #[tracing::instrument(skip_all, fields(group_id = request.get_ref().group_id))]
    async fn set_election(
        &self,
        request: Request<SetElectionRequest>,
    ) -> Result<Response<Ack>, Status> {
        let request = request.into_inner();
        let group = self.group(request.group_id)?;
        group.raft.runtime_config().elect(request.enabled);
        if request.enabled {
            group.yield_leadership(None);
        } else {
            let hold = Duration::from_millis(request.hold_ms.clamp(1, ELECTION_HOLD_MAX_MS));
            // On the leader this is a hand-over: stop taking proposals for the hold.
            if group.raft.metrics().borrow().current_leader == Some(self.host.config.id) {
                group.yield_leadership(Some(Instant::now() + hold));
            }
            let cancel = group.cancel.clone();
            self.host.tasks.spawn(async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = tokio::time::sleep(hold) => group.raft.runtime_config().elect(true),
                }
            });
        }
        Ok(Response::new(Ack {}))
    }

    async fn backup(
        &self,
        request: Request<BackupRequest>,
    ) -> Result<Response<BackupReply>, Status> {
        let name = request.into_inner().name;
        let node_id = self.node_id();
        let host = self.host.clone();
        let statuses =
            move || host.router.all().iter().map(|g| group_status(g, node_id, false)).collect();
        match crate::backup::take(&self.host, &name, statuses).await {
            Ok(reply) => Ok(Response::new(reply)),
            Err(e @ crate::backup::BackupError::BadName) => {
                Err(Status::invalid_argument(e.to_string()))
            }
            Err(e @ crate::backup::BackupError::Exists(_)) => {
                Err(Status::already_exists(e.to_string()))
            }
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}
