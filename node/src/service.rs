//! The node's gRPC services: Raft transport (server side), inventory (proposals and reads)
//! and cluster (status, join).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use proto::inventory::{Outcome, Proposal, Query};
use proto::pb::cluster_server::Cluster;
use proto::pb::inventory_server::Inventory;
use proto::pb::raft_transport_server::RaftTransport;
use proto::pb::{
    join_reply, propose_reply, query_reply, GroupStatus, JoinReply, JoinRequest, ProposeReply,
    ProposeRequest, QueryReply, QueryRequest, RaftReply, RaftRequest, StatusReply, StatusRequest,
};
use proto::{codec, GroupId};
use raft_store::limits::REQUEST_ID_BYTES_MAX;
use tonic::{Request, Response, Status};

use crate::group::Group;
use crate::metrics::Metrics;
use crate::router::{not_leader, Router};
use crate::transport::reply;

/// How long a proposal may wait to be committed and applied before the client is told the
/// outcome is unknown (it then retries with the same request id).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a linearizable read may wait for its read index.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a join may take (catching up a learner included).
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Implements all three services over the node's router.
#[derive(Clone)]
pub struct NodeService {
    /// The local replicas.
    pub router: Router,
    /// Metrics.
    pub metrics: Metrics,
    /// This node's id.
    pub node_id: u64,
    /// This node's advertised gRPC address.
    pub advertised: String,
}

impl NodeService {
    fn group(&self, id: u64) -> Result<std::sync::Arc<Group>, Status> {
        self.router
            .get(GroupId(id))
            .ok_or_else(|| Status::not_found(format!("group {id} is not hosted on this node")))
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    codec::decode(bytes).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    codec::encode(value).map_err(|e| Status::internal(e.to_string()))
}

fn outcome_label(outcome: &Outcome) -> String {
    match outcome {
        Ok(_) => "ok".into(),
        // Externally tagged: a unit variant is its name, a struct variant a one-key object.
        Err(rejection) => match serde_json::to_value(rejection) {
            Ok(serde_json::Value::String(name)) => name,
            Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
            _ => "rejected".into(),
        },
    }
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
}

#[tonic::async_trait]
impl Inventory for NodeService {
    #[tracing::instrument(skip_all, fields(group_id = request.get_ref().group_id))]
    async fn propose(
        &self,
        request: Request<ProposeRequest>,
    ) -> Result<Response<ProposeReply>, Status> {
        let request = request.into_inner();
        let group = self.group(request.group_id)?;
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
        let kind = proposal.command.kind();
        let entry = group.stamp(proposal);
        let started = Instant::now();
        let result =
            match tokio::time::timeout(PROPOSE_TIMEOUT, group.raft.client_write(entry)).await {
                Err(_) => {
                    self.metrics.commands.with_label_values(&[kind, "timeout"]).inc();
                    return Err(Status::deadline_exceeded(
                    "not applied in time; the outcome is unknown: retry with the same request id",
                ));
                }
                Ok(result) => result,
            };
        let reply = match result {
            Ok(response) => {
                let outcome = response
                    .data
                    .ok_or_else(|| Status::internal("normal entry without an outcome"))?;
                self.metrics.commands.with_label_values(&[kind, &outcome_label(&outcome)]).inc();
                self.metrics
                    .propose_latency
                    .with_label_values(&[kind])
                    .observe(started.elapsed().as_secs_f64());
                propose_reply::Result::Outcome(encode(&outcome)?)
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(hint))) => {
                self.metrics.commands.with_label_values(&[kind, "not_leader"]).inc();
                propose_reply::Result::NotLeader(not_leader(&hint))
            }
            Err(e) => {
                self.metrics.commands.with_label_values(&[kind, "unavailable"]).inc();
                return Err(Status::unavailable(e.to_string()));
            }
        };
        Ok(Response::new(ProposeReply { result: Some(reply) }))
    }

    async fn query(&self, request: Request<QueryRequest>) -> Result<Response<QueryReply>, Status> {
        let request = request.into_inner();
        let group = self.group(request.group_id)?;
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
        let answer = group.sm.query(&query);
        Ok(Response::new(QueryReply {
            result: Some(query_reply::Result::Answer(encode(&answer)?)),
        }))
    }
}

/// Status of one local replica.
pub fn group_status(group: &Group, node_id: u64) -> GroupStatus {
    let metrics = group.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let learners: Vec<u64> = membership.learner_ids().collect();
    let digest = match group.sm.query(&Query::Digest) {
        proto::inventory::QueryResult::Digest { digest, .. } => digest,
        _ => 0,
    };
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
    }
}

#[tonic::async_trait]
impl Cluster for NodeService {
    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let groups = self.router.all().iter().map(|g| group_status(g, self.node_id)).collect();
        Ok(Response::new(StatusReply {
            node_id: self.node_id,
            grpc_addr: self.advertised.clone(),
            groups,
        }))
    }

    #[tracing::instrument(skip_all, fields(group_id = request.get_ref().group_id, joining = request.get_ref().node_id))]
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let request = request.into_inner();
        if request.node_id == 0 {
            return Err(Status::invalid_argument("node id 0 is reserved"));
        }
        let group = self.group(request.group_id)?;
        let node = BasicNode { addr: request.grpc_addr.clone() };
        let result = tokio::time::timeout(JOIN_TIMEOUT, async {
            let voters: BTreeSet<u64> =
                group.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
            if voters.contains(&request.node_id) {
                return Ok(());
            }
            group.raft.add_learner(request.node_id, node, true).await?;
            group
                .raft
                .change_membership(
                    ChangeMembers::AddVoterIds(BTreeSet::from([request.node_id])),
                    false,
                )
                .await?;
            Ok(())
        })
        .await
        .map_err(|_| Status::deadline_exceeded("learner did not catch up in time"))?;
        let reply = match result {
            Ok(()) => {
                tracing::info!(node = request.node_id, addr = %request.grpc_addr, "node joined as voter");
                join_reply::Result::Ok(true)
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(hint))) => {
                join_reply::Result::NotLeader(not_leader(&hint))
            }
            Err(e) => return Err(Status::failed_precondition(e.to_string())),
        };
        Ok(Response::new(JoinReply { result: Some(reply) }))
    }
}
