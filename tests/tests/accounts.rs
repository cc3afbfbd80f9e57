//! Accounts against a real cluster: registration and login with clear errors, refresh-token
//! rotation with reuse detection, logout, `/v1/me`, the admin's user list and role changes, a
//! theater manager confined to its theaters, "my bookings" merged across shards and invisible
//! to others, and the per-account rate limit.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use tests::{behaviour, test_theater, Cluster, Options, USER_PASSWORD};

async fn call(
    cluster: &Cluster,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (status, _, body) =
        tests::raw_request(cluster, method, path, token, body.as_deref()).await.unwrap();
    (status, body)
}

fn slug(body: &Value) -> &str {
    body["type"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("")
}

fn register(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password, "name": "Asha Rao"})
}

fn refresh(token: &str) -> Value {
    json!({"refresh_token": token})
}

/// `PUT` path of an account's role.
fn role_of(user_id: u64) -> String {
    format!("/v1/admin/users/{user_id}/role")
}

/// A one-row screen, as theater managers create it.
fn screen() -> Value {
    json!({"name": "Audi 1", "format": "2D",
        "rows": [{"label": "A", "category": "standard", "seats": 4, "aisles_after": []}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_refresh_logout_and_roles() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let c = &cluster;

    // Registration: clear errors that create nothing, then success with tokens.
    behaviour!(registration_refuses_bad_input_with_clear_errors(c)).await;
    let asha_id = behaviour!(registration_normalizes_the_email_and_grants_no_role(c)).await;
    behaviour!(an_email_registers_only_once_whatever_its_case(c)).await;

    // Login: one answer for a wrong password and an unknown email.
    behaviour!(login_gives_one_answer_for_a_wrong_password_and_an_unknown_email(c)).await;
    let login = behaviour!(a_login_signs_in_to_the_account(c, asha_id)).await;
    let access = login["access_token"].as_str().unwrap().to_owned();

    // Refresh rotates; the old token then counts as reused and revokes the whole session.
    let (first, second) = behaviour!(refreshing_rotates_the_refresh_token(c, &login)).await;
    behaviour!(reusing_a_rotated_refresh_token_revokes_the_session(c, &first, &second)).await;
    behaviour!(a_made_up_refresh_token_is_refused(c)).await;
    behaviour!(logout_revokes_its_session_and_no_other(c)).await;

    // Admin: list users (customers may not), make Asha the manager of theater 21 only.
    behaviour!(only_admins_list_users(c, &access)).await;
    behaviour!(admins_create_theaters_by_id(c)).await;
    behaviour!(role_changes_are_validated(c, asha_id)).await;
    behaviour!(a_customer_cannot_promote_itself(c, asha_id, &access)).await;
    behaviour!(an_admin_makes_a_customer_the_manager_of_a_theater(c, asha_id)).await;

    // The role applies at the next token.
    let manager = behaviour!(a_new_token_carries_the_role_and_a_manager_runs_its_theater(c)).await;
    let manager = manager.as_deref();
    behaviour!(a_manager_cannot_run_other_theaters_movies_or_users(c, manager)).await;
    behaviour!(losing_a_theater_applies_at_once_without_a_new_token(c, asha_id, manager)).await;
    behaviour!(a_demoted_admin_loses_admin_rights_at_once(c)).await;
    behaviour!(a_malformed_token_gets_nothing(c)).await;
}

async fn registration_refuses_bad_input_with_clear_errors(cluster: &Cluster) {
    for (body, status, kind) in [
        (register("not-an-email", "long enough"), 422, "validation-error"),
        (register("asha@example.com", "short"), 422, "validation-error"),
        (json!({"email": "asha@example.com", "password": "long enough"}), 422, "malformed-body"),
        (
            json!({"email": "asha@example.com", "password": 12345678, "name": "A"}),
            422,
            "malformed-body",
        ),
        (
            json!({"email": "asha@example.com", "password": "long enough", "name": "A", "role": "admin"}),
            422,
            "malformed-body",
        ),
    ] {
        let (got, problem) =
            call(cluster, Method::POST, "/v1/auth/register", None, Some(body.clone())).await;
        assert_eq!((got, slug(&problem)), (status, kind), "{body}: {problem}");
    }
}

/// Returns Asha's user id.
async fn registration_normalizes_the_email_and_grants_no_role(cluster: &Cluster) -> u64 {
    let (status, asha) = call(
        cluster,
        Method::POST,
        "/v1/auth/register",
        None,
        Some(register("Asha@Example.com", "correct horse")),
    )
    .await;
    assert_eq!(status, 201, "{asha}");
    assert_eq!(asha["token_type"], "Bearer");
    assert_eq!(asha["user"]["email"], "asha@example.com", "emails are normalized");
    assert_eq!(asha["user"]["role"], "customer", "registration never grants a role");
    assert!(asha["user"].get("password_hash").is_none(), "the hash never leaves the cluster");
    asha["user"]["user_id"].as_u64().unwrap()
}

async fn an_email_registers_only_once_whatever_its_case(cluster: &Cluster) {
    let (status, body) = call(
        cluster,
        Method::POST,
        "/v1/auth/register",
        None,
        Some(register("ASHA@example.com", "another password")),
    )
    .await;
    assert_eq!((status, slug(&body)), (409, "email-taken"), "{body}");
}

async fn login_gives_one_answer_for_a_wrong_password_and_an_unknown_email(cluster: &Cluster) {
    for (email, password) in
        [("asha@example.com", "wrong password"), ("nobody@example.com", "correct horse")]
    {
        let (status, body) = call(
            cluster,
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
        assert_eq!((status, slug(&body)), (401, "unauthorized"), "{body}");
        assert_eq!(body["detail"], "wrong email or password");
    }
}

/// Returns the login's tokens.
async fn a_login_signs_in_to_the_account(cluster: &Cluster, asha_id: u64) -> Value {
    let login = cluster.login("asha@example.com", "correct horse").await.unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let (status, me) = call(cluster, Method::GET, "/v1/me", Some(&access), None).await;
    assert_eq!((status, me["user_id"].as_u64()), (200, Some(asha_id)), "{me}");
    login
}

/// Returns the first and the rotated refresh token.
async fn refreshing_rotates_the_refresh_token(
    cluster: &Cluster,
    login: &Value,
) -> (String, String) {
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) =
        call(cluster, Method::POST, "/v1/auth/refresh", None, Some(refresh(&first))).await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let (status, me) =
        call(cluster, Method::GET, "/v1/me", rotated["access_token"].as_str(), None).await;
    assert_eq!(status, 200, "the new access token works: {me}");
    (first, second)
}

async fn reusing_a_rotated_refresh_token_revokes_the_session(
    cluster: &Cluster,
    first: &str,
    second: &str,
) {
    let (status, body) =
        call(cluster, Method::POST, "/v1/auth/refresh", None, Some(refresh(first))).await;
    assert_eq!((status, slug(&body)), (401, "refresh-token-reused"), "{body}");
    let (status, body) =
        call(cluster, Method::POST, "/v1/auth/refresh", None, Some(refresh(second))).await;
    assert_eq!((status, slug(&body)), (401, "invalid-refresh-token"), "family revoked: {body}");
}

async fn a_made_up_refresh_token_is_refused(cluster: &Cluster) {
    let (status, body) =
        call(cluster, Method::POST, "/v1/auth/refresh", None, Some(refresh("made-up"))).await;
    assert_eq!((status, slug(&body)), (401, "invalid-refresh-token"), "{body}");
}

/// Logout revokes the session's refresh token; other sessions are unaffected.
async fn logout_revokes_its_session_and_no_other(cluster: &Cluster) {
    let other = cluster.login("asha@example.com", "correct horse").await.unwrap();
    let session = cluster.login("asha@example.com", "correct horse").await.unwrap();
    let (status, _) = call(
        cluster,
        Method::POST,
        "/v1/auth/logout",
        None,
        Some(refresh(session["refresh_token"].as_str().unwrap())),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        cluster,
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some(refresh(session["refresh_token"].as_str().unwrap())),
    )
    .await;
    assert_eq!(status, 401, "logged out");
    let (status, _) = call(
        cluster,
        Method::POST,
        "/v1/auth/refresh",
        None,
        Some(refresh(other["refresh_token"].as_str().unwrap())),
    )
    .await;
    assert_eq!(status, 200, "another session still refreshes");
}

async fn only_admins_list_users(cluster: &Cluster, customer: &str) {
    let admin = Some(cluster.admin_token());
    let (status, body) = call(cluster, Method::GET, "/v1/admin/users", Some(customer), None).await;
    assert_eq!((status, slug(&body)), (403, "forbidden"));
    let (status, users) =
        call(cluster, Method::GET, "/v1/admin/users?per_page=100", admin, None).await;
    assert_eq!(status, 200, "{users}");
    assert_eq!(users["total"], 2, "the admin and Asha: {users}");
}

async fn admins_create_theaters_by_id(cluster: &Cluster) {
    let admin = Some(cluster.admin_token());
    for id in [21, 22] {
        let (status, body) = call(
            cluster,
            Method::PUT,
            &format!("/v1/admin/theaters/{id}"),
            admin,
            Some(test_theater()),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn role_changes_are_validated(cluster: &Cluster, asha_id: u64) {
    let admin = Some(cluster.admin_token());
    let role = role_of(asha_id);
    for (body, status) in [
        (json!({"role": "customer", "theaters": [21]}), 422),
        (json!({"role": "theater_manager", "theaters": [999]}), 404),
        (json!({"role": "overlord"}), 422),
    ] {
        let (got, problem) = call(cluster, Method::PUT, &role, admin, Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {problem}");
    }
}

async fn a_customer_cannot_promote_itself(cluster: &Cluster, asha_id: u64, access: &str) {
    let (status, body) = call(
        cluster,
        Method::PUT,
        &role_of(asha_id),
        Some(access),
        Some(json!({"role": "admin", "theaters": []})),
    )
    .await;
    assert_eq!(status, 403, "a customer cannot promote itself: {body}");
}

async fn an_admin_makes_a_customer_the_manager_of_a_theater(cluster: &Cluster, asha_id: u64) {
    let (status, body) = call(
        cluster,
        Method::PUT,
        &role_of(asha_id),
        Some(cluster.admin_token()),
        Some(json!({"role": "theater_manager", "theaters": [21]})),
    )
    .await;
    assert_eq!((status, body["theaters"].clone()), (200, json!([21])), "{body}");
}

/// Returns the manager's new access token.
async fn a_new_token_carries_the_role_and_a_manager_runs_its_theater(
    cluster: &Cluster,
) -> Option<String> {
    let manager = cluster.login("asha@example.com", "correct horse").await.unwrap();
    let manager = manager["access_token"].as_str();
    let (status, body) =
        call(cluster, Method::POST, "/v1/admin/theaters/21/screens", manager, Some(screen())).await;
    assert_eq!(status, 201, "a manager runs its own theater: {body}");
    let mut put_screen = screen();
    put_screen["theater_id"] = json!(21);
    let (status, body) =
        call(cluster, Method::PUT, "/v1/admin/screens/2101", manager, Some(put_screen)).await;
    assert_eq!(status, 200, "a manager replaces its own theater's screen: {body}");
    manager.map(str::to_owned)
}

async fn a_manager_cannot_run_other_theaters_movies_or_users(
    cluster: &Cluster,
    manager: Option<&str>,
) {
    let (status, body) =
        call(cluster, Method::POST, "/v1/admin/theaters/22/screens", manager, Some(screen())).await;
    assert_eq!((status, slug(&body)), (403, "forbidden"), "not another theater: {body}");
    let mut put_screen = screen();
    put_screen["theater_id"] = json!(22);
    let (status, body) =
        call(cluster, Method::PUT, "/v1/admin/screens/2201", manager, Some(put_screen)).await;
    assert_eq!((status, slug(&body)), (403, "forbidden"), "not another theater's: {body}");
    let (status, _) =
        call(cluster, Method::PUT, "/v1/admin/theaters/22", manager, Some(test_theater())).await;
    assert_eq!(status, 403);
    let (status, _) =
        call(cluster, Method::PUT, "/v1/admin/movies/5", manager, Some(tests::test_movie())).await;
    assert_eq!(status, 403, "managers do not edit the movie catalog");
    let (status, _) = call(cluster, Method::GET, "/v1/admin/users", manager, None).await;
    assert_eq!(status, 403);
}

async fn losing_a_theater_applies_at_once_without_a_new_token(
    cluster: &Cluster,
    asha_id: u64,
    manager: Option<&str>,
) {
    let (status, _) = call(
        cluster,
        Method::PUT,
        &role_of(asha_id),
        Some(cluster.admin_token()),
        Some(json!({"role": "theater_manager", "theaters": [22]})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) =
        call(cluster, Method::POST, "/v1/admin/theaters/21/screens", manager, Some(screen())).await;
    assert_eq!(status, 403, "theater 21 was taken away");
}

/// A demoted admin loses admin rights at once, with the token it already holds.
async fn a_demoted_admin_loses_admin_rights_at_once(cluster: &Cluster) {
    let ops =
        cluster.create_account("ops@example.com", "ops password", "admin", &[]).await.unwrap();
    let ops_token = cluster.login("ops@example.com", "ops password").await.unwrap();
    let ops_token = ops_token["access_token"].as_str();
    let (status, _) = call(cluster, Method::GET, "/v1/admin/users", ops_token, None).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        cluster,
        Method::PUT,
        &format!("/v1/admin/users/{ops}/role"),
        Some(cluster.admin_token()),
        Some(json!({"role": "customer"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(cluster, Method::GET, "/v1/admin/users", ops_token, None).await;
    assert_eq!((status, slug(&body)), (403, "forbidden"), "demotion applies at once: {body}");
}

/// A malformed token gets nothing (forged and expired ones: `accounts` unit tests).
async fn a_malformed_token_gets_nothing(cluster: &Cluster) {
    let (status, body) = call(cluster, Method::GET, "/v1/me", Some("a.b.c"), None).await;
    assert_eq!((status, slug(&body)), (401, "unauthorized"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_bookings_span_shards_and_stay_private() {
    let cluster = Cluster::start(Options { shards: 2, ..Options::default() }).await.unwrap();
    // Two shows: the meta group places each on the least-loaded shard, so one per shard.
    let shows =
        [cluster.create_show(1, 6).await.unwrap(), cluster.create_show(1, 6).await.unwrap()];
    let status = cluster.ctl_status().await.unwrap();
    let groups_with_shows = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["shows"].as_u64().unwrap_or(0) > 0)
        .count();
    assert_eq!(groups_with_shows, 2, "the shows are on different shards: {status}");

    let (ravi, meera) = (cluster.user("ravi").await.unwrap(), cluster.user("meera").await.unwrap());
    let mut booked = Vec::new();
    for (n, show) in shows.iter().enumerate() {
        let (status, hold) = ravi.hold(*show, json!({"seats": ["A1"]})).await.unwrap();
        assert_eq!(status, 201, "{hold}");
        let (status, booking) = ravi
            .book(hold["hold_id"].as_str().unwrap(), "tok_success", &format!("r{n}"))
            .await
            .unwrap();
        assert_eq!(status, 201, "{booking}");
        booked.push(booking["booking_id"].as_str().unwrap().to_owned());
    }
    let (status, hold) = meera.hold(shows[0], json!({"seats": ["A2"]})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    let (status, _) =
        meera.book(hold["hold_id"].as_str().unwrap(), "tok_success", "m").await.unwrap();
    assert_eq!(status, 201);

    let (status, mine) = ravi.send(Method::GET, "/v1/me/bookings").await.unwrap();
    assert_eq!(status, 200, "{mine}");
    let ids: Vec<&str> = mine["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["booking_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [booked[1].as_str(), booked[0].as_str()], "both shards, newest first");
    assert!(mine["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["owner"] == format!("u{}", ravi.user_id)));
    let (_, one) = ravi.send(Method::GET, "/v1/me/bookings?limit=1").await.unwrap();
    assert_eq!(one["bookings"].as_array().unwrap().len(), 1);
    for bad in ["/v1/me/bookings?limit=0", "/v1/me/bookings?limit=101", "/v1/me/bookings?limit=x"] {
        let (status, _) = ravi.send(Method::GET, bad).await.unwrap();
        assert!(status == 400 || status == 422, "{bad}: {status}");
    }
    let (_, theirs) = meera.send(Method::GET, "/v1/me/bookings").await.unwrap();
    assert_eq!(theirs["bookings"].as_array().unwrap().len(), 1, "only Meera's own: {theirs}");
    // Meera cannot read or cancel Ravi's booking.
    for (method, path) in [
        (Method::GET, format!("/v1/bookings/{}", booked[0])),
        (Method::POST, format!("/v1/bookings/{}/cancel", booked[0])),
    ] {
        let (status, _) = meera.send(method, &path).await.unwrap();
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = cluster
        .http
        .get(format!("{}/v1/me/bookings", cluster.url))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);
    // Ravi's account still signs in with the harness password (sanity of the fixture).
    cluster.login(&ravi.email, USER_PASSWORD).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_has_its_own_rate_limit() {
    let cluster = Cluster::start(Options { nodes: 1, ..Options::default() }).await.unwrap();
    // A second gateway with a per-account limit of 1 request/s (default burst 30).
    let limited = Options { rate_limit_user_per_s: 1.0, ..cluster.options().clone() };
    let gateway = cluster.spawn_gateway("limited", &limited).await.unwrap();
    let (a, b) = (cluster.user("a").await.unwrap(), cluster.user("b").await.unwrap());
    let get = |token: &str| {
        cluster.http.get(format!("{}/v1/me", gateway.url)).bearer_auth(token.to_owned()).send()
    };
    let mut ok = 0;
    let mut refused = None;
    for _ in 0..40 {
        let response = get(&a.token).await.unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            429 if refused.is_none() => refused = Some(response),
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!((30..=33).contains(&ok), "burst of 30 at 1/s, got {ok}");
    let response = refused.expect("the account was limited");
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(slug(&body), "rate-limited", "{body}");
    // Another account on the same gateway (and IP) is not affected.
    assert_eq!(get(&b.token).await.unwrap().status(), 200);
}
