//! The sync worker: keeps a [`SearchIndex`] in step with the catalog.
//!
//! It reads the meta group's change feed from a cursor (a sequence number; the feed is part of
//! the replicated state, so any replica serves the same sequence and a reader that resumes
//! after a leader change or a reconnect sees no gap and no repeat). For each batch it re-reads
//! the affected movies' documents *as of now* and upserts them (or deletes the movies that no
//! longer exist), then advances the cursor. Re-reading current state rather than applying the
//! changes themselves makes every step idempotent: replaying part of the feed after a crash
//! just rewrites the same documents.
//!
//! Time also changes documents without any catalog change: when a movie's next show starts it
//! is no longer upcoming. The worker keeps each indexed movie's next show time and re-indexes
//! movies whose next show has started.
//!
//! A fresh worker (cursor 0), or one that fell behind the feed's retention, rebuilds: it notes
//! the feed's head, clears the index, indexes every movie, and continues from that head.
//!
//! A worker behind the feed (after a bulk import, or a restart) catches up in large steps: one
//! step reads every change up to the current head (up to [`STEP_CHANGES_MAX`]) with direct
//! reads after the first page, and writes all the affected movies in one backend write per
//! [`UPSERT_DOCS_MAX`] documents, so a backlog of thousands of changes costs a few Meilisearch
//! tasks, not one per change. Those direct reads also give the feed's current head, so the lag
//! the worker reports is the true one even while the stream still holds older messages (whose
//! heads are as old as they are).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::catalog::{CatalogChange, MovieDoc, SEARCH_DOCS_MAX};
use tokio_util::sync::CancellationToken;

use crate::{BoxFuture, SearchDoc, SearchError, SearchIndex};

/// Changes read per feed read.
pub const BATCH: u32 = 500;
/// Most changes one step applies (a backlog takes several steps beyond this).
pub const STEP_CHANGES_MAX: usize = 20_000;
/// Most documents one backend write carries (one Meilisearch task).
pub const UPSERT_DOCS_MAX: usize = 5_000;
/// How often a process that searches an index another process syncs reads that worker's
/// progress and the feed's head ([`follow_progress`]).
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);
/// Pause after a failed step before retrying.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// A page of the change feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedPage {
    /// Changes after the cursor, oldest first.
    pub changes: Vec<CatalogChange>,
    /// Newest sequence number in the feed.
    pub head: u64,
    /// The cursor is behind what the feed retains: rebuild.
    pub truncated: bool,
}

/// Documents of movies that exist, and the ids of those that do not.
pub type Docs = (Vec<MovieDoc>, Vec<u64>);

/// Where the catalog is read from (the cluster, in the gateway and the sync binary).
pub trait CatalogSource: Send + Sync {
    /// Changes after `after`; may wait up to `wait` for some to arrive when there are none.
    fn changes(&self, after: u64, wait: Duration) -> BoxFuture<'_, Result<FeedPage, SearchError>>;
    /// Documents of these movies as of `now_ms`, and the ids that no longer exist.
    fn docs(&self, movie_ids: Vec<u64>, now_ms: u64) -> BoxFuture<'_, Result<Docs, SearchError>>;
    /// Movie ids after `after`, ascending.
    fn movie_ids(&self, after: u64, limit: u32) -> BoxFuture<'_, Result<Vec<u64>, SearchError>>;
}

/// Where the worker is, for metrics and for the search API's freshness field.
#[derive(Debug, Default)]
pub struct SyncStatus {
    /// Last change applied to the index.
    pub indexed_seq: AtomicU64,
    /// Newest change the feed reported.
    pub head_seq: AtomicU64,
    /// Full rebuilds done.
    pub rebuilds: AtomicU64,
    /// Steps that failed (and were retried).
    pub errors: AtomicU64,
    /// Wall time of the last successful step, Unix ms.
    pub synced_at_ms: AtomicU64,
}

