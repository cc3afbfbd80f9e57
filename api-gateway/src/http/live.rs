//! `GET /v1/shows/{show_id}/live`: the live seat map over WebSocket.
//!
//! The gateway sends a `snapshot` (the linearizable seat map with its version), then `delta`
//! messages whenever the show changes: `{type: "delta", from_version, to_version, changes:
//! [{seat_id, status}], available, cancelled}`. Each delta's `from_version` is the previous
//! message's version, so a client applies them in order and never misses or repeats a change;
//! several versions may be folded into one delta (a seat held and released between two reads
//! does not appear).
//!
//! Deltas are computed here: the shard streams full seat maps (`WatchShow`) to the gateway's
//! [`LiveHub`](crate::live_hub), one stream per watched show whatever the number of
//! clients, and each connection diffs the newest map against the map it last sent. If the
//! stream breaks (its node died, the leader moved) the hub reopens it on another replica after
//! the same version, and the next delta covers whatever happened in between: nothing lost,
//! nothing twice. A reconnecting client gets a fresh snapshot.
//!
//! Bounds: at most `--live-max-connections` per gateway (`503` beyond); one show per
//! connection; a client that does not read (a send blocked for `--live-send-timeout-ms`,
//! default 10 s) is closed with code **4008** ("slow consumer") — the gateway's memory for it
//! never grows, since only the last map is kept, and the kernel's is bounded by the socket's
//! send buffer (`--tcp-send-buffer`). The close frame itself may not reach a client whose
//! buffers are full: it then sees the connection end after the messages it had not read.
//! `marquee_gateway_live_closed_total{reason}` counts why connections ended.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use proto::command::Query as InvQuery;
use proto::command::QueryResult;
use proto::ids::ShowId;
use proto::inventory::SeatMap;
use proto::GroupId;
use serde_json::json;

use crate::error::ApiError;
use crate::live_hub::FeedState;
use crate::state::AppState;

/// Close code for a client too slow to read its updates.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code when the show's shard could not be followed (1011: internal error).
pub const CLOSE_UNAVAILABLE: u16 = 1011;

/// Decrements the live-connection count when the connection ends.
struct Slot(Arc<AppState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.live_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Live seat map of a show (WebSocket).
#[utoipa::path(get, path = "/v1/shows/{show_id}/live", tag = "booking",
    params(("show_id" = u64, Path, description = "The show")),
    responses(
        (status = 101, description = "Switching to WebSocket: a `snapshot` message, then `delta` messages (see docs/api.md)"),
        (status = 404, description = "No such show (answered before the upgrade is looked at)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 426, description = "Not a WebSocket upgrade request, or a malformed one (`upgrade-required`)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many live connections on this gateway", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub(super) async fn live(
    State(state): State<Arc<AppState>>,
    show_id: Result<Path<u64>, PathRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Path(show_id) = show_id.map_err(|_| ApiError::NotFound("show"))?;
    let show = ShowId(show_id);
    let group = state.shards.locate(show).await.map_err(|_| ApiError::NotFound("show"))?;
    let snapshot =
        match state.shards.query_group(group, &InvQuery::SeatMap { show_id: show }, true).await? {
            QueryResult::SeatMap { seat_map } => seat_map,
            _ => return Err(ApiError::NotFound("show")),
        };
    let upgrade = upgrade.map_err(|e| ApiError::UpgradeRequired(e.body_text()))?;
    let count = state.live_connections.fetch_add(1, Ordering::Relaxed);
    let slot = Slot(Arc::clone(&state));
    if count >= state.live_max_connections {
        return Err(ApiError::Unavailable("too many live seat-map connections".into()));
    }
    Ok(upgrade.on_upgrade(move |socket| serve(state, slot, socket, group, snapshot)))
}

fn seat_states(map: &SeatMap) -> impl Iterator<Item = (&str, proto::inventory::SeatStatus)> {
    map.rows.iter().flat_map(|r| r.seats.iter()).map(|s| (s.seat_id.0.as_str(), s.status))
}

/// The delta message from `old` to `new`, or `None` when no seat changed state.
fn delta(old: &SeatMap, new: &SeatMap) -> Option<serde_json::Value> {
    let before: std::collections::HashMap<&str, _> = seat_states(old).collect();
    let changes: Vec<serde_json::Value> = seat_states(new)
        .filter(|(id, status)| before.get(id) != Some(status))
        .map(|(id, status)| json!({"seat_id": id, "status": status}))
        .collect();
    (!changes.is_empty() || old.cancelled != new.cancelled).then(|| {
        json!({
            "type": "delta",
            "show_id": new.show_id,
            "from_version": old.version,
            "to_version": new.version,
            "changes": changes,
            "available": new.available,
            "cancelled": new.cancelled,
        })
    })
}

/// Sends one message, or fails if the client does not take it within `timeout`.
async fn send(
    socket: &mut WebSocket,
    message: &serde_json::Value,
    timeout: Duration,
) -> Result<(), u16> {
    match tokio::time::timeout(timeout, socket.send(Message::Text(message.to_string().into())))
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(0),
        Err(_) => Err(CLOSE_SLOW_CONSUMER),
    }
}

/// Counts why a connection ended.
fn ended(state: &AppState, reason: &str) {
    state.metrics.live_closed.with_label_values(&[reason]).inc();
}

async fn close(state: &AppState, mut socket: WebSocket, code: u16, reason: &str) {
    tracing::info!(code, reason, "closing a live seat-map connection");
    let frame = CloseFrame { code, reason: reason.to_owned().into() };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(Some(frame))))
        .await;
    drop(socket);
    ended(state, if code == CLOSE_SLOW_CONSUMER { "slow_consumer" } else { "unavailable" });
}

async fn serve(
    state: Arc<AppState>,
    _slot: Slot,
    mut socket: WebSocket,
    group: GroupId,
    snapshot: SeatMap,
) {
    let first = json!({"type": "snapshot", "seat_map": snapshot});
    match send(&mut socket, &first, state.live_send_timeout).await {
        Ok(()) => {}
        Err(CLOSE_SLOW_CONSUMER) => {
            return close(&state, socket, CLOSE_SLOW_CONSUMER, "slow consumer").await;
        }
        Err(_) => return ended(&state, "client"),
    }
    let mut feed = state.live_hub.subscribe(state.shards.cluster(), group, &snapshot);
    // `last`: the map the client has (the last one sent); `seen`: the newest version read.
    // The shared feed may trail this client's linearizable snapshot: older maps are skipped.
    let mut seen = snapshot.version;
    let mut last = Arc::new(snapshot);
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                // Clients only listen; anything but a close is ignored.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return ended(&state, "client"),
                Some(Ok(_)) => {}
            },
            changed = feed.rx.changed() => {
                let current = changed.ok().map(|()| feed.rx.borrow_and_update().clone());
                let map = match current {
                    Some(FeedState::Map(map)) => map,
                    Some(FeedState::Failed) | None => {
                        return close(&state, socket, CLOSE_UNAVAILABLE, "seat map unavailable")
                            .await;
                    }
                };
                if map.version <= seen {
                    continue;
                }
                seen = map.version;
                // No seat changed (a hold and its release folded together): nothing to send,
                // and the client's map stays `last`.
                let Some(message) = delta(&last, &map) else { continue };
                match send(&mut socket, &message, state.live_send_timeout).await {
                    Ok(()) => last = map,
                    Err(CLOSE_SLOW_CONSUMER) => {
                        return close(&state, socket, CLOSE_SLOW_CONSUMER, "slow consumer").await;
                    }
                    Err(_) => return ended(&state, "client"),
                }
            }
        }
    }
}
