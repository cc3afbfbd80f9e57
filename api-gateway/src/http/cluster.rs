//! `GET /v1/admin/cluster`: what the cluster console shows (admins only, read-only): the
//! meta group's map, each node's reachability and replicas, each group's leader, term, indexes
//! and lag (the same facts as `marqueectl status`, docs/operations.md), and this gateway's
//! request totals and latency histogram, from which the console computes rates between polls.
//!
//! Every registered node is asked for its status at once with a short deadline, so a dead node
//! shows as unreachable in about a second instead of stalling the page.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use proto::meta::{GroupKind, NodeState};
use proto::pb::{GroupStatus, StatusReply};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// How long one node may take to report before it counts as unreachable.
const NODE_STATUS_TIMEOUT: Duration = Duration::from_millis(1500);

/// Cluster console routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(cluster))
}

/// One node as the console shows it.
#[derive(Debug, Serialize, ToSchema)]
struct NodeBody {
    node_id: u64,
    /// gRPC address.
    addr: String,
    /// `active`, `draining` or `removed` (the meta group's registry).
    state: String,
    /// Whether it answered a status request just now.
    reachable: bool,
    /// Why not, when it did not.
    error: Option<String>,
    /// Groups it hosts a replica of (the map).
    replicas: Vec<u64>,
    /// Groups it leads (its own report).
    leads: Vec<u64>,
}

/// One Raft group as the console shows it.
#[derive(Debug, Serialize, ToSchema)]
struct GroupBody {
    group_id: u64,
    /// `meta` or `inventory`.
    kind: String,
    /// Shows placed on it (inventory shards).
    shows: u64,
    /// Seats placed on it.
    seats: u64,
    /// Nodes with a replica (the map).
    replicas: Vec<u64>,
    /// Its leader, if a reachable node leads it.
    leader: Option<u64>,
    /// The leader's term.
    term: Option<u64>,
    /// The leader's last log index.
    last_log_index: Option<u64>,
    /// Applied index per replica (node id -> index; absent: the node did not answer).
    #[schema(value_type = Object)]
    applied: BTreeMap<String, Option<u64>>,
    /// Largest gap between the leader's log and a replica's matched index.
    lag: Option<u64>,
}

/// This gateway's request counters since it started.
#[derive(Debug, Default, Serialize, ToSchema)]
struct GatewayBody {
    /// HTTP requests answered.
    requests_total: u64,
    /// Of which answered 5xx.
    server_errors_total: u64,
    /// Requests in the latency histogram.
    latency_count: u64,
    /// Sum of their latencies, seconds.
    latency_sum_s: f64,
    /// Cumulative histogram: `[upper bound in seconds, requests at or below it]`.
    latency_buckets: Vec<(f64, u64)>,
}

/// The cluster console's view.
#[derive(Debug, Serialize, ToSchema)]
struct ClusterBody {
    /// Version of the meta group's map.
    map_version: u64,
    nodes: Vec<NodeBody>,
    groups: Vec<GroupBody>,
    /// This gateway's counters.
    gateway: GatewayBody,
}

fn max_lag(status: &GroupStatus) -> u64 {
    status.matched.values().map(|m| status.last_log_index.saturating_sub(*m)).max().unwrap_or(0)
}

/// Sums this gateway's request counter and latency histogram over every route.
fn gateway_stats(state: &AppState) -> GatewayBody {
    let mut body = GatewayBody::default();
    let mut buckets: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    for family in state.metrics.registry.gather() {
        match family.name() {
            "marquee_gateway_requests_total" => {
                for metric in family.get_metric() {
                    let count = metric.get_counter().get_value() as u64;
                    body.requests_total += count;
                    let status = metric.get_label().iter().find(|l| l.name() == "status");
                    if status.is_some_and(|l| l.value().starts_with('5')) {
                        body.server_errors_total += count;
                    }
                }
            }
            "marquee_gateway_request_latency_seconds" => {
                for metric in family.get_metric() {
                    let histogram = metric.get_histogram();
                    body.latency_count += histogram.get_sample_count();
                    body.latency_sum_s += histogram.get_sample_sum();
                    for bucket in histogram.get_bucket() {
                        let entry = buckets
                            .entry(bucket.upper_bound().to_bits())
                            .or_insert((bucket.upper_bound(), 0));
                        entry.1 += bucket.cumulative_count();
                    }
                }
            }
            _ => {}
        }
    }
    let mut buckets: Vec<(f64, u64)> = buckets.into_values().collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    body.latency_buckets = buckets;
    body
}

