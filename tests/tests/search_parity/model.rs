//! The parity test's catalog and its model of the documented search rules (docs/search.md,
//! "Documents and matching"), written independently of the backends: a query's words must all
//! match a word of the title, cast, director or description — equal; the last word also by
//! prefix; within a typo budget of 1 from 4 characters and 2 from 8, adjacent transpositions
//! counting one and a first-letter typo counting two (for the last word, the budget applies
//! to a prefix) — and every sort but relevance is strict (its key, then title, then id).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

const ADJ: [&str; 12] = [
    "Midnight", "Silent", "Golden", "Crimson", "Velvet", "Paper", "Iron", "Monsoon", "Quiet",
    "Hidden", "Broken", "Distant",
];
const NOUN: [&str; 12] = [
    "Harbour", "River", "Signal", "Orbit", "Garden", "Lantern", "Frontier", "Mirror", "Compass",
    "Voyage", "Letters", "Tides",
];
const TAIL: [&str; 5] = ["", " Returns", " Forever", " Rising", " Again"];
const PLACE: [&str; 6] = ["the coast", "Pune", "the hills", "old Delhi", "the docks", "Chennai"];
const FIRST: [&str; 8] = ["Meera", "Asha", "Vikram", "Rohan", "Kavya", "Arjun", "Priya", "Nikhil"];
const LAST: [&str; 8] = ["Iyer", "Rao", "Sen", "Kapoor", "Nair", "Menon", "Das", "Bose"];
const GENRE: [&str; 5] = ["drama", "action", "comedy", "thriller", "romance"];
const LANGUAGE: [&str; 4] = ["hindi", "english", "tamil", "telugu"];

/// Titles and descriptions a browser must never run.
const HOSTILE: [(&str, &str); 3] = [
    (
        "Quokkasix <img src=x onerror=alert(1)> & Harbour",
        "<svg onload=alert(1)> Harbour nights & more.",
    ),
    ("\"Quoted\" & <script>alert(2)</script> Voyage", "A story of <b>bold</b> tides."),
    ("Tom & Jerry <b>Bold</b> Lantern", "Cats & mice <i>again</i> near the docks."),
];

/// One movie as the test writes it.
#[derive(Debug, Clone)]
pub struct MovieRow {
    pub id: u64,
    pub title: String,
    pub description: String,
    pub cast: Vec<String>,
    pub director: String,
    pub genres: Vec<String>,
    pub language: String,
}

impl MovieRow {
    /// The admin API's movie body.
    pub fn spec(&self) -> Value {
        json!({
            "title": self.title, "description": self.description, "genres": self.genres,
            "language": self.language, "duration_min": 120, "release_date": "2026-01-01",
            "cast": self.cast, "director": self.director, "certificate": "UA", "poster_url": null,
        })
    }

    fn words(&self) -> BTreeSet<String> {
        let mut words = tokenize(&self.title);
        for text in self.cast.iter().chain([&self.director, &self.description]) {
            words.extend(tokenize(text));
        }
        words.into_iter().collect()
    }
}

/// The catalog and what the cluster derives from it (ratings, next shows, cities).
#[derive(Debug, Default)]
pub struct Model {
    pub movies: BTreeMap<u64, MovieRow>,
    /// (stars sum, count) by movie.
    ratings: BTreeMap<u64, (u64, u64)>,
    /// (next show, cities) by movie.
    shows: BTreeMap<u64, (u64, BTreeSet<String>)>,
}

/// A search the query set makes.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub q: String,
    pub genre: Option<&'static str>,
    pub language: Option<&'static str>,
    pub city: Option<&'static str>,
    pub min_rating: Option<f64>,
    pub sort: &'static str,
    pub page: usize,
    pub per_page: usize,
}

impl Query {
    fn new(q: &str, sort: &'static str) -> Query {
        Query { q: q.to_owned(), sort, page: 1, per_page: 20, ..Query::default() }
    }

    fn page(mut self, page: usize, per_page: usize) -> Query {
        self.page = page;
        self.per_page = per_page;
        self
    }

    /// The query string.
    pub fn encoded(&self) -> String {
        let mut out = format!(
            "q={}&sort={}&page={}&per_page={}",
            encode(&self.q),
            self.sort,
            self.page,
            self.per_page
        );
        for (name, value) in
            [("genre", self.genre), ("language", self.language), ("city", self.city)]
        {
            if let Some(value) = value {
                out.push_str(&format!("&{name}={}", encode(value)));
            }
        }
        if let Some(min) = self.min_rating {
            out.push_str(&format!("&min_rating={min}"));
        }
        out
    }

    /// Whether the order is fully determined (every sort but relevance).
    pub fn strict(&self) -> bool {
        self.sort != "relevance"
    }
}

