//! Movie search for Marquee: the index backends, the catalog sync worker and the
//! `marquee-search-sync` binary.
//!
//! Why a crate of its own: search is a *derived* view of the catalog, kept by a worker that
//! tails the meta group's change feed ([`sync`], reading the cluster through
//! [`cluster_source`]), and it has two interchangeable backends behind one [`SearchIndex`]
//! trait: an embedded tantivy index ([`embedded`], the default: the dev cluster and CI need no
//! server) and Meilisearch ([`meili`], through `meilisearch-sdk`, for production), chosen by
//! [`backend`]. Both follow the text rules of [`text`] (matching, typos, highlights), so they
//! give the same answers. The gateway answers `/v1/search` from whichever is configured and may run the
//! worker itself; `marquee-search-sync` runs it alone, for Meilisearch. The same sync code
//! feeds both backends, so they index the same documents. Everything search links (tantivy,
//! the Meilisearch client) stays here; the gateway links this library, `marqueectl` never does.
//!
//! One document per movie: its descriptive fields, rating, the cities where it has upcoming
//! shows, the next show time and the number of upcoming shows.

pub mod backend;
pub mod cluster_source;
pub mod embedded;
pub mod meili;
pub mod sync;
pub mod text;

pub use text::{highlight, query_text, title_key, tokenize, typo_budget, word_matches};

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use proto::catalog::MovieDoc;
use serde::{Deserialize, Serialize};

/// A boxed future, for the object-safe [`SearchIndex`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Longest query string accepted.
pub const QUERY_CHARS_MAX: usize = 200;
/// Most hits one page returns.
pub const PAGE_SIZE_MAX: usize = 100;
/// Characters of description shown around a match.
pub const SNIPPET_CHARS: usize = 160;
/// Titles a suggestion is chosen among: the first this many matching titles in title order
/// (both backends), of which those starting with what was typed come first.
pub const SUGGEST_POOL: usize = 200;

/// Why a search operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The backend failed (I/O, a corrupt index, a Meilisearch error or task failure).
    #[error("search backend: {0}")]
    Backend(String),
    /// The backend could not be reached.
    #[error("search backend unavailable: {0}")]
    Unavailable(String),
    /// The catalog could not be read.
    #[error("catalog: {0}")]
    Catalog(String),
    /// The backend was configured wrongly (a missing URL).
    #[error("{0}")]
    Config(String),
}

/// The document indexed for one movie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDoc {
    /// Id (the primary key).
    pub movie_id: u64,
    /// Title.
    pub title: String,
    /// Synopsis.
    pub description: String,
    /// Cast.
    pub cast: Vec<String>,
    /// Director.
    pub director: String,
    /// Genres (lowercase).
    pub genres: Vec<String>,
    /// Language (lowercase).
    pub language: String,
    /// Average stars, 0 without reviews.
    pub rating: f64,
    /// Number of reviews.
    pub rating_count: u64,
    /// Cities with an upcoming scheduled show, lowercase.
    pub cities: Vec<String>,
    /// Start of the next scheduled show, Unix ms (absent when none; `u64::MAX` sorts it last).
    pub next_show_ms: Option<u64>,
    /// Upcoming scheduled shows.
    pub upcoming_shows: u64,
    /// Poster.
    pub poster_url: Option<String>,
    /// Certificate, e.g. `UA`.
    pub certificate: String,
    /// Running time, minutes.
    pub duration_min: u32,
    /// Release date `YYYY-MM-DD`.
    pub release_date: String,
}

impl From<&MovieDoc> for SearchDoc {
    fn from(doc: &MovieDoc) -> Self {
        let movie = &doc.movie;
        SearchDoc {
            movie_id: movie.movie_id,
            title: movie.spec.title.clone(),
            description: movie.spec.description.clone(),
            cast: movie.spec.cast.clone(),
            director: movie.spec.director.clone(),
            genres: movie.spec.genres.iter().map(|g| g.to_lowercase()).collect(),
            language: movie.spec.language.to_lowercase(),
            rating: movie.rating.average().unwrap_or(0.0),
            rating_count: movie.rating.count,
            cities: doc.cities.iter().map(|c| c.to_lowercase()).collect(),
            next_show_ms: doc.next_show_ms,
            upcoming_shows: doc.upcoming_shows,
            poster_url: movie.spec.poster_url.clone(),
            certificate: movie.spec.certificate.clone(),
            duration_min: movie.spec.duration_min,
            release_date: movie.spec.release_date.clone(),
        }
    }
}

/// Order of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Best match first (then rating).
    #[default]
    Relevance,
    /// Highest rated first.
    Rating,
    /// Soonest next show first (movies without shows last).
    NextShow,
    /// By title.
    Title,
}

/// A search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchRequest {
    /// Free text (may be empty: then every movie matches the filters).
    pub q: String,
    /// Only movies with an upcoming show in this city (case-insensitive).
    pub city: Option<String>,
    /// Only movies of this genre.
    pub genre: Option<String>,
    /// Only movies in this language.
    pub language: Option<String>,
    /// Only movies rated at least this (0..=5).
    pub min_rating: Option<f64>,
    /// Order.
    pub sort: Sort,
    /// Hits to skip.
    pub offset: usize,
    /// Hits to return, 1..=[`PAGE_SIZE_MAX`].
    pub limit: usize,
}

