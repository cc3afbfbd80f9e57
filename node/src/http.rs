//! The node's HTTP endpoints: `/metrics` (Prometheus), `/healthz` (process up) and `/readyz`
//! (every local replica knows a leader, and the storage has not failed). Gauges read from Raft,
//! the writer and the disk are set when scraped.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router as HttpRouter;
use prometheus::{Encoder, TextEncoder};
use raft_store::Db;

use crate::metrics::{sync_counter, Metrics, RAFT_FIELDS};
use crate::router::Router;
use crate::service::group_status;

/// State of the HTTP endpoints.
#[derive(Clone)]
pub struct HttpState {
    /// Local replicas.
    pub router: Router,
    /// Metrics.
    pub metrics: Metrics,
    /// Database (writer stats).
    pub db: Db,
    /// This node's id.
    pub node_id: u64,
    /// Its data directory (the disk gauges).
    pub data_dir: std::path::PathBuf,
}

/// The HTTP routes.
pub fn routes(state: HttpState) -> HttpRouter {
    HttpRouter::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> Result<String, StatusCode> {
    let m = &state.metrics;
    for group in state.router.all() {
        let status = group_status(&group, state.node_id, false);
        let label = group.id.to_string();
        let values = [
            status.term,
            u64::from(status.is_leader),
            status.leader_id,
            status.last_log_index,
            status.applied_index,
            status.snapshot_index,
            status.purged_index,
            replication_lag(&status),
            u64::from(group.version_of_replicas()),
        ];
        for (field, value) in RAFT_FIELDS.into_iter().zip(values) {
            m.raft
                .with_label_values(&[label.as_str(), field])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }
    let stats = state.db.stats();
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    sync_counter(&m.writer_batches, load(&stats.batches));
    sync_counter(&m.writer_unsynced_batches, load(&stats.unsynced_batches));
    sync_counter(&m.writer_writes, load(&stats.writes));
    sync_counter(&m.writer_bytes, load(&stats.bytes));
    sync_counter(&m.storage_failed_writes, load(&stats.failed_writes));
    m.storage_failed.set(i64::from(state.db.failure().is_some()));
    // A failed statvfs leaves the last values: the gauges go stale rather than wrong.
    if let Ok(disk) = fs4::statvfs(&state.data_dir) {
        m.disk_available.set(i64::try_from(disk.available_space()).unwrap_or(i64::MAX));
        m.disk_size.set(i64::try_from(disk.total_space()).unwrap_or(i64::MAX));
    }
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&m.registry.gather(), &mut buffer)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    String::from_utf8(buffer).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

/// On the leader, how many entries its slowest replica has not matched yet (0 on followers,
/// which do not know).
fn replication_lag(status: &proto::pb::GroupStatus) -> u64 {
    if !status.is_leader {
        return 0;
    }
    status.matched.values().map(|m| status.last_log_index.saturating_sub(*m)).max().unwrap_or(0)
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, String) {
    if let Some(failure) = state.db.failure() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage failed ({failure}): acknowledging nothing until restarted"),
        );
    }
    for group in state.router.all() {
        if group.raft.metrics().borrow().current_leader.is_none() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("group {} has no known leader", group.id),
            );
        }
    }
    (StatusCode::OK, "ready".into())
}