/// The query set: multi-word queries, operators, typos, strict sorts with and without `q`,
/// filters, pages past the 1,000th hit, hostile titles.
pub fn query_set() -> Vec<Query> {
    let mut set = vec![
        Query::new("midnight harbour", "relevance"),
        Query::new("meera iyer", "relevance").page(1, 100),
        Query::new("harbour zzzzqq", "relevance"),
        Query::new("harbour -midnight", "relevance").page(1, 100),
        Query::new("\"midnight harbour\"", "relevance"),
        Query::new("midnight harbour", "title").page(1, 100),
        Query::new("harbr", "title").page(1, 100),
        Query::new("hrabour", "rating").page(1, 50),
        Query::new("xarbour", "relevance"),
        Query::new("golden rivr", "title").page(1, 100),
        Query::new("quokkasix", "relevance"),
        Query::new("alert", "title"),
        Query::new("<img", "relevance"),
        Query::new("rao", "title").page(2, 100),
        Query::new("rao", "rating"),
        Query::new("", "rating").page(1, 50),
        Query::new("", "next_show").page(1, 50),
        Query::new("harbour", "title").page(2, 100),
        Query::new("velvet", "relevance"),
        Query::new("story", "relevance"),
        Query::new("vikram", "next_show"),
        Query::new("silent lantern returns", "title"),
        Query::new("iyer", "rating").page(2, 10),
        Query::new("zzzzqq", "title"),
        Query { min_rating: Some(3.0), ..Query::new("midnight harbour", "rating") },
        Query { genre: Some("drama"), ..Query::new("", "title").page(3, 100) },
        Query { city: Some("pune"), ..Query::new("", "next_show") },
        Query { city: Some("Mumbai"), ..Query::new("a", "relevance") },
        Query { language: Some("tamil"), min_rating: Some(2.0), ..Query::new("harbour", "rating") },
    ];
    // Every page of the whole catalog by title, past the 1,000th hit and one beyond the end.
    set.extend((1..=13).map(|page| Query::new("", "title").page(page, 100)));
    set
}

/// Autocomplete inputs and limits.
pub fn suggest_set() -> Vec<(&'static str, usize)> {
    vec![
        ("harb", 8),
        ("midnight har", 8),
        ("story", 8),
        ("quokk", 5),
        ("golden r", 20),
        ("xyzzy", 8),
        ("harbr", 8),
        ("silent", 20),
    ]
}

/// What a search must answer.
pub struct Expected {
    /// Every match, in order when the sort is strict.
    pub ids: Vec<u64>,
    /// `{genres, languages}` counts of the matches.
    pub facets: Value,
}

impl Expected {
    /// The page `query` asks for.
    pub fn page(&self, query: &Query) -> Vec<u64> {
        self.ids
            .iter()
            .copied()
            .skip((query.page - 1) * query.per_page)
            .take(query.per_page)
            .collect()
    }
}

impl Model {
    /// `movies` generated movies and the hostile ones after them.
    pub fn generate(movies: u64) -> Model {
        let mut model = Model::default();
        for id in 1..=movies {
            let i = id as usize;
            let row = MovieRow {
                id,
                title: format!(
                    "{} {}{}",
                    ADJ[i * 7 % 12],
                    NOUN[(i * 5 + i / 12) % 12],
                    TAIL[i * 3 % 5]
                ),
                description: format!(
                    "A story of {} and the {} {} near {}.",
                    NOUN[i * 11 % 12].to_lowercase(),
                    ADJ[(i * 13 + 5) % 12].to_lowercase(),
                    NOUN[(i * 17 + 3) % 12].to_lowercase(),
                    PLACE[i % 6]
                ),
                cast: vec![
                    format!("{} {}", FIRST[i % 8], LAST[i / 8 % 8]),
                    format!("{} {}", FIRST[(i * 3 + 1) % 8], LAST[(i * 5 + 2) % 8]),
                ],
                director: format!("{} {}", FIRST[(i * 7 + 3) % 8], LAST[i * 3 % 8]),
                genres: if i.is_multiple_of(3) {
                    vec![GENRE[i % 5].into(), GENRE[(i + 2) % 5].into()]
                } else {
                    vec![GENRE[i % 5].into()]
                },
                language: LANGUAGE[i / 3 % 4].into(),
            };
            model.movies.insert(id, row);
        }
        for (k, (title, description)) in HOSTILE.iter().enumerate() {
            let id = movies + 1 + k as u64;
            let row = MovieRow {
                id,
                title: (*title).into(),
                description: (*description).into(),
                cast: vec!["Asha Rao".into()],
                director: "Vikram Sen".into(),
                genres: vec!["thriller".into()],
                language: "english".into(),
            };
            model.movies.insert(id, row);
        }
        model
    }

    /// Records a review.
    pub fn review(&mut self, movie: u64, stars: u64) {
        let entry = self.ratings.entry(movie).or_default();
        entry.0 += stars;
        entry.1 += 1;
    }

