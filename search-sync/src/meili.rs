//! The Meilisearch backend, through `meilisearch-sdk`.
//!
//! Index `movies` (primary key `movie_id`) configured to answer as the embedded index does
//! (docs/search.md, "Documents and matching"). Each document carries, besides the movie's
//! fields, its searchable text as the words of [`crate::tokenize`] joined by spaces
//! (`title_words`, `people_words`, `description_words`): Meilisearch's tokenizer keeps `<`,
//! `=` or `>` inside words (`onerror=alert` is one word to it), so it searches those fields,
//! which split exactly where the embedded index splits, and displays only the movie's fields.
//! Searchable attributes in weight order (title, cast and director, description); filterable
//! `cities`, `genres`, `language`, `rating`; sortable `rating`, `rating_count`,
//! `next_show_ms`, `title`, `movie_id`; ranking rules with `sort` first, so a requested sort is strict (relevance only orders the hits when no sort is asked
//! for); typos from 4 and 8 characters like the embedded index; `maxTotalHits` raised so that
//! every page the API can ask for is reachable; and queries sent as plain words
//! ([`crate::query_text`]) with matching strategy `all`, so every word must match and query
//! operators never reach Meilisearch. Highlights are built from the stored text by
//! [`crate::hit`], never from Meilisearch's `_formatted` markup.
//!
//! Every write waits for its task and fails if the task failed; transient errors are retried
//! with backoff. The sync worker's progress (the last catalog change indexed) is kept in a
//! second index, `<index>_sync`, for the gateways that search without syncing.

use std::time::Duration;

use meilisearch_sdk::client::Client;
use meilisearch_sdk::errors::{Error as MeiliError, ErrorCode};
use meilisearch_sdk::indexes::Index;
use meilisearch_sdk::search::{MatchingStrategies, SearchResults, Selectors};
use meilisearch_sdk::settings::{
    MinWordSizeForTypos, PaginationSetting, Settings, TypoToleranceSettings,
};
use meilisearch_sdk::task_info::TaskInfo;
use meilisearch_sdk::tasks::Task;
use serde::{Deserialize, Serialize};

use crate::{
    hit, query_text, rank_suggestions, tokenize, BoxFuture, Facets, SearchDoc, SearchError,
    SearchIndex, SearchRequest, SearchResponse, Sort, Suggestion, SUGGEST_POOL,
};

/// Attempts of one write before giving up.
const ATTEMPTS: u32 = 5;
/// How long to wait for one task.
const TASK_TIMEOUT: Duration = Duration::from_secs(60);
/// `maxTotalHits`: the deepest hit the API can page to (page 100 000 of 100).
pub const MAX_TOTAL_HITS: usize = 10_000_000;
/// `maxValuesPerFacet`: every genre and language is counted, as the embedded index does.
const MAX_FACET_VALUES: usize = 1_000;
/// Ranking rules: `sort` first, so that a requested sort is strict.
const RANKING_RULES: [&str; 6] = ["sort", "words", "typo", "proximity", "attribute", "exactness"];
/// The id of the progress document in `<index>_sync`.
const PROGRESS_ID: &str = "sync";
/// The searchable fields, in weight order.
const SEARCHABLE: [&str; 3] = ["title_words", "people_words", "description_words"];
/// The fields answers carry: those of [`SearchDoc`].
const DISPLAYED: [&str; 16] = [
    "movie_id",
    "title",
    "description",
    "cast",
    "director",
    "genres",
    "language",
    "rating",
    "rating_count",
    "cities",
    "next_show_ms",
    "upcoming_shows",
    "poster_url",
    "certificate",
    "duration_min",
    "release_date",
];

/// What Meilisearch stores for a movie: the document and its words.
#[derive(Debug, Serialize)]
struct MeiliDoc<'a> {
    #[serde(flatten)]
    doc: &'a SearchDoc,
    title_words: String,
    people_words: String,
    description_words: String,
}

impl<'a> From<&'a SearchDoc> for MeiliDoc<'a> {
    fn from(doc: &'a SearchDoc) -> MeiliDoc<'a> {
        let mut people = doc.cast.join(" ");
        people.push(' ');
        people.push_str(&doc.director);
        MeiliDoc {
            doc,
            title_words: query_text(&doc.title),
            people_words: query_text(&people),
            description_words: query_text(&doc.description),
        }
    }
}

/// A Meilisearch index of movies.
pub struct MeiliIndex {
    client: Client,
    index: Index,
    /// `<index>_sync`: the sync worker's progress.
    progress: Index,
}

impl std::fmt::Debug for MeiliIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeiliIndex").field("index", &self.index.uid).finish_non_exhaustive()
    }
}

/// The progress document.
#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    id: String,
    indexed_seq: u64,
}

fn unavailable(e: MeiliError) -> SearchError {
    SearchError::Unavailable(e.to_string())
}

/// Whether Meilisearch answered that the index (or document) does not exist yet: before the
/// sync worker's first write creates it, the index is empty, not unreachable.
fn not_found(e: &MeiliError) -> bool {
    matches!(e, MeiliError::Meilisearch(m)
        if matches!(m.error_code, ErrorCode::IndexNotFound | ErrorCode::DocumentNotFound))
}

/// A string quoted for a Meilisearch filter expression.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.to_lowercase().replace('\\', "\\\\").replace('"', "\\\""))
}