/// One result: the document and its highlighted fields (HTML-escaped text with the matched
/// words wrapped in `<em>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The movie.
    #[serde(flatten)]
    pub doc: SearchDoc,
    /// `title` and `description` with matches marked (only fields with a match).
    pub highlights: BTreeMap<String, String>,
}

/// Facet counts of the movies matching the query and filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facets {
    /// Genre -> matching movies.
    pub genres: BTreeMap<String, u64>,
    /// Language -> matching movies.
    pub languages: BTreeMap<String, u64>,
}

/// A page of results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// The hits of this page.
    pub hits: Vec<SearchHit>,
    /// Matching movies in total.
    pub total: u64,
    /// Facet counts for the current query and filters.
    pub facets: Facets,
}

/// An autocomplete suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The movie.
    pub movie_id: u64,
    /// Its title.
    pub title: String,
}

/// A search backend. Writes are idempotent (upserting a document twice, or deleting a missing
/// one, is harmless), so a sync worker that replays part of the feed after a crash is safe.
pub trait SearchIndex: Send + Sync {
    /// `embedded` or `meilisearch`.
    fn backend(&self) -> &'static str;
    /// Creates the index and applies its settings (idempotent); answers whether the documents
    /// already there were written in an older layout and must be rebuilt. The sync worker calls
    /// it, retrying, before its first write, so that a backend that is down when the process
    /// starts delays search, never the process.
    fn prepare(&self) -> BoxFuture<'_, Result<bool, SearchError>> {
        Box::pin(async { Ok(false) })
    }
    /// Adds or replaces documents by `movie_id`.
    fn upsert(&self, docs: Vec<SearchDoc>) -> BoxFuture<'_, Result<(), SearchError>>;
    /// Removes documents.
    fn delete(&self, movie_ids: Vec<u64>) -> BoxFuture<'_, Result<(), SearchError>>;
    /// Removes every document (before a rebuild).
    fn clear(&self) -> BoxFuture<'_, Result<(), SearchError>>;
    /// Runs a search.
    fn search<'a>(
        &'a self,
        request: &'a SearchRequest,
    ) -> BoxFuture<'a, Result<SearchResponse, SearchError>>;
    /// Titles matching what was typed (every word, the last as a prefix), those starting with
    /// it first, each group in title order ([`rank_suggestions`]).
    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>, SearchError>>;
    /// Records, beside the index, the last catalog change it holds, so that processes that
    /// search it without syncing it (a gateway with `--search-sync false`) can report the lag.
    /// The embedded index, private to its process, records nothing.
    fn save_progress(&self, _indexed_seq: u64) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async { Ok(()) })
    }
    /// The last catalog change recorded by [`SearchIndex::save_progress`] (`None`: none yet).
    fn progress(&self) -> BoxFuture<'_, Result<Option<u64>, SearchError>> {
        Box::pin(async { Ok(None) })
    }
}

/// A hit for `doc`: its title and a description snippet highlighted for the query's words.
/// Both backends build highlights here, from the stored text, so every highlight is HTML-escaped
/// with only the `<em>` marks added, whatever the backend.
pub fn hit(doc: SearchDoc, query_words: &[String]) -> SearchHit {
    let mut highlights = BTreeMap::new();
    if let Some(h) = highlight(&doc.title, query_words, usize::MAX) {
        highlights.insert("title".to_owned(), h);
    }
    if let Some(h) = highlight(&doc.description, query_words, SNIPPET_CHARS) {
        highlights.insert("description".to_owned(), h);
    }
    SearchHit { doc, highlights }
}

/// The suggestions for `typed` among `pool`, the matching titles in title order (at most
/// [`SUGGEST_POOL`]): titles whose words start with the typed words first, each group in title
/// order, at most `limit`.
pub fn rank_suggestions(typed: &str, pool: Vec<Suggestion>, limit: usize) -> Vec<Suggestion> {
    let typed = tokenize(typed);
    let starts = |title: &str| {
        let words = tokenize(title);
        let Some((last, init)) = typed.split_last() else { return false };
        words.len() >= typed.len()
            && words[..init.len()] == *init
            && words[init.len()].starts_with(last.as_str())
    };
    let (first, rest): (Vec<Suggestion>, Vec<Suggestion>) =
        pool.into_iter().partition(|s| starts(&s.title));
    first.into_iter().chain(rest).take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_starting_with_the_typed_words_come_first() {
        let pool = ["Blue Harbour", "Harbor Moon", "Harbour Lights", "Quiet Harbour"]
            .iter()
            .enumerate()
            .map(|(i, t)| Suggestion { movie_id: i as u64, title: (*t).to_owned() })
            .collect();
        let titles: Vec<String> =
            rank_suggestions("harb", pool, 3).into_iter().map(|s| s.title).collect();
        assert_eq!(titles, ["Harbor Moon", "Harbour Lights", "Blue Harbour"]);
    }
}
