//! `marquee-seed`: loads a realistic, deterministic demo catalog through the admin REST API:
//! cities, theaters with screens of varied layouts, movies, and shows over the coming days.
//!
//! Why through the API rather than into storage: it exercises validation, placement and show
//! creation exactly as an operator's import would, and it works against any running cluster.
//! Every id is fixed by the generator (seeded), so a re-run updates the same records instead of
//! duplicating them. `--scale` multiplies theaters and shows (issue #6 needs 100k+ shows).
//! Reviewer accounts (`reviewer<n>@marquee.local`) then rate a share of the movies, so the
//! demo has ratings to sort and filter by; reviews are upserts, so re-runs change nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Loads the demo catalog into a running Marquee.
#[derive(Debug, Parser)]
#[command(
    name = "marquee-seed",
    version,
    about = "marquee-seed: loads a deterministic demo catalog (theaters, movies, shows, reviews) \
             through the admin API of a running Marquee"
)]
struct Args {
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Email of an admin account (`marqueectl create-user --role admin` makes one).
    #[arg(long, env = "MARQUEE_ADMIN_EMAIL", default_value = "admin@marquee.local")]
    admin_email: String,
    /// Its password.
    #[arg(
        long,
        env = "MARQUEE_ADMIN_PASSWORD",
        default_value = "marquee-admin",
        hide_env_values = true
    )]
    admin_password: String,
    /// Movies in the catalog.
    #[arg(long, default_value_t = 300)]
    movies: u64,
    /// Theaters per city (6 cities).
    #[arg(long, default_value_t = 8)]
    theaters_per_city: u64,
    /// Days of shows, starting today.
    #[arg(long, default_value_t = 4)]
    days: u64,
    /// Shows per screen per day.
    #[arg(long, default_value_t = 4)]
    shows_per_screen_day: u64,
    /// Concurrent requests.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Reviewer accounts that rate movies (0: no reviews).
    #[arg(long, default_value_t = 12)]
    reviewers: u64,
    /// Generator seed (same seed, same catalog).
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

const CITIES: [(&str, i32, i32); 6] = [
    ("Mumbai", 19_076_000, 72_877_000),
    ("Delhi", 28_613_000, 77_209_000),
    ("Bengaluru", 12_971_000, 77_594_000),
    ("Hyderabad", 17_385_000, 78_486_000),
    ("Chennai", 13_082_000, 80_270_000),
    ("Pune", 18_520_000, 73_856_000),
];
const CHAINS: [&str; 8] =
    ["PVR", "INOX", "Cinepolis", "Regal", "Miraj", "Carnival", "Movietime", "Gold Cinema"];
const AREAS: [&str; 10] = [
    "Central",
    "Phoenix Mall",
    "City Centre",
    "Forum",
    "Lake View",
    "Station Road",
    "Palladium",
    "Orion",
    "Nexus",
    "Metro",
];
const AMENITIES: [&str; 6] =
    ["parking", "food_court", "wheelchair_access", "dolby_atmos", "recliners", "m_ticket"];
const GENRES: [&str; 10] = [
    "action",
    "drama",
    "comedy",
    "thriller",
    "romance",
    "horror",
    "sci-fi",
    "animation",
    "family",
    "documentary",
];
const LANGUAGES: [&str; 6] = ["hindi", "english", "tamil", "telugu", "malayalam", "kannada"];
const WORDS_A: [&str; 16] = [
    "Silent", "Monsoon", "Crimson", "Last", "Golden", "Midnight", "Broken", "Hidden", "Wild",
    "Eternal", "Burning", "Paper", "Iron", "Distant", "Velvet", "Northern",
];
const WORDS_B: [&str; 16] = [
    "Harbour", "Kingdom", "Express", "Promise", "Horizon", "Letters", "River", "Empire", "Echoes",
    "Orbit", "Festival", "Garden", "Frontier", "Signal", "Carnival", "Tides",
];
const FIRST: [&str; 12] = [
    "Aarav", "Diya", "Kabir", "Meera", "Rohan", "Ananya", "Vikram", "Isha", "Arjun", "Priya",
    "Dev", "Nisha",
];
const LAST: [&str; 10] =
    ["Sharma", "Iyer", "Reddy", "Khan", "Menon", "Kapoor", "Rao", "Das", "Nair", "Bose"];
const CERTIFICATES: [&str; 4] = ["U", "UA", "UA13+", "A"];
const REVIEW_TEXTS: [&str; 5] = [
    "Could not sit through it.",
    "A few good scenes, mostly flat.",
    "Worth a watch on a weekend.",
    "Gripping, and the music stays with you.",
    "Stunning. See it on the biggest screen you can.",
];
const REVIEWER_PASSWORD: &str = "marquee-reviewer";

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn person(rng: &mut StdRng) -> String {
    format!("{} {}", pick(rng, &FIRST), pick(rng, &LAST))
}

