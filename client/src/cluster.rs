//! The routing client: routes each call show -> shard -> leader, and retries with bounded,
//! jittered backoff ([`RetryPolicy`]) on `NotLeader`, `WrongShard`, unreachable nodes and
//! elections.
//!
//! Routing state is a cache, never a source of truth:
//! - the **topology** (nodes, groups and their replicas) from the meta group, refreshed when a
//!   node answers `WrongShard` or a group has no reachable replica;
//! - **show -> shard**, filled on first use from the meta group (shows never change shard);
//! - **shard -> leader address**, learned from successful calls and `NotLeader` hints.
//!
//! A command is only ever sent to the shard the meta group placed its show on; the node checks
//! it hosts the group and answers `WrongShard` otherwise.
//!
//! Retrying a proposal whose outcome is unknown (timeout, connection lost mid-call) is safe only
//! because every mutating proposal carries a request id: the state machine answers a replay
//! with the first outcome instead of acting twice (`docs/architecture.md`, invariant 6).
//! Proposals without a request id are never retried after an unknown outcome, unless the
//! client's policy says every command it sends is idempotent ([`RetryPolicy::retry_unknown`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use proto::command::{Outcome, Proposal, Query, QueryResult};
use proto::ids::ShowId;
use proto::meta::{MetaQuery, MetaQueryResult, Topology};
use proto::pb::inventory_client::InventoryClient;
use proto::pb::{propose_reply, query_reply, NotLeader, ProposeRequest, QueryRequest};
use proto::{codec, GroupId, META_GROUP};
use rand::Rng;
use tonic::transport::Channel;

use crate::channels::{ChannelConfig, Channels};
use crate::retry::{Backoff, RetryPolicy};
use crate::ClusterError;

/// Shows whose shard is cached; the cache is cleared when it grows past this.
const SHOW_CACHE_MAX: usize = 200_000;
/// Minimum spacing of topology refreshes.
const TOPOLOGY_REFRESH_MIN: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Routes {
    topology: Option<Topology>,
    refreshed_at: Option<Instant>,
    leaders: HashMap<GroupId, String>,
    shows: HashMap<ShowId, GroupId>,
}

/// Client to the nodes of one cluster. Cheap to clone.
#[derive(Clone)]
pub struct ClusterClient {
    seeds: Arc<Vec<String>>,
    channels: Channels,
    routes: Arc<RwLock<Routes>>,
    policy: RetryPolicy,
}

pub(crate) enum Attempt<T> {
    Done(T),
    Redirect(NotLeader),
    WrongShard(u64),
}

impl ClusterClient {
    /// A client that discovers the cluster through `seeds` (`host:port` gRPC addresses of
    /// nodes; at least one must host a meta replica), retrying under [`RetryPolicy::CALLS`].
    pub fn new(seeds: Vec<String>) -> ClusterClient {
        ClusterClient::with_policy(seeds, RetryPolicy::CALLS, ChannelConfig::default())
    }

    /// A client with its own retry policy and channel settings.
    pub fn with_policy(
        seeds: Vec<String>,
        policy: RetryPolicy,
        channels: ChannelConfig,
    ) -> ClusterClient {
        ClusterClient {
            seeds: Arc::new(seeds),
            channels: Channels::new(channels),
            routes: Arc::default(),
            policy,
        }
    }

