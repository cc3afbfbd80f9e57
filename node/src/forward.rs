//! Meta requests on a node that hosts no meta replica (docs/architecture.md, "Any node answers
//! meta"): proposals, reads, joins and catalog watches for group 0 are forwarded to the meta
//! group, so gateways, `marqueectl` and joining nodes can be given any node's address.
//!
//! Forwarding never chains: the forwarder sends only to nodes it found hosting a meta replica
//! (their `Cluster.Status` lists group 0, or the meta group's own map names them), and a node
//! that hosts one answers itself. It learns candidates from its `--peers`, its `--join` seed and
//! the members of the groups it hosts, so it works for a node added later with `--join`. The
//! discovered client is kept until a forwarded call fails as unavailable, then found again.

use std::time::Duration;

use client::{ChannelConfig, ClusterClient, ClusterError, RetryPolicy};
use futures_util::future::join_all;
use proto::command::{Outcome, Proposal, Query, QueryResult};
use proto::pb::{QueryReply, StatusRequest};
use proto::META_GROUP;
use tonic::Status;

use crate::host::Host;

/// Forwarded calls. The whole forwarded call (budget plus one last attempt, 5.5 s at most) ends
/// before the caller's own per-attempt timeout (the gateway's 6 s, [`RetryPolicy::CALLS`]), so
/// the caller hears why instead of timing out with the outcome unknown; a forward that ran out
/// without applying anything says so ([`proto::NOT_APPLIED_KEY`]) and the caller retries it
/// within its own, longer budget. The attempts are many because leader changes answer with
/// quick redirects; time is the real bound.
const FORWARD_POLICY: RetryPolicy = RetryPolicy {
    attempts_max: 30,
    budget: Some(Duration::from_secs(3)),
    pause_min: Duration::from_millis(20),
    pause_max: Duration::from_millis(500),
    jitter: true,
    call_timeout: Duration::from_millis(2_500),
    retry_unknown: false,
};
/// Time allowed for one candidate's `Status` while looking for meta replicas.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(1);

/// The forwarding side of a node: a cluster client pointed at the meta replicas, found lazily.
#[derive(Default)]
pub struct MetaForward {
    client: tokio::sync::Mutex<Option<ClusterClient>>,
}

impl MetaForward {
    /// A client for the meta group, found from this node's acquaintances if not known yet.
    async fn client(&self, host: &Host) -> Result<ClusterClient, Status> {
        let mut cached = self.client.lock().await;
        if let Some(client) = cached.as_ref() {
            return Ok(client.clone());
        }
        let own = host.config.advertised();
        let mut candidates: Vec<String> = host
            .config
            .parsed_peers()
            .unwrap_or_default()
            .into_iter()
            .map(|(_, addr)| addr)
            .chain(host.config.join.clone())
            .chain(host.router.all().iter().flat_map(|group| {
                let metrics = group.raft.metrics().borrow().clone();
                let membership = metrics.membership_config.membership();
                membership.nodes().map(|(_, node)| node.addr.clone()).collect::<Vec<_>>()
            }))
            .filter(|addr| *addr != own)
            .collect();
        candidates.sort();
        candidates.dedup();
        let channels = client::Channels::new(ChannelConfig::default());
        let hosts_meta = |addr: String| {
            let channels = channels.clone();
            async move {
                let mut rpc = channels.cluster(&addr).ok()?;
                let mut request = tonic::Request::new(StatusRequest { with_digest: false });
                request.set_timeout(DISCOVER_TIMEOUT);
                let reply =
                    tokio::time::timeout(DISCOVER_TIMEOUT, rpc.status(request)).await.ok()?.ok()?;
                reply.into_inner().groups.iter().any(|g| g.group_id == META_GROUP.0).then_some(addr)
            }
        };
        let meta: Vec<String> =
            join_all(candidates.into_iter().map(hosts_meta)).await.into_iter().flatten().collect();
        if meta.is_empty() {
            return Err(Status::unavailable(
                "this node hosts no meta replica and found no node that does; ask a meta replica",
            ));
        }
        let client = ClusterClient::with_policy(meta, FORWARD_POLICY, ChannelConfig::default());
        // The map names every meta replica: later calls go to them, the leader first.
        client.meta_topology().await.map_err(|e| to_status(&e, true))?;
        *cached = Some(client.clone());
        Ok(client)
    }

    /// Drops the client after a failure, so the next call finds the meta replicas again.
    async fn forget(&self) {
        *self.client.lock().await = None;
    }

    /// Runs one forwarded call. `not_applied_when_exhausted`: running out of attempts means
    /// nothing was applied (a read, or a proposal the forwarding client never retries after an
    /// unknown outcome), and the answer then says so.
    async fn run<T, F, Fut>(
        &self,
        host: &Host,
        not_applied_when_exhausted: bool,
        call: F,
    ) -> Result<T, Status>
    where
        F: FnOnce(ClusterClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClusterError>>,
    {
        let client = self.client(host).await?;
        match call(client).await {
            Ok(value) => Ok(value),
            Err(e) => {
                if matches!(e, ClusterError::Unavailable(_)) {
                    self.forget().await;
                }
                Err(to_status(&e, not_applied_when_exhausted))
            }
        }
    }

    /// Proposes on the meta leader; its outcome (a rejection included).
    ///
    /// # Errors
    /// The meta group could not be reached.
    pub async fn propose(&self, host: &Host, proposal: &Proposal) -> Result<Outcome, Status> {
        // Without a request id the forwarding client returns at the first unknown outcome
        // (`retry_unknown` is off), so running out of attempts means none was applied.
        let not_applied_when_exhausted = proposal.request_id.is_none();
        self.run(host, not_applied_when_exhausted, |client| async move {
            client.propose(META_GROUP, proposal).await
        })
        .await
    }

    /// Reads from the meta group (on its leader when `linearizable`).
    ///
    /// # Errors
    /// The meta group could not be reached.
    pub async fn query(
        &self,
        host: &Host,
        query: &Query,
        linearizable: bool,
    ) -> Result<QueryResult, Status> {
        self.run(
            host,
            true,
            |client| async move { client.query(META_GROUP, query, linearizable).await },
        )
        .await
    }

    /// Registers a node with the meta leader.
    ///
    /// # Errors
    /// The meta group could not be reached.
    pub async fn join(
        &self,
        host: &Host,
        node_id: u64,
        addr: &str,
        zone: Option<&str>,
    ) -> Result<(), Status> {
        self.run(host, false, |client| async move { client.join(node_id, addr, zone).await }).await
    }

    /// Opens a catalog change stream on a meta replica.
    ///
    /// # Errors
    /// No meta replica accepted it.
    pub async fn watch_catalog(
        &self,
        host: &Host,
        after: u64,
        limit: u32,
    ) -> Result<tonic::Streaming<QueryReply>, Status> {
        self.run(host, true, |client| async move { client.watch_catalog(after, limit).await }).await
    }
}

fn to_status(error: &ClusterError, not_applied_when_exhausted: bool) -> Status {
    match error {
        ClusterError::Invalid(e) => Status::invalid_argument(e.clone()),
        ClusterError::OutcomeUnknown(_) => {
            Status::unknown(format!("forwarding to the meta group: {error}"))
        }
        ClusterError::Unavailable(_) if not_applied_when_exhausted => proto::not_applied(
            Status::unavailable(format!("forwarding to the meta group, not applied: {error}")),
        ),
        other => Status::unavailable(format!("forwarding to the meta group: {other}")),
    }
}