fn movie(rng: &mut StdRng, n: u64) -> Value {
    let title = format!("{} {}", pick(rng, &WORDS_A), pick(rng, &WORDS_B));
    // Distinct titles: sequels get a number.
    let title = if n >= 200 { format!("{title} {}", n / 200 + 1) } else { title };
    let mut genres = vec![pick(rng, &GENRES).to_string()];
    let second = pick(rng, &GENRES).to_string();
    if second != genres[0] {
        genres.push(second);
    }
    let cast: Vec<String> = (0..rng.random_range(2..6)).map(|_| person(rng)).collect();
    json!({
        "title": title,
        "description": format!("{} meets {} in a {} story.", cast[0], cast[1], genres[0]),
        "genres": genres,
        "language": pick(rng, &LANGUAGES),
        "duration_min": rng.random_range(95..180),
        "release_date": format!("2026-{:02}-{:02}", rng.random_range(1..=11), rng.random_range(1..=28)),
        "cast": cast,
        "director": person(rng),
        "certificate": pick(rng, &CERTIFICATES),
        "poster_url": format!("https://posters.marquee.dev/{n}.jpg"),
    })
}

fn screen(rng: &mut StdRng, number: u64) -> Value {
    let (format, rows, seats): (&str, usize, u32) = match rng.random_range(0..10) {
        0 => ("IMAX", 14, 24),
        1..=3 => ("3D", 10, 18),
        _ => ("2D", rng.random_range(8..13), rng.random_range(14..21)),
    };
    let rows: Vec<Value> = (0..rows)
        .map(|r| {
            let category = if r + 2 >= rows {
                "recliner"
            } else if r + 5 >= rows {
                "prime"
            } else {
                "classic"
            };
            let label = char::from(b'A' + u8::try_from(r).unwrap_or(0)).to_string();
            json!({"label": label, "category": category, "seats": seats,
                   "aisles_after": [seats / 4, seats - seats / 4]})
        })
        .collect();
    json!({"name": format!("Audi {number}"), "format": format, "rows": rows})
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Requests sent, shared by the admin's and the reviewers' clients.
    requests: Arc<AtomicU64>,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await;
            match response {
                Ok(r) if r.status().is_success() => {
                    return Ok(r.json().await.unwrap_or(Value::Null))
                }
                // Rate limited: wait as told (bounded attempts).
                Ok(r) if r.status() == 429 && attempt < 60 => {
                    let wait = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(wait.min(10))).await;
                    continue;
                }
                // Unavailable: the cluster is busy or electing; retry a little.
                Ok(r) if r.status() == 503 && attempt < 10 => {}
                Ok(r) => {
                    let status = r.status();
                    bail!("{method} {path}: {status} {}", r.text().await.unwrap_or_default())
                }
                Err(e) if attempt < 10 => tracing_free_warn(&e),
                Err(e) => return Err(e).with_context(|| format!("{method} {path}")),
            }
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
    }
}

/// Registers `email` (or, when it exists from an earlier run, signs it in); returns the access
/// token.
async fn reviewer(http: &reqwest::Client, base: &str, n: u64) -> anyhow::Result<String> {
    let email = format!("reviewer{n}@marquee.local");
    let response = http
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({ "email": email, "password": REVIEWER_PASSWORD, "name": format!("Reviewer {n}") }))
        .send()
        .await
        .with_context(|| format!("registering {email}"))?;
    if response.status().is_success() {
        let body: Value = response.json().await?;
        return body["access_token"].as_str().map(str::to_owned).context("no access_token");
    }
    sign_in(http, base, &email, REVIEWER_PASSWORD).await
}

/// Signs the admin in; returns the access token.
async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .with_context(|| format!("signing in at {base}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("admin login as {email} failed: {status} {body}");
    }
    body["access_token"].as_str().map(str::to_owned).context("no access_token in login reply")
}

