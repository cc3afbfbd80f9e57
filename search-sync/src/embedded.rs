//! The embedded backend: an in-memory tantivy index, the default (no server to run).
//!
//! tantivy does the retrieval: every query word becomes a disjunction of an exact term, a
//! fuzzy term within the word's typo budget and (for the last word) a prefix within it, over
//! title (boost 4), cast and director (2) and description (1); the words are ANDed; city, genre
//! and language are exact-term filters. The documents themselves are kept beside the index
//! (they are small: one per movie) with their words, which is where the matches are checked
//! against the shared word rules ([`crate::text`]: tantivy's fuzzy terms do not know that a
//! typo on the first letter counts two) and where rating filters, sorting, facet counts and
//! highlighting are computed. That is a scan of the matches, fine for the tens of thousands of
//! movies a catalog has; Meilisearch is the backend for more.
//!
//! Each gateway keeps its own embedded index, fed by its own sync worker: search is a cache
//! of the catalog, rebuilt from the change feed on start.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use tantivy::collector::TopDocs;
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::text::matches_all;
use crate::{
    hit, rank_suggestions, title_key, tokenize, typo_budget, BoxFuture, Facets, SearchDoc,
    SearchError, SearchIndex, SearchRequest, SearchResponse, Sort, Suggestion, SUGGEST_POOL,
};

/// Memory of the index writer (tantivy's minimum is 15 MB per thread; one thread).
const WRITER_MEMORY: usize = 20_000_000;

struct Fields {
    movie_id: Field,
    title: Field,
    people: Field,
    description: Field,
    city: Field,
    genre: Field,
    language: Field,
}

/// The embedded index. Indexing and searching are CPU work: they run on blocking threads, off
/// the async workers that serve requests.
#[derive(Clone)]
pub struct EmbeddedIndex {
    inner: Arc<Inner>,
}

struct Inner {
    fields: Fields,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    reader: IndexReader,
    docs: RwLock<BTreeMap<u64, Entry>>,
}

/// A document and its words, as the shared word rules match them.
struct Entry {
    doc: SearchDoc,
    /// Distinct words of the title, cast, director and description.
    words: Vec<String>,
    /// Words of the title (suggestions match titles only).
    title_words: Vec<String>,
    /// [`title_key`] of the title.
    title_key: String,
}

impl Entry {
    fn new(doc: SearchDoc) -> Entry {
        let mut words = tokenize(&doc.title);
        let title_words = words.clone();
        for text in doc.cast.iter().chain([&doc.director, &doc.description]) {
            words.extend(tokenize(text));
        }
        words.sort_unstable();
        words.dedup();
        Entry { title_key: title_key(&doc.title), doc, words, title_words }
    }
}

fn backend(e: impl std::fmt::Display) -> SearchError {
    SearchError::Backend(e.to_string())
}

impl EmbeddedIndex {
    /// An empty in-memory index.
    ///
    /// # Errors
    /// tantivy could not create the writer or reader.
    pub fn new() -> Result<EmbeddedIndex, SearchError> {
        Ok(EmbeddedIndex { inner: Arc::new(Inner::new()?) })
    }

    /// Documents indexed.
    pub fn len(&self) -> usize {
        self.inner.docs.read().expect("docs lock never poisoned").len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `work` on the index on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, SearchError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner)).await.map_err(backend)?
    }
}

