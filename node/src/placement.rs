//! The placement loop: what an operator used to do by hand with `marqueectl drain` and
//! `balance-leaders`, done by the meta group's leader (docs/operations.md, "Self-repair and
//! leader balance"). Every node runs it; only the node leading the meta group acts, one step
//! per tick, so repairs and transfers happen at a bounded rate and a new meta leader simply
//! picks up where the old one stopped (every step is an idempotent `ctl::Admin` operation).
//!
//! Each tick, in order:
//! 1. **Self-repair**: a node unreachable for longer than `--repair-after-s` has one replica
//!    re-created on a reachable active node, outside the zones (`--zone`) of the group's other
//!    replicas where one is, then the one holding the fewest (learner -> catch up ->
//!    promote -> remove the dead one -> record the map), unless paused (`marqueectl repair
//!    pause`). The group keeps a majority throughout: the new voter joins before the dead one
//!    leaves.
//! 2. **Tombstones**: a reachable node still hosting a replica that its group's leader no
//!    longer counts (moved away while the node was down) is told to delete it; the leader is
//!    never touched.
//! 3. **Zone spread**: when every node answers and self-repair is not paused, a group with two
//!    replicas in one zone while a node in a zone the group does not use could take one has
//!    that replica moved there ([`spread_move`]): initial placement (`--peers` order) and
//!    nodes added later know nothing of zones, so this is what makes every group survive the
//!    loss of one zone where the nodes allow it. Each move adds a zone to its group, so the
//!    loop settles after at most one move per replica.
//! 4. **Leader balance**: when every node answers, one leadership transfer towards an even
//!    spread (`ctl::plan_leader_move`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ctl::{plan_leader_move, Admin, ClusterView, CtlError};
use proto::{GroupId, META_GROUP};

use crate::host::Host;

/// Settings of the placement loop.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Time between steps (0: the loop is off).
    pub interval: Duration,
    /// How long a node must be unreachable before its replicas are re-created elsewhere.
    pub repair_after: Duration,
}

/// One step of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Re-create `group`'s replica on `from` (unreachable) on `to`.
    Repair {
        /// The group.
        group: GroupId,
        /// The unreachable node.
        from: u64,
        /// The node receiving the replica.
        to: u64,
    },
    /// Delete `node`'s replica of `group`: its leader no longer counts it.
    Tombstone {
        /// The group.
        group: GroupId,
        /// The node.
        node: u64,
    },
    /// Move `group`'s replica on `from` (sharing its zone with another replica of the group)
    /// to `to`, in a zone the group does not use.
    Spread {
        /// The group.
        group: GroupId,
        /// The replica that leaves.
        from: u64,
        /// The node receiving it.
        to: u64,
    },
    /// Move `group`'s leadership to `to`.
    Lead {
        /// The group.
        group: GroupId,
        /// The new leader.
        to: u64,
    },
}

/// Nodes that did not answer and since when (the loop's memory between ticks).
pub type Unreachable = BTreeMap<u64, Instant>;