    /// Records an upcoming show.
    pub fn show(&mut self, movie: u64, starts_at_ms: u64, city: &str) {
        let entry = self.shows.entry(movie).or_insert((u64::MAX, BTreeSet::new()));
        entry.0 = entry.0.min(starts_at_ms);
        entry.1.insert(city.to_lowercase());
    }

    fn rating(&self, movie: u64) -> (f64, u64) {
        match self.ratings.get(&movie) {
            #[allow(clippy::cast_precision_loss)]
            Some((sum, count)) => (*sum as f64 / *count as f64, *count),
            None => (0.0, 0),
        }
    }

    /// The expected answer to `query`.
    pub fn search(&self, query: &Query) -> Expected {
        let words = tokenize(&query.q);
        let mut hits: Vec<&MovieRow> = self
            .movies
            .values()
            .filter(|m| matches_all(&words, &m.words()))
            .filter(|m| query.genre.is_none_or(|g| m.genres.iter().any(|x| *x == g.to_lowercase())))
            .filter(|m| query.language.is_none_or(|l| m.language == l.to_lowercase()))
            .filter(|m| {
                query.city.is_none_or(|c| {
                    self.shows
                        .get(&m.id)
                        .is_some_and(|(_, cities)| cities.contains(&c.to_lowercase()))
                })
            })
            .filter(|m| query.min_rating.is_none_or(|min| self.rating(m.id).0 >= min))
            .collect();
        let title = |m: &MovieRow| (m.title.trim().to_lowercase(), m.id);
        match query.sort {
            "title" => hits.sort_by_key(|m| title(m)),
            "rating" => hits.sort_by(|a, b| {
                let ((ra, ca), (rb, cb)) = (self.rating(a.id), self.rating(b.id));
                rb.total_cmp(&ra).then(cb.cmp(&ca)).then_with(|| title(a).cmp(&title(b)))
            }),
            "next_show" => hits
                .sort_by_key(|m| (self.shows.get(&m.id).map_or(u64::MAX, |(at, _)| *at), title(m))),
            _ => {}
        }
        let mut genres: BTreeMap<String, u64> = BTreeMap::new();
        let mut languages: BTreeMap<String, u64> = BTreeMap::new();
        for m in &hits {
            for g in &m.genres {
                *genres.entry(g.clone()).or_default() += 1;
            }
            *languages.entry(m.language.clone()).or_default() += 1;
        }
        Expected {
            ids: hits.iter().map(|m| m.id).collect(),
            facets: json!({"genres": genres, "languages": languages}),
        }
    }

    /// The expected suggestions: titles matching every typed word (the last as a prefix); of
    /// the first 200 in title order, those starting with the typed words first.
    pub fn suggest(&self, typed: &str, limit: usize) -> Vec<u64> {
        let words = tokenize(typed);
        if words.is_empty() {
            return Vec::new();
        }
        let mut pool: Vec<&MovieRow> = self
            .movies
            .values()
            .filter(|m| matches_all(&words, &tokenize(&m.title).into_iter().collect()))
            .collect();
        pool.sort_by_key(|m| (m.title.trim().to_lowercase(), m.id));
        pool.truncate(200);
        let starts = |m: &MovieRow| {
            let title = tokenize(&m.title);
            let (last, init) = words.split_last().unwrap();
            title.len() >= words.len()
                && title[..init.len()] == *init
                && title[init.len()].starts_with(last.as_str())
        };
        let (first, rest): (Vec<&MovieRow>, Vec<&MovieRow>) =
            pool.into_iter().partition(|m| starts(m));
        first.into_iter().chain(rest).take(limit).map(|m| m.id).collect()
    }

    /// Whether some word of `title` matches some word of `q` (then the title is highlighted).
    pub fn title_matches(&self, q: &str, title: &str) -> bool {
        let words = tokenize(q);
        let last = words.len().saturating_sub(1);
        tokenize(title)
            .iter()
            .any(|t| words.iter().enumerate().any(|(i, w)| word_matches(w, t, i == last)))
    }
}

fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn matches_all(words: &[String], doc: &BTreeSet<String>) -> bool {
    let last = words.len().saturating_sub(1);
    words.iter().enumerate().all(|(i, w)| doc.iter().any(|d| word_matches(w, d, i == last)))
}

/// Optimal-string-alignment distance between `a` and `b`.
fn distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

fn word_matches(query: &str, word: &str, prefix: bool) -> bool {
    let (q, w): (Vec<char>, Vec<char>) = (query.chars().collect(), word.chars().collect());
    let budget: usize = match q.len() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    };
    let allowed = if q.first() == w.first() { budget } else { budget.saturating_sub(1) };
    if prefix {
        (0..=w.len()).any(|n| distance(&q, &w[..n]) <= allowed && (allowed > 0 || n == q.len()))
            || word.starts_with(query)
    } else {
        word == query || (allowed > 0 && distance(&q, &w) <= allowed)
    }
}

/// `text` as HTML text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `text` percent-encoded for a URL query.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
