//! The meta group's vocabulary (group 0): the node registry and the versioned shard map.
//!
//! The meta group decides *placement*: which inventory shard owns each show and which nodes
//! should hold each group's replicas. A group's actual replica set is its Raft membership; the
//! operator tool (`marqueectl`) changes the membership first and then records the result here
//! with [`MetaCommand::SetReplicas`], so the map is what clients route by and what operators
//! read, never what makes a node a voter.
//!
//! Every meta command is naturally idempotent (setting a value, placing a show that may already
//! be placed), so a retried proposal cannot act twice even without a request id.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, ShowId};

/// The meta group's id.
pub const META_GROUP: GroupId = GroupId(0);

/// Lifecycle of a node in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Takes new replicas.
    Active,
    /// Being emptied: takes no new replicas.
    Draining,
    /// Left the cluster; kept so its id is never reused by accident.
    Removed,
}

/// A node in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// gRPC address other nodes and gateways reach it at.
    pub addr: String,
    /// Lifecycle state.
    pub state: NodeState,
    /// Failure domain (`marquee-node --zone`, e.g. a rack or an availability zone): repairs
    /// place a group's new replica outside the zones of its other replicas where they can.
    /// `None`: unknown (registered without one, or before zones existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// What a group stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Group 0: this registry and map.
    Meta,
    /// Seats, holds and bookings of the shows placed on it.
    Inventory,
}

/// A group in the shard map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// What it stores.
    pub kind: GroupKind,
    /// Nodes that hold its replicas (its voters, as last recorded).
    pub replicas: BTreeSet<u64>,
    /// Shows placed on it.
    pub shows: u64,
    /// Seats of the shows placed on it (the load placement balances).
    pub seats: u64,
}

/// Nodes and groups, without the per-show placement (small enough to cache whole).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Bumped by every change to nodes, groups or placement.
    pub version: u64,
    /// The node registry.
    pub nodes: BTreeMap<u64, NodeInfo>,
    /// Every group, the meta group included.
    pub groups: BTreeMap<GroupId, GroupInfo>,
    /// The placement loop does not re-create replicas of unreachable nodes while set
    /// (`marqueectl repair pause`); leader balance goes on. Left out of the encoding while
    /// false, so a state without a pause encodes (and digests) as an older release's does and
    /// replicas of both agree during an upgrade.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repair_paused: bool,
}

impl Topology {
    /// Addresses of a group's replicas, in node id order (unknown nodes skipped).
    pub fn replica_addrs(&self, group: GroupId) -> Vec<String> {
        self.groups
            .get(&group)
            .map(|g| {
                g.replicas
                    .iter()
                    .filter_map(|id| self.nodes.get(id).map(|n| n.addr.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Inventory shard ids.
    pub fn shards(&self) -> Vec<GroupId> {
        self.groups
            .iter()
            .filter(|(_, g)| g.kind == GroupKind::Inventory)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// A change to the meta state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaCommand {
    /// Records the bootstrap layout. Applies only to an empty map; later calls return the
    /// existing topology unchanged (so a restarted bootstrap is harmless).
    InitCluster {
        /// Initial nodes and their addresses.
        nodes: BTreeMap<u64, String>,
        /// Replicas of the meta group.
        meta_replicas: BTreeSet<u64>,
        /// Inventory shards and their replicas.
        shards: BTreeMap<GroupId, BTreeSet<u64>>,
    },
    /// Adds a node or updates its address and zone; a removed node may not come back under its
    /// id.
    RegisterNode {
        /// The node.
        node_id: u64,
        /// Its gRPC address.
        addr: String,
        /// Its failure domain, if it has one ([`NodeInfo::zone`]); registering again with
        /// another one moves it there.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
    },
    /// Moves a node through its lifecycle.
    SetNodeState {
        /// The node.
        node_id: u64,
        /// New state.
        state: NodeState,
    },
    /// Records a group's replica set after a membership change.
    SetReplicas {
        /// The group.
        group: GroupId,
        /// Its voters.
        replicas: BTreeSet<u64>,
    },
    /// Pauses or resumes the placement loop's self-repair (`marqueectl repair pause|resume`).
    SetRepairPaused {
        /// Paused.
        paused: bool,
    },
    /// A change to the catalog or accounts.
    Catalog(crate::catalog::CatalogCommand),
}

impl MetaCommand {
    /// Stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            MetaCommand::InitCluster { .. } => "init_cluster",
            MetaCommand::RegisterNode { .. } => "register_node",
            MetaCommand::SetNodeState { .. } => "set_node_state",
            MetaCommand::SetReplicas { .. } => "set_replicas",
            MetaCommand::SetRepairPaused { .. } => "set_repair_paused",
            MetaCommand::Catalog(command) => command.kind(),
        }
    }
}

/// The successful result of a meta command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaReply {
    /// The topology after the change.
    Topology {
        /// The topology.
        topology: Topology,
    },
    /// A catalog command succeeded.
    Catalog(crate::catalog::CatalogReply),
}

/// A read of the meta state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaQuery {
    /// Nodes and groups.
    Topology,
    /// The shard of one show.
    LocateShow {
        /// The show.
        show_id: ShowId,
    },
    /// A catalog or account read.
    Catalog(crate::catalog::CatalogQuery),
}

/// The answer to a [`MetaQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaQueryResult {
    /// For [`MetaQuery::Topology`].
    Topology {
        /// The topology.
        topology: Topology,
    },
    /// For [`MetaQuery::LocateShow`].
    Located {
        /// The show.
        show_id: ShowId,
        /// Its shard.
        group: GroupId,
        /// Map version of the answering replica.
        map_version: u64,
    },
    /// For [`MetaQuery::Catalog`] (boxed: much larger than the other answers).
    Catalog(Box<crate::catalog::CatalogQueryResult>),
}

/// Round-robin placement of `shards` groups of `replicas` replicas over `nodes`, the first
/// replica of each being the one to initialize it (and so its first leader): shard `i` starts at
/// node `i mod n`, spreading both replicas and first leaders evenly.
pub fn initial_placement(
    nodes: &[u64],
    shards: u64,
    replicas: usize,
) -> BTreeMap<GroupId, Vec<u64>> {
    let n = nodes.len();
    let replicas = replicas.min(n);
    (1..=shards)
        .map(|shard| {
            let start = usize::try_from(shard - 1).unwrap_or(0) % n.max(1);
            let members = (0..replicas).map(|k| nodes[(start + k) % n]).collect();
            (GroupId(shard), members)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_placement_spreads_replicas_and_first_replicas() {
        let placement = initial_placement(&[1, 2, 3, 4], 16, 3);
        assert_eq!(placement.len(), 16);
        let mut replicas = BTreeMap::<u64, usize>::new();
        let mut firsts = BTreeMap::<u64, usize>::new();
        for members in placement.values() {
            assert_eq!(members.len(), 3);
            assert_eq!(members.iter().collect::<BTreeSet<_>>().len(), 3, "distinct nodes");
            *firsts.entry(members[0]).or_default() += 1;
            for m in members {
                *replicas.entry(*m).or_default() += 1;
            }
        }
        assert!(replicas.values().all(|&c| c == 12), "{replicas:?}");
        assert!(firsts.values().all(|&c| c == 4), "{firsts:?}");
    }

    #[test]
    fn initial_placement_caps_replicas_at_the_node_count() {
        let placement = initial_placement(&[7], 2, 3);
        assert_eq!(placement[&GroupId(1)], vec![7]);
        assert_eq!(placement[&GroupId(2)], vec![7]);
    }
}
