//! Search against a real cluster: a new or changed movie or show becomes searchable within
//! seconds (typos, prefixes, filters, facets, highlights, sorting, suggestions), deletes and
//! cancellations leave the index, the feed survives the meta leader being killed, and bad
//! parameters get 422.
//!
//! The same scenario runs on the embedded backend (always) and on Meilisearch when `MEILI_URL`
//! points to a server (`meilisearch_backend_when_meili_url_is_set`; skipped with a printed
//! reason otherwise, see docs/search.md).

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tests::{eventually, test_theater, Cluster, Options};

/// How long a change may take to become searchable.
const SEARCHABLE_WITHIN: Duration = Duration::from_secs(10);

fn movie(title: &str, genre: &str, language: &str, description: &str) -> Value {
    json!({
        "title": title, "description": description, "genres": [genre], "language": language,
        "duration_min": 120, "release_date": "2026-01-01", "cast": ["Asha Rao"],
        "director": "Vikram Sen", "certificate": "UA", "poster_url": null,
    })
}

async fn search(cluster: &Cluster, query: &str) -> (u16, Value) {
    let response =
        cluster.http.get(format!("{}/v1/search?{query}", cluster.url)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn titles(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .map(|items| items.iter().map(|i| i["title"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}

/// Waits until `query` returns exactly `expected` titles (in order).
async fn searchable(cluster: &Cluster, query: &str, expected: &[&str]) -> Value {
    eventually(&format!("search {query} -> {expected:?}"), SEARCHABLE_WITHIN, || async {
        let (status, body) = search(cluster, query).await;
        Ok((status == 200 && titles(&body) == expected).then_some(body))
    })
    .await
    .unwrap()
}

async fn scenario(cluster: &Cluster) {
    let admin = cluster.admin_token();
    let call = |method: Method, path: String, body: Value| async move {
        let response = cluster
            .http
            .request(method, format!("{}{path}", cluster.url))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            (200..300).contains(&status),
            "{path}: {status} {}",
            response.text().await.unwrap()
        );
    };
    call(
        Method::PUT,
        "/v1/admin/movies/11".into(),
        movie("Monsoon Run", "action", "hindi", "A chase through Mumbai in the rains."),
    )
    .await;
    call(
        Method::PUT,
        "/v1/admin/movies/12".into(),
        movie("Quiet Harbour", "drama", "english", "Two sisters keep a lighthouse."),
    )
    .await;
    call(
        Method::PUT,
        "/v1/admin/movies/13".into(),
        movie("Harbour Lights", "drama", "tamil", "Fishermen and a storm."),
    )
    .await;
    let mut mumbai = test_theater();
    mumbai["city"] = json!("Mumbai");
    call(Method::PUT, "/v1/admin/theaters/21".into(), mumbai).await;
    let screen = json!({"screen_id": 31, "name": "Audi 1", "format": "2D",
        "rows": [{"label": "A", "category": "classic", "seats": 5, "aisles_after": []}]});
    call(Method::POST, "/v1/admin/theaters/21/screens".into(), screen).await;
    let show = json!({"show_id": 41, "movie_id": 11, "screen_id": 31,
        "starts_at_ms": 4_102_444_800_000u64, "prices": {"classic": 10_000}, "currency": "INR"});
    call(Method::POST, "/v1/admin/shows".into(), show).await;

    // Typos, prefixes, fields other than the title.
    let body =
        searchable(cluster, "q=harbur&sort=title", &["Harbour Lights", "Quiet Harbour"]).await;
    assert_eq!(body["facets"]["genres"]["drama"], 2, "{body}");
    assert_eq!(body["facets"]["languages"]["tamil"], 1, "{body}");
    // The embedded index marks the whole word, Meilisearch the part the typo-tolerant query
    // matched (`<em>Harbou</em>r`).
    assert!(
        body["items"][0]["highlights"]["title"].as_str().unwrap().contains("<em>Harbou"),
        "{body}"
    );
    searchable(cluster, "q=mons", &["Monsoon Run"]).await;
    searchable(cluster, "q=lighthouse", &["Quiet Harbour"]).await;
    // Filters: the city comes from the shows; genre and language from the movie.
    let body = searchable(cluster, "city=mumbai", &["Monsoon Run"]).await;
    assert!(body["items"][0]["next_show_at"].as_str().unwrap().starts_with("2100-01-01"));
    searchable(cluster, "genre=drama&language=tamil", &["Harbour Lights"]).await;
    let suggestions: Value = cluster
        .http
        .get(format!("{}/v1/search/suggest?q=quie", cluster.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(suggestions[0]["title"], "Quiet Harbour", "{suggestions}");

    // Changes follow: a new title, a rating, a cancelled show.
    call(
        Method::PUT,
        "/v1/admin/movies/12".into(),
        movie("Silent Harbour", "drama", "english", "Two sisters keep a lighthouse."),
    )
    .await;
    searchable(cluster, "q=silent", &["Silent Harbour"]).await;
    searchable(cluster, "q=quiet", &[]).await;
    let review = |name: &'static str, movie: u64| async move {
        let user = cluster.user(name).await.unwrap();
        let response = cluster
            .http
            .post(format!("{}/v1/movies/{movie}/reviews", cluster.url))
            .bearer_auth(&user.token)
            .json(&json!({"stars": 5, "text": "Stunning"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    };
    review("fan", 13).await;
    searchable(cluster, "min_rating=4", &["Harbour Lights"]).await;
    searchable(cluster, "sort=rating&per_page=1", &["Harbour Lights"]).await;
    // Equal averages: the movie more people rated comes first.
    review("critic", 11).await;
    review("critic2", 11).await;
    searchable(cluster, "sort=rating&per_page=2", &["Monsoon Run", "Harbour Lights"]).await;
    call(Method::POST, "/v1/admin/shows/41/cancel".into(), json!({})).await;
    searchable(cluster, "city=mumbai", &[]).await;

    // Bad parameters.
    for query in [
        "min_rating=7",
        "sort=bogus",
        "per_page=0",
        "colour=red",
        &format!("q={}", "x".repeat(201)),
    ] {
        let (status, body) = search(cluster, query).await;
        assert!(status == 400 || status == 422, "{query}: {status} {body}");
    }
    let empty =
        cluster.http.get(format!("{}/v1/search/suggest?q=", cluster.url)).send().await.unwrap();
    assert_eq!(empty.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_search_follows_the_catalog_and_survives_a_meta_leader_kill() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    scenario(&cluster).await;
    let (_, body) = search(&cluster, "").await;
    assert_eq!(body["freshness"]["backend"], "embedded", "{body}");

    // Kill the meta group's leader: the gateway's feed stream moves to another replica and
    // later changes still arrive, without a gap.
    let leader = cluster.leader_of(0).await.unwrap();
    cluster.nodes[leader].kill();
    let monsoon = movie("Monsoon Returns", "action", "hindi", "The rains, again.");
    eventually("the movie update after the kill", Duration::from_secs(30), || async {
        let response = cluster
            .http
            .put(format!("{}/v1/admin/movies/11", cluster.url))
            .bearer_auth(cluster.admin_token())
            .json(&monsoon)
            .send()
            .await?;
        Ok(response.status().is_success().then_some(()))
    })
    .await
    .unwrap();
    searchable(&cluster, "q=returns", &["Monsoon Returns"]).await;
    let body = eventually("no lag", SEARCHABLE_WITHIN, || async {
        let (_, body) = search(&cluster, "").await;
        Ok((body["freshness"]["lag"] == 0).then_some(body))
    })
    .await
    .unwrap();
    assert!(body["freshness"]["indexed_seq"].as_u64().unwrap() >= 10, "{body}");
    let metrics = cluster
        .http
        .get(format!("{}/metrics", cluster.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("marquee_gateway_search{field=\"lag\"} 0"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meilisearch_backend_when_meili_url_is_set() {
    let Ok(url) = std::env::var("MEILI_URL") else {
        eprintln!(
            "skipped: MEILI_URL is not set; point it at a Meilisearch server to run this test \
             (docs/search.md)"
        );
        return;
    };
    let mut gateway_env = vec![
        ("MARQUEE_SEARCH".to_owned(), "meilisearch".to_owned()),
        ("MEILI_URL".to_owned(), url),
        ("MARQUEE_MEILI_INDEX".to_owned(), format!("marquee_test_{:x}", tests::rand_u64())),
    ];
    if let Ok(key) = std::env::var("MEILI_MASTER_KEY") {
        gateway_env.push(("MEILI_MASTER_KEY".to_owned(), key));
    }
    let cluster = Cluster::start(Options { gateway_env, ..Options::default() }).await.unwrap();
    scenario(&cluster).await;
    let (_, body) = search(&cluster, "").await;
    assert_eq!(body["freshness"]["backend"], "meilisearch", "{body}");
}

/// Bookings and browsing do not depend on search: a gateway whose Meilisearch is unreachable
/// starts and serves the catalog, answers search with a 503 that says why, and its sync worker
/// keeps retrying (counted); a gateway with search off says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_serves_without_its_search_backend() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    // A loopback port nothing listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cases = [
        (
            "meili-down",
            vec![
                ("MARQUEE_SEARCH", "meilisearch".to_owned()),
                ("MEILI_URL", format!("http://{closed}")),
            ],
            "the search index could not be reached",
        ),
        ("search-off", vec![("MARQUEE_SEARCH", "off".to_owned())], "search is off on this gateway"),
    ];
    for (name, env, detail) in cases {
        let options = Options {
            gateway_env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ..cluster.options().clone()
        };
        let gateway = cluster.spawn_gateway(name, &options).await.unwrap();
        let movies = cluster.http.get(format!("{}/v1/movies", gateway.url)).send().await.unwrap();
        assert_eq!(movies.status(), 200, "{name}: browsing works without search");
        for path in ["/v1/search?q=harbour", "/v1/search/suggest?q=harb"] {
            let response = cluster.http.get(format!("{}{path}", gateway.url)).send().await.unwrap();
            assert_eq!(response.status(), 503, "{name} {path}");
            assert_eq!(
                response.headers()["content-type"].to_str().unwrap(),
                "application/problem+json"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["type"], "https://marquee.dev/problems/unavailable", "{body}");
            assert!(body["detail"].as_str().unwrap().contains(detail), "{name}: {body}");
        }
        if name == "meili-down" {
            let errors = r#"marquee_gateway_search{field="errors"}"#;
            // Each failed step is counted after its own retries with backoff (about 6 s).
            eventually("sync failures counted", Duration::from_secs(30), || async {
                Ok((cluster.metric(&gateway.url, errors).await? >= 1.0).then_some(()))
            })
            .await
            .unwrap();
        }
    }
}
