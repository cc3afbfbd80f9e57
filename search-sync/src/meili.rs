//! The Meilisearch backend, through `meilisearch-sdk`.
//!
//! Index `movies` (primary key `movie_id`) with searchable attributes in weight order (title,
//! cast, director, description), filterable `cities`, `genres`, `language`, `rating`, sortable
//! `rating`, `rating_count`, `next_show_ms`, `title`, and Meilisearch's default typo
//! tolerance. Every write waits for its task and fails if the task failed; transient errors are
//! retried with backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use meilisearch_sdk::client::Client;
use meilisearch_sdk::errors::Error as MeiliError;
use meilisearch_sdk::indexes::Index;
use meilisearch_sdk::search::Selectors;
use meilisearch_sdk::settings::Settings;
use meilisearch_sdk::task_info::TaskInfo;
use meilisearch_sdk::tasks::Task;

use crate::{
    BoxFuture, Facets, SearchDoc, SearchError, SearchHit, SearchIndex, SearchRequest,
    SearchResponse, Sort, Suggestion,
};

/// Attempts of one write before giving up.
const ATTEMPTS: u32 = 5;
/// How long to wait for one task.
const TASK_TIMEOUT: Duration = Duration::from_secs(60);

/// A Meilisearch index of movies.
pub struct MeiliIndex {
    client: Client,
    index: Index,
}

impl std::fmt::Debug for MeiliIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeiliIndex").field("index", &self.index.uid).finish_non_exhaustive()
    }
}

fn unavailable(e: MeiliError) -> SearchError {
    SearchError::Unavailable(e.to_string())
}

/// A string quoted for a Meilisearch filter expression.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.to_lowercase().replace('\\', "\\\\").replace('"', "\\\""))
}

impl MeiliIndex {
    /// A client of index `uid` (tests use their own) at `url`, API key optional. Nothing is
    /// sent yet: [`SearchIndex::prepare`] creates the index and applies the settings.
    ///
    /// # Errors
    /// The URL is not usable.
    pub fn new(url: &str, api_key: Option<&str>, uid: &str) -> Result<MeiliIndex, SearchError> {
        let client = Client::new(url, api_key).map_err(unavailable)?;
        let index = client.index(uid);
        Ok(MeiliIndex { client, index })
    }

    /// Runs a write until its task succeeds, retrying transport errors with backoff.
    async fn write<F, Fut>(&self, op: F) -> Result<(), SearchError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<TaskInfo, MeiliError>>,
    {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let task = match op().await {
                Ok(task) => task,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match task.wait_for_completion(&self.client, None, Some(TASK_TIMEOUT)).await {
                Ok(Task::Succeeded { .. }) => return Ok(()),
                Ok(failed @ Task::Failed { .. }) => {
                    return Err(SearchError::Backend(failed.unwrap_failure().to_string()))
                }
                Ok(other) => last = Some(MeiliError::Other(format!("task ended {other:?}").into())),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| SearchError::Unavailable("no attempt".into()), unavailable))
    }

    fn filter(request: &SearchRequest) -> String {
        let mut parts = Vec::new();
        if let Some(city) = &request.city {
            parts.push(format!("cities = {}", quoted(city)));
        }
        if let Some(genre) = &request.genre {
            parts.push(format!("genres = {}", quoted(genre)));
        }
        if let Some(language) = &request.language {
            parts.push(format!("language = {}", quoted(language)));
        }
        if let Some(min) = request.min_rating {
            parts.push(format!("rating >= {min}"));
        }
        parts.join(" AND ")
    }
}

impl SearchIndex for MeiliIndex {
    fn backend(&self) -> &'static str {
        "meilisearch"
    }

    fn prepare(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async move {
            let settings = Settings::new()
                .with_searchable_attributes(["title", "cast", "director", "description"])
                .with_filterable_attributes(["cities", "genres", "language", "rating"])
                .with_sortable_attributes(["rating", "rating_count", "next_show_ms", "title"]);
            self.write(|| self.index.set_settings(&settings)).await
        })
    }

    fn upsert(&self, docs: Vec<SearchDoc>) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async move {
            if docs.is_empty() {
                return Ok(());
            }
            self.write(|| self.index.add_or_replace(&docs, Some("movie_id"))).await
        })
    }

    fn delete(&self, movie_ids: Vec<u64>) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async move {
            if movie_ids.is_empty() {
                return Ok(());
            }
            self.write(|| self.index.delete_documents(&movie_ids)).await
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async move { self.write(|| self.index.delete_all_documents()).await })
    }

    fn search<'a>(
        &'a self,
        request: &'a SearchRequest,
    ) -> BoxFuture<'a, Result<SearchResponse, SearchError>> {
        Box::pin(async move {
            let filter = MeiliIndex::filter(request);
            let sort: &[&str] = match request.sort {
                Sort::Relevance => &[],
                Sort::Rating => &["rating:desc", "rating_count:desc"],
                Sort::NextShow => &["next_show_ms:asc"],
                Sort::Title => &["title:asc"],
            };
            let mut query = self.index.search();
            query
                .with_query(&request.q)
                .with_offset(request.offset)
                .with_limit(request.limit)
                .with_facets(Selectors::Some(&["genres", "language"]))
                .with_attributes_to_highlight(Selectors::Some(&["title", "description"]))
                .with_attributes_to_crop(Selectors::Some(&[("description", Some(30))]))
                .with_highlight_pre_tag("<em>")
                .with_highlight_post_tag("</em>");
            if !filter.is_empty() {
                query.with_filter(&filter);
            }
            if !sort.is_empty() {
                query.with_sort(sort);
            }
            let results = query.execute::<SearchDoc>().await.map_err(unavailable)?;
            let mut facets = Facets::default();
            for (facet, counts) in results.facet_distribution.unwrap_or_default() {
                let target = match facet.as_str() {
                    "genres" => &mut facets.genres,
                    "language" => &mut facets.languages,
                    _ => continue,
                };
                for (value, count) in counts {
                    target.insert(value, count as u64);
                }
            }
            let hits = results
                .hits
                .into_iter()
                .map(|hit| {
                    let mut highlights = BTreeMap::new();
                    for (field, value) in hit.formatted_result.unwrap_or_default() {
                        if let Some(text) = value.as_str().filter(|t| t.contains("<em>")) {
                            highlights.insert(field, text.to_owned());
                        }
                    }
                    highlights.retain(|field, _| field == "title" || field == "description");
                    SearchHit { doc: hit.result, highlights }
                })
                .collect();
            let total = results.estimated_total_hits.or(results.total_hits).unwrap_or(0) as u64;
            Ok(SearchResponse { hits, total, facets })
        })
    }

    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>, SearchError>> {
        Box::pin(async move {
            let results = self
                .index
                .search()
                .with_query(prefix)
                .with_limit(limit)
                .with_attributes_to_retrieve(Selectors::Some(&["movie_id", "title"]))
                .execute::<Suggestion>()
                .await
                .map_err(unavailable)?;
            Ok(results.hits.into_iter().map(|h| h.result).collect())
        })
    }
}
