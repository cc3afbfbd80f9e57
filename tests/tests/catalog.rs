//! The catalog REST API against a real cluster: admin CRUD with validation (4xx and no state
//! change), browse listings with filters, pagination and local dates, show pages, reviews and
//! ratings, cancellation under the policy, and show cancellation refunding every booking.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use tests::{behaviour, Cluster, Options, User};

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

/// One cluster for the whole catalog scenario: later behaviours read what earlier ones wrote
/// (movies 11 and 12, theaters 21 and 22, screen 31, shows 41 and 42).
struct Scene<'a> {
    cluster: &'a Cluster,
    admin: Option<&'a str>,
    carol: User<'a>,
    dave: User<'a>,
    erin: User<'a>,
    mallory: User<'a>,
    /// When the scenario started (Unix ms).
    now: u64,
    /// Tomorrow's UTC date, `YYYY-MM-DD`.
    date: String,
    /// Tomorrow 18:30 IST (13:00 UTC): when show 41 starts.
    evening: u64,
}

impl Scene<'_> {
    /// Whether show 41 starts within a day (then cancelling it refunds half).
    fn show_41_is_within_a_day(&self) -> bool {
        self.evening.saturating_sub(self.now) < DAY
    }
}

/// Screen 31 of theater 21: 6 classic seats with an aisle, 4 prime.
fn audi_1() -> Value {
    json!({"screen_id": 31, "name": "Audi 1", "format": "IMAX", "rows": [
        {"label": "A", "category": "classic", "seats": 6, "aisles_after": [3]},
        {"label": "B", "category": "prime", "seats": 4}]})
}

/// A screen whose only row has an invalid label.
fn bad_screen() -> Value {
    json!({"name": "Bad", "format": "2D", "rows": [{"label": "A1", "category": "c", "seats": 3}]})
}

fn show_body(id: u64, movie: u64, starts: u64) -> String {
    json!({"show_id": id, "movie_id": movie, "screen_id": 31,
    "starts_at_ms": starts, "prices": {"classic": 20000, "prime": 35000}, "currency": "INR"})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_admin_browse_reviews_and_show_cancellation() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let tomorrow_utc = (now / DAY + 1) * DAY;
    let s = Scene {
        cluster: &cluster,
        admin: Some(cluster.admin_token()),
        carol: cluster.user("carol").await.unwrap(),
        dave: cluster.user("dave").await.unwrap(),
        erin: cluster.user("erin").await.unwrap(),
        mallory: cluster.user("mallory").await.unwrap(),
        now,
        date: proto::calendar::date_of_ms(tomorrow_utc),
        evening: tomorrow_utc + 13 * 3_600_000,
    };
    let s = &s;

    // Admin CRUD, with validation that changes nothing.
    behaviour!(admins_create_movies_by_post_or_by_put_with_an_id(s)).await;
    behaviour!(malformed_or_invalid_catalog_writes_are_refused_and_leave_nothing_behind(s)).await;
    behaviour!(customers_cannot_write_the_catalog(s)).await;
    behaviour!(admins_create_theaters_and_screens(s)).await;
    behaviour!(a_screen_layout_is_refused_naming_the_bad_field(s)).await;

    // Shows: tomorrow 18:30 IST (13:00 UTC) and a far one.
    behaviour!(a_show_takes_its_capacity_and_theater_from_its_screen(s)).await;
    behaviour!(retrying_a_show_creation_is_safe_and_changing_it_is_a_conflict(s)).await;
    behaviour!(show_prices_must_cover_every_seat_category(s)).await;
    behaviour!(a_show_far_ahead_is_scheduled(s)).await;

    // Replacing screens (PUT creates or replaces by id).
    behaviour!(renaming_a_screen_with_scheduled_shows_is_allowed(s)).await;
    behaviour!(refused_screen_replacements_change_nothing(s)).await;
    behaviour!(putting_a_new_screen_id_creates_it_in_the_theater_named(s)).await;

    // Browse.
    behaviour!(cities_list_how_many_theaters_they_have(s)).await;
    behaviour!(movies_are_listed_with_filters_and_pagination(s)).await;
    behaviour!(bad_listing_queries_are_refused(s)).await;
    behaviour!(a_movie_lists_its_shows_by_theater_on_a_local_date(s)).await;
    behaviour!(theaters_are_listed_by_city_with_their_screens(s)).await;
    behaviour!(a_show_page_has_its_movie_bookability_and_availability(s)).await;

    // Reviews: one per user, editable, aggregate exact.
    behaviour!(reviewing_requires_signing_in(s)).await;
    behaviour!(review_stars_are_validated(s)).await;
    behaviour!(a_review_names_its_author_and_counts_in_the_rating(s)).await;
    behaviour!(posting_a_second_review_edits_the_first(s)).await;
    behaviour!(the_rating_averages_every_reviewer(s)).await;
    behaviour!(reviews_are_paginated_and_counted_on_the_movie(s)).await;
    behaviour!(deleting_a_review_takes_it_out_of_the_rating(s)).await;
    behaviour!(reviewing_an_unknown_movie_is_not_found(s)).await;

    // Bookings, cancellation policy and show cancellation.
    behaviour!(cancelling_far_from_the_start_refunds_in_full(s)).await;
    let late_id = behaviour!(cancelling_within_a_day_of_the_start_refunds_half(s)).await;
    behaviour!(another_customer_cannot_cancel_a_booking(s, &late_id)).await;
    behaviour!(cancelling_a_show_refunds_every_booking_exactly_once(s)).await;
    behaviour!(a_cancelled_show_takes_no_holds_and_is_listed_nowhere(s)).await;
    behaviour!(the_payment_ledger_has_one_refund_per_cancelled_booking(s)).await;
    behaviour!(cancelled_bookings_do_not_count_as_sales(s)).await;
}