/// Updates `unreachable` from `view` (taken at `now`) and returns the next step, if any.
pub fn plan(
    view: &ClusterView,
    unreachable: &mut Unreachable,
    now: Instant,
    repair_after: Duration,
) -> Option<Step> {
    for (id, report) in &view.nodes {
        if report.status.is_ok() {
            unreachable.remove(id);
        } else {
            unreachable.entry(*id).or_insert(now);
        }
    }
    unreachable.retain(|id, _| view.nodes.contains_key(id));
    let topology = &view.topology;
    if !topology.repair_paused {
        let dead = unreachable
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= repair_after)
            .map(|(id, _)| *id);
        for from in dead {
            // The meta group first: the cluster's map matters most.
            let mut groups: Vec<_> =
                topology.groups.iter().filter(|(_, g)| g.replicas.contains(&from)).collect();
            groups.sort_by_key(|(id, _)| (**id != META_GROUP, **id));
            for (group, info) in groups {
                // Only a group that can still change its membership (it has a leader).
                if view.leader_status(*group).is_none() {
                    continue;
                }
                let exclude: BTreeSet<u64> =
                    info.replicas.iter().chain(unreachable.keys()).copied().collect();
                let staying: BTreeSet<u64> =
                    info.replicas.iter().copied().filter(|r| *r != from).collect();
                if let Some(to) = ctl::least_loaded(topology, &exclude, &staying) {
                    return Some(Step::Repair { group: *group, from, to });
                }
            }
        }
    }
    for (node, report) in &view.nodes {
        let Ok(status) = &report.status else { continue };
        for local in &status.groups {
            let group = GroupId(local.group_id);
            let Some((_, leader)) = view.leader_status(group) else { continue };
            let counted = leader.voters.contains(node) || leader.learners.contains(node);
            let recorded = topology.groups.get(&group).is_some_and(|g| g.replicas.contains(node));
            // A replica that still believes it votes (it missed its removal), not an empty
            // one waiting to be added as a learner.
            if !counted && !recorded && local.voters.contains(node) {
                return Some(Step::Tombstone { group, node: *node });
            }
        }
    }
    if unreachable.is_empty() && !topology.repair_paused {
        if let Some((group, from, to)) = spread_move(view) {
            return Some(Step::Spread { group, from, to });
        }
    }
    if unreachable.is_empty() {
        if let Some((group, to)) = plan_leader_move(view) {
            return Some(Step::Lead { group, to });
        }
    }
    None
}

/// The first group (meta first, then by id) with two replicas in one zone that a node in a
/// zone the group does not use could relieve: `(group, from, to)`, where `from` is one of the
/// doubled replicas, not the group's leader, and `to` an active node outside the group whose
/// zone is new to it, holding the fewest replicas ([`ctl::least_loaded`]). Nodes without a
/// zone neither count as doubled nor receive a spread (zones are opt-in). Only groups with a
/// leader whose voters are exactly the recorded replicas (no change in progress).
pub fn spread_move(view: &ClusterView) -> Option<(GroupId, u64, u64)> {
    let topology = &view.topology;
    let zone = |id: &u64| topology.nodes.get(id).and_then(|n| n.zone.as_deref());
    let mut groups: Vec<_> = topology.groups.iter().collect();
    groups.sort_by_key(|(id, _)| (**id != META_GROUP, **id));
    for (group, info) in groups {
        let Some((leader, status)) = view.leader_status(*group) else { continue };
        let voters: BTreeSet<u64> = status.voters.iter().copied().collect();
        if voters != info.replicas || !status.learners.is_empty() {
            continue;
        }
        let mut by_zone: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for replica in &info.replicas {
            if let Some(z) = zone(replica) {
                by_zone.entry(z).or_default().push(*replica);
            }
        }
        let Some(doubled) = by_zone.values().find(|replicas| replicas.len() > 1) else {
            continue;
        };
        let Some(from) = doubled.iter().copied().find(|r| *r != leader) else { continue };
        let staying: BTreeSet<u64> = info.replicas.iter().copied().filter(|r| *r != from).collect();
        let Some(to) = ctl::least_loaded(topology, &info.replicas, &staying) else { continue };
        if zone(&to).is_some_and(|z| !by_zone.contains_key(z)) {
            return Some((*group, from, to));
        }
    }
    None
}

