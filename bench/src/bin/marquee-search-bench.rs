//! `marquee-search-bench`: drives `/v1/search` and `/v1/search/suggest` the way users type and
//! reports throughput and latency percentiles (p50/p99/p99.9) per kind of query.
//!
//! Queries are built from the live catalog (it reads up to `--sample-movies` movies and the
//! cities first, not timed): a title word, a title word with one typo, the first letters of a
//! title (autocomplete), a cast member, a city with a genre filter, and a city's movies by next
//! show. `--concurrency` closed-loop workers send them for `--duration-s` after a warm-up.
//! Every answer must be `200` with well-formed JSON, else it counts as an error.
//!
//! ```text
//! marquee-search-bench --gateway http://127.0.0.1:8080 --concurrency 16 --duration-s 30
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Benchmarks movie search.
#[derive(Debug, Parser)]
#[command(
    name = "marquee-search-bench",
    version,
    about = "marquee-search-bench: drives /v1/search and /v1/search/suggest like users type and \
             reports throughput and latency percentiles per kind of query"
)]
struct Args {
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Closed-loop workers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured seconds (at most an hour).
    #[arg(long, default_value_t = 30.0)]
    duration_s: f64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 3.0)]
    warmup_s: f64,
    /// Movies read from the catalog to build queries from.
    #[arg(long, default_value_t = 500)]
    sample_movies: u32,
    /// Random seed (printed; the same seed repeats the same query sequence per worker).
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// What the queries are made of.
struct Vocabulary {
    title_words: Vec<String>,
    titles: Vec<String>,
    people: Vec<String>,
    genres: Vec<String>,
    cities: Vec<String>,
}

const KINDS: [&str; 6] = ["word", "typo", "suggest", "person", "city_genre", "city_next_show"];

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pick<'a>(rng: &mut StdRng, items: &'a [String]) -> &'a str {
    &items[rng.random_range(0..items.len())]
}

/// One typo: a letter replaced, dropped or doubled (as people mistype).
fn typo(rng: &mut StdRng, word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 5 {
        return word.to_owned();
    }
    let at = rng.random_range(1..chars.len() - 1);
    match rng.random_range(0..3) {
        0 => chars[at] = if chars[at] == 'e' { 'a' } else { 'e' },
        1 => {
            chars.remove(at);
        }
        _ => chars.insert(at, chars[at]),
    }
    chars.into_iter().collect()
}

impl Vocabulary {
    async fn load(http: &reqwest::Client, base: &str, sample: u32) -> anyhow::Result<Vocabulary> {
        let mut vocabulary = Vocabulary {
            title_words: Vec::new(),
            titles: Vec::new(),
            people: Vec::new(),
            genres: Vec::new(),
            cities: Vec::new(),
        };
        let cities: Value = http.get(format!("{base}/v1/cities")).send().await?.json().await?;
        for city in cities.as_array().context("cities")? {
            vocabulary.cities.push(city["city"].as_str().unwrap_or_default().to_owned());
        }
        let mut page = 1;
        while (vocabulary.titles.len() as u32) < sample {
            let body: Value = http
                .get(format!("{base}/v1/movies?per_page=100&page={page}"))
                .send()
                .await?
                .json()
                .await?;
            let items = body["items"].as_array().context("movies")?;
            if items.is_empty() {
                break;
            }
            for movie in items {
                let title = movie["title"].as_str().unwrap_or_default();
                vocabulary.titles.push(title.to_owned());
                vocabulary.title_words.extend(
                    title.split_whitespace().filter(|w| w.len() >= 5).map(str::to_lowercase),
                );
                for person in movie["cast"].as_array().into_iter().flatten() {
                    vocabulary.people.push(person.as_str().unwrap_or_default().to_owned());
                }
                for genre in movie["genres"].as_array().into_iter().flatten() {
                    vocabulary.genres.push(genre.as_str().unwrap_or_default().to_owned());
                }
            }
            page += 1;
        }
        vocabulary.genres.sort();
        vocabulary.genres.dedup();
        anyhow::ensure!(
            !vocabulary.title_words.is_empty() && !vocabulary.cities.is_empty(),
            "the catalog is empty: load one first (marquee-seed)"
        );
        if vocabulary.people.is_empty() {
            vocabulary.people.push("Rao".into());
        }
        Ok(vocabulary)
    }