async fn admins_create_movies_by_post_or_by_put_with_an_id(s: &Scene<'_>) {
    let (cluster, admin) = (s.cluster, s.admin);
    let mut first = movie("Monsoon Run", "action", "hindi");
    first["movie_id"] = json!(11);
    let (status, m1) =
        call(cluster, Method::POST, "/v1/admin/movies", admin, Some(&first.to_string())).await;
    assert_eq!(status, 201, "{m1}");
    assert_eq!(m1["movie_id"], 11);
    let (status, _) = call(
        cluster,
        Method::PUT,
        "/v1/admin/movies/12",
        admin,
        Some(&movie("Quiet Harbour", "drama", "english").to_string()),
    )
    .await;
    assert_eq!(status, 200);
}

async fn malformed_or_invalid_catalog_writes_are_refused_and_leave_nothing_behind(s: &Scene<'_>) {
    let (cluster, admin) = (s.cluster, s.admin);
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
        let (got, problem) = call(cluster, method, path, admin, Some(&body)).await;
        assert_eq!((got, slug(&problem)), (status, kind), "{path} {body}: {problem}");
    }
    let (status, _) = call(cluster, Method::GET, "/v1/movies/13", None, None).await;
    assert_eq!(status, 404, "rejected writes left nothing behind");
}

async fn customers_cannot_write_the_catalog(s: &Scene<'_>) {
    let (status, body) = call(
        s.cluster,
        Method::PUT,
        "/v1/admin/movies/14",
        Some(s.carol.token.as_str()),
        Some(&movie("Y", "drama", "tamil").to_string()),
    )
    .await;
    assert_eq!((status, slug(&body)), (403, "forbidden"));
}

