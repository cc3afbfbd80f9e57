//! The gateway's cache of public catalog reads (cities, movie lists and pages, listings,
//! theaters, reviews), invalidated from the meta group's change feed.
//!
//! Why: browse pages are most of the traffic and change rarely; without a cache every one is a
//! Raft read. How it stays correct: a watcher task follows the change feed (`WatchCatalog`)
//! and empties the cache on every change; while the watcher is not connected (start-up, a
//! broken stream) the cache is bypassed entirely, so a missed invalidation can never leave a
//! stale entry behind. Entries also expire after [`TTL`] as a second line of defence. A cached
//! listing therefore trails the catalog by about the time a change takes to reach the watcher
//! (milliseconds), the same order as the follower reads these endpoints already allowed.
//! Show pages, seat maps and anything about accounts are never cached: they are linearizable,
//! so a cancelled show is never presented as bookable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proto::catalog::{CatalogQuery, CatalogQueryResult};
use proto::command::{Query, QueryResult};
use proto::meta::{MetaQuery, MetaQueryResult};
use proto::pb::query_reply;
use proto::{codec, META_GROUP};
use tokio_util::sync::CancellationToken;

use client::{ClusterClient, ClusterError};

/// Longest an entry is served, even without a change.
pub const TTL: Duration = Duration::from_secs(30);
/// Most entries kept (beyond it the cache is emptied and refills).
pub const ENTRIES_MAX: usize = 20_000;

/// The cache.
#[derive(Debug, Default)]
pub struct CatalogCache {
    entries: Mutex<HashMap<String, (Instant, CatalogQueryResult)>>,
    /// The feed watcher is connected: entries may be served.
    live: AtomicBool,
    /// Bumped by every invalidation: an answer read before one is not stored after it.
    generation: AtomicU64,
}

/// Taken before a read; the answer is cached only if no invalidation happened in between.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

/// Whether a catalog read may be cached (public, not per-user, not a feed read).
pub fn cacheable(query: &CatalogQuery) -> bool {
    matches!(
        query,
        CatalogQuery::Cities
            | CatalogQuery::Movies { .. }
            | CatalogQuery::Movie { .. }
            | CatalogQuery::MovieShows { .. }
            | CatalogQuery::Theaters { .. }
            | CatalogQuery::Theater { .. }
            | CatalogQuery::TheaterShows { .. }
            | CatalogQuery::Reviews { .. }
    )
}

impl CatalogCache {
    /// The cache key. A movie list's `now_ms` (what counts as upcoming) is left out, so the
    /// list is shared for up to [`TTL`]: a show that started within the last 30 s may still
    /// count as upcoming in a cached list.
    fn key(query: &CatalogQuery) -> Option<String> {
        if !cacheable(query) {
            return None;
        }
        let mut query = query.clone();
        if let CatalogQuery::Movies { filter, .. } = &mut query {
            filter.now_ms = 0;
        }
        serde_json::to_string(&query).ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, CatalogQueryResult)>> {
        self.entries.lock().expect("cache lock never poisoned")
    }

