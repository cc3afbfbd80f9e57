//! The meta state machine (group 0): node registry and shard map, as a pure function of the log.
//!
//! Like the inventory, it reads no clock and iterates only ordered maps, so every replica holds
//! the same state and digest. Placement is deterministic: the catalog's `CreateShow` places the
//! show, in the same entry that records it, on the shard with the fewest placed seats, then the
//! fewest shows, then the lowest id.
//!
//! The map version bumps on every change a router must see (nodes, replicas, placements), so a
//! client holding version `v` knows its cache is stale when a node reports a higher one.

use std::collections::{BTreeMap, BTreeSet};

use proto::command::{
    Command, LogCommand, Outcome, Query, QueryResult, Rejection, Reply, COMMAND_VERSION,
};
use proto::ids::ShowId;
use proto::meta::{
    GroupInfo, GroupKind, MetaCommand, MetaQuery, MetaQueryResult, MetaReply, NodeInfo, NodeState,
    Topology, META_GROUP,
};
use proto::GroupId;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::limits::{META_GROUPS_MAX, META_NODES_MAX, NODE_ADDR_BYTES_MAX, NODE_ZONE_BYTES_MAX};

/// The replicated state of the meta group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    now_ms: u64,
    topology: Topology,
    /// Show id -> (shard, seats counted at placement).
    shows: BTreeMap<u64, (GroupId, u32)>,
    /// Accounts and the catalog (absent from snapshots older than the catalog).
    #[serde(default)]
    catalog: Catalog,
}

impl MetaState {
    /// Applies one entry and returns its outcome.
    ///
    /// # Panics
    /// If the entry's version is newer than this build understands: a replica must stop rather
    /// than guess (docs/architecture.md, "Upgrades").
    pub fn apply(&mut self, entry: &LogCommand) -> Outcome {
        assert!(
            entry.v <= COMMAND_VERSION,
            "meta log entry has command version {} but this build knows up to {COMMAND_VERSION}; \
             upgrade this node",
            entry.v
        );
        self.now_ms = self.now_ms.max(entry.now_ms);
        let Command::Meta(command) = &entry.command else {
            return Err(Rejection::WrongGroup);
        };
        match command {
            MetaCommand::InitCluster { nodes, meta_replicas, shards } => {
                self.init(nodes, meta_replicas, shards)
            }
            MetaCommand::RegisterNode { node_id, addr, zone } => {
                self.register(*node_id, addr, zone.as_deref())
            }
            MetaCommand::SetNodeState { node_id, state } => {
                let node = self
                    .topology
                    .nodes
                    .get_mut(node_id)
                    .ok_or(Rejection::NodeNotFound { node_id: *node_id })?;
                if node.state == NodeState::Removed && *state != NodeState::Removed {
                    return Err(invalid(format!("node {node_id} was removed; use a new id")));
                }
                if *state == NodeState::Removed {
                    if let Some((group, _)) =
                        self.topology.groups.iter().find(|(_, g)| g.replicas.contains(node_id))
                    {
                        return Err(invalid(format!(
                            "node {node_id} still holds a replica of group {group}; drain it first"
                        )));
                    }
                }
                if node.state != *state {
                    node.state = *state;
                    self.topology.version += 1;
                }
                Ok(self.topology_reply())
            }
            MetaCommand::SetReplicas { group, replicas } => {
                if replicas.is_empty() {
                    return Err(invalid("a group needs at least one replica".into()));
                }
                if let Some(unknown) = replicas.iter().find(|id| {
                    self.topology.nodes.get(id).is_none_or(|n| n.state == NodeState::Removed)
                }) {
                    return Err(Rejection::NodeNotFound { node_id: *unknown });
                }
                let info = self
                    .topology
                    .groups
                    .get_mut(group)
                    .ok_or(Rejection::GroupNotFound { group: *group })?;
                if info.replicas != *replicas {
                    info.replicas = replicas.clone();
                    self.topology.version += 1;
                }
                Ok(self.topology_reply())
            }
            MetaCommand::SetRepairPaused { paused } => {
                if self.topology.repair_paused != *paused {
                    self.topology.repair_paused = *paused;
                    self.topology.version += 1;
                }
                Ok(self.topology_reply())
            }
            MetaCommand::Catalog(command) => {
                let (topology, shows) = (&mut self.topology, &mut self.shows);
                let mut placer = |show_id, seats| place(topology, shows, show_id, seats);
                let reply =
                    self.catalog.apply(command, entry.now_ms.max(self.now_ms), &mut placer)?;
                Ok(Reply::Meta(MetaReply::Catalog(reply)))
            }
        }
    }