fn tracing_free_warn(e: &reqwest::Error) {
    eprintln!("marquee-seed: retrying after {e}");
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Waits for `jobs` (already bounded by the semaphore); fails on the first error.
async fn run_all(jobs: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>) -> anyhow::Result<()> {
    for job in jobs {
        job.await.context("seed task panicked")??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let base = args.gateway.trim_end_matches('/').to_owned();
    let token = sign_in(&http, &base, &args.admin_email, &args.admin_password).await?;
    let client = Arc::new(Client { http, base, token, requests: Arc::default() });
    let limit = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut rng = StdRng::seed_from_u64(args.seed);
    let spawn_as = |client: &Arc<Client>, method: reqwest::Method, path: String, body: Value| {
        let (client, limit) = (Arc::clone(client), Arc::clone(&limit));
        tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.context("semaphore closed")?;
            client.send(method, &path, &body).await.map(|_| ())
        })
    };
    let spawn = |method, path, body| spawn_as(&client, method, path, body);

    // Movies: ids 1..=movies.
    let movies: Vec<(u64, Value)> = (1..=args.movies).map(|id| (id, movie(&mut rng, id))).collect();
    let jobs = movies
        .iter()
        .map(|(id, body)| {
            spawn(reqwest::Method::PUT, format!("/v1/admin/movies/{id}"), body.clone())
        })
        .collect();
    run_all(jobs).await?;

    // Theaters: id = city * 1000 + n; screens: id = theater * 10 + k.
    let mut screens = Vec::new();
    let mut jobs = Vec::new();
    for (c, (city, lat, lon)) in CITIES.iter().enumerate() {
        for n in 1..=args.theaters_per_city {
            let theater_id = (c as u64 + 1) * 1000 + n;
            let amenities: Vec<&str> =
                AMENITIES.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
            let body = json!({
                "name": format!("{} {}", pick(&mut rng, &CHAINS), AREAS[(n as usize - 1) % AREAS.len()]),
                "city": city,
                "address": format!("{} {}, {city}", 10 + n * 7, AREAS[(n as usize) % AREAS.len()]),
                "lat_e6": lat + rng.random_range(-80_000..80_000),
                "lon_e6": lon + rng.random_range(-80_000..80_000),
                "amenities": amenities,
                "utc_offset_minutes": 330,
            });
            jobs.push(spawn(
                reqwest::Method::PUT,
                format!("/v1/admin/theaters/{theater_id}"),
                body,
            ));
            for k in 1..=rng.random_range(3..=5u64) {
                screens.push((theater_id, theater_id * 10 + k, screen(&mut rng, k)));
            }
        }
    }
    run_all(jobs).await?;
    let jobs = screens
        .iter()
        .map(|(theater, id, body)| {
            let mut body = body.clone();
            body["theater_id"] = json!(theater);
            spawn(reqwest::Method::PUT, format!("/v1/admin/screens/{id}"), body)
        })
        .collect();
    run_all(jobs).await?;

    // Shows: each screen plays a few movies a day from 10:00 IST, 3.5 h apart. Show ids are
    // screen * 1000 + day * 10 + slot, so a re-run finds them.
    let day_ms = 86_400_000;
    let today_ist = (now_ms() + 330 * 60_000) / day_ms * day_ms - 330 * 60_000;
    let mut jobs = Vec::new();
    let mut shows = 0u64;
    for (_, screen_id, layout) in &screens {
        let categories: Vec<String> = layout["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["category"].as_str().map(str::to_owned))
            .collect();
        for day in 0..args.days {
            for slot in 0..args.shows_per_screen_day {
                let starts_at_ms = today_ist + day * day_ms + (10 * 60 + slot * 210) * 60_000;
                if starts_at_ms < now_ms() {
                    continue;
                }
                let show_id = screen_id * 1000 + day * 10 + slot;
                // Derived from the id, not the generator's sequence: a re-run later in the day
                // skips past slots yet sends identical shows.
                let mix = show_id.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ args.seed;
                let movie_id = mix % args.movies.max(1) + 1;
                let base = [25_000, 30_000, 40_000][(mix / 7 % 3) as usize];
                let prices: serde_json::Map<String, Value> = categories
                    .iter()
                    .map(|c| {
                        let factor = match c.as_str() {
                            "recliner" => 3,
                            "prime" => 2,
                            _ => 1,
                        };
                        (c.clone(), json!(base / 2 * factor))
                    })
                    .collect();
                let body = json!({
                    "show_id": show_id,
                    "movie_id": movie_id,
                    "screen_id": screen_id,
                    "starts_at_ms": starts_at_ms,
                    "prices": prices,
                    "currency": "INR",
                });
                jobs.push(spawn(reqwest::Method::POST, "/v1/admin/shows".into(), body));
                shows += 1;
            }
        }
    }
    run_all(jobs).await?;

    // Reviews: each movie has a "quality" from its id; each reviewer rates about 40% of the
    // movies, near that quality.
    let mut reviews = 0u64;
    let mut jobs = Vec::new();
    for n in 1..=args.reviewers {
        let token = reviewer(&client.http, &client.base, n).await?;
        let reviewer = Arc::new(Client {
            http: client.http.clone(),
            base: client.base.clone(),
            token,
            requests: Arc::clone(&client.requests),
        });
        for movie_id in 1..=args.movies {
            let mix = (movie_id * 1_000 + n).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ args.seed;
            if mix % 5 >= 2 {
                continue;
            }
            let quality = movie_id.wrapping_mul(0x2545_F491_4F6C_DD1D) % 5; // 0..=4
            let stars = (quality + (mix >> 8) % 3).clamp(1, 5);
            let body = json!({"stars": stars, "text": REVIEW_TEXTS[stars as usize - 1]});
            let path = format!("/v1/movies/{movie_id}/reviews");
            jobs.push(spawn_as(&reviewer, reqwest::Method::POST, path, body));
            reviews += 1;
        }
    }
    run_all(jobs).await?;
    println!(
        "seeded {} cities, {} theaters, {} screens, {} movies, {shows} shows, {reviews} reviews \
         ({} requests, {:.1} s)",
        CITIES.len(),
        CITIES.len() as u64 * args.theaters_per_city,
        screens.len(),
        args.movies,
        client.requests.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