impl SyncStatus {
    /// Changes the index is behind the feed.
    pub fn lag(&self) -> u64 {
        self.head_seq
            .load(Ordering::Relaxed)
            .saturating_sub(self.indexed_seq.load(Ordering::Relaxed))
    }

    /// Whether the first full build has completed (before that, search results are partial).
    pub fn ready(&self) -> bool {
        self.rebuilds.load(Ordering::Relaxed) > 0 || self.indexed_seq.load(Ordering::Relaxed) > 0
    }
}

/// Persists the cursor between runs (the sync binary uses a file; the embedded index needs
/// none: it is rebuilt on start).
pub trait CursorStore: Send + Sync {
    /// The saved cursor (0: none).
    fn load(&self) -> u64;
    /// Saves the cursor.
    ///
    /// # Errors
    /// The store could not be written.
    fn save(&self, seq: u64) -> Result<(), SearchError>;
}

/// No persistence: every start rebuilds.
#[derive(Debug, Default)]
pub struct NoCursor;

impl CursorStore for NoCursor {
    fn load(&self) -> u64 {
        0
    }
    fn save(&self, _: u64) -> Result<(), SearchError> {
        Ok(())
    }
}

/// A cursor in a file, replaced atomically (write, fsync, rename).
#[derive(Debug)]
pub struct FileCursor(pub std::path::PathBuf);

impl CursorStore for FileCursor {
    fn load(&self) -> u64 {
        std::fs::read_to_string(&self.0).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }
    fn save(&self, seq: u64) -> Result<(), SearchError> {
        use std::io::Write;
        let tmp = self.0.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            writeln!(file, "{seq}")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.0)
        };
        write().map_err(|e| SearchError::Backend(format!("saving the cursor: {e}")))
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The worker.
pub struct Syncer {
    index: Arc<dyn SearchIndex>,
    source: Arc<dyn CatalogSource>,
    cursor: Box<dyn CursorStore>,
    status: Arc<SyncStatus>,
    /// (next show start, movie) of indexed movies with an upcoming show.
    next_shows: BTreeSet<(u64, u64)>,
    next_show_of: BTreeMap<u64, u64>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("status", &self.status).finish_non_exhaustive()
    }
}

impl Syncer {
    /// A worker writing `index` from `source`, its cursor in `cursor`.
    pub fn new(
        index: Arc<dyn SearchIndex>,
        source: Arc<dyn CatalogSource>,
        cursor: Box<dyn CursorStore>,
    ) -> Syncer {
        Syncer {
            index,
            source,
            cursor,
            status: Arc::default(),
            next_shows: BTreeSet::new(),
            next_show_of: BTreeMap::new(),
        }
    }

    /// The worker's progress (shared).
    pub fn status(&self) -> Arc<SyncStatus> {
        Arc::clone(&self.status)
    }

