//! The catalog REST API against a real cluster: admin CRUD with validation (4xx and no state
//! change), browse listings with filters, pagination and local dates, show pages, reviews and
//! ratings, cancellation under the policy, and show cancellation refunding every booking.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use tests::{Cluster, Options};

async fn call(
    cluster: &Cluster,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let (status, _, body) = tests::raw_request(cluster, method, path, token, body).await.unwrap();
    (status, body)
}

async fn get(cluster: &Cluster, path: &str) -> Value {
    let (status, body) = call(cluster, Method::GET, path, None, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn slug(body: &Value) -> &str {
    body["type"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("")
}

fn movie(title: &str, genre: &str, language: &str) -> Value {
    json!({
        "title": title, "description": "A film.", "genres": [genre], "language": language,
        "duration_min": 130, "release_date": "2026-11-20", "cast": ["Asha Rao"],
        "director": "Vikram Sen", "certificate": "UA", "poster_url": "https://img.example/p.jpg",
    })
}

fn theater(name: &str, city: &str) -> Value {
    json!({
        "name": name, "city": city, "address": "1 Main Road", "lat_e6": 19076000,
        "lon_e6": 72877000, "amenities": ["parking"], "utc_offset_minutes": 330,
    })
}

const DAY: u64 = 86_400_000;
/// 2100-01-01T00:00Z: far enough that no cutoff applies.
const FAR: u64 = 4_102_444_800_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_admin_browse_reviews_and_show_cancellation() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let admin = Some(cluster.admin_token());
    let (carol, dave, erin, mallory) = (
        cluster.user("carol").await.unwrap(),
        cluster.user("dave").await.unwrap(),
        cluster.user("erin").await.unwrap(),
        cluster.user("mallory").await.unwrap(),
    );

    // --- Admin CRUD, with validation that changes nothing. -----------------------------------
    let mut first = movie("Monsoon Run", "action", "hindi");
    first["movie_id"] = json!(11);
    let (status, m1) =
        call(&cluster, Method::POST, "/v1/admin/movies", admin, Some(&first.to_string())).await;
    assert_eq!(status, 201, "{m1}");
    assert_eq!(m1["movie_id"], 11);
    let (status, _) = call(
        &cluster,
        Method::PUT,
        "/v1/admin/movies/12",
        admin,
        Some(&movie("Quiet Harbour", "drama", "english").to_string()),
    )
    .await;
    assert_eq!(status, 200);
    let bad_cases: Vec<(Method, &str, String, u16, &str)> = vec![
        (Method::PUT, "/v1/admin/movies/13", "{not json".into(), 400, "malformed-body"),
        (
            Method::PUT,
            "/v1/admin/movies/13",
            json!({"title": 5}).to_string(),
            422,
            "malformed-body",
        ),
        (
            Method::PUT,
            "/v1/admin/movies/13",
            {
                let mut m = movie("X", "action", "hindi");
                m["release_date"] = json!("2026-02-30");
                m.to_string()
            },
            422,
            "validation-error",
        ),
        (
            Method::PUT,
            "/v1/admin/movies/13",
            {
                let mut m = movie("X", "action", "hindi");
                m["extra"] = json!(1);
                m.to_string()
            },
            422,
            "malformed-body",
        ),
        (
            Method::PUT,
            "/v1/admin/theaters/21",
            {
                let mut t = theater("T", "Mumbai");
                t["lat_e6"] = json!(95_000_000);
                t.to_string()
            },
            422,
            "validation-error",
        ),
    ];
    for (method, path, body, status, kind) in bad_cases {
        let (got, problem) = call(&cluster, method, path, admin, Some(&body)).await;
        assert_eq!((got, slug(&problem)), (status, kind), "{path} {body}: {problem}");
    }
    let (status, _) = call(&cluster, Method::GET, "/v1/movies/13", None, None).await;
    assert_eq!(status, 404, "rejected writes left nothing behind");
    // Customers cannot write the catalog.
    let (status, body) = call(
        &cluster,
        Method::PUT,
        "/v1/admin/movies/14",
        Some(carol.token.as_str()),
        Some(&movie("Y", "drama", "tamil").to_string()),
    )
    .await;
    assert_eq!((status, slug(&body)), (403, "forbidden"));

    for (id, name, city) in [(21, "Regal", "Mumbai"), (22, "Apsara", "Pune")] {
        let (status, body) = call(
            &cluster,
            Method::PUT,
            &format!("/v1/admin/theaters/{id}"),
            admin,
            Some(&theater(name, city).to_string()),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let screen = json!({"screen_id": 31, "name": "Audi 1", "format": "IMAX", "rows": [
        {"label": "A", "category": "classic", "seats": 6, "aisles_after": [3]},
        {"label": "B", "category": "prime", "seats": 4}]});
    let (status, body) = call(
        &cluster,
        Method::POST,
        "/v1/admin/theaters/21/screens",
        admin,
        Some(&screen.to_string()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let bad_screen = json!({"name": "Bad", "format": "2D", "rows": [{"label": "A1", "category": "c", "seats": 3}]});
    let (status, body) = call(
        &cluster,
        Method::POST,
        "/v1/admin/theaters/21/screens",
        admin,
        Some(&bad_screen.to_string()),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("rows[0].label")), "{body}");

    // --- Shows: tomorrow 18:30 IST (13:00 UTC) and a far one. ----------------------------------
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let tomorrow_utc = (now / DAY + 1) * DAY;
    let date = date_of(tomorrow_utc);
    let evening = tomorrow_utc + 13 * 3_600_000;
    let show_body = |id: u64, movie: u64, starts: u64| {
        json!({"show_id": id, "movie_id": movie, "screen_id": 31,
        "starts_at_ms": starts, "prices": {"classic": 20000, "prime": 35000}, "currency": "INR"})
        .to_string()
    };
    let (status, created) =
        call(&cluster, Method::POST, "/v1/admin/shows", admin, Some(&show_body(41, 11, evening)))
            .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["capacity"].as_u64(), created["theater_id"].as_u64()),
        (Some(10), Some(21))
    );
    // A retry of the same request is safe; the same id with other fields is a conflict.
    let (status, _) =
        call(&cluster, Method::POST, "/v1/admin/shows", admin, Some(&show_body(41, 11, evening)))
            .await;
    assert_eq!(status, 201);
    let (status, body) =
        call(&cluster, Method::POST, "/v1/admin/shows", admin, Some(&show_body(41, 12, evening)))
            .await;
    assert_eq!((status, slug(&body)), (409, "conflict"));
    let (status, body) = call(&cluster, Method::POST, "/v1/admin/shows", admin, Some(&json!({"movie_id": 11, "screen_id": 31, "starts_at_ms": evening, "prices": {"classic": 1}, "currency": "INR"}).to_string())).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("prices")),
        "prices must cover every category"
    );
    let (status, _) =
        call(&cluster, Method::POST, "/v1/admin/shows", admin, Some(&show_body(42, 12, FAR))).await;
    assert_eq!(status, 201);

    // --- Replacing screens (PUT creates or replaces by id). -----------------------------------
    let put_screen = |id: u64, body: &Value| {
        let path = format!("/v1/admin/screens/{id}");
        let body = body.to_string();
        let cluster = &cluster;
        async move { call(cluster, Method::PUT, &path, admin, Some(&body)).await }
    };
    let screens_of = |theater: u64| {
        let cluster = &cluster;
        async move { get(cluster, &format!("/v1/theaters/{theater}")).await["screens"].clone() }
    };
    let mut renamed = screen.clone();
    renamed["theater_id"] = json!(21);
    renamed["name"] = json!("Audi One");
    renamed.as_object_mut().unwrap().remove("screen_id");
    let (status, body) = put_screen(31, &renamed).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Audi One")), "{body}");
    // With shows scheduled the layout is fixed; the screen cannot move to another theater;
    // the theater id is required and layouts are validated. None of these change anything.
    let before = screens_of(21).await;
    let mut bigger = renamed.clone();
    bigger["rows"][1]["seats"] = json!(8);
    let (status, body) = put_screen(31, &bigger).await;
    assert_eq!(status, 409, "layout change under scheduled shows: {body}");
    let mut moved = renamed.clone();
    moved["theater_id"] = json!(22);
    let (status, body) = put_screen(31, &moved).await;
    assert_eq!(status, 409, "a screen stays in its theater: {body}");
    let mut anonymous = renamed.clone();
    anonymous.as_object_mut().unwrap().remove("theater_id");
    let (status, body) = put_screen(31, &anonymous).await;
    assert_eq!(status, 422, "{body}");
    let mut bad = renamed.clone();
    bad["rows"][0]["seats"] = json!(-1);
    let (status, body) = put_screen(31, &bad).await;
    assert!(status == 400 || status == 422, "{status} {body}");
    assert_eq!(screens_of(21).await, before, "refused replacements changed nothing");
    // A new id creates a screen, in the theater named.
    let mut created = bad_screen.clone();
    created["theater_id"] = json!(22);
    created["rows"][0]["label"] = json!("A");
    let (status, body) = put_screen(3201, &created).await;
    assert_eq!(status, 200, "{body}");
    let pune = screens_of(22).await;
    assert_eq!(pune.as_array().map(Vec::len), Some(1), "{pune}");
    assert_eq!(pune[0]["screen_id"], 3201);

    // --- Browse. ---------------------------------------------------------------------------------
    let cities = get(&cluster, "/v1/cities").await;
    assert_eq!(cities, json!([{"city": "Mumbai", "theaters": 1}, {"city": "Pune", "theaters": 1}]));
    let page = get(&cluster, "/v1/movies?city=mumbai&per_page=1").await;
    assert_eq!(
        (page["total"].as_u64(), page["items"][0]["movie_id"].as_u64()),
        (Some(2), Some(11))
    );
    let page2 = get(&cluster, "/v1/movies?city=mumbai&per_page=1&page=2").await;
    assert_eq!(page2["items"][0]["movie_id"], 12);
    assert_eq!(get(&cluster, "/v1/movies?genre=drama").await["items"][0]["title"], "Quiet Harbour");
    assert_eq!(get(&cluster, "/v1/movies?language=HINDI").await["total"], 1);
    assert_eq!(get(&cluster, "/v1/movies?q=harb").await["total"], 1);
    assert_eq!(get(&cluster, "/v1/movies?city=Pune").await["total"], 0);
    for bad in [
        "/v1/movies?per_page=1000",
        "/v1/movies?page=0",
        "/v1/movies?colour=red",
        "/v1/movies/11/shows?city=Mumbai&date=2026-1-1",
        "/v1/movies/11/shows",
    ] {
        let (status, body) = call(&cluster, Method::GET, bad, None, None).await;
        assert!(status == 400 || status == 422, "{bad}: {status} {body}");
    }
    let listing = get(&cluster, &format!("/v1/movies/11/shows?city=Mumbai&date={date}")).await;
    assert_eq!(listing[0]["theater"]["name"], "Regal", "{listing}");
    assert_eq!(listing[0]["shows"][0]["show"]["show_id"], 41);
    let theater_day = get(&cluster, &format!("/v1/theaters/21/shows?date={date}")).await;
    assert_eq!(theater_day["shows"].as_array().unwrap().len(), 1);
    assert_eq!(get(&cluster, "/v1/theaters?city=Pune").await["items"][0]["theater_id"], 22);
    assert_eq!(get(&cluster, "/v1/theaters/21").await["screens"][0]["screen_id"], 31);
    let page = get(&cluster, "/v1/shows/41").await;
    assert_eq!(
        (page["movie"]["title"].as_str(), page["bookable"].as_bool()),
        (Some("Monsoon Run"), Some(true)),
        "{page}"
    );
    assert_eq!(page["availability"], json!({"available": 10, "capacity": 10}));

    // --- Reviews: one per user, editable, aggregate exact. ----------------------------------------
    let review = |stars: u8| json!({"stars": stars, "text": "Loved it"}).to_string();
    let reviews = "/v1/movies/11/reviews";
    let dave_t = Some(dave.token.as_str());
    let (status, body) = call(&cluster, Method::POST, reviews, None, Some(&review(4))).await;
    assert_eq!((status, slug(&body)), (401, "unauthorized"), "signing in is required");
    let (status, body) = call(&cluster, Method::POST, reviews, dave_t, Some(&review(6))).await;
    assert_eq!((status, slug(&body)), (422, "validation-error"), "{body}");
    let (status, body) = call(&cluster, Method::POST, reviews, dave_t, Some(&review(4))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["review"]["user_id"].as_u64(), body["review"]["author"].as_str()),
        (Some(dave.user_id), Some("dave"))
    );
    assert_eq!(body["rating"], json!({"count": 1, "stars_sum": 4}));
    // Posting again edits the same review.
    let (status, body) = call(&cluster, Method::POST, reviews, dave_t, Some(&review(2))).await;
    assert_eq!((status, &body["rating"]), (201, &json!({"count": 1, "stars_sum": 2})), "{body}");
    let (status, body) =
        call(&cluster, Method::POST, reviews, Some(erin.token.as_str()), Some(&review(5))).await;
    assert_eq!((status, body["rating_average"].as_f64()), (201, Some(3.5)), "{body}");
    let listed = get(&cluster, &format!("{reviews}?per_page=1")).await;
    assert_eq!((listed["total"].as_u64(), listed["items"].as_array().unwrap().len()), (Some(2), 1));
    assert_eq!(get(&cluster, "/v1/movies/11").await["rating"]["count"], 2);
    let (status, _) =
        call(&cluster, Method::DELETE, "/v1/movies/11/reviews/me", dave_t, None).await;
    assert_eq!(status, 204);
    assert_eq!(get(&cluster, reviews).await["rating"], json!({"count": 1, "stars_sum": 5}));
    let (status, _) =
        call(&cluster, Method::POST, "/v1/movies/999/reviews", dave_t, Some(&review(3))).await;
    assert_eq!(status, 404);

    // --- Bookings, cancellation policy and show cancellation. -------------------------------------
    let (status, hold) = call(
        &cluster,
        Method::POST,
        "/v1/shows/42/holds",
        Some(erin.token.as_str()),
        Some(r#"{"seats": ["A1", "A2"]}"#),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let erin_token = erin.token.as_str();
    let book = |hold: &str, key: &str| {
        let hold = hold.to_owned();
        let key = key.to_owned();
        let cluster = &cluster;
        async move {
            let response = cluster
                .http
                .post(format!("{}/v1/bookings", cluster.url))
                .bearer_auth(erin_token)
                .header("idempotency-key", key)
                .json(&json!({"hold_id": hold, "payment_token": "tok_success"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()
        }
    };
    let booking = book(hold["hold_id"].as_str().unwrap(), "k1").await;
    let booking_id = booking["booking_id"].as_str().unwrap().to_owned();
    // Far from the start: a full refund.
    let (status, cancelled) = call(
        &cluster,
        Method::POST,
        &format!("/v1/bookings/{booking_id}/cancel"),
        Some(erin.token.as_str()),
        None,
    )
    .await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    assert_eq!(cancelled["refund_minor"], 40_000);

    // Show 41 starts tomorrow: inside 24 h, a 50% refund.
    let (status, hold) = call(
        &cluster,
        Method::POST,
        "/v1/shows/41/holds",
        Some(erin.token.as_str()),
        Some(r#"{"seats": ["B1"]}"#),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let booking = book(hold["hold_id"].as_str().unwrap(), "k2").await;
    let late_id = booking["booking_id"].as_str().unwrap().to_owned();
    if evening.saturating_sub(now) < DAY {
        let (status, cancelled) = call(
            &cluster,
            Method::POST,
            &format!("/v1/bookings/{late_id}/cancel"),
            Some(erin.token.as_str()),
            None,
        )
        .await;
        assert_eq!(
            (status, cancelled["refund_minor"].as_i64()),
            (200, Some(17_500)),
            "{cancelled}"
        );
        let (status, hold) = call(
            &cluster,
            Method::POST,
            "/v1/shows/41/holds",
            Some(erin.token.as_str()),
            Some(r#"{"seats": ["B1"]}"#),
        )
        .await;
        assert_eq!(status, 201, "{hold}");
        book(hold["hold_id"].as_str().unwrap(), "k3").await;
    }
    // Another customer cannot cancel it.
    let (status, _) = call(
        &cluster,
        Method::POST,
        &format!("/v1/bookings/{late_id}/cancel"),
        Some(mallory.token.as_str()),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Cancel show 41: the booking is refunded in full, holds stop, the page says not bookable.
    let (status, summary) =
        call(&cluster, Method::POST, "/v1/admin/shows/41/cancel", admin, None).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["show"]["status"], "cancelled");
    assert_eq!(summary["refunded"], 1, "{summary}");
    let (status, again) =
        call(&cluster, Method::POST, "/v1/admin/shows/41/cancel", admin, None).await;
    assert_eq!(
        (status, again["refunded"].as_u64()),
        (200, Some(0)),
        "a repeat refunds nothing twice"
    );
    let (status, body) = call(
        &cluster,
        Method::POST,
        "/v1/shows/41/holds",
        Some(erin.token.as_str()),
        Some(r#"{"seats": ["A1"]}"#),
    )
    .await;
    assert_eq!((status, slug(&body)), (409, "show-cancelled"));
    let page = get(&cluster, "/v1/shows/41").await;
    assert_eq!(
        (page["show"]["status"].as_str(), page["bookable"].as_bool()),
        (Some("cancelled"), Some(false))
    );
    assert_eq!(
        get(&cluster, &format!("/v1/movies/11/shows?city=Mumbai&date={date}")).await,
        json!([])
    );
    let seats = get(&cluster, "/v1/shows/41/seats").await;
    assert_eq!(seats["cancelled"], true);
    let ledger = get_admin(&cluster, "/v1/sandbox/payments").await;
    let refunds = ledger["refunds"].as_object().unwrap();
    assert_eq!(refunds.len(), if evening.saturating_sub(now) < DAY { 3 } else { 2 }, "{ledger}");
    // Sales of the far show: nothing sold any more (its one booking was cancelled).
    let sales = get_admin(&cluster, "/v1/admin/shows/42/sales").await;
    assert_eq!(
        (sales["seats_sold"].as_u64(), sales["revenue_minor"].as_i64()),
        (Some(0), Some(0)),
        "{sales}"
    );
}

async fn get_admin(cluster: &Cluster, path: &str) -> Value {
    let (status, body) = call(cluster, Method::GET, path, Some(cluster.admin_token()), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The UTC date (`YYYY-MM-DD`) of Unix milliseconds.
fn date_of(ms: u64) -> String {
    let days = (ms / DAY) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Browse listings are served from the gateway's cache and a catalog change empties it at once
/// (through the change feed), well before the cache's 30 s expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_listings_follow_catalog_changes() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let admin = Some(cluster.admin_token());
    let put = |title: &str| {
        let mut body = movie(title, "drama", "english");
        body.as_object_mut().unwrap().remove("movie_id");
        body.to_string()
    };
    let (status, body) =
        call(&cluster, Method::PUT, "/v1/admin/movies/51", admin, Some(&put("Alpha Waves"))).await;
    assert_eq!(status, 200, "{body}");
    async fn title(cluster: &Cluster) -> String {
        let list = get(cluster, "/v1/movies?q=alpha").await;
        list["items"][0]["title"].as_str().unwrap_or_default().to_owned()
    }
    tests::eventually("the listing", std::time::Duration::from_secs(10), || async {
        Ok((title(&cluster).await == "Alpha Waves").then_some(()))
    })
    .await
    .unwrap();
    // Repeated reads are served from the cache (once the feed watcher is connected).
    let hits =
        || cluster.metric(&cluster.url, "marquee_gateway_catalog_cache_total{result=\"hit\"}");
    tests::eventually("cache hits", std::time::Duration::from_secs(10), || async {
        assert_eq!(title(&cluster).await, "Alpha Waves");
        Ok((hits().await? > 0.0).then_some(()))
    })
    .await
    .unwrap();
    let (status, _) =
        call(&cluster, Method::PUT, "/v1/admin/movies/51", admin, Some(&put("Alpha Centauri")))
            .await;
    assert_eq!(status, 200);
    tests::eventually(
        "the change to empty the cache",
        std::time::Duration::from_secs(5),
        || async { Ok((title(&cluster).await == "Alpha Centauri").then_some(())) },
    )
    .await
    .unwrap();
}
