//! First start of a cluster: create the meta group, record the initial shard map in it, then
//! create and initialize every inventory shard where the map puts it.
//!
//! Runs on the one node started with `--bootstrap`. Every step is idempotent (creating a
//! replica that exists, initializing a group that is initialized, `InitCluster` on a map that
//! exists), so a bootstrap interrupted by a crash simply runs again on the next start, and a
//! restart of a bootstrapped node changes nothing. Peers are reached over gRPC, this node
//! included, so the steps are the same ones an operator's tools use.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use client::{ChannelConfig, Channels, ClusterClient, ClusterError, RetryPolicy};
use proto::command::Reply;
use proto::meta::{initial_placement, MetaCommand, MetaReply, Topology};
use proto::pb::{GroupRequest, InitializeGroupRequest, Member};
use proto::{GroupId, META_GROUP};

use crate::host::Host;

/// Each step: 600 attempts 300 ms apart (about 3 minutes), as peers started by hand may come
/// up late.
const STEP_POLICY: RetryPolicy = RetryPolicy::paced(600, Duration::from_millis(300));

/// The initial layout: peers, how many shards, replicas per group.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Initial nodes.
    pub peers: BTreeMap<u64, String>,
    /// Inventory shards to create.
    pub shards: u64,
    /// Replicas per group (capped at the number of peers).
    pub replicas: usize,
}

/// Runs the bootstrap to completion (or until shutdown).
///
/// # Errors
/// A step kept failing for its whole retry budget, or the meta group refused the map.
pub async fn run(host: Host, plan: Plan) -> anyhow::Result<()> {
    let me = host.node_id();
    anyhow::ensure!(plan.peers.contains_key(&me), "--peers must include this node");
    let ids: Vec<u64> = plan.peers.keys().copied().collect();
    // The meta group: this node plus the lowest other ids.
    let meta_replicas: BTreeSet<u64> = std::iter::once(me)
        .chain(ids.iter().copied().filter(|id| *id != me))
        .take(plan.replicas.clamp(1, ids.len()))
        .collect();
    let members = |replicas: &BTreeSet<u64>| -> Vec<Member> {
        replicas.iter().map(|id| Member { node_id: *id, addr: plan.peers[id].clone() }).collect()
    };

    // Peers are reached with the cluster client, as an operator's tools reach them.
    let channels = Channels::new(ChannelConfig::default());
    let meta_members = members(&meta_replicas);
    for member in &meta_members {
        create_replica(&host, &channels, &member.addr, META_GROUP).await?;
    }
    let addr = &plan.peers[&me];
    initialize(&host, &channels, addr, META_GROUP, meta_members).await?;

    let shards: BTreeMap<GroupId, BTreeSet<u64>> =
        initial_placement(&ids, plan.shards, plan.replicas)
            .into_iter()
            .map(|(group, replicas)| (group, replicas.into_iter().collect()))
            .collect();
    let command = MetaCommand::InitCluster {
        nodes: plan.peers.clone(),
        meta_replicas: meta_replicas.clone(),
        shards,
    };
    let topology = init_cluster(&host, &plan, &meta_replicas, command).await?;

    // Create and initialize each shard as the map records it (which, after a restart of this
    // node, may differ from the initial placement: replicas may have moved since).
    for (group, info) in &topology.groups {
        if *group == META_GROUP {
            continue;
        }
        let replicas: Vec<Member> = info
            .replicas
            .iter()
            .filter_map(|id| {
                topology.nodes.get(id).map(|n| Member { node_id: *id, addr: n.addr.clone() })
            })
            .collect();
        for member in &replicas {
            create_replica(&host, &channels, &member.addr, *group).await?;
        }
        // Spread first leaders: shard g is initialized (and first led) by its g-th replica.
        let first = usize::try_from(group.0).unwrap_or(0) % replicas.len().max(1);
        if let Some(initializer) = replicas.get(first) {
            let addr = initializer.addr.clone();
            initialize(&host, &channels, &addr, *group, replicas.clone()).await?;
        }
    }
    tracing::info!(
        shards = topology.shards().len(),
        nodes = topology.nodes.len(),
        "cluster bootstrapped"
    );
    Ok(())
}

/// Retries `step` until it succeeds, the node shuts down, or the budget runs out.
async fn retry<T, F, Fut>(host: &Host, what: &str, step: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    client::retry(STEP_POLICY, &host.shutdown, what, step).await.map_err(|e| match e {
        client::RetryError::Cancelled { what } => anyhow::anyhow!("{what}: node shutting down"),
        client::RetryError::Exhausted { what, attempts, last } => {
            last.context(format!("{what}: gave up after {attempts} attempts"))
        }
    })
}

async fn create_replica(
    host: &Host,
    channels: &Channels,
    addr: &str,
    group: GroupId,
) -> anyhow::Result<()> {
    retry(host, &format!("creating group {group} on {addr}"), || async {
        channels.cluster(addr)?.create_replica(GroupRequest { group_id: group.0 }).await?;
        Ok(())
    })
    .await
}

async fn initialize(
    host: &Host,
    channels: &Channels,
    addr: &str,
    group: GroupId,
    members: Vec<Member>,
) -> anyhow::Result<()> {
    retry(host, &format!("initializing group {group} on {addr}"), || {
        let request = InitializeGroupRequest { group_id: group.0, members: members.clone() };
        async move {
            channels.cluster(addr)?.initialize_group(request).await?;
            Ok(())
        }
    })
    .await
}

/// Proposes `InitCluster` to the meta leader (following leader hints, retrying an unknown
/// outcome: `InitCluster` on a recorded map answers that map) and returns the map.
async fn init_cluster(
    host: &Host,
    plan: &Plan,
    meta_replicas: &BTreeSet<u64>,
    command: MetaCommand,
) -> anyhow::Result<Topology> {
    let candidates: Vec<String> = meta_replicas.iter().map(|id| plan.peers[id].clone()).collect();
    let policy = RetryPolicy { retry_unknown: true, ..STEP_POLICY };
    let cluster = ClusterClient::with_policy(candidates, policy, ChannelConfig::default());
    let reply = tokio::select! {
        () = host.shutdown.cancelled() => {
            anyhow::bail!("recording the initial shard map: node shutting down")
        }
        reply = cluster.propose_meta(command) => reply,
    };
    match reply {
        Ok(Reply::Meta(MetaReply::Topology { topology })) => Ok(topology),
        Ok(other) => anyhow::bail!("unexpected reply {other:?}"),
        Err(ClusterError::Refused(rejection)) => {
            Err(anyhow::anyhow!(rejection)).context("the meta group refused the initial map")
        }
        Err(e) => Err(e).context("recording the initial shard map"),
    }
}