impl Inner {
    fn new() -> Result<Inner, SearchError> {
        let mut schema = Schema::builder();
        let fields = Fields {
            movie_id: schema.add_u64_field("movie_id", INDEXED | STORED | FAST),
            title: schema.add_text_field("title", TEXT),
            people: schema.add_text_field("people", TEXT),
            description: schema.add_text_field("description", TEXT),
            city: schema.add_text_field("city", STRING),
            genre: schema.add_text_field("genre", STRING),
            language: schema.add_text_field("language", STRING),
        };
        let index = Index::create_in_ram(schema.build());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY).map_err(backend)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(backend)?;
        Ok(Inner { fields, writer: Mutex::new(writer), reader, docs: RwLock::new(BTreeMap::new()) })
    }

    fn write(
        &self,
        upserts: Vec<SearchDoc>,
        deletes: Vec<u64>,
        clear: bool,
    ) -> Result<(), SearchError> {
        let f = &self.fields;
        let mut writer = self.writer.lock().expect("writer lock never poisoned");
        if clear {
            writer.delete_all_documents().map_err(backend)?;
        }
        for id in deletes.iter().chain(upserts.iter().map(|d| &d.movie_id)) {
            writer.delete_term(Term::from_field_u64(f.movie_id, *id));
        }
        for d in &upserts {
            let mut doc = TantivyDocument::default();
            doc.add_u64(f.movie_id, d.movie_id);
            doc.add_text(f.title, &d.title);
            doc.add_text(f.people, d.cast.join(" "));
            doc.add_text(f.people, &d.director);
            doc.add_text(f.description, &d.description);
            for city in &d.cities {
                doc.add_text(f.city, city);
            }
            for genre in &d.genres {
                doc.add_text(f.genre, genre);
            }
            doc.add_text(f.language, &d.language);
            writer.add_document(doc).map_err(backend)?;
        }
        writer.commit().map_err(backend)?;
        self.reader.reload().map_err(backend)?;
        // The side table changes after the index, under the writer lock: a search may briefly
        // see a new match whose document it then skips, never a document without its match.
        let mut docs = self.docs.write().expect("docs lock never poisoned");
        if clear {
            docs.clear();
        }
        for id in deletes {
            docs.remove(&id);
        }
        for d in upserts {
            docs.insert(d.movie_id, Entry::new(d));
        }
        Ok(())
    }

    /// The query for free text: every word must match one of the text fields.
    fn text_query(&self, words: &[String]) -> Box<dyn Query> {
        if words.is_empty() {
            return Box::new(AllQuery);
        }
        let f = &self.fields;
        let last = words.len() - 1;
        let mut musts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (i, word) in words.iter().enumerate() {
            let mut shoulds: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (field, boost) in [(f.title, 4.0), (f.people, 2.0), (f.description, 1.0)] {
                let term = Term::from_field_text(field, word);
                let exact = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
                shoulds
                    .push((Occur::Should, Box::new(BoostQuery::new(Box::new(exact), boost * 2.0))));
                let budget = typo_budget(word);
                if budget > 0 {
                    let fuzzy = FuzzyTermQuery::new(term.clone(), budget, true);
                    shoulds
                        .push((Occur::Should, Box::new(BoostQuery::new(Box::new(fuzzy), boost))));
                }
                if i == last {
                    let prefix = FuzzyTermQuery::new_prefix(term, budget, true);
                    shoulds
                        .push((Occur::Should, Box::new(BoostQuery::new(Box::new(prefix), boost))));
                }
            }
            musts.push((Occur::Must, Box::new(BooleanQuery::new(shoulds))));
        }
        Box::new(BooleanQuery::new(musts))
    }

    fn run(&self, request: &SearchRequest) -> Result<SearchResponse, SearchError> {
        let f = &self.fields;
        let words = tokenize(&request.q);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, self.text_query(&words))];
        for (field, value) in
            [(f.city, &request.city), (f.genre, &request.genre), (f.language, &request.language)]
        {
            if let Some(value) = value {
                let term = Term::from_field_text(field, &value.to_lowercase());
                clauses
                    .push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
            }
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let everything = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX).max(1);
        let matches = searcher
            .search(&query, &TopDocs::with_limit(everything).order_by_score())
            .map_err(backend)?;
        let docs = self.docs.read().expect("docs lock never poisoned");
        let mut scored: Vec<(f32, &Entry)> = Vec::with_capacity(matches.len());
        for (score, address) in matches {
            let stored: TantivyDocument = searcher.doc(address).map_err(backend)?;
            let Some(id) = stored.get_first(f.movie_id).and_then(|v| v.as_u64()) else { continue };
            let Some(entry) = docs.get(&id) else { continue };
            if request.min_rating.is_some_and(|min| entry.doc.rating < min)
                || !matches_all(&words, entry.words.iter().map(String::as_str))
            {
                continue;
            }
            scored.push((score, entry));
        }
        let mut facets = Facets::default();
        for (_, entry) in &scored {
            for genre in &entry.doc.genres {
                *facets.genres.entry(genre.clone()).or_default() += 1;
            }
            *facets.languages.entry(entry.doc.language.clone()).or_default() += 1;
        }
        // Every sort but relevance is strict: its keys, then the title, then the id (the same
        // keys the Meilisearch backend sorts by, so both give the same order).
        let by_title = |a: &Entry, b: &Entry| {
            a.title_key.cmp(&b.title_key).then(a.doc.movie_id.cmp(&b.doc.movie_id))
        };
        match request.sort {
            Sort::Relevance => scored.sort_by(|(sa, a), (sb, b)| {
                sb.total_cmp(sa)
                    .then(b.doc.rating.total_cmp(&a.doc.rating))
                    .then_with(|| by_title(a, b))
            }),
            // Equal averages: the one more people rated first (a single 5-star review does not
            // outrank forty).
            Sort::Rating => scored.sort_by(|(_, a), (_, b)| {
                b.doc
                    .rating
                    .total_cmp(&a.doc.rating)
                    .then(b.doc.rating_count.cmp(&a.doc.rating_count))
                    .then_with(|| by_title(a, b))
            }),
            Sort::NextShow => scored.sort_by(|(_, a), (_, b)| {
                a.doc
                    .next_show_ms
                    .unwrap_or(u64::MAX)
                    .cmp(&b.doc.next_show_ms.unwrap_or(u64::MAX))
                    .then_with(|| by_title(a, b))
            }),
            Sort::Title => scored.sort_by(|(_, a), (_, b)| by_title(a, b)),
        }
        let total = scored.len() as u64;
        let hits = scored
            .into_iter()
            .skip(request.offset)
            .take(request.limit)
            .map(|(_, entry)| hit(entry.doc.clone(), &words))
            .collect();
        Ok(SearchResponse { hits, total, facets })
    }

    fn run_suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>, SearchError> {
        let words = tokenize(prefix);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let f = &self.fields;
        let last = words.len() - 1;
        let musts: Vec<(Occur, Box<dyn Query>)> = words
            .iter()
            .enumerate()
            .map(|(i, word)| {
                let term = Term::from_field_text(f.title, word);
                let q: Box<dyn Query> = if i == last {
                    Box::new(FuzzyTermQuery::new_prefix(term, typo_budget(word), true))
                } else {
                    Box::new(FuzzyTermQuery::new(term, typo_budget(word), true))
                };
                (Occur::Must, q)
            })
            .collect();
        let searcher = self.reader.searcher();
        let everything = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX).max(1);
        let matches = searcher
            .search(&BooleanQuery::new(musts), &TopDocs::with_limit(everything).order_by_score())
            .map_err(backend)?;
        let docs = self.docs.read().expect("docs lock never poisoned");
        let mut pool: Vec<&Entry> = Vec::new();
        for (_, address) in matches {
            let stored: TantivyDocument = searcher.doc(address).map_err(backend)?;
            if let Some(entry) =
                stored.get_first(f.movie_id).and_then(|v| v.as_u64()).and_then(|id| docs.get(&id))
            {
                if matches_all(&words, entry.title_words.iter().map(String::as_str)) {
                    pool.push(entry);
                }
            }
        }
        pool.sort_by(|a, b| {
            a.title_key.cmp(&b.title_key).then(a.doc.movie_id.cmp(&b.doc.movie_id))
        });
        let pool = pool
            .into_iter()
            .take(SUGGEST_POOL)
            .map(|e| Suggestion { movie_id: e.doc.movie_id, title: e.doc.title.clone() })
            .collect();
        Ok(rank_suggestions(prefix, pool, limit))
    }
}