    fn init(
        &mut self,
        nodes: &BTreeMap<u64, String>,
        meta_replicas: &BTreeSet<u64>,
        shards: &BTreeMap<GroupId, BTreeSet<u64>>,
    ) -> Outcome {
        if !self.topology.groups.is_empty() {
            return Ok(self.topology_reply());
        }
        if nodes.is_empty() || nodes.len() > META_NODES_MAX || shards.len() > META_GROUPS_MAX {
            return Err(invalid(format!(
                "a cluster starts with 1..={META_NODES_MAX} nodes and at most {META_GROUPS_MAX} shards"
            )));
        }
        for (id, addr) in nodes {
            check_node(*id, addr)?;
        }
        let all_known = |replicas: &BTreeSet<u64>| {
            !replicas.is_empty() && replicas.iter().all(|id| nodes.contains_key(id))
        };
        if !all_known(meta_replicas) || !shards.values().all(all_known) {
            return Err(invalid("every replica must be one of the initial nodes".into()));
        }
        if shards.contains_key(&META_GROUP) {
            return Err(invalid("group 0 is the meta group, not a shard".into()));
        }
        // A node that registered its zone (`--zone`) before this entry keeps it: nodes start
        // registering as soon as they serve, which can be before the bootstrap's first entry.
        let zone = |id: &u64| self.topology.nodes.get(id).and_then(|n| n.zone.clone());
        let registered: BTreeMap<u64, NodeInfo> = nodes
            .iter()
            .map(|(id, addr)| {
                (*id, NodeInfo { addr: addr.clone(), state: NodeState::Active, zone: zone(id) })
            })
            .collect();
        self.topology.nodes = registered;
        self.topology.groups.insert(META_GROUP, group_info(GroupKind::Meta, meta_replicas));
        for (id, replicas) in shards {
            self.topology.groups.insert(*id, group_info(GroupKind::Inventory, replicas));
        }
        self.topology.version += 1;
        Ok(self.topology_reply())
    }

    fn register(&mut self, node_id: u64, addr: &str, zone: Option<&str>) -> Outcome {
        check_node(node_id, addr)?;
        if let Some(zone) = zone {
            check_zone(zone)?;
        }
        let zone = zone.map(str::to_owned);
        match self.topology.nodes.get_mut(&node_id) {
            Some(node) if node.state == NodeState::Removed => {
                return Err(invalid(format!("node {node_id} was removed; use a new id")))
            }
            // A node registering again without a zone keeps the one it has.
            Some(node) if node.addr == addr && (zone.is_none() || node.zone == zone) => {
                return Ok(self.topology_reply())
            }
            Some(node) => {
                node.addr = addr.to_owned();
                if zone.is_some() {
                    node.zone = zone;
                }
            }
            None => {
                if self.topology.nodes.len() >= META_NODES_MAX {
                    return Err(invalid(format!("at most {META_NODES_MAX} nodes")));
                }
                let node = NodeInfo { addr: addr.to_owned(), state: NodeState::Active, zone };
                self.topology.nodes.insert(node_id, node);
            }
        }
        self.topology.version += 1;
        Ok(self.topology_reply())
    }

    fn topology_reply(&self) -> Reply {
        Reply::Meta(MetaReply::Topology { topology: self.topology.clone() })
    }

    /// Answers a read.
    pub fn query(&self, query: &Query) -> QueryResult {
        match query {
            Query::Meta(MetaQuery::Topology) => {
                QueryResult::Meta(MetaQueryResult::Topology { topology: self.topology.clone() })
            }
            Query::Meta(MetaQuery::LocateShow { show_id }) => match self.shows.get(&show_id.0) {
                Some((group, _)) => QueryResult::Meta(MetaQueryResult::Located {
                    show_id: *show_id,
                    group: *group,
                    map_version: self.topology.version,
                }),
                None => QueryResult::NotFound,
            },
            Query::Meta(MetaQuery::Catalog(query)) => match self.catalog.query(query) {
                Some(result) => QueryResult::Meta(MetaQueryResult::Catalog(Box::new(result))),
                None => QueryResult::NotFound,
            },
            Query::Digest => QueryResult::Digest { applied_index: 0, digest: self.digest() },
            _ => QueryResult::NotFound,
        }
    }

    /// The node registry and shard map.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Log time of the last applied entry.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The state as snapshot bytes (JSON).
    ///
    /// # Panics
    /// Never: every map key is an integer or a string, which JSON encodes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("meta state serializes: integer map keys")
    }

    /// Restores a state from [`MetaState::to_snapshot`] bytes.
    ///
    /// # Errors
    /// Undecodable bytes.
    pub fn from_snapshot(bytes: &[u8]) -> Result<MetaState, crate::DecodeError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// FNV-1a digest of the whole state.
    ///
    /// # Panics
    /// Never: every map key is an integer or a string, which JSON encodes.
    pub fn digest(&self) -> u64 {
        crate::Fnv1a::of_json(self).expect("meta state serializes: integer map keys")
    }
}