    /// Runs until `stop` resolves, retrying failed steps.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut cursor = self.cursor.load();
        // A resumed worker reports where it resumes from, not 0, until its first step.
        self.status.indexed_seq.store(cursor, Ordering::Relaxed);
        self.status.head_seq.fetch_max(cursor, Ordering::Relaxed);
        let mut needs_rebuild = cursor == 0;
        let mut prepared = false;
        loop {
            if stop.is_cancelled() {
                return;
            }
            let step = if !prepared {
                self.index.prepare().await.map(Step::Prepared)
            } else if needs_rebuild {
                self.rebuild().await
            } else {
                self.step(cursor).await
            };
            match step {
                Ok(Step::Advanced(seq)) => {
                    cursor = seq;
                    needs_rebuild = false;
                    self.status.synced_at_ms.store(now_ms(), Ordering::Relaxed);
                }
                Ok(Step::Prepared(stale)) => {
                    prepared = true;
                    if stale {
                        tracing::warn!("search index written in an older layout: rebuilding");
                        needs_rebuild = true;
                    }
                }
                Ok(Step::Rebuild) => needs_rebuild = true,
                Err(e) => {
                    self.status.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, cursor, "search sync step failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RETRY_PAUSE) => {}
                    }
                }
            }
        }
    }

    /// Indexes every movie, then continues from the feed head noted first.
    async fn rebuild(&mut self) -> Result<Step, SearchError> {
        let head = self.source.changes(u64::MAX - 1, Duration::ZERO).await?.head;
        tracing::info!(head, backend = self.index.backend(), "search index rebuild");
        self.index.clear().await?;
        self.next_shows.clear();
        self.next_show_of.clear();
        self.status.head_seq.fetch_max(head, Ordering::Relaxed);
        let mut after = 0;
        let mut ids = Vec::new();
        loop {
            let page = self.source.movie_ids(after, SEARCH_DOCS_MAX as u32).await?;
            let Some(last) = page.last().copied() else { break };
            ids.extend(page);
            after = last;
            if ids.len() >= UPSERT_DOCS_MAX {
                self.reindex(std::mem::take(&mut ids)).await?;
            }
        }
        self.reindex(ids).await?;
        self.commit(head).await?;
        self.status.rebuilds.fetch_add(1, Ordering::Relaxed);
        Ok(Step::Advanced(head))
    }

    /// Applies the changes after `cursor` (waiting briefly for some), and re-indexes movies
    /// whose next show has started.
    async fn step(&mut self, cursor: u64) -> Result<Step, SearchError> {
        let page = self.source.changes(cursor, Duration::from_secs(1)).await?;
        // A stream message's head is as old as the message: never let it lower the head.
        self.status.head_seq.fetch_max(page.head, Ordering::Relaxed);
        if page.truncated {
            tracing::warn!(cursor, head = page.head, "search sync fell behind the feed");
            return Ok(Step::Rebuild);
        }
        let mut seq = page.changes.last().map_or(cursor, |c| c.seq);
        let mut movies: BTreeSet<u64> =
            page.changes.iter().flat_map(|c| c.movies.iter().copied()).collect();
        let mut read = page.changes.len();
        // Changes arrived: read on directly to the current head (which these reads report),
        // so that a backlog is applied in one step and the lag is the true one.
        if read > 0 {
            while read < STEP_CHANGES_MAX {
                let more = self.source.changes(seq, Duration::ZERO).await?;
                self.status.head_seq.fetch_max(more.head, Ordering::Relaxed);
                if more.truncated {
                    tracing::warn!(seq, head = more.head, "search sync fell behind the feed");
                    return Ok(Step::Rebuild);
                }
                let Some(last) = more.changes.last() else { break };
                seq = last.seq;
                read += more.changes.len();
                movies.extend(more.changes.iter().flat_map(|c| c.movies.iter().copied()));
            }
        }
        let now = now_ms();
        while let Some(&(at, movie)) = self.next_shows.first() {
            if at > now {
                break;
            }
            self.next_shows.pop_first();
            self.next_show_of.remove(&movie);
            movies.insert(movie);
        }
        let movies: Vec<u64> = movies.into_iter().collect();
        for chunk in movies.chunks(UPSERT_DOCS_MAX) {
            self.reindex(chunk.to_vec()).await?;
        }
        if seq != cursor {
            self.commit(seq).await?;
        }
        Ok(Step::Advanced(seq))
    }

    /// Re-reads `movie_ids` (at most [`UPSERT_DOCS_MAX`]) and writes them in one upsert (and
    /// one delete for those that no longer exist).
    async fn reindex(&mut self, movie_ids: Vec<u64>) -> Result<(), SearchError> {
        if movie_ids.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let (mut docs, mut missing) = (Vec::new(), Vec::new());
        for chunk in movie_ids.chunks(SEARCH_DOCS_MAX) {
            let (found, gone) = self.source.docs(chunk.to_vec(), now).await?;
            docs.extend(found);
            missing.extend(gone);
        }
        for id in &missing {
            if let Some(at) = self.next_show_of.remove(id) {
                self.next_shows.remove(&(at, *id));
            }
        }
        if !missing.is_empty() {
            self.index.delete(missing).await?;
        }
        let docs: Vec<SearchDoc> = docs.iter().map(SearchDoc::from).collect();
        for doc in &docs {
            if let Some(at) = self.next_show_of.remove(&doc.movie_id) {
                self.next_shows.remove(&(at, doc.movie_id));
            }
            if let Some(at) = doc.next_show_ms {
                self.next_shows.insert((at, doc.movie_id));
                self.next_show_of.insert(doc.movie_id, at);
            }
        }
        self.index.upsert(docs).await
    }

    async fn commit(&mut self, seq: u64) -> Result<(), SearchError> {
        self.cursor.save(seq)?;
        self.index.save_progress(seq).await?;
        self.status.indexed_seq.store(seq, Ordering::Relaxed);
        self.status.head_seq.fetch_max(seq, Ordering::Relaxed);
        Ok(())
    }
}