    /// The channel pool, for calls to one given node (`Cluster` service, streams).
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// The seed addresses.
    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    fn routes(&self) -> std::sync::RwLockReadGuard<'_, Routes> {
        self.routes.read().expect("routes lock never poisoned")
    }

    fn routes_mut(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        self.routes.write().expect("routes lock never poisoned")
    }

    fn client(&self, addr: &str) -> Result<InventoryClient<Channel>, ClusterError> {
        self.channels.inventory(addr)
    }

    /// Opens a catalog change stream (`WatchCatalog`) on a node with a meta replica, trying them
    /// in turn from a random one.
    ///
    /// # Errors
    /// No node with a meta replica accepted the stream.
    pub async fn watch_catalog(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<tonic::Streaming<proto::pb::QueryReply>, ClusterError> {
        let candidates = self.candidates(META_GROUP);
        let start = rand::rng().random_range(0..candidates.len().max(1));
        let mut last_error = String::from("no nodes configured");
        for i in 0..candidates.len() {
            let addr = &candidates[(start + i) % candidates.len()];
            let request = proto::pb::WatchCatalogRequest { after, limit };
            match tokio::time::timeout(
                self.policy.call_timeout,
                self.client(addr)?.watch_catalog(request),
            )
            .await
            {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => last_error = format!("{addr}: {}", status.message()),
                Err(_) => last_error = format!("{addr}: timed out"),
            }
        }
        Err(ClusterError::Unavailable(last_error))
    }

    /// Opens a seat-map stream (`WatchShow`) for a show on a replica of its shard, the known
    /// leader first (freshest), then the others.
    ///
    /// # Errors
    /// No replica accepted the stream.
    pub async fn watch_show(
        &self,
        group: GroupId,
        show: ShowId,
        after_version: u64,
    ) -> Result<tonic::Streaming<proto::pb::QueryReply>, ClusterError> {
        let mut candidates = self.candidates(group);
        if let Some(leader) = self.routes().leaders.get(&group) {
            candidates.retain(|a| a != leader);
            candidates.insert(0, leader.clone());
        }
        let mut last_error = String::from("no replicas known");
        for addr in &candidates {
            let request =
                proto::pb::WatchShowRequest { group_id: group.0, show_id: show.0, after_version };
            match tokio::time::timeout(
                self.policy.call_timeout,
                self.client(addr)?.watch_show(request),
            )
            .await
            {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => last_error = format!("{addr}: {}", status.message()),
                Err(_) => last_error = format!("{addr}: timed out"),
            }
        }
        Err(ClusterError::Unavailable(last_error))
    }

    /// Where to try a group: its replicas per the cached topology, or the seeds.
    pub(crate) fn candidates(&self, group: GroupId) -> Vec<String> {
        let routes = self.routes();
        let replicas = routes.topology.as_ref().map(|t| t.replica_addrs(group)).unwrap_or_default();
        if replicas.is_empty() {
            self.seeds.as_ref().clone()
        } else {
            replicas
        }
    }

    /// The cached topology, if one was loaded.
    pub fn topology(&self) -> Option<Topology> {
        self.routes().topology.clone()
    }

    /// Reloads the topology from the meta group (at most every 200 ms).
    ///
    /// # Errors
    /// No meta replica answered.
    pub async fn refresh_topology(&self) -> Result<Topology, ClusterError> {
        if let Some(topology) = {
            let routes = self.routes();
            routes
                .refreshed_at
                .filter(|at| at.elapsed() < TOPOLOGY_REFRESH_MIN)
                .and(routes.topology.clone())
        } {
            return Ok(topology);
        }
        let answer = self.query(META_GROUP, &Query::Meta(MetaQuery::Topology), false).await?;
        let QueryResult::Meta(MetaQueryResult::Topology { topology }) = answer else {
            return Err(ClusterError::Invalid(format!("unexpected topology answer {answer:?}")));
        };
        self.remember_topology(topology.clone());
        Ok(topology)
    }

    /// Caches a map read elsewhere (see [`ClusterClient::meta_topology`]).
    pub(crate) fn remember_topology(&self, topology: Topology) {
        let mut routes = self.routes_mut();
        routes.topology = Some(topology);
        routes.refreshed_at = Some(Instant::now());
    }

    /// The shard that owns `show`, from the cache or the meta group.
    ///
    /// # Errors
    /// [`ClusterError::UnknownShow`] if the meta group never placed it.
    pub async fn locate(&self, show: ShowId) -> Result<GroupId, ClusterError> {
        if let Some(group) = self.routes().shows.get(&show) {
            return Ok(*group);
        }
        let query = Query::Meta(MetaQuery::LocateShow { show_id: show });
        // A follower may not have applied a placement made a moment ago: confirm a miss with
        // a linearizable read before calling the show unknown.
        for linearizable in [false, true] {
            if let QueryResult::Meta(MetaQueryResult::Located { group, .. }) =
                self.query(META_GROUP, &query, linearizable).await?
            {
                self.remember_show(show, group);
                return Ok(group);
            }
        }
        Err(ClusterError::UnknownShow(show.0))
    }

    /// Records a placement (after the catalog placed a new show).
    pub fn remember_show(&self, show: ShowId, group: GroupId) {
        let mut routes = self.routes_mut();
        if routes.shows.len() >= SHOW_CACHE_MAX {
            routes.shows.clear();
        }
        routes.shows.insert(show, group);
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
        let retry_unknown = proposal.request_id.is_some() || self.policy.retry_unknown;
        self.with_retries(group, retry_unknown, |addr| {
            let bytes = bytes.clone();
            async move {
                let reply = self
                    .channels
                    .proposer(&addr)?
                    .propose(ProposeRequest { group_id: group.0, proposal: bytes })
                    .await
                    .map_err(Failure::from_status)?;
                match reply.result {
                    Some(propose_reply::Result::Outcome(bytes)) => decode(&bytes),
                    Some(propose_reply::Result::NotLeader(hint)) => Ok(Attempt::Redirect(hint)),
                    Some(propose_reply::Result::WrongShard(w)) => {
                        Ok(Attempt::WrongShard(w.map_version))
                    }
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
        let answer = self.query_encoded(group, query, linearizable).await?;
        codec::decode(&answer).map_err(|e| ClusterError::Invalid(e.to_string()))
    }

    /// [`ClusterClient::query`] without decoding the answer: its encoded bytes, for a caller
    /// that passes the answer on as it is (the gateway's seat maps).
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] if no node answered within the retry budget.
    pub async fn query_encoded(
        &self,
        group: GroupId,
        query: &Query,
        linearizable: bool,
    ) -> Result<Vec<u8>, ClusterError> {
        let bytes = codec::encode(query).map_err(|e| ClusterError::Invalid(e.to_string()))?;
        self.with_retries(group, true, |addr| {
            let bytes = bytes.clone();
            async move {
                let mut client = self.client(&addr)?;
                let reply = client
                    .query(QueryRequest { group_id: group.0, query: bytes, linearizable })
                    .await
                    .map_err(Failure::from_status)?
                    .into_inner();
                match reply.result {
                    Some(query_reply::Result::Answer(bytes)) => Ok(Attempt::Done(bytes)),
                    Some(query_reply::Result::NotLeader(hint)) => Ok(Attempt::Redirect(hint)),
                    Some(query_reply::Result::WrongShard(w)) => {
                        Ok(Attempt::WrongShard(w.map_version))
                    }
                    None => Err(Failure::Retry("empty reply".into())),
                }
            }
        })
        .await
    }

    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        group: GroupId,
        retry_unknown: bool,
        mut call: F,
    ) -> Result<T, ClusterError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T>, Failure>>,
    {
        let mut candidates = self.candidates(group);
        let mut next_node = rand::rng().random_range(0..candidates.len().max(1));
        let mut last_error = String::from("no attempt made");
        let mut backoff = Backoff::new(self.policy);
        // Nodes that failed in this call: a follower that still names one of them as leader
        // (it has not noticed the leader died) is waited out, not followed at once, so a dead
        // leader does not burn the attempts before the election that replaces it.
        let mut failed: Vec<String> = Vec::new();
        // Nodes that answered "not the leader" in this call: a hint naming one of them again
        // (followers and a stepping-down leader pointing at each other while a leader change
        // settles) is followed after a pause, so the ping-pong does not burn every attempt in
        // a few milliseconds.
        let mut redirected: Vec<String> = Vec::new();
        while backoff.attempt().is_some() {
            let cached = self.routes().leaders.get(&group).cloned();
            let target = match cached {
                Some(leader) => leader,
                None => {
                    next_node = (next_node + 1) % candidates.len().max(1);
                    candidates
                        .get(next_node)
                        .cloned()
                        .ok_or_else(|| ClusterError::Invalid("no nodes configured".into()))?
                }
            };
            let result = tokio::time::timeout(self.policy.call_timeout, call(target.clone())).await;
            let pause = match result {
                Ok(Ok(Attempt::Done(value))) => {
                    self.routes_mut().leaders.insert(group, target);
                    return Ok(value);
                }
                Ok(Ok(Attempt::Redirect(hint))) => {
                    let known = !hint.leader_addr.is_empty()
                        && hint.leader_addr != target
                        && !failed.contains(&hint.leader_addr);
                    let cycle = redirected.contains(&hint.leader_addr);
                    redirected.push(target.clone());
                    let mut routes = self.routes_mut();
                    if known {
                        routes.leaders.insert(group, hint.leader_addr.clone());
                    } else {
                        routes.leaders.remove(&group);
                    }
                    last_error = format!("{target} is not the leader of group {group}");
                    // A known new leader is tried at once; an election in progress, or a hint
                    // back to a node that already said no, is waited out.
                    !known || cycle
                }
                Ok(Ok(Attempt::WrongShard(map_version))) => {
                    self.forget_leader(group, &target);
                    last_error = format!("{target} does not host group {group}");
                    // The replica moved: reload the map (best effort) and try its new home.
                    let stale = self
                        .routes()
                        .topology
                        .as_ref()
                        .is_none_or(|t| map_version == 0 || t.version <= map_version);
                    if stale && group != META_GROUP {
                        if let Ok(topology) = Box::pin(self.refresh_topology()).await {
                            let fresh = topology.replica_addrs(group);
                            if !fresh.is_empty() {
                                candidates = fresh;
                            }
                        }
                    }
                    if candidates.len() > 1 {
                        candidates.retain(|c| *c != target);
                    }
                    false
                }
                Ok(Err(Failure::Fatal(e))) => return Err(e),
                Ok(Err(Failure::Unknown(e))) if !retry_unknown => {
                    return Err(ClusterError::OutcomeUnknown(e))
                }
                Ok(Err(Failure::Retry(e) | Failure::Unknown(e))) => {
                    self.forget_leader(group, &target);
                    last_error = format!("{target}: {e}");
                    failed.push(target);
                    true
                }
                Err(_) if !retry_unknown => {
                    return Err(ClusterError::OutcomeUnknown(format!("{target}: timed out")))
                }
                Err(_) => {
                    self.forget_leader(group, &target);
                    last_error = format!("{target}: timed out");
                    failed.push(target);
                    true
                }
            };
            if pause {
                backoff.pause().await;
            }
        }
        Err(ClusterError::Unavailable(last_error))
    }

    fn forget_leader(&self, group: GroupId, addr: &str) {
        let mut routes = self.routes_mut();
        if routes.leaders.get(&group).is_some_and(|leader| leader == addr) {
            routes.leaders.remove(&group);
        }
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<Attempt<T>, Failure> {
    codec::decode(bytes)
        .map(Attempt::Done)
        .map_err(|e| Failure::Fatal(ClusterError::Invalid(e.to_string())))
}

pub(crate) enum Failure {
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
    pub(crate) fn from_status(status: tonic::Status) -> Failure {
        use tonic::Code;
        match status.code() {
            Code::InvalidArgument | Code::Internal => {
                Failure::Fatal(ClusterError::Invalid(status.message().to_owned()))
            }
            // Refused before reaching the handler: nothing happened.
            Code::Unavailable if status.message().contains("connect") => {
                Failure::Retry(status.message().to_owned())
            }
            // The node says it did not apply it (a forwarder that ran out of attempts).
            _ if proto::is_not_applied(&status) => Failure::Retry(status.message().to_owned()),
            _ => Failure::Unknown(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_connection_or_a_not_applied_mark_makes_a_failed_call_safe_to_repeat() {
        let retry =
            |status: tonic::Status| matches!(Failure::from_status(status), Failure::Retry(_));
        assert!(retry(tonic::Status::unavailable("error trying to connect: refused")));
        let marked = tonic::Status::unavailable("forwarding to the meta group, not applied");
        assert!(retry(proto::not_applied(marked)));
        // Without the mark, a node's "unavailable" may come after the entry was appended.
        assert!(!retry(tonic::Status::unavailable("forwarding to the meta group: timed out")));
        assert!(!retry(tonic::Status::deadline_exceeded("not applied in time")));
        assert!(!retry(tonic::Status::unknown("outcome unknown")));
        assert!(matches!(
            Failure::from_status(tonic::Status::invalid_argument("bad")),
            Failure::Fatal(ClusterError::Invalid(_))
        ));
    }
}