async fn admins_create_theaters_and_screens(s: &Scene<'_>) {
    let (cluster, admin) = (s.cluster, s.admin);
    for (id, name, city) in [(21, "Regal", "Mumbai"), (22, "Apsara", "Pune")] {
        let (status, body) = call(
            cluster,
            Method::PUT,
            &format!("/v1/admin/theaters/{id}"),
            admin,
            Some(&theater(name, city).to_string()),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = call(
        cluster,
        Method::POST,
        "/v1/admin/theaters/21/screens",
        admin,
        Some(&audi_1().to_string()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

async fn a_screen_layout_is_refused_naming_the_bad_field(s: &Scene<'_>) {
    let (status, body) = call(
        s.cluster,
        Method::POST,
        "/v1/admin/theaters/21/screens",
        s.admin,
        Some(&bad_screen().to_string()),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("rows[0].label")), "{body}");
}

async fn a_show_takes_its_capacity_and_theater_from_its_screen(s: &Scene<'_>) {
    let (status, created) = call(
        s.cluster,
        Method::POST,
        "/v1/admin/shows",
        s.admin,
        Some(&show_body(41, 11, s.evening)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["capacity"].as_u64(), created["theater_id"].as_u64()),
        (Some(10), Some(21))
    );
}

async fn retrying_a_show_creation_is_safe_and_changing_it_is_a_conflict(s: &Scene<'_>) {
    let (cluster, admin, evening) = (s.cluster, s.admin, s.evening);
    let (status, _) =
        call(cluster, Method::POST, "/v1/admin/shows", admin, Some(&show_body(41, 11, evening)))
            .await;
    assert_eq!(status, 201);
    let (status, body) =
        call(cluster, Method::POST, "/v1/admin/shows", admin, Some(&show_body(41, 12, evening)))
            .await;
    assert_eq!((status, slug(&body)), (409, "conflict"));
}

async fn show_prices_must_cover_every_seat_category(s: &Scene<'_>) {
    let (status, body) = call(s.cluster, Method::POST, "/v1/admin/shows", s.admin, Some(&json!({"movie_id": 11, "screen_id": 31, "starts_at_ms": s.evening, "prices": {"classic": 1}, "currency": "INR"}).to_string())).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("prices")),
        "prices must cover every category"
    );
}

async fn a_show_far_ahead_is_scheduled(s: &Scene<'_>) {
    let (status, _) =
        call(s.cluster, Method::POST, "/v1/admin/shows", s.admin, Some(&show_body(42, 12, FAR)))
            .await;
    assert_eq!(status, 201);
}

async fn put_screen(s: &Scene<'_>, id: u64, body: &Value) -> (u16, Value) {
    let path = format!("/v1/admin/screens/{id}");
    call(s.cluster, Method::PUT, &path, s.admin, Some(&body.to_string())).await
}

async fn screens_of(s: &Scene<'_>, theater: u64) -> Value {
    get(s.cluster, &format!("/v1/theaters/{theater}")).await["screens"].clone()
}

/// Screen 31 under a new name, as a `PUT /v1/admin/screens/31` body.
fn audi_one() -> Value {
    let mut renamed = audi_1();
    renamed["theater_id"] = json!(21);
    renamed["name"] = json!("Audi One");
    renamed.as_object_mut().unwrap().remove("screen_id");
    renamed
}

async fn renaming_a_screen_with_scheduled_shows_is_allowed(s: &Scene<'_>) {
    let (status, body) = put_screen(s, 31, &audi_one()).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Audi One")), "{body}");
}

/// With shows scheduled the layout is fixed; the screen cannot move to another theater; the
/// theater id is required and layouts are validated. None of these change anything.
async fn refused_screen_replacements_change_nothing(s: &Scene<'_>) {
    let renamed = audi_one();
    let before = screens_of(s, 21).await;
    let mut bigger = renamed.clone();
    bigger["rows"][1]["seats"] = json!(8);
    let (status, body) = put_screen(s, 31, &bigger).await;
    assert_eq!(status, 409, "layout change under scheduled shows: {body}");
    let mut moved = renamed.clone();
    moved["theater_id"] = json!(22);
    let (status, body) = put_screen(s, 31, &moved).await;
    assert_eq!(status, 409, "a screen stays in its theater: {body}");
    let mut anonymous = renamed.clone();
    anonymous.as_object_mut().unwrap().remove("theater_id");
    let (status, body) = put_screen(s, 31, &anonymous).await;
    assert_eq!(status, 422, "{body}");
    let mut bad = renamed.clone();
    bad["rows"][0]["seats"] = json!(-1);
    let (status, body) = put_screen(s, 31, &bad).await;
    assert!(status == 400 || status == 422, "{status} {body}");
    assert_eq!(screens_of(s, 21).await, before, "refused replacements changed nothing");
}

async fn putting_a_new_screen_id_creates_it_in_the_theater_named(s: &Scene<'_>) {
    let mut created = bad_screen();
    created["theater_id"] = json!(22);
    created["rows"][0]["label"] = json!("A");
    let (status, body) = put_screen(s, 3201, &created).await;
    assert_eq!(status, 200, "{body}");
    let pune = screens_of(s, 22).await;
    assert_eq!(pune.as_array().map(Vec::len), Some(1), "{pune}");
    assert_eq!(pune[0]["screen_id"], 3201);
}

async fn cities_list_how_many_theaters_they_have(s: &Scene<'_>) {
    let cities = get(s.cluster, "/v1/cities").await;
    assert_eq!(cities, json!([{"city": "Mumbai", "theaters": 1}, {"city": "Pune", "theaters": 1}]));
}

async fn movies_are_listed_with_filters_and_pagination(s: &Scene<'_>) {
    let cluster = s.cluster;
    let page = get(cluster, "/v1/movies?city=mumbai&per_page=1").await;
    assert_eq!(
        (page["total"].as_u64(), page["items"][0]["movie_id"].as_u64()),
        (Some(2), Some(11))
    );
    let page2 = get(cluster, "/v1/movies?city=mumbai&per_page=1&page=2").await;
    assert_eq!(page2["items"][0]["movie_id"], 12);
    assert_eq!(get(cluster, "/v1/movies?genre=drama").await["items"][0]["title"], "Quiet Harbour");
    assert_eq!(get(cluster, "/v1/movies?language=HINDI").await["total"], 1);
    assert_eq!(get(cluster, "/v1/movies?q=harb").await["total"], 1);
    assert_eq!(get(cluster, "/v1/movies?city=Pune").await["total"], 0);
}

async fn bad_listing_queries_are_refused(s: &Scene<'_>) {
    for bad in [
        "/v1/movies?per_page=1000",
        "/v1/movies?page=0",
        "/v1/movies?colour=red",
        "/v1/movies/11/shows?city=Mumbai&date=2026-1-1",
        "/v1/movies/11/shows",
    ] {
        let (status, body) = call(s.cluster, Method::GET, bad, None, None).await;
        assert!(status == 400 || status == 422, "{bad}: {status} {body}");
    }
}

async fn a_movie_lists_its_shows_by_theater_on_a_local_date(s: &Scene<'_>) {
    let date = &s.date;
    let listing = get(s.cluster, &format!("/v1/movies/11/shows?city=Mumbai&date={date}")).await;
    assert_eq!(listing[0]["theater"]["name"], "Regal", "{listing}");
    assert_eq!(listing[0]["shows"][0]["show"]["show_id"], 41);
    let theater_day = get(s.cluster, &format!("/v1/theaters/21/shows?date={date}")).await;
    assert_eq!(theater_day["shows"].as_array().unwrap().len(), 1);
}

async fn theaters_are_listed_by_city_with_their_screens(s: &Scene<'_>) {
    assert_eq!(get(s.cluster, "/v1/theaters?city=Pune").await["items"][0]["theater_id"], 22);
    assert_eq!(get(s.cluster, "/v1/theaters/21").await["screens"][0]["screen_id"], 31);
}

async fn a_show_page_has_its_movie_bookability_and_availability(s: &Scene<'_>) {
    let page = get(s.cluster, "/v1/shows/41").await;
    assert_eq!(
        (page["movie"]["title"].as_str(), page["bookable"].as_bool()),
        (Some("Monsoon Run"), Some(true)),
        "{page}"
    );
    assert_eq!(page["availability"], json!({"available": 10, "capacity": 10}));
}

fn review(stars: u8) -> String {
    json!({"stars": stars, "text": "Loved it"}).to_string()
}

const REVIEWS: &str = "/v1/movies/11/reviews";

async fn reviewing_requires_signing_in(s: &Scene<'_>) {
    let (status, body) = call(s.cluster, Method::POST, REVIEWS, None, Some(&review(4))).await;
    assert_eq!((status, slug(&body)), (401, "unauthorized"), "signing in is required");
}

async fn review_stars_are_validated(s: &Scene<'_>) {
    let dave_t = Some(s.dave.token.as_str());
    let (status, body) = call(s.cluster, Method::POST, REVIEWS, dave_t, Some(&review(6))).await;
    assert_eq!((status, slug(&body)), (422, "validation-error"), "{body}");
}

async fn a_review_names_its_author_and_counts_in_the_rating(s: &Scene<'_>) {
    let dave_t = Some(s.dave.token.as_str());
    let (status, body) = call(s.cluster, Method::POST, REVIEWS, dave_t, Some(&review(4))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["review"]["user_id"].as_u64(), body["review"]["author"].as_str()),
        (Some(s.dave.user_id), Some("dave"))
    );
    assert_eq!(body["rating"], json!({"count": 1, "stars_sum": 4}));
}

async fn posting_a_second_review_edits_the_first(s: &Scene<'_>) {
    let dave_t = Some(s.dave.token.as_str());
    let (status, body) = call(s.cluster, Method::POST, REVIEWS, dave_t, Some(&review(2))).await;
    assert_eq!((status, &body["rating"]), (201, &json!({"count": 1, "stars_sum": 2})), "{body}");
}

async fn the_rating_averages_every_reviewer(s: &Scene<'_>) {
    let (status, body) =
        call(s.cluster, Method::POST, REVIEWS, Some(s.erin.token.as_str()), Some(&review(5))).await;
    assert_eq!((status, body["rating_average"].as_f64()), (201, Some(3.5)), "{body}");
}

async fn reviews_are_paginated_and_counted_on_the_movie(s: &Scene<'_>) {
    let listed = get(s.cluster, &format!("{REVIEWS}?per_page=1")).await;
    assert_eq!((listed["total"].as_u64(), listed["items"].as_array().unwrap().len()), (Some(2), 1));
    assert_eq!(get(s.cluster, "/v1/movies/11").await["rating"]["count"], 2);
}

async fn deleting_a_review_takes_it_out_of_the_rating(s: &Scene<'_>) {
    let dave_t = Some(s.dave.token.as_str());
    let (status, _) =
        call(s.cluster, Method::DELETE, "/v1/movies/11/reviews/me", dave_t, None).await;
    assert_eq!(status, 204);
    assert_eq!(get(s.cluster, REVIEWS).await["rating"], json!({"count": 1, "stars_sum": 5}));
}

async fn reviewing_an_unknown_movie_is_not_found(s: &Scene<'_>) {
    let dave_t = Some(s.dave.token.as_str());
    let (status, _) =
        call(s.cluster, Method::POST, "/v1/movies/999/reviews", dave_t, Some(&review(3))).await;
    assert_eq!(status, 404);
}

/// Erin books her hold with a successful payment; returns the booking.
async fn erin_books(s: &Scene<'_>, hold: &str, key: &str) -> Value {
    let cluster = s.cluster;
    let response = cluster
        .http
        .post(format!("{}/v1/bookings", cluster.url))
        .bearer_auth(s.erin.token.as_str())
        .header("idempotency-key", key)
        .json(&json!({"hold_id": hold, "payment_token": "tok_success"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()
}

async fn cancelling_far_from_the_start_refunds_in_full(s: &Scene<'_>) {
    let (status, hold) = call(
        s.cluster,
        Method::POST,
        "/v1/shows/42/holds",
        Some(s.erin.token.as_str()),
        Some(r#"{"seats": ["A1", "A2"]}"#),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let booking = erin_books(s, hold["hold_id"].as_str().unwrap(), "k1").await;
    let booking_id = booking["booking_id"].as_str().unwrap().to_owned();
    let (status, cancelled) = call(
        s.cluster,
        Method::POST,
        &format!("/v1/bookings/{booking_id}/cancel"),
        Some(s.erin.token.as_str()),
        None,
    )
    .await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    assert_eq!(cancelled["refund_minor"], 40_000);
}

/// Show 41 starts tomorrow: when that is inside 24 h, cancelling refunds 50% (and Erin books
/// the seat again). Returns the id of Erin's booking of show 41.
async fn cancelling_within_a_day_of_the_start_refunds_half(s: &Scene<'_>) -> String {
    let (status, hold) = call(
        s.cluster,
        Method::POST,
        "/v1/shows/41/holds",
        Some(s.erin.token.as_str()),
        Some(r#"{"seats": ["B1"]}"#),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    let booking = erin_books(s, hold["hold_id"].as_str().unwrap(), "k2").await;
    let late_id = booking["booking_id"].as_str().unwrap().to_owned();
    if s.show_41_is_within_a_day() {
        let (status, cancelled) = call(
            s.cluster,
            Method::POST,
            &format!("/v1/bookings/{late_id}/cancel"),
            Some(s.erin.token.as_str()),
            None,
        )
        .await;
        assert_eq!(
            (status, cancelled["refund_minor"].as_i64()),
            (200, Some(17_500)),
            "{cancelled}"
        );
        let (status, hold) = call(
            s.cluster,
            Method::POST,
            "/v1/shows/41/holds",
            Some(s.erin.token.as_str()),
            Some(r#"{"seats": ["B1"]}"#),
        )
        .await;
        assert_eq!(status, 201, "{hold}");
        erin_books(s, hold["hold_id"].as_str().unwrap(), "k3").await;
    }
    late_id
}

async fn another_customer_cannot_cancel_a_booking(s: &Scene<'_>, late_id: &str) {
    let (status, _) = call(
        s.cluster,
        Method::POST,
        &format!("/v1/bookings/{late_id}/cancel"),
        Some(s.mallory.token.as_str()),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn cancelling_a_show_refunds_every_booking_exactly_once(s: &Scene<'_>) {
    let (status, summary) =
        call(s.cluster, Method::POST, "/v1/admin/shows/41/cancel", s.admin, None).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["show"]["status"], "cancelled");
    assert_eq!(summary["refunded"], 1, "{summary}");
    let (status, again) =
        call(s.cluster, Method::POST, "/v1/admin/shows/41/cancel", s.admin, None).await;
    assert_eq!(
        (status, again["refunded"].as_u64()),
        (200, Some(0)),
        "a repeat refunds nothing twice"
    );
}

async fn a_cancelled_show_takes_no_holds_and_is_listed_nowhere(s: &Scene<'_>) {
    let (status, body) = call(
        s.cluster,
        Method::POST,
        "/v1/shows/41/holds",
        Some(s.erin.token.as_str()),
        Some(r#"{"seats": ["A1"]}"#),
    )
    .await;
    assert_eq!((status, slug(&body)), (409, "show-cancelled"));
    let page = get(s.cluster, "/v1/shows/41").await;
    assert_eq!(
        (page["show"]["status"].as_str(), page["bookable"].as_bool()),
        (Some("cancelled"), Some(false))
    );
    let date = &s.date;
    assert_eq!(
        get(s.cluster, &format!("/v1/movies/11/shows?city=Mumbai&date={date}")).await,
        json!([])
    );
    let seats = get(s.cluster, "/v1/shows/41/seats").await;
    assert_eq!(seats["cancelled"], true);
}

async fn the_payment_ledger_has_one_refund_per_cancelled_booking(s: &Scene<'_>) {
    let ledger = get_admin(s.cluster, "/v1/sandbox/payments").await;
    let refunds = ledger["refunds"].as_object().unwrap();
    assert_eq!(refunds.len(), if s.show_41_is_within_a_day() { 3 } else { 2 }, "{ledger}");
}

/// Sales of the far show: nothing sold any more (its one booking was cancelled).
async fn cancelled_bookings_do_not_count_as_sales(s: &Scene<'_>) {
    let sales = get_admin(s.cluster, "/v1/admin/shows/42/sales").await;
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
