//! The gateway's client to the cluster: finds a group's leader and retries with bounded,
//! jittered backoff on `NotLeader`, unreachable nodes and elections.
//!
//! Retrying a proposal whose outcome is unknown (timeout, connection lost mid-call) is safe only
//! because every mutating proposal carries a request id: the state machine answers a replay
//! with the first outcome instead of acting twice (ARCHITECTURE.md invariant 6). Proposals
//! without a request id are never retried after an unknown outcome.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use proto::inventory::{Outcome, Proposal, Query, QueryResult};
use proto::pb::inventory_client::InventoryClient;
use proto::pb::{propose_reply, query_reply, NotLeader, ProposeRequest, QueryRequest};
use proto::{codec, GroupId, GRPC_MESSAGE_BYTES_MAX};
use rand::Rng;
use tonic::transport::{Channel, Endpoint};

/// Attempts per call, across all nodes.
pub const ATTEMPTS_MAX: u32 = 12;
/// Total time a call may spend retrying: covers an election (about 1-2 s) with margin.
pub const RETRY_BUDGET: Duration = Duration::from_secs(10);
/// Per-attempt timeout of a gRPC call.
const CALL_TIMEOUT: Duration = Duration::from_secs(6);

/// Why a call to the cluster did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No leader could be reached within the retry budget.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The node rejected the request as malformed (a gateway bug).
    #[error("request rejected by node: {0}")]
    Invalid(String),
}

/// Client to the nodes of one cluster. Cheap to clone.
#[derive(Clone)]
pub struct ClusterClient {
    nodes: Arc<Vec<String>>,
    channels: Arc<RwLock<std::collections::HashMap<String, Channel>>>,
    leader: Arc<RwLock<Option<String>>>,
}

enum Attempt<T> {
    Done(T),
    Redirect(NotLeader),
}

impl ClusterClient {
    /// A client for the nodes at `nodes` (`host:port` gRPC addresses).
    pub fn new(nodes: Vec<String>) -> ClusterClient {
        ClusterClient { nodes: Arc::new(nodes), channels: Arc::default(), leader: Arc::default() }
    }

    fn channel(&self, addr: &str) -> Result<Channel, ClusterError> {
        if let Some(channel) =
            self.channels.read().expect("channel map lock never poisoned").get(addr)
        {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClusterError::Invalid(e.to_string()))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .connect_lazy();
        self.channels
            .write()
            .expect("channel map lock never poisoned")
            .insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    fn client(&self, addr: &str) -> Result<InventoryClient<Channel>, ClusterError> {
        Ok(InventoryClient::new(self.channel(addr)?)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX))
    }

    /// Proposes a command to the group's leader and returns its committed outcome.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] if no leader answered within the retry budget.
    pub async fn propose(
        &self,
        group: GroupId,
        proposal: &Proposal,
    ) -> Result<Outcome, ClusterError> {
        let bytes = codec::encode(proposal).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        let retry_unknown = proposal.request_id.is_some();
        self.with_retries(retry_unknown, |addr| {
            let bytes = bytes.clone();
            async move {
                let mut client = self.client(&addr)?;
                let reply = client
                    .propose(ProposeRequest { group_id: group.0, proposal: bytes })
                    .await
                    .map_err(Failure::from_status)?
                    .into_inner();
                match reply.result {
                    Some(propose_reply::Result::Outcome(bytes)) => codec::decode(&bytes)
                        .map(Attempt::Done)
                        .map_err(|e| Failure::Fatal(ClusterError::Invalid(e.to_string()))),
                    Some(propose_reply::Result::NotLeader(hint)) => Ok(Attempt::Redirect(hint)),
                    None => Err(Failure::Retry("empty reply".into())),
                }
            }
        })
        .await
    }

