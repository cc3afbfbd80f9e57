//! Background jobs of a node: the expiry ticker and the join client.

use std::sync::Arc;
use std::time::Duration;

use client::{ChannelConfig, ClusterClient, RetryPolicy};
use proto::command::{Command, Proposal};
use tokio_util::sync::CancellationToken;

use crate::group::{wall_clock_ms, Group};

/// Time allowed for one `ExpireDue` proposal.
const EXPIRE_PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A joining node tries once a second, 120 times, before giving up (a known leader's address
/// is tried at once); registering is idempotent, so an unknown outcome is retried too.
const JOIN_POLICY: RetryPolicy =
    RetryPolicy { retry_unknown: true, ..RetryPolicy::paced(120, Duration::from_secs(1)) };

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
        // Due by log time (the term's clock, docs/reliability.md), not by this node's wall
        // clock: a fast wall clock would only propose expiries that free nothing yet.
        let now_ms = group.log_now_ms().unwrap_or_else(wall_clock_ms);
        if due.is_none_or(|at| at > now_ms) {
            continue;
        }
        let entry = match group
            .entry(vec![Proposal { request_id: None, command: Command::ExpireDue }])
            .await
        {
            Ok(entry) => entry,
            Err(e) => {
                tracing::debug!(group = %group.id, error = %e, "no expire proposal");
                continue;
            }
        };
        match tokio::time::timeout(EXPIRE_PROPOSE_TIMEOUT, group.raft.client_write(entry)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(group = %group.id, error = %e, "expire proposal not applied")
            }
            Err(_) => tracing::warn!(group = %group.id, "expire proposal timed out"),
        }
    }
}

/// Asks the meta group (through `seed`, following leader hints) to register this node, in
/// `zone` if it has one. Retries once a second, bounded.
pub async fn join(
    seed: String,
    node_id: u64,
    advertised: String,
    zone: Option<String>,
    cancel: CancellationToken,
) {
    let cluster = ClusterClient::with_policy(vec![seed], JOIN_POLICY, ChannelConfig::default());
    tokio::select! {
        () = cancel.cancelled() => {}
        joined = cluster.join(node_id, &advertised, zone.as_deref()) => match joined {
            Ok(()) => tracing::info!("registered in the cluster"),
            Err(e) => tracing::error!(
                error = %e,
                "gave up joining the cluster after {} attempts",
                JOIN_POLICY.attempts_max
            ),
        },
    }
}