/// Runs the loop until `host.shutdown` fires. Acts only while this node leads the meta group.
pub async fn run(host: Host, settings: Settings) {
    // Every step kind and outcome is exported from the start (at 0), also where the loop is
    // off, so the dashboard's rates have a series before the first step.
    for kind in ["repair", "tombstone", "spread", "lead"] {
        for outcome in ["ok", "failed"] {
            host.metrics.placement_steps.with_label_values(&[kind, outcome]);
        }
    }
    if settings.interval.is_zero() {
        return;
    }
    let node_id = host.config.id;
    let admin = Admin::new(vec![host.config.advertised()], |line| {
        tracing::info!(target: "marquee::placement", "{line}");
    });
    let mut unreachable = Unreachable::new();
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = host.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let leads_meta = host
            .router
            .get(META_GROUP)
            .is_some_and(|meta| meta.raft.metrics().borrow().current_leader == Some(node_id));
        if !leads_meta {
            unreachable.clear();
            continue;
        }
        let step = match admin.view().await {
            Ok(view) => plan(&view, &mut unreachable, Instant::now(), settings.repair_after),
            Err(e) => {
                tracing::debug!(error = %e, "placement: cluster view unavailable");
                continue;
            }
        };
        host.metrics.placement_unreachable.set(i64::try_from(unreachable.len()).unwrap_or(0));
        let Some(step) = step else { continue };
        tracing::info!(?step, "placement step");
        let (kind, result) = match step {
            Step::Repair { group, from, to } => {
                ("repair", admin.move_replica(group, from, to).await.and(Ok(())))
            }
            Step::Tombstone { group, node } => {
                ("tombstone", admin.delete_replica(node, group, true).await)
            }
            Step::Spread { group, from, to } => {
                ("spread", admin.move_replica(group, from, to).await.and(Ok(())))
            }
            Step::Lead { group, to } => ("lead", admin.rebalance_leader(group, to).await),
        };
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        host.metrics.placement_steps.with_label_values(&[kind, outcome]).inc();
        if let Err(e) = result {
            log_failure(kind, &e);
        }
    }
}

/// Before the node stops: hands every leadership it holds to another voter
/// (`ctl::Admin::hand_off`), waiting at most `within` (0: not at all).
pub async fn hand_off(host: &Host, within: Duration) {
    let led = host
        .router
        .all()
        .iter()
        .filter(|group| group.raft.metrics().borrow().current_leader == Some(host.config.id))
        .count();
    if within.is_zero() || led == 0 {
        return;
    }
    tracing::info!(groups = led, "handing leadership to other voters before stopping");
    let admin = Admin::new(vec![host.config.advertised()], |line| {
        tracing::info!(target: "marquee::placement", "{line}");
    });
    match tokio::time::timeout(within, admin.hand_off(host.config.id)).await {
        Ok(Ok(moved)) => tracing::info!(moved, of = led, "leadership handed off"),
        Ok(Err(e)) => tracing::warn!(error = %e, "leadership hand-off failed; stopping anyway"),
        Err(_) => tracing::warn!(?within, "leadership hand-off timed out; stopping anyway"),
    }
}

fn log_failure(kind: &str, error: &CtlError) {
    tracing::warn!(step = kind, error = %error, "placement step failed; retried next tick");
}

#[cfg(test)]
mod tests {
    use ctl::NodeReport;
    use proto::meta::{GroupInfo, GroupKind, NodeInfo, NodeState, Topology};
    use proto::pb::{GroupStatus, StatusReply};

    use super::*;

    /// A view where every node answers, `groups` are `(id, replicas, leader)` and node `i` is in
    /// `zones[i - 1]` (empty: no zone).
    fn view(zones: &[&str], groups: &[(u64, &[u64], u64)]) -> ClusterView {
        let nodes: BTreeMap<u64, NodeInfo> = (1..=zones.len() as u64)
            .map(|id| {
                let zone = zones[usize::try_from(id - 1).unwrap()];
                let zone = (!zone.is_empty()).then(|| zone.to_owned());
                (id, NodeInfo { addr: format!("n{id}"), state: NodeState::Active, zone })
            })
            .collect();
        let topology = Topology {
            version: 1,
            nodes: nodes.clone(),
            groups: groups
                .iter()
                .map(|(id, replicas, _)| {
                    let kind = if *id == 0 { GroupKind::Meta } else { GroupKind::Inventory };
                    let info = GroupInfo {
                        kind,
                        replicas: replicas.iter().copied().collect(),
                        shows: 0,
                        seats: 0,
                    };
                    (GroupId(*id), info)
                })
                .collect(),
            repair_paused: false,
        };
        let reports = nodes
            .keys()
            .map(|node| {
                let hosted = groups
                    .iter()
                    .filter(|(_, replicas, _)| replicas.contains(node))
                    .map(|(id, replicas, leader)| GroupStatus {
                        group_id: *id,
                        leader_id: *leader,
                        is_leader: leader == node,
                        voters: replicas.to_vec(),
                        ..GroupStatus::default()
                    })
                    .collect();
                let status =
                    StatusReply { node_id: *node, grpc_addr: format!("n{node}"), groups: hosted };
                (*node, NodeReport { node_id: *node, addr: format!("n{node}"), status: Ok(status) })
            })
            .collect();
        ClusterView { topology, nodes: reports }
    }