/// Places a show on the least-loaded inventory shard (by seats, then shows, then lowest id), or
/// returns its existing placement.
fn place(
    topology: &mut Topology,
    shows: &mut BTreeMap<u64, (GroupId, u32)>,
    show_id: ShowId,
    seats: u32,
) -> Result<GroupId, Rejection> {
    if let Some((group, _)) = shows.get(&show_id.0) {
        return Ok(*group);
    }
    let group = topology
        .groups
        .iter()
        .filter(|(_, g)| g.kind == GroupKind::Inventory)
        .min_by_key(|(id, g)| (g.seats, g.shows, **id))
        .map(|(id, _)| *id)
        .ok_or_else(|| invalid("the cluster has no inventory shards".into()))?;
    let info = topology.groups.get_mut(&group).expect("picked from the map");
    info.shows += 1;
    info.seats += u64::from(seats);
    shows.insert(show_id.0, (group, seats));
    topology.version += 1;
    Ok(group)
}

fn group_info(kind: GroupKind, replicas: &BTreeSet<u64>) -> GroupInfo {
    GroupInfo { kind, replicas: replicas.clone(), shows: 0, seats: 0 }
}

fn invalid(reason: String) -> Rejection {
    Rejection::InvalidPlacement { reason }
}

fn check_node(node_id: u64, addr: &str) -> Result<(), Rejection> {
    if node_id == 0 {
        return Err(invalid("node id 0 is reserved".into()));
    }
    if addr.is_empty() || addr.len() > NODE_ADDR_BYTES_MAX {
        return Err(invalid(format!("node address must be 1..={NODE_ADDR_BYTES_MAX} bytes")));
    }
    Ok(())
}