    /// Reads from the group: `linearizable` confirms leadership with a read index; otherwise any
    /// replica answers at its applied state.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] if no node answered within the retry budget.
    pub async fn query(
        &self,
        group: GroupId,
        query: &Query,
        linearizable: bool,
    ) -> Result<QueryResult, ClusterError> {
        let bytes = codec::encode(query).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        self.with_retries(true, |addr| {
            let bytes = bytes.clone();
            async move {
                let mut client = self.client(&addr)?;
                let reply = client
                    .query(QueryRequest { group_id: group.0, query: bytes, linearizable })
                    .await
                    .map_err(Failure::from_status)?
                    .into_inner();
                match reply.result {
                    Some(query_reply::Result::Answer(bytes)) => codec::decode(&bytes)
                        .map(Attempt::Done)
                        .map_err(|e| Failure::Fatal(ClusterError::Invalid(e.to_string()))),
                    Some(query_reply::Result::NotLeader(hint)) => Ok(Attempt::Redirect(hint)),
                    None => Err(Failure::Retry("empty reply".into())),
                }
            }
        })
        .await
    }

    async fn with_retries<T, F, Fut>(
        &self,
        retry_unknown: bool,
        mut call: F,
    ) -> Result<T, ClusterError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>, Failure>>,
    {
        let started = Instant::now();
        let mut next_node = rand::rng().random_range(0..self.nodes.len().max(1));
        let mut last_error = String::from("no attempt made");
        let mut backoff = Duration::from_millis(20);
        for _ in 0..ATTEMPTS_MAX {
            if started.elapsed() > RETRY_BUDGET {
                break;
            }
            let target = match self.leader.read().expect("leader lock never poisoned").clone() {
                Some(leader) => leader,
                None => {
                    next_node = (next_node + 1) % self.nodes.len().max(1);
                    self.nodes
                        .get(next_node)
                        .cloned()
                        .ok_or_else(|| ClusterError::Invalid("no nodes configured".into()))?
                }
            };
            let result = tokio::time::timeout(CALL_TIMEOUT, call(target.clone())).await;
            let pause = match result {
                Ok(Ok(Attempt::Done(value))) => {
                    *self.leader.write().expect("leader lock never poisoned") = Some(target);
                    return Ok(value);
                }
                Ok(Ok(Attempt::Redirect(hint))) => {
                    let known = !hint.leader_addr.is_empty() && hint.leader_addr != target;
                    *self.leader.write().expect("leader lock never poisoned") =
                        known.then(|| hint.leader_addr.clone());
                    last_error = format!("{target} is not the leader");
                    // A known new leader is tried at once; an election in progress is waited out.
                    !known
                }
                Ok(Err(Failure::Fatal(e))) => return Err(e),
                Ok(Err(Failure::Unknown(e))) if !retry_unknown => {
                    return Err(ClusterError::Unavailable(format!("outcome unknown: {e}")))
                }
                Ok(Err(Failure::Retry(e) | Failure::Unknown(e))) => {
                    self.forget_leader(&target);
                    last_error = format!("{target}: {e}");
                    true
                }
                Err(_) if !retry_unknown => {
                    return Err(ClusterError::Unavailable("timed out; outcome unknown".into()))
                }
                Err(_) => {
                    self.forget_leader(&target);
                    last_error = format!("{target}: timed out");
                    true
                }
            };
            if pause {
                let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 2);
                tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
                backoff = (backoff * 2).min(Duration::from_millis(1000));
            }
        }
        Err(ClusterError::Unavailable(last_error))
    }

    fn forget_leader(&self, addr: &str) {
        let mut leader = self.leader.write().expect("leader lock never poisoned");
        if leader.as_deref() == Some(addr) {
            *leader = None;
        }
    }
}

enum Failure {
    /// Nothing was done (connection refused, node unavailable): retry elsewhere.
    Retry(String),
    /// The request may or may not have been applied (timeout, connection lost mid-call).
    Unknown(String),
    /// Retrying cannot help.
    Fatal(ClusterError),
}

impl From<ClusterError> for Failure {
    fn from(e: ClusterError) -> Self {
        Failure::Fatal(e)
    }
}

impl Failure {
    fn from_status(status: tonic::Status) -> Failure {
        use tonic::Code;
        match status.code() {
            Code::InvalidArgument | Code::NotFound | Code::Internal => {
                Failure::Fatal(ClusterError::Invalid(status.message().to_owned()))
            }
            // Refused before reaching the handler: nothing happened.
            Code::Unavailable if status.message().contains("connect") => {
                Failure::Retry(status.message().to_owned())
            }
            _ => Failure::Unknown(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}
