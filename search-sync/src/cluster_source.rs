//! The cluster as a [`CatalogSource`] for the sync worker: the production source, next to the
//! worker it feeds (tests feed the worker from memory instead).
//!
//! The change feed is read through the node's `WatchCatalog` server stream: one stream stays
//! open while the worker's cursor follows it; any error drops it and the next read reopens one
//! on some meta replica after the worker's cursor (the feed is replicated, so any replica
//! continues it without a gap or a repeat). Documents are read with plain catalog queries.

use std::time::Duration;

use client::ClusterClient;
use proto::catalog::{CatalogQuery, CatalogQueryResult};
use proto::command::{Query, QueryResult};
use proto::meta::{MetaQuery, MetaQueryResult};
use proto::pb::query_reply;
use proto::{codec, META_GROUP};
use tokio::sync::Mutex;

use crate::sync::{CatalogSource, Docs, FeedPage, BATCH};
use crate::{BoxFuture, SearchError};

/// Reads the catalog from the cluster.
pub struct ClusterCatalogSource {
    cluster: ClusterClient,
    /// The open feed stream and the cursor it continues from.
    stream: Mutex<Option<(u64, tonic::Streaming<proto::pb::QueryReply>)>>,
    head: std::sync::atomic::AtomicU64,
}

impl ClusterCatalogSource {
    /// A source over `cluster`.
    pub fn new(cluster: ClusterClient) -> ClusterCatalogSource {
        ClusterCatalogSource { cluster, stream: Mutex::new(None), head: Default::default() }
    }

    /// A linearizable catalog read: the feed stream may come from a replica ahead of the one a
    /// plain read lands on, and a document read from a lagging replica would index a movie as
    /// it was before the change that triggered the read (and stay so until its next change).
    async fn catalog(&self, query: CatalogQuery) -> Result<CatalogQueryResult, SearchError> {
        let query = Query::Meta(MetaQuery::Catalog(query));
        match self.cluster.query(META_GROUP, &query, true).await {
            Ok(QueryResult::Meta(MetaQueryResult::Catalog(result))) => Ok(*result),
            Ok(other) => Err(SearchError::Catalog(format!("unexpected answer {other:?}"))),
            Err(e) => Err(SearchError::Catalog(e.to_string())),
        }
    }

    fn page(result: CatalogQueryResult) -> Result<FeedPage, SearchError> {
        match result {
            CatalogQueryResult::Changes { changes, head, truncated } => {
                Ok(FeedPage { changes, head, truncated })
            }
            other => Err(SearchError::Catalog(format!("unexpected answer {other:?}"))),
        }
    }

    async fn next_from_stream(&self, after: u64, wait: Duration) -> Result<FeedPage, SearchError> {
        let mut slot = self.stream.lock().await;
        if slot.as_ref().is_none_or(|(cursor, _)| *cursor != after) {
            let stream = self
                .cluster
                .watch_catalog(after, BATCH)
                .await
                .map_err(|e| SearchError::Catalog(e.to_string()))?;
            *slot = Some((after, stream));
        }
        let (_, stream) = slot.as_mut().expect("set above");
        let message = match tokio::time::timeout(wait, stream.message()).await {
            // Nothing new within `wait`: an empty page, the stream stays open.
            Err(_) => {
                let head = self.head.load(std::sync::atomic::Ordering::Relaxed);
                return Ok(FeedPage { changes: Vec::new(), head, truncated: false });
            }
            Ok(message) => message,
        };
        let reply = match message {
            Ok(Some(reply)) => reply,
            Ok(None) => {
                *slot = None;
                return Err(SearchError::Catalog("the feed stream ended".into()));
            }
            Err(status) => {
                *slot = None;
                return Err(SearchError::Catalog(format!("feed stream: {}", status.message())));
            }
        };
        let bytes = match reply.result {
            Some(query_reply::Result::Answer(bytes)) => bytes,
            other => {
                *slot = None;
                return Err(SearchError::Catalog(format!("feed stream answered {other:?}")));
            }
        };
        let answer: QueryResult = codec::decode(&bytes)
            .map_err(|e| SearchError::Catalog(format!("undecodable feed reply: {e}")))?;
        let page = match answer {
            QueryResult::Meta(MetaQueryResult::Catalog(result)) => Self::page(*result)?,
            other => return Err(SearchError::Catalog(format!("unexpected answer {other:?}"))),
        };
        self.head.store(page.head, std::sync::atomic::Ordering::Relaxed);
        // The stream continues after its last change; a truncated answer ends it.
        match (&page.truncated, page.changes.last()) {
            (true, _) => *slot = None,
            (false, Some(last)) => {
                if let Some((cursor, _)) = slot.as_mut() {
                    *cursor = last.seq;
                }
            }
            (false, None) => {}
        }
        Ok(page)
    }
}

impl CatalogSource for ClusterCatalogSource {
    fn changes(&self, after: u64, wait: Duration) -> BoxFuture<'_, Result<FeedPage, SearchError>> {
        Box::pin(async move {
            if wait.is_zero() {
                return Self::page(
                    self.catalog(CatalogQuery::Changes { after, limit: BATCH }).await?,
                );
            }
            self.next_from_stream(after, wait).await
        })
    }

    fn docs(&self, movie_ids: Vec<u64>, now_ms: u64) -> BoxFuture<'_, Result<Docs, SearchError>> {
        Box::pin(async move {
            match self.catalog(CatalogQuery::SearchDocs { movie_ids, now_ms }).await? {
                CatalogQueryResult::SearchDocs { docs, missing } => Ok((docs, missing)),
                other => Err(SearchError::Catalog(format!("unexpected answer {other:?}"))),
            }
        })
    }

    fn movie_ids(&self, after: u64, limit: u32) -> BoxFuture<'_, Result<Vec<u64>, SearchError>> {
        Box::pin(async move {
            match self.catalog(CatalogQuery::MovieIds { after, limit }).await? {
                CatalogQueryResult::MovieIds { ids } => Ok(ids),
                other => Err(SearchError::Catalog(format!("unexpected answer {other:?}"))),
            }
        })
    }
}
