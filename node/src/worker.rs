//! Background jobs of a node: the expiry ticker and the join client.

use std::sync::Arc;
use std::time::Duration;

use proto::command::{Command, Proposal};
use proto::pb::cluster_client::ClusterClient;
use proto::pb::{join_reply, JoinRequest};
use proto::META_GROUP;
use tokio_util::sync::CancellationToken;

use crate::group::Group;
use crate::transport::Channels;

/// Time allowed for one `ExpireDue` proposal.
const EXPIRE_PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts a joining node makes before giving up (one per second).
const JOIN_ATTEMPTS_MAX: u32 = 120;

/// On the leader, proposes `ExpireDue` whenever a hold or checkout deadline has passed, so
/// expired seats are freed within one tick even when no other command arrives.
///
/// # Cancel safety
/// Runs until the group's `cancel` fires; a proposal in flight at that moment may or may not commit, which
/// is harmless (`ExpireDue` is idempotent).
pub async fn expiry_ticker(group: Arc<Group>, node_id: u64, tick: Duration) {
    let cancel = group.cancel.clone();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        if group.raft.metrics().borrow().current_leader != Some(node_id) {
            continue;
        }
        let due = group.sm.read().state.next_deadline_ms();
        if due.is_none_or(|at| at > crate::group::wall_clock_ms()) {
            continue;
        }
        let entry = group.stamp(Proposal { request_id: None, command: Command::ExpireDue });
        match tokio::time::timeout(EXPIRE_PROPOSE_TIMEOUT, group.raft.client_write(entry)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(group = %group.id, error = %e, "expire proposal not applied")
            }
            Err(_) => tracing::warn!(group = %group.id, "expire proposal timed out"),
        }
    }
}

/// Asks the meta group (through `seed`, following leader hints) to register this node.
/// Retries once a second, bounded.
pub async fn join(
    channels: Channels,
    seed: String,
    node_id: u64,
    advertised: String,
    cancel: CancellationToken,
) {
    let mut target = seed.clone();
    for attempt in 1..=JOIN_ATTEMPTS_MAX {
        if cancel.is_cancelled() {
            return;
        }
        let request =
            JoinRequest { group_id: META_GROUP.0, node_id, grpc_addr: advertised.clone() };
        let result = match channels.get(&target) {
            Ok(channel) => {
                ClusterClient::new(channel).join(request).await.map(tonic::Response::into_inner)
            }
            Err(e) => Err(tonic::Status::invalid_argument(e.to_string())),
        };
        match result.map(|r| r.result) {
            Ok(Some(join_reply::Result::Ok(_))) => {
                tracing::info!("registered in the cluster");
                return;
            }
            Ok(Some(join_reply::Result::NotLeader(hint))) if !hint.leader_addr.is_empty() => {
                target = hint.leader_addr;
                continue;
            }
            Ok(_) => target = seed.clone(),
            Err(status) => {
                tracing::info!(attempt, %target, error = %status.message(), "join attempt failed");
                target = seed.clone();
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    tracing::error!("gave up joining the cluster after {JOIN_ATTEMPTS_MAX} attempts");
}
