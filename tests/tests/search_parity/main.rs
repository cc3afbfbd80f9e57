//! Search parity: the same query set — multi-word queries, query operators, typos (in a prefix,
//! on a first letter), strict sorts with and without `q`, filters, suggestions, pages past the
//! 1,000th hit and hostile (HTML) titles — against a catalog of 1,203 movies, on every backend
//! that is running, each answer checked against a model of the documented rules
//! (docs/search.md, "Documents and matching"): equal totals and facets, the exact order where
//! a sort is strict, the same hits where relevance orders them, and highlights that are the
//! escaped text with only `<em>` marks added.
//!
//! The embedded backend always runs (CI). With `MEILI_URL` set (and `MEILI_MASTER_KEY` when
//! the server has one), the same set also runs on Meilisearch — fed by `marquee-search-sync`
//! with a gateway that does not sync (`--search-sync false`) — and its answers must equal the
//! embedded gateway's item for item; then the sync worker is stopped, 4,000 catalog changes
//! are made, and it must drain that backlog well within a minute, reporting the true head.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

mod model;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use model::{Model, MovieRow, Query};
use reqwest::Method;
use serde_json::{json, Value};
use tests::{bin_dir, eventually, free_port, join_all, Cluster, Options};

/// Generated movies (the hostile ones come on top).
const MOVIES: u64 = 1_200;
/// Changes in the backlog the sync worker must drain.
const BACKLOG: u64 = 4_000;
/// Longest the backlog may take to drain (the issue asks for well under a minute).
const DRAIN_WITHIN: Duration = Duration::from_secs(30);

/// Runs `futures` `width` at a time.
async fn in_waves<F: std::future::Future<Output = ()>>(futures: Vec<F>, width: usize) {
    let mut futures = futures.into_iter().peekable();
    while futures.peek().is_some() {
        join_all(futures.by_ref().take(width).collect::<Vec<_>>()).await;
    }
}

async fn put_movie(cluster: &Cluster, row: &MovieRow) {
    let body = row.spec();
    let path = format!("/v1/admin/movies/{}", row.id);
    cluster.admin(Method::PUT, &path, &body, 200).await.unwrap();
}

