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
use tests::{behaviour, eventually, test_theater, Cluster, Options};

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

/// An admin request that must succeed.
async fn admin_call(cluster: &Cluster, method: Method, path: &str, body: Value) {
    let response = cluster
        .http
        .request(method, format!("{}{path}", cluster.url))
        .bearer_auth(cluster.admin_token())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!((200..300).contains(&status), "{path}: {status} {}", response.text().await.unwrap());
}

/// A new customer `name` gives `movie` five stars.
async fn review(cluster: &Cluster, name: &'static str, movie: u64) {
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
}

/// The search behaviours both backends share, in order on one cluster.
async fn scenario(cluster: &Cluster) {
    catalog(cluster).await;
    // Typos, prefixes, fields other than the title.
    behaviour!(a_typo_finds_the_titles_with_facets_and_highlights(cluster)).await;
    behaviour!(a_prefix_or_a_word_of_the_description_finds_the_movie(cluster)).await;
    // Filters: the city comes from the shows; genre and language from the movie.
    behaviour!(the_city_filter_comes_from_the_shows(cluster)).await;
    behaviour!(genre_and_language_filters_come_from_the_movie(cluster)).await;
    behaviour!(suggestions_complete_a_title_prefix(cluster)).await;
    // Changes follow: a new title, a rating, a cancelled show.
    behaviour!(a_renamed_movie_is_found_by_its_new_title_only(cluster)).await;
    behaviour!(ratings_filter_and_sort_the_results(cluster)).await;
    behaviour!(a_cancelled_show_takes_its_city_out_of_the_results(cluster)).await;
    behaviour!(bad_search_parameters_are_refused(cluster)).await;
}

/// Three movies, a theater in Mumbai and one show of movie 11 there.
async fn catalog(cluster: &Cluster) {
    admin_call(
        cluster,
        Method::PUT,
        "/v1/admin/movies/11",
        movie("Monsoon Run", "action", "hindi", "A chase through Mumbai in the rains."),
    )
    .await;
    admin_call(
        cluster,
        Method::PUT,
        "/v1/admin/movies/12",
        movie("Quiet Harbour", "drama", "english", "Two sisters keep a lighthouse."),
    )
    .await;
    admin_call(
        cluster,
        Method::PUT,
        "/v1/admin/movies/13",
        movie("Harbour Lights", "drama", "tamil", "Fishermen and a storm."),
    )
    .await;
    let mut mumbai = test_theater();
    mumbai["city"] = json!("Mumbai");
    admin_call(cluster, Method::PUT, "/v1/admin/theaters/21", mumbai).await;
    let screen = json!({"screen_id": 31, "name": "Audi 1", "format": "2D",
        "rows": [{"label": "A", "category": "classic", "seats": 5, "aisles_after": []}]});
    admin_call(cluster, Method::POST, "/v1/admin/theaters/21/screens", screen).await;
    let show = json!({"show_id": 41, "movie_id": 11, "screen_id": 31,
        "starts_at_ms": 4_102_444_800_000u64, "prices": {"classic": 10_000}, "currency": "INR"});
    admin_call(cluster, Method::POST, "/v1/admin/shows", show).await;
}

async fn a_typo_finds_the_titles_with_facets_and_highlights(cluster: &Cluster) {
    let body =
        searchable(cluster, "q=harbur&sort=title", &["Harbour Lights", "Quiet Harbour"]).await;
    assert_eq!(body["facets"]["genres"]["drama"], 2, "{body}");
    assert_eq!(body["facets"]["languages"]["tamil"], 1, "{body}");
    // Both backends mark the whole word a typo-tolerant query matched.
    assert_eq!(body["items"][0]["highlights"]["title"], "<em>Harbour</em> Lights", "{body}");
}

async fn a_prefix_or_a_word_of_the_description_finds_the_movie(cluster: &Cluster) {
    searchable(cluster, "q=mons", &["Monsoon Run"]).await;
    searchable(cluster, "q=lighthouse", &["Quiet Harbour"]).await;
}

async fn the_city_filter_comes_from_the_shows(cluster: &Cluster) {
    let body = searchable(cluster, "city=mumbai", &["Monsoon Run"]).await;
    assert!(body["items"][0]["next_show_at"].as_str().unwrap().starts_with("2100-01-01"));
}

async fn genre_and_language_filters_come_from_the_movie(cluster: &Cluster) {
    searchable(cluster, "genre=drama&language=tamil", &["Harbour Lights"]).await;
}

async fn suggestions_complete_a_title_prefix(cluster: &Cluster) {
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
}

async fn a_renamed_movie_is_found_by_its_new_title_only(cluster: &Cluster) {
    admin_call(
        cluster,
        Method::PUT,
        "/v1/admin/movies/12",
        movie("Silent Harbour", "drama", "english", "Two sisters keep a lighthouse."),
    )
    .await;
    searchable(cluster, "q=silent", &["Silent Harbour"]).await;
    searchable(cluster, "q=quiet", &[]).await;
}

async fn ratings_filter_and_sort_the_results(cluster: &Cluster) {
    review(cluster, "fan", 13).await;
    searchable(cluster, "min_rating=4", &["Harbour Lights"]).await;
    searchable(cluster, "sort=rating&per_page=1", &["Harbour Lights"]).await;
    // Equal averages: the movie more people rated comes first.
    review(cluster, "critic", 11).await;
    review(cluster, "critic2", 11).await;
    searchable(cluster, "sort=rating&per_page=2", &["Monsoon Run", "Harbour Lights"]).await;
}

async fn a_cancelled_show_takes_its_city_out_of_the_results(cluster: &Cluster) {
    admin_call(cluster, Method::POST, "/v1/admin/shows/41/cancel", json!({})).await;
    searchable(cluster, "city=mumbai", &[]).await;
}

async fn bad_search_parameters_are_refused(cluster: &Cluster) {
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