/// A zone is a short label: 1..=[`NODE_ZONE_BYTES_MAX`] of ASCII letters, digits, `-`, `_`, `.`.
fn check_zone(zone: &str) -> Result<(), Rejection> {
    let valid = !zone.is_empty()
        && zone.len() <= NODE_ZONE_BYTES_MAX
        && zone.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "zone must be 1..={NODE_ZONE_BYTES_MAX} ASCII letters, digits, '-', '_' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proto::ids::ShowId;
    use proto::meta::initial_placement;

    use super::*;

    fn entry(command: MetaCommand) -> LogCommand {
        LogCommand {
            v: COMMAND_VERSION,
            now_ms: 1,
            request_id: None,
            command: Command::Meta(command),
        }
    }

    fn cluster(nodes: &[u64], shards: u64) -> MetaState {
        let mut meta = MetaState::default();
        let placement = initial_placement(nodes, shards, 3);
        let outcome = meta.apply(&entry(MetaCommand::InitCluster {
            nodes: nodes.iter().map(|id| (*id, format!("127.0.0.1:{}", 7000 + id))).collect(),
            meta_replicas: nodes.iter().copied().take(3).collect(),
            shards: placement.into_iter().map(|(g, r)| (g, r.into_iter().collect())).collect(),
        }));
        assert!(outcome.is_ok(), "{outcome:?}");
        meta
    }

    fn place(meta: &mut MetaState, show: u64, seats: u32) -> GroupId {
        super::place(&mut meta.topology, &mut meta.shows, ShowId(show), seats).unwrap()
    }

    #[test]
    fn nodes_register_their_zone_and_keep_it_when_registering_without_one() {
        let mut meta = cluster(&[1, 2, 3], 1);
        let register = |zone: Option<&str>| MetaCommand::RegisterNode {
            node_id: 2,
            addr: "127.0.0.1:7002".into(),
            zone: zone.map(str::to_owned),
        };
        // Registered before the cluster's first entry: the zone survives the initialization.
        let mut early = MetaState::default();
        let before = MetaCommand::RegisterNode {
            node_id: 1,
            addr: "127.0.0.1:7001".into(),
            zone: Some("rack-a".into()),
        };
        assert!(early.apply(&entry(before)).is_ok());
        let init = early.apply(&entry(MetaCommand::InitCluster {
            nodes: [1, 2, 3].iter().map(|id| (*id, format!("127.0.0.1:{}", 7000 + id))).collect(),
            meta_replicas: [1, 2, 3].into(),
            shards: BTreeMap::new(),
        }));
        assert!(init.is_ok(), "{init:?}");
        assert_eq!(early.topology().nodes[&1].zone.as_deref(), Some("rack-a"));
        assert_eq!(early.topology().nodes[&2].zone, None);

        assert!(meta.apply(&entry(register(Some("rack-b")))).is_ok());
        assert_eq!(meta.topology().nodes[&2].zone.as_deref(), Some("rack-b"));
        let version = meta.topology().version;
        assert!(meta.apply(&entry(register(None))).is_ok());
        assert_eq!(meta.topology().nodes[&2].zone.as_deref(), Some("rack-b"));
        assert_eq!(meta.topology().version, version, "nothing changed");
        assert!(meta.apply(&entry(register(Some("rack-c")))).is_ok());
        assert_eq!(meta.topology().nodes[&2].zone.as_deref(), Some("rack-c"));
        for bad in ["", "a b", "zone/1", &"z".repeat(65)] {
            let refused = meta.apply(&entry(register(Some(bad))));
            assert!(matches!(refused, Err(Rejection::InvalidPlacement { .. })), "{bad:?}");
        }
        assert_eq!(meta.topology().nodes[&2].zone.as_deref(), Some("rack-c"));
    }

    #[test]
    fn shows_go_to_the_least_loaded_shard_and_placement_is_idempotent() {
        let mut meta = cluster(&[1, 2, 3], 4);
        let groups: Vec<GroupId> = (1..=4).map(|s| place(&mut meta, s, 100)).collect();
        assert_eq!(groups, vec![GroupId(1), GroupId(2), GroupId(3), GroupId(4)]);
        // A big show loads shard 1; the next small ones avoid it.
        assert_eq!(place(&mut meta, 5, 1000), GroupId(1));
        assert_eq!(place(&mut meta, 6, 10), GroupId(2));
        // Replaying a placement returns the same shard and changes nothing.
        let version = meta.topology().version;
        assert_eq!(place(&mut meta, 5, 1000), GroupId(1));
        assert_eq!(meta.topology().version, version);
        assert_eq!(meta.topology().groups[&GroupId(1)].seats, 1100);
    }

    #[test]
    fn init_applies_once_and_validates() {
        let mut meta = cluster(&[1, 2, 3], 2);
        let digest = meta.digest();
        let again = meta.apply(&entry(MetaCommand::InitCluster {
            nodes: BTreeMap::from([(9, "x:1".into())]),
            meta_replicas: BTreeSet::from([9]),
            shards: BTreeMap::new(),
        }));
        assert!(again.is_ok());
        assert_eq!(meta.digest(), digest, "a second init changes nothing");

        let mut empty = MetaState::default();
        let bad = empty.apply(&entry(MetaCommand::InitCluster {
            nodes: BTreeMap::from([(1, "a:1".into())]),
            meta_replicas: BTreeSet::from([2]),
            shards: BTreeMap::new(),
        }));
        assert!(matches!(bad, Err(Rejection::InvalidPlacement { .. })), "{bad:?}");
        assert_eq!(empty.topology(), &Topology::default(), "a rejected init leaves nothing behind");
    }

    #[test]
    fn a_node_with_replicas_cannot_be_removed_and_a_removed_id_cannot_return() {
        let mut meta = cluster(&[1, 2, 3], 2);
        let removed =
            meta.apply(&entry(MetaCommand::SetNodeState { node_id: 2, state: NodeState::Removed }));
        assert!(matches!(removed, Err(Rejection::InvalidPlacement { .. })), "{removed:?}");

        assert!(meta
            .apply(&entry(MetaCommand::RegisterNode { node_id: 4, addr: "h:4".into(), zone: None }))
            .is_ok());
        for group in [META_GROUP, GroupId(1), GroupId(2)] {
            let replicas: BTreeSet<u64> = meta.topology().groups[&group]
                .replicas
                .iter()
                .map(|&id| if id == 2 { 4 } else { id })
                .collect();
            assert!(meta.apply(&entry(MetaCommand::SetReplicas { group, replicas })).is_ok());
        }
        assert!(meta
            .apply(&entry(MetaCommand::SetNodeState { node_id: 2, state: NodeState::Removed }))
            .is_ok());
        let back = meta.apply(&entry(MetaCommand::RegisterNode {
            node_id: 2,
            addr: "h:2".into(),
            zone: None,
        }));
        assert!(matches!(back, Err(Rejection::InvalidPlacement { .. })), "{back:?}");
        let to_removed = meta.apply(&entry(MetaCommand::SetReplicas {
            group: GroupId(1),
            replicas: BTreeSet::from([1, 2]),
        }));
        assert_eq!(to_removed, Err(Rejection::NodeNotFound { node_id: 2 }));
    }

    #[test]
    fn inventory_commands_are_refused() {
        let mut meta = MetaState::default();
        let outcome = meta.apply(&LogCommand {
            v: COMMAND_VERSION,
            now_ms: 1,
            request_id: None,
            command: Command::ExpireDue,
        });
        assert_eq!(outcome, Err(Rejection::WrongGroup));
    }
}