/// Loads the model's catalog: movies, reviews (ratings with ties), and shows in two cities
/// (next-show times with ties).
async fn load(cluster: &Cluster, model: &mut Model) {
    let started = Instant::now();
    let rows: Vec<MovieRow> = model.movies.values().cloned().collect();
    in_waves(rows.iter().map(|row| put_movie(cluster, row)).collect(), 16).await;
    // Reviews: user j rates movie m (m <= 40) when j <= m % 4, with (m + j) % 5 + 1 stars.
    let users = cluster.users("critic", 4).await.unwrap();
    let mut reviews = Vec::new();
    for m in 1..=40u64 {
        for (j, user) in users.iter().enumerate().take((m % 4) as usize + 1) {
            let stars = (m + j as u64) % 5 + 1;
            model.review(m, stars);
            reviews.push(async move {
                let response = cluster
                    .http
                    .post(format!("{}/v1/movies/{m}/reviews", cluster.url))
                    .bearer_auth(&user.token)
                    .json(&json!({"stars": stars, "text": "Seen it"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201, "review {m}");
            });
        }
    }
    in_waves(reviews, 8).await;
    // Shows far in the future: three screens in Pune, one in Mumbai; every six hours three
    // movies start at once.
    let base = 4_102_444_800_000u64;
    for (theater, city) in [(901u64, "Pune"), (902, "Mumbai")] {
        let theater_body = json!({"name": format!("{city} Screens"), "city": city, "address": "",
            "lat_e6": 0, "lon_e6": 0, "amenities": [], "utc_offset_minutes": 0});
        let path = format!("/v1/admin/theaters/{theater}");
        cluster.admin(Method::PUT, &path, &theater_body, 200).await.unwrap();
    }
    let screens =
        [(911u64, 901u64, "pune"), (912, 901, "pune"), (913, 901, "pune"), (914, 902, "mumbai")];
    for (screen, theater, _) in screens {
        let body = json!({"screen_id": screen, "name": format!("Audi {screen}"), "format": "2D",
            "rows": [{"label": "A", "category": "classic", "seats": 4, "aisles_after": []}]});
        cluster
            .admin(Method::POST, &format!("/v1/admin/theaters/{theater}/screens"), &body, 201)
            .await
            .unwrap();
    }
    for m in 1..=36u64 {
        let (screen, _, city) = screens[(m % 4) as usize];
        let starts_at_ms = base + (m / 4) * 6 * 3_600_000;
        model.show(m, starts_at_ms, city);
        let show = json!({"show_id": 9_000 + m, "movie_id": m, "screen_id": screen,
            "starts_at_ms": starts_at_ms, "prices": {"classic": 10_000}, "currency": "INR"});
        cluster.admin(Method::POST, "/v1/admin/shows", &show, 201).await.unwrap();
    }
    eprintln!("catalog of {} movies loaded in {:?}", model.movies.len(), started.elapsed());
}

async fn get(cluster: &Cluster, url: &str) -> (u16, Value) {
    let response = cluster.http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the gateway at `url` has indexed the whole feed (lag 0 at the cluster's head)
/// and holds `movies` movies; returns the head.
async fn caught_up(cluster: &Cluster, url: &str, movies: usize, within: Duration) -> u64 {
    eventually(&format!("{url} caught up with {movies} movies"), within, || async {
        let (status, body) = get(cluster, &format!("{url}/v1/search?per_page=1")).await;
        let f = &body["freshness"];
        let done = status == 200
            && f["lag"] == 0
            && f["indexed_seq"] == f["head_seq"]
            && body["total"] == movies as u64;
        Ok(done.then(|| f["head_seq"].as_u64().unwrap()))
    })
    .await
    .unwrap()
}

/// One answer of the query set: what was asked, whether the order is strict, the body.
type Answer = (String, bool, Value);

/// Runs the query set on the gateway at `url`, checking every answer against the model;
/// returns the answers for comparing backends.
async fn run_query_set(cluster: &Cluster, url: &str, model: &Model) -> Vec<Answer> {
    let mut answers = Vec::new();
    for query in model::query_set() {
        let (status, body) = get(cluster, &format!("{url}/v1/search?{}", query.encoded())).await;
        assert_eq!(status, 200, "{url} {query:?}: {body}");
        eprintln!("{url} {} -> {}", query.encoded(), body["total"]);
        check_answer(&query, &body, model);
        answers.push((query.encoded(), query.strict(), body));
    }
    for (typed, limit) in model::suggest_set() {
        let encoded = format!("q={}&limit={limit}", model::encode(typed));
        let (status, body) = get(cluster, &format!("{url}/v1/search/suggest?{encoded}")).await;
        assert_eq!(status, 200, "{url} suggest {typed}: {body}");
        let got: Vec<u64> =
            body.as_array().unwrap().iter().map(|s| s["movie_id"].as_u64().unwrap()).collect();
        eprintln!("{url} suggest {encoded} -> {got:?}");
        assert_eq!(got, model.suggest(typed, limit), "{url} suggest {typed:?}: {body}");
        answers.push((format!("suggest {encoded}"), true, json!({"items": body})));
    }
    answers
}

fn check_answer(query: &Query, body: &Value, model: &Model) {
    let expected = model.search(query);
    let what = format!("{query:?}");
    assert_eq!(body["total"], expected.ids.len() as u64, "{what} total: {body}");
    assert_eq!(body["facets"], expected.facets, "{what} facets");
    let items = body["items"].as_array().unwrap();
    let got: Vec<u64> = items.iter().map(|i| i["movie_id"].as_u64().unwrap()).collect();
    let page = expected.page(query);
    if query.strict() {
        assert_eq!(got, page, "{what}: order");
    } else {
        let (mut got, mut want) = (got.clone(), page.clone());
        got.sort_unstable();
        want.sort_unstable();
        if expected.ids.len() <= query.per_page {
            assert_eq!(got, want, "{what}: the hits (relevance orders them)");
        } else {
            assert_eq!(got.len(), want.len(), "{what}: a full page");
        }
    }
    for item in items {
        let id = item["movie_id"].as_u64().unwrap();
        let movie = &model.movies[&id];
        let highlights = item["highlights"].as_object().unwrap();
        if let Some(title) = highlights.get("title") {
            let title = title.as_str().unwrap();
            assert!(title.contains("<em>"), "{what}: {title}");
            assert_eq!(
                title.replace("<em>", "").replace("</em>", ""),
                model::escape(&movie.title),
                "{what}: the title highlight is the escaped title with <em> marks"
            );
        }
        if let Some(description) = highlights.get("description") {
            let description = description.as_str().unwrap();
            let plain = description.replace("<em>", "").replace("</em>", "");
            let plain = plain.trim_matches('…');
            assert!(
                model::escape(&movie.description).contains(plain),
                "{what}: the description highlight is escaped text: {description}"
            );
        }
        assert_eq!(
            highlights.contains_key("title"),
            model.title_matches(&query.q, &movie.title),
            "{what}: movie {id} title highlighted iff a title word matches: {item}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_search_answers_the_parity_query_set() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    let mut model = Model::generate(MOVIES);
    load(&cluster, &mut model).await;
    caught_up(&cluster, &cluster.url, model.movies.len(), Duration::from_secs(60)).await;
    run_query_set(&cluster, &cluster.url, &model).await;
}

/// A `marquee-search-sync` process, killed when dropped.
struct SyncWorker {
    child: Child,
    metrics: String,
}

impl SyncWorker {
    fn spawn(
        cluster: &Cluster,
        meili: &[(String, String)],
        cursor: &std::path::Path,
    ) -> SyncWorker {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cluster.dir.path().join("search-sync.log"))
            .unwrap();
        let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.grpc.clone()).collect();
        let child = Command::new(bin_dir().join("marquee-search-sync"))
            .envs(meili.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg(format!("--nodes={}", nodes.join(",")))
            .arg(format!("--cursor-file={}", cursor.display()))
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        SyncWorker { child, metrics: format!("http://127.0.0.1:{port}") }
    }

    async fn field(&self, cluster: &Cluster, field: &str) -> Option<u64> {
        let text = cluster.http.get(format!("{}/metrics", self.metrics)).send().await.ok()?;
        let text = text.text().await.ok()?;
        let series = format!("marquee_search_sync{{field=\"{field}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&series)?.parse().ok())
    }
}

impl Drop for SyncWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meilisearch_answers_as_the_embedded_index_when_meili_url_is_set() {
    let Ok(url) = std::env::var("MEILI_URL") else {
        eprintln!(
            "skipped: MEILI_URL is not set; point it at a Meilisearch server to run this test \
             (docs/search.md)"
        );
        return;
    };
    let mut meili = vec![
        ("MEILI_URL".to_owned(), url),
        ("MARQUEE_MEILI_INDEX".to_owned(), format!("marquee_parity_{:x}", tests::rand_u64())),
    ];
    if let Ok(key) = std::env::var("MEILI_MASTER_KEY") {
        meili.push(("MEILI_MASTER_KEY".to_owned(), key));
    }
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    let mut gateway_env = meili.clone();
    gateway_env.push(("MARQUEE_SEARCH".to_owned(), "meilisearch".to_owned()));
    gateway_env.push(("MARQUEE_SEARCH_SYNC".to_owned(), "false".to_owned()));
    let options = Options { gateway_env, ..cluster.options().clone() };
    let gateway = cluster.spawn_gateway("meili-gateway", &options).await.unwrap();
    let mut model = Model::generate(MOVIES);
    load(&cluster, &mut model).await;

    // No worker has created the index yet: search answers (empty), with the lag, not 503.
    let (status, body) = get(&cluster, &format!("{}/v1/search?q=harbour", gateway.url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 0, "{body}");
    let (status, body) = get(&cluster, &format!("{}/v1/search/suggest?q=harb", gateway.url)).await;
    assert_eq!((status, body.clone()), (200, json!([])), "{body}");
    let f = eventually("the head in the freshness", Duration::from_secs(10), || async {
        let (_, body) = get(&cluster, &format!("{}/v1/search", gateway.url)).await;
        let f = body["freshness"].clone();
        Ok((f["head_seq"].as_u64().unwrap_or(0) > 1_000).then_some(f))
    })
    .await
    .unwrap();
    assert_eq!((f["backend"].clone(), f["indexed_seq"].clone()), (json!("meilisearch"), json!(0)));
    assert_eq!(f["lag"], f["head_seq"], "{f}");

    let cursor = cluster.dir.path().join("search.cursor");
    let worker = SyncWorker::spawn(&cluster, &meili, &cursor);
    let movies = model.movies.len();
    let head = caught_up(&cluster, &gateway.url, movies, Duration::from_secs(120)).await;
    assert_eq!(caught_up(&cluster, &cluster.url, movies, Duration::from_secs(60)).await, head);
    let on_meili = run_query_set(&cluster, &gateway.url, &model).await;
    let embedded = run_query_set(&cluster, &cluster.url, &model).await;
    for ((query, strict, meili), (_, _, embedded)) in on_meili.iter().zip(&embedded) {
        if *strict {
            assert_eq!(meili["items"], embedded["items"], "{query}: the same items in order");
        }
        assert_eq!(meili["total"], embedded["total"], "{query}");
        assert_eq!(meili["facets"], embedded["facets"], "{query}");
    }

    // A backlog: the worker is stopped while 4,000 changes are made (one of them a new title).
    drop(worker);
    let started = Instant::now();
    let writes = revisions(&model, "Zephyrine Backlog", 0);
    let cluster_ref = &cluster;
    in_waves(writes.iter().map(|row| put_movie(cluster_ref, row)).collect(), 16).await;
    eprintln!("{BACKLOG} changes written in {:?}", started.elapsed());
    let true_head = caught_up(&cluster, &cluster.url, movies, Duration::from_secs(60)).await;
    assert!(true_head >= head + BACKLOG, "{true_head} {head}");

    let worker = SyncWorker::spawn(&cluster, &meili, &cursor);
    let started = Instant::now();
    let drained = eventually("the backlog drained", DRAIN_WITHIN, || async {
        let (Some(indexed), Some(reported_head)) =
            (worker.field(&cluster, "indexed_seq").await, worker.field(&cluster, "head_seq").await)
        else {
            return Ok(None);
        };
        // Once the worker has read the feed, the head it reports is the true one.
        assert!(
            reported_head == true_head || (reported_head == head && indexed == head),
            "reported head {reported_head}, true head {true_head}, indexed {indexed}"
        );
        Ok((indexed == true_head).then(|| started.elapsed()))
    })
    .await
    .unwrap();
    eprintln!("a backlog of {BACKLOG} changes drained in {drained:?}");
    assert_eq!(caught_up(&cluster, &gateway.url, movies, Duration::from_secs(10)).await, true_head);
    for url in [&gateway.url, &cluster.url] {
        let (_, body) = get(&cluster, &format!("{url}/v1/search?q=zephyrine")).await;
        assert_eq!(body["items"][0]["title"], "Zephyrine Backlog", "{body}");
    }

    // The same bulk write under the running worker: it reports the lag as it grows, and is
    // level with the feed (its reported head the true one) soon after the writes stop.
    let writing = std::sync::atomic::AtomicBool::new(true);
    let writes = revisions(&model, "Quillwort Backlog", 1);
    let started = Instant::now();
    let (max_lag, ()) = tokio::join!(
        async {
            let mut max_lag = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                max_lag = max_lag.max(worker.field(&cluster, "lag").await.unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            max_lag
        },
        async {
            in_waves(writes.iter().map(|row| put_movie(cluster_ref, row)).collect(), 16).await;
            writing.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    );
    let written = started.elapsed();
    let true_head = caught_up(&cluster, &cluster.url, movies, Duration::from_secs(60)).await;
    let level = eventually("the worker level with the feed", DRAIN_WITHIN, || async {
        let indexed = worker.field(&cluster, "indexed_seq").await;
        let reported_head = worker.field(&cluster, "head_seq").await;
        Ok((indexed == Some(true_head) && reported_head == Some(true_head))
            .then(|| started.elapsed()))
    })
    .await
    .unwrap();
    eprintln!(
        "{BACKLOG} changes under a running worker: written in {written:?}, largest lag seen \
         {max_lag}, level with the feed {:?} after the last write",
        level.saturating_sub(written)
    );
    assert!(max_lag > 1, "the lag shows while the writes run: {max_lag}");
    let (_, body) = get(&cluster, &format!("{}/v1/search?q=quillwort", gateway.url)).await;
    assert_eq!(body["items"][0]["title"], "Quillwort Backlog", "{body}");
}

/// [`BACKLOG`] movie updates (new descriptions), one of which renames a movie to `title` (the
/// movie's last update in the batch, so it keeps the title).
fn revisions(model: &Model, title: &str, round: u64) -> Vec<MovieRow> {
    (0..BACKLOG)
        .map(|i| {
            let mut row = model.movies[&(i % MOVIES + 1)].clone();
            row.description = format!("{} Revision {round}.{i}.", row.description);
            if i == BACKLOG - MOVIES / 2 - round {
                row.title = title.into();
            }
            row
        })
        .collect()
}
