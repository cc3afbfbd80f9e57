//! Movie search for Marquee: the index backends, the catalog sync worker and the
//! `marquee-search-sync` binary.
//!
//! Why a crate of its own: search is a *derived* view of the catalog, kept by a worker that
//! tails the meta group's change feed ([`sync`], reading the cluster through
//! [`cluster_source`]), and it has two interchangeable backends behind one [`SearchIndex`]
//! trait: an embedded tantivy index ([`embedded`], the default: the dev cluster and CI need no
//! server) and Meilisearch ([`meili`], through `meilisearch-sdk`, for production), chosen by
//! [`backend`]. The gateway answers `/v1/search` from whichever is configured and may run the
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
    /// Matching movies in total (Meilisearch: its estimate).
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
    /// Creates the index and applies its settings (idempotent). The sync worker calls it,
    /// retrying, before its first write, so that a backend that is down when the process starts
    /// delays search, never the process.
    fn prepare(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async { Ok(()) })
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
    /// Titles starting with (or close to) what was typed, best first.
    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>, SearchError>>;
}

/// Splits text into lowercase alphanumeric words (what both backends match on).
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Typos tolerated in a query word: none for short words, one from 4 characters, two from 8
/// (Meilisearch's defaults are 5 and 9; ours are a little more generous on short titles).
pub fn typo_budget(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Levenshtein distance, bounded: returns `max + 1` as soon as it is exceeded.
fn edit_distance(a: &str, b: &str, max: u8) -> u8 {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > usize::from(max) {
        return max + 1;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current[j + 1] = (previous[j] + cost).min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    u8::try_from(previous[b.len()]).unwrap_or(u8::MAX).min(max + 1)
}

/// Whether a document word matches a query word: equal, within its typo budget, or (for the
/// last word typed, `prefix`) starting with it.
pub fn word_matches(query_word: &str, doc_word: &str, prefix: bool) -> bool {
    if doc_word == query_word || (prefix && doc_word.starts_with(query_word)) {
        return true;
    }
    let budget = typo_budget(query_word);
    budget > 0 && edit_distance(query_word, doc_word, budget) <= budget
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` HTML-escaped with the words matching the query wrapped in `<em>`, or `None` when no
/// word matches. Long texts are cut to about `max_chars` around the first match.
pub fn highlight(text: &str, query_words: &[String], max_chars: usize) -> Option<String> {
    let last = query_words.len().checked_sub(1)?;
    let mut pieces: Vec<(String, bool)> = Vec::new();
    let mut word = String::new();
    let mut any = false;
    let flush = |word: &mut String, pieces: &mut Vec<(String, bool)>, any: &mut bool| {
        if word.is_empty() {
            return;
        }
        let lower = word.to_lowercase();
        let hit = query_words.iter().enumerate().any(|(i, q)| word_matches(q, &lower, i == last));
        *any |= hit;
        pieces.push((std::mem::take(word), hit));
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut pieces, &mut any);
            pieces.push((c.to_string(), false));
        }
    }
    flush(&mut word, &mut pieces, &mut any);
    if !any {
        return None;
    }
    // Window of at most `max_chars` characters starting a little before the first match.
    let first = pieces.iter().position(|(_, hit)| *hit).unwrap_or(0);
    let mut start = first;
    let mut budget = max_chars / 4;
    while start > 0 && budget > pieces[start - 1].0.chars().count() {
        budget -= pieces[start - 1].0.chars().count();
        start -= 1;
    }
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut used = 0;
    for (piece, hit) in &pieces[start..] {
        if used >= max_chars {
            out.push('…');
            break;
        }
        used += piece.chars().count();
        if *hit {
            out.push_str("<em>");
            out.push_str(&escape_html(piece));
            out.push_str("</em>");
        } else {
            out.push_str(&escape_html(piece));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_exactly_with_typos_and_by_prefix() {
        assert!(word_matches("monsoon", "monsoon", false));
        assert!(word_matches("monsoom", "monsoon", false), "one typo in a 7-letter word");
        assert!(!word_matches("monsun", "monsoon", false), "two typos in a 6-letter word");
        assert!(!word_matches("cat", "car", false), "short words need exact matches");
        assert!(word_matches("harbur", "harbour", false));
        assert!(word_matches("mon", "monsoon", true));
        assert!(!word_matches("mon", "monsoon", false));
        assert_eq!(tokenize("Monsoon Run: Part-2!"), ["monsoon", "run", "part", "2"]);
    }

    #[test]
    fn highlights_mark_matches_and_escape_html() {
        let q = tokenize("harbor");
        assert_eq!(
            highlight("Quiet <Harbour> & sea", &q, 100).unwrap(),
            "Quiet &lt;<em>Harbour</em>&gt; &amp; sea"
        );
        assert_eq!(highlight("Nothing here", &q, 100), None);
        let long = format!("{} harbour {}", "word ".repeat(100), "tail ".repeat(100));
        let cut = highlight(&long, &q, 60).unwrap();
        assert!(cut.starts_with('…') && cut.ends_with('…') && cut.contains("<em>harbour</em>"));
        assert!(cut.chars().count() < 90, "{cut}");
    }
}
