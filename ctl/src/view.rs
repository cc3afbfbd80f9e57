//! Renders a [`ClusterView`] for people (tables) and for scripts (JSON).

use std::fmt::Write as _;

use proto::meta::GroupKind;
use proto::GroupId;
use serde_json::{json, Value};

use crate::ClusterView;

/// What the placement loop sees and may do: whether self-repair is paused, which registered
/// nodes do not answer, and which groups keep a replica on one of them (the ones it will
/// re-create elsewhere once the node has been unreachable for `--repair-after-s`).
pub fn placement_summary(view: &ClusterView) -> String {
    let t = &view.topology;
    let unreachable: Vec<u64> =
        view.nodes.iter().filter(|(_, r)| r.status.is_err()).map(|(id, _)| *id).collect();
    let degraded: Vec<String> = t
        .groups
        .iter()
        .filter(|(_, g)| g.replicas.iter().any(|r| unreachable.contains(r)))
        .map(|(id, _)| id.0.to_string())
        .collect();
    let repair = if t.repair_paused { "PAUSED (marqueectl repair resume)" } else { "active" };
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(",")
        }
    };
    let unreachable: Vec<String> = unreachable.iter().map(u64::to_string).collect();
    format!(
        "self-repair {repair}; unreachable nodes: {}; groups with a replica on them: {}",
        list(&unreachable),
        list(&degraded)
    )
}

/// Two tables, nodes then groups, as `marqueectl status` prints them.
pub fn render(view: &ClusterView) -> String {
    let t = &view.topology;
    let mut out = String::new();
    let _ = writeln!(out, "map version {}", t.version);
    let _ = writeln!(out, "{}", placement_summary(view));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<5} {:<22} {:<9} {:<11} {:>8} {:>7}  ZONE",
        "NODE", "ADDRESS", "STATE", "REACHABLE", "REPLICAS", "LEADS"
    );
    for (id, node) in &t.nodes {
        let replicas = t.groups.values().filter(|g| g.replicas.contains(id)).count();
        let leads = t
            .groups
            .keys()
            .filter(|g| view.leader_status(**g).is_some_and(|(l, _)| l == *id))
            .count();
        let reachable = match view.nodes.get(id).map(|r| &r.status) {
            Some(Ok(_)) => "yes".to_owned(),
            Some(Err(_)) => "NO".to_owned(),
            None => "-".to_owned(),
        };
        let state = serde_json::to_value(node.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<5} {:<22} {:<9} {:<11} {:>8} {:>7}  {}",
            id,
            node.addr,
            state,
            reachable,
            replicas,
            leads,
            node.zone.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<6} {:<9} {:>6} {:<12} {:>7} {:>6} {:>9} {:>9} {:>6}  REPLICAS (applied)",
        "GROUP", "KIND", "SHOWS", "VOTERS", "LEADER", "TERM", "LAST_LOG", "APPLIED", "LAG"
    );
    for (group, info) in &t.groups {
        let kind = match info.kind {
            GroupKind::Meta => "meta",
            GroupKind::Inventory => "inventory",
        };
        let leader = view.leader_status(*group);
        let voters = leader.map_or_else(
            || join(info.replicas.iter()),
            |(_, s)| join(s.voters.iter()) + &learners(&s.learners),
        );
        let (leader_id, term, last_log, applied, lag) = match leader {
            Some((id, s)) => {
                (id.to_string(), s.term.to_string(), s.last_log_index, s.applied_index, max_lag(s))
            }
            None => ("NONE".into(), "-".into(), 0, 0, 0),
        };
        let replicas: Vec<String> = info
            .replicas
            .iter()
            .map(|id| match view.replica_status(*id, *group) {
                Some(s) => format!("{id}:{}", s.applied_index),
                None => format!("{id}:?"),
            })
            .collect();
        let _ = writeln!(
            out,
            "{:<6} {:<9} {:>6} {:<12} {:>7} {:>6} {:>9} {:>9} {:>6}  {}",
            group.0,
            kind,
            info.shows,
            voters,
            leader_id,
            term,
            last_log,
            applied,
            lag,
            replicas.join(" ")
        );
    }
    out
}

fn join<'a>(ids: impl Iterator<Item = &'a u64>) -> String {
    ids.map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn learners(ids: &[u64]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!("+L{}", join(ids.iter()))
    }
}

/// Largest gap between the leader's last log index and a replica's matched index.
fn max_lag(status: &proto::pb::GroupStatus) -> u64 {
    status.matched.values().map(|m| status.last_log_index.saturating_sub(*m)).max().unwrap_or(0)
}

/// The same information as JSON.
pub fn to_json(view: &ClusterView) -> Value {
    let t = &view.topology;
    let groups: Vec<Value> = t
        .groups
        .iter()
        .map(|(group, info)| {
            let leader = view.leader_status(*group);
            json!({
                "group": group.0,
                "kind": info.kind,
                "shows": info.shows,
                "seats": info.seats,
                "replicas": info.replicas,
                "leader": leader.map(|(id, _)| id),
                "term": leader.map(|(_, s)| s.term),
                "voters": leader.map(|(_, s)| s.voters.clone()),
                "learners": leader.map(|(_, s)| s.learners.clone()),
                "last_log_index": leader.map(|(_, s)| s.last_log_index),
                "lag": leader.map(|(_, s)| max_lag(s)),
                "applied": info.replicas.iter().map(|id| (id.to_string(), json!(view.replica_status(*id, *group).map(|s| s.applied_index)))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    let nodes: Vec<Value> = t
        .nodes
        .iter()
        .map(|(id, node)| {
            let report = view.nodes.get(id);
            json!({
                "node": id,
                "addr": node.addr,
                "zone": node.zone,
                "state": node.state,
                "reachable": report.is_some_and(|r| r.status.is_ok()),
                "error": report.and_then(|r| r.status.as_ref().err().cloned()),
                "replicas": t.groups.iter().filter(|(_, g)| g.replicas.contains(id)).map(|(g, _)| g.0).collect::<Vec<_>>(),
                "leads": t.groups.keys().filter(|g| view.leader_status(**g).is_some_and(|(l, _)| l == *id)).map(|g: &GroupId| g.0).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "map_version": t.version,
        "repair_paused": t.repair_paused,
        "placement": placement_summary(view),
        "nodes": nodes,
        "groups": groups,
    })
}