/// The sort keys of a strict sort: the embedded index's keys, then title, then id.
fn sort_keys(sort: Sort) -> &'static [&'static str] {
    match sort {
        Sort::Relevance => &[],
        Sort::Rating => &["rating:desc", "rating_count:desc", "title:asc", "movie_id:asc"],
        Sort::NextShow => &["next_show_ms:asc", "title:asc", "movie_id:asc"],
        Sort::Title => &["title:asc", "movie_id:asc"],
    }
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
        let progress = client.index(format!("{uid}_sync"));
        Ok(MeiliIndex { client, index, progress })
    }

    /// The settings that make this index answer as the embedded one.
    pub fn settings() -> Settings {
        Settings::new()
            .with_searchable_attributes(SEARCHABLE)
            .with_displayed_attributes(DISPLAYED)
            .with_filterable_attributes(["cities", "genres", "language", "rating"])
            .with_sortable_attributes([
                "rating",
                "rating_count",
                "next_show_ms",
                "title",
                "movie_id",
            ])
            .with_ranking_rules(RANKING_RULES)
            .with_typo_tolerance(TypoToleranceSettings {
                enabled: Some(true),
                disable_on_attributes: Some(Vec::new()),
                disable_on_words: Some(Vec::new()),
                min_word_size_for_typos: Some(MinWordSizeForTypos {
                    one_typo: Some(4),
                    two_typos: Some(8),
                }),
                disable_on_numbers: None,
            })
            .with_pagination(PaginationSetting { max_total_hits: MAX_TOTAL_HITS })
            .with_max_values_per_facet(MAX_FACET_VALUES)
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

    fn prepare(&self) -> BoxFuture<'_, Result<bool, SearchError>> {
        Box::pin(async move {
            // Documents written under other searchable fields (an older release) lack the word
            // fields these settings search: such an index must be rebuilt.
            let stale = match self.index.get_settings().await {
                Ok(current) => {
                    current.searchable_attributes.is_some_and(|fields| fields != SEARCHABLE)
                }
                Err(e) if not_found(&e) => false,
                Err(e) => return Err(unavailable(e)),
            };
            let settings = MeiliIndex::settings();
            self.write(|| self.index.set_settings(&settings)).await?;
            Ok(stale)
        })
    }

    fn upsert(&self, docs: Vec<SearchDoc>) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async move {
            if docs.is_empty() {
                return Ok(());
            }
            let docs: Vec<MeiliDoc<'_>> = docs.iter().map(MeiliDoc::from).collect();
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
            let sort = sort_keys(request.sort);
            let text = query_text(&request.q);
            let mut query = self.index.search();
            query
                .with_query(&text)
                .with_matching_strategy(MatchingStrategies::ALL)
                .with_facets(Selectors::Some(&["genres", "language"]));
            // Page-aligned requests (all the API makes) use Meilisearch's page mode, whose
            // `totalHits` is exact; others fall back to offset/limit (an estimated total).
            let limit = request.limit.max(1);
            if request.offset.is_multiple_of(limit) {
                query.with_page(request.offset / limit + 1).with_hits_per_page(limit);
            } else {
                query.with_offset(request.offset).with_limit(limit);
            }
            if !filter.is_empty() {
                query.with_filter(&filter);
            }
            if !sort.is_empty() {
                query.with_sort(sort);
            }
            let results: SearchResults<SearchDoc> = match query.execute().await {
                Ok(results) => results,
                Err(e) if not_found(&e) => return Ok(SearchResponse::default()),
                Err(e) => return Err(unavailable(e)),
            };
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
            let words = tokenize(&request.q);
            let hits = results.hits.into_iter().map(|h| hit(h.result, &words)).collect();
            let total = results.total_hits.or(results.estimated_total_hits).unwrap_or(0) as u64;
            Ok(SearchResponse { hits, total, facets })
        })
    }

    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>, SearchError>> {
        Box::pin(async move {
            let text = query_text(prefix);
            if text.is_empty() {
                return Ok(Vec::new());
            }
            // The matching titles in title order (as the embedded index pools them), then
            // the shared ranking.
            let results = self
                .index
                .search()
                .with_query(&text)
                .with_matching_strategy(MatchingStrategies::ALL)
                .with_attributes_to_search_on(&["title_words"])
                .with_sort(sort_keys(Sort::Title))
                .with_limit(SUGGEST_POOL)
                .with_attributes_to_retrieve(Selectors::Some(&["movie_id", "title"]))
                .execute::<Suggestion>()
                .await;
            let pool = match results {
                Ok(results) => results.hits.into_iter().map(|h| h.result).collect(),
                Err(e) if not_found(&e) => Vec::new(),
                Err(e) => return Err(unavailable(e)),
            };
            Ok(rank_suggestions(prefix, pool, limit))
        })
    }

    fn save_progress(&self, indexed_seq: u64) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async move {
            let progress = [Progress { id: PROGRESS_ID.to_owned(), indexed_seq }];
            self.write(|| self.progress.add_or_replace(&progress, Some("id"))).await
        })
    }

    fn progress(&self) -> BoxFuture<'_, Result<Option<u64>, SearchError>> {
        Box::pin(async move {
            match self.progress.get_document::<Progress>(PROGRESS_ID).await {
                Ok(progress) => Ok(Some(progress.indexed_seq)),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(unavailable(e)),
            }
        })
    }
}