    /// A cached answer, if the cache is live and holds a fresh one.
    pub fn get(&self, query: &CatalogQuery) -> Option<CatalogQueryResult> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let key = Self::key(query)?;
        self.lock().get(&key).filter(|(at, _)| at.elapsed() < TTL).map(|(_, r)| r.clone())
    }

    /// Take before reading from the cluster.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Remembers an answer read under `ticket` (dropped if the cache was invalidated since:
    /// the answer could predate the change).
    pub fn put(&self, query: &CatalogQuery, result: &CatalogQueryResult, ticket: Ticket) {
        let Some(key) = Self::key(query) else { return };
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.lock();
        // Invalidation bumps the generation under this lock: checked here, it cannot race.
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if entries.len() >= ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), result.clone()));
    }

    /// Empties the cache.
    pub fn invalidate(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Turns serving on or off (off also empties it).
    fn set_live(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::Release);
        }
        self.invalidate();
        if live {
            self.live.store(true, Ordering::Release);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Follows the change feed until `stop`, emptying the cache on every change and keeping it
    /// off while not connected.
    pub async fn watch(&self, cluster: ClusterClient, stop: CancellationToken) {
        loop {
            self.set_live(false);
            if stop.is_cancelled() {
                return;
            }
            if let Err(e) = self.follow(&cluster, &stop).await {
                tracing::info!(error = %e, "catalog cache off until the change feed reconnects");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    async fn follow(
        &self,
        cluster: &ClusterClient,
        stop: &CancellationToken,
    ) -> Result<(), ClusterError> {
        let bail = |why: String| Err(ClusterError::Unavailable(why));
        let head_query = Query::Meta(MetaQuery::Catalog(CatalogQuery::Changes {
            after: u64::MAX - 1,
            limit: 1,
        }));
        let head = match cluster.query(META_GROUP, &head_query, true).await? {
            QueryResult::Meta(MetaQueryResult::Catalog(result)) => match *result {
                CatalogQueryResult::Changes { head, .. } => head,
                other => return bail(format!("unexpected answer {other:?}")),
            },
            other => return bail(format!("unexpected answer {other:?}")),
        };
        let mut stream = cluster.watch_catalog(head, 1_000).await?;
        // From here on every change after `head` arrives on the stream: serving is safe.
        self.set_live(true);
        tracing::info!(head, "catalog cache on, following the change feed");
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                message = stream.message() => message,
            };
            let message = message.map_err(|status| {
                ClusterError::Unavailable(format!("feed stream: {}", status.message()))
            })?;
            let Some(reply) = message else { return bail("feed stream ended".into()) };
            let Some(query_reply::Result::Answer(bytes)) = reply.result else {
                return bail(format!("feed stream answered {:?}", reply.result));
            };
            let answer = codec::decode::<QueryResult>(&bytes)
                .map_err(|e| ClusterError::Invalid(format!("undecodable feed reply: {e}")))?;
            match answer {
                QueryResult::Meta(MetaQueryResult::Catalog(result)) => match *result {
                    CatalogQueryResult::Changes { truncated: true, .. } => {
                        return bail("fell behind the feed".into())
                    }
                    CatalogQueryResult::Changes { changes, .. } if !changes.is_empty() => {
                        self.invalidate();
                    }
                    _ => {}
                },
                other => return bail(format!("unexpected answer {other:?}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_served_only_while_live_and_never_from_before_an_invalidation() {
        let cache = CatalogCache::default();
        let query = CatalogQuery::Cities;
        let answer = CatalogQueryResult::Cities { cities: Vec::new() };
        cache.put(&query, &answer, cache.ticket());
        assert_eq!(cache.get(&query), None, "not live: nothing stored or served");
        cache.set_live(true);
        cache.put(&query, &answer, cache.ticket());
        assert_eq!(cache.get(&query), Some(answer.clone()));
        // A read that started before a change is not cached after it.
        let ticket = cache.ticket();
        cache.invalidate();
        cache.put(&query, &answer, ticket);
        assert_eq!(cache.get(&query), None);
        // Movie lists share an entry whatever the reader's clock.
        let list = |now_ms| CatalogQuery::Movies {
            filter: proto::catalog::MovieFilter { now_ms, ..Default::default() },
            page: proto::catalog::Page { offset: 0, limit: 20 },
        };
        cache.put(&list(1), &answer, cache.ticket());
        assert_eq!(cache.get(&list(2)), Some(answer.clone()));
        // Per-user and feed reads are never cached.
        let user = CatalogQuery::User { user_id: 1 };
        cache.put(&user, &answer, cache.ticket());
        assert_eq!(cache.get(&user), None);
        cache.put(&query, &answer, cache.ticket());
        cache.set_live(false);
        assert!(cache.is_empty() && cache.get(&query).is_none());
    }
}