    /// A request path of a random kind; returns (kind index, path).
    fn query(&self, rng: &mut StdRng) -> (usize, String) {
        let kind = rng.random_range(0..KINDS.len());
        let path = match kind {
            0 => format!("/v1/search?q={}", encode(pick(rng, &self.title_words))),
            1 => {
                let word = pick(rng, &self.title_words).to_owned();
                format!("/v1/search?q={}", encode(&typo(rng, &word)))
            }
            2 => {
                let title = pick(rng, &self.titles);
                let typed: String = title.chars().take(rng.random_range(3..=6)).collect();
                format!("/v1/search/suggest?q={}", encode(&typed))
            }
            3 => {
                let person = pick(rng, &self.people);
                let last = person.split_whitespace().last().unwrap_or(person).to_owned();
                format!("/v1/search?q={}", encode(&last))
            }
            4 => format!(
                "/v1/search?city={}&genre={}",
                encode(pick(rng, &self.cities)),
                encode(pick(rng, &self.genres))
            ),
            _ => format!("/v1/search?city={}&sort=next_show", encode(pick(rng, &self.cities))),
        };
        (kind, path)
    }
}

struct Outcome {
    histograms: Vec<Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

async fn worker(
    http: reqwest::Client,
    base: Arc<str>,
    vocabulary: Arc<Vocabulary>,
    mut rng: StdRng,
    measure_from: Instant,
    until: Instant,
) -> Outcome {
    let mut outcome = Outcome {
        histograms: KINDS
            .iter()
            .map(|_| Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds"))
            .collect(),
        errors: BTreeMap::new(),
    };
    while Instant::now() < until {
        let (kind, path) = vocabulary.query(&mut rng);
        let started = Instant::now();
        let result = http.get(format!("{base}{path}")).send().await;
        let ok = match result {
            Ok(response) if response.status() == 200 => response.json::<Value>().await.is_ok(),
            Ok(response) => {
                *outcome
                    .errors
                    .entry(format!("{} {}", KINDS[kind], response.status()))
                    .or_default() += 1;
                continue;
            }
            Err(e) => {
                let key = if e.is_timeout() { "timeout" } else { "transport" };
                *outcome.errors.entry(format!("{} {key}", KINDS[kind])).or_default() += 1;
                continue;
            }
        };
        if !ok {
            *outcome.errors.entry(format!("{} bad json", KINDS[kind])).or_default() += 1;
            continue;
        }
        if started >= measure_from {
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
            outcome.histograms[kind].saturating_record(micros);
        }
    }
    outcome
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!((1..=4096).contains(&args.concurrency), "--concurrency must be 1..=4096");
    anyhow::ensure!(
        args.duration_s > 0.0
            && args.duration_s <= 3600.0
            && (0.0..=600.0).contains(&args.warmup_s),
        "--duration-s must be in (0, 3600] and --warmup-s in [0, 600]"
    );
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    println!("marquee-search-bench: seed {seed}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(args.concurrency + 4)
        .tcp_nodelay(true)
        .build()?;
    let base: Arc<str> = args.gateway.trim_end_matches('/').into();
    let vocabulary = Arc::new(Vocabulary::load(&http, &base, args.sample_movies).await?);
    println!(
        "setup: {} movies, {} title words, {} cities sampled (not measured)",
        vocabulary.titles.len(),
        vocabulary.title_words.len(),
        vocabulary.cities.len()
    );
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup_s);
    let until = measure_from + Duration::from_secs_f64(args.duration_s);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            tokio::spawn(worker(
                http.clone(),
                Arc::clone(&base),
                Arc::clone(&vocabulary),
                rng,
                measure_from,
                until,
            ))
        })
        .collect();
    let mut total: Vec<Histogram<u64>> = KINDS
        .iter()
        .map(|_| Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds"))
        .collect();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for handle in workers {
        let outcome = handle.await.context("a worker panicked")?;
        for (sum, h) in total.iter_mut().zip(&outcome.histograms) {
            sum.add(h).context("merging histograms")?;
        }
        for (k, v) in outcome.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    let window = until.saturating_duration_since(measure_from).as_secs_f64();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds");
    let ms = |us: u64| us as f64 / 1000.0;
    let mut rows = Vec::new();
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "kind", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for (kind, h) in KINDS.iter().zip(&total) {
        all.add(h).context("merging histograms")?;
        let row = (kind.to_string(), h.len() as f64 / window, h);
        rows.push(row);
    }
    rows.push(("all".to_owned(), all.len() as f64 / window, &all));
    let mut json_rows = serde_json::Map::new();
    for (kind, rate, h) in &rows {
        let (p50, p99, p999, max) = (
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
        );
        println!("{kind:<16} {rate:>9.1} {p50:>9.2} {p99:>9.2} {p999:>9.2} {max:>9.2}");
        json_rows.insert(
            kind.clone(),
            serde_json::json!({"rate_per_s": rate, "count": h.len(), "p50_ms": p50, "p99_ms": p99, "p999_ms": p999, "max_ms": max}),
        );
    }
    let error_count: u64 = errors.values().sum();
    println!("errors: {error_count} {errors:?}");
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "seed": seed, "concurrency": args.concurrency, "duration_s": window,
            "kinds": json_rows, "errors": errors,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    anyhow::ensure!(error_count == 0, "{error_count} requests failed");
    Ok(())
}
