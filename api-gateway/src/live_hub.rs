//! One shard stream per watched show per gateway, shared by every live seat-map client of it.
//!
//! Why: a stream per WebSocket client would cost the shard's node one `WatchShow` stream, and
//! one full seat map per change, for every client watching — on a release day, thousands for
//! the same show. The hub keeps a single stream per show and publishes the newest seat map on a
//! `watch` channel. Each client diffs that map against the one it last sent, so the protocol is
//! unchanged, and a client that falls behind skips straight to the newest map (versions fold,
//! as the protocol allows) instead of queueing.
//!
//! The stream follows the shard through leader changes and node failures: when it breaks, it
//! is reopened on another replica after the last version seen. After
//! [`REOPEN_ATTEMPTS`] failures in a row the feed reports [`FeedState::Failed`] and its clients
//! close with 1011. The stream stops when the show's last client leaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use proto::command::QueryResult;
use proto::ids::ShowId;
use proto::inventory::SeatMap;
use proto::pb::query_reply;
use proto::{codec, GroupId};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use client::ClusterClient;

/// Attempts to reopen a show's stream before its clients are told it failed.
pub const REOPEN_ATTEMPTS: u32 = 40;

/// What a show's feed last published.
#[derive(Debug, Clone)]
pub enum FeedState {
    /// The newest seat map seen.
    Map(Arc<SeatMap>),
    /// The shard could not be followed; clients should close (1011).
    Failed,
}

/// One show's shared stream; it stops when the last [`Subscription`] is dropped.
struct Feed {
    rx: watch::Receiver<FeedState>,
    _stop: DropGuard,
}

/// A client's handle on a show's feed.
pub struct Subscription {
    _feed: Arc<Feed>,
    /// The newest state; `changed()` wakes on every publish.
    pub rx: watch::Receiver<FeedState>,
}

/// The gateway's live feeds, by show.
#[derive(Default)]
pub struct LiveHub {
    feeds: Mutex<HashMap<ShowId, Weak<Feed>>>,
    /// Shard streams currently followed (one per watched show).
    streams: Arc<AtomicUsize>,
}

impl std::fmt::Debug for LiveHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveHub").field("streams", &self.streams()).finish_non_exhaustive()
    }
}

impl LiveHub {
    /// Shard streams open now.
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Subscribes to `show`'s feed, starting one (from `snapshot`'s version) if none is
    /// running or the running one has failed.
    pub fn subscribe(
        &self,
        cluster: &ClusterClient,
        group: GroupId,
        snapshot: &SeatMap,
    ) -> Subscription {
        let show = snapshot.show_id;
        let mut feeds = self.feeds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        feeds.retain(|_, feed| feed.strong_count() > 0);
        let running = feeds
            .get(&show)
            .and_then(Weak::upgrade)
            .filter(|feed| !matches!(*feed.rx.borrow(), FeedState::Failed));
        let feed = running.unwrap_or_else(|| {
            let (tx, rx) = watch::channel(FeedState::Map(Arc::new(snapshot.clone())));
            let stop = CancellationToken::new();
            let streams = Arc::clone(&self.streams);
            streams.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(follow(
                cluster.clone(),
                group,
                show,
                snapshot.version,
                tx,
                stop.clone(),
                streams,
            ));
            let feed = Arc::new(Feed { rx, _stop: stop.drop_guard() });
            feeds.insert(show, Arc::downgrade(&feed));
            feed
        });
        Subscription { rx: feed.rx.clone(), _feed: feed }
    }
}

/// Decrements the open-stream count when a feed's task ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Follows `show` on its shard from `seen`, publishing each newer map, until `stop`.
async fn follow(
    cluster: ClusterClient,
    group: GroupId,
    show: ShowId,
    mut seen: u64,
    tx: watch::Sender<FeedState>,
    stop: CancellationToken,
    streams: Arc<AtomicUsize>,
) {
    let _open = Open(streams);
    let mut failures = 0;
    loop {
        let opened = tokio::select! {
            () = stop.cancelled() => return,
            opened = cluster.watch_show(group, show, seen) => opened,
        };
        match opened {
            Ok(mut stream) => loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    message = stream.message() => message,
                };
                let map = match message {
                    Ok(Some(reply)) => match reply.result {
                        Some(query_reply::Result::Answer(bytes)) => {
                            match codec::decode::<QueryResult>(&bytes) {
                                Ok(QueryResult::SeatMap { seat_map }) => seat_map,
                                _ => break,
                            }
                        }
                        _ => break,
                    },
                    _ => break,
                };
                failures = 0;
                if map.version > seen {
                    seen = map.version;
                    tx.send_replace(FeedState::Map(Arc::new(map)));
                }
            },
            Err(e) => tracing::debug!(show = show.0, error = %e, "live stream did not open"),
        }
        // The stream broke or did not open (node down, replica moved): reopen after `seen`.
        failures += 1;
        if failures >= REOPEN_ATTEMPTS {
            tracing::warn!(show = show.0, "live seat map gave up following the shard");
            tx.send_replace(FeedState::Failed);
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