/// Keeps `status` up to date for a process that searches an index another process syncs (a
/// gateway with `--search meilisearch --search-sync false`): every [`FOLLOW_INTERVAL`] it reads
/// the feed's head and the progress the syncing worker recorded beside the index, so search
/// answers and metrics report the real lag. Failed reads count as `errors`.
pub async fn follow_progress(
    index: Arc<dyn SearchIndex>,
    source: Arc<dyn CatalogSource>,
    status: Arc<SyncStatus>,
    stop: CancellationToken,
) {
    loop {
        match source.changes(u64::MAX - 1, Duration::ZERO).await {
            Ok(page) => {
                status.head_seq.fetch_max(page.head, Ordering::Relaxed);
            }
            Err(e) => {
                status.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "reading the feed head");
            }
        }
        match index.progress().await {
            Ok(indexed) => {
                status.indexed_seq.store(indexed.unwrap_or(0), Ordering::Relaxed);
                status.synced_at_ms.store(now_ms(), Ordering::Relaxed);
            }
            Err(e) => {
                status.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "reading the search sync progress");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
    }
}

enum Step {
    /// The backend is ready for writes (`true`: its documents must be rebuilt).
    Prepared(bool),
    Advanced(u64),
    Rebuild,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use proto::catalog::{ChangeEntity, Movie, MovieSpec, Rating};

    use super::*;
    use crate::embedded::EmbeddedIndex;
    use crate::{SearchRequest, SearchResponse};

    /// An in-memory catalog: the syncer's input, scripted by the test.
    #[derive(Default)]
    struct Catalog {
        movies: Mutex<BTreeMap<u64, (String, Option<u64>)>>,
        feed: Mutex<Vec<CatalogChange>>,
        /// Changes before this seq were dropped (the reader must rebuild).
        oldest: Mutex<u64>,
    }

    impl Catalog {
        fn put(&self, id: u64, title: &str, next_show_ms: Option<u64>) {
            self.movies.lock().unwrap().insert(id, (title.into(), next_show_ms));
            self.change(id);
        }

        fn remove(&self, id: u64) {
            self.movies.lock().unwrap().remove(&id);
            self.change(id);
        }

        fn change(&self, id: u64) {
            let mut feed = self.feed.lock().unwrap();
            let seq = feed.len() as u64 + 1;
            feed.push(CatalogChange {
                seq,
                at_ms: 0,
                entity: ChangeEntity::Movie(id),
                movies: vec![id],
            });
        }
    }

    impl CatalogSource for Catalog {
        fn changes(&self, after: u64, _: Duration) -> BoxFuture<'_, Result<FeedPage, SearchError>> {
            Box::pin(async move {
                let feed = self.feed.lock().unwrap();
                let oldest = *self.oldest.lock().unwrap();
                Ok(FeedPage {
                    changes: feed
                        .iter()
                        .filter(|c| c.seq > after && c.seq >= oldest)
                        .cloned()
                        .collect(),
                    head: feed.len() as u64,
                    truncated: after + 1 < oldest,
                })
            })
        }