/// The cluster: nodes, groups, and this gateway's request counters (admins).
#[utoipa::path(get, path = "/v1/admin/cluster", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Nodes, groups and gateway counters", body = ClusterBody),
        (status = 401, description = "Not signed in", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The meta group is unavailable", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
async fn cluster(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
) -> Result<Json<ClusterBody>, ApiError> {
    user.require_admin()?;
    let topology = state.shards.topology().await?;
    let mut asks = tokio::task::JoinSet::new();
    for (id, node) in &topology.nodes {
        if node.state == NodeState::Removed {
            continue;
        }
        let (state, id, addr) = (Arc::clone(&state), *id, node.addr.clone());
        asks.spawn(async move { (id, state.shards.node_status(&addr, NODE_STATUS_TIMEOUT).await) });
    }
    let mut reports: BTreeMap<u64, Result<StatusReply, String>> = BTreeMap::new();
    while let Some(done) = asks.join_next().await {
        let (id, report) = done.map_err(|e| ApiError::Internal(e.to_string()))?;
        reports.insert(id, report);
    }
    let status_of = |node: u64, group: u64| -> Option<&GroupStatus> {
        reports.get(&node)?.as_ref().ok()?.groups.iter().find(|g| g.group_id == group)
    };
    let leader_of = |group: u64| -> Option<(u64, &GroupStatus)> {
        reports.iter().find_map(|(id, report)| {
            let g =
                report.as_ref().ok()?.groups.iter().find(|g| g.group_id == group && g.is_leader)?;
            Some((*id, g))
        })
    };
    let nodes = topology
        .nodes
        .iter()
        .filter(|(_, n)| n.state != NodeState::Removed)
        .map(|(id, node)| {
            let report = reports.get(id);
            NodeBody {
                node_id: *id,
                addr: node.addr.clone(),
                state: match node.state {
                    NodeState::Active => "active",
                    NodeState::Draining => "draining",
                    NodeState::Removed => "removed",
                }
                .to_owned(),
                reachable: report.is_some_and(Result::is_ok),
                error: report.and_then(|r| r.as_ref().err().cloned()),
                replicas: topology
                    .groups
                    .iter()
                    .filter(|(_, g)| g.replicas.contains(id))
                    .map(|(g, _)| g.0)
                    .collect(),
                leads: report
                    .and_then(|r| r.as_ref().ok())
                    .map(|r| r.groups.iter().filter(|g| g.is_leader).map(|g| g.group_id).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    let groups = topology
        .groups
        .iter()
        .map(|(group, info)| {
            let leader = leader_of(group.0);
            GroupBody {
                group_id: group.0,
                kind: match info.kind {
                    GroupKind::Meta => "meta",
                    GroupKind::Inventory => "inventory",
                }
                .to_owned(),
                shows: info.shows,
                seats: info.seats,
                replicas: info.replicas.iter().copied().collect(),
                leader: leader.map(|(id, _)| id),
                term: leader.map(|(_, s)| s.term),
                last_log_index: leader.map(|(_, s)| s.last_log_index),
                applied: info
                    .replicas
                    .iter()
                    .map(|id| (id.to_string(), status_of(*id, group.0).map(|s| s.applied_index)))
                    .collect(),
                lag: leader.map(|(_, s)| max_lag(s)),
            }
        })
        .collect();
    Ok(Json(ClusterBody {
        map_version: topology.version,
        nodes,
        groups,
        gateway: gateway_stats(&state),
    }))
}