    #[test]
    fn a_group_with_two_replicas_in_one_zone_moves_one_to_an_unused_zone() {
        // Shard 3 of `initial_placement` on 5 nodes, zones a b c a c: nodes 3 and 5 share c.
        let v = view(&["a", "b", "c", "a", "c"], &[(1, &[1, 2, 3], 1), (3, &[3, 4, 5], 3)]);
        // Not the leader (3): node 5 leaves, for node 2, the only node in zone b.
        assert_eq!(spread_move(&v), Some((GroupId(3), 5, 2)));
        let mut unreachable = Unreachable::new();
        let step = plan(&v, &mut unreachable, Instant::now(), Duration::from_secs(300));
        assert_eq!(step, Some(Step::Spread { group: GroupId(3), from: 5, to: 2 }));
    }

    #[test]
    fn spread_settles_and_never_moves_without_a_better_zone() {
        // Every group spans three zones: nothing to do.
        let spread = view(&["a", "b", "c", "a"], &[(0, &[1, 2, 3], 1), (1, &[2, 3, 4], 2)]);
        assert_eq!(spread_move(&spread), None);
        // Two zones for three replicas: no node outside the group's zones exists.
        let two = view(&["a", "b", "a", "b"], &[(1, &[1, 2, 3], 1)]);
        assert_eq!(spread_move(&two), None);
        // No zones at all (the default): nothing moves.
        let none = view(&["", "", "", ""], &[(1, &[1, 2, 3], 1)]);
        assert_eq!(spread_move(&none), None);
        // A node without a zone does not receive a spread.
        let unzoned = view(&["a", "a", "b", ""], &[(1, &[1, 2, 3], 1)]);
        assert_eq!(spread_move(&unzoned), None);
    }

    #[test]
    fn spread_waits_for_pauses_changes_in_progress_and_unreachable_nodes() {
        let mut v = view(&["a", "b", "c", "a", "c"], &[(3, &[3, 4, 5], 3)]);
        v.topology.repair_paused = true;
        let mut unreachable = Unreachable::new();
        let step = plan(&v, &mut unreachable, Instant::now(), Duration::from_secs(300));
        assert!(!matches!(step, Some(Step::Spread { .. })), "{step:?}");
        v.topology.repair_paused = false;
        // A learner being added: the group is changing already.
        if let Ok(status) = &mut v.nodes.get_mut(&3).unwrap().status {
            status.groups[0].learners = vec![2];
        }
        assert_eq!(spread_move(&v), None);
        // A node down: repair comes first, spreading waits.
        let mut down = view(&["a", "b", "c", "a", "c"], &[(3, &[3, 4, 5], 3)]);
        down.nodes.get_mut(&1).unwrap().status = Err("unreachable".into());
        let step = plan(&down, &mut unreachable, Instant::now(), Duration::from_secs(300));
        assert!(!matches!(step, Some(Step::Spread { .. })), "{step:?}");
    }

    #[test]
    fn the_leader_of_a_doubled_zone_stays() {
        // Nodes 1 and 4 share zone a and node 1 leads: node 4 is the one moved.
        let v = view(&["a", "b", "c", "a", "d"], &[(1, &[1, 2, 4], 1)]);
        assert_eq!(spread_move(&v), Some((GroupId(1), 4, 3)));
    }
}