        fn docs(&self, ids: Vec<u64>, now_ms: u64) -> BoxFuture<'_, Result<Docs, SearchError>> {
            Box::pin(async move {
                let movies = self.movies.lock().unwrap();
                let (mut docs, mut missing) = (Vec::new(), Vec::new());
                for id in ids {
                    let Some((title, next)) = movies.get(&id) else {
                        missing.push(id);
                        continue;
                    };
                    let next = next.filter(|at| *at > now_ms);
                    docs.push(MovieDoc {
                        movie: Movie {
                            movie_id: id,
                            spec: MovieSpec {
                                title: title.clone(),
                                description: String::new(),
                                genres: vec!["drama".into()],
                                language: "english".into(),
                                duration_min: 100,
                                release_date: "2026-01-01".into(),
                                cast: Vec::new(),
                                director: String::new(),
                                certificate: "U".into(),
                                poster_url: None,
                            },
                            rating: Rating::default(),
                        },
                        cities: if next.is_some() { vec!["Pune".into()] } else { Vec::new() },
                        next_show_ms: next,
                        upcoming_shows: u64::from(next.is_some()),
                    });
                }
                Ok((docs, missing))
            })
        }

        fn movie_ids(
            &self,
            after: u64,
            limit: u32,
        ) -> BoxFuture<'_, Result<Vec<u64>, SearchError>> {
            Box::pin(async move {
                let movies = self.movies.lock().unwrap();
                Ok(movies.range(after + 1..).map(|(id, _)| *id).take(limit as usize).collect())
            })
        }
    }

    async fn find(index: &EmbeddedIndex, q: &str, city: Option<&str>) -> SearchResponse {
        let request = SearchRequest {
            q: q.into(),
            city: city.map(str::to_owned),
            limit: 10,
            ..SearchRequest::default()
        };
        crate::SearchIndex::search(index, &request).await.unwrap()
    }

    #[tokio::test]
    async fn rebuilds_follows_the_feed_expires_shows_and_rebuilds_when_truncated() {
        let catalog = Arc::new(Catalog::default());
        catalog.put(1, "Monsoon Run", None);
        catalog.put(2, "Quiet Harbour", Some(now_ms() + 3_600_000));
        let index = Arc::new(EmbeddedIndex::new().unwrap());
        let mut syncer = Syncer::new(index.clone(), catalog.clone(), Box::new(NoCursor));
        // No cursor: a rebuild indexes every movie and continues from the head.
        assert!(matches!(syncer.rebuild().await.unwrap(), Step::Advanced(2)));
        assert_eq!(index.len(), 2);
        // Changes: a new title, a deletion, a show that starts in 50 ms.
        catalog.put(1, "Monsoon Returns", None);
        catalog.remove(2);
        catalog.put(3, "Paper Tides", Some(now_ms() + 50));
        assert!(matches!(syncer.step(2).await.unwrap(), Step::Advanced(5)));
        assert_eq!(find(&index, "returns", None).await.total, 1);
        assert_eq!(find(&index, "quiet", None).await.total, 0, "deleted");
        assert_eq!(find(&index, "", Some("pune")).await.total, 1, "movie 3 plays in Pune");
        // Its show starts: with no catalog change, the next step re-indexes it.
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(matches!(syncer.step(5).await.unwrap(), Step::Advanced(5)));
        assert_eq!(find(&index, "", Some("pune")).await.total, 0, "no upcoming show any more");
        assert_eq!(syncer.status().indexed_seq.load(Ordering::Relaxed), 5);
        // The feed dropped changes the reader had not seen: it must rebuild.
        catalog.put(4, "Iron Orbit", None);
        *catalog.oldest.lock().unwrap() = 7;
        catalog.put(5, "Velvet Signal", None);
        assert!(matches!(syncer.step(5).await.unwrap(), Step::Rebuild));
        assert!(matches!(syncer.rebuild().await.unwrap(), Step::Advanced(7)));
        assert_eq!(find(&index, "iron", None).await.total, 1, "the rebuild saw movie 4");
        assert_eq!(syncer.status().rebuilds.load(Ordering::Relaxed), 2);
    }
}