impl SearchIndex for EmbeddedIndex {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn upsert(&self, docs: Vec<SearchDoc>) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(self.blocking(move |index| index.write(docs, Vec::new(), false)))
    }

    fn delete(&self, movie_ids: Vec<u64>) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(self.blocking(move |index| index.write(Vec::new(), movie_ids, false)))
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(self.blocking(|index| index.write(Vec::new(), Vec::new(), true)))
    }

    fn search<'a>(
        &'a self,
        request: &'a SearchRequest,
    ) -> BoxFuture<'a, Result<SearchResponse, SearchError>> {
        let request = request.clone();
        Box::pin(self.blocking(move |index| index.run(&request)))
    }

    fn suggest<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Suggestion>, SearchError>> {
        let prefix = prefix.to_owned();
        Box::pin(self.blocking(move |index| index.run_suggest(&prefix, limit)))
    }
}

impl std::fmt::Debug for EmbeddedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedIndex").field("docs", &self.len()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn doc(id: u64, title: &str, genre: &str, language: &str, city: &str) -> SearchDoc {
        SearchDoc {
            movie_id: id,
            title: title.into(),
            description: format!("The story of {title}, told at sea."),
            cast: vec!["Asha Rao".into()],
            director: "Vikram Sen".into(),
            genres: vec![genre.into()],
            language: language.into(),
            rating: id as f64 % 5.0,
            rating_count: 1,
            cities: vec![city.into()],
            next_show_ms: Some(1_000 * id),
            upcoming_shows: 1,
            poster_url: None,
            certificate: "UA".into(),
            duration_min: 120,
            release_date: "2026-01-01".into(),
        }
    }

    fn ask(q: &str) -> SearchRequest {
        SearchRequest { q: q.into(), limit: 10, ..SearchRequest::default() }
    }

    #[tokio::test]
    async fn typos_prefixes_filters_facets_and_deletes() {
        let index = EmbeddedIndex::new().unwrap();
        index
            .upsert(vec![
                doc(1, "Monsoon Run", "action", "hindi", "mumbai"),
                doc(2, "Quiet Harbour", "drama", "english", "pune"),
                doc(3, "Harbour Lights", "drama", "tamil", "mumbai"),
            ])
            .await
            .unwrap();
        let titles =
            |r: &SearchResponse| r.hits.iter().map(|h| h.doc.title.clone()).collect::<Vec<_>>();
        let r = index.search(&ask("harbur")).await.unwrap();
        assert_eq!(r.total, 2, "one typo tolerated: {r:?}");
        assert_eq!(r.facets.languages.get("tamil"), Some(&1));
        assert_eq!(r.facets.genres.get("drama"), Some(&2));
        assert_eq!(r.hits[0].highlights["title"].matches("<em>").count(), 1);
        assert_eq!(titles(&index.search(&ask("mons")).await.unwrap()), ["Monsoon Run"], "prefix");
        assert_eq!(index.search(&ask("vikram")).await.unwrap().total, 3, "director");
        let mut filtered = ask("harbour");
        filtered.city = Some("Mumbai".into());
        assert_eq!(titles(&index.search(&filtered).await.unwrap()), ["Harbour Lights"]);
        let mut by_rating = ask("");
        by_rating.sort = Sort::Rating;
        assert_eq!(titles(&index.search(&by_rating).await.unwrap())[0], "Harbour Lights");
        index.upsert(vec![doc(8, "Harbour Lights 2", "drama", "tamil", "mumbai")]).await.unwrap();
        let mut popular = doc(13, "Harbour Lights 3", "drama", "tamil", "mumbai");
        popular.rating_count = 40;
        index.upsert(vec![popular]).await.unwrap();
        assert_eq!(
            titles(&index.search(&by_rating).await.unwrap())[..3],
            ["Harbour Lights 3", "Harbour Lights", "Harbour Lights 2"],
            "equal averages: more ratings first, then title"
        );
        index.delete(vec![8, 13]).await.unwrap();
        by_rating.min_rating = Some(2.5);
        assert_eq!(index.search(&by_rating).await.unwrap().total, 1);
        let s = index.suggest("quie", 5).await.unwrap();
        assert_eq!(s, [Suggestion { movie_id: 2, title: "Quiet Harbour".into() }]);
        // Replace and delete.
        index.upsert(vec![doc(2, "Silent Harbour", "drama", "english", "pune")]).await.unwrap();
        assert_eq!(index.search(&ask("quiet")).await.unwrap().total, 0);
        assert_eq!(index.search(&ask("silent")).await.unwrap().total, 1);
        index.delete(vec![1]).await.unwrap();
        assert_eq!(index.search(&ask("monsoon")).await.unwrap().total, 0);
        assert_eq!(index.len(), 2);
        index.clear().await.unwrap();
        assert!(index.is_empty());
        assert_eq!(index.search(&ask("")).await.unwrap().total, 0);
    }
}
